//! The OpenStack region of a simulated DC: Keystone v3, Nova (compute API v2.1 with
//! microversions up to 2.104), Neutron (v2.0), Glance (v2) and Placement (1.0–1.39).
//!
//! Every service is mounted under `/<dc>/openstack/<service>` and shares one state:
//! tokens issued by Keystone are what the other services accept, Nova schedules servers
//! through the Placement inventories and allocations, and boots create Neutron ports.
//!
//! Compute hosts join as the machines MAAS deploys with a compute role come up, and go
//! down when their machines lose power (`joins.rs`, [`crate::platform`]); deleting a
//! compute service (`DELETE /os-services/{id}`) removes its compute node and resource
//! provider as Nova does.
//!
//! Asynchronous behaviour (a server's BUILD→ACTIVE, reboots, stops, …) is modelled
//! with pending transitions that complete at a given time; the state advances lazily
//! whenever a request (or `save`/`summary`/`mutate`) looks at it, so a saved state
//! carries its in-flight transitions.

// Handlers return `Result<Response, Response>` so that `?` can answer with the
// service's own error document; both arms are the same (large) type on purpose.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::core::{Route, RouteTable};
use crate::{DcContext, MutateRequest, Service};

mod admin;
mod glance;
mod joins;
mod keystone;
mod kolla;
mod limits;
mod model;
mod net;
mod neutron;
mod nova;
mod placement;
mod regex;
mod seed;

use model::State;

/// A handler's result: both arms are complete responses, so `?` can return errors.
pub(crate) type R = Result<Response, Response>;
type Handler = fn(&Os, &Req) -> R;

/// The OpenStack region of one DC.
pub(crate) struct Os {
    pub ctx: Arc<DcContext>,
    pub st: Mutex<State>,
    /// Path of the placement endpoint (`/<dc>/openstack/placement`): placement's links
    /// are relative to its mount point, as the real service writes them.
    pub placement_path: String,
}

struct OpenStack {
    os: Arc<Os>,
}

/// Build this DC's openstack service (from saved state when given).
pub fn build(
    ctx: Arc<DcContext>,
    saved: Option<serde_json::Value>,
) -> anyhow::Result<Arc<dyn Service>> {
    let state = match saved {
        Some(v) if !v.is_null() => {
            let mut st: State = serde_json::from_value(v)
                .map_err(|e| anyhow::anyhow!("the saved OpenStack state does not parse: {e}"))?;
            // Endpoints follow the listener, which may have moved since the state was saved.
            seed::refresh_catalog(&mut st, &ctx);
            st
        }
        _ => seed::fresh(&ctx)
            .map_err(|e| anyhow::anyhow!("{}: the Kolla configuration: {e}", ctx.name))?,
    };
    let path_of = |u: &str| {
        url::Url::parse(u)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default()
    };
    let os = Arc::new(Os {
        placement_path: path_of(&ctx.urls.placement),
        ctx,
        st: Mutex::new(state),
    });
    Ok(Arc::new(OpenStack { os }))
}

impl OpenStack {
    fn all_routes(&self) -> Routes {
        let mut r = Routes {
            table: RouteTable::new(),
        };
        r = keystone::routes(r);
        r = limits::routes(r);
        r = nova::routes(r);
        r = neutron::routes(r);
        r = glance::routes(r);
        placement::routes(r)
    }
}

impl Service for OpenStack {
    fn routes(&self) -> Vec<(String, String)> {
        self.all_routes().table.listing("")
    }

    fn name(&self) -> &'static str {
        "openstack"
    }

    fn router(self: Arc<Self>) -> Router {
        self.all_routes()
            .router(&self.os)
            .fallback(|req: axum::extract::Request| async move {
                match read_req(req).await {
                    Ok(req) => not_found_for(&req),
                    Err(r) => r,
                }
            })
            .layer(axum::middleware::map_response(add_request_id))
    }

    fn save(&self) -> serde_json::Value {
        let mut st = self.os.st.lock();
        self.os.tick(&mut st);
        serde_json::to_value(&*st).unwrap_or(Value::Null)
    }

    fn mutate(&self, req: &MutateRequest) -> Result<serde_json::Value, String> {
        admin::mutate(&self.os, req)
    }

    fn summary(&self) -> serde_json::Value {
        admin::summary(&self.os)
    }
}

