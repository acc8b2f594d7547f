//! A saved plan: the reviewable artefact `strata plan --out FILE` writes and
//! `strata apply FILE` carries out (OpenTofu's saved-plan shape).
//!
//! It holds the desired state the plan was made from (secret *references* only), the
//! scopes that were observed, and the plan itself with every sensitive value replaced
//! by a digest, so the file can be reviewed, stored and attached to an approval. Its
//! [`SavedPlan::digest`] covers all of that: an approval binds to it, and a file that
//! was edited after it was written is refused.
//!
//! Applying re-observes and re-plans from the saved desired state; the saved plan is
//! carried out only when that gives exactly the same steps ([`SavedPlan::check_current`]):
//! same resources, actions and field changes (old and new values). Anything else means
//! the world (or the desired state) changed since the plan was reviewed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diff::{Plan, Step};
use crate::model::{Platform, Resource, ResourceSet};

/// The file format's name and version.
pub const FORMAT: &str = "strata-plan/1";

/// A plan as written to disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    /// The fleet's id (`organisation.fleet_id`): a plan applies to one fleet only.
    pub fleet_id: String,
    /// The strata version that wrote it.
    pub strata_version: String,
    /// The spec directory it was made from (absolute): `file:` secret references and
    /// the default state directory are relative to it.
    pub spec_dir: String,
    /// The desired state the plan was made from.
    pub desired: ResourceSet,
    /// The (DC, platform) pairs that were observed.
    pub scopes: Vec<(String, Platform)>,
    /// The plan, sensitive values redacted.
    pub plan: Plan,
    /// SHA-256 (hex) over everything above, in canonical JSON.
    pub digest: String,
}

/// Why a saved plan file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("not a strata plan file: {0}")]
    Parse(String),
    #[error("plan format `{found}` is not supported (this strata reads `{FORMAT}`)")]
    Format { found: String },
    #[error(
        "the plan file was changed after it was written (digest {found} does not match its content, {computed}); make a new plan with `strata plan --out`"
    )]
    Tampered { found: String, computed: String },
}

/// How the current plan differs from a saved one: the saved plan is stale.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Staleness {
    /// Steps the saved plan has that planning now does not (already done, or no longer wanted).
    pub gone: Vec<String>,
    /// Steps planning now gives that the saved plan does not have.
    pub new: Vec<String>,
    /// Steps on the same resource whose action or field changes differ.
    pub changed: Vec<String>,
    /// Conflicts with unowned objects that appeared since.
    pub conflicts: Vec<String>,
}

impl Staleness {
    pub fn is_empty(&self) -> bool {
        self.gone.is_empty()
            && self.new.is_empty()
            && self.changed.is_empty()
            && self.conflicts.is_empty()
    }
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (what, list) in [
            ("no longer planned", &self.gone),
            ("newly planned", &self.new),
            ("planned differently", &self.changed),
            ("now conflicting with unowned objects", &self.conflicts),
        ] {
            if !list.is_empty() {
                let shown: Vec<&str> = list.iter().take(5).map(String::as_str).collect();
                let more = list.len().saturating_sub(shown.len());
                let tail = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                parts.push(format!("{what}: {}{tail}", shown.join(", ")));
            }
        }
        f.write_str(&parts.join("; "))
    }
}

impl SavedPlan {
    /// A saved plan of `plan`, made from `desired` over `scopes`.
    pub fn new(
        fleet_id: &str,
        strata_version: &str,
        spec_dir: &str,
        desired: &ResourceSet,
        scopes: &[(String, Platform)],
        plan: &Plan,
    ) -> SavedPlan {
        let mut scopes = scopes.to_vec();
        scopes.sort();
        let mut saved = SavedPlan {
            format: FORMAT.into(),
            fleet_id: fleet_id.into(),
            strata_version: strata_version.into(),
            spec_dir: spec_dir.into(),
            desired: desired.clone(),
            scopes,
            plan: redact_plan(plan),
            digest: String::new(),
        };
        saved.digest = saved.compute_digest();
        saved
    }

