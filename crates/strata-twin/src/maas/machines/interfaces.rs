//! A machine's network interfaces: list, show, update, link and unlink subnets, disconnect.

use super::*;

pub fn interfaces(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    let sid = r.path("system_id");
    if let Some(m) = st.machine(sid) {
        return ok(Value::Array(
            m.interfaces
                .iter()
                .map(|i| render::interface(st, &s.api, sid, i))
                .collect(),
        ));
    }
    if let Some(c) = st.controller(sid) {
        return ok(Value::Array(
            c.interfaces
                .iter()
                .map(|i| render::interface(st, &s.api, sid, i))
                .collect(),
        ));
    }
    not_found("Node")
}

pub(super) fn iface_index(m: &Machine, id: &str) -> Option<usize> {
    m.interfaces.iter().position(|i| {
        i.id.to_string() == id || i.name == id || Some(i.mac_address.clone()) == normalize_mac(id)
    })
}

pub fn interface(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    let sid = r.path("system_id");
    let Some(m) = st.machine(sid) else {
        if let Some(c) = st.controller(sid)
            && let Some(i) = c
                .interfaces
                .iter()
                .find(|i| i.id.to_string() == r.path("id"))
        {
            return ok(render::interface(st, &s.api, sid, i));
        }
        return not_found("Interface");
    };
    match iface_index(m, r.path("id")) {
        Some(i) => ok(render::interface(st, &s.api, sid, &m.interfaces[i])),
        None => not_found("Interface"),
    }
}

/// The request's interface (`{id}`) on machine `sid` when MAAS lets it change: the
/// machine and the interface's index, or MAAS's answer.
pub(super) fn editable_iface<'a>(
    st: &'a State,
    sid: &str,
    r: &Req,
) -> Result<(&'a Machine, usize), Response> {
    let m = st.machine(sid).ok_or_else(|| not_found("Interface"))?;
    let idx = iface_index(m, r.path("id")).ok_or_else(|| not_found("Interface"))?;
    editable(m)?;
    Ok((m, idx))
}

pub(super) fn editable(m: &Machine) -> Result<(), Response> {
    if matches!(
        m.status,
        S::NEW
            | S::READY
            | S::ALLOCATED
            | S::BROKEN
            | S::FAILED_COMMISSIONING
            | S::FAILED_TESTING
            | S::FAILED_DEPLOYMENT
    ) {
        Ok(())
    } else {
        Err(conflict(&format!(
            "Cannot change the interfaces of a machine in the '{}' state: it must be Ready, Allocated, Broken or New.",
            S::name(m.status)
        )))
    }
}

pub fn update_interface(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    if st.controller(&sid).is_some() {
        return update_controller_interface(st, &s.api, &sid, r);
    }
    let (_, idx) = match editable_iface(st, &sid, r) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let p = &r.params;
    let vlan = match p.get("vlan") {
        None => None,
        Some("") => Some(None),
        Some(v) => match v.parse::<u64>().ok().filter(|id| st.vlans.contains_key(id)) {
            Some(id) => Some(Some(id)),
            None => {
                return invalid1(
                    "vlan",
                    "Select a valid choice. That choice is not one of the available choices.",
                );
            }
        },
    };
    let mtu = match p.get_nonempty("mtu") {
        None => None,
        Some(v) => match v.parse::<u32>() {
            Ok(x) if (552..=65535).contains(&x) => Some(x),
            _ => return invalid1("mtu", "Ensure this value is between 552 and 65535."),
        },
    };
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Interface");
    };
    let i = &mut m.interfaces[idx];
    if let Some(n) = p.get_nonempty("name") {
        i.name = n.to_string();
    }
    if let Some(v) = vlan {
        i.vlan_id = v;
        i.links.clear();
    }
    if let Some(x) = mtu {
        i.mtu = Some(x);
    }
    if p.has("tags") {
        i.tags = p.list("tags");
    }
    let out = render::interface(
        st,
        &s.api,
        &sid,
        &st.machine(&sid)
            .map(|m| m.interfaces[idx].clone())
            .unwrap_or_default(),
    );
    ok(out)
}

pub(super) fn ip_in_subnet(ip: &str, cidr: &str) -> bool {
    super::super::network::ip_in_cidr(ip, cidr)
}

