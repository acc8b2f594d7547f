//! netplan: the host network of every bare-metal machine that is not a Proxmox node.
//!
//! One file per machine, `<dc>/netplan/<hostname>.yaml` ([`FileKind::Netplan`]),
//! for systemd-networkd. Proxmox nodes are left out: Proxmox VE configures its
//! network with ifupdown2 (see [`crate::proxmox`]).
//!
//! Conventions:
//! * the profile's bond that carries the VLANs (`Machine::bond`, the profile's first
//!   bond) is rendered with its member NICs under `ethernets` (no addresses, MTU =
//!   the fabric underlay MTU, matched by kernel name); the bond has the underlay MTU
//!   and `parameters` mapped from the profile: `mode`, `mii-monitor-interval: 100`,
//!   and for 802.3ad `lacp-rate` and `transmit-hash-policy`;
//! * the provisioning network (the DC's native VLAN, `Vlan::native`) is untagged: its
//!   address sits on the bond itself, so that the same L2 the machine PXE-booted on
//!   (leaf port native VLAN with LACP fallback) keeps working once the bond is up. The
//!   bond keeps the underlay MTU, which its tagged VLANs need;
//! * one VLAN per other host interface, named `<bond>.<vid>` (e.g. `bond0.12`), with
//!   the VLAN's MTU and the host's address; VLANs are ordered by VLAN id;
//! * the default route is `routes: [{to: default, via: <gateway>}]` on the management
//!   VLAN only (the deprecated `gateway4` is never used); no other VLAN has a route;
//! * no nameservers: the compiled fleet has no DNS resolvers;
//! * a machine whose profile has no bond gets its VLANs on the profile's first NIC (and
//!   the native VLAN's address on the NIC itself).
//!
//! Invariant: pure and deterministic (machines in the fleet's order, which is sorted
//! by DC and hostname; VLANs by id), nothing but addresses and interface names: no
//! secrets (BMC credentials are not rendered at all). Every file passes
//! `netplan generate` without warnings (checked by the tests with the real tool).

use std::sync::OnceLock;

use serde::Serialize;
use strata_fleet::{Dc, Fleet, Machine};
use strata_spec::{BondMode, HardwareProfile, InfraVlan, LacpRate, MachineRole};

use crate::{FileKind, RenderError, RenderedFile, template};

const TEMPLATE: &str = include_str!("../templates/netplan/machine.yaml.j2");

/// The bond miimon interval (ms) used on every bond.
pub(crate) const MII_MONITOR_MS: u32 = 100;

static ENV: OnceLock<template::Templates> = OnceLock::new();

fn env() -> &'static template::Templates {
    ENV.get_or_init(|| {
        // Registered without an extension, so that no auto-escaping applies.
        let mut env = template::environment(&[("netplan", TEMPLATE)]);
        env.add_filter("yaml", |s: String| yaml_scalar(&s));
        env
    })
}

/// Render the netplan file of every non-Proxmox machine of every DC.
pub fn render(fleet: &Fleet) -> Result<Vec<RenderedFile>, RenderError> {
    crate::collect(fleet.dcs.iter().flat_map(|dc| {
        dc.machines
            .iter()
            .filter(|m| m.role != MachineRole::Proxmox)
            .map(move |m| {
                crate::file(
                    format!("{}/netplan/{}.yaml", dc.name, m.hostname),
                    FileKind::Netplan,
                    template::render(env(), "netplan", context(fleet, dc, m)),
                )
            })
    }))
}

#[derive(Serialize)]
struct Context<'a> {
    hostname: &'a str,
    dc: &'a str,
    role: &'static str,
    profile: &'a str,
    underlay_mtu: u32,
    /// Physical NICs to configure (the bond members, or the fallback NIC).
    ethernets: Vec<&'a str>,
    bond: Option<BondContext<'a>>,
    /// The untagged (native) network, on the bond or the fallback NIC itself.
    native: Option<VlanContext<'a>>,
    vlans: Vec<VlanContext<'a>>,
}

#[derive(Serialize)]
struct BondContext<'a> {
    name: &'a str,
    members: Vec<&'a str>,
    mode: &'static str,
    /// Only for 802.3ad.
    lacp_rate: Option<&'static str>,
    /// Only for 802.3ad.
    transmit_hash_policy: Option<&'a str>,
    mii_monitor_interval: u32,
}

