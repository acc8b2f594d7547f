#!/usr/bin/env python3
"""Removing a node from the twin's Proxmox VE cluster and a compute service from its
OpenStack region, with the real clients.

Usage: platform_removal.py ENDPOINTS_JSON

On the first DC of the endpoints document:

- proxmoxer lists the corosync nodes (`cluster.config.nodes.get()`), is refused the
  removal with the API token (403: `delnode` is root@pam's only), logs in as root@pam
  and is refused removing the node answering the API (`Cannot delete myself from
  cluster!`), then removes the last node (`cluster.config.nodes(name).delete()`) and
  checks it is gone from the node list and `/nodes`.
- openstacksdk boots a server, is refused deleting its host's compute service
  (`ConflictException`, 409), deletes the service of an idle host
  (`conn.compute.delete_service`) and checks that the service, the hypervisor and its
  Placement resource provider are gone; then deletes the server.

Prints a JSON summary; exits non-zero on any failure.
"""

import json
import os
import sys
import time
from urllib.parse import urlparse

from proxmoxer import ProxmoxAPI, ResourceException


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def refused(call, code, text, what):
    try:
        call()
    except ResourceException as e:
        check(e.status_code == code, f"{what}: status {e.status_code}, wanted {code} ({e})")
        check(text in str(e), f"{what}: {e!s} does not say {text!r}")
        return
    raise CheckFailed(f"{what}: was accepted")


def proxmox(dc):
    pve = dc["proxmox"]
    url = urlparse(pve["url"])
    user, token_name = pve["token_id"].split("!", 1)
    token = ProxmoxAPI(
        url.hostname,
        port=url.port,
        user=user,
        token_name=token_name,
        token_value=pve["token_secret"],
        verify_ssl=pve["ca_file"],
        timeout=30,
    )
    root = ProxmoxAPI(
        url.hostname,
        port=url.port,
        user=pve["user"],
        password=pve["password"],
        verify_ssl=pve["ca_file"],
        timeout=30,
    )
    members = sorted(n["node"] for n in token.cluster.config.nodes.get())
    check(len(members) >= 3, f"corosync nodes: {members}")
    local = next(
        e["name"] for e in token.cluster.status.get() if e.get("type") == "node" and e.get("local")
    )
    victim = members[-1]
    check(victim != local, f"the last node {victim} answers the API")
    refused(
        lambda: token.cluster.config.nodes(victim).delete(),
        403,
        "user != root@pam",
        "delnode with a token",
    )
    refused(
        lambda: root.cluster.config.nodes(local).delete(),
        500,
        "Cannot delete myself from cluster!",
        "delnode of the node answering",
    )
    root.cluster.config.nodes(victim).delete()
    after = sorted(n["node"] for n in root.cluster.config.nodes.get())
    check(victim not in after, f"{victim} still a corosync node: {after}")
    check(
        victim not in [n["node"] for n in root.nodes.get()],
        f"{victim} still in /nodes",
    )
    return {"removed": victim, "nodes": after}


def openstack_side(endpoints, dc):
    clouds = os.path.join(os.path.dirname(endpoints), "clouds.yaml")
    os.environ["OS_CLIENT_CONFIG_FILE"] = clouds
    import openstack
    from openstack import exceptions

    conn = openstack.connect(cloud=dc)
    image = conn.image.find_image("cirros")
    flavor = conn.compute.find_flavor("m1.small")
    server = conn.compute.create_server(
        name=f"rm-{os.getpid()}", image_id=image.id, flavor_id=flavor.id, networks="none"
    )
    server = conn.compute.wait_for_server(server, wait=120, interval=0.5)
    busy = server.compute_host
    check(busy, f"no host for {server.id}")
    busy_svc = next(conn.compute.services(binary="nova-compute", host=busy))
    try:
        conn.compute.delete_service(busy_svc)
    except exceptions.ConflictException as e:
        check("hosting instances" in str(e), f"409 says {e}")
    else:
        raise CheckFailed(f"deleting the service of {busy}, which has a server, was accepted")

    used = {s.compute_host for s in conn.compute.servers(all_projects=True)}
    idle = sorted(
        s.host
        for s in conn.compute.services(binary="nova-compute")
        if s.host not in used and "gpu" not in s.host
    )
    check(idle, "no idle compute host")
    host = idle[0]
    svc = next(conn.compute.services(binary="nova-compute", host=host))
    hyp = [h for h in conn.compute.hypervisors(details=True) if h.service_details["host"] == host]
    check(len(hyp) == 1, f"hypervisors of {host}: {hyp}")
    name = hyp[0].name
    check(
        len(list(conn.placement.resource_providers(name=name))) == 1,
        f"no resource provider {name}",
    )
    conn.compute.delete_service(svc, ignore_missing=False)
    check(
        not list(conn.compute.services(binary="nova-compute", host=host)),
        f"{host}'s service is still listed",
    )
    check(
        not [h for h in conn.compute.hypervisors() if h.name == name],
        f"hypervisor {name} is still listed",
    )
    check(
        not list(conn.placement.resource_providers(name=name)),
        f"resource provider {name} is still there",
    )
    conn.compute.delete_server(server)
    for _ in range(100):
        if conn.compute.find_server(server.id) is None:
            break
        time.sleep(0.2)
    return {"refused": busy, "deleted": host}


def main(argv):
    endpoints = os.path.abspath(argv[1])
    with open(endpoints) as f:
        dc = json.load(f)["dcs"][0]
    out = {"dc": dc["name"]}
    try:
        out["proxmox"] = proxmox(dc)
        out["openstack"] = openstack_side(endpoints, dc["name"])
    except CheckFailed as e:
        print(f"platform_removal: FAIL: {e}", file=sys.stderr)
        print(json.dumps({**out, "ok": False, "error": str(e)}))
        return 1
    out["ok"] = True
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
