//! Unit tests of the DC phases, each on the small one-DC spec of
//! [`crate::compile::testing`] (or a variant of it) and a lock built by hand.

use std::collections::BTreeMap;

use strata_spec::{InfraVlan, Spec};

use super::super::global::{Globals, allocate_globals};
use super::super::ledger::Ledger;
use super::super::nth;
use super::super::resolve::{self, Profiles, SiteInput};
use super::super::settings::{Names, naming_templates};
use super::super::testing::{SMALL, small_with, spec};
use super::hosts::Addressing;
use super::*;

/// Everything a DC phase needs, resolved from a spec as the compiler would.
struct World<'s> {
    names: Names,
    profiles: Profiles<'s>,
    sites: resolve::Sites<'s>,
    pools: &'s strata_spec::Pools,
}

fn world(spec: &Spec) -> World<'_> {
    let mut diags = Vec::new();
    let org = spec.organisation.as_ref().expect("organisation");
    let bp = spec.blueprint.as_ref().expect("blueprint");
    let names = naming_templates(org, &mut diags).expect("templates");
    let profiles = resolve::index_profiles(spec, &mut diags);
    let mut sites = resolve::resolve_sites(spec, bp, &mut diags);
    resolve::assign_machines(spec, &profiles, &mut sites, &mut diags);
    resolve::assign_vms(spec, &mut sites, &mut diags);
    assert!(diags.is_empty(), "{diags:#?}");
    World {
        names,
        profiles,
        sites,
        pools: spec.pools.as_ref().expect("pools"),
    }
}

fn globals(spec: &Spec, w: &World<'_>, lock: &Lock) -> Globals {
    let mut l = Ledger::new(lock);
    let bp = spec.blueprint.as_ref().expect("blueprint");
    let g = allocate_globals(spec, w.pools, bp, &w.sites, &mut l);
    assert!(!l.fatal);
    g
}

fn fra1<'a, 's>(w: &'a World<'s>) -> &'a SiteInput<'s> {
    &w.sites["fra1"]
}

fn switches(w: &World<'_>, g: &Globals) -> Vec<Switch> {
    let input = fra1(w);
    fabric::build_switches(
        &w.names,
        "fra1",
        &input.bp,
        &input.racks,
        4_200_000_000,
        &g.leaf_asns,
        w.pools.asns.leaves.first,
    )
    .0
}

fn net(s: &str) -> IpNet {
    s.parse().expect("net")
}

#[test]
fn vlan_subnets_pack_into_the_dc_block_and_are_recorded() {
    let s = spec(SMALL);
    let w = world(&s);
    let lock = Lock::new();
    let mut l = Ledger::new(&lock);
    let span = fra1(&w).span;
    let subnets =
        allocate_vlan_subnets("fra1", span, net("10.0.0.0/16"), w.pools, &mut l).expect("fits");
    assert_eq!(subnets.len(), InfraVlan::ALL.len());
    assert!(subnets.values().all(|p| net("10.0.0.0/16").contains(p)));
    assert_eq!(subnets[&InfraVlan::Corosync].prefix_len(), 26);
    assert_eq!(l.pools[0].0, "vlan_subnets/fra1");
    // A block too small for the VLANs is an error, not a partial DC.
    let mut l = Ledger::new(&lock);
    assert!(allocate_vlan_subnets("fra1", span, net("10.0.0.0/24"), w.pools, &mut l).is_none());
    assert!(l.fatal);
    assert_eq!(l.diags[0].code, codes::S0302);
}

#[test]
fn switches_are_named_and_ordered_spines_leaves_borders() {
    let s = spec(SMALL);
    let w = world(&s);
    let g = globals(&s, &w, &Lock::new());
    let input = fra1(&w);
    let (sw, racks) = fabric::build_switches(
        &w.names,
        "fra1",
        &input.bp,
        &input.racks,
        4_200_000_000,
        &g.leaf_asns,
        w.pools.asns.leaves.first,
    );
    let ids: Vec<&str> = sw.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "spine1",
            "spine2",
            "r01/leaf1",
            "r01/leaf2",
            "r02/leaf1",
            "r02/leaf2",
            "border1"
        ]
    );
    assert_eq!(sw[0].name, "fra1-spine01");
    assert_eq!(sw[0].asn, 4_200_000_000);
    assert_eq!(
        sw[2].asn, 4_200_001_001,
        "leaf ASNs come from the global pool"
    );
    assert_eq!(racks[1].leaves, ["fra1-r02-leaf1", "fra1-r02-leaf2"]);
}

