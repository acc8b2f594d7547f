//! The digital twin: simulated MAAS, Proxmox VE and OpenStack endpoints for N DCs.
//!
//! Each simulated DC gets three independent API implementations that follow the
//! vendors' published references (paths, auth, payload shapes, status codes, error
//! bodies, asynchronous behaviour):
//!
//! - MAAS region API under `http://ADDR/<dc>/MAAS/` ([`maas`]);
//! - a Proxmox VE cluster on its own HTTPS port with a self-signed certificate, as the
//!   real one on 8006 ([`proxmox`]);
//! - an OpenStack region: Keystone, Nova, Neutron, Glance and Placement under
//!   `http://ADDR/<dc>/{identity,compute,network,image,placement}` ([`openstack`]).
//!
//! Around them: fault injection per request and per object ([`faults`]), per-endpoint
//! call counters and Prometheus metrics ([`counters`]), an admin API under `/_twin/`
//! ([`admin`]) that lets tests inject faults, change objects behind a client's back and
//! read counters, TLS ([`tls`]), and state persistence (`--state FILE`). Machines
//! MAAS deploys join the DC's platforms as their role says, and ones powered off or
//! released leave them dead ([`platform`]).
//!
//! Architecture invariant: the twin is an independent implementation. It shares no
//! request or response types with strata's own clients (`strata-providers`); it is
//! checked against real third-party clients and the vendors' published schemas and
//! samples, never against strata's code. It knows nothing of the fleet spec: what a
//! fresh DC contains comes in as plain [`DcSeed`] data.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod admin;
pub mod core;
pub mod counters;
pub mod faults;
pub mod local;
pub mod maas;
pub mod openstack;
pub mod platform;
pub mod proxmox;
mod server;
pub mod tls;

pub use crate::core::Clock;
pub use faults::FaultSpec;
pub use server::{RunningTwin, start, start_with_clock};

/// What a fresh DC contains.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DcSeed {
    pub name: String,
    /// Machines that PXE-booted and enlisted themselves in MAAS (status New).
    pub machines: Vec<SeedMachine>,
    /// Proxmox VE node names (the cluster's members).
    pub proxmox_nodes: Vec<String>,
    /// Proxmox storages every node has.
    pub proxmox_storages: Vec<SeedStorage>,
    /// Pre-existing VMs not created by strata (unowned), per DC, for scale tests.
    pub extra_vms: usize,
    /// The OpenStack region's Kolla-Ansible configuration, as the deploy host's
    /// `/etc/kolla/` holds it: path relative to that directory (`globals.yml`,
    /// `config/nova.conf`, `config/nova/<host>/nova.conf`, `config/neutron/ml2_conf.ini`)
    /// → text. The region's PCI aliases, pinning sets and physnets come from it
    /// (`openstack/kolla.rs`); empty is Kolla's defaults.
    #[serde(default)]
    pub kolla_config: std::collections::BTreeMap<String, String>,
    /// The OpenStack compute hosts (nova-compute on each); empty for the twin's own
    /// three plain hosts and one GPU host.
    #[serde(default)]
    pub compute_hosts: Vec<SeedComputeHost>,
    /// Custom images an operator uploaded to MAAS (`custom/NAME` or `NAME`), besides
    /// the synced Ubuntu releases.
    #[serde(default)]
    pub boot_images: Vec<String>,
    /// The MAAS controllers as they registered, in registration order (regions
    /// first). Empty: one region and two racks with a single unaddressed NIC each.
    #[serde(default)]
    pub controllers: Vec<SeedController>,
    /// Keystone users the identity backend already has (in the `Default` domain):
    /// people strata gives roles to but never creates.
    #[serde(default)]
    pub keystone_users: Vec<String>,
}

/// A compute host as nova-compute finds it through libvirt: hardware, and what the
/// kernel it booted set aside.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedComputeHost {
    /// Host name (nova's service host); its Kolla per-host directory is its FQDN, whose
    /// first label this is.
    pub name: String,
    /// CPU ids of each NUMA node.
    pub numa_cpus: Vec<Vec<u32>>,
    pub memory_mib: u64,
    pub local_gb: u64,
    pub cpu_model: String,
    pub gpus: Vec<SeedGpu>,
    /// 1 GiB huge pages from the kernel command line (`hugepages=`), spread evenly
    /// over the NUMA nodes.
    pub hugepages_1g: u64,
}

