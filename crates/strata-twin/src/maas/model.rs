//! The MAAS region's state: machines, controllers, networking, zones, pools, tags.
//!
//! Everything here is plain data (serialised as-is for `--state FILE`). Rendering to the
//! API's JSON lives in `render.rs`; behaviour in the handler modules.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// MAAS node statuses (`NODE_STATUS` in MAAS), numeric as on the wire.
pub mod status {
    pub const NEW: u8 = 0;
    pub const COMMISSIONING: u8 = 1;
    pub const FAILED_COMMISSIONING: u8 = 2;
    pub const MISSING: u8 = 3;
    pub const READY: u8 = 4;
    pub const RESERVED: u8 = 5;
    pub const DEPLOYED: u8 = 6;
    pub const RETIRED: u8 = 7;
    pub const BROKEN: u8 = 8;
    pub const DEPLOYING: u8 = 9;
    pub const ALLOCATED: u8 = 10;
    pub const FAILED_DEPLOYMENT: u8 = 11;
    pub const RELEASING: u8 = 12;
    pub const FAILED_RELEASING: u8 = 13;
    pub const DISK_ERASING: u8 = 14;
    pub const FAILED_DISK_ERASING: u8 = 15;
    pub const RESCUE_MODE: u8 = 16;
    pub const ENTERING_RESCUE_MODE: u8 = 17;
    pub const FAILED_ENTERING_RESCUE_MODE: u8 = 18;
    pub const EXITING_RESCUE_MODE: u8 = 19;
    pub const FAILED_EXITING_RESCUE_MODE: u8 = 20;
    pub const TESTING: u8 = 21;
    pub const FAILED_TESTING: u8 = 22;

    /// (code, display name as in `status_name`, short label as in the `status` filter).
    pub const TABLE: &[(u8, &str, &str)] = &[
        (NEW, "New", "new"),
        (COMMISSIONING, "Commissioning", "commissioning"),
        (
            FAILED_COMMISSIONING,
            "Failed commissioning",
            "failed_commissioning",
        ),
        (MISSING, "Missing", "missing"),
        (READY, "Ready", "ready"),
        (RESERVED, "Reserved", "reserved"),
        (DEPLOYED, "Deployed", "deployed"),
        (RETIRED, "Retired", "retired"),
        (BROKEN, "Broken", "broken"),
        (DEPLOYING, "Deploying", "deploying"),
        (ALLOCATED, "Allocated", "allocated"),
        (FAILED_DEPLOYMENT, "Failed deployment", "failed_deployment"),
        (RELEASING, "Releasing", "releasing"),
        (FAILED_RELEASING, "Releasing failed", "failed_releasing"),
        (DISK_ERASING, "Disk erasing", "disk_erasing"),
        (
            FAILED_DISK_ERASING,
            "Failed disk erasing",
            "failed_disk_erasing",
        ),
        (RESCUE_MODE, "Rescue mode", "rescue_mode"),
        (
            ENTERING_RESCUE_MODE,
            "Entering rescue mode",
            "entering_rescue_mode",
        ),
        (
            FAILED_ENTERING_RESCUE_MODE,
            "Failed to enter rescue mode",
            "failed_entering_rescue_mode",
        ),
        (
            EXITING_RESCUE_MODE,
            "Exiting rescue mode",
            "exiting_rescue_mode",
        ),
        (
            FAILED_EXITING_RESCUE_MODE,
            "Failed to exit rescue mode",
            "failed_exiting_rescue_mode",
        ),
        (TESTING, "Testing", "testing"),
        (FAILED_TESTING, "Failed testing", "failed_testing"),
    ];

