//! Self-service requests: a team asks for VMs (Proxmox VE), bare-metal machines (MAAS
//! allocate + deploy) or GPU instances (OpenStack servers of a GPU flavor) through
//! the API (`/api/v1/requests`) or `strata request`, and gets them placed, made and
//! watched until they are ready, released on demand or when they expire.
//!
//! - **Accepting** (`POST /api/v1/requests`): the caller needs the `member` role in
//!   the team. The request is checked against the applied fleet (the team, its GPU
//!   flavors, its tenants' networks, the hardware profiles) and counted against the
//!   team's quota (`instances`, `cores`, `ram_mib`, `gpus`) together with every live
//!   request of the team, atomically with its recording (422 `quota-exceeded` says
//!   what is left). It becomes a workflow of kind `request`, subject `{team}/{id}`:
//!   `place` → `create` → `ready`, preceded by `approve` when it asks for more GPUs
//!   than the approval threshold (`GET`/`PUT /api/v1/requests/policy`, default 8):
//!   that step is held until an operator of the team approves
//!   (`POST /api/v1/requests/{id}/approve`).
//! - **place**: observe every candidate DC (the fleet's, or the one asked for) and
//!   choose where it fits best: Proxmox nodes' free cores and memory (what the VMs on
//!   them hold, never overcommitted), MAAS's Ready spares of the hardware profile
//!   (tagged with the profile's name, or reporting its CPUs and memory; never a
//!   machine of the fleet's inventory), Placement's free devices of the GPU model's
//!   class per compute host. `anti_affinity` puts each instance on another node,
//!   zone or host. No room anywhere ends the request `failed`, saying why per DC.
//! - **create**: observe, then act, every object named after the request
//!   (`{id}-{i}`), so a create taken over after a crash finds what the crashed
//!   attempt made. VMs are clones of the cluster's template with their own ownership
//!   tag (`strata-<fleet>-req`: the fleet's reconcile sees another owner's VM and
//!   leaves it alone); machines carry the request in MAAS's owner data; servers are
//!   booted in the team's project with a port per network and a security group (named
//!   after the request) admitting only the team's tenant subnets, and a server group
//!   with the `anti-affinity` policy when there are several.
//! - **ready**: wait until every VM runs, every machine is Deployed, every server is
//!   ACTIVE; a server in ERROR or a failed deployment ends the request `failed`.
//! - **release** (`DELETE /api/v1/requests/{id}`, or its expiry: `expires_at` /
//!   `expires_in_s`, checked every few seconds by the leader): a second workflow,
//!   `release` then `released`, that deletes the VMs and servers (ports, groups),
//!   releases the machines with a disk erase, and waits until nothing is left.
//!
//! Every step checks the leader's fencing counter before a side effect, every
//! mutation through the API writes an audit record, and another team's request
//! answers 404 exactly like a missing one.

pub mod client;
pub mod place;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use strata_providers::ProviderError;
use strata_providers::maas::MaasProvider;
use strata_providers::maas::allocate::MachineInfo;
use strata_providers::openstack::servers::{Cloud, Region, ServerSpec};
use strata_providers::proxmox::ProxmoxProvider;
use strata_providers::proxmox::guests::GuestRequest;
use strata_providers::targets::{DcTargets, Targets};
use strata_store::{Claim, RequestRow, StepSpec, Usage, now_ms};
use tokio::sync::watch;

use crate::Server;
use crate::auth::{FLEET, Principal, Role};
use crate::http::{Problem, RequestId, json_body};
use crate::lifecycle::{Retry, StepOutcome, fenced};

type S = State<Arc<Server>>;
type StepResult = Result<StepOutcome, Retry>;

const KINDS: [&str; 3] = ["vm", "metal", "gpu"];
/// The store key of the requests policy (the approval threshold).
const POLICY_KEY: &str = "requests.policy";
/// Requests asking for more GPUs than this wait for an approval (unless the policy
/// says otherwise).
pub const DEFAULT_APPROVAL_GPUS: i64 = 8;
/// MAAS owner data marking a machine as a request's.
const MARK: &str = "strata-request";
const MARK_TEAM: &str = "strata-team";
const MARK_INDEX: &str = "strata-index";
const STEP_LEASE: Duration = Duration::from_secs(30);
/// How often the leader looks for expired requests.
const EXPIRY_EVERY: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// What a team asks for

/// The body of `POST /api/v1/requests`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// `vm`, `metal` or `gpu`.
    pub kind: String,
    pub team: String,
    /// A label for people (a DNS label); objects are named after the request's id.
    pub name: String,
    /// Only this DC (default: wherever it fits best).
    #[serde(default)]
    pub dc: Option<String>,
    #[serde(default)]
    pub cores: Option<u32>,
    #[serde(default)]
    pub memory_mib: Option<u64>,
    #[serde(default)]
    pub disk_gb: Option<u64>,
    /// A hardware profile of the fleet (`metal`).
    #[serde(default)]
    pub profile: Option<String>,
    /// A GPU flavor the team may boot (`gpu`), or `gpu_model` and `gpus` (per
    /// instance) to find one.
    #[serde(default)]
    pub flavor: Option<String>,
    #[serde(default)]
    pub gpu_model: Option<String>,
    #[serde(default)]
    pub gpus: Option<u32>,
    /// A Glance image (`gpu`; default: the newest Ubuntu).
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub anti_affinity: Option<bool>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub expires_in_s: Option<u64>,
    /// Tenant networks (`{tenant}-{network}`) of the team's tenants (default: the
    /// first routed one).
    #[serde(default)]
    pub networks: Option<Vec<String>>,
}

