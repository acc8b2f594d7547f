//! strata's OpenStack provider: observes and changes one region (Keystone v3, Nova,
//! Neutron) over HTTP.
//!
//! - **Authentication**: Keystone password method with a project scope; the token
//!   (`X-Subject-Token`) and the catalog's endpoints of `identity`, `compute`,
//!   `network` (and `placement`) for the target's `interface` (default `internal`, as
//!   Kolla's admin-openrc.sh) in its region are cached, renewed five minutes before
//!   expiry and once after a 401 ([`client`]).
//! - **Microversion**: every Nova request sends `OpenStack-API-Version: compute 2.61`,
//!   the first microversion whose `GET /flavors/detail` embeds `extra_specs`.
//! - **observe()**: list calls only — projects, flavors (`is_public=None`, all of them,
//!   with extra specs), networks, subnets, role assignments, network RBAC policies —
//!   plus, by the region's [`QuotaModel`], one `GET /os-quota-sets/{id}` per owned
//!   project or the compute service's Keystone unified limits (three calls,
//!   [`limits`]), and one `GET
//!   /flavors/{id}/os-flavor-access` per owned private flavor, following pagination
//!   links. Ownership: projects and networks by tag, flavors by the `strata:owner`
//!   extra spec, subnets and RBAC policies by their network, flavor access by its
//!   flavor, `member` assignments by their project ([`tenancy`]). Everything else is
//!   listed as unowned and never touched.
//! - **act()**: one step at a time, idempotently. Creates re-observe before trying
//!   again after an ambiguous failure or an interrupted earlier attempt (flavors record
//!   the id they are about to create, so a flavor created just before a crash is found
//!   and finished instead of duplicated). Updates and deletes act only on owned objects,
//!   and deletes check ownership on the live object first.
//!
//! One module per concept: [`observe`] (list calls and the mapping onto the field
//! vocabulary), [`projects`] (projects and quotas), [`limits`] (team quotas as
//! Keystone unified limits), [`flavors`], [`networks`]
//! (networks and subnets), [`tenancy`] (role assignments, flavor access, network RBAC);
//! this module holds the provider, its dispatch and the
//! helpers they share.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use reqwest::Method;
use strata_plan::{Action, Kind, Observed, Platform, Resource, Step, UnownedObject};

use crate::http::{Endpoint, EndpointConfig};
use crate::targets::OpenstackTarget;
use crate::{ActContext, Outcome, Provider, ProviderError};

pub mod api;
mod client;
pub mod compute;
mod flavors;
mod limits;
mod networks;
mod observe;
mod projects;
pub mod servers;
mod tenancy;

pub use client::{COMPUTE_MICROVERSION, parse_time};
use client::{Client, Service};
pub use observe::{
    flavor_owned, flavor_resource, network_owned, network_resource, project_owned,
    project_resource, quota_resource, subnet_resource,
};

/// The extra spec that marks a flavor as strata's (value: the owner tag).
pub const OWNER_SPEC: &str = "strata:owner";

/// What authentication established (no secrets).
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub project_id: String,
    /// The scoped project's domain: where strata creates projects.
    pub domain_id: String,
    pub expires_at: String,
    /// The endpoint per service type in the region (of the target's interface).
    pub endpoints: BTreeMap<String, String>,
}

/// How the region's Nova takes team quotas: the plan's desired state says (a DC whose
/// desired state has registered limits runs unified limits), and the provider observes
/// only that form: under unified limits Nova's quota sets merely echo Keystone's limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QuotaModel {
    /// The legacy driver: `os-quota-sets` per project.
    #[default]
    QuotaSets,
    /// `[quota] driver = nova.quota.UnifiedLimitsDriver`: Keystone limits.
    UnifiedLimits,
}

pub struct OpenstackProvider {
    dc: String,
    owner_tag: String,
    client: Client,
    quota_model: QuotaModel,
}

