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

pub(crate) const MAX_MINOR: u32 = 39;
const MAX_INT: i64 = 2_147_483_647;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("/placement", &[(GET, root)])
        .add("/placement/", &[(GET, root)])
        .add(
            "/placement/resource_providers",
            &[(GET, rp_list), (POST, rp_create)],
        )
        .add(
            "/placement/resource_providers/{uuid}",
            &[(GET, rp_get), (PUT, rp_update), (DELETE, rp_delete)],
        )
        .add(
            "/placement/resource_providers/{uuid}/inventories",
            &[
                (GET, inv_list),
                (PUT, inv_put_all),
                (POST, inv_post),
                (DELETE, inv_delete_all),
            ],
        )
        .add(
            "/placement/resource_providers/{uuid}/inventories/{rc}",
            &[(GET, inv_get), (PUT, inv_put), (DELETE, inv_delete)],
        )
        .add(
            "/placement/resource_providers/{uuid}/usages",
            &[(GET, rp_usages)],
        )
        .add(
            "/placement/resource_providers/{uuid}/allocations",
            &[(GET, rp_allocations)],
        )
        .add(
            "/placement/resource_providers/{uuid}/traits",
            &[
                (GET, rp_traits),
                (PUT, rp_traits_put),
                (DELETE, rp_traits_delete),
            ],
        )
        .add(
            "/placement/resource_providers/{uuid}/aggregates",
            &[(GET, rp_aggs), (PUT, rp_aggs_put)],
        )
        .add(
            "/placement/resource_classes",
            &[(GET, rc_list), (POST, rc_create)],
        )
        .add(
            "/placement/resource_classes/{name}",
            &[(GET, rc_get), (PUT, rc_put), (DELETE, rc_delete)],
        )
        .add("/placement/traits", &[(GET, trait_list)])
        .add(
            "/placement/traits/{name}",
            &[(GET, trait_get), (PUT, trait_put), (DELETE, trait_delete)],
        )
        .add("/placement/allocation_candidates", &[(GET, candidates)])
        .add("/placement/allocations", &[(POST, alloc_post)])
        .add(
            "/placement/allocations/{consumer}",
            &[(GET, alloc_get), (PUT, alloc_put), (DELETE, alloc_delete)],
        )
        .add("/placement/usages", &[(GET, usages)])
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
    let (title, text) = generic(status);
    let mut e = json!({
        "status": status,
        "title": title,
        "detail": format!("{text}\n\n {detail}  "),
        "request_id": format!("req-{}", uuid::Uuid::new_v4()),
    });
    if mv >= 23 {
        e["code"] = json!(code.unwrap_or("placement.undefined_code"));
    }
    json_resp(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        json!({"errors": [e]}),
    )
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

fn add_headers(mv: u32, get: bool, mut r: Response) -> Response {
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
            &httpdate::fmt_http_date(std::time::SystemTime::now()),
        );
        r = with_header(r, "cache-control", "no-cache");
    }
    r
}

type Inner = fn(&Os, &Req, &mut State, u32) -> R;

/// Authenticate (keystonemiddleware first, as in the real pipeline), negotiate the
/// microversion, require the admin role, then run the handler.
fn handle(os: &Os, req: &Req, min: u32, f: Inner) -> R {
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
    Ok(add_headers(mv, get, r))
}

macro_rules! handlers {
    ($($name:ident => $min:expr, $inner:ident;)*) => {
        $(fn $name(os: &Os, req: &Req) -> R { handle(os, req, $min, $inner) })*
    };
}

handlers! {
    rp_list => 0, rp_list_;
    rp_create => 0, rp_create_;
    rp_get => 0, rp_get_;
    rp_update => 0, rp_update_;
    rp_delete => 0, rp_delete_;
    inv_list => 0, inv_list_;
    inv_put_all => 0, inv_put_all_;
    inv_post => 0, inv_post_;
    inv_delete_all => 5, inv_delete_all_;
    inv_get => 0, inv_get_;
    inv_put => 0, inv_put_;
    inv_delete => 0, inv_delete_;
    rp_usages => 0, rp_usages_;
    rp_allocations => 0, rp_allocations_;
    rp_traits => 6, rp_traits_;
    rp_traits_put => 6, rp_traits_put_;
    rp_traits_delete => 6, rp_traits_delete_;
    rp_aggs => 1, rp_aggs_;
    rp_aggs_put => 1, rp_aggs_put_;
    rc_list => 2, rc_list_;
    rc_create => 2, rc_create_;
    rc_get => 2, rc_get_;
    rc_put => 2, rc_put_;
    rc_delete => 2, rc_delete_;
    trait_list => 6, trait_list_;
    trait_get => 6, trait_get_;
    trait_put => 6, trait_put_;
    trait_delete => 6, trait_delete_;
    candidates => 10, candidates_;
    alloc_post => 13, alloc_post_;
    alloc_get => 0, alloc_get_;
    alloc_put => 0, alloc_put_;
    alloc_delete => 0, alloc_delete_;
    usages => 9, usages_;
}

fn root(_os: &Os, req: &Req) -> R {
    let mv = microversion(req)?;
    let body = json!({"versions": [{
        "id": "v1.0",
        "max_version": format!("1.{MAX_MINOR}"),
        "min_version": "1.0",
        "status": "CURRENT",
        // The real service writes an empty self link here, wherever it is mounted.
        "links": [{"rel": "self", "href": ""}],
    }]});
    Ok(add_headers(mv, false, json_resp(StatusCode::OK, body)))
}

// ---------------------------------------------------------------------------------------
// Shared helpers (also used by Nova's scheduler)

pub(crate) fn rc_exists(st: &State, rc: &str) -> bool {
    STANDARD_RESOURCE_CLASSES.contains(&rc) || st.custom_rcs.iter().any(|c| c == rc)
}

fn trait_exists(st: &State, t: &str) -> bool {
    STANDARD_TRAITS.contains(&t) || st.custom_traits.iter().any(|c| c == t)
}

/// Amount of each class allocated on a provider.
pub(crate) fn used(st: &State, rp: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for c in st.consumers.values() {
        if let Some(a) = c.allocations.get(rp) {
            for (rc, n) in a {
                *out.entry(rc.clone()).or_insert(0) += n;
            }
        }
    }
    out
}

pub(crate) fn capacity(i: &Inventory) -> i64 {
    ((i.total - i.reserved) as f64 * i.allocation_ratio) as i64
}

/// Can `rp` take these amounts on top of what it already has?
pub(crate) fn fits(st: &State, rp: &ResourceProvider, want: &BTreeMap<String, i64>) -> bool {
    let used = used(st, &rp.uuid);
    want.iter().all(|(rc, n)| {
        rp.inventories.get(rc).is_some_and(|inv| {
            *n >= inv.min_unit
                && *n <= inv.max_unit
                && (n % inv.step_size.max(1)) == 0
                && used.get(rc).copied().unwrap_or(0) + n <= capacity(inv)
        })
    })
}

/// Write a consumer's allocations (replacing what it had), bumping generations.
pub(crate) fn set_allocations(
    st: &mut State,
    consumer: &str,
    project: &str,
    user: &str,
    consumer_type: Option<&str>,
    allocs: BTreeMap<String, BTreeMap<String, i64>>,
) {
    let now = now_ms();
    let mut touched: BTreeSet<String> = allocs.keys().cloned().collect();
    if let Some(old) = st.consumers.get(consumer) {
        touched.extend(old.allocations.keys().cloned());
    }
    for rp in st.rps.iter_mut().filter(|r| touched.contains(&r.uuid)) {
        rp.generation += 1;
        rp.updated_ms = now;
    }
    if allocs.is_empty() {
        st.consumers.remove(consumer);
        return;
    }
    let generation = st
        .consumers
        .get(consumer)
        .map(|c| c.generation + 1)
        .unwrap_or(1);
    st.consumers.insert(
        consumer.to_string(),
        Consumer {
            project_id: project.to_string(),
            user_id: user.to_string(),
            generation,
            consumer_type: consumer_type.map(str::to_string),
            allocations: allocs,
        },
    );
}