/// A request as accepted: everything the steps need, resolved against the fleet.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    pub kind: String,
    pub team: String,
    pub name: String,
    #[serde(default)]
    pub dc: Option<String>,
    pub count: u32,
    pub anti_affinity: bool,
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default)]
    pub approval_required: bool,
    #[serde(default)]
    pub vm: Option<VmWant>,
    #[serde(default)]
    pub metal: Option<MetalWant>,
    #[serde(default)]
    pub gpu: Option<GpuWant>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct VmWant {
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_gb: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct MetalWant {
    pub profile: String,
    /// Logical CPUs and memory of the profile (what a spare must report).
    pub cpu_count: u64,
    pub memory_mib: u64,
    pub gpus: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct GpuWant {
    pub flavor: String,
    pub gpus_per_instance: u32,
    pub gpu_model: String,
    /// Placement's resource class of the model (`CUSTOM_PCI_10DE_2330`).
    pub gpu_class: String,
    pub vcpus: u32,
    pub ram_mib: u64,
    #[serde(default)]
    pub image: Option<String>,
}

fn dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The tenant networks a team may use, `(name, vlan, routed)`, sorted by name.
fn team_networks(
    fleet: &strata_fleet::Fleet,
    team: &strata_fleet::Team,
) -> Vec<(String, u16, bool)> {
    let mut out: Vec<(String, u16, bool)> = fleet
        .tenants
        .iter()
        .filter(|t| team.tenants.contains(&t.name))
        .flat_map(|t| {
            t.networks
                .iter()
                .map(move |n| (format!("{}-{}", t.name, n.name), n.vlan, n.routed))
        })
        .collect();
    out.sort();
    out
}

/// Check `req` against the fleet and say what it counts against the quota.
pub fn resolve(fleet: &strata_fleet::Fleet, req: &NewRequest) -> Result<(Spec, Usage), String> {
    if !KINDS.contains(&req.kind.as_str()) {
        return Err(format!("kind {:?} is not one of vm, metal, gpu", req.kind));
    }
    let team = fleet
        .teams
        .iter()
        .find(|t| t.name == req.team)
        .ok_or_else(|| format!("the fleet has no team {}", req.team))?;
    if !dns_label(&req.name, 40) {
        return Err("name is a DNS label of at most 40 characters (a-z, 0-9, -)".into());
    }
    let count = req.count.unwrap_or(1);
    if !(1..=32).contains(&count) {
        return Err("count is 1 to 32".into());
    }
    if let Some(dc) = &req.dc
        && fleet.dc(dc).is_none()
    {
        return Err(format!("the fleet has no DC {dc}"));
    }
    let allowed = team_networks(fleet, team);
    let networks = match &req.networks {
        Some(list) => {
            for n in list {
                if !allowed.iter().any(|(a, _, _)| a == n) {
                    return Err(format!(
                        "network {n} is not one of team {}'s: {}",
                        team.name,
                        allowed
                            .iter()
                            .map(|a| a.0.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            list.clone()
        }
        None => allowed
            .iter()
            .find(|(_, _, routed)| *routed)
            .or_else(|| allowed.first())
            .map(|(n, _, _)| vec![n.clone()])
            .unwrap_or_default(),
    };
    let n = i64::from(count);
    let refuse = |fields: &[(&str, bool)]| -> Result<(), String> {
        match fields.iter().find(|(_, given)| *given) {
            Some((f, _)) => Err(format!("`{f}` does not apply to a {} request", req.kind)),
            None => Ok(()),
        }
    };
    let mut spec = Spec {
        kind: req.kind.clone(),
        team: team.name.clone(),
        name: req.name.clone(),
        dc: req.dc.clone(),
        count,
        anti_affinity: req.anti_affinity.unwrap_or(false),
        networks,
        ..Spec::default()
    };
    let usage = match req.kind.as_str() {
        "vm" => {
            refuse(&[
                ("profile", req.profile.is_some()),
                ("flavor", req.flavor.is_some()),
                ("gpu_model", req.gpu_model.is_some()),
                ("gpus", req.gpus.is_some()),
                ("image", req.image.is_some()),
            ])?;
            let cores = req.cores.ok_or("a vm request needs `cores`")?;
            let memory = req.memory_mib.ok_or("a vm request needs `memory_mib`")?;
            let disk = req.disk_gb.unwrap_or(32);
            if !(1..=256).contains(&cores) {
                return Err("cores is 1 to 256".into());
            }
            if !(256..=4 * 1024 * 1024).contains(&memory) {
                return Err("memory_mib is 256 to 4194304".into());
            }
            if !(1..=65536).contains(&disk) {
                return Err("disk_gb is 1 to 65536".into());
            }
            if fleet.dcs.iter().all(|d| d.proxmox.is_empty()) {
                return Err("the fleet has no Proxmox cluster".into());
            }
            spec.vm = Some(VmWant {
                cores,
                memory_mib: memory,
                disk_gb: disk,
            });
            Usage {
                instances: n,
                cores: n * i64::from(cores),
                ram_mib: n * i64::try_from(memory).unwrap_or(i64::MAX / 64),
                gpus: 0,
            }
        }
        "metal" => {
            refuse(&[
                ("cores", req.cores.is_some()),
                ("memory_mib", req.memory_mib.is_some()),
                ("disk_gb", req.disk_gb.is_some()),
                ("flavor", req.flavor.is_some()),
                ("gpu_model", req.gpu_model.is_some()),
                ("gpus", req.gpus.is_some()),
                ("image", req.image.is_some()),
            ])?;
            let name = req
                .profile
                .as_deref()
                .ok_or("a metal request needs `profile`")?;
            let p = fleet.profile(name).ok_or_else(|| {
                format!(
                    "the fleet has no hardware profile {name}: {}",
                    fleet
                        .profiles
                        .iter()
                        .map(|p| p.name.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let gpus = p.gpu.as_ref().map_or(0, |g| g.value.count);
            let cores = p.cpu.sockets * p.cpu.cores_per_socket;
            spec.metal = Some(MetalWant {
                profile: name.to_string(),
                cpu_count: u64::from(cores * p.cpu.threads_per_core),
                memory_mib: u64::from(p.memory_gib) * 1024,
                gpus,
            });
            Usage {
                instances: n,
                cores: n * i64::from(cores),
                ram_mib: n * i64::from(p.memory_gib) * 1024,
                gpus: n * i64::from(gpus),
            }
        }
        _ => {
            refuse(&[
                ("cores", req.cores.is_some()),
                ("memory_mib", req.memory_mib.is_some()),
                ("disk_gb", req.disk_gb.is_some()),
                ("profile", req.profile.is_some()),
            ])?;
            let gpu = gpu_flavor(fleet, team, req)?;
            if spec.networks.is_empty() {
                return Err(format!(
                    "team {} has no tenant networks for its instances",
                    team.name
                ));
            }
            let u = Usage {
                instances: n,
                cores: n * i64::from(gpu.vcpus),
                ram_mib: n * i64::try_from(gpu.ram_mib).unwrap_or(i64::MAX / 64),
                gpus: n * i64::from(gpu.gpus_per_instance),
            };
            spec.gpu = Some(gpu);
            u
        }
    };
    Ok((spec, usage))
}

/// The GPU flavor a `gpu` request boots: the one it names, or the team's flavor of
/// `gpu_model` with `gpus` GPUs; either way one the team may boot.
fn gpu_flavor(
    fleet: &strata_fleet::Fleet,
    team: &strata_fleet::Team,
    req: &NewRequest,
) -> Result<GpuWant, String> {
    // GPU flavors (`pci_alias` `<profile>:<gpus>`) with their profile's GPU.
    let mut flavors: Vec<(&strata_fleet::model::Flavor, &strata_spec::model::Gpu, u32)> =
        Vec::new();
    for d in &fleet.dcs {
        for f in &d.openstack.flavors {
            let Some((profile, n)) = f.pci_alias.as_deref().and_then(|a| a.split_once(':')) else {
                continue;
            };
            let Some(g) = fleet.profile(profile).and_then(|p| p.gpu.as_ref()) else {
                continue;
            };
            if !flavors.iter().any(|(x, _, _)| x.name == f.name) {
                flavors.push((f, &g.value, n.parse().unwrap_or(g.value.count)));
            }
        }
    }
    let mine: Vec<_> = flavors
        .iter()
        .filter(|(f, _, _)| team.gpu_flavors.contains(&f.name))
        .collect();
    let pick = match (&req.flavor, &req.gpu_model, req.gpus) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err("give `flavor`, or `gpu_model` and `gpus`, not both".into());
        }
        (Some(name), None, None) => {
            let f = flavors
                .iter()
                .find(|(f, _, _)| f.name == *name)
                .ok_or_else(|| format!("{name} is not a GPU flavor of the fleet"))?;
            if !team.gpu_flavors.contains(name) {
                return Err(format!(
                    "team {} may not boot {name} (its GPU flavors: {})",
                    team.name,
                    if team.gpu_flavors.is_empty() {
                        "none".to_string()
                    } else {
                        team.gpu_flavors.join(", ")
                    }
                ));
            }
            f
        }
        (None, Some(model), Some(gpus)) => mine
            .iter()
            .copied()
            .find(|(_, g, n)| g.model.eq_ignore_ascii_case(model) && *n == gpus)
            .ok_or_else(|| {
                format!(
                    "team {} has no flavor of {gpus} {model} GPU(s); it may boot: {}",
                    team.name,
                    mine.iter()
                        .map(|(f, g, n)| format!("{} ({n} × {})", f.name, g.model))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
        _ => return Err("a gpu request needs `flavor`, or `gpu_model` and `gpus`".into()),
    };
    let (f, g, n) = pick;
    Ok(GpuWant {
        flavor: f.name.clone(),
        gpus_per_instance: *n,
        gpu_model: g.model.clone(),
        gpu_class: strata_fleet::quota::pci_resource_class(&g.vendor_id, &g.device_id),
        vcpus: f.vcpus,
        ram_mib: f.ram_mib,
        image: req.image.clone(),
    })
}

fn quota_of(t: &strata_fleet::Team) -> Usage {
    Usage {
        instances: i64::from(t.quota.instances),
        cores: i64::from(t.quota.cores),
        ram_mib: i64::try_from(t.quota.ram_mib).unwrap_or(i64::MAX),
        gpus: i64::from(t.quota.gpus),
    }
}

/// The requests policy (kept in the store).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Requests asking for more GPUs than this wait for an approval.
    pub approval_gpus: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            approval_gpus: DEFAULT_APPROVAL_GPUS,
        }
    }
}

async fn policy(s: &Server) -> Result<Policy, strata_store::StoreError> {
    Ok(s.store
        .get_value(POLICY_KEY)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default())
}

/// The objects of instance `i` of request `id` are named this.
fn instance(id: &str, i: u32) -> String {
    format!("{id}-{i}")
}

fn marker(row: &RequestRow) -> String {
    format!("strata request {} of team {}", row.id, row.team)
}

fn new_id() -> String {
    let mut b = [0u8; 6];
    rand::fill(&mut b);
    format!("req-{}", hex::encode(b))
}

fn plausible_id(id: &str) -> bool {
    id.strip_prefix("req-")
        .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn spec_of(row: &RequestRow) -> Result<Spec, Retry> {
    serde_json::from_value(row.spec.clone())
        .map_err(|e| Retry(format!("request {}: unreadable spec: {e}", row.id)))
}

// ---------------------------------------------------------------------------
// HTTP

pub(crate) fn routes(r: Router<Arc<Server>>) -> Router<Arc<Server>> {
    r.route("/requests", get(list).post(create))
        .route("/requests/policy", get(get_policy).put(put_policy))
        .route("/requests/{id}", get(show).delete(release))
        .route("/requests/{id}/approve", post(approve))
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-request", detail)
}

fn no_request(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "request-not-found",
        format!("no request {id}"),
    )
}

/// The fleet the last applied commit compiled, or a 503 saying why there is none.
async fn fleet(s: &Server) -> Result<Arc<strata_fleet::Fleet>, Problem> {
    match crate::work::applied_fleet(s).await {
        Ok(Some((_, f))) => Ok(f),
        Ok(None) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-applied-commit",
            "no commit has been applied yet; requests are accepted after the first apply",
        )),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the applied commit");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "spec-unavailable",
                "cannot read the applied commit from the spec repository; try again",
            ))
        }
    }
}

/// A request the caller may see, or the 404 a missing one gets.
async fn visible(s: &Server, who: &Principal, id: &str) -> Result<RequestRow, Problem> {
    if !plausible_id(id) {
        return Err(no_request(id));
    }
    let row = s.store.request(id).await?.ok_or_else(|| no_request(id))?;
    who.see(&row.team, || no_request(id))?;
    Ok(row)
}

/// The state a request is in, its workflows considered (a workflow that failed or
/// was cancelled leaves the row as it was), and why.
fn effective(
    row: &RequestRow,
    wf: Option<&strata_store::WorkflowView>,
    rel: Option<&strata_store::WorkflowView>,
) -> (String, String) {
    let failure = |w: &strata_store::WorkflowView| {
        w.steps
            .iter()
            .rev()
            .find_map(|st| st.error.clone())
            .unwrap_or_else(|| format!("its workflow is {}", w.state))
    };
    match row.state.as_str() {
        "approval" | "provisioning" => match wf {
            Some(w) if matches!(w.state.as_str(), "failed" | "cancelled" | "stopped") => {
                let why = if row.detail.is_empty() {
                    failure(w)
                } else {
                    row.detail.clone()
                };
                ("failed".into(), why)
            }
            _ => (row.state.clone(), row.detail.clone()),
        },
        "releasing" => match rel {
            Some(w) if matches!(w.state.as_str(), "failed" | "cancelled") => (
                "release-failed".into(),
                format!("the release did not finish: {}", failure(w)),
            ),
            _ => (row.state.clone(), row.detail.clone()),
        },
        _ => (row.state.clone(), row.detail.clone()),
    }
}

fn workflow_json(w: Option<&strata_store::WorkflowView>) -> Value {
    match w {
        None => Value::Null,
        Some(w) => json!({
            "id": w.id,
            "state": w.state,
            "steps": w.steps.iter().map(|st| json!({
                "name": st.name, "state": st.state, "attempts": st.attempts, "error": st.error,
            })).collect::<Vec<_>>(),
        }),
    }
}

async fn request_json(s: &Server, row: &RequestRow) -> Result<Value, Problem> {
    let wf = s.store.workflow(&row.workflow_id).await?;
    let rel = if row.release_workflow_id.is_empty() {
        None
    } else {
        s.store.workflow(&row.release_workflow_id).await?
    };
    let (state, detail) = effective(row, wf.as_ref(), rel.as_ref());
    Ok(json!({
        "id": row.id,
        "team": row.team,
        "name": row.name,
        "kind": row.kind,
        "state": state,
        "detail": detail,
        "count": row.spec["count"],
        "dc": (!row.dc.is_empty()).then_some(&row.dc),
        "spec": row.spec,
        "usage": row.usage,
        "placement": row.placement,
        "resources": row.resources,
        "approval": {
            "required": row.spec["approval_required"].as_bool().unwrap_or(false),
            "approved_by": (!row.approved_by.is_empty()).then_some(&row.approved_by),
        },
        "workflow": workflow_json(wf.as_ref()),
        "release_workflow": workflow_json(rel.as_ref()),
        "created_by": row.created_by,
        "created_at": place::rfc3339(row.created_ms),
        "updated_at": place::rfc3339(row.updated_ms),
        "expires_at": (row.expires_ms > 0).then(|| place::rfc3339(row.expires_ms)),
    }))
}

fn steps_for(approval: bool) -> Vec<StepSpec> {
    let mut names = Vec::new();
    if approval {
        names.push(("approve", 3));
    }
    names.extend([("place", 5), ("create", 8), ("ready", 5)]);
    names
        .into_iter()
        .map(|(n, attempts)| StepSpec {
            max_attempts: attempts,
            timeout: STEP_LEASE,
            ..StepSpec::new(n)
        })
        .collect()
}

fn release_steps() -> Vec<StepSpec> {
    ["release", "released"]
        .iter()
        .map(|n| StepSpec {
            max_attempts: 8,
            timeout: STEP_LEASE,
            ..StepSpec::new(*n)
        })
        .collect()
}

/// `POST /api/v1/requests`.
async fn create(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    body: Bytes,
) -> Result<Response, Problem> {
    let req: NewRequest = json_body(&body)?;
    if !dns_label(&req.team, 63) {
        return Err(invalid(
            "team is a DNS label (lowercase letters, digits, '-')",
        ));
    }
    who.need(&req.team, Role::Member, "requesting resources")?;
    let f = fleet(&s).await?;
    let team = f
        .teams
        .iter()
        .find(|t| t.name == req.team)
        .ok_or_else(|| invalid(format!("the applied fleet has no team {}", req.team)))?;
    let (mut spec, usage) = resolve(&f, &req).map_err(invalid)?;
    let now = now_ms();
    let expires_ms =
        place::expiry_ms(now, req.expires_at.as_deref(), req.expires_in_s).map_err(invalid)?;
    let pol = policy(&s).await?;
    spec.approval_required = usage.gpus > pol.approval_gpus;
    let id = new_id();
    let row = RequestRow {
        id: id.clone(),
        team: team.name.clone(),
        name: spec.name.clone(),
        kind: spec.kind.clone(),
        state: if spec.approval_required {
            "approval"
        } else {
            "provisioning"
        }
        .into(),
        spec: serde_json::to_value(&spec).unwrap_or_default(),
        usage,
        dc: String::new(),
        placement: None,
        resources: None,
        workflow_id: String::new(),
        release_workflow_id: String::new(),
        created_by: who.actor.clone(),
        approved_by: String::new(),
        created_ms: now,
        updated_ms: now,
        expires_ms,
        detail: if spec.approval_required {
            format!(
                "{} GPUs is more than {} without an approval: an operator of team {} approves it (POST /api/v1/requests/{id}/approve)",
                usage.gpus, pol.approval_gpus, team.name
            )
        } else {
            String::new()
        },
    };
    let quota = quota_of(team);
    let stored = match s
        .store
        .create_request(
            &row,
            &quota,
            &steps_for(spec.approval_required),
            spec.approval_required,
        )
        .await?
    {
        Ok(r) => r,
        Err(used) => {
            let why = place::quota_problem(&team.name, &quota, &used, &usage)
                .unwrap_or_else(|| format!("team {} is over its quota", team.name));
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "quota-exceeded",
                why,
            ));
        }
    };
    s.work.notify_one();
    let after = serde_json::to_value(&stored).unwrap_or_default();
    s.audit(
        &who,
        &rid,
        &stored.team,
        "request.create",
        &format!("request/{}", stored.id),
        &Value::Null,
        &after,
    )
    .await?;
    let mut r = (
        StatusCode::ACCEPTED,
        Json(json!({
            "id": stored.id,
            "workflow": stored.workflow_id,
            "state": stored.state,
            "approval_required": spec.approval_required,
            "usage": stored.usage,
            "expires_at": (expires_ms > 0).then(|| place::rfc3339(expires_ms)),
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/requests/{}", stored.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
    team: Option<String>,
    state: Option<String>,
    kind: Option<String>,
}

/// `GET /api/v1/requests`: the requests of the teams the caller sees, by id.
async fn list(
    State(s): S,
    Extension(who): Extension<Principal>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(crate::http::bad_query)?;
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=500).contains(&n) => n,
        Some(n) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-limit",
                format!("limit {n} is out of range: 1 to 500"),
            ));
        }
    };
    let mut items = Vec::new();
    let mut after = q.cursor.clone().unwrap_or_default();
    let mut next = None;
    'pages: loop {
        let rows = s.store.requests(q.team.as_deref(), &after, 500).await?;
        let n = rows.len();
        for row in rows {
            after = row.id.clone();
            if who.role_in(&row.team).is_none() || q.kind.as_ref().is_some_and(|k| *k != row.kind) {
                continue;
            }
            let v = request_json(&s, &row).await?;
            if q.state.as_ref().is_some_and(|st| v["state"] != st.as_str()) {
                continue;
            }
            if items.len() == limit as usize {
                next = items
                    .last()
                    .and_then(|v: &Value| v["id"].as_str())
                    .map(str::to_string);
                break 'pages;
            }
            items.push(v);
        }
        if n < 500 {
            break;
        }
    }
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

/// `GET /api/v1/requests/{id}`.
async fn show(
    State(s): S,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let row = visible(&s, &who, &id).await?;
    Ok(Json(request_json(&s, &row).await?))
}

/// Start releasing `row`: its create workflow is cancelled (a step in flight checks
/// the request before acting), then the release workflow starts. `None` when it is
/// released or being released already.
async fn start_release(
    s: &Server,
    row: &RequestRow,
    why: &str,
) -> Result<Option<String>, strata_store::StoreError> {
    let Some(id) = s
        .store
        .release_request(&row.id, &release_steps(), why)
        .await?
    else {
        return Ok(None);
    };
    if let Some(w) = s.store.workflow(&row.workflow_id).await?
        && w.state == "running"
    {
        s.store.cancel(&w.id).await?;
    }
    s.work.notify_one();
    Ok(Some(id))
}

/// `DELETE /api/v1/requests/{id}`: release it.
async fn release(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let row = visible(&s, &who, &id).await?;
    who.need(&row.team, Role::Member, "releasing a request")?;
    let why = format!("released by {}", who.actor);
    let Some(workflow) = start_release(&s, &row, &why).await? else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "request-released",
            format!("request {id} is {} already", row.state),
        ));
    };
    s.audit(
        &who,
        &rid,
        &row.team,
        "request.release",
        &format!("request/{id}"),
        &json!({"state": row.state}),
        &json!({"state": "releasing", "workflow": workflow}),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "state": "releasing", "release_workflow": workflow})),
    )
        .into_response())
}

