//! FRR renderer: snapshots, determinism, fabric invariants and `vtysh -C` validation.

use std::path::Path;

use strata_fleet::{Fleet, SessionKind, SwitchRole};
use strata_render::{FileKind, RenderedFile, frr};
use strata_verify::Verifier;

fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a RenderedFile {
    files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no rendered file {path}"))
}

/// The verifier, or `None` (skip) when vtysh is absent and STRATA_SKIP_TOOL_TESTS=1.
fn verifier(kind: FileKind) -> Option<Verifier> {
    let verifier = Verifier::discover();
    if let Some(missing) = verifier.missing(kind) {
        if strata_testkit::OptOut::Tools.is_set() {
            strata_testkit::skip_note(
                strata_testkit::OptOut::Tools,
                &format!("the FRR tool check ({missing})"),
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
fn one_file_per_switch() {
    let fleet = strata_testkit::example_fleet();
    let files = frr::render(&fleet).expect("renders");
    let switches: usize = fleet.dcs.iter().map(|dc| dc.switches.len()).sum();
    assert_eq!(files.len(), switches);
    for f in &files {
        assert_eq!(f.kind, FileKind::FrrConf);
        assert!(f.content.ends_with("end\n"), "{}", f.path);
        assert!(
            !f.content.contains("strata: render"),
            "{}:\n{}",
            f.path,
            f.content
        );
    }
    let mut paths: Vec<_> = files.iter().map(|f| f.path.clone()).collect();
    paths.sort();
    assert_eq!(
        paths,
        files.iter().map(|f| f.path.clone()).collect::<Vec<_>>()
    );
    // waw1 has four spines through its override.
    assert_eq!(
        files
            .iter()
            .filter(|f| f.path.starts_with("waw1/frr/waw1-spine"))
            .count(),
        4
    );
}

#[test]
fn snapshots() {
    let fleet = strata_testkit::example_fleet();
    let files = frr::render(&fleet).expect("renders");
    insta::assert_snapshot!(
        "waw1_spine01",
        file(&files, "waw1/frr/waw1-spine01.conf").content
    );
    insta::assert_snapshot!(
        "waw1_r01_leaf1",
        file(&files, "waw1/frr/waw1-r01-leaf1.conf").content
    );
    insta::assert_snapshot!(
        "waw1_border1",
        file(&files, "waw1/frr/waw1-border1.conf").content
    );
}

#[test]
fn deterministic() {
    let fleet = strata_testkit::example_fleet();
    assert_eq!(
        frr::render(&fleet).expect("renders"),
        frr::render(&fleet).expect("renders")
    );
    assert_eq!(
        frr::render(&fleet).expect("renders"),
        frr::render(&strata_testkit::example_fleet()).expect("renders")
    );
}

fn config<'a>(files: &'a [RenderedFile], dc: &str, switch: &str) -> &'a str {
    &file(files, &format!("{dc}/frr/{switch}.conf")).content
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.trim() == line)
}

#[test]
fn leaves_peer_with_every_spine_and_spines_have_no_vrfs() {
    let fleet: Fleet = strata_testkit::example_fleet();
    let files = frr::render(&fleet).expect("renders");
    for dc in &fleet.dcs {
        let spines: Vec<_> = dc
            .switches
            .iter()
            .filter(|s| s.role == SwitchRole::Spine)
            .collect();
        assert!(!spines.is_empty());
        for sw in &dc.switches {
            let text = config(&files, &dc.name, &sw.name);
            assert!(
                has_line(text, &format!("router bgp {}", sw.asn)),
                "{}",
                sw.name
            );
            assert!(has_line(text, &format!("bgp router-id {}", sw.loopback)));
            match sw.role {
                SwitchRole::Spine => {
                    for l in text.lines() {
                        let l = l.trim();
                        assert!(
                            !(l.starts_with("vrf ")
                                || l.starts_with("vni ")
                                || l.contains(" vrf ")
                                || l == "advertise-all-vni"),
                            "{}: spine has VRF/VNI configuration: {l}",
                            sw.name
                        );
                    }
                    assert!(has_line(text, "address-family l2vpn evpn"));
                    assert!(has_line(
                        text,
                        &format!("neighbor {} activate", frr::FABRIC_GROUP)
                    ));
                }
                SwitchRole::Leaf | SwitchRole::Border => {
                    assert!(has_line(text, "advertise-all-vni"), "{}", sw.name);
                    let vtep = sw.vtep.expect("a leaf has a VTEP");
                    assert!(has_line(text, &format!("ip address {vtep}/32")));
                    assert!(has_line(text, &format!("network {vtep}/32")));
                    // A neighbour for every spine, at the spine's end of their link,
                    // with the spine's AS.
                    for spine in &spines {
                        let link = spine
                            .interfaces
                            .iter()
                            .find(|i| i.peer == sw.name)
                            .unwrap_or_else(|| panic!("{} has no link to {}", spine.name, sw.name));
                        let addr = link.address.addr();
                        assert!(
                            has_line(text, &format!("neighbor {addr} remote-as {}", spine.asn)),
                            "{} lacks `neighbor {addr} remote-as {}`:\n{text}",
                            sw.name,
                            spine.asn
                        );
                        assert!(has_line(
                            text,
                            &format!("neighbor {addr} description {}", spine.name)
                        ));
                        assert!(has_line(
                            text,
                            &format!("neighbor {addr} peer-group {}", frr::FABRIC_GROUP)
                        ));
                    }
                    for tenant in &fleet.tenants {
                        assert!(has_line(text, &format!("vrf {}", tenant.vrf)));
                        assert!(has_line(text, &format!("vni {}", tenant.l3_vni)));
                        assert!(has_line(
                            text,
                            &format!("router bgp {} vrf {}", sw.asn, tenant.vrf)
                        ));
                    }
                }
            }
            // Interconnects: the remote border leaf's address and AS.
            for s in dc.bgp.iter().filter(|s| s.local == sw.name) {
                assert!(has_line(
                    text,
                    &format!("neighbor {} remote-as {}", s.peer_address, s.remote_asn)
                ));
                if s.kind == SessionKind::Interconnect {
                    let peer_asn = fleet
                        .dc(&s.peer_dc)
                        .and_then(|d| d.switch(&s.peer))
                        .map(|p| p.asn);
                    assert_eq!(peer_asn, Some(s.remote_asn), "{} -> {}", sw.name, s.peer);
                    assert!(has_line(
                        text,
                        &format!("neighbor {} peer-group {}", s.peer_address, frr::DCI_GROUP)
                    ));
                }
            }
        }
    }
}

#[test]
fn real_tool_accepts_every_file() {
    let Some(verifier) = verifier(FileKind::FrrConf) else {
        return;
    };
    let fleet = strata_testkit::example_fleet();
    let files = frr::render(&fleet).expect("renders");
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
        "vtysh rejected:\n{}",
        failed.join("\n\n")
    );
}

