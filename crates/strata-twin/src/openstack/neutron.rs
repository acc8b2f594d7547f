//! Neutron v2.0: networks (with provider attributes and segment conflicts), subnets
//! (address pools, DHCP ports), ports (created for servers by Nova), security groups,
//! quotas, tags, extensions; filtering, sorting, `fields` and marker/limit pagination.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::model::*;
use super::net::{Cidr, parse_ip};
use super::*;

pub(crate) fn routes(r: Routes) -> Routes {
    let mut r = r
        .add("/network", &[(GET, versions)])
        .add("/network/", &[(GET, versions)])
        .add("/network/v2.0", &[(GET, version)])
        .add("/network/v2.0/", &[(GET, version)])
        .add("/network/v2.0/extensions", &[(GET, extensions)])
        .add("/network/v2.0/extensions/{alias}", &[(GET, extension)])
        .add(
            "/network/v2.0/networks",
            &[(GET, networks_list), (POST, network_create)],
        )
        .add(
            "/network/v2.0/networks/{id}",
            &[
                (GET, network_get),
                (PUT, network_update),
                (DELETE, network_delete),
            ],
        )
        .add(
            "/network/v2.0/subnets",
            &[(GET, subnets_list), (POST, subnet_create)],
        )
        .add(
            "/network/v2.0/subnets/{id}",
            &[
                (GET, subnet_get),
                (PUT, subnet_update),
                (DELETE, subnet_delete),
            ],
        )
        .add(
            "/network/v2.0/ports",
            &[(GET, ports_list), (POST, port_create)],
        )
        .add(
            "/network/v2.0/ports/{id}",
            &[(GET, port_get), (PUT, port_update), (DELETE, port_delete)],
        )
        .add(
            "/network/v2.0/security-groups",
            &[(GET, sgs_list), (POST, sg_create)],
        )
        .add(
            "/network/v2.0/security-groups/{id}",
            &[(GET, sg_get), (DELETE, sg_delete)],
        )
        .add(
            "/network/v2.0/security-group-rules",
            &[(GET, sg_rules_list)],
        )
        .add("/network/v2.0/availability_zones", &[(GET, azs_list)])
        .add("/network/v2.0/quotas", &[(GET, quotas_list)])
        .add(
            "/network/v2.0/quotas/{id}",
            &[(GET, quota_get), (PUT, quota_put), (DELETE, quota_delete)],
        )
        .add("/network/v2.0/quotas/{id}/details", &[(GET, quota_details)])
        .add("/network/v2.0/quotas/{id}/default", &[(GET, quota_default)]);
    for coll in ["networks", "subnets", "ports"] {
        r = r
            .add(
                &format!("/network/v2.0/{coll}/{{id}}/tags"),
                &[(GET, tags_get), (PUT, tags_put), (DELETE, tags_clear)],
            )
            .add(
                &format!("/network/v2.0/{coll}/{{id}}/tags/{{tag}}"),
                &[(GET, tag_check), (PUT, tag_add), (DELETE, tag_delete)],
            );
    }
    r
}

// ---------------------------------------------------------------------------------------
// Errors and the request wrapper

pub(crate) fn nerr(status: u16, kind: &str, message: &str) -> Response {
    json_resp(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}),
    )
}

fn bad(message: &str) -> Response {
    nerr(400, "HTTPBadRequest", message)
}

fn invalid_input(message: &str) -> Response {
    nerr(
        400,
        "InvalidInput",
        &format!("Invalid input for operation: {message}"),
    )
}

fn not_found(kind: &str, id: &str) -> Response {
    let t = match kind {
        "network" => "NetworkNotFound",
        "subnet" => "SubnetNotFound",
        "port" => "PortNotFound",
        "security_group" => "SecurityGroupNotFound",
        _ => "HTTPNotFound",
    };
    let what = match kind {
        "security_group" => "Security group".to_string(),
        k => {
            let mut c = k.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    };
    nerr(404, t, &format!("{what} {id} could not be found."))
}

fn forbidden(rule: &str) -> Response {
    nerr(
        403,
        "HTTPForbidden",
        &format!("(rule:{rule}) is disallowed by policy"),
    )
}

type Inner = fn(&Os, &Req, &mut State, &Caller) -> R;

fn handle(os: &Os, req: &Req, f: Inner) -> R {
    let mut st = os.st.lock();
    let c = os.caller(&st, req)?;
    if c.project_id.is_none() {
        return Err(forbidden("context_is_project_scoped"));
    }
    os.tick(&mut st);
    f(os, req, &mut st, &c)
}

macro_rules! handlers {
    ($($name:ident => $inner:ident;)*) => {
        $(fn $name(os: &Os, req: &Req) -> R { handle(os, req, $inner) })*
    };
}

handlers! {
    extensions => extensions_;
    extension => extension_;
    networks_list => networks_list_;
    network_create => network_create_;
    network_get => network_get_;
    network_update => network_update_;
    network_delete => network_delete_;
    subnets_list => subnets_list_;
    subnet_create => subnet_create_;
    subnet_get => subnet_get_;
    subnet_update => subnet_update_;
    subnet_delete => subnet_delete_;
    ports_list => ports_list_;
    port_create => port_create_;
    port_get => port_get_;
    port_update => port_update_;
    port_delete => port_delete_;
    sgs_list => sgs_list_;
    sg_create => sg_create_;
    sg_get => sg_get_;
    sg_delete => sg_delete_;
    sg_rules_list => sg_rules_list_;
    azs_list => azs_list_;
    quotas_list => quotas_list_;
    quota_get => quota_get_;
    quota_put => quota_put_;
    quota_delete => quota_delete_;
    quota_details => quota_details_;
    quota_default => quota_default_;
    tags_get => tags_get_;
    tags_put => tags_put_;
    tags_clear => tags_clear_;
    tag_check => tag_check_;
    tag_add => tag_add_;
    tag_delete => tag_delete_;
}

fn body_of(req: &Req, key: &str) -> Result<Value, Response> {
    let b = req.json().ok_or_else(|| bad("Malformed request body"))?;
    b.get(key)
        .filter(|v| v.is_object())
        .cloned()
        .ok_or_else(|| bad(&format!("Resource body required: '{key}'")))
}

// ---------------------------------------------------------------------------------------
// Versions, extensions

fn versions(os: &Os, _req: &Req) -> R {
    Ok(json_resp(
        StatusCode::OK,
        json!({"versions": [{"status": "CURRENT", "id": "v2.0", "links": [{"href": format!("{}/v2.0/", os.ctx.urls.network), "rel": "self"}]}]}),
    ))
}

fn version(os: &Os, _req: &Req) -> R {
    let res: Vec<Value> = [("subnet", "subnets"), ("network", "networks"), ("port", "ports"), ("security_group", "security-groups"), ("quota", "quotas")]
        .iter()
        .map(|(n, c)| json!({"links": [{"href": format!("{}/v2.0/{c}", os.ctx.urls.network), "rel": "self"}], "name": n, "collection": c}))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"resources": res})))
}

const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("agent", "agent", "The agent management extension."),
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Provides allowed address pairs",
    ),
    (
        "availability_zone",
        "Availability Zone",
        "The availability zone extension.",
    ),
    (
        "binding",
        "Port Binding",
        "Expose port bindings of a virtual port to external application",
    ),
    (
        "default-subnetpools",
        "Default Subnetpools",
        "Provides ability to mark and use a subnetpool as the default.",
    ),
    (
        "dhcp_agent_scheduler",
        "DHCP Agent Scheduler",
        "Schedule networks among dhcp agents",
    ),
    (
        "external-net",
        "Neutron external network",
        "Adds external network attribute to network resource.",
    ),
    (
        "extra_dhcp_opt",
        "Neutron Extra DHCP options",
        "Extra options configuration for DHCP.",
    ),
    (
        "filter-validation",
        "Filter parameters validation",
        "Provides validation on filter parameters.",
    ),
    (
        "multi-provider",
        "Multi Provider Network",
        "Expose mapping of virtual networks to multiple physical networks",
    ),
    (
        "net-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
    ),
    (
        "network_availability_zone",
        "Network Availability Zone",
        "Availability zone support for network.",
    ),
    (
        "pagination",
        "Pagination support",
        "Extension that indicates that pagination is enabled.",
    ),
    ("port-security", "Port Security", "Provides port security"),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
    ),
    (
        "provider",
        "Provider Network",
        "Expose mapping of virtual networks to physical networks",
    ),
    (
        "quotas",
        "Quota management support",
        "Expose functions for quotas management per project",
    ),
    (
        "quota_details",
        "Quota details management support",
        "Expose functions for quotas usage statistics per project",
    ),
    (
        "security-group",
        "security-group",
        "The security groups extension.",
    ),
    (
        "sorting",
        "Sorting support",
        "Extension that indicates that sorting is enabled.",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip",
        "Enables to set tag on resources with standard attribute.",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.",
    ),
    (
        "subnet_allocation",
        "Subnet Allocation",
        "Enables allocation of subnets from a subnet pool",
    ),
    (
        "vlan-transparent",
        "Vlan Transparent",
        "Provides Vlan Transparent Networks",
    ),
];

