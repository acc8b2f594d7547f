//! The design rules. Each is a function from the compiled fleet (and the spec, for
//! spans) to diagnostics.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use strata_diagnostics::{Code, Diagnostic, Related, Span, codes};
use strata_fleet::alloc::to_u128;
use strata_fleet::{Dc, Fleet, SessionKind};
use strata_spec::{InfraVlan, Spec};

/// Run every design rule.
pub fn check(spec: &Spec, fleet: &Fleet) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    pool_overlaps(spec, &mut out);
    // Overlapping pools make every allocation from them overlap too; report the
    // cause once instead of each consequence.
    if out.is_empty() {
        prefix_overlaps(fleet, &mut out);
    }
    vxlan_mtu(fleet, &mut out);
    jumbo_consistency(fleet, &mut out);
    duplicate_vnis(fleet, &mut out);
    duplicate_vlans(fleet, &mut out);
    duplicate_router_ids(fleet, &mut out);
    bgp_sessions(fleet, &mut out);
    dhcp_coverage(spec, fleet, &mut out);
    proxmox_quorum(fleet, &mut out);
    az_capacity(fleet, &mut out);
    gpu_flavors(spec, fleet, &mut out);
    gpu_quota_enforcement(spec, fleet, &mut out);
    crate::domains::check(spec, fleet, &mut out);
    crate::hardware::check(spec, &mut out);
    crate::capacity::check(fleet, &mut out);
    crate::bootstrap::check(spec, &mut out);
    crate::policy::check(spec, &mut out);
    // A pinned remote AS outside the leaf pool (S0313) causes the session mismatches
    // it creates (S0308); an MTU out of range (S0104) causes the jumbo disagreements
    // it creates (S0304). Report the cause only.
    drop_consequences(&mut out, codes::S0313, codes::S0308);
    drop_consequences(&mut out, codes::S0104, codes::S0304);
    // A blueprint value that is wrong in every DC is one mistake, not one per DC.
    strata_diagnostics::merge_same_cause(out)
}

/// Relate each diagnostic a per-DC rule just produced to the DC it was found in, so
/// that copies of one cause folded across DCs (`merge_same_cause`) still name every DC.
fn affecting(dc: &Dc, diags: &mut [Diagnostic]) {
    let Some(span) = dc.span else { return };
    for d in diags {
        if d.span != Some(span) {
            d.related.push(Related {
                span,
                message: format!("in `{}`", dc.name),
            });
        }
    }
}

/// Remove the `consequence` diagnostics that point at (or relate to) a value a
/// `cause` diagnostic already reports.
fn drop_consequences(out: &mut Vec<Diagnostic>, cause: Code, consequence: Code) {
    let causes: Vec<Span> = out
        .iter()
        .filter(|d| d.code == cause)
        .filter_map(|d| d.span)
        .collect();
    let caused = |d: &Diagnostic| {
        d.span
            .into_iter()
            .chain(d.related.iter().map(|r| r.span))
            .any(|s| causes.contains(&s))
    };
    out.retain(|d| !(d.code == consequence && caused(d)));
}

fn range(n: &IpNet) -> (u128, u128, bool) {
    (
        to_u128(n.network()),
        to_u128(n.broadcast()),
        matches!(n, IpNet::V4(_)),
    )
}

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    let (a0, a1, a4) = range(a);
    let (b0, b1, b4) = range(b);
    a4 == b4 && a0 <= b1 && b0 <= a1
}

/// S0301: the underlay pools must not overlap each other.
fn pool_overlaps(spec: &Spec, out: &mut Vec<Diagnostic>) {
    let Some(p) = spec.pools.as_ref() else { return };
    let pools: [(&str, IpNet, Span); 5] = [
        (
            "site_supernets",
            *p.site_supernets.pool,
            p.site_supernets.pool.span,
        ),
        ("loopbacks", *p.loopbacks.pool, p.loopbacks.pool.span),
        ("vteps", *p.vteps.pool, p.vteps.pool.span),
        ("p2p", *p.p2p.pool, p.p2p.pool.span),
        ("interconnect", *p.interconnect, p.interconnect.span),
    ];
    for i in 0..pools.len() {
        for j in (i + 1)..pools.len() {
            let (an, a, asp) = pools[i];
            let (bn, b, bsp) = pools[j];
            if overlap(&a, &b) {
                out.push(
                    Diagnostic::new(
                        codes::S0301,
                        format!("pool `{bn}` ({b}) overlaps pool `{an}` ({a}) in the underlay routing domain"),
                    )
                    .at(bsp)
                    .expected(format!("a prefix disjoint from {a}"))
                    .related(asp, format!("`{an}` is {a}"))
                    .help("give every underlay pool its own part of the address space"),
                );
            }
        }
    }
}

