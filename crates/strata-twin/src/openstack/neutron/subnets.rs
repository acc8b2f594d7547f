//! Subnets: CIDR and allocation pool validation, gateway handling, the DHCP port each DHCP-
//! enabled subnet gets, create/update/delete.

use super::*;

pub(super) fn subnet_json(st: &State, s: &Subnet) -> Value {
    let external = st
        .networks
        .iter()
        .find(|n| n.id == s.network_id)
        .map(|n| n.external)
        .unwrap_or(false);
    json!({
        "id": s.id,
        "name": s.name,
        "network_id": s.network_id,
        "tenant_id": s.project_id,
        "project_id": s.project_id,
        "cidr": s.cidr,
        "ip_version": s.ip_version,
        "gateway_ip": s.gateway_ip,
        "enable_dhcp": s.enable_dhcp,
        "allocation_pools": s.allocation_pools.iter().map(|(a, b)| json!({"start": a, "end": b})).collect::<Vec<_>>(),
        "dns_nameservers": s.dns_nameservers,
        "dns_publish_fixed_ip": false,
        "host_routes": s.host_routes,
        "description": s.description,
        "ipv6_address_mode": s.ipv6_address_mode,
        "ipv6_ra_mode": s.ipv6_ra_mode,
        "segment_id": null,
        "subnetpool_id": null,
        "service_types": [],
        "tags": s.tags,
        "router:external": external,
        "created_at": iso(s.created_ms),
        "updated_at": iso(s.updated_ms),
        "revision_number": s.revision,
    })
}

pub(super) fn find_subnet(st: &State, id: &str, c: &Caller) -> Result<usize, Response> {
    st.subnets
        .iter()
        .position(|s| {
            s.id == id
                && (c.is_admin()
                    || s.project_id == c.project()
                    || st
                        .networks
                        .iter()
                        .any(|n| n.id == s.network_id && network_usable_by(st, n, c.project())))
        })
        .ok_or_else(|| not_found("subnet", id))
}

pub(super) fn subnets_list_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let items: Vec<Value> = st
        .subnets
        .iter()
        .filter(|s| {
            c.is_admin()
                || s.project_id == c.project()
                || st
                    .networks
                    .iter()
                    .any(|n| n.id == s.network_id && network_usable_by(st, n, c.project()))
        })
        .map(|s| subnet_json(st, s))
        .collect();
    list_response(os, req, "subnets", items)
}

pub(super) fn subnet_get_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_subnet(st, req.param("id"), c)?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"subnet": show_fields(req, subnet_json(st, &st.subnets[idx]))}),
    ))
}

pub(super) fn parse_pools(b: &Value, cidr: &Cidr) -> Result<Option<Vec<(u128, u128)>>, Response> {
    let Some(pools) = b.get("allocation_pools").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let arr = pools.as_array().ok_or_else(|| {
        bad("Invalid input for allocation_pools. Reason: Invalid data format for IP pool.")
    })?;
    let mut out = Vec::new();
    for p in arr {
        let start = p.get("start").and_then(Value::as_str).and_then(parse_ip);
        let end = p.get("end").and_then(Value::as_str).and_then(parse_ip);
        let (Some((s, sv6)), Some((e, ev6))) = (start, end) else {
            return Err(bad(&format!(
                "Invalid input for allocation_pools. Reason: Invalid data format for IP pool: '{p}'."
            )));
        };
        if sv6 != cidr.v6 || ev6 != cidr.v6 || s > e || !cidr.contains(s) || !cidr.contains(e) {
            return Err(nerr(
                400,
                "OutOfBoundsAllocationPool",
                &format!(
                    "The allocation pool {}-{} spans beyond the subnet cidr {cidr}.",
                    cidr.ip(s),
                    cidr.ip(e)
                ),
            ));
        }
        out.push((s, e));
    }
    Ok(Some(out))
}

