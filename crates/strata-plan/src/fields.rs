//! The field vocabulary of every [`Kind`], as types.
//!
//! A [`Resource`] carries its compared `fields` and its create-time `spec` as JSON maps,
//! so that the diff, the drift check, the journal and the saved plan stay generic. Code
//! that builds or reads the fields of one kind goes through these structs instead of
//! string keys: desired state builds them ([`Resource::with_fields`],
//! [`Resource::with_spec`]), providers build observed resources from them and read
//! desired state back with [`Resource::fields_as`] / [`Resource::spec_as`], so a
//! misspelled field is a compile error and a malformed one a clear [`FieldsError`].
//!
//! The serde names are the JSON names, so the serialised form (plans, the journal,
//! saved plans) is exactly the map the vocabulary on [`Kind`] documents. Optional
//! values are of two sorts: `null` when the platform says "none" (a VLAN without a
//! rack, a VM without an HA group), and absent when an observation could not read the
//! value (power fields without `op=power_parameters`, a VM's guest network without its
//! configuration) or desired state does not manage it; an absent field is not compared.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Kind, Resource, ResourceId};

/// The typed `fields` of one kind.
pub trait KindFields: Serialize + DeserializeOwned {
    const KIND: Kind;
}

/// The typed create-time `spec` of one kind.
pub trait KindSpec: Serialize + DeserializeOwned {
    const KIND: Kind;
}

/// A resource's fields or spec that do not fit its kind's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{id}: the {part} do not fit kind {kind}: {why}")]
pub struct FieldsError {
    pub id: ResourceId,
    /// `fields` or `spec`.
    pub part: &'static str,
    /// The kind whose vocabulary was expected.
    pub kind: Kind,
    pub why: String,
}

/// `map` as `T`.
fn read<T: DeserializeOwned>(
    id: &ResourceId,
    part: &'static str,
    kind: Kind,
    map: &BTreeMap<String, Value>,
) -> Result<T, FieldsError> {
    let err = |why: String| FieldsError {
        id: id.clone(),
        part,
        kind,
        why,
    };
    if id.kind != kind {
        return Err(err(format!("the resource is a {}", id.kind)));
    }
    let object: serde_json::Map<String, Value> =
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    serde_json::from_value(Value::Object(object)).map_err(|e| err(e.to_string()))
}

/// `value` as a field map.
fn write<T: Serialize>(value: &T) -> BTreeMap<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m.into_iter().collect(),
        // The structs of this module are plain records of strings, numbers, lists and
        // string maps: they always serialise to an object.
        Ok(other) => unreachable!("a field struct serialised to {other}"),
        Err(e) => unreachable!("a field struct failed to serialise: {e}"),
    }
}

impl Resource {
    /// A resource of `id` with the fields of its kind (owned, no spec).
    pub fn with_fields<F: KindFields>(id: ResourceId, fields: &F) -> Resource {
        debug_assert_eq!(id.kind, F::KIND, "fields of another kind");
        let mut r = Resource::new(id);
        r.fields = write(fields);
        r
    }

    /// Replace the create-time parameters with those of the kind.
    pub fn with_spec<S: KindSpec>(mut self, spec: &S) -> Resource {
        debug_assert_eq!(self.id.kind, S::KIND, "spec of another kind");
        self.spec = write(spec);
        self
    }

    /// The fields, read as the kind's vocabulary.
    pub fn fields_as<F: KindFields>(&self) -> Result<F, FieldsError> {
        read(&self.id, "fields", F::KIND, &self.fields)
    }

    /// The create-time parameters, read as the kind's.
    pub fn spec_as<S: KindSpec>(&self) -> Result<S, FieldsError> {
        read(&self.id, "spec", S::KIND, &self.spec)
    }
}

/// `fabric` (MAAS).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FabricFields {
    pub description: String,
}

impl KindFields for FabricFields {
    const KIND: Kind = Kind::Fabric;
}