impl OpenstackProvider {
    pub fn new(dc: &str, target: &OpenstackTarget, owner_tag: &str) -> Result<Self, ProviderError> {
        if owner_tag.is_empty() || owner_tag.contains([',', '/']) {
            return Err(ProviderError::Refused(format!(
                "`{owner_tag}` cannot be an OpenStack tag"
            )));
        }
        url::Url::parse(&target.auth_url).map_err(|e| {
            ProviderError::Refused(format!(
                "{dc}: OpenStack auth_url `{}` is not a URL: {e}",
                target.auth_url
            ))
        })?;
        let http = Endpoint::new(EndpointConfig {
            ca_pem: target.tls.ca_pem.clone(),
            insecure: target.tls.insecure,
            limit_key: Some(format!("openstack {}", target.auth_url)),
            ..EndpointConfig::default()
        })?;
        Ok(OpenstackProvider {
            dc: dc.to_string(),
            owner_tag: owner_tag.to_string(),
            client: Client::new(http, target),
            quota_model: QuotaModel::default(),
        })
    }

    /// Observe and act on team quotas in this form (default: quota sets).
    pub fn with_quota_model(mut self, m: QuotaModel) -> Self {
        self.quota_model = m;
        self
    }

    /// Ask for pages of `n` items (default 1000) from paginated lists.
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.client.page_size = n.max(1);
        self
    }

    /// Authenticate (or reuse the cached token) and say what the session can reach.
    pub async fn authenticate(&self) -> Result<SessionInfo, ProviderError> {
        let s = self.client.session().await?;
        Ok(SessionInfo {
            project_id: s.project_id.clone(),
            domain_id: s.domain_id.clone(),
            expires_at: s.expires_at.clone(),
            endpoints: s.endpoints.clone(),
        })
    }

    /// Placement's root version document, through the catalog's placement endpoint.
    pub async fn placement_root(&self) -> Result<api::PlacementRoot, ProviderError> {
        self.client
            .get(Service::Placement, "/")
            .await?
            .parse("Placement root")
    }

    /// The Keystone part of [`Provider::observe`]: projects only (no quotas).
    pub async fn observe_projects(&self) -> Result<Observed, ProviderError> {
        let projects = self.list_projects().await?;
        let mut out = Observed::default();
        self.add_projects(&mut out, &projects);
        out.unowned.sort();
        Ok(out)
    }

    /// The Keystone part of [`Provider::observe`] on a unified-limits region: projects
    /// and the compute service's registered and project limits.
    pub async fn observe_identity(&self) -> Result<Observed, ProviderError> {
        let (projects, limits) = tokio::try_join!(self.list_projects(), self.list_limits())?;
        let mut out = Observed::default();
        let owned = self.add_projects(&mut out, &projects);
        let names: HashMap<String, String> = owned
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        self.add_limits(&mut out, &names, &limits);
        out.unowned.sort();
        Ok(out)
    }

    fn unowned(&self, kind: &str, name: &str, id: &str) -> UnownedObject {
        UnownedObject {
            dc: self.dc.clone(),
            platform: Platform::Openstack,
            kind: kind.to_string(),
            name: name.to_string(),
            external_id: id.to_string(),
        }
    }

    /// DELETE; an object that is already gone counts as deleted.
    async fn delete(&self, svc: Service, path: &str) -> Result<(), ProviderError> {
        let r = self
            .client
            .request(svc, Method::DELETE, path, None, None)
            .await;
        gone_as_none(r).map(|_| ())
    }
}

#[async_trait]
impl Provider for OpenstackProvider {
    fn platform(&self) -> Platform {
        Platform::Openstack
    }

    fn dc(&self) -> &str {
        &self.dc
    }

