//! High availability as Proxmox VE 9 expresses it: HA resources (`vm:<vmid>` under
//! `/cluster/ha/resources`: the VM's `ha` field) and HA rules (`/cluster/ha/rules`:
//! `ha-rule` resources). PVE 9 replaced HA groups with rules (`node-affinity`, and
//! `resource-affinity` to keep VMs together or apart) and a rule may only name
//! HA-managed resources, so a rule is created after its VMs joined HA (the plan orders
//! it after them).
//!
//! A rule is strata's when its `comment` carries `owner=<the fleet's ownership tag>`; other
//! rules are listed as unowned and never changed. Rules name VMs by `vm:<vmid>`;
//! strata's `vms` field names them by VM name, so observe maps ids to the names of
//! owned VMs (an id it cannot map stays `vm:<vmid>`, which shows as a difference) and
//! act maps names back through one `GET /cluster/resources?type=vm`.
//!
//! The rules file has one digest: every update carries the digest read just before,
//! so a concurrent writer (an operator, another strata run) is never overwritten
//! silently; a conflict is read again and retried. Writes from this process are
//! serialised. Proxmox VE 8 has no rules: `ha` still works there (a resource without
//! group), and a rule step fails saying the cluster is too old.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::Rng;
use reqwest::Method;
use serde_json::Value;
use strata_plan::{HaRuleFields, Kind, Resource, ResourceId, Step};

use super::ProxmoxProvider;
use super::client::{Failure, failure, not_implemented};
use super::conf::{segment, text};
use crate::{Outcome, ProviderError};

/// One entry of `GET /cluster/ha/resources`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HaResource {
    pub sid: String,
    /// PVE 9's `failback` (default true; pve-ha-manager `src/PVE/HA/Config.pm`
    /// `read_and_check_resources_config`). It replaced HA groups' `nofailback`
    /// (`src/PVE/HA/Groups.pm` migrates `nofailback` to `failback = !nofailback`).
    pub failback: bool,
}

/// One rule of `GET /cluster/ha/rules`, whatever its type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rule {
    pub id: String,
    pub kind: String,
    pub affinity: Option<String>,
    /// As listed (`node` or `node:priority`), sorted.
    pub nodes: Vec<String>,
    pub strict: bool,
    /// `vm:<vmid>` ids, sorted.
    pub resources: Vec<String>,
    pub comment: String,
    pub digest: Option<String>,
}

fn split(v: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = v
        .map(text)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    out.sort();
    out
}

fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::String(s)) => s == "1" || s == "true",
        _ => false,
    }
}

pub(crate) fn parse_resources(data: &Value) -> Vec<HaResource> {
    data.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(HaResource {
                sid: r.get("sid")?.as_str()?.to_string(),
                failback: r.get("failback").is_none_or(|f| flag(Some(f))),
            })
        })
        .collect()
}

pub(crate) fn parse_rules(data: &Value) -> Vec<Rule> {
    let mut rules: Vec<Rule> = data
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some(Rule {
                id: r.get("rule")?.as_str()?.to_string(),
                kind: r.get("type").map(text).unwrap_or_default(),
                affinity: r.get("affinity").map(text).filter(|a| !a.is_empty()),
                nodes: split(r.get("nodes")),
                strict: flag(r.get("strict")),
                resources: split(r.get("resources")),
                comment: r.get("comment").map(text).unwrap_or_default(),
                digest: r.get("digest").map(text).filter(|d| !d.is_empty()),
            })
        })
        .collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    rules
}

/// The ownership marker strata writes into the comment of the rules it creates.
pub(crate) fn owner_marker(owner: &str) -> String {
    format!("owner={owner}")
}

/// Whether a rule's comment carries strata's ownership marker for `owner` (a whole
/// word, so `owner=strata-a` is not `owner=strata-ab`).
pub(crate) fn owned_by(comment: &str, owner: &str) -> bool {
    let marker = owner_marker(owner);
    comment
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',' || c == '(' || c == ')')
        .any(|w| w == marker)
}

