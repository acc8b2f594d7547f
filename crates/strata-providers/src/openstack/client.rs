//! The HTTP side of the OpenStack provider: Keystone password authentication with a
//! project scope, the service catalog, a cached token (renewed shortly before it
//! expires, and once after a 401), request helpers per service and pagination.
//!
//! Every request goes through one [`Endpoint`] (TLS, retries, limits, counters). The
//! password is sent only to Keystone's `/auth/tokens` and the token only in
//! `X-Auth-Token`; neither is logged nor put in an error.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::api;
use crate::ProviderError;
use crate::http::{Endpoint, HttpError};
use crate::targets::{Interface, OpenstackTarget, Secret};

/// The compute API microversion every Nova request asks for: 2.61 is the first that
/// embeds `extra_specs` in `GET /flavors/detail` (one call for all flavors).
pub const COMPUTE_MICROVERSION: &str = "2.61";

/// The Placement API microversion strata asks for: 1.14 is the first with nested
/// providers and `in_tree` (a host's GPUs sit in providers under the host's).
pub const PLACEMENT_MICROVERSION: &str = "1.14";

/// The services strata talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Identity,
    Compute,
    Network,
    Placement,
}

impl Service {
    fn catalog_type(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Compute => "compute",
            Service::Network => "network",
            Service::Placement => "placement",
        }
    }
}

/// One authenticated session: a project-scoped token and the endpoints of its catalog.
pub struct Session {
    token: TokenId,
    /// When to authenticate again (shortly before the token expires).
    refresh_at: SystemTime,
    pub expires_at: String,
    pub project_id: String,
    /// The domain of the scoped project; strata creates its projects there.
    pub domain_id: String,
    /// The endpoint of the target's interface per catalog type in the target's region
    /// (normalised).
    pub endpoints: BTreeMap<String, String>,
    pub interface: Interface,
}

impl Session {
    fn base(&self, svc: Service) -> Result<&str, ProviderError> {
        self.endpoints
            .get(svc.catalog_type())
            .map(String::as_str)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "the service catalog has no {} {} endpoint in this region (the target's `interface`)",
                    self.interface.as_str(),
                    svc.catalog_type()
                ))
            })
    }
}

/// A successful answer.
pub struct Reply {
    pub body: Value,
}

impl Reply {
    pub fn parse<T: DeserializeOwned>(&self, what: &str) -> Result<T, ProviderError> {
        serde_json::from_value(self.body.clone())
            .map_err(|e| ProviderError::Api(format!("unexpected {what} response: {e}")))
    }
}

pub struct Client {
    http: Endpoint,
    auth_url: String,
    region: String,
    username: String,
    password: Secret,
    project: String,
    user_domain: String,
    project_domain: String,
    interface: Interface,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    /// `limit` asked of paginated lists.
    pub page_size: usize,
}

impl Client {
    pub fn new(http: Endpoint, target: &OpenstackTarget) -> Client {
        Client {
            http,
            auth_url: target.auth_url.trim_end_matches('/').to_string(),
            region: target.region.clone(),
            username: target.username.clone(),
            password: target.password.clone(),
            project: target.project.clone(),
            user_domain: target.user_domain.clone(),
            project_domain: target.project_domain.clone(),
            interface: target.interface,
            session: tokio::sync::Mutex::new(None),
            page_size: 1000,
        }
    }

    pub fn calls(&self) -> u64 {
        self.http.calls()
    }

