#!/usr/bin/env python3
"""Load test of the self-service API: R requests (default 500) sent to `strata serve`
at once — all R in flight together, one connection each — against the twin, then
every one followed to a terminal state.

Setup (as scripts/bench_api.py): a twin of the example fleet's DCs, the fleet committed
to a bare Git repository, `strata serve` on a fresh PostgreSQL database (dropped at
the end) with `--rate-limit 100000`, the bring-up approved and applied and the
machines' onboarding finished (GPU hosts must have joined Placement before a GPU
instance can be placed); a member token per team.

Load: R `POST /api/v1/requests` bodies in a mix of kinds (`--mix
vm=400,gpu=60,metal=40`: VMs for team platform, GPU instances (g1.h100x1) and
bare-metal machines for team ml-research), sent by R threads released together by a
barrier, each on a connection it opened (and authenticated on) beforehand.

Checked:
- no 5xx and no transport error: every request got an answer, 202 (accepted) or a
  clear refusal (a 4xx problem with its `code`, e.g. 422 `quota-exceeded`);
- no Proxmox node of the twin holds VMs of more cores or memory than it has (reported,
  as `proxmox_capacity.overcommitted`; not part of `ok`, which is about requests);
- no request lost: every accepted id is listed by `GET /api/v1/requests` exactly once,
  no listed request of this run is unknown to the client, and every accepted request
  reaches a terminal state (`ready` or `failed` with its reason) within
  `--settle-timeout` seconds.

`--raise-quotas` gives both teams room for every request (instances 10,000 and so on)
in the fleet copy, so that all R are accepted and the twin's capacity decides; by
default the example fleet's quotas apply (platform: the blueprint's default, 50
instances; ml-research: 20 instances, 16 GPUs), so most requests are refused.

    scripts/load_requests.py [--strata target/release/strata] [--requests 500]
        [--mix vm=400,gpu=60,metal=40] [--raise-quotas] [--database-url URL]
        [--settle-timeout 900] [--json out.json] [--keep]
"""

import argparse
import collections
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_api as b  # noqa: E402

ROOT = b.ROOT
TERMINAL = ("ready", "failed", "released", "release-failed")


def raise_quotas(fleet):
    """Give every team of the copy room for any load (teams.yaml and the blueprint's
    default quota)."""
    big = "{ instances: 10000, cores: 1000000, ram_mib: 1000000000, gpus: 10000 }"
    p = os.path.join(fleet, "teams.yaml")
    text = open(p).read()
    text = re.sub(r"quota: \{[^}]*\}", f"quota: {big}", text)
    open(p, "w").write(text)
    p = os.path.join(fleet, "blueprint.yaml")
    text = open(p).read()
    text = re.sub(r"default_quota: \{[^}]*\}", f"default_quota: {big}", text)
    open(p, "w").write(text)


def wait_onboarding(stack, timeout):
    """Until no onboarding workflow runs (the bring-up's machines are in service)."""
    c = stack.client()
    t0 = time.monotonic()
    last = None
    while True:
        st, body, _ = c.request("GET", "/api/v1/workflows?kind=onboard&limit=500")
        items = body.get("items", []) if isinstance(body, dict) else []
        states = collections.Counter(w["state"] for w in items)
        if states != last:
            b.log(f"  onboarding: {dict(states)} ({time.monotonic() - t0:.0f} s)")
            last = states
        if items and not states.get("running"):
            c.close()
            return time.monotonic() - t0, dict(states)
        if time.monotonic() - t0 > timeout:
            c.close()
            return None, dict(states)
        time.sleep(2)


def bodies(mix, profile):
    out = []
    for kind, n in mix:
        for _ in range(n):
            i = len(out)
            name = f"load-{i}"
            if kind == "vm":
                out.append({"kind": "vm", "team": "platform", "name": name,
                            "cores": 1, "memory_mib": 512, "disk_gb": 8})
            elif kind == "gpu":
                out.append({"kind": "gpu", "team": "ml-research", "name": name, "flavor": "g1.h100x1"})
            elif kind == "metal":
                out.append({"kind": "metal", "team": "ml-research", "name": name, "profile": profile})
            else:
                raise SystemExit(f"unknown kind {kind} in --mix")
    return out


