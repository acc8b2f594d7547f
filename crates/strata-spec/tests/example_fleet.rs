//! The shipped example fleet parses cleanly.

#[test]
fn example_fleet_loads_without_diagnostics() {
    let sources = strata_testkit::spec_sources(&strata_testkit::example_dir());
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    assert_eq!(loaded.spec.sites.len(), 3);
    assert_eq!(loaded.spec.machines.len(), 39);
    assert!(loaded.spec.blueprint.is_some());
}
