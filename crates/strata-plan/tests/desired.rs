//! Desired state of the example fleet.

use std::path::Path;

use strata_diagnostics::SourceMap;
use strata_plan::{
    FlavorAccessFields, FlavorFields, Kind, MachineSpec, NetworkRbacFields, NodeDnsFields,
    Platform, ResourceId, RoleAssignmentFields, VmFields, desired,
};

fn example() -> strata_fleet::Fleet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet");
    let mut sources = SourceMap::new();
    fn walk(d: &Path, s: &mut SourceMap) {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .expect("dir")
            .map(|e| e.expect("e").path())
            .collect();
        v.sort();
        for p in v {
            if p.is_dir() {
                walk(&p, s);
            } else if p.extension().is_some_and(|e| e == "yaml") {
                s.add(
                    p.display().to_string(),
                    std::fs::read_to_string(&p).expect("read"),
                );
            }
        }
    }
    walk(&dir, &mut sources);
    let loaded = strata_spec::load(&sources, &strata_spec::Limits::default());
    let lock =
        strata_fleet::Lock::parse(&std::fs::read_to_string(dir.join("fleet.lock")).expect("lock"))
            .expect("lock");
    strata_fleet::compile(&loaded.spec, &lock)
        .fleet
        .expect("fleet")
}

#[test]
fn every_dc_gets_its_maas_proxmox_and_openstack_objects() {
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    for dc in ["fra1", "ams1", "waw1"] {
        let count = |k: Kind| d.iter().filter(|r| r.id.dc == dc && r.id.kind == k).count();
        assert_eq!(count(Kind::Fabric), 0, "strata makes no fabric of its own");
        assert_eq!(count(Kind::DnsDomain), 1);
        assert_eq!(count(Kind::DnsRecord), 1);
        assert_eq!(count(Kind::Vlan), 7);
        assert_eq!(count(Kind::MaasSubnet), 7);
        assert_eq!(count(Kind::Machine), 13);
        assert_eq!(count(Kind::Vm), 11);
        // One resolver setting per Proxmox node: the DC's resolvers and search domain.
        let nodes: usize = fleet
            .dcs
            .iter()
            .filter(|d| d.name == dc)
            .flat_map(|d| &d.proxmox)
            .map(|c| c.nodes.len())
            .sum();
        assert!(nodes > 0);
        assert_eq!(count(Kind::NodeDns), nodes);
        for r in d
            .iter()
            .filter(|r| r.id.dc == dc && r.id.kind == Kind::NodeDns)
        {
            let f: NodeDnsFields = r.fields_as().expect("node-dns fields");
            assert_eq!(f.search, format!("{dc}.dc.example.net"), "{r:?}");
            assert!(!f.dns.is_empty() && f.dns.len() <= 3, "{r:?}");
        }
        assert_eq!(count(Kind::Project), 2);
        // Kolla 2026.2: team quotas are Keystone unified limits, no quota sets. One
        // registered default and one limit per team for servers, VCPU, PCPU, MEMORY_MB
        // and each GPU class of the DC.
        assert_eq!(count(Kind::Quota), 0);
        let classes = fleet
            .dcs
            .iter()
            .find(|d| d.name == dc)
            .map(|d| d.openstack.gpu_classes())
            .unwrap_or_default();
        assert_eq!(count(Kind::RegisteredLimit), 4 + classes.len());
        assert_eq!(count(Kind::ProjectLimit), 2 * (4 + classes.len()));
        for rc in &classes {
            let gpus = d
                .get(&ResourceId::new(
                    dc,
                    Kind::ProjectLimit,
                    format!("ml-research:class:{rc}"),
                ))
                .expect("ml-research's GPU limit");
            let f: strata_plan::ProjectLimitFields = gpus.fields_as().expect("limit fields");
            assert_eq!(f.limit, 16, "{gpus:?}");
            assert!(gpus.depends_on.contains(&ResourceId::new(
                dc,
                Kind::RegisteredLimit,
                format!("class:{rc}")
            )));
        }
        assert_eq!(count(Kind::Flavor), 4);
        assert_eq!(count(Kind::Network), 4);
        assert_eq!(count(Kind::Subnet), 4);
        // alice, bob (platform) and carol (ml-research) get the member role.
        assert_eq!(count(Kind::RoleAssignment), 3);
        // ml-research may boot both GPU flavors, which are private.
        assert_eq!(count(Kind::FlavorAccess), 2);
        for r in d
            .iter()
            .filter(|r| r.id.dc == dc && r.id.kind == Kind::Flavor)
        {
            let f: FlavorFields = r.fields_as().expect("flavor fields");
            let gpu = f.extra_specs.contains_key("pci_passthrough:alias");
            assert_eq!(f.is_public, !gpu, "{r:?}");
        }
        // platform uses prod's two networks, ml-research ml's two.
        assert_eq!(count(Kind::NetworkRbac), 4);
        let rbac = d
            .get(&ResourceId::new(
                dc,
                Kind::NetworkRbac,
                "ml-training:ml-research",
            ))
            .expect("ml-training shared with ml-research");
        assert!(
            rbac.depends_on
                .contains(&ResourceId::new(dc, Kind::Network, "ml-training"))
        );
        assert!(
            d.scope(dc, Platform::Proxmox)
                .filter(|r| r.id.kind == Kind::Vm)
                .all(|r| {
                    let f: VmFields = r.fields_as().expect("vm fields");
                    f.tags.iter().any(|x| x == "strata-example-prod")
                })
        );
    }
}