/// `POST /api/v1/requests/{id}/approve` (operators of the team).
async fn approve(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let row = visible(&s, &who, &id).await?;
    who.need(&row.team, Role::Operator, "approving a request")?;
    if !s.store.approve_request(&id, &who.actor).await? {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "request-not-waiting",
            format!("request {id} is {}, not waiting for an approval", row.state),
        ));
    }
    s.work.notify_one();
    s.audit(
        &who,
        &rid,
        &row.team,
        "request.approve",
        &format!("request/{id}"),
        &json!({"state": "approval"}),
        &json!({"state": "provisioning", "approved_by": who.actor}),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "approved": true, "workflow": row.workflow_id})),
    )
        .into_response())
}

/// `GET /api/v1/requests/policy`.
async fn get_policy(
    State(s): S,
    Extension(_who): Extension<Principal>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(
        serde_json::to_value(policy(&s).await?).unwrap_or_default(),
    ))
}

/// `PUT /api/v1/requests/policy` (fleet admins): `{"approval_gpus": 8}`.
async fn put_policy(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    who.need(FLEET, Role::Admin, "changing the requests policy")?;
    let new: Policy = json_body(&body)?;
    if !(0..=100_000).contains(&new.approval_gpus) {
        return Err(invalid("approval_gpus is 0 to 100000"));
    }
    let old = policy(&s).await?;
    let text = serde_json::to_string(&new).unwrap_or_default();
    s.store.put_value(POLICY_KEY, &text).await?;
    s.audit(
        &who,
        &rid,
        FLEET,
        "requests.policy",
        "requests/policy",
        &serde_json::to_value(old).unwrap_or_default(),
        &serde_json::to_value(new).unwrap_or_default(),
    )
    .await?;
    Ok(Json(serde_json::to_value(new).unwrap_or_default()))
}

