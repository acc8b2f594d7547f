//! The cloud-init renderer: snapshots, determinism, structure, and `cloud-init schema`.
//!
//! The tool tests need cloud-init (`scripts/install-test-deps.sh`); without it they
//! fail unless `STRATA_SKIP_TOOL_TESTS=1`, which turns them into a printed note.

use std::collections::BTreeSet;
use std::path::Path;

use strata_render::{FileKind, RenderedFile, cloud_init};
use strata_spec::MachineRole;
use strata_verify::{Check, Verifier};

const KIND: FileKind = FileKind::CloudInit;

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
                &format!("the cloud-init tool test: {message}"),
            );
            None
        }
        Some(message) => panic!(
            "{message}\nrun scripts/install-test-deps.sh (or set STRATA_SKIP_TOOL_TESTS=1 to skip tool tests)"
        ),
    }
}

/// Write `files` under a fresh temporary directory and verify them all.
fn verify(verifier: &Verifier, files: &[RenderedFile]) -> Vec<Check> {
    let dir = tempfile::tempdir().expect("tempdir");
    write_all(dir.path(), files);
    let list: Vec<(String, FileKind)> = files.iter().map(|f| (f.path.clone(), f.kind)).collect();
    verifier.verify_dir(dir.path(), &list)
}

fn write_all(root: &Path, files: &[RenderedFile]) {
    for f in files {
        let path = root.join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &f.content).expect("write");
    }
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

#[test]
fn snapshots() {
    let files = cloud_init::render(&strata_testkit::example_fleet()).expect("renders");
    insta::assert_snapshot!(
        "compute_with_gpus",
        file(&files, "fra1/cloud-init/openstack-compute.yaml").content
    );
    insta::assert_snapshot!(
        "storage",
        file(&files, "fra1/cloud-init/openstack-storage.yaml").content
    );
}

#[test]
fn deterministic() {
    let fleet = strata_testkit::example_fleet();
    let first = cloud_init::render(&fleet).expect("renders");
    assert_eq!(first, cloud_init::render(&fleet).expect("renders"));
    assert_eq!(
        first,
        cloud_init::render(&strata_testkit::example_fleet()).expect("renders")
    );
    let mut sorted = first.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(first, sorted, "files are sorted by path");
}

#[test]
fn one_file_per_role_present_in_each_dc() {
    let fleet = strata_testkit::example_fleet();
    let files = cloud_init::render(&fleet).expect("renders");
    assert!(files.iter().all(|f| f.kind == KIND));
    let mut expected = BTreeSet::new();
    for dc in &fleet.dcs {
        for m in dc
            .machines
            .iter()
            .filter(|m| m.role != MachineRole::Proxmox)
        {
            expected.insert(format!("{}/cloud-init/{}.yaml", dc.name, m.role.as_str()));
        }
    }
    let actual: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(actual, expected);

    for dc in &fleet.dcs {
        for f in files
            .iter()
            .filter(|f| f.path.starts_with(&format!("{}/", dc.name)))
        {
            let text = &f.content;
            assert!(text.starts_with("#cloud-config\n"), "{}", f.path);
            assert!(text.contains("\npackage_update: true\n"), "{}", f.path);
            assert!(
                text.contains("\nntp:\n  enabled: true\n  ntp_client: chrony\n"),
                "{}",
                f.path
            );
            assert!(text.contains("  - path: /etc/strata/role\n"), "{}", f.path);
            assert!(
                text.contains(&format!("      dc={}\n", dc.name))
                    && text.contains(&format!("      fleet_id={}\n", fleet.organisation.fleet_id)),
                "{}",
                f.path
            );
            for m in &dc.machines {
                assert!(
                    !text.contains(&m.bmc.credential.to_string()),
                    "{}: BMC credential reference",
                    f.path
                );
            }
        }
    }
    let storage = file(&files, "fra1/cloud-init/openstack-storage.yaml");
    for p in ["lvm2", "nvme-cli"] {
        assert!(storage.content.contains(&format!("  - {p}\n")), "{p}");
    }
    let compute = file(&files, "fra1/cloud-init/openstack-compute.yaml");
    assert!(compute.content.contains("No GPU driver is installed"));
    assert!(!storage.content.contains("GPU"));
}

#[test]
fn cloud_init_accepts_every_file() {
    let Some(verifier) = verifier() else { return };
    let files = cloud_init::render(&strata_testkit::example_fleet()).expect("renders");
    assert!(!files.is_empty());
    let checks = verify(&verifier, &files);
    assert_eq!(checks.len(), files.len());
    assert!(
        checks.iter().all(|c| c.ok),
        "cloud-init rejected:\n{}",
        failures(&checks)
    );
}

#[test]
fn cloud_init_rejects_broken_user_data() {
    let Some(verifier) = verifier() else { return };
    let files = cloud_init::render(&strata_testkit::example_fleet()).expect("renders");
    let good = file(&files, "fra1/cloud-init/openstack-compute.yaml");

    // `packages` as a number instead of a list.
    let start = good.content.find("packages:\n").expect("packages");
    let end = good.content[start..].find("ntp:\n").expect("ntp") + start;
    let mut packages = good.clone();
    packages.path = "broken/packages.yaml".into();
    packages.content = format!(
        "{}packages: 5\n{}",
        &good.content[..start],
        &good.content[end..]
    );
    // A `write_files` entry whose `path` key is misspelt.
    let mut write_files = good.clone();
    write_files.path = "broken/write_files.yaml".into();
    write_files.content = good
        .content
        .replace("  - path: /etc/strata/role", "  - pth: /etc/strata/role");
    assert_ne!(write_files.content, good.content);

    let checks = verify(&verifier, &[packages, write_files]);
    for c in &checks {
        assert!(!c.ok, "cloud-init accepted {}:\n{}", c.path, c.output);
    }
    assert!(
        checks[0].output.contains("packages"),
        "{}",
        checks[0].output
    );
}