#[test]
fn secrets_are_references_in_spec_never_fields() {
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    for m in d.iter().filter(|r| r.id.kind == Kind::Machine) {
        assert!(!m.fields.contains_key("power_pass"));
        let spec: MachineSpec = m.spec_as().expect("machine spec");
        let p = spec.power_pass.expect("reference");
        assert!(p.starts_with("env:") || p.starts_with("file:"), "{p}");
        assert!(m.sensitive.contains("power_pass"));
    }
    // GPU flavors carry the PCI alias; every flavor carries the owner marker.
    let gpu = d
        .iter()
        .find(|r| r.id.kind == Kind::Flavor && r.id.name == "g1.h100x1")
        .expect("gpu flavor");
    let gpu: FlavorFields = gpu.fields_as().expect("flavor fields");
    assert_eq!(gpu.extra_specs["pci_passthrough:alias"], "gpu-h100:1");
    assert_eq!(gpu.extra_specs["strata:owner"], "strata-example-prod");
}

#[test]
fn dhcp_subnets_get_a_dynamic_range_above_every_allocated_address() {
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    let fra1 = fleet.dc("fra1").expect("fra1");
    let prov = fra1
        .vlan(strata_spec::InfraVlan::Provisioning)
        .expect("provisioning");
    let s = d
        .iter()
        .find(|r| r.id.kind == Kind::MaasSubnet && r.id.name == prov.subnet.to_string())
        .expect("subnet");
    let start: std::net::IpAddr = s.spec["dynamic_range"]["start"]
        .as_str()
        .expect("start")
        .parse()
        .expect("ip");
    let end: std::net::IpAddr = s.spec["dynamic_range"]["end"]
        .as_str()
        .expect("end")
        .parse()
        .expect("ip");
    assert!(prov.subnet.contains(&start) && prov.subnet.contains(&end) && start < end);
    for (_, ifs) in fra1.hosts() {
        for i in ifs
            .iter()
            .filter(|i| i.vlan == strata_spec::InfraVlan::Provisioning)
        {
            assert!(
                i.address.addr() < start,
                "{} inside the DHCP range",
                i.address
            );
        }
    }
    // VLANs without DHCP have none.
    let storage = fra1.vlan(strata_spec::InfraVlan::Storage).expect("storage");
    let s = d
        .iter()
        .find(|r| r.id.kind == Kind::MaasSubnet && r.id.name == storage.subnet.to_string())
        .expect("subnet");
    assert!(s.spec["dynamic_range"].is_null());
}