/// The `ha-rule` resource of a rule; `names` maps `vm:<vmid>` to VM names,
/// `failback` to the `failback` flag of the HA resources. A node-affinity rule's
/// `failback` is false when any of its resources has it off.
pub(crate) fn rule_resource(
    dc: &str,
    rule: &Rule,
    names: &HashMap<String, String>,
    failback: &HashMap<String, bool>,
) -> Resource {
    let mut vms: Vec<String> = rule
        .resources
        .iter()
        .map(|sid| names.get(sid).cloned().unwrap_or_else(|| sid.clone()))
        .collect();
    vms.sort();
    let node_affinity = rule.kind == "node-affinity";
    let mut r = Resource::with_fields(
        ResourceId::new(dc, Kind::HaRule, rule.id.clone()),
        &HaRuleFields {
            kind: rule.kind.clone(),
            affinity: rule.affinity.clone().filter(|_| !node_affinity),
            nodes: rule.nodes.clone(),
            strict: rule.strict,
            failback: !node_affinity
                || rule
                    .resources
                    .iter()
                    .all(|sid| failback.get(sid).copied().unwrap_or(true)),
            vms,
        },
    );
    r.owned = true;
    r.external_id = Some(rule.id.clone());
    r
}

/// A rule as the desired state says it must be.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DesiredRule {
    pub kind: String,
    pub affinity: Option<String>,
    pub nodes: Vec<String>,
    pub strict: bool,
    pub failback: bool,
    pub vms: Vec<String>,
}

impl DesiredRule {
    pub(crate) fn from_resource(r: &Resource) -> Result<DesiredRule, ProviderError> {
        let f: HaRuleFields = r.fields_as()?;
        let bad =
            |k: &str, why: &str| ProviderError::Refused(format!("{}: field `{k}` {why}", r.id));
        if f.kind != "node-affinity" && f.kind != "resource-affinity" {
            return Err(bad(
                "type",
                "must be `node-affinity` or `resource-affinity`",
            ));
        }
        if f.kind == "resource-affinity"
            && !matches!(f.affinity.as_deref(), Some("positive" | "negative"))
        {
            return Err(bad(
                "affinity",
                "must be `positive` or `negative` on a resource-affinity rule",
            ));
        }
        if f.kind == "node-affinity" && f.nodes.is_empty() {
            return Err(bad(
                "nodes",
                "must name at least one node on a node-affinity rule",
            ));
        }
        if f.vms.is_empty() {
            return Err(bad("vms", "must name at least one VM"));
        }
        let failback = f.failback || f.kind != "node-affinity";
        Ok(DesiredRule {
            kind: f.kind,
            affinity: f.affinity,
            nodes: f.nodes,
            strict: f.strict,
            failback,
            vms: f.vms,
        })
    }

    /// The form of a create or update: the rule's options, with VMs as `vm:<vmid>`.
    fn form(&self, sids: &[String], comment: Option<String>) -> Vec<(&'static str, String)> {
        let mut form = vec![("type", self.kind.clone()), ("resources", sids.join(","))];
        if self.kind == "node-affinity" {
            form.push(("nodes", self.nodes.join(",")));
            form.push(("strict", if self.strict { "1" } else { "0" }.to_string()));
        } else if let Some(a) = &self.affinity {
            form.push(("affinity", a.clone()));
        }
        if let Some(c) = comment {
            form.push(("comment", c));
        }
        form
    }
}

impl ProxmoxProvider {
    pub(super) async fn ha_resources(&self) -> Result<Vec<HaResource>, ProviderError> {
        Ok(parse_resources(
            &self.api.get("/cluster/ha/resources", &[]).await?,
        ))
    }

