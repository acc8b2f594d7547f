//! The region's state: every object of every service, serialisable as a whole.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::{Keyed, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub region: String,
    // Keystone
    pub domains: Vec<Domain>,
    pub projects: Vec<Project>,
    pub users: Vec<User>,
    pub roles: Vec<Role>,
    pub assignments: Vec<Assignment>,
    pub services: Vec<CatalogService>,
    /// Keystone unified limits: defaults per service and resource ([`super::limits`]).
    #[serde(default)]
    pub registered_limits: Vec<RegisteredLimit>,
    /// Keystone unified limits of one project (or domain).
    #[serde(default)]
    pub limits: Vec<Limit>,
    pub tokens: BTreeMap<String, Token>,
    // Nova
    pub flavors: Table<Flavor>,
    pub keypairs: Vec<Keypair>,
    pub hosts: Vec<ComputeHost>,
    pub servers: Vec<Server>,
    /// PCI aliases as nova.conf `[pci] alias` defines them.
    pub pci_aliases: Vec<PciAlias>,
    pub nova_quotas: BTreeMap<String, BTreeMap<String, i64>>,
    /// `Some(service type)` when nova runs the unified-limits quota driver and reads
    /// the limits of that Keystone service (`[oslo_limit] endpoint_service_type`).
    #[serde(default)]
    pub nova_unified_limits: Option<String>,
    /// Cold and live migrations (`os-migrations`), oldest first.
    #[serde(default)]
    pub migrations: Vec<Migration>,
    #[serde(default)]
    pub next_migration: u64,
    #[serde(default)]
    pub aggregates: Vec<Aggregate>,
    /// Server groups (`/os-server-groups`), in creation order.
    #[serde(default)]
    pub server_groups: Vec<ServerGroup>,
    #[serde(default)]
    pub next_aggregate: u64,
    pub next_instance: u64,
    pub next_keypair: u64,
    /// Flavors' database row ids (`instance_types.id`, which nova's flavor-access
    /// errors quote), by flavor id; see `nova::flavors`.
    #[serde(default)]
    pub flavor_rows: BTreeMap<String, u64>,
    #[serde(default)]
    pub last_flavor_row: u64,
    // Neutron
    pub networks: Vec<Network>,
    pub subnets: Vec<Subnet>,
    pub ports: Vec<Port>,
    pub security_groups: Vec<SecurityGroup>,
    pub net_quotas: BTreeMap<String, BTreeMap<String, i64>>,
    /// Neutron RBAC policies (`/v2.0/rbac-policies`) on networks.
    #[serde(default)]
    pub rbac_policies: Vec<RbacPolicy>,
    pub next_mac: u64,
    // Glance
    pub images: Table<Image>,
    // Placement
    pub rps: Vec<ResourceProvider>,
    pub custom_rcs: Vec<String>,
    pub custom_traits: Vec<String>,
    pub consumers: BTreeMap<String, Consumer>,
    /// What the region's Kolla configuration sets for Neutron's ML2 type drivers (the
    /// physnets and VLAN ranges); see [`super::kolla`].
    #[serde(default)]
    pub ml2: Ml2Config,
    /// The Kolla files the region was last deployed or reconfigured with (`None` in
    /// states saved before they were kept: the seed's); compute hosts that join are
    /// configured from them.
    #[serde(default)]
    pub kolla_files: Option<BTreeMap<String, String>>,
}

/// `[ml2_type_vlan] network_vlan_ranges` and `[ml2_type_flat] flat_networks` as
/// neutron-server read them from `ml2_conf.ini`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ml2Config {
    /// Physical network → the VLAN ranges tenant networks are allocated from. A
    /// physnet listed without a range is known (provider networks may use it) but
    /// has nothing to allocate.
    pub vlan_ranges: BTreeMap<String, Vec<(i64, i64)>>,
    /// Physical networks flat networks may use (`*` for any).
    pub flat_networks: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Domain {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub description: String,
    pub enabled: bool,
    pub tags: Vec<String>,
    #[serde(default)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub password: String,
    pub enabled: bool,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default_project_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Roles this one implies (`admin` implies `manager`, which implies `member`, ...).
    #[serde(default)]
    pub implies: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub user_id: String,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub system: bool,
    pub role_id: String,
}

