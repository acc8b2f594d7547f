//! The change policy, applied to a plan: does the server apply it on its own, or does
//! it wait for a person? Pure: a plan, the spec's `policy` and the time in, a decision
//! out.
//!
//! Deletes always wait, and so does a plan over the blast-radius limit, whatever the
//! policy allows: the first cannot be undone and the second is what the limit is for.
//! A plan with conflicts (desired objects whose names unowned objects hold) cannot be
//! applied at all until someone resolves them.

use serde::Serialize;
use strata_plan::{Action, Plan};
use strata_spec::model::{ChangeWindow, Policy, PolicyAction};

/// What the server does with a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Nothing to do: the platforms match the spec.
    UpToDate,
    /// Apply now, without an approval.
    Apply,
    /// Wait for an approval bound to the plan's hash; `reasons` say why.
    Wait { reasons: Vec<String> },
    /// Cannot be applied, approved or not, until the conflicts are resolved.
    Blocked { reasons: Vec<String> },
}

impl Decision {
    pub fn state(&self) -> &'static str {
        match self {
            Decision::UpToDate => "up-to-date",
            Decision::Apply => "applying",
            Decision::Wait { .. } => "waiting",
            Decision::Blocked { .. } => "blocked",
        }
    }
}

fn allowed(policy: &Policy, action: Action) -> bool {
    let want = match action {
        Action::Create => PolicyAction::Create,
        Action::Adopt => PolicyAction::Adopt,
        Action::Update => PolicyAction::Update,
        Action::Delete => return false,
    };
    policy.auto_apply.iter().any(|a| a.value == want)
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Adopt => "adopt",
        Action::Update => "update",
        Action::Delete => "delete",
    }
}

/// Minutes since Monday 00:00 UTC for a Unix time in milliseconds.
pub fn minute_of_week(unix_ms: i64) -> u32 {
    let minutes = unix_ms.div_euclid(60_000);
    let days = minutes.div_euclid(1440);
    // 1970-01-01 was a Thursday: three days after a Monday.
    let weekday = (days + 3).rem_euclid(7);
    (weekday * 1440 + minutes.rem_euclid(1440)) as u32
}

fn in_window(w: &ChangeWindow, minute_of_week: u32) -> bool {
    let day = (minute_of_week / 1440) as u8;
    let minute = (minute_of_week % 1440) as u16;
    w.days.iter().any(|d| d.index() == day) && w.start.value.0 <= minute && minute < w.end.value.0
}

/// Whether automatic applies may run at `unix_ms` (no windows: always).
pub fn window_open(policy: &Policy, unix_ms: i64) -> bool {
    let m = minute_of_week(unix_ms);
    policy.change_windows.is_empty() || policy.change_windows.iter().any(|w| in_window(w, m))
}

