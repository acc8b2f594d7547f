//! Resolution: every name the spec defines, every reference it makes, checked and
//! gathered per site before anything is allocated.

use std::collections::{BTreeMap, HashMap};

use strata_diagnostics::{Diagnostic, Span, codes};
use strata_spec::{Blueprint, HardwareProfile, Located, MachineRole, Spec};

use super::diag::{WithCode, dup, unknown_ref};
use super::settings::check_fabric_ranges;
use crate::model::AppliedOverride;
use crate::overrides;

/// Hardware profiles by name.
pub(crate) type Profiles<'s> = BTreeMap<&'s str, &'s Located<HardwareProfile>>;

/// A machine's rack units: lowest, highest, and the machine.
type SlotUse<'m> = (u32, u32, &'m Located<strata_spec::Machine>);

/// Everything resolved about one site before allocation.
pub(crate) struct SiteInput<'s> {
    pub name: &'s str,
    pub region: &'s str,
    pub span: Span,
    /// The blueprint with the site's overrides applied.
    pub bp: Blueprint,
    pub applied: Vec<AppliedOverride>,
    /// Racks by name.
    pub racks: Vec<&'s strata_spec::Rack>,
    pub machines: Vec<&'s Located<strata_spec::Machine>>,
    pub vms: Vec<&'s Located<strata_spec::Vm>>,
}

/// Sites by name.
pub(crate) type Sites<'s> = BTreeMap<&'s str, SiteInput<'s>>;

fn site_names<'s>(inputs: &Sites<'s>) -> Vec<&'s str> {
    inputs.keys().copied().collect()
}

