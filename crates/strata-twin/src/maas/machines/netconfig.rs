//! A machine's network model before deploy, as MAAS's interface forms build it
//! (`maasserver/forms/interface.py`, `api/interfaces.py`): bonds of physical
//! interfaces, VLAN interfaces on a parent, the default gateway, and deleting what was
//! built. Curtin configures the deployed OS from exactly this model.
//!
//! MAAS's rules, kept here: the machine must be Ready, Allocated or Broken (or New,
//! or failed) ([`editable`]); a bond needs at least one parent, all of them physical
//! or bonds of this machine, none already in another bond, and they must share one
//! VLAN (so one fabric); bond modes, LACP rates and hash policies are MAAS's choices;
//! a VLAN interface has one parent, not a VLAN interface, and a tagged VLAN on the
//! parent's fabric, at most once per parent; a default gateway is a link whose subnet
//! has a gateway.

use std::collections::BTreeMap;

use super::*;

const BOND_MODES: &[&str] = &[
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
];
const LACP_RATES: &[&str] = &["fast", "slow"];
const HASH_POLICIES: &[&str] = &["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4"];

fn choice(field: &str, value: &str) -> Response {
    invalid1(
        field,
        format!("Select a valid choice. {value} is not one of the available choices."),
    )
}

fn int_param(p: &Params, field: &str, default: i64) -> Result<i64, Response> {
    match p.get_nonempty(field) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid1(field, "Enter a whole number.")),
    }
}

fn mtu_param(p: &Params) -> Result<Option<u32>, Response> {
    match p.get_nonempty("mtu") {
        None => Ok(None),
        Some(v) => match v.parse::<u32>() {
            Ok(x) if (552..=65535).contains(&x) => Ok(Some(x)),
            _ => Err(invalid1(
                "mtu",
                "Ensure this value is between 552 and 65535.",
            )),
        },
    }
}

fn response(s: &Maas, st: &State, sid: &str, id: u64) -> Response {
    match st
        .machine(sid)
        .and_then(|m| m.interfaces.iter().find(|i| i.id == id))
    {
        Some(i) => ok(render::interface(st, &s.api, sid, i)),
        None => not_found("Interface"),
    }
}

/// `POST /nodes/{system_id}/interfaces/?op=create_bond`.
/// The machine a bond or bridge is made on, when MAAS lets its interfaces change,
/// and the new interface's name: required, and unique on the machine.
fn new_interface<'a>(st: &'a State, sid: &str, r: &Req) -> Result<(&'a Machine, String), Response> {
    let m = st.machine(sid).ok_or_else(|| not_found("Node"))?;
    editable(m)?;
    let name = r
        .params
        .get_nonempty("name")
        .map(str::to_string)
        .ok_or_else(|| invalid1("name", "This field is required."))?;
    if m.interfaces.iter().any(|i| i.name == name) {
        return Err(invalid1(
            "name",
            format!("Interface with this name already exists on this node: {name}."),
        ));
    }
    Ok((m, name))
}