#[test]
fn every_desired_resource_has_exactly_its_kinds_vocabulary_and_reads_as_its_struct() {
    use strata_plan::fields::vocabulary;
    use strata_plan::{
        DnsDomainFields, DnsRecordFields, FabricFields, HaRuleFields, HaRuleSpec, MaasSubnetFields,
        MaasSubnetSpec, MachineFields, NetworkFields, ProjectFields, ProjectLimitFields,
        QuotaFields, RegisteredLimitFields, SubnetFields, VlanFields, VlanSpec, VmSpec,
    };
    let d = desired(&example()).expect("desired");
    let mut kinds = std::collections::BTreeSet::new();
    for r in d.iter() {
        kinds.insert(r.id.kind);
        let keys: std::collections::BTreeSet<&str> = r.fields.keys().map(String::as_str).collect();
        let mut vocab = vocabulary(r.id.kind);
        // A machine that already runs, or a Proxmox node, has no network for MAAS
        // to configure.
        if r.id.kind == Kind::Machine && !keys.contains("network") {
            let spec: MachineSpec = r.spec_as().expect("machine spec");
            let role = spec.role.as_deref().unwrap_or("");
            assert!(spec.deployed || role == "proxmox", "{}: no network", r.id);
            vocab.remove("network");
        }
        // Nor does one whose profile declares no RAID, nor one that already runs.
        if r.id.kind == Kind::Machine && !keys.contains("storage") {
            let spec: MachineSpec = r.spec_as().expect("machine spec");
            assert!(spec.deployed, "{}: no storage", r.id);
            vocab.remove("storage");
        }
        assert_eq!(keys, vocab, "{}", r.id);
        let typed = match r.id.kind {
            Kind::Fabric => r.fields_as::<FabricFields>().map(drop),
            Kind::Vlan => r
                .fields_as::<VlanFields>()
                .and_then(|_| r.spec_as::<VlanSpec>())
                .map(drop),
            Kind::DnsDomain => r.fields_as::<DnsDomainFields>().map(drop),
            Kind::DnsRecord => r.fields_as::<DnsRecordFields>().map(drop),
            Kind::MaasTag => r.fields_as::<strata_plan::MaasTagFields>().map(drop),
            Kind::MaasSubnet => r
                .fields_as::<MaasSubnetFields>()
                .and_then(|_| r.spec_as::<MaasSubnetSpec>())
                .map(drop),
            Kind::Machine => r
                .fields_as::<MachineFields>()
                .and_then(|_| r.spec_as::<MachineSpec>())
                .map(drop),
            Kind::NodeDns => r.fields_as::<NodeDnsFields>().map(drop),
            Kind::Vm => r
                .fields_as::<VmFields>()
                .and_then(|_| r.spec_as::<VmSpec>())
                .map(drop),
            Kind::HaRule => r
                .fields_as::<HaRuleFields>()
                .and_then(|_| r.spec_as::<HaRuleSpec>())
                .map(drop),
            Kind::Project => r.fields_as::<ProjectFields>().map(drop),
            Kind::Flavor => r.fields_as::<FlavorFields>().map(drop),
            Kind::Network => r.fields_as::<NetworkFields>().map(drop),
            Kind::Subnet => r.fields_as::<SubnetFields>().map(drop),
            Kind::Quota => r.fields_as::<QuotaFields>().map(drop),
            Kind::RegisteredLimit => r.fields_as::<RegisteredLimitFields>().map(drop),
            Kind::ProjectLimit => r.fields_as::<ProjectLimitFields>().map(drop),
            Kind::RoleAssignment => r.fields_as::<RoleAssignmentFields>().map(drop),
            Kind::FlavorAccess => r.fields_as::<FlavorAccessFields>().map(drop),
            Kind::NetworkRbac => r.fields_as::<NetworkRbacFields>().map(drop),
        };
        typed.unwrap_or_else(|e| panic!("{e}"));
    }
    // Every kind but `fabric`, which strata only still recognises (earlier versions
    // made one) and never wants, and `quota`, the legacy quota driver's: the example
    // fleet's Kolla 2026.2 regions take team quotas as Keystone limits.
    assert!(!kinds.contains(&Kind::Fabric));
    assert!(!kinds.contains(&Kind::Quota));
    assert_eq!(
        kinds.len(),
        Kind::ALL.len() - 2,
        "the example fleet covers every other kind"
    );
}

