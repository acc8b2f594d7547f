//! Machines joining and leaving the platforms: what a DC's MAAS tells its Proxmox VE
//! cluster and its OpenStack region when a machine's operating system comes up or
//! goes down.
//!
//! In a real DC nothing connects the three APIs. A machine MAAS deployed boots the
//! image it was given and runs its user-data; what it then is decides where it joins
//! (a Proxmox VE node runs `pvecm add` and appears in the cluster's corosync
//! configuration; a compute host's nova-compute registers its service, its compute
//! node and the node's Placement resource provider). A machine powered off, released
//! or erased simply stops answering: the cluster lists its node offline, Nova reports
//! its service `down`; nothing is removed until someone removes it. The twin stands
//! in for the machines: MAAS publishes what happened to each machine's OS, and each
//! platform applies it the next time it is asked anything (lazily, like every other
//! transition of the twin).
//!
//! What MAAS publishes ([`Change`]): `Deployed` when a deployment completes (a fresh
//! installation: the machine joins), `PoweredOn` when a deployed machine is powered on
//! again (its installed OS boots: its node or service comes back), `PoweredOff` when
//! a deployed machine is powered off, released or its disks erased (its node goes
//! offline, its service down). A machine that already ran when MAAS learnt of it
//! (`deployed=true`) publishes nothing until its power changes.
//!
//! # A machine's role
//!
//! The twin decides what a deployed machine becomes from what the machine itself acts
//! on, never from a side channel ([`role_of`]):
//!
//! 1. its user-data (base64, as MAAS takes it, or plain): a `role=NAME` line, which
//!    strata's cloud-init writes to `/etc/strata/role` (`role=openstack-compute`), or
//!    a `pvecm add` command (a Proxmox VE node joining its cluster);
//! 2. otherwise the image: a custom image whose name says Proxmox VE (`pve` or
//!    `proxmox`, e.g. `custom/debian-13-pve`) installs a Proxmox VE node — strata
//!    sends Proxmox nodes no user-data;
//! 3. otherwise the MAAS tag `role-NAME` strata gives every machine it manages.
//!
//! Role `proxmox` joins the DC's Proxmox VE cluster; `openstack-compute` (and any role
//! starting with it) joins the OpenStack region as a nova-compute host, with its GPUs
//! as PCI devices. Other roles (control, network and storage nodes, MAAS controllers)
//! join nothing; the event log still records them.
//!
//! # Evidence
//!
//! Every publication and what each platform did with it (`joined`, `join-failed`,
//! `offline`, `online`, `down`, `up`, `removed`, ...) is recorded in the DC's event
//! log ([`Platforms::events`], `GET /_twin/dcs/{dc}/events`), with the twin-clock
//! time, the host and the detail.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};

/// Where a machine of a role joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Proxmox,
    Openstack,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::Proxmox => "proxmox",
            Platform::Openstack => "openstack",
        }
    }

    /// The platform machines of `role` join, if any.
    pub fn of_role(role: &str) -> Option<Platform> {
        if role == "proxmox" {
            Some(Platform::Proxmox)
        } else if role.starts_with("openstack-compute") {
            Some(Platform::Openstack)
        } else {
            None
        }
    }
}

/// What happened to a machine's operating system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// A deployment completed: a fresh installation boots and joins.
    Deployed,
    /// A deployed machine was powered on again: its installed OS boots.
    PoweredOn,
    /// A deployed machine was powered off, released or its disks erased.
    PoweredOff,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::Deployed => "deployed",
            Change::PoweredOn => "powered-on",
            Change::PoweredOff => "powered-off",
        }
    }
}

/// One NUMA node of a machine.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HostNuma {
    pub index: u32,
    pub cpus: Vec<u32>,
    pub memory_mib: u64,
}

/// One GPU of a machine, as commissioning found it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HostGpu {
    /// PCI ids, lower-case hex without `0x`.
    pub vendor_id: String,
    pub product_id: String,
    pub pci_address: String,
    pub numa_node: u32,
}

