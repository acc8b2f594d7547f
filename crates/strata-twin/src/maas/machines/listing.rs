//! Listing and filters: the constraint filter shared by `list` and `allocate` (devices,
//! fabrics, subnets, architecture, tags, zones, …) and the read-only collection operations
//! (list, list_allocated, is_registered, power parameters of many).

use super::*;

pub(super) fn matches_devices(m: &Machine, spec: &str) -> bool {
    let Some(hw) = m.reported.as_ref() else {
        return false;
    };
    let pairs: Vec<(String, String)> = spec
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut devices: Vec<[(&str, String); 5]> = hw
        .gpus
        .iter()
        .map(|g| {
            [
                ("vendor_id", g.vendor_id.clone()),
                ("product_id", g.product_id.clone()),
                ("vendor_name", g.vendor_name.clone()),
                ("product_name", g.model.clone()),
                ("commissioning_driver", String::new()),
            ]
        })
        .collect();
    for i in &m.interfaces {
        if i.pci_address.is_some() {
            devices.push([
                ("vendor_id", "15b3".into()),
                ("product_id", "101d".into()),
                ("vendor_name", i.vendor.clone().unwrap_or_default()),
                ("product_name", i.product.clone().unwrap_or_default()),
                ("commissioning_driver", "mlx5_core".into()),
            ]);
        }
    }
    devices.iter().any(|d| {
        pairs.iter().all(|(k, v)| {
            d.iter()
                .find(|(dk, _)| dk == k)
                .is_some_and(|(_, dv)| dv.eq_ignore_ascii_case(v))
        })
    })
}

pub(super) fn machine_fabrics(st: &State, m: &Machine) -> Vec<(u64, String)> {
    m.interfaces
        .iter()
        .filter_map(|i| i.vlan_id.and_then(|v| st.vlans.get(&v)))
        .filter_map(|v| st.fabrics.get(&v.fabric_id).map(|f| (f.id, f.name.clone())))
        .collect()
}

pub(super) fn machine_subnets<'a>(st: &'a State, m: &'a Machine) -> Vec<&'a Subnet> {
    let mut out: Vec<&Subnet> = Vec::new();
    for i in &m.interfaces {
        for l in &i.links {
            if let Some(s) = l.subnet_id.and_then(|id| st.subnets.get(&id)) {
                out.push(s);
            }
        }
        if let Some(v) = i.vlan_id {
            out.extend(st.subnets.values().filter(|s| s.vlan_id == v));
        }
    }
    out
}

pub(super) fn subnet_spec_matches(st: &State, s: &Subnet, spec: &str) -> bool {
    if let Ok(id) = spec.parse::<u64>() {
        return s.id == id;
    }
    match spec.split_once(':') {
        Some(("name", n)) => s.name == n,
        Some(("cidr", c)) => s.cidr == c,
        Some(("vlan", v)) => v.parse::<u64>().is_ok_and(|id| id == s.vlan_id),
        Some(("vid", v)) => st
            .vlans
            .get(&s.vlan_id)
            .is_some_and(|x| x.vid.to_string() == v),
        Some(("fabric", f)) => st
            .vlans
            .get(&s.vlan_id)
            .and_then(|x| st.fabrics.get(&x.fabric_id))
            .is_some_and(|fab| fab.name == f || fab.id.to_string() == f),
        Some(("space", sp)) => st
            .vlans
            .get(&s.vlan_id)
            .and_then(|x| x.space_id)
            .and_then(|id| st.spaces.get(&id))
            .is_some_and(|x| x.name == sp || x.id.to_string() == sp),
        _ => s.name == spec || s.cidr == spec,
    }
}

