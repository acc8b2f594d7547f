//! FRR `frr.conf` for every switch: `<dc>/frr/<switch-hostname>.conf` (FRR 8.4 syntax,
//! `frr defaults datacenter`, integrated vtysh config).
//!
//! Invariant: the file is a pure function of the compiled fleet (sorted iteration, no
//! clock, no secrets), and every BGP neighbour, address and AS number in it comes from
//! the fleet's switch interfaces and per-end BGP sessions, never from the blueprint
//! directly; only `max_paths` and `bfd` are read from the DC's effective blueprint.
//!
//! What each role gets:
//! * every switch: `lo` with the loopback /32 (also the router-id), the routed fabric
//!   and `dci-*` interfaces with their /31 addresses, `router bgp <asn>` with one
//!   numbered neighbour per session of that switch, grouped in peer-groups `FABRIC`
//!   (spine-leaf) and `DCI` (interconnects), BFD on both when the underlay asks for it,
//!   `maximum-paths` from the underlay, and the loopback announced with `network`.
//! * spines: IPv4 unicast and L2VPN EVPN with every fabric neighbour activated, and
//!   nothing else: no VRFs, no VNIs, no `advertise-all-vni`. A spine only relays EVPN.
//!   No `next-hop-unchanged` or route-map is needed for that: FRR 8.4 never rewrites
//!   the next hop of an EVPN route towards an eBGP peer (it only fills in its own
//!   address for routes it originates), so the originating VTEP survives the spine.
//!   The spines of a DC share one AS, so a route a leaf re-advertises to another spine
//!   is dropped by the AS-path check, and no spine-to-spine session exists.
//! * leaves and border leaves (the VTEPs): the VTEP /32 as a second address on `lo`,
//!   announced with `network` like the loopback; `advertise-all-vni`; and one
//!   `vrf <tenant.vrf>` with `vni <l3_vni>` plus `router bgp <asn> vrf <vrf>` per tenant
//!   (symmetric IRB): `advertise ipv4 unicast` announces the VRF's connected tenant
//!   subnets as EVPN type-5 routes, filtered to the DC's routed tenant subnets. The VRF
//!   instances use the loopback as router-id so their auto-derived RDs stay unique
//!   per switch (the SVIs carry the same anycast gateway address on every leaf).
//!   Route targets are FRR's auto-derived `AS:VNI`; FRR matches those on the VNI alone
//!   for import, which is what makes them work with a different AS on every leaf.
//! * border leaves, DCI: the interconnect sessions (`DCI` peer-group) carry
//!   - IPv4 unicast restricted (in and out) to the fleet's loopback and VTEP blocks, so
//!     every VTEP can reach every other VTEP across DCs, and
//!   - L2VPN EVPN restricted (in and out) to type-5 (IP prefix) routes. Tenant VRFs
//!     and their L3 VNIs are fleet-wide, so tenant subnets are routed between DCs,
//!     VTEP to VTEP with the next hop unchanged. Type-2/3 routes (MACs, flooding) stay
//!     inside their DC: the infrastructure and tenant L2 VNIs reuse the same numbers in
//!     every DC with different subnets, and stretching them would merge those L2
//!     domains.
//!
//! The host-side devices (VXLAN devices, bridges, SVIs, VRF devices, MTUs) are not
//! configured here: ifupdown2 (or the lab) creates them and zebra learns them from the
//! kernel, as the files' header comments say. `ip forwarding` is set so that zebra turns
//! routing on in whatever namespace or host it runs in. Prefix-lists and route-maps come
//! before `router bgp`, so that booting the file (`vtysh -b`) does not warn about
//! route-maps used before they are defined.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use ipnet::IpNet;

use serde::Serialize;
use strata_fleet::{Dc, Fleet, SessionKind, Switch, SwitchRole};

use crate::{FileKind, RenderError, RenderedFile, template};

const TEMPLATE: &str = "frr/frr.conf.j2";

/// Peer-group of the spine-leaf sessions.
pub const FABRIC_GROUP: &str = "FABRIC";
/// Peer-group of the border leaves' interconnect sessions.
pub const DCI_GROUP: &str = "DCI";
/// Route-map (and prefix-list) limiting DCI IPv4 unicast to loopbacks and VTEPs.
const DCI_UNDERLAY: &str = "DCI-UNDERLAY";
/// Route-map limiting DCI EVPN to type-5 routes.
const DCI_EVPN: &str = "DCI-EVPN-TYPE5";

static ENV: OnceLock<template::Templates> = OnceLock::new();

fn env() -> &'static template::Templates {
    ENV.get_or_init(|| {
        template::environment(&[(TEMPLATE, include_str!("../templates/frr/frr.conf.j2"))])
    })
}

/// Render one `frr.conf` per switch of every DC, sorted by path.
pub fn render(fleet: &Fleet) -> Result<Vec<RenderedFile>, RenderError> {
    let underlay_blocks = underlay_blocks(fleet);
    crate::collect(fleet.dcs.iter().flat_map(|dc| {
        let blocks = &underlay_blocks;
        dc.switches.iter().map(move |sw| {
            crate::file(
                path(dc, sw),
                FileKind::FrrConf,
                template::render(env(), TEMPLATE, context(fleet, dc, sw, blocks)),
            )
        })
    }))
}

/// `<dc>/frr/<switch-hostname>.conf`
pub fn path(dc: &Dc, sw: &Switch) -> String {
    format!("{}/frr/{}.conf", dc.name, sw.name)
}

