//! The VMs of one DC: the blueprint's MAAS controllers and the declared VMs.

use std::collections::{BTreeMap, HashMap};

use strata_spec::naming::{Var, Vars};
use strata_spec::{InfraVlan, Located, VmRole};

use super::super::ledger::Ledger;
use super::super::resolve::SiteInput;
use super::super::settings::Names;
use super::hosts::{Addressing, MaasVm, host_interfaces};
use crate::alloc::Space;
use crate::model::*;

/// Every VM of the DC, sorted by hostname.
pub(crate) fn build_vms(
    names: &Names,
    domain: &str,
    input: &SiteInput<'_>,
    maas_vms: &[MaasVm],
    addressing: &Addressing,
    l: &mut Ledger<'_>,
) -> Vec<Vm> {
    let site = input.name;
    let bp = &input.bp;
    let first_cluster = bp.proxmox.clusters.first();
    let mut vms: Vec<Vm> = Vec::with_capacity(maas_vms.len() + input.vms.len());
    if let Some(c) = first_cluster {
        for v in maas_vms {
            let (cores, mem, disk, role) = match v.kind {
                VmKind::MaasRegion => (4, 8192, 100, "maas-region"),
                _ => (2, 4096, 60, "maas-rack"),
            };
            let hostname = names.vm.expand(&Vars {
                site,
                name: &v.name,
                role,
                ..Vars::default()
            });
            vms.push(Vm {
                name: v.name.clone(),
                fqdn: format!("{hostname}.{site}.{}", domain),
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
                storage_span: None,
                ha: false,
                interfaces: vm_devices(host_interfaces(
                    addressing,
                    bp,
                    &format!("vm:{}", v.name),
                    &v.vlans,
                )),
                tags: vec!["maas".into()],
                span: None,
            });
        }
    }
    let index_of = vm_indices(names, input, l);
    let mut declared: Vec<&&Located<strata_spec::Vm>> = input.vms.iter().collect();
    declared.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    for v in declared {
        let idx = index_of.get(v.name.as_str()).copied().unwrap_or(1);
        let hostname = names.vm.expand(&Vars {
            site,
            name: v.name.as_str(),
            role: v.role.as_str(),
            index: idx,
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
            fqdn: format!("{hostname}.{site}.{}", domain),
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
            storage_span: v.storage.as_ref().map(|s| s.span),
            ha: v.ha,
            interfaces: vm_devices(host_interfaces(
                addressing,
                bp,
                &format!("vm:{}", v.name),
                &vl,
            )),
            tags: v.tags.clone(),
            span: Some(v.span),
        });
    }
    vms.sort_by(|a, b| a.hostname.cmp(&b.hostname));

    vms
}

/// Name a VM's NICs `eth0`, `eth1`, ... in interface order.
fn vm_devices(mut ifs: Vec<HostInterface>) -> Vec<HostInterface> {
    for (n, i) in ifs.iter_mut().enumerate() {
        i.device = format!("eth{n}");
    }
    ifs
}

/// Each declared VM's `{index}`: its position by name among the DC's VMs of its role.
/// When the naming template uses `{index}` it is recorded in the lock
/// (`vm_indices/<dc>/<role>`), so that adding a VM never renames another.
fn vm_indices<'v>(
    names: &Names,
    input: &'v SiteInput<'_>,
    l: &mut Ledger<'_>,
) -> HashMap<&'v str, u32> {
    let mut per_role: BTreeMap<VmRole, Vec<&str>> = BTreeMap::new();
    for v in &input.vms {
        per_role.entry(*v.role).or_default().push(v.name.as_str());
    }
    let recorded = names.vm.uses(Var::Index);
    let mut index_of: HashMap<&str, u32> = HashMap::new();
    for (role, vms) in per_role.iter_mut() {
        vms.sort_unstable();
        if !recorded {
            for (i, name) in vms.iter().enumerate() {
                index_of.insert(name, i as u32 + 1);
            }
            continue;
        }
        let preferred: BTreeMap<String, u128> = vms
            .iter()
            .enumerate()
            .map(|(i, name)| (name.to_string(), i as u128))
            .collect();
        let a = l.alloc_preferring(
            format!("vm_indices/{}/{}", input.name, role.as_str()),
            "VM indices",
            Space::Numbers {
                first: 1,
                last: u32::from(u16::MAX),
            },
            vms.iter().copied(),
            &[],
            &preferred,
            Some(input.span),
        );
        for name in vms.iter() {
            if let Some(slot) = a.get(name) {
                index_of.insert(name, slot as u32 + 1);
            }
        }
    }
    index_of
}
