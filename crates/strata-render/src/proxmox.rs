//! Proxmox VE: `/etc/network/interfaces` of every Proxmox node (ifupdown2 syntax).
//!
//! One file per node of every Proxmox cluster: `<dc>/proxmox/<hostname>/interfaces`
//! ([`FileKind::ProxmoxInterfaces`]), in the layout Proxmox VE 8/9 writes itself:
//! * `auto lo` / `iface lo inet loopback`;
//! * the bond member NICs as `iface <nic> inet manual` with the underlay MTU (no
//!   `auto`: the bond brings them up, as in Proxmox's own examples);
//! * `auto <bond>` / `iface <bond> inet manual` with `bond-slaves`, `bond-miimon 100`,
//!   `bond-mode` (`802.3ad` or `active-backup`), and for 802.3ad `bond-lacp-rate`
//!   (`fast`/`slow`) and `bond-xmit-hash-policy` (the profile's value), MTU = underlay;
//!   The bond (the bridge's port) has `bridge-pvid` = the DC's native VLAN (the
//!   provisioning network, untagged on the leaf ports with LACP fallback for PXE): its
//!   untagged frames belong to that VLAN on the bridge;
//! * `auto vmbr0` / `iface vmbr0 inet manual`: a VLAN-aware bridge on the bond with
//!   `bridge-stp off`, `bridge-fd 0` and `bridge-vids` = every infrastructure VLAN id
//!   of the DC (VMs such as the MAAS rack controllers sit on any of them) plus the
//!   tenant VLAN range of the DC's blueprint. The bridge has no `mtu` line: it
//!   inherits the bond's, and ifupdown2 warns about an explicit one;
//! * one `auto vmbr0.<vid>` / `iface vmbr0.<vid> inet static` per host interface of
//!   the node, ordered by VLAN id, with `address <cidr>`, the VLAN's `mtu`, and a
//!   `gateway` on the management VLAN only. Interfaces that carry a corosync link
//!   (the cluster's `corosync_links`, in link order) say so in a comment;
//! * `source /etc/network/interfaces.d/*` last, as Proxmox VE has it (its SDN writes
//!   there).
//!
//! A node whose profile has no bond gets its first NIC as the bridge port (with the
//! `bridge-pvid`). No DNS
//! options are written (`dns-nameservers` is not an ifupdown2 keyword, and the model
//! has no resolvers).
//!
//! Invariant: pure and deterministic (clusters and nodes in fleet order, which is
//! sorted; VLANs by id), no secrets. Interface names and the hash policy come from
//! the hardware profiles as free text; a value that is not a plain token (letters,
//! digits, `._+:@-`) cannot be written safely in this format, and rendering then
//! fails with a [`RenderError`] naming the file rather than writing something else.
//! Every file passes ifupdown2's `ifup -s -a` syntax check (checked by the tests).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use minijinja::ErrorKind;
use serde::Serialize;
use strata_fleet::{Dc, Fleet, Machine, ProxmoxCluster, ProxmoxNode};
use strata_spec::{BondMode, InfraVlan};

use crate::netplan::{LinkDevice, MII_MONITOR_MS, bond_mode, lacp_rate};
use crate::{FileKind, RenderError, RenderedFile, template};

const TEMPLATE: &str = include_str!("../templates/proxmox/interfaces.j2");

/// The bridge every node's VLANs and VMs hang off.
pub const BRIDGE: &str = strata_fleet::PROXMOX_BRIDGE;

static ENV: OnceLock<template::Templates> = OnceLock::new();

fn env() -> &'static template::Templates {
    ENV.get_or_init(|| {
        // Registered without an extension, so that no auto-escaping applies.
        let mut env = template::environment(&[("interfaces", TEMPLATE)]);
        env.add_filter("token", |s: String| -> Result<String, minijinja::Error> {
            if is_token(&s) {
                Ok(s)
            } else {
                Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{s:?} is not a plain interface-file token"),
                ))
            }
        });
        env
    })
}

/// Letters, digits and `._+:@-`, at least one character.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+:@-".contains(c))
}

/// Render `/etc/network/interfaces` of every Proxmox node of every DC.
pub fn render(fleet: &Fleet) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = Vec::new();
    for dc in &fleet.dcs {
        for cluster in &dc.proxmox {
            for node in &cluster.nodes {
                let Some(machine) = dc.machines.iter().find(|m| m.hostname == node.hostname) else {
                    continue;
                };
                files.push(crate::file(
                    format!("{}/proxmox/{}/interfaces", dc.name, node.hostname),
                    FileKind::ProxmoxInterfaces,
                    template::render(
                        env(),
                        "interfaces",
                        context(fleet, dc, cluster, node, machine),
                    ),
                ));
            }
        }
    }
    crate::collect(files)
}

