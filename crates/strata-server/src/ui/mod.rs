//! The web UI of `strata serve`, under `/ui/`.
//!
//! Server-rendered pages (maud escapes every value) over the same store and functions
//! the API uses: the fleet per DC, machines and their onboarding, plans waiting for an
//! approval with their field-level diff (and the API's own approval path behind the
//! Approve button), workflows with their steps and evidence, the audit log, and a
//! self-service request form that posts to `/api/v1/requests` through htmx. htmx is
//! vendored in `assets/` and compiled in, like the stylesheet and the one script of
//! our own; the pages carry no inline script or style, and every `/ui` response sends
//! a Content-Security-Policy that forbids them.
//!
//! Who may look: every page but the login page and the assets needs a session (see
//! [`session`]) or an `Authorization: Bearer` token (scripts, tests); without either
//! the browser is sent to the login page. Every UI `POST` made with a session must
//! carry the session's CSRF token (403 otherwise); a bearer request needs none, as in
//! the API. The API itself also takes the session cookie ([`api_session`]), then asking
//! for the CSRF token in `X-CSRF-Token` on every request that is not a read. Logins,
//! logouts and approvals are audited like every other mutation.

mod pages;
pub mod session;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Server;
use crate::auth::{FLEET, Principal, Role};
use crate::http::{Problem, RequestId};
use session::Session;

type S = State<Arc<Server>>;

/// What every `/ui` response carries: only this origin's scripts and styles, no
/// framing.
pub const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'";

/// htmx's settings for these pages: nothing the CSP forbids (the indicator styles it
/// would inject inline, `eval`), no page copies in session storage, and error answers
/// shown rather than dropped (the request form prints what the API said).
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyCacheSize":0,"selfRequestsOnly":true,"responseHandling":[{"code":"204","swap":false},{"code":"[2345]..","swap":true,"error":false},{"code":"...","swap":false}]}"#;

/// The largest form body a UI `POST` may have.
const MAX_FORM: usize = 64 * 1024;

/// The caller of a UI page.
#[derive(Clone)]
pub(crate) struct Viewer {
    pub who: Principal,
    /// The session (`None`: a bearer token).
    pub session: Option<Session>,
    pub rid: String,
}

impl Viewer {
    fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.record.csrf.as_str())
    }

    fn fleet_reader(&self) -> bool {
        self.who.fleet_role().is_some()
    }

    /// Whether the caller reads some audit records: fleet viewers all, team admins
    /// their team's.
    fn audit_reader(&self) -> bool {
        self.fleet_reader() || self.who.grants.iter().any(|g| g.role >= Role::Admin)
    }
}

pub fn router(s: Arc<Server>) -> Router<Arc<Server>> {
    let protected = Router::new()
        .route("/ui/", get(pages::overview))
        .route("/ui/machines", get(pages::machines))
        .route("/ui/machines/{dc}/{host}", get(pages::machine))
        .route("/ui/plans", get(pages::plans))
        .route("/ui/plans/{hash}", get(pages::plan))
        .route("/ui/plans/{hash}/approve", post(pages::approve))
        .route("/ui/workflows", get(pages::workflows))
        .route("/ui/workflows/{id}", get(pages::workflow))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/requests", get(pages::requests))
        .route("/ui/logout", post(logout))
        .route("/ui/{*rest}", any(not_found))
        .route_layer(middleware::from_fn_with_state(s, require_login));
    let open = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/assets/{name}", get(asset));
    protected.merge(open).layer(middleware::from_fn(ui_headers))
}

