//! Desired state: what every platform of every DC should contain, from the compiled
//! fleet. Pure: the fleet (and its rendered cloud-init) in, resources out.

use std::collections::BTreeMap;

use base64::Engine;
use strata_fleet::{Dc, Fleet, NATIVE_VLAN, VmKind};
use strata_spec::{BmcDriver, InfraVlan, MachineRole, SecretRef};

use crate::fields::{
    AddressRange, DnsDomainFields, DnsRecordFields, FlavorAccessFields, FlavorFields, HaRuleFields,
    HaRuleSpec, MaasSubnetFields, MaasSubnetSpec, MaasTagFields, MachineBond, MachineBridge,
    MachineFields, MachineLink, MachineNetwork, MachineRaid, MachineSpec, MachineStorage,
    NetworkFields, NetworkRbacFields, NodeDnsFields, ProjectFields, ProjectLimitFields,
    QuotaFields, RegisteredLimitFields, RoleAssignmentFields, SubnetFields, VlanFields, VlanSpec,
    VmFields, VmSpec,
};
use crate::model::{Kind, Resource, ResourceId, ResourceSet, owner_tag};

/// The name of the MAAS fabric earlier strata versions created in each DC (strata
/// now attaches the design to the fabrics MAAS's controllers created; an owned
/// fabric of this name is still recognised, so that it can be removed).
pub const FABRIC: &str = "strata";
/// The Neutron physical network tenant VLANs ride on: the one whose VLAN range the
/// rendered `ml2_conf.ini` declares (`strata_render::kolla::PHYSNET`).
pub const PHYSNET: &str = strata_render::kolla::PHYSNET;
/// The Keystone role team members get on their team's project: `member`, one of the
/// three roles `keystone-manage bootstrap` creates (admin, member, reader) and the one
/// Nova's and Neutron's default policies give project users.
pub const MEMBER_ROLE: &str = "member";
/// The Neutron RBAC action that lets a project use (attach ports to) a network.
pub const ACCESS_AS_SHARED: &str = "access_as_shared";

/// Everything the fleet wants, across all DCs and platforms; an error when a
/// machine's user-data (cloud-init) cannot be rendered, so that a template bug never
/// reaches MAAS.
pub fn desired(fleet: &Fleet) -> Result<ResourceSet, strata_render::RenderError> {
    let owner = owner_tag(&fleet.organisation.fleet_id);
    let cloud_init: BTreeMap<String, String> = strata_render::cloud_init::render(fleet)?
        .into_iter()
        .map(|f| (f.path, f.content))
        .collect();
    let mut out = ResourceSet::default();
    for dc in &fleet.dcs {
        maas(fleet, dc, &owner, &cloud_init, &mut out);
        proxmox(fleet, dc, &owner, &mut out);
        openstack(fleet, dc, &owner, &mut out);
    }
    Ok(out)
}