def fire(stack, tokens, reqs):
    """Every request on its own thread and connection, released together."""
    n = len(reqs)
    results = [None] * n
    barrier = threading.Barrier(n + 1)
    lock = threading.Lock()
    inflight = [0, 0]  # now, peak
    sent_at, done_at = [None] * n, [None] * n

    def worker(i):
        body = reqs[i]
        c = stack.client(tokens[body["team"]])
        try:
            # Open and authenticate the connection before the barrier.
            c.request("GET", "/api/v1/whoami")
        except Exception as e:
            results[i] = ("transport", f"{type(e).__name__}: {e}", None, 0.0)
            barrier.wait()
            return
        barrier.wait()
        with lock:
            inflight[0] += 1
            inflight[1] = max(inflight[1], inflight[0])
        t0 = time.perf_counter()
        sent_at[i] = t0
        try:
            st, resp, _ = c.request("POST", "/api/v1/requests", body)
            results[i] = (st, resp, None, time.perf_counter() - t0)
        except Exception as e:
            results[i] = ("transport", f"{type(e).__name__}: {e}", None, time.perf_counter() - t0)
        done_at[i] = time.perf_counter()
        with lock:
            inflight[0] -= 1
        c.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    ta = time.perf_counter()
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    # Every thread opened its connection and was authenticated (GET /api/v1/whoami,
    # all at once: a fresh token's first uses each check its argon2 hash).
    auth = {"wall_s": round(t0 - ta, 3), "server_rss_mib": b.proc_mem(stack.serve.pid)}
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    sends = [x for x in sent_at if x is not None]
    answers = [x for x in done_at if x is not None]
    # All sent before the first answer came back: that many were in flight together.
    before_first = sum(1 for x in sends if answers and x <= min(answers))
    return results, {
        "connect_and_authenticate": auth,
        "wall_s": round(wall, 3),
        "peak_in_flight": inflight[1],
        "sent_before_first_answer": before_first,
        "send_spread_s": round(max(sends) - min(sends), 3) if sends else None,
    }


def proxmox_overcommit(endpoints):
    """Per Proxmox node of the twin: its cores and memory against what its VMs hold
    (templates aside; the arithmetic of the placement, `capacity_of` in
    strata-providers), from `GET /cluster/resources`. Nodes holding more than they
    have are listed."""
    import ssl
    import urllib.request
    out = {"nodes": 0, "vms": 0, "overcommitted": []}
    for dc in json.load(open(endpoints))["dcs"]:
        px = dc.get("proxmox")
        if not px:
            continue
        ctx = ssl.create_default_context(cafile=px["ca_file"])
        req = urllib.request.Request(
            px["url"].rstrip("/") + "/api2/json/cluster/resources",
            headers={"Authorization": f"PVEAPIToken={px['token_id']}={px['token_secret']}"})
        with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
            data = json.load(r)["data"]
        for n in (e for e in data if e.get("type") == "node"):
            vms = [e for e in data if e.get("type") == "qemu" and e.get("node") == n["node"]
                   and not e.get("template")]
            cores = sum(int(e.get("maxcpu") or 0) for e in vms)
            mem = sum(int(e.get("maxmem") or 0) for e in vms) // 2**20
            out["nodes"] += 1
            out["vms"] += len(vms)
            if cores > int(n.get("maxcpu") or 0) or mem > int(n.get("maxmem") or 0) // 2**20:
                out["overcommitted"].append({
                    "dc": dc["name"], "node": n["node"], "vms": len(vms),
                    "cores": f"{cores}/{n.get('maxcpu')}",
                    "memory_mib": f"{mem}/{int(n.get('maxmem') or 0) // 2**20}"})
    return out


