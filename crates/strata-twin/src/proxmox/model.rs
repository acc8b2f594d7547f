//! The simulated cluster's state: nodes, storages, guests (as configuration maps like
//! the files in `/etc/pve/nodes/<node>/qemu-server/`), HA resources, pools and tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::params::{self, Drive, Ty};
use super::sha1::sha1_hex;

pub const STATE_VERSION: u32 = 1;
/// The template every fresh cluster has.
pub const TEMPLATE_VMID: u32 = 9000;
pub const TEMPLATE_NAME: &str = "debian-12-cloudinit";
/// Finished tasks kept (per cluster) before the oldest are forgotten.
pub const MAX_TASKS: usize = 50_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub nodeid: u32,
    pub ip: String,
    pub maxcpu: u32,
    pub maxmem: u64,
    pub maxdisk: u64,
    /// Boot time (unix seconds).
    pub boot: i64,
    /// The node's resolver settings (`/etc/resolv.conf`, `/nodes/{node}/dns`).
    #[serde(default)]
    pub dns: NodeDns,
    /// The installed `pve-manager` version (`/nodes/{node}/version`, `pveversion`).
    #[serde(default = "default_version")]
    pub version: String,
    /// The running kernel release.
    #[serde(default = "default_kernel")]
    pub kernel: String,
    /// A newer kernel installed by an upgrade, running after the next boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_installed: Option<String>,
    /// What the node's last `apt-get update` saw in its repositories (the package
    /// index `GET /nodes/{node}/apt/update` reads); `None` before the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Repo>,
    /// Whether the cluster reaches it.
    #[serde(default, skip_serializing_if = "Health::is_online")]
    pub health: Health,
    /// The state a broken upgrade left it in (`upgrade_offline` or
    /// `upgrade_pveproxy_down` fault): what it comes back as after each boot until it is
    /// upgraded (or rolled back) again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<Health>,
    /// A reboot or shutdown under way (`POST /nodes/{node}/status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<PowerEvent>,
}

fn default_version() -> String {
    super::api::PVE_VERSION.to_string()
}

fn default_kernel() -> String {
    super::api::PVE_KERNEL.to_string()
}

/// What a package repository offers (and what a node's package index saw of it): the
/// `pve-manager` version and the newest kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    pub version: String,
    pub kernel: String,
}

impl Default for Repo {
    fn default() -> Repo {
        Repo {
            version: super::api::REPO_VERSION.to_string(),
            kernel: super::api::REPO_KERNEL.to_string(),
        }
    }
}

/// How the rest of the cluster sees a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// Up, quorate with the others, `pveproxy` answering.
    #[default]
    Online,
    /// Down (powered off, rebooting, or not back from a broken upgrade): corosync
    /// lists it offline and calls proxied to it fail with `595 No route to host`.
    Offline,
    /// Up and in the cluster, but its `pveproxy` does not answer: calls proxied to it
    /// fail with `595 Connection refused`.
    PveproxyDown,
}

impl Health {
    pub fn is_online(&self) -> bool {
        *self == Health::Online
    }
    /// Whether corosync counts it (for `/cluster/status` and quorum).
    pub fn in_cluster(&self) -> bool {
        *self != Health::Offline
    }
    pub fn parse(s: &str) -> Option<Health> {
        match s {
            "online" => Some(Health::Online),
            "offline" => Some(Health::Offline),
            "pveproxy-down" => Some(Health::PveproxyDown),
            _ => None,
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Health::Online => "online",
            Health::Offline => "offline",
            Health::PveproxyDown => "pveproxy-down",
        }
    }
}

/// A reboot or shutdown: the node goes down at `down_ms` (after `pve-guests` stopped
/// its guests) and, for a reboot, is back at `up_ms` (twin clock, milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerEvent {
    pub down_ms: u64,
    /// `None` for a shutdown: it stays off until powered on out of band.
    pub up_ms: Option<u64>,
    /// Whether it went down already.
    #[serde(default)]
    pub down: bool,
}

