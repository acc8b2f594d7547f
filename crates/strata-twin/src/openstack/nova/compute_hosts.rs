//! The compute side of the region: availability zones, hypervisors (list, detail, uptime,
//! statistics, search, their servers) and compute services (list, enable/disable, forced
//! down, delete).

use super::*;

pub(super) fn az_list_(_os: &Os, _req: &Req, st: &mut State, _cx: &Cx) -> R {
    let mut zones: Vec<(String, bool)> = Vec::new();
    for h in &st.hosts {
        if h.status != "enabled" {
            continue;
        }
        match zones.iter_mut().find(|(z, _)| z == &h.az) {
            Some(z) => z.1 |= h.state == "up",
            None => zones.push((h.az.clone(), h.state == "up")),
        }
    }
    let list: Vec<Value> = zones
        .into_iter()
        .map(|(z, up)| json!({"zoneName": z, "zoneState": {"available": up}, "hosts": null}))
        .collect();
    Ok(json_resp(
        StatusCode::OK,
        json!({"availabilityZoneInfo": list}),
    ))
}

pub(super) fn az_detail_(os: &Os, _req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-availability-zone:detail")?;
    let now = iso_plain_us(os.now_ms());
    let ctl = format!("{}-ctl-01", os.ctx.name);
    let mut out = vec![json!({
        "zoneName": "internal",
        "zoneState": {"available": true},
        "hosts": {ctl: {
            "nova-conductor": {"active": true, "available": true, "updated_at": now},
            "nova-scheduler": {"active": true, "available": true, "updated_at": now},
        }},
    })];
    let mut zones: Vec<String> = Vec::new();
    for h in &st.hosts {
        if !zones.contains(&h.az) {
            zones.push(h.az.clone());
        }
    }
    for z in zones {
        let mut hosts = serde_json::Map::new();
        let mut up = false;
        for h in st.hosts.iter().filter(|h| h.az == z) {
            up |= h.state == "up" && h.status == "enabled";
            hosts.insert(
                h.host.clone(),
                json!({"nova-compute": {"active": h.status == "enabled", "available": h.state == "up", "updated_at": now}}),
            );
        }
        out.push(json!({"zoneName": z, "zoneState": {"available": up}, "hosts": hosts}));
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"availabilityZoneInfo": out}),
    ))
}

pub(super) struct Usage {
    pub(super) vcpus_used: i64,
    pub(super) memory_mb_used: i64,
    pub(super) local_gb_used: i64,
    pub(super) running_vms: i64,
}

pub(super) fn usage(st: &State, h: &ComputeHost) -> Usage {
    let used = placement::used(st, &h.uuid);
    let reserved = st
        .rps
        .iter()
        .find(|r| r.uuid == h.uuid)
        .and_then(|r| r.inventories.get("MEMORY_MB"))
        .map(|i| i.reserved)
        .unwrap_or(0);
    Usage {
        vcpus_used: used.get("VCPU").copied().unwrap_or(0),
        memory_mb_used: reserved + used.get("MEMORY_MB").copied().unwrap_or(0),
        local_gb_used: used.get("DISK_GB").copied().unwrap_or(0),
        running_vms: st
            .servers
            .iter()
            .filter(|s| !s.deleted && s.host.as_deref() == Some(h.host.as_str()))
            .count() as i64,
    }
}

pub(super) fn hyp_id(h: &ComputeHost, mv: u32) -> Value {
    if mv >= 53 { json!(h.uuid) } else { json!(h.id) }
}

pub(super) fn cpu_info(h: &ComputeHost, mv: u32) -> Value {
    let info = json!({
        "arch": "x86_64",
        "model": h.cpu_model,
        "vendor": "AMD",
        "features": ["avx2", "sse4.2", "svm", "aes"],
        "topology": {"cores": h.vcpus / 4, "threads": 2, "sockets": 2},
    });
    if mv >= 28 {
        info
    } else {
        json!(info.to_string())
    }
}

