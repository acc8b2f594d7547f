//! Compute quotas and limits: per-project quota sets with defaults and usage, updates and
//! resets, and the absolute limits document. Under the unified-limits driver
//! (`[quota] driver = nova.quota.UnifiedLimitsDriver`) the limits are Keystone's
//! ([`unified_check`]) and the quota-set API only reads.

use super::*;

/// Keystone resource names nova's unified-limits driver shows as legacy quota keys
/// (`nova/limit/placement.py` `LEGACY_LIMITS`).
const LEGACY_NAMES: &[(&str, &str)] = &[
    ("servers", "instances"),
    ("class:VCPU", "cores"),
    ("class:MEMORY_MB", "ram"),
];

/// The resources nova enforces even with no limit registered: their limit is then 0
/// (`[quota] unified_limits_resource_strategy = require`, whose default list is
/// `servers`).
const REQUIRED: &[&str] = &["servers"];

/// The id of the Keystone service whose limits nova reads (`[oslo_limit]
/// endpoint_service_type`).
fn limits_service<'a>(st: &'a State, service_type: &str) -> Option<&'a str> {
    st.services
        .iter()
        .find(|s| s.kind == service_type)
        .map(|s| s.id.as_str())
}

/// A project's limit on one Keystone resource as nova enforces it: its own limit,
/// else the registered default; unregistered resources are unlimited (-1) unless
/// required (0).
fn unified_limit(st: &State, service: &str, project: &str, resource: &str) -> i64 {
    super::super::limits::effective_limit(st, service, project, resource)
        .unwrap_or(if REQUIRED.contains(&resource) { 0 } else { -1 })
}

/// What a project holds, by Keystone resource name: its servers and the Placement
/// resources of their flavors (`class:VCPU`, `class:CUSTOM_PCI_10DE_2330`, ...).
fn unified_usage(st: &State, project: &str) -> BTreeMap<String, i64> {
    let mut used = BTreeMap::from([("servers".to_string(), 0)]);
    for s in st
        .servers
        .iter()
        .filter(|s| !s.deleted && s.project_id == project)
    {
        *used.entry("servers".into()).or_insert(0) += 1;
        for (rc, n) in flavor_resources(st, &s.flavor).unwrap_or_default() {
            *used.entry(format!("class:{rc}")).or_insert(0) += n;
        }
    }
    used
}

/// Nova's unified-limits check for `count` servers of a flavor
/// (`nova/limit/placement.py` `enforce_num_instances_and_flavor`): every resource of
/// the request, GPUs included, against the project's Keystone limit.
pub(super) fn unified_check(
    st: &State,
    service_type: &str,
    project: &str,
    count: i64,
    f: &FlavorSnap,
) -> Result<(), Response> {
    let Some(service) = limits_service(st, service_type) else {
        return Err(err(
            500,
            &format!("Keystone has no service of type {service_type} to read limits from"),
        ));
    };
    let mut deltas = BTreeMap::from([("servers".to_string(), count)]);
    for (rc, n) in flavor_resources(st, f).map_err(|e| bad(&e))? {
        deltas.insert(format!("class:{rc}"), n * count);
    }
    let used = unified_usage(st, project);
    for (resource, delta) in &deltas {
        let limit = unified_limit(st, service, project, resource);
        let have = used.get(resource).copied().unwrap_or(0);
        if limit >= 0 && have + delta > limit {
            let name = LEGACY_NAMES
                .iter()
                .find(|(k, _)| k == resource)
                .map_or(resource.as_str(), |(_, legacy)| *legacy);
            return Err(err(
                403,
                &format!(
                    "Quota exceeded for {name}: Requested {delta}, but already used {have} of {limit} {name}"
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn quota_limits(st: &State, project: &str) -> BTreeMap<String, i64> {
    let mut q = super::seed::nova_default_quotas();
    if let Some(service_type) = &st.nova_unified_limits {
        let service = limits_service(st, service_type).unwrap_or("");
        for (resource, legacy) in LEGACY_NAMES {
            q.insert(
                (*legacy).to_string(),
                unified_limit(st, service, project, resource),
            );
        }
        return q;
    }
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
    u.insert(
        "server_groups".into(),
        st.server_groups
            .iter()
            .filter(|g| g.project_id == project)
            .count() as i64,
    );
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

pub(super) fn quota_target(req: &Req, st: &State, cx: &Cx) -> Result<String, Response> {
    let id = req.param("id").to_string();
    if id != cx.caller.project() {
        cx.require_admin("os_compute_api:os-quota-sets:show")?;
    }
    verify_project(st, &id)?;
    Ok(id)
}

/// nova/api/openstack/identity.py `verify_project_id`: Keystone must know the project
/// (quota_sets.py asks before it shows, details, updates or gives the defaults).
pub(super) fn verify_project(st: &State, id: &str) -> Result<(), Response> {
    if st.projects.iter().any(|p| p.id == id) {
        Ok(())
    } else {
        Err(bad(&format!("Project ID {id} is not a valid project.")))
    }
}

pub(super) fn quota_show_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let id = quota_target(req, st, cx)?;
    let detail = req.q("usage").and_then(parse_bool).unwrap_or(false);
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota_set": quota_set(st, &id, cx.mv, true, detail, false, req.q("user_id"))}),
    ))
}

pub(super) fn quota_detail_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let id = quota_target(req, st, cx)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"quota_set": quota_set(st, &id, cx.mv, true, true, false, req.q("user_id"))}),
    ))
}

pub(super) fn quota_defaults_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let id = req.param("id").to_string();
    verify_project(st, &id)?;
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
    let unknown = q
        .keys()
        .find(|k| *k != "force" && !keys.contains(&k.as_str()));
    if let Some(k) = unknown {
        return Err(invalid(
            "quota_set",
            &body["quota_set"],
            &format!("Additional properties are not allowed ('{k}' was unexpected)"),
        ));
    }
    verify_project(st, &id)?;
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
        // schemas/quota_sets.py `_common_quota`: an integer, or a string of one.
        if let Value::String(t) = v {
            let digits = t.strip_prefix('-').unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(k, v, &no_match(t, "^-?[0-9]+$")));
            }
        }
        let n = as_int(v).ok_or_else(|| {
            invalid(
                k,
                v,
                &format!("{} is not of type 'integer', 'string'", py_repr(v)),
            )
        })?;
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
    // Under unified limits the API is read-only: it checks the body and answers the
    // current (Keystone) limits (`nova/api/openstack/compute/quota_sets.py` update).
    if st.nova_unified_limits.is_some() {
        updates.clear();
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
    put(
        "totalServerGroupsUsed",
        st.server_groups
            .iter()
            .filter(|g| g.project_id == project)
            .count() as i64,
    );
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
