//! strata's OpenStack provider: observes and changes one region (Keystone v3, Nova,
//! Neutron) over HTTP.
//!
//! - **Authentication**: Keystone password method with a project scope; the token
//!   (`X-Subject-Token`) and the catalog's `public` endpoints of `identity`, `compute`,
//!   `network` (and `placement`) in the target's region are cached, renewed five
//!   minutes before expiry and once after a 401 ([`client`]).
//! - **Microversion**: every Nova request sends `OpenStack-API-Version: compute 2.61`,
//!   the first microversion whose `GET /flavors/detail` embeds `extra_specs`.
//! - **observe()**: list calls only — projects, flavors (`is_public=None`, all of them,
//!   with extra specs), networks, subnets — plus one `GET /os-quota-sets/{id}` per owned
//!   project, following pagination links. Ownership: projects and networks by tag,
//!   flavors by the `strata:owner` extra spec, subnets by their network. Everything
//!   else is listed as unowned and never touched.
//! - **act()**: one step at a time, idempotently. Creates re-observe before trying
//!   again after an ambiguous failure or an interrupted earlier attempt (flavors record
//!   the id they are about to create, so a flavor created just before a crash is found
//!   and finished instead of duplicated). Updates and deletes act only on owned objects,
//!   and deletes check ownership on the live object first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Map, Value, json};
use strata_plan::{
    Action, FlavorFields, Kind, KindFields, NetworkFields, Observed, Platform, ProjectFields,
    QuotaFields, Resource, ResourceId, Step, SubnetFields, UnownedObject,
};

use crate::http::{Endpoint, EndpointConfig};
use crate::targets::OpenstackTarget;
use crate::{ActContext, Outcome, Provider, ProviderError};

pub mod api;
mod client;

pub use client::{COMPUTE_MICROVERSION, parse_time};
use client::{Client, Service, query, seg};

/// The extra spec that marks a flavor as strata's (value: the owner tag).
pub const OWNER_SPEC: &str = "strata:owner";

/// What authentication established (no secrets).
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub project_id: String,
    /// The scoped project's domain: where strata creates projects.
    pub domain_id: String,
    pub expires_at: String,
    /// Public endpoint per service type in the region (as strata uses them).
    pub endpoints: BTreeMap<String, String>,
}