/// `vlan` (MAAS; name = infrastructure role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VlanFields {
    pub vid: u16,
    pub name: String,
    pub mtu: u32,
    pub dhcp_on: bool,
    /// Rack controller hostname, or null.
    pub primary_rack: Option<String>,
    pub secondary_rack: Option<String>,
}

impl KindFields for VlanFields {
    const KIND: Kind = Kind::Vlan;
}

/// The create-time parameters of a `vlan`: how the provider finds the MAAS VLAN the
/// design attaches to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VlanSpec {
    /// The design subnet on this VLAN: the VLAN that carries it in MAAS (made by a
    /// controller's registration, or by strata) is this VLAN.
    pub cidr: String,
    /// The hosts' native (provisioning) VLAN and its subnet: the fabric that carries
    /// them is where a tagged VLAN is looked for by VID, and created when missing.
    pub home: String,
    pub home_cidr: String,
}

impl KindSpec for VlanSpec {
    const KIND: Kind = Kind::Vlan;
}

/// `maas-subnet` (name = CIDR).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaasSubnetFields {
    pub cidr: String,
    pub name: String,
    pub vid: u16,
    pub gateway_ip: Option<String>,
    pub managed: bool,
}

impl KindFields for MaasSubnetFields {
    const KIND: Kind = Kind::MaasSubnet;
}

/// A DHCP range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRange {
    pub start: String,
    pub end: String,
}

/// `dns-domain` (MAAS; name = the domain).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsDomainFields {
    /// MAAS answers for the domain (rather than forwarding it).
    pub authoritative: bool,
}

impl KindFields for DnsDomainFields {
    const KIND: Kind = Kind::DnsDomain;
}

/// `dns-record` (MAAS DNS resource; name = FQDN).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsRecordFields {
    pub fqdn: String,
    /// The A/AAAA records, sorted.
    pub ip_addresses: Vec<String>,
}

impl KindFields for DnsRecordFields {
    const KIND: Kind = Kind::DnsRecord;
}

/// `maas-tag` (a MAAS tag that carries kernel options; name = tag name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaasTagFields {
    /// Says what the tag is for and carries the ownership mark
    /// (`... (managed by strata: <owner tag>)`).
    pub comment: String,
    /// The kernel command line options MAAS adds when it deploys a machine with the tag.
    pub kernel_opts: String,
}

impl KindFields for MaasTagFields {
    const KIND: Kind = Kind::MaasTag;
}

/// The create-time parameters of a `maas-subnet`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MaasSubnetSpec {
    /// The DHCP range MAAS serves, above every address strata allocated; null when
    /// the VLAN has no DHCP.
    #[serde(default)]
    pub dynamic_range: Option<AddressRange>,
    /// The `vlan` resource (infrastructure role) the subnet belongs on.
    #[serde(default)]
    pub vlan: Option<String>,
}

impl KindSpec for MaasSubnetSpec {
    const KIND: Kind = Kind::MaasSubnet;
}

/// `machine` (MAAS; name = serial).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineFields {
    pub hostname: String,
    pub power_type: String,
    /// Absent when MAAS cannot list power parameters (then not compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_user: Option<String>,
    /// Sorted.
    pub tags: Vec<String>,
    /// The MAAS status name; desired `Deployed`.
    pub status: String,
    /// The release MAAS reports (`noble`, `debian-13-pve`); empty for a machine
    /// registered as deployed, whose OS MAAS did not install and does not know.
    pub distro_series: String,
    pub zone: String,
    /// The machine's network in MAAS, flattened to `device.property` → value
    /// ([`MachineNetwork::summary`]), so drift names the path (`bond0.mtu`). Absent
    /// for a machine registered as already running (MAAS holds only its boot NIC and
    /// strata does not model it) and where the profile gives the VLANs no device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<BTreeMap<String, String>>,
    /// The machine's storage in MAAS ([`MachineStorage::summary`]: `md0.level`,
    /// `md0.members`, `md0.fstype`, `md0.mount`). Absent where the profile declares no
    /// RAID (MAAS's default layout stands) and for a machine registered as running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<BTreeMap<String, String>>,
}

