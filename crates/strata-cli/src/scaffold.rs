//! Starter and synthetic fleets for `strata init` (pure: parameters in, files out).
//!
//! The starter layout (no sizing flags) gives every DC two racks with Proxmox,
//! OpenStack network, compute, storage and one GPU node, and six infrastructure VMs:
//! the same shape as `examples/fleet`. Any of `--racks-per-dc`,
//! `--machines-per-rack` or `--vms-per-dc` switches to the synthetic layout used by
//! benchmarks: racks filled with 1U machines and as many VMs as asked, with pools
//! sized to fit.

use std::fmt::Write;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Params {
    pub dcs: u32,
    pub racks_per_dc: Option<u32>,
    pub machines_per_rack: Option<u32>,
    pub vms_per_dc: Option<u32>,
}

/// One generated file: path relative to the fleet directory, and its text.
pub type File = (String, String);

const SITE_NAMES: [(&str, &str); 10] = [
    ("fra1", "eu-central"),
    ("ams1", "eu-west"),
    ("waw1", "eu-east"),
    ("lon1", "eu-west"),
    ("par1", "eu-west"),
    ("mad1", "eu-south"),
    ("mil1", "eu-south"),
    ("vie1", "eu-central"),
    ("sto1", "eu-north"),
    ("hel1", "eu-north"),
];

pub fn site(i: u32) -> (String, String) {
    match SITE_NAMES.get(i as usize) {
        Some((n, r)) => (n.to_string(), r.to_string()),
        None => (format!("dc{}", i + 1), format!("region{}", i % 4 + 1)),
    }
}

/// Smallest prefix length whose subnet holds `hosts` plus network, gateway,
/// broadcast and a little headroom.
fn prefix_for(hosts: u64) -> u8 {
    let need = hosts + hosts / 8 + 8;
    let mut bits = 2u8;
    while (1u64 << bits) < need && bits < 30 {
        bits += 1;
    }
    32 - bits
}

/// Smallest block length that holds blocks of `lens`.
fn supernet_for(lens: &[u8]) -> u8 {
    let total: u64 = lens.iter().map(|l| 1u64 << (32 - l)).sum();
    let mut bits = 2u8;
    while (1u64 << bits) < total && bits < 30 {
        bits += 1;
    }
    32 - bits
}

fn header(depth: usize) -> String {
    format!(
        "# yaml-language-server: $schema={}strata.schema.json\n",
        "../".repeat(depth)
    )
}

struct Layout {
    racks: u32,
    machines: Vec<MachineRow>,
    vms: u32,
    synthetic: bool,
    proxmox_nodes: u32,
}

struct MachineRow {
    rack: u32,
    slot: u32,
    profile: &'static str,
    role: &'static str,
}

fn layout(p: &Params) -> Layout {
    let synthetic =
        p.racks_per_dc.is_some() || p.machines_per_rack.is_some() || p.vms_per_dc.is_some();
    if !synthetic {
        let rows = [
            (1, 1, "hv-std", "proxmox"),
            (1, 2, "hv-std", "proxmox"),
            (2, 1, "hv-std", "proxmox"),
            (1, 3, "hv-std", "openstack-network"),
            (2, 3, "hv-std", "openstack-network"),
            (1, 4, "hv-std", "openstack-compute"),
            (1, 5, "hv-std", "openstack-compute"),
            (2, 4, "hv-std", "openstack-compute"),
            (2, 5, "hv-std", "openstack-compute"),
            (1, 10, "storage-dense", "openstack-storage"),
            (2, 10, "storage-dense", "openstack-storage"),
            (1, 12, "storage-dense", "openstack-storage"),
            (2, 20, "gpu-h100", "openstack-compute"),
        ];
        return Layout {
            racks: 2,
            machines: rows
                .iter()
                .map(|&(rack, slot, profile, role)| MachineRow {
                    rack,
                    slot,
                    profile,
                    role,
                })
                .collect(),
            vms: 6,
            synthetic: false,
            proxmox_nodes: 3,
        };
    }
    let racks = p.racks_per_dc.unwrap_or(2).max(2);
    let per_rack = p.machines_per_rack.unwrap_or(8).clamp(6, 40);
    let total = racks * per_rack;
    // An odd number of hypervisors: about one in twenty machines, 3 to 31.
    let mut pve = (total / 20).clamp(3, 31);
    if pve.is_multiple_of(2) {
        pve -= 1;
    }
    let storage = (total / 10).max(3);
    let mut machines = Vec::with_capacity(total as usize);
    let mut i = 0u32;
    for slot in 1..=per_rack {
        for rack in 1..=racks {
            let role = if i < pve {
                "proxmox"
            } else if i < pve + 2 {
                "openstack-network"
            } else if i < pve + 2 + storage {
                "openstack-storage"
            } else {
                "openstack-compute"
            };
            machines.push(MachineRow {
                rack,
                slot,
                profile: "hv-std",
                role,
            });
            i += 1;
        }
    }
    Layout {
        racks,
        machines,
        vms: p.vms_per_dc.unwrap_or(6).max(4),
        synthetic: true,
        proxmox_nodes: pve,
    }
}

