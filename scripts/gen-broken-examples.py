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

QUOTA = "    default_quota: { instances: 10, cores: 40, ram_mib: 163840 }\n"
RACK_B = "      - { name: rack-b, dhcp: [provisioning, bmc] }\n"
PVE_IMAGE = RACK_B + "    images: [{ role: proxmox, image: custom/debian-13-pve }]\n"
HYPERVISORS = "    - { stage: hypervisors, machines: [proxmox], install: preinstalled }\n"
MAAS_STAGE = "    - { stage: maas, vms: [maas-region, maas-rack] }\n"
CONTROL = "    - { stage: control, vms: [openstack-control] }\n"
HOSTS = "    - { stage: hosts, machines: [openstack-compute], install: maas }\n"

# name: (what is wrong, [(old, new)])
VARIANTS = {
    "maas-deploys-its-own-hypervisors": (
        "MAAS would deploy the Proxmox nodes its own VMs run on",
        [(RACK_B, PVE_IMAGE),
         (QUOTA, QUOTA + "  bootstrap:\n"
          + "    - { stage: hypervisors, machines: [proxmox], install: maas }  # expect: S0420\n"
          + MAAS_STAGE + CONTROL + HOSTS)],
    ),
    "deployed-before-maas-runs": (
        "a bootstrap stage has MAAS deploy machines before the stage that starts MAAS",
        [(QUOTA, QUOTA + "  bootstrap:\n" + HYPERVISORS
          + "    - { stage: hosts, machines: [openstack-compute], install: maas }  # expect: S0420\n"
          + MAAS_STAGE + CONTROL)],
    ),
    "bootstrap-without-a-role": (
        "the bootstrap order brings up no openstack-compute machines although the inventory has some",
        [(QUOTA, QUOTA + "  bootstrap:\n"
          + "    - { stage: hypervisors, machines: [proxmox], install: preinstalled }  # expect: S0421\n"
          + MAAS_STAGE + CONTROL)],
    ),
    "proxmox-on-ubuntu": (
        "the Proxmox role's image is Ubuntu, but Proxmox VE 9 runs on Debian 13",
        [(RACK_B, RACK_B + "    images: [{ role: proxmox, image: ubuntu/noble }]  # expect: S0422\n")],
    ),
    "ha-vm-on-local-storage": (
        "an HA-managed VM has its disk on a local ZFS pool",
        [("          - { name: ceph-vm, kind: rbd, tier: ssd, ceph_pool: vm }\n",
          "          - { name: ceph-vm, kind: rbd, tier: ssd, ceph_pool: vm }\n          - { name: local-nvme, kind: zfspool, tier: nvme }\n"),
         ("  - { name: os-ctl1, site: fra1, role: openstack-control, cores: 8, memory_mib: 32768, disk_gb: 100, networks: [provisioning, management] }",
          "  - { name: os-ctl1, site: fra1, role: openstack-control, cores: 8, memory_mib: 32768, disk_gb: 100, storage: local-nvme, networks: [provisioning, management], ha: true }  # expect: S0409")],
    ),
    "ha-rule-more-apart-than-nodes": (
        "a negative HA rule keeps four VMs apart on a three-node cluster",
        [("          - { name: rack-apart, type: resource-affinity, affinity: negative, roles: [maas-rack] }",
          "          - { name: rack-apart, type: resource-affinity, affinity: negative, roles: [maas-rack, maas-region, openstack-control] }  # expect: S0408")],
    ),
    "ha-rule-without-affinity": (
        "a resource-affinity HA rule does not say whether to keep its VMs together or apart",
        [("          - { name: rack-apart, type: resource-affinity, affinity: negative, roles: [maas-rack] }",
          "          - { name: rack-apart, type: resource-affinity, roles: [maas-rack] }  # expect: S0408")],
    ),
    "ha-rule-failback-without-nodes": (
        "`failback: false` (PVE 8's nofailback) on a resource-affinity rule, which has no preferred nodes",
        [("          - { name: rack-apart, type: resource-affinity, affinity: negative, roles: [maas-rack] }",
          "          - { name: rack-apart, type: resource-affinity, affinity: negative, failback: false, roles: [maas-rack] }  # expect: S0408")],
    ),
    "ha-rule-unknown-vm": (
        "an HA rule names a VM that does not exist",
        [("          - { name: rack-apart, type: resource-affinity, affinity: negative, roles: [maas-rack] }",
          "          - { name: ctl-pin, type: node-affinity, vms: [os-ctl9] }  # expect: S0208")],
    ),
    "ha-groups-retired": (
        "Proxmox VE 9 has no HA groups; the spec says ha_groups",
        [("        ha_rules:\n", "        ha_groups:  # expect: S0102\n")],
    ),
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
    "gpu-flavor-numa-unfit": (
        "a pinned GPU flavor wants more vCPUs than the GPU host's NUMA nodes can pin, split any way",
        [("gpus: 1, vcpus: 24, ram_mib: 196608, disk_gb: 400 }", "gpus: 8, vcpus: 240, ram_mib: 196608, disk_gb: 400 }  # expect: S0412")],
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
    "vni-out-of-range": (
        "a tenant network pins a VNI that does not fit in VXLAN's 24 bits",
        [("      - { name: web }", "      - { name: web, vni: 16777216 }  # expect: S0311")],
    ),
    "multicast-anycast-mac": (
        "the anycast gateway MAC is a multicast address",
        [("    border_leaves: 1\n",
          "    border_leaves: 1\n    overlay: { anycast_gateway_mac: \"01:00:5e:00:01:01\" }  # expect: S0312\n")],
    ),
    "duplicate-pxe-mac": (
        "machines in two DCs are given the same PXE MAC",
        [("serial: F1, site: fra1, rack: r01, slot: 1, profile: " + M,
          "serial: F1, site: fra1, rack: r01, slot: 1, profile: hv-std, role: proxmox, pxe_mac: \"52:54:00:00:00:01\", bmc: { credential: { env: BMC_PASSWORD } } }"),
         ("serial: A1, site: ams1, rack: r01, slot: 1, profile: " + M,
          "serial: A1, site: ams1, rack: r01, slot: 1, profile: hv-std, role: proxmox, pxe_mac: \"52:54:00:00:00:01\", bmc: { credential: { env: BMC_PASSWORD } } }  # expect: S0210")],
    ),
    "overlapping-asn-pools": (
        "the leaf ASN pool overlaps the spine ASN pool",
        [("    leaves: 4200001000-4200001999", "    leaves: 4200000050-4200001999  # expect: S0313")],
    ),
    "tenant-vlan-range": (
        "the tenant VLAN range runs past 802.1Q's last VLAN id",
        [("    tenant: 1000-1999", "    tenant: 4000-4199  # expect: S0104")],
    ),
    "mtu-out-of-range": (
        "a VLAN MTU is below what IPv6 needs",
        [("    corosync: { vid: 30, mtu: 1500 }", "    corosync: { vid: 30, mtu: 1000 }  # expect: S0104")],
    ),
    "vm-does-not-fit": (
        "a VM has more vCPUs than any Proxmox node",
        [("  - { name: os-ctl1, site: fra1, role: openstack-control, cores: 8,",
          "  - { name: os-ctl1, site: fra1, role: openstack-control, cores: 256,"),
         ("networks: [provisioning, management] }\n  - { name: os-ctl1, site: ams1",
          "networks: [provisioning, management] }  # expect: S0406\n  - { name: os-ctl1, site: ams1")],
    ),
    "raid-member-missing": (
        "a RAID array uses a disk the profile does not have",
        [("    disks: [{ name: sda, kind: ssd, size_gb: 480 }]\n",
          "    disks: [{ name: sda, kind: ssd, size_gb: 480 }]\n    raid: [{ name: md0, level: raid1, members: [sda, sdb] }]  # expect: S0208\n")],
    ),
    "bond-member-missing": (
        "a bond uses a NIC the profile does not have",
        [("    nics: [{ name: ens1f0, speed_gbps: 25 }, { name: ens1f1, speed_gbps: 25 }]\n    bonds: [{ name: bond0, members: [ens1f0, ens1f1] }]",
          "    nics: [{ name: ens1f0, speed_gbps: 25 }, { name: ens1f1, speed_gbps: 25 }]\n    bonds: [{ name: bond0, members: [ens1f0, ens2f0] }]  # expect: S0208")],
    ),
    "gpu-numa-beyond-profile": (
        "a GPU sits on a NUMA node the two-node profile does not have",
        [("pcie_gen: 5, pcie_width: 16 }", "pcie_gen: 5, pcie_width: 16, numa: [0, 0, 0, 0, 1, 1, 2, 2] }  # expect: S0208")],
    ),
    "hostname-template-collision": (
        "the machine naming template drops the role, so a hypervisor and a compute node share a name in every DC",
        [("  domain: dc.example.net\n",
          "  domain: dc.example.net\n  naming: { machine: \"{site}-{rack}-{index}\" }  # expect: S0204\n")],
    ),
    "duplicate-bmc-address": (
        "two machines pin the same BMC address",
        [("serial: F1, site: fra1, rack: r01, slot: 1, profile: " + M,
          "serial: F1, site: fra1, rack: r01, slot: 1, profile: hv-std, role: proxmox, bmc: { address: 10.1.0.50, credential: { env: BMC_PASSWORD } } }"),
         ("serial: F2, site: fra1, rack: r01, slot: 2, profile: " + M,
          "serial: F2, site: fra1, rack: r01, slot: 2, profile: hv-std, role: proxmox, bmc: { address: 10.1.0.50, credential: { env: BMC_PASSWORD } } }  # expect: S0310")],
    ),
    "pin-collides-with-lock": (
        "a tenant network pins the VNI that fleet.lock records for the BMC VLAN",
        [("      - { name: web }", "      - { name: web, vni: 10000 }  # expect: S0604")],
    ),
    "corosync-link-detached": (
        "a corosync link runs on a VLAN the Proxmox nodes are not attached to",
        [("        corosync_links: [corosync]", "        corosync_links: [ceph_cluster]  # expect: S0208")],
    ),
    "team-unknown-tenant": (
        "a team uses the networks of a tenant that does not exist",
        [("tenants:\n  - name: prod\n",
          "teams:\n  - { name: web-team, members: [alice], tenants: [prd] }  # expect: S0208\ntenants:\n  - name: prod\n")],
    ),
    "team-unknown-gpu-flavor": (
        "a team is given access to a GPU flavor the blueprint does not define",
        [("tenants:\n  - name: prod\n",
          "teams:\n  - { name: ml, members: [carol], gpu_flavors: [g1.h100x8] }  # expect: S0208\ntenants:\n  - name: prod\n")],
    ),
    "vip-on-detached-vlan": (
        "a VIP lives on a VLAN its members are not attached to",
        [("    default_quota: { instances: 10, cores: 40, ram_mib: 163840 }\n",
          "    default_quota: { instances: 10, cores: 40, ram_mib: 163840 }\n  vips:\n    - { name: maas-api, vlan: storage, members: maas-region, port: 5240 }  # expect: S0208\n")],
    ),
}

# Extra files of a case, beside its fleet.yaml.
EXTRA_FILES = {
    "pin-collides-with-lock": {
        "fleet.lock": '{\n  "version": 1,\n  "pools": {\n    "vnis/l2": {\n      "infra/bmc": "10000"\n    }\n  }\n}\n',
    },
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
        for file, content in EXTRA_FILES.get(name, {}).items():
            (OUT / name / file).write_text(content)
    print(f"wrote {len(VARIANTS)} broken examples into {OUT}")


if __name__ == "__main__":
    main()