fn extension_json(e: &(&str, &str, &str)) -> Value {
    json!({"alias": e.0, "name": e.1, "description": e.2, "updated": "2013-01-01T10:00:00-00:00", "links": []})
}

fn extensions_(_os: &Os, _req: &Req, _st: &mut State, _c: &Caller) -> R {
    Ok(json_resp(
        StatusCode::OK,
        json!({"extensions": EXTENSIONS.iter().map(extension_json).collect::<Vec<_>>()}),
    ))
}

fn extension_(_os: &Os, req: &Req, _st: &mut State, _c: &Caller) -> R {
    let alias = req.param("alias");
    let e = EXTENSIONS.iter().find(|e| e.0 == alias).ok_or_else(|| {
        nerr(
            404,
            "HTTPNotFound",
            &format!("Extension with alias {alias} does not exist"),
        )
    })?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"extension": extension_json(e)}),
    ))
}

// ---------------------------------------------------------------------------------------
// Listing: filters, sorting, fields, pagination over rendered objects

const RESERVED: &[&str] = &[
    "fields",
    "limit",
    "marker",
    "page_reverse",
    "sort_key",
    "sort_dir",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
];

fn value_matches(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => parse_bool(want) == Some(*b),
        Value::Number(n) => n.to_string() == want,
        Value::Null => {
            want.is_empty()
                || want.eq_ignore_ascii_case("none")
                || want.eq_ignore_ascii_case("null")
        }
        Value::Array(a) => a.iter().any(|x| value_matches(x, want)),
        Value::Object(_) => false,
    }
}

/// Filter, sort, page and trim rendered objects the way Neutron's API layer does.
fn list_response(os: &Os, req: &Req, coll: &str, items: Vec<Value>) -> R {
    let mut items = items;
    // Attribute filters (repeated keys OR together).
    let mut filters: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in &req.query {
        if !RESERVED.contains(&k.as_str()) {
            filters.entry(k.as_str()).or_default().push(v.as_str());
        }
    }
    if let Some(first) = items.first() {
        for k in filters.keys() {
            let known = first.get(*k).is_some()
                || *k == "fixed_ips"
                || *k == "tenant_id"
                || *k == "project_id";
            if !known {
                return Err(bad(&format!("[{k}] is invalid attribute for filtering")));
            }
        }
    }
    items.retain(|o| {
        filters.iter().all(|(k, wants)| {
            if *k == "fixed_ips" {
                let ips = o
                    .get("fixed_ips")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                return wants.iter().any(|w| {
                    let (fk, fv) = w.split_once('=').unwrap_or(("ip_address", w));
                    ips.iter()
                        .any(|ip| ip.get(fk).and_then(Value::as_str) == Some(fv))
                });
            }
            o.get(*k)
                .is_some_and(|v| wants.iter().any(|w| value_matches(v, w)))
        })
    });
    let tagset = |k: &str| -> Vec<String> {
        req.q(k)
            .map(|t| t.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let (tags, tags_any, not_tags, not_tags_any) = (
        tagset("tags"),
        tagset("tags-any"),
        tagset("not-tags"),
        tagset("not-tags-any"),
    );
    items.retain(|o| {
        let have: Vec<&str> = o
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        tags.iter().all(|t| have.contains(&t.as_str()))
            && (tags_any.is_empty() || tags_any.iter().any(|t| have.contains(&t.as_str())))
            && (not_tags.is_empty() || !not_tags.iter().all(|t| have.contains(&t.as_str())))
            && not_tags_any.iter().all(|t| !have.contains(&t.as_str()))
    });
    // Sorting.
    let keys = req.q_all("sort_key");
    let dirs = req.q_all("sort_dir");
    if !keys.is_empty() {
        if let Some(first) = items.first() {
            for k in &keys {
                if first.get(*k).is_none() {
                    return Err(bad(&format!("{k} is an invalid attribute for sort_keys")));
                }
            }
        }
        items.sort_by(|a, b| {
            for (i, k) in keys.iter().enumerate() {
                let o = cmp_json(&a[*k], &b[*k]);
                let o = if dirs.get(i).copied() == Some("desc") {
                    o.reverse()
                } else {
                    o
                };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    // Pagination.
    let limit = match req.q("limit") {
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            bad(&format!(
                "Bad limit request: Limit must be an integer 0 or greater and not '{l}'."
            ))
        })?),
        None => None,
    }
    .filter(|l| *l > 0);
    let reverse = req.q("page_reverse").and_then(parse_bool).unwrap_or(false);
    let marker = req.q("marker");
    let id_of = |o: &Value| {
        o.get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut links = Vec::new();
    if let Some(m) = marker {
        let pos = items
            .iter()
            .position(|o| id_of(o) == m)
            .ok_or_else(|| not_found(coll.trim_end_matches('s'), m))?;
        if reverse {
            items.truncate(pos);
        } else {
            items.drain(..=pos);
        }
    }
    if let Some(l) = limit {
        let more = items.len() > l;
        if reverse {
            let start = items.len().saturating_sub(l);
            items.drain(..start);
        } else {
            items.truncate(l);
        }
        let base = format!("{}/v2.0/{coll}", os.ctx.urls.network);
        if let (true, Some(last)) = (more, items.last()) {
            let q = query_with(
                &req.query,
                &[("limit", l.to_string()), ("marker", id_of(last))],
            );
            links.push(json!({"href": format!("{base}?{q}"), "rel": "next"}));
        }
        if let (true, Some(first)) = (marker.is_some(), items.first()) {
            let q = query_with(
                &req.query,
                &[
                    ("limit", l.to_string()),
                    ("marker", id_of(first)),
                    ("page_reverse", "True".to_string()),
                ],
            );
            links.push(json!({"href": format!("{base}?{q}"), "rel": "previous"}));
        }
    }
    let fields = req.q_all("fields");
    if !fields.is_empty() {
        for o in items.iter_mut() {
            if let Some(m) = o.as_object_mut() {
                m.retain(|k, _| fields.contains(&k.as_str()));
            }
        }
    }
    let mut body = json!({coll: items});
    if !links.is_empty() {
        body[format!("{coll}_links")] = json!(links);
    }
    Ok(json_resp(StatusCode::OK, body))
}

fn cmp_json(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn show_fields(req: &Req, mut v: Value) -> Value {
    let fields = req.q_all("fields");
    if !fields.is_empty()
        && let Some(m) = v.as_object_mut()
    {
        m.retain(|k, _| fields.contains(&k.as_str()));
    }
    v
}

// ---------------------------------------------------------------------------------------
// Networks

fn network_json(st: &State, n: &Network, admin: bool) -> Value {
    let subnets: Vec<&String> = st
        .subnets
        .iter()
        .filter(|s| s.network_id == n.id)
        .map(|s| &s.id)
        .collect();
    let mut v = json!({
        "id": n.id,
        "name": n.name,
        "tenant_id": n.project_id,
        "project_id": n.project_id,
        "admin_state_up": n.admin_state_up,
        "mtu": n.mtu,
        "status": n.status,
        "subnets": subnets,
        "shared": n.shared,
        "availability_zone_hints": n.availability_zone_hints,
        "availability_zones": ["nova"],
        "ipv4_address_scope": null,
        "ipv6_address_scope": null,
        "router:external": n.external,
        "description": n.description,
        "port_security_enabled": n.port_security_enabled,
        "dns_domain": n.dns_domain,
        "qos_policy_id": n.qos_policy_id,
        "is_default": n.is_default,
        "l2_adjacency": true,
        "vlan_transparent": n.vlan_transparent,
        "tags": n.tags,
        "created_at": iso(n.created_ms),
        "updated_at": iso(n.updated_ms),
        "revision_number": n.revision,
    });
    if admin {
        v["provider:network_type"] = json!(n.network_type);
        v["provider:physical_network"] = json!(n.physical_network);
        v["provider:segmentation_id"] = json!(n.segmentation_id);
    }
    v
}

fn net_visible(n: &Network, c: &Caller) -> bool {
    c.is_admin() || n.project_id == c.project() || n.shared || n.external
}

fn find_net(st: &State, id: &str, c: &Caller) -> Result<usize, Response> {
    st.networks
        .iter()
        .position(|n| n.id == id && net_visible(n, c))
        .ok_or_else(|| not_found("network", id))
}

fn networks_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let items: Vec<Value> = st
        .networks
        .iter()
        .filter(|n| net_visible(n, c))
        .map(|n| network_json(st, n, c.is_admin()))
        .collect();
    list_response(os, req, "networks", items)
}

fn network_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_net(st, req.param("id"), c)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"network": show_fields(req, network_json(st, &st.networks[idx], c.is_admin()))}),
    ))
}