#[test]
fn switch_addresses_come_from_the_dc_blocks() {
    let s = spec(SMALL);
    let w = world(&s);
    let g = globals(&s, &w, &Lock::new());
    let mut sw = switches(&w, &g);
    let lock = Lock::new();
    let mut l = Ledger::new(&lock);
    fabric::address_switches(
        "fra1",
        &mut sw,
        net("10.255.0.0/24"),
        net("10.254.0.0/24"),
        w.pools,
        &mut l,
    );
    // Keys in sorted order: border1, r01/leaf1, ..., spine1.
    assert_eq!(sw[0].loopback.to_string(), "10.255.0.6");
    assert_eq!(sw[0].vtep, None, "spines have no VTEP");
    assert!(sw[2].vtep.is_some());
}

#[test]
fn ports_follow_the_convention_on_a_fresh_fabric() {
    let s = spec(SMALL);
    let w = world(&s);
    let g = globals(&s, &w, &Lock::new());
    let sw = switches(&w, &g);
    let lock = Lock::new();
    let mut l = Ledger::new(&lock);
    let ports = fabric::allocate_ports("fra1", fra1(&w).span, &sw, &mut l);
    // spine1 (index 0) faces the leaves in fabric order; leaves face spine n on 48 + n.
    assert_eq!(ports[&(0, 2)], "swp1");
    assert_eq!(ports[&(0, 6)], "swp5", "border1 after the four rack leaves");
    assert_eq!(ports[&(2, 0)], "swp49");
    assert_eq!(ports[&(2, 1)], "swp50");
    let lock = l.into_lock();
    assert_eq!(
        lock.pool("ports/fra1/spine1")
            .and_then(|p| p.get("border1")),
        Some(&"swp5".to_string())
    );
}

#[test]
fn a_new_rack_takes_free_ports_and_moves_no_cable() {
    let s = spec(SMALL);
    let w = world(&s);
    let g = globals(&s, &w, &Lock::new());
    let empty = Lock::new();
    let mut l = Ledger::new(&empty);
    fabric::allocate_ports("fra1", fra1(&w).span, &switches(&w, &g), &mut l);
    let before = l.into_lock();

    let s3 = small_with(
        "racks: [{ name: r01, az: az1 }, { name: r02 }]",
        "racks: [{ name: r01, az: az1 }, { name: r02 }, { name: r03 }]",
    );
    let w3 = world(&s3);
    let g3 = globals(&s3, &w3, &Lock::new());
    let sw3 = switches(&w3, &g3);
    let mut l = Ledger::new(&before);
    let ports = fabric::allocate_ports("fra1", fra1(&w3).span, &sw3, &mut l);
    assert!(!l.fatal, "{:#?}", l.diags);
    let at = |id: &str| sw3.iter().position(|s| s.id == id).expect("switch");
    assert_eq!(ports[&(at("spine1"), at("border1"))], "swp5", "kept");
    assert_eq!(ports[&(at("spine1"), at("r03/leaf1"))], "swp6");
    assert_eq!(ports[&(at("spine1"), at("r03/leaf2"))], "swp7");
}

#[test]
fn a_lock_port_outside_the_switch_is_a_conflict() {
    let s = spec(SMALL);
    let w = world(&s);
    let g = globals(&s, &w, &Lock::new());
    let mut lock = Lock::new();
    lock.set_pool(
        "ports/fra1/r01/leaf1".into(),
        [("spine1".to_string(), "swp3".to_string())]
            .into_iter()
            .collect(),
    );
    let mut l = Ledger::new(&lock);
    fabric::allocate_ports("fra1", fra1(&w).span, &switches(&w, &g), &mut l);
    assert!(l.fatal);
    assert_eq!(l.diags[0].code, codes::S0603);
}

#[test]
fn every_spine_links_to_every_leaf_on_its_ports() {
    let s = spec(SMALL);
    let w = world(&s);
    let g = globals(&s, &w, &Lock::new());
    let mut sw = switches(&w, &g);
    let lock = Lock::new();
    let mut l = Ledger::new(&lock);
    let (links, bgp) = fabric::allocate_fabric(
        "fra1",
        fra1(&w).span,
        &mut sw,
        net("10.253.0.0/22"),
        w.pools,
        9216,
        &mut l,
    );
    assert_eq!(links.len(), 2 * 5);
    assert_eq!(bgp.len(), 2 * links.len(), "one session entry per end");
    let first = &links[0];
    assert_eq!(first.subnet.prefix_len(), 31);
    assert_eq!(
        (first.a.interface.as_str(), first.b.interface.as_str()),
        ("swp1", "swp49")
    );
    let spine = &sw[0];
    assert_eq!(spine.interfaces.len(), 5);
    assert!(spine.interfaces.iter().all(|i| i.mtu == 9216));
}

