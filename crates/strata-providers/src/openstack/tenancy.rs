//! Tenancy: what lets a team's project use the region. Team members' `member` role on
//! the project (Keystone role assignments), access to private GPU flavors (Nova
//! `os-flavor-access`) and the tenant networks shared with the project (Neutron RBAC
//! policies, `access_as_shared`).
//!
//! Ownership follows the object they hang off: `member` assignments on owned projects,
//! the access list of owned flavors and the RBAC policies of owned networks are
//! strata's; other roles and wildcard (`*`) policies are not listed (a wildcard policy
//! is the network's `shared` field). Observation costs one role-assignment list, one
//! RBAC-policy list and one access-list read per owned private flavor.
//!
//! Every step is idempotent: granting a role is a PUT; an access that already exists
//! (Nova's 409) or a duplicate RBAC policy (Neutron's 409) counts as done; revoking
//! what is already gone (404) counts as done.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::json;
use strata_plan::{
    FlavorAccessFields, Kind, NetworkRbacFields, Observed, Resource, ResourceId,
    RoleAssignmentFields, Step,
};

use super::client::{Service, query, seg};
use super::{OpenstackProvider, api, desired, gone, gone_as_none, owned_observed};
use crate::{ActContext, Outcome, ProviderError};

/// The role strata manages on team projects (the others are the operator's).
const MEMBER: &str = strata_plan::MEMBER_ROLE;
const ACCESS_AS_SHARED: &str = strata_plan::ACCESS_AS_SHARED;

fn owned(id: ResourceId, external_id: String, fields: &impl strata_plan::KindFields) -> Resource {
    let mut r = Resource::with_fields(id, fields);
    r.owned = true;
    r.external_id = Some(external_id);
    r
}

impl OpenstackProvider {
    pub(super) async fn list_role_assignments(
        &self,
    ) -> Result<Vec<api::RoleAssignment>, ProviderError> {
        // Keystone does not paginate role assignments.
        let r = self
            .client
            .get(Service::Identity, "/role_assignments?include_names=true")
            .await?;
        Ok(r.parse::<api::RoleAssignmentList>("role assignments")?
            .role_assignments)
    }

    pub(super) async fn list_rbac_policies(&self) -> Result<Vec<api::RbacPolicy>, ProviderError> {
        // The rbac-policies extension does not paginate.
        let r = self
            .client
            .get(Service::Network, "/rbac-policies?object_type=network")
            .await?;
        Ok(r.parse::<api::RbacPolicyList>("RBAC policies")?
            .rbac_policies)
    }

    pub(super) async fn flavor_access(
        &self,
        flavor_id: &str,
    ) -> Result<Vec<api::FlavorAccess>, ProviderError> {
        let r = self
            .client
            .get(
                Service::Compute,
                &format!("/flavors/{}/os-flavor-access", seg(flavor_id)),
            )
            .await?;
        Ok(r.parse::<api::FlavorAccessList>("flavor access")?
            .flavor_access)
    }

    /// `member` assignments of users on owned projects (`projects`: id → name).
    pub(super) fn add_role_assignments(
        &self,
        out: &mut Observed,
        projects: &HashMap<String, String>,
        assignments: &[api::RoleAssignment],
    ) {
        for a in assignments {
            let (Some(user), Some(project)) = (&a.user, &a.scope.project) else {
                continue;
            };
            let (Some(project_id), Some(user_id), Some(role_id)) =
                (&project.id, &user.id, &a.role.id)
            else {
                continue;
            };
            let Some(project_name) = projects.get(project_id) else {
                continue;
            };
            if a.role.name.as_deref() != Some(MEMBER) {
                continue;
            }
            let user_name = user.name.clone().unwrap_or_else(|| user_id.clone());
            out.resources.insert(owned(
                ResourceId::new(
                    &self.dc,
                    Kind::RoleAssignment,
                    format!("{project_name}:{user_name}"),
                ),
                format!("{project_id}/{user_id}/{role_id}"),
                &RoleAssignmentFields {
                    project: project_name.clone(),
                    user: user_name,
                    role: MEMBER.to_string(),
                },
            ));
        }
    }

