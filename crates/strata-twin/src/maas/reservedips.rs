//! Reserved IPs (`/reservedips/`, MAAS 3.6): a DHCP host entry that makes MAAS's DHCP
//! serve one address to one MAC. Validation follows canonical/maas
//! src/maasserver/forms/reservedip.py (`ReservedIPForm`: `clean`, `clean_subnet`,
//! `clean_ip`) and the model's uniqueness (src/maasserver/models/reservedip.py: the
//! IP is unique, and so is a MAC per subnet); the handlers follow
//! src/maasserver/api/reservedip.py (`ReservedIpsHandler`, `ReservedIpHandler`).

use std::net::IpAddr;

use axum::response::Response;
use serde_json::{Value, json};

use super::http::{Req, deleted, invalid, invalid1, not_found, ok};
use super::model::*;
use super::network::{ip_in_cidr, parse_cidr};
use super::{Maas, render};

fn rendered(st: &State, api: &str, r: &ReservedIp) -> Value {
    json!({
        "id": r.id,
        "ip": r.ip,
        "subnet": st.subnets.get(&r.subnet_id).map(|s| render::subnet(st, api, s)),
        "mac_address": r.mac_address,
        "comment": r.comment,
        "resource_uri": format!("{api}reservedips/{}/", r.id),
    })
}

pub fn list(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    ok(Value::Array(
        st.reserved_ips
            .values()
            .map(|r| rendered(st, &s.api, r))
            .collect(),
    ))
}

pub fn read(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    match find(st, r.path("id")) {
        Some(x) => ok(rendered(st, &s.api, x)),
        None => not_found("ReservedIP"),
    }
}

fn find<'a>(st: &'a State, id: &str) -> Option<&'a ReservedIp> {
    id.parse::<u64>().ok().and_then(|i| st.reserved_ips.get(&i))
}

/// The most specific subnet holding `ip` (MAAS's `get_best_subnet_for_ip`).
fn best_subnet(st: &State, ip: &str) -> Option<u64> {
    st.subnets
        .values()
        .filter(|s| ip_in_cidr(ip, &s.cidr))
        .max_by_key(|s| parse_cidr(&s.cidr).map(|(_, l)| l).unwrap_or(0))
        .map(|s| s.id)
}

fn ip_u128(ip: &str) -> Option<u128> {
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(u128::from(u32::from(a))),
        IpAddr::V6(a) => Some(u128::from(a)),
    }
}

