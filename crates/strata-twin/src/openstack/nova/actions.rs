//! Server actions (reboot, stop, start, resize, rebuild, image create, migrations (see
//! [`super::migrations`]), …) with their task states and pending transitions, the instance action log, and `advance`, which completes
//! transitions whose time has come.

use super::*;

pub(super) fn conflict(action: &str, s: &Server, attr: &str) -> Response {
    // The API names the action in its refusal
    // (`common.raise_http_conflict_for_instance_invalid_state`): the body's key, except
    // for the two whose handlers say `stop` and `start`.
    let action = match action {
        "os-stop" => "stop",
        "os-start" => "start",
        other => other,
    };
    let state = if attr == "task_state" {
        s.task_state.clone().unwrap_or_default()
    } else {
        s.vm_state.clone()
    };
    err(
        409,
        &format!(
            "Cannot '{action}' instance {} while it is in {attr} {state}",
            s.id
        ),
    )
}

/// The action may run only in these vm_states and with no task in progress.
pub(super) fn require(s: &Server, action: &str, vm_states: &[&str]) -> Result<(), Response> {
    if !vm_states.contains(&s.vm_state.as_str()) {
        return Err(conflict(action, s, "vm_state"));
    }
    if s.task_state.is_some() {
        return Err(conflict(action, s, "task_state"));
    }
    Ok(())
}

pub(super) fn begin(os: &Os, s: &mut Server, task: &str, kind: &str, vm_state: &str, power: i64) {
    let now = os.now_ms();
    s.task_state = Some(task.into());
    s.updated_ms = now;
    s.pending = Some(Pending {
        at_ms: now + os.task_ms(ACTION_MS),
        vm_state: vm_state.into(),
        task_state: None,
        power_state: power,
        kind: kind.into(),
    });
}

/// Run an action and, when accepted, record it as an instance action.
pub(super) fn server_action_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let r = server_action_inner(os, req, st, cx)?;
    let action = req
        .json()
        .and_then(|b| b.as_object().and_then(|m| m.keys().next().cloned()))
        .unwrap_or_default();
    if r.status().is_success()
        && action != "os-getConsoleOutput"
        && let Some(idx) = st.servers.iter().position(|s| s.id == req.param("id"))
    {
        let name = match action.as_str() {
            "os-stop" => "stop",
            "os-start" => "start",
            "confirmResize" => "confirmResize",
            "revertResize" => "revertResize",
            "createImage" => "createImage",
            "changePassword" => "changePassword",
            "os-migrateLive" => "live-migration",
            other => other,
        }
        .to_string();
        // nova `compute/instance_actions.py` names; the first event is the
        // conductor's for the migrations.
        let event = match action.as_str() {
            "migrate" => "conductor_migrate_server".to_string(),
            "os-migrateLive" => "conductor_live_migrate_instance".to_string(),
            _ => format!("compute_{}_instance", name.to_lowercase()),
        };
        // Actions without a pending transition are over already.
        let done = st.servers[idx].pending.is_none();
        record(
            &mut st.servers[idx],
            &name,
            &event,
            &cx.caller,
            done,
            os.now_ms(),
        );
    }
    Ok(r)
}

