//! Guest snapshots (`/nodes/{node}/qemu/{vmid}/snapshot...`), as qemu-server's API
//! (`src/PVE/API2/Qemu.pm` `snapshot_list`, `snapshot`, `delsnapshot`, `rollback`,
//! `get_snapshot_config`, `update_snapshot_config`) and pve-guest-common's
//! `src/PVE/AbstractConfig.pm` (`snapshot_create`, `snapshot_delete`,
//! `snapshot_rollback`) do them.
//!
//! The API refuses at once only what it checks itself (the reserved names `current`
//! and `pending`, a guest that does not exist); the rest (a name already used, a
//! template, a locked guest, storages without snapshots, a snapshot that does not
//! exist) fails the task, as on PVE. A snapshot is a copy of the configuration (without
//! unused disks, the description and the lock) plus `snaptime`, `description`,
//! `vmstate` and `parent`, kept in the configuration's `[name]` section; the
//! configuration's `parent` names the snapshot it was taken from or rolled back to.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::api::{ParamsExt, check_node};
use super::auth::Auth;
use super::model::{Action, State, Vm, value_text};
use super::params::Params;
use super::qemu::{check_lock, vm_on};
use super::{ApiError, ApiResult, Pve};

/// Keys a snapshot does not copy (`__snapshot_copy_config`).
fn copied(k: &str) -> bool {
    !matches!(
        k,
        "snapshots" | "snapstate" | "snaptime" | "vmstate" | "lock" | "digest" | "description"
    ) && !k.starts_with("unused")
}

/// Whether every disk's storage can take snapshots (`has_feature('snapshot')`: RBD,
/// ZFS, LVM-thin and Btrfs volumes, qcow2 files on file storages; CD-ROMs and
/// cloud-init drives are skipped).
fn snapshot_feature(st: &State, vm: &Vm) -> bool {
    vm.drives()
        .into_iter()
        .filter(|(k, d)| !k.starts_with("unused") && !d.is_cdrom())
        .all(|(_, d)| {
            let Some((sid, vol)) = d.volume() else {
                return false;
            };
            match st.storage(sid).map(|s| s.kind.as_str()) {
                Some("rbd" | "zfspool" | "zfs" | "lvmthin" | "btrfs") => true,
                Some("dir" | "nfs" | "cifs" | "glusterfs" | "cephfs") => vol.ends_with(".qcow2"),
                _ => false,
            }
        })
}

fn missing(name: &str) -> String {
    format!("snapshot '{name}' does not exist")
}

impl Pve {
    /// `GET .../snapshot`: the snapshots, oldest first, then `current`.
    pub(crate) fn snapshot_list(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let vm = vm_on(&st, p.node(), p.vmid()).map_err(ApiError::msg)?;
        let mut snaps: Vec<(&String, &BTreeMap<String, Value>)> = vm.snapshots.iter().collect();
        snaps.sort_by_key(|(name, s)| {
            (
                s.get("snaptime").and_then(Value::as_i64).unwrap_or(0),
                (*name).clone(),
            )
        });
        let mut list: Vec<Value> = snaps
            .into_iter()
            .map(|(name, s)| {
                let mut e = json!({
                    "name": name,
                    "snaptime": s.get("snaptime").and_then(Value::as_i64).unwrap_or(0),
                    "vmstate": u8::from(s.contains_key("vmstate")),
                    "description": s.get("description").map(value_text).unwrap_or_default(),
                });
                if let Some(parent) = s.get("parent") {
                    e["parent"] = parent.clone();
                }
                if let Some(state) = s.get("snapstate") {
                    e["snapstate"] = state.clone();
                }
                e
            })
            .collect();
        let mut current = json!({
            "name": "current",
            "digest": vm.digest(),
            "running": u8::from(vm.running),
            "description": "You are here!",
        });
        if let Some(parent) = vm.conf.get("parent") {
            current["parent"] = parent.clone();
        }
        list.push(current);
        Ok(json!(list).into())
    }