#[test]
fn running_hosts_are_registered_deployed_and_the_rest_get_their_role_image() {
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    let bmc_subnet = |dc: &str| {
        fleet
            .dcs
            .iter()
            .find(|x| x.name == dc)
            .and_then(|x| x.vlan(strata_spec::InfraVlan::Bmc))
            .map(|v| v.subnet.to_string())
            .expect("bmc vlan")
    };
    let mut running = 0;
    for r in d.iter().filter(|r| r.id.kind == Kind::Machine) {
        let spec: MachineSpec = r.spec_as().expect("spec");
        let fields: strata_plan::MachineFields = r.fields_as().expect("fields");
        let role = spec.role.clone().unwrap_or_default();
        // Every BMC has its MAC, and the machine waits for the BMC subnet its
        // reservation lives on.
        assert!(spec.bmc_mac.is_some(), "{}", r.id);
        assert!(
            r.depends_on
                .iter()
                .any(|x| x.kind == Kind::MaasSubnet && x.name == bmc_subnet(&r.id.dc)),
            "{}",
            r.id
        );
        if role == "proxmox" || r.id.name == "FRA1R02U05" {
            // Preinstalled Proxmox nodes (they host MAAS and the control plane) and
            // the compute node already in production.
            running += 1;
            assert!(spec.deployed, "{}", r.id);
            assert_eq!(spec.image, None);
            assert_eq!(
                fields.distro_series, "",
                "MAAS records no OS it did not deploy"
            );
        } else {
            assert!(!spec.deployed, "{}", r.id);
            assert_eq!(spec.image.as_deref(), Some("noble"));
            assert_eq!(fields.distro_series, "noble");
        }
    }
    assert_eq!(running, 10);
}

/// MAAS's network as the design puts it: the native VLAN untagged (VID 0), every
/// other VLAN tagged with its design VID on the native VLAN's fabric, including those
/// the controllers registered untagged on fabrics of their own (the VLAN step moves
/// them). Only the routed VLAN has a gateway. The racks serve DHCP only on VLANs they
/// have a NIC on.
#[test]
fn maas_vlans_are_tagged_on_the_hosts_fabric_and_only_the_routed_vlan_has_a_gateway() {
    use strata_plan::{MaasSubnetFields, VlanFields, VlanSpec};
    use strata_spec::InfraVlan;
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    for dc in &fleet.dcs {
        let racks: Vec<&strata_fleet::Vm> = dc
            .vms
            .iter()
            .filter(|v| v.kind == strata_fleet::VmKind::MaasRack)
            .collect();
        assert!(!racks.is_empty());
        for v in &dc.vlans {
            let r = d
                .get(&strata_plan::ResourceId::new(
                    &dc.name,
                    Kind::Vlan,
                    v.role.as_str(),
                ))
                .expect("vlan");
            let f: VlanFields = r.fields_as().expect("fields");
            let spec: VlanSpec = r.spec_as().expect("spec");
            assert_eq!(spec.cidr, v.subnet.to_string());
            let native = v.role == InfraVlan::Provisioning;
            assert_eq!(f.vid, if native { 0 } else { v.vid }, "{}", v.role);
            assert_eq!(spec.home, "provisioning");
            if let Some(primary) = &f.primary_rack {
                let rack = racks
                    .iter()
                    .find(|r| &r.hostname == primary)
                    .expect("primary is a rack VM");
                assert!(
                    rack.interfaces.iter().any(|i| i.vlan == v.role),
                    "{primary} serves DHCP on {} without a NIC there",
                    v.role
                );
            }
            let s = d
                .get(&strata_plan::ResourceId::new(
                    &dc.name,
                    Kind::MaasSubnet,
                    v.subnet.to_string(),
                ))
                .expect("subnet");
            let sf: MaasSubnetFields = s.fields_as().expect("fields");
            assert_eq!(sf.vid, f.vid);
            assert_eq!(
                sf.gateway_ip.is_some(),
                v.role == InfraVlan::Management,
                "{}: {:?}",
                v.role,
                sf.gateway_ip
            );
        }
    }
}