/// The CSP on every UI response.
async fn ui_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind): (&'static str, &'static str) = match name.as_str() {
        "htmx.min.js" => (
            include_str!("../../assets/htmx.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "ui.js" => (
            include_str!("../../assets/ui.js"),
            "text/javascript; charset=utf-8",
        ),
        "ui.css" => (
            include_str!("../../assets/ui.css"),
            "text/css; charset=utf-8",
        ),
        "favicon.svg" => (include_str!("../../assets/favicon.svg"), "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// Where a caller without a session goes: the login page, coming back here after.
fn to_login(method: &Method, uri: &Uri) -> Response {
    if method == Method::GET {
        let here = uri.path_and_query().map_or("/ui/", |p| p.as_str());
        if here != "/ui/" {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", here)
                .finish();
            return Redirect::to(&format!("/ui/login?{q}")).into_response();
        }
    }
    Redirect::to("/ui/login").into_response()
}

/// A `next` the login may send the browser to: a UI path on this server.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && n.len() <= 512
                && !n.contains("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/ui/",
    }
}

/// The caller of a protected page: a bearer token, else a session; the CSRF check on
/// every `POST` made with a session.
async fn require_login(State(s): S, req: Request, next: Next) -> Response {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let (who, session) = match crate::http::bearer_token(req.headers()) {
        Some(token) => match crate::http::principal_of(&s, token).await {
            Ok(p) => (p, None),
            Err(p) => return UiError(p).into_response(),
        },
        None => match session::lookup(&s.store, req.headers(), strata_store::now_ms()).await {
            Ok(Some(sess)) => (sess.record.principal(), Some(sess)),
            Ok(None) => return to_login(req.method(), req.uri()),
            Err(e) => return UiError(e.into()).into_response(),
        },
    };
    if let Err(wait) = s.rate.take(&who.actor) {
        return UiError(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("too many requests; retry in {wait} s"),
        ))
        .into_response();
    }
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    let mut req = req;
    if !reads && let Some(sess) = &session {
        let header = req
            .headers()
            .get(session::CSRF_HEADER)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return UiError(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "a UI form is at most 64 KiB",
            ))
            .into_response();
        };
        let sent = header.or_else(|| session::form_field(&bytes, session::CSRF_FIELD));
        if !session::csrf_ok(&sess.record.csrf, sent.as_deref()) {
            tracing::warn!(actor = %who.actor, path = %parts.uri.path(), "UI form without a valid CSRF token");
            return UiError(csrf_problem()).into_response();
        }
        req = Request::from_parts(parts, axum::body::Body::from(bytes));
    }
    req.extensions_mut().insert(Viewer { who, session, rid });
    next.run(req).await
}

fn csrf_problem() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "csrf",
        "the request lacks this session's CSRF token (reload the page and try again)",
    )
}

/// The `/api/v1` caller behind a session cookie (`Ok(None)`: no live session). A
/// request that is not a read must carry the session's CSRF token in `X-CSRF-Token`.
pub(crate) async fn api_session(
    s: &Server,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Option<Principal>, Problem> {
    let Some(sess) = session::lookup(&s.store, headers, strata_store::now_ms()).await? else {
        return Ok(None);
    };
    if !matches!(*method, Method::GET | Method::HEAD) {
        let sent = headers
            .get(session::CSRF_HEADER)
            .and_then(|h| h.to_str().ok());
        if !session::csrf_ok(&sess.record.csrf, sent) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a request made with the session cookie needs the session's X-CSRF-Token header",
            ));
        }
    }
    Ok(Some(sess.record.principal()))
}

/// The team a caller's own records (login, logout) are filed under.
fn home_team(who: &Principal) -> &str {
    if who.fleet_role().is_some() {
        FLEET
    } else {
        who.grants.first().map_or(FLEET, |g| g.team.as_str())
    }
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_form(
    State(s): S,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    if let Ok(Some(_)) = session::lookup(&s.store, &headers, strata_store::now_ms()).await {
        return Redirect::to(safe_next(q.next.as_deref())).into_response();
    }
    login_page(
        StatusCode::OK,
        None,
        safe_next(q.next.as_deref()),
        session::is_https(&headers, &uri),
    )
}

/// The login page with a fresh form nonce (also set as the login cookie).
fn login_page(status: StatusCode, error: Option<&str>, next: &str, secure: bool) -> Response {
    let nonce = session::random_hex(32);
    let body = html! {
        main.login {
            h1 { "strata" }
            form.panel method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(nonce);
                input type="hidden" name="next" value=(next);
                @if let Some(e) = error {
                    p.notice.bad role="alert" { (e) }
                }
                div.field {
                    label for="token" { "API token" }
                    input id="token" type="password" name="token" autocomplete="off" required
                        placeholder="strata_…";
                }
                p.muted {
                    "Paste an API token (" code { "strata token create" } ", or the first admin token the server wrote on its first start). The page keeps a session, not the token."
                }
                button type="submit" { "Log in" }
            }
        }
    };
    let mut r = (status, Html(document("Log in", None, body).into_string())).into_response();
    append_cookie(
        &mut r,
        &session::set_cookie(
            session::LOGIN_COOKIE,
            &nonce,
            "/ui/login",
            session::LOGIN_FORM_S,
            secure,
        ),
    );
    r
}