    /// `POST .../snapshot`: a `qmsnapshot` task.
    pub(crate) fn snapshot_create(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let name = p.s("snapname").unwrap_or_default().to_string();
        if name == "current" {
            return Err(ApiError::msg(
                "unable to use snapshot name 'current' (reserved name)",
            ));
        }
        if name.eq_ignore_ascii_case("pending") {
            return Err(ApiError::msg(
                "unable to use snapshot name 'pending' (reserved name)",
            ));
        }
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let vmid = p.vmid();
        vm_on(&st, p.node(), vmid).map_err(ApiError::msg)?;
        let node = p.node().to_string();
        let action = Action::Snapshot {
            vmid,
            snapname: name,
            vmstate: p.flag("vmstate"),
            description: p.s("description").map(String::from),
        };
        let upid = self.new_task(
            &mut st,
            &node,
            "qmsnapshot",
            &vmid.to_string(),
            &auth.user,
            action,
            0,
        );
        Ok(json!(upid).into())
    }

    /// `DELETE .../snapshot/{snapname}`: a `qmdelsnapshot` task.
    pub(crate) fn snapshot_delete(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        self.guest_task(auth, p, "qmdelsnapshot", |vmid| Action::DelSnapshot {
            vmid,
            snapname: p.s("snapname").unwrap_or_default().to_string(),
            force: p.flag("force"),
        })
    }

    /// `POST .../snapshot/{snapname}/rollback`: a `qmrollback` task.
    pub(crate) fn rollback(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        self.guest_task(auth, p, "qmrollback", |vmid| Action::Rollback {
            vmid,
            snapname: p.s("snapname").unwrap_or_default().to_string(),
            start: p.flag("start"),
        })
    }

    /// A `kind` task for the guest the path names (on the node the path names), doing
    /// `action`; its UPID.
    fn guest_task(
        self: &Arc<Self>,
        auth: &Auth,
        p: &Params,
        kind: &str,
        action: impl FnOnce(u32) -> Action,
    ) -> ApiResult {
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let vmid = p.vmid();
        vm_on(&st, p.node(), vmid).map_err(ApiError::msg)?;
        let node = p.node().to_string();
        let upid = self.new_task(
            &mut st,
            &node,
            kind,
            &vmid.to_string(),
            &auth.user,
            action(vmid),
            0,
        );
        Ok(json!(upid).into())
    }

    /// `GET .../snapshot/{snapname}/config`.
    pub(crate) fn snapshot_config_get(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let vm = vm_on(&st, p.node(), p.vmid()).map_err(ApiError::msg)?;
        let name = p.s("snapname").unwrap_or_default();
        let snap = vm
            .snapshots
            .get(name)
            .ok_or_else(|| ApiError::msg(missing(name)))?;
        Ok(json!(snap).into())
    }

    /// `PUT .../snapshot/{snapname}/config`: the description (nothing without one).
    pub(crate) fn snapshot_config_put(&self, p: &Params) -> ApiResult {
        let Some(desc) = p.s("description") else {
            return Ok(Value::Null.into());
        };
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let vm = vm_on(&st, p.node(), p.vmid()).map_err(ApiError::msg)?;
        check_lock(vm).map_err(ApiError::msg)?;
        let name = p.s("snapname").unwrap_or_default();
        if !vm.snapshots.contains_key(name) {
            return Err(ApiError::msg(missing(name)));
        }
        if let Some(snap) = st
            .vms
            .get_mut(&p.vmid())
            .and_then(|v| v.snapshots.get_mut(name))
        {
            snap.insert("description".into(), json!(desc));
        }
        Ok(Value::Null.into())
    }

    // ---- the workers ----