/// What `GET /nodes/{node}/dns` returns: the search domain and up to three name
/// servers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDns {
    pub search: Option<String>,
    pub dns1: Option<String>,
    pub dns2: Option<String>,
    pub dns3: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Storage {
    pub id: String,
    /// `rbd`, `zfspool`, `lvmthin`, `dir`, ...
    pub kind: String,
    pub content: Vec<String>,
    pub shared: bool,
    /// Capacity in bytes (per node for local storages).
    pub total: u64,
    /// The nodes it is configured on (`nodes` in `storage.cfg`); `None`: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeSet<String>>,
    /// `disable` in `storage.cfg`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

impl Storage {
    /// Whether guests on `node` may use it, or PVE's refusal (pve-storage
    /// `src/PVE/Storage.pm` `storage_check_enabled` / `storage_check_node`).
    pub fn usable_on(&self, node: &str) -> Result<(), String> {
        if self.disabled {
            return Err(format!("storage '{}' is disabled", self.id));
        }
        if self.nodes.as_ref().is_some_and(|n| !n.contains(node)) {
            return Err(format!(
                "storage '{}' is not available on node '{node}'",
                self.id
            ));
        }
        Ok(())
    }
    pub fn has_images(&self) -> bool {
        self.content.iter().any(|c| c == "images")
    }
    pub fn content_string(&self) -> String {
        let mut c = self.content.clone();
        c.sort();
        c.join(",")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Vm {
    pub vmid: u32,
    pub node: String,
    /// The configuration, with PVE's value types (integers and booleans as numbers).
    pub conf: BTreeMap<String, Value>,
    pub running: bool,
    /// When it was started (unix seconds).
    #[serde(default)]
    pub started: i64,
    #[serde(default)]
    pub pid: u32,
    /// The `[PENDING]` section: changes made while it ran that take effect when it
    /// next starts (see [`Pending`]).
    #[serde(default, skip_serializing_if = "Pending::is_empty")]
    pub pending: Pending,
    /// Snapshots by name (the `[snapname]` sections of the configuration file): each a
    /// copy of the configuration when it was taken, with `snaptime`, `description`,
    /// `vmstate`, `parent` and, while it is being made or deleted, `snapstate`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snapshots: BTreeMap<String, BTreeMap<String, Value>>,
}

/// Changes to a running guest that could not be hot-plugged, kept in the configuration's
/// `[PENDING]` section until the guest stops or starts (qemu-server
/// `PVE/QemuServer.pm` `vmconfig_hotplug_pending` leaves them there and
/// `vmconfig_apply_pending` applies them, from `vm_start` and `vm_stop_cleanup`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Values to set.
    pub set: BTreeMap<String, Value>,
    /// Keys to delete.
    pub delete: BTreeSet<String>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
}

/// Options PVE changes at once on a running guest whatever its `hotplug` setting: its
/// `$fast_plug_option` list plus the cloud-init options (qemu-server
/// `PVE/QemuServer.pm`), and the ones it can change live in any case (ballooning
/// target, CPU shares and limit, guest agent, unused volumes).
const FAST_PLUG: &[&str] = &[
    "description",
    "hookscript",
    "lock",
    "migrate_downtime",
    "migrate_speed",
    "name",
    "onboot",
    "protection",
    "shares",
    "startup",
    "tags",
    "vmstatestorage",
    "cicustom",
    "cipassword",
    "citype",
    "ciuser",
    "ciupgrade",
    "nameserver",
    "searchdomain",
    "sshkeys",
    "balloon",
    "cpuunits",
    "cpulimit",
    "agent",
];

/// The hotplug features of a `hotplug` value (`1` or absent: PVE's default
/// `network,disk,usb`; `0`: none).
pub fn hotplug_features(value: Option<&str>) -> BTreeSet<String> {
    let v = match value {
        None | Some("1") => "network,disk,usb",
        Some("0") => "",
        Some(v) => v,
    };
    params::split_list(v).map(String::from).collect()
}

/// Whether PVE applies a change of `key` to a running guest at once (true) or keeps it
/// pending until the next start (false), given the guest's hotplug features. Follows
/// `vmconfig_hotplug_pending`: `cores`, `sockets`, `cpu` and the hardware options are
/// never hot-plugged; `memory` only with the `memory` feature, `vcpus` only with `cpu`,
/// NICs with `network`, SCSI/VirtIO disks with `disk`.
pub fn hot_pluggable(key: &str, features: &BTreeSet<String>) -> bool {
    let has = |f: &str| features.contains(f);
    if FAST_PLUG.contains(&key) || key.starts_with("ipconfig") || key.starts_with("unused") {
        return true;
    }
    if key.starts_with("net") && key[3..].parse::<u32>().is_ok() {
        return has("network");
    }
    if params::is_drive_key(key) {
        let slow = ["efidisk", "tpmstate", "ide", "sata"];
        return has("disk") && !slow.iter().any(|p| key.starts_with(p));
    }
    match key {
        "memory" => has("memory"),
        "vcpus" => has("cpu"),
        _ => false,
    }
}

pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "1" } else { "0" }.into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A configuration value as PVE stores and returns it: integers and booleans as JSON
/// numbers, everything else (`memory` included) as strings.
pub fn conf_value(key: &str, v: &Value) -> Value {
    let text = value_text(v);
    match params::qemu_key(key).map(|p| p.ty) {
        Some(Ty::Int(..)) => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(text)),
        Some(Ty::Bool) => {
            let b = matches!(v, Value::Bool(true)) || params::parse_boolean(&text).unwrap_or(false);
            Value::from(u8::from(b))
        }
        _ => Value::String(text),
    }
}

