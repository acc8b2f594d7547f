//! Outbound webhooks: the fleet's changes pushed to other systems (a CMDB), signed,
//! retried and in order.
//!
//! - **The events are the audit log.** Every mutation already writes one record in
//!   `seq` order (`ip.allocate`, `ip.release`, `request.*`, `token.*`,
//!   `machine.decommission`, ...), and the server's own machine lifecycle changes
//!   write one too ([`machine_record`]: `machine.in-service` and `machine.quarantine`
//!   from onboarding, `machine.retired` when a decommission ends). A subscription
//!   (`POST /api/v1/webhooks {url, secret, events, team}`) names action patterns
//!   (`*`, `ip.*`, `machine.decommission`) and receives every record from its
//!   creation on that matches: all teams' records (a fleet admin's subscription), or
//!   one team's (that team's admins).
//! - **Delivery** (the leader only, one task per subscription): `POST url` with the
//!   record as JSON `{id, seq, at, actor, team, action, object, before, after,
//!   request_id}` and the headers `X-Strata-Event` (the action), `X-Strata-Delivery`
//!   (the `id`: the same on every retry of one record to one subscription, to
//!   deduplicate on), `X-Strata-Attempt` and `X-Strata-Signature-256:
//!   sha256=<hex HMAC-SHA256 of the body under the secret>`. A 2xx within
//!   [`ATTEMPT_TIMEOUT`] delivers it; anything else (redirects are not followed) is
//!   retried after 1 s, 2 s, 4 s, ... up to 5 minutes, for as long as it takes, and no
//!   later record goes before it: records arrive in `seq` order, so each object's
//!   changes arrive in the order they happened. The cursor is in the store (moved by
//!   compare-and-set), so a restart or a new leader resumes where it stood; a record
//!   may then arrive twice (at least once), never out of order.
//! - **The secret** is sealed at rest ([`crate::sealed`], bound to the subscription's
//!   id) and never returned; every subscription change is audited; the URL is
//!   `http`/`https` without credentials. `GET /api/v1/webhooks/{id}/deliveries`
//!   lists the last attempts (outcome, HTTP status, error).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use strata_store::{AuditEntry, Claim, DeliveryRow, StoreError, WebhookRow, backoff_ms, now_ms};
use tokio::sync::watch;

use crate::Server;
use crate::auth::{FLEET, Principal, Role};
use crate::http::{Problem, RequestId, bad_query, json_body};

type S = State<Arc<Server>>;

/// How long one delivery attempt may take (connect, send, the receiver's answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle subscription looks for new records.
const IDLE: Duration = Duration::from_millis(500);
/// Records read at once per subscription.
const BATCH: u32 = 100;
/// Subscriptions per team (the fleet's counting as one team).
const MAX_PER_TEAM: usize = 25;
/// The actor of records the server writes by itself.
pub const SERVER_ACTOR: &str = "strata serve";

pub(crate) fn routes(r: Router<Arc<Server>>) -> Router<Arc<Server>> {
    crate::usage::routes(r)
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(show).delete(remove))
        .route("/webhooks/{id}/deliveries", get(deliveries))
}

// ---------------------------------------------------------------------------
// Pure parts: validation, matching, the payload and its signature

/// A subscription's URL: `http` or `https`, a host, no credentials, no fragment.
pub fn check_url(text: &str) -> Result<url::Url, String> {
    if text.len() > 2000 {
        return Err("a webhook URL is at most 2000 characters".into());
    }
    let u = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme is {}: a webhook URL is http:// or https://",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("a webhook URL names a host".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(
            "a webhook URL carries no credentials (user:password@): the secret signs each delivery"
                .into(),
        );
    }
    if u.fragment().is_some() {
        return Err("a webhook URL has no #fragment".into());
    }
    Ok(u)
}

