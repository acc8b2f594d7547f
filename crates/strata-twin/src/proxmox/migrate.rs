//! Guest migration between the cluster's nodes, as qemu-server does it:
//!
//! - `GET .../migrate` (`migrate_vm_precondition` in `src/PVE/API2/Qemu.pm`): whether
//!   the guest runs, the nodes it may go to (those where every storage its disks use is
//!   enabled), its local disks and local resources.
//! - `POST .../migrate` (`migrate_vm`): refused at once as the API refuses (`target`
//!   is the node itself: a 400 on `target`; a node not in the cluster; `force`,
//!   `migration_type` and `migration_network` only for root; a locked guest; a running
//!   guest without `online`; a storage not enabled on the target), then a `qmigrate`
//!   task, or `hamigrate` for an HA resource (the HA manager then runs the `qmigrate`).
//! - The `qmigrate` worker (`src/PVE/QemuMigrate.pm`, `prepare`, `phase1`,
//!   `scan_local_volumes`; pve-guest-common `src/PVE/AbstractMigrate.pm` `migrate`):
//!   fails, with `migration aborted` as its exit status and the reason in its log, when
//!   the target is down (`Can't connect to destination address using public key`),
//!   the guest uses local devices, a running guest has local disks and no
//!   `with-local-disks`, or local disks have snapshots that cannot move; otherwise the
//!   guest holds `lock: migrate` while it runs and is on the target when it ends (its
//!   local disks, mapped by `targetstorage` when given, with it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::api::{ParamsExt, check_node};
use super::auth::Auth;
use super::model::{self, Action, State, Vm, value_text};
use super::params::{self, Drive, Params};
use super::qemu::{check_lock, is_cloudinit, vm_on};
use super::{ApiError, ApiResult, Pve};

/// A volume of a guest: where the configuration refers to it.
struct Volume {
    key: String,
    volid: String,
    sid: String,
    drive: Drive,
    unused: bool,
}

/// The volumes of the guest's current configuration (drives and unused disks).
fn volumes(vm: &Vm) -> Vec<Volume> {
    vm.drives()
        .into_iter()
        .filter_map(|(key, d)| {
            let (sid, _) = d.volume()?;
            Some(Volume {
                unused: key.starts_with("unused"),
                volid: d.file.clone(),
                sid: sid.to_string(),
                key,
                drive: d,
            })
        })
        .collect()
}

/// Whether a snapshot of the guest refers to `volid`.
fn in_snapshot(vm: &Vm, volid: &str) -> bool {
    vm.snapshots.values().any(|snap| {
        snap.iter().any(|(k, v)| {
            params::is_drive_key(k)
                && params::parse_drive(k, &value_text(v)).is_ok_and(|d| d.file == volid)
        })
    })
}

/// Devices only this node has (`PVE/QemuMigrate/Helpers.pm` `check_local_resources`:
/// PCI and USB pass-through that is not mapped, and host serial/parallel ports).
fn local_resources(vm: &Vm) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in &vm.conf {
        let text = value_text(v);
        let indexed = |prefix: &str| {
            k.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
        };
        let local = (indexed("hostpci") && !text.contains("mapping="))
            || (indexed("usb") && !text.contains("spice") && !text.contains("mapping="))
            || ((indexed("serial") || indexed("parallel")) && text.starts_with("/dev/"));
        if local {
            out.push(k.clone());
        }
    }
    out
}

/// The storage map of `targetstorage` (pve-common `parse_idmap`): `1` maps each
/// storage to itself, one ID maps all, `A:B` pairs map some.
struct StorageMap {
    identity: bool,
    default: Option<String>,
    entries: BTreeMap<String, String>,
}

fn parse_storage_map(s: &str) -> StorageMap {
    let mut m = StorageMap {
        identity: s == "1",
        default: None,
        entries: BTreeMap::new(),
    };
    if m.identity {
        return m;
    }
    for item in params::split_list(s) {
        match item.split_once(':') {
            Some((a, b)) => {
                m.entries.insert(a.to_string(), b.to_string());
            }
            None => m.default = Some(item.to_string()),
        }
    }
    m
}