pub(super) fn server_action_inner(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let (action, arg) = action_peek(req)?;
    let body = json!({ action.clone(): arg.clone() });
    let idx = find_server_idx(st, req.param("id"), cx)?;
    if st.servers[idx].locked
        && !cx.admin()
        && action != "unlock"
        && action != "os-getConsoleOutput"
    {
        return Err(err(
            409,
            &format!("Instance {} is locked", st.servers[idx].id),
        ));
    }
    let accepted = || Ok(empty(StatusCode::ACCEPTED));
    match action.as_str() {
        "os-stop" => {
            require(
                &st.servers[idx],
                &action,
                &["active", "error", "resized", "rescued"],
            )?;
            begin(
                os,
                &mut st.servers[idx],
                "powering-off",
                "stop",
                "stopped",
                4,
            );
            accepted()
        }
        "os-start" => {
            require(&st.servers[idx], &action, &["stopped"])?;
            begin(
                os,
                &mut st.servers[idx],
                "powering-on",
                "start",
                "active",
                1,
            );
            accepted()
        }
        "reboot" => {
            let kind = arg
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("reboot", &arg, "'type' is a required property"))?;
            let s = &mut st.servers[idx];
            match kind {
                "SOFT" | "Soft" | "soft" => {
                    require(s, &action, &["active"])?;
                    begin(os, s, "rebooting", "reboot", "active", 1);
                }
                "HARD" | "Hard" | "hard" => {
                    if !["active", "stopped", "paused", "suspended", "error"]
                        .contains(&s.vm_state.as_str())
                    {
                        return Err(conflict(&action, s, "vm_state"));
                    }
                    if s.task_state
                        .as_deref()
                        .is_some_and(|t| !t.starts_with("reboot"))
                    {
                        return Err(conflict(&action, s, "task_state"));
                    }
                    begin(os, s, "rebooting_hard", "reboot", "active", 1);
                }
                other => {
                    let v = json!(other);
                    return Err(invalid(
                        "type",
                        &v,
                        &format!(
                            "{} is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']",
                            py_repr(&v)
                        ),
                    ));
                }
            }
            accepted()
        }
        "pause" => {
            require(&st.servers[idx], &action, &["active"])?;
            begin(os, &mut st.servers[idx], "pausing", "pause", "paused", 3);
            accepted()
        }
        "unpause" => {
            require(&st.servers[idx], &action, &["paused"])?;
            begin(
                os,
                &mut st.servers[idx],
                "unpausing",
                "unpause",
                "active",
                1,
            );
            accepted()
        }
        "suspend" => {
            require(&st.servers[idx], &action, &["active"])?;
            begin(
                os,
                &mut st.servers[idx],
                "suspending",
                "suspend",
                "suspended",
                7,
            );
            accepted()
        }
        "resume" => {
            require(&st.servers[idx], &action, &["suspended"])?;
            begin(os, &mut st.servers[idx], "resuming", "resume", "active", 1);
            accepted()
        }
        "lock" => {
            let s = &mut st.servers[idx];
            s.locked = true;
            if cx.mv >= 73 {
                s.locked_reason = arg
                    .get("locked_reason")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            accepted()
        }
        "unlock" => {
            let s = &mut st.servers[idx];
            s.locked = false;
            s.locked_reason = None;
            accepted()
        }
        "resize" => resize(os, st, idx, &arg),
        "confirmResize" => {
            let s = &mut st.servers[idx];
            if s.vm_state != "resized" {
                return Err(err(
                    409,
                    &format!(
                        "Cannot 'confirmResize' instance {} while it is in vm_state {}",
                        s.id, s.vm_state
                    ),
                ));
            }
            s.old_flavor = None;
            confirm(st, idx, os.now_ms());
            let s = &mut st.servers[idx];
            s.vm_state = if s.power_state == 1 {
                "active".into()
            } else {
                "stopped".into()
            };
            s.updated_ms = os.now_ms();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        "revertResize" => {
            require(&st.servers[idx], &action, &["resized"])?;
            reverting(st, idx, os.now_ms());
            let s = &mut st.servers[idx];
            let back = if s.power_state == 1 {
                "active"
            } else {
                "stopped"
            };
            let power = s.power_state;
            begin(os, s, "resize_reverting", "revert", back, power);
            accepted()
        }
        "rebuild" => rebuild(os, st, idx, &arg, cx),
        "migrate" => migrate(os, st, idx, &body, cx),
        "os-migrateLive" => live_migrate(os, st, idx, &body, cx),
        "createImage" => create_image(os, st, idx, &arg, cx),
        "os-getConsoleOutput" => {
            let s = &st.servers[idx];
            if !["active", "stopped", "paused", "suspended"].contains(&s.vm_state.as_str()) {
                return Err(conflict(&action, s, "vm_state"));
            }
            let lines = [
                format!("[    0.000000] Linux version 6.1.0-twin ({})", s.name),
                format!("[    1.234567] cloud-init: hostname {}", s.hostname),
                format!("{} login: ", s.hostname),
            ];
            let n = arg
                .get("length")
                .and_then(as_int)
                .map(|n| n.max(0) as usize)
                .unwrap_or(lines.len());
            let out = lines[lines.len().saturating_sub(n)..].join("\n");
            Ok(json_resp(StatusCode::OK, json!({"output": out})))
        }
        "shelve" => {
            require(
                &st.servers[idx],
                &action,
                &["active", "stopped", "paused", "suspended"],
            )?;
            begin(
                os,
                &mut st.servers[idx],
                "shelving",
                "shelve",
                "shelved_offloaded",
                4,
            );
            accepted()
        }
        "unshelve" => {
            require(&st.servers[idx], &action, &["shelved", "shelved_offloaded"])?;
            begin(
                os,
                &mut st.servers[idx],
                "unshelving",
                "unshelve",
                "active",
                1,
            );
            accepted()
        }
        "changePassword" => {
            arg.get("adminPass")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid("changePassword", &arg, "'adminPass' is a required property")
                })?;
            require(&st.servers[idx], &action, &["active"])?;
            accepted()
        }
        "addSecurityGroup" | "removeSecurityGroup" => {
            let name = arg
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&action, &arg, "'name' is a required property"))?;
            let s = &mut st.servers[idx];
            if action == "addSecurityGroup" {
                if !s.security_groups.iter().any(|g| g == name) {
                    s.security_groups.push(name.to_string());
                }
            } else {
                let before = s.security_groups.len();
                s.security_groups.retain(|g| g != name);
                if before == s.security_groups.len() {
                    return Err(bad(&format!(
                        "Security group {name} not associated with the instance {}",
                        s.id
                    )));
                }
            }
            accepted()
        }
        other => Err(bad(&format!("There is no such action: {other}"))),
    }
}

