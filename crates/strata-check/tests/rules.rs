//! One test per design rule and conformance finding, on the small fleet of
//! `scripts/broken-base.yaml` (the base of `examples/broken`) with one change each.
//! Rules that only a tampered lock can trigger are tested by editing the compiled
//! fleet directly: the checks are pure functions of (spec, fleet).

use std::path::Path;

use strata_diagnostics::{Code, Diagnostic, SourceMap, codes};
use strata_fleet::{Fleet, Lock};
use strata_spec::Spec;

fn base() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/broken-base.yaml");
    std::fs::read_to_string(p).expect("broken-base.yaml")
}

fn edit(text: &str, old: &str, new: &str) -> String {
    assert_eq!(text.matches(old).count(), 1, "`{old}` must occur once");
    text.replace(old, new)
}

/// Parse, compile and check `text`; return (spec, fleet, all diagnostics).
fn analyze(text: &str) -> (Spec, Option<Fleet>, Vec<Diagnostic>) {
    let mut sources = SourceMap::new();
    sources.add("fleet.yaml", text);
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    let mut diags = loaded.diagnostics;
    let compiled = strata_fleet::compile(&loaded.spec, &Lock::new());
    diags.extend(compiled.diagnostics);
    if let Some(f) = &compiled.fleet {
        diags.extend(strata_check::check(&loaded.spec, f));
        diags.extend(strata_check::conform(f).diagnostics);
    }
    (loaded.spec, compiled.fleet, diags)
}

fn codes_of(d: &[Diagnostic]) -> Vec<Code> {
    d.iter().map(|d| d.code).collect()
}

fn only(d: &[Diagnostic], code: Code) {
    assert!(!d.is_empty(), "expected {code}, got nothing");
    assert!(
        d.iter().all(|x| x.code == code),
        "expected only {code}: {:#?}",
        d
    );
}

#[test]
fn the_base_is_clean() {
    let (_, fleet, d) = analyze(&base());
    assert!(d.is_empty(), "{d:#?}");
    assert!(fleet.is_some());
}

#[test]
fn s0304_jumbo_vlans_must_agree() {
    let t = edit(
        &base(),
        "    ceph_public: { vid: 21, mtu: 9000 }",
        "    ceph_public: { vid: 21, mtu: 9100 }",
    );
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0304);
    let t = edit(
        &base(),
        "    ceph_cluster: { vid: 22, mtu: 9000 }",
        "    ceph_cluster: { vid: 22, mtu: 1500 }",
    );
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0304);
    assert!(d[0].message.contains("ceph_cluster"), "{d:#?}");
    let t = edit(&base(), "  underlay: 9216", "  underlay: 9050");
    let t = edit(&t, "  overlay: 9000", "  overlay: 8900");
    let (_, _, d) = analyze(&t);
    // Storage VLANs at 9000 still fit; raise one above the underlay.
    assert!(d.is_empty(), "{d:#?}");
    let t = edit(
        &t,
        "    storage: { vid: 20, mtu: 9000 }",
        "    storage: { vid: 20, mtu: 9100 }",
    );
    let (_, _, d) = analyze(&t);
    assert!(codes_of(&d).contains(&codes::S0304), "{d:#?}");
    assert!(
        d.iter()
            .any(|x| x.message.contains("more than the underlay")),
        "{d:#?}"
    );
}

#[test]
fn s0306_duplicate_vlan_ids() {
    let t = edit(
        &base(),
        "      - { name: web }",
        "      - { name: web, vlan: 12 }",
    );
    // 12 is outside the tenant range, so it is used as pinned and collides with management.
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0306);
    assert!(d[0].message.contains("VLAN 12"), "{d:#?}");
}

#[test]
fn s0307_duplicate_router_ids() {
    let (spec, fleet, _) = analyze(&base());
    let mut fleet = fleet.expect("fleet");
    let lo = fleet.dcs[0].switches[0].loopback;
    fleet.dcs[1].switches[0].loopback = lo;
    let d = strata_check::check(&spec, &fleet);
    assert!(codes_of(&d).contains(&codes::S0307), "{d:#?}");
}