    /// The access list of an owned private flavor (`projects`: id → name, of every
    /// project listed).
    pub(super) fn add_flavor_access(
        &self,
        out: &mut Observed,
        flavor: &api::Flavor,
        projects: &HashMap<String, String>,
        access: &[api::FlavorAccess],
    ) {
        for a in access {
            let project = projects
                .get(&a.tenant_id)
                .cloned()
                .unwrap_or_else(|| a.tenant_id.clone());
            out.resources.insert(owned(
                ResourceId::new(
                    &self.dc,
                    Kind::FlavorAccess,
                    format!("{}:{project}", flavor.name),
                ),
                format!("{}/{}", flavor.id, a.tenant_id),
                &FlavorAccessFields {
                    flavor: flavor.name.clone(),
                    project,
                },
            ));
        }
    }

    /// `access_as_shared` policies of owned networks (`networks`: id → name of the
    /// owned ones) that name a project.
    pub(super) fn add_rbac_policies(
        &self,
        out: &mut Observed,
        networks: &HashMap<&str, &str>,
        projects: &HashMap<String, String>,
        policies: &[api::RbacPolicy],
    ) {
        for p in policies {
            if p.object_type != "network" || p.action != ACCESS_AS_SHARED || p.target_tenant == "*"
            {
                continue;
            }
            let Some(network) = networks.get(p.object_id.as_str()) else {
                continue;
            };
            let project = projects
                .get(&p.target_tenant)
                .cloned()
                .unwrap_or_else(|| p.target_tenant.clone());
            out.resources.insert(owned(
                ResourceId::new(&self.dc, Kind::NetworkRbac, format!("{network}:{project}")),
                p.id.clone(),
                &NetworkRbacFields {
                    network: network.to_string(),
                    project,
                    action: p.action.clone(),
                },
            ));
        }
    }

    /// The id of the team project `name` in strata's domain.
    async fn project_id(&self, name: &str) -> Result<String, ProviderError> {
        let domain_id = self.client.session().await?.domain_id.clone();
        self.find_project(name, &domain_id)
            .await?
            .map(|p| p.id)
            .ok_or_else(|| {
                ProviderError::Api(format!(
                    "Keystone has no project {name} in domain {domain_id}; plan again"
                ))
            })
    }

