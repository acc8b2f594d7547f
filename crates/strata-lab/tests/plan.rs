//! The pure half of the lab on `examples/fleet`: what `lab up` would build, without
//! building it.

// Test code: a panic is the failure report, so unwrapping is fine here.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use strata_lab::plan::{IFNAMSIZ, PlanError, PlanOptions, plan};
use strata_lab::script;
use strata_lab::topology::{HostRole, Lab, LinkKind, NsRole, Role, SessionKind};
use strata_testkit::{broken_fleets, example_fleet};
use support::rendered;

fn opts(racks: usize, dci: bool) -> PlanOptions {
    PlanOptions {
        name: "t".into(),
        dc: "ams1".into(),
        racks,
        dci,
        peer_dc: None,
    }
}

fn lab(racks: usize, dci: bool) -> Lab {
    let fleet = example_fleet();
    plan(
        &fleet,
        &rendered(&fleet).expect("renders"),
        &opts(racks, dci),
    )
    .expect("plan")
}

fn rendered_conf(path: &str) -> String {
    let fleet = example_fleet();
    rendered(&fleet)
        .expect("renders")
        .into_iter()
        .find(|f| f.path == path)
        .expect("rendered file")
        .content
}

#[test]
fn one_dc_two_racks_builds_spines_leaves_hosts_and_a_vip_pair() {
    let lab = lab(2, false);
    let names: Vec<&str> = lab.routers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ams1-spine01",
            "ams1-spine02",
            "ams1-r01-leaf1",
            "ams1-r01-leaf2",
            "ams1-r02-leaf1",
            "ams1-r02-leaf2"
        ]
    );
    assert!(lab.interconnect.is_none());
    // 2 spines x 4 leaves.
    let fabric = lab
        .links
        .iter()
        .filter(|l| l.kind == LinkKind::Fabric)
        .count();
    assert_eq!(fabric, 8);
    // One host per tenant network per rack, and the VIP pair with a client.
    let tenant_hosts: Vec<_> = lab
        .hosts
        .iter()
        .filter(|h| matches!(h.role, HostRole::Tenant { .. }))
        .collect();
    assert_eq!(tenant_hosts.len(), 8);
    assert_eq!(lab.vips.len(), 1);
    let vip = &lab.vips[0];
    assert_eq!(vip.name, "maas-api");
    assert_eq!(vip.members, ["ams1-maas-region1", "ams1-maas-region2"]);
    assert_eq!(vip.members_not_built, ["ams1-maas-region3"]);
    let m1 = lab.host("ams1-maas-region1").unwrap();
    let m2 = lab.host("ams1-maas-region2").unwrap();
    // The members sit in different racks, on the interface their rendered file names.
    assert_ne!(
        lab.router(&m1.leaf).unwrap().rack,
        lab.router(&m2.leaf).unwrap().rack
    );
    assert!(
        m1.keepalived
            .as_deref()
            .unwrap()
            .contains(&format!("interface {}", m1.ifname))
    );
    assert_eq!(m1.health_port, Some(5240));
    let client = lab.host(&vip.client).unwrap();
    assert!(
        !lab.hosts
            .iter()
            .any(|h| h.name != client.name && h.ip() == client.ip())
    );
    // Every leaf serves tenant hosts (the rack's leaves take turns).
    for r in lab.routers.iter().filter(|r| r.role == Role::Leaf) {
        assert!(
            tenant_hosts.iter().any(|h| h.leaf == r.name),
            "{} serves no host",
            r.name
        );
    }
    // Hosts use the tenant MTU, routed networks get their gateway.
    for h in &tenant_hosts {
        assert_eq!(h.mtu, 9000);
        let HostRole::Tenant { routed, .. } = h.role else {
            unreachable!()
        };
        assert_eq!(h.gateway.is_some(), routed, "{}", h.name);
    }
}

#[test]
fn names_are_unique_prefixed_and_fit_linux_limits() {
    for lab in [lab(2, false), lab(2, true)] {
        let mut seen = BTreeSet::new();
        for n in &lab.namespaces {
            assert!(n.name.starts_with("sl.t."), "{}", n.name);
            assert!(
                seen.insert(n.name.clone()),
                "duplicate namespace {}",
                n.name
            );
        }
        let mut ifaces = BTreeSet::new();
        for l in &lab.links {
            for e in [&l.a, &l.b] {
                assert!(e.ifname.len() <= IFNAMSIZ, "{}", e.ifname);
                assert!(seen.contains(&e.ns), "{} is not a lab namespace", e.ns);
                assert!(
                    ifaces.insert((e.ns.clone(), e.ifname.clone())),
                    "{} twice in {}",
                    e.ifname,
                    e.ns
                );
            }
        }
        for r in &lab.routers {
            for s in &r.segments {
                assert!(s.vxlan.len() <= IFNAMSIZ && s.bridge.len() <= IFNAMSIZ);
            }
        }
    }
}