#[test]
fn s0308_and_s0309_bgp_sessions_must_agree() {
    let (spec, fleet, _) = analyze(&base());
    let mut fleet = fleet.expect("fleet");
    // A fabric session whose remote AS is wrong.
    fleet.dcs[0].bgp[0].remote_asn += 1;
    let d = strata_check::check(&spec, &fleet);
    only(&d, codes::S0308);
    // A session pointing at an address the peer does not use.
    let (spec, fleet, _) = analyze(&base());
    let mut fleet = fleet.expect("fleet");
    fleet.dcs[0].bgp[0].peer_address = "192.0.2.1".parse().expect("ip");
    let d = strata_check::check(&spec, &fleet);
    assert!(codes_of(&d).contains(&codes::S0309), "{d:#?}");
}

#[test]
fn s0402_single_dhcp_rack_controller_is_a_warning() {
    let t = edit(
        &base(),
        "      - { name: rack-b, dhcp: [provisioning, bmc] }",
        "      - { name: rack-b, dhcp: [bmc] }",
    );
    let (_, fleet, d) = analyze(&t);
    only(&d, codes::S0402);
    assert!(d.iter().all(|x| !x.is_error()));
    assert!(fleet.is_some());
}

#[test]
fn s0502_stale_override_and_s0501_inventory_snowflake() {
    let t = edit(
        &base(),
        "  - name: ams1\n    region: eu-west\n    racks:\n      - { name: r01, az: az1 }\n",
        "  - name: ams1\n    region: eu-west\n    racks:\n      - { name: r01, az: az1 }\n    overrides:\n      - { path: fabric.spines, value: 2, reason: none }\n",
    );
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0502);
    // A fourth hypervisor in fra1 only: the inventory differs from the blueprint.
    let t = edit(
        &base(),
        "  - { serial: F4,",
        "  - { serial: F5, site: fra1, rack: r01, slot: 5, profile: hv-std, role: proxmox, bmc: { credential: { env: BMC_PASSWORD } } }\n  - { serial: F4,",
    );
    let (_, fleet, d) = analyze(&t);
    assert!(codes_of(&d).contains(&codes::S0501), "{d:#?}");
    assert!(codes_of(&d).contains(&codes::S0403), "{d:#?}");
    let report = strata_check::conform(&fleet.expect("fleet"));
    assert!(!report.conformant);
    let fra1 = report.dcs.iter().find(|x| x.dc == "fra1").expect("fra1");
    assert_eq!(fra1.differences[0].path, "proxmox.clusters[infra].nodes");
    assert_eq!(fra1.differences[0].dc, serde_json::json!(4));
}

#[test]
fn declared_inventory_difference_is_conformant() {
    let t = edit(
        &base(),
        "  - { serial: F4,",
        "  - { serial: F5, site: fra1, rack: r01, slot: 5, profile: hv-std, role: proxmox, bmc: { credential: { env: BMC_PASSWORD } } }\n  - { serial: F6, site: fra1, rack: r01, slot: 6, profile: hv-std, role: proxmox, bmc: { credential: { env: BMC_PASSWORD } } }\n  - { serial: F4,",
    );
    let t = edit(
        &t,
        "  - name: fra1\n    region: eu-central\n    racks:\n      - { name: r01, az: az1 }\n",
        "  - name: fra1\n    region: eu-central\n    racks:\n      - { name: r01, az: az1 }\n    overrides:\n      - { path: \"proxmox.clusters[infra].nodes\", value: 5, reason: \"fra1 hosts the CI fleet (CAP-7)\" }\n",
    );
    let (_, fleet, d) = analyze(&t);
    assert!(d.is_empty(), "{d:#?}");
    let report = strata_check::conform(&fleet.expect("fleet"));
    assert!(report.conformant);
}