pub(super) fn resize(os: &Os, st: &mut State, idx: usize, arg: &Value) -> R {
    require(&st.servers[idx], "resize", &["active", "stopped"])?;
    let fref = arg
        .get("flavorRef")
        .and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        })
        .ok_or_else(|| invalid("resize", arg, "'flavorRef' is a required property"))?;
    let fid = ref_id(&fref);
    let new = st
        .flavors
        .get(&fid)
        .map(snap)
        .ok_or_else(|| bad(&format!("Flavor {fid} could not be found.")))?;
    if new.id == st.servers[idx].flavor.id {
        return Err(bad("When resizing, instances must change flavor!"));
    }
    let project = st.servers[idx].project_id.clone();
    let old = st.servers[idx].flavor.clone();
    let limits = quota_limits(st, &project);
    let used = quota_usage(st, &project);
    for (k, delta) in [("cores", new.vcpus - old.vcpus), ("ram", new.ram - old.ram)] {
        let limit = limits.get(k).copied().unwrap_or(-1);
        let have = used.get(k).copied().unwrap_or(0);
        if delta > 0 && limit >= 0 && have + delta > limit {
            return Err(err(
                403,
                &format!(
                    "Quota exceeded for {k}: Requested {delta}, but already used {have} of {limit} {k}"
                ),
            ));
        }
    }
    let want = flavor_resources(st, &new).map_err(|e| bad(&e))?;
    let numa = numa_request(&new).map_err(|e| bad(&e))?;
    begin_resize(os, st, idx, new, &want, numa.as_ref())
}

