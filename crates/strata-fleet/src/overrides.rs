//! Site overrides: the blueprint with one DC's declared differences applied.
//!
//! An override names a blueprint path such as `fabric.spines`,
//! `proxmox.clusters[infra].nodes` or `maas.rack_controllers[0].dhcp` and gives the
//! DC's value. The blueprint is edited as span-carrying JSON and read back into the
//! typed [`Blueprint`], so an overridden value keeps pointing at the override that
//! set it and a value of the wrong type is reported where the user wrote it.

use serde_json::Value;
use strata_diagnostics::{Diagnostic, codes, did_you_mean};
use strata_spec::located::{AT, VALUE, located_json, unwrap_located_json};
use strata_spec::{Blueprint, Located, Override, from_spanned_json, to_spanned_json};

use crate::model::AppliedOverride;

/// The effective blueprint of one DC.
pub struct Effective {
    pub blueprint: Blueprint,
    pub applied: Vec<AppliedOverride>,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
    Named(&'a str),
}

fn parse_path(path: &str) -> Result<Vec<Step<'_>>, String> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() {
            return Err(format!(
                "empty segment in `{path}`; write e.g. `fabric.spines` or `proxmox.clusters[infra].nodes`"
            ));
        }
        steps.push(Step::Key(key));
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("unclosed `[` in `{path}`"))?;
            let sel = &rest[1..close];
            if sel.is_empty() {
                return Err(format!("empty selector `[]` in `{path}`"));
            }
            steps.push(match sel.parse::<usize>() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Named(sel),
            });
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("unexpected `{rest}` after `]` in `{path}`"));
            }
        }
    }
    Ok(steps)
}

/// Strip `$at` wrappers: the value as the user would write it.
pub fn plain(v: &Value) -> Value {
    if let Some(inner) = unwrap_located_json(v) {
        return plain(inner);
    }
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), plain(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(plain).collect()),
        other => other.clone(),
    }
}

fn deref_mut(v: &mut Value) -> &mut Value {
    // A wrapper's inner value (one level; wrappers never nest directly).
    let wrapped = matches!(&*v, Value::Object(m) if m.len() == 2 && m.contains_key(AT) && m.contains_key(VALUE));
    if !wrapped {
        return v;
    }
    match v {
        Value::Object(m) => &mut m[VALUE],
        other => other,
    }
}

fn item_name(v: &Value) -> Option<String> {
    let v = unwrap_located_json(v).unwrap_or(v);
    let n = v.get("name")?;
    let n = unwrap_located_json(n).unwrap_or(n);
    n.as_str().map(str::to_string)
}