/// The action patterns: 1 to 32 of `*`, `prefix.*` or an exact action (lowercase
/// letters, digits, `.`, `-`, `_`).
pub fn check_events(events: &[String]) -> Result<(), String> {
    if events.is_empty() || events.len() > 32 {
        return Err(
            "events lists 1 to 32 action patterns (\"*\", \"ip.*\", \"machine.decommission\")"
                .into(),
        );
    }
    for e in events {
        let stem = e.strip_suffix(".*").unwrap_or(e);
        let ok = e == "*"
            || (!stem.is_empty()
                && e.len() <= 100
                && stem.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
                })
                && !stem.starts_with('.')
                && !stem.ends_with('.'));
        if !ok {
            return Err(format!(
                "event pattern {e:?} is not \"*\", \"prefix.*\" or an action such as \"ip.allocate\""
            ));
        }
    }
    Ok(())
}

/// Whether `action` matches one of `patterns`.
pub fn wanted(patterns: &[String], action: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == action
            || p.strip_suffix(".*").is_some_and(|stem| {
                action
                    .strip_prefix(stem)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    })
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length: this never fails.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// Unix ms as RFC 3339 with milliseconds (UTC).
pub fn rfc3339_ms(ms: i64) -> String {
    let s = crate::requests::place::rfc3339(ms);
    format!("{}.{:03}Z", s.trim_end_matches('Z'), ms.rem_euclid(1000))
}

/// The delivery id of record `seq` for subscription `sub` (the same on every retry).
pub fn delivery_id(sub: &str, seq: i64) -> String {
    format!("{sub}-{seq}")
}

/// The JSON body delivered for audit record `e`.
pub fn payload(id: &str, e: &AuditEntry) -> Vec<u8> {
    json!({
        "id": id,
        "seq": e.seq,
        "at": rfc3339_ms(e.at_ms),
        "actor": e.actor,
        "team": e.team,
        "action": e.action,
        "object": e.object,
        "before": e.before,
        "after": e.after,
        "request_id": e.request_id,
    })
    .to_string()
    .into_bytes()
}

// ---------------------------------------------------------------------------
// The API

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    url: String,
    secret: String,
    events: Vec<String>,
    /// Only this team's records (default: every record, fleet admins only).
    #[serde(default)]
    team: Option<String>,
}

fn invalid(code: &'static str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
}

fn no_webhook(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "webhook-not-found",
        format!("no webhook subscription {id}"),
    )
}

/// What a caller sees of a subscription: never its secret.
fn view(w: &WebhookRow) -> Value {
    json!({
        "id": w.id,
        "url": w.url,
        "events": w.events,
        "team": if w.team == FLEET { Value::Null } else { json!(w.team) },
        "created_by": w.created_by,
        "created_at": rfc3339_ms(w.created_ms),
        "cursor_seq": w.cursor_seq,
        "delivered": w.delivered,
        "failing": w.attempts > 0,
        "attempts": w.attempts,
        "next_attempt_at": (w.attempts > 0).then(|| rfc3339_ms(w.next_attempt_ms)),
        "last_error": (!w.last_error.is_empty()).then_some(&w.last_error),
    })
}

/// Subscriptions are their team's admins' (a fleet-wide one the fleet admins').
fn manages(who: &Principal, team: &str) -> bool {
    who.role_in(team).is_some_and(|r| r >= Role::Admin)
}