/// One section of a configuration file: the description as comments, then the keys.
fn raw_config(conf: &BTreeMap<String, Value>) -> String {
    let mut out = String::new();
    if let Some(d) = conf.get("description").map(value_text) {
        for line in d.lines() {
            out.push('#');
            out.push_str(line);
            out.push('\n');
        }
    }
    for (k, v) in conf {
        if k == "description" {
            continue;
        }
        out.push_str(k);
        out.push_str(": ");
        out.push_str(&value_text(v));
        out.push('\n');
    }
    out
}

/// Disk keys in the order PVE looks at them.
const DISK_PREFIXES: &[&str] = &["scsi", "virtio", "sata", "ide"];

impl Vm {
    pub fn get(&self, key: &str) -> Option<String> {
        self.conf.get(key).map(value_text)
    }
    pub fn name(&self) -> String {
        self.get("name")
            .unwrap_or_else(|| format!("VM {}", self.vmid))
    }
    pub fn is_template(&self) -> bool {
        self.get("template").is_some_and(|t| t == "1")
    }
    pub fn lock(&self) -> Option<String> {
        self.get("lock")
    }
    pub fn memory_mib(&self) -> u64 {
        self.get("memory")
            .and_then(|m| params::parse_memory("memory", &m).ok())
            .unwrap_or(512)
    }
    pub fn maxmem(&self) -> u64 {
        self.memory_mib() * 1024 * 1024
    }
    pub fn cpus(&self) -> u64 {
        if let Some(v) = self.get("vcpus").and_then(|v| v.parse().ok()) {
            return v;
        }
        let n = |k: &str| self.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
        n("sockets") * n("cores")
    }
    /// `(key, drive)` of every drive, including `unusedN`.
    pub fn drives(&self) -> Vec<(String, Drive)> {
        self.conf
            .iter()
            .filter(|(k, _)| params::is_drive_key(k))
            .filter_map(|(k, v)| {
                params::parse_drive(k, &value_text(v))
                    .ok()
                    .map(|d| (k.clone(), d))
            })
            .collect()
    }
    /// Size of the boot disk (`maxdisk`).
    pub fn maxdisk(&self) -> u64 {
        let drives = self.drives();
        let boot_order: Vec<String> = self
            .get("boot")
            .and_then(|b| {
                b.split(',').find_map(|p| {
                    p.strip_prefix("order=")
                        .map(|o| o.split(';').map(String::from).collect())
                })
            })
            .unwrap_or_default();
        for key in boot_order {
            if let Some((_, d)) = drives.iter().find(|(k, d)| *k == key && !d.is_cdrom()) {
                return d.size_bytes();
            }
        }
        for p in DISK_PREFIXES {
            for i in 0..31 {
                let key = format!("{p}{i}");
                if let Some((_, d)) = drives.iter().find(|(k, d)| *k == key && !d.is_cdrom()) {
                    return d.size_bytes();
                }
            }
        }
        0
    }
    pub fn tags(&self) -> Option<String> {
        self.get("tags")
    }
    pub fn uptime(&self, now: i64) -> i64 {
        if self.running {
            (now - self.started).max(0)
        } else {
            0
        }
    }
    /// Used memory of a running guest (a stable share of its maximum).
    pub fn mem_used(&self) -> u64 {
        if self.running {
            self.maxmem() / 100 * (35 + (self.vmid % 30) as u64)
        } else {
            0
        }
    }
    pub fn cpu_used(&self) -> f64 {
        if self.running {
            0.01 + (self.vmid % 7) as f64 / 100.0
        } else {
            0.0
        }
    }

