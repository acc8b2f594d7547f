//! Glance v2: version discovery, images (list with filters, sorting and Glance's
//! `first`/`next` pagination, show, create, JSON-patch update, delete) and server
//! snapshots made by Nova's createImage.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::model::*;
use super::*;
use crate::core::{ApiError, ErrorBody};

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("/image", &[(GET, versions_300)])
        .add("/image/", &[(GET, versions_300)])
        .add("/image/versions", &[(GET, versions_200)])
        .add(
            "/image/v2/images",
            &[(GET, images_list), (POST, image_create)],
        )
        .add(
            "/image/v2/images/{id}",
            &[
                (GET, image_get),
                (PATCH, image_patch),
                (DELETE, image_delete),
            ],
        )
        .add("/image/v2/schemas/image", &[(GET, schema_image)])
        .add("/image/v2/schemas/images", &[(GET, schema_images)])
}

/// Glance's errors are webob's: JSON when the client accepts JSON, HTML otherwise.
fn gerr(req: &Req, status: u16, message: &str) -> Response {
    let mut e = ApiError::new(status, "", message);
    if StatusCode::from_u16(status).is_err() {
        e.status = StatusCode::BAD_REQUEST;
    }
    GlanceErrors {
        json: req.header("accept").is_some_and(|a| a.contains("json")),
        status,
    }
    .render(&e)
}

/// Glance's (webob's) error bodies: `{"message", "code": "STATUS REASON", "title"}`
/// when the client accepts JSON, an HTML page otherwise.
pub(crate) struct GlanceErrors {
    /// The client accepts JSON.
    pub json: bool,
    /// The status as the handler gave it (written in the body as is).
    pub status: u16,
}

impl ErrorBody for GlanceErrors {
    fn render(&self, e: &ApiError) -> Response {
        let (code, status, message) = (e.status, self.status, &e.message);
        let reason = code.canonical_reason().unwrap_or("Error");
        if self.json {
            return json_resp(
                code,
                json!({"message": format!("{message}<br /><br />\n\n\n"), "code": format!("{status} {reason}"), "title": reason}),
            );
        }
        let html = format!(
            "<html>\n <head>\n  <title>{status} {reason}</title>\n </head>\n <body>\n  <h1>{status} {reason}</h1>\n  {message}<br /><br />\n\n\n\n </body>\n</html>"
        );
        let mut r = (code, html).into_response();
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("text/html; charset=UTF-8"),
        );
        r
    }
}

fn version_list(os: &Os) -> Value {
    let mut out = Vec::new();
    for (i, v) in [
        "2.17", "2.16", "2.15", "2.14", "2.13", "2.12", "2.11", "2.10", "2.9", "2.8", "2.7", "2.6",
        "2.5", "2.4", "2.3", "2.2", "2.1", "2.0",
    ]
    .iter()
    .enumerate()
    {
        out.push(json!({
            "id": format!("v{v}"),
            "status": if i == 0 { "CURRENT" } else { "SUPPORTED" },
            "links": [{"rel": "self", "href": format!("{}/v2/", os.ctx.urls.image)}],
        }));
    }
    json!({"versions": out})
}

fn versions_300(os: &Os, _req: &Req) -> R {
    Ok(json_resp(StatusCode::MULTIPLE_CHOICES, version_list(os)))
}

fn versions_200(os: &Os, _req: &Req) -> R {
    Ok(json_resp(StatusCode::OK, version_list(os)))
}

fn schema_image(_os: &Os, _req: &Req) -> R {
    Ok(json_resp(
        StatusCode::OK,
        json!({"name": "image", "properties": {"id": {"type": "string"}, "name": {"type": ["null", "string"]}, "status": {"type": "string"}}, "additionalProperties": {"type": "string"}, "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"}, {"rel": "describedby", "href": "{schema}"}]}),
    ))
}

fn schema_images(_os: &Os, _req: &Req) -> R {
    Ok(json_resp(
        StatusCode::OK,
        json!({"name": "images", "properties": {"images": {"type": "array", "items": {"name": "image"}}, "schema": {"type": "string"}, "first": {"type": "string"}, "next": {"type": "string"}}, "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"}, {"rel": "describedby", "href": "{schema}"}]}),
    ))
}

