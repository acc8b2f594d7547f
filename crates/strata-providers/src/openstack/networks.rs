//! Networks and subnets (Neutron). Networks carry the owner tag (set in the create
//! body, or afterwards where Neutron lacks `tag-creation`, with the network id recorded
//! first so a crash in between is finished by the next attempt); subnets belong to
//! strata through their owned network. Provider attributes, a subnet's CIDR, IP
//! version and network cannot change in place: the network is refused, the subnet
//! replaced.

use reqwest::Method;
use serde_json::{Map, Value, json};
use strata_plan::{NetworkFields, Step, SubnetFields};

use super::client::{Service, query, seg};
use super::observe::network_owned;
use super::{
    OpenstackProvider, api, desired, error_text, gone, gone_as_none, not_ours, owned_observed,
    sorted, with_owner,
};
use crate::create_once::{Made, create_once};
use crate::{ActContext, Outcome, ProviderError};

impl OpenstackProvider {
    async fn networks_named(&self, name: &str) -> Result<Vec<api::Network>, ProviderError> {
        let path = format!("/networks?{}", query(&[("name", name)]));
        let nets: Vec<api::Network> = self
            .client
            .list(Service::Network, &path, "networks")
            .await?;
        Ok(nets.into_iter().filter(|n| n.name == name).collect())
    }

    /// The one owned network called `name` (or the one an interrupted attempt made).
    pub(super) async fn find_owned_network(
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
            Err(e) if e.status() == Some(400) && error_text(&e).contains("tags") => {
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

    pub(super) async fn create_network(
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

    pub(super) async fn update_network(
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

    pub(super) async fn delete_network(
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

    pub(super) async fn create_subnet(
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

    pub(super) async fn update_subnet(
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

    pub(super) async fn delete_subnet(
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
