//! What runs on the DC's hosts: hostnames checked, Proxmox clusters, the OpenStack
//! region, VIPs, tenant subnets, MAAS controllers and the hosts' DNS and NTP.

use std::collections::HashMap;
use std::net::IpAddr;

use strata_diagnostics::{Diagnostic, Span, codes};
use strata_spec::naming::Vars;
use strata_spec::values::is_dns_label;
use strata_spec::{Blueprint, InfraVlan, MachineRole, VipMembers, VmRole};

use super::super::ledger::Ledger;
use super::super::nth;
use super::super::resolve::{Profiles, SiteInput};
use super::super::settings::Names;
use super::ha;
use super::hosts::Addressing;
use crate::alloc::{Allocation, Space};
use crate::model::*;

/// Hostnames (switches, machines, VMs) are DNS labels and unique in the DC.
pub(crate) fn check_hostnames(
    names: &Names,
    input: &SiteInput<'_>,
    switches: &[Switch],
    machines: &[Machine],
    vms: &[Vm],
    l: &mut Ledger<'_>,
) {
    let site = input.name;
    let mut seen: HashMap<&str, (Option<Span>, &str)> =
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
            l.diags.push(
                Diagnostic::new(codes::S0112, format!("the naming convention gives {what} hostname `{name}`, which is not a DNS label"))
                    .at_opt(span.or(Some(input.span)))
                    .expected("1-63 characters of a-z, 0-9 and `-`")
                    .help("adjust the naming template under `organisation.naming`"),
            );
            l.fatal = true;
        }
        if let Some((first, first_what)) = seen.insert(name, (span, what)) {
            l.diags.push(hostname_collision(
                names,
                site,
                name,
                (span, what),
                (first, first_what),
                input.span,
            ));
            l.fatal = true;
        }
    }
}

/// S0204: two objects of a DC expand to one hostname. Two machines can only collide
/// through the machine template (their site, rack, role and slot differ), so a
/// written template is the cause the diagnostic points at, with both machines related.
fn hostname_collision(
    names: &Names,
    site: &str,
    name: &str,
    (span, what): (Option<Span>, &str),
    (first, first_what): (Option<Span>, &str),
    site_span: Span,
) -> Diagnostic {
    let by_template = what == "machine" && first_what == "machine";
    let mut d = match (by_template, names.machine_span) {
        (true, Some(template)) => Diagnostic::new(
            codes::S0204,
            format!("the machine naming template gives two machines of `{site}` the hostname `{name}`"),
        )
        .at(template)
        .expected("a template that tells every machine of a DC apart: `{rack}`, `{role}`, and `{slot}` or `{index}`")
        .help("add the placeholders the colliding machines differ in (the default is `{site}-{rack}-{role}{slot:02}`)"),
        _ => Diagnostic::new(
            codes::S0204,
            format!("two objects in `{site}` are both named `{name}`"),
        )
        .at_opt(span.or(Some(site_span)))
        .expected("unique hostnames in a DC")
        .help("rename one object, or change the naming template so names differ"),
    };
    for (s, label) in [(first, "the one named first"), (span, "the other one")] {
        if let Some(s) = s
            && Some(s) != d.span
        {
            d = d.related(s, format!("{label} ({name})"));
        }
    }
    d
}

