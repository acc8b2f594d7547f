#!/usr/bin/env python3
"""Test a running `strata serve` against its own OpenAPI document.

    STRATA_API=http://127.0.0.1:PORT \\
    STRATA_ADMIN_TOKEN=strata_... STRATA_READONLY_TOKEN=strata_... \\
    /opt/strata-tools/bin/python scripts/clients/schemathesis_check.py [schemathesis options]

STRATA_ADMIN_TOKEN is a fleet admin's; STRATA_READONLY_TOKEN has the read scope only (any
team; the tests use a fleet viewer's). Run it with the tools venv's Python
(scripts/install-test-deps.sh installs schemathesis 4 there). Exit status 0: no failure.
JUnit reports go to $STRATA_SCHEMATHESIS_REPORTS (default: a temporary directory).

Three passes:

0. Real objects. The fuzzer rarely guesses a commit id, a plan hash, a workflow, request,
   webhook or allocation id that exists, so this pass reads some of each (and every team,
   DC and rack, machines with their onboarding evidence, IP pools, usage in JSON and CSV,
   the audit log, a 304) and
   checks each answer's status, media type and body against the document (with
   jsonschema-rs, which schemathesis uses).
1. schemathesis with the admin token over every GET and the two writes that change
   nothing but add to the record: `create_token` (tokens for made-up names, each audited)
   and `verify_audit` (reads the chain). Everything is exercised for real.
2. schemathesis with the read-only token over every other operation: sync, approve,
   cancel, upgrade, decommission, token revocation, and whatever writes the API grows
   (requests, IP allocations). The bearer middleware refuses a write by a read-only token
   with 403 before any handler runs, so none of them can act, whatever is sent: the demo
   this runs against stays as it was. The pass still checks that those operations
   authenticate, answer the documented problem+json, and 405 for undeclared methods
   (schemathesis warns that they "returned only 401/403": that is the point).

The split of passes 1 and 2 is computed from the document, so a new write lands in the
harmless pass 2 until it is added to SAFE_WRITES.

`--checks all`, a fixed seed, one worker under the server's rate limit (200 requests per
second per token), a few generated cases per operation and a hard time limit per pass:
the whole check takes well under a minute on two cores.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

# Writes that are harmless with a fleet admin token (see above).
SAFE_WRITES = {"create_token", "verify_audit"}
METHODS = ("get", "put", "post", "patch", "delete")


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        sys.exit(f"schemathesis_check: set {name} (see the top of {__file__})")
    return value


API = env("STRATA_API").rstrip("/")
ADMIN = env("STRATA_ADMIN_TOKEN")
READONLY = env("STRATA_READONLY_TOKEN")
SEED = env("STRATA_SCHEMATHESIS_SEED", "20261208")
# Generated cases per operation and phase (examples, boundary values and stateful runs
# come on top), for pass 1 and pass 2.
EXAMPLES = env("STRATA_SCHEMATHESIS_EXAMPLES", "25")
EXAMPLES_READONLY = env("STRATA_SCHEMATHESIS_EXAMPLES_READONLY", "5")
REPORTS = Path(os.environ.get("STRATA_SCHEMATHESIS_REPORTS") or tempfile.mkdtemp())
ST = Path(sys.executable).parent / "schemathesis"


def call(path, token=ADMIN, headers=None):
    """(status, media type, body text, headers) of a GET."""
    req = urllib.request.Request(
        API + path, headers={"Authorization": f"Bearer {token}", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode(), e.headers


def real_objects(doc):
    """Pass 0; the number of failures."""
    import jsonschema_rs

    failures = []

    def check(template, path, expect=200, headers=None):
        status, media, text, hdrs = call(path, headers=headers)
        op = doc["paths"][template]["get"]
        response = op["responses"].get(str(status))
        where = f"GET {path} -> {status}"
        if status != expect:
            failures.append(f"{where}: expected {expect}: {text[:300]}")
            return None
        if response is None:
            failures.append(f"{where}: status not documented")
            return None
        content = response.get("content")
        if not content:
            if text:
                failures.append(f"{where}: documented without a body, got {text[:100]!r}")
            return hdrs
        base = media.split(";")[0].strip()
        match = [k for k in content if k.split(";")[0].strip() == base]
        if not match:
            failures.append(f"{where}: media type {media!r} not in {list(content)}")
            return None
        schema = content[match[0]].get("schema", {})
        if base.endswith("json"):
            body = json.loads(text)
            validator = jsonschema_rs.Draft202012Validator(
                {**schema, "components": doc["components"]}
            )
            errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(body)]
            if errors:
                failures.append(f"{where}: " + "; ".join(errors[:5]))
            return body
        return text

    for template in ["/api/v1/whoami", "/api/v1/tokens", "/api/v1/teams", "/api/v1/dcs",
                     "/api/v1/machines", "/api/v1/vms", "/api/v1/prefixes",
                     "/api/v1/workflows", "/api/v1/openapi.json"]:
        check(template, template + ("?limit=500" if template.endswith("s") else ""))
    check("/api/v1/audit", "/api/v1/audit?limit=50")
    check("/api/v1/audit", "/api/v1/audit?team=ml-research")
    teams = check("/api/v1/teams", "/api/v1/teams?limit=500") or {"items": []}
    for t in teams["items"]:
        check("/api/v1/teams/{team}", f"/api/v1/teams/{t['name']}")
    dcs = check("/api/v1/dcs", "/api/v1/dcs?limit=500") or {"items": []}
    for d in dcs["items"]:
        check("/api/v1/dcs/{dc}", f"/api/v1/dcs/{d['name']}")
        check("/api/v1/dcs/{dc}/racks", f"/api/v1/dcs/{d['name']}/racks")
    if dcs["items"]:
        name = dcs["items"][0]["name"]
        hdrs = check("/api/v1/dcs/{dc}", f"/api/v1/dcs/{name}") and call(f"/api/v1/dcs/{name}")[3]
        if hdrs and hdrs.get("ETag"):
            check("/api/v1/dcs/{dc}", f"/api/v1/dcs/{name}", 304, {"If-None-Match": hdrs["ETag"]})
        else:
            failures.append(f"GET /api/v1/dcs/{name}: no ETag")
    machines = check("/api/v1/machines", "/api/v1/machines?limit=500") or {"items": []}
    onboarded = 0
    for m in machines["items"][:: max(1, len(machines["items"]) // 8)]:
        body = check("/api/v1/machines/{dc}/{hostname}", f"/api/v1/machines/{m['dc']}/{m['hostname']}")
        onboarded += bool(body and body.get("onboarding"))
    commits = check("/api/v1/commits", "/api/v1/commits?limit=5") or {"items": []}
    for c in commits["items"][:2]:
        check("/api/v1/commits/{sha}", f"/api/v1/commits/{c['sha']}")
        check("/api/v1/commits/{sha}/summary", f"/api/v1/commits/{c['sha']}/summary")
    plans = check("/api/v1/plans", "/api/v1/plans?limit=5") or {"items": []}
    for p in plans["items"][:2]:
        check("/api/v1/plans/{hash}", f"/api/v1/plans/{p['hash']}")
    workflows = check("/api/v1/workflows", "/api/v1/workflows?limit=500") or {"items": []}
    kinds = {}
    for w in workflows["items"]:
        kinds.setdefault(w["kind"], w["id"])
    for wid in kinds.values():
        check("/api/v1/workflows/{id}", f"/api/v1/workflows/{wid}")
    check("/api/v1/usage", "/api/v1/usage")
    check("/api/v1/usage", "/api/v1/usage?format=csv&team=ml-research")
    hooks = check("/api/v1/webhooks", "/api/v1/webhooks") or {"items": []}
    for h in hooks["items"][:2]:
        check("/api/v1/webhooks/{id}", f"/api/v1/webhooks/{h['id']}")
        check("/api/v1/webhooks/{id}/deliveries", f"/api/v1/webhooks/{h['id']}/deliveries")
    check("/api/v1/requests/policy", "/api/v1/requests/policy")
    requests = check("/api/v1/requests", "/api/v1/requests?limit=20") or {"items": []}
    for r in requests["items"][:3]:
        check("/api/v1/requests/{id}", f"/api/v1/requests/{r['id']}")
    pools = check("/api/v1/ipam/pools", "/api/v1/ipam/pools?limit=500") or {"items": []}
    allocations = 0
    for p in sorted(pools["items"], key=lambda p: -p["allocations"])[:3]:
        check("/api/v1/ipam/pools/{pool}", f"/api/v1/ipam/pools/{p['id']}")
        page = check("/api/v1/ipam/pools/{pool}/allocations", f"/api/v1/ipam/pools/{p['id']}/allocations")
        for a in (page or {"items": []})["items"][:2]:
            allocations += 1
            check("/api/v1/ipam/allocations/{id}", f"/api/v1/ipam/allocations/{a['id']}")
    for what, n in [("commits", len(commits["items"])), ("plans", len(plans["items"])),
                    ("workflows", len(kinds)), ("onboarded machines", onboarded),
                    ("IP pools", len(pools["items"]))]:
        if n == 0:
            failures.append(f"no {what} to check: is this the demo after its first apply?")
    for f in failures:
        print(f"schemathesis_check: pass 0: {f}")
    print(f"schemathesis_check: pass 0: real commits, plans, workflows ({', '.join(sorted(kinds))}), "
          f"teams, DCs, machines, usage, {len(hooks['items'])} webhooks, {len(requests['items'])} requests, "
          f"{len(pools['items'])} IP pools, {allocations} allocations: {len(failures)} failures")
    return len(failures)


# Per-operation settings. `get_usage`: a window is valid only when `from` is before `to`
# and both are after 1970, which the document cannot say (a schema constrains each
# parameter alone), so a 400 (`bad-window`, `bad-time`) to well-formed input is an
# answer here, not a rejected valid request.
CONFIG = """
[[operations]]
include-operation-id = "get_usage"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]
"""


def schemathesis(label, token, operations, examples, limit, extra):
    config = REPORTS / "schemathesis.toml"
    config.write_text(CONFIG)
    args = [
        str(ST), "--config-file", str(config), "run", f"{API}/api/v1/openapi.json",
        "--checks", "all",
        "--seed", SEED,
        "--max-examples", examples,
        "--generation-database", "none",
        "--workers", "1",
        "--rate-limit", "100/s",
        "--request-timeout", "30",
        "--no-color",
        "-H", f"Authorization: Bearer {token}",
        "--include-operation-id-regex", "^(" + "|".join(sorted(operations)) + ")$",
        "--report", "junit", "--report-junit-path", str(REPORTS / f"{label}.xml"),
        *extra,
    ]
    print(f"schemathesis_check: {label}: {' '.join(sorted(operations))}", flush=True)
    try:
        return subprocess.run(args, timeout=limit).returncode
    except subprocess.TimeoutExpired:
        print(f"schemathesis_check: {label}: still running after {limit} s", flush=True)
        return 124


def main():
    if not ST.exists():
        sys.exit(f"schemathesis_check: {ST} is missing: run scripts/install-test-deps.sh")
    REPORTS.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    status, _, text, _ = call("/api/v1/openapi.json")
    if status != 200:
        sys.exit(f"schemathesis_check: GET /api/v1/openapi.json -> {status}: {text[:300]}")
    doc = json.loads(text)
    reads, writes = set(), set()
    for item in doc["paths"].values():
        for method in METHODS:
            if method in item:
                op = item[method]["operationId"]
                (reads if method == "get" or op in SAFE_WRITES else writes).add(op)
    failed = real_objects(doc)
    extra = sys.argv[1:]
    rc1 = schemathesis("admin", ADMIN, reads, EXAMPLES, 150, extra)
    rc2 = schemathesis("read-only", READONLY, writes, EXAMPLES_READONLY, 90, extra) if writes else 0
    took = time.monotonic() - start
    print(f"schemathesis_check: done in {took:.0f} s: pass 0 {failed} failures, "
          f"pass 1 exit {rc1}, pass 2 exit {rc2} (reports in {REPORTS})")
    sys.exit(1 if failed else rc1 or rc2)


if __name__ == "__main__":
    main()
