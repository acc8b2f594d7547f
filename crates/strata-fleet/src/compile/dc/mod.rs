//! One DC, built phase by phase from its resolved site and the fleet-wide
//! allocations. DCs are independent of each other, so the compiler builds them in
//! parallel, each with its own [`Ledger`].

mod fabric;
mod ha;
mod hosts;
mod machines;
mod services;
mod vms;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use ipnet::IpNet;
use strata_diagnostics::{Diagnostic, Span, codes};
use strata_spec::InfraVlan;

use super::ledger::Ledger;
use super::resolve::{Profiles, SiteInput};
use super::settings::Names;
use crate::alloc::{Allocation, allocate_prefixes};
use crate::lock::Lock;
use crate::model::*;

/// What every DC shares: the old lock, templates, profiles, pools and fleet-wide
/// results.
pub(crate) struct Shared<'s> {
    pub old: &'s Lock,
    pub names: &'s Names,
    pub profiles: &'s Profiles<'s>,
    pub pools: &'s strata_spec::Pools,
    pub domain: &'s str,
    pub infra_vnis: &'s [InfraVni],
    pub tenants: &'s [Tenant],
    pub underlay_mtu: u32,
}

/// The DC's share of the fleet-wide pools.
pub(crate) struct SiteBlocks {
    pub supernet: Option<IpNet>,
    pub loopback: Option<IpNet>,
    pub vtep: Option<IpNet>,
    pub p2p: Option<IpNet>,
    pub spine_asn: Option<u32>,
}

/// Build one DC with a ledger of its own.
pub(crate) fn build_dc<'s>(
    sh: &Shared<'s>,
    input: &SiteInput<'_>,
    blocks: &SiteBlocks,
    leaf_asns: &Allocation,
    tsub: &Allocation,
) -> (Option<Dc>, Ledger<'s>) {
    let mut l = Ledger::new(sh.old).with_pin_spans(hosts::bmc_pin_spans(input));
    let dc = assemble_dc(sh, input, blocks, leaf_asns, tsub, &mut l);
    (dc, l)
}

/// The phases of a DC, in order: VLAN subnets, switches, switch addresses, fabric
/// links and ports, host plans, host addresses, machines, VMs, hostname checks,
/// Proxmox, OpenStack, VIPs, tenant subnets, MAAS, host services.
fn assemble_dc(
    sh: &Shared<'_>,
    input: &SiteInput<'_>,
    blocks: &SiteBlocks,
    leaf_asns: &Allocation,
    tsub: &Allocation,
    l: &mut Ledger<'_>,
) -> Option<Dc> {
    let site = input.name;
    let bp = &input.bp;
    let pools = sh.pools;
    let supernet = blocks.supernet?;
    let loopback_block = blocks.loopback?;
    let vtep_block = blocks.vtep?;
    let p2p_block = blocks.p2p?;
    let spine_asn = blocks.spine_asn?;

    let subnets = allocate_vlan_subnets(site, input.span, supernet, pools, l)?;
    let (mut switches, racks) = fabric::build_switches(
        sh.names,
        site,
        bp,
        &input.racks,
        spine_asn,
        leaf_asns,
        pools.asns.leaves.first,
    );
    fabric::address_switches(site, &mut switches, loopback_block, vtep_block, pools, l);
    let (links, bgp) = fabric::allocate_fabric(
        site,
        input.span,
        &mut switches,
        p2p_block,
        pools,
        sh.underlay_mtu,
        l,
    );
    let (hosts, maas_vms) = hosts::plan_hosts(input, l)?;
    let addressing =
        hosts::address_hosts(sh.names, input, &subnets, &hosts, sh.infra_vnis, pools, l);
    let machines =
        machines::build_machines(sh.names, sh.domain, sh.profiles, input, &addressing, l);
    let mut vms = vms::build_vms(sh.names, sh.domain, input, &maas_vms, &addressing, l);
    services::check_hostnames(sh.names, input, &switches, &machines, &vms, l);
    let proxmox = services::build_proxmox(site, bp, &machines, &mut vms, l);
    let mut openstack = services::build_openstack(site, bp, sh.profiles, &machines, &vms);
    let vips = services::build_vips(
        site,
        bp,
        &machines,
        &vms,
        &openstack.control,
        &addressing,
        l,
    );
    openstack.internal_vip = services::internal_vip(bp, &vips);
    let tenant_subnets = services::tenant_subnets(site, pools, sh.tenants, tsub);
    let maas = services::build_maas(sh.names, site, bp, &vms);
    switches.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
    let host_services = services::host_services(
        site,
        sh.domain,
        &maas.region_controllers,
        &maas.rack_controllers,
        &vms,
        &machines,
    );

    Some(Dc {
        name: site.to_string(),
        region: input.region.to_string(),
        overrides: input.applied.clone(),
        blueprint: input.bp.clone(),
        supernet,
        loopback_block,
        vtep_block,
        p2p_block,
        spine_asn,
        vlans: addressing.vlans,
        racks,
        switches,
        links,
        bgp,
        tenant_subnets,
        machines,
        vms,
        maas,
        host_services,
        proxmox,
        openstack,
        vips,
        span: Some(input.span),
    })
}

/// The infrastructure VLAN subnets, packed into the DC's block (and recorded).
fn allocate_vlan_subnets(
    site: &str,
    span: Span,
    supernet: IpNet,
    pools: &strata_spec::Pools,
    l: &mut Ledger<'_>,
) -> Option<BTreeMap<InfraVlan, IpNet>> {
    let reqs: Vec<(String, u8)> = InfraVlan::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), pools.vlan_subnets.get(*r).value))
        .collect();
    let pool = format!("vlan_subnets/{site}");
    let pa = allocate_prefixes(supernet, &reqs, l.old.pool(&pool));
    for c in &pa.conflicts {
        l.diags.push(
            Diagnostic::new(
                codes::S0603,
                format!("fleet.lock gives the {} VLAN of `{site}` the subnet `{}`, which no longer fits", c.key, c.recorded),
            )
            .at(span)
            .expected(format!("a subnet inside {supernet} of the configured size"))
            .help(format!("restore the pool, or delete `{}` from `{pool}` in fleet.lock to re-allocate it", c.key)),
        );
        l.fatal = true;
    }
    if !pa.unallocated.is_empty() {
        let needed: u128 = reqs
            .iter()
            .map(|(_, l)| 1u128 << supernet.max_prefix_len().saturating_sub(*l).min(127))
            .sum();
        l.diags.push(
            Diagnostic::new(
                codes::S0302,
                format!(
                    "the {supernet} block of `{site}` cannot hold its VLAN subnets ({} do not fit: needs {needed} addresses, has {})",
                    pa.unallocated.join(", "),
                    1u128 << (supernet.max_prefix_len() - supernet.prefix_len()).min(127)
                ),
            )
            .at(pools.site_supernets.prefix_len.span)
            .expected("a site block large enough for every VLAN subnet")
            .help("use a shorter `site_supernets.prefix_len`, or longer `vlan_subnets` prefixes"),
        );
        l.fatal = true;
        return None;
    }
    l.pools.push((pool, pa.lock.clone()));

    Some(
        InfraVlan::ALL
            .iter()
            .filter_map(|r| pa.prefixes.get(r.as_str()).map(|p| (*r, *p)))
            .collect(),
    )
}
