//! Changing existing VMs: configuration (with digests), disk growth, power, and the
//! update and delete steps.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value};
use strata_plan::{Step, VmSpec};
use tokio::time::Instant;

use super::client::{Failure, POLL, TASK_TIMEOUT, TaskEnd, failure, is_missing, message};
use super::conf::{
    GIB, as_u64, boot_disk, foreign_owner, net_matches, net_value, split_tags, text,
};
use super::{Desired, FIELDS, ProxmoxProvider};
use crate::{ActContext, Outcome, ProviderError};

pub(crate) type Conf = Map<String, Value>;

/// Which configuration fields a write manages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scope<'a> {
    /// Everything the desired state says (create, adopt).
    All,
    /// Only these fields (an update's changes).
    Only(&'a BTreeSet<String>),
}

impl Scope<'_> {
    fn has(&self, field: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(set) => set.contains(field),
        }
    }
}

fn qemu(node: &str, vmid: u32) -> String {
    format!("/nodes/{}/qemu/{vmid}", super::conf::segment(node))
}

/// `memory` of a configuration in MiB (`4096` or, in PVE 9, `current=4096,...`).
fn conf_memory(conf: &Conf) -> Option<u64> {
    let m = conf.get("memory").map(text)?;
    let first = m.split(',').next()?.trim();
    first.strip_prefix("current=").unwrap_or(first).parse().ok()
}

/// Configuration changes: fields to set, guest network settings to set (NICs `netN`,
/// cloud-init `ipconfigN`, `nameserver`, `searchdomain`), keys to delete.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Changes {
    pub form: Vec<(&'static str, String)>,
    pub nets: Vec<(String, String)>,
    pub delete: Vec<String>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.form.is_empty() && self.nets.is_empty() && self.delete.is_empty()
    }
}

/// The configuration changes that bring `conf` to `want`, within `scope`.
pub(crate) fn config_changes(
    conf: &Conf,
    want: &Desired,
    owner: &str,
    scope: Scope<'_>,
) -> Changes {
    let mut form: Vec<(&'static str, String)> = Vec::new();
    if scope.has("cores")
        && let Some(c) = want.cores
        && conf.get("cores").and_then(as_u64).unwrap_or(1) != c
    {
        form.push(("cores", c.to_string()));
    }
    if scope.has("memory")
        && let Some(m) = want.memory
        && conf_memory(conf) != Some(m)
    {
        form.push(("memory", m.to_string()));
    }
    if scope.has("tags") {
        // The ownership tag is always kept: it is what makes the VM strata's.
        let have = split_tags(&conf.get("tags").map(text).unwrap_or_default());
        let mut tags = want.tags.clone().unwrap_or_else(|| have.clone());
        tags.push(owner.to_string());
        tags.sort();
        tags.dedup();
        if tags != have {
            form.push(("tags", tags.join(";")));
        }
    }
    // NICs are keyed `netN`; the names are not 'static, so they travel separately.
    let mut nets = Vec::new();
    let mut delete = Vec::new();
    if scope.has("nets")
        && let Some(want_nets) = &want.nets
    {
        for (i, n) in want_nets.iter().enumerate() {
            let key = format!("net{i}");
            let have = conf.get(&key).map(text);
            if !net_matches(have.as_deref(), n) {
                nets.push((key, net_value(have.as_deref(), n)));
            }
        }
        for k in conf.keys() {
            if let Some(i) = k.strip_prefix("net").and_then(|n| n.parse::<usize>().ok())
                && i >= want_nets.len()
            {
                delete.push(k.clone());
            }
        }
    }
    // Cloud-init network settings go with the NICs, and on their own when only they
    // changed.
    if (scope.has("nets") || scope.has("ipconfig"))
        && let Some(want_ip) = &want.ipconfig
    {
        for (i, ip) in want_ip.iter().enumerate() {
            let key = format!("ipconfig{i}");
            if conf.get(&key).map(text).as_deref() != Some(ip.as_str()) {
                nets.push((key, ip.clone()));
            }
        }
        for k in conf.keys() {
            if let Some(i) = k
                .strip_prefix("ipconfig")
                .and_then(|n| n.parse::<usize>().ok())
                && i >= want_ip.len()
            {
                delete.push(k.clone());
            }
        }
    }
    for (key, value) in [
        ("nameserver", &want.nameserver),
        ("searchdomain", &want.searchdomain),
    ] {
        if (scope.has("nets") || scope.has(key))
            && let Some(v) = value
            && conf.get(key).map(text).as_deref() != Some(v.as_str())
        {
            nets.push((key.to_string(), v.clone()));
        }
    }
    Changes { form, nets, delete }
}

/// `conf` after a successful write of `changes`, without its (now stale) `digest`.
fn applied(mut conf: Conf, changes: &Changes) -> Conf {
    conf.remove("digest");
    for (k, v) in &changes.form {
        conf.insert((*k).to_string(), Value::from(v.clone()));
    }
    for (k, v) in &changes.nets {
        conf.insert(k.clone(), Value::from(v.clone()));
    }
    for k in &changes.delete {
        conf.remove(k);
    }
    conf
}

/// A guest's configuration from `GET .../pending` (entries `{key, value, pending,
/// delete}`): as it is now (`value`), and with its pending changes applied (what the
/// guest runs with after its next boot, and what `GET .../config` shows).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PendingConf {
    pub current: Conf,
    pub effective: Conf,
}