fn maas(
    fleet: &Fleet,
    dc: &Dc,
    owner: &str,
    cloud_init: &BTreeMap<String, String>,
    out: &mut ResourceSet,
) {
    let d = &dc.name;
    // MAAS's VLANs start as what its controllers' registration made (canonical/maas
    // `metadataserver/builtin_scripts/network.py`, `guess_vlan_for_interface`): a
    // controller VM has one virtio NIC per VLAN, untagged inside the guest, so each
    // VLAN a controller sits on is at first the untagged VLAN of a fabric MAAS made
    // for that NIC's subnet. The design puts every VLAN but the native one on the
    // fabric of the hosts' native VLAN, tagged with its VID (where the hosts' bonds
    // carry it, and where MAAS links a machine's VLAN interface only): the VLAN step
    // makes it there and moves the controllers' NICs onto it, which moves their
    // subnets along and removes the emptied fabric (MAAS's `interface_vlan_update`).
    let home = dc.vlan(NATIVE_VLAN);
    let home_cidr = home.map(|v| v.subnet.to_string()).unwrap_or_default();
    // A tagged VLAN is made on the fabric that carries the native VLAN's subnet, so
    // it waits for that subnet.
    let home_id = home.map(|v| ResourceId::new(d, Kind::MaasSubnet, v.subnet.to_string()));
    for v in &dc.vlans {
        let maas_vid = if v.role == NATIVE_VLAN { 0 } else { v.vid };
        let vlan = ResourceId::new(d, Kind::Vlan, v.role.as_str());
        let mut r = Resource::with_fields(
            vlan.clone(),
            &VlanFields {
                vid: maas_vid,
                name: v.role.as_str().to_string(),
                mtu: v.mtu,
                dhcp_on: v.dhcp.is_some(),
                primary_rack: v.dhcp.as_ref().map(|x| x.primary.clone()),
                secondary_rack: v.dhcp.as_ref().and_then(|x| x.secondary.clone()),
            },
        )
        .with_spec(&VlanSpec {
            cidr: v.subnet.to_string(),
            home: NATIVE_VLAN.as_str().to_string(),
            home_cidr: home_cidr.clone(),
        });
        if maas_vid != 0
            && let Some(h) = home_id.as_ref().filter(|h| h.name != v.subnet.to_string())
        {
            r.depends_on.push(h.clone());
        }
        out.insert(r);
        let mut s = Resource::with_fields(
            ResourceId::new(d, Kind::MaasSubnet, v.subnet.to_string()),
            &MaasSubnetFields {
                cidr: v.subnet.to_string(),
                name: format!("{d}-{}", v.role),
                vid: maas_vid,
                // Only a routed VLAN has a gateway (see `strata_fleet::ROUTED_VLAN`).
                gateway_ip: v.routed().then(|| v.gateway.to_string()),
                managed: true,
            },
        )
        .with_spec(&MaasSubnetSpec {
            dynamic_range: if v.dhcp.is_some() {
                dynamic_range(dc, v)
            } else {
                None
            },
            vlan: Some(v.role.as_str().to_string()),
        });
        s.depends_on.push(vlan);
        out.insert(s);
    }
    // DNS: the DC's domain (every FQDN of the DC lies in it) is a MAAS domain, and the
    // name Kolla's endpoints use resolves to the API VIP there.
    let domain = ResourceId::new(d, Kind::DnsDomain, dc.host_services.search_domain.clone());
    out.insert(Resource::with_fields(
        domain.clone(),
        &DnsDomainFields {
            authoritative: true,
        },
    ));
    if let Some((fqdn, address)) = strata_render::kolla::api_endpoint(fleet, dc) {
        let mut r = Resource::with_fields(
            ResourceId::new(d, Kind::DnsRecord, fqdn.clone()),
            &DnsRecordFields {
                fqdn,
                ip_addresses: vec![address.to_string()],
            },
        );
        r.depends_on.push(domain);
        out.insert(r);
    }
    let provisioning = dc
        .vlan(InfraVlan::Provisioning)
        .map(|v| ResourceId::new(d, Kind::MaasSubnet, v.subnet.to_string()));
    // Kernel options: a GPU host needs IOMMU in pass-through mode and its 1 GiB pages
    // on the kernel command line before nova-compute starts. MAAS puts a tag's
    // `kernel_opts` on the command line of every machine it deploys with that tag, so
    // each GPU hardware profile gets one tag, `kernel-<profile>`.
    let mut kernel_tag: BTreeMap<&str, ResourceId> = BTreeMap::new();
    for c in &dc.openstack.compute {
        let Some(layout) = &c.layout else { continue };
        let name = kernel_tag_name(&c.profile);
        let id = ResourceId::new(d, Kind::MaasTag, name.clone());
        if out.get(&id).is_none() {
            out.insert(Resource::with_fields(
                id.clone(),
                &MaasTagFields {
                    comment: kernel_tag_comment(&c.profile, owner),
                    kernel_opts: layout.kernel_opts.clone(),
                },
            ));
        }
        kernel_tag.insert(c.hostname.as_str(), id);
    }
    for m in &dc.machines {
        let user_data = role_file(m.role)
            .and_then(|role| cloud_init.get(&format!("{d}/cloud-init/{role}.yaml")));
        let kernel = kernel_tag.get(m.hostname.as_str());
        let network = machine_network(fleet, dc, m);
        let storage = machine_storage(fleet, m);
        let mut tags = vec![owner.to_string(), format!("role-{}", m.role.as_str())];
        tags.extend(kernel.map(|k| k.name.clone()));
        tags.sort();
        let mut r = Resource::with_fields(
            ResourceId::new(d, Kind::Machine, m.serial.clone()),
            &MachineFields {
                hostname: m.hostname.clone(),
                power_type: match m.bmc.driver {
                    BmcDriver::Ipmi => "ipmi",
                    BmcDriver::Redfish => "redfish",
                }
                .to_string(),
                power_address: Some(m.bmc.address.to_string()),
                power_user: Some(m.bmc.username.clone()),
                tags,
                status: "Deployed".to_string(),
                distro_series: if m.running {
                    String::new()
                } else {
                    release_of(&m.image)
                },
                zone: m.az.clone().unwrap_or_else(|| "default".to_string()),
                network: network.as_ref().map(MachineNetwork::summary),
                storage: storage.as_ref().map(MachineStorage::summary),
            },
        )
        .with_spec(&MachineSpec {
            pxe_mac: m.pxe_mac.clone(),
            power_pass: Some(match &m.bmc.credential {
                SecretRef::Env(v) => format!("env:{v}"),
                SecretRef::File(p) => format!("file:{p}"),
            }),
            user_data: user_data.map(|ud| base64::engine::general_purpose::STANDARD.encode(ud)),
            role: Some(m.role.as_str().to_string()),
            deployed: m.running,
            image: (!m.running).then(|| m.image.clone()),
            bmc_mac: m.bmc.mac.clone(),
            network: network.clone(),
            storage,
            hardware: fleet
                .profile(&m.profile)
                .filter(|_| !m.running)
                .map(crate::hardware::HardwareExpectation::of),
        });
        r.sensitive.insert("power_pass".into());
        // Every subnet the machine is linked to must exist in MAAS first.
        let linked = network.iter().flat_map(|n| &n.links);
        for i in linked.filter_map(|l| {
            m.interfaces
                .iter()
                .find(|i| i.address.to_string() == l.address)
        }) {
            if let Some(v) = dc.vlan(i.vlan) {
                let id = ResourceId::new(d, Kind::MaasSubnet, v.subnet.to_string());
                if !r.depends_on.contains(&id) {
                    r.depends_on.push(id);
                }
            }
        }
        r.depends_on.extend(kernel.cloned());
        if let Some(p) = &provisioning {
            r.depends_on.push(p.clone());
        }
        // The BMC address is reserved on the BMC subnet, which must exist first.
        if let Some(v) = dc
            .vlan(InfraVlan::Bmc)
            .filter(|v| m.bmc.mac.is_some() && v.subnet.contains(&m.bmc.address))
        {
            r.depends_on
                .push(ResourceId::new(d, Kind::MaasSubnet, v.subnet.to_string()));
        }
        out.insert(r);
    }
}