def list_all(c):
    items, cursor = [], None
    while True:
        q = "/api/v1/requests?limit=500" + (f"&cursor={cursor}" if cursor else "")
        st, body, _ = c.request("GET", q)
        if st != 200:
            raise RuntimeError(f"GET {q}: {st} {body}")
        items.extend(body["items"])
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default=os.path.join(ROOT, "target/release/strata"))
    ap.add_argument("--fleet", default=os.path.join(ROOT, "examples/fleet"))
    ap.add_argument("--dcs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--mix", default="vm=400,gpu=60,metal=40",
                    help="kind=count,...; scaled to --requests")
    ap.add_argument("--metal-profile", default="hv-std")
    ap.add_argument("--raise-quotas", action="store_true")
    ap.add_argument("--workers", type=int, default=16, help="strata serve --workers")
    ap.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--onboard-timeout", type=float, default=900)
    ap.add_argument("--settle-timeout", type=float, default=900)
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if not os.access(a.strata, os.X_OK):
        sys.exit(f"{a.strata} is not executable: cargo build --release -p strata-cli (or --strata PATH)")
    mix = [(k, int(v)) for k, v in (x.split("=") for x in a.mix.split(","))]
    total = sum(n for _, n in mix)
    if total != a.requests:
        # Scale the mix to --requests, the remainder to the first kind.
        mix = [(k, n * a.requests // total) for k, n in mix]
        mix[0] = (mix[0][0], mix[0][1] + a.requests - sum(n for _, n in mix))
    out = {"machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
           "requests": a.requests, "mix": dict(mix), "raise_quotas": a.raise_quotas}
    tmp = tempfile.mkdtemp(prefix="strata-load-requests-")
    fleet = os.path.join(tmp, "fleet")
    shutil.copytree(a.fleet, fleet)
    if a.raise_quotas:
        raise_quotas(fleet)
    db = b.Database(a.database_url, tmp, f"strata_load_{os.getpid()}")
    out["database"] = "PostgreSQL" if db.pg else db.url
    stack = None
    try:
        b.log("starting the twin and strata serve")
        stack = b.Stack(a.strata, tmp, fleet, a.dcs, db.url, workers=a.workers)
        out["bring_up_s"] = round(stack.bring_up(), 1)
        took, states = wait_onboarding(stack, a.onboard_timeout)
        out["onboarding"] = {"settled_s": None if took is None else round(took, 1), "workflows": states}
        out["server_rss_mib_before"] = b.proc_mem(stack.serve.pid)
        tokens = {t: stack.token(t, "member", f"load-{t}") for t in ("platform", "ml-research")}
        reqs = bodies(mix, a.metal_profile)
        b.log(f"firing {len(reqs)} requests at once")
        cpu0 = b.proc_cpu_s(stack.serve.pid)
        results, fired = fire(stack, tokens, reqs)
        out["fire"] = fired
        lat = [r[3] for r in results if r and r[0] != "transport"]
        out["fire"]["p50_s"] = b.rnd(b.percentile(lat, 50))
        out["fire"]["p99_s"] = b.rnd(b.percentile(lat, 99))
        out["fire"]["max_s"] = b.rnd(max(lat) if lat else None)
        statuses = collections.Counter()
        accepted = {}
        five, transport, refusals = [], [], collections.Counter()
        for i, r in enumerate(results):
            st, resp = r[0], r[1]
            kind = reqs[i]["kind"]
            if st == "transport":
                transport.append(resp)
                statuses["transport"] += 1
                continue
            code = resp.get("code") if isinstance(resp, dict) else None
            statuses[f"{st}" + (f" {code}" if code else "")] += 1
            if st == 202:
                accepted[resp["id"]] = kind
            elif st >= 500:
                five.append(resp)
            else:
                refusals[f"{kind}: {st} {code}"] += 1
        out["answers"] = dict(statuses)
        out["refusals"] = dict(refusals)
        out["five_xx"] = len(five)
        out["five_xx_examples"] = five[:3]
        out["transport_errors"] = len(transport)
        out["transport_examples"] = transport[:3]
        out["accepted"] = len(accepted)

        # Follow every accepted request to a terminal state.
        b.log(f"{len(accepted)} accepted; following them to a terminal state")
        c = stack.client()
        t0 = time.monotonic()
        last = None
        while True:
            items = list_all(c)
            mine = [x for x in items if x["name"].startswith("load-")]
            states = collections.Counter(x["state"] for x in mine)
            if states != last:
                b.log(f"  {dict(states)} ({time.monotonic() - t0:.0f} s)")
                last = states
            if all(x["state"] in TERMINAL for x in mine) and len(mine) >= len(accepted):
                settled = time.monotonic() - t0
                break
            if time.monotonic() - t0 > a.settle_timeout:
                settled = None
                break
            time.sleep(2)
        cpu1 = b.proc_cpu_s(stack.serve.pid)
        ids = collections.Counter(x["id"] for x in mine)
        listed = set(ids)
        out["settle_s"] = None if settled is None else round(settled, 1)
        out["lost"] = sorted(set(accepted) - listed)
        out["unknown_listed"] = sorted(listed - set(accepted))
        out["listed_twice"] = sorted(k for k, v in ids.items() if v > 1)
        by_kind = collections.defaultdict(collections.Counter)
        reasons = collections.Counter()
        for x in mine:
            by_kind[x["kind"]][x["state"]] += 1
            if x["state"] == "failed":
                reasons[f"{x['kind']}: {re.sub(r'req-[0-9a-f]{12}', 'req-…', x.get('detail') or '')[:160]}"] += 1
        out["final_states"] = {k: dict(v) for k, v in by_kind.items()}
        out["not_terminal"] = sum(1 for x in mine if x["state"] not in TERMINAL)
        out["failure_reasons"] = dict(reasons.most_common(8))
        try:
            out["proxmox_capacity"] = proxmox_overcommit(stack.endpoints)
        except Exception as e:
            out["proxmox_capacity"] = {"error": f"{type(e).__name__}: {e}"}
        out["server_cpu_s"] = b.rnd(cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None, 1)
        out["server_rss_mib"] = b.proc_mem(stack.serve.pid)
        errors = 0
        with open(stack.serve_log_path) as f:
            for line in f:
                if '"level":"ERROR"' in line:
                    errors += 1
        out["server_error_log_lines"] = errors
        out["ok"] = (out["five_xx"] == 0 and out["transport_errors"] == 0 and not out["lost"]
                     and not out["unknown_listed"] and not out["listed_twice"] and out["not_terminal"] == 0
                     and sum(statuses.values()) == a.requests)
        out["machine"]["load_avg_end"] = os.getloadavg()
        text = json.dumps(out, indent=2)
        print(text)
        if a.json:
            with open(a.json, "w") as f:
                f.write(text + "\n")
        return 0 if out["ok"] else 1
    finally:
        if stack:
            stack.stop()
        db.drop()
        if a.keep:
            b.log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