    pub fn name(code: u8) -> &'static str {
        TABLE
            .iter()
            .find(|t| t.0 == code)
            .map(|t| t.1)
            .unwrap_or("Unknown")
    }

    /// A status from its code, short label (`ready`), display name (`Ready`) or constant
    /// name (`READY`).
    pub fn parse(s: &str) -> Option<u8> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u8>() {
            return TABLE.iter().find(|t| t.0 == n).map(|t| t.0);
        }
        let lower = s.to_ascii_lowercase();
        TABLE
            .iter()
            .find(|t| t.2 == lower || t.1.eq_ignore_ascii_case(s) || t.2 == lower.replace(' ', "_"))
            .map(|t| t.0)
    }

    /// Statuses a machine may be released from (MAAS `RELEASABLE_STATUSES`).
    pub const RELEASABLE: &[u8] = &[
        ALLOCATED,
        RESERVED,
        BROKEN,
        DEPLOYING,
        DEPLOYED,
        FAILED_DEPLOYMENT,
        FAILED_DISK_ERASING,
        FAILED_RELEASING,
    ];

    /// Statuses from which commissioning may start (those whose MAAS transition table
    /// allows COMMISSIONING).
    pub const COMMISSIONABLE: &[u8] = &[
        NEW,
        FAILED_COMMISSIONING,
        READY,
        MISSING,
        BROKEN,
        FAILED_TESTING,
    ];

    /// The "simple status" MAAS shows in its UI and accepts in `simple_status` filters.
    pub fn simple(code: u8) -> &'static str {
        match code {
            NEW => "New",
            READY => "Ready",
            ALLOCATED | RESERVED => "Allocated",
            DEPLOYED => "Deployed",
            DEPLOYING => "Deploying",
            COMMISSIONING => "Commissioning",
            TESTING => "Testing",
            RELEASING | DISK_ERASING => "Releasing",
            BROKEN => "Broken",
            FAILED_COMMISSIONING
            | FAILED_DEPLOYMENT
            | FAILED_RELEASING
            | FAILED_DISK_ERASING
            | FAILED_TESTING
            | FAILED_ENTERING_RESCUE_MODE
            | FAILED_EXITING_RESCUE_MODE => "Failed",
            RESCUE_MODE | ENTERING_RESCUE_MODE | EXITING_RESCUE_MODE => "Rescue Mode",
            _ => "Other",
        }
    }
}

/// Script (commissioning/testing result) statuses, as MAAS reports them
/// (canonical/maas src/maascommon/enums/scriptresult.py, src/metadataserver/enum.py
/// `SCRIPT_STATUS_CHOICES`).
pub mod script_status {
    pub const PENDING: u8 = 0;
    pub const RUNNING: u8 = 1;
    pub const PASSED: u8 = 2;
    pub const FAILED: u8 = 3;
    pub const TIMEDOUT: u8 = 4;
    pub const ABORTED: u8 = 5;
    pub const DEGRADED: u8 = 6;
    pub const INSTALLING: u8 = 7;
    pub const FAILED_INSTALLING: u8 = 8;
    pub const APPLYING_NETCONF: u8 = 10;
    pub const FAILED_APPLYING_NETCONF: u8 = 11;

    pub fn name(code: u8) -> &'static str {
        match code {
            0 => "Pending",
            1 => "Running",
            2 => "Passed",
            3 => "Failed",
            4 => "Timed out",
            5 => "Aborted",
            6 => "Degraded",
            7 => "Installing dependencies",
            8 => "Failed installing dependencies",
            9 => "Skipped",
            10 => "Applying custom network configuration",
            11 => "Failed to apply custom network configuration",
            _ => "Unknown",
        }
    }
}

/// The API user every valid key maps to.
pub const API_USER: &str = "admin";

/// Power types MAAS ships drivers for (the accepted values of `power_type`).
pub const POWER_TYPES: &[&str] = &[
    "amt", "apc", "dli", "eaton", "hmc", "hmcz", "ipmi", "lxd", "manual", "moonshot", "mscm",
    "msftocs", "nova", "openbmc", "proxmox", "recs_box", "redfish", "sm15k", "ucsm", "virsh",
    "vmware", "webhook", "wedge",
];

/// Architectures with boot resources on a fresh site.
pub const ARCHITECTURES: &[&str] = &[
    "amd64/generic",
    "arm64/generic",
    "i386/generic",
    "ppc64el/generic",
    "s390x/generic",
];

/// Ubuntu releases synced on a fresh site: (series, version).
pub const RELEASES: &[(&str, &str)] = &[("jammy", "22.04"), ("noble", "24.04")];

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Next id per table (`fabric`, `vlan`, `interface`, `node`, ...).
    pub counters: BTreeMap<String, u64>,
    /// Machines by internal numeric id (creation order, as MAAS orders them).
    pub machines: BTreeMap<u64, Machine>,
    #[serde(skip)]
    pub by_system_id: HashMap<String, u64>,
    /// MAC address → machine id (machines' interfaces).
    #[serde(skip)]
    pub by_mac: HashMap<String, u64>,
    /// Hostname → machine id.
    #[serde(skip)]
    pub by_hostname: HashMap<String, u64>,
    pub controllers: Vec<Controller>,
    pub fabrics: BTreeMap<u64, Fabric>,
    pub vlans: BTreeMap<u64, Vlan>,
    pub subnets: BTreeMap<u64, Subnet>,
    pub ipranges: BTreeMap<u64, IpRange>,
    pub spaces: BTreeMap<u64, Space>,
    pub zones: BTreeMap<u64, Zone>,
    pub pools: BTreeMap<u64, Pool>,
    pub tags: BTreeMap<String, Tag>,
    pub domains: BTreeMap<u64, Domain>,
    /// DNS resources (address records) by id.
    #[serde(default)]
    pub dnsresources: BTreeMap<u64, DnsResource>,
    pub boot_resources: Vec<BootResource>,
    /// Reserved IPs (`/reservedips/`, MAAS 3.6): DHCP host entries, address by MAC.
    #[serde(default)]
    pub reserved_ips: BTreeMap<u64, ReservedIp>,
    /// User scripts (`/scripts/`) by id; MAAS's builtin scripts are not stored
    /// (`scripts::BUILTIN`).
    #[serde(default)]
    pub scripts: BTreeMap<u64, Script>,
    pub config: BTreeMap<String, serde_json::Value>,
    /// State of the identifier generator (system ids, hostnames).
    pub rng_state: u64,
}