/// S0301: no two concrete prefixes of one routing domain overlap (the underlay of
/// the whole fleet, and each tenant VRF).
fn prefix_overlaps(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let mut underlay: Vec<(IpNet, String, Option<Span>)> = Vec::new();
    for dc in &fleet.dcs {
        for v in &dc.vlans {
            underlay.push((
                v.subnet,
                format!("{} VLAN `{}` of `{}`", v.role, v.vid, dc.name),
                dc.span,
            ));
        }
        for l in &dc.links {
            underlay.push((
                l.subnet,
                format!(
                    "link {} {} - {} {}",
                    l.a.device, l.a.interface, l.b.device, l.b.interface
                ),
                dc.span,
            ));
        }
        for s in &dc.switches {
            underlay.push((
                IpNet::from(s.loopback),
                format!("loopback of {}", s.name),
                dc.span,
            ));
            if let Some(v) = s.vtep {
                underlay.push((IpNet::from(v), format!("VTEP of {}", s.name), dc.span));
            }
        }
    }
    for ic in &fleet.interconnects {
        for l in &ic.links {
            underlay.push((l.subnet, format!("interconnect `{}`", ic.name), None));
        }
    }
    sweep("the underlay", &mut underlay, out);
    for t in &fleet.tenants {
        let mut vrf: Vec<(IpNet, String, Option<Span>)> = Vec::new();
        for dc in &fleet.dcs {
            for s in dc.tenant_subnets.iter().filter(|s| s.tenant == t.name) {
                vrf.push((
                    s.subnet,
                    format!("network `{}` in `{}`", s.network, dc.name),
                    dc.span,
                ));
            }
        }
        sweep(&format!("VRF `{}`", t.vrf), &mut vrf, out);
    }
}

fn sweep(domain: &str, items: &mut [(IpNet, String, Option<Span>)], out: &mut Vec<Diagnostic>) {
    items.sort_by_key(|(n, _, _)| {
        let (s, e, v4) = range(n);
        (v4, s, std::cmp::Reverse(e))
    });
    let mut reach: Option<usize> = None; // index of the item reaching furthest so far
    for i in 0..items.len() {
        if let Some(r) = reach {
            if overlap(&items[r].0, &items[i].0) {
                let (a, an, _) = &items[r];
                let (b, bn, bsp) = &items[i];
                out.push(
                    Diagnostic::new(codes::S0301, format!("{b} ({bn}) overlaps {a} ({an}) in {domain}"))
                        .at_opt(*bsp)
                        .expected("disjoint prefixes in one routing domain")
                        .help("an allocation in fleet.lock or a pinned value collides; fix the pin or the lock entry"),
                );
            }
            let (_, re, _) = range(&items[r].0);
            let (_, ie, _) = range(&items[i].0);
            if ie > re || range(&items[r].0).2 != range(&items[i].0).2 {
                reach = Some(i);
            }
        } else {
            reach = Some(i);
        }
    }
}

/// S0303: the underlay MTU must carry the overlay MTU plus VXLAN encapsulation.
fn vxlan_mtu(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let m = &fleet.mtu;
    let need = m.overlay + m.vxlan_overhead;
    if m.underlay < need {
        let mut d = Diagnostic::new(
            codes::S0303,
            format!(
                "underlay MTU {} cannot carry overlay MTU {} plus {} bytes of VXLAN encapsulation",
                m.underlay, m.overlay, m.vxlan_overhead
            ),
        )
        .at_opt(m.underlay_span)
        .expected(format!("an underlay MTU of at least {need}"))
        .help(format!(
            "raise `mtu.underlay` to {need} or more (9216 is usual), or lower `mtu.overlay` to {}",
            m.underlay.saturating_sub(m.vxlan_overhead)
        ));
        if let Some(o) = m.overlay_span {
            d = d.related(o, "overlay MTU set here");
        }
        out.push(d);
    }
}

