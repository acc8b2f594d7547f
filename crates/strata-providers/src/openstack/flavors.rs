//! Flavors (Nova, marked as strata's by the [`OWNER_SPEC`] extra spec). A create
//! records the flavor id it is about to use, so a flavor created just before a crash
//! is found and finished instead of duplicated; a change of size or visibility
//! replaces the flavor (Nova cannot change it in place); extra specs are synchronised
//! one by one.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Map, Value, json};
use strata_plan::{FlavorFields, Step};

use super::client::{Service, seg};
use super::observe::flavor_owned;
use super::{
    OWNER_SPEC, OpenstackProvider, api, desired, gone, gone_as_none, not_ours, owned_observed,
};
use crate::create_once::{Made, create_once};
use crate::{ActContext, Outcome, ProviderError};

impl OpenstackProvider {
    pub(super) async fn find_flavor(
        &self,
        name: &str,
    ) -> Result<Option<api::Flavor>, ProviderError> {
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

    pub(super) async fn create_flavor(
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

    pub(super) async fn update_flavor(
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

    pub(super) async fn delete_flavor(
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