fn image_json(i: &Image) -> Value {
    let mut v = json!({
        "id": i.id,
        "name": i.name,
        "status": i.status,
        "visibility": i.visibility,
        "protected": i.protected,
        "os_hidden": i.os_hidden,
        "checksum": i.checksum,
        "os_hash_algo": i.os_hash_value.as_ref().map(|_| "sha512"),
        "os_hash_value": i.os_hash_value,
        "owner": i.owner,
        "size": i.size,
        "virtual_size": i.virtual_size,
        "min_ram": i.min_ram,
        "min_disk": i.min_disk,
        "disk_format": i.disk_format,
        "container_format": i.container_format,
        "created_at": iso(i.created_ms),
        "updated_at": iso(i.updated_ms),
        "tags": i.tags,
        "self": format!("/v2/images/{}", i.id),
        "file": format!("/v2/images/{}/file", i.id),
        "schema": "/v2/schemas/image",
    });
    for (k, p) in &i.properties {
        v[k] = p.clone();
    }
    v
}

fn visible(i: &Image, c: &Caller) -> bool {
    c.is_admin()
        || i.visibility == "public"
        || i.visibility == "community"
        || i.owner == c.project()
}

fn handle(os: &Os, req: &Req, f: fn(&Os, &Req, &mut State, &Caller) -> R) -> R {
    let mut st = os.st.lock();
    let c = os.caller(&st, req)?;
    os.tick(&mut st);
    f(os, req, &mut st, &c)
}

fn images_list(os: &Os, req: &Req) -> R {
    handle(os, req, images_list_)
}
fn image_get(os: &Os, req: &Req) -> R {
    handle(os, req, image_get_)
}
fn image_create(os: &Os, req: &Req) -> R {
    handle(os, req, image_create_)
}
fn image_patch(os: &Os, req: &Req) -> R {
    handle(os, req, image_patch_)
}
fn image_delete(os: &Os, req: &Req) -> R {
    handle(os, req, image_delete_)
}

/// Glance's filter values: `x` or `in:a,b,c` (values may be quoted).
fn matches_in(filter: Option<&str>, value: &str) -> bool {
    match filter {
        None => true,
        Some(f) => match f.strip_prefix("in:") {
            Some(list) => list.split(',').any(|x| x.trim().trim_matches('"') == value),
            None => f == value,
        },
    }
}

fn images_list_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let limit = match req.q("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| gerr(req, 400, "limit param must be an integer"))?
            .min(1000),
        None => 25,
    };
    let visibility = req.q("visibility");
    let tags = req.q_all("tag");
    let mut items: Vec<&Image> = st
        .images
        .iter()
        .filter(|i| visible(i, c))
        .filter(|i| match visibility {
            None => i.visibility != "community" || i.owner == c.project(),
            Some("all") => true,
            Some(v) => i.visibility == v,
        })
        .filter(|i| matches_in(req.q("name"), &i.name))
        .filter(|i| matches_in(req.q("status"), &i.status))
        .filter(|i| matches_in(req.q("owner"), &i.owner))
        .filter(|i| matches_in(req.q("id"), &i.id))
        .filter(|i| matches_in(req.q("disk_format"), i.disk_format.as_deref().unwrap_or("")))
        .filter(|i| {
            matches_in(
                req.q("container_format"),
                i.container_format.as_deref().unwrap_or(""),
            )
        })
        .filter(|i| req.q("os_hidden").and_then(parse_bool).unwrap_or(false) == i.os_hidden)
        .filter(|i| tags.iter().all(|t| i.tags.iter().any(|x| x == t)))
        .collect();
    // `sort=name:asc,status` or `sort_key`/`sort_dir`.
    let mut keys: Vec<(String, bool)> = Vec::new();
    if let Some(s) = req.q("sort") {
        for part in s.split(',') {
            let (k, d) = part.split_once(':').unwrap_or((part, "desc"));
            keys.push((k.trim().to_string(), d.trim() != "asc"));
        }
    } else {
        let ks = req.q_all("sort_key");
        let ds = req.q_all("sort_dir");
        for (n, k) in ks.iter().enumerate() {
            keys.push((k.to_string(), ds.get(n).copied().unwrap_or("desc") != "asc"));
        }
    }
    if keys.is_empty() {
        keys.push(("created_at".into(), true));
    }
    for (k, _) in &keys {
        if ![
            "name",
            "status",
            "container_format",
            "disk_format",
            "size",
            "id",
            "created_at",
            "updated_at",
            "visibility",
            "owner",
            "min_ram",
            "min_disk",
        ]
        .contains(&k.as_str())
        {
            return Err(gerr(
                req,
                400,
                &format!(
                    "Invalid sort key: {k}. It should be one of the following: name, status, container_format, disk_format, size, id, created_at, updated_at."
                ),
            ));
        }
    }
    items.sort_by(|a, b| {
        for (k, desc) in &keys {
            let o = match k.as_str() {
                "name" => a.name.cmp(&b.name),
                "status" => a.status.cmp(&b.status),
                "size" => a.size.cmp(&b.size),
                "updated_at" => a.updated_ms.cmp(&b.updated_ms),
                "id" => a.id.cmp(&b.id),
                "owner" => a.owner.cmp(&b.owner),
                _ => a.created_ms.cmp(&b.created_ms),
            };
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        b.id.cmp(&a.id)
    });
    let page = crate::core::page(
        items,
        |i: &&Image| i.id.clone(),
        req.q("marker"),
        Some(limit),
        crate::core::Direction::Forward,
    )
    .map_err(|e| {
        gerr(
            req,
            400,
            &format!("Invalid marker. Image {} could not be found.", e.0),
        )
    })?;
    let (items, full) = (page.items, page.full);
    let without_marker: Vec<(String, String)> = req
        .query
        .iter()
        .filter(|(k, _)| k != "marker")
        .cloned()
        .collect();
    let mut first = "/v2/images".to_string();
    if !without_marker.is_empty() {
        first = format!("{first}?{}", query_with(&without_marker, &[]));
    }
    let mut body = json!({
        "images": items.iter().map(|i| image_json(i)).collect::<Vec<_>>(),
        "first": first,
        "schema": "/v2/schemas/images",
    });
    if full && let Some(last) = items.last() {
        body["next"] = json!(format!(
            "/v2/images?{}",
            query_with(&without_marker, &[("marker", last.id.clone())])
        ));
    }
    Ok(json_resp(StatusCode::OK, body))
}

