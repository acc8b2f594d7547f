//! Guests (`/nodes/{node}/qemu/...`) and the tasks that change them.
//!
//! Like the real API, most writes return a UPID at once and do their work in a task
//! ("worker"): the worker starts a moment later, takes the guest's file lock (shared on a
//! clone's source unless it runs, exclusive otherwise; 1 s timeout for clones, 10 s for
//! the rest), re-checks, makes its visible changes (a clone's new guest appears with
//! `lock: clone`), takes its time, then ends with `OK` or an error text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::api::{ParamsExt, check_node};
use super::auth::Auth;
use super::model::{self, Action, State, Task, Vm, value_text};
use super::params::{self, Drive, Params};
use super::{ApiError, ApiResult, Pve};

const GIB: f64 = (1u64 << 30) as f64;

pub(super) fn conf_missing(node: &str, vmid: u32) -> String {
    format!("Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
}

/// The guest `vmid` when its configuration lives on `node`.
pub(super) fn vm_on<'a>(st: &'a State, node: &str, vmid: u32) -> Result<&'a Vm, String> {
    st.vms
        .get(&vmid)
        .filter(|v| v.node == node)
        .ok_or_else(|| conf_missing(node, vmid))
}

pub(super) fn check_lock(vm: &Vm) -> Result<(), String> {
    match vm.lock() {
        Some(l) => Err(format!("VM is locked ({l})")),
        None => Ok(()),
    }
}

fn skiplock(auth: &Auth, p: &Params, name: &str) -> Result<bool, ApiError> {
    let set = p.flag(name);
    if set && auth.user != "root@pam" {
        return Err(ApiError::param(name, "Only root may use this option."));
    }
    Ok(set)
}

pub(super) fn is_cloudinit(d: &Drive) -> bool {
    d.volume().is_some_and(|(_, v)| v.contains("cloudinit"))
}

/// The requested configuration changes of a create/update call.
fn config_changes(p: &Params) -> (BTreeMap<String, Value>, Vec<String>) {
    let set = p
        .iter()
        .filter(|(k, _)| params::qemu_key(k).is_some())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let delete = p
        .s("delete")
        .map(|d| params::split_list(d).map(String::from).collect())
        .unwrap_or_default();
    (set, delete)
}

/// Millisecond range a task of each type takes.
fn task_millis(ttype: &str) -> (u64, u64) {
    match ttype {
        "qmcreate" => (300, 600),
        "qmclone" => (300, 800),
        "qmstart" => (150, 250),
        "qmstop" => (100, 200),
        "qmshutdown" => (250, 400),
        "qmreboot" => (300, 450),
        "qmdestroy" => (150, 300),
        "qmtemplate" => (200, 350),
        "qmconfig" => (40, 90),
        "qmigrate" => (1_500, 3_000),
        "hamigrate" => (100, 200),
        "qmsnapshot" => (400, 900),
        "qmdelsnapshot" => (300, 600),
        "qmrollback" => (500, 1_000),
        "aptupdate" => (2_000, 4_000),
        _ => (80, 150),
    }
}

impl Pve {
    // ---- configuration changes ----

    /// A new volume for `STORAGE:SIZE` (GiB), `STORAGE:cloudinit` or `import-from`.
    fn alloc_drive(
        st: &State,
        node: &str,
        vmid: u32,
        mut d: Drive,
        next: &mut u32,
    ) -> Result<Drive, String> {
        if d.file == "none" || d.file == "cdrom" || d.file.starts_with('/') {
            return Ok(d);
        }
        let Some((sid, vol)) = d
            .file
            .split_once(':')
            .map(|(a, b)| (a.to_string(), b.to_string()))
        else {
            return Err(format!("unable to parse volume ID '{}'", d.file));
        };
        let stor = st
            .storage(&sid)
            .ok_or_else(|| format!("storage '{sid}' does not exist"))?;
        let allocates =
            vol == "cloudinit" || params::is_number(&vol) || d.opts.contains_key("import-from");
        if allocates {
            stor.usable_on(node)?;
        }
        if vol == "cloudinit" {
            let name = if stor.kind == "dir" {
                format!("{vmid}/vm-{vmid}-cloudinit.qcow2")
            } else {
                format!("vm-{vmid}-cloudinit")
            };
            d.file = format!("{sid}:{name}");
            d.opts.insert("media".into(), "cdrom".into());
            return Ok(d);
        }
        let import = d.opts.remove("import-from");
        if params::is_number(&vol) || import.is_some() {
            if d.is_cdrom() {
                return Ok(d);
            }
            if !stor.has_images() {
                return Err(format!(
                    "storage '{sid}' does not support content-type 'images'"
                ));
            }
            let gib: f64 = vol.parse().unwrap_or(0.0);
            let bytes = if gib > 0.0 {
                (gib * GIB) as u64
            } else {
                2u64 << 30
            };
            let name = model::volume_name(&stor.kind, vmid, *next, false);
            *next += 1;
            d.file = format!("{sid}:{name}");
            d.opts.insert("size".into(), params::format_size(bytes));
        }
        Ok(d)
    }

    /// Apply changes to a configuration the way PVE's update does: new disks allocated,
    /// replaced or deleted disks kept as `unusedN`, NICs given a MAC when they have none.
    fn apply_config(
        &self,
        st: &State,
        node: &str,
        vmid: u32,
        conf: &mut BTreeMap<String, Value>,
        set: &BTreeMap<String, Value>,
        delete: &[String],
    ) -> Result<(), String> {
        let mut next = model::next_disk_number(conf, vmid);
        let park = |conf: &mut BTreeMap<String, Value>, old: &str| {
            if let Ok(d) = params::parse_drive("x", old)
                && !d.is_cdrom()
                && d.volume().is_some()
                && let Some(n) = (0..256).find(|n| !conf.contains_key(&format!("unused{n}")))
            {
                conf.insert(format!("unused{n}"), json!(d.file));
            }
        };
        for key in delete {
            let Some(old) = conf.remove(key) else {
                continue;
            };
            if params::is_drive_key(key) && !key.starts_with("unused") {
                park(conf, &value_text(&old));
            }
        }
        for (key, v) in set {
            let (key, mut text) = if key == "cdrom" {
                ("ide2".to_string(), format!("{},media=cdrom", value_text(v)))
            } else {
                (key.clone(), value_text(v))
            };
            if key.starts_with("net")
                && params::qemu_key(&key).is_some_and(|p| p.fmt == params::Fmt::Net)
            {
                let mut net = params::parse_net(&key, &text)?;
                if net.macaddr.is_none() {
                    net.macaddr = Some(model::random_mac(self.rand()));
                }
                text = net.print();
            } else if params::is_drive_key(&key) {
                let d = params::parse_drive(&key, &text)?;
                let d = Self::alloc_drive(st, node, vmid, d, &mut next)?;
                text = d.print();
                if let Some(old) = conf.get(&key).map(value_text)
                    && !key.starts_with("unused")
                    && params::parse_drive(&key, &old).ok().map(|o| o.file) != Some(d.file.clone())
                {
                    park(conf, &old);
                }
            } else if key == "tags" {
                let mut tags: Vec<&str> = params::split_list(&text).collect();
                tags.sort_unstable();
                tags.dedup();
                text = tags.join(";");
            } else if key == "vmgenid" && text == "1" {
                text = model::uuid_from(self.rand(), self.rand());
            }
            conf.insert(key.clone(), model::conf_value(&key, &Value::String(text)));
        }
        if let (Some(b), Some(m)) = (
            conf.get("balloon").map(value_text),
            conf.get("memory").map(value_text),
        ) {
            let mem = params::parse_memory("memory", &m).unwrap_or(512);
            if b.parse::<u64>().unwrap_or(0) > mem {
                return Err(
                    "balloon value too large (must be smaller than assigned memory)".into(),
                );
            }
        }
        Ok(())
    }

