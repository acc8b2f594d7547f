//! The twin's own admin API under `/_twin/` (for tests and operators, not a vendor API).
//!
//! - `GET  /_twin/health`
//! - `GET  /_twin/endpoints` — the endpoints document (as `--write-endpoints` writes it)
//! - `GET  /_twin/counters`, `POST /_twin/counters/reset` — per-endpoint call counts,
//!   the most requests ever in flight per DC and service (`concurrency`), and per DC
//!   the MAAS machines in an active phase (`maas_active`: `active` when MAAS last
//!   served a request, `max_active` the most at once)
//! - `GET  /_twin/metrics` — the same in Prometheus text format
//! - `GET  /_twin/faults`, `PUT /_twin/faults` (`{"5xx": 0.1, ...}`) — per-request faults
//! - `POST /_twin/faults/object` (`{dc, service, id, fault, times?}`), `DELETE` the same
//! - `POST /_twin/dcs/{dc}/{service}/mutate` — change an object behind clients' back
//! - `GET  /_twin/dcs/{dc}/{service}/summary` — object counts
//! - `GET  /_twin/dcs/{dc}/events` — machines joining and leaving the DC's platforms
//!   (what MAAS published, what Proxmox VE and OpenStack did with it; see
//!   [`crate::platform`]), oldest first
//! - `POST /_twin/save` — write the state file now

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::MutateRequest;
use crate::faults::{FaultSpec, ObjectFault, ObjectKey};
use crate::server::TwinState;

pub fn router(state: Arc<TwinState>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"ok": true})) }))
        .route("/endpoints", get(endpoints))
        .route("/counters", get(counters))
        .route("/counters/reset", post(reset))
        .route("/metrics", get(metrics))
        .route("/faults", get(faults).put(set_faults))
        .route("/faults/object", post(set_object).delete(clear_object))
        .route("/dcs/{dc}/{service}/mutate", post(mutate))
        .route("/dcs/{dc}/{service}/summary", get(summary))
        .route("/dcs/{dc}/events", get(events))
        .route("/save", post(save))
        .with_state(state)
}

async fn endpoints(State(s): State<Arc<TwinState>>) -> Json<serde_json::Value> {
    Json(s.endpoints_document())
}

async fn counters(State(s): State<Arc<TwinState>>) -> Json<serde_json::Value> {
    let calls = s.shared.counters.snapshot();
    let total: u64 = calls.iter().map(|c| c.count).sum();
    let peaks: Vec<_> = s
        .shared
        .counters
        .max_in_flight()
        .into_iter()
        .map(|(dc, service, max)| json!({"dc": dc, "service": service, "max_in_flight": max}))
        .collect();
    let maas: Vec<_> = s
        .shared
        .counters
        .max_maas_active()
        .into_iter()
        .map(|(dc, now, max)| json!({"dc": dc, "active": now, "max_active": max}))
        .collect();
    Json(json!({"total": total, "calls": calls, "concurrency": peaks, "maas_active": maas}))
}

async fn reset(State(s): State<Arc<TwinState>>) -> StatusCode {
    s.shared.counters.reset();
    StatusCode::NO_CONTENT
}

async fn metrics(State(s): State<Arc<TwinState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.shared.counters.prometheus_text(),
    )
        .into_response()
}

async fn faults(State(s): State<Arc<TwinState>>) -> Json<serde_json::Value> {
    let objects: Vec<_> = s
        .shared
        .faults
        .objects()
        .into_iter()
        .map(|(k, f)| json!({"dc": k.dc, "service": k.service, "id": k.id, "fault": f.fault, "times": f.times}))
        .collect();
    Json(json!({"spec": s.shared.faults.spec(), "objects": objects}))
}

async fn set_faults(
    State(s): State<Arc<TwinState>>,
    Json(spec): Json<FaultSpec>,
) -> Json<FaultSpec> {
    s.shared.faults.set_spec(spec.clone());
    Json(spec)
}

#[derive(Deserialize)]
struct ObjectFaultRequest {
    dc: String,
    service: String,
    id: String,
    #[serde(default)]
    fault: String,
    #[serde(default)]
    times: Option<u32>,
}

async fn set_object(
    State(s): State<Arc<TwinState>>,
    Json(r): Json<ObjectFaultRequest>,
) -> Response {
    if r.fault.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "`fault` is required"})),
        )
            .into_response();
    }
    s.shared.faults.set_object(
        ObjectKey {
            dc: r.dc,
            service: r.service,
            id: r.id,
        },
        ObjectFault {
            fault: r.fault,
            times: r.times,
        },
    );
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_object(
    State(s): State<Arc<TwinState>>,
    Json(r): Json<ObjectFaultRequest>,
) -> StatusCode {
    if s.shared.faults.clear_object(&ObjectKey {
        dc: r.dc,
        service: r.service,
        id: r.id,
    }) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn mutate(
    State(s): State<Arc<TwinState>>,
    Path((dc, service)): Path<(String, String)>,
    Json(req): Json<MutateRequest>,
) -> Response {
    let Some(svc) = s.service(&dc, &service) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no service {service} in DC {dc}")})),
        )
            .into_response();
    };
    match svc.mutate(&req) {
        Ok(v) => Json(v).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

async fn summary(
    State(s): State<Arc<TwinState>>,
    Path((dc, service)): Path<(String, String)>,
) -> Response {
    match s.service(&dc, &service) {
        Some(svc) => Json(svc.summary()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no service {service} in DC {dc}")})),
        )
            .into_response(),
    }
}

async fn save(State(s): State<Arc<TwinState>>) -> Response {
    match s.save() {
        Ok(Some(p)) => Json(json!({"saved": p.display().to_string()})).into_response(),
        Ok(None) => (
            StatusCode::CONFLICT,
            Json(json!({"error": "the twin runs without --state"})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": format!("{e:#}")})),
        )
            .into_response(),
    }
}

/// The DC's machine events, after every service caught up with what is due.
async fn events(State(s): State<Arc<TwinState>>, Path(dc): Path<String>) -> Response {
    let Some(d) = s.dcs.iter().find(|d| d.ctx.name == dc) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no DC `{dc}`")})),
        )
            .into_response();
    };
    // MAAS publishes what is due; the platforms apply it.
    let _ = (d.maas.summary(), d.proxmox.summary(), d.openstack.summary());
    Json(json!({"events": d.ctx.platform.events()})).into_response()
}