#[derive(Serialize)]
struct Context<'a> {
    hostname: &'a str,
    dc: &'a str,
    cluster: &'a str,
    nodeid: u32,
    profile: &'a str,
    underlay_mtu: u32,
    /// NICs with an `iface` stanza (the bond members).
    nics: Vec<&'a str>,
    bond: Option<BondContext<'a>>,
    bridge: &'static str,
    /// The bridge's port: the bond, or the fallback NIC.
    bridge_port: Option<&'a str>,
    bridge_vids: String,
    /// The untagged VLAN of the bridge port (`bridge-pvid`).
    native_vid: Option<u16>,
    vlans: Vec<VlanContext>,
}

#[derive(Serialize)]
struct BondContext<'a> {
    name: &'a str,
    slaves: Vec<&'a str>,
    mode: &'static str,
    lacp_rate: Option<&'static str>,
    xmit_hash_policy: Option<&'a str>,
    miimon: u32,
}

#[derive(Serialize)]
struct VlanContext {
    name: String,
    vid: u16,
    role: &'static str,
    address: String,
    mtu: u32,
    gateway: Option<String>,
    /// Corosync links (0-based, as in `link0`) carried by this interface.
    corosync_links: Vec<usize>,
}

fn context<'a>(
    fleet: &'a Fleet,
    dc: &'a Dc,
    cluster: &'a ProxmoxCluster,
    node: &'a ProxmoxNode,
    m: &'a Machine,
) -> Context<'a> {
    let link = LinkDevice::of(m, fleet.profile(&m.profile));
    let (nics, bond) = match &link {
        LinkDevice::Bond(b) => (
            b.members.iter().map(|m| m.as_str()).collect(),
            Some(BondContext {
                name: &b.name,
                slaves: b.members.iter().map(|m| m.as_str()).collect(),
                mode: bond_mode(b.mode),
                lacp_rate: (b.mode == BondMode::Lacp).then(|| lacp_rate(b.lacp_rate)),
                xmit_hash_policy: (b.mode == BondMode::Lacp).then_some(b.xmit_hash_policy.as_str()),
                miimon: MII_MONITOR_MS,
            }),
        ),
        LinkDevice::Nic(nic) => (vec![*nic], None),
        LinkDevice::None => (Vec::new(), None),
    };
    let mut interfaces: Vec<_> = m.interfaces.iter().collect();
    interfaces.sort_by_key(|i| (i.vid, i.vlan));
    let vlans = interfaces
        .iter()
        .map(|i| VlanContext {
            name: i.device.clone(),
            vid: i.vid,
            role: i.vlan.as_str(),
            address: i.address.to_string(),
            mtu: i.mtu,
            gateway: (i.vlan == strata_fleet::ROUTED_VLAN).then(|| i.gateway.to_string()),
            corosync_links: corosync_links(cluster, node, i.vlan, i.address.addr()),
        })
        .collect();
    Context {
        hostname: &m.hostname,
        dc: &dc.name,
        cluster: &cluster.name,
        nodeid: node.nodeid,
        profile: &m.profile,
        underlay_mtu: fleet.mtu.underlay,
        nics,
        bond,
        bridge: BRIDGE,
        bridge_port: link.name(),
        bridge_vids: bridge_vids(fleet, dc),
        native_vid: dc.vlans.iter().find(|v| v.native).map(|v| v.vid),
        vlans,
    }
}

/// The corosync links (0-based) an interface on `vlan` with `address` carries: the
/// cluster's links on that VLAN whose ring address for this node is `address`.
fn corosync_links(
    cluster: &ProxmoxCluster,
    node: &ProxmoxNode,
    vlan: InfraVlan,
    address: std::net::IpAddr,
) -> Vec<usize> {
    cluster
        .corosync_links
        .iter()
        .enumerate()
        .filter(|(i, link)| **link == vlan && node.links.get(*i) == Some(&address))
        .map(|(i, _)| i)
        .collect()
}

/// `bridge-vids`: the DC's infrastructure VLAN ids, then the tenant VLAN range
/// (tenant VLANs of the fleet outside that range are added one by one).
fn bridge_vids(fleet: &Fleet, dc: &Dc) -> String {
    let range = &dc.blueprint.vlans.tenant;
    let mut single: BTreeSet<u32> = dc.vlans.iter().map(|v| u32::from(v.vid)).collect();
    single.extend(
        fleet
            .tenants
            .iter()
            .flat_map(|t| &t.networks)
            .map(|n| u32::from(n.vlan))
            .filter(|v| !range.contains(*v)),
    );
    let mut parts: Vec<(u32, String)> = single.iter().map(|v| (*v, v.to_string())).collect();
    parts.push((range.first, format!("{}-{}", range.first, range.last)));
    parts.sort();
    parts
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token("ens1f0np0"));
        assert!(is_token("layer3+4"));
        assert!(!is_token(""));
        assert!(!is_token("bond0\naddress 1.2.3.4"));
        assert!(!is_token("a b"));
    }
}
