//! The compiled fleet: every object concrete, named, addressed and sorted.
//!
//! Nothing here refers back to the blueprint by "default": each DC carries its
//! effective blueprint (blueprint plus declared overrides) and every object the
//! platforms need. Lists are sorted by name so that the JSON form is byte-identical
//! for equal specs, whatever the file order.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;
use strata_diagnostics::Span;
use strata_spec::{
    Blueprint, HaAffinity, HaRuleKind, HardwareProfile, InfraVlan, MachineRole, Quota, SecretRef,
    StorageKind, StorageTier, VmRole,
};

/// The whole compiled fleet.
#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub organisation: Organisation,
    pub mtu: Mtu,
    /// Fleet-wide tenant VRFs and networks (same VNIs and VLANs in every DC).
    pub tenants: Vec<Tenant>,
    /// L2 VNIs of the infrastructure VLANs (each stretched across its DC's racks).
    pub infra_vnis: Vec<InfraVni>,
    pub dcs: Vec<Dc>,
    pub interconnects: Vec<Interconnect>,
    /// Hardware profiles by name (renderers need bonds, NICs and GPUs).
    #[serde(skip)]
    pub profiles: Vec<HardwareProfile>,
    /// The blueprint as written, before site overrides.
    #[serde(skip)]
    pub blueprint: Blueprint,
    pub teams: Vec<Team>,
}

impl Fleet {
    pub fn dc(&self, name: &str) -> Option<&Dc> {
        self.dcs.iter().find(|d| d.name == name)
    }