/// Every DC's loopback and VTEP block, sorted and deduplicated: what DCI may carry.
fn underlay_blocks(fleet: &Fleet) -> Vec<String> {
    let blocks: BTreeSet<IpNet> = fleet
        .dcs
        .iter()
        .flat_map(|dc| [dc.loopback_block, dc.vtep_block])
        .collect();
    blocks.iter().map(|b| b.trunc().to_string()).collect()
}

#[derive(Serialize)]
struct Ctx<'a> {
    hostname: &'a str,
    role_text: &'static str,
    dc: &'a str,
    rack: Option<&'a str>,
    asn: u32,
    router_id: String,
    vtep: Option<String>,
    lo_addresses: Vec<String>,
    interfaces: Vec<Iface>,
    bfd: bool,
    max_paths: u32,
    groups: Vec<Group>,
    networks: Vec<String>,
    vrfs: Vec<Vrf>,
    dci: Option<DciPolicy>,
}

#[derive(Serialize)]
struct Iface {
    name: String,
    address: String,
    description: String,
}

#[derive(Serialize)]
struct Group {
    name: &'static str,
    policy: Option<GroupPolicy>,
    neighbors: Vec<Neighbor>,
}

#[derive(Serialize)]
struct GroupPolicy {
    underlay: &'static str,
    evpn: &'static str,
}

#[derive(Serialize)]
struct Neighbor {
    address: String,
    remote_asn: u32,
    description: String,
}

#[derive(Serialize)]
struct Vrf {
    name: String,
    l3_vni: u32,
    /// Route-map and prefix-list name for the VRF's connected subnets.
    policy: String,
    subnets: Vec<String>,
}

#[derive(Serialize)]
struct DciPolicy {
    underlay: &'static str,
    evpn: &'static str,
    underlay_blocks: Vec<String>,
}

fn host_prefix(addr: std::net::IpAddr) -> String {
    match addr {
        std::net::IpAddr::V4(_) => format!("{addr}/32"),
        std::net::IpAddr::V6(_) => format!("{addr}/128"),
    }
}

fn context<'a>(fleet: &'a Fleet, dc: &'a Dc, sw: &'a Switch, blocks: &[String]) -> Ctx<'a> {
    let underlay = &dc.blueprint.fabric.underlay;
    let is_vtep = sw.role != SwitchRole::Spine;
    let vtep = if is_vtep { sw.vtep } else { None };

    let mut lo_addresses = vec![host_prefix(sw.loopback)];
    lo_addresses.extend(vtep.map(host_prefix));
    let networks = lo_addresses.clone();

    let interfaces = sw
        .interfaces
        .iter()
        .map(|i| Iface {
            name: i.name.clone(),
            address: i.address.to_string(),
            description: format!("to {} {}", i.peer, i.peer_interface),
        })
        .collect();

    let mut sessions: Vec<_> = dc.bgp.iter().filter(|s| s.local == sw.name).collect();
    sessions.sort_by(|a, b| (&a.peer, a.peer_address).cmp(&(&b.peer, b.peer_address)));
    let neighbors = |kind: SessionKind| -> Vec<Neighbor> {
        sessions
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| Neighbor {
                address: s.peer_address.to_string(),
                remote_asn: s.remote_asn,
                description: s.peer.clone(),
            })
            .collect()
    };
    let mut groups = Vec::new();
    let fabric = neighbors(SessionKind::Fabric);
    if !fabric.is_empty() {
        groups.push(Group {
            name: FABRIC_GROUP,
            policy: None,
            neighbors: fabric,
        });
    }
    let dci_neighbors = neighbors(SessionKind::Interconnect);
    let dci = (!dci_neighbors.is_empty()).then(|| DciPolicy {
        underlay: DCI_UNDERLAY,
        evpn: DCI_EVPN,
        underlay_blocks: blocks.to_vec(),
    });
    if !dci_neighbors.is_empty() {
        groups.push(Group {
            name: DCI_GROUP,
            policy: Some(GroupPolicy {
                underlay: DCI_UNDERLAY,
                evpn: DCI_EVPN,
            }),
            neighbors: dci_neighbors,
        });
    }

    let vrfs = if is_vtep {
        fleet
            .tenants
            .iter()
            .map(|t| {
                let mut subnets: Vec<IpNet> = dc
                    .tenant_subnets
                    .iter()
                    .filter(|s| s.tenant == t.name)
                    .filter(|s| t.networks.iter().any(|n| n.name == s.network && n.routed))
                    .map(|s| s.subnet.trunc())
                    .collect();
                subnets.sort();
                subnets.dedup();
                Vrf {
                    name: t.vrf.clone(),
                    l3_vni: t.l3_vni,
                    policy: format!("TENANT-{}-SUBNETS", t.vrf),
                    subnets: subnets.iter().map(|s| s.to_string()).collect(),
                }
            })
            .collect()
    } else {
        Vec::new()
    };

    Ctx {
        hostname: &sw.name,
        role_text: match sw.role {
            SwitchRole::Spine => "spine",
            SwitchRole::Leaf => "leaf",
            SwitchRole::Border => "border leaf",
        },
        dc: &dc.name,
        rack: sw.rack.as_deref(),
        asn: sw.asn,
        router_id: sw.loopback.to_string(),
        vtep: vtep.map(|v| v.to_string()),
        lo_addresses,
        interfaces,
        bfd: underlay.bfd,
        max_paths: *underlay.max_paths,
        groups,
        networks,
        vrfs,
        dci,
    }
}