pub(super) fn rebuild(os: &Os, st: &mut State, idx: usize, arg: &Value, cx: &Cx) -> R {
    require(&st.servers[idx], "rebuild", &["active", "stopped", "error"])?;
    let iref = arg
        .get("imageRef")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("rebuild", arg, "'imageRef' is a required property"))?;
    let iid = ref_id(iref);
    if !st
        .images
        .iter()
        .any(|i| i.id == iid && i.status == "active")
    {
        return Err(bad(&format!(
            "Cannot find requested image {iid}: Image {iid} could not be found."
        )));
    }
    let admin_pass = arg
        .get("adminPass")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| os.hex_id()[..12].to_string());
    {
        let s = &mut st.servers[idx];
        s.image_id = iid;
        if let Some(n) = arg.get("name").and_then(Value::as_str) {
            s.name = n.to_string();
        }
        if let Some(m) = arg.get("metadata").and_then(Value::as_object) {
            s.metadata = m
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|x| (k.clone(), x.to_string())))
                .collect();
        }
        if cx.mv >= 19
            && let Some(d) = arg.get("description")
        {
            s.description = d.as_str().map(str::to_string);
        }
        if cx.mv >= 57
            && let Some(u) = arg.get("user_data")
        {
            s.user_data = u.as_str().map(str::to_string);
        }
        if cx.mv >= 54
            && let Some(k) = arg.get("key_name")
        {
            s.key_name = k.as_str().map(str::to_string);
        }
        let target = if s.vm_state == "stopped" {
            "stopped"
        } else {
            "active"
        };
        let power = if target == "active" { 1 } else { 4 };
        s.fault = None;
        begin(os, s, "rebuilding", "rebuild", target, power);
    }
    let view = if cx.mv >= 75 {
        View::Detail { show: true }
    } else {
        View::Reduced
    };
    let mut v = server_view(os, st, &st.servers[idx], cx.mv, cx.admin(), view);
    v["adminPass"] = json!(admin_pass);
    if cx.mv >= 54 && cx.mv < 75 {
        v["key_name"] = json!(st.servers[idx].key_name);
    }
    if cx.mv >= 57 {
        v["user_data"] = json!(st.servers[idx].user_data);
    }
    Ok(json_resp(StatusCode::ACCEPTED, json!({"server": v})))
}

pub(super) fn create_image(os: &Os, st: &mut State, idx: usize, arg: &Value, cx: &Cx) -> R {
    let s = &st.servers[idx];
    if !["active", "stopped", "paused", "suspended"].contains(&s.vm_state.as_str())
        || s.task_state.is_some()
    {
        return Err(conflict(
            "createImage",
            s,
            if s.task_state.is_some() {
                "task_state"
            } else {
                "vm_state"
            },
        ));
    }
    let name = arg
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("createImage", arg, "'name' is a required property"))?
        .to_string();
    let meta: BTreeMap<String, Value> = arg
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let id = glance::snapshot(os, st, idx, &name, meta);
    if cx.mv >= 45 {
        return Ok(json_resp(StatusCode::ACCEPTED, json!({"image_id": id})));
    }
    let r = empty(StatusCode::ACCEPTED);
    Ok(with_header(
        r,
        "location",
        &format!("{}/v2/images/{id}", os.ctx.urls.image),
    ))
}

/// Note an instance action with its (first) event.
pub(super) fn record(
    s: &mut Server,
    action: &str,
    event: &str,
    caller: &Caller,
    finished: bool,
    now: i64,
) {
    s.actions.push(InstanceAction {
        action: action.to_string(),
        request_id: format!("req-{}", uuid::Uuid::new_v4()),
        user_id: caller.user_id.clone(),
        project_id: caller.project().to_string(),
        start_ms: now,
        updated_ms: now,
        message: None,
        events: vec![ActionEvent {
            event: event.to_string(),
            start_ms: now,
            finish_ms: finished.then_some(now),
            result: finished.then(|| "Success".to_string()),
            host: s.host.clone(),
        }],
    });
}

/// Finish the latest unfinished event of a server's actions.
pub(super) fn finish_event(s: &mut Server, at: i64, ok: bool) {
    let host = s.host.clone();
    if let Some(a) = s
        .actions
        .iter_mut()
        .rev()
        .find(|a| a.events.iter().any(|e| e.finish_ms.is_none()))
    {
        for e in a.events.iter_mut().filter(|e| e.finish_ms.is_none()) {
            e.finish_ms = Some(at);
            e.result = Some(if ok { "Success" } else { "Error" }.into());
            if e.host.is_none() {
                e.host = host.clone();
            }
        }
        a.updated_ms = at;
        if !ok {
            a.message = Some("Error".into());
        }
    }
}