    pub fn profile(&self, name: &str) -> Option<&HardwareProfile> {
        self.profiles.iter().find(|p| p.name.as_str() == name)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Organisation {
    pub name: String,
    pub fleet_id: String,
    pub domain: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Mtu {
    pub underlay: u32,
    pub overlay: u32,
    /// VXLAN encapsulation overhead for the underlay's address family.
    pub vxlan_overhead: u32,
    #[serde(skip)]
    pub underlay_span: Option<Span>,
    #[serde(skip)]
    pub overlay_span: Option<Span>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub name: String,
    /// VRF name on the leaves.
    pub vrf: String,
    pub l3_vni: u32,
    pub networks: Vec<TenantNetwork>,
    #[serde(skip)]
    pub span: Option<Span>,
    #[serde(skip)]
    pub l3_vni_span: Option<Span>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantNetwork {
    pub name: String,
    pub vni: u32,
    pub vlan: u16,
    pub routed: bool,
    #[serde(skip)]
    pub vni_span: Option<Span>,
    #[serde(skip)]
    pub vlan_span: Option<Span>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InfraVni {
    pub vlan: InfraVlan,
    pub vni: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Team {
    pub name: String,
    pub quota: Quota,
    /// Keystone user names, sorted.
    pub members: Vec<String>,
    /// Tenants whose networks the team's project uses (sorted).
    pub tenants: Vec<String>,
    /// GPU flavors the team's project may boot (sorted).
    pub gpu_flavors: Vec<String>,
}

/// One data centre, fully resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Dc {
    pub name: String,
    pub region: String,
    /// The blueprint with this DC's overrides applied.
    #[serde(skip)]
    pub blueprint: Blueprint,
    pub overrides: Vec<AppliedOverride>,
    pub supernet: IpNet,
    pub loopback_block: IpNet,
    pub vtep_block: IpNet,
    pub p2p_block: IpNet,
    pub spine_asn: u32,
    pub vlans: Vec<Vlan>,
    pub racks: Vec<Rack>,
    pub switches: Vec<Switch>,
    pub links: Vec<Link>,
    /// Every BGP session, one entry per end.
    pub bgp: Vec<BgpSession>,
    pub tenant_subnets: Vec<TenantSubnet>,
    pub machines: Vec<Machine>,
    pub vms: Vec<Vm>,
    pub maas: Maas,
    /// Name and time service of this DC's hosts. MAAS serves both (DNS from the region
    /// controllers, NTP from the rack controllers), so these are those controllers'
    /// management addresses, in hostname order.
    pub host_services: HostServices,
    pub proxmox: Vec<ProxmoxCluster>,
    pub openstack: OpenStackRegion,
    pub vips: Vec<Vip>,
    #[serde(skip)]
    pub span: Option<Span>,
}

/// The VLAN-aware bridge every Proxmox node carries its VLANs on.
pub const PROXMOX_BRIDGE: &str = "vmbr0";

/// The infrastructure VLAN that reaches hosts untagged (see [`Vlan::native`]).
pub const NATIVE_VLAN: InfraVlan = InfraVlan::Provisioning;

/// The one routed infrastructure VLAN: hosts and VMs take their default route through
/// its gateway (netplan `routes`, the Proxmox node's `gateway`, the VMs' cloud-init
/// `gw`). Every other infrastructure VLAN is a routerless L2 segment inside the DC
/// (provisioning and BMC reach the racks directly; storage, Ceph, corosync traffic
/// never leaves it), so nothing may be told it has a gateway there (MAAS subnets of
/// those VLANs get no `gateway_ip`).
pub const ROUTED_VLAN: InfraVlan = InfraVlan::Management;

impl Dc {
    pub fn vlan(&self, role: InfraVlan) -> Option<&Vlan> {
        self.vlans.iter().find(|v| v.role == role)
    }

    pub fn switch(&self, name: &str) -> Option<&Switch> {
        self.switches.iter().find(|s| s.name == name)
    }

    /// Every host (machine or VM) hostname with its interfaces.
    pub fn hosts(&self) -> impl Iterator<Item = (&str, &[HostInterface])> {
        self.machines
            .iter()
            .map(|m| (m.hostname.as_str(), m.interfaces.as_slice()))
            .chain(
                self.vms
                    .iter()
                    .map(|v| (v.hostname.as_str(), v.interfaces.as_slice())),
            )
    }
}

/// A site override as applied: the blueprint's value and this DC's.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedOverride {
    pub path: String,
    pub blueprint: serde_json::Value,
    pub value: serde_json::Value,
    pub reason: Option<String>,
    #[serde(skip)]
    pub span: Option<Span>,
}

/// An infrastructure VLAN of a DC.
#[derive(Debug, Clone, Serialize)]
pub struct Vlan {
    pub role: InfraVlan,
    pub vid: u16,
    pub vni: u32,
    pub mtu: u32,
    pub subnet: IpNet,
    /// The subnet's first address: the leaves' anycast gateway. Used as a gateway
    /// only on the [`ROUTED_VLAN`] (see [`Vlan::routed`]).
    pub gateway: IpAddr,
    /// MAAS DHCP: primary and secondary rack controllers (VM hostnames).
    pub dhcp: Option<Dhcp>,
    /// Untagged on the hosts' uplinks ([`NATIVE_VLAN`], the provisioning network): the
    /// native VLAN of every host-facing leaf bond, with LACP fallback (a bond member
    /// forwards on its own until the host speaks LACP), so that a machine PXE-boots
    /// from MAAS with plain untagged DHCP before any OS has set up its bond. The other
    /// VLANs are tagged on the bond.
    pub native: bool,
    #[serde(skip)]
    pub vid_span: Option<Span>,
    #[serde(skip)]
    pub mtu_span: Option<Span>,
}

impl Vlan {
    /// Whether the VLAN has a router (only the [`ROUTED_VLAN`]).
    pub fn routed(&self) -> bool {
        self.role == ROUTED_VLAN
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Dhcp {
    pub primary: String,
    pub secondary: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rack {
    pub name: String,
    pub units: u32,
    pub az: Option<String>,
    /// Leaf hostnames of this rack.
    pub leaves: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchRole {
    Spine,
    Leaf,
    Border,
}

#[derive(Debug, Clone, Serialize)]
pub struct Switch {
    pub name: String,
    pub role: SwitchRole,
    /// Stable logical id (`spine1`, `r01/leaf2`, `border1`): the allocation key.
    pub id: String,
    pub rack: Option<String>,
    pub index: u32,
    pub asn: u32,
    /// Loopback address; also the BGP router-id.
    pub loopback: IpAddr,
    /// VXLAN tunnel endpoint (leaves and border leaves).
    pub vtep: Option<IpAddr>,
    pub interfaces: Vec<SwitchInterface>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwitchInterface {
    /// The port (`swp3`), recorded in `fleet.lock` for fabric links so that it never
    /// moves, or `dci-<peer DC>` for an interconnect.
    pub name: String,
    /// Address with prefix length (e.g. `10.253.0.0/31`).
    pub address: IpNet,
    pub peer: String,
    pub peer_interface: String,
    pub mtu: u32,
}

/// A routed point-to-point link.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub subnet: IpNet,
    pub a: LinkEnd,
    pub b: LinkEnd,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkEnd {
    pub device: String,
    pub interface: String,
    pub address: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// Spine-leaf eBGP (IPv4 unicast + L2VPN EVPN).
    Fabric,
    /// Border leaf to border leaf of another DC.
    Interconnect,
}

/// One end of a BGP session.
#[derive(Debug, Clone, Serialize)]
pub struct BgpSession {
    pub kind: SessionKind,
    pub local: String,
    pub local_asn: u32,
    pub local_address: IpAddr,
    pub peer: String,
    /// The DC the peer is in (differs for interconnects).
    pub peer_dc: String,
    pub peer_address: IpAddr,
    /// The ASN configured for the peer (`neighbor X remote-as N`).
    pub remote_asn: u32,
    #[serde(skip)]
    pub remote_asn_span: Option<Span>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantSubnet {
    pub tenant: String,
    pub network: String,
    pub subnet: IpNet,
    pub gateway: IpAddr,
}

/// An address of a host on an infrastructure VLAN.
#[derive(Debug, Clone, Serialize)]
pub struct HostInterface {
    pub vlan: InfraVlan,
    pub vid: u16,
    /// The OS device that carries the address. One convention for every renderer:
    /// machines `<uplink>.<vid>` (the bond, or the profile's first NIC), and the uplink
    /// itself for the untagged [`NATIVE_VLAN`]; Proxmox nodes `vmbr0.<vid>` (the
    /// VLAN-aware bridge, whose uplink port has the native VLAN as its PVID); VMs
    /// `eth<N>` (one virtio NIC per VLAN, in this list's order, named by Proxmox's
    /// cloud-init network config).
    pub device: String,
    /// Address with the subnet's prefix length.
    pub address: IpNet,
    pub gateway: IpAddr,
    pub mtu: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bmc {
    pub address: IpAddr,
    /// The BMC's MAC, for the DHCP reservation of `address`.
    pub mac: Option<String>,
    /// The spec pins `address` (configured on the BMC by hand) rather than strata
    /// allocating it.
    pub pinned: bool,
    pub driver: strata_spec::BmcDriver,
    pub username: String,
    /// Where the password comes from (never the password).
    pub credential: SecretRef,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub serial: String,
    pub hostname: String,
    pub fqdn: String,
    pub rack: String,
    pub slot: u32,
    pub profile: String,
    pub role: MachineRole,
    pub az: Option<String>,
    /// Proxmox cluster (role `proxmox`).
    pub cluster: Option<String>,
    pub bmc: Bmc,
    pub pxe_mac: Option<String>,
    /// Bond carrying the VLANs (from the profile).
    pub bond: Option<String>,
    /// The device the VLANs ride on: the bond, or the profile's first NIC.
    pub uplink: Option<String>,
    pub interfaces: Vec<HostInterface>,
    /// GPUs (from the profile) if any.
    pub gpus: u32,
    /// Already runs an OS (its role is preinstalled in the bootstrap, or the
    /// inventory says `running`): registered in MAAS as deployed, never
    /// commissioned or power-cycled.
    pub running: bool,
    /// The image MAAS deploys (`ubuntu/noble`, `custom/debian-13-pve`, or a bare
    /// Ubuntu series).
    pub image: String,
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VmOrigin {
    /// Listed in the spec's `vms`.
    Declared,
    /// Created by the blueprint (MAAS controllers).
    Blueprint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VmKind {
    MaasRegion,
    MaasRack,
    Declared(VmRole),
}

#[derive(Debug, Clone, Serialize)]
pub struct Vm {
    pub name: String,
    pub hostname: String,
    pub fqdn: String,
    pub kind: VmKind,
    pub origin: VmOrigin,
    pub cluster: String,
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_gb: u64,
    pub storage: String,
    /// Where `storage` was written, when the VM names its pool (else it is the cluster's first).
    #[serde(skip)]
    pub storage_span: Option<Span>,
    /// HA-managed (declared `ha: true`, or selected by one of its cluster's HA rules).
    pub ha: bool,
    pub interfaces: Vec<HostInterface>,
    pub tags: Vec<String>,
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Maas {
    /// Region controller VM hostnames.
    pub region_controllers: Vec<String>,
    pub rack_controllers: Vec<MaasRackController>,
    pub distro_series: String,
}

/// Where a DC's hosts resolve names and get time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostServices {
    /// DNS resolvers (at most three, as resolv.conf allows): the region controllers.
    pub resolvers: Vec<IpAddr>,
    /// DNS search domain: `<dc>.<organisation.domain>`, the domain of every FQDN here.
    pub search_domain: String,
    /// NTP servers: the rack controllers (the region controllers when there are none).
    pub ntp_servers: Vec<IpAddr>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MaasRackController {
    pub name: String,
    pub hostname: String,
    pub dhcp: Vec<InfraVlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxmoxCluster {
    pub name: String,
    pub expected_nodes: u32,
    pub nodes: Vec<ProxmoxNode>,
    pub qdevice: bool,
    pub corosync_links: Vec<InfraVlan>,
    pub storage: Vec<ProxmoxStorage>,
    /// HA rules, sorted by name, with their VMs and nodes resolved for this DC.
    pub ha_rules: Vec<ProxmoxHaRule>,
    pub template: String,
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxmoxNode {
    pub hostname: String,
    /// Corosync node id (1-based), recorded in `fleet.lock` by serial: a node keeps
    /// its id for life, and a new node takes the lowest free one.
    pub nodeid: u32,
    /// Corosync ring addresses in link order.
    pub links: Vec<IpAddr>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxmoxStorage {
    pub name: String,
    pub kind: StorageKind,
    pub tier: StorageTier,
    pub ceph_pool: Option<String>,
    pub content: Vec<String>,
}

/// A Proxmox VE 9 HA rule as it must exist in one DC's cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ProxmoxHaRule {
    pub name: String,
    pub kind: HaRuleKind,
    /// `resource-affinity` rules only.
    pub affinity: Option<HaAffinity>,
    /// `node-affinity` rules only: node hostnames, sorted.
    pub nodes: Vec<String>,
    /// `node-affinity` rules only.
    pub strict: bool,
    /// `node-affinity` rules only (true on the others): the `failback` flag of the HA
    /// resource of each VM it governs.
    pub failback: bool,
    /// The VMs it governs: hostnames, sorted.
    pub vms: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenStackRegion {
    pub region: String,
    pub kolla_release: String,
    pub expected_control: u32,
    pub control: Vec<String>,
    pub network: Vec<String>,
    pub compute: Vec<ComputeNode>,
    pub storage: Vec<String>,
    pub monitoring: Vec<String>,
    pub availability_zones: Vec<AvailabilityZone>,
    pub flavors: Vec<Flavor>,
    pub internal_vip: Option<IpAddr>,
}

impl OpenStackRegion {
    /// The Placement resource classes of the region's passthrough GPUs (one per GPU
    /// model of its compute hosts), sorted.
    pub fn gpu_classes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .compute
            .iter()
            .filter_map(|c| c.gpu.as_ref())
            .map(|g| crate::quota::pci_resource_class(&g.vendor_id, &g.device_id))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether the region's Nova runs unified limits (see [`crate::quota`]).
    pub fn unified_limits(&self) -> bool {
        crate::quota::unified_limits(&self.kolla_release)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ComputeNode {
    pub hostname: String,
    pub az: Option<String>,
    pub profile: String,
    pub gpu: Option<GpuInfo>,
    /// How the host is laid out for pinned, huge-page instances (GPU hosts only).
    pub layout: Option<crate::numa::HostLayout>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GpuInfo {
    pub model: String,
    pub count: u32,
    pub vendor_id: String,
    pub device_id: String,
    /// PCI alias name used by GPU flavors.
    pub alias: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AvailabilityZone {
    pub name: String,
    pub min_compute: u32,
    pub compute: Vec<String>,
    #[serde(skip)]
    pub span: Option<Span>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Flavor {
    pub name: String,
    pub vcpus: u32,
    pub ram_mib: u64,
    pub disk_gb: u64,
    /// `pci_passthrough:alias` (e.g. `h100:1`) for GPU flavors.
    pub pci_alias: Option<String>,
    /// Nova extra specs.
    pub extra_specs: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vip {
    pub name: String,
    pub vlan: InfraVlan,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub vrid: u8,
    pub port: u16,
    /// Members by rank (recorded in `fleet.lock`: a new member ranks last); the first
    /// has the highest priority and is the preferred master.
    pub members: Vec<VipMember>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VipMember {
    pub hostname: String,
    pub address: IpAddr,
    pub priority: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct Interconnect {
    pub name: String,
    pub links: Vec<InterconnectLink>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InterconnectLink {
    pub subnet: IpNet,
    pub a: LinkEnd,
    pub a_dc: String,
    pub b: LinkEnd,
    pub b_dc: String,
}
