//! The server's HTTP surface.
//!
//! Open: `GET /healthz`, `GET /readyz` (both JSON, saying whether this instance leads),
//! `GET /metrics`. Signed: `POST /webhooks/github`, `POST /webhooks/gitlab` (a bad
//! signature is 401 and changes nothing). Everything under `/api/v1` needs
//! `Authorization: Bearer <token>` ([`crate::auth`]), or the web UI's session cookie
//! with the session's CSRF token on every request that is not a read ([`crate::ui`],
//! which also serves `/ui/`): the caller becomes a
//! `Principal`, checked per object in each handler; every mutation writes an audit
//! record. Errors are `application/problem+json` with a stable `code`. Every response
//! carries `X-Request-Id` (the caller's, when it sent a sane one) and security headers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{AuthError, Principal, Role};
use crate::work::{self, ApproveError};
use crate::{LEADER_LEASE, Server, webhook};

/// The request's id (from `X-Request-Id`, or made here), in every audit record.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

type S = State<Arc<Server>>;

/// An API error: status, stable code, what happened.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn code(&self) -> &'static str {
        self.code
    }

    pub(crate) fn detail(&self) -> &str {
        &self.detail
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("https://strata.invalid/problems/{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        r
    }
}

impl From<strata_store::StoreError> for Problem {
    fn from(e: strata_store::StoreError) -> Self {
        tracing::warn!(error = %e, "store error");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            "the database did not answer; try again",
        )
    }
}

pub fn router(s: Arc<Server>) -> Router {
    let api = crate::api::routes(Router::new())
        .route("/commits", get(commits))
        .route("/commits/{sha}", get(commit))
        .route("/commits/{sha}/summary", get(commit_summary))
        .route("/plans", get(plans))
        .route("/plans/{hash}", get(plan))
        .route("/plans/{hash}/approve", post(approve))
        .route("/workflows", get(workflows))
        .route("/workflows/{id}", get(workflow))
        .route("/workflows/{id}/cancel", post(cancel_workflow))
        .route("/dcs/{dc}/proxmox/upgrade", post(upgrade))
        .route("/machines/{dc}/{hostname}/decommission", post(decommission))
        .route("/sync", post(sync))
        .fallback(api_not_found)
        // `layer`, not `route_layer`: an unknown API route also needs a token (no
        // probing which routes exist).
        .layer(middleware::from_fn_with_state(s.clone(), bearer))
        // API bodies are small JSON documents: 1 MiB is far above any of them (the
        // webhooks outside `/api/v1` keep GitHub's 25 MB).
        .layer(DefaultBodyLimit::max(1024 * 1024));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/webhooks/github", post(github))
        .route("/webhooks/gitlab", post(gitlab))
        .nest("/api/v1", api)
        .merge(crate::ui::router(s.clone()))
        .fallback(not_found)
        // Webhook payloads are small; GitHub caps them at 25 MB. API bodies are
        // smaller still (each route's JSON is a few kilobytes).
        .layer(DefaultBodyLimit::max(25 * 1024 * 1024))
        .layer(middleware::from_fn(request_id))
        .with_state(s)
}

/// Give every request an id and every response that id and the security headers.
async fn request_id(mut req: Request, next: Next) -> Response {
    let sane = |v: &str| {
        !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|h| h.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "no such route")
}

async fn api_not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "no such API route")
}

/// The bearer token from `Authorization` (the scheme is case-insensitive, RFC 9110 §11.1).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
        })
}

/// Who the token belongs to (API token, or OIDC JWT when configured).
pub(crate) async fn principal_of(s: &Server, token: &str) -> Result<Principal, Problem> {
    let unauth = |d: String| Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", d);
    match crate::auth::token_principal(&s.store, &s.verified, token).await {
        Ok(p) => Ok(p),
        Err(AuthError::Store(e)) => Err(e.into()),
        Err(AuthError::Invalid) if token.matches('.').count() == 2 => s
            .oidc_principal(token)
            .await
            .map_err(|e| unauth(e.to_string())),
        Err(e) => Err(unauth(e.to_string())),
    }
}

/// The caller of `/api/v1`: a bearer token, or else the web UI's session cookie (then
/// every request that is not a read also needs the session's `X-CSRF-Token`).
async fn bearer(State(s): S, mut req: Request, next: Next) -> Response {
    let who = match bearer_token(req.headers()).map(str::to_string) {
        Some(token) => match principal_of(&s, &token).await {
            Ok(p) => p,
            Err(p) => return p.into_response(),
        },
        None => match crate::ui::api_session(&s, req.headers(), req.method()).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "send Authorization: Bearer <token> (the first admin token is written to --admin-token-file on first start)",
                )
                .into_response();
            }
            Err(p) => return p.into_response(),
        },
    };
    if let Err(wait) = s.rate.take(&who.actor) {
        let mut r = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("too many requests from this token; retry in {wait} s"),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let reads = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if !reads && !who.write {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "insufficient-scope",
            "this token has the read scope only",
        )
        .into_response();
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}