pub(super) fn action_json(
    s: &Server,
    a: &InstanceAction,
    mv: u32,
    admin: bool,
    events: bool,
) -> Value {
    let mut v = json!({
        "action": a.action,
        "instance_uuid": s.id,
        "message": a.message,
        "project_id": a.project_id,
        "request_id": a.request_id,
        "start_time": iso_plain_us(a.start_ms),
        "user_id": a.user_id,
    });
    if mv >= 58 {
        v["updated_at"] = json!(iso_plain_us(a.updated_ms));
    }
    if events {
        let list: Vec<Value> = a
            .events
            .iter()
            .map(|e| {
                let mut ev = json!({
                    "event": e.event,
                    "start_time": iso_plain_us(e.start_ms),
                    "finish_time": e.finish_ms.map(iso_plain_us),
                    "result": e.result,
                });
                if admin {
                    ev["traceback"] = json!(if e.result.as_deref() == Some("Error") {
                        Some("Traceback (most recent call last): injected by the twin")
                    } else {
                        None
                    });
                }
                if mv >= 62 {
                    ev["hostId"] = json!(host_id(&s.project_id, e.host.as_deref()));
                    if admin {
                        ev["host"] = json!(e.host);
                    }
                }
                if mv >= 84 {
                    ev["details"] = json!(if e.result.as_deref() == Some("Error") {
                        s.fault.as_ref().map(|f| f.message.clone())
                    } else {
                        None
                    });
                }
                ev
            })
            .collect();
        v["events"] = json!(list);
    }
    v
}

/// The server, deleted ones included (their actions can be read from 2.21 on).
pub(super) fn find_server_any(st: &State, id: &str, cx: &Cx) -> Result<usize, Response> {
    st.servers
        .iter()
        .rposition(|s| {
            s.id == id
                && (!s.deleted || cx.mv >= 21)
                && (cx.admin() || s.project_id == cx.caller.project())
        })
        .ok_or_else(|| err(404, &format!("Instance {id} could not be found.")))
}

pub(super) fn actions_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_any(st, req.param("id"), cx)?;
    let s = &st.servers[idx];
    let mut items: Vec<&InstanceAction> = s.actions.iter().rev().collect();
    if cx.mv >= 58 {
        if let Some(since) = req.q("changes-since").and_then(parse_iso) {
            items.retain(|a| a.updated_ms >= since);
        }
        let path = format!("servers/{}/os-instance-actions", s.id);
        let (page, next) = paginate(
            os,
            req,
            items,
            |a| a.request_id.clone(),
            &path,
            |m| bad(&format!("Marker {m} could not be found.")),
        )?;
        let mut body = json!({"instanceActions": page.iter().map(|a| action_json(s, a, cx.mv, cx.admin(), false)).collect::<Vec<_>>()});
        if let Some(n) = next {
            body["links"] = n;
        }
        return Ok(json_resp(StatusCode::OK, body));
    }
    let list: Vec<Value> = items
        .iter()
        .map(|a| action_json(s, a, cx.mv, cx.admin(), false))
        .collect();
    Ok(json_resp(StatusCode::OK, json!({"instanceActions": list})))
}

pub(super) fn action_get_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let idx = find_server_any(st, req.param("id"), cx)?;
    let s = &st.servers[idx];
    let rid = req.param("req");
    let a = s
        .actions
        .iter()
        .find(|a| a.request_id == rid)
        .ok_or_else(|| {
            err(
                404,
                &format!("Action for request_id {rid} on instance {} not found", s.id),
            )
        })?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"instanceAction": action_json(s, a, cx.mv, cx.admin(), true)}),
    ))
}

