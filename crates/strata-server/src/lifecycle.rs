//! Day-2 lifecycle workflows: the rolling upgrade of a DC's Proxmox cluster, the
//! decommission of a machine, and the `join` check of an onboarding.
//!
//! - `upgrade` (key `upgrade:{dc}:{version}:{started}`): per node, in name order,
//!   `drain:{node}` (live-migrate its guests to the other nodes), `upgrade:{node}`
//!   (the targets file's `upgrade_command`; the version it ran before is kept in the
//!   store first, so a retry after a crash still knows what to roll back to) and
//!   `gate:{node}` (the node is in the cluster, its API answers, the cluster is
//!   quorate and the node runs the target version, within the gate timeout). A node
//!   that fails its gate is rolled back to its previous version and the workflow
//!   stops there (`stopped`): the nodes after it are not touched.
//! - `decommission` (key `decommission:{dc}:{hostname}`): `drain` (Proxmox: migrate
//!   the node's guests away; OpenStack: disable the host's `nova-compute` and move
//!   every instance off), `remove` (Proxmox: shut the node down and delete it from the
//!   cluster configuration; OpenStack: delete the compute service, which removes its
//!   Placement providers), `release` (MAAS release with disk erase, until Ready) and
//!   `retire` (tag `strata-retired`, or `strata-rma` and marked broken).
//!
//! Every step re-reads the platform first and does only what is left, so a step
//! taken over after a crash repeats nothing; every side effect checks the leader
//! lease's fencing counter first.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use strata_providers::ProviderError;
use strata_providers::maas::MaasProvider;
use strata_providers::openstack::compute::ComputeHosts;
use strata_providers::proxmox::nodes::ProxmoxNodes;
use strata_providers::targets::{DcTargets, Targets};
use strata_store::{Claim, now_ms};

use crate::{LEADER_LEASE, Server};

/// Why a lifecycle request was refused (the API maps these to problem codes).
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
}

/// `POST /api/v1/dcs/{dc}/proxmox/upgrade`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    #[serde(default)]
    pub dc: String,
    /// The `pve-manager` version every node must run afterwards.
    pub version: String,
    /// How long a node may take to come back healthy after its upgrade (default 600).
    #[serde(default = "default_gate", deserialize_with = "crate::auth::whole_u64")]
    pub gate_timeout_s: u64,
}

fn default_gate() -> u64 {
    600
}

/// `POST /api/v1/machines/{dc}/{hostname}/decommission`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecommissionRequest {
    #[serde(default)]
    pub dc: String,
    #[serde(default)]
    pub hostname: String,
    /// Send the machine back to the vendor (tag `strata-rma`, marked broken) rather
    /// than retire it.
    #[serde(default)]
    pub rma: bool,
    /// Why (goes into the machine's description and the workflow's evidence).
    pub reason: String,
    /// Overwrite the disks (MAAS `secure_erase`) instead of a quick erase.
    #[serde(default)]
    pub secure_erase: bool,
}

/// A step's error: worth another attempt, with why.
pub(crate) struct Retry(pub String);

impl<E: std::fmt::Display> From<E> for Retry {
    fn from(e: E) -> Self {
        Retry(e.to_string())
    }
}

type StepResult = Result<StepOutcome, Retry>;

/// What a lifecycle step ended with.
pub(crate) enum StepOutcome {
    Done(Value),
    /// Done, and the workflow stops here (with why).
    Halt(Value, String),
}

const STEP_LEASE: Duration = Duration::from_secs(30);

fn dc_targets(s: &Server, dc: &str) -> Result<DcTargets, LifecycleError> {
    let t = Targets::load(&s.cfg.targets, s.cfg.secrets.as_ref())
        .map_err(|e| LifecycleError::Unavailable(format!("targets file: {e}")))?;
    t.dcs
        .into_iter()
        .find(|d| d.name == dc)
        .ok_or_else(|| LifecycleError::BadRequest(format!("the targets file has no DC `{dc}`")))
}

fn proxmox(t: &DcTargets) -> Result<ProxmoxNodes, ProviderError> {
    let p = t
        .proxmox
        .as_ref()
        .ok_or_else(|| ProviderError::Refused(format!("{}: no Proxmox endpoint", t.name)))?;
    ProxmoxNodes::new(&t.name, p)
}

fn compute(t: &DcTargets) -> Result<Option<ComputeHosts>, ProviderError> {
    t.openstack
        .as_ref()
        .map(|o| ComputeHosts::new(&t.name, o))
        .transpose()
}

