//! Per-team usage for billing: `GET /api/v1/usage?team=T&from=RFC3339&to=RFC3339&format=json|csv`.
//!
//! Usage is what a team *held* during the window, per team and kind of resource:
//!
//! - **Self-service requests** (`vm`, `metal`, `gpu`; `strata_store::RequestRow`):
//!   held from their creation until they were released (or failed: the time the
//!   request last changed), their expiry if that came first, or now. A request still
//!   waiting for an approval holds nothing yet. What it holds is what it counts
//!   against the quota (cores, GPUs, RAM, for every instance), plus the disks of a
//!   VM request (storage). GPU-hours are split by GPU model: the flavor's model of a
//!   `gpu` request, the hardware profile's of a `metal` one (from the applied fleet).
//! - **IP allocations** (kind `ip` for an address pool's addresses, `prefix` for a
//!   DC block's prefixes, counted as the addresses they span): held from the
//!   allocation until its release, read from the audit log (`ip.allocate`,
//!   `ip.release`), which outlives the allocation rows.
//!
//! Quantities: `core_hours`, `gpu_hours`, `ram_gib_hours`, `storage_gb_hours`,
//! `address_days`, each rounded to 4 decimals. The window defaults to the 30 days
//! before now. A team's admins see its usage; a fleet grant (any role) sees every
//! team's (`team` left out: all of them). `format=csv` answers `text/csv` with a
//! header row.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use strata_store::{AuditEntry, RequestRow, now_ms};

use crate::Server;
use crate::auth::{Principal, Role};
use crate::http::{Problem, bad_query};

type S = State<Arc<Server>>;

const HOUR_MS: f64 = 3_600_000.0;
const DAY_MS: f64 = 86_400_000.0;
const DEFAULT_WINDOW_MS: i64 = 30 * 86_400_000;

pub(crate) fn routes(r: Router<Arc<Server>>) -> Router<Arc<Server>> {
    r.route("/usage", get(usage))
}

/// Something a team held from `start_ms` to `end_ms`, and how much of each resource.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Held {
    pub team: String,
    /// `vm`, `metal`, `gpu`, `ip` or `prefix`.
    pub kind: String,
    /// Empty when none or unknown.
    pub gpu_model: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub cores: f64,
    pub gpus: f64,
    pub ram_gib: f64,
    pub storage_gb: f64,
    pub addresses: f64,
}

/// One line of the export.
#[derive(Clone, Debug, PartialEq, Default, Serialize)]
pub struct UsageLine {
    pub team: String,
    pub kind: String,
    pub gpu_model: Option<String>,
    /// How many requests or allocations it sums.
    pub count: u64,
    pub core_hours: f64,
    pub gpu_hours: f64,
    pub ram_gib_hours: f64,
    pub storage_gb_hours: f64,
    pub address_days: f64,
}

