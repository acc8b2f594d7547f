//! Fleet-wide allocation: site blocks, ASNs, VNIs, tenant VLANs and subnets and
//! interconnect links; then the fleet-wide tenants and infrastructure VNIs.

use ipnet::IpNet;
use strata_spec::{Blueprint, InfraVlan, Spec};

use super::ledger::{Ledger, PinSpans};
use super::resolve::{SiteInput, Sites};
use crate::alloc::{Allocation, Space};
use crate::model::{InfraVni, Tenant, TenantNetwork};

/// Every fleet-wide allocation.
pub(crate) struct Globals {
    /// Site key -> slot of its block in each pool.
    pub supernets: Allocation,
    pub loopback_blocks: Allocation,
    pub vtep_blocks: Allocation,
    pub p2p_blocks: Allocation,
    pub spine_asns: Allocation,
    /// `<site>/<switch id>` -> leaf ASN slot.
    pub leaf_asns: Allocation,
    pub l2_vnis: Allocation,
    pub l3_vnis: Allocation,
    pub tenant_vlans: Allocation,
    /// `<site>/<tenant>/<network>` -> subnet slot.
    pub tenant_subnets: Allocation,
    /// `<interconnect>/<n>` -> link subnet slot.
    pub interconnect_links: Allocation,
}

/// The prefix length of a point-to-point link in `net`'s family.
pub(crate) fn p2p_len(net: &IpNet) -> u8 {
    net.max_prefix_len() - 1
}

/// The logical ids of a site's leaves and border leaves, in fabric order.
pub(crate) fn leaf_ids(input: &SiteInput<'_>) -> Vec<String> {
    let mut ids = Vec::new();
    for r in &input.racks {
        for j in 1..=*input.bp.fabric.leaves_per_rack {
            ids.push(format!("{}/leaf{j}", r.name));
        }
    }
    for j in 1..=*input.bp.fabric.border_leaves {
        ids.push(format!("border{j}"));
    }
    ids
}

/// Links of an interconnect: one per border leaf both ends have.
pub(crate) fn ic_link_count(inputs: &Sites<'_>, ic: &strata_spec::Interconnect) -> u32 {
    let a = inputs
        .get(ic.a.site.as_str())
        .map(|i| *i.bp.fabric.border_leaves)
        .unwrap_or(0);
    let b = inputs
        .get(ic.b.site.as_str())
        .map(|i| *i.bp.fabric.border_leaves)
        .unwrap_or(0);
    a.min(b)
}

/// Allocate every fleet-wide pool.
pub(crate) fn allocate_globals(
    spec: &Spec,
    pools: &strata_spec::Pools,
    bp: &Blueprint,
    inputs: &Sites<'_>,
    l: &mut Ledger<'_>,
) -> Globals {
    let site_names: Vec<&str> = inputs.keys().copied().collect();
    let sites = allocate_site_pools(pools, inputs, &site_names, l);
    let ids = allocate_overlay_ids(spec, pools, bp, l);
    let tenant_subnets = allocate_tenant_subnets(spec, pools, &site_names, l);
    let interconnect_links = allocate_interconnect_links(spec, pools, inputs, l);
    Globals {
        supernets: sites.supernets,
        loopback_blocks: sites.loopback_blocks,
        vtep_blocks: sites.vtep_blocks,
        p2p_blocks: sites.p2p_blocks,
        spine_asns: sites.spine_asns,
        leaf_asns: sites.leaf_asns,
        l2_vnis: ids.l2_vnis,
        l3_vnis: ids.l3_vnis,
        tenant_vlans: ids.tenant_vlans,
        tenant_subnets,
        interconnect_links,
    }
}

/// What every site gets from the fleet-wide pools.
struct SitePools {
    supernets: Allocation,
    loopback_blocks: Allocation,
    vtep_blocks: Allocation,
    p2p_blocks: Allocation,
    spine_asns: Allocation,
    leaf_asns: Allocation,
}

