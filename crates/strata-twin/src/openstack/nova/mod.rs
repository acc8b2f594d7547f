//! Nova, compute API v2.1 with microversions 2.1–2.104: version documents, flavors and
//! extra specs, key pairs, servers (asynchronous build through the Placement-backed
//! scheduler, with PCI aliases mapped to GPU inventories; actions; metadata; tags),
//! availability zones, hypervisors and compute services, quotas and limits.

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
mod flavors;
mod keypairs;
mod quotas;
mod server_metadata;
mod servers;

pub(crate) use actions::advance;
use actions::*;
use aggregates::*;
use boot::*;
use compute_hosts::*;
pub(crate) use flavors::parse_alias_spec;
use flavors::*;
use keypairs::*;
pub(crate) use quotas::quota_limits;
use quotas::*;
use server_metadata::*;
use servers::*;
pub(crate) use servers::{destroy_server, status_of};

pub(crate) const MAX_MINOR: u32 = 104;
const MAX_LIMIT: usize = 1000;
const BUILD_MS: i64 = 1500;
const ACTION_MS: i64 = 500;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("/compute", &[(GET, versions)])
        .add("/compute/", &[(GET, versions)])
        .add("/compute/v2.1", &[(GET, version21)])
        .add("/compute/v2.1/", &[(GET, version21)])
        .add("/compute/v2", &[(GET, version2)])
        .add("/compute/v2/", &[(GET, version2)])
        .add(
            "/compute/v2.1/flavors",
            &[(GET, flavors_list), (POST, flavor_create)],
        )
        .add("/compute/v2.1/flavors/detail", &[(GET, flavors_detail)])
        .add(
            "/compute/v2.1/flavors/{id}",
            &[
                (GET, flavor_get),
                (PUT, flavor_update),
                (DELETE, flavor_delete),
            ],
        )
        .add(
            "/compute/v2.1/flavors/{id}/action",
            &[(POST, flavor_action)],
        )
        .add(
            "/compute/v2.1/flavors/{id}/os-flavor-access",
            &[(GET, flavor_access)],
        )
        .add(
            "/compute/v2.1/flavors/{id}/os-extra_specs",
            &[(GET, specs_list), (POST, specs_create)],
        )
        .add(
            "/compute/v2.1/flavors/{id}/os-extra_specs/{key}",
            &[(GET, spec_get), (PUT, spec_put), (DELETE, spec_delete)],
        )
        .add(
            "/compute/v2.1/os-keypairs",
            &[(GET, keypairs_list), (POST, keypair_create)],
        )
        .add(
            "/compute/v2.1/os-keypairs/{name}",
            &[(GET, keypair_get), (DELETE, keypair_delete)],
        )
        .add(
            "/compute/v2.1/servers",
            &[(GET, servers_list), (POST, server_create)],
        )
        .add("/compute/v2.1/servers/detail", &[(GET, servers_detail)])
        .add(
            "/compute/v2.1/servers/{id}",
            &[
                (GET, server_get),
                (PUT, server_update),
                (DELETE, server_delete),
            ],
        )
        .add(
            "/compute/v2.1/servers/{id}/action",
            &[(POST, server_action)],
        )
        .add(
            "/compute/v2.1/servers/{id}/metadata",
            &[(GET, meta_list), (POST, meta_merge), (PUT, meta_replace)],
        )
        .add(
            "/compute/v2.1/servers/{id}/metadata/{key}",
            &[(GET, meta_get), (PUT, meta_put), (DELETE, meta_delete)],
        )
        .add(
            "/compute/v2.1/servers/{id}/tags",
            &[(GET, tags_list), (PUT, tags_replace), (DELETE, tags_clear)],
        )
        .add(
            "/compute/v2.1/servers/{id}/tags/{tag}",
            &[(GET, tag_check), (PUT, tag_add), (DELETE, tag_delete)],
        )
        .add("/compute/v2.1/servers/{id}/ips", &[(GET, server_ips)])
        .add(
            "/compute/v2.1/servers/{id}/os-instance-actions",
            &[(GET, actions_list)],
        )
        .add(
            "/compute/v2.1/servers/{id}/os-instance-actions/{req}",
            &[(GET, action_get)],
        )
        .add(
            "/compute/v2.1/servers/{id}/os-interface",
            &[(GET, server_interfaces)],
        )
        .add("/compute/v2.1/os-availability-zone", &[(GET, az_list)])
        .add(
            "/compute/v2.1/os-availability-zone/detail",
            &[(GET, az_detail)],
        )
        .add("/compute/v2.1/os-hypervisors", &[(GET, hyp_list)])
        .add("/compute/v2.1/os-hypervisors/detail", &[(GET, hyp_detail)])
        .add(
            "/compute/v2.1/os-hypervisors/statistics",
            &[(GET, hyp_stats)],
        )
        .add("/compute/v2.1/os-hypervisors/{id}", &[(GET, hyp_show)])
        .add(
            "/compute/v2.1/os-hypervisors/{id}/uptime",
            &[(GET, hyp_uptime)],
        )
        .add(
            "/compute/v2.1/os-hypervisors/{id}/search",
            &[(GET, hyp_search)],
        )
        .add(
            "/compute/v2.1/os-hypervisors/{id}/servers",
            &[(GET, hyp_servers)],
        )
        .add(
            "/compute/v2.1/os-aggregates",
            &[(GET, aggs_list), (POST, agg_create)],
        )
        .add(
            "/compute/v2.1/os-aggregates/{id}",
            &[(GET, agg_get), (PUT, agg_update), (DELETE, agg_delete)],
        )
        .add(
            "/compute/v2.1/os-aggregates/{id}/action",
            &[(POST, agg_action)],
        )
        .add(
            "/compute/v2.1/os-aggregates/{id}/images",
            &[(POST, agg_images)],
        )
        .add("/compute/v2.1/os-services", &[(GET, services_list)])
        .add("/compute/v2.1/os-services/{id}", &[(PUT, service_update)])
        .add(
            "/compute/v2.1/os-quota-sets/{id}",
            &[
                (GET, quota_show),
                (PUT, quota_update),
                (DELETE, quota_delete),
            ],
        )
        .add(
            "/compute/v2.1/os-quota-sets/{id}/defaults",
            &[(GET, quota_defaults)],
        )
        .add(
            "/compute/v2.1/os-quota-sets/{id}/detail",
            &[(GET, quota_detail)],
        )
        .add("/compute/v2.1/limits", &[(GET, limits)])
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