pub(super) fn subnet_create_one(
    os: &Os,
    st: &mut State,
    c: &Caller,
    b: &Value,
) -> Result<Subnet, Response> {
    let net_id = b.get("network_id").and_then(Value::as_str).ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'network_id' not specified")
    })?;
    let nidx = find_net(st, net_id, c)?;
    let network = st.networks[nidx].clone();
    if network.project_id != c.project() && !c.is_admin() {
        return Err(forbidden("create_subnet"));
    }
    let ip_version = b.get("ip_version").and_then(as_int).ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'ip_version' not specified")
    })?;
    if ip_version != 4 && ip_version != 6 {
        return Err(bad(&format!(
            "Invalid input for ip_version. Reason: '{ip_version}' is not in [4, 6]."
        )));
    }
    let cidr_s = b.get("cidr").and_then(Value::as_str).ok_or_else(|| {
        bad("Bad subnets request: a subnetpool must be specified in the absence of a cidr.")
    })?;
    let cidr = Cidr::parse(cidr_s).map_err(|e| match e {
        Some(norm) => bad(&format!("Invalid input for cidr. Reason: '{cidr_s}' isn't a recognized IP subnet cidr, '{norm}' is recommended.")),
        None => bad(&format!("Invalid input for cidr. Reason: '{cidr_s}' is not a valid IP subnet.")),
    })?;
    if cidr.v6 != (ip_version == 6) {
        return Err(invalid_input("Cidr and ip_version mismatch"));
    }
    if !cidr.v6 && cidr.prefix > 30 || cidr.v6 && cidr.prefix > 126 {
        return Err(invalid_input(&format!("{cidr} is too small a subnet")));
    }
    for other in st.subnets.iter().filter(|s| s.network_id == network.id) {
        if let Ok(oc) = Cidr::parse(&other.cidr)
            && oc.overlaps(&cidr)
        {
            return Err(invalid_input(&format!(
                "Requested subnet with cidr: {cidr} for network: {} overlaps with another subnet.",
                network.id
            )));
        }
    }
    check_quota(st, &network.project_id, "subnet", 1)?;
    let (first, last) = cidr.hosts();
    let gateway = match b.get("gateway_ip") {
        Some(Value::Null) => None,
        Some(Value::String(g)) => {
            let (n, v6) = parse_ip(g).ok_or_else(|| {
                bad(&format!(
                    "Invalid input for gateway_ip. Reason: '{g}' is not a valid IP address."
                ))
            })?;
            if v6 != cidr.v6 {
                return Err(invalid_input("gateway_ip version mismatch"));
            }
            Some(n)
        }
        Some(v) => {
            return Err(bad(&format!(
                "Invalid input for gateway_ip. Reason: '{v}' is not a valid IP address."
            )));
        }
        None => Some(first),
    };
    let pools = match parse_pools(b, &cidr)? {
        Some(p) => {
            if let Some(g) = gateway
                && p.iter().any(|(s, e)| g >= *s && g <= *e)
            {
                return Err(nerr(
                    409,
                    "GatewayConflictWithAllocationPools",
                    &format!(
                        "Gateway ip {} conflicts with allocation pool {}-{}",
                        cidr.ip(g),
                        cidr.ip(p[0].0),
                        cidr.ip(p[0].1)
                    ),
                ));
            }
            p
        }
        None => match gateway {
            Some(g) if g == first => vec![(first + 1, last)],
            Some(g) if g == last => vec![(first, last - 1)],
            Some(g) if cidr.contains(g) => vec![(first, g - 1), (g + 1, last)],
            _ => vec![(first, last)],
        },
    };
    let now = os.now_ms();
    let dns: Vec<String> = b
        .get("dns_nameservers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Subnet {
        id: os.uuid(),
        name: str_field(b, "name", 255)?.unwrap_or_default(),
        network_id: network.id.clone(),
        project_id: network.project_id.clone(),
        cidr: cidr.to_string(),
        ip_version,
        gateway_ip: gateway.map(|g| cidr.ip(g)),
        enable_dhcp: bool_field(b, "enable_dhcp", true)?,
        allocation_pools: pools
            .iter()
            .map(|(s, e)| (cidr.ip(*s), cidr.ip(*e)))
            .collect(),
        dns_nameservers: dns,
        host_routes: b
            .get("host_routes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        description: str_field(b, "description", 255)?.unwrap_or_default(),
        tags: tags_field(b)?.unwrap_or_default(),
        created_ms: now,
        updated_ms: now,
        revision: 0,
        ipv6_address_mode: str_field(b, "ipv6_address_mode", 32)?,
        ipv6_ra_mode: str_field(b, "ipv6_ra_mode", 32)?,
    })
}

