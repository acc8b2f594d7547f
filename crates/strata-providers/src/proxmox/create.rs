//! Creating a VM: a full clone of the template, then configuration.
//!
//! **Crash safety.** Before the clone call, the provider records its intent
//! `{vmid, name, node, template, token}` under the step's key; the clone carries the
//! token in its description. A run that finds an earlier attempt's intent, and a VM
//! with that vmid and name that carries no other fleet's `strata-*` tag, adopts it and
//! goes on configuring it instead of cloning again. A VM of that name that already
//! carries the fleet's tag is adopted as well (the step is idempotent); an untagged VM
//! of that name without a matching intent is refused rather than duplicated.
//!
//! **The nextid race.** `GET /cluster/nextid` reserves nothing: two creators (two
//! strata processes, or anyone else) can be handed the same vmid. Within one process,
//! vmids being created are reserved locally so parallel creates never collide. Across
//! processes the clone of the loser fails, synchronously or in its task ("config file
//! already exists", or a lock timeout), or answers ambiguously (timeout, 5xx). Then the
//! provider looks at that vmid: a VM with our name and our token is ours (the call did
//! happen: go on); anybody else's means a new vmid (after a jittered offset), a new
//! intent and another clone, at most [`ATTEMPTS`] times; nothing there after an
//! ambiguous answer means the same vmid is tried again (a late clone of ours then
//! makes the retry fail, and is found as ours).

use std::collections::HashSet;
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use strata_plan::Step;
use tokio::time::Instant;

use super::client::{Failure, POLL, TASK_TIMEOUT, TaskEnd, failure, is_missing, message};
use super::conf::{Drive, GIB, as_u64, boot_disk, foreign_owner, is_disk_key, segment, text};
use super::modify::Conf;
use super::{Cluster, Desired, Guest, ProxmoxProvider};
use crate::{ActContext, Outcome, ProviderError};

/// Clone attempts per create (each with its own vmid, or a retry of an ambiguous one).
pub(crate) const ATTEMPTS: u32 = 10;

/// What an earlier attempt of a create recorded.
#[derive(Clone, Debug, PartialEq)]
struct Intent {
    vmid: u32,
    name: String,
}

impl Intent {
    fn parse(v: &Value) -> Option<Intent> {
        Some(Intent {
            vmid: u32::try_from(as_u64(v.get("vmid")?)?).ok()?,
            name: v.get("name")?.as_str()?.to_string(),
        })
    }
}

/// A vmid this process is creating; released when dropped.
struct Reservation<'a> {
    provider: &'a ProxmoxProvider,
    vmid: u32,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.provider.reserved.lock().remove(&self.vmid);
    }
}

/// A create in flight on a node (for placement); released when dropped.
struct Placement<'a> {
    provider: &'a ProxmoxProvider,
    node: String,
}

impl Drop for Placement<'_> {
    fn drop(&mut self) {
        let mut p = self.provider.placing.lock();
        if let Some(n) = p.get_mut(&self.node) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.remove(&self.node);
            }
        }
    }
}

/// What is at a vmid after a clone attempt went wrong.
#[derive(Debug)]
enum Probe {
    Absent,
    Ours(String),
    Foreign(String),
}

fn description(owner: &str, token: &str) -> String {
    format!("Managed by strata ({owner}). create-token {token}")
}

