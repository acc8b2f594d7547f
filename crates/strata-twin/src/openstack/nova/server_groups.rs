//! Server groups (`/os-server-groups`, nova/api/openstack/compute/server_groups.py):
//! list (own project, or every project for an admin with `all_projects`; `limit` and
//! `offset` as `common.limited` cuts), create (`policies: [..]` before 2.64, `policy` and
//! `rules` from 2.64, the soft policies from 2.15, the `server_groups` quota), show and
//! delete; the boot hint `group` (membership, the `server_group_members` quota) and what
//! the scheduler makes of a group: the `ServerGroupAntiAffinityFilter` and
//! `ServerGroupAffinityFilter` (nova/scheduler/filters/affinity_filter.py) and the
//! soft-(anti-)affinity weighers (nova/scheduler/weights/affinity.py).

use super::*;

/// The policies a microversion's create schema accepts
/// (nova/api/openstack/compute/schemas/server_groups.py `create`, `create_v215`).
fn policies_for(mv: u32) -> &'static [&'static str] {
    if mv >= 15 {
        &[
            "anti-affinity",
            "affinity",
            "soft-anti-affinity",
            "soft-affinity",
        ]
    } else {
        &["anti-affinity", "affinity"]
    }
}

fn py_list(items: &[&str]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Newest first: `_get_not_deleted` reads them with `InstanceList.get_by_filters`, whose
/// default order is `created_at` then `id`, both descending.
fn live_members<'a>(st: &'a State, g: &'a ServerGroup) -> impl Iterator<Item = &'a String> {
    let mut live: Vec<&Server> = st
        .servers
        .iter()
        .filter(|s| !s.deleted && g.members.contains(&s.id))
        .collect();
    live.sort_by_key(|s| std::cmp::Reverse((s.created_ms, s.seq)));
    live.into_iter().map(|s| &s.id)
}

/// server_groups.py `_format_server_group`.
fn group_json(st: &State, g: &ServerGroup, mv: u32) -> Value {
    let mut v = json!({"id": g.id, "name": g.name});
    if mv >= 64 {
        v["policy"] = json!(g.policy);
        v["rules"] = match g.max_server_per_host {
            Some(n) => json!({"max_server_per_host": n}),
            None => json!({}),
        };
    } else {
        v["policies"] = json!([g.policy]);
        v["metadata"] = json!({});
    }
    v["members"] = json!(live_members(st, g).collect::<Vec<_>>());
    if mv >= 13 {
        v["project_id"] = json!(g.project_id);
        v["user_id"] = json!(g.user_id);
    }
    v
}

fn not_found(id: &str) -> Response {
    err(404, &format!("Instance group {id} could not be found."))
}

/// Find a group the caller may act on: 404 when it does not exist, then the policy
/// check against the group's project (`show`/`delete` call `context.can` with
/// `target={'project_id': sg.project_id}`; the defaults allow the project or an admin).
fn find_group(st: &State, id: &str, cx: &Cx, action: &str) -> Result<usize, Response> {
    let idx = st
        .server_groups
        .iter()
        .position(|g| g.id == id)
        .ok_or_else(|| not_found(id))?;
    if st.server_groups[idx].project_id != cx.caller.project() {
        cx.require_admin(&format!("os_compute_api:os-server-groups:{action}"))?;
    }
    Ok(idx)
}

/// A `non_negative_integer` query parameter of the index schema.
fn query_count(req: &Req, name: &str) -> Result<Option<usize>, Response> {
    match req.q(name) {
        None => Ok(None),
        Some(v) => v.parse::<usize>().map(Some).map_err(|_| {
            bad(&format!(
                "Invalid input for query parameters {name}. Value: {v}. '{v}' does not match '^[0-9]*$'"
            ))
        }),
    }
}

pub(super) fn groups_list_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    // `index_query_v275` forbids other query parameters from 2.75.
    if cx.mv >= 75
        && let Some((k, v)) = req
            .query
            .iter()
            .find(|(k, _)| !["all_projects", "limit", "offset"].contains(&k.as_str()))
    {
        return Err(bad(&format!(
            "Invalid input for query parameters {k}. Value: {v}. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let limit = query_count(req, "limit")?;
    let offset = query_count(req, "offset")?.unwrap_or(0);
    // `'all_projects' in req.GET and context.is_admin`: any value; a non-admin silently
    // gets their own project's groups.
    let all = req.q("all_projects").is_some() && cx.admin();
    let groups: Vec<Value> = st
        .server_groups
        .iter()
        .filter(|g| all || g.project_id == cx.caller.project())
        .skip(offset)
        // `common.limited`: at most `[api] max_limit` (1000) items.
        .take(limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT))
        .map(|g| group_json(st, g, cx.mv))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"server_groups": groups})))
}