fn quota_of(st: &State, project: &str, key: &str) -> i64 {
    st.net_quotas
        .get(project)
        .and_then(|q| q.get(key))
        .copied()
        .unwrap_or_else(|| {
            super::seed::neutron_default_quotas()
                .get(key)
                .copied()
                .unwrap_or(-1)
        })
}

fn usage_of(st: &State, project: &str) -> BTreeMap<String, i64> {
    let mut u = BTreeMap::new();
    u.insert(
        "network".to_string(),
        st.networks
            .iter()
            .filter(|n| n.project_id == project)
            .count() as i64,
    );
    u.insert(
        "subnet".to_string(),
        st.subnets
            .iter()
            .filter(|n| n.project_id == project)
            .count() as i64,
    );
    u.insert(
        "port".to_string(),
        st.ports.iter().filter(|n| n.project_id == project).count() as i64,
    );
    u.insert(
        "security_group".to_string(),
        st.security_groups
            .iter()
            .filter(|n| n.project_id == project)
            .count() as i64,
    );
    u.insert(
        "security_group_rule".to_string(),
        st.security_groups
            .iter()
            .filter(|n| n.project_id == project)
            .map(|g| g.rules.len() as i64)
            .sum(),
    );
    for k in ["router", "floatingip", "rbac_policy", "subnetpool"] {
        u.insert(k.to_string(), 0);
    }
    u
}

fn check_quota(st: &State, project: &str, key: &str, adding: i64) -> Result<(), Response> {
    let limit = quota_of(st, project, key);
    let used = usage_of(st, project).get(key).copied().unwrap_or(0);
    if limit >= 0 && used + adding > limit {
        return Err(nerr(
            409,
            "OverQuota",
            &format!("Quota exceeded for resources: ['{key}']."),
        ));
    }
    Ok(())
}

/// Validated provider attributes: (type, physnet, segmentation id).
type Provider = (String, Option<String>, Option<i64>);

fn provider_attrs(
    st: &State,
    b: &Value,
    exclude: Option<&str>,
) -> Result<Option<Provider>, Response> {
    let get = |k: &str| b.get(k).filter(|v| !v.is_null());
    let ty = get("provider:network_type").map(|v| v.as_str().unwrap_or("").to_string());
    let phys = get("provider:physical_network")
        .and_then(Value::as_str)
        .map(str::to_string);
    let seg = match get("provider:segmentation_id") {
        Some(v) => Some(
            as_int(v)
                .ok_or_else(|| invalid_input(&format!("segmentation_id {v} is not an integer")))?,
        ),
        None => None,
    };
    if ty.is_none() && phys.is_none() && seg.is_none() {
        return Ok(None);
    }
    let ty = ty.ok_or_else(|| invalid_input("network_type required"))?;
    let taken = |pred: &dyn Fn(&Network) -> bool| {
        st.networks
            .iter()
            .any(|n| Some(n.id.as_str()) != exclude && pred(n))
    };
    match ty.as_str() {
        "flat" => {
            let p = phys.ok_or_else(|| {
                invalid_input("physical_network required for flat provider network")
            })?;
            if seg.is_some() {
                return Err(invalid_input(
                    "segmentation_id specified for flat provider network",
                ));
            }
            if taken(&|n| {
                n.network_type == "flat" && n.physical_network.as_deref() == Some(p.as_str())
            }) {
                return Err(nerr(
                    409,
                    "FlatNetworkInUse",
                    &format!("Unable to create the flat network. Physical network {p} is in use."),
                ));
            }
            Ok(Some((ty, Some(p), None)))
        }
        "vlan" => {
            let (p, s) = match (phys, seg) {
                (Some(p), Some(s)) => (p, s),
                (None, Some(_)) => {
                    return Err(invalid_input(
                        "segmentation_id requires physical_network for VLAN provider network",
                    ));
                }
                (p, None) => {
                    let p = p.unwrap_or_else(|| "physnet1".to_string());
                    let s = (1000..=2999)
                        .find(|s| !taken(&|n| n.network_type == "vlan" && n.physical_network.as_deref() == Some(p.as_str()) && n.segmentation_id == Some(*s)))
                        .ok_or_else(|| nerr(503, "NoNetworkAvailable", "Unable to create the network. No tenant network is available for allocation."))?;
                    (p, s)
                }
            };
            if !(1..=4094).contains(&s) {
                return Err(invalid_input(&format!(
                    "provider:segmentation_id out of range ({s} is not between 1 and 4094)"
                )));
            }
            if taken(&|n| {
                n.network_type == "vlan"
                    && n.physical_network.as_deref() == Some(p.as_str())
                    && n.segmentation_id == Some(s)
            }) {
                return Err(nerr(
                    409,
                    "VlanIdInUse",
                    &format!(
                        "Unable to create the network. The VLAN {s} on physical network {p} is in use."
                    ),
                ));
            }
            Ok(Some((ty, Some(p), Some(s))))
        }
        "vxlan" | "geneve" | "gre" => {
            if phys.is_some() {
                return Err(invalid_input(&format!(
                    "provider:physical_network specified for {} network",
                    ty.to_uppercase()
                )));
            }
            let max: i64 = if ty == "gre" {
                4_294_967_295
            } else {
                16_777_215
            };
            let s = match seg {
                Some(s) => s,
                None => (1..=1000)
                    .find(|s| !taken(&|n| n.network_type == ty && n.segmentation_id == Some(*s)))
                    .ok_or_else(|| nerr(503, "NoNetworkAvailable", "Unable to create the network. No tenant network is available for allocation."))?,
            };
            if !(1..=max).contains(&s) {
                return Err(invalid_input(&format!(
                    "provider:segmentation_id out of range ({s} is not between 1 and {max})"
                )));
            }
            if taken(&|n| n.network_type == ty && n.segmentation_id == Some(s)) {
                return Err(nerr(
                    409,
                    "TunnelIdInUse",
                    &format!("Unable to create the network. The tunnel ID {s} is in use."),
                ));
            }
            Ok(Some((ty, None, Some(s))))
        }
        "local" => Ok(Some((ty, None, None))),
        other => Err(invalid_input(&format!(
            "network_type value '{other}' not supported"
        ))),
    }
}

fn bool_field(b: &Value, k: &str, default: bool) -> Result<bool, Response> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => as_bool(v).ok_or_else(|| {
            bad(&format!(
                "Invalid input for {k}. Reason: '{v}' is not a valid boolean value."
            ))
        }),
    }
}

fn str_field(b: &Value, k: &str, max: usize) -> Result<Option<String>, Response> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(v) => Err(bad(&format!(
            "Invalid input for {k}. Reason: '{v}' is not a valid string."
        ))),
    }
}

