//! The compiler: `Spec` + `Lock` → `Fleet` + new `Lock` + diagnostics.
//!
//! Phases: resolve names and references (reporting every dangling one), apply site
//! overrides, allocate from the pools (keeping every allocation the lock records),
//! then build each DC in parallel and join them through their interconnects.
//! Errors that leave objects unresolvable (unknown references, exhausted pools, lock
//! conflicts) stop the compile before a `Fleet` is built: design checks on a
//! half-resolved fleet would only produce noise.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use rayon::prelude::*;
use strata_diagnostics::{Diagnostic, Span, codes, did_you_mean};
use strata_spec::naming::{Template, Var, Vars};
use strata_spec::values::is_dns_label;
use strata_spec::{
    Blueprint, HardwareProfile, InfraVlan, Located, MachineRole, Spec, VipMembers, VmRole,
};

use crate::alloc::{
    Allocation, ConflictReason, Space, allocate, allocate_preferring, allocate_prefixes, to_u128,
};
use crate::lock::Lock;
use crate::model::*;
use crate::overrides;

/// The compiler's result.
#[derive(Debug)]
pub struct Compiled {
    /// `None` when the spec has errors that leave objects unresolved.
    pub fleet: Option<Fleet>,
    /// The lock to write back (equal to the input when nothing changed).
    pub lock: Lock,
    pub diagnostics: Vec<Diagnostic>,
}

/// A machine's rack units: lowest, highest, and the machine.
type SlotUse<'m> = (u32, u32, &'m Located<strata_spec::Machine>);

struct Names {
    spine: Template,
    leaf: Template,
    border: Template,
    machine: Template,
    vm: Template,
}

/// Compile `spec` against the allocations recorded in `lock`.
pub fn compile(spec: &Spec, lock: &Lock) -> Compiled {
    let mut cx = Cx {
        old: lock,
        new: Lock::new(),
        diags: Vec::new(),
        fatal: false,
    };
    let fleet = cx.run(spec);
    let mut diags = cx.diags;
    strata_diagnostics::sort(&mut diags);
    let fatal = cx.fatal || diags.iter().any(|d| d.is_error());
    Compiled {
        fleet: if fatal { None } else { fleet },
        lock: if fatal { lock.clone() } else { cx.new },
        diagnostics: diags,
    }
}

struct Cx<'a> {
    old: &'a Lock,
    new: Lock,
    diags: Vec<Diagnostic>,
    fatal: bool,
}

/// Everything resolved about one site before allocation.
struct SiteInput<'s> {
    name: &'s str,
    region: &'s str,
    span: Span,
    bp: Blueprint,
    applied: Vec<AppliedOverride>,
    racks: Vec<&'s strata_spec::Rack>,
    machines: Vec<&'s Located<strata_spec::Machine>>,
    vms: Vec<&'s Located<strata_spec::Vm>>,
}

fn p2p_len(net: &IpNet) -> u8 {
    net.max_prefix_len() - 1
}