/// The DC's Proxmox clusters: members, corosync node ids (recorded in the lock),
/// links and HA rules (which mark the VMs they select as HA-managed).
pub(crate) fn build_proxmox(
    site: &str,
    bp: &Blueprint,
    machines: &[Machine],
    vms: &mut [Vm],
    l: &mut Ledger<'_>,
) -> Vec<ProxmoxCluster> {
    let mut proxmox = Vec::new();
    for c in &bp.proxmox.clusters {
        let members: Vec<&Machine> = machines
            .iter()
            .filter(|m| m.cluster.as_deref() == Some(c.name.as_str()))
            .collect();
        let keys: Vec<String> = members.iter().map(|m| m.serial.clone()).collect();
        let ids = l.alloc(
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
        for link in &c.corosync_links {
            if !bp.host_networks.proxmox.contains(link) {
                l.diags.push(
                    Diagnostic::new(codes::S0208, format!("corosync link on VLAN `{}` of cluster `{}`, but Proxmox nodes are not attached to it", link.value, c.name))
                        .at_opt(link.span_opt().or(c.name.span_opt()))
                        .expected(format!("`{link}` in `host_networks.proxmox`"))
                        .help("attach the proxmox role to the VLAN, or use another corosync link"),
                );
                l.fatal = true;
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
                            .find(|i| i.vlan == **l)
                            .map(|i| i.address.addr())
                    })
                    .collect(),
            })
            .collect();
        nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        let in_racks: Vec<ha::NodeInRack<'_>> = members
            .iter()
            .map(|m| ha::NodeInRack {
                hostname: m.hostname.as_str(),
                rack: m.rack.as_str(),
            })
            .collect();
        let ha = ha::resolve_ha_rules(site, c, &in_racks, vms, &mut l.diags);
        l.fatal |= ha.unresolved;
        proxmox.push(ProxmoxCluster {
            name: c.name.to_string(),
            expected_nodes: *c.nodes,
            nodes,
            qdevice: c.qdevice,
            corosync_links: c.corosync_links.iter().map(|l| **l).collect(),
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
            ha_rules: ha.rules,
            template: c.template.clone(),
            span: c.nodes.span_opt().or(c.name.span_opt()),
        });
    }

    proxmox
}

/// The DC's OpenStack region (without its internal VIP, which comes with the VIPs).
pub(crate) fn build_openstack(
    site: &str,
    bp: &Blueprint,
    profiles: &Profiles<'_>,
    machines: &[Machine],
    vms: &[Vm],
) -> OpenStackRegion {
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
            gpu: profiles.get(m.profile.as_str()).and_then(|p| {
                p.gpu.as_ref().map(|g| GpuInfo {
                    model: g.model.clone(),
                    count: g.count,
                    vendor_id: g.vendor_id.to_ascii_lowercase(),
                    device_id: g.device_id.to_ascii_lowercase(),
                    alias: p.name.to_string(),
                })
            }),
            // GPU hosts serve the pinned, huge-page GPU flavors.
            layout: profiles
                .get(m.profile.as_str())
                .filter(|p| p.gpu.is_some())
                .and_then(|p| crate::numa::host_layout(p)),
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
            extra_specs: {
                let mut specs: Vec<(String, String)> = vec![
                    ("hw:cpu_policy".into(), "dedicated".into()),
                    ("hw:mem_page_size".into(), "large".into()),
                ];
                // Spread over as many NUMA nodes as it takes to fit its hosts' cells
                // (an 8-GPU flavor takes both nodes of a two-node host, the GPUs
                // split); one that fits no split is S0412 (strata-check).
                let nodes = profiles
                    .get(g.profile.as_str())
                    .and_then(|p| crate::numa::host_layout(p))
                    .and_then(|l| crate::numa::flavor_numa_nodes(&l, g.vcpus, g.ram_mib, *g.gpus));
                if let Some(n) = nodes.filter(|n| *n > 1) {
                    specs.push(("hw:numa_nodes".into(), n.to_string()));
                }
                specs.push(("hw:pci_numa_affinity_policy".into(), "preferred".into()));
                specs.push(("pci_passthrough:alias".into(), alias));
                specs
            },
        });
    }
    flavors.sort_by(|a, b| a.name.cmp(&b.name));

    OpenStackRegion {
        region: site.to_string(),
        kolla_release: os.kolla_release.to_string(),
        expected_control: *os.control_nodes,
        control,
        network,
        compute,
        storage,
        monitoring,
        availability_zones: azs,
        flavors,
        internal_vip: None,
    }
}