/// The image with this id if the caller may see it; Glance's 404 otherwise.
fn visible_image<'a>(
    req: &Req,
    st: &'a State,
    id: &str,
    c: &Caller,
) -> Result<&'a Image, Response> {
    st.images
        .get(id)
        .filter(|i| visible(i, c))
        .ok_or_else(|| gerr(req, 404, &format!("No image found with ID {id}")))
}

fn image_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = req.param("id");
    let i = visible_image(req, st, id, c)?;
    Ok(json_resp(StatusCode::OK, image_json(i)))
}

const CORE: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "min_ram",
    "min_disk",
    "disk_format",
    "container_format",
    "created_at",
    "updated_at",
    "tags",
    "self",
    "file",
    "schema",
    "locations",
    "direct_url",
];

fn image_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let b = req
        .json()
        .filter(Value::is_object)
        .ok_or_else(|| gerr(req, 400, "Malformed JSON in request body."))?;
    let id = match b.get("id").and_then(Value::as_str) {
        Some(i) if is_uuid(i) => {
            if st.images.contains(i) {
                return Err(gerr(
                    req,
                    409,
                    &format!("Image with identifier {i} already exists!"),
                ));
            }
            i.to_string()
        }
        Some(i) => {
            return Err(gerr(
                req,
                400,
                &format!("Provided object does not match schema 'image': '{i}' is not a 'uuid'"),
            ));
        }
        None => os.uuid(),
    };
    for k in [
        "status",
        "size",
        "checksum",
        "created_at",
        "updated_at",
        "owner_id",
        "self",
        "file",
        "schema",
    ] {
        if b.get(k).is_some() {
            return Err(gerr(req, 403, &format!("Attribute '{k}' is read-only.")));
        }
    }
    let visibility = b
        .get("visibility")
        .and_then(Value::as_str)
        .unwrap_or("shared")
        .to_string();
    if !["public", "private", "shared", "community"].contains(&visibility.as_str()) {
        return Err(gerr(
            req,
            400,
            &format!("Invalid visibility value: {visibility}"),
        ));
    }
    let now = os.now_ms();
    let props: BTreeMap<String, Value> = b
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !CORE.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let img = Image {
        id,
        name: b
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        status: "queued".into(),
        visibility,
        owner: c.project().to_string(),
        size: None,
        virtual_size: None,
        disk_format: b
            .get("disk_format")
            .and_then(Value::as_str)
            .map(str::to_string),
        container_format: b
            .get("container_format")
            .and_then(Value::as_str)
            .map(str::to_string),
        min_ram: b.get("min_ram").and_then(as_int).unwrap_or(0),
        min_disk: b.get("min_disk").and_then(as_int).unwrap_or(0),
        checksum: None,
        os_hash_value: None,
        created_ms: now,
        updated_ms: now,
        tags: b
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        protected: b.get("protected").and_then(Value::as_bool).unwrap_or(false),
        os_hidden: b.get("os_hidden").and_then(Value::as_bool).unwrap_or(false),
        properties: props,
    };
    let v = image_json(&img);
    st.images.insert(img);
    let r = json_resp(StatusCode::CREATED, v.clone());
    Ok(with_header(
        r,
        "location",
        &format!(
            "{}/v2/images/{}",
            os.ctx.urls.image,
            v["id"].as_str().unwrap_or("")
        ),
    ))
}