/// Each site's blocks (supernet, loopbacks, VTEPs, p2p) and spine ASN, and every
/// leaf's ASN.
fn allocate_site_pools(
    pools: &strata_spec::Pools,
    inputs: &Sites<'_>,
    site_names: &[&str],
    l: &mut Ledger<'_>,
) -> SitePools {
    let supernets = l.alloc(
        "site_supernets".to_string(),
        "site supernets",
        Space::Blocks {
            net: *pools.site_supernets.pool,
            prefix_len: *pools.site_supernets.prefix_len,
        },
        site_names.iter().copied(),
        &[],
        Some(pools.site_supernets.pool.span),
    );
    let mut site_blocks = |pool_name: &str, bp_pool: &strata_spec::BlockPool| {
        l.alloc(
            pool_name.to_string(),
            pool_name,
            Space::Blocks {
                net: *bp_pool.pool,
                prefix_len: *bp_pool.prefix_len,
            },
            site_names.iter().copied(),
            &[],
            Some(bp_pool.pool.span),
        )
    };
    let loopback_blocks = site_blocks("loopback_blocks", &pools.loopbacks);
    let vtep_blocks = site_blocks("vtep_blocks", &pools.vteps);
    let p2p_blocks = site_blocks("p2p_blocks", &pools.p2p);
    let spine_asns = l.alloc(
        "asns/spines".to_string(),
        "spine ASNs",
        Space::Numbers {
            first: pools.asns.spines.first,
            last: pools.asns.spines.last,
        },
        site_names.iter().copied(),
        &[],
        Some(pools.asns.spines.span),
    );
    let mut leaf_keys: Vec<String> = Vec::new();
    for input in inputs.values() {
        for id in leaf_ids(input) {
            leaf_keys.push(format!("{}/{}", input.name, id));
        }
    }
    let leaf_asns = l.alloc(
        "asns/leaves".to_string(),
        "leaf ASNs",
        Space::Numbers {
            first: pools.asns.leaves.first,
            last: pools.asns.leaves.last,
        },
        leaf_keys.iter().map(String::as_str),
        &[],
        Some(pools.asns.leaves.span),
    );
    SitePools {
        supernets,
        loopback_blocks,
        vtep_blocks,
        p2p_blocks,
        spine_asns,
        leaf_asns,
    }
}

/// The fleet-wide overlay identifiers.
struct OverlayIds {
    l2_vnis: Allocation,
    l3_vnis: Allocation,
    tenant_vlans: Allocation,
}

/// L2 VNIs (infrastructure VLANs and tenant networks), L3 VNIs (tenants) and tenant
/// VLAN ids, keeping the values the spec pins.
fn allocate_overlay_ids(
    spec: &Spec,
    pools: &strata_spec::Pools,
    bp: &Blueprint,
    l: &mut Ledger<'_>,
) -> OverlayIds {
    let l2 = *pools.vnis.l2;
    let l3 = *pools.vnis.l3;
    let mut l2_keys: Vec<String> = InfraVlan::ALL
        .iter()
        .map(|r| format!("infra/{r}"))
        .collect();
    let mut l2_pins = Vec::new();
    let mut l3_keys = Vec::new();
    let mut l3_pins = Vec::new();
    let mut vlan_keys = Vec::new();
    let mut vlan_pins = Vec::new();
    let tenant_range = *bp.vlans.tenant;
    for t in &spec.tenants {
        let key = format!("tenant/{}", t.name);
        match &t.l3_vni {
            Some(v) if l3.contains(**v) => l3_pins.push((key, u128::from(**v - l3.first))),
            Some(_) => {}
            None => l3_keys.push(key),
        }
        for n in &t.networks {
            let key = format!("tenant/{}/{}", t.name, n.name);
            match &n.vni {
                Some(v) if l2.contains(**v) => l2_pins.push((key, u128::from(**v - l2.first))),
                Some(_) => {}
                None => l2_keys.push(key),
            }
            let vkey = format!("{}/{}", t.name, n.name);
            match &n.vlan {
                Some(v) if tenant_range.contains(u32::from(v.0)) => {
                    vlan_pins.push((vkey, u128::from(u32::from(v.0) - tenant_range.first)))
                }
                Some(_) => {}
                None => vlan_keys.push(vkey),
            }
        }
    }
    let l2_alloc = l.alloc(
        "vnis/l2".to_string(),
        "L2 VNIs",
        Space::Numbers {
            first: l2.first,
            last: l2.last,
        },
        l2_keys.iter().map(String::as_str),
        &l2_pins,
        Some(pools.vnis.l2.span),
    );
    let l3_alloc = l.alloc(
        "vnis/l3".to_string(),
        "L3 VNIs",
        Space::Numbers {
            first: l3.first,
            last: l3.last,
        },
        l3_keys.iter().map(String::as_str),
        &l3_pins,
        Some(pools.vnis.l3.span),
    );
    let vlan_alloc = l.alloc(
        "vlans/tenant".to_string(),
        "tenant VLAN ids",
        Space::Numbers {
            first: tenant_range.first,
            last: tenant_range.last,
        },
        vlan_keys.iter().map(String::as_str),
        &vlan_pins,
        Some(bp.vlans.tenant.span),
    );
    OverlayIds {
        l2_vnis: l2_alloc,
        l3_vnis: l3_alloc,
        tenant_vlans: vlan_alloc,
    }
}

