//! What a fresh region contains: the Keystone bootstrap (default domain, `admin` and
//! `service` projects, the admin user with the admin role, the service catalog), the
//! devstack flavors plus a GPU flavor, a few compute hosts (one with eight H100 GPUs)
//! and their resource providers (configured from the region's Kolla files), a few public images, an external network and default
//! quotas.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use sha2::{Digest, Sha256, Sha512};

use super::model::*;
use crate::DcContext;
use crate::core::Table;

/// Deterministic ids for seeded objects: the same DC always gets the same ids, so a
/// fleet description can refer to them across restarts.
fn seeded_uuid(dc: &str, what: &str) -> String {
    let mut h = Sha256::new();
    h.update(dc.as_bytes());
    h.update(b"/");
    h.update(what.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

fn seeded_hex(dc: &str, what: &str) -> String {
    seeded_uuid(dc, what).replace('-', "")
}

/// Service types in the catalog, their names and where their endpoints live.
fn catalog_urls(ctx: &DcContext) -> Vec<(&'static str, &'static str, &'static str, String)> {
    let u = &ctx.urls;
    vec![
        (
            "identity",
            "keystone",
            "Keystone Identity Service",
            format!("{}/v3", u.identity),
        ),
        (
            "compute",
            "nova",
            "Nova Compute Service",
            format!("{}/v2.1", u.compute),
        ),
        (
            "network",
            "neutron",
            "Neutron Networking Service",
            u.network.clone(),
        ),
        ("image", "glance", "Glance Image Service", u.image.clone()),
        (
            "placement",
            "placement",
            "Placement Service",
            u.placement.clone(),
        ),
    ]
}

/// Rewrite the catalog's URLs and the admin password after a restore: the listener
/// may have moved, and the credentials are the DC's.
pub fn refresh_catalog(st: &mut State, ctx: &DcContext) {
    st.region = ctx.name.clone();
    for (kind, name, desc, url) in catalog_urls(ctx) {
        match st.services.iter_mut().find(|s| s.kind == kind) {
            Some(s) => {
                for e in &mut s.endpoints {
                    e.url = url.clone();
                }
            }
            None => st
                .services
                .push(new_service(&ctx.name, kind, name, desc, &url)),
        }
    }
    let user = ctx.creds.openstack_username.clone();
    if let Some(u) = st.users.iter_mut().find(|u| u.name == user) {
        u.password = ctx.creds.openstack_password.clone();
    }
}

fn new_service(dc: &str, kind: &str, name: &str, desc: &str, url: &str) -> CatalogService {
    CatalogService {
        id: seeded_hex(dc, &format!("service/{kind}")),
        name: name.into(),
        kind: kind.into(),
        description: desc.into(),
        endpoints: ["public", "internal"]
            .iter()
            .map(|i| CatalogEndpoint {
                id: seeded_hex(dc, &format!("endpoint/{kind}/{i}")),
                interface: i.to_string(),
                url: url.to_string(),
            })
            .collect(),
    }
}

pub const STANDARD_RESOURCE_CLASSES: &[&str] = &[
    "VCPU",
    "MEMORY_MB",
    "DISK_GB",
    "PCI_DEVICE",
    "SRIOV_NET_VF",
    "NUMA_SOCKET",
    "NUMA_CORE",
    "NUMA_THREAD",
    "NUMA_MEMORY_MB",
    "IPV4_ADDRESS",
    "VGPU",
    "VGPU_DISPLAY_HEAD",
    "NET_BW_EGR_KILOBIT_PER_SEC",
    "NET_BW_IGR_KILOBIT_PER_SEC",
    "PCPU",
    "MEM_ENCRYPTION_CONTEXT",
    "FPGA",
    "PGPU",
    "NET_PACKET_RATE_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC",
];

/// A representative subset of os-traits' standard traits.
pub const STANDARD_TRAITS: &[&str] = &[
    "COMPUTE_ACCELERATORS",
    "COMPUTE_DEVICE_TAGGING",
    "COMPUTE_GRAPHICS_MODEL_VIRTIO",
    "COMPUTE_IMAGE_TYPE_QCOW2",
    "COMPUTE_IMAGE_TYPE_RAW",
    "COMPUTE_NET_ATTACH_INTERFACE",
    "COMPUTE_NET_VIF_MODEL_VIRTIO",
    "COMPUTE_NODE",
    "COMPUTE_STATUS_DISABLED",
    "COMPUTE_TRUSTED_CERTS",
    "COMPUTE_VOLUME_ATTACH_WITH_TAG",
    "COMPUTE_VOLUME_EXTEND",
    "COMPUTE_VOLUME_MULTI_ATTACH",
    "HW_CPU_X86_AVX",
    "HW_CPU_X86_AVX2",
    "HW_CPU_X86_AVX512F",
    "HW_CPU_X86_SSE42",
    "HW_CPU_X86_SVM",
    "HW_CPU_X86_VMX",
    "HW_GPU_API_CUDA_V12_0",
    "HW_NIC_SRIOV",
    "MISC_SHARES_VIA_AGGREGATE",
    "STORAGE_DISK_HDD",
    "STORAGE_DISK_SSD",
];

pub(super) fn host_traits(gpu: bool) -> BTreeSet<String> {
    let mut t: BTreeSet<String> = [
        "COMPUTE_NODE",
        "COMPUTE_IMAGE_TYPE_QCOW2",
        "COMPUTE_IMAGE_TYPE_RAW",
        "COMPUTE_NET_ATTACH_INTERFACE",
        "COMPUTE_NET_VIF_MODEL_VIRTIO",
        "COMPUTE_TRUSTED_CERTS",
        "COMPUTE_VOLUME_EXTEND",
        "HW_CPU_X86_AVX2",
        "HW_CPU_X86_SSE42",
        "HW_CPU_X86_SVM",
        "STORAGE_DISK_SSD",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if gpu {
        t.insert("COMPUTE_ACCELERATORS".into());
        t.insert("HW_GPU_API_CUDA_V12_0".into());
    }
    t
}

pub(super) fn inv(total: i64, reserved: i64, ratio: f64, max_unit: i64) -> Inventory {
    Inventory {
        total,
        reserved,
        min_unit: 1,
        max_unit,
        step_size: 1,
        allocation_ratio: ratio,
    }
}

/// The nova default quotas (project level).
pub fn nova_default_quotas() -> BTreeMap<String, i64> {
    [
        ("instances", 10),
        ("cores", 20),
        ("ram", 51200),
        ("metadata_items", 128),
        ("key_pairs", 100),
        ("server_groups", 10),
        ("server_group_members", 10),
        ("injected_files", 5),
        ("injected_file_content_bytes", 10240),
        ("injected_file_path_bytes", 255),
        ("fixed_ips", -1),
        ("floating_ips", -1),
        ("security_groups", -1),
        ("security_group_rules", -1),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect()
}

/// The neutron default quotas.
pub fn neutron_default_quotas() -> BTreeMap<String, i64> {
    [
        ("network", 100),
        ("subnet", 100),
        ("port", 500),
        ("router", 10),
        ("floatingip", 50),
        ("security_group", 10),
        ("security_group_rule", 100),
        ("rbac_policy", 10),
        ("subnetpool", -1),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect()
}

/// A host's NUMA cells: its CPUs and memory split evenly over `cells` cells (CPU ids
/// in blocks, as Linux numbers a socket's cores), no huge pages until a kernel command
/// line asks for them.
pub fn numa_cells(vcpus: i64, memory_mb: i64, cells: u32) -> Vec<NumaCell> {
    let cells = cells.max(1);
    let per = (vcpus.max(0) as u32) / cells;
    (0..cells)
        .map(|id| NumaCell {
            id,
            cpus: (id * per..(id + 1) * per).collect(),
            memory_mb: memory_mb / i64::from(cells),
            pages_1g: 0,
        })
        .collect()
}

/// One compute host to create.
struct HostSpec {
    host: String,
    vcpus: i64,
    memory_mb: i64,
    local_gb: i64,
    cpu_model: String,
    pci: Vec<PciDevice>,
    numa_cells: Vec<NumaCell>,
}

/// The twin's own hosts: three plain ones and one with eight H100s, four per node.
fn default_hosts(dc: &str) -> Vec<HostSpec> {
    let plain = (1..=3).map(|i| HostSpec {
        host: format!("{dc}-cmp-{i:02}"),
        vcpus: 64,
        memory_mb: 262_144,
        local_gb: 1900,
        cpu_model: "EPYC-Milan".into(),
        pci: vec![],
        numa_cells: numa_cells(64, 262_144, 2),
    });
    let gpu = HostSpec {
        host: format!("{dc}-gpu-01"),
        vcpus: 128,
        memory_mb: 1_048_576,
        local_gb: 3800,
        cpu_model: "EPYC-Genoa".into(),
        pci: ["18", "2a", "3a", "5d", "9a", "ab", "ba", "db"]
            .iter()
            .enumerate()
            .map(|(n, bus)| PciDevice {
                address: format!("0000:{bus}:00.0"),
                vendor_id: "10de".into(),
                product_id: "2330".into(),
                numa_node: (n / 4) as u32,
                server: None,
            })
            .collect(),
        numa_cells: numa_cells(128, 1_048_576, 2),
    };
    plain.chain(std::iter::once(gpu)).collect()
}

/// A host the DC seed describes.
fn host_spec(h: &crate::SeedComputeHost) -> HostSpec {
    let vcpus: usize = h.numa_cpus.iter().map(Vec::len).sum();
    let memory_mb = i64::try_from(h.memory_mib).unwrap_or(i64::MAX);
    let nodes = h.numa_cpus.len().max(1) as i64;
    let pages = i64::try_from(h.hugepages_1g).unwrap_or(0) / nodes;
    HostSpec {
        host: h.name.clone(),
        vcpus: vcpus as i64,
        memory_mb,
        local_gb: i64::try_from(h.local_gb).unwrap_or(i64::MAX),
        cpu_model: h.cpu_model.clone(),
        pci: h
            .gpus
            .iter()
            .enumerate()
            .map(|(n, g)| PciDevice {
                address: format!("0000:{:02x}:00.0", 0x18 + 0x10 * n),
                vendor_id: g.vendor_id.to_ascii_lowercase(),
                product_id: g.device_id.to_ascii_lowercase(),
                numa_node: g.numa_node,
                server: None,
            })
            .collect(),
        numa_cells: h
            .numa_cpus
            .iter()
            .enumerate()
            .map(|(id, cpus)| NumaCell {
                id: id as u32,
                cpus: cpus.clone(),
                memory_mb: memory_mb / nodes,
                pages_1g: pages,
            })
            .collect(),
    }
}

/// A fresh region, configured from the DC's Kolla files; an error when those files
/// would keep a service from starting.
pub fn fresh(ctx: &DcContext) -> Result<State, String> {
    let dc = ctx.name.as_str();
    let now = ctx.shared.clock.now_ms() as i64;
    let mut st = State {
        region: dc.to_string(),
        ..State::default()
    };

    // --- Keystone bootstrap
    st.domains.push(Domain {
        id: "default".into(),
        name: "Default".into(),
        description: "The default domain".into(),
        enabled: true,
    });
    let role = |name: &str, implies: &[&str]| Role {
        id: seeded_hex(dc, &format!("role/{name}")),
        name: name.into(),
        description: None,
        implies: implies
            .iter()
            .map(|s| seeded_hex(dc, &format!("role/{s}")))
            .collect(),
    };
    st.roles = vec![
        role("reader", &[]),
        role("member", &["reader"]),
        role("manager", &["member"]),
        role("admin", &["manager"]),
        role("service", &[]),
    ];
    let admin_project = seeded_hex(dc, &format!("project/{}", ctx.creds.openstack_project));
    let service_project = seeded_hex(dc, "project/service");
    st.projects.push(Project {
        id: admin_project.clone(),
        name: ctx.creds.openstack_project.clone(),
        domain_id: "default".into(),
        description: "Bootstrap project for initializing the cloud.".into(),
        enabled: true,
        tags: vec![],
        extra: BTreeMap::new(),
    });
    st.projects.push(Project {
        id: service_project.clone(),
        name: "service".into(),
        domain_id: "default".into(),
        description: "".into(),
        enabled: true,
        tags: vec![],
        extra: BTreeMap::new(),
    });
    let admin_user = seeded_hex(dc, &format!("user/{}", ctx.creds.openstack_username));
    st.users.push(User {
        id: admin_user.clone(),
        name: ctx.creds.openstack_username.clone(),
        domain_id: "default".into(),
        password: ctx.creds.openstack_password.clone(),
        enabled: true,
        email: None,
        description: None,
        default_project_id: None,
    });
    let admin_role = seeded_hex(dc, "role/admin");
    let service_role = seeded_hex(dc, "role/service");
    st.assignments.push(Assignment {
        user_id: admin_user.clone(),
        project_id: Some(admin_project.clone()),
        domain_id: None,
        system: false,
        role_id: admin_role.clone(),
    });
    st.assignments.push(Assignment {
        user_id: admin_user.clone(),
        project_id: None,
        domain_id: None,
        system: true,
        role_id: admin_role.clone(),
    });
    for name in &ctx.seed.keystone_users {
        st.users.push(User {
            id: seeded_hex(dc, &format!("user/person/{name}")),
            name: name.clone(),
            domain_id: "default".into(),
            password: seeded_hex(dc, &format!("password/person/{name}")),
            enabled: true,
            email: None,
            description: None,
            default_project_id: None,
        });
    }
    for svc in ["nova", "neutron", "glance", "placement"] {
        let id = seeded_hex(dc, &format!("user/{svc}"));
        st.users.push(User {
            id: id.clone(),
            name: svc.into(),
            domain_id: "default".into(),
            password: seeded_hex(
                dc,
                &format!("password/{svc}/{}", ctx.creds.openstack_password),
            ),
            enabled: true,
            email: None,
            description: None,
            default_project_id: None,
        });
        for r in [&admin_role, &service_role] {
            st.assignments.push(Assignment {
                user_id: id.clone(),
                project_id: Some(service_project.clone()),
                domain_id: None,
                system: false,
                role_id: r.clone(),
            });
        }
    }
    for (kind, name, desc, url) in catalog_urls(ctx) {
        st.services.push(new_service(dc, kind, name, desc, &url));
    }

    // --- Nova flavors (devstack's) and a GPU flavor
    let flavor =
        |id: &str, name: &str, vcpus: i64, ram: i64, disk: i64, specs: &[(&str, &str)]| Flavor {
            id: id.into(),
            name: name.into(),
            vcpus,
            ram,
            disk,
            ephemeral: 0,
            swap: 0,
            rxtx_factor: 1.0,
            is_public: true,
            disabled: false,
            description: None,
            extra_specs: specs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_ms: now,
            access: vec![],
        };
    st.flavors = Table::from(vec![
        flavor("1", "m1.tiny", 1, 512, 1, &[]),
        flavor("2", "m1.small", 1, 2048, 20, &[]),
        flavor("3", "m1.medium", 2, 4096, 40, &[]),
        flavor("4", "m1.large", 4, 8192, 80, &[]),
        flavor("5", "m1.xlarge", 8, 16384, 160, &[]),
        flavor(
            "6",
            "g1.h100.1",
            8,
            32768,
            100,
            &[("pci_passthrough:alias", "gpu-h100:1")],
        ),
    ]);

    // --- Compute hosts, hypervisors and their resource providers. The PCI aliases,
    // device specs, pinning sets and VLAN physnets are not seeded: they come from the
    // region's Kolla configuration (`kolla::apply` below).
    let octet = 20 + (ctx.index % 200);
    let hosts: Vec<HostSpec> = if ctx.seed.compute_hosts.is_empty() {
        default_hosts(dc)
    } else {
        ctx.seed.compute_hosts.iter().map(host_spec).collect()
    };
    for (i, spec) in hosts.into_iter().enumerate() {
        let HostSpec {
            host,
            vcpus,
            memory_mb,
            local_gb,
            cpu_model,
            pci,
            numa_cells,
        } = spec;
        let gpu = !pci.is_empty();
        let uuid = seeded_uuid(dc, &format!("compute-node/{host}"));
        let hypervisor_hostname = format!("{host}.{dc}.twin");
        st.hosts.push(ComputeHost {
            id: (i + 1) as u64,
            service_id: (i + 3) as u64,
            uuid: uuid.clone(),
            service_uuid: seeded_uuid(dc, &format!("service/nova-compute/{host}")),
            host: host.clone(),
            hypervisor_hostname: hypervisor_hostname.clone(),
            host_ip: format!("10.{octet}.0.{}", 11 + i),
            vcpus,
            memory_mb,
            local_gb,
            cpu_model,
            az: "nova".into(),
            status: "enabled".into(),
            state: "up".into(),
            disabled_reason: None,
            forced_down: false,
            powered_off: false,
            pci,
            started_ms: now,
            numa_cells,
            conf: ComputeConf::default(),
        });
        let mut inventories = BTreeMap::new();
        inventories.insert("VCPU".to_string(), inv(vcpus, 0, 4.0, vcpus));
        inventories.insert("MEMORY_MB".to_string(), inv(memory_mb, 512, 1.0, memory_mb));
        inventories.insert("DISK_GB".to_string(), inv(local_gb, 0, 1.0, local_gb));
        st.rps.push(ResourceProvider {
            uuid: uuid.clone(),
            name: hypervisor_hostname,
            generation: 1,
            parent: None,
            root: uuid,
            inventories,
            traits: host_traits(gpu),
            aggregates: vec![],
            updated_ms: now,
        });
    }
    st.next_instance = 1;
    st.next_keypair = 1;

    // --- Glance images
    let image = |name: &str, size: i64, props: &[(&str, &str)]| {
        let md5ish = hex::encode(&Sha256::digest(name.as_bytes())[..16]);
        let sha512 = hex::encode(Sha512::digest(name.as_bytes()));
        Image {
            id: seeded_uuid(dc, &format!("image/{name}")),
            name: name.into(),
            status: "active".into(),
            visibility: "public".into(),
            owner: admin_project.clone(),
            size: Some(size),
            virtual_size: Some(size * 4),
            disk_format: Some("qcow2".into()),
            container_format: Some("bare".into()),
            min_ram: 0,
            min_disk: 0,
            checksum: Some(md5ish),
            os_hash_value: Some(sha512),
            created_ms: now,
            updated_ms: now,
            tags: vec![],
            protected: false,
            os_hidden: false,
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
        }
    };
    st.images = Table::from(vec![
        image(
            "debian-12",
            360_775_680,
            &[
                ("os_distro", "debian"),
                ("os_version", "12"),
                ("hw_architecture", "x86_64"),
            ],
        ),
        image(
            "ubuntu-24.04",
            593_321_984,
            &[
                ("os_distro", "ubuntu"),
                ("os_version", "24.04"),
                ("hw_architecture", "x86_64"),
            ],
        ),
        image(
            "cirros",
            21_430_272,
            &[
                ("os_distro", "cirros"),
                ("os_version", "0.6.2"),
                ("hw_architecture", "x86_64"),
            ],
        ),
    ]);

    // --- Neutron: the external network and the admin project's default security group
    let public = seeded_uuid(dc, "network/public");
    st.networks.push(Network {
        id: public.clone(),
        name: "public".into(),
        project_id: admin_project.clone(),
        description: "".into(),
        admin_state_up: true,
        shared: false,
        external: true,
        mtu: 1500,
        network_type: "flat".into(),
        physical_network: Some("physnet1".into()),
        segmentation_id: None,
        status: "ACTIVE".into(),
        tags: vec![],
        created_ms: now,
        updated_ms: now,
        revision: 1,
        port_security_enabled: true,
        availability_zone_hints: vec![],
        dns_domain: "".into(),
        qos_policy_id: None,
        is_default: true,
        vlan_transparent: false,
    });
    st.subnets.push(Subnet {
        id: seeded_uuid(dc, "subnet/public"),
        name: "public-subnet".into(),
        network_id: public,
        project_id: admin_project.clone(),
        cidr: "203.0.113.0/24".into(),
        ip_version: 4,
        gateway_ip: Some("203.0.113.1".into()),
        enable_dhcp: false,
        allocation_pools: vec![("203.0.113.100".into(), "203.0.113.250".into())],
        dns_nameservers: vec![],
        host_routes: vec![],
        description: "".into(),
        tags: vec![],
        created_ms: now,
        updated_ms: now,
        revision: 0,
        ipv6_address_mode: None,
        ipv6_ra_mode: None,
    });
    st.next_mac = u64::from(seeded_uuid(dc, "mac").as_bytes()[0]) << 16;
    super::kolla::apply(&mut st, &ctx.seed.kolla_config)?;
    Ok(st)
}