/// Milliseconds of `start..end` within `from..to`.
pub fn overlap_ms(start: i64, end: i64, from: i64, to: i64) -> i64 {
    (end.min(to) - start.max(from)).max(0)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// What request `r` held, as of `now`; `metal_gpu_model` is the GPU model of a
/// `metal` request's hardware profile (when the fleet knows it). `None`: nothing
/// (it is still waiting for an approval).
pub fn request_held(r: &RequestRow, now: i64, metal_gpu_model: Option<&str>) -> Option<Held> {
    if r.state == "approval" {
        return None;
    }
    let mut end = match r.state.as_str() {
        "released" | "failed" => r.updated_ms,
        _ => now,
    };
    if r.expires_ms > 0 {
        end = end.min(r.expires_ms);
    }
    let count = r.spec["count"].as_u64().unwrap_or(1) as f64;
    let storage_gb = r.spec["vm"]["disk_gb"]
        .as_u64()
        .map_or(0.0, |g| g as f64 * count);
    let gpu_model = match r.kind.as_str() {
        "gpu" => r.spec["gpu"]["gpu_model"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        "metal" if r.usage.gpus > 0 => metal_gpu_model.unwrap_or("").to_string(),
        _ => String::new(),
    };
    Some(Held {
        team: r.team.clone(),
        kind: r.kind.clone(),
        gpu_model,
        start_ms: r.created_ms,
        end_ms: end.max(r.created_ms),
        cores: r.usage.cores as f64,
        gpus: r.usage.gpus as f64,
        ram_gib: r.usage.ram_mib as f64 / 1024.0,
        storage_gb,
        addresses: 0.0,
    })
}

/// The IP allocations held, from the audit log's `ip.allocate` and `ip.release`
/// records (in `seq` order), as of `now`. `prefix_pools`: the pools that hand out
/// prefixes (their allocations span many addresses).
pub fn ip_held(records: &[AuditEntry], prefix_pools: &[String], now: i64) -> Vec<Held> {
    // id → held; an idempotent retry audits the same allocation again: once.
    let mut by_id: BTreeMap<String, Held> = BTreeMap::new();
    for e in records {
        match e.action.as_str() {
            "ip.allocate" => {
                let a = &e.after;
                let Some(id) = a["id"].as_str() else { continue };
                if by_id.contains_key(id) {
                    continue;
                }
                let prefix = a["pool"]
                    .as_str()
                    .is_some_and(|p| prefix_pools.iter().any(|x| x == p));
                let addresses = if prefix {
                    a["address"]
                        .as_str()
                        .and_then(|t| t.parse::<ipnet::IpNet>().ok())
                        .map_or(1.0, |n| {
                            2f64.powi(i32::from(n.max_prefix_len() - n.prefix_len()))
                        })
                } else {
                    1.0
                };
                by_id.insert(
                    id.to_string(),
                    Held {
                        team: a["team"].as_str().unwrap_or(&e.team).to_string(),
                        kind: if prefix { "prefix" } else { "ip" }.into(),
                        gpu_model: String::new(),
                        start_ms: a["created_ms"].as_i64().unwrap_or(e.at_ms),
                        end_ms: now,
                        addresses,
                        ..Held::default()
                    },
                );
            }
            "ip.release" => {
                if let Some(h) = e.before["id"].as_str().and_then(|id| by_id.get_mut(id)) {
                    h.end_ms = e.at_ms.max(h.start_ms);
                }
            }
            _ => {}
        }
    }
    by_id.into_values().collect()
}

/// The usage within `from..to`, per team, kind and GPU model, sorted; lines with
/// nothing in the window are left out.
pub fn totals(held: &[Held], from: i64, to: i64) -> Vec<UsageLine> {
    let mut sums: BTreeMap<(String, String, String), UsageLine> = BTreeMap::new();
    for h in held {
        let ms = overlap_ms(h.start_ms, h.end_ms, from, to);
        if ms == 0 {
            continue;
        }
        let hours = ms as f64 / HOUR_MS;
        let line = sums
            .entry((h.team.clone(), h.kind.clone(), h.gpu_model.clone()))
            .or_insert_with(|| UsageLine {
                team: h.team.clone(),
                kind: h.kind.clone(),
                gpu_model: (!h.gpu_model.is_empty()).then(|| h.gpu_model.clone()),
                ..UsageLine::default()
            });
        line.count += 1;
        line.core_hours += h.cores * hours;
        line.gpu_hours += h.gpus * hours;
        line.ram_gib_hours += h.ram_gib * hours;
        line.storage_gb_hours += h.storage_gb * hours;
        line.address_days += h.addresses * (ms as f64 / DAY_MS);
    }
    sums.into_values()
        .map(|mut l| {
            l.core_hours = round4(l.core_hours);
            l.gpu_hours = round4(l.gpu_hours);
            l.ram_gib_hours = round4(l.ram_gib_hours);
            l.storage_gb_hours = round4(l.storage_gb_hours);
            l.address_days = round4(l.address_days);
            l
        })
        .collect()
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str =
    "team,kind,gpu_model,count,core_hours,gpu_hours,ram_gib_hours,storage_gb_hours,address_days";

/// One CSV field: quoted when it needs to be (RFC 4180), and never read as a
/// formula by a spreadsheet.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The export as CSV, with a header row.
pub fn csv(lines: &[UsageLine]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    for l in lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\r\n",
            field(&l.team),
            field(&l.kind),
            field(l.gpu_model.as_deref().unwrap_or("")),
            l.count,
            l.core_hours,
            l.gpu_hours,
            l.ram_gib_hours,
            l.storage_gb_hours,
            l.address_days
        ));
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    team: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

fn bad(code: &'static str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, code, detail)
}

fn time_ms(name: &str, text: &str) -> Result<i64, Problem> {
    let t = strata_providers::openstack::parse_time(text).ok_or_else(|| {
        bad(
            "bad-time",
            format!("{name} {text:?} is not an RFC 3339 time (2026-05-01T00:00:00Z)"),
        )
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0))
}

async fn usage(
    State(s): S,
    Extension(who): Extension<Principal>,
    q: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let csv_out = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(f) => return Err(bad("bad-format", format!("format {f:?} is json or csv"))),
    };
    match (&q.team, who.fleet_role()) {
        (_, Some(_)) => {}
        (Some(t), None) => {
            if who.role_in(t).is_none_or(|r| r < Role::Admin) {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("team {t}'s usage needs the admin role in it"),
                ));
            }
        }
        (None, None) => {
            return Err(bad(
                "team-required",
                "name the team whose usage to export (?team=NAME); every team's needs a fleet grant",
            ));
        }
    }
    let now = now_ms();
    let to = match &q.to {
        Some(t) => time_ms("to", t)?,
        None => now,
    };
    let from = match &q.from {
        Some(t) => time_ms("from", t)?,
        None => to - DEFAULT_WINDOW_MS,
    };
    if from >= to {
        return Err(bad("bad-window", "from is before to"));
    }
    let team = q.team.as_deref();
    let mut held = Vec::new();
    // Requests, every page.
    let fleet = crate::work::applied_fleet(&s).await.ok().flatten();
    let metal_model = |r: &RequestRow| -> Option<String> {
        let profile = r.spec["metal"]["profile"].as_str()?;
        let (_, f) = fleet.as_ref()?;
        f.profile(profile)?
            .gpu
            .as_ref()
            .map(|g| g.value.model.to_string())
    };
    let mut cursor = String::new();
    loop {
        let page = s.store.requests(team, &cursor, 1000).await?;
        for r in &page {
            if let Some(h) = request_held(r, now, metal_model(r).as_deref()) {
                held.push(h);
            }
        }
        match page.last() {
            Some(last) if page.len() == 1000 => cursor = last.id.clone(),
            _ => break,
        }
    }
    // IP allocations, from the audit log.
    let prefix_pools: Vec<String> = s
        .store
        .pools()
        .await
        .map_err(crate::ipam::ipam_problem)?
        .into_iter()
        .filter(|p| p.kind == strata_store::ipam::PoolKind::Prefixes)
        .map(|p| p.id)
        .collect();
    let mut records = Vec::new();
    let mut after = 0;
    loop {
        let page = s.store.audit_after(after, team, Some("ip."), 1000).await?;
        let n = page.len();
        if let Some(last) = page.last() {
            after = last.seq;
        }
        records.extend(page);
        if n < 1000 {
            break;
        }
    }
    held.extend(ip_held(&records, &prefix_pools, now));
    let lines = totals(&held, from, to);
    if csv_out {
        let mut r = csv(&lines).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        let name = format!(
            "attachment; filename=\"strata-usage-{}.csv\"",
            team.unwrap_or("all")
        );
        if let Ok(v) = HeaderValue::from_str(&name) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        return Ok(r);
    }
    let by_kind: HashMap<&str, usize> = lines.iter().fold(HashMap::new(), |mut m, l| {
        *m.entry(l.kind.as_str()).or_default() += 1;
        m
    });
    Ok(Json(json!({
        "team": team,
        "from": crate::requests::place::rfc3339(from),
        "to": crate::requests::place::rfc3339(to),
        "generated_at": crate::requests::place::rfc3339(now),
        "kinds": by_kind,
        "items": serde_json::to_value(&lines).unwrap_or(Value::Null),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_store::Usage;

    const H: i64 = 3_600_000;

    fn req(kind: &str, state: &str, created: i64, updated: i64, expires: i64) -> RequestRow {
        RequestRow {
            id: "r1".into(),
            team: "ml".into(),
            name: "n".into(),
            kind: kind.into(),
            state: state.into(),
            spec: json!({"count": 2, "vm": {"cores": 4, "memory_mib": 8192, "disk_gb": 50},
                         "gpu": {"gpu_model": "H100"}}),
            usage: Usage {
                instances: 2,
                cores: 8,
                ram_mib: 16384,
                gpus: if kind == "vm" { 0 } else { 4 },
            },
            dc: "fra1".into(),
            placement: None,
            resources: None,
            workflow_id: "w".into(),
            release_workflow_id: String::new(),
            created_by: "t".into(),
            approved_by: String::new(),
            created_ms: created,
            updated_ms: updated,
            expires_ms: expires,
            detail: String::new(),
        }
    }

    #[test]
    fn overlap_is_clipped_to_the_window() {
        assert_eq!(overlap_ms(0, 10, 2, 5), 3);
        assert_eq!(overlap_ms(0, 10, -5, 50), 10);
        assert_eq!(overlap_ms(0, 10, 10, 20), 0);
        assert_eq!(overlap_ms(5, 3, 0, 10), 0);
    }

    #[test]
    fn a_vm_request_is_core_ram_and_storage_hours() {
        // Released after 3 hours: 8 cores × 3 h, 16 GiB × 3 h, 2 × 50 GB × 3 h.
        let h = request_held(&req("vm", "released", 0, 3 * H, 0), 100 * H, None).expect("held");
        let t = totals(&[h], 0, 10 * H);
        assert_eq!(t.len(), 1);
        let l = &t[0];
        assert_eq!((l.team.as_str(), l.kind.as_str(), l.count), ("ml", "vm", 1));
        assert_eq!(l.core_hours, 24.0);
        assert_eq!(l.ram_gib_hours, 48.0);
        assert_eq!(l.storage_gb_hours, 300.0);
        assert_eq!(l.gpu_hours, 0.0);
        assert_eq!(l.gpu_model, None);
        // Only the part within the window counts.
        let h = request_held(&req("vm", "released", 0, 3 * H, 0), 100 * H, None).expect("held");
        assert_eq!(totals(&[h], 2 * H, 10 * H)[0].core_hours, 8.0);
    }

    #[test]
    fn live_requests_run_until_now_or_their_expiry() {
        let live = request_held(&req("gpu", "ready", H, H, 0), 5 * H, None).expect("held");
        assert_eq!((live.start_ms, live.end_ms), (H, 5 * H));
        let expired = request_held(&req("gpu", "ready", H, H, 2 * H), 5 * H, None).expect("held");
        assert_eq!(expired.end_ms, 2 * H);
        let failed =
            request_held(&req("gpu", "failed", H, H + H / 2, 0), 5 * H, None).expect("held");
        assert_eq!(failed.end_ms, H + H / 2);
        assert!(request_held(&req("gpu", "approval", H, H, 0), 5 * H, None).is_none());
    }

    #[test]
    fn gpu_hours_are_split_by_model() {
        let a = request_held(&req("gpu", "ready", 0, 0, 0), 2 * H, None).expect("a");
        let mut other = req("gpu", "ready", 0, 0, 0);
        other.spec["gpu"]["gpu_model"] = json!("A100");
        let b = request_held(&other, 2 * H, None).expect("b");
        let metal = request_held(&req("metal", "ready", 0, 0, 0), 2 * H, Some("H100")).expect("m");
        let unknown = request_held(&req("metal", "ready", 0, 0, 0), 2 * H, None).expect("u");
        let t = totals(&[a.clone(), a, b, metal, unknown], 0, 2 * H);
        let got: Vec<(&str, Option<&str>, u64, f64)> = t
            .iter()
            .map(|l| {
                (
                    l.kind.as_str(),
                    l.gpu_model.as_deref(),
                    l.count,
                    l.gpu_hours,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("gpu", Some("A100"), 1, 8.0),
                ("gpu", Some("H100"), 2, 16.0),
                ("metal", None, 1, 8.0),
                ("metal", Some("H100"), 1, 8.0),
            ]
        );
    }

    fn rec(seq: i64, at: i64, action: &str, a: Value) -> AuditEntry {
        let (before, after) = if action == "ip.release" {
            (a, Value::Null)
        } else {
            (Value::Null, a)
        };
        AuditEntry {
            seq,
            at_ms: at,
            actor: "t".into(),
            team: "ml".into(),
            action: action.into(),
            object: "ip/x".into(),
            before,
            after,
            request_id: "r".into(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn addresses_are_held_from_allocation_to_release() {
        let a = json!({"id": "a1", "pool": "fra1.storage", "address": "10.1.0.9/24", "team": "ml", "created_ms": 0});
        let p = json!({"id": "p1", "pool": "fra1.supernet", "address": "10.64.3.0/29", "team": "ml", "created_ms": 0});
        let records = [
            rec(1, 0, "ip.allocate", a.clone()),
            rec(2, 0, "ip.allocate", p),
            // An idempotent retry audits the same allocation again: counted once.
            rec(3, 5, "ip.allocate", a.clone()),
            rec(4, 12 * H, "ip.release", a),
        ];
        let held = ip_held(&records, &["fra1.supernet".to_string()], 48 * H);
        let t = totals(&held, 0, 48 * H);
        let got: Vec<(&str, u64, f64)> = t
            .iter()
            .map(|l| (l.kind.as_str(), l.count, l.address_days))
            .collect();
        // 1 address for half a day; a /29 (8 addresses) for two days.
        assert_eq!(got, [("ip", 1, 0.5), ("prefix", 1, 16.0)]);
    }

    #[test]
    fn csv_has_a_header_and_quotes_what_it_must() {
        let lines = [UsageLine {
            team: "ml".into(),
            kind: "gpu".into(),
            gpu_model: Some("NVIDIA \"H100\", 80GB".into()),
            count: 2,
            core_hours: 1.5,
            ..UsageLine::default()
        }];
        let text = csv(&lines);
        let mut rows = text.lines();
        assert_eq!(rows.next(), Some(CSV_HEADER));
        assert_eq!(
            rows.next(),
            Some("ml,gpu,\"NVIDIA \"\"H100\"\", 80GB\",2,1.5,0,0,0,0")
        );
        assert_eq!(field("=cmd()"), "'=cmd()");
        assert_eq!(csv(&[]).trim_end(), CSV_HEADER);
    }
}