/// The hardware profiles by name; duplicates, NUMA lists and bond members checked.
pub(crate) fn index_profiles<'s>(spec: &'s Spec, diags: &mut Vec<Diagnostic>) -> Profiles<'s> {
    let mut profiles: BTreeMap<&str, &Located<HardwareProfile>> = BTreeMap::new();
    for p in &spec.profiles {
        if let Some(first) = profiles.insert(p.name.as_str(), p) {
            diags.push(dup(
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
            diags.push(
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
                if !p.nics.iter().any(|n| n.name == **m) {
                    diags.push(
                        Diagnostic::new(
                            codes::S0208,
                            format!("bond `{}` of profile `{}` uses NIC `{m}`, which the profile does not have", b.name, p.name),
                        )
                        .at(m.span)
                        .expected(format!("one of the profile's NICs: {}", p.nics.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")))
                        .help("fix the bond member or add the NIC to `nics`"),
                    );
                }
            }
        }
    }
    profiles
}

/// Every site with its effective blueprint and racks (machines and VMs come later).
pub(crate) fn resolve_sites<'s>(
    spec: &'s Spec,
    bp: &Located<Blueprint>,
    diags: &mut Vec<Diagnostic>,
) -> Sites<'s> {
    // Sites, racks and effective blueprints.
    let mut site_index: BTreeMap<&str, &Located<strata_spec::Site>> = BTreeMap::new();
    for s in &spec.sites {
        if let Some(first) = site_index.insert(s.name.as_str(), s) {
            diags.push(dup("site", s.name.as_str(), s.name.span, first.name.span));
        }
    }
    let mut inputs: BTreeMap<&str, SiteInput<'_>> = BTreeMap::new();
    for (name, s) in &site_index {
        let eff = overrides::apply(bp, &s.overrides);
        diags.extend(eff.diagnostics);
        check_fabric_ranges(&eff.blueprint.fabric, s.name.span, diags);
        let mut racks: Vec<&strata_spec::Rack> = Vec::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for r in &s.racks {
            if let Some(first) = seen.insert(r.name.as_str(), r.name.span) {
                diags.push(dup("rack", r.name.as_str(), r.name.span, first));
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
                diags.push(unknown_ref(
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
    inputs
}

/// Each machine to its site, once its rack, profile and cluster resolve.
pub(crate) fn assign_machines<'s>(
    spec: &'s Spec,
    profiles: &Profiles<'_>,
    inputs: &mut Sites<'s>,
    diags: &mut Vec<Diagnostic>,
) {
    let site_names = site_names(inputs);
    let mut serials: HashMap<&str, Span> = HashMap::with_capacity(spec.machines.len());
    for m in &spec.machines {
        if let Some(first) = serials.insert(m.serial.as_str(), m.serial.span) {
            diags.push(dup(
                "machine serial",
                m.serial.as_str(),
                m.serial.span,
                first,
            ));
            continue;
        }
        let Some(input) = inputs.get_mut(m.site.as_str()) else {
            diags.push(unknown_ref(
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
            diags.push(
                unknown_ref("rack", m.rack.as_str(), m.rack.span, &racks).with_code(
                    codes::S0203,
                    format!("site `{}` has no rack `{}`", m.site, m.rack),
                ),
            );
            ok = false;
        }
        if !profiles.contains_key(m.profile.as_str()) {
            let names: Vec<&str> = profiles.keys().copied().collect();
            diags.push(
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
                diags.push(
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
                diags.push(unknown_ref("Proxmox cluster", c.as_str(), c.span, &names));
            }
        }
        if ok {
            input.machines.push(m);
        }
    }
}

/// Machines fit their racks and do not share rack units.
pub(crate) fn check_rack_room(
    inputs: &Sites<'_>,
    profiles: &Profiles<'_>,
    diags: &mut Vec<Diagnostic>,
) {
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
                    diags.push(
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
                    diags.push(
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
}

/// Each VM to its site, once its cluster, and storage resolve; VM names
/// unique per site.
pub(crate) fn assign_vms<'s>(spec: &'s Spec, inputs: &mut Sites<'s>, diags: &mut Vec<Diagnostic>) {
    let site_names = site_names(inputs);
    // VMs.
    for v in &spec.vms {
        let Some(input) = inputs.get_mut(v.site.as_str()) else {
            diags.push(unknown_ref(
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
                    diags.push(unknown_ref("Proxmox cluster", c.as_str(), c.span, &names));
                    None
                }),
            None => clusters.first().or_else(|| {
                diags.push(
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
            diags.push(unknown_ref("storage pool", s.as_str(), s.span, &names));
            continue;
        }
        input.vms.push(v);
    }
    // VM names per site.
    for input in inputs.values() {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for v in &input.vms {
            if let Some(first) = seen.insert(v.name.as_str(), v.name.span) {
                diags.push(dup("VM", v.name.as_str(), v.name.span, first));
            }
        }
    }
}

/// Tenant names (unique, short enough for a VRF device) and their networks' names.
pub(crate) fn check_tenants(spec: &Spec, diags: &mut Vec<Diagnostic>) {
    let mut tenant_names: HashMap<&str, Span> = HashMap::new();
    for t in &spec.tenants {
        if let Some(first) = tenant_names.insert(t.name.as_str(), t.name.span) {
            diags.push(dup("tenant", t.name.as_str(), t.name.span, first));
        }
        if t.name.as_str().len() > 15 {
            diags.push(
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
                diags.push(dup("tenant network", n.name.as_str(), n.name.span, first));
            }
        }
    }
}

/// Teams name tenants and GPU flavors that exist.
pub(crate) fn check_teams(spec: &Spec, bp: &Blueprint, diags: &mut Vec<Diagnostic>) {
    let tenants: Vec<&str> = spec.tenants.iter().map(|t| t.name.as_str()).collect();
    let gpu_flavors: Vec<&str> = bp
        .openstack
        .gpu_flavors
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    for team in &spec.teams {
        for t in &team.tenants {
            if !tenants.contains(&t.as_str()) {
                diags.push(unknown_ref("tenant", t.as_str(), t.span, &tenants));
            }
        }
        for f in &team.gpu_flavors {
            if !gpu_flavors.contains(&f.as_str()) {
                diags.push(unknown_ref("GPU flavor", f.as_str(), f.span, &gpu_flavors));
            }
        }
    }
}

/// Interconnects join two different sites that have border leaves.
pub(crate) fn check_interconnects(spec: &Spec, inputs: &Sites<'_>, diags: &mut Vec<Diagnostic>) {
    let site_names = site_names(inputs);
    for ic in &spec.interconnects {
        for end in [&ic.a, &ic.b] {
            match inputs.get(end.site.as_str()) {
                None => diags.push(unknown_ref(
                    "site",
                    end.site.as_str(),
                    end.site.span,
                    &site_names,
                )),
                Some(i) if *i.bp.fabric.border_leaves == 0 => diags.push(
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
            diags.push(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::testing::{SMALL, small_with, spec};

    fn codes_of(diags: &[Diagnostic]) -> Vec<&str> {
        diags.iter().map(|d| d.code.as_str()).collect()
    }

    /// Run resolution up to the machines and VMs; return the diagnostics.
    fn resolve(s: &Spec) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        let profiles = index_profiles(s, &mut diags);
        let bp = s.blueprint.as_ref().expect("blueprint");
        let mut sites = resolve_sites(s, bp, &mut diags);
        assign_machines(s, &profiles, &mut sites, &mut diags);
        check_rack_room(&sites, &profiles, &mut diags);
        assign_vms(s, &mut sites, &mut diags);
        check_tenants(s, &mut diags);
        check_interconnects(s, &sites, &mut diags);
        diags
    }

    #[test]
    fn a_valid_spec_resolves_every_machine_and_vm() {
        let s = spec(SMALL);
        let mut diags = Vec::new();
        let profiles = index_profiles(&s, &mut diags);
        let bp = s.blueprint.as_ref().expect("blueprint");
        let mut sites = resolve_sites(&s, bp, &mut diags);
        assign_machines(&s, &profiles, &mut sites, &mut diags);
        assign_vms(&s, &mut sites, &mut diags);
        assert!(diags.is_empty(), "{diags:#?}");
        let fra1 = &sites["fra1"];
        assert_eq!(fra1.machines.len(), 3);
        assert_eq!(fra1.vms.len(), 1);
        let racks: Vec<&str> = fra1.racks.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(racks, ["r01", "r02"]);
    }

    #[test]
    fn a_bond_member_must_be_a_nic_of_the_profile() {
        let s = small_with("members: [eth0, eth1]", "members: [eth0, eth9]");
        assert_eq!(codes_of(&resolve(&s)), ["S0208"]);
    }

    #[test]
    fn a_machine_in_an_unknown_rack_is_reported_and_left_out() {
        let s = small_with("rack: r02, slot: 1", "rack: r09, slot: 1");
        let mut diags = Vec::new();
        let profiles = index_profiles(&s, &mut diags);
        let bp = s.blueprint.as_ref().expect("blueprint");
        let mut sites = resolve_sites(&s, bp, &mut diags);
        assign_machines(&s, &profiles, &mut sites, &mut diags);
        assert_eq!(codes_of(&diags), ["S0203"]);
        assert_eq!(sites["fra1"].machines.len(), 2);
    }

    #[test]
    fn machines_may_not_share_rack_units() {
        let s = small_with("rack: r01, slot: 2", "rack: r01, slot: 1");
        assert_eq!(codes_of(&resolve(&s)), ["S0205"]);
    }

    #[test]
    fn a_vm_on_an_unknown_storage_pool_is_reported() {
        let s = small_with(
            "disk_gb: 8, networks",
            "disk_gb: 8, storage: nope, networks",
        );
        assert_eq!(codes_of(&resolve(&s)), ["S0208"]);
    }

    #[test]
    fn tenant_names_become_vrf_devices() {
        let s = small_with("  - name: t\n", "  - name: a-very-long-tenant\n");
        assert_eq!(codes_of(&resolve(&s)), ["S0112"]);
    }

    #[test]
    fn an_interconnect_joins_two_sites() {
        let s = spec(&format!(
            "{SMALL}interconnects:\n  - {{ name: loop, a: {{ site: fra1 }}, b: {{ site: fra1 }} }}\n"
        ));
        assert_eq!(codes_of(&resolve(&s)), ["S0208"]);
        let s = spec(&format!(
            "{SMALL}interconnects:\n  - {{ name: x, a: {{ site: fra1 }}, b: {{ site: ams9 }} }}\n"
        ));
        assert_eq!(codes_of(&resolve(&s)), ["S0202"]);
    }
}