pub(super) fn uptime_text(h: &ComputeHost, now: i64) -> String {
    let secs = ((now - h.started_ms) / 1000).max(0);
    let (d, hh, mm) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    format!(" 08:32:11 up {d} days, {hh:2}:{mm:02},  1 user,  load average: 0.20, 0.12, 0.14")
}

pub(super) fn hyp_json(
    st: &State,
    h: &ComputeHost,
    mv: u32,
    detail: bool,
    servers: Option<bool>,
    now: i64,
) -> Value {
    let mut v = json!({
        "hypervisor_hostname": h.hypervisor_hostname,
        "id": hyp_id(h, mv),
        "state": h.state,
        "status": h.status,
    });
    if detail {
        v["host_ip"] = json!(h.host_ip);
        v["hypervisor_type"] = json!("QEMU");
        v["hypervisor_version"] = json!(8_002_002);
        v["service"] = json!({
            "host": h.host,
            "id": if mv >= 53 { json!(h.service_uuid) } else { json!(h.service_id) },
            "disabled_reason": h.disabled_reason,
        });
        if mv >= 88 {
            v["uptime"] = json!(uptime_text(h, now));
        } else {
            let u = usage(st, h);
            v["cpu_info"] = cpu_info(h, mv);
            v["current_workload"] = json!(0);
            v["vcpus"] = json!(h.vcpus);
            v["vcpus_used"] = json!(u.vcpus_used);
            v["memory_mb"] = json!(h.memory_mb);
            v["memory_mb_used"] = json!(u.memory_mb_used);
            v["free_ram_mb"] = json!(h.memory_mb - u.memory_mb_used);
            v["local_gb"] = json!(h.local_gb);
            v["local_gb_used"] = json!(u.local_gb_used);
            v["free_disk_gb"] = json!(h.local_gb - u.local_gb_used);
            v["disk_available_least"] = json!(h.local_gb - u.local_gb_used);
            v["running_vms"] = json!(u.running_vms);
        }
    }
    if servers == Some(true) {
        let list: Vec<Value> = st
            .servers
            .iter()
            .filter(|s| !s.deleted && s.host.as_deref() == Some(h.host.as_str()))
            .map(|s| json!({"name": format!("instance-{:08x}", s.seq), "uuid": s.id}))
            .collect();
        if !list.is_empty() || mv >= 75 {
            v["servers"] = json!(list);
        }
    }
    v
}

pub(super) fn list_hypervisors(os: &Os, req: &Req, st: &State, cx: &Cx, detail: bool) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:list")?;
    let with_servers = match req.q("with_servers") {
        Some(v) if cx.mv >= 53 => Some(parse_bool(v).ok_or_else(|| {
            bad(&format!(
                "Invalid input for query parameters with_servers. Value: {v}."
            ))
        })?),
        _ => None,
    };
    let pattern = req.q("hypervisor_hostname_pattern").filter(|_| cx.mv >= 53);
    if pattern.is_some() && (req.q("limit").is_some() || req.q("marker").is_some()) {
        return Err(bad(
            "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.",
        ));
    }
    let items: Vec<&ComputeHost> = st
        .hosts
        .iter()
        .filter(|h| pattern.is_none_or(|p| h.hypervisor_hostname.contains(p)))
        .collect();
    if let Some(p) = pattern
        && items.is_empty()
    {
        return Err(err(
            404,
            &format!("No hypervisor matching '{p}' could be found."),
        ));
    }
    let path = if detail {
        "os-hypervisors/detail"
    } else {
        "os-hypervisors"
    };
    let (page, next) = if cx.mv >= 33 {
        paginate(
            os,
            req,
            items,
            |h| {
                if cx.mv >= 53 {
                    h.uuid.clone()
                } else {
                    h.id.to_string()
                }
            },
            path,
            |m| bad(&format!("marker [{m}] not found")),
        )?
    } else {
        (items, None)
    };
    let mut body = json!({"hypervisors": page.iter().map(|h| hyp_json(st, h, cx.mv, detail, with_servers, os.now_ms())).collect::<Vec<_>>()});
    if let Some(n) = next {
        body["hypervisors_links"] = n;
    }
    Ok(json_resp(StatusCode::OK, body))
}