fn maas(s: &Server, t: &DcTargets) -> Result<MaasProvider, ProviderError> {
    let m = t
        .maas
        .as_ref()
        .ok_or_else(|| ProviderError::Refused(format!("{}: no MAAS endpoint", t.name)))?;
    // Decommission never acts on ownership: the owner tag only has to be valid.
    MaasProvider::new(&t.name, m, "strata", s.cfg.secrets.clone())
}

/// `Err` when this instance no longer holds the leader lease the claim was made
/// under: every side effect checks this first.
pub(crate) async fn fenced(s: &Server, c: &Claim) -> Result<(), Retry> {
    if let Some(f) = c.fencing
        && !s.store.fence(LEADER_LEASE, f).await?
    {
        return Err(Retry(
            "this instance is no longer the leader (fencing counter moved)".into(),
        ));
    }
    Ok(())
}

fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'~'))
}

/// A running workflow of `kind` whose subject (JSON) has `field` = `value` for
/// every pair.
async fn running_of_kind(
    s: &Server,
    kind: &str,
    pairs: &[(&str, &str)],
) -> Result<Option<String>, LifecycleError> {
    let list = s
        .store
        .workflows(Some(kind), 500)
        .await
        .map_err(|e| LifecycleError::Unavailable(e.to_string()))?;
    Ok(list
        .into_iter()
        .filter(|(_, _, _, state)| state == "running")
        .find(|(_, _, subject, _)| {
            let v: Value = serde_json::from_str(subject).unwrap_or(Value::Null);
            pairs
                .iter()
                .all(|(k, want)| v.get(*k).and_then(Value::as_str) == Some(*want))
        })
        .map(|(id, _, _, _)| id))
}

// ---------------------------------------------------------------------------
// Rolling upgrade

/// Start a rolling upgrade of `req.dc`'s Proxmox cluster; the workflow's id.
pub async fn start_upgrade(s: &Server, mut req: UpgradeRequest) -> Result<String, LifecycleError> {
    if !plain(&req.dc) || !plain(&req.version) {
        return Err(LifecycleError::BadRequest(
            "`dc` and `version` are plain names (letters, digits, . - _ + ~)".into(),
        ));
    }
    req.gate_timeout_s = req.gate_timeout_s.clamp(1, 7200);
    if let Some(id) = running_of_kind(s, "upgrade", &[("dc", &req.dc)]).await? {
        return Err(LifecycleError::Conflict(format!(
            "a rolling upgrade of {} is running already (workflow {id}); cancel it or wait",
            req.dc
        )));
    }
    let t = dc_targets(s, &req.dc)?;
    let px = proxmox(&t).map_err(|e| LifecycleError::BadRequest(e.to_string()))?;
    let nodes = px
        .nodes()
        .await
        .map_err(|e| LifecycleError::Unavailable(format!("{}: cannot list nodes: {e}", req.dc)))?;
    if nodes.is_empty() {
        return Err(LifecycleError::BadRequest(format!(
            "{}: the cluster has no nodes",
            req.dc
        )));
    }
    let mut steps = Vec::new();
    for n in &nodes {
        for what in ["drain", "upgrade", "gate"] {
            steps.push(strata_store::StepSpec {
                max_attempts: 5,
                timeout: STEP_LEASE,
                ..strata_store::StepSpec::new(format!("{what}:{n}"))
            });
        }
    }
    let subject =
        serde_json::to_string(&req).map_err(|e| LifecycleError::BadRequest(e.to_string()))?;
    let (id, _) = s
        .store
        .start(
            &format!("upgrade:{}:{}:{}", req.dc, req.version, now_ms()),
            "upgrade",
            &subject,
            &steps,
        )
        .await
        .map_err(|e| LifecycleError::Unavailable(e.to_string()))?;
    s.work.notify_one();
    Ok(id)
}

fn previous_key(workflow: &str, node: &str) -> String {
    format!("upgrade-previous:{workflow}:{node}")
}

