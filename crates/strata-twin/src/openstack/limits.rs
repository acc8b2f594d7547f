//! Keystone unified limits: registered limits (a service's default for every project)
//! and limits of one project, as keystone's `api/registered_limits.py`,
//! `api/limits.py` and `limit/backends/sql.py` answer them.
//!
//! What the real service refuses, the twin refuses: a limit whose resource has no
//! registered limit (403), a second registered limit for the same service, region and
//! resource, or a second limit for the same project (409), a registered limit deleted
//! or changed at all while project limits hang on it (403), unknown services, regions and
//! projects (400), and any write by a caller without the admin role (403). Deleting a
//! project deletes its limits, as keystone's project-deleted callback does.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::keystone::{admin, bad_request, error, kcaller, kresp, not_found, validation};
use super::model::*;
use super::*;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "/identity/v3/registered_limits",
        &[(GET, list_registered), (POST, create_registered)],
    )
    .add(
        "/identity/v3/registered_limits/{id}",
        &[
            (GET, get_registered),
            (PATCH, update_registered),
            (DELETE, delete_registered),
        ],
    )
    .add(
        "/identity/v3/limits",
        &[(GET, list_limits), (POST, create_limits)],
    )
    .add("/identity/v3/limits/model", &[(GET, limit_model)])
    .add(
        "/identity/v3/limits/{id}",
        &[
            (GET, get_limit),
            (PATCH, update_limit),
            (DELETE, delete_limit),
        ],
    )
}

/// The largest limit keystone's schema takes (`limit/schema.py`).
const MAX_LIMIT: i64 = 2_147_483_647;

/// keystone's `ValidationError(attribute=..., target=...)` wording.
fn missing(attribute: &str, target: &str) -> Response {
    bad_request(&format!(
        "Expecting to find {attribute} in {target}. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."
    ))
}

fn filter(req: &Req, key: &str, value: Option<&str>) -> bool {
    req.q(key).is_none_or(|q| Some(q) == value)
}

fn registered_json(os: &Os, l: &RegisteredLimit) -> Value {
    json!({
        "id": l.id,
        "service_id": l.service_id,
        "region_id": l.region_id,
        "resource_name": l.resource_name,
        "default_limit": l.default_limit,
        "description": l.description,
        "links": {"self": format!("{}/v3/registered_limits/{}", os.ctx.urls.identity, l.id)},
    })
}

fn limit_json(os: &Os, l: &Limit) -> Value {
    json!({
        "id": l.id,
        "service_id": l.service_id,
        "region_id": l.region_id,
        "project_id": l.project_id,
        "domain_id": l.domain_id,
        "resource_name": l.resource_name,
        "resource_limit": l.resource_limit,
        "description": l.description,
        "links": {"self": format!("{}/v3/limits/{}", os.ctx.urls.identity, l.id)},
    })
}

fn list_links(os: &Os, what: &str) -> Value {
    json!({"self": format!("{}/v3/{what}", os.ctx.urls.identity), "previous": null, "next": null})
}

// ---------------------------------------------------------------------------------------
// Field checks shared by both kinds (keystone `limit/schema.py`)

fn string_field(
    o: &serde_json::Map<String, Value>,
    key: &str,
    required: bool,
    max: usize,
) -> Result<Option<String>, Response> {
    match o.get(key) {
        None if required => Err(validation(
            key,
            &Value::Null,
            &format!("'{key}' is a required property"),
        )),
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= max => Ok(Some(s.clone())),
        Some(v) => Err(validation(
            key,
            v,
            &format!("is not a valid {key} (a string of 1 to {max} characters)"),
        )),
        None => Err(validation(key, &Value::Null, "is required")),
    }
}

fn limit_value(
    o: &serde_json::Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Option<i64>, Response> {
    match o.get(key) {
        None if required => Err(validation(
            key,
            &Value::Null,
            &format!("'{key}' is a required property"),
        )),
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (-1..=MAX_LIMIT).contains(&n) && !v.is_f64() => Ok(Some(n)),
            _ => Err(validation(
                key,
                v,
                "is not an integer from -1 (unlimited) to 2147483647",
            )),
        },
    }
}

fn description(o: &serde_json::Map<String, Value>) -> Result<Option<String>, Response> {
    match o.get("description") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(validation(
            "description",
            v,
            "is not of type 'string', 'null'",
        )),
    }
}

