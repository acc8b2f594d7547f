//! Placement (microversions 1.0–1.39): resource providers, inventories, resource
//! classes, traits, aggregates, allocations, usages and allocation candidates, with
//! generation checks and placement's error documents.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::model::*;
use super::seed::{STANDARD_RESOURCE_CLASSES, STANDARD_TRAITS};
use super::*;
use crate::core::{ApiError, ErrorBody};

mod allocations;
mod candidates;
mod inventories;
mod ledger;
mod query;
mod resource_classes;
mod resource_providers;
mod traits;

use allocations::*;
use candidates::*;
use inventories::*;
use ledger::*;
pub(crate) use ledger::{capacity, fits, rc_exists, release, set_allocations, used};
use query::*;
use resource_classes::*;
use resource_providers::*;
use traits::*;

pub(crate) const MAX_MINOR: u32 = 39;
const MAX_INT: i64 = 2_147_483_647;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("/placement", &[(GET, root)])
        .add("/placement/", &[(GET, root)])
        .add_placement(
            "/placement/resource_providers",
            &[(GET, rp_list_, 0), (POST, rp_create_, 0)],
        )
        .add_placement(
            "/placement/resource_providers/{uuid}",
            &[
                (GET, rp_get_, 0),
                (PUT, rp_update_, 0),
                (DELETE, rp_delete_, 0),
            ],
        )
        .add_placement(
            "/placement/resource_providers/{uuid}/inventories",
            &[
                (GET, inv_list_, 0),
                (PUT, inv_put_all_, 0),
                (POST, inv_post_, 0),
                (DELETE, inv_delete_all_, 5),
            ],
        )
        .add_placement(
            "/placement/resource_providers/{uuid}/inventories/{rc}",
            &[
                (GET, inv_get_, 0),
                (PUT, inv_put_, 0),
                (DELETE, inv_delete_, 0),
            ],
        )
        .add_placement(
            "/placement/resource_providers/{uuid}/usages",
            &[(GET, rp_usages_, 0)],
        )
        .add_placement(
            "/placement/resource_providers/{uuid}/allocations",
            &[(GET, rp_allocations_, 0)],
        )
        .add_placement(
            "/placement/resource_providers/{uuid}/traits",
            &[
                (GET, rp_traits_, 6),
                (PUT, rp_traits_put_, 6),
                (DELETE, rp_traits_delete_, 6),
            ],
        )
        .add_placement(
            "/placement/resource_providers/{uuid}/aggregates",
            &[(GET, rp_aggs_, 1), (PUT, rp_aggs_put_, 1)],
        )
        .add_placement(
            "/placement/resource_classes",
            &[(GET, rc_list_, 2), (POST, rc_create_, 2)],
        )
        .add_placement(
            "/placement/resource_classes/{name}",
            &[
                (GET, rc_get_, 2),
                (PUT, rc_put_, 2),
                (DELETE, rc_delete_, 2),
            ],
        )
        .add_placement("/placement/traits", &[(GET, trait_list_, 6)])
        .add_placement(
            "/placement/traits/{name}",
            &[
                (GET, trait_get_, 6),
                (PUT, trait_put_, 6),
                (DELETE, trait_delete_, 6),
            ],
        )
        .add_placement(
            "/placement/allocation_candidates",
            &[(GET, candidates_, 10)],
        )
        .add_placement("/placement/allocations", &[(POST, alloc_post_, 13)])
        .add_placement(
            "/placement/allocations/{consumer}",
            &[
                (GET, alloc_get_, 0),
                (PUT, alloc_put_, 0),
                (DELETE, alloc_delete_, 0),
            ],
        )
        .add_placement("/placement/usages", &[(GET, usages_, 9)])
}

// ---------------------------------------------------------------------------------------
// Microversions, errors, the request wrapper

fn generic(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => (
            "Bad Request",
            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        ),
        403 => ("Forbidden", "Access was denied to this resource."),
        404 => ("Not Found", "The resource could not be found."),
        405 => (
            "Method Not Allowed",
            "The method specified is not allowed for this resource.",
        ),
        406 => (
            "Not Acceptable",
            "The resource could not be generated that was acceptable to your browser (content of type application/json. ",
        ),
        409 => (
            "Conflict",
            "There was a conflict when trying to complete your request.",
        ),
        _ => (
            "Internal Server Error",
            "The server has either erred or is incapable of performing the requested operation.",
        ),
    }
}

/// A placement error document. `code` appears from microversion 1.23 on.
pub(crate) fn perr(mv: u32, status: u16, detail: &str, code: Option<&str>) -> Response {
    let mut e = ApiError::new(
        status,
        code.unwrap_or("placement.undefined_code").to_string(),
        detail,
    );
    if StatusCode::from_u16(status).is_err() {
        e.status = StatusCode::BAD_REQUEST;
    }
    PlacementErrors { mv, status }.render(&e)
}

