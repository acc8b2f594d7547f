#!/usr/bin/env python3
"""Drive the twin's MAAS with the real python-libmaas client (0.6.8, blocking mode).

Usage: libmaas_check.py ENDPOINTS_JSON [DC_NAME]

Reads `dcs[i].maas.{url,api_key}` from the endpoints document the twin writes, then:
connects (python-libmaas fetches the anonymous describe document and builds its client
from it), lists machines and the networking/inventory objects, commissions one New
machine and waits for Ready, tags it, allocates it with constraints (and checks that an
impossible allocation is refused with 409), deploys it and waits for Deployed, reads
its probed details (BSON), releases it (twice: the second release is a no-op) and
prints a JSON summary. Any failure exits non-zero with the error on stderr.

Python note: python-libmaas's blocking mode calls `asyncio.get_event_loop()` outside a
running loop. That still works on Python 3.11 (the library needs no patch there), but it
is deprecated from 3.12 and raises on 3.14 when no loop is set; the documented asyncio
fix, used here before importing the client, is to create and set the loop explicitly.
"""

import asyncio
import json
import sys
import time
import traceback


def _install_event_loop():
    """Give python-libmaas's synchronous wrappers a current event loop."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def _status(machine):
    # NodeStatus 0 has two names (DEFAULT, NEW); report the one MAAS users know.
    name = getattr(machine.status, "name", str(machine.status))
    return "NEW" if name == "DEFAULT" else name


def main(argv):
    if len(argv) < 2:
        print("usage: libmaas_check.py ENDPOINTS_JSON [DC_NAME]", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        doc = json.load(f)
    dcs = doc["dcs"]
    dc = next((d for d in dcs if len(argv) < 3 or d["name"] == argv[2]), None)
    if dc is None:
        print("no such DC in %s" % argv[1], file=sys.stderr)
        return 2

    _install_event_loop()
    import maas.client
    from maas.client.enum import NodeStatus
    from maas.client.viscera.machines import MachineNotFound

    summary = {"dc": dc["name"], "url": dc["maas"]["url"]}
    started = time.monotonic()
    client = maas.client.connect(dc["maas"]["url"], apikey=dc["maas"]["api_key"])

    machines = client.machines.list()
    summary["machines"] = len(machines)
    by_status = {}
    for m in machines:
        by_status[_status(m)] = by_status.get(_status(m), 0) + 1
    summary["by_status"] = by_status
    if not machines:
        raise AssertionError("the twin has no machines")

    # Inventory objects python-libmaas models.
    fabrics = client.fabrics.list()
    summary["fabrics"] = [f.name for f in fabrics]
    summary["vlans"] = sorted(v.vid for f in fabrics for v in f.vlans)
    summary["zones"] = [z.name for z in client.zones.list()]
    summary["resource_pools"] = [p.name for p in client.resource_pools.list()]
    summary["rack_controllers"] = sorted(r.hostname for r in client.rack_controllers.list())
    summary["boot_resources"] = sorted({b.name for b in client.boot_resources.list()})
    if "fabric-0" not in summary["fabrics"] or 0 not in summary["vlans"]:
        raise AssertionError("default fabric/VLAN missing: %r" % summary)
    if len(summary["rack_controllers"]) != 2:
        raise AssertionError("expected two rack controllers: %r" % summary["rack_controllers"])

    # Commission a New machine and wait for Ready.
    new = [m for m in machines if m.status == NodeStatus.NEW]
    if not new:
        raise AssertionError("no New machine to commission: %r" % by_status)
    machine = new[0]
    summary["machine"] = {"system_id": machine.system_id, "hostname": machine.hostname}
    machine.commission(wait=True, wait_interval=0.2)
    if machine.status != NodeStatus.READY:
        raise AssertionError("commissioning ended in %s" % _status(machine))
    machine = client.machines.get(system_id=machine.system_id)
    summary["commissioned"] = {
        "status": _status(machine),
        "cpus": machine.cpus,
        "memory": machine.memory,
        "power_state": machine.power_state.value,
    }

    # Tag it (python-libmaas uses op=update_nodes under the hood).
    tag = client.tags.create("libmaas-check", comment="tagged by libmaas_check.py")
    machine.tags.add(tag)
    machine = client.machines.get(system_id=machine.system_id)
    if "libmaas-check" not in [t.name for t in machine.tags]:
        raise AssertionError("tag not applied: %r" % [t.name for t in machine.tags])

    # An impossible allocation is refused (HTTP 409 -> MachineNotFound).
    try:
        client.machines.allocate(cpus=100000)
    except MachineNotFound:
        summary["impossible_allocation"] = "refused"
    else:
        raise AssertionError("allocating 100000 CPUs succeeded")

    # Allocate the machine with constraints.
    allocated = client.machines.allocate(
        hostname=machine.hostname,
        cpus=1,
        memory=1024,
        tags=["libmaas-check"],
        agent_name="libmaas-check",
    )
    if allocated.system_id != machine.system_id:
        raise AssertionError("allocated %s, wanted %s" % (allocated.system_id, machine.system_id))
    if allocated.status != NodeStatus.ALLOCATED:
        raise AssertionError("allocation left the machine %s" % _status(allocated))
    summary["allocated"] = _status(allocated)

    # Network model before deploy: a bond of both NICs (eno2 moved onto the PXE
    # VLAN first, as MAAS wants bond members on one VLAN), a static address on it
    # with the subnet's gateway as the default route; read back through libmaas.
    from maas.client.enum import InterfaceType, LinkMode

    by_name = {i.name: i for i in allocated.interfaces}
    eno1, eno2 = by_name["eno1"], by_name["eno2"]
    if eno2.vlan is None or eno2.vlan.id != eno1.vlan.id:
        eno2.vlan = eno1.vlan
        eno2.save()
    bond = allocated.interfaces.create(
        InterfaceType.BOND,
        name="bond0",
        parents=[eno1, eno2],
        bond_mode="802.3ad",
        bond_lacp_rate="fast",
        bond_xmit_hash_policy="layer3+4",
        mtu=9000,
    )
    subnets = [sn for sn in client.subnets.list() if sn.vlan.id == eno1.vlan.id and sn.gateway_ip]
    if not subnets:
        subnets = [client.subnets.create("10.77.0.0/24", eno1.vlan, gateway_ip="10.77.0.1")]
    link = bond.links.create(LinkMode.STATIC, subnet=subnets[0], default_gateway=True)
    allocated = client.machines.get(system_id=allocated.system_id)
    bond = {i.name: i for i in allocated.interfaces}["bond0"]
    summary["bond"] = {
        "type": bond.type.value,
        "parents": sorted(p.name for p in bond.parents),
        "mode": bond.params.get("bond_mode"),
        "lacp_rate": bond.params.get("bond_lacp_rate"),
        "mtu": bond.effective_mtu,
        "address": [l.ip_address for l in bond.links],
    }
    if summary["bond"]["parents"] != ["eno1", "eno2"] or summary["bond"]["mode"] != "802.3ad":
        raise AssertionError("bond read back wrong: %r" % summary["bond"])
    if link.ip_address is None or summary["bond"]["address"] != [link.ip_address]:
        raise AssertionError("static link read back wrong: %r" % summary["bond"])
    try:
        allocated.interfaces.create(InterfaceType.BOND, name="bond1", parents=[eno1])
    except Exception as e:  # MAAS answers 400 with the field error
        summary["second_bond"] = "refused: %s" % type(e).__name__
    else:
        raise AssertionError("a second bond over eno1 was accepted")

    # A bridge on the bond (a Proxmox node's vmbr0), made and read back through
    # libmaas, then removed again.
    allocated.interfaces.create(
        InterfaceType.BRIDGE, name="br0", parent=bond, bridge_stp=False, bridge_fd=0
    )
    allocated = client.machines.get(system_id=allocated.system_id)
    br = {i.name: i for i in allocated.interfaces}["br0"]
    summary["bridge"] = {
        "type": br.type.value,
        "parents": [p.name for p in br.parents],
        "bridge_type": br.params.get("bridge_type"),
        "bridge_fd": br.params.get("bridge_fd"),
    }
    wanted = {"type": "bridge", "parents": ["bond0"], "bridge_type": "standard", "bridge_fd": 0}
    if summary["bridge"] != wanted:
        raise AssertionError("bridge read back wrong: %r" % summary["bridge"])
    br.delete()

    # Deploy and wait.
    allocated.deploy(
        distro_series="noble",
        user_data=b"#cloud-config\nhostname: libmaas-check\n",
        wait=True,
        wait_interval=0.2,
    )
    if allocated.status != NodeStatus.DEPLOYED:
        raise AssertionError("deployment ended in %s" % _status(allocated))
    summary["deployed"] = {
        "status": _status(allocated),
        "osystem": allocated.osystem,
        "distro_series": allocated.distro_series,
    }

    # Probed details are BSON (lshw + lldp XML).
    details = allocated.get_details()
    if not details.get("lshw") or b"<list>" not in bytes(details["lshw"]):
        raise AssertionError("details lack lshw XML: %r" % sorted(details))
    summary["details"] = sorted(details)

    # Release, then release again: the second is a no-op on a Ready machine.
    allocated.release(wait=True, wait_interval=0.2)
    if allocated.status != NodeStatus.READY:
        raise AssertionError("release ended in %s" % _status(allocated))
    allocated.release(wait=True, wait_interval=0.2)
    if allocated.status != NodeStatus.READY:
        raise AssertionError("second release left %s" % _status(allocated))
    summary["released"] = _status(allocated)
    summary["seconds"] = round(time.monotonic() - started, 2)
    summary["ok"] = True
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - report anything the client raised
        traceback.print_exc()
        print(json.dumps({"ok": False, "error": "%s: %s" % (type(e).__name__, e)}), file=sys.stderr)
        sys.exit(1)