/// Remove a consumer's allocations.
pub(crate) fn release(st: &mut State, consumer: &str) {
    if st.consumers.remove(consumer).is_some() {
        // Deleting allocations does not bump provider generations.
    }
}

fn find_rp<'a>(st: &'a State, uuid: &str, mv: u32) -> Result<&'a ResourceProvider, Response> {
    st.rps.iter().find(|r| r.uuid == uuid).ok_or_else(|| {
        perr(
            mv,
            404,
            &format!("No resource provider with uuid {uuid} found"),
            None,
        )
    })
}

fn rp_index(st: &State, uuid: &str, mv: u32) -> Result<usize, Response> {
    st.rps.iter().position(|r| r.uuid == uuid).ok_or_else(|| {
        perr(
            mv,
            404,
            &format!("No resource provider with uuid {uuid} found"),
            None,
        )
    })
}

fn rp_json(os: &Os, rp: &ResourceProvider, mv: u32) -> Value {
    let base = format!("{}/resource_providers/{}", os.placement_path, rp.uuid);
    let mut links = vec![
        json!({"rel": "self", "href": base}),
        json!({"rel": "inventories", "href": format!("{base}/inventories")}),
        json!({"rel": "usages", "href": format!("{base}/usages")}),
    ];
    if mv >= 1 {
        links.push(json!({"rel": "aggregates", "href": format!("{base}/aggregates")}));
    }
    if mv >= 6 {
        links.push(json!({"rel": "traits", "href": format!("{base}/traits")}));
    }
    if mv >= 11 {
        links.push(json!({"rel": "allocations", "href": format!("{base}/allocations")}));
    }
    let mut v =
        json!({"uuid": rp.uuid, "name": rp.name, "generation": rp.generation, "links": links});
    if mv >= 14 {
        v["parent_provider_uuid"] = json!(rp.parent);
        v["root_provider_uuid"] = json!(rp.root);
    }
    v
}

fn body(req: &Req, mv: u32) -> Result<Value, Response> {
    if req.body_is_empty() {
        return Err(bad(
            mv,
            "Malformed JSON: Expecting value: line 1 column 1 (char 0)",
        ));
    }
    serde_json::from_slice(&req.body).map_err(|e| bad(mv, &format!("Malformed JSON: {e}")))
}

fn not_valid(mv: u32, what: &str) -> Response {
    bad(mv, &format!("JSON does not validate: {what}"))
}

fn check_query(req: &Req, mv: u32, allowed: &[&str]) -> Result<(), Response> {
    for (k, _) in &req.query {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(
                mv,
                &format!(
                    "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                ),
            ));
        }
    }
    Ok(())
}

/// Parse `VCPU:2,MEMORY_MB:1024`.
fn parse_resources(st: &State, mv: u32, s: &str) -> Result<BTreeMap<String, i64>, Response> {
    let mut out = BTreeMap::new();
    for part in s.split(',') {
        let Some((rc, n)) = part.split_once(':') else {
            return Err(bad(
                mv,
                &format!(
                    "Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: {s}."
                ),
            ));
        };
        let n: i64 = n.trim().parse().map_err(|_| {
            bad(
                mv,
                &format!("Badly formed resources parameter. Expected resources query string parameter in form: ?resources=VCPU:2,MEMORY_MB:1024. Got: {s}."),
            )
        })?;
        if n < 1 {
            return Err(bad(
                mv,
                &format!("Requested resource {rc} requires amount >= 1. Got: {n}."),
            ));
        }
        if !rc_exists(st, rc) {
            return Err(bad(
                mv,
                &format!(
                    "Invalid resource class in resources parameter: No such resource class {rc}."
                ),
            ));
        }
        if out.insert(rc.to_string(), n).is_some() {
            return Err(bad(
                mv,
                &format!(
                    "Badly formed resources parameter. Resource class {rc} was specified more than once."
                ),
            ));
        }
    }
    Ok(out)
}

/// Parse a `required` value: traits that must (or, with `!`, must not) be present, and
/// `in:A,B` any-of groups (1.39).
struct TraitReq {
    all: Vec<String>,
    none: Vec<String>,
    any: Vec<Vec<String>>,
}

fn parse_required(st: &State, mv: u32, values: &[&str]) -> Result<TraitReq, Response> {
    let mut r = TraitReq {
        all: vec![],
        none: vec![],
        any: vec![],
    };
    let mut unknown = Vec::new();
    for v in values {
        if let Some(list) = v.strip_prefix("in:") {
            if mv < 39 {
                return Err(bad(
                    mv,
                    &format!(
                        "Invalid query string parameters: The format 'in:' is not supported until 1.39. Got: {v}"
                    ),
                ));
            }
            let group: Vec<String> = list.split(',').map(str::to_string).collect();
            unknown.extend(group.iter().filter(|t| !trait_exists(st, t)).cloned());
            r.any.push(group);
            continue;
        }
        for t in v.split(',') {
            if let Some(f) = t.strip_prefix('!') {
                if mv < 22 {
                    return Err(bad(
                        mv,
                        &format!(
                            "Invalid query string parameters: Expected 'required' parameter value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: {v}"
                        ),
                    ));
                }
                if !trait_exists(st, f) {
                    unknown.push(f.to_string());
                }
                r.none.push(f.to_string());
            } else {
                if !trait_exists(st, t) {
                    unknown.push(t.to_string());
                }
                r.all.push(t.to_string());
            }
        }
    }
    if !unknown.is_empty() {
        return Err(bad(
            mv,
            &format!("No such trait(s): {}.", unknown.join(", ")),
        ));
    }
    Ok(r)
}

fn traits_ok(rp: &ResourceProvider, t: &TraitReq) -> bool {
    t.all.iter().all(|x| rp.traits.contains(x))
        && t.none.iter().all(|x| !rp.traits.contains(x))
        && t.any
            .iter()
            .all(|g| g.iter().any(|x| rp.traits.contains(x)))
}

fn member_ok(rp: &ResourceProvider, member_of: &[Vec<String>], root_aggs: &[String]) -> bool {
    member_of.iter().all(|group| {
        let (neg, list) = match group.first().map(|s| s.starts_with('!')) {
            Some(true) => (
                true,
                group
                    .iter()
                    .map(|s| s.trim_start_matches('!').to_string())
                    .collect::<Vec<_>>(),
            ),
            _ => (false, group.clone()),
        };
        let hit = list
            .iter()
            .any(|a| rp.aggregates.contains(a) || root_aggs.contains(a));
        hit != neg
    })
}

