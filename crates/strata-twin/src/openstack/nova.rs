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
    json_resp(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({name: {"code": status, "message": message}}),
    )
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

// ---------------------------------------------------------------------------------------
// Flavors

fn flavor_json(os: &Os, f: &Flavor, mv: u32, detail: bool) -> Value {
    let mut v = json!({"id": f.id, "name": f.name, "links": links(os, "flavors", &f.id)});
    if mv >= 55 {
        v["description"] = json!(f.description);
    }
    if !detail {
        return v;
    }
    v["ram"] = json!(f.ram);
    v["vcpus"] = json!(f.vcpus);
    v["disk"] = json!(f.disk);
    v["OS-FLV-EXT-DATA:ephemeral"] = json!(f.ephemeral);
    v["os-flavor-access:is_public"] = json!(f.is_public);
    v["swap"] = if f.swap == 0 && mv < 75 {
        json!("")
    } else {
        json!(f.swap)
    };
    if mv < 102 {
        v["OS-FLV-DISABLED:disabled"] = json!(f.disabled);
        v["rxtx_factor"] = json!(f.rxtx_factor);
    }
    if mv >= 61 {
        v["extra_specs"] = json!(f.extra_specs);
    }
    v
}

fn find_flavor<'a>(st: &'a State, id: &str) -> Result<&'a Flavor, Response> {
    st.flavors
        .iter()
        .find(|f| f.id == id)
        .ok_or_else(|| err(404, &format!("Flavor {id} could not be found.")))
}

fn flavor_visible(f: &Flavor, cx: &Cx, is_public: Option<bool>) -> bool {
    match is_public {
        Some(p) => {
            f.is_public == p
                && (p || cx.admin() || f.access.iter().any(|a| a == cx.caller.project()))
        }
        None => f.is_public || cx.admin() || f.access.iter().any(|a| a == cx.caller.project()),
    }
}

fn list_flavors(os: &Os, req: &Req, st: &State, cx: &Cx, detail: bool) -> R {
    let is_public = match req.q("is_public") {
        None => Some(true),
        Some(v) if v.eq_ignore_ascii_case("none") => None,
        Some(v) => {
            Some(parse_bool(v).ok_or_else(|| bad(&format!("Invalid is_public filter [{v}]")))?)
        }
    };
    let is_public = if is_public == Some(true) && !cx.admin() {
        None
    } else {
        is_public
    };
    let min_ram = match req.q("minRam") {
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| bad(&format!("Invalid minRam filter [{v}]")))?,
        ),
        None => None,
    };
    let min_disk = match req.q("minDisk") {
        Some(v) => Some(
            v.parse::<i64>()
                .map_err(|_| bad(&format!("Invalid minDisk filter [{v}]")))?,
        ),
        None => None,
    };
    let mut items: Vec<&Flavor> = st
        .flavors
        .iter()
        .filter(|f| flavor_visible(f, cx, is_public))
        .filter(|f| min_ram.is_none_or(|m| f.ram >= m) && min_disk.is_none_or(|m| f.disk >= m))
        .collect();
    let key = req.q("sort_key").unwrap_or("flavorid");
    let valid = [
        "created_at",
        "description",
        "disabled",
        "ephemeral_gb",
        "flavorid",
        "id",
        "is_public",
        "memory_mb",
        "name",
        "root_gb",
        "rxtx_factor",
        "swap",
        "updated_at",
        "vcpu_weight",
        "vcpus",
    ];
    if !valid.contains(&key) {
        return Err(bad(&format!(
            "Invalid input for query parameters sort_key. Value: {key}. '{key}' is not one of {valid:?}"
        )));
    }
    items.sort_by(|a, b| {
        let o = match key {
            "name" => a.name.cmp(&b.name),
            "memory_mb" => a.ram.cmp(&b.ram),
            "vcpus" => a.vcpus.cmp(&b.vcpus),
            "root_gb" => a.disk.cmp(&b.disk),
            "created_at" | "updated_at" => a.created_ms.cmp(&b.created_ms),
            _ => a.id.cmp(&b.id),
        };
        o.then_with(|| a.id.cmp(&b.id))
    });
    if req.q("sort_dir") == Some("desc") {
        items.reverse();
    }
    let path = if detail { "flavors/detail" } else { "flavors" };
    let (page, next) = paginate(
        os,
        req,
        items,
        |f| f.id.clone(),
        path,
        |m| bad(&format!("marker [{m}] not found")),
    )?;
    let mut body = json!({"flavors": page.iter().map(|f| flavor_json(os, f, cx.mv, detail)).collect::<Vec<_>>()});
    if let Some(n) = next {
        body["flavors_links"] = n;
    }
    Ok(json_resp(StatusCode::OK, body))
}

fn flavors_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_flavors(os, req, st, cx, false)
}

fn flavors_detail_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_flavors(os, req, st, cx, true)
}

fn flavor_get_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let f = find_flavor(st, req.param("id"))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"flavor": flavor_json(os, f, cx.mv, true)}),
    ))
}

fn int_field(body: &Value, field: &str, min: i64, default: Option<i64>) -> Result<i64, Response> {
    match body.get(field) {
        None | Some(Value::Null) => default
            .ok_or_else(|| invalid("flavor", body, &format!("'{field}' is a required property"))),
        Some(v) => {
            let n = as_int(v).ok_or_else(|| {
                invalid(field, v, &format!("{v} is not of type 'integer', 'string'"))
            })?;
            if n < min {
                return Err(invalid(
                    field,
                    v,
                    &format!("{n} is less than the minimum of {min}"),
                ));
            }
            if n > 2_147_483_647 {
                return Err(invalid(
                    field,
                    v,
                    &format!("{n} is greater than the maximum of 2147483647"),
                ));
            }
            Ok(n)
        }
    }
}

fn flavor_create_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-manage:create")?;
    let body = req
        .json()
        .ok_or_else(|| bad("The request body is not valid JSON."))?;
    let f = body
        .get("flavor")
        .filter(|f| f.is_object())
        .ok_or_else(|| invalid("request body", &body, "'flavor' is a required property"))?;
    let allowed = [
        "name",
        "id",
        "ram",
        "vcpus",
        "disk",
        "OS-FLV-EXT-DATA:ephemeral",
        "swap",
        "rxtx_factor",
        "os-flavor-access:is_public",
        "description",
    ];
    for k in f
        .as_object()
        .map(|m| m.keys().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !allowed.contains(&k.as_str())
            || (k == "description" && cx.mv < 55)
            || (k == "rxtx_factor" && cx.mv >= 102)
        {
            return Err(invalid(
                "flavor",
                f,
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
    }
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("flavor", f, "'name' is a required property"))?
        .to_string();
    if name.trim().is_empty() || name.len() > 255 || name.trim() != name {
        return Err(invalid("name", &json!(name), "is not a valid flavor name"));
    }
    let id = match f.get("id") {
        None | Some(Value::Null) => os.uuid(),
        Some(Value::String(s)) if s == "auto" => os.uuid(),
        Some(Value::String(s)) => {
            if s.is_empty()
                || s.len() > 255
                || s.chars()
                    .any(|c| !(c.is_ascii_alphanumeric() || "-_. ".contains(c)))
            {
                return Err(invalid("id", &json!(s), "is not a valid flavor id"));
            }
            s.clone()
        }
        Some(Value::Number(n)) => n.to_string(),
        Some(v) => {
            return Err(invalid(
                "id",
                v,
                "is not valid under any of the given schemas",
            ));
        }
    };
    let ram = int_field(f, "ram", 1, None)?;
    let vcpus = int_field(f, "vcpus", 1, None)?;
    let disk = int_field(f, "disk", 0, None)?;
    let ephemeral = int_field(f, "OS-FLV-EXT-DATA:ephemeral", 0, Some(0))?;
    let swap = int_field(f, "swap", 0, Some(0))?;
    let rxtx = match f.get("rxtx_factor") {
        None => 1.0,
        Some(v) => v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|x| *x > 0.0)
            .ok_or_else(|| invalid("rxtx_factor", v, "is not valid"))?,
    };
    let is_public = match f.get("os-flavor-access:is_public") {
        None => true,
        Some(v) => as_bool(v)
            .ok_or_else(|| invalid("os-flavor-access:is_public", v, "is not of type 'boolean'"))?,
    };
    let description = match f.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 65535 => Some(s.clone()),
        Some(v) => return Err(invalid("description", v, "is not valid")),
    };
    if st.flavors.iter().any(|x| x.name == name) {
        return Err(err(
            409,
            &format!("Flavor with name {name} already exists."),
        ));
    }
    if st.flavors.iter().any(|x| x.id == id) {
        return Err(err(409, &format!("Flavor with ID {id} already exists.")));
    }
    let flavor = Flavor {
        id,
        name,
        vcpus,
        ram,
        disk,
        ephemeral,
        swap,
        rxtx_factor: rxtx,
        is_public,
        disabled: false,
        description,
        extra_specs: BTreeMap::new(),
        created_ms: now_ms(),
        access: if is_public {
            vec![]
        } else {
            vec![cx.caller.project().to_string()]
        },
    };
    let v = flavor_json(os, &flavor, cx.mv, true);
    st.flavors.push(flavor);
    Ok(json_resp(StatusCode::OK, json!({"flavor": v})))
}

fn flavor_update_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-manage:update")?;
    let body = req.json().unwrap_or(Value::Null);
    let desc = body
        .pointer("/flavor/description")
        .ok_or_else(|| {
            invalid(
                "flavor",
                body.get("flavor").unwrap_or(&Value::Null),
                "'description' is a required property",
            )
        })?
        .clone();
    if body
        .get("flavor")
        .and_then(Value::as_object)
        .is_some_and(|m| m.len() > 1)
    {
        return Err(invalid(
            "flavor",
            &body["flavor"],
            "Additional properties are not allowed",
        ));
    }
    let id = req.param("id").to_string();
    find_flavor(st, &id)?;
    let f = st
        .flavors
        .iter_mut()
        .find(|f| f.id == id)
        .expect("flavor exists");
    f.description = desc.as_str().map(str::to_string);
    Ok(json_resp(
        StatusCode::OK,
        json!({"flavor": flavor_json(os, f, cx.mv, true)}),
    ))
}

fn flavor_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-manage:delete")?;
    let id = req.param("id");
    let idx = st
        .flavors
        .iter()
        .position(|f| f.id == id)
        .ok_or_else(|| err(404, &format!("Flavor {id} could not be found.")))?;
    st.flavors.remove(idx);
    Ok(empty(StatusCode::ACCEPTED))
}

fn flavor_access_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-access")?;
    let f = find_flavor(st, req.param("id"))?;
    if f.is_public {
        return Err(err(404, "Access list not available for public flavors."));
    }
    let list: Vec<Value> = f
        .access
        .iter()
        .map(|p| json!({"flavor_id": f.id, "tenant_id": p}))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"flavor_access": list})))
}

fn flavor_action_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-access:add_tenant_access")?;
    let body = req.json().unwrap_or(Value::Null);
    let id = req.param("id").to_string();
    find_flavor(st, &id)?;
    let f = st
        .flavors
        .iter_mut()
        .find(|f| f.id == id)
        .expect("flavor exists");
    if let Some(t) = body
        .pointer("/addTenantAccess/tenant")
        .and_then(Value::as_str)
    {
        if f.is_public {
            return Err(err(409, "Can not add access to a public flavor."));
        }
        if f.access.iter().any(|a| a == t) {
            return Err(err(
                409,
                &format!(
                    "Flavor access already exists for flavor {id} and project {t} combination."
                ),
            ));
        }
        f.access.push(t.to_string());
    } else if let Some(t) = body
        .pointer("/removeTenantAccess/tenant")
        .and_then(Value::as_str)
    {
        let before = f.access.len();
        f.access.retain(|a| a != t);
        if before == f.access.len() {
            return Err(err(
                404,
                &format!("Flavor access not found for {id} / {t} combination."),
            ));
        }
    } else {
        return Err(bad("There is no such action"));
    }
    let list: Vec<Value> = f
        .access
        .iter()
        .map(|p| json!({"flavor_id": f.id, "tenant_id": p}))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"flavor_access": list})))
}

/// Check an extra spec the way Nova validates the namespaces it knows (2.86+).
fn check_spec(key: &str, value: &str, mv: u32) -> Result<(), Response> {
    if key.is_empty() || key.len() > 255 || value.len() > 255 {
        return Err(bad(
            "Invalid input for field/attribute extra_specs. Value: too long",
        ));
    }
    if key
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || "-_:. ".contains(c)))
    {
        return Err(bad(&format!(
            "Invalid input for field/attribute extra_specs. Value: {key}. Does not match any of the regexes"
        )));
    }
    if key == "pci_passthrough:alias" && mv >= 86 {
        parse_alias_spec(value)
            .map_err(|e| bad(&format!("Validation failed; {e} for extra spec '{key}'.")))?;
    }
    Ok(())
}

/// `gpu-h100:1,other:2` → [(name, count)].
pub(crate) fn parse_alias_spec(v: &str) -> Result<Vec<(String, i64)>, String> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, count) = part.split_once(':').unwrap_or((part, "1"));
        let n: i64 = count
            .trim()
            .parse()
            .map_err(|_| format!("'{v}' is not a valid PCI alias request"))?;
        if name.is_empty() || n < 1 {
            return Err(format!("'{v}' is not a valid PCI alias request"));
        }
        out.push((name.trim().to_string(), n));
    }
    if out.is_empty() {
        return Err(format!("'{v}' is not a valid PCI alias request"));
    }
    Ok(out)
}

fn spec_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
        _ => None,
    }
}

fn specs_list_(_os: &Os, req: &Req, st: &mut State, _cx: &Cx) -> R {
    let f = find_flavor(st, req.param("id"))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"extra_specs": f.extra_specs}),
    ))
}

fn specs_create_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-extra-specs:create")?;
    let body = req.json().unwrap_or(Value::Null);
    let specs = body
        .get("extra_specs")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid(
                "request body",
                &body,
                "'extra_specs' is a required property",
            )
        })?
        .clone();
    let id = req.param("id").to_string();
    find_flavor(st, &id)?;
    let mut parsed = BTreeMap::new();
    for (k, v) in &specs {
        let v = spec_value(v).ok_or_else(|| {
            invalid(
                "extra_specs",
                &body["extra_specs"],
                "values must be strings",
            )
        })?;
        check_spec(k, &v, cx.mv)?;
        parsed.insert(k.clone(), v);
    }
    let f = st
        .flavors
        .iter_mut()
        .find(|f| f.id == id)
        .expect("flavor exists");
    f.extra_specs.extend(parsed.clone());
    Ok(json_resp(StatusCode::OK, json!({"extra_specs": parsed})))
}