// ---------------------------------------------------------------------------------------
// Requests and routing

/// Everything a handler needs from a request, read up front so handlers are plain
/// synchronous functions over the locked state (the twin's shared request type).
pub(crate) type Req = crate::core::Request;

/// The largest body the OpenStack services read.
const MAX_BODY: usize = 32 << 20;

/// Read a request for a handler; a body over [`MAX_BODY`] is answered 413.
async fn read_req(req: axum::extract::Request) -> Result<Req, Response> {
    Req::read(req, MAX_BODY)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())
}

/// The region's route table, filled by the service modules, and the router built from
/// it.
pub(crate) struct Routes {
    pub table: RouteTable<Endpoint>,
}

/// What a route runs.
#[derive(Clone, Copy)]
pub(crate) enum Endpoint {
    /// A handler that does its own checks (Keystone, Neutron, Glance, Placement, the
    /// version documents).
    Plain(Handler),
    /// A Nova handler, run through Nova's pipeline with the route's microversion range.
    Nova(nova::Inner),
    /// A Placement handler, run through Placement's pipeline with the route's minimum
    /// microversion.
    Placement(placement::Inner),
}

impl Routes {
    /// Add one path with its handlers per method.
    pub fn add(mut self, path: &str, handlers: &[(MethodFilter, Handler)]) -> Self {
        for &(filter, f) in handlers {
            self.table
                .push(Route::new(method_of(filter), path, Endpoint::Plain(f)));
        }
        self
    }

    /// Add one path with Nova handlers per method, each with the microversion range
    /// (minor numbers, inclusive) it exists in.
    pub fn add_versioned(
        mut self,
        path: &str,
        handlers: &[(MethodFilter, nova::Inner, u32, u32)],
    ) -> Self {
        for &(filter, f, min, max) in handlers {
            self.table.push(
                Route::new(method_of(filter), path, Endpoint::Nova(f)).microversions(min, max),
            );
        }
        self
    }

    /// Add one path with Placement handlers per method, each with the microversion
    /// (minor number) it appears in.
    pub fn add_placement(
        mut self,
        path: &str,
        handlers: &[(MethodFilter, placement::Inner, u32)],
    ) -> Self {
        for &(filter, f, min) in handlers {
            self.table.push(
                Route::new(method_of(filter), path, Endpoint::Placement(f))
                    .microversions(min, placement::MAX_MINOR),
            );
        }
        self
    }

    /// One axum route per path, each method calling its handler on the region.
    fn router(&self, os: &Arc<Os>) -> Router {
        let mut router = Router::new();
        for (path, routes) in self.table.by_path() {
            let mut mr: MethodRouter = MethodRouter::new();
            for route in routes {
                let (os, endpoint) = (os.clone(), route.handler);
                let (min, max) = route.microversions.unwrap_or((0, u32::MAX));
                mr = mr.on(
                    filter_of(&route.method),
                    move |req: axum::extract::Request| {
                        let os = os.clone();
                        async move {
                            let req = match read_req(req).await {
                                Ok(req) => req,
                                Err(r) => return r,
                            };
                            let answer = match endpoint {
                                Endpoint::Plain(f) => f(&os, &req),
                                Endpoint::Nova(f) => nova::handle(&os, &req, min, max, f),
                                Endpoint::Placement(f) => placement::handle(&os, &req, min, f),
                            };
                            match answer {
                                Ok(r) | Err(r) => r,
                            }
                        }
                    },
                );
            }
            router = router.route(path, mr);
        }
        router
    }
}

const METHODS: [(MethodFilter, Method); 6] = [
    (GET, Method::GET),
    (POST, Method::POST),
    (PUT, Method::PUT),
    (PATCH, Method::PATCH),
    (DELETE, Method::DELETE),
    (HEAD, Method::HEAD),
];

fn method_of(f: MethodFilter) -> Method {
    METHODS
        .into_iter()
        .find(|(m, _)| *m == f)
        .map_or(Method::GET, |(_, n)| n)
}