/// Generate the files of a fleet.
pub fn generate(p: &Params) -> Vec<File> {
    let l = layout(p);
    let dcs = p.dcs.max(1);
    let machines_per_dc = l.machines.len() as u64;
    let vms_per_dc = u64::from(l.vms) + 5;
    let lens = [
        prefix_for(machines_per_dc + 8).min(22), // provisioning
        prefix_for(machines_per_dc + 8).min(22), // bmc
        prefix_for(machines_per_dc + vms_per_dc + 8).min(22), // management
        prefix_for(machines_per_dc).min(22),     // storage
        prefix_for(machines_per_dc).min(22),     // ceph_public
        prefix_for(machines_per_dc).min(22),     // ceph_cluster
        prefix_for(u64::from(l.proxmox_nodes)).min(24), // corosync
    ];
    let site_len = supernet_for(&lens).min(16);
    let mut files = vec![
        ("fleet.yaml".to_string(), fleet_yaml(dcs)),
        ("pools.yaml".to_string(), pools_yaml(site_len, &lens)),
        ("blueprint.yaml".to_string(), blueprint_yaml(&l)),
        (
            "hardware.yaml".to_string(),
            HARDWARE.replace("@HEADER@", &header(0)),
        ),
        (
            "tenants.yaml".to_string(),
            TENANTS.replace("@HEADER@", &header(0)),
        ),
        (
            "teams.yaml".to_string(),
            TEAMS.replace("@HEADER@", &header(0)),
        ),
    ];
    for d in 0..dcs {
        let (name, region) = site(d);
        files.push((format!("sites/{name}.yaml"), site_yaml(&name, &region, &l)));
        files.push((
            format!("inventory/{name}.yaml"),
            inventory_yaml(d, &name, &l),
        ));
        files.push((format!("vms/{name}.yaml"), vms_yaml(&name, &l)));
    }
    files
}

fn fleet_yaml(dcs: u32) -> String {
    let mut s = header(0);
    s.push_str(
        "# The organisation, its naming convention and the fabric MTUs.\n\
organisation:\n  name: example\n  fleet_id: example-prod\n  domain: dc.example.net\n  naming:\n    spine: \"{site}-spine{index:02}\"\n    leaf: \"{site}-{rack}-leaf{index}\"\n    border: \"{site}-border{index}\"\n    machine: \"{site}-{rack}-{role}{slot:02}\"\n    vm: \"{site}-{name}\"\n\nmtu:\n  underlay: 9216\n  overlay: 9000\n",
    );
    if dcs > 1 {
        s.push_str("\n# Border leaves of neighbouring DCs peer over routed interconnects.\ninterconnects:\n");
        for d in 0..dcs {
            let next = (d + 1) % dcs;
            if dcs == 2 && d == 1 {
                break;
            }
            let (a, _) = site(d);
            let (b, _) = site(next);
            let _ = writeln!(
                s,
                "  - {{ name: {a}-{b}, a: {{ site: {a} }}, b: {{ site: {b} }} }}"
            );
        }
    }
    s
}