#[test]
fn real_tool_rejects_a_broken_file() {
    let Some(verifier) = verifier(FileKind::FrrConf) else {
        return;
    };
    let fleet = strata_testkit::example_fleet();
    let files = frr::render(&fleet).expect("renders");
    let leaf = file(&files, "waw1/frr/waw1-r01-leaf1.conf");
    let dir = tempfile::tempdir().expect("tempdir");

    // An AS number above 2^32-1, as a typo in a lock file would give.
    let sw = fleet
        .dc("waw1")
        .and_then(|d| d.switch("waw1-r01-leaf1"))
        .expect("leaf");
    let spine_asn = fleet.dc("waw1").expect("waw1").spine_asn;
    let needle = format!("remote-as {spine_asn}");
    assert!(leaf.content.contains(&needle));
    let bad_asn = leaf.content.replacen(&needle, "remote-as 42000000020", 1);
    let path = dir.path().join("bad-asn.conf");
    std::fs::write(&path, bad_asn).expect("write");
    let check = verifier.verify_file(&path, FileKind::FrrConf);
    assert!(!check.ok, "vtysh accepted a bad ASN:\n{}", check.output);

    // An unknown command inside `router bgp`.
    let needle = format!("router bgp {}\n", sw.asn);
    let unknown = leaf
        .content
        .replacen(&needle, &format!("{needle} bgp frobnicate-paths 3\n"), 1);
    assert_ne!(unknown, leaf.content);
    let path = dir.path().join("unknown-command.conf");
    std::fs::write(&path, unknown).expect("write");
    let check = verifier.verify_file(&path, FileKind::FrrConf);
    assert!(
        !check.ok,
        "vtysh accepted an unknown command:\n{}",
        check.output
    );
    assert!(check.output.contains("Unknown command"), "{}", check.output);
}