impl<'a> Cx<'a> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Allocate from a pool, recording the new lock entries and reporting trouble.
    fn alloc<'k>(
        &mut self,
        pool: &str,
        what: &str,
        space: Space,
        keys: impl IntoIterator<Item = &'k str>,
        pins: &[(String, u128)],
        span: Option<Span>,
    ) -> Allocation {
        let a = allocate(&space, keys, pins, self.old.pool(pool));
        report_allocation(&mut self.diags, pool, what, &space, &a, span);
        if a.exhausted() || !a.conflicts.is_empty() {
            self.fatal = true;
        }
        self.new.set_pool(pool.to_string(), a.lock.clone());
        a
    }

    fn run(&mut self, spec: &Spec) -> Option<Fleet> {
        let org = spec.organisation.as_ref()?;
        let pools = spec.pools.as_ref()?;
        let mtu = spec.mtu.as_ref()?;
        let bp = spec.blueprint.as_ref()?;

        let names = self.names(org)?;
        self.pool_shapes(pools);

        // Profiles.
        let mut profiles: BTreeMap<&str, &Located<HardwareProfile>> = BTreeMap::new();
        for p in &spec.profiles {
            if let Some(first) = profiles.insert(p.name.as_str(), p) {
                self.err(dup(
                    "hardware profile",
                    p.name.as_str(),
                    p.name.span,
                    first.name.span,
                ));
            }
            if let Some(g) = &p.gpu
                && !g.numa.is_empty()
                && g.numa.len() != g.count as usize
            {
                self.err(
                    Diagnostic::new(
                        codes::S0104,
                        format!(
                            "profile `{}` lists {} NUMA nodes for {} GPUs",
                            p.name,
                            g.numa.len(),
                            g.count
                        ),
                    )
                    .at(g.span)
                    .expected("one NUMA node per GPU")
                    .help("list the NUMA node of every GPU in PCI order, or leave `numa` out"),
                );
            }
            for b in &p.bonds {
                for m in &b.members {
                    if !p.nics.iter().any(|n| &n.name == m) {
                        self.err(
                            Diagnostic::new(
                                codes::S0208,
                                format!("bond `{}` of profile `{}` uses NIC `{m}`, which the profile does not have", b.name, p.name),
                            )
                            .at(p.name.span)
                            .expected(format!("one of the profile's NICs: {}", p.nics.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")))
                            .help("fix the bond member or add the NIC to `nics`"),
                        );
                    }
                }
            }
        }

        // Sites, racks and effective blueprints.
        let mut site_index: BTreeMap<&str, &Located<strata_spec::Site>> = BTreeMap::new();
        for s in &spec.sites {
            if let Some(first) = site_index.insert(s.name.as_str(), s) {
                self.err(dup("site", s.name.as_str(), s.name.span, first.name.span));
            }
        }
        let site_names: Vec<&str> = site_index.keys().copied().collect();
        let mut inputs: BTreeMap<&str, SiteInput<'_>> = BTreeMap::new();
        for (name, s) in &site_index {
            let eff = overrides::apply(bp, &s.overrides);
            self.diags.extend(eff.diagnostics);
            self.fabric_ranges(&eff.blueprint.fabric, s.name.span);
            let mut racks: Vec<&strata_spec::Rack> = Vec::new();
            let mut seen: HashMap<&str, Span> = HashMap::new();
            for r in &s.racks {
                if let Some(first) = seen.insert(r.name.as_str(), r.name.span) {
                    self.err(dup("rack", r.name.as_str(), r.name.span, first));
                    continue;
                }
                if let Some(az) = &r.az
                    && !eff
                        .blueprint
                        .openstack
                        .availability_zones
                        .iter()
                        .any(|z| z.name.as_str() == az.as_str())
                {
                    let zones: Vec<&str> = eff
                        .blueprint
                        .openstack
                        .availability_zones
                        .iter()
                        .map(|z| z.name.as_str())
                        .collect();
                    self.err(unknown_ref(
                        "availability zone",
                        az.as_str(),
                        az.span,
                        &zones,
                    ));
                }
                racks.push(&r.value);
            }
            racks.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
            inputs.insert(
                name,
                SiteInput {
                    name,
                    region: s.region.as_str(),
                    span: s.name.span,
                    bp: eff.blueprint,
                    applied: eff.applied,
                    racks,
                    machines: Vec::new(),
                    vms: Vec::new(),
                },
            );
        }

        // Machines.
        let mut serials: HashMap<&str, Span> = HashMap::with_capacity(spec.machines.len());
        for m in &spec.machines {
            if let Some(first) = serials.insert(m.serial.as_str(), m.serial.span) {
                self.err(dup(
                    "machine serial",
                    m.serial.as_str(),
                    m.serial.span,
                    first,
                ));
                continue;
            }
            let Some(input) = inputs.get_mut(m.site.as_str()) else {
                self.err(unknown_ref(
                    "site",
                    m.site.as_str(),
                    m.site.span,
                    &site_names,
                ));
                continue;
            };
            let mut ok = true;
            if !input
                .racks
                .iter()
                .any(|r| r.name.as_str() == m.rack.as_str())
            {
                let racks: Vec<&str> = input.racks.iter().map(|r| r.name.as_str()).collect();
                self.diags.push(
                    unknown_ref("rack", m.rack.as_str(), m.rack.span, &racks).with_code(
                        codes::S0203,
                        format!("site `{}` has no rack `{}`", m.site, m.rack),
                    ),
                );
                ok = false;
            }
            if !profiles.contains_key(m.profile.as_str()) {
                let names: Vec<&str> = profiles.keys().copied().collect();
                self.diags.push(
                    unknown_ref(
                        "hardware profile",
                        m.profile.as_str(),
                        m.profile.span,
                        &names,
                    )
                    .with_code(
                        codes::S0201,
                        format!(
                            "machine `{}` has unknown hardware profile `{}`",
                            m.serial, m.profile
                        ),
                    ),
                );
                ok = false;
            }
            if let Some(c) = &m.cluster {
                if *m.role != MachineRole::Proxmox {
                    self.err(
                        Diagnostic::new(
                            codes::S0209,
                            format!(
                                "`cluster` applies only to role `proxmox`, not `{}`",
                                m.role.as_str()
                            ),
                        )
                        .at(c.span)
                        .expected("no `cluster` key for this role")
                        .help("remove `cluster`, or change the role to `proxmox`"),
                    );
                } else if !input
                    .bp
                    .proxmox
                    .clusters
                    .iter()
                    .any(|x| x.name.as_str() == c.as_str())
                {
                    let names: Vec<&str> = input
                        .bp
                        .proxmox
                        .clusters
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect();
                    self.err(unknown_ref("Proxmox cluster", c.as_str(), c.span, &names));
                }
            }
            if ok {
                input.machines.push(m);
            }
        }

        // Rack room.
        for input in inputs.values() {
            let mut by_rack: BTreeMap<&str, Vec<SlotUse<'_>>> = BTreeMap::new();
            for m in &input.machines {
                let h = profiles
                    .get(m.profile.as_str())
                    .map(|p| p.height_u.max(1))
                    .unwrap_or(1);
                by_rack.entry(m.rack.as_str()).or_default().push((
                    *m.slot,
                    m.slot.saturating_add(h - 1),
                    m,
                ));
            }
            for (rack, mut ms) in by_rack {
                let units = input
                    .racks
                    .iter()
                    .find(|r| r.name.as_str() == rack)
                    .map(|r| r.units)
                    .unwrap_or(0);
                ms.sort_by_key(|(lo, _, m)| (*lo, m.serial.as_str()));
                let mut prev: Option<(u32, &Located<strata_spec::Machine>)> = None;
                for (lo, hi, m) in ms {
                    if lo == 0 || hi > units {
                        self.diags.push(
                            Diagnostic::new(
                                codes::S0205,
                                format!("machine `{}` needs units {lo}-{hi} but rack `{rack}` of `{}` has units 1-{units}", m.serial, input.name),
                            )
                            .at(m.slot.span)
                            .expected(format!("a slot from 1 to {}", units.saturating_sub(hi - lo)))
                            .help("move the machine to a free slot, or to a rack with room"),
                        );
                    }
                    if let Some((phi, pm)) = prev
                        && lo <= phi
                    {
                        self.diags.push(
                            Diagnostic::new(
                                codes::S0205,
                                format!("machine `{}` (units {lo}-{hi}) overlaps machine `{}` (up to unit {phi}) in rack `{rack}` of `{}`", m.serial, pm.serial, input.name),
                            )
                            .at(m.slot.span)
                            .expected(format!("a slot above {phi}"))
                            .related(pm.slot.span, "the other machine")
                            .help("two machines cannot share rack units; fix one slot"),
                        );
                    }
                    if prev.is_none_or(|(phi, _)| hi > phi) {
                        prev = Some((hi, m));
                    }
                }
            }
        }

        // VMs.
        for v in &spec.vms {
            let Some(input) = inputs.get_mut(v.site.as_str()) else {
                self.err(unknown_ref(
                    "site",
                    v.site.as_str(),
                    v.site.span,
                    &site_names,
                ));
                continue;
            };
            let clusters = &input.bp.proxmox.clusters;
            let cluster = match &v.cluster {
                Some(c) => clusters
                    .iter()
                    .find(|x| x.name.as_str() == c.as_str())
                    .or_else(|| {
                        let names: Vec<&str> = clusters.iter().map(|x| x.name.as_str()).collect();
                        self.diags
                            .push(unknown_ref("Proxmox cluster", c.as_str(), c.span, &names));
                        None
                    }),
                None => clusters.first().or_else(|| {
                    self.diags.push(
                        Diagnostic::new(
                            codes::S0208,
                            format!(
                                "VM `{}` needs a Proxmox cluster, but the blueprint has none",
                                v.name
                            ),
                        )
                        .at(v.name.span)
                        .expected("a cluster under `blueprint.proxmox.clusters`")
                        .help("declare a Proxmox cluster in the blueprint"),
                    );
                    None
                }),
            };
            let Some(cluster) = cluster else { continue };
            if let Some(s) = &v.storage
                && !cluster
                    .storage
                    .iter()
                    .any(|p| p.name.as_str() == s.as_str())
            {
                let names: Vec<&str> = cluster.storage.iter().map(|p| p.name.as_str()).collect();
                self.diags
                    .push(unknown_ref("storage pool", s.as_str(), s.span, &names));
                continue;
            }
            if let Some(g) = &v.ha_group
                && !cluster
                    .ha_groups
                    .iter()
                    .any(|p| p.name.as_str() == g.as_str())
            {
                let names: Vec<&str> = cluster.ha_groups.iter().map(|p| p.name.as_str()).collect();
                self.diags
                    .push(unknown_ref("HA group", g.as_str(), g.span, &names));
                continue;
            }
            input.vms.push(v);
        }
        // VM names per site.
        for input in inputs.values() {
            let mut seen: HashMap<&str, Span> = HashMap::new();
            for v in &input.vms {
                if let Some(first) = seen.insert(v.name.as_str(), v.name.span) {
                    self.diags
                        .push(dup("VM", v.name.as_str(), v.name.span, first));
                }
            }
        }

        // Tenants.
        let mut tenant_names: HashMap<&str, Span> = HashMap::new();
        for t in &spec.tenants {
            if let Some(first) = tenant_names.insert(t.name.as_str(), t.name.span) {
                self.err(dup("tenant", t.name.as_str(), t.name.span, first));
            }
            if t.name.as_str().len() > 15 {
                self.err(
                    Diagnostic::new(
                        codes::S0112,
                        format!("tenant name `{}` is longer than 15 characters", t.name),
                    )
                    .at(t.name.span)
                    .expected("at most 15 characters (it becomes the VRF device name)")
                    .help("shorten the tenant name"),
                );
            }
            let mut nets: HashMap<&str, Span> = HashMap::new();
            for n in &t.networks {
                if let Some(first) = nets.insert(n.name.as_str(), n.name.span) {
                    self.err(dup("tenant network", n.name.as_str(), n.name.span, first));
                }
            }
        }

        // Interconnects.
        for ic in &spec.interconnects {
            for end in [&ic.a, &ic.b] {
                match inputs.get(end.site.as_str()) {
                    None => self.err(unknown_ref(
                        "site",
                        end.site.as_str(),
                        end.site.span,
                        &site_names,
                    )),
                    Some(i) if *i.bp.fabric.border_leaves == 0 => self.err(
                        Diagnostic::new(
                            codes::S0208,
                            format!(
                                "interconnect `{}` ends at `{}`, which has no border leaves",
                                ic.name, end.site
                            ),
                        )
                        .at(end.site.span)
                        .expected("a site with `fabric.border_leaves` of 1 or more")
                        .help("set `blueprint.fabric.border_leaves`, or remove the interconnect"),
                    ),
                    Some(_) => {}
                }
            }
            if ic.a.site.as_str() == ic.b.site.as_str() {
                self.err(
                    Diagnostic::new(
                        codes::S0208,
                        format!(
                            "interconnect `{}` connects `{}` to itself",
                            ic.name, ic.a.site
                        ),
                    )
                    .at(ic.b.site.span)
                    .expected("two different sites")
                    .help("an interconnect joins two DCs"),
                );
            }
        }

        if self.diags.iter().any(|d| d.is_error()) {
            self.fatal = true;
            return None;
        }

        // ---- Global allocations.
        let supernets = self.alloc(
            "site_supernets",
            "site supernets",
            Space::Blocks {
                net: *pools.site_supernets.pool,
                prefix_len: *pools.site_supernets.prefix_len,
            },
            site_names.iter().copied(),
            &[],
            Some(pools.site_supernets.pool.span),
        );
        let mut blocks = Vec::new();
        for (pool_name, bp_pool) in [
            ("loopback_blocks", &pools.loopbacks),
            ("vtep_blocks", &pools.vteps),
            ("p2p_blocks", &pools.p2p),
        ] {
            blocks.push(self.alloc(
                pool_name,
                pool_name,
                Space::Blocks {
                    net: *bp_pool.pool,
                    prefix_len: *bp_pool.prefix_len,
                },
                site_names.iter().copied(),
                &[],
                Some(bp_pool.pool.span),
            ));
        }
        let spine_asns = self.alloc(
            "asns/spines",
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
        let leaf_asns = self.alloc(
            "asns/leaves",
            "leaf ASNs",
            Space::Numbers {
                first: pools.asns.leaves.first,
                last: pools.asns.leaves.last,
            },
            leaf_keys.iter().map(String::as_str),
            &[],
            Some(pools.asns.leaves.span),
        );

        // VNIs and tenant VLANs (fleet-wide).
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
        let l2_alloc = self.alloc(
            "vnis/l2",
            "L2 VNIs",
            Space::Numbers {
                first: l2.first,
                last: l2.last,
            },
            l2_keys.iter().map(String::as_str),
            &l2_pins,
            Some(pools.vnis.l2.span),
        );
        let l3_alloc = self.alloc(
            "vnis/l3",
            "L3 VNIs",
            Space::Numbers {
                first: l3.first,
                last: l3.last,
            },
            l3_keys.iter().map(String::as_str),
            &l3_pins,
            Some(pools.vnis.l3.span),
        );
        let vlan_alloc = self.alloc(
            "vlans/tenant",
            "tenant VLAN ids",
            Space::Numbers {
                first: tenant_range.first,
                last: tenant_range.last,
            },
            vlan_keys.iter().map(String::as_str),
            &vlan_pins,
            Some(bp.vlans.tenant.span),
        );

        let mut tsub_keys = Vec::new();
        for s in &site_names {
            for t in &spec.tenants {
                for n in &t.networks {
                    tsub_keys.push(format!("{s}/{}/{}", t.name, n.name));
                }
            }
        }
        let tsub = self.alloc(
            "tenant_subnets",
            "tenant subnets",
            Space::Blocks {
                net: *pools.tenant_subnets.pool,
                prefix_len: *pools.tenant_subnets.prefix_len,
            },
            tsub_keys.iter().map(String::as_str),
            &[],
            Some(pools.tenant_subnets.pool.span),
        );

        // Interconnect links.
        let ic_net = *pools.interconnect;
        let mut ic_keys = Vec::new();
        for ic in &spec.interconnects {
            let n = ic_link_count(&inputs, ic);
            for i in 1..=n {
                ic_keys.push(format!("{}/{}", ic.name, i));
            }
        }
        let ic_alloc = self.alloc(
            "interconnect",
            "interconnect links",
            Space::Blocks {
                net: ic_net,
                prefix_len: p2p_len(&ic_net),
            },
            ic_keys.iter().map(String::as_str),
            &[],
            Some(pools.interconnect.span),
        );

        if self.fatal {
            return None;
        }

        let vxlan_overhead = match *pools.vteps.pool {
            IpNet::V4(_) => 50,
            IpNet::V6(_) => 70,
        };

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
                    .or_else(|| number(&l3_alloc, &key, l3.first))
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
                                .or_else(|| number(&l2_alloc, &key, l2.first))
                                .unwrap_or(0),
                            vlan: n
                                .vlan
                                .as_ref()
                                .map(|v| v.0)
                                .or_else(|| {
                                    number(&vlan_alloc, &vkey, tenant_range.first).map(|v| v as u16)
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
                vni: number(&l2_alloc, &format!("infra/{r}"), l2.first).unwrap_or(0),
            })
            .collect();

        // ---- Per-DC compile, in parallel.
        let shared = Shared {
            old: self.old,
            names: &names,
            profiles: &profiles,
            pools,
            domain: org.domain.as_str(),
            infra_vnis: &infra_vnis,
            tenants: &tenants,
            underlay_mtu: *mtu.underlay,
        };
        let site_list: Vec<&SiteInput<'_>> = inputs.values().collect();
        let results: Vec<DcResult> = site_list
            .par_iter()
            .map(|input| {
                let site = input.name;
                let sites_blocks = SiteBlocks {
                    supernet: supernets.get(site).map(|i| supernet_space(pools).block(i)),
                    loopback: blocks[0]
                        .get(site)
                        .map(|i| block_space(&pools.loopbacks).block(i)),
                    vtep: blocks[1]
                        .get(site)
                        .map(|i| block_space(&pools.vteps).block(i)),
                    p2p: blocks[2]
                        .get(site)
                        .map(|i| block_space(&pools.p2p).block(i)),
                    spine_asn: spine_asns
                        .get(site)
                        .map(|i| pools.asns.spines.first + i as u32),
                };
                build_dc(&shared, input, &sites_blocks, &leaf_asns, &tsub)
            })
            .collect();

        let mut dcs = Vec::with_capacity(results.len());
        for r in results {
            self.diags.extend(r.diags);
            if r.fatal {
                self.fatal = true;
            }
            for (k, v) in r.lock {
                self.new.set_pool(k, v);
            }
            if let Some(dc) = r.dc {
                dcs.push(dc);
            }
        }
        if self.fatal {
            return None;
        }

        // ---- Interconnects: wire border leaves of two DCs together.
        let mut interconnects = Vec::new();
        for ic in &spec.interconnects {
            let n = ic_link_count(&inputs, ic);
            let mut links = Vec::new();
            for i in 1..=n {
                let Some(slot) = ic_alloc.get(&format!("{}/{}", ic.name, i)) else {
                    continue;
                };
                let subnet = Space::Blocks {
                    net: ic_net,
                    prefix_len: p2p_len(&ic_net),
                }
                .block(slot);
                let a_addr = subnet.network();
                let b_addr = nth(&subnet, 1);
                let (Some(ai), Some(bi)) = (
                    dcs.iter().position(|d| d.name == ic.a.site.as_str()),
                    dcs.iter().position(|d| d.name == ic.b.site.as_str()),
                ) else {
                    continue;
                };
                let border_id = format!("border{i}");
                let (Some(a_sw), Some(b_sw)) = (
                    dcs[ai]
                        .switches
                        .iter()
                        .find(|s| s.id == border_id)
                        .map(|s| (s.name.clone(), s.asn)),
                    dcs[bi]
                        .switches
                        .iter()
                        .find(|s| s.id == border_id)
                        .map(|s| (s.name.clone(), s.asn)),
                ) else {
                    continue;
                };
                let a_if = format!("dci-{}", ic.b.site);
                let b_if = format!("dci-{}", ic.a.site);
                let plen = subnet.prefix_len();
                add_iface(
                    &mut dcs[ai],
                    &a_sw.0,
                    &a_if,
                    a_addr,
                    plen,
                    &b_sw.0,
                    &b_if,
                    *mtu.underlay,
                );
                add_iface(
                    &mut dcs[bi],
                    &b_sw.0,
                    &b_if,
                    b_addr,
                    plen,
                    &a_sw.0,
                    &a_if,
                    *mtu.underlay,
                );
                dcs[ai].bgp.push(BgpSession {
                    kind: SessionKind::Interconnect,
                    local: a_sw.0.clone(),
                    local_asn: a_sw.1,
                    local_address: a_addr,
                    peer: b_sw.0.clone(),
                    peer_dc: ic.b.site.to_string(),
                    peer_address: b_addr,
                    remote_asn: ic.a.remote_asn.as_ref().map(|v| **v).unwrap_or(b_sw.1),
                    remote_asn_span: ic
                        .a
                        .remote_asn
                        .as_ref()
                        .map(|v| v.span)
                        .or(Some(ic.name.span)),
                });
                dcs[bi].bgp.push(BgpSession {
                    kind: SessionKind::Interconnect,
                    local: b_sw.0.clone(),
                    local_asn: b_sw.1,
                    local_address: b_addr,
                    peer: a_sw.0.clone(),
                    peer_dc: ic.a.site.to_string(),
                    peer_address: a_addr,
                    remote_asn: ic.b.remote_asn.as_ref().map(|v| **v).unwrap_or(a_sw.1),
                    remote_asn_span: ic
                        .b
                        .remote_asn
                        .as_ref()
                        .map(|v| v.span)
                        .or(Some(ic.name.span)),
                });
                links.push(InterconnectLink {
                    subnet,
                    a: LinkEnd {
                        device: a_sw.0,
                        interface: a_if,
                        address: a_addr,
                    },
                    a_dc: ic.a.site.to_string(),
                    b: LinkEnd {
                        device: b_sw.0,
                        interface: b_if,
                        address: b_addr,
                    },
                    b_dc: ic.b.site.to_string(),
                });
            }
            interconnects.push(Interconnect {
                name: ic.name.to_string(),
                links,
            });
        }
        interconnects.sort_by(|a, b| a.name.cmp(&b.name));
        for dc in &mut dcs {
            for sw in &mut dc.switches {
                sw.interfaces.sort_by(|a, b| natural(&a.name, &b.name));
            }
            dc.bgp
                .sort_by(|a, b| (&a.local, a.peer_address).cmp(&(&b.local, b.peer_address)));
        }

        let mut teams: Vec<Team> = spec
            .teams
            .iter()
            .map(|t| Team {
                name: t.name.to_string(),
                quota: t
                    .quota
                    .clone()
                    .unwrap_or_else(|| bp.openstack.default_quota.clone()),
                members: t.members.clone(),
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

    /// Prefix lengths that the pools can actually be carved into.
    fn pool_shapes(&mut self, p: &strata_spec::Pools) {
        let mut bad = |what: &str, len: &Located<u8>, lo: u8, hi: u8, why: &str| {
            if **len < lo || **len > hi {
                self.diags.push(
                    Diagnostic::new(
                        codes::S0104,
                        format!("`{what}` is /{}, outside /{lo}-/{hi}", **len),
                    )
                    .at_opt(len.span_opt())
                    .expected(format!("a prefix length from {lo} to {hi}"))
                    .help(why.to_string()),
                );
            }
        };
        for (what, b, room) in [
            ("pools.site_supernets.prefix_len", &p.site_supernets, 2u8),
            ("pools.loopbacks.prefix_len", &p.loopbacks, 0),
            ("pools.vteps.prefix_len", &p.vteps, 0),
            ("pools.p2p.prefix_len", &p.p2p, 1),
            ("pools.tenant_subnets.prefix_len", &p.tenant_subnets, 2),
        ] {
            bad(
                what,
                &b.prefix_len,
                b.pool.prefix_len(),
                b.pool.max_prefix_len() - room,
                "each block is carved from the pool: it must be no larger than the pool, and hold at least one allocation",
            );
        }
        let site = &p.site_supernets;
        for (role, len) in p.vlan_subnets.iter() {
            bad(
                &format!("pools.vlan_subnets.{role}"),
                len,
                *site.prefix_len,
                site.pool.max_prefix_len() - 2,
                "a VLAN subnet lives inside its DC's block and needs room for a gateway and hosts",
            );
        }
        let ic = &p.interconnect;
        if ic.prefix_len() + 1 > ic.max_prefix_len() {
            self.diags.push(
                Diagnostic::new(
                    codes::S0104,
                    format!(
                        "`pools.interconnect` {} cannot hold a point-to-point link",
                        ic.value
                    ),
                )
                .at(ic.span)
                .expected("a prefix of /31 or shorter (IPv6: /127)")
                .help("use a prefix such as 172.31.255.0/24"),
            );
        }
    }

    /// Fabric sizes the renderers and the switches can carry.
    fn fabric_ranges(&mut self, f: &strata_spec::Fabric, site: Span) {
        let checks: [(&str, &Located<u32>, u32, u32); 4] = [
            ("fabric.spines", &f.spines, 1, 64),
            ("fabric.leaves_per_rack", &f.leaves_per_rack, 1, 4),
            ("fabric.border_leaves", &f.border_leaves, 0, 16),
            ("fabric.underlay.max_paths", &f.underlay.max_paths, 1, 256),
        ];
        for (path, v, lo, hi) in checks {
            if **v < lo || **v > hi {
                self.diags.push(
                    Diagnostic::new(
                        codes::S0104,
                        format!("`{path}` is {}, outside {lo}-{hi}", **v),
                    )
                    .at(v.span_opt().unwrap_or(site))
                    .expected(format!("a value from {lo} to {hi}"))
                    .help(format!("set `{path}` between {lo} and {hi}")),
                );
            }
        }
    }

    fn names(&mut self, org: &strata_spec::Organisation) -> Option<Names> {
        let n = &org.naming;
        let mut parse =
            |t: &Located<String>, allowed: &[Var], what: &str| match Template::parse(t, allowed) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.diags.push(
                        Diagnostic::new(
                            codes::S0112,
                            format!("invalid {what} naming template: {e}"),
                        )
                        .at_opt(t.span_opt())
                        .expected("a template of literal text and placeholders such as `{site}`")
                        .help("e.g. `{site}-{rack}-{role}{slot:02}`"),
                    );
                    None
                }
            };
        let spine = parse(&n.spine, &[Var::Site, Var::Index], "spine");
        let leaf = parse(&n.leaf, &[Var::Site, Var::Rack, Var::Index], "leaf");
        let border = parse(&n.border, &[Var::Site, Var::Index], "border");
        let machine = parse(
            &n.machine,
            &[Var::Site, Var::Rack, Var::Role, Var::Slot, Var::Index],
            "machine",
        );
        let vm = parse(&n.vm, &[Var::Site, Var::Name, Var::Role, Var::Index], "vm");
        let names = Names {
            spine: spine?,
            leaf: leaf?,
            border: border?,
            machine: machine?,
            vm: vm?,
        };
        // A machine template must tell machines of one rack and role apart.
        if !names.machine.uses(Var::Slot) && !names.machine.uses(Var::Index) {
            self.diags.push(
                Diagnostic::new(
                    codes::S0112,
                    "machine naming template has neither `{slot}` nor `{index}`",
                )
                .at_opt(n.machine.span_opt())
                .expected("`{slot}` or `{index}` in the template")
                .help("without it, two machines in one rack and role get the same name"),
            );
            return None;
        }
        if !names.vm.uses(Var::Name) {
            self.diags.push(
                Diagnostic::new(codes::S0112, "VM naming template has no `{name}`")
                    .at_opt(n.vm.span_opt())
                    .expected("`{name}` in the template")
                    .help("VM hostnames are built from the VM's name, e.g. `{site}-{name}`"),
            );
            return None;
        }
        Some(names)
    }
}

/// Name a VM's NICs `eth0`, `eth1`, ... in interface order.
fn vm_devices(mut ifs: Vec<HostInterface>) -> Vec<HostInterface> {
    for (n, i) in ifs.iter_mut().enumerate() {
        i.device = format!("eth{n}");
    }
    ifs
}

fn supernet_space(p: &strata_spec::Pools) -> Space {
    block_space(&p.site_supernets)
}

fn block_space(b: &strata_spec::BlockPool) -> Space {
    Space::Blocks {
        net: *b.pool,
        prefix_len: *b.prefix_len,
    }
}

fn ic_link_count(inputs: &BTreeMap<&str, SiteInput<'_>>, ic: &strata_spec::Interconnect) -> u32 {
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

#[allow(clippy::too_many_arguments)]
fn add_iface(
    dc: &mut Dc,
    switch: &str,
    name: &str,
    addr: IpAddr,
    plen: u8,
    peer: &str,
    peer_if: &str,
    mtu: u32,
) {
    if let Some(sw) = dc.switches.iter_mut().find(|s| s.name == switch) {
        sw.interfaces.push(SwitchInterface {
            name: name.to_string(),
            address: IpNet::new(addr, plen).unwrap_or_else(|_| IpNet::from(addr)),
            peer: peer.to_string(),
            peer_interface: peer_if.to_string(),
            mtu,
        });
    }
}

/// The logical ids of a site's leaves and border leaves, in fabric order.
fn leaf_ids(input: &SiteInput<'_>) -> Vec<String> {
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

fn nth(net: &IpNet, i: u128) -> IpAddr {
    let base = to_u128(net.network()) + i;
    match net {
        IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(base as u32)),
        IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(base)),
    }
}

/// Compare names with embedded numbers naturally (`swp2` < `swp10`).
fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |s: &str| {
        let i = s.find(|c: char| c.is_ascii_digit()).unwrap_or(s.len());
        let (p, n) = s.split_at(i);
        (p.to_string(), n.parse::<u64>().unwrap_or(0), n.to_string())
    };
    split(a).cmp(&split(b))
}

fn dup(what: &str, name: &str, at: Span, first: Span) -> Diagnostic {
    Diagnostic::new(codes::S0204, format!("duplicate {what} `{name}`"))
        .at(at)
        .expected(format!("each {what} defined once"))
        .related(first, "first defined here")
        .help(format!("rename one of them or remove the duplicate {what}"))
}

fn unknown_ref(what: &str, name: &str, at: Span, known: &[&str]) -> Diagnostic {
    let code = match what {
        "site" => codes::S0202,
        "hardware profile" => codes::S0201,
        "rack" => codes::S0203,
        _ => codes::S0208,
    };
    let d = Diagnostic::new(code, format!("unknown {what} `{name}`"))
        .at(at)
        .expected(if known.is_empty() {
            format!("a {what}, but none are defined")
        } else {
            format!(
                "one of {}",
                known
                    .iter()
                    .take(12)
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    match did_you_mean(name, known.iter().copied()) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None => d.help(format!(
            "define the {what} `{name}`, or refer to an existing one"
        )),
    }
}

trait WithCode {
    fn with_code(self, code: strata_diagnostics::Code, message: String) -> Self;
}

impl WithCode for Diagnostic {
    fn with_code(mut self, code: strata_diagnostics::Code, message: String) -> Self {
        self.code = code;
        self.message = message;
        self
    }
}

fn report_allocation(
    diags: &mut Vec<Diagnostic>,
    pool: &str,
    what: &str,
    space: &Space,
    a: &Allocation,
    span: Option<Span>,
) {
    for c in &a.conflicts {
        let why = match c.reason {
            ConflictReason::OutsidePool => "is outside the pool as the spec now defines it",
            ConflictReason::Taken => "is already held by another object",
        };
        diags.push(
            Diagnostic::new(
                codes::S0603,
                format!("fleet.lock gives `{}` the {what} value `{}`, which {why}", c.key, c.recorded),
            )
            .at_opt(span)
            .expected("every recorded allocation inside its pool and unique")
            .help(format!(
                "strata never moves an allocation silently: restore the pool, or delete `{}` from `{pool}` in fleet.lock to re-allocate it",
                c.key
            )),
        );
    }
    if a.exhausted() {
        let needed = a.slots.len() + a.unallocated.len();
        diags.push(
            Diagnostic::new(
                codes::S0302,
                format!(
                    "pool `{pool}` is exhausted: {needed} {what} needed, {} available",
                    space.size()
                ),
            )
            .at_opt(span)
            .expected(format!("room for at least {needed} {what}"))
            .help("enlarge the pool (a shorter prefix or a wider range), or use fewer objects"),
        );
    }
}

// ---------------------------------------------------------------------------
// One DC

struct Shared<'s> {
    old: &'s Lock,
    names: &'s Names,
    profiles: &'s BTreeMap<&'s str, &'s Located<HardwareProfile>>,
    pools: &'s strata_spec::Pools,
    domain: &'s str,
    infra_vnis: &'s [InfraVni],
    tenants: &'s [Tenant],
    underlay_mtu: u32,
}

struct SiteBlocks {
    supernet: Option<IpNet>,
    loopback: Option<IpNet>,
    vtep: Option<IpNet>,
    p2p: Option<IpNet>,
    spine_asn: Option<u32>,
}

struct DcResult {
    dc: Option<Dc>,
    lock: Vec<(String, BTreeMap<String, String>)>,
    diags: Vec<Diagnostic>,
    fatal: bool,
}

struct DcCx<'s> {
    old: &'s Lock,
    lock: Vec<(String, BTreeMap<String, String>)>,
    diags: Vec<Diagnostic>,
    fatal: bool,
}

impl DcCx<'_> {
    fn alloc<'k>(
        &mut self,
        pool: String,
        what: &str,
        space: Space,
        keys: impl IntoIterator<Item = &'k str>,
        pins: &[(String, u128)],
        span: Option<Span>,
    ) -> Allocation {
        self.alloc_preferring(pool, what, space, keys, pins, &BTreeMap::new(), span)
    }

    /// [`Self::alloc`] where new keys first try a preferred slot.
    #[allow(clippy::too_many_arguments)]
    fn alloc_preferring<'k>(
        &mut self,
        pool: String,
        what: &str,
        space: Space,
        keys: impl IntoIterator<Item = &'k str>,
        pins: &[(String, u128)],
        preferred: &BTreeMap<String, u128>,
        span: Option<Span>,
    ) -> Allocation {
        let a = allocate_preferring(&space, keys, pins, preferred, self.old.pool(&pool));
        report_allocation(&mut self.diags, &pool, what, &space, &a, span);
        if a.exhausted() || !a.conflicts.is_empty() {
            self.fatal = true;
        }
        self.lock.push((pool, a.lock.clone()));
        a
    }
}

