//! Security groups and their rules: list, create, show, delete (the default group is
//! protected). Rules are converted, validated and checked for duplicates as Neutron's
//! `securitygroups_db` does.

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

/// IP protocol names a rule accepts, with their numbers (neutron-lib's `IP_PROTOCOL_MAP`).
const IP_PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ip", 4),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// Protocols whose rules take a port range: DCCP, SCTP, TCP, UDP, UDP-Lite.
const PORT_PROTOCOLS: &[u8] = &[33, 132, 6, 17, 136];

/// The protocol as Neutron stores it (`convert_protocol`): a lower-case name or a
/// number 0..=255 as a string; `any` is no protocol.
fn rule_protocol(v: Option<&Value>) -> Result<Option<String>, Response> {
    let s = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    };
    if s == "any" {
        return Ok(None);
    }
    match s.parse::<i64>() {
        Ok(n) if (0..=255).contains(&n) => return Ok(Some(s)),
        Ok(_) => {}
        Err(_) => {
            let lower = s.to_lowercase();
            if lower == "any" || IP_PROTOCOLS.iter().any(|(p, _)| *p == lower) {
                return Ok(Some(lower));
            }
        }
    }
    let names: Vec<String> = ["None".to_string(), "'any'".to_string()]
        .into_iter()
        .chain(IP_PROTOCOLS.iter().map(|(p, _)| format!("'{p}'")))
        .collect();
    Err(nerr(
        400,
        "SecurityGroupRuleInvalidProtocol",
        &format!(
            "Security group rule protocol {s} not supported. Only protocol values ({}) and integer representations [0 to 255] are supported.",
            names.join(", ")
        ),
    ))
}

fn protocol_number(p: &str) -> u8 {
    IP_PROTOCOLS
        .iter()
        .find(|(n, _)| *n == p)
        .map(|(_, n)| *n)
        .or_else(|| p.parse().ok())
        .unwrap_or(0)
}

/// A port bound (`convert_validate_port_value`): 0..=65535, as a number or a string.
fn rule_port(v: Option<&Value>) -> Result<Option<i64>, Response> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if (0..=65535).contains(&n) => Ok(Some(n)),
        _ => {
            let shown = v.map(|v| v.as_str().map_or(v.to_string(), str::to_string));
            Err(nerr(
                400,
                "SecurityGroupInvalidPortValue",
                &format!("Invalid value for port {}", shown.unwrap_or_default()),
            ))
        }
    }
}

/// The rule's remote prefix as netaddr writes it (`10.0.0.1` → `10.0.0.1/32`, host bits
/// kept) and its network (`normalized_cidr`).
fn rule_prefix(s: &str) -> Result<(String, Cidr, bool), Response> {
    let invalid = || {
        nerr(
            400,
            "InvalidCIDR",
            &format!("Invalid CIDR {s} given as IP prefix."),
        )
    };
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    let (_, v6) = parse_ip(ip).ok_or_else(invalid)?;
    let prefix = match prefix {
        Some(p) => p.parse::<u8>().map_err(|_| invalid())?,
        None if v6 => 128,
        None => 32,
    };
    let written = format!("{}/{prefix}", ip.trim());
    let cidr = match Cidr::parse(&written) {
        Ok(c) => c,
        Err(Some(normal)) => Cidr::parse(&normal).map_err(|_| invalid())?,
        Err(None) => return Err(invalid()),
    };
    Ok((written, cidr, v6))
}

