//! The repository's example fleets as tests use them: `examples/fleet` compiled with
//! its committed lock, and every `examples/broken/*` case.

use std::path::{Path, PathBuf};

use strata_diagnostics::SourceMap;
use strata_fleet::{Fleet, Lock};

use crate::repo_root;

/// `examples/fleet`.
pub fn example_dir() -> PathBuf {
    repo_root().join("examples/fleet")
}

/// Every `*.yaml` under `dir`, in path order, named relative to `dir` (as the CLI
/// names them).
pub fn spec_sources(dir: &Path) -> SourceMap {
    fn walk(dir: &Path, root: &Path, sources: &mut SourceMap) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, root, sources);
            } else if p.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
                let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                sources.add(rel, text);
            }
        }
    }
    let mut sources = SourceMap::new();
    walk(dir, dir, &mut sources);
    sources
}

/// `examples/fleet` compiled with its committed lock; panics on any error, and when
/// the lock is stale (compiling would change it).
pub fn example_fleet() -> Fleet {
    let dir = example_dir();
    let loaded = strata_spec::load(&spec_sources(&dir), &strata_spec::Limits::default());
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let lock_text = std::fs::read_to_string(dir.join("fleet.lock")).expect("fleet.lock");
    let lock = Lock::parse(&lock_text).expect("lock");
    let compiled = strata_fleet::compile(&loaded.spec, &lock);
    assert!(
        compiled.diagnostics.iter().all(|d| !d.is_error()),
        "{:#?}",
        compiled.diagnostics
    );
    assert_eq!(
        compiled.lock.to_text(),
        lock_text,
        "examples/fleet/fleet.lock is stale: run `strata compile examples/fleet`"
    );
    compiled.fleet.expect("fleet")
}

/// Every `examples/broken/*` case that still compiles (errors and all), by name,
/// compiled without a lock.
pub fn broken_fleets() -> Vec<(String, Fleet)> {
    let root = repo_root().join("examples/broken");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("examples/broken")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let mut out = Vec::new();
    for case in cases {
        let loaded = strata_spec::load(&spec_sources(&case), &strata_spec::Limits::default());
        let compiled = strata_fleet::compile(&loaded.spec, &Lock::default());
        if let Some(fleet) = compiled.fleet {
            let name = case
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            out.push((name, fleet));
        }
    }
    out
}
