//! Team quotas as Keystone unified limits of the compute service, for regions whose
//! Nova runs the unified-limits driver (`strata_fleet::quota`): registered limits
//! (the defaults every project gets) and one limit per team project and resource.
//!
//! Keystone's rules (keystone `keystone/limit/core.py`, `backends/sql.py`): a limit
//! belongs to a service (here the region's `compute` service, found by type) and a
//! region; a registered limit is unique per service, region and resource (409 on a
//! second); a project limit needs the registered limit of its resource to exist first
//! (403), and is unique per project, service, region and resource.
//!
//! Ownership: Keystone limits carry no tags, so strata marks its own in their
//! `description` ([`mark`]) and never changes or deletes a limit without it.
//! Observation costs three list calls per region (the compute service, its registered
//! limits, its project limits), whatever the number of teams.
//!
//! Every step is idempotent: a create whose answer was lost, or that meets a 409,
//! looks the limit up and adopts it when it is ours; a delete of what is gone is done.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::json;
use strata_plan::{
    Kind, Observed, ProjectLimitFields, RegisteredLimitFields, Resource, ResourceId, Step,
};

use super::client::{Service, query, seg};
use super::{OpenstackProvider, api, desired, gone, gone_as_none, not_ours, owned_observed};
use crate::{ActContext, Outcome, ProviderError};

/// The Keystone service type whose limits nova reads (`[oslo_limit]
/// endpoint_service_type`, as strata renders it).
const COMPUTE_SERVICE_TYPE: &str = "compute";

/// Kolla's nova service user (`nova_keystone_user`, in the `default` domain): nova reads
/// the unified limits as this user, through oslo.limit, and needs Keystone's
/// system-scoped `reader` role for it (`[oslo_limit] system_scope = all`, as strata
/// renders nova.conf).
const LIMITS_READER: (&str, &str) = ("nova", "default");
const READER_ROLE: &str = "reader";

/// The description that marks a limit as strata's.
pub fn mark(owner: &str) -> String {
    format!("managed by strata: {owner}")
}

fn ours(description: Option<&str>, owner: &str) -> bool {
    description == Some(mark(owner).as_str())
}

fn owned(id: ResourceId, external_id: &str, fields: &impl strata_plan::KindFields) -> Resource {
    let mut r = Resource::with_fields(id, fields);
    r.owned = true;
    r.external_id = Some(external_id.to_string());
    r
}

/// What one observe reads of the region's limits.
pub(super) struct RegionLimits {
    pub registered: Vec<api::RegisteredLimit>,
    pub limits: Vec<api::ProjectLimit>,
}

impl OpenstackProvider {
    /// The id of the region's compute service; `None` when Keystone has none.
    async fn compute_service(&self) -> Result<Option<String>, ProviderError> {
        let list: api::ServiceList = self
            .client
            .get(
                Service::Identity,
                &format!("/services?{}", query(&[("type", COMPUTE_SERVICE_TYPE)])),
            )
            .await?
            .parse("services")?;
        let mut ids = list
            .services
            .into_iter()
            .filter(|s| s.kind == COMPUTE_SERVICE_TYPE)
            .map(|s| s.id);
        let first = ids.next();
        if ids.next().is_some() {
            // nova's `[oslo_limit] endpoint_service_type` lookup refuses this too
            // (`nova/limit/utils.py` `_identity_client`: "Multiple services found").
            return Err(ProviderError::Api(
                "Keystone has more than one compute service; nova cannot tell whose limits are its own".into(),
            ));
        }
        Ok(first)
    }

    async fn required_compute_service(&self, step: &Step) -> Result<String, ProviderError> {
        self.compute_service().await?.ok_or_else(|| {
            ProviderError::Refused(format!(
                "{}: Keystone has no compute service to hang limits on (Kolla registers nova's at deploy)",
                step.id
            ))
        })
    }

    async fn registered_limits(
        &self,
        service_id: &str,
        resource: Option<&str>,
    ) -> Result<Vec<api::RegisteredLimit>, ProviderError> {
        let mut q = vec![
            ("service_id", service_id),
            ("region_id", self.client.region()),
        ];
        if let Some(r) = resource {
            q.push(("resource_name", r));
        }
        // Keystone does not paginate limits.
        Ok(self
            .client
            .get(
                Service::Identity,
                &format!("/registered_limits?{}", query(&q)),
            )
            .await?
            .parse::<api::RegisteredLimitList>("registered limits")?
            .registered_limits)
    }