/// Hosts, addressed, for the small spec.
fn addressed<'l>(w: &World<'_>, lock: &'l Lock) -> (Vec<hosts::MaasVm>, Addressing, Ledger<'l>) {
    let input = fra1(w);
    let mut l = Ledger::new(lock);
    let subnets = allocate_vlan_subnets("fra1", input.span, net("10.0.0.0/16"), w.pools, &mut l)
        .expect("fits");
    let (plans, maas_vms) = hosts::plan_hosts(input, &mut l).expect("planned");
    let infra_vnis: Vec<InfraVni> = InfraVlan::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| InfraVni {
            vlan: *v,
            vni: 10_000 + i as u32,
        })
        .collect();
    let a = hosts::address_hosts(
        &w.names,
        input,
        &subnets,
        &plans,
        &infra_vnis,
        w.pools,
        &mut l,
    );
    (maas_vms, a, l)
}

#[test]
fn hosts_include_the_blueprints_maas_controllers() {
    let s = spec(SMALL);
    let w = world(&s);
    let lock = Lock::new();
    let mut l = Ledger::new(&lock);
    let (plans, maas_vms) = hosts::plan_hosts(fra1(&w), &mut l).expect("planned");
    let names: Vec<&str> = maas_vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["maas-region1", "maas-a"]);
    let keys: Vec<&str> = plans.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "m:s-pve",
            "m:s-c1",
            "m:s-c2",
            "vm:maas-region1",
            "vm:maas-a",
            "vm:mon"
        ]
    );
}

#[test]
fn a_declared_vm_may_not_take_a_controllers_name() {
    let s = small_with("{ name: mon, site: fra1", "{ name: maas-a, site: fra1");
    let w = world(&s);
    let lock = Lock::new();
    let mut l = Ledger::new(&lock);
    hosts::plan_hosts(fra1(&w), &mut l);
    assert!(l.fatal);
    assert_eq!(l.diags[0].code, codes::S0204);
}

#[test]
fn addresses_are_unique_per_vlan_and_dhcp_follows_the_rack_controllers() {
    let s = spec(SMALL);
    let w = world(&s);
    let empty = Lock::new();
    let (_, a, l) = addressed(&w, &empty);
    assert!(!l.fatal);
    let mut seen = std::collections::HashSet::new();
    for addr in a.addr_of.values() {
        assert!(seen.insert(*addr), "{addr} twice");
    }
    let prov = a
        .vlans
        .iter()
        .find(|v| v.role == InfraVlan::Provisioning)
        .expect("provisioning");
    assert_eq!(
        prov.dhcp.as_ref().map(|d| d.primary.as_str()),
        Some("fra1-maas-a")
    );
    assert_eq!(prov.gateway, nth(&prov.subnet, 1));
    assert!(
        a.addr_of
            .contains_key(&("vip:maas-api".into(), InfraVlan::Management))
    );
    assert!(a.addr_of.contains_key(&("bmc:s-c1".into(), InfraVlan::Bmc)));
}

#[test]
fn a_pinned_bmc_address_outside_the_subnet_is_an_error() {
    let s = small_with(
        "{ serial: s-c1, site: fra1, rack: r01, slot: 2, profile: p, role: openstack-compute, bmc: { credential: { env: X } } }",
        "{ serial: s-c1, site: fra1, rack: r01, slot: 2, profile: p, role: openstack-compute, bmc: { address: 192.0.2.1, credential: { env: X } } }",
    );
    let w = world(&s);
    let empty = Lock::new();
    let (_, _, l) = addressed(&w, &empty);
    assert!(l.fatal);
    assert!(l.diags.iter().any(|d| d.code == codes::S0310));
}

