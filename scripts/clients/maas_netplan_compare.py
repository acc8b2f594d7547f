#!/usr/bin/env python3
"""Compare each deployed machine's network in MAAS with the netplan strata renders.

Usage: maas_netplan_compare.py ENDPOINTS_JSON RENDER_DIR

For every machine MAAS holds whose netplan file exists under RENDER_DIR/<dc>/netplan/,
read its interfaces through python-libmaas (what MAAS hands curtin at deploy: bonds,
VLAN interfaces, static links, the default gateway) and compare them with the file:
bond members, mode, LACP rate, hash policy and MTU; each VLAN device's VID, parent,
MTU and addresses; the native address on the bond (or NIC); the default route.

Prints JSON: {"machines": N, "compared": {hostname: {"only_netplan": [...],
"mismatch": [...]}}}. Exit status 0 unless the script itself fails.
"""

import asyncio
import json
import os
import sys

import yaml


def netplan_model(doc):
    net = doc["network"]
    out = {"devices": {}, "bond": None, "gateway": None}
    for name, b in (net.get("bonds") or {}).items():
        p = b.get("parameters", {})
        out["bond"] = {
            "name": name,
            "members": sorted(b.get("interfaces", [])),
            "mode": p.get("mode"),
            "lacp_rate": p.get("lacp-rate"),
            "hash": p.get("transmit-hash-policy"),
            "mtu": b.get("mtu"),
        }
    for kind in ("bonds", "ethernets", "vlans"):
        for name, d in (net.get(kind) or {}).items():
            addresses = sorted(d.get("addresses") or [])
            if kind == "ethernets" and not addresses:
                continue
            out["devices"][name] = {
                "vid": d.get("id"),
                "link": d.get("link"),
                "mtu": d.get("mtu"),
                "addresses": addresses,
            }
            for r in d.get("routes") or []:
                if r.get("to") == "default":
                    out["gateway"] = r.get("via")
    return out


def maas_model(machine):
    data = machine._data
    ifaces = data.get("interface_set") or []
    by_id = {i["id"]: i for i in ifaces}
    out = {"devices": {}, "bond": None, "gateway": None}
    for i in ifaces:
        addresses = sorted(
            "%s/%s" % (l["ip_address"], l["subnet"]["cidr"].split("/")[1])
            for l in i.get("links") or []
            if l.get("ip_address") and l.get("subnet")
        )
        params = i.get("params") or {}
        if i.get("type") == "bond":
            out["bond"] = {
                "name": i["name"],
                "members": sorted(i.get("parents") or []),
                "mode": params.get("bond_mode"),
                "lacp_rate": params.get("bond_lacp_rate") if params.get("bond_mode") == "802.3ad" else None,
                "hash": params.get("bond_xmit_hash_policy") if params.get("bond_mode") == "802.3ad" else None,
                "mtu": i.get("effective_mtu"),
            }
        if i.get("type") == "physical" and not addresses:
            continue
        vlan = i.get("vlan") or {}
        parents = i.get("parents") or []
        out["devices"][i["name"]] = {
            "vid": vlan.get("vid") if i.get("type") == "vlan" else None,
            "link": parents[0] if i.get("type") == "vlan" and parents else None,
            "mtu": i.get("effective_mtu"),
            "addresses": addresses,
        }
    gw = (data.get("default_gateways") or {}).get("ipv4") or {}
    out["gateway"] = gw.get("gateway_ip")
    return out


def compare(want, have):
    only_netplan, mismatch = [], []
    if want["bond"] != have["bond"]:
        mismatch.append("bond: netplan %r, MAAS %r" % (want["bond"], have["bond"]))
    for name, d in want["devices"].items():
        h = have["devices"].get(name)
        if h is None:
            only_netplan.append(name)
            continue
        for k in ("vid", "link", "mtu", "addresses"):
            if d[k] != h[k]:
                mismatch.append("%s.%s: netplan %r, MAAS %r" % (name, k, d[k], h[k]))
    for name in have["devices"]:
        if name not in want["devices"]:
            mismatch.append("%s: in MAAS, not in netplan" % name)
    return only_netplan, mismatch


def main(argv):
    asyncio.set_event_loop(asyncio.new_event_loop())
    import maas.client

    doc = json.load(open(argv[1]))
    render = argv[2]
    result = {"machines": 0, "compared": {}, "gateways": {}}
    for dc in doc["dcs"]:
        client = maas.client.connect(dc["maas"]["url"], apikey=dc["maas"]["api_key"])
        for m in client.machines.list():
            path = os.path.join(render, dc["name"], "netplan", m.hostname + ".yaml")
            result["machines"] += 1
            if not os.path.exists(path):
                continue
            want = netplan_model(yaml.safe_load(open(path)))
            have = maas_model(m)
            only_netplan, mismatch = compare(want, have)
            result["compared"][m.hostname] = {
                "status": m._data.get("status_name"),
                "only_netplan": only_netplan,
                "mismatch": mismatch,
            }
            result["gateways"][m.hostname] = [want["gateway"], have["gateway"]]
    print(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