pub(super) fn hyp_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_hypervisors(os, req, st, cx, false)
}

pub(super) fn hyp_detail_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    list_hypervisors(os, req, st, cx, true)
}

pub(super) fn find_hyp<'a>(st: &'a State, id: &str, mv: u32) -> Result<&'a ComputeHost, Response> {
    if mv >= 53 && !is_uuid(id) {
        return Err(bad(&format!("Invalid uuid {id}")));
    }
    st.hosts
        .iter()
        .find(|h| {
            if mv >= 53 {
                h.uuid == id
            } else {
                h.id.to_string() == id
            }
        })
        .ok_or_else(|| {
            err(
                404,
                &format!("Hypervisor with ID '{id}' could not be found."),
            )
        })
}

pub(super) fn hyp_show_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:show")?;
    let h = find_hyp(st, req.param("id"), cx.mv)?;
    let with_servers = req
        .q("with_servers")
        .filter(|_| cx.mv >= 53)
        .and_then(parse_bool);
    Ok(json_resp(
        StatusCode::OK,
        json!({"hypervisor": hyp_json(st, h, cx.mv, true, with_servers, os.now_ms())}),
    ))
}

pub(super) fn hyp_uptime_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:uptime")?;
    let h = find_hyp(st, req.param("id"), cx.mv)?;
    let mut v = hyp_json(st, h, cx.mv, false, None, os.now_ms());
    v["uptime"] = json!(uptime_text(h, os.now_ms()));
    Ok(json_resp(StatusCode::OK, json!({"hypervisor": v})))
}

pub(super) fn hyp_stats_(_os: &Os, _req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:statistics")?;
    let mut t = BTreeMap::<&str, i64>::new();
    for h in &st.hosts {
        let u = usage(st, h);
        for (k, v) in [
            ("count", 1),
            ("current_workload", 0),
            ("vcpus", h.vcpus),
            ("vcpus_used", u.vcpus_used),
            ("memory_mb", h.memory_mb),
            ("memory_mb_used", u.memory_mb_used),
            ("free_ram_mb", h.memory_mb - u.memory_mb_used),
            ("local_gb", h.local_gb),
            ("local_gb_used", u.local_gb_used),
            ("free_disk_gb", h.local_gb - u.local_gb_used),
            ("disk_available_least", h.local_gb - u.local_gb_used),
            ("running_vms", u.running_vms),
        ] {
            *t.entry(k).or_insert(0) += v;
        }
    }
    Ok(json_resp(
        StatusCode::OK,
        json!({"hypervisor_statistics": t}),
    ))
}

pub(super) fn hyp_search_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:search")?;
    let p = req.param("id");
    let list: Vec<Value> = st
        .hosts
        .iter()
        .filter(|h| h.hypervisor_hostname.contains(p))
        .map(|h| hyp_json(st, h, cx.mv, false, None, os.now_ms()))
        .collect();
    if list.is_empty() {
        return Err(err(
            404,
            &format!("No hypervisor matching '{p}' could be found."),
        ));
    }
    Ok(json_resp(StatusCode::OK, json!({"hypervisors": list})))
}

pub(super) fn hyp_servers_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-hypervisors:servers")?;
    let p = req.param("id");
    let list: Vec<Value> = st
        .hosts
        .iter()
        .filter(|h| h.hypervisor_hostname.contains(p))
        .map(|h| hyp_json(st, h, cx.mv, false, Some(true), os.now_ms()))
        .collect();
    if list.is_empty() {
        return Err(err(
            404,
            &format!("No hypervisor matching '{p}' could be found."),
        ));
    }
    Ok(json_resp(StatusCode::OK, json!({"hypervisors": list})))
}

