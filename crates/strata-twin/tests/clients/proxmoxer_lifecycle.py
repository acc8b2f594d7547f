#!/usr/bin/env python3
"""Day-2 operations on the twin's Proxmox VE with proxmoxer (a real third-party client).

Usage: proxmoxer_lifecycle.py ENDPOINTS_JSON

On the first DC of the endpoints document: read every node's version and pending
package updates, clone the template, check the migration preconditions, migrate the
clone to another node and wait for the task with proxmoxer's task tools, take a
snapshot, change the guest, roll it back to the snapshot, and delete the snapshot.
Refusals are checked through proxmoxer's `ResourceException` (status code and message).
Prints a JSON summary; exits non-zero on any failure.
"""

import json
import sys
from urllib.parse import urlparse

from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.tools import Tasks


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def wait(api, upid, what, want="OK"):
    status = Tasks.blocking_status(api, upid, timeout=60, polling_interval=0.1)
    check(status is not None, f"{what}: task {upid} did not finish")
    check(
        status.get("exitstatus") == want,
        f"{what}: task ended with {status.get('exitstatus')!r}, wanted {want!r}",
    )
    return status


def refused(call, code, text, what):
    try:
        call()
    except ResourceException as e:
        check(e.status_code == code, f"{what}: status {e.status_code}, wanted {code} ({e})")
        check(text in str(e), f"{what}: {e!s} does not say {text!r}")
        return
    raise CheckFailed(f"{what}: was accepted")


def main(argv):
    with open(argv[1]) as f:
        dc = json.load(f)["dcs"][0]
    pve = dc["proxmox"]
    url = urlparse(pve["url"])
    user, token_name = pve["token_id"].split("!", 1)
    api = ProxmoxAPI(
        url.hostname,
        port=url.port,
        user=user,
        token_name=token_name,
        token_value=pve["token_secret"],
        verify_ssl=pve["ca_file"],
        timeout=30,
    )
    out = {"dc": dc["name"]}

    # Versions and updates of every node.
    nodes = sorted(n["node"] for n in api.nodes.get())
    check(len(nodes) >= 2, f"need two nodes: {nodes}")
    versions = {}
    for n in nodes:
        v = api.nodes(n).version.get()
        check(v["release"] == ".".join(v["version"].split(".")[:2]), f"odd version {v}")
        versions[n] = v["version"]
        updates = api.nodes(n).apt.update.get()
        check(
            any(u["Package"] == "pve-manager" and u["OldVersion"] == v["version"] for u in updates),
            f"{n}: no pve-manager update listed: {updates}",
        )
    out["versions"] = versions
    upid = api.nodes(nodes[0]).apt.update.post()
    check(Tasks.decode_upid(upid)["type"] == "aptupdate", f"odd UPID {upid}")
    wait(api, upid, "apt update")

    # A guest to work on.
    tpl = [r for r in api.cluster.resources.get(type="vm") if r.get("template") == 1][0]
    node, src = tpl["node"], tpl["vmid"]
    newid = int(api.cluster.nextid.get())
    wait(api, api.nodes(node).qemu(src).clone.post(newid=newid, name="mover", full=1), "clone")
    target = next(n for n in nodes if n != node)

    pre = api.nodes(node).qemu(newid).migrate.get()
    check(pre["running"] in (0, False), f"running: {pre}")
    check(target in pre["allowed_nodes"], f"{target} not allowed: {pre}")
    refused(
        lambda: api.nodes(node).qemu(newid).migrate.post(target=node),
        400,
        "target is local node",
        "migrate to itself",
    )
    refused(
        lambda: api.nodes(node).qemu(newid).migrate.post(target="nowhere"),
        500,
        "no such cluster node 'nowhere'",
        "migrate to an unknown node",
    )

    # Migrate it.
    upid = api.nodes(node).qemu(newid).migrate.post(target=target)
    check(Tasks.decode_upid(upid)["type"] == "qmigrate", f"odd UPID {upid}")
    wait(api, upid, "migrate")
    lines = [entry["t"] for entry in api.nodes(node).tasks(upid).log.get(limit=500)]
    check(any("migration finished successfully" in line for line in lines), f"log: {lines}")
    where = {r["vmid"]: r["node"] for r in api.cluster.resources.get(type="vm")}
    check(where.get(newid) == target, f"VM {newid} is on {where.get(newid)}, not {target}")
    vm = api.nodes(target).qemu(newid)
    out["migrated"] = {"vmid": newid, "from": node, "to": target}

    # Snapshot, change, roll back, delete.
    memory = vm.config.get()["memory"]
    refused(
        lambda: vm.snapshot.post(snapname="current"),
        500,
        "reserved name",
        "snapshot named current",
    )
    wait(api, vm.snapshot.post(snapname="before", description="before the change"), "snapshot")
    snaps = vm.snapshot.get()
    names = [s["name"] for s in snaps]
    check(names == ["before", "current"], f"snapshots: {names}")
    wait(api, vm.snapshot.post(snapname="before"), "duplicate snapshot", "snapshot name 'before' already used")
    vm.config.put(memory=4096)
    check(str(vm.config.get()["memory"]) == "4096", "memory change did not stick")
    wait(api, vm.snapshot("before").rollback.post(), "rollback")
    conf = vm.config.get()
    check(str(conf["memory"]) == str(memory), f"memory after rollback: {conf['memory']}")
    check(conf.get("parent") == "before", f"parent after rollback: {conf.get('parent')}")
    check(vm.snapshot("before").config.get()["description"] == "before the change", "snapshot config")
    wait(api, vm.snapshot("before").delete(), "delete snapshot")
    check([s["name"] for s in vm.snapshot.get()] == ["current"], "snapshot not deleted")
    out["snapshots"] = "ok"

    wait(api, vm.delete(), "destroy")
    out["ok"] = True
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (CheckFailed, ResourceException) as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        print(f"proxmoxer_lifecycle: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