    /// The configuration file, as PVE writes it (qemu-server `PVE/QemuServer.pm`
    /// `write_vm_config`): the description as comments first, then the keys, the
    /// `[PENDING]` section, and each snapshot's `[name]` section in name order.
    pub fn conf_text(&self) -> String {
        let mut out = raw_config(&self.conf);
        if !self.pending.is_empty() {
            out.push_str("\n[PENDING]\n");
            if !self.pending.delete.is_empty() {
                let keys: Vec<&str> = self.pending.delete.iter().map(String::as_str).collect();
                out.push_str(&format!("delete: {}\n", keys.join(",")));
            }
            for (k, v) in &self.pending.set {
                out.push_str(&format!("{k}: {}\n", value_text(v)));
            }
        }
        for (name, snap) in &self.snapshots {
            out.push_str(&format!("\n[{name}]\n"));
            out.push_str(&raw_config(snap));
        }
        out
    }

    /// The configuration with its pending changes applied (what `GET .../config`
    /// returns unless `current=1`).
    pub fn conf_with_pending(&self) -> BTreeMap<String, Value> {
        let mut conf = self.conf.clone();
        for k in &self.pending.delete {
            conf.remove(k);
        }
        conf.extend(self.pending.set.clone());
        conf
    }

    /// Apply the pending changes (at start and after a stop).
    pub fn apply_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.conf = self.conf_with_pending();
        self.pending = Pending::default();
    }

    /// Take `new` (the whole configuration after an update): everything at once when the
    /// guest is stopped; when it runs, what can be hot-plugged at once and the rest into
    /// `[PENDING]` (a pending entry that matches the current value is dropped, as
    /// `cleanup_pending` does).
    pub fn update_conf(&mut self, new: BTreeMap<String, Value>) {
        if !self.running {
            self.conf = new;
            self.pending = Pending::default();
            return;
        }
        let features = hotplug_features(self.get("hotplug").as_deref());
        let keys: BTreeSet<String> = new.keys().chain(self.conf.keys()).cloned().collect();
        for k in keys {
            let (have, want) = (self.conf.get(&k).cloned(), new.get(&k).cloned());
            if have == want {
                self.pending.set.remove(&k);
                self.pending.delete.remove(&k);
                continue;
            }
            if hot_pluggable(&k, &features) {
                match want {
                    Some(v) => self.conf.insert(k.clone(), v),
                    None => self.conf.remove(&k),
                };
                self.pending.set.remove(&k);
                self.pending.delete.remove(&k);
                continue;
            }
            match want {
                Some(v) => {
                    self.pending.delete.remove(&k);
                    self.pending.set.insert(k, v);
                }
                None => {
                    self.pending.set.remove(&k);
                    self.pending.delete.insert(k);
                }
            }
        }
    }
    /// SHA-1 of the configuration file.
    pub fn digest(&self) -> String {
        sha1_hex(self.conf_text().as_bytes())
    }

    /// The entry of `/nodes/{node}/qemu` (and the base of `status/current`).
    pub fn status_entry(&self, now: i64) -> Value {
        let mut e = json!({
            "vmid": self.vmid,
            "name": self.name(),
            "status": if self.running { "running" } else { "stopped" },
            "cpus": self.cpus(),
            "maxmem": self.maxmem(),
            "mem": self.mem_used(),
            "maxdisk": self.maxdisk(),
            "disk": 0,
            "uptime": self.uptime(now),
            "cpu": self.cpu_used(),
            "netin": if self.running { 1_000 * self.uptime(now) } else { 0 },
            "netout": if self.running { 700 * self.uptime(now) } else { 0 },
            "diskread": 0,
            "diskwrite": 0,
        });
        if self.running {
            e["pid"] = json!(self.pid);
        }
        if self.is_template() {
            e["template"] = json!(1);
        }
        if let Some(l) = self.lock() {
            e["lock"] = json!(l);
        }
        if let Some(t) = self.tags() {
            e["tags"] = json!(t);
        }
        e
    }
}

/// A task (`UPID:...`) and what happens when it ends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Task {
    pub upid: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u32,
    pub starttime: i64,
    #[serde(rename = "type")]
    pub ttype: String,
    pub id: String,
    pub user: String,
    pub endtime: Option<i64>,
    /// Exit status once stopped (`OK` or the error).
    pub status: Option<String>,
    pub log: Vec<String>,
    pub action: Action,
    /// Injected failure (`task_fails`).
    #[serde(default)]
    pub fail: Option<String>,
    /// Whether the worker has begun (locks taken, first changes made).
    #[serde(default)]
    pub begun: bool,
}