fn unknown_keys(o: &serde_json::Map<String, Value>, allowed: &[&str]) -> Result<(), Response> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad_request(&format!(
            "Invalid input for field/attribute {k}. Additional properties are not allowed ('{k}' was unexpected)"
        ))),
        None => Ok(()),
    }
}

/// The referenced service and region exist (keystone `_assert_resource_exist`).
fn check_refs(
    st: &State,
    service_id: &str,
    region_id: Option<&str>,
    target: &str,
) -> Result<(), Response> {
    if !st.services.iter().any(|s| s.id == service_id) {
        return Err(missing("service_id", target));
    }
    if let Some(r) = region_id
        && r != st.region
    {
        return Err(missing("region_id", target));
    }
    Ok(())
}

fn items<'a>(body: &'a Value, key: &str) -> Result<&'a Vec<Value>, Response> {
    let list = body.get(key).and_then(Value::as_array).ok_or_else(|| {
        validation(
            "request body",
            body,
            &format!("'{key}' is a required property"),
        )
    })?;
    if list.is_empty() {
        return Err(validation(key, &json!([]), "[] is too short"));
    }
    Ok(list)
}

fn conflict(kind: &str, details: &str) -> Response {
    error(
        StatusCode::CONFLICT,
        &format!(
            "Conflict occurred attempting to store {kind} - Duplicate entry found with {details}."
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Registered limits

const REGISTERED_FIELDS: &[&str] = &[
    "service_id",
    "region_id",
    "resource_name",
    "default_limit",
    "description",
];

fn list_registered(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    let out: Vec<Value> = st
        .registered_limits
        .iter()
        .filter(|l| {
            filter(req, "service_id", Some(&l.service_id))
                && filter(req, "region_id", l.region_id.as_deref())
                && filter(req, "resource_name", Some(&l.resource_name))
        })
        .map(|l| registered_json(os, l))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"registered_limits": out, "links": list_links(os, "registered_limits")}),
    ))
}

fn create_registered(os: &Os, req: &Req) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let mut st = os.st.lock();
    admin(os, &st, req, "create_registered_limits")?;
    let mut made: Vec<RegisteredLimit> = Vec::new();
    for item in items(&body, "registered_limits")? {
        let o = item
            .as_object()
            .ok_or_else(|| validation("registered_limits", item, "is not of type 'object'"))?;
        unknown_keys(o, REGISTERED_FIELDS)?;
        let l = RegisteredLimit {
            id: os.hex_id(),
            service_id: string_field(o, "service_id", true, 255)?.unwrap_or_default(),
            region_id: string_field(o, "region_id", false, 255)?,
            resource_name: string_field(o, "resource_name", true, 255)?.unwrap_or_default(),
            default_limit: limit_value(o, "default_limit", true)?.unwrap_or_default(),
            description: description(o)?,
        };
        check_refs(
            &st,
            &l.service_id,
            l.region_id.as_deref(),
            "registered_limit",
        )?;
        let same = |x: &RegisteredLimit| {
            x.service_id == l.service_id
                && x.region_id == l.region_id
                && x.resource_name == l.resource_name
        };
        if st.registered_limits.iter().any(same) || made.iter().any(same) {
            return Err(conflict(
                "registered_limit",
                &format!(
                    "service_id={}, region_id={}, resource_name={}",
                    l.service_id,
                    l.region_id.as_deref().unwrap_or("None"),
                    l.resource_name
                ),
            ));
        }
        made.push(l);
    }
    let out: Vec<Value> = made.iter().map(|l| registered_json(os, l)).collect();
    st.registered_limits.extend(made);
    Ok(kresp(
        StatusCode::CREATED,
        json!({"registered_limits": out}),
    ))
}

fn get_registered(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    let id = req.param("id");
    let l = st
        .registered_limits
        .iter()
        .find(|l| l.id == id)
        .ok_or_else(|| not_found("registered limit", id))?;
    Ok(kresp(
        StatusCode::OK,
        json!({"registered_limit": registered_json(os, l)}),
    ))
}

/// The project limits that hang on a registered limit.
fn referenced(st: &State, l: &RegisteredLimit) -> bool {
    st.limits.iter().any(|x| {
        x.service_id == l.service_id
            && x.region_id == l.region_id
            && x.resource_name == l.resource_name
    })
}

