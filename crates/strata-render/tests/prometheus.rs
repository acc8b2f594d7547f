//! Prometheus renderer: snapshots, determinism, coverage of the fleet and
//! `promtool check config` validation.

use std::path::Path;

use strata_render::{FileKind, RenderedFile, prometheus};
use strata_verify::Verifier;

fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a RenderedFile {
    files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no rendered file {path}"))
}

/// The verifier, or `None` (skip) when promtool is absent and STRATA_SKIP_TOOL_TESTS=1.
fn verifier(kind: FileKind) -> Option<Verifier> {
    let verifier = Verifier::discover();
    if let Some(missing) = verifier.missing(kind) {
        if strata_testkit::OptOut::Tools.is_set() {
            strata_testkit::skip_note(
                strata_testkit::OptOut::Tools,
                &format!("the promtool tool check ({missing})"),
            );
            return None;
        }
        panic!(
            "{missing}\nrun scripts/install-test-deps.sh to install the validators \
             (or set STRATA_SKIP_TOOL_TESTS=1 to skip real-tool tests)"
        );
    }
    Some(verifier)
}

fn write(root: &Path, files: &[RenderedFile]) {
    for f in files {
        let path = root.join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &f.content).expect("write");
    }
}

#[test]
fn one_config_per_dc_plus_federation() {
    let fleet = strata_testkit::example_fleet();
    let files = prometheus::render(&fleet).expect("renders");
    let mut expected: Vec<String> = fleet
        .dcs
        .iter()
        .map(|dc| prometheus::dc_path(&dc.name))
        .collect();
    expected.push(prometheus::FEDERATION_PATH.to_string());
    expected.sort();
    assert_eq!(
        files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
        expected
    );
    assert!(files.iter().all(|f| f.kind == FileKind::Prometheus));
}

#[test]
fn every_host_switch_and_dc_is_scraped() {
    let fleet = strata_testkit::example_fleet();
    let files = prometheus::render(&fleet).expect("renders");
    for dc in &fleet.dcs {
        let text = &file(&files, &prometheus::dc_path(&dc.name)).content;
        assert!(text.contains(&format!("dc: \"{}\"\n", dc.name)));
        assert!(text.contains(&format!("region: \"{}\"\n", dc.region)));
        for m in &dc.machines {
            assert!(text.contains(&format!("\"{}:9100\"", m.fqdn)), "{}", m.fqdn);
        }
        for v in &dc.vms {
            assert!(text.contains(&format!("\"{}:9100\"", v.fqdn)), "{}", v.fqdn);
        }
        for sw in &dc.switches {
            assert!(
                text.contains(&format!("\"{}:9342\"", sw.loopback)),
                "{}",
                sw.name
            );
            assert!(text.contains(&format!("instance: \"{}\"", sw.name)));
        }
        for h in &dc.maas.region_controllers {
            assert!(text.contains(&format!(
                "\"{h}.{}.{}:5239\"",
                dc.name, fleet.organisation.domain
            )));
        }
        assert!(!text.contains("strata: "), "{text}");
    }
    let federation = &file(&files, prometheus::FEDERATION_PATH).content;
    for dc in &fleet.dcs {
        assert!(federation.contains(&format!("job_name: \"federate-{}\"", dc.name)));
        for h in &dc.openstack.monitoring {
            let fqdn = format!("{h}.{}.{}", dc.name, fleet.organisation.domain);
            assert!(federation.contains(&format!("\"{fqdn}:9090\"")), "{fqdn}");
        }
    }
    assert!(federation.contains("honor_labels: true"));
    assert!(federation.contains("metrics_path: /federate"));
}

#[test]
fn snapshots() {
    let fleet = strata_testkit::example_fleet();
    let files = prometheus::render(&fleet).expect("renders");
    insta::assert_snapshot!(
        "waw1",
        file(&files, "waw1/prometheus/prometheus.yml").content
    );
    insta::assert_snapshot!(
        "federation",
        file(&files, prometheus::FEDERATION_PATH).content
    );
}

#[test]
fn deterministic() {
    let fleet = strata_testkit::example_fleet();
    assert_eq!(
        prometheus::render(&fleet).expect("renders"),
        prometheus::render(&fleet).expect("renders")
    );
    assert_eq!(
        prometheus::render(&fleet).expect("renders"),
        prometheus::render(&strata_testkit::example_fleet()).expect("renders")
    );
}

#[test]
fn real_tool_accepts_every_file() {
    let Some(verifier) = verifier(FileKind::Prometheus) else {
        return;
    };
    let fleet = strata_testkit::example_fleet();
    let files = prometheus::render(&fleet).expect("renders");
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), &files);
    let list: Vec<(String, FileKind)> = files.iter().map(|f| (f.path.clone(), f.kind)).collect();
    let checks = verifier.verify_dir(dir.path(), &list);
    assert_eq!(checks.len(), files.len());
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{} ({}): {}\n{}", c.path, c.tool, c.command, c.output))
        .collect();
    assert!(
        failed.is_empty(),
        "promtool rejected:\n{}",
        failed.join("\n\n")
    );
}

#[test]
fn real_tool_rejects_a_broken_file() {
    let Some(verifier) = verifier(FileKind::Prometheus) else {
        return;
    };
    let fleet = strata_testkit::example_fleet();
    let files = prometheus::render(&fleet).expect("renders");
    let good = &file(&files, "waw1/prometheus/prometheus.yml").content;
    let needle = "  scrape_interval: 30s\n";
    assert!(good.contains(needle));
    let broken = good.replacen(needle, "  scrape_interval: banana\n", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, broken).expect("write");
    let check = verifier.verify_file(&path, FileKind::Prometheus);
    assert!(
        !check.ok,
        "promtool accepted `scrape_interval: banana`:\n{}",
        check.output
    );
    assert!(check.output.contains("banana"), "{}", check.output);
}
