#!/usr/bin/env python3
"""`strata serve`'s REST API and IPAM against NetBox: the same workload, the same machine.

Workload (the same against both):

- **allocate**: C concurrent allocators (default 64) take N addresses (default 2,000)
  from one address pool, each in a loop, one request per address: rate per second,
  p50/p99 latency, duplicates (must be 0). strata: `POST
  /api/v1/ipam/pools/{pool}/allocations` with a team member's token; NetBox: `POST
  /api/ipam/prefixes/{id}/available-ips/`.
- **get**: one machine (device) read G times by one client over a kept-alive
  connection: p50/p99. strata: `GET /api/v1/machines/{dc}/{hostname}`; NetBox: `GET
  /api/dcim/devices/{id}/`.
- **list**: all 2,000 machines (devices), R times: the full walk of `GET
  /api/v1/machines?limit=500` pages (strata's most per page) and one page of 500;
  NetBox: `GET /api/dcim/devices/?limit=2000` (following `next` when its
  MAX_PAGE_SIZE cuts the page).
- **rss**: the server's resident memory at the end (`/proc/PID/status` VmRSS, VmHWM).
- **bulk create**: NetBox `POST /api/dcim/devices/` with a list; strata has no
  device-create endpoint (machines come from the spec in Git), so it is reported as not
  comparable.

strata's side: a twin seeded from a synthetic 2,000-machine fleet (`strata init DIR
--dcs 1 --racks-per-dc 50 --machines-per-rack 40`, every machine marked `running: true`
so that the twin registers them deployed and no onboarding workflow competes for the
CPUs, and the management VLAN a /19 instead of a /20 so that its IP pool has room for
the allocations above the machines' addresses), the fleet committed to a bare Git repository, `strata serve` on a fresh
PostgreSQL database (`strata_bench_<pid>`, dropped at the end) with `--rate-limit
100000`, the bring-up plan approved and applied; then the workload.

The peer: `--peer-netbox URL TOKEN` runs the same workload against a real NetBox (an
IPv4 prefix with room for N addresses — the largest is chosen unless
`--netbox-prefix ID` — and at least 2,000 devices; the addresses and the devices the
script makes are deleted afterwards) and prints both side by side. Without it, NetBox's
figures are the ones recorded on this machine class (NetBox 4.7.3, PostgreSQL + Redis,
2 gunicorn workers) and the output says so: they were not measured in this run.

    scripts/bench_api.py [--strata target/release/strata] [--allocations 2000]
        [--allocators 64] [--gets 2000] [--list-runs 10] [--database-url URL]
        [--peer-netbox URL TOKEN [--netbox-prefix ID] [--netbox-pids PID,...]]
        [--json out.json] [--keep]
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(
    os.environ,
    NO_COLOR="1",
    BMC_PASSWORD="x",
    BMC_PASSWORD_FRA1="x",
    BMC_PASSWORD_AMS1="x",
    BMC_PASSWORD_WAW1="x",
)

# NetBox 4.7.3 on this machine class (2 cores; PostgreSQL + Redis, 2 gunicorn
# workers), recorded by the issue: not measured by this script unless --peer-netbox.
NETBOX_RECORDED = {
    "source": "recorded (NetBox 4.7.3, PostgreSQL + Redis, 2 gunicorn workers, same 2-core machine class); NOT measured in this run",
    "allocate": {"concurrency": 64, "rate_per_s": 47.7, "p50_s": 1.33, "p99_s": 1.47, "duplicates": 0},
    "get": {"p50_s": 0.072, "p99_s": 0.620},
    "list_2000": {"min_s": 1.1, "max_s": 1.7},
    "bulk_create": {"devices_per_s": 20.0},
    # As recorded ("500-620 MB"); compared as MiB, which favours NetBox slightly.
    "rss_mib": {"min": 500, "max": 620},
}


# ---------------------------------------------------------------------------
# Helpers shared with scripts/load_requests.py


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@strata.invalid", *args],
        cwd=cwd, check=True, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True).stdout.strip()


class Http:
    """One kept-alive HTTP/1.1 connection (http.client), reopened after an error."""

    def __init__(self, base, headers, timeout=120):
        u = urllib.parse.urlsplit(base)
        self.https = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port or (443 if self.https else 80)
        self.prefix = u.path.rstrip("/")
        self.headers = headers
        self.timeout = timeout
        self.conn = None

    def _open(self):
        if self.https:
            import ssl
            self.conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                    context=ssl.create_default_context())
        else:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method, path, body=None, extra=None):
        """(status, parsed JSON or text or None, headers). Raises on a transport error."""
        if self.conn is None:
            self._open()
        headers = dict(self.headers)
        if extra:
            headers.update(extra)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if not path.startswith("/"):
            # A full URL (NetBox's `next` links).
            u = urllib.parse.urlsplit(path)
            path = u.path + ("?" + u.query if u.query else "")
        elif self.prefix and not path.startswith(self.prefix + "/"):
            path = self.prefix + path
        try:
            self.conn.request(method, path, body=data, headers=headers)
            r = self.conn.getresponse()
            raw = r.read()
        except Exception:
            self.close()
            raise
        if r.getheader("connection", "").lower() == "close":
            self.close()
        text = raw.decode("utf-8", "replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return r.status, parsed, dict(r.getheaders())

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None


def proc_mem(pid):
    """VmRSS and VmHWM of a process, in MiB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = round(int(v.split()[0]) / 1024, 1)
    except OSError:
        pass
    return out