/// Walk `root` along `steps`, returning the target slot.
fn walk<'v>(
    root: &'v mut Value,
    steps: &[Step<'_>],
    path: &str,
) -> Result<&'v mut Value, Box<Diagnostic>> {
    let mut cur = root;
    let mut walked = String::new();
    for step in steps {
        let here = deref_mut(cur);
        cur = match step {
            Step::Key(k) => {
                let Value::Object(map) = here else {
                    return Err(bad_path(path, format!("`{walked}` has no fields"), None));
                };
                if !map.contains_key(*k) {
                    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                    let hint = did_you_mean(k, keys.iter().copied()).map(str::to_string);
                    let expected = format!(
                        "one of {}",
                        keys.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    return Err(bad_path(
                        path,
                        format!(
                            "`{}` has no field `{k}`",
                            if walked.is_empty() {
                                "blueprint"
                            } else {
                                &walked
                            }
                        ),
                        hint,
                    )
                    .map_expected(expected));
                }
                if !walked.is_empty() {
                    walked.push('.');
                }
                walked.push_str(k);
                map.get_mut(*k)
                    .ok_or_else(|| bad_path(path, "unreachable".into(), None))?
            }
            Step::Index(i) => {
                let Value::Array(items) = here else {
                    return Err(bad_path(path, format!("`{walked}` is not a list"), None));
                };
                let n = items.len();
                walked.push_str(&format!("[{i}]"));
                items.get_mut(*i).ok_or_else(|| {
                    bad_path(
                        path,
                        format!("index {i} is out of range; the list has {n} items"),
                        None,
                    )
                })?
            }
            Step::Named(name) => {
                let Value::Array(items) = here else {
                    return Err(bad_path(path, format!("`{walked}` is not a list"), None));
                };
                let names: Vec<String> = items.iter().filter_map(item_name).collect();
                let Some(pos) = items
                    .iter()
                    .position(|it| item_name(it).as_deref() == Some(*name))
                else {
                    let hint =
                        did_you_mean(name, names.iter().map(String::as_str)).map(str::to_string);
                    return Err(bad_path(
                        path,
                        format!("`{walked}` has no item named `{name}`"),
                        hint,
                    )
                    .map_expected(format!(
                        "one of {}",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                walked.push_str(&format!("[{name}]"));
                &mut items[pos]
            }
        };
    }
    Ok(cur)
}

fn bad_path(path: &str, why: String, hint: Option<String>) -> Box<Diagnostic> {
    let d = Diagnostic::new(
        codes::S0206,
        format!("override path `{path}` does not exist: {why}"),
    )
    .expected("a blueprint path such as `fabric.spines` or `proxmox.clusters[infra].nodes`");
    Box::new(match hint {
        Some(h) => d.help(format!("did you mean `{h}`?")),
        None => d.help("paths follow the blueprint's keys; select list items by name (`[infra]`) or index (`[0]`)"),
    })
}

/// Apply `overrides` (one site's) to `blueprint`.
pub fn apply(blueprint: &Blueprint, overrides: &[Located<Override>]) -> Effective {
    let mut diagnostics = Vec::new();
    let mut applied = Vec::new();
    if overrides.is_empty() {
        return Effective {
            blueprint: blueprint.clone(),
            applied,
            diagnostics,
        };
    }
    let mut doc = to_spanned_json(blueprint);
    let mut seen: Vec<(&str, strata_diagnostics::Span)> = Vec::new();
    for located in overrides {
        let ov = &located.value;
        let path = ov.path.value.as_str();
        if let Some((_, first)) = seen.iter().find(|(p, _)| *p == path) {
            diagnostics.push(
                Diagnostic::new(codes::S0204, format!("`{path}` is overridden twice"))
                    .at(ov.path.span)
                    .expected("one override per path")
                    .related(*first, "first overridden here")
                    .help("merge the two overrides into one"),
            );
            continue;
        }
        seen.push((path, ov.path.span));
        let steps = match parse_path(path) {
            Ok(s) => s,
            Err(why) => {
                diagnostics.push(
                    Diagnostic::new(codes::S0206, format!("invalid override path: {why}"))
                        .at(ov.path.span)
                        .expected("a dotted blueprint path")
                        .help("write e.g. `fabric.spines` or `proxmox.clusters[infra].nodes`"),
                );
                continue;
            }
        };
        let snapshot = doc.clone();
        let slot = match walk(&mut doc, &steps, path) {
            Ok(s) => s,
            Err(d) => {
                diagnostics.push((*d).at(ov.path.span));
                continue;
            }
        };
        let before = plain(slot);
        let new = ov.value.value.clone();
        let new_span = ov.value.span;
        if unwrap_located_json(slot).is_some() {
            *slot = located_json(new.clone(), new_span);
        } else {
            *slot = new.clone();
        }
        applied.push(AppliedOverride {
            path: path.to_string(),
            blueprint: before,
            value: new,
            reason: ov.reason.as_ref().map(|r| r.value.clone()),
            span: Some(located.span),
        });
        // Check each override on its own so an error points at the right one.
        if let Err(e) = from_spanned_json::<Blueprint>(doc.clone()) {
            diagnostics.push(
                Diagnostic::new(
                    codes::S0207,
                    format!("override of `{path}` does not fit the blueprint: {e}"),
                )
                .at(new_span)
                .expected(format!(
                    "a value of the same type as the blueprint's `{path}`"
                ))
                .help(format!(
                    "the blueprint has `{}` there; `strata schema` shows the type",
                    applied
                        .last()
                        .map(|a| a.blueprint.to_string())
                        .unwrap_or_default()
                )),
            );
            // Undo, so later overrides are checked against a valid document.
            doc = snapshot;
            applied.pop();
        }
    }
    let blueprint = from_spanned_json::<Blueprint>(doc).unwrap_or_else(|_| blueprint.clone());
    Effective {
        blueprint,
        applied,
        diagnostics,
    }
}

trait MapExpected {
    fn map_expected(self, e: String) -> Self;
}

impl MapExpected for Box<Diagnostic> {
    fn map_expected(mut self, e: String) -> Self {
        self.expected = Some(e);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path("proxmox.clusters[infra].nodes"),
            Ok(vec![
                Step::Key("proxmox"),
                Step::Key("clusters"),
                Step::Named("infra"),
                Step::Key("nodes")
            ])
        );
        assert_eq!(
            parse_path("maas.rack_controllers[0].dhcp"),
            Ok(vec![
                Step::Key("maas"),
                Step::Key("rack_controllers"),
                Step::Index(0),
                Step::Key("dhcp")
            ])
        );
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("a[b").is_err());
    }
}
