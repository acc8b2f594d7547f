#!/usr/bin/env python3
"""Read a machine's hardware facts on the twin's MAAS with python-libmaas (0.6.8).

Usage: libmaas_hardware.py ENDPOINTS_JSON

Uploads a commissioning script through the client's generated `NodeScripts` handler
(the library has no object for scripts) with only its text: the embedded metadata
names it. Commissions the New machine (`Machine.commission`, waiting), then reads
what an onboarding check reads: `machine.cpus` and `machine.memory`, the machine's
`hardware_info` and `numanode_set`, each interface's speeds and carrier, the GPUs
among the node devices (`NodeDevices`), and the script's result (`NodeScriptResult`
with its output). Prints a JSON summary; any failure exits non-zero.
"""

import asyncio
import base64
import json
import sys
import traceback

SCRIPT = """#!/bin/sh
# --- Start MAAS 1.0 script metadata ---
# name: pcie-links
# title: PCIe links of the GPUs
# script_type: commissioning
# hardware_type: gpu
# --- End MAAS 1.0 script metadata ---
for d in "${SYSFS_ROOT:-/sys}"/bus/pci/devices/*; do
  case "$(cat "$d/class")" in
    0x03*) echo "$(basename "$d") $(cat "$d/current_link_speed") x$(cat "$d/current_link_width")" ;;
  esac
done
"""


def main(argv):
    with open(argv[1]) as f:
        dc = json.load(f)["dcs"][0]
    asyncio.set_event_loop(asyncio.new_event_loop())
    import maas.client
    from maas.client.enum import NodeStatus

    client = maas.client.connect(dc["maas"]["url"], apikey=dc["maas"]["api_key"])
    session = client._origin.session
    created = session.NodeScripts.create(script=SCRIPT)

    machine = [m for m in client.machines.list() if m.status == NodeStatus.NEW][0]
    machine.commission(wait=True, wait_interval=0.2)
    machine = client.machines.get(system_id=machine.system_id)
    hw = machine._data["hardware_info"]
    devices = session.NodeDevices.read(system_id=machine.system_id, hardware_type="gpu")
    results = session.NodeScriptResult.read(
        system_id=machine.system_id,
        id="current-commissioning",
        include_output="1",
        filters="pcie-links",
    )
    link = results["results"][0]
    summary = {
        "script": [created["name"], created["type_name"]],
        "status": machine.status.name,
        "cpus": machine.cpus,
        "memory": machine.memory,
        "cpu_model": hw["cpu_model"],
        "system_vendor": hw["system_vendor"],
        "bios_version": hw["mainboard_firmware_version"],
        "numa": [[n["index"], n["memory"], n["cores"]] for n in machine._data["numanode_set"]],
        "interfaces": {
            i.name: [i._data["interface_speed"], i._data["link_speed"], i._data["link_connected"]]
            for i in machine.interfaces
        },
        "gpus": [
            [d["pci_address"], d["numa_node"], d["vendor_id"], d["product_id"]] for d in devices
        ],
        "pcie_links": {
            "status": link["status_name"],
            "exit_status": link["exit_status"],
            "stdout": base64.b64decode(link["stdout"]).decode(),
        },
        "ok": True,
    }
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