/// One step of a rolling upgrade.
pub(crate) async fn upgrade_step(s: &Arc<Server>, c: &Claim) -> StepResult {
    let req: UpgradeRequest = serde_json::from_str(&c.subject)?;
    let Some((what, node)) = c.name.split_once(':') else {
        return Ok(StepOutcome::Done(json!({"skipped": "malformed step"})));
    };
    let t = dc_targets(s, &req.dc)?;
    let px = proxmox(&t)?;
    let gate = Duration::from_secs(req.gate_timeout_s);
    match what {
        "drain" => {
            let moved = drain_proxmox(s, c, &px, node).await?;
            Ok(StepOutcome::Done(json!({"node": node, "moved": moved})))
        }
        "upgrade" => {
            let h = px.health(node).await?;
            if h.api && h.version == req.version {
                return Ok(StepOutcome::Done(
                    json!({"node": node, "already": req.version}),
                ));
            }
            if !h.api
                && s.store
                    .get_value(&previous_key(&c.workflow, node))
                    .await?
                    .is_some()
            {
                // This step ran the upgrade before a crash and the node has not come
                // back well: the gate decides (and rolls back).
                return Ok(StepOutcome::Done(json!({
                    "node": node,
                    "note": "the upgrade ran before this server restarted; the gate checks it",
                })));
            }
            if !h.api {
                return Err(Retry(format!(
                    "{node} is not healthy before its upgrade: {}",
                    h.problems(None).join("; ")
                )));
            }
            // What to roll back to, kept before anything changes.
            s.store
                .put_value_if_absent(&previous_key(&c.workflow, node), &h.version)
                .await?;
            fenced(s, c).await?;
            let output = px.upgrade(node, Some(&req.version)).await?;
            Ok(StepOutcome::Done(json!({
                "node": node,
                "from": h.version,
                "to": req.version,
                "output": output,
            })))
        }
        "gate" => {
            let h = px.wait_healthy(node, Some(&req.version), gate).await?;
            if h.healthy_at(Some(&req.version)) {
                return Ok(StepOutcome::Done(json!({"node": node, "healthy": h})));
            }
            let problems = h.problems(Some(&req.version));
            let previous = s.store.get_value(&previous_key(&c.workflow, node)).await?;
            tracing::warn!(
                node,
                ?problems,
                "node failed its health gate; rolling it back"
            );
            let mut rollback = json!({"to": previous});
            if let Some(prev) = previous.as_deref() {
                fenced(s, c).await?;
                match px.upgrade(node, Some(prev)).await {
                    Ok(out) => {
                        let after = px.wait_healthy(node, Some(prev), gate).await?;
                        rollback["output"] = json!(out);
                        rollback["healthy_after"] = json!(after.healthy_at(Some(prev)));
                        rollback["health"] = json!(after);
                    }
                    Err(e) => rollback["error"] = json!(e.to_string()),
                }
            }
            let rolled = match (previous.as_deref(), rollback.get("error")) {
                (None, _) => "not rolled back (no earlier version recorded)".to_string(),
                (Some(p), Some(e)) => {
                    format!("the rollback to {p} failed ({e}): repair the node by hand")
                }
                (Some(p), None) if rollback["healthy_after"] == true => {
                    format!("rolled back to {p}")
                }
                (Some(p), None) => format!("rolled back to {p}, but it is not healthy yet"),
            };
            let why = format!(
                "{node} failed its health gate after the upgrade to {}: {}; {rolled}; the rollout stopped",
                req.version,
                problems.join("; "),
            );
            Ok(StepOutcome::Halt(
                json!({"node": node, "gate": "failed", "problems": problems, "health": h, "rollback": rollback}),
                why,
            ))
        }
        other => Ok(StepOutcome::Done(
            json!({"skipped": format!("unknown step {other}")}),
        )),
    }
}

/// Live-migrate every guest of `node` to the other online nodes (fewest guests
/// first). Returns what moved where.
async fn drain_proxmox(
    s: &Server,
    c: &Claim,
    px: &ProxmoxNodes,
    node: &str,
) -> Result<Vec<Value>, Retry> {
    let guests = px.guests(node).await?;
    if guests.is_empty() {
        return Ok(Vec::new());
    }
    let mut others = Vec::new();
    for n in px.nodes().await? {
        if n == node {
            continue;
        }
        let h = px.health(&n).await?;
        if h.online && h.api {
            let load = px.guests(&n).await?.len();
            others.push((n, load));
        }
    }
    if others.is_empty() {
        return Err(Retry(format!(
            "{node} has {} guest(s) and no other node is online to take them",
            guests.len()
        )));
    }
    let mut moved = Vec::new();
    for g in guests {
        others.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let to = others[0].0.clone();
        fenced(s, c).await?;
        px.migrate(g.vmid, node, &to, g.running).await?;
        others[0].1 += 1;
        moved.push(json!({"vmid": g.vmid, "name": g.name, "to": to, "online": g.running}));
    }
    Ok(moved)
}

