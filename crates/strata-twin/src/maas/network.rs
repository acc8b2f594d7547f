//! Fabrics, VLANs (keyed by VID within a fabric), subnets, IP ranges and spaces, with
//! MAAS's form validation (including the DHCP rules: `dhcp_on` needs a dynamic range on
//! one of the VLAN's subnets and a primary rack controller).

use std::net::IpAddr;

use axum::response::Response;
use serde_json::{Value, json};

use super::http::{Params, Req, bad_request, deleted, invalid, invalid1, not_found, ok};
use super::model::*;
use super::{Maas, render};
use crate::MutateRequest;

// ---------------------------------------------------------------------------------
// Addresses

/// A CIDR normalised to its network address, as `(network, prefix)`.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = s.trim().split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    match ip {
        IpAddr::V4(v4) => {
            if len > 32 {
                return None;
            }
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Some((IpAddr::V4((u32::from(v4) & mask).into()), len))
        }
        IpAddr::V6(v6) => {
            if len > 128 {
                return None;
            }
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            Some((IpAddr::V6((u128::from(v6) & mask).into()), len))
        }
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((v as u32).into())
    } else {
        IpAddr::V6(v.into())
    }
}

/// First and last address of a CIDR.
fn bounds(cidr: &str) -> Option<(u128, u128, bool)> {
    let (net, len) = parse_cidr(cidr)?;
    let bits = if net.is_ipv4() { 32 } else { 128 };
    let start = to_u128(net);
    let size: u128 = if bits - len as u32 >= 128 {
        u128::MAX
    } else {
        (1u128 << (bits - len as u32)) - 1
    };
    Some((start, start.saturating_add(size), net.is_ipv4()))
}

/// Usable host range of a subnet (IPv4 excludes network and broadcast).
fn usable(cidr: &str) -> Option<(u128, u128, bool)> {
    let (a, b, v4) = bounds(cidr)?;
    if v4 && b > a + 1 {
        Some((a + 1, b - 1, v4))
    } else {
        Some((a, b, v4))
    }
}

pub fn ip_in_cidr(ip: &str, cidr: &str) -> bool {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return false;
    };
    match bounds(cidr) {
        Some((a, b, v4)) => v4 == ip.is_ipv4() && (a..=b).contains(&to_u128(ip)),
        None => false,
    }
}

/// Addresses in use or reserved in a subnet: (start, end, purpose).
fn reserved(st: &State, s: &Subnet) -> Vec<(u128, u128, String)> {
    let mut out = Vec::new();
    let ip = |x: &str| x.parse::<IpAddr>().ok().map(to_u128);
    if let Some(g) = s.gateway_ip.as_deref().and_then(ip) {
        out.push((g, g, "gateway-ip".to_string()));
    }
    for r in st.ipranges.values().filter(|r| r.subnet_id == s.id) {
        if let (Some(a), Some(b)) = (ip(&r.start_ip), ip(&r.end_ip)) {
            out.push((a, b, r.kind.clone()));
        }
    }
    let interfaces = st
        .machines
        .values()
        .flat_map(|m| m.interfaces.iter())
        .chain(st.controllers.iter().flat_map(|c| c.interfaces.iter()));
    {
        for i in interfaces {
            for l in &i.links {
                if l.subnet_id == Some(s.id)
                    && let Some(a) = l.ip_address.as_deref().and_then(ip)
                {
                    out.push((a, a, "assigned-ip".to_string()));
                }
            }
        }
    }
    out.sort();
    out
}

fn unreserved(st: &State, s: &Subnet) -> Vec<(u128, u128)> {
    let Some((lo, hi, _)) = usable(&s.cidr) else {
        return vec![];
    };
    let mut free = Vec::new();
    let mut cur = lo;
    for (a, b, _) in reserved(st, s) {
        if b < cur {
            continue;
        }
        if a > cur {
            free.push((cur, a - 1));
        }
        cur = cur.max(b.saturating_add(1));
        if cur > hi {
            break;
        }
    }
    if cur <= hi {
        free.push((cur, hi));
    }
    free
}

/// The next address for a static link: the first unreserved one.
pub fn next_free_ip(st: &State, s: &Subnet) -> Option<String> {
    let v4 = parse_cidr(&s.cidr)?.0.is_ipv4();
    unreserved(st, s)
        .first()
        .map(|(a, _)| from_u128(*a, v4).to_string())
}

// ---------------------------------------------------------------------------------
// Fabrics

fn fabric_or_404<'a>(st: &'a State, key: &str) -> Result<&'a Fabric, Response> {
    st.fabric_by_key(key).ok_or_else(|| not_found("Fabric"))
}

pub fn fabrics(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    ok(Value::Array(
        st.fabrics
            .values()
            .map(|f| render::fabric(st, &s.api, f))
            .collect(),
    ))
}

pub fn fabric(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    match fabric_or_404(st, r.path("id")) {
        Ok(f) => ok(render::fabric(st, &s.api, f)),
        Err(e) => e,
    }
}

pub fn create_fabric(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let p = &r.params;
    if let Some(n) = p.get_nonempty("name")
        && st.fabrics.values().any(|f| f.name == n)
    {
        return invalid1("name", "Fabric with this Name already exists.");
    }
    let id = st.next_id("fabric", 1);
    let name = p
        .get_nonempty("name")
        .map(str::to_string)
        .unwrap_or_else(|| format!("fabric-{id}"));
    st.fabrics.insert(
        id,
        Fabric {
            id,
            name,
            description: p.get("description").unwrap_or("").to_string(),
            class_type: p.get_nonempty("class_type").map(str::to_string),
        },
    );
    let vid = st.next_id("vlan", 5001);
    st.vlans.insert(
        vid,
        Vlan {
            id: vid,
            fabric_id: id,
            vid: 0,
            mtu: 1500,
            ..Vlan::default()
        },
    );
    ok(render::fabric(st, &s.api, &st.fabrics[&id]))
}