    pub(super) async fn grant_role(
        &self,
        step: &Step,
        _ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let d = desired(step)?.fields_as::<RoleAssignmentFields>()?;
        let project_id = self.project_id(&d.project).await?;
        let domain_id = self.client.session().await?.domain_id.clone();
        let users: api::UserList = self
            .client
            .get(
                Service::Identity,
                &format!(
                    "/users?{}",
                    query(&[("name", &d.user), ("domain_id", &domain_id)])
                ),
            )
            .await?
            .parse("users")?;
        let user = users
            .users
            .into_iter()
            .find(|u| u.name == d.user)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{}: Keystone has no user {} in domain {domain_id}; team members must exist in the identity backend (strata does not create users)",
                    step.id, d.user
                ))
            })?;
        let roles: api::RoleList = self
            .client
            .get(
                Service::Identity,
                &format!("/roles?{}", query(&[("name", &d.role)])),
            )
            .await?
            .parse("roles")?;
        let role_id = roles
            .roles
            .into_iter()
            .find(|r| r.name.as_deref() == Some(d.role.as_str()))
            .and_then(|r| r.id)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{}: Keystone has no role {} (keystone-manage bootstrap creates admin, member and reader)",
                    step.id, d.role
                ))
            })?;
        // PUT is idempotent: granting an existing assignment is a 204 again.
        self.client
            .request(
                Service::Identity,
                Method::PUT,
                &format!(
                    "/projects/{}/users/{}/roles/{}",
                    seg(&project_id),
                    seg(&user.id),
                    seg(&role_id)
                ),
                None,
                Some(true),
            )
            .await?;
        Ok(Outcome {
            external_id: Some(format!("{project_id}/{}/{role_id}", user.id)),
            note: format!("granted {} the {} role on {}", d.user, d.role, d.project),
        })
    }

    pub(super) async fn revoke_role(
        &self,
        step: &Step,
        _ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let mut parts = id.splitn(3, '/');
        let (Some(p), Some(u), Some(r)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ProviderError::Refused(format!(
                "{}: `{id}` is not project/user/role",
                step.id
            )));
        };
        let path = format!("/projects/{}/users/{}/roles/{}", seg(p), seg(u), seg(r));
        let r = self
            .client
            .request(Service::Identity, Method::DELETE, &path, None, Some(true))
            .await;
        Ok(match gone_as_none(r)? {
            Some(_) => Outcome {
                external_id: Some(id.to_string()),
                note: format!("revoked {}", step.id.name),
            },
            None => gone(id),
        })
    }

    pub(super) async fn add_flavor_tenant(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let d = desired(step)?.fields_as::<FlavorAccessFields>()?;
        let flavor = self
            .find_flavor(&d.flavor)
            .await?
            .filter(|f| super::flavor_owned(f, ctx.owner_tag))
            .ok_or_else(|| {
                ProviderError::Api(format!(
                    "{}: no flavor {} of this fleet; plan again",
                    step.id, d.flavor
                ))
            })?;
        let project_id = self.project_id(&d.project).await?;
        let body = json!({"addTenantAccess": {"tenant": project_id}});
        let r = self
            .client
            .request(
                Service::Compute,
                Method::POST,
                &format!("/flavors/{}/action", seg(&flavor.id)),
                Some(&body),
                Some(true),
            )
            .await;
        let note = match r {
            Ok(_) => format!("gave {} access to flavor {}", d.project, d.flavor),
            // "Flavor access already exists for flavor ... and project ...".
            Err(e) if e.is_conflict() => {
                format!("{} already had access to flavor {}", d.project, d.flavor)
            }
            Err(e) => return Err(e),
        };
        Ok(Outcome {
            external_id: Some(format!("{}/{project_id}", flavor.id)),
            note,
        })
    }

    pub(super) async fn remove_flavor_tenant(
        &self,
        step: &Step,
        _ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let Some((flavor_id, project_id)) = id.split_once('/') else {
            return Err(ProviderError::Refused(format!(
                "{}: `{id}` is not flavor/project",
                step.id
            )));
        };
        let body = json!({"removeTenantAccess": {"tenant": project_id}});
        let r = self
            .client
            .request(
                Service::Compute,
                Method::POST,
                &format!("/flavors/{}/action", seg(flavor_id)),
                Some(&body),
                Some(true),
            )
            .await;
        Ok(match gone_as_none(r)? {
            Some(_) => Outcome {
                external_id: Some(id.to_string()),
                note: format!("removed access {}", step.id.name),
            },
            None => gone(id),
        })
    }

    pub(super) async fn create_network_rbac(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let d = desired(step)?.fields_as::<NetworkRbacFields>()?;
        let network = self
            .find_owned_network(&d.network, ctx.owner_tag, None)
            .await?
            .ok_or_else(|| {
                ProviderError::Api(format!(
                    "{}: no network {} of this fleet; plan again",
                    step.id, d.network
                ))
            })?;
        let project_id = self.project_id(&d.project).await?;
        let find = || async {
            Ok::<_, ProviderError>(self.list_rbac_policies().await?.into_iter().find(|p| {
                p.object_id == network.id && p.action == d.action && p.target_tenant == project_id
            }))
        };
        let body = json!({"rbac_policy": {
            "object_type": "network",
            "object_id": network.id,
            "action": d.action,
            "target_tenant": project_id,
        }});
        let r = self
            .client
            .request(
                Service::Network,
                Method::POST,
                "/rbac-policies",
                Some(&body),
                None,
            )
            .await;
        match r {
            Ok(r) => {
                let p = r
                    .parse::<api::RbacPolicyResponse>("RBAC policy")?
                    .rbac_policy;
                Ok(Outcome {
                    external_id: Some(p.id),
                    note: format!("shared network {} with {}", d.network, d.project),
                })
            }
            // DuplicateRbacPolicy (409), or a create whose answer was lost: the
            // policy may exist; look it up before failing.
            Err(e) if e.is_conflict() || e.is_ambiguous() => match find().await? {
                Some(p) => Ok(Outcome {
                    external_id: Some(p.id),
                    note: format!(
                        "network {} was already shared with {}",
                        d.network, d.project
                    ),
                }),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    pub(super) async fn delete_network_rbac(
        &self,
        step: &Step,
        _ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (_, id) = owned_observed(step)?;
        let r = self
            .client
            .request(
                Service::Network,
                Method::DELETE,
                &format!("/rbac-policies/{}", seg(id)),
                None,
                None,
            )
            .await;
        Ok(match gone_as_none(r)? {
            Some(_) => Outcome {
                external_id: Some(id.to_string()),
                note: format!("stopped sharing {}", step.id.name),
            },
            None => gone(id),
        })
    }
}