#[test]
fn s0206_and_s0207_bad_overrides() {
    let site = "  - name: ams1\n    region: eu-west\n    racks:\n      - { name: r01, az: az1 }\n";
    let with = |ov: &str| {
        edit(
            &base(),
            site,
            &format!("{site}    overrides:\n      - {ov}\n"),
        )
    };
    let (_, _, d) = analyze(&with("{ path: fabric.spinez, value: 4, reason: x }"));
    only(&d, codes::S0206);
    assert_eq!(d[0].help.as_deref(), Some("did you mean `spines`?"));
    let (_, _, d) = analyze(&with(
        "{ path: \"proxmox.clusters[infar].nodes\", value: 4, reason: x }",
    ));
    only(&d, codes::S0206);
    let (_, _, d) = analyze(&with("{ path: fabric.spines, value: four, reason: x }"));
    only(&d, codes::S0207);
    assert_eq!(d[0].span.map(|s| s.line), Some(79));
}

#[test]
fn s0603_lock_conflicts_are_errors_not_silent_moves() {
    let mut sources = SourceMap::new();
    sources.add("fleet.yaml", base());
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    let first = strata_fleet::compile(&loaded.spec, &Lock::new());
    let mut lock = first.lock.clone();
    let pool = lock.pools.get_mut("site_supernets").expect("pool");
    pool.insert("fra1".into(), "192.168.0.0/16".into());
    let second = strata_fleet::compile(&loaded.spec, &lock);
    assert!(second.fleet.is_none());
    assert_eq!(codes_of(&second.diagnostics), vec![codes::S0603]);
    assert!(
        second.diagnostics[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("delete"))
    );
}

#[test]
fn s0109_and_s0110_sections() {
    let mut sources = SourceMap::new();
    sources.add("a.yaml", base());
    sources.add("b.yaml", "mtu: { underlay: 9216, overlay: 9000 }\n");
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    only(&loaded.diagnostics, codes::S0109);
    let mut sources = SourceMap::new();
    sources.add("a.yaml", "teams: []\n");
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    only(&loaded.diagnostics, codes::S0110);
    assert_eq!(loaded.diagnostics.len(), 4);
}

#[test]
fn s0407_a_cluster_that_cannot_restart_its_ha_vms_is_a_warning() {
    // Two HA VMs of one node's memory each on three equal nodes: with one node lost,
    // the other two cannot also hold the MAAS controllers.
    let t = edit(
        &base(),
        "  - { name: os-ctl1, site: fra1, role: openstack-control, cores: 8, memory_mib: 32768,",
        "  - { name: big1, site: fra1, role: service, cores: 8, memory_mib: 786432, disk_gb: 100, networks: [management], ha: true }\n  - { name: big2, site: fra1, role: service, cores: 8, memory_mib: 786432, disk_gb: 100, networks: [management], ha: true }\n  - { name: os-ctl1, site: fra1, role: openstack-control, cores: 8, memory_mib: 32768,",
    );
    let (_, fleet, d) = analyze(&t);
    only(&d, codes::S0407);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(d[0].message.contains("`fra1`"), "{d:#?}");
    assert!(!d[0].is_error());
    assert!(fleet.is_some());
}

#[test]
fn s0406_a_vm_that_fits_nowhere_is_not_also_an_ha_shortfall() {
    let t = edit(
        &base(),
        "  - { name: os-ctl1, site: fra1, role: openstack-control, cores: 8, memory_mib: 32768,",
        "  - { name: huge, site: fra1, role: service, cores: 8, memory_mib: 4000000, disk_gb: 100, networks: [management], ha: true }\n  - { name: os-ctl1, site: fra1, role: openstack-control, cores: 8, memory_mib: 32768,",
    );
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0406);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].span.map(|s| s.line), Some(120));
}

#[test]
fn s0204_a_template_collision_is_one_diagnostic_at_the_template() {
    let t = edit(
        &base(),
        "  domain: dc.example.net\n",
        "  domain: dc.example.net\n  naming: { machine: \"{site}-{rack}-{index}\" }\n",
    );
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0204);
    // One cause (the template), reaching both DCs: one diagnostic with each colliding
    // machine related.
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].span.map(|s| s.line), Some(8));
    assert_eq!(d[0].related.len(), 4, "{d:#?}");
}