/// The network MAAS configures on a machine before deploying it: what its netplan
/// file says ([`strata_render::netplan::host_network`]). A Proxmox node's VLANs ride
/// its bridge (`vmbr0`, VLAN-aware in its ifupdown2 file): in MAAS a bridge on the
/// bond carries the native address, and the VLAN devices (`vmbr0.<vid>`) sit on it.
/// None for a machine that already runs (MAAS registers it deployed, with its boot NIC
/// only).
fn machine_network(fleet: &Fleet, dc: &Dc, m: &strata_fleet::Machine) -> Option<MachineNetwork> {
    if m.running {
        return None;
    }
    let mut n = strata_render::netplan::host_network(fleet, dc, m)?;
    let bridge = (m.role == MachineRole::Proxmox).then(|| {
        let br = strata_fleet::PROXMOX_BRIDGE.to_string();
        for l in &mut n.links {
            l.device = if l.native {
                br.clone()
            } else {
                format!("{br}.{}", l.vid)
            };
        }
        let parent = std::mem::replace(&mut n.uplink, br.clone());
        MachineBridge { name: br, parent }
    });
    Some(MachineNetwork {
        bridge,
        bond: n.bond.map(|b| MachineBond {
            name: b.name,
            members: b.members,
            mode: b.mode,
            lacp_rate: b.lacp_rate,
            xmit_hash_policy: b.xmit_hash_policy,
        }),
        uplink: n.uplink,
        mtu: n.uplink_mtu,
        links: n
            .links
            .into_iter()
            .map(|l| MachineLink {
                device: l.device,
                vid: l.vid,
                native: l.native,
                address: l.address,
                mtu: l.mtu,
                gateway: l.gateway,
            })
            .collect(),
    })
}