pub(crate) fn parse_pending(data: &Value) -> PendingConf {
    let mut out = PendingConf::default();
    for e in data.as_array().into_iter().flatten() {
        let Some(key) = e.get("key").and_then(Value::as_str) else {
            continue;
        };
        if let Some(v) = e.get("value") {
            out.current.insert(key.to_string(), v.clone());
        }
        let deleting = e.get("delete").and_then(as_u64).unwrap_or(0) > 0;
        match e.get("pending") {
            _ if deleting => {}
            Some(p) => {
                out.effective.insert(key.to_string(), p.clone());
            }
            None => {
                if let Some(v) = e.get("value") {
                    out.effective.insert(key.to_string(), v.clone());
                }
            }
        }
    }
    out
}

/// The vCPUs a configuration gives (`vcpus`, else `sockets` × `cores`, each 1 when
/// unset).
pub(crate) fn conf_cpus(conf: &Conf) -> u64 {
    if let Some(v) = conf.get("vcpus").and_then(as_u64) {
        return v;
    }
    let n = |k: &str| conf.get(k).and_then(as_u64).unwrap_or(1);
    n("sockets") * n("cores")
}

/// `memory` of a configuration in MiB (PVE's default 512 when unset).
pub(crate) fn conf_memory_mib(conf: &Conf) -> u64 {
    conf_memory(conf).unwrap_or(512)
}

impl ProxmoxProvider {
    /// A guest's configuration now and after its next boot (one call; see
    /// [`parse_pending`]). Retried like [`Self::config`].
    pub(super) async fn pending_config(
        &self,
        node: &str,
        vmid: u32,
    ) -> Result<PendingConf, ProviderError> {
        let path = format!("{}/pending", qemu(node, vmid));
        match self.guest_read(&path).await? {
            v @ Value::Array(_) => Ok(parse_pending(&v)),
            other => Err(ProviderError::Api(format!(
                "GET {path}: unexpected answer {other}"
            ))),
        }
    }

