//! The analysis every reporting command shares: read → load → compile → check →
//! conform.

use std::path::Path;

use anyhow::Result;
use strata_check::ConformanceReport;
use strata_diagnostics::{Diagnostic, SourceMap, codes};
use strata_fleet::{Fleet, Lock};
use strata_spec::{Limits, Spec};

use crate::source::{SpecDir, read_lock, read_spec_dir};

pub struct Analysis {
    pub dir: SpecDir,
    #[allow(dead_code)] // kept for commands that need spec spans (plan, later)
    pub spec: Spec,
    pub fleet: Option<Fleet>,
    pub conformance: Option<ConformanceReport>,
    /// Every diagnostic, sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// The lock as compiled (what `compile` and `render` write).
    pub lock: Lock,
    pub old_lock_text: Option<String>,
    pub lock_changed: bool,
}

impl Analysis {
    pub fn sources(&self) -> &SourceMap {
        &self.dir.sources
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Run the whole pure pipeline on the spec directory `root`.
pub fn analyze(root: &Path, locked: bool) -> Result<Analysis> {
    let limits = Limits::default();
    let dir = read_spec_dir(root, &limits)?;
    let (lock, old_lock_text) = read_lock(root)?;
    Ok(analyze_sources(dir, &lock, old_lock_text, locked))
}

/// The pipeline on sources already in memory (the demo's embedded example).
pub fn analyze_sources(
    dir: SpecDir,
    lock: &Lock,
    old_lock_text: Option<String>,
    locked: bool,
) -> Analysis {
    let limits = Limits::default();
    let loaded = strata_spec::load(&dir.sources, &limits);
    let mut diagnostics = dir.diagnostics.clone();
    diagnostics.extend(loaded.diagnostics);
    let spec = loaded.spec;
    let parse_ok = !diagnostics.iter().any(Diagnostic::is_error);

    let (fleet, new_lock, conformance) = if parse_ok {
        let compiled = strata_fleet::compile(&spec, lock);
        diagnostics.extend(compiled.diagnostics);
        let conformance = compiled.fleet.as_ref().map(|f| {
            diagnostics.extend(strata_check::check(&spec, f));
            let report = strata_check::conform(f);
            diagnostics.extend(report.diagnostics.iter().cloned());
            report
        });
        (compiled.fleet, compiled.lock, conformance)
    } else {
        (None, lock.clone(), None)
    };
    let lock_changed =
        fleet.is_some() && new_lock.to_text() != old_lock_text.clone().unwrap_or_default();
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
        dir,
        spec,
        fleet,
        conformance,
        diagnostics,
        lock: new_lock,
        old_lock_text,
        lock_changed,
    }
}
