//! The real validators against known-good and deliberately broken samples.
//!
//! Every verified kind has `tests/samples/<kind>/good.*`, which its tool must accept,
//! and `broken.*`, which it must reject: a verifier that passes everything fails here.
//!
//! The tools come from `scripts/install-test-deps.sh`. A missing tool fails the test
//! with that hint, unless `STRATA_SKIP_TOOL_TESTS=1` (then the test prints a note and
//! passes).

use std::path::{Path, PathBuf};

use strata_render::FileKind;
use strata_verify::{Check, Verifier};

fn samples_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples")
}

/// `tests/samples/<kind>/<stem>.*`
fn sample(kind: FileKind, stem: &str) -> PathBuf {
    let dir = samples_root().join(kind.as_str());
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .find(|path| path.is_file() && path.file_stem().is_some_and(|s| s == stem))
        .unwrap_or_else(|| panic!("no {stem}.* in {}", dir.display()))
}

fn skipping() -> bool {
    strata_testkit::OptOut::Tools.is_set()
}

/// A verifier that has the tools for all of `kinds`; `None` (after a note) when one is
/// missing and STRATA_SKIP_TOOL_TESTS=1; a failed test when one is missing otherwise.
fn verifier_for(kinds: &[FileKind]) -> Option<Verifier> {
    let verifier = Verifier::discover();
    for &kind in kinds {
        if let Some(message) = verifier.missing(kind) {
            if skipping() {
                strata_testkit::skip_note(
                    strata_testkit::OptOut::Tools,
                    &format!("the {} tool test: {message}", kind.as_str()),
                );
                return None;
            }
            panic!(
                "{message}\n(the {} check needs it; set STRATA_SKIP_TOOL_TESTS=1 to skip tool tests)",
                kind.as_str()
            );
        }
    }
    Some(verifier)
}

fn describe(check: &Check) -> String {
    format!(
        "{} ({}) with {}: ok={}\n$ {}\n{}",
        check.path,
        check.kind.as_str(),
        check.tool,
        check.ok,
        check.command,
        check.output
    )
}

/// The good sample passes; the broken one fails, and the tool's output says why.
fn good_and_broken(kind: FileKind, broken_says: &str) {
    let Some(verifier) = verifier_for(&[kind]) else {
        return;
    };

    let good = verifier.verify_file(&sample(kind, "good"), kind);
    assert!(good.ok, "good sample rejected:\n{}", describe(&good));
    assert!(!good.command.is_empty(), "{}", describe(&good));

    let broken = verifier.verify_file(&sample(kind, "broken"), kind);
    assert!(!broken.ok, "broken sample accepted:\n{}", describe(&broken));
    assert!(
        broken.output.contains(broken_says),
        "expected {broken_says:?} in the output:\n{}",
        describe(&broken)
    );
}

/// Write `content` to a temporary file named `name` and verify it as `kind`.
fn verify_text(verifier: &Verifier, kind: FileKind, name: &str, content: &str) -> Check {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write sample");
    verifier.verify_file(&path, kind)
}

#[test]
fn frr_conf() {
    good_and_broken(FileKind::FrrConf, "Unknown command");
}

#[test]
fn netplan() {
    good_and_broken(FileKind::Netplan, "unknown bond mode 'nonsense'");
}

#[test]
fn cloud_init() {
    good_and_broken(FileKind::CloudInit, "runcmd: 5 is not of type 'array'");
}

#[test]
fn proxmox_interfaces() {
    good_and_broken(
        FileKind::ProxmoxInterfaces,
        "bond-mode: invalid value \"nonsense\"",
    );
}

#[test]
fn keepalived() {
    good_and_broken(FileKind::Keepalived, "VRID '999' not valid");
}

#[test]
fn kolla_inventory() {
    good_and_broken(
        FileKind::KollaInventory,
        "Expected key=value host variable assignment",
    );
}