fn invalid(field: &str, value: &Value, why: &str) -> Response {
    bad(&format!(
        "Invalid input for field/attribute {field}. Value: {value}. {why}"
    ))
}

/// The requested compute microversion (minor number; 2.1 when absent).
fn microversion(req: &Req) -> Result<u32, Response> {
    let from_new = req.header("openstack-api-version").and_then(|h| {
        h.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("compute ").map(|v| v.trim().to_string()))
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
        return Err(err(
            406,
            &format!(
                "Version {v} is not supported by the API. Minimum is 2.1 and maximum is 2.{MAX_MINOR}."
            ),
        ));
    }
    Ok(minor)
}

fn add_headers(mv: u32, mut r: Response) -> Response {
    let v = format!("2.{mv}");
    r = with_header(r, "openstack-api-version", &format!("compute {v}"));
    r = with_header(r, "x-openstack-nova-api-version", &v);
    r = with_header(
        r,
        "vary",
        "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
    );
    let id = format!("req-{}", uuid::Uuid::new_v4());
    with_header(r, "x-compute-request-id", &id)
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

type Inner = fn(&Os, &Req, &mut State, &Cx) -> R;

fn handle(os: &Os, req: &Req, min: u32, max: u32, f: Inner) -> R {
    let mut st = os.st.lock();
    let caller = os.caller(&st, req)?;
    let mv = match microversion(req) {
        Ok(v) => v,
        Err(e) => return Ok(e),
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
        f(os, req, &mut st, &Cx { mv, caller })
    };
    Ok(add_headers(
        mv,
        match r {
            Ok(r) | Err(r) => r,
        },
    ))
}

macro_rules! handlers {
    ($($name:ident => $min:expr, $max:expr, $inner:ident;)*) => {
        $(fn $name(os: &Os, req: &Req) -> R { handle(os, req, $min, $max, $inner) })*
    };
}

handlers! {
    flavors_list => 1, MAX_MINOR, flavors_list_;
    flavors_detail => 1, MAX_MINOR, flavors_detail_;
    flavor_create => 1, MAX_MINOR, flavor_create_;
    flavor_get => 1, MAX_MINOR, flavor_get_;
    flavor_update => 55, MAX_MINOR, flavor_update_;
    flavor_delete => 1, MAX_MINOR, flavor_delete_;
    flavor_action => 1, MAX_MINOR, flavor_action_;
    flavor_access => 1, MAX_MINOR, flavor_access_;
    specs_list => 1, MAX_MINOR, specs_list_;
    specs_create => 1, MAX_MINOR, specs_create_;
    spec_get => 1, MAX_MINOR, spec_get_;
    spec_put => 1, MAX_MINOR, spec_put_;
    spec_delete => 1, MAX_MINOR, spec_delete_;
    keypairs_list => 1, MAX_MINOR, keypairs_list_;
    keypair_create => 1, MAX_MINOR, keypair_create_;
    keypair_get => 1, MAX_MINOR, keypair_get_;
    keypair_delete => 1, MAX_MINOR, keypair_delete_;
    servers_list => 1, MAX_MINOR, servers_list_;
    servers_detail => 1, MAX_MINOR, servers_detail_;
    server_create => 1, MAX_MINOR, server_create_;
    server_get => 1, MAX_MINOR, server_get_;
    server_update => 1, MAX_MINOR, server_update_;
    server_delete => 1, MAX_MINOR, server_delete_;
    server_action => 1, MAX_MINOR, server_action_;
    meta_list => 1, MAX_MINOR, meta_list_;
    meta_merge => 1, MAX_MINOR, meta_merge_;
    meta_replace => 1, MAX_MINOR, meta_replace_;
    meta_get => 1, MAX_MINOR, meta_get_;
    meta_put => 1, MAX_MINOR, meta_put_;
    meta_delete => 1, MAX_MINOR, meta_delete_;
    tags_list => 26, MAX_MINOR, tags_list_;
    tags_replace => 26, MAX_MINOR, tags_replace_;
    tags_clear => 26, MAX_MINOR, tags_clear_;
    tag_check => 26, MAX_MINOR, tag_check_;
    tag_add => 26, MAX_MINOR, tag_add_;
    tag_delete => 26, MAX_MINOR, tag_delete_;
    server_ips => 1, MAX_MINOR, server_ips_;
    actions_list => 1, MAX_MINOR, actions_list_;
    action_get => 1, MAX_MINOR, action_get_;
    server_interfaces => 1, MAX_MINOR, server_interfaces_;
    az_list => 1, MAX_MINOR, az_list_;
    az_detail => 1, MAX_MINOR, az_detail_;
    hyp_list => 1, MAX_MINOR, hyp_list_;
    hyp_detail => 1, MAX_MINOR, hyp_detail_;
    hyp_stats => 1, 87, hyp_stats_;
    hyp_show => 1, MAX_MINOR, hyp_show_;
    hyp_uptime => 1, 87, hyp_uptime_;
    hyp_search => 1, 52, hyp_search_;
    hyp_servers => 1, 52, hyp_servers_;
    aggs_list => 1, MAX_MINOR, aggs_list_;
    agg_create => 1, MAX_MINOR, agg_create_;
    agg_get => 1, MAX_MINOR, agg_get_;
    agg_update => 1, MAX_MINOR, agg_update_;
    agg_delete => 1, MAX_MINOR, agg_delete_;
    agg_action => 1, MAX_MINOR, agg_action_;
    agg_images => 81, MAX_MINOR, agg_images_;
    services_list => 1, MAX_MINOR, services_list_;
    service_update => 53, MAX_MINOR, service_update_;
    quota_show => 1, MAX_MINOR, quota_show_;
    quota_update => 1, MAX_MINOR, quota_update_;
    quota_delete => 1, MAX_MINOR, quota_delete_;
    quota_defaults => 1, MAX_MINOR, quota_defaults_;
    quota_detail => 1, MAX_MINOR, quota_detail_;
    limits => 1, MAX_MINOR, limits_;
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
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
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
    let mut items = items;
    if let Some(m) = req.q("marker") {
        let pos = items
            .iter()
            .position(|x| id(x) == m)
            .ok_or_else(|| marker_missing(m))?;
        items.drain(..=pos);
    }
    let effective = limit.unwrap_or(MAX_LIMIT);
    let full = items.len() >= effective && effective > 0;
    items.truncate(effective);
    let next = if full && !items.is_empty() {
        let last = id(items.last().expect("non-empty"));
        let q = query_with(
            &req.query,
            &[("limit", effective.to_string()), ("marker", last)],
        );
        Some(json!([{"href": format!("{}/v2.1/{path}?{q}", os.ctx.urls.compute), "rel": "next"}]))
    } else {
        None
    };
    Ok((items, next))
}
