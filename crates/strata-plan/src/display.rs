//! The plan for humans: grouped by DC and platform, `+` create, `@` adopt, `~` update
//! with field-level old → new, `-` delete, and counts. Sensitive values are never shown.

use std::fmt::Write;

use serde_json::Value;

use crate::diff::{Action, Plan};

fn show(v: &Option<Value>, sensitive: bool) -> String {
    if sensitive {
        return "(sensitive)".into();
    }
    match v {
        None => "(none)".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

/// Render `plan` as text. `max_lines` bounds very large plans (0 = unbounded).
pub fn render(plan: &Plan, max_lines: usize) -> String {
    let mut out = String::new();
    let mut scope = (String::new(), String::new());
    let mut lines = 0usize;
    let mut hidden = 0usize;
    for s in &plan.steps {
        if max_lines > 0 && lines >= max_lines {
            hidden += 1;
            continue;
        }
        let here = (s.id.dc.clone(), s.id.platform().to_string());
        if here != scope {
            let _ = writeln!(out, "\n{} · {}", here.0, here.1);
            scope = here;
            lines += 1;
        }
        let _ = write!(out, "  {} {} {}", s.action.symbol(), s.id.kind, s.id.name);
        match s.action {
            Action::Create => {
                let fields: Vec<String> = s
                    .changes
                    .iter()
                    .map(|c| format!("{}={}", c.field, show(&c.new, c.sensitive)))
                    .collect();
                let _ = writeln!(out, "  {}", fields.join(" "));
                lines += 1;
            }
            Action::Delete => {
                let id = s
                    .observed
                    .as_ref()
                    .and_then(|o| o.external_id.clone())
                    .map(|i| format!("  (id {i})"))
                    .unwrap_or_default();
                let _ = writeln!(out, "{id}");
                lines += 1;
            }
            Action::Adopt | Action::Update => {
                if s.action == Action::Adopt {
                    let id = s
                        .observed
                        .as_ref()
                        .and_then(|o| o.external_id.clone())
                        .unwrap_or_default();
                    let _ = write!(out, "  (adopt {id})");
                }
                let _ = writeln!(out);
                lines += 1;
                for c in &s.changes {
                    let _ = writeln!(
                        out,
                        "      {}: {} → {}",
                        c.field,
                        show(&c.old, c.sensitive),
                        show(&c.new, c.sensitive)
                    );
                    lines += 1;
                }
                if let Some(r) = &s.reboot {
                    let fields = r.fields.join(", ");
                    let _ = if r.allowed {
                        writeln!(
                            out,
                            "      ⟳ reboot: {fields} take effect only when the VM boots again; apply reboots it"
                        )
                    } else {
                        writeln!(
                            out,
                            "      ⟳ reboot deferred: {fields} stay pending until the VM boots again (over the blast-radius policy)"
                        )
                    };
                    lines += 1;
                }
            }
        }
    }
    if hidden > 0 {
        let _ = writeln!(
            out,
            "\n  ... and {hidden} more steps (use -o json for the whole plan)"
        );
    }
    if !plan.conflicts.is_empty() {
        let _ = writeln!(out, "\nConflicts (nothing will be done for these):");
        for c in &plan.conflicts {
            let _ = writeln!(out, "  ! {} (id {}): {}", c.id, c.external_id, c.message);
        }
        let _ = writeln!(
            out,
            "  fix: rename the object in the spec, or remove or tag the existing one deliberately"
        );
    }
    let c = plan.counts();
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to adopt, {} to update, {} to delete.",
        c.create, c.adopt, c.update, c.delete
    );
    let reboots = plan.steps.iter().filter(|s| s.reboot.is_some()).count();
    if reboots > 0 {
        let _ = writeln!(
            out,
            "{reboots} running VM(s) need a reboot for their changes to take effect."
        );
    }
    if !plan.unowned.is_empty() {
        let _ = writeln!(
            out,
            "{} object(s) without this fleet's ownership tag are left alone.",
            plan.unowned.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Observed, Platform, Resource, ResourceId, ResourceSet};

    #[test]
    fn sensitive_values_never_show() {
        let mut d = Resource::new(ResourceId::new("fra1", Kind::Machine, "s1"))
            .field("power_pass", "hunter2")
            .field("hostname", "h");
        d.sensitive.insert("power_pass".into());
        let mut desired = ResourceSet::default();
        desired.insert(d);
        let plan = crate::diff::diff(
            &desired,
            &Observed::default(),
            &[("fra1".into(), Platform::Maas)],
        );
        let text = render(&plan, 0);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("power_pass=(sensitive)"), "{text}");
        assert!(text.contains("Plan: 1 to create"), "{text}");
    }
}
