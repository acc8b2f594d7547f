#!/usr/bin/env python3
"""Regenerate examples/broken/*: the small fleet in scripts/broken-base.yaml with one
mistake each. The faulty line carries `# expect: CODE`; tests/broken_examples.rs
asserts that `strata validate` reports exactly that code on exactly that line.

Usage: scripts/gen-broken-examples.py   (run from the repository root)
"""
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
BASE = (ROOT / "scripts" / "broken-base.yaml").read_text()
OUT = ROOT / "examples" / "broken"

M = "hv-std, role: proxmox, bmc: { credential: { env: BMC_PASSWORD } } }"

# name: (what is wrong, [(old, new)])
VARIANTS = {
    "overlapping-subnets": (
        "the loopback pool lies inside the site supernets",
        [("  loopbacks: { pool: 10.255.0.0/16, prefix_len: 24 }",
          "  loopbacks: { pool: 10.0.0.0/16, prefix_len: 24 }  # expect: S0301")],
    ),
    "exhausted-pool": (
        "one spine ASN for two DCs",
        [("    spines: 4200000000-4200000099", "    spines: 4200000000-4200000000  # expect: S0302")],
    ),
    "vxlan-mtu-too-small": (
        "the underlay MTU cannot carry a 9000-byte overlay plus VXLAN",
        [("  underlay: 9216", "  underlay: 9000  # expect: S0303")],
    ),
    "misspelled-field": (
        "`leaves_per_rack` is misspelled",
        [("    leaves_per_rack: 2", "    leaves_per_rak: 2  # expect: S0102")],
    ),
    "duplicate-key": (
        "`spines` appears twice in one mapping",
        [("    spines: 2\n", "    spines: 2\n    spines: 4  # expect: S0103\n")],
    ),
    "undeclared-snowflake": (
        "ams1 overrides the spine count without a reason",
        [("      - { name: r01, az: az1 }\n\ninterconnects:",
          "      - { name: r01, az: az1 }\n    overrides:\n      - { path: fabric.spines, value: 4 }  # expect: S0501\n\ninterconnects:")],
    ),
    "unknown-profile": (
        "a machine names a profile that does not exist",
        [("serial: F4, site: fra1, rack: r01, slot: 4, profile: hv-std, role: openstack-compute, bmc: { credential: { env: BMC_PASSWORD } } }",
          "serial: F4, site: fra1, rack: r01, slot: 4, profile: hv-sdt, role: openstack-compute, bmc: { credential: { env: BMC_PASSWORD } } }  # expect: S0201")],
    ),
    "bgp-asn-mismatch": (
        "fra1 configures the wrong remote AS for ams1's border leaf",
        [("    a: { site: fra1 }", "    a: { site: fra1, remote_asn: 4200001999 }  # expect: S0308")],
    ),
    "inline-secret": (
        "a BMC password is written inline",
        [("serial: F1, site: fra1, rack: r01, slot: 1, profile: " + M,
          "serial: F1, site: fra1, rack: r01, slot: 1, profile: hv-std, role: proxmox, bmc: { credential: hunter2 } }  # expect: S0108")],
    ),
    "even-proxmox-cluster": (
        "four Proxmox nodes and no QDevice",
        [("        nodes: 3", "        nodes: 4  # expect: S0403"),
         ("  - { serial: F4,", "  - { serial: F5, site: fra1, rack: r01, slot: 5, profile: " + M + "\n  - { serial: F4,"),
         ("  - { serial: A4,", "  - { serial: A5, site: ams1, rack: r01, slot: 5, profile: " + M + "\n  - { serial: A4,")],
    ),
    "az-below-minimum": (
        "an AZ needs two compute nodes but each DC has one",
        [("      - { name: az1, min_compute: 1 }", "      - { name: az1, min_compute: 2 }  # expect: S0404")],
    ),
    "gpu-flavor-without-gpu": (
        "a GPU flavor asks for more GPUs than the profile has",
        [("gpu_model: NVIDIA H100 SXM5 80GB, gpus: 1,", "gpu_model: NVIDIA H100 SXM5 80GB, gpus: 16,"),
         ("vcpus: 24, ram_mib: 196608, disk_gb: 400 }", "vcpus: 24, ram_mib: 196608, disk_gb: 400 }  # expect: S0405")],
    ),
    "provisioning-without-dhcp": (
        "no rack controller serves DHCP on the provisioning VLAN",
        [("      - { name: rack-a, dhcp: [provisioning, bmc] }", "      - { name: rack-a, dhcp: [bmc] }  # expect: S0401"),
         ("      - { name: rack-b, dhcp: [provisioning, bmc] }", "      - { name: rack-b, dhcp: [bmc] }")],
    ),
    "duplicate-vni": (
        "two tenant networks pin the same VNI",
        [("      - { name: web }", "      - { name: db, vni: 10500 }\n      - { name: web, vni: 10500 }  # expect: S0305")],
    ),
    "rack-without-room": (
        "a machine is placed above the top of its 42U rack",
        [("serial: F4, site: fra1, rack: r01, slot: 4,", "serial: F4, site: fra1, rack: r01, slot: 45,"),
         ("role: openstack-compute, bmc: { credential: { env: BMC_PASSWORD } } }\n  - { serial: A1",
          "role: openstack-compute, bmc: { credential: { env: BMC_PASSWORD } } }  # expect: S0205\n  - { serial: A1")],
    ),
    "alias-bomb": (
        "an override value expands 10^9 nodes through aliases (a \"billion laughs\" bomb)",
        [("      - { name: r01, az: az1 }\n\ninterconnects:",
          "      - { name: r01, az: az1 }\n    overrides:\n      - path: fabric.spines\n        reason: bomb\n        value:\n"
          + "          - &a [x, x, x, x, x, x, x, x, x, x]\n"
          + "".join(f"          - &{chr(98+i)} [{', '.join(['*' + chr(97+i)] * 10)}]"
                    + ("  # expect: S0107" if chr(98 + i) == "d" else "") + "\n" for i in range(8))
          + "          - [*i, *i, *i, *i, *i, *i, *i, *i, *i, *i]\n\ninterconnects:")],
    ),
    "unknown-site": (
        "a VM names a site that does not exist",
        [("  - { name: os-ctl1, site: ams1,", "  - { name: os-ctl1, site: ams2,")],
    ),
}


def main():
    if OUT.exists():
        for d in OUT.iterdir():
            if d.is_dir():
                shutil.rmtree(d)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (what, edits) in sorted(VARIANTS.items()):
        text = BASE
        for old, new in edits:
            if text.count(old) != 1:
                raise SystemExit(f"{name}: `{old}` occurs {text.count(old)} times in the base")
            text = text.replace(old, new)
        if name == "unknown-site":
            lines = text.splitlines(keepends=True)
            lines = [l.rstrip("\n") + "  # expect: S0202\n" if "site: ams2" in l else l for l in lines]
            text = "".join(lines)
        if "# expect:" not in text:
            raise SystemExit(f"{name}: no `# expect:` marker")
        header = f"# examples/broken/{name}: {what}.\n"
        (OUT / name).mkdir()
        (OUT / name / "fleet.yaml").write_text(header + text)
    print(f"wrote {len(VARIANTS)} broken examples into {OUT}")


if __name__ == "__main__":
    main()