    /// The target's region (Keystone region id).
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The current session, authenticating when there is none or it is about to expire.
    pub async fn session(&self) -> Result<Arc<Session>, ProviderError> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_ref()
            && SystemTime::now() < s.refresh_at
        {
            return Ok(s.clone());
        }
        *guard = None;
        let s = Arc::new(self.authenticate().await?);
        *guard = Some(s.clone());
        Ok(s)
    }

    /// Forget `stale` (after a 401), unless another request already replaced it.
    async fn invalidate(&self, stale: &Arc<Session>) {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_some_and(|s| Arc::ptr_eq(s, stale)) {
            *guard = None;
        }
    }

    async fn authenticate(&self) -> Result<Session, ProviderError> {
        let body = json!({"auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {
                    "name": self.username,
                    "domain": {"name": self.user_domain},
                    "password": self.password.expose(),
                }},
            },
            "scope": {"project": {"name": self.project, "domain": {"name": self.project_domain}}},
        }});
        let url = format!("{}/auth/tokens", self.auth_url);
        // Issuing a token has no side effect worth protecting: retry it like a GET.
        let resp = self
            .http
            .send(Method::POST, &url, Some(true), |b| {
                b.header("Accept", "application/json").json(&body)
            })
            .await
            .map_err(|e| match e.status() {
                Some(StatusCode::UNAUTHORIZED) => ProviderError::Refused(format!(
                    "Keystone at {} rejected the credentials of user {} (domain {}) for project {} (domain {})",
                    self.auth_url, self.username, self.user_domain, self.project, self.project_domain
                )),
                _ => ProviderError::Http(e),
            })?;
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::Api("Keystone issued no X-Subject-Token header".into())
            })?;
        let text = resp.text().await.map_err(|e| {
            ProviderError::Http(HttpError::Transport {
                method: Method::POST,
                url: url.clone(),
                source: e,
            })
        })?;
        let parsed: api::TokenResponse = serde_json::from_str(&text)
            .map_err(|e| ProviderError::Api(format!("unexpected Keystone token response: {e}")))?;
        session_from(
            TokenId::new(token),
            &parsed.token,
            &self.region,
            self.interface,
            &self.auth_url,
            SystemTime::now(),
        )
    }

    /// Send one request to a service. `path` is relative to the service's endpoint
    /// (`/flavors/detail?is_public=None`). A 401 renews the token and tries once more.
    pub async fn request(
        &self,
        svc: Service,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotent: Option<bool>,
    ) -> Result<Reply, ProviderError> {
        let safe = idempotent.unwrap_or(matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        ));
        let mut reauthenticated = false;
        let mut body_failures = 0;
        loop {
            let session = self.session().await?;
            let url = format!("{}{path}", session.base(svc)?);
            let token = session.token.expose().to_string();
            let sent = self
                .http
                .send(method.clone(), &url, idempotent, |b| {
                    let mut b = b
                        .header("X-Auth-Token", &token)
                        .header("Accept", "application/json");
                    if svc == Service::Compute {
                        b = b.header(
                            "OpenStack-API-Version",
                            format!("compute {COMPUTE_MICROVERSION}"),
                        );
                    }
                    if svc == Service::Placement {
                        b = b.header(
                            "OpenStack-API-Version",
                            format!("placement {PLACEMENT_MICROVERSION}"),
                        );
                    }
                    if let Some(v) = body {
                        b = b.json(v);
                    }
                    b
                })
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) if e.status() == Some(StatusCode::UNAUTHORIZED) && !reauthenticated => {
                    tracing::debug!("{method} {url}: 401, authenticating again");
                    reauthenticated = true;
                    self.invalidate(&session).await;
                    continue;
                }
                Err(e) => return Err(ProviderError::Http(e)),
            };
            match resp.bytes().await {
                Ok(bytes) => {
                    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
                        Value::Null
                    } else {
                        serde_json::from_slice(&bytes).map_err(|e| {
                            ProviderError::Api(format!(
                                "{method} {url}: the answer is not JSON: {e}"
                            ))
                        })?
                    };
                    return Ok(Reply { body });
                }
                // The connection broke while the body was on its way: repeat what is
                // safe to repeat, report the rest as ambiguous (the caller re-observes).
                Err(e) => {
                    body_failures += 1;
                    if !safe || body_failures >= 4 {
                        return Err(ProviderError::Http(HttpError::Transport {
                            method,
                            url,
                            source: e,
                        }));
                    }
                    tokio::time::sleep(Duration::from_millis(50 * body_failures)).await;
                }
            }
        }
    }

    pub async fn get(&self, svc: Service, path: &str) -> Result<Reply, ProviderError> {
        self.request(svc, Method::GET, path, None, None).await
    }

    /// Every item of a paginated collection, following `next` links (Nova's
    /// `<collection>_links`, Neutron's `<collection>_links`, Keystone's `links.next`).
    /// The next link's query is replayed against strata's own endpoint URL, so links a
    /// service writes with an internal host name still work.
    pub async fn list<T: DeserializeOwned>(
        &self,
        svc: Service,
        path: &str,
        collection: &str,
    ) -> Result<Vec<T>, ProviderError> {
        let base_path = path.split('?').next().unwrap_or(path).to_string();
        let mut current = path.to_string();
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let reply = self.get(svc, &current).await?;
            let items = reply
                .body
                .get(collection)
                .and_then(Value::as_array)
                .ok_or_else(|| {
                    ProviderError::Api(format!(
                        "GET {current}: no `{collection}` list in the answer"
                    ))
                })?;
            for item in items {
                out.push(serde_json::from_value(item.clone()).map_err(|e| {
                    ProviderError::Api(format!("GET {current}: unexpected {collection} item: {e}"))
                })?);
            }
            let Some(next) = api::next_link(&reply.body, collection) else {
                break;
            };
            if items.is_empty() {
                break;
            }
            let query = match url::Url::parse(&next) {
                Ok(u) => u.query().unwrap_or("").to_string(),
                Err(_) => next
                    .split_once('?')
                    .map(|(_, q)| q.to_string())
                    .unwrap_or_default(),
            };
            let following = if query.is_empty() {
                base_path.clone()
            } else {
                format!("{base_path}?{query}")
            };
            if !seen.insert(following.clone()) || seen.len() > 10_000 {
                return Err(ProviderError::Api(format!(
                    "GET {base_path}: the pagination links go round in circles"
                )));
            }
            current = following;
        }
        Ok(out)
    }
}

