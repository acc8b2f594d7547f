//! The spec's types: exactly what a user writes in `fleet/*.yaml`.
//!
//! Every struct rejects unknown keys. Values that later diagnostics must point at are
//! wrapped in [`Located`], which remembers where in which file they were written.
//! Defaults are the ones an SRE would pick for a new EVPN-VXLAN fabric; the starter
//! fleet written by `strata init` spells most of them out anyway.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::located::Located;
use crate::values::{MacAddr, Name, NumRange, SecretRef, TimeOfDay, VlanId};

/// The fleet spec; also the shape of each YAML file in the spec directory. A file may
/// hold any subset of these sections; list sections from all files are concatenated,
/// singleton sections (organisation, pools, mtu, blueprint) must appear exactly once.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "strata fleet spec file")]
pub struct Spec {
    /// Who owns the fleet and how things are named.
    pub organisation: Option<Located<Organisation>>,
    /// Address, ASN and VNI pools every allocation is drawn from.
    pub pools: Option<Located<Pools>>,
    /// Fabric MTUs.
    pub mtu: Option<Located<Mtu>>,
    /// The design every DC must match.
    pub blueprint: Option<Located<Blueprint>>,
    /// Data centres.
    #[serde(default)]
    pub sites: Vec<Located<Site>>,
    /// Hardware profiles machines are bought to.
    #[serde(default)]
    pub profiles: Vec<Located<HardwareProfile>>,
    /// The machine inventory.
    #[serde(default)]
    pub machines: Vec<Located<Machine>>,
    /// Declared infrastructure VMs on the Proxmox clusters.
    #[serde(default)]
    pub vms: Vec<Located<Vm>>,
    /// Tenants and their overlay networks (fleet-wide: same VNI in every DC).
    #[serde(default)]
    pub tenants: Vec<Located<Tenant>>,
    /// Data-centre interconnects between border leaves.
    #[serde(default)]
    pub interconnects: Vec<Located<Interconnect>>,
    /// Teams (quotas and ownership).
    #[serde(default)]
    pub teams: Vec<Located<Team>>,
    /// Service level objectives.
    #[serde(default)]
    pub slos: Vec<Located<Slo>>,
    /// What `strata serve` applies on its own and what waits for an approval.
    pub policy: Option<Located<Policy>>,
}

// ---------------------------------------------------------------------------
// Organisation and naming

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    /// Short organisation name.
    pub name: Located<Name>,
    /// Ownership tag put on every object strata creates; objects without it are never touched.
    pub fleet_id: Located<Name>,
    /// DNS domain; hosts are `<hostname>.<site>.<domain>`.
    pub domain: Located<String>,
    /// Hostname templates.
    #[serde(default)]
    pub naming: Naming,
}

/// Hostname templates. Placeholders: `{site}`, `{rack}`, `{role}`, `{index}`, `{slot}`,
/// `{name}`; a width such as `{index:02}` zero-pads numbers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Naming {
    /// Spine switches. Placeholders: site, index.
    pub spine: Located<String>,
    /// Leaf switches. Placeholders: site, rack, index.
    pub leaf: Located<String>,
    /// Border leaves. Placeholders: site, index.
    pub border: Located<String>,
    /// Bare-metal machines. Placeholders: site, rack, role, slot, index.
    pub machine: Located<String>,
    /// VMs. Placeholders: site, name, role, index.
    pub vm: Located<String>,
}

impl Default for Naming {
    fn default() -> Self {
        Naming {
            spine: Located::synthetic("{site}-spine{index:02}".into()),
            leaf: Located::synthetic("{site}-{rack}-leaf{index}".into()),
            border: Located::synthetic("{site}-border{index}".into()),
            machine: Located::synthetic("{site}-{rack}-{role}{slot:02}".into()),
            vm: Located::synthetic("{site}-{name}".into()),
        }
    }
}

// ---------------------------------------------------------------------------
// Pools

