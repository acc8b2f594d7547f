//! HA membership of a VM: strata's `ha_group` field.
//!
//! Proxmox VE 9 replaced HA groups with HA rules: a group `g` became the node-affinity
//! rule `ha-group-g` (the upgrade migrates them so), and `group` is no longer accepted
//! on HA resources. strata therefore maps `ha_group: g` to "the VM is an HA resource and
//! a member of the node-affinity rule `ha-group-g`" (or of a rule named `g` an operator
//! made), creating that rule over all cluster nodes (non-strict) when it does not
//! exist, and removing the VM from any other node-affinity rule. `ha_group: null` means
//! "not HA-managed". On a PVE 8 cluster (no `/cluster/ha/rules`) the resource's own
//! `group` option is used instead.
//!
//! Every write is followed by a fresh read, and the rules file is written with its
//! `digest`, so concurrent writers (other strata runs, operators) cannot be overwritten
//! silently; writes from this process are serialised.

use std::time::Duration;

use rand::Rng;
use reqwest::Method;
use serde_json::Value;

use super::ProxmoxProvider;
use super::client::{Failure, failure, not_implemented};
use super::conf::{rule_for_group, segment, text};
use crate::ProviderError;

/// One entry of `GET /cluster/ha/resources`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HaResource {
    pub sid: String,
    /// The PVE 8 group option (absent on PVE 9).
    pub group: Option<String>,
}

/// One node-affinity rule of `GET /cluster/ha/rules`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rule {
    pub id: String,
    pub resources: Vec<String>,
    pub digest: Option<String>,
}

pub(crate) fn parse_resources(data: &Value) -> Vec<HaResource> {
    data.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(HaResource {
                sid: r.get("sid")?.as_str()?.to_string(),
                group: r.get("group").map(text).filter(|g| !g.is_empty()),
            })
        })
        .collect()
}

/// The node-affinity rules of a rules list (other types are not group membership).
pub(crate) fn parse_rules(data: &Value) -> Vec<Rule> {
    let mut rules: Vec<Rule> = data
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r.get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| t == "node-affinity")
        })
        .filter_map(|r| {
            Some(Rule {
                id: r.get("rule")?.as_str()?.to_string(),
                resources: r
                    .get("resources")
                    .map(text)
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                digest: r.get("digest").map(text).filter(|d| !d.is_empty()),
            })
        })
        .collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    rules
}

/// The HA group of every HA-managed guest: `sid → group`.
pub(crate) fn groups(
    resources: &[HaResource],
    rules: Option<&[Rule]>,
) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    if let Some(rules) = rules {
        for r in rules {
            for sid in &r.resources {
                out.entry(sid.clone())
                    .or_insert_with(|| super::conf::group_of_rule(&r.id).to_string());
            }
        }
    }
    for r in resources {
        if let Some(g) = &r.group {
            out.entry(r.sid.clone()).or_insert_with(|| g.clone());
        }
    }
    out
}

/// The next change that brings `sid` towards membership of `group`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum HaWrite {
    AddResource {
        sid: String,
        state: &'static str,
        /// PVE 8 only.
        group: Option<String>,
    },
    SetResourceGroup {
        sid: String,
        group: String,
    },
    RemoveResource {
        sid: String,
    },
    CreateRule {
        id: String,
        sid: String,
        group: String,
    },
    SetRuleResources {
        id: String,
        resources: Vec<String>,
        digest: Option<String>,
    },
    DeleteRule {
        id: String,
    },
}