pub fn link_subnet(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let (_, idx) = match editable_iface(st, &sid, r) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let p = &r.params;
    let mode = p.get("mode").unwrap_or("").to_ascii_lowercase();
    if !["auto", "dhcp", "static", "link_up"].contains(&mode.as_str()) {
        return invalid1(
            "mode",
            format!("Select a valid choice. {mode} is not one of the available choices."),
        );
    }
    let subnet = match p.get_nonempty("subnet") {
        None if mode == "link_up" => None,
        None => return invalid1("subnet", "This field is required."),
        Some(x) => match st.subnet_by_key(x) {
            Some(sn) => Some(sn.clone()),
            None => {
                return invalid1(
                    "subnet",
                    "Select a valid choice. That choice is not one of the available choices.",
                );
            }
        },
    };
    let ip = p.get_nonempty("ip_address").map(str::to_string);
    if let (Some(ip), Some(sn)) = (&ip, &subnet) {
        if mode != "static" {
            return invalid1("ip_address", "IP address can only be set in static mode.");
        }
        if !ip_in_subnet(ip, &sn.cidr) {
            return invalid1(
                "ip_address",
                format!("IP address is not in the given subnet '{}'.", sn.cidr),
            );
        }
        let used = st
            .machines
            .values()
            .flat_map(|m| m.interfaces.iter().flat_map(|i| i.links.iter()))
            .any(|l| l.ip_address.as_deref() == Some(ip));
        if used {
            return invalid1("ip_address", "IP address is already in use.");
        }
    }
    let ip = match (&mode[..], ip, &subnet) {
        ("static", None, Some(sn)) => match super::super::network::next_free_ip(st, sn) {
            Some(x) => Some(x),
            None => {
                return http::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("No more IPs available in subnet: {}.", sn.cidr),
                );
            }
        },
        (_, ip, _) => ip,
    };
    // `default_gateway`: only with AUTO and STATIC, and only on a subnet with a
    // gateway (maasserver/forms/interface_link.py).
    let default_gateway = matches!(
        p.get("default_gateway")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("true" | "1" | "on" | "yes")
    );
    if default_gateway {
        if !matches!(mode.as_str(), "auto" | "static") {
            return invalid1(
                "default_gateway",
                "Cannot use in mode '".to_string() + &mode + "'.",
            );
        }
        if subnet
            .as_ref()
            .and_then(|s| s.gateway_ip.as_deref())
            .is_none_or(str::is_empty)
        {
            return invalid1("default_gateway", "Subnet has no gateway IP address.");
        }
    }
    let link_id = st.next_id("link", 1);
    let sub_vlan = subnet.as_ref().map(|s| s.vlan_id);
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Interface");
    };
    let i = &mut m.interfaces[idx];
    if let Some(v) = sub_vlan {
        i.vlan_id = Some(v);
    }
    i.links.retain(|l| l.mode != "link_up");
    i.links.push(Link {
        id: link_id,
        mode,
        subnet_id: subnet.map(|s| s.id),
        ip_address: ip,
    });
    let iface = i.clone();
    if default_gateway {
        m.gateway_link_ipv4 = Some(link_id);
    }
    ok(render::interface(st, &s.api, &sid, &iface))
}

pub fn unlink_subnet(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine(&sid) else {
        return not_found("Interface");
    };
    let Some(idx) = iface_index(m, r.path("id")) else {
        return not_found("Interface");
    };
    let Some(link) = r.params.get("id").and_then(|v| v.parse::<u64>().ok()) else {
        return invalid1("id", "This field is required.");
    };
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Interface");
    };
    let i = &mut m.interfaces[idx];
    let before = i.links.len();
    i.links.retain(|l| l.id != link);
    if before == i.links.len() {
        return invalid1(
            "id",
            "Select a valid choice. That choice is not one of the available choices.",
        );
    }
    let iface = i.clone();
    ok(render::interface(st, &s.api, &sid, &iface))
}

pub fn disconnect(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine(&sid) else {
        return not_found("Interface");
    };
    let Some(idx) = iface_index(m, r.path("id")) else {
        return not_found("Interface");
    };
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Interface");
    };
    let i = &mut m.interfaces[idx];
    i.links.clear();
    i.vlan_id = None;
    let iface = i.clone();
    ok(render::interface(st, &s.api, &sid, &iface))
}