fn tags_field(b: &Value) -> Result<Option<Vec<String>>, Response> {
    match b.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_str()
                    .filter(|s| !s.is_empty() && s.len() <= 255 && !s.contains(','))
                    .map(str::to_string)
                    .ok_or_else(|| {
                        bad(&format!(
                            "Invalid input for tags. Reason: '{t}' is not a valid tag."
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(bad(&format!(
            "Invalid input for tags. Reason: '{v}' is not a list."
        ))),
    }
}

fn create_network(os: &Os, st: &mut State, c: &Caller, b: &Value) -> Result<Network, Response> {
    let allowed = [
        "name",
        "admin_state_up",
        "shared",
        "router:external",
        "mtu",
        "description",
        "port_security_enabled",
        "dns_domain",
        "qos_policy_id",
        "is_default",
        "availability_zone_hints",
        "tenant_id",
        "project_id",
        "tags",
        "vlan_transparent",
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
        "segments",
    ];
    if let Some(m) = b.as_object() {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(bad(&format!("Unrecognized attribute(s) '{k}'")));
            }
        }
    }
    if b.get("segments").is_some_and(|s| !s.is_null()) {
        return Err(invalid_input(
            "multi-segment networks (segments) are not supported by the twin; use provider:* attributes",
        ));
    }
    let has_provider = [
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
    ]
    .iter()
    .any(|k| b.get(*k).is_some_and(|v| !v.is_null()));
    if (has_provider
        || b.get("router:external").is_some()
        || b.get("shared").and_then(as_bool) == Some(true))
        && !c.is_admin()
    {
        return Err(forbidden(
            "create_network and rule:create_network:provider:network_type",
        ));
    }
    let project = b
        .get("project_id")
        .or(b.get("tenant_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| c.project().to_string());
    if project != c.project() && !c.is_admin() {
        return Err(forbidden("create_network"));
    }
    check_quota(st, &project, "network", 1)?;
    let (ty, phys, seg) = match provider_attrs(st, b, None)? {
        Some(p) => p,
        None => {
            let s = (1..=1000)
                .find(|s| !st.networks.iter().any(|n| n.network_type == "vxlan" && n.segmentation_id == Some(*s)))
                .ok_or_else(|| nerr(503, "NoNetworkAvailable", "Unable to create the network. No tenant network is available for allocation."))?;
            ("vxlan".to_string(), None, Some(s))
        }
    };
    let default_mtu = if ty == "vxlan" {
        1450
    } else if ty == "geneve" {
        1442
    } else {
        1500
    };
    let mtu = match b.get("mtu") {
        None | Some(Value::Null) => default_mtu,
        Some(v) => {
            let m = as_int(v).filter(|m| *m >= 68).ok_or_else(|| {
                bad(&format!(
                    "Invalid input for mtu. Reason: '{v}' is not a valid MTU."
                ))
            })?;
            if m > default_mtu {
                return Err(invalid_input(&format!(
                    "Requested MTU is too big, maximum is {default_mtu}."
                )));
            }
            m
        }
    };
    let now = now_ms();
    Ok(Network {
        id: os.uuid(),
        name: str_field(b, "name", 255)?.unwrap_or_default(),
        project_id: project,
        description: str_field(b, "description", 255)?.unwrap_or_default(),
        admin_state_up: bool_field(b, "admin_state_up", true)?,
        shared: bool_field(b, "shared", false)?,
        external: bool_field(b, "router:external", false)?,
        mtu,
        network_type: ty,
        physical_network: phys,
        segmentation_id: seg,
        status: "ACTIVE".into(),
        tags: tags_field(b)?.unwrap_or_default(),
        created_ms: now,
        updated_ms: now,
        revision: 1,
        port_security_enabled: bool_field(b, "port_security_enabled", true)?,
        availability_zone_hints: b
            .get("availability_zone_hints")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        dns_domain: str_field(b, "dns_domain", 255)?.unwrap_or_default(),
        qos_policy_id: str_field(b, "qos_policy_id", 36)?,
        is_default: bool_field(b, "is_default", false)?,
        vlan_transparent: bool_field(b, "vlan_transparent", false)?,
    })
}

fn network_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let whole = req.json().ok_or_else(|| bad("Malformed request body"))?;
    if let Some(list) = whole.get("networks").and_then(Value::as_array) {
        // Bulk create: all or nothing.
        let mut tmp = st.clone();
        let mut made = Vec::new();
        for b in list {
            let n = create_network(os, &mut tmp, c, b)?;
            tmp.networks.push(n.clone());
            made.push(n);
        }
        *st = tmp;
        let out: Vec<Value> = made
            .iter()
            .map(|n| network_json(st, n, c.is_admin()))
            .collect();
        return Ok(json_resp(StatusCode::CREATED, json!({"networks": out})));
    }
    let b = body_of(req, "network")?;
    let n = create_network(os, st, c, &b)?;
    let v = network_json(st, &n, c.is_admin());
    st.networks.push(n);
    Ok(json_resp(StatusCode::CREATED, json!({"network": v})))
}

fn network_update_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let b = body_of(req, "network")?;
    let idx = find_net(st, req.param("id"), c)?;
    if st.networks[idx].project_id != c.project() && !c.is_admin() {
        return Err(forbidden("update_network"));
    }
    if b.get("provider:network_type").is_some() || b.get("provider:physical_network").is_some() {
        let n = &st.networks[idx];
        let same_type = b
            .get("provider:network_type")
            .is_none_or(|v| v.as_str() == Some(n.network_type.as_str()));
        let same_phys = b
            .get("provider:physical_network")
            .is_none_or(|v| v.as_str() == n.physical_network.as_deref());
        if !same_type || !same_phys {
            return Err(invalid_input(
                "Plugin does not support updating the following provider network attributes: provider:network_type, provider:physical_network",
            ));
        }
    }
    if let Some(seg) = b.get("provider:segmentation_id").filter(|v| !v.is_null()) {
        if !c.is_admin() {
            return Err(forbidden("update_network:provider:segmentation_id"));
        }
        let n = &st.networks[idx];
        let id = n.id.clone();
        let probe = json!({
            "provider:network_type": n.network_type,
            "provider:physical_network": n.physical_network,
            "provider:segmentation_id": seg,
        });
        if let Some((_, _, s)) = provider_attrs(st, &probe, Some(&id))? {
            if st
                .ports
                .iter()
                .any(|p| p.network_id == id && p.device_owner.starts_with("compute:"))
            {
                return Err(invalid_input(
                    "Cannot update segmentation_id of a network with bound ports",
                ));
            }
            st.networks[idx].segmentation_id = s;
        }
    }
    let tags = tags_field(&b)?;
    let mtu = match b.get("mtu") {
        Some(v) => Some(as_int(v).filter(|m| *m >= 68).ok_or_else(|| {
            bad(&format!(
                "Invalid input for mtu. Reason: '{v}' is not a valid MTU."
            ))
        })?),
        None => None,
    };
    let n = &mut st.networks[idx];
    if let Some(v) = str_field(&b, "name", 255)? {
        n.name = v;
    }
    if let Some(v) = str_field(&b, "description", 255)? {
        n.description = v;
    }
    if let Some(v) = str_field(&b, "dns_domain", 255)? {
        n.dns_domain = v;
    }
    if b.get("qos_policy_id").is_some() {
        n.qos_policy_id = str_field(&b, "qos_policy_id", 36)?;
    }
    n.admin_state_up = bool_field(&b, "admin_state_up", n.admin_state_up)?;
    n.shared = bool_field(&b, "shared", n.shared)?;
    n.external = bool_field(&b, "router:external", n.external)?;
    n.port_security_enabled = bool_field(&b, "port_security_enabled", n.port_security_enabled)?;
    n.is_default = bool_field(&b, "is_default", n.is_default)?;
    if let Some(m) = mtu {
        n.mtu = m;
    }
    if let Some(t) = tags {
        n.tags = t;
    }
    n.revision += 1;
    n.updated_ms = now_ms();
    let v = network_json(st, &st.networks[idx], c.is_admin());
    Ok(json_resp(StatusCode::OK, json!({"network": v})))
}

/// Delete a network with its subnets and service ports; fails when compute ports remain.
pub(crate) fn remove_network(st: &mut State, id: &str) -> Result<(), Response> {
    if st
        .ports
        .iter()
        .any(|p| p.network_id == id && !p.device_owner.starts_with("network:dhcp"))
    {
        return Err(nerr(
            409,
            "NetworkInUse",
            &format!(
                "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
            ),
        ));
    }
    st.ports.retain(|p| p.network_id != id);
    st.subnets.retain(|s| s.network_id != id);
    st.networks.retain(|n| n.id != id);
    Ok(())
}

fn network_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_net(st, req.param("id"), c)?;
    if st.networks[idx].project_id != c.project() && !c.is_admin() {
        return Err(forbidden("delete_network"));
    }
    let id = st.networks[idx].id.clone();
    remove_network(st, &id)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------
// Subnets

fn subnet_json(st: &State, s: &Subnet) -> Value {
    let external = st
        .networks
        .iter()
        .find(|n| n.id == s.network_id)
        .map(|n| n.external)
        .unwrap_or(false);
    json!({
        "id": s.id,
        "name": s.name,
        "network_id": s.network_id,
        "tenant_id": s.project_id,
        "project_id": s.project_id,
        "cidr": s.cidr,
        "ip_version": s.ip_version,
        "gateway_ip": s.gateway_ip,
        "enable_dhcp": s.enable_dhcp,
        "allocation_pools": s.allocation_pools.iter().map(|(a, b)| json!({"start": a, "end": b})).collect::<Vec<_>>(),
        "dns_nameservers": s.dns_nameservers,
        "dns_publish_fixed_ip": false,
        "host_routes": s.host_routes,
        "description": s.description,
        "ipv6_address_mode": s.ipv6_address_mode,
        "ipv6_ra_mode": s.ipv6_ra_mode,
        "segment_id": null,
        "subnetpool_id": null,
        "service_types": [],
        "tags": s.tags,
        "router:external": external,
        "created_at": iso(s.created_ms),
        "updated_at": iso(s.updated_ms),
        "revision_number": s.revision,
    })
}

fn find_subnet(st: &State, id: &str, c: &Caller) -> Result<usize, Response> {
    st.subnets
        .iter()
        .position(|s| {
            s.id == id
                && (c.is_admin()
                    || s.project_id == c.project()
                    || st
                        .networks
                        .iter()
                        .any(|n| n.id == s.network_id && (n.shared || n.external)))
        })
        .ok_or_else(|| not_found("subnet", id))
}

fn subnets_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let items: Vec<Value> = st
        .subnets
        .iter()
        .filter(|s| {
            c.is_admin()
                || s.project_id == c.project()
                || st
                    .networks
                    .iter()
                    .any(|n| n.id == s.network_id && (n.shared || n.external))
        })
        .map(|s| subnet_json(st, s))
        .collect();
    list_response(os, req, "subnets", items)
}

