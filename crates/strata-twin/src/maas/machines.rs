//! Machines: listing and filters, enlistment, allocation with constraints, the status
//! machine (commission → test → ready → allocate → deploy → release), power, node
//! devices, script results and interfaces.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::http::{self, Params, Req, bad_request, conflict, invalid, invalid1, not_found, ok};
use super::model::{status as S, *};
use super::{Maas, render, seed};
use crate::MutateRequest;
use crate::faults::Faults;

/// How long each asynchronous phase takes (x10 under the `slow_task` fault).
fn phase_ms(p: Phase, slow: bool) -> u64 {
    let base = match p {
        Phase::Commissioning => 300,
        Phase::Testing => 200,
        Phase::Deploying => 500,
        Phase::Releasing => 200,
        Phase::DiskErasing => 300,
    };
    if slow { base * 10 } else { base }
}

fn set_status(m: &mut Machine, st: u8, message: &str) {
    if m.status != st {
        m.previous_status = m.status;
    }
    m.status = st;
    m.status_message = message.to_string();
    m.updated_ms = now_ms();
    if st == S::NEW || st == S::READY {
        m.owner = None;
    }
}

fn start(m: &mut Machine, phase: Phase, from_ms: u64, slow: bool) {
    m.pending = Some(Pending {
        phase,
        due_ms: from_ms + phase_ms(phase, slow),
        slow,
    });
}

/// A per-object fault on this machine (by system id, serial or hostname) among `names`,
/// consuming one use of it.
fn take_fault(faults: &Faults, dc: &str, m: &Machine, names: &[&str]) -> Option<String> {
    for id in m.fault_ids() {
        if id.is_empty() {
            continue;
        }
        if let Some(f) = faults.peek_object(dc, "maas", id)
            && names.contains(&f.as_str())
        {
            faults.take_object(dc, "maas", id);
            return Some(f);
        }
    }
    None
}

fn finish_set(set: &mut Option<ScriptSet>, now: u64, status: u8, failing: Option<&str>) {
    if let Some(s) = set {
        s.ended_ms = Some(now);
        for r in &mut s.results {
            if r.status == script_status::PENDING || r.status == script_status::RUNNING {
                let failed = failing.is_some_and(|f| f == r.name || f == "*");
                r.status = if failed {
                    script_status::FAILED
                } else {
                    status
                };
                r.exit_status = Some(if failed {
                    1
                } else if status == script_status::PASSED {
                    0
                } else {
                    -1
                });
                r.started_ms.get_or_insert(now);
                r.ended_ms = Some(now);
            }
        }
    }
}

fn run_set(set: &mut Option<ScriptSet>, now: u64) {
    if let Some(s) = set {
        s.started_ms = Some(now);
        for r in &mut s.results {
            r.status = script_status::RUNNING;
            r.started_ms = Some(now);
        }
    }
}

/// What commissioning reports, given the faults set on the machine.
fn commissioned_hardware(actual: &Hardware, faults: &[String]) -> Hardware {
    let mut hw = actual.clone();
    for f in faults {
        match f.as_str() {
            "gpu_degraded" => {
                if let Some(g) = hw.gpus.first_mut() {
                    g.link_width = if g.max_width > 8 {
                        8
                    } else {
                        (g.max_width / 2).max(1)
                    };
                    g.link_gen = g.max_gen.saturating_sub(1).max(1);
                }
            }
            "memory_missing" => hw.memory_mib = hw.memory_mib * 3 / 4,
            _ => {}
        }
    }
    hw
}

/// Complete the machine's pending phases that are due at `now`.
pub fn advance(m: &mut Machine, faults: &Faults, dc: &str, now: u64) {
    while let Some(p) = m.pending.clone() {
        if p.due_ms > now {
            return;
        }
        let at = p.due_ms;
        m.pending = None;
        match p.phase {
            Phase::Commissioning => {
                if take_fault(faults, dc, m, &["commission_fails"]).is_some() {
                    finish_set(
                        &mut m.commissioning,
                        at,
                        script_status::PASSED,
                        Some("50-maas-01-commissioning"),
                    );
                    finish_set(&mut m.testing, at, script_status::ABORTED, None);
                    m.power_on = false;
                    set_status(m, S::FAILED_COMMISSIONING, "Failed commissioning");
                    continue;
                }
                // One object carries one fault at a time; it fires once per commissioning.
                let hw_faults: Vec<String> =
                    take_fault(faults, dc, m, &["gpu_degraded", "memory_missing"])
                        .into_iter()
                        .collect();
                m.reported = Some(commissioned_hardware(&m.actual, &hw_faults));
                finish_set(&mut m.commissioning, at, script_status::PASSED, None);
                let has_tests = m.testing.as_ref().is_some_and(|t| !t.results.is_empty());
                if has_tests {
                    run_set(&mut m.testing, at);
                    let prev = m.previous_status;
                    set_status(m, S::TESTING, "Testing");
                    m.previous_status = prev;
                    start(m, Phase::Testing, at, p.slow);
                } else {
                    m.power_on = false;
                    set_status(m, S::READY, "Ready");
                }
            }
            Phase::Testing => {
                if take_fault(faults, dc, m, &["testing_fails"]).is_some() {
                    finish_set(&mut m.testing, at, script_status::PASSED, Some("*"));
                    m.power_on = false;
                    set_status(m, S::FAILED_TESTING, "Failed testing");
                    continue;
                }
                finish_set(&mut m.testing, at, script_status::PASSED, None);
                // Testing returns a machine to Ready from commissioning and failure
                // states, otherwise to where it was (MAAS's testing reset rules).
                let back = match m.previous_status {
                    S::ALLOCATED | S::DEPLOYED | S::RESERVED => m.previous_status,
                    _ => S::READY,
                };
                if back != S::DEPLOYED {
                    m.power_on = false;
                }
                set_status(m, back, status_message_for(back));
            }
            Phase::Deploying => {
                if take_fault(faults, dc, m, &["deploy_fails"]).is_some() {
                    finish_set(&mut m.installation, at, script_status::PASSED, Some("*"));
                    set_status(
                        m,
                        S::FAILED_DEPLOYMENT,
                        "Installation failed (refer to the installation log for more information).",
                    );
                    continue;
                }
                finish_set(&mut m.installation, at, script_status::PASSED, None);
                m.netboot = false;
                m.power_on = true;
                set_status(m, S::DEPLOYED, "Deployed");
            }
            Phase::Releasing | Phase::DiskErasing => {
                let (fault, failed) = if p.phase == Phase::Releasing {
                    ("release_fails", S::FAILED_RELEASING)
                } else {
                    ("erase_fails", S::FAILED_DISK_ERASING)
                };
                if take_fault(faults, dc, m, &[fault]).is_some() {
                    set_status(
                        m,
                        failed,
                        if failed == S::FAILED_RELEASING {
                            "Releasing failed"
                        } else {
                            "Failed to erase disks"
                        },
                    );
                    continue;
                }
                released(m);
            }
        }
    }
}

fn status_message_for(s: u8) -> &'static str {
    match s {
        S::READY => "Ready",
        S::DEPLOYED => "Deployed",
        S::ALLOCATED => "Allocated",
        _ => S::name(s),
    }
}

fn released(m: &mut Machine) {
    m.power_on = false;
    m.osystem.clear();
    m.distro_series.clear();
    m.hwe_kernel = None;
    m.agent_name.clear();
    m.owner_data.clear();
    m.user_data = None;
    m.netboot = true;
    m.installation = None;
    for i in &mut m.interfaces {
        for l in &mut i.links {
            if l.mode == "auto" {
                l.ip_address = None;
            }
        }
    }
    set_status(m, S::READY, "Released");
}

// ---------------------------------------------------------------------------------
// Helpers

