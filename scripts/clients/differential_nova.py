#!/usr/bin/env python3
"""Differential check of two Nova compute APIs: the twin's against real Nova, or two real
Novas against each other (which must agree: that shows the comparison is fair).

    differential_nova.py --a TARGET --b TARGET [--fair TARGET] [--versions 2.1,2.53,...]
                         [--verbose]

A TARGET is one of
    twin:ENDPOINTS_JSON[#DC]  a twin's endpoints document (`strata twin --write-endpoints`
                              or `RunningTwin::write_endpoints`); the client logs in to
                              the DC's Keystone (first DC by default) and finds Nova, Glance
                              and Neutron in the token's catalog, as a client does;
    real:URL  (or a bare URL) real Nova started by scripts/nova-real.py, authenticated with
                              the headers of its Keystone stub.

With --fair the sequence also runs, in the same steps, against a third target that B
is compared with too: `--a twin:... --b real:URL1 --fair real:URL2` checks the twin
against real Nova and real Nova against another real Nova (the proof that the
comparison is fair) with one run, each target's requests sent in parallel.

The same sequence of requests runs against every target: version discovery and
microversion negotiation (with its errors), then at each microversion of --versions
flavors (extra specs, access lists), key pairs, server groups (`policies` before 2.64,
`policy`/`rules` from 2.64), servers (create, BUILD to ACTIVE, stop/start/reboot,
metadata, tags, updates, the errors; at some microversions a group member's cold
migration and resize, and an anti-affinity group filled until the scheduler finds no
host), quotas, limits, availability zones, hypervisors and services. Each pass cleans up
what it created. Both kinds of target must have four compute hosts (nova-real.py's
default, the twin region's own).

Every answer is compared after normalisation (ids the run created become names, times,
request ids, addresses, host names and each target's own URL root become placeholders):
status codes; the headers clients rely on (OpenStack-API-Version,
X-OpenStack-Nova-API-Version, Vary, Location, Content-Type); JSON bodies key by key with
their types and, for what the run created and for every error, their values (an error's
message is what a client shows). Lists of what the deployment already had (flavors,
hypervisors, services, zones) are compared by shape: the union of their elements' keys
and types. Differences that only the real harness causes (its hypervisor names and
cpu_info, its stub user ids) are normalised, never accepted silently: see normalise().

Known differences (ACCEPTED, each with its reason) are printed as `known` and do not
count, and only where a twin is compared: two real Novas must agree on everything.

Prints `ok`/`DIFF`/`known` per step and a summary per compared pair; exits 1 when there
is any difference.
"""

import argparse
import concurrent.futures
import http.client
import json
import re
import sys
import time
import urllib.parse
import uuid

DEFAULT_VERSIONS = "2.1,2.53,2.64,2.75,2.90,2.104"
# The passes that also move servers (cold migration, resize): the oldest and the
# newest shapes of the migration records and views.
MOVE_VERSIONS = (1, 64, 104)
# The pass that fills the anti-affinity group until the scheduler finds no host: the
# first, while the harness's hosts are as they started (its fake driver leaves some usage
# behind after servers moved and were deleted, which would take a host out later).
FULL_GROUP_VERSION = 1

# An RSA key to import (generated for this test, never used anywhere).
PUBLIC_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDHML+LsCLXp6Dfeyt3Eb1o2KkHihbjc3ygBwsnnOaKoDSiLEjgok"
    "waJNuLpwd/8Y8pBqa0slaga1oMpkCX1coCEEcB69r9IcFRQrIMoB9ucGVP69EuX4oDIJ/dD6VflviOj+jbdhw8c4SC"
    "9smKt7IjktwAw4DulL22R39KxpsLQW3WMOJxt2OLWeCj/RO+MZ74D4rs+Rl316uAt16ReacgRZ0dJkEDYQVu1sKNmD"
    "xquC8Khsd0Pp2SHJMz6qwjqf3njSUBnge/jJFGmbCGY7KVAxqVK8wzOCQDvHDJlMEIpSwAeC5GiQGA/MOapgh78GCh"
    "Hq6xfgwppwIIGy/NQzwD strata-differential"
)

# Differences known and accepted, by step (without its `@version`) and the start of the
# finding, with the reason. They are printed as `known`, never counted as differences;
# each is a change outside the twin's Nova that this check cannot make.
ACCEPTED = {
    ("method not allowed", ""): (
        "a method a known Nova path lacks: the twin's router (openstack/mod.rs, shared by "
        "every OpenStack service) answers axum's 405; nova's routes answer webob's 404"
    ),
    ("server right after create (BUILD)", "$.server.security_groups"): (
        "the twin allocates a server's ports when it is created, so they (and their "
        "security groups) show while nova still schedules it; tests/openstack_samples.rs "
        "lists servers it never lets build and expects their security groups"
    ),
    ("set a non-string extra spec", "$.extra_specs."): (
        "nova echoes the request's extra specs, a number as a number; the twin answers "
        "the stored text because tests/openstack_samples.rs turns the sample request's "
        "strings into numbers and expects the published sample's strings back"
    ),
}

TIME_RE = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REQ_RE = re.compile(r"req-[0-9a-f-]{36}")
IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

# Keys whose values are host names of the deployment (the harness's computes are
# `compute1`..., the twin's its region's hosts).
HOST_KEYS = {
    "host", "OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:hypervisor_hostname", "hypervisor_hostname",
    "host_name", "service_host", "source_compute", "dest_compute", "source_node", "dest_node",
    "dest_host", "compute_host",
}
# Keys whose values are random per process or per request whatever the service.
RANDOM_KEYS = {
    "adminPass": "<password>",
    "OS-EXT-SRV-ATTR:reservation_id": "<reservation>",
    "OS-EXT-SRV-ATTR:instance_name": "<instance-name>",
    "hostId": "<host-id>",
    "host_id": "<host-id>",
    "request_id": "<req>",
    "OS-EXT-IPS-MAC:mac_addr": "<mac>",
    "mac_addr": "<mac>",
    "addr": "<ip>",
}


class Target:
    """One side: how to reach its Nova and authenticate; the ids it knows by name."""

    label = "?"
    kind = "?"

    def __init__(self):
        self.names = {}  # exact string value -> placeholder
        self.hosts = set()

    def register(self, value, placeholder):
        if value:
            self.names[str(value)] = placeholder

    # -- HTTP
    def request(self, method, url, body=None, headers=None, auth=True, raw_body=None):
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        h = {"Accept": "application/json"}
        if auth:
            h.update(self.auth_headers())
        if headers:
            h.update(headers)
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        path = u.path + ("?" + u.query if u.query else "")
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        raw = r.read()
        hdrs = {}
        for k, v in r.getheaders():
            hdrs.setdefault(k.lower(), []).append(v)
        conn.close()
        text = raw.decode(errors="replace")
        try:
            parsed = json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            parsed = text
        return Answer(r.status, hdrs, parsed)

    def nova(self, method, path, mv=None, body=None, headers=None, **kw):
        h = dict(headers or {})
        if mv:
            h["OpenStack-API-Version"] = f"compute {mv}"
        return self.request(method, self.api + path, body, h, **kw)