fn subnet_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_subnet(st, req.param("id"), c)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"subnet": show_fields(req, subnet_json(st, &st.subnets[idx]))}),
    ))
}

fn parse_pools(b: &Value, cidr: &Cidr) -> Result<Option<Vec<(u128, u128)>>, Response> {
    let Some(pools) = b.get("allocation_pools").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let arr = pools.as_array().ok_or_else(|| {
        bad("Invalid input for allocation_pools. Reason: Invalid data format for IP pool.")
    })?;
    let mut out = Vec::new();
    for p in arr {
        let start = p.get("start").and_then(Value::as_str).and_then(parse_ip);
        let end = p.get("end").and_then(Value::as_str).and_then(parse_ip);
        let (Some((s, sv6)), Some((e, ev6))) = (start, end) else {
            return Err(bad(&format!(
                "Invalid input for allocation_pools. Reason: Invalid data format for IP pool: '{p}'."
            )));
        };
        if sv6 != cidr.v6 || ev6 != cidr.v6 || s > e || !cidr.contains(s) || !cidr.contains(e) {
            return Err(nerr(
                400,
                "OutOfBoundsAllocationPool",
                &format!(
                    "The allocation pool {}-{} spans beyond the subnet cidr {cidr}.",
                    cidr.ip(s),
                    cidr.ip(e)
                ),
            ));
        }
        out.push((s, e));
    }
    Ok(Some(out))
}

fn subnet_create_one(os: &Os, st: &mut State, c: &Caller, b: &Value) -> Result<Subnet, Response> {
    let net_id = b.get("network_id").and_then(Value::as_str).ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'network_id' not specified")
    })?;
    let nidx = find_net(st, net_id, c)?;
    let network = st.networks[nidx].clone();
    if network.project_id != c.project() && !c.is_admin() {
        return Err(forbidden("create_subnet"));
    }
    let ip_version = b.get("ip_version").and_then(as_int).ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'ip_version' not specified")
    })?;
    if ip_version != 4 && ip_version != 6 {
        return Err(bad(&format!(
            "Invalid input for ip_version. Reason: '{ip_version}' is not in [4, 6]."
        )));
    }
    let cidr_s = b.get("cidr").and_then(Value::as_str).ok_or_else(|| {
        bad("Bad subnets request: a subnetpool must be specified in the absence of a cidr.")
    })?;
    let cidr = Cidr::parse(cidr_s).map_err(|e| match e {
        Some(norm) => bad(&format!("Invalid input for cidr. Reason: '{cidr_s}' isn't a recognized IP subnet cidr, '{norm}' is recommended.")),
        None => bad(&format!("Invalid input for cidr. Reason: '{cidr_s}' is not a valid IP subnet.")),
    })?;
    if cidr.v6 != (ip_version == 6) {
        return Err(invalid_input("Cidr and ip_version mismatch"));
    }
    if !cidr.v6 && cidr.prefix > 30 || cidr.v6 && cidr.prefix > 126 {
        return Err(invalid_input(&format!("{cidr} is too small a subnet")));
    }
    for other in st.subnets.iter().filter(|s| s.network_id == network.id) {
        if let Ok(oc) = Cidr::parse(&other.cidr)
            && oc.overlaps(&cidr)
        {
            return Err(invalid_input(&format!(
                "Requested subnet with cidr: {cidr} for network: {} overlaps with another subnet.",
                network.id
            )));
        }
    }
    check_quota(st, &network.project_id, "subnet", 1)?;
    let (first, last) = cidr.hosts();
    let gateway = match b.get("gateway_ip") {
        Some(Value::Null) => None,
        Some(Value::String(g)) => {
            let (n, v6) = parse_ip(g).ok_or_else(|| {
                bad(&format!(
                    "Invalid input for gateway_ip. Reason: '{g}' is not a valid IP address."
                ))
            })?;
            if v6 != cidr.v6 {
                return Err(invalid_input("gateway_ip version mismatch"));
            }
            Some(n)
        }
        Some(v) => {
            return Err(bad(&format!(
                "Invalid input for gateway_ip. Reason: '{v}' is not a valid IP address."
            )));
        }
        None => Some(first),
    };
    let pools = match parse_pools(b, &cidr)? {
        Some(p) => {
            if let Some(g) = gateway
                && p.iter().any(|(s, e)| g >= *s && g <= *e)
            {
                return Err(nerr(
                    409,
                    "GatewayConflictWithAllocationPools",
                    &format!(
                        "Gateway ip {} conflicts with allocation pool {}-{}",
                        cidr.ip(g),
                        cidr.ip(p[0].0),
                        cidr.ip(p[0].1)
                    ),
                ));
            }
            p
        }
        None => match gateway {
            Some(g) if g == first => vec![(first + 1, last)],
            Some(g) if g == last => vec![(first, last - 1)],
            Some(g) if cidr.contains(g) => vec![(first, g - 1), (g + 1, last)],
            _ => vec![(first, last)],
        },
    };
    let now = now_ms();
    let dns: Vec<String> = b
        .get("dns_nameservers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Subnet {
        id: os.uuid(),
        name: str_field(b, "name", 255)?.unwrap_or_default(),
        network_id: network.id.clone(),
        project_id: network.project_id.clone(),
        cidr: cidr.to_string(),
        ip_version,
        gateway_ip: gateway.map(|g| cidr.ip(g)),
        enable_dhcp: bool_field(b, "enable_dhcp", true)?,
        allocation_pools: pools
            .iter()
            .map(|(s, e)| (cidr.ip(*s), cidr.ip(*e)))
            .collect(),
        dns_nameservers: dns,
        host_routes: b
            .get("host_routes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        description: str_field(b, "description", 255)?.unwrap_or_default(),
        tags: tags_field(b)?.unwrap_or_default(),
        created_ms: now,
        updated_ms: now,
        revision: 0,
        ipv6_address_mode: str_field(b, "ipv6_address_mode", 32)?,
        ipv6_ra_mode: str_field(b, "ipv6_ra_mode", 32)?,
    })
}

/// The DHCP agent's port on a network with a DHCP-enabled subnet.
fn ensure_dhcp_port(os: &Os, st: &mut State, subnet_id: &str) {
    let Some(s) = st.subnets.iter().find(|s| s.id == subnet_id).cloned() else {
        return;
    };
    if !s.enable_dhcp {
        return;
    }
    let dhcp = st
        .ports
        .iter()
        .position(|p| p.network_id == s.network_id && p.device_owner == "network:dhcp");
    if let Some(i) = dhcp {
        if !st.ports[i].fixed_ips.iter().any(|(sid, _)| sid == &s.id)
            && let Some(ip) = next_ip(&st.ports, &s)
        {
            st.ports[i].fixed_ips.push((s.id.clone(), ip));
        }
        return;
    }
    let Some(ip) = next_ip(&st.ports, &s) else {
        return;
    };
    let now = now_ms();
    st.next_mac += 1;
    let port = Port {
        id: os.uuid(),
        name: String::new(),
        network_id: s.network_id.clone(),
        project_id: s.project_id.clone(),
        mac_address: mac_from(st.next_mac),
        fixed_ips: vec![(s.id.clone(), ip)],
        device_id: format!("dhcp{}-{}", &os.hex_id()[..16], s.network_id),
        device_owner: "network:dhcp".into(),
        status: "ACTIVE".into(),
        admin_state_up: true,
        binding_host: format!("{}-ctl-01", os.ctx.name),
        vnic_type: "normal".into(),
        security_groups: vec![],
        tags: vec![],
        description: String::new(),
        created_ms: now,
        updated_ms: now,
        revision: 1,
        port_security_enabled: false,
        allowed_address_pairs: vec![],
        dns_name: String::new(),
    };
    st.ports.push(port);
}

fn subnet_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let whole = req.json().ok_or_else(|| bad("Malformed request body"))?;
    if let Some(list) = whole.get("subnets").and_then(Value::as_array) {
        let mut tmp = st.clone();
        let mut ids = Vec::new();
        for b in list {
            let s = subnet_create_one(os, &mut tmp, c, b)?;
            ids.push(s.id.clone());
            tmp.subnets.push(s);
            let id = ids.last().cloned().unwrap_or_default();
            ensure_dhcp_port(os, &mut tmp, &id);
        }
        *st = tmp;
        let out: Vec<Value> = ids
            .iter()
            .filter_map(|id| st.subnets.iter().find(|s| &s.id == id))
            .map(|s| subnet_json(st, s))
            .collect();
        return Ok(json_resp(StatusCode::CREATED, json!({"subnets": out})));
    }
    let b = body_of(req, "subnet")?;
    let s = subnet_create_one(os, st, c, &b)?;
    let id = s.id.clone();
    st.subnets.push(s);
    ensure_dhcp_port(os, st, &id);
    let v = subnet_json(st, st.subnets.iter().find(|s| s.id == id).expect("subnet"));
    Ok(json_resp(StatusCode::CREATED, json!({"subnet": v})))
}

