//! Networks: the network view and visibility, provider attributes (type, physical network,
//! segmentation id) with segment conflict checks, the shared field parsers,
//! create/update/delete.

use super::*;

pub(super) fn network_json(st: &State, n: &Network, admin: bool) -> Value {
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

/// Whether a network is visible to the caller: admins see every network, projects their
/// own, shared and external ones and those an RBAC policy shares with them.
pub(super) fn net_visible(st: &State, n: &Network, c: &Caller) -> bool {
    c.is_admin() || network_usable_by(st, n, c.project())
}

/// Whether `project` (not an admin) may see and use network `n`: it owns it, the
/// network is shared (with everyone) or external, or an RBAC policy shares it with the
/// project (neutron `db_base_plugin_common` network query hooks: owner, or a matching
/// `networkrbacs` entry with `access_as_shared`/`access_as_external`).
pub(crate) fn network_usable_by(st: &State, n: &Network, project: &str) -> bool {
    n.project_id == project || n.shared || n.external || shared_with(st, &n.id, project)
}

/// Whether an `access_as_shared` policy on the network names `project` (or `*`): what
/// Neutron reports as `shared` to that project.
pub(super) fn shared_with(st: &State, network_id: &str, project: &str) -> bool {
    st.rbac_policies.iter().any(|p| {
        p.object_type == "network"
            && p.object_id == network_id
            && p.action == "access_as_shared"
            && (p.target_tenant == project || p.target_tenant == "*")
    })
}

pub(super) fn find_net(st: &State, id: &str, c: &Caller) -> Result<usize, Response> {
    st.networks
        .iter()
        .position(|n| n.id == id && net_visible(st, n, c))
        .ok_or_else(|| not_found("network", id))
}

/// The network as the caller sees it: `shared` is true where a policy shares it with
/// the caller's project.
fn network_view(st: &State, n: &Network, c: &Caller) -> Value {
    let mut v = network_json(st, n, c.is_admin());
    if !n.shared && shared_with(st, &n.id, c.project()) {
        v["shared"] = json!(true);
    }
    v
}

pub(super) fn networks_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let items: Vec<Value> = st
        .networks
        .iter()
        .filter(|n| net_visible(st, n, c))
        .map(|n| network_view(st, n, c))
        .collect();
    list_response(os, req, "networks", items)
}

pub(super) fn network_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_net(st, req.param("id"), c)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"network": show_fields(req, network_view(st, &st.networks[idx], c))}),
    ))
}

/// Validated provider attributes: (type, physnet, segmentation id).
pub(super) type Provider = (String, Option<String>, Option<i64>);

pub(super) fn provider_attrs(
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
            // The physnets ml2_conf.ini allows (neutron
            // `neutron/plugins/ml2/drivers/type_flat.py` `validate_provider_segment`:
            // `*` allows any, an empty list disables flat networks).
            let flat = &st.ml2.flat_networks;
            if flat.is_empty() {
                return Err(invalid_input("Flat provider networks are disabled"));
            }
            if !flat.iter().any(|f| f == "*" || *f == p) {
                return Err(invalid_input(&format!(
                    "physical_network '{p}' unknown for flat provider network"
                )));
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
            // neutron `neutron/plugins/ml2/drivers/type_vlan.py`
            // `VlanTypeDriver.validate_provider_segment`: the physnet must be one
            // `[ml2_type_vlan] network_vlan_ranges` names; a given segmentation id only
            // has to be a VLAN tag (an admin's provider network may sit outside the
            // tenant ranges); without one, `reserve_provider_segment` allocates from
            // the ranges and answers NoNetworkAvailable when none is free.
            let ranges = &st.ml2.vlan_ranges;
            if let Some(p) = &phys
                && !ranges.contains_key(p)
            {
                return Err(invalid_input(&format!(
                    "physical_network '{p}' unknown for VLAN provider network"
                )));
            }
            let (p, s) = match (phys, seg) {
                (Some(p), Some(s)) => (p, s),
                (None, Some(_)) => {
                    return Err(invalid_input(
                        "segmentation_id requires physical_network for VLAN provider network",
                    ));
                }
                (p, None) => {
                    let candidates = ranges
                        .iter()
                        .filter(|(name, _)| p.as_ref().is_none_or(|p| p == *name))
                        .flat_map(|(name, rs)| {
                            rs.iter().flat_map(move |(lo, hi)| {
                                (*lo..=*hi).map(move |s| (name.clone(), s))
                            })
                        });
                    let mut free = None;
                    for (name, s) in candidates {
                        if !taken(&|n| {
                            n.network_type == "vlan"
                                && n.physical_network.as_deref() == Some(name.as_str())
                                && n.segmentation_id == Some(s)
                        }) {
                            free = Some((name, s));
                            break;
                        }
                    }
                    free.ok_or_else(|| nerr(503, "NoNetworkAvailable", "Unable to create the network. No tenant network is available for allocation."))?
                }
            };
            if !(1..=4094).contains(&s) {
                return Err(invalid_input(
                    "segmentation_id out of range (1 through 4094)",
                ));
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

pub(super) fn bool_field(b: &Value, k: &str, default: bool) -> Result<bool, Response> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => as_bool(v).ok_or_else(|| {
            bad(&format!(
                "Invalid input for {k}. Reason: '{v}' is not a valid boolean value."
            ))
        }),
    }
}

pub(super) fn str_field(b: &Value, k: &str, max: usize) -> Result<Option<String>, Response> {
    match b.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(v) => Err(bad(&format!(
            "Invalid input for {k}. Reason: '{v}' is not a valid string."
        ))),
    }
}

pub(super) fn tags_field(b: &Value) -> Result<Option<Vec<String>>, Response> {
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

pub(super) fn create_network(
    os: &Os,
    st: &mut State,
    c: &Caller,
    b: &Value,
) -> Result<Network, Response> {
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
    let now = os.now_ms();
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

pub(super) fn network_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
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

pub(super) fn network_update_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
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
    n.updated_ms = os.now_ms();
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
    // A network's RBAC policies go with it (a foreign key with ON DELETE CASCADE).
    st.rbac_policies.retain(|p| p.object_id != id);
    st.networks.retain(|n| n.id != id);
    Ok(())
}

pub(super) fn network_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_net(st, req.param("id"), c)?;
    if st.networks[idx].project_id != c.project() && !c.is_admin() {
        return Err(forbidden("delete_network"));
    }
    let id = st.networks[idx].id.clone();
    remove_network(st, &id)?;
    Ok(empty(StatusCode::NO_CONTENT))
}