fn spec_get_(_os: &Os, req: &Req, st: &mut State, _cx: &Cx) -> R {
    let id = req.param("id");
    let key = req.param("key");
    let f = find_flavor(st, id)?;
    let v = f.extra_specs.get(key).ok_or_else(|| {
        err(
            404,
            &format!("Flavor {id} has no extra specs with key {key}."),
        )
    })?;
    Ok(json_resp(StatusCode::OK, json!({key: v})))
}

fn spec_put_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-extra-specs:update")?;
    let body = req.json().unwrap_or(Value::Null);
    let id = req.param("id").to_string();
    let key = req.param("key").to_string();
    find_flavor(st, &id)?;
    let m = body
        .as_object()
        .ok_or_else(|| bad("Malformed request body"))?;
    if m.len() != 1 {
        return Err(bad("Request body contains too many items"));
    }
    let (k, v) = m.iter().next().expect("one item");
    if k != &key {
        return Err(bad("Request body and URI mismatch"));
    }
    let v = spec_value(v).ok_or_else(|| invalid("extra_specs", &body, "values must be strings"))?;
    check_spec(&key, &v, cx.mv)?;
    let f = st
        .flavors
        .iter_mut()
        .find(|f| f.id == id)
        .expect("flavor exists");
    f.extra_specs.insert(key.clone(), v.clone());
    Ok(json_resp(StatusCode::OK, json!({key: v})))
}

fn spec_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-flavor-extra-specs:delete")?;
    let id = req.param("id").to_string();
    let key = req.param("key");
    find_flavor(st, &id)?;
    let f = st
        .flavors
        .iter_mut()
        .find(|f| f.id == id)
        .expect("flavor exists");
    if f.extra_specs.remove(key).is_none() {
        return Err(err(
            404,
            &format!("Flavor {id} has no extra specs with key {key}."),
        ));
    }
    Ok(empty(StatusCode::OK))
}

// ---------------------------------------------------------------------------------------
// Key pairs

fn fingerprint(key: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key.as_bytes());
    d[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn keypair_json(k: &Keypair, mv: u32, full: bool) -> Value {
    let mut v = json!({"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint});
    if mv >= 2 {
        v["type"] = json!(k.kind);
    }
    if full {
        v["user_id"] = json!(k.user_id);
        v["created_at"] = json!(iso_plain_us(k.created_ms));
        v["deleted"] = json!(false);
        v["deleted_at"] = Value::Null;
        v["updated_at"] = Value::Null;
        v["id"] = json!(k.id);
    }
    v
}

fn keypair_user(req: &Req, cx: &Cx) -> Result<String, Response> {
    match req.q("user_id") {
        Some(u) if cx.mv >= 10 => {
            if u != cx.caller.user_id {
                cx.require_admin("os_compute_api:os-keypairs:index")?;
            }
            Ok(u.to_string())
        }
        _ => Ok(cx.caller.user_id.clone()),
    }
}

fn keypairs_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let user = keypair_user(req, cx)?;
    let mut items: Vec<&Keypair> = st.keypairs.iter().filter(|k| k.user_id == user).collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    let (page, next) = if cx.mv >= 35 {
        paginate(
            os,
            req,
            items,
            |k| k.name.clone(),
            "os-keypairs",
            |m| bad(&format!("Marker {m} could not be found.")),
        )?
    } else {
        (items, None)
    };
    let mut body = json!({"keypairs": page.iter().map(|k| json!({"keypair": keypair_json(k, cx.mv, false)})).collect::<Vec<_>>()});
    if let Some(n) = next {
        body["keypairs_links"] = n;
    }
    Ok(json_resp(StatusCode::OK, body))
}

fn keypair_create_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let k = body
        .get("keypair")
        .filter(|k| k.is_object())
        .ok_or_else(|| invalid("request body", &body, "'keypair' is a required property"))?;
    let name = k
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("keypair", k, "'name' is a required property"))?
        .to_string();
    if name.is_empty() || name.len() > 255 || name.trim() != name {
        return Err(bad(
            "Keypair data is invalid: Keypair name contains unsafe characters",
        ));
    }
    let kind = match k.get("type").and_then(Value::as_str) {
        Some(t) if cx.mv >= 2 => {
            if t != "ssh" && t != "x509" {
                return Err(invalid("type", &json!(t), "is not one of ['ssh', 'x509']"));
            }
            t.to_string()
        }
        _ => "ssh".to_string(),
    };
    let user = match k.get("user_id").and_then(Value::as_str) {
        Some(u) if cx.mv >= 10 => {
            if u != cx.caller.user_id {
                cx.require_admin("os_compute_api:os-keypairs:create")?;
            }
            u.to_string()
        }
        _ => cx.caller.user_id.clone(),
    };
    if st
        .keypairs
        .iter()
        .any(|x| x.user_id == user && x.name == name)
    {
        return Err(err(409, &format!("Key pair '{name}' already exists.")));
    }
    let used = st.keypairs.iter().filter(|x| x.user_id == user).count() as i64;
    let limit = quota_limits(st, cx.caller.project())
        .get("key_pairs")
        .copied()
        .unwrap_or(100);
    if limit >= 0 && used + 1 > limit {
        return Err(err(403, "Quota exceeded, too many key pairs."));
    }
    let mut private = None;
    let public_key = match k.get("public_key").and_then(Value::as_str) {
        Some(p) => {
            if p.split_whitespace().count() < 2 && kind == "ssh" {
                return Err(bad(
                    "Keypair data is invalid: failed to generate fingerprint",
                ));
            }
            p.to_string()
        }
        None if cx.mv >= 92 => {
            return Err(invalid("keypair", k, "'public_key' is a required property"));
        }
        None => {
            let seed = format!("{:016x}{:016x}", os.random_u64(), os.random_u64());
            use base64::Engine;
            let blob = base64::engine::general_purpose::STANDARD
                .encode(format!("ssh-ed25519-twin-{seed}"));
            private = Some(format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(format!("twin-private-{seed}"))
            ));
            format!("ssh-ed25519 {blob} Generated-by-Nova")
        }
    };
    let kp = Keypair {
        id: st.next_keypair,
        name,
        user_id: user.clone(),
        fingerprint: fingerprint(&public_key),
        public_key,
        kind,
        created_ms: now_ms(),
    };
    st.next_keypair += 1;
    let mut v = keypair_json(&kp, cx.mv, false);
    v["user_id"] = json!(user);
    if let Some(p) = private {
        v["private_key"] = json!(p);
    }
    st.keypairs.push(kp);
    let status = if cx.mv >= 2 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_resp(status, json!({"keypair": v})))
}

fn keypair_get_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let user = keypair_user(req, cx)?;
    let name = req.param("name");
    let k = st
        .keypairs
        .iter()
        .find(|k| k.user_id == user && k.name == name)
        .ok_or_else(|| err(404, &format!("Keypair {name} not found for user {user}")))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"keypair": keypair_json(k, cx.mv, true)}),
    ))
}

fn keypair_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let user = keypair_user(req, cx)?;
    let name = req.param("name");
    let idx = st
        .keypairs
        .iter()
        .position(|k| k.user_id == user && k.name == name)
        .ok_or_else(|| err(404, &format!("Keypair {name} not found for user {user}")))?;
    st.keypairs.remove(idx);
    Ok(empty(if cx.mv >= 2 {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    }))
}

// ---------------------------------------------------------------------------------------
// Servers: views

pub(crate) fn status_of(s: &Server) -> &'static str {
    let task = s.task_state.as_deref().unwrap_or("");
    match s.vm_state.as_str() {
        "building" => "BUILD",
        "active" => match task {
            "rebooting" | "reboot_pending" | "reboot_started" => "REBOOT",
            "rebooting_hard" | "reboot_pending_hard" | "reboot_started_hard" => "HARD_REBOOT",
            "rebuilding" | "rebuild_block_device_mapping" | "rebuild_spawning" => "REBUILD",
            "resize_prep" | "resize_migrating" | "resize_migrated" | "resize_finish" => "RESIZE",
            "resize_reverting" => "REVERT_RESIZE",
            "migrating" => "MIGRATING",
            "updating_password" => "PASSWORD",
            _ => "ACTIVE",
        },
        "stopped" => match task {
            "rebooting_hard" => "HARD_REBOOT",
            "rebuilding" => "REBUILD",
            "resize_prep" | "resize_migrating" | "resize_migrated" | "resize_finish" => "RESIZE",
            _ => "SHUTOFF",
        },
        "paused" => "PAUSED",
        "suspended" => "SUSPENDED",
        "resized" => match task {
            "resize_reverting" => "REVERT_RESIZE",
            _ => "VERIFY_RESIZE",
        },
        "rescued" => "RESCUE",
        "error" => match task {
            "rebuilding" => "REBUILD",
            _ => "ERROR",
        },
        "deleted" => "DELETED",
        "soft-delete" => "SOFT_DELETED",
        "shelved" => "SHELVED",
        "shelved_offloaded" => "SHELVED_OFFLOADED",
        _ => "UNKNOWN",
    }
}

fn host_id(project: &str, host: Option<&str>) -> String {
    use sha2::Digest;
    match host {
        Some(h) => {
            let d = sha2::Sha224::digest(format!("{project}{h}").as_bytes());
            d.iter().map(|b| format!("{b:02x}")).collect()
        }
        None => String::new(),
    }
}

fn addresses(st: &State, s: &Server, full: bool) -> Value {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for pid in &s.ports {
        let Some(p) = st.ports.iter().find(|p| &p.id == pid) else {
            continue;
        };
        let net = st
            .networks
            .iter()
            .find(|n| n.id == p.network_id)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let entry = out.entry(net).or_default();
        for (_, ip) in &p.fixed_ips {
            let version = if ip.contains(':') { 6 } else { 4 };
            let mut a = json!({"addr": ip, "version": version});
            if full {
                a["OS-EXT-IPS:type"] = json!("fixed");
                a["OS-EXT-IPS-MAC:mac_addr"] = json!(p.mac_address);
            }
            entry.push(a);
        }
    }
    json!(out)
}

fn flavor_view(os: &Os, s: &Server, mv: u32, admin: bool) -> Value {
    if mv >= 47 {
        let mut v = json!({
            "vcpus": s.flavor.vcpus,
            "ram": s.flavor.ram,
            "disk": s.flavor.disk,
            "ephemeral": s.flavor.ephemeral,
            "swap": s.flavor.swap,
            "original_name": s.flavor.name,
        });
        if admin {
            v["extra_specs"] = json!(s.flavor.extra_specs);
        }
        v
    } else {
        json!({"id": s.flavor.id, "links": bookmark(os, "flavors", &s.flavor.id)})
    }
}

fn image_view(os: &Os, st: &State, s: &Server, mv: u32) -> Value {
    if s.image_id.is_empty() {
        return json!("");
    }
    let mut v = json!({"id": s.image_id, "links": bookmark(os, "images", &s.image_id)});
    if mv >= 98 {
        let props: BTreeMap<String, Value> = st
            .images
            .iter()
            .find(|i| i.id == s.image_id)
            .map(|i| {
                i.properties
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            json!(
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string())
                            ),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v["properties"] = json!(props);
    }
    v
}

fn host_status(st: &State, s: &Server) -> &'static str {
    match s
        .host
        .as_deref()
        .and_then(|h| st.hosts.iter().find(|x| x.host == h))
    {
        None => "",
        Some(h) if h.state != "up" => "DOWN",
        Some(h) if h.status != "enabled" => "MAINTENANCE",
        Some(_) => "UP",
    }
}

fn fault_json(s: &Server, admin: bool) -> Option<Value> {
    let f = s.fault.as_ref()?;
    let mut v = json!({"code": f.code, "created": iso(f.created_ms), "message": f.message});
    if admin || f.code != 500 {
        v["details"] = json!(f.details);
    }
    Some(v)
}

/// Which fields a view carries.
#[derive(Clone, Copy, PartialEq)]
enum View {
    /// `GET /servers/{id}` and `/servers/detail` (`show` adds server_groups from 2.71).
    Detail { show: bool },
    /// The reduced document of PUT and rebuild before 2.75.
    Reduced,
}

fn server_view(os: &Os, st: &State, s: &Server, mv: u32, admin: bool, view: View) -> Value {
    let status = status_of(s);
    let full = matches!(view, View::Detail { .. });
    let mut v = json!({
        "id": s.id,
        "name": s.name,
        "status": status,
        "tenant_id": s.project_id,
        "user_id": s.user_id,
        "metadata": s.metadata,
        "hostId": host_id(&s.project_id, s.host.as_deref()),
        "image": image_view(os, st, s, mv),
        "flavor": flavor_view(os, s, mv, admin),
        "created": iso(s.created_ms),
        "updated": iso(s.updated_ms),
        "addresses": addresses(st, s, full || mv >= 75),
        "accessIPv4": s.access_ipv4,
        "accessIPv6": s.access_ipv6,
        "links": links(os, "servers", &s.id),
        "OS-DCF:diskConfig": s.disk_config,
    });
    if [
        "ACTIVE",
        "BUILD",
        "REBUILD",
        "RESIZE",
        "VERIFY_RESIZE",
        "MIGRATING",
    ]
    .contains(&status)
    {
        let progress = if status == "BUILD" { 0 } else { 100 };
        v["progress"] = json!(if status == "ACTIVE" { 0 } else { progress });
    }
    if let Some(f) = fault_json(s, admin)
        && (status == "ERROR" || status == "DELETED")
    {
        v["fault"] = f;
    }
    if full || mv >= 75 {
        v["OS-EXT-AZ:availability_zone"] = json!(if s.host.is_some() {
            s.az.clone()
        } else {
            String::new()
        });
        v["config_drive"] = json!(s.config_drive);
        v["key_name"] = json!(s.key_name);
        v["OS-SRV-USG:launched_at"] = json!(s.launched_ms.map(iso_plain_us));
        v["OS-SRV-USG:terminated_at"] = json!(s.terminated_ms.map(iso_plain_us));
        v["security_groups"] = json!(
            s.security_groups
                .iter()
                .map(|n| json!({"name": n}))
                .collect::<Vec<_>>()
        );
        v["OS-EXT-STS:task_state"] = json!(s.task_state);
        v["OS-EXT-STS:vm_state"] = json!(s.vm_state);
        v["OS-EXT-STS:power_state"] = json!(s.power_state);
        v["os-extended-volumes:volumes_attached"] = json!(
            s.volumes
                .iter()
                .map(|id| if mv >= 3 {
                    json!({"id": id, "delete_on_termination": false})
                } else {
                    json!({"id": id})
                })
                .collect::<Vec<_>>()
        );
        if admin {
            v["OS-EXT-SRV-ATTR:host"] = json!(s.host);
            v["OS-EXT-SRV-ATTR:instance_name"] = json!(format!("instance-{:08x}", s.seq));
            let hh = s
                .host
                .as_deref()
                .and_then(|h| st.hosts.iter().find(|x| x.host == h))
                .map(|h| h.hypervisor_hostname.clone());
            v["OS-EXT-SRV-ATTR:hypervisor_hostname"] = json!(hh);
            if mv >= 3 {
                v["OS-EXT-SRV-ATTR:reservation_id"] = json!(s.reservation_id);
                v["OS-EXT-SRV-ATTR:launch_index"] = json!(s.launch_index);
                v["OS-EXT-SRV-ATTR:kernel_id"] = json!("");
                v["OS-EXT-SRV-ATTR:ramdisk_id"] = json!("");
                v["OS-EXT-SRV-ATTR:root_device_name"] = json!("/dev/vda");
                v["OS-EXT-SRV-ATTR:user_data"] = json!(s.user_data);
            }
        }
        if (admin && mv >= 3) || mv >= 90 {
            v["OS-EXT-SRV-ATTR:hostname"] = json!(s.hostname);
        }
        if mv >= 16 && admin {
            v["host_status"] = json!(host_status(st, s));
        }
        if mv >= 96 {
            v["pinned_availability_zone"] = json!(s.pinned_az);
        }
        if mv >= 100 {
            v["scheduler_hints"] = json!(s.scheduler_hints);
        }
    }
    if mv >= 9 {
        v["locked"] = json!(s.locked);
    }
    if mv >= 19 {
        v["description"] = json!(s.description);
    }
    if mv >= 26 {
        v["tags"] = json!(s.tags);
    }
    if mv >= 63 {
        v["trusted_image_certificates"] = json!(s.trusted_image_certificates);
    }
    let with_groups = match view {
        View::Detail { show } => show,
        View::Reduced => true,
    };
    if mv >= 71 && with_groups {
        v["server_groups"] = json!([]);
    }
    if mv >= 73 {
        v["locked_reason"] = json!(s.locked_reason);
    }
    v
}