/// Filters shared by the machine listing (`ReadNodesForm`) and allocation
/// (`AcquireNodeForm`). Repeated values of one key are OR'ed (tags are AND'ed).
pub(super) struct Filter {
    pub(super) hostnames: Vec<String>,
    pub(super) not_hostnames: Vec<String>,
    pub(super) ids: Vec<String>,
    pub(super) not_ids: Vec<String>,
    pub(super) macs: Vec<String>,
    pub(super) domains: Vec<String>,
    pub(super) zones: Vec<String>,
    pub(super) not_zones: Vec<String>,
    pub(super) pools: Vec<String>,
    pub(super) not_pools: Vec<String>,
    pub(super) statuses: Vec<u8>,
    pub(super) not_statuses: Vec<u8>,
    pub(super) simple: Vec<String>,
    pub(super) tags: Vec<String>,
    pub(super) not_tags: Vec<String>,
    pub(super) archs: Vec<String>,
    pub(super) not_archs: Vec<String>,
    pub(super) cpu_count: Option<f64>,
    pub(super) mem: Option<f64>,
    pub(super) owners: Vec<String>,
    pub(super) power_states: Vec<String>,
    pub(super) agent_name: Option<String>,
    pub(super) devices: Vec<String>,
    pub(super) fabrics: Vec<String>,
    pub(super) not_fabrics: Vec<String>,
    pub(super) subnets: Vec<String>,
    pub(super) not_subnets: Vec<String>,
    pub(super) storage: Vec<u64>,
}

