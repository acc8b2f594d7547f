//! Node resolvers: `node-dns` resources, one per Proxmox node the fleet declares,
//! from `GET /nodes/{node}/dns` (`search`, `dns1..dns3`) and written with
//! `PUT /nodes/{node}/dns` (which replaces all four: name servers not sent are
//! removed, as PVE rewrites `/etc/resolv.conf`).
//!
//! Cost: observed only when the desired state names node-dns resources in this DC
//! ([`ProxmoxProvider::expect`]): one `GET /nodes` plus one `GET /nodes/{node}/dns`
//! per declared node that the cluster has, concurrently within the endpoint's limit.

use futures::future::join_all;
use reqwest::Method;
use serde_json::Value;
use strata_plan::{Action, Kind, NodeDnsFields, Resource, ResourceId, Step};

use super::ProxmoxProvider;
use super::conf::text;
use crate::{Outcome, ProviderError};

/// The resolver settings of one node, in the model's vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeDns {
    pub search: String,
    /// `dns1`, `dns2`, `dns3` that are set, in order.
    pub servers: Vec<String>,
}

impl NodeDns {
    pub(crate) fn parse(data: &Value) -> NodeDns {
        let get = |k: &str| data.get(k).map(text).filter(|s| !s.is_empty());
        NodeDns {
            search: get("search").unwrap_or_default(),
            servers: ["dns1", "dns2", "dns3"]
                .iter()
                .filter_map(|k| get(k))
                .collect(),
        }
    }

    fn from_step(step: &Step) -> Result<NodeDns, ProviderError> {
        let bad = |why: &str| ProviderError::Refused(format!("{}: {why}", step.id));
        let d = step
            .desired
            .as_ref()
            .ok_or_else(|| bad("no desired resolver settings"))?;
        let NodeDnsFields {
            search,
            dns: servers,
        } = d.fields_as()?;
        if search.is_empty() {
            return Err(bad("field `search` must be a non-empty domain"));
        }
        if servers.len() > 3 {
            return Err(bad("Proxmox VE takes at most three name servers"));
        }
        Ok(NodeDns { search, servers })
    }

    fn resource(&self, dc: &str, node: &str) -> Resource {
        let mut r = Resource::with_fields(
            ResourceId::new(dc, Kind::NodeDns, node),
            &NodeDnsFields {
                search: self.search.clone(),
                dns: self.servers.clone(),
            },
        );
        // Nodes carry no ownership tag: strata manages the resolvers of the nodes the
        // fleet declares (and observes no others).
        r.owned = true;
        r.external_id = Some(node.to_string());
        r
    }

    fn form(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![("search", self.search.clone())];
        for (k, v) in ["dns1", "dns2", "dns3"].into_iter().zip(&self.servers) {
            f.push((k, v.clone()));
        }
        f
    }
}

impl ProxmoxProvider {
    /// The `node-dns` resources of the declared nodes the cluster has.
    pub(super) async fn observe_dns(&self) -> Result<Vec<Resource>, ProviderError> {
        let declared = self.dns_nodes.lock().clone();
        if declared.is_empty() {
            return Ok(Vec::new());
        }
        let present = self.node_names().await?;
        let nodes: Vec<&String> = declared.iter().filter(|n| present.contains(n)).collect();
        let answers = join_all(nodes.iter().map(|n| async move {
            let data = self.api.get(&format!("/nodes/{n}/dns"), &[]).await?;
            Ok::<_, ProviderError>(NodeDns::parse(&data).resource(&self.dc, n))
        }))
        .await;
        answers.into_iter().collect()
    }

    /// Write a node's resolvers (create and update alike: a node always has them).
    pub(super) async fn act_dns(&self, step: &Step) -> Result<Outcome, ProviderError> {
        if step.action == Action::Delete {
            return Err(ProviderError::Refused(format!(
                "{}: a node's resolvers are not deleted; remove the node from the fleet instead",
                step.id
            )));
        }
        let node = &step.id.name;
        if !self.node_names().await?.contains(node) {
            return Err(ProviderError::Refused(format!(
                "{}: the cluster has no node {node}",
                step.id
            )));
        }
        let want = NodeDns::from_step(step)?;
        let form = want.form();
        self.api
            .call(Method::PUT, &format!("/nodes/{node}/dns"), &[], &form, None)
            .await?;
        Ok(Outcome {
            external_id: Some(node.clone()),
            note: format!(
                "resolvers {} search {}",
                want.servers.join(" "),
                want.search
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_servers_that_are_set_count_in_order() {
        let d = NodeDns::parse(
            &json!({"search": "fra1.example.net", "dns1": "10.0.0.2", "dns3": "10.0.0.4"}),
        );
        assert_eq!(d.search, "fra1.example.net");
        assert_eq!(d.servers, vec!["10.0.0.2", "10.0.0.4"]);
        assert_eq!(
            d.form(),
            vec![
                ("search", "fra1.example.net".to_string()),
                ("dns1", "10.0.0.2".to_string()),
                ("dns2", "10.0.0.4".to_string())
            ]
        );
        assert_eq!(NodeDns::parse(&json!({})).servers, Vec::<String>::new());
    }
}