fn find_server_idx(st: &State, id: &str, cx: &Cx) -> Result<usize, Response> {
    st.servers
        .iter()
        .position(|s| {
            s.id == id && !s.deleted && (cx.admin() || s.project_id == cx.caller.project())
        })
        .ok_or_else(|| err(404, &format!("Instance {id} could not be found.")))
}

// ---------------------------------------------------------------------------------------
// Servers: listing

const LIST_PARAMS: &[&str] = &[
    "user_id",
    "project_id",
    "tenant_id",
    "launch_index",
    "image_ref",
    "image",
    "kernel_id",
    "ramdisk_id",
    "hostname",
    "key_name",
    "power_state",
    "vm_state",
    "task_state",
    "host",
    "node",
    "flavor",
    "reservation_id",
    "launched_at",
    "terminated_at",
    "availability_zone",
    "name",
    "display_name",
    "description",
    "display_description",
    "locked_by",
    "uuid",
    "root_device_name",
    "config_drive",
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "progress",
    "sort_key",
    "sort_dir",
    "all_tenants",
    "soft_deleted",
    "deleted",
    "status",
    "changes-since",
    "changes-before",
    "ip",
    "ip6",
    "created_at",
    "block_device_mapping",
    "services",
    "metadata",
    "system_metadata",
    "info_cache",
    "security_groups",
    "pci_devices",
    "limit",
    "marker",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
    "locked",
    "pinned_availability_zone",
];

fn list_servers(os: &Os, req: &Req, st: &State, cx: &Cx, detail: bool) -> R {
    if cx.mv >= 75 {
        for (k, _) in &req.query {
            if !LIST_PARAMS.contains(&k.as_str()) {
                return Err(bad(&format!(
                    "Invalid input for query parameters {k}. Value: {}. Additional properties are not allowed ('{k}' was unexpected)",
                    req.q(k).unwrap_or("")
                )));
            }
        }
    }
    let all_tenants = req
        .q("all_tenants")
        .is_some_and(|v| v.is_empty() || parse_bool(v) != Some(false));
    if all_tenants {
        cx.require_admin("os_compute_api:servers:index:get_all_tenants")?;
    }
    let project = req.q("project_id").or(req.q("tenant_id"));
    let changes_since = match req.q("changes-since") {
        Some(v) => Some(parse_iso(v).ok_or_else(|| bad(&format!("Invalid input for query parameters changes-since. Value: {v}. '{v}' is not a 'date-time'")))?),
        None => None,
    };
    let changes_before = match req.q("changes-before") {
        Some(v) if cx.mv >= 66 => Some(parse_iso(v).ok_or_else(|| bad(&format!("Invalid input for query parameters changes-before. Value: {v}. '{v}' is not a 'date-time'")))?),
        _ => None,
    };
    if let (Some(a), Some(b)) = (changes_since, changes_before)
        && a > b
    {
        return Err(bad(
            "The value of changes-since must be less than or equal to changes-before.",
        ));
    }
    let include_deleted = changes_since.is_some()
        || changes_before.is_some()
        || req.q("deleted").and_then(parse_bool) == Some(true);
    let name_re = match req.q("name").or(req.q("display_name")) {
        Some(n) => Some(
            super::regex::Regex::new(n)
                .map_err(|e| bad(&format!("Invalid regular expression for name: {e}")))?,
        ),
        None => None,
    };
    let ip_re = match req.q("ip") {
        Some(n) => Some(
            super::regex::Regex::new(n)
                .map_err(|e| bad(&format!("Invalid regular expression for ip: {e}")))?,
        ),
        None => None,
    };
    let statuses: Vec<String> = req
        .q_all("status")
        .iter()
        .map(|s| s.to_ascii_uppercase())
        .collect();
    let valid_status = [
        "ACTIVE",
        "BUILD",
        "DELETED",
        "ERROR",
        "HARD_REBOOT",
        "MIGRATING",
        "PASSWORD",
        "PAUSED",
        "REBOOT",
        "REBUILD",
        "RESCUE",
        "RESIZE",
        "REVERT_RESIZE",
        "SHELVED",
        "SHELVED_OFFLOADED",
        "SHUTOFF",
        "SOFT_DELETED",
        "SUSPENDED",
        "UNKNOWN",
        "VERIFY_RESIZE",
    ];
    for s in &statuses {
        if !valid_status.contains(&s.as_str()) {
            if cx.admin() {
                return Ok(json_resp(StatusCode::OK, json!({"servers": []})));
            }
            return Err(bad("Invalid status value"));
        }
    }
    let split = |k: &str| -> Vec<String> {
        req.q(k)
            .map(|t| t.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (tags, tags_any, not_tags, not_tags_any) = (
        split("tags"),
        split("tags-any"),
        split("not-tags"),
        split("not-tags-any"),
    );
    let ips = |s: &Server| -> Vec<String> {
        s.ports
            .iter()
            .filter_map(|p| st.ports.iter().find(|x| &x.id == p))
            .flat_map(|p| p.fixed_ips.iter().map(|(_, ip)| ip.clone()))
            .collect()
    };
    let mut items: Vec<&Server> = st
        .servers
        .iter()
        .filter(|s| include_deleted || !s.deleted)
        .filter(|s| {
            if let Some(p) = project {
                if !cx.admin() && p != cx.caller.project() {
                    return s.project_id == cx.caller.project();
                }
                return s.project_id == p;
            }
            all_tenants || s.project_id == cx.caller.project()
        })
        .filter(|s| name_re.as_ref().is_none_or(|r| r.is_match(&s.name)))
        .filter(|s| {
            ip_re
                .as_ref()
                .is_none_or(|r| ips(s).iter().any(|ip| r.is_match(ip)))
        })
        .filter(|s| statuses.is_empty() || statuses.iter().any(|x| x == status_of(s)))
        .filter(|s| req.q("flavor").is_none_or(|f| f == s.flavor.id))
        .filter(|s| {
            req.q("image")
                .or(req.q("image_ref"))
                .is_none_or(|i| i == s.image_id)
        })
        .filter(|s| req.q("host").is_none_or(|h| Some(h) == s.host.as_deref()))
        .filter(|s| req.q("availability_zone").is_none_or(|a| a == s.az))
        .filter(|s| {
            req.q("key_name")
                .is_none_or(|k| Some(k) == s.key_name.as_deref())
        })
        .filter(|s| req.q("user_id").is_none_or(|u| u == s.user_id))
        .filter(|s| {
            req.q("reservation_id")
                .is_none_or(|r| r == s.reservation_id)
        })
        .filter(|s| req.q("vm_state").is_none_or(|v| v == s.vm_state))
        .filter(|s| req.q("uuid").is_none_or(|v| v == s.id))
        .filter(|s| {
            req.q("locked")
                .and_then(parse_bool)
                .is_none_or(|l| l == s.locked)
        })
        .filter(|s| changes_since.is_none_or(|t| s.updated_ms >= t))
        .filter(|s| changes_before.is_none_or(|t| s.updated_ms <= t))
        .filter(|s| tags.iter().all(|t| s.tags.contains(t)))
        .filter(|s| tags_any.is_empty() || tags_any.iter().any(|t| s.tags.contains(t)))
        .filter(|s| not_tags.is_empty() || !not_tags.iter().all(|t| s.tags.contains(t)))
        .filter(|s| not_tags_any.iter().all(|t| !s.tags.contains(t)))
        .collect();
    let key = req.q("sort_key").unwrap_or("created_at");
    let desc = req.q("sort_dir").unwrap_or("desc") != "asc";
    items.sort_by(|a, b| {
        let o = match key {
            "display_name" | "name" => a.name.cmp(&b.name),
            "updated_at" => a.updated_ms.cmp(&b.updated_ms),
            "uuid" => a.id.cmp(&b.id),
            "vm_state" => a.vm_state.cmp(&b.vm_state),
            "hostname" => a.hostname.cmp(&b.hostname),
            "launched_at" => a.launched_ms.cmp(&b.launched_ms),
            "host" => a.host.cmp(&b.host),
            _ => a.created_ms.cmp(&b.created_ms).then(a.seq.cmp(&b.seq)),
        };
        let o = o.then_with(|| a.id.cmp(&b.id));
        if desc { o.reverse() } else { o }
    });
    let path = if detail { "servers/detail" } else { "servers" };
    let (page, next) = paginate(
        os,
        req,
        items,
        |s| s.id.clone(),
        path,
        |m| bad(&format!("marker [{m}] not found")),
    )?;
    let servers: Vec<Value> = page
        .iter()
        .map(|s| {
            if detail {
                server_view(os, st, s, cx.mv, cx.admin(), View::Detail { show: false })
            } else {
                json!({"id": s.id, "name": s.name, "links": links(os, "servers", &s.id)})
            }
        })
        .collect();
    let mut body = json!({"servers": servers});
    if let Some(n) = next {
        body["servers_links"] = n;
    }
    Ok(json_resp(StatusCode::OK, body))
}

fn servers_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_servers(os, req, st, cx, false)
}

fn servers_detail_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_servers(os, req, st, cx, true)
}

fn server_get_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let v = server_view(
        os,
        st,
        &st.servers[idx],
        cx.mv,
        cx.admin(),
        View::Detail { show: true },
    );
    Ok(json_resp(StatusCode::OK, json!({"server": v})))
}

// ---------------------------------------------------------------------------------------
// Servers: create

const CREATE_FIELDS: &[&str] = &[
    "name",
    "imageRef",
    "flavorRef",
    "networks",
    "availability_zone",
    "metadata",
    "key_name",
    "security_groups",
    "user_data",
    "config_drive",
    "accessIPv4",
    "accessIPv6",
    "OS-DCF:diskConfig",
    "adminPass",
    "description",
    "tags",
    "trusted_image_certificates",
    "host",
    "hypervisor_hostname",
    "hostname",
    "block_device_mapping_v2",
    "block_device_mapping",
    "min_count",
    "max_count",
    "return_reservation_id",
    "personality",
];

/// The resources a flavor asks of Placement, with its PCI aliases mapped to their classes.
fn flavor_resources(st: &State, f: &FlavorSnap) -> Result<BTreeMap<String, i64>, String> {
    let mut want = BTreeMap::from([
        ("VCPU".to_string(), f.vcpus),
        ("MEMORY_MB".to_string(), f.ram),
    ]);
    if f.disk + f.ephemeral + f.swap / 1024 > 0 {
        want.insert("DISK_GB".into(), f.disk + f.ephemeral + f.swap / 1024);
    }
    for (k, v) in &f.extra_specs {
        if k == "pci_passthrough:alias" {
            for (name, n) in parse_alias_spec(v)? {
                let alias = st
                    .pci_aliases
                    .iter()
                    .find(|a| a.name == name)
                    .ok_or_else(|| format!("PCI alias {name} is not defined"))?;
                *want.entry(alias.resource_class.clone()).or_insert(0) += n;
            }
        } else if let Some(rc) = k.strip_prefix("resources:")
            && let Ok(n) = v.parse::<i64>()
        {
            if n == 0 {
                want.remove(rc);
            } else {
                want.insert(rc.to_string(), n);
            }
        }
    }
    Ok(want)
}

