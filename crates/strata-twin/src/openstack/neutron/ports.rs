//! Ports: fixed IP allocation from subnets, the default security group per project, binding
//! to a host, and the create/bind/activate/release calls Nova's server life cycle makes.

use super::*;

pub(super) fn next_ip(ports: &[Port], s: &Subnet) -> Option<String> {
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

pub(super) fn port_json(st: &State, p: &Port, admin: bool) -> Value {
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

pub(super) fn port_visible(st: &State, p: &Port, c: &Caller) -> bool {
    c.is_admin()
        || p.project_id == c.project()
        || st
            .networks
            .iter()
            .any(|n| n.id == p.network_id && n.project_id == c.project())
}

pub(super) fn find_port(st: &State, id: &str, c: &Caller) -> Result<usize, Response> {
    st.ports
        .iter()
        .position(|p| p.id == id && port_visible(st, p, c))
        .ok_or_else(|| not_found("port", id))
}

pub(super) fn ports_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let items: Vec<Value> = st
        .ports
        .iter()
        .filter(|p| port_visible(st, p, c))
        .map(|p| port_json(st, p, c.is_admin()))
        .collect();
    list_response(os, req, "ports", items)
}

pub(super) fn port_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
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
    let now = os.now_ms();
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

pub(super) fn build_port(os: &Os, st: &mut State, c: &Caller, b: &Value) -> Result<Port, Response> {
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
    let now = os.now_ms();
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

pub(super) fn port_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
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

pub(super) fn port_update_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
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
    p.updated_ms = os.now_ms();
    let v = port_json(st, &st.ports[idx], c.is_admin());
    Ok(json_resp(StatusCode::OK, json!({"port": v})))
}

pub(super) fn port_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_port(st, req.param("id"), c)?;
    let id = st.ports[idx].id.clone();
    st.ports.remove(idx);
    for s in st.servers.iter_mut() {
        s.ports.retain(|p| p != &id);
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Bind a port to a server on a host (Nova's side of a boot).
pub(crate) fn bind_port(st: &mut State, port: &str, device: &str, host: &str, now: i64) {
    if let Some(p) = st.ports.iter_mut().find(|p| p.id == port) {
        p.device_id = device.to_string();
        p.device_owner = "compute:nova".into();
        p.binding_host = host.to_string();
        p.revision += 1;
        p.updated_ms = now;
    }
}

pub(crate) fn activate_ports(st: &mut State, device: &str, now: i64) {
    for p in st.ports.iter_mut().filter(|p| p.device_id == device) {
        p.status = "ACTIVE".into();
        p.revision += 1;
        p.updated_ms = now;
    }
}

/// Delete the ports Nova created for a server.
pub(crate) fn release_ports(st: &mut State, device: &str) {
    st.ports.retain(|p| p.device_id != device);
}
