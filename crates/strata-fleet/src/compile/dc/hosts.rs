//! The hosts of one DC (machines, the blueprint's MAAS controller VMs, declared VMs)
//! and their addresses on the infrastructure VLANs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use strata_diagnostics::{Diagnostic, codes};
use strata_spec::naming::Vars;
use strata_spec::{Blueprint, InfraVlan};

use super::super::ledger::{Ledger, PinSpans};
use super::super::nth;
use super::super::resolve::SiteInput;
use super::super::settings::Names;
use crate::alloc::Space;
use crate::model::*;

/// A host (machine or VM) before addressing: its allocation key and its VLANs.
pub(crate) struct HostPlan {
    pub key: String,
    pub vlans: Vec<InfraVlan>,
}

/// A VM the blueprint asks for (a MAAS region or rack controller).
pub(crate) struct MaasVm {
    pub name: String,
    pub kind: VmKind,
    pub vlans: Vec<InfraVlan>,
}

/// Addresses of every host, VIP and BMC, and the DC's VLANs.
pub(crate) struct Addressing {
    /// The DC's infrastructure VLAN subnets.
    pub subnets: BTreeMap<InfraVlan, IpNet>,
    /// `(key, VLAN)` -> address; keys are `m:<serial>`, `vm:<name>`, `bmc:<serial>`,
    /// `vip:<name>`.
    pub addr_of: HashMap<(String, InfraVlan), IpAddr>,
    pub vlans: Vec<Vlan>,
}

/// Every host of the DC with the VLANs it is attached to, and the MAAS controller
/// VMs; `None` when the controllers have no cluster to run on.
pub(crate) fn plan_hosts(
    input: &SiteInput<'_>,
    l: &mut Ledger<'_>,
) -> Option<(Vec<HostPlan>, Vec<MaasVm>)> {
    let site = input.name;
    let bp = &input.bp;
    let first_cluster = bp.proxmox.clusters.first();
    let mut hosts: Vec<HostPlan> = Vec::new();
    for m in &input.machines {
        hosts.push(HostPlan {
            key: format!("m:{}", m.serial),
            vlans: bp.host_networks.for_role(*m.role).to_vec(),
        });
    }
    let mut maas_vms: Vec<MaasVm> = Vec::new();
    if *bp.maas.region_controllers > 0 || !bp.maas.rack_controllers.is_empty() {
        if first_cluster.is_none() {
            l.diags.push(
                Diagnostic::new(
                    codes::S0208,
                    format!("MAAS controllers of `{site}` need a Proxmox cluster to run on"),
                )
                .at(input.span)
                .expected("a cluster under `blueprint.proxmox.clusters`")
                .help("declare a Proxmox cluster in the blueprint"),
            );
            l.fatal = true;
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
            l.diags.push(
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
            l.fatal = true;
        }
    }

    Some((hosts, maas_vms))
}

/// Where each pinned BMC address of the DC was written, by pool and key.
pub(crate) fn bmc_pin_spans(input: &SiteInput<'_>) -> PinSpans {
    input
        .machines
        .iter()
        .filter_map(|m| {
            let a = m.bmc.address.as_ref()?;
            let pool = format!("addresses/{}/bmc", input.name);
            Some(((pool, format!("bmc:{}", m.serial)), a.span))
        })
        .collect()
}

/// An address per host per VLAN (BMCs and VIPs included) from the VLAN subnets, and
/// the DC's VLANs with their DHCP servers.
pub(crate) fn address_hosts(
    names: &Names,
    input: &SiteInput<'_>,
    subnets: &BTreeMap<InfraVlan, IpNet>,
    hosts: &[HostPlan],
    infra_vnis: &[InfraVni],
    pools: &strata_spec::Pools,
    l: &mut Ledger<'_>,
) -> Addressing {
    let site = input.name;
    let bp = &input.bp;
    let mut addr_of: HashMap<(String, InfraVlan), IpAddr> = HashMap::with_capacity(hosts.len() * 3);
    let mut vlans_out = Vec::new();
    let l2_of = |r: InfraVlan| {
        infra_vnis
            .iter()
            .find(|v| v.vlan == r)
            .map(|v| v.vni)
            .unwrap_or(0)
    };
    // DHCP: the first rack controller listing a VLAN is primary, the second secondary.
    let mut dhcp: BTreeMap<InfraVlan, Vec<String>> = BTreeMap::new();
    for rc in &bp.maas.rack_controllers {
        for d in &rc.dhcp {
            let host = names.vm.expand(&Vars {
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
                            l.diags.push(
                                Diagnostic::new(codes::S0310, format!("BMC address {} of `{}` is not a host address of the BMC subnet {subnet}", a.value, m.serial))
                                    .at(a.span)
                                    .expected(format!("an address in {subnet} other than the network, gateway and broadcast"))
                                    .help("fix the address, or remove it to have one allocated"),
                            );
                            l.fatal = true;
                        }
                    },
                    None => bmc_keys.push(key),
                }
            }
        }
        let vip_keys: Vec<String> = bp
            .vips
            .iter()
            .filter(|v| *v.vlan == role)
            .map(|v| format!("vip:{}", v.name))
            .collect();
        keys.extend(bmc_keys.iter().map(String::as_str));
        keys.extend(vip_keys.iter().map(String::as_str));
        let a = l.alloc(
            format!("addresses/{site}/{role}"),
            &format!("{role} addresses"),
            space,
            keys.iter().copied(),
            &pins,
            Some(pools.vlan_subnets.get(role).span),
        );
        // Pinned BMC addresses must not collide.
        let pin_span = |key: &str| {
            input
                .machines
                .iter()
                .find(|m| key.strip_prefix("bmc:") == Some(m.serial.as_str()))
                .and_then(|m| m.bmc.address.as_ref())
                .map(|a| a.span)
        };
        let mut seen: HashMap<u128, &str> = HashMap::new();
        for (k, s) in &pins {
            if let Some(other) = seen.insert(*s, k) {
                let mut d = Diagnostic::new(
                    codes::S0310,
                    format!(
                        "`{k}` and `{other}` pin the same BMC address {}",
                        space.addr(*s)
                    ),
                )
                .at(pin_span(k).unwrap_or(input.span))
                .expected("distinct BMC addresses")
                .help("fix one of the two pinned addresses");
                if let Some(o) = pin_span(other) {
                    d = d.related(o, format!("`{other}` pins it"));
                }
                l.diags.push(d);
                l.fatal = true;
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
            native: role == NATIVE_VLAN,
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
    Addressing {
        subnets: subnets.clone(),
        addr_of,
        vlans: vlans_out,
    }
}

/// The interfaces of host `key` on `vlans` (those it has an address on), without
/// device names.
pub(crate) fn host_interfaces(
    addressing: &Addressing,
    bp: &Blueprint,
    key: &str,
    vlans: &[InfraVlan],
) -> Vec<HostInterface> {
    let (addr_of, subnets) = (&addressing.addr_of, &addressing.subnets);
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
}