/// Pick a compute host for these resources (filters, then weighers: PCI-less hosts for
/// PCI-less requests, then the most free RAM).
fn schedule(
    st: &State,
    want: &BTreeMap<String, i64>,
    az: Option<&str>,
    host: Option<&str>,
    exclude: Option<&str>,
) -> Option<usize> {
    let wants_pci = st
        .pci_aliases
        .iter()
        .any(|a| want.contains_key(&a.resource_class));
    let mut best: Option<(usize, (bool, i64))> = None;
    for (i, h) in st.hosts.iter().enumerate() {
        if h.status != "enabled" || h.state != "up" {
            continue;
        }
        if az.is_some_and(|a| a != h.az)
            || host.is_some_and(|x| x != h.host && x != h.hypervisor_hostname)
        {
            continue;
        }
        if exclude == Some(h.host.as_str()) {
            continue;
        }
        let Some(rp) = st.rps.iter().find(|r| r.uuid == h.uuid) else {
            continue;
        };
        if !placement::fits(st, rp, want) {
            continue;
        }
        let has_pci = !h.pci.is_empty();
        let free_ram = rp
            .inventories
            .get("MEMORY_MB")
            .map(placement::capacity)
            .unwrap_or(0)
            - placement::used(st, &rp.uuid)
                .get("MEMORY_MB")
                .copied()
                .unwrap_or(0);
        let score = (wants_pci == has_pci, free_ram);
        if best.as_ref().is_none_or(|(_, b)| score > *b) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

/// Claim resources on a host: Placement allocations and PCI devices.
fn claim(
    st: &mut State,
    host_idx: usize,
    server: &Server,
    want: &BTreeMap<String, i64>,
) -> Vec<String> {
    let rp = st.hosts[host_idx].uuid.clone();
    placement::set_allocations(
        st,
        &server.id,
        &server.project_id,
        &server.user_id,
        Some("INSTANCE"),
        BTreeMap::from([(rp, want.clone())]),
    );
    let mut pci = Vec::new();
    for alias in st.pci_aliases.clone() {
        let n = want.get(&alias.resource_class).copied().unwrap_or(0);
        for d in st.hosts[host_idx].pci.iter_mut() {
            if pci.len() as i64 >= n {
                break;
            }
            if d.server.is_none()
                && d.vendor_id == alias.vendor_id
                && d.product_id == alias.product_id
            {
                d.server = Some(server.id.clone());
                pci.push(d.address.clone());
            }
        }
    }
    pci
}

fn unclaim(st: &mut State, server_id: &str) {
    placement::release(st, server_id);
    for h in st.hosts.iter_mut() {
        for d in h.pci.iter_mut() {
            if d.server.as_deref() == Some(server_id) {
                d.server = None;
            }
        }
    }
}

fn quota_usage(st: &State, project: &str) -> BTreeMap<&'static str, i64> {
    let live = st
        .servers
        .iter()
        .filter(|s| !s.deleted && s.project_id == project);
    let (mut n, mut cores, mut ram) = (0, 0, 0);
    for s in live {
        n += 1;
        cores += s.flavor.vcpus;
        ram += s.flavor.ram;
    }
    BTreeMap::from([("instances", n), ("cores", cores), ("ram", ram)])
}

fn check_quota(st: &State, project: &str, count: i64, f: &FlavorSnap) -> Result<(), Response> {
    let limits = quota_limits(st, project);
    let used = quota_usage(st, project);
    for (k, req) in [
        ("instances", count),
        ("cores", f.vcpus * count),
        ("ram", f.ram * count),
    ] {
        let limit = limits.get(k).copied().unwrap_or(-1);
        let have = used.get(k).copied().unwrap_or(0);
        if limit >= 0 && have + req > limit {
            return Err(err(
                403,
                &format!(
                    "Quota exceeded for {k}: Requested {req}, but already used {have} of {limit} {k}"
                ),
            ));
        }
    }
    Ok(())
}

fn snap(f: &Flavor) -> FlavorSnap {
    FlavorSnap {
        id: f.id.clone(),
        name: f.name.clone(),
        vcpus: f.vcpus,
        ram: f.ram,
        disk: f.disk,
        ephemeral: f.ephemeral,
        swap: f.swap,
        extra_specs: f.extra_specs.clone(),
    }
}

fn ref_id(v: &str) -> String {
    v.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(v)
        .to_string()
}

enum NetReq {
    Network(String, Option<String>),
    Port(String),
}

fn parse_networks(
    st: &State,
    cx: &Cx,
    project: &str,
    v: Option<&Value>,
) -> Result<Vec<NetReq>, Response> {
    let auto = |st: &State| -> Result<Vec<NetReq>, Response> {
        let candidates: Vec<&Network> = st
            .networks
            .iter()
            .filter(|n| !n.external && (n.project_id == project || n.shared))
            .collect();
        match candidates.as_slice() {
            [one] => Ok(vec![NetReq::Network(one.id.clone(), None)]),
            [] => Ok(vec![]),
            _ => Err(err(
                409,
                "Multiple possible networks found, use a Network ID to be more specific.",
            )),
        }
    };
    match v {
        None => {
            if cx.mv >= 37 {
                return Err(invalid(
                    "server",
                    &json!({}),
                    "'networks' is a required property",
                ));
            }
            auto(st)
        }
        Some(Value::String(s)) if cx.mv >= 37 && s == "none" => Ok(vec![]),
        Some(Value::String(s)) if cx.mv >= 37 && s == "auto" => {
            let nets = auto(st)?;
            if nets.is_empty() {
                return Err(bad(&format!(
                    "Unable to automatically allocate a network for project {project}"
                )));
            }
            Ok(nets)
        }
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for n in list {
                if let Some(port) = n.get("port").and_then(Value::as_str) {
                    let p =
                        st.ports.iter().find(|p| p.id == port).ok_or_else(|| {
                            err(400, &format!("Port id {port} could not be found."))
                        })?;
                    if !p.device_id.is_empty() {
                        return Err(err(409, &format!("Port {port} is still in use.")));
                    }
                    out.push(NetReq::Port(port.to_string()));
                } else if let Some(uuid) = n.get("uuid").and_then(Value::as_str) {
                    if !is_uuid(uuid) {
                        return Err(bad(&format!(
                            "Bad networks format: network uuid is not in proper format ({uuid})"
                        )));
                    }
                    let net = st
                        .networks
                        .iter()
                        .find(|x| x.id == uuid)
                        .ok_or_else(|| bad(&format!("Network {uuid} could not be found.")))?;
                    out.push(NetReq::Network(
                        net.id.clone(),
                        n.get("fixed_ip")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    ));
                } else {
                    return Err(invalid(
                        "networks",
                        n,
                        "is not valid under any of the given schemas",
                    ));
                }
            }
            Ok(out)
        }
        Some(other) => Err(invalid(
            "networks",
            other,
            "is not valid under any of the given schemas",
        )),
    }
}

fn server_create_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req
        .json()
        .ok_or_else(|| bad("The request body is not valid JSON."))?;
    let b = body
        .get("server")
        .filter(|s| s.is_object())
        .ok_or_else(|| invalid("request body", &body, "'server' is a required property"))?
        .clone();
    for k in b
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !CREATE_FIELDS.contains(&k.as_str()) || (k == "personality" && cx.mv >= 57) {
            return Err(invalid(
                "server",
                &b,
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
    }
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("server", &b, "'name' is a required property"))?
        .to_string();
    if name.is_empty() || name.len() > 255 || (name.trim() != name) {
        return Err(invalid("name", &json!(name), "is not a valid server name"));
    }
    let flavor_ref = b
        .get("flavorRef")
        .and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        })
        .ok_or_else(|| invalid("server", &b, "'flavorRef' is a required property"))?;
    let fid = ref_id(&flavor_ref);
    let flavor = st
        .flavors
        .iter()
        .find(|f| f.id == fid)
        .ok_or_else(|| bad(&format!("Flavor {fid} could not be found.")))?;
    if flavor.disabled {
        return Err(bad("Flavor is disabled."));
    }
    let flavor = snap(flavor);
    let bdm = b
        .get("block_device_mapping_v2")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let image_id = match b.get("imageRef").and_then(Value::as_str) {
        Some(r) if !r.is_empty() => {
            let id = ref_id(r);
            let img = st
                .images
                .iter()
                .find(|i| i.id == id)
                .ok_or_else(|| bad(&format!("Image {id} could not be found.")))?;
            if img.status != "active" {
                return Err(bad(&format!("Image {id} is not active.")));
            }
            if flavor.disk > 0 && img.min_disk > flavor.disk {
                return Err(bad("Flavor's disk is too small for requested image."));
            }
            if img.min_ram > flavor.ram {
                return Err(bad("Flavor's memory is too small for requested image."));
            }
            id
        }
        _ => {
            let boot_from_image = bdm.iter().find_map(|d| {
                (d.get("boot_index").and_then(as_int) == Some(0)
                    && d.get("source_type").and_then(Value::as_str) == Some("image"))
                .then(|| {
                    d.get("uuid")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                })
            });
            if bdm.is_empty() {
                return Err(bad("Missing imageRef attribute"));
            }
            boot_from_image.unwrap_or_default()
        }
    };
    let volumes: Vec<String> = bdm
        .iter()
        .filter(|d| d.get("destination_type").and_then(Value::as_str) == Some("volume"))
        .map(|d| {
            d.get("uuid")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| os.uuid())
        })
        .collect();
    let project = cx.caller.project().to_string();
    let nets = parse_networks(st, cx, &project, b.get("networks"))?;
    let key_name = match b.get("key_name") {
        Some(Value::String(k)) => {
            if !st
                .keypairs
                .iter()
                .any(|x| &x.name == k && x.user_id == cx.caller.user_id)
            {
                return Err(bad("Invalid key_name provided."));
            }
            Some(k.clone())
        }
        Some(Value::Null) | None => None,
        Some(v) => return Err(invalid("key_name", v, "is not of type 'string'")),
    };
    let metadata: BTreeMap<String, String> = match b.get("metadata") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_string()))
                    .ok_or_else(|| invalid("metadata", &b["metadata"], "values must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(invalid("metadata", v, "is not of type 'object'")),
    };
    if metadata.len() as i64
        > quota_limits(st, &project)
            .get("metadata_items")
            .copied()
            .unwrap_or(128)
    {
        return Err(err(
            403,
            "Quota exceeded for metadata_items: Requested too many metadata items",
        ));
    }
    // Availability zone, optionally `az:host[:node]` (admin).
    let mut forced_host = None;
    let az = match b.get("availability_zone").and_then(Value::as_str) {
        Some(raw) => {
            let mut parts = raw.splitn(3, ':');
            let zone = parts.next().unwrap_or("").to_string();
            if let Some(h) = parts.next().filter(|h| !h.is_empty()) {
                cx.require_admin("os_compute_api:servers:create:forced_host")?;
                forced_host = Some(h.to_string());
            }
            if !zone.is_empty() && !st.hosts.iter().any(|h| h.az == zone) {
                return Err(bad("The requested availability zone is not available"));
            }
            (!zone.is_empty()).then_some(zone)
        }
        None => None,
    };
    if cx.mv >= 74
        && let Some(h) = b
            .get("host")
            .or(b.get("hypervisor_hostname"))
            .and_then(Value::as_str)
    {
        cx.require_admin("compute:servers:create:requested_destination")?;
        if !st
            .hosts
            .iter()
            .any(|x| x.host == h || x.hypervisor_hostname == h)
        {
            return Err(bad(&format!("Compute host {h} could not be found.")));
        }
        forced_host = Some(h.to_string());
    }
    let want = flavor_resources(st, &flavor).map_err(|e| bad(&e))?;
    let min_count = b.get("min_count").and_then(as_int).unwrap_or(1).max(1);
    let max_count = b
        .get("max_count")
        .and_then(as_int)
        .unwrap_or(min_count)
        .max(min_count);
    check_quota(st, &project, min_count, &flavor)?;
    let count = (min_count..=max_count)
        .rev()
        .find(|n| check_quota(st, &project, *n, &flavor).is_ok())
        .unwrap_or(min_count);
    let description = match b.get("description") {
        Some(Value::String(s)) if cx.mv >= 19 => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(invalid(
                "server",
                &b,
                "Additional properties are not allowed ('description' was unexpected)",
            ));
        }
        _ => None,
    };
    let tags: Vec<String> = match b.get("tags") {
        Some(Value::Array(t)) if cx.mv >= 52 => t
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![],
    };
    let security_groups: Vec<String> = b
        .get("security_groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .filter(|v: &Vec<String>| !v.is_empty())
        .unwrap_or_else(|| vec!["default".to_string()]);
    let now = now_ms();
    let reservation_id = format!("r-{}", &os.hex_id()[..8]);
    let hints: BTreeMap<String, Value> = body
        .get("OS-SCH-HNT:scheduler_hints")
        .or(body.get("os:scheduler_hints"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), if v.is_array() { v.clone() } else { json!([v]) }))
                .collect()
        })
        .unwrap_or_default();
    let admin_pass = b
        .get("adminPass")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let s = os.hex_id();
            s[..12].to_string()
        });
    let mut first_id = None;
    let mut created = Vec::new();
    for i in 0..count {
        let id = os.uuid();
        let sname = if count > 1 {
            format!("{name}-{}", i + 1)
        } else {
            name.clone()
        };
        let seq = st.next_instance;
        st.next_instance += 1;
        let hostname = b
            .get("hostname")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| sanitize_hostname(&sname));
        let mut server = Server {
            id: id.clone(),
            name: sname,
            project_id: project.clone(),
            user_id: cx.caller.user_id.clone(),
            flavor: flavor.clone(),
            old_flavor: None,
            image_id: image_id.clone(),
            key_name: key_name.clone(),
            metadata: metadata.clone(),
            az: az.clone().unwrap_or_else(|| "nova".into()),
            host: None,
            vm_state: "building".into(),
            task_state: Some("scheduling".into()),
            power_state: 0,
            created_ms: now,
            updated_ms: now,
            launched_ms: None,
            terminated_ms: None,
            deleted: false,
            fault: None,
            locked: false,
            locked_reason: None,
            tags: tags.clone(),
            description: description.clone(),
            access_ipv4: b
                .get("accessIPv4")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            access_ipv6: b
                .get("accessIPv6")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            disk_config: b
                .get("OS-DCF:diskConfig")
                .and_then(Value::as_str)
                .unwrap_or("MANUAL")
                .to_string(),
            config_drive: match b.get("config_drive") {
                Some(v) if as_bool(v) == Some(true) => "True".into(),
                _ => "".into(),
            },
            user_data: b
                .get("user_data")
                .and_then(Value::as_str)
                .map(str::to_string),
            seq,
            launch_index: i as u64,
            reservation_id: reservation_id.clone(),
            hostname,
            ports: vec![],
            pending: None,
            pci: vec![],
            security_groups: security_groups.clone(),
            trusted_image_certificates: b
                .get("trusted_image_certificates")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                }),
            scheduler_hints: hints.clone(),
            pinned_az: az.clone(),
            no_valid_host: false,
            volumes: volumes.clone(),
            actions: vec![],
        };
        record(
            &mut server,
            "create",
            "compute__do_build_and_run_instance",
            &cx.caller,
            false,
        );
        match schedule(st, &want, az.as_deref(), forced_host.as_deref(), None) {
            Some(h) => {
                server.host = Some(st.hosts[h].host.clone());
                // The server is in the AZ of the host it landed on.
                server.az = st.hosts[h].az.clone();
                server.pci = claim(st, h, &server, &want);
                server.task_state = Some("spawning".into());
                // Ports are allocated while the server builds.
                for n in &nets {
                    let port = match n {
                        NetReq::Network(net, ip) => {
                            neutron::create_port(os, st, net, &project, ip.as_deref())
                                .map_err(|e| err(400, &e))?
                        }
                        NetReq::Port(p) => p.clone(),
                    };
                    neutron::bind_port(st, &port, &id, &st.hosts[h].host.clone());
                    server.ports.push(port);
                }
            }
            None => server.no_valid_host = true,
        }
        server.pending = Some(Pending {
            at_ms: now + os.task_ms(BUILD_MS),
            vm_state: "active".into(),
            task_state: None,
            power_state: 1,
            kind: "build".into(),
        });
        first_id.get_or_insert(id.clone());
        created.push(id);
        st.servers.push(server);
    }
    if b.get("return_reservation_id").and_then(as_bool) == Some(true) {
        return Ok(json_resp(
            StatusCode::ACCEPTED,
            json!({"reservation_id": reservation_id}),
        ));
    }
    let id = first_id.unwrap_or_default();
    let v = json!({
        "id": id,
        "links": links(os, "servers", &id),
        "OS-DCF:diskConfig": b.get("OS-DCF:diskConfig").and_then(Value::as_str).unwrap_or("MANUAL"),
        "security_groups": security_groups.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
        "adminPass": admin_pass,
    });
    let r = json_resp(StatusCode::ACCEPTED, json!({"server": v}));
    Ok(with_header(
        r,
        "location",
        &format!("{}/v2.1/servers/{id}", os.ctx.urls.compute),
    ))
}

