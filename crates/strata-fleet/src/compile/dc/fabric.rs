//! The fabric of one DC: spines, leaves and border leaves with their ASNs, loopbacks
//! and VTEPs; a routed link from every spine to every leaf and border leaf, each end
//! on a port recorded in the lock; and a BGP session (one entry per end) per link.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use strata_diagnostics::Span;
use strata_spec::Blueprint;
use strata_spec::naming::Vars;

use super::super::global::p2p_len;
use super::super::ledger::Ledger;
use super::super::nth;
use super::super::settings::Names;
use crate::alloc::{Allocation, Space};
use crate::model::*;

/// Ports of a spine: `swp1` up to this (a generous bound: the spec does not model
/// switch models, and 50 racks of two leaves need 100).
const SPINE_PORTS: u32 = 1024;
/// A leaf's first uplink port: `swp1`-`swp48` face hosts, `swp49` and up the spines.
const LEAF_UPLINK_FIRST: u32 = 49;
/// Uplink ports of a leaf: one per spine, and a fabric has at most 64 spines.
const LEAF_UPLINKS: u32 = 64;

/// The port of each link end: `(switch, peer)` (indices into the switch list) -> port.
pub(crate) type Ports = HashMap<(usize, usize), String>;

/// Every switch of the DC in fabric order (spines, then each rack's leaves, then the
/// border leaves), named and with its ASN; and the racks with their leaves' names.
pub(crate) fn build_switches(
    names: &Names,
    site: &str,
    bp: &Blueprint,
    racks: &[&strata_spec::Rack],
    spine_asn: u32,
    leaf_asns: &Allocation,
    leaf_asn_first: u32,
) -> (Vec<Switch>, Vec<Rack>) {
    let spines = *bp.fabric.spines;
    let mut switches: Vec<Switch> = Vec::new();
    fn vars<'v>(site: &'v str, rack: &'v str, index: u32) -> Vars<'v> {
        Vars {
            site,
            rack,
            index,
            ..Vars::default()
        }
    }
    for i in 1..=spines {
        switches.push(Switch {
            name: names.spine.expand(&vars(site, "", i)),
            role: SwitchRole::Spine,
            id: format!("spine{i}"),
            rack: None,
            index: i,
            asn: spine_asn,
            loopback: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            vtep: None,
            interfaces: Vec::new(),
        });
    }
    let mut racks_out = Vec::new();
    for r in racks {
        let mut leaves = Vec::new();
        for j in 1..=*bp.fabric.leaves_per_rack {
            let name = names.leaf.expand(&vars(site, r.name.as_str(), j));
            leaves.push(name.clone());
            switches.push(Switch {
                name,
                role: SwitchRole::Leaf,
                id: format!("{}/leaf{j}", r.name),
                rack: Some(r.name.to_string()),
                index: j,
                asn: 0,
                loopback: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                vtep: None,
                interfaces: Vec::new(),
            });
        }
        racks_out.push(Rack {
            name: r.name.to_string(),
            units: r.units,
            az: r.az.as_ref().map(|a| a.to_string()),
            leaves,
        });
    }
    for j in 1..=*bp.fabric.border_leaves {
        switches.push(Switch {
            name: names.border.expand(&vars(site, "", j)),
            role: SwitchRole::Border,
            id: format!("border{j}"),
            rack: None,
            index: j,
            asn: 0,
            loopback: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            vtep: None,
            interfaces: Vec::new(),
        });
    }
    for sw in &mut switches {
        if sw.role != SwitchRole::Spine {
            sw.asn = leaf_asns
                .get(&format!("{site}/{}", sw.id))
                .map(|i| leaf_asn_first + i as u32)
                .unwrap_or(0);
        }
    }
    (switches, racks_out)
}

