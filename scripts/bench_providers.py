#!/usr/bin/env python3
"""Benchmarks of the providers against the digital twin (see BENCHMARKS.md).

1. observe: one DC with 2,000 machines and 10,000 VMs. API calls `strata plan` uses
   (read from the twin's counters) vs a per-object refresh (one GET per VM config and
   per machine, as Terraform's refresh does), with wall times, in the same run.
2. apply: ~1,000 VMs across 3 DCs with 20 ms latency per request. `strata apply`
   (Proxmox endpoints only) vs a plain sequential proxmoxer script doing the same
   clones, configuration and starts against a fresh twin, in the same run; plus the
   peak number of requests in flight per Proxmox endpoint (the configured limit is 16).

Usage: scripts/bench_providers.py [--strata target/release/strata] [--python /opt/strata-tools/bin/python]
       [--baseline-vms N]  (proxmoxer baseline on the first N VMs only; default all)
"""
import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Twin:
    def __init__(self, strata, work, name, args):
        self.dir = work / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.endpoints = self.dir / "endpoints.json"
        self.proc = subprocess.Popen(
            [strata, "twin", "--listen", "127.0.0.1:0", "--write-endpoints", str(self.endpoints), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 120
        while not self.endpoints.exists():
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"twin {name} did not start")
            time.sleep(0.1)
        time.sleep(0.3)
        self.doc = json.loads(self.endpoints.read_text())
        self.admin = self.doc["twin"]["admin"]

    def get(self, path):
        with urllib.request.urlopen(self.admin + path) as r:
            return json.loads(r.read())

    def post(self, path):
        req = urllib.request.Request(self.admin + path, method="POST")
        urllib.request.urlopen(req).read()

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


def per_object_refresh(python, endpoints):
    """One GET per VM config and per machine: what a per-object refresh costs."""
    code = r'''
import json, os, sys, time, hashlib, uuid, urllib.parse
import requests
doc = json.load(open(sys.argv[1]))
dc = doc["dcs"][0]
p = dc["proxmox"]; m = dc["maas"]
s = requests.Session(); ca = p["ca_file"]
s.headers["Authorization"] = "PVEAPIToken=%s=%s" % (p["token_id"], p["token_secret"])
t = time.time(); calls = 0
vms = s.get(p["url"] + "/api2/json/cluster/resources", params={"type": "vm"}, verify=ca).json()["data"]; calls += 1
for v in vms:
    s.get("%s/api2/json/nodes/%s/qemu/%s/config" % (p["url"], v["node"], v["vmid"]), verify=ca).raise_for_status(); calls += 1
ck, tk, sec = m["api_key"].split(":")
def oauth():
    return ('OAuth oauth_version="1.0", oauth_signature_method="PLAINTEXT", oauth_consumer_key="%s", '
            'oauth_token="%s", oauth_signature="&%s", oauth_nonce="%s", oauth_timestamp="%d"'
            % (ck, tk, sec, uuid.uuid4().hex, int(time.time())))
ms = requests.get(m["url"] + "api/2.0/machines/", headers={"Authorization": oauth()}).json(); calls += 1
for x in ms:
    requests.get(m["url"] + "api/2.0/machines/%s/" % x["system_id"], headers={"Authorization": oauth()}).raise_for_status(); calls += 1
print(json.dumps({"calls": calls, "seconds": time.time() - t, "vms": len(vms), "machines": len(ms)}))
'''
    out = subprocess.run([python, "-c", code, str(endpoints)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def proxmoxer_baseline(python, endpoints, vms):
    """Sequential proxmoxer: for each VM, nextid, clone, wait, configure, start, wait."""
    code = r'''
import json, sys, time
from urllib.parse import urlparse
from proxmoxer import ProxmoxAPI
from proxmoxer.tools import Tasks
doc = json.load(open(sys.argv[1])); vms = json.load(open(sys.argv[2]))
apis = {}
for dc in doc["dcs"]:
    p = dc["proxmox"]; u = urlparse(p["url"]); user, token = p["token_id"].split("!")
    apis[dc["name"]] = ProxmoxAPI(u.hostname, port=u.port, user=user, token_name=token, token_value=p["token_secret"], verify_ssl=p["ca_file"])
t = time.time(); done = 0
for vm in vms:
    api = apis[vm["dc"]]
    tmpl = next(r for r in api.cluster.resources.get(type="vm") if r.get("template") == 1)
    node = tmpl["node"]
    vmid = int(api.cluster.nextid.get())
    upid = api.nodes(node).qemu(tmpl["vmid"]).clone.post(newid=vmid, name=vm["name"], full=1)
    Tasks.blocking_status(api, upid, timeout=300, polling_interval=0.1)
    api.nodes(node).qemu(vmid).config.put(cores=vm["cores"], memory=vm["memory"], tags="bench")
    upid = api.nodes(node).qemu(vmid).status.start.post()
    Tasks.blocking_status(api, upid, timeout=300, polling_interval=0.1)
    done += 1
print(json.dumps({"vms": done, "seconds": time.time() - t}))
'''
    listing = pathlib.Path(endpoints).parent / "vms.json"
    listing.write_text(json.dumps(vms))
    out = subprocess.run([python, "-c", code, str(endpoints), str(listing)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--strata", default=str(ROOT / "target/release/strata"))
    ap.add_argument("--python", default="/opt/strata-tools/bin/python")
    ap.add_argument("--work", default="/tmp/strata-bench-providers")
    ap.add_argument("--baseline-vms", type=int, default=0)
    ap.add_argument("--skip-observe", action="store_true")
    ap.add_argument("--skip-apply", action="store_true")
    a = ap.parse_args()
    work = pathlib.Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, BMC_PASSWORD="bench")
    results = {}

    if not a.skip_observe:
        fleet = work / "fleet1"
        sh([a.strata, "init", str(fleet), "--dcs", "1", "--racks-per-dc", "50", "--machines-per-rack", "40",
            "--vms-per-dc", "10"], stdout=subprocess.DEVNULL)
        twin = Twin(a.strata, work, "observe", ["--dcs", "1", "--fleet", str(fleet), "--vms-per-dc", "10000"])
        try:
            twin.post("counters/reset")
            t = time.time()
            out = subprocess.run([a.strata, "plan", str(fleet), "--targets", str(twin.endpoints), "-o", "json"],
                                 capture_output=True, text=True, env=env)
            plan_s = time.time() - t
            if out.returncode != 0:
                raise SystemExit("strata plan failed:\n" + out.stderr[-3000:])
            c = twin.get("counters")
            strata_calls = c["total"]
            by_service = {}
            for x in c["calls"]:
                by_service[x["service"]] = by_service.get(x["service"], 0) + x["count"]
            twin.post("counters/reset")
            ref = per_object_refresh(a.python, twin.endpoints)
            ref_calls = twin.get("counters")["total"]
        finally:
            twin.stop()
        results["observe"] = {"strata_calls": strata_calls, "strata_calls_by_service": by_service,
                              "strata_plan_seconds": plan_s, "per_object_calls": ref_calls,
                              "per_object_seconds": ref["seconds"], "vms": ref["vms"], "machines": ref["machines"]}

    if not a.skip_apply:
        fleet = work / "fleet3"
        sh([a.strata, "init", str(fleet), "--dcs", "3", "--racks-per-dc", "2", "--machines-per-rack", "6",
            "--vms-per-dc", "333"], stdout=subprocess.DEVNULL)
        compiled = json.loads(subprocess.run([a.strata, "compile", str(fleet), "-o", "json"], check=True,
                                             capture_output=True, text=True).stdout)
        vms = [{"dc": d["name"], "name": v["hostname"], "cores": v["cores"], "memory": v["memory_mib"]}
               for d in compiled["dcs"] for v in d["vms"]]
        twin = Twin(a.strata, work, "apply", ["--dcs", "3", "--fleet", str(fleet), "--latency-ms", "20"])
        try:
            doc = json.loads(twin.endpoints.read_text())
            for d in doc["dcs"]:
                d.pop("maas", None)
                d.pop("openstack", None)
            pve_targets = twin.endpoints.parent / "proxmox-only.json"
            pve_targets.write_text(json.dumps(doc))
            twin.post("counters/reset")
            t = time.time()
            out = subprocess.run([a.strata, "apply", str(fleet), "--targets", str(pve_targets), "--auto-approve",
                                  "-o", "json"], capture_output=True, text=True, env=env)
            apply_s = time.time() - t
            if out.returncode != 0:
                raise SystemExit("strata apply failed:\n" + out.stdout[-3000:] + out.stderr[-3000:])
            report = json.loads(out.stdout)
            c = twin.get("counters")
            peaks = {x["dc"]: x["max_in_flight"] for x in c["concurrency"] if x["service"] == "proxmox"}
            strata_calls = c["total"]
        finally:
            twin.stop()
        base_vms = vms[: a.baseline_vms] if a.baseline_vms else vms
        twin2 = Twin(a.strata, work, "baseline", ["--dcs", "3", "--fleet", str(fleet), "--latency-ms", "20"])
        try:
            base = proxmoxer_baseline(a.python, twin2.endpoints, base_vms)
        finally:
            twin2.stop()
        per_vm = base["seconds"] / max(base["vms"], 1)
        results["apply"] = {"vms": len(vms), "strata_seconds": apply_s, "strata_steps": len(report["report"]["results"]),
                            "strata_calls": strata_calls, "peak_in_flight_per_endpoint": peaks,
                            "baseline_vms": base["vms"], "baseline_seconds": base["seconds"],
                            "baseline_seconds_for_all": per_vm * len(vms),
                            "speedup": per_vm * len(vms) / apply_s}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