impl State {
    /// Allocate the next id of a table.
    pub fn next_id(&mut self, table: &str, first: u64) -> u64 {
        let n = self.counters.entry(table.to_string()).or_insert(first);
        let id = *n;
        *n += 1;
        id
    }

    /// Rebuild the lookup indices (after loading saved state or bulk edits).
    pub fn reindex(&mut self) {
        self.by_system_id = self
            .machines
            .iter()
            .map(|(id, m)| (m.system_id.clone(), *id))
            .collect();
        self.by_mac.clear();
        self.by_hostname.clear();
        for (id, m) in &self.machines {
            for i in &m.interfaces {
                self.by_mac.insert(i.mac_address.clone(), *id);
            }
            self.by_hostname.insert(m.hostname.clone(), *id);
        }
    }

    /// Add a machine, keeping the indices in step.
    pub fn insert_machine(&mut self, m: Machine) {
        self.by_system_id.insert(m.system_id.clone(), m.id);
        for i in &m.interfaces {
            self.by_mac.insert(i.mac_address.clone(), m.id);
        }
        self.by_hostname.insert(m.hostname.clone(), m.id);
        self.machines.insert(m.id, m);
    }

    /// Remove a machine by system id, keeping the indices in step.
    pub fn remove_machine(&mut self, system_id: &str) -> Option<Machine> {
        let id = self.by_system_id.remove(system_id)?;
        let m = self.machines.remove(&id)?;
        for i in &m.interfaces {
            if self.by_mac.get(&i.mac_address) == Some(&id) {
                self.by_mac.remove(&i.mac_address);
            }
        }
        if self.by_hostname.get(&m.hostname) == Some(&id) {
            self.by_hostname.remove(&m.hostname);
        }
        Some(m)
    }

    /// Record a machine's new hostname in the index.
    pub fn rename_machine(&mut self, system_id: &str, hostname: &str) {
        let Some(&id) = self.by_system_id.get(system_id) else {
            return;
        };
        if let Some(m) = self.machines.get_mut(&id) {
            if self.by_hostname.get(&m.hostname) == Some(&id) {
                self.by_hostname.remove(&m.hostname);
            }
            m.hostname = hostname.to_string();
            self.by_hostname.insert(hostname.to_string(), id);
        }
    }

    pub fn machine(&self, system_id: &str) -> Option<&Machine> {
        self.by_system_id
            .get(system_id)
            .and_then(|id| self.machines.get(id))
    }

    pub fn machine_mut(&mut self, system_id: &str) -> Option<&mut Machine> {
        let id = *self.by_system_id.get(system_id)?;
        self.machines.get_mut(&id)
    }

    pub fn rack(&self, key: &str) -> Option<&Controller> {
        self.controllers
            .iter()
            .find(|c| c.is_rack() && (c.system_id == key || c.hostname == key))
    }

    pub fn controller(&self, system_id: &str) -> Option<&Controller> {
        self.controllers.iter().find(|c| c.system_id == system_id)
    }

    pub fn zone_by_name(&self, name: &str) -> Option<&Zone> {
        self.zones.values().find(|z| z.name == name)
    }

    pub fn pool_by_name(&self, name: &str) -> Option<&Pool> {
        self.pools.values().find(|p| p.name == name)
    }

    pub fn default_zone_id(&self) -> u64 {
        self.zones
            .values()
            .find(|z| z.name == "default")
            .map(|z| z.id)
            .unwrap_or(1)
    }

    pub fn default_pool_id(&self) -> u64 {
        self.pools
            .values()
            .find(|p| p.name == "default")
            .map(|p| p.id)
            .unwrap_or(0)
    }