    // ---- reads ----

    pub(crate) fn qemu_list(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let t = self.now();
        let list: Vec<Value> = st
            .vms
            .values()
            .filter(|v| v.node == p.node())
            .map(|v| v.status_entry(t))
            .collect();
        Ok(json!(list).into())
    }

    pub(crate) fn qemu_index(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        vm_on(&st, p.node(), p.vmid()).map_err(ApiError::msg)?;
        let subdirs = [
            "config",
            "pending",
            "status",
            "unlink",
            "vncproxy",
            "termproxy",
            "migrate",
            "resize",
            "move",
            "rrd",
            "rrddata",
            "monitor",
            "agent",
            "snapshot",
            "spiceproxy",
            "sendkey",
            "firewall",
            "mtunnel",
            "remote_migrate",
        ];
        Ok(json!(
            subdirs
                .iter()
                .map(|s| json!({"subdir": s}))
                .collect::<Vec<_>>()
        )
        .into())
    }

    pub(crate) fn status_index(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        vm_on(&st, p.node(), p.vmid()).map_err(ApiError::msg)?;
        let subdirs = [
            "current", "start", "stop", "reset", "shutdown", "suspend", "reboot",
        ];
        Ok(json!(
            subdirs
                .iter()
                .map(|s| json!({"subdir": s}))
                .collect::<Vec<_>>()
        )
        .into())
    }

    pub(crate) fn config_get(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let vm = vm_on(&st, p.node(), p.vmid()).map_err(ApiError::msg)?;
        if let Some(s) = p.s("snapshot") {
            if p.flag("current") {
                return Err(ApiError::params(BTreeMap::from([
                    (
                        "snapshot".into(),
                        "cannot use 'snapshot' parameter with 'current'".into(),
                    ),
                    (
                        "current".into(),
                        "cannot use 'snapshot' parameter with 'current'".into(),
                    ),
                ])));
            }
            // The snapshot's section, with the file's digest.
            let mut conf = json!(super::snapshots::snapshot_config(vm, s).map_err(ApiError::msg)?);
            conf["digest"] = json!(vm.digest());
            return Ok(conf.into());
        }
        // Pending values unless `current` (qemu-server `API2/Qemu.pm` `vm_config`,
        // `load_current_config`).
        let mut conf = if p.flag("current") {
            json!(vm.conf)
        } else {
            json!(vm.conf_with_pending())
        };
        conf["digest"] = json!(vm.digest());
        if conf.get("cipassword").is_some() {
            conf["cipassword"] = json!("**********");
        }
        Ok(conf.into())
    }

    /// `GET .../pending`: every key with its current value and, where one is pending,
    /// the new value or `delete: 1` (qemu-server `API2/Qemu.pm` `vm_pending`).
    pub(crate) fn pending_get(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let vm = vm_on(&st, p.node(), p.vmid()).map_err(ApiError::msg)?;
        let keys: std::collections::BTreeSet<&String> = vm
            .conf
            .keys()
            .chain(vm.pending.set.keys())
            .chain(vm.pending.delete.iter())
            .collect();
        let mask = |k: &str, v: &Value| {
            if k == "cipassword" {
                json!("**********")
            } else {
                v.clone()
            }
        };
        let list: Vec<Value> = keys
            .into_iter()
            .map(|k| {
                let mut e = json!({"key": k});
                if let Some(v) = vm.conf.get(k) {
                    e["value"] = mask(k, v);
                }
                if let Some(v) = vm.pending.set.get(k) {
                    e["pending"] = mask(k, v);
                }
                if vm.pending.delete.contains(k) {
                    e["delete"] = json!(1);
                }
                e
            })
            .collect();
        Ok(json!(list).into())
    }

    pub(crate) fn status_current(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let vm = vm_on(&st, p.node(), p.vmid()).map_err(ApiError::msg)?;
        let mut e = vm.status_entry(self.now());
        e["qmpstatus"] = e["status"].clone();
        e["ha"] = match st.ha.get(&format!("vm:{}", vm.vmid)) {
            Some(o) => {
                json!({"managed": 1, "state": o.get("state").cloned().unwrap_or(json!("started"))})
            }
            None => json!({"managed": 0}),
        };
        if vm
            .get("agent")
            .is_some_and(|a| a.starts_with('1') || a.starts_with("enabled=1"))
        {
            e["agent"] = json!(1);
        }
        if vm.running {
            e["running-machine"] = json!("pc-i440fx-10.1+pve0");
            e["running-qemu"] = json!("10.1.2");
        }
        Ok(e.into())
    }

    // ---- writes ----

