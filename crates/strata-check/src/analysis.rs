//! The whole pure pipeline on sources already in memory: load → compile → check →
//! conform. The CLI reads a spec directory into a `SourceMap`; the server reads the
//! same files out of a Git commit; both hand them here.

use strata_diagnostics::{Diagnostic, SourceMap, codes};
use strata_fleet::{Fleet, Lock};
use strata_spec::{Limits, Spec};

use crate::ConformanceReport;

/// What one run of the pipeline produced.
pub struct Analysis {
    pub spec: Spec,
    /// The compiled fleet, when every reference resolved and every allocation succeeded.
    pub fleet: Option<Fleet>,
    pub conformance: Option<ConformanceReport>,
    /// Every diagnostic (the caller's reading problems first), sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// The lock as compiled (what `compile` writes).
    pub lock: Lock,
    /// Compiling added or released allocations: the given lock is out of date.
    pub lock_changed: bool,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Run the pipeline. `read` are problems met while reading the files (too large, not
/// UTF-8); `old_lock_text` is the lock file's text (`None`: there is none). With
/// `locked`, a lock that compiling would change is an error (`S0602`).
pub fn analyze(
    sources: &SourceMap,
    read: Vec<Diagnostic>,
    lock: &Lock,
    old_lock_text: Option<&str>,
    locked: bool,
) -> Analysis {
    let limits = Limits::default();
    let loaded = strata_spec::load(sources, &limits);
    let mut diagnostics = read;
    diagnostics.extend(loaded.diagnostics);
    let spec = loaded.spec;
    let parse_ok = !diagnostics.iter().any(Diagnostic::is_error);

    let (fleet, new_lock, conformance) = if parse_ok {
        let compiled = strata_fleet::compile(&spec, lock);
        diagnostics.extend(compiled.diagnostics);
        let conformance = compiled.fleet.as_ref().map(|f| {
            diagnostics.extend(crate::check(&spec, f));
            let report = crate::conform(f);
            diagnostics.extend(report.diagnostics.iter().cloned());
            report
        });
        (compiled.fleet, compiled.lock, conformance)
    } else {
        (None, lock.clone(), None)
    };
    let lock_changed = fleet.is_some() && new_lock.to_text() != old_lock_text.unwrap_or_default();
    if locked && lock_changed {
        diagnostics.push(
            Diagnostic::new(
                codes::S0602,
                "fleet.lock is out of date: compiling would add or release allocations",
            )
            .expected("a committed fleet.lock that matches the spec")
            .help("run `strata compile` and commit fleet.lock, or drop --locked"),
        );
    }
    strata_diagnostics::sort(&mut diagnostics);
    Analysis {
        spec,
        fleet,
        conformance,
        diagnostics,
        lock: new_lock,
        lock_changed,
    }
}
