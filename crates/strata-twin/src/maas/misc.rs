//! Zones, resource pools, tags, controllers, boot resources, configuration, domains
//! and users.

use axum::response::Response;
use serde_json::{Value, json};

use super::http::{Req, bad_request, conflict, deleted, invalid1, not_found, ok};
use super::model::*;
use super::{Maas, render};

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

// ---------------------------------------------------------------------------------
// Zones

pub fn zones(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    ok(Value::Array(
        g.st.zones
            .values()
            .map(|z| render::zone(&s.api, z))
            .collect(),
    ))
}

pub fn zone(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    match g.st.zone_by_name(r.path("name")) {
        Some(z) => ok(render::zone(&s.api, z)),
        None => not_found("Zone"),
    }
}

pub fn create_zone(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(name) = r.params.get_nonempty("name") else {
        return invalid1("name", "This field is required.");
    };
    if !valid_name(name) {
        return invalid1("name", "Enter a valid value.");
    }
    if st.zone_by_name(name).is_some() {
        return invalid1("name", "Zone with this Name already exists.");
    }
    let id = st.next_id("zone", 2);
    st.zones.insert(
        id,
        Zone {
            id,
            name: name.to_string(),
            description: r.params.get("description").unwrap_or("").to_string(),
        },
    );
    ok(render::zone(&s.api, &st.zones[&id]))
}

pub fn update_zone(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(id) = st.zone_by_name(r.path("name")).map(|z| z.id) else {
        return not_found("Zone");
    };
    if let Some(n) = r.params.get_nonempty("name") {
        if !valid_name(n) {
            return invalid1("name", "Enter a valid value.");
        }
        if st.zones.values().any(|z| z.name == n && z.id != id) {
            return invalid1("name", "Zone with this Name already exists.");
        }
        if st.zones[&id].name == "default" && n != "default" {
            return invalid1(
                "name",
                "This zone is the default zone, it cannot be renamed.",
            );
        }
    }
    let Some(z) = st.zones.get_mut(&id) else {
        return not_found("Zone");
    };
    if let Some(n) = r.params.get_nonempty("name") {
        z.name = n.to_string();
    }
    if let Some(d) = r.params.get("description") {
        z.description = d.to_string();
    }
    ok(render::zone(&s.api, &st.zones[&id]))
}

pub fn delete_zone(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(id) = st.zone_by_name(r.path("name")).map(|z| z.id) else {
        return not_found("Zone");
    };
    if st.zones[&id].name == "default" {
        return bad_request("This zone is the default zone, it cannot be deleted.");
    }
    let default = st.default_zone_id();
    for m in st.machines.values_mut() {
        if m.zone_id == id {
            m.zone_id = default;
        }
    }
    st.zones.remove(&id);
    deleted()
}

// ---------------------------------------------------------------------------------
// Resource pools

fn pool_id(st: &State, key: &str) -> Option<u64> {
    key.parse::<u64>()
        .ok()
        .filter(|id| st.pools.contains_key(id))
        .or_else(|| st.pool_by_name(key).map(|p| p.id))
}

pub fn pools(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    ok(Value::Array(
        g.st.pools
            .values()
            .map(|p| render::pool(&s.api, p))
            .collect(),
    ))
}

pub fn pool(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    match pool_id(&g.st, r.path("id")) {
        Some(id) => ok(render::pool(&s.api, &g.st.pools[&id])),
        None => not_found("ResourcePool"),
    }
}

pub fn create_pool(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(name) = r.params.get_nonempty("name") else {
        return invalid1("name", "This field is required.");
    };
    if !valid_name(name) {
        return invalid1("name", "Enter a valid value.");
    }
    if st.pool_by_name(name).is_some() {
        return invalid1("name", "Resource pool with this Name already exists.");
    }
    let id = st.next_id("pool", 1);
    st.pools.insert(
        id,
        Pool {
            id,
            name: name.to_string(),
            description: r.params.get("description").unwrap_or("").to_string(),
        },
    );
    ok(render::pool(&s.api, &st.pools[&id]))
}