impl KindFields for MachineFields {
    const KIND: Kind = Kind::Machine;
}

/// The create-time parameters of a `machine`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pxe_mac: Option<String>,
    /// A secret reference (`env:BMC_PASSWORD`, `file:PATH`), never the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_pass: Option<String>,
    /// Cloud-init, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The machine already runs an OS: created with `deployed=true` (MAAS registers
    /// it as Deployed) and never commissioned, deployed or power-cycled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deployed: bool,
    /// The image deploy asks for, as MAAS names it (`custom/debian-13-pve`,
    /// `ubuntu/noble`, `noble`); absent: the field `distro_series`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The BMC's MAC: its `power_address` is reserved for it in MAAS's DHCP before
    /// MAAS is pointed at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_mac: Option<String>,
    /// The network MAAS configures before deploy (curtin writes the deployed OS's
    /// network from MAAS's interface model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<MachineNetwork>,
    /// The disks' layout MAAS configures before deploy (curtin partitions and formats
    /// the deployed machine from MAAS's storage model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<MachineStorage>,
    /// What commissioning must find (the hardware profile): a machine that differs is
    /// quarantined, never deployed. Absent for machines that already run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<crate::hardware::HardwareExpectation>,
}

/// A machine's storage as MAAS models it: software RAID arrays, each built from one
/// partition per member disk that fills it, with the filesystem made on the array and
/// where it is mounted; the root array's first disk is the boot disk, with an EFI
/// system partition (`/boot/efi`) before its member partition. Disks in no array stay
/// unused (Ceph and local pools take them after deploy).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineStorage {
    pub raids: Vec<MachineRaid>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineRaid {
    /// The array's name (`md0`).
    pub name: String,
    /// MAAS's level name (`raid-1`).
    pub level: String,
    /// Member disks by kernel name (`sda`); each gets one partition that fills it.
    pub members: Vec<String>,
    /// The filesystem made on the array (`ext4`); absent: a bare array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
}

impl MachineStorage {
    /// The array mounted at `/`.
    pub fn root(&self) -> Option<&MachineRaid> {
        self.raids.iter().find(|r| r.mount.as_deref() == Some("/"))
    }

    /// The disk the bootloader and the EFI system partition go on: the root array's
    /// first member.
    pub fn boot_disk(&self) -> Option<&str> {
        self.root()?.members.first().map(String::as_str)
    }

    /// The comparable form: `<array>.level`, `.members` (disk names, sorted),
    /// `.fstype` and `.mount` (when set), `boot.disk` and `boot.efi` (the EFI system
    /// partition's mount point on it). Observe builds the same keys from MAAS's block
    /// devices.
    pub fn summary(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(d) = self.boot_disk() {
            out.insert("boot.disk".to_string(), d.to_string());
            out.insert("boot.efi".to_string(), "/boot/efi".to_string());
        }
        for r in &self.raids {
            let mut members = r.members.clone();
            members.sort();
            out.insert(format!("{}.level", r.name), r.level.clone());
            out.insert(format!("{}.members", r.name), members.join(","));
            if let Some(f) = &r.fstype {
                out.insert(format!("{}.fstype", r.name), f.clone());
            }
            if let Some(m) = &r.mount {
                out.insert(format!("{}.mount", r.name), m.clone());
            }
        }
        out
    }
}