#[test]
fn kolla_globals() {
    good_and_broken(
        FileKind::KollaGlobals,
        "could not be made into a dictionary",
    );
}

#[test]
fn nova_pci() {
    good_and_broken(
        FileKind::NovaPci,
        "product_id must be a string of 4 hex digits",
    );
}

#[test]
fn neutron_ml2() {
    good_and_broken(FileKind::NeutronMl2, "the range ends before it starts");
}

#[test]
fn prometheus() {
    good_and_broken(FileKind::Prometheus, "not a valid duration string");
}

#[test]
fn every_verified_kind_has_samples() {
    for kind in FileKind::VERIFIED {
        assert!(sample(kind, "good").is_file());
        assert!(sample(kind, "broken").is_file());
    }
}

/// The whole samples tree in one call: order kept, `other` skipped, parallel workers.
#[test]
fn verify_dir_keeps_order_and_skips_other() {
    let Some(verifier) = verifier_for(&FileKind::VERIFIED) else {
        return;
    };
    let root = samples_root();
    let rel = |kind: FileKind, stem: &str| {
        let path = sample(kind, stem);
        let rel = path.strip_prefix(&root).expect("sample under root");
        rel.to_string_lossy().into_owned()
    };
    let mut files = vec![("README.md".to_string(), FileKind::Other)];
    for kind in FileKind::VERIFIED {
        files.push((rel(kind, "good"), kind));
        files.push((rel(kind, "broken"), kind));
    }
    files.push(("../escape.conf".to_string(), FileKind::FrrConf));

    let checks = verifier.verify_dir(&root, &files);
    assert_eq!(
        checks.len(),
        files.len() - 1,
        "the `other` entry is skipped"
    );
    for (check, (path, kind)) in checks.iter().zip(&files[1..]) {
        assert_eq!(&check.path, path);
        assert_eq!(check.kind, *kind);
        let expect_ok = path.contains("/good.");
        assert_eq!(check.ok, expect_ok, "{}", describe(check));
    }
    let escape = checks.last().expect("escape check");
    assert!(escape.output.contains("refusing"), "{}", describe(escape));
}

#[test]
fn unreadable_file_is_a_failed_check() {
    let Some(verifier) = verifier_for(&[FileKind::Prometheus]) else {
        return;
    };
    let check = verifier.verify_file(
        Path::new("/nonexistent/prometheus.yml"),
        FileKind::Prometheus,
    );
    assert!(!check.ok);
    assert!(check.output.contains("cannot read"), "{}", describe(&check));
}

/// Facts about what the tools catch that the checks rely on (see the `kinds` docs).
#[test]
fn frr_rejects_malformed_values_not_only_unknown_words() {
    let Some(verifier) = verifier_for(&[FileKind::FrrConf]) else {
        return;
    };
    let check = verify_text(
        &verifier,
        FileKind::FrrConf,
        "frr.conf",
        "interface lo\n ip address 10.0.0.300/32\nexit\n",
    );
    assert!(!check.ok, "{}", describe(&check));
}

#[test]
fn netplan_deprecation_warnings_fail() {
    let Some(verifier) = verifier_for(&[FileKind::Netplan]) else {
        return;
    };
    let check = verify_text(
        &verifier,
        FileKind::Netplan,
        "50-old.yaml",
        "network:\n  version: 2\n  ethernets:\n    eno1:\n      addresses: [10.0.0.5/24]\n      gateway4: 10.0.0.1\n",
    );
    assert!(!check.ok, "{}", describe(&check));
    assert!(check.output.contains("gateway4"), "{}", describe(&check));
}

#[test]
fn cloud_init_deprecations_fail() {
    let Some(verifier) = verifier_for(&[FileKind::CloudInit]) else {
        return;
    };
    let check = verify_text(
        &verifier,
        FileKind::CloudInit,
        "user-data",
        "#cloud-config\nssh_pwauth: maybe\n",
    );
    assert!(!check.ok, "{}", describe(&check));
    assert!(check.output.contains("DEPRECATED"), "{}", describe(&check));
}

