//! The analysis every reporting command shares: read the spec directory, then run
//! the pure pipeline (`strata_check::analyze`: load → compile → check → conform).

use std::path::Path;

use anyhow::Result;
use strata_check::ConformanceReport;
use strata_diagnostics::{Diagnostic, SourceMap};
use strata_fleet::{Fleet, Lock};

use crate::source::{SpecDir, read_lock, read_spec_dir};

pub struct Analysis {
    pub dir: SpecDir,
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
    let limits = strata_spec::Limits::default();
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
    let an = strata_check::analyze(
        &dir.sources,
        dir.diagnostics.clone(),
        lock,
        old_lock_text.as_deref(),
        locked,
    );
    Analysis {
        dir,
        fleet: an.fleet,
        conformance: an.conformance,
        diagnostics: an.diagnostics,
        lock: an.lock,
        old_lock_text,
        lock_changed: an.lock_changed,
    }
}