/// A MAAS controller and the interfaces its rackd/regiond reported at registration;
/// MAAS builds fabrics, VLANs and subnets from these (see `maas::seed::register`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedController {
    pub hostname: String,
    /// Runs a rack controller (DHCP, PXE); otherwise a region controller only.
    pub rack: bool,
    pub interfaces: Vec<SeedNic>,
}

/// One controller interface with its static address.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedNic {
    /// `eth0`, or `eth0.11` for a VLAN interface.
    pub name: String,
    /// Address with prefix length (`10.0.10.5/24`).
    pub address: String,
    /// The default gateway the OS uses through this interface, if any.
    #[serde(default)]
    pub gateway: Option<String>,
    /// A VLAN interface: the tag and the parent interface's name.
    #[serde(default)]
    pub vlan: Option<(u16, String)>,
}

/// A machine as MAAS sees it after PXE enlistment: identified by its boot MAC and serial.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedMachine {
    pub serial: String,
    pub pxe_mac: String,
    /// Hardware that commissioning will report.
    pub cpu_count: u32,
    pub memory_mib: u64,
    pub storage_gb: u64,
    pub nics: Vec<String>,
    pub gpus: Vec<SeedGpu>,
    pub zone: Option<String>,
    /// Already runs an operating system (powered on, not PXE booting): it did not
    /// enlist itself, and MAAS knows it only once someone creates it.
    #[serde(default)]
    pub running: bool,
    /// The BMC's own MAC. With it, the BMC takes its address from DHCP: it answers
    /// only at the address MAAS reserved for this MAC (else at `bmc_address`).
    #[serde(default)]
    pub bmc_mac: Option<String>,
    /// An address configured on the BMC by hand (used when no reservation exists).
    #[serde(default)]
    pub bmc_address: Option<String>,
    /// The machine's disks, in the order commissioning finds them. Empty: one `sda`
    /// of `storage_gb`.
    #[serde(default)]
    pub disks: Vec<SeedDisk>,
    /// The CPU's model string as the kernel reports it (`/proc/cpuinfo` "model
    /// name", LXD's socket `name`), e.g. `Intel(R) Xeon(R) Platinum 8480+` or
    /// `Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz`. MAAS shows it in
    /// `hardware_info.cpu_model` without the ` @ ...` suffix and takes `cpu_speed`
    /// from that suffix. Empty: the twin's generic model.
    #[serde(default)]
    pub cpu_model: String,
    /// The CPU's maximum (turbo) frequency in MHz, MAAS's `cpu_speed` when the
    /// model carries no ` @ x.xxGHz`. 0: 2400.
    #[serde(default)]
    pub cpu_speed_mhz: u32,
    /// DMI facts (vendor, product, board, BIOS/firmware, chassis), by MAAS's
    /// `hardware_info` keys.
    #[serde(default)]
    pub hardware_info: SeedHardwareInfo,
    /// NUMA nodes as the kernel reports them (MAAS `numanode_set`). Empty: the CPUs
    /// and memory split evenly over one node, or two when there are 32 CPUs or
    /// more or a GPU sits on node 1.
    #[serde(default)]
    pub numa_nodes: Vec<SeedNumaNode>,
    /// Port speed of every NIC in Mbit/s (MAAS `interface_speed`, and `link_speed`
    /// when the link negotiated it). 0: 25000.
    #[serde(default)]
    pub nic_speed_mbps: u64,
    /// Per-NIC overrides of speed, negotiated link, link state and NUMA node.
    #[serde(default)]
    pub nic_speeds: Vec<SeedNicSpeed>,
    /// Commissioning always fails on this machine: the builtin
    /// `50-maas-01-commissioning` script exits 1, MAAS processes no hardware from
    /// it and the machine ends in Failed commissioning (status 2).
    #[serde(default)]
    pub commissioning_fails: bool,
}

/// DMI facts of a seed machine, named as MAAS names them in `hardware_info`
/// (canonical/maas src/maasserver/api/nodes.py `hardware_info`, filled by
/// src/metadataserver/builtin_scripts/hooks.py `_process_system_information`
/// from LXD's `resources.system`). `None`: the twin's default.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SeedHardwareInfo {
    pub system_vendor: Option<String>,
    pub system_product: Option<String>,
    pub system_family: Option<String>,
    pub system_version: Option<String>,
    pub system_sku: Option<String>,
    pub mainboard_vendor: Option<String>,
    pub mainboard_product: Option<String>,
    pub mainboard_version: Option<String>,
    /// The BIOS/UEFI firmware's vendor, version (e.g. `2.4.1`, `U46 v2.10`) and
    /// release date (`MM/DD/YYYY`, as DMI gives it).
    pub mainboard_firmware_vendor: Option<String>,
    pub mainboard_firmware_version: Option<String>,
    pub mainboard_firmware_date: Option<String>,
    pub chassis_vendor: Option<String>,
    pub chassis_type: Option<String>,
    pub chassis_version: Option<String>,
}

