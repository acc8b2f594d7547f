//! Synchronous operations on a machine: zone changes, power on/off and query, mark
//! broken/fixed, abort, details, power parameters, owner data, lock and unlock.

use super::*;

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
    let mut m = cur;
    if m.status == S::ALLOCATED {
        let osystem = if m.osystem.is_empty() {
            "ubuntu"
        } else {
            &m.osystem
        };
        if let Err(e) = check_deploy_storage(&m, osystem, false) {
            return e;
        }
    }
    if let Err(e) = power_action(s, st, &mut m) {
        return e;
    }
    if let Some(ud) = r.params.get("user_data") {
        m.user_data = Some(ud.to_string());
    }
    if m.status == S::ALLOCATED {
        // Starting an allocated machine deploys it (MAAS's `Node.start`).
        if m.osystem.is_empty() {
            m.osystem = "ubuntu".into();
            m.distro_series = default_series(st);
        }
        let pace = s.pace();
        begin_deploy(st, &mut m, s.now_ms(), pace);
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
    let mut probe = cur;
    if let Err(e) = power_action(s, st, &mut probe) {
        return e;
    }
    if let Some(m) = st.machine_mut(&sid) {
        m.power_actions = probe.power_actions;
        m.power_on = false;
        m.updated_ms = s.now_ms();
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
    if let Err(e) = bmc_reachable(s, &g.st, m) {
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
    set_status(m, S::BROKEN, "Marking node broken", s.now_ms());
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
    set_status(m, target, "Marking node fixed", s.now_ms());
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
    let now = s.now_ms();
    match m.status {
        S::COMMISSIONING => {
            finish_set(&mut m.commissioning, now, script_status::ABORTED, None);
            finish_set(&mut m.testing, now, script_status::ABORTED, None);
            let back = m.previous_status;
            m.pending = None;
            m.power_on = false;
            m.owner = None;
            set_status(m, back, "Aborted commissioning", now);
        }
        S::TESTING => {
            finish_set(&mut m.testing, now, script_status::ABORTED, None);
            let back = m.previous_status;
            m.pending = None;
            m.power_on = false;
            set_status(m, back, "Aborted testing", now);
        }
        S::DEPLOYING => {
            finish_set(&mut m.installation, now, script_status::ABORTED, None);
            m.pending = None;
            m.power_on = false;
            set_status(m, S::ALLOCATED, "Aborted deployment", now);
        }
        S::DISK_ERASING => {
            m.pending = None;
            m.power_on = false;
            set_status(m, S::FAILED_DISK_ERASING, "Aborted disk erasing", now);
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
    let lshw = m
        .reported
        .as_ref()
        .map(|h| super::super::bson::lshw_xml(m, h));
    let lldp = m.reported.as_ref().map(|_| super::super::bson::lldp_xml(m));
    let body = super::super::bson::encode_details(lshw.as_deref(), lldp.as_deref());
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
