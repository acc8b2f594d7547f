//! Self-service VMs on a Proxmox VE cluster: what `strata serve`'s requests read and
//! make, outside the fleet's desired state.
//!
//! A request's VMs carry their own ownership tag (the provider's, e.g.
//! `strata-<fleet>-req`, which the fleet's provider sees as another owner's and
//! never touches), the team's and the request's tags, and a name derived from the
//! request id, so a retried create finds what a crashed attempt made: a VM of that
//! name whose description carries the request's marker is ours (the clone sets name
//! and description at once, before the tags are written), anything else of that
//! name is refused.
//!
//! - [`ProxmoxProvider::node_capacity`]: per node, the cores and memory the guests
//!   already have (allocated, not used: what placement must not overcommit), from
//!   one `GET /cluster/resources`.
//! - [`ProxmoxProvider::ensure_guest`]: observe, then act: clone the template onto
//!   the chosen node (a vmid from `/cluster/nextid`, another after a collision), then
//!   configure, grow the disk and start it (the provider's own convergence).
//! - [`ProxmoxProvider::guest_named`], [`ProxmoxProvider::remove_guest`].

use reqwest::Method;
use serde_json::Value;

use super::client::{Failure, TaskEnd, failure, is_missing, message};
use super::conf::{Drive, MIB, as_u64, is_disk_key, segment, text};
use super::{Cluster, Desired, Guest, ProxmoxProvider};
use crate::ProviderError;

/// Clone attempts, each with a fresh vmid after a collision.
const ATTEMPTS: u32 = 5;

/// One node's size and what its guests hold.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeCapacity {
    pub node: String,
    pub online: bool,
    pub cores: u64,
    pub memory_mib: u64,
    /// Cores and memory of the VMs on the node (running or not; templates aside).
    pub allocated_cores: u64,
    pub allocated_memory_mib: u64,
    pub guests: usize,
}

/// A request's VM as it must be.
#[derive(Clone, Debug)]
pub struct GuestRequest {
    /// Unique in the cluster (derived from the request id).
    pub name: String,
    pub node: String,
    pub template: String,
    /// Storage of the clone's disks (`None`: the template's).
    pub storage: Option<String>,
    pub cores: u64,
    pub memory_mib: u64,
    pub disk_gb: u64,
    /// Tags besides the ownership tag.
    pub tags: Vec<String>,
    /// NICs (`virtio,bridge=vmbr0,tag=1001`), in order; empty keeps the template's.
    pub nets: Vec<String>,
    /// Cloud-init network settings per NIC (`ip=dhcp`).
    pub ipconfig: Vec<String>,
    /// Marks the VM as this request's in its description (set by the clone).
    pub marker: String,
}

/// A VM as the cluster lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GuestState {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    pub status: String,
    pub cores: u64,
    pub memory_mib: u64,
    pub tags: Vec<String>,
}

impl GuestState {
    fn of(g: &Guest) -> GuestState {
        GuestState {
            vmid: g.vmid,
            name: g.name.clone(),
            node: g.node.clone(),
            status: g.status.clone(),
            cores: g.maxcpu,
            memory_mib: g.maxmem / MIB,
            tags: g.tags.clone(),
        }
    }
}

fn qemu_path(node: &str, vmid: u32) -> String {
    format!("/nodes/{}/qemu/{vmid}", segment(node))
}