/// Ports of a spine: `swp1` up to this (a generous bound: the spec does not model
/// switch models, and 50 racks of two leaves need 100).
const SPINE_PORTS: u32 = 1024;
/// A leaf's first uplink port: `swp1`-`swp48` face hosts, `swp49` and up the spines.
const LEAF_UPLINK_FIRST: u32 = 49;
/// Uplink ports of a leaf: one per spine, and a fabric has at most 64 spines.
const LEAF_UPLINKS: u32 = 64;

/// A host (machine or VM) before addressing.
struct HostPlan {
    key: String,
    vlans: Vec<InfraVlan>,
}

fn build_dc(
    sh: &Shared<'_>,
    input: &SiteInput<'_>,
    blocks: &SiteBlocks,
    leaf_asns: &Allocation,
    tsub: &Allocation,
) -> DcResult {
    let mut cx = DcCx {
        old: sh.old,
        lock: Vec::new(),
        diags: Vec::new(),
        fatal: false,
    };
    let dc = build_dc_inner(sh, input, blocks, leaf_asns, tsub, &mut cx);
    DcResult {
        dc,
        lock: cx.lock,
        diags: cx.diags,
        fatal: cx.fatal,
    }
}

fn build_dc_inner(
    sh: &Shared<'_>,
    input: &SiteInput<'_>,
    blocks: &SiteBlocks,
    leaf_asns: &Allocation,
    tsub: &Allocation,
    cx: &mut DcCx<'_>,
) -> Option<Dc> {
    let site = input.name;
    let bp = &input.bp;
    let pools = sh.pools;
    let supernet = blocks.supernet?;
    let loopback_block = blocks.loopback?;
    let vtep_block = blocks.vtep?;
    let p2p_block = blocks.p2p?;
    let spine_asn = blocks.spine_asn?;

    // Infrastructure VLAN subnets.
    let reqs: Vec<(String, u8)> = InfraVlan::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), pools.vlan_subnets.get(*r).value))
        .collect();
    let pool = format!("vlan_subnets/{site}");
    let pa = allocate_prefixes(supernet, &reqs, sh.old.pool(&pool));
    for c in &pa.conflicts {
        cx.diags.push(
            Diagnostic::new(
                codes::S0603,
                format!("fleet.lock gives the {} VLAN of `{site}` the subnet `{}`, which no longer fits", c.key, c.recorded),
            )
            .at(input.span)
            .expected(format!("a subnet inside {supernet} of the configured size"))
            .help(format!("restore the pool, or delete `{}` from `{pool}` in fleet.lock to re-allocate it", c.key)),
        );
        cx.fatal = true;
    }
    if !pa.unallocated.is_empty() {
        let needed: u128 = reqs
            .iter()
            .map(|(_, l)| 1u128 << supernet.max_prefix_len().saturating_sub(*l).min(127))
            .sum();
        cx.diags.push(
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
        cx.fatal = true;
        return None;
    }
    cx.lock.push((pool, pa.lock.clone()));

    // Switches.
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
            name: sh.names.spine.expand(&vars(site, "", i)),
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
    for r in &input.racks {
        let mut leaves = Vec::new();
        for j in 1..=*bp.fabric.leaves_per_rack {
            let name = sh.names.leaf.expand(&vars(site, r.name.as_str(), j));
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
            name: sh.names.border.expand(&vars(site, "", j)),
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
                .map(|i| pools.asns.leaves.first + i as u32)
                .unwrap_or(0);
        }
    }
    let ids: Vec<String> = switches.iter().map(|s| s.id.clone()).collect();
    let lo_space = Space::Hosts {
        net: loopback_block,
        reserved: 0,
    };
    let lo = cx.alloc(
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
    let vt = cx.alloc(
        format!("vteps/{site}"),
        "VTEP addresses",
        vt_space,
        vtep_ids.iter().copied(),
        &[],
        Some(pools.vteps.prefix_len.span),
    );
    for sw in &mut switches {
        if let Some(i) = lo.get(&sw.id) {
            sw.loopback = lo_space.addr(i);
        }
        if sw.role != SwitchRole::Spine {
            sw.vtep = vt.get(&sw.id).map(|i| vt_space.addr(i));
        }
    }

    // Fabric links: every spine to every leaf and border leaf.
    let leaf_like: Vec<usize> = (0..switches.len())
        .filter(|&i| switches[i].role != SwitchRole::Spine)
        .collect();
    let spine_idx: Vec<usize> = (0..switches.len())
        .filter(|&i| switches[i].role == SwitchRole::Spine)
        .collect();
    let mut link_keys = Vec::new();
    for &s in &spine_idx {
        for &l in &leaf_like {
            link_keys.push(format!("{}--{}", switches[s].id, switches[l].id));
        }
    }
    let p2p_space = Space::Blocks {
        net: p2p_block,
        prefix_len: p2p_len(&p2p_block),
    };
    let p2p = cx.alloc(
        format!("p2p/{site}"),
        "point-to-point links",
        p2p_space,
        link_keys.iter().map(String::as_str),
        &[],
        Some(pools.p2p.prefix_len.span),
    );
    // Ports: every link end keeps the port the lock records, so adding a rack never
    // moves an existing cable. A new link takes its conventional port if it is free
    // (a spine's port n faces the n-th leaf in fabric order, a leaf's port 48 + n
    // faces spine n), else the lowest free port of that switch.
    let spine_ports = Space::Ports {
        first: 1,
        last: SPINE_PORTS,
    };
    let mut port_of: HashMap<(usize, usize), String> =
        HashMap::with_capacity(2 * spine_idx.len() * leaf_like.len());
    for &s in &spine_idx {
        let preferred: BTreeMap<String, u128> = leaf_like
            .iter()
            .enumerate()
            .map(|(ord, &l)| (switches[l].id.clone(), ord as u128))
            .collect();
        let ports = cx.alloc_preferring(
            format!("ports/{site}/{}", switches[s].id),
            "spine ports",
            spine_ports,
            leaf_like.iter().map(|&l| switches[l].id.as_str()),
            &[],
            &preferred,
            Some(input.span),
        );
        for &l in &leaf_like {
            if let Some(slot) = ports.get(&switches[l].id) {
                port_of.insert((s, l), spine_ports.value(slot));
            }
        }
    }
    let uplink_ports = Space::Ports {
        first: LEAF_UPLINK_FIRST,
        last: LEAF_UPLINK_FIRST + LEAF_UPLINKS - 1,
    };
    for &l in &leaf_like {
        let preferred: BTreeMap<String, u128> = spine_idx
            .iter()
            .map(|&s| {
                (
                    switches[s].id.clone(),
                    u128::from(switches[s].index.saturating_sub(1)),
                )
            })
            .collect();
        let ports = cx.alloc_preferring(
            format!("ports/{site}/{}", switches[l].id),
            "leaf uplink ports",
            uplink_ports,
            spine_idx.iter().map(|&s| switches[s].id.as_str()),
            &[],
            &preferred,
            Some(input.span),
        );
        for &s in &spine_idx {
            if let Some(slot) = ports.get(&switches[s].id) {
                port_of.insert((l, s), uplink_ports.value(slot));
            }
        }
    }
    let mut links = Vec::new();
    let mut bgp = Vec::new();
    for &s in &spine_idx {
        for &l in &leaf_like {
            let key = format!("{}--{}", switches[s].id, switches[l].id);
            let Some(slot) = p2p.get(&key) else { continue };
            let (Some(s_if), Some(l_if)) = (port_of.get(&(s, l)), port_of.get(&(l, s))) else {
                continue;
            };
            let (s_if, l_if) = (s_if.clone(), l_if.clone());
            let subnet = p2p_space.block(slot);
            let a_addr = subnet.network();
            let b_addr = nth(&subnet, 1);
            let plen = subnet.prefix_len();
            let (sname, lname) = (switches[s].name.clone(), switches[l].name.clone());
            let (sasn, lasn) = (switches[s].asn, switches[l].asn);
            switches[s].interfaces.push(SwitchInterface {
                name: s_if.clone(),
                address: IpNet::new(a_addr, plen).unwrap_or(subnet),
                peer: lname.clone(),
                peer_interface: l_if.clone(),
                mtu: sh.underlay_mtu,
            });
            switches[l].interfaces.push(SwitchInterface {
                name: l_if.clone(),
                address: IpNet::new(b_addr, plen).unwrap_or(subnet),
                peer: sname.clone(),
                peer_interface: s_if.clone(),
                mtu: sh.underlay_mtu,
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

    // Hosts: machines, MAAS controller VMs and declared VMs.
    let first_cluster = bp.proxmox.clusters.first();
    let mut hosts: Vec<HostPlan> = Vec::new();
    for m in &input.machines {
        hosts.push(HostPlan {
            key: format!("m:{}", m.serial),
            vlans: bp.host_networks.for_role(*m.role).to_vec(),
        });
    }
    struct MaasVm {
        name: String,
        kind: VmKind,
        vlans: Vec<InfraVlan>,
    }
    let mut maas_vms: Vec<MaasVm> = Vec::new();
    if *bp.maas.region_controllers > 0 || !bp.maas.rack_controllers.is_empty() {
        if first_cluster.is_none() {
            cx.diags.push(
                Diagnostic::new(
                    codes::S0208,
                    format!("MAAS controllers of `{site}` need a Proxmox cluster to run on"),
                )
                .at(input.span)
                .expected("a cluster under `blueprint.proxmox.clusters`")
                .help("declare a Proxmox cluster in the blueprint"),
            );
            cx.fatal = true;
            return None;
        }
        for i in 1..=*bp.maas.region_controllers {
            maas_vms.push(MaasVm {
                name: format!("maas-region{i}"),
                kind: VmKind::MaasRegion,
                vlans: vec![InfraVlan::Provisioning, InfraVlan::Management],
            });
        }
        for rc in &bp.maas.rack_controllers {
            let mut v: BTreeSet<InfraVlan> = [
                InfraVlan::Provisioning,
                InfraVlan::Bmc,
                InfraVlan::Management,
            ]
            .into();
            v.extend(rc.dhcp.iter().map(|d| **d));
            maas_vms.push(MaasVm {
                name: format!("maas-{}", rc.name),
                kind: VmKind::MaasRack,
                vlans: v.into_iter().collect(),
            });
        }
    }
    for v in &maas_vms {
        hosts.push(HostPlan {
            key: format!("vm:{}", v.name),
            vlans: v.vlans.clone(),
        });
    }
    for v in &input.vms {
        let mut vl: Vec<InfraVlan> = v.networks.iter().map(|n| **n).collect();
        vl.sort();
        vl.dedup();
        hosts.push(HostPlan {
            key: format!("vm:{}", v.name),
            vlans: vl,
        });
    }
    // A declared VM may not take a blueprint VM's name.
    for v in &input.vms {
        if maas_vms.iter().any(|m| m.name == v.name.as_str()) {
            cx.diags.push(
                Diagnostic::new(
                    codes::S0204,
                    format!(
                        "VM name `{}` is reserved for the blueprint's MAAS controllers",
                        v.name
                    ),
                )
                .at(v.name.span)
                .expected("a name other than the MAAS controllers'")
                .help("rename the VM"),
            );
            cx.fatal = true;
        }
    }

    // Addresses per VLAN.
    let subnets: BTreeMap<InfraVlan, IpNet> = InfraVlan::ALL
        .iter()
        .filter_map(|r| pa.prefixes.get(r.as_str()).map(|p| (*r, *p)))
        .collect();
    let mut addr_of: HashMap<(String, InfraVlan), IpAddr> = HashMap::with_capacity(hosts.len() * 3);
    let mut vlans_out = Vec::new();
    let l2_of = |r: InfraVlan| {
        sh.infra_vnis
            .iter()
            .find(|v| v.vlan == r)
            .map(|v| v.vni)
            .unwrap_or(0)
    };
    // DHCP: the first rack controller listing a VLAN is primary, the second secondary.
    let mut dhcp: BTreeMap<InfraVlan, Vec<String>> = BTreeMap::new();
    for rc in &bp.maas.rack_controllers {
        for d in &rc.dhcp {
            let host = sh.names.vm.expand(&Vars {
                site,
                name: &format!("maas-{}", rc.name),
                role: "maas-rack",
                ..Vars::default()
            });
            let e = dhcp.entry(**d).or_default();
            if !e.contains(&host) {
                e.push(host);
            }
        }
    }
    for role in InfraVlan::ALL {
        let Some(subnet) = subnets.get(&role).copied() else {
            continue;
        };
        let space = Space::Hosts {
            net: subnet,
            reserved: 1,
        };
        let mut keys: Vec<&str> = hosts
            .iter()
            .filter(|h| h.vlans.contains(&role))
            .map(|h| h.key.as_str())
            .collect();
        let mut bmc_keys: Vec<String> = Vec::new();
        let mut pins: Vec<(String, u128)> = Vec::new();
        if role == InfraVlan::Bmc {
            for m in &input.machines {
                let key = format!("bmc:{}", m.serial);
                match &m.bmc.address {
                    Some(a) => match space.slot_of(&a.to_string()) {
                        Some(slot) => pins.push((key, slot)),
                        None => {
                            cx.diags.push(
                                Diagnostic::new(codes::S0310, format!("BMC address {} of `{}` is not a host address of the BMC subnet {subnet}", a.value, m.serial))
                                    .at(a.span)
                                    .expected(format!("an address in {subnet} other than the network, gateway and broadcast"))
                                    .help("fix the address, or remove it to have one allocated"),
                            );
                            cx.fatal = true;
                        }
                    },
                    None => bmc_keys.push(key),
                }
            }
        }
        let vip_keys: Vec<String> = bp
            .vips
            .iter()
            .filter(|v| v.vlan == role)
            .map(|v| format!("vip:{}", v.name))
            .collect();
        keys.extend(bmc_keys.iter().map(String::as_str));
        keys.extend(vip_keys.iter().map(String::as_str));
        let a = cx.alloc(
            format!("addresses/{site}/{role}"),
            &format!("{role} addresses"),
            space,
            keys.iter().copied(),
            &pins,
            Some(pools.vlan_subnets.get(role).span),
        );
        // Pinned BMC addresses must not collide.
        let mut seen: HashMap<u128, &str> = HashMap::new();
        for (k, s) in &pins {
            if let Some(other) = seen.insert(*s, k) {
                cx.diags.push(
                    Diagnostic::new(
                        codes::S0310,
                        format!(
                            "`{k}` and `{other}` pin the same BMC address {}",
                            space.addr(*s)
                        ),
                    )
                    .at(input.span)
                    .expected("distinct BMC addresses")
                    .help("fix one of the two pinned addresses"),
                );
                cx.fatal = true;
            }
        }
        for (k, s) in &a.slots {
            addr_of.insert((k.clone(), role), space.addr(*s));
        }
        let vr = bp.vlans.get(role);
        let hosts_dhcp = dhcp.get(&role);
        vlans_out.push(Vlan {
            role,
            vid: vr.vid.0,
            vni: l2_of(role),
            mtu: *vr.mtu,
            subnet,
            gateway: nth(&subnet, 1),
            dhcp: hosts_dhcp.and_then(|h| {
                h.first().map(|p| Dhcp {
                    primary: p.clone(),
                    secondary: h.get(1).cloned(),
                })
            }),
            vid_span: vr.vid.span_opt(),
            mtu_span: vr.mtu.span_opt(),
        });
    }
    let iface = |key: &str, vlans: &[InfraVlan]| -> Vec<HostInterface> {
        vlans
            .iter()
            .filter_map(|r| {
                let a = *addr_of.get(&(key.to_string(), *r))?;
                let s = subnets.get(r)?;
                let v = bp.vlans.get(*r);
                Some(HostInterface {
                    vlan: *r,
                    vid: v.vid.0,
                    device: String::new(),
                    address: IpNet::new(a, s.prefix_len()).unwrap_or(*s),
                    gateway: nth(s, 1),
                    mtu: *v.mtu,
                })
            })
            .collect()
    };

    // Machines.
    let mut per_group: BTreeMap<(&str, MachineRole), Vec<(u32, &str)>> = BTreeMap::new();
    for m in &input.machines {
        per_group
            .entry((m.rack.as_str(), *m.role))
            .or_default()
            .push((*m.slot, m.serial.as_str()));
    }
    let mut index_of: HashMap<&str, u32> = HashMap::new();
    for v in per_group.values_mut() {
        v.sort();
        for (i, (_, serial)) in v.iter().enumerate() {
            index_of.insert(serial, i as u32 + 1);
        }
    }
    let az_of = |rack: &str| {
        input
            .racks
            .iter()
            .find(|r| r.name.as_str() == rack)
            .and_then(|r| r.az.as_ref().map(|a| a.to_string()))
    };
    let mut machines: Vec<Machine> = Vec::with_capacity(input.machines.len());
    for m in &input.machines {
        let profile = sh.profiles.get(m.profile.as_str());
        let hostname = sh.names.machine.expand(&Vars {
            site,
            rack: m.rack.as_str(),
            role: m.role.short(),
            slot: *m.slot,
            index: index_of.get(m.serial.as_str()).copied().unwrap_or(1),
            ..Vars::default()
        });
        let key = format!("m:{}", m.serial);
        let bond = profile.and_then(|p| p.bonds.first().map(|b| b.name.clone()));
        let uplink = bond
            .clone()
            .or_else(|| profile.and_then(|p| p.nics.first().map(|n| n.name.clone())));
        let mut interfaces = iface(&key, bp.host_networks.for_role(*m.role));
        for i in &mut interfaces {
            i.device = match (*m.role, &uplink) {
                (MachineRole::Proxmox, _) => format!("{PROXMOX_BRIDGE}.{}", i.vid),
                (_, Some(u)) => format!("{u}.{}", i.vid),
                (_, None) => format!("vlan{}", i.vid),
            };
        }
        let bmc_addr = addr_of
            .get(&(format!("bmc:{}", m.serial), InfraVlan::Bmc))
            .copied()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        machines.push(Machine {
            serial: m.serial.to_string(),
            fqdn: format!("{hostname}.{site}.{}", sh.domain),
            hostname,
            rack: m.rack.to_string(),
            slot: *m.slot,
            profile: m.profile.to_string(),
            role: *m.role,
            az: az_of(m.rack.as_str()),
            cluster: (*m.role == MachineRole::Proxmox)
                .then(|| {
                    m.cluster
                        .as_ref()
                        .map(|c| c.to_string())
                        .or_else(|| first_cluster.map(|c| c.name.to_string()))
                })
                .flatten(),
            bmc: Bmc {
                address: bmc_addr,
                driver: m.bmc.driver,
                username: m.bmc.username.clone(),
                credential: m.bmc.credential.value.clone(),
            },
            pxe_mac: m.pxe_mac.map(|x| x.to_string()),
            bond,
            uplink,
            interfaces,
            gpus: profile
                .and_then(|p| p.gpu.as_ref().map(|g| g.count))
                .unwrap_or(0),
            span: Some(m.span),
        });
    }
    machines.sort_by(|a, b| a.hostname.cmp(&b.hostname));

    // VMs.
    let mut vms: Vec<Vm> = Vec::with_capacity(maas_vms.len() + input.vms.len());
    if let Some(c) = first_cluster {
        for v in &maas_vms {
            let (cores, mem, disk, role) = match v.kind {
                VmKind::MaasRegion => (4, 8192, 100, "maas-region"),
                _ => (2, 4096, 60, "maas-rack"),
            };
            let hostname = sh.names.vm.expand(&Vars {
                site,
                name: &v.name,
                role,
                ..Vars::default()
            });
            vms.push(Vm {
                name: v.name.clone(),
                fqdn: format!("{hostname}.{site}.{}", sh.domain),
                hostname,
                kind: v.kind,
                origin: VmOrigin::Blueprint,
                cluster: c.name.to_string(),
                cores,
                memory_mib: mem,
                disk_gb: disk,
                storage: c
                    .storage
                    .first()
                    .map(|s| s.name.to_string())
                    .unwrap_or_default(),
                ha_group: c.ha_groups.first().map(|g| g.name.to_string()),
                interfaces: vm_devices(iface(&format!("vm:{}", v.name), &v.vlans)),
                tags: vec!["maas".into()],
                span: None,
            });
        }
    }
    let mut role_index: HashMap<VmRole, u32> = HashMap::new();
    let mut declared: Vec<&&Located<strata_spec::Vm>> = input.vms.iter().collect();
    declared.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    for v in declared {
        let idx = role_index.entry(*v.role).or_insert(0);
        *idx += 1;
        let hostname = sh.names.vm.expand(&Vars {
            site,
            name: v.name.as_str(),
            role: v.role.as_str(),
            index: *idx,
            ..Vars::default()
        });
        let cluster = v
            .cluster
            .as_ref()
            .and_then(|c| {
                bp.proxmox
                    .clusters
                    .iter()
                    .find(|x| x.name.as_str() == c.as_str())
            })
            .or(first_cluster);
        let mut vl: Vec<InfraVlan> = v.networks.iter().map(|n| **n).collect();
        vl.sort();
        vl.dedup();
        vms.push(Vm {
            name: v.name.to_string(),
            fqdn: format!("{hostname}.{site}.{}", sh.domain),
            hostname,
            kind: VmKind::Declared(*v.role),
            origin: VmOrigin::Declared,
            cluster: cluster.map(|c| c.name.to_string()).unwrap_or_default(),
            cores: v.cores,
            memory_mib: v.memory_mib,
            disk_gb: v.disk_gb,
            storage: v
                .storage
                .as_ref()
                .map(|s| s.to_string())
                .or_else(|| cluster.and_then(|c| c.storage.first().map(|s| s.name.to_string())))
                .unwrap_or_default(),
            ha_group: v.ha_group.as_ref().map(|g| g.to_string()),
            interfaces: vm_devices(iface(&format!("vm:{}", v.name), &vl)),
            tags: v.tags.clone(),
            span: Some(v.span),
        });
    }
    vms.sort_by(|a, b| a.hostname.cmp(&b.hostname));

    // Hostnames must be DNS labels and unique in the DC.
    let mut seen: HashMap<&str, Option<Span>> =
        HashMap::with_capacity(machines.len() + vms.len() + switches.len());
    let named = switches
        .iter()
        .map(|s| (s.name.as_str(), None, "switch"))
        .chain(
            machines
                .iter()
                .map(|m| (m.hostname.as_str(), m.span, "machine")),
        )
        .chain(vms.iter().map(|v| (v.hostname.as_str(), v.span, "VM")));
    for (name, span, what) in named {
        if !is_dns_label(name) {
            cx.diags.push(
                Diagnostic::new(codes::S0112, format!("the naming convention gives {what} hostname `{name}`, which is not a DNS label"))
                    .at_opt(span.or(Some(input.span)))
                    .expected("1-63 characters of a-z, 0-9 and `-`")
                    .help("adjust the naming template under `organisation.naming`"),
            );
            cx.fatal = true;
        }
        if let Some(first) = seen.insert(name, span) {
            let mut d = Diagnostic::new(
                codes::S0204,
                format!("two objects in `{site}` are both named `{name}`"),
            )
            .at_opt(span.or(Some(input.span)))
            .expected("unique hostnames in a DC")
            .help("rename one object, or change the naming template so names differ");
            if let Some(f) = first {
                d = d.related(f, "the other one");
            }
            cx.diags.push(d);
            cx.fatal = true;
        }
    }

    // Proxmox clusters.
    let mut proxmox = Vec::new();
    for c in &bp.proxmox.clusters {
        let members: Vec<&Machine> = machines
            .iter()
            .filter(|m| m.cluster.as_deref() == Some(c.name.as_str()))
            .collect();
        let keys: Vec<String> = members.iter().map(|m| m.serial.clone()).collect();
        let ids = cx.alloc(
            format!("corosync_ids/{site}/{}", c.name),
            "corosync node ids",
            Space::Numbers {
                first: 1,
                last: 4096,
            },
            keys.iter().map(String::as_str),
            &[],
            c.name.span_opt(),
        );
        for l in &c.corosync_links {
            if !bp.host_networks.proxmox.contains(l) {
                cx.diags.push(
                    Diagnostic::new(codes::S0208, format!("corosync link on VLAN `{l}` of cluster `{}`, but Proxmox nodes are not attached to it", c.name))
                        .at_opt(c.name.span_opt())
                        .expected(format!("`{l}` in `host_networks.proxmox`"))
                        .help("attach the proxmox role to the VLAN, or use another corosync link"),
                );
                cx.fatal = true;
            }
        }
        let mut nodes: Vec<ProxmoxNode> = members
            .iter()
            .map(|m| ProxmoxNode {
                hostname: m.hostname.clone(),
                nodeid: ids.get(&m.serial).map(|i| i as u32 + 1).unwrap_or(0),
                links: c
                    .corosync_links
                    .iter()
                    .filter_map(|l| {
                        m.interfaces
                            .iter()
                            .find(|i| i.vlan == *l)
                            .map(|i| i.address.addr())
                    })
                    .collect(),
            })
            .collect();
        nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        let mut ha_groups: Vec<ProxmoxHaGroup> = c
            .ha_groups
            .iter()
            .map(|g| ProxmoxHaGroup {
                name: g.name.to_string(),
                nodes: nodes.iter().map(|n| (n.hostname.clone(), 1)).collect(),
                restricted: g.restricted,
                nofailback: g.nofailback,
            })
            .collect();
        ha_groups.sort_by(|a, b| a.name.cmp(&b.name));
        proxmox.push(ProxmoxCluster {
            name: c.name.to_string(),
            expected_nodes: *c.nodes,
            nodes,
            qdevice: c.qdevice,
            corosync_links: c.corosync_links.clone(),
            storage: c
                .storage
                .iter()
                .map(|s| ProxmoxStorage {
                    name: s.name.to_string(),
                    kind: s.kind,
                    tier: s.tier,
                    ceph_pool: s.ceph_pool.clone(),
                    content: s.content.clone(),
                })
                .collect(),
            ha_groups,
            template: c.template.clone(),
            span: c.nodes.span_opt().or(c.name.span_opt()),
        });
    }

    // OpenStack.
    let os = &bp.openstack;
    let mut control: Vec<String> = machines
        .iter()
        .filter(|m| m.role == MachineRole::OpenstackControl)
        .map(|m| m.hostname.clone())
        .collect();
    control.extend(
        vms.iter()
            .filter(|v| v.kind == VmKind::Declared(VmRole::OpenstackControl))
            .map(|v| v.hostname.clone()),
    );
    control.sort();
    let mut network: Vec<String> = machines
        .iter()
        .filter(|m| m.role == MachineRole::OpenstackNetwork)
        .map(|m| m.hostname.clone())
        .collect();
    network.extend(
        vms.iter()
            .filter(|v| v.kind == VmKind::Declared(VmRole::OpenstackNetwork))
            .map(|v| v.hostname.clone()),
    );
    network.sort();
    let storage: Vec<String> = machines
        .iter()
        .filter(|m| m.role == MachineRole::OpenstackStorage)
        .map(|m| m.hostname.clone())
        .collect();
    let monitoring: Vec<String> = vms
        .iter()
        .filter(|v| v.kind == VmKind::Declared(VmRole::Monitoring))
        .map(|v| v.hostname.clone())
        .collect();
    let compute: Vec<ComputeNode> = machines
        .iter()
        .filter(|m| m.role == MachineRole::OpenstackCompute)
        .map(|m| ComputeNode {
            hostname: m.hostname.clone(),
            az: m.az.clone(),
            profile: m.profile.clone(),
            gpu: sh.profiles.get(m.profile.as_str()).and_then(|p| {
                p.gpu.as_ref().map(|g| GpuInfo {
                    model: g.model.clone(),
                    count: g.count,
                    vendor_id: g.vendor_id.to_ascii_lowercase(),
                    device_id: g.device_id.to_ascii_lowercase(),
                    alias: p.name.to_string(),
                })
            }),
        })
        .collect();
    let mut azs: Vec<AvailabilityZone> = os
        .availability_zones
        .iter()
        .map(|z| AvailabilityZone {
            name: z.name.to_string(),
            min_compute: *z.min_compute,
            compute: compute
                .iter()
                .filter(|c| c.az.as_deref() == Some(z.name.as_str()))
                .map(|c| c.hostname.clone())
                .collect(),
            span: z.min_compute.span_opt().or(z.name.span_opt()),
        })
        .collect();
    azs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut flavors: Vec<Flavor> = os
        .flavors
        .iter()
        .map(|f| Flavor {
            name: f.name.to_string(),
            vcpus: f.vcpus,
            ram_mib: f.ram_mib,
            disk_gb: f.disk_gb,
            pci_alias: None,
            extra_specs: Vec::new(),
        })
        .collect();
    for g in &os.gpu_flavors {
        let alias = format!("{}:{}", g.profile, g.gpus);
        flavors.push(Flavor {
            name: g.name.to_string(),
            vcpus: g.vcpus,
            ram_mib: g.ram_mib,
            disk_gb: g.disk_gb,
            pci_alias: Some(alias.clone()),
            extra_specs: vec![
                ("hw:cpu_policy".into(), "dedicated".into()),
                ("hw:mem_page_size".into(), "large".into()),
                ("hw:pci_numa_affinity_policy".into(), "preferred".into()),
                ("pci_passthrough:alias".into(), alias),
            ],
        });
    }
    flavors.sort_by(|a, b| a.name.cmp(&b.name));

    // VIPs.
    let vrid_keys: Vec<String> = bp.vips.iter().map(|v| v.name.to_string()).collect();
    let vrids = cx.alloc(
        format!("vrids/{site}"),
        "VRRP router ids",
        Space::Numbers {
            first: 1,
            last: 255,
        },
        vrid_keys.iter().map(String::as_str),
        &[],
        None,
    );
    let mut vips = Vec::new();
    for v in &bp.vips {
        let member_hosts: Vec<String> = match v.members {
            VipMembers::MaasRegion => vms
                .iter()
                .filter(|x| x.kind == VmKind::MaasRegion)
                .map(|x| x.hostname.clone())
                .collect(),
            VipMembers::OpenstackControl => control.clone(),
        };
        // Priorities follow each member's rank, recorded in the lock: a new member
        // ranks after the existing ones, so adding a node never moves the master.
        let ranks = cx.alloc(
            format!("vrrp_ranks/{site}/{}", v.name),
            "VRRP member ranks",
            Space::Numbers {
                first: 1,
                last: 255,
            },
            member_hosts.iter().map(String::as_str),
            &[],
            v.name.span_opt(),
        );
        let mut members = Vec::new();
        for h in &member_hosts {
            let rank = ranks.get(h).unwrap_or(0);
            let addr = machines
                .iter()
                .map(|m| (&m.hostname, &m.interfaces))
                .chain(vms.iter().map(|x| (&x.hostname, &x.interfaces)))
                .find(|(n, _)| *n == h)
                .and_then(|(_, ifs)| {
                    ifs.iter()
                        .find(|f| f.vlan == v.vlan)
                        .map(|f| f.address.addr())
                });
            match addr {
                Some(a) => members.push((
                    rank,
                    VipMember {
                        hostname: h.clone(),
                        address: a,
                        priority: vrrp_priority(rank),
                    },
                )),
                None => {
                    cx.diags.push(
                        Diagnostic::new(codes::S0208, format!("VIP `{}` member `{h}` has no interface on VLAN `{}`", v.name, v.vlan))
                            .at_opt(v.name.span_opt())
                            .expected(format!("every member attached to `{}`", v.vlan))
                            .help("attach the members to the VIP's VLAN, or move the VIP to a VLAN they share"),
                    );
                    cx.fatal = true;
                }
            }
        }
        // The preferred master (the highest priority) first.
        members.sort_by(|a, b| (a.0, &a.1.hostname).cmp(&(b.0, &b.1.hostname)));
        let members: Vec<VipMember> = members.into_iter().map(|(_, m)| m).collect();
        let Some(subnet) = subnets.get(&v.vlan) else {
            continue;
        };
        let addr = addr_of
            .get(&(format!("vip:{}", v.name), v.vlan))
            .copied()
            .unwrap_or(subnet.network());
        vips.push(Vip {
            name: v.name.to_string(),
            vlan: v.vlan,
            address: addr,
            prefix_len: subnet.prefix_len(),
            vrid: vrids.get(v.name.as_str()).map(|i| i as u8 + 1).unwrap_or(0),
            port: v.port,
            members,
        });
    }
    vips.sort_by(|a, b| a.name.cmp(&b.name));
    let internal_vip = vips
        .iter()
        .find(|v| {
            bp.vips
                .iter()
                .any(|b| b.name.as_str() == v.name && b.members == VipMembers::OpenstackControl)
        })
        .map(|v| v.address);

    // Tenant subnets of this DC.
    let tspace = Space::Blocks {
        net: *pools.tenant_subnets.pool,
        prefix_len: *pools.tenant_subnets.prefix_len,
    };
    let mut tenant_subnets = Vec::new();
    for t in sh.tenants {
        for n in &t.networks {
            if let Some(slot) = tsub.get(&format!("{site}/{}/{}", t.name, n.name)) {
                let subnet = tspace.block(slot);
                tenant_subnets.push(TenantSubnet {
                    tenant: t.name.clone(),
                    network: n.name.clone(),
                    subnet,
                    gateway: nth(&subnet, 1),
                });
            }
        }
    }

    let region = site.to_string();
    let mut region_ctl: Vec<String> = vms
        .iter()
        .filter(|v| v.kind == VmKind::MaasRegion)
        .map(|v| v.hostname.clone())
        .collect();
    region_ctl.sort();
    let rack_ctl: Vec<MaasRackController> = bp
        .maas
        .rack_controllers
        .iter()
        .map(|rc| MaasRackController {
            name: rc.name.to_string(),
            hostname: sh.names.vm.expand(&Vars {
                site,
                name: &format!("maas-{}", rc.name),
                role: "maas-rack",
                ..Vars::default()
            }),
            dhcp: rc.dhcp.iter().map(|d| **d).collect(),
        })
        .collect();
    switches.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
    let host_services = host_services(site, sh.domain, &region_ctl, &rack_ctl, &vms, &machines);

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
        vlans: vlans_out,
        racks: racks_out,
        switches,
        links,
        bgp,
        tenant_subnets,
        machines,
        vms,
        maas: Maas {
            region_controllers: region_ctl,
            rack_controllers: rack_ctl,
            distro_series: bp.maas.distro_series.clone(),
        },
        host_services,
        proxmox,
        openstack: OpenStackRegion {
            region,
            kolla_release: os.kolla_release.to_string(),
            expected_control: *os.control_nodes,
            control,
            network,
            compute,
            storage,
            monitoring,
            availability_zones: azs,
            flavors,
            internal_vip,
        },
        vips,
        span: Some(input.span),
    })
}

/// The keepalived priority of the member of 0-based rank `rank`: 150, 140, ... down to 50.
fn vrrp_priority(rank: u128) -> u8 {
    150u8.saturating_sub((10 * rank.min(10)) as u8)
}

/// DNS and NTP for a DC's hosts, from its MAAS controllers' management addresses.
fn host_services(
    site: &str,
    domain: &str,
    region_ctl: &[String],
    rack_ctl: &[MaasRackController],
    vms: &[Vm],
    machines: &[Machine],
) -> HostServices {
    let management = |hostname: &str| -> Option<IpAddr> {
        vms.iter()
            .find(|v| v.hostname == hostname)
            .map(|v| &v.interfaces)
            .or_else(|| {
                machines
                    .iter()
                    .find(|m| m.hostname == hostname)
                    .map(|m| &m.interfaces)
            })?
            .iter()
            .find(|i| i.vlan == InfraVlan::Management)
            .map(|i| i.address.addr())
    };
    let resolvers: Vec<IpAddr> = region_ctl
        .iter()
        .filter_map(|h| management(h))
        .take(3)
        .collect();
    let mut racks: Vec<&MaasRackController> = rack_ctl.iter().collect();
    racks.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    let mut ntp_servers: Vec<IpAddr> = racks
        .iter()
        .filter_map(|r| management(&r.hostname))
        .collect();
    if ntp_servers.is_empty() {
        ntp_servers = resolvers.clone();
    }
    HostServices {
        resolvers,
        search_domain: format!("{site}.{domain}"),
        ntp_servers,
    }
}