/// The DC's domain and the name kolla_internal_fqdn (and kolla_external_fqdn) uses,
/// pointing at the API VIP, as rendered into globals.yml.
#[test]
fn kollas_api_name_is_a_dns_record_in_the_dcs_domain() {
    use strata_plan::{DnsDomainFields, DnsRecordFields};
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    let files = strata_render::kolla::render(&fleet).expect("kolla");
    for dc in &fleet.dcs {
        let domain = d
            .iter()
            .find(|r| r.id.dc == dc.name && r.id.kind == Kind::DnsDomain)
            .expect("domain");
        assert_eq!(domain.id.name, dc.host_services.search_domain);
        let f: DnsDomainFields = domain.fields_as().expect("fields");
        assert!(f.authoritative);
        let rec = d
            .iter()
            .find(|r| r.id.dc == dc.name && r.id.kind == Kind::DnsRecord)
            .expect("record");
        let f: DnsRecordFields = rec.fields_as().expect("fields");
        assert!(
            f.fqdn.ends_with(&format!(".{}", domain.id.name)),
            "{}",
            f.fqdn
        );
        assert_eq!(rec.depends_on, vec![domain.id.clone()]);
        let globals = files
            .iter()
            .find(|x| {
                x.path.starts_with(&format!("{}/", dc.name)) && x.path.ends_with("globals.yml")
            })
            .expect("globals");
        assert!(
            globals
                .content
                .contains(&format!("kolla_internal_fqdn: \"{}\"", f.fqdn)),
            "{}",
            globals.content
        );
        let vip = dc.openstack.internal_vip.expect("vip").to_string();
        assert_eq!(f.ip_addresses, vec![vip.clone()]);
        assert!(
            globals
                .content
                .contains(&format!("kolla_internal_vip_address: \"{vip}\""))
        );
    }
}

/// Every GPU host carries its profile's kernel-option tag, whose `kernel_opts` is the
/// command line its host layout needs (IOMMU, 1 GiB pages), and waits for the tag;
/// no other machine carries one.
#[test]
fn gpu_hosts_carry_the_kernel_tag_of_their_layout() {
    use strata_plan::{MaasTagFields, MachineFields};
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    let mut gpu_hosts = 0;
    for dc in &fleet.dcs {
        let layouts: std::collections::BTreeMap<&str, (&str, &str)> = dc
            .openstack
            .compute
            .iter()
            .filter_map(|c| {
                c.layout.as_ref().map(|l| {
                    (
                        c.hostname.as_str(),
                        (c.profile.as_str(), l.kernel_opts.as_str()),
                    )
                })
            })
            .collect();
        for m in &dc.machines {
            let r = d
                .get(&ResourceId::new(&dc.name, Kind::Machine, m.serial.clone()))
                .expect("machine");
            let f: MachineFields = r.fields_as().expect("fields");
            let kernel: Vec<&String> = f.tags.iter().filter(|t| t.starts_with("kernel-")).collect();
            match layouts.get(m.hostname.as_str()) {
                Some((profile, opts)) => {
                    gpu_hosts += 1;
                    let tag = ResourceId::new(&dc.name, Kind::MaasTag, format!("kernel-{profile}"));
                    assert_eq!(kernel, vec![&tag.name], "{}", m.hostname);
                    assert!(r.depends_on.contains(&tag), "{}", m.hostname);
                    let t: MaasTagFields =
                        d.get(&tag).expect("tag").fields_as().expect("tag fields");
                    assert_eq!(t.kernel_opts, *opts);
                    assert!(
                        t.kernel_opts.contains("iommu=pt") && t.kernel_opts.contains("hugepages=")
                    );
                    assert!(
                        t.comment.ends_with(&format!(
                            "(managed by strata: {})",
                            strata_plan::owner_tag(&fleet.organisation.fleet_id)
                        )),
                        "{}",
                        t.comment
                    );
                }
                None => assert!(kernel.is_empty(), "{}: {kernel:?}", m.hostname),
            }
        }
    }
    assert!(gpu_hosts > 0, "the example fleet has GPU hosts");
}