fn sanitize_hostname(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else if c == ' ' || c == '_' || c == '.' {
                '-'
            } else {
                '\0'
            }
        })
        .filter(|c| *c != '\0')
        .collect();
    out = out.trim_matches('-').to_string();
    out.truncate(63);
    if out.is_empty() { "server".into() } else { out }
}

// ---------------------------------------------------------------------------------------
// Servers: update, delete

fn server_update_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let b = body
        .get("server")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("request body", &body, "'server' is a required property"))?
        .clone();
    let idx = find_server_idx(st, req.param("id"), cx)?;
    for (k, v) in &b {
        match k.as_str() {
            "name" => {
                let n = v
                    .as_str()
                    .filter(|n| !n.is_empty() && n.len() <= 255)
                    .ok_or_else(|| invalid("name", v, "is not a valid server name"))?;
                st.servers[idx].name = n.to_string();
            }
            "description" if cx.mv >= 19 => {
                st.servers[idx].description = v.as_str().map(str::to_string)
            }
            "accessIPv4" => st.servers[idx].access_ipv4 = v.as_str().unwrap_or("").to_string(),
            "accessIPv6" => st.servers[idx].access_ipv6 = v.as_str().unwrap_or("").to_string(),
            "OS-DCF:diskConfig" => {
                st.servers[idx].disk_config = v.as_str().unwrap_or("MANUAL").to_string()
            }
            "hostname" if cx.mv >= 90 => {
                st.servers[idx].hostname = v.as_str().unwrap_or("").to_string()
            }
            "pinned_availability_zone" if cx.mv >= 104 => {
                st.servers[idx].pinned_az = v.as_str().map(str::to_string)
            }
            _ => {
                return Err(invalid(
                    "server",
                    &json!(b),
                    &format!("Additional properties are not allowed ('{k}' was unexpected)"),
                ));
            }
        }
    }
    st.servers[idx].updated_ms = now_ms();
    let view = if cx.mv >= 75 {
        View::Detail { show: true }
    } else {
        View::Reduced
    };
    let v = server_view(os, st, &st.servers[idx], cx.mv, cx.admin(), view);
    Ok(json_resp(StatusCode::OK, json!({"server": v})))
}

/// Remove a server now: ports, allocations, PCI devices.
pub(crate) fn destroy_server(st: &mut State, idx: usize) {
    let id = st.servers[idx].id.clone();
    unclaim(st, &id);
    neutron::release_ports(st, &id);
    let now = now_ms();
    let s = &mut st.servers[idx];
    s.deleted = true;
    s.vm_state = "deleted".into();
    s.task_state = None;
    s.power_state = 0;
    s.terminated_ms = Some(now);
    s.updated_ms = now;
    s.pending = None;
    s.ports.clear();
}

fn server_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    if st.servers[idx].locked && !cx.admin() {
        return Err(err(
            409,
            &format!("Instance {} is locked", st.servers[idx].id),
        ));
    }
    record(
        &mut st.servers[idx],
        "delete",
        "compute_terminate_instance",
        &cx.caller,
        true,
    );
    destroy_server(st, idx);
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------
// Servers: actions

fn conflict(action: &str, s: &Server, attr: &str) -> Response {
    let state = if attr == "task_state" {
        s.task_state.clone().unwrap_or_default()
    } else {
        s.vm_state.clone()
    };
    err(
        409,
        &format!(
            "Cannot '{action}' instance {} while it is in {attr} {state}",
            s.id
        ),
    )
}

/// The action may run only in these vm_states and with no task in progress.
fn require(s: &Server, action: &str, vm_states: &[&str]) -> Result<(), Response> {
    if !vm_states.contains(&s.vm_state.as_str()) {
        return Err(conflict(action, s, "vm_state"));
    }
    if s.task_state.is_some() {
        return Err(conflict(action, s, "task_state"));
    }
    Ok(())
}

fn begin(os: &Os, s: &mut Server, task: &str, kind: &str, vm_state: &str, power: i64) {
    let now = now_ms();
    s.task_state = Some(task.into());
    s.updated_ms = now;
    s.pending = Some(Pending {
        at_ms: now + os.task_ms(ACTION_MS),
        vm_state: vm_state.into(),
        task_state: None,
        power_state: power,
        kind: kind.into(),
    });
}

/// Run an action and, when accepted, record it as an instance action.
fn server_action_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let r = server_action_inner(os, req, st, cx)?;
    let action = req
        .json()
        .and_then(|b| b.as_object().and_then(|m| m.keys().next().cloned()))
        .unwrap_or_default();
    if r.status().is_success()
        && action != "os-getConsoleOutput"
        && let Some(idx) = st.servers.iter().position(|s| s.id == req.param("id"))
    {
        let name = match action.as_str() {
            "os-stop" => "stop",
            "os-start" => "start",
            "confirmResize" => "confirmResize",
            "revertResize" => "revertResize",
            "createImage" => "createImage",
            "changePassword" => "changePassword",
            other => other,
        }
        .to_string();
        let event = format!("compute_{}_instance", name.to_lowercase());
        // Actions without a pending transition are over already.
        let done = st.servers[idx].pending.is_none();
        record(&mut st.servers[idx], &name, &event, &cx.caller, done);
    }
    Ok(r)
}

fn server_action_inner(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let m = body
        .as_object()
        .filter(|m| m.len() == 1)
        .ok_or_else(|| bad("Malformed request body"))?;
    let (action, arg) = m
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .expect("one key");
    let idx = find_server_idx(st, req.param("id"), cx)?;
    if st.servers[idx].locked
        && !cx.admin()
        && action != "unlock"
        && action != "os-getConsoleOutput"
    {
        return Err(err(
            409,
            &format!("Instance {} is locked", st.servers[idx].id),
        ));
    }
    let accepted = || Ok(empty(StatusCode::ACCEPTED));
    match action.as_str() {
        "os-stop" => {
            require(
                &st.servers[idx],
                &action,
                &["active", "error", "resized", "rescued"],
            )?;
            begin(
                os,
                &mut st.servers[idx],
                "powering-off",
                "stop",
                "stopped",
                4,
            );
            accepted()
        }
        "os-start" => {
            require(&st.servers[idx], &action, &["stopped"])?;
            begin(
                os,
                &mut st.servers[idx],
                "powering-on",
                "start",
                "active",
                1,
            );
            accepted()
        }
        "reboot" => {
            let kind = arg
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("reboot", &arg, "'type' is a required property"))?;
            let s = &mut st.servers[idx];
            match kind.to_ascii_uppercase().as_str() {
                "SOFT" => {
                    require(s, &action, &["active"])?;
                    begin(os, s, "rebooting", "reboot", "active", 1);
                }
                "HARD" => {
                    if !["active", "stopped", "paused", "suspended", "error"]
                        .contains(&s.vm_state.as_str())
                    {
                        return Err(conflict(&action, s, "vm_state"));
                    }
                    if s.task_state
                        .as_deref()
                        .is_some_and(|t| !t.starts_with("reboot"))
                    {
                        return Err(conflict(&action, s, "task_state"));
                    }
                    begin(os, s, "rebooting_hard", "reboot", "active", 1);
                }
                other => {
                    return Err(invalid(
                        "type",
                        &json!(other),
                        "is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']",
                    ));
                }
            }
            accepted()
        }
        "pause" => {
            require(&st.servers[idx], &action, &["active"])?;
            begin(os, &mut st.servers[idx], "pausing", "pause", "paused", 3);
            accepted()
        }
        "unpause" => {
            require(&st.servers[idx], &action, &["paused"])?;
            begin(
                os,
                &mut st.servers[idx],
                "unpausing",
                "unpause",
                "active",
                1,
            );
            accepted()
        }
        "suspend" => {
            require(&st.servers[idx], &action, &["active"])?;
            begin(
                os,
                &mut st.servers[idx],
                "suspending",
                "suspend",
                "suspended",
                7,
            );
            accepted()
        }
        "resume" => {
            require(&st.servers[idx], &action, &["suspended"])?;
            begin(os, &mut st.servers[idx], "resuming", "resume", "active", 1);
            accepted()
        }
        "lock" => {
            let s = &mut st.servers[idx];
            s.locked = true;
            if cx.mv >= 73 {
                s.locked_reason = arg
                    .get("locked_reason")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            accepted()
        }
        "unlock" => {
            let s = &mut st.servers[idx];
            s.locked = false;
            s.locked_reason = None;
            accepted()
        }
        "resize" => resize(os, st, idx, &arg),
        "confirmResize" => {
            let s = &mut st.servers[idx];
            if s.vm_state != "resized" {
                return Err(err(
                    409,
                    &format!(
                        "Cannot 'confirmResize' instance {} while it is in vm_state {}",
                        s.id, s.vm_state
                    ),
                ));
            }
            s.old_flavor = None;
            s.vm_state = if s.power_state == 1 {
                "active".into()
            } else {
                "stopped".into()
            };
            s.updated_ms = now_ms();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        "revertResize" => {
            require(&st.servers[idx], &action, &["resized"])?;
            let s = &mut st.servers[idx];
            let back = if s.power_state == 1 {
                "active"
            } else {
                "stopped"
            };
            let power = s.power_state;
            begin(os, s, "resize_reverting", "revert", back, power);
            accepted()
        }
        "rebuild" => rebuild(os, st, idx, &arg, cx),
        "createImage" => create_image(os, st, idx, &arg, cx),
        "os-getConsoleOutput" => {
            let s = &st.servers[idx];
            if !["active", "stopped", "paused", "suspended"].contains(&s.vm_state.as_str()) {
                return Err(conflict(&action, s, "vm_state"));
            }
            let lines = [
                format!("[    0.000000] Linux version 6.1.0-twin ({})", s.name),
                format!("[    1.234567] cloud-init: hostname {}", s.hostname),
                format!("{} login: ", s.hostname),
            ];
            let n = arg
                .get("length")
                .and_then(as_int)
                .map(|n| n.max(0) as usize)
                .unwrap_or(lines.len());
            let out = lines[lines.len().saturating_sub(n)..].join("\n");
            Ok(json_resp(StatusCode::OK, json!({"output": out})))
        }
        "shelve" => {
            require(
                &st.servers[idx],
                &action,
                &["active", "stopped", "paused", "suspended"],
            )?;
            begin(
                os,
                &mut st.servers[idx],
                "shelving",
                "shelve",
                "shelved_offloaded",
                4,
            );
            accepted()
        }
        "unshelve" => {
            require(&st.servers[idx], &action, &["shelved", "shelved_offloaded"])?;
            begin(
                os,
                &mut st.servers[idx],
                "unshelving",
                "unshelve",
                "active",
                1,
            );
            accepted()
        }
        "changePassword" => {
            arg.get("adminPass")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid("changePassword", &arg, "'adminPass' is a required property")
                })?;
            require(&st.servers[idx], &action, &["active"])?;
            accepted()
        }
        "addSecurityGroup" | "removeSecurityGroup" => {
            let name = arg
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&action, &arg, "'name' is a required property"))?;
            let s = &mut st.servers[idx];
            if action == "addSecurityGroup" {
                if !s.security_groups.iter().any(|g| g == name) {
                    s.security_groups.push(name.to_string());
                }
            } else {
                let before = s.security_groups.len();
                s.security_groups.retain(|g| g != name);
                if before == s.security_groups.len() {
                    return Err(bad(&format!(
                        "Security group {name} not associated with the instance {}",
                        s.id
                    )));
                }
            }
            accepted()
        }
        other => Err(bad(&format!("There is no such action: {other}"))),
    }
}

fn resize(os: &Os, st: &mut State, idx: usize, arg: &Value) -> R {
    require(&st.servers[idx], "resize", &["active", "stopped"])?;
    let fref = arg
        .get("flavorRef")
        .and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        })
        .ok_or_else(|| invalid("resize", arg, "'flavorRef' is a required property"))?;
    let fid = ref_id(&fref);
    let new = st
        .flavors
        .iter()
        .find(|f| f.id == fid)
        .map(snap)
        .ok_or_else(|| bad(&format!("Unable to find flavor with ID {fid}")))?;
    if new.id == st.servers[idx].flavor.id {
        return Err(bad("When resizing, instances must change flavor!"));
    }
    let project = st.servers[idx].project_id.clone();
    let old = st.servers[idx].flavor.clone();
    let limits = quota_limits(st, &project);
    let used = quota_usage(st, &project);
    for (k, delta) in [("cores", new.vcpus - old.vcpus), ("ram", new.ram - old.ram)] {
        let limit = limits.get(k).copied().unwrap_or(-1);
        let have = used.get(k).copied().unwrap_or(0);
        if delta > 0 && limit >= 0 && have + delta > limit {
            return Err(err(
                403,
                &format!(
                    "Quota exceeded for {k}: Requested {delta}, but already used {have} of {limit} {k}"
                ),
            ));
        }
    }
    let want = flavor_resources(st, &new).map_err(|e| bad(&e))?;
    let id = st.servers[idx].id.clone();
    // Free the old claim, then place the new flavor (same host preferred).
    let saved: State = st.clone();
    unclaim(st, &id);
    let current = st.servers[idx].host.clone();
    let target = current
        .as_deref()
        .and_then(|h| schedule(st, &want, None, Some(h), None))
        .or_else(|| schedule(st, &want, None, None, None));
    let Some(h) = target else {
        *st = saved;
        return Err(bad(
            "No valid host was found. No valid host found for resize",
        ));
    };
    let server = st.servers[idx].clone();
    let pci = claim(st, h, &server, &want);
    let host = st.hosts[h].host.clone();
    let az = st.hosts[h].az.clone();
    let s = &mut st.servers[idx];
    s.pci = pci;
    s.host = Some(host);
    s.az = az;
    s.old_flavor = Some(old);
    s.flavor = new;
    let power = s.power_state;
    begin(os, s, "resize_prep", "resize", "resized", power);
    Ok(empty(StatusCode::ACCEPTED))
}

