//! A fresh MAAS region: controllers, the default fabric/VLAN/zone/pool/domain, synced
//! boot resources and every seed machine enlisted as New; plus the identifier
//! generators (system ids as MAAS's base-24 "z numbers", adjective-animal hostnames).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use std::collections::BTreeMap;

use super::model::*;
use crate::{DcSeed, SeedController, SeedDisk, SeedGpu, SeedMachine, SeedNic};

/// MAAS's unambiguous system-id alphabet (base 24).
const ZCHARS: &[u8] = b"34678abcdefghkmnpqrstwxy";

const ADJECTIVES: &[&str] = &[
    "able", "amber", "ample", "apt", "brave", "brisk", "calm", "civil", "clean", "clear", "close",
    "cool", "crisp", "daring", "deep", "eager", "early", "easy", "epic", "even", "exact", "fair",
    "fancy", "fast", "fine", "firm", "fit", "fluent", "frank", "free", "fresh", "game", "gentle",
    "giving", "glad", "golden", "good", "grand", "great", "grown", "handy", "happy", "hardy",
    "hearty", "helped", "honest", "humble", "ideal", "immune", "jolly", "just", "keen", "kind",
    "known", "large", "lasting", "legal", "light", "live", "loved", "loyal", "lucky", "main",
    "major", "merry", "mighty", "modern", "moved", "native", "neat", "new", "nice", "noble",
    "normal", "novel", "open", "poetic", "polite", "prime", "proper", "proud", "quick", "quiet",
    "rapid", "rare", "ready", "real", "rich", "right", "robust", "sacred", "safe", "sharp",
    "shining", "smart", "smooth", "solid", "sound", "steady", "still", "strong", "sunny", "super",
    "sure", "swift", "tender", "tidy", "tough", "true", "trusty", "unique", "upward", "usable",
    "valid", "vast", "vital", "warm", "whole", "wise", "witty", "worthy", "young", "zesty",
];

const ANIMALS: &[&str] = &[
    "alpaca", "ant", "ape", "asp", "badger", "bass", "bat", "bear", "beetle", "bird", "bison",
    "boa", "bobcat", "buck", "bug", "bull", "calf", "camel", "carp", "cat", "chimp", "clam",
    "cobra", "cod", "colt", "condor", "cougar", "cow", "crab", "crane", "crow", "cub", "deer",
    "dingo", "dog", "dory", "dove", "drake", "duck", "eagle", "eel", "egret", "elk", "emu", "ewe",
    "falcon", "fawn", "finch", "fish", "flea", "fly", "foal", "fox", "frog", "gannet", "gator",
    "gecko", "gnat", "gnu", "goat", "goose", "grouse", "grub", "gull", "hare", "hawk", "hen",
    "heron", "hog", "horse", "hound", "husky", "ibex", "impala", "jackal", "jay", "kid", "kit",
    "kite", "koala", "lamb", "lark", "lemur", "lion", "llama", "lynx", "mako", "mammal", "mantis",
    "marlin", "mink", "mole", "moose", "moth", "mouse", "mule", "newt", "orca", "oriole", "osprey",
    "otter", "owl", "ox", "panda", "parrot", "pig", "pika", "pony", "pug", "puma", "quail",
    "rabbit", "ram", "raven", "ray", "robin", "rooster", "salmon", "seal", "shark", "sheep",
    "shrew", "skunk", "sloth", "snail", "snake", "sponge", "squid", "stag", "stork", "swan",
    "tahr", "tapir", "teal", "tern", "tiger", "toad", "trout", "tuna", "turtle", "viper", "vole",
    "walrus", "wasp", "weasel", "whale", "wolf", "worm", "wren", "yak", "zebra",
];

/// Identifier generator, seeded from the twin's seed so runs are reproducible.
pub struct Ids {
    rng: StdRng,
}