pub(super) fn service_json(
    h: Option<&ComputeHost>,
    ctl: &str,
    binary: &str,
    id: (u64, String),
    mv: u32,
    now: i64,
) -> Value {
    let now = iso_plain_us(now);
    let (host, zone, status, state, reason, forced) = match h {
        Some(h) => (
            h.host.clone(),
            h.az.clone(),
            h.status.clone(),
            h.state.clone(),
            h.disabled_reason.clone(),
            h.forced_down,
        ),
        None => (
            ctl.to_string(),
            "internal".to_string(),
            "enabled".to_string(),
            "up".to_string(),
            None,
            false,
        ),
    };
    let mut v = json!({
        "id": if mv >= 53 { json!(id.1) } else { json!(id.0) },
        "binary": binary,
        "disabled_reason": reason,
        "host": host,
        "state": state,
        "status": status,
        "updated_at": now,
        "zone": zone,
    });
    if mv >= 11 {
        v["forced_down"] = json!(forced);
    }
    v
}

pub(super) fn services_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-services:list")?;
    let ctl = format!("{}-ctl-01", os.ctx.name);
    let mut list = vec![
        service_json(
            None,
            &ctl,
            "nova-scheduler",
            (1, uuid_for(&ctl, "scheduler")),
            cx.mv,
            os.now_ms(),
        ),
        service_json(
            None,
            &ctl,
            "nova-conductor",
            (2, uuid_for(&ctl, "conductor")),
            cx.mv,
            os.now_ms(),
        ),
    ];
    for h in &st.hosts {
        list.push(service_json(
            Some(h),
            &ctl,
            "nova-compute",
            (h.service_id, h.service_uuid.clone()),
            cx.mv,
            os.now_ms(),
        ));
    }
    list.retain(|s| {
        req.q("host").is_none_or(|h| s["host"] == h)
            && req.q("binary").is_none_or(|b| s["binary"] == b)
    });
    Ok(json_resp(StatusCode::OK, json!({"services": list})))
}

pub(super) fn uuid_for(host: &str, what: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{host}/{what}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// `PUT /os-services/{id}` (nova `nova/api/openstack/compute/services.py` `update`):
/// from microversion 2.53 the service's UUID with `status`, `disabled_reason` and
/// `forced_down` in the body (`schemas/services.py` `update_v253`); before it, the
/// action (`enable`, `disable`, `disable-log-reason`, and `force-down` from 2.11) with
/// `host` and `binary` in the body (`update`, `update_v211`).
pub(super) fn service_update_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    if cx.mv >= 53 {
        service_update_v253(os, req, st, cx)
    } else {
        service_update_v21(os, req, st, cx)
    }
}

/// nova's `parameter_types.boolean`: JSON booleans and their usual spellings.
pub(super) fn schema_bool(v: &Value) -> Option<bool> {
    const TRUE: &[&str] = &[
        "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
    ];
    const FALSE: &[&str] = &[
        "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no",
    ];
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if TRUE.contains(&s.as_str()) => Some(true),
        Value::String(s) if FALSE.contains(&s.as_str()) => Some(false),
        _ => None,
    }
}

pub(super) const BOOL_ENUM: &str = "[True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']";

/// jsonschema's checks of one object: the properties allowed, the required ones.
pub(super) fn check_object(
    body: &Value,
    allowed: &[&str],
    required: &[&str],
    path: Option<&str>,
) -> Result<(), Response> {
    let fail = |msg: String| match path {
        Some(p) => bad(&format!(
            "Invalid input for field/attribute {p}. Value: {}. {msg}",
            py_str(body)
        )),
        None => bad(&msg),
    };
    let Some(m) = body.as_object() else {
        return Err(fail(format!("{} is not of type 'object'", py_repr(body))));
    };
    for r in required {
        if !m.contains_key(*r) {
            return Err(fail(format!("'{r}' is a required property")));
        }
    }
    let extra: Vec<String> = m
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| format!("'{k}'"))
        .collect();
    if !extra.is_empty() {
        let verb = if extra.len() == 1 { "was" } else { "were" };
        return Err(fail(format!(
            "Additional properties are not allowed ({} {verb} unexpected)",
            extra.join(", ")
        )));
    }
    Ok(())
}