    /// The DCs the plan concerns: those of its desired state and those it observed.
    pub fn dcs(&self) -> Vec<String> {
        let mut dcs: Vec<String> = self.desired.iter().map(|r| r.id.dc.clone()).collect();
        dcs.extend(self.scopes.iter().map(|(dc, _)| dc.clone()));
        dcs.sort();
        dcs.dedup();
        dcs
    }

    /// The file's text (pretty JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Read a plan file, checking its format and digest.
    pub fn from_json(text: &str) -> Result<SavedPlan, SavedPlanError> {
        let head: Value =
            serde_json::from_str(text).map_err(|e| SavedPlanError::Parse(e.to_string()))?;
        let found = head
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("(none)")
            .to_string();
        if found != FORMAT {
            return Err(SavedPlanError::Format { found });
        }
        let saved: SavedPlan =
            serde_json::from_value(head).map_err(|e| SavedPlanError::Parse(e.to_string()))?;
        let computed = saved.compute_digest();
        if computed != saved.digest {
            return Err(SavedPlanError::Tampered {
                found: saved.digest,
                computed,
            });
        }
        Ok(saved)
    }

    fn compute_digest(&self) -> String {
        let body = serde_json::json!({
            "format": self.format,
            "fleet_id": self.fleet_id,
            "strata_version": self.strata_version,
            "spec_dir": self.spec_dir,
            "desired": self.desired,
            "scopes": self.scopes,
            "plan": self.plan,
        });
        let mut h = Sha256::new();
        h.update(serde_json::to_string(&body).unwrap_or_default().as_bytes());
        hex::encode(h.finalize())
    }

    /// Whether `now` (planned just now from the same desired state) is exactly this
    /// plan. Sensitive values are compared by digest.
    pub fn check_current(&self, now: &Plan) -> Result<(), Staleness> {
        let now = redact_plan(now);
        let saved: BTreeMap<String, &Step> =
            self.plan.steps.iter().map(|s| (step_key(s), s)).collect();
        let current: BTreeMap<String, &Step> = now.steps.iter().map(|s| (step_key(s), s)).collect();
        let mut st = Staleness::default();
        for (k, s) in &saved {
            match current.get(k) {
                None => st.gone.push(format!("{} {}", s.action.symbol(), s.id)),
                Some(c) if fingerprint(c) != fingerprint(s) => {
                    st.changed.push(format!("{} {}", s.action.symbol(), s.id));
                }
                Some(_) => {}
            }
        }
        for (k, c) in &current {
            if !saved.contains_key(k) {
                st.new.push(format!("{} {}", c.action.symbol(), c.id));
            }
        }
        for c in &now.conflicts {
            if !self.plan.conflicts.iter().any(|s| s.id == c.id) {
                st.conflicts.push(c.id.to_string());
            }
        }
        if st.is_empty() { Ok(()) } else { Err(st) }
    }
}

/// Steps are matched by resource (one step per resource and action kind).
fn step_key(s: &Step) -> String {
    s.id.to_string()
}

/// What must be equal for two steps to be the same step.
fn fingerprint(s: &Step) -> Value {
    serde_json::json!({
        "action": s.action,
        "changes": s.changes,
        "depends_on": s.depends_on,
    })
}

/// A sensitive value as it appears in a saved plan: its digest, never the value.
fn redacted(v: &Value) -> Value {
    let mut h = Sha256::new();
    h.update(serde_json::to_string(v).unwrap_or_default().as_bytes());
    Value::String(format!(
        "(sensitive sha256:{})",
        &hex::encode(h.finalize())[..16]
    ))
}

fn redact_resource(r: &Resource) -> Resource {
    let mut r = r.clone();
    for k in r.sensitive.clone() {
        if let Some(v) = r.fields.get_mut(&k) {
            *v = redacted(v);
        }
        if let Some(v) = r.spec.get_mut(&k) {
            *v = redacted(v);
        }
    }
    r
}