/// One NUMA node: its index, memory and CPU (thread) ids.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedNumaNode {
    pub index: u32,
    /// MiB.
    pub memory_mib: u64,
    /// CPU (thread) ids on this node.
    pub cores: Vec<u32>,
}

/// Speed and link of one NIC port.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedNicSpeed {
    /// The NIC as the machine's interfaces are named (`eno1`, an entry of `nics`)
    /// or its MAC address.
    pub nic: String,
    /// What the port supports, Mbit/s (MAAS `interface_speed`: the fastest of the
    /// port's supported link modes). 0: the machine's `nic_speed_mbps`.
    #[serde(default)]
    pub speed_mbps: u64,
    /// What the link negotiated, Mbit/s (MAAS `link_speed`). `None`: the port's
    /// speed, or 0 when the link is down.
    #[serde(default)]
    pub link_speed_mbps: Option<u64>,
    /// Carrier detected (MAAS `link_connected`). `None`: connected.
    #[serde(default)]
    pub link_connected: Option<bool>,
    /// The NUMA node of the NIC's PCI function. `None`: 0.
    #[serde(default)]
    pub numa_node: Option<u32>,
}

/// One disk of a seed machine.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedDisk {
    /// The kernel's name for it (`sda`, `nvme0n1`).
    pub name: String,
    /// Size in GB (10^9 bytes).
    pub size_gb: u64,
    /// `nvme`, `ssd` or `hdd`: sets the model and MAAS's tags (`ssd`, or `rotary`).
    pub kind: String,
}

/// One GPU: PCI ids, the PCIe link it negotiated, and where it sits.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedGpu {
    pub model: String,
    /// PCI vendor and device ids, hex without `0x` (`10de`, `2330`).
    pub vendor_id: String,
    pub device_id: String,
    /// The negotiated PCIe link: generation (3, 4, 5, 6) and width (lanes). 0:
    /// Gen4, x16.
    pub pcie_gen: u8,
    pub pcie_width: u8,
    /// The NUMA node of its PCI function.
    pub numa_node: u32,
    /// Its PCI address (`0000:18:00.0`). `None`: one the twin picks on its NUMA
    /// node's root complex.
    #[serde(default)]
    pub pci_address: Option<String>,
    /// What the device and slot support (sysfs `max_link_speed`/`max_link_width`).
    /// 0: the negotiated generation/width, i.e. a link that trained at full speed.
    #[serde(default)]
    pub max_pcie_gen: u8,
    #[serde(default)]
    pub max_pcie_width: u8,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedStorage {
    pub name: String,
    /// Proxmox storage type (`rbd`, `zfspool`, `lvmthin`, `dir`).
    pub kind: String,
    pub content: Vec<String>,
}

/// Options of a twin.
#[derive(Clone, Debug)]
pub struct TwinOptions {
    pub dcs: Vec<DcSeed>,
    /// Main HTTP listener (MAAS, OpenStack, admin). Proxmox listeners take the
    /// following ports (`port + 1 + i`), or ephemeral ports when `port` is 0.
    pub listen: SocketAddr,
    pub faults: FaultSpec,
    /// Added to every request.
    pub latency_ms: u64,
    /// Load state from, and save it to, this file.
    pub state_file: Option<PathBuf>,
    /// Seed of the fault RNG and of generated identifiers (0 = random); it also
    /// fixes each machine's jitter under realistic MAAS timings.
    pub seed: u64,
    /// How long simulated work takes (MAAS's phases, the time scale).
    pub timing: Timing,
}

/// How long the twin's simulated work takes (`strata twin --maas-timing`,
/// `--time-scale`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The durations of MAAS's asynchronous phases.
    pub maas: MaasTiming,
    /// Every MAAS phase duration and the added request latency (`latency_ms`) are
    /// divided by this (at least 1), so that hours of realistic MAAS work take
    /// minutes; a result measured in wall time is multiplied back by it.
    pub scale: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            maas: MaasTiming::Fast,
            scale: 1,
        }
    }
}