/// A pool carved into equal blocks, one per owner (per DC, per network).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockPool {
    /// The supernet, e.g. `10.0.0.0/8`.
    #[schemars(with = "String")]
    pub pool: Located<IpNet>,
    /// Prefix length of each block, e.g. `16`.
    pub prefix_len: Located<u8>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pools {
    /// One block per DC; every infrastructure VLAN subnet of the DC is carved from it.
    pub site_supernets: BlockPool,
    /// One block per DC; a /32 (or /128) per switch for the router-id and BGP source.
    pub loopbacks: BlockPool,
    /// One block per DC; a /32 (or /128) per leaf as its VXLAN tunnel endpoint.
    pub vteps: BlockPool,
    /// One block per DC; a /31 (or /127) per spine-leaf link.
    pub p2p: BlockPool,
    /// A /31 per border-leaf pair of each interconnect.
    #[schemars(with = "String")]
    pub interconnect: Located<IpNet>,
    /// One block per (DC, tenant network) for overlay subnets.
    pub tenant_subnets: BlockPool,
    /// Prefix length of each infrastructure VLAN's subnet inside the DC block.
    pub vlan_subnets: PerInfraVlan<Located<u8>>,
    /// AS numbers.
    pub asns: AsnPools,
    /// VXLAN network identifiers.
    pub vnis: VniPools,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AsnPools {
    /// One ASN per DC, shared by its spines.
    pub spines: Located<NumRange>,
    /// One ASN per leaf (and per border leaf).
    pub leaves: Located<NumRange>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VniPools {
    /// L2 VNIs: one per tenant network and one per infrastructure VLAN.
    pub l2: Located<NumRange>,
    /// L3 VNIs: one per tenant VRF.
    pub l3: Located<NumRange>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mtu {
    /// MTU of every fabric link (spine-leaf, leaf-host bonds).
    pub underlay: Located<u32>,
    /// MTU tenant workloads see inside VXLAN.
    pub overlay: Located<u32>,
}

// ---------------------------------------------------------------------------
// Infrastructure VLANs

/// The infrastructure VLAN roles every DC has.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum InfraVlan {
    Provisioning,
    Bmc,
    Management,
    Storage,
    CephPublic,
    CephCluster,
    Corosync,
}

impl InfraVlan {
    pub const ALL: [InfraVlan; 7] = [
        InfraVlan::Provisioning,
        InfraVlan::Bmc,
        InfraVlan::Management,
        InfraVlan::Storage,
        InfraVlan::CephPublic,
        InfraVlan::CephCluster,
        InfraVlan::Corosync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InfraVlan::Provisioning => "provisioning",
            InfraVlan::Bmc => "bmc",
            InfraVlan::Management => "management",
            InfraVlan::Storage => "storage",
            InfraVlan::CephPublic => "ceph_public",
            InfraVlan::CephCluster => "ceph_cluster",
            InfraVlan::Corosync => "corosync",
        }
    }
}

impl fmt::Display for InfraVlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value per infrastructure VLAN role.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PerInfraVlan<T> {
    pub provisioning: T,
    pub bmc: T,
    pub management: T,
    pub storage: T,
    pub ceph_public: T,
    pub ceph_cluster: T,
    pub corosync: T,
}

impl<T> PerInfraVlan<T> {
    pub fn get(&self, role: InfraVlan) -> &T {
        match role {
            InfraVlan::Provisioning => &self.provisioning,
            InfraVlan::Bmc => &self.bmc,
            InfraVlan::Management => &self.management,
            InfraVlan::Storage => &self.storage,
            InfraVlan::CephPublic => &self.ceph_public,
            InfraVlan::CephCluster => &self.ceph_cluster,
            InfraVlan::Corosync => &self.corosync,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (InfraVlan, &T)> {
        InfraVlan::ALL.into_iter().map(move |r| (r, self.get(r)))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VlanRole {
    /// 802.1Q VLAN id (1-4094).
    pub vid: Located<VlanId>,
    /// MTU on this VLAN's interfaces.
    pub mtu: Located<u32>,
}

/// VLAN id and MTU of every infrastructure VLAN role, plus the tenant VLAN range.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vlans {
    pub provisioning: VlanRole,
    pub bmc: VlanRole,
    pub management: VlanRole,
    pub storage: VlanRole,
    pub ceph_public: VlanRole,
    pub ceph_cluster: VlanRole,
    pub corosync: VlanRole,
    /// Local VLAN ids handed to tenant networks on the leaves, e.g. `1000-1999`.
    pub tenant: Located<NumRange>,
}

impl Vlans {
    pub fn get(&self, role: InfraVlan) -> &VlanRole {
        match role {
            InfraVlan::Provisioning => &self.provisioning,
            InfraVlan::Bmc => &self.bmc,
            InfraVlan::Management => &self.management,
            InfraVlan::Storage => &self.storage,
            InfraVlan::CephPublic => &self.ceph_public,
            InfraVlan::CephCluster => &self.ceph_cluster,
            InfraVlan::Corosync => &self.corosync,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (InfraVlan, &VlanRole)> {
        InfraVlan::ALL.into_iter().map(move |r| (r, self.get(r)))
    }
}

// ---------------------------------------------------------------------------
// Blueprint

/// The design every DC must match. Sites may only differ through declared overrides.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Blueprint {
    pub fabric: Fabric,
    pub vlans: Vlans,
    /// Which infrastructure VLANs each machine role is attached to.
    pub host_networks: HostNetworks,
    pub maas: Maas,
    pub proxmox: Proxmox,
    pub openstack: OpenStack,
    /// Virtual IPs held by keepalived (VRRP) in every DC.
    #[serde(default)]
    pub vips: Vec<Vip>,
    /// The order every DC comes up in, first stage first: which machine roles already
    /// run before MAAS exists (`install: preinstalled`, e.g. the Proxmox nodes that
    /// host MAAS and the OpenStack control plane), which VMs start on them, and which
    /// roles MAAS then deploys (`install: maas`). Absent: Proxmox nodes are
    /// preinstalled, then the MAAS VMs, the declared VMs, and every other role
    /// through MAAS.
    #[serde(default)]
    pub bootstrap: Vec<BootstrapStage>,
}

/// One stage of a DC's bootstrap.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapStage {
    pub stage: Located<Name>,
    /// Machine roles this stage brings up.
    #[serde(default)]
    pub machines: Vec<Located<MachineRole>>,
    /// VM roles this stage starts on Proxmox (`maas-region`, `maas-rack`, or a
    /// declared VM role such as `openstack-control`).
    #[serde(default)]
    pub vms: Vec<Located<String>>,
    /// How the stage's machines get their OS (default `maas`).
    #[serde(default)]
    pub install: Option<Located<Install>>,
}

/// How a machine gets its operating system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Install {
    /// Installed by hand before MAAS exists, and running: MAAS registers it as
    /// deployed and never commissions or power-cycles it.
    Preinstalled,
    /// Commissioned and deployed by MAAS.
    #[default]
    Maas,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fabric {
    /// Spine switches per DC.
    pub spines: Located<u32>,
    /// Leaf switches per rack (2 for dual-homed hosts).
    pub leaves_per_rack: Located<u32>,
    /// Border leaves per DC (for interconnects and external routing; 0 for none).
    #[serde(default)]
    pub border_leaves: Located<u32>,
    #[serde(default)]
    pub underlay: Underlay,
    #[serde(default)]
    pub overlay: Overlay,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Underlay {
    /// Underlay routing protocol. Only eBGP (RFC 7938) is supported.
    pub protocol: UnderlayProtocol,
    /// Run BFD on fabric sessions.
    pub bfd: bool,
    /// ECMP paths per prefix (1-256, FRR's limit).
    pub max_paths: Located<u32>,
}

impl Default for Underlay {
    fn default() -> Self {
        Underlay {
            protocol: UnderlayProtocol::Ebgp,
            bfd: true,
            max_paths: Located::synthetic(64),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnderlayProtocol {
    Ebgp,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Overlay {
    /// Overlay control plane / data plane. Only EVPN over VXLAN is supported.
    pub kind: OverlayKind,
    /// Where VXLAN tunnels terminate.
    pub vtep: VtepPlacement,
    /// Suppress ARP flooding using EVPN type-2 routes.
    pub arp_suppression: bool,
    /// Distributed anycast gateway MAC for routed tenant networks.
    pub anycast_gateway_mac: Located<MacAddr>,
}

impl Default for Overlay {
    fn default() -> Self {
        Overlay {
            kind: OverlayKind::EvpnVxlan,
            vtep: VtepPlacement::Leaf,
            arp_suppression: true,
            anycast_gateway_mac: Located::synthetic(MacAddr([0x00, 0x00, 0x5e, 0x00, 0x01, 0x01])),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OverlayKind {
    EvpnVxlan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VtepPlacement {
    Leaf,
}

/// Infrastructure VLANs per machine role.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostNetworks {
    pub proxmox: Vec<InfraVlan>,
    pub openstack_control: Vec<InfraVlan>,
    pub openstack_network: Vec<InfraVlan>,
    pub openstack_compute: Vec<InfraVlan>,
    pub openstack_storage: Vec<InfraVlan>,
}

impl HostNetworks {
    pub fn for_role(&self, role: MachineRole) -> &[InfraVlan] {
        match role {
            MachineRole::Proxmox => &self.proxmox,
            MachineRole::OpenstackControl => &self.openstack_control,
            MachineRole::OpenstackNetwork => &self.openstack_network,
            MachineRole::OpenstackCompute => &self.openstack_compute,
            MachineRole::OpenstackStorage => &self.openstack_storage,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Maas {
    /// MAAS region controllers per DC (VMs on the first Proxmox cluster).
    pub region_controllers: Located<u32>,
    /// Rack controllers per DC (VMs on the first Proxmox cluster), in order; the first
    /// one listing a VLAN is its primary DHCP rack, the second its secondary.
    pub rack_controllers: Vec<RackController>,
    /// Ubuntu series deployed by default.
    #[serde(default = "default_distro")]
    pub distro_series: String,
    /// The image MAAS deploys per machine role, as MAAS names it (`ubuntu/noble`, or
    /// an uploaded `custom/debian-13-pve`: Proxmox VE 9 runs on Debian 13); roles not
    /// listed get `distro_series`.
    #[serde(default)]
    pub images: Vec<RoleImage>,
}

/// The image of one machine role.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleImage {
    pub role: Located<MachineRole>,
    pub image: Located<String>,
}

fn default_distro() -> String {
    "noble".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RackController {
    pub name: Located<Name>,
    /// VLANs on which this rack controller serves DHCP.
    #[serde(default)]
    pub dhcp: Vec<Located<InfraVlan>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Proxmox {
    pub clusters: Vec<ProxmoxCluster>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxmoxCluster {
    pub name: Located<Name>,
    /// Expected hypervisor nodes per DC.
    pub nodes: Located<u32>,
    /// A corosync QDevice provides the tie-breaking vote for even node counts.
    #[serde(default)]
    pub qdevice: bool,
    /// Corosync links in priority order (link0, link1, ...).
    pub corosync_links: Vec<Located<InfraVlan>>,
    pub storage: Vec<StoragePool>,
    /// Proxmox VE 9 HA rules, identical in every DC: which VMs are kept apart or
    /// together, and which nodes they prefer. A VM a rule selects is HA-managed.
    #[serde(default)]
    pub ha_rules: Vec<HaRule>,
    /// VM template new VMs are cloned from.
    #[serde(default = "default_template")]
    pub template: String,
}

fn default_template() -> String {
    "debian-12-cloudinit".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoragePool {
    pub name: Located<Name>,
    /// Proxmox storage type.
    pub kind: StorageKind,
    /// Performance tier (NVMe, SSD, HDD).
    pub tier: StorageTier,
    /// Ceph pool name for `rbd` storage.
    #[serde(default)]
    pub ceph_pool: Option<String>,
    /// Content types stored here (images, rootdir, iso, vztmpl, backup).
    #[serde(default = "default_content")]
    pub content: Vec<String>,
}

fn default_content() -> Vec<String> {
    vec!["images".into(), "rootdir".into()]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Rbd,
    Zfspool,
    Lvmthin,
    Dir,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StorageTier {
    Nvme,
    Ssd,
    Hdd,
}

/// A Proxmox VE 9 HA rule (`/cluster/ha/rules`). It selects VMs by role (every VM of
/// the role in the DC, blueprint VMs included) and by name, so one rule in the
/// blueprint means the same thing in every DC.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HaRule {
    /// Rule id, unique in the cluster (a Proxmox config id: letters, digits, `-`).
    pub name: Located<Name>,
    /// `resource-affinity` (keep the VMs together or apart) or `node-affinity` (run
    /// the VMs on the given nodes).
    #[serde(rename = "type")]
    pub kind: Located<HaRuleKind>,
    /// `resource-affinity` only, and required there: `negative` keeps every selected VM
    /// on a different node (the usual rule for a replicated control plane), `positive`
    /// keeps them on one node.
    #[serde(default)]
    pub affinity: Option<Located<HaAffinity>>,
    /// `node-affinity` only: the nodes, as the racks whose Proxmox nodes qualify
    /// (default: every node of the cluster).
    #[serde(default)]
    pub racks: Vec<Located<Name>>,
    /// `node-affinity` only: never run the VMs elsewhere, even when none of the nodes
    /// is up (default false: prefer the nodes, fall back to any).
    #[serde(default)]
    pub strict: Option<Located<bool>>,
    /// `node-affinity` only: move a VM back to a preferred node when that node is up
    /// again (default true). `false` is Proxmox VE 8's `nofailback`; in Proxmox VE 9 it
    /// is the `failback` flag of each selected VM's HA resource.
    #[serde(default)]
    pub failback: Option<Located<bool>>,
    /// VM roles the rule governs: a declared role (`openstack-control`, `monitoring`,
    /// ...) or a blueprint VM kind (`maas-region`, `maas-rack`).
    #[serde(default)]
    pub roles: Vec<Located<HaVmRole>>,
    /// VMs the rule governs, by name (declared VMs of the DC or blueprint VMs).
    #[serde(default)]
    pub vms: Vec<Located<Name>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HaRuleKind {
    NodeAffinity,
    ResourceAffinity,
}

impl HaRuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HaRuleKind::NodeAffinity => "node-affinity",
            HaRuleKind::ResourceAffinity => "resource-affinity",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HaAffinity {
    Positive,
    Negative,
}

impl HaAffinity {
    pub fn as_str(self) -> &'static str {
        match self {
            HaAffinity::Positive => "positive",
            HaAffinity::Negative => "negative",
        }
    }
}

/// The VM roles an HA rule can select: the declared roles and the blueprint's VMs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum HaVmRole {
    MaasRegion,
    MaasRack,
    OpenstackControl,
    OpenstackNetwork,
    Monitoring,
    CiRunner,
    Service,
}

impl HaVmRole {
    pub fn as_str(self) -> &'static str {
        match self {
            HaVmRole::MaasRegion => "maas-region",
            HaVmRole::MaasRack => "maas-rack",
            HaVmRole::OpenstackControl => "openstack-control",
            HaVmRole::OpenstackNetwork => "openstack-network",
            HaVmRole::Monitoring => "monitoring",
            HaVmRole::CiRunner => "ci-runner",
            HaVmRole::Service => "service",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenStack {
    /// Kolla-Ansible release, e.g. `2025.1`.
    pub kolla_release: Located<String>,
    /// Control nodes per DC (declared VMs or machines with role `openstack-control`).
    pub control_nodes: Located<u32>,
    /// Availability zones per DC; racks choose theirs.
    pub availability_zones: Vec<AvailabilityZone>,
    /// Flavors created in every region.
    #[serde(default)]
    pub flavors: Vec<Flavor>,
    /// GPU flavors (PCI passthrough), derived from hardware profiles.
    #[serde(default)]
    pub gpu_flavors: Vec<GpuFlavor>,
    /// Default quota of a team's project.
    pub default_quota: Quota,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityZone {
    pub name: Located<Name>,
    /// Fewer compute nodes than this in a DC's AZ is an error.
    #[serde(default)]
    pub min_compute: Located<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flavor {
    pub name: Located<String>,
    pub vcpus: u32,
    pub ram_mib: u64,
    pub disk_gb: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GpuFlavor {
    pub name: Located<String>,
    /// Hardware profile whose GPUs back this flavor.
    pub profile: Located<Name>,
    /// GPU model expected in that profile (guards against silent hardware swaps).
    pub gpu_model: Located<String>,
    /// GPUs passed through per instance.
    pub gpus: Located<u32>,
    pub vcpus: u32,
    pub ram_mib: u64,
    pub disk_gb: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub instances: u32,
    pub cores: u32,
    pub ram_mib: u64,
    #[serde(default)]
    pub gpus: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    pub name: Located<Name>,
    /// VLAN the VIP lives on (an address is allocated from its subnet).
    pub vlan: Located<InfraVlan>,
    /// Which hosts run keepalived for it.
    pub members: VipMembers,
    /// TCP port the health check probes.
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VipMembers {
    MaasRegion,
    OpenstackControl,
}

// ---------------------------------------------------------------------------
// Sites

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Short DC name, a DNS label (e.g. `fra1`).
    pub name: Located<Name>,
    /// Geographic region (for cross-region HA).
    pub region: Located<Name>,
    pub racks: Vec<Located<Rack>>,
    /// Declared differences from the blueprint, each with a reason.
    #[serde(default)]
    pub overrides: Vec<Located<Override>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rack {
    pub name: Located<Name>,
    /// Rack height in units.
    #[serde(default = "default_units")]
    pub units: u32,
    /// OpenStack availability zone of the machines in this rack.
    #[serde(default)]
    pub az: Option<Located<Name>>,
}

fn default_units() -> u32 {
    42
}

/// A site-local value for a blueprint path.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Dotted blueprint path, e.g. `fabric.spines` or `proxmox.clusters[infra].nodes`.
    pub path: Located<String>,
    /// The value this DC uses instead of the blueprint's.
    pub value: Located<serde_json::Value>,
    /// Why this DC differs. An override without a reason is an undeclared snowflake.
    #[serde(default)]
    pub reason: Option<Located<String>>,
}

// ---------------------------------------------------------------------------
// Hardware

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HardwareProfile {
    pub name: Located<Name>,
    /// Height in rack units.
    #[serde(default = "one")]
    pub height_u: u32,
    pub cpu: Cpu,
    pub memory_gib: u32,
    /// NUMA nodes.
    pub numa_nodes: u32,
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub raid: Vec<RaidArray>,
    pub nics: Vec<Nic>,
    pub bonds: Vec<Bond>,
    pub bios: Firmware,
    /// Firmware versions by component (bmc, nic, nvme, ...).
    #[serde(default)]
    pub firmware: BTreeMap<String, String>,
    #[serde(default)]
    pub gpu: Option<Located<Gpu>>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    pub model: String,
    pub sockets: u32,
    pub cores_per_socket: u32,
    #[serde(default = "two")]
    pub threads_per_core: u32,
}

fn two() -> u32 {
    2
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub name: String,
    pub kind: DiskKind,
    pub size_gb: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskKind {
    Nvme,
    Ssd,
    Hdd,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RaidArray {
    pub name: String,
    pub level: RaidLevel,
    /// Disks of the array, by name (from `disks`).
    pub members: Vec<Located<String>>,
    /// Where it is mounted (e.g. `/`).
    #[serde(default)]
    pub mount: Option<Located<String>>,
    /// The filesystem made on it; `ext4` when it is mounted and this is absent.
    #[serde(default)]
    pub format: Option<Located<Filesystem>>,
}

impl RaidArray {
    /// The filesystem made on the array: `format`, else `ext4` when it is mounted,
    /// else none (a bare array, e.g. for Ceph or LVM made later by the OS).
    pub fn filesystem(&self) -> Option<Filesystem> {
        match (&self.format, &self.mount) {
            (Some(f), _) => Some(f.value),
            (None, Some(_)) => Some(Filesystem::Ext4),
            (None, None) => None,
        }
    }
}

/// A filesystem MAAS can make on a block device (its `fstype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Filesystem {
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
    Swap,
}

impl Filesystem {
    /// The name MAAS (and mkfs) use.
    pub fn as_str(self) -> &'static str {
        match self {
            Filesystem::Ext4 => "ext4",
            Filesystem::Xfs => "xfs",
            Filesystem::Btrfs => "btrfs",
            Filesystem::Vfat => "vfat",
            Filesystem::Swap => "swap",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RaidLevel {
    Raid0,
    Raid1,
    Raid5,
    Raid6,
    Raid10,
}

impl RaidLevel {
    /// MAAS's name for the level (`raid-1`).
    pub fn maas_name(self) -> &'static str {
        match self {
            RaidLevel::Raid0 => "raid-0",
            RaidLevel::Raid1 => "raid-1",
            RaidLevel::Raid5 => "raid-5",
            RaidLevel::Raid6 => "raid-6",
            RaidLevel::Raid10 => "raid-10",
        }
    }

    /// The fewest active members MAAS (and mdadm, for a useful array) accept.
    pub fn min_members(self) -> usize {
        match self {
            RaidLevel::Raid0 | RaidLevel::Raid1 => 2,
            RaidLevel::Raid5 | RaidLevel::Raid10 => 3,
            RaidLevel::Raid6 => 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// Kernel interface name (e.g. `ens1f0np0`).
    pub name: String,
    pub speed_gbps: u32,
    /// PCI address, for firmware inventory.
    #[serde(default)]
    pub pci: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bond {
    pub name: String,
    /// NICs of the bond, by name (from `nics`).
    pub members: Vec<Located<String>>,
    #[serde(default)]
    pub mode: BondMode,
    #[serde(default)]
    pub lacp_rate: LacpRate,
    #[serde(default = "default_hash")]
    pub xmit_hash_policy: String,
}

fn default_hash() -> String {
    "layer3+4".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum BondMode {
    #[default]
    #[serde(rename = "802.3ad")]
    Lacp,
    #[serde(rename = "active-backup")]
    ActiveBackup,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LacpRate {
    #[default]
    Fast,
    Slow,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firmware {
    pub vendor: String,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    /// Marketing model, e.g. `NVIDIA H100 SXM5 80GB`.
    pub model: String,
    pub count: u32,
    /// PCI vendor id (hex, e.g. `10de`).
    pub vendor_id: String,
    /// PCI device id (hex, e.g. `2330`).
    pub device_id: String,
    pub pcie_gen: u8,
    pub pcie_width: u8,
    /// NUMA node of each GPU, in PCI order (each below the profile's `numa_nodes`).
    #[serde(default)]
    pub numa: Vec<Located<u32>>,
}

// ---------------------------------------------------------------------------
// Inventory

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum MachineRole {
    Proxmox,
    OpenstackControl,
    OpenstackNetwork,
    OpenstackCompute,
    OpenstackStorage,
}

impl MachineRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineRole::Proxmox => "proxmox",
            MachineRole::OpenstackControl => "openstack-control",
            MachineRole::OpenstackNetwork => "openstack-network",
            MachineRole::OpenstackCompute => "openstack-compute",
            MachineRole::OpenstackStorage => "openstack-storage",
        }
    }

    /// The short form used in hostnames.
    pub fn short(self) -> &'static str {
        match self {
            MachineRole::Proxmox => "pve",
            MachineRole::OpenstackControl => "ctl",
            MachineRole::OpenstackNetwork => "net",
            MachineRole::OpenstackCompute => "cmp",
            MachineRole::OpenstackStorage => "osd",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Chassis serial number; the machine's identity.
    pub serial: Located<String>,
    pub site: Located<Name>,
    pub rack: Located<Name>,
    /// Lowest rack unit the machine occupies (1-based).
    pub slot: Located<u32>,
    pub profile: Located<Name>,
    pub role: Located<MachineRole>,
    /// Proxmox cluster for role `proxmox` (defaults to the blueprint's first cluster).
    #[serde(default)]
    pub cluster: Option<Located<Name>>,
    pub bmc: Bmc,
    /// MAC of the NIC that PXE boots, as enlisted by MAAS.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub pxe_mac: Option<Located<MacAddr>>,
    /// Already runs in production: MAAS registers it as deployed and never
    /// commissions or power-cycles it (besides the roles the bootstrap marks
    /// preinstalled).
    #[serde(default)]
    pub running: Option<Located<bool>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bmc {
    /// Pinned BMC address; allocated from the BMC VLAN when absent.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub address: Option<Located<IpAddr>>,
    /// The BMC's own MAC: MAAS's DHCP reserves the BMC address for it, so the BMC
    /// really answers where strata points MAAS.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mac: Option<Located<MacAddr>>,
    #[serde(default)]
    pub driver: BmcDriver,
    /// BMC user name.
    #[serde(default = "default_bmc_user")]
    pub username: String,
    /// Where the BMC password comes from.
    pub credential: Located<SecretRef>,
}

fn default_bmc_user() -> String {
    "admin".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BmcDriver {
    #[default]
    Ipmi,
    Redfish,
}

// ---------------------------------------------------------------------------
// VMs

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum VmRole {
    OpenstackControl,
    OpenstackNetwork,
    Monitoring,
    CiRunner,
    Service,
}

impl VmRole {
    pub fn as_str(self) -> &'static str {
        match self {
            VmRole::OpenstackControl => "openstack-control",
            VmRole::OpenstackNetwork => "openstack-network",
            VmRole::Monitoring => "monitoring",
            VmRole::CiRunner => "ci-runner",
            VmRole::Service => "service",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    /// Name, unique within the site.
    pub name: Located<Name>,
    pub site: Located<Name>,
    /// Proxmox cluster (defaults to the blueprint's first cluster).
    #[serde(default)]
    pub cluster: Option<Located<Name>>,
    pub role: Located<VmRole>,
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_gb: u64,
    /// Proxmox storage pool for the disk (defaults to the cluster's first).
    #[serde(default)]
    pub storage: Option<Located<Name>>,
    /// Infrastructure VLANs the VM is attached to.
    pub networks: Vec<Located<InfraVlan>>,
    /// HA-managed: Proxmox restarts it on another node when its node fails. A VM an
    /// HA rule selects is HA-managed whatever this says.
    #[serde(default)]
    pub ha: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

// ---------------------------------------------------------------------------
// Tenants and interconnects

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub name: Located<Name>,
    /// Pinned L3 VNI of the tenant VRF (allocated when absent).
    #[serde(default)]
    pub l3_vni: Option<Located<u32>>,
    pub networks: Vec<Located<TenantNetwork>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantNetwork {
    pub name: Located<Name>,
    /// Routed in the tenant VRF with a distributed anycast gateway (symmetric IRB).
    #[serde(default = "yes")]
    pub routed: bool,
    /// Pinned L2 VNI (allocated when absent).
    #[serde(default)]
    pub vni: Option<Located<u32>>,
    /// Pinned local VLAN id (allocated from `vlans.tenant` when absent).
    #[serde(default)]
    pub vlan: Option<Located<VlanId>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interconnect {
    pub name: Located<Name>,
    pub a: InterconnectEnd,
    pub b: InterconnectEnd,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InterconnectEnd {
    pub site: Located<Name>,
    /// The ASN this end configures for its peer (as agreed with the other side).
    /// When absent, the peer's allocated ASN is used.
    #[serde(default)]
    pub remote_asn: Option<Located<u32>>,
}

// ---------------------------------------------------------------------------
// Teams and SLOs (filled in by later features)

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: Located<Name>,
    /// Quota of the team's projects (defaults to the blueprint's default quota).
    #[serde(default)]
    pub quota: Option<Quota>,
    /// Keystone users (in the domain strata's projects live in) given the `member`
    /// role on the team's project.
    #[serde(default)]
    pub members: Vec<String>,
    /// Tenants whose networks the team's project may use: each of their networks is
    /// shared with the project through a Neutron RBAC policy (`access_as_shared`).
    #[serde(default)]
    pub tenants: Vec<Located<Name>>,
    /// GPU flavors the team's project may boot. GPU flavors are private; only the
    /// projects of the teams that list them get access.
    #[serde(default)]
    pub gpu_flavors: Vec<Located<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    pub name: Located<Name>,
    /// Service the SLO is about (e.g. `maas-api`).
    pub service: String,
    /// Target in percent, e.g. `99.9`.
    pub objective: Located<f64>,
    /// Rolling window, e.g. `30d`.
    #[serde(default = "default_window")]
    pub window: String,
    #[serde(default)]
    pub description: Option<String>,
}

fn default_window() -> String {
    "30d".into()
}

// ---------------------------------------------------------------------------
// Change policy (what the server applies on its own)

/// What `strata serve` may apply without a person approving the plan. Deletes, and any
/// plan over the blast-radius limit, always wait for an approval, whatever this says.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Plan actions applied automatically: `create`, `adopt`, `update`. A plan with any
    /// other action waits for an approval. Default: creates and adoptions.
    #[serde(default = "default_auto_apply")]
    pub auto_apply: Vec<Located<PolicyAction>>,
    /// When automatic applies may run (UTC). Empty: at any time. Outside every window a
    /// plan that would apply on its own waits until the next window opens.
    #[serde(default)]
    pub change_windows: Vec<Located<ChangeWindow>>,
    /// Drift the periodic reconcile finds: `report` it, or `correct` it (through this
    /// same policy: a correction that is an update applies only if `update` is allowed).
    #[serde(default)]
    pub drift: DriftAction,
    /// A plan that deletes or reboots more than this share of a DC's owned objects
    /// (percent) waits for an approval, and apply refuses it without one.
    #[serde(default = "default_max_destroy_percent")]
    pub max_destroy_percent: Located<f64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            auto_apply: default_auto_apply(),
            change_windows: Vec::new(),
            drift: DriftAction::default(),
            max_destroy_percent: default_max_destroy_percent(),
        }
    }
}

fn default_auto_apply() -> Vec<Located<PolicyAction>> {
    vec![
        Located::synthetic(PolicyAction::Create),
        Located::synthetic(PolicyAction::Adopt),
    ]
}

fn default_max_destroy_percent() -> Located<f64> {
    Located::synthetic(10.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyAction {
    Create,
    Adopt,
    Update,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriftAction {
    #[default]
    Report,
    Correct,
}

/// A weekly window in UTC: the days it opens and the times it opens and closes
/// (`end` after `start`; `24:00` closes at midnight).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeWindow {
    /// Days the window opens: `mon` … `sun`. Default: every day.
    #[serde(default = "every_day")]
    pub days: Vec<Weekday>,
    pub start: Located<TimeOfDay>,
    pub end: Located<TimeOfDay>,
}

fn every_day() -> Vec<Weekday> {
    use Weekday::*;
    vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// Days after Monday (Mon = 0).
    pub fn index(self) -> u8 {
        self as u8
    }
}