pub fn create_bond(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let (m, name) = match new_interface(st, &sid, r) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let p = &r.params;
    let wanted = p.list("parents");
    if wanted.is_empty() {
        return invalid1("parents", "A bond interface must have one or more parents.");
    }
    let mut parents: Vec<&Interface> = Vec::new();
    for w in &wanted {
        match iface_index(m, w) {
            Some(i) => parents.push(&m.interfaces[i]),
            None => {
                return invalid1(
                    "parents",
                    format!("Select a valid choice. {w} is not one of the available choices."),
                );
            }
        }
    }
    if let Some(v) = parents.iter().find(|i| i.kind() == "vlan") {
        return invalid1(
            "parents",
            format!("A bond cannot be made of a VLAN interface: {}.", v.name),
        );
    }
    // A parent with any child (a bond, a bridge, a VLAN interface) is taken
    // (`ChildInterfaceForm.validate_parental_fidelity`).
    let mut in_use: Vec<&str> = parents
        .iter()
        .filter(|i| m.interfaces.iter().any(|x| x.parents.contains(&i.id)))
        .map(|i| i.name.as_str())
        .collect();
    in_use.sort();
    if !in_use.is_empty() {
        return invalid1(
            "parents",
            format!("Interfaces already in-use: {}.", in_use.join(", ")),
        );
    }
    let vlans: std::collections::BTreeSet<Option<u64>> =
        parents.iter().map(|i| i.vlan_id).collect();
    if vlans.len() > 1 {
        return invalid1("parents", "All parents must belong to the same VLAN.");
    }
    let mode = p.get_nonempty("bond_mode").unwrap_or("active-backup");
    if !BOND_MODES.contains(&mode) {
        return choice("bond_mode", mode);
    }
    let lacp = p.get_nonempty("bond_lacp_rate").unwrap_or("slow");
    if !LACP_RATES.contains(&lacp) {
        return choice("bond_lacp_rate", lacp);
    }
    let hash = p.get_nonempty("bond_xmit_hash_policy").unwrap_or("layer2");
    if !HASH_POLICIES.contains(&hash) {
        return choice("bond_xmit_hash_policy", hash);
    }
    let (miimon, downdelay, updelay, grat) = match (
        int_param(p, "bond_miimon", 100),
        int_param(p, "bond_downdelay", 0),
        int_param(p, "bond_updelay", 0),
        int_param(p, "bond_num_grat_arp", 1),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return e,
    };
    let mtu = match mtu_param(p) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let vlan_id = match p.get_nonempty("vlan") {
        Some(v) => match v.parse::<u64>().ok().filter(|id| st.vlans.contains_key(id)) {
            Some(id) => Some(id),
            None => return choice("vlan", v),
        },
        None => parents.first().and_then(|i| i.vlan_id),
    };
    let mac = match p.get_nonempty("mac_address") {
        Some(v) => match normalize_mac(v) {
            Some(mac) => mac,
            None => return invalid1("mac_address", format!("'{v}' is not a valid MAC address.")),
        },
        None => parents[0].mac_address.clone(),
    };
    let parent_ids: Vec<u64> = parents.iter().map(|i| i.id).collect();
    let speed = parents.iter().map(|i| i.interface_speed).sum();
    let params: BTreeMap<String, Value> = BTreeMap::from([
        ("bond_mode".into(), json!(mode)),
        ("bond_miimon".into(), json!(miimon)),
        ("bond_downdelay".into(), json!(downdelay)),
        ("bond_updelay".into(), json!(updelay)),
        ("bond_lacp_rate".into(), json!(lacp)),
        ("bond_xmit_hash_policy".into(), json!(hash)),
        ("bond_num_grat_arp".into(), json!(grat)),
    ]);
    let id = st.next_id("interface", 1);
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Node");
    };
    // The parents now carry only the bond: their addresses move to it (MAAS removes
    // the parents' links when they join a bond).
    for i in m
        .interfaces
        .iter_mut()
        .filter(|i| parent_ids.contains(&i.id))
    {
        i.links.clear();
        i.vlan_id = vlan_id;
    }
    m.interfaces.push(Interface {
        id,
        name,
        mac_address: mac,
        vlan_id,
        enabled: true,
        link_speed: speed,
        interface_speed: speed,
        mtu,
        kind: "bond".into(),
        parents: parent_ids,
        params,
        ..Interface::default()
    });
    response(s, st, &sid, id)
}