impl Ids {
    pub fn new(seed: u64) -> Self {
        Ids {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A six-character system id (`24^5 <= n < 24^6` written in z-numbers), unused.
    pub fn system_id(&mut self, state: &State) -> String {
        loop {
            let mut n: u64 = self.rng.random_range(24u64.pow(5)..24u64.pow(6));
            let mut chars = Vec::new();
            while n > 0 {
                chars.push(ZCHARS[(n % 24) as usize]);
                n /= 24;
            }
            chars.reverse();
            let id = String::from_utf8(chars).unwrap_or_default();
            if !state.by_system_id.contains_key(&id) && state.controller(&id).is_none() {
                return id;
            }
        }
    }

    /// An unused `adjective-animal` hostname (three words once two get crowded).
    pub fn hostname(&mut self, state: &State) -> String {
        for attempt in 0..200 {
            let a = ADJECTIVES[self.rng.random_range(0..ADJECTIVES.len())];
            let b = ANIMALS[self.rng.random_range(0..ANIMALS.len())];
            let name = if attempt < 20 {
                format!("{a}-{b}")
            } else {
                let c = ADJECTIVES[self.rng.random_range(0..ADJECTIVES.len())];
                format!("{c}-{a}-{b}")
            };
            if !state.hostname_taken(&name, None) {
                return name;
            }
        }
        format!("node-{:x}", self.rng.random::<u32>())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.rng.random()
    }
}

/// A locally administered MAC derived from a seed string.
pub fn derived_mac(seed: &str) -> String {
    let h = Sha256::digest(seed.as_bytes());
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        h[0], h[1], h[2], h[3], h[4]
    )
}

pub fn vendor_name(vendor_id: &str) -> &'static str {
    match vendor_id.to_ascii_lowercase().as_str() {
        "10de" => "NVIDIA Corporation",
        "1002" => "Advanced Micro Devices, Inc. [AMD/ATI]",
        "8086" => "Intel Corporation",
        "15b3" => "Mellanox Technologies",
        "14e4" => "Broadcom Inc. and subsidiaries",
        "144d" => "Samsung Electronics Co Ltd",
        _ => "Unknown",
    }
}

fn gpu_from_seed(i: usize, g: &SeedGpu) -> Gpu {
    let gen_ = if g.pcie_gen == 0 { 4 } else { g.pcie_gen };
    let width = if g.pcie_width == 0 { 16 } else { g.pcie_width };
    // Buses 0x18, 0x24, ... on NUMA node 0 and 0x98, ... on node 1 (like a 2-socket
    // box: each socket's root ports below the other's), never past 0xff, so PCI order
    // follows the seed's order within a node.
    let bus = (if g.numa_node == 0 { 0x18 } else { 0x98 }) + (i as u32 % 8) * 0x0c;
    let pci_address = g
        .pci_address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| format!("0000:{:02x}:00.0", bus & 0xff));
    Gpu {
        model: g.model.clone(),
        vendor_id: g.vendor_id.to_ascii_lowercase(),
        product_id: g.device_id.to_ascii_lowercase(),
        vendor_name: vendor_name(&g.vendor_id).to_string(),
        pci_address,
        numa_node: g.numa_node,
        link_gen: gen_,
        link_width: width,
        max_gen: g.max_pcie_gen.max(gen_),
        max_width: g.max_pcie_width.max(width),
    }
}

/// The tags commissioning gives a disk of this kind (MAAS's
/// `_get_tags_from_block_info`, metadataserver/builtin_scripts/hooks.py): flash
/// storage (an NVMe drive included) is `ssd`, a spinning disk `rotary` with its
/// speed; SATA drives also get `sata`.
fn disk_tags(kind: &str) -> Vec<String> {
    let tags: &[&str] = match kind {
        "nvme" => &["ssd"],
        "hdd" => &["rotary", "7200rpm", "sata"],
        _ => &["ssd", "sata"],
    };
    tags.iter().map(|t| t.to_string()).collect()
}

/// Seed disk `i` of the machine with serial `serial`.
fn disk_from_seed(serial: &str, i: usize, d: &SeedDisk) -> Disk {
    let kind = d.kind.to_ascii_lowercase();
    let model = match kind.as_str() {
        "nvme" => "TWIN-NVME",
        "hdd" => "TWIN-HDD",
        _ => "TWIN-SSD",
    };
    Disk {
        name: d.name.clone(),
        model: model.into(),
        serial: format!("{serial}-D{i}"),
        size_bytes: d.size_gb * 1_000_000_000,
        tags: disk_tags(&kind),
    }
}

/// The twin's CPU model when a seed names none.
pub const DEFAULT_CPU_MODEL: &str = "Twin Xeon(R) CPU @ 2.40GHz";

/// The frequency (MHz) in a CPU model's ` @ x.xxGHz` suffix, as MAAS reads it
/// (canonical/maas src/provisioningserver/utils/lxd.py `parse_lxd_cpuinfo`).
pub fn model_speed_mhz(model: &str) -> Option<u32> {
    let (_, rest) = model.rsplit_once(" @ ")?;
    let ghz = rest.trim().strip_suffix("GHz")?;
    let v: f64 = ghz.trim().parse().ok()?;
    (v.is_finite() && v > 0.0).then(|| (v * 1000.0).round() as u32)
}