/// Per node: its size and what its VMs hold (pure, over one `/cluster/resources`).
fn capacity_of(data: &Value, cluster: &Cluster) -> Vec<NodeCapacity> {
    let mut out = Vec::new();
    for e in data.as_array().into_iter().flatten() {
        if e.get("type").and_then(Value::as_str) != Some("node") {
            continue;
        }
        let node = e.get("node").map(text).unwrap_or_default();
        let vms: Vec<&Guest> = cluster
            .guests
            .iter()
            .filter(|g| g.node == node && g.is_vm())
            .collect();
        out.push(NodeCapacity {
            online: e.get("status").and_then(Value::as_str) == Some("online"),
            cores: e.get("maxcpu").and_then(as_u64).unwrap_or(0),
            memory_mib: e.get("maxmem").and_then(as_u64).unwrap_or(0) / MIB,
            allocated_cores: vms.iter().map(|g| g.maxcpu).sum(),
            allocated_memory_mib: vms.iter().map(|g| g.maxmem / MIB).sum(),
            guests: vms.len(),
            node,
        });
    }
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

impl ProxmoxProvider {
    /// Every node with its size and what its VMs hold (one list call).
    pub async fn node_capacity(&self) -> Result<Vec<NodeCapacity>, ProviderError> {
        let data = self.api.get("/cluster/resources", &[]).await?;
        Ok(capacity_of(&data, &Cluster::parse(&data)))
    }

    /// The VM named `name`, if the cluster has one (templates aside).
    pub async fn guest_named(&self, name: &str) -> Result<Option<GuestState>, ProviderError> {
        let guests = self.guests().await?;
        Ok(guests
            .iter()
            .find(|g| g.is_vm() && g.name == name)
            .map(GuestState::of))
    }

    /// Whether the VM at `g` is this request's: our ownership tag, or (a clone an
    /// interrupted attempt made, not yet tagged) the request's marker in its
    /// description.
    async fn ours(&self, g: &Guest, marker: &str) -> Result<bool, ProviderError> {
        if g.owned_by(&self.owner_tag) {
            return Ok(true);
        }
        if super::conf::foreign_owner(&g.tags, &self.owner_tag).is_some() {
            return Ok(false);
        }
        match self.config(&g.node, g.vmid).await {
            Ok(c) => Ok(c
                .get("description")
                .map(text)
                .is_some_and(|d| d.contains(marker))),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The request's VM as `want` says: found (by name, ours) and converged, or cloned
    /// onto `want.node` first. Returns it as the cluster lists it afterwards.
    pub async fn ensure_guest(&self, want: &GuestRequest) -> Result<GuestState, ProviderError> {
        let desired = Desired {
            name: want.name.clone(),
            cores: Some(want.cores.max(1)),
            memory: Some(want.memory_mib.max(16)),
            disk_gb: (want.disk_gb > 0).then_some(want.disk_gb),
            tags: Some(want.tags.clone()),
            status: Some("running".into()),
            ha: Some(false),
            nets: (!want.nets.is_empty()).then(|| want.nets.clone()),
            ipconfig: (!want.ipconfig.is_empty()).then(|| want.ipconfig.clone()),
            nameserver: None,
            searchdomain: None,
            template: Some(want.template.clone()),
            storage: want.storage.clone(),
        };
        let cluster = self.cluster().await?;
        let (vmid, node, fresh) = match cluster
            .guests
            .iter()
            .find(|g| g.is_vm() && g.name == want.name)
        {
            Some(g) => {
                if !self.ours(g, &want.marker).await? {
                    return Err(ProviderError::Refused(format!(
                        "{}: a VM named {} (vmid {}) exists and is not this request's",
                        self.dc, g.name, g.vmid
                    )));
                }
                let node = self.wait_free(g.vmid, &g.node).await?;
                (g.vmid, node, false)
            }
            None => {
                let vmid = self.clone_for(&cluster, want).await?;
                let node = self.wait_free(vmid, &want.node).await?;
                (vmid, node, true)
            }
        };
        self.converge(&node, vmid, &desired, &self.owner_tag, fresh)
            .await?;
        let guests = self.guests().await?;
        guests
            .iter()
            .find(|g| g.vmid == vmid)
            .map(GuestState::of)
            .ok_or_else(|| {
                ProviderError::Api(format!(
                    "{}: VM {vmid} ({}) vanished after it was configured",
                    self.dc, want.name
                ))
            })
    }

    /// Clone the template onto `want.node` as `want.name`; the new vmid.
    async fn clone_for(
        &self,
        cluster: &Cluster,
        want: &GuestRequest,
    ) -> Result<u32, ProviderError> {
        let template = cluster
            .guests
            .iter()
            .filter(|g| g.kind == "qemu" && g.template && g.name == want.template)
            .min_by_key(|g| g.vmid)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{}: no template named {} in the Proxmox cluster",
                    self.dc, want.template
                ))
            })?
            .clone();
        if template.node != want.node {
            // A clone onto another node needs the template's disks on shared storage.
            let tconf = self.config(&template.node, template.vmid).await?;
            let shared = |sid: &str| {
                cluster
                    .storages
                    .iter()
                    .any(|s| s.storage == sid && s.shared)
            };
            let all_shared = tconf
                .iter()
                .filter(|(k, _)| is_disk_key(k))
                .filter_map(|(_, v)| Drive::parse(&text(v)))
                .filter(|d| !d.is_cdrom())
                .all(|d| d.storage().is_some_and(shared));
            if !all_shared || want.storage.as_deref().is_some_and(|s| !shared(s)) {
                return Err(ProviderError::Refused(format!(
                    "{}: template {} has disks only node {} reaches; it cannot be cloned onto {}",
                    self.dc, want.template, template.node, want.node
                )));
            }
        }
        let path = format!(
            "/nodes/{}/qemu/{}/clone",
            segment(&template.node),
            template.vmid
        );
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let next = self.api.get("/cluster/nextid", &[]).await?;
            let vmid = as_u64(&next)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ProviderError::Api(format!("/cluster/nextid answered {next}")))?;
            let mut form = vec![
                ("newid", vmid.to_string()),
                ("name", want.name.clone()),
                ("full", "1".to_string()),
                ("description", want.marker.clone()),
            ];
            if want.node != template.node {
                form.push(("target", want.node.clone()));
            }
            if let Some(s) = &want.storage {
                form.push(("storage", s.clone()));
            }
            let what = format!("clone of {} to VM {vmid} ({})", template.name, want.name);
            let outcome = match self.api.post(&path, &form).await {
                Ok(data) => match data.as_str().filter(|u| u.starts_with("UPID:")) {
                    Some(upid) => self.api.wait_task(upid, &what).await?,
                    None => TaskEnd::Ok,
                },
                Err(e) if failure(&e) == Failure::Refused => return Err(e),
                Err(e) => TaskEnd::Failed(message(&e)),
            };
            // Whatever the answer said, the cluster says what happened: a VM of our
            // name is ours (the name is the request's) whichever vmid it got.
            let guests = self.guests().await?;
            if let Some(g) = guests.iter().find(|g| g.is_vm() && g.name == want.name) {
                return Ok(g.vmid);
            }
            match outcome {
                TaskEnd::Ok => {
                    return Err(ProviderError::Api(format!(
                        "{what}: the task ended OK but the cluster lists no {}",
                        want.name
                    )));
                }
                TaskEnd::Failed(m) => {
                    tracing::debug!("{what} (attempt {attempt}) failed: {m}");
                    last = m;
                }
            }
        }
        Err(ProviderError::Api(format!(
            "{}: cloning {} for {} failed {ATTEMPTS} times; last: {last}",
            self.dc, want.template, want.name
        )))
    }

    /// Wait until VM `vmid` has no lock (a clone still running leaves `lock: clone`);
    /// the node it is on then.
    async fn wait_free(&self, vmid: u32, node: &str) -> Result<String, ProviderError> {
        let deadline = tokio::time::Instant::now() + super::client::TASK_TIMEOUT;
        let mut node = node.to_string();
        loop {
            let lock = match self.config(&node, vmid).await {
                Ok(c) => c.get("lock").map(text).filter(|l| !l.is_empty()),
                Err(e) if is_missing(&e) => {
                    let guests = self.guests().await?;
                    let g = guests.into_iter().find(|g| g.vmid == vmid).ok_or_else(|| {
                        ProviderError::Api(format!(
                            "VM {vmid} disappeared while strata waited for it"
                        ))
                    })?;
                    node = g.node.clone();
                    g.lock
                }
                Err(e) => return Err(e),
            };
            match lock {
                None => return Ok(node),
                Some(l) if tokio::time::Instant::now() >= deadline => {
                    return Err(ProviderError::Timeout(format!(
                        "VM {vmid} is still locked ({l})"
                    )));
                }
                Some(_) => tokio::time::sleep(super::client::POLL).await,
            }
        }
    }

    /// Stop and destroy the request's VM named `name` (ours only). `false` when there
    /// is none.
    pub async fn remove_guest(&self, name: &str, marker: &str) -> Result<bool, ProviderError> {
        let guests = self.guests().await?;
        let Some(g) = guests.iter().find(|g| g.is_vm() && g.name == name).cloned() else {
            return Ok(false);
        };
        if !self.ours(&g, marker).await? {
            return Err(ProviderError::Refused(format!(
                "{}: VM {} ({name}) is not this request's; it is left alone",
                self.dc, g.vmid
            )));
        }
        let node = self.wait_free(g.vmid, &g.node).await?;
        self.set_power(&node, g.vmid, "stopped", false).await?;
        let what = format!("destroy of VM {} ({name})", g.vmid);
        let query = [
            ("purge", "1".to_string()),
            ("destroy-unreferenced-disks", "1".to_string()),
        ];
        let result = match self
            .api
            .call(
                Method::DELETE,
                &qemu_path(&node, g.vmid),
                &query,
                &[],
                Some(false),
            )
            .await
        {
            Ok(data) => self.api.finish(&data, &what).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // It may have happened anyway: the listing decides.
            let left = self.guests().await?;
            if left.iter().any(|x| x.vmid == g.vmid && x.name == name) {
                return Err(ProviderError::Api(format!(
                    "{what} failed: {}",
                    message(&e)
                )));
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capacity_counts_the_vms_on_each_node() {
        let data = json!([
            {"type": "node", "node": "pve2", "status": "online", "maxcpu": 64, "maxmem": 512u64 * 1024 * 1024 * 1024},
            {"type": "node", "node": "pve1", "status": "offline", "maxcpu": 32, "maxmem": 1u64 << 36},
            {"type": "qemu", "vmid": 100, "name": "a", "node": "pve2", "maxcpu": 4, "maxmem": 8u64 << 30, "status": "running"},
            {"type": "qemu", "vmid": 101, "name": "b", "node": "pve2", "maxcpu": 2, "maxmem": 2u64 << 30, "status": "stopped"},
            {"type": "qemu", "vmid": 9000, "name": "tpl", "node": "pve2", "maxcpu": 2, "maxmem": 2u64 << 30, "template": 1},
        ]);
        let c = capacity_of(&data, &Cluster::parse(&data));
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].node.as_str(), c[0].online, c[0].guests),
            ("pve1", false, 0)
        );
        let p2 = &c[1];
        assert_eq!(
            (
                p2.cores,
                p2.memory_mib,
                p2.allocated_cores,
                p2.allocated_memory_mib,
                p2.guests
            ),
            (64, 512 * 1024, 6, 10 * 1024, 2)
        );
    }
}