/// S0304: jumbo VLANs agree on one MTU, storage roles agree on jumbo-ness, and no
/// VLAN exceeds what the host bonds (the underlay MTU) carry.
fn jumbo_consistency(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    for dc in &fleet.dcs {
        let start = out.len();
        let jumbo: Vec<_> = dc.vlans.iter().filter(|v| v.mtu > 1500).collect();
        if let Some(first) = jumbo.first() {
            for v in &jumbo[1..] {
                if v.mtu != first.mtu {
                    let mut d = Diagnostic::new(
                        codes::S0304,
                        format!(
                            "jumbo VLANs of `{}` disagree: {} has MTU {}, {} has MTU {}",
                            dc.name, first.role, first.mtu, v.role, v.mtu
                        ),
                    )
                    .at_opt(v.mtu_span)
                    .expected(format!("MTU {} like the other jumbo VLANs", first.mtu))
                    .help("use one jumbo MTU for every jumbo VLAN; mixed jumbo sizes drop frames at the smaller hop");
                    if let Some(s) = first.mtu_span {
                        d = d.related(s, "this VLAN's MTU");
                    }
                    out.push(d);
                }
            }
        }
        let storage = [
            InfraVlan::Storage,
            InfraVlan::CephPublic,
            InfraVlan::CephCluster,
        ];
        let roles: Vec<_> = dc
            .vlans
            .iter()
            .filter(|v| storage.contains(&v.role))
            .collect();
        if roles.iter().any(|v| v.mtu > 1500) {
            for v in roles.iter().filter(|v| v.mtu <= 1500) {
                out.push(
                    Diagnostic::new(
                        codes::S0304,
                        format!(
                            "storage VLANs of `{}` are jumbo but {} has MTU {}",
                            dc.name, v.role, v.mtu
                        ),
                    )
                    .at_opt(v.mtu_span)
                    .expected("the same jumbo MTU on storage, ceph_public and ceph_cluster")
                    .help("Ceph and storage traffic cross all three; make them all jumbo or none"),
                );
            }
        }
        for v in &dc.vlans {
            if v.mtu > fleet.mtu.underlay {
                out.push(
                    Diagnostic::new(
                        codes::S0304,
                        format!(
                            "{} VLAN of `{}` has MTU {}, more than the underlay's {}",
                            v.role, dc.name, v.mtu, fleet.mtu.underlay
                        ),
                    )
                    .at_opt(v.mtu_span)
                    .expected(format!("at most {}", fleet.mtu.underlay))
                    .help("host bonds and leaf ports run at the underlay MTU; lower the VLAN MTU"),
                );
            }
        }
        affecting(dc, &mut out[start..]);
    }
}

/// S0305: VNIs are one namespace: infrastructure L2, tenant L2 and tenant L3.
fn duplicate_vnis(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<u32, (String, Option<Span>)> = HashMap::new();
    let mut add = |vni: u32, what: String, span: Option<Span>, out: &mut Vec<Diagnostic>| {
        if let Some((other, ospan)) = seen.get(&vni) {
            let mut d = Diagnostic::new(
                codes::S0305,
                format!("VNI {vni} is used by {what} and by {other}"),
            )
            .at_opt(span)
            .expected("a VNI no other network uses")
            .help("remove the pinned `vni` to have one allocated, or pin a free one");
            if let Some(o) = ospan {
                d = d.related(*o, format!("{other} uses it"));
            }
            out.push(d);
        } else {
            seen.insert(vni, (what, span));
        }
    };
    for v in &fleet.infra_vnis {
        add(v.vni, format!("the {} VLAN", v.vlan), None, out);
    }
    for t in &fleet.tenants {
        add(t.l3_vni, format!("VRF `{}`", t.vrf), t.l3_vni_span, out);
        for n in &t.networks {
            add(
                n.vni,
                format!("network `{}/{}`", t.name, n.name),
                n.vni_span,
                out,
            );
        }
    }
}