pub fn update_fabric(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let id = match fabric_or_404(st, r.path("id")) {
        Ok(f) => f.id,
        Err(e) => return e,
    };
    let p = &r.params;
    if let Some(n) = p.get_nonempty("name")
        && st.fabrics.values().any(|f| f.name == n && f.id != id)
    {
        return invalid1("name", "Fabric with this Name already exists.");
    }
    let Some(f) = st.fabrics.get_mut(&id) else {
        return not_found("Fabric");
    };
    if let Some(n) = p.get_nonempty("name") {
        f.name = n.to_string();
    }
    if let Some(d) = p.get("description") {
        f.description = d.to_string();
    }
    if p.has("class_type") {
        f.class_type = p.get_nonempty("class_type").map(str::to_string);
    }
    ok(render::fabric(st, &s.api, &st.fabrics[&id]))
}

pub fn delete_fabric(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let id = match fabric_or_404(st, r.path("id")) {
        Ok(f) => f.id,
        Err(e) => return e,
    };
    if Some(&id) == st.fabrics.keys().next() {
        return bad_request("This fabric is the default fabric, it cannot be deleted.");
    }
    let vlans: Vec<u64> = st
        .vlans
        .values()
        .filter(|v| v.fabric_id == id)
        .map(|v| v.id)
        .collect();
    let subnets: Vec<String> = st
        .subnets
        .values()
        .filter(|s| vlans.contains(&s.vlan_id))
        .map(|s| s.cidr.clone())
        .collect();
    if !subnets.is_empty() {
        return bad_request(&format!(
            "Can't delete fabric; the following subnets are still present: {}",
            subnets.join(", ")
        ));
    }
    for v in &vlans {
        st.vlans.remove(v);
    }
    detach_vlans(st, &vlans);
    st.fabrics.remove(&id);
    deleted()
}