pub fn update_pool(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(id) = pool_id(st, r.path("id")) else {
        return not_found("ResourcePool");
    };
    if let Some(n) = r.params.get_nonempty("name") {
        if !valid_name(n) {
            return invalid1("name", "Enter a valid value.");
        }
        if st.pools.values().any(|p| p.name == n && p.id != id) {
            return invalid1("name", "Resource pool with this Name already exists.");
        }
    }
    let Some(p) = st.pools.get_mut(&id) else {
        return not_found("ResourcePool");
    };
    if let Some(n) = r.params.get_nonempty("name") {
        p.name = n.to_string();
    }
    if let Some(d) = r.params.get("description") {
        p.description = d.to_string();
    }
    ok(render::pool(&s.api, &st.pools[&id]))
}

pub fn delete_pool(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(id) = pool_id(st, r.path("id")) else {
        return not_found("ResourcePool");
    };
    if id == st.default_pool_id() {
        return bad_request("This is the default pool, it cannot be deleted.");
    }
    if st.machines.values().any(|m| m.pool_id == id) {
        return bad_request("Pool has machines in it; move them to another pool first.");
    }
    st.pools.remove(&id);
    deleted()
}

// ---------------------------------------------------------------------------------
// Tags

pub fn tags(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    ok(Value::Array(
        g.st.tags.values().map(|t| render::tag(&s.api, t)).collect(),
    ))
}

pub fn tag(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    match g.st.tags.get(r.path("name")) {
        Some(t) => ok(render::tag(&s.api, t)),
        None => not_found("Tag"),
    }
}

pub fn create_tag(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let p = &r.params;
    let Some(name) = p.get_nonempty("name") else {
        return invalid1("name", "This field is required.");
    };
    if !valid_name(name) {
        return invalid1("name", "Invalid character in tag name.");
    }
    if st.tags.contains_key(name) {
        return invalid1("name", "Tag with this Name already exists.");
    }
    st.tags.insert(
        name.to_string(),
        Tag {
            name: name.to_string(),
            comment: p.get("comment").unwrap_or("").to_string(),
            definition: p.get("definition").unwrap_or("").to_string(),
            kernel_opts: p.get("kernel_opts").unwrap_or("").to_string(),
        },
    );
    ok(render::tag(&s.api, &st.tags[name]))
}

pub fn update_tag(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let old = r.path("name").to_string();
    let Some(mut t) = st.tags.get(&old).cloned() else {
        return not_found("Tag");
    };
    let p = &r.params;
    if let Some(n) = p.get_nonempty("name")
        && n != old
    {
        if !valid_name(n) {
            return invalid1("name", "Invalid character in tag name.");
        }
        if st.tags.contains_key(n) {
            return invalid1("name", "Tag with this Name already exists.");
        }
        t.name = n.to_string();
    }
    if let Some(c) = p.get("comment") {
        t.comment = c.to_string();
    }
    if let Some(d) = p.get("definition") {
        t.definition = d.to_string();
    }
    if let Some(k) = p.get("kernel_opts") {
        t.kernel_opts = k.to_string();
    }
    st.tags.remove(&old);
    if t.name != old {
        for m in st.machines.values_mut() {
            for x in &mut m.tags {
                if *x == old {
                    *x = t.name.clone();
                }
            }
        }
    }
    let out = render::tag(&s.api, &t);
    st.tags.insert(t.name.clone(), t);
    ok(out)
}

pub fn delete_tag(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let name = r.path("name");
    if st.tags.remove(name).is_none() {
        return not_found("Tag");
    }
    for m in st.machines.values_mut() {
        m.tags.retain(|t| t != name);
    }
    for c in &mut st.controllers {
        c.tags.retain(|t| t != name);
    }
    deleted()
}

pub fn update_nodes(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let name = r.path("name").to_string();
    let Some(tag) = st.tags.get(&name) else {
        return not_found("Tag");
    };
    if let Some(d) = r.params.get("definition")
        && d != tag.definition
    {
        return conflict(&format!(
            "Definition supplied '{d}' doesn't match current definition '{}'",
            tag.definition
        ));
    }
    let add = r.params.list("add");
    let remove = r.params.list("remove");
    let mut added = 0;
    let mut removed = 0;
    for m in st.machines.values_mut() {
        if add.contains(&m.system_id) {
            added += 1;
            if !m.tags.contains(&name) {
                m.tags.push(name.clone());
            }
        }
        if remove.contains(&m.system_id) {
            removed += 1;
            m.tags.retain(|t| *t != name);
        }
    }
    for c in &mut st.controllers {
        if add.contains(&c.system_id) {
            added += 1;
            if !c.tags.contains(&name) {
                c.tags.push(name.clone());
            }
        }
        if remove.contains(&c.system_id) {
            removed += 1;
            c.tags.retain(|t| *t != name);
        }
    }
    ok(json!({"added": added, "removed": removed}))
}