#[test]
fn ifupdown2_rejects_unknown_keywords() {
    let Some(verifier) = verifier_for(&[FileKind::ProxmoxInterfaces]) else {
        return;
    };
    let check = verify_text(
        &verifier,
        FileKind::ProxmoxInterfaces,
        "interfaces",
        "auto eno1\niface eno1 inet manual\n    bogus-keyword 5\n",
    );
    assert!(!check.ok, "{}", describe(&check));
    assert!(
        check.output.contains("bogus-keyword"),
        "{}",
        describe(&check)
    );
}

#[test]
fn ifupdown2_reads_only_the_given_file() {
    let Some(verifier) = verifier_for(&[FileKind::ProxmoxInterfaces]) else {
        return;
    };
    // The host's interfaces.d is masked, so sourcing it adds nothing (and cannot fail).
    let check = verify_text(
        &verifier,
        FileKind::ProxmoxInterfaces,
        "interfaces",
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n",
    );
    assert!(check.ok, "{}", describe(&check));
}

#[test]
fn keepalived_unknown_keyword_fails() {
    let Some(verifier) = verifier_for(&[FileKind::Keepalived]) else {
        return;
    };
    let good = std::fs::read_to_string(sample(FileKind::Keepalived, "good")).expect("read sample");
    let check = verify_text(
        &verifier,
        FileKind::Keepalived,
        "keepalived.conf",
        &good.replace("nopreempt", "bogus_keyword 5"),
    );
    assert!(!check.ok, "{}", describe(&check));
    assert!(
        check.output.contains("Unknown keyword 'bogus_keyword'"),
        "{}",
        describe(&check)
    );
}

#[test]
fn ansible_inventory_undefined_child_group_fails() {
    let Some(verifier) = verifier_for(&[FileKind::KollaInventory]) else {
        return;
    };
    let check = verify_text(
        &verifier,
        FileKind::KollaInventory,
        "multinode",
        "[control]\nctl-01\n\n[baremetal:children]\ncontrol\nnosuchgroup\n",
    );
    assert!(!check.ok, "{}", describe(&check));
    assert!(
        check.output.contains("undefined group"),
        "{}",
        describe(&check)
    );
}

#[test]
fn ansible_globals_duplicate_keys_fail() {
    let Some(verifier) = verifier_for(&[FileKind::KollaGlobals]) else {
        return;
    };
    let check = verify_text(
        &verifier,
        FileKind::KollaGlobals,
        "globals.yml",
        "kolla_base_distro: ubuntu\nkolla_base_distro: rocky\n",
    );
    assert!(!check.ok, "{}", describe(&check));
    assert!(check.output.contains("duplicate"), "{}", describe(&check));
}

#[test]
fn nova_pci_requires_a_pci_section() {
    let Some(verifier) = verifier_for(&[FileKind::NovaPci]) else {
        return;
    };
    let check = verify_text(
        &verifier,
        FileKind::NovaPci,
        "nova.conf",
        "[DEFAULT]\ndebug = True\n",
    );
    assert!(!check.ok, "{}", describe(&check));
    assert!(
        check.output.contains("no [pci] section"),
        "{}",
        describe(&check)
    );
}

#[test]
fn timeout_fails_the_check() {
    let Some(verifier) = verifier_for(&[FileKind::KollaGlobals]) else {
        return;
    };
    // Nothing real finishes in a millisecond: the check must fail, not hang or pass.
    let verifier = verifier.with_timeout(std::time::Duration::from_millis(1));
    let check = verifier.verify_file(
        &sample(FileKind::KollaGlobals, "good"),
        FileKind::KollaGlobals,
    );
    assert!(!check.ok, "{}", describe(&check));
    assert!(
        check.output.contains("did not finish"),
        "{}",
        describe(&check)
    );
}