fn subnet_update_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let b = body_of(req, "subnet")?;
    let idx = find_subnet(st, req.param("id"), c)?;
    for k in ["cidr", "ip_version", "network_id"] {
        if b.get(k).is_some() {
            return Err(bad(&format!("Cannot update read-only attribute {k}")));
        }
    }
    let tags = tags_field(&b)?;
    let s = &mut st.subnets[idx];
    if let Some(v) = str_field(&b, "name", 255)? {
        s.name = v;
    }
    if let Some(v) = str_field(&b, "description", 255)? {
        s.description = v;
    }
    s.enable_dhcp = bool_field(&b, "enable_dhcp", s.enable_dhcp)?;
    if let Some(g) = b.get("gateway_ip") {
        s.gateway_ip = g.as_str().map(str::to_string);
    }
    if let Some(d) = b.get("dns_nameservers").and_then(Value::as_array) {
        s.dns_nameservers = d
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
    }
    if let Some(h) = b.get("host_routes").and_then(Value::as_array) {
        s.host_routes = h.clone();
    }
    if let Some(t) = tags {
        s.tags = t;
    }
    s.revision += 1;
    s.updated_ms = now_ms();
    let id = s.id.clone();
    ensure_dhcp_port(os, st, &id);
    let v = subnet_json(st, &st.subnets[idx]);
    Ok(json_resp(StatusCode::OK, json!({"subnet": v})))
}

fn subnet_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_subnet(st, req.param("id"), c)?;
    let id = st.subnets[idx].id.clone();
    if st.ports.iter().any(|p| {
        !p.device_owner.starts_with("network:dhcp") && p.fixed_ips.iter().any(|(s, _)| s == &id)
    }) {
        return Err(nerr(
            409,
            "SubnetInUse",
            &format!(
                "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
            ),
        ));
    }
    for p in st.ports.iter_mut() {
        p.fixed_ips.retain(|(s, _)| s != &id);
    }
    st.ports
        .retain(|p| !(p.device_owner == "network:dhcp" && p.fixed_ips.is_empty()));
    st.subnets.remove(idx);
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------
// Ports

fn next_ip(ports: &[Port], s: &Subnet) -> Option<String> {
    let cidr = Cidr::parse(&s.cidr).ok()?;
    let used: Vec<u128> = ports
        .iter()
        .flat_map(|p| p.fixed_ips.iter())
        .filter(|(sid, _)| sid == &s.id)
        .filter_map(|(_, ip)| parse_ip(ip).map(|x| x.0))
        .collect();
    for (a, b) in &s.allocation_pools {
        let (Some((a, _)), Some((b, _))) = (parse_ip(a), parse_ip(b)) else {
            continue;
        };
        let mut n = a;
        while n <= b {
            if !used.contains(&n) {
                return Some(cidr.ip(n));
            }
            if n - a > 1_000_000 {
                break;
            }
            n += 1;
        }
    }
    None
}

fn port_json(st: &State, p: &Port, admin: bool) -> Value {
    let mut v = json!({
        "id": p.id,
        "name": p.name,
        "network_id": p.network_id,
        "tenant_id": p.project_id,
        "project_id": p.project_id,
        "mac_address": p.mac_address,
        "admin_state_up": p.admin_state_up,
        "status": p.status,
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "fixed_ips": p.fixed_ips.iter().map(|(s, ip)| json!({"subnet_id": s, "ip_address": ip})).collect::<Vec<_>>(),
        "allowed_address_pairs": p.allowed_address_pairs,
        "extra_dhcp_opts": [],
        "security_groups": p.security_groups,
        "description": p.description,
        "port_security_enabled": p.port_security_enabled,
        "dns_name": p.dns_name,
        "dns_domain": "",
        "dns_assignment": p.fixed_ips.iter().map(|(_, ip)| {
            let host = if p.dns_name.is_empty() { format!("host-{}", ip.replace(['.', ':'], "-")) } else { p.dns_name.clone() };
            json!({"hostname": host, "ip_address": ip, "fqdn": format!("{host}.openstacklocal.")})
        }).collect::<Vec<_>>(),
        "ip_allocation": "immediate",
        "data_plane_status": null,
        "qos_policy_id": null,
        "qos_network_policy_id": st.networks.iter().find(|n| n.id == p.network_id).and_then(|n| n.qos_policy_id.clone()),
        "propagate_uplink_status": false,
        "resource_request": null,
        "tags": p.tags,
        "created_at": iso(p.created_ms),
        "updated_at": iso(p.updated_ms),
        "revision_number": p.revision,
    });
    if admin {
        v["binding:host_id"] = json!(p.binding_host);
        v["binding:profile"] = json!({});
        v["binding:vif_details"] = if p.binding_host.is_empty() {
            json!({})
        } else {
            json!({"port_filter": true, "connectivity": "l2", "datapath_type": "system", "bridge_name": "br-int"})
        };
        v["binding:vif_type"] = json!(if p.binding_host.is_empty() {
            "unbound"
        } else {
            "ovs"
        });
        v["binding:vnic_type"] = json!(p.vnic_type);
    }
    v
}

fn port_visible(st: &State, p: &Port, c: &Caller) -> bool {
    c.is_admin()
        || p.project_id == c.project()
        || st
            .networks
            .iter()
            .any(|n| n.id == p.network_id && n.project_id == c.project())
}

fn find_port(st: &State, id: &str, c: &Caller) -> Result<usize, Response> {
    st.ports
        .iter()
        .position(|p| p.id == id && port_visible(st, p, c))
        .ok_or_else(|| not_found("port", id))
}

fn ports_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let items: Vec<Value> = st
        .ports
        .iter()
        .filter(|p| port_visible(st, p, c))
        .map(|p| port_json(st, p, c.is_admin()))
        .collect();
    list_response(os, req, "ports", items)
}

fn port_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_port(st, req.param("id"), c)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"port": show_fields(req, port_json(st, &st.ports[idx], c.is_admin()))}),
    ))
}

/// The project's `default` security group, created on first use as Neutron does.
pub(crate) fn ensure_default_sg(os: &Os, st: &mut State, project: &str) -> String {
    if let Some(g) = st
        .security_groups
        .iter()
        .find(|g| g.project_id == project && g.name == "default")
    {
        return g.id.clone();
    }
    let id = os.uuid();
    let now = now_ms();
    let rule = |os: &Os, dir: &str, eth: &str, remote: Option<&str>| {
        json!({
            "id": os.uuid(), "direction": dir, "ethertype": eth, "protocol": null, "port_range_min": null,
            "port_range_max": null, "remote_ip_prefix": null, "remote_group_id": remote, "remote_address_group_id": null,
            "security_group_id": id, "tenant_id": project, "project_id": project, "description": "",
            "normalized_cidr": null, "belongs_to_default_sg": true, "tags": [], "created_at": iso(now), "updated_at": iso(now), "revision_number": 0,
        })
    };
    let rules = vec![
        rule(os, "egress", "IPv4", None),
        rule(os, "egress", "IPv6", None),
        rule(os, "ingress", "IPv4", Some(&id)),
        rule(os, "ingress", "IPv6", Some(&id)),
    ];
    st.security_groups.push(SecurityGroup {
        id: id.clone(),
        name: "default".into(),
        project_id: project.to_string(),
        description: "Default security group".into(),
        rules,
        created_ms: now,
        updated_ms: now,
        revision: 1,
        tags: vec![],
    });
    id
}

/// Create a port (also used by Nova when it boots a server).
pub(crate) fn create_port(
    os: &Os,
    st: &mut State,
    network_id: &str,
    project: &str,
    fixed_ip: Option<&str>,
) -> Result<String, String> {
    let b = match fixed_ip {
        Some(ip) => {
            json!({"network_id": network_id, "fixed_ips": [{"ip_address": ip}], "project_id": project})
        }
        None => json!({"network_id": network_id, "project_id": project}),
    };
    let admin = Caller {
        user_id: String::new(),
        project_id: Some(project.to_string()),
        roles: vec!["admin".into()],
    };
    match build_port(os, st, &admin, &b) {
        Ok(p) => {
            let id = p.id.clone();
            st.ports.push(p);
            Ok(id)
        }
        Err(r) => Err(format!(
            "Unable to allocate a port on network {network_id} (Neutron answered {}).",
            r.status()
        )),
    }
}