fn parse_member_of(mv: u32, values: &[&str]) -> Result<Vec<Vec<String>>, Response> {
    let mut out = Vec::new();
    for v in values {
        let (neg, v) = match v.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, *v),
        };
        let list = v.strip_prefix("in:").unwrap_or(v);
        let ids: Vec<String> = list.split(',').map(str::to_string).collect();
        if ids.iter().any(|i| !is_uuid(i)) {
            return Err(bad(
                mv,
                &format!(
                    "Invalid query string parameters: Expected 'member_of' parameter to contain valid UUID(s). Got: {v}"
                ),
            ));
        }
        out.push(if neg {
            ids.into_iter().map(|i| format!("!{i}")).collect()
        } else {
            ids
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Resource providers

fn rp_list_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let mut allowed = vec!["name", "uuid"];
    if mv >= 3 {
        allowed.push("member_of");
    }
    if mv >= 4 {
        allowed.push("resources");
    }
    if mv >= 14 {
        allowed.push("in_tree");
    }
    if mv >= 18 {
        allowed.push("required");
    }
    check_query(req, mv, &allowed)?;
    let resources = match req.q("resources") {
        Some(r) => Some(parse_resources(st, mv, r)?),
        None => None,
    };
    let required = match req.q_all("required") {
        v if v.is_empty() => None,
        v => Some(parse_required(st, mv, &v)?),
    };
    let member_of = parse_member_of(mv, &req.q_all("member_of"))?;
    let in_tree_root = match req.q("in_tree") {
        Some(t) => Some(
            st.rps
                .iter()
                .find(|r| r.uuid == t)
                .map(|r| r.root.clone())
                .ok_or_else(|| bad(mv, &format!("Invalid uuid value: {t}")))?,
        ),
        None => None,
    };
    let list: Vec<Value> = st
        .rps
        .iter()
        .filter(|rp| {
            req.q("name").is_none_or(|n| n == rp.name)
                && req.q("uuid").is_none_or(|u| u == rp.uuid)
                && in_tree_root.as_ref().is_none_or(|root| &rp.root == root)
                && resources.as_ref().is_none_or(|want| fits(st, rp, want))
                && required.as_ref().is_none_or(|t| traits_ok(rp, t))
                && member_ok(rp, &member_of, &[])
        })
        .map(|rp| rp_json(os, rp, mv))
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        json!({"resource_providers": list}),
    ))
}

fn rp_create_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| not_valid(mv, "'name' is a required property"))?
        .to_string();
    if name.is_empty() || name.len() > 200 {
        return Err(not_valid(mv, &format!("'{name}' is not a valid name")));
    }
    let uuid = match b.get("uuid") {
        Some(Value::String(u)) if is_uuid(u) => uuid::Uuid::parse_str(u)
            .map(|u| u.to_string())
            .unwrap_or_default(),
        Some(v) if !v.is_null() => return Err(not_valid(mv, &format!("{v} is not a 'uuid'"))),
        _ => os.uuid(),
    };
    if st.rps.iter().any(|r| r.name == name) {
        return Err(perr(
            mv,
            409,
            &format!("Conflicting resource provider name: {name} already exists."),
            Some("placement.duplicate_name"),
        ));
    }
    if st.rps.iter().any(|r| r.uuid == uuid) {
        return Err(perr(
            mv,
            409,
            &format!("Conflicting resource provider uuid: {uuid} already exists."),
            None,
        ));
    }
    let parent = match b.get("parent_provider_uuid") {
        Some(Value::String(p)) if mv >= 14 => {
            let p = st
                .rps
                .iter()
                .find(|r| &r.uuid == p)
                .ok_or_else(|| bad(mv, &format!("parent provider UUID does not exist: {p}")))?;
            Some((p.uuid.clone(), p.root.clone()))
        }
        Some(v) if mv < 14 && !v.is_null() => {
            return Err(not_valid(
                mv,
                "Additional properties are not allowed ('parent_provider_uuid' was unexpected)",
            ));
        }
        _ => None,
    };
    let rp = ResourceProvider {
        uuid: uuid.clone(),
        name,
        generation: 0,
        root: parent
            .as_ref()
            .map(|p| p.1.clone())
            .unwrap_or_else(|| uuid.clone()),
        parent: parent.map(|p| p.0),
        inventories: BTreeMap::new(),
        traits: BTreeSet::new(),
        aggregates: vec![],
        updated_ms: now_ms(),
    };
    let location = format!("{}/resource_providers/{uuid}", os.ctx.urls.placement);
    let r = if mv >= 20 {
        json_resp(StatusCode::OK, rp_json(os, &rp, mv))
    } else {
        empty(StatusCode::CREATED)
    };
    st.rps.push(rp);
    Ok(with_header(r, "location", &location))
}

fn rp_get_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    Ok(json_resp(StatusCode::OK, rp_json(os, rp, mv)))
}

fn rp_update_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let uuid = req.param("uuid");
    let idx = rp_index(st, uuid, mv)?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| not_valid(mv, "'name' is a required property"))?
        .to_string();
    if st.rps.iter().any(|r| r.name == name && r.uuid != uuid) {
        return Err(perr(
            mv,
            409,
            &format!("Conflicting resource provider name: {name} already exists."),
            Some("placement.duplicate_name"),
        ));
    }
    if mv >= 14
        && let Some(p) = b.get("parent_provider_uuid")
    {
        let new_parent = p.as_str().map(str::to_string);
        if new_parent != st.rps[idx].parent {
            if st.rps[idx].parent.is_some() && mv < 37 {
                return Err(bad(
                    mv,
                    "Unable to unset parent provider. Updating the parent of a resource provider is not supported before microversion 1.37.",
                ));
            }
            match &new_parent {
                Some(np) => {
                    let parent = st.rps.iter().find(|r| &r.uuid == np).ok_or_else(|| {
                        bad(mv, &format!("parent provider UUID does not exist: {np}"))
                    })?;
                    if parent.root == st.rps[idx].root && parent.uuid != st.rps[idx].root && mv < 37
                    {
                        return Err(bad(
                            mv,
                            "creating loop in the provider tree is not allowed.",
                        ));
                    }
                    let root = parent.root.clone();
                    st.rps[idx].parent = Some(np.clone());
                    st.rps[idx].root = root;
                }
                None => {
                    st.rps[idx].parent = None;
                    st.rps[idx].root = uuid.to_string();
                }
            }
        }
    }
    st.rps[idx].name = name;
    st.rps[idx].updated_ms = now_ms();
    Ok(json_resp(StatusCode::OK, rp_json(os, &st.rps[idx], mv)))
}

fn rp_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let uuid = req.param("uuid").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    if st
        .consumers
        .values()
        .any(|c| c.allocations.contains_key(&uuid))
    {
        return Err(perr(
            mv,
            409,
            &format!(
                "Unable to delete resource provider {uuid}: Resource provider has allocations."
            ),
            Some("placement.resource_provider.inuse"),
        ));
    }
    if st
        .rps
        .iter()
        .any(|r| r.parent.as_deref() == Some(uuid.as_str()))
    {
        return Err(perr(
            mv,
            409,
            &format!(
                "Unable to delete parent resource provider {uuid}: It has child resource providers."
            ),
            Some("placement.resource_provider.cannot_delete_parent"),
        ));
    }
    st.rps.remove(idx);
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------
// Inventories

fn inv_json(i: &Inventory) -> Value {
    json!({
        "total": i.total,
        "reserved": i.reserved,
        "min_unit": i.min_unit,
        "max_unit": i.max_unit,
        "step_size": i.step_size,
        "allocation_ratio": i.allocation_ratio,
    })
}

fn invs_json(rp: &ResourceProvider) -> Value {
    let m: serde_json::Map<String, Value> = rp
        .inventories
        .iter()
        .map(|(k, v)| (k.clone(), inv_json(v)))
        .collect();
    json!({"resource_provider_generation": rp.generation, "inventories": m})
}