impl Task {
    pub fn status_json(&self) -> Value {
        let (user, tokenid) = split_user(&self.user);
        let mut v = json!({
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.ttype,
            "id": self.id,
            "user": user,
            "status": if self.status.is_some() { "stopped" } else { "running" },
        });
        if let Some(t) = tokenid {
            v["tokenid"] = json!(t);
        }
        if let Some(s) = &self.status {
            v["exitstatus"] = json!(s);
        }
        v
    }
    pub fn list_json(&self) -> Value {
        let (user, tokenid) = split_user(&self.user);
        let mut v = json!({
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.ttype,
            "id": self.id,
            "user": user,
        });
        if let Some(t) = tokenid {
            v["tokenid"] = json!(t);
        }
        match (&self.status, self.endtime) {
            (Some(s), Some(end)) => {
                v["status"] = json!(s);
                v["endtime"] = json!(end);
            }
            _ => v["status"] = json!("RUNNING"),
        }
        v
    }
    /// `ok`, `warning`, `error` or `unknown` (for `statusfilter`).
    pub fn status_type(&self) -> &'static str {
        match self.status.as_deref() {
            None => "unknown",
            Some("OK") => "ok",
            Some(s) if s.starts_with("WARNINGS: ") => "warning",
            Some(_) => "error",
        }
    }
}

/// `user@realm!token` → (`user@realm`, `token`).
pub fn split_user(user: &str) -> (String, Option<String>) {
    match user.split_once('!') {
        Some((u, t)) => (u.to_string(), Some(t.to_string())),
        None => (user.to_string(), None),
    }
}

/// What a task does, applied when its worker begins and ends (data, so that a saved
/// state with running tasks can be completed on restore).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    Create {
        vmid: u32,
        conf: BTreeMap<String, Value>,
        start: bool,
        pool: Option<String>,
        ha: bool,
    },
    Clone {
        src: u32,
        newid: u32,
        target: String,
        full: bool,
        storage: Option<String>,
        name: Option<String>,
        description: Option<String>,
        pool: Option<String>,
        /// Clone this snapshot's configuration rather than the current one.
        #[serde(default)]
        snapname: Option<String>,
    },
    Start {
        vmid: u32,
        skiplock: bool,
    },
    Stop {
        vmid: u32,
        skiplock: bool,
    },
    Reboot {
        vmid: u32,
    },
    Destroy {
        vmid: u32,
        purge: bool,
        skiplock: bool,
    },
    Template {
        vmid: u32,
    },
    Config {
        vmid: u32,
        set: BTreeMap<String, Value>,
        delete: Vec<String>,
        digest: Option<String>,
        skiplock: bool,
    },
    /// `hastart`/`hastop`: ask the HA manager for a state.
    HaState {
        vmid: u32,
        state: String,
    },
    /// `qmigrate`: move the guest to `target` (qemu-server `PVE/QemuMigrate.pm`).
    Migrate {
        vmid: u32,
        target: String,
        online: bool,
        with_local_disks: bool,
        force: bool,
        /// `targetstorage`: where local disks go.
        #[serde(default)]
        targetstorage: Option<String>,
    },
    /// `hamigrate`: ask the HA manager to migrate the guest (it then runs a `qmigrate`).
    HaMigrate {
        vmid: u32,
        target: String,
    },
    /// `qmsnapshot` (pve-guest-common `PVE/AbstractConfig.pm` `snapshot_create`).
    Snapshot {
        vmid: u32,
        snapname: String,
        vmstate: bool,
        description: Option<String>,
    },
    /// `qmdelsnapshot` (`snapshot_delete`).
    DelSnapshot {
        vmid: u32,
        snapname: String,
        force: bool,
    },
    /// `qmrollback` (`snapshot_rollback`), then a start when asked.
    Rollback {
        vmid: u32,
        snapname: String,
        start: bool,
    },
    /// `aptupdate`: refresh the node's package index from the repositories.
    AptUpdate,
}