fn append_cookie(r: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

async fn login(
    State(s): S,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let secure = session::is_https(&headers, &uri);
    let next = session::form_field(&body, "next");
    let next = safe_next(next.as_deref()).to_string();
    if body.len() > MAX_FORM {
        return login_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("The form is too large."),
            &next,
            secure,
        );
    }
    let nonce = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or("");
    let sent = session::form_field(&body, session::CSRF_FIELD);
    if !session::csrf_ok(nonce, sent.as_deref()) {
        return login_page(
            StatusCode::FORBIDDEN,
            Some("The login form expired or did not come from this page; try again."),
            &next,
            secure,
        );
    }
    let token = session::form_field(&body, "token").unwrap_or_default();
    let token = token.trim();
    if token.is_empty() {
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("Paste an API token."),
            &next,
            secure,
        );
    }
    let who = match crate::http::principal_of(&s, token).await {
        Ok(p) => p,
        Err(p) => {
            tracing::info!(code = p.code(), "UI login refused");
            let msg = format!("The token was not accepted: {}.", p.detail());
            return login_page(p.status(), Some(&msg), &next, secure);
        }
    };
    let now = strata_store::now_ms();
    // A login replaces the session the browser had (no fixation, no leftovers).
    if let Ok(Some(old)) = session::lookup(&s.store, &headers, now).await {
        let _ = session::end(&s.store, &old).await;
    }
    let (id, sess) = match session::create(&s.store, &who, now).await {
        Ok(x) => x,
        Err(e) => return UiError(e.into()).into_response(),
    };
    if let Err(e) = s
        .audit(
            &who,
            &rid,
            home_team(&who),
            "ui.login",
            &session::audit_name(&sess.key),
            &Value::Null,
            &json!({"expires_ms": sess.record.expires_ms}),
        )
        .await
    {
        // No audit record, no session.
        let _ = session::end(&s.store, &sess).await;
        return UiError(e.into()).into_response();
    }
    let max_age = (sess.record.expires_ms - now) / 1000;
    let mut r = Redirect::to(&next).into_response();
    append_cookie(
        &mut r,
        &session::set_cookie(session::COOKIE, &id, "/", max_age, secure),
    );
    append_cookie(
        &mut r,
        &session::clear_cookie(session::LOGIN_COOKIE, "/ui/login", secure),
    );
    r
}

async fn logout(
    State(s): S,
    Extension(v): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let secure = session::is_https(&headers, &uri);
    if let Some(sess) = &v.session {
        if let Err(e) = session::end(&s.store, sess).await {
            return UiError(e.into()).into_response();
        }
        let _ = s
            .audit(
                &v.who,
                &v.rid,
                home_team(&v.who),
                "ui.logout",
                &session::audit_name(&sess.key),
                &json!({"expires_ms": sess.record.expires_ms}),
                &Value::Null,
            )
            .await;
    }
    let mut r = Redirect::to("/ui/login").into_response();
    append_cookie(&mut r, &session::clear_cookie(session::COOKIE, "/", secure));
    r
}

async fn not_found(Extension(v): Extension<Viewer>) -> Response {
    problem_page(
        Some(&v),
        Problem::new(StatusCode::NOT_FOUND, "not-found", "no such page"),
    )
}

/// A failure shown as a page (the status is the API's for the same failure).
pub(crate) struct UiError(pub Problem);

impl From<Problem> for UiError {
    fn from(p: Problem) -> Self {
        UiError(p)
    }
}

impl From<strata_store::StoreError> for UiError {
    fn from(e: strata_store::StoreError) -> Self {
        UiError(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        problem_page(None, self.0)
    }
}

pub(crate) fn problem_page(v: Option<&Viewer>, p: Problem) -> Response {
    let status = p.status();
    let body = html! {
        h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("error")) }
        p.notice.bad role="alert" data-code=(p.code()) { (p.detail()) }
        p { a href="/ui/" { "Back to the overview" } }
    };
    let title = status.canonical_reason().unwrap_or("error");
    let doc = match v {
        Some(v) => document(title, Some((v, Nav::None)), body),
        None => document(title, None, html! { main { (body) } }),
    };
    (status, Html(doc.into_string())).into_response()
}

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Machines,
    Plans,
    Workflows,
    Audit,
    Requests,
    None,
}