fn update_registered(os: &Os, req: &Req) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let mut st = os.st.lock();
    admin(os, &st, req, "update_registered_limit")?;
    let id = req.param("id").to_string();
    let o = body
        .get("registered_limit")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            validation(
                "request body",
                &body,
                "'registered_limit' is a required property",
            )
        })?;
    unknown_keys(o, REGISTERED_FIELDS)?;
    let idx = st
        .registered_limits
        .iter()
        .position(|l| l.id == id)
        .ok_or_else(|| not_found("registered limit", &id))?;
    let mut next = st.registered_limits[idx].clone();
    if let Some(s) = string_field(o, "service_id", false, 255)? {
        next.service_id = s;
    }
    if o.contains_key("region_id") {
        next.region_id = string_field(o, "region_id", false, 255)?;
    }
    if let Some(s) = string_field(o, "resource_name", false, 255)? {
        next.resource_name = s;
    }
    if let Some(n) = limit_value(o, "default_limit", false)? {
        next.default_limit = n;
    }
    if o.contains_key("description") {
        next.description = description(o)?;
    }
    // Keystone refuses any change to a registered limit that project limits use
    // (`limit/backends/sql.py` `update_registered_limit`), even of the default alone.
    if referenced(&st, &st.registered_limits[idx]) {
        return Err(error(
            StatusCode::FORBIDDEN,
            &format!(
                "Unable to update or delete registered limit {id} because there are project limits associated with it."
            ),
        ));
    }
    let old = &st.registered_limits[idx];
    let moved = old.service_id != next.service_id
        || old.region_id != next.region_id
        || old.resource_name != next.resource_name;
    if moved {
        check_refs(
            &st,
            &next.service_id,
            next.region_id.as_deref(),
            "registered_limit",
        )?;
        if st.registered_limits.iter().any(|x| {
            x.id != id
                && x.service_id == next.service_id
                && x.region_id == next.region_id
                && x.resource_name == next.resource_name
        }) {
            return Err(conflict(
                "registered_limit",
                &format!("resource_name={}", next.resource_name),
            ));
        }
    }
    let v = registered_json(os, &next);
    st.registered_limits[idx] = next;
    Ok(kresp(StatusCode::OK, json!({"registered_limit": v})))
}

fn delete_registered(os: &Os, req: &Req) -> R {
    let mut st = os.st.lock();
    admin(os, &st, req, "delete_registered_limit")?;
    let id = req.param("id").to_string();
    let idx = st
        .registered_limits
        .iter()
        .position(|l| l.id == id)
        .ok_or_else(|| not_found("registered limit", &id))?;
    if referenced(&st, &st.registered_limits[idx]) {
        return Err(error(
            StatusCode::FORBIDDEN,
            &format!(
                "Unable to update or delete registered limit {id} because there are project limits associated with it."
            ),
        ));
    }
    st.registered_limits.remove(idx);
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------
// Project limits

const LIMIT_FIELDS: &[&str] = &[
    "service_id",
    "region_id",
    "project_id",
    "domain_id",
    "resource_name",
    "resource_limit",
    "description",
];

/// Keystone's default enforcement model.
fn limit_model(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    Ok(kresp(
        StatusCode::OK,
        json!({"model": {"name": "flat", "description": "Limit enforcement and validation does not take project hierarchy into consideration."}}),
    ))
}

fn visible(c: &Caller, l: &Limit) -> bool {
    c.is_admin() || l.project_id.as_deref() == Some(c.project())
}

fn list_limits(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    let c = kcaller(os, &st, req)?;
    let out: Vec<Value> = st
        .limits
        .iter()
        .filter(|l| {
            visible(&c, l)
                && filter(req, "service_id", Some(&l.service_id))
                && filter(req, "region_id", l.region_id.as_deref())
                && filter(req, "resource_name", Some(&l.resource_name))
                && filter(req, "project_id", l.project_id.as_deref())
                && filter(req, "domain_id", l.domain_id.as_deref())
        })
        .map(|l| limit_json(os, l))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"limits": out, "links": list_links(os, "limits")}),
    ))
}