#[test]
fn s0208_a_blueprint_reference_error_is_reported_once_at_the_value() {
    let t = edit(
        &base(),
        "        corosync_links: [corosync]",
        "        corosync_links: [ceph_cluster]",
    );
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0208);
    assert_eq!(d.len(), 1, "one per root cause, not one per DC: {d:#?}");
    assert_eq!(d[0].span.map(|s| (s.line, s.col)), Some((55, 26)));
}

#[test]
fn s0313_a_remote_asn_pinned_outside_the_leaf_pool_replaces_the_session_mismatches() {
    let t = edit(
        &base(),
        "    a: { site: fra1 }",
        "    a: { site: fra1, remote_asn: 65000 }",
    );
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0313);
    assert_eq!(d.len(), 1, "{d:#?}");
    let t = edit(
        &base(),
        "    leaves: 4200001000-4200001999",
        "    leaves: 64512-65535",
    );
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0313);
    assert!(d[0].message.contains("65535"), "{d:#?}");
}

#[test]
fn s0312_pxe_macs_are_unicast_and_s0210_unique() {
    let pxe = |serial: &str, mac: &str| {
        (
            format!("serial: {serial}, site: "),
            format!("serial: {serial}, pxe_mac: \"{mac}\", site: "),
        )
    };
    let (old, new) = pxe("F2", "00:00:00:00:00:00");
    let (_, _, d) = analyze(&edit(&base(), &old, &new));
    only(&d, codes::S0312);
    let (old, new) = pxe("F2", "52:54:00:00:00:01");
    let t = edit(&base(), &old, &new);
    let (old, new) = pxe("F3", "52:54:00:00:00:01");
    let (_, _, d) = analyze(&edit(&t, &old, &new));
    only(&d, codes::S0210);
    assert_eq!(d[0].related.len(), 1, "{d:#?}");
}

#[test]
fn s0311_vni_pools_and_pins_fit_in_24_bits() {
    let t = edit(&base(), "l3: 50000-50999", "l3: 16777000-16777999");
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0311);
    assert_eq!(d.len(), 1, "the pool, not each VNI from it: {d:#?}");
}

#[test]
fn s0104_an_mtu_out_of_range_is_reported_once_not_again_as_jumbo_trouble() {
    let t = edit(
        &base(),
        "    storage: { vid: 20, mtu: 9000 }",
        "    storage: { vid: 20, mtu: 10000 }",
    );
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0104);
    assert_eq!(d.len(), 1, "{d:#?}");
}

#[test]
fn s0404_a_blueprint_minimum_no_dc_meets_is_one_diagnostic_naming_each_dc() {
    let t = edit(
        &base(),
        "      - { name: az1, min_compute: 1 }",
        "      - { name: az1, min_compute: 2 }",
    );
    let (_, _, d) = analyze(&t);
    only(&d, codes::S0404);
    assert_eq!(d.len(), 1, "{d:#?}");
    let dcs: Vec<&str> = d[0].related.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(dcs, ["in `ams1`", "in `fra1`"], "{d:#?}");
}

const QUOTA: &str = "    default_quota: { instances: 10, cores: 40, ram_mib: 163840 }\n";

fn with_bootstrap(stages: &str) -> String {
    edit(&base(), QUOTA, &format!("{QUOTA}  bootstrap:\n{stages}"))
}

#[test]
fn s0420_the_bootstrap_order_must_be_possible() {
    // A correct order is clean, and it marks the Proxmox nodes running.
    let good = "    - { stage: hypervisors, machines: [proxmox], install: preinstalled }\n    - { stage: maas, vms: [maas-region, maas-rack] }\n    - { stage: control, vms: [openstack-control] }\n    - { stage: hosts, machines: [openstack-compute] }\n";
    let (_, fleet, d) = analyze(&with_bootstrap(good));
    assert!(d.is_empty(), "{d:#?}");
    let fleet = fleet.expect("fleet");
    for m in &fleet.dcs[0].machines {
        assert_eq!(
            m.running,
            m.role == strata_spec::MachineRole::Proxmox,
            "{}",
            m.hostname
        );
    }
    // VMs before the Proxmox nodes they run on.
    let vms_first = "    - { stage: maas, vms: [maas-region, maas-rack] }\n    - { stage: hypervisors, machines: [proxmox], install: preinstalled }\n    - { stage: control, vms: [openstack-control] }\n    - { stage: hosts, machines: [openstack-compute] }\n";
    let (_, _, d) = analyze(&with_bootstrap(vms_first));
    only(&d, codes::S0420);
    assert!(d[0].message.contains("before the Proxmox nodes"), "{d:#?}");
}