/// Validate one inventory record from a request.
fn parse_inventory(mv: u32, rp: &str, rc: &str, v: &Value) -> Result<Inventory, Response> {
    let m = v
        .as_object()
        .ok_or_else(|| not_valid(mv, &format!("{v} is not of type 'object'")))?;
    for k in m.keys() {
        if ![
            "total",
            "reserved",
            "min_unit",
            "max_unit",
            "step_size",
            "allocation_ratio",
            "resource_provider_generation",
            "resource_class",
        ]
        .contains(&k.as_str())
        {
            return Err(not_valid(
                mv,
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
    }
    let int = |k: &str, default: i64, min: i64| -> Result<i64, Response> {
        match m.get(k) {
            None => Ok(default),
            Some(Value::Number(n)) if n.is_i64() => {
                let x = n.as_i64().unwrap_or(0);
                if x < min || x > MAX_INT {
                    Err(not_valid(
                        mv,
                        &format!("{x} is less than the minimum of {min}"),
                    ))
                } else {
                    Ok(x)
                }
            }
            Some(other) => Err(not_valid(mv, &format!("{other} is not of type 'integer'"))),
        }
    };
    if !m.contains_key("total") {
        return Err(not_valid(mv, "'total' is a required property"));
    }
    let inv = Inventory {
        total: int("total", 0, 1)?,
        reserved: int("reserved", 0, 0)?,
        min_unit: int("min_unit", 1, 1)?,
        max_unit: int("max_unit", MAX_INT, 1)?,
        step_size: int("step_size", 1, 1)?,
        allocation_ratio: match m.get("allocation_ratio") {
            None => 1.0,
            Some(Value::Number(n)) => n.as_f64().unwrap_or(1.0),
            Some(other) => return Err(not_valid(mv, &format!("{other} is not of type 'number'"))),
        },
    };
    let too_much = if mv >= 26 {
        inv.reserved > inv.total
    } else {
        inv.reserved >= inv.total && inv.reserved > 0
    };
    if too_much {
        return Err(bad(
            mv,
            &format!(
                "Unable to update inventory for resource provider {rp}: Invalid inventory for '{rc}' on resource provider '{rp}'. The reserved value is greater than total."
            ),
        ));
    }
    if inv.min_unit > inv.max_unit {
        return Err(bad(
            mv,
            &format!(
                "Unable to update inventory for resource provider {rp}: Invalid inventory for '{rc}'. min_unit is greater than max_unit."
            ),
        ));
    }
    Ok(inv)
}

fn generation_of(mv: u32, b: &Value) -> Result<i64, Response> {
    match b.get("resource_provider_generation") {
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64().unwrap_or(0)),
        Some(other) => Err(not_valid(mv, &format!("{other} is not of type 'integer'"))),
        None => Err(not_valid(
            mv,
            "'resource_provider_generation' is a required property",
        )),
    }
}

fn stale(mv: u32) -> Response {
    perr(
        mv,
        409,
        "resource provider generation conflict",
        Some("placement.concurrent_update"),
    )
}

fn in_use(mv: u32, rp: &str, rc: &str, action: &str) -> Response {
    perr(
        mv,
        409,
        &format!(
            "Unable to {action} inventory of class {rc}: Inventory for '{rc}' on resource provider '{rp}' in use."
        ),
        Some(if action == "delete" {
            "placement.concurrent_update"
        } else {
            "placement.inventory.inuse"
        }),
    )
}

fn inv_list_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    Ok(json_resp(StatusCode::OK, invs_json(rp)))
}

fn inv_put_all_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let uuid = req.param("uuid").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    let generation = generation_of(mv, &b)?;
    let invs = b
        .get("inventories")
        .and_then(Value::as_object)
        .ok_or_else(|| not_valid(mv, "'inventories' is a required property"))?;
    let mut new = BTreeMap::new();
    for (rc, v) in invs {
        if !rc_exists(st, rc) {
            return Err(bad(
                mv,
                &format!(
                    "Unknown resource class in inventory for resource provider {uuid}: No such resource class {rc}."
                ),
            ));
        }
        new.insert(rc.clone(), parse_inventory(mv, &uuid, rc, v)?);
    }
    if generation != st.rps[idx].generation {
        return Err(stale(mv));
    }
    let used = used(st, &uuid);
    for (rc, n) in &used {
        if *n > 0 && !new.contains_key(rc) {
            return Err(in_use(mv, &uuid, rc, "delete"));
        }
    }
    let rp = &mut st.rps[idx];
    rp.inventories = new;
    rp.generation += 1;
    rp.updated_ms = now_ms();
    Ok(json_resp(StatusCode::OK, invs_json(rp)))
}

fn inv_post_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let uuid = req.param("uuid").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    let generation = generation_of(mv, &b)?;
    let rc = b
        .get("resource_class")
        .and_then(Value::as_str)
        .ok_or_else(|| not_valid(mv, "'resource_class' is a required property"))?
        .to_string();
    if !rc_exists(st, &rc) {
        return Err(bad(mv, &format!("No such resource class {rc}.")));
    }
    let inv = parse_inventory(mv, &uuid, &rc, &b)?;
    if generation != st.rps[idx].generation {
        return Err(stale(mv));
    }
    if st.rps[idx].inventories.contains_key(&rc) {
        return Err(perr(
            mv,
            409,
            &format!(
                "Update conflict: Inventory for {rc} on resource provider {uuid} already exists."
            ),
            None,
        ));
    }
    let rp = &mut st.rps[idx];
    rp.inventories.insert(rc.clone(), inv.clone());
    rp.generation += 1;
    let mut v = inv_json(&inv);
    v["resource_provider_generation"] = json!(rp.generation);
    let r = json_resp(StatusCode::CREATED, v);
    Ok(with_header(
        r,
        "location",
        &format!(
            "{}/resource_providers/{uuid}/inventories/{rc}",
            os.ctx.urls.placement
        ),
    ))
}

fn inv_delete_all_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let uuid = req.param("uuid").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    if let Some((rc, _)) = used(st, &uuid).into_iter().find(|(_, n)| *n > 0) {
        return Err(in_use(mv, &uuid, &rc, "delete"));
    }
    let rp = &mut st.rps[idx];
    rp.inventories.clear();
    rp.generation += 1;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn inv_get_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let uuid = req.param("uuid");
    let rc = req.param("rc");
    let rp = find_rp(st, uuid, mv)?;
    let inv = rp.inventories.get(rc).ok_or_else(|| {
        perr(
            mv,
            404,
            &format!("No inventory of class {rc} for {uuid}"),
            None,
        )
    })?;
    let mut v = inv_json(inv);
    v["resource_provider_generation"] = json!(rp.generation);
    Ok(json_resp(StatusCode::OK, v))
}

fn inv_put_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let uuid = req.param("uuid").to_string();
    let rc = req.param("rc").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    let generation = generation_of(mv, &b)?;
    if !rc_exists(st, &rc) {
        return Err(bad(mv, &format!("No such resource class {rc}.")));
    }
    let inv = parse_inventory(mv, &uuid, &rc, &b)?;
    if generation != st.rps[idx].generation {
        return Err(stale(mv));
    }
    if !st.rps[idx].inventories.contains_key(&rc) {
        return Err(bad(
            mv,
            &format!("No inventory record with resource class for resource provider {uuid}"),
        ));
    }
    let rp = &mut st.rps[idx];
    rp.inventories.insert(rc, inv.clone());
    rp.generation += 1;
    rp.updated_ms = now_ms();
    let mut v = inv_json(&inv);
    v["resource_provider_generation"] = json!(rp.generation);
    Ok(json_resp(StatusCode::OK, v))
}

fn inv_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let uuid = req.param("uuid").to_string();
    let rc = req.param("rc").to_string();
    let idx = rp_index(st, &uuid, mv)?;
    if !st.rps[idx].inventories.contains_key(&rc) {
        return Err(perr(
            mv,
            404,
            &format!("No inventory of class {rc} found for delete"),
            None,
        ));
    }
    if used(st, &uuid).get(&rc).copied().unwrap_or(0) > 0 {
        return Err(in_use(mv, &uuid, &rc, "delete"));
    }
    let rp = &mut st.rps[idx];
    rp.inventories.remove(&rc);
    rp.generation += 1;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn rp_usages_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    let used = used(st, &rp.uuid);
    let usages: serde_json::Map<String, Value> = rp
        .inventories
        .keys()
        .map(|rc| (rc.clone(), json!(used.get(rc).copied().unwrap_or(0))))
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        json!({"resource_provider_generation": rp.generation, "usages": usages}),
    ))
}

