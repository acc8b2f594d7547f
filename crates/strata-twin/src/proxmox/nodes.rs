//! Nodes as a rolling upgrade sees them: their versions (`/nodes/{node}/version`), the
//! package updates their last `apt-get update` found (`/nodes/{node}/apt/update`),
//! reboots and shutdowns (`POST /nodes/{node}/status`), whether the cluster reaches them
//! and whether it is quorate, and the `/_twin/` mutations that stand for what happens in
//! a shell (`apt dist-upgrade`) or out of band (a node powered on, a broken upgrade).
//!
//! A reboot follows pve-manager `PVE/API2/Nodes.pm` `node_cmd`: the call answers `null`
//! and runs `(sleep 2; /sbin/reboot)&`; `pve-guests` then stops the node's guests, the
//! node is down while it boots, and on boot `pve-guests` starts the guests with
//! `onboot: 1` while the HA manager starts its own. Transitions are applied lazily, on
//! the next call after their time (twin clock).

use std::sync::Arc;

use serde_json::{Value, json};

use super::api::{ParamsExt, check_node};
use super::auth::Auth;
use super::model::{Action, Health, PowerEvent, Repo, State};
use super::params::Params;
use super::{ApiError, ApiResult, Pve};
use crate::MutateRequest;

/// From the reboot call until the node is down (the `sleep 2`, then systemd stopping
/// the guests and the cluster stack).
pub(crate) const SHUTDOWN_MS: u64 = 5_000;
/// From down to up again (firmware, kernel, services).
pub(crate) const BOOT_MS: u64 = 60_000;

/// `9.1.2` → `9.1`.
pub(crate) fn release(version: &str) -> String {
    let mut parts = version.split(['.', '-']);
    match (parts.next(), parts.next()) {
        (Some(a), Some(b)) => format!("{a}.{b}"),
        _ => version.to_string(),
    }
}

/// The build's short commit hash: the seeded one for the seeded version, a stable hash
/// of the version for others.
pub(crate) fn repoid(version: &str) -> String {
    if version == super::api::PVE_VERSION {
        return super::api::PVE_REPOID.to_string();
    }
    super::sha1::sha1_hex(format!("pve-manager/{version}").as_bytes())[..16].to_string()
}

/// What `/version` and `/nodes/{node}/version` return for a `pve-manager` version.
pub(crate) fn version_json(version: &str) -> Value {
    json!({"version": version, "release": release(version), "repoid": repoid(version)})
}

/// Debian version order, for the numeric parts the twin's versions have (`9.1.10` >
/// `9.1.9`, `6.17.4-2-pve` > `6.17.4-1-pve`).
pub(crate) fn newer(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parts(a) > parts(b)
}

/// Whether corosync has quorum: more than half of the nodes are members.
pub(crate) fn quorate(st: &State) -> bool {
    let members = st.nodes.iter().filter(|n| n.health.in_cluster()).count();
    members * 2 > st.nodes.len()
}

/// The node whose pveproxy answers the cluster's API: the first one that is up.
pub(crate) fn serving_node(st: &State) -> Option<&str> {
    st.nodes
        .iter()
        .find(|n| n.health.is_online())
        .map(|n| n.name.as_str())
}

/// One entry of the update list (pve-manager `PVE/API2/APT.pm` `$assemble_pkginfo`).
fn package(name: &str, title: &str, section: &str, old: Option<&str>, new: &str) -> Value {
    let mut v = json!({
        "Package": name,
        "Title": title,
        "Description": title,
        "Version": new,
        "Arch": "amd64",
        "Origin": "Proxmox",
        "Priority": "optional",
        "Section": section,
    });
    if let Some(o) = old {
        v["OldVersion"] = json!(o);
    }
    v
}

fn kernel_package(kernel: &str) -> String {
    format!("proxmox-kernel-{kernel}-signed")
}

impl Pve {
    /// `GET /nodes/{node}/version`: the node's own `pve-manager` version.
    pub(crate) fn node_version(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let n = st.node(p.node()).ok_or_else(|| ApiError::msg("no node"))?;
        Ok(version_json(&n.version).into())
    }

    /// `GET /nodes/{node}/apt/update`: the upgrades the node's package index knows of,
    /// newer than what is installed.
    pub(crate) fn apt_list(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let n = st.node(p.node()).ok_or_else(|| ApiError::msg("no node"))?;
        let mut list = Vec::new();
        if let Some(idx) = &n.index {
            if newer(&idx.version, &n.version) {
                list.push(package(
                    "pve-manager",
                    "Proxmox Virtual Environment Management Tools",
                    "admin",
                    Some(&n.version),
                    &idx.version,
                ));
            }
            let have = n.kernel_installed.as_deref().unwrap_or(&n.kernel);
            if newer(&idx.kernel, have) {
                // A new kernel ABI is a new package that `proxmox-default-kernel` pulls in.
                list.push(package(
                    &kernel_package(&idx.kernel),
                    "Proxmox Kernel Image (signed)",
                    "kernel",
                    None,
                    idx.kernel.trim_end_matches("-pve"),
                ));
            }
        }
        Ok(json!(list).into())
    }