fn detach_vlans(st: &mut State, vlans: &[u64]) {
    for m in st.machines.values_mut() {
        for i in &mut m.interfaces {
            if i.vlan_id.is_some_and(|v| vlans.contains(&v)) {
                i.vlan_id = None;
                i.links.clear();
            }
        }
    }
    for c in &mut st.controllers {
        for i in &mut c.interfaces {
            if i.vlan_id.is_some_and(|v| vlans.contains(&v)) {
                i.vlan_id = None;
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// VLANs

fn vlan_id_of(st: &State, fabric_key: &str, vid: &str) -> Result<u64, Response> {
    let f = fabric_or_404(st, fabric_key)?;
    let vid: u16 = vid.parse().map_err(|_| not_found("VLAN"))?;
    st.vlan_by_fabric_vid(f.id, vid)
        .map(|v| v.id)
        .ok_or_else(|| not_found("VLAN"))
}

pub fn vlans(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    let f = match fabric_or_404(st, r.path("fabric_id")) {
        Ok(f) => f,
        Err(e) => return e,
    };
    ok(Value::Array(
        st.vlans
            .values()
            .filter(|v| v.fabric_id == f.id)
            .map(|v| render::vlan(st, &s.api, v))
            .collect(),
    ))
}

pub fn vlan(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    match vlan_id_of(st, r.path("fabric_id"), r.path("vid")) {
        Ok(id) => ok(render::vlan(st, &s.api, &st.vlans[&id])),
        Err(e) => e,
    }
}

fn parse_vid(v: &str) -> Result<u16, String> {
    match v.trim().parse::<i64>() {
        Ok(n) if (0..=4094).contains(&n) => Ok(n as u16),
        Ok(_) => Err("VID must be between 0 and 4094.".into()),
        Err(_) => Err("Enter a whole number.".into()),
    }
}

fn parse_mtu(v: &str) -> Result<u32, String> {
    match v.trim().parse::<i64>() {
        Ok(n) if (552..=65535).contains(&n) => Ok(n as u32),
        Ok(n) if n < 552 => Err("Ensure this value is greater than or equal to 552.".into()),
        Ok(_) => Err("Ensure this value is less than or equal to 65535.".into()),
        Err(_) => Err("Enter a whole number.".into()),
    }
}

fn space_param(
    st: &State,
    p: &Params,
    errors: &mut Vec<(&'static str, String)>,
) -> Option<Option<u64>> {
    match p.get("space") {
        None => None,
        Some("") | Some("undefined") => Some(None),
        Some(x) => match st.space_by_key(x) {
            Some(sp) => Some(Some(sp.id)),
            None => {
                errors.push((
                    "space",
                    "Select a valid choice. That choice is not one of the available choices."
                        .into(),
                ));
                None
            }
        },
    }
}

pub fn create_vlan(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let fabric_id = match fabric_or_404(st, r.path("fabric_id")) {
        Ok(f) => f.id,
        Err(e) => return e,
    };
    let p = &r.params;
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    let vid = match p.get_nonempty("vid") {
        None => {
            errors.push(("vid", "This field is required.".into()));
            None
        }
        Some(v) => match parse_vid(v) {
            Ok(x) => Some(x),
            Err(e) => {
                errors.push(("vid", e));
                None
            }
        },
    };
    let mtu = match p.get_nonempty("mtu").map(parse_mtu) {
        None => 1500,
        Some(Ok(x)) => x,
        Some(Err(e)) => {
            errors.push(("mtu", e));
            1500
        }
    };
    let space = space_param(st, p, &mut errors).flatten();
    if let Some(v) = vid
        && st.vlan_by_fabric_vid(fabric_id, v).is_some()
    {
        errors.push((
            "__all__",
            "VLAN with this Fabric and Vid already exists.".into(),
        ));
    }
    if !errors.is_empty() {
        return invalid(&errors);
    }
    let id = st.next_id("vlan", 5001);
    st.vlans.insert(
        id,
        Vlan {
            id,
            fabric_id,
            vid: vid.unwrap_or(0),
            name: p.get_nonempty("name").map(str::to_string),
            description: p.get("description").unwrap_or("").to_string(),
            mtu,
            space_id: space,
            ..Vlan::default()
        },
    );
    ok(render::vlan(st, &s.api, &st.vlans[&id]))
}

/// A rack controller field of the VLAN form. MAAS offers only the racks with an
/// interface on a VLAN of this VLAN's VID (canonical/maas
/// `src/maasserver/forms/vlan.py`, `VLANForm._set_up_rack_fields`: a
/// `NodeChoiceField` over `RackController.objects.filter_by_vids([instance.vid])`,
/// `src/maasserver/models/node.py` `NodeQueriesMixin.filter_by_vids`), so a rack
/// without such an interface is an invalid choice, like an unknown one.
fn rack_param(
    st: &State,
    p: &Params,
    key: &'static str,
    vid: u16,
    errors: &mut Vec<(&'static str, String)>,
) -> Option<Option<String>> {
    match p.get(key) {
        None => None,
        Some("") | Some("null") | Some("None") => Some(None),
        Some(x) => match st.rack(x).filter(|c| {
            c.interfaces.iter().any(|i| {
                i.vlan_id
                    .and_then(|v| st.vlans.get(&v))
                    .is_some_and(|v| v.vid == vid)
            })
        }) {
            Some(c) => Some(Some(c.system_id.clone())),
            None => {
                errors.push((
                    key,
                    format!("Select a valid choice. {x} is not one of the available choices."),
                ));
                None
            }
        },
    }
}

/// Apply a VLAN update with MAAS's `VLANForm` rules.
fn apply_vlan_update(st: &mut State, id: u64, p: &Params) -> Result<(), Response> {
    let cur = st.vlans[&id].clone();
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    let vid = match p.get_nonempty("vid").map(parse_vid) {
        None => cur.vid,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            errors.push(("vid", e));
            cur.vid
        }
    };
    let mtu = match p.get_nonempty("mtu").map(parse_mtu) {
        None => cur.mtu,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            errors.push(("mtu", e));
            cur.mtu
        }
    };
    let space = space_param(st, p, &mut errors).unwrap_or(cur.space_id);
    let primary_given = rack_param(st, p, "primary_rack", cur.vid, &mut errors);
    let secondary_given = rack_param(st, p, "secondary_rack", cur.vid, &mut errors);
    let relay = match p.get("relay_vlan") {
        None => cur.relay_vlan,
        Some("") | Some("null") => None,
        Some(x) => match x
            .parse::<u64>()
            .ok()
            .filter(|r| st.vlans.contains_key(r) && *r != id)
        {
            Some(r) if !cur.dhcp_on => Some(r),
            _ => {
                errors.push((
                    "relay_vlan",
                    "Select a valid choice. That choice is not one of the available choices."
                        .into(),
                ));
                cur.relay_vlan
            }
        },
    };
    let mut dhcp_on = match p.bool("dhcp_on") {
        Ok(Some(v)) => v,
        Ok(None) => cur.dhcp_on,
        Err(v) => {
            errors.push((
                "dhcp_on",
                format!("'{v}' value must be either True or False."),
            ));
            cur.dhcp_on
        }
    };
    if dhcp_on {
        let has_dynamic = st.subnets.values().filter(|s| s.vlan_id == id).any(|s| {
            st.ipranges
                .values()
                .any(|r| r.subnet_id == s.id && r.kind == "dynamic")
        });
        if !has_dynamic {
            errors.push((
                "dhcp_on",
                "dhcp can only be turned on when a dynamic IP range is defined.".into(),
            ));
            dhcp_on = false;
        }
    }
    if vid != cur.vid && st.vlan_by_fabric_vid(cur.fabric_id, vid).is_some() {
        errors.push((
            "__all__",
            "VLAN with this Fabric and Vid already exists.".into(),
        ));
    }
    if !errors.is_empty() {
        return Err(invalid(&errors));
    }
    // The form's clean(): rack promotion and consistency.
    let mut primary = primary_given.clone().unwrap_or(cur.primary_rack.clone());
    let mut secondary = secondary_given
        .clone()
        .unwrap_or(cur.secondary_rack.clone());
    if primary.is_none() && cur.secondary_rack.is_some() {
        primary = cur.secondary_rack.clone();
        secondary = None;
    }
    if primary.is_some() && primary == cur.secondary_rack {
        secondary = None;
    }
    if secondary.is_some() && secondary == cur.primary_rack {
        let sid = secondary.clone().unwrap_or_default();
        return Err(invalid1(
            "__all__",
            format!("{sid} is already set as the primary rack controller"),
        ));
    }
    if primary.is_some() && secondary.is_some() && primary == secondary {
        return Err(invalid1(
            "__all__",
            "The primary and secondary rack must be different",
        ));
    }
    if dhcp_on && primary.is_none() && cur.primary_rack.is_none() {
        return Err(invalid1(
            "__all__",
            "dhcp can only be turned on when a primary rack controller is set.",
        ));
    }
    let Some(v) = st.vlans.get_mut(&id) else {
        return Err(not_found("VLAN"));
    };
    v.vid = vid;
    v.mtu = mtu;
    v.space_id = space;
    v.primary_rack = primary;
    v.secondary_rack = secondary;
    v.relay_vlan = relay;
    v.dhcp_on = dhcp_on;
    if let Some(n) = p.get("name") {
        v.name = Some(n.to_string()).filter(|n| !n.is_empty());
    }
    if let Some(d) = p.get("description") {
        v.description = d.to_string();
    }
    Ok(())
}

pub fn update_vlan(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let id = match vlan_id_of(st, r.path("fabric_id"), r.path("vid")) {
        Ok(id) => id,
        Err(e) => return e,
    };
    if let Err(e) = apply_vlan_update(st, id, &r.params) {
        return e;
    }
    ok(render::vlan(st, &s.api, &st.vlans[&id]))
}

pub fn delete_vlan(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let id = match vlan_id_of(st, r.path("fabric_id"), r.path("vid")) {
        Ok(id) => id,
        Err(e) => return e,
    };
    if st.vlans[&id].vid == 0 {
        return bad_request("This VLAN is the default VLAN in the fabric, it cannot be deleted.");
    }
    let subnets: Vec<String> = st
        .subnets
        .values()
        .filter(|s| s.vlan_id == id)
        .map(|s| s.cidr.clone())
        .collect();
    if !subnets.is_empty() {
        return bad_request(&format!(
            "Can't delete VLAN; the following subnets are still present: {}",
            subnets.join(", ")
        ));
    }
    st.vlans.remove(&id);
    detach_vlans(st, &[id]);
    deleted()
}

// ---------------------------------------------------------------------------------
// Subnets

fn subnet_or_404<'a>(st: &'a State, key: &str) -> Result<&'a Subnet, Response> {
    st.subnet_by_key(key).ok_or_else(|| not_found("Subnet"))
}

pub fn subnets(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    ok(Value::Array(
        st.subnets
            .values()
            .map(|x| render::subnet(st, &s.api, x))
            .collect(),
    ))
}

pub fn subnet(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    match subnet_or_404(st, r.path("id")) {
        Ok(x) => ok(render::subnet(st, &s.api, x)),
        Err(e) => e,
    }
}

fn dns_list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Validate and apply subnet fields onto `sn` (create when `creating`).
fn apply_subnet(st: &State, sn: &mut Subnet, p: &Params, creating: bool) -> Result<(), Response> {
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    if let Some(c) = p.get("cidr") {
        match parse_cidr(c) {
            Some((net, len)) => {
                let cidr = format!("{net}/{len}");
                if st.subnets.values().any(|x| x.cidr == cidr && x.id != sn.id) {
                    errors.push(("cidr", "Subnet with this Cidr already exists.".into()));
                }
                if sn.name.is_empty() || sn.name == sn.cidr {
                    sn.name = cidr.clone();
                }
                sn.cidr = cidr;
            }
            None => errors.push(("cidr", "Required format: <network>/<prefixlen>.".into())),
        }
    } else if creating {
        errors.push(("cidr", "This field is required.".into()));
    }
    // VLAN: an id, or fabric + vid, or the default VLAN.
    if let Some(v) = p.get_nonempty("vlan") {
        match v.parse::<u64>().ok().filter(|id| st.vlans.contains_key(id)) {
            Some(id) => sn.vlan_id = id,
            None => errors.push((
                "vlan",
                "Select a valid choice. That choice is not one of the available choices.".into(),
            )),
        }
    } else if p.has("fabric") || p.has("vid") {
        let fabric = match p.get_nonempty("fabric") {
            Some(f) => st.fabric_by_key(f).map(|f| f.id),
            None => st.fabrics.keys().next().copied(),
        };
        let vid = p
            .get_nonempty("vid")
            .and_then(|v| v.parse::<u16>().ok())
            .unwrap_or(0);
        match fabric.and_then(|f| st.vlan_by_fabric_vid(f, vid)) {
            Some(v) => sn.vlan_id = v.id,
            None => errors.push(("vlan", "No VLAN with that fabric and VID.".into())),
        }
    } else if creating {
        match st.default_vlan_id() {
            Some(v) => sn.vlan_id = v,
            None => errors.push(("vlan", "No default VLAN.".into())),
        }
    }
    if let Some(n) = p.get_nonempty("name") {
        sn.name = n.to_string();
    }
    if let Some(d) = p.get("description") {
        sn.description = d.to_string();
    }
    if let Some(gw) = p.get("gateway_ip") {
        if gw.is_empty() {
            sn.gateway_ip = None;
        } else if gw.parse::<IpAddr>().is_err() {
            errors.push(("gateway_ip", "Enter a valid IPv4 or IPv6 address.".into()));
        } else if !sn.cidr.is_empty() && !ip_in_cidr(gw, &sn.cidr) {
            errors.push(("gateway_ip", "Gateway IP must be within CIDR range.".into()));
        } else {
            sn.gateway_ip = Some(gw.to_string());
        }
    }
    if p.has("dns_servers") {
        let list: Vec<String> = p
            .all("dns_servers")
            .into_iter()
            .flat_map(dns_list)
            .collect();
        if let Some(bad) = list.iter().find(|x| x.parse::<IpAddr>().is_err()) {
            errors.push(("dns_servers", format!("Invalid IP address: {bad}.")));
        } else {
            sn.dns_servers = list;
        }
    }
    for (key, slot) in [
        ("managed", &mut sn.managed),
        ("allow_dns", &mut sn.allow_dns),
        ("allow_proxy", &mut sn.allow_proxy),
        ("active_discovery", &mut sn.active_discovery),
    ] {
        match p.bool(key) {
            Ok(Some(v)) => *slot = v,
            Ok(None) => {}
            Err(v) => errors.push((key, format!("'{v}' value must be either True or False."))),
        }
    }
    if let Some(m) = p.get_nonempty("rdns_mode") {
        match m.parse::<u8>() {
            Ok(x) if x <= 2 => sn.rdns_mode = x,
            _ => errors.push((
                "rdns_mode",
                format!("Select a valid choice. {m} is not one of the available choices."),
            )),
        }
    }
    if p.has("disabled_boot_architectures") {
        sn.disabled_boot_architectures = p.list("disabled_boot_architectures");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(&errors))
    }
}

pub fn create_subnet(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let mut sn = Subnet {
        rdns_mode: 2,
        allow_dns: true,
        allow_proxy: true,
        managed: true,
        ..Subnet::default()
    };
    if let Err(e) = apply_subnet(st, &mut sn, &r.params, true) {
        return e;
    }
    let id = st.next_id("subnet", 1);
    sn.id = id;
    st.subnets.insert(id, sn);
    ok(render::subnet(st, &s.api, &st.subnets[&id]))
}

pub fn update_subnet(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let mut sn = match subnet_or_404(st, r.path("id")) {
        Ok(x) => x.clone(),
        Err(e) => return e,
    };
    if let Err(e) = apply_subnet(st, &mut sn, &r.params, false) {
        return e;
    }
    let id = sn.id;
    st.subnets.insert(id, sn);
    ok(render::subnet(st, &s.api, &st.subnets[&id]))
}

pub fn delete_subnet(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let id = match subnet_or_404(st, r.path("id")) {
        Ok(x) => x.id,
        Err(e) => return e,
    };
    remove_subnet(st, id);
    deleted()
}

fn remove_subnet(st: &mut State, id: u64) {
    st.subnets.remove(&id);
    st.ipranges.retain(|_, r| r.subnet_id != id);
    for m in st.machines.values_mut() {
        for i in &mut m.interfaces {
            i.links.retain(|l| l.subnet_id != Some(id));
        }
    }
}

pub fn reserved_ip_ranges(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    let sn = match subnet_or_404(st, r.path("id")) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let v4 = parse_cidr(&sn.cidr).is_some_and(|(n, _)| n.is_ipv4());
    let out: Vec<Value> = reserved(st, sn)
        .into_iter()
        .map(|(a, b, purpose)| {
            json!({
                "start": from_u128(a, v4).to_string(),
                "end": from_u128(b, v4).to_string(),
                "num_addresses": (b - a + 1) as u64,
                "purpose": [purpose],
            })
        })
        .collect();
    ok(Value::Array(out))
}

pub fn unreserved_ip_ranges(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    let sn = match subnet_or_404(st, r.path("id")) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let v4 = parse_cidr(&sn.cidr).is_some_and(|(n, _)| n.is_ipv4());
    let out: Vec<Value> = unreserved(st, sn)
        .into_iter()
        .map(|(a, b)| {
            json!({
                "start": from_u128(a, v4).to_string(),
                "end": from_u128(b, v4).to_string(),
                "num_addresses": (b - a + 1).min(u64::MAX as u128) as u64,
            })
        })
        .collect();
    ok(Value::Array(out))
}

pub fn statistics(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    let sn = match subnet_or_404(st, r.path("id")) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let Some((lo, hi, v4)) = usable(&sn.cidr) else {
        return bad_request("Invalid subnet");
    };
    let total = (hi - lo + 1).min(u64::MAX as u128) as u64;
    let free: Vec<(u128, u128)> = unreserved(st, sn);
    let available: u64 = free
        .iter()
        .map(|(a, b)| (b - a + 1).min(u64::MAX as u128) as u64)
        .sum();
    let largest: u64 = free
        .iter()
        .map(|(a, b)| (b - a + 1).min(u64::MAX as u128) as u64)
        .max()
        .unwrap_or(0);
    let used = total.saturating_sub(available);
    let usage = if total == 0 {
        0.0
    } else {
        used as f64 / total as f64
    };
    ok(json!({
        "num_available": available,
        "largest_available": largest,
        "num_unavailable": used,
        "total_addresses": total,
        "usage": usage,
        "usage_string": format!("{:.0}%", usage * 100.0),
        "available_string": format!("{:.0}%", (1.0 - usage) * 100.0),
        "first_address": from_u128(lo, v4).to_string(),
        "last_address": from_u128(hi, v4).to_string(),
        "ip_version": if v4 { 4 } else { 6 },
    }))
}

// ---------------------------------------------------------------------------------
// IP ranges

pub fn ipranges(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    ok(Value::Array(
        st.ipranges
            .values()
            .map(|x| render::iprange(st, &s.api, x))
            .collect(),
    ))
}

fn iprange_or_404<'a>(st: &'a State, key: &str) -> Result<&'a IpRange, Response> {
    key.parse::<u64>()
        .ok()
        .and_then(|id| st.ipranges.get(&id))
        .ok_or_else(|| not_found("IPRange"))
}