async fn create(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let req: NewWebhook = json_body(&body)?;
    let team = req.team.clone().unwrap_or_else(|| FLEET.to_string());
    if team != FLEET
        && (team.is_empty()
            || team.len() > 63
            || !team
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        return Err(invalid(
            "bad-team",
            "a team is a DNS label (lowercase letters, digits, '-'); leave it out for every team's records",
        ));
    }
    who.need(
        &team,
        Role::Admin,
        if team == FLEET {
            "subscribing to every team's records"
        } else {
            "subscribing to a team's records"
        },
    )?;
    let url = check_url(req.url.trim()).map_err(|d| invalid("bad-url", d))?;
    check_events(&req.events).map_err(|d| invalid("bad-events", d))?;
    let n = req.secret.chars().count();
    if !(16..=256).contains(&n) || req.secret.trim() != req.secret {
        return Err(invalid(
            "bad-secret",
            "the signing secret is 16 to 256 characters, without surrounding whitespace",
        ));
    }
    if s.store.webhooks(Some(&team)).await?.len() >= MAX_PER_TEAM {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "too-many-webhooks",
            format!("at most {MAX_PER_TEAM} subscriptions per team; delete one first"),
        ));
    }
    let mut raw = [0u8; 8];
    rand::fill(&mut raw);
    let id = format!("wh_{}", hex::encode(raw));
    let mut events = req.events.clone();
    events.sort();
    events.dedup();
    let row = WebhookRow {
        secret_sealed: s.sealer.seal(req.secret.as_bytes(), &id),
        id: id.clone(),
        url: url.to_string(),
        events,
        team: team.clone(),
        created_by: who.actor.clone(),
        created_ms: now_ms(),
        // From now on: the records after the newest one.
        cursor_seq: s.store.audit_head().await?,
        attempts: 0,
        next_attempt_ms: 0,
        last_error: String::new(),
        delivered: 0,
    };
    s.store.insert_webhook(&row).await?;
    let after = view(&row);
    s.audit(
        &who,
        &rid,
        &team,
        "webhook.create",
        &format!("webhook/{id}"),
        &Value::Null,
        &after,
    )
    .await?;
    let mut r = (StatusCode::CREATED, Json(after)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/webhooks/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// The subscriptions the caller manages.
async fn list(State(s): S, Extension(who): Extension<Principal>) -> Result<Json<Value>, Problem> {
    let items: Vec<Value> = s
        .store
        .webhooks(None)
        .await?
        .iter()
        .filter(|w| manages(&who, &w.team))
        .map(view)
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn visible(s: &Server, who: &Principal, id: &str) -> Result<WebhookRow, Problem> {
    match s.store.webhook(id).await? {
        Some(w) if manages(who, &w.team) => Ok(w),
        _ => Err(no_webhook(id)),
    }
}

async fn show(
    State(s): S,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(view(&visible(&s, &who, &id).await?)))
}

async fn remove(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let w = visible(&s, &who, &id).await?;
    who.need(&w.team, Role::Admin, "deleting a webhook subscription")?;
    if !s.store.delete_webhook(&id).await? {
        return Err(no_webhook(&id));
    }
    s.audit(
        &who,
        &rid,
        &w.team,
        "webhook.delete",
        &format!("webhook/{id}"),
        &view(&w),
        &Value::Null,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    limit: Option<u32>,
}

/// The last attempts, newest first (`limit`: 1 to 200, default 50).
async fn deliveries(
    State(s): S,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    q: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-limit",
            format!("limit {limit} is out of range: 1 to 200"),
        ));
    }
    let w = visible(&s, &who, &id).await?;
    let items: Vec<Value> = s
        .store
        .webhook_deliveries(&w.id, limit)
        .await?
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "delivery": delivery_id(&w.id, d.seq),
                "seq": d.seq,
                "action": d.action,
                "attempt": d.attempt,
                "at": rfc3339_ms(d.at_ms),
                "duration_ms": d.duration_ms,
                "outcome": d.outcome,
                "http_status": (d.http_status > 0).then_some(d.http_status),
                "error": (!d.error.is_empty()).then_some(&d.error),
            })
        })
        .collect();
    Ok(Json(json!({"subscription": view(&w), "items": items})))
}

// ---------------------------------------------------------------------------
// Records of the server's own machine changes