fn rebuild(os: &Os, st: &mut State, idx: usize, arg: &Value, cx: &Cx) -> R {
    require(&st.servers[idx], "rebuild", &["active", "stopped", "error"])?;
    let iref = arg
        .get("imageRef")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("rebuild", arg, "'imageRef' is a required property"))?;
    let iid = ref_id(iref);
    if !st
        .images
        .iter()
        .any(|i| i.id == iid && i.status == "active")
    {
        return Err(bad(&format!(
            "Cannot find requested image {iid}: Image {iid} could not be found."
        )));
    }
    let admin_pass = arg
        .get("adminPass")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| os.hex_id()[..12].to_string());
    {
        let s = &mut st.servers[idx];
        s.image_id = iid;
        if let Some(n) = arg.get("name").and_then(Value::as_str) {
            s.name = n.to_string();
        }
        if let Some(m) = arg.get("metadata").and_then(Value::as_object) {
            s.metadata = m
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|x| (k.clone(), x.to_string())))
                .collect();
        }
        if cx.mv >= 19
            && let Some(d) = arg.get("description")
        {
            s.description = d.as_str().map(str::to_string);
        }
        if cx.mv >= 57
            && let Some(u) = arg.get("user_data")
        {
            s.user_data = u.as_str().map(str::to_string);
        }
        if cx.mv >= 54
            && let Some(k) = arg.get("key_name")
        {
            s.key_name = k.as_str().map(str::to_string);
        }
        let target = if s.vm_state == "stopped" {
            "stopped"
        } else {
            "active"
        };
        let power = if target == "active" { 1 } else { 4 };
        s.fault = None;
        begin(os, s, "rebuilding", "rebuild", target, power);
    }
    let view = if cx.mv >= 75 {
        View::Detail { show: true }
    } else {
        View::Reduced
    };
    let mut v = server_view(os, st, &st.servers[idx], cx.mv, cx.admin(), view);
    v["adminPass"] = json!(admin_pass);
    if cx.mv >= 54 && cx.mv < 75 {
        v["key_name"] = json!(st.servers[idx].key_name);
    }
    if cx.mv >= 57 {
        v["user_data"] = json!(st.servers[idx].user_data);
    }
    Ok(json_resp(StatusCode::ACCEPTED, json!({"server": v})))
}

fn create_image(os: &Os, st: &mut State, idx: usize, arg: &Value, cx: &Cx) -> R {
    let s = &st.servers[idx];
    if !["active", "stopped", "paused", "suspended"].contains(&s.vm_state.as_str())
        || s.task_state.is_some()
    {
        return Err(conflict(
            "createImage",
            s,
            if s.task_state.is_some() {
                "task_state"
            } else {
                "vm_state"
            },
        ));
    }
    let name = arg
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("createImage", arg, "'name' is a required property"))?
        .to_string();
    let meta: BTreeMap<String, Value> = arg
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let id = glance::snapshot(os, st, idx, &name, meta);
    if cx.mv >= 45 {
        return Ok(json_resp(StatusCode::ACCEPTED, json!({"image_id": id})));
    }
    let r = empty(StatusCode::ACCEPTED);
    Ok(with_header(
        r,
        "location",
        &format!("{}/v2/images/{id}", os.ctx.urls.image),
    ))
}

/// Note an instance action with its (first) event.
fn record(s: &mut Server, action: &str, event: &str, caller: &Caller, finished: bool) {
    let now = now_ms();
    s.actions.push(InstanceAction {
        action: action.to_string(),
        request_id: format!("req-{}", uuid::Uuid::new_v4()),
        user_id: caller.user_id.clone(),
        project_id: caller.project().to_string(),
        start_ms: now,
        updated_ms: now,
        message: None,
        events: vec![ActionEvent {
            event: event.to_string(),
            start_ms: now,
            finish_ms: finished.then_some(now),
            result: finished.then(|| "Success".to_string()),
            host: s.host.clone(),
        }],
    });
}

/// Finish the latest unfinished event of a server's actions.
fn finish_event(s: &mut Server, at: i64, ok: bool) {
    let host = s.host.clone();
    if let Some(a) = s
        .actions
        .iter_mut()
        .rev()
        .find(|a| a.events.iter().any(|e| e.finish_ms.is_none()))
    {
        for e in a.events.iter_mut().filter(|e| e.finish_ms.is_none()) {
            e.finish_ms = Some(at);
            e.result = Some(if ok { "Success" } else { "Error" }.into());
            if e.host.is_none() {
                e.host = host.clone();
            }
        }
        a.updated_ms = at;
        if !ok {
            a.message = Some("Error".into());
        }
    }
}

fn action_json(s: &Server, a: &InstanceAction, mv: u32, admin: bool, events: bool) -> Value {
    let mut v = json!({
        "action": a.action,
        "instance_uuid": s.id,
        "message": a.message,
        "project_id": a.project_id,
        "request_id": a.request_id,
        "start_time": iso_plain_us(a.start_ms),
        "user_id": a.user_id,
    });
    if mv >= 58 {
        v["updated_at"] = json!(iso_plain_us(a.updated_ms));
    }
    if events {
        let list: Vec<Value> = a
            .events
            .iter()
            .map(|e| {
                let mut ev = json!({
                    "event": e.event,
                    "start_time": iso_plain_us(e.start_ms),
                    "finish_time": e.finish_ms.map(iso_plain_us),
                    "result": e.result,
                });
                if admin {
                    ev["traceback"] = json!(if e.result.as_deref() == Some("Error") {
                        Some("Traceback (most recent call last): injected by the twin")
                    } else {
                        None
                    });
                }
                if mv >= 62 {
                    ev["hostId"] = json!(host_id(&s.project_id, e.host.as_deref()));
                    if admin {
                        ev["host"] = json!(e.host);
                    }
                }
                if mv >= 84 {
                    ev["details"] = json!(if e.result.as_deref() == Some("Error") {
                        s.fault.as_ref().map(|f| f.message.clone())
                    } else {
                        None
                    });
                }
                ev
            })
            .collect();
        v["events"] = json!(list);
    }
    v
}

/// The server, deleted ones included (their actions can be read from 2.21 on).
fn find_server_any(st: &State, id: &str, cx: &Cx) -> Result<usize, Response> {
    st.servers
        .iter()
        .rposition(|s| {
            s.id == id
                && (!s.deleted || cx.mv >= 21)
                && (cx.admin() || s.project_id == cx.caller.project())
        })
        .ok_or_else(|| err(404, &format!("Instance {id} could not be found.")))
}

fn actions_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_any(st, req.param("id"), cx)?;
    let s = &st.servers[idx];
    let mut items: Vec<&InstanceAction> = s.actions.iter().rev().collect();
    if cx.mv >= 58 {
        if let Some(since) = req.q("changes-since").and_then(parse_iso) {
            items.retain(|a| a.updated_ms >= since);
        }
        let path = format!("servers/{}/os-instance-actions", s.id);
        let (page, next) = paginate(
            os,
            req,
            items,
            |a| a.request_id.clone(),
            &path,
            |m| bad(&format!("Marker {m} could not be found.")),
        )?;
        let mut body = json!({"instanceActions": page.iter().map(|a| action_json(s, a, cx.mv, cx.admin(), false)).collect::<Vec<_>>()});
        if let Some(n) = next {
            body["links"] = n;
        }
        return Ok(json_resp(StatusCode::OK, body));
    }
    let list: Vec<Value> = items
        .iter()
        .map(|a| action_json(s, a, cx.mv, cx.admin(), false))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"instanceActions": list})))
}

fn action_get_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_any(st, req.param("id"), cx)?;
    let s = &st.servers[idx];
    let rid = req.param("req");
    let a = s
        .actions
        .iter()
        .find(|a| a.request_id == rid)
        .ok_or_else(|| {
            err(
                404,
                &format!("Action for request_id {rid} on instance {} not found", s.id),
            )
        })?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"instanceAction": action_json(s, a, cx.mv, cx.admin(), true)}),
    ))
}

/// Complete every pending transition due by `now`.
pub(crate) fn advance(os: &Os, st: &mut State, now: i64) {
    let due: Vec<usize> = st
        .servers
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.deleted && s.pending.as_ref().is_some_and(|p| p.at_ms <= now))
        .map(|(i, _)| i)
        .collect();
    for idx in due {
        let Some(p) = st.servers[idx].pending.take() else {
            continue;
        };
        let id = st.servers[idx].id.clone();
        let name = st.servers[idx].name.clone();
        let dc = os.ctx.name.clone();
        let faults = &os.ctx.shared.faults;
        let object_fault = |what: &str| -> bool {
            for key in [id.as_str(), name.as_str()] {
                if faults.peek_object(&dc, "openstack", key).as_deref() == Some(what) {
                    faults.take_object(&dc, "openstack", key);
                    return true;
                }
            }
            false
        };
        let fail = |st: &mut State, message: String, details: String| {
            let s = &mut st.servers[idx];
            finish_event(s, p.at_ms, false);
            s.vm_state = "error".into();
            s.task_state = None;
            s.updated_ms = p.at_ms;
            s.fault = Some(Fault {
                code: 500,
                message,
                details,
                created_ms: p.at_ms,
            });
        };
        match p.kind.as_str() {
            "build" if st.servers[idx].no_valid_host => {
                unclaim(st, &id);
                neutron::release_ports(st, &id);
                st.servers[idx].ports.clear();
                st.servers[idx].host = None;
                fail(
                    st,
                    "No valid host was found. There are not enough hosts available.".into(),
                    "Traceback (most recent call last):\n  nova.exception.NoValidHost: No valid host was found. There are not enough hosts available.\n".into(),
                );
            }
            "build" if object_fault("build_fails") => {
                unclaim(st, &id);
                neutron::release_ports(st, &id);
                st.servers[idx].ports.clear();
                st.servers[idx].host = None;
                fail(
                    st,
                    format!(
                        "Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance {id}."
                    ),
                    "nova.exception.MaxRetriesExceeded (injected by the twin: build_fails)".into(),
                );
            }
            kind if kind != "build" && object_fault("action_fails") => {
                fail(
                    st,
                    format!("Action {kind} failed on instance {id} (injected by the twin)"),
                    "injected by the twin: action_fails".into(),
                );
            }
            kind => {
                match kind {
                    "build" => {
                        st.servers[idx].launched_ms = Some(p.at_ms);
                        neutron::activate_ports(st, &id);
                    }
                    "shelve" => {
                        unclaim(st, &id);
                        st.servers[idx].host = None;
                    }
                    "unshelve" => {
                        let want =
                            flavor_resources(st, &st.servers[idx].flavor).unwrap_or_default();
                        match schedule(st, &want, None, None, None) {
                            Some(h) => {
                                let server = st.servers[idx].clone();
                                st.servers[idx].pci = claim(st, h, &server, &want);
                                st.servers[idx].host = Some(st.hosts[h].host.clone());
                                st.servers[idx].az = st.hosts[h].az.clone();
                            }
                            None => {
                                let s = &mut st.servers[idx];
                                s.vm_state = "shelved_offloaded".into();
                                s.task_state = None;
                                s.updated_ms = p.at_ms;
                                finish_event(s, p.at_ms, false);
                                continue;
                            }
                        }
                    }
                    "revert" => {
                        if let Some(old) = st.servers[idx].old_flavor.take() {
                            let want = flavor_resources(st, &old).unwrap_or_default();
                            unclaim(st, &id);
                            st.servers[idx].flavor = old;
                            let host = st.servers[idx].host.clone();
                            if let Some(h) = schedule(st, &want, None, host.as_deref(), None)
                                .or_else(|| schedule(st, &want, None, None, None))
                            {
                                let server = st.servers[idx].clone();
                                st.servers[idx].pci = claim(st, h, &server, &want);
                                st.servers[idx].host = Some(st.hosts[h].host.clone());
                                st.servers[idx].az = st.hosts[h].az.clone();
                            }
                        }
                    }
                    _ => {}
                }
                let s = &mut st.servers[idx];
                s.vm_state = p.vm_state.clone();
                s.task_state = p.task_state.clone();
                s.power_state = p.power_state;
                s.updated_ms = p.at_ms;
                finish_event(s, p.at_ms, true);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Servers: metadata, tags, ips, interfaces

fn meta_list_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"metadata": st.servers[idx].metadata}),
    ))
}

fn parse_meta(body: &Value, key: &str) -> Result<BTreeMap<String, String>, Response> {
    let m = body.get(key).and_then(Value::as_object).ok_or_else(|| {
        invalid(
            "request body",
            body,
            &format!("'{key}' is a required property"),
        )
    })?;
    m.iter()
        .map(|(k, v)| {
            if k.is_empty() || k.len() > 255 {
                return Err(invalid("metadata", &body[key], "key is not valid"));
            }
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| invalid("metadata", &body[key], "values must be strings"))
        })
        .collect()
}

fn meta_merge_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let m = parse_meta(&body, "metadata")?;
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let s = &mut st.servers[idx];
    s.metadata.extend(m);
    s.updated_ms = now_ms();
    Ok(json_resp(StatusCode::OK, json!({"metadata": s.metadata})))
}

fn meta_replace_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let m = parse_meta(&body, "metadata")?;
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let s = &mut st.servers[idx];
    s.metadata = m;
    s.updated_ms = now_ms();
    Ok(json_resp(StatusCode::OK, json!({"metadata": s.metadata})))
}

fn meta_get_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let key = req.param("key");
    let v = st.servers[idx]
        .metadata
        .get(key)
        .ok_or_else(|| err(404, "Metadata item was not found"))?;
    Ok(json_resp(StatusCode::OK, json!({"meta": {key: v}})))
}

fn meta_put_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let m = parse_meta(&body, "meta")?;
    let key = req.param("key").to_string();
    if m.len() != 1 {
        return Err(bad("Request body contains too many items"));
    }
    if !m.contains_key(&key) {
        return Err(bad("Request body and URI mismatch"));
    }
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let s = &mut st.servers[idx];
    s.metadata.extend(m.clone());
    s.updated_ms = now_ms();
    Ok(json_resp(StatusCode::OK, json!({"meta": m})))
}

fn meta_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    if st.servers[idx].metadata.remove(req.param("key")).is_none() {
        return Err(err(404, "Metadata item was not found"));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn check_tag(tag: &str) -> Result<(), Response> {
    if tag.is_empty() || tag.len() > 60 || tag.contains('/') || tag.contains(',') {
        return Err(invalid("tag", &json!(tag), "is not a valid tag"));
    }
    Ok(())
}

fn tags_list_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"tags": st.servers[idx].tags}),
    ))
}

fn tags_replace_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let tags: Vec<String> = body
        .get("tags")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("request body", &body, "'tags' is a required property"))?
        .iter()
        .map(|t| {
            t.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid("tags", t, "is not of type 'string'"))
        })
        .collect::<Result<_, _>>()?;
    for t in &tags {
        check_tag(t)?;
    }
    if tags.len() > 50 {
        return Err(bad("The number of tags exceeded the per-server limit 50"));
    }
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let mut uniq = Vec::new();
    for t in tags {
        if !uniq.contains(&t) {
            uniq.push(t);
        }
    }
    st.servers[idx].tags = uniq;
    Ok(json_resp(
        StatusCode::OK,
        json!({"tags": st.servers[idx].tags}),
    ))
}