/// S0306: VLAN ids on a DC's leaves are unique (infrastructure and tenant).
fn duplicate_vlans(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    for dc in &fleet.dcs {
        let start = out.len();
        let mut seen: HashMap<u16, (String, Option<Span>)> = HashMap::new();
        let mut items: Vec<(u16, String, Option<Span>)> = dc
            .vlans
            .iter()
            .map(|v| (v.vid, format!("the {} VLAN", v.role), v.vid_span))
            .collect();
        for t in &fleet.tenants {
            for n in &t.networks {
                items.push((
                    n.vlan,
                    format!("network `{}/{}`", t.name, n.name),
                    n.vlan_span,
                ));
            }
        }
        for (vid, what, span) in items {
            if let Some((other, ospan)) = seen.get(&vid) {
                let mut d = Diagnostic::new(
                    codes::S0306,
                    format!("VLAN {vid} is used by {what} and by {other} in `{}`", dc.name),
                )
                .at_opt(span)
                .expected("a VLAN id no other network of the DC uses")
                .help("pick another VLAN id, or keep tenant VLANs inside `vlans.tenant` away from infrastructure ids");
                if let Some(o) = ospan {
                    d = d.related(*o, format!("{other} uses it"));
                }
                out.push(d);
            } else {
                seen.insert(vid, (what, span));
            }
        }
        affecting(dc, &mut out[start..]);
    }
}

/// S0307: router-ids (loopbacks) are unique across the fleet.
fn duplicate_router_ids(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<IpAddr, &str> = HashMap::new();
    for dc in &fleet.dcs {
        for s in &dc.switches {
            if let Some(other) = seen.insert(s.loopback, &s.name) {
                out.push(
                    Diagnostic::new(
                        codes::S0307,
                        format!("{} and {other} share router-id {}", s.name, s.loopback),
                    )
                    .at_opt(dc.span)
                    .expected("a unique loopback per switch")
                    .help("a loopback in fleet.lock was duplicated by hand; delete one entry to re-allocate it"),
                );
            }
        }
    }
}

/// S0308/S0309: every BGP session end has a matching end that agrees on ASNs and
/// addresses.
fn bgp_sessions(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let mut by_end: HashMap<(&str, &str, IpAddr), &strata_fleet::BgpSession> = HashMap::new();
    for dc in &fleet.dcs {
        for s in &dc.bgp {
            by_end.insert((dc.name.as_str(), s.local.as_str(), s.local_address), s);
        }
    }
    for dc in &fleet.dcs {
        for s in &dc.bgp {
            let Some(peer) = by_end.get(&(s.peer_dc.as_str(), s.peer.as_str(), s.peer_address))
            else {
                out.push(
                    Diagnostic::new(
                        codes::S0309,
                        format!(
                            "{} ({}) peers with {} at {}, but {} has no session from that address",
                            s.local, dc.name, s.peer, s.peer_address, s.peer
                        ),
                    )
                    .at_opt(s.remote_asn_span.or(dc.span))
                    .expected(format!(
                        "{} configured to peer with {} at {}",
                        s.peer, s.local, s.local_address
                    ))
                    .help("both ends of a session must name each other's addresses"),
                );
                continue;
            };
            if peer.peer_address != s.local_address || peer.peer != s.local {
                out.push(
                    Diagnostic::new(
                        codes::S0309,
                        format!(
                            "{} expects {} at {}, but {} peers with {} at {}",
                            s.local,
                            s.peer,
                            s.peer_address,
                            peer.local,
                            peer.peer,
                            peer.peer_address
                        ),
                    )
                    .at_opt(s.remote_asn_span.or(dc.span))
                    .expected("both ends naming each other's addresses")
                    .help("fix the session addresses so both ends agree"),
                );
            }
            if s.remote_asn != peer.local_asn {
                let kind = match s.kind {
                    SessionKind::Fabric => "fabric session",
                    SessionKind::Interconnect => "interconnect session",
                };
                out.push(
                    Diagnostic::new(
                        codes::S0308,
                        format!(
                            "{kind} {} ({}) -> {} ({}): {} expects remote AS {}, but {} is AS {}",
                            s.local, dc.name, s.peer, s.peer_dc, s.local, s.remote_asn, s.peer, peer.local_asn
                        ),
                    )
                    .at_opt(s.remote_asn_span.or(dc.span))
                    .expected(format!("remote AS {}", peer.local_asn))
                    .help(format!(
                        "set `remote_asn: {}` (or remove it to use the peer's allocated ASN); a mismatch keeps the session down",
                        peer.local_asn
                    )),
                );
            }
        }
    }
}

