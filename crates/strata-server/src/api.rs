//! The resource routes of `/api/v1`: who am I, tokens, teams, the audit log and the
//! fleet's inventory (DCs, racks, machines, VMs, IP prefixes) as the last applied
//! commit compiled it.
//!
//! Every handler takes the caller's [`Principal`] (the bearer middleware put it
//! there) and checks it per object: another team's object answers 404 like a missing
//! one. Lists are bounded (`limit` ≤ 500) and paged with an opaque `cursor`; a single
//! object carries an `ETag`, and a conditional `If-None-Match` answers 304.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Server;
use crate::auth::{self, Principal, Role, TokenRequest};
use crate::http::{Problem, RequestId, bad_query, json_body};

type S = State<Arc<Server>>;
type Q<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

pub(crate) fn routes(r: Router<Arc<Server>>) -> Router<Arc<Server>> {
    crate::outbound::routes(crate::requests::routes(crate::ipam::routes(r)))
        .route("/whoami", get(whoami))
        .route("/tokens", get(tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/teams", get(teams))
        .route("/teams/{team}", get(team))
        .route("/audit", get(audit))
        .route("/audit/verify", post(audit_verify))
        .route("/dcs", get(dcs))
        .route("/dcs/{dc}", get(dc))
        .route("/dcs/{dc}/racks", get(racks))
        .route("/machines", get(machines))
        .route("/machines/{dc}/{hostname}", get(machine))
        .route("/vms", get(vms))
        .route("/prefixes", get(prefixes))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .route("/docs", get(crate::openapi::docs))
        .route("/docs/{asset}", get(crate::openapi::docs_asset))
}

const MAX_LIMIT: u32 = 500;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub team: Option<String>,
    pub dc: Option<String>,
    pub rack: Option<String>,
    pub role: Option<String>,
    pub before: Option<i64>,
}

impl ListQuery {
    pub(crate) fn limit(&self) -> Result<u32, Problem> {
        match self.limit {
            None => Ok(100),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-limit",
                format!("limit {n} is out of range: 1 to {MAX_LIMIT}"),
            )),
        }
    }
}

/// A page of `items` whose keys sort ascending: those after `cursor`, at most `limit`,
/// and the cursor of the next page (`None`: the last page).
pub(crate) fn page<T>(
    items: Vec<(String, T)>,
    cursor: Option<&str>,
    limit: u32,
) -> (Vec<T>, Option<String>) {
    let mut out = Vec::new();
    let mut last = None;
    let mut more = false;
    for (k, v) in items {
        if cursor.is_some_and(|c| k.as_str() <= c) {
            continue;
        }
        if out.len() == limit as usize {
            more = true;
            break;
        }
        last = Some(k);
        out.push(v);
    }
    (out, if more { last } else { None })
}

/// `body` with a strong `ETag` over it; 304 when the caller already has it.
pub(crate) fn with_etag(headers: &HeaderMap, body: &Value) -> Response {
    let text = body.to_string();
    let tag = format!(
        "\"{}\"",
        &hex::encode(Sha256::digest(text.as_bytes()))[..32]
    );
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = text.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    if let Ok(v) = HeaderValue::from_str(&tag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

async fn whoami(Extension(who): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "actor": who.actor,
        "grants": who.grants,
        "scopes": {"read": who.read, "write": who.write},
    }))
}

fn no_token(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "token-not-found",
        format!("no token {id}"),
    )
}

async fn create_token(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let req: TokenRequest = json_body(&body)?;
    let (row, token) = auth::issue_token(Some(&who), &req)?;
    s.store.insert_token(&row).await?;
    let after = serde_json::to_value(&row).unwrap_or_default();
    s.audit(
        &who,
        &rid,
        &row.team,
        "token.create",
        &format!("token/{}", row.id),
        &Value::Null,
        &after,
    )
    .await?;
    let mut r = (
        StatusCode::CREATED,
        Json(serde_json::to_value(auth::IssuedToken { token, row }).unwrap_or_default()),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "/api/v1/tokens/{}",
        after["id"].as_str().unwrap_or("")
    )) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// Tokens the caller may manage: a team admin sees the team's; everyone sees their own.
