//! RBAC policies (`/v2.0/rbac-policies`, the `rbac-policies` extension) on networks:
//! `access_as_shared` lets the target project see the network, its subnets, and attach
//! ports to it; `access_as_external` makes it usable as an external network.
//!
//! Checked against openstack/neutron: `neutron/db/rbac_db_mixin.py`
//! (`RbacPluginMixin.create_rbac_policy`: a duplicate is `DuplicateRbacPolicy`, 409;
//! `delete_rbac_policy`: a refusing callback is `RbacPolicyInUse`, 409; a policy not
//! found is `RbacPolicyNotFound`, 404) and `neutron/db/db_base_plugin_v2.py`
//! (`_validate_network_rbac_policy_change`: only admins manipulate policies on
//! networks they do not own, `InvalidInput`; removing a project's access while it has
//! ports on the network, with no wildcard policy left, is refused through
//! `ensure_no_tenant_ports_on_network`, `InvalidSharedSetting`). The per-project
//! `rbac_policy` quota (default 10) counts the policies a project owns.

use super::*;

const OBJECT_TYPES: &[&str] = &[
    "address_group",
    "address_scope",
    "bgpvpn",
    "network",
    "qos_policy",
    "security_group",
    "subnetpool",
];
const NETWORK_ACTIONS: &[&str] = &["access_as_external", "access_as_shared"];

fn rbac_json(p: &RbacPolicy) -> Value {
    json!({
        "id": p.id,
        "project_id": p.project_id,
        "tenant_id": p.project_id,
        "object_type": p.object_type,
        "object_id": p.object_id,
        "action": p.action,
        "target_tenant": p.target_tenant,
    })
}

/// Admins see every policy; a project sees those it owns and those that target it.
fn rbac_visible(p: &RbacPolicy, c: &Caller) -> bool {
    c.is_admin() || p.project_id == c.project() || p.target_tenant == c.project()
}

fn rbac_not_found(id: &str) -> Response {
    nerr(
        404,
        "RbacPolicyNotFound",
        &format!("RBAC policy of type network with ID {id} not found"),
    )
}

fn find_rbac(st: &State, id: &str, c: &Caller) -> Result<usize, Response> {
    st.rbac_policies
        .iter()
        .position(|p| p.id == id && rbac_visible(p, c))
        .ok_or_else(|| rbac_not_found(id))
}

pub(super) fn rbac_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let items: Vec<Value> = st
        .rbac_policies
        .iter()
        .filter(|p| rbac_visible(p, c))
        .map(rbac_json)
        .collect();
    list_response(os, req, "rbac_policies", items)
}

pub(super) fn rbac_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_rbac(st, req.param("id"), c)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"rbac_policy": show_fields(req, rbac_json(&st.rbac_policies[idx]))}),
    ))
}

fn required<'a>(b: &'a Value, key: &str) -> Result<&'a str, Response> {
    b.get(key).and_then(Value::as_str).ok_or_else(|| {
        bad(&format!(
            "Failed to parse request. Required attribute '{key}' not specified"
        ))
    })
}