    async fn project_limits(
        &self,
        service_id: &str,
        filter: &[(&str, &str)],
    ) -> Result<Vec<api::ProjectLimit>, ProviderError> {
        let mut q = vec![
            ("service_id", service_id),
            ("region_id", self.client.region()),
        ];
        q.extend_from_slice(filter);
        Ok(self
            .client
            .get(Service::Identity, &format!("/limits?{}", query(&q)))
            .await?
            .parse::<api::LimitList>("limits")?
            .limits)
    }

    /// The region's compute limits, or nothing when Keystone has no compute service.
    pub(super) async fn list_limits(&self) -> Result<RegionLimits, ProviderError> {
        let Some(service) = self.compute_service().await? else {
            return Ok(RegionLimits {
                registered: Vec::new(),
                limits: Vec::new(),
            });
        };
        let (registered, limits) = tokio::try_join!(
            self.registered_limits(&service, None),
            self.project_limits(&service, &[]),
        )?;
        Ok(RegionLimits { registered, limits })
    }

    /// Registered and project limits onto the vocabulary; `projects` maps the ids of
    /// owned projects to their names.
    pub(super) fn add_limits(
        &self,
        out: &mut Observed,
        projects: &HashMap<String, String>,
        l: &RegionLimits,
    ) {
        for r in &l.registered {
            let id = ResourceId::new(&self.dc, Kind::RegisteredLimit, r.resource_name.clone());
            if ours(r.description.as_deref(), &self.owner_tag) {
                out.resources.insert(owned(
                    id,
                    &r.id,
                    &RegisteredLimitFields {
                        default_limit: r.default_limit,
                    },
                ));
            } else {
                out.unowned
                    .push(self.unowned("registered-limit", &r.resource_name, &r.id));
            }
        }
        for p in &l.limits {
            let project = p.project_id.as_ref().and_then(|id| projects.get(id));
            match project {
                Some(project) if ours(p.description.as_deref(), &self.owner_tag) => {
                    out.resources.insert(owned(
                        ResourceId::new(
                            &self.dc,
                            Kind::ProjectLimit,
                            format!("{project}:{}", p.resource_name),
                        ),
                        &p.id,
                        &ProjectLimitFields {
                            project: project.clone(),
                            resource: p.resource_name.clone(),
                            limit: p.resource_limit,
                        },
                    ));
                }
                _ => out.unowned.push(self.unowned(
                    "project-limit",
                    &format!(
                        "{}:{}",
                        p.project_id.as_deref().unwrap_or("-"),
                        p.resource_name
                    ),
                    &p.id,
                )),
            }
        }
    }