async fn tokens(
    State(s): S,
    Extension(who): Extension<Principal>,
    q: Q<ListQuery>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    let cursor = q.cursor.clone().unwrap_or_default();
    let own = who.actor.strip_prefix("token:").unwrap_or("");
    // Read a page more than asked (rows the caller may not see are skipped).
    let mut items = Vec::new();
    let mut after = cursor;
    let mut next = None;
    'pages: loop {
        let rows = s.store.tokens(q.team.as_deref(), &after, MAX_LIMIT).await?;
        let n = rows.len();
        for row in rows {
            after = row.id.clone();
            let visible = row.id == own || who.role_in(&row.team).is_some_and(|r| r >= Role::Admin);
            if !visible {
                continue;
            }
            if items.len() == limit as usize {
                next = items
                    .last()
                    .and_then(|v: &Value| v["id"].as_str())
                    .map(str::to_string);
                break 'pages;
            }
            items.push(serde_json::to_value(&row).unwrap_or_default());
        }
        if n < MAX_LIMIT as usize {
            break;
        }
    }
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

async fn revoke_token(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let Some(row) = s.store.token(&id).await? else {
        return Err(no_token(&id));
    };
    let own = who.actor == format!("token:{}", row.id);
    if !own {
        let admin = who.role_in(&row.team).is_some_and(|r| r >= Role::Admin);
        if !admin {
            return Err(no_token(&id));
        }
        who.need(&row.team, Role::Admin, "revoking a token")?;
    }
    if !s.store.revoke_token(&id).await? {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "token-revoked",
            format!("token {id} is already revoked"),
        ));
    }
    s.audit(
        &who,
        &rid,
        &row.team,
        "token.revoke",
        &format!("token/{id}"),
        &json!({"revoked": false}),
        &json!({"revoked": true}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The fleet the last applied commit compiled, or a 503 saying why there is none.
async fn fleet(s: &Server) -> Result<(String, Arc<strata_fleet::Fleet>), Problem> {
    match crate::work::applied_fleet(s).await {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-applied-commit",
            "no commit has been applied yet; the inventory appears after the first apply",
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

fn team_json(t: &strata_fleet::Team) -> Value {
    json!({
        "name": t.name,
        "members": t.members,
        "tenants": t.tenants,
        "gpu_flavors": t.gpu_flavors,
        "quota": serde_json::to_value(&t.quota).unwrap_or_default(),
    })
}

async fn teams(
    State(s): S,
    Extension(who): Extension<Principal>,
    q: Q<ListQuery>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    let (_, f) = fleet(&s).await?;
    let all = f
        .teams
        .iter()
        .filter(|t| who.role_in(&t.name).is_some())
        .map(|t| (t.name.clone(), team_json(t)))
        .collect();
    let (items, next) = page(all, q.cursor.as_deref(), limit);
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

fn no_team(t: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "team-not-found",
        format!("no team {t}"),
    )
}

async fn team(
    State(s): S,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    who.see(&name, || no_team(&name))?;
    let (_, f) = fleet(&s).await?;
    let t = f
        .teams
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| no_team(&name))?;
    Ok(with_etag(&headers, &team_json(t)))
}

/// The audit log, newest first: fleet viewers see all of it, a team's admins their
/// team's records. `before` pages (the `seq` of the last record seen).
async fn audit(
    State(s): S,
    Extension(who): Extension<Principal>,
    q: Q<ListQuery>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    let team = match (&q.team, who.fleet_role()) {
        (Some(t), _) => {
            if who.role_in(t).is_none_or(|r| r < Role::Admin) && who.fleet_role().is_none() {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("team {t}'s audit records need the admin role in it"),
                ));
            }
            Some(t.clone())
        }
        (None, Some(_)) => None,
        (None, None) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "team-required",
                "name the team whose records to list (?team=NAME); the whole log needs a fleet grant",
            ));
        }
    };
    let rows = s
        .store
        .audit_entries(team.as_deref(), q.before.unwrap_or(0), limit)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    Ok(Json(json!({"items": rows, "next_before": next})))
}

