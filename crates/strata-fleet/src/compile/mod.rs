//! The compiler: `Spec` + `Lock` → `Fleet` + new `Lock` + diagnostics.
//!
//! Phases, one module each: check the settings ([`settings`]: naming templates, pool
//! shapes, fabric sizes), resolve names and references and apply site overrides
//! ([`resolve`]), allocate the fleet-wide pools and build the tenants ([`global`]),
//! build each DC in parallel ([`dc`]: subnets, fabric, hosts, machines, VMs,
//! services), then join DCs through their interconnects ([`interconnect`]). Every
//! allocation and report goes through a [`ledger::Ledger`].
//! Errors that leave objects unresolvable (unknown references, exhausted pools, lock
//! conflicts) stop the compile before a `Fleet` is built: design checks on a
//! half-resolved fleet would only produce noise.

mod dc;
mod diag;
mod global;
mod interconnect;
mod ledger;
mod resolve;
mod settings;
#[cfg(test)]
mod testing;

use std::net::IpAddr;

use ipnet::IpNet;
use rayon::prelude::*;
use strata_diagnostics::Diagnostic;
use strata_spec::{HardwareProfile, Spec};

use crate::alloc::Space;
use crate::lock::Lock;
use crate::model::*;
use dc::{Shared, SiteBlocks};
use ledger::Ledger;

/// The compiler's result.
#[derive(Debug)]
pub struct Compiled {
    /// `None` when the spec has errors that leave objects unresolved.
    pub fleet: Option<Fleet>,
    /// The lock to write back (equal to the input when nothing changed).
    pub lock: Lock,
    pub diagnostics: Vec<Diagnostic>,
}

/// Compile `spec` against the allocations recorded in `lock`.
pub fn compile(spec: &Spec, lock: &Lock) -> Compiled {
    let mut ledger = Ledger::new(lock).with_pin_spans(global::pin_spans(spec));
    let fleet = run(spec, &mut ledger);
    let fatal = ledger.fatal || ledger.has_errors();
    let mut diags = std::mem::take(&mut ledger.diags);
    strata_diagnostics::sort(&mut diags);
    // A blueprint value that is wrong in every DC is one mistake, not one per DC.
    let diags = strata_diagnostics::merge_same_cause(diags);
    Compiled {
        fleet: if fatal { None } else { fleet },
        lock: if fatal {
            lock.clone()
        } else {
            ledger.into_lock()
        },
        diagnostics: diags,
    }
}

/// The phases in order; `None` as soon as one leaves objects unresolved.
fn run(spec: &Spec, l: &mut Ledger<'_>) -> Option<Fleet> {
    let org = spec.organisation.as_ref()?;
    let pools = spec.pools.as_ref()?;
    let mtu = spec.mtu.as_ref()?;
    let bp = spec.blueprint.as_ref()?;

    let names = settings::naming_templates(org, &mut l.diags)?;
    settings::check_pool_shapes(pools, &mut l.diags);
    let profiles = resolve::index_profiles(spec, &mut l.diags);
    let mut inputs = resolve::resolve_sites(spec, bp, &mut l.diags);
    resolve::assign_machines(spec, &profiles, &mut inputs, &mut l.diags);
    resolve::check_rack_room(&inputs, &profiles, &mut l.diags);
    resolve::assign_vms(spec, &mut inputs, &mut l.diags);
    resolve::check_tenants(spec, &mut l.diags);
    resolve::check_teams(spec, bp, &mut l.diags);
    resolve::check_interconnects(spec, &inputs, &mut l.diags);
    if l.has_errors() {
        l.fatal = true;
        return None;
    }

    let globals = global::allocate_globals(spec, pools, bp, &inputs, l);
    if l.fatal {
        return None;
    }
    let vxlan_overhead = match *pools.vteps.pool {
        IpNet::V4(_) => 50,
        IpNet::V6(_) => 70,
    };
    let (tenants, infra_vnis) = global::build_tenants(spec, pools, bp, &globals);

    // Per-DC compile, in parallel.
    let shared = Shared {
        old: l.old,
        names: &names,
        profiles: &profiles,
        pools,
        domain: org.domain.as_str(),
        infra_vnis: &infra_vnis,
        tenants: &tenants,
        underlay_mtu: *mtu.underlay,
    };
    let site_list: Vec<&resolve::SiteInput<'_>> = inputs.values().collect();
    let results: Vec<(Option<Dc>, Ledger<'_>)> = site_list
        .par_iter()
        .map(|input| {
            let blocks = site_blocks(pools, &globals, input.name);
            dc::build_dc(
                &shared,
                input,
                &blocks,
                &globals.leaf_asns,
                &globals.tenant_subnets,
            )
        })
        .collect();
    let mut dcs = Vec::with_capacity(results.len());
    for (dc, ledger) in results {
        l.absorb(ledger);
        if let Some(dc) = dc {
            dcs.push(dc);
        }
    }
    if l.fatal {
        return None;
    }

    let interconnects = interconnect::join_interconnects(
        spec,
        &inputs,
        &globals.interconnect_links,
        *pools.interconnect,
        *mtu.underlay,
        &mut dcs,
    );
    let mut teams: Vec<Team> = spec
        .teams
        .iter()
        .map(|t| Team {
            name: t.name.to_string(),
            quota: t
                .quota
                .clone()
                .unwrap_or_else(|| bp.openstack.default_quota.clone()),
            members: sorted_names(t.members.iter().map(String::as_str)),
            tenants: sorted_names(t.tenants.iter().map(|x| x.as_str())),
            gpu_flavors: sorted_names(t.gpu_flavors.iter().map(|x| x.as_str())),
        })
        .collect();
    teams.sort_by(|a, b| a.name.cmp(&b.name));

    let mut profiles_out: Vec<HardwareProfile> =
        profiles.values().map(|p| p.value.clone()).collect();
    profiles_out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));

    Some(Fleet {
        organisation: Organisation {
            name: org.name.to_string(),
            fleet_id: org.fleet_id.to_string(),
            domain: org.domain.to_string(),
        },
        mtu: Mtu {
            underlay: *mtu.underlay,
            overlay: *mtu.overlay,
            vxlan_overhead,
            underlay_span: mtu.underlay.span_opt(),
            overlay_span: mtu.overlay.span_opt(),
        },
        tenants,
        infra_vnis,
        dcs,
        interconnects,
        profiles: profiles_out,
        blueprint: bp.value.clone(),
        teams,
    })
}