#[test]
fn machines_get_devices_by_role_and_vms_one_nic_per_vlan() {
    let s = spec(SMALL);
    let w = world(&s);
    let empty = Lock::new();
    let (maas_vms, a, _) = addressed(&w, &empty);
    let input = fra1(&w);
    let machines = machines::build_machines(
        &w.names,
        "x.net",
        &w.profiles,
        input,
        &a,
        &mut Ledger::new(&empty),
    );
    let pve = machines.iter().find(|m| m.serial == "s-pve").expect("pve");
    assert_eq!(pve.hostname, "fra1-r01-pve01");
    assert_eq!(pve.fqdn, "fra1-r01-pve01.fra1.x.net");
    assert_eq!(pve.cluster.as_deref(), Some("infra"));
    assert!(
        pve.interfaces
            .iter()
            .all(|i| i.device.starts_with("vmbr0."))
    );
    let cmp = machines
        .iter()
        .find(|m| m.serial == "s-c1")
        .expect("compute");
    assert_eq!(cmp.bond.as_deref(), Some("bond0"));
    // Provisioning is untagged on the bond (PXE); the other VLANs ride it tagged.
    let devices: Vec<(&str, bool)> = cmp
        .interfaces
        .iter()
        .map(|i| (i.device.as_str(), i.vlan == NATIVE_VLAN))
        .collect();
    assert_eq!(
        devices,
        [("bond0", true), ("bond0.12", false), ("bond0.20", false)]
    );
    let prov = a.vlans.iter().find(|v| v.native).expect("a native VLAN");
    assert_eq!(prov.role, InfraVlan::Provisioning);
    assert_eq!(a.vlans.iter().filter(|v| v.native).count(), 1);
    assert_eq!(cmp.az.as_deref(), Some("az1"));

    let vms = vms::build_vms(
        &w.names,
        "x.net",
        input,
        &maas_vms,
        &a,
        &mut Ledger::new(&empty),
    );
    let rack = vms
        .iter()
        .find(|v| v.name == "maas-a")
        .expect("rack controller");
    let devices: Vec<&str> = rack.interfaces.iter().map(|i| i.device.as_str()).collect();
    assert_eq!(devices, ["eth0", "eth1", "eth2"]);
    assert_eq!(rack.kind, VmKind::MaasRack);
    assert_eq!(rack.origin, VmOrigin::Blueprint);
}

#[test]
fn clashing_hostnames_are_reported() {
    // Two objects with one name: a VM named like a switch.
    let s = spec(&SMALL.replace(
        "organisation: { name: x, fleet_id: x, domain: x.net }",
        "organisation: { name: x, fleet_id: x, domain: x.net, naming: { vm: \"fra1-{name}\" } }",
    ).replace("{ name: mon, site: fra1", "{ name: spine01, site: fra1"));
    let w = world(&s);
    let g = globals(&s, &w, &Lock::new());
    let sw = switches(&w, &g);
    let empty = Lock::new();
    let (maas_vms, a, _) = addressed(&w, &empty);
    let vms = vms::build_vms(
        &w.names,
        "x.net",
        fra1(&w),
        &maas_vms,
        &a,
        &mut Ledger::new(&empty),
    );
    let lock = Lock::new();
    let mut l = Ledger::new(&lock);
    services::check_hostnames(&w.names, fra1(&w), &sw, &[], &vms, &mut l);
    assert!(l.fatal);
    assert!(l.diags[0].message.contains("both named `fra1-spine01`"));
}

#[test]
fn machines_a_written_template_names_alike_are_reported_at_the_template() {
    // `{site}-{slot:02}` gives the slot-1 machines of both racks one name.
    let s = spec(&SMALL.replace(
        "organisation: { name: x, fleet_id: x, domain: x.net }",
        "organisation: { name: x, fleet_id: x, domain: x.net, naming: { machine: \"{site}-{slot:02}\" } }",
    ));
    let w = world(&s);
    let empty = Lock::new();
    let (_, a, _) = addressed(&w, &empty);
    let machines = machines::build_machines(
        &w.names,
        "x.net",
        &w.profiles,
        fra1(&w),
        &a,
        &mut Ledger::new(&empty),
    );
    let mut l = Ledger::new(&empty);
    services::check_hostnames(&w.names, fra1(&w), &[], &machines, &[], &mut l);
    assert!(l.fatal);
    assert_eq!(l.diags.len(), 1, "{:#?}", l.diags);
    let d = &l.diags[0];
    assert_eq!(d.code, codes::S0204);
    assert!(
        d.message.contains("machine naming template"),
        "{}",
        d.message
    );
    assert_eq!(d.span, w.names.machine_span);
    assert_eq!(d.related.len(), 2, "both machines are related");
}