// ---------------------------------------------------------------------------
// Decommission

/// Start decommissioning machine `req.hostname` of `req.dc`; the workflow's id.
pub async fn start_decommission(
    s: &Server,
    req: DecommissionRequest,
) -> Result<String, LifecycleError> {
    if !plain(&req.dc) || !plain(&req.hostname) {
        return Err(LifecycleError::BadRequest(
            "`dc` and `hostname` are plain names (letters, digits, . - _)".into(),
        ));
    }
    if req.reason.trim().is_empty() || req.reason.chars().count() > 500 {
        return Err(LifecycleError::BadRequest(
            "`reason` says why (1 to 500 characters): it goes into MAAS's description of the machine".into(),
        ));
    }
    let t = dc_targets(s, &req.dc)?;
    let m = maas(s, &t).map_err(|e| LifecycleError::BadRequest(e.to_string()))?;
    if m.machine_named(&req.hostname)
        .await
        .map_err(|e| LifecycleError::Unavailable(e.to_string()))?
        .is_none()
    {
        return Err(LifecycleError::BadRequest(format!(
            "{}: MAAS has no machine named {}",
            req.dc, req.hostname
        )));
    }
    let key = format!("decommission:{}:{}", req.dc, req.hostname);
    if let Some(id) = running_of_kind(
        s,
        "decommission",
        &[("dc", &req.dc), ("hostname", &req.hostname)],
    )
    .await?
    {
        return Err(LifecycleError::Conflict(format!(
            "{} is being decommissioned already (workflow {id})",
            req.hostname
        )));
    }
    let subject =
        serde_json::to_string(&req).map_err(|e| LifecycleError::BadRequest(e.to_string()))?;
    let steps: Vec<_> = ["drain", "remove", "release", "retire"]
        .iter()
        .map(|n| strata_store::StepSpec {
            max_attempts: 8,
            timeout: STEP_LEASE,
            ..strata_store::StepSpec::new(*n)
        })
        .collect();
    let (id, _) = s
        .store
        .start(
            &format!("{key}:{}", now_ms()),
            "decommission",
            &subject,
            &steps,
        )
        .await
        .map_err(|e| LifecycleError::Unavailable(e.to_string()))?;
    s.work.notify_one();
    Ok(id)
}

