#!/usr/bin/env python3
"""Build and read a machine's storage on the twin's MAAS with python-libmaas (0.6.8).

Usage: libmaas_storage.py ENDPOINTS_JSON

Commissions a New machine (MAAS applies its flat layout), reads that layout back,
clears it (`set_storage_layout blank`, through the client's generated handler: the
library has no method for it), makes one partition on each of sda and sdb with
`Partitions.create`, a RAID-1 `md0` of them with `Raids.create`, formats md0 ext4 and
mounts it at `/` with `BlockDevice.format`/`mount`. Then it reads everything back the
way a client does: `machine.block_devices` with each device's `partitions` (and each
partition's `block_device`), `machine.raids` (MAAS lists references there; each is
loaded with `refresh`) with their members and virtual device. Prints a JSON summary;
any failure exits non-zero.
"""

import asyncio
import json
import sys
import traceback


def main(argv):
    with open(argv[1]) as f:
        dc = json.load(f)["dcs"][0]
    asyncio.set_event_loop(asyncio.new_event_loop())
    import maas.client
    from maas.client.enum import NodeStatus, RaidLevel

    client = maas.client.connect(dc["maas"]["url"], apikey=dc["maas"]["api_key"])
    origin = client._origin
    new = [m for m in client.machines.list() if m.status == NodeStatus.NEW]
    machine = new[0]
    machine.commission(wait=True, wait_interval=0.2)
    machine = client.machines.get(system_id=machine.system_id)
    summary = {"system_id": machine.system_id}

    # The flat layout commissioning left on the boot disk.
    sda = machine.block_devices.get_by_name("sda")
    summary["flat"] = [
        [p.path, p.size, p.filesystem.fstype, p.filesystem.mount_point]
        for p in sda.partitions
    ]
    summary["boot_disk"] = machine.boot_disk.name

    # Clear it and build md0 from a partition on each of sda and sdb.
    machine._handler.set_storage_layout(system_id=machine.system_id, storage_layout="blank")
    machine = client.machines.get(system_id=machine.system_id)
    disks = machine.block_devices.by_name
    parts = [
        origin.Partitions.create(disks[name], disks[name].available_size)
        for name in ("sda", "sdb")
    ]
    raid = origin.Raids.create(
        machine, RaidLevel.RAID_1, parts, name="md0", spare_devices=[]
    )
    md0 = raid.virtual_device
    md0.format("ext4")
    md0.mount("/")

    # Read it all back.
    machine = client.machines.get(system_id=machine.system_id)
    summary["block_devices"] = {
        bd.name: {
            "type": bd.type.value,
            "used_for": bd.used_for,
            "partitions": [
                {
                    "path": p.path,
                    "block_device": p.block_device.id,
                    "used_for": p.used_for,
                    "fstype": p.filesystem.fstype if p.filesystem else None,
                }
                for p in bd.partitions
            ],
            "filesystem": (
                [bd.filesystem.fstype, bd.filesystem.mount_point] if bd.filesystem else None
            ),
        }
        for bd in machine.block_devices
    }
    summary["block_device_ids"] = {bd.name: bd.id for bd in machine.block_devices}
    raids = []
    for r in machine.raids:
        r.refresh()
        raids.append(
            {
                "name": r.name,
                "level": r.level.value,
                "size": r.size,
                "devices": [[type(d).__name__, d.path] for d in r.devices],
                "virtual_device": r.virtual_device.name,
                "filesystem": [
                    r.virtual_device.filesystem.fstype,
                    r.virtual_device.filesystem.mount_point,
                ],
            }
        )
    summary["raids"] = raids
    summary["raid_list"] = [r.name for r in origin.Raids.read(machine)]
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