pub fn create(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &mut g.st;
    let p = &r.params;
    let mut errors: Vec<(&str, String)> = Vec::new();
    let ip = p.get_nonempty("ip").map(str::trim).map(str::to_string);
    match &ip {
        None => errors.push(("ip", "This field is required.".into())),
        Some(a) if a.parse::<IpAddr>().is_err() => {
            errors.push(("ip", "Enter a valid IPv4 or IPv6 address.".into()))
        }
        _ => {}
    }
    let mac = match p.get_nonempty("mac_address") {
        None => {
            errors.push(("mac_address", "This field is required.".into()));
            None
        }
        Some(raw) => match normalize_mac(raw) {
            Some(m) => Some(m),
            None => {
                errors.push((
                    "mac_address",
                    format!("'{raw}' is not a valid MAC address."),
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return invalid(&errors);
    }
    let (Some(ip), Some(mac)) = (ip, mac) else {
        return invalid(&errors);
    };
    // The subnet: the one given (id or cidr), else the best one for the address.
    let subnet_id = match p.get_nonempty("subnet") {
        Some(key) => match st
            .subnets
            .values()
            .find(|sn| sn.id.to_string() == key || sn.cidr == key || sn.name == key)
        {
            Some(sn) => sn.id,
            None => {
                return invalid1(
                    "subnet",
                    "Select a valid choice. That choice is not one of the available choices.",
                );
            }
        },
        None => match best_subnet(st, &ip) {
            Some(id) => id,
            None => {
                return invalid1(
                    "subnet",
                    format!("There is no subnet for {ip}. Create the subnet and try again."),
                );
            }
        },
    };
    let Some(subnet) = st.subnets.get(&subnet_id).cloned() else {
        return not_found("Subnet");
    };
    if !ip_in_cidr(&ip, &subnet.cidr) {
        errors.push(("ip", format!("{ip} is not part of the subnet.")));
    } else if let Some((net, len)) = parse_cidr(&subnet.cidr) {
        let bits = if net.is_ipv4() { 32 } else { 128 };
        let first = ip_u128(&net.to_string()).unwrap_or(0);
        let last = if bits - u32::from(len) >= 128 {
            u128::MAX
        } else {
            first + ((1u128 << (bits - u32::from(len))) - 1)
        };
        let x = ip_u128(&ip).unwrap_or(0);
        if x == first {
            errors.push(("ip", "The network address cannot be a reserved IP.".into()));
        } else if net.is_ipv4() && x == last {
            errors.push((
                "ip",
                "The broadcast address cannot be a reserved IP.".into(),
            ));
        }
    }
    // An address a machine's interface holds, for another MAC.
    let held_by_other = st.machines.values().any(|m| {
        m.interfaces.iter().any(|i| {
            i.mac_address != mac
                && i.links
                    .iter()
                    .any(|l| l.ip_address.as_deref() == Some(ip.as_str()))
        })
    });
    if held_by_other {
        errors.push((
            "ip",
            format!("The ip {ip} is already in use by another machine."),
        ));
    }
    let x = ip_u128(&ip).unwrap_or(0);
    if let Some(range) = st.ipranges.values().find(|rg| {
        rg.subnet_id == subnet_id
            && rg.kind == "dynamic"
            && ip_u128(&rg.start_ip).is_some_and(|a| a <= x)
            && ip_u128(&rg.end_ip).is_some_and(|b| x <= b)
    }) {
        errors.push((
            "ip",
            format!(
                "The reserved IP {ip} must be outside the dynamic range {} - {}.",
                range.start_ip, range.end_ip
            ),
        ));
    }
    if st.reserved_ips.values().any(|r| r.ip == ip) {
        errors.push((
            "ip",
            "Reserved IP with this IP address already exists.".into(),
        ));
    }
    if st
        .reserved_ips
        .values()
        .any(|r| r.subnet_id == subnet_id && r.mac_address == mac)
    {
        errors.push((
            "__all__",
            "Reserved IP with this MAC address and Subnet already exists.".into(),
        ));
    }
    if !errors.is_empty() {
        return invalid(&errors);
    }
    let id = st.next_id("reservedip", 1);
    let rec = ReservedIp {
        id,
        ip,
        subnet_id,
        mac_address: mac,
        comment: p.get("comment").unwrap_or("").to_string(),
    };
    st.reserved_ips.insert(id, rec.clone());
    ok(rendered(st, &s.api, &rec))
}

/// Only the comment changes: ip, MAC and subnet are immutable.
pub fn update(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(cur) = find(st, r.path("id")).cloned() else {
        return not_found("ReservedIP");
    };
    let p = &r.params;
    let changed = p.get("ip").is_some_and(|x| x.trim() != cur.ip)
        || p.get("mac_address")
            .is_some_and(|x| normalize_mac(x).as_deref() != Some(cur.mac_address.as_str()))
        || p.get("subnet")
            .is_some_and(|x| x.trim() != cur.subnet_id.to_string());
    if changed {
        return invalid1(
            "__all__",
            "The ip, mac_address and the subnet of a reserved IP are immutable. Delete the entry and recreate it.",
        );
    }
    let mut next = cur;
    if let Some(c) = p.get("comment") {
        next.comment = c.to_string();
    }
    st.reserved_ips.insert(next.id, next.clone());
    ok(rendered(st, &s.api, &next))
}

pub fn delete(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(id) = find(st, r.path("id")).map(|x| x.id) else {
        return not_found("ReservedIP");
    };
    st.reserved_ips.remove(&id);
    deleted()
}