fn image_patch_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = req.param("id").to_string();
    let ops = req
        .json()
        .and_then(|v| v.as_array().cloned())
        .ok_or_else(|| {
            gerr(
                req,
                400,
                "Request body must be a JSON array of operation objects.",
            )
        })?;
    let owner = visible_image(req, st, &id, c)?.owner.clone();
    if !c.is_admin() && owner != c.project() {
        return Err(gerr(
            req,
            403,
            "You are not permitted to modify this image.",
        ));
    }
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string();
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        let img = st
            .images
            .get_mut(&id)
            .ok_or_else(|| gerr(req, 404, &format!("No image found with ID {id}")))?;
        match (kind, path.as_str()) {
            ("add" | "replace", "name") => img.name = value.as_str().unwrap_or("").to_string(),
            ("add" | "replace", "visibility") => {
                img.visibility = value.as_str().unwrap_or("private").to_string()
            }
            ("add" | "replace", "protected") => img.protected = value.as_bool().unwrap_or(false),
            ("add" | "replace", "os_hidden") => img.os_hidden = value.as_bool().unwrap_or(false),
            ("add" | "replace", "min_ram") => img.min_ram = as_int(&value).unwrap_or(0),
            ("add" | "replace", "min_disk") => img.min_disk = as_int(&value).unwrap_or(0),
            ("add" | "replace", "tags") => {
                img.tags = value
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            }
            ("add" | "replace", p) if !CORE.contains(&p) => {
                img.properties.insert(p.to_string(), value);
            }
            ("remove", p) if !CORE.contains(&p) => {
                if img.properties.remove(p).is_none() {
                    return Err(gerr(req, 409, &format!("Property {p} does not exist.")));
                }
            }
            (_, p) => return Err(gerr(req, 403, &format!("Attribute '{p}' is read-only."))),
        }
        img.updated_ms = os.now_ms();
    }
    let img = st
        .images
        .get(&id)
        .ok_or_else(|| gerr(req, 404, &format!("No image found with ID {id}")))?;
    Ok(json_resp(StatusCode::OK, image_json(img)))
}

fn image_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = req.param("id");
    let img = visible_image(req, st, id, c)?;
    if !c.is_admin() && img.owner != c.project() {
        return Err(gerr(
            req,
            403,
            "You are not permitted to delete this image.",
        ));
    }
    if img.protected {
        return Err(gerr(
            req,
            403,
            &format!("Image {id} is protected and cannot be deleted."),
        ));
    }
    st.images.remove(id);
    Ok(empty(StatusCode::NO_CONTENT))
}

/// A server snapshot (Nova's createImage), active immediately.
pub(crate) fn snapshot(
    os: &Os,
    st: &mut State,
    server_idx: usize,
    name: &str,
    meta: BTreeMap<String, Value>,
) -> String {
    let s = st.servers[server_idx].clone();
    let base = st.images.get(&s.image_id).cloned();
    let id = os.uuid();
    let now = os.now_ms();
    let mut props = base
        .as_ref()
        .map(|b| b.properties.clone())
        .unwrap_or_default();
    props.insert("image_type".into(), json!("snapshot"));
    props.insert("instance_uuid".into(), json!(s.id));
    props.insert("base_image_ref".into(), json!(s.image_id));
    props.insert("owner_user_name".into(), json!(""));
    props.extend(meta);
    let size = s.flavor.disk.max(1) * 1024 * 1024 * 256;
    st.images.insert(Image {
        id: id.clone(),
        name: name.to_string(),
        status: "active".into(),
        visibility: "private".into(),
        owner: s.project_id.clone(),
        size: Some(size),
        virtual_size: Some(s.flavor.disk.max(1) * 1024 * 1024 * 1024),
        disk_format: Some("qcow2".into()),
        container_format: Some("bare".into()),
        min_ram: base.as_ref().map(|b| b.min_ram).unwrap_or(0),
        min_disk: s.flavor.disk,
        checksum: Some(id.replace('-', "")),
        os_hash_value: Some(format!(
            "{}{}{}{}",
            id.replace('-', ""),
            id.replace('-', ""),
            id.replace('-', ""),
            id.replace('-', "")
        )),
        created_ms: now,
        updated_ms: now,
        tags: vec![],
        protected: false,
        os_hidden: false,
        properties: props,
    });
    id
}
