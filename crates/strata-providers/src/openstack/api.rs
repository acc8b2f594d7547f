//! The OpenStack wire format strata reads: Keystone v3 tokens, catalogs and projects,
//! Nova flavors (microversion 2.61 and later, extra specs embedded), extra specs and
//! quota sets, Neutron networks (with provider attributes) and subnets, and
//! Placement's root version document.
//!
//! These are strata's own types (never the twin's). They are deliberately lenient:
//! fields strata does not need are ignored, optional fields default, and values whose
//! JSON type changed across microversions (Nova's `swap`: `""` before 2.75, an integer
//! after) are read in either shape. Every published sample of these responses must
//! parse (see `tests/openstack.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Keystone

/// `POST /v3/auth/tokens` (the token itself travels in `X-Subject-Token`).
#[derive(Clone, Debug, Deserialize)]
pub struct TokenResponse {
    pub token: Token,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Token {
    pub expires_at: String,
    #[serde(default)]
    pub issued_at: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub user: Option<TokenUser>,
    /// Present for project-scoped tokens.
    #[serde(default)]
    pub project: Option<TokenProject>,
    #[serde(default)]
    pub roles: Vec<NamedRef>,
    /// Present for scoped tokens unless `?nocatalog` was asked.
    #[serde(default)]
    pub catalog: Vec<CatalogService>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TokenUser {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: Option<NamedRef>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TokenProject {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: Option<NamedRef>,
}

/// `{"id": ..., "name": ...}` (roles, domains).
#[derive(Clone, Debug, Deserialize)]
pub struct NamedRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CatalogService {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CatalogEndpoint {
    pub interface: String,
    pub url: String,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}

impl CatalogEndpoint {
    pub fn in_region(&self, region: &str) -> bool {
        self.region_id.as_deref() == Some(region) || self.region.as_deref() == Some(region)
    }
}

/// The `public` URL of a service type in a region.
pub fn public_url(catalog: &[CatalogService], kind: &str, region: &str) -> Option<String> {
    endpoint_url(catalog, kind, region, "public")
}

/// The URL of a service type's endpoint with this `interface` in a region.
pub fn endpoint_url(
    catalog: &[CatalogService],
    kind: &str,
    region: &str,
    interface: &str,
) -> Option<String> {
    catalog
        .iter()
        .filter(|s| s.kind == kind)
        .flat_map(|s| s.endpoints.iter())
        .find(|e| e.interface == interface && e.in_region(region))
        .map(|e| e.url.clone())
}

/// `GET /v3/projects` and `GET /v3/auth/projects`.
#[derive(Clone, Debug, Deserialize)]
pub struct ProjectList {
    pub projects: Vec<Project>,
    #[serde(default)]
    pub links: Option<KeystoneLinks>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct KeystoneLinks {
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ProjectResponse {
    pub project: Project,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub description: String,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Nova

/// `GET /flavors/detail`.
#[derive(Clone, Debug, Deserialize)]
pub struct FlavorList {
    pub flavors: Vec<Flavor>,
    #[serde(default)]
    pub flavors_links: Vec<Link>,
}

/// `GET /flavors/{id}`, `POST /flavors`.
#[derive(Clone, Debug, Deserialize)]
pub struct FlavorResponse {
    pub flavor: Flavor,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u64,
    /// MiB.
    pub ram: u64,
    /// GB.
    pub disk: u64,
    #[serde(rename = "os-flavor-access:is_public", default = "yes")]
    pub is_public: bool,
    /// Embedded from microversion 2.61; absent before.
    #[serde(default, deserialize_with = "opt_string_map")]
    pub extra_specs: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub description: Option<String>,
    /// `""` (no swap) before 2.75, an integer (MiB) from 2.75.
    #[serde(default, deserialize_with = "swap_mib")]
    pub swap: u64,
    #[serde(rename = "OS-FLV-EXT-DATA:ephemeral", default)]
    pub ephemeral: u64,
}

/// `GET|POST /flavors/{id}/os-extra_specs`.
#[derive(Clone, Debug, Deserialize)]
pub struct ExtraSpecs {
    #[serde(deserialize_with = "string_map")]
    pub extra_specs: BTreeMap<String, String>,
}

/// `GET|PUT /os-quota-sets/{project_id}`.
#[derive(Clone, Debug, Deserialize)]
pub struct QuotaSetResponse {
    pub quota_set: QuotaSet,
}

#[derive(Clone, Debug, Deserialize)]
pub struct QuotaSet {
    /// Present on show, absent on update.
    #[serde(default)]
    pub id: Option<String>,
    pub instances: i64,
    pub cores: i64,
    /// MiB.
    pub ram: i64,
}

// ---------------------------------------------------------------------------------------
// Neutron

#[derive(Clone, Debug, Deserialize)]
pub struct NetworkList {
    pub networks: Vec<Network>,
    #[serde(default)]
    pub networks_links: Vec<Link>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct NetworkResponse {
    pub network: Network,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Network {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub shared: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(rename = "provider:network_type", default)]
    pub network_type: Option<String>,
    #[serde(rename = "provider:physical_network", default)]
    pub physical_network: Option<String>,
    #[serde(rename = "provider:segmentation_id", default)]
    pub segmentation_id: Option<i64>,
    /// Multi-segment networks (`multi-provider`) carry their segments here instead.
    #[serde(default)]
    pub segments: Option<Vec<Segment>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Segment {
    #[serde(rename = "provider:network_type", default)]
    pub network_type: Option<String>,
    #[serde(rename = "provider:physical_network", default)]
    pub physical_network: Option<String>,
    #[serde(rename = "provider:segmentation_id", default)]
    pub segmentation_id: Option<i64>,
}

impl Network {
    /// Provider attributes: the network's own, or its only segment's.
    pub fn provider(&self) -> (Option<String>, Option<String>, Option<i64>) {
        if self.network_type.is_none()
            && let Some([s]) = self.segments.as_deref()
        {
            return (
                s.network_type.clone(),
                s.physical_network.clone(),
                s.segmentation_id,
            );
        }
        (
            self.network_type.clone(),
            self.physical_network.clone(),
            self.segmentation_id,
        )
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct SubnetList {
    pub subnets: Vec<Subnet>,
    #[serde(default)]
    pub subnets_links: Vec<Link>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct SubnetResponse {
    pub subnet: Subnet,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Subnet {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    pub network_id: String,
    pub cidr: String,
    pub ip_version: u8,
    #[serde(default)]
    pub gateway_ip: Option<String>,
    #[serde(default = "yes")]
    pub enable_dhcp: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Placement and shared bits

/// Placement's root document (`GET /`).
#[derive(Clone, Debug, Deserialize)]
pub struct PlacementRoot {
    pub versions: Vec<PlacementVersion>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PlacementVersion {
    pub id: String,
    pub min_version: String,
    pub max_version: String,
    #[serde(default)]
    pub status: Option<String>,
}

/// `{"href": ..., "rel": ...}` (Nova and Neutron pagination links).
#[derive(Clone, Debug, Deserialize)]
pub struct Link {
    pub href: String,
    #[serde(default)]
    pub rel: Option<String>,
}

/// The `next` link of a list response, whichever service wrote it: Nova and Neutron
/// (`<collection>_links: [{"rel": "next", "href": ...}]`) or Keystone
/// (`links: {"next": ...}`).
pub fn next_link(body: &Value, collection: &str) -> Option<String> {
    if let Some(links) = body
        .get(format!("{collection}_links"))
        .and_then(Value::as_array)
    {
        return links
            .iter()
            .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))
            .and_then(|l| l.get("href"))
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    body.pointer("/links/next")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn yes() -> bool {
    true
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Extra spec values are strings; tolerate numbers and booleans written by other tools.
fn spec_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Bool(b) => if b { "True" } else { "False" }.to_string(),
        other => other.to_string(),
    }
}

fn string_map<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let m = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
    Ok(m.into_iter().map(|(k, v)| (k, spec_string(v))).collect())
}

fn opt_string_map<'de, D>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error>
where
    D: Deserializer<'de>,
{
    let m = Option::<BTreeMap<String, Value>>::deserialize(d)?;
    Ok(m.map(|m| m.into_iter().map(|(k, v)| (k, spec_string(v))).collect()))
}

fn swap_mib<'de, D>(d: D) -> Result<u64, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom(format!("swap {n} is not a size"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(0),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("swap `{s}` is not a size"))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "swap {other} is not a size"
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Tenancy: role assignments, flavor access, network RBAC

/// `GET /v3/role_assignments?include_names=true`.
#[derive(Clone, Debug, Deserialize)]
pub struct RoleAssignmentList {
    pub role_assignments: Vec<RoleAssignment>,
}

/// One assignment; group and domain/system assignments leave `user` or
/// `scope.project` empty.
#[derive(Clone, Debug, Deserialize)]
pub struct RoleAssignment {
    pub role: NamedRef,
    #[serde(default)]
    pub user: Option<NamedRef>,
    #[serde(default)]
    pub scope: AssignmentScope,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct AssignmentScope {
    #[serde(default)]
    pub project: Option<NamedRef>,
}

/// `GET /v3/users?name=...` (only what strata reads).
#[derive(Clone, Debug, Deserialize)]
pub struct UserList {
    pub users: Vec<User>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
}

/// `GET /v3/roles?name=...`.
#[derive(Clone, Debug, Deserialize)]
pub struct RoleList {
    pub roles: Vec<NamedRef>,
}

/// `GET /flavors/{id}/os-flavor-access` and the `addTenantAccess` /
/// `removeTenantAccess` actions' answer.
#[derive(Clone, Debug, Deserialize)]
pub struct FlavorAccessList {
    pub flavor_access: Vec<FlavorAccess>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct FlavorAccess {
    pub flavor_id: String,
    pub tenant_id: String,
}

/// `GET /v2.0/rbac-policies`.
#[derive(Clone, Debug, Deserialize)]
pub struct RbacPolicyList {
    pub rbac_policies: Vec<RbacPolicy>,
}

/// `POST /v2.0/rbac-policies`.
#[derive(Clone, Debug, Deserialize)]
pub struct RbacPolicyResponse {
    pub rbac_policy: RbacPolicy,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RbacPolicy {
    pub id: String,
    pub object_type: String,
    pub object_id: String,
    pub action: String,
    pub target_tenant: String,
}

/// `GET /v3/services?type=...`.
#[derive(Clone, Debug, Deserialize)]
pub struct ServiceList {
    pub services: Vec<IdentityService>,
}

/// A Keystone service.
#[derive(Clone, Debug, Deserialize)]
pub struct IdentityService {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET|POST /v3/registered_limits`.
#[derive(Clone, Debug, Deserialize)]
pub struct RegisteredLimitList {
    pub registered_limits: Vec<RegisteredLimit>,
}

/// `PATCH /v3/registered_limits/{id}`.
#[derive(Clone, Debug, Deserialize)]
pub struct RegisteredLimitResponse {
    pub registered_limit: RegisteredLimit,
}

/// A Keystone registered limit (the default of a resource for every project).
#[derive(Clone, Debug, Deserialize)]
pub struct RegisteredLimit {
    pub id: String,
    pub service_id: String,
    #[serde(default)]
    pub region_id: Option<String>,
    pub resource_name: String,
    pub default_limit: i64,
    #[serde(default)]
    pub description: Option<String>,
}

/// `GET|POST /v3/limits`.
#[derive(Clone, Debug, Deserialize)]
pub struct LimitList {
    pub limits: Vec<ProjectLimit>,
}

/// `PATCH /v3/limits/{id}`.
#[derive(Clone, Debug, Deserialize)]
pub struct LimitResponse {
    pub limit: ProjectLimit,
}

/// A Keystone limit of one project (or domain).
#[derive(Clone, Debug, Deserialize)]
pub struct ProjectLimit {
    pub id: String,
    pub service_id: String,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    pub resource_name: String,
    pub resource_limit: i64,
    #[serde(default)]
    pub description: Option<String>,
}