fn pools_yaml(site_len: u8, lens: &[u8; 7]) -> String {
    let mut s = header(0);
    let _ = write!(
        s,
        "# Every allocation is drawn from these pools and recorded in fleet.lock.\n\
pools:\n  site_supernets: {{ pool: 10.0.0.0/9, prefix_len: {site_len} }}\n  loopbacks: {{ pool: 10.255.0.0/16, prefix_len: 24 }}\n  vteps: {{ pool: 10.254.0.0/16, prefix_len: 24 }}\n  p2p: {{ pool: 10.252.0.0/15, prefix_len: 21 }}\n  interconnect: 172.31.255.0/24\n  tenant_subnets: {{ pool: 100.64.0.0/10, prefix_len: 24 }}\n  vlan_subnets:\n    provisioning: {}\n    bmc: {}\n    management: {}\n    storage: {}\n    ceph_public: {}\n    ceph_cluster: {}\n    corosync: {}\n  asns:\n    spines: 4200000000-4200000999\n    leaves: 4200001000-4200999999\n  vnis:\n    l2: 10000-19999\n    l3: 50000-50999\n",
        lens[0], lens[1], lens[2], lens[3], lens[4], lens[5], lens[6]
    );
    s
}

fn blueprint_yaml(l: &Layout) -> String {
    let mut s = header(0);
    s.push_str(
        "# The design every DC must match; a DC differs only through an override with a reason.\n\
blueprint:\n  fabric:\n    spines: 2\n    leaves_per_rack: 2\n    border_leaves: 2\n    underlay: { protocol: ebgp, bfd: true, max_paths: 64 }\n    overlay: { kind: evpn-vxlan, vtep: leaf, arp_suppression: true, anycast_gateway_mac: \"00:00:5e:00:01:01\" }\n\n  vlans:\n    provisioning: { vid: 10, mtu: 1500 }\n    bmc: { vid: 11, mtu: 1500 }\n    management: { vid: 12, mtu: 1500 }\n    storage: { vid: 20, mtu: 9000 }\n    ceph_public: { vid: 21, mtu: 9000 }\n    ceph_cluster: { vid: 22, mtu: 9000 }\n    corosync: { vid: 30, mtu: 1500 }\n    tenant: 1000-1999\n\n  host_networks:\n    proxmox: [provisioning, management, corosync, storage, ceph_public]\n    openstack_control: [provisioning, management]\n    openstack_network: [provisioning, management]\n    openstack_compute: [provisioning, management, storage, ceph_public]\n    openstack_storage: [provisioning, management, ceph_public, ceph_cluster]\n\n  maas:\n    region_controllers: 3\n    rack_controllers:\n      - { name: rack-a, dhcp: [provisioning, bmc] }\n      - { name: rack-b, dhcp: [provisioning, bmc] }\n    distro_series: noble\n\n  proxmox:\n    clusters:\n      - name: infra\n",
    );
    let _ = write!(
        s,
        "        nodes: {}\n        qdevice: false\n        corosync_links: [corosync, management]\n        template: debian-12-cloudinit\n        storage:\n          - {{ name: ceph-vm, kind: rbd, tier: ssd, ceph_pool: vm }}\n          - {{ name: local-nvme, kind: zfspool, tier: nvme }}\n        ha_rules:\n          - {{ name: openstack-control-apart, type: resource-affinity, affinity: negative, roles: [openstack-control] }}\n\n",
        l.proxmox_nodes
    );
    s.push_str(
        "  openstack:\n    kolla_release: \"2026.2\"\n    control_nodes: 3\n    availability_zones:\n      - { name: az1, min_compute: 2 }\n      - { name: az2, min_compute: 2 }\n    flavors:\n      - { name: gp1.small, vcpus: 2, ram_mib: 4096, disk_gb: 40 }\n      - { name: gp1.large, vcpus: 8, ram_mib: 32768, disk_gb: 160 }\n    gpu_flavors:\n      - { name: g1.h100x1, profile: gpu-h100, gpu_model: NVIDIA H100 SXM5 80GB, gpus: 1, vcpus: 24, ram_mib: 196608, disk_gb: 400 }\n    default_quota: { instances: 50, cores: 400, ram_mib: 1638400, gpus: 8 }\n\n  vips:\n    - { name: maas-api, vlan: management, members: maas-region, port: 5240 }\n    - { name: openstack-api, vlan: management, members: openstack-control, port: 5000 }\n",
    );
    s
}