    /// `POST /nodes/{node}/apt/update`: an `aptupdate` task that refreshes the node's
    /// package index from the repositories.
    pub(crate) fn apt_update(self: &Arc<Self>, auth: &Auth, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let node = p.node().to_string();
        let upid = self.new_task(
            &mut st,
            &node,
            "aptupdate",
            "",
            &auth.user,
            Action::AptUpdate,
            0,
        );
        Ok(json!(upid).into())
    }

    /// `POST /nodes/{node}/status`: `null`, and the node reboots (or shuts down) a
    /// moment later.
    pub(crate) fn node_power(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let now = self.clock().now_ms();
        let reboot = p.s("command") == Some("reboot");
        if let Some(n) = st.nodes.iter_mut().find(|n| n.name == p.node())
            && n.power.is_none()
        {
            let down_ms = now + SHUTDOWN_MS;
            n.power = Some(PowerEvent {
                down_ms,
                up_ms: reboot.then_some(down_ms + BOOT_MS),
                down: false,
            });
        }
        Ok(Value::Null.into())
    }

    /// Apply the reboots and shutdowns whose time has come.
    pub(crate) fn tick(self: &Arc<Self>) {
        // Machines that joined or lost power since the last call (`cluster.rs`).
        self.platform_events();
        let now = self.clock().now_ms();
        let mut st = self.st.lock();
        if st.nodes.iter().all(|n| n.power.is_none()) {
            return;
        }
        let mut starts: Vec<(String, u32)> = Vec::new();
        let mut ha: Vec<u32> = Vec::new();
        for i in 0..st.nodes.len() {
            let Some(ev) = st.nodes[i].power.clone() else {
                continue;
            };
            let name = st.nodes[i].name.clone();
            if !ev.down && now >= ev.down_ms {
                // `pve-guests` stops every guest before the node goes down.
                for vm in st.vms.values_mut().filter(|v| v.node == name && v.running) {
                    vm.running = false;
                    vm.pid = 0;
                    vm.apply_pending();
                }
                st.nodes[i].health = Health::Offline;
                st.nodes[i].power = Some(PowerEvent {
                    down: true,
                    ..ev.clone()
                });
            }
            let Some(up) = ev.up_ms.filter(|u| now >= *u) else {
                continue;
            };
            let n = &mut st.nodes[i];
            n.power = None;
            n.boot = (up / 1000) as i64;
            if let Some(k) = n.kernel_installed.take() {
                n.kernel = k;
            }
            n.health = n.broken.unwrap_or(Health::Online);
            if !n.health.in_cluster() {
                continue;
            }
            for vm in st
                .vms
                .values()
                .filter(|v| v.node == name && !v.is_template())
            {
                let sid = format!("vm:{}", vm.vmid);
                if st.ha.contains_key(&sid) {
                    ha.push(vm.vmid);
                } else if vm.get("onboot").as_deref() == Some("1") && vm.lock().is_none() {
                    starts.push((name.clone(), vm.vmid));
                }
            }
        }
        for (node, vmid) in starts {
            self.new_task(
                &mut st,
                &node,
                "qmstart",
                &vmid.to_string(),
                "root@pam",
                Action::Start {
                    vmid,
                    skiplock: false,
                },
                0,
            );
        }
        for vmid in ha {
            self.ha_reconcile(&mut st, vmid);
        }
    }

