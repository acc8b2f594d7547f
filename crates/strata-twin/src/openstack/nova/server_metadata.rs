//! Per-server sub-resources: metadata items, tags, the ips view, the attached
//! interfaces and the security groups.

use super::*;

pub(super) fn meta_list_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"metadata": st.servers[idx].metadata}),
    ))
}

pub(super) fn parse_meta(body: &Value, key: &str) -> Result<BTreeMap<String, String>, Response> {
    let m = body.get(key).ok_or_else(|| {
        invalid(
            "request body",
            body,
            &format!("'{key}' is a required property"),
        )
    })?;
    check_metadata(key, m, &["string"])?;
    Ok(m.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default())
}

pub(super) fn meta_merge_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let m = parse_meta(&body, "metadata")?;
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let s = &mut st.servers[idx];
    s.metadata.extend(m);
    s.updated_ms = os.now_ms();
    Ok(json_resp(StatusCode::OK, json!({"metadata": s.metadata})))
}

pub(super) fn meta_replace_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let m = parse_meta(&body, "metadata")?;
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let s = &mut st.servers[idx];
    s.metadata = m;
    s.updated_ms = os.now_ms();
    Ok(json_resp(StatusCode::OK, json!({"metadata": s.metadata})))
}

pub(super) fn meta_get_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let key = req.param("key");
    let v = st.servers[idx]
        .metadata
        .get(key)
        .ok_or_else(|| err(404, "Metadata item was not found"))?;
    Ok(json_resp(StatusCode::OK, json!({"meta": {key: v}})))
}

pub(super) fn meta_put_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
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
    s.updated_ms = os.now_ms();
    Ok(json_resp(StatusCode::OK, json!({"meta": m})))
}

pub(super) fn meta_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    if st.servers[idx].metadata.remove(req.param("key")).is_none() {
        return Err(err(404, "Metadata item was not found"));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `parameter_types.tag`'s jsonschema refusal of one tag (`None` when valid).
fn tag_problem(tag: &str) -> Option<String> {
    let v = json!(tag);
    if tag.is_empty() {
        Some("'' should be non-empty".into())
    } else if tag.contains('/') || tag.contains(',') {
        Some(no_match(tag, "^[^,/]*$"))
    } else if tag.chars().count() > 60 {
        Some(format!("{} is too long", py_repr(&v)))
    } else {
        None
    }
}

/// A tag named in the URL (server_tags.py `update`).
pub(super) fn check_tag(tag: &str) -> Result<(), Response> {
    match tag_problem(tag) {
        None => Ok(()),
        Some(e) => Err(bad(&format!(
            "Tag '{tag}' is invalid. It must be a non empty string without characters '/' \
             and ','. Validation error message: {e}"
        ))),
    }
}

/// A server's tags as the database returns them: by name (the primary key's order).
pub(super) fn sorted_tags(tags: &[String]) -> Vec<String> {
    let mut t = tags.to_vec();
    t.sort();
    t.dedup();
    t
}

/// server_tags.py `_check_instance_in_valid_state`: tags change only on a server that
/// is active, paused, suspended or stopped.
fn tags_state_ok(s: &Server, action: &str) -> Result<(), Response> {
    if ["active", "paused", "suspended", "stopped"].contains(&s.vm_state.as_str()) {
        Ok(())
    } else {
        Err(conflict(action, s, "vm_state"))
    }
}

pub(super) fn tags_list_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"tags": sorted_tags(&st.servers[idx].tags)}),
    ))
}

pub(super) fn tags_replace_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    // schemas/server_tags.py `update_all`.
    check_object(&body, &["tags"], &["tags"], None)?;
    let list = match &body["tags"] {
        Value::Array(a) => a,
        other => return Err(invalid("tags", other, &not_of_type(other, &["array"]))),
    };
    if list.len() > 50 {
        return Err(invalid(
            "tags",
            &body["tags"],
            &format!("{} is too long", py_repr(&body["tags"])),
        ));
    }
    let mut tags = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let Some(name) = t.as_str() else {
            return Err(invalid(&i.to_string(), t, &not_of_type(t, &["string"])));
        };
        if let Some(e) = tag_problem(name) {
            return Err(invalid(&i.to_string(), t, &e));
        }
        tags.push(name.to_string());
    }
    let idx = find_server_idx(st, req.param("id"), cx)?;
    tags_state_ok(&st.servers[idx], "update tags")?;
    st.servers[idx].tags = sorted_tags(&tags);
    Ok(json_resp(
        StatusCode::OK,
        json!({"tags": st.servers[idx].tags}),
    ))
}

