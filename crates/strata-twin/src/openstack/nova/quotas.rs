//! Compute quotas and limits: per-project quota sets with defaults and usage, updates and
//! resets, and the absolute limits document.

use super::*;

pub(crate) fn quota_limits(st: &State, project: &str) -> BTreeMap<String, i64> {
    let mut q = super::seed::nova_default_quotas();
    if let Some(over) = st.nova_quotas.get(project) {
        q.extend(over.clone());
    }
    q
}

/// Quota keys a microversion shows.
pub(super) fn quota_keys(mv: u32) -> Vec<&'static str> {
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

pub(super) fn quota_in_use(st: &State, project: &str, user: Option<&str>) -> BTreeMap<String, i64> {
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

pub(super) fn quota_set(
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

pub(super) fn quota_target(req: &Req, cx: &Cx) -> Result<String, Response> {
    let id = req.param("id").to_string();
    if id != cx.caller.project() {
        cx.require_admin("os_compute_api:os-quota-sets:show")?;
    }
    Ok(id)
}

pub(super) fn quota_show_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let id = quota_target(req, cx)?;
    let detail = req.q("usage").and_then(parse_bool).unwrap_or(false);
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota_set": quota_set(st, &id, cx.mv, true, detail, false, req.q("user_id"))}),
    ))
}

pub(super) fn quota_detail_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let id = quota_target(req, cx)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota_set": quota_set(st, &id, cx.mv, true, true, false, req.q("user_id"))}),
    ))
}

pub(super) fn quota_defaults_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let id = req.param("id").to_string();
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota_set": quota_set(st, &id, cx.mv, true, false, true, None)}),
    ))
}

pub(super) fn quota_update_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
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

pub(super) fn quota_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-quota-sets:delete")?;
    st.nova_quotas.remove(req.param("id"));
    Ok(empty(StatusCode::ACCEPTED))
}

pub(super) fn limits_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
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
