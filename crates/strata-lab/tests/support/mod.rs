//! Test support: `examples/fleet`, compiled, and its rendered FRR and keepalived files.

use std::path::{Path, PathBuf};

use strata_diagnostics::SourceMap;
use strata_fleet::{Fleet, Lock};
use strata_render::RenderedFile;

pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet")
}

fn read_dir(dir: &Path, root: &Path, sources: &mut SourceMap) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("example dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_dir(&p, root, sources);
        } else if p.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&p).expect("read");
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            sources.add(rel, text);
        }
    }
}

/// `examples/fleet` compiled with its committed lock (panics on a compile error).
pub fn example_fleet() -> Fleet {
    let dir = example_dir();
    let mut sources = SourceMap::new();
    read_dir(&dir, &dir, &mut sources);
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let lock_text = std::fs::read_to_string(dir.join("fleet.lock")).expect("fleet.lock");
    let lock = Lock::parse(&lock_text).expect("lock");
    let compiled = strata_fleet::compile(&loaded.spec, &lock);
    assert!(
        compiled.diagnostics.iter().all(|d| !d.is_error()),
        "{:#?}",
        compiled.diagnostics
    );
    compiled.fleet.expect("fleet")
}

/// Every compiled fleet `strata lab up --allow-invalid` could be handed: each
/// `examples/broken/*` that still compiles (errors and all), by name.
pub fn broken_fleets() -> Vec<(String, Fleet)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/broken");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("examples/broken")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let mut out = Vec::new();
    for case in cases {
        let mut sources = SourceMap::new();
        read_dir(&case, &case, &mut sources);
        let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
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

/// What `strata lab up` plans from: the FRR and keepalived files (or, as there, why
/// they cannot be rendered).
pub fn rendered(fleet: &Fleet) -> Result<Vec<RenderedFile>, strata_render::RenderError> {
    let mut files = strata_render::frr::render(fleet)?;
    files.extend(strata_render::keepalived::render(fleet)?);
    Ok(files)
}