fn filter_of(m: &Method) -> MethodFilter {
    METHODS
        .into_iter()
        .find(|(_, n)| n == m)
        .map_or(GET, |(f, _)| f)
}

pub(crate) const GET: MethodFilter = MethodFilter::GET;
pub(crate) const POST: MethodFilter = MethodFilter::POST;
pub(crate) const PUT: MethodFilter = MethodFilter::PUT;
pub(crate) const PATCH: MethodFilter = MethodFilter::PATCH;
pub(crate) const DELETE: MethodFilter = MethodFilter::DELETE;
pub(crate) const HEAD: MethodFilter = MethodFilter::HEAD;

async fn add_request_id(mut resp: Response) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-openstack-request-id", v);
    }
    resp
}

/// 404 for a path no route matched, in the error format of the service it falls under.
fn not_found_for(req: &Req) -> Response {
    let service = req
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    match service {
        "compute" => nova::err(404, "The resource could not be found."),
        "network" => neutron::nerr(404, "HTTPNotFound", "The resource could not be found."),
        "placement" => placement::perr(0, 404, "The resource could not be found.", None),
        "identity" => keystone::error(StatusCode::NOT_FOUND, "The resource could not be found."),
        _ => {
            let mut r = (
                StatusCode::NOT_FOUND,
                "404 Not Found\n\nThe resource could not be found.\n\n   ",
            )
                .into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=UTF-8"),
            );
            r
        }
    }
}

// ---------------------------------------------------------------------------------------
// Responses

