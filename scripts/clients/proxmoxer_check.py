#!/usr/bin/env python3
"""Drive the twin's Proxmox VE endpoints with proxmoxer, a real third-party client.

Usage: proxmoxer_check.py ENDPOINTS_JSON

For every DC in the endpoints document (as `strata twin --write-endpoints` writes it),
connect once with the API token and once with user and password (ticket + CSRF token),
list the nodes, clone the template to the VMID that /cluster/nextid proposes, wait for
the task with proxmoxer's task tools, start the clone, read its configuration and
check it, exercise the digest and parameter checks, and (with the ticket) stop and
destroy the clone again. Prints a JSON summary; exits non-zero on any failure.
"""

import json
import sys
import time
from urllib.parse import urlparse

from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.tools import Tasks


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def wait(api, upid, what):
    status = Tasks.blocking_status(api, upid, timeout=60, polling_interval=0.1)
    check(status is not None, f"{what}: task {upid} did not finish")
    check(status.get("exitstatus") == "OK", f"{what}: task ended with {status.get('exitstatus')!r}")
    return status


def connect(pve, mode):
    url = urlparse(pve["url"])
    common = {"port": url.port, "verify_ssl": pve["ca_file"], "timeout": 30}
    if mode == "token":
        user, token_name = pve["token_id"].split("!", 1)
        return ProxmoxAPI(url.hostname, user=user, token_name=token_name, token_value=pve["token_secret"], **common)
    return ProxmoxAPI(url.hostname, user=pve["user"], password=pve["password"], **common)


def exercise(api, mode, name, cleanup):
    out = {"auth": mode}
    version = api.version.get()
    check(str(version.get("version", "")).startswith("9."), f"unexpected version {version!r}")
    out["version"] = version["version"]

    nodes = api.nodes.get()
    check(len(nodes) > 0, "no nodes")
    check(all(n.get("status") == "online" for n in nodes), f"nodes not online: {nodes!r}")
    out["nodes"] = sorted(n["node"] for n in nodes)

    templates = [r for r in api.cluster.resources.get(type="vm") if r.get("template") == 1]
    check(templates, "no template in /cluster/resources")
    tpl = templates[0]
    node, src = tpl["node"], tpl["vmid"]

    newid = api.cluster.nextid.get()
    check(isinstance(newid, str) and newid.isdigit(), f"nextid is not a numeric string: {newid!r}")
    newid = int(newid)

    upid = api.nodes(node).qemu(src).clone.post(newid=newid, name=name, full=1)
    decoded = Tasks.decode_upid(upid)
    check(decoded["type"] == "qmclone" and decoded["node"] == node, f"odd clone UPID {upid!r}")
    wait(api, upid, "clone")
    out["vmid"] = newid

    vm = api.nodes(node).qemu(newid)
    conf = vm.config.get()
    check(conf.get("name") == name, f"name is {conf.get('name')!r}")
    check("lock" not in conf, f"still locked: {conf.get('lock')!r}")
    check(len(conf.get("digest", "")) == 40, "no digest")
    check(str(conf.get("net0", "")).startswith("virtio="), f"net0 is {conf.get('net0')!r}")

    # Digest-protected update, then the stale digest must be refused.
    vm.config.put(memory=4096, cores=2, digest=conf["digest"])
    updated = vm.config.get()
    check(str(updated.get("memory")) == "4096", f"memory is {updated.get('memory')!r}")
    try:
        vm.config.put(memory=1024, digest=conf["digest"])
        raise CheckFailed("a stale digest was accepted")
    except ResourceException as e:
        check(e.status_code == 500 and "checksum mismatch" in str(e), f"stale digest: {e}")

    # Parameter verification errors come back as 400 with per-parameter errors.
    try:
        api.nodes(node).qemu(src).clone.post(name="no-newid")
        raise CheckFailed("a clone without newid was accepted")
    except ResourceException as e:
        check(e.status_code == 400 and e.errors and "newid" in e.errors, f"missing newid: {e} {e.errors!r}")

    upid = vm.status.start.post()
    wait(api, upid, "start")
    current = vm.status.current.get()
    check(current.get("status") == "running", f"status is {current.get('status')!r}")
    check(current.get("maxmem") == 4096 * 1024 * 1024, f"maxmem is {current.get('maxmem')!r}")
    log = Tasks.decode_log(api.nodes(node).tasks(upid).log.get())
    check(log.strip().endswith("TASK OK"), f"task log: {log!r}")
    out["status"] = current["status"]

    found = [r for r in api.cluster.resources.get(type="vm") if r.get("vmid") == newid]
    check(len(found) == 1 and found[0].get("status") == "running", f"/cluster/resources: {found!r}")

    if cleanup:
        upid = vm.status.stop.post()
        wait(api, upid, "stop")
        upid = vm.delete(purge=1)
        wait(api, upid, "destroy")
        gone = [r for r in api.cluster.resources.get(type="vm") if r.get("vmid") == newid]
        check(not gone, f"destroyed VM still listed: {gone!r}")
        out["destroyed"] = True
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        endpoints = json.load(f)
    summary = {"client": "proxmoxer", "dcs": [], "ok": False}
    started = time.monotonic()
    try:
        for dc in endpoints["dcs"]:
            pve = dc["proxmox"]
            runs = []
            runs.append(exercise(connect(pve, "token"), "token", f"{dc['name']}-token-check", cleanup=False))
            runs.append(exercise(connect(pve, "ticket"), "ticket", f"{dc['name']}-ticket-check", cleanup=True))
            summary["dcs"].append({"name": dc["name"], "runs": runs})
        summary["ok"] = True
    except (CheckFailed, ResourceException, Exception) as e:  # noqa: BLE001 - report any failure
        summary["error"] = f"{type(e).__name__}: {e}"
    summary["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