    /// `__snapshot_prepare`: checks, the `snapshot` lock, the new section with
    /// `snapstate: prepare`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn snapshot_begin(
        &self,
        st: &mut State,
        node: &str,
        vmid: u32,
        name: &str,
        vmstate: bool,
        description: Option<&str>,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let vm = vm_on(st, node, vmid)?;
        if vm.is_template() {
            return Err("you can't take a snapshot if it's a template".into());
        }
        check_lock(vm)?;
        if vm.snapshots.contains_key(name) {
            return Err(format!("snapshot name '{name}' already used"));
        }
        if !snapshot_feature(st, vm) {
            return Err("snapshot feature is not available".into());
        }
        let mut snap: BTreeMap<String, Value> = vm
            .conf
            .iter()
            .filter(|(k, _)| copied(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if vmstate && vm.running {
            // `__snapshot_save_vmstate`: the RAM goes to a volume on the first disk's
            // storage (or `vmstatestorage`).
            let storage = vm.get("vmstatestorage").or_else(|| {
                vm.drives()
                    .into_iter()
                    .find(|(k, d)| !k.starts_with("unused") && !d.is_cdrom())
                    .and_then(|(_, d)| d.volume().map(|(s, _)| s.to_string()))
            });
            if let Some(s) = storage {
                snap.insert(
                    "vmstate".into(),
                    json!(format!("{s}:vm-{vmid}-state-{name}")),
                );
                snap.insert("runningmachine".into(), json!("pc-i440fx-10.1+pve0"));
                log.push(format!("saving VM state and RAM using storage '{s}'"));
            }
        }
        snap.insert("snapstate".into(), json!("prepare"));
        snap.insert("snaptime".into(), json!(self.now()));
        if let Some(d) = description.filter(|d| !d.is_empty()) {
            snap.insert("description".into(), json!(d));
        }
        if let Some(vm) = st.vms.get_mut(&vmid) {
            vm.conf.insert("lock".into(), json!("snapshot"));
            vm.snapshots.insert(name.to_string(), snap);
        }
        let disks: Vec<String> = vm_on(st, node, vmid)?
            .drives()
            .into_iter()
            .filter(|(k, d)| !k.starts_with("unused") && !d.is_cdrom())
            .map(|(k, d)| format!("snapshotting '{k}' ({})", d.file))
            .collect();
        log.extend(disks);
        Ok(())
    }

    /// `__snapshot_commit`.
    pub(crate) fn snapshot_end(
        st: &mut State,
        node: &str,
        vmid: u32,
        name: &str,
    ) -> Result<(), String> {
        let vm = st
            .vms
            .get_mut(&vmid)
            .filter(|v| v.node == node)
            .ok_or_else(|| super::qemu::conf_missing(node, vmid))?;
        if vm.lock().as_deref() != Some("snapshot") {
            return Err("missing snapshot lock".into());
        }
        let snap = vm.snapshots.get_mut(name).ok_or_else(|| missing(name))?;
        snap.remove("snapstate");
        vm.conf.remove("lock");
        vm.conf.insert("parent".into(), json!(name));
        Ok(())
    }

    /// A failed snapshot is cleaned up (`snapshot_create` deletes what it prepared).
    pub(crate) fn snapshot_undo(st: &mut State, vmid: u32, name: &str) {
        if let Some(vm) = st.vms.get_mut(&vmid) {
            let prepared = vm
                .snapshots
                .get(name)
                .is_some_and(|s| s.get("snapstate") == Some(&json!("prepare")));
            if prepared {
                vm.snapshots.remove(name);
            }
            if vm.lock().as_deref() == Some("snapshot") {
                vm.conf.remove("lock");
            }
        }
    }

    /// `snapshot_delete`'s preparation: the `snapshot-delete` lock, `snapstate: delete`.
    pub(crate) fn delsnapshot_begin(
        st: &mut State,
        node: &str,
        vmid: u32,
        name: &str,
    ) -> Result<(), String> {
        let vm = vm_on(st, node, vmid)?;
        if !vm.snapshots.contains_key(name) {
            return Err(missing(name));
        }
        check_lock(vm)?;
        if vm.is_template() {
            return Err("you can't delete a snapshot if vm is a template".into());
        }
        if let Some(vm) = st.vms.get_mut(&vmid) {
            vm.conf.insert("lock".into(), json!("snapshot-delete"));
            if let Some(s) = vm.snapshots.get_mut(name) {
                s.insert("snapstate".into(), json!("delete"));
            }
        }
        Ok(())
    }

    /// `snapshot_delete`'s end: references to it point at its parent, it goes.
    pub(crate) fn delsnapshot_end(
        st: &mut State,
        node: &str,
        vmid: u32,
        name: &str,
    ) -> Result<(), String> {
        let vm = st
            .vms
            .get_mut(&vmid)
            .filter(|v| v.node == node)
            .ok_or_else(|| super::qemu::conf_missing(node, vmid))?;
        if vm.lock().as_deref() != Some("snapshot-delete") {
            return Err("encountered invalid lock, expected 'snapshot-delete'".into());
        }
        let snap = vm.snapshots.remove(name).ok_or_else(|| missing(name))?;
        let parent = snap.get("parent").cloned();
        let relink = |m: &mut BTreeMap<String, Value>| {
            if m.get("parent") == Some(&json!(name)) {
                match &parent {
                    Some(p) => m.insert("parent".into(), p.clone()),
                    None => m.remove("parent"),
                };
            }
        };
        relink(&mut vm.conf);
        for s in vm.snapshots.values_mut() {
            relink(s);
        }
        vm.conf.remove("lock");
        Ok(())
    }

    /// `snapshot_rollback`'s preparation: checks, the guest stopped, the `rollback`
    /// lock.
    pub(crate) fn rollback_begin(
        st: &mut State,
        node: &str,
        vmid: u32,
        name: &str,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let vm = vm_on(st, node, vmid)?;
        if vm.is_template() {
            return Err("you can't rollback if vm is a template".into());
        }
        let snap = vm.snapshots.get(name).ok_or_else(|| missing(name))?;
        if let Some(state) = snap.get("snapstate") {
            return Err(format!(
                "unable to rollback to incomplete snapshot (snapstate = {})",
                value_text(state)
            ));
        }
        check_lock(vm)?;
        if let Some(vm) = st.vms.get_mut(&vmid) {
            if vm.running {
                // `__snapshot_rollback_vm_stop`.
                log.push(format!("stopping VM {vmid}"));
                vm.running = false;
                vm.pid = 0;
            }
            vm.conf.insert("lock".into(), json!("rollback"));
        }
        Ok(())
    }

    /// `snapshot_rollback`'s end: the snapshot's configuration (with the current
    /// description and unused disks), `parent` the snapshot; the guest started when the
    /// snapshot has its RAM or `start` was asked.
    pub(crate) fn rollback_end(
        &self,
        st: &mut State,
        node: &str,
        vmid: u32,
        name: &str,
        start: bool,
    ) -> Result<(), String> {
        let pid = 1_000 + (self.rand() % 4_000_000) as u32;
        let now = self.now();
        let vm = st
            .vms
            .get_mut(&vmid)
            .filter(|v| v.node == node)
            .ok_or_else(|| super::qemu::conf_missing(node, vmid))?;
        if vm.lock().as_deref() != Some("rollback") {
            return Err("got wrong lock".into());
        }
        let snap = vm
            .snapshots
            .get(name)
            .cloned()
            .ok_or_else(|| missing(name))?;
        let mut conf: BTreeMap<String, Value> = vm
            .conf
            .iter()
            .filter(|(k, _)| k.starts_with("unused") || *k == "description")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        conf.extend(
            snap.iter()
                .filter(|(k, _)| copied(k))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        conf.insert("parent".into(), json!(name));
        vm.conf = conf;
        vm.pending = Default::default();
        if snap.contains_key("vmstate") || start {
            vm.running = true;
            vm.started = now;
            vm.pid = pid;
        }
        Ok(())
    }

    /// A failed rollback leaves no `rollback` lock behind that it took.
    pub(crate) fn rollback_undo(st: &mut State, vmid: u32) {
        if let Some(vm) = st.vms.get_mut(&vmid)
            && vm.lock().as_deref() == Some("rollback")
        {
            vm.conf.remove("lock");
        }
    }
}

/// The configuration of a snapshot as `GET .../config?snapshot=NAME` returns it.
pub(crate) fn snapshot_config(vm: &Vm, name: &str) -> Result<BTreeMap<String, Value>, String> {
    vm.snapshots.get(name).cloned().ok_or_else(|| missing(name))
}
