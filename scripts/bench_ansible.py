#!/usr/bin/env python3
"""strata apply vs Ansible's proxmox_kvm against the digital twin (see BENCHMARKS.md).

The same fleet as the apply part of scripts/bench_providers.py (3 DCs, ~1,000 VMs), the
same twin (default seed, 20 ms latency per request, Proxmox endpoints only) and the same
per-endpoint concurrency limit (16):

1. strata: a fresh twin, `strata apply FLEET --targets proxmox-only.json --auto-approve`.
2. Ansible: another fresh twin with the same seed; `strata plan -o json` against it gives
   exactly the VMs (and their desired settings) strata creates; for a sample of them
   (spread evenly over the DCs) `ansible-playbook` with `forks = 16` runs, per VM and
   through the Proxmox VM module (`community.proxmox.proxmox_kvm`, or
   `community.general.proxmox_kvm` in older `ansible` releases): a full clone of the
   template, a configuration update (cores, memory, NICs, cloud-init ipconfig,
   resolvers, search domain, tags), the boot disk grown to the desired size
   (`proxmox_disk`, state resized; strata grows it too) and a start. Connection local:
   16 forks are 16 module runs at once. The twin's TLS has a private CA: Ansible runs
   with validate_certs false.

Both parts read the twin's `/_twin/counters` (API calls by method and route, and the peak
number of requests in flight per DC and service) and afterwards check on the twin that
every VM exists, is running and has the desired cores, memory and tags.

Usage:
  scripts/bench_ansible.py --setup          # create the Ansible venv (PyPI), then run
  scripts/bench_ansible.py [--ansible-vms 150] [--forks 16] [--skip-strata] [--skip-ansible]

The venv (default /opt/strata-bench-ansible, `--venv`) holds `ansible`, `proxmoxer` and
`requests` from PyPI; it is not part of the test dependencies.
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
import urllib.parse
import urllib.request
import ssl
from collections import defaultdict

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_providers import ROOT, Twin, sh  # noqa: E402

DEFAULT_VENV = "/opt/strata-bench-ansible"
LATENCY_MS = "20"


# ---------------------------------------------------------------- setup


def setup_venv(venv):
    """Create the venv and install ansible, proxmoxer and requests from PyPI."""
    venv = pathlib.Path(venv)
    if not (venv / "bin" / "python").exists():
        sh([sys.executable, "-m", "venv", str(venv)])
    sh([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
        "ansible", "proxmoxer", "requests"])


def find_module(venv):
    """The fully qualified name of the Proxmox VM module this `ansible` ships, and its version."""
    out = subprocess.run([str(pathlib.Path(venv) / "bin" / "ansible-doc"), "-l", "-t", "module"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("ansible-doc -l failed:\n" + out.stderr[-2000:])
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    for fq in ("community.proxmox.proxmox_kvm", "community.general.proxmox_kvm"):
        if fq in names:
            return fq
    raise SystemExit("no proxmox_kvm module in this ansible (ansible-doc -l lists none)")


def versions(venv):
    py = str(pathlib.Path(venv) / "bin" / "python")
    code = ("import json, importlib.metadata as m\n"
            "print(json.dumps({p: m.version(p) for p in ('ansible', 'ansible-core', 'proxmoxer')}))")
    return json.loads(subprocess.run([py, "-c", code], check=True, capture_output=True, text=True).stdout)


# ---------------------------------------------------------------- twin helpers


def fleet_and_targets(strata, work):
    fleet = work / "fleet3"
    if not fleet.exists():
        sh([strata, "init", str(fleet), "--dcs", "3", "--racks-per-dc", "2", "--machines-per-rack", "6",
            "--vms-per-dc", "333"], stdout=subprocess.DEVNULL)
    return fleet


def proxmox_only(twin):
    doc = json.loads(twin.endpoints.read_text())
    for d in doc["dcs"]:
        d.pop("maas", None)
        d.pop("openstack", None)
    path = twin.endpoints.parent / "proxmox-only.json"
    path.write_text(json.dumps(doc))
    return path, doc


def start_twin(strata, work, name, fleet):
    return Twin(strata, work, name, ["--dcs", "3", "--fleet", str(fleet), "--latency-ms", LATENCY_MS])


class Pve:
    """A minimal Proxmox API client (token auth, the twin's CA) for set-up and checks."""

    def __init__(self, p):
        self.url = p["url"].rstrip("/") + "/api2/json"
        self.auth = "PVEAPIToken=%s=%s" % (p["token_id"], p["token_secret"])
        self.ctx = ssl.create_default_context(cafile=p["ca_file"])

    def get(self, path, **query):
        q = ("?" + urllib.parse.urlencode(query)) if query else ""
        req = urllib.request.Request(self.url + path + q, headers={"Authorization": self.auth})
        with urllib.request.urlopen(req, context=self.ctx) as r:
            return json.loads(r.read())["data"]


def summarise(counters):
    """Proxmox calls by (method, route), total, and peak in flight per DC."""
    by_route = defaultdict(int)
    total = 0
    errors = 0
    for c in counters["calls"]:
        if c["service"] != "proxmox":
            continue
        by_route["%s %s" % (c["method"], c["route"].replace("/api2/json", ""))] += c["count"]
        total += c["count"]
        if c["status"] != "2xx":
            errors += c["count"]
    peaks = {x["dc"]: x["max_in_flight"] for x in counters["concurrency"] if x["service"] == "proxmox"}
    return {"calls": total, "non_2xx": errors, "by_route": dict(sorted(by_route.items(), key=lambda kv: -kv[1])),
            "peak_in_flight": peaks}


def check_vms(doc, want):
    """Every wanted VM exists once, runs, and has the desired cores, memory and tags."""
    problems = []
    by_dc = defaultdict(list)
    for v in want:
        by_dc[v["dc"]].append(v)
    for d in doc["dcs"]:
        if d["name"] not in by_dc:
            continue
        api = Pve(d["proxmox"])
        guests = [g for g in api.get("/cluster/resources", type="vm") if not g.get("template")]
        by_name = defaultdict(list)
        for g in guests:
            by_name[g.get("name")].append(g)
        for v in by_dc[d["name"]]:
            gs = by_name.get(v["name"], [])
            if len(gs) != 1:
                problems.append("%s/%s: %d VMs of that name" % (d["name"], v["name"], len(gs)))
                continue
            g = gs[0]
            conf = api.get("/nodes/%s/qemu/%s/config" % (g["node"], g["vmid"]))
            tags = sorted(t for t in conf.get("tags", "").replace(",", ";").split(";") if t)
            if g.get("status") != "running":
                problems.append("%s/%s: %s" % (d["name"], v["name"], g.get("status")))
            if int(conf.get("cores", 1)) != v["cores"] or int(str(conf.get("memory")).split(",")[0]) != v["memory"]:
                problems.append("%s/%s: cores/memory %s/%s" % (d["name"], v["name"], conf.get("cores"),
                                                             conf.get("memory")))
            if tags != sorted(v["tags"]):
                problems.append("%s/%s: tags %s" % (d["name"], v["name"], tags))
            for i, ip in enumerate(v["ipconfig"]):
                if conf.get("ipconfig%d" % i) != ip:
                    problems.append("%s/%s: ipconfig%d %s" % (d["name"], v["name"], i, conf.get("ipconfig%d" % i)))
    return problems


# ---------------------------------------------------------------- the two tools


def desired_vms(strata, fleet, targets, env):
    """The VM creates `strata plan` would make, with their desired settings."""
    out = subprocess.run([strata, "plan", str(fleet), "--targets", str(targets), "-o", "json"],
                         capture_output=True, text=True, env=env)
    if out.returncode not in (0, 2):
        raise SystemExit("strata plan failed:\n" + out.stdout[-2000:] + out.stderr[-2000:])
    plan = json.loads(out.stdout)
    steps = plan.get("plan", plan).get("steps", [])
    vms = []
    for s in steps:
        if s.get("action") != "create" or s["id"]["kind"] != "vm":
            continue
        r = s["desired"]
        f, spec = r["fields"], r.get("spec", {})
        vms.append({"dc": s["id"]["dc"], "name": s["id"]["name"], "cores": f["cores"], "memory": f["memory"],
                    "disk_gb": f.get("disk_gb"), "tags": f["tags"], "nets": f.get("nets", []),
                    "ipconfig": f.get("ipconfig", []), "nameserver": f.get("nameserver") or "",
                    "searchdomain": f.get("searchdomain") or "", "ha": bool(f.get("ha")),
                    "template": spec.get("template"), "storage": spec.get("storage")})
    if not vms:
        raise SystemExit("strata plan planned no VM creates; is the twin fresh?")
    return vms


def sample(vms, n):
    """n VMs spread evenly over the DCs (round robin), in plan order within each DC."""
    if not n or n >= len(vms):
        return list(vms)
    per_dc = defaultdict(list)
    for v in vms:
        per_dc[v["dc"]].append(v)
    queues = [list(q) for q in per_dc.values()]
    out = []
    while len(out) < n:
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def boot_disk(conf):
    """The first disk (scsi, virtio, sata, ide in PVE's boot order default) that is not a CD-ROM
    or cloud-init drive, with its size in GiB."""
    for bus in ("scsi", "virtio", "sata", "ide"):
        for i in range(31):
            v = conf.get("%s%d" % (bus, i))
            if not v or "media=cdrom" in v or "cloudinit" in v:
                continue
            size = 0
            for part in v.split(","):
                if part.startswith("size="):
                    s = part[5:]
                    mult = {"T": 1024, "G": 1, "M": 1 / 1024, "K": 1 / (1024 * 1024)}.get(s[-1:], None)
                    size = float(s[:-1]) * mult if mult else int(s) / (1 << 30)
            return "%s%d" % (bus, i), size
    return None, 0


def ansible_inventory(doc, vms):
    """One host per VM with everything the playbook needs; vmids and target nodes chosen up
    front (what a team does so that parallel clones do not race on /cluster/nextid)."""
    hosts = {}
    per_dc = defaultdict(list)
    for v in vms:
        per_dc[v["dc"]].append(v)
    for d in doc["dcs"]:
        if d["name"] not in per_dc:
            continue
        p = d["proxmox"]
        api = Pve(p)
        res = api.get("/cluster/resources")
        guests = [r for r in res if r.get("type") == "qemu"]
        nodes = sorted(r["node"] for r in res if r.get("type") == "node" and r.get("status") == "online")
        shared = {r["storage"] for r in res if r.get("type") == "storage" and r.get("shared") == 1}
        next_id = int(api.get("/cluster/nextid"))
        u = urllib.parse.urlparse(p["url"])
        user, token = p["token_id"].split("!", 1)
        templates = {}
        for i, v in enumerate(per_dc[d["name"]]):
            t = v["template"]
            if t not in templates:
                tg = min((g for g in guests if g.get("template") == 1 and g.get("name") == t),
                         key=lambda g: g["vmid"], default=None)
                if tg is None:
                    raise SystemExit("%s: no template named %s on the twin" % (d["name"], t))
                tconf = api.get("/nodes/%s/qemu/%s/config" % (tg["node"], tg["vmid"]))
                disk, size = boot_disk(tconf)
                disk_storage = tconf.get(disk, "").split(":")[0] if disk else ""
                templates[t] = (tg, disk, size, disk_storage in shared)
            tg, disk, size, tshared = templates[t]
            # Spread over the online nodes when the storage is shared (strata places on the
            # node with the fewest VMs); otherwise the template's node.
            storage_shared = (v["storage"] in shared) if v["storage"] else tshared
            target = nodes[i % len(nodes)] if (tshared and storage_shared and nodes) else tg["node"]
            h = {
                "pve_host": u.hostname, "pve_port": u.port, "pve_user": user, "pve_token": token,
                "pve_secret": p["token_secret"],
                "template": t, "template_node": tg["node"], "target_node": target,
                "newid": next_id + i, "storage": v["storage"] or None,
                "cores": v["cores"], "memory": v["memory"], "tags": v["tags"],
                "nets": {"net%d" % j: n for j, n in enumerate(v["nets"])},
                "ipconfig": {"ipconfig%d" % j: c for j, c in enumerate(v["ipconfig"])},
                "nameservers": v["nameserver"].split() if v["nameserver"] else None,
                "searchdomains": v["searchdomain"].split() if v["searchdomain"] else None,
                "boot_disk": disk, "disk_gb": v["disk_gb"],
                "resize": bool(disk and v["disk_gb"] and v["disk_gb"] > size),
                "ha": v["ha"] or None,
            }
            hosts[v["name"]] = {k: x for k, x in h.items() if x is not None}
    return {"all": {"hosts": hosts}}


PLAYBOOK = """\
# Generated by scripts/bench_ansible.py: what strata apply does per VM, with {kvm}.
- name: VMs from the template
  hosts: all
  connection: local
  gather_facts: false
  vars:
    pve: &pve
      api_host: "{{{{ pve_host }}}}"
      api_port: "{{{{ pve_port }}}}"
      api_user: "{{{{ pve_user }}}}"
      api_token_id: "{{{{ pve_token }}}}"
      api_token_secret: "{{{{ pve_secret }}}}"
      validate_certs: false
  tasks:
    - name: Full clone of the template
      {kvm}:
        <<: *pve
        node: "{{{{ template_node }}}}"
        clone: "{{{{ template }}}}"
        newid: "{{{{ newid }}}}"
        name: "{{{{ inventory_hostname }}}}"
        full: true
        target: "{{{{ target_node if target_node != template_node else omit }}}}"
        storage: "{{{{ storage | default(omit) }}}}"
        timeout: 300

    - name: Cores, memory, NICs, cloud-init network, resolvers, tags
      {kvm}:
        <<: *pve
        node: "{{{{ target_node }}}}"
        vmid: "{{{{ newid }}}}"
        name: "{{{{ inventory_hostname }}}}"
        update: true
        update_unsafe: true
        cores: "{{{{ cores }}}}"
        memory: "{{{{ memory }}}}"
        net: "{{{{ nets }}}}"
        ipconfig: "{{{{ ipconfig }}}}"
        nameservers: "{{{{ nameservers | default(omit) }}}}"
        searchdomains: "{{{{ searchdomains | default(omit) }}}}"
        tags: "{{{{ tags }}}}"
        timeout: 300

    - name: Grow the boot disk
      {disk}:
        <<: *pve
        vmid: "{{{{ newid }}}}"
        disk: "{{{{ boot_disk }}}}"
        size: "{{{{ disk_gb }}}}G"
        state: resized
      when: resize

    - name: Start
      {kvm}:
        <<: *pve
        node: "{{{{ target_node }}}}"
        vmid: "{{{{ newid }}}}"
        state: started
        timeout: 300
"""


def run_ansible(venv, module, work, inv, forks):
    """Write the inventory, playbook and ansible.cfg; run ansible-playbook; its wall time."""
    adir = work / "ansible"
    adir.mkdir(parents=True, exist_ok=True)
    if any(h.get("ha") for h in inv["all"]["hosts"].values()):
        raise SystemExit("the sample has HA-managed VMs; the playbook has no HA task")
    (adir / "inventory.json").write_text(json.dumps(inv, indent=1))
    collection = module.rsplit(".", 1)[0]
    (adir / "site.yml").write_text(PLAYBOOK.format(kvm=module, disk=collection + ".proxmox_disk"))
    (adir / "ansible.cfg").write_text(
        "[defaults]\nforks = %d\nhost_key_checking = False\nretry_files_enabled = False\n"
        "interpreter_python = %s\nstdout_callback = default\n" % (forks, pathlib.Path(venv) / "bin" / "python"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(adir / "ansible.cfg"), PYTHONWARNINGS="ignore",
               ANSIBLE_LOCAL_TEMP=str(adir / "tmp"), ANSIBLE_HOME=str(adir / "home"))
    env["PATH"] = str(pathlib.Path(venv) / "bin") + os.pathsep + env.get("PATH", "")
    log = adir / "ansible.log"
    t = time.time()
    with open(log, "w") as f:
        rc = subprocess.run([str(pathlib.Path(venv) / "bin" / "ansible-playbook"), "-i", str(adir / "inventory.json"),
                             str(adir / "site.yml")], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=adir).returncode
    seconds = time.time() - t
    if rc != 0:
        raise SystemExit("ansible-playbook failed (rc %d); see %s:\n%s" % (rc, log, log.read_text()[-4000:]))
    return seconds


def on_sigterm(signum, frame):
    raise SystemExit("interrupted (signal %d); stopping the twins" % signum)


def main():
    signal.signal(signal.SIGTERM, on_sigterm)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target_dir = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    ap.add_argument("--strata", default=str(target_dir / "release" / "strata"))
    ap.add_argument("--venv", default=DEFAULT_VENV, help="the Ansible venv (see --setup)")
    ap.add_argument("--setup", action="store_true", help="create the venv and pip install ansible proxmoxer requests")
    ap.add_argument("--work", default="/tmp/strata-bench-ansible")
    ap.add_argument("--ansible-vms", type=int, default=150, help="Ansible on a sample of N VMs (0: all)")
    ap.add_argument("--forks", type=int, default=16)
    ap.add_argument("--skip-strata", action="store_true")
    ap.add_argument("--skip-ansible", action="store_true")
    a = ap.parse_args()
    if not pathlib.Path(a.strata).exists():
        raise SystemExit("%s not found: cargo build --release -p strata-cli (or pass --strata)" % a.strata)
    if a.setup:
        setup_venv(a.venv)
    if not a.skip_ansible and not (pathlib.Path(a.venv) / "bin" / "ansible-playbook").exists():
        raise SystemExit("no ansible-playbook in %s: run scripts/bench_ansible.py --setup" % a.venv)
    work = pathlib.Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = dict(os.environ, BMC_PASSWORD="bench")
    fleet = fleet_and_targets(a.strata, work)
    results = {"latency_ms": int(LATENCY_MS), "cpus": os.cpu_count(),
               "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}

    if not a.skip_strata:
        twin = start_twin(a.strata, work, "strata", fleet)
        try:
            targets, doc = proxmox_only(twin)
            want = desired_vms(a.strata, fleet, targets, env)
            twin.post("counters/reset")
            t = time.time()
            out = subprocess.run([a.strata, "apply", str(fleet), "--targets", str(targets), "--auto-approve",
                                  "-o", "json"], capture_output=True, text=True, env=env)
            seconds = time.time() - t
            if out.returncode != 0:
                raise SystemExit("strata apply failed:\n" + out.stdout[-3000:] + out.stderr[-3000:])
            s = summarise(twin.get("counters"))
            problems = check_vms(doc, want)
        finally:
            twin.stop()
        if problems:
            raise SystemExit("strata apply left %d problems, e.g. %s" % (len(problems), problems[:5]))
        results["strata"] = {"vms": len(want), "seconds": round(seconds, 2),
                             "seconds_per_vm": round(seconds / len(want), 4),
                             "calls_per_vm": round(s["calls"] / len(want), 2), **s}

    if not a.skip_ansible:
        module = find_module(a.venv)
        twin = start_twin(a.strata, work, "ansible", fleet)
        try:
            targets, doc = proxmox_only(twin)
            want = desired_vms(a.strata, fleet, targets, env)
            # HA-managed VMs are left out of the sample: strata makes them HA resources
            # and applies the PVE 9 HA rules over them, which the playbook does not model.
            chosen = sample([v for v in want if not v["ha"]], a.ansible_vms)
            # Set-up reads (template, nodes, next vmid) before the reset: only the
            # playbook's calls are counted, and only the playbook is timed.
            inv = ansible_inventory(doc, chosen)
            twin.post("counters/reset")
            seconds = run_ansible(a.venv, module, work, inv, a.forks)
            s = summarise(twin.get("counters"))
            problems = check_vms(doc, chosen)
        finally:
            twin.stop()
        if problems:
            raise SystemExit("the Ansible run left %d problems, e.g. %s" % (len(problems), problems[:5]))
        n = len(chosen)
        results["ansible"] = {"module": module, "versions": versions(a.venv), "forks": a.forks, "vms": n,
                              "seconds": round(seconds, 2), "seconds_per_vm": round(seconds / n, 4),
                              "seconds_for_all": round(seconds / n * len(want), 1), "all_vms": len(want),
                              "calls_per_vm": round(s["calls"] / n, 2), **s}
    if "strata" in results and "ansible" in results:
        results["speedup_per_vm"] = round(results["ansible"]["seconds_per_vm"] / results["strata"]["seconds_per_vm"], 1)
    results["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