fn tags_clear_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    st.servers[idx].tags.clear();
    Ok(empty(StatusCode::NO_CONTENT))
}

fn tag_check_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let tag = req.param("tag");
    if !st.servers[idx].tags.iter().any(|t| t == tag) {
        return Err(err(404, &format!("Tag {tag} could not be found.")));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn tag_add_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let tag = req.param("tag").to_string();
    check_tag(&tag)?;
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let s = &mut st.servers[idx];
    if s.tags.contains(&tag) {
        return Ok(empty(StatusCode::NO_CONTENT));
    }
    if s.tags.len() >= 50 {
        return Err(bad("The number of tags exceeded the per-server limit 50"));
    }
    s.tags.push(tag.clone());
    let r = empty(StatusCode::CREATED);
    Ok(with_header(
        r,
        "location",
        &format!("{}/v2.1/servers/{}/tags/{tag}", os.ctx.urls.compute, s.id),
    ))
}

fn tag_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let tag = req.param("tag");
    let s = &mut st.servers[idx];
    let before = s.tags.len();
    s.tags.retain(|t| t != tag);
    if before == s.tags.len() {
        return Err(err(404, &format!("Tag {tag} could not be found.")));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn server_ips_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"addresses": addresses(st, &st.servers[idx], false)}),
    ))
}

fn server_interfaces_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let list: Vec<Value> = st.servers[idx]
        .ports
        .iter()
        .filter_map(|p| st.ports.iter().find(|x| &x.id == p))
        .map(|p| {
            let mut v = json!({
                "port_state": p.status,
                "fixed_ips": p.fixed_ips.iter().map(|(s, ip)| json!({"subnet_id": s, "ip_address": ip})).collect::<Vec<_>>(),
                "port_id": p.id,
                "net_id": p.network_id,
                "mac_addr": p.mac_address,
            });
            if cx.mv >= 70 {
                v["tag"] = Value::Null;
            }
            v
        })
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        json!({"interfaceAttachments": list}),
    ))
}

// ---------------------------------------------------------------------------------------
// Availability zones

fn az_list_(_os: &Os, _req: &Req, st: &mut State, _cx: &Cx) -> R {
    let mut zones: Vec<(String, bool)> = Vec::new();
    for h in &st.hosts {
        if h.status != "enabled" {
            continue;
        }
        match zones.iter_mut().find(|(z, _)| z == &h.az) {
            Some(z) => z.1 |= h.state == "up",
            None => zones.push((h.az.clone(), h.state == "up")),
        }
    }
    let list: Vec<Value> = zones
        .into_iter()
        .map(|(z, up)| json!({"zoneName": z, "zoneState": {"available": up}, "hosts": null}))
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        json!({"availabilityZoneInfo": list}),
    ))
}

fn az_detail_(os: &Os, _req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-availability-zone:detail")?;
    let now = iso_plain_us(now_ms());
    let ctl = format!("{}-ctl-01", os.ctx.name);
    let mut out = vec![json!({
        "zoneName": "internal",
        "zoneState": {"available": true},
        "hosts": {ctl: {
            "nova-conductor": {"active": true, "available": true, "updated_at": now},
            "nova-scheduler": {"active": true, "available": true, "updated_at": now},
        }},
    })];
    let mut zones: Vec<String> = Vec::new();
    for h in &st.hosts {
        if !zones.contains(&h.az) {
            zones.push(h.az.clone());
        }
    }
    for z in zones {
        let mut hosts = serde_json::Map::new();
        let mut up = false;
        for h in st.hosts.iter().filter(|h| h.az == z) {
            up |= h.state == "up" && h.status == "enabled";
            hosts.insert(
                h.host.clone(),
                json!({"nova-compute": {"active": h.status == "enabled", "available": h.state == "up", "updated_at": now}}),
            );
        }
        out.push(json!({"zoneName": z, "zoneState": {"available": up}, "hosts": hosts}));
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"availabilityZoneInfo": out}),
    ))
}

// ---------------------------------------------------------------------------------------
// Hypervisors and compute services

struct Usage {
    vcpus_used: i64,
    memory_mb_used: i64,
    local_gb_used: i64,
    running_vms: i64,
}

fn usage(st: &State, h: &ComputeHost) -> Usage {
    let used = placement::used(st, &h.uuid);
    let reserved = st
        .rps
        .iter()
        .find(|r| r.uuid == h.uuid)
        .and_then(|r| r.inventories.get("MEMORY_MB"))
        .map(|i| i.reserved)
        .unwrap_or(0);
    Usage {
        vcpus_used: used.get("VCPU").copied().unwrap_or(0),
        memory_mb_used: reserved + used.get("MEMORY_MB").copied().unwrap_or(0),
        local_gb_used: used.get("DISK_GB").copied().unwrap_or(0),
        running_vms: st
            .servers
            .iter()
            .filter(|s| !s.deleted && s.host.as_deref() == Some(h.host.as_str()))
            .count() as i64,
    }
}

fn hyp_id(h: &ComputeHost, mv: u32) -> Value {
    if mv >= 53 { json!(h.uuid) } else { json!(h.id) }
}

fn cpu_info(h: &ComputeHost, mv: u32) -> Value {
    let info = json!({
        "arch": "x86_64",
        "model": h.cpu_model,
        "vendor": "AMD",
        "features": ["avx2", "sse4.2", "svm", "aes"],
        "topology": {"cores": h.vcpus / 4, "threads": 2, "sockets": 2},
    });
    if mv >= 28 {
        info
    } else {
        json!(info.to_string())
    }
}

fn uptime_text(h: &ComputeHost) -> String {
    let secs = ((now_ms() - h.started_ms) / 1000).max(0);
    let (d, hh, mm) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    format!(" 08:32:11 up {d} days, {hh:2}:{mm:02},  1 user,  load average: 0.20, 0.12, 0.14")
}

fn hyp_json(st: &State, h: &ComputeHost, mv: u32, detail: bool, servers: Option<bool>) -> Value {
    let mut v = json!({
        "hypervisor_hostname": h.hypervisor_hostname,
        "id": hyp_id(h, mv),
        "state": h.state,
        "status": h.status,
    });
    if detail {
        v["host_ip"] = json!(h.host_ip);
        v["hypervisor_type"] = json!("QEMU");
        v["hypervisor_version"] = json!(8_002_002);
        v["service"] = json!({
            "host": h.host,
            "id": if mv >= 53 { json!(h.service_uuid) } else { json!(h.service_id) },
            "disabled_reason": h.disabled_reason,
        });
        if mv >= 88 {
            v["uptime"] = json!(uptime_text(h));
        } else {
            let u = usage(st, h);
            v["cpu_info"] = cpu_info(h, mv);
            v["current_workload"] = json!(0);
            v["vcpus"] = json!(h.vcpus);
            v["vcpus_used"] = json!(u.vcpus_used);
            v["memory_mb"] = json!(h.memory_mb);
            v["memory_mb_used"] = json!(u.memory_mb_used);
            v["free_ram_mb"] = json!(h.memory_mb - u.memory_mb_used);
            v["local_gb"] = json!(h.local_gb);
            v["local_gb_used"] = json!(u.local_gb_used);
            v["free_disk_gb"] = json!(h.local_gb - u.local_gb_used);
            v["disk_available_least"] = json!(h.local_gb - u.local_gb_used);
            v["running_vms"] = json!(u.running_vms);
        }
    }
    if servers == Some(true) {
        let list: Vec<Value> = st
            .servers
            .iter()
            .filter(|s| !s.deleted && s.host.as_deref() == Some(h.host.as_str()))
            .map(|s| json!({"name": format!("instance-{:08x}", s.seq), "uuid": s.id}))
            .collect();
        if !list.is_empty() || mv >= 75 {
            v["servers"] = json!(list);
        }
    }
    v
}

fn list_hypervisors(os: &Os, req: &Req, st: &State, cx: &Cx, detail: bool) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:list")?;
    let with_servers = match req.q("with_servers") {
        Some(v) if cx.mv >= 53 => Some(parse_bool(v).ok_or_else(|| {
            bad(&format!(
                "Invalid input for query parameters with_servers. Value: {v}."
            ))
        })?),
        _ => None,
    };
    let pattern = req.q("hypervisor_hostname_pattern").filter(|_| cx.mv >= 53);
    if pattern.is_some() && (req.q("limit").is_some() || req.q("marker").is_some()) {
        return Err(bad(
            "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.",
        ));
    }
    let items: Vec<&ComputeHost> = st
        .hosts
        .iter()
        .filter(|h| pattern.is_none_or(|p| h.hypervisor_hostname.contains(p)))
        .collect();
    if let Some(p) = pattern
        && items.is_empty()
    {
        return Err(err(
            404,
            &format!("No hypervisor matching '{p}' could be found."),
        ));
    }
    let path = if detail {
        "os-hypervisors/detail"
    } else {
        "os-hypervisors"
    };
    let (page, next) = if cx.mv >= 33 {
        paginate(
            os,
            req,
            items,
            |h| {
                if cx.mv >= 53 {
                    h.uuid.clone()
                } else {
                    h.id.to_string()
                }
            },
            path,
            |m| bad(&format!("marker [{m}] not found")),
        )?
    } else {
        (items, None)
    };
    let mut body = json!({"hypervisors": page.iter().map(|h| hyp_json(st, h, cx.mv, detail, with_servers)).collect::<Vec<_>>()});
    if let Some(n) = next {
        body["hypervisors_links"] = n;
    }
    Ok(json_resp(StatusCode::OK, body))
}

fn hyp_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_hypervisors(os, req, st, cx, false)
}

fn hyp_detail_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_hypervisors(os, req, st, cx, true)
}

fn find_hyp<'a>(st: &'a State, id: &str, mv: u32) -> Result<&'a ComputeHost, Response> {
    if mv >= 53 && !is_uuid(id) {
        return Err(bad(&format!("Invalid uuid {id}")));
    }
    st.hosts
        .iter()
        .find(|h| {
            if mv >= 53 {
                h.uuid == id
            } else {
                h.id.to_string() == id
            }
        })
        .ok_or_else(|| {
            err(
                404,
                &format!("Hypervisor with ID '{id}' could not be found."),
            )
        })
}

fn hyp_show_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:show")?;
    let h = find_hyp(st, req.param("id"), cx.mv)?;
    let with_servers = req
        .q("with_servers")
        .filter(|_| cx.mv >= 53)
        .and_then(parse_bool);
    Ok(json_resp(
        StatusCode::OK,
        json!({"hypervisor": hyp_json(st, h, cx.mv, true, with_servers)}),
    ))
}

fn hyp_uptime_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:uptime")?;
    let h = find_hyp(st, req.param("id"), cx.mv)?;
    let mut v = hyp_json(st, h, cx.mv, false, None);
    v["uptime"] = json!(uptime_text(h));
    Ok(json_resp(StatusCode::OK, json!({"hypervisor": v})))
}

fn hyp_stats_(_os: &Os, _req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:statistics")?;
    let mut t = BTreeMap::<&str, i64>::new();
    for h in &st.hosts {
        let u = usage(st, h);
        for (k, v) in [
            ("count", 1),
            ("current_workload", 0),
            ("vcpus", h.vcpus),
            ("vcpus_used", u.vcpus_used),
            ("memory_mb", h.memory_mb),
            ("memory_mb_used", u.memory_mb_used),
            ("free_ram_mb", h.memory_mb - u.memory_mb_used),
            ("local_gb", h.local_gb),
            ("local_gb_used", u.local_gb_used),
            ("free_disk_gb", h.local_gb - u.local_gb_used),
            ("disk_available_least", h.local_gb - u.local_gb_used),
            ("running_vms", u.running_vms),
        ] {
            *t.entry(k).or_insert(0) += v;
        }
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"hypervisor_statistics": t}),
    ))
}

fn hyp_search_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:search")?;
    let p = req.param("id");
    let list: Vec<Value> = st
        .hosts
        .iter()
        .filter(|h| h.hypervisor_hostname.contains(p))
        .map(|h| hyp_json(st, h, cx.mv, false, None))
        .collect();
    if list.is_empty() {
        return Err(err(
            404,
            &format!("No hypervisor matching '{p}' could be found."),
        ));
    }
    Ok(json_resp(StatusCode::OK, json!({"hypervisors": list})))
}

fn hyp_servers_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:servers")?;
    let p = req.param("id");
    let list: Vec<Value> = st
        .hosts
        .iter()
        .filter(|h| h.hypervisor_hostname.contains(p))
        .map(|h| hyp_json(st, h, cx.mv, false, Some(true)))
        .collect();
    if list.is_empty() {
        return Err(err(
            404,
            &format!("No hypervisor matching '{p}' could be found."),
        ));
    }
    Ok(json_resp(StatusCode::OK, json!({"hypervisors": list})))
}

fn service_json(
    h: Option<&ComputeHost>,
    ctl: &str,
    binary: &str,
    id: (u64, String),
    mv: u32,
) -> Value {
    let now = iso_plain_us(now_ms());
    let (host, zone, status, state, reason) = match h {
        Some(h) => (
            h.host.clone(),
            h.az.clone(),
            h.status.clone(),
            h.state.clone(),
            h.disabled_reason.clone(),
        ),
        None => (
            ctl.to_string(),
            "internal".to_string(),
            "enabled".to_string(),
            "up".to_string(),
            None,
        ),
    };
    let mut v = json!({
        "id": if mv >= 53 { json!(id.1) } else { json!(id.0) },
        "binary": binary,
        "disabled_reason": reason,
        "host": host,
        "state": state,
        "status": status,
        "updated_at": now,
        "zone": zone,
    });
    if mv >= 11 {
        v["forced_down"] = json!(false);
    }
    v
}

fn services_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-services:list")?;
    let ctl = format!("{}-ctl-01", os.ctx.name);
    let mut list = vec![
        service_json(
            None,
            &ctl,
            "nova-scheduler",
            (1, uuid_for(&ctl, "scheduler")),
            cx.mv,
        ),
        service_json(
            None,
            &ctl,
            "nova-conductor",
            (2, uuid_for(&ctl, "conductor")),
            cx.mv,
        ),
    ];
    for h in &st.hosts {
        list.push(service_json(
            Some(h),
            &ctl,
            "nova-compute",
            (h.service_id, h.service_uuid.clone()),
            cx.mv,
        ));
    }
    list.retain(|s| {
        req.q("host").is_none_or(|h| s["host"] == h)
            && req.q("binary").is_none_or(|b| s["binary"] == b)
    });
    Ok(json_resp(StatusCode::OK, json!({"services": list})))
}