impl Action {
    pub fn vmid(&self) -> u32 {
        match self {
            Action::Create { vmid, .. }
            | Action::Start { vmid, .. }
            | Action::Stop { vmid, .. }
            | Action::Reboot { vmid }
            | Action::Destroy { vmid, .. }
            | Action::Template { vmid }
            | Action::Config { vmid, .. }
            | Action::HaState { vmid, .. }
            | Action::Migrate { vmid, .. }
            | Action::HaMigrate { vmid, .. }
            | Action::Snapshot { vmid, .. }
            | Action::DelSnapshot { vmid, .. }
            | Action::Rollback { vmid, .. } => *vmid,
            Action::Clone { src, .. } => *src,
            Action::AptUpdate => 0,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pool {
    pub comment: Option<String>,
    pub vms: BTreeSet<u32>,
    pub storage: BTreeSet<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// Key of tickets and CSRF tokens (hex).
    pub secret: String,
    pub cluster: String,
    pub nodes: Vec<Node>,
    pub storages: Vec<Storage>,
    pub vms: BTreeMap<u32, Vm>,
    /// HA resources by SID (`vm:100`): their options (`state`, `comment`, ...).
    pub ha: BTreeMap<String, BTreeMap<String, Value>>,
    /// HA rules (`node-affinity`, `resource-affinity`) by rule ID: their options.
    #[serde(default)]
    pub ha_rules: BTreeMap<String, BTreeMap<String, Value>>,
    pub pools: BTreeMap<String, Pool>,
    /// Users, tokens, custom roles and the ACL (`/etc/pve/user.cfg`).
    #[serde(default)]
    pub access: super::access::Access,
    pub tasks: BTreeMap<u64, Task>,
    /// What the nodes' package repositories offer (`apt-repository` mutation).
    #[serde(default)]
    pub repo: Repo,
    pub next_task: u64,
    pub next_pid: u32,
    pub pstart: u32,
    #[serde(skip)]
    pub upids: HashMap<String, u64>,
}

impl State {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
    pub fn storage(&self, id: &str) -> Option<&Storage> {
        self.storages.iter().find(|s| s.id == id)
    }
    pub fn reindex(&mut self) {
        self.upids = self
            .tasks
            .iter()
            .map(|(seq, t)| (t.upid.clone(), *seq))
            .collect();
    }
    /// Digest of the HA resources configuration.
    pub fn ha_digest(&self) -> String {
        sha1_hex(
            serde_json::to_string(&self.ha)
                .unwrap_or_default()
                .as_bytes(),
        )
    }
    /// The lowest free VMID from 100.
    pub fn next_free_vmid(&self) -> Option<u32> {
        let mut want = 100u32;
        for id in self.vms.range(100..).map(|(id, _)| *id) {
            if id != want {
                break;
            }
            want += 1;
        }
        (want < 1_000_000).then_some(want)
    }
    /// The pool a guest is in.
    pub fn pool_of(&self, vmid: u32) -> Option<&str> {
        self.pools
            .iter()
            .find(|(_, p)| p.vms.contains(&vmid))
            .map(|(id, _)| id.as_str())
    }
}

/// A MAC address with Proxmox's default prefix (`BC:24:11`).
pub fn random_mac(r: u64) -> String {
    format!(
        "BC:24:11:{:02X}:{:02X}:{:02X}",
        (r >> 16) as u8,
        (r >> 8) as u8,
        r as u8
    )
}

/// A UUID (lowercase, with dashes) from two random numbers.
pub fn uuid_from(a: u64, b: u64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// The name of a new disk volume on a storage of `kind`.
pub fn volume_name(kind: &str, vmid: u32, n: u32, base: bool) -> String {
    let prefix = if base { "base" } else { "vm" };
    if kind == "dir" || kind == "nfs" || kind == "cifs" {
        format!("{vmid}/{prefix}-{vmid}-disk-{n}.qcow2")
    } else {
        format!("{prefix}-{vmid}-disk-{n}")
    }
}

/// The smallest disk number not used by `vmid`'s volumes in `conf`.
pub fn next_disk_number(conf: &BTreeMap<String, Value>, vmid: u32) -> u32 {
    let used: BTreeSet<u32> = conf
        .iter()
        .filter(|(k, _)| params::is_drive_key(k))
        .filter_map(|(k, v)| params::parse_drive(k, &value_text(v)).ok())
        .filter_map(|d| {
            let vol = d.volume()?.1.to_string();
            let last = vol.rsplit('/').next().unwrap_or(&vol).to_string();
            let rest = last
                .strip_prefix(&format!("vm-{vmid}-disk-"))
                .or_else(|| last.strip_prefix(&format!("base-{vmid}-disk-")))?
                .to_string();
            rest.split('.').next()?.parse().ok()
        })
        .collect();
    (0..).find(|n| !used.contains(n)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(conf: Value) -> Vm {
        Vm {
            vmid: 100,
            node: "pve1".into(),
            conf: conf
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            running: false,
            started: 0,
            pid: 0,
            pending: Pending::default(),
            snapshots: Default::default(),
        }
    }

    #[test]
    fn changes_to_a_running_guest_wait_for_its_next_start() {
        let mut v =
            vm(json!({"cores": 2, "memory": "2048", "tags": "a", "net0": "virtio,bridge=vmbr0"}));
        v.running = true;
        let mut new = v.conf.clone();
        new.insert("cores".into(), json!(4));
        new.insert("memory".into(), json!("4096"));
        new.insert("tags".into(), json!("a;b"));
        new.insert("net0".into(), json!("virtio,bridge=vmbr0,tag=5"));
        let before = v.digest();
        v.update_conf(new.clone());
        // Tags and NICs (default hotplug) at once; cores and memory pending.
        assert_eq!(v.get("tags").as_deref(), Some("a;b"));
        assert_eq!(v.get("net0").as_deref(), Some("virtio,bridge=vmbr0,tag=5"));
        assert_eq!(v.get("cores").as_deref(), Some("2"));
        assert_eq!(
            v.pending.set.keys().cloned().collect::<Vec<_>>(),
            vec!["cores".to_string(), "memory".to_string()]
        );
        assert!(v.conf_text().contains("\n[PENDING]\ncores: 4\n"));
        assert_ne!(v.digest(), before);
        assert_eq!(v.conf_with_pending().get("cores"), Some(&json!(4)));
        // With memory hotplug, memory goes live; writing the old cores back drops it.
        v.conf
            .insert("hotplug".into(), json!("network,disk,memory"));
        let mut back = new.clone();
        back.insert("cores".into(), json!(2));
        back.insert("hotplug".into(), json!("network,disk,memory"));
        v.update_conf(back);
        assert_eq!(v.get("memory").as_deref(), Some("4096"));
        assert!(v.pending.is_empty(), "{:?}", v.pending);
        // Stopped: everything at once.
        v.running = false;
        v.update_conf(new);
        assert_eq!(v.get("cores").as_deref(), Some("4"));
        assert!(v.pending.is_empty());
    }

    #[test]
    fn derived_values() {
        let v = vm(
            json!({"memory": "4096", "cores": 2, "sockets": 2, "scsi0": "ceph:vm-100-disk-0,size=32G",
            "ide2": "ceph:vm-100-cloudinit,media=cdrom", "boot": "order=scsi0;net0", "description": "a\nb"}),
        );
        assert_eq!(v.maxmem(), 4096 << 20);
        assert_eq!(v.cpus(), 4);
        assert_eq!(v.maxdisk(), 32 << 30);
        assert_eq!(v.name(), "VM 100");
        assert!(
            v.conf_text()
                .starts_with("#a\n#b\nboot: order=scsi0;net0\n")
        );
        assert_eq!(v.digest().len(), 40);
        assert_eq!(next_disk_number(&v.conf, 100), 1);
        assert_eq!(conf_value("cores", &json!("4")), json!(4));
        assert_eq!(conf_value("memory", &json!(8192)), json!("8192"));
        assert_eq!(conf_value("onboot", &json!(true)), json!(1));
    }

    #[test]
    fn next_free_vmid_fills_gaps() {
        let mut st = State {
            version: 1,
            secret: String::new(),
            cluster: "c".into(),
            nodes: vec![],
            storages: vec![],
            vms: BTreeMap::new(),
            ha: BTreeMap::new(),
            ha_rules: BTreeMap::new(),
            pools: BTreeMap::new(),
            access: Default::default(),
            tasks: BTreeMap::new(),
            repo: Repo::default(),
            next_task: 0,
            next_pid: 1,
            pstart: 1,
            upids: HashMap::new(),
        };
        assert_eq!(st.next_free_vmid(), Some(100));
        for id in [100, 101, 103, 9000] {
            st.vms.insert(id, vm(json!({})));
        }
        assert_eq!(st.next_free_vmid(), Some(102));
    }
}