/// Decide the next write (`None`: nothing left to do). `rules` is `None` on PVE 8.
pub(crate) fn next_write(
    sid: &str,
    group: Option<&str>,
    running: bool,
    resources: &[HaResource],
    rules: Option<&[Rule]>,
) -> Option<HaWrite> {
    let managed = resources.iter().find(|r| r.sid == sid);
    let Some(g) = group else {
        return managed.map(|_| HaWrite::RemoveResource { sid: sid.into() });
    };
    let Some(managed) = managed else {
        return Some(HaWrite::AddResource {
            sid: sid.into(),
            state: if running { "started" } else { "stopped" },
            group: rules.is_none().then(|| g.to_string()),
        });
    };
    let Some(rules) = rules else {
        return (managed.group.as_deref() != Some(g)).then(|| HaWrite::SetResourceGroup {
            sid: sid.into(),
            group: g.into(),
        });
    };
    let preferred = rule_for_group(g);
    let target = rules
        .iter()
        .find(|r| r.id == preferred)
        .or_else(|| rules.iter().find(|r| r.id == g));
    let target_id = target.map(|r| r.id.clone()).unwrap_or(preferred);
    if let Some(other) = rules
        .iter()
        .find(|r| r.id != target_id && r.resources.iter().any(|s| s == sid))
    {
        let rest: Vec<String> = other
            .resources
            .iter()
            .filter(|s| *s != sid)
            .cloned()
            .collect();
        return Some(if rest.is_empty() {
            // A rule needs at least one resource; PVE itself drops rules left empty.
            HaWrite::DeleteRule {
                id: other.id.clone(),
            }
        } else {
            HaWrite::SetRuleResources {
                id: other.id.clone(),
                resources: rest,
                digest: other.digest.clone(),
            }
        });
    }
    match target {
        Some(r) if r.resources.iter().any(|s| s == sid) => None,
        Some(r) => {
            let mut resources = r.resources.clone();
            resources.push(sid.to_string());
            resources.sort();
            Some(HaWrite::SetRuleResources {
                id: r.id.clone(),
                resources,
                digest: r.digest.clone(),
            })
        }
        None => Some(HaWrite::CreateRule {
            id: target_id,
            sid: sid.into(),
            group: g.into(),
        }),
    }
}

impl ProxmoxProvider {
    pub(super) async fn ha_resources(&self) -> Result<Vec<HaResource>, ProviderError> {
        Ok(parse_resources(
            &self.api.get("/cluster/ha/resources", &[]).await?,
        ))
    }