impl ProxmoxProvider {
    pub(super) async fn create(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let desired = step.desired.as_ref().ok_or_else(|| {
            ProviderError::Refused(format!("{}: a create needs the desired state", step.id))
        })?;
        let want = Desired::from_resource(desired)?;
        let owner = ctx.owner_tag;
        let (cluster, previous) = tokio::join!(self.cluster(), ctx.intents.previous(ctx.key));
        let cluster = cluster?;

        // Already there with our tag (an earlier run finished the clone and the tag).
        if let Some(g) = cluster
            .guests
            .iter()
            .find(|g| g.owned_by(owner) && g.name == want.name)
        {
            let node = self.wait_unlocked(g).await?;
            self.converge(&node, g.vmid, &want, owner, false).await?;
            return Ok(Outcome {
                external_id: Some(g.vmid.to_string()),
                note: format!(
                    "adopted VM {} on {node}: it already carries {owner}",
                    g.vmid
                ),
            });
        }
        // An interrupted earlier attempt of this very step.
        if let Some(prev) = previous.as_ref().and_then(Intent::parse)
            && prev.name == want.name
            && let Some(g) = cluster.guest(prev.vmid)
            && g.is_vm()
            && g.name == want.name
        {
            if let Some(other) = foreign_owner(&g.tags, owner) {
                return Err(ProviderError::Refused(format!(
                    "{}: VM {} carries another fleet's tag `{other}`",
                    step.id, g.vmid
                )));
            }
            let node = self.wait_unlocked(g).await?;
            self.converge(&node, g.vmid, &want, owner, false).await?;
            return Ok(Outcome {
                external_id: Some(g.vmid.to_string()),
                note: format!(
                    "adopted VM {} on {node}, created by an interrupted earlier attempt",
                    g.vmid
                ),
            });
        }
        if let Some(g) = cluster
            .guests
            .iter()
            .find(|g| g.name == want.name && !g.template)
        {
            return Err(ProviderError::Refused(format!(
                "{}: a VM named {} (vmid {}) exists without the ownership tag {owner}; strata will \
                 neither take it over nor create a second one (rename or remove it, or tag it {owner})",
                step.id, g.name, g.vmid
            )));
        }

        let template_name = want.template.as_deref().ok_or_else(|| {
            ProviderError::Refused(format!(
                "{}: spec.template is required to create a VM",
                step.id
            ))
        })?;
        let template = cluster
            .guests
            .iter()
            .filter(|g| g.kind == "qemu" && g.template && g.name == template_name)
            .min_by_key(|g| g.vmid)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{}: no template named {template_name} in the cluster",
                    step.id
                ))
            })?
            .clone();
        let tconf = self.config(&template.node, template.vmid).await?;
        if let (Some(gb), Some((key, d))) = (want.disk_gb, boot_disk(&tconf))
            && d.size_bytes() > gb * GIB
        {
            return Err(ProviderError::Refused(format!(
                "{}: the template's disk {key} is {} GiB, more than the desired {gb} GiB (disks never shrink)",
                step.id,
                d.size_bytes().div_ceil(GIB)
            )));
        }
        let placement = self.place(
            &cluster,
            &template,
            &tconf,
            want.storage.as_deref(),
            &step.id.to_string(),
        )?;
        let target = placement.node.clone();
        let listed: HashSet<u32> = cluster.guests.iter().map(|g| g.vmid).collect();
        let vmid = self
            .clone_template(ctx, &want, &template, &target, &listed)
            .await?;
        drop(placement);
        self.converge(&target, vmid, &want, owner, true).await?;
        Ok(Outcome {
            external_id: Some(vmid.to_string()),
            note: format!(
                "cloned from {} ({}) on {target}",
                template.name, template.vmid
            ),
        })
    }

    /// The online node with the fewest VMs (ties by name) that can hold the clone:
    /// it must see the storage; a node other than the template's needs the template's
    /// disks and the target storage to be shared.
    fn place(
        &self,
        cluster: &Cluster,
        template: &Guest,
        tconf: &Conf,
        storage: Option<&str>,
        what: &str,
    ) -> Result<Placement<'_>, ProviderError> {
        let template_shared = template_disks_shared(cluster, tconf);
        if let Some(sid) = storage
            && !cluster.storages.is_empty()
            && !cluster.storages.iter().any(|s| s.storage == sid)
        {
            return Err(ProviderError::Refused(format!(
                "{what}: storage {sid} does not exist in the cluster"
            )));
        }
        let target_shared = storage
            .map(|sid| shared_storage(cluster, sid))
            .unwrap_or(template_shared);
        let reaches = |node: &str| {
            storage.is_none_or(|sid| {
                cluster.storages.is_empty()
                    || cluster
                        .storages
                        .iter()
                        .any(|s| s.storage == sid && s.node == node && s.available)
            })
        };
        let mut placing = self.placing.lock();
        let best = cluster
            .nodes
            .iter()
            .filter(|(n, online)| *online && reaches(n))
            .filter(|(n, _)| *n == template.node || (template_shared && target_shared))
            .map(|(n, _)| {
                let vms = cluster
                    .guests
                    .iter()
                    .filter(|g| g.node == *n && g.is_vm())
                    .count();
                (vms + placing.get(n).copied().unwrap_or(0), n.clone())
            })
            .min()
            .map(|(_, n)| n)
            .ok_or_else(|| {
                ProviderError::Api(format!(
                    "{what}: no online node can hold a clone of {} on {}",
                    template.name,
                    storage.unwrap_or("the template's storage")
                ))
            })?;
        *placing.entry(best.clone()).or_insert(0) += 1;
        Ok(Placement {
            provider: self,
            node: best,
        })
    }

    /// A vmid nobody uses, reserved in this process: the cluster's next free id, or
    /// (after a collision) one a random distance above it. Above the next free id,
    /// while parallel creates of this process step over each other's reservations,
    /// an id the cluster listing `listed` (read at the start of the create) does not
    /// hold is taken without asking the cluster again; after a collision with
    /// another creator (`spread` > 0) every id above it is checked with
    /// `/cluster/nextid?vmid=`. Either way a clone onto an id someone else took
    /// meanwhile fails and is retried (see [`Self::clone_template`]).
    async fn reserve_vmid(
        &self,
        skip: &HashSet<u32>,
        spread: u32,
        listed: &HashSet<u32>,
    ) -> Result<Reservation<'_>, ProviderError> {
        let next = self.api.get("/cluster/nextid", &[]).await?;
        let next = as_u64(&next)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ProviderError::Api(format!("/cluster/nextid answered {next}")))?;
        let mut cand = next
            + if spread > 0 {
                rand::rng().random_range(0..spread)
            } else {
                0
            };
        for _ in 0..1000 {
            let free_here = {
                let mut r = self.reserved.lock();
                !skip.contains(&cand) && (cand == next || !listed.contains(&cand)) && r.insert(cand)
            };
            if !free_here {
                cand += 1;
                continue;
            }
            let res = Reservation {
                provider: self,
                vmid: cand,
            };
            if cand == next || spread == 0 {
                return Ok(res);
            }
            // Above `next`, ask whether the id is free (400 "VM n already exists").
            match self
                .api
                .get("/cluster/nextid", &[("vmid", cand.to_string())])
                .await
            {
                Ok(_) => return Ok(res),
                Err(e) if failure(&e) == Failure::Refused => {
                    drop(res);
                    cand += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ProviderError::Api(format!(
            "no free vmid found above {next}"
        )))
    }

    /// Clone `template` to a new VM on `target`; the new vmid once the clone is done.
    async fn clone_template(
        &self,
        ctx: &ActContext<'_>,
        want: &Desired,
        template: &Guest,
        target: &str,
        listed: &HashSet<u32>,
    ) -> Result<u32, ProviderError> {
        let path = format!(
            "/nodes/{}/qemu/{}/clone",
            segment(&template.node),
            template.vmid
        );
        let mut skip: HashSet<u32> = HashSet::new();
        let mut tokens: Vec<String> = Vec::new();
        let mut spread = 0u32;
        let mut again: Option<(Reservation<'_>, String)> = None;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let (res, token) = match again.take() {
                Some(x) => x,
                None => {
                    let res = self.reserve_vmid(&skip, spread, listed).await?;
                    let token = uuid::Uuid::new_v4().simple().to_string();
                    tokens.push(token.clone());
                    (res, token)
                }
            };
            let vmid = res.vmid;
            ctx.intents
                .record(
                    ctx.key,
                    &json!({"vmid": vmid, "name": want.name, "node": target,
                            "template": template.vmid, "token": token}),
                )
                .await;
            let mut form = vec![
                ("newid", vmid.to_string()),
                ("name", want.name.clone()),
                ("full", "1".to_string()),
                ("description", description(ctx.owner_tag, &token)),
            ];
            if target != template.node {
                form.push(("target", target.to_string()));
            }
            if let Some(s) = &want.storage {
                form.push(("storage", s.clone()));
            }
            let what = format!("clone of {} to VM {vmid}", template.name);
            let (msg, ambiguous) = match self.api.post(&path, &form).await {
                Ok(data) => {
                    let upid = data.as_str().unwrap_or_default().to_string();
                    match self.api.wait_task(&upid, &what).await? {
                        TaskEnd::Ok => return Ok(vmid),
                        TaskEnd::Failed(m) => (m, false),
                    }
                }
                Err(e) => match failure(&e) {
                    Failure::Refused => return Err(e),
                    Failure::Failed => (message(&e), false),
                    Failure::Ambiguous => (message(&e), true),
                },
            };
            tracing::debug!("{what} (attempt {attempt}): {msg}");
            last = msg.clone();
            let settle = if ambiguous { 8 } else { 1 };
            match self.probe(vmid, &want.name, &tokens, settle).await? {
                Probe::Ours(node) => {
                    self.wait_unlocked_id(vmid, &node).await?;
                    return Ok(vmid);
                }
                Probe::Foreign(why) => {
                    tracing::debug!("vmid {vmid} was taken ({why}); trying another");
                    skip.insert(vmid);
                    spread = (spread * 2).clamp(4, 64);
                }
                Probe::Absent if ambiguous => again = Some((res, token)),
                Probe::Absent
                    if msg.contains("already exists")
                        || msg.contains("can't lock")
                        || msg.contains("locked") =>
                {
                    skip.insert(vmid);
                    spread = (spread * 2).clamp(4, 64);
                }
                Probe::Absent => {
                    return Err(ProviderError::Api(format!("{what} failed: {msg}")));
                }
            }
        }
        Err(ProviderError::Api(format!(
            "clone of {} for {} failed {ATTEMPTS} times; last: {last}",
            template.name, want.name
        )))
    }

    /// What is at `vmid`: nothing, a VM named `name` whose description carries one of
    /// our tokens, or someone else's. `settle` looks: an ambiguous clone may appear a
    /// moment later.
    async fn probe(
        &self,
        vmid: u32,
        name: &str,
        tokens: &[String],
        settle: u32,
    ) -> Result<Probe, ProviderError> {
        for i in 0..settle.max(1) {
            let guests = self.guests().await?;
            let Some(g) = guests.into_iter().find(|g| g.vmid == vmid) else {
                if i + 1 < settle {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                continue;
            };
            if g.name != name {
                return Ok(Probe::Foreign(format!("VM {vmid} is {}", g.name)));
            }
            match self.config(&g.node, vmid).await {
                Ok(conf) => {
                    let desc = conf.get("description").map(text).unwrap_or_default();
                    return Ok(if tokens.iter().any(|t| desc.contains(t.as_str())) {
                        Probe::Ours(g.node)
                    } else {
                        Probe::Foreign(format!("VM {vmid} is another {name}"))
                    });
                }
                Err(e) if is_missing(&e) => tokio::time::sleep(POLL).await,
                Err(e) => return Err(e),
            }
        }
        Ok(Probe::Absent)
    }

    /// Wait until a guest has no lock (a clone still running leaves `lock: clone`); its
    /// node then (a clone moves to its target node at the end).
    async fn wait_unlocked(&self, g: &Guest) -> Result<String, ProviderError> {
        if g.lock.is_none() {
            return Ok(g.node.clone());
        }
        self.wait_unlocked_id(g.vmid, &g.node).await
    }

    async fn wait_unlocked_id(&self, vmid: u32, node: &str) -> Result<String, ProviderError> {
        let deadline = Instant::now() + TASK_TIMEOUT;
        let mut node = node.to_string();
        loop {
            let (lock, at) = match self.config(&node, vmid).await {
                Ok(c) => (
                    c.get("lock").map(text).filter(|l| !l.is_empty()),
                    node.clone(),
                ),
                Err(e) if is_missing(&e) => {
                    let guests = self.guests().await?;
                    let g = guests.into_iter().find(|g| g.vmid == vmid).ok_or_else(|| {
                        ProviderError::Api(format!(
                            "VM {vmid} disappeared while strata waited for it"
                        ))
                    })?;
                    (g.lock.clone(), g.node.clone())
                }
                Err(e) => return Err(e),
            };
            node = at;
            match lock {
                None => return Ok(node),
                Some(l) if Instant::now() >= deadline => {
                    return Err(ProviderError::Timeout(format!(
                        "VM {vmid} is still locked ({l}) after {}s",
                        TASK_TIMEOUT.as_secs()
                    )));
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_parse() {
        let v = json!({"vmid": 105, "name": "a", "node": "pve1", "token": "t"});
        assert_eq!(
            Intent::parse(&v),
            Some(Intent {
                vmid: 105,
                name: "a".into()
            })
        );
        assert_eq!(Intent::parse(&json!({"vmid": "x"})), None);
        assert!(description("strata-x", "abc").contains("abc"));
    }
}

/// A VM the desired state has in this cluster, as `expect` saw it: what its create
/// would clone and where.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlannedVm {
    pub name: String,
    pub template: Option<String>,
    pub storage: Option<String>,
}

/// Whether a configuration has a cloud-init drive (`STORAGE:vm-N-cloudinit`).
fn has_cloudinit_drive(conf: &Conf) -> bool {
    conf.iter()
        .filter(|(k, _)| is_disk_key(k))
        .any(|(_, v)| text(v).contains("cloudinit"))
}

impl ProxmoxProvider {
    /// Plan-time preconditions of the creates the desired state implies (VMs desired
    /// but not among the owned ones): the template exists, has a cloud-init drive, and
    /// the VM's storage exists and is enabled on an online node that can hold the
    /// clone (the template's node, unless the template's disks and the storage are
    /// shared). Checked in observe, so a plan that cannot be applied fails before any
    /// step runs, with what to fix. Costs one configuration read per template, and
    /// nothing when no VM is to be created.
    pub(super) async fn check_create_preconditions(
        &self,
        cluster: &Cluster,
        owned: &HashSet<String>,
    ) -> Result<(), ProviderError> {
        let planned = self.planned.lock().clone();
        let mut by_template: std::collections::BTreeMap<&str, Vec<&PlannedVm>> =
            std::collections::BTreeMap::new();
        for v in planned.iter().filter(|v| !owned.contains(&v.name)) {
            if let Some(t) = v.template.as_deref() {
                by_template.entry(t).or_default().push(v);
            }
        }
        let dc = &self.dc;
        let online: Vec<&str> = cluster
            .nodes
            .iter()
            .filter(|(_, up)| *up)
            .map(|(n, _)| n.as_str())
            .collect();
        for (tname, vms) in by_template {
            let names: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
            let Some(template) = cluster
                .guests
                .iter()
                .filter(|g| g.kind == "qemu" && g.template && g.name == tname)
                .min_by_key(|g| g.vmid)
            else {
                return Err(ProviderError::Refused(format!(
                    "{dc}: cannot create {}: template `{tname}` does not exist in the Proxmox cluster (or the API token may not see it: it needs VM.Audit on /vms); make one (a VM with a cloud-init drive, then `qm template <vmid>`) or fix `template` in the spec",
                    names.join(", ")
                )));
            };
            let tconf = self.config(&template.node, template.vmid).await?;
            if !has_cloudinit_drive(&tconf) {
                return Err(ProviderError::Refused(format!(
                    "{dc}: cannot create {}: template `{tname}` (VM {} on node {}) has no cloud-init drive, so its clones would boot without their addresses and keys; add one with `qm set {} --ide2 <storage>:cloudinit`",
                    names.join(", "),
                    template.vmid,
                    template.node,
                    template.vmid
                )));
            }
            let template_shared = template_disks_shared(cluster, &tconf);
            let mut storages: Vec<&str> = vms.iter().filter_map(|v| v.storage.as_deref()).collect();
            storages.sort();
            storages.dedup();
            for sid in storages {
                let these: Vec<&str> = vms
                    .iter()
                    .filter(|v| v.storage.as_deref() == Some(sid))
                    .map(|v| v.name.as_str())
                    .collect();
                let on: Vec<&str> = cluster
                    .storages
                    .iter()
                    .filter(|s| s.storage == sid && s.available)
                    .map(|s| s.node.as_str())
                    .collect();
                if on.is_empty() {
                    return Err(ProviderError::Refused(format!(
                        "{dc}: cannot create {}: storage `{sid}` is not enabled on any node of the Proxmox cluster (or the API token lacks Datastore.Audit/Datastore.AllocateSpace on /storage/{sid}); add it (`pvesm add`), enable it for the nodes (`pvesm set {sid} --nodes <nodes> --disable 0`), or fix `storage` in the spec",
                        these.join(", ")
                    )));
                }
                let candidates: Vec<&str> = online
                    .iter()
                    .copied()
                    .filter(|n| on.contains(n))
                    .filter(|n| {
                        *n == template.node || (template_shared && shared_storage(cluster, sid))
                    })
                    .collect();
                if candidates.is_empty() {
                    let why = if template_shared && shared_storage(cluster, sid) {
                        format!(
                            "it is enabled only on {} and none of them is online",
                            on.join(", ")
                        )
                    } else {
                        format!(
                            "template `{tname}` has disks only node {} reaches (or `{sid}` is local), so clones must be made on {}, where `{sid}` is not enabled (it is on: {})",
                            template.node,
                            template.node,
                            on.join(", ")
                        )
                    };
                    return Err(ProviderError::Refused(format!(
                        "{dc}: cannot create {}: no online node can hold a clone of `{tname}` on storage `{sid}`: {why}; enable `{sid}` on node {} (`pvesm set {sid} --nodes ...`) or move the template to shared storage",
                        these.join(", "),
                        template.node
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Every disk of the template (CD-ROMs aside) is on storage all nodes share, so a
/// clone can be made from any node.
fn template_disks_shared(cluster: &Cluster, tconf: &Conf) -> bool {
    tconf
        .iter()
        .filter(|(k, _)| is_disk_key(k))
        .filter_map(|(_, v)| Drive::parse(&text(v)))
        .filter(|d| !d.is_cdrom())
        .all(|d| d.storage().is_some_and(|sid| shared_storage(cluster, sid)))
}

/// The storage is shared by the cluster's nodes.
fn shared_storage(cluster: &Cluster, sid: &str) -> bool {
    cluster
        .storages
        .iter()
        .any(|s| s.storage == sid && s.shared)
}
