//! Planning a lab: the compiled fleet and the rendered files in, a [`Lab`] out.
//!
//! Pure: no I/O, no clock. The same fleet, files and options always give the same lab.
//!
//! What gets built, for a DC scaled down to K racks:
//! * every spine, the leaves of the first K racks and, with `dci`, the border leaves
//!   (and the same for the peer DC); each is a namespace with its fabric and
//!   interconnect interfaces named as in the design;
//! * a veth pair for every design link whose two ends are built;
//! * on every VTEP, per tenant VRF: a namespace that zebra sees as the VRF (FRR's
//!   netns VRF backend; see the crate docs for why), holding the L3 VNI's VXLAN device
//!   and bridge (the SVI of symmetric IRB, its MAC the switch's router MAC);
//! * on every leaf: per tenant network a VXLAN device and a bridge in the tenant's VRF
//!   namespace (routed networks get the anycast gateway address and MAC on the bridge),
//!   and per infrastructure VLAN a VXLAN device and a bridge in the switch namespace;
//! * per tenant network per built rack a host, attached to one leaf of the rack (the
//!   rack's leaves take turns across networks, so every leaf serves hosts);
//! * for the DC's first VIP with at least two members: its first two members (running
//!   keepalived with their rendered files) in different racks, and a client host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use strata_fleet::{Dc, Fleet, SwitchRole};
use strata_render::RenderedFile;

use crate::frrconf;
use crate::topology::*;

/// Longest lab name: keeps socket paths under the lab directory short.
pub const MAX_NAME: usize = 16;
/// Linux interface names are at most 15 bytes.
pub const IFNAMSIZ: usize = 15;

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// The lab's name (namespace prefix `sl.<name>.`).
    pub name: String,
    pub dc: String,
    /// Racks per DC (the first K).
    pub racks: usize,
    /// Build a second DC and join the two through their border leaves.
    pub dci: bool,
    /// The second DC; default: the first DC (by interconnect name) interconnected with `dc`.
    pub peer_dc: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("lab name `{0}` is not usable: use 1-{MAX_NAME} characters from a-z, 0-9 and `-`")]
    BadName(String),
    #[error("no DC named `{name}` in the fleet (DCs: {known})")]
    UnknownDc { name: String, known: String },
    #[error("--racks must be at least 1")]
    NoRacks,
    #[error("DC `{dc}` has {have} racks; cannot build {want}")]
    TooFewRacks {
        dc: String,
        have: usize,
        want: usize,
    },
    #[error("DC `{0}` has no interconnect to another DC; --dci needs one")]
    NoInterconnect(String),
    #[error("DCs `{0}` and `{1}` are not interconnected")]
    NotInterconnected(String, String),
    #[error("`{0}` is missing from the rendered files")]
    MissingFile(String),
    #[error("{0}")]
    Unsupported(String),
}