    /// Every HA rule, or `None` on a Proxmox VE without HA rules (before 9.0).
    pub(super) async fn ha_rules(&self) -> Result<Option<Vec<Rule>>, ProviderError> {
        match self.api.get("/cluster/ha/rules", &[]).await {
            Ok(v) => Ok(Some(parse_rules(&v))),
            Err(e) if not_implemented(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Make `vm:<vmid>` HA-managed (`ha`) or not. Leaving HA also takes the VM out of
    /// every rule (Proxmox does that itself when the resource is deleted).
    pub(super) async fn converge_ha(
        &self,
        vmid: u32,
        ha: bool,
        running: bool,
    ) -> Result<(), ProviderError> {
        let sid = format!("vm:{vmid}");
        let _serial = self.ha_lock.lock().await;
        let managed = self.ha_resources().await?.iter().any(|r| r.sid == sid);
        match (ha, managed) {
            (true, false) => {
                let state = if running { "started" } else { "stopped" };
                let form = [("sid", sid.clone()), ("state", state.to_string())];
                self.api.post("/cluster/ha/resources", &form).await?;
            }
            (false, true) => {
                let path = format!("/cluster/ha/resources/{}", segment(&sid));
                self.api
                    .call(Method::DELETE, &path, &[], &[], Some(false))
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Set `failback` on the HA resources `sids` where it differs (PVE 9 keeps the
    /// flag on the resource, not on the rule).
    async fn set_failback(&self, sids: &[String], failback: bool) -> Result<(), ProviderError> {
        let have = self.ha_resources().await?;
        for sid in sids {
            let Some(r) = have.iter().find(|r| &r.sid == sid) else {
                continue;
            };
            if r.failback == failback {
                continue;
            }
            let path = format!("/cluster/ha/resources/{}", segment(sid));
            let form = [("failback", if failback { "1" } else { "0" }.to_string())];
            self.api
                .call(Method::PUT, &path, &[], &form, Some(true))
                .await?;
        }
        Ok(())
    }

    /// `vm:<vmid>` of each owned VM named in `vms`, in order; a missing VM is an error
    /// (the plan orders rules after their VMs, so it was deleted meanwhile).
    async fn sids_of(&self, step: &Step, vms: &[String]) -> Result<Vec<String>, ProviderError> {
        let guests = self.guests().await?;
        let by_name: BTreeMap<&str, u32> = guests
            .iter()
            .filter(|g| g.owned_by(&self.owner_tag))
            .map(|g| (g.name.as_str(), g.vmid))
            .collect();
        let mut sids = Vec::with_capacity(vms.len());
        for v in vms {
            match by_name.get(v.as_str()) {
                Some(id) => sids.push(format!("vm:{id}")),
                None => {
                    return Err(ProviderError::Api(format!(
                        "{}: VM `{v}` does not exist (or is not strata's); plan again",
                        step.id
                    )));
                }
            }
        }
        sids.sort();
        Ok(sids)
    }

    /// Create, update or delete an `ha-rule`.
    pub(super) async fn act_rule(&self, step: &Step) -> Result<Outcome, ProviderError> {
        use strata_plan::Action;
        let id = step.id.name.clone();
        let path = format!("/cluster/ha/rules/{}", segment(&id));
        let _serial = self.ha_lock.lock().await;
        let mut last: Option<ProviderError> = None;
        for _ in 0..5 {
            let Some(rules) = self.ha_rules().await? else {
                return Err(ProviderError::Refused(format!(
                    "{}: this cluster has no HA rules (Proxmox VE before 9.0); upgrade it or remove the rule from the spec",
                    step.id
                )));
            };
            let current = rules.iter().find(|r| r.id == id);
            if let Some(r) = current
                && !owned_by(&r.comment, &self.owner_tag)
            {
                return Err(ProviderError::Refused(format!(
                    "{}: HA rule `{id}` exists and is not strata's (its comment lacks `{}`); rename the rule in the spec or hand it over by adding that to its comment",
                    step.id,
                    owner_marker(&self.owner_tag)
                )));
            }
            let result = match (step.action, current) {
                (Action::Delete, None) => {
                    return Ok(Outcome {
                        external_id: Some(id),
                        note: "already gone".into(),
                    });
                }
                (Action::Delete, Some(_)) => {
                    // `DELETE /cluster/ha/rules/{rule}` takes no digest (the PVE 9.1
                    // schema lists only `rule`); ownership was checked just above.
                    self.api
                        .call(Method::DELETE, &path, &[], &[], Some(false))
                        .await
                }
                (Action::Adopt, _) => {
                    return Err(ProviderError::Refused(format!(
                        "{}: strata does not take over HA rules it did not create",
                        step.id
                    )));
                }
                (Action::Create | Action::Update, current) => {
                    let want =
                        DesiredRule::from_resource(step.desired.as_ref().ok_or_else(|| {
                            ProviderError::Refused(format!("{}: needs the desired state", step.id))
                        })?)?;
                    let sids = self.sids_of(step, &want.vms).await?;
                    match current {
                        None => {
                            let mut form = want.form(
                                &sids,
                                Some(format!(
                                    "managed by strata; {}",
                                    owner_marker(&self.owner_tag)
                                )),
                            );
                            form.insert(0, ("rule", id.clone()));
                            self.api
                                .post("/cluster/ha/rules", &form)
                                .await
                                .map(|_| Value::Null)
                        }
                        Some(r) if r.kind != want.kind => {
                            // A rule's type cannot change: delete it, then create it
                            // anew on the next pass.
                            self.api
                                .call(Method::DELETE, &path, &[], &[], Some(false))
                                .await?;
                            continue;
                        }
                        Some(r) => {
                            let mut form = want.form(&sids, None);
                            if let Some(d) = &r.digest {
                                form.push(("digest", d.clone()));
                            }
                            self.api
                                .call(Method::PUT, &path, &[], &form, Some(false))
                                .await
                        }
                    }
                }
            };
            match result {
                Ok(_) => {
                    if let Some(d) = &step.desired
                        && step.action != Action::Delete
                        && let Ok(want) = DesiredRule::from_resource(d)
                        && want.kind == "node-affinity"
                    {
                        let sids = self.sids_of(step, &want.vms).await?;
                        self.set_failback(&sids, want.failback).await?;
                    }
                    return Ok(Outcome {
                        external_id: Some(id),
                        note: match step.action {
                            Action::Create => "created HA rule",
                            Action::Delete => "deleted HA rule",
                            _ => "updated HA rule",
                        }
                        .into(),
                    });
                }
                Err(e) if failure(&e) == Failure::Refused => return Err(e),
                Err(e) => {
                    // A digest conflict, a type change, or an ambiguous answer: read
                    // again and decide.
                    tracing::debug!("HA rule write for {} failed: {e}", step.id);
                    last = Some(e);
                    let ms = rand::rng().random_range(50..250);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        }
        Err(last
            .unwrap_or_else(|| ProviderError::Api(format!("{}: HA rule did not settle", step.id))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_parse_whatever_their_type() {
        let rules = parse_rules(&json!([
            {"rule": "pin", "type": "node-affinity", "resources": "vm:3,vm:1", "nodes": "pve2,pve1:2", "strict": 1, "comment": "managed by strata; owner=strata-x", "digest": "d"},
            {"rule": "apart", "type": "resource-affinity", "resources": "vm:1,vm:2", "affinity": "negative"}
        ]));
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].id, "apart");
        assert_eq!(rules[0].affinity.as_deref(), Some("negative"));
        assert!(!owned_by(&rules[0].comment, "strata-x"));
        assert_eq!(rules[1].nodes, ["pve1:2", "pve2"]);
        assert_eq!(rules[1].resources, ["vm:1", "vm:3"]);
        assert!(rules[1].strict);
        assert!(owned_by(&rules[1].comment, "strata-x"));
        assert!(!owned_by(&rules[1].comment, "strata"));
        assert!(!owned_by("managed by strata; owner=strata-xy", "strata-x"));
        let names = HashMap::from([("vm:1".to_string(), "web1".to_string())]);
        let r = rule_resource("fra1", &rules[1], &names, &HashMap::new());
        assert_eq!(r.fields["vms"], json!(["vm:3", "web1"]));
        assert_eq!(r.fields["affinity"], Value::Null);
    }

    #[test]
    fn a_desired_rule_is_checked_before_any_call() {
        let r = |fields: Value| {
            let mut r = Resource::new(ResourceId::new("fra1", Kind::HaRule, "x"));
            for (k, v) in fields.as_object().expect("object") {
                r = r.field(k, v.clone());
            }
            DesiredRule::from_resource(&r)
        };
        let ok = r(json!({"type": "resource-affinity", "affinity": "negative", "vms": ["a", "b"], "nodes": [], "strict": false}))
            .expect("valid");
        assert_eq!(
            ok.form(&["vm:1".into(), "vm:2".into()], None),
            [
                ("type", "resource-affinity".to_string()),
                ("resources", "vm:1,vm:2".into()),
                ("affinity", "negative".into())
            ]
        );
        let base = json!({"affinity": null, "nodes": [], "strict": false, "vms": ["a", "b"]});
        let with = |extra: Value| {
            let mut v = base.clone();
            for (k, x) in extra.as_object().expect("object") {
                v[k] = x.clone();
            }
            r(v)
        };
        assert!(with(json!({"type": "resource-affinity"})).is_err());
        assert!(with(json!({"type": "node-affinity", "vms": ["a"]})).is_err());
        assert!(with(json!({"type": "group"})).is_err());
        assert!(
            r(json!({"type": "node-affinity", "vms": ["a"]})).is_err(),
            "missing fields"
        );
        let pin =
            r(json!({"type": "node-affinity", "vms": ["a"], "nodes": ["pve1"], "strict": true}))
                .expect("valid");
        assert!(
            pin.form(&["vm:1".into()], Some("c".into()))
                .contains(&("strict", "1".into()))
        );
    }
}