/// A NIC model by the speed of its ports: (vendor, product, vendor id, product id,
/// driver, PCIe generation, PCIe width).
fn nic_model(
    speed: u64,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u8,
    u8,
) {
    match speed {
        s if s >= 100_000 => (
            "Mellanox Technologies",
            "MT28908 Family [ConnectX-6]",
            "15b3",
            "101b",
            "mlx5_core",
            4,
            16,
        ),
        s if s > 10_000 => (
            "Mellanox Technologies",
            "MT2892 Family [ConnectX-6 Dx]",
            "15b3",
            "101d",
            "mlx5_core",
            4,
            16,
        ),
        s if s > 1000 => (
            "Intel Corporation",
            "Ethernet Controller X710 for 10GbE SFP+",
            "8086",
            "1572",
            "i40e",
            3,
            8,
        ),
        _ => (
            "Intel Corporation",
            "I350 Gigabit Network Connection",
            "8086",
            "1521",
            "igb",
            2,
            4,
        ),
    }
}

/// The NIC ports of a seed machine, the PXE port first: names and MACs from `nics`
/// (an entry is a name or a MAC), speeds from `nic_speed_mbps` and `nic_speeds`.
pub fn seed_nics(s: &SeedMachine) -> Vec<Nic> {
    let pxe = normalize_mac(&s.pxe_mac).unwrap_or_else(|| derived_mac(&s.serial));
    let mut nics: Vec<(String, String)> = Vec::new();
    if s.nics.is_empty() {
        nics.push(("eno1".into(), pxe.clone()));
    } else {
        let all_macs = s.nics.iter().all(|n| normalize_mac(n).is_some());
        for (i, n) in s.nics.iter().enumerate() {
            let (name, mac) = match normalize_mac(n) {
                Some(mac) => (format!("eno{}", i + 1), mac),
                None if i == 0 => (n.clone(), pxe.clone()),
                None => (n.clone(), derived_mac(&format!("{}/{}", s.serial, i))),
            };
            nics.push((name, mac));
        }
        if all_macs && !nics.iter().any(|(_, m)| *m == pxe) {
            nics.insert(0, ("eno0".into(), pxe.clone()));
        }
        // The PXE interface boots: put it first.
        if let Some(pos) = nics.iter().position(|(_, m)| *m == pxe) {
            let boot = nics.remove(pos);
            nics.insert(0, boot);
        }
    }
    let default_speed = if s.nic_speed_mbps == 0 {
        25_000
    } else {
        s.nic_speed_mbps
    };
    nics.into_iter()
        .enumerate()
        .map(|(i, (name, mac))| {
            let over = s
                .nic_speeds
                .iter()
                .find(|o| o.nic == name || normalize_mac(&o.nic).is_some_and(|m| m == mac));
            let speed = over
                .map(|o| o.speed_mbps)
                .filter(|v| *v > 0)
                .unwrap_or(default_speed);
            let connected = over.and_then(|o| o.link_connected).unwrap_or(true);
            let link_speed = over
                .and_then(|o| o.link_speed_mbps)
                .unwrap_or(if connected { speed } else { 0 });
            let (vendor, product, vendor_id, product_id, driver, pcie_gen, pcie_width) =
                nic_model(speed);
            Nic {
                name,
                mac_address: mac,
                vendor: vendor.into(),
                product: product.into(),
                vendor_id: vendor_id.into(),
                product_id: product_id.into(),
                driver: driver.into(),
                pci_address: format!("0000:{:02x}:00.{}", 0x31 + i / 2, i % 2),
                interface_speed: speed,
                link_speed,
                link_connected: connected,
                numa_node: over.and_then(|o| o.numa_node).unwrap_or(0),
                pcie_gen,
                pcie_width,
            }
        })
        .collect()
}

