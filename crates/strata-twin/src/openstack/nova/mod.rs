//! Nova, compute API v2.1 with microversions 2.1–2.104: version documents, flavors and
//! extra specs, key pairs, server groups (with the scheduler's group filters and
//! weighers), servers (asynchronous build through the Placement-backed
//! scheduler, with PCI aliases mapped to GPU inventories; actions; metadata; tags),
//! cold and live migration with their records, availability zones, hypervisors and
//! compute services (enable/disable, forced down, delete with nova's refusals), quotas
//! and limits. Errors are worded and ordered as nova's request validation words them
//! (`validation.rs`); headers are nova's WSGI layer's (version headers, Content-Type
//! also on empty answers). The differential test against real Nova
//! (tests/nova_differential.rs) holds the behaviour to the real service's.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::model::*;
use super::*;
use crate::core::{ApiError, ErrorBody};

mod actions;
mod aggregates;
mod boot;
mod compute_hosts;
mod extra_specs;
mod flavors;
mod keypairs;
mod migrations;
mod quotas;
mod server_groups;
mod server_metadata;
mod servers;
mod validation;

pub(crate) use actions::advance;
use actions::*;
use aggregates::*;
use boot::*;
use compute_hosts::*;
pub(crate) use flavors::parse_alias_spec;
use flavors::*;
use keypairs::*;
use migrations::*;
pub(crate) use quotas::quota_limits;
use quotas::*;
use server_groups::*;
use server_metadata::*;
use servers::*;
pub(crate) use servers::{destroy_server, status_of};
use validation::*;

