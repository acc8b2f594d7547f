//! Protocol and physical domains: every value that has a domain is checked where it
//! is written. VNIs fit in VXLAN's 24 bits, MACs that name one interface are unicast
//! and not all zeros, ASN pools of different roles stay apart and avoid reserved AS
//! numbers, and MTUs and VLAN ranges stay inside what Ethernet and 802.1Q allow.

use strata_diagnostics::{Diagnostic, Span, codes};
use strata_fleet::Fleet;
use strata_spec::{Blueprint, Located, MacAddr, NumRange, Spec};

/// The largest VXLAN network identifier (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// The MTUs strata accepts on any interface: IPv6's minimum link MTU up to the
/// largest jumbo frame switches and NICs carry.
pub const MTU_RANGE: (u32, u32) = (1280, 9216);

/// AS numbers that must never be allocated: 0 (RFC 7607), AS_TRANS 23456 (RFC 6793),
/// 65535 and 4294967295 (RFC 7300).
pub const RESERVED_ASNS: [u32; 4] = [0, 23456, 65535, u32::MAX];

/// Run every domain rule.
pub fn check(spec: &Spec, fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    vni_ranges(spec, out);
    macs(spec, fleet, out);
    asn_pools(spec, out);
    remote_asn_pins(spec, out);
    mtu_ranges(spec, fleet, out);
    tenant_vlan_range(fleet, out);
}

/// The blueprint as written and every DC's effective one (overrides keep the span of
/// the value that replaced the blueprint's, so each value is seen where it was written).
fn blueprints(fleet: &Fleet) -> impl Iterator<Item = &Blueprint> {
    std::iter::once(&fleet.blueprint).chain(fleet.dcs.iter().map(|d| &d.blueprint))
}

fn vni_ok(v: u32) -> bool {
    (1..=VNI_MAX).contains(&v)
}

/// S0311: VNI pools and pinned VNIs fit in 24 bits. A pool that does not is reported
/// once, at the pool, instead of once per VNI allocated from it.
fn vni_ranges(spec: &Spec, out: &mut Vec<Diagnostic>) {
    if let Some(p) = spec.pools.as_ref() {
        for (what, pool) in [("pools.vnis.l2", &p.vnis.l2), ("pools.vnis.l3", &p.vnis.l3)] {
            if !vni_ok(pool.first) || !vni_ok(pool.last) {
                out.push(vni_pool_out_of_range(what, pool));
            }
        }
    }
    for t in &spec.tenants {
        if let Some(v) = &t.l3_vni
            && !vni_ok(**v)
        {
            out.push(pinned_vni_out_of_range(
                &format!("L3 VNI of tenant `{}`", t.name),
                v,
            ));
        }
        for n in &t.networks {
            if let Some(v) = &n.vni
                && !vni_ok(**v)
            {
                out.push(pinned_vni_out_of_range(
                    &format!("VNI of network `{}/{}`", t.name, n.name),
                    v,
                ));
            }
        }
    }
}

fn vni_pool_out_of_range(what: &str, pool: &Located<NumRange>) -> Diagnostic {
    Diagnostic::new(
        codes::S0311,
        format!(
            "`{what}` is {}, which leaves VXLAN's 24-bit VNI space (1-{VNI_MAX})",
            pool.value
        ),
    )
    .at(pool.span)
    .expected(format!("a range inside 1-{VNI_MAX}"))
    .help("VXLAN headers carry 24 bits of VNI; choose a range such as 10000-19999")
}

fn pinned_vni_out_of_range(what: &str, v: &Located<u32>) -> Diagnostic {
    Diagnostic::new(
        codes::S0311,
        format!(
            "the pinned {what} is {}, outside VXLAN's 24-bit VNI space (1-{VNI_MAX})",
            v.value
        ),
    )
    .at(v.span)
    .expected(format!("a VNI from 1 to {VNI_MAX}"))
    .help("pin a VNI inside the pool, or remove the pin to have one allocated")
}

/// Why a MAC cannot name one interface, if it cannot.
pub fn mac_problem(mac: &MacAddr) -> Option<&'static str> {
    if mac.0 == [0; 6] {
        Some("is all zeros")
    } else if mac.0 == [0xff; 6] {
        Some("is the broadcast address")
    } else if mac.0[0] & 1 == 1 {
        Some("is a multicast (group) address")
    } else {
        None
    }
}