/// A Keystone token: never printed.
pub struct TokenId(String);

impl TokenId {
    pub fn new(token: String) -> TokenId {
        TokenId(token)
    }
    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenId(***)")
    }
}

/// Build a session from Keystone's token body.
pub fn session_from(
    token: TokenId,
    t: &api::Token,
    region: &str,
    interface: Interface,
    auth_url: &str,
    now: SystemTime,
) -> Result<Session, ProviderError> {
    let project = t.project.as_ref().ok_or_else(|| {
        ProviderError::Api("Keystone issued a token without a project scope".into())
    })?;
    let domain_id = project
        .domain
        .as_ref()
        .and_then(|d| d.id.clone())
        .unwrap_or_else(|| "default".into());
    let mut endpoints = BTreeMap::new();
    for svc in [
        Service::Identity,
        Service::Compute,
        Service::Network,
        Service::Placement,
    ] {
        if let Some(u) =
            api::endpoint_url(&t.catalog, svc.catalog_type(), region, interface.as_str())
        {
            endpoints.insert(svc.catalog_type().to_string(), normalise(svc, &u));
        }
    }
    endpoints
        .entry("identity".to_string())
        .or_insert_with(|| normalise(Service::Identity, auth_url));
    let issued = t.issued_at.as_deref().and_then(parse_time);
    let expires = parse_time(&t.expires_at);
    Ok(Session {
        token,
        refresh_at: refresh_at(now, issued, expires),
        expires_at: t.expires_at.clone(),
        project_id: project.id.clone(),
        domain_id,
        endpoints,
        interface,
    })
}

