//! The change policy `strata serve` applies: windows that can open, a blast-radius
//! share that is a share.

use strata_diagnostics::{Diagnostic, codes};
use strata_spec::Spec;

pub fn check(spec: &Spec, out: &mut Vec<Diagnostic>) {
    let Some(policy) = &spec.policy else { return };
    for w in &policy.change_windows {
        if w.end.value <= w.start.value {
            out.push(
                Diagnostic::new(
                    codes::S0104,
                    format!(
                        "change window ends at {} but opens at {}: it would never be open",
                        w.end.value, w.start.value
                    ),
                )
                .at_opt(w.end.span_opt())
                .expected(format!("an end after {} (24:00 closes at midnight)", w.start.value))
                .help("a window over midnight is two windows: one to 24:00, one from 00:00 the next day"),
            );
        }
        if w.days.is_empty() {
            out.push(
                Diagnostic::new(
                    codes::S0104,
                    "change window has no days: it would never be open",
                )
                .at_opt(w.span_opt())
                .expected("at least one of mon, tue, wed, thu, fri, sat, sun")
                .help("list the days, or leave `days` out for every day"),
            );
        }
    }
    let pct = policy.max_destroy_percent.value;
    if !(pct > 0.0 && pct <= 100.0) {
        out.push(
            Diagnostic::new(
                codes::S0104,
                format!("policy.max_destroy_percent is {pct}: it is a share of a DC's objects"),
            )
            .at_opt(policy.max_destroy_percent.span_opt())
            .expected("a percentage above 0 and at most 100")
            .help("10 holds any plan that deletes more than a tenth of a DC's objects for an approval"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_diagnostics::SourceMap;

    fn diags(policy: &str) -> Vec<Diagnostic> {
        let mut sources = SourceMap::new();
        sources.add("policy.yaml", format!("policy:\n{policy}"));
        let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
        // Only the policy is written: the other sections are missing (S0110).
        assert!(
            loaded.diagnostics.iter().all(|d| d.code == codes::S0110),
            "{:?}",
            loaded.diagnostics
        );
        let mut out = Vec::new();
        check(&loaded.spec, &mut out);
        out
    }

    #[test]
    fn a_good_policy_passes() {
        let d = diags(
            "  auto_apply: [create]\n  change_windows:\n    - { days: [mon, tue], start: \"09:00\", end: \"24:00\" }\n  max_destroy_percent: 5\n",
        );
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn windows_that_never_open_are_errors_at_the_end_time() {
        let d = diags(
            "  change_windows:\n    - { start: \"22:00\", end: \"02:00\" }\n    - { days: [], start: \"01:00\", end: \"02:00\" }\n",
        );
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].message.contains("ends at 02:00 but opens at 22:00"),
            "{d:?}"
        );
        assert_eq!(d[0].span.map(|s| s.line), Some(3));
        assert!(d[1].message.contains("no days"), "{d:?}");
    }

    #[test]
    fn the_blast_radius_is_a_percentage() {
        for bad in ["0", "150", "-1"] {
            let d = diags(&format!("  max_destroy_percent: {bad}\n"));
            assert_eq!(d.len(), 1, "{bad}: {d:?}");
        }
    }
}