/// Plan a lab from the compiled fleet and the files `strata render` produces
/// (`strata_render::render_all`, or at least its FRR and keepalived files).
pub fn plan(fleet: &Fleet, files: &[RenderedFile], opts: &PlanOptions) -> Result<Lab, PlanError> {
    validate_name(&opts.name)?;
    if opts.racks == 0 {
        return Err(PlanError::NoRacks);
    }
    let first = find_dc(fleet, &opts.dc)?;
    let mut dcs: Vec<&Dc> = vec![first];
    let mut interconnect = None;
    if opts.dci {
        let (peer, ic) = peer_dc(fleet, first, opts.peer_dc.as_deref())?;
        dcs.push(peer);
        interconnect = Some(ic);
    }
    for dc in &dcs {
        if dc.racks.len() < opts.racks {
            return Err(PlanError::TooFewRacks {
                dc: dc.name.clone(),
                have: dc.racks.len(),
                want: opts.racks,
            });
        }
    }
    let files: BTreeMap<&str, &str> = files
        .iter()
        .map(|f| (f.path.as_str(), f.content.as_str()))
        .collect();
    let prefix = format!("sl.{}.", opts.name);

    let mut b = Builder {
        fleet,
        prefix: prefix.clone(),
        namespaces: Vec::new(),
        links: Vec::new(),
        routers: Vec::new(),
        hosts: Vec::new(),
        vips: Vec::new(),
        notes: Vec::new(),
    };

    // Which switches are built.
    let mut built: BTreeSet<String> = BTreeSet::new();
    for dc in &dcs {
        let racks: BTreeSet<&str> = dc.racks[..opts.racks]
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        for sw in &dc.switches {
            let keep = match sw.role {
                SwitchRole::Spine => true,
                SwitchRole::Leaf => sw.rack.as_deref().is_some_and(|r| racks.contains(r)),
                SwitchRole::Border => opts.dci,
            };
            if keep {
                built.insert(sw.name.clone());
            }
        }
    }

    let mut lab_dcs = Vec::new();
    for (di, dc) in dcs.iter().enumerate() {
        lab_dcs.push(b.dc(di, dc, opts.racks, &built, &files)?);
    }
    b.fabric_links(&dcs, &built)?;
    if let Some(ic) = &interconnect {
        b.interconnect_links(ic, &built)?;
    }
    for (di, dc) in dcs.iter().enumerate() {
        b.tenant_hosts(di, dc, &lab_dcs[di])?;
        b.vip_pair(di, dc, &lab_dcs[di], &files)?;
    }

    let mut sessions = Vec::new();
    for dc in &dcs {
        for s in &dc.bgp {
            if built.contains(&s.local) && built.contains(&s.peer) {
                sessions.push(ExpectedSession {
                    router: s.local.clone(),
                    peer: s.peer.clone(),
                    peer_address: s.peer_address,
                    remote_asn: s.remote_asn,
                    kind: match s.kind {
                        strata_fleet::SessionKind::Fabric => SessionKind::Fabric,
                        strata_fleet::SessionKind::Interconnect => SessionKind::Interconnect,
                    },
                });
            }
        }
    }
    sessions.sort();

    b.notes.push(
        "LACP bonds are rendered and statically checked but not exercised: this kernel has no \
         bonding driver, so every host is single-homed to one leaf of its rack"
            .into(),
    );
    b.notes.push(
        "802.1Q tags are not exercised: this kernel has neither VLAN devices nor VLAN-aware \
         bridges, so each VNI has its own bridge and hosts attach untagged"
            .into(),
    );
    b.notes.push(
        "tenant VRFs use FRR's netns VRF backend (zebra -n): this kernel has no VRF devices, so \
         each tenant VRF of a VTEP is a network namespace that zebra sees as the VRF"
            .into(),
    );
    if !opts.dci {
        b.notes
            .push("border leaves are not built without --dci (nothing to border on)".into());
    }

    let tenants = fleet
        .tenants
        .iter()
        .map(|t| LabTenant {
            name: t.name.clone(),
            vrf: t.vrf.clone(),
            l3_vni: t.l3_vni,
            networks: t
                .networks
                .iter()
                .map(|n| LabTenantNetwork {
                    name: n.name.clone(),
                    vni: n.vni,
                    routed: n.routed,
                })
                .collect(),
        })
        .collect();

    Ok(Lab {
        name: opts.name.clone(),
        prefix,
        dcs: lab_dcs,
        mtu: LabMtu {
            underlay: fleet.mtu.underlay,
            overlay: fleet.mtu.overlay,
            vxlan_overhead: fleet.mtu.vxlan_overhead,
        },
        tenants,
        namespaces: b.namespaces,
        links: b.links,
        routers: b.routers,
        hosts: b.hosts,
        vips: b.vips,
        sessions,
        interconnect,
        notes: b.notes,
    })
}

/// A lab name: `[a-z0-9-]{1,16}` (no dot: the namespace prefix is `sl.<name>.`).
pub fn validate_name(name: &str) -> Result<(), PlanError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(PlanError::BadName(name.into()))
    }
}