fn redact_plan(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    for s in &mut plan.steps {
        for c in &mut s.changes {
            if c.sensitive {
                c.old = c.old.as_ref().map(redacted);
                c.new = c.new.as_ref().map(redacted);
            }
        }
        s.desired = s.desired.as_ref().map(redact_resource);
        s.observed = s.observed.as_ref().map(redact_resource);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff;
    use crate::model::{Kind, Observed, ResourceId};

    fn vm(name: &str, memory: u64) -> Resource {
        Resource::new(ResourceId::new("fra1", Kind::Vm, name)).field("memory", memory)
    }

    fn machine_with_secret(secret: &str) -> Resource {
        let mut r = Resource::new(ResourceId::new("fra1", Kind::Machine, "m1"))
            .field("hostname", "m1")
            .spec("power_pass", secret);
        r.sensitive.insert("power_pass".into());
        r
    }

    fn set(rs: Vec<Resource>) -> ResourceSet {
        let mut s = ResourceSet::default();
        for r in rs {
            s.insert(r);
        }
        s
    }

    fn scopes() -> Vec<(String, Platform)> {
        vec![
            ("fra1".into(), Platform::Proxmox),
            ("fra1".into(), Platform::Maas),
        ]
    }

    fn observed(rs: Vec<Resource>) -> Observed {
        Observed {
            resources: set(rs),
            unowned: vec![],
        }
    }

    #[test]
    fn round_trips_and_matches_the_same_plan() {
        let desired = set(vec![vm("a", 2048), vm("b", 4096)]);
        let plan = diff(&desired, &observed(vec![vm("a", 1024)]), &scopes());
        let saved = SavedPlan::new("acme", "0.1.0", "/srv/fleet", &desired, &scopes(), &plan);
        let back = SavedPlan::from_json(&saved.to_json()).expect("reads back");
        assert_eq!(back, saved);
        back.check_current(&plan).expect("same plan");
    }

    #[test]
    fn a_changed_world_makes_it_stale_and_says_how() {
        let desired = set(vec![vm("a", 2048), vm("b", 4096)]);
        let plan = diff(&desired, &observed(vec![vm("a", 1024)]), &scopes());
        let saved = SavedPlan::new("acme", "0.1.0", "/srv/fleet", &desired, &scopes(), &plan);
        // Someone changed a's memory and created b behind our back.
        let now = diff(
            &desired,
            &observed(vec![vm("a", 512), vm("b", 4096)]),
            &scopes(),
        );
        let st = saved.check_current(&now).expect_err("stale");
        assert_eq!(st.changed, vec!["~ fra1/vm/a"]);
        assert_eq!(st.gone, vec!["+ fra1/vm/b"]);
        assert!(st.new.is_empty());
        assert!(st.to_string().contains("planned differently: ~ fra1/vm/a"));
    }

    #[test]
    fn an_edited_file_is_refused() {
        let desired = set(vec![vm("a", 2048)]);
        let plan = diff(&desired, &observed(vec![]), &scopes());
        let saved = SavedPlan::new("acme", "0.1.0", "/srv/fleet", &desired, &scopes(), &plan);
        let edited = saved.to_json().replace("2048", "4096");
        assert!(matches!(
            SavedPlan::from_json(&edited),
            Err(SavedPlanError::Tampered { .. })
        ));
        let other = saved.to_json().replace(FORMAT, "strata-plan/99");
        assert!(matches!(
            SavedPlan::from_json(&other),
            Err(SavedPlanError::Format { .. })
        ));
        assert!(matches!(
            SavedPlan::from_json("not json"),
            Err(SavedPlanError::Parse(_))
        ));
    }

    #[test]
    fn sensitive_values_never_reach_the_file() {
        let desired = set(vec![machine_with_secret("env:BMC_PASSWORD")]);
        let mut seen = machine_with_secret("hunter2-real-value");
        seen.fields.insert("hostname".into(), "old".into());
        let plan = diff(&desired, &observed(vec![seen]), &scopes());
        let saved = SavedPlan::new("acme", "0.1.0", "/srv/fleet", &desired, &scopes(), &plan);
        let text = saved.to_json();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("(sensitive sha256:"));
        // The unredacted plan still matches the saved one.
        saved.check_current(&plan).expect("same plan");
    }
}