fn rp_allocations_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    let mut allocs = serde_json::Map::new();
    for (id, c) in &st.consumers {
        if let Some(a) = c.allocations.get(&rp.uuid) {
            let mut v = json!({"resources": a});
            if mv >= 28 {
                v["consumer_generation"] = json!(c.generation);
            }
            allocs.insert(id.clone(), v);
        }
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"allocations": allocs, "resource_provider_generation": rp.generation}),
    ))
}

// ---------------------------------------------------------------------------------------
// Traits and aggregates of a provider

fn rp_traits_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"traits": rp.traits, "resource_provider_generation": rp.generation}),
    ))
}

fn rp_traits_put_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let idx = rp_index(st, req.param("uuid"), mv)?;
    let generation = generation_of(mv, &b)?;
    let traits: Vec<String> = b
        .get("traits")
        .and_then(Value::as_array)
        .ok_or_else(|| not_valid(mv, "'traits' is a required property"))?
        .iter()
        .map(|t| {
            t.as_str()
                .map(str::to_string)
                .ok_or_else(|| not_valid(mv, &format!("{t} is not of type 'string'")))
        })
        .collect::<Result<_, _>>()?;
    let unknown: Vec<&String> = traits.iter().filter(|t| !trait_exists(st, t)).collect();
    if !unknown.is_empty() {
        return Err(bad(
            mv,
            &format!(
                "No such trait(s): {}.",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if generation != st.rps[idx].generation {
        return Err(stale(mv));
    }
    let rp = &mut st.rps[idx];
    rp.traits = traits.into_iter().collect();
    rp.generation += 1;
    Ok(json_resp(
        StatusCode::OK,
        json!({"traits": rp.traits, "resource_provider_generation": rp.generation}),
    ))
}

fn rp_traits_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let idx = rp_index(st, req.param("uuid"), mv)?;
    let rp = &mut st.rps[idx];
    rp.traits.clear();
    rp.generation += 1;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn aggs_json(rp: &ResourceProvider, mv: u32) -> Value {
    if mv >= 19 {
        json!({"aggregates": rp.aggregates, "resource_provider_generation": rp.generation})
    } else {
        json!({"aggregates": rp.aggregates})
    }
}

fn rp_aggs_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let rp = find_rp(st, req.param("uuid"), mv)?;
    Ok(json_resp(StatusCode::OK, aggs_json(rp, mv)))
}

fn rp_aggs_put_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let idx = rp_index(st, req.param("uuid"), mv)?;
    let list = if mv >= 19 {
        let generation = generation_of(mv, &b)?;
        if generation != st.rps[idx].generation {
            return Err(stale(mv));
        }
        b.get("aggregates")
            .cloned()
            .ok_or_else(|| not_valid(mv, "'aggregates' is a required property"))?
    } else {
        b
    };
    let aggs: Vec<String> = list
        .as_array()
        .ok_or_else(|| not_valid(mv, &format!("{list} is not of type 'array'")))?
        .iter()
        .map(|a| {
            a.as_str()
                .filter(|s| is_uuid(s))
                .map(str::to_string)
                .ok_or_else(|| not_valid(mv, &format!("{a} is not a 'uuid'")))
        })
        .collect::<Result<_, _>>()?;
    let rp = &mut st.rps[idx];
    rp.aggregates = aggs;
    if mv >= 19 {
        rp.generation += 1;
    }
    Ok(json_resp(StatusCode::OK, aggs_json(rp, mv)))
}

// ---------------------------------------------------------------------------------------
// Resource classes and traits

fn rc_link(os: &Os, name: &str) -> Value {
    json!([{"rel": "self", "href": format!("{}/resource_classes/{name}", os.placement_path)}])
}

fn all_rcs(st: &State) -> Vec<String> {
    STANDARD_RESOURCE_CLASSES
        .iter()
        .map(|s| s.to_string())
        .chain(st.custom_rcs.iter().cloned())
        .collect()
}

fn custom_name_ok(name: &str) -> bool {
    name.len() <= 255
        && name.strip_prefix("CUSTOM_").is_some_and(|r| {
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
}

fn pattern_error(mv: u32, name: &str) -> Response {
    not_valid(
        mv,
        &format!("'{name}' does not match '^CUSTOM_[A-Z0-9_]+$'"),
    )
}

fn rc_list_(os: &Os, _req: &Req, st: &mut State, _mv: u32) -> R {
    let list: Vec<Value> = all_rcs(st)
        .iter()
        .map(|n| json!({"name": n, "links": rc_link(os, n)}))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"resource_classes": list})))
}

fn rc_create_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| not_valid(mv, "'name' is a required property"))?
        .to_string();
    if !custom_name_ok(&name) {
        return Err(pattern_error(mv, &name));
    }
    if rc_exists(st, &name) {
        return Err(perr(
            mv,
            409,
            &format!("Conflicting resource class already exists: {name}"),
            None,
        ));
    }
    st.custom_rcs.push(name.clone());
    Ok(with_header(
        empty(StatusCode::CREATED),
        "location",
        &format!("{}/resource_classes/{name}", os.ctx.urls.placement),
    ))
}

fn rc_get_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name");
    if !rc_exists(st, name) {
        return Err(perr(
            mv,
            404,
            &format!("No such resource class {name}."),
            None,
        ));
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"name": name, "links": rc_link(os, name)}),
    ))
}

fn rc_put_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name").to_string();
    let location = format!("{}/resource_classes/{name}", os.ctx.urls.placement);
    if mv >= 7 {
        if !custom_name_ok(&name) {
            return Err(pattern_error(mv, &name));
        }
        if rc_exists(st, &name) {
            return Ok(with_header(
                empty(StatusCode::NO_CONTENT),
                "location",
                &location,
            ));
        }
        st.custom_rcs.push(name);
        return Ok(with_header(
            empty(StatusCode::CREATED),
            "location",
            &location,
        ));
    }
    // Before 1.7: rename a custom class.
    let b = body(req, mv)?;
    let new = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| not_valid(mv, "'name' is a required property"))?
        .to_string();
    if STANDARD_RESOURCE_CLASSES.contains(&name.as_str()) {
        return Err(bad(
            mv,
            &format!("Cannot update standard resource class {name}"),
        ));
    }
    if !custom_name_ok(&new) {
        return Err(pattern_error(mv, &new));
    }
    let idx = st
        .custom_rcs
        .iter()
        .position(|c| c == &name)
        .ok_or_else(|| perr(mv, 404, &format!("No such resource class {name}."), None))?;
    if rc_exists(st, &new) {
        return Err(perr(
            mv,
            409,
            &format!("Resource class already exists: {new}"),
            None,
        ));
    }
    st.custom_rcs[idx] = new.clone();
    Ok(json_resp(
        StatusCode::OK,
        json!({"name": new, "links": rc_link(os, &new)}),
    ))
}

fn rc_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name").to_string();
    if STANDARD_RESOURCE_CLASSES.contains(&name.as_str()) {
        return Err(bad(
            mv,
            &format!(
                "Cannot delete standard resource class {name}: Cannot delete standard resource class."
            ),
        ));
    }
    let idx = st
        .custom_rcs
        .iter()
        .position(|c| c == &name)
        .ok_or_else(|| perr(mv, 404, &format!("No such resource class {name}."), None))?;
    if st.rps.iter().any(|r| r.inventories.contains_key(&name)) {
        return Err(perr(
            mv,
            409,
            &format!("Unable to delete resource class {name}. Class is in use in inventory."),
            None,
        ));
    }
    st.custom_rcs.remove(idx);
    st.pci_aliases.retain(|a| a.resource_class != name);
    Ok(empty(StatusCode::NO_CONTENT))
}