/// A JSON response.
pub(crate) fn json_resp(status: StatusCode, body: Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn empty(status: StatusCode) -> Response {
    let mut r = status.into_response();
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

pub(crate) fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}

/// What every service answers when the token is missing or invalid: the body
/// keystonemiddleware (and Keystone itself) writes, with the `WWW-Authenticate` header
/// pointing at the identity endpoint.
pub(crate) fn unauthorized(os: &Os) -> Response {
    let r = json_resp(
        StatusCode::UNAUTHORIZED,
        json!({"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}),
    );
    with_header(
        r,
        "www-authenticate",
        &format!("Keystone uri=\"{}/v3\"", os.ctx.urls.identity),
    )
}

// ---------------------------------------------------------------------------------------
// Authentication shared by the services

/// Who is calling, from a valid token.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub user_id: String,
    pub project_id: Option<String>,
    pub roles: Vec<String>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
    pub fn project(&self) -> &str {
        self.project_id.as_deref().unwrap_or("")
    }
}

impl Os {
    /// Advance every pending transition to now.
    pub fn tick(&self, st: &mut State) {
        // Compute hosts whose machines joined or lost power (`joins.rs`).
        self.platform_events(st);
        nova::advance(self, st, self.now_ms());
    }

    /// The caller behind `X-Auth-Token`, or the 401 every service answers.
    pub fn caller(&self, st: &State, req: &Req) -> Result<Caller, Response> {
        let token = req.header("x-auth-token").unwrap_or("");
        keystone::token_caller(st, token, self.now_ms()).ok_or_else(|| unauthorized(self))
    }

    /// Milliseconds since the epoch, on the twin's clock.
    pub fn now_ms(&self) -> i64 {
        self.ctx.shared.clock.now_ms() as i64
    }

    /// A fresh random UUID from the twin's seeded RNG (so seeded runs repeat their ids).
    pub fn uuid(&self) -> String {
        let a = self.ctx.shared.faults.random_u64();
        let b = self.ctx.shared.faults.random_u64();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// A Keystone-style id: 32 hex digits.
    pub fn hex_id(&self) -> String {
        self.uuid().replace('-', "")
    }

    pub fn random_u64(&self) -> u64 {
        self.ctx.shared.faults.random_u64()
    }

    /// How long an asynchronous step takes (10x with the `slow_task` fault).
    pub fn task_ms(&self, base: i64) -> i64 {
        if self.ctx.shared.faults.slow_task() {
            base * 10
        } else {
            base
        }
    }
}

// ---------------------------------------------------------------------------------------
// Time

fn civil(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parts(ms: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (
        y,
        mo,
        d,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms.rem_euclid(1000),
    )
}

/// `2026-01-02T03:04:05Z` (Nova, Neutron, Glance).
pub(crate) fn iso(ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2026-01-02T03:04:05.000000Z` (Keystone: whole seconds, microsecond field).
pub(crate) fn iso_us(ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.000000Z")
}

/// `2026-01-02T03:04:05.123456` (Nova's `fault.created`, `updated_at` style without zone).
pub(crate) fn iso_plain_us(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = parts(ms);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}",
        milli * 1000
    )
}

/// Parse an ISO 8601 timestamp as the services accept it in filters: a date, or a date
/// and time with optional fraction and zone (`Z`, `+hh:mm`, `-hhmm`).
pub(crate) fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let mo: u32 = s.get(5..7)?.parse().ok()?;
    let d: u32 = s.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, mo, d) * 86_400_000;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    if rest.len() < 5 {
        return None;
    }
    let h: i64 = rest.get(0..2)?.parse().ok()?;
    let mi: i64 = rest.get(3..5)?.parse().ok()?;
    let mut idx = 5;
    let mut sec = 0i64;
    if rest.as_bytes().get(5) == Some(&b':') {
        sec = rest.get(6..8)?.parse().ok()?;
        idx = 8;
    }
    ms += (h * 3600 + mi * 60 + sec) * 1000;
    let mut tail = &rest[idx..];
    if let Some(frac) = tail.strip_prefix('.') {
        let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
        let mut f = digits.clone();
        f.truncate(3);
        while f.len() < 3 {
            f.push('0');
        }
        ms += f.parse::<i64>().unwrap_or(0);
        tail = &frac[digits.len()..];
    }
    match tail {
        "" | "Z" | "z" => Some(ms),
        z => {
            let sign = match z.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let z = z[1..].replace(':', "");
            let zh: i64 = z.get(0..2)?.parse().ok()?;
            let zm: i64 = z.get(2..4).unwrap_or("00").parse().ok()?;
            Some(ms - sign * (zh * 3600 + zm * 60) * 1000)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Small JSON helpers

/// A JSON integer, also accepting integral strings (`"10"`) as the services do.
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean the way the services accept it (`true`, `"True"`, `"1"`, ...).
pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// `true` when the string is a UUID (with or without dashes).
pub(crate) fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// Rebuild a query string from pairs, replacing (or adding) `marker`.
pub(crate) fn query_with(query: &[(String, String)], set: &[(&str, String)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        if set.iter().any(|(s, _)| s == k) {
            continue;
        }
        out.append_pair(k, v);
    }
    for (k, v) in set {
        out.append_pair(k, v);
    }
    out.finish()
}

/// Deterministic-looking MAC in OpenStack's `fa:16:3e` range.
pub(crate) fn mac_from(n: u64) -> String {
    format!(
        "fa:16:3e:{:02x}:{:02x}:{:02x}",
        (n >> 16) & 0xff,
        (n >> 8) & 0xff,
        n & 0xff
    )
}

/// Count objects per kind, used by summary.
pub(crate) fn counts(pairs: &[(&str, usize)]) -> Value {
    let mut m = BTreeMap::new();
    for (k, n) in pairs {
        m.insert(k.to_string(), json!(n));
    }
    json!(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let ms = 1_767_323_045_000; // 2026-01-02T03:04:05Z
        assert_eq!(iso(ms), "2026-01-02T03:04:05Z");
        assert_eq!(iso_us(ms), "2026-01-02T03:04:05.000000Z");
        assert_eq!(parse_iso("2026-01-02T03:04:05Z"), Some(ms));
        assert_eq!(parse_iso("2026-01-02T03:04:05.000000"), Some(ms));
        assert_eq!(parse_iso("2026-01-02T04:04:05+01:00"), Some(ms));
        assert_eq!(
            parse_iso("2026-01-02"),
            Some(ms - (3 * 3600 + 4 * 60 + 5) * 1000)
        );
        assert_eq!(parse_iso("yesterday"), None);
    }
}
