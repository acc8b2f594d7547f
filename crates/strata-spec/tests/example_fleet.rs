//! The shipped example fleet parses cleanly.

use std::path::Path;

use strata_diagnostics::SourceMap;

fn read_dir(dir: &Path, sources: &mut SourceMap) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("example dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_dir(&p, sources);
        } else if p.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&p).expect("read");
            sources.add(p.display().to_string(), text);
        }
    }
}

#[test]
fn example_fleet_loads_without_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet");
    let mut sources = SourceMap::new();
    read_dir(&dir, &mut sources);
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.spec.sites.len(), 3);
    assert_eq!(loaded.spec.machines.len(), 39);
    assert!(loaded.spec.blueprint.is_some());
}