/// A string property of 1 to 255 characters (`binary`, `disabled_reason`).
fn check_name(field: &str, v: &Value) -> Result<(), Response> {
    let Some(s) = v.as_str() else {
        return Err(invalid_py(
            field,
            v,
            &format!("{} is not of type 'string'", py_repr(v)),
        ));
    };
    if s.is_empty() {
        return Err(invalid_py(field, v, "'' should be non-empty"));
    }
    if s.chars().count() > 255 {
        return Err(invalid_py(field, v, &format!("{} is too long", py_repr(v))));
    }
    Ok(())
}

/// nova's validation error for one field, the value as Python prints it.
pub(super) fn invalid_py(field: &str, v: &Value, why: &str) -> Response {
    bad(&format!(
        "Invalid input for field/attribute {field}. Value: {}. {why}",
        py_str(v)
    ))
}

fn check_forced_down(v: &Value) -> Result<bool, Response> {
    schema_bool(v).ok_or_else(|| {
        invalid_py(
            "forced_down",
            v,
            &format!("{} is not one of {BOOL_ENUM}", py_repr(v)),
        )
    })
}

/// Disable or enable a compute service as nova does: the service record, and the
/// compute node's `COMPUTE_STATUS_DISABLED` trait in Placement, which the scheduler's
/// `compute_status_filter` pre-filter forbids (nova `compute/api.py` `HostAPI`
/// `_update_compute_provider_status`, `compute/manager.py` `set_host_enabled`).
pub(super) fn set_service_status(
    st: &mut State,
    idx: usize,
    disabled: bool,
    reason: Option<String>,
    now: i64,
) {
    let h = &mut st.hosts[idx];
    h.status = if disabled { "disabled" } else { "enabled" }.into();
    h.disabled_reason = if disabled { reason } else { None };
    let uuid = h.uuid.clone();
    if let Some(rp) = st.rps.iter_mut().find(|r| r.uuid == uuid) {
        let changed = if disabled {
            rp.traits.insert("COMPUTE_STATUS_DISABLED".into())
        } else {
            rp.traits.remove("COMPUTE_STATUS_DISABLED")
        };
        if changed {
            rp.generation += 1;
            rp.updated_ms = now;
        }
    }
}

fn set_forced_down(st: &mut State, idx: usize, down: bool) {
    let h = &mut st.hosts[idx];
    h.forced_down = down;
    // The servicegroup API reports a forced-down service down; one forced up again
    // reports its heartbeat, if its machine runs.
    h.state = if down || h.powered_off { "down" } else { "up" }.into();
}

fn service_update_v253(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    check_object(
        &body,
        &["status", "disabled_reason", "forced_down"],
        &[],
        None,
    )?;
    if let Some(s) = body.get("status")
        && !matches!(s.as_str(), Some("enabled" | "disabled"))
    {
        return Err(invalid_py(
            "status",
            s,
            &format!("{} is not one of ['enabled', 'disabled']", py_repr(s)),
        ));
    }
    if let Some(r) = body.get("disabled_reason") {
        check_name("disabled_reason", r)?;
    }
    let forced = body.get("forced_down").map(check_forced_down).transpose()?;
    let id = req.param("id");
    if !is_uuid(id) {
        return Err(bad(&format!("Invalid uuid {id}")));
    }
    cx.require_admin("os_compute_api:os-services:update")?;
    let ctl = format!("{}-ctl-01", os.ctx.name);
    for binary in ["scheduler", "conductor"] {
        if uuid_for(&ctl, binary) == id {
            return Err(bad(&format!(
                "Updating a nova-{binary} service is not supported. Only nova-compute services can be updated."
            )));
        }
    }
    let idx = st
        .hosts
        .iter()
        .position(|h| h.service_uuid == id)
        .ok_or_else(|| err(404, &format!("Service {id} could not be found.")))?;
    let status = body.get("status").and_then(Value::as_str);
    let reason = body
        .get("disabled_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    if status == Some("enabled") && reason.is_some() {
        return Err(bad(
            "Specifying 'disabled_reason' with status 'enabled' is invalid.",
        ));
    }
    if status.is_none() && forced.is_none() {
        return Err(bad(
            "No updates were requested. Fields 'status' or 'forced_down' should be specified.",
        ));
    }
    if let Some(s) = status {
        set_service_status(st, idx, s == "disabled", reason, os.now_ms());
    }
    if let Some(f) = forced {
        set_forced_down(st, idx, f);
    }
    let h = &st.hosts[idx];
    Ok(json_resp(
        StatusCode::OK,
        json!({"service": service_json(Some(h), &ctl, "nova-compute", (h.service_id, h.service_uuid.clone()), cx.mv, os.now_ms())}),
    ))
}

