//! The provider-neutral resource model shared by desired state, observed state and
//! the plan.
//!
//! A [`Resource`] is identified by `(dc, kind, name)` ([`ResourceId`]): the name is
//! the stable identity strata gives the object (machine serial, VM hostname, flavor
//! name, ...), never a platform-assigned id. Platform ids (`system_id`, `vmid`, UUIDs)
//! travel in [`Resource::external_id`]. `fields` are compared by the diff; `spec`
//! holds create-time parameters that are not compared (template, placement, secret
//! references, user data).
//!
//! The field vocabulary per kind is documented on [`Kind`] and typed in
//! [`crate::fields`]; providers map API objects onto exactly these fields.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The three platforms strata drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Maas,
    Proxmox,
    Openstack,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Maas => "maas",
            Platform::Proxmox => "proxmox",
            Platform::Openstack => "openstack",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of object a resource is. Order is dependency order within a platform.
///
/// Fields per kind (all JSON values):
/// - `fabric` (MAAS): `description`.
/// - `vlan` (MAAS; name = infrastructure role): `vid`, `name`, `mtu`, `dhcp_on`,
///   `primary_rack`, `secondary_rack` (rack controller hostnames or null).
/// - `maas-subnet` (name = CIDR): `cidr`, `name`, `vid`, `gateway_ip`, `managed`.
///   Spec: `dynamic_range` (`{start, end}` above every address strata allocated, for
///   the DHCP range MAAS serves; null when the VLAN has no DHCP).
/// - `dns-domain` (MAAS; name = the domain, `<dc>.<organisation.domain>`):
///   `authoritative`. A MAAS domain carries no owner mark: strata manages the domain
///   it names and never deletes one (observed as adopted).
/// - `dns-record` (MAAS DNS resource; name = FQDN): `fqdn`, `ip_addresses` (sorted):
///   the names Kolla's endpoints use (`kolla_internal_fqdn`, and
///   `kolla_external_fqdn`, the same name) pointing at the VIP. Depends on its
///   domain. Like domains, never deleted.
/// - `maas-tag` (MAAS; name = tag name, `kernel-<hardware profile>`): `comment` (carries
///   the ownership mark), `kernel_opts` (the kernel command line MAAS gives the
///   machines carrying the tag at deploy: IOMMU and 1 GiB pages for GPU hosts). Only
///   strata's kernel-option tags are resources; role tags belong to their machines.
/// - `machine` (name = serial): `hostname`, `power_type`, `power_address`,
///   `power_user`, `tags` (sorted list), `status` (MAAS status name, desired
///   `Deployed`), `distro_series` (empty for a machine registered as deployed),
///   `zone`, `network` (the machine's network in MAAS as `device.property` →
///   value, e.g. `bond0.mtu`; absent for a machine that already runs and for a
///   Proxmox node; changes are reported per path, `network.bond0.mtu`). Spec:
///   `pxe_mac`, `power_pass` (a secret reference such as `env:BMC_PASSWORD`),
///   `user_data` (base64), `role`, `deployed` (already runs: registered with
///   `deployed=true`, never commissioned or power-cycled), `image` (what deploy
///   installs), `bmc_mac` (the BMC's MAC, for the DHCP reservation of
///   `power_address`), `network` (the bond, links and gateway MAAS configures
///   before deploy).
/// - `node-dns` (Proxmox; name = node hostname): `search` (the DC's search domain),
///   `dns` (up to three resolvers, in order): what `/nodes/{node}/dns` holds. Always
///   present on a node, so never created or deleted; only updated.
/// - `vm` (Proxmox; name = hostname): `cores`, `memory` (MiB), `disk_gb`, `nets`
///   (list of Proxmox `netN` strings in order, without MAC addresses), `ipconfig`
///   (cloud-init `ipconfigN` per NIC), `nameserver` (space-separated), `searchdomain`,
///   `tags` (sorted list), `status` (`running`), `ha` (HA-managed: an HA resource
///   of the cluster). Spec: `template`, `storage`, `cluster`.
/// - `ha-rule` (Proxmox VE 9; name = rule id): `type` (`node-affinity` or
///   `resource-affinity`), `affinity` (`positive`/`negative`, null for node
///   affinity), `nodes` (sorted node names, empty for resource affinity), `strict`,
///   `failback` (node affinity: the `failback` flag of the VMs' HA resources; true on
///   resource affinity), `vms` (sorted VM names the rule governs). Depends on those VMs.
/// - `project` (OpenStack; name = team): `description`, `tags`.
/// - `flavor` (name = flavor name): `vcpus`, `ram` (MiB), `disk` (GB), `is_public`,
///   `extra_specs` (object).
/// - `network` (name = `<tenant>-<network>`): `provider_network_type`,
///   `provider_physical_network`, `provider_segmentation_id`, `shared`, `tags`.
/// - `subnet` (OpenStack; name = the network's name): `network`, `cidr`,
///   `gateway_ip`, `enable_dhcp`, `ip_version`.
/// - `quota` (name = team project): `instances`, `cores`, `ram`.
/// - `registered-limit` (Keystone; name = a unified-limit resource of the compute
///   service, e.g. `class:VCPU`): `default_limit`, from the blueprint's default quota.
///   Only in regions whose Nova runs unified limits (`strata_fleet::quota`).
/// - `project-limit` (Keystone; name = `<team>:<resource>`): `project`, `resource`,
///   `limit`. Depends on the project and on the resource's registered limit (Keystone
///   refuses a project limit without one).
/// - `role-assignment` (Keystone; name = `<team>:<user>`): `project` (the team's
///   project), `user` (a Keystone user name), `role` (`member`). Depends on the project.
/// - `flavor-access` (Nova; name = `<flavor>:<team>`): `flavor`, `project`: the team's
///   project may see and boot the private flavor. Depends on both.
/// - `network-rbac` (Neutron; name = `<network>:<team>`): `network`, `project`,
///   `action` (`access_as_shared`): an RBAC policy sharing the network with the team's
///   project. Depends on both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Fabric,
    Vlan,
    MaasSubnet,
    DnsDomain,
    DnsRecord,
    MaasTag,
    Machine,
    NodeDns,
    Vm,
    HaRule,
    Project,
    Flavor,
    Network,
    Subnet,
    Quota,
    RegisteredLimit,
    ProjectLimit,
    RoleAssignment,
    FlavorAccess,
    NetworkRbac,
}