/// Walk the chain now (fleet admins).
async fn audit_verify(
    State(s): S,
    Extension(who): Extension<Principal>,
) -> Result<Response, Problem> {
    who.see_fleet()?;
    if who.fleet_role() != Some(Role::Admin) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "verifying the audit chain needs the fleet admin role",
        ));
    }
    let chain = s.store.audit_verify().await?;
    let mut body = serde_json::to_value(&chain).unwrap_or_default();
    let Some(at) = chain.broken_at else {
        return Ok(Json(body).into_response());
    };
    // A broken chain is an error, so a problem (RFC 9457) that also carries the
    // chain's fields as extension members.
    body["type"] = json!("https://strata.invalid/problems/audit-chain-broken");
    body["title"] = json!("Conflict");
    body["status"] = json!(409);
    body["code"] = json!("audit-chain-broken");
    body["detail"] = json!(format!(
        "the audit chain is broken at record {at}: {}",
        chain
            .reason
            .as_deref()
            .unwrap_or("a hash or link does not hold")
    ));
    body["reason"] = json!(chain.reason.unwrap_or_default());
    let mut r = (StatusCode::CONFLICT, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    Ok(r)
}

fn dc_json(d: &strata_fleet::Dc) -> Value {
    json!({
        "name": d.name,
        "region": d.region,
        "supernet": d.supernet.to_string(),
        "racks": d.racks.len(),
        "machines": d.machines.len(),
        "vms": d.vms.len(),
        "switches": d.switches.len(),
        "gpus": d.machines.iter().map(|m| u64::from(m.gpus)).sum::<u64>(),
    })
}

/// DCs, racks, machines, VMs and prefixes are the fleet's: any authenticated caller
/// reads them (a team's own objects, its requests and addresses, are elsewhere).
async fn dcs(
    State(s): S,
    Extension(_who): Extension<Principal>,
    q: Q<ListQuery>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    let (sha, f) = fleet(&s).await?;
    let all = f.dcs.iter().map(|d| (d.name.clone(), dc_json(d))).collect();
    let (items, next) = page(all, q.cursor.as_deref(), limit);
    Ok(Json(
        json!({"commit": sha, "items": items, "next_cursor": next}),
    ))
}

fn no_dc(dc: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "dc-not-found",
        format!("no DC {dc} in the applied fleet"),
    )
}

async fn dc(
    State(s): S,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let (_, f) = fleet(&s).await?;
    let d = f.dc(&name).ok_or_else(|| no_dc(&name))?;
    let mut body = dc_json(d);
    body["vlans"] = d
        .vlans
        .iter()
        .map(|v| {
            json!({"role": serde_json::to_value(v.role).unwrap_or_default(), "vid": v.vid, "vni": v.vni,
                   "subnet": v.subnet.to_string(), "gateway": v.gateway.to_string(), "mtu": v.mtu})
        })
        .collect();
    Ok(with_etag(&headers, &body))
}

async fn racks(
    State(s): S,
    Path(name): Path<String>,
    q: Q<ListQuery>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    let (_, f) = fleet(&s).await?;
    let d = f.dc(&name).ok_or_else(|| no_dc(&name))?;
    let all = d
        .racks
        .iter()
        .map(|r| {
            let machines = d.machines.iter().filter(|m| m.rack == r.name).count();
            (
                r.name.clone(),
                json!({"dc": d.name, "name": r.name, "units": r.units, "az": r.az,
                       "leaves": r.leaves, "machines": machines}),
            )
        })
        .collect();
    let (items, next) = page(all, q.cursor.as_deref(), limit);
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

fn machine_json(f: &strata_fleet::Fleet, d: &strata_fleet::Dc, m: &strata_fleet::Machine) -> Value {
    let profile = f.profile(&m.profile);
    let gpus: Vec<Value> = profile
        .and_then(|p| p.gpu.as_ref())
        .map(|g| {
            let g = &g.value;
            vec![json!({"model": g.model, "count": g.count, "vendor_id": g.vendor_id, "device_id": g.device_id})]
        })
        .unwrap_or_default();
    json!({
        "dc": d.name,
        "hostname": m.hostname,
        "fqdn": m.fqdn,
        "serial": m.serial,
        "rack": m.rack,
        "slot": m.slot,
        "profile": m.profile,
        "role": serde_json::to_value(m.role).unwrap_or_default(),
        "az": m.az,
        "cluster": m.cluster,
        "bmc": {"address": m.bmc.address.to_string(), "driver": serde_json::to_value(m.bmc.driver).unwrap_or_default()},
        "cpu_cores": profile.map(|p| p.cpu.cores_per_socket * p.cpu.sockets),
        "memory_gib": profile.map(|p| p.memory_gib),
        "gpu_count": m.gpus,
        "gpus": gpus,
    })
}

async fn machines(State(s): S, q: Q<ListQuery>) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    let (_, f) = fleet(&s).await?;
    let all = f
        .dcs
        .iter()
        .filter(|d| q.dc.as_ref().is_none_or(|x| *x == d.name))
        .flat_map(|d| d.machines.iter().map(move |m| (d, m)))
        .filter(|(_, m)| q.rack.as_ref().is_none_or(|x| *x == m.rack))
        .filter(|(_, m)| {
            q.role.as_ref().is_none_or(|x| {
                serde_json::to_value(m.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .as_deref()
                    == Some(x)
            })
        })
        .map(|(d, m)| (format!("{}/{}", d.name, m.hostname), machine_json(&f, d, m)))
        .collect();
    let (items, next) = page(all, q.cursor.as_deref(), limit);
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

async fn machine(
    State(s): S,
    headers: HeaderMap,
    Path((dc, hostname)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (_, f) = fleet(&s).await?;
    let d = f.dc(&dc).ok_or_else(|| no_dc(&dc))?;
    let m = d
        .machines
        .iter()
        .find(|m| m.hostname == hostname)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "machine-not-found",
                format!("no machine {hostname} in {dc}"),
            )
        })?;
    let mut body = machine_json(&f, d, m);
    // Commissioning facts and validation: the evidence of its latest onboarding.
    // Plan resources name a machine by its serial (it is known before any hostname).
    let id = format!("{}/machine/{}", d.name, m.serial);
    body["onboarding"] = match s
        .store
        .latest_workflow("onboard", &format!(" {id}"))
        .await?
    {
        Some(w) => json!({"workflow": w.id, "state": w.state, "steps": w.steps}),
        None => Value::Null,
    };
    Ok(with_etag(&headers, &body))
}