impl StorageMap {
    fn target<'a>(&'a self, sid: &'a str) -> &'a str {
        if self.identity {
            return sid;
        }
        self.entries
            .get(sid)
            .map(String::as_str)
            .or(self.default.as_deref())
            .unwrap_or(sid)
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), the migration log's time stamps.
pub(crate) fn stamp(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `HH:MM:SS` of a duration in seconds.
pub(crate) fn duration(secs: i64) -> String {
    let s = secs.max(0);
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

impl Pve {
    /// `GET .../migrate`: the preconditions of a migration.
    pub(crate) fn migrate_check(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let vm = vm_on(&st, p.node(), p.vmid()).map_err(ApiError::msg)?;
        check_lock(vm).map_err(ApiError::msg)?;
        // Which nodes lack a storage the disks are on
        // (`PVE/QemuServer.pm` `check_local_storage_availability`).
        let mut unavailable: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for v in volumes(vm).iter().filter(|v| !v.unused) {
            let s = st
                .storage(&v.sid)
                .ok_or_else(|| ApiError::msg(format!("storage '{}' does not exist", v.sid)))?;
            for n in &st.nodes {
                if s.disabled || s.nodes.as_ref().is_some_and(|ns| !ns.contains(&n.name)) {
                    unavailable
                        .entry(n.name.clone())
                        .or_default()
                        .insert(v.sid.clone());
                }
            }
        }
        // HA resources in a negative resource-affinity rule with this guest block the
        // nodes they run on; those in a positive one move with it.
        let sid = format!("vm:{}", vm.vmid);
        let ha = st.ha.contains_key(&sid);
        let mut blocking: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut dependent: BTreeSet<String> = BTreeSet::new();
        if ha {
            for rule in st.ha_rules.values() {
                if rule.get("type").and_then(Value::as_str) != Some("resource-affinity")
                    || rule.contains_key("disable")
                {
                    continue;
                }
                let members: Vec<&str> = rule
                    .get("resources")
                    .and_then(Value::as_str)
                    .map(|r| r.split(',').collect())
                    .unwrap_or_default();
                if !members.contains(&sid.as_str()) {
                    continue;
                }
                let positive = rule.get("affinity").and_then(Value::as_str) == Some("positive");
                for other in members.into_iter().filter(|m| *m != sid) {
                    if positive {
                        dependent.insert(other.to_string());
                        continue;
                    }
                    let node = other
                        .strip_prefix("vm:")
                        .and_then(|id| id.parse::<u32>().ok())
                        .and_then(|id| st.vms.get(&id))
                        .map(|v| v.node.clone());
                    if let Some(n) = node {
                        blocking
                            .entry(n)
                            .or_default()
                            .push(json!({"sid": other, "cause": "resource-affinity"}));
                    }
                }
            }
        }
        let mut allowed = Vec::new();
        let mut not_allowed = serde_json::Map::new();
        for n in st.nodes.iter().filter(|n| n.name != p.node()) {
            let mut why = serde_json::Map::new();
            if let Some(s) = unavailable.get(&n.name) {
                why.insert("unavailable_storages".into(), json!(s));
            }
            if let Some(b) = blocking.get(&n.name) {
                why.insert("blocking-ha-resources".into(), json!(b));
            }
            if why.is_empty() {
                allowed.push(n.name.clone());
            } else {
                not_allowed.insert(n.name.clone(), Value::Object(why));
            }
        }
        // Disks on storages that are not shared (`$check_vm_disks_local`).
        let mut local_disks = Vec::new();
        for v in volumes(vm) {
            if st.storage(&v.sid).is_some_and(|s| s.shared) {
                continue;
            }
            let mut d = json!({
                "volid": v.volid,
                "size": v.drive.size_bytes(),
                "referenced_in_config": 1,
            });
            if v.unused {
                d["is_unused"] = json!(1);
            } else {
                d["is_attached"] = json!(1);
                d["drivename"] = json!(v.key);
            }
            if v.drive.is_cdrom() {
                d["cdrom"] = json!(1);
            }
            if in_snapshot(vm, &v.volid) {
                d["referenced_in_snapshot"] = json!(1);
            }
            local_disks.push(d);
        }
        let mut out = json!({
            "running": u8::from(vm.running),
            "allowed_nodes": allowed,
            "not_allowed_nodes": not_allowed,
            "local_disks": local_disks,
            "local_resources": local_resources(vm),
            "mapped-resources": [],
            "mapped-resource-info": {},
            "has-dbus-vmstate": 1,
        });
        if ha {
            out["dependent-ha-resources"] = json!(dependent);
        }
        Ok(out.into())
    }

    /// `POST .../migrate`: the API's checks, then the task.
    pub(crate) fn migrate(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let node = p.node().to_string();
        let target = p.s("target").unwrap_or_default().to_string();
        if target == node {
            return Err(ApiError::param("target", "target is local node."));
        }
        if st.node(&target).is_none() {
            return Err(ApiError::msg(format!("no such cluster node '{target}'")));
        }
        for opt in ["force", "migration_type", "migration_network"] {
            let set = match p.get(opt) {
                Some(Value::Bool(b)) => *b,
                Some(_) => true,
                None => false,
            };
            if set && auth.user != "root@pam" {
                return Err(ApiError::param(opt, "Only root may use this option."));
            }
        }
        let vmid = p.vmid();
        let vm = vm_on(&st, &node, vmid).map_err(ApiError::msg)?;
        check_lock(vm).map_err(ApiError::msg)?;
        let online = if vm.running {
            if !p.flag("online") {
                return Err(ApiError::msg("can't migrate running VM without --online"));
            }
            true
        } else {
            false
        };
        let map = p.s("targetstorage").map(parse_storage_map);
        // `check_storage_availability`: every storage the disks are on is enabled here
        // and on the target (unless mapped to other storages).
        let check_target = |sid: &str| -> Result<(), ApiError> {
            let s = st
                .storage(sid)
                .ok_or_else(|| ApiError::msg(format!("storage '{sid}' does not exist")))?;
            if !s.has_images() {
                return Err(ApiError::msg(format!(
                    "storage '{sid}' does not support vm images"
                )));
            }
            s.usable_on(&target).map_err(ApiError::msg)
        };
        match &map {
            Some(m) if !m.identity => {
                for sid in m.entries.values().chain(m.default.iter()) {
                    check_target(sid)?;
                }
            }
            _ => {
                for v in volumes(vm).iter().filter(|v| !v.unused) {
                    let s = st.storage(&v.sid).ok_or_else(|| {
                        ApiError::msg(format!("storage '{}' does not exist", v.sid))
                    })?;
                    s.usable_on(&node).map_err(ApiError::msg)?;
                    s.usable_on(&target).map_err(ApiError::msg)?;
                }
            }
        }
        let (ttype, action) = if st.ha.contains_key(&format!("vm:{vmid}")) {
            (
                "hamigrate",
                Action::HaMigrate {
                    vmid,
                    target: target.clone(),
                },
            )
        } else {
            (
                "qmigrate",
                Action::Migrate {
                    vmid,
                    target: target.clone(),
                    online,
                    with_local_disks: p.flag("with-local-disks"),
                    force: p.flag("force"),
                    targetstorage: p.s("targetstorage").map(String::from),
                },
            )
        };
        let upid = self.new_task(
            &mut st,
            &node,
            ttype,
            &vmid.to_string(),
            &auth.user,
            action,
            0,
        );
        Ok(json!(upid).into())
    }

    /// The `qmigrate` worker begins: `prepare` and `phase1` (the lock, the scan of
    /// local volumes). Errors are the reasons the log gives before "migration aborted".
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn migrate_begin(
        &self,
        st: &mut State,
        node: &str,
        vmid: u32,
        target: &str,
        online: bool,
        with_local_disks: bool,
        force: bool,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let t = stamp(self.now());
        let vm = vm_on(st, node, vmid)?;
        check_lock(vm)?;
        if vm.running && !online {
            return Err("can't migrate running VM without --online".into());
        }
        if !vm.running && online {
            log.push(format!(
                "{t} VM isn't running. Doing offline migration instead."
            ));
        }
        let target_node = st
            .node(target)
            .ok_or_else(|| format!("no such cluster node '{target}'"))?;
        if !target_node.health.in_cluster() {
            // The ssh test of `prepare` (`/bin/true` on the target).
            return Err("Can't connect to destination address using public key".into());
        }
        let ip = target_node.ip.clone();
        let local = local_resources(vm);
        if !local.is_empty() {
            if !force {
                return Err(format!(
                    "can't migrate VM which uses local devices: {}",
                    local.join(", ")
                ));
            }
            log.push(format!("{t} migrating VM which uses local devices"));
        }
        let running = vm.running;
        log.push(format!(
            "{t} starting migration of VM {vmid} to node '{target}' ({ip})"
        ));
        // `scan_local_volumes`: what cannot move is logged, then the migration stops.
        let mut errors: Vec<(String, String)> = Vec::new();
        let mut found: Vec<String> = Vec::new();
        for v in volumes(vm) {
            let Some(s) = st.storage(&v.sid) else {
                errors.push((
                    v.volid.clone(),
                    format!("storage '{}' does not exist", v.sid),
                ));
                continue;
            };
            if s.shared {
                continue;
            }
            if v.drive.is_cdrom() {
                if is_cloudinit(&v.drive) {
                    found.push(format!(
                        "found generated disk '{}' (in current VM config)",
                        v.volid
                    ));
                } else {
                    errors.push((v.volid.clone(), "local cdrom image".into()));
                }
                continue;
            }
            if in_snapshot(vm, &v.volid) {
                if running {
                    errors.push((
                        v.volid.clone(),
                        "online storage migration not possible if non-replicated snapshot exists"
                            .into(),
                    ));
                    continue;
                }
                let qcow2 = v.volid.ends_with(".qcow2");
                if !(s.kind == "zfspool" || s.kind == "btrfs" || qcow2) {
                    errors.push((v.volid.clone(), "non-migratable snapshot exists".into()));
                    continue;
                }
            }
            if v.unused {
                found.push(format!("found local disk '{}' (unused)", v.volid));
            } else {
                if running && !with_local_disks {
                    errors.push((
                        v.volid.clone(),
                        "can't live migrate attached local disks without with-local-disks option"
                            .into(),
                    ));
                }
                found.push(format!("found local disk '{}' (attached)", v.volid));
            }
        }
        for f in found {
            log.push(format!("{t} {f}"));
        }
        if !errors.is_empty() {
            for (volid, why) in errors {
                log.push(format!("{t} can't migrate local disk '{volid}': {why}"));
            }
            return Err("can't migrate VM - check log".into());
        }
        if let Some(vm) = st.vms.get_mut(&vmid) {
            vm.conf.insert("lock".into(), json!("migrate"));
        }
        if running {
            log.push(format!("{t} starting VM {vmid} on remote node '{target}'"));
            log.push(format!("{t} start remote tunnel"));
            log.push(format!(
                "{t} starting online/live migration on unix:/run/qemu-server/{vmid}.migrate"
            ));
        } else {
            log.push(format!("{t} copying local disk images"));
        }
        Ok(())
    }

    /// The `qmigrate` worker ends: the configuration moves to the target, the guest
    /// (if it ran) runs there, local disks go along (to the mapped storages).
    pub(crate) fn migrate_end(
        &self,
        st: &mut State,
        node: &str,
        vmid: u32,
        target: &str,
        targetstorage: Option<&str>,
    ) -> Result<(), String> {
        if !st.node(target).is_some_and(|n| n.health.in_cluster()) {
            return Err(format!(
                "Can't connect to destination address using public key (node '{target}' went down)"
            ));
        }
        let map = targetstorage.map(parse_storage_map);
        let kinds: BTreeMap<String, (String, bool)> = st
            .storages
            .iter()
            .map(|s| (s.id.clone(), (s.kind.clone(), s.shared)))
            .collect();
        let pid = 1_000 + (self.rand() % 4_000_000) as u32;
        let now = self.now();
        let vm = st
            .vms
            .get_mut(&vmid)
            .filter(|v| v.node == node)
            .ok_or_else(|| super::qemu::conf_missing(node, vmid))?;
        if let Some(m) = &map {
            let mut moved: Vec<(String, String)> = Vec::new();
            for v in volumes(vm) {
                let Some((kind, shared)) = kinds.get(&v.sid) else {
                    continue;
                };
                let to = m.target(&v.sid).to_string();
                if *shared || to == v.sid {
                    continue;
                }
                let new_kind = kinds.get(&to).map(|k| k.0.clone()).unwrap_or(kind.clone());
                let name = if is_cloudinit(&v.drive) {
                    if new_kind == "dir" {
                        format!("{vmid}/vm-{vmid}-cloudinit.qcow2")
                    } else {
                        format!("vm-{vmid}-cloudinit")
                    }
                } else {
                    let n = v
                        .volid
                        .rsplit("-disk-")
                        .next()
                        .and_then(|x| x.split('.').next())
                        .and_then(|x| x.parse().ok())
                        .unwrap_or(0);
                    model::volume_name(&new_kind, vmid, n, false)
                };
                let mut d = v.drive.clone();
                d.file = format!("{to}:{name}");
                moved.push((v.key.clone(), d.print()));
            }
            for (k, text) in moved {
                vm.conf.insert(k, json!(text));
            }
        }
        vm.conf.remove("lock");
        vm.node = target.to_string();
        if vm.running {
            vm.pid = pid;
            vm.started = now;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_durations() {
        assert_eq!(stamp(0), "1970-01-01 00:00:00");
        assert_eq!(stamp(1_767_225_600), "2026-01-01 00:00:00");
        assert_eq!(stamp(951_825_661), "2000-02-29 12:01:01");
        assert_eq!(duration(3_725), "01:02:05");
    }

    #[test]
    fn storage_maps() {
        let m = parse_storage_map("local-lvm:ceph,local-zfs:ceph2");
        assert_eq!(m.target("local-lvm"), "ceph");
        assert_eq!(m.target("other"), "other");
        let m = parse_storage_map("ceph");
        assert_eq!(m.target("local-lvm"), "ceph");
        let m = parse_storage_map("1");
        assert_eq!(m.target("local-lvm"), "local-lvm");
    }
}