/// DMI facts a seed sets, by `hardware_info` key.
fn seed_dmi(s: &SeedMachine) -> BTreeMap<String, String> {
    let h = &s.hardware_info;
    [
        ("system_family", &h.system_family),
        ("system_version", &h.system_version),
        ("system_sku", &h.system_sku),
        ("mainboard_vendor", &h.mainboard_vendor),
        ("mainboard_product", &h.mainboard_product),
        ("mainboard_version", &h.mainboard_version),
        ("mainboard_firmware_vendor", &h.mainboard_firmware_vendor),
        ("mainboard_firmware_version", &h.mainboard_firmware_version),
        ("mainboard_firmware_date", &h.mainboard_firmware_date),
        ("chassis_vendor", &h.chassis_vendor),
        ("chassis_type", &h.chassis_type),
        ("chassis_version", &h.chassis_version),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
    .collect()
}

/// The hardware behind a seed machine.
pub fn hardware_from_seed(s: &SeedMachine) -> Hardware {
    let mut numa: Vec<NumaNode> = s
        .numa_nodes
        .iter()
        .map(|n| NumaNode {
            index: n.index,
            memory_mib: n.memory_mib,
            cores: n.cores.clone(),
        })
        .collect();
    numa.sort_by_key(|n| n.index);
    let numa_cpus: u32 = numa.iter().map(|n| n.cores.len() as u32).sum();
    let numa_mem: u64 = numa.iter().map(|n| n.memory_mib).sum();
    let cpu_count = match s.cpu_count {
        0 if numa_cpus > 0 => numa_cpus,
        0 => 8,
        n => n,
    };
    let memory_mib = match s.memory_mib {
        0 if numa_mem > 0 => numa_mem,
        0 => 16384,
        n => n,
    };
    let gpus: Vec<Gpu> = s
        .gpus
        .iter()
        .enumerate()
        .map(|(i, g)| gpu_from_seed(i, g))
        .collect();
    let nics = seed_nics(s);
    let numa_nodes = if numa.is_empty() {
        gpus.iter()
            .map(|g| g.numa_node + 1)
            .chain(nics.iter().map(|n| n.numa_node + 1))
            .max()
            .unwrap_or(1)
            .max(if cpu_count >= 32 { 2 } else { 1 })
    } else {
        numa.len() as u32
    };
    let storage_gb = if s.storage_gb == 0 { 480 } else { s.storage_gb };
    let disks = if s.disks.is_empty() {
        vec![Disk {
            name: "sda".into(),
            model: "TWIN-SSD".into(),
            serial: format!("{}-D0", s.serial),
            size_bytes: storage_gb * 1_000_000_000,
            tags: disk_tags("ssd"),
        }]
    } else {
        s.disks
            .iter()
            .enumerate()
            .map(|(i, d)| disk_from_seed(&s.serial, i, d))
            .collect()
    };
    let cpu_model = if s.cpu_model.trim().is_empty() {
        DEFAULT_CPU_MODEL.to_string()
    } else {
        s.cpu_model.trim().to_string()
    };
    let cpu_speed = model_speed_mhz(&cpu_model).unwrap_or(if s.cpu_speed_mhz == 0 {
        2400
    } else {
        s.cpu_speed_mhz
    });
    Hardware {
        serial: s.serial.clone(),
        vendor: s
            .hardware_info
            .system_vendor
            .clone()
            .unwrap_or_else(|| "Strata Twin".into()),
        product: s
            .hardware_info
            .system_product
            .clone()
            .unwrap_or_else(|| "Twin Server".into()),
        cpu_count,
        cpu_model,
        cpu_speed,
        memory_mib,
        numa_nodes,
        disks,
        gpus,
        info: seed_dmi(s),
        numa,
        nics,
    }
}

/// Generic hardware for machines created through the API without a seed behind them.
pub fn generic_hardware(serial: &str) -> Hardware {
    Hardware {
        serial: serial.to_string(),
        vendor: "Strata Twin".into(),
        product: "Twin Server".into(),
        cpu_count: 4,
        cpu_model: DEFAULT_CPU_MODEL.into(),
        cpu_speed: 2400,
        memory_mib: 8192,
        numa_nodes: 1,
        disks: vec![Disk {
            name: "sda".into(),
            model: "TWIN-SSD".into(),
            serial: format!("{serial}-D0"),
            size_bytes: 240_000_000_000,
            tags: disk_tags("ssd"),
        }],
        gpus: vec![],
        info: BTreeMap::new(),
        numa: vec![],
        nics: vec![],
    }
}

/// An interface as MAAS records a NIC port commissioning found.
pub fn interface_from_nic(id: u64, n: &Nic, vlan: Option<u64>) -> Interface {
    Interface {
        id,
        name: n.name.clone(),
        mac_address: n.mac_address.clone(),
        vlan_id: vlan,
        enabled: true,
        mtu: None,
        tags: vec![],
        links: vec![],
        kind: String::new(),
        parents: Vec::new(),
        params: Default::default(),
        ..Interface::default()
    }
    .with_nic(n)
}

impl Interface {
    /// This interface with the details commissioning reports for its port (name,
    /// vendor, product, PCI function, speeds, carrier, NUMA node), as MAAS's
    /// `update_interface_details` records them (canonical/maas
    /// src/metadataserver/builtin_scripts/hooks.py, `parse_interfaces`).
    pub fn with_nic(mut self, n: &Nic) -> Self {
        self.apply_nic(n);
        self
    }

    pub fn apply_nic(&mut self, n: &Nic) {
        self.name = n.name.clone();
        self.vendor = Some(n.vendor.clone());
        self.product = Some(n.product.clone());
        self.pci_address = Some(n.pci_address.clone());
        self.link_speed = n.link_speed;
        self.interface_speed = n.interface_speed;
        self.link_down = !n.link_connected;
        self.numa_node = n.numa_node;
        self.vendor_id = Some(n.vendor_id.clone());
        self.product_id = Some(n.product_id.clone());
        self.driver = Some(n.driver.clone());
    }
}

/// The interfaces of a seed machine; the PXE interface first, on `vlan`.
#[cfg(test)]
pub fn interfaces_from_seed(
    state: &mut State,
    s: &SeedMachine,
    vlan: Option<u64>,
) -> Vec<Interface> {
    interfaces_from_nics(state, &seed_nics(s), vlan)
}

/// Interfaces for NIC ports; the first (the PXE port) on `vlan`.
pub fn interfaces_from_nics(state: &mut State, nics: &[Nic], vlan: Option<u64>) -> Vec<Interface> {
    nics.iter()
        .enumerate()
        .map(|(i, n)| {
            interface_from_nic(
                state.next_id("interface", 1),
                n,
                if i == 0 { vlan } else { None },
            )
        })
        .collect()
}

fn zone_for(state: &mut State, name: Option<&str>) -> u64 {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => state.default_zone_id(),
        Some(n) => {
            if let Some(z) = state.zone_by_name(n) {
                return z.id;
            }
            let id = state.next_id("zone", 2);
            state.zones.insert(
                id,
                Zone {
                    id,
                    name: n.to_string(),
                    description: String::new(),
                },
            );
            id
        }
    }
}