async fn healthz(State(s): S) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "instance": s.cfg.instance,
        "leader": s.is_leader(),
    }))
}

async fn readyz(State(s): S) -> Response {
    match s.store.lease_holder(LEADER_LEASE).await {
        Ok(holder) => {
            let now = strata_store::now_ms();
            let leader = holder
                .as_ref()
                .filter(|(_, _, until)| *until >= now)
                .map(|(h, _, _)| h.clone());
            Json(json!({
                "ready": true,
                "instance": s.cfg.instance,
                "leader": s.is_leader(),
                "leader_instance": leader,
                "fencing": s.is_leader().then(|| s.fencing()),
                "database": format!("{:?}", s.store.backend()).to_lowercase(),
            }))
            .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"ready": false, "instance": s.cfg.instance, "leader": false, "reason": "the database does not answer"})),
            )
                .into_response()
        }
    }
}

/// OpenMetrics for clients that ask for it (Prometheus does), the classic text
/// format otherwise (curl, promtool).
async fn metrics(State(s): S, headers: HeaderMap) -> Response {
    let open = headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let (body, kind) = if open {
        (
            s.metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            s.metrics.encode_classic(),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

/// A verified push (or ping): poll now when it is for the followed branch.
fn accepted(s: &Server, provider: &str, body: &[u8]) -> Response {
    let branch = webhook::pushed_branch(body);
    let relevant = branch.as_deref() == Some(s.cfg.branch.as_str());
    if relevant {
        s.poke();
    }
    s.metrics
        .webhooks
        .get_or_create(&crate::metrics::WebhookLabels {
            provider: provider.into(),
            outcome: if relevant { "accepted" } else { "ignored" }.into(),
        })
        .inc();
    (
        StatusCode::ACCEPTED,
        Json(json!({"accepted": true, "polling": relevant, "branch": branch})),
    )
        .into_response()
}

fn rejected(s: &Server, provider: &str, detail: &str) -> Response {
    s.metrics
        .webhooks
        .get_or_create(&crate::metrics::WebhookLabels {
            provider: provider.into(),
            outcome: "rejected".into(),
        })
        .inc();
    tracing::warn!(provider, "webhook rejected: {detail}");
    Problem::new(StatusCode::UNAUTHORIZED, "bad-signature", detail).into_response()
}

async fn github(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &s.cfg.github_secret else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "webhook-disabled",
            "no GitHub webhook secret is configured (--github-secret-file)",
        )
        .into_response();
    };
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|h| h.to_str().ok());
    if !webhook::github_signature_ok(secret, &body, sig) {
        return rejected(
            &s,
            "github",
            "X-Hub-Signature-256 is missing or does not match the body",
        );
    }
    accepted(&s, "github", &body)
}

async fn gitlab(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let Some(token) = &s.cfg.gitlab_token else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "webhook-disabled",
            "no GitLab webhook token is configured (--gitlab-token-file)",
        )
        .into_response();
    };
    let got = headers.get("x-gitlab-token").and_then(|h| h.to_str().ok());
    if !webhook::gitlab_token_ok(token, got) {
        return rejected(&s, "gitlab", "X-Gitlab-Token is missing or wrong");
    }
    accepted(&s, "gitlab", &body)
}

#[derive(Deserialize)]
struct Page {
    limit: Option<u32>,
    before_ms: Option<i64>,
    state: Option<String>,
    kind: Option<String>,
}

impl Page {
    /// `limit` (default 50) within 1 to 500, like every list's (a 400 otherwise, not
    /// a silently different page size).
    fn limit(&self) -> Result<u32, Problem> {
        crate::api::ListQuery {
            limit: Some(self.limit.unwrap_or(50)),
            ..Default::default()
        }
        .limit()
    }
}

pub(crate) fn bad_query(e: axum::extract::rejection::QueryRejection) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad-query", e.body_text())
}

async fn commits(
    State(s): S,
    Extension(who): Extension<Principal>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    who.see_fleet()?;
    let Query(q) = q.map_err(bad_query)?;
    let limit = q.limit()?;
    let list = s.store.commits(limit, q.before_ms).await?;
    let next = (list.len() == limit as usize)
        .then(|| list.last().map(|c| c.seen_ms))
        .flatten();
    // The list leaves out each result's bulk (diagnostics, summary).
    let items: Vec<Value> = list
        .iter()
        .map(|c| {
            json!({
                "sha": c.sha,
                "branch": c.branch,
                "state": c.state,
                "seen_ms": c.seen_ms,
                "updated_ms": c.updated_ms,
                "plan_hash": c.result.as_ref().and_then(|r| r.get("plan_hash")).cloned(),
                "counts": c.result.as_ref().and_then(|r| r.get("counts")).cloned(),
            })
        })
        .collect();
    Ok(Json(json!({"items": items, "next_before_ms": next})))
}