/// A machine's network as MAAS models it: a bond of NICs (or one NIC) carrying the
/// native network untagged and a VLAN device per tagged VLAN, each with a static
/// address, and the default gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineNetwork {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond: Option<MachineBond>,
    /// A bridge on the bond (or the first NIC) that carries the native address and
    /// the VLAN devices: a Proxmox node's `vmbr0`. It is then the uplink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<MachineBridge>,
    /// The bond, the bridge or the NIC that carries the VLANs.
    pub uplink: String,
    /// The uplink's MTU.
    pub mtu: u32,
    pub links: Vec<MachineLink>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineBond {
    pub name: String,
    /// Member NICs by kernel name.
    pub members: Vec<String>,
    /// MAAS's `bond_mode` (`802.3ad`, `active-backup`).
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lacp_rate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xmit_hash_policy: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineBridge {
    pub name: String,
    /// The bond or NIC it is made of.
    pub parent: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineLink {
    /// The uplink for the native network, `<uplink>.<vid>` for a tagged VLAN.
    pub device: String,
    pub vid: u16,
    /// Untagged on the uplink (the network the machine PXE-boots on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub native: bool,
    /// The static address with its prefix length (`10.20.4.17/22`).
    pub address: String,
    pub mtu: u32,
    /// The default gateway, on the routed VLAN's link only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

impl MachineNetwork {
    /// The comparable form: `<bond>.members`, `.mode`, `.lacp_rate`,
    /// `.xmit_hash_policy`, `<uplink>.mtu`, `<bridge>.parent` (and the bond's `.mtu`
    /// under a bridge), `<device>.address`, `<vlan device>.mtu`
    /// and `gateway`. Observe builds the same keys from MAAS's interfaces.
    pub fn summary(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(b) = &self.bond {
            let mut members = b.members.clone();
            members.sort();
            out.insert(format!("{}.members", b.name), members.join(","));
            out.insert(format!("{}.mode", b.name), b.mode.clone());
            if let Some(r) = &b.lacp_rate {
                out.insert(format!("{}.lacp_rate", b.name), r.clone());
            }
            if let Some(h) = &b.xmit_hash_policy {
                out.insert(format!("{}.xmit_hash_policy", b.name), h.clone());
            }
        }
        out.insert(format!("{}.mtu", self.uplink), self.mtu.to_string());
        if let Some(br) = &self.bridge {
            out.insert(format!("{}.parent", br.name), br.parent.clone());
            if self.bond.is_some() {
                out.insert(format!("{}.mtu", br.parent), self.mtu.to_string());
            }
        }
        for l in &self.links {
            out.insert(format!("{}.address", l.device), l.address.clone());
            if !l.native {
                out.insert(format!("{}.mtu", l.device), l.mtu.to_string());
            }
            if let Some(g) = &l.gateway {
                out.insert("gateway".into(), g.clone());
            }
        }
        out
    }
}

impl KindSpec for MachineSpec {
    const KIND: Kind = Kind::Machine;
}

/// `node-dns` (Proxmox; name = node hostname).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeDnsFields {
    /// The search domain.
    pub search: String,
    /// Up to three resolvers, in order.
    pub dns: Vec<String>,
}

impl KindFields for NodeDnsFields {
    const KIND: Kind = Kind::NodeDns;
}

/// `vm` (Proxmox; name = hostname).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmFields {
    pub cores: u64,
    /// MiB.
    pub memory: u64,
    pub disk_gb: u64,
    /// Proxmox `netN` strings in order, without MAC addresses. Absent when the
    /// configuration could not be read (observed) or not managed (desired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nets: Option<Vec<String>>,
    /// Cloud-init `ipconfigN` per NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipconfig: Option<Vec<String>>,
    /// Space-separated resolvers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nameserver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searchdomain: Option<String>,
    /// Sorted.
    pub tags: Vec<String>,
    /// `running`.
    pub status: String,
    /// HA-managed (an HA resource of the cluster).
    #[serde(default)]
    pub ha: bool,
}

impl KindFields for VmFields {
    const KIND: Kind = Kind::Vm;
}

/// The create-time parameters of a `vm` (desired: `template`, `storage`, `cluster`;
/// observed: the `node` it runs on).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VmSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Observed: the fields with a change waiting in the VM's `[PENDING]` section for
    /// its next boot (Proxmox `GET .../pending`), with the value the running VM has
    /// (the observed fields are those after the next boot).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, Value>,
    /// Observed: the VM's `hotplug` setting, when set (PVE's default is
    /// `network,disk,usb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hotplug: Option<String>,
}

