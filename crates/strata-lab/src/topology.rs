//! The lab topology: every namespace, link, device, process and expectation of one
//! lab, as plain data.
//!
//! [`crate::plan`] builds a [`Lab`] from the compiled fleet and the rendered files
//! without touching the machine; [`crate::script`] turns it into `ip -batch` scripts;
//! [`crate::exec`] carries those out and starts the daemons; [`crate::checks`]
//! compares what the daemons report with the expectations kept here. The whole value
//! is stored in the lab's state file, so `lab test` and `lab down` work from exactly
//! what `lab up` built, whatever happened to the spec since.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// UDP port of VXLAN (IANA).
pub const VXLAN_PORT: u16 = 4789;

/// One lab: a DC's fabric (or two DCs joined by their border leaves), scaled down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lab {
    /// The lab's name (`[a-z0-9-]`, at most 16 characters).
    pub name: String,
    /// Prefix of every network namespace of this lab: `sl.<name>.`. A lab name has no
    /// dot, so no lab's prefix is a prefix of another's.
    pub prefix: String,
    pub dcs: Vec<LabDc>,
    pub mtu: LabMtu,
    /// The fleet's tenants (VRFs, L3 VNIs, networks), fleet-wide.
    pub tenants: Vec<LabTenant>,
    /// Every network namespace, in creation order.
    pub namespaces: Vec<Netns>,
    /// Every veth pair (fabric links, interconnect links, host attachments).
    pub links: Vec<Veth>,
    pub routers: Vec<Router>,
    pub hosts: Vec<Host>,
    pub vips: Vec<LabVip>,
    /// Every BGP session end the built subset of the design declares.
    pub sessions: Vec<ExpectedSession>,
    /// The interconnect joining the two DCs of a `--dci` lab.
    pub interconnect: Option<String>,
    /// What the lab does not exercise, and why; printed by `up` and `test`.
    pub notes: Vec<String>,
}