pub fn iprange(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    match iprange_or_404(st, r.path("id")) {
        Ok(x) => ok(render::iprange(st, &s.api, x)),
        Err(e) => e,
    }
}

fn apply_iprange(st: &State, ir: &mut IpRange, p: &Params, creating: bool) -> Result<(), Response> {
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    if let Some(t) = p.get("type") {
        if t == "dynamic" || t == "reserved" {
            ir.kind = t.to_string();
        } else {
            errors.push((
                "type",
                format!("Select a valid choice. {t} is not one of the available choices."),
            ));
        }
    } else if creating {
        errors.push(("type", "This field is required.".into()));
    }
    for (key, slot) in [("start_ip", &mut ir.start_ip), ("end_ip", &mut ir.end_ip)] {
        match p.get_nonempty(key) {
            Some(v) if v.parse::<IpAddr>().is_ok() => *slot = v.to_string(),
            Some(_) => errors.push((key, "Enter a valid IPv4 or IPv6 address.".into())),
            None if creating => errors.push((key, "This field is required.".into())),
            None => {}
        }
    }
    if let Some(c) = p.get("comment") {
        ir.comment = c.to_string();
    }
    if !errors.is_empty() {
        return Err(invalid(&errors));
    }
    match p.get_nonempty("subnet") {
        Some(k) => match st.subnet_by_key(k) {
            Some(sn) => ir.subnet_id = sn.id,
            None => {
                return Err(invalid1(
                    "subnet",
                    "Select a valid choice. That choice is not one of the available choices.",
                ));
            }
        },
        None if creating => match st
            .subnets
            .values()
            .find(|sn| ip_in_cidr(&ir.start_ip, &sn.cidr))
        {
            Some(sn) => ir.subnet_id = sn.id,
            None => {
                return Err(invalid1(
                    "subnet",
                    format!("Could not find subnet for IP address: {}.", ir.start_ip),
                ));
            }
        },
        None => {}
    }
    let Some(sn) = st.subnets.get(&ir.subnet_id) else {
        return Err(invalid1("subnet", "This field is required."));
    };
    if !ip_in_cidr(&ir.start_ip, &sn.cidr) {
        return Err(invalid1(
            "start_ip",
            format!("Start IP address must be within subnet: {}.", sn.cidr),
        ));
    }
    if !ip_in_cidr(&ir.end_ip, &sn.cidr) {
        return Err(invalid1(
            "end_ip",
            format!("End IP address must be within subnet: {}.", sn.cidr),
        ));
    }
    let a = ir.start_ip.parse::<IpAddr>().map(to_u128).unwrap_or(0);
    let b = ir.end_ip.parse::<IpAddr>().map(to_u128).unwrap_or(0);
    if b < a {
        return Err(invalid1(
            "end_ip",
            "End IP address must not be less than Start IP address.",
        ));
    }
    for other in st
        .ipranges
        .values()
        .filter(|o| o.subnet_id == ir.subnet_id && o.id != ir.id)
    {
        let oa = other.start_ip.parse::<IpAddr>().map(to_u128).unwrap_or(0);
        let ob = other.end_ip.parse::<IpAddr>().map(to_u128).unwrap_or(0);
        if a <= ob && oa <= b {
            return Err(invalid1(
                "__all__",
                format!(
                    "Requested {} range conflicts with an existing {} range.",
                    ir.kind, other.kind
                ),
            ));
        }
    }
    if ir.kind == "dynamic"
        && let Some(gw) = sn
            .gateway_ip
            .as_deref()
            .and_then(|g| g.parse::<IpAddr>().ok())
            .map(to_u128)
        && (a..=b).contains(&gw)
    {
        return Err(invalid1(
            "__all__",
            "Requested dynamic range conflicts with an existing IP address or range (gateway-ip).",
        ));
    }
    Ok(())
}