/// `POST /nodes/{system_id}/interfaces/?op=create_bridge` (MAAS's
/// `BridgeInterfaceForm`, `forms/interface.py`): exactly one parent, which is not a
/// bridge and not already in a bond or a bridge (its VLAN interfaces may stay);
/// `bridge_type` `standard` or `ovs`, `bridge_stp` off and `bridge_fd` 15 unless
/// given. The bridge takes its parent's VLAN and MAC unless given; the parent's links
/// are cleared and it joins the bridge's VLAN (`update_interface_parents`).
pub fn create_bridge(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let (m, name) = match new_interface(st, &sid, r) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let p = &r.params;
    // `parent` is the deprecated spelling of `parents`.
    let mut wanted = p.list("parents");
    wanted.extend(p.list("parent"));
    let parent = match wanted.as_slice() {
        [one] => match iface_index(m, one) {
            Some(i) => &m.interfaces[i],
            None => return choice("parents", one),
        },
        [] => {
            return invalid1(
                "parents",
                "A bridge interface must have one or more parents.",
            );
        }
        _ => {
            return invalid1(
                "parents",
                "A bridge interface must have exactly one parent.",
            );
        }
    };
    if parent.kind() == "bridge" {
        return invalid1(
            "parents",
            "A bridge interface can't have another bridge interface as parent.",
        );
    }
    if m.interfaces
        .iter()
        .any(|x| matches!(x.kind(), "bond" | "bridge") && x.parents.contains(&parent.id))
    {
        return invalid1(
            "parents",
            "A bridge interface can't have a parent that is already in a bond or a bridge.",
        );
    }
    let bridge_type = p.get_nonempty("bridge_type").unwrap_or("standard");
    if !["standard", "ovs"].contains(&bridge_type) {
        return choice("bridge_type", bridge_type);
    }
    let stp = match p.get_nonempty("bridge_stp") {
        None => false,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => true,
            "false" | "0" | "off" | "no" => false,
            _ => return invalid1("bridge_stp", "Enter a valid boolean."),
        },
    };
    let fd = match int_param(p, "bridge_fd", 15) {
        Ok(x) if x >= 0 => x,
        Ok(_) => {
            return invalid1(
                "bridge_fd",
                "Ensure this value is greater than or equal to 0.",
            );
        }
        Err(e) => return e,
    };
    let mtu = match mtu_param(p) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let vlan_id = match p.get_nonempty("vlan") {
        Some(v) => match v.parse::<u64>().ok().filter(|id| st.vlans.contains_key(id)) {
            Some(id) => Some(id),
            None => return choice("vlan", v),
        },
        None => parent.vlan_id,
    };
    let mac = match p.get_nonempty("mac_address") {
        Some(v) => match normalize_mac(v) {
            Some(mac) => mac,
            None => return invalid1("mac_address", format!("'{v}' is not a valid MAC address.")),
        },
        None => parent.mac_address.clone(),
    };
    let (parent_id, speed) = (parent.id, parent.interface_speed);
    let params: BTreeMap<String, Value> = BTreeMap::from([
        ("bridge_type".into(), json!(bridge_type)),
        ("bridge_stp".into(), json!(stp)),
        ("bridge_fd".into(), json!(fd)),
    ]);
    let id = st.next_id("interface", 1);
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Node");
    };
    if let Some(i) = m.interfaces.iter_mut().find(|i| i.id == parent_id) {
        i.links.clear();
        i.vlan_id = vlan_id;
    }
    m.interfaces.push(Interface {
        id,
        name,
        mac_address: mac,
        vlan_id,
        enabled: true,
        link_speed: speed,
        interface_speed: speed,
        mtu,
        kind: "bridge".into(),
        parents: vec![parent_id],
        params,
        ..Interface::default()
    });
    response(s, st, &sid, id)
}

