//! Security groups and their rules: list, create, show, delete (the default group is
//! protected).

use super::*;

pub(super) fn sg_json(g: &SecurityGroup) -> Value {
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

pub(super) fn sgs_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    ensure_default_sg(os, st, c.project());
    let items: Vec<Value> = st
        .security_groups
        .iter()
        .filter(|g| c.is_admin() || g.project_id == c.project())
        .map(sg_json)
        .collect();
    list_response(os, req, "security_groups", items)
}

pub(super) fn sg_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
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
    let now = os.now_ms();
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

pub(super) fn sg_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
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

pub(super) fn sg_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
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

pub(super) fn sg_rules_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    ensure_default_sg(os, st, c.project());
    let items: Vec<Value> = st
        .security_groups
        .iter()
        .filter(|g| c.is_admin() || g.project_id == c.project())
        .flat_map(|g| g.rules.iter().cloned())
        .collect();
    list_response(os, req, "security_group_rules", items)
}