/// Complete every pending transition due by `now`.
pub(crate) fn advance(os: &Os, st: &mut State, now: i64) {
    let due: Vec<usize> = st
        .servers
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.deleted && s.pending.as_ref().is_some_and(|p| p.at_ms <= now))
        .map(|(i, _)| i)
        .collect();
    for idx in due {
        let Some(p) = st.servers[idx].pending.take() else {
            continue;
        };
        let id = st.servers[idx].id.clone();
        let name = st.servers[idx].name.clone();
        let dc = os.ctx.name.clone();
        let faults = &os.ctx.shared.faults;
        let object_fault = |what: &str| -> bool {
            for key in [id.as_str(), name.as_str()] {
                if faults.peek_object(&dc, "openstack", key).as_deref() == Some(what) {
                    faults.take_object(&dc, "openstack", key);
                    return true;
                }
            }
            false
        };
        let fail = |st: &mut State, message: String, details: String| {
            let s = &mut st.servers[idx];
            finish_event(s, p.at_ms, false);
            s.vm_state = "error".into();
            s.task_state = None;
            s.updated_ms = p.at_ms;
            s.fault = Some(Fault {
                code: 500,
                message,
                details,
                created_ms: p.at_ms,
            });
        };
        match p.kind.as_str() {
            "build" if st.servers[idx].no_valid_host => {
                unclaim(st, &id);
                neutron::release_ports(st, &id);
                st.servers[idx].ports.clear();
                st.servers[idx].host = None;
                fail(
                    st,
                    "No valid host was found. There are not enough hosts available.".into(),
                    "Traceback (most recent call last):\n  nova.exception.NoValidHost: No valid host was found. There are not enough hosts available.\n".into(),
                );
            }
            "build" if object_fault("build_fails") => {
                unclaim(st, &id);
                neutron::release_ports(st, &id);
                st.servers[idx].ports.clear();
                st.servers[idx].host = None;
                fail(
                    st,
                    format!(
                        "Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance {id}."
                    ),
                    "nova.exception.MaxRetriesExceeded (injected by the twin: build_fails)".into(),
                );
            }
            kind @ ("migrate" | "live-migrate") => {
                let injected = object_fault("action_fails").then(|| {
                    format!("Action {kind} failed on instance {id} (injected by the twin)")
                });
                complete(st, idx, &p, injected, now);
            }
            kind if kind != "build" && object_fault("action_fails") => {
                fail(
                    st,
                    format!("Action {kind} failed on instance {id} (injected by the twin)"),
                    "injected by the twin: action_fails".into(),
                );
            }
            kind => {
                match kind {
                    "build" => {
                        st.servers[idx].launched_ms = Some(p.at_ms);
                        neutron::activate_ports(st, &id, now);
                    }
                    "shelve" => {
                        unclaim(st, &id);
                        st.servers[idx].host = None;
                    }
                    "unshelve" => {
                        let want =
                            flavor_resources(st, &st.servers[idx].flavor).unwrap_or_default();
                        match schedule(st, &want, None, None, None) {
                            Some(h) => {
                                let server = st.servers[idx].clone();
                                st.servers[idx].pci = claim(st, h, &server, &want, now);
                                st.servers[idx].host = Some(st.hosts[h].host.clone());
                                st.servers[idx].az = st.hosts[h].az.clone();
                            }
                            None => {
                                let s = &mut st.servers[idx];
                                s.vm_state = "shelved_offloaded".into();
                                s.task_state = None;
                                s.updated_ms = p.at_ms;
                                finish_event(s, p.at_ms, false);
                                continue;
                            }
                        }
                    }
                    "revert" if reverted(st, idx, now) => {
                        if let Some(old) = st.servers[idx].old_flavor.take() {
                            st.servers[idx].flavor = old;
                        }
                    }
                    "revert" => {
                        if let Some(old) = st.servers[idx].old_flavor.take() {
                            let want = flavor_resources(st, &old).unwrap_or_default();
                            unclaim(st, &id);
                            st.servers[idx].flavor = old;
                            let host = st.servers[idx].host.clone();
                            if let Some(h) = schedule(st, &want, None, host.as_deref(), None)
                                .or_else(|| schedule(st, &want, None, None, None))
                            {
                                let server = st.servers[idx].clone();
                                st.servers[idx].pci = claim(st, h, &server, &want, now);
                                st.servers[idx].host = Some(st.hosts[h].host.clone());
                                st.servers[idx].az = st.hosts[h].az.clone();
                            }
                        }
                    }
                    _ => {}
                }
                let s = &mut st.servers[idx];
                s.vm_state = p.vm_state.clone();
                s.task_state = p.task_state.clone();
                s.power_state = p.power_state;
                s.updated_ms = p.at_ms;
                finish_event(s, p.at_ms, true);
            }
        }
    }
}
