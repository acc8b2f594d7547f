//! Replay every input in `fuzz/regressions/` through the whole pure pipeline: none may
//! panic, and each must come back as diagnostics or a fleet.

use std::path::Path;

use strata_diagnostics::{RenderStyle, SourceMap, render_human, render_json};

fn pipeline(text: &str) {
    let mut sources = SourceMap::new();
    sources.add("input.yaml", text);
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    let mut diags = loaded.diagnostics;
    if diags.iter().all(|d| !d.is_error()) {
        let compiled = strata_fleet::compile(&loaded.spec, &strata_fleet::Lock::new());
        diags.extend(compiled.diagnostics);
        if let Some(f) = &compiled.fleet {
            diags.extend(strata_check::check(&loaded.spec, f));
            diags.extend(strata_check::conform(f).diagnostics);
        }
    }
    let _ = render_human(&diags, &sources, RenderStyle::Plain);
    let _ = render_json(&diags, &sources);
}

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions") {
        let path = entry.expect("entry").path();
        // Other targets keep their inputs in subdirectories (`twin_api/`).
        if path.is_dir() || path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        if let Ok(text) = std::str::from_utf8(&bytes) {
            pipeline(text);
        }
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}

#[test]
fn the_fuzz_seeds_do_not_panic_either() {
    // The broken examples are the fuzzer's seed corpus; run them through the same path.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/broken");
    for entry in std::fs::read_dir(&dir).expect("examples/broken") {
        let p = entry.expect("entry").path().join("fleet.yaml");
        if let Ok(text) = std::fs::read_to_string(&p) {
            pipeline(&text);
        }
    }
}