fn trait_list_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    check_query(req, mv, &["name", "associated"])?;
    let mut all: Vec<String> = STANDARD_TRAITS
        .iter()
        .map(|s| s.to_string())
        .chain(st.custom_traits.iter().cloned())
        .collect();
    if let Some(n) = req.q("name") {
        if let Some(p) = n.strip_prefix("startswith:") {
            all.retain(|t| t.starts_with(p));
        } else if let Some(list) = n.strip_prefix("in:") {
            let want: Vec<&str> = list.split(',').collect();
            all.retain(|t| want.contains(&t.as_str()));
        } else {
            return Err(bad(
                mv,
                &format!(
                    "Badly formed name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"{n}\""
                ),
            ));
        }
    }
    if let Some(a) = req.q("associated").and_then(parse_bool) {
        let used: BTreeSet<&String> = st.rps.iter().flat_map(|r| r.traits.iter()).collect();
        all.retain(|t| used.contains(t) == a);
    }
    Ok(json_resp(StatusCode::OK, json!({"traits": all})))
}

fn trait_get_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name");
    if !trait_exists(st, name) {
        return Err(perr(mv, 404, &format!("No such trait(s): {name}."), None));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn trait_put_(os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name").to_string();
    let location = format!("{}/traits/{name}", os.ctx.urls.placement);
    if !custom_name_ok(&name) {
        return Err(bad(
            mv,
            "The trait is invalid. A valid trait must be no longer than 255 characters, start with the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", \"0\"-\"9\" and \"_\"",
        ));
    }
    if trait_exists(st, &name) {
        return Ok(with_header(
            empty(StatusCode::NO_CONTENT),
            "location",
            &location,
        ));
    }
    st.custom_traits.push(name);
    Ok(with_header(
        empty(StatusCode::CREATED),
        "location",
        &location,
    ))
}

fn trait_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let name = req.param("name").to_string();
    if STANDARD_TRAITS.contains(&name.as_str()) {
        return Err(bad(mv, &format!("Cannot delete standard trait {name}.")));
    }
    let idx = st
        .custom_traits
        .iter()
        .position(|c| c == &name)
        .ok_or_else(|| perr(mv, 404, &format!("No such trait(s): {name}."), None))?;
    if st.rps.iter().any(|r| r.traits.contains(&name)) {
        return Err(perr(
            mv,
            409,
            &format!("The trait {name} is in use by a resource provider."),
            None,
        ));
    }
    st.custom_traits.remove(idx);
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------
// Allocation candidates

struct Group {
    suffix: String,
    resources: BTreeMap<String, i64>,
    required: TraitReq,
    member_of: Vec<Vec<String>>,
    in_tree: Option<String>,
}

/// One way to satisfy every group: provider → class → amount, and which provider
/// served each group.
struct Candidate {
    allocs: BTreeMap<String, BTreeMap<String, i64>>,
    mappings: BTreeMap<String, Vec<String>>,
}

fn parse_groups(st: &State, req: &Req, mv: u32) -> Result<Vec<Group>, Response> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut seen_any = false;
    for (k, v) in &req.query {
        let (base, suffix) = ["resources", "required", "member_of", "in_tree"]
            .iter()
            .find_map(|b| k.strip_prefix(b).map(|s| (*b, s.to_string())))
            .unwrap_or(("", String::new()));
        let allowed_other = ["limit", "group_policy", "root_required", "same_subtree"];
        if base.is_empty() {
            if !allowed_other.contains(&k.as_str())
                || (mv < 25 && k == "group_policy")
                || (mv < 35 && k == "root_required")
                || (mv < 36 && k == "same_subtree")
            {
                return Err(bad(
                    mv,
                    &format!(
                        "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                    ),
                ));
            }
            continue;
        }
        if !suffix.is_empty()
            && (mv < 25 || (mv < 33 && !suffix.chars().all(|c| c.is_ascii_digit())))
        {
            return Err(bad(
                mv,
                &format!(
                    "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                ),
            ));
        }
        if (base == "in_tree" && mv < 31)
            || (base == "member_of" && mv < 21)
            || (base == "required" && mv < 17)
        {
            return Err(bad(
                mv,
                &format!(
                    "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                ),
            ));
        }
        let g = groups.entry(suffix.clone()).or_insert_with(|| Group {
            suffix: suffix.clone(),
            resources: BTreeMap::new(),
            required: TraitReq {
                all: vec![],
                none: vec![],
                any: vec![],
            },
            member_of: vec![],
            in_tree: None,
        });
        match base {
            "resources" => {
                seen_any = true;
                g.resources = parse_resources(st, mv, v)?;
            }
            "required" => {
                let t = parse_required(st, mv, &[v.as_str()])?;
                g.required.all.extend(t.all);
                g.required.none.extend(t.none);
                g.required.any.extend(t.any);
            }
            "member_of" => g.member_of.extend(parse_member_of(mv, &[v.as_str()])?),
            _ => {
                if !st.rps.iter().any(|r| &r.uuid == v) {
                    return Err(bad(mv, &format!("Invalid uuid value: {v}")));
                }
                g.in_tree = Some(v.clone());
            }
        }
    }
    if !seen_any {
        return Err(if mv >= 25 {
            perr(
                mv,
                400,
                "There must be at least one resources or resources[$S] parameter.",
                Some("placement.query.missing_value"),
            )
        } else {
            bad(
                mv,
                "Invalid query string parameters: 'resources' is a required property",
            )
        });
    }
    for g in groups.values() {
        if g.resources.is_empty() && !g.suffix.is_empty() && mv < 35 {
            return Err(bad(
                mv,
                &format!(
                    "Resources query string parameter resources{} is required when required{0} or member_of{0} is given.",
                    g.suffix
                ),
            ));
        }
    }
    let suffixed = groups.keys().filter(|k| !k.is_empty()).count();
    if suffixed > 1 && req.q("group_policy").is_none() && mv < 33 {
        return Err(bad(
            mv,
            "The \"group_policy\" parameter is required when specifying more than one \"resources{N}\" parameter.",
        ));
    }
    Ok(groups
        .into_values()
        .filter(|g| !g.resources.is_empty())
        .collect())
}

/// Every way each group can be served inside one provider tree.
fn tree_candidates(
    st: &State,
    tree: &[&ResourceProvider],
    groups: &[Group],
    isolate: bool,
    out: &mut Vec<Candidate>,
    limit: usize,
) {
    // Options per group: the unsuffixed group may spread its classes over the tree,
    // a suffixed group takes all its resources from one provider.
    let root_aggs: Vec<String> = tree
        .iter()
        .find(|r| r.parent.is_none())
        .map(|r| r.aggregates.clone())
        .unwrap_or_default();
    let mut options: Vec<Vec<Vec<(String, String, i64)>>> = Vec::new();
    for g in groups {
        let eligible: Vec<&&ResourceProvider> = tree
            .iter()
            .filter(|rp| traits_ok(rp, &g.required) && member_ok(rp, &g.member_of, &root_aggs))
            .filter(|_| {
                g.in_tree
                    .as_ref()
                    .is_none_or(|t| tree.iter().any(|x| &x.uuid == t))
            })
            .collect();
        let mut opts: Vec<Vec<(String, String, i64)>> = Vec::new();
        if g.suffix.is_empty() {
            // Cartesian product over classes.
            let mut partial: Vec<Vec<(String, String, i64)>> = vec![vec![]];
            for (rc, n) in &g.resources {
                let hosts: Vec<&&&ResourceProvider> = eligible
                    .iter()
                    .filter(|rp| fits(st, rp, &BTreeMap::from([(rc.clone(), *n)])))
                    .collect();
                let mut next = Vec::new();
                for p in &partial {
                    for h in &hosts {
                        let mut q = p.clone();
                        q.push((h.uuid.clone(), rc.clone(), *n));
                        next.push(q);
                    }
                }
                partial = next;
                if partial.len() > 1000 {
                    partial.truncate(1000);
                }
            }
            opts = partial;
        } else {
            for rp in &eligible {
                if fits(st, rp, &g.resources) {
                    opts.push(
                        g.resources
                            .iter()
                            .map(|(rc, n)| (rp.uuid.clone(), rc.clone(), *n))
                            .collect(),
                    );
                }
            }
        }
        if opts.is_empty() {
            return;
        }
        options.push(opts);
    }
    // Combine the groups.
    let mut combos: Vec<Vec<usize>> = vec![vec![]];
    for opts in &options {
        let mut next = Vec::new();
        for c in &combos {
            for i in 0..opts.len() {
                let mut d = c.clone();
                d.push(i);
                next.push(d);
            }
        }
        combos = next;
        if combos.len() > 4096 {
            combos.truncate(4096);
        }
    }
    for combo in combos {
        if out.len() >= limit {
            return;
        }
        let mut allocs: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        let mut mappings: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut ok = true;
        for (gi, oi) in combo.iter().enumerate() {
            let g = &groups[gi];
            for (rp, rc, n) in &options[gi][*oi] {
                *allocs
                    .entry(rp.clone())
                    .or_default()
                    .entry(rc.clone())
                    .or_insert(0) += n;
                let m = mappings.entry(g.suffix.clone()).or_default();
                if !m.contains(rp) {
                    m.push(rp.clone());
                }
            }
        }
        if isolate {
            let suffixed: Vec<&Vec<String>> = mappings
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(_, v)| v)
                .collect();
            for (i, a) in suffixed.iter().enumerate() {
                for b in &suffixed[i + 1..] {
                    if a.iter().any(|x| b.contains(x)) {
                        ok = false;
                    }
                }
            }
        }
        // Combined amounts must still fit.
        if ok {
            ok = allocs.iter().all(|(rp, want)| {
                tree.iter()
                    .find(|r| &r.uuid == rp)
                    .is_some_and(|r| fits(st, r, want))
            });
        }
        let dup = out.iter().any(|c| c.allocs == allocs);
        if ok && !dup {
            out.push(Candidate { allocs, mappings });
        }
    }
}

fn candidates_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let groups = parse_groups(st, req, mv)?;
    let limit = match req.q("limit") {
        Some(l) if mv >= 16 => l.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            bad(
                mv,
                &format!("Invalid query string parameters: '{l}' does not match '^[1-9][0-9]*$'"),
            )
        })?,
        Some(_) => {
            return Err(bad(
                mv,
                "Invalid query string parameters: Additional properties are not allowed ('limit' was unexpected)",
            ));
        }
        None => usize::MAX,
    };
    let isolate = req.q("group_policy") == Some("isolate");
    let root_required = match req.q("root_required") {
        Some(v) => Some(parse_required(st, mv, &[v])?),
        None => None,
    };
    let mut out = Vec::new();
    let roots: Vec<&ResourceProvider> = st.rps.iter().filter(|r| r.parent.is_none()).collect();
    for root in &roots {
        if root_required.as_ref().is_some_and(|t| !traits_ok(root, t)) {
            continue;
        }
        let tree: Vec<&ResourceProvider> = st.rps.iter().filter(|r| r.root == root.uuid).collect();
        tree_candidates(st, &tree, &groups, isolate, &mut out, limit);
        if out.len() >= limit {
            break;
        }
    }
    // Provider summaries.
    let requested: BTreeSet<&String> = groups.iter().flat_map(|g| g.resources.keys()).collect();
    let mut involved: Vec<String> = Vec::new();
    for c in &out {
        for rp in c.allocs.keys() {
            let root = st
                .rps
                .iter()
                .find(|r| &r.uuid == rp)
                .map(|r| r.root.clone())
                .unwrap_or_default();
            let members: Vec<String> = if mv >= 29 {
                st.rps
                    .iter()
                    .filter(|r| r.root == root)
                    .map(|r| r.uuid.clone())
                    .collect()
            } else {
                vec![rp.clone()]
            };
            for m in members {
                if !involved.contains(&m) {
                    involved.push(m);
                }
            }
        }
    }
    let mut summaries = serde_json::Map::new();
    for uuid in &involved {
        let Some(rp) = st.rps.iter().find(|r| &r.uuid == uuid) else {
            continue;
        };
        let used = used(st, uuid);
        let mut res = serde_json::Map::new();
        for (rc, inv) in &rp.inventories {
            if mv >= 27 || requested.contains(rc) {
                res.insert(
                    rc.clone(),
                    json!({"capacity": capacity(inv), "used": used.get(rc).copied().unwrap_or(0)}),
                );
            }
        }
        let mut s = json!({"resources": res});
        if mv >= 17 {
            s["traits"] = json!(rp.traits);
        }
        if mv >= 29 {
            s["parent_provider_uuid"] = json!(rp.parent);
            s["root_provider_uuid"] = json!(rp.root);
        }
        summaries.insert(uuid.clone(), s);
    }
    let requests: Vec<Value> = out
        .iter()
        .map(|c| {
            let mut v = if mv >= 12 {
                let m: serde_json::Map<String, Value> = c
                    .allocs
                    .iter()
                    .map(|(rp, res)| (rp.clone(), json!({"resources": res})))
                    .collect();
                json!({"allocations": m})
            } else {
                json!({"allocations": c.allocs.iter().map(|(rp, res)| json!({"resource_provider": {"uuid": rp}, "resources": res})).collect::<Vec<_>>()})
            };
            if mv >= 34 {
                v["mappings"] = json!(c.mappings);
            }
            v
        })
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        json!({"allocation_requests": requests, "provider_summaries": summaries}),
    ))
}