fn site_yaml(name: &str, region: &str, l: &Layout) -> String {
    let mut s = header(1);
    let _ = write!(
        s,
        "sites:\n  - name: {name}\n    region: {region}\n    racks:\n"
    );
    for r in 1..=l.racks {
        let _ = writeln!(
            s,
            "      - {{ name: r{r:02}, units: 42, az: az{} }}",
            (r - 1) % 2 + 1
        );
    }
    s
}

fn inventory_yaml(d: u32, name: &str, l: &Layout) -> String {
    let mut s = header(1);
    let upper = name.to_ascii_uppercase();
    s.reserve(l.machines.len() * 200);
    let _ = writeln!(s, "# Machine inventory of {name}.\nmachines:");
    for (i, m) in l.machines.iter().enumerate() {
        let _ = writeln!(
            s,
            "  - {{ serial: {upper}R{:02}U{:02}, site: {name}, rack: r{:02}, slot: {}, profile: {}, role: {}, pxe_mac: \"52:54:{:02x}:{:02x}:{:02x}:{:02x}\", bmc: {{ driver: redfish, username: strata, credential: {{ env: BMC_PASSWORD }} }} }}",
            m.rack,
            m.slot,
            m.rack,
            m.slot,
            m.profile,
            m.role,
            d & 0xff,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        );
    }
    s
}

fn vms_yaml(name: &str, l: &Layout) -> String {
    let mut s = header(1);
    s.reserve(l.vms as usize * 170);
    let _ = writeln!(s, "# Infrastructure VMs of {name}.\nvms:");
    for i in 1..=3 {
        let _ = writeln!(
            s,
            "  - {{ name: os-ctl{i}, site: {name}, role: openstack-control, cores: 16, memory_mib: 65536, disk_gb: 200, storage: ceph-vm, networks: [provisioning, management] }}"
        );
    }
    let _ = writeln!(
        s,
        "  - {{ name: prometheus, site: {name}, role: monitoring, cores: 8, memory_mib: 32768, disk_gb: 500, storage: ceph-vm, networks: [management], ha: true, tags: [monitoring] }}"
    );
    let runners = l.vms.saturating_sub(4);
    let width = if l.synthetic { 5 } else { 1 };
    for i in 1..=runners {
        let _ = writeln!(
            s,
            "  - {{ name: ci-runner{i:0width$}, site: {name}, role: ci-runner, cores: 8, memory_mib: 16384, disk_gb: 120, networks: [management], tags: [ci] }}"
        );
    }
    s
}

