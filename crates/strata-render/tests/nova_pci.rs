//! The nova PCI passthrough renderer: snapshots, determinism, structure, and the nova
//! PCI checker (`scripts/verify-helpers/nova_pci_check.py`).
//!
//! The tool tests need python3 (`scripts/install-test-deps.sh`); without it they fail
//! unless `STRATA_SKIP_TOOL_TESTS=1`, which turns them into a printed note.

use std::collections::BTreeSet;
use std::path::Path;

use strata_fleet::Fleet;
use strata_render::{FileKind, RenderedFile, kolla, nova_pci};
use strata_verify::{Check, Verifier};

const KIND: FileKind = FileKind::NovaPci;

fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a RenderedFile {
    files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no file {path}"))
}

/// The verifier, or `None` (with a note) when the tool is missing and tool tests
/// are skipped; panics when it is missing otherwise.
fn verifier() -> Option<Verifier> {
    let verifier = Verifier::discover();
    match verifier.missing(KIND) {
        None => Some(verifier),
        Some(message) if strata_testkit::OptOut::Tools.is_set() => {
            strata_testkit::skip_note(
                strata_testkit::OptOut::Tools,
                &format!("the nova PCI tool test: {message}"),
            );
            None
        }
        Some(message) => panic!(
            "{message}\nrun scripts/install-test-deps.sh (or set STRATA_SKIP_TOOL_TESTS=1 to skip tool tests)"
        ),
    }
}

fn write_all(root: &Path, files: &[RenderedFile]) {
    for f in files {
        let path = root.join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &f.content).expect("write");
    }
}

/// Write `files` under a fresh temporary directory and verify them all.
fn verify(verifier: &Verifier, files: &[RenderedFile]) -> Vec<Check> {
    let dir = tempfile::tempdir().expect("tempdir");
    write_all(dir.path(), files);
    let list: Vec<(String, FileKind)> = files.iter().map(|f| (f.path.clone(), f.kind)).collect();
    verifier.verify_dir(dir.path(), &list)
}

fn failures(checks: &[Check]) -> String {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            format!(
                "--- {} ({})\n$ {}\n{}\n",
                c.path, c.tool, c.command, c.output
            )
        })
        .collect()
}

fn verify_text(verifier: &Verifier, content: &str) -> Check {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nova.conf");
    std::fs::write(&path, content).expect("write");
    verifier.verify_file(&path, KIND)
}

/// The FQDN of a DC's machine.
fn fqdn(fleet: &Fleet, dc: &str, host: &str) -> String {
    fleet
        .dc(dc)
        .and_then(|d| d.machines.iter().find(|m| m.hostname == host))
        .map(|m| m.fqdn.clone())
        .unwrap_or_else(|| panic!("no machine {host} in {dc}"))
}

/// `key = value` lines of `[section]` (comments skipped).
fn values<'a>(text: &'a str, section: &str, key: &str) -> Vec<&'a str> {
    let header = format!("[{section}]");
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') {
            inside = line == header;
            continue;
        }
        if inside && let Some(value) = line.strip_prefix(&format!("{key} = ")) {
            out.push(value);
        }
    }
    out
}

#[test]
fn snapshots() {
    let fleet = strata_testkit::example_fleet();
    let files = nova_pci::render(&fleet).expect("renders");
    let host = fqdn(&fleet, "fra1", "fra1-r02-cmp20");
    insta::assert_snapshot!(
        "fra1_dc",
        file(&files, "fra1/kolla/config/nova.conf").content
    );
    insta::assert_snapshot!(
        "fra1_gpu_host",
        file(&files, &format!("fra1/kolla/config/nova/{host}/nova.conf")).content
    );
}

#[test]
fn deterministic() {
    let fleet = strata_testkit::example_fleet();
    let first = nova_pci::render(&fleet).expect("renders");
    assert_eq!(first, nova_pci::render(&fleet).expect("renders"));
    assert_eq!(
        first,
        nova_pci::render(&strata_testkit::example_fleet()).expect("renders")
    );
    let mut sorted = first.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(first, sorted, "files are sorted by path");
}

