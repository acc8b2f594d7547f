#!/usr/bin/env python3
"""Onboarding machines through `strata serve` against a twin with realistic MAAS
timings: strata's own per-MAAS provisioning limit vs Metal3's default of 20
concurrent provisions in total (baremetal-operator `PROVISIONING_LIMIT`, see
BENCHMARKS.md), both measured in the same run on the same fleet.

For each configuration: a fresh twin (`--maas-timing realistic --time-scale S
--latency-ms L`), the fleet committed to a local Git repository, `strata serve` on
SQLite following it with `--maas-concurrency C` and `--workers W`; the bring-up plan is
approved when it waits for an approval, then every machine is onboarded by its own
workflow (commission, validate the hardware, deploy, join, in service). Measured:

- the onboarding window: from the first onboarding workflow's start to the last
  machine deployed (`--until deployed`, the default: its deploy step done, MAAS has it
  Deployed; what the provisioning limits bound) or in service (`--until in-service`:
  its workflow done, after the host joined its platform), in wall seconds and in real
  hours (wall x S);
- machines per real hour, and the ratio strata / Metal3 default (target >= 5x);
- from the twin's `/_twin/counters`: the most MAAS machines in an active phase at once
  per DC (checked against the configured per-MAAS limit) and the most requests in
  flight per MAAS endpoint (against the provider's per-endpoint limit, 16);
- the CPU seconds the twin and the server used.

The MAAS provider's machine polling (2 s, doubling to 10 s) is divided by S as well
(`poll_interval_ms` in the targets file), so that it stays as fine relative to the
phases as against a real MAAS. CPU work (rendering and parsing machine listings,
SQLite) is not scaled: at S it counts S times over in real time, which makes every
figure pessimistic, most of all when the CPUs are saturated. strata's run (hundreds of
machines at once) therefore runs at a small S (default 10); the Metal3-default run
(20 at once, a twentieth of the CPU per wall second) can run at a larger one
(`--baseline-time-scale`), which keeps the whole run within minutes.

    scripts/bench_onboard.py [--strata target/release/strata] [--machines 1000] [--dcs 4]
        [--limit 100] [--baseline-limit 20] [--time-scale 10] [--baseline-time-scale 150]
        [--latency-ms 100] [--until in-service|deployed] [--baseline-machines K]
        [--only strata|metal3-default] [--json out.json] [--keep]

`--baseline-machines K` runs the Metal3 default on a smaller fleet (about K machines,
same DCs) and compares rates: with 20 at a time its rate does not depend on the fleet's
size (a smaller fleet only makes its machine listings cheaper).
"""

import argparse
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The provider's defaults (crates/strata-providers/src/maas/mod.rs, MaasOptions).
POLL_MS, MAX_POLL_MS = 2000, 10000
# The provider's per-endpoint request limit (strata-providers http.rs EndpointConfig).
ENDPOINT_LIMIT = 16


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@strata.invalid", *args],
        cwd=cwd, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True).stdout.strip()


def http_json(url, token=None, method="GET", timeout=60):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            return json.loads(body) if body else {}
    except urllib.error.HTTPError as e:
        return {"status": e.code}


def layout(machines, dcs):
    """`strata init` sizing (racks per DC >= 2, 6..40 machines per rack) closest to
    `machines` over `dcs` DCs."""
    per_dc = max(12, math.ceil(machines / dcs))
    best = None
    for m in range(6, 41):
        r = max(2, round(per_dc / m))
        d = abs(r * m - per_dc)
        if best is None or d < best[0] or (d == best[0] and m > best[2]):
            best = (d, r, m)
    return best[1], best[2]


def onboard_targets(fleet_json):
    """Per DC, the machines the server will onboard: desired Deployed through MAAS and
    not already running (those MAAS registers as deployed)."""
    out = {}
    for d in fleet_json["dcs"]:
        out[d["name"]] = sum(1 for m in d["machines"] if not m.get("running"))
    return out


