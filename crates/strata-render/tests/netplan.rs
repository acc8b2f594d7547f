//! The netplan renderer: snapshots, determinism, structure, and `netplan generate`.
//!
//! The tool tests need netplan (`scripts/install-test-deps.sh`); without it they fail
//! unless `STRATA_SKIP_TOOL_TESTS=1`, which turns them into a printed note.

use std::path::Path;

use strata_fleet::Fleet;
use strata_render::{FileKind, RenderedFile, netplan};
use strata_spec::{BondMode, InfraVlan, MachineRole};
use strata_verify::{Check, Verifier};

const KIND: FileKind = FileKind::Netplan;

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
                &format!("the netplan tool test: {message}"),
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
    let files = netplan::render(&strata_testkit::example_fleet()).expect("renders");
    insta::assert_snapshot!(
        "compute",
        file(&files, "fra1/netplan/fra1-r01-cmp04.yaml").content
    );
    insta::assert_snapshot!(
        "storage",
        file(&files, "fra1/netplan/fra1-r01-osd10.yaml").content
    );
    insta::assert_snapshot!(
        "gpu_compute",
        file(&files, "fra1/netplan/fra1-r02-cmp20.yaml").content
    );
}

#[test]
fn deterministic() {
    let fleet = strata_testkit::example_fleet();
    let first = netplan::render(&fleet).expect("renders");
    assert_eq!(first, netplan::render(&fleet).expect("renders"));
    assert_eq!(
        first,
        netplan::render(&strata_testkit::example_fleet()).expect("renders")
    );
    let mut sorted = first.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(first, sorted, "files are sorted by path");
}

#[test]
fn every_machine_but_proxmox_nodes_has_its_native_vlan_on_the_bond_and_a_vlan_per_other_interface()
{
    let fleet = strata_testkit::example_fleet();
    let files = netplan::render(&fleet).expect("renders");
    assert!(files.iter().all(|f| f.kind == KIND));
    let mut expected = 0;
    for dc in &fleet.dcs {
        for m in &dc.machines {
            let path = format!("{}/netplan/{}.yaml", dc.name, m.hostname);
            let found = files.iter().find(|f| f.path == path);
            if m.role == MachineRole::Proxmox {
                assert!(found.is_none(), "{path}: Proxmox nodes use ifupdown2");
                continue;
            }
            expected += 1;
            let text = &found.unwrap_or_else(|| panic!("no file {path}")).content;
            let bond = m.bond.as_deref().expect("example machines have a bond");
            assert!(!m.interfaces.is_empty(), "{path}: no host interfaces");
            for i in &m.interfaces {
                if dc.vlan(i.vlan).is_some_and(|v| v.native) {
                    // Untagged: the address sits on the bond itself, after its parameters.
                    assert_eq!(i.device, bond, "{path}: native VLAN device");
                    let stanza = format!(
                        "        mii-monitor-interval: 100\n      # {role} (VLAN {vid}): untagged, the leaf ports' native VLAN (LACP fallback, so PXE works before the bond is up)\n      addresses:\n        - {address}\n",
                        role = i.vlan,
                        vid = i.vid,
                        address = i.address,
                    );
                    assert!(
                        text.contains(&stanza),
                        "{path}: no untagged address on the bond\n{stanza}\nin\n{text}"
                    );
                    assert!(
                        !text.contains(&format!("    {bond}.{}:", i.vid)),
                        "{path}: the native VLAN is not also tagged"
                    );
                    continue;
                }
                let stanza = format!(
                    "    {bond}.{vid}:\n      id: {vid}\n      link: {bond}\n      mtu: {mtu}\n      addresses:\n        - {address}\n",
                    vid = i.vid,
                    mtu = i.mtu,
                    address = i.address,
                );
                assert!(
                    text.contains(&stanza),
                    "{path}: no VLAN stanza\n{stanza}\nin\n{text}"
                );
            }
            let management = m
                .interfaces
                .iter()
                .find(|i| i.vlan == InfraVlan::Management)
                .expect("management interface");
            assert_eq!(
                text.matches("- to: default").count(),
                1,
                "{path}: one default route"
            );
            assert!(
                text.contains(&format!(
                    "- to: default\n          via: {}\n",
                    management.gateway
                )),
                "{path}: default route via the management gateway"
            );
            assert!(!text.contains("gateway4"), "{path}: deprecated gateway4");
            assert!(
                text.contains(&format!("      mtu: {}\n", fleet.mtu.underlay)),
                "{path}: underlay MTU on the bond"
            );
            assert!(
                !text.contains(&m.bmc.credential.to_string()),
                "{path}: BMC credential"
            );
        }
    }
    assert_eq!(files.len(), expected);
}

#[test]
fn netplan_accepts_every_file() {
    let Some(verifier) = verifier() else { return };
    let files = netplan::render(&strata_testkit::example_fleet()).expect("renders");
    assert!(!files.is_empty());
    let checks = verify(&verifier, &files);
    assert_eq!(checks.len(), files.len());
    assert!(
        checks.iter().all(|c| c.ok),
        "netplan rejected:\n{}",
        failures(&checks)
    );
}

#[test]
fn netplan_rejects_a_broken_bond_mode() {
    let Some(verifier) = verifier() else { return };
    let files = netplan::render(&strata_testkit::example_fleet()).expect("renders");
    let mut broken = file(&files, "fra1/netplan/fra1-r01-cmp04.yaml").clone();
    assert!(broken.content.contains("mode: 802.3ad\n"));
    broken.content = broken
        .content
        .replace("mode: 802.3ad\n", "mode: 802.3adx\n");
    let checks = verify(&verifier, &[broken]);
    assert!(
        !checks[0].ok,
        "netplan accepted mode 802.3adx:\n{}",
        checks[0].output
    );
    assert!(
        checks[0].output.contains("802.3adx"),
        "{}",
        checks[0].output
    );
}