#[test]
fn configs_are_the_rendered_files_minus_unbuilt_peers() {
    let lab = lab(2, false);
    let spine = lab.router("ams1-spine01").unwrap();
    // Border leaves are not built without --dci: their neighbours and ports go.
    assert_eq!(
        spine.pruned,
        [
            "neighbor 10.253.0.1",
            "neighbor 10.253.0.3",
            "interface swp5",
            "interface swp6"
        ]
    );
    for gone in [
        "neighbor 10.253.0.1 ",
        "neighbor 10.253.0.3 ",
        "interface swp5\n",
    ] {
        let body: String = spine
            .frr_conf
            .lines()
            .filter(|l| !l.starts_with('!'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(!body.contains(gone), "{gone}");
    }
    assert!(
        spine
            .frr_conf
            .contains(" neighbor 10.253.0.5 remote-as 4200001002\n")
    );
    // A leaf's peers are all built: its file is the rendered one, byte for byte.
    let leaf = lab.router("ams1-r01-leaf1").unwrap();
    assert!(leaf.pruned.is_empty());
    assert_eq!(leaf.frr_conf, rendered_conf("ams1/frr/ams1-r01-leaf1.conf"));
}

#[test]
fn expected_sessions_are_the_built_subset_of_the_design() {
    let two = lab(2, false);
    // 2 spines x 4 leaves, one entry per end.
    assert_eq!(two.sessions.len(), 16);
    assert!(two.sessions.iter().all(|s| s.kind == SessionKind::Fabric));
    let one = lab(1, false);
    assert_eq!(one.sessions.len(), 8);
    assert!(one.routers.iter().all(|r| r.rack.as_deref() != Some("r02")));
    let spine = one.router("ams1-spine01").unwrap();
    assert!(spine.pruned.contains(&"interface swp3".to_string()));
}

#[test]
fn dci_adds_the_peer_dc_its_border_leaves_and_the_interconnect() {
    let lab = lab(2, true);
    assert_eq!(lab.interconnect.as_deref(), Some("ams1-waw1"));
    let dcs: Vec<&str> = lab.dcs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(dcs, ["ams1", "waw1"]);
    let borders: Vec<&str> = lab
        .routers
        .iter()
        .filter(|r| r.role == Role::Border)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        borders,
        [
            "ams1-border1",
            "ams1-border2",
            "waw1-border1",
            "waw1-border2"
        ]
    );
    let ic_links = lab
        .links
        .iter()
        .filter(|l| l.kind == LinkKind::Interconnect)
        .count();
    assert_eq!(ic_links, 2);
    let dci_sessions = lab
        .sessions
        .iter()
        .filter(|s| s.kind == SessionKind::Interconnect)
        .count();
    assert_eq!(dci_sessions, 4);
    // fra1 is not built: its DCI port and neighbour leave the border's file.
    let b = lab.router("ams1-border1").unwrap();
    assert!(b.pruned.contains(&"interface dci-fra1".to_string()));
    assert!(b.pruned.contains(&"neighbor 172.31.255.4".to_string()));
    assert!(b.frr_conf.contains("interface dci-waw1\n"));
    // Borders carry the tenant VRFs (L3 VNIs) but no L2 segments.
    assert_eq!(b.vrfs.len(), 2);
    assert!(b.segments.is_empty());
}

#[test]
fn script_builds_vteps_with_the_underlay_in_the_switch_and_the_vrf_in_its_namespace() {
    let lab = lab(2, false);
    let s = script::build(&lab);
    assert_eq!(s.phases[0].len(), 1);
    assert_eq!(s.phases[0][0].lines.len(), lab.namespaces.len());
    assert!(
        s.phases[0][0]
            .lines
            .iter()
            .all(|l| l.starts_with("netns add sl.t."))
    );
    let veths = &s.phases[1][0].lines;
    assert!(veths.contains(
        &"link add name swp1 mtu 9216 netns sl.t.ams1-spine01 type veth peer name swp49 mtu 9216 netns sl.t.ams1-r01-leaf1"
            .to_string()
    ));
    let leaf = s.phases[2]
        .iter()
        .find(|b| b.ns.as_deref() == Some("sl.t.ams1-r01-leaf1"))
        .unwrap();
    assert!(leaf.lines.contains(
        &"link add vx50001 mtu 9000 type vxlan id 50001 local 10.254.0.3 dstport 4789 nolearning df set"
            .to_string()
    ));
    assert!(
        leaf.lines
            .contains(&"link set vx50001 netns sl.t.ams1-r01-leaf1.vrf.prod".to_string())
    );
    // Infrastructure VLANs stay in the switch namespace (default VRF).
    assert!(
        leaf.lines
            .contains(&"link set vx10004 master br10004".to_string())
    );
    let prod = s.phases[3]
        .iter()
        .find(|b| b.ns.as_deref() == Some("sl.t.ams1-r01-leaf1.vrf.prod"))
        .unwrap();
    // The routed web network (VNI 10010): anycast MAC and gateway on its bridge.
    assert!(
        prod.lines.contains(
            &"link add br10010 address 00:00:5e:00:01:01 mtu 9000 type bridge".to_string()
        )
    );
    assert!(
        prod.lines
            .contains(&"addr add 100.64.3.1/24 dev br10010".to_string())
    );
    assert!(prod.lines.contains(
        &"link set vx10010 type bridge_slave learning off neigh_suppress on".to_string()
    ));
    let ml = s.phases[3]
        .iter()
        .find(|b| b.ns.as_deref() == Some("sl.t.ams1-r01-leaf1.vrf.ml"))
        .unwrap();
    // ml/storage (VNI 10007) is not routed: a bridge without an address.
    assert!(ml.lines.iter().any(|l| l.starts_with("link add br10007 ")));
    assert!(!ml.lines.iter().any(|l| l.ends_with("dev br10007")));
    // Forwarding in every VRF namespace.
    let vrf_ns = lab
        .namespaces
        .iter()
        .filter(|n| n.role == NsRole::Vrf)
        .count();
    assert_eq!(vrf_ns, 8);
    assert_eq!(s.sysctls.len(), vrf_ns);
    assert!(s.sysctls.iter().all(|c| c.key == "net.ipv4.ip_forward"));
}

#[test]
fn planning_is_deterministic_and_survives_the_state_file() {
    let a = lab(2, true);
    let b = lab(2, true);
    assert_eq!(a, b);
    let text = serde_json::to_string(&a).unwrap();
    let back: Lab = serde_json::from_str(&text).unwrap();
    assert_eq!(a, back);
}

#[test]
fn bad_requests_are_refused() {
    let fleet = example_fleet();
    let files = rendered(&fleet).expect("renders");
    let mut o = opts(2, false);
    o.dc = "nowhere".into();
    assert!(matches!(
        plan(&fleet, &files, &o),
        Err(PlanError::UnknownDc { .. })
    ));
    let o = opts(3, false);
    assert!(matches!(
        plan(&fleet, &files, &o),
        Err(PlanError::TooFewRacks { .. })
    ));
    let o = opts(0, false);
    assert!(matches!(plan(&fleet, &files, &o), Err(PlanError::NoRacks)));
    let mut o = opts(2, false);
    o.name = "has.dot".into();
    assert!(matches!(
        plan(&fleet, &files, &o),
        Err(PlanError::BadName(_))
    ));
    let mut o = opts(2, true);
    o.peer_dc = Some("nowhere".into());
    assert!(plan(&fleet, &files, &o).is_err());
    // Without the rendered files there is nothing to run.
    assert!(matches!(
        plan(&fleet, &[], &opts(2, false)),
        Err(PlanError::MissingFile(_))
    ));
}

#[test]
fn planning_a_broken_design_never_panics() {
    // `lab up --allow-invalid` plans whatever the compiler produced despite errors:
    // every outcome must be a plan or a PlanError, never a panic.
    let fleets = broken_fleets();
    assert!(
        fleets.len() >= 8,
        "only {} broken examples compile",
        fleets.len()
    );
    let mut planned = 0;
    for (case, fleet) in &fleets {
        // `lab up` refuses a design it cannot render (and says why); nothing to plan.
        let Ok(files) = rendered(fleet) else {
            continue;
        };
        for dc in &fleet.dcs {
            for racks in 1..=3 {
                for dci in [false, true] {
                    let opts = PlanOptions {
                        name: "t".into(),
                        dc: dc.name.clone(),
                        racks,
                        dci,
                        peer_dc: None,
                    };
                    let result = std::panic::catch_unwind(|| plan(fleet, &files, &opts));
                    match result {
                        Ok(Ok(_)) => planned += 1,
                        Ok(Err(_)) => {}
                        Err(_) => panic!(
                            "{case}: planning {} (racks {racks}, dci {dci}) panicked",
                            dc.name
                        ),
                    }
                }
            }
        }
    }
    assert!(planned > 0);
}