def workflows(db):
    """Onboarding workflows in the server's SQLite store: (state, started, in service,
    deployed), times in Unix ms; in service is when the workflow ended done, deployed
    when its `deploy` step did (MAAS has the machine Deployed)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(
            "SELECT w.state, w.created_ms, w.updated_ms, "
            "(SELECT max(e.at_ms) FROM events e WHERE e.workflow_id = w.id AND e.kind = 'step-done' "
            "AND e.detail LIKE '% deploy') FROM workflows w WHERE w.kind = 'onboard'").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def window(rows, end_times):
    """(wall seconds from the first onboarding's start to the last end, to the first
    end, count) over `end_times`."""
    ends = sorted(t for t in end_times if t)
    started = min((r[1] for r in rows), default=None)
    if not ends or started is None:
        return None, None, 0
    return (ends[-1] - started) / 1000, (ends[0] - started) / 1000, len(ends)


def failures(db, limit=5):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(
            "SELECT w.subject, s.name, s.error FROM steps s JOIN workflows w ON w.id = s.workflow_id "
            "WHERE w.kind = 'onboard' AND s.error IS NOT NULL AND s.error != '' LIMIT ?", (limit,)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def run_config(a, name, limit_per_dc, fleet_src, expected, work, scale):
    """One configuration: fresh twin (time scale `scale`), server, bring-up,
    onboarding. Returns its figures."""
    tmp = os.path.join(work, name)
    os.makedirs(tmp)
    env = dict(os.environ, NO_COLOR="1", BMC_PASSWORD="bench")
    procs = []
    try:
        ep = os.path.join(tmp, "twin", "endpoints.json")
        twin_log = open(os.path.join(tmp, "twin.log"), "w")
        procs.append(subprocess.Popen(
            [a.strata, "twin", "--dcs", str(a.dcs), "--fleet", fleet_src, "--listen", "127.0.0.1:0",
             "--write-endpoints", ep, "--maas-timing", "realistic", "--time-scale", str(scale),
             "--latency-ms", str(a.latency_ms), "--seed", str(a.seed)],
            env=env, stdout=twin_log, stderr=twin_log, start_new_session=True))
        deadline = time.time() + 300
        while not os.path.exists(ep):
            if procs[0].poll() is not None or time.time() > deadline:
                raise SystemExit(f"{name}: the twin did not start (see {tmp}/twin.log)")
            time.sleep(0.2)
        time.sleep(0.5)
        doc = json.load(open(ep))
        admin = doc["twin"]["admin"]
        for d in doc["dcs"]:
            d["maas"]["poll_interval_ms"] = max(1, POLL_MS // scale)
            d["maas"]["max_poll_interval_ms"] = max(1, MAX_POLL_MS // scale)
        targets = os.path.join(tmp, "twin", "targets.json")
        with open(targets, "w") as f:
            json.dump(doc, f, indent=1)

        repo = os.path.join(tmp, "fleet")
        shutil.copytree(fleet_src, repo)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        sha = git(repo, "commit", "-q", "-m", "fleet")

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        token_file = os.path.join(tmp, "admin.token")
        db = os.path.join(tmp, "server.db")
        serve_log = open(os.path.join(tmp, "serve.log"), "w")
        procs.append(subprocess.Popen(
            [a.strata, "serve", "--spec-repo", repo, "--targets", targets, "--database", f"sqlite:{db}",
             "--listen", f"127.0.0.1:{port}", "--state-dir", os.path.join(tmp, "state"),
             "--poll-interval", "1h", "--reconcile-interval", "1h", "--admin-token-file", token_file,
             "--workers", str(a.workers), "--maas-concurrency", str(limit_per_dc), "--log-format", "text"],
            env=dict(env, STRATA_LOG="warn"), stdout=serve_log, stderr=serve_log, start_new_session=True))
        deadline = time.time() + 120
        while not os.path.exists(token_file):
            if procs[1].poll() is not None or time.time() > deadline:
                raise SystemExit(f"{name}: the server did not start (see {tmp}/serve.log)")
            time.sleep(0.2)
        token = open(token_file).read().strip()
        cpu_before = [cpu_seconds(p.pid) for p in procs]
        http_json(base + "/api/v1/sync", token, "POST")
        total = sum(expected.values())
        t_start = time.time()
        approved = set()
        state = None
        last_print = 0
        load_start = os.getloadavg()[0]
        while True:
            c = http_json(f"{base}/api/v1/commits/{sha}", token)
            state = c.get("state")
            plan = (c.get("result") or {}).get("plan_hash")
            if state == "waiting" and plan and plan not in approved:
                r = http_json(f"{base}/api/v1/plans/{plan}/approve", token, "POST")
                approved.add(plan)
                print(f"[{name}] approved the bring-up plan {plan[:12]} ({r.get('status', 'ok')})", flush=True)
            if state in ("failed", "blocked"):
                raise SystemExit(f"{name}: the commit is {state}: {json.dumps(c)[:2000]}")
            rows = workflows(db)
            done = [r for r in rows if r[0] == "done"]
            deployed = [r for r in rows if r[3]]
            failed = [r for r in rows if r[0] in ("failed", "cancelled")]
            finished = done if a.until == "in-service" else deployed
            now = time.time()
            if now - last_print > 15:
                last_print = now
                print(f"[{name}] {now - t_start:6.0f}s commit {state}: onboarding {len(rows)} started, "
                      f"{len(deployed)} deployed, {len(done)} in service, {len(failed)} failed", flush=True)
            if len(rows) >= total and len(finished) + len(failed) >= total:
                break
            if now - t_start > a.timeout:
                print(f"[{name}] timed out after {a.timeout}s", flush=True)
                break
            time.sleep(1.0)
        counters = http_json(admin + "counters")
        with open(os.path.join(tmp, "counters.json"), "w") as f:
            json.dump(counters, f, indent=1)
        cpu = [
            round(after - before, 1) if after is not None and before is not None else None
            for before, after in zip(cpu_before, (cpu_seconds(p.pid) for p in procs))
        ]
        rows = workflows(db)
        load_end = os.getloadavg()[0]
        failed = [r for r in rows if r[0] in ("failed", "cancelled")]
        in_service_s, first_in_service_s, n_in_service = window(rows, [r[2] for r in rows if r[0] == "done"])
        deployed_s, first_deployed_s, n_deployed = window(rows, [r[3] for r in rows])
        window_s, n = (in_service_s, n_in_service) if a.until == "in-service" else (deployed_s, n_deployed)
        real_h = window_s * scale / 3600 if window_s else None
        rnd = lambda x: round(x, 1) if x is not None else None
        active = {x["dc"]: x["max_active"] for x in counters.get("maas_active", [])}
        in_flight = {x["dc"]: x["max_in_flight"] for x in counters.get("concurrency", []) if x["service"] == "maas"}
        maas_calls = sum(x["count"] for x in counters.get("calls", []) if x["service"] == "maas")
        out = {
            "config": name,
            "time_scale": scale,
            "maas_concurrency_per_dc": limit_per_dc,
            "maas_concurrency_total": limit_per_dc * a.dcs,
            "workers": a.workers,
            "machines_to_onboard": total,
            "onboarding_started": len(rows),
            "measured_until": a.until,
            "counted": n,
            "deployed": len([r for r in rows if r[3]]),
            "in_service": len([r for r in rows if r[0] == "done"]),
            "failed": len(failed),
            "failures": [list(f) for f in failures(db)] if failed else [],
            "window_wall_s": rnd(window_s),
            "deployed_window_wall_s": rnd(deployed_s),
            "first_deployed_wall_s": rnd(first_deployed_s),
            "in_service_window_wall_s": rnd(in_service_s),
            "first_in_service_wall_s": rnd(first_in_service_s),
            "window_real_h": round(real_h, 2) if real_h else None,
            "machines_per_real_hour": round(n / real_h, 1) if real_h else None,
            "peak_active_maas_machines_per_dc": active,
            "active_limit_kept": all(v <= limit_per_dc for v in active.values()),
            "peak_maas_requests_in_flight_per_dc": in_flight,
            "endpoint_limit_kept": all(v <= ENDPOINT_LIMIT for v in in_flight.values()),
            "maas_calls": maas_calls,
            "maas_calls_per_machine": round(maas_calls / max(len([r for r in rows if r[3]]), 1), 1),
            "load_average_start_end": [round(load_start, 1), round(load_end, 1)],
            # From the server's start (bring-up included) to the end of the measure.
            "cpu_s_twin_server": cpu,
        }
        print(f"[{name}] {json.dumps(out)}", flush=True)
        return out
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default=os.path.join(ROOT, "target/release/strata"))
    ap.add_argument("--machines", type=int, default=1000, help="machines to onboard (about; see the fleet's layout)")
    ap.add_argument("--dcs", type=int, default=4)
    ap.add_argument("--time-scale", type=int, default=10,
                    help="strata's run: divides every MAAS duration, the latency and the MAAS polling")
    ap.add_argument("--baseline-time-scale", type=int, default=150,
                    help="the Metal3-default run's time scale (0: --time-scale); 20 machines at a time "
                         "need far less CPU per wall second, so it can run compressed further")
    ap.add_argument("--latency-ms", type=int, default=100, help="real (unscaled) latency per MAAS/Proxmox/OpenStack request")
    ap.add_argument("--limit", type=int, default=100, help="strata: machines in an active MAAS phase per MAAS")
    ap.add_argument("--baseline-limit", type=int, default=20, help="Metal3's PROVISIONING_LIMIT default: in total, split over the DCs")
    ap.add_argument("--baseline-machines", type=int, default=0,
                    help="run the Metal3 default on a fleet of about this many machines (same DCs and "
                         "rack layout rules) and extrapolate its rate (0: the same fleet)")
    ap.add_argument("--workers", type=int, default=0, help="server step runners (0: enough for strata's limit)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=int, default=1800, help="per configuration, wall seconds")
    ap.add_argument("--until", choices=["in-service", "deployed"], default="deployed",
                    help="what ends a machine's onboarding for the measure: its workflow done (joined, in "
                         "service) or its deploy step done (MAAS Deployed; what the provisioning limits bound)")
    ap.add_argument("--only", choices=["strata", "metal3-default"], default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    ap.add_argument("--json", default=None, help="write the results here too")
    a = ap.parse_args()
    if a.baseline_limit % a.dcs:
        raise SystemExit(f"--baseline-limit {a.baseline_limit} does not split evenly over {a.dcs} DCs")
    if not a.workers:
        a.workers = min(1024, a.limit * a.dcs + 16)
    work = tempfile.mkdtemp(prefix="strata-bench-onboard-")
    try:
        racks, per_rack = layout(a.machines, a.dcs)
        fleet = os.path.join(work, "fleet-src")
        subprocess.run([a.strata, "init", fleet, "--dcs", str(a.dcs), "--racks-per-dc", str(racks),
                        "--machines-per-rack", str(per_rack)], check=True, capture_output=True)
        compiled = json.loads(subprocess.run([a.strata, "compile", fleet, "-o", "json"], check=True,
                                             capture_output=True, text=True).stdout)
        expected = onboard_targets(compiled)
        total = sum(expected.values())
        print(f"fleet: {a.dcs} DCs x {racks} racks x {per_rack} machines; {total} to onboard "
              f"({sum(len(d['machines']) for d in compiled['dcs']) - total} already running); "
              f"latency {a.latency_ms} ms real, workers {a.workers}", flush=True)
        results = {"machines": total, "measured_until": a.until, "dcs": a.dcs, "racks_per_dc": racks,
                   "machines_per_rack": per_rack, "latency_ms_real": a.latency_ms, "cpus": os.cpu_count(),
                   "configs": []}
        if a.only != "metal3-default":
            results["configs"].append(run_config(a, "strata", a.limit, fleet, expected, work, a.time_scale))
        if a.only != "strata":
            b_fleet, b_expected = fleet, expected
            if a.baseline_machines:
                b_racks, b_per_rack = layout(a.baseline_machines, a.dcs)
                b_fleet = os.path.join(work, "fleet-baseline")
                subprocess.run([a.strata, "init", b_fleet, "--dcs", str(a.dcs), "--racks-per-dc", str(b_racks),
                                "--machines-per-rack", str(b_per_rack)], check=True, capture_output=True)
                b_expected = onboard_targets(json.loads(subprocess.run(
                    [a.strata, "compile", b_fleet, "-o", "json"], check=True, capture_output=True,
                    text=True).stdout))
                print(f"Metal3 default on a sample fleet: {a.dcs} DCs x {b_racks} racks x {b_per_rack} machines; "
                      f"{sum(b_expected.values())} to onboard", flush=True)
            results["configs"].append(run_config(a, "metal3-default", a.baseline_limit // a.dcs, b_fleet,
                                                 b_expected, work, a.baseline_time_scale or a.time_scale))
        by = {c["config"]: c for c in results["configs"]}
        if "strata" in by and "metal3-default" in by and by["metal3-default"]["machines_per_real_hour"]:
            results["ratio"] = round(by["strata"]["machines_per_real_hour"] / by["metal3-default"]["machines_per_real_hour"], 2)
        print()
        print(f"| config | MAAS limit (per DC / total) | {a.until} | time scale | window (wall) | window (real h) "
              f"| machines/h (real) | peak active per DC | peak MAAS requests in flight per DC | MAAS calls/machine |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for c in results["configs"]:
            print(f"| {c['config']} | {c['maas_concurrency_per_dc']} / {c['maas_concurrency_total']} | "
                  f"{c['counted']}/{c['machines_to_onboard']} | {c['time_scale']} | {c['window_wall_s']} s | "
                  f"{c['window_real_h']} | "
                  f"{c['machines_per_real_hour']} | {' / '.join(str(v) for v in c['peak_active_maas_machines_per_dc'].values())} "
                  f"(limit kept: {c['active_limit_kept']}) | "
                  f"{' / '.join(str(v) for v in c['peak_maas_requests_in_flight_per_dc'].values())} "
                  f"(<= {ENDPOINT_LIMIT}: {c['endpoint_limit_kept']}) | {c['maas_calls_per_machine']} |")
        if "ratio" in results:
            print(f"\nstrata / Metal3 default: {results['ratio']}x machines per hour (target >= 5x)")
        text = json.dumps(results, indent=2)
        print(text)
        if a.json:
            with open(a.json, "w") as f:
                f.write(text + "\n")
        ok = all(c["failed"] == 0 and c["active_limit_kept"] for c in results["configs"])
        return 0 if ok else 1
    finally:
        if a.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