    /// Grant nova's service user the system-scoped reader role, without which nova
    /// cannot read the limits it enforces (oslo.limit gets 403 and every boot fails).
    /// Idempotent (`PUT` of an existing grant is a 204 again); never revoked: the grant
    /// is Kolla's nova's, not a team's.
    async fn ensure_limits_reader(&self, step: &Step) -> Result<(), ProviderError> {
        let (user, domain) = LIMITS_READER;
        let users: api::UserList = self
            .client
            .get(
                Service::Identity,
                &format!("/users?{}", query(&[("name", user), ("domain_id", domain)])),
            )
            .await?
            .parse("users")?;
        let user_id = users
            .users
            .into_iter()
            .find(|u| u.name == user)
            .map(|u| u.id)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{}: Keystone has no user {user} in domain {domain}; nova's service user reads the unified limits, so Nova must be deployed (Kolla creates it) before team quotas can be",
                    step.id
                ))
            })?;
        let roles: api::RoleList = self
            .client
            .get(
                Service::Identity,
                &format!("/roles?{}", query(&[("name", READER_ROLE)])),
            )
            .await?
            .parse("roles")?;
        let role_id = roles
            .roles
            .into_iter()
            .find(|r| r.name.as_deref() == Some(READER_ROLE))
            .and_then(|r| r.id)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{}: Keystone has no role {READER_ROLE} (keystone-manage bootstrap creates it)",
                    step.id
                ))
            })?;
        self.client
            .request(
                Service::Identity,
                Method::PUT,
                &format!("/system/users/{}/roles/{}", seg(&user_id), seg(&role_id)),
                None,
                Some(true),
            )
            .await?;
        Ok(())
    }

    pub(super) async fn create_registered_limit(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let d = desired(step)?.fields_as::<RegisteredLimitFields>()?;
        let resource = step.id.name.as_str();
        let service = self.required_compute_service(step).await?;
        self.ensure_limits_reader(step).await?;
        let body = json!({"registered_limits": [{
            "service_id": service,
            "region_id": self.client.region(),
            "resource_name": resource,
            "default_limit": d.default_limit,
            "description": mark(ctx.owner_tag),
        }]});
        let r = self
            .client
            .request(
                Service::Identity,
                Method::POST,
                "/registered_limits",
                Some(&body),
                None,
            )
            .await;
        match r {
            Ok(r) => {
                let made = r
                    .parse::<api::RegisteredLimitList>("registered limits")?
                    .registered_limits;
                let id = made.first().map(|l| l.id.clone()).ok_or_else(|| {
                    ProviderError::Api("Keystone created no registered limit".into())
                })?;
                Ok(Outcome {
                    external_id: Some(id),
                    note: format!("default {resource} limit {}", d.default_limit),
                })
            }
            // A duplicate (409), or a create whose answer was lost: adopt ours.
            Err(e) if e.is_conflict() || e.is_ambiguous() => {
                let found = self.registered_limits(&service, Some(resource)).await?;
                match found.into_iter().next() {
                    Some(l) if ours(l.description.as_deref(), ctx.owner_tag) => {
                        if l.default_limit != d.default_limit {
                            self.change_default(step, ctx, &l.id, d.default_limit)
                                .await?;
                        }
                        Ok(Outcome {
                            external_id: Some(l.id),
                            note: format!(
                                "default {resource} limit {} (it already existed)",
                                d.default_limit
                            ),
                        })
                    }
                    Some(l) => Err(ProviderError::Refused(format!(
                        "{}: Keystone already has a registered {resource} limit ({}) that strata did not create; remove it or leave the default to the operator",
                        step.id, l.id
                    ))),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn patch_registered(&self, id: &str, default_limit: i64) -> Result<(), ProviderError> {
        self.client
            .request(
                Service::Identity,
                Method::PATCH,
                &format!("/registered_limits/{}", seg(id)),
                Some(&json!({"registered_limit": {"default_limit": default_limit}})),
                Some(true),
            )
            .await?
            .parse::<api::RegisteredLimitResponse>("registered limit")?;
        Ok(())
    }

    /// Keystone refuses any change to a registered limit while project limits use it
    /// (403, `RegisteredLimitError`). When every such limit is strata's, they are taken
    /// off, the default changed, and put back with their values; until they are back
    /// the teams fall back to a default. A crash in between leaves them missing, and
    /// the next plan creates them again. A limit strata does not own is never touched:
    /// the update is refused, naming it.
    pub(super) async fn update_registered_limit(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let d = desired(step)?.fields_as::<RegisteredLimitFields>()?;
        let (_, id) = owned_observed(step)?;
        let moved = self.change_default(step, ctx, id, d.default_limit).await?;
        let mut note = format!("default {} limit {}", step.id.name, d.default_limit);
        if moved > 0 {
            note.push_str(&format!(
                " ({moved} project limit(s) taken off and put back around it)"
            ));
        }
        Ok(Outcome {
            external_id: Some(id.to_string()),
            note,
        })
    }

    /// Set a registered limit's default; returns how many project limits had to be
    /// taken off and put back.
    async fn change_default(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
        id: &str,
        default_limit: i64,
    ) -> Result<usize, ProviderError> {
        match self.patch_registered(id, default_limit).await {
            Ok(()) => return Ok(0),
            Err(e) if e.status() == Some(403) => {}
            Err(e) => return Err(e),
        }
        let service = self.required_compute_service(step).await?;
        let using = self
            .project_limits(&service, &[("resource_name", step.id.name.as_str())])
            .await?;
        if let Some(other) = using
            .iter()
            .find(|l| !ours(l.description.as_deref(), ctx.owner_tag))
        {
            return Err(ProviderError::Refused(format!(
                "{}: Keystone changes no registered limit while project limits use it, and limit {} (project {}) is not strata's; remove it, or leave the default as it is",
                step.id,
                other.id,
                other.project_id.as_deref().unwrap_or("-")
            )));
        }
        for l in &using {
            self.delete(Service::Identity, &format!("/limits/{}", seg(&l.id)))
                .await?;
        }
        self.patch_registered(id, default_limit).await?;
        if !using.is_empty() {
            let body = json!({"limits": using.iter().map(|l| json!({
                "service_id": l.service_id,
                "region_id": l.region_id,
                "project_id": l.project_id,
                "resource_name": l.resource_name,
                "resource_limit": l.resource_limit,
                "description": l.description,
            })).collect::<Vec<_>>()});
            self.client
                .request(
                    Service::Identity,
                    Method::POST,
                    "/limits",
                    Some(&body),
                    None,
                )
                .await?;
        }
        Ok(using.len())
    }

    pub(super) async fn delete_registered_limit(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        self.delete_ours(
            step,
            ctx,
            "registered_limits",
            "registered_limit",
            "the default",
        )
        .await
    }

    /// Delete a limit (`collection` `registered_limits` or `limits`, `one` its
    /// singular key) after checking the live object carries strata's mark; what is gone
    /// is done.
    async fn delete_ours(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
        collection: &str,
        one: &str,
        what: &str,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let path = format!("/{collection}/{}", seg(id));
        let Some(live) = gone_as_none(self.client.get(Service::Identity, &path).await)? else {
            return Ok(gone(id));
        };
        let live = &live.body[one];
        let resource = live["resource_name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !ours(live["description"].as_str(), ctx.owner_tag) {
            return Err(not_ours(
                &one.replace('_', " "),
                &resource,
                id,
                ctx.owner_tag,
            ));
        }
        self.delete(Service::Identity, &path).await?;
        Ok(Outcome {
            external_id: Some(id.to_string()),
            note: format!("removed {what} {resource} limit"),
        })
    }

    pub(super) async fn create_project_limit(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let d = desired(step)?.fields_as::<ProjectLimitFields>()?;
        let service = self.required_compute_service(step).await?;
        let domain_id = self.client.session().await?.domain_id.clone();
        let project = self
            .find_project(&d.project, &domain_id)
            .await?
            .ok_or_else(|| {
                ProviderError::Api(format!(
                    "Keystone has no project {} in domain {domain_id}; plan again",
                    d.project
                ))
            })?;
        if !super::project_owned(&project, ctx.owner_tag) {
            return Err(not_ours(
                "project",
                &project.name,
                &project.id,
                ctx.owner_tag,
            ));
        }
        let body = json!({"limits": [{
            "service_id": service,
            "region_id": self.client.region(),
            "project_id": project.id,
            "resource_name": d.resource,
            "resource_limit": d.limit,
            "description": mark(ctx.owner_tag),
        }]});
        let r = self
            .client
            .request(
                Service::Identity,
                Method::POST,
                "/limits",
                Some(&body),
                None,
            )
            .await;
        let note = format!("{} limit {} for {}", d.resource, d.limit, d.project);
        match r {
            Ok(r) => {
                let made = r.parse::<api::LimitList>("limits")?.limits;
                let id = made
                    .first()
                    .map(|l| l.id.clone())
                    .ok_or_else(|| ProviderError::Api("Keystone created no limit".into()))?;
                Ok(Outcome {
                    external_id: Some(id),
                    note,
                })
            }
            // Keystone answers 403 when the resource has no registered limit.
            Err(e) if e.status() == Some(403) => Err(ProviderError::Api(format!(
                "{}: Keystone refused the limit ({e}); the registered {} limit must exist first",
                step.id, d.resource
            ))),
            Err(e) if e.is_conflict() || e.is_ambiguous() => {
                let found = self
                    .project_limits(
                        &service,
                        &[("project_id", &project.id), ("resource_name", &d.resource)],
                    )
                    .await?;
                match found.into_iter().next() {
                    Some(l) if ours(l.description.as_deref(), ctx.owner_tag) => {
                        self.patch_limit(&l.id, d.limit).await?;
                        Ok(Outcome {
                            external_id: Some(l.id),
                            note: format!("{note} (it already existed)"),
                        })
                    }
                    Some(l) => Err(ProviderError::Refused(format!(
                        "{}: project {} already has a {} limit ({}) that strata did not create",
                        step.id, d.project, d.resource, l.id
                    ))),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn patch_limit(&self, id: &str, limit: i64) -> Result<(), ProviderError> {
        self.client
            .request(
                Service::Identity,
                Method::PATCH,
                &format!("/limits/{}", seg(id)),
                Some(&json!({"limit": {"resource_limit": limit}})),
                Some(true),
            )
            .await?
            .parse::<api::LimitResponse>("limit")?;
        Ok(())
    }

    pub(super) async fn update_project_limit(
        &self,
        step: &Step,
        _ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let d = desired(step)?.fields_as::<ProjectLimitFields>()?;
        let (o, id) = owned_observed(step)?;
        let had = o.fields_as::<ProjectLimitFields>()?;
        if had.project != d.project || had.resource != d.resource {
            return Err(ProviderError::Refused(format!(
                "{}: a limit's project and resource never change; plan again",
                step.id
            )));
        }
        self.patch_limit(id, d.limit).await?;
        Ok(Outcome {
            external_id: Some(id.to_string()),
            note: format!("{} limit {} for {}", d.resource, d.limit, d.project),
        })
    }

    pub(super) async fn delete_project_limit(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        self.delete_ours(step, ctx, "limits", "limit", "the").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_mark_is_ours() {
        assert!(ours(Some("managed by strata: fleet-a"), "fleet-a"));
        assert!(!ours(Some("managed by strata: fleet-ab"), "fleet-a"));
        assert!(!ours(Some("set by hand"), "fleet-a"));
        assert!(!ours(None, "fleet-a"));
    }
}