/// Every site's subnet of every tenant network.
fn allocate_tenant_subnets(
    spec: &Spec,
    pools: &strata_spec::Pools,
    site_names: &[&str],
    l: &mut Ledger<'_>,
) -> Allocation {
    let mut tsub_keys = Vec::new();
    for s in site_names {
        for t in &spec.tenants {
            for n in &t.networks {
                tsub_keys.push(format!("{s}/{}/{}", t.name, n.name));
            }
        }
    }
    l.alloc(
        "tenant_subnets".to_string(),
        "tenant subnets",
        Space::Blocks {
            net: *pools.tenant_subnets.pool,
            prefix_len: *pools.tenant_subnets.prefix_len,
        },
        tsub_keys.iter().map(String::as_str),
        &[],
        Some(pools.tenant_subnets.pool.span),
    )
}

/// A point-to-point subnet per interconnect link.
fn allocate_interconnect_links(
    spec: &Spec,
    pools: &strata_spec::Pools,
    inputs: &Sites<'_>,
    l: &mut Ledger<'_>,
) -> Allocation {
    let ic_net = *pools.interconnect;
    let mut ic_keys = Vec::new();
    for ic in &spec.interconnects {
        let n = ic_link_count(inputs, ic);
        for i in 1..=n {
            ic_keys.push(format!("{}/{}", ic.name, i));
        }
    }
    l.alloc(
        "interconnect".to_string(),
        "interconnect links",
        Space::Blocks {
            net: ic_net,
            prefix_len: p2p_len(&ic_net),
        },
        ic_keys.iter().map(String::as_str),
        &[],
        Some(pools.interconnect.span),
    )
}

/// The fleet-wide tenants (spec values, or what the pools gave) and the VNIs of the
/// infrastructure VLANs.
pub(crate) fn build_tenants(
    spec: &Spec,
    pools: &strata_spec::Pools,
    bp: &Blueprint,
    g: &Globals,
) -> (Vec<Tenant>, Vec<InfraVni>) {
    let l2 = *pools.vnis.l2;
    let l3 = *pools.vnis.l3;
    let tenant_range = *bp.vlans.tenant;
    let (l2_alloc, l3_alloc, vlan_alloc) = (&g.l2_vnis, &g.l3_vnis, &g.tenant_vlans);
    // Tenants (fleet-wide).
    let number = |a: &Allocation, key: &str, first: u32| a.get(key).map(|s| first + s as u32);
    let mut tenants: Vec<Tenant> = spec
        .tenants
        .iter()
        .map(|t| {
            let key = format!("tenant/{}", t.name);
            let l3_vni = t
                .l3_vni
                .as_ref()
                .map(|v| **v)
                .or_else(|| number(l3_alloc, &key, l3.first))
                .unwrap_or(0);
            let mut networks: Vec<TenantNetwork> = t
                .networks
                .iter()
                .map(|n| {
                    let key = format!("tenant/{}/{}", t.name, n.name);
                    let vkey = format!("{}/{}", t.name, n.name);
                    TenantNetwork {
                        name: n.name.to_string(),
                        vni: n
                            .vni
                            .as_ref()
                            .map(|v| **v)
                            .or_else(|| number(l2_alloc, &key, l2.first))
                            .unwrap_or(0),
                        vlan: n
                            .vlan
                            .as_ref()
                            .map(|v| v.0)
                            .or_else(|| {
                                number(vlan_alloc, &vkey, tenant_range.first).map(|v| v as u16)
                            })
                            .unwrap_or(0),
                        routed: n.routed,
                        vni_span: n.vni.as_ref().map(|v| v.span).or(Some(n.name.span)),
                        vlan_span: n.vlan.as_ref().map(|v| v.span).or(Some(n.name.span)),
                    }
                })
                .collect();
            networks.sort_by(|a, b| a.name.cmp(&b.name));
            Tenant {
                name: t.name.to_string(),
                vrf: t.name.to_string(),
                l3_vni,
                networks,
                span: Some(t.name.span),
                l3_vni_span: t.l3_vni.as_ref().map(|v| v.span).or(Some(t.name.span)),
            }
        })
        .collect();
    tenants.sort_by(|a, b| a.name.cmp(&b.name));
    let infra_vnis: Vec<InfraVni> = InfraVlan::ALL
        .iter()
        .map(|r| InfraVni {
            vlan: *r,
            vni: number(l2_alloc, &format!("infra/{r}"), l2.first).unwrap_or(0),
        })
        .collect();
    (tenants, infra_vnis)
}