/// Every GPU compute host gets a device_spec file in the directory Kolla looks up by
/// inventory hostname, and no other host does; every DC-wide file defines every alias
/// the DC's flavors request and enables the PCI filter.
#[test]
fn structure() {
    let fleet = strata_testkit::example_fleet();
    let files = nova_pci::render(&fleet).expect("renders");
    assert!(files.iter().all(|f| f.kind == KIND));
    let inventories = kolla::render(&fleet).expect("renders");
    let mut expected = BTreeSet::new();
    for dc in &fleet.dcs {
        let inventory = &file(&inventories, &format!("{}/kolla/multinode", dc.name)).content;
        let dc_path = format!("{}/kolla/config/nova.conf", dc.name);
        expected.insert(dc_path.clone());
        let dc_text = &file(&files, &dc_path).content;
        let filters = values(dc_text, "filter_scheduler", "enabled_filters");
        assert_eq!(filters.len(), 1, "{dc_path}");
        assert!(
            filters[0].split(',').any(|f| f == "PciPassthroughFilter"),
            "{dc_path}"
        );
        assert!(
            filters[0].split(',').any(|f| f == "NUMATopologyFilter"),
            "{dc_path}: pinned GPU flavors"
        );
        assert_eq!(
            values(dc_text, "filter_scheduler", "available_filters"),
            ["nova.scheduler.filters.all_filters"]
        );
        let aliases: Vec<serde_json::Value> = values(dc_text, "pci", "alias")
            .into_iter()
            .map(|v| serde_json::from_str(v).expect("alias JSON"))
            .collect();
        let names: BTreeSet<&str> = aliases
            .iter()
            .map(|a| a["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names.len(), aliases.len(), "{dc_path}: one alias per name");
        for flavor in &dc.openstack.flavors {
            if let Some(spec) = &flavor.pci_alias {
                let name = spec.split(':').next().expect("alias name");
                assert!(
                    names.contains(name),
                    "{dc_path}: flavor {} needs alias {name}",
                    flavor.name
                );
            }
        }
        assert!(
            values(dc_text, "pci", "device_spec").is_empty(),
            "{dc_path}: device specs are per host"
        );

        let mut gpu_hosts = 0;
        for node in &dc.openstack.compute {
            let host = fqdn(&fleet, &dc.name, &node.hostname);
            let path = format!("{}/kolla/config/nova/{host}/nova.conf", dc.name);
            let Some(gpu) = &node.gpu else {
                assert!(files.iter().all(|f| f.path != path), "{path}: no GPU");
                continue;
            };
            gpu_hosts += 1;
            expected.insert(path.clone());
            assert!(
                inventory
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(host.as_str())),
                "{path}: directory is not an inventory hostname"
            );
            let text = &file(&files, &path).content;
            let specs = values(text, "pci", "device_spec");
            assert_eq!(specs.len(), 1, "{path}");
            let spec: serde_json::Value = serde_json::from_str(specs[0]).expect("device_spec JSON");
            assert_eq!(spec["vendor_id"], gpu.vendor_id.as_str(), "{path}");
            assert_eq!(spec["product_id"], gpu.device_id.as_str(), "{path}");
            assert!(
                values(text, "pci", "alias").is_empty(),
                "{path}: would replace the DC-wide aliases"
            );
            let alias = aliases
                .iter()
                .find(|a| a["name"] == gpu.alias.as_str())
                .unwrap_or_else(|| panic!("{dc_path}: no alias {}", gpu.alias));
            assert_eq!(alias["vendor_id"], gpu.vendor_id.as_str());
            assert_eq!(alias["product_id"], gpu.device_id.as_str());
            assert_eq!(alias["device_type"], "type-PCI");
            assert_eq!(alias["numa_policy"], "preferred");
            // The pinned, huge-page GPU flavors need the host's pinning sets.
            let layout = node.layout.as_ref().expect("a GPU host has a layout");
            assert_eq!(
                values(text, "compute", "cpu_dedicated_set"),
                [strata_fleet::numa::cpu_ranges(&layout.dedicated).as_str()],
                "{path}"
            );
            assert_eq!(
                values(text, "compute", "cpu_shared_set"),
                [strata_fleet::numa::cpu_ranges(&layout.shared).as_str()],
                "{path}"
            );
            assert_eq!(
                values(text, "DEFAULT", "reserved_host_memory_mb"),
                [layout.reserved_host_memory_mb.to_string().as_str()],
                "{path}"
            );
        }
        assert!(gpu_hosts > 0, "the example DCs have GPU hosts");
        // An 8-GPU flavor does not fit one NUMA cell of an H100 host: it spans both,
        // the GPUs split; a 1-GPU flavor stays on one.
        let spec = |name: &str, key: &str| {
            dc.openstack
                .flavors
                .iter()
                .find(|f| f.name == name)
                .and_then(|f| f.extra_specs.iter().find(|(k, _)| k == key))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(spec("g1.h100x8", "hw:numa_nodes").as_deref(), Some("2"));
        assert_eq!(spec("g1.h100x1", "hw:numa_nodes"), None);
    }
    let got: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(got, expected);
}

/// A DC without GPU hosts still gets the aliases its GPU flavors need (so nova-api
/// accepts them); a DC with neither gets no file.
#[test]
fn dcs_without_gpus() {
    let mut fleet = strata_testkit::example_fleet();
    for node in &mut fleet.dcs[0].openstack.compute {
        node.gpu = None;
    }
    for node in &mut fleet.dcs[1].openstack.compute {
        node.gpu = None;
    }
    for flavor in &mut fleet.dcs[1].openstack.flavors {
        flavor.pci_alias = None;
        flavor
            .extra_specs
            .retain(|(k, _)| k != "pci_passthrough:alias");
    }
    let files = nova_pci::render(&fleet).expect("renders");
    let first = &fleet.dcs[0].name;
    let second = fleet.dcs[1].name.clone();
    let first_files: Vec<&str> = files
        .iter()
        .filter(|f| f.path.starts_with(&format!("{first}/")))
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(first_files, [format!("{first}/kolla/config/nova.conf")]);
    assert!(
        file(&files, first_files[0])
            .content
            .contains("alias = {\"name\": \"gpu-h100\"")
    );
    // The DC without any GPU still gets the DC-wide file on Kolla 2026.2: it switches
    // Nova to unified limits (team quotas), with no `[pci]` section.
    let second_files: Vec<&RenderedFile> = files
        .iter()
        .filter(|f| f.path.starts_with(&format!("{second}/")))
        .collect();
    assert_eq!(second_files.len(), 1, "{second_files:#?}");
    let conf = &second_files[0].content;
    assert!(
        conf.contains("driver = nova.quota.UnifiedLimitsDriver"),
        "{conf}"
    );
    assert!(
        !conf.contains("[pci]") && !conf.contains("pci_in_placement"),
        "{conf}"
    );
    // On the legacy quota driver, a DC without GPUs gets nothing.
    for dc in &mut fleet.dcs {
        dc.openstack.kolla_release = "2025.1".into();
    }
    let legacy = nova_pci::render(&fleet).expect("renders");
    assert!(
        legacy
            .iter()
            .all(|f| !f.path.starts_with(&format!("{second}/")))
    );
    assert!(legacy.iter().all(|f| !f.content.contains("[quota]")));
    let Some(verifier) = verifier() else { return };
    let checks = verify(&verifier, &files);
    assert!(checks.iter().all(|c| c.ok), "{}", failures(&checks));
}

#[test]
fn real_tools_accept_every_file() {
    let Some(verifier) = verifier() else { return };
    let files = nova_pci::render(&strata_testkit::example_fleet()).expect("renders");
    assert!(!files.is_empty());
    let checks = verify(&verifier, &files);
    assert_eq!(checks.len(), files.len());
    assert!(checks.iter().all(|c| c.ok), "{}", failures(&checks));
}

#[test]
fn real_tools_reject_broken_files() {
    let Some(verifier) = verifier() else { return };
    let fleet = strata_testkit::example_fleet();
    let files = nova_pci::render(&fleet).expect("renders");
    let host = fqdn(&fleet, "fra1", "fra1-r02-cmp20");
    let dc = &file(&files, "fra1/kolla/config/nova.conf").content;
    let gpu = &file(&files, &format!("fra1/kolla/config/nova/{host}/nova.conf")).content;
    let broken = [
        (
            "five-digit product_id",
            gpu.replace("\"2330\"", "\"23300\""),
        ),
        (
            "device_spec that is not JSON",
            gpu.replace("\"2330\"}", "\"2330\""),
        ),
        ("no [pci] section", gpu.replace("[pci]", "[pci_devices]")),
        (
            "alias with an unknown NUMA policy",
            dc.replace("\"preferred\"", "\"nearby\""),
        ),
        (
            "alias with an unknown key",
            dc.replace("\"device_type\"", "\"kind\": \"x\", \"device_type\""),
        ),
        (
            "deprecated passthrough_whitelist",
            gpu.replace("device_spec =", "passthrough_whitelist ="),
        ),
        (
            "unknown quota driver",
            dc.replace(
                "nova.quota.UnifiedLimitsDriver",
                "nova.quota.KeystoneDriver",
            ),
        ),
        (
            "unified limits without the service to read",
            dc.replace("endpoint_service_type = compute", ""),
        ),
        (
            "unified limits with two scopes",
            dc.replace(
                "system_scope = all",
                "system_scope = all\nproject_name = service",
            ),
        ),
        (
            "report_in_placement that is not a boolean",
            gpu.replace("report_in_placement = true", "report_in_placement = maybe"),
        ),
    ];
    for (what, text) in broken {
        assert!(
            text != *gpu && text != *dc,
            "{what}: corruption did not apply"
        );
        let check = verify_text(&verifier, &text);
        assert!(!check.ok, "{what}: accepted:\n{}", check.output);
    }
}