pub(super) fn group_get_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_group(st, req.param("id"), cx, "show")?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"server_group": group_json(st, &st.server_groups[idx], cx.mv)}),
    ))
}

pub(super) fn group_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    // The members keep running; the group's record goes.
    let idx = find_group(st, req.param("id"), cx, "delete")?;
    st.server_groups.remove(idx);
    Ok(empty(StatusCode::NO_CONTENT))
}

pub(super) fn group_create_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req
        .json()
        .ok_or_else(|| bad("The request body is not valid JSON."))?;
    // schemas/server_groups.py `create`/`create_v215`/`create_v264`, checked in
    // jsonschema's order (the first error wins): each object's properties in the
    // schema's order, then its `required`, then `additionalProperties`.
    let Some(root) = body.as_object() else {
        return Err(bad(&not_of_type(&body, &["object"])));
    };
    let g = match root.get("server_group") {
        Some(g) if !g.is_object() => {
            return Err(invalid("server_group", g, &not_of_type(g, &["object"])));
        }
        Some(g) => g,
        None => return Err(bad("'server_group' is a required property")),
    };
    let m = g.as_object().expect("an object");
    let new_style = cx.mv >= 64;
    let enum_ = policies_for(cx.mv);
    let not_one_of = |field: &str, v: &Value| {
        invalid(
            field,
            v,
            &format!("{} is not one of {}", py_repr(v), py_list(enum_)),
        )
    };
    let name = match m.get("name") {
        Some(v) => Some(check_name("name", v)?.to_string()),
        None => None,
    };
    let mut policy = None;
    let mut rules = serde_json::Map::new();
    let mut max_server_per_host = None;
    if new_style {
        if let Some(v) = m.get("policy") {
            match v {
                Value::String(p) if enum_.contains(&p.as_str()) => policy = Some(p.clone()),
                Value::String(_) => return Err(not_one_of("policy", v)),
                other => return Err(invalid("policy", other, &not_of_type(other, &["string"]))),
            }
        }
        match m.get("rules") {
            None => {}
            Some(Value::Object(r)) => {
                // `parameter_types.positive_integer`: an integer or a string of
                // digits, at least 1.
                if let Some(v) = r.get("max_server_per_host") {
                    let n = match v {
                        Value::Number(n) => n.as_i64(),
                        Value::String(t)
                            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            t.parse::<i64>().ok()
                        }
                        _ => None,
                    }
                    .ok_or_else(|| {
                        invalid(
                            "max_server_per_host",
                            v,
                            &format!("{} is not valid under any of the given schemas", py_repr(v)),
                        )
                    })?;
                    if n < 1 {
                        return Err(invalid(
                            "max_server_per_host",
                            v,
                            &format!("{n} is less than the minimum of 1"),
                        ));
                    }
                    max_server_per_host = Some(n);
                }
                check_object(&m["rules"], &["max_server_per_host"], &[], Some("rules"))?;
                rules = r.clone();
            }
            Some(v) => return Err(invalid("rules", v, &not_of_type(v, &["object"]))),
        }
    } else if let Some(v) = m.get("policies") {
        let Value::Array(list) = v else {
            return Err(invalid("policies", v, &not_of_type(v, &["array"])));
        };
        // prefixItems, uniqueItems, minItems, maxItems.
        match list.first() {
            Some(Value::String(p)) if enum_.contains(&p.as_str()) => policy = Some(p.clone()),
            Some(x @ Value::String(_)) => return Err(not_one_of("0", x)),
            Some(x) => return Err(invalid("0", x, &not_of_type(x, &["string"]))),
            None => {}
        }
        if list.len() > 1 && list.iter().skip(1).any(|x| *x == list[0]) {
            return Err(invalid(
                "policies",
                v,
                &format!("{} has non-unique elements", py_repr(v)),
            ));
        }
        if list.is_empty() {
            return Err(invalid("policies", v, "[] should be non-empty"));
        }
        if list.len() > 1 {
            return Err(invalid(
                "policies",
                v,
                &format!("{} is too long", py_repr(v)),
            ));
        }
    }
    let required = if new_style { "policy" } else { "policies" };
    for r in ["name", required] {
        if !m.contains_key(r) {
            return Err(invalid(
                "server_group",
                g,
                &format!("'{r}' is a required property"),
            ));
        }
    }
    let allowed: &[&str] = if new_style {
        &["name", "policy", "rules"]
    } else {
        &["name", "policies"]
    };
    check_object(g, allowed, &[], Some("server_group"))?;
    if let Some(k) = root.keys().find(|k| *k != "server_group") {
        return Err(bad(&format!(
            "Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let (Some(name), Some(policy)) = (name, policy) else {
        return Err(bad("'name' is a required property"));
    };
    // server_groups.py `create`: "Only anti-affinity policy supports rules."
    if policy != "anti-affinity" && !rules.is_empty() {
        return Err(bad("Only anti-affinity policy supports rules."));
    }
    // The `server_groups` quota, counted per project (nova/quota.py
    // `_server_group_count`): "Quota exceeded, too many server groups."
    let project = cx.caller.project().to_string();
    let limit = quota_limits(st, &project)
        .get("server_groups")
        .copied()
        .unwrap_or(10);
    let used = st
        .server_groups
        .iter()
        .filter(|g| g.project_id == project)
        .count() as i64;
    if limit >= 0 && used + 1 > limit {
        return Err(err(403, "Quota exceeded, too many server groups."));
    }
    let group = ServerGroup {
        id: os.uuid(),
        name,
        policy,
        max_server_per_host,
        members: vec![],
        project_id: project,
        user_id: cx.caller.user_id.clone(),
        created_ms: os.now_ms(),
    };
    let v = group_json(st, &group, cx.mv);
    st.server_groups.push(group);
    Ok(json_resp(StatusCode::OK, json!({"server_group": v})))
}

/// The `group` scheduler hint of a boot request: the group's index, after the
/// schema's uuid check (schemas/servers.py `_hints`) and the lookup
/// (compute/api.py `_get_requested_instance_group`, InstanceGroupNotFound is a 400).
pub(super) fn requested_group(
    st: &State,
    hints: &BTreeMap<String, Value>,
) -> Result<Option<usize>, Response> {
    let Some(v) = hints.get("group") else {
        return Ok(None);
    };
    // The boot handler wraps every hint in a list.
    let raw = match v {
        Value::Array(a) if a.len() == 1 => a[0].clone(),
        other => other.clone(),
    };
    let id = raw
        .as_str()
        .filter(|s| uuid::Uuid::parse_str(s).is_ok())
        .ok_or_else(|| {
            let shown = raw.as_str().map_or_else(|| raw.to_string(), str::to_string);
            bad(&format!(
                "Invalid input for field/attribute group. Value: {shown}. {raw} is not valid under any of the given schemas"
            ))
        })?;
    let id_plain = id.to_string();
    st.server_groups
        .iter()
        .position(|g| g.id == id_plain || g.id.replace('-', "") == id_plain.replace('-', ""))
        .map(Some)
        .ok_or_else(|| bad(&format!("Instance group {id_plain} could not be found.")))
}

/// compute/api.py `_provision_instances`: each new member is checked against the
/// `server_group_members` quota (members of the group owned by the user), a 403
/// "Quota exceeded, too many servers in group".
pub(super) fn check_members_quota(
    st: &State,
    group: usize,
    user: &str,
    project: &str,
    count: i64,
) -> Result<(), Response> {
    let g = &st.server_groups[group];
    let limit = quota_limits(st, project)
        .get("server_group_members")
        .copied()
        .unwrap_or(10);
    let used = live_members(st, g)
        .filter(|m| st.servers.iter().any(|s| &s.id == *m && s.user_id == user))
        .count() as i64;
    if limit >= 0 && used + count > limit {
        return Err(err(403, "Quota exceeded, too many servers in group"));
    }
    Ok(())
}

/// What the scheduler knows of a server's group: its policy, anti-affinity's
/// `max_server_per_host`, and how many other live members each host runs.
#[derive(Clone, Debug)]
pub(crate) struct GroupPlacement {
    policy: String,
    max_per_host: i64,
    on_host: BTreeMap<String, i64>,
}

impl GroupPlacement {
    /// The filters: `_GroupAntiAffinityFilter.host_passes` (fewer than
    /// `max_server_per_host` members on the host) and `_GroupAffinityFilter.host_passes`
    /// (a host of the group's members, when it has any). The soft policies filter
    /// nothing.
    pub(crate) fn passes(&self, host: &str) -> bool {
        let here = self.on_host.get(host).copied().unwrap_or(0);
        match self.policy.as_str() {
            "anti-affinity" => here < self.max_per_host,
            "affinity" => self.on_host.is_empty() || here > 0,
            _ => true,
        }
    }

    /// The weighers (`ServerGroupSoftAffinityWeigher`, `ServerGroupSoftAntiAffinityWeigher`):
    /// more members on the host is better for soft-affinity, fewer for
    /// soft-anti-affinity. The twin ranks this above free RAM rather than summing
    /// normalised weights.
    pub(crate) fn weight(&self, host: &str) -> i64 {
        let here = self.on_host.get(host).copied().unwrap_or(0);
        match self.policy.as_str() {
            "soft-affinity" => here,
            "soft-anti-affinity" => -here,
            _ => 0,
        }
    }
}

/// The placement constraints of the group `server_id` belongs to, counting the other
/// live members that have a host.
pub(crate) fn group_placement(st: &State, server_id: &str) -> Option<GroupPlacement> {
    let g = st
        .server_groups
        .iter()
        .find(|g| g.members.iter().any(|m| m == server_id))?;
    let mut on_host = BTreeMap::new();
    for m in g.members.iter().filter(|m| *m != server_id) {
        if let Some(h) = st
            .servers
            .iter()
            .find(|s| &s.id == m && !s.deleted)
            .and_then(|s| s.host.clone())
        {
            *on_host.entry(h).or_insert(0) += 1;
        }
    }
    Some(GroupPlacement {
        policy: g.policy.clone(),
        max_per_host: g.max_server_per_host.unwrap_or(1),
        on_host,
    })
}

/// The groups a server is in (`server_groups` of `GET /servers/{id}` from 2.71).
pub(crate) fn groups_of(st: &State, server_id: &str) -> Vec<String> {
    st.server_groups
        .iter()
        .filter(|g| g.members.iter().any(|m| m == server_id))
        .map(|g| g.id.clone())
        .collect()
}

/// A deleted server leaves its groups.
pub(crate) fn forget_member(st: &mut State, server_id: &str) {
    for g in st.server_groups.iter_mut() {
        g.members.retain(|m| m != server_id);
    }
}