fn machine_or_404<'a>(st: &'a State, sid: &str) -> Result<&'a Machine, Response> {
    st.machine(sid).ok_or_else(|| not_found("Machine"))
}

fn render_one(s: &Maas, st: &State, sid: &str) -> Response {
    match st.machine(sid) {
        Some(m) => ok(render::machine(st, &s.api, m)),
        None => not_found("Machine"),
    }
}

fn parse_num(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Memory in MiB from `4096`, `4G`, `512M`, ...
fn parse_memory(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.chars().last()? {
        'K' | 'k' => (&v[..v.len() - 1], 1.0 / 1024.0),
        'M' | 'm' => (&v[..v.len() - 1], 1.0),
        'G' | 'g' => (&v[..v.len() - 1], 1024.0),
        'T' | 't' => (&v[..v.len() - 1], 1024.0 * 1024.0),
        _ => (v, 1.0),
    };
    parse_num(num).map(|n| (n * mult) as u64)
}

fn fix_architecture(a: &str) -> String {
    if a.contains('/') {
        a.to_string()
    } else {
        format!("{a}/generic")
    }
}

fn check_architecture(a: &str) -> Result<String, Response> {
    let fixed = fix_architecture(a);
    if ARCHITECTURES.contains(&fixed.as_str()) {
        Ok(fixed)
    } else {
        Err(invalid1(
            "architecture",
            format!(
                "'{a}' is not a valid architecture.  It should be one of: {}.",
                ARCHITECTURES
                    .iter()
                    .map(|x| format!("'{x}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !h.starts_with('-')
        && !h.ends_with('-')
}

/// Power parameters from `power_parameters_<name>` fields and/or a JSON
/// `power_parameters` object (python-libmaas sends the latter on create).
fn power_params(p: &Params) -> Result<Vec<(String, String)>, Response> {
    let mut out: Vec<(String, String)> = p
        .keys_with_prefix("power_parameters_")
        .into_iter()
        .filter(|(k, _)| k != "skip_check")
        .collect();
    if let Some(j) = p.get_nonempty("power_parameters") {
        match serde_json::from_str::<Value>(j) {
            Ok(Value::Object(o)) => {
                for (k, v) in o {
                    let s = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.push((k, s));
                }
            }
            _ => return Err(invalid1("power_parameters", "Enter a valid JSON object.")),
        }
    }
    Ok(out)
}

fn check_power_type(t: &str) -> Result<(), Response> {
    if t.is_empty() || POWER_TYPES.contains(&t) {
        Ok(())
    } else {
        Err(invalid1(
            "power_type",
            format!("Select a valid choice. {t} is not one of the available choices."),
        ))
    }
}

fn unknown_power_type() -> Response {
    http::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unconfigured power type. Please configure the power type and try again.",
    )
}

fn power_fault(s: &Maas, m: &Machine) -> Option<Response> {
    s.fault(&m.fault_ids(), &["power_fails"]).map(|_| {
        http::text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "Power action failed for {}: the BMC did not answer (injected by the twin).",
                m.hostname
            ),
        )
    })
}

// ---------------------------------------------------------------------------------
// Listing and filters

fn matches_devices(m: &Machine, spec: &str) -> bool {
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

fn machine_fabrics(st: &State, m: &Machine) -> Vec<(u64, String)> {
    m.interfaces
        .iter()
        .filter_map(|i| i.vlan_id.and_then(|v| st.vlans.get(&v)))
        .filter_map(|v| st.fabrics.get(&v.fabric_id).map(|f| (f.id, f.name.clone())))
        .collect()
}

fn machine_subnets<'a>(st: &'a State, m: &'a Machine) -> Vec<&'a Subnet> {
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

fn subnet_spec_matches(st: &State, s: &Subnet, spec: &str) -> bool {
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
struct Filter {
    hostnames: Vec<String>,
    not_hostnames: Vec<String>,
    ids: Vec<String>,
    not_ids: Vec<String>,
    macs: Vec<String>,
    domains: Vec<String>,
    zones: Vec<String>,
    not_zones: Vec<String>,
    pools: Vec<String>,
    not_pools: Vec<String>,
    statuses: Vec<u8>,
    not_statuses: Vec<u8>,
    simple: Vec<String>,
    tags: Vec<String>,
    not_tags: Vec<String>,
    archs: Vec<String>,
    not_archs: Vec<String>,
    cpu_count: Option<f64>,
    mem: Option<f64>,
    owners: Vec<String>,
    power_states: Vec<String>,
    agent_name: Option<String>,
    devices: Vec<String>,
    fabrics: Vec<String>,
    not_fabrics: Vec<String>,
    subnets: Vec<String>,
    not_subnets: Vec<String>,
    storage: Vec<u64>,
}

fn parse_filter(st: &State, p: &Params, allocate: bool) -> Result<Filter, Response> {
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

fn arch_matches(machine_arch: &str, wanted: &str) -> bool {
    machine_arch == wanted
        || machine_arch.split('/').next() == Some(wanted)
        || fix_architecture(wanted) == machine_arch
}

fn filter_matches(st: &State, f: &Filter, m: &Machine) -> bool {
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

// ---------------------------------------------------------------------------------
// Create, read, update, delete

pub fn create(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let p = &r.params;
    let mut errors: Vec<(&str, String)> = Vec::new();
    let raw_macs = p.all("mac_addresses");
    let mut macs = Vec::new();
    if raw_macs.is_empty() {
        errors.push(("mac_addresses", "This field is required.".into()));
    }
    for raw in raw_macs {
        match normalize_mac(raw) {
            Some(m) => macs.push(m),
            None => errors.push((
                "mac_addresses",
                format!("'{raw}' is not a valid MAC address."),
            )),
        }
    }
    let in_use: Vec<String> = macs
        .iter()
        .filter_map(|m| {
            g.st.mac_owner(m)
                .map(|h| format!("MAC address {m} already in use on {h}."))
        })
        .collect();
    match in_use.len() {
        0 => {}
        1 if macs.len() == 1 => errors.push(("mac_addresses", in_use[0].clone())),
        _ => errors.push((
            "mac_addresses",
            format!(
                "One or more MAC addresses is invalid. ({})",
                in_use.join(" ")
            ),
        )),
    }
    let arch = match p.get_nonempty("architecture") {
        None => "amd64/generic".to_string(),
        Some(a) => match check_architecture(a) {
            Ok(a) => a,
            Err(e) => return e,
        },
    };
    if let Some(k) = p.get_nonempty("min_hwe_kernel")
        && !(k.starts_with("hwe-") || k.starts_with("ga-"))
    {
        errors.push((
            "min_hwe_kernel",
            "min_hwe_kernel must start with \"hwe-\" or \"ga-\"".into(),
        ));
    }
    let hostname = p
        .get_nonempty("hostname")
        .map(|h| h.split('.').next().unwrap_or(h).to_string());
    if let Some(h) = &hostname {
        if !valid_hostname(h) {
            errors.push(("hostname", format!("Invalid hostname: {h}")));
        } else if g.st.hostname_taken(h, None) {
            errors.push((
                "hostname",
                format!("Node with hostname \"{h}\" already exists"),
            ));
        }
    }
    let domain_id = match p.get_nonempty("domain") {
        None => g.st.default_domain_id(),
        Some(d) => match g.st.domain_by_key(d) {
            Some(d) => d.id,
            None => {
                errors.push((
                    "domain",
                    "Select a valid choice. That choice is not one of the available choices."
                        .into(),
                ));
                0
            }
        },
    };
    let power_type = p.get("power_type").unwrap_or("").to_string();
    if let Err(e) = check_power_type(&power_type) {
        return e;
    }
    let pparams = match power_params(p) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let commission = match p.bool("commission") {
        Ok(v) => v.unwrap_or(true),
        Err(v) => {
            errors.push(("commission", format!("'{v}' is not a valid boolean")));
            true
        }
    };
    let deployed = p.bool("deployed").ok().flatten().unwrap_or(false);
    if !errors.is_empty() {
        return invalid(&errors);
    }
    let inner = &mut *g;
    let st = &mut inner.st;
    let now = now_ms();
    let id = st.next_id("node", 1);
    let system_id = inner.ids.system_id(st);
    let hostname = hostname.unwrap_or_else(|| inner.ids.hostname(st));
    // A machine whose MAC belongs to a seed machine is that hardware.
    let seed_hw = macs
        .iter()
        .find_map(|mac| s.seed_by_mac.get(mac))
        .and_then(|i| s.ctx.seed.machines.get(*i));
    let actual = match seed_hw {
        Some(sm) => seed::hardware_from_seed(sm),
        None => seed::generic_hardware(&format!("TWIN-{}", system_id.to_ascii_uppercase())),
    };
    let vlan = st.default_vlan_id();
    let interfaces: Vec<Interface> = macs
        .iter()
        .enumerate()
        .map(|(i, mac)| Interface {
            id: st.next_id("interface", 1),
            name: format!("eth{i}"),
            mac_address: mac.clone(),
            vlan_id: if i == 0 { vlan } else { None },
            enabled: true,
            vendor: None,
            product: None,
            pci_address: None,
            link_speed: 0,
            interface_speed: 0,
            mtu: None,
            tags: vec![],
            links: vec![],
        })
        .collect();
    let mut m = Machine {
        id,
        system_id: system_id.clone(),
        hostname,
        description: p.get("description").unwrap_or("").to_string(),
        domain_id,
        architecture: arch,
        min_hwe_kernel: p.get("min_hwe_kernel").unwrap_or("").to_string(),
        status: S::NEW,
        previous_status: S::NEW,
        status_message: "New".into(),
        zone_id: st.default_zone_id(),
        pool_id: st.default_pool_id(),
        power_type: power_type.clone(),
        power_parameters: pparams.into_iter().collect(),
        netboot: true,
        interfaces,
        hardware_uuid: seed::uuid_from(&actual.serial),
        actual,
        created_ms: now,
        updated_ms: now,
        ..Machine::default()
    };
    if deployed {
        m.reported = Some(m.actual.clone());
        m.owner = Some(API_USER.into());
        m.osystem = "ubuntu".into();
        m.distro_series = default_series(st);
        m.netboot = false;
        m.power_on = true;
        set_status(&mut m, S::DEPLOYED, "Deployed");
    } else if commission && !power_type.is_empty() {
        begin_commissioning(st, &mut m, now, s.slow(), false);
    }
    st.insert_machine(m);
    render_one(s, st, &system_id)
}

pub fn read(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    render_one(s, &g.st, r.path("system_id"))
}

pub fn update(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    if st.machine(&sid).is_none() {
        return not_found("Machine");
    }
    let p = &r.params;
    let mut errors: Vec<(&str, String)> = Vec::new();
    let hostname = p
        .get_nonempty("hostname")
        .map(|h| h.split('.').next().unwrap_or(h).to_string());
    if let Some(h) = &hostname {
        if !valid_hostname(h) {
            errors.push(("hostname", format!("Invalid hostname: {h}")));
        } else if st.hostname_taken(h, Some(&sid)) {
            errors.push((
                "hostname",
                format!("Node with hostname \"{h}\" already exists"),
            ));
        }
    }
    let arch = match p.get_nonempty("architecture") {
        None => None,
        Some(a) => match check_architecture(a) {
            Ok(a) => Some(a),
            Err(e) => return e,
        },
    };
    let zone = match p.get_nonempty("zone") {
        None => None,
        Some(z) => match st.zone_by_name(z) {
            Some(z) => Some(z.id),
            None => {
                errors.push((
                    "zone",
                    "Select a valid choice. That choice is not one of the available choices."
                        .into(),
                ));
                None
            }
        },
    };
    let pool = match p.get_nonempty("pool") {
        None => None,
        Some(z) => match st.pool_by_name(z) {
            Some(z) => Some(z.id),
            None => {
                errors.push((
                    "pool",
                    "Select a valid choice. That choice is not one of the available choices."
                        .into(),
                ));
                None
            }
        },
    };
    let domain = match p.get_nonempty("domain") {
        None => None,
        Some(d) => match st.domain_by_key(d) {
            Some(d) => Some(d.id),
            None => {
                errors.push((
                    "domain",
                    "Select a valid choice. That choice is not one of the available choices."
                        .into(),
                ));
                None
            }
        },
    };
    if let Some(t) = p.get("power_type")
        && let Err(e) = check_power_type(t)
    {
        return e;
    }
    let pparams = match power_params(p) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let memory = match p.get_nonempty("memory") {
        None => None,
        Some(v) => match parse_memory(v) {
            Some(x) => Some(x),
            None => {
                errors.push(("memory", "Invalid memory size.".into()));
                None
            }
        },
    };
    let cpu_count = match p.get_nonempty("cpu_count") {
        None => None,
        Some(v) => match v.trim().parse::<u32>() {
            Ok(x) => Some(x),
            Err(_) => {
                errors.push(("cpu_count", "Enter a whole number.".into()));
                None
            }
        },
    };
    let swap = match p.get_nonempty("swap_size") {
        None => None,
        Some(v) => match parse_memory(v) {
            Some(x) => Some(if v.trim().ends_with(|c: char| c.is_ascii_digit()) {
                x
            } else {
                x * 1024 * 1024
            }),
            None => {
                errors.push(("swap_size", "Invalid size for swap: {v}".replace("{v}", v)));
                None
            }
        },
    };
    if !errors.is_empty() {
        return invalid(&errors);
    }
    if let Some(h) = &hostname {
        st.rename_machine(&sid, h);
    }
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    if let Some(d) = p.get("description") {
        m.description = d.to_string();
    }
    if let Some(a) = arch {
        m.architecture = a;
    }
    if let Some(k) = p.get("min_hwe_kernel") {
        m.min_hwe_kernel = k.to_string();
    }
    if let Some(z) = zone {
        m.zone_id = z;
    }
    if let Some(x) = pool {
        m.pool_id = x;
    }
    if let Some(d) = domain {
        m.domain_id = d;
    }
    if let Some(t) = p.get("power_type") {
        if t != m.power_type {
            m.power_parameters.clear();
        }
        m.power_type = t.to_string();
    }
    for (k, v) in pparams {
        m.power_parameters.insert(k, v);
    }
    if let Some(x) = memory {
        m.reported
            .get_or_insert_with(|| m.actual.clone())
            .memory_mib = x;
    }
    if let Some(x) = cpu_count {
        m.reported.get_or_insert_with(|| m.actual.clone()).cpu_count = x;
    }
    if swap.is_some() {
        m.swap_size = swap;
    }
    m.updated_ms = now_ms();
    render_one(s, st, &sid)
}

pub fn delete(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let sid = r.path("system_id");
    match g.st.remove_machine(sid) {
        Some(_) => http::deleted(),
        None => not_found("Machine"),
    }
}

// ---------------------------------------------------------------------------------
// Operations

fn script(id: u64, name: &str, hardware_type: u8) -> ScriptResult {
    ScriptResult {
        id,
        name: name.into(),
        hardware_type,
        ..ScriptResult::default()
    }
}

/// Commissioning scripts MAAS 3.x runs (built-ins), and the default tests.
const COMMISSIONING_SCRIPTS: &[(&str, u8)] = &[
    ("maas-support-info", 0),
    ("maas-lshw", 0),
    ("maas-list-modaliases", 0),
    ("20-maas-01-install-lldpd", 0),
    ("20-maas-03-machine-resources", 0),
    ("maas-get-fruid-api-data", 0),
    ("maas-serial-ports", 0),
    ("30-maas-01-bmc-config", 0),
    ("40-maas-01-network-interfaces", 4),
    ("50-maas-01-commissioning", 0),
    ("maas-capture-lldpd", 4),
    ("maas-kernel-cmdline", 0),
];
const TESTING_SCRIPTS: &[(&str, u8)] = &[("smartctl-validate", 3)];

fn begin_commissioning(st: &mut State, m: &mut Machine, now: u64, slow: bool, skip_tests: bool) {
    let cset = st.next_id("scriptset", 1);
    let results = COMMISSIONING_SCRIPTS
        .iter()
        .map(|(n, hw)| script(st.next_id("scriptresult", 1), n, *hw))
        .collect();
    m.commissioning = Some(ScriptSet {
        id: cset,
        result_type: 0,
        started_ms: Some(now),
        ended_ms: None,
        results,
    });
    let tset = st.next_id("scriptset", 1);
    let results = if skip_tests {
        vec![]
    } else {
        TESTING_SCRIPTS
            .iter()
            .map(|(n, hw)| script(st.next_id("scriptresult", 1), n, *hw))
            .collect()
    };
    m.testing = Some(ScriptSet {
        id: tset,
        result_type: 2,
        started_ms: None,
        ended_ms: None,
        results,
    });
    run_set(&mut m.commissioning, now);
    m.owner = Some(API_USER.into());
    m.power_on = true;
    set_status(m, S::COMMISSIONING, "Commissioning");
    m.owner = Some(API_USER.into());
    start(m, Phase::Commissioning, now, slow);
}

fn default_series(st: &State) -> String {
    st.config
        .get("default_distro_series")
        .and_then(|v| v.as_str())
        .unwrap_or("noble")
        .to_string()
}

pub fn commission(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let m = match machine_or_404(st, &sid) {
        Ok(m) => m.clone(),
        Err(e) => return e,
    };
    for key in [
        "enable_ssh",
        "skip_bmc_config",
        "skip_networking",
        "skip_storage",
    ] {
        if let Err(v) = r.params.bool(key) {
            return invalid1(key, format!("'{v}' value must be either True or False."));
        }
    }
    if !S::COMMISSIONABLE.contains(&m.status) {
        return conflict(&format!(
            "Invalid transition: {} -> Commissioning.",
            S::name(m.status)
        ));
    }
    if m.power_type.is_empty() {
        return unknown_power_type();
    }
    if let Some(e) = power_fault(s, &m) {
        return e;
    }
    let skip_tests = r
        .params
        .get("testing_scripts")
        .is_some_and(|t| t.split(',').any(|x| x.trim() == "none"));
    let mut m = m;
    let slow = s.slow();
    begin_commissioning(st, &mut m, now_ms(), slow, skip_tests);
    if let Some(slot) = st.machine_mut(&sid) {
        *slot = m;
    }
    render_one(s, st, &sid)
}

pub fn test(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine(&sid) else {
        return not_found("Machine");
    };
    let allowed = [
        S::NEW,
        S::READY,
        S::ALLOCATED,
        S::DEPLOYED,
        S::BROKEN,
        S::FAILED_COMMISSIONING,
        S::FAILED_DEPLOYMENT,
        S::FAILED_TESTING,
        S::FAILED_RELEASING,
        S::FAILED_DISK_ERASING,
        S::MISSING,
        S::RETIRED,
        S::RESERVED,
    ];
    if !allowed.contains(&m.status) {
        return conflict(&format!(
            "Invalid transition: {} -> Testing.",
            S::name(m.status)
        ));
    }
    if m.power_type.is_empty() {
        return unknown_power_type();
    }
    let tset = st.next_id("scriptset", 1);
    let results: Vec<ScriptResult> = TESTING_SCRIPTS
        .iter()
        .map(|(n, hw)| script(st.next_id("scriptresult", 1), n, *hw))
        .collect();
    let now = now_ms();
    let slow = s.slow();
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    m.testing = Some(ScriptSet {
        id: tset,
        result_type: 2,
        started_ms: Some(now),
        ended_ms: None,
        results,
    });
    run_set(&mut m.testing, now);
    m.power_on = true;
    set_status(m, S::TESTING, "Testing");
    start(m, Phase::Testing, now, slow);
    render_one(s, st, &sid)
}

fn check_series(st: &State, series: &str) -> Result<String, Response> {
    let s = series.strip_prefix("ubuntu/").unwrap_or(series);
    for (name, version) in RELEASES {
        if s == *name || s == *version {
            let synced = st
                .boot_resources
                .iter()
                .any(|b| b.name == format!("ubuntu/{name}"));
            if synced {
                return Ok(name.to_string());
            }
        }
    }
    let mut choices = vec!["''".to_string()];
    choices.extend(RELEASES.iter().map(|(n, _)| format!("'ubuntu/{n}'")));
    Err(invalid1(
        "distro_series",
        format!(
            "'{series}' is not a valid distro_series.  It should be one of: {}.",
            choices.join(", ")
        ),
    ))
}

fn check_kernel(series: &str, k: &str) -> Result<(), Response> {
    let version = RELEASES
        .iter()
        .find(|(n, _)| *n == series)
        .map(|(_, v)| *v)
        .unwrap_or("24.04");
    let ok_k = [
        format!("ga-{version}"),
        format!("hwe-{version}"),
        format!("hwe-{version}-edge"),
        "generic".into(),
    ];
    if k.is_empty() || ok_k.iter().any(|x| x == k) {
        Ok(())
    } else {
        Err(invalid1(
            "hwe_kernel",
            format!("{k} is not available for ubuntu/{series} on amd64/generic."),
        ))
    }
}

fn begin_deploy(st: &mut State, m: &mut Machine, now: u64, slow: bool) {
    let set = st.next_id("scriptset", 1);
    let results = vec![script(
        st.next_id("scriptresult", 1),
        "/var/log/curtin.log",
        0,
    )];
    m.installation = Some(ScriptSet {
        id: set,
        result_type: 1,
        started_ms: Some(now),
        ended_ms: None,
        results,
    });
    run_set(&mut m.installation, now);
    m.power_on = true;
    set_status(m, S::DEPLOYING, "Deploying");
    start(m, Phase::Deploying, now, slow);
}

fn acquire(m: &mut Machine, agent_name: &str) {
    m.owner = Some(API_USER.into());
    m.agent_name = agent_name.to_string();
    set_status(m, S::ALLOCATED, "Allocated");
}

pub fn deploy(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(cur) = st.machine(&sid).cloned() else {
        return not_found("Machine");
    };
    let p = &r.params;
    for key in [
        "bridge_all",
        "bridge_stp",
        "install_kvm",
        "install_rackd",
        "ephemeral_deploy",
        "enable_hw_sync",
        "register_vmhost",
    ] {
        if let Err(v) = p.bool(key) {
            return invalid1(key, format!("'{v}' value must be either True or False."));
        }
    }
    let mut m = cur;
    if m.status == S::READY {
        if m.owner.as_deref().is_some_and(|o| o != API_USER) {
            return conflict("Can't allocate a machine belonging to another user.");
        }
        acquire(&mut m, p.get("agent_name").unwrap_or(""));
    }
    if m.status != S::ALLOCATED {
        return conflict(&format!(
            "Can't deploy a machine that is in the '{}' state",
            S::name(m.status)
        ));
    }
    let series = match p.get_nonempty("distro_series") {
        Some(sr) => match check_series(st, sr) {
            Ok(x) => x,
            Err(e) => return e,
        },
        None => default_series(st),
    };
    let kernel = p.get("hwe_kernel").unwrap_or("").to_string();
    if let Err(e) = check_kernel(&series, &kernel) {
        return e;
    }
    if m.power_type.is_empty() {
        return unknown_power_type();
    }
    if let Some(e) = power_fault(s, &m) {
        return e;
    }
    m.osystem = "ubuntu".into();
    m.distro_series = series;
    m.hwe_kernel = Some(if kernel.is_empty() {
        "ga-".to_string()
            + RELEASES
                .iter()
                .find(|(n, _)| *n == m.distro_series)
                .map(|(_, v)| *v)
                .unwrap_or("24.04")
    } else {
        kernel
    });
    m.user_data = p.get("user_data").map(str::to_string);
    let slow = s.slow();
    begin_deploy(st, &mut m, now_ms(), slow);
    if let Some(slot) = st.machine_mut(&sid) {
        *slot = m;
    }
    render_one(s, st, &sid)
}

pub fn release(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let slow = s.slow();
    let st = &mut g.st;
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    let p = &r.params;
    for key in ["erase", "secure_erase", "quick_erase", "force"] {
        if let Err(v) = p.bool(key) {
            return invalid1(key, format!("'{v}' value must be either True or False."));
        }
    }
    if m.status == S::READY || m.status == S::RELEASING {
        // Already released or on the way: the postcondition holds.
    } else if S::RELEASABLE.contains(&m.status) {
        let erase = p.bool("erase").ok().flatten().unwrap_or(false)
            || p.bool("secure_erase").ok().flatten().unwrap_or(false)
            || p.bool("quick_erase").ok().flatten().unwrap_or(false);
        let now = now_ms();
        if erase {
            set_status(m, S::DISK_ERASING, "Erasing disks");
            start(m, Phase::DiskErasing, now, slow);
        } else {
            set_status(m, S::RELEASING, "Releasing");
            start(m, Phase::Releasing, now, slow);
        }
    } else {
        return conflict(&format!(
            "Machine cannot be released in its current state ('{}').",
            S::name(m.status)
        ));
    }
    render_one(s, st, &sid)
}

/// `POST /machines/?op=release` with repeated `machines`: all or nothing (MAAS rolls the
/// transaction back when one machine can't be released).
pub fn release_many(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let slow = s.slow();
    let st = &mut g.st;
    let mut ids: Vec<String> = r
        .params
        .all("machines")
        .into_iter()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    let unknown: Vec<&str> = ids
        .iter()
        .filter(|i| st.machine(i).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return bad_request(&format!("Unknown machine(s): {}.", unknown.join(", ")));
    }
    let failed: Vec<String> = ids
        .iter()
        .filter_map(|i| st.machine(i))
        .filter(|m| m.status != S::READY && !S::RELEASABLE.contains(&m.status))
        .map(|m| format!("{} ('{}')", m.system_id, S::name(m.status)))
        .collect();
    if !failed.is_empty() {
        return conflict(&format!(
            "Machine(s) cannot be released in their current state: {}.",
            failed.join(", ")
        ));
    }
    let now = now_ms();
    let mut released = Vec::new();
    for i in &ids {
        if let Some(m) = st.machine_mut(i)
            && S::RELEASABLE.contains(&m.status)
        {
            set_status(m, S::RELEASING, "Releasing");
            start(m, Phase::Releasing, now, slow);
            released.push(m.system_id.clone());
        }
    }
    ok(json!(released))
}

/// `POST /machines/?op=set_zone` with `zone` and repeated `nodes`.
pub fn set_zone(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let st = &mut g.st;
    let Some(zone) = r.params.get_nonempty("zone") else {
        return invalid1("zone", "This field is required.");
    };
    let Some(zone_id) = st.zone_by_name(zone).map(|z| z.id) else {
        return invalid1(
            "zone",
            "Select a valid choice. That choice is not one of the available choices.",
        );
    };
    let ids: Vec<String> = r
        .params
        .all("nodes")
        .into_iter()
        .map(str::to_string)
        .collect();
    if let Some(bad) = ids.iter().find(|i| st.machine(i).is_none()) {
        return invalid1(
            "system_id",
            format!("Select a valid choice. {bad} is not one of the available choices."),
        );
    }
    for i in &ids {
        if let Some(m) = st.machine_mut(i) {
            m.zone_id = zone_id;
        }
    }
    ok(Value::Null)
}

pub fn power_on(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(cur) = st.machine(&sid).cloned() else {
        return not_found("Machine");
    };
    if cur.owner.is_none() {
        return conflict("Can't start node: it hasn't been allocated.");
    }
    if cur.power_type.is_empty() {
        return unknown_power_type();
    }
    if let Some(e) = power_fault(s, &cur) {
        return e;
    }
    let mut m = cur;
    if let Some(ud) = r.params.get("user_data") {
        m.user_data = Some(ud.to_string());
    }
    if m.status == S::ALLOCATED {
        // Starting an allocated machine deploys it (MAAS's `Node.start`).
        if m.osystem.is_empty() {
            m.osystem = "ubuntu".into();
            m.distro_series = default_series(st);
        }
        let slow = s.slow();
        begin_deploy(st, &mut m, now_ms(), slow);
    } else {
        m.power_on = true;
    }
    if let Some(slot) = st.machine_mut(&sid) {
        *slot = m;
    }
    render_one(s, st, &sid)
}

pub fn power_off(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(cur) = st.machine(&sid).cloned() else {
        return not_found("Machine");
    };
    if let Some(sm) = r.params.get("stop_mode")
        && sm != "hard"
        && sm != "soft"
    {
        return invalid1(
            "stop_mode",
            format!("Select a valid choice. {sm} is not one of the available choices."),
        );
    }
    if cur.power_type.is_empty() {
        return unknown_power_type();
    }
    if let Some(e) = power_fault(s, &cur) {
        return e;
    }
    if let Some(m) = st.machine_mut(&sid) {
        m.power_on = false;
        m.updated_ms = now_ms();
    }
    render_one(s, st, &sid)
}

pub fn query_power_state(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let Some(m) = g.st.machine(r.path("system_id")) else {
        return not_found("Machine");
    };
    if m.power_type.is_empty() {
        return unknown_power_type();
    }
    if let Some(e) = power_fault(s, m) {
        return e;
    }
    ok(json!({"state": m.power_state()}))
}

pub fn mark_broken(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    // MAAS requires the caller to own the machine (admins included).
    if m.owner.as_deref() != Some(API_USER) {
        return http::text(StatusCode::FORBIDDEN, "");
    }
    let comment = r
        .params
        .get_nonempty("comment")
        .or(r.params.get_nonempty("error_description"))
        .unwrap_or("")
        .to_string();
    m.pending = None;
    if S::RELEASABLE.contains(&m.status) {
        m.power_on = false;
    }
    set_status(m, S::BROKEN, "Marking node broken");
    m.error_description = comment;
    render_one(s, st, &sid)
}

pub fn mark_fixed(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    if m.status != S::BROKEN {
        return conflict("Can't mark a non-broken node as 'Ready'.");
    }
    let target = if m.previous_status == S::DEPLOYED {
        S::DEPLOYED
    } else {
        S::READY
    };
    m.error_description.clear();
    m.osystem.clear();
    m.distro_series.clear();
    m.hwe_kernel = None;
    m.installation = None;
    set_status(m, target, "Marking node fixed");
    render_one(s, st, &sid)
}

pub fn abort(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    let now = now_ms();
    match m.status {
        S::COMMISSIONING => {
            finish_set(&mut m.commissioning, now, script_status::ABORTED, None);
            finish_set(&mut m.testing, now, script_status::ABORTED, None);
            let back = m.previous_status;
            m.pending = None;
            m.power_on = false;
            m.owner = None;
            set_status(m, back, "Aborted commissioning");
        }
        S::TESTING => {
            finish_set(&mut m.testing, now, script_status::ABORTED, None);
            let back = m.previous_status;
            m.pending = None;
            m.power_on = false;
            set_status(m, back, "Aborted testing");
        }
        S::DEPLOYING => {
            finish_set(&mut m.installation, now, script_status::ABORTED, None);
            m.pending = None;
            m.power_on = false;
            set_status(m, S::ALLOCATED, "Aborted deployment");
        }
        S::DISK_ERASING => {
            m.pending = None;
            m.power_on = false;
            set_status(m, S::FAILED_DISK_ERASING, "Aborted disk erasing");
        }
        other => {
            return conflict(&format!(
                "Cannot abort in current state: node {} is in state {}.",
                m.system_id,
                S::name(other)
            ));
        }
    }
    render_one(s, st, &sid)
}

pub fn details(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let Some(m) = st.machine(r.path("system_id")) else {
        return not_found("Machine");
    };
    let lshw = m.reported.as_ref().map(|h| super::bson::lshw_xml(m, h));
    let lldp = m.reported.as_ref().map(|_| super::bson::lldp_xml(m));
    let body = super::bson::encode_details(lshw.as_deref(), lldp.as_deref());
    axum::response::Response::builder()
        .status(StatusCode::OK)
        .header(axum::http::header::CONTENT_TYPE, "application/bson")
        .body(axum::body::Body::from(body))
        .unwrap_or_else(|_| http::text(StatusCode::INTERNAL_SERVER_ERROR, "details"))
}

pub fn power_parameters(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let Some(m) = g.st.machine(r.path("system_id")) else {
        return not_found("Machine");
    };
    ok(json!(m.power_parameters))
}

pub fn set_owner_data(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    for (k, v) in &r.params.0 {
        if v.is_empty() {
            m.owner_data.remove(k);
        } else {
            m.owner_data.insert(k.clone(), v.clone());
        }
    }
    render_one(s, st, &sid)
}

pub fn lock(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    if m.locked {
        return conflict("Machine is already locked");
    }
    if m.status != S::DEPLOYED && m.status != S::DEPLOYING {
        return conflict("Can't lock, machine is not deployed");
    }
    m.locked = true;
    render_one(s, st, &sid)
}

pub fn unlock(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine_mut(&sid) else {
        return not_found("Machine");
    };
    if !m.locked {
        return conflict("Machine is not locked");
    }
    m.locked = false;
    render_one(s, st, &sid)
}

// ---------------------------------------------------------------------------------
// Allocation

fn describe_constraints(p: &Params) -> String {
    let mut keys: Vec<&str> = p.0.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| {
            !matches!(
                *k,
                "agent_name"
                    | "comment"
                    | "bridge_all"
                    | "bridge_stp"
                    | "bridge_fd"
                    | "bridge_type"
                    | "dry_run"
                    | "verbose"
            )
        })
        .map(|k| {
            let vals = p.all(k);
            let v = match k {
                "cpu_count" | "mem" => vals
                    .iter()
                    .map(|v| {
                        parse_num(v)
                            .map(|n| format!("{n:.1}"))
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                _ => vals.join(","),
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn python_repr_constraints(p: &Params) -> String {
    let mut keys: Vec<&str> = Vec::new();
    for (k, _) in &p.0 {
        if !keys.contains(&k.as_str()) {
            keys.push(k);
        }
    }
    let items: Vec<String> = keys
        .iter()
        .map(|k| {
            let vals: Vec<String> = p.all(k).iter().map(|v| format!("'{v}'")).collect();
            format!("('{k}', [{}])", vals.join(", "))
        })
        .collect();
    format!("[{}]", items.join(", "))
}

pub fn allocate(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &mut g.st;
    let p = &r.params;
    for key in ["dry_run", "verbose", "bridge_all", "bridge_stp"] {
        if let Err(v) = p.bool(key) {
            return invalid1(key, format!("'{v}' value must be either True or False."));
        }
    }
    let f = match parse_filter(st, p, true) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let dry_run = p.bool("dry_run").ok().flatten().unwrap_or(false);
    let mut candidates: Vec<&Machine> = st
        .machines
        .values()
        .filter(|m| m.status == S::READY && m.owner.is_none() && !m.locked)
        .filter(|m| filter_matches(st, &f, m))
        .collect();
    // Prefer the smallest machine that fits (MAAS orders candidates by cost).
    candidates.sort_by_key(|m| {
        let h = m.reported.as_ref();
        (
            h.map(|h| h.cpu_count).unwrap_or(0),
            h.map(|h| h.memory_mib).unwrap_or(0),
            h.map(|h| h.gpus.len()).unwrap_or(0),
            m.id,
        )
    });
    let Some(chosen) = candidates.first().map(|m| m.system_id.clone()) else {
        let constraints = describe_constraints(p);
        let msg = if constraints.is_empty() {
            "No machine available.".to_string()
        } else if let Some(sid) = p.get("system_id") {
            format!("No machine with system ID {sid} available.")
        } else {
            format!(
                "No available machine matches constraints: {} (resolved to \"{constraints}\")",
                python_repr_constraints(p)
            )
        };
        return conflict(&msg);
    };
    if !dry_run && let Some(m) = st.machine_mut(&chosen) {
        acquire(m, p.get("agent_name").unwrap_or(""));
    }
    let Some(m) = st.machine(&chosen) else {
        return not_found("Machine");
    };
    let mut v = render::machine(st, &s.api, m);
    if let Some(o) = v.as_object_mut() {
        o.insert("constraints_by_type".into(), json!({}));
    }
    ok(v)
}

// ---------------------------------------------------------------------------------
// Node sub-resources

fn node_or_404(st: &State, sid: &str) -> Result<(), Response> {
    if st.machine(sid).is_some() || st.controller(sid).is_some() {
        Ok(())
    } else {
        Err(not_found("Node"))
    }
}

pub fn devices(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let sid = r.path("system_id");
    if let Err(e) = node_or_404(st, sid) {
        return e;
    }
    let Some(m) = st.machine(sid) else {
        return ok(json!([]));
    };
    let p = &r.params;
    let hw_type = match p.get_nonempty("hardware_type") {
        None => None,
        Some(t) => match t.to_ascii_lowercase().as_str() {
            "node" | "machine" | "controller" | "other" | "generic" | "0" => Some(0),
            "cpu" | "processor" | "1" => Some(1),
            "memory" | "ram" | "2" => Some(2),
            "storage" | "disk" | "ssd" | "3" => Some(3),
            "network" | "net" | "interface" | "4" => Some(4),
            "gpu" | "graphics" | "5" => Some(5),
            _ => return bad_request("Hardware type must be node, cpu, memory, storage, or gpu"),
        },
    };
    let bus = match p.get_nonempty("bus") {
        None => None,
        Some(b) => match b.to_ascii_uppercase().as_str() {
            "PCIE" | "PCI" | "1" => Some(1),
            "USB" | "2" => Some(2),
            _ => return bad_request("Bus must be PCIE or USB."),
        },
    };
    let eq = |v: &Value, key: &str| -> bool {
        match p.get_nonempty(key) {
            None => true,
            Some(want) => v[key]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(want)),
        }
    };
    let out: Vec<Value> = render::node_devices(st, &s.api, m)
        .into_iter()
        .filter(|d| hw_type.is_none_or(|t| d["hardware_type"] == t))
        .filter(|d| bus.is_none_or(|b| d["bus"] == b))
        .filter(|d| {
            [
                "vendor_id",
                "product_id",
                "vendor_name",
                "product_name",
                "commissioning_driver",
            ]
            .iter()
            .all(|k| eq(d, k))
        })
        .collect();
    ok(Value::Array(out))
}

pub fn device(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let sid = r.path("system_id");
    let Some(m) = st.machine(sid) else {
        return not_found("Node");
    };
    let id = r.path("id");
    render::node_devices(st, &s.api, m)
        .into_iter()
        .find(|d| {
            d["id"].as_u64().is_some_and(|n| n.to_string() == id)
                || d["pci_address"].as_str() == Some(id)
        })
        .map(ok)
        .unwrap_or_else(|| not_found("NodeDevice"))
}

fn result_type_of(t: &str) -> Option<u8> {
    match t.to_ascii_lowercase().as_str() {
        "commissioning" | "0" => Some(0),
        "installation" | "installion" | "deployment" | "1" => Some(1),
        "testing" | "test" | "2" => Some(2),
        "release" | "3" => Some(3),
        _ => None,
    }
}

fn script_output(m: &Machine, name: &str) -> String {
    let Some(hw) = m.reported.as_ref() else {
        return String::new();
    };
    match name {
        "maas-lshw" => super::bson::lshw_xml(m, hw),
        "20-maas-03-machine-resources" => serde_json::to_string_pretty(&super::bson::machine_resources(m, hw)).unwrap_or_default(),
        "maas-capture-lldpd" => super::bson::lldp_xml(m),
        "50-maas-01-commissioning" => format!("Commissioning {} finished\n", m.hostname),
        "smartctl-validate" => "SMART support is: Available\nSMART overall-health self-assessment test result: PASSED\n".into(),
        _ => String::new(),
    }
}

fn script_set_json(
    s: &Maas,
    m: &Machine,
    set: &ScriptSet,
    include_output: bool,
    filters: &[String],
) -> Value {
    use base64::Engine;
    let b64 = |x: &str| base64::engine::general_purpose::STANDARD.encode(x.as_bytes());
    let fmt = |t: Option<u64>| t.map(format_time);
    let results: Vec<Value> = set
        .results
        .iter()
        .filter(|res| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|f| *f == res.name || f.parse::<u64>().ok() == Some(res.id))
        })
        .map(|res| {
            let runtime = match (res.started_ms, res.ended_ms) {
                (Some(a), Some(b)) => format!("0:00:{:02}", (b.saturating_sub(a)) / 1000),
                _ => String::new(),
            };
            let mut v = json!({
                "id": res.id,
                "created": format_time(set.started_ms.unwrap_or(m.created_ms)),
                "updated": format_time(res.ended_ms.or(res.started_ms).unwrap_or(m.updated_ms)),
                "name": res.name,
                "status": res.status,
                "status_name": script_status::name(res.status),
                "exit_status": res.exit_status,
                "started": fmt(res.started_ms),
                "ended": fmt(res.ended_ms),
                "runtime": runtime,
                "starttime": res.started_ms.map(|t| t as f64 / 1000.0),
                "endtime": res.ended_ms.map(|t| t as f64 / 1000.0),
                "estimated_runtime": "0:00:10",
                "parameters": {},
                "script_id": null,
                "script_revision_id": null,
                "suppressed": false,
            });
            if include_output && let Some(o) = v.as_object_mut() {
                let out = if res.status == script_status::PASSED {
                    script_output(m, &res.name)
                } else {
                    String::new()
                };
                o.insert("output".into(), json!(b64(&out)));
                o.insert("stdout".into(), json!(b64(&out)));
                o.insert("stderr".into(), json!(b64("")));
                o.insert("result".into(), json!(b64("")));
            }
            v
        })
        .collect();
    let type_name = match set.result_type {
        0 => "Commissioning",
        1 => "Installation",
        2 => "Testing",
        _ => "Release",
    };
    let st = set.status();
    json!({
        "id": set.id,
        "system_id": m.system_id,
        "type": set.result_type,
        "type_name": type_name,
        "last_ping": fmt(set.ended_ms.or(set.started_ms)),
        "status": st,
        "status_name": script_status::name(st),
        "started": fmt(set.started_ms),
        "ended": fmt(set.ended_ms),
        "runtime": "",
        "results": results,
        "suppressed": false,
        "resource_uri": format!("{}nodes/{}/results/{}/", s.api, m.system_id, set.id),
    })
}

fn sets(m: &Machine) -> Vec<&ScriptSet> {
    [
        m.commissioning.as_ref(),
        m.testing.as_ref(),
        m.installation.as_ref(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub fn results(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let sid = r.path("system_id");
    if let Err(e) = node_or_404(st, sid) {
        return e;
    }
    let Some(m) = st.machine(sid) else {
        return ok(json!([]));
    };
    let want = match r.params.get_nonempty("type") {
        None => None,
        Some(t) => match result_type_of(t) {
            Some(x) => Some(x),
            None => return bad_request(&format!("Unknown type \"{t}\"")),
        },
    };
    let include = r.params.has("include_output");
    let filters = r.params.list("filters");
    let out: Vec<Value> = sets(m)
        .into_iter()
        .filter(|set| want.is_none_or(|t| set.result_type == t))
        .map(|set| script_set_json(s, m, set, include, &filters))
        .collect();
    ok(Value::Array(out))
}

fn find_set<'a>(m: &'a Machine, id: &str) -> Result<&'a ScriptSet, Response> {
    let by_name = match id {
        "current-commissioning" => Some(m.commissioning.as_ref()),
        "current-testing" => Some(m.testing.as_ref()),
        "current-installation" => Some(m.installation.as_ref()),
        _ => None,
    };
    if let Some(x) = by_name {
        return x.ok_or_else(|| {
            bad_request(&format!(
                "No {} script set exists for this node.",
                id.replace('-', " ")
            ))
        });
    }
    if let Ok(n) = id.parse::<u64>() {
        return sets(m)
            .into_iter()
            .find(|s| s.id == n)
            .ok_or_else(|| not_found("ScriptSet"));
    }
    Err(bad_request(&format!(
        "Unknown id \"{id}\" must be current-commissioning, current-testing, current-installation, or the id number of a specific result."
    )))
}

pub fn result(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let Some(m) = st.machine(r.path("system_id")) else {
        return not_found("Node");
    };
    match find_set(m, r.path("id")) {
        Ok(set) => ok(script_set_json(
            s,
            m,
            set,
            r.params.has("include_output"),
            &r.params.list("filters"),
        )),
        Err(e) => e,
    }
}

pub fn download(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let st = &g.st;
    let Some(m) = st.machine(r.path("system_id")) else {
        return not_found("Node");
    };
    let set = match find_set(m, r.path("id")) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let filters = r.params.list("filters");
    let picked: Vec<&ScriptResult> = set
        .results
        .iter()
        .filter(|res| {
            filters.is_empty()
                || filters
                    .iter()
                    .any(|f| *f == res.name || f.parse::<u64>().ok() == Some(res.id))
        })
        .collect();
    if picked.is_empty() {
        return not_found("ScriptResult");
    }
    let text = if picked.len() == 1 {
        script_output(m, &picked[0].name)
    } else {
        picked
            .iter()
            .map(|res| {
                format!(
                    "{} {}\n{}",
                    res.name,
                    "-".repeat(20),
                    script_output(m, &res.name)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    http::text(StatusCode::OK, &text)
}

pub fn interfaces(s: &Maas, r: &Req) -> Response {
    let g = s.inner.lock();
    let st = &g.st;
    let sid = r.path("system_id");
    if let Some(m) = st.machine(sid) {
        return ok(Value::Array(
            m.interfaces
                .iter()
                .map(|i| render::interface(st, &s.api, sid, i, 0))
                .collect(),
        ));
    }
    if let Some(c) = st.controller(sid) {
        return ok(Value::Array(
            c.interfaces
                .iter()
                .map(|i| render::interface(st, &s.api, sid, i, 0))
                .collect(),
        ));
    }
    not_found("Node")
}

fn iface_index(m: &Machine, id: &str) -> Option<usize> {
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
            return ok(render::interface(st, &s.api, sid, i, 0));
        }
        return not_found("Interface");
    };
    match iface_index(m, r.path("id")) {
        Some(i) => ok(render::interface(st, &s.api, sid, &m.interfaces[i], 0)),
        None => not_found("Interface"),
    }
}

fn editable(m: &Machine) -> Result<(), Response> {
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
    let Some(m) = st.machine(&sid) else {
        return not_found("Interface");
    };
    let Some(idx) = iface_index(m, r.path("id")) else {
        return not_found("Interface");
    };
    if let Err(e) = editable(m) {
        return e;
    }
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
        0,
    );
    ok(out)
}

fn ip_in_subnet(ip: &str, cidr: &str) -> bool {
    super::network::ip_in_cidr(ip, cidr)
}

pub fn link_subnet(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let sid = r.path("system_id").to_string();
    let st = &mut g.st;
    let Some(m) = st.machine(&sid) else {
        return not_found("Interface");
    };
    let Some(idx) = iface_index(m, r.path("id")) else {
        return not_found("Interface");
    };
    if let Err(e) = editable(m) {
        return e;
    }
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
        ("static", None, Some(sn)) => match super::network::next_free_ip(st, sn) {
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
    ok(render::interface(st, &s.api, &sid, &iface, 0))
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
    ok(render::interface(st, &s.api, &sid, &iface, 0))
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
    ok(render::interface(st, &s.api, &sid, &iface, 0))
}

pub fn blockdevices(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let Some(m) = g.st.machine(r.path("system_id")) else {
        return not_found("Machine");
    };
    let disks = m
        .reported
        .as_ref()
        .map(|h| h.disks.clone())
        .unwrap_or_default();
    ok(Value::Array(
        disks
            .iter()
            .enumerate()
            .map(|(i, d)| render::blockdevice(&s.api, m, i, d))
            .collect(),
    ))
}

pub fn blockdevice(s: &Maas, r: &Req) -> Response {
    let mut g = s.inner.lock();
    s.advance(&mut g);
    let Some(m) = g.st.machine(r.path("system_id")) else {
        return not_found("Machine");
    };
    let disks = m
        .reported
        .as_ref()
        .map(|h| h.disks.clone())
        .unwrap_or_default();
    let id = r.path("id");
    disks
        .iter()
        .enumerate()
        .find(|(i, d)| render::disk_id(m.id, *i).to_string() == id || d.name == id)
        .map(|(i, d)| ok(render::blockdevice(&s.api, m, i, d)))
        .unwrap_or_else(|| not_found("BlockDevice"))
}

// ---------------------------------------------------------------------------------
// Admin mutation (behind the clients' back)

pub fn mutate(s: &Maas, st: &mut State, req: &MutateRequest) -> Result<Value, String> {
    let sid = if st.machine(&req.id).is_some() {
        req.id.clone()
    } else {
        st.machines
            .values()
            .find(|m| m.hostname == req.id || m.actual.serial == req.id)
            .map(|m| m.system_id.clone())
            .ok_or_else(|| format!("no machine {}", req.id))?
    };
    if req.delete {
        st.remove_machine(&sid);
        return Ok(json!({"deleted": sid}));
    }
    let zones: Vec<(String, u64)> = st.zones.values().map(|z| (z.name.clone(), z.id)).collect();
    let pools: Vec<(String, u64)> = st.pools.values().map(|z| (z.name.clone(), z.id)).collect();
    let taken: Vec<String> = st
        .machines
        .values()
        .filter(|m| m.system_id != sid)
        .map(|m| m.hostname.clone())
        .collect();
    let m = st.machine_mut(&sid).ok_or("machine vanished")?;
    let as_str = |v: &Value| -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        }
    };
    for (k, v) in &req.set {
        match k.as_str() {
            "hostname" => {
                let h = as_str(v);
                if taken.contains(&h) {
                    return Err(format!("hostname {h} is taken"));
                }
                m.hostname = h;
            }
            "description" => m.description = as_str(v),
            "status" | "status_name" => {
                let code = S::parse(&as_str(v)).ok_or_else(|| format!("unknown status {v}"))?;
                m.pending = None;
                let msg = S::name(code).to_string();
                if m.status != code {
                    m.previous_status = m.status;
                }
                m.status = code;
                m.status_message = msg;
                match code {
                    S::NEW | S::READY => m.owner = None,
                    S::ALLOCATED | S::DEPLOYED | S::DEPLOYING => {
                        m.owner.get_or_insert_with(|| API_USER.into());
                    }
                    _ => {}
                }
                if code == S::DEPLOYED {
                    m.power_on = true;
                    if m.osystem.is_empty() {
                        m.osystem = "ubuntu".into();
                        m.distro_series = "noble".into();
                    }
                }
                // A transition that takes time completes like one the API started.
                let phase = match code {
                    S::COMMISSIONING => Some(Phase::Commissioning),
                    S::TESTING => Some(Phase::Testing),
                    S::DEPLOYING => Some(Phase::Deploying),
                    S::RELEASING => Some(Phase::Releasing),
                    S::DISK_ERASING => Some(Phase::DiskErasing),
                    _ => None,
                };
                if let Some(p) = phase {
                    start(m, p, now_ms(), false);
                }
            }
            "status_message" => m.status_message = as_str(v),
            "error_description" => m.error_description = as_str(v),
            "power_state" => m.power_on = as_str(v) == "on",
            "power_type" => m.power_type = as_str(v),
            "power_parameters" => {
                let o = v.as_object().ok_or("power_parameters must be an object")?;
                m.power_parameters = o.iter().map(|(k, v)| (k.clone(), as_str(v))).collect();
            }
            "tag_names" | "tags" => {
                let a = v.as_array().ok_or("tag_names must be an array")?;
                m.tags = a.iter().map(as_str).collect();
            }
            "zone" => {
                let name = as_str(v);
                m.zone_id = zones
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, id)| *id)
                    .ok_or_else(|| format!("no zone {name}"))?;
            }
            "pool" => {
                let name = as_str(v);
                m.pool_id = pools
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, id)| *id)
                    .ok_or_else(|| format!("no pool {name}"))?;
            }
            "owner" => m.owner = v.as_str().map(str::to_string),
            "osystem" => m.osystem = as_str(v),
            "distro_series" => m.distro_series = as_str(v),
            "architecture" => m.architecture = as_str(v),
            "locked" => m.locked = v.as_bool().unwrap_or(false),
            "netboot" => m.netboot = v.as_bool().unwrap_or(true),
            "agent_name" => m.agent_name = as_str(v),
            "owner_data" => {
                let o = v.as_object().ok_or("owner_data must be an object")?;
                m.owner_data = o.iter().map(|(k, v)| (k.clone(), as_str(v))).collect();
            }
            "cpu_count" => {
                let n = v.as_u64().ok_or("cpu_count must be a number")? as u32;
                m.reported.get_or_insert_with(|| m.actual.clone()).cpu_count = n;
            }
            "memory" => {
                let n = v.as_u64().ok_or("memory must be a number of MiB")?;
                m.reported
                    .get_or_insert_with(|| m.actual.clone())
                    .memory_mib = n;
            }
            other => return Err(format!("field {other} cannot be set on a machine")),
        }
    }
    m.updated_ms = now_ms();
    if req.set.contains_key("hostname") {
        st.reindex();
    }
    let m = st.machine(&sid).ok_or("machine vanished")?;
    Ok(render::machine(st, &s.api, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_suffixes() {
        assert_eq!(parse_memory("4096"), Some(4096));
        assert_eq!(parse_memory("4G"), Some(4096));
        assert_eq!(parse_memory("1T"), Some(1024 * 1024));
        assert_eq!(parse_memory("x"), None);
    }

    #[test]
    fn degraded_hardware() {
        let hw = Hardware {
            memory_mib: 1024,
            gpus: vec![Gpu {
                link_gen: 5,
                link_width: 16,
                max_gen: 5,
                max_width: 16,
                ..Gpu::default()
            }],
            ..Hardware::default()
        };
        let d = commissioned_hardware(&hw, &["gpu_degraded".into(), "memory_missing".into()]);
        assert_eq!((d.gpus[0].link_gen, d.gpus[0].link_width), (4, 8));
        assert_eq!(d.memory_mib, 768);
    }
}