/// Placement's error body: `{"errors": [{"status", "title", "detail", "request_id",
/// "code" (from 1.23)}]}`, with webob's generic text for the status before the detail.
pub(crate) struct PlacementErrors {
    pub mv: u32,
    /// The status as the handler gave it (written in the body even when it is not a
    /// valid HTTP status).
    pub status: u16,
}

impl ErrorBody for PlacementErrors {
    fn render(&self, e: &ApiError) -> Response {
        let (title, text) = generic(self.status);
        let mut body = json!({
            "status": self.status,
            "title": title,
            "detail": format!("{text}\n\n {}  ", e.message),
            "request_id": format!("req-{}", uuid::Uuid::new_v4()),
        });
        if self.mv >= 23 {
            body["code"] = json!(e.code);
        }
        json_resp(e.status, json!({"errors": [body]}))
    }
}

fn bad(mv: u32, detail: &str) -> Response {
    perr(mv, 400, detail, None)
}

/// The requested placement microversion (minor number; 1.0 when absent).
fn microversion(req: &Req) -> Result<u32, Response> {
    let Some(h) = req.header("openstack-api-version") else {
        return Ok(0);
    };
    let Some(v) = h
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("placement ").map(str::trim))
    else {
        return Ok(0);
    };
    if v == "latest" {
        return Ok(MAX_MINOR);
    }
    let parsed = v
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    let Some((major, minor)) = parsed else {
        let body = json!({"errors": [{
            "status": 400,
            "title": "Bad Request",
            "detail": format!("The server could not comply with the request since it is either malformed or otherwise incorrect.\n\n Invalid microversion: invalid version string: {v}  "),
            "request_id": format!("req-{}", uuid::Uuid::new_v4()),
        }]});
        return Err(json_resp(StatusCode::BAD_REQUEST, body));
    };
    if major != 1 || minor > MAX_MINOR {
        let body = json!({"errors": [{
            "status": 406,
            "title": "Not Acceptable",
            "detail": format!("The resource could not be generated that was acceptable to your browser (content of type application/json. \n\n Invalid microversion: Unacceptable version header: {v}"),
            "request_id": format!("req-{}", uuid::Uuid::new_v4()),
            "max_version": format!("1.{MAX_MINOR}"),
            "min_version": "1.0",
        }]});
        return Err(json_resp(StatusCode::NOT_ACCEPTABLE, body));
    }
    Ok(minor)
}

fn add_headers(os: &Os, mv: u32, get: bool, mut r: Response) -> Response {
    let v = format!("placement 1.{mv}");
    if let Ok(h) = axum::http::HeaderValue::from_str(&v) {
        r.headers_mut().insert("openstack-api-version", h);
    }
    r.headers_mut().insert(
        "vary",
        axum::http::HeaderValue::from_static("openstack-api-version"),
    );
    if mv >= 15 && get && r.status() == StatusCode::OK {
        r = with_header(
            r,
            "last-modified",
            &httpdate::fmt_http_date(os.ctx.shared.clock.now()),
        );
        r = with_header(r, "cache-control", "no-cache");
    }
    r
}

/// A Placement handler: runs on the locked state, with the negotiated microversion,
/// once the caller and the route's minimum microversion are checked.
pub(crate) type Inner = fn(&Os, &Req, &mut State, u32) -> R;

/// Authenticate (keystonemiddleware first, as in the real pipeline), negotiate the
/// microversion, require the admin role, then run the handler.
pub(crate) fn handle(os: &Os, req: &Req, min: u32, f: Inner) -> R {
    let mut st = os.st.lock();
    let caller = os.caller(&st, req)?;
    let mv = microversion(req)?;
    let get = req.method == axum::http::Method::GET;
    let r = if mv < min {
        Err(perr(mv, 404, "", None))
    } else if !caller.is_admin() || caller.project_id.is_none() {
        Err(perr(
            mv,
            403,
            "Policy does not allow this action to be performed.",
            Some("placement.undefined_code"),
        ))
    } else {
        os.tick(&mut st);
        f(os, req, &mut st, mv)
    };
    let r = match r {
        Ok(r) | Err(r) => r,
    };
    Ok(add_headers(os, mv, get, r))
}

fn root(os: &Os, req: &Req) -> R {
    let mv = microversion(req)?;
    let body = json!({"versions": [{
        "id": "v1.0",
        "max_version": format!("1.{MAX_MINOR}"),
        "min_version": "1.0",
        "status": "CURRENT",
        // The real service writes an empty self link here, wherever it is mounted.
        "links": [{"rel": "self", "href": ""}],
    }]});
    Ok(add_headers(os, mv, false, json_resp(StatusCode::OK, body)))
}