#[derive(Serialize)]
struct VlanContext<'a> {
    name: String,
    id: u16,
    link: String,
    role: &'static str,
    address: String,
    mtu: u32,
    default_via: Option<String>,
    /// On the interface with the default route: the DC's resolvers and search domain.
    nameservers: Option<Nameservers<'a>>,
}

#[derive(Serialize)]
struct Nameservers<'a> {
    addresses: Vec<String>,
    search: &'a str,
}

fn context<'a>(fleet: &'a Fleet, dc: &'a Dc, m: &'a Machine) -> Context<'a> {
    let profile = fleet.profile(&m.profile);
    let link = LinkDevice::of(m, profile);
    let mut interfaces: Vec<_> = m.interfaces.iter().collect();
    interfaces.sort_by_key(|i| (i.vid, i.vlan));
    let mut vlans: Vec<VlanContext<'a>> = match link.name() {
        Some(link) => interfaces
            .iter()
            .map(|i| VlanContext {
                name: i.device.clone(),
                id: i.vid,
                link: link.to_string(),
                role: i.vlan.as_str(),
                address: i.address.to_string(),
                mtu: i.mtu,
                default_via: (i.vlan == strata_fleet::ROUTED_VLAN).then(|| i.gateway.to_string()),
                nameservers: (i.vlan == InfraVlan::Management
                    && !dc.host_services.resolvers.is_empty())
                .then(|| Nameservers {
                    addresses: dc
                        .host_services
                        .resolvers
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    search: &dc.host_services.search_domain,
                }),
            })
            .collect(),
        None => Vec::new(),
    };
    // The native VLAN's interface leaves the VLAN list for its uplink.
    let native_at = interfaces
        .iter()
        .position(|i| dc.vlan(i.vlan).is_some_and(|v| v.native));
    let native = native_at
        .filter(|at| *at < vlans.len())
        .map(|at| vlans.remove(at));
    let (ethernets, bond) = match link {
        LinkDevice::Bond(b) => (
            b.members.iter().map(|m| m.as_str()).collect(),
            Some(BondContext {
                name: &b.name,
                members: b.members.iter().map(|m| m.as_str()).collect(),
                mode: bond_mode(b.mode),
                lacp_rate: (b.mode == BondMode::Lacp).then(|| lacp_rate(b.lacp_rate)),
                transmit_hash_policy: (b.mode == BondMode::Lacp)
                    .then_some(b.xmit_hash_policy.as_str()),
                mii_monitor_interval: MII_MONITOR_MS,
            }),
        ),
        LinkDevice::Nic(nic) => (vec![nic], None),
        LinkDevice::None => (Vec::new(), None),
    };
    Context {
        hostname: &m.hostname,
        dc: &dc.name,
        role: m.role.as_str(),
        profile: &m.profile,
        underlay_mtu: fleet.mtu.underlay,
        ethernets,
        bond,
        native,
        vlans,
    }
}

/// A machine's network as MAAS must model it before deploy (curtin writes the deployed
/// OS's network from MAAS's model, not from user-data): the same bond, VLAN devices,
/// addresses, MTUs and default route as its netplan file, because both come from the
/// one [`context`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostNetwork {
    pub bond: Option<HostBond>,
    /// The device that carries the native (PXE) network untagged and is the parent of
    /// the VLAN devices: the bond, or the profile's first NIC.
    pub uplink: String,
    /// The uplink's (and the bond members') MTU: the fabric underlay's.
    pub uplink_mtu: u32,
    /// The native link first (on the uplink, `native: true`), then the VLAN devices by
    /// VID.
    pub links: Vec<HostLink>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostBond {
    pub name: String,
    /// Member NICs by kernel name, in the profile's order.
    pub members: Vec<String>,
    /// The kernel's mode name (`802.3ad`, `active-backup`).
    pub mode: String,
    /// 802.3ad only.
    pub lacp_rate: Option<String>,
    /// 802.3ad only.
    pub xmit_hash_policy: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLink {
    /// `bond0` for the native network, `bond0.12` for VID 12.
    pub device: String,
    pub vid: u16,
    /// The untagged network the machine PXE-boots on.
    pub native: bool,
    /// Address with prefix length, e.g. `10.20.4.17/22`.
    pub address: String,
    pub mtu: u32,
    /// The default route's next hop, on the routed VLAN only.
    pub gateway: Option<String>,
}

/// [`HostNetwork`] of a machine; `None` when its profile gives it nothing to carry
/// the VLANs.
pub fn host_network(fleet: &Fleet, dc: &Dc, m: &Machine) -> Option<HostNetwork> {
    let c = context(fleet, dc, m);
    let uplink = match &c.bond {
        Some(b) => b.name.to_string(),
        None => c.ethernets.first()?.to_string(),
    };
    let link = |v: &VlanContext<'_>, native: bool| HostLink {
        device: v.name.clone(),
        vid: v.id,
        native,
        address: v.address.clone(),
        mtu: if native { c.underlay_mtu } else { v.mtu },
        gateway: v.default_via.clone(),
    };
    let mut links: Vec<HostLink> = c.native.iter().map(|v| link(v, true)).collect();
    links.extend(c.vlans.iter().map(|v| link(v, false)));
    Some(HostNetwork {
        bond: c.bond.as_ref().map(|b| HostBond {
            name: b.name.to_string(),
            members: b.members.iter().map(|m| m.to_string()).collect(),
            mode: b.mode.to_string(),
            lacp_rate: b.lacp_rate.map(str::to_string),
            xmit_hash_policy: b.transmit_hash_policy.map(str::to_string),
        }),
        uplink,
        uplink_mtu: c.underlay_mtu,
        links,
    })
}