fn build_port(os: &Os, st: &mut State, c: &Caller, b: &Value) -> Result<Port, Response> {
    let net_id = b.get("network_id").and_then(Value::as_str).ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'network_id' not specified")
    })?;
    let nidx = find_net(st, net_id, c)?;
    let network = st.networks[nidx].clone();
    let project = b
        .get("project_id")
        .or(b.get("tenant_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| c.project().to_string());
    check_quota(st, &project, "port", 1)?;
    let subnets: Vec<Subnet> = st
        .subnets
        .iter()
        .filter(|s| s.network_id == network.id)
        .cloned()
        .collect();
    let mut fixed = Vec::new();
    match b.get("fixed_ips").and_then(Value::as_array) {
        Some(list) => {
            for f in list {
                let sid = f.get("subnet_id").and_then(Value::as_str);
                let ip = f.get("ip_address").and_then(Value::as_str);
                let subnet = match (sid, ip) {
                    (Some(sid), _) => subnets.iter().find(|s| s.id == sid).ok_or_else(|| invalid_input(&format!("Failed to create port on network {}, because fixed_ips included invalid subnet {sid}.", network.id)))?,
                    (None, Some(ip)) => subnets
                        .iter()
                        .find(|s| Cidr::parse(&s.cidr).ok().zip(parse_ip(ip)).is_some_and(|(c, (n, _))| c.contains(n)))
                        .ok_or_else(|| invalid_input(&format!("IP address {ip} is not a valid IP for any of the subnets on the specified network.")))?,
                    (None, None) => return Err(invalid_input("fixed_ips entry requires subnet_id or ip_address")),
                };
                let addr = match ip {
                    Some(ip) => {
                        if st
                            .ports
                            .iter()
                            .any(|p| p.fixed_ips.iter().any(|(s, a)| s == &subnet.id && a == ip))
                        {
                            return Err(nerr(
                                409,
                                "IpAddressAlreadyAllocated",
                                &format!(
                                    "IP address {ip} already allocated in subnet {}",
                                    subnet.id
                                ),
                            ));
                        }
                        ip.to_string()
                    }
                    None => next_ip(&st.ports, subnet).ok_or_else(|| {
                        nerr(
                            409,
                            "IpAddressGenerationFailure",
                            &format!("No more IP addresses available on network {}.", network.id),
                        )
                    })?,
                };
                fixed.push((subnet.id.clone(), addr));
            }
        }
        None => {
            for v in [4, 6] {
                if let Some(s) = subnets.iter().find(|s| s.ip_version == v) {
                    let ip = next_ip(&st.ports, s).ok_or_else(|| {
                        nerr(
                            409,
                            "IpAddressGenerationFailure",
                            &format!("No more IP addresses available on network {}.", network.id),
                        )
                    })?;
                    fixed.push((s.id.clone(), ip));
                }
            }
        }
    }
    let mac = match b.get("mac_address").and_then(Value::as_str) {
        Some(m) => {
            if st
                .ports
                .iter()
                .any(|p| p.network_id == network.id && p.mac_address.eq_ignore_ascii_case(m))
            {
                return Err(nerr(
                    409,
                    "MacAddressInUse",
                    &format!(
                        "Unable to complete operation for network {}. The mac address {m} is in use.",
                        network.id
                    ),
                ));
            }
            m.to_lowercase()
        }
        None => {
            st.next_mac += 1;
            mac_from(st.next_mac)
        }
    };
    let port_security = bool_field(b, "port_security_enabled", network.port_security_enabled)?;
    let security_groups = match b.get("security_groups").and_then(Value::as_array) {
        Some(g) => g
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        None if port_security => vec![ensure_default_sg(os, st, &project)],
        None => vec![],
    };
    let now = now_ms();
    Ok(Port {
        id: os.uuid(),
        name: str_field(b, "name", 255)?.unwrap_or_default(),
        network_id: network.id.clone(),
        project_id: project,
        mac_address: mac,
        fixed_ips: fixed,
        device_id: str_field(b, "device_id", 255)?.unwrap_or_default(),
        device_owner: str_field(b, "device_owner", 255)?.unwrap_or_default(),
        status: "DOWN".into(),
        admin_state_up: bool_field(b, "admin_state_up", true)?,
        binding_host: str_field(b, "binding:host_id", 255)?.unwrap_or_default(),
        vnic_type: str_field(b, "binding:vnic_type", 64)?.unwrap_or_else(|| "normal".into()),
        security_groups,
        tags: tags_field(b)?.unwrap_or_default(),
        description: str_field(b, "description", 255)?.unwrap_or_default(),
        created_ms: now,
        updated_ms: now,
        revision: 1,
        port_security_enabled: port_security,
        allowed_address_pairs: b
            .get("allowed_address_pairs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        dns_name: str_field(b, "dns_name", 255)?.unwrap_or_default(),
    })
}

fn port_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let whole = req.json().ok_or_else(|| bad("Malformed request body"))?;
    if let Some(list) = whole.get("ports").and_then(Value::as_array) {
        let mut tmp = st.clone();
        let mut ids = Vec::new();
        for b in list {
            let p = build_port(os, &mut tmp, c, b)?;
            ids.push(p.id.clone());
            tmp.ports.push(p);
        }
        *st = tmp;
        let out: Vec<Value> = ids
            .iter()
            .filter_map(|id| st.ports.iter().find(|p| &p.id == id))
            .map(|p| port_json(st, p, c.is_admin()))
            .collect();
        return Ok(json_resp(StatusCode::CREATED, json!({"ports": out})));
    }
    let b = body_of(req, "port")?;
    let p = build_port(os, st, c, &b)?;
    let v = port_json(st, &p, c.is_admin());
    st.ports.push(p);
    Ok(json_resp(StatusCode::CREATED, json!({"port": v})))
}

fn port_update_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let b = body_of(req, "port")?;
    let idx = find_port(st, req.param("id"), c)?;
    if b.get("network_id").is_some() {
        return Err(bad("Cannot update read-only attribute network_id"));
    }
    let tags = tags_field(&b)?;
    let p = &mut st.ports[idx];
    if let Some(v) = str_field(&b, "name", 255)? {
        p.name = v;
    }
    if let Some(v) = str_field(&b, "description", 255)? {
        p.description = v;
    }
    if let Some(v) = str_field(&b, "device_id", 255)? {
        p.device_id = v;
    }
    if let Some(v) = str_field(&b, "device_owner", 255)? {
        p.device_owner = v;
    }
    if let Some(v) = str_field(&b, "binding:host_id", 255)? {
        p.binding_host = v;
    }
    if let Some(v) = str_field(&b, "dns_name", 255)? {
        p.dns_name = v;
    }
    p.admin_state_up = bool_field(&b, "admin_state_up", p.admin_state_up)?;
    p.port_security_enabled = bool_field(&b, "port_security_enabled", p.port_security_enabled)?;
    if let Some(g) = b.get("security_groups").and_then(Value::as_array) {
        p.security_groups = g
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
    }
    if let Some(a) = b.get("allowed_address_pairs").and_then(Value::as_array) {
        p.allowed_address_pairs = a.clone();
    }
    if let Some(t) = tags {
        p.tags = t;
    }
    p.revision += 1;
    p.updated_ms = now_ms();
    let v = port_json(st, &st.ports[idx], c.is_admin());
    Ok(json_resp(StatusCode::OK, json!({"port": v})))
}

fn port_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_port(st, req.param("id"), c)?;
    let id = st.ports[idx].id.clone();
    st.ports.remove(idx);
    for s in st.servers.iter_mut() {
        s.ports.retain(|p| p != &id);
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Bind a port to a server on a host (Nova's side of a boot).
pub(crate) fn bind_port(st: &mut State, port: &str, device: &str, host: &str) {
    if let Some(p) = st.ports.iter_mut().find(|p| p.id == port) {
        p.device_id = device.to_string();
        p.device_owner = "compute:nova".into();
        p.binding_host = host.to_string();
        p.revision += 1;
        p.updated_ms = now_ms();
    }
}

pub(crate) fn activate_ports(st: &mut State, device: &str) {
    for p in st.ports.iter_mut().filter(|p| p.device_id == device) {
        p.status = "ACTIVE".into();
        p.revision += 1;
        p.updated_ms = now_ms();
    }
}

/// Delete the ports Nova created for a server.
pub(crate) fn release_ports(st: &mut State, device: &str) {
    st.ports.retain(|p| p.device_id != device);
}

// ---------------------------------------------------------------------------------------
// Security groups

fn sg_json(g: &SecurityGroup) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "tenant_id": g.project_id,
        "project_id": g.project_id,
        "security_group_rules": g.rules,
        "stateful": true,
        "shared": false,
        "tags": g.tags,
        "created_at": iso(g.created_ms),
        "updated_at": iso(g.updated_ms),
        "revision_number": g.revision,
    })
}

fn sgs_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    ensure_default_sg(os, st, c.project());
    let items: Vec<Value> = st
        .security_groups
        .iter()
        .filter(|g| c.is_admin() || g.project_id == c.project())
        .map(sg_json)
        .collect();
    list_response(os, req, "security_groups", items)
}