impl KindSpec for VmSpec {
    const KIND: Kind = Kind::Vm;
}

/// `ha-rule` (Proxmox VE 9; name = rule id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HaRuleFields {
    /// `node-affinity` or `resource-affinity`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `positive` or `negative` on resource-affinity rules; null on node affinity.
    pub affinity: Option<String>,
    /// Node names, sorted (as Proxmox lists them: `node` or `node:priority`); empty on
    /// resource-affinity rules.
    pub nodes: Vec<String>,
    /// Node-affinity rules only: never run elsewhere.
    pub strict: bool,
    /// Node-affinity rules only (always true on the others): the `failback` flag of
    /// the HA resource of each VM the rule governs (false: stay where the VM was
    /// recovered to when a preferred node comes back).
    #[serde(default = "yes")]
    pub failback: bool,
    /// The VMs the rule governs, by name, sorted (an id strata cannot map to an owned
    /// VM stays `vm:<vmid>`).
    pub vms: Vec<String>,
}

fn yes() -> bool {
    true
}

impl KindFields for HaRuleFields {
    const KIND: Kind = Kind::HaRule;
}

/// The create-time parameters of an `ha-rule`: the cluster it belongs to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HaRuleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

impl KindSpec for HaRuleSpec {
    const KIND: Kind = Kind::HaRule;
}

/// `project` (OpenStack; name = team).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectFields {
    pub description: String,
    pub tags: Vec<String>,
}

impl KindFields for ProjectFields {
    const KIND: Kind = Kind::Project;
}

/// `flavor` (name = flavor name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlavorFields {
    pub vcpus: u64,
    /// MiB.
    pub ram: u64,
    /// GB.
    pub disk: u64,
    pub is_public: bool,
    pub extra_specs: BTreeMap<String, String>,
}

impl KindFields for FlavorFields {
    const KIND: Kind = Kind::Flavor;
}

/// `network` (name = `<tenant>-<network>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkFields {
    pub provider_network_type: Option<String>,
    pub provider_physical_network: Option<String>,
    pub provider_segmentation_id: Option<i64>,
    pub shared: bool,
    pub tags: Vec<String>,
}

impl KindFields for NetworkFields {
    const KIND: Kind = Kind::Network;
}

/// `subnet` (OpenStack; name = the network's name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubnetFields {
    /// The network's name.
    pub network: String,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    pub ip_version: u8,
}

impl KindFields for SubnetFields {
    const KIND: Kind = Kind::Subnet;
}

/// `quota` (name = team project).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuotaFields {
    pub instances: i64,
    pub cores: i64,
    /// MiB.
    pub ram: i64,
}

impl KindFields for QuotaFields {
    const KIND: Kind = Kind::Quota;
}

/// `registered-limit` (Keystone unified limits of the compute service in the region;
/// name = the resource, e.g. `class:VCPU`): the default every project gets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisteredLimitFields {
    pub default_limit: i64,
}

impl KindFields for RegisteredLimitFields {
    const KIND: Kind = Kind::RegisteredLimit;
}

/// `project-limit` (Keystone unified limit of the compute service for a team's project;
/// name = `<team>:<resource>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectLimitFields {
    /// The team's project name.
    pub project: String,
    /// Keystone's `resource_name`, e.g. `servers`, `class:CUSTOM_PCI_10DE_2330`.
    pub resource: String,
    pub limit: i64,
}