/// S0401/S0402: the provisioning VLAN has a DHCP rack controller, and every DHCP
/// VLAN has a second one for HA.
fn dhcp_coverage(spec: &Spec, fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let maas_span = spec.blueprint.as_ref().and_then(|b| {
        b.maas
            .rack_controllers
            .first()
            .and_then(|r| r.name.span_opt())
            .or(b.maas.region_controllers.span_opt())
    });
    for dc in &fleet.dcs {
        let start = out.len();
        let span = dc
            .overrides
            .iter()
            .find(|o| o.path.starts_with("maas"))
            .and_then(|o| o.span)
            .or(maas_span);
        for v in &dc.vlans {
            match (&v.dhcp, v.role) {
                (None, InfraVlan::Provisioning) => out.push(
                    Diagnostic::new(
                        codes::S0401,
                        format!(
                            "the provisioning VLAN {} of `{}` has no MAAS rack controller serving DHCP; machines cannot PXE boot",
                            v.vid, dc.name
                        ),
                    )
                    .at_opt(span)
                    .expected("`provisioning` in the `dhcp` list of at least one rack controller")
                    .help("add `provisioning` to `dhcp` of two rack controllers under `blueprint.maas.rack_controllers`"),
                ),
                (Some(d), _) if d.secondary.is_none() => out.push(
                    Diagnostic::new(
                        codes::S0402,
                        format!(
                            "{} VLAN {} of `{}` has DHCP from {} only; losing it stops provisioning",
                            v.role, v.vid, dc.name, d.primary
                        ),
                    )
                    .at_opt(span)
                    .expected("a secondary rack controller for HA")
                    .help(format!("add `{}` to the `dhcp` list of a second rack controller", v.role)),
                ),
                _ => {}
            }
        }
        affecting(dc, &mut out[start..]);
    }
}

/// S0403: a Proxmox cluster with an even node count needs a QDevice.
fn proxmox_quorum(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    for dc in &fleet.dcs {
        let start = out.len();
        for c in &dc.proxmox {
            let n = c.nodes.len();
            if n > 0 && n % 2 == 0 && !c.qdevice {
                out.push(
                    Diagnostic::new(
                        codes::S0403,
                        format!(
                            "Proxmox cluster `{}` of `{}` has {n} nodes and no QDevice: a clean split leaves both halves without quorum",
                            c.name, dc.name
                        ),
                    )
                    .at_opt(c.span.or(dc.span))
                    .expected("an odd number of nodes, or `qdevice: true`")
                    .help("add or remove a node, or set `qdevice: true` and run corosync-qnetd on a third site"),
                );
            }
        }
        affecting(dc, &mut out[start..]);
    }
}

/// S0404: every availability zone has at least its minimum compute nodes.
fn az_capacity(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    for dc in &fleet.dcs {
        let start = out.len();
        for az in &dc.openstack.availability_zones {
            let n = az.compute.len() as u32;
            if n < az.min_compute {
                out.push(
                    Diagnostic::new(
                        codes::S0404,
                        format!(
                            "availability zone `{}` of `{}` has {n} compute node(s), below its minimum of {}",
                            az.name, dc.name, az.min_compute
                        ),
                    )
                    .at_opt(az.span.or(dc.span))
                    .expected(format!("at least {} compute nodes in racks of `{}`", az.min_compute, az.name))
                    .help("add compute machines to racks of this AZ, or lower `min_compute` with a site override and a reason"),
                );
            }
        }
        affecting(dc, &mut out[start..]);
    }
}