pub(super) fn parse_filter(st: &State, p: &Params, allocate: bool) -> Result<Filter, Response> {
    let mut errors: Vec<(&str, String)> = Vec::new();
    let macs: Vec<String> = p
        .all("mac_address")
        .into_iter()
        .map(str::to_string)
        .collect();
    let bad: Vec<&String> = macs.iter().filter(|m| normalize_mac(m).is_none()).collect();
    if !bad.is_empty() {
        return Err(bad_request(&format!(
            "Invalid MAC address(es): {}",
            bad.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut statuses = Vec::new();
    for s in p.list("status") {
        match S::parse(&s) {
            Some(x) => statuses.push(x),
            None => errors.push((
                "status",
                format!("Select a valid choice. {s} is not one of the available choices."),
            )),
        }
    }
    let mut not_statuses = Vec::new();
    for s in p.list("not_status") {
        if let Some(x) = S::parse(&s) {
            not_statuses.push(x);
        }
    }
    let cpu_count = match p.get_nonempty("cpu_count") {
        None => None,
        Some(v) => match parse_num(v) {
            Some(n) => Some(n),
            None => {
                errors.push(("cpu_count", "Invalid CPU count: number required.".into()));
                None
            }
        },
    };
    let mem = match p.get_nonempty("mem") {
        None => None,
        Some(v) => match parse_num(v) {
            Some(n) => Some(n),
            None => {
                errors.push(("mem", "Invalid memory: number of MiB required.".into()));
                None
            }
        },
    };
    let zones: Vec<String> = p
        .all("zone")
        .into_iter()
        .filter(|z| !z.is_empty())
        .map(str::to_string)
        .collect();
    let pools: Vec<String> = p
        .all("pool")
        .into_iter()
        .filter(|z| !z.is_empty())
        .map(str::to_string)
        .collect();
    let tags = p.list("tags");
    if allocate {
        for z in &zones {
            if st.zone_by_name(z).is_none() {
                errors.push(("zone", format!("No such zone: '{z}'.")));
            }
        }
        for z in &pools {
            if st.pool_by_name(z).is_none() {
                errors.push(("pool", format!("No such pool: '{z}'.")));
            }
        }
        let unknown: Vec<&String> = tags.iter().filter(|t| !st.tags.contains_key(*t)).collect();
        if !unknown.is_empty() {
            errors.push((
                "tags",
                format!(
                    "No such tag(s): {}.",
                    unknown
                        .iter()
                        .map(|t| format!("'{t}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let mut storage = Vec::new();
    for spec in p.list("storage") {
        // label:size(tags) or size(tags); size in GB.
        let spec = spec.split('(').next().unwrap_or("");
        let size = spec.rsplit(':').next().unwrap_or("");
        match parse_num(size) {
            Some(gb) => storage.push((gb * 1_000_000_000.0) as u64),
            None => errors.push((
                "storage",
                format!("Malformed storage constraint, \"{spec}\"."),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(invalid(&errors));
    }
    let mut ids: Vec<String> = p.all("id").into_iter().map(str::to_string).collect();
    ids.extend(p.all("system_id").into_iter().map(str::to_string));
    let mut hostnames: Vec<String> = p.all("hostname").into_iter().map(str::to_string).collect();
    hostnames.extend(p.all("name").into_iter().map(str::to_string));
    let mut archs: Vec<String> = p.all("arch").into_iter().map(str::to_string).collect();
    archs.extend(p.all("architecture").into_iter().map(str::to_string));
    Ok(Filter {
        hostnames,
        not_hostnames: p
            .all("not_hostname")
            .into_iter()
            .map(str::to_string)
            .collect(),
        ids,
        not_ids: p.all("not_id").into_iter().map(str::to_string).collect(),
        macs: macs.iter().filter_map(|m| normalize_mac(m)).collect(),
        domains: p.all("domain").into_iter().map(str::to_string).collect(),
        zones,
        not_zones: [p.list("not_in_zone"), p.list("not_in_zones")].concat(),
        pools,
        not_pools: p.list("not_in_pool"),
        statuses,
        not_statuses,
        simple: p
            .list("simple_status")
            .into_iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        tags,
        not_tags: p.list("not_tags"),
        archs,
        not_archs: p.list("not_arch"),
        cpu_count,
        mem,
        owners: p.all("owner").into_iter().map(str::to_string).collect(),
        power_states: p
            .all("power_state")
            .into_iter()
            .map(str::to_string)
            .collect(),
        agent_name: p
            .get("agent_name")
            .map(str::to_string)
            .filter(|_| !allocate),
        devices: p.all("devices").into_iter().map(str::to_string).collect(),
        fabrics: p.list("fabrics"),
        not_fabrics: p.list("not_fabrics"),
        subnets: p.all("subnets").into_iter().map(str::to_string).collect(),
        not_subnets: p
            .all("not_subnets")
            .into_iter()
            .map(str::to_string)
            .collect(),
        storage,
    })
}

pub(super) fn arch_matches(machine_arch: &str, wanted: &str) -> bool {
    machine_arch == wanted
        || machine_arch.split('/').next() == Some(wanted)
        || fix_architecture(wanted) == machine_arch
}

pub(super) fn filter_matches(st: &State, f: &Filter, m: &Machine) -> bool {
    let dom = st
        .domains
        .get(&m.domain_id)
        .map(|d| d.name.as_str())
        .unwrap_or("");
    let fqdn = format!("{}.{dom}", m.hostname);
    if !f.hostnames.is_empty() && !f.hostnames.iter().any(|h| *h == m.hostname || *h == fqdn) {
        return false;
    }
    if f.not_hostnames
        .iter()
        .any(|h| *h == m.hostname || *h == fqdn)
    {
        return false;
    }
    if !f.ids.is_empty() && !f.ids.contains(&m.system_id) {
        return false;
    }
    if f.not_ids.contains(&m.system_id) {
        return false;
    }
    if !f.macs.is_empty() && !m.interfaces.iter().any(|i| f.macs.contains(&i.mac_address)) {
        return false;
    }
    if !f.domains.is_empty() && !f.domains.iter().any(|d| d == dom) {
        return false;
    }
    let zone = st
        .zones
        .get(&m.zone_id)
        .map(|z| z.name.as_str())
        .unwrap_or("");
    if !f.zones.is_empty() && !f.zones.iter().any(|z| z == zone) {
        return false;
    }
    if f.not_zones.iter().any(|z| z == zone) {
        return false;
    }
    let pool = st
        .pools
        .get(&m.pool_id)
        .map(|p| p.name.as_str())
        .unwrap_or("");
    if !f.pools.is_empty() && !f.pools.iter().any(|p| p == pool) {
        return false;
    }
    if f.not_pools.iter().any(|p| p == pool) {
        return false;
    }
    if !f.statuses.is_empty() && !f.statuses.contains(&m.status) {
        return false;
    }
    if f.not_statuses.contains(&m.status) {
        return false;
    }
    if !f.simple.is_empty()
        && !f
            .simple
            .iter()
            .any(|s| *s == S::simple(m.status).to_ascii_lowercase())
    {
        return false;
    }
    if !f.tags.iter().all(|t| m.tags.contains(t)) {
        return false;
    }
    if f.not_tags.iter().any(|t| m.tags.contains(t)) {
        return false;
    }
    if !f.archs.is_empty() && !f.archs.iter().any(|a| arch_matches(&m.architecture, a)) {
        return false;
    }
    if f.not_archs.iter().any(|a| arch_matches(&m.architecture, a)) {
        return false;
    }
    let hw = m.reported.as_ref();
    if let Some(c) = f.cpu_count
        && (hw.map(|h| h.cpu_count).unwrap_or(0) as f64) < c
    {
        return false;
    }
    if let Some(mem) = f.mem
        && (hw.map(|h| h.memory_mib).unwrap_or(0) as f64) < mem
    {
        return false;
    }
    if !f.owners.is_empty()
        && !f
            .owners
            .iter()
            .any(|o| m.owner.as_deref() == Some(o.as_str()))
    {
        return false;
    }
    if !f.power_states.is_empty() && !f.power_states.iter().any(|p| p == m.power_state()) {
        return false;
    }
    if let Some(a) = &f.agent_name
        && *a != m.agent_name
    {
        return false;
    }
    if !f.devices.iter().all(|d| matches_devices(m, d)) {
        return false;
    }
    if !f.fabrics.is_empty() || !f.not_fabrics.is_empty() {
        let fabs = machine_fabrics(st, m);
        let has = |x: &String| {
            fabs.iter()
                .any(|(id, name)| name == x || id.to_string() == *x)
        };
        if !f.fabrics.is_empty() && !f.fabrics.iter().any(has) {
            return false;
        }
        if f.not_fabrics.iter().any(has) {
            return false;
        }
    }
    if !f.subnets.is_empty() || !f.not_subnets.is_empty() {
        let subnets = machine_subnets(st, m);
        if !f
            .subnets
            .iter()
            .all(|spec| subnets.iter().any(|s| subnet_spec_matches(st, s, spec)))
        {
            return false;
        }
        if f.not_subnets
            .iter()
            .any(|spec| subnets.iter().any(|s| subnet_spec_matches(st, s, spec)))
        {
            return false;
        }
    }
    if !f.storage.is_empty() {
        let mut disks: Vec<u64> = hw
            .map(|h| h.disks.iter().map(|d| d.size_bytes).collect())
            .unwrap_or_default();
        for need in &f.storage {
            match disks.iter().position(|d| d >= need) {
                Some(i) => {
                    disks.remove(i);
                }
                None => return false,
            }
        }
    }
    true
}

pub fn list(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let f = match parse_filter(st, &r.params, false) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let out: Vec<Value> = st
        .machines
        .values()
        .filter(|m| filter_matches(st, &f, m))
        .map(|m| render::machine(st, &s.api, m))
        .collect();
    ok(Value::Array(out))
}

pub fn list_nodes(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let f = match parse_filter(st, &r.params, false) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let ids: Vec<&str> = r.params.all("id");
    let mut out: Vec<Value> = st
        .machines
        .values()
        .filter(|m| filter_matches(st, &f, m))
        .map(|m| render::machine(st, &s.api, m))
        .collect();
    out.extend(
        st.controllers
            .iter()
            .filter(|c| ids.is_empty() || ids.contains(&c.system_id.as_str()))
            .map(|c| render::controller(st, &s.api, c)),
    );
    ok(Value::Array(out))
}

pub fn list_allocated(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let ids = r.params.all("id");
    let out: Vec<Value> = st
        .machines
        .values()
        .filter(|m| m.status == S::ALLOCATED && m.owner.as_deref() == Some(API_USER))
        .filter(|m| ids.is_empty() || ids.contains(&m.system_id.as_str()))
        .map(|m| render::machine(st, &s.api, m))
        .collect();
    ok(Value::Array(out))
}

pub fn is_registered(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let Some(mac) = r.params.get("mac_address") else {
        return bad_request("No provided mac_address!");
    };
    let Some(mac) = normalize_mac(mac) else {
        return bad_request(&format!("Invalid MAC address(es): {mac}"));
    };
    let found =
        g.st.machines
            .values()
            .any(|m| m.status != S::RETIRED && m.interfaces.iter().any(|i| i.mac_address == mac));
    ok(json!(found))
}

pub fn power_parameters_many(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let ids = r.params.all("id");
    let mut out = serde_json::Map::new();
    for m in g.st.machines.values() {
        if ids.is_empty() || ids.contains(&m.system_id.as_str()) {
            out.insert(m.system_id.clone(), json!(m.power_parameters));
        }
    }
    ok(Value::Object(out))
}

pub fn accept_all(s: &Maas, _r: &Req) -> Response {
    // Machines enlisted by an admin are already accepted; nothing is declared.
    let _ = s;
    ok(json!([]))
}