#[test]
fn s0421_every_role_in_exactly_one_stage() {
    let twice = "    - { stage: hypervisors, machines: [proxmox], install: preinstalled }\n    - { stage: maas, vms: [maas-region, maas-rack] }\n    - { stage: control, vms: [openstack-control, maas-rack, ctl] }\n    - { stage: hosts, machines: [openstack-compute] }\n";
    let (_, _, d) = analyze(&with_bootstrap(twice));
    only(&d, codes::S0421);
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d.iter().any(|x| {
        x.message
            .contains("`maas-rack` is in bootstrap stage `maas` and again")
    }));
    assert!(
        d.iter()
            .any(|x| x.message.contains("`ctl`, which does not exist"))
    );
}

#[test]
fn s0422_images_are_maas_names_and_proxmox_is_not_ubuntu() {
    let rack_b = "      - { name: rack-b, dhcp: [provisioning, bmc] }\n";
    let bad_name = edit(
        &base(),
        rack_b,
        &format!("{rack_b}    images: [{{ role: openstack-compute, image: custom/ }}]\n"),
    );
    let (_, _, d) = analyze(&bad_name);
    only(&d, codes::S0422);
    // Preinstalled Proxmox nodes need no image; MAAS deploying them with the default
    // (Ubuntu) series is wrong twice (its own hypervisors, and Ubuntu).
    let maas_deploys_pve = with_bootstrap(
        "    - { stage: maas, vms: [maas-region, maas-rack] }\n    - { stage: hypervisors, machines: [proxmox], install: preinstalled }\n",
    );
    let (_, _, d) = analyze(&maas_deploys_pve);
    assert!(
        !codes_of(&d).contains(&codes::S0422),
        "preinstalled: no image needed"
    );
    let (_, _, d) = analyze(&with_bootstrap(
        "    - { stage: maas, vms: [maas-region, maas-rack] }
    - { stage: hypervisors, machines: [proxmox], install: maas }
    - { stage: control, vms: [openstack-control] }
    - { stage: hosts, machines: [openstack-compute] }
",
    ));
    let found = codes_of(&d);
    assert!(found.contains(&codes::S0422), "{d:#?}");
    assert!(found.contains(&codes::S0420), "{d:#?}");
    // The role image flows to the fleet.
    let custom = edit(
        &base(),
        rack_b,
        &format!("{rack_b}    images: [{{ role: proxmox, image: custom/debian-13-pve }}]\n"),
    );
    let (_, fleet, d) = analyze(&custom);
    assert!(d.is_empty(), "{d:#?}");
    let fleet = fleet.expect("fleet");
    let pve = fleet.dcs[0]
        .machines
        .iter()
        .find(|m| m.role == strata_spec::MachineRole::Proxmox)
        .expect("a Proxmox node");
    assert_eq!(pve.image, "custom/debian-13-pve");
    assert!(
        pve.running,
        "default bootstrap: Proxmox nodes are preinstalled"
    );
}

#[test]
fn s0430_gpu_quota_a_release_cannot_enforce() {
    let base = base();
    let tenant = base
        .lines()
        .skip_while(|l| !l.starts_with("tenants:"))
        .nth(1)
        .and_then(|l| l.split("name:").nth(1))
        .and_then(|l| l.split([',', '}']).next())
        .map(|s| s.trim().to_string())
        .expect("a tenant in the base");
    let with_team = |gpus: u32| {
        format!(
            "{base}\nteams:\n  - {{ name: ml, members: [carol], tenants: [{tenant}], gpu_flavors: [g1.h100x1], quota: {{ instances: 4, cores: 96, ram_mib: 786432, gpus: {gpus} }} }}\n"
        )
    };
    // 2025.1 (the base) cannot count passthrough GPUs against any quota.
    let (_, _, d) = analyze(&with_team(2));
    only(&d, codes::S0430);
    assert!(d[0].message.contains("`ml` (2)"), "{}", d[0].message);
    // A team with no GPU quota asks for nothing the release cannot do.
    let (_, _, d) = analyze(&with_team(0));
    assert!(d.is_empty(), "{d:#?}");
    // 2026.2 enforces it through unified limits.
    let t = edit(
        &with_team(2),
        "kolla_release: \"2025.1\"",
        "kolla_release: \"2026.2\"",
    );
    let (_, _, d) = analyze(&t);
    assert!(d.is_empty(), "{d:#?}");
}

