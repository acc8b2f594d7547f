//! The HTTP vocabulary the three simulated services share: one error type
//! ([`ApiError`], rendered by each service in its vendor's body shape through
//! [`ErrorBody`]), one route table ([`RouteTable`]: method, path pattern, MAAS `op`,
//! OpenStack microversion range, handler) and one request reader ([`Request`]: path
//! parameters, query, headers and body read up front, so handlers are plain functions).

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

/// An error of a simulated API: a status, a stable code and a message, plus per-field
/// messages for validation errors. Each service renders it in its vendor's shape
/// (OpenStack's `{"itemNotFound": {...}}`, Proxmox's `{"errors": ..., "data": null}`,
/// MAAS's plain text).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable code: the vendor's own error name where it has one (Neutron's
    /// `NetworkNotFound`, Placement's `placement.inventory.inuse`, Nova's
    /// `itemNotFound`), empty where the vendor has none.
    pub code: Cow<'static, str>,
    pub message: String,
    /// Per-field messages, in order, a field possibly repeated (Proxmox parameter
    /// verification, MAAS form validation).
    pub fields: Vec<(String, String)>,
}

impl ApiError {
    /// An error with a status (a bad number becomes 500), code and message.
    pub fn new(
        status: u16,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.into(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// A validation error: 400 with per-field messages.
    pub fn fields(message: impl Into<String>, fields: Vec<(String, String)>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: Cow::Borrowed("invalid_fields"),
            message: message.into(),
            fields,
        }
    }
}

/// How one vendor writes an [`ApiError`] as a response.
pub trait ErrorBody {
    fn render(&self, err: &ApiError) -> Response;
}

/// One route of a service: method, path pattern (`{name}` marks a parameter) relative
/// to the service's mount point, the MAAS operation (`?op=NAME`) it serves, the
/// OpenStack microversion range (minor numbers, inclusive) it exists in, and its
/// handler.
#[derive(Clone, Debug)]
pub struct Route<H> {
    pub method: Method,
    pub path: String,
    pub op: Option<&'static str>,
    pub microversions: Option<(u32, u32)>,
    pub handler: H,
}

impl<H> Route<H> {
    pub fn new(method: Method, path: impl Into<String>, handler: H) -> Self {
        Route {
            method,
            path: path.into(),
            op: None,
            microversions: None,
            handler,
        }
    }

    /// The same route, serving MAAS operation `op`.
    pub fn op(mut self, op: Option<&'static str>) -> Self {
        self.op = op;
        self
    }

    /// The same route, existing from microversion `min` to `max` (minor numbers).
    pub fn microversions(mut self, min: u32, max: u32) -> Self {
        self.microversions = Some((min, max));
        self
    }

