//! The Proxmox `/etc/network/interfaces` renderer: snapshots, determinism, structure,
//! and ifupdown2's syntax check.
//!
//! The tool tests need ifupdown2 and root (`scripts/install-test-deps.sh`); without
//! them they fail unless `STRATA_SKIP_TOOL_TESTS=1`, which turns them into a note.

// Test code: a panic is the failure report, so unwrapping is fine here.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use strata_fleet::Fleet;
use strata_render::{FileKind, RenderedFile, proxmox};
use strata_spec::{BondMode, InfraVlan};
use strata_verify::{Check, Verifier};

const KIND: FileKind = FileKind::ProxmoxInterfaces;

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
                &format!("the ifupdown2 tool test: {message}"),
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

/// The stanza of `iface` in `text`: from its `iface` line to the next blank line.
fn stanza<'a>(text: &'a str, iface: &str) -> &'a str {
    let head = format!("\niface {iface} ");
    let start = text
        .find(&head)
        .unwrap_or_else(|| panic!("no stanza for {iface} in\n{text}"))
        + 1;
    let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
    &text[start..end]
}

#[test]
fn snapshots() {
    let files = proxmox::render(&strata_testkit::example_fleet()).expect("renders");
    insta::assert_snapshot!(
        "node",
        file(&files, "fra1/proxmox/fra1-r01-pve01/interfaces").content
    );
}

#[test]
fn deterministic() {
    let fleet = strata_testkit::example_fleet();
    let first = proxmox::render(&fleet).expect("renders");
    assert_eq!(first, proxmox::render(&fleet).expect("renders"));
    assert_eq!(
        first,
        proxmox::render(&strata_testkit::example_fleet()).expect("renders")
    );
    let mut sorted = first.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(first, sorted, "files are sorted by path");
}

#[test]
fn every_node_has_its_corosync_links_and_host_interfaces() {
    let fleet = strata_testkit::example_fleet();
    let files = proxmox::render(&fleet).expect("renders");
    assert!(files.iter().all(|f| f.kind == KIND));
    let mut expected = 0;
    for dc in &fleet.dcs {
        for cluster in &dc.proxmox {
            assert!(!cluster.corosync_links.is_empty());
            for node in &cluster.nodes {
                expected += 1;
                let path = format!("{}/proxmox/{}/interfaces", dc.name, node.hostname);
                let text = &file(&files, &path).content;
                let machine = dc
                    .machines
                    .iter()
                    .find(|m| m.hostname == node.hostname)
                    .expect("node machine");
                assert_eq!(node.links.len(), cluster.corosync_links.len());
                for (index, (vlan, address)) in
                    cluster.corosync_links.iter().zip(&node.links).enumerate()
                {
                    let host = machine
                        .interfaces
                        .iter()
                        .find(|i| i.vlan == *vlan)
                        .expect("interface on the corosync link's VLAN");
                    assert_eq!(host.address.addr(), *address);
                    let iface = format!("vmbr0.{}", host.vid);
                    assert!(
                        stanza(text, &iface).contains(&format!("\taddress {}\n", host.address)),
                        "{path}: link{index} address {address} on {iface}"
                    );
                    let comment = text
                        .lines()
                        .take_while(|l| *l != format!("auto {iface}"))
                        .last()
                        .unwrap_or_default();
                    assert!(
                        comment.starts_with('#')
                            && comment.contains(&format!("corosync link{index}")),
                        "{path}: {iface} is not marked as corosync link{index}: {comment:?}"
                    );
                }
                for i in &machine.interfaces {
                    let iface = format!("vmbr0.{}", i.vid);
                    assert!(
                        text.contains(&format!("\nauto {iface}\n")),
                        "{path}: auto {iface}"
                    );
                    let s = stanza(text, &iface);
                    assert!(
                        s.starts_with(&format!("iface {iface} inet static\n")),
                        "{s}"
                    );
                    assert!(s.contains(&format!("\tmtu {}", i.mtu)), "{s}");
                    assert_eq!(
                        s.contains("\tgateway "),
                        i.vlan == InfraVlan::Management,
                        "{path}: gateway only on management\n{s}"
                    );
                }
                let bond = stanza(text, "bond0");
                assert!(
                    bond.contains("\tbond-slaves ens1f0np0 ens1f1np1\n"),
                    "{bond}"
                );
                assert!(
                    bond.contains(&format!("\tmtu {}", fleet.mtu.underlay)),
                    "{bond}"
                );
                let bridge = stanza(text, "vmbr0");
                assert!(bridge.contains("\tbridge-ports bond0\n"), "{bridge}");
                assert!(bridge.contains("\tbridge-vlan-aware yes\n"), "{bridge}");
                assert!(
                    !text.contains(&machine.bmc.credential.to_string()),
                    "{path}: BMC"
                );
            }
        }
    }
    assert_eq!(files.len(), expected);
}

#[test]
fn bridge_vids_cover_infra_and_tenant_vlans() {
    let fleet = strata_testkit::example_fleet();
    let files = proxmox::render(&fleet).expect("renders");
    for dc in &fleet.dcs {
        let tenant = &dc.blueprint.vlans.tenant;
        for f in files
            .iter()
            .filter(|f| f.path.starts_with(&format!("{}/", dc.name)))
        {
            let line = f
                .content
                .lines()
                .find_map(|l| l.strip_prefix("\tbridge-vids "))
                .expect("bridge-vids");
            let mut singles = Vec::new();
            let mut ranges = Vec::new();
            for part in line.split(' ') {
                match part.split_once('-') {
                    Some((a, b)) => {
                        ranges.push((a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap()))
                    }
                    None => singles.push(part.parse::<u32>().unwrap()),
                }
            }
            assert_eq!(ranges, vec![(tenant.first, tenant.last)], "{}", f.path);
            let covered =
                |v: u32| singles.contains(&v) || ranges.iter().any(|(a, b)| *a <= v && v <= *b);
            for v in &dc.vlans {
                assert!(covered(u32::from(v.vid)), "{}: VLAN {}", f.path, v.vid);
            }
            for n in fleet.tenants.iter().flat_map(|t| &t.networks) {
                assert!(
                    covered(u32::from(n.vlan)),
                    "{}: tenant VLAN {}",
                    f.path,
                    n.vlan
                );
            }
        }
    }
}

