//! Network quotas: per-project limits and usage, the quota check creates run, and the quota
//! API (list, show, defaults, details, update, reset).

use super::*;

pub(super) fn quota_of(st: &State, project: &str, key: &str) -> i64 {
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

pub(super) fn usage_of(st: &State, project: &str) -> BTreeMap<String, i64> {
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
    u.insert(
        "rbac_policy".to_string(),
        st.rbac_policies
            .iter()
            .filter(|p| p.project_id == project)
            .count() as i64,
    );
    for k in ["router", "floatingip", "subnetpool"] {
        u.insert(k.to_string(), 0);
    }
    u
}

pub(super) fn check_quota(
    st: &State,
    project: &str,
    key: &str,
    adding: i64,
) -> Result<(), Response> {
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

pub(super) fn quota_json(st: &State, project: &str) -> Value {
    let keys = super::seed::neutron_default_quotas();
    let m: serde_json::Map<String, Value> = keys
        .keys()
        .map(|k| (k.clone(), json!(quota_of(st, project, k))))
        .collect();
    Value::Object(m)
}

pub(super) fn quotas_list_(_os: &Os, _req: &Req, st: &mut State, c: &Caller) -> R {
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

pub(super) fn quota_target(req: &Req, c: &Caller) -> Result<String, Response> {
    let id = req.param("id").trim_end_matches(".json").to_string();
    if id != c.project() && !c.is_admin() {
        return Err(forbidden("get_quota"));
    }
    Ok(id)
}

pub(super) fn quota_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = quota_target(req, c)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota": quota_json(st, &id)}),
    ))
}

pub(super) fn quota_default_(_os: &Os, req: &Req, _st: &mut State, c: &Caller) -> R {
    quota_target(req, c)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota": super::seed::neutron_default_quotas()}),
    ))
}

pub(super) fn quota_details_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = quota_target(req, c)?;
    let used = usage_of(st, &id);
    let m: serde_json::Map<String, Value> = super::seed::neutron_default_quotas()
        .keys()
        .map(|k| (k.clone(), json!({"limit": quota_of(st, &id, k), "used": used.get(k).copied().unwrap_or(0), "reserved": 0})))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"quota": m})))
}

pub(super) fn quota_put_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
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

pub(super) fn quota_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    if !c.is_admin() {
        return Err(forbidden("delete_quota"));
    }
    st.net_quotas.remove(req.param("id"));
    Ok(empty(StatusCode::NO_CONTENT))
}
