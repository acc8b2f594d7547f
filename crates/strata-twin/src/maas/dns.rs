//! DNS: domains' updates and DNS resources (address records), with the validation of
//! MAAS's forms (canonical/maas `src/maasserver/forms/domain.py` `DomainForm`,
//! `src/maasserver/forms/dnsresource.py` `DNSResourceForm`,
//! `src/maasserver/api/dnsresources.py` `DNSResourcesHandler`/`DNSResourceHandler`).

use std::net::IpAddr;

use axum::response::Response;
use serde_json::{Value, json};

use super::http::{Params, Req, deleted, invalid, not_found, ok};
use super::model::*;
use super::{Maas, render};

/// A DNS label as MAAS's domain-name validator takes it (letters, digits, hyphens;
/// not starting or ending with a hyphen; at most 63 characters).
fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && !l.starts_with('-')
        && !l.ends_with('-')
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `PUT /domains/{id}/`: name, authoritative, ttl (`DomainForm`).
pub fn update_domain(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(id) = st.domain_by_key(r.path("id")).map(|d| d.id) else {
        return not_found("Domain");
    };
    let p = &r.params;
    let mut errors: Vec<(&str, String)> = Vec::new();
    let name = match p.get_nonempty("name") {
        Some(n) if !n.split('.').all(valid_label) => {
            errors.push(("name", format!("Invalid domain name: {n}.")));
            None
        }
        Some(n) if st.domains.values().any(|d| d.name == n && d.id != id) => {
            errors.push(("name", "Domain with this Name already exists.".into()));
            None
        }
        other => other.map(str::to_string),
    };
    let authoritative = match p.bool("authoritative") {
        Ok(v) => v,
        Err(v) => {
            errors.push((
                "authoritative",
                format!("'{v}' value must be either True or False."),
            ));
            None
        }
    };
    let ttl = match p.get("ttl") {
        None => None,
        Some("") => Some(None),
        Some(t) => match t.parse::<u32>() {
            Ok(v) if v <= 604800 => Some(Some(v)),
            _ => {
                errors.push((
                    "ttl",
                    "Ensure this value is less than or equal to 604800.".into(),
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return invalid(&errors);
    }
    let Some(d) = st.domains.get_mut(&id) else {
        return not_found("Domain");
    };
    if let Some(n) = name {
        d.name = n;
    }
    if let Some(a) = authoritative {
        d.authoritative = a;
    }
    if let Some(t) = ttl {
        d.ttl = t;
    }
    ok(render::domain(st, &s.api, &st.domains[&id]))
}

fn render_dnsresource(st: &State, api: &str, d: &DnsResource) -> Value {
    let domain = st
        .domains
        .get(&d.domain_id)
        .map(|x| x.name.clone())
        .unwrap_or_default();
    let fqdn = if d.name == "@" {
        domain
    } else {
        format!("{}.{domain}", d.name)
    };
    json!({
        "id": d.id,
        "fqdn": fqdn,
        "address_ttl": d.address_ttl,
        "ip_addresses": d.ip_addresses.iter().map(|ip| json!({
            "ip": ip,
            "alloc_type": 4,
            "alloc_type_name": "User reserved",
        })).collect::<Vec<_>>(),
        "resource_records": [],
        "resource_uri": format!("{api}dnsresources/{}/", d.id),
    })
}

/// `name` and `domain` of a request: `fqdn` is split (first label, the rest) only
/// when neither is given, as `DNSResourcesHandler` does.
fn name_and_domain(p: &Params) -> (Option<String>, Option<String>) {
    let name = p.get_nonempty("name").map(str::to_string);
    let domain = p.get_nonempty("domain").map(str::to_string);
    if name.is_none()
        && domain.is_none()
        && let Some(f) = p.get_nonempty("fqdn")
    {
        let f = f.trim_end_matches('.');
        return match f.split_once('.') {
            Some((n, d)) => (Some(n.to_string()), Some(d.to_string())),
            None => (Some(f.to_string()), None),
        };
    }
    (name, domain)
}

/// `GET /dnsresources/` (filters `fqdn`, `name`, `domain`).
pub fn dnsresources(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    let (name, domain) = name_and_domain(&r.params);
    let domain_id = match domain.as_deref() {
        None => None,
        Some(d) => match st.domain_by_key(d) {
            Some(x) => Some(x.id),
            None => return not_found("Domain"),
        },
    };
    ok(Value::Array(
        st.dnsresources
            .values()
            .filter(|d| domain_id.is_none_or(|id| d.domain_id == id))
            .filter(|d| name.as_deref().is_none_or(|n| d.name == n))
            .map(|d| render_dnsresource(st, &s.api, d))
            .collect(),
    ))
}

/// Validate the form's fields onto `d` (`DNSResourceForm.clean`, the model's
/// `validate_dnsresource_name` for address records).
fn apply(st: &State, d: &mut DnsResource, p: &Params, creating: bool) -> Result<(), Response> {
    let mut errors: Vec<(&str, String)> = Vec::new();
    let (name, domain) = name_and_domain(p);
    match name {
        Some(n) if n == "@" || valid_label(&n) => d.name = n,
        Some(n) => errors.push(("name", format!("Invalid dnsresource name: {n}."))),
        None if creating => errors.push(("name", "This field is required.".into())),
        None => {}
    }
    match domain {
        // The handler resolves a domain name or id before the form runs, with a 404.
        Some(x) => match st.domain_by_key(&x) {
            Some(dom) => d.domain_id = dom.id,
            None => return Err(not_found("Domain")),
        },
        None if creating => errors.push(("domain", "This field is required.".into())),
        None => {}
    }
    match p.get("address_ttl") {
        None => {}
        Some("") => d.address_ttl = None,
        Some(t) => match t.parse::<i64>() {
            Ok(v) if (0..(1i64 << 31)).contains(&v) => d.address_ttl = Some(v as u32),
            Ok(v) if v < 0 => errors.push((
                "address_ttl",
                "Ensure this value is greater than or equal to 0.".into(),
            )),
            Ok(_) => errors.push((
                "address_ttl",
                "Ensure this value is less than or equal to 2147483647.".into(),
            )),
            Err(_) => errors.push(("address_ttl", "Enter a whole number.".into())),
        },
    }
    if let Some(list) = p.get("ip_addresses") {
        let mut ips = Vec::new();
        for x in list.split_whitespace() {
            match x.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip.to_string()),
                Err(_) => {
                    errors.push(("ip_addresses", format!("“{x}” is not a valid value.")));
                }
            }
        }
        d.ip_addresses = ips;
    }
    if errors.is_empty()
        && st
            .dnsresources
            .values()
            .any(|x| x.id != d.id && x.name == d.name && x.domain_id == d.domain_id)
    {
        errors.push((
            "__all__",
            "Dnsresource with this Name and Domain already exists.".into(),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(&errors))
    }
}

/// `POST /dnsresources/`.
pub fn create_dnsresource(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let mut d = DnsResource::default();
    if let Err(e) = apply(st, &mut d, &r.params, true) {
        return e;
    }
    d.id = st.next_id("dnsresource", 1);
    let id = d.id;
    st.dnsresources.insert(id, d);
    ok(render_dnsresource(st, &s.api, &st.dnsresources[&id]))
}

fn dnsresource_id(st: &State, key: &str) -> Option<u64> {
    key.parse::<u64>()
        .ok()
        .filter(|id| st.dnsresources.contains_key(id))
}

/// `GET /dnsresources/{id}/`.
pub fn dnsresource(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    match dnsresource_id(st, r.path("id")) {
        Some(id) => ok(render_dnsresource(st, &s.api, &st.dnsresources[&id])),
        None => not_found("DNSResource"),
    }
}

/// `PUT /dnsresources/{id}/`.
pub fn update_dnsresource(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(id) = dnsresource_id(st, r.path("id")) else {
        return not_found("DNSResource");
    };
    let mut d = st.dnsresources[&id].clone();
    if let Err(e) = apply(st, &mut d, &r.params, false) {
        return e;
    }
    st.dnsresources.insert(id, d);
    ok(render_dnsresource(st, &s.api, &st.dnsresources[&id]))
}

/// `DELETE /dnsresources/{id}/`.
pub fn delete_dnsresource(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    match dnsresource_id(st, r.path("id")) {
        Some(id) => {
            st.dnsresources.remove(&id);
            deleted()
        }
        None => not_found("DNSResource"),
    }
}
