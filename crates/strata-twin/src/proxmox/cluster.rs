//! Cluster membership: machines MAAS deployed joining as nodes, nodes whose machine
//! was powered off going offline, and the corosync node list and node removal of
//! pve-cluster `PVE/API2/ClusterConfig.pm`.
//!
//! - A machine MAAS deployed with the Proxmox VE role ([`crate::platform`]) joins as
//!   `pvecm add` does: a new node (the lowest free node id, the machine's address,
//!   CPU, memory and boot disk, the `pve-manager` version and kernel of the node that
//!   serves the API) in `/nodes`, `/cluster/status`, `/cluster/resources` and
//!   `/cluster/config/nodes`. The join is refused as `addnode` refuses it: without
//!   quorum (`cluster not ready - no quorum?`), and for a name the corosync
//!   configuration still lists (`can't add existing node 'NAME'`: a machine
//!   reinstalled without `pvecm delnode` first). Seeded nodes the machine stands for
//!   are already members. The outcome is in the DC's event log.
//! - A member whose machine was powered off, released or erased goes offline as a
//!   node that died: its guests are gone (no `pve-guests` stop), `/cluster/resources`
//!   shows them `unknown`, calls for it answer 595, and it still counts for quorum;
//!   powered on again (the same installation), it comes back online. HA recovery of
//!   its guests is not modelled.
//! - `GET /cluster/config/nodes`: the corosync node list (`node`, `name`, `nodeid`,
//!   `quorum_votes`, `ring0_addr`; Sys.Audit on `/`).
//! - `DELETE /cluster/config/nodes/{node}` (`delnode`, what `pvecm delnode` calls): no
//!   `permissions` in its schema, so only `root@pam` may call it (a token, even
//!   root's, gets 403 `Permission check failed (user != root@pam)`); then, as its code
//!   does, `Cannot delete myself from cluster!` for the node answering the API, `cluster
//!   not ready - no quorum?` without quorum, `Node/IP: X is not a known host of the
//!   cluster.` for a name (or ring0 address) not in the list, all 500. PVE does not
//!   look at the node's guests: their configurations stay in `/etc/pve/nodes/NAME/`,
//!   so they remain in `/cluster/resources` (status `unknown`, on a node that is no
//!   member) and calls for the node fail with PVE's hostname lookup error. Draining
//!   first is the caller's job.

use serde_json::{Value, json};

use super::api::{PVE_KERNEL, PVE_VERSION, ParamsExt};
use super::model::{Health, Node, NodeDns, State};
use super::params::Params;
use super::{ApiError, ApiResult, Pve};
use crate::platform::{Change, Event, Host, Platform};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

impl Pve {
    /// Apply what MAAS published about the DC's machines (asking MAAS first when a
    /// deployment is due). Called before every request, without the state lock held.
    pub(crate) fn platform_events(&self) {
        let bus = &self.ctx.platform;
        bus.pump(self.clock().now_ms());
        let events = bus.take(Platform::Proxmox);
        if events.is_empty() {
            return;
        }
        let mut st = self.st.lock();
        for ev in events {
            self.apply_machine(&mut st, ev);
        }
    }

    fn apply_machine(&self, st: &mut State, ev: Event) {
        let bus = &self.ctx.platform;
        let h = &ev.host;
        let idx = st.nodes.iter().position(|n| n.name == h.hostname);
        let (what, detail) = match (ev.change, idx) {
            (Change::Deployed, Some(i)) if st.nodes[i].health.in_cluster() => (
                "already-member",
                format!("node '{}' is a member already", h.hostname),
            ),
            (Change::Deployed, Some(_)) => (
                "join-failed",
                format!("can't add existing node '{}'", h.hostname),
            ),
            (Change::Deployed, None) if !super::nodes::quorate(st) => {
                ("join-failed", "cluster not ready - no quorum?".to_string())
            }
            (Change::Deployed, None) => {
                let node = self.new_node(st, h, ev.at_ms);
                let detail = format!(
                    "node '{}' (nodeid {}, {}) joined the cluster with pve-manager {}",
                    node.name, node.nodeid, node.ip, node.version
                );
                st.nodes.push(node);
                ("joined", detail)
            }
            (Change::PoweredOn, Some(i)) if !st.nodes[i].health.in_cluster() => {
                let n = &mut st.nodes[i];
                n.health = n.broken.unwrap_or(Health::Online);
                n.power = None;
                n.boot = (ev.at_ms / 1000) as i64;
                if let Some(k) = n.kernel_installed.take() {
                    n.kernel = k;
                }
                ("online", format!("node '{}' booted", h.hostname))
            }
            (Change::PoweredOff, Some(i)) if !st.nodes[i].health.in_cluster() => (
                "ignored",
                format!("node '{}' is offline already", h.hostname),
            ),
            (Change::PoweredOff, Some(i)) => {
                let name = st.nodes[i].name.clone();
                for vm in st.vms.values_mut().filter(|v| v.node == name && v.running) {
                    vm.running = false;
                    vm.pid = 0;
                    vm.apply_pending();
                }
                let n = &mut st.nodes[i];
                n.health = Health::Offline;
                n.power = None;
                (
                    "offline",
                    format!(
                        "node '{name}' lost power: offline, still in the cluster configuration"
                    ),
                )
            }
            (_, None) => (
                "ignored",
                format!("'{}' is not a member of the cluster", h.hostname),
            ),
            (Change::PoweredOn, Some(_)) => ("ignored", format!("node '{}' is up", h.hostname)),
        };
        bus.record(ev.at_ms, Platform::Proxmox, what, h, &detail);
    }