    /// GET a guest's configuration path. Not retried by the endpoint on 500, because
    /// PVE answers a missing guest with a 500; transient failures are retried here a
    /// few times instead (a missing guest or a refusal at once).
    async fn guest_read(&self, path: &str) -> Result<Value, ProviderError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self
                .api
                .call(Method::GET, path, &[], &[], Some(false))
                .await
            {
                Ok(v) => return Ok(v),
                Err(e) if is_missing(&e) || failure(&e) == Failure::Refused || tries >= 4 => {
                    return Err(e);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200 * tries)).await,
            }
        }
    }

    /// Reboot a running VM (`POST .../status/reboot`: a shutdown and a start, which
    /// applies the pending changes) and wait for its task.
    pub(super) async fn reboot(&self, node: &str, vmid: u32) -> Result<(), ProviderError> {
        let path = format!("{}/status/reboot", qemu(node, vmid));
        let what = format!("reboot of VM {vmid}");
        let data = self
            .api
            .call(Method::POST, &path, &[], &[], Some(false))
            .await?;
        self.api.finish(&data, &what).await
    }

    /// After configuration writes to a VM: the fields among `fields` (`cores`,
    /// `memory`) whose change still waits for the next boot.
    async fn still_pending(
        &self,
        node: &str,
        vmid: u32,
        fields: &BTreeSet<String>,
    ) -> Result<Vec<String>, ProviderError> {
        let c = self.pending_config(node, vmid).await?;
        let mut out = Vec::new();
        if fields.contains("cores") && conf_cpus(&c.current) != conf_cpus(&c.effective) {
            out.push("cores".to_string());
        }
        if fields.contains("memory") && conf_memory_mib(&c.current) != conf_memory_mib(&c.effective)
        {
            out.push("memory".to_string());
        }
        Ok(out)
    }

    /// A guest's configuration (with its `digest`), retried as [`Self::guest_read`] says.
    pub(super) async fn config(&self, node: &str, vmid: u32) -> Result<Conf, ProviderError> {
        let path = format!("{}/config", qemu(node, vmid));
        match self.guest_read(&path).await? {
            Value::Object(m) => Ok(m),
            other => Err(ProviderError::Api(format!(
                "GET {path}: unexpected answer {other}"
            ))),
        }
    }

    /// Find a guest's node and configuration: first on `hint`, then wherever the
    /// cluster says it is. `None` when it does not exist.
    pub(super) async fn locate(
        &self,
        vmid: u32,
        hint: Option<&str>,
    ) -> Result<Option<(String, Conf)>, ProviderError> {
        if let Some(node) = hint {
            match self.config(node, vmid).await {
                Ok(c) => return Ok(Some((node.to_string(), c))),
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(e),
            }
        }
        for _ in 0..3 {
            let guests = self.guests().await?;
            let Some(g) = guests.into_iter().find(|g| g.vmid == vmid) else {
                return Ok(None);
            };
            match self.config(&g.node, vmid).await {
                Ok(c) => return Ok(Some((g.node, c))),
                // Moved between the two calls (migration, end of a clone): look again.
                Err(e) if is_missing(&e) => tokio::time::sleep(POLL).await,
                Err(e) => return Err(e),
            }
        }
        Err(ProviderError::Api(format!(
            "VM {vmid} keeps moving between nodes; try again"
        )))
    }

    /// Write the configuration changes `want` implies, with the digest of `conf`. On a
    /// failure the configuration is read again: done if the values are there, else
    /// another try with the new digest (once after a digest conflict, i.e. someone
    /// else wrote meanwhile; a few times after ambiguous answers). Returns the
    /// configuration as written (not read back; without a digest).
    pub(super) async fn write_config(
        &self,
        node: &str,
        vmid: u32,
        mut conf: Conf,
        want: &Desired,
        owner: &str,
        scope: Scope<'_>,
    ) -> Result<Conf, ProviderError> {
        let path = format!("{}/config", qemu(node, vmid));
        let mut conflicts = 0;
        for attempt in 1..=4 {
            let changes = config_changes(&conf, want, owner, scope);
            if changes.is_empty() {
                return Ok(conf);
            }
            let mut form: Vec<(&str, String)> = changes.form.clone();
            form.extend(changes.nets.iter().map(|(k, v)| (k.as_str(), v.clone())));
            if !changes.delete.is_empty() {
                form.push(("delete", changes.delete.join(",")));
            }
            if let Some(d) = conf.get("digest").map(text) {
                form.push(("digest", d));
            }
            match self
                .api
                .call(Method::PUT, &path, &[], &form, Some(false))
                .await
            {
                // The written values, without reading them back: the caller needs the
                // disks (unchanged by this write) and no digest (now stale).
                Ok(_) => return Ok(applied(conf, &changes)),
                Err(e) => {
                    let kind = failure(&e);
                    if kind == Failure::Failed {
                        conflicts += 1;
                    }
                    if let ProviderError::Refused(why) = &e {
                        // A permission refusal keeps its kind (and its advice).
                        return Err(ProviderError::Refused(format!(
                            "VM {vmid}: configuration update failed: {why}"
                        )));
                    }
                    if kind == Failure::Refused || conflicts > 1 || attempt == 4 {
                        return Err(ProviderError::Api(format!(
                            "VM {vmid}: configuration update failed: {}",
                            message(&e)
                        )));
                    }
                    tracing::debug!(
                        "VM {vmid}: config write failed ({}); re-reading",
                        message(&e)
                    );
                    conf = self.config(node, vmid).await?;
                    check_owner(&conf, vmid, owner, OwnerCheck::NoForeign)?;
                }
            }
        }
        Ok(conf)
    }

    /// Grow the boot disk to `gb` GiB (never shrink: refused).
    pub(super) async fn grow_disk(
        &self,
        node: &str,
        vmid: u32,
        conf: &Conf,
        gb: u64,
    ) -> Result<(), ProviderError> {
        let (key, drive) = boot_disk(conf)
            .ok_or_else(|| ProviderError::Api(format!("VM {vmid} has no disk to size")))?;
        let have = drive.size_bytes();
        let want = gb * GIB;
        if want == have {
            return Ok(());
        }
        if want < have {
            return Err(ProviderError::Refused(format!(
                "VM {vmid}: disk {key} is {:.1} GiB; it cannot shrink to {gb} GiB",
                have as f64 / GIB as f64
            )));
        }
        let path = format!("{}/resize", qemu(node, vmid));
        let form = [("disk", key.clone()), ("size", format!("{gb}G"))];
        let what = format!("resize of VM {vmid} {key} to {gb}G");
        let result = match self
            .api
            .call(Method::PUT, &path, &[], &form, Some(false))
            .await
        {
            Ok(data) => self.api.finish(&data, &what).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // It may have happened (an ambiguous answer, or a retry after it did).
            let now = self.config(node, vmid).await?;
            let grown = boot_disk(&now).is_some_and(|(_, d)| d.size_bytes() >= want);
            if !grown {
                return Err(ProviderError::Api(format!(
                    "{what} failed: {}",
                    message(&e)
                )));
            }
        }
        Ok(())
    }

    async fn current_status(&self, node: &str, vmid: u32) -> Result<String, ProviderError> {
        let s = self
            .api
            .get(&format!("{}/status/current", qemu(node, vmid)), &[])
            .await?;
        Ok(s.get("status").map(text).unwrap_or_default())
    }

    /// Bring the VM to `running` or `stopped`, and wait until it is (an HA-managed VM
    /// is started by the HA manager a moment after the request). `fresh`: a clone
    /// strata just made, outside HA, so stopped: no status read before the request,
    /// and a task that ended OK is trusted without reading the status again (without
    /// HA, the start task ends once the VM runs).
    pub(super) async fn set_power(
        &self,
        node: &str,
        vmid: u32,
        want: &str,
        fresh: bool,
    ) -> Result<(), ProviderError> {
        let verb = match want {
            "running" => "start",
            "stopped" => "stop",
            other => {
                return Err(ProviderError::Refused(format!(
                    "VM {vmid}: status `{other}` cannot be set (use running or stopped)"
                )));
            }
        };
        if fresh && want == "stopped" {
            return Ok(());
        }
        if !fresh && self.current_status(node, vmid).await? == want {
            return Ok(());
        }
        let path = format!("{}/status/{verb}", qemu(node, vmid));
        let what = format!("{verb} of VM {vmid}");
        // Starting or stopping twice is harmless: the endpoint may retry it.
        let outcome = match self
            .api
            .call(Method::POST, &path, &[], &[], Some(true))
            .await
        {
            Ok(data) => match data.as_str() {
                Some(upid) => self.api.wait_task(upid, &what).await?,
                None => TaskEnd::Ok,
            },
            Err(e) => TaskEnd::Failed(message(&e)),
        };
        if fresh && outcome == TaskEnd::Ok {
            return Ok(());
        }
        let deadline = Instant::now() + TASK_TIMEOUT;
        loop {
            let now = self.current_status(node, vmid).await?;
            if now == want {
                return Ok(());
            }
            if let TaskEnd::Failed(e) = &outcome {
                return Err(ProviderError::Api(format!("{what} failed: {e}")));
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::Timeout(format!(
                    "{what}: still {now} after {}s",
                    TASK_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Bring an existing (owned or being-created) VM to the desired state: configuration
    /// first (the ownership tag), then disk and HA side by side, then power.
    pub(super) async fn converge(
        &self,
        node: &str,
        vmid: u32,
        want: &Desired,
        owner: &str,
        fresh: bool,
    ) -> Result<(), ProviderError> {
        let conf = self.config(node, vmid).await?;
        check_owner(&conf, vmid, owner, OwnerCheck::NoForeign)?;
        let conf = self
            .write_config(node, vmid, conf, want, owner, Scope::All)
            .await?;
        let disk = async {
            match want.disk_gb {
                Some(gb) => self.grow_disk(node, vmid, &conf, gb).await,
                None => Ok(()),
            }
        };
        let ha = async {
            match want.ha {
                Some(false) if fresh => Ok(()),
                Some(ha) => self.converge_ha(vmid, ha, want.wants_running()).await,
                None => Ok(()),
            }
        };
        let (disk, ha) = tokio::join!(disk, ha);
        disk?;
        ha?;
        if let Some(s) = &want.status {
            // A fresh clone that stays outside HA is stopped, and no HA manager starts it.
            let unmanaged = want.ha != Some(true);
            self.set_power(node, vmid, s, fresh && unmanaged).await?;
        }
        // A VM found running (an earlier attempt started it) keeps CPU and memory
        // changes pending: it is the VM being created, so it is rebooted at once.
        if !fresh && want.wants_running() {
            let config_fields: BTreeSet<String> =
                ["cores", "memory"].iter().map(|s| s.to_string()).collect();
            if !self
                .still_pending(node, vmid, &config_fields)
                .await?
                .is_empty()
            {
                self.reboot(node, vmid).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn update(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (vmid, hint) = target_of(step)?;
        let desired = step.desired.as_ref().ok_or_else(|| {
            ProviderError::Refused(format!("{}: an update needs the desired state", step.id))
        })?;
        let want = Desired::from_resource(desired)?;
        let changed: BTreeSet<String> = step.changes.iter().map(|c| c.field.clone()).collect();
        if let Some(f) = changed.iter().find(|f| !FIELDS.contains(&f.as_str())) {
            return Err(ProviderError::Refused(format!(
                "{}: field `{f}` cannot be changed by the Proxmox provider",
                step.id
            )));
        }
        let (node, conf) = self.locate(vmid, hint.as_deref()).await?.ok_or_else(|| {
            ProviderError::Api(format!(
                "{}: VM {vmid} no longer exists; plan again",
                step.id
            ))
        })?;
        check_owner(&conf, vmid, ctx.owner_tag, OwnerCheck::Owned)?;
        check_name(&conf, vmid, &step.id.name)?;
        // Refuse before writing anything.
        if changed.contains("disk_gb")
            && let (Some(gb), Some((key, d))) = (want.disk_gb, boot_disk(&conf))
            && gb * GIB < d.size_bytes()
        {
            return Err(ProviderError::Refused(format!(
                "{}: disk {key} of VM {vmid} is {} GiB; disks never shrink (desired {gb} GiB)",
                step.id,
                d.size_bytes() / GIB
            )));
        }
        if changed.contains("status")
            && let Some(s) = &want.status
            && s != "running"
            && s != "stopped"
        {
            return Err(ProviderError::Refused(format!(
                "{}: status `{s}` cannot be set",
                step.id
            )));
        }
        let conf = self
            .write_config(
                &node,
                vmid,
                conf,
                &want,
                ctx.owner_tag,
                Scope::Only(&changed),
            )
            .await?;
        if changed.contains("disk_gb")
            && let Some(gb) = want.disk_gb
        {
            self.grow_disk(&node, vmid, &conf, gb).await?;
        }
        if changed.contains("ha")
            && let Some(ha) = want.ha
        {
            self.converge_ha(vmid, ha, want.wants_running()).await?;
        }
        if changed.contains("status")
            && let Some(s) = &want.status
        {
            self.set_power(&node, vmid, s, false).await?;
        }
        // Without CPU/memory hotplug Proxmox keeps such changes to a running VM
        // pending until it boots again: reboot it when the plan allows, else say so.
        let config_fields: BTreeSet<String> = changed
            .iter()
            .chain(step.reboot.iter().flat_map(|r| r.fields.iter()))
            .filter(|f| matches!(f.as_str(), "cores" | "memory"))
            .cloned()
            .collect();
        let mut pending = if config_fields.is_empty() {
            Vec::new()
        } else {
            self.still_pending(&node, vmid, &config_fields).await?
        };
        let mut rebooted = false;
        if !pending.is_empty() && step.reboot.as_ref().is_some_and(|r| r.allowed) {
            self.reboot(&node, vmid).await?;
            pending = self.still_pending(&node, vmid, &config_fields).await?;
            if !pending.is_empty() {
                return Err(ProviderError::Api(format!(
                    "{}: VM {vmid} was rebooted but {} is still pending",
                    step.id,
                    pending.join(", ")
                )));
            }
            rebooted = true;
        }
        let applied: Vec<String> = changed
            .iter()
            .filter(|f| !pending.contains(f))
            .cloned()
            .collect();
        let mut note = String::new();
        if !applied.is_empty() {
            note = format!("updated {}", applied.join(", "));
            if rebooted {
                note.push_str(" (rebooted to apply them)");
            }
        } else if rebooted {
            note = format!(
                "rebooted to apply {}, pending since an earlier apply",
                config_fields.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if !pending.is_empty() {
            if !note.is_empty() {
                note.push_str("; ");
            }
            let why = if step.reboot.is_some() {
                "the blast-radius policy deferred the reboot"
            } else {
                "the plan did not expect a reboot; plan again"
            };
            note.push_str(&format!(
                "{} written but pending until VM {vmid} boots again ({why})",
                pending.join(", ")
            ));
        }
        Ok(Outcome {
            external_id: Some(vmid.to_string()),
            note,
        })
    }

    pub(super) async fn delete(
        &self,
        step: &Step,
        ctx: &ActContext<'_>,
    ) -> Result<Outcome, ProviderError> {
        let (vmid, hint) = target_of(step)?;
        let Some((node, conf)) = self.locate(vmid, hint.as_deref()).await? else {
            return Ok(Outcome {
                external_id: Some(vmid.to_string()),
                note: "already gone".into(),
            });
        };
        check_owner(&conf, vmid, ctx.owner_tag, OwnerCheck::Owned)?;
        check_name(&conf, vmid, &step.id.name)?;
        if conf.get("template").and_then(as_u64) == Some(1) {
            return Err(ProviderError::Refused(format!(
                "{}: VM {vmid} is a template; strata never deletes templates",
                step.id
            )));
        }
        // Leave HA first, so the stop below is a plain stop the HA manager does not undo.
        let sid = format!("vm:{vmid}");
        if self.ha_resources().await?.iter().any(|r| r.sid == sid) {
            self.converge_ha(vmid, false, false).await?;
        }
        self.set_power(&node, vmid, "stopped", false).await?;
        let path = qemu(&node, vmid);
        let query = [
            ("purge", "1".to_string()),
            ("destroy-unreferenced-disks", "1".to_string()),
        ];
        let what = format!("destroy of VM {vmid}");
        let result = match self
            .api
            .call(Method::DELETE, &path, &query, &[], Some(false))
            .await
        {
            Ok(data) => self.api.finish(&data, &what).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // Maybe it happened anyway (an ambiguous answer): wait for it to go.
            let deadline = Instant::now() + TASK_TIMEOUT;
            loop {
                match self.locate(vmid, Some(&node)).await? {
                    None => break,
                    Some((_, c)) if c.get("lock").map(text).as_deref() == Some("destroyed") => {
                        if Instant::now() >= deadline {
                            return Err(ProviderError::Timeout(format!(
                                "{what}: still being destroyed after {}s",
                                TASK_TIMEOUT.as_secs()
                            )));
                        }
                        tokio::time::sleep(POLL).await;
                    }
                    Some(_) => {
                        return Err(ProviderError::Api(format!(
                            "{what} failed: {}",
                            message(&e)
                        )));
                    }
                }
            }
        }
        Ok(Outcome {
            external_id: Some(vmid.to_string()),
            note: format!("destroyed on {node}"),
        })
    }
}

/// The vmid and node of the observed VM a step is about.
fn target_of(step: &Step) -> Result<(u32, Option<String>), ProviderError> {
    let observed = step
        .observed
        .as_ref()
        .ok_or_else(|| ProviderError::Refused(format!("{}: no observed VM to act on", step.id)))?;
    let vmid = observed
        .external_id
        .as_deref()
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| {
            ProviderError::Refused(format!("{}: the observed VM has no vmid", step.id))
        })?;
    let node = observed.spec_as::<VmSpec>()?.node;
    Ok((vmid, node))
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum OwnerCheck {
    /// Must carry the owner tag.
    Owned,
    /// Must carry no other fleet's tag (a VM strata is creating or adopting).
    NoForeign,
}

pub(crate) fn check_owner(
    conf: &Conf,
    vmid: u32,
    owner: &str,
    check: OwnerCheck,
) -> Result<(), ProviderError> {
    let tags = split_tags(&conf.get("tags").map(text).unwrap_or_default());
    if let Some(other) = foreign_owner(&tags, owner) {
        return Err(ProviderError::Refused(format!(
            "VM {vmid} carries another fleet's ownership tag `{other}`; strata leaves it alone"
        )));
    }
    if check == OwnerCheck::Owned && !tags.iter().any(|t| t == owner) {
        return Err(ProviderError::Refused(format!(
            "VM {vmid} does not carry the ownership tag `{owner}`; strata never modifies or deletes VMs it does not own"
        )));
    }
    Ok(())
}

fn check_name(conf: &Conf, vmid: u32, name: &str) -> Result<(), ProviderError> {
    let have = conf.get("name").map(text).unwrap_or_default();
    if have != name {
        return Err(ProviderError::Refused(format!(
            "VM {vmid} is now named `{have}`, not `{name}`; plan again"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> Conf {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn config_changes_cover_only_what_differs() {
        let c = conf(json!({
            "cores": 2, "memory": "2048", "tags": "legacy",
            "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0", "net1": "virtio=BC:24:11:00:00:02,bridge=vmbr0",
        }));
        let want = Desired {
            cores: Some(4),
            memory: Some(2048),
            tags: Some(vec!["role-ci".into()]),
            nets: Some(vec!["virtio,bridge=vmbr0,tag=10".into()]),
            ..Desired::default()
        };
        let Changes { form, nets, delete } = config_changes(&c, &want, "strata-x", Scope::All);
        assert_eq!(
            form,
            vec![
                ("cores", "4".to_string()),
                ("tags", "role-ci;strata-x".to_string())
            ]
        );
        assert_eq!(delete, vec!["net1".to_string()]);
        assert_eq!(
            nets,
            vec![(
                "net0".to_string(),
                "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=10".to_string()
            )]
        );
        let only: BTreeSet<String> = ["memory".to_string()].into();
        assert!(config_changes(&c, &want, "strata-x", Scope::Only(&only)).is_empty());
        let c9 = conf(json!({"memory": "current=4096", "tags": "strata-x"}));
        assert_eq!(conf_memory(&c9), Some(4096));
        let keep = Desired::default();
        assert!(config_changes(&c9, &keep, "strata-x", Scope::All).is_empty());
    }

    #[test]
    fn guest_network_settings_replace_the_templates_dhcp() {
        // A clone of the template: DHCP on its one cloud-init interface.
        let c = conf(
            json!({"ipconfig0": "ip=dhcp", "ipconfig1": "ip=dhcp", "nameserver": "10.0.0.53"}),
        );
        let want = Desired {
            ipconfig: Some(vec!["ip=10.0.12.30/22,gw=10.0.12.1".into()]),
            nameserver: Some("10.0.12.21 10.0.12.22".into()),
            searchdomain: Some("ams1.dc.example.net".into()),
            ..Desired::default()
        };
        let Changes { form, nets, delete } = config_changes(&c, &want, "strata-x", Scope::All);
        assert!(form.iter().all(|(k, _)| *k == "tags"), "{form:?}");
        assert_eq!(
            nets,
            vec![
                (
                    "ipconfig0".to_string(),
                    "ip=10.0.12.30/22,gw=10.0.12.1".to_string()
                ),
                (
                    "nameserver".to_string(),
                    "10.0.12.21 10.0.12.22".to_string()
                ),
                (
                    "searchdomain".to_string(),
                    "ams1.dc.example.net".to_string()
                ),
            ]
        );
        assert_eq!(delete, vec!["ipconfig1".to_string()]);
        // Once written, nothing more to do; and an update of another field leaves them.
        let done = conf(json!({"ipconfig0": "ip=10.0.12.30/22,gw=10.0.12.1",
            "nameserver": "10.0.12.21 10.0.12.22", "searchdomain": "ams1.dc.example.net",
            "tags": "strata-x"}));
        assert!(config_changes(&done, &want, "strata-x", Scope::All).is_empty());
        let only: BTreeSet<String> = ["cores".to_string()].into();
        assert!(config_changes(&c, &want, "strata-x", Scope::Only(&only)).is_empty());
    }

    #[test]
    fn ownership_checks() {
        let mine = conf(json!({"tags": "strata-x;a", "name": "vm1"}));
        assert!(check_owner(&mine, 1, "strata-x", OwnerCheck::Owned).is_ok());
        let theirs = conf(json!({"tags": "legacy"}));
        assert!(check_owner(&theirs, 1, "strata-x", OwnerCheck::Owned).is_err());
        assert!(check_owner(&theirs, 1, "strata-x", OwnerCheck::NoForeign).is_ok());
        let other = conf(json!({"tags": "strata-y"}));
        assert!(check_owner(&other, 1, "strata-x", OwnerCheck::NoForeign).is_err());
        assert!(check_name(&mine, 1, "vm1").is_ok() && check_name(&mine, 1, "vm2").is_err());
    }
}