/// S0430: a team GPU quota the blueprint's Kolla release cannot enforce (see
/// [`strata_fleet::quota`]): Nova before 2026.2 does not count passthrough GPUs against
/// any quota, so the team could use every GPU its flavors reach.
fn gpu_quota_enforcement(spec: &Spec, fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let Some(bp) = spec.blueprint.as_ref() else {
        return;
    };
    let release = &bp.openstack.kolla_release;
    if strata_fleet::quota::unified_limits(release.as_str()) || bp.openstack.gpu_flavors.is_empty()
    {
        return;
    }
    let teams: Vec<String> = fleet
        .teams
        .iter()
        .filter(|t| t.quota.gpus > 0)
        .map(|t| format!("`{}` ({})", t.name, t.quota.gpus))
        .collect();
    if teams.is_empty() {
        return;
    }
    out.push(
        Diagnostic::new(
            codes::S0430,
            format!(
                "Kolla release {} cannot enforce the GPU quota of team {}: its Nova counts no passthrough GPU against a quota",
                release.as_str(),
                teams.join(", ")
            ),
        )
        .at(release.span)
        .expected(format!(
            "kolla_release {}.{} or later (Nova unified limits that count PCI devices)",
            strata_fleet::quota::UNIFIED_LIMITS_SINCE.0,
            strata_fleet::quota::UNIFIED_LIMITS_SINCE.1
        ))
        .help("upgrade the release, or set `gpus: 0` and bound GPU use by which teams may boot each private GPU flavor"),
    );
}

/// S0201/S0405: GPU flavors name a profile that has that GPU, enough of them.
fn gpu_flavors(spec: &Spec, fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let Some(bp) = spec.blueprint.as_ref() else {
        return;
    };
    for f in &bp.openstack.gpu_flavors {
        let Some(p) = fleet.profile(f.profile.as_str()) else {
            let names: Vec<&str> = fleet.profiles.iter().map(|p| p.name.as_str()).collect();
            let d = Diagnostic::new(
                codes::S0201,
                format!(
                    "GPU flavor `{}` names unknown hardware profile `{}`",
                    f.name, f.profile
                ),
            )
            .at(f.profile.span)
            .expected(format!(
                "one of {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            out.push(
                match strata_diagnostics::did_you_mean(f.profile.as_str(), names.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help("define the profile under `profiles`"),
                },
            );
            continue;
        };
        match &p.gpu {
            None => out.push(
                Diagnostic::new(
                    codes::S0405,
                    format!(
                        "GPU flavor `{}` uses profile `{}`, which has no GPU",
                        f.name, p.name
                    ),
                )
                .at(f.profile.span)
                .expected("a profile with a `gpu` section")
                .help("point the flavor at a GPU profile"),
            ),
            Some(g) if g.model != *f.gpu_model => out.push(
                Diagnostic::new(
                    codes::S0405,
                    format!(
                        "GPU flavor `{}` expects `{}` but profile `{}` has `{}`",
                        f.name, *f.gpu_model, p.name, g.model
                    ),
                )
                .at(f.gpu_model.span)
                .expected(format!("`{}`", g.model))
                .help("fix the model, or point the flavor at the profile that has it"),
            ),
            Some(g) if *f.gpus == 0 || *f.gpus > g.count => out.push(
                Diagnostic::new(
                    codes::S0405,
                    format!(
                        "GPU flavor `{}` asks for {} GPUs; profile `{}` has {}",
                        f.name, *f.gpus, p.name, g.count
                    ),
                )
                .at(f.gpus.span)
                .expected(format!("1 to {}", g.count))
                .help("a flavor can pass through at most the GPUs one host has"),
            ),
            Some(_) => {
                // nova `nova/virt/hardware.py` `numa_fit_instance_to_host`: every
                // instance NUMA node must fit one host cell.
                let Some(layout) = strata_fleet::numa::host_layout(p) else {
                    continue;
                };
                if strata_fleet::numa::flavor_numa_nodes(&layout, f.vcpus, f.ram_mib, *f.gpus)
                    .is_none()
                {
                    let node = layout.nodes.first();
                    out.push(
                        Diagnostic::new(
                            codes::S0412,
                            format!(
                                "GPU flavor `{}` ({} vCPUs, {} MiB, {} GPUs) fits no NUMA layout of profile `{}`",
                                f.name, f.vcpus, f.ram_mib, *f.gpus, p.name
                            ),
                        )
                        .at(f.name.span)
                        .expected(format!(
                            "a flavor that splits evenly over at most {} NUMA nodes, each share at most {} pinned vCPUs, {} GiB of 1 GiB pages and {} GPUs",
                            layout.nodes.len(),
                            node.map_or(0, |n| n.dedicated_cpus),
                            node.map_or(0, |n| n.hugepages_1g),
                            node.map_or(0, |n| n.gpus),
                        ))
                        .help("make the flavor smaller, or give its vCPUs, memory and GPUs a count the host's NUMA nodes divide"),
                    );
                }
            }
        }
    }
}