pub(crate) const MAX_MINOR: u32 = 104;
const MAX_LIMIT: usize = 1000;
const BUILD_MS: i64 = 1500;
const ACTION_MS: i64 = 500;
/// How long of a build the scheduler has the server (no host shown yet).
const SCHEDULE_MS: i64 = 1000;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("/compute", &[(GET, versions)])
        .add("/compute/", &[(GET, versions)])
        .add("/compute/v2.1", &[(GET, version21)])
        .add("/compute/v2.1/", &[(GET, version21)])
        .add("/compute/v2", &[(GET, version2)])
        .add("/compute/v2/", &[(GET, version2)])
        .add_versioned(
            "/compute/v2.1/flavors",
            &[
                (GET, flavors_list_, 1, MAX_MINOR),
                (POST, flavor_create_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/flavors/detail",
            &[(GET, flavors_detail_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/flavors/{id}",
            &[
                (GET, flavor_get_, 1, MAX_MINOR),
                (PUT, flavor_update_, 55, MAX_MINOR),
                (DELETE, flavor_delete_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/flavors/{id}/action",
            &[(POST, flavor_action_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/flavors/{id}/os-flavor-access",
            &[(GET, flavor_access_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/flavors/{id}/os-extra_specs",
            &[
                (GET, specs_list_, 1, MAX_MINOR),
                (POST, specs_create_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/flavors/{id}/os-extra_specs/{key}",
            &[
                (GET, spec_get_, 1, MAX_MINOR),
                (PUT, spec_put_, 1, MAX_MINOR),
                (DELETE, spec_delete_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/os-keypairs",
            &[
                (GET, keypairs_list_, 1, MAX_MINOR),
                (POST, keypair_create_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/os-keypairs/{name}",
            &[
                (GET, keypair_get_, 1, MAX_MINOR),
                (DELETE, keypair_delete_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/os-server-groups",
            &[
                (GET, groups_list_, 1, MAX_MINOR),
                (POST, group_create_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/os-server-groups/{id}",
            &[
                (GET, group_get_, 1, MAX_MINOR),
                (DELETE, group_delete_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/servers",
            &[
                (GET, servers_list_, 1, MAX_MINOR),
                (POST, server_create_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/servers/detail",
            &[(GET, servers_detail_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}",
            &[
                (GET, server_get_, 1, MAX_MINOR),
                (PUT, server_update_, 1, MAX_MINOR),
                (DELETE, server_delete_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/action",
            &[(POST, server_action_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/metadata",
            &[
                (GET, meta_list_, 1, MAX_MINOR),
                (POST, meta_merge_, 1, MAX_MINOR),
                (PUT, meta_replace_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/metadata/{key}",
            &[
                (GET, meta_get_, 1, MAX_MINOR),
                (PUT, meta_put_, 1, MAX_MINOR),
                (DELETE, meta_delete_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/tags",
            &[
                (GET, tags_list_, 26, MAX_MINOR),
                (PUT, tags_replace_, 26, MAX_MINOR),
                (DELETE, tags_clear_, 26, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/tags/{tag}",
            &[
                (GET, tag_check_, 26, MAX_MINOR),
                (PUT, tag_add_, 26, MAX_MINOR),
                (DELETE, tag_delete_, 26, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/ips",
            &[(GET, server_ips_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/os-instance-actions",
            &[(GET, actions_list_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/os-instance-actions/{req}",
            &[(GET, action_get_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/os-interface",
            &[(GET, server_interfaces_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/os-security-groups",
            &[(GET, server_sgs_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-availability-zone",
            &[(GET, az_list_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-availability-zone/detail",
            &[(GET, az_detail_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-hypervisors",
            &[(GET, hyp_list_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-hypervisors/detail",
            &[(GET, hyp_detail_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-hypervisors/statistics",
            &[(GET, hyp_stats_, 1, 87)],
        )
        .add_versioned(
            "/compute/v2.1/os-hypervisors/{id}",
            &[(GET, hyp_show_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-hypervisors/{id}/uptime",
            &[(GET, hyp_uptime_, 1, 87)],
        )
        .add_versioned(
            "/compute/v2.1/os-hypervisors/{id}/search",
            &[(GET, hyp_search_, 1, 52)],
        )
        .add_versioned(
            "/compute/v2.1/os-hypervisors/{id}/servers",
            &[(GET, hyp_servers_, 1, 52)],
        )
        .add_versioned(
            "/compute/v2.1/os-aggregates",
            &[
                (GET, aggs_list_, 1, MAX_MINOR),
                (POST, agg_create_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/os-aggregates/{id}",
            &[
                (GET, agg_get_, 1, MAX_MINOR),
                (PUT, agg_update_, 1, MAX_MINOR),
                (DELETE, agg_delete_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/os-aggregates/{id}/action",
            &[(POST, agg_action_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-aggregates/{id}/images",
            &[(POST, agg_images_, 81, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-services",
            &[(GET, services_list_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-services/{id}",
            &[
                (PUT, service_update_, 1, MAX_MINOR),
                (DELETE, service_delete_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/os-migrations",
            &[(GET, migrations_list_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/migrations",
            &[(GET, server_migrations_, 23, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/servers/{id}/migrations/{mid}",
            &[(GET, server_migration_, 23, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-quota-sets/{id}",
            &[
                (GET, quota_show_, 1, MAX_MINOR),
                (PUT, quota_update_, 1, MAX_MINOR),
                (DELETE, quota_delete_, 1, MAX_MINOR),
            ],
        )
        .add_versioned(
            "/compute/v2.1/os-quota-sets/{id}/defaults",
            &[(GET, quota_defaults_, 1, MAX_MINOR)],
        )
        .add_versioned(
            "/compute/v2.1/os-quota-sets/{id}/detail",
            &[(GET, quota_detail_, 1, MAX_MINOR)],
        )
        .add_versioned("/compute/v2.1/limits", &[(GET, limits_, 1, MAX_MINOR)])
        .add(
            "/compute/v2.1/{*rest}",
            &[
                (GET, unknown_path),
                (POST, unknown_path),
                (PUT, unknown_path),
                (PATCH, unknown_path),
                (DELETE, unknown_path),
            ],
        )
}

/// A path no Nova route has: nova's router answers with webob's bare 404 (no fault
/// document, no version headers), as JSON when the client accepts it, else HTML.
fn unknown_path(_os: &Os, req: &Req) -> R {
    use axum::http::{HeaderValue, header::CONTENT_TYPE};
    use axum::response::IntoResponse;
    let json = req
        .header("accept")
        .is_some_and(|a| a.contains("application/json"));
    let (body, ctype) = if json {
        (
            json!({
                "code": "404 Not Found",
                "title": "Not Found",
                "message": "The resource could not be found.<br /><br />\n\n\n",
            })
            .to_string(),
            "application/json",
        )
    } else {
        (
            "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  \
             <h1>404 Not Found</h1>\n  The resource could not be found.<br /><br />\n\n\n\n \
             </body>\n</html>"
                .to_string(),
            "text/html; charset=UTF-8",
        )
    };
    let mut r = (StatusCode::NOT_FOUND, body).into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    let id = format!("req-{}", uuid::Uuid::new_v4());
    Ok(with_header(r, "x-compute-request-id", &id))
}

// ---------------------------------------------------------------------------------------
// Errors, microversions, the request wrapper

/// A Nova fault document (`{"itemNotFound": {"code": 404, "message": ...}}`).
pub(crate) fn err(status: u16, message: &str) -> Response {
    let name = match status {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        415 => "badMediaType",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    };
    NovaErrors.render(&ApiError::new(status, name, message))
}

/// Nova's error body: `{"<name>": {"code": STATUS, "message": ...}}`.
pub(crate) struct NovaErrors;

impl ErrorBody for NovaErrors {
    fn render(&self, e: &ApiError) -> Response {
        json_resp(
            e.status,
            json!({e.code.as_ref(): {"code": e.status.as_u16(), "message": e.message}}),
        )
    }
}

fn bad(message: &str) -> Response {
    err(400, message)
}

/// nova's schema error for the property `field` holding `value` (the value as Python's
/// `str()` prints it); for the body itself (`request body`) only the message, as nova
/// words an error at the root of the document.
fn invalid(field: &str, value: &Value, why: &str) -> Response {
    invalid_field(field, value, why)
}

/// The action a `POST .../action` body names (nova/api/openstack/wsgi.py
/// `action_peek`): a body that is not JSON or has other than one key is malformed; a
/// one-element array or string has no keys, which nova's dispatcher answers with a
/// bare 404.
pub(super) fn action_peek(req: &Req) -> Result<(String, Value), Response> {
    let malformed = || bad("Malformed request body");
    let body: Value = serde_json::from_slice(&req.body).map_err(|_| malformed())?;
    let len = match &body {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        Value::String(s) => s.chars().count(),
        _ => return Err(err(404, "The resource could not be found.")),
    };
    if len != 1 {
        return Err(malformed());
    }
    match body {
        Value::Object(m) => Ok(m.into_iter().next().expect("one key")),
        _ => Err(err(404, "The resource could not be found.")),
    }
}

/// The requested compute microversion (minor number; 2.1 when absent). The service
/// name in `OpenStack-API-Version` is matched case-insensitively, as
/// microversion_parse does.
fn microversion(req: &Req) -> Result<u32, Response> {
    let from_new = req.header("openstack-api-version").and_then(|h| {
        h.split(',').map(str::trim).find_map(|p| {
            let (service, version) = p.split_once(char::is_whitespace)?;
            service
                .eq_ignore_ascii_case("compute")
                .then(|| version.trim().to_string())
        })
    });
    let raw = from_new.or_else(|| {
        req.header("x-openstack-nova-api-version")
            .map(|v| v.trim().to_string())
    });
    let Some(v) = raw else { return Ok(1) };
    if v == "latest" {
        return Ok(MAX_MINOR);
    }
    let parsed = v
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    let Some((major, minor)) = parsed else {
        return Err(bad(&format!(
            "API Version String {v} is of invalid format. Must be of format MajorNum.MinorNum."
        )));
    };
    if major != 2 || !(1..=MAX_MINOR).contains(&minor) {
        // The refusal still names the version asked for in its headers
        // (nova/api/openstack/wsgi.py sets them from the parsed request version).
        let e = err(
            406,
            &format!(
                "Version {v} is not supported by the API. Minimum is 2.1 and maximum is 2.{MAX_MINOR}."
            ),
        );
        return Err(version_headers(e, &format!("{major}.{minor}")));
    }
    Ok(minor)
}

fn version_headers(mut r: Response, v: &str) -> Response {
    r = with_header(r, "openstack-api-version", &format!("compute {v}"));
    r = with_header(r, "x-openstack-nova-api-version", v);
    with_header(
        r,
        "vary",
        "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
    )
}

/// What nova's WSGI layer adds to every answer: the version headers, the request id and
/// a Content-Type also on empty bodies (`application/json`; faults say their charset).
fn add_headers(mv: u32, r: Response) -> Response {
    let mut r = version_headers(r, &format!("2.{mv}"));
    fix_content_type(&mut r);
    let id = format!("req-{}", uuid::Uuid::new_v4());
    with_header(r, "x-compute-request-id", &id)
}

/// Content-Type as nova's WSGI layer writes it: a fault is
/// `application/json; charset=UTF-8` (webob's), a body-less answer still says
/// `application/json` (`ResponseObject.serialize`); a handler that set another type
/// (webob's default `text/html` of the tag routes) keeps it.
fn fix_content_type(r: &mut Response) {
    use axum::http::{HeaderValue, header::CONTENT_TYPE};
    let json = r
        .headers()
        .get(CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes() == b"application/json");
    if !json {
        return;
    }
    let value = if r.status().as_u16() >= 400 {
        "application/json; charset=UTF-8"
    } else {
        "application/json"
    };
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(value));
}

pub(crate) struct Cx {
    pub mv: u32,
    pub caller: Caller,
}

impl Cx {
    fn admin(&self) -> bool {
        self.caller.is_admin()
    }
    fn require_admin(&self, rule: &str) -> Result<(), Response> {
        if self.admin() {
            Ok(())
        } else {
            Err(err(
                403,
                &format!("Policy doesn't allow {rule} to be performed."),
            ))
        }
    }
}

/// A Nova handler: runs on the locked state once the caller, microversion and route
/// range are checked.
pub(crate) type Inner = fn(&Os, &Req, &mut State, &Cx) -> R;

/// Nova's pipeline around a handler: authenticate, negotiate the microversion, answer
/// 404 outside the route's range `min..=max`, require a project-scoped token, then run
/// the handler and add the version headers.
pub(crate) fn handle(os: &Os, req: &Req, min: u32, max: u32, f: Inner) -> R {
    let mut st = os.st.lock();
    let caller = os.caller(&st, req)?;
    let mv = match microversion(req) {
        Ok(v) => v,
        Err(mut e) => {
            fix_content_type(&mut e);
            return Ok(e);
        }
    };
    let r = if mv < min || mv > max {
        Err(err(404, "The resource could not be found."))
    } else if caller.project_id.is_none() {
        Err(err(
            403,
            "Policy doesn't allow this request: a project-scoped token is required.",
        ))
    } else {
        os.tick(&mut st);
        with_body_order(&req.body, || f(os, req, &mut st, &Cx { mv, caller }))
    };
    Ok(add_headers(
        mv,
        match r {
            Ok(r) | Err(r) => r,
        },
    ))
}

// ---------------------------------------------------------------------------------------
// Version documents

fn version_entry(os: &Os, v21: bool, full: bool) -> Value {
    let (id, path, status, version, min, updated) = if v21 {
        (
            "v2.1",
            "v2.1/",
            "CURRENT",
            format!("2.{MAX_MINOR}"),
            "2.1",
            "2013-07-23T11:33:21Z",
        )
    } else {
        (
            "v2.0",
            "v2/",
            "DEPRECATED",
            String::new(),
            "",
            "2025-07-04T12:00:00Z",
        )
    };
    let mut links = vec![json!({"href": format!("{}/{path}", os.ctx.urls.compute), "rel": "self"})];
    let mut v = json!({"id": id, "status": status, "version": version, "min_version": min, "updated": updated});
    if full {
        links.push(json!({"href": "http://docs.openstack.org/", "rel": "describedby", "type": "text/html"}));
        let media = if v21 {
            "application/vnd.openstack.compute+json;version=2.1"
        } else {
            "application/vnd.openstack.compute+json;version=2"
        };
        v["media-types"] = json!([{"base": "application/json", "type": media}]);
    }
    v["links"] = json!(links);
    v
}

fn versions(os: &Os, _req: &Req) -> R {
    Ok(json_resp(
        StatusCode::OK,
        json!({"versions": [version_entry(os, false, false), version_entry(os, true, false)]}),
    ))
}

fn version21(os: &Os, req: &Req) -> R {
    let mv = microversion(req).unwrap_or(1);
    Ok(add_headers(
        mv,
        json_resp(
            StatusCode::OK,
            json!({"version": version_entry(os, true, true)}),
        ),
    ))
}

fn version2(os: &Os, _req: &Req) -> R {
    Ok(json_resp(
        StatusCode::OK,
        json!({"version": version_entry(os, false, true)}),
    ))
}

// ---------------------------------------------------------------------------------------
// Links, pagination

fn links(os: &Os, kind: &str, id: &str) -> Value {
    json!([
        {"href": format!("{}/v2.1/{kind}/{id}", os.ctx.urls.compute), "rel": "self"},
        {"href": format!("{}/{kind}/{id}", os.ctx.urls.compute), "rel": "bookmark"},
    ])
}

fn bookmark(os: &Os, kind: &str, id: &str) -> Value {
    json!([{"href": format!("{}/{kind}/{id}", os.ctx.urls.compute), "rel": "bookmark"}])
}

fn parse_limit(req: &Req) -> Result<Option<usize>, Response> {
    match req.q("limit") {
        None => Ok(None),
        // The list queries' `parameter_types.non_negative_integer` pattern.
        Some(l) if !l.bytes().all(|b| b.is_ascii_digit()) => {
            Err(invalid_query("limit", l, &no_match(l, "^[0-9]*$")))
        }
        Some(l) => l
            .parse::<u64>()
            .ok()
            .map(|n| Some((n as usize).min(MAX_LIMIT)))
            .ok_or_else(|| bad("limit param must be an integer")),
    }
}

/// Cut a sorted list at `marker` and `limit`; the `next` link when the page is full.
fn paginate<T>(
    os: &Os,
    req: &Req,
    items: Vec<T>,
    id: impl Fn(&T) -> String,
    path: &str,
    marker_missing: impl Fn(&str) -> Response,
) -> Result<(Vec<T>, Option<Value>), Response> {
    let limit = parse_limit(req)?;
    let effective = limit.unwrap_or(MAX_LIMIT);
    let page = crate::core::page(
        items,
        &id,
        req.q("marker"),
        Some(effective),
        crate::core::Direction::Forward,
    )
    .map_err(|e| marker_missing(&e.0))?;
    let next = match page.items.last() {
        Some(last) if page.full => {
            let q = query_with(
                &req.query,
                &[("limit", effective.to_string()), ("marker", id(last))],
            );
            Some(
                json!([{"href": format!("{}/v2.1/{path}?{q}", os.ctx.urls.compute), "rel": "next"}]),
            )
        }
        _ => None,
    };
    let items = page.items;
    Ok((items, next))
}