    /// Whether the route exists at microversion `mv` (always, without a range).
    pub fn serves(&self, mv: u32) -> bool {
        self.microversions
            .is_none_or(|(min, max)| (min..=max).contains(&mv))
    }
}

/// Every route of a service, in the order they were added.
#[derive(Clone, Debug)]
pub struct RouteTable<H> {
    routes: Vec<Route<H>>,
}

impl<H> Default for RouteTable<H> {
    fn default() -> Self {
        RouteTable { routes: Vec::new() }
    }
}

impl<H> RouteTable<H> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, route: Route<H>) {
        self.routes.push(route);
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Route<H>> {
        self.routes.iter()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// (method, path) of every route, the path under `prefix` and with `?op=NAME` for
    /// MAAS operations: what [`crate::Service::routes`] lists.
    pub fn listing(&self, prefix: &str) -> Vec<(String, String)> {
        self.routes
            .iter()
            .map(|r| {
                let path = match r.op {
                    Some(op) => format!("{prefix}{}?op={op}", r.path),
                    None => format!("{prefix}{}", r.path),
                };
                (r.method.to_string(), path)
            })
            .collect()
    }

    /// The routes grouped by path, paths in first-added order (what an axum router is
    /// built from: one method router per path).
    pub fn by_path(&self) -> Vec<(&str, Vec<&Route<H>>)> {
        let mut out: Vec<(&str, Vec<&Route<H>>)> = Vec::new();
        for r in &self.routes {
            match out.iter_mut().find(|(p, _)| *p == r.path) {
                Some((_, rs)) => rs.push(r),
                None => out.push((r.path.as_str(), vec![r])),
            }
        }
        out
    }
}

impl<'a, H> IntoIterator for &'a RouteTable<H> {
    type Item = &'a Route<H>;
    type IntoIter = std::slice::Iter<'a, Route<H>>;
    fn into_iter(self) -> Self::IntoIter {
        self.routes.iter()
    }
}

impl<H> IntoIterator for RouteTable<H> {
    type Item = Route<H>;
    type IntoIter = std::vec::IntoIter<Route<H>>;
    fn into_iter(self) -> Self::IntoIter {
        self.routes.into_iter()
    }
}

impl<H> FromIterator<Route<H>> for RouteTable<H> {
    fn from_iter<I: IntoIterator<Item = Route<H>>>(iter: I) -> Self {
        RouteTable {
            routes: iter.into_iter().collect(),
        }
    }
}

/// The body was larger than the service accepts.
#[derive(Debug, thiserror::Error)]
#[error("request body too large or unreadable")]
pub struct BodyTooLarge;

/// Everything a handler needs from a request, read up front.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// The request path (below the service's mount point when nested).
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Path parameters of the matched route, percent-decoded.
    pub params: Vec<(String, String)>,
}

impl Request {
    /// Read a request: path parameters (when a route matched), query, headers and a
    /// body of at most `limit` bytes.
    pub async fn read(req: axum::extract::Request, limit: usize) -> Result<Self, BodyTooLarge> {
        let (mut parts, body) = req.into_parts();
        let params = match RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(p) => p
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Err(_) => Vec::new(),
        };
        let body = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| BodyTooLarge)?;
        Ok(Request {
            query: parse_form(parts.uri.query().unwrap_or("").as_bytes()),
            path: parts.uri.path().to_string(),
            method: parts.method,
            headers: parts.headers,
            body,
            params,
        })
    }

    /// A path parameter (percent-decoded; empty when absent).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The first value of a query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a query parameter.
    pub fn q_all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A header's value, when it is valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (`None` when empty or not JSON).
    pub fn json(&self) -> Option<Value> {
        if self.body_is_empty() {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the body is empty or only whitespace.
    pub fn body_is_empty(&self) -> bool {
        self.body.iter().all(|b| b.is_ascii_whitespace())
    }
}

/// Percent-decoded `key=value` pairs of a query string or an
/// `application/x-www-form-urlencoded` body, in order.
pub fn parse_form(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_writes_ops_and_prefixes() {
        let table: RouteTable<()> = [
            Route::new(Method::GET, "/machines/", ()),
            Route::new(Method::POST, "/machines/", ()).op(Some("allocate")),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            table.listing("/api/2.0"),
            vec![
                ("GET".to_string(), "/api/2.0/machines/".to_string()),
                (
                    "POST".to_string(),
                    "/api/2.0/machines/?op=allocate".to_string()
                ),
            ]
        );
        let grouped = table.by_path();
        assert_eq!(grouped.len(), 1);
        assert_eq!(grouped[0].1.len(), 2);
    }

    #[test]
    fn microversion_ranges() {
        let r = Route::new(Method::GET, "/servers/{id}/tags", ()).microversions(26, 104);
        assert!(!r.serves(25));
        assert!(r.serves(26) && r.serves(104));
        assert!(!r.serves(105));
        assert!(Route::new(Method::GET, "/", ()).serves(1));
    }

    #[test]
    fn errors_keep_status_code_and_message() {
        let e = ApiError::new(404, "itemNotFound", "Flavor 7 could not be found.");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(
            e.to_string(),
            "404 Not Found itemNotFound: Flavor 7 could not be found."
        );
        assert_eq!(
            ApiError::new(1000, "", "x").status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