/// The hv-std profile of the base with four disks and `raid` set to `arrays`.
fn with_raid(arrays: &str) -> String {
    edit(
        &base(),
        "    disks: [{ name: sda, kind: ssd, size_gb: 480 }]\n",
        &format!(
            "    disks: [{{ name: sda, kind: ssd, size_gb: 480 }}, {{ name: sdb, kind: ssd, size_gb: 480 }}, {{ name: sdc, kind: hdd, size_gb: 4000 }}, {{ name: sdd, kind: hdd, size_gb: 4000 }}]\n    raid:\n{arrays}"
        ),
    )
}

#[test]
fn s0211_a_buildable_raid_layout_is_clean() {
    let t = with_raid(
        "      - { name: md0, level: raid1, members: [sda, sdb], mount: / }\n      - { name: md1, level: raid1, members: [sdc, sdd], format: xfs, mount: /var/lib/data/ }\n",
    );
    let (_, _, d) = analyze(&t);
    assert!(d.is_empty(), "{d:#?}");
}

#[test]
fn s0211_each_unbuildable_raid_layout_is_named_at_its_line() {
    let cases = [
        // Too few members for the level, at the last member.
        (
            "      - { name: md0, level: raid5, members: [sda, sdb], mount: / }\n",
            "raid-5 with 2 member(s); raid-5 needs at least 3",
        ),
        (
            "      - { name: md0, level: raid6, members: [sda, sdb, sdc], mount: / }\n",
            "needs at least 4",
        ),
        (
            "      - { name: md0, level: raid1, members: [sda, sdb], mount: / }\n      - { name: md1, level: raid1, members: [sdb, sdc] }\n",
            "disk `sdb` of profile `hv-std` is in RAID arrays `md0` and `md1`",
        ),
        (
            "      - { name: md0, level: raid1, members: [sda, sda], mount: / }\n",
            "lists disk `sda` twice",
        ),
        (
            "      - { name: md0, level: raid1, members: [sda, sdb], mount: / }\n      - { name: md1, level: raid1, members: [sdc, sdd], mount: // }\n",
            "both mounted at `/`",
        ),
        (
            "      - { name: md0, level: raid1, members: [sda, sdb], mount: / }\n      - { name: md1, level: raid1, members: [sdc, sdd], mount: var/lib }\n",
            "not an absolute path",
        ),
        (
            "      - { name: md0, level: raid1, members: [sda, sdb], mount: / }\n      - { name: md1, level: raid1, members: [sdc, sdd], format: swap, mount: /swap }\n",
            "is swap but has mount point",
        ),
        // Arrays, but none holds `/`: MAAS would refuse to deploy.
        (
            "      - { name: md0, level: raid1, members: [sda, sdb], mount: /data }\n",
            "no root filesystem",
        ),
    ];
    for (arrays, says) in cases {
        let (_, _, d) = analyze(&with_raid(arrays));
        only(&d, codes::S0211);
        assert_eq!(d.len(), 1, "{arrays}: {d:#?}");
        assert!(d[0].message.contains(says), "{arrays}: {}", d[0].message);
        let line = d[0].span.map(|s| s.line).expect("a location");
        let text = with_raid(arrays);
        let at = text.lines().nth(line as usize - 1).unwrap_or_default();
        assert!(at.contains("name: md"), "{arrays}: line {line} is `{at}`");
        assert!(d[0].help.is_some(), "{d:#?}");
    }
}