/// A machine as the platforms see it when it joins: who it is, what it is and the
/// hardware MAAS knows of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Host {
    pub system_id: String,
    /// The hostname MAAS gave it (the Proxmox node name, nova's service host).
    pub hostname: String,
    /// `hostname.domain` (libvirt's hostname: the hypervisor and its Placement
    /// provider are named after it).
    pub fqdn: String,
    /// The role, and where the twin read it (`user_data`, `image` or `tag`); empty
    /// when nothing says.
    pub role: String,
    pub role_from: String,
    /// The first address MAAS assigned it.
    pub address: Option<String>,
    pub cpu_count: u32,
    pub cpu_model: String,
    pub memory_mib: u64,
    /// All disks, GB (10^9 bytes).
    pub storage_gb: u64,
    /// The boot disk, GB.
    pub boot_disk_gb: u64,
    pub numa: Vec<HostNuma>,
    pub gpus: Vec<HostGpu>,
    /// 1 GiB huge pages from the kernel command line it booted with.
    pub hugepages_1g: u64,
}

impl Host {
    pub fn platform(&self) -> Option<Platform> {
        Platform::of_role(&self.role)
    }
}

/// A change to one machine, for the platform its role joins.
#[derive(Clone, Debug)]
pub struct Event {
    pub change: Change,
    pub host: Host,
    /// Twin-clock milliseconds.
    pub at_ms: u64,
}

/// What the bus last saw of a machine.
#[derive(Clone, Debug)]
struct Tracked {
    up: bool,
    /// The installation (MAAS's installation script set) it last ran.
    install: Option<u64>,
    host: Option<Host>,
}

#[derive(Default)]
struct BusState {
    tracked: HashMap<String, Tracked>,
    queues: HashMap<Platform, Vec<Event>>,
    log: Vec<Value>,
}

/// The most entries the event log keeps (the oldest are dropped).
const MAX_LOG: usize = 10_000;

/// One DC's machine events: what MAAS publishes and the platforms take, and the log.
pub struct Platforms {
    /// Brings MAAS up to date (completes the transitions that are due and publishes
    /// what they changed); set by MAAS when it is built.
    settle: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// When the next deployment MAAS has under way completes (twin-clock ms):
    /// before it, nothing can join and the platforms need not ask MAAS.
    next_due: AtomicU64,
    state: Mutex<BusState>,
}

impl Default for Platforms {
    fn default() -> Platforms {
        Platforms {
            settle: OnceLock::new(),
            next_due: AtomicU64::new(u64::MAX),
            state: Mutex::new(BusState::default()),
        }
    }
}