#[test]
fn machines_maas_deploys_carry_their_netplan_network() {
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    let mut seen = 0;
    for dc in &fleet.dcs {
        for m in dc
            .machines
            .iter()
            .filter(|m| !m.running && m.role != strata_spec::MachineRole::Proxmox)
        {
            let r = d
                .get(&ResourceId::new(&dc.name, Kind::Machine, m.serial.clone()))
                .expect("machine");
            let spec: MachineSpec = r.spec_as().expect("spec");
            let net = spec.network.expect("a network for MAAS to configure");
            // The same devices and addresses as the machine's interfaces.
            assert_eq!(
                Some(net.uplink.as_str()),
                m.uplink.as_deref(),
                "{}",
                m.hostname
            );
            assert_eq!(net.mtu, fleet.mtu.underlay);
            // Every interface of the machine is a link, the native one untagged and
            // the others tagged on the hosts' fabric; one has the default gateway.
            assert_eq!(net.links.len(), m.interfaces.len(), "{}", m.hostname);
            for i in &m.interfaces {
                let native = dc.vlan(i.vlan).is_some_and(|v| v.native);
                let l = net
                    .links
                    .iter()
                    .find(|l| l.address == i.address.to_string());
                let Some(l) = l else {
                    panic!("{}: no link for {}", m.hostname, i.address)
                };
                assert_eq!(l.native, native, "{}: {}", m.hostname, i.address);
                assert_eq!(l.vid, i.vid);
                assert_eq!(l.gateway.is_some(), i.vlan == strata_fleet::ROUTED_VLAN);
                // Each subnet must exist in MAAS before the machine step.
                let subnet = dc.vlan(i.vlan).expect("vlan").subnet.to_string();
                assert!(
                    r.depends_on
                        .contains(&ResourceId::new(&dc.name, Kind::MaasSubnet, subnet)),
                    "{}",
                    m.hostname
                );
            }
            assert_eq!(net.links.iter().filter(|l| l.native).count(), 1);
            let fields: strata_plan::MachineFields = r.fields_as().expect("fields");
            assert_eq!(fields.network, Some(spec_summary(r)));
            seen += 1;
        }
    }
    assert!(seen > 0);
}

fn spec_summary(r: &strata_plan::Resource) -> std::collections::BTreeMap<String, String> {
    let spec: MachineSpec = r.spec_as().expect("spec");
    spec.network.expect("network").summary()
}

#[test]
fn machines_maas_deploys_carry_their_profiles_raid_and_running_ones_none() {
    let fleet = example();
    let d = desired(&fleet).expect("desired");
    let (mut with, mut running) = (0, 0);
    for dc in &fleet.dcs {
        for m in &dc.machines {
            let r = d
                .get(&ResourceId::new(&dc.name, Kind::Machine, m.serial.clone()))
                .expect("machine");
            let spec: MachineSpec = r.spec_as().expect("spec");
            let fields: strata_plan::MachineFields = r.fields_as().expect("fields");
            if m.running {
                // MAAS did not install it and holds no layout for it.
                assert_eq!(spec.storage, None, "{}", m.hostname);
                assert_eq!(fields.storage, None, "{}", m.hostname);
                running += 1;
                continue;
            }
            let profile = fleet.profile(&m.profile).expect("profile");
            let st = spec.storage.expect("storage for MAAS to configure");
            assert_eq!(st.raids.len(), profile.raid.len(), "{}", m.hostname);
            for (got, a) in st.raids.iter().zip(&profile.raid) {
                assert_eq!(got.name, a.name);
                assert_eq!(got.level, a.level.maas_name());
                let members: Vec<&str> = a.members.iter().map(|m| m.value.as_str()).collect();
                assert_eq!(got.members, members);
                // Mounted without a `format`: ext4.
                assert_eq!(got.fstype.as_deref(), Some("ext4"));
            }
            assert_eq!(fields.storage, Some(st.summary()), "{}", m.hostname);
            assert_eq!(
                fields
                    .storage
                    .as_ref()
                    .and_then(|s| s.get("md0.level"))
                    .map(String::as_str),
                Some("raid-1")
            );
            with += 1;
        }
    }
    assert!(with > 0 && running > 0, "{with} {running}");
}