    /// `/_twin/` mutation of kind `node`: `health` (`online`, `offline`,
    /// `pveproxy-down`: what happens out of band, e.g. a node powered on or its
    /// pveproxy killed), `version` and `kernel` (what is installed, e.g. to seed a
    /// cluster of mixed versions).
    pub(crate) fn mutate_node(&self, req: &MutateRequest) -> Result<Value, String> {
        let mut st = self.st.lock();
        let now = self.now();
        let Some(n) = st.nodes.iter_mut().find(|n| n.name == req.id) else {
            return Err(format!("no such cluster node '{}'", req.id));
        };
        for (k, v) in &req.set {
            let text = || {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| format!("`{k}` is a string"))
            };
            match k.as_str() {
                "health" => {
                    let h = Health::parse(&text()?).ok_or_else(|| {
                        "`health` is `online`, `offline` or `pveproxy-down`".to_string()
                    })?;
                    if h.in_cluster() && !n.health.in_cluster() {
                        // Powered on again: it booted just now.
                        n.boot = now;
                        if let Some(k) = n.kernel_installed.take() {
                            n.kernel = k;
                        }
                    }
                    n.health = h;
                    n.power = None;
                    n.broken = None;
                }
                "version" => n.version = text()?,
                "kernel" => {
                    n.kernel = text()?;
                    n.kernel_installed = None;
                }
                other => return Err(format!("unknown node setting '{other}'")),
            }
        }
        Ok(node_json(n))
    }

    /// `/_twin/` mutation of kind `node-upgrade`: what `apt dist-upgrade` does on the
    /// node. `set` may name the `version` to install (default: what the node's package
    /// index offers; an older one is a rollback) and the `kernel` (default: the index's,
    /// when newer; it runs after the next boot), and `reboot: true` to reboot after.
    /// An object fault `upgrade_offline` or `upgrade_pveproxy_down` on the node
    /// (service `proxmox`, id the node name) makes the upgrade break it: it is offline,
    /// or up without a working pveproxy, now and after every boot until upgraded again.
    pub(crate) fn mutate_upgrade(&self, req: &MutateRequest) -> Result<Value, String> {
        for k in req.set.keys() {
            if !["version", "kernel", "reboot"].contains(&k.as_str()) {
                return Err(format!("unknown upgrade setting '{k}'"));
            }
        }
        let want = |k: &str| -> Result<Option<String>, String> {
            match req.set.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(format!("`{k}` is a version string")),
            }
        };
        let (version, kernel) = (want("version")?, want("kernel")?);
        let reboot = match req.set.get("reboot") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("`reboot` is true or false".into()),
        };
        let faults = &self.ctx.shared.faults;
        let dc = &self.ctx.name;
        let mut st = self.st.lock();
        if st.node(&req.id).is_none() {
            return Err(format!("no such cluster node '{}'", req.id));
        }
        let broken = match faults.peek_object(dc, "proxmox", &req.id).as_deref() {
            Some("upgrade_offline") => Some(Health::Offline),
            Some("upgrade_pveproxy_down") => Some(Health::PveproxyDown),
            _ => None,
        };
        if broken.is_some() {
            faults.take_object(dc, "proxmox", &req.id);
        }
        let now = self.clock().now_ms();
        let Some(n) = st.nodes.iter_mut().find(|n| n.name == req.id) else {
            return Err(format!("no such cluster node '{}'", req.id));
        };
        let previous = n.version.clone();
        let index = n.index.clone();
        let target = version.or_else(|| {
            index
                .as_ref()
                .filter(|i| newer(&i.version, &n.version))
                .map(|i| i.version.clone())
        });
        let have_kernel = n.kernel_installed.clone().unwrap_or(n.kernel.clone());
        let new_kernel = kernel.or_else(|| {
            index
                .as_ref()
                .filter(|i| newer(&i.kernel, &have_kernel))
                .map(|i| i.kernel.clone())
        });
        let changed = target.is_some() || new_kernel.is_some();
        if let Some(v) = target {
            n.version = v;
        }
        if let Some(k) = new_kernel {
            n.kernel_installed = (k != n.kernel).then_some(k);
        }
        n.broken = broken;
        // Without a reboot the breakage shows at once (services restarted by the
        // upgrade); with one, when the node boots again. A node rebooting already
        // comes back as the upgrade left it.
        if n.power.is_none() {
            if reboot {
                let down_ms = now + SHUTDOWN_MS;
                n.power = Some(PowerEvent {
                    down_ms,
                    up_ms: Some(down_ms + BOOT_MS),
                    down: false,
                });
            } else {
                n.health = broken.unwrap_or(Health::Online);
            }
        }
        let mut out = node_json(n);
        out["previous"] = json!(previous);
        out["changed"] = json!(changed);
        Ok(out)
    }

    /// `/_twin/` mutation of kind `apt-repository`: what the repositories offer
    /// (`version` of `pve-manager`, newest `kernel`); nodes see it after their next
    /// `apt-get update`.
    pub(crate) fn mutate_repo(&self, req: &MutateRequest) -> Result<Value, String> {
        let mut st = self.st.lock();
        let mut repo = st.repo.clone();
        for (k, v) in &req.set {
            let s = v
                .as_str()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("`{k}` is a version string"))?;
            match k.as_str() {
                "version" => repo.version = s.to_string(),
                "kernel" => repo.kernel = s.to_string(),
                other => return Err(format!("unknown repository setting '{other}'")),
            }
        }
        st.repo = repo.clone();
        Ok(json!({"version": repo.version, "kernel": repo.kernel}))
    }

    /// The `aptupdate` worker's end: the node's index is what the repositories offer.
    pub(crate) fn apt_refresh(st: &mut State, node: &str) -> Repo {
        let repo = st.repo.clone();
        if let Some(n) = st.nodes.iter_mut().find(|n| n.name == node) {
            n.index = Some(repo.clone());
        }
        repo
    }
}

/// A node as the mutations return it.
fn node_json(n: &super::model::Node) -> Value {
    json!({
        "node": n.name,
        "version": n.version,
        "kernel": n.kernel,
        "kernel_installed": n.kernel_installed,
        "health": n.health.name(),
        "broken": n.broken.map(|b| b.name()),
        "rebooting": n.power.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(newer("9.1.10", "9.1.9"));
        assert!(newer("6.17.4-2-pve", "6.17.4-1-pve"));
        assert!(!newer("9.1.2", "9.1.2"));
        assert!(!newer("9.0.11", "9.1.2"));
        assert_eq!(release("9.1.2"), "9.1");
        assert_eq!(
            repoid(super::super::api::PVE_VERSION),
            super::super::api::PVE_REPOID
        );
        assert_eq!(repoid("9.1.5").len(), 16);
    }
}