impl std::fmt::Debug for Platforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platforms")
            .field("next_due", &self.next_due.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Platforms {
    /// MAAS registers how to bring itself up to date.
    pub fn connect_maas(&self, settle: Box<dyn Fn() + Send + Sync>) {
        let _ = self.settle.set(settle);
    }

    /// When MAAS's next deployment completes (`u64::MAX`: none under way).
    pub fn set_next_due(&self, ms: u64) {
        self.next_due.store(ms, Ordering::Relaxed);
    }

    /// Called by a platform before it answers: when a deployment is due by `now_ms`,
    /// MAAS completes it first, so a machine that finished deploying has joined
    /// whether or not anyone asked MAAS since. Must not be called with MAAS's own
    /// lock held.
    pub fn pump(&self, now_ms: u64) {
        if now_ms >= self.next_due.load(Ordering::Relaxed)
            && let Some(settle) = self.settle.get()
        {
            settle();
        }
    }

    /// What MAAS sees of a machine now: `up` (deployed and powered on), the
    /// installation it runs, and how to describe it (called only when something
    /// changed). Publishes the change, if any, to the platform of the machine's
    /// role. `quiet` records the state without publishing (what ran before the twin
    /// started, or before MAAS knew it).
    pub fn observe(
        &self,
        system_id: &str,
        up: bool,
        install: Option<u64>,
        now_ms: u64,
        quiet: bool,
        describe: impl FnOnce() -> Host,
    ) {
        let mut st = self.state.lock();
        let prev = st
            .tracked
            .get(system_id)
            .map(|p| (p.up, p.install, p.host.is_some()));
        let change = match prev {
            _ if up && quiet => None,
            None if up => install.map(|_| Change::Deployed),
            Some((was_up, was, _)) if up && was != install => install
                .map(|_| Change::Deployed)
                .or((!was_up).then_some(Change::PoweredOn)),
            Some((false, _, _)) if up => Some(Change::PoweredOn),
            Some((true, _, _)) if !up && !quiet => Some(Change::PoweredOff),
            _ => None,
        };
        // Nothing new: the common case, kept cheap.
        if change.is_none()
            && prev.is_some_and(|(was_up, was, has_host)| {
                was_up == up && (!up || (was == install && has_host))
            })
        {
            return;
        }
        let entry = st.tracked.entry(system_id.to_string()).or_insert(Tracked {
            up,
            install,
            host: None,
        });
        entry.up = up;
        // The installation that last ran: one being written is not running yet.
        if up {
            entry.install = install;
        }
        if change.is_some_and(|c| c != Change::PoweredOff) || (up && entry.host.is_none()) {
            entry.host = Some(describe());
        }
        let (Some(change), Some(host)) = (change, entry.host.clone()) else {
            return;
        };
        let platform = host.platform();
        let detail = match platform {
            Some(p) => format!(
                "role {} (from its {}): {}",
                host.role,
                host.role_from,
                p.name()
            ),
            None if host.role.is_empty() => "no role: joins nothing".to_string(),
            None => format!(
                "role {} (from its {}): joins nothing",
                host.role, host.role_from
            ),
        };
        push_log(&mut st, now_ms, "maas", change.name(), &host, &detail);
        if let Some(p) = platform {
            st.queues.entry(p).or_default().push(Event {
                change,
                host,
                at_ms: now_ms,
            });
        }
    }

    /// The events waiting for `platform`, oldest first.
    pub fn take(&self, platform: Platform) -> Vec<Event> {
        let mut st = self.state.lock();
        st.queues.remove(&platform).unwrap_or_default()
    }

    /// Record what a platform did.
    pub fn record(&self, at_ms: u64, platform: Platform, event: &str, host: &Host, detail: &str) {
        let mut st = self.state.lock();
        push_log(&mut st, at_ms, platform.name(), event, host, detail);
    }

    /// Record what a platform did to a host it knows only by name (a removal).
    pub fn record_name(
        &self,
        at_ms: u64,
        platform: Platform,
        event: &str,
        name: &str,
        detail: &str,
    ) {
        let host = Host {
            hostname: name.to_string(),
            ..Host::default()
        };
        self.record(at_ms, platform, event, &host, detail);
    }

    /// The event log, oldest first: `{at_ms, source, event, hostname, system_id,
    /// role, detail}`.
    pub fn events(&self) -> Vec<Value> {
        self.state.lock().log.clone()
    }
}

fn push_log(st: &mut BusState, at_ms: u64, source: &str, event: &str, host: &Host, detail: &str) {
    if st.log.len() >= MAX_LOG {
        st.log.remove(0);
    }
    st.log.push(json!({
        "at_ms": at_ms,
        "source": source,
        "event": event,
        "hostname": host.hostname,
        "system_id": host.system_id,
        "role": host.role,
        "detail": detail,
    }));
}

/// What a deployed machine is (see the module documentation): the role and where it
/// was read (`user_data`, `image`, `tag`), or `None`.
pub fn role_of(
    user_data: Option<&str>,
    osystem: &str,
    distro_series: &str,
    tags: &[String],
) -> Option<(String, &'static str)> {
    if let Some(text) = user_data.map(decode_user_data) {
        let mut pvecm = false;
        for line in text.lines() {
            let line = line
                .trim()
                .trim_start_matches("- ")
                .trim_matches(['"', '\'']);
            if let Some(role) = line.strip_prefix("role=") {
                let role = role.trim();
                if !role.is_empty() {
                    return Some((role.to_string(), "user_data"));
                }
            }
            pvecm |= line.contains("pvecm add");
        }
        if pvecm {
            return Some(("proxmox".into(), "user_data"));
        }
    }
    let image = distro_series.to_ascii_lowercase();
    if osystem == "custom" && (image.contains("pve") || image.contains("proxmox")) {
        return Some(("proxmox".into(), "image"));
    }
    let mut roles: Vec<&str> = tags
        .iter()
        .filter_map(|t| t.strip_prefix("role-"))
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort_unstable();
    roles.first().map(|r| (r.to_string(), "tag"))
}

/// User-data as MAAS hands it to cloud-init: the API takes it base64-encoded; text
/// that is not base64 is taken as it is.
pub fn decode_user_data(raw: &str) -> String {
    let compact: String = raw.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| raw.to_string())
}