/// The key two rules are duplicates under (`_rule_to_key`): any address is no address,
/// and a protocol compares by number.
fn rule_key(r: &Value) -> Vec<String> {
    let s = |k: &str| match r.get(k) {
        None | Some(Value::Null) => "+".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let prefix = match s("remote_ip_prefix").as_str() {
        "0.0.0.0/0" | "::/0" => "+".to_string(),
        p => p.to_string(),
    };
    let protocol = match r.get("protocol").and_then(Value::as_str) {
        Some(p) => protocol_number(p).to_string(),
        None => "+".to_string(),
    };
    vec![
        s("direction"),
        s("ethertype"),
        s("port_range_max"),
        s("port_range_min"),
        protocol,
        s("remote_group_id"),
        s("remote_address_group_id"),
        prefix,
        s("security_group_id"),
    ]
}

pub(super) fn sg_rule_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let b = body_of(req, "security_group_rule")?;
    let required = |k: &str| {
        bad(&format!(
            "Failed to parse request. Required attribute '{k}' not specified"
        ))
    };
    let sg_id =
        str_field(&b, "security_group_id", 255)?.ok_or_else(|| required("security_group_id"))?;
    let direction = str_field(&b, "direction", 255)?.ok_or_else(|| required("direction"))?;
    if direction != "ingress" && direction != "egress" {
        return Err(bad(&format!(
            "Invalid input for direction. Reason: '{direction}' is not in ['ingress', 'egress']."
        )));
    }
    let ethertype = match str_field(&b, "ethertype", 255)? {
        None => "IPv4".to_string(),
        Some(e) if e.eq_ignore_ascii_case("ipv4") => "IPv4".to_string(),
        Some(e) if e.eq_ignore_ascii_case("ipv6") => "IPv6".to_string(),
        Some(e) => {
            return Err(nerr(
                400,
                "SecurityGroupRuleInvalidEtherType",
                &format!(
                    "Security group rule for ethertype '{e}' not supported. Allowed values are ['IPv4', 'IPv6']."
                ),
            ));
        }
    };
    let mut protocol = rule_protocol(b.get("protocol"))?;
    // Legacy IPv6 ICMP names and number 1 become ipv6-icmp / 58 for IPv6 rules.
    if ethertype == "IPv6" {
        match protocol.as_deref() {
            Some("icmp" | "icmpv6") => protocol = Some("ipv6-icmp".into()),
            Some("1") => protocol = Some("58".into()),
            _ => {}
        }
    }
    // The API converts the prefix before the plugin validates the rule.
    let prefix = match str_field(&b, "remote_ip_prefix", 255)? {
        Some(p) if !p.is_empty() => {
            let (written, cidr, v6) = rule_prefix(&p)?;
            Some((p, written, cidr.to_string(), v6))
        }
        _ => None,
    };
    let mut min = rule_port(b.get("port_range_min"))?;
    let mut max = rule_port(b.get("port_range_max"))?;
    // The whole port range is no range.
    if min == Some(1) && max == Some(65535) {
        (min, max) = (None, None);
    }
    if min.is_some() || max.is_some() {
        let Some(p) = protocol.as_deref() else {
            return Err(nerr(
                400,
                "SecurityGroupProtocolRequiredWithPorts",
                "Must also specify protocol if port range is given.",
            ));
        };
        let num = protocol_number(p);
        if PORT_PROTOCOLS.contains(&num) {
            if min == Some(0) || max == Some(0) {
                return Err(nerr(
                    400,
                    "SecurityGroupInvalidPortValue",
                    "Invalid value for port 0",
                ));
            }
            if !matches!((min, max), (Some(a), Some(b)) if a <= b) {
                return Err(nerr(
                    400,
                    "SecurityGroupInvalidPortRange",
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                ));
            }
        } else if num == 1 || num == 58 {
            for (v, field, attr) in [
                (min, "type", "port_range_min"),
                (max, "code", "port_range_max"),
            ] {
                if let Some(v) = v.filter(|v| *v > 255) {
                    return Err(nerr(
                        400,
                        "SecurityGroupInvalidIcmpValue",
                        &format!(
                            "Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."
                        ),
                    ));
                }
            }
            if let (None, Some(code)) = (min, max) {
                return Err(nerr(
                    400,
                    "SecurityGroupMissingIcmpType",
                    &format!(
                        "ICMP code (port-range-max) {code} is provided but ICMP type (port-range-min) is missing."
                    ),
                ));
            }
        } else {
            return Err(nerr(
                400,
                "SecurityGroupInvalidProtocolForPort",
                &format!(
                    "Ports cannot be specified for protocol {num}. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE."
                ),
            ));
        }
    }
    if let Some((p, _, _, v6)) = &prefix
        && ethertype != if *v6 { "IPv6" } else { "IPv4" }
    {
        return Err(nerr(
            400,
            "SecurityGroupRuleParameterConflict",
            &format!("Conflicting value ethertype {ethertype} for CIDR {p}"),
        ));
    }
    let ipv6_only = [
        "ipv6-encap",
        "ipv6-frag",
        "ipv6-icmp",
        "icmpv6",
        "ipv6-nonxt",
        "ipv6-opts",
        "ipv6-route",
        "41",
        "44",
        "58",
        "59",
        "60",
        "43",
    ];
    if let Some(p) = protocol
        .as_deref()
        .filter(|p| ethertype == "IPv4" && ipv6_only.contains(p))
    {
        return Err(nerr(
            400,
            "SecurityGroupEthertypeConflictWithProtocol",
            &format!("Invalid ethertype IPv4 for protocol {p}."),
        ));
    }
    let remote_group = str_field(&b, "remote_group_id", 255)?;
    let remote_address_group = str_field(&b, "remote_address_group_id", 255)?;
    let remotes = [
        prefix.is_some(),
        remote_group.is_some(),
        remote_address_group.is_some(),
    ];
    if remotes.iter().filter(|r| **r).count() > 1 {
        return Err(nerr(
            400,
            "SecurityGroupMultipleRemoteEntites",
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
        ));
    }
    let visible = |g: &SecurityGroup| c.is_admin() || g.project_id == c.project();
    if let Some(rg) = &remote_group
        && !st.security_groups.iter().any(|g| &g.id == rg && visible(g))
    {
        return Err(nerr(
            404,
            "SecurityGroupNotFound",
            &format!("Security group {rg} does not exist"),
        ));
    }
    if let Some(ag) = &remote_address_group {
        return Err(nerr(
            404,
            "AddressGroupNotFound",
            &format!("Address group {ag} could not be found."),
        ));
    }
    let project = b
        .get("project_id")
        .or(b.get("tenant_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| c.project().to_string());
    if project != c.project() && !c.is_admin() {
        return Err(forbidden("create_security_group_rule"));
    }
    let idx = st
        .security_groups
        .iter()
        .position(|g| g.id == sg_id && visible(g))
        .ok_or_else(|| {
            nerr(
                404,
                "SecurityGroupNotFound",
                &format!("Security group {sg_id} does not exist"),
            )
        })?;
    let now = os.now_ms();
    let rule = json!({
        "id": os.uuid(), "direction": direction, "ethertype": ethertype, "protocol": protocol,
        "port_range_min": min, "port_range_max": max,
        "remote_ip_prefix": prefix.as_ref().map(|p| &p.1), "remote_group_id": remote_group,
        "remote_address_group_id": null, "security_group_id": sg_id, "tenant_id": project,
        "project_id": project, "description": str_field(&b, "description", 255)?.unwrap_or_default(),
        "normalized_cidr": prefix.as_ref().map(|p| &p.2),
        "belongs_to_default_sg": st.security_groups[idx].name == "default",
        "tags": [], "created_at": iso(now), "updated_at": iso(now), "revision_number": 0,
    });
    let key = rule_key(&rule);
    if let Some(dup) = st.security_groups[idx]
        .rules
        .iter()
        .find(|r| rule_key(r) == key)
    {
        let id = dup["id"].as_str().unwrap_or_default();
        return Err(nerr(
            409,
            "SecurityGroupRuleExists",
            &format!("Security group rule already exists. Rule id is {id}."),
        ));
    }
    let owner = st.security_groups[idx].project_id.clone();
    check_quota(st, &owner, "security_group_rule", 1)?;
    let g = &mut st.security_groups[idx];
    g.rules.push(rule.clone());
    g.revision += 1;
    g.updated_ms = now;
    Ok(json_resp(
        StatusCode::CREATED,
        json!({"security_group_rule": rule}),
    ))
}

fn rule_not_found(id: &str) -> Response {
    nerr(
        404,
        "SecurityGroupRuleNotFound",
        &format!("Security group rule {id} does not exist"),
    )
}

pub(super) fn sg_rule_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = req.param("id");
    let rule = st
        .security_groups
        .iter()
        .filter(|g| c.is_admin() || g.project_id == c.project())
        .flat_map(|g| g.rules.iter())
        .find(|r| r["id"] == id)
        .ok_or_else(|| rule_not_found(id))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"security_group_rule": rule}),
    ))
}

pub(super) fn sg_rule_delete_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let id = req.param("id");
    let now = os.now_ms();
    let g = st
        .security_groups
        .iter_mut()
        .filter(|g| c.is_admin() || g.project_id == c.project())
        .find(|g| g.rules.iter().any(|r| r["id"] == id))
        .ok_or_else(|| rule_not_found(id))?;
    g.rules.retain(|r| r["id"] != id);
    g.revision += 1;
    g.updated_ms = now;
    Ok(empty(StatusCode::NO_CONTENT))
}