/// What a machine's VLANs sit on.
pub(crate) enum LinkDevice<'a> {
    Bond(&'a strata_spec::Bond),
    /// The profile has no bond: its first NIC.
    Nic(&'a str),
    /// No profile, or a profile without NICs: nothing to attach VLANs to.
    None,
}

impl<'a> LinkDevice<'a> {
    pub(crate) fn of(m: &Machine, profile: Option<&'a HardwareProfile>) -> LinkDevice<'a> {
        let Some(profile) = profile else {
            return LinkDevice::None;
        };
        let bond = m
            .bond
            .as_deref()
            .and_then(|name| profile.bonds.iter().find(|b| b.name == name));
        match (bond, profile.nics.first()) {
            (Some(b), _) => LinkDevice::Bond(b),
            (None, Some(nic)) => LinkDevice::Nic(&nic.name),
            (None, None) => LinkDevice::None,
        }
    }

    pub(crate) fn name(&self) -> Option<&'a str> {
        match self {
            LinkDevice::Bond(b) => Some(&b.name),
            LinkDevice::Nic(n) => Some(n),
            LinkDevice::None => None,
        }
    }
}

/// The kernel bonding mode name (the same spelling in netplan and ifupdown2).
pub(crate) fn bond_mode(mode: BondMode) -> &'static str {
    match mode {
        BondMode::Lacp => "802.3ad",
        BondMode::ActiveBackup => "active-backup",
    }
}

/// The LACP rate name (the same spelling in netplan and ifupdown2).
pub(crate) fn lacp_rate(rate: LacpRate) -> &'static str {
    match rate {
        LacpRate::Fast => "fast",
        LacpRate::Slow => "slow",
    }
}

/// `s` as a YAML scalar: plain when that is unambiguously a string, else a
/// double-quoted (JSON) string, which YAML reads back verbatim.
pub(crate) fn yaml_scalar(s: &str) -> String {
    const KEYWORDS: [&str; 11] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "nan", "inf",
    ];
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+/-".contains(c))
        && !KEYWORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
    }
}

/// `s` made safe for the rest of a `#` comment line: control characters (newlines
/// included) become spaces.
pub(crate) fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars() {
        assert_eq!(yaml_scalar("ens1f0np0"), "ens1f0np0");
        assert_eq!(yaml_scalar("layer3+4"), "layer3+4");
        assert_eq!(yaml_scalar("bond0.12"), "bond0.12");
        assert_eq!(yaml_scalar("on"), "\"on\"");
        assert_eq!(yaml_scalar("1234"), "\"1234\"");
        assert_eq!(yaml_scalar("a: b"), "\"a: b\"");
        assert_eq!(yaml_scalar("x\ny"), "\"x\\ny\"");
        assert_eq!(yaml_scalar(""), "\"\"");
    }

    #[test]
    fn comments_stay_on_one_line() {
        assert_eq!(comment_text("a\nb\tc"), "a b c");
    }
}