/// Where each fleet-wide pin (tenant VNIs and VLANs) was written, by pool and key.
pub(crate) fn pin_spans(spec: &Spec) -> PinSpans {
    let mut out = PinSpans::new();
    for t in &spec.tenants {
        if let Some(v) = &t.l3_vni {
            out.insert(("vnis/l3".into(), format!("tenant/{}", t.name)), v.span);
        }
        for n in &t.networks {
            if let Some(v) = &n.vni {
                out.insert(
                    ("vnis/l2".into(), format!("tenant/{}/{}", t.name, n.name)),
                    v.span,
                );
            }
            if let Some(v) = &n.vlan {
                out.insert(
                    ("vlans/tenant".into(), format!("{}/{}", t.name, n.name)),
                    v.span,
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::resolve::resolve_sites;
    use crate::compile::testing::{SMALL, small_with, spec};
    use crate::lock::Lock;

    fn globals(s: &Spec, lock: &Lock) -> (Globals, Vec<(String, usize)>) {
        let mut diags = Vec::new();
        let bp = s.blueprint.as_ref().expect("blueprint");
        let sites = resolve_sites(s, bp, &mut diags);
        let mut l = Ledger::new(lock);
        let g = allocate_globals(s, s.pools.as_ref().expect("pools"), bp, &sites, &mut l);
        assert!(!l.fatal, "{:#?}", l.diags);
        let pools = l.pools.iter().map(|(p, e)| (p.clone(), e.len())).collect();
        (g, pools)
    }

    #[test]
    fn every_site_gets_its_blocks_and_every_leaf_an_asn() {
        let s = spec(SMALL);
        let (g, pools) = globals(&s, &Lock::new());
        assert_eq!(g.supernets.get("fra1"), Some(0));
        assert_eq!(
            g.leaf_asns.slots.len(),
            5,
            "four rack leaves and a border leaf"
        );
        assert_eq!(g.l2_vnis.slots.len(), InfraVlan::ALL.len() + 1);
        assert!(g.interconnect_links.slots.is_empty());
        assert!(pools.contains(&("asns/leaves".to_string(), 5)));
    }

    #[test]
    fn tenants_keep_pinned_values_and_take_allocated_ones() {
        let s = small_with(
            "networks: [{ name: web }]",
            "networks: [{ name: web, vni: 12345 }]",
        );
        let (g, _) = globals(&s, &Lock::new());
        let pools = s.pools.as_ref().expect("pools");
        let bp = s.blueprint.as_ref().expect("blueprint");
        let (tenants, infra) = build_tenants(&s, pools, bp, &g);
        assert_eq!(tenants[0].networks[0].vni, 12345);
        assert_eq!(tenants[0].networks[0].vlan, 1000);
        assert_eq!(tenants[0].l3_vni, 50000);
        assert_eq!(infra.len(), InfraVlan::ALL.len());
        assert!(infra.iter().all(|v| v.vni != 12345));
    }

    #[test]
    fn leaf_ids_are_in_fabric_order() {
        let s = spec(SMALL);
        let mut diags = Vec::new();
        let bp = s.blueprint.as_ref().expect("blueprint");
        let sites = resolve_sites(&s, bp, &mut diags);
        assert_eq!(
            leaf_ids(&sites["fra1"]),
            [
                "r01/leaf1",
                "r01/leaf2",
                "r02/leaf1",
                "r02/leaf2",
                "border1"
            ]
        );
    }
}
