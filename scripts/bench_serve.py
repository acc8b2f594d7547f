#!/usr/bin/env python3
"""Commit pushed → plan visible in `strata serve`, against the CLI's own `strata plan`
of the same commit (the peer, measured in the same run).

For each of N commits (each adds a VM to the example fleet): commit, `git push` into
the bare repository the server follows, `POST /api/v1/sync` (what a webhook does), then
poll `GET /api/v1/commits/SHA` until the server has planned it. The peer is `strata plan
DIR --targets ...` on the same tree, timed as a command. Prints p50/p99 of both and
their ratio.

    scripts/bench_serve.py [--strata target/release/strata] [--commits 20]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(
    os.environ,
    NO_COLOR="1",
    BMC_PASSWORD_FRA1="x",
    BMC_PASSWORD_AMS1="x",
    BMC_PASSWORD_WAW1="x",
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@strata.invalid", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True).stdout.strip()


def api(base, token, path, method="GET"):
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return {"status": e.code}


def percentile(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strata", default=os.path.join(ROOT, "target/release/strata"))
    ap.add_argument("--commits", type=int, default=20)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="strata-bench-serve-")
    procs = []
    try:
        ep = os.path.join(tmp, "twin", "endpoints.json")
        procs.append(subprocess.Popen(
            [a.strata, "twin", "--dcs", "3", "--fleet", os.path.join(ROOT, "examples/fleet"),
             "--listen", "127.0.0.1:0", "--write-endpoints", ep],
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        while not os.path.exists(ep):
            time.sleep(0.1)
        time.sleep(0.3)
        work = os.path.join(tmp, "fleet")
        shutil.copytree(os.path.join(ROOT, "examples/fleet"), work)
        bare = os.path.join(tmp, "fleet.git")
        git(tmp, "init", "-q", "--bare", "-b", "main", bare)
        git(work, "init", "-q", "-b", "main")
        git(work, "remote", "add", "origin", bare)
        git(work, "add", "-A")
        sha = git(work, "commit", "-q", "-m", "fleet")
        git(work, "push", "-q", "origin", "main")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        token_file = os.path.join(tmp, "admin.token")
        procs.append(subprocess.Popen(
            [a.strata, "serve", "--spec-repo", bare, "--targets", ep, "--database",
             f"sqlite:{tmp}/server.db", "--listen", f"127.0.0.1:{port}", "--state-dir",
             f"{tmp}/state", "--poll-interval", "1h", "--reconcile-interval", "1h",
             "--admin-token-file", token_file],
            env=ENV, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "serve.log"), "w")))
        while not os.path.exists(token_file):
            time.sleep(0.1)
        time.sleep(0.3)
        token = open(token_file).read().strip()
        # Bring the fleet up first (its plan waits for an approval).
        while True:
            c = api(base, token, f"/api/v1/commits/{sha}")
            if c.get("state") == "waiting":
                api(base, token, f"/api/v1/plans/{c['result']['plan_hash']}/approve", "POST")
            if c.get("state") == "applied":
                break
            time.sleep(0.3)
        served, peer = [], []
        vms = os.path.join(work, "vms.yaml")
        for i in range(a.commits):
            with open(vms, "a") as f:
                f.write(f"  - {{ name: bench{i}, site: fra1, role: ci-runner, cores: 2, memory_mib: 4096, disk_gb: 20, networks: [management], tags: [ci] }}\n")
            git(work, "add", "-A")
            sha = git(work, "commit", "-q", "-m", f"bench{i}")
            git(work, "push", "-q", "origin", "main")
            t0 = time.monotonic()
            api(base, token, "/api/v1/sync", "POST")
            while True:
                c = api(base, token, f"/api/v1/commits/{sha}")
                if c.get("state") not in (None, "queued") and c.get("result"):
                    break
                time.sleep(0.01)
            served.append(time.monotonic() - t0)
            # Let the server finish applying before the peer runs.
            while api(base, token, f"/api/v1/commits/{sha}").get("state") not in ("applied", "failed", "waiting", "blocked"):
                time.sleep(0.05)
            t0 = time.monotonic()
            subprocess.run([a.strata, "plan", work, "--targets", ep], env=ENV, capture_output=True)
            peer.append(time.monotonic() - t0)
        out = {
            "commits": a.commits,
            "serve_push_to_plan_p50_s": round(percentile(served, 50), 3),
            "serve_push_to_plan_p99_s": round(percentile(served, 99), 3),
            "peer_cli_plan_p50_s": round(percentile(peer, 50), 3),
            "peer_cli_plan_p99_s": round(percentile(peer, 99), 3),
        }
        out["ratio_p50"] = round(out["serve_push_to_plan_p50_s"] / out["peer_cli_plan_p50_s"], 2)
        print(json.dumps(out, indent=2))
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