/// The DC's VIPs: addresses, VRRP router ids and member ranks (both recorded in the
/// lock), members in rank order.
pub(crate) fn build_vips(
    site: &str,
    bp: &Blueprint,
    machines: &[Machine],
    vms: &[Vm],
    control: &[String],
    addressing: &Addressing,
    l: &mut Ledger<'_>,
) -> Vec<Vip> {
    let vrid_keys: Vec<String> = bp.vips.iter().map(|v| v.name.to_string()).collect();
    let vrids = l.alloc(
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
            VipMembers::OpenstackControl => control.to_vec(),
        };
        // Priorities follow each member's rank, recorded in the lock: a new member
        // ranks after the existing ones, so adding a node never moves the master.
        let ranks = l.alloc(
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
        let mut detached: Vec<(&str, Option<Span>)> = Vec::new();
        for h in &member_hosts {
            let rank = ranks.get(h).unwrap_or(0);
            let addr = machines
                .iter()
                .map(|m| (&m.hostname, &m.interfaces))
                .chain(vms.iter().map(|x| (&x.hostname, &x.interfaces)))
                .find(|(n, _)| *n == h)
                .and_then(|(_, ifs)| {
                    ifs.iter()
                        .find(|f| f.vlan == *v.vlan)
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
                None => detached.push((
                    h.as_str(),
                    machines
                        .iter()
                        .find(|m| m.hostname == *h)
                        .and_then(|m| m.span)
                        .or_else(|| vms.iter().find(|x| x.hostname == *h).and_then(|x| x.span)),
                )),
            }
        }
        if !detached.is_empty() {
            // One diagnostic per VIP, at its VLAN; the same VIP in every DC folds into it.
            let members = match v.members {
                VipMembers::MaasRegion => "maas-region",
                VipMembers::OpenstackControl => "openstack-control",
            };
            let mut d = Diagnostic::new(
                codes::S0208,
                format!(
                    "VIP `{}` is on VLAN `{}`, but its {members} members are not attached to it",
                    v.name, v.vlan.value
                ),
            )
            .at_opt(v.vlan.span_opt().or(v.name.span_opt()))
            .expected(format!("a VLAN every {members} member is attached to"))
            .help("move the VIP to a VLAN its members share, or attach the members to this one");
            for (h, span) in detached {
                if let Some(s) = span {
                    d = d.related(s, format!("`{h}` has no interface on it"));
                }
            }
            l.diags.push(d);
            l.fatal = true;
        }
        // The preferred master (the highest priority) first.
        members.sort_by(|a, b| (a.0, &a.1.hostname).cmp(&(b.0, &b.1.hostname)));
        let members: Vec<VipMember> = members.into_iter().map(|(_, m)| m).collect();
        let Some(subnet) = addressing.subnets.get(&*v.vlan) else {
            continue;
        };
        let addr = addressing
            .addr_of
            .get(&(format!("vip:{}", v.name), *v.vlan))
            .copied()
            .unwrap_or(subnet.network());
        vips.push(Vip {
            name: v.name.to_string(),
            vlan: *v.vlan,
            address: addr,
            prefix_len: subnet.prefix_len(),
            vrid: vrids.get(v.name.as_str()).map(|i| i as u8 + 1).unwrap_or(0),
            port: v.port,
            members,
        });
    }
    vips.sort_by(|a, b| a.name.cmp(&b.name));
    vips
}

/// The address of the VIP whose members are the OpenStack control nodes.
pub(crate) fn internal_vip(bp: &Blueprint, vips: &[Vip]) -> Option<IpAddr> {
    vips.iter()
        .find(|v| {
            bp.vips
                .iter()
                .any(|b| b.name.as_str() == v.name && b.members == VipMembers::OpenstackControl)
        })
        .map(|v| v.address)
}

/// This DC's subnet of every tenant network.
pub(crate) fn tenant_subnets(
    site: &str,
    pools: &strata_spec::Pools,
    tenants: &[Tenant],
    tsub: &Allocation,
) -> Vec<TenantSubnet> {
    let tspace = Space::Blocks {
        net: *pools.tenant_subnets.pool,
        prefix_len: *pools.tenant_subnets.prefix_len,
    };
    let mut tenant_subnets = Vec::new();
    for t in tenants {
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

    tenant_subnets
}

/// The DC's MAAS controllers (VM hostnames), from the blueprint.
pub(crate) fn build_maas(names: &Names, site: &str, bp: &Blueprint, vms: &[Vm]) -> Maas {
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
            hostname: names.vm.expand(&Vars {
                site,
                name: &format!("maas-{}", rc.name),
                role: "maas-rack",
                ..Vars::default()
            }),
            dhcp: rc.dhcp.iter().map(|d| **d).collect(),
        })
        .collect();
    Maas {
        region_controllers: region_ctl,
        rack_controllers: rack_ctl,
        distro_series: bp.maas.distro_series.clone(),
    }
}

/// The keepalived priority of the member of 0-based rank `rank`: 150, 140, ... down to 50.
fn vrrp_priority(rank: u128) -> u8 {
    150u8.saturating_sub((10 * rank.min(10)) as u8)
}

/// DNS and NTP for a DC's hosts, from its MAAS controllers' management addresses.
pub(crate) fn host_services(
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