/// A controller's interface: MAAS's `ControllerInterfaceForm` (`forms/interface.py`)
/// takes only `vlan`, `link_connected`, `interface_speed` and `link_speed`; other
/// fields are ignored. A new VLAN moves the subnets linked to the interface onto it,
/// moves its VLAN interfaces to the VLAN with their tag on the new fabric (made when
/// missing), and deletes the fabric it left when nothing is on it any more
/// (`interface_vlan_update`, `models/signals/interfaces.py`).
fn update_controller_interface(st: &mut State, api: &str, sid: &str, r: &Req) -> Response {
    let p = &r.params;
    let Some(idx) = st.controller(sid).and_then(|c| {
        c.interfaces
            .iter()
            .position(|i| i.id.to_string() == r.path("id") || i.name == r.path("id"))
    }) else {
        return not_found("Interface");
    };
    let vlan = match p.get("vlan") {
        None => None,
        Some("") => Some(None),
        Some(v) => match v.parse::<u64>().ok().filter(|id| st.vlans.contains_key(id)) {
            Some(id) => Some(Some(id)),
            None => {
                return invalid1(
                    "vlan",
                    "Select a valid choice. That choice is not one of the available choices.",
                );
            }
        },
    };
    let mut speeds = Vec::new();
    for key in ["interface_speed", "link_speed"] {
        if let Some(v) = p.get_nonempty(key) {
            match v.parse::<u64>() {
                Ok(x) => speeds.push((key, x)),
                Err(_) => return invalid1(key, "Enter a whole number."),
            }
        }
    }
    if let Some(Some(new)) = vlan {
        move_controller_interface(st, sid, idx, new);
    } else if let Some(None) = vlan
        && let Some(c) = st.controllers.iter_mut().find(|c| c.system_id == sid)
    {
        c.interfaces[idx].vlan_id = None;
    }
    let Some(c) = st.controllers.iter_mut().find(|c| c.system_id == sid) else {
        return not_found("Interface");
    };
    for (key, x) in speeds {
        let i = &mut c.interfaces[idx];
        if key == "link_speed" {
            i.link_speed = x;
        } else {
            i.interface_speed = x;
        }
    }
    let Some(i) = st
        .controller(sid)
        .and_then(|c| c.interfaces.get(idx))
        .cloned()
    else {
        return not_found("Interface");
    };
    ok(render::interface(st, api, sid, &i))
}

/// Put controller `sid`'s interface `idx` on VLAN `new`, with MAAS's consequences.
fn move_controller_interface(st: &mut State, sid: &str, idx: usize, new: u64) {
    let Some(c) = st.controllers.iter().find(|c| c.system_id == sid) else {
        return;
    };
    let iface = &c.interfaces[idx];
    let Some(old) = iface.vlan_id.filter(|o| *o != new) else {
        if iface.vlan_id.is_none()
            && let Some(c) = st.controllers.iter_mut().find(|c| c.system_id == sid)
        {
            c.interfaces[idx].vlan_id = Some(new);
        }
        return;
    };
    let subnets: Vec<u64> = iface.links.iter().filter_map(|l| l.subnet_id).collect();
    let children: Vec<(usize, u16)> = c
        .interfaces
        .iter()
        .enumerate()
        .filter(|(_, x)| x.kind() == "vlan" && x.parents.contains(&iface.id))
        .filter_map(|(n, x)| {
            let vid = st.vlans.get(&x.vlan_id?)?.vid;
            Some((n, vid))
        })
        .collect();
    for sub in subnets {
        if let Some(s) = st.subnets.get_mut(&sub) {
            s.vlan_id = new;
        }
    }
    if let Some(c) = st.controllers.iter_mut().find(|c| c.system_id == sid) {
        c.interfaces[idx].vlan_id = Some(new);
    }
    let fabric = st.vlans.get(&new).map(|v| v.fabric_id).unwrap_or(0);
    for (child, vid) in children {
        let target = match st.vlan_by_fabric_vid(fabric, vid) {
            Some(v) => v.id,
            None => {
                let id = st.next_id("vlan", 5001);
                st.vlans.insert(
                    id,
                    Vlan {
                        id,
                        fabric_id: fabric,
                        vid,
                        mtu: 1500,
                        ..Vlan::default()
                    },
                );
                id
            }
        };
        move_controller_interface(st, sid, child, target);
    }
    // The fabric left behind goes when none of its VLANs has a subnet or an
    // interface.
    let Some(old_fabric) = st.vlans.get(&old).map(|v| v.fabric_id) else {
        return;
    };
    let vlans: Vec<u64> = st
        .vlans
        .values()
        .filter(|v| v.fabric_id == old_fabric)
        .map(|v| v.id)
        .collect();
    let used = st.subnets.values().any(|s| vlans.contains(&s.vlan_id))
        || st
            .controllers
            .iter()
            .flat_map(|c| c.interfaces.iter())
            .chain(st.machines.values().flat_map(|m| m.interfaces.iter()))
            .any(|i| i.vlan_id.is_some_and(|v| vlans.contains(&v)));
    if !used && Some(&old_fabric) != st.fabrics.keys().next() {
        for v in &vlans {
            st.vlans.remove(v);
        }
        st.fabrics.remove(&old_fabric);
    }
}
