//! Projects (Keystone, one per team, tagged with the owner tag) and their Nova quotas.
//! A project create records its intent and goes through [`create_once`]; a quota is
//! set on the owned project of the same name and reset to the region's defaults on
//! delete.

use reqwest::Method;
use serde_json::json;
use strata_plan::{ProjectFields, QuotaFields, Step};

use super::client::{Service, query, seg};
use super::observe::project_owned;
use super::{
    OpenstackProvider, api, changed_fields, desired, gone, gone_as_none, not_ours, owned_observed,
    sorted, with_owner,
};
use crate::create_once::{Made, create_once};
use crate::{ActContext, Outcome, ProviderError};

impl OpenstackProvider {
    pub(super) async fn find_project(
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

    pub(super) async fn create_project(
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

    pub(super) async fn update_project(
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

    pub(super) async fn get_project(
        &self,
        id: &str,
    ) -> Result<Option<api::Project>, ProviderError> {
        let r = self
            .client
            .get(Service::Identity, &format!("/projects/{}", seg(id)))
            .await;
        match gone_as_none(r)? {
            Some(r) => Ok(Some(r.parse::<api::ProjectResponse>("project")?.project)),
            None => Ok(None),
        }
    }

    pub(super) async fn delete_project(
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

    pub(super) async fn set_quota(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
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

    pub(super) async fn reset_quota(
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
}