    pub fn default_domain_id(&self) -> u64 {
        self.domains
            .values()
            .find(|d| d.is_default)
            .map(|d| d.id)
            .unwrap_or(0)
    }

    pub fn domain_by_key(&self, key: &str) -> Option<&Domain> {
        if let Ok(id) = key.parse::<u64>() {
            return self.domains.get(&id);
        }
        self.domains.values().find(|d| d.name == key)
    }

    /// The untagged VLAN of the default fabric.
    pub fn default_vlan_id(&self) -> Option<u64> {
        let fabric = self.fabrics.keys().next().copied()?;
        self.vlans
            .values()
            .find(|v| v.fabric_id == fabric && v.vid == 0)
            .map(|v| v.id)
    }

    pub fn vlan_by_fabric_vid(&self, fabric_id: u64, vid: u16) -> Option<&Vlan> {
        self.vlans
            .values()
            .find(|v| v.fabric_id == fabric_id && v.vid == vid)
    }

    pub fn fabric_by_key(&self, key: &str) -> Option<&Fabric> {
        if let Ok(id) = key.parse::<u64>() {
            return self.fabrics.get(&id);
        }
        self.fabrics.values().find(|f| f.name == key)
    }

    pub fn space_by_key(&self, key: &str) -> Option<&Space> {
        if let Ok(id) = key.parse::<u64>() {
            return self.spaces.get(&id);
        }
        self.spaces.values().find(|s| s.name == key)
    }

    /// A subnet by id, `name:`/`cidr:` specifier, name or CIDR.
    pub fn subnet_by_key(&self, key: &str) -> Option<&Subnet> {
        if let Ok(id) = key.parse::<u64>() {
            return self.subnets.get(&id);
        }
        if let Some(name) = key.strip_prefix("name:") {
            return self.subnets.values().find(|s| s.name == name);
        }
        let cidr = key.strip_prefix("cidr:").unwrap_or(key);
        self.subnets
            .values()
            .find(|s| s.cidr == cidr || s.name == key)
    }

    /// Every MAC address in use, with the hostname of its node.
    pub fn mac_owner(&self, mac: &str) -> Option<String> {
        if let Some(m) = self.by_mac.get(mac).and_then(|id| self.machines.get(id)) {
            return Some(m.hostname.clone());
        }
        for c in &self.controllers {
            if c.interfaces.iter().any(|i| i.mac_address == mac) {
                return Some(c.hostname.clone());
            }
        }
        None
    }

    pub fn hostname_taken(&self, hostname: &str, except: Option<&str>) -> bool {
        self.by_hostname
            .get(hostname)
            .and_then(|id| self.machines.get(id))
            .is_some_and(|m| Some(m.system_id.as_str()) != except)
            || self.controllers.iter().any(|c| c.hostname == hostname)
    }
}

/// Hardware as commissioning reports it (or the truth behind it, for `actual`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Hardware {
    pub serial: String,
    pub vendor: String,
    pub product: String,
    pub cpu_count: u32,
    pub cpu_model: String,
    /// MHz.
    pub cpu_speed: u32,
    pub memory_mib: u64,
    pub numa_nodes: u32,
    pub disks: Vec<Disk>,
    pub gpus: Vec<Gpu>,
    /// DMI facts by MAAS `hardware_info` key (`system_family`,
    /// `mainboard_firmware_version`, `chassis_type`, ...), over the twin's defaults.
    #[serde(default)]
    pub info: BTreeMap<String, String>,
    /// The NUMA nodes with their memory and CPU ids; empty: `numa_nodes` nodes
    /// sharing CPUs and memory evenly.
    #[serde(default)]
    pub numa: Vec<NumaNode>,
    /// The physical NIC ports, as commissioning finds them.
    #[serde(default)]
    pub nics: Vec<Nic>,
}

impl Hardware {
    /// The NUMA nodes: the explicit ones, or `numa_nodes` nodes sharing the CPUs
    /// and memory evenly (the last one takes the remainder).
    pub fn numa_layout(&self) -> Vec<NumaNode> {
        if !self.numa.is_empty() {
            return self.numa.clone();
        }
        let n = self.numa_nodes.max(1);
        let per_cpu = self.cpu_count / n;
        let per_mem = self.memory_mib / u64::from(n);
        (0..n)
            .map(|i| {
                let last = i + 1 == n;
                let start = i * per_cpu;
                let end = if last {
                    self.cpu_count
                } else {
                    start + per_cpu
                };
                NumaNode {
                    index: i,
                    memory_mib: if last {
                        self.memory_mib - per_mem * u64::from(n - 1)
                    } else {
                        per_mem
                    },
                    cores: (start..end).collect(),
                }
            })
            .collect()
    }