async fn find_commit(s: &Server, sha: &str) -> Result<strata_store::CommitView, Problem> {
    if sha.len() > 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-commit-id",
            "a commit id is 40 (or 64) hexadecimal digits",
        ));
    }
    s.store
        .commit(&sha.to_ascii_lowercase())
        .await?
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "commit-not-found",
                format!("the server has not seen commit {sha}"),
            )
        })
}

async fn commit(
    State(s): S,
    Extension(who): Extension<Principal>,
    Path(sha): Path<String>,
) -> Result<Json<Value>, Problem> {
    who.see_fleet()?;
    let c = find_commit(&s, &sha).await?;
    Ok(Json(serde_json::to_value(c).unwrap_or(Value::Null)))
}

async fn commit_summary(
    State(s): S,
    Extension(who): Extension<Principal>,
    Path(sha): Path<String>,
) -> Result<Response, Problem> {
    who.see_fleet()?;
    let c = find_commit(&s, &sha).await?;
    let md = c
        .result
        .as_ref()
        .and_then(|r| r.get("summary"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("### strata: commit `{}` is {}\n", c.sha, c.state));
    let mut r = md.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/markdown; charset=utf-8"),
    );
    Ok(r)
}

async fn plans(
    State(s): S,
    Extension(who): Extension<Principal>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    who.see_fleet()?;
    let Query(q) = q.map_err(bad_query)?;
    let list = s.store.plans(q.state.as_deref(), q.limit()?).await?;
    Ok(Json(json!({"items": list})))
}

fn check_hash(hash: &str) -> Result<(), Problem> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-plan-hash",
            "a plan hash is 64 hexadecimal digits (SHA-256)",
        ))
    }
}

async fn plan(
    State(s): S,
    Extension(who): Extension<Principal>,
    Path(hash): Path<String>,
) -> Result<Json<Value>, Problem> {
    who.see_fleet()?;
    check_hash(&hash)?;
    let Some(view) = s.store.plan(&hash).await? else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "plan-not-found",
            format!("no plan {hash}"),
        ));
    };
    let saved: Value = serde_json::from_str(&view.saved).unwrap_or(Value::Null);
    let approvals = s.store.approvals(&hash).await?;
    Ok(Json(json!({
        "plan": view,
        "steps": saved["plan"]["steps"],
        "conflicts": saved["plan"]["conflicts"],
        "approvals": approvals,
    })))
}

async fn approve(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path(hash): Path<String>,
) -> Result<Response, Problem> {
    let workflow = approve_plan(&s, &who, &rid, &hash).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"approved": true, "plan_hash": hash, "workflow": workflow})),
    )
        .into_response())
}

/// Approve plan `hash` as `who`: the checks, the approval and its audit record. The
/// API's route and the web UI's Approve button both come here. Returns the workflow
/// that applies the plan.
pub(crate) async fn approve_plan(
    s: &Server,
    who: &Principal,
    rid: &str,
    hash: &str,
) -> Result<String, Problem> {
    who.see_fleet()?;
    check_hash(hash)?;
    who.need(crate::auth::FLEET, Role::Operator, "approving a plan")?;
    match work::approve(s, hash, &who.actor).await {
        Ok(workflow) => {
            s.audit(
                who,
                rid,
                crate::auth::FLEET,
                "plan.approve",
                &format!("plan/{hash}"),
                &json!({"state": "waiting"}),
                &json!({"state": "approved", "workflow": workflow}),
            )
            .await?;
            Ok(workflow)
        }
        Err(ApproveError::NotFound) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "plan-not-found",
            format!("no plan {hash}"),
        )),
        Err(ApproveError::NotWaiting(state)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "plan-not-waiting",
            format!("the plan is not waiting for an approval ({state})"),
        )),
        Err(ApproveError::Stale(detail)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "plan-stale",
            format!(
                "{detail}; the approval was refused: review the new plan the next reconcile makes"
            ),
        )),
        Err(ApproveError::Unavailable(detail)) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "platforms-unavailable",
            format!("cannot check the plan against the platforms: {detail}"),
        )),
        Err(ApproveError::Store(detail)) => {
            tracing::warn!(%detail, "approval failed");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "the database did not answer; try again",
            ))
        }
    }
}