/// S0312: the anycast gateway MAC and every PXE MAC are unicast and not all zeros.
fn macs(spec: &Spec, fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let mut seen: Vec<Span> = Vec::new();
    for bp in blueprints(fleet) {
        let mac = &bp.fabric.overlay.anycast_gateway_mac;
        let Some(span) = mac.span_opt() else { continue };
        if seen.contains(&span) {
            continue;
        }
        seen.push(span);
        if let Some(why) = mac_problem(mac) {
            out.push(
                Diagnostic::new(
                    codes::S0312,
                    format!("the anycast gateway MAC {} {why}", mac.value),
                )
                .at(span)
                .expected("a unicast MAC address (lowest bit of the first octet clear), not all zeros")
                .help("hosts answer ARP with this MAC; use a unicast one such as 00:00:5e:00:01:01, or a locally administered 02:xx:xx:xx:xx:xx"),
            );
        }
    }
    for m in &spec.machines {
        let Some(mac) = &m.pxe_mac else { continue };
        if let Some(why) = mac_problem(mac) {
            out.push(
                Diagnostic::new(
                    codes::S0312,
                    format!("the PXE MAC {} of machine `{}` {why}", mac.value, m.serial),
                )
                .at(mac.span)
                .expected("the unicast MAC of the NIC that PXE boots")
                .help("copy the NIC's MAC from the BMC or the vendor's inventory; no NIC has a group or all-zero address"),
            );
        }
    }
}

fn ranges_overlap(a: &NumRange, b: &NumRange) -> bool {
    a.first <= b.last && b.first <= a.last
}

/// S0313: the spine and leaf ASN pools are disjoint and hold no reserved AS number.
fn asn_pools(spec: &Spec, out: &mut Vec<Diagnostic>) {
    let Some(p) = spec.pools.as_ref() else { return };
    let (spines, leaves) = (&p.asns.spines, &p.asns.leaves);
    if ranges_overlap(spines, leaves) {
        out.push(
            Diagnostic::new(
                codes::S0313,
                format!(
                    "the leaf ASN pool {} overlaps the spine ASN pool {}",
                    leaves.value, spines.value
                ),
            )
            .at(leaves.span)
            .expected(format!("a range disjoint from {}", spines.value))
            .related(spines.span, "the spine pool")
            .help("a spine and a leaf with one AS drop each other's routes as loops; give each role its own range"),
        );
    }
    for (what, pool) in [("spine", spines), ("leaf", leaves)] {
        let reserved: Vec<String> = RESERVED_ASNS
            .iter()
            .filter(|a| pool.contains(**a))
            .map(u32::to_string)
            .collect();
        if !reserved.is_empty() {
            out.push(
                Diagnostic::new(
                    codes::S0313,
                    format!(
                        "the {what} ASN pool {} holds reserved AS number(s) {}",
                        pool.value,
                        reserved.join(", ")
                    ),
                )
                .at(pool.span)
                .expected("a range without 0, 23456, 65535 and 4294967295")
                .help("use private ASNs that avoid reserved ones: 64512-65534 or 4200000000-4294967294"),
            );
        }
    }
}

/// S0313: a pinned remote ASN of an interconnect lies in the leaf pool, where the
/// peer's border leaves get their AS from.
fn remote_asn_pins(spec: &Spec, out: &mut Vec<Diagnostic>) {
    let Some(p) = spec.pools.as_ref() else { return };
    let leaves = &p.asns.leaves;
    for ic in &spec.interconnects {
        for (end, peer) in [(&ic.a, &ic.b), (&ic.b, &ic.a)] {
            let Some(asn) = &end.remote_asn else { continue };
            if leaves.contains(**asn) {
                continue;
            }
            out.push(
                Diagnostic::new(
                    codes::S0313,
                    format!(
                        "interconnect `{}` pins remote AS {} for `{}`, outside the leaf ASN pool {} its border leaves get their AS from",
                        ic.name, asn.value, peer.site, leaves.value
                    ),
                )
                .at(asn.span)
                .expected(format!("an AS number in {}", leaves.value))
                .related(leaves.span, "the leaf ASN pool")
                .help("remove `remote_asn` to use the peer's allocated AS, or pin the AS the peer's border leaf has"),
            );
        }
    }
}

