//! Small specs for the phases' unit tests.

use strata_diagnostics::SourceMap;
use strata_spec::Spec;

/// A one-DC spec: two spines, two leaves per rack, one border leaf, two racks, a
/// Proxmox node, two compute nodes, a VM, a tenant network and a VIP.
pub(crate) const SMALL: &str = r#"
organisation: { name: x, fleet_id: x, domain: x.net }
mtu: { underlay: 9216, overlay: 9000 }
pools:
  site_supernets: { pool: 10.0.0.0/9, prefix_len: 16 }
  loopbacks: { pool: 10.255.0.0/16, prefix_len: 24 }
  vteps: { pool: 10.254.0.0/16, prefix_len: 24 }
  p2p: { pool: 10.253.0.0/16, prefix_len: 22 }
  interconnect: 172.31.255.0/24
  tenant_subnets: { pool: 100.64.0.0/10, prefix_len: 24 }
  vlan_subnets: { provisioning: 24, bmc: 24, management: 24, storage: 24, ceph_public: 24, ceph_cluster: 24, corosync: 26 }
  asns: { spines: 4200000000-4200000099, leaves: 4200001000-4200001999 }
  vnis: { l2: 10000-19999, l3: 50000-50999 }
blueprint:
  fabric: { spines: 2, leaves_per_rack: 2, border_leaves: 1 }
  vlans:
    provisioning: { vid: 10, mtu: 1500 }
    bmc: { vid: 11, mtu: 1500 }
    management: { vid: 12, mtu: 1500 }
    storage: { vid: 20, mtu: 9000 }
    ceph_public: { vid: 21, mtu: 9000 }
    ceph_cluster: { vid: 22, mtu: 9000 }
    corosync: { vid: 30, mtu: 1500 }
    tenant: 1000-1999
  host_networks:
    proxmox: [provisioning, management, corosync]
    openstack_control: [provisioning, management]
    openstack_network: [provisioning, management]
    openstack_compute: [provisioning, management, storage]
    openstack_storage: [provisioning, management]
  maas:
    region_controllers: 1
    rack_controllers: [{ name: a, dhcp: [provisioning] }]
  proxmox:
    clusters: [{ name: infra, nodes: 1, corosync_links: [corosync], storage: [{ name: s, kind: rbd, tier: ssd }] }]
  openstack:
    kolla_release: "2025.1"
    control_nodes: 0
    availability_zones: [{ name: az1, min_compute: 1 }]
    default_quota: { instances: 1, cores: 1, ram_mib: 1 }
  vips:
    - { name: maas-api, vlan: management, members: maas-region, port: 5240 }
profiles:
  - name: p
    cpu: { model: x, sockets: 1, cores_per_socket: 8 }
    memory_gib: 64
    numa_nodes: 1
    disks: [{ name: sda, kind: ssd, size_gb: 100 }]
    nics: [{ name: eth0, speed_gbps: 25 }, { name: eth1, speed_gbps: 25 }]
    bonds: [{ name: bond0, members: [eth0, eth1] }]
    bios: { vendor: x, version: "1" }
sites:
  - name: fra1
    region: r
    racks: [{ name: r01, az: az1 }, { name: r02 }]
machines:
  - { serial: s-pve, site: fra1, rack: r01, slot: 1, profile: p, role: proxmox, bmc: { credential: { env: X } } }
  - { serial: s-c1, site: fra1, rack: r01, slot: 2, profile: p, role: openstack-compute, bmc: { credential: { env: X } } }
  - { serial: s-c2, site: fra1, rack: r02, slot: 1, profile: p, role: openstack-compute, bmc: { credential: { env: X } } }
vms:
  - { name: mon, site: fra1, role: monitoring, cores: 1, memory_mib: 512, disk_gb: 8, networks: [management] }
tenants:
  - name: t
    networks: [{ name: web }]
"#;

/// `text` loaded, with no diagnostics.
pub(crate) fn spec(text: &str) -> Spec {
    let mut sources = SourceMap::new();
    sources.add("spec.yaml", text.to_string());
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    loaded.spec
}

/// The small spec with `from` replaced by `to` (which must occur).
pub(crate) fn small_with(from: &str, to: &str) -> Spec {
    assert!(SMALL.contains(from), "{from}");
    spec(&SMALL.replace(from, to))
}