pub fn create_iprange(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let mut ir = IpRange::default();
    if let Err(e) = apply_iprange(st, &mut ir, &r.params, true) {
        return e;
    }
    let id = st.next_id("iprange", 1);
    ir.id = id;
    st.ipranges.insert(id, ir);
    ok(render::iprange(st, &s.api, &st.ipranges[&id]))
}

pub fn update_iprange(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let mut ir = match iprange_or_404(st, r.path("id")) {
        Ok(x) => x.clone(),
        Err(e) => return e,
    };
    if let Err(e) = apply_iprange(st, &mut ir, &r.params, false) {
        return e;
    }
    let id = ir.id;
    st.ipranges.insert(id, ir);
    ok(render::iprange(st, &s.api, &st.ipranges[&id]))
}

pub fn delete_iprange(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let ir = match iprange_or_404(st, r.path("id")) {
        Ok(x) => x.clone(),
        Err(e) => return e,
    };
    if ir.kind == "dynamic"
        && let Some(sn) = st.subnets.get(&ir.subnet_id)
        && st.vlans.get(&sn.vlan_id).is_some_and(|v| v.dhcp_on)
    {
        let others = st
            .ipranges
            .values()
            .filter(|o| o.id != ir.id && o.kind == "dynamic")
            .any(|o| {
                st.subnets
                    .get(&o.subnet_id)
                    .is_some_and(|x| x.vlan_id == sn.vlan_id)
            });
        if !others {
            return bad_request(
                "Cannot delete the last dynamic range on a VLAN with DHCP enabled; disable DHCP on the VLAN first.",
            );
        }
    }
    st.ipranges.remove(&ir.id);
    deleted()
}