    async fn observe(&self) -> Result<Observed, ProviderError> {
        let (projects, flavors, networks, subnets, assignments, policies, limits) = tokio::try_join!(
            self.list_projects(),
            self.list_flavors(),
            self.list_networks(),
            self.list_subnets(),
            self.list_role_assignments(),
            self.list_rbac_policies(),
            async {
                match self.quota_model {
                    QuotaModel::UnifiedLimits => self.list_limits().await.map(Some),
                    QuotaModel::QuotaSets => Ok(None),
                }
            },
        )?;
        let mut out = Observed::default();
        let owned = self.add_projects(&mut out, &projects);
        let private: Vec<&api::Flavor> = flavors
            .iter()
            .filter(|f| !f.is_public && flavor_owned(f, &self.owner_tag))
            .collect();
        let quota_sets: &[&api::Project] = match self.quota_model {
            QuotaModel::QuotaSets => &owned,
            QuotaModel::UnifiedLimits => &[],
        };
        let (quotas, access) = tokio::try_join!(
            futures::future::try_join_all(quota_sets.iter().map(|p| self.quota(&p.id))),
            futures::future::try_join_all(private.iter().map(|f| self.flavor_access(&f.id))),
        )?;
        for (p, q) in quota_sets.iter().zip(quotas) {
            out.resources.insert(quota_resource(&self.dc, p, &q));
        }
        let owned_projects: HashMap<String, String> = owned
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        let all_projects: HashMap<String, String> = projects
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        self.add_role_assignments(&mut out, &owned_projects, &assignments);
        if let Some(limits) = &limits {
            self.add_limits(&mut out, &owned_projects, limits);
        }
        self.add_flavors(&mut out, &flavors);
        for (f, a) in private.iter().zip(access) {
            self.add_flavor_access(&mut out, f, &all_projects, &a);
        }
        self.add_networks(&mut out, &networks, &subnets);
        let owned_networks: HashMap<&str, &str> = networks
            .iter()
            .filter(|n| network_owned(n, &self.owner_tag))
            .map(|n| (n.id.as_str(), n.name.as_str()))
            .collect();
        self.add_rbac_policies(&mut out, &owned_networks, &all_projects, &policies);
        out.unowned.sort();
        Ok(out)
    }

    async fn act(&self, step: &Step, ctx: &ActContext<'_>) -> Result<Outcome, ProviderError> {
        if step.id.dc != self.dc || step.id.platform() != Platform::Openstack {
            return Err(ProviderError::Refused(format!(
                "{} is not an OpenStack object of {}",
                step.id, self.dc
            )));
        }
        match (step.id.kind, step.action) {
            (_, Action::Adopt) => Err(ProviderError::Refused(format!(
                "{}: strata does not adopt OpenStack objects it did not create (they carry no ownership tag); rename or remove the existing one",
                step.id
            ))),
            (Kind::Project, Action::Create) => self.create_project(step, ctx).await,
            (Kind::Project, Action::Update) => self.update_project(step, ctx).await,
            (Kind::Project, Action::Delete) => self.delete_project(step, ctx).await,
            (Kind::Quota, Action::Create | Action::Update) => self.set_quota(step, ctx).await,
            (Kind::Quota, Action::Delete) => self.reset_quota(step, ctx).await,
            (Kind::RegisteredLimit, Action::Create) => {
                self.create_registered_limit(step, ctx).await
            }
            (Kind::RegisteredLimit, Action::Update) => {
                self.update_registered_limit(step, ctx).await
            }
            (Kind::RegisteredLimit, Action::Delete) => {
                self.delete_registered_limit(step, ctx).await
            }
            (Kind::ProjectLimit, Action::Create) => self.create_project_limit(step, ctx).await,
            (Kind::ProjectLimit, Action::Update) => self.update_project_limit(step, ctx).await,
            (Kind::ProjectLimit, Action::Delete) => self.delete_project_limit(step, ctx).await,
            (Kind::Flavor, Action::Create) => self.create_flavor(step, ctx).await,
            (Kind::Flavor, Action::Update) => self.update_flavor(step, ctx).await,
            (Kind::Flavor, Action::Delete) => self.delete_flavor(step, ctx).await,
            (Kind::Network, Action::Create) => self.create_network(step, ctx).await,
            (Kind::Network, Action::Update) => self.update_network(step, ctx).await,
            (Kind::Network, Action::Delete) => self.delete_network(step, ctx).await,
            (Kind::Subnet, Action::Create) => self.create_subnet(step, ctx).await,
            (Kind::Subnet, Action::Update) => self.update_subnet(step, ctx).await,
            (Kind::Subnet, Action::Delete) => self.delete_subnet(step, ctx).await,
            (Kind::RoleAssignment, Action::Create) => self.grant_role(step, ctx).await,
            (Kind::RoleAssignment, Action::Delete) => self.revoke_role(step, ctx).await,
            (Kind::FlavorAccess, Action::Create) => self.add_flavor_tenant(step, ctx).await,
            (Kind::FlavorAccess, Action::Delete) => self.remove_flavor_tenant(step, ctx).await,
            (Kind::NetworkRbac, Action::Create) => self.create_network_rbac(step, ctx).await,
            (Kind::NetworkRbac, Action::Delete) => self.delete_network_rbac(step, ctx).await,
            (Kind::RoleAssignment | Kind::FlavorAccess | Kind::NetworkRbac, Action::Update) => {
                Err(ProviderError::Refused(format!(
                    "{}: a {} is identified by what it links; it is created or deleted, never changed ({})",
                    step.id,
                    step.id.kind,
                    changed_fields(step)
                )))
            }
            (kind, _) => Err(ProviderError::Refused(format!(
                "{kind} is not an OpenStack kind"
            ))),
        }
    }