fn find_dc<'f>(fleet: &'f Fleet, name: &str) -> Result<&'f Dc, PlanError> {
    fleet.dc(name).ok_or_else(|| PlanError::UnknownDc {
        name: name.into(),
        known: fleet
            .dcs
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn peer_dc<'f>(
    fleet: &'f Fleet,
    dc: &Dc,
    wanted: Option<&str>,
) -> Result<(&'f Dc, String), PlanError> {
    let mut ics: Vec<_> = fleet.interconnects.iter().collect();
    ics.sort_by(|a, b| a.name.cmp(&b.name));
    for ic in ics {
        for l in &ic.links {
            let other = if l.a_dc == dc.name {
                &l.b_dc
            } else if l.b_dc == dc.name {
                &l.a_dc
            } else {
                continue;
            };
            if wanted.is_none_or(|w| w == other) {
                return Ok((find_dc(fleet, other)?, ic.name.clone()));
            }
        }
    }
    match wanted {
        Some(w) => {
            find_dc(fleet, w)?;
            Err(PlanError::NotInterconnected(dc.name.clone(), w.into()))
        }
        None => Err(PlanError::NoInterconnect(dc.name.clone())),
    }
}

/// The `n`th address of `subnet` (0 is the network address), if inside it.
pub fn nth_address(subnet: IpNet, n: u128) -> Option<IpAddr> {
    let addr = match subnet.network() {
        IpAddr::V4(a) => {
            let v = u128::from(u32::from(a)).checked_add(n)?;
            IpAddr::V4(u32::try_from(v).ok()?.into())
        }
        IpAddr::V6(a) => IpAddr::V6(u128::from(a).checked_add(n)?.into()),
    };
    (subnet.contains(&addr) && addr != subnet.broadcast()).then_some(addr)
}

fn mac(kind: u8, dc: usize, index: usize) -> String {
    format!(
        "02:{kind:02x}:00:{:02x}:{:02x}:{:02x}",
        dc & 0xff,
        (index >> 8) & 0xff,
        index & 0xff
    )
}

fn check_ifname(name: &str, what: &str) -> Result<(), PlanError> {
    if name.is_empty() || name.len() > IFNAMSIZ || name.contains(['/', ' ', ':']) {
        return Err(PlanError::Unsupported(format!(
            "{what}: interface name `{name}` is not a valid Linux interface name (at most {IFNAMSIZ} bytes)"
        )));
    }
    Ok(())
}

struct Builder<'f> {
    fleet: &'f Fleet,
    prefix: String,
    namespaces: Vec<Netns>,
    links: Vec<Veth>,
    routers: Vec<Router>,
    hosts: Vec<Host>,
    vips: Vec<LabVip>,
    notes: Vec<String>,
}