/// When to renew a token: five minutes before it expires, or halfway through its
/// life for short-lived tokens; after 30 minutes when the expiry cannot be read.
///
/// The token's life is measured on Keystone's clock (`expires_at - issued_at`) and
/// counted from `now` on ours, so a skewed local clock neither renews every token at
/// once nor keeps an expired one.
pub fn refresh_at(
    now: SystemTime,
    issued: Option<SystemTime>,
    expires: Option<SystemTime>,
) -> SystemTime {
    let life = match (issued, expires) {
        (Some(i), Some(e)) => e.duration_since(i).unwrap_or(Duration::ZERO),
        (None, Some(e)) => e.duration_since(now).unwrap_or(Duration::ZERO),
        (_, None) => return now + Duration::from_secs(1800),
    };
    let margin = Duration::from_secs(300).min(life / 2);
    now + (life - margin)
}

/// The endpoint URL with the API version strata speaks and no trailing slash.
pub fn normalise(svc: Service, url: &str) -> String {
    let u = url.trim_end_matches('/').to_string();
    let has_segment = |seg: &str| {
        u.split('/')
            .skip(3) // scheme, empty, host
            .any(|s| s == seg)
    };
    match svc {
        Service::Identity if !has_segment("v3") => format!("{u}/v3"),
        Service::Compute if !has_segment("v2.1") && !has_segment("v2") => format!("{u}/v2.1"),
        Service::Network if !has_segment("v2.0") => format!("{u}/v2.0"),
        _ => u,
    }
}

/// `2015-11-07T02:58:43.578887Z` (or with a `+hh:mm` offset) → a point in time.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (clock, offset_secs) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (c, off) = rest.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let off = off[1..].replace(':', "");
        let h: i64 = off.get(0..2)?.parse().ok()?;
        let mi: i64 = off.get(2..4).unwrap_or("00").parse().ok()?;
        (c, sign * (h * 3600 + mi * 60))
    } else {
        (rest, 0)
    };
    let clock = clock.split('.').next()?;
    let mut c = clock.split(':');
    let h: i64 = c.next()?.parse().ok()?;
    let mi: i64 = c.next()?.parse().ok()?;
    let sec: i64 = c.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant.
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// Percent-encode one path segment (keeps unreserved characters and `:`).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from pairs.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        let t = parse_time("2015-11-07T02:58:43.578887Z").expect("time");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs(),
            1_446_865_123
        );
        assert_eq!(parse_time("2015-11-07T03:58:43+01:00"), Some(t));
        assert_eq!(parse_time("2015-11-07T01:58:43-01:00"), Some(t));
        assert_eq!(
            parse_time("2015-11-07T02:58:43"),
            parse_time("2015-11-07T02:58:43Z")
        );
        assert!(parse_time("soon").is_none());
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = now + Duration::from_secs(3600);
        assert_eq!(
            refresh_at(now, None, Some(hour)),
            hour - Duration::from_secs(300)
        );
        let short = now + Duration::from_secs(120);
        assert_eq!(
            refresh_at(now, None, Some(short)),
            now + Duration::from_secs(60)
        );
        assert_eq!(refresh_at(now, None, Some(now)), now);
        assert_eq!(refresh_at(now, None, None), now + Duration::from_secs(1800));
        // Keystone's clock is two hours behind ours: the token still lasts an hour.
        let k = now - Duration::from_secs(7200);
        assert_eq!(
            refresh_at(now, Some(k), Some(k + Duration::from_secs(3600))),
            now + Duration::from_secs(3300)
        );
    }

    #[test]
    fn endpoints_are_normalised() {
        assert_eq!(
            normalise(Service::Identity, "http://k:5000/v3/"),
            "http://k:5000/v3"
        );
        assert_eq!(
            normalise(Service::Identity, "http://k:5000"),
            "http://k:5000/v3"
        );
        assert_eq!(
            normalise(Service::Compute, "http://n:8774/v2.1/abc"),
            "http://n:8774/v2.1/abc"
        );
        assert_eq!(
            normalise(Service::Compute, "http://n/compute"),
            "http://n/compute/v2.1"
        );
        assert_eq!(
            normalise(Service::Network, "http://q:9696/"),
            "http://q:9696/v2.0"
        );
        assert_eq!(normalise(Service::Placement, "http://p/"), "http://p");
        assert_eq!(seg("strata:owner"), "strata:owner");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
    }
}