fn uuid_for(host: &str, what: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{host}/{what}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

fn service_update_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-services:update")?;
    let body = req.json().unwrap_or(Value::Null);
    let id = req.param("id");
    let idx = st
        .hosts
        .iter()
        .position(|h| h.service_uuid == id)
        .ok_or_else(|| err(404, &format!("Service {id} could not be found.")))?;
    if let Some(s) = body.get("status").and_then(Value::as_str) {
        if s != "enabled" && s != "disabled" {
            return Err(invalid(
                "status",
                &body["status"],
                "is not one of ['enabled', 'disabled']",
            ));
        }
        st.hosts[idx].status = s.to_string();
        st.hosts[idx].disabled_reason = if s == "disabled" {
            body.get("disabled_reason")
                .and_then(Value::as_str)
                .map(str::to_string)
        } else {
            None
        };
    }
    if let Some(f) = body.get("forced_down").and_then(Value::as_bool) {
        st.hosts[idx].state = if f { "down".into() } else { "up".into() };
    }
    let ctl = format!("{}-ctl-01", os.ctx.name);
    let h = &st.hosts[idx];
    Ok(json_resp(
        StatusCode::OK,
        json!({"service": service_json(Some(h), &ctl, "nova-compute", (h.service_id, h.service_uuid.clone()), cx.mv)}),
    ))
}

// ---------------------------------------------------------------------------------------
// Host aggregates

fn agg_json(a: &Aggregate, mv: u32, full: bool) -> Value {
    let mut v = json!({
        "availability_zone": a.metadata.get("availability_zone"),
        "created_at": iso_plain_us(a.created_ms),
        "deleted": false,
        "deleted_at": null,
        "id": a.id,
        "name": a.name,
        "updated_at": a.updated_ms.map(iso_plain_us),
    });
    if full {
        v["hosts"] = json!(a.hosts);
        v["metadata"] = json!(a.metadata);
    }
    if mv >= 41 {
        v["uuid"] = json!(a.uuid);
    }
    v
}

/// Hosts take the AZ of the aggregate that names one, `nova` otherwise.
fn recompute_azs(st: &mut State) {
    for h in st.hosts.iter_mut() {
        h.az = st
            .aggregates
            .iter()
            .find(|a| a.hosts.contains(&h.host) && a.metadata.contains_key("availability_zone"))
            .and_then(|a| a.metadata.get("availability_zone").cloned())
            .unwrap_or_else(|| "nova".into());
    }
}

fn agg_index(st: &State, id: &str) -> Result<usize, Response> {
    st.aggregates
        .iter()
        .position(|a| a.id.to_string() == id)
        .ok_or_else(|| err(404, &format!("Aggregate {id} could not be found.")))
}

fn aggs_list_(_os: &Os, _req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:index")?;
    let list: Vec<Value> = st
        .aggregates
        .iter()
        .map(|a| agg_json(a, cx.mv, true))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"aggregates": list})))
}

fn agg_create_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:create")?;
    let body = req.json().unwrap_or(Value::Null);
    let b = body
        .get("aggregate")
        .filter(|a| a.is_object())
        .ok_or_else(|| invalid("request body", &body, "'aggregate' is a required property"))?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty() && n.len() <= 255)
        .ok_or_else(|| invalid("aggregate", b, "'name' is a required property"))?
        .to_string();
    if st.aggregates.iter().any(|a| a.name == name) {
        return Err(err(409, &format!("Aggregate {name} already exists.")));
    }
    let mut metadata = BTreeMap::new();
    if let Some(az) = b.get("availability_zone").and_then(Value::as_str) {
        metadata.insert("availability_zone".to_string(), az.to_string());
    }
    st.next_aggregate += 1;
    let a = Aggregate {
        id: st.next_aggregate,
        uuid: os.uuid(),
        name,
        hosts: vec![],
        metadata,
        created_ms: now_ms(),
        updated_ms: None,
    };
    let v = agg_json(&a, cx.mv, false);
    st.aggregates.push(a);
    Ok(json_resp(StatusCode::OK, json!({"aggregate": v})))
}

fn agg_get_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:show")?;
    let i = agg_index(st, req.param("id"))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"aggregate": agg_json(&st.aggregates[i], cx.mv, true)}),
    ))
}

fn agg_update_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:update")?;
    let body = req.json().unwrap_or(Value::Null);
    let b = body
        .get("aggregate")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("request body", &body, "'aggregate' is a required property"))?
        .clone();
    let i = agg_index(st, req.param("id"))?;
    if let Some(n) = b.get("name").and_then(Value::as_str) {
        if st
            .aggregates
            .iter()
            .enumerate()
            .any(|(j, a)| j != i && a.name == n)
        {
            return Err(err(409, &format!("Aggregate {n} already exists.")));
        }
        st.aggregates[i].name = n.to_string();
    }
    match b.get("availability_zone") {
        Some(Value::String(az)) => {
            st.aggregates[i]
                .metadata
                .insert("availability_zone".into(), az.clone());
        }
        Some(Value::Null) => {
            st.aggregates[i].metadata.remove("availability_zone");
        }
        _ => {}
    }
    st.aggregates[i].updated_ms = Some(now_ms());
    recompute_azs(st);
    Ok(json_resp(
        StatusCode::OK,
        json!({"aggregate": agg_json(&st.aggregates[i], cx.mv, true)}),
    ))
}

fn agg_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:delete")?;
    let i = agg_index(st, req.param("id"))?;
    if !st.aggregates[i].hosts.is_empty() {
        return Err(bad(&format!(
            "Cannot delete aggregate {}. Reason: Host aggregate is not empty.",
            st.aggregates[i].id
        )));
    }
    st.aggregates.remove(i);
    Ok(empty(StatusCode::OK))
}

fn agg_action_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-aggregates:add_host")?;
    let body = req.json().unwrap_or(Value::Null);
    let i = agg_index(st, req.param("id"))?;
    let id = st.aggregates[i].id;
    if let Some(h) = body.pointer("/add_host/host").and_then(Value::as_str) {
        if !st.hosts.iter().any(|x| x.host == h) {
            return Err(err(404, &format!("Compute host {h} could not be found.")));
        }
        if st.aggregates[i].hosts.iter().any(|x| x == h) {
            return Err(err(409, &format!("Aggregate {id} already has host {h}.")));
        }
        if let Some(az) = st.aggregates[i].metadata.get("availability_zone") {
            let other = st
                .aggregates
                .iter()
                .filter(|a| a.id != id && a.hosts.iter().any(|x| x == h))
                .filter_map(|a| a.metadata.get("availability_zone"))
                .find(|z| *z != az);
            if let Some(z) = other {
                return Err(err(
                    409,
                    &format!(
                        "Cannot add host to aggregate {id}. Reason: One or more hosts already in availability zone(s) ['{z}']."
                    ),
                ));
            }
        }
        st.aggregates[i].hosts.push(h.to_string());
    } else if let Some(h) = body.pointer("/remove_host/host").and_then(Value::as_str) {
        let before = st.aggregates[i].hosts.len();
        st.aggregates[i].hosts.retain(|x| x != h);
        if before == st.aggregates[i].hosts.len() {
            return Err(err(
                404,
                &format!("Cannot remove host {h} in aggregate {id}"),
            ));
        }
    } else if let Some(m) = body
        .pointer("/set_metadata/metadata")
        .and_then(Value::as_object)
    {
        for (k, v) in m {
            match v {
                Value::Null => {
                    st.aggregates[i].metadata.remove(k);
                }
                v => {
                    let s = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    st.aggregates[i].metadata.insert(k.clone(), s);
                }
            }
        }
        st.aggregates[i].updated_ms = Some(now_ms());
    } else {
        return Err(invalid(
            "request body",
            &body,
            "is not valid under any of the given schemas",
        ));
    }
    recompute_azs(st);
    Ok(json_resp(
        StatusCode::OK,
        json!({"aggregate": agg_json(&st.aggregates[i], cx.mv, true)}),
    ))
}

fn agg_images_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("compute:aggregates:images")?;
    agg_index(st, req.param("id"))?;
    let body = req.json().unwrap_or(Value::Null);
    let list = body
        .get("cache")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("request body", &body, "'cache' is a required property"))?;
    for i in list {
        let id = i.get("id").and_then(Value::as_str).unwrap_or("");
        if !st.images.iter().any(|x| x.id == id) {
            return Err(bad(&format!("Image {id} not found")));
        }
    }
    Ok(empty(StatusCode::ACCEPTED))
}

// ---------------------------------------------------------------------------------------
// Quotas and limits

pub(crate) fn quota_limits(st: &State, project: &str) -> BTreeMap<String, i64> {
    let mut q = super::seed::nova_default_quotas();
    if let Some(over) = st.nova_quotas.get(project) {
        q.extend(over.clone());
    }
    q
}

/// Quota keys a microversion shows.
fn quota_keys(mv: u32) -> Vec<&'static str> {
    let mut keys = vec![
        "cores",
        "instances",
        "key_pairs",
        "metadata_items",
        "ram",
        "server_groups",
        "server_group_members",
    ];
    if mv < 57 {
        keys.extend([
            "injected_file_content_bytes",
            "injected_file_path_bytes",
            "injected_files",
        ]);
    }
    if mv < 36 {
        keys.extend([
            "fixed_ips",
            "floating_ips",
            "security_group_rules",
            "security_groups",
        ]);
    }
    keys
}

fn quota_in_use(st: &State, project: &str, user: Option<&str>) -> BTreeMap<String, i64> {
    let mut u: BTreeMap<String, i64> = quota_usage(st, project)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let kp_user = user.map(str::to_string);
    let kps = st
        .keypairs
        .iter()
        .filter(|k| kp_user.as_ref().is_none_or(|u| &k.user_id == u))
        .count() as i64;
    u.insert("key_pairs".into(), if user.is_some() { kps } else { 0 });
    u
}

fn quota_set(
    st: &State,
    project: &str,
    mv: u32,
    with_id: bool,
    detail: bool,
    defaults: bool,
    user: Option<&str>,
) -> Value {
    let limits = if defaults {
        super::seed::nova_default_quotas()
    } else {
        quota_limits(st, project)
    };
    let used = quota_in_use(st, project, user);
    let mut m = serde_json::Map::new();
    if with_id {
        m.insert("id".into(), json!(project));
    }
    for k in quota_keys(mv) {
        let limit = limits.get(k).copied().unwrap_or(-1);
        if detail {
            m.insert(
                k.into(),
                json!({"in_use": used.get(k).copied().unwrap_or(0), "limit": limit, "reserved": 0}),
            );
        } else {
            m.insert(k.into(), json!(limit));
        }
    }
    Value::Object(m)
}

fn quota_target(req: &Req, cx: &Cx) -> Result<String, Response> {
    let id = req.param("id").to_string();
    if id != cx.caller.project() {
        cx.require_admin("os_compute_api:os-quota-sets:show")?;
    }
    Ok(id)
}

fn quota_show_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let id = quota_target(req, cx)?;
    let detail = req.q("usage").and_then(parse_bool).unwrap_or(false);
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota_set": quota_set(st, &id, cx.mv, true, detail, false, req.q("user_id"))}),
    ))
}

fn quota_detail_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let id = quota_target(req, cx)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota_set": quota_set(st, &id, cx.mv, true, true, false, req.q("user_id"))}),
    ))
}

fn quota_defaults_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let id = req.param("id").to_string();
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota_set": quota_set(st, &id, cx.mv, true, false, true, None)}),
    ))
}

fn quota_update_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-quota-sets:update")?;
    let body = req.json().unwrap_or(Value::Null);
    let q = body
        .get("quota_set")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("request body", &body, "'quota_set' is a required property"))?
        .clone();
    let id = req.param("id").to_string();
    let keys = quota_keys(cx.mv);
    let force = q.get("force").and_then(as_bool).unwrap_or(false);
    let used = quota_in_use(st, &id, req.q("user_id"));
    let mut updates = BTreeMap::new();
    for (k, v) in &q {
        if k == "force" {
            continue;
        }
        if !keys.contains(&k.as_str()) {
            return Err(invalid(
                "quota_set",
                &json!(q),
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
        let n = as_int(v)
            .ok_or_else(|| invalid(k, v, &format!("{v} is not of type 'integer', 'string'")))?;
        if n < -1 {
            return Err(invalid(
                k,
                v,
                &format!("{n} is less than the minimum of -1"),
            ));
        }
        let in_use = used.get(k).copied().unwrap_or(0);
        if !force && n >= 0 && n < in_use {
            return Err(bad(&format!(
                "Quota limit {n} for {k} must be greater than or equal to already used and reserved {in_use}."
            )));
        }
        updates.insert(k.clone(), n);
    }
    st.nova_quotas
        .entry(id.clone())
        .or_default()
        .extend(updates);
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota_set": quota_set(st, &id, cx.mv, false, false, false, req.q("user_id"))}),
    ))
}

fn quota_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-quota-sets:delete")?;
    st.nova_quotas.remove(req.param("id"));
    Ok(empty(StatusCode::ACCEPTED))
}

fn limits_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let project = match req.q("tenant_id") {
        Some(t) if t != cx.caller.project() => {
            cx.require_admin("os_compute_api:limits:other_project")?;
            t.to_string()
        }
        _ => cx.caller.project().to_string(),
    };
    let q = quota_limits(st, &project);
    let used = quota_in_use(st, &project, None);
    let g = |k: &str| q.get(k).copied().unwrap_or(-1);
    let u = |k: &str| used.get(k).copied().unwrap_or(0);
    let mut a = serde_json::Map::new();
    let mut put = |k: &str, v: i64| {
        a.insert(k.to_string(), json!(v));
    };
    put("maxServerMeta", g("metadata_items"));
    put("maxTotalCores", g("cores"));
    put("maxTotalInstances", g("instances"));
    put("maxTotalKeypairs", g("key_pairs"));
    put("maxTotalRAMSize", g("ram"));
    put("maxServerGroups", g("server_groups"));
    put("maxServerGroupMembers", g("server_group_members"));
    put("totalCoresUsed", u("cores"));
    put("totalInstancesUsed", u("instances"));
    put("totalRAMUsed", u("ram"));
    put("totalServerGroupsUsed", 0);
    if cx.mv < 39 {
        put("maxImageMeta", g("metadata_items"));
    }
    if cx.mv < 57 {
        put("maxPersonality", g("injected_files"));
        put("maxPersonalitySize", g("injected_file_content_bytes"));
    }
    if cx.mv < 36 {
        put("maxSecurityGroupRules", g("security_group_rules"));
        put("maxSecurityGroups", g("security_groups"));
        put("maxTotalFloatingIps", g("floating_ips"));
        put("totalSecurityGroupsUsed", 0);
        put("totalFloatingIpsUsed", 0);
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"limits": {"absolute": a, "rate": []}}),
    ))
}