fn controller(
    state: &mut State,
    ids: &mut Ids,
    hostname: String,
    node_type: u8,
    vlan: Option<u64>,
    dc: &str,
) -> Controller {
    let id = state.next_id("node", 1);
    let system_id = ids.system_id(state);
    let iface = Interface {
        id: state.next_id("interface", 1),
        name: "eth0".into(),
        mac_address: derived_mac(&format!("{dc}/{hostname}")),
        vlan_id: vlan,
        enabled: true,
        vendor: Some("Intel Corporation".into()),
        product: Some("Ethernet Controller X710 for 10GbE SFP+".into()),
        pci_address: Some("0000:01:00.0".into()),
        link_speed: 10000,
        interface_speed: 10000,
        mtu: None,
        tags: vec![],
        links: vec![],
        kind: String::new(),
        parents: Vec::new(),
        params: Default::default(),
        ..Interface::default()
    };
    let zone_id = state.default_zone_id();
    let domain_id = state.default_domain_id();
    Controller {
        id,
        system_id,
        hostname,
        node_type,
        domain_id,
        zone_id,
        cpu_count: 16,
        memory_mib: 65536,
        version: super::MAAS_VERSION.to_string(),
        interfaces: vec![iface],
        tags: vec![],
    }
}

/// Enlist one seed machine as New (hardware already known from enlistment).
pub fn enlist(state: &mut State, ids: &mut Ids, s: &SeedMachine, now: u64) -> String {
    let vlan = state.default_vlan_id();
    let id = state.next_id("node", 1);
    let system_id = ids.system_id(state);
    let hostname = ids.hostname(state);
    let zone_id = zone_for(state, s.zone.as_deref());
    let pool_id = state.default_pool_id();
    let domain_id = state.default_domain_id();
    let actual = hardware_from_seed(s);
    let interfaces = interfaces_from_nics(state, &actual.nics, vlan);
    let m = Machine {
        id,
        system_id: system_id.clone(),
        hostname,
        description: String::new(),
        domain_id,
        architecture: "amd64/generic".into(),
        min_hwe_kernel: String::new(),
        hwe_kernel: None,
        status: status::NEW,
        previous_status: status::NEW,
        status_message: "New".into(),
        error_description: String::new(),
        owner: None,
        agent_name: String::new(),
        owner_data: Default::default(),
        locked: false,
        zone_id,
        pool_id,
        tags: vec![],
        power_type: "manual".into(),
        power_parameters: Default::default(),
        power_on: false,
        osystem: String::new(),
        distro_series: String::new(),
        netboot: true,
        swap_size: None,
        user_data: None,
        interfaces,
        reported: Some(actual.clone()),
        actual,
        pending: None,
        commissioning: None,
        testing: None,
        installation: None,
        created_ms: now,
        updated_ms: now,
        hardware_uuid: uuid_from(&s.serial),
        power_actions: 0,
        deployed_kernel_opts: String::new(),
        power_error: false,
        gateway_link_ipv4: None,
        storage: Storage::default(),
        skip_storage: false,
        commissioning_fails: s.commissioning_fails,
        erasing: None,
        disk_erasures: Vec::new(),
    };
    state.insert_machine(m);
    system_id
}