/// The example fleet with every bond of `profile` changed by `f`.
fn with_bonds(profile: &str, f: impl Fn(&mut strata_spec::Bond)) -> Fleet {
    let mut fleet = strata_testkit::example_fleet();
    let p = fleet
        .profiles
        .iter_mut()
        .find(|p| p.name.as_str() == profile)
        .expect("profile");
    p.bonds.iter_mut().for_each(f);
    fleet
}

#[test]
fn active_backup_bonds_have_no_lacp_parameters() {
    let fleet = with_bonds("storage-dense", |b| b.mode = BondMode::ActiveBackup);
    let files = netplan::render(&fleet).expect("renders");
    let osd = file(&files, "fra1/netplan/fra1-r01-osd10.yaml");
    assert!(
        osd.content.contains("mode: active-backup\n"),
        "{}",
        osd.content
    );
    assert!(!osd.content.contains("lacp-rate"), "{}", osd.content);
    assert!(
        !osd.content.contains("transmit-hash-policy"),
        "{}",
        osd.content
    );
    let Some(verifier) = verifier() else { return };
    let checks = verify(&verifier, std::slice::from_ref(osd));
    assert!(checks[0].ok, "{}", failures(&checks));
}

#[test]
fn without_a_bond_the_native_vlan_is_on_the_first_nic() {
    let mut fleet = strata_testkit::example_fleet();
    let p = fleet
        .profiles
        .iter_mut()
        .find(|p| p.name.as_str() == "storage-dense")
        .expect("profile");
    p.bonds.clear();
    let nic = p.nics[0].name.clone();
    let files = netplan::render(&fleet).expect("renders");
    let osd = file(&files, "fra1/netplan/fra1-r01-osd10.yaml");
    let dc = fleet.dc("fra1").expect("fra1");
    let m = dc
        .machines
        .iter()
        .find(|m| m.hostname == "fra1-r01-osd10")
        .expect("osd10");
    let prov = m
        .interfaces
        .iter()
        .find(|i| i.vlan == InfraVlan::Provisioning)
        .expect("provisioning");
    let stanza = format!(
        "  ethernets:\n    {nic}:\n      mtu: {}\n      # provisioning (VLAN {}): untagged",
        fleet.mtu.underlay, prov.vid
    );
    assert!(
        osd.content.contains(&stanza),
        "{stanza}\nin\n{}",
        osd.content
    );
    assert!(!osd.content.contains("bonds:"), "{}", osd.content);
    let Some(verifier) = verifier() else { return };
    let checks = verify(&verifier, std::slice::from_ref(osd));
    assert!(checks[0].ok, "{}", failures(&checks));
}

#[test]
fn free_text_from_profiles_cannot_change_the_yaml_structure() {
    let fleet = with_bonds("hv-std", |b| {
        b.xmit_hash_policy = "layer3+4\n      mode: balance-rr".to_string()
    });
    let files = netplan::render(&fleet).expect("renders");
    let cmp = file(&files, "fra1/netplan/fra1-r01-cmp04.yaml");
    assert!(
        cmp.content
            .contains("transmit-hash-policy: \"layer3+4\\n      mode: balance-rr\"\n"),
        "{}",
        cmp.content
    );
    assert_eq!(
        cmp.content.matches("\n        mode: ").count(),
        1,
        "{}",
        cmp.content
    );
}

#[test]
fn hosts_resolve_through_the_maas_region_and_only_on_the_management_interface() {
    let fleet = strata_testkit::example_fleet();
    let files = netplan::render(&fleet).expect("renders");
    for dc in &fleet.dcs {
        // The resolvers are the region controllers' management addresses.
        let region: Vec<String> = dc
            .vms
            .iter()
            .filter(|v| dc.maas.region_controllers.contains(&v.hostname))
            .filter_map(|v| {
                v.interfaces
                    .iter()
                    .find(|i| i.vlan == InfraVlan::Management)
            })
            .map(|i| i.address.addr().to_string())
            .collect();
        let resolvers: Vec<String> = dc
            .host_services
            .resolvers
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            !resolvers.is_empty() && resolvers.len() <= 3,
            "{resolvers:?}"
        );
        assert!(
            resolvers.iter().all(|r| region.contains(r)),
            "{resolvers:?} vs {region:?}"
        );
        assert_eq!(
            dc.host_services.search_domain,
            format!("{}.{}", dc.name, fleet.organisation.domain)
        );
        assert!(!dc.host_services.ntp_servers.is_empty());

        for f in files
            .iter()
            .filter(|f| f.path.starts_with(&format!("{}/", dc.name)))
        {
            let doc: serde_json::Value =
                serde_saphyr::from_str(&f.content).expect("netplan YAML parses");
            let vlans = doc["network"]["vlans"].as_object().expect("vlans");
            let with_dns: Vec<(&String, &serde_json::Value)> = vlans
                .iter()
                .filter(|(_, v)| v.get("nameservers").is_some())
                .collect();
            assert_eq!(with_dns.len(), 1, "{}: one interface carries DNS", f.path);
            let (_, v) = with_dns[0];
            assert!(
                v.get("routes").is_some(),
                "{}: DNS sits with the default route",
                f.path
            );
            let addrs: Vec<&str> = v["nameservers"]["addresses"]
                .as_array()
                .expect("addresses")
                .iter()
                .filter_map(|a| a.as_str())
                .collect();
            assert_eq!(
                addrs,
                resolvers.iter().map(String::as_str).collect::<Vec<_>>(),
                "{}",
                f.path
            );
        }
    }
}