    /// The node `pvecm add` makes of a machine.
    fn new_node(&self, st: &State, h: &Host, at_ms: u64) -> Node {
        // ClusterConfig.pm `addnode`: the lowest node id not in use.
        let mut nodeid = 1;
        while st.nodes.iter().any(|n| n.nodeid == nodeid) {
            nodeid += 1;
        }
        let serving = super::nodes::serving_node(st).and_then(|n| st.node(n));
        let net = 10 + self.ctx.index % 200;
        Node {
            name: h.hostname.clone(),
            nodeid,
            ip: h
                .address
                .clone()
                .unwrap_or_else(|| format!("10.{net}.10.{}", 10 + nodeid)),
            maxcpu: if h.cpu_count == 0 { 64 } else { h.cpu_count },
            maxmem: if h.memory_mib == 0 {
                512 * GIB
            } else {
                h.memory_mib * MIB
            },
            maxdisk: if h.boot_disk_gb == 0 {
                94 * GIB
            } else {
                h.boot_disk_gb * 1_000_000_000
            },
            boot: (at_ms / 1000) as i64,
            dns: NodeDns {
                search: Some("localdomain".into()),
                dns1: Some(format!("10.{net}.10.1")),
                dns2: None,
                dns3: None,
            },
            version: serving.map_or_else(|| PVE_VERSION.to_string(), |n| n.version.clone()),
            kernel: serving.map_or_else(|| PVE_KERNEL.to_string(), |n| n.kernel.clone()),
            kernel_installed: None,
            index: Some(st.repo.clone()),
            health: Health::Online,
            broken: None,
            power: None,
        }
    }

    /// `GET /cluster/config/nodes`: the corosync node list.
    pub(crate) fn config_nodes(&self) -> ApiResult {
        let st = self.st.lock();
        let list: Vec<Value> = st
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "node": n.name,
                    "name": n.name,
                    "nodeid": n.nodeid.to_string(),
                    "quorum_votes": "1",
                    "ring0_addr": n.ip,
                })
            })
            .collect();
        Ok(json!(list).into())
    }

    /// `DELETE /cluster/config/nodes/{node}`: `delnode` (permissions are checked
    /// before, by [`super::perms`]).
    pub(crate) fn delnode(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let want = p.node();
        if super::nodes::serving_node(&st) == Some(want) {
            return Err(ApiError::msg("Cannot delete myself from cluster!"));
        }
        if !super::nodes::quorate(&st) {
            return Err(ApiError::msg("cluster not ready - no quorum?"));
        }
        let Some(i) = st.nodes.iter().position(|n| n.name == want || n.ip == want) else {
            return Err(ApiError::msg(format!(
                "Node/IP: {want} is not a known host of the cluster."
            )));
        };
        let node = st.nodes.remove(i);
        let guests = st.vms.values().filter(|v| v.node == node.name).count();
        let now = self.clock().now_ms();
        self.ctx.platform.record_name(
            now,
            Platform::Proxmox,
            "removed",
            &node.name,
            &format!(
                "deleting node {} from cluster ({} guest configuration(s) left in /etc/pve/nodes/{})",
                node.name, guests, node.name
            ),
        );
        Ok(Value::Null.into())
    }
}