/// The DHCP agent's port on a network with a DHCP-enabled subnet.
pub(super) fn ensure_dhcp_port(os: &Os, st: &mut State, subnet_id: &str) {
    let Some(s) = st.subnets.iter().find(|s| s.id == subnet_id).cloned() else {
        return;
    };
    if !s.enable_dhcp {
        return;
    }
    let dhcp = st
        .ports
        .iter()
        .position(|p| p.network_id == s.network_id && p.device_owner == "network:dhcp");
    if let Some(i) = dhcp {
        if !st.ports[i].fixed_ips.iter().any(|(sid, _)| sid == &s.id)
            && let Some(ip) = next_ip(&st.ports, &s)
        {
            st.ports[i].fixed_ips.push((s.id.clone(), ip));
        }
        return;
    }
    let Some(ip) = next_ip(&st.ports, &s) else {
        return;
    };
    let now = os.now_ms();
    st.next_mac += 1;
    let port = Port {
        id: os.uuid(),
        name: String::new(),
        network_id: s.network_id.clone(),
        project_id: s.project_id.clone(),
        mac_address: mac_from(st.next_mac),
        fixed_ips: vec![(s.id.clone(), ip)],
        device_id: format!("dhcp{}-{}", &os.hex_id()[..16], s.network_id),
        device_owner: "network:dhcp".into(),
        status: "ACTIVE".into(),
        admin_state_up: true,
        binding_host: format!("{}-ctl-01", os.ctx.name),
        vnic_type: "normal".into(),
        security_groups: vec![],
        tags: vec![],
        description: String::new(),
        created_ms: now,
        updated_ms: now,
        revision: 1,
        port_security_enabled: false,
        allowed_address_pairs: vec![],
        dns_name: String::new(),
    };
    st.ports.push(port);
}

pub(super) fn subnet_create_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let whole = req.json().ok_or_else(|| bad("Malformed request body"))?;
    if let Some(list) = whole.get("subnets").and_then(Value::as_array) {
        let mut tmp = st.clone();
        let mut ids = Vec::new();
        for b in list {
            let s = subnet_create_one(os, &mut tmp, c, b)?;
            ids.push(s.id.clone());
            tmp.subnets.push(s);
            let id = ids.last().cloned().unwrap_or_default();
            ensure_dhcp_port(os, &mut tmp, &id);
        }
        *st = tmp;
        let out: Vec<Value> = ids
            .iter()
            .filter_map(|id| st.subnets.iter().find(|s| &s.id == id))
            .map(|s| subnet_json(st, s))
            .collect();
        return Ok(json_resp(StatusCode::CREATED, json!({"subnets": out})));
    }
    let b = body_of(req, "subnet")?;
    let s = subnet_create_one(os, st, c, &b)?;
    let id = s.id.clone();
    st.subnets.push(s);
    ensure_dhcp_port(os, st, &id);
    let v = subnet_json(st, st.subnets.iter().find(|s| s.id == id).expect("subnet"));
    Ok(json_resp(StatusCode::CREATED, json!({"subnet": v})))
}

pub(super) fn subnet_update_(os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let b = body_of(req, "subnet")?;
    let idx = find_subnet(st, req.param("id"), c)?;
    for k in ["cidr", "ip_version", "network_id"] {
        if b.get(k).is_some() {
            return Err(bad(&format!("Cannot update read-only attribute {k}")));
        }
    }
    let tags = tags_field(&b)?;
    let s = &mut st.subnets[idx];
    if let Some(v) = str_field(&b, "name", 255)? {
        s.name = v;
    }
    if let Some(v) = str_field(&b, "description", 255)? {
        s.description = v;
    }
    s.enable_dhcp = bool_field(&b, "enable_dhcp", s.enable_dhcp)?;
    if let Some(g) = b.get("gateway_ip") {
        s.gateway_ip = g.as_str().map(str::to_string);
    }
    if let Some(d) = b.get("dns_nameservers").and_then(Value::as_array) {
        s.dns_nameservers = d
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
    }
    if let Some(h) = b.get("host_routes").and_then(Value::as_array) {
        s.host_routes = h.clone();
    }
    if let Some(t) = tags {
        s.tags = t;
    }
    s.revision += 1;
    s.updated_ms = os.now_ms();
    let id = s.id.clone();
    ensure_dhcp_port(os, st, &id);
    let v = subnet_json(st, &st.subnets[idx]);
    Ok(json_resp(StatusCode::OK, json!({"subnet": v})))
}

pub(super) fn subnet_delete_(_os: &Os, req: &Req, st: &mut State, c: &Caller) -> R {
    let idx = find_subnet(st, req.param("id"), c)?;
    let id = st.subnets[idx].id.clone();
    if st.ports.iter().any(|p| {
        !p.device_owner.starts_with("network:dhcp") && p.fixed_ips.iter().any(|(s, _)| s == &id)
    }) {
        return Err(nerr(
            409,
            "SubnetInUse",
            &format!(
                "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
            ),
        ));
    }
    for p in st.ports.iter_mut() {
        p.fixed_ips.retain(|(s, _)| s != &id);
    }
    st.ports
        .retain(|p| !(p.device_owner == "network:dhcp" && p.fixed_ips.is_empty()));
    st.subnets.remove(idx);
    Ok(empty(StatusCode::NO_CONTENT))
}