// ---------------------------------------------------------------------------------
// Spaces

fn space_or_404<'a>(st: &'a State, key: &str) -> Result<&'a Space, Response> {
    st.space_by_key(key).ok_or_else(|| not_found("Space"))
}

pub fn spaces(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    ok(Value::Array(
        st.spaces
            .values()
            .map(|x| render::space(st, &s.api, x))
            .collect(),
    ))
}

pub fn space(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    match space_or_404(st, r.path("id")) {
        Ok(x) => ok(render::space(st, &s.api, x)),
        Err(e) => e,
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub fn create_space(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let p = &r.params;
    if let Some(n) = p.get_nonempty("name") {
        if !valid_name(n) {
            return invalid1(
                "name",
                "Invalid space name. Names can only contain letters, numbers, dashes and underscores.",
            );
        }
        if st.spaces.values().any(|x| x.name == n) {
            return invalid1("name", "Space with this Name already exists.");
        }
    }
    let id = st.next_id("space", 1);
    let name = p
        .get_nonempty("name")
        .map(str::to_string)
        .unwrap_or_else(|| format!("space-{id}"));
    st.spaces.insert(
        id,
        Space {
            id,
            name,
            description: p.get("description").unwrap_or("").to_string(),
        },
    );
    ok(render::space(st, &s.api, &st.spaces[&id]))
}

pub fn update_space(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let id = match space_or_404(st, r.path("id")) {
        Ok(x) => x.id,
        Err(e) => return e,
    };
    let p = &r.params;
    if let Some(n) = p.get_nonempty("name") {
        if !valid_name(n) {
            return invalid1(
                "name",
                "Invalid space name. Names can only contain letters, numbers, dashes and underscores.",
            );
        }
        if st.spaces.values().any(|x| x.name == n && x.id != id) {
            return invalid1("name", "Space with this Name already exists.");
        }
    }
    let Some(sp) = st.spaces.get_mut(&id) else {
        return not_found("Space");
    };
    if let Some(n) = p.get_nonempty("name") {
        sp.name = n.to_string();
    }
    if let Some(d) = p.get("description") {
        sp.description = d.to_string();
    }
    ok(render::space(st, &s.api, &st.spaces[&id]))
}

pub fn delete_space(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let id = match space_or_404(st, r.path("id")) {
        Ok(x) => x.id,
        Err(e) => return e,
    };
    st.spaces.remove(&id);
    for v in st.vlans.values_mut() {
        if v.space_id == Some(id) {
            v.space_id = None;
        }
    }
    deleted()
}

// ---------------------------------------------------------------------------------
// Admin mutation of non-machine objects

fn params_from(set: &serde_json::Map<String, Value>) -> Params {
    Params(
        set.iter()
            .flat_map(|(k, v)| match v {
                Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        (
                            k.clone(),
                            x.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| x.to_string()),
                        )
                    })
                    .collect::<Vec<_>>(),
                Value::Null => vec![(k.clone(), String::new())],
                Value::String(s) => vec![(k.clone(), s.clone())],
                other => vec![(k.clone(), other.to_string())],
            })
            .collect(),
    )
}

