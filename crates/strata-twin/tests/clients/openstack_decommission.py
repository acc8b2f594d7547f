#!/usr/bin/env python3
"""A compute host's decommission on the twin's OpenStack region, with the real clients.

Usage: openstack_decommission.py ENDPOINTS_JSON [DC]

Reads the clouds.yaml beside ENDPOINTS_JSON. Boots a server with openstacksdk, then
with the `openstack` CLI (env OPENSTACK, default the venv's) disables the server's
compute service with a reason (`compute service set --disable --disable-reason`),
checks `compute service list` and `hypervisor list`, cold-migrates the server
(`server migrate --wait`), confirms it (`server migration confirm`), lists its
migrations (`server migration list`); then with openstacksdk live-migrates it to a
named host (`live_migrate_server`), reads `migrations()`, and enables the service again
(`enable_service`). Exits non-zero, saying what failed, on any failure.
"""

import json
import os
import subprocess
import sys
import time


def fail(msg):
    print(f"openstack_decommission: FAIL: {msg}", file=sys.stderr)
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
    osc = os.environ.get("OPENSTACK") or os.path.join(os.path.dirname(sys.executable), "openstack")
    try:
        import openstack
    except ImportError:
        fail("openstacksdk is not installed; run scripts/install-test-deps.sh")

    def cli(*args, parse=True):
        cmd = [osc, "--os-cloud", dc, *args]
        if parse:
            cmd += ["-f", "json"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            fail(f"{' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        print(f"--- openstack {' '.join(args)}")
        return json.loads(p.stdout) if parse and p.stdout.strip() else p.stdout

    conn = openstack.connect(cloud=dc)
    tag = f"dec{os.getpid()}"

    print("--- boot (openstacksdk)")
    image = conn.image.find_image("cirros")
    flavor = conn.compute.find_flavor("m1.small")
    server = conn.compute.create_server(
        name=f"vm-{tag}", image_id=image.id, flavor_id=flavor.id, networks="none"
    )
    server = conn.compute.wait_for_server(server, wait=120, interval=0.5)
    source = server.compute_host
    if not source:
        fail(f"no host for {server.id}")

    # The decommission starts: no new servers on the host.
    cli("compute", "service", "set", "--disable", "--disable-reason", "decommission",
        source, "nova-compute", parse=False)
    services = cli("compute", "service", "list", "--service", "nova-compute")
    mine = [s for s in services if s["Host"] == source]
    if not mine or mine[0]["Status"] != "disabled":
        fail(f"service list after disable: {services}")
    svc = next(conn.compute.services(binary="nova-compute", host=source))
    if svc.disabled_reason != "decommission":
        fail(f"disabled_reason {svc.disabled_reason!r}")
    hyps = cli("hypervisor", "list", "--long")
    if not any(source in h["Hypervisor Hostname"] and h.get("State") == "up" for h in hyps):
        fail(f"hypervisor list: {hyps}")

    # Cold migration: the scheduler picks another (enabled) host; confirm it.
    cli("server", "migrate", "--wait", server.id, parse=False)
    shown = cli("server", "show", server.id)
    if shown["status"] != "VERIFY_RESIZE":
        fail(f"after migrate: status {shown['status']}")
    dest = shown.get("OS-EXT-SRV-ATTR:host") or shown.get("host")
    if not dest or dest == source:
        fail(f"after migrate: host {dest!r} (source {source})")
    cli("server", "migration", "confirm", server.id, parse=False)
    for _ in range(100):
        if conn.compute.get_server(server.id).status == "ACTIVE":
            break
        time.sleep(0.2)
    else:
        fail("not ACTIVE after confirm")
    migs = cli("server", "migration", "list", "--server", server.id)
    if not any(m.get("Status") == "confirmed" for m in migs):
        fail(f"server migration list: {migs}")

    # Another disabled host is never picked; asking for it by name does not work either.
    cli("--os-compute-api-version", "2.56", "server", "migrate", "--host", source,
        server.id, parse=False)
    for _ in range(100):
        s = conn.compute.get_server(server.id)
        if s.status == "ACTIVE" and not s.task_state:
            break
        time.sleep(0.2)
    s = conn.compute.get_server(server.id)
    if s.compute_host != dest:
        fail(f"migrated to a disabled host: {s.compute_host}")

    # Live migration (openstacksdk) to a named, enabled host.
    hosts = sorted(
        s.host
        for s in conn.compute.services(binary="nova-compute")
        if s.status == "enabled" and s.host != dest and "gpu" not in s.host
    )
    if not hosts:
        fail("no other enabled host")
    print(f"--- live migrate to {hosts[0]} (openstacksdk)")
    conn.compute.live_migrate_server(server, host=hosts[0], block_migration="auto")
    for _ in range(100):
        s = conn.compute.get_server(server.id)
        if s.status == "ACTIVE" and s.compute_host == hosts[0]:
            break
        time.sleep(0.2)
    else:
        fail(f"live migration did not land: {s.status} on {s.compute_host}")
    types = sorted({m.migration_type for m in conn.compute.migrations(instance_uuid=server.id)})
    if types != ["live-migration", "migration"]:
        fail(f"migrations of the server: {types}")

    print("--- enable (openstacksdk)")
    conn.compute.enable_service(svc, host=source, binary="nova-compute")
    svc = next(conn.compute.services(binary="nova-compute", host=source))
    if svc.status != "enabled":
        fail(f"still {svc.status}")

    conn.compute.delete_server(server)
    print(json.dumps({"ok": True, "source": source, "cold": dest, "live": hosts[0]}))


if __name__ == "__main__":
    main()