impl Builder<'_> {
    fn ns(&mut self, name: String, role: NsRole, dc: &str, node: &str) -> String {
        self.namespaces.push(Netns {
            name: name.clone(),
            role,
            dc: dc.into(),
            node: node.into(),
        });
        name
    }

    /// The DC's switches (routers, their VRFs and segments) and its L2 segments.
    fn dc(
        &mut self,
        di: usize,
        dc: &Dc,
        racks: usize,
        built: &BTreeSet<String>,
        files: &BTreeMap<&str, &str>,
    ) -> Result<LabDc, PlanError> {
        let overlay = &dc.blueprint.fabric.overlay;
        let anycast_mac = overlay.anycast_gateway_mac.to_string();

        // The DC's L2 segments: tenant networks, then infrastructure VLANs.
        let mut networks = Vec::new();
        for t in &self.fleet.tenants {
            for n in &t.networks {
                let sub = dc
                    .tenant_subnets
                    .iter()
                    .find(|s| s.tenant == t.name && s.network == n.name)
                    .ok_or_else(|| {
                        PlanError::Unsupported(format!(
                            "DC `{}` has no subnet for tenant network {}/{}",
                            dc.name, t.name, n.name
                        ))
                    })?;
                networks.push(LabNetwork {
                    vni: n.vni,
                    label: format!("{}/{}", t.name, n.name),
                    tenant: Some(t.name.clone()),
                    network: n.name.clone(),
                    routed: n.routed,
                    subnet: sub.subnet,
                    gateway: sub.gateway,
                });
            }
        }
        for v in &dc.vlans {
            networks.push(LabNetwork {
                vni: v.vni,
                label: format!("infra/{}", v.role.as_str()),
                tenant: None,
                network: v.role.as_str().into(),
                routed: false,
                subnet: v.subnet,
                gateway: v.gateway,
            });
        }

        for sw in dc.switches.iter().filter(|s| built.contains(&s.name)) {
            let ri = self.routers.len();
            let ns = self.ns(
                format!("{}{}", self.prefix, sw.name),
                NsRole::Switch,
                &dc.name,
                &sw.name,
            );
            let role = match sw.role {
                SwitchRole::Spine => Role::Spine,
                SwitchRole::Leaf => Role::Leaf,
                SwitchRole::Border => Role::Border,
            };
            let path = strata_render::frr::path(dc, sw);
            let rendered = files
                .get(path.as_str())
                .ok_or_else(|| PlanError::MissingFile(path.clone()))?;
            let neighbors: BTreeSet<String> = dc
                .bgp
                .iter()
                .filter(|s| s.local == sw.name && !built.contains(&s.peer))
                .map(|s| s.peer_address.to_string())
                .collect();
            let interfaces: BTreeSet<String> = sw
                .interfaces
                .iter()
                .filter(|i| !built.contains(&i.peer))
                .map(|i| i.name.clone())
                .collect();
            for i in &sw.interfaces {
                check_ifname(&i.name, &sw.name)?;
            }
            let pruned = frrconf::prune(rendered, &neighbors, &interfaces);

            let vtep = if role.is_vtep() { sw.vtep } else { None };
            if let Some(v) = vtep
                && !v.is_ipv4()
            {
                return Err(PlanError::Unsupported(format!(
                    "{}: the lab builds IPv4 VTEPs only (VTEP {v})",
                    sw.name
                )));
            }
            let mut vrfs = Vec::new();
            let mut segments = Vec::new();
            if let Some(_v) = vtep {
                for t in &self.fleet.tenants {
                    let vrf_ns = self.ns(
                        format!("{}{}.vrf.{}", self.prefix, sw.name, t.vrf),
                        NsRole::Vrf,
                        &dc.name,
                        &sw.name,
                    );
                    vrfs.push(RouterVrf {
                        vrf: t.vrf.clone(),
                        tenant: t.name.clone(),
                        ns: vrf_ns,
                        l3_vni: t.l3_vni,
                        vxlan: format!("vx{}", t.l3_vni),
                        bridge: format!("br{}", t.l3_vni),
                    });
                }
                if role == Role::Leaf {
                    for n in &networks {
                        let (seg_ns, vrf) = match &n.tenant {
                            Some(t) => {
                                let v = vrfs
                                    .iter()
                                    .find(|v| &v.tenant == t)
                                    .expect("every tenant has a VRF");
                                (v.ns.clone(), Some(v.vrf.clone()))
                            }
                            None => (ns.clone(), None),
                        };
                        let gateway = n
                            .routed
                            .then(|| IpNet::new(n.gateway, n.subnet.prefix_len()).ok())
                            .flatten();
                        segments.push(Segment {
                            vni: n.vni,
                            label: n.label.clone(),
                            ns: seg_ns,
                            vrf,
                            vxlan: format!("vx{}", n.vni),
                            bridge: format!("br{}", n.vni),
                            gateway,
                            gateway_mac: n.routed.then(|| anycast_mac.clone()),
                        });
                    }
                }
            }
            self.routers.push(Router {
                name: sw.name.clone(),
                dc: dc.name.clone(),
                role,
                rack: sw.rack.clone(),
                ns,
                asn: sw.asn,
                loopback: sw.loopback,
                vtep,
                rmac: vtep.map(|_| mac(0x52, di, ri)),
                frr_conf: pruned.text,
                pruned: pruned.removed,
                vrfs,
                segments,
            });
        }
        Ok(LabDc {
            name: dc.name.clone(),
            racks: dc.racks[..racks].iter().map(|r| r.name.clone()).collect(),
            racks_in_design: dc.racks.len(),
            arp_suppression: overlay.arp_suppression,
            anycast_gateway_mac: anycast_mac,
            networks,
        })
    }

    fn router_ns(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// The design MTU of a switch interface.
    fn interface_mtu(&self, device: &str, ifname: &str) -> u32 {
        self.fleet
            .dcs
            .iter()
            .flat_map(|d| d.switches.iter())
            .find(|s| s.name == device)
            .and_then(|s| s.interfaces.iter().find(|i| i.name == ifname))
            .map(|i| i.mtu)
            .unwrap_or(self.fleet.mtu.underlay)
    }

    fn fabric_links(&mut self, dcs: &[&Dc], built: &BTreeSet<String>) -> Result<(), PlanError> {
        for dc in dcs {
            for l in &dc.links {
                if !(built.contains(&l.a.device) && built.contains(&l.b.device)) {
                    continue;
                }
                let a = VethEnd {
                    ns: self.router_ns(&l.a.device),
                    ifname: l.a.interface.clone(),
                    mtu: self.interface_mtu(&l.a.device, &l.a.interface),
                    mac: None,
                    bridge: None,
                };
                let b = VethEnd {
                    ns: self.router_ns(&l.b.device),
                    ifname: l.b.interface.clone(),
                    mtu: self.interface_mtu(&l.b.device, &l.b.interface),
                    mac: None,
                    bridge: None,
                };
                self.links.push(Veth {
                    kind: LinkKind::Fabric,
                    a,
                    b,
                });
            }
        }
        Ok(())
    }

    fn interconnect_links(
        &mut self,
        name: &str,
        built: &BTreeSet<String>,
    ) -> Result<(), PlanError> {
        let ic = self
            .fleet
            .interconnects
            .iter()
            .find(|i| i.name == name)
            .expect("interconnect chosen from the fleet");
        let mut any = false;
        for l in &ic.links {
            if !(built.contains(&l.a.device) && built.contains(&l.b.device)) {
                continue;
            }
            any = true;
            for end in [&l.a, &l.b] {
                check_ifname(&end.interface, &end.device)?;
            }
            self.links.push(Veth {
                kind: LinkKind::Interconnect,
                a: VethEnd {
                    ns: self.router_ns(&l.a.device),
                    ifname: l.a.interface.clone(),
                    mtu: self.interface_mtu(&l.a.device, &l.a.interface),
                    mac: None,
                    bridge: None,
                },
                b: VethEnd {
                    ns: self.router_ns(&l.b.device),
                    ifname: l.b.interface.clone(),
                    mtu: self.interface_mtu(&l.b.device, &l.b.interface),
                    mac: None,
                    bridge: None,
                },
            });
        }
        if !any {
            return Err(PlanError::Unsupported(format!(
                "interconnect `{name}` has no link between built border leaves"
            )));
        }
        Ok(())
    }

    /// Attach a host: its namespace, its veth to the leaf and the host record.
    #[allow(clippy::too_many_arguments)]
    fn host(
        &mut self,
        di: usize,
        dc: &str,
        name: String,
        role: HostRole,
        ifname: String,
        address: IpNet,
        gateway: Option<IpAddr>,
        mtu: u32,
        vni: u32,
        leaf: &str,
    ) -> Result<(), PlanError> {
        check_ifname(&ifname, &name)?;
        let index = self.hosts.len();
        let router = self
            .routers
            .iter()
            .find(|r| r.name == leaf)
            .expect("hosts attach to built leaves");
        let segment = router
            .segments
            .iter()
            .find(|s| s.vni == vni)
            .ok_or_else(|| {
                PlanError::Unsupported(format!("leaf {leaf} carries no VNI {vni} for host {name}"))
            })?;
        let leaf_ns = segment.ns.clone();
        let bridge = segment.bridge.clone();
        let leaf_port = format!("hp{index}");
        let ns = self.ns(format!("{}{}", self.prefix, name), NsRole::Host, dc, &name);
        let mac = mac(0x53, di, index);
        self.links.push(Veth {
            kind: LinkKind::Host,
            a: VethEnd {
                ns: ns.clone(),
                ifname: ifname.clone(),
                mtu,
                mac: Some(mac.clone()),
                bridge: None,
            },
            b: VethEnd {
                ns: leaf_ns.clone(),
                ifname: leaf_port.clone(),
                mtu,
                mac: None,
                bridge: Some(bridge),
            },
        });
        self.hosts.push(Host {
            name,
            dc: dc.into(),
            ns,
            role,
            ifname,
            mac,
            address,
            gateway,
            mtu,
            vni,
            leaf: leaf.into(),
            leaf_ns,
            leaf_port,
            keepalived: None,
            health_port: None,
        });
        Ok(())
    }

    fn tenant_hosts(&mut self, di: usize, dc: &Dc, lab_dc: &LabDc) -> Result<(), PlanError> {
        let tenant_networks: Vec<&LabNetwork> = lab_dc
            .networks
            .iter()
            .filter(|n| n.tenant.is_some())
            .collect();
        for (ni, n) in tenant_networks.iter().enumerate() {
            let tenant = n.tenant.clone().expect("tenant network");
            for (ri, rack_name) in lab_dc.racks.iter().enumerate() {
                let rack = dc
                    .racks
                    .iter()
                    .find(|r| &r.name == rack_name)
                    .expect("built rack");
                if rack.leaves.is_empty() {
                    return Err(PlanError::Unsupported(format!(
                        "rack {} of {} has no leaves",
                        rack.name, dc.name
                    )));
                }
                let leaf = rack.leaves[ni % rack.leaves.len()].clone();
                let addr = nth_address(n.subnet, 10 + ri as u128).ok_or_else(|| {
                    PlanError::Unsupported(format!(
                        "subnet {} of {} is too small for a test host per rack",
                        n.subnet, n.label
                    ))
                })?;
                let address = IpNet::new(addr, n.subnet.prefix_len()).expect("prefix from subnet");
                self.host(
                    di,
                    &dc.name,
                    format!("{}-{}-{}-{}", dc.name, tenant, n.network, rack.name),
                    HostRole::Tenant {
                        tenant: tenant.clone(),
                        network: n.network.clone(),
                        rack: rack.name.clone(),
                        routed: n.routed,
                    },
                    "eth0".into(),
                    address,
                    n.routed.then_some(n.gateway),
                    self.fleet.mtu.overlay,
                    n.vni,
                    &leaf,
                )?;
            }
        }
        Ok(())
    }

    /// The DC's first VIP (by name) with two members that can be built.
    fn vip_pair(
        &mut self,
        di: usize,
        dc: &Dc,
        lab_dc: &LabDc,
        files: &BTreeMap<&str, &str>,
    ) -> Result<(), PlanError> {
        let mut vips: Vec<_> = dc.vips.iter().collect();
        vips.sort_by(|a, b| a.name.cmp(&b.name));
        let Some(vip) = vips.into_iter().find(|v| v.members.len() >= 2) else {
            self.notes.push(format!(
                "{}: no VIP with two members; check 6 has nothing to fail over",
                dc.name
            ));
            return Ok(());
        };
        let vlan = dc.vlan(vip.vlan).ok_or_else(|| {
            PlanError::Unsupported(format!(
                "VIP {}: DC {} has no {} VLAN",
                vip.name, dc.name, vip.vlan
            ))
        })?;
        let first_rack = dc
            .racks
            .iter()
            .find(|r| r.name == lab_dc.racks[0])
            .expect("built rack");
        let last_rack = dc
            .racks
            .iter()
            .find(|r| Some(&r.name) == lab_dc.racks.last())
            .expect("built rack");
        let (Some(leaf_a), Some(leaf_b), Some(leaf_c)) = (
            first_rack.leaves.first(),
            if last_rack.name != first_rack.name {
                last_rack.leaves.first()
            } else {
                first_rack.leaves.last()
            },
            first_rack.leaves.last(),
        ) else {
            return Err(PlanError::Unsupported(format!(
                "{}: built racks have no leaves for the VIP pair",
                dc.name
            )));
        };
        let leaves = [leaf_a.clone(), leaf_b.clone()];

        let mut used: BTreeSet<IpAddr> = dc
            .hosts()
            .flat_map(|(_, ifs)| ifs.iter().map(|i| i.address.addr()))
            .collect();
        used.extend(dc.vips.iter().map(|v| v.address));
        used.insert(vlan.gateway);

        let mut members = Vec::new();
        for (i, m) in vip.members.iter().take(2).enumerate() {
            let iface = dc
                .hosts()
                .find(|(h, _)| *h == m.hostname)
                .and_then(|(_, ifs)| ifs.iter().find(|i| i.vlan == vip.vlan))
                .ok_or_else(|| {
                    PlanError::Unsupported(format!(
                        "VIP {} member {} has no interface on the {} VLAN",
                        vip.name, m.hostname, vip.vlan
                    ))
                })?;
            let path = strata_render::keepalived::path(&dc.name, &m.hostname);
            let conf = files
                .get(path.as_str())
                .ok_or_else(|| PlanError::MissingFile(path.clone()))?;
            self.host(
                di,
                &dc.name,
                m.hostname.clone(),
                HostRole::VipMember {
                    vip: vip.name.clone(),
                },
                iface.device.clone(),
                iface.address,
                Some(iface.gateway),
                iface.mtu,
                vlan.vni,
                &leaves[i],
            )?;
            let host = self.hosts.last_mut().expect("just added");
            host.keepalived = Some(conf.to_string());
            host.health_port = Some(vip.port);
            members.push(m.hostname.clone());
        }

        // The client: the highest free address of the VLAN's subnet.
        let size: u128 = match vlan.subnet {
            IpNet::V4(n) => 1u128 << (32 - n.prefix_len()),
            IpNet::V6(n) => 1u128 << (128 - n.prefix_len()).min(64),
        };
        let client_addr = (1..size.saturating_sub(1))
            .rev()
            .filter_map(|n| nth_address(vlan.subnet, n))
            .find(|a| !used.contains(a))
            .ok_or_else(|| {
                PlanError::Unsupported(format!(
                    "no free address for a VIP client in {}",
                    vlan.subnet
                ))
            })?;
        let client = format!("{}-{}-client", dc.name, vip.vlan.as_str().replace('_', "-"));
        self.host(
            di,
            &dc.name,
            client.clone(),
            HostRole::VipClient {
                vip: vip.name.clone(),
            },
            "eth0".into(),
            IpNet::new(client_addr, vlan.subnet.prefix_len()).expect("prefix from subnet"),
            Some(vlan.gateway),
            vlan.mtu,
            vlan.vni,
            leaf_c,
        )?;
        let not_built: Vec<String> = vip
            .members
            .iter()
            .skip(2)
            .map(|m| m.hostname.clone())
            .collect();
        if !not_built.is_empty() {
            self.notes.push(format!(
                "{}: VIP {} is built as a pair ({}); {} not built (the rendered files still list \
                 {} as unicast peers, which keepalived reaches no one at)",
                dc.name,
                vip.name,
                members.join(", "),
                not_built.join(", "),
                if not_built.len() == 1 { "it" } else { "them" }
            ));
        }
        self.vips.push(LabVip {
            name: vip.name.clone(),
            dc: dc.name.clone(),
            address: vip.address,
            prefix_len: vip.prefix_len,
            vni: vlan.vni,
            port: vip.port,
            members,
            members_not_built: not_built,
            client,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("lab").is_ok());
        assert!(validate_name("t-1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a.b").is_err());
        assert!(validate_name("Lab").is_err());
        assert!(validate_name("abcdefghijklmnopq").is_err());
    }

    #[test]
    fn nth() {
        let n: IpNet = "100.64.3.0/24".parse().unwrap();
        assert_eq!(nth_address(n, 10), Some("100.64.3.10".parse().unwrap()));
        assert_eq!(nth_address(n, 255), None);
        assert_eq!(nth_address(n, 256), None);
        let n: IpNet = "10.0.12.0/22".parse().unwrap();
        assert_eq!(nth_address(n, 1022), Some("10.0.15.254".parse().unwrap()));
    }
}