pub fn tag_machines(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let name = r.path("name");
    if !st.tags.contains_key(name) {
        return not_found("Tag");
    }
    ok(Value::Array(
        st.machines
            .values()
            .filter(|m| m.tags.iter().any(|t| t == name))
            .map(|m| render::machine(st, &s.api, m))
            .collect(),
    ))
}

pub fn tag_nodes(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let name = r.path("name");
    if !st.tags.contains_key(name) {
        return not_found("Tag");
    }
    let mut out: Vec<Value> = st
        .machines
        .values()
        .filter(|m| m.tags.iter().any(|t| t == name))
        .map(|m| render::machine(st, &s.api, m))
        .collect();
    out.extend(
        st.controllers
            .iter()
            .filter(|c| c.tags.iter().any(|t| t == name))
            .map(|c| render::controller(st, &s.api, c)),
    );
    ok(Value::Array(out))
}

// ---------------------------------------------------------------------------------
// Controllers

pub fn racks(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    ok(Value::Array(
        st.controllers
            .iter()
            .filter(|c| c.is_rack())
            .map(|c| render::controller(st, &s.api, c))
            .collect(),
    ))
}

pub fn rack(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    match st
        .controllers
        .iter()
        .find(|c| c.is_rack() && c.system_id == r.path("system_id"))
    {
        Some(c) => ok(render::controller(st, &s.api, c)),
        None => not_found("RackController"),
    }
}

pub fn regions(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    ok(Value::Array(
        st.controllers
            .iter()
            .filter(|c| c.is_region())
            .map(|c| render::controller(st, &s.api, c))
            .collect(),
    ))
}

pub fn region(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    match st
        .controllers
        .iter()
        .find(|c| c.is_region() && c.system_id == r.path("system_id"))
    {
        Some(c) => ok(render::controller(st, &s.api, c)),
        None => not_found("RegionController"),
    }
}

pub fn describe_power_types(_s: &Maas, _r: &Req) -> Response {
    let fields = |names: &[(&str, &str, bool)]| -> Vec<Value> {
        names
            .iter()
            .map(|(n, l, req)| json!({"name": n, "label": l, "required": req, "field_type": if *n == "power_pass" { "password" } else { "string" }, "choices": [], "default": "", "scope": "bmc"}))
            .collect()
    };
    let out: Vec<Value> = POWER_TYPES
        .iter()
        .map(|t| {
            let f = match *t {
                "manual" => vec![],
                "ipmi" | "redfish" | "openbmc" => fields(&[
                    ("power_address", "IP address", true),
                    ("power_user", "Power user", false),
                    ("power_pass", "Power password", false),
                ]),
                _ => fields(&[("power_address", "Power address", true)]),
            };
            json!({"name": t, "description": t.to_uppercase(), "driver_type": "power", "fields": f, "queryable": *t != "manual", "missing_packages": []})
        })
        .collect();
    ok(Value::Array(out))
}

pub fn list_boot_images(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    if !st
        .controllers
        .iter()
        .any(|c| c.is_rack() && c.system_id == r.path("system_id"))
    {
        return not_found("RackController");
    }
    let images: Vec<Value> = st
        .boot_resources
        .iter()
        .filter(|b| b.name.starts_with("ubuntu/"))
        .map(|b| json!({"name": b.name, "architecture": b.architecture.split('/').next().unwrap_or("amd64"), "subarchitecture": b.architecture.split('/').nth(1).unwrap_or("generic")}))
        .collect();
    ok(json!({"images": images, "connected": true, "status": "synced"}))
}

// ---------------------------------------------------------------------------------
// Boot resources

pub fn boot_resources(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let want = r
        .params
        .get_nonempty("type")
        .map(|t| t.to_ascii_lowercase());
    ok(Value::Array(
        g.st.boot_resources
            .iter()
            .filter(|b| {
                want.as_deref()
                    .is_none_or(|t| b.kind.eq_ignore_ascii_case(t))
            })
            .map(|b| render::boot_resource(&s.api, b))
            .collect(),
    ))
}

pub fn boot_resource(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let id = r.path("id");
    match g.st.boot_resources.iter().find(|b| b.id.to_string() == id) {
        Some(b) => {
            let mut v = render::boot_resource(&s.api, b);
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "sets".into(),
                    json!({"20250601": {"version": "20250601", "label": "stable", "size": 1_342_177_280u64, "complete": true, "progress": 100, "files": {}}}),
                );
            }
            ok(v)
        }
        None => not_found("BootResource"),
    }
}

