//! Drift: what changed outside strata on the objects it owns.
//!
//! The baseline of each owned object is what strata last applied to it (the apply
//! journal's record, passed in as plain data), or its desired fields when there is no
//! record. A field whose observed value differs from the baseline has drifted; an
//! object strata applied that is no longer observed (in a scope that was observed) is
//! missing. Pure: the caller reads the journal and observes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::model::{Observed, Platform, ResourceId, ResourceSet};

/// One drifted field of one owned object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftedField {
    pub resource: String,
    pub external_id: Option<String>,
    pub field: String,
    /// What strata set (absent: strata set no value).
    pub expected: Option<Value>,
    /// What the platform holds now (absent: the field is gone).
    pub actual: Option<Value>,
}

/// Everything that drifted.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Drift {
    pub changed: Vec<DriftedField>,
    /// Objects strata applied that were deleted outside strata.
    pub missing: Vec<String>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty()
    }
}

/// Compare what is observed with what strata last applied (`applied`: resource id →
/// the fields it wrote) or, without a record, with `desired`.
pub fn drift(
    observed: &Observed,
    scopes: &[(String, Platform)],
    applied: &BTreeMap<String, Value>,
    desired: &ResourceSet,
) -> Drift {
    let mut out = Drift::default();
    for o in observed.resources.iter().filter(|o| o.owned) {
        let key = o.id.to_string();
        let expected: BTreeMap<String, Value> = match applied.get(&key) {
            Some(Value::Object(m)) => m.clone().into_iter().collect(),
            _ => match desired.get(&o.id) {
                Some(d) => d.fields.clone(),
                None => continue,
            },
        };
        for (field, want) in expected {
            let have = o.fields.get(&field);
            // A map of paths drifts per path (`storage.md0.level`).
            if let (true, Value::Object(w), Some(Value::Object(h))) = (
                crate::diff::PATH_FIELDS.contains(&field.as_str()),
                &want,
                have,
            ) {
                let paths: std::collections::BTreeSet<&String> = w.keys().chain(h.keys()).collect();
                for path in paths {
                    if w.get(path) != h.get(path) {
                        out.changed.push(DriftedField {
                            resource: key.clone(),
                            external_id: o.external_id.clone(),
                            field: format!("{field}.{path}"),
                            expected: w.get(path).cloned(),
                            actual: h.get(path).cloned(),
                        });
                    }
                }
                continue;
            }
            if have != Some(&want) {
                out.changed.push(DriftedField {
                    resource: key.clone(),
                    external_id: o.external_id.clone(),
                    field,
                    expected: Some(want),
                    actual: have.cloned(),
                });
            }
        }
    }
    for key in applied.keys() {
        let Ok(id) = key.parse::<ResourceId>() else {
            continue;
        };
        let in_scope = scopes
            .iter()
            .any(|(dc, p)| *dc == id.dc && *p == id.platform());
        let present = observed.resources.get(&id).is_some_and(|o| o.owned);
        if in_scope && !present {
            out.missing.push(key.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{Kind, Resource};

    fn vm(memory: u64) -> Resource {
        Resource::new(ResourceId::new("fra1", Kind::Vm, "app1")).field("memory", memory)
    }

    fn observed(rs: Vec<Resource>) -> Observed {
        let mut o = Observed::default();
        for r in rs {
            o.resources.insert(r);
        }
        o
    }

    fn scopes() -> Vec<(String, Platform)> {
        vec![("fra1".into(), Platform::Proxmox)]
    }

    #[test]
    fn a_field_changed_behind_strata_is_drift_against_what_it_applied() {
        let applied = BTreeMap::from([("fra1/vm/app1".to_string(), json!({"memory": 2048}))]);
        let d = drift(
            &observed(vec![vm(4096)]),
            &scopes(),
            &applied,
            &ResourceSet::default(),
        );
        assert_eq!(d.changed.len(), 1);
        assert_eq!(d.changed[0].field, "memory");
        assert_eq!(d.changed[0].expected, Some(json!(2048)));
        assert_eq!(d.changed[0].actual, Some(json!(4096)));
        assert!(d.missing.is_empty());
    }

    #[test]
    fn a_map_of_paths_drifts_per_path() {
        let m = |level: &str| {
            Resource::new(ResourceId::new("fra1", Kind::Machine, "S1"))
                .field("storage", json!({"md0.level": level, "md0.mount": "/"}))
        };
        let mut desired = ResourceSet::default();
        desired.insert(m("raid-1"));
        let scopes = vec![("fra1".to_string(), Platform::Maas)];
        let d = drift(
            &observed(vec![m("raid-0")]),
            &scopes,
            &BTreeMap::new(),
            &desired,
        );
        assert_eq!(d.changed.len(), 1, "{d:?}");
        assert_eq!(d.changed[0].field, "storage.md0.level");
        assert_eq!(d.changed[0].expected, Some(json!("raid-1")));
        assert_eq!(d.changed[0].actual, Some(json!("raid-0")));
    }

    #[test]
    fn without_a_record_the_desired_fields_are_the_baseline() {
        let mut desired = ResourceSet::default();
        desired.insert(vm(2048));
        let d = drift(
            &observed(vec![vm(2048)]),
            &scopes(),
            &BTreeMap::new(),
            &desired,
        );
        assert!(d.is_empty());
    }

    #[test]
    fn deleted_objects_are_missing_only_where_observed() {
        let applied = BTreeMap::from([
            ("fra1/vm/app1".to_string(), json!({"memory": 2048})),
            ("ams1/vm/app2".to_string(), json!({"memory": 2048})),
            ("not an id".to_string(), json!({})),
        ]);
        let d = drift(
            &observed(vec![]),
            &scopes(),
            &applied,
            &ResourceSet::default(),
        );
        assert_eq!(d.missing, vec!["fra1/vm/app1"]);
        // Unowned namesakes do not count as present.
        let mut theirs = vm(2048);
        theirs.owned = false;
        let d = drift(
            &observed(vec![theirs]),
            &scopes(),
            &applied,
            &ResourceSet::default(),
        );
        assert_eq!(d.missing, vec!["fra1/vm/app1"]);
    }
}