fn service_update_v21(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let mut allowed = vec!["host", "binary", "disabled_reason"];
    if cx.mv >= 11 {
        allowed.push("forced_down");
    }
    check_object(&body, &allowed, &["host", "binary"], None)?;
    let host_v = &body["host"];
    let host = host_v.as_str().ok_or_else(|| {
        invalid_py(
            "host",
            host_v,
            &format!("{} is not of type 'string'", py_repr(host_v)),
        )
    })?;
    check_name("host", host_v)?;
    check_name("binary", &body["binary"])?;
    if let Some(r) = body.get("disabled_reason") {
        check_name("disabled_reason", r)?;
    }
    let forced = body.get("forced_down").map(check_forced_down).transpose()?;
    cx.require_admin("os_compute_api:os-services:update")?;
    let binary = body["binary"].as_str().unwrap_or_default().to_string();
    let action = req.param("id");
    let reason = body
        .get("disabled_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let known = ["enable", "disable", "disable-log-reason"].contains(&action)
        || (action == "force-down" && cx.mv >= 11);
    if !known {
        return Err(err(404, "Unknown action"));
    }
    if action == "disable-log-reason" && reason.is_none() {
        return Err(bad("Missing disabled reason field"));
    }
    if action == "force-down" && forced.is_none() {
        return Err(bad("Missing forced_down field"));
    }
    if binary != "nova-compute" {
        return Err(bad(&format!(
            "Updating a {binary} service is not supported. Only nova-compute services can be updated."
        )));
    }
    let idx = st
        .hosts
        .iter()
        .position(|h| h.host == host)
        .ok_or_else(|| err(404, &format!("Host '{host}' is not mapped to any cell")))?;
    let now = os.now_ms();
    let mut out = json!({"host": host, "binary": binary});
    match action {
        "enable" => {
            set_service_status(st, idx, false, None, now);
            out["status"] = json!("enabled");
        }
        "disable" => {
            set_service_status(st, idx, true, None, now);
            out["status"] = json!("disabled");
        }
        "disable-log-reason" => {
            set_service_status(st, idx, true, reason.clone(), now);
            out["status"] = json!("disabled");
            out["disabled_reason"] = json!(reason);
        }
        _ => {
            let f = forced.unwrap_or(false);
            set_forced_down(st, idx, f);
            out["forced_down"] = json!(f);
        }
    }
    Ok(json_resp(StatusCode::OK, json!({"service": out})))
}

/// Migration statuses nova counts as done (`nova/db/main/api.py`
/// `migration_get_in_progress_by_host_and_node`); every other one is in progress.
const MIGRATION_DONE: &[&str] = &[
    "confirmed",
    "reverted",
    "error",
    "failed",
    "completed",
    "cancelled",
    "done",
];

/// `DELETE /os-services/{id}` (nova `nova/api/openstack/compute/services.py`
/// `delete`): the service's UUID from microversion 2.53, its integer id before. A
/// `nova-compute` service is refused (409) while its host has instances or
/// in-progress migrations; otherwise its host leaves every aggregate, its compute
/// node's resource provider tree is deleted from Placement bottom-up as the report
/// client's `delete_resource_provider(cascade=True)` does — a provider that still has
/// allocations (of consumers that are not instances on the host) stays, as nova
/// ignores `ResourceProviderInUse` there — and the service and compute node records
/// go. The twin's controller services (`nova-scheduler`, `nova-conductor`) are not
/// deletable here (409).
pub(super) fn service_delete_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    cx.require_admin("os_compute_api:os-services:delete")?;
    let id = req.param("id");
    if cx.mv >= 53 {
        if !is_uuid(id) {
            return Err(bad(&format!("Invalid uuid {id}")));
        }
    } else if id.trim().parse::<i64>().is_err() {
        return Err(bad("Invalid input received: id must be an integer"));
    }
    let matches = |uuid: &str, int: u64| {
        if cx.mv >= 53 {
            uuid == id
        } else {
            id.trim().parse::<u64>().ok() == Some(int)
        }
    };
    let ctl = format!("{}-ctl-01", os.ctx.name);
    for (n, binary) in [(1, "scheduler"), (2, "conductor")] {
        if matches(&uuid_for(&ctl, binary), n) {
            return Err(err(
                409,
                &format!(
                    "The twin does not delete its controller's nova-{binary} service; only nova-compute services can be deleted."
                ),
            ));
        }
    }
    let idx = st
        .hosts
        .iter()
        .position(|h| matches(&h.service_uuid, h.service_id))
        .ok_or_else(|| err(404, &format!("Service {id} not found.")))?;
    let (host, node, rp) = {
        let h = &st.hosts[idx];
        (
            h.host.clone(),
            h.hypervisor_hostname.clone(),
            h.uuid.clone(),
        )
    };
    if st
        .servers
        .iter()
        .any(|s| !s.deleted && s.host.as_deref() == Some(host.as_str()))
    {
        return Err(err(
            409,
            "Unable to delete compute service that is hosting instances. Migrate or delete the instances first.",
        ));
    }
    let in_progress = st.migrations.iter().any(|m| {
        !MIGRATION_DONE.contains(&m.status.as_str())
            && ((m.source_compute == host && m.source_node == node)
                || (m.dest_compute.as_deref() == Some(host.as_str())
                    && m.dest_node.as_deref() == Some(node.as_str())))
    });
    if in_progress {
        return Err(err(
            409,
            "Unable to delete compute service that has in-progress migrations. Complete the migrations or delete the instances first.",
        ));
    }
    let now = os.now_ms();
    for a in st.aggregates.iter_mut() {
        if a.hosts.contains(&host) {
            a.hosts.retain(|h| *h != host);
            a.updated_ms = Some(now);
        }
    }
    // The provider tree, deepest first; one with allocations stays.
    let mut tree: Vec<(usize, String)> = st
        .rps
        .iter()
        .filter(|r| r.root == rp)
        .map(|r| {
            let mut depth = 0;
            let mut parent = r.parent.clone();
            while let Some(p) = parent {
                depth += 1;
                parent = st
                    .rps
                    .iter()
                    .find(|x| x.uuid == p)
                    .and_then(|x| x.parent.clone());
                if depth > 64 {
                    break;
                }
            }
            (depth, r.uuid.clone())
        })
        .collect();
    tree.sort_by_key(|t| std::cmp::Reverse(t.0));
    let mut kept = Vec::new();
    for (_, uuid) in tree {
        let in_use = st
            .consumers
            .values()
            .any(|c| c.allocations.contains_key(&uuid));
        let has_children = st
            .rps
            .iter()
            .any(|r| r.parent.as_deref() == Some(uuid.as_str()));
        if in_use || has_children {
            kept.push(uuid);
        } else {
            st.rps.retain(|r| r.uuid != uuid);
        }
    }
    st.hosts.remove(idx);
    let detail = if kept.is_empty() {
        format!("service, compute node {node} and resource provider {rp} deleted")
    } else {
        format!(
            "service and compute node {node} deleted; resource provider(s) {} kept: they have allocations",
            kept.join(", ")
        )
    };
    os.ctx.platform.record_name(
        now as u64,
        crate::platform::Platform::Openstack,
        "service-deleted",
        &host,
        &detail,
    );
    Ok(empty(StatusCode::NO_CONTENT))
}