fn mtu_out_of_range(what: &str, mtu: u32, span: Span) -> Diagnostic {
    let (lo, hi) = MTU_RANGE;
    Diagnostic::new(
        codes::S0104,
        format!("{what} is {mtu}, outside {lo}-{hi}"),
    )
    .at(span)
    .expected(format!("an MTU from {lo} to {hi}"))
    .help(format!(
        "below {lo} IPv6 does not work; above {hi} no switch or NIC forwards the frame (1500, or 9000 for jumbo, is usual)"
    ))
}

/// S0104: the fabric MTUs and every VLAN's MTU lie in [`MTU_RANGE`].
fn mtu_ranges(spec: &Spec, fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let (lo, hi) = MTU_RANGE;
    let bad = |v: u32| v < lo || v > hi;
    if let Some(m) = spec.mtu.as_ref() {
        for (what, v) in [
            ("`mtu.underlay`", &m.underlay),
            ("`mtu.overlay`", &m.overlay),
        ] {
            if bad(**v) {
                out.push(mtu_out_of_range(what, **v, v.span));
            }
        }
    }
    let mut seen: Vec<Span> = Vec::new();
    for bp in blueprints(fleet) {
        for (role, v) in bp.vlans.iter() {
            let Some(span) = v.mtu.span_opt() else {
                continue;
            };
            if seen.contains(&span) || !bad(*v.mtu) {
                continue;
            }
            seen.push(span);
            out.push(mtu_out_of_range(
                &format!("the MTU of the {role} VLAN"),
                *v.mtu,
                span,
            ));
        }
    }
}

/// S0104: the tenant VLAN range lies inside 802.1Q's 1-4094.
fn tenant_vlan_range(fleet: &Fleet, out: &mut Vec<Diagnostic>) {
    let mut seen: Vec<Span> = Vec::new();
    for bp in blueprints(fleet) {
        let r = &bp.vlans.tenant;
        let Some(span) = r.span_opt() else { continue };
        if seen.contains(&span) || (r.first >= 1 && r.last <= 4094) {
            continue;
        }
        seen.push(span);
        out.push(
            Diagnostic::new(
                codes::S0104,
                format!(
                    "the tenant VLAN range {} leaves 802.1Q's VLAN ids 1-4094",
                    r.value
                ),
            )
            .at(span)
            .expected("a range inside 1-4094")
            .help("VLAN ids 0 and 4095 are reserved and 802.1Q has no more; use a range such as 1000-1999"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_and_zero_macs_are_refused() {
        let mac = |s: &str| s.parse::<MacAddr>().expect("mac");
        assert_eq!(mac_problem(&mac("00:00:5e:00:01:01")), None);
        assert_eq!(mac_problem(&mac("02:00:00:00:00:01")), None);
        assert!(mac_problem(&mac("01:00:5e:00:01:01")).is_some_and(|w| w.contains("multicast")));
        assert!(mac_problem(&mac("33:33:00:00:00:01")).is_some());
        assert!(mac_problem(&mac("00:00:00:00:00:00")).is_some_and(|w| w.contains("zeros")));
        assert!(mac_problem(&mac("ff:ff:ff:ff:ff:ff")).is_some_and(|w| w.contains("broadcast")));
    }

    #[test]
    fn vnis_are_24_bits_and_not_zero() {
        assert!(vni_ok(1));
        assert!(vni_ok(VNI_MAX));
        assert!(!vni_ok(0));
        assert!(!vni_ok(VNI_MAX + 1));
    }

    #[test]
    fn ranges_overlap_at_their_ends() {
        let r = |a, b| NumRange { first: a, last: b };
        assert!(ranges_overlap(&r(1, 10), &r(10, 20)));
        assert!(ranges_overlap(&r(5, 6), &r(1, 10)));
        assert!(!ranges_overlap(&r(1, 9), &r(10, 20)));
    }
}