class RealTarget(Target):
    """Real Nova from scripts/nova-real.py: its Keystone stub takes the caller from the
    X-Auth-User / X-Auth-Project-Id / X-Roles headers, and `/_strata/` says what it has."""

    def __init__(self, url, label):
        super().__init__()
        self.label = label
        self.root = url.rstrip("/")
        self.api = self.root + "/v2.1"
        info = self.request("GET", self.root + "/_strata/harness", auth=False).body
        self.project_id = info["project_id"]
        self.user_id = "admin"
        self.image = info["image"]
        self.network = info["network"]

    def auth_headers(self):
        return {"X-Auth-User": "admin", "X-Auth-Project-Id": self.project_id, "X-Roles": "admin,member,reader"}

    def create_project(self, name):
        pid = uuid.uuid4().hex
        self.request("PUT", f"{self.root}/_strata/projects/{pid}", auth=False)
        return pid


class TwinTarget(Target):
    """A twin DC: a Keystone token for its admin, the endpoints from the token's catalog."""

    def __init__(self, endpoints, dc, label):
        super().__init__()
        self.label = label
        with open(endpoints) as f:
            doc = json.load(f)
        d = next((x for x in doc["dcs"] if x["name"] == dc), None) if dc else doc["dcs"][0]
        if d is None:
            raise SystemExit(f"no DC {dc} in {endpoints}")
        o = d["openstack"]
        self.auth_url = o["auth_url"].rstrip("/")
        self.token = None
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": o["username"], "domain": {"name": "Default"}, "password": o["password"]}}},
            "scope": {"project": {"name": o["project"], "domain": {"name": "Default"}}}}}
        r = self.request("POST", self.auth_url + "/auth/tokens", body, auth=False)
        if r.status != 201:
            raise SystemExit(f"twin Keystone refused the login: {r.status} {r.body}")
        self.token = r.headers["x-subject-token"][0]
        tok = r.body["token"]
        self.project_id = tok["project"]["id"]
        self.user_id = tok["user"]["id"]

        def endpoint(kind):
            return next(e["url"] for s in tok["catalog"] if s["type"] == kind for e in s["endpoints"]
                        if e["interface"] == "public").rstrip("/")

        self.api = endpoint("compute")
        self.root = self.api[: -len("/v2.1")] if self.api.endswith("/v2.1") else self.api
        glance, neutron = endpoint("image"), endpoint("network")
        images = self.request("GET", glance + "/v2/images?name=cirros").body["images"]
        self.image = images[0]["id"]
        # The harness's Neutron fixture has a tenant network `private` with a v4 subnet;
        # give the twin's project the same.
        net = self.request("POST", neutron + "/v2.0/networks", {"network": {"name": "private"}}).body["network"]
        self.request("POST", neutron + "/v2.0/subnets", {"subnet": {
            "network_id": net["id"], "ip_version": 4, "cidr": "192.168.1.0/24", "name": "private-subnet"}})
        self.network = net["id"]

    def auth_headers(self):
        return {"X-Auth-Token": self.token} if self.token else {}

    def create_project(self, name):
        r = self.request("POST", self.auth_url + "/projects", {"project": {"name": name, "domain_id": "default"}})
        if r.status != 201:
            raise SystemExit(f"twin Keystone did not create project {name}: {r.status} {r.body}")
        return r.body["project"]["id"]


def make_target(spec, label):
    if spec.startswith("twin:"):
        path, _, dc = spec[len("twin:"):].partition("#")
        return TwinTarget(path, dc or None, label)
    if spec.startswith("real:"):
        spec = spec[len("real:"):]
    return RealTarget(spec, label)


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        v = self.headers.get(name.lower())
        return ", ".join(v) if v else None


# ---------------------------------------------------------------------------------------
# Normalisation and comparison