/// A whole page: head, and for a logged-in caller the navigation and the logout form.
pub(crate) fn document(title: &str, chrome: Option<(&Viewer, Nav)>, body: Markup) -> Markup {
    let csrf_headers = chrome
        .and_then(|(v, _)| v.session.as_ref())
        .map(|s| json!({"X-CSRF-Token": s.record.csrf}).to_string());
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · strata" }
                link rel="icon" href="/ui/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/ui/assets/ui.css";
                script src="/ui/assets/htmx.min.js" defer {}
                script src="/ui/assets/ui.js" defer {}
            }
            body hx-headers=[csrf_headers] {
                @if let Some((v, current)) = chrome {
                    (top_bar(v, current))
                    main { (body) }
                } @else {
                    (body)
                }
            }
        }
    }
}

fn top_bar(v: &Viewer, current: Nav) -> Markup {
    let mut entries = vec![
        ("/ui/", "Overview", Nav::Overview),
        ("/ui/machines", "Machines", Nav::Machines),
    ];
    if v.fleet_reader() {
        entries.push(("/ui/plans", "Plans", Nav::Plans));
    }
    entries.push(("/ui/workflows", "Workflows", Nav::Workflows));
    if v.audit_reader() {
        entries.push(("/ui/audit", "Audit", Nav::Audit));
    }
    entries.push(("/ui/requests", "Requests", Nav::Requests));
    let grants: Vec<String> = v
        .who
        .grants
        .iter()
        .map(|g| {
            let team = if g.team == FLEET {
                "fleet"
            } else {
                g.team.as_str()
            };
            format!("{} {team}", g.role)
        })
        .collect();
    html! {
        header.top {
            a.brand href="/ui/" { "strata" }
            nav {
                @for (href, label, key) in &entries {
                    a href=(href) class=[(*key == current).then_some("current")] { (label) }
                }
            }
            div.who {
                span id="who" title=(v.who.actor) { (grants.join(", ")) }
                @if v.session.is_some() {
                    form method="post" action="/ui/logout" {
                        input type="hidden" name="csrf" value=(v.csrf());
                        button id="logout" type="submit" { "Log out" }
                    }
                }
            }
        }
    }
}

/// A page as a response.
pub(crate) fn respond(v: &Viewer, nav: Nav, title: &str, body: Markup) -> Response {
    Html(document(title, Some((v, nav)), body).into_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_ui() {
        assert_eq!(
            safe_next(Some("/ui/plans?state=waiting")),
            "/ui/plans?state=waiting"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui//evil",
            "/api/v1/tokens",
            "/ui/\\evil",
            "/ui/a b",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }

    #[test]
    fn unauthenticated_pages_redirect_to_the_login() {
        let r = to_login(&Method::GET, &"/ui/plans?state=all".parse().expect("uri"));
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()[header::LOCATION],
            "/ui/login?next=%2Fui%2Fplans%3Fstate%3Dall"
        );
        let r = to_login(&Method::POST, &"/ui/logout".parse().expect("uri"));
        assert_eq!(r.headers()[header::LOCATION], "/ui/login");
    }

    #[test]
    fn pages_escape_and_carry_no_inline_script() {
        let v = Viewer {
            who: Principal {
                actor: "token:<script>".into(),
                grants: vec![crate::auth::Grant {
                    team: "ml".into(),
                    role: Role::Viewer,
                }],
                read: true,
                write: false,
            },
            session: None,
            rid: String::new(),
        };
        let page = document(
            "<b>x</b>",
            Some((&v, Nav::Overview)),
            html! { p { ("<img src=x onerror=alert(1)>") } },
        )
        .into_string();
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<b>x"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));
        // Scripts only by src, and no inline style anywhere.
        assert_eq!(
            page.matches("<script").count(),
            page.matches("<script src=\"/ui/assets/").count()
        );
        assert!(!page.contains("style="), "{page}");
        // A viewer of one team sees neither the fleet's plans nor the audit log.
        assert!(!page.contains("href=\"/ui/plans\"") && !page.contains("href=\"/ui/audit\""));
        // No session, no logout form and no CSRF header.
        assert!(!page.contains("hx-headers") && !page.contains("/ui/logout"));
    }
}