async fn vms(State(s): S, q: Q<ListQuery>) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    let (_, f) = fleet(&s).await?;
    let all = f
        .dcs
        .iter()
        .filter(|d| q.dc.as_ref().is_none_or(|x| *x == d.name))
        .flat_map(|d| {
            d.vms.iter().map(move |v| {
                (
                    format!("{}/{}", d.name, v.name),
                    json!({"dc": d.name, "name": v.name, "hostname": v.hostname, "cluster": v.cluster,
                           "cores": v.cores, "memory_mib": v.memory_mib, "disk_gb": v.disk_gb,
                           "storage": v.storage, "ha": v.ha, "tags": v.tags}),
                )
            })
        })
        .collect();
    let (items, next) = page(all, q.cursor.as_deref(), limit);
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

/// The fleet's IP prefixes: every DC's VLAN subnets and tenant subnets.
async fn prefixes(State(s): S, q: Q<ListQuery>) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    let (_, f) = fleet(&s).await?;
    let mut all = Vec::new();
    for d in f
        .dcs
        .iter()
        .filter(|d| q.dc.as_ref().is_none_or(|x| *x == d.name))
    {
        for v in &d.vlans {
            let role = serde_json::to_value(v.role)
                .ok()
                .and_then(|r| r.as_str().map(str::to_string))
                .unwrap_or_default();
            all.push((
                format!("{}/vlan/{role}", d.name),
                json!({"dc": d.name, "kind": "vlan", "name": role, "prefix": v.subnet.to_string(),
                       "gateway": v.gateway.to_string(), "vlan": v.vid}),
            ));
        }
        for t in &d.tenant_subnets {
            all.push((
                format!("{}/tenant/{}/{}", d.name, t.tenant, t.network),
                json!({"tenant": t.tenant, "network": t.network, "subnet": t.subnet.to_string(),
                       "gateway": t.gateway.to_string(), "dc": d.name, "kind": "tenant"}),
            ));
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, next) = page(all, q.cursor.as_deref(), limit);
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_everything_once() {
        let items: Vec<(String, u32)> = (0..25).map(|i| (format!("k{i:03}"), i)).collect();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (got, next) = page(items.clone(), cursor.as_deref(), 7);
            seen.extend(got);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        let (got, next) = page(items.clone(), None, 25);
        assert_eq!((got.len(), next), (25, None));
    }

    #[test]
    fn etag_and_not_modified() {
        let body = json!({"a": 1});
        let r = with_etag(&HeaderMap::new(), &body);
        assert_eq!(r.status(), StatusCode::OK);
        let tag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(with_etag(&h, &body).status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn limits_are_bounded() {
        let q = ListQuery {
            limit: Some(501),
            ..Default::default()
        };
        assert!(q.limit().is_err());
        assert_eq!(ListQuery::default().limit().ok(), Some(100));
    }
}