    pub(crate) fn qemu_create(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let node = p.node().to_string();
        let vmid = p.vmid();
        if p.s("archive").is_some() {
            return Err(ApiError::msg(format!(
                "unable to restore VM {vmid} - restoring backups is not simulated by the twin"
            )));
        }
        if let Some(vm) = st.vms.get(&vmid) {
            return Err(ApiError::msg(format!(
                "unable to create VM {vmid} - VM {vmid} already exists on node '{}'",
                vm.node
            )));
        }
        if let Some(pool) = p.s("pool")
            && !st.pools.contains_key(pool)
        {
            return Err(ApiError::msg(format!("pool '{pool}' does not exist")));
        }
        let (set, _) = config_changes(p);
        let mut conf = BTreeMap::new();
        self.apply_config(&st, &node, vmid, &mut conf, &set, &[])
            .map_err(|e| ApiError::msg(format!("unable to create VM {vmid} - {e}")))?;
        conf.remove("lock");
        if !conf.contains_key("smbios1") {
            conf.insert(
                "smbios1".into(),
                json!(format!(
                    "uuid={}",
                    model::uuid_from(self.rand(), self.rand())
                )),
            );
        }
        if !conf.contains_key("vmgenid") {
            conf.insert(
                "vmgenid".into(),
                json!(model::uuid_from(self.rand(), self.rand())),
            );
        }
        conf.insert(
            "meta".into(),
            json!(format!("creation-qemu=10.1.2,ctime={}", self.now())),
        );
        if !conf.contains_key("boot") {
            let probe = Vm {
                vmid,
                node: node.clone(),
                conf: conf.clone(),
                running: false,
                started: 0,
                pid: 0,
                pending: Default::default(),
                snapshots: Default::default(),
            };
            let drives = probe.drives();
            let mut order: Vec<String> = Vec::new();
            for pre in ["scsi", "virtio", "sata", "ide"] {
                if let Some((k, _)) = drives
                    .iter()
                    .find(|(k, d)| k.starts_with(pre) && !d.is_cdrom())
                {
                    order.push(k.clone());
                    break;
                }
            }
            order.extend(
                drives
                    .iter()
                    .filter(|(_, d)| d.is_cdrom() && !is_cloudinit(d))
                    .map(|(k, _)| k.clone()),
            );
            if conf.contains_key("net0") {
                order.push("net0".into());
            }
            if !order.is_empty() {
                conf.insert("boot".into(), json!(format!("order={}", order.join(";"))));
            }
        }
        let placeholder = BTreeMap::from([("lock".to_string(), json!("create"))]);
        st.vms.insert(
            vmid,
            Vm {
                vmid,
                node: node.clone(),
                conf: placeholder,
                running: false,
                started: 0,
                pid: 0,
                pending: Default::default(),
                snapshots: Default::default(),
            },
        );
        let action = Action::Create {
            vmid,
            conf,
            start: p.flag("start"),
            pool: p.s("pool").map(String::from),
            ha: p.flag("ha-managed"),
        };
        let upid = self.new_task(
            &mut st,
            &node,
            "qmcreate",
            &vmid.to_string(),
            &auth.user,
            action,
            0,
        );
        Ok(json!(upid).into())
    }

    pub(crate) fn clone_vm(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let node = p.node().to_string();
        let (vmid, newid) = (p.vmid(), p.i("newid").unwrap_or_default() as u32);
        let src = vm_on(&st, &node, vmid).map_err(ApiError::msg)?.clone();
        if let Some(pool) = p.s("pool")
            && !st.pools.contains_key(pool)
        {
            return Err(ApiError::msg(format!("pool '{pool}' does not exist")));
        }
        let target = match p.s("target") {
            Some(t) if t != node && t != "localhost" => {
                if st.node(t).is_none() {
                    return Err(ApiError::msg(format!("no such cluster node '{t}'")));
                }
                t.to_string()
            }
            _ => node.clone(),
        };
        let storage = p.s("storage").map(String::from);
        if let Some(sid) = &storage {
            let s = st
                .storage(sid)
                .ok_or_else(|| ApiError::msg(format!("storage '{sid}' does not exist")))?;
            if !s.has_images() {
                return Err(ApiError::param(
                    "storage",
                    format!("storage '{sid}' does not support vm images"),
                ));
            }
            if target != node && !s.shared {
                return Err(ApiError::msg(format!(
                    "can't clone to non-shared storage '{sid}'"
                )));
            }
            s.usable_on(&target).map_err(ApiError::msg)?;
        }
        check_lock(&src).map_err(ApiError::msg)?;
        if let Some(s) = p.s("snapname")
            && !src.snapshots.contains_key(s)
        {
            return Err(ApiError::msg(format!("snapshot '{s}' does not exist")));
        }
        let full = p.b("full").unwrap_or(!src.is_template());
        if storage.is_some() && !full {
            return Err(ApiError::msg(
                "parameter 'storage' not allowed for linked clones",
            ));
        }
        if p.s("format").is_some() && !full {
            return Err(ApiError::msg(
                "parameter 'format' not allowed for linked clones",
            ));
        }
        for (key, d) in src.drives() {
            if d.is_cdrom() || is_cloudinit(&d) || key.starts_with("unused") {
                continue;
            }
            if !full && !src.is_template() {
                return Err(ApiError::msg(format!(
                    "Linked clone feature is not supported for '{}' ({key})",
                    d.file
                )));
            }
            if storage.is_none()
                && let Some(s) = d.volume().and_then(|(sid, _)| st.storage(sid))
            {
                s.usable_on(&target).map_err(ApiError::msg)?;
            }
            if target != node
                && d.volume()
                    .is_some_and(|(sid, _)| st.storage(sid).is_none_or(|s| !s.shared))
            {
                return Err(ApiError::msg(format!(
                    "can't clone VM to node '{target}' (VM uses local storage)"
                )));
            }
        }
        if st.vms.get(&newid).is_some_and(|v| v.node == node) {
            return Err(ApiError::msg(format!(
                "unable to create VM {newid}: config file already exists"
            )));
        }
        let action = Action::Clone {
            src: vmid,
            newid,
            target,
            full,
            storage,
            name: p.s("name").map(String::from),
            description: p.s("description").map(String::from),
            pool: p.s("pool").map(String::from),
            snapname: p.s("snapname").map(String::from),
        };
        let upid = self.new_task(
            &mut st,
            &node,
            "qmclone",
            &vmid.to_string(),
            &auth.user,
            action,
            0,
        );
        Ok(json!(upid).into())
    }

    pub(crate) fn template(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let vm = vm_on(&st, p.node(), p.vmid()).map_err(ApiError::msg)?;
        Self::template_checks(vm, p.s("disk").is_some()).map_err(ApiError::msg)?;
        let node = p.node().to_string();
        let vmid = p.vmid();
        let upid = self.new_task(
            &mut st,
            &node,
            "qmtemplate",
            &vmid.to_string(),
            &auth.user,
            Action::Template { vmid },
            0,
        );
        Ok(json!(upid).into())
    }

