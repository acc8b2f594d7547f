#!/usr/bin/env python3
"""Drive a twin's OpenStack region with openstacksdk.

Usage: openstacksdk_check.py ENDPOINTS_JSON [DC]

Reads the clouds.yaml beside ENDPOINTS_JSON (one cloud per DC, as
`RunningTwin::write_endpoints` writes it) and runs the basics: authenticate, list and
create flavors (with a PCI alias), create a provider network with a subnet, boot a
server and wait for it, list servers, read quotas, list images and resource providers,
then clean up. Exits non-zero, saying what failed, on any failure. Environment: VLAN
(the provider segment, default 1002).
"""

import json
import os
import sys


def fail(msg):
    print(f"openstacksdk_check: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    endpoints = os.path.abspath(sys.argv[1])
    clouds = os.path.join(os.path.dirname(endpoints), "clouds.yaml")
    if not os.path.exists(clouds):
        fail(f"no clouds.yaml beside {endpoints}")
    os.environ["OS_CLIENT_CONFIG_FILE"] = clouds
    with open(endpoints) as f:
        doc = json.load(f)
    dc = sys.argv[2] if len(sys.argv) > 2 else doc["dcs"][0]["name"]
    vlan = int(os.environ.get("VLAN", "1002"))
    try:
        import openstack
    except ImportError:
        fail("openstacksdk is not installed; run scripts/install-test-deps.sh")

    conn = openstack.connect(cloud=dc)
    tag = f"sdk{os.getpid()}"

    print("--- authorize")
    token = conn.authorize()
    if not token:
        fail("no token")
    project_id = conn.current_project_id
    if not project_id:
        fail("no project id after authentication")
    catalog_regions = {
        e["region_id"]
        for s in conn.session.auth.get_access(conn.session).service_catalog.catalog
        for e in s["endpoints"]
    }
    if catalog_regions != {dc}:
        fail(f"catalog regions {catalog_regions}, wanted {{{dc}}}")

    print("--- flavors")
    names = [f.name for f in conn.compute.flavors()]
    if "m1.tiny" not in names:
        fail(f"flavor list: {names}")
    flavor = conn.compute.create_flavor(name=f"gpu.{tag}", vcpus=4, ram=8192, disk=20)
    conn.compute.create_flavor_extra_specs(flavor, {"pci_passthrough:alias": "gpu-h100:1"})
    specs = conn.compute.fetch_flavor_extra_specs(flavor).extra_specs
    if specs.get("pci_passthrough:alias") != "gpu-h100:1":
        fail(f"extra specs {specs}")
    try:
        conn.compute.create_flavor(name=f"gpu.{tag}", vcpus=4, ram=8192, disk=20)
        fail("a duplicate flavor name was accepted")
    except openstack.exceptions.ConflictException:
        pass

    print("--- networks")
    if "public" not in [n.name for n in conn.network.networks()]:
        fail("network list: public missing")
    net = conn.network.create_network(
        name=f"net-{tag}",
        provider_network_type="vlan",
        provider_physical_network="physnet1",
        provider_segmentation_id=vlan,
    )
    if net.provider_segmentation_id != vlan:
        fail(f"segmentation id {net.provider_segmentation_id}")
    try:
        conn.network.create_network(
            name=f"dup-{tag}",
            provider_network_type="vlan",
            provider_physical_network="physnet1",
            provider_segmentation_id=vlan,
        )
        fail("a second network on the same VLAN was accepted")
    except openstack.exceptions.ConflictException:
        pass
    subnet = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.98.0.0/24", name=f"sub-{tag}")
    if subnet.gateway_ip != "10.98.0.1":
        fail(f"gateway {subnet.gateway_ip}")
    page = list(conn.network.networks(limit=1))
    if len(page) < 2:
        fail("paginated network listing did not follow the next links")

    print("--- images")
    image = conn.image.find_image("cirros")
    if image is None or image.status != "active":
        fail("cirros image missing")

    print("--- server")
    server = conn.compute.create_server(
        name=f"vm-{tag}", flavor_id=flavor.id, image_id=image.id, networks=[{"uuid": net.id}]
    )
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=60, interval=1)
    if "gpu" not in (server.compute_host or ""):
        fail(f"a GPU flavor landed on {server.compute_host!r}")
    if not any(s.id == server.id for s in conn.compute.servers()):
        fail("server list does not show the server")
    ports = list(conn.network.ports(device_id=server.id))
    if len(ports) != 1:
        fail(f"ports of the server: {ports}")
    conn.compute.stop_server(server)
    conn.compute.wait_for_server(server, status="SHUTOFF", wait=60, interval=1)
    conn.compute.start_server(server)
    conn.compute.wait_for_server(server, status="ACTIVE", wait=60, interval=1)

    print("--- quotas, hypervisors, placement")
    quotas = conn.compute.get_quota_set(project_id)
    if quotas.instances is None or quotas.cores is None:
        fail(f"quota set {quotas}")
    if len(list(conn.compute.hypervisors())) < 4:
        fail("hypervisors")
    rps = list(conn.placement.resource_providers())
    if len(rps) < 4:
        fail(f"resource providers: {rps}")

    print("--- cleanup")
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60, interval=1)
    conn.network.delete_network(net)
    conn.compute.delete_flavor(flavor)
    print(f"openstacksdk_check: OK ({dc})")


if __name__ == "__main__":
    main()