pub(super) fn tags_clear_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    tags_state_ok(&st.servers[idx], "delete tags")?;
    st.servers[idx].tags.clear();
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn tag_check_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let tag = req.param("tag");
    if !st.servers[idx].tags.iter().any(|t| t == tag) {
        return Err(err(
            404,
            &format!("Server {} has no tag '{tag}'", req.param("id")),
        ));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The bare `webob.Response` server_tags.py `update` answers with: no body, webob's
/// default Content-Type.
fn webob_empty(status: StatusCode) -> Response {
    with_header(empty(status), "content-type", "text/html; charset=UTF-8")
}

pub(super) fn tag_add_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let tag = req.param("tag").to_string();
    let idx = find_server_idx(st, req.param("id"), cx)?;
    tags_state_ok(&st.servers[idx], "update tag")?;
    check_tag(&tag)?;
    let s = &mut st.servers[idx];
    if s.tags.len() >= 50 {
        return Err(bad("The number of tags exceeded the per-server limit 50"));
    }
    if s.tags.contains(&tag) {
        return Ok(webob_empty(StatusCode::NO_CONTENT));
    }
    s.tags.push(tag.clone());
    s.tags = sorted_tags(&s.tags);
    let r = webob_empty(StatusCode::CREATED);
    Ok(with_header(
        r,
        "location",
        &format!("{}/v2.1/servers/{}/tags/{tag}", os.ctx.urls.compute, s.id),
    ))
}

pub(super) fn tag_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    tags_state_ok(&st.servers[idx], "delete tag")?;
    let tag = req.param("tag");
    let s = &mut st.servers[idx];
    let before = s.tags.len();
    s.tags.retain(|t| t != tag);
    if before == s.tags.len() {
        return Err(err(404, &format!("Instance {} has no tag '{tag}'", s.id)));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn server_ips_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"addresses": addresses(st, &st.servers[idx], false)}),
    ))
}

pub(super) fn server_interfaces_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
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

/// A Neutron security group rule as Nova's proxy shows it
/// (`_convert_to_nova_security_group_rule_format`, `_format_security_group_rule`):
/// a protocol without ports is the whole range (1-65535 for TCP/UDP, -1 otherwise);
/// a rule names either its remote group or its address range (any address when none).
fn nova_sg_rule(st: &State, rule: &Value) -> Value {
    let protocol = rule["protocol"].as_str();
    let (from, to) = match protocol {
        Some(p) if rule["port_range_min"].is_null() && rule["port_range_max"].is_null() => {
            if p.eq_ignore_ascii_case("tcp") || p.eq_ignore_ascii_case("udp") {
                (json!(1), json!(65535))
            } else {
                (json!(-1), json!(-1))
            }
        }
        _ => (
            rule["port_range_min"].clone(),
            rule["port_range_max"].clone(),
        ),
    };
    let (group, range) = match rule["remote_group_id"].as_str() {
        Some(gid) => {
            let g = st.security_groups.iter().find(|g| g.id == gid);
            (
                json!({"name": g.map(|g| g.name.clone()), "tenant_id": g.map(|g| g.project_id.clone())}),
                json!({}),
            )
        }
        None => (
            json!({}),
            json!({"cidr": rule["remote_ip_prefix"].as_str().unwrap_or("0.0.0.0/0")}),
        ),
    };
    json!({
        "id": rule["id"],
        "parent_group_id": rule["security_group_id"],
        "ip_protocol": protocol,
        "from_port": from,
        "to_port": to,
        "group": group,
        "ip_range": range,
    })
}

/// `GET /servers/{id}/os-security-groups`: the server's security groups with their
/// ingress rules, sorted by project and name (Nova's `ServerSecurityGroupController`).
pub(super) fn server_sgs_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_idx(st, req.param("id"), cx)?;
    let s = &st.servers[idx];
    let mut list: Vec<Value> = s
        .security_groups
        .iter()
        .filter_map(|n| {
            st.security_groups
                .iter()
                .find(|g| g.project_id == s.project_id && (&g.id == n || &g.name == n))
        })
        .map(|g| {
            json!({
                "id": g.id,
                "name": g.name,
                "description": g.description,
                "tenant_id": g.project_id,
                "rules": g.rules.iter().filter(|r| r["direction"] == "ingress").map(|r| nova_sg_rule(st, r)).collect::<Vec<_>>(),
            })
        })
        .collect();
    list.sort_by(|a, b| {
        (a["tenant_id"].as_str(), a["name"].as_str())
            .cmp(&(b["tenant_id"].as_str(), b["name"].as_str()))
    });
    Ok(json_resp(StatusCode::OK, json!({"security_groups": list})))
}