    /// `PUT .../resize`: grow a disk (`size` absolute like `40G`, or `+10G`). PVE 9
    /// answers with a task; shrinking is refused as on the real thing.
    pub(crate) fn resize(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let skip = skiplock(auth, p, "skiplock")?;
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let vmid = p.vmid();
        let node = p.node().to_string();
        let disk = p.s("disk").unwrap_or_default().to_string();
        let size = p.s("size").unwrap_or_default().to_string();
        let vm = vm_on(&st, p.node(), vmid).map_err(ApiError::msg)?;
        if !skip {
            check_lock(vm).map_err(ApiError::msg)?;
        }
        if let Some(d) = p.s("digest")
            && d != vm.digest()
        {
            return Err(ApiError::msg(
                "checksum mismatch (file change by other user?)".to_string(),
            ));
        }
        let drive = vm
            .conf
            .get(&disk)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::msg(format!("disk '{disk}' does not exist")))?
            .to_string();
        let bytes = |v: &str| -> Option<u64> {
            let v = v.trim();
            let (num, unit) = v.split_at(
                v.find(|c: char| !c.is_ascii_digit() && c != '.')
                    .unwrap_or(v.len()),
            );
            let n: f64 = num.parse().ok()?;
            let mul = match unit {
                "" => 1.0,
                "K" => 1024.0,
                "M" => 1024.0 * 1024.0,
                "G" => 1024.0 * 1024.0 * 1024.0,
                "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
                _ => return None,
            };
            Some((n * mul) as u64)
        };
        let current = drive
            .split(',')
            .find_map(|kv| kv.strip_prefix("size="))
            .and_then(bytes)
            .unwrap_or(0);
        let new = match size.strip_prefix('+') {
            Some(delta) => bytes(delta).map(|d| current + d),
            None => bytes(&size),
        }
        .ok_or_else(|| ApiError::msg(format!("invalid size '{size}'")))?;
        if new < current {
            return Err(ApiError::msg(
                "shrinking disks is not supported".to_string(),
            ));
        }
        let gib = new.div_ceil(1024 * 1024 * 1024);
        let mut parts: Vec<String> = drive
            .split(',')
            .filter(|kv| !kv.starts_with("size="))
            .map(String::from)
            .collect();
        parts.push(format!("size={gib}G"));
        let mut set = BTreeMap::new();
        set.insert(disk, json!(parts.join(",")));
        let action = Action::Config {
            vmid,
            set,
            delete: Vec::new(),
            digest: None,
            skiplock: true,
        };
        let upid = self.new_task(
            &mut st,
            &node,
            "resize",
            &vmid.to_string(),
            &auth.user,
            action,
            0,
        );
        Ok(json!(upid).into())
    }

    fn template_checks(vm: &Vm, disk: bool) -> Result<(), String> {
        check_lock(vm)?;
        if vm.is_template() && !disk {
            return Err("you can't convert a template to a template".into());
        }
        if vm.running {
            return Err("you can't convert a VM to template if VM is running".into());
        }
        Ok(())
    }

    pub(super) fn ha_managed(st: &State, vmid: u32) -> bool {
        st.ha
            .get(&format!("vm:{vmid}"))
            .is_some_and(|o| o.get("state").and_then(Value::as_str) != Some("ignored"))
    }

    pub(crate) fn start(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let skip = skiplock(auth, p, "skiplock")?;
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let vmid = p.vmid();
        vm_on(&st, p.node(), vmid).map_err(ApiError::msg)?;
        let node = p.node().to_string();
        let (ty, action) = if Self::ha_managed(&st, vmid) {
            (
                "hastart",
                Action::HaState {
                    vmid,
                    state: "started".into(),
                },
            )
        } else {
            (
                "qmstart",
                Action::Start {
                    vmid,
                    skiplock: skip,
                },
            )
        };
        let upid = self.new_task(&mut st, &node, ty, &vmid.to_string(), &auth.user, action, 0);
        Ok(json!(upid).into())
    }

    pub(crate) fn stop(self: &Arc<Self>, auth: &Auth, p: &Params, shutdown: bool) -> ApiResult {
        let skip = skiplock(auth, p, "skiplock")?;
        skiplock(auth, p, "keepActive")?;
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let vmid = p.vmid();
        vm_on(&st, p.node(), vmid).map_err(ApiError::msg)?;
        let node = p.node().to_string();
        let (ty, action) = if Self::ha_managed(&st, vmid) {
            (
                "hastop",
                Action::HaState {
                    vmid,
                    state: "stopped".into(),
                },
            )
        } else if shutdown {
            (
                "qmshutdown",
                Action::Stop {
                    vmid,
                    skiplock: skip,
                },
            )
        } else {
            (
                "qmstop",
                Action::Stop {
                    vmid,
                    skiplock: skip,
                },
            )
        };
        let upid = self.new_task(&mut st, &node, ty, &vmid.to_string(), &auth.user, action, 0);
        Ok(json!(upid).into())
    }

    pub(crate) fn reboot(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let vmid = p.vmid();
        let vm = vm_on(&st, p.node(), vmid).map_err(ApiError::msg)?;
        if !vm.running {
            return Err(ApiError::msg(format!("VM {vmid} not running")));
        }
        let node = p.node().to_string();
        let upid = self.new_task(
            &mut st,
            &node,
            "qmreboot",
            &vmid.to_string(),
            &auth.user,
            Action::Reboot { vmid },
            0,
        );
        Ok(json!(upid).into())
    }

    fn destroy_checks(st: &State, vm: &Vm, purge: bool) -> Result<(), String> {
        let vmid = vm.vmid;
        if vm.get("protection").is_some_and(|p| p == "1") {
            return Err(format!("can't remove VM {vmid} - protection mode enabled"));
        }
        if !purge && st.ha.contains_key(&format!("vm:{vmid}")) {
            return Err(format!(
                "unable to remove VM {vmid} - used in HA resources and purge parameter not set."
            ));
        }
        if vm.running {
            return Err(format!("VM {vmid} is running - destroy failed"));
        }
        Ok(())
    }

    pub(crate) fn qemu_delete(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let skip = skiplock(auth, p, "skiplock")?;
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let vmid = p.vmid();
        let vm = vm_on(&st, p.node(), vmid).map_err(ApiError::msg)?;
        Self::destroy_checks(&st, vm, p.flag("purge")).map_err(ApiError::msg)?;
        let node = p.node().to_string();
        let action = Action::Destroy {
            vmid,
            purge: p.flag("purge"),
            skiplock: skip,
        };
        let upid = self.new_task(
            &mut st,
            &node,
            "qmdestroy",
            &vmid.to_string(),
            &auth.user,
            action,
            0,
        );
        Ok(json!(upid).into())
    }

    /// Checks of an update, before and again under the file lock.
    fn update_checks(
        st: &State,
        node: &str,
        vmid: u32,
        digest: Option<&str>,
        skip: bool,
    ) -> Result<(), String> {
        let vm = vm_on(st, node, vmid)?;
        if let Some(d) = digest
            && d != vm.digest()
        {
            return Err("checksum mismatch (file change by other user?)".into());
        }
        if !skip {
            check_lock(vm)?;
        }
        Ok(())
    }

    /// `PUT .../config`: synchronous; waits for the guest's file lock (10 s).
    pub(crate) async fn config_put(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let skip = skiplock(auth, p, "skiplock")?;
        let (node, vmid, digest) = (p.node().to_string(), p.vmid(), p.s("digest"));
        let (set, delete) = config_changes(p);
        {
            let st = self.st.lock();
            check_node(&st, &node)?;
            Self::update_checks(&st, &node, vmid, digest, skip).map_err(ApiError::msg)?;
        }
        let guard = self
            .flock(vmid, true, Duration::from_secs(10))
            .await
            .map_err(ApiError::msg)?;
        let res = {
            let mut st = self.st.lock();
            Self::update_checks(&st, &node, vmid, digest, skip).map_err(ApiError::msg)?;
            let mut conf = st
                .vms
                .get(&vmid)
                .map(Vm::conf_with_pending)
                .unwrap_or_default();
            self.apply_config(&st, &node, vmid, &mut conf, &set, &delete)
                .map_err(ApiError::msg)?;
            if let Some(vm) = st.vms.get_mut(&vmid) {
                vm.update_conf(conf);
            }
            Ok(Value::Null.into())
        };
        drop(guard);
        res
    }

    /// `POST .../config`: the same checks, then a `qmconfig` task (or, with
    /// `background_delay`, its result when it ends within that time).
    pub(crate) async fn config_post(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let skip = skiplock(auth, p, "skiplock")?;
        let (node, vmid) = (p.node().to_string(), p.vmid());
        let digest = p.s("digest").map(String::from);
        let (set, delete) = config_changes(p);
        let upid = {
            let mut st = self.st.lock();
            check_node(&st, &node)?;
            Self::update_checks(&st, &node, vmid, digest.as_deref(), skip)
                .map_err(ApiError::msg)?;
            let action = Action::Config {
                vmid,
                set,
                delete,
                digest,
                skiplock: skip,
            };
            self.new_task(
                &mut st,
                &node,
                "qmconfig",
                &vmid.to_string(),
                &auth.user,
                action,
                0,
            )
        };
        let Some(delay) = p.i("background_delay") else {
            return Ok(json!(upid).into());
        };
        let deadline = self
            .clock()
            .now_ms()
            .saturating_add((delay as u64).saturating_mul(1000));
        while self.clock().now_ms() < deadline {
            let status = {
                let st = self.st.lock();
                st.upids
                    .get(&upid)
                    .and_then(|s| st.tasks.get(s))
                    .and_then(|t| t.status.clone())
            };
            match status {
                Some(s) if s == "OK" => return Ok(Value::Null.into()),
                Some(s) => return Err(ApiError::msg(format!("failed to update VM {vmid}: {s}"))),
                None => self.clock().sleep(Duration::from_millis(20)).await,
            }
        }
        Ok(json!(upid).into())
    }

    // ---- tasks ----

    /// Register a task and start its worker; the UPID.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_task(
        self: &Arc<Self>,
        st: &mut State,
        node: &str,
        ttype: &str,
        id: &str,
        user: &str,
        action: Action,
        delay_ms: u64,
    ) -> String {
        let seq = st.next_task;
        st.next_task += 1;
        let pid = st.next_pid;
        st.next_pid = st.next_pid.wrapping_add(1 + (self.rand() % 23) as u32) % 0x3F_FFFF;
        let pstart = st.pstart.wrapping_add((seq as u32).wrapping_mul(17));
        let starttime = self.now();
        let upid =
            format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{ttype}:{id}:{user}:");

        let faults = &self.ctx.shared.faults;
        let dc = &self.ctx.name;
        let mut ids = vec![action.vmid().to_string()];
        if let Action::Clone { newid, .. } = &action {
            ids.push(newid.to_string());
        }
        if let Action::AptUpdate = &action {
            ids = vec![node.to_string()];
        }
        let mut fail = None;
        let mut slow = faults.slow_task();
        for oid in &ids {
            match faults.peek_object(dc, "proxmox", oid).as_deref() {
                Some("task_fails")
                    if fail.is_none() && faults.take_object(dc, "proxmox", oid).is_some() =>
                {
                    fail = Some("injected failure (task_fails fault)".to_string());
                }
                Some("slow_task") if faults.take_object(dc, "proxmox", oid).is_some() => {
                    slow = true;
                }
                _ => {}
            }
        }
        let (lo, hi) = task_millis(ttype);
        let mut millis = lo + self.rand() % (hi - lo + 1);
        if slow {
            millis *= 10;
        }
        st.tasks.insert(
            seq,
            Task {
                upid: upid.clone(),
                node: node.to_string(),
                pid,
                pstart,
                starttime,
                ttype: ttype.to_string(),
                id: id.to_string(),
                user: user.to_string(),
                endtime: None,
                status: None,
                log: Vec::new(),
                action,
                fail,
                begun: false,
            },
        );
        st.upids.insert(upid.clone(), seq);
        while st.tasks.len() > model::MAX_TASKS {
            let Some(old) = st
                .tasks
                .iter()
                .find(|(_, t)| t.status.is_some())
                .map(|(s, _)| *s)
            else {
                break;
            };
            if let Some(t) = st.tasks.remove(&old) {
                st.upids.remove(&t.upid);
            }
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let svc = self.clone();
            let fork = 5 + self.rand() % 20;
            rt.spawn(async move {
                svc.run_task(
                    seq,
                    Duration::from_millis(delay_ms + fork),
                    Duration::from_millis(millis),
                )
                .await;
            });
        }
        upid
    }

    /// File locks a task's worker takes: (VMID, exclusive, timeout).
    fn task_locks(st: &State, a: &Action) -> Vec<(u32, bool, Duration)> {
        let long = Duration::from_secs(10);
        let short = Duration::from_secs(1);
        match a {
            Action::Create { vmid, .. } => vec![(*vmid, true, short)],
            Action::Clone { src, newid, .. } => {
                let running = st.vms.get(src).is_some_and(|v| v.running);
                vec![(*src, running, short), (*newid, true, short)]
            }
            Action::HaState { .. } | Action::HaMigrate { .. } | Action::AptUpdate => vec![],
            other => vec![(other.vmid(), true, long)],
        }
    }

    async fn run_task(self: Arc<Self>, seq: u64, fork: Duration, work: Duration) {
        self.clock().sleep(fork).await;
        let locks = {
            let st = self.st.lock();
            match st.tasks.get(&seq) {
                Some(t) => Self::task_locks(&st, &t.action),
                None => return,
            }
        };
        let mut guards = Vec::new();
        for (vmid, exclusive, timeout) in locks {
            match self.flock(vmid, exclusive, timeout).await {
                Ok(g) => guards.push(g),
                Err(e) => {
                    self.finish_task(seq, Err(e), true);
                    return;
                }
            }
        }
        if let Err(e) = self.begin_task(seq) {
            self.finish_task(seq, Err(e), true);
            return;
        }
        self.clock().sleep(work).await;
        self.finish_task(seq, Ok(()), true);
        drop(guards);
    }

    /// The worker begins: checks again and makes its first visible changes.
    fn begin_task(&self, seq: u64) -> Result<(), String> {
        let mut st = self.st.lock();
        let Some(task) = st.tasks.get(&seq) else {
            return Ok(());
        };
        if task.begun {
            return Ok(());
        }
        let (action, node) = (task.action.clone(), task.node.clone());
        let mut log = Vec::new();
        let res = self.begin_action(&mut st, &node, &action, &mut log);
        if let Some(t) = st.tasks.get_mut(&seq) {
            // Begun: its first changes are made, and a failure later undoes them.
            t.begun = res.is_ok();
            t.log.extend(log);
        }
        res
    }

    fn begin_action(
        &self,
        st: &mut State,
        node: &str,
        action: &Action,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        match action {
            Action::Create { .. } => Ok(()),
            Action::Clone {
                src,
                newid,
                full,
                storage,
                name,
                description,
                snapname,
                ..
            } => self.clone_begin(
                st,
                node,
                *src,
                *newid,
                *full,
                storage.as_deref(),
                name.as_deref(),
                description.as_deref(),
                snapname.as_deref(),
                log,
            ),
            Action::Start { vmid, skiplock } => {
                let vm = vm_on(st, node, *vmid)?;
                if vm.is_template() {
                    return Err("you can't start a vm if it's a template".into());
                }
                if !skiplock {
                    check_lock(vm)?;
                }
                if vm.running {
                    return Err(format!("VM {vmid} already running"));
                }
                for (k, v) in &vm.conf {
                    if k.starts_with("net")
                        && let Ok(n) = params::parse_net(k, &value_text(v))
                        && let Some(b) = n.bridge
                        && b != "vmbr0"
                    {
                        return Err(format!("bridge '{b}' does not exist"));
                    }
                }
                if vm.drives().iter().any(|(_, d)| is_cloudinit(d)) {
                    log.push("generating cloud-init ISO".into());
                }
                Ok(())
            }
            Action::Stop { vmid, skiplock } => {
                let vm = vm_on(st, node, *vmid)?;
                if !skiplock {
                    check_lock(vm)?;
                }
                Ok(())
            }
            Action::Reboot { vmid } => {
                let vm = vm_on(st, node, *vmid)?;
                check_lock(vm)?;
                if !vm.running {
                    return Err(format!("VM {vmid} not running"));
                }
                Ok(())
            }
            Action::Destroy {
                vmid,
                purge,
                skiplock,
            } => {
                let vm = vm_on(st, node, *vmid)?;
                Self::destroy_checks(st, vm, *purge)?;
                if !skiplock {
                    check_lock(vm)?;
                }
                if let Some(vm) = st.vms.get_mut(vmid) {
                    vm.conf.insert("lock".into(), json!("destroyed"));
                }
                Ok(())
            }
            Action::Template { vmid } => Self::template_checks(vm_on(st, node, *vmid)?, false),
            Action::Config {
                vmid,
                digest,
                skiplock,
                ..
            } => {
                Self::update_checks(st, node, *vmid, digest.as_deref(), *skiplock)?;
                Ok(())
            }
            Action::HaState { vmid, state } => {
                let verb = if state == "started" { "start" } else { "stop" };
                log.push(format!("Requesting HA {verb} for VM {vmid}"));
                Ok(())
            }
            Action::Migrate {
                vmid,
                target,
                online,
                with_local_disks,
                force,
                ..
            } => self.migrate_begin(
                st,
                node,
                *vmid,
                target,
                *online,
                *with_local_disks,
                *force,
                log,
            ),
            Action::HaMigrate { vmid, target } => {
                log.push(format!(
                    "Requesting HA migration for VM {vmid} to node {target}"
                ));
                Ok(())
            }
            Action::Snapshot {
                vmid,
                snapname,
                vmstate,
                description,
            } => self.snapshot_begin(
                st,
                node,
                *vmid,
                snapname,
                *vmstate,
                description.as_deref(),
                log,
            ),
            Action::DelSnapshot { vmid, snapname, .. } => {
                Self::delsnapshot_begin(st, node, *vmid, snapname)
            }
            Action::Rollback { vmid, snapname, .. } => {
                Self::rollback_begin(st, node, *vmid, snapname, log)
            }
            Action::AptUpdate => {
                log.push("starting apt-get update".into());
                let repo = st.repo.clone();
                let codename = "trixie";
                log.push(format!(
                    "Hit:1 http://deb.debian.org/debian {codename} InRelease"
                ));
                log.push(format!(
                    "Get:2 http://download.proxmox.com/debian/pve {codename} InRelease [2771 B]"
                ));
                log.push(format!(
                    "Get:3 http://download.proxmox.com/debian/pve {codename}/pve-no-subscription amd64 Packages [pve-manager {}]",
                    repo.version
                ));
                log.push("Reading package lists...".into());
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn clone_begin(
        &self,
        st: &mut State,
        node: &str,
        src: u32,
        newid: u32,
        full: bool,
        storage: Option<&str>,
        name: Option<&str>,
        description: Option<&str>,
        snapname: Option<&str>,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let mut source = vm_on(st, node, src)?.clone();
        check_lock(&source)?;
        if let Some(sn) = snapname {
            // A clone of a snapshot copies that snapshot's configuration.
            source.conf = super::snapshots::snapshot_config(&source, sn)?;
        }
        if st.vms.contains_key(&newid) {
            return Err(format!(
                "unable to create VM {newid}: config file already exists"
            ));
        }
        log.push(format!(
            "create {} clone of VM {src} with ID {newid}",
            if full { "full" } else { "linked" }
        ));
        let mut conf: BTreeMap<String, Value> = BTreeMap::new();
        let mut next = 0u32;
        for (k, v) in &source.conf {
            let skip = matches!(
                k.as_str(),
                "lock"
                    | "template"
                    | "parent"
                    | "snaptime"
                    | "snapstate"
                    | "vmstate"
                    | "runningcpu"
                    | "runningmachine"
            ) || k.starts_with("unused");
            if skip {
                continue;
            }
            let text = value_text(v);
            if k.starts_with("net")
                && let Ok(mut n) = params::parse_net(k, &text)
            {
                n.macaddr = Some(model::random_mac(self.rand()));
                conf.insert(k.clone(), json!(n.print()));
                continue;
            }
            if params::is_drive_key(k)
                && let Ok(mut d) = params::parse_drive(k, &text)
            {
                if (!d.is_cdrom() || is_cloudinit(&d))
                    && let Some((sid, vol)) =
                        d.volume().map(|(a, b)| (a.to_string(), b.to_string()))
                {
                    let target_sid = if full {
                        storage.unwrap_or(&sid).to_string()
                    } else {
                        sid.clone()
                    };
                    let kind = st
                        .storage(&target_sid)
                        .map(|s| s.kind.clone())
                        .unwrap_or_default();
                    let new_vol = if is_cloudinit(&d) {
                        if kind == "dir" {
                            format!("{newid}/vm-{newid}-cloudinit.qcow2")
                        } else {
                            format!("vm-{newid}-cloudinit")
                        }
                    } else {
                        let own = model::volume_name(&kind, newid, next, false);
                        next += 1;
                        log.push(format!(
                            "create {} clone of drive {k} ({sid}:{vol})",
                            if full { "full" } else { "linked" }
                        ));
                        if full { own } else { format!("{vol}/{own}") }
                    };
                    d.file = format!("{target_sid}:{new_vol}");
                }
                conf.insert(k.clone(), json!(d.print()));
                continue;
            }
            conf.insert(k.clone(), v.clone());
        }
        let smbios = source.get("smbios1").unwrap_or_default();
        let mut parts: Vec<String> = smbios
            .split(',')
            .filter(|p| !p.is_empty() && !p.starts_with("uuid="))
            .map(String::from)
            .collect();
        parts.insert(
            0,
            format!("uuid={}", model::uuid_from(self.rand(), self.rand())),
        );
        conf.insert("smbios1".into(), json!(parts.join(",")));
        if conf.contains_key("vmgenid") {
            conf.insert(
                "vmgenid".into(),
                json!(model::uuid_from(self.rand(), self.rand())),
            );
        }
        let new_name = match name {
            Some(n) => n.to_string(),
            None => format!(
                "Copy-of-VM-{}",
                source.get("name").unwrap_or_else(|| src.to_string())
            ),
        };
        conf.insert("name".into(), json!(new_name));
        if let Some(d) = description {
            conf.insert("description".into(), json!(d));
        }
        conf.insert("lock".into(), json!("clone"));
        st.vms.insert(
            newid,
            Vm {
                vmid: newid,
                node: node.to_string(),
                conf,
                running: false,
                started: 0,
                pid: 0,
                pending: Default::default(),
                snapshots: Default::default(),
            },
        );
        Ok(())
    }

    /// The worker ends: apply the action (or clean up after a failure) and record the
    /// exit status.
    pub(crate) fn finish_task(self: &Arc<Self>, seq: u64, result: Result<(), String>, spawn: bool) {
        let mut st = self.st.lock();
        let Some(task) = st.tasks.get_mut(&seq) else {
            return;
        };
        if task.status.is_some() {
            return;
        }
        let injected = task.fail.take();
        let (action, node, begun) = (task.action.clone(), task.node.clone(), task.begun);
        let outcome = match (result, injected) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(f)) => Err(match &action {
                Action::Create { vmid, .. } => format!("unable to create VM {vmid} - {f}"),
                Action::Clone { .. } => format!("clone failed: {f}"),
                Action::Start { .. } => format!("start failed: {f}"),
                _ => f,
            }),
            (Ok(()), None) => Ok(()),
        };
        let outcome = outcome.and_then(|()| self.end_action(&mut st, &node, &action, spawn));
        let mut log = Vec::new();
        // A migration logs its end and, failing, exits with "migration aborted"
        // (pve-guest-common `src/PVE/AbstractMigrate.pm` `migrate`).
        let outcome = match (&action, outcome) {
            (Action::Migrate { .. }, res) => {
                let start = st.tasks.get(&seq).map(|t| t.starttime).unwrap_or(0);
                let now = self.now();
                let (t, d) = (
                    super::migrate::stamp(now),
                    super::migrate::duration(now - start),
                );
                match res {
                    Ok(()) => {
                        log.push(format!(
                            "{t} migration finished successfully (duration {d})"
                        ));
                        Ok(())
                    }
                    Err(e) => {
                        log.push(format!("{t} ERROR: {e}"));
                        log.push(format!("{t} ERROR: migration aborted (duration {d}): {e}"));
                        Err("migration aborted".to_string())
                    }
                }
            }
            (_, res) => res,
        };
        if let Err(e) = &outcome {
            Self::undo_action(&mut st, &action, begun);
            log.push(format!("TASK ERROR: {e}"));
        } else {
            log.push("TASK OK".to_string());
        }
        if let Some(t) = st.tasks.get_mut(&seq) {
            t.endtime = Some(self.now());
            t.log.extend(log);
            t.status = Some(match outcome {
                Ok(()) => "OK".to_string(),
                Err(e) => e,
            });
        }
    }

    /// Clean up after a failed task.
    fn undo_action(st: &mut State, action: &Action, begun: bool) {
        match action {
            Action::Create { vmid, .. }
                if st.vms.get(vmid).and_then(Vm::lock).as_deref() == Some("create") =>
            {
                st.vms.remove(vmid);
            }
            Action::Clone { newid, .. }
                if begun && st.vms.get(newid).and_then(Vm::lock).as_deref() == Some("clone") =>
            {
                st.vms.remove(newid);
            }
            Action::Destroy { vmid, .. } => {
                if let Some(vm) = st.vms.get_mut(vmid)
                    && vm.lock().as_deref() == Some("destroyed")
                {
                    vm.conf.remove("lock");
                }
            }
            // `phase1_cleanup`: the lock it took goes.
            Action::Migrate { vmid, .. } if begun => {
                if let Some(vm) = st.vms.get_mut(vmid)
                    && vm.lock().as_deref() == Some("migrate")
                {
                    vm.conf.remove("lock");
                }
            }
            Action::Snapshot { vmid, snapname, .. } if begun => {
                Self::snapshot_undo(st, *vmid, snapname);
            }
            Action::Rollback { vmid, .. } if begun => Self::rollback_undo(st, *vmid),
            _ => {}
        }
    }

    fn end_action(
        self: &Arc<Self>,
        st: &mut State,
        node: &str,
        action: &Action,
        spawn: bool,
    ) -> Result<(), String> {
        match action {
            Action::Create {
                vmid,
                conf,
                start,
                pool,
                ha,
            } => {
                let pid = 1_000 + (self.rand() % 4_000_000) as u32;
                let vm = st
                    .vms
                    .get_mut(vmid)
                    .ok_or_else(|| conf_missing(node, *vmid))?;
                vm.conf = conf.clone();
                if *start && !vm.is_template() {
                    vm.running = true;
                    vm.started = self.now();
                    vm.pid = pid;
                }
                if let Some(pool) = pool
                    && let Some(p) = st.pools.get_mut(pool)
                {
                    p.vms.insert(*vmid);
                }
                if *ha {
                    let state = if *start { "started" } else { "stopped" };
                    st.ha.insert(
                        format!("vm:{vmid}"),
                        BTreeMap::from([("state".to_string(), json!(state))]),
                    );
                }
                Ok(())
            }
            Action::Clone {
                newid,
                target,
                pool,
                ..
            } => {
                let vm = st
                    .vms
                    .get_mut(newid)
                    .ok_or_else(|| conf_missing(node, *newid))?;
                vm.conf.remove("lock");
                vm.node = target.clone();
                if let Some(pool) = pool
                    && let Some(p) = st.pools.get_mut(pool)
                {
                    p.vms.insert(*newid);
                }
                Ok(())
            }
            Action::Start { vmid, .. } => {
                let pid = 1_000 + (self.rand() % 4_000_000) as u32;
                let vm = st
                    .vms
                    .get_mut(vmid)
                    .ok_or_else(|| conf_missing(node, *vmid))?;
                // `vm_start` applies what is pending before it launches the guest.
                vm.apply_pending();
                vm.running = true;
                vm.started = self.now();
                vm.pid = pid;
                Ok(())
            }
            Action::Stop { vmid, .. } => {
                let vm = st
                    .vms
                    .get_mut(vmid)
                    .ok_or_else(|| conf_missing(node, *vmid))?;
                vm.running = false;
                vm.pid = 0;
                // `vm_stop_cleanup` applies the pending changes.
                vm.apply_pending();
                Ok(())
            }
            Action::Reboot { vmid } => {
                let vm = st
                    .vms
                    .get_mut(vmid)
                    .ok_or_else(|| conf_missing(node, *vmid))?;
                // A reboot is a shutdown and a start: the pending changes apply.
                vm.apply_pending();
                vm.started = self.now();
                Ok(())
            }
            Action::Destroy { vmid, purge, .. } => {
                st.vms.remove(vmid);
                for p in st.pools.values_mut() {
                    p.vms.remove(vmid);
                }
                if *purge {
                    st.ha.remove(&format!("vm:{vmid}"));
                }
                Ok(())
            }
            Action::Template { vmid } => {
                let vm = st
                    .vms
                    .get_mut(vmid)
                    .ok_or_else(|| conf_missing(node, *vmid))?;
                vm.conf.insert("template".into(), json!(1));
                let own = format!("vm-{vmid}-disk-");
                let base = format!("base-{vmid}-disk-");
                for (k, v) in vm.conf.iter_mut() {
                    if params::is_drive_key(k) && !k.starts_with("unused") {
                        let text = value_text(v);
                        if let Ok(d) = params::parse_drive(k, &text)
                            && !d.is_cdrom()
                        {
                            *v = json!(text.replace(&own, &base));
                        }
                    }
                }
                Ok(())
            }
            Action::Config {
                vmid,
                set,
                delete,
                digest,
                skiplock,
            } => {
                Self::update_checks(st, node, *vmid, digest.as_deref(), *skiplock)?;
                let mut conf = st
                    .vms
                    .get(vmid)
                    .map(Vm::conf_with_pending)
                    .unwrap_or_default();
                self.apply_config(st, node, *vmid, &mut conf, set, delete)?;
                if let Some(vm) = st.vms.get_mut(vmid) {
                    vm.update_conf(conf);
                }
                Ok(())
            }
            Action::HaState { vmid, state } => {
                if let Some(o) = st.ha.get_mut(&format!("vm:{vmid}")) {
                    o.insert("state".into(), json!(state));
                }
                if spawn {
                    self.ha_reconcile(st, *vmid);
                }
                Ok(())
            }
            Action::Migrate {
                vmid,
                target,
                targetstorage,
                ..
            } => self.migrate_end(st, node, *vmid, target, targetstorage.as_deref()),
            Action::HaMigrate { vmid, target } => {
                // The HA manager's LRM runs `qm migrate` (online when the guest runs).
                if spawn && let Some(vm) = st.vms.get(vmid) {
                    let (from, online) = (vm.node.clone(), vm.running);
                    self.new_task(
                        st,
                        &from,
                        "qmigrate",
                        &vmid.to_string(),
                        "root@pam",
                        Action::Migrate {
                            vmid: *vmid,
                            target: target.clone(),
                            online,
                            with_local_disks: false,
                            force: false,
                            targetstorage: None,
                        },
                        300,
                    );
                }
                Ok(())
            }
            Action::Snapshot { vmid, snapname, .. } => {
                Self::snapshot_end(st, node, *vmid, snapname)
            }
            Action::DelSnapshot { vmid, snapname, .. } => {
                Self::delsnapshot_end(st, node, *vmid, snapname)
            }
            Action::Rollback {
                vmid,
                snapname,
                start,
            } => self.rollback_end(st, node, *vmid, snapname, *start),
            Action::AptUpdate => {
                Self::apt_refresh(st, node);
                Ok(())
            }
        }
    }

    /// The HA manager brings a guest to its requested state (with its own task, as
    /// `root@pam`, a moment later).
    pub(crate) fn ha_reconcile(self: &Arc<Self>, st: &mut State, vmid: u32) {
        let Some(opts) = st.ha.get(&format!("vm:{vmid}")) else {
            return;
        };
        let want_running = match opts
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("started")
        {
            "started" | "enabled" => true,
            "stopped" | "disabled" => false,
            _ => return,
        };
        let Some(vm) = st.vms.get(&vmid) else {
            return;
        };
        if vm.running == want_running || vm.is_template() || vm.lock().is_some() {
            return;
        }
        let id = vmid.to_string();
        let pending = st.tasks.values().rev().take(500).any(|t| {
            t.status.is_none() && t.id == id && (t.ttype == "qmstart" || t.ttype == "qmstop")
        });
        if pending {
            return;
        }
        let node = vm.node.clone();
        let (ty, action) = if want_running {
            (
                "qmstart",
                Action::Start {
                    vmid,
                    skiplock: false,
                },
            )
        } else {
            (
                "qmstop",
                Action::Stop {
                    vmid,
                    skiplock: false,
                },
            )
        };
        self.new_task(st, &node, ty, &id, "root@pam", action, 300);
    }

    /// After a restore: tasks that were running when the state was saved complete now.
    pub(crate) fn recover_tasks(self: &Arc<Self>) {
        let pending: Vec<u64> = {
            let st = self.st.lock();
            st.tasks
                .iter()
                .filter(|(_, t)| t.status.is_none())
                .map(|(s, _)| *s)
                .collect()
        };
        for seq in pending {
            match self.begin_task(seq) {
                Ok(()) => self.finish_task(seq, Ok(()), false),
                Err(e) => self.finish_task(seq, Err(e), false),
            }
        }
    }
}