    /// A DMI fact by its `hardware_info` key, if known.
    pub fn dmi(&self, key: &str) -> Option<&str> {
        self.info.get(key).map(String::as_str)
    }
}

/// One NUMA node (MAAS `NUMANode`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NumaNode {
    pub index: u32,
    /// MiB.
    pub memory_mib: u64,
    /// CPU (thread) ids.
    pub cores: Vec<u32>,
}

/// A physical NIC port and its PCI function, as commissioning reports it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Nic {
    pub name: String,
    pub mac_address: String,
    pub vendor: String,
    pub product: String,
    /// PCI ids, hex without `0x`.
    pub vendor_id: String,
    pub product_id: String,
    /// The kernel driver bound during commissioning.
    pub driver: String,
    pub pci_address: String,
    /// Mbit/s: what the port supports (`interface_speed`) and what its link
    /// negotiated (`link_speed`, 0 when down).
    pub interface_speed: u64,
    pub link_speed: u64,
    pub link_connected: bool,
    pub numa_node: u32,
    /// The PCIe link of the NIC's function (negotiated = supported).
    pub pcie_gen: u8,
    pub pcie_width: u8,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Disk {
    pub name: String,
    pub model: String,
    pub serial: String,
    pub size_bytes: u64,
    /// Tags commissioning gives the disk (`ssd`, or `rotary` and `<rpm>rpm`, plus
    /// `sata`), as MAAS's `_get_tags_from_block_info` does.
    #[serde(default = "ssd_tags")]
    pub tags: Vec<String>,
}

fn ssd_tags() -> Vec<String> {
    vec!["ssd".into()]
}

/// A machine's storage configuration over its physical disks (MAAS's partition
/// tables, partitions, RAIDs with their virtual block devices, and filesystems).
/// Partition, RAID and virtual block device ids are region-wide (`State::next_id`),
/// as MAAS's are.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Storage {
    /// The boot disk chosen with `set_boot_disk`; `None`: MAAS's fallback, the
    /// physical disk with the lowest id of at least 512 MiB.
    #[serde(default)]
    pub boot_disk: Option<u64>,
    /// Block devices (ids) carrying a partition table (always GPT in the twin).
    #[serde(default)]
    pub partition_tables: Vec<u64>,
    #[serde(default)]
    pub partitions: Vec<Partition>,
    #[serde(default)]
    pub raids: Vec<Raid>,
    #[serde(default)]
    pub filesystems: Vec<Filesystem>,
}

/// A partition in the partition table of block device `device_id`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Partition {
    pub id: u64,
    pub uuid: String,
    pub device_id: u64,
    /// The partition number (`sda-part<index>`).
    pub index: u32,
    pub size: u64,
    pub bootable: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A RAID (MAAS filesystem group) and its virtual block device.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Raid {
    pub id: u64,
    pub uuid: String,
    pub name: String,
    /// `raid-0`, `raid-1`, `raid-5`, `raid-6` or `raid-10`.
    pub level: String,
    /// The virtual block device's id, uuid and size (set when the RAID is built).
    pub device_id: u64,
    pub device_uuid: String,
    pub size: u64,
}

/// What a filesystem sits on.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Holder {
    /// A block device, physical or virtual, by id.
    BlockDevice(u64),
    /// A partition, by id.
    Partition(u64),
}