impl KindFields for ProjectLimitFields {
    const KIND: Kind = Kind::ProjectLimit;
}

/// `role-assignment` (Keystone; name = `<team>:<user>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleAssignmentFields {
    /// The team's project name.
    pub project: String,
    /// The Keystone user's name.
    pub user: String,
    /// The role's name (`member`).
    pub role: String,
}

impl KindFields for RoleAssignmentFields {
    const KIND: Kind = Kind::RoleAssignment;
}

/// `flavor-access` (Nova; name = `<flavor>:<team>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlavorAccessFields {
    /// The private flavor's name.
    pub flavor: String,
    /// The project (team) given access.
    pub project: String,
}

impl KindFields for FlavorAccessFields {
    const KIND: Kind = Kind::FlavorAccess;
}

/// `network-rbac` (Neutron; name = `<network>:<team>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkRbacFields {
    /// The network's name.
    pub network: String,
    /// The target project (team).
    pub project: String,
    /// `access_as_shared`.
    pub action: String,
}

impl KindFields for NetworkRbacFields {
    const KIND: Kind = Kind::NetworkRbac;
}

/// The documented field names of every kind (what [`Kind`]'s doc lists), for tests
/// and tools that check a map against the vocabulary.
pub fn vocabulary(kind: Kind) -> BTreeSet<&'static str> {
    let names: &[&'static str] = match kind {
        Kind::Fabric => &["description"],
        Kind::Vlan => &[
            "vid",
            "name",
            "mtu",
            "dhcp_on",
            "primary_rack",
            "secondary_rack",
        ],
        Kind::MaasSubnet => &["cidr", "name", "vid", "gateway_ip", "managed"],
        Kind::DnsDomain => &["authoritative"],
        Kind::DnsRecord => &["fqdn", "ip_addresses"],
        Kind::MaasTag => &["comment", "kernel_opts"],
        Kind::Machine => &[
            "hostname",
            "power_type",
            "power_address",
            "power_user",
            "network",
            "storage",
            "tags",
            "status",
            "distro_series",
            "zone",
        ],
        Kind::NodeDns => &["search", "dns"],
        Kind::Vm => &[
            "cores",
            "memory",
            "disk_gb",
            "nets",
            "ipconfig",
            "nameserver",
            "searchdomain",
            "tags",
            "status",
            "ha",
        ],
        Kind::HaRule => &["type", "affinity", "nodes", "strict", "failback", "vms"],
        Kind::Project => &["description", "tags"],
        Kind::Flavor => &["vcpus", "ram", "disk", "is_public", "extra_specs"],
        Kind::Network => &[
            "provider_network_type",
            "provider_physical_network",
            "provider_segmentation_id",
            "shared",
            "tags",
        ],
        Kind::Subnet => &["network", "cidr", "gateway_ip", "enable_dhcp", "ip_version"],
        Kind::Quota => &["instances", "cores", "ram"],
        Kind::RegisteredLimit => &["default_limit"],
        Kind::ProjectLimit => &["project", "resource", "limit"],
        Kind::RoleAssignment => &["project", "user", "role"],
        Kind::FlavorAccess => &["flavor", "project"],
        Kind::NetworkRbac => &["network", "project", "action"],
    };
    names.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use super::*;

    /// Fully populated fields of `F` round-trip through a resource, and their keys are
    /// exactly the documented vocabulary.
    fn round_trips<F: KindFields + PartialEq + Debug>(fields: F) {
        let r = Resource::with_fields(ResourceId::new("fra1", F::KIND, "x"), &fields);
        let keys: BTreeSet<&str> = r.fields.keys().map(String::as_str).collect();
        assert_eq!(keys, vocabulary(F::KIND), "{}", F::KIND);
        assert_eq!(r.fields_as::<F>().expect("reads back"), fields);
        let json = serde_json::to_string(&r).expect("serialises");
        let back: Resource = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.fields_as::<F>().expect("reads back"), fields);
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn fabric_fields() {
        round_trips(FabricFields {
            description: s("strata-acme: managed"),
        });
    }

    #[test]
    fn vlan_fields() {
        round_trips(VlanFields {
            vid: 10,
            name: s("management"),
            mtu: 9000,
            dhcp_on: true,
            primary_rack: Some(s("rack1")),
            secondary_rack: None,
        });
    }

    #[test]
    fn maas_subnet_fields_and_spec() {
        round_trips(MaasSubnetFields {
            cidr: s("10.0.0.0/24"),
            name: s("fra1-management"),
            vid: 10,
            gateway_ip: Some(s("10.0.0.1")),
            managed: true,
        });
        let spec = MaasSubnetSpec {
            dynamic_range: Some(AddressRange {
                start: s("10.0.0.200"),
                end: s("10.0.0.254"),
            }),
            vlan: Some(s("provisioning")),
        };
        let r = Resource::new(ResourceId::new("fra1", Kind::MaasSubnet, "x")).with_spec(&spec);
        assert_eq!(
            r.spec["dynamic_range"],
            serde_json::json!({"start": "10.0.0.200", "end": "10.0.0.254"})
        );
        assert_eq!(r.spec_as::<MaasSubnetSpec>().expect("spec"), spec);
        // No DHCP: the range is null, not absent.
        let r = r.with_spec(&MaasSubnetSpec::default());
        assert_eq!(r.spec["dynamic_range"], Value::Null);
    }

    #[test]
    fn machine_fields_and_spec() {
        round_trips(MachineFields {
            hostname: s("c1"),
            power_type: s("ipmi"),
            power_address: Some(s("10.11.0.10")),
            power_user: Some(s("admin")),
            tags: vec![s("role-compute"), s("strata-acme")],
            status: s("Deployed"),
            distro_series: s("noble"),
            zone: s("default"),
            network: Some(BTreeMap::from([(s("bond0.mtu"), s("9000"))])),
            storage: Some(BTreeMap::from([(s("md0.level"), s("raid-1"))])),
        });
        let spec = MachineSpec {
            pxe_mac: Some(s("52:54:00:00:00:01")),
            power_pass: Some(s("env:BMC")),
            user_data: Some(s("I2Nsb3VkLWNvbmZpZw==")),
            role: Some(s("compute")),
            ..MachineSpec::default()
        };
        let r = Resource::new(ResourceId::new("fra1", Kind::Machine, "x")).with_spec(&spec);
        let keys: Vec<&str> = r.spec.keys().map(String::as_str).collect();
        // `deployed` is written only when true; absent image and BMC MAC are absent.
        assert_eq!(keys, ["power_pass", "pxe_mac", "role", "user_data"]);
        assert_eq!(r.spec_as::<MachineSpec>().expect("spec"), spec);
        let running = MachineSpec {
            deployed: true,
            bmc_mac: Some(s("52:54:02:00:00:01")),
            ..spec
        };
        let r = Resource::new(ResourceId::new("fra1", Kind::Machine, "x")).with_spec(&running);
        assert_eq!(r.spec["deployed"], Value::Bool(true));
        assert_eq!(r.spec_as::<MachineSpec>().expect("spec"), running);
    }

    #[test]
    fn node_dns_fields() {
        round_trips(NodeDnsFields {
            search: s("fra1.example.net"),
            dns: vec![s("10.1.0.53")],
        });
    }

    #[test]
    fn vm_fields_and_spec() {
        round_trips(VmFields {
            cores: 2,
            memory: 4096,
            disk_gb: 32,
            nets: Some(vec![s("virtio,bridge=vmbr0,tag=10")]),
            ipconfig: Some(vec![s("ip=10.0.0.5/24,gw=10.0.0.1")]),
            nameserver: Some(s("10.0.0.53")),
            searchdomain: Some(s("fra1.example.net")),
            tags: vec![s("strata-acme")],
            status: s("running"),
            ha: true,
        });
        let spec = VmSpec {
            template: Some(s("tmpl")),
            storage: Some(s("ceph")),
            cluster: Some(s("pve")),
            ..VmSpec::default()
        };
        let r = Resource::new(ResourceId::new("fra1", Kind::Vm, "x")).with_spec(&spec);
        let keys: Vec<&str> = r.spec.keys().map(String::as_str).collect();
        assert_eq!(keys, ["cluster", "storage", "template"]);
        assert_eq!(r.spec_as::<VmSpec>().expect("spec"), spec);
    }

    #[test]
    fn ha_rule_fields() {
        round_trips(HaRuleFields {
            kind: s("resource-affinity"),
            affinity: Some(s("negative")),
            nodes: vec![],
            strict: false,
            failback: true,
            vms: vec![s("fra1-os-ctl1"), s("fra1-os-ctl2")],
        });
        round_trips(HaRuleFields {
            kind: s("node-affinity"),
            affinity: None,
            nodes: vec![s("pve1"), s("pve2")],
            strict: true,
            failback: true,
            vms: vec![s("fra1-db1")],
        });
    }

    #[test]
    fn tenancy_fields() {
        round_trips(RoleAssignmentFields {
            project: s("ml-research"),
            user: s("carol"),
            role: s("member"),
        });
        round_trips(FlavorAccessFields {
            flavor: s("g1.h100x8"),
            project: s("ml-research"),
        });
        round_trips(NetworkRbacFields {
            network: s("ml-training"),
            project: s("ml-research"),
            action: s("access_as_shared"),
        });
    }

    #[test]
    fn project_fields() {
        round_trips(ProjectFields {
            description: s("team ml"),
            tags: vec![s("strata-acme")],
        });
    }

    #[test]
    fn flavor_fields() {
        round_trips(FlavorFields {
            vcpus: 32,
            ram: 262144,
            disk: 200,
            is_public: true,
            extra_specs: [(s("strata:owner"), s("strata-acme"))].into(),
        });
    }

    #[test]
    fn network_fields() {
        round_trips(NetworkFields {
            provider_network_type: Some(s("vlan")),
            provider_physical_network: Some(s("physnet1")),
            provider_segmentation_id: Some(120),
            shared: false,
            tags: vec![s("strata-acme")],
        });
    }

    #[test]
    fn subnet_fields() {
        round_trips(SubnetFields {
            network: s("acme-app"),
            cidr: s("10.20.0.0/24"),
            gateway_ip: Some(s("10.20.0.1")),
            enable_dhcp: true,
            ip_version: 4,
        });
    }

    #[test]
    fn quota_fields() {
        round_trips(QuotaFields {
            instances: 10,
            cores: -1,
            ram: 65536,
        });
        round_trips(RegisteredLimitFields { default_limit: 8 });
        round_trips(ProjectLimitFields {
            project: "ml".into(),
            resource: "class:CUSTOM_PCI_10DE_2330".into(),
            limit: 16,
        });
    }

    #[test]
    fn every_kind_has_a_vocabulary() {
        for kind in Kind::ALL {
            assert!(!vocabulary(kind).is_empty(), "{kind}");
        }
    }

    #[test]
    fn malformed_fields_say_which_resource_and_why() {
        let id = ResourceId::new("fra1", Kind::Vm, "app1");
        let mut r = Resource::new(id.clone());
        r.fields.insert("cores".into(), Value::from("many"));
        let e = r.fields_as::<VmFields>().expect_err("not a number");
        assert_eq!(e.id, id);
        assert!(e.to_string().contains("fra1/vm/app1"), "{e}");
        assert!(e.to_string().contains("many"), "{e}");
        let e = r.fields_as::<QuotaFields>().expect_err("another kind");
        assert!(e.why.contains("is a vm"), "{e}");
    }
}
