//! Fuzz the spec loader and everything behind it: any bytes in, no panic out.
//!
//! The input is one spec file. If it parses, it is compiled (against an empty lock)
//! and checked, and its diagnostics are rendered both ways, so the compiler, the
//! design checks, conformance and the miette renderer all see fuzzed data.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut sources = strata_diagnostics::SourceMap::new();
    sources.add("fuzz.yaml", text);
    let limits = strata_spec::Limits {
        max_file_bytes: 1 << 20,
        ..strata_spec::Limits::default()
    };
    let loaded = strata_spec::load(&sources, &limits);
    let mut diags = loaded.diagnostics;
    if diags.iter().all(|d| !d.is_error()) {
        let compiled = strata_fleet::compile(&loaded.spec, &strata_fleet::Lock::new());
        diags.extend(compiled.diagnostics);
        if let Some(fleet) = &compiled.fleet {
            diags.extend(strata_check::check(&loaded.spec, fleet));
            diags.extend(strata_check::conform(fleet).diagnostics);
        }
    }
    let _ = strata_diagnostics::render_human(&diags, &sources, strata_diagnostics::RenderStyle::Plain);
    let _ = strata_diagnostics::render_json(&diags, &sources);
});