/// A filesystem on a block device or partition. RAID members carry one of type
/// `raid` (or `raid-spare`) naming their RAID in `raid`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Filesystem {
    pub uuid: String,
    pub fstype: String,
    pub label: Option<String>,
    pub mount_point: Option<String>,
    pub mount_options: Option<String>,
    pub on: Holder,
    #[serde(default)]
    pub raid: Option<u64>,
    /// Made while the machine was allocated (MAAS's `acquired`): what an
    /// allocated machine sees, dropped when it is released.
    #[serde(default)]
    pub acquired: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Gpu {
    pub model: String,
    pub vendor_id: String,
    pub product_id: String,
    pub vendor_name: String,
    pub pci_address: String,
    pub numa_node: u32,
    /// Negotiated PCIe link.
    pub link_gen: u8,
    pub link_width: u8,
    /// What the slot/device support.
    pub max_gen: u8,
    pub max_width: u8,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Interface {
    pub id: u64,
    pub name: String,
    pub mac_address: String,
    pub vlan_id: Option<u64>,
    pub enabled: bool,
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub pci_address: Option<String>,
    /// Mbit/s.
    pub link_speed: u64,
    pub interface_speed: u64,
    pub mtu: Option<u32>,
    pub tags: Vec<String>,
    pub links: Vec<Link>,
    /// `physical` (empty: physical), `bond` or `vlan`.
    #[serde(default)]
    pub kind: String,
    /// No carrier on the port (MAAS `link_connected: false`).
    #[serde(default)]
    pub link_down: bool,
    /// The NUMA node of the port's PCI function.
    #[serde(default)]
    pub numa_node: u32,
    /// PCI vendor and product ids and the driver commissioning saw bound (physical
    /// ports only; `None` for state saved before the twin recorded them).
    #[serde(default)]
    pub vendor_id: Option<String>,
    #[serde(default)]
    pub product_id: Option<String>,
    #[serde(default)]
    pub driver: Option<String>,
    /// The interfaces (ids) a bond is made of, or the one a VLAN interface rides on.
    #[serde(default)]
    pub parents: Vec<u64>,
    /// A bond's `bond_*` parameters as MAAS stores them (`bond_mode`, `bond_miimon`,
    /// `bond_lacp_rate`, `bond_xmit_hash_policy`, ...).
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
}

impl Interface {
    /// `physical`, `bond` or `vlan`.
    pub fn kind(&self) -> &str {
        if self.kind.is_empty() {
            "physical"
        } else {
            &self.kind
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Link {
    pub id: u64,
    /// `auto`, `dhcp`, `static`, `link_up`.
    pub mode: String,
    pub subnet_id: Option<u64>,
    pub ip_address: Option<String>,
}

/// An asynchronous transition in progress.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Phase {
    Commissioning,
    Testing,
    Deploying,
    Releasing,
    DiskErasing,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pending {
    pub phase: Phase,
    /// Wall-clock milliseconds since the epoch when the phase ends.
    pub due_ms: u64,
    pub slow: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScriptResult {
    pub id: u64,
    pub name: String,
    pub status: u8,
    pub exit_status: Option<i32>,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    /// `node`, `cpu`, `memory`, `storage`, `network`, `gpu` (hardware_type of the script).
    pub hardware_type: u8,
    /// The combined output (stdout and stderr interleaved as they came), then each
    /// stream alone and the YAML result file, as MAAS stores them; meaningful when
    /// `captured` (builtin scripts' outputs are generated from the reported hardware).
    pub output: String,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub result: String,
    #[serde(default)]
    pub captured: bool,
    /// The script (and its revision, a versioned text file) this result runs.
    #[serde(default)]
    pub script_id: Option<u64>,
    #[serde(default)]
    pub script_revision_id: Option<u64>,
    /// A user script waiting to run: its text and timeout (seconds, 0: none),
    /// taken when the set was created (MAAS pins the revision); cleared once run.
    #[serde(default)]
    pub pending_script: Option<(String, u64)>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScriptSet {
    pub id: u64,
    /// 0 commissioning, 1 installation, 2 testing, 3 release.
    pub result_type: u8,
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub results: Vec<ScriptResult>,
}

impl ScriptSet {
    /// The set's status, derived from its results as MAAS does: the first status
    /// present in MAAS's order of precedence, the running ones reported as Running
    /// and the failed ones (timed out included) as Failed (canonical/maas
    /// src/maasserver/models/scriptset.py `get_overall_status`).
    pub fn status(&self) -> u8 {
        use script_status::*;
        let present: Vec<u8> = self.results.iter().map(|r| r.status).collect();
        for s in [
            RUNNING,
            APPLYING_NETCONF,
            INSTALLING,
            PENDING,
            ABORTED,
            FAILED,
            FAILED_APPLYING_NETCONF,
            FAILED_INSTALLING,
            TIMEDOUT,
            DEGRADED,
        ] {
            if present.contains(&s) {
                return match s {
                    RUNNING | APPLYING_NETCONF | INSTALLING => RUNNING,
                    FAILED | FAILED_APPLYING_NETCONF | FAILED_INSTALLING | TIMEDOUT => FAILED,
                    other => other,
                };
            }
        }
        PASSED
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub id: u64,
    pub system_id: String,
    pub hostname: String,
    pub description: String,
    pub domain_id: u64,
    pub architecture: String,
    pub min_hwe_kernel: String,
    pub hwe_kernel: Option<String>,
    pub status: u8,
    pub previous_status: u8,
    pub status_message: String,
    pub error_description: String,
    pub owner: Option<String>,
    pub agent_name: String,
    pub owner_data: BTreeMap<String, String>,
    pub locked: bool,
    pub zone_id: u64,
    pub pool_id: u64,
    pub tags: Vec<String>,
    pub power_type: String,
    pub power_parameters: BTreeMap<String, String>,
    pub power_on: bool,
    pub osystem: String,
    pub distro_series: String,
    pub netboot: bool,
    pub swap_size: Option<u64>,
    pub user_data: Option<String>,
    pub interfaces: Vec<Interface>,
    /// The hardware behind the machine (what commissioning finds, faults aside).
    pub actual: Hardware,
    /// What MAAS knows from the last commissioning (or enlistment); `None` before.
    pub reported: Option<Hardware>,
    pub pending: Option<Pending>,
    pub commissioning: Option<ScriptSet>,
    pub testing: Option<ScriptSet>,
    pub installation: Option<ScriptSet>,
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default)]
    pub hardware_uuid: String,
    /// Power actions (on, off, cycle) the twin drove through this machine's BMC;
    /// never rendered (evidence for tests: a running host must see none).
    #[serde(default)]
    pub power_actions: u64,
    /// The last power action or query could not reach the BMC (`power_state`
    /// `error`, as MAAS shows it).
    #[serde(default)]
    pub power_error: bool,
    /// The extra kernel options the deployed OS was booted with (MAAS's effective
    /// kernel options at deploy); never rendered, evidence for tests.
    #[serde(default)]
    pub deployed_kernel_opts: String,
    /// The link (`Link::id`) whose subnet's gateway is the machine's IPv4 default
    /// gateway (`set_default_gateway`); `None`: MAAS picks one.
    #[serde(default)]
    pub gateway_link_ipv4: Option<u64>,
    /// Partitions, RAIDs and filesystems on the reported disks.
    #[serde(default)]
    pub storage: Storage,
    /// The running commissioning was started with `skip_storage`: it keeps the
    /// storage configuration and applies no default layout.
    #[serde(default)]
    pub skip_storage: bool,
    /// Every commissioning of this machine fails (a seed's `commissioning_fails`).
    #[serde(default)]
    pub commissioning_fails: bool,
    /// The disk erasure under way (`full`, `quick`, `secure` or `secure+quick`, as
    /// release asked for it or the configuration defaults to).
    #[serde(default)]
    pub erasing: Option<String>,
    /// The disk erasures that completed, oldest first; never rendered (MAAS keeps
    /// them as events), evidence for tests (`summary()["disk_erasures"]`).
    #[serde(default)]
    pub disk_erasures: Vec<String>,
}

impl Machine {
    pub fn fault_ids(&self) -> [&str; 3] {
        [
            self.system_id.as_str(),
            self.actual.serial.as_str(),
            self.hostname.as_str(),
        ]
    }

    /// `on`, `off` or `unknown` as MAAS reports it (manual/unset power types can't be
    /// queried).
    pub fn power_state(&self) -> &'static str {
        if self.power_type.is_empty() || self.power_type == "manual" {
            "unknown"
        } else if self.power_error {
            "error"
        } else if self.power_on {
            "on"
        } else {
            "off"
        }
    }

    pub fn storage_bytes(&self) -> u64 {
        self.reported
            .as_ref()
            .map(|h| h.disks.iter().map(|d| d.size_bytes).sum())
            .unwrap_or(0)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Controller {
    pub id: u64,
    pub system_id: String,
    pub hostname: String,
    /// 2 rack, 3 region, 4 region+rack.
    pub node_type: u8,
    pub domain_id: u64,
    pub zone_id: u64,
    pub cpu_count: u32,
    pub memory_mib: u64,
    pub version: String,
    pub interfaces: Vec<Interface>,
    pub tags: Vec<String>,
}

impl Controller {
    pub fn is_rack(&self) -> bool {
        self.node_type == 2 || self.node_type == 4
    }
    pub fn is_region(&self) -> bool {
        self.node_type == 3 || self.node_type == 4
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Fabric {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub class_type: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Vlan {
    pub id: u64,
    pub fabric_id: u64,
    pub vid: u16,
    pub name: Option<String>,
    pub description: String,
    pub mtu: u32,
    pub dhcp_on: bool,
    pub primary_rack: Option<String>,
    pub secondary_rack: Option<String>,
    pub relay_vlan: Option<u64>,
    pub space_id: Option<u64>,
    pub external_dhcp: Option<String>,
}

impl Vlan {
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ if self.vid == 0 => "untagged".to_string(),
            _ => self.vid.to_string(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Subnet {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub vlan_id: u64,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub dns_servers: Vec<String>,
    pub rdns_mode: u8,
    pub allow_dns: bool,
    pub allow_proxy: bool,
    pub active_discovery: bool,
    pub managed: bool,
    pub disabled_boot_architectures: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IpRange {
    pub id: u64,
    /// `dynamic` or `reserved`.
    pub kind: String,
    pub start_ip: String,
    pub end_ip: String,
    pub subnet_id: u64,
    pub comment: String,
}

/// A user script (MAAS `Script`, canonical/maas src/maasserver/models/script.py):
/// metadata, and its text as a versioned file (newest revision first).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Script {
    pub id: u64,
    pub name: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    /// 0 commissioning, 2 testing, 3 release, 4 deployment.
    pub script_type: u8,
    /// 0 node, 1 cpu, 2 memory, 3 storage, 4 network, 5 gpu.
    pub hardware_type: u8,
    /// 0 disabled, 1 instance, 2 any.
    pub parallel: u8,
    pub results: Value,
    pub parameters: Value,
    pub packages: Value,
    /// Seconds; 0: no timeout.
    pub timeout_s: u64,
    pub destructive: bool,
    pub for_hardware: Vec<String>,
    pub may_reboot: bool,
    pub recommission: bool,
    pub apply_configured_networking: bool,
    /// Revisions, newest first.
    pub history: Vec<ScriptRevision>,
    /// Shipped with MAAS (the builtins are never stored; see `scripts::BUILTIN`).
    #[serde(default)]
    pub default: bool,
}

/// One revision of a script's text (MAAS `VersionedTextFile`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScriptRevision {
    pub id: u64,
    pub comment: Option<String>,
    pub created_ms: u64,
    pub data: String,
}

/// A reserved IP: MAAS's DHCP serves `ip` to `mac_address` (a host entry).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReservedIp {
    pub id: u64,
    pub ip: String,
    pub subnet_id: u64,
    pub mac_address: String,
    pub comment: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Space {
    pub id: u64,
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Zone {
    pub id: u64,
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pool {
    pub id: u64,
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    pub comment: String,
    pub definition: String,
    pub kernel_opts: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Domain {
    pub id: u64,
    pub name: String,
    pub authoritative: bool,
    pub ttl: Option<u32>,
    pub is_default: bool,
}

/// A DNS resource: a name in a domain with its address records.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DnsResource {
    pub id: u64,
    /// The label (`@` for the domain itself).
    pub name: String,
    pub domain_id: u64,
    pub address_ttl: Option<u32>,
    pub ip_addresses: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BootResource {
    pub id: u64,
    /// `Synced` or `Uploaded`.
    pub kind: String,
    pub name: String,
    pub architecture: String,
    pub subarches: Option<String>,
    pub title: String,
}

/// Normalise a MAC address to lowercase colon form; `None` when it isn't one.
pub fn normalize_mac(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let seps = s
        .chars()
        .filter(|c| !c.is_ascii_hexdigit())
        .collect::<String>();
    if hex.len() != 12 || !seps.chars().all(|c| c == ':' || c == '-' || c == '.') {
        return None;
    }
    let lower = hex.to_ascii_lowercase();
    let parts: Vec<&str> = (0..6).map(|i| &lower[i * 2..i * 2 + 2]).collect();
    Some(parts.join(":"))
}

/// MAAS's API date format (`Tue, 27 Nov. 2018 18:06:19`).
pub fn format_time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    // httpdate: "Tue, 27 Nov 2018 18:06:19 GMT"
    let s = httpdate::fmt_http_date(t);
    let parts: Vec<&str> = s.split(' ').collect();
    if parts.len() == 6 {
        format!(
            "{} {} {}. {} {}",
            parts[0], parts[1], parts[2], parts[3], parts[4]
        )
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_normalise() {
        assert_eq!(
            normalize_mac("AA-BB-CC-DD-EE-FF").as_deref(),
            Some("aa:bb:cc:dd:ee:ff")
        );
        assert_eq!(
            normalize_mac("aabb.ccdd.eeff").as_deref(),
            Some("aa:bb:cc:dd:ee:ff")
        );
        assert_eq!(normalize_mac("aa:bb:cc:dd:ee"), None);
        assert_eq!(normalize_mac("zz:bb:cc:dd:ee:ff"), None);
    }

    #[test]
    fn statuses_parse() {
        assert_eq!(status::parse("ready"), Some(status::READY));
        assert_eq!(
            status::parse("Failed testing"),
            Some(status::FAILED_TESTING)
        );
        assert_eq!(
            status::parse("FAILED_DEPLOYMENT"),
            Some(status::FAILED_DEPLOYMENT)
        );
        assert_eq!(status::parse("21"), Some(status::TESTING));
        assert_eq!(status::parse("bogus"), None);
        assert_eq!(format_time(0), "Thu, 01 Jan. 1970 00:00:00");
    }
}