fn err_text(r: Response) -> String {
    format!("rejected with HTTP {}", r.status().as_u16())
}

/// `kind`: `vlan` (id: VLAN id or `fabric_id/vid`), `subnet`, `fabric`, `iprange`,
/// `space`, `zone`, `resource_pool`, `tag`, `rack_controller`; `set` uses API field
/// names and goes through the same validation as the API; `delete` removes.
pub fn mutate(s: &Maas, st: &mut State, kind: &str, req: &MutateRequest) -> Result<Value, String> {
    let p = params_from(&req.set);
    match kind {
        "vlan" | "vlans" => {
            let id = match req.id.split_once('/') {
                Some((f, vid)) => {
                    let fid = st.fabric_by_key(f).map(|f| f.id).ok_or("no such fabric")?;
                    let vid: u16 = vid.parse().map_err(|_| "bad vid")?;
                    st.vlan_by_fabric_vid(fid, vid)
                        .map(|v| v.id)
                        .ok_or("no such VLAN")?
                }
                None => req
                    .id
                    .parse::<u64>()
                    .ok()
                    .filter(|i| st.vlans.contains_key(i))
                    .ok_or("no such VLAN")?,
            };
            if req.delete {
                st.vlans.remove(&id);
                detach_vlans(st, &[id]);
                return Ok(json!({"deleted": id}));
            }
            // Behind the API's back: force the values without the form's checks.
            let v = st.vlans.get_mut(&id).ok_or("no such VLAN")?;
            for (k, val) in &req.set {
                match k.as_str() {
                    "dhcp_on" => v.dhcp_on = val.as_bool().ok_or("dhcp_on must be a boolean")?,
                    "primary_rack" => v.primary_rack = val.as_str().map(str::to_string),
                    "secondary_rack" => v.secondary_rack = val.as_str().map(str::to_string),
                    "mtu" => v.mtu = val.as_u64().ok_or("mtu must be a number")? as u32,
                    "name" => v.name = val.as_str().map(str::to_string),
                    "description" => v.description = val.as_str().unwrap_or("").to_string(),
                    "external_dhcp" => v.external_dhcp = val.as_str().map(str::to_string),
                    other => return Err(format!("field {other} cannot be set on a VLAN")),
                }
            }
            Ok(render::vlan(st, &s.api, &st.vlans[&id]))
        }
        "subnet" | "subnets" => {
            let id = st
                .subnet_by_key(&req.id)
                .map(|x| x.id)
                .ok_or("no such subnet")?;
            if req.delete {
                remove_subnet(st, id);
                return Ok(json!({"deleted": id}));
            }
            let mut sn = st.subnets[&id].clone();
            apply_subnet(st, &mut sn, &p, false).map_err(err_text)?;
            st.subnets.insert(id, sn);
            Ok(render::subnet(st, &s.api, &st.subnets[&id]))
        }
        "fabric" | "fabrics" => {
            let id = st
                .fabric_by_key(&req.id)
                .map(|f| f.id)
                .ok_or("no such fabric")?;
            if req.delete {
                let vlans: Vec<u64> = st
                    .vlans
                    .values()
                    .filter(|v| v.fabric_id == id)
                    .map(|v| v.id)
                    .collect();
                let subnets: Vec<u64> = st
                    .subnets
                    .values()
                    .filter(|x| vlans.contains(&x.vlan_id))
                    .map(|x| x.id)
                    .collect();
                for sid in subnets {
                    remove_subnet(st, sid);
                }
                for v in &vlans {
                    st.vlans.remove(v);
                }
                detach_vlans(st, &vlans);
                st.fabrics.remove(&id);
                return Ok(json!({"deleted": id}));
            }
            let f = st.fabrics.get_mut(&id).ok_or("no such fabric")?;
            if let Some(n) = p.get("name") {
                f.name = n.to_string();
            }
            if let Some(d) = p.get("description") {
                f.description = d.to_string();
            }
            Ok(render::fabric(st, &s.api, &st.fabrics[&id]))
        }
        "iprange" | "ipranges" => {
            let id: u64 = req.id.parse().map_err(|_| "bad id")?;
            if req.delete {
                return st
                    .ipranges
                    .remove(&id)
                    .map(|_| json!({"deleted": id}))
                    .ok_or_else(|| "no such IP range".into());
            }
            let mut ir = st.ipranges.get(&id).cloned().ok_or("no such IP range")?;
            apply_iprange(st, &mut ir, &p, false).map_err(err_text)?;
            st.ipranges.insert(id, ir);
            Ok(render::iprange(st, &s.api, &st.ipranges[&id]))
        }
        "space" | "spaces" => {
            let id = st
                .space_by_key(&req.id)
                .map(|x| x.id)
                .ok_or("no such space")?;
            if req.delete {
                st.spaces.remove(&id);
                for v in st.vlans.values_mut() {
                    if v.space_id == Some(id) {
                        v.space_id = None;
                    }
                }
                return Ok(json!({"deleted": id}));
            }
            let sp = st.spaces.get_mut(&id).ok_or("no such space")?;
            if let Some(n) = p.get("name") {
                sp.name = n.to_string();
            }
            if let Some(d) = p.get("description") {
                sp.description = d.to_string();
            }
            Ok(render::space(st, &s.api, &st.spaces[&id]))
        }
        "zone" | "zones" => {
            let id = st
                .zone_by_name(&req.id)
                .map(|z| z.id)
                .ok_or("no such zone")?;
            if req.delete {
                let default = st.default_zone_id();
                for m in st.machines.values_mut() {
                    if m.zone_id == id {
                        m.zone_id = default;
                    }
                }
                st.zones.remove(&id);
                return Ok(json!({"deleted": req.id}));
            }
            let z = st.zones.get_mut(&id).ok_or("no such zone")?;
            if let Some(d) = p.get("description") {
                z.description = d.to_string();
            }
            Ok(render::zone(&s.api, &st.zones[&id]))
        }
        "resource_pool" | "pool" | "resourcepool" => {
            let id = st
                .pool_by_name(&req.id)
                .map(|x| x.id)
                .or_else(|| {
                    req.id
                        .parse::<u64>()
                        .ok()
                        .filter(|i| st.pools.contains_key(i))
                })
                .ok_or("no such pool")?;
            if req.delete {
                let default = st.default_pool_id();
                for m in st.machines.values_mut() {
                    if m.pool_id == id {
                        m.pool_id = default;
                    }
                }
                st.pools.remove(&id);
                return Ok(json!({"deleted": req.id}));
            }
            let x = st.pools.get_mut(&id).ok_or("no such pool")?;
            if let Some(d) = p.get("description") {
                x.description = d.to_string();
            }
            Ok(render::pool(&s.api, &st.pools[&id]))
        }
        "tag" | "tags" => {
            if req.delete {
                st.tags.remove(&req.id).ok_or("no such tag")?;
                for m in st.machines.values_mut() {
                    m.tags.retain(|t| *t != req.id);
                }
                return Ok(json!({"deleted": req.id}));
            }
            let t = st.tags.get_mut(&req.id).ok_or("no such tag")?;
            if let Some(c) = p.get("comment") {
                t.comment = c.to_string();
            }
            if let Some(k) = p.get("kernel_opts") {
                t.kernel_opts = k.to_string();
            }
            Ok(render::tag(&s.api, &st.tags[&req.id]))
        }
        "rack_controller" | "rackcontroller" | "controller" => {
            let pos = st
                .controllers
                .iter()
                .position(|c| c.system_id == req.id || c.hostname == req.id)
                .ok_or("no such controller")?;
            if req.delete {
                let c = st.controllers.remove(pos);
                for v in st.vlans.values_mut() {
                    if v.primary_rack.as_deref() == Some(&c.system_id) {
                        v.primary_rack = v.secondary_rack.take();
                    }
                    if v.secondary_rack.as_deref() == Some(&c.system_id) {
                        v.secondary_rack = None;
                    }
                    if v.primary_rack.is_none() {
                        v.dhcp_on = false;
                    }
                }
                return Ok(json!({"deleted": c.system_id}));
            }
            if let Some(h) = p.get("hostname") {
                st.controllers[pos].hostname = h.to_string();
            }
            // What rackd reports after a VLAN interface appears on the controller
            // (`eth0.<vid>` on the VLAN with this id).
            if let Some(v) = p.get("add_vlan_interface") {
                let vlan = v
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| st.vlans.get(&id))
                    .cloned()
                    .ok_or("add_vlan_interface: no such VLAN id")?;
                let id = st.next_id("interface", 1);
                let base = st.controllers[pos]
                    .interfaces
                    .first()
                    .map(|i| i.name.clone())
                    .unwrap_or_else(|| "eth0".into());
                let mac = st.controllers[pos]
                    .interfaces
                    .first()
                    .map(|i| i.mac_address.clone())
                    .unwrap_or_default();
                st.controllers[pos].interfaces.push(Interface {
                    id,
                    name: format!("{base}.{}", vlan.vid),
                    mac_address: mac,
                    vlan_id: Some(vlan.id),
                    enabled: true,
                    vendor: None,
                    product: None,
                    pci_address: None,
                    link_speed: 0,
                    interface_speed: 0,
                    mtu: None,
                    tags: vec![],
                    links: vec![],
                    kind: String::new(),
                    parents: Vec::new(),
                    params: Default::default(),
                    ..Interface::default()
                });
            }
            Ok(render::controller(st, &s.api, &st.controllers[pos]))
        }
        other => Err(format!(
            "unknown kind {other}; use machine, vlan, subnet, fabric, iprange, space, zone, resource_pool, tag or rack_controller"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("10.1.2.3/24")
                .map(|(n, l)| format!("{n}/{l}"))
                .as_deref(),
            Some("10.1.2.0/24")
        );
        assert!(parse_cidr("10.1.2.3/33").is_none());
        assert!(parse_cidr("fd00::1/64").is_some());
        assert!(ip_in_cidr("10.1.2.200", "10.1.2.0/24"));
        assert!(!ip_in_cidr("10.1.3.1", "10.1.2.0/24"));
        assert!(!ip_in_cidr("fd00::1", "10.1.2.0/24"));
    }
}