impl Timing {
    /// `ms` of simulated time in wall (or virtual clock) milliseconds.
    pub fn scaled_ms(&self, ms: u64) -> u64 {
        ms / u64::from(self.scale.max(1))
    }

    /// The added latency of one request, scaled.
    pub fn scaled_latency(&self, latency_ms: u64) -> std::time::Duration {
        std::time::Duration::from_micros(latency_ms * 1000 / u64::from(self.scale.max(1)))
    }
}

/// How long MAAS's commissioning, testing, deploying, releasing and disk erasing take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaasTiming {
    /// Fixed short phases (0.2–0.5 s) for tests and demos.
    #[default]
    Fast,
    /// Physical servers' durations (commissioning with its tests about 10 minutes,
    /// deployment about 13), each machine off by up to ±25 % per phase, fixed by the
    /// twin's seed (see `maas::machines::phase_ms`).
    Realistic,
}

impl std::str::FromStr for MaasTiming {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(MaasTiming::Fast),
            "realistic" => Ok(MaasTiming::Realistic),
            _ => Err(format!("`{s}`: use fast or realistic")),
        }
    }
}

/// Credentials of one DC's services (generated at first start, persisted with the state).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credentials {
    /// MAAS API key `consumer_key:token_key:token_secret`.
    pub maas_api_key: String,
    /// Proxmox API token id `user@realm!tokenid`.
    pub proxmox_token_id: String,
    pub proxmox_token_secret: String,
    /// Proxmox user and password for ticket auth (`/access/ticket`).
    pub proxmox_user: String,
    pub proxmox_password: String,
    pub openstack_username: String,
    pub openstack_password: String,
    pub openstack_project: String,
}

/// Public URLs of one DC's services, as clients reach them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Urls {
    /// `http://ADDR/<dc>/MAAS/`
    pub maas: String,
    /// `https://127.0.0.1:PORT`
    pub proxmox: String,
    /// `http://ADDR/<dc>/identity` (the v3 API is under it).
    pub identity: String,
    /// `http://ADDR/<dc>/compute` (`/v2.1` below it).
    pub compute: String,
    pub network: String,
    pub image: String,
    pub placement: String,
}

/// Everything a service implementation gets from the twin.
pub struct DcContext {
    pub name: String,
    pub index: usize,
    pub seed: DcSeed,
    pub creds: Credentials,
    pub urls: Urls,
    pub shared: Arc<Shared>,
    /// Machines joining and leaving the DC's platforms: what MAAS publishes when a
    /// machine's OS comes up or goes down, for its Proxmox VE cluster and OpenStack
    /// region, and the event log ([`platform`]).
    pub platform: platform::Platforms,
}

/// State shared by every DC: the clock, fault injection and counters.
pub struct Shared {
    /// Every simulated service reads time and waits for simulated work through it.
    pub clock: Clock,
    pub faults: faults::Faults,
    pub counters: counters::Counters,
    pub latency_ms: u64,
    pub timing: Timing,
    /// The twin's seed (`TwinOptions::seed`): per-machine jitter is a function of it.
    pub seed: u64,
}

/// A request from the admin API to change an object behind a client's back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MutateRequest {
    /// Object kind in the service's own words (`qemu`, `machine`, `flavor`, ...).
    pub kind: String,
    /// Object id (`vmid`, `system_id`, flavor id or name, ...).
    pub id: String,
    /// Fields to set, in the API's own field names.
    #[serde(default)]
    pub set: serde_json::Map<String, serde_json::Value>,
    /// Delete the object instead.
    #[serde(default)]
    pub delete: bool,
}

/// One simulated service of one DC.
pub trait Service: Send + Sync + 'static {
    /// `maas`, `proxmox` or `openstack`.
    fn name(&self) -> &'static str;
    /// The routes, relative to the service's mount point.
    fn router(self: Arc<Self>) -> axum::Router;
    /// Every (method, path template) the router serves, relative to the mount point:
    /// `{name}` marks a path parameter, and MAAS operations carry `?op=NAME`. This is
    /// the surface the request fuzzer walks.
    fn routes(&self) -> Vec<(String, String)>;
    /// The whole state, for `--state FILE`.
    fn save(&self) -> serde_json::Value;
    /// Change (or delete) an object behind the clients' back.
    fn mutate(&self, req: &MutateRequest) -> Result<serde_json::Value, String>;
    /// Object counts by kind, for tests and the admin API.
    fn summary(&self) -> serde_json::Value;
}
