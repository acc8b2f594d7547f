//! keepalived renderer: snapshot, determinism, fleet consistency and
//! `keepalived --config-test` validation.

use std::path::Path;

use strata_fleet::VipMember;
use strata_render::{FileKind, RenderedFile, keepalived};
use strata_spec::InfraVlan;
use strata_verify::Verifier;

fn file<'a>(files: &'a [RenderedFile], path: &str) -> &'a RenderedFile {
    files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no rendered file {path}"))
}

/// The verifier, or `None` (skip) when keepalived is absent and STRATA_SKIP_TOOL_TESTS=1.
fn verifier(kind: FileKind) -> Option<Verifier> {
    let verifier = Verifier::discover();
    if let Some(missing) = verifier.missing(kind) {
        if strata_testkit::OptOut::Tools.is_set() {
            strata_testkit::skip_note(
                strata_testkit::OptOut::Tools,
                &format!("the keepalived tool check ({missing})"),
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
fn one_file_per_member_with_one_instance_per_vip() {
    let fleet = strata_testkit::example_fleet();
    let files = keepalived::render(&fleet).expect("renders");
    let mut expected = Vec::new();
    for dc in &fleet.dcs {
        for vip in &dc.vips {
            for m in &vip.members {
                expected.push(keepalived::path(&dc.name, &m.hostname));
            }
        }
    }
    expected.sort();
    expected.dedup();
    assert_eq!(
        files.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
        expected
    );
    for dc in &fleet.dcs {
        for vip in &dc.vips {
            for m in &vip.members {
                let text = &file(&files, &keepalived::path(&dc.name, &m.hostname)).content;
                assert_eq!(
                    text.matches("vrrp_instance ").count(),
                    text.matches("vrrp_script ").count()
                );
                assert!(
                    text.contains(&format!("vrrp_instance VI_{} {{", vip.name)),
                    "{text}"
                );
                assert!(text.contains(&format!("virtual_router_id {}\n", vip.vrid)));
                assert!(text.contains(&format!("priority {}\n", m.priority)));
                assert!(text.contains(&format!("unicast_src_ip {}\n", m.address)));
                assert!(text.contains(&format!("{}/{}\n", vip.address, vip.prefix_len)));
                for other in vip.members.iter().filter(|o| o.hostname != m.hostname) {
                    assert!(text.contains(&format!("        {}\n", other.address)));
                }
                assert!(!text.contains("state MASTER"));
                assert!(!text.contains("auth_pass"));
                assert!(!text.contains("strata: "), "{text}");
            }
        }
    }
}

/// The `interface` of each kind of member host, on a fleet whose first waw1 VIP is
/// held by a VM with one NIC, a VM with two, a Proxmox node, a bonded machine and a
/// host that does not exist.
#[test]
fn interface_names_follow_the_host_conventions() {
    let mut fleet = strata_testkit::example_fleet();
    let dc = fleet
        .dcs
        .iter_mut()
        .find(|d| d.name == "waw1")
        .expect("waw1");
    let mgmt = |hostname: &str| -> std::net::IpAddr {
        dc.hosts()
            .find(|(h, _)| *h == hostname)
            .and_then(|(_, ifs)| ifs.iter().find(|i| i.vid == 12))
            .map(|i| i.address.addr())
            .unwrap_or_else(|| panic!("{hostname} has no management address"))
    };
    let hosts = [
        "waw1-prometheus",
        "waw1-maas-region1",
        "waw1-r01-pve01",
        "waw1-r01-cmp04",
    ];
    let mut members: Vec<VipMember> = hosts
        .iter()
        .zip([150u8, 140, 130, 120])
        .map(|(h, priority)| VipMember {
            hostname: h.to_string(),
            address: mgmt(h),
            priority,
        })
        .collect();
    let vip = &mut dc.vips[0];
    assert_eq!(vip.vlan, InfraVlan::Management);
    vip.members = members.clone();
    let files = keepalived::render(&fleet).expect("renders");
    let interface = |host: &str| -> String {
        let text = &file(&files, &keepalived::path("waw1", host)).content;
        text.lines()
            .find_map(|l| l.trim().strip_prefix("interface "))
            .unwrap_or_else(|| panic!("{host}: no interface line:\n{text}"))
            .to_string()
    };
    assert_eq!(interface("waw1-prometheus"), "eth0");
    assert_eq!(interface("waw1-maas-region1"), "eth1");
    assert_eq!(interface("waw1-r01-pve01"), "vmbr0.12");
    assert_eq!(interface("waw1-r01-cmp04"), "bond0.12");

    // A member the DC does not have cannot be rendered: an error naming its file,
    // and no file at all (not even the good members').
    members.push(VipMember {
        hostname: "waw1-nosuch".to_string(),
        address: "10.2.12.250".parse().expect("ip"),
        priority: 110,
    });
    let dc = fleet
        .dcs
        .iter_mut()
        .find(|d| d.name == "waw1")
        .expect("waw1");
    dc.vips[0].members = members;
    let e = keepalived::render(&fleet).expect_err("a member that is not a host");
    assert_eq!(e.failures.len(), 1, "{e}");
    assert_eq!(e.failures[0].path, keepalived::path("waw1", "waw1-nosuch"));
    assert!(
        e.failures[0].reason.contains("neither a machine nor a VM"),
        "{e}"
    );
    let all = strata_render::render_all(&fleet).expect_err("render_all fails too");
    assert_eq!(all, e);
}

#[test]
fn snapshot() {
    let fleet = strata_testkit::example_fleet();
    let files = keepalived::render(&fleet).expect("renders");
    insta::assert_snapshot!(
        "waw1_maas_region1",
        file(&files, "waw1/keepalived/waw1-maas-region1.conf").content
    );
}

#[test]
fn deterministic() {
    let fleet = strata_testkit::example_fleet();
    assert_eq!(
        keepalived::render(&fleet).expect("renders"),
        keepalived::render(&fleet).expect("renders")
    );
    assert_eq!(
        keepalived::render(&fleet).expect("renders"),
        keepalived::render(&strata_testkit::example_fleet()).expect("renders")
    );
}

#[test]
fn real_tool_accepts_every_file() {
    let Some(verifier) = verifier(FileKind::Keepalived) else {
        return;
    };
    let fleet = strata_testkit::example_fleet();
    let files = keepalived::render(&fleet).expect("renders");
    assert!(!files.is_empty());
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
        "keepalived rejected:\n{}",
        failed.join("\n\n")
    );
}

#[test]
fn real_tool_rejects_a_broken_file() {
    let Some(verifier) = verifier(FileKind::Keepalived) else {
        return;
    };
    let fleet = strata_testkit::example_fleet();
    let files = keepalived::render(&fleet).expect("renders");
    let good = &file(&files, "waw1/keepalived/waw1-maas-region1.conf").content;
    let vrid = fleet.dc("waw1").expect("waw1").vips[0].vrid;
    let needle = format!("virtual_router_id {vrid}\n");
    assert!(good.contains(&needle));
    let broken = good.replacen(&needle, "virtual_router_id 999\n", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.conf");
    std::fs::write(&path, broken).expect("write");
    let check = verifier.verify_file(&path, FileKind::Keepalived);
    assert!(!check.ok, "keepalived accepted VRID 999:\n{}", check.output);
    assert!(check.output.contains("999"), "{}", check.output);
}