const HARDWARE: &str = "@HEADER@# Hardware profiles machines are bought to; GPU flavors derive from them.
profiles:
  - name: hv-std
    height_u: 1
    cpu: { model: AMD EPYC 9354, sockets: 2, cores_per_socket: 32, threads_per_core: 2 }
    memory_gib: 768
    numa_nodes: 2
    disks:
      - { name: sda, kind: ssd, size_gb: 480 }
      - { name: sdb, kind: ssd, size_gb: 480 }
      - { name: nvme0n1, kind: nvme, size_gb: 3840 }
    raid:
      - { name: md0, level: raid1, members: [sda, sdb], mount: / }
    nics:
      - { name: ens1f0np0, speed_gbps: 25 }
      - { name: ens1f1np1, speed_gbps: 25 }
    bonds:
      - { name: bond0, members: [ens1f0np0, ens1f1np1], mode: 802.3ad, lacp_rate: fast, xmit_hash_policy: layer3+4 }
    bios: { vendor: Dell Inc., version: \"1.9.2\" }
    firmware: { bmc: \"7.10.50.00\", nic: \"22.39.1002\" }
  - name: storage-dense
    height_u: 2
    cpu: { model: AMD EPYC 9124, sockets: 1, cores_per_socket: 16 }
    memory_gib: 256
    numa_nodes: 1
    disks:
      - { name: sda, kind: ssd, size_gb: 480 }
      - { name: sdb, kind: ssd, size_gb: 480 }
      - { name: nvme0n1, kind: nvme, size_gb: 15360 }
      - { name: nvme1n1, kind: nvme, size_gb: 15360 }
    raid:
      - { name: md0, level: raid1, members: [sda, sdb], mount: / }
    nics:
      - { name: ens1f0np0, speed_gbps: 100 }
      - { name: ens1f1np1, speed_gbps: 100 }
    bonds:
      - { name: bond0, members: [ens1f0np0, ens1f1np1] }
    bios: { vendor: Dell Inc., version: \"1.9.2\" }
    firmware: { bmc: \"7.10.50.00\" }
  - name: gpu-h100
    height_u: 4
    cpu: { model: Intel Xeon Platinum 8480+, sockets: 2, cores_per_socket: 56 }
    memory_gib: 2048
    numa_nodes: 2
    disks:
      - { name: nvme0n1, kind: nvme, size_gb: 960 }
      - { name: nvme1n1, kind: nvme, size_gb: 960 }
    raid:
      - { name: md0, level: raid1, members: [nvme0n1, nvme1n1], mount: / }
    nics:
      - { name: ens1f0np0, speed_gbps: 200 }
      - { name: ens1f1np1, speed_gbps: 200 }
    bonds:
      - { name: bond0, members: [ens1f0np0, ens1f1np1] }
    bios: { vendor: Supermicro, version: \"2.1a\" }
    firmware: { bmc: \"01.02.07\", gpu_vbios: \"96.00.89.00.01\" }
    gpu: { model: NVIDIA H100 SXM5 80GB, count: 8, vendor_id: \"10de\", device_id: \"2330\", pcie_gen: 5, pcie_width: 16, numa: [0, 0, 0, 0, 1, 1, 1, 1] }
";

const TENANTS: &str = "@HEADER@# Tenant VRFs and their overlay networks (same VNI in every DC).
tenants:
  - name: prod
    networks:
      - { name: web, routed: true }
      - { name: db, routed: true }
";

const TEAMS: &str = "@HEADER@teams:
  - name: platform
    members: [alice]
slos:
  - name: maas-api-availability
    service: maas-api
    objective: 99.9
    window: 30d
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_sizes_fit() {
        assert_eq!(prefix_for(13), 27);
        assert!(prefix_for(22_000) <= 17);
        assert_eq!(supernet_for(&[24, 24]), 23);
    }

    #[test]
    fn every_synthetic_size_leaves_two_computes_per_availability_zone() {
        for racks in [2, 3, 5, 50] {
            for per_rack in [6, 7, 8, 20, 40] {
                let l = layout(&Params {
                    dcs: 1,
                    racks_per_dc: Some(racks),
                    machines_per_rack: Some(per_rack),
                    vms_per_dc: None,
                });
                let mut per_az = [0u32; 2];
                for m in l.machines.iter().filter(|m| m.role == "openstack-compute") {
                    per_az[((m.rack - 1) % 2) as usize] += 1;
                }
                assert!(
                    per_az.iter().all(|n| *n >= 2),
                    "{racks}x{per_rack}: {per_az:?}"
                );
            }
        }
    }

    #[test]
    fn synthetic_layout_has_odd_hypervisors() {
        let l = layout(&Params {
            dcs: 1,
            racks_per_dc: Some(50),
            machines_per_rack: Some(40),
            vms_per_dc: Some(10),
        });
        assert_eq!(l.machines.len(), 2000);
        assert_eq!(l.proxmox_nodes % 2, 1);
    }
}