/// One step of a decommission.
pub(crate) async fn decommission_step(s: &Arc<Server>, c: &Claim) -> StepResult {
    let req: DecommissionRequest = serde_json::from_str(&c.subject)?;
    let host = req.hostname.as_str();
    let t = dc_targets(s, &req.dc)?;
    let px = t.proxmox.as_ref().map(|_| proxmox(&t)).transpose()?;
    let nova = compute(&t)?;
    let in_proxmox = match &px {
        Some(p) => p.nodes().await?.iter().any(|n| n == host),
        None => false,
    };
    let in_nova = match &nova {
        Some(n) => n.service(host).await?.is_some(),
        None => false,
    };
    let evidence = match c.name.as_str() {
        "drain" => {
            let mut ev = json!({"machine": host});
            if let (true, Some(p)) = (in_proxmox, &px) {
                ev["proxmox_moved"] = json!(drain_proxmox(s, c, p, host).await?);
            }
            if let (true, Some(n)) = (in_nova, &nova) {
                fenced(s, c).await?;
                n.disable(host, &format!("strata decommission: {}", req.reason))
                    .await?;
                let mut moved = Vec::new();
                for srv in n.servers(host).await? {
                    fenced(s, c).await?;
                    let to = n.move_off(&srv.id, host, Duration::from_secs(600)).await?;
                    moved.push(json!({"server": srv.id, "name": srv.name, "to": to}));
                }
                ev["nova_disabled"] = json!(true);
                ev["nova_moved"] = json!(moved);
            }
            ev
        }
        "remove" => {
            let mut ev = json!({"machine": host});
            if let (true, Some(p)) = (in_proxmox, &px) {
                if !p.guests(host).await?.is_empty() {
                    return Err(Retry(format!("{host} still has guests; drain it first")));
                }
                fenced(s, c).await?;
                p.shutdown(host).await?;
                p.remove(host).await?;
                ev["proxmox_removed"] = json!(true);
            }
            let provider_key = format!("decommission-provider:{}", c.workflow);
            if let (true, Some(n)) = (in_nova, &nova) {
                if !n.servers(host).await?.is_empty() {
                    return Err(Retry(format!("{host} still has instances; drain it first")));
                }
                // Nova deletes the compute node's providers with the service; Placement
                // must no longer have them (checked again on a retry after a crash).
                if let Some(uuid) = n.provider_of(host).await? {
                    s.store.put_value_if_absent(&provider_key, &uuid).await?;
                }
                fenced(s, c).await?;
                n.remove(host).await?;
            }
            if let Some(n) = &nova
                && let Some(uuid) = s.store.get_value(&provider_key).await?
            {
                if n.provider_exists(&uuid).await? {
                    return Err(Retry(format!(
                        "Placement still has {host}'s provider {uuid} (allocations left on it?)"
                    )));
                }
                ev["nova_removed"] = json!(true);
                ev["placement_provider_removed"] = json!(uuid);
            } else if in_nova {
                ev["nova_removed"] = json!(true);
            }
            ev
        }
        "release" => {
            let m = maas(s, &t)?;
            let Some(state) = m.machine_named(host).await? else {
                return Err(Retry(format!("MAAS has no machine named {host}")));
            };
            fenced(s, c).await?;
            let after = m
                .release_erased(
                    &state.system_id,
                    req.secure_erase,
                    Duration::from_secs(3600),
                )
                .await?;
            json!({"machine": host, "before": state, "after": after})
        }
        "retire" => {
            let m = maas(s, &t)?;
            let Some(state) = m.machine_named(host).await? else {
                return Err(Retry(format!("MAAS has no machine named {host}")));
            };
            fenced(s, c).await?;
            let after = m
                .mark_retired(&state.system_id, req.rma, &req.reason)
                .await?;
            // An audit record, so the outbound webhooks carry it (crate::outbound).
            crate::outbound::machine_record(
                s,
                c,
                &req.dc,
                crate::outbound::MachineKey::Hostname(host),
                "machine.retired",
                json!({"state": "retired", "rma": req.rma, "reason": req.reason}),
            )
            .await;
            json!({"machine": host, "rma": req.rma, "after": after})
        }
        other => json!({"skipped": format!("unknown step {other}")}),
    };
    Ok(StepOutcome::Done(evidence))
}

// ---------------------------------------------------------------------------
// Onboarding: joined

/// Whether machine `hostname` (role `role`, `gpus` GPUs expected) has joined the
/// platform its role belongs to: a Proxmox node is in the cluster and answers; an
/// OpenStack compute host's `nova-compute` is up and Placement carries its provider
/// with the GPUs. Other roles join nothing. `Err`: not (yet).
pub(crate) async fn joined(
    s: &Server,
    dc: &str,
    hostname: &str,
    role: &str,
    gpus: u32,
) -> Result<Value, Retry> {
    let t = dc_targets(s, dc)?;
    match role {
        "proxmox" => {
            let px = proxmox(&t)?;
            if !px.nodes().await?.iter().any(|n| n == hostname) {
                return Err(Retry(format!(
                    "{hostname} has not joined the Proxmox cluster yet"
                )));
            }
            let h = px.health(hostname).await?;
            if !h.healthy_at(None) {
                return Err(Retry(format!(
                    "{hostname} joined the Proxmox cluster but is not healthy: {}",
                    h.problems(None).join("; ")
                )));
            }
            Ok(json!({"platform": "proxmox", "node": h}))
        }
        "openstack-compute" => {
            let Some(n) = compute(&t)? else {
                return Err(Retry(format!(
                    "{dc}: no OpenStack endpoint to check {hostname}"
                )));
            };
            let Some(svc) = n.service(hostname).await? else {
                return Err(Retry(format!("Nova has no nova-compute on {hostname} yet")));
            };
            if svc.state != "up" {
                return Err(Retry(format!(
                    "nova-compute on {hostname} is {}",
                    svc.state
                )));
            }
            let Some(inv) = n.inventory(hostname).await? else {
                return Err(Retry(format!(
                    "Placement has no provider for {hostname} yet"
                )));
            };
            if inv.gpus() < i64::from(gpus) {
                return Err(Retry(format!(
                    "Placement shows {} GPU(s) on {hostname}, the profile has {gpus}",
                    inv.gpus()
                )));
            }
            Ok(json!({"platform": "openstack", "service": svc, "placement": inv}))
        }
        _ => Ok(json!({"platform": null, "note": format!("role {role} joins no platform")})),
    }
}