/// `POST /nodes/{system_id}/interfaces/?op=create_vlan`.
pub fn create_vlan(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine(&sid) else {
        return not_found("Node");
    };
    if let Err(e) = editable(m) {
        return e;
    }
    let p = &r.params;
    let wanted = p.list("parent");
    let parent = match wanted.as_slice() {
        [one] => match iface_index(m, one) {
            Some(i) => &m.interfaces[i],
            None => return choice("parent", one),
        },
        [] => return invalid1("parent", "This field is required."),
        _ => return invalid1("parent", "A VLAN interface must have exactly one parent."),
    };
    if parent.kind() == "vlan" {
        return invalid1(
            "parent",
            "A VLAN interface can't have another VLAN interface as parent.",
        );
    }
    let Some(vlan_key) = p.get_nonempty("vlan") else {
        return invalid1("vlan", "This field is required.");
    };
    let Some(vlan) = vlan_key
        .parse::<u64>()
        .ok()
        .and_then(|id| st.vlans.get(&id))
    else {
        return choice("vlan", vlan_key);
    };
    if vlan.vid == 0 {
        return invalid1("vlan", "A VLAN interface can only belong to a tagged VLAN.");
    }
    let parent_fabric = parent
        .vlan_id
        .and_then(|v| st.vlans.get(&v))
        .map(|v| v.fabric_id);
    if parent_fabric.is_some_and(|f| f != vlan.fabric_id) {
        return invalid1(
            "vlan",
            "A VLAN interface can only belong to a VLAN on the same fabric as its parent.",
        );
    }
    if m.interfaces
        .iter()
        .any(|i| i.kind() == "vlan" && i.parents == [parent.id] && i.vlan_id == Some(vlan.id))
    {
        return invalid1(
            "vlan",
            format!(
                "A VLAN interface with the VLAN {} already exists on {}.",
                vlan.vid, parent.name
            ),
        );
    }
    let mtu = match mtu_param(p) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let name = format!("{}.{}", parent.name, vlan.vid);
    let (parent_id, mac, speed, vlan_id) = (
        parent.id,
        parent.mac_address.clone(),
        parent.interface_speed,
        vlan.id,
    );
    let id = st.next_id("interface", 1);
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Node");
    };
    m.interfaces.push(Interface {
        id,
        name,
        mac_address: mac,
        vlan_id: Some(vlan_id),
        enabled: true,
        link_speed: speed,
        interface_speed: speed,
        mtu,
        kind: "vlan".into(),
        parents: vec![parent_id],
        ..Interface::default()
    });
    response(s, st, &sid, id)
}

/// `POST /nodes/{system_id}/interfaces/{id}/?op=set_default_gateway`.
pub fn set_default_gateway(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let (m, idx) = match editable_iface(st, &sid, r) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let iface = &m.interfaces[idx];
    let has_gateway = |l: &Link| {
        l.subnet_id
            .and_then(|s| st.subnets.get(&s))
            .and_then(|s| s.gateway_ip.as_deref())
            .is_some_and(|g| !g.is_empty() && !g.contains(':'))
            && matches!(l.mode.as_str(), "static" | "auto" | "dhcp")
    };
    let link = match r.params.get_nonempty("link_id") {
        Some(v) => match iface.links.iter().find(|l| l.id.to_string() == v) {
            Some(l) if has_gateway(l) => l.id,
            Some(_) => return invalid1("link_id", "This link has no gateway."),
            None => return choice("link_id", v),
        },
        None => match iface.links.iter().find(|l| has_gateway(l)) {
            Some(l) => l.id,
            None => {
                return invalid1("__all__", "This interface has no usable gateways.");
            }
        },
    };
    let iid = iface.id;
    if let Some(m) = st.machine_mut(&sid) {
        m.gateway_link_ipv4 = Some(link);
    }
    response(s, st, &sid, iid)
}

/// `DELETE /nodes/{system_id}/interfaces/{id}/`: a bond frees its parents, a parent
/// takes its VLAN interfaces with it.
pub fn delete_interface(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let (m, idx) = match editable_iface(st, &sid, r) {
        Ok(x) => x,
        Err(e) => return e,
    };
    if m.interfaces[idx].kind() == "physical" {
        return bad_request(
            "A physical interface can only be deleted when the machine no longer has it; re-commission instead.",
        );
    }
    let id = m.interfaces[idx].id;
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Interface");
    };
    let mut gone = vec![id];
    // Children (VLANs on a bond) go too.
    loop {
        let more: Vec<u64> = m
            .interfaces
            .iter()
            .filter(|i| !gone.contains(&i.id) && i.parents.iter().any(|p| gone.contains(p)))
            .map(|i| i.id)
            .collect();
        if more.is_empty() {
            break;
        }
        gone.extend(more);
    }
    let dropped_links: Vec<u64> = m
        .interfaces
        .iter()
        .filter(|i| gone.contains(&i.id))
        .flat_map(|i| i.links.iter().map(|l| l.id))
        .collect();
    m.interfaces.retain(|i| !gone.contains(&i.id));
    if m.gateway_link_ipv4
        .is_some_and(|l| dropped_links.contains(&l))
    {
        m.gateway_link_ipv4 = None;
    }
    http::deleted()
}