/// The storage MAAS configures on a machine before deploying it: the profile's RAID
/// arrays. None for a machine that already runs (MAAS did not install it and holds no
/// layout for it) and for a profile without arrays (MAAS's default layout stands).
fn machine_storage(fleet: &Fleet, m: &strata_fleet::Machine) -> Option<MachineStorage> {
    if m.running {
        return None;
    }
    let profile = fleet.profile(&m.profile)?;
    if profile.raid.is_empty() {
        return None;
    }
    Some(MachineStorage {
        raids: profile
            .raid
            .iter()
            .map(|a| MachineRaid {
                name: a.name.clone(),
                level: a.level.maas_name().to_string(),
                members: a.members.iter().map(|m| m.value.clone()).collect(),
                fstype: a.filesystem().map(|f| f.as_str().to_string()),
                mount: a.mount.as_ref().map(|m| m.value.clone()),
            })
            .collect(),
    })
}

/// The MAAS tag carrying the kernel options of hosts with this hardware profile.
pub fn kernel_tag_name(profile: &str) -> String {
    format!("kernel-{profile}")
}

/// A kernel-option tag's comment: what it is for, and the fleet's ownership mark
/// (MAAS tags have no other free-form field).
pub fn kernel_tag_comment(profile: &str, owner: &str) -> String {
    format!("kernel options for {profile} hosts (managed by strata: {owner})")
}

/// The DHCP range MAAS hands out while enlisting and commissioning: the top of the
/// subnet, above every address strata allocated (allocation fills from the bottom),
/// at most 256 addresses and at most half of what is free. Null when too little is
/// free (fewer than 8 addresses).
pub fn dynamic_range(dc: &Dc, v: &strata_fleet::Vlan) -> Option<AddressRange> {
    use std::net::IpAddr;
    let to_u = |a: IpAddr| -> u128 {
        match a {
            IpAddr::V4(x) => u128::from(u32::from(x)),
            IpAddr::V6(x) => u128::from(x),
        }
    };
    let from_u = |x: u128| -> IpAddr {
        match v.subnet {
            ipnet::IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(x as u32)),
            ipnet::IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(x)),
        }
    };
    let mut highest = to_u(v.gateway);
    for (_, ifs) in dc.hosts() {
        for i in ifs.iter().filter(|i| i.vlan == v.role) {
            highest = highest.max(to_u(i.address.addr()));
        }
    }
    for m in &dc.machines {
        if v.role == InfraVlan::Bmc && v.subnet.contains(&m.bmc.address) {
            highest = highest.max(to_u(m.bmc.address));
        }
    }
    for vip in dc.vips.iter().filter(|x| x.vlan == v.role) {
        highest = highest.max(to_u(vip.address));
    }
    let top = match v.subnet {
        ipnet::IpNet::V4(_) => to_u(v.subnet.broadcast()).saturating_sub(1),
        ipnet::IpNet::V6(_) => to_u(v.subnet.broadcast()),
    };
    let free = top.saturating_sub(highest);
    let size = (free / 2).min(256);
    if size < 8 {
        return None;
    }
    Some(AddressRange {
        start: from_u(top - size + 1).to_string(),
        end: from_u(top).to_string(),
    })
}