async fn workflows(
    State(s): S,
    Extension(who): Extension<Principal>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(q) = q.map_err(bad_query)?;
    let list = s.store.workflows(q.kind.as_deref(), q.limit()?).await?;
    let items: Vec<Value> = list
        .into_iter()
        .filter(|(_, kind, subject, _)| who.role_in(workflow_team(kind, subject)).is_some())
        .map(|(id, kind, subject, state)| json!({"id": id, "kind": kind, "subject": subject, "state": state}))
        .collect();
    Ok(Json(json!({"items": items})))
}

/// The team a workflow belongs to: a team's requests are `request` workflows whose
/// subject starts with the team; every other workflow is the fleet's.
pub(crate) fn workflow_team<'a>(kind: &str, subject: &'a str) -> &'a str {
    match kind {
        "request" => subject.split('/').next().unwrap_or(crate::auth::FLEET),
        _ => crate::auth::FLEET,
    }
}

fn no_workflow(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "workflow-not-found",
        format!("no workflow {id}"),
    )
}

async fn workflow(
    State(s): S,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let Some(w) = s.store.workflow(&id).await? else {
        return Err(no_workflow(&id));
    };
    who.see(workflow_team(&w.kind, &w.subject), || no_workflow(&id))?;
    let events = s.store.events(&id).await?;
    Ok(Json(json!({"workflow": w, "events": events})))
}

async fn sync(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
) -> Result<Response, Problem> {
    who.need(crate::auth::FLEET, Role::Operator, "asking for a sync")?;
    s.poke();
    s.audit(
        &who,
        &rid,
        crate::auth::FLEET,
        "repo.sync",
        "repo",
        &Value::Null,
        &json!({"polling": true}),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"polling": true}))).into_response())
}

async fn cancel_workflow(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let Some(w) = s.store.workflow(&id).await? else {
        return Err(no_workflow(&id));
    };
    let team = workflow_team(&w.kind, &w.subject).to_string();
    who.see(&team, || no_workflow(&id))?;
    who.need(&team, Role::Operator, "cancelling a workflow")?;
    if s.store.cancel(&id).await? {
        tracing::info!(workflow = %id, "workflow cancelled through the API");
        s.audit(
            &who,
            &rid,
            &team,
            "workflow.cancel",
            &format!("workflow/{id}"),
            &json!({"state": w.state}),
            &json!({"state": "cancelled"}),
        )
        .await?;
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({"cancelled": true, "workflow": id})),
        )
            .into_response())
    } else {
        Err(Problem::new(
            StatusCode::CONFLICT,
            "workflow-not-running",
            format!(
                "workflow {id} is {}; only a running workflow can be cancelled",
                w.state
            ),
        ))
    }
}

fn lifecycle_problem(e: crate::lifecycle::LifecycleError) -> Problem {
    use crate::lifecycle::LifecycleError as E;
    match e {
        E::BadRequest(d) => Problem::new(StatusCode::BAD_REQUEST, "bad-request", d),
        E::Conflict(d) => Problem::new(StatusCode::CONFLICT, "workflow-running", d),
        E::Unavailable(d) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "platforms-unavailable", d)
        }
    }
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-body",
            format!("the body is not the JSON this route takes: {e}"),
        )
    })
}

/// Start a rolling upgrade of a DC's Proxmox cluster:
/// `{"version": "9.1.2", "gate_timeout_s": 600}`.
async fn upgrade(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path(dc): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    who.need(crate::auth::FLEET, Role::Operator, "upgrading a cluster")?;
    let mut req: crate::lifecycle::UpgradeRequest = json_body(&body)?;
    req.dc = dc.clone();
    let asked = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let id = crate::lifecycle::start_upgrade(&s, req)
        .await
        .map_err(lifecycle_problem)?;
    s.audit(
        &who,
        &rid,
        crate::auth::FLEET,
        "proxmox.upgrade",
        &format!("dc/{dc}/proxmox"),
        &Value::Null,
        &json!({"request": asked, "workflow": id}),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"workflow": id}))).into_response())
}

/// Start decommissioning a machine: `{"reason": "...", "rma": true}`.
async fn decommission(
    State(s): S,
    Extension(who): Extension<Principal>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path((dc, hostname)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    who.need(
        crate::auth::FLEET,
        Role::Operator,
        "decommissioning a machine",
    )?;
    let mut req: crate::lifecycle::DecommissionRequest = json_body(&body)?;
    req.dc = dc.clone();
    req.hostname = hostname.clone();
    let asked = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let id = crate::lifecycle::start_decommission(&s, req)
        .await
        .map_err(lifecycle_problem)?;
    s.audit(
        &who,
        &rid,
        crate::auth::FLEET,
        "machine.decommission",
        &format!("machine/{dc}/{hostname}"),
        &Value::Null,
        &json!({"request": asked, "workflow": id}),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"workflow": id}))).into_response())
}