/// How [`machine_record`] finds a machine in the applied fleet.
pub(crate) enum MachineKey<'a> {
    Serial(&'a str),
    Hostname(&'a str),
}

/// Append an audit record (actor [`SERVER_ACTOR`], request id the step's key) for a
/// lifecycle change the server made to machine `key` of `dc` itself: its object is
/// `machine/{dc}/{hostname}` like the API's, its `after` the machine's facts from
/// the applied fleet (hostname, serial, profile, role, GPUs) with `extra` merged in.
/// The outbound webhooks deliver it like any record. A failure to record is logged;
/// it never fails the step (the change happened). A step that runs again after a
/// crash may record twice; the request id tells the copies apart from new changes.
pub(crate) async fn machine_record(
    s: &Server,
    claim: &Claim,
    dc: &str,
    key: MachineKey<'_>,
    action: &str,
    extra: Value,
) {
    let mut after = json!({"dc": dc, "workflow": claim.workflow});
    let mut name = match key {
        MachineKey::Serial(x) | MachineKey::Hostname(x) => x.to_string(),
    };
    if let Ok(Some((_, fleet))) = crate::work::applied_fleet(s).await
        && let Some(d) = fleet.dc(dc)
        && let Some(m) = d.machines.iter().find(|m| match key {
            MachineKey::Serial(x) => m.serial == x,
            MachineKey::Hostname(x) => m.hostname == x,
        })
    {
        let gpus: Vec<Value> = fleet
            .profile(&m.profile)
            .and_then(|p| p.gpu.as_ref())
            .map(|g| vec![json!({"model": g.value.model, "count": g.value.count})])
            .unwrap_or_default();
        after["hostname"] = json!(m.hostname);
        after["serial"] = json!(m.serial);
        after["profile"] = json!(m.profile);
        after["role"] = serde_json::to_value(m.role).unwrap_or_default();
        after["rack"] = json!(m.rack);
        after["gpu_count"] = json!(m.gpus);
        after["gpus"] = json!(gpus);
        name = m.hostname.clone();
    } else if let MachineKey::Serial(x) = key {
        after["serial"] = json!(x);
    }
    if let (Some(a), Value::Object(e)) = (after.as_object_mut(), extra) {
        a.extend(e);
    }
    let object = format!("machine/{dc}/{name}");
    let key = claim.key();
    if let Err(e) = s
        .store
        .audit(&strata_store::NewAudit {
            actor: SERVER_ACTOR,
            team: FLEET,
            action,
            object: &object,
            before: &Value::Null,
            after: &after,
            request_id: &key,
        })
        .await
    {
        tracing::error!(error = %e, action, %object, "cannot write the audit record");
    }
}

// ---------------------------------------------------------------------------
// Delivery

/// The HTTP clients: one through the system's proxy settings, one without a proxy
/// for loopback receivers.
struct Clients {
    proxied: reqwest::Client,
    direct: reqwest::Client,
}

impl Clients {
    fn new() -> Result<Clients, reqwest::Error> {
        let b = || {
            reqwest::Client::builder()
                .timeout(ATTEMPT_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("strata-webhooks/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Clients {
            proxied: b().build()?,
            direct: b().no_proxy().build()?,
        })
    }

    fn for_url(&self, url: &str) -> &reqwest::Client {
        let loopback = url::Url::parse(url).ok().is_some_and(|u| match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        });
        if loopback {
            &self.direct
        } else {
            &self.proxied
        }
    }
}

/// The deliverer: while this instance leads, one task per subscription (started for
/// new ones, stopped for deleted ones); none otherwise.
pub(crate) async fn delivery_loop(s: Arc<Server>, mut rx: watch::Receiver<bool>) {
    let clients = match Clients::new() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(error = %e, "cannot make the webhook HTTP client; no webhook is delivered");
            return;
        }
    };
    let mut workers: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        if s.is_leader() {
            match s.store.webhooks(None).await {
                Ok(subs) => {
                    let ids: HashSet<&str> = subs.iter().map(|w| w.id.as_str()).collect();
                    workers.retain(|id, h| {
                        let keep = ids.contains(id.as_str()) && !h.is_finished();
                        if !keep {
                            h.abort();
                        }
                        keep
                    });
                    for w in &subs {
                        if !workers.contains_key(&w.id) {
                            let task = tokio::spawn(subscription_worker(
                                s.clone(),
                                clients.clone(),
                                w.id.clone(),
                            ));
                            workers.insert(w.id.clone(), task);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list the webhook subscriptions"),
            }
        } else {
            for (_, h) in workers.drain() {
                h.abort();
            }
        }
        if crate::stopped_within(&mut rx, Duration::from_secs(1)).await {
            break;
        }
    }
    for (_, h) in workers.drain() {
        h.abort();
    }
}

async fn subscription_worker(s: Arc<Server>, clients: Arc<Clients>, id: String) {
    while s.is_leader() {
        let w = match s.store.webhook(&id).await {
            Ok(Some(w)) => w,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, subscription = %id, "cannot read the webhook subscription");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let wait = w.next_attempt_ms - now_ms();
        if wait > 0 {
            // Wake at least every second: a deleted subscription stops soon.
            tokio::time::sleep(Duration::from_millis(wait.clamp(1, 1000) as u64)).await;
            continue;
        }
        match deliver_batch(&s, &clients, &w).await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(IDLE).await,
            Err(e) => {
                tracing::warn!(error = %e, subscription = %id, "webhook delivery: store error");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// How one attempt went: the HTTP status (if any) and the error (if it failed).
async fn attempt(
    clients: &Clients,
    w: &WebhookRow,
    secret: &[u8],
    e: &AuditEntry,
    n: i64,
) -> (i64, Option<String>) {
    let id = delivery_id(&w.id, e.seq);
    let body = payload(&id, e);
    let sent = clients
        .for_url(&w.url)
        .post(&w.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Strata-Event", &e.action)
        .header("X-Strata-Delivery", &id)
        .header("X-Strata-Attempt", n.to_string())
        .header("X-Strata-Signature-256", signature(secret, &body))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => (i64::from(r.status().as_u16()), None),
        Ok(r) => {
            let code = r.status();
            (
                i64::from(code.as_u16()),
                Some(format!("the receiver answered HTTP {code}")),
            )
        }
        Err(err) => {
            let mut why = if err.is_timeout() {
                format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())
            } else {
                err.to_string()
            };
            let mut src = std::error::Error::source(&err);
            while let Some(c) = src {
                why.push_str(&format!(": {c}"));
                src = c.source();
            }
            why.truncate(500);
            (0, Some(why))
        }
    }
}

/// Deliver what follows `w`'s cursor, in order, up to the first failure. `true` when
/// anything was done (delivered, passed over or failed), `false` when idle.
async fn deliver_batch(s: &Server, clients: &Clients, w: &WebhookRow) -> Result<bool, StoreError> {
    let team = (w.team != FLEET).then_some(w.team.as_str());
    let rows = s.store.audit_after(w.cursor_seq, team, None, BATCH).await?;
    if rows.is_empty() {
        return Ok(false);
    }
    let mut cursor = w.cursor_seq;
    let mut passed = cursor;
    let mut attempts = w.attempts;
    let mut secret: Option<Vec<u8>> = None;
    for e in &rows {
        if !wanted(&w.events, &e.action) {
            passed = e.seq;
            continue;
        }
        if passed > cursor {
            if !s.store.webhook_advance(&w.id, cursor, passed, 0).await? {
                return Ok(true);
            }
            cursor = passed;
        }
        if !s.is_leader() {
            return Ok(true);
        }
        let n = attempts + 1;
        let started = Instant::now();
        let at = now_ms();
        if secret.is_none() {
            secret = s.sealer.open(&w.secret_sealed, &w.id).ok();
        }
        let (code, failed) = match &secret {
            Some(key) => attempt(clients, w, key, e, n).await,
            None => (
                0,
                Some(
                    "cannot open the signing secret: was --secrets-key-file changed? Make the subscription again".into(),
                ),
            ),
        };
        s.store
            .record_delivery(&DeliveryRow {
                id: uuid::Uuid::now_v7().to_string(),
                subscription_id: w.id.clone(),
                seq: e.seq,
                action: e.action.clone(),
                attempt: n,
                at_ms: at,
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                outcome: if failed.is_none() {
                    "delivered"
                } else {
                    "failed"
                }
                .into(),
                http_status: code,
                error: failed.clone().unwrap_or_default(),
            })
            .await?;
        match failed {
            None => {
                if !s.store.webhook_advance(&w.id, cursor, e.seq, 1).await? {
                    return Ok(true);
                }
                cursor = e.seq;
                passed = cursor;
                attempts = 0;
            }
            Some(why) => {
                let wait = backoff_ms(u32::try_from(n).unwrap_or(u32::MAX));
                tracing::warn!(subscription = %w.id, seq = e.seq, attempt = n, retry_in_ms = wait, error = %why, "webhook delivery failed");
                s.store
                    .webhook_failed(&w.id, cursor, n, now_ms() + wait, &why)
                    .await?;
                return Ok(true);
            }
        }
    }
    if passed > cursor {
        s.store.webhook_advance(&w.id, cursor, passed, 0).await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_known_answers() {
        // GitHub's documented example for X-Hub-Signature-256.
        assert_eq!(
            signature(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // What GitHub's verifier accepts, we produce.
        let body = payload("wh_1-7", &entry(7, "ip.allocate"));
        assert!(crate::webhook::github_signature_ok(
            b"0123456789abcdef",
            &body,
            Some(&signature(b"0123456789abcdef", &body))
        ));
    }

    fn entry(seq: i64, action: &str) -> AuditEntry {
        AuditEntry {
            seq,
            at_ms: 1_767_225_600_123,
            actor: "token:abc".into(),
            team: "ml".into(),
            action: action.into(),
            object: "ip/x".into(),
            before: Value::Null,
            after: json!({"address": "10.0.0.5/24"}),
            request_id: "r1".into(),
            prev_hash: "p".into(),
            hash: "h".into(),
        }
    }

    #[test]
    fn the_payload_carries_the_record() {
        let v: Value =
            serde_json::from_slice(&payload("wh_1-7", &entry(7, "ip.allocate"))).expect("json");
        assert_eq!(v["id"], "wh_1-7");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["at"], "2026-01-01T00:00:00.123Z");
        assert_eq!(v["action"], "ip.allocate");
        assert_eq!(v["after"]["address"], "10.0.0.5/24");
        assert_eq!(v["before"], Value::Null);
        for k in ["actor", "team", "object", "request_id"] {
            assert!(v[k].is_string(), "{k}");
        }
    }

    #[test]
    fn patterns_match_whole_segments() {
        let p = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(wanted(&p(&["*"]), "token.create"));
        assert!(wanted(&p(&["ip.*"]), "ip.allocate"));
        assert!(wanted(&p(&["machine.*"]), "machine.in-service"));
        assert!(!wanted(&p(&["ip.*"]), "ipam.sync"));
        assert!(!wanted(&p(&["ip.*"]), "ip"));
        assert!(wanted(&p(&["ip.release", "request.*"]), "ip.release"));
        assert!(!wanted(&p(&["ip.release"]), "ip.allocate"));
        assert!(check_events(&p(&["ip.*", "*", "machine.decommission"])).is_ok());
        for bad in ["", "ip*", "*.ip", "IP.*", ".*", "ip..*", "ip.*.x", "a b"] {
            assert!(check_events(&p(&[bad])).is_err(), "{bad}");
        }
        assert!(check_events(&[]).is_err());
    }

    #[test]
    fn urls_are_http_without_credentials() {
        assert!(check_url("https://cmdb.example/hooks/strata").is_ok());
        assert!(check_url("http://127.0.0.1:9000/x?y=1").is_ok());
        for bad in [
            "ftp://cmdb.example/",
            "file:///etc/passwd",
            "https://user:pw@cmdb.example/",
            "https://token@cmdb.example/",
            "https://cmdb.example/#frag",
            "cmdb.example/hook",
            "javascript:alert(1)",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