/// Names sorted and without repeats.
fn sorted_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let set: std::collections::BTreeSet<&str> = names.collect();
    set.into_iter().map(str::to_string).collect()
}

/// A DC's share of the fleet-wide pools: its blocks and its spines' ASN.
fn site_blocks(pools: &strata_spec::Pools, g: &global::Globals, site: &str) -> SiteBlocks {
    SiteBlocks {
        supernet: g
            .supernets
            .get(site)
            .map(|i| block_space(&pools.site_supernets).block(i)),
        loopback: g
            .loopback_blocks
            .get(site)
            .map(|i| block_space(&pools.loopbacks).block(i)),
        vtep: g
            .vtep_blocks
            .get(site)
            .map(|i| block_space(&pools.vteps).block(i)),
        p2p: g
            .p2p_blocks
            .get(site)
            .map(|i| block_space(&pools.p2p).block(i)),
        spine_asn: g
            .spine_asns
            .get(site)
            .map(|i| pools.asns.spines.first + i as u32),
    }
}

fn block_space(b: &strata_spec::BlockPool) -> Space {
    Space::Blocks {
        net: *b.pool,
        prefix_len: *b.prefix_len,
    }
}

/// Address `i` of `net` (0 is the network address).
pub(crate) fn nth(net: &IpNet, i: u128) -> IpAddr {
    let base = crate::alloc::to_u128(net.network()) + i;
    match net {
        IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(base as u32)),
        IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(base)),
    }
}

/// Compare names with embedded numbers naturally (`swp2` < `swp10`).
pub(crate) fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        let i = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
        let (p, n) = s.split_at(i);
        (p.to_string(), n.parse::<u64>().unwrap_or(0), n.to_string())
    };
    split(a).cmp(&split(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use testing::{SMALL, small_with, spec};

    #[test]
    fn names_sort_naturally_and_addresses_count_from_the_network() {
        assert!(natural("swp2", "swp10").is_lt());
        assert!(natural("dci-ams1", "swp1").is_lt());
        let net: IpNet = "10.0.0.0/31".parse().expect("net");
        assert_eq!(nth(&net, 1).to_string(), "10.0.0.1");
    }

    #[test]
    fn the_small_fleet_compiles_and_recompiles_to_the_same_lock() {
        let s = spec(SMALL);
        let first = compile(&s, &Lock::new());
        assert!(first.diagnostics.is_empty(), "{:#?}", first.diagnostics);
        assert!(first.fleet.is_some());
        let again = compile(&s, &first.lock);
        assert_eq!(again.lock, first.lock);
    }

    #[test]
    fn an_error_returns_no_fleet_and_the_old_lock() {
        let s = small_with("profile: p, role: proxmox", "profile: nope, role: proxmox");
        let mut old = Lock::new();
        old.set_pool(
            "site_supernets".into(),
            [("fra1".to_string(), "10.0.0.0/16".to_string())]
                .into_iter()
                .collect(),
        );
        let c = compile(&s, &old);
        assert!(c.fleet.is_none());
        assert_eq!(c.lock, old);
        assert_eq!(c.diagnostics[0].code.as_str(), "S0201");
    }
}