/// The release MAAS reports for an image (`custom/debian-13-pve` → `debian-13-pve`,
/// `ubuntu/noble` → `noble`; a bare series is itself).
fn release_of(image: &str) -> String {
    image
        .split_once('/')
        .map(|(_, r)| r)
        .unwrap_or(image)
        .to_string()
}

/// The cloud-init file of a machine role (Proxmox nodes get none: Proxmox VE is
/// installed on top of the deployed OS by its own procedure).
fn role_file(role: MachineRole) -> Option<&'static str> {
    match role {
        MachineRole::Proxmox => None,
        other => Some(other.as_str()),
    }
}

/// A Proxmox tag: lower case, `[a-z0-9_+.-]`.
fn pve_tag(s: &str) -> String {
    s.to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn proxmox(_fleet: &Fleet, dc: &Dc, owner: &str, out: &mut ResourceSet) {
    // Every Proxmox node resolves through the DC's resolvers, with its search domain
    // (the Proxmox API takes at most three name servers).
    let resolvers: Vec<String> = dc
        .host_services
        .resolvers
        .iter()
        .take(3)
        .map(ToString::to_string)
        .collect();
    for cluster in &dc.proxmox {
        for node in &cluster.nodes {
            out.insert(Resource::with_fields(
                ResourceId::new(&dc.name, Kind::NodeDns, node.hostname.clone()),
                &NodeDnsFields {
                    search: dc.host_services.search_domain.clone(),
                    dns: resolvers.clone(),
                },
            ));
        }
    }
    for v in &dc.vms {
        let role = match v.kind {
            VmKind::MaasRegion => "maas-region".to_string(),
            VmKind::MaasRack => "maas-rack".to_string(),
            VmKind::Declared(r) => r.as_str().to_string(),
        };
        let mut tags: Vec<String> = v.tags.iter().map(|t| pve_tag(t)).collect();
        tags.push(owner.to_string());
        tags.push(pve_tag(&role));
        tags.sort();
        tags.dedup();
        let nets: Vec<String> = v
            .interfaces
            .iter()
            .map(|i| {
                format!(
                    "virtio,bridge={},tag={}",
                    strata_fleet::PROXMOX_BRIDGE,
                    i.vid
                )
            })
            .collect();
        // Cloud-init network settings, NIC by NIC; the default route on the management NIC.
        let ipconfig: Vec<String> = v
            .interfaces
            .iter()
            .map(|i| {
                let mut s = format!("ip={}", i.address);
                if i.vlan == strata_fleet::ROUTED_VLAN {
                    s.push_str(&format!(",gw={}", i.gateway));
                }
                s
            })
            .collect();
        let nameserver = dc
            .host_services
            .resolvers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        let template = dc
            .proxmox
            .iter()
            .find(|c| c.name == v.cluster)
            .map(|c| c.template.clone())
            .unwrap_or_default();
        out.insert(
            Resource::with_fields(
                ResourceId::new(&dc.name, Kind::Vm, v.hostname.clone()),
                &VmFields {
                    cores: u64::from(v.cores),
                    memory: v.memory_mib,
                    disk_gb: v.disk_gb,
                    nets: Some(nets),
                    ipconfig: Some(ipconfig),
                    nameserver: Some(nameserver),
                    searchdomain: Some(dc.host_services.search_domain.clone()),
                    tags,
                    status: "running".to_string(),
                    ha: v.ha,
                },
            )
            .with_spec(&VmSpec {
                template: Some(template),
                storage: Some(v.storage.clone()),
                cluster: Some(v.cluster.clone()),
                node: None,
                ..VmSpec::default()
            }),
        );
    }
    for cluster in &dc.proxmox {
        for rule in &cluster.ha_rules {
            let mut r = Resource::with_fields(
                ResourceId::new(&dc.name, Kind::HaRule, rule.name.clone()),
                &HaRuleFields {
                    kind: rule.kind.as_str().to_string(),
                    affinity: rule.affinity.map(|a| a.as_str().to_string()),
                    nodes: rule.nodes.clone(),
                    strict: rule.strict,
                    failback: rule.failback,
                    vms: rule.vms.clone(),
                },
            )
            .with_spec(&HaRuleSpec {
                cluster: Some(cluster.name.clone()),
            });
            r.depends_on = rule
                .vms
                .iter()
                .map(|v| ResourceId::new(&dc.name, Kind::Vm, v.clone()))
                .collect();
            out.insert(r);
        }
    }
}

/// The value a quota gives one unified limit.
fn quota_value(q: &strata_spec::Quota, from: strata_fleet::quota::QuotaField) -> i64 {
    use strata_fleet::quota::QuotaField;
    match from {
        QuotaField::Instances => i64::from(q.instances),
        QuotaField::Cores => i64::from(q.cores),
        QuotaField::Ram => i64::try_from(q.ram_mib).unwrap_or(i64::MAX),
        QuotaField::Gpus => i64::from(q.gpus),
    }
}

fn openstack(fleet: &Fleet, dc: &Dc, owner: &str, out: &mut ResourceSet) {
    let d = &dc.name;
    let has_openstack = !(dc.openstack.control.is_empty() && dc.openstack.compute.is_empty());
    if !has_openstack {
        return;
    }
    let unified = dc.openstack.unified_limits();
    let limits = strata_fleet::quota::limit_names(&dc.openstack.gpu_classes());
    if unified {
        let defaults = &dc.blueprint.openstack.default_quota;
        for l in &limits {
            out.insert(Resource::with_fields(
                ResourceId::new(d, Kind::RegisteredLimit, l.resource.clone()),
                &RegisteredLimitFields {
                    default_limit: quota_value(defaults, l.from),
                },
            ));
        }
    }
    for t in &fleet.teams {
        let project = ResourceId::new(d, Kind::Project, t.name.clone());
        out.insert(Resource::with_fields(
            project.clone(),
            &ProjectFields {
                description: format!("team {} ({owner})", t.name),
                tags: vec![owner.to_string()],
            },
        ));
        if unified {
            // Unified limits: Nova reads the team's quota from Keystone (a quota set
            // written through Nova would be ignored: `nova/api/openstack/compute/
            // quota_sets.py` `update` drops the body under unified limits).
            for l in &limits {
                let mut r = Resource::with_fields(
                    ResourceId::new(d, Kind::ProjectLimit, format!("{}:{}", t.name, l.resource)),
                    &ProjectLimitFields {
                        project: t.name.clone(),
                        resource: l.resource.clone(),
                        limit: quota_value(&t.quota, l.from),
                    },
                );
                r.depends_on.push(project.clone());
                r.depends_on.push(ResourceId::new(
                    d,
                    Kind::RegisteredLimit,
                    l.resource.clone(),
                ));
                out.insert(r);
            }
        } else {
            // The legacy quota driver has no per-device quota: the team's `gpus` cannot
            // be set (diagnostic S0430 says so); GPU use is bounded by the private GPU
            // flavors' per-team access.
            let mut q = Resource::with_fields(
                ResourceId::new(d, Kind::Quota, t.name.clone()),
                &QuotaFields {
                    instances: i64::from(t.quota.instances),
                    cores: i64::from(t.quota.cores),
                    ram: i64::try_from(t.quota.ram_mib).unwrap_or(i64::MAX),
                },
            );
            q.depends_on.push(project.clone());
            out.insert(q);
        }
        for user in &t.members {
            let mut r = Resource::with_fields(
                ResourceId::new(d, Kind::RoleAssignment, format!("{}:{user}", t.name)),
                &RoleAssignmentFields {
                    project: t.name.clone(),
                    user: user.clone(),
                    role: MEMBER_ROLE.to_string(),
                },
            );
            r.depends_on.push(project.clone());
            out.insert(r);
        }
    }
    for f in &dc.openstack.flavors {
        let mut extra_specs: BTreeMap<String, String> = f.extra_specs.iter().cloned().collect();
        extra_specs.insert("strata:owner".into(), owner.to_string());
        // GPU flavors are private: only the teams that list them may see and boot them.
        let gpu = f.pci_alias.is_some();
        let flavor = ResourceId::new(d, Kind::Flavor, f.name.clone());
        out.insert(Resource::with_fields(
            flavor.clone(),
            &FlavorFields {
                vcpus: u64::from(f.vcpus),
                ram: f.ram_mib,
                disk: f.disk_gb,
                is_public: !gpu,
                extra_specs,
            },
        ));
        if !gpu {
            continue;
        }
        for t in fleet
            .teams
            .iter()
            .filter(|t| t.gpu_flavors.contains(&f.name))
        {
            let mut a = Resource::with_fields(
                ResourceId::new(d, Kind::FlavorAccess, format!("{}:{}", f.name, t.name)),
                &FlavorAccessFields {
                    flavor: f.name.clone(),
                    project: t.name.clone(),
                },
            );
            a.depends_on = vec![
                flavor.clone(),
                ResourceId::new(d, Kind::Project, t.name.clone()),
            ];
            out.insert(a);
        }
    }
    for t in &fleet.tenants {
        for n in &t.networks {
            let name = format!("{}-{}", t.name, n.name);
            let net = ResourceId::new(d, Kind::Network, name.clone());
            out.insert(Resource::with_fields(
                net.clone(),
                &NetworkFields {
                    provider_network_type: Some("vlan".to_string()),
                    provider_physical_network: Some(PHYSNET.to_string()),
                    provider_segmentation_id: Some(i64::from(n.vlan)),
                    shared: false,
                    tags: vec![owner.to_string()],
                },
            ));
            if let Some(s) = dc
                .tenant_subnets
                .iter()
                .find(|s| s.tenant == t.name && s.network == n.name)
            {
                let mut r = Resource::with_fields(
                    ResourceId::new(d, Kind::Subnet, name.clone()),
                    &SubnetFields {
                        network: name.clone(),
                        cidr: s.subnet.to_string(),
                        gateway_ip: Some(s.gateway.to_string()),
                        enable_dhcp: true,
                        ip_version: if s.subnet.addr().is_ipv4() { 4 } else { 6 },
                    },
                );
                r.depends_on.push(net.clone());
                out.insert(r);
            }
            // The network is the admin project's; each team that uses the tenant gets
            // it shared with its project (Neutron hides another project's network
            // that is not shared with the caller).
            for team in fleet.teams.iter().filter(|x| x.tenants.contains(&t.name)) {
                let mut r = Resource::with_fields(
                    ResourceId::new(d, Kind::NetworkRbac, format!("{name}:{}", team.name)),
                    &NetworkRbacFields {
                        network: name.clone(),
                        project: team.name.clone(),
                        action: ACCESS_AS_SHARED.to_string(),
                    },
                );
                r.depends_on = vec![
                    net.clone(),
                    ResourceId::new(d, Kind::Project, team.name.clone()),
                ];
                out.insert(r);
            }
        }
    }
}