pub(super) fn rbac_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let b = body_of(req, "rbac_policy")?;
    let object_type = required(&b, "object_type")?;
    if !OBJECT_TYPES.contains(&object_type) {
        return Err(bad(&format!(
            "Invalid input for object_type. Reason: '{object_type}' is not in {OBJECT_TYPES:?}."
        )));
    }
    if object_type != "network" {
        return Err(bad(&format!(
            "Invalid input for object_type. Reason: the twin keeps RBAC policies on networks only, not '{object_type}'."
        )));
    }
    let object_id = required(&b, "object_id")?.to_string();
    let action = required(&b, "action")?.to_string();
    if !NETWORK_ACTIONS.contains(&action.as_str()) {
        return Err(invalid_input(&format!(
            "Action '{action}' for object type 'network' is not supported. Valid actions: {NETWORK_ACTIONS:?}"
        )));
    }
    let target = required(&b, "target_tenant")?.to_string();
    // The network must be visible to the caller (NetworkNotFound otherwise) and, unless
    // the caller is an admin, its own.
    let nidx = find_net(st, &object_id, c)?;
    let net = &st.networks[nidx];
    if !c.is_admin() && net.project_id != c.project() {
        return Err(invalid_input(
            "Only admins can manipulate policies on networks they do not own",
        ));
    }
    let owner = b
        .get("project_id")
        .or(b.get("tenant_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| c.project().to_string());
    if st
        .rbac_policies
        .iter()
        .any(|p| p.object_id == object_id && p.action == action && p.target_tenant == target)
    {
        return Err(nerr(
            409,
            "DuplicateRbacPolicy",
            "An RBAC policy already exists with those values.",
        ));
    }
    check_quota(st, &owner, "rbac_policy", 1)?;
    let p = RbacPolicy {
        id: os.uuid(),
        project_id: owner,
        object_type: object_type.to_string(),
        object_id: object_id.clone(),
        action: action.clone(),
        target_tenant: target.clone(),
    };
    let out = rbac_json(&p);
    st.rbac_policies.push(p);
    if target == "*" {
        apply_wildcard(st, &object_id, &action, true);
    }
    Ok(json_resp(StatusCode::CREATED, json!({"rbac_policy": out})))
}

/// A wildcard policy is what the network's `shared` (or `router:external`) says.
fn apply_wildcard(st: &mut State, network_id: &str, action: &str, on: bool) {
    if let Some(n) = st.networks.iter_mut().find(|n| n.id == network_id) {
        match action {
            "access_as_shared" => n.shared = on,
            "access_as_external" => n.external = on,
            _ => {}
        }
    }
}

/// Refuse to take access away from `project` while it has ports on the network and no
/// wildcard policy keeps its access (the network's owner never loses it).
fn ensure_no_ports_of(st: &State, p: &RbacPolicy) -> Result<(), Response> {
    if p.action != "access_as_shared" {
        return Ok(());
    }
    let Some(net) = st.networks.iter().find(|n| n.id == p.object_id) else {
        return Ok(());
    };
    if p.target_tenant == net.project_id {
        return Ok(());
    }
    let others = |q: &RbacPolicy| {
        q.id != p.id && q.object_id == p.object_id && q.action == "access_as_shared"
    };
    let stranded = if p.target_tenant == "*" {
        let allowed: Vec<&str> = st
            .rbac_policies
            .iter()
            .filter(|q| others(q))
            .map(|q| q.target_tenant.as_str())
            .chain([net.project_id.as_str()])
            .collect();
        st.ports
            .iter()
            .any(|x| x.network_id == net.id && !allowed.contains(&x.project_id.as_str()))
    } else {
        let wildcard = st
            .rbac_policies
            .iter()
            .any(|q| others(q) && q.target_tenant == "*");
        !wildcard
            && st
                .ports
                .iter()
                .any(|x| x.network_id == net.id && x.project_id == p.target_tenant)
    };
    if stranded {
        return Err(nerr(
            409,
            "RbacPolicyInUse",
            &format!(
                "RBAC policy on object {} cannot be removed because other objects depend on it.\nDetails: Unable to reconfigure sharing settings for network {}. Multiple tenants are using it.",
                p.object_id, p.object_id
            ),
        ));
    }
    Ok(())
}

fn owns_or_admin(p: &RbacPolicy, c: &Caller, rule: &str) -> Result<(), Response> {
    if c.is_admin() || p.project_id == c.project() {
        Ok(())
    } else {
        Err(forbidden(rule))
    }
}

pub(super) fn rbac_update_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_rbac(st, req.param("id"), c)?;
    let b = body_of(req, "rbac_policy")?;
    let current = st.rbac_policies[idx].clone();
    owns_or_admin(&current, c, "update_rbac_policy")?;
    for k in b
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if k != "target_tenant" {
            return Err(bad(&format!("Cannot update read-only attribute {k}")));
        }
    }
    if let Some(target) = b.get("target_tenant").and_then(Value::as_str)
        && target != current.target_tenant
    {
        ensure_no_ports_of(st, &current)?;
        st.rbac_policies[idx].target_tenant = target.to_string();
        if current.target_tenant == "*" {
            apply_wildcard(st, &current.object_id, &current.action, false);
        }
        if target == "*" {
            apply_wildcard(st, &current.object_id, &current.action, true);
        }
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"rbac_policy": rbac_json(&st.rbac_policies[idx])}),
    ))
}

pub(super) fn rbac_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_rbac(st, req.param("id"), c)?;
    let p = st.rbac_policies[idx].clone();
    owns_or_admin(&p, c, "delete_rbac_policy")?;
    ensure_no_ports_of(st, &p)?;
    st.rbac_policies.remove(idx);
    if p.target_tenant == "*" {
        apply_wildcard(st, &p.object_id, &p.action, false);
    }
    Ok(empty(StatusCode::NO_CONTENT))
}