/// Loopbacks (every switch) and VTEPs (leaves and border leaves) from the DC's blocks.
pub(crate) fn address_switches(
    site: &str,
    switches: &mut [Switch],
    loopback_block: IpNet,
    vtep_block: IpNet,
    pools: &strata_spec::Pools,
    l: &mut Ledger<'_>,
) {
    let ids: Vec<String> = switches.iter().map(|s| s.id.clone()).collect();
    let lo_space = Space::Hosts {
        net: loopback_block,
        reserved: 0,
    };
    let lo = l.alloc(
        format!("loopbacks/{site}"),
        "loopback addresses",
        lo_space,
        ids.iter().map(String::as_str),
        &[],
        Some(pools.loopbacks.prefix_len.span),
    );
    let vtep_ids: Vec<&str> = switches
        .iter()
        .filter(|s| s.role != SwitchRole::Spine)
        .map(|s| s.id.as_str())
        .collect();
    let vt_space = Space::Hosts {
        net: vtep_block,
        reserved: 0,
    };
    let vt = l.alloc(
        format!("vteps/{site}"),
        "VTEP addresses",
        vt_space,
        vtep_ids.iter().copied(),
        &[],
        Some(pools.vteps.prefix_len.span),
    );
    for sw in switches.iter_mut() {
        if let Some(i) = lo.get(&sw.id) {
            sw.loopback = lo_space.addr(i);
        }
        if sw.role != SwitchRole::Spine {
            sw.vtep = vt.get(&sw.id).map(|i| vt_space.addr(i));
        }
    }
}

/// The fabric's links and BGP sessions: a /31 (or /127) per spine-leaf pair from the
/// DC's p2p block, each end on its recorded port.
#[allow(clippy::too_many_arguments)]
pub(crate) fn allocate_fabric(
    site: &str,
    span: Span,
    switches: &mut [Switch],
    p2p_block: IpNet,
    pools: &strata_spec::Pools,
    underlay_mtu: u32,
    l: &mut Ledger<'_>,
) -> (Vec<Link>, Vec<BgpSession>) {
    let (spine_idx, leaf_like) = fabric_order(switches);
    let mut link_keys = Vec::new();
    for &s in &spine_idx {
        for &leaf in &leaf_like {
            link_keys.push(link_key(switches, s, leaf));
        }
    }
    let p2p_space = Space::Blocks {
        net: p2p_block,
        prefix_len: p2p_len(&p2p_block),
    };
    let p2p = l.alloc(
        format!("p2p/{site}"),
        "point-to-point links",
        p2p_space,
        link_keys.iter().map(String::as_str),
        &[],
        Some(pools.p2p.prefix_len.span),
    );
    let ports = allocate_ports(site, span, switches, l);
    wire_fabric(site, switches, &p2p, p2p_space, &ports, underlay_mtu)
}

/// Indices of the spines, and of the leaves and border leaves, in fabric order.
fn fabric_order(switches: &[Switch]) -> (Vec<usize>, Vec<usize>) {
    let leaf_like: Vec<usize> = (0..switches.len())
        .filter(|&i| switches[i].role != SwitchRole::Spine)
        .collect();
    let spine_idx: Vec<usize> = (0..switches.len())
        .filter(|&i| switches[i].role == SwitchRole::Spine)
        .collect();
    (spine_idx, leaf_like)
}

/// The p2p allocation key of the link from spine `s` to leaf `leaf`.
fn link_key(switches: &[Switch], s: usize, leaf: usize) -> String {
    format!("{}--{}", switches[s].id, switches[leaf].id)
}