#[test]
fn corosync_ids_and_vrrp_ranks_keep_what_the_lock_records() {
    let s = spec(SMALL);
    let w = world(&s);
    let empty = Lock::new();
    let (maas_vms, a, _) = addressed(&w, &empty);
    let input = fra1(&w);
    let machines = machines::build_machines(
        &w.names,
        "x.net",
        &w.profiles,
        input,
        &a,
        &mut Ledger::new(&empty),
    );
    let mut vms = vms::build_vms(
        &w.names,
        "x.net",
        input,
        &maas_vms,
        &a,
        &mut Ledger::new(&empty),
    );

    let mut lock = Lock::new();
    lock.set_pool(
        "corosync_ids/fra1/infra".into(),
        [("s-pve".to_string(), "7".to_string())]
            .into_iter()
            .collect(),
    );
    let mut l = Ledger::new(&lock);
    let px = services::build_proxmox("fra1", &input.bp, &machines, &mut vms, &mut l);
    assert_eq!(px[0].nodes[0].nodeid, 7);
    assert_eq!(px[0].nodes[0].links.len(), 1, "one corosync link");

    let vips = services::build_vips("fra1", &input.bp, &machines, &vms, &[], &a, &mut l);
    assert!(!l.fatal, "{:#?}", l.diags);
    assert_eq!(vips[0].vrid, 1);
    assert_eq!(vips[0].members[0].hostname, "fra1-maas-region1");
    assert_eq!(vips[0].members[0].priority, 150);
    assert_eq!(services::internal_vip(&input.bp, &vips), None);
}

#[test]
fn vrrp_members_are_listed_by_rank_and_a_new_member_ranks_last() {
    let s = small_with("region_controllers: 1", "region_controllers: 2");
    let w = world(&s);
    let mut lock = Lock::new();
    // maas-region2 came first; maas-region1 joined later.
    lock.set_pool(
        "vrrp_ranks/fra1/maas-api".into(),
        [("fra1-maas-region2".to_string(), "1".to_string())]
            .into_iter()
            .collect(),
    );
    let empty = Lock::new();
    let (maas_vms, a, _) = addressed(&w, &empty);
    let input = fra1(&w);
    let vms = vms::build_vms(
        &w.names,
        "x.net",
        input,
        &maas_vms,
        &a,
        &mut Ledger::new(&empty),
    );
    let mut l = Ledger::new(&lock);
    let vips = services::build_vips("fra1", &input.bp, &[], &vms, &[], &a, &mut l);
    let members: Vec<(&str, u8)> = vips[0]
        .members
        .iter()
        .map(|m| (m.hostname.as_str(), m.priority))
        .collect();
    assert_eq!(
        members,
        [("fra1-maas-region2", 150), ("fra1-maas-region1", 140)]
    );
}

#[test]
fn openstack_region_and_maas_come_from_the_hosts() {
    let s = spec(SMALL);
    let w = world(&s);
    let empty = Lock::new();
    let (maas_vms, a, _) = addressed(&w, &empty);
    let input = fra1(&w);
    let machines = machines::build_machines(
        &w.names,
        "x.net",
        &w.profiles,
        input,
        &a,
        &mut Ledger::new(&empty),
    );
    let vms = vms::build_vms(
        &w.names,
        "x.net",
        input,
        &maas_vms,
        &a,
        &mut Ledger::new(&empty),
    );
    let os = services::build_openstack("fra1", &input.bp, &w.profiles, &machines, &vms);
    assert_eq!(os.compute.len(), 2);
    assert_eq!(os.availability_zones[0].compute, ["fra1-r01-cmp02"]);
    assert_eq!(os.monitoring, ["fra1-mon"]);
    let maas = services::build_maas(&w.names, "fra1", &input.bp, &vms);
    assert_eq!(maas.region_controllers, ["fra1-maas-region1"]);
    assert_eq!(maas.rack_controllers[0].hostname, "fra1-maas-a");
    let hs = services::host_services(
        "fra1",
        "x.net",
        &maas.region_controllers,
        &maas.rack_controllers,
        &vms,
        &machines,
    );
    assert_eq!(hs.search_domain, "fra1.x.net");
    assert_eq!(hs.resolvers.len(), 1);
    assert_eq!(hs.ntp_servers.len(), 1);
}