/// A Keystone registered limit: the default of a resource for every project.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisteredLimit {
    pub id: String,
    pub service_id: String,
    pub region_id: Option<String>,
    pub resource_name: String,
    pub default_limit: i64,
    pub description: Option<String>,
}

/// A Keystone limit of one project or domain.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Limit {
    pub id: String,
    pub service_id: String,
    pub region_id: Option<String>,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub resource_name: String,
    pub resource_limit: i64,
    pub description: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CatalogService {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CatalogEndpoint {
    pub id: String,
    pub interface: String,
    pub url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Token {
    pub user_id: String,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub system: bool,
    pub methods: Vec<String>,
    pub issued_ms: i64,
    pub expires_ms: i64,
    pub audit_ids: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: i64,
    pub ram: i64,
    pub disk: i64,
    pub ephemeral: i64,
    pub swap: i64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub disabled: bool,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
    pub created_ms: i64,
    /// Projects given access to a private flavor.
    #[serde(default)]
    pub access: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Keypair {
    pub id: u64,
    pub name: String,
    pub user_id: String,
    pub public_key: String,
    pub fingerprint: String,
    pub kind: String,
    pub created_ms: i64,
}

/// A host aggregate; one with `availability_zone` metadata makes its hosts' AZ.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Aggregate {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    pub hosts: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_ms: i64,
    pub updated_ms: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PciDevice {
    pub address: String,
    pub vendor_id: String,
    pub product_id: String,
    pub numa_node: u32,
    #[serde(default)]
    pub server: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PciAlias {
    pub name: String,
    pub vendor_id: String,
    pub product_id: String,
    /// The placement resource class the devices are inventoried as (`CUSTOM_GPU_H100`).
    pub resource_class: String,
}

/// One nova-compute service and its hypervisor (compute node).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ComputeHost {
    /// Integer ids (before microversion 2.53).
    pub id: u64,
    pub service_id: u64,
    /// Compute node UUID (the hypervisor id since 2.53, and its resource provider).
    pub uuid: String,
    pub service_uuid: String,
    pub host: String,
    pub hypervisor_hostname: String,
    pub host_ip: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub local_gb: i64,
    pub cpu_model: String,
    pub az: String,
    /// `enabled` / `disabled`.
    pub status: String,
    /// `up` / `down`.
    pub state: String,
    pub disabled_reason: Option<String>,
    /// The service was forced down (`forced_down`, microversion 2.11): the
    /// servicegroup reports it down whatever its heartbeat says.
    #[serde(default)]
    pub forced_down: bool,
    /// The host's machine lost power (released, erased or powered off through MAAS):
    /// its nova-compute sends no heartbeat, so the service is down whatever
    /// `forced_down` says ([`crate::platform`]).
    #[serde(default)]
    pub powered_off: bool,
    pub pci: Vec<PciDevice>,
    pub started_ms: i64,
    /// The host's NUMA cells as libvirt reports them (hardware and kernel facts).
    #[serde(default)]
    pub numa_cells: Vec<NumaCell>,
    /// What this host's nova-compute was configured with (its merged `nova.conf`).
    #[serde(default)]
    pub conf: ComputeConf,
}

/// One NUMA cell of a compute host.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NumaCell {
    pub id: u32,
    /// Host CPU ids in this cell.
    pub cpus: Vec<u32>,
    pub memory_mb: i64,
    /// 1 GiB huge pages the kernel set aside in this cell (`hugepages=` on its
    /// command line).
    pub pages_1g: i64,
}

/// The nova-compute options the twin acts on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ComputeConf {
    /// `[compute] cpu_dedicated_set`: the host CPUs pinned instances may use.
    pub cpu_dedicated_set: Option<Vec<u32>>,
    /// `[compute] cpu_shared_set`: the host CPUs unpinned instances float on.
    pub cpu_shared_set: Option<Vec<u32>>,
    /// `[DEFAULT] reserved_huge_pages`: (NUMA node, 1 GiB pages) kept from instances.
    pub reserved_pages_1g: Vec<(u32, i64)>,
    /// `[pci] device_spec`: which devices nova-compute may pass through, as
    /// (vendor_id, product_id); a `None` matches any.
    pub device_spec: Vec<(Option<String>, Option<String>)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlavorSnap {
    pub id: String,
    pub name: String,
    pub vcpus: i64,
    pub ram: i64,
    pub disk: i64,
    pub ephemeral: i64,
    pub swap: i64,
    pub extra_specs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    pub code: u16,
    pub message: String,
    pub details: String,
    pub created_ms: i64,
}

/// A transition that completes at `at_ms`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    pub at_ms: i64,
    pub vm_state: String,
    pub task_state: Option<String>,
    pub power_state: i64,
    /// What finishing means (`build`, `resize`, `stop`, ...), for side effects.
    pub kind: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub flavor: FlavorSnap,
    #[serde(default)]
    pub old_flavor: Option<FlavorSnap>,
    pub image_id: String,
    pub key_name: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub az: String,
    pub host: Option<String>,
    pub vm_state: String,
    pub task_state: Option<String>,
    pub power_state: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub launched_ms: Option<i64>,
    pub terminated_ms: Option<i64>,
    pub deleted: bool,
    pub fault: Option<Fault>,
    pub locked: bool,
    pub locked_reason: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub access_ipv4: String,
    pub access_ipv6: String,
    pub disk_config: String,
    pub config_drive: String,
    pub user_data: Option<String>,
    pub seq: u64,
    pub launch_index: u64,
    pub reservation_id: String,
    pub hostname: String,
    pub ports: Vec<String>,
    pub pending: Option<Pending>,
    pub pci: Vec<String>,
    pub security_groups: Vec<String>,
    pub trusted_image_certificates: Option<Vec<String>>,
    pub scheduler_hints: BTreeMap<String, Value>,
    pub pinned_az: Option<String>,
    /// Whether the build is doomed (no valid host) when the pending build completes.
    #[serde(default)]
    pub no_valid_host: bool,
    #[serde(default)]
    pub volumes: Vec<String>,
    /// The host NUMA cells the instance's cells were fitted to (pinned CPUs, huge
    /// pages), empty for an instance without a NUMA topology.
    #[serde(default)]
    pub numa: Vec<CellClaim>,
    /// What was done to the server (`os-instance-actions`), oldest first.
    #[serde(default)]
    pub actions: Vec<InstanceAction>,
}

/// A server group (`nova.objects.InstanceGroup`): one policy, anti-affinity's
/// `max_server_per_host` rule, and the servers booted into it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerGroup {
    pub id: String,
    pub name: String,
    /// `affinity`, `anti-affinity`, `soft-affinity` or `soft-anti-affinity`.
    pub policy: String,
    /// Anti-affinity's `rules.max_server_per_host` (2.64+); absent means 1.
    #[serde(default)]
    pub max_server_per_host: Option<i64>,
    /// Server ids, in the order they joined.
    pub members: Vec<String>,
    pub project_id: String,
    pub user_id: String,
    pub created_ms: i64,
}