    /// Node-affinity rules, or `None` on a PVE without HA rules (before 9.0).
    pub(super) async fn ha_rules(&self) -> Result<Option<Vec<Rule>>, ProviderError> {
        match self
            .api
            .get(
                "/cluster/ha/rules",
                &[("type", "node-affinity".to_string())],
            )
            .await
        {
            Ok(v) => Ok(Some(parse_rules(&v))),
            Err(e) if not_implemented(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Make `vm:<vmid>` a member of HA group `group` (`None`: not HA-managed).
    pub(super) async fn converge_ha(
        &self,
        vmid: u32,
        group: Option<&str>,
        running: bool,
    ) -> Result<(), ProviderError> {
        let sid = format!("vm:{vmid}");
        let _serial = self.ha_lock.lock().await;
        let mut last: Option<ProviderError> = None;
        for _ in 0..10 {
            let (resources, rules) = tokio::join!(self.ha_resources(), self.ha_rules());
            let (resources, rules) = (resources?, rules?);
            let Some(write) = next_write(&sid, group, running, &resources, rules.as_deref()) else {
                return Ok(());
            };
            match self.ha_write(&write).await {
                Ok(()) => {}
                Err(e) if failure(&e) == Failure::Refused => return Err(e),
                Err(e) => {
                    // A digest conflict, or an ambiguous answer: read again and decide.
                    tracing::debug!("HA write {write:?} failed: {e}");
                    last = Some(e);
                    let ms = rand::rng().random_range(50..250);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            ProviderError::Api(format!("HA membership of {sid} did not settle"))
        }))
    }

    async fn ha_write(&self, w: &HaWrite) -> Result<(), ProviderError> {
        let no = Some(false);
        match w {
            HaWrite::AddResource { sid, state, group } => {
                let mut form = vec![("sid", sid.clone()), ("state", state.to_string())];
                if let Some(g) = group {
                    form.push(("group", g.clone()));
                }
                self.api.post("/cluster/ha/resources", &form).await?;
            }
            HaWrite::SetResourceGroup { sid, group } => {
                let path = format!("/cluster/ha/resources/{}", segment(sid));
                self.api
                    .call(Method::PUT, &path, &[], &[("group", group.clone())], no)
                    .await?;
            }
            HaWrite::RemoveResource { sid } => {
                let path = format!("/cluster/ha/resources/{}", segment(sid));
                self.api.call(Method::DELETE, &path, &[], &[], no).await?;
            }
            HaWrite::CreateRule { id, sid, group } => {
                let nodes = self.node_names().await?;
                let form = vec![
                    ("rule", id.clone()),
                    ("type", "node-affinity".to_string()),
                    ("nodes", nodes.join(",")),
                    ("resources", sid.clone()),
                    ("strict", "0".to_string()),
                    (
                        "comment",
                        format!("HA group {group}, created by strata ({})", self.owner_tag),
                    ),
                ];
                self.api.post("/cluster/ha/rules", &form).await?;
            }
            HaWrite::SetRuleResources {
                id,
                resources,
                digest,
            } => {
                let mut form = vec![
                    ("type", "node-affinity".to_string()),
                    ("resources", resources.join(",")),
                ];
                if let Some(d) = digest {
                    form.push(("digest", d.clone()));
                }
                let path = format!("/cluster/ha/rules/{}", segment(id));
                self.api.call(Method::PUT, &path, &[], &form, no).await?;
            }
            HaWrite::DeleteRule { id } => {
                let path = format!("/cluster/ha/rules/{}", segment(id));
                self.api.call(Method::DELETE, &path, &[], &[], no).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(id: &str, res: &[&str]) -> Rule {
        Rule {
            id: id.into(),
            resources: res.iter().map(|s| s.to_string()).collect(),
            digest: Some("d".into()),
        }
    }

    fn managed(sid: &str) -> HaResource {
        HaResource {
            sid: sid.into(),
            group: None,
        }
    }

    #[test]
    fn joining_a_group_adds_the_resource_then_the_rule() {
        let w = next_write("vm:100", Some("infra"), true, &[], Some(&[]));
        assert!(matches!(
            w,
            Some(HaWrite::AddResource {
                state: "started",
                group: None,
                ..
            })
        ));
        let res = [managed("vm:100")];
        let w = next_write("vm:100", Some("infra"), true, &res, Some(&[]));
        assert_eq!(
            w,
            Some(HaWrite::CreateRule {
                id: "ha-group-infra".into(),
                sid: "vm:100".into(),
                group: "infra".into()
            })
        );
        let rules = [rule("ha-group-infra", &["vm:101"])];
        let w = next_write("vm:100", Some("infra"), true, &res, Some(&rules));
        assert!(
            matches!(&w, Some(HaWrite::SetRuleResources { id, resources, .. }) if id == "ha-group-infra" && resources == &["vm:100", "vm:101"])
        );
        let rules = [rule("ha-group-infra", &["vm:100", "vm:101"])];
        assert_eq!(
            next_write("vm:100", Some("infra"), true, &res, Some(&rules)),
            None
        );
        // An operator's rule named like the group counts too.
        let rules = [rule("infra", &["vm:100"])];
        assert_eq!(
            next_write("vm:100", Some("infra"), true, &res, Some(&rules)),
            None
        );
    }

    #[test]
    fn moving_and_leaving_groups() {
        let res = [managed("vm:100")];
        let rules = [
            rule("ha-group-a", &["vm:100"]),
            rule("ha-group-b", &["vm:7"]),
        ];
        assert_eq!(
            next_write("vm:100", Some("b"), true, &res, Some(&rules)),
            Some(HaWrite::DeleteRule {
                id: "ha-group-a".into()
            })
        );
        let rules = [rule("ha-group-a", &["vm:100", "vm:9"])];
        assert!(matches!(
            next_write("vm:100", Some("b"), true, &res, Some(&rules)),
            Some(HaWrite::SetRuleResources { resources, .. }) if resources == ["vm:9"]
        ));
        assert_eq!(
            next_write("vm:100", None, true, &res, Some(&rules)),
            Some(HaWrite::RemoveResource {
                sid: "vm:100".into()
            })
        );
        assert_eq!(next_write("vm:100", None, true, &[], Some(&rules)), None);
    }

    #[test]
    fn pve8_uses_the_group_option() {
        let w = next_write("vm:100", Some("g"), false, &[], None);
        assert_eq!(
            w,
            Some(HaWrite::AddResource {
                sid: "vm:100".into(),
                state: "stopped",
                group: Some("g".into())
            })
        );
        let res = [HaResource {
            sid: "vm:100".into(),
            group: Some("h".into()),
        }];
        assert!(matches!(
            next_write("vm:100", Some("g"), false, &res, None),
            Some(HaWrite::SetResourceGroup { .. })
        ));
    }

    #[test]
    fn groups_come_from_rules_or_the_resource() {
        let resources = parse_resources(
            &json!([{"sid": "vm:1", "state": "started"}, {"sid": "vm:2", "group": "old"}]),
        );
        let rules = parse_rules(&json!([
            {"rule": "ha-group-infra", "type": "node-affinity", "resources": "vm:1,vm:3", "nodes": "pve1", "digest": "x"},
            {"rule": "apart", "type": "resource-affinity", "resources": "vm:1,vm:2", "affinity": "negative"}
        ]));
        assert_eq!(rules.len(), 1);
        let g = groups(&resources, Some(&rules));
        assert_eq!(g.get("vm:1").map(String::as_str), Some("infra"));
        assert_eq!(g.get("vm:2").map(String::as_str), Some("old"));
        assert_eq!(g.get("vm:3").map(String::as_str), Some("infra"));
    }
}