/// Ports: every link end keeps the port the lock records, so adding a rack never
/// moves an existing cable. A new link takes its conventional port if it is free
/// (a spine's port n faces the n-th leaf in fabric order, a leaf's port 48 + n
/// faces spine n), else the lowest free port of that switch.
pub(crate) fn allocate_ports(
    site: &str,
    span: Span,
    switches: &[Switch],
    l: &mut Ledger<'_>,
) -> Ports {
    let (spine_idx, leaf_like) = fabric_order(switches);
    let spine_ports = Space::Ports {
        first: 1,
        last: SPINE_PORTS,
    };
    let mut port_of: Ports = HashMap::with_capacity(2 * spine_idx.len() * leaf_like.len());
    for &s in &spine_idx {
        let preferred: BTreeMap<String, u128> = leaf_like
            .iter()
            .enumerate()
            .map(|(ord, &leaf)| (switches[leaf].id.clone(), ord as u128))
            .collect();
        let ports = l.alloc_preferring(
            format!("ports/{site}/{}", switches[s].id),
            "spine ports",
            spine_ports,
            leaf_like.iter().map(|&leaf| switches[leaf].id.as_str()),
            &[],
            &preferred,
            Some(span),
        );
        for &leaf in &leaf_like {
            if let Some(slot) = ports.get(&switches[leaf].id) {
                port_of.insert((s, leaf), spine_ports.value(slot));
            }
        }
    }
    let uplink_ports = Space::Ports {
        first: LEAF_UPLINK_FIRST,
        last: LEAF_UPLINK_FIRST + LEAF_UPLINKS - 1,
    };
    for &leaf in &leaf_like {
        let preferred: BTreeMap<String, u128> = spine_idx
            .iter()
            .map(|&s| {
                (
                    switches[s].id.clone(),
                    u128::from(switches[s].index.saturating_sub(1)),
                )
            })
            .collect();
        let ports = l.alloc_preferring(
            format!("ports/{site}/{}", switches[leaf].id),
            "leaf uplink ports",
            uplink_ports,
            spine_idx.iter().map(|&s| switches[s].id.as_str()),
            &[],
            &preferred,
            Some(span),
        );
        for &s in &spine_idx {
            if let Some(slot) = ports.get(&switches[s].id) {
                port_of.insert((leaf, s), uplink_ports.value(slot));
            }
        }
    }
    port_of
}

/// The links and sessions of the fabric, from the p2p allocation and the ports.
fn wire_fabric(
    site: &str,
    switches: &mut [Switch],
    p2p: &Allocation,
    p2p_space: Space,
    port_of: &Ports,
    underlay_mtu: u32,
) -> (Vec<Link>, Vec<BgpSession>) {
    let (spine_idx, leaf_like) = fabric_order(switches);
    let mut links = Vec::new();
    let mut bgp = Vec::new();
    for &s in &spine_idx {
        for &leaf in &leaf_like {
            let key = link_key(switches, s, leaf);
            let Some(slot) = p2p.get(&key) else { continue };
            let (Some(s_if), Some(l_if)) = (port_of.get(&(s, leaf)), port_of.get(&(leaf, s)))
            else {
                continue;
            };
            let (s_if, l_if) = (s_if.clone(), l_if.clone());
            let subnet = p2p_space.block(slot);
            let a_addr = subnet.network();
            let b_addr = nth(&subnet, 1);
            let plen = subnet.prefix_len();
            let (sname, lname) = (switches[s].name.clone(), switches[leaf].name.clone());
            let (sasn, lasn) = (switches[s].asn, switches[leaf].asn);
            switches[s].interfaces.push(SwitchInterface {
                name: s_if.clone(),
                address: IpNet::new(a_addr, plen).unwrap_or(subnet),
                peer: lname.clone(),
                peer_interface: l_if.clone(),
                mtu: underlay_mtu,
            });
            switches[leaf].interfaces.push(SwitchInterface {
                name: l_if.clone(),
                address: IpNet::new(b_addr, plen).unwrap_or(subnet),
                peer: sname.clone(),
                peer_interface: s_if.clone(),
                mtu: underlay_mtu,
            });
            bgp.push(BgpSession {
                kind: SessionKind::Fabric,
                local: sname.clone(),
                local_asn: sasn,
                local_address: a_addr,
                peer: lname.clone(),
                peer_dc: site.to_string(),
                peer_address: b_addr,
                remote_asn: lasn,
                remote_asn_span: None,
            });
            bgp.push(BgpSession {
                kind: SessionKind::Fabric,
                local: lname.clone(),
                local_asn: lasn,
                local_address: b_addr,
                peer: sname.clone(),
                peer_dc: site.to_string(),
                peer_address: a_addr,
                remote_asn: sasn,
                remote_asn_span: None,
            });
            links.push(Link {
                subnet,
                a: LinkEnd {
                    device: sname,
                    interface: s_if,
                    address: a_addr,
                },
                b: LinkEnd {
                    device: lname,
                    interface: l_if,
                    address: b_addr,
                },
            });
        }
    }

    (links, bgp)
}
