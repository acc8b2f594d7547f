//! The bare-metal machines of one DC: hostnames, addresses, devices, BMCs.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use strata_spec::naming::{Var, Vars};
use strata_spec::{InfraVlan, Install, MachineRole};

use super::super::ledger::Ledger;
use super::super::resolve::{Profiles, SiteInput};
use super::super::settings::Names;
use super::hosts::{Addressing, host_interfaces};
use crate::alloc::Space;
use crate::bootstrap;
use crate::model::*;

/// Every machine of the DC, sorted by hostname.
pub(crate) fn build_machines(
    names: &Names,
    domain: &str,
    profiles: &Profiles<'_>,
    input: &SiteInput<'_>,
    addressing: &Addressing,
    l: &mut Ledger<'_>,
) -> Vec<Machine> {
    let site = input.name;
    let bp = &input.bp;
    let first_cluster = bp.proxmox.clusters.first();
    let index_of = machine_indices(names, input, l);
    let az_of = |rack: &str| {
        input
            .racks
            .iter()
            .find(|r| r.name.as_str() == rack)
            .and_then(|r| r.az.as_ref().map(|a| a.to_string()))
    };
    let mut machines: Vec<Machine> = Vec::with_capacity(input.machines.len());
    for m in &input.machines {
        let profile = profiles.get(m.profile.as_str());
        let hostname = names.machine.expand(&Vars {
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
        let mut interfaces =
            host_interfaces(addressing, bp, &key, bp.host_networks.for_role(*m.role));
        for i in &mut interfaces {
            i.device = match (*m.role, &uplink) {
                (MachineRole::Proxmox, _) => format!("{PROXMOX_BRIDGE}.{}", i.vid),
                (_, Some(u)) if i.vlan == NATIVE_VLAN => u.clone(),
                (_, Some(u)) => format!("{u}.{}", i.vid),
                (_, None) => format!("vlan{}", i.vid),
            };
        }
        let bmc_addr = addressing
            .addr_of
            .get(&(format!("bmc:{}", m.serial), InfraVlan::Bmc))
            .copied()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        machines.push(Machine {
            serial: m.serial.to_string(),
            fqdn: format!("{hostname}.{site}.{}", domain),
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
            running: m.running.as_ref().is_some_and(|r| **r)
                || bootstrap::install_of(bp, *m.role) == Install::Preinstalled,
            image: bootstrap::image_of(bp, *m.role),
            bmc: Bmc {
                address: bmc_addr,
                mac: m.bmc.mac.as_ref().map(|x| x.to_string()),
                pinned: m.bmc.address.is_some(),
                driver: m.bmc.driver,
                username: m.bmc.username.clone(),
                credential: m.bmc.credential.value.clone(),
            },
            pxe_mac: m.pxe_mac.as_ref().map(|x| x.to_string()),
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

    machines
}

/// Each machine's `{index}`: its position by slot among the machines of its rack and
/// role. When the naming template uses `{index}` the index is part of the hostname,
/// so it is recorded in the lock (`machine_indices/<dc>/<rack>/<role>`): a machine
/// keeps its hostname when another one is added below it, and a new machine takes
/// its position if free, else the lowest free index.
fn machine_indices<'m>(
    names: &Names,
    input: &'m SiteInput<'_>,
    l: &mut Ledger<'_>,
) -> HashMap<&'m str, u32> {
    let mut per_group: BTreeMap<(&str, MachineRole), Vec<(u32, &str)>> = BTreeMap::new();
    for m in &input.machines {
        per_group
            .entry((m.rack.as_str(), *m.role))
            .or_default()
            .push((*m.slot, m.serial.as_str()));
    }
    let recorded = names.machine.uses(Var::Index);
    let mut index_of: HashMap<&str, u32> = HashMap::new();
    for ((rack, role), v) in per_group.iter_mut() {
        v.sort();
        if !recorded {
            for (i, (_, serial)) in v.iter().enumerate() {
                index_of.insert(serial, i as u32 + 1);
            }
            continue;
        }
        let preferred: BTreeMap<String, u128> = v
            .iter()
            .enumerate()
            .map(|(i, (_, serial))| (serial.to_string(), i as u128))
            .collect();
        let a = l.alloc_preferring(
            format!("machine_indices/{}/{rack}/{}", input.name, role.as_str()),
            "machine indices",
            Space::Numbers {
                first: 1,
                last: u32::from(u16::MAX),
            },
            v.iter().map(|(_, serial)| *serial),
            &[],
            &preferred,
            Some(input.span),
        );
        for (_, serial) in v.iter() {
            if let Some(slot) = a.get(serial) {
                index_of.insert(serial, slot as u32 + 1);
            }
        }
    }
    index_of
}