def proc_cpu_s(pid):
    """User + system CPU seconds of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def psql(url, sql):
    """Run one statement with psql against the server `url` names (its maintenance db)."""
    u = urllib.parse.urlsplit(url)
    cmd = ["psql", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432),
           "-U", u.username or "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql]
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = urllib.parse.unquote(u.password)
    subprocess.run(cmd, check=True, capture_output=True, env=env)


class Database:
    """A fresh PostgreSQL database for one run (or a SQLite file)."""

    def __init__(self, base_url, tmp, name):
        self.base = base_url
        self.name = name
        if base_url.startswith("sqlite"):
            self.url = f"sqlite:{tmp}/server.db"
            self.pg = False
        else:
            psql(base_url, f"CREATE DATABASE {name}")
            u = urllib.parse.urlsplit(base_url)
            self.url = urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, "", ""))
            self.pg = True

    def drop(self):
        if self.pg:
            try:
                psql(self.base, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            except subprocess.CalledProcessError as e:
                log(f"could not drop database {self.name}: {e.stderr.decode(errors='replace').strip()}")


class Stack:
    """A twin seeded from a fleet, the fleet in a bare Git repository, `strata serve`
    following it on `database`, the bring-up applied."""

    def __init__(self, strata, tmp, fleet_dir, dcs, database_url, rate_limit=100000, workers=16,
                 extra_serve_args=()):
        self.strata = strata
        self.tmp = tmp
        self.procs = []
        ep = os.path.join(tmp, "twin", "endpoints.json")
        self.twin_log = open(os.path.join(tmp, "twin.log"), "w")
        self.twin = subprocess.Popen(
            [strata, "twin", "--dcs", str(dcs), "--fleet", fleet_dir,
             "--listen", "127.0.0.1:0", "--write-endpoints", ep],
            env=ENV, stdout=subprocess.DEVNULL, stderr=self.twin_log)
        self.procs.append(self.twin)
        self._wait_file(ep, self.twin, "the twin")
        time.sleep(0.3)
        self.endpoints = ep
        work = os.path.join(tmp, "fleet")
        if os.path.abspath(fleet_dir) != os.path.abspath(work):
            shutil.copytree(fleet_dir, work)
        self.work = work
        bare = os.path.join(tmp, "fleet.git")
        git(tmp, "init", "-q", "--bare", "-b", "main", bare)
        git(work, "init", "-q", "-b", "main")
        git(work, "remote", "add", "origin", bare)
        git(work, "add", "-A")
        self.sha = git(work, "commit", "-q", "-m", "fleet")
        git(work, "push", "-q", "origin", "main")
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        token_file = os.path.join(tmp, "admin.token")
        self.serve_log_path = os.path.join(tmp, "serve.log")
        self.serve_log = open(self.serve_log_path, "w")
        self.serve = subprocess.Popen(
            [strata, "serve", "--spec-repo", bare, "--targets", ep, "--database", database_url,
             "--listen", f"127.0.0.1:{port}", "--state-dir", f"{tmp}/state",
             "--poll-interval", "1h", "--reconcile-interval", "1h",
             "--rate-limit", str(rate_limit), "--workers", str(workers),
             "--admin-token-file", token_file, *extra_serve_args],
            env=ENV, stdout=subprocess.DEVNULL, stderr=self.serve_log)
        self.procs.append(self.serve)
        self._wait_file(token_file, self.serve, "strata serve")
        time.sleep(0.2)
        self.admin = open(token_file).read().strip()

    def _wait_file(self, path, proc, what, timeout=120):
        t0 = time.monotonic()
        while not os.path.exists(path):
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode} (logs in {self.tmp})")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{what} did not start within {timeout} s")
            time.sleep(0.1)

    def client(self, token=None):
        return Http(self.base, {"Authorization": f"Bearer {token or self.admin}"})

    def bring_up(self, timeout=1800):
        """Approve the bring-up plan when it waits, until the commit is applied."""
        c = self.client()
        approved = set()
        t0 = time.monotonic()
        last = None
        while True:
            if self.serve.poll() is not None:
                raise RuntimeError(f"strata serve exited with {self.serve.returncode} (see {self.serve_log_path})")
            st, body, _ = c.request("GET", f"/api/v1/commits/{self.sha}")
            state = body.get("state") if isinstance(body, dict) else None
            if state != last:
                log(f"  bring-up: commit {self.sha[:12]} {state} ({time.monotonic() - t0:.1f} s)")
                last = state
            if state == "waiting":
                plan = ((body.get("result") or {}).get("plan_hash"))
                if plan and plan not in approved:
                    c.request("POST", f"/api/v1/plans/{plan}/approve")
                    approved.add(plan)
            if state == "applied":
                return time.monotonic() - t0
            if state in ("failed", "blocked"):
                raise RuntimeError(f"the bring-up commit is {state}: {json.dumps(body)[:2000]}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"the bring-up did not finish within {timeout} s (state {state})")
            time.sleep(0.5)

    def token(self, team, role="member", name="bench"):
        st, body, _ = self.client().request(
            "POST", "/api/v1/tokens", {"name": name, "team": team, "role": role})
        if st != 201:
            raise RuntimeError(f"cannot make a token for {team}: {st} {body}")
        return body["token"]

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        self.twin_log.close()
        self.serve_log.close()


# ---------------------------------------------------------------------------
# The workload, against either server


def allocate_run(make_client, do_one, n, concurrency):
    """`concurrency` threads each with its own connection call `do_one(client, i)` until
    `n` calls were made; `do_one` returns (ok, key or error). Rate, latencies,
    duplicates of the keys."""
    lock = threading.Lock()
    nxt = [0]
    lat, keys, errors = [], [], {}
    start = threading.Barrier(concurrency + 1)

    def worker():
        c = make_client()
        start.wait()
        while True:
            with lock:
                i = nxt[0]
                if i >= n:
                    break
                nxt[0] += 1
            t0 = time.perf_counter()
            try:
                ok, what = do_one(c, i)
            except Exception as e:  # a transport error
                ok, what = False, f"transport: {type(e).__name__}: {e}"
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    lat.append(dt)
                    keys.append(what)
                else:
                    errors[what] = errors.get(what, 0) + 1
        c.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    seen, dups = set(), 0
    for k in keys:
        if k in seen:
            dups += 1
        seen.add(k)
    return {
        "concurrency": concurrency,
        "requested": n,
        "allocated": len(keys),
        "errors": errors,
        "wall_s": round(wall, 3),
        "rate_per_s": round(len(keys) / wall, 1) if wall > 0 else None,
        "p50_s": rnd(percentile(lat, 50)),
        "p99_s": rnd(percentile(lat, 99)),
        "max_s": rnd(max(lat) if lat else None),
        "duplicates": dups,
    }


def rnd(x, d=4):
    return None if x is None else round(x, d)


def timed_series(fn, runs, warmup=3):
    for _ in range(warmup):
        fn()
    xs = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t0)
    return {"runs": runs, "p50_s": rnd(percentile(xs, 50)), "p99_s": rnd(percentile(xs, 99)),
            "min_s": rnd(min(xs)), "max_s": rnd(max(xs))}


def expect(st, body, want, what):
    if st not in want:
        raise RuntimeError(f"{what}: HTTP {st}: {json.dumps(body)[:500] if not isinstance(body, str) else body[:500]}")


# ---------------------------------------------------------------------------
# strata


def make_fleet(strata, tmp, racks, per_rack):
    d = os.path.join(tmp, "fleet")
    subprocess.run([strata, "init", d, "--dcs", "1", "--racks-per-dc", str(racks),
                    "--machines-per-rack", str(per_rack)], env=ENV, check=True, capture_output=True)
    # The management VLAN one bit wider (/19 instead of /20): its IP pool then holds
    # about 5,900 addresses above the 2,000 machines', room for --allocations.
    p = os.path.join(d, "pools.yaml")
    text = open(p).read()
    text, k = re.subn(r"(\n\s+management: )(\d+)", lambda m: f"{m.group(1)}{int(m.group(2)) - 1}", text)
    if k != 1:
        raise RuntimeError(f"cannot find the management VLAN's prefix length in {p}")
    open(p, "w").write(text)
    # Every machine already runs: the twin registers it deployed, and no onboarding
    # workflow (commission, deploy) runs during the measurement.
    inv = os.path.join(d, "inventory")
    n = 0
    for name in os.listdir(inv):
        p = os.path.join(inv, name)
        text = open(p).read()
        text, k = re.subn(r", pxe_mac:", ", running: true, pxe_mac:", text)
        n += k
        open(p, "w").write(text)
    return d, n


def run_strata(a, tmp):
    out = {"binary": a.strata}
    log(f"strata: generating a fleet of {a.racks * a.machines_per_rack} machines")
    fleet, n_machines = make_fleet(a.strata, tmp, a.racks, a.machines_per_rack)
    db = Database(a.database_url, tmp, f"strata_bench_{os.getpid()}")
    out["database"] = "PostgreSQL (fresh database %s)" % db.name if db.pg else db.url
    stack = None
    try:
        log("strata: starting the twin and strata serve")
        stack = Stack(a.strata, tmp, fleet, 1, db.url)
        out["bring_up_s"] = round(stack.bring_up(), 1)
        admin = stack.client()

        # The address pool with the largest range.
        st, body, _ = admin.request("GET", "/api/v1/ipam/pools?limit=500")
        expect(st, body, (200,), "GET /api/v1/ipam/pools")
        pools = [p for p in body["items"] if p["kind"] == "addresses"]
        pool = max(pools, key=lambda p: p["range_size"] - p["allocations"])
        if pool["range_size"] - pool["allocations"] < a.allocations:
            raise RuntimeError(f"the largest pool {pool['id']} has {pool['range_size']} addresses, fewer than --allocations")
        team = "platform"
        member = stack.token(team, "member", "bench-allocator")

        def do_alloc(c, i):
            st, body, _ = c.request("POST", f"/api/v1/ipam/pools/{pool['id']}/allocations",
                                    {"team": team, "description": f"bench {i}"})
            if st == 201:
                return True, body["address"]
            return False, f"HTTP {st} {body.get('code') if isinstance(body, dict) else ''}"

        # Warm the member token (its argon2 check happens once per process).
        c = stack.client(member)
        st, body, _ = c.request("GET", "/api/v1/whoami")
        expect(st, body, (200,), "whoami")
        c.close()
        log(f"strata: {a.allocations} allocations from {pool['id']} ({pool['cidr']}, {pool['range_size']} in range) by {a.allocators} allocators")
        cpu0 = proc_cpu_s(stack.serve.pid)
        alloc = allocate_run(lambda: stack.client(member), do_alloc, a.allocations, a.allocators)
        cpu1 = proc_cpu_s(stack.serve.pid)
        alloc["pool"] = pool["id"]
        alloc["server_cpu_s"] = rnd(cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None, 2)
        st, after, _ = admin.request("GET", f"/api/v1/ipam/pools/{pool['id']}")
        alloc["pool_allocations_after"] = after.get("allocations") if isinstance(after, dict) else None
        alloc["pool_count_matches"] = alloc["pool_allocations_after"] == pool["allocations"] + alloc["allocated"]
        out["allocate"] = alloc

        # The machines, for the reads.
        st, body, _ = admin.request("GET", "/api/v1/machines?limit=500")
        expect(st, body, (200,), "GET /api/v1/machines")
        m = body["items"][len(body["items"]) // 2]
        path = f"/api/v1/machines/{urllib.parse.quote(m['dc'])}/{urllib.parse.quote(m['hostname'])}"
        log(f"strata: {a.gets} x GET {path}")
        c = stack.client()

        def get_one():
            st, b, _ = c.request("GET", path)
            expect(st, b, (200,), path)

        g = timed_series(get_one, a.gets, warmup=20)
        g["path"] = path
        out["get"] = g

        def walk():
            cursor, total = None, 0
            while True:
                q = "/api/v1/machines?limit=500" + (f"&cursor={urllib.parse.quote(cursor, safe='')}" if cursor else "")
                st, b, _ = c.request("GET", q)
                expect(st, b, (200,), q)
                total += len(b["items"])
                cursor = b.get("next_cursor")
                if not cursor:
                    return total

        counted = walk()
        log(f"strata: {a.list_runs} x list all {counted} machines (pages of 500)")
        lst = timed_series(walk, a.list_runs)
        lst["machines"] = counted
        lst["pages"] = -(-counted // 500)
        out["list_all"] = lst

        def page():
            st, b, _ = c.request("GET", "/api/v1/machines?limit=500")
            expect(st, b, (200,), "page of 500")

        out["list_page_500"] = timed_series(page, a.list_runs)
        c.close()
        out["fleet_machines"] = counted
        out["fleet_machines_generated"] = n_machines
        out["rss_mib"] = proc_mem(stack.serve.pid)
        out["bulk_create"] = {
            "comparable": False,
            "why": "strata has no device-create endpoint: machines come from the fleet spec in Git (a commit, then a plan and apply)",
        }
        return out
    finally:
        if stack:
            stack.stop()
            if a.keep:
                log(f"strata logs kept in {tmp}")
        db.drop()


# ---------------------------------------------------------------------------
# NetBox


def run_netbox(a, url, token):
    out = {"source": f"measured in this run against {url}"}
    hdr = {"Authorization": f"Token {token}", "Accept": "application/json"}

    def client():
        return Http(url, hdr)

    c = client()
    # The prefix.
    if a.netbox_prefix:
        st, prefix, _ = c.request("GET", f"/api/ipam/prefixes/{a.netbox_prefix}/")
        expect(st, prefix, (200,), "GET the prefix")
    else:
        st, body, _ = c.request("GET", "/api/ipam/prefixes/?family=4&limit=1000")
        expect(st, body, (200,), "GET /api/ipam/prefixes/")
        if not body["results"]:
            raise RuntimeError("NetBox has no IPv4 prefix: give --netbox-prefix")
        prefix = min(body["results"], key=lambda p: int(p["prefix"].split("/")[1]))
    made_ips = []
    made_devices = []
    try:
        def do_alloc(cl, i):
            st, body, _ = cl.request("POST", f"/api/ipam/prefixes/{prefix['id']}/available-ips/",
                                     {"description": f"strata bench {os.getpid()} {i}"})
            if st == 201:
                obj = body[0] if isinstance(body, list) else body
                made_ips.append(obj["id"])
                return True, obj["address"].split("/")[0]
            return False, f"HTTP {st}"

        log(f"netbox: {a.allocations} allocations from prefix {prefix['prefix']} by {a.allocators} allocators")
        alloc = allocate_run(client, do_alloc, a.allocations, a.allocators)
        alloc["prefix"] = prefix["prefix"]
        out["allocate"] = alloc

        st, body, _ = c.request("GET", "/api/dcim/devices/?limit=1")
        expect(st, body, (200,), "GET /api/dcim/devices/")
        if not body["results"]:
            raise RuntimeError("NetBox has no devices")
        dev = body["results"][0]
        out["devices"] = body["count"]
        path = f"/api/dcim/devices/{dev['id']}/"

        def get_one():
            st, b, _ = c.request("GET", path)
            expect(st, b, (200,), path)

        log(f"netbox: {a.gets} x GET {path}")
        out["get"] = timed_series(get_one, a.gets, warmup=20)
        out["get"]["path"] = path

        def walk():
            q, total = "/api/dcim/devices/?limit=2000", 0
            while q:
                st, b, _ = c.request("GET", q)
                expect(st, b, (200,), q)
                total += len(b["results"])
                q = b.get("next")
                if total >= 2000:
                    return total
            return total

        counted = walk()
        log(f"netbox: {a.list_runs} x list {counted} devices")
        out["list_all"] = timed_series(walk, a.list_runs, warmup=1)
        out["list_all"]["machines"] = counted

        # Bulk create: a list of devices like an existing one.
        role = dev.get("role") or dev.get("device_role")
        n = a.netbox_bulk
        batch = [{"name": f"strata-bench-{os.getpid()}-{i}", "device_type": dev["device_type"]["id"],
                  "role": role["id"], "site": dev["site"]["id"]} for i in range(n)]
        log(f"netbox: bulk create of {n} devices")
        t0 = time.perf_counter()
        st, body, _ = c.request("POST", "/api/dcim/devices/", batch)
        dt = time.perf_counter() - t0
        expect(st, body, (201,), "bulk create")
        made_devices = [d["id"] for d in body]
        out["bulk_create"] = {"devices": n, "wall_s": rnd(dt), "devices_per_s": round(n / dt, 1)}
        pids = [p for p in (a.netbox_pids or "").split(",") if p.strip()]
        if pids:
            mems = [proc_mem(p.strip()) for p in pids]
            out["rss_mib"] = {"VmRSS": round(sum(m.get("VmRSS", 0) for m in mems), 1),
                              "VmHWM": round(sum(m.get("VmHWM", 0) for m in mems), 1),
                              "pids": pids}
        else:
            out["rss_mib"] = None
            out["rss_note"] = "give --netbox-pids (the gunicorn workers) to read NetBox's RSS"
        return out
    finally:
        # Clean up what the run made.
        for kind, ids in (("ipam/ip-addresses", made_ips), ("dcim/devices", made_devices)):
            for k in range(0, len(ids), 500):
                try:
                    c.request("DELETE", f"/api/{kind}/", [{"id": i} for i in ids[k:k + 500]])
                except Exception as e:
                    log(f"netbox: could not delete {kind}: {e}")
        c.close()


# ---------------------------------------------------------------------------
# Comparison


def compare(s, nb):
    """Ratios of strata against NetBox and the issue's targets."""
    def div(x, y):
        return None if not x or not y else round(x / y, 1)

    sa, na = s["allocate"], nb["allocate"]
    nb_list = nb["list_all"].get("p50_s") or nb["list_all"].get("min_s")
    nb_rss = nb.get("rss_mib")
    nb_rss_v = None
    if isinstance(nb_rss, dict):
        nb_rss_v = nb_rss.get("VmRSS") or nb_rss.get("min")
    r = {
        "allocate_rate_x": div(sa["rate_per_s"], na["rate_per_s"]),
        "allocate_p99_netbox_over_strata_x": div(na["p99_s"], sa["p99_s"]),
        "allocate_p50_netbox_over_strata_x": div(na["p50_s"], sa["p50_s"]),
        "get_p50_x": div(nb["get"]["p50_s"], s["get"]["p50_s"]),
        "get_p99_x": div(nb["get"]["p99_s"], s["get"]["p99_s"]),
        "list_2000_x": div(nb_list, s["list_all"]["p50_s"]),
        "list_2000_note": "against NetBox's fastest recorded (1.1 s)" if "min_s" in nb["list_all"] and "p50_s" not in nb["list_all"] else "p50 against p50",
        "rss_netbox_over_strata_x": div(nb_rss_v, s["rss_mib"].get("VmHWM")),
    }
    targets = {
        "allocate_rate_10x": bool(r["allocate_rate_x"] and r["allocate_rate_x"] >= 10),
        "allocate_zero_duplicates": sa["duplicates"] == 0 and not sa["errors"],
        "allocate_p99_le_tenth": bool(sa["p99_s"] is not None and sa["p99_s"] <= na["p99_s"] / 10),
        "get_10x": bool(r["get_p50_x"] and r["get_p50_x"] >= 10),
        "list_2000_10x": bool(r["list_2000_x"] and r["list_2000_x"] >= 10),
        "rss_below_netbox": bool(nb_rss_v and s["rss_mib"].get("VmHWM", 1e9) < nb_rss_v),
    }
    return r, targets


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strata", default=os.path.join(ROOT, "target/release/strata"))
    ap.add_argument("--allocations", type=int, default=2000)
    ap.add_argument("--allocators", type=int, default=64)
    ap.add_argument("--gets", type=int, default=2000)
    ap.add_argument("--list-runs", type=int, default=20)
    ap.add_argument("--racks", type=int, default=50)
    ap.add_argument("--machines-per-rack", type=int, default=40)
    ap.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432",
                    help="the PostgreSQL server (a fresh database is made and dropped), or sqlite")
    ap.add_argument("--peer-netbox", nargs=2, metavar=("URL", "TOKEN"))
    ap.add_argument("--netbox-prefix", type=int)
    ap.add_argument("--netbox-bulk", type=int, default=100)
    ap.add_argument("--netbox-pids", help="comma-separated pids of NetBox's processes (their RSS is summed)")
    ap.add_argument("--only", choices=["strata", "netbox"])
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    a = ap.parse_args()
    if not os.access(a.strata, os.X_OK) and a.only != "netbox":
        sys.exit(f"{a.strata} is not executable: cargo build --release -p strata-cli (or --strata PATH)")
    result = {
        "machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()},
        "workload": {"allocations": a.allocations, "allocators": a.allocators, "gets": a.gets,
                     "list_runs": a.list_runs},
    }
    tmp = tempfile.mkdtemp(prefix="strata-bench-api-")
    try:
        if a.only != "netbox":
            result["strata"] = run_strata(a, tmp)
        if a.peer_netbox:
            result["netbox"] = run_netbox(a, *a.peer_netbox)
        else:
            result["netbox"] = NETBOX_RECORDED
        if "strata" in result:
            nb = result["netbox"]
            if not a.peer_netbox:
                nb = dict(NETBOX_RECORDED)
                nb["list_all"] = {"min_s": NETBOX_RECORDED["list_2000"]["min_s"]}
                nb["rss_mib"] = {"min": NETBOX_RECORDED["rss_mib"]["min"]}
            result["ratios"], result["targets_met"] = compare(result["strata"], nb)
            result["ratios"]["peer"] = ("NetBox measured in this run" if a.peer_netbox
                                        else "NetBox figures RECORDED on this machine class, not measured in this run")
        result["machine"]["load_avg_end"] = os.getloadavg()
        text = json.dumps(result, indent=2)
        print(text)
        if a.json:
            with open(a.json, "w") as f:
                f.write(text + "\n")
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