impl Kind {
    pub fn platform(self) -> Platform {
        match self {
            Kind::Fabric
            | Kind::Vlan
            | Kind::MaasSubnet
            | Kind::DnsDomain
            | Kind::DnsRecord
            | Kind::MaasTag
            | Kind::Machine => Platform::Maas,
            Kind::NodeDns | Kind::Vm | Kind::HaRule => Platform::Proxmox,
            Kind::Project
            | Kind::Flavor
            | Kind::Network
            | Kind::Subnet
            | Kind::Quota
            | Kind::RegisteredLimit
            | Kind::ProjectLimit
            | Kind::RoleAssignment
            | Kind::FlavorAccess
            | Kind::NetworkRbac => Platform::Openstack,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Fabric => "fabric",
            Kind::Vlan => "vlan",
            Kind::MaasSubnet => "maas-subnet",
            Kind::DnsDomain => "dns-domain",
            Kind::DnsRecord => "dns-record",
            Kind::MaasTag => "maas-tag",
            Kind::Machine => "machine",
            Kind::NodeDns => "node-dns",
            Kind::Vm => "vm",
            Kind::HaRule => "ha-rule",
            Kind::Project => "project",
            Kind::Flavor => "flavor",
            Kind::Network => "network",
            Kind::Subnet => "subnet",
            Kind::Quota => "quota",
            Kind::RegisteredLimit => "registered-limit",
            Kind::ProjectLimit => "project-limit",
            Kind::RoleAssignment => "role-assignment",
            Kind::FlavorAccess => "flavor-access",
            Kind::NetworkRbac => "network-rbac",
        }
    }

    pub const ALL: [Kind; 20] = [
        Kind::Fabric,
        Kind::Vlan,
        Kind::MaasSubnet,
        Kind::DnsDomain,
        Kind::DnsRecord,
        Kind::MaasTag,
        Kind::Machine,
        Kind::NodeDns,
        Kind::Vm,
        Kind::HaRule,
        Kind::Project,
        Kind::Flavor,
        Kind::Network,
        Kind::Subnet,
        Kind::Quota,
        Kind::RegisteredLimit,
        Kind::ProjectLimit,
        Kind::RoleAssignment,
        Kind::FlavorAccess,
        Kind::NetworkRbac,
    ];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable identity of a resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceId {
    pub dc: String,
    pub kind: Kind,
    pub name: String,
}

impl ResourceId {
    pub fn new(dc: impl Into<String>, kind: Kind, name: impl Into<String>) -> Self {
        ResourceId {
            dc: dc.into(),
            kind,
            name: name.into(),
        }
    }

    pub fn platform(&self) -> Platform {
        self.kind.platform()
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.dc, self.kind, self.name)
    }
}

/// A string that is not `DC/KIND/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a resource id: {why} (expected DC/KIND/NAME, KIND one of {kinds})", kinds = Kind::ALL.map(Kind::as_str).join(", "))]
pub struct ResourceIdError {
    pub input: String,
    pub why: &'static str,
}

impl std::str::FromStr for ResourceId {
    type Err = ResourceIdError;