/// A migration record (`nova.objects.Migration`): a cold migration (`migration`) or a
/// live one (`live-migration`), with what the source held while it ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Migration {
    pub id: u64,
    pub uuid: String,
    pub instance_uuid: String,
    /// `migration` or `live-migration`.
    pub migration_type: String,
    /// Cold: `pre-migrating`, `finished` (VERIFY_RESIZE), `confirmed`, `reverting`,
    /// `reverted`, `error`; live: `accepted`, `running`, `completed`, `error`, `failed`.
    pub status: String,
    pub source_compute: String,
    pub source_node: String,
    pub dest_compute: Option<String>,
    pub dest_node: Option<String>,
    pub dest_host: Option<String>,
    pub flavor_id: String,
    pub user_id: String,
    pub project_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Why it fails when its time comes (the conductor's error), if it does.
    #[serde(default)]
    pub doomed: Option<String>,
    /// The instance's PCI devices and NUMA cells on the source, given back on revert.
    #[serde(default)]
    pub source_pci: Vec<String>,
    #[serde(default)]
    pub source_numa: Vec<CellClaim>,
}

/// One instance NUMA cell on a host cell.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CellClaim {
    pub host_cell: u32,
    /// Host CPUs pinned to the instance (empty unless `hw:cpu_policy=dedicated`).
    pub pinned: Vec<u32>,
    /// Unpinned vCPUs placed on the cell.
    pub vcpus: i64,
    /// 1 GiB pages taken (huge-page instances).
    pub pages_1g: i64,
    /// Small-page memory taken.
    pub memory_mb: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceAction {
    pub action: String,
    pub request_id: String,
    pub user_id: String,
    pub project_id: String,
    pub start_ms: i64,
    pub updated_ms: i64,
    pub message: Option<String>,
    pub events: Vec<ActionEvent>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActionEvent {
    pub event: String,
    pub start_ms: i64,
    pub finish_ms: Option<i64>,
    pub result: Option<String>,
    pub host: Option<String>,
}

/// A Neutron RBAC policy: `action` on network `object_id` for `target_tenant` (a
/// project id, or `*` for every project).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RbacPolicy {
    pub id: String,
    /// The project that owns the policy (who created it).
    pub project_id: String,
    pub object_type: String,
    pub object_id: String,
    pub action: String,
    pub target_tenant: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub description: String,
    pub admin_state_up: bool,
    pub shared: bool,
    pub external: bool,
    pub mtu: i64,
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<i64>,
    pub status: String,
    pub tags: Vec<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub revision: i64,
    pub port_security_enabled: bool,
    pub availability_zone_hints: Vec<String>,
    pub dns_domain: String,
    pub qos_policy_id: Option<String>,
    pub is_default: bool,
    pub vlan_transparent: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub project_id: String,
    pub cidr: String,
    pub ip_version: i64,
    pub gateway_ip: Option<String>,
    pub enable_dhcp: bool,
    pub allocation_pools: Vec<(String, String)>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<Value>,
    pub description: String,
    pub tags: Vec<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub revision: i64,
    pub ipv6_address_mode: Option<String>,
    pub ipv6_ra_mode: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub name: String,
    pub network_id: String,
    pub project_id: String,
    pub mac_address: String,
    pub fixed_ips: Vec<(String, String)>,
    pub device_id: String,
    pub device_owner: String,
    pub status: String,
    pub admin_state_up: bool,
    pub binding_host: String,
    pub vnic_type: String,
    pub security_groups: Vec<String>,
    pub tags: Vec<String>,
    pub description: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub revision: i64,
    pub port_security_enabled: bool,
    pub allowed_address_pairs: Vec<Value>,
    pub dns_name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub description: String,
    pub rules: Vec<Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub revision: i64,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub status: String,
    pub visibility: String,
    pub owner: String,
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_ram: i64,
    pub min_disk: i64,
    pub checksum: Option<String>,
    pub os_hash_value: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub tags: Vec<String>,
    pub protected: bool,
    pub os_hidden: bool,
    pub properties: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Inventory {
    pub total: i64,
    pub reserved: i64,
    pub min_unit: i64,
    pub max_unit: i64,
    pub step_size: i64,
    pub allocation_ratio: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResourceProvider {
    pub uuid: String,
    pub name: String,
    pub generation: i64,
    pub parent: Option<String>,
    pub root: String,
    pub inventories: BTreeMap<String, Inventory>,
    pub traits: BTreeSet<String>,
    pub aggregates: Vec<String>,
    pub updated_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Consumer {
    pub project_id: String,
    pub user_id: String,
    pub generation: i64,
    pub consumer_type: Option<String>,
    /// Resource provider → resource class → amount.
    pub allocations: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Keyed for Flavor {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Keyed for Image {
    fn key(&self) -> &str {
        &self.id
    }
}