impl Lab {
    pub fn router(&self, name: &str) -> Option<&Router> {
        self.routers.iter().find(|r| r.name == name)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn dc(&self, name: &str) -> Option<&LabDc> {
        self.dcs.iter().find(|d| d.name == name)
    }

    pub fn tenant(&self, name: &str) -> Option<&LabTenant> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabMtu {
    pub underlay: u32,
    /// The tenant MTU: every host and VXLAN device uses it.
    pub overlay: u32,
    pub vxlan_overhead: u32,
}

/// One DC of the lab and what was built of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabDc {
    pub name: String,
    /// The racks built (the first K of the DC).
    pub racks: Vec<String>,
    /// How many racks the DC has in the design.
    pub racks_in_design: usize,
    pub arp_suppression: bool,
    pub anycast_gateway_mac: String,
    /// Every L2 segment the leaves of this DC carry.
    pub networks: Vec<LabNetwork>,
}

/// An L2 segment (VNI) of one DC: a tenant network or an infrastructure VLAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabNetwork {
    pub vni: u32,
    /// `<tenant>/<network>` or `infra/<vlan>`.
    pub label: String,
    pub tenant: Option<String>,
    pub network: String,
    /// The leaves route it (an SVI with the anycast gateway in the tenant VRF).
    pub routed: bool,
    pub subnet: IpNet,
    pub gateway: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabTenant {
    pub name: String,
    pub vrf: String,
    pub l3_vni: u32,
    pub networks: Vec<LabTenantNetwork>,
}

impl LabTenant {
    pub fn routes_anything(&self) -> bool {
        self.networks.iter().any(|n| n.routed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabTenantNetwork {
    pub name: String,
    pub vni: u32,
    pub routed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsRole {
    /// A spine, leaf or border leaf.
    Switch,
    /// A tenant VRF of a VTEP (FRR's netns VRF backend).
    Vrf,
    /// A test host.
    Host,
}

/// A network namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Netns {
    pub name: String,
    pub role: NsRole,
    pub dc: String,
    /// The switch or host it belongs to.
    pub node: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    Fabric,
    Interconnect,
    Host,
}

/// A veth pair, created with each end directly in its namespace (so the names are
/// the design's interface names and never collide across namespaces).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Veth {
    pub kind: LinkKind,
    pub a: VethEnd,
    pub b: VethEnd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VethEnd {
    pub ns: String,
    pub ifname: String,
    pub mtu: u32,
    pub mac: Option<String>,
    /// The bridge this end is enslaved to, if any.
    pub bridge: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Spine,
    Leaf,
    Border,
}

impl Role {
    pub fn is_vtep(self) -> bool {
        self != Role::Spine
    }
}

/// A switch: a namespace running zebra, bgpd and bfdd with its (pruned) `frr.conf`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Router {
    pub name: String,
    pub dc: String,
    pub role: Role,
    pub rack: Option<String>,
    pub ns: String,
    pub asn: u32,
    pub loopback: IpAddr,
    pub vtep: Option<IpAddr>,
    /// Router MAC of the L3 VNIs (the MAC of every L3 VNI bridge of this switch).
    pub rmac: Option<String>,
    /// The rendered `frr.conf`, minus what refers to switches the lab does not build.
    pub frr_conf: String,
    /// What was cut from the rendered file, one line per peer or interface.
    pub pruned: Vec<String>,
    pub vrfs: Vec<RouterVrf>,
    pub segments: Vec<Segment>,
}

/// A tenant VRF of a VTEP: a namespace zebra sees as VRF `vrf` (netns backend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterVrf {
    pub vrf: String,
    pub tenant: String,
    pub ns: String,
    pub l3_vni: u32,
    /// The L3 VNI's VXLAN device (created in the switch namespace, so its tunnel uses
    /// the underlay there, then moved into the VRF namespace).
    pub vxlan: String,
    /// The L3 VNI's bridge, the VRF's SVI for symmetric IRB (its MAC is the RMAC).
    pub bridge: String,
}

/// An L2 VNI on a VTEP: a VXLAN device in a bridge, in the switch namespace (default
/// VRF, infrastructure VLANs) or in a tenant VRF namespace (tenant networks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub vni: u32,
    pub label: String,
    /// Where the bridge lives (the switch or a VRF namespace).
    pub ns: String,
    pub vrf: Option<String>,
    pub vxlan: String,
    pub bridge: String,
    /// The SVI address (anycast gateway) of a routed tenant network.
    pub gateway: Option<IpNet>,
    pub gateway_mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HostRole {
    /// One host per tenant network per built rack.
    Tenant {
        tenant: String,
        network: String,
        rack: String,
        routed: bool,
    },
    /// A member of the VIP pair, running keepalived with its rendered file.
    VipMember { vip: String },
    /// A third host on the VIP's VLAN that pings the VIP.
    VipClient { vip: String },
}

/// A test host: a namespace with one interface on one leaf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub dc: String,
    pub ns: String,
    pub role: HostRole,
    pub ifname: String,
    pub mac: String,
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    pub mtu: u32,
    pub vni: u32,
    /// The leaf it is attached to, and the leaf-side end of its link.
    pub leaf: String,
    pub leaf_ns: String,
    pub leaf_port: String,
    /// The rendered keepalived.conf (VIP members).
    pub keepalived: Option<String>,
    /// The TCP port the VIP's health check connects to (VIP members): the lab runs a
    /// listener on the member's address.
    pub health_port: Option<u16>,
}

impl Host {
    pub fn ip(&self) -> IpAddr {
        self.address.addr()
    }

    pub fn tenant(&self) -> Option<&str> {
        match &self.role {
            HostRole::Tenant { tenant, .. } => Some(tenant),
            _ => None,
        }
    }
}

/// The VIP pair of a DC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabVip {
    pub name: String,
    pub dc: String,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub vni: u32,
    pub port: u16,
    /// Member host names in design order (the first is the preferred master).
    pub members: Vec<String>,
    /// Members of the design the lab does not build.
    pub members_not_built: Vec<String>,
    pub client: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    Fabric,
    Interconnect,
}

/// One end of a BGP session the design declares between two built switches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExpectedSession {
    pub router: String,
    pub peer: String,
    pub peer_address: IpAddr,
    pub remote_asn: u32,
    pub kind: SessionKind,
}