#[test]
fn tenant_subnets_are_the_dcs_share_of_the_global_pool() {
    let s = spec(SMALL);
    let w = world(&s);
    let g = globals(&s, &w, &Lock::new());
    let tenants = vec![Tenant {
        name: "t".into(),
        vrf: "t".into(),
        l3_vni: 50_000,
        networks: vec![TenantNetwork {
            name: "web".into(),
            vni: 10_007,
            vlan: 1000,
            routed: true,
            vni_span: None,
            vlan_span: None,
        }],
        span: None,
        l3_vni_span: None,
    }];
    let ts = services::tenant_subnets("fra1", w.pools, &tenants, &g.tenant_subnets);
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].subnet, net("100.64.0.0/24"));
    assert_eq!(ts[0].gateway.to_string(), "100.64.0.1");
}

#[test]
fn a_whole_dc_assembles() {
    let s = spec(SMALL);
    let w = world(&s);
    let lock = Lock::new();
    let g = globals(&s, &w, &lock);
    let sh = Shared {
        old: &lock,
        names: &w.names,
        profiles: &w.profiles,
        pools: w.pools,
        domain: "x.net",
        infra_vnis: &[],
        tenants: &[],
        underlay_mtu: 9216,
    };
    let blocks = SiteBlocks {
        supernet: Some(net("10.0.0.0/16")),
        loopback: Some(net("10.255.0.0/24")),
        vtep: Some(net("10.254.0.0/24")),
        p2p: Some(net("10.253.0.0/22")),
        spine_asn: Some(4_200_000_000),
    };
    let (dc, l) = build_dc(&sh, fra1(&w), &blocks, &g.leaf_asns, &g.tenant_subnets);
    assert!(!l.fatal, "{:#?}", l.diags);
    let dc = dc.expect("dc");
    assert_eq!(dc.switches.len(), 7);
    assert_eq!(dc.machines.len(), 3);
    assert_eq!(dc.vms.len(), 3);
    let pools: BTreeMap<&str, usize> = l.pools.iter().map(|(p, e)| (p.as_str(), e.len())).collect();
    assert_eq!(pools["ports/fra1/spine1"], 5);
    assert_eq!(pools["ports/fra1/border1"], 2);
    // Without its blocks a DC is not built.
    let none = SiteBlocks {
        supernet: None,
        ..blocks
    };
    assert!(
        build_dc(&sh, fra1(&w), &none, &g.leaf_asns, &g.tenant_subnets)
            .0
            .is_none()
    );
}

#[test]
fn an_index_in_hostnames_is_recorded_and_never_renames_a_machine() {
    let naming = |text: &str| {
        text.replace(
            "organisation: { name: x, fleet_id: x, domain: x.net }",
            "organisation: { name: x, fleet_id: x, domain: x.net, naming: { machine: \"{site}-{rack}-{role}{index}\" } }",
        )
        .replace("rack: r01, slot: 2,", "rack: r01, slot: 5,")
    };
    let before = spec(&naming(SMALL));
    let first = crate::compile::compile(&before, &Lock::new());
    assert!(first.diagnostics.is_empty(), "{:#?}", first.diagnostics);
    let hostname = |c: &crate::compile::Compiled, serial: &str| {
        c.fleet
            .as_ref()
            .and_then(|f| f.dc("fra1"))
            .and_then(|d| d.machines.iter().find(|m| m.serial == serial))
            .map(|m| m.hostname.clone())
    };
    assert_eq!(hostname(&first, "s-c1").as_deref(), Some("fra1-r01-cmp1"));

    // A new compute node below it in the same rack takes the next free index.
    let added = naming(SMALL).replace(
        "machines:\n",
        "machines:\n  - { serial: s-c0, site: fra1, rack: r01, slot: 3, profile: p, role: openstack-compute, bmc: { credential: { env: X } } }\n",
    );
    let second = crate::compile::compile(&spec(&added), &first.lock);
    assert!(second.diagnostics.is_empty(), "{:#?}", second.diagnostics);
    assert_eq!(hostname(&second, "s-c1").as_deref(), Some("fra1-r01-cmp1"));
    assert_eq!(hostname(&second, "s-c0").as_deref(), Some("fra1-r01-cmp2"));
    // Without the lock, positions would have renamed s-c1.
    let fresh = crate::compile::compile(&spec(&added), &Lock::new());
    assert_eq!(hostname(&fresh, "s-c1").as_deref(), Some("fra1-r01-cmp2"));
}