fn create_limits(os: &Os, req: &Req) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let mut st = os.st.lock();
    admin(os, &st, req, "create_limits")?;
    let mut made: Vec<Limit> = Vec::new();
    for item in items(&body, "limits")? {
        let o = item
            .as_object()
            .ok_or_else(|| validation("limits", item, "is not of type 'object'"))?;
        unknown_keys(o, LIMIT_FIELDS)?;
        let l = Limit {
            id: os.hex_id(),
            service_id: string_field(o, "service_id", true, 255)?.unwrap_or_default(),
            region_id: string_field(o, "region_id", false, 255)?,
            project_id: string_field(o, "project_id", false, 64)?,
            domain_id: string_field(o, "domain_id", false, 64)?,
            resource_name: string_field(o, "resource_name", true, 255)?.unwrap_or_default(),
            resource_limit: limit_value(o, "resource_limit", true)?.unwrap_or_default(),
            description: description(o)?,
        };
        match (&l.project_id, &l.domain_id) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(validation(
                    "limits",
                    item,
                    "exactly one of project_id and domain_id must be set",
                ));
            }
            (Some(p), None) if !st.projects.iter().any(|x| &x.id == p) => {
                return Err(missing("project_id", "limit"));
            }
            (None, Some(d)) if !st.domains.iter().any(|x| &x.id == d) => {
                return Err(missing("domain_id", "limit"));
            }
            _ => {}
        }
        check_refs(&st, &l.service_id, l.region_id.as_deref(), "limit")?;
        if !st.registered_limits.iter().any(|r| {
            r.service_id == l.service_id
                && r.region_id == l.region_id
                && r.resource_name == l.resource_name
        }) {
            return Err(error(
                StatusCode::FORBIDDEN,
                "Unable to create a limit that has no corresponding registered limit.",
            ));
        }
        let same = |x: &Limit| {
            x.service_id == l.service_id
                && x.region_id == l.region_id
                && x.resource_name == l.resource_name
                && x.project_id == l.project_id
                && x.domain_id == l.domain_id
        };
        if st.limits.iter().any(same) || made.iter().any(same) {
            return Err(conflict(
                "limit",
                &format!(
                    "service_id={}, region_id={}, resource_name={}, project_id={}",
                    l.service_id,
                    l.region_id.as_deref().unwrap_or("None"),
                    l.resource_name,
                    l.project_id.as_deref().unwrap_or("None")
                ),
            ));
        }
        made.push(l);
    }
    let out: Vec<Value> = made.iter().map(|l| limit_json(os, l)).collect();
    st.limits.extend(made);
    Ok(kresp(StatusCode::CREATED, json!({"limits": out})))
}

fn get_limit(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    let c = kcaller(os, &st, req)?;
    let id = req.param("id");
    let l = st
        .limits
        .iter()
        .find(|l| l.id == id && visible(&c, l))
        .ok_or_else(|| not_found("limit", id))?;
    Ok(kresp(StatusCode::OK, json!({"limit": limit_json(os, l)})))
}

fn update_limit(os: &Os, req: &Req) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let mut st = os.st.lock();
    admin(os, &st, req, "update_limit")?;
    let id = req.param("id").to_string();
    let o = body
        .get("limit")
        .and_then(Value::as_object)
        .ok_or_else(|| validation("request body", &body, "'limit' is a required property"))?;
    // Only the value and the description change (`limit/schema.py` limit_update).
    unknown_keys(o, &["resource_limit", "description"])?;
    let idx = st
        .limits
        .iter()
        .position(|l| l.id == id)
        .ok_or_else(|| not_found("limit", &id))?;
    let n = limit_value(o, "resource_limit", false)?;
    let d = if o.contains_key("description") {
        Some(description(o)?)
    } else {
        None
    };
    let l = &mut st.limits[idx];
    if let Some(n) = n {
        l.resource_limit = n;
    }
    if let Some(d) = d {
        l.description = d;
    }
    let v = limit_json(os, l);
    Ok(kresp(StatusCode::OK, json!({"limit": v})))
}

fn delete_limit(os: &Os, req: &Req) -> R {
    let mut st = os.st.lock();
    admin(os, &st, req, "delete_limit")?;
    let id = req.param("id").to_string();
    let idx = st
        .limits
        .iter()
        .position(|l| l.id == id)
        .ok_or_else(|| not_found("limit", &id))?;
    st.limits.remove(idx);
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The limit a project has on a resource of a service in the region: its own, else the
/// registered default; `None` when the resource has neither (unregistered).
pub(crate) fn effective_limit(
    st: &State,
    service_id: &str,
    project_id: &str,
    resource: &str,
) -> Option<i64> {
    let region = Some(st.region.as_str());
    let here = |r: &Option<String>| r.is_none() || r.as_deref() == region;
    st.limits
        .iter()
        .find(|l| {
            l.service_id == service_id
                && here(&l.region_id)
                && l.resource_name == resource
                && l.project_id.as_deref() == Some(project_id)
        })
        .map(|l| l.resource_limit)
        .or_else(|| {
            st.registered_limits
                .iter()
                .find(|l| {
                    l.service_id == service_id && here(&l.region_id) && l.resource_name == resource
                })
                .map(|l| l.default_limit)
        })
}