fn sg_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let b = body_of(req, "security_group")?;
    let name = str_field(&b, "name", 255)?.unwrap_or_default();
    let project = c.project().to_string();
    ensure_default_sg(os, st, &project);
    if name == "default" {
        return Err(nerr(
            409,
            "SecurityGroupDefaultAlreadyExists",
            "Default security group already exists.",
        ));
    }
    check_quota(st, &project, "security_group", 1)?;
    let id = os.uuid();
    let now = now_ms();
    let rules = ["IPv4", "IPv6"]
        .iter()
        .map(|eth| {
            json!({
                "id": os.uuid(), "direction": "egress", "ethertype": eth, "protocol": null, "port_range_min": null,
                "port_range_max": null, "remote_ip_prefix": null, "remote_group_id": null, "remote_address_group_id": null,
                "security_group_id": id, "tenant_id": project, "project_id": project, "description": "",
                "normalized_cidr": null, "belongs_to_default_sg": false, "tags": [], "created_at": iso(now), "updated_at": iso(now), "revision_number": 0,
            })
        })
        .collect();
    let g = SecurityGroup {
        id,
        name,
        project_id: project,
        description: str_field(&b, "description", 255)?.unwrap_or_default(),
        rules,
        created_ms: now,
        updated_ms: now,
        revision: 1,
        tags: vec![],
    };
    let v = sg_json(&g);
    st.security_groups.push(g);
    Ok(json_resp(StatusCode::CREATED, json!({"security_group": v})))
}

fn sg_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = req.param("id");
    let g = st
        .security_groups
        .iter()
        .find(|g| {
            (g.id == id || g.name == id && g.project_id == c.project())
                && (c.is_admin() || g.project_id == c.project())
        })
        .ok_or_else(|| not_found("security_group", id))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"security_group": sg_json(g)}),
    ))
}

fn sg_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = req.param("id").to_string();
    let idx = st
        .security_groups
        .iter()
        .position(|g| g.id == id && (c.is_admin() || g.project_id == c.project()))
        .ok_or_else(|| not_found("security_group", &id))?;
    if st.security_groups[idx].name == "default" && !c.is_admin() {
        return Err(nerr(
            409,
            "SecurityGroupCannotRemoveDefault",
            "Insufficient rights for removing default security group.",
        ));
    }
    if st.ports.iter().any(|p| p.security_groups.contains(&id)) {
        return Err(nerr(
            409,
            "SecurityGroupInUse",
            &format!("Security Group {id} in use."),
        ));
    }
    st.security_groups.remove(idx);
    Ok(empty(StatusCode::NO_CONTENT))
}

fn sg_rules_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    ensure_default_sg(os, st, c.project());
    let items: Vec<Value> = st
        .security_groups
        .iter()
        .filter(|g| c.is_admin() || g.project_id == c.project())
        .flat_map(|g| g.rules.iter().cloned())
        .collect();
    list_response(os, req, "security_group_rules", items)
}

fn azs_list_(os: &Os, req: &Req, _st: &mut State, _c: &Caller) -> R {
    let items = vec![
        json!({"name": "nova", "resource": "network", "state": "available"}),
        json!({"name": "nova", "resource": "router", "state": "available"}),
    ];
    list_response(os, req, "availability_zones", items)
}

// ---------------------------------------------------------------------------------------
// Quotas

fn quota_json(st: &State, project: &str) -> Value {
    let keys = super::seed::neutron_default_quotas();
    let m: serde_json::Map<String, Value> = keys
        .keys()
        .map(|k| (k.clone(), json!(quota_of(st, project, k))))
        .collect();
    Value::Object(m)
}

fn quotas_list_(_os: &Os, _req: &Req, st: &mut State, c: &Caller) -> R {
    if !c.is_admin() {
        return Err(forbidden("get_quota"));
    }
    let list: Vec<Value> = st
        .net_quotas
        .keys()
        .map(|p| {
            let mut v = quota_json(st, p);
            v["project_id"] = json!(p);
            v["tenant_id"] = json!(p);
            v
        })
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"quotas": list})))
}

fn quota_target(req: &Req, c: &Caller) -> Result<String, Response> {
    let id = req.param("id").trim_end_matches(".json").to_string();
    if id != c.project() && !c.is_admin() {
        return Err(forbidden("get_quota"));
    }
    Ok(id)
}

fn quota_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = quota_target(req, c)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota": quota_json(st, &id)}),
    ))
}

fn quota_default_(_os: &Os, req: &Req, _st: &mut State, c: &Caller) -> R {
    quota_target(req, c)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota": super::seed::neutron_default_quotas()}),
    ))
}

fn quota_details_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = quota_target(req, c)?;
    let used = usage_of(st, &id);
    let m: serde_json::Map<String, Value> = super::seed::neutron_default_quotas()
        .keys()
        .map(|k| (k.clone(), json!({"limit": quota_of(st, &id, k), "used": used.get(k).copied().unwrap_or(0), "reserved": 0})))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"quota": m})))
}

fn quota_put_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    if !c.is_admin() {
        return Err(forbidden("update_quota"));
    }
    let b = body_of(req, "quota")?;
    let id = req.param("id").to_string();
    let known = super::seed::neutron_default_quotas();
    let check_limit = b.get("check_limit").and_then(as_bool).unwrap_or(false);
    let mut updates = BTreeMap::new();
    for (k, v) in b.as_object().into_iter().flatten() {
        if k == "force" || k == "check_limit" {
            continue;
        }
        if !known.contains_key(k) {
            return Err(bad(&format!("Unrecognized attribute(s) '{k}'")));
        }
        let n = as_int(v).filter(|n| *n >= -1).ok_or_else(|| {
            bad(&format!(
                "Invalid input for {k}. Reason: '{v}' is not an integer or is less than -1."
            ))
        })?;
        if check_limit && n >= 0 && usage_of(st, &id).get(k).copied().unwrap_or(0) > n {
            return Err(bad(&format!(
                "Quota limit {n} for {k} must be greater than or equal to already used and reserved {}.",
                usage_of(st, &id)[k]
            )));
        }
        updates.insert(k.clone(), n);
    }
    st.net_quotas.entry(id.clone()).or_default().extend(updates);
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota": quota_json(st, &id)}),
    ))
}

fn quota_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    if !c.is_admin() {
        return Err(forbidden("delete_quota"));
    }
    st.net_quotas.remove(req.param("id"));
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------
// Tags (networks, subnets, ports)

fn tag_owner<'a>(
    st: &'a mut State,
    req: &Req,
    c: &Caller,
) -> Result<&'a mut Vec<String>, Response> {
    let id = req.param("id").to_string();
    // The collection is the third path segment; work it out from which object has the id.
    if let Ok(i) = find_net(st, &id, c) {
        return Ok(&mut st.networks[i].tags);
    }
    if let Ok(i) = find_subnet(st, &id, c) {
        return Ok(&mut st.subnets[i].tags);
    }
    if let Ok(i) = find_port(st, &id, c) {
        return Ok(&mut st.ports[i].tags);
    }
    Err(nerr(
        404,
        "NotFound",
        &format!("Resource {id} could not be found."),
    ))
}

fn tags_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let t = tag_owner(st, req, c)?;
    Ok(json_resp(StatusCode::OK, json!({"tags": t})))
}

fn tags_put_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let b = req.json().unwrap_or(Value::Null);
    let tags = tags_field(&b)?.ok_or_else(|| bad("Invalid input for tags. Reason: required."))?;
    let t = tag_owner(st, req, c)?;
    *t = tags;
    Ok(json_resp(StatusCode::OK, json!({"tags": t})))
}

fn tags_clear_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let t = tag_owner(st, req, c)?;
    t.clear();
    Ok(empty(StatusCode::NO_CONTENT))
}

fn tag_check_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let tag = req.param("tag").to_string();
    let t = tag_owner(st, req, c)?;
    if !t.contains(&tag) {
        return Err(nerr(
            404,
            "TagNotFound",
            &format!(
                "Tag {tag} could not be found for resource {}.",
                req.param("id")
            ),
        ));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn tag_add_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let tag = req.param("tag").to_string();
    if tag.is_empty() || tag.len() > 255 || tag.contains(',') {
        return Err(bad(&format!(
            "Invalid input for tags. Reason: '{tag}' is not a valid tag."
        )));
    }
    let t = tag_owner(st, req, c)?;
    if !t.contains(&tag) {
        t.push(tag);
    }
    Ok(empty(StatusCode::CREATED))
}

fn tag_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let tag = req.param("tag").to_string();
    let t = tag_owner(st, req, c)?;
    let before = t.len();
    t.retain(|x| x != &tag);
    if before == t.len() {
        return Err(nerr(
            404,
            "TagNotFound",
            &format!(
                "Tag {tag} could not be found for resource {}.",
                req.param("id")
            ),
        ));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}