/// Decide what to do with `plan` at `unix_ms`.
pub fn decide(plan: &Plan, policy: &Policy, unix_ms: i64) -> Decision {
    if !plan.conflicts.is_empty() {
        let names: Vec<String> = plan
            .conflicts
            .iter()
            .take(5)
            .map(|c| c.id.to_string())
            .collect();
        return Decision::Blocked {
            reasons: vec![format!(
                "{} desired object(s) have names that objects strata does not own already hold ({}): rename them in the spec or remove the unowned objects",
                plan.conflicts.len(),
                names.join(", ")
            )],
        };
    }
    if plan.is_empty() {
        return Decision::UpToDate;
    }
    let mut reasons = Vec::new();
    let deletes = plan.counts().delete;
    if deletes > 0 {
        reasons.push(format!(
            "{deletes} delete(s): deletes always wait for an approval"
        ));
    }
    for action in [Action::Create, Action::Adopt, Action::Update] {
        let n = plan.steps.iter().filter(|s| s.action == action).count();
        if n > 0 && !allowed(policy, action) {
            let allowed: Vec<&str> = policy
                .auto_apply
                .iter()
                .map(|a| match a.value {
                    PolicyAction::Create => "create",
                    PolicyAction::Adopt => "adopt",
                    PolicyAction::Update => "update",
                })
                .collect();
            reasons.push(format!(
                "{n} {}(s): policy.auto_apply allows only {}",
                action_name(action),
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
        }
    }
    for (dc, pct) in plan.over_blast_radius(policy.max_destroy_percent.value) {
        reasons.push(format!(
            "deletes {pct:.0}% of {dc}'s owned objects, over policy.max_destroy_percent ({}%)",
            policy.max_destroy_percent.value
        ));
    }
    if reasons.is_empty() && !window_open(policy, unix_ms) {
        reasons.push(
            "outside every change window (policy.change_windows): applies when the next one opens, or on an approval"
                .to_string(),
        );
    }
    if reasons.is_empty() {
        Decision::Apply
    } else {
        Decision::Wait { reasons }
    }
}

/// The plan as Markdown, ready for a merge-request comment: the decision, the counts,
/// and the steps as a diff block.
pub fn summary_markdown(sha: &str, plan: &Plan, decision: &Decision, hash: Option<&str>) -> String {
    let c = plan.counts();
    let short = sha.get(..12).unwrap_or(sha);
    let mut out = format!("### strata plan for `{short}`\n\n");
    match decision {
        Decision::UpToDate => out.push_str("**No changes**: every platform matches the spec.\n"),
        Decision::Apply => out.push_str("**Applying automatically** (allowed by the policy).\n"),
        Decision::Wait { reasons } => {
            out.push_str("**Waiting for an approval**:\n\n");
            for r in reasons {
                out.push_str(&format!("- {r}\n"));
            }
            if let Some(h) = hash {
                out.push_str(&format!(
                    "\nApprove with `POST /api/v1/plans/{h}/approve` (the approval binds to this plan's hash and is refused if the platforms changed since).\n"
                ));
            }
        }
        Decision::Blocked { reasons } => {
            out.push_str("**Blocked**:\n\n");
            for r in reasons {
                out.push_str(&format!("- {r}\n"));
            }
        }
    }
    if !plan.is_empty() {
        out.push_str(&format!(
            "\n| create | adopt | update | delete |\n|---:|---:|---:|---:|\n| {} | {} | {} | {} |\n",
            c.create, c.adopt, c.update, c.delete
        ));
        out.push_str("\n```diff\n");
        out.push_str(&strata_plan::display::render(plan, 200));
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("```\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plan::{ResourceId, Step};
    use strata_spec::Located;
    use strata_spec::TimeOfDay;
    use strata_spec::model::Weekday;

    fn step(action: Action, name: &str) -> Step {
        Step {
            id: format!("fra1/vm/{name}").parse::<ResourceId>().expect("id"),
            action,
            changes: Vec::new(),
            desired: None,
            observed: None,
            depends_on: Vec::new(),
            reboot: None,
        }
    }

    fn plan(actions: &[Action]) -> Plan {
        let mut p = Plan::default();
        for (i, a) in actions.iter().enumerate() {
            p.steps.push(step(*a, &format!("vm{i}")));
        }
        p.owned_counts.insert("fra1/proxmox".into(), 100);
        p
    }

    // Monday 2026-12-07 10:00 UTC.
    const MONDAY_10: i64 = 1_796_637_600_000;

    #[test]
    fn the_week_starts_on_monday() {
        assert_eq!(minute_of_week(MONDAY_10), 600);
        assert_eq!(minute_of_week(0), 3 * 1440, "1970-01-01 was a Thursday");
        assert_eq!(minute_of_week(MONDAY_10 + 6 * 86_400_000), 6 * 1440 + 600);
    }

    #[test]
    fn creates_and_adoptions_apply_by_default() {
        let p = Policy::default();
        assert_eq!(
            decide(&plan(&[Action::Create, Action::Adopt]), &p, MONDAY_10),
            Decision::Apply
        );
        assert_eq!(decide(&Plan::default(), &p, MONDAY_10), Decision::UpToDate);
    }

    #[test]
    fn updates_wait_unless_allowed_and_deletes_always_wait() {
        let mut p = Policy::default();
        let Decision::Wait { reasons } =
            decide(&plan(&[Action::Create, Action::Update]), &p, MONDAY_10)
        else {
            panic!("an update waits by default");
        };
        assert!(reasons[0].contains("1 update(s)"), "{reasons:?}");
        p.auto_apply.push(Located::synthetic(PolicyAction::Update));
        assert_eq!(
            decide(&plan(&[Action::Update]), &p, MONDAY_10),
            Decision::Apply
        );
        let Decision::Wait { reasons } = decide(&plan(&[Action::Delete]), &p, MONDAY_10) else {
            panic!("a delete always waits");
        };
        assert!(reasons[0].contains("deletes always wait"), "{reasons:?}");
    }

    #[test]
    fn a_plan_over_the_blast_radius_waits() {
        let p = Policy::default();
        let mut big = plan(&[Action::Delete; 20]);
        big.owned_counts.insert("fra1/proxmox".into(), 100);
        let Decision::Wait { reasons } = decide(&big, &p, MONDAY_10) else {
            panic!("over the radius");
        };
        assert!(
            reasons.iter().any(|r| r.contains("20% of fra1")),
            "{reasons:?}"
        );
    }

    #[test]
    fn change_windows_gate_automatic_applies() {
        let mut p = Policy::default();
        p.change_windows.push(Located::synthetic(ChangeWindow {
            days: vec![Weekday::Tue, Weekday::Wed],
            start: Located::synthetic(TimeOfDay(9 * 60)),
            end: Located::synthetic(TimeOfDay(17 * 60)),
        }));
        let creates = plan(&[Action::Create]);
        let Decision::Wait { reasons } = decide(&creates, &p, MONDAY_10) else {
            panic!("Monday is outside the window");
        };
        assert!(reasons[0].contains("change window"), "{reasons:?}");
        let tuesday_10 = MONDAY_10 + 86_400_000;
        assert_eq!(decide(&creates, &p, tuesday_10), Decision::Apply);
        let tuesday_17 = tuesday_10 + 7 * 3_600_000;
        assert!(
            matches!(decide(&creates, &p, tuesday_17), Decision::Wait { .. }),
            "end is exclusive"
        );
    }

    #[test]
    fn the_summary_is_markdown_with_the_reasons_and_the_steps() {
        let p = Policy::default();
        let pl = plan(&[Action::Create, Action::Delete]);
        let d = decide(&pl, &p, MONDAY_10);
        let md = summary_markdown("0123456789abcdef", &pl, &d, Some("feedbeef"));
        assert!(md.starts_with("### strata plan for `0123456789ab`"), "{md}");
        assert!(md.contains("Waiting for an approval"), "{md}");
        assert!(md.contains("/api/v1/plans/feedbeef/approve"), "{md}");
        assert!(md.contains("| 1 | 0 | 0 | 1 |"), "{md}");
        assert!(md.contains("```diff\n"), "{md}");
    }
}