pub struct OpenstackProvider {
    dc: String,
    owner_tag: String,
    client: Client,
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
            ..EndpointConfig::default()
        })?;
        Ok(OpenstackProvider {
            dc: dc.to_string(),
            owner_tag: owner_tag.to_string(),
            client: Client::new(http, target),
        })
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

    fn unowned(&self, kind: &str, name: &str, id: &str) -> UnownedObject {
        UnownedObject {
            dc: self.dc.clone(),
            platform: Platform::Openstack,
            kind: kind.to_string(),
            name: name.to_string(),
            external_id: id.to_string(),
        }
    }

    // ------------------------------------------------------------------------------
    // Observe

    async fn list_projects(&self) -> Result<Vec<api::Project>, ProviderError> {
        // Keystone pages only when asked (`limit`, or its `list_limit` setting).
        let page = self.client.page_size.to_string();
        let path = format!("/projects?{}", query(&[("limit", &page)]));
        self.client.list(Service::Identity, &path, "projects").await
    }

    async fn list_flavors(&self) -> Result<Vec<api::Flavor>, ProviderError> {
        let page = self.client.page_size.to_string();
        let path = format!(
            "/flavors/detail?{}",
            query(&[("is_public", "None"), ("limit", &page)])
        );
        let flavors: Vec<api::Flavor> =
            self.client.list(Service::Compute, &path, "flavors").await?;
        if flavors.iter().any(|f| f.extra_specs.is_none()) {
            return Err(ProviderError::Api(format!(
                "Nova did not embed extra_specs in /flavors/detail: it must support compute microversion {COMPUTE_MICROVERSION}"
            )));
        }
        Ok(flavors)
    }

    async fn list_networks(&self) -> Result<Vec<api::Network>, ProviderError> {
        let page = self.client.page_size.to_string();
        let path = format!("/networks?{}", query(&[("limit", &page)]));
        self.client.list(Service::Network, &path, "networks").await
    }

    async fn list_subnets(&self) -> Result<Vec<api::Subnet>, ProviderError> {
        let page = self.client.page_size.to_string();
        let path = format!("/subnets?{}", query(&[("limit", &page)]));
        self.client.list(Service::Network, &path, "subnets").await
    }

    async fn quota(&self, project_id: &str) -> Result<api::QuotaSet, ProviderError> {
        let r = self
            .client
            .get(
                Service::Compute,
                &format!("/os-quota-sets/{}", seg(project_id)),
            )
            .await?;
        Ok(r.parse::<api::QuotaSetResponse>("quota set")?.quota_set)
    }

    /// Add projects to `out`; returns the owned ones.
    fn add_projects<'a>(
        &self,
        out: &mut Observed,
        projects: &'a [api::Project],
    ) -> Vec<&'a api::Project> {
        let mut owned = Vec::new();
        for p in projects {
            let id = ResourceId::new(&self.dc, Kind::Project, p.name.clone());
            if project_owned(p, &self.owner_tag) && out.resources.get(&id).is_none() {
                out.resources.insert(project_resource(&self.dc, p));
                owned.push(p);
            } else {
                out.unowned.push(self.unowned("project", &p.name, &p.id));
            }
        }
        owned
    }

    fn add_flavors(&self, out: &mut Observed, flavors: &[api::Flavor]) {
        for f in flavors {
            let id = ResourceId::new(&self.dc, Kind::Flavor, f.name.clone());
            if flavor_owned(f, &self.owner_tag) && out.resources.get(&id).is_none() {
                out.resources.insert(flavor_resource(&self.dc, f));
            } else {
                out.unowned.push(self.unowned("flavor", &f.name, &f.id));
            }
        }
    }

    fn add_networks(&self, out: &mut Observed, networks: &[api::Network], subnets: &[api::Subnet]) {
        let mut owned: HashMap<&str, &str> = HashMap::new();
        for n in networks {
            let id = ResourceId::new(&self.dc, Kind::Network, n.name.clone());
            if network_owned(n, &self.owner_tag) && out.resources.get(&id).is_none() {
                out.resources.insert(network_resource(&self.dc, n));
                owned.insert(&n.id, &n.name);
            } else {
                out.unowned.push(self.unowned("network", &n.name, &n.id));
            }
        }
        for s in subnets {
            let network = owned.get(s.network_id.as_str()).copied();
            let name = if s.name.is_empty() {
                network.unwrap_or_default().to_string()
            } else {
                s.name.clone()
            };
            let id = ResourceId::new(&self.dc, Kind::Subnet, name.clone());
            match network {
                Some(net) if out.resources.get(&id).is_none() => {
                    out.resources
                        .insert(subnet_resource(&self.dc, s, &name, net));
                }
                _ => out.unowned.push(self.unowned("subnet", &name, &s.id)),
            }
        }
    }

    // ------------------------------------------------------------------------------
    // Projects and quotas

    async fn find_project(
        &self,
        name: &str,
        domain_id: &str,
    ) -> Result<Option<api::Project>, ProviderError> {
        let path = format!(
            "/projects?{}",
            query(&[("name", name), ("domain_id", domain_id)])
        );
        let found: Vec<api::Project> = self
            .client
            .list(Service::Identity, &path, "projects")
            .await?;
        Ok(found.into_iter().find(|p| p.name == name))
    }

    async fn create_project(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let d = desired(step)?.fields_as::<ProjectFields>()?;
        let name = step.id.name.as_str();
        let description = d.description;
        let tags = with_owner(d.tags, ctx.owner_tag);
        let domain_id = self.client.session().await?.domain_id.clone();
        let retry = ctx.intents.previous(ctx.key).await.is_some();
        ctx.intents
            .record(ctx.key, &json!({"project": name, "domain_id": domain_id}))
            .await;
        let body = json!({"project": {
            "name": name,
            "domain_id": domain_id,
            "description": description,
            "enabled": true,
            "tags": tags,
        }});
        let made = create_once(
            retry,
            || self.find_project(name, &domain_id),
            || async {
                let r = self
                    .client
                    .request(
                        Service::Identity,
                        Method::POST,
                        "/projects",
                        Some(&body),
                        None,
                    )
                    .await?;
                Ok(r.parse::<api::ProjectResponse>("project")?.project)
            },
        )
        .await?;
        match made {
            Made::Created(p) => Ok(Outcome {
                external_id: Some(p.id),
                note: format!("created project {name}"),
            }),
            Made::Found(p) => {
                if !project_owned(&p, ctx.owner_tag) {
                    return Err(not_ours("project", name, &p.id, ctx.owner_tag));
                }
                self.patch_project(&p, &description, &tags).await?;
                Ok(Outcome {
                    external_id: Some(p.id),
                    note: format!(
                        "project {name} already existed with the ownership tag (an earlier attempt created it); adopted"
                    ),
                })
            }
        }
    }

    async fn patch_project(
        &self,
        p: &api::Project,
        description: &str,
        tags: &[String],
    ) -> Result<bool, ProviderError> {
        if p.description == description && sorted(&p.tags) == sorted(tags) {
            return Ok(false);
        }
        let body = json!({"project": {"description": description, "tags": tags}});
        self.client
            .request(
                Service::Identity,
                Method::PATCH,
                &format!("/projects/{}", seg(&p.id)),
                Some(&body),
                Some(true),
            )
            .await?;
        Ok(true)
    }

    async fn update_project(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (o, id) = owned_observed(step)?;
        let o = o.fields_as::<ProjectFields>()?;
        let d = desired(step)?.fields_as::<ProjectFields>()?;
        let tags = with_owner(d.tags, ctx.owner_tag);
        let current = api::Project {
            id: id.to_string(),
            name: step.id.name.clone(),
            domain_id: None,
            description: o.description,
            enabled: None,
            tags: o.tags,
        };
        self.patch_project(&current, &d.description, &tags).await?;
        Ok(Outcome {
            external_id: Some(id.to_string()),
            note: format!("updated {}", changed_fields(step)),
        })
    }

    async fn get_project(&self, id: &str) -> Result<Option<api::Project>, ProviderError> {
        let r = self
            .client
            .get(Service::Identity, &format!("/projects/{}", seg(id)))
            .await;
        match gone_as_none(r)? {
            Some(r) => Ok(Some(r.parse::<api::ProjectResponse>("project")?.project)),
            None => Ok(None),
        }
    }

    async fn delete_project(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let Some(live) = self.get_project(id).await? else {
            return Ok(gone(id));
        };
        if !project_owned(&live, ctx.owner_tag) {
            return Err(not_ours("project", &live.name, id, ctx.owner_tag));
        }
        self.delete(Service::Identity, &format!("/projects/{}", seg(id)))
            .await?;
        Ok(Outcome {
            external_id: Some(id.to_string()),
            note: format!("deleted project {}", live.name),
        })
    }

    /// The owned project a quota belongs to.
    async fn quota_project(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<String, ProviderError> {
        if let Some(id) = step
            .observed
            .as_ref()
            .filter(|o| o.owned)
            .and_then(|o| o.external_id.clone())
        {
            return Ok(id);
        }
        let domain_id = self.client.session().await?.domain_id.clone();
        let p = self
            .find_project(&step.id.name, &domain_id)
            .await?
            .ok_or_else(|| {
                ProviderError::Api(format!(
                    "no project {} to set the quota of (create the project first)",
                    step.id.name
                ))
            })?;
        if !project_owned(&p, ctx.owner_tag) {
            return Err(not_ours("project", &p.name, &p.id, ctx.owner_tag));
        }
        Ok(p.id)
    }

    async fn set_quota(&self, step: &Step, ctx: &ActContext<'_>) -> Result<Outcome, ProviderError> {
        let d = desired(step)?.fields_as::<QuotaFields>()?;
        let project = self.quota_project(step, ctx).await?;
        let body = json!({"quota_set": d});
        self.client
            .request(
                Service::Compute,
                Method::PUT,
                &format!("/os-quota-sets/{}", seg(&project)),
                Some(&body),
                None,
            )
            .await?;
        Ok(Outcome {
            external_id: Some(project),
            note: format!(
                "quota set: instances {}, cores {}, ram {} MiB",
                d.instances, d.cores, d.ram
            ),
        })
    }

    async fn reset_quota(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let Some(live) = self.get_project(id).await? else {
            return Ok(gone(id));
        };
        if !project_owned(&live, ctx.owner_tag) {
            return Err(not_ours("project", &live.name, id, ctx.owner_tag));
        }
        self.delete(Service::Compute, &format!("/os-quota-sets/{}", seg(id)))
            .await?;
        Ok(Outcome {
            external_id: Some(id.to_string()),
            note: "quota reset to the region's defaults".into(),
        })
    }

    // ------------------------------------------------------------------------------
    // Flavors

    async fn find_flavor(&self, name: &str) -> Result<Option<api::Flavor>, ProviderError> {
        Ok(self
            .list_flavors()
            .await?
            .into_iter()
            .find(|f| f.name == name))
    }

    async fn get_flavor(&self, id: &str) -> Result<Option<api::Flavor>, ProviderError> {
        let r = self
            .client
            .get(Service::Compute, &format!("/flavors/{}", seg(id)))
            .await;
        match gone_as_none(r)? {
            Some(r) => Ok(Some(r.parse::<api::FlavorResponse>("flavor")?.flavor)),
            None => Ok(None),
        }
    }

    /// Create flavor `name` with id `flavor_id` and its extra specs, or finish one an
    /// earlier attempt made. `retry`: an earlier attempt may have created it.
    async fn ensure_flavor(
        &self,
        name: &str,
        want: &FlavorWant,
        flavor_id: &str,
        retry: bool,
        owner: &str,
    ) -> Result<(String, String), ProviderError> {
        let body = json!({"flavor": {
            "name": name,
            "id": flavor_id,
            "vcpus": want.vcpus,
            "ram": want.ram,
            "disk": want.disk,
            "os-flavor-access:is_public": want.is_public,
        }});
        let made = create_once(
            retry,
            || self.find_flavor(name),
            || async {
                let r = self
                    .client
                    .request(
                        Service::Compute,
                        Method::POST,
                        "/flavors",
                        Some(&body),
                        None,
                    )
                    .await?;
                Ok(r.parse::<api::FlavorResponse>("flavor")?.flavor)
            },
        )
        .await?;
        match made {
            Made::Created(f) => {
                let specs = json!({"extra_specs": want.extra_specs});
                self.client
                    .request(
                        Service::Compute,
                        Method::POST,
                        &format!("/flavors/{}/os-extra_specs", seg(&f.id)),
                        Some(&specs),
                        Some(true),
                    )
                    .await?;
                Ok((f.id, format!("created flavor {name}")))
            }
            Made::Found(f) => {
                // Ours: it carries the tag, or it has the id an earlier attempt of this
                // step recorded before it was interrupted (before the extra specs).
                if !flavor_owned(&f, owner) && f.id != flavor_id {
                    return Err(not_ours("flavor", name, &f.id, owner));
                }
                if want.immutable_differs(&f) {
                    return Err(ProviderError::Api(format!(
                        "flavor {name} ({}) exists with other vcpus/ram/disk/is_public; plan again to replace it",
                        f.id
                    )));
                }
                let current = f.extra_specs.clone().unwrap_or_default();
                self.sync_extra_specs(&f.id, &current, &want.extra_specs)
                    .await?;
                Ok((
                    f.id,
                    format!(
                        "flavor {name} already existed (an earlier attempt created it); finished and adopted it"
                    ),
                ))
            }
        }
    }

    async fn create_flavor(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let want = FlavorWant::from(desired(step)?.fields_as()?, ctx.owner_tag);
        let previous = ctx.intents.previous(ctx.key).await;
        let flavor_id = previous
            .as_ref()
            .and_then(|p| p.get("flavor_id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        ctx.intents
            .record(
                ctx.key,
                &json!({"flavor_id": flavor_id, "name": step.id.name}),
            )
            .await;
        let (id, note) = self
            .ensure_flavor(
                &step.id.name,
                &want,
                &flavor_id,
                previous.is_some(),
                ctx.owner_tag,
            )
            .await?;
        Ok(Outcome {
            external_id: Some(id),
            note,
        })
    }

    async fn update_flavor(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (o, id) = owned_observed(step)?;
        let o = o.fields_as::<FlavorFields>()?;
        let d = desired(step)?.fields_as::<FlavorFields>()?;
        let immutable: Vec<&str> = [
            ("vcpus", o.vcpus != d.vcpus),
            ("ram", o.ram != d.ram),
            ("disk", o.disk != d.disk),
            ("is_public", o.is_public != d.is_public),
        ]
        .into_iter()
        .filter_map(|(k, differs)| differs.then_some(k))
        .collect();
        let want = FlavorWant::from(d, ctx.owner_tag);
        let name = step.id.name.as_str();
        let Some(live) = self.get_flavor(id).await? else {
            return Err(ProviderError::Api(format!(
                "flavor {name} ({id}) disappeared; plan again"
            )));
        };
        if !flavor_owned(&live, ctx.owner_tag) {
            return Err(not_ours("flavor", name, id, ctx.owner_tag));
        }
        if immutable.is_empty() && !want.immutable_differs(&live) {
            let current = live.extra_specs.clone().unwrap_or_default();
            let changed = self
                .sync_extra_specs(id, &current, &want.extra_specs)
                .await?;
            return Ok(Outcome {
                external_id: Some(id.to_string()),
                note: if changed.is_empty() {
                    "extra specs already as desired".into()
                } else {
                    format!("extra specs: {}", changed.join(", "))
                },
            });
        }
        // Nova flavors cannot change size or visibility: replace the (owned) flavor.
        let previous = ctx.intents.previous(ctx.key).await;
        let new_id = previous
            .as_ref()
            .and_then(|p| p.get("flavor_id"))
            .and_then(Value::as_str)
            .filter(|p| *p != id)
            .map(str::to_string)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        ctx.intents
            .record(
                ctx.key,
                &json!({"flavor_id": new_id, "name": name, "replaces": id}),
            )
            .await;
        self.delete(Service::Compute, &format!("/flavors/{}", seg(id)))
            .await?;
        let (created, _) = self
            .ensure_flavor(name, &want, &new_id, previous.is_some(), ctx.owner_tag)
            .await?;
        Ok(Outcome {
            external_id: Some(created.clone()),
            note: format!(
                "replaced flavor {name}: {} cannot change on a Nova flavor, so {id} was deleted and {created} created (existing servers keep their old sizes)",
                if immutable.is_empty() {
                    "size/visibility".to_string()
                } else {
                    immutable.join("/")
                }
            ),
        })
    }

    /// PUT each changed or missing extra spec, DELETE each one not desired.
    async fn sync_extra_specs(
        &self,
        flavor_id: &str,
        current: &BTreeMap<String, String>,
        want: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, ProviderError> {
        let mut changed = Vec::new();
        for (k, v) in want {
            if current.get(k) != Some(v) {
                let mut body = Map::new();
                body.insert(k.clone(), Value::from(v.clone()));
                self.client
                    .request(
                        Service::Compute,
                        Method::PUT,
                        &format!("/flavors/{}/os-extra_specs/{}", seg(flavor_id), seg(k)),
                        Some(&Value::Object(body)),
                        None,
                    )
                    .await?;
                changed.push(format!("set {k}"));
            }
        }
        for k in current.keys().filter(|k| !want.contains_key(*k)) {
            self.delete(
                Service::Compute,
                &format!("/flavors/{}/os-extra_specs/{}", seg(flavor_id), seg(k)),
            )
            .await?;
            changed.push(format!("removed {k}"));
        }
        Ok(changed)
    }

    async fn delete_flavor(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let Some(live) = self.get_flavor(id).await? else {
            return Ok(gone(id));
        };
        if !flavor_owned(&live, ctx.owner_tag) {
            return Err(not_ours("flavor", &live.name, id, ctx.owner_tag));
        }
        self.delete(Service::Compute, &format!("/flavors/{}", seg(id)))
            .await?;
        Ok(Outcome {
            external_id: Some(id.to_string()),
            note: format!("deleted flavor {}", live.name),
        })
    }

    // ------------------------------------------------------------------------------
    // Networks and subnets

    async fn networks_named(&self, name: &str) -> Result<Vec<api::Network>, ProviderError> {
        let path = format!("/networks?{}", query(&[("name", name)]));
        let nets: Vec<api::Network> = self
            .client
            .list(Service::Network, &path, "networks")
            .await?;
        Ok(nets.into_iter().filter(|n| n.name == name).collect())
    }

    /// The one owned network called `name` (or the one an interrupted attempt made).
    async fn find_owned_network(
        &self,
        name: &str,
        owner: &str,
        made_by_us: Option<&str>,
    ) -> Result<Option<api::Network>, ProviderError> {
        let mut mine: Vec<api::Network> = self
            .networks_named(name)
            .await?
            .into_iter()
            .filter(|n| network_owned(n, owner) || Some(n.id.as_str()) == made_by_us)
            .collect();
        if mine.len() > 1 {
            return Err(ProviderError::Api(format!(
                "{} networks named {name} carry the ownership tag; remove the extra ones",
                mine.len()
            )));
        }
        Ok(mine.pop())
    }

    async fn get_network(&self, id: &str) -> Result<Option<api::Network>, ProviderError> {
        let r = self
            .client
            .get(Service::Network, &format!("/networks/{}", seg(id)))
            .await;
        match gone_as_none(r)? {
            Some(r) => Ok(Some(r.parse::<api::NetworkResponse>("network")?.network)),
            None => Ok(None),
        }
    }

    async fn put_network_tags(&self, id: &str, tags: &[String]) -> Result<(), ProviderError> {
        self.client
            .request(
                Service::Network,
                Method::PUT,
                &format!("/networks/{}/tags", seg(id)),
                Some(&json!({"tags": tags})),
                None,
            )
            .await?;
        Ok(())
    }

    /// POST a network or subnet with `tags` in the body; a Neutron without the
    /// `tag-creation` extension rejects that (400, nothing created): then without.
    async fn post_tagged(
        &self,
        path: &str,
        wrapper: &str,
        body: &Map<String, Value>,
    ) -> Result<Value, ProviderError> {
        let with_tags = json!({wrapper: body});
        let r = self
            .client
            .request(Service::Network, Method::POST, path, Some(&with_tags), None)
            .await;
        let r = match r {
            Err(e) if status(&e) == Some(400) && error_text(&e).contains("tags") => {
                let mut plain = body.clone();
                plain.remove("tags");
                self.client
                    .request(
                        Service::Network,
                        Method::POST,
                        path,
                        Some(&json!({wrapper: plain})),
                        None,
                    )
                    .await?
            }
            other => other?,
        };
        r.body
            .get(wrapper)
            .cloned()
            .ok_or_else(|| ProviderError::Api(format!("POST {path}: no `{wrapper}` in the answer")))
    }

    async fn create_network(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let want = NetworkWant::from(desired(step)?.fields_as()?, ctx.owner_tag);
        let name = step.id.name.as_str();
        let previous = ctx.intents.previous(ctx.key).await;
        let made_by_us = previous
            .as_ref()
            .and_then(|p| p.get("network_id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut intent = json!({"network": name});
        if let Some(id) = &made_by_us {
            intent["network_id"] = json!(id);
        }
        ctx.intents.record(ctx.key, &intent).await;
        let mut body = Map::new();
        body.insert("name".into(), json!(name));
        if let Some(t) = &want.network_type {
            body.insert("provider:network_type".into(), json!(t));
        }
        if let Some(p) = &want.physical_network {
            body.insert("provider:physical_network".into(), json!(p));
        }
        if let Some(s) = want.segmentation_id {
            body.insert("provider:segmentation_id".into(), json!(s));
        }
        body.insert("shared".into(), json!(want.shared));
        body.insert("tags".into(), json!(want.tags));
        let made = create_once(
            previous.is_some(),
            || self.find_owned_network(name, ctx.owner_tag, made_by_us.as_deref()),
            || async {
                let v = self.post_tagged("/networks", "network", &body).await?;
                serde_json::from_value::<api::Network>(v)
                    .map_err(|e| ProviderError::Api(format!("unexpected network: {e}")))
            },
        )
        .await?;
        let (n, note) = match made {
            Made::Created(n) => (n, format!("created network {name}")),
            Made::Found(n) => (
                n,
                format!("network {name} already existed (an earlier attempt created it); adopted"),
            ),
        };
        if !network_owned(&n, ctx.owner_tag) {
            // Tagged after the fact: remember the id first, so a crash here is finished
            // by the next attempt instead of leaving an untagged twin behind.
            ctx.intents
                .record(ctx.key, &json!({"network": name, "network_id": n.id}))
                .await;
        }
        self.converge_network(&n, &want).await?;
        Ok(Outcome {
            external_id: Some(n.id),
            note,
        })
    }

    /// Bring an owned (or just created) network to `want`.
    async fn converge_network(
        &self,
        n: &api::Network,
        want: &NetworkWant,
    ) -> Result<Vec<String>, ProviderError> {
        let (ty, phys, segid) = n.provider();
        if ty != want.network_type || phys != want.physical_network {
            return Err(ProviderError::Refused(format!(
                "network {} is {}/{} but should be {}/{}: Neutron cannot change provider:network_type or provider:physical_network in place; delete the network (and its ports) to let strata recreate it",
                n.name,
                ty.as_deref().unwrap_or("-"),
                phys.as_deref().unwrap_or("-"),
                want.network_type.as_deref().unwrap_or("-"),
                want.physical_network.as_deref().unwrap_or("-"),
            )));
        }
        let mut changed = Vec::new();
        let mut body = Map::new();
        if n.shared != want.shared {
            body.insert("shared".into(), json!(want.shared));
            changed.push("shared");
        }
        if want.segmentation_id.is_some() && segid != want.segmentation_id {
            body.insert(
                "provider:segmentation_id".into(),
                json!(want.segmentation_id),
            );
            changed.push("provider:segmentation_id");
        }
        if !body.is_empty() {
            self.client
                .request(
                    Service::Network,
                    Method::PUT,
                    &format!("/networks/{}", seg(&n.id)),
                    Some(&json!({"network": body})),
                    None,
                )
                .await?;
        }
        if sorted(&n.tags) != sorted(&want.tags) {
            self.put_network_tags(&n.id, &want.tags).await?;
            changed.push("tags");
        }
        Ok(changed.into_iter().map(str::to_string).collect())
    }

    async fn update_network(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let want = NetworkWant::from(desired(step)?.fields_as()?, ctx.owner_tag);
        let Some(live) = self.get_network(id).await? else {
            return Err(ProviderError::Api(format!(
                "network {} ({id}) disappeared; plan again",
                step.id.name
            )));
        };
        if !network_owned(&live, ctx.owner_tag) {
            return Err(not_ours("network", &live.name, id, ctx.owner_tag));
        }
        let changed = self.converge_network(&live, &want).await?;
        Ok(Outcome {
            external_id: Some(id.to_string()),
            note: if changed.is_empty() {
                "already as desired".into()
            } else {
                format!("updated {}", changed.join(", "))
            },
        })
    }

    async fn delete_network(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let Some(live) = self.get_network(id).await? else {
            return Ok(gone(id));
        };
        if !network_owned(&live, ctx.owner_tag) {
            return Err(not_ours("network", &live.name, id, ctx.owner_tag));
        }
        self.delete(Service::Network, &format!("/networks/{}", seg(id)))
            .await?;
        Ok(Outcome {
            external_id: Some(id.to_string()),
            note: format!("deleted network {}", live.name),
        })
    }

    async fn find_subnet(
        &self,
        network_id: &str,
        name: &str,
        cidr: &str,
    ) -> Result<Option<api::Subnet>, ProviderError> {
        let path = format!("/subnets?{}", query(&[("network_id", network_id)]));
        let subnets: Vec<api::Subnet> =
            self.client.list(Service::Network, &path, "subnets").await?;
        Ok(subnets
            .into_iter()
            .filter(|s| s.network_id == network_id)
            .find(|s| s.name == name || s.cidr == cidr))
    }

    async fn get_subnet(&self, id: &str) -> Result<Option<api::Subnet>, ProviderError> {
        let r = self
            .client
            .get(Service::Network, &format!("/subnets/{}", seg(id)))
            .await;
        match gone_as_none(r)? {
            Some(r) => Ok(Some(r.parse::<api::SubnetResponse>("subnet")?.subnet)),
            None => Ok(None),
        }
    }

    /// The live subnet `id` when its network is owned.
    async fn owned_subnet(
        &self,
        id: &str,
        owner: &str,
    ) -> Result<Option<api::Subnet>, ProviderError> {
        let Some(s) = self.get_subnet(id).await? else {
            return Ok(None);
        };
        let owned = self
            .get_network(&s.network_id)
            .await?
            .is_some_and(|n| network_owned(&n, owner));
        if !owned {
            return Err(not_ours("subnet", &s.name, id, owner));
        }
        Ok(Some(s))
    }

    async fn create_subnet(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let want: SubnetFields = desired(step)?.fields_as()?;
        let name = step.id.name.as_str();
        let network = self
            .find_owned_network(&want.network, ctx.owner_tag, None)
            .await?
            .ok_or_else(|| {
                ProviderError::Api(format!(
                    "subnet {name}: no owned network named {} (create it first)",
                    want.network
                ))
            })?;
        let retry = ctx.intents.previous(ctx.key).await.is_some();
        ctx.intents
            .record(ctx.key, &json!({"subnet": name, "network_id": network.id}))
            .await;
        let mut body = Map::new();
        body.insert("name".into(), json!(name));
        body.insert("network_id".into(), json!(network.id));
        body.insert("cidr".into(), json!(want.cidr));
        body.insert("ip_version".into(), json!(want.ip_version));
        body.insert("gateway_ip".into(), json!(want.gateway_ip));
        body.insert("enable_dhcp".into(), json!(want.enable_dhcp));
        body.insert("tags".into(), json!([ctx.owner_tag]));
        let made = create_once(
            retry,
            || self.find_subnet(&network.id, name, &want.cidr),
            || async {
                let v = self.post_tagged("/subnets", "subnet", &body).await?;
                serde_json::from_value::<api::Subnet>(v)
                    .map_err(|e| ProviderError::Api(format!("unexpected subnet: {e}")))
            },
        )
        .await?;
        match made {
            Made::Created(s) => Ok(Outcome {
                external_id: Some(s.id),
                note: format!(
                    "created subnet {name} ({}) on network {}",
                    want.cidr, want.network
                ),
            }),
            Made::Found(s) => {
                if s.cidr != want.cidr || s.ip_version != want.ip_version {
                    return Err(ProviderError::Api(format!(
                        "network {} already has subnet {} ({}) that is not {}; plan again to replace it",
                        want.network, s.name, s.cidr, want.cidr
                    )));
                }
                self.converge_subnet(&s, &want, name).await?;
                Ok(Outcome {
                    external_id: Some(s.id),
                    note: format!("subnet {name} already existed on the owned network; adopted"),
                })
            }
        }
    }

    async fn converge_subnet(
        &self,
        s: &api::Subnet,
        want: &SubnetFields,
        name: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let mut body = Map::new();
        if s.gateway_ip != want.gateway_ip {
            body.insert("gateway_ip".into(), json!(want.gateway_ip));
        }
        if s.enable_dhcp != want.enable_dhcp {
            body.insert("enable_dhcp".into(), json!(want.enable_dhcp));
        }
        if s.name != name {
            body.insert("name".into(), json!(name));
        }
        let changed: Vec<String> = body.keys().cloned().collect();
        if !body.is_empty() {
            self.client
                .request(
                    Service::Network,
                    Method::PUT,
                    &format!("/subnets/{}", seg(&s.id)),
                    Some(&json!({"subnet": body})),
                    None,
                )
                .await?;
        }
        Ok(changed)
    }

    async fn update_subnet(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let want: SubnetFields = desired(step)?.fields_as()?;
        let name = step.id.name.as_str();
        let Some(live) = self.owned_subnet(id, ctx.owner_tag).await? else {
            return Err(ProviderError::Api(format!(
                "subnet {name} ({id}) disappeared; plan again"
            )));
        };
        let network_name = self
            .get_network(&live.network_id)
            .await?
            .map(|n| n.name)
            .unwrap_or_default();
        if live.cidr == want.cidr
            && live.ip_version == want.ip_version
            && network_name == want.network
        {
            let changed = self.converge_subnet(&live, &want, name).await?;
            return Ok(Outcome {
                external_id: Some(id.to_string()),
                note: if changed.is_empty() {
                    "already as desired".into()
                } else {
                    format!("updated {}", changed.join(", "))
                },
            });
        }
        // cidr, ip_version and network_id are read-only in Neutron: replace.
        self.delete(Service::Network, &format!("/subnets/{}", seg(id)))
            .await?;
        let mut created = self.create_subnet(step, ctx).await?;
        created.note = format!(
            "replaced subnet {name}: cidr/ip_version/network cannot change in Neutron, so {id} ({}) was deleted; {}",
            live.cidr, created.note
        );
        Ok(created)
    }

    async fn delete_subnet(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let Some(live) = self.owned_subnet(id, ctx.owner_tag).await? else {
            return Ok(gone(id));
        };
        self.delete(Service::Network, &format!("/subnets/{}", seg(id)))
            .await?;
        Ok(Outcome {
            external_id: Some(id.to_string()),
            note: format!("deleted subnet {} ({})", live.name, live.cidr),
        })
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
        let (projects, flavors, networks, subnets) = tokio::try_join!(
            self.list_projects(),
            self.list_flavors(),
            self.list_networks(),
            self.list_subnets(),
        )?;
        let mut out = Observed::default();
        let owned = self.add_projects(&mut out, &projects);
        let quotas = futures::future::try_join_all(owned.iter().map(|p| self.quota(&p.id))).await?;
        for (p, q) in owned.iter().zip(quotas) {
            out.resources.insert(quota_resource(&self.dc, p, &q));
        }
        self.add_flavors(&mut out, &flavors);
        self.add_networks(&mut out, &networks, &subnets);
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
            (Kind::Flavor, Action::Create) => self.create_flavor(step, ctx).await,
            (Kind::Flavor, Action::Update) => self.update_flavor(step, ctx).await,
            (Kind::Flavor, Action::Delete) => self.delete_flavor(step, ctx).await,
            (Kind::Network, Action::Create) => self.create_network(step, ctx).await,
            (Kind::Network, Action::Update) => self.update_network(step, ctx).await,
            (Kind::Network, Action::Delete) => self.delete_network(step, ctx).await,
            (Kind::Subnet, Action::Create) => self.create_subnet(step, ctx).await,
            (Kind::Subnet, Action::Update) => self.update_subnet(step, ctx).await,
            (Kind::Subnet, Action::Delete) => self.delete_subnet(step, ctx).await,
            (kind, _) => Err(ProviderError::Refused(format!(
                "{kind} is not an OpenStack kind"
            ))),
        }
    }

    fn calls(&self) -> u64 {
        self.client.calls()
    }
}

// ---------------------------------------------------------------------------------------
// Creating once

enum Made<T> {
    Created(T),
    /// It already existed (an earlier attempt, or someone else: the caller decides).
    Found(T),
}

/// Create something at most once. When an earlier attempt may have created it
/// (`retry`), after an ambiguous failure (the request may have reached the service)
/// and after a conflict, look it up before (re)trying.
async fn create_once<T, L, LF, C, CF>(
    retry: bool,
    lookup: L,
    create: C,
) -> Result<Made<T>, ProviderError>
where
    L: Fn() -> LF,
    LF: Future<Output = Result<Option<T>, ProviderError>>,
    C: Fn() -> CF,
    CF: Future<Output = Result<T, ProviderError>>,
{
    let mut look = retry;
    let mut last = None;
    for _ in 0..4 {
        if look && let Some(found) = lookup().await? {
            return Ok(Made::Found(found));
        }
        // A conflict with nothing to find is a real conflict (a VLAN in use, ...).
        if let Some(conflict) = last.take_if(|e| status(e) == Some(409)) {
            return Err(conflict);
        }
        match create().await {
            Ok(made) => return Ok(Made::Created(made)),
            Err(e) if ambiguous(&e) || status(&e) == Some(409) => {
                tracing::debug!("create failed ({e}); looking again before retrying");
                look = true;
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ProviderError::Api("create did not complete".into())))
}

fn ambiguous(e: &ProviderError) -> bool {
    matches!(e, ProviderError::Http(h) if h.is_ambiguous())
}

fn status(e: &ProviderError) -> Option<u16> {
    match e {
        ProviderError::Http(h) => h.status().map(|s| s.as_u16()),
        _ => None,
    }
}

fn error_text(e: &ProviderError) -> String {
    match e {
        ProviderError::Http(crate::http::HttpError::Status { body, .. }) => body.clone(),
        other => other.to_string(),
    }
}

/// A 404 as `None`.
fn gone_as_none(
    r: Result<client::Reply, ProviderError>,
) -> Result<Option<client::Reply>, ProviderError> {
    match r {
        Ok(r) => Ok(Some(r)),
        Err(e) if status(&e) == Some(404) => Ok(None),
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
// Desired fields

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

struct FlavorWant {
    vcpus: u64,
    ram: u64,
    disk: u64,
    is_public: bool,
    extra_specs: BTreeMap<String, String>,
}

impl FlavorWant {
    /// The desired flavor, always marked with the owner.
    fn from(d: FlavorFields, owner: &str) -> FlavorWant {
        let mut extra_specs = d.extra_specs;
        extra_specs.insert(OWNER_SPEC.to_string(), owner.to_string());
        FlavorWant {
            vcpus: d.vcpus,
            ram: d.ram,
            disk: d.disk,
            is_public: d.is_public,
            extra_specs,
        }
    }

    fn immutable_differs(&self, f: &api::Flavor) -> bool {
        f.vcpus != self.vcpus
            || f.ram != self.ram
            || f.disk != self.disk
            || f.is_public != self.is_public
    }
}

struct NetworkWant {
    network_type: Option<String>,
    physical_network: Option<String>,
    segmentation_id: Option<i64>,
    shared: bool,
    tags: Vec<String>,
}

impl NetworkWant {
    /// The desired network, its tags always with the owner tag.
    fn from(d: NetworkFields, owner: &str) -> NetworkWant {
        NetworkWant {
            network_type: d.provider_network_type,
            physical_network: d.provider_physical_network,
            segmentation_id: d.provider_segmentation_id,
            shared: d.shared,
            tags: with_owner(d.tags, owner),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Mapping API objects onto the field vocabulary

pub fn project_owned(p: &api::Project, owner: &str) -> bool {
    p.tags.iter().any(|t| t == owner)
}

pub fn flavor_owned(f: &api::Flavor, owner: &str) -> bool {
    f.extra_specs
        .as_ref()
        .and_then(|s| s.get(OWNER_SPEC))
        .is_some_and(|v| v == owner)
}

pub fn network_owned(n: &api::Network, owner: &str) -> bool {
    n.tags.iter().any(|t| t == owner)
}

fn owned_resource<F: KindFields>(id: ResourceId, external_id: &str, fields: &F) -> Resource {
    let mut r = Resource::with_fields(id, fields);
    r.owned = true;
    r.external_id = Some(external_id.to_string());
    r
}

pub fn project_resource(dc: &str, p: &api::Project) -> Resource {
    owned_resource(
        ResourceId::new(dc, Kind::Project, p.name.clone()),
        &p.id,
        &ProjectFields {
            description: p.description.clone(),
            tags: sorted(&p.tags),
        },
    )
}

pub fn quota_resource(dc: &str, p: &api::Project, q: &api::QuotaSet) -> Resource {
    owned_resource(
        ResourceId::new(dc, Kind::Quota, p.name.clone()),
        &p.id,
        &QuotaFields {
            instances: q.instances,
            cores: q.cores,
            ram: q.ram,
        },
    )
}

pub fn flavor_resource(dc: &str, f: &api::Flavor) -> Resource {
    owned_resource(
        ResourceId::new(dc, Kind::Flavor, f.name.clone()),
        &f.id,
        &FlavorFields {
            vcpus: f.vcpus,
            ram: f.ram,
            disk: f.disk,
            is_public: f.is_public,
            extra_specs: f.extra_specs.clone().unwrap_or_default(),
        },
    )
}

pub fn network_resource(dc: &str, n: &api::Network) -> Resource {
    let (ty, phys, segid) = n.provider();
    owned_resource(
        ResourceId::new(dc, Kind::Network, n.name.clone()),
        &n.id,
        &NetworkFields {
            provider_network_type: ty,
            provider_physical_network: phys,
            provider_segmentation_id: segid,
            shared: n.shared,
            tags: sorted(&n.tags),
        },
    )
}

pub fn subnet_resource(dc: &str, s: &api::Subnet, name: &str, network: &str) -> Resource {
    owned_resource(
        ResourceId::new(dc, Kind::Subnet, name),
        &s.id,
        &SubnetFields {
            network: network.to_string(),
            cidr: s.cidr.clone(),
            gateway_ip: s.gateway_ip.clone(),
            enable_dhcp: s.enable_dhcp,
            ip_version: s.ip_version,
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn http_error(status: u16) -> ProviderError {
        ProviderError::Http(crate::http::HttpError::Status {
            method: Method::POST,
            url: "http://x/things".into(),
            status: reqwest::StatusCode::from_u16(status).expect("status"),
            body: "{}".into(),
        })
    }

    #[tokio::test]
    async fn creates_happen_at_most_once() {
        // An ambiguous failure (502): look before trying again, and find it.
        let posts = AtomicUsize::new(0);
        let looks = AtomicUsize::new(0);
        let made = create_once(
            false,
            || async {
                looks.fetch_add(1, Ordering::SeqCst);
                Ok(Some("existing"))
            },
            || async {
                posts.fetch_add(1, Ordering::SeqCst);
                Err::<&str, _>(http_error(502))
            },
        )
        .await
        .expect("found");
        assert!(matches!(made, Made::Found("existing")));
        assert_eq!((posts.into_inner(), looks.into_inner()), (1, 1));

        // An earlier attempt may have made it: look first.
        let posts = AtomicUsize::new(0);
        let made = create_once(
            true,
            || async { Ok(None) },
            || async {
                posts.fetch_add(1, Ordering::SeqCst);
                Ok("new")
            },
        )
        .await
        .expect("created");
        assert!(matches!(made, Made::Created("new")));
        assert_eq!(posts.into_inner(), 1);

        // A conflict with nothing of ours to find is returned as it is, once.
        let posts = AtomicUsize::new(0);
        let e = create_once(
            false,
            || async { Ok::<Option<&str>, _>(None) },
            || async {
                posts.fetch_add(1, Ordering::SeqCst);
                Err(http_error(409))
            },
        )
        .await
        .err()
        .expect("conflict");
        assert_eq!(status(&e), Some(409));
        assert_eq!(posts.into_inner(), 1);

        // A plain refusal (400) is not retried.
        let posts = AtomicUsize::new(0);
        let e = create_once(
            false,
            || async { Ok::<Option<&str>, _>(None) },
            || async {
                posts.fetch_add(1, Ordering::SeqCst);
                Err(http_error(400))
            },
        )
        .await
        .err()
        .expect("bad request");
        assert_eq!(status(&e), Some(400));
        assert_eq!(posts.into_inner(), 1);
    }

    #[test]
    fn ownership_and_mapping() {
        let f: api::Flavor = serde_json::from_value(json!({
            "id": "f1", "name": "gpu.h100", "vcpus": 32, "ram": 262144, "disk": 200,
            "os-flavor-access:is_public": true, "swap": "",
            "extra_specs": {"strata:owner": "strata-acme", "pci_passthrough:alias": "h100:1"}
        }))
        .expect("flavor");
        assert!(flavor_owned(&f, "strata-acme"));
        assert!(!flavor_owned(&f, "strata-other"));
        let r = flavor_resource("fra1", &f);
        let fields: FlavorFields = r.fields_as().expect("flavor fields");
        assert_eq!(fields.ram, 262144);
        assert_eq!(fields.extra_specs["pci_passthrough:alias"], "h100:1");
        assert_eq!(r.external_id.as_deref(), Some("f1"));

        let n: api::Network = serde_json::from_value(json!({
            "id": "n1", "name": "t-app", "shared": false, "tags": ["z", "strata-acme"],
            "provider:network_type": "vlan", "provider:physical_network": "physnet1",
            "provider:segmentation_id": 120
        }))
        .expect("network");
        let r: NetworkFields = network_resource("fra1", &n)
            .fields_as()
            .expect("network fields");
        assert_eq!(r.provider_network_type.as_deref(), Some("vlan"));
        assert_eq!(r.provider_segmentation_id, Some(120));
        assert_eq!(r.tags, ["strata-acme", "z"]);
        assert_eq!(
            with_owner(vec!["b".into(), "a".into()], "a"),
            vec!["a", "b"]
        );
    }
}