// ---------------------------------------------------------------------------
// Expiry

/// Release expired requests (the leader, every few seconds).
pub(crate) async fn expiry_loop(s: Arc<Server>, mut rx: watch::Receiver<bool>) {
    loop {
        if crate::stopped_within(&mut rx, EXPIRY_EVERY).await {
            return;
        }
        if !s.is_leader() {
            continue;
        }
        if let Err(e) = expire(&s).await {
            tracing::warn!(error = %e, "cannot release expired requests");
        }
    }
}

async fn expire(s: &Server) -> Result<(), strata_store::StoreError> {
    for row in s.store.expired_requests(now_ms()).await? {
        let why = format!("expired at {}", place::rfc3339(row.expires_ms));
        if let Some(workflow) = start_release(s, &row, &why).await? {
            tracing::info!(request = %row.id, team = %row.team, "request expired; releasing it");
            s.store
                .audit(&strata_store::NewAudit {
                    actor: "strata serve",
                    team: &row.team,
                    action: "request.expire",
                    object: &format!("request/{}", row.id),
                    before: &json!({"state": row.state}),
                    after: &json!({"state": "releasing", "workflow": workflow, "reason": why}),
                    request_id: "expiry",
                })
                .await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Steps

/// Where a step acts: the applied fleet, the targets of the request's DC, the
/// fleet's ownership tag.
struct Ctx {
    fleet: Arc<strata_fleet::Fleet>,
    targets: Targets,
    owner_tag: String,
}

impl Ctx {
    async fn load(s: &Server) -> Result<Ctx, Retry> {
        let fleet = match crate::work::applied_fleet(s).await.map_err(Retry)? {
            Some((_, f)) => f,
            None => return Err(Retry("no commit has been applied yet".into())),
        };
        let targets = Targets::load(&s.cfg.targets, s.cfg.secrets.as_ref())
            .map_err(|e| Retry(format!("targets file: {e}")))?;
        Ok(Ctx {
            owner_tag: strata_plan::owner_tag(&fleet.organisation.fleet_id),
            fleet,
            targets,
        })
    }

    fn dc(&self, dc: &str) -> Result<&DcTargets, Retry> {
        self.targets
            .dcs
            .iter()
            .find(|d| d.name == dc)
            .ok_or_else(|| Retry(format!("the targets file has no DC {dc}")))
    }

    /// The ownership tag of request VMs: another owner's, to the fleet.
    fn vm_owner(&self) -> String {
        format!("{}-req", self.owner_tag)
    }

    fn proxmox(&self, dc: &str) -> Result<ProxmoxProvider, Retry> {
        let t = self.dc(dc)?;
        let p = t
            .proxmox
            .as_ref()
            .ok_or_else(|| Retry(format!("{dc}: no Proxmox endpoint")))?;
        Ok(ProxmoxProvider::new(dc, p, &self.vm_owner())?)
    }

    fn maas(&self, s: &Server, dc: &str) -> Result<MaasProvider, Retry> {
        let t = self.dc(dc)?;
        let m = t
            .maas
            .as_ref()
            .ok_or_else(|| Retry(format!("{dc}: no MAAS endpoint")))?;
        Ok(MaasProvider::new(
            dc,
            m,
            &self.owner_tag,
            s.cfg.secrets.clone(),
        )?)
    }

    fn region(&self, dc: &str) -> Result<Region, Retry> {
        let t = self.dc(dc)?;
        let o = t
            .openstack
            .as_ref()
            .ok_or_else(|| Retry(format!("{dc}: no OpenStack endpoint")))?;
        Ok(Region::new(dc, o)?)
    }

    /// The DCs a request may go to: the fleet's with endpoints (or the one asked for).
    fn candidates(&self, spec: &Spec) -> Vec<String> {
        self.fleet
            .dcs
            .iter()
            .map(|d| d.name.clone())
            .filter(|d| spec.dc.as_ref().is_none_or(|x| x == d))
            .filter(|d| self.targets.dcs.iter().any(|t| t.name == *d))
            .collect()
    }

    fn serials(&self) -> Vec<String> {
        self.fleet
            .dcs
            .iter()
            .flat_map(|d| d.machines.iter().map(|m| m.serial.clone()))
            .collect()
    }
}

/// The cluster a request VM goes to: the DC's first Proxmox cluster, its template
/// and its first shared (`rbd`) storage, else its first.
fn cluster_of(fleet: &strata_fleet::Fleet, dc: &str) -> Option<(String, Option<String>)> {
    let c = fleet.dc(dc)?.proxmox.first()?;
    let storage = c
        .storage
        .iter()
        .find(|x| x.kind == strata_spec::model::StorageKind::Rbd)
        .or_else(|| c.storage.first())
        .map(|x| x.name.clone());
    Some((c.template.clone(), storage))
}

/// The team's tenant subnets in `dc`: what its instances' security group admits.
fn team_cidrs(fleet: &strata_fleet::Fleet, team: &str, dc: &str) -> Vec<String> {
    let tenants: Vec<String> = fleet
        .teams
        .iter()
        .find(|t| t.name == team)
        .map(|t| t.tenants.clone())
        .unwrap_or_default();
    let mut out: Vec<String> = fleet
        .dc(dc)
        .map(|d| {
            d.tenant_subnets
                .iter()
                .filter(|s| tenants.contains(&s.tenant))
                .map(|s| s.subnet.to_string())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

/// One step of a `request` workflow (dispatched from the worker).
pub(crate) async fn step(s: &Arc<Server>, c: &Claim) -> StepResult {
    let Some((_, id)) = c.subject.split_once('/') else {
        return Ok(StepOutcome::Done(json!({"skipped": "malformed subject"})));
    };
    let Some(row) = s.store.request(id).await? else {
        return Ok(StepOutcome::Done(
            json!({"skipped": format!("no request {id}")}),
        ));
    };
    let spec = spec_of(&row)?;
    match c.name.as_str() {
        "approve" => Ok(StepOutcome::Done(json!({"approved_by": row.approved_by}))),
        "place" | "create" | "ready" if matches!(row.state.as_str(), "releasing" | "released") => {
            Ok(StepOutcome::Halt(
                json!({"skipped": "released"}),
                format!("request {id} is {}", row.state),
            ))
        }
        "place" => place_step(s, c, &row, &spec).await,
        "create" => create_step(s, c, &row, &spec).await,
        "ready" => ready_step(s, &row, &spec).await,
        "release" => {
            let ctx = Ctx::load(s).await?;
            let ev = release_all(s, c, &ctx, &row, &spec).await?;
            Ok(StepOutcome::Done(ev))
        }
        "released" => released_step(s, c, &row, &spec).await,
        other => Ok(StepOutcome::Done(
            json!({"skipped": format!("unknown step {other}")}),
        )),
    }
}

/// The request failed for good: say why on the request and stop its workflow.
async fn fail(s: &Server, row: &RequestRow, evidence: Value, why: String) -> StepResult {
    s.store
        .set_request_state(&row.id, &["approval", "provisioning"], "failed", &why)
        .await?;
    Ok(StepOutcome::Halt(evidence, why))
}

/// Observe one DC for a request: how well it fits (score) and where each instance
/// goes, or why it does not fit.
async fn observe_dc(s: &Server, ctx: &Ctx, spec: &Spec, dc: &str) -> place::Fit<Value> {
    let n = spec.count;
    match spec.kind.as_str() {
        "vm" => {
            let want = spec.vm.clone().unwrap_or_default();
            let Some((template, storage)) = cluster_of(&ctx.fleet, dc) else {
                return Err("no Proxmox cluster".into());
            };
            let px = ctx.proxmox(dc).map_err(|Retry(e)| e)?;
            let nodes = px
                .node_capacity()
                .await
                .map_err(|e| format!("Proxmox does not answer: {e}"))?;
            let chosen = place::place_vms(
                &nodes,
                i64::from(want.cores),
                i64::try_from(want.memory_mib).unwrap_or(i64::MAX),
                n,
                spec.anti_affinity,
            )?;
            let free: i64 = nodes
                .iter()
                .filter(|x| x.online)
                .map(|x| {
                    i64::try_from(x.memory_mib).unwrap_or(0)
                        - i64::try_from(x.allocated_memory_mib).unwrap_or(0)
                })
                .sum();
            Ok((
                free,
                json!({"nodes": chosen, "template": template, "storage": storage, "capacity": nodes}),
            ))
        }
        "metal" => {
            let want = spec.metal.clone().unwrap_or_default();
            let maas = ctx.maas(s, dc).map_err(|Retry(e)| e)?;
            let list = maas
                .machine_list()
                .await
                .map_err(|e| format!("MAAS does not answer: {e}"))?;
            let serials = ctx.serials();
            let fit = place::ProfileFit {
                profile: &want.profile,
                cpu_count: want.cpu_count,
                memory_mib: want.memory_mib,
                fleet_serials: &serials,
                owner_tag: &ctx.owner_tag,
            };
            let spares: Vec<MachineInfo> = list
                .into_iter()
                .filter(|m| place::spare_fits(m, &fit))
                .collect();
            let chosen = place::place_metal(&spares, n, spec.anti_affinity)?;
            let hostnames: Vec<&str> = chosen
                .iter()
                .filter_map(|sid| {
                    spares
                        .iter()
                        .find(|m| m.system_id == *sid)
                        .map(|m| m.hostname.as_str())
                })
                .collect();
            Ok((
                i64::try_from(spares.len()).unwrap_or(0),
                json!({"machines": chosen, "hostnames": hostnames, "spares": spares.len()}),
            ))
        }
        _ => {
            let want = spec.gpu.clone().unwrap_or_default();
            let has_model = ctx.fleet.dc(dc).is_some_and(|d| {
                d.openstack
                    .compute
                    .iter()
                    .filter_map(|c| c.gpu.as_ref())
                    .any(|g| g.model == want.gpu_model)
            });
            if !has_model {
                return Err(format!("no compute host with {} GPUs", want.gpu_model));
            }
            let region = ctx.region(dc).map_err(|Retry(e)| e)?;
            let hosts = region
                .gpu_hosts(&want.gpu_class)
                .await
                .map_err(|e| format!("Placement does not answer: {e}"))?;
            let chosen = place::place_gpus(
                &hosts,
                i64::from(want.gpus_per_instance),
                n,
                spec.anti_affinity,
            )?;
            let free: i64 = hosts.iter().map(|h| h.free).sum();
            Ok((
                free,
                json!({"hosts": chosen, "gpu_class": want.gpu_class, "capacity": hosts}),
            ))
        }
    }
}

async fn place_step(s: &Arc<Server>, _c: &Claim, row: &RequestRow, spec: &Spec) -> StepResult {
    if let Some(p) = &row.placement {
        return Ok(StepOutcome::Done(
            json!({"dc": row.dc, "placement": p, "note": "placed before"}),
        ));
    }
    let ctx = Ctx::load(s).await?;
    let dcs = ctx.candidates(spec);
    if dcs.is_empty() {
        let why = match &spec.dc {
            Some(d) => format!("DC {d} has no endpoints in the targets file"),
            None => "no DC of the fleet has endpoints in the targets file".to_string(),
        };
        return fail(s, row, json!({"placed": false}), why).await;
    }
    let observed = join_all(dcs.iter().map(|dc| observe_dc(s, &ctx, spec, dc))).await;
    let options: Vec<(String, place::Fit<Value>)> = dcs.into_iter().zip(observed).collect();
    // A DC that did not answer may have room: try again rather than fail.
    let unanswered: Vec<String> = options
        .iter()
        .filter_map(|(dc, o)| match o {
            Err(e) if e.contains("does not answer") => Some(format!("{dc}: {e}")),
            _ => None,
        })
        .collect();
    match place::choose_dc(options) {
        Ok((dc, placement)) => {
            s.store
                .set_request_placement(&row.id, &dc, &placement)
                .await?;
            Ok(StepOutcome::Done(
                json!({"dc": dc, "placement": placement, "others": unanswered}),
            ))
        }
        Err(_) if !unanswered.is_empty() => Err(Retry(format!(
            "cannot observe every DC: {}",
            unanswered.join("; ")
        ))),
        Err(why) => {
            let detail = format!("no DC has room for it: {}", why.join("; "));
            fail(s, row, json!({"placed": false, "reasons": why}), detail).await
        }
    }
}

/// Run futures concurrently; their results in order.
async fn join_all<F: std::future::Future>(fs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = fs.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// The request still wants its resources (not released meanwhile).
async fn still_wanted(s: &Server, id: &str) -> Result<bool, Retry> {
    Ok(s.store
        .request(id)
        .await?
        .is_some_and(|r| !matches!(r.state.as_str(), "releasing" | "released")))
}

async fn create_step(s: &Arc<Server>, c: &Claim, row: &RequestRow, spec: &Spec) -> StepResult {
    let ctx = Ctx::load(s).await?;
    let placement = row
        .placement
        .clone()
        .ok_or_else(|| Retry("the request has no placement".into()))?;
    let dc = row.dc.clone();
    let evidence = match spec.kind.as_str() {
        "vm" => {
            let want = spec.vm.clone().unwrap_or_default();
            let px = ctx.proxmox(&dc)?;
            let nodes = strings(&placement["nodes"]);
            let template = placement["template"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let storage = placement["storage"].as_str().map(str::to_string);
            let vlans: Vec<u16> = spec
                .networks
                .iter()
                .filter_map(|n| {
                    team_networks(
                        &ctx.fleet,
                        ctx.fleet.teams.iter().find(|t| t.name == row.team)?,
                    )
                    .into_iter()
                    .find(|(x, _, _)| x == n)
                    .map(|(_, v, _)| v)
                })
                .collect();
            let mut vms = Vec::new();
            for i in 0..spec.count {
                let node = nodes
                    .get(i as usize)
                    .cloned()
                    .ok_or_else(|| Retry(format!("the placement has no node for VM {i}")))?;
                if !still_wanted(s, &row.id).await? {
                    return Ok(StepOutcome::Done(json!({"skipped": "released meanwhile"})));
                }
                fenced(s, c).await?;
                let g = px
                    .ensure_guest(&GuestRequest {
                        name: instance(&row.id, i),
                        node,
                        template: template.clone(),
                        storage: storage.clone(),
                        cores: u64::from(want.cores),
                        memory_mib: want.memory_mib,
                        disk_gb: want.disk_gb,
                        tags: vec![format!("team-{}", row.team), row.id.clone()],
                        nets: vlans
                            .iter()
                            .map(|v| {
                                format!(
                                    "virtio,bridge={},tag={v}",
                                    strata_fleet::model::PROXMOX_BRIDGE
                                )
                            })
                            .collect(),
                        ipconfig: vlans.iter().map(|_| "ip=dhcp".to_string()).collect(),
                        marker: marker(row),
                    })
                    .await?;
                vms.push(serde_json::to_value(&g).unwrap_or_default());
            }
            json!({"kind": "vm", "dc": dc, "vms": vms})
        }
        "metal" => {
            let maas = ctx.maas(s, &dc)?;
            let chosen = strings(&placement["machines"]);
            let marked = maas.machines_marked(MARK, &row.id).await?;
            let mut machines = Vec::new();
            for i in 0..spec.count {
                let index = i.to_string();
                let existing = marked
                    .iter()
                    .find(|m| m.owner_data.get(MARK_INDEX) == Some(&index))
                    .cloned();
                let m = match existing {
                    Some(m) => m,
                    None => {
                        let sid = chosen.get(i as usize).cloned().ok_or_else(|| {
                            Retry(format!("the placement has no machine for {i}"))
                        })?;
                        if !still_wanted(s, &row.id).await? {
                            return Ok(StepOutcome::Done(json!({"skipped": "released meanwhile"})));
                        }
                        fenced(s, c).await?;
                        let comment = format!("{} ({})", marker(row), row.name);
                        match maas
                            .allocate_marked(
                                &sid,
                                &[
                                    (MARK, &row.id),
                                    (MARK_TEAM, &row.team),
                                    (MARK_INDEX, &index),
                                ],
                                &comment,
                            )
                            .await
                        {
                            Ok(m) => m,
                            Err(ProviderError::Refused(why)) => {
                                // Someone took the spare since it was placed: place
                                // this machine again (recorded before it is allocated).
                                let again = observe_dc(s, &ctx, spec, &dc).await.ok();
                                let spare = again
                                    .as_ref()
                                    .map(|(_, p)| strings(&p["machines"]))
                                    .unwrap_or_default()
                                    .into_iter()
                                    .find(|x| !chosen.contains(x));
                                let Some(spare) = spare else {
                                    return Err(Retry(format!(
                                        "{why}; no other spare of the profile in {dc} now"
                                    )));
                                };
                                let mut p = placement.clone();
                                p["machines"][i as usize] = json!(spare);
                                s.store.set_request_placement(&row.id, &dc, &p).await?;
                                return Err(Retry(format!("{why}; it takes {spare} instead")));
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                };
                fenced(s, c).await?;
                let m = maas.deploy_allocated(&m.system_id, None, None).await?;
                machines.push(serde_json::to_value(&m).unwrap_or_default());
            }
            json!({"kind": "metal", "dc": dc, "machines": machines})
        }
        _ => {
            let want = spec.gpu.clone().unwrap_or_default();
            let cloud = ctx.region(&dc)?.team(&row.team).await?;
            let cidrs = team_cidrs(&ctx.fleet, &row.team, &dc);
            let desc = format!("{}: admits only the team's networks", marker(row));
            if !still_wanted(s, &row.id).await? {
                return Ok(StepOutcome::Done(json!({"skipped": "released meanwhile"})));
            }
            fenced(s, c).await?;
            let (sg, prefixes) = cloud.ensure_security_group(&row.id, &desc, &cidrs).await?;
            let group = if spec.anti_affinity && spec.count > 1 {
                Some(cloud.ensure_server_group(&row.id, "anti-affinity").await?)
            } else {
                None
            };
            let flavor_id = cloud.flavor_id(&want.flavor).await?;
            let image_id = cloud.image_id(want.image.as_deref()).await?;
            let mut nets = Vec::new();
            for n in &spec.networks {
                nets.push(cloud.network_id(n).await?);
            }
            let mut servers = Vec::new();
            for i in 0..spec.count {
                let name = instance(&row.id, i);
                if !still_wanted(s, &row.id).await? {
                    return Ok(StepOutcome::Done(json!({"skipped": "released meanwhile"})));
                }
                fenced(s, c).await?;
                let mut ports = Vec::new();
                for (k, net) in nets.iter().enumerate() {
                    ports.push(
                        cloud
                            .ensure_port(&format!("{name}-{k}"), net, &sg, &desc)
                            .await?,
                    );
                }
                let server = cloud
                    .ensure_server(&ServerSpec {
                        name,
                        flavor_id: flavor_id.clone(),
                        image_id: image_id.clone(),
                        port_ids: ports,
                        group_id: group.clone(),
                        metadata: [
                            (MARK.to_string(), row.id.clone()),
                            (MARK_TEAM.to_string(), row.team.clone()),
                        ]
                        .into_iter()
                        .collect(),
                    })
                    .await?;
                servers.push(serde_json::to_value(&server).unwrap_or_default());
            }
            json!({"kind": "gpu", "dc": dc, "project": cloud.project_id, "security_group": {"id": sg, "name": row.id, "ingress": prefixes},
                   "server_group": group, "flavor": want.flavor, "servers": servers})
        }
    };
    s.store.set_request_resources(&row.id, &evidence).await?;
    Ok(StepOutcome::Done(evidence))
}

/// How long `ready` waits per attempt.
fn ready_within(kind: &str) -> Duration {
    match kind {
        "metal" => Duration::from_secs(3 * 3600),
        "gpu" => Duration::from_secs(30 * 60),
        _ => Duration::from_secs(10 * 60),
    }
}

/// What a look at the platform found.
enum Look {
    Ready(Value),
    NotYet(String),
    Failed(Value, String),
}

async fn look(
    s: &Server,
    ctx: &Ctx,
    row: &RequestRow,
    spec: &Spec,
    cloud: Option<&Cloud>,
) -> Result<Look, Retry> {
    let dc = row.dc.as_str();
    match spec.kind.as_str() {
        "vm" => {
            let px = ctx.proxmox(dc)?;
            let mut vms = Vec::new();
            for i in 0..spec.count {
                let name = instance(&row.id, i);
                match px.guest_named(&name).await? {
                    Some(g) if g.status == "running" => {
                        vms.push(serde_json::to_value(&g).unwrap_or_default())
                    }
                    Some(g) => return Ok(Look::NotYet(format!("VM {name} is {}", g.status))),
                    None => {
                        return Err(Retry(format!(
                            "VM {name} is missing; the create runs again"
                        )));
                    }
                }
            }
            Ok(Look::Ready(json!({"kind": "vm", "dc": dc, "vms": vms})))
        }
        "metal" => {
            let maas = ctx.maas(s, dc)?;
            let marked = maas.machines_marked(MARK, &row.id).await?;
            if marked.len() < spec.count as usize {
                return Err(Retry(format!(
                    "{} of {} machines carry the request; the create runs again",
                    marked.len(),
                    spec.count
                )));
            }
            if let Some(m) = marked.iter().find(|m| m.failed()) {
                let why = format!(
                    "machine {} ({}) is {}{}",
                    m.hostname,
                    m.system_id,
                    m.status,
                    if m.error.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", m.error)
                    }
                );
                return Ok(Look::Failed(
                    serde_json::to_value(&marked).unwrap_or_default(),
                    why,
                ));
            }
            if let Some(m) = marked.iter().find(|m| !m.deployed()) {
                return Ok(Look::NotYet(format!(
                    "machine {} is {}",
                    m.hostname, m.status
                )));
            }
            Ok(Look::Ready(
                json!({"kind": "metal", "dc": dc, "machines": marked}),
            ))
        }
        _ => {
            let cloud = cloud.ok_or_else(|| Retry("no OpenStack session".into()))?;
            let mut servers = Vec::new();
            for i in 0..spec.count {
                let name = instance(&row.id, i);
                let Some(srv) = cloud.server_named(&name).await? else {
                    return Err(Retry(format!(
                        "server {name} is missing; the create runs again"
                    )));
                };
                match srv.status.as_str() {
                    "ACTIVE" => {
                        let groups = cloud.server_port_groups(&srv.id).await?;
                        let mut v = serde_json::to_value(&srv).unwrap_or_default();
                        v["security_groups"] = json!(groups);
                        servers.push(v);
                    }
                    "ERROR" => {
                        let why = format!(
                            "server {name} is in ERROR: {}",
                            srv.fault
                                .clone()
                                .unwrap_or_else(|| "no fault recorded".into())
                        );
                        return Ok(Look::Failed(
                            serde_json::to_value(&srv).unwrap_or_default(),
                            why,
                        ));
                    }
                    other => return Ok(Look::NotYet(format!("server {name} is {other}"))),
                }
            }
            let mut out = row
                .resources
                .clone()
                .unwrap_or_else(|| json!({"kind": "gpu", "dc": dc}));
            out["servers"] = json!(servers);
            Ok(Look::Ready(out))
        }
    }
}

async fn ready_step(s: &Arc<Server>, row: &RequestRow, spec: &Spec) -> StepResult {
    let ctx = Ctx::load(s).await?;
    let cloud = if spec.kind == "gpu" {
        Some(ctx.region(&row.dc)?.team(&row.team).await?)
    } else {
        None
    };
    let deadline = tokio::time::Instant::now() + ready_within(&spec.kind);
    let mut every = Duration::from_millis(300);
    loop {
        if !still_wanted(s, &row.id).await? {
            return Ok(StepOutcome::Done(json!({"skipped": "released meanwhile"})));
        }
        match look(s, &ctx, row, spec, cloud.as_ref()).await? {
            Look::Ready(v) => {
                s.store.set_request_resources(&row.id, &v).await?;
                s.store
                    .set_request_state(&row.id, &["provisioning"], "ready", "")
                    .await?;
                return Ok(StepOutcome::Done(v));
            }
            Look::Failed(v, why) => {
                let why = format!("{why}; release the request to free what it holds");
                return fail(s, row, v, why).await;
            }
            Look::NotYet(why) if tokio::time::Instant::now() >= deadline => {
                return Err(Retry(format!(
                    "not ready after {}s: {why}",
                    ready_within(&spec.kind).as_secs()
                )));
            }
            Look::NotYet(_) => {
                tokio::time::sleep(every).await;
                every = (every * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Delete (or release) everything made for the request; what was asked to go.
async fn release_all(
    s: &Server,
    c: &Claim,
    ctx: &Ctx,
    row: &RequestRow,
    spec: &Spec,
) -> Result<Value, Retry> {
    let dc = row.dc.clone();
    if dc.is_empty() {
        return Ok(json!({"nothing": "the request was never placed"}));
    }
    fenced(s, c).await?;
    match spec.kind.as_str() {
        "vm" => {
            let px = ctx.proxmox(&dc)?;
            let mut removed = Vec::new();
            for i in 0..spec.count {
                let name = instance(&row.id, i);
                if px.remove_guest(&name, &marker(row)).await? {
                    removed.push(name);
                }
            }
            Ok(json!({"kind": "vm", "dc": dc, "removed": removed}))
        }
        "metal" => {
            let maas = ctx.maas(s, &dc)?;
            let mut released = Vec::new();
            for m in maas.machines_marked(MARK, &row.id).await? {
                // A machine already releasing or erasing is on its way.
                if m.is(12) || m.is(14) {
                    released.push(m.system_id.clone());
                    continue;
                }
                let comment = format!("released: {}", marker(row));
                if maas
                    .release_marked(&m.system_id, &[(MARK, &row.id)], true, &comment)
                    .await?
                {
                    released.push(m.system_id.clone());
                }
            }
            Ok(json!({"kind": "metal", "dc": dc, "released": released}))
        }
        _ => {
            let cloud = ctx.region(&dc)?.team(&row.team).await?;
            let mut deleted = Vec::new();
            for i in 0..spec.count {
                let name = instance(&row.id, i);
                if cloud.delete_server(&name).await? {
                    deleted.push(name);
                }
            }
            // The ports and groups go once their servers are gone.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
            for i in 0..spec.count {
                let name = instance(&row.id, i);
                while cloud.server_named(&name).await?.is_some() {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Retry(format!("server {name} is still there")));
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                for k in 0..spec.networks.len().max(1) {
                    cloud.delete_port(&format!("{name}-{k}")).await?;
                }
            }
            cloud.delete_server_group(&row.id).await?;
            cloud.delete_security_group(&row.id).await?;
            Ok(json!({"kind": "gpu", "dc": dc, "deleted": deleted}))
        }
    }
}

/// Release again whatever a late create made, wait until nothing is left (released
/// machines Ready again), and record the request released.
async fn released_step(s: &Arc<Server>, c: &Claim, row: &RequestRow, spec: &Spec) -> StepResult {
    // A create step cancelled mid-flight may still finish the call it was making:
    // give it its lease's length before the last look.
    if let Some(w) = s.store.workflow(&row.workflow_id).await?
        && w.state == "cancelled"
        && w.steps
            .iter()
            .any(|st| st.state == "cancelled" && st.attempts > 0)
        && let Some(at) = s
            .store
            .events(&w.id)
            .await?
            .iter()
            .rev()
            .find(|e| e.kind == "cancelled")
            .map(|e| e.at_ms)
    {
        let settle = at + i64::try_from(STEP_LEASE.as_millis()).unwrap_or(30_000) - now_ms();
        if settle > 0 {
            tokio::time::sleep(Duration::from_millis(u64::try_from(settle).unwrap_or(0))).await;
        }
    }
    let ctx = Ctx::load(s).await?;
    let again = release_all(s, c, &ctx, row, spec).await?;
    let dc = row.dc.clone();
    if !dc.is_empty() {
        match spec.kind.as_str() {
            "vm" => {
                let px = ctx.proxmox(&dc)?;
                for i in 0..spec.count {
                    let name = instance(&row.id, i);
                    if px.guest_named(&name).await?.is_some() {
                        return Err(Retry(format!("VM {name} is still there")));
                    }
                }
            }
            "metal" => {
                let maas = ctx.maas(s, &dc)?;
                let mut sids: Vec<String> = strings(&again["released"]);
                if let Some(first) = s.store.evidence(&c.workflow, 0).await? {
                    sids.extend(strings(&first["released"]));
                }
                sids.sort();
                sids.dedup();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(1800);
                for sid in &sids {
                    loop {
                        let m = maas.machine_info(sid).await?;
                        if m.is(4) {
                            break;
                        }
                        if m.failed() || tokio::time::Instant::now() >= deadline {
                            return Err(Retry(format!(
                                "machine {} is {} after its release",
                                m.hostname, m.status
                            )));
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            _ => {
                let cloud = ctx.region(&dc)?.team(&row.team).await?;
                for i in 0..spec.count {
                    let name = instance(&row.id, i);
                    if cloud.server_named(&name).await?.is_some() {
                        return Err(Retry(format!("server {name} is still there")));
                    }
                }
            }
        }
    }
    let ev = json!({"released": true, "dc": dc, "again": again});
    // What was made stays on record, with its release.
    let mut resources = row.resources.clone().unwrap_or_else(|| json!({}));
    resources["released"] = ev.clone();
    s.store.set_request_resources(&row.id, &resources).await?;
    s.store
        .set_request_state(&row.id, &["releasing"], "released", &row.detail)
        .await?;
    Ok(StepOutcome::Done(ev))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example fleet, compiled with its committed lock.
    fn fleet() -> Arc<strata_fleet::Fleet> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet");
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("examples/fleet") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml") {
                    let text = std::fs::read_to_string(&p).expect("read");
                    files.push((p.display().to_string(), text));
                }
            }
        }
        files.sort();
        let mut sources = strata_diagnostics::SourceMap::new();
        for (p, t) in &files {
            sources.add(p.as_str(), t.as_str());
        }
        let lock_text = std::fs::read_to_string(root.join("fleet.lock")).expect("lock");
        let lock = strata_fleet::Lock::parse(&lock_text).expect("lock parses");
        let an = strata_check::analyze(&sources, Vec::new(), &lock, Some(&lock_text), false);
        Arc::new(an.fleet.expect("the example compiles"))
    }

    fn req(kind: &str) -> NewRequest {
        NewRequest {
            kind: kind.into(),
            team: "ml-research".into(),
            name: "train".into(),
            dc: None,
            cores: None,
            memory_mib: None,
            disk_gb: None,
            profile: None,
            flavor: None,
            gpu_model: None,
            gpus: None,
            image: None,
            count: None,
            anti_affinity: None,
            expires_at: None,
            expires_in_s: None,
            networks: None,
        }
    }

    #[test]
    fn requests_resolve_against_the_fleet() {
        let f = fleet();
        let mut vm = req("vm");
        vm.cores = Some(2);
        vm.memory_mib = Some(4096);
        vm.count = Some(3);
        let (spec, u) = resolve(&f, &vm).expect("vm");
        assert_eq!(
            u,
            Usage {
                instances: 3,
                cores: 6,
                ram_mib: 12288,
                gpus: 0
            }
        );
        assert_eq!(spec.networks, ["ml-training"], "the first routed network");
        assert_eq!(spec.vm.as_ref().map(|v| v.disk_gb), Some(32));
        vm.profile = Some("hv-std".into());
        assert!(resolve(&f, &vm).is_err_and(|e| e.contains("`profile`")));

        let mut gpu = req("gpu");
        gpu.gpu_model = Some("NVIDIA H100 SXM5 80GB".into());
        gpu.gpus = Some(8);
        gpu.count = Some(2);
        let (spec, u) = resolve(&f, &gpu).expect("gpu");
        let g = spec.gpu.expect("gpu");
        assert_eq!(
            (g.flavor.as_str(), g.gpu_class.as_str()),
            ("g1.h100x8", "CUSTOM_PCI_10DE_2330")
        );
        assert_eq!((u.gpus, u.cores), (16, 384));
        gpu.gpus = Some(3);
        assert!(resolve(&f, &gpu).is_err_and(|e| e.contains("no flavor of 3")));
        let mut named = req("gpu");
        named.flavor = Some("g1.h100x1".into());
        assert!(resolve(&f, &named).is_ok());
        named.team = "platform".into();
        assert!(
            resolve(&f, &named).is_err_and(|e| e.contains("may not boot")),
            "platform has no GPU flavors"
        );

        let mut metal = req("metal");
        metal.profile = Some("gpu-h100".into());
        let (spec, u) = resolve(&f, &metal).expect("metal");
        assert_eq!(spec.metal.map(|m| m.cpu_count), Some(224));
        assert_eq!((u.cores, u.gpus, u.ram_mib), (112, 8, 2048 * 1024));
        metal.profile = Some("nope".into());
        assert!(resolve(&f, &metal).is_err_and(|e| e.contains("hv-std")));

        let mut bad = req("vm");
        bad.cores = Some(1);
        bad.memory_mib = Some(1024);
        bad.networks = Some(vec!["prod-web".into()]);
        assert!(resolve(&f, &bad).is_err_and(|e| e.contains("not one of team ml-research's")));
        bad.networks = None;
        bad.name = "Not A Label".into();
        assert!(resolve(&f, &bad).is_err());
        let mut k = req("container");
        k.cores = Some(1);
        assert!(resolve(&f, &k).is_err());
    }

    #[test]
    fn team_cidrs_are_the_tenants_subnets() {
        let f = fleet();
        let ml = team_cidrs(&f, "ml-research", "fra1");
        let expected: Vec<String> = f
            .dc("fra1")
            .expect("fra1")
            .tenant_subnets
            .iter()
            .filter(|s| s.tenant == "ml")
            .map(|s| s.subnet.to_string())
            .collect();
        assert_eq!(ml.len(), 2);
        assert!(expected.iter().all(|c| ml.contains(c)));
        assert!(
            team_cidrs(&f, "platform", "fra1")
                .iter()
                .all(|c| !ml.contains(c))
        );
    }

    #[test]
    fn ids_and_states() {
        let id = new_id();
        assert!(plausible_id(&id), "{id}");
        assert!(!plausible_id("req-../../x"));
        assert_eq!(instance(&id, 2), format!("{id}-2"));
        let row = RequestRow {
            id: id.clone(),
            team: "ml".into(),
            name: "n".into(),
            kind: "vm".into(),
            state: "provisioning".into(),
            spec: Value::Null,
            usage: Usage::default(),
            dc: String::new(),
            placement: None,
            resources: None,
            workflow_id: "w".into(),
            release_workflow_id: String::new(),
            created_by: "t".into(),
            approved_by: String::new(),
            created_ms: 0,
            updated_ms: 0,
            expires_ms: 0,
            detail: String::new(),
        };
        let wf = |state: &str, err: Option<&str>| strata_store::WorkflowView {
            id: "w".into(),
            key: "k".into(),
            kind: "request".into(),
            subject: "ml/x".into(),
            state: state.into(),
            steps: vec![strata_store::StepView {
                idx: 0,
                name: "create".into(),
                state: "failed".into(),
                attempts: 8,
                evidence: None,
                error: err.map(str::to_string),
            }],
        };
        assert_eq!(
            effective(&row, Some(&wf("running", None)), None).0,
            "provisioning"
        );
        let (st, why) = effective(&row, Some(&wf("failed", Some("Proxmox refused"))), None);
        assert_eq!((st.as_str(), why.as_str()), ("failed", "Proxmox refused"));
    }
}