// ---------------------------------------------------------------------------------------
// Allocations and usages

fn alloc_get_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let id = req.param("consumer");
    let Some(c) = st.consumers.get(id) else {
        return Ok(json_resp(StatusCode::OK, json!({"allocations": {}})));
    };
    let mut allocs = serde_json::Map::new();
    for (rp, res) in &c.allocations {
        let generation = st
            .rps
            .iter()
            .find(|r| &r.uuid == rp)
            .map(|r| r.generation)
            .unwrap_or(0);
        allocs.insert(
            rp.clone(),
            json!({"resources": res, "generation": generation}),
        );
    }
    let mut v = json!({"allocations": allocs});
    if mv >= 12 {
        v["project_id"] = json!(c.project_id);
        v["user_id"] = json!(c.user_id);
    }
    if mv >= 28 {
        v["consumer_generation"] = json!(c.generation);
    }
    if mv >= 38 {
        v["consumer_type"] = json!(c.consumer_type.clone().unwrap_or_else(|| "unknown".into()));
    }
    Ok(json_resp(StatusCode::OK, v))
}

/// Parse and check one consumer's allocations from a request body.
fn parse_allocs(
    st: &State,
    mv: u32,
    b: &Value,
) -> Result<BTreeMap<String, BTreeMap<String, i64>>, Response> {
    let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let raw = b
        .get("allocations")
        .ok_or_else(|| not_valid(mv, "'allocations' is a required property"))?;
    let entries: Vec<(String, Value)> = if mv >= 12 {
        raw.as_object()
            .ok_or_else(|| not_valid(mv, &format!("{raw} is not of type 'object'")))?
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.get("resources").cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    } else {
        raw.as_array()
            .ok_or_else(|| not_valid(mv, &format!("{raw} is not of type 'array'")))?
            .iter()
            .map(|a| {
                (
                    a.pointer("/resource_provider/uuid")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    a.get("resources").cloned().unwrap_or(Value::Null),
                )
            })
            .collect()
    };
    if entries.is_empty() && mv < 28 {
        return Err(not_valid(mv, "[] is too short"));
    }
    for (rp, res) in entries {
        let res = res
            .as_object()
            .ok_or_else(|| not_valid(mv, "'resources' is a required property"))?;
        let provider = st.rps.iter().find(|r| r.uuid == rp).ok_or_else(|| {
            bad(
                mv,
                &format!("Allocation for resource provider '{rp}' that does not exist."),
            )
        })?;
        for (rc, n) in res {
            let n = n
                .as_i64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| not_valid(mv, &format!("{n} is less than the minimum of 1")))?;
            if !rc_exists(st, rc) {
                return Err(bad(
                    mv,
                    &format!("Unable to allocate inventory: No such resource class {rc}."),
                ));
            }
            if !provider.inventories.contains_key(rc) {
                return Err(bad(
                    mv,
                    &format!(
                        "Unable to allocate inventory: Inventory for '{rc}' on resource provider '{rp}' invalid."
                    ),
                ));
            }
            out.entry(rp.clone()).or_default().insert(rc.clone(), n);
        }
    }
    Ok(out)
}