    /// `DC/KIND/NAME`, as [`fmt::Display`] writes it; the name may contain `/`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| ResourceIdError {
            input: s.to_string(),
            why,
        };
        let mut it = s.splitn(3, '/');
        let (dc, kind, name) = match (it.next(), it.next(), it.next()) {
            (Some(dc), Some(kind), Some(name)) => (dc, kind, name),
            _ => return Err(err("too few parts")),
        };
        if dc.is_empty() || name.is_empty() {
            return Err(err("empty DC or name"));
        }
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| err("unknown kind"))?;
        Ok(ResourceId::new(dc, kind, name))
    }
}

/// One object, desired or observed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub id: ResourceId,
    /// Compared by the diff.
    pub fields: BTreeMap<String, Value>,
    /// Create-time parameters, not compared.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub spec: BTreeMap<String, Value>,
    /// Fields whose values must never be shown (plans, logs, errors).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub sensitive: BTreeSet<String>,
    /// Whether the object carries this fleet's ownership tag (observed objects).
    pub owned: bool,
    /// Owned because strata adopted it (it existed before strata, e.g. a fabric,
    /// VLAN or subnet a MAAS rack controller created when it registered): managed,
    /// but never deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    /// The platform's id (`system_id`, `vmid`, UUID), for observed objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Resources that must exist before this one is created or updated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceId>,
}

impl Resource {
    pub fn new(id: ResourceId) -> Self {
        Resource {
            id,
            fields: BTreeMap::new(),
            spec: BTreeMap::new(),
            sensitive: BTreeSet::new(),
            owned: true,
            adopted: false,
            external_id: None,
            depends_on: Vec::new(),
        }
    }

    /// Set one field by name: for code generic over kinds (the diff's tests). Code
    /// about one kind builds its fields with [`Resource::with_fields`].
    pub fn field(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.fields.insert(k.to_string(), v.into());
        self
    }

    /// Set one create-time parameter by name (see [`Resource::field`]; code about one
    /// kind uses [`Resource::with_spec`]).
    pub fn spec(mut self, k: &str, v: impl Into<Value>) -> Self {
        self.spec.insert(k.to_string(), v.into());
        self
    }
}

/// A set of resources keyed by id (serialised as a list, in id order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceSet {
    pub resources: BTreeMap<ResourceId, Resource>,
}

impl Serialize for ResourceSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.resources.values())
    }
}

impl<'de> Deserialize<'de> for ResourceSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Resource>::deserialize(d)?;
        Ok(ResourceSet {
            resources: list.into_iter().map(|r| (r.id.clone(), r)).collect(),
        })
    }
}

impl ResourceSet {
    pub fn insert(&mut self, r: Resource) {
        self.resources.insert(r.id.clone(), r);
    }

    pub fn get(&self, id: &ResourceId) -> Option<&Resource> {
        self.resources.get(id)
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.resources.values()
    }

    /// Resources of one DC and platform.
    pub fn scope<'a>(
        &'a self,
        dc: &'a str,
        platform: Platform,
    ) -> impl Iterator<Item = &'a Resource> + 'a {
        self.resources
            .values()
            .filter(move |r| r.id.dc == dc && r.id.platform() == platform)
    }

    pub fn extend(&mut self, other: ResourceSet) {
        self.resources.extend(other.resources);
    }
}

/// What one provider saw in one DC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// Objects strata can identify (owned, or adoptable such as enlisted machines).
    pub resources: ResourceSet,
    /// Objects without this fleet's ownership tag: listed, never touched.
    pub unowned: Vec<UnownedObject>,
}

impl Observed {
    pub fn extend(&mut self, other: Observed) {
        self.resources.extend(other.resources);
        self.unowned.extend(other.unowned);
    }
}

/// An object strata does not own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnownedObject {
    pub dc: String,
    pub platform: Platform,
    /// The platform's own kind name (`qemu`, `machine`, `flavor`, ...).
    pub kind: String,
    pub name: String,
    pub external_id: String,
}

/// The ownership tag strata puts on everything it creates for a fleet.
pub fn owner_tag(fleet_id: &str) -> String {
    format!("strata-{fleet_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_round_trip_through_their_text() {
        for kind in Kind::ALL {
            let id = ResourceId::new("fra1", kind, "a/b-c");
            let back: ResourceId = id.to_string().parse().expect("parses");
            assert_eq!(back, id);
        }
    }

    #[test]
    fn malformed_resource_ids_say_why() {
        for (text, why) in [
            ("fra1/vm", "too few parts"),
            ("/vm/x", "empty DC or name"),
            ("fra1/vm/", "empty DC or name"),
            ("fra1/router/x", "unknown kind"),
        ] {
            let e = text.parse::<ResourceId>().expect_err(text);
            assert_eq!(e.why, why, "{text}");
            assert!(e.to_string().contains("DC/KIND/NAME"));
        }
    }
}