#[test]
fn the_bond_carries_the_native_vlan_untagged() {
    let fleet = strata_testkit::example_fleet();
    let files = proxmox::render(&fleet).expect("renders");
    for dc in &fleet.dcs {
        let native = dc.vlans.iter().find(|v| v.native).expect("a native VLAN");
        for f in files
            .iter()
            .filter(|f| f.path.starts_with(&format!("{}/", dc.name)))
        {
            let bond = stanza(&f.content, "bond0");
            assert!(
                bond.lines()
                    .any(|l| l == format!("\tbridge-pvid {}", native.vid)),
                "{}: {bond}",
                f.path
            );
            assert_eq!(f.content.matches("bridge-pvid").count(), 1, "{}", f.path);
        }
    }
}

#[test]
fn ifupdown2_accepts_every_file() {
    let Some(verifier) = verifier() else { return };
    let files = proxmox::render(&strata_testkit::example_fleet()).expect("renders");
    assert!(!files.is_empty());
    let checks = verify(&verifier, &files);
    assert_eq!(checks.len(), files.len());
    assert!(
        checks.iter().all(|c| c.ok),
        "ifupdown2 rejected:\n{}",
        failures(&checks)
    );
}

#[test]
fn ifupdown2_rejects_a_broken_bond_mode() {
    let Some(verifier) = verifier() else { return };
    let files = proxmox::render(&strata_testkit::example_fleet()).expect("renders");
    let mut broken = file(&files, "fra1/proxmox/fra1-r01-pve01/interfaces").clone();
    assert!(broken.content.contains("\tbond-mode 802.3ad\n"));
    broken.content = broken
        .content
        .replace("\tbond-mode 802.3ad\n", "\tbond-mode nonsense\n");
    let checks = verify(&verifier, &[broken]);
    assert!(
        !checks[0].ok,
        "ifupdown2 accepted bond-mode nonsense:\n{}",
        checks[0].output
    );
    assert!(
        checks[0].output.contains("nonsense"),
        "{}",
        checks[0].output
    );
}

/// The example fleet with every bond of the Proxmox nodes' profile changed by `f`.
fn with_bonds(f: impl Fn(&mut strata_spec::Bond)) -> Fleet {
    let mut fleet = strata_testkit::example_fleet();
    let p = fleet
        .profiles
        .iter_mut()
        .find(|p| p.name.as_str() == "hv-std")
        .expect("profile");
    p.bonds.iter_mut().for_each(f);
    fleet
}

#[test]
fn active_backup_bonds_have_no_lacp_options() {
    let fleet = with_bonds(|b| b.mode = BondMode::ActiveBackup);
    let files = proxmox::render(&fleet).expect("renders");
    let node = file(&files, "fra1/proxmox/fra1-r01-pve01/interfaces");
    let bond = stanza(&node.content, "bond0");
    assert!(bond.contains("\tbond-mode active-backup\n"), "{bond}");
    assert!(!bond.contains("lacp") && !bond.contains("xmit"), "{bond}");
    let Some(verifier) = verifier() else { return };
    let checks = verify(&verifier, std::slice::from_ref(node));
    assert!(checks[0].ok, "{}", failures(&checks));
}

#[test]
fn without_a_bond_the_first_nic_carries_the_native_vlan() {
    let mut fleet = strata_testkit::example_fleet();
    let p = fleet
        .profiles
        .iter_mut()
        .find(|p| p.name.as_str() == "hv-std")
        .expect("profile");
    p.bonds.clear();
    let nic = p.nics[0].name.clone();
    let files = proxmox::render(&fleet).expect("renders");
    let node = file(&files, "fra1/proxmox/fra1-r01-pve01/interfaces");
    let port = stanza(&node.content, &nic);
    assert!(port.lines().any(|l| l == "\tbridge-pvid 10"), "{port}");
    assert_eq!(
        node.content.matches("bridge-pvid").count(),
        1,
        "{}",
        node.content
    );
    assert!(!node.content.contains("iface bond0"), "{}", node.content);
    let Some(verifier) = verifier() else { return };
    let checks = verify(&verifier, std::slice::from_ref(node));
    assert!(checks[0].ok, "{}", failures(&checks));
}

#[test]
fn free_text_that_would_inject_lines_is_a_render_error() {
    let fleet = with_bonds(|b| b.xmit_hash_policy = "layer3+4\n\taddress 192.0.2.1/24".to_string());
    let e = proxmox::render(&fleet).expect_err("not a token");
    let failure = e
        .failures
        .iter()
        .find(|f| f.path == "fra1/proxmox/fra1-r01-pve01/interfaces")
        .unwrap_or_else(|| panic!("fra1-r01-pve01 not among the failures: {e}"));
    assert!(
        failure.reason.contains("not a plain interface-file token"),
        "{}",
        failure.reason
    );
    // One line per failure: no template dump in the message.
    assert_eq!(e.to_string().lines().count(), 1 + e.failures.len(), "{e}");
}