pub fn uuid_from(seed: &str) -> String {
    let h = Sha256::digest(seed.as_bytes());
    let hex = hex::encode(&h[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A new fabric as MAAS makes one (`fabric-<id>`, with its untagged default VLAN);
/// returns the default VLAN's id.
fn new_fabric(st: &mut State) -> u64 {
    let id = st.next_id("fabric", 1);
    st.fabrics.insert(
        id,
        Fabric {
            id,
            name: format!("fabric-{id}"),
            description: String::new(),
            class_type: None,
        },
    );
    let vlan_id = st.next_id("vlan", 5001);
    st.vlans.insert(
        vlan_id,
        Vlan {
            id: vlan_id,
            fabric_id: id,
            vid: 0,
            name: None,
            mtu: 1500,
            ..Vlan::default()
        },
    );
    vlan_id
}

/// The network of an `address/prefix`, as MAAS stores a subnet's CIDR.
fn network_of(address: &str) -> Option<(String, String)> {
    let (ip, _) = address.split_once('/')?;
    let (net, len) = super::network::parse_cidr(address)?;
    Some((format!("{net}/{len}"), ip.to_string()))
}

fn has_interface_on(st: &State, vlan_id: u64) -> bool {
    st.controllers
        .iter()
        .flat_map(|c| c.interfaces.iter())
        .chain(st.machines.values().flat_map(|m| m.interfaces.iter()))
        .any(|i| i.vlan_id == Some(vlan_id))
}

/// Register a controller's interfaces the way MAAS does when rackd/regiond reports
/// them (canonical/maas `src/metadataserver/builtin_scripts/network.py`:
/// `get_interface_vlan_from_links`, `guess_vlan_for_interface`, `update_links`;
/// controllers always get auto-created VLANs, `auto_vlan_creation`):
/// - an interface whose address lies in a known subnet joins that subnet's VLAN;
/// - otherwise a physical interface takes the default fabric's untagged VLAN while
///   no interface is on it, else a new fabric (`fabric-N`) with its untagged VLAN;
/// - a VLAN interface takes the VLAN with its tag on its parent's fabric (created
///   when missing);
/// - the subnet of an unknown address is created on that VLAN, named by its CIDR,
///   with the interface's gateway when it lies inside it.
fn register(st: &mut State, owner: &str, nics: &[SeedNic]) -> Vec<Interface> {
    let mut out: Vec<Interface> = Vec::new();
    for (i, n) in nics.iter().enumerate() {
        let Some((cidr, ip)) = network_of(&n.address) else {
            continue;
        };
        let known = st
            .subnets
            .values()
            .find(|s| s.cidr == cidr)
            .map(|s| (s.id, s.vlan_id));
        let vlan_id = match (known, &n.vlan) {
            (Some((_, v)), _) => v,
            (None, Some((vid, parent))) => {
                let fabric = out
                    .iter()
                    .find(|p| &p.name == parent)
                    .and_then(|p| p.vlan_id)
                    .and_then(|v| st.vlans.get(&v))
                    .map(|v| v.fabric_id)
                    .unwrap_or(0);
                match st.vlan_by_fabric_vid(fabric, *vid) {
                    Some(v) => v.id,
                    None => {
                        let id = st.next_id("vlan", 5001);
                        st.vlans.insert(
                            id,
                            Vlan {
                                id,
                                fabric_id: fabric,
                                vid: *vid,
                                mtu: 1500,
                                ..Vlan::default()
                            },
                        );
                        id
                    }
                }
            }
            (None, None) => match st.default_vlan_id() {
                Some(d)
                    if !has_interface_on(st, d) && !out.iter().any(|i| i.vlan_id == Some(d)) =>
                {
                    d
                }
                _ => new_fabric(st),
            },
        };
        let subnet_id = match known {
            Some((id, _)) => id,
            None => {
                let id = st.next_id("subnet", 1);
                let gateway = n
                    .gateway
                    .clone()
                    .filter(|g| super::network::ip_in_cidr(g, &cidr));
                st.subnets.insert(
                    id,
                    Subnet {
                        id,
                        name: cidr.clone(),
                        description: String::new(),
                        vlan_id,
                        cidr: cidr.clone(),
                        gateway_ip: gateway,
                        dns_servers: vec![],
                        rdns_mode: 2,
                        allow_dns: true,
                        allow_proxy: true,
                        active_discovery: false,
                        managed: true,
                        disabled_boot_architectures: vec![],
                    },
                );
                id
            }
        };
        let is_vlan = n.vlan.is_some();
        let link_id = st.next_id("link", 1);
        out.push(Interface {
            id: st.next_id("interface", 1),
            name: n.name.clone(),
            mac_address: derived_mac(&format!(
                "{owner}/{}",
                if is_vlan { "vlan" } else { &n.name }
            )),
            vlan_id: Some(vlan_id),
            enabled: true,
            vendor: (!is_vlan).then(|| "Red Hat, Inc.".to_string()),
            product: (!is_vlan).then(|| "Virtio network device".to_string()),
            pci_address: (!is_vlan).then(|| format!("0000:00:{:02x}.0", 0x12 + i)),
            link_speed: 10000,
            interface_speed: 10000,
            mtu: None,
            tags: vec![],
            links: vec![Link {
                id: link_id,
                mode: "static".into(),
                subnet_id: Some(subnet_id),
                ip_address: Some(ip),
            }],
            kind: String::new(),
            parents: Vec::new(),
            params: Default::default(),
            ..Interface::default()
        });
    }
    out
}

fn seeded_controller(st: &mut State, ids: &mut Ids, c: &SeedController) -> Controller {
    let id = st.next_id("node", 1);
    let system_id = ids.system_id(st);
    let interfaces = register(st, &c.hostname, &c.interfaces);
    Controller {
        id,
        system_id,
        hostname: c.hostname.clone(),
        node_type: if c.rack { 2 } else { 3 },
        domain_id: st.default_domain_id(),
        zone_id: st.default_zone_id(),
        cpu_count: 16,
        memory_mib: 65536,
        version: super::MAAS_VERSION.to_string(),
        interfaces,
        tags: vec![],
    }
}

/// A fresh region for a DC with its seed machines.
pub fn fresh(seed: &DcSeed, ids: &mut Ids, now: u64) -> State {
    let dc = seed.name.as_str();
    let machines = &seed.machines;
    let mut st = State::default();
    st.domains.insert(
        0,
        Domain {
            id: 0,
            name: "maas".into(),
            authoritative: true,
            ttl: None,
            is_default: true,
        },
    );
    st.counters.insert("domain".into(), 1);
    st.zones.insert(
        1,
        Zone {
            id: 1,
            name: "default".into(),
            description: String::new(),
        },
    );
    st.counters.insert("zone".into(), 2);
    st.pools.insert(
        0,
        Pool {
            id: 0,
            name: "default".into(),
            description: "Default pool".into(),
        },
    );
    st.counters.insert("pool".into(), 1);
    st.fabrics.insert(
        0,
        Fabric {
            id: 0,
            name: "fabric-0".into(),
            description: String::new(),
            class_type: None,
        },
    );
    st.counters.insert("fabric".into(), 1);
    let vlan_id = st.next_id("vlan", 5001);
    st.vlans.insert(
        vlan_id,
        Vlan {
            id: vlan_id,
            fabric_id: 0,
            vid: 0,
            name: None,
            mtu: 1500,
            ..Vlan::default()
        },
    );
    let add = |st: &mut State, name: &str, arch: &str, sub: Option<&str>, title: &str| {
        let id = st.next_id("boot_resource", 1);
        st.boot_resources.push(BootResource {
            id,
            kind: "Synced".into(),
            name: name.into(),
            architecture: arch.into(),
            subarches: sub.map(str::to_string),
            title: title.into(),
        });
    };
    add(&mut st, "grub-efi-signed/uefi", "amd64/generic", None, "");
    add(&mut st, "grub-efi/uefi", "arm64/generic", None, "");
    add(&mut st, "pxelinux/pxe", "i386/generic", None, "");
    add(
        &mut st,
        "ubuntu/jammy",
        "amd64/ga-22.04",
        Some(
            "generic,hwe-p,hwe-q,hwe-r,hwe-s,hwe-t,hwe-u,hwe-v,hwe-w,ga-16.04,ga-16.10,ga-17.04,ga-17.10,ga-18.04,ga-18.10,ga-19.04,ga-19.10,ga-20.04,ga-20.10,ga-21.04,ga-21.10,ga-22.04",
        ),
        "Ubuntu 22.04 LTS",
    );
    add(
        &mut st,
        "ubuntu/jammy",
        "amd64/hwe-22.04",
        Some(
            "generic,hwe-p,hwe-q,hwe-r,hwe-s,hwe-t,hwe-u,hwe-v,hwe-w,ga-16.04,ga-16.10,ga-17.04,ga-17.10,ga-18.04,ga-18.10,ga-19.04,ga-19.10,ga-20.04,ga-20.10,ga-21.04,ga-21.10,ga-22.04,hwe-22.04",
        ),
        "Ubuntu 22.04 LTS",
    );
    add(
        &mut st,
        "ubuntu/noble",
        "amd64/ga-24.04",
        Some(
            "generic,hwe-p,hwe-q,hwe-r,hwe-s,hwe-t,hwe-u,hwe-v,hwe-w,ga-16.04,ga-16.10,ga-17.04,ga-17.10,ga-18.04,ga-18.10,ga-19.04,ga-19.10,ga-20.04,ga-20.10,ga-21.04,ga-21.10,ga-22.04,ga-22.10,ga-23.04,ga-23.10,ga-24.04",
        ),
        "Ubuntu 24.04 LTS",
    );
    add(
        &mut st,
        "ubuntu/noble",
        "amd64/hwe-24.04",
        Some(
            "generic,hwe-p,hwe-q,hwe-r,hwe-s,hwe-t,hwe-u,hwe-v,hwe-w,ga-16.04,ga-16.10,ga-17.04,ga-17.10,ga-18.04,ga-18.10,ga-19.04,ga-19.10,ga-20.04,ga-20.10,ga-21.04,ga-21.10,ga-22.04,ga-22.10,ga-23.04,ga-23.10,ga-24.04,hwe-24.04",
        ),
        "Ubuntu 24.04 LTS",
    );
    // Uploaded custom images: MAAS lists a name without `/` as osystem `custom`
    // (canonical/maas src/maasserver/utils/osystems.py, list_all_usable_osystems).
    for image in &seed.boot_images {
        let id = st.next_id("boot_resource", 1);
        st.boot_resources.push(BootResource {
            id,
            kind: "Uploaded".into(),
            name: image.strip_prefix("custom/").unwrap_or(image).to_string(),
            architecture: "amd64/generic".into(),
            subarches: None,
            title: image.clone(),
        });
    }
    for (k, v) in super::DEFAULT_CONFIG {
        st.config.insert(
            k.to_string(),
            serde_json::from_str(v).unwrap_or(serde_json::Value::Null),
        );
    }
    st.config.insert(
        "maas_name".into(),
        serde_json::Value::String(format!("{dc}-maas")),
    );

    if !seed.controllers.is_empty() {
        for c in &seed.controllers {
            let ctl = seeded_controller(&mut st, ids, c);
            st.controllers.push(ctl);
        }
        for m in machines.iter().filter(|m| !m.running) {
            enlist(&mut st, ids, m, now);
        }
        st.rng_state = ids.next_u64();
        return st;
    }
    let vlan = Some(vlan_id);
    let region = controller(&mut st, ids, format!("{dc}-maas-region"), 3, vlan, dc);
    st.controllers.push(region);
    for suffix in ["a", "b"] {
        let rack = controller(
            &mut st,
            ids,
            format!("{dc}-maas-rack-{suffix}"),
            2,
            vlan,
            dc,
        );
        st.controllers.push(rack);
    }
    for m in machines.iter().filter(|m| !m.running) {
        enlist(&mut st, ids, m, now);
    }
    st.rng_state = ids.next_u64();
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_ids_look_like_maas() {
        let st = State::default();
        let mut ids = Ids::new(7);
        for _ in 0..100 {
            let id = ids.system_id(&st);
            assert_eq!(id.len(), 6, "{id}");
            assert!(id.bytes().all(|c| ZCHARS.contains(&c)), "{id}");
        }
        let h = ids.hostname(&st);
        assert_eq!(h.split('-').count(), 2, "{h}");
    }

    #[test]
    fn seed_interfaces_boot_from_the_pxe_mac() {
        let mut st = State::default();
        let s = SeedMachine {
            serial: "S1".into(),
            pxe_mac: "52:54:00:00:00:0A".into(),
            nics: vec!["eno1".into(), "eno2".into()],
            ..SeedMachine::default()
        };
        let ifs = interfaces_from_seed(&mut st, &s, Some(5001));
        assert_eq!(ifs[0].mac_address, "52:54:00:00:00:0a");
        assert_eq!(ifs[0].vlan_id, Some(5001));
        assert_eq!(ifs.len(), 2);
        assert_ne!(ifs[1].mac_address, ifs[0].mac_address);
    }
}