pub fn is_importing(_s: &Maas, _r: &Req) -> Response {
    ok(json!(false))
}

pub fn import_boot_resources(_s: &Maas, r: &Req) -> Response {
    let msg = if r.op.as_deref() == Some("stop_import") {
        "Import of boot resources is being stopped"
    } else {
        "Import of boot resources started"
    };
    ok(json!(msg))
}

// ---------------------------------------------------------------------------------
// Configuration

pub fn get_config(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let Some(name) = r.params.get_nonempty("name") else {
        return bad_request("No provided name!");
    };
    match g.st.config.get(name) {
        Some(v) => ok(v.clone()),
        None => invalid1(
            "name",
            format!(
                "{name} is not a valid config setting (valid settings are: {}).",
                valid_settings(&g.st)
            ),
        ),
    }
}

fn valid_settings(st: &State) -> String {
    st.config.keys().cloned().collect::<Vec<_>>().join(", ")
}

pub fn set_config(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let Some(name) = r.params.get_nonempty("name") else {
        return bad_request("No provided name!");
    };
    if !g.st.config.contains_key(name) {
        return invalid1(
            "name",
            format!(
                "{name} is not a valid config setting (valid settings are: {}).",
                valid_settings(&g.st)
            ),
        );
    }
    let Some(value) = r.params.get("value") else {
        return bad_request("No provided value!");
    };
    let old = g.st.config.get(name).cloned().unwrap_or(Value::Null);
    let new = match old {
        Value::Bool(_) => match super::http::parse_bool(value) {
            Some(b) => Value::Bool(b),
            None => {
                return invalid1(
                    "value",
                    format!("'{value}' value must be either True or False."),
                );
            }
        },
        Value::Number(_) => match value.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => return invalid1("value", "Enter a whole number."),
        },
        _ => Value::String(value.to_string()),
    };
    if name == "default_distro_series" && !RELEASES.iter().any(|(n, _)| *n == value) {
        return invalid1(
            "value",
            format!("Select a valid choice. {value} is not one of the available choices."),
        );
    }
    g.st.config.insert(name.to_string(), new);
    ok(Value::Null)
}

// ---------------------------------------------------------------------------------
// Domains and users

pub fn domains(s: &Maas, _r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    ok(Value::Array(
        st.domains
            .values()
            .map(|d| render::domain(st, &s.api, d))
            .collect(),
    ))
}

pub fn domain(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    match st.domain_by_key(r.path("id")) {
        Some(d) => ok(render::domain(st, &s.api, d)),
        None => not_found("Domain"),
    }
}

pub fn create_domain(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(name) = r.params.get_nonempty("name") else {
        return invalid1("name", "This field is required.");
    };
    let valid = name.split('.').all(|l| {
        !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    if !valid {
        return invalid1("name", format!("Invalid domain name: {name}."));
    }
    if st.domains.values().any(|d| d.name == name) {
        return invalid1("name", "Domain with this Name already exists.");
    }
    let ttl = r
        .params
        .get_nonempty("ttl")
        .and_then(|t| t.parse::<u32>().ok());
    let authoritative = r
        .params
        .bool("authoritative")
        .ok()
        .flatten()
        .unwrap_or(true);
    let id = st.next_id("domain", 1);
    st.domains.insert(
        id,
        Domain {
            id,
            name: name.to_string(),
            authoritative,
            ttl,
            is_default: false,
        },
    );
    ok(render::domain(st, &s.api, &st.domains[&id]))
}

fn user_json(s: &Maas) -> Value {
    json!({
        "username": API_USER,
        "email": format!("{API_USER}@{}.maas", s.ctx.name),
        "is_superuser": true,
        "is_local": true,
        "last_name": "",
        "resource_uri": format!("{}users/{API_USER}/", s.api),
    })
}

pub fn users(s: &Maas, _r: &Req) -> Response {
    ok(json!([user_json(s)]))
}

pub fn whoami(s: &Maas, _r: &Req) -> Response {
    ok(user_json(s))
}

pub fn user(s: &Maas, r: &Req) -> Response {
    if r.path("username") == API_USER {
        ok(user_json(s))
    } else {
        not_found("User")
    }
}