def normalise(value, side, key=None, parent=None):
    """The answer with what legitimately differs between deployments replaced."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            # Maps keyed by host name (an availability zone's `hosts`).
            nk = "<host>" if k in side.hosts else k
            nv = normalise(v, side, k, key)
            if nk in out and isinstance(out[nk], dict) and isinstance(nv, dict):
                # Two hosts of one zone collapse into one key: keep what both have.
                nv = {**out[nk], **nv}
                out[nk] = dict(sorted(nv.items()))
            else:
                out[nk] = nv
        return out
    if isinstance(value, list):
        out = [normalise(v, side, key, parent) for v in value]
        if key == "members":
            # A group's members are read cell by cell (server_groups.py
            # `_get_not_deleted`), in no fixed order across cells: one that found no
            # host lives in cell0.
            out = sorted(out, key=str)
        return out
    if key == "id" and parent == "keypair" and isinstance(value, int):
        # A database row id: the harness's SQLite reuses deleted ids, MySQL does not.
        return "<db-id>"
    if key in ("root_device_name", "OS-EXT-SRV-ATTR:root_device_name") and value:
        # The fake virt driver names the root disk /dev/sda; libvirt with virtio /dev/vda.
        return "<root-device>"
    if not isinstance(value, str):
        return value
    if key == "details" and value.startswith("Traceback (most recent call last):"):
        # A fault's traceback names the files of the deployment: keep the exception.
        return "<traceback> " + normalise_text(value.strip().splitlines()[-1].strip(), side)
    if value in side.names:
        return side.names[value]
    if key in RANDOM_KEYS and value:
        return RANDOM_KEYS[key]
    if key in HOST_KEYS and value:
        return "<host>"
    if IPV4_RE.match(value):
        return "<ip>"
    if MAC_RE.match(value):
        return "<mac>"
    return normalise_text(value, side)


# Messages that quote a flavor's database row id (Nova's flavor-access errors do).
FLAVOR_ROW_RE = re.compile(r"(Flavor access already exists for flavor|Flavor access not found for) \d+\b")


def normalise_text(s, side):
    if s.startswith(side.root):
        s = "<root>" + s[len(side.root):]
    for value in sorted(side.names, key=len, reverse=True):
        if value in s:
            s = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", side.names[value], s)
    for h in side.hosts:
        s = re.sub(rf"(?<![\w-]){re.escape(h)}(?![\w-])", "<host>", s)
    s = REQ_RE.sub("<req>", s)
    s = TIME_RE.sub("<time>", s)
    s = UUID_RE.sub("<uuid>", s)
    s = FLAVOR_ROW_RE.sub(r"\1 <flavor-row-id>", s)
    return s


def kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


# Objects whose keys are data (a flavor's extra specs, metadata, image properties, a
# zone's hosts): their shape is the union of their values' shapes.
DATA_MAPS = {"extra_specs", "metadata", "properties", "hosts"}


def shape(v, key=None):
    """The shape of a value: its kind, and recursively for objects and arrays (arrays: the
    union of their elements' shapes)."""
    if isinstance(v, dict) and key in DATA_MAPS:
        merged = None
        for x in v.values():
            merged = merge_shapes(merged, shape(x))
        return {"array": merged}
    if isinstance(v, dict):
        return {"object": {k: shape(x, k) for k, x in v.items()}}
    if isinstance(v, list):
        merged = None
        for e in v:
            merged = merge_shapes(merged, shape(e, key))
        return {"array": merged}
    return kind(v)


def merge_shapes(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        (k,) = a.keys()
        if k == "object":
            keys = set(a[k]) | set(b[k])
            return {"object": {x: merge_shapes(a[k].get(x), b[k].get(x)) for x in keys}}
        return {"array": merge_shapes(a[k], b[k])}
    if a == b:
        return a
    if a == "null":
        return b
    if b == "null":
        return a
    return a if isinstance(a, str) else b


def diff_shapes(path, a, b, la, lb, out):
    if a is None or b is None:
        return
    if a == "null" or b == "null":
        return
    ka = next(iter(a)) if isinstance(a, dict) else a
    kb = next(iter(b)) if isinstance(b, dict) else b
    if ka != kb:
        out.append(f"{path}: {ka} in {la}, {kb} in {lb}")
        return
    if ka == "object":
        for k in sorted(set(a["object"]) | set(b["object"])):
            if k not in b["object"]:
                out.append(f"{path}.{k}: only in {la}")
            elif k not in a["object"]:
                out.append(f"{path}.{k}: only in {lb}")
            else:
                diff_shapes(f"{path}.{k}", a["object"][k], b["object"][k], la, lb, out)
    elif ka == "array":
        diff_shapes(f"{path}[]", a["array"], b["array"], la, lb, out)


def diff_values(path, a, b, la, lb, out, ignore):
    if path in ignore:
        return
    if kind(a) != kind(b):
        out.append(f"{path}: {short(a)} in {la}, {short(b)} in {lb}")
        return
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}"
            if p in ignore:
                continue
            if k not in b:
                out.append(f"{p}: only in {la} ({short(a[k])})")
            elif k not in a:
                out.append(f"{p}: only in {lb} ({short(b[k])})")
            else:
                diff_values(p, a[k], b[k], la, lb, out, ignore)
    elif isinstance(a, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} elements in {la}, {len(b)} in {lb}: {short(a)} / {short(b)}")
            diff_shapes(path, shape(a), shape(b), la, lb, out)
            return
        for i, (x, y) in enumerate(zip(a, b)):
            diff_values(f"{path}[{i}]", x, y, la, lb, out, ignore)
    elif a != b:
        out.append(f"{path}: {short(a)} in {la}, {short(b)} in {lb}")


def short(v):
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= 240 else s[:240] + "..."


class Diff:
    """The comparisons of one run: each pair of targets compared, answer by answer."""

    HEADERS = ("openstack-api-version", "x-openstack-nova-api-version", "vary", "location", "content-type")

    def __init__(self, targets, verbose=False):
        self.targets = targets
        # The first target against the second, and when there is a third (`--fair`),
        # the second against the third.
        self.pairs = [(0, 1)] + ([(1, 2)] if len(targets) > 2 else [])
        self.verbose = verbose
        self.problems = {p: [] for p in self.pairs}
        self.known = {p: [] for p in self.pairs}
        self.steps = 0

    def name(self, pair):
        i, j = pair
        return f"{self.targets[i].label} vs {self.targets[j].label}"

    def record(self, pair, step, found):
        """File one pair's findings for a step: accepted ones (only where a twin is
        compared) as known, the rest as differences; print the step's line."""
        a, b = (self.targets[k] for k in pair)
        base = re.sub(r" @2\.\d+$", "", step)
        known = [f for f in found if any(base == s and f.startswith(p) for (s, p) in ACCEPTED)]
        if "twin" not in (a.kind, b.kind):
            known = []
        found = [f for f in found if f not in known]
        tag = f" [{self.name(pair)}]" if len(self.pairs) > 1 else ""
        if known:
            self.known[pair].append((step, known))
            print(f"known {step}{tag}")
            for f in known:
                print(f"     {f}")
        if found:
            self.problems[pair].append((step, found))
            print(f"DIFF {step}{tag}")
            for f in found:
                print(f"     {f}")
        return found

    def check(self, step, rs, mode="values", ignore=(), headers=HEADERS, expect=None):
        """Compare the answers of the targets. mode: `values` (normalised values) or
        `shape` (keys and types only: what the deployments had before the run); errors
        are always compared by value. `expect`: the status the sequence needs (a create
        that later steps use); any other, even everywhere, is a difference (the run
        would compare nothing)."""
        self.steps += 1
        clean = True
        for pair in self.pairs:
            i, j = pair
            a, b = self.targets[i], self.targets[j]
            ra, rb = rs[i], rs[j]
            la, lb = a.label, b.label
            found = []
            for label, r in ((la, ra), (lb, rb)):
                if expect is not None and r.status != expect:
                    found.append(f"status {r.status} from {label}, the sequence needs {expect}: {short(r.body)}")
            if ra.status != rb.status:
                found.append(f"status {ra.status} from {la}, {rb.status} from {lb}")
            for h in headers:
                va, vb = header_value(ra, h, a), header_value(rb, h, b)
                if va != vb:
                    found.append(f"header {h}: {va!r} from {la}, {vb!r} from {lb}")
            na, nb = normalise(ra.body, a), normalise(rb.body, b)
            if kind(na) != kind(nb):
                found.append(f"body: {short(na)} from {la}, {short(nb)} from {lb}")
            elif isinstance(na, (dict, list)):
                is_error = ra.status >= 400 or rb.status >= 400
                if mode == "values" or is_error:
                    diff_values("$", na, nb, la, lb, found, set(ignore))
                elif mode == "shape":
                    diff_shapes("$", shape(na), shape(nb), la, lb, found)
            elif na != nb and mode == "values":
                found.append(f"body: {short(na)} from {la}, {short(nb)} from {lb}")
            if self.record(pair, step, found):
                clean = False
                if self.verbose:
                    print(f"     {la}: {ra.status} {short(na)}")
                    print(f"     {lb}: {rb.status} {short(nb)}")
        if clean:
            print(f"ok   {step}")

    def same(self, step, values):
        """Compare values the run derived itself, one per target (e.g. whether two
        servers share a host)."""
        self.steps += 1
        clean = True
        for pair in self.pairs:
            i, j = pair
            if values[i] != values[j]:
                found = [f"{values[i]!r} from {self.targets[i].label}, {values[j]!r} from {self.targets[j].label}"]
                if self.record(pair, step, found):
                    clean = False
        if clean:
            print(f"ok   {step}")


def header_value(ans, name, side):
    values = ans.headers.get(name)
    if not values:
        return None
    if name == "vary":
        # One header with a list or several headers: the same to a cache.
        return sorted({p.strip() for v in values for p in v.split(",") if p.strip()})
    if name == "location":
        return normalise_text(values[0], side)
    if name == "content-type":
        return values[0].replace(" ", "").lower()
    return ", ".join(values)


# ---------------------------------------------------------------------------------------
# The sequence


class Run:
    def __init__(self, targets, diff):
        self.targets, self.d = targets, diff
        self.pool = concurrent.futures.ThreadPoolExecutor(len(targets))

    def both(self, fn):
        """Call fn(target) on every target at once; returns their answers in order."""
        futures = [self.pool.submit(fn, t) for t in self.targets]
        return [f.result() for f in futures]

    def nova(self, step, method, path, mv=None, body=None, mode="values", ignore=(), headers=None, expect=None, **kw):
        """The same request everywhere (path and body may be functions of the target)."""

        def call(s):
            p = path(s) if callable(path) else path
            bd = body(s) if callable(body) else body
            return s.nova(method, p, mv, bd, headers, **kw)

        rs = self.both(call)
        self.d.check(step, rs, mode=mode, ignore=ignore, expect=expect)
        return rs

    def wait(self, what, fn, until, timeout=60):
        """Poll fn(target) everywhere until until(answer) holds; returns the last answers."""

        def poll(s):
            deadline = time.monotonic() + timeout
            while True:
                r = fn(s)
                if until(r) or time.monotonic() > deadline:
                    return r
                time.sleep(0.25)

        return self.both(poll)


def status_of(r):
    return (r.body or {}).get("server", {}).get("status") if isinstance(r.body, dict) else None


def run(targets, versions, verbose):
    d = Diff(targets, verbose)
    x = Run(targets, d)
    for s in targets:
        s.register(s.project_id, "<project>")
        s.register(s.user_id, "<user>")
        s.register(s.image, "<image>")
        s.register(s.network, "<network>")
        s.other_project = s.create_project("strata-diff-other")
        s.register(s.other_project, "<other-project>")
    discovery(x)
    for s in targets:
        inv = s.nova("GET", "/os-hypervisors/detail", "2.53").body.get("hypervisors", [])
        svc = s.nova("GET", "/os-services", "2.53").body.get("services", [])
        s.hosts = {h["hypervisor_hostname"] for h in inv} | {h["service"]["host"] for h in inv} | {v["host"] for v in svc}
        for h in s.hosts:
            s.names[h] = "<host>"
    for v in versions:
        one_version(x, v)
    return d


def discovery(x):
    def root(s, path, **kw):
        return s.request("GET", s.root + path, auth=False, **kw)

    rs = x.both(lambda s: root(s, "/"))
    x.d.check("GET / (versions)", rs)
    for path in ("/v2.1/", "/v2.1", "/v2/"):
        rs = x.both(lambda s: s.request("GET", s.root + path))
        x.d.check(f"GET {path} (version document)", rs)
    cases = [
        ("no microversion header", {}),
        ("OpenStack-API-Version 2.53", {"OpenStack-API-Version": "compute 2.53"}),
        ("X-OpenStack-Nova-API-Version 2.60", {"X-OpenStack-Nova-API-Version": "2.60"}),
        ("both headers (the new one wins)", {"OpenStack-API-Version": "compute 2.70", "X-OpenStack-Nova-API-Version": "2.5"}),
        ("latest", {"OpenStack-API-Version": "compute latest"}),
        ("another service's microversion only", {"OpenStack-API-Version": "volume 3.5"}),
        ("two services", {"OpenStack-API-Version": "volume 3.5, compute 2.12"}),
        ("service name in capitals", {"OpenStack-API-Version": "COMPUTE 2.3"}),
        ("too high", {"OpenStack-API-Version": "compute 2.999"}),
        ("major 3", {"OpenStack-API-Version": "compute 3.0"}),
        ("2.0", {"OpenStack-API-Version": "compute 2.0"}),
        ("not a version", {"OpenStack-API-Version": "compute foo"}),
        ("three parts", {"OpenStack-API-Version": "compute 2.1.1"}),
        ("legacy header too high", {"X-OpenStack-Nova-API-Version": "2.1000"}),
        ("legacy header not a version", {"X-OpenStack-Nova-API-Version": "two"}),
    ]
    for name, headers in cases:
        rs = x.both(lambda s: s.request("GET", s.api + "/flavors", headers=headers))
        x.d.check(f"microversion: {name}", rs, mode="shape")
    # (No request without credentials: the harness's Keystone stub needs its headers and
    # answers 500 without them, where keystonemiddleware answers 401.)
    rs = x.both(lambda s: s.nova("GET", "/no-such-resource", "2.1"))
    x.d.check("unknown path", rs)
    rs = x.both(lambda s: s.nova("PATCH", "/flavors", "2.1"))
    x.d.check("method not allowed", rs)


def one_version(x, mv):
    minor = int(mv.split(".")[1])
    tag = mv.replace(".", "_")
    d = x.d
    print(f"---- microversion {mv}")

    def at(step):
        return f"{step} @{mv}"

    # ---------------- flavors
    fid, fname = f"diff-{tag}", f"diff-flavor-{tag}"
    for s in x.targets:
        s.register(fid, f"<flavor-{tag}>")
    body = {"flavor": {"name": fname, "ram": 512, "vcpus": 1, "disk": 1, "id": fid}}
    if minor >= 55:
        body["flavor"]["description"] = "differential"
    x.nova(at("create flavor"), "POST", "/flavors", mv, body, expect=200)
    big = f"diff-big-{tag}"
    for s in x.targets:
        s.register(big, f"<big-flavor-{tag}>")
    if minor in MOVE_VERSIONS:
        x.nova(at("create a bigger flavor"), "POST", "/flavors", mv,
               {"flavor": {"name": big, "ram": 1024, "vcpus": 2, "disk": 1, "id": big}}, expect=200)
    x.nova(at("create a duplicate flavor"), "POST", "/flavors", mv, body)
    x.nova(at("create a flavor with a negative ram"), "POST", "/flavors", mv,
           {"flavor": {"name": fname + "-bad", "ram": -1, "vcpus": 1, "disk": 1}})
    x.nova(at("create a flavor without vcpus"), "POST", "/flavors", mv,
           {"flavor": {"name": fname + "-bad", "ram": 512, "disk": 1}})
    x.nova(at("create a flavor with a bad name"), "POST", "/flavors", mv,
           {"flavor": {"name": " ", "ram": 512, "vcpus": 1, "disk": 1}})
    x.nova(at("show flavor"), "GET", f"/flavors/{fid}", mv)
    x.nova(at("show a missing flavor"), "GET", "/flavors/no-such-flavor", mv)
    x.nova(at("list flavors"), "GET", "/flavors", mv, mode="shape")
    x.nova(at("list flavors in detail"), "GET", "/flavors/detail", mv, mode="shape")
    x.nova(at("list flavors, limit 2"), "GET", "/flavors?limit=2", mv, mode="shape")
    x.nova(at("list flavors, bad limit"), "GET", "/flavors?limit=-3", mv)
    x.nova(at("list flavors, missing marker"), "GET", "/flavors?marker=no-such-flavor", mv)
    if minor >= 55:
        x.nova(at("update flavor description"), "PUT", f"/flavors/{fid}", mv, {"flavor": {"description": "changed"}})
        x.nova(at("update flavor name (not allowed)"), "PUT", f"/flavors/{fid}", mv, {"flavor": {"name": "x"}})
    else:
        x.nova(at("update flavor (before 2.55)"), "PUT", f"/flavors/{fid}", mv, {"flavor": {"description": "changed"}})
    x.nova(at("flavor access of a public flavor"), "GET", f"/flavors/{fid}/os-flavor-access", mv)
    x.nova(at("add access to a public flavor"), "POST", f"/flavors/{fid}/action", mv,
           lambda s: {"addTenantAccess": {"tenant": s.other_project}})
    # (Before 2.7 that is accepted; take it back so that nothing outlives the flavor.)
    x.nova(at("remove access from a public flavor"), "POST", f"/flavors/{fid}/action", mv,
           lambda s: {"removeTenantAccess": {"tenant": s.other_project}})
    x.nova(at("set extra specs"), "POST", f"/flavors/{fid}/os-extra_specs", mv, {"extra_specs": {"strata:tier": "gold"}})

    pid, pname = f"diff-private-{tag}", f"diff-private-flavor-{tag}"
    for s in x.targets:
        s.register(pid, f"<private-flavor-{tag}>")
    x.nova(at("create a private flavor"), "POST", "/flavors", mv,
           {"flavor": {"name": pname, "ram": 256, "vcpus": 1, "disk": 0, "id": pid, "os-flavor-access:is_public": False}},
           expect=200)
    specs = f"/flavors/{pid}/os-extra_specs"
    x.nova(at("set extra specs on the private flavor"), "POST", specs, mv,
           {"extra_specs": {"hw:cpu_policy": "dedicated", "strata:tier": "gold"}})
    x.nova(at("set an invalid extra spec value"), "POST", specs, mv, {"extra_specs": {"hw:cpu_policy": "sideways"}})
    x.nova(at("set an unknown extra spec in a nova namespace"), "POST", specs, mv, {"extra_specs": {"hw:no_such_thing": "1"}})
    x.nova(at("set a non-string extra spec"), "POST", specs, mv, {"extra_specs": {"strata:n": 1}})
    x.nova(at("list extra specs"), "GET", specs, mv)
    x.nova(at("show an extra spec"), "GET", f"{specs}/strata:tier", mv)
    x.nova(at("show a missing extra spec"), "GET", f"{specs}/strata:none", mv)
    x.nova(at("update an extra spec"), "PUT", f"{specs}/strata:tier", mv, {"strata:tier": "silver"})
    x.nova(at("update an extra spec, key mismatch"), "PUT", f"{specs}/strata:tier", mv, {"strata:other": "x"})
    x.nova(at("delete an extra spec"), "DELETE", f"{specs}/strata:tier", mv)
    x.nova(at("delete a missing extra spec"), "DELETE", f"{specs}/strata:tier", mv)
    x.nova(at("private flavor access (empty)"), "GET", f"/flavors/{pid}/os-flavor-access", mv)
    x.nova(at("add access"), "POST", f"/flavors/{pid}/action", mv, lambda s: {"addTenantAccess": {"tenant": s.other_project}})
    x.nova(at("add access again"), "POST", f"/flavors/{pid}/action", mv, lambda s: {"addTenantAccess": {"tenant": s.other_project}})
    x.nova(at("add access for a project that does not exist"), "POST", f"/flavors/{pid}/action", mv,
           {"addTenantAccess": {"tenant": "no-such-project"}})
    x.nova(at("add access without a tenant"), "POST", f"/flavors/{pid}/action", mv, {"addTenantAccess": {}})
    x.nova(at("flavor access list"), "GET", f"/flavors/{pid}/os-flavor-access", mv)
    x.nova(at("list private flavors"), "GET", "/flavors?is_public=false", mv)
    x.nova(at("remove access"), "POST", f"/flavors/{pid}/action", mv, lambda s: {"removeTenantAccess": {"tenant": s.other_project}})
    x.nova(at("remove access again"), "POST", f"/flavors/{pid}/action", mv, lambda s: {"removeTenantAccess": {"tenant": s.other_project}})
    x.nova(at("unknown flavor action"), "POST", f"/flavors/{pid}/action", mv, {"frobnicate": {}})
    x.nova(at("delete the private flavor"), "DELETE", f"/flavors/{pid}", mv)
    x.nova(at("delete the private flavor again"), "DELETE", f"/flavors/{pid}", mv)

    # ---------------- key pairs
    kp = f"diff-kp-{tag}"
    body = {"keypair": {"name": kp, "public_key": PUBLIC_KEY}}
    if minor >= 2:
        body["keypair"]["type"] = "ssh"
    x.nova(at("import key pair"), "POST", "/os-keypairs", mv, body, expect=201 if minor >= 2 else 200)
    x.nova(at("import a duplicate key pair"), "POST", "/os-keypairs", mv, body)
    x.nova(at("import a malformed public key"), "POST", "/os-keypairs", mv,
           {"keypair": {"name": kp + "-bad", "public_key": "ssh-rsa not-base64"}})
    x.nova(at("key pair with a bad name"), "POST", "/os-keypairs", mv,
           {"keypair": {"name": "bad/name", "public_key": PUBLIC_KEY}})
    gen = f"diff-gen-{tag}"
    rs = x.nova(at("generate key pair"), "POST", "/os-keypairs", mv, {"keypair": {"name": gen}},
                    ignore=("$.keypair.private_key", "$.keypair.public_key", "$.keypair.fingerprint"))
    x.nova(at("list key pairs"), "GET", "/os-keypairs", mv,
           ignore=("$.keypairs[0].keypair.public_key", "$.keypairs[0].keypair.fingerprint",
                   "$.keypairs[1].keypair.public_key", "$.keypairs[1].keypair.fingerprint"))
    x.nova(at("show key pair"), "GET", f"/os-keypairs/{kp}", mv)
    x.nova(at("show a missing key pair"), "GET", "/os-keypairs/no-such-key", mv)
    if all(r.status < 300 for r in rs):
        x.nova(at("delete generated key pair"), "DELETE", f"/os-keypairs/{gen}", mv)

    # ---------------- server groups
    grp = f"diff-group-{tag}"

    def group_body(policy, rules=None):
        if minor >= 64:
            g = {"name": grp, "policy": policy}
            if rules is not None:
                g["rules"] = rules
        else:
            g = {"name": grp, "policies": [policy]}
        return {"server_group": g}

    rs = x.nova(at("create anti-affinity group"), "POST", "/os-server-groups", mv,
                    group_body("anti-affinity", {"max_server_per_host": 1} if minor >= 64 else None), expect=200)
    for s, r in zip(x.targets, rs):
        s.group = (r.body or {}).get("server_group", {}).get("id")
        s.register(s.group, f"<group-{tag}>")
    if minor >= 64:
        x.nova(at("group with the old `policies`"), "POST", "/os-server-groups", mv,
               {"server_group": {"name": grp, "policies": ["affinity"]}})
        x.nova(at("affinity group with rules"), "POST", "/os-server-groups", mv,
               group_body("affinity", {"max_server_per_host": 2}))
        x.nova(at("group with a bad max_server_per_host"), "POST", "/os-server-groups", mv,
               group_body("anti-affinity", {"max_server_per_host": 0}))
    else:
        x.nova(at("group with the new `policy`"), "POST", "/os-server-groups", mv,
               {"server_group": {"name": grp, "policy": "affinity"}})
        x.nova(at("group with two policies"), "POST", "/os-server-groups", mv,
               {"server_group": {"name": grp, "policies": ["affinity", "anti-affinity"]}})
    x.nova(at("group with an unknown policy"), "POST", "/os-server-groups", mv, group_body("sideways"))
    rs = x.nova(at("create soft-affinity group"), "POST", "/os-server-groups", mv, group_body("soft-affinity"),
                    expect=200 if minor >= 15 else 400)
    for s, r in zip(x.targets, rs):
        s.soft_group = (r.body or {}).get("server_group", {}).get("id")
        s.register(s.soft_group, f"<soft-group-{tag}>")
    x.nova(at("show group"), "GET", lambda s: f"/os-server-groups/{s.group}", mv)
    x.nova(at("list groups"), "GET", "/os-server-groups", mv)
    x.nova(at("show a missing group"), "GET", f"/os-server-groups/{uuid.uuid4()}", mv)

    # ---------------- servers
    def server_body(name, group=None, **extra):
        srv = {"name": name, "flavorRef": fid, "imageRef": None}
        srv.update(extra)
        out = {"server": srv}
        if group:
            out["os:scheduler_hints"] = {"group": group}
        return out

    def boot(s, name, group=None, **extra):
        body = server_body(name, group, **extra)
        body["server"]["imageRef"] = s.image
        if minor >= 37:
            body["server"].setdefault("networks", [{"uuid": s.network}])
        else:
            body["server"]["networks"] = [{"uuid": s.network}]
        return s.nova("POST", "/servers", mv, body)

    name1 = f"diff-server-{tag}"
    rs = x.both(lambda s: boot(s, name1, s.group, key_name=kp, metadata={"role": "web"}))
    for s, r in zip(x.targets, rs):
        s.server = (r.body or {}).get("server", {}).get("id")
        s.register(s.server, f"<server-{tag}>")
    d.check(at("create server"), rs, expect=202)
    rs = x.both(lambda s: s.nova("GET", f"/servers/{s.server}", mv))
    d.check(at("server right after create (BUILD)"), rs,
            # (What moves while nova schedules and spawns; the rest is what a client sees
            # of a server still with the scheduler: no host, no zone, no addresses.)
            ignore=("$.server.OS-EXT-STS:task_state", "$.server.OS-EXT-STS:power_state", "$.server.updated"))
    rs = x.wait("server ACTIVE", lambda s: s.nova("GET", f"/servers/{s.server}", mv),
                    lambda r: status_of(r) in ("ACTIVE", "ERROR"))
    d.check(at("server once built"), rs)
    hosts = [(r.body or {}).get("server", {}).get("OS-EXT-SRV-ATTR:host") for r in rs]

    name2 = f"diff-server2-{tag}"
    rs = x.both(lambda s: boot(s, name2, s.group))
    for s, r in zip(x.targets, rs):
        s.server2 = (r.body or {}).get("server", {}).get("id")
        s.register(s.server2, f"<server2-{tag}>")
    d.check(at("create a second member of the anti-affinity group"), rs, expect=202)
    rs2 = x.wait("server2 ACTIVE", lambda s: s.nova("GET", f"/servers/{s.server2}", mv),
                      lambda r: status_of(r) in ("ACTIVE", "ERROR"))
    d.check(at("second member once built"), rs2)
    hosts2 = [(r.body or {}).get("server", {}).get("OS-EXT-SRV-ATTR:host") for r in rs2]
    d.same(at("anti-affinity members on different hosts"), [h != h2 for h, h2 in zip(hosts, hosts2)])
    x.nova(at("group with members"), "GET", lambda s: f"/os-server-groups/{s.group}", mv)

    # errors on create
    x.nova(at("create server, missing flavor"), "POST", "/servers", mv,
           lambda s: {"server": {"name": "x", "imageRef": s.image, "flavorRef": "no-such-flavor", "networks": [{"uuid": s.network}]}})
    x.nova(at("create server, missing image"), "POST", "/servers", mv,
           lambda s: {"server": {"name": "x", "imageRef": str(uuid.UUID(int=7)), "flavorRef": fid, "networks": [{"uuid": s.network}]}})
    x.nova(at("create server without a name"), "POST", "/servers", mv,
           lambda s: {"server": {"imageRef": s.image, "flavorRef": fid}})
    x.nova(at("create server, name not a string"), "POST", "/servers", mv,
           lambda s: {"server": {"name": 5, "imageRef": s.image, "flavorRef": fid}})
    x.nova(at("create server, unknown key pair"), "POST", "/servers", mv,
           lambda s: {"server": {"name": "x", "imageRef": s.image, "flavorRef": fid, "key_name": "no-such-key", "networks": [{"uuid": s.network}]}})
    x.nova(at("create server, unknown group"), "POST", "/servers", mv,
           lambda s: {"server": {"name": "x", "imageRef": s.image, "flavorRef": fid, "networks": [{"uuid": s.network}]},
                      "os:scheduler_hints": {"group": str(uuid.UUID(int=9))}})
    x.nova(at("create server, no body"), "POST", "/servers", mv, {})

    # reads
    x.nova(at("show server"), "GET", lambda s: f"/servers/{s.server}", mv)
    x.nova(at("list servers"), "GET", "/servers", mv)
    x.nova(at("list servers in detail"), "GET", "/servers/detail", mv)
    x.nova(at("list servers by name"), "GET", f"/servers/detail?name={name2}", mv)
    x.nova(at("list servers, limit 1"), "GET", "/servers?limit=1", mv)
    x.nova(at("list servers, bad status filter"), "GET", "/servers?status=sideways", mv)
    x.nova(at("show a missing server"), "GET", f"/servers/{uuid.UUID(int=11)}", mv)
    x.nova(at("server addresses"), "GET", lambda s: f"/servers/{s.server}/ips", mv)
    x.nova(at("instance actions"), "GET", lambda s: f"/servers/{s.server}/os-instance-actions", mv)

    # update
    upd = {"server": {"name": name1 + "-renamed"}}
    if minor >= 19:
        upd["server"]["description"] = "described"
    x.nova(at("rename server"), "PUT", lambda s: f"/servers/{s.server}", mv, upd)
    x.nova(at("update server, bad field"), "PUT", lambda s: f"/servers/{s.server}", mv, {"server": {"flavorRef": "1"}})

    # metadata
    x.nova(at("replace metadata"), "PUT", lambda s: f"/servers/{s.server}/metadata", mv, {"metadata": {"a": "1", "b": "2"}})
    x.nova(at("merge metadata"), "POST", lambda s: f"/servers/{s.server}/metadata", mv, {"metadata": {"c": "3"}})
    x.nova(at("list metadata"), "GET", lambda s: f"/servers/{s.server}/metadata", mv)
    x.nova(at("show a metadata item"), "GET", lambda s: f"/servers/{s.server}/metadata/a", mv)
    x.nova(at("show a missing metadata item"), "GET", lambda s: f"/servers/{s.server}/metadata/zz", mv)
    x.nova(at("set a metadata item"), "PUT", lambda s: f"/servers/{s.server}/metadata/d", mv, {"meta": {"d": "4"}})
    x.nova(at("set a metadata item, key mismatch"), "PUT", lambda s: f"/servers/{s.server}/metadata/d", mv, {"meta": {"e": "4"}})
    x.nova(at("set metadata, value not a string"), "POST", lambda s: f"/servers/{s.server}/metadata", mv, {"metadata": {"f": 1}})
    x.nova(at("delete a metadata item"), "DELETE", lambda s: f"/servers/{s.server}/metadata/a", mv)
    x.nova(at("delete a missing metadata item"), "DELETE", lambda s: f"/servers/{s.server}/metadata/a", mv)

    # tags
    if minor >= 26:
        x.nova(at("add a tag"), "PUT", lambda s: f"/servers/{s.server}/tags/blue", mv)
        x.nova(at("add the tag again"), "PUT", lambda s: f"/servers/{s.server}/tags/blue", mv)
        x.nova(at("replace tags"), "PUT", lambda s: f"/servers/{s.server}/tags", mv, {"tags": ["red", "green"]})
        x.nova(at("list tags"), "GET", lambda s: f"/servers/{s.server}/tags", mv)
        x.nova(at("check a tag"), "GET", lambda s: f"/servers/{s.server}/tags/red", mv)
        x.nova(at("check a missing tag"), "GET", lambda s: f"/servers/{s.server}/tags/blue", mv)
        x.nova(at("a tag with a comma"), "PUT", lambda s: f"/servers/{s.server}/tags/a,b", mv)
        x.nova(at("replace tags, not a list"), "PUT", lambda s: f"/servers/{s.server}/tags", mv, {"tags": "red"})
        x.nova(at("list servers by tag"), "GET", "/servers?tags=red", mv)
        x.nova(at("delete a tag"), "DELETE", lambda s: f"/servers/{s.server}/tags/red", mv)
        x.nova(at("delete a missing tag"), "DELETE", lambda s: f"/servers/{s.server}/tags/red", mv)
        x.nova(at("delete all tags"), "DELETE", lambda s: f"/servers/{s.server}/tags", mv)
    else:
        x.nova(at("tags before 2.26"), "GET", lambda s: f"/servers/{s.server}/tags", mv)

    # actions
    def act(step, action, want=None):
        x.nova(at(step), "POST", lambda s: f"/servers/{s.server}/action", mv, action)
        if want:
            rs = x.wait(want, lambda s: s.nova("GET", f"/servers/{s.server}", mv),
                            lambda r: status_of(r) in (want, "ERROR"))
            d.check(at(f"{step}: server {want}"), rs, ignore=("$.server.OS-EXT-STS:task_state",))

    act("stop", {"os-stop": None}, "SHUTOFF")
    act("stop a stopped server", {"os-stop": None})
    act("start", {"os-start": None}, "ACTIVE")
    act("start an active server", {"os-start": None})
    act("soft reboot", {"reboot": {"type": "SOFT"}}, "ACTIVE")
    act("hard reboot", {"reboot": {"type": "HARD"}}, "ACTIVE")
    act("reboot, bad type", {"reboot": {"type": "GENTLE"}})
    act("reboot without a type", {"reboot": {}})
    act("unknown action", {"os-frobnicate": None})
    act("action body not an object", ["os-stop"])
    x.nova(at("instance actions after the actions"), "GET", lambda s: f"/servers/{s.server}/os-instance-actions", mv)

    # ---------------- group-aware cold migration and resize
    if minor in MOVE_VERSIONS:
        def host_of(r):
            return (r.body or {}).get("server", {}).get("OS-EXT-SRV-ATTR:host")

        def moved(step, action, want):
            x.nova(at(step), "POST", lambda s: f"/servers/{s.server}/action", mv, action)
            rs = x.wait(want, lambda s: s.nova("GET", f"/servers/{s.server}", mv),
                            lambda r: status_of(r) in (want, "ERROR", "ACTIVE") and not
                            (r.body["server"].get("OS-EXT-STS:task_state")))
            d.check(at(f"{step}: server {want}"), rs, ignore=("$.server.OS-EXT-STS:task_state",))
            return [host_of(r) for r in rs]

        before = [host_of(r) for r in x.both(lambda s: s.nova("GET", f"/servers/{s.server}", mv))]
        after = moved("cold migrate a group member", {"migrate": None}, "VERIFY_RESIZE")
        d.same(at("cold migration moved the server"), [b != a for b, a in zip(before, after)])
        d.same(at("cold migration kept the anti-affinity"), [a != h2 for a, h2 in zip(after, hosts2)])
        x.nova(at("migrations of the server"), "GET", lambda s: f"/servers/{s.server}/migrations", mv)
        x.nova(at("confirm the migration"), "POST", lambda s: f"/servers/{s.server}/action", mv, {"confirmResize": None})
        rs = x.wait("ACTIVE", lambda s: s.nova("GET", f"/servers/{s.server}", mv),
                        lambda r: status_of(r) in ("ACTIVE", "ERROR"))
        d.check(at("after confirming the migration"), rs, ignore=("$.server.OS-EXT-STS:task_state",))
        x.nova(at("resize to the same flavor"), "POST", lambda s: f"/servers/{s.server}/action", mv,
               {"resize": {"flavorRef": fid}})
        x.nova(at("resize to a missing flavor"), "POST", lambda s: f"/servers/{s.server}/action", mv,
               {"resize": {"flavorRef": "no-such-flavor"}})
        before = after
        after = moved("resize a group member", {"resize": {"flavorRef": big}}, "VERIFY_RESIZE")
        d.same(at("resize moved the server"), [b != a for b, a in zip(before, after)])
        d.same(at("resize kept the anti-affinity"), [a != h2 for a, h2 in zip(after, hosts2)])
        x.nova(at("revert the resize"), "POST", lambda s: f"/servers/{s.server}/action", mv, {"revertResize": None})
        rs = x.wait("ACTIVE", lambda s: s.nova("GET", f"/servers/{s.server}", mv),
                        lambda r: status_of(r) in ("ACTIVE", "ERROR") and not r.body["server"].get("OS-EXT-STS:task_state"))
        d.check(at("after reverting the resize"), rs, ignore=("$.server.OS-EXT-STS:task_state",))
        reverted = [host_of(r) for r in rs]
        d.same(at("revert went back to the source"), [r == b for r, b in zip(reverted, before)])
        x.nova(at("instance actions after the moves"), "GET", lambda s: f"/servers/{s.server}/os-instance-actions", mv)

    # ---------------- quotas, limits
    qpath = lambda s: f"/os-quota-sets/{s.project_id}"  # noqa: E731
    x.nova(at("quota set"), "GET", qpath, mv)
    x.nova(at("quota set in detail"), "GET", lambda s: f"/os-quota-sets/{s.project_id}/detail", mv)
    x.nova(at("quota defaults"), "GET", lambda s: f"/os-quota-sets/{s.project_id}/defaults", mv)
    x.nova(at("quota set of another project"), "GET", lambda s: f"/os-quota-sets/{s.other_project}", mv)
    x.nova(at("quota set of a project that does not exist"), "GET", "/os-quota-sets/no-such-project", mv)
    x.nova(at("update another project's quotas"), "PUT", lambda s: f"/os-quota-sets/{s.other_project}", mv,
           {"quota_set": {"instances": 20, "cores": 40}})
    x.nova(at("update quotas, bad value"), "PUT", lambda s: f"/os-quota-sets/{s.other_project}", mv,
           {"quota_set": {"instances": "many"}})
    x.nova(at("update quotas, unknown key"), "PUT", lambda s: f"/os-quota-sets/{s.other_project}", mv,
           {"quota_set": {"gpus": 1}})
    x.nova(at("update quotas below usage"), "PUT", qpath, mv, {"quota_set": {"instances": 1}})
    x.nova(at("update quotas to the usage"), "PUT", qpath, mv, {"quota_set": {"instances": 2}})
    x.nova(at("boot over the quota"), "POST", "/servers", mv,
           lambda s: {"server": {"name": "x", "imageRef": s.image, "flavorRef": fid, "networks": [{"uuid": s.network}]}})
    x.nova(at("revert own quotas"), "DELETE", qpath, mv)
    x.nova(at("revert another project's quotas"), "DELETE", lambda s: f"/os-quota-sets/{s.other_project}", mv)
    x.nova(at("limits"), "GET", "/limits", mv)
    x.nova(at("limits of another project"), "GET", lambda s: f"/limits?tenant_id={s.other_project}", mv)

    # ---------------- availability zones, hypervisors, services
    x.nova(at("availability zones"), "GET", "/os-availability-zone", mv)
    x.nova(at("availability zones in detail"), "GET", "/os-availability-zone/detail", mv, mode="shape")
    x.nova(at("hypervisors"), "GET", "/os-hypervisors", mv, mode="shape")
    rs = x.nova(at("hypervisors in detail"), "GET", "/os-hypervisors/detail", mv, mode="shape")
    for s, r in zip(x.targets, rs):
        hyps = (r.body or {}).get("hypervisors") or [{}]
        s.hyp = hyps[0].get("id")
        s.hyp_name = hyps[0].get("hypervisor_hostname")
    x.nova(at("show a hypervisor"), "GET", lambda s: f"/os-hypervisors/{s.hyp}", mv, mode="shape")
    x.nova(at("show a missing hypervisor"), "GET", "/os-hypervisors/99999" if minor < 53 else f"/os-hypervisors/{uuid.UUID(int=13)}", mv)
    x.nova(at("hypervisor statistics"), "GET", "/os-hypervisors/statistics", mv, mode="shape")
    # (No uptime: the fake virt driver does not implement it, so the harness answers 501.)
    if minor < 53:
        x.nova(at("hypervisor search"), "GET", lambda s: f"/os-hypervisors/{s.hyp_name}/search", mv, mode="shape")
    else:
        x.nova(at("hypervisors by hostname pattern"), "GET", lambda s: f"/os-hypervisors?hypervisor_hostname_pattern={s.hyp_name}", mv, mode="shape")
    x.nova(at("services"), "GET", "/os-services", mv, mode="shape")
    x.nova(at("compute services"), "GET", "/os-services?binary=nova-compute", mv, mode="shape")
    x.nova(at("services, bad filter"), "GET", "/os-services?binary=nova-frobnicator", mv, mode="shape")

    # ---------------- an unsatisfiable group (both deployments have four compute hosts)
    if minor == FULL_GROUP_VERSION:
        for n in (3, 4, 5):
            rs = x.both(lambda s: boot(s, f"diff-member{n}-{tag}", s.group))
            for s, r in zip(x.targets, rs):
                s.member = (r.body or {}).get("server", {}).get("id")
                s.register(s.member, f"<member{n}-{tag}>")
            d.check(at(f"create member {n} of the anti-affinity group"), rs, expect=202)
            rs = x.wait(f"member {n} built", lambda s: s.nova("GET", f"/servers/{s.member}", mv),
                            lambda r: status_of(r) in ("ACTIVE", "ERROR"))
            d.check(at(f"member {n} once built"), rs)
        x.nova(at("a full anti-affinity group"), "GET", lambda s: f"/os-server-groups/{s.group}", mv)
        x.nova(at("instance actions of the member that found no host"), "GET",
               lambda s: f"/servers/{s.member}/os-instance-actions", mv)

    # ---------------- clean-up
    for step, path in (("delete server", lambda s: f"/servers/{s.server}"),
                       ("delete the second server", lambda s: f"/servers/{s.server2}")):
        x.nova(at(step), "DELETE", path, mv)
    # Whatever else the pass made (an error case that a service accepted) goes too.
    rs = x.both(lambda s: s.nova("GET", "/servers", mv))
    for s, r in zip(x.targets, rs):
        s.leftovers = [v["id"] for v in (r.body or {}).get("servers", [])]
        for sid in s.leftovers:
            if sid not in (s.server, s.server2):
                s.nova("DELETE", f"/servers/{sid}", mv)
    x.wait("servers gone", lambda s: s.nova("GET", "/servers", mv), lambda r: not (r.body or {}).get("servers"))
    x.nova(at("show a deleted server"), "GET", lambda s: f"/servers/{s.server}", mv)
    x.nova(at("delete a deleted server"), "DELETE", lambda s: f"/servers/{s.server}", mv)
    x.nova(at("quota usage after the deletes"), "GET", lambda s: f"/os-quota-sets/{s.project_id}/detail", mv)
    x.nova(at("delete group"), "DELETE", lambda s: f"/os-server-groups/{s.group}", mv)
    if minor >= 15:
        x.nova(at("delete soft group"), "DELETE", lambda s: f"/os-server-groups/{s.soft_group}", mv)
    x.nova(at("delete a deleted group"), "DELETE", lambda s: f"/os-server-groups/{s.group}", mv)
    x.nova(at("delete key pair"), "DELETE", f"/os-keypairs/{kp}", mv)
    x.nova(at("delete a deleted key pair"), "DELETE", f"/os-keypairs/{kp}", mv)
    x.nova(at("delete flavor"), "DELETE", f"/flavors/{fid}", mv)
    if minor in MOVE_VERSIONS:
        x.nova(at("delete the bigger flavor"), "DELETE", f"/flavors/{big}", mv)
    x.nova(at("show a deleted flavor"), "GET", f"/flavors/{fid}", mv)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="twin:ENDPOINTS_JSON[#DC] or real:URL")
    ap.add_argument("--b", required=True, help="twin:ENDPOINTS_JSON[#DC] or real:URL")
    ap.add_argument("--fair", help="a second real Nova (real:URL): B is also compared with it")
    ap.add_argument("--versions", default=DEFAULT_VERSIONS)
    ap.add_argument("--verbose", action="store_true", help="print both bodies of each difference")
    o = ap.parse_args()

    specs = [o.a, o.b] + ([o.fair] if o.fair else [])
    kinds = ["twin" if spec.startswith("twin:") else "real" for spec in specs]
    # Labels say what each target is, numbered when a kind repeats.
    labels = [k if kinds.count(k) == 1 else f"{k}{kinds[:i + 1].count(k)}" for i, k in enumerate(kinds)]
    targets = [make_target(spec, label) for spec, label in zip(specs, labels)]
    for t, k in zip(targets, kinds):
        t.kind = k
    started = time.monotonic()
    d = run(targets, [v.strip() for v in o.versions.split(",") if v.strip()], o.verbose)
    elapsed = time.monotonic() - started
    print()
    for t, spec in zip(targets, specs):
        print(f"{t.label}: {spec}")
    failed = False
    for pair in d.pairs:
        problems, known = d.problems[pair], d.known[pair]
        failed = failed or bool(problems)
        print(f"{d.name(pair)}: {d.steps} steps compared in {elapsed:.1f} s, "
              f"{len(problems)} with differences, {len(known)} with known differences")
        reasons = sorted({ACCEPTED[k] for step, _ in known for k in ACCEPTED
                          if re.sub(r" @2\.\d+$", "", step) == k[0]})
        for r in reasons:
            print(f"  known: {r}")
        for step, found in problems:
            print(f"  - {step}")
            for f in found:
                print(f"      {f}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