    fn calls(&self) -> u64 {
        self.client.calls()
    }
}

/// A 404 as `None`.
fn gone_as_none(
    r: Result<client::Reply, ProviderError>,
) -> Result<Option<client::Reply>, ProviderError> {
    match r {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn gone(id: &str) -> Outcome {
    Outcome {
        external_id: Some(id.to_string()),
        note: "already gone".into(),
    }
}

fn not_ours(kind: &str, name: &str, id: &str, owner: &str) -> ProviderError {
    ProviderError::Refused(format!(
        "{kind} {name} ({id}) does not carry the ownership tag {owner}; strata never changes or deletes objects it does not own"
    ))
}

// ---------------------------------------------------------------------------------------
// Shared by the concept modules

fn desired(step: &Step) -> Result<&Resource, ProviderError> {
    step.desired.as_ref().ok_or_else(|| {
        ProviderError::Refused(format!("{}: the step has no desired state", step.id))
    })
}

/// The observed resource and its platform id, refusing anything not owned.
fn owned_observed(step: &Step) -> Result<(&Resource, &str), ProviderError> {
    let o = step.observed.as_ref().ok_or_else(|| {
        ProviderError::Refused(format!("{}: the step has no observed state", step.id))
    })?;
    if !o.owned {
        return Err(ProviderError::Refused(format!(
            "{} is not owned by this fleet; strata never changes or deletes it",
            step.id
        )));
    }
    let id = o.external_id.as_deref().ok_or_else(|| {
        ProviderError::Refused(format!("{}: the observed object has no id", step.id))
    })?;
    Ok((o, id))
}

fn changed_fields(step: &Step) -> String {
    let f: Vec<&str> = step.changes.iter().map(|c| c.field.as_str()).collect();
    if f.is_empty() {
        "nothing".into()
    } else {
        f.join(", ")
    }
}

/// Desired tags, always with the owner tag, sorted.
fn with_owner(mut tags: Vec<String>, owner: &str) -> Vec<String> {
    tags.push(owner.to_string());
    sorted(&tags)
}

fn sorted(tags: &[String]) -> Vec<String> {
    let s: BTreeSet<&String> = tags.iter().collect();
    s.into_iter().cloned().collect()
}

/// The body of an HTTP error (what Neutron says), or the error's text.
fn error_text(e: &ProviderError) -> String {
    match e {
        ProviderError::Http(crate::http::HttpError::Status { body, .. }) => body.clone(),
        other => other.to_string(),
    }
}