/// Check capacity for a consumer's new allocations (its old ones do not count).
fn check_capacity(
    st: &State,
    mv: u32,
    consumer: &str,
    allocs: &BTreeMap<String, BTreeMap<String, i64>>,
) -> Result<(), Response> {
    let mut tmp = st.clone();
    tmp.consumers.remove(consumer);
    for (rp, want) in allocs {
        let provider = tmp.rps.iter().find(|r| &r.uuid == rp).cloned();
        if let Some(p) = provider
            && !fits(&tmp, &p, want)
        {
            let rc = want
                .iter()
                .find(|(rc, n)| !fits(&tmp, &p, &BTreeMap::from([((*rc).clone(), **n)])))
                .map(|(rc, _)| rc.clone())
                .unwrap_or_default();
            return Err(perr(
                mv,
                409,
                &format!(
                    "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would exceed the capacity."
                ),
                None,
            ));
        }
    }
    Ok(())
}

fn check_consumer_generation(
    st: &State,
    mv: u32,
    consumer: &str,
    b: &Value,
) -> Result<(), Response> {
    if mv < 28 {
        return Ok(());
    }
    let given = b
        .get("consumer_generation")
        .ok_or_else(|| not_valid(mv, "'consumer_generation' is a required property"))?;
    let have = st.consumers.get(consumer).map(|c| c.generation);
    let ok = match (given.as_i64(), have) {
        (None, None) => given.is_null(),
        (Some(g), Some(h)) => g == h,
        _ => false,
    };
    if !ok {
        let exp = have.map(|h| h.to_string()).unwrap_or_else(|| "None".into());
        let got = given
            .as_i64()
            .map(|g| g.to_string())
            .unwrap_or_else(|| "None".into());
        return Err(perr(
            mv,
            409,
            &format!("consumer generation conflict - expected {got} but got {exp}"),
            Some("placement.concurrent_update"),
        ));
    }
    Ok(())
}

fn consumer_type(mv: u32, b: &Value) -> Result<Option<String>, Response> {
    if mv < 38 {
        return Ok(None);
    }
    match b.get("consumer_type") {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        _ => Err(not_valid(mv, "'consumer_type' is a required property")),
    }
}

fn alloc_put_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let consumer = req.param("consumer").to_string();
    if !is_uuid(&consumer) {
        return Err(bad(mv, &format!("Malformed consumer_uuid: {consumer}")));
    }
    let allocs = parse_allocs(st, mv, &b)?;
    let (project, user) = if mv >= 8 {
        (
            b.get("project_id")
                .and_then(Value::as_str)
                .ok_or_else(|| not_valid(mv, "'project_id' is a required property"))?
                .to_string(),
            b.get("user_id")
                .and_then(Value::as_str)
                .ok_or_else(|| not_valid(mv, "'user_id' is a required property"))?
                .to_string(),
        )
    } else {
        (
            b.get("project_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            b.get("user_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    };
    let ctype = consumer_type(mv, &b)?;
    check_consumer_generation(st, mv, &consumer, &b)?;
    check_capacity(st, mv, &consumer, &allocs)?;
    set_allocations(st, &consumer, &project, &user, ctype.as_deref(), allocs);
    Ok(empty(StatusCode::NO_CONTENT))
}

fn alloc_post_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let b = body(req, mv)?;
    let m = b
        .as_object()
        .ok_or_else(|| not_valid(mv, &format!("{b} is not of type 'object'")))?;
    let mut work = Vec::new();
    for (consumer, v) in m {
        if !is_uuid(consumer) {
            return Err(not_valid(
                mv,
                &format!("'{consumer}' does not match any of the regexes"),
            ));
        }
        let allocs = parse_allocs(st, 12.max(mv), v)?;
        let project = v
            .get("project_id")
            .and_then(Value::as_str)
            .ok_or_else(|| not_valid(mv, "'project_id' is a required property"))?
            .to_string();
        let user = v
            .get("user_id")
            .and_then(Value::as_str)
            .ok_or_else(|| not_valid(mv, "'user_id' is a required property"))?
            .to_string();
        let ctype = consumer_type(mv, v)?;
        check_consumer_generation(st, mv, consumer, v)?;
        work.push((consumer.clone(), project, user, ctype, allocs));
    }
    let mut tmp = st.clone();
    for (consumer, _, _, _, _) in &work {
        tmp.consumers.remove(consumer);
    }
    for (consumer, _, _, _, allocs) in &work {
        check_capacity(&tmp, mv, consumer, allocs)?;
    }
    for (consumer, project, user, ctype, allocs) in work {
        set_allocations(st, &consumer, &project, &user, ctype.as_deref(), allocs);
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn alloc_delete_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let consumer = req.param("consumer");
    if !st.consumers.contains_key(consumer) {
        return Err(perr(
            mv,
            404,
            &format!("No allocations for consumer '{consumer}'"),
            None,
        ));
    }
    release(st, consumer);
    Ok(empty(StatusCode::NO_CONTENT))
}

fn usages_(_os: &Os, req: &Req, st: &mut State, mv: u32) -> R {
    let mut allowed = vec!["project_id", "user_id"];
    if mv >= 38 {
        allowed.push("consumer_type");
    }
    check_query(req, mv, &allowed)?;
    let project = req.q("project_id").ok_or_else(|| {
        bad(
            mv,
            "Invalid query string parameters: 'project_id' is a required property",
        )
    })?;
    let consumers = st.consumers.values().filter(|c| {
        c.project_id == project
            && req.q("user_id").is_none_or(|u| u == c.user_id)
            && req
                .q("consumer_type")
                .is_none_or(|t| t == "all" || t == c.consumer_type.as_deref().unwrap_or("unknown"))
    });
    if mv >= 38 {
        let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for c in consumers {
            let e = out
                .entry(c.consumer_type.clone().unwrap_or_else(|| "unknown".into()))
                .or_default();
            *e.entry("consumer_count".into()).or_insert(0) += 1;
            for res in c.allocations.values() {
                for (rc, n) in res {
                    *e.entry(rc.clone()).or_insert(0) += n;
                }
            }
        }
        return Ok(json_resp(StatusCode::OK, json!({"usages": out})));
    }
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for c in consumers {
        for res in c.allocations.values() {
            for (rc, n) in res {
                *out.entry(rc.clone()).or_insert(0) += n;
            }
        }
    }
    Ok(json_resp(StatusCode::OK, json!({"usages": out})))
}