/// 1 GiB huge pages on a kernel command line: `hugepages=N` when the (default) huge
/// page size is 1G.
pub fn hugepages_1g(cmdline: &str) -> u64 {
    let mut size_1g = false;
    let mut count = 0;
    for opt in cmdline.split_whitespace() {
        match opt.split_once('=') {
            Some(("hugepagesz" | "default_hugepagesz", v)) => {
                size_1g = v.eq_ignore_ascii_case("1G") || v == "1073741824"
            }
            Some(("hugepages", v)) if size_1g => count = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_comes_from_what_the_machine_acts_on() {
        let cloud_init = "#cloud-config\nwrite_files:\n  - path: /etc/strata/role\n    content: |\n      role=openstack-compute\n      dc=fra1\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(cloud_init);
        assert_eq!(
            role_of(Some(&b64), "ubuntu", "noble", &["role-proxmox".into()]),
            Some(("openstack-compute".into(), "user_data"))
        );
        assert_eq!(
            role_of(
                Some("#cloud-config\nruncmd:\n  - pvecm add 10.0.0.1 --use_ssh\n"),
                "custom",
                "x",
                &[]
            ),
            Some(("proxmox".into(), "user_data"))
        );
        assert_eq!(
            role_of(None, "custom", "debian-13-pve", &[]),
            Some(("proxmox".into(), "image"))
        );
        assert_eq!(
            role_of(
                None,
                "ubuntu",
                "noble",
                &["owner".into(), "role-openstack-storage".into()]
            ),
            Some(("openstack-storage".into(), "tag"))
        );
        assert_eq!(role_of(None, "ubuntu", "noble", &[]), None);
        assert_eq!(
            Platform::of_role("openstack-compute"),
            Some(Platform::Openstack)
        );
        assert_eq!(Platform::of_role("openstack-storage"), None);
    }

    #[test]
    fn huge_pages_need_a_1g_page_size() {
        assert_eq!(
            hugepages_1g("intel_iommu=on hugepagesz=1G hugepages=64"),
            64
        );
        assert_eq!(
            hugepages_1g("default_hugepagesz=1G hugepagesz=1G hugepages=8 iommu=pt"),
            8
        );
        assert_eq!(hugepages_1g("hugepages=512"), 0);
    }

    #[test]
    fn a_machine_publishes_each_change_once() {
        let bus = Platforms::default();
        let host = || Host {
            system_id: "abc".into(),
            hostname: "cmp1".into(),
            role: "openstack-compute".into(),
            role_from: "user_data".into(),
            ..Host::default()
        };
        bus.observe("abc", false, None, 1, false, host);
        assert!(bus.take(Platform::Openstack).is_empty());
        bus.observe("abc", true, Some(7), 2, false, host);
        bus.observe("abc", true, Some(7), 3, false, host);
        bus.observe("abc", false, Some(7), 4, false, host);
        bus.observe("abc", true, Some(7), 5, false, host);
        let changes: Vec<Change> = bus
            .take(Platform::Openstack)
            .into_iter()
            .map(|e| e.change)
            .collect();
        assert_eq!(
            changes,
            [Change::Deployed, Change::PoweredOff, Change::PoweredOn]
        );
        // Already running when first seen: nothing to publish.
        bus.observe("def", true, None, 6, true, host);
        assert!(bus.take(Platform::Openstack).is_empty());
        assert_eq!(bus.events().len(), 3);
    }
}
