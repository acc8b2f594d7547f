//! A node's hardware sub-resources: PCI/USB devices, commissioning and testing script
//! results (with their output downloads).

use super::*;

pub(super) fn node_or_404(st: &State, sid: &str) -> Result<(), Response> {
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

pub(super) fn result_type_of(t: &str) -> Option<u8> {
    match t.to_ascii_lowercase().as_str() {
        "commissioning" | "0" => Some(0),
        "installation" | "installion" | "deployment" | "1" => Some(1),
        "testing" | "test" | "2" => Some(2),
        "release" | "3" => Some(3),
        _ => None,
    }
}

pub(super) fn script_output(m: &Machine, name: &str) -> String {
    let Some(hw) = m.reported.as_ref() else {
        return String::new();
    };
    match name {
        "maas-lshw" => super::super::bson::lshw_xml(m, hw),
        "20-maas-03-machine-resources" => serde_json::to_string_pretty(&super::super::bson::machine_resources(m, hw)).unwrap_or_default(),
        "maas-capture-lldpd" => super::super::bson::lldp_xml(m),
        "50-maas-01-commissioning" => format!("Commissioning {} finished\n", m.hostname),
        "smartctl-validate" => "SMART support is: Available\nSMART overall-health self-assessment test result: PASSED\n".into(),
        _ => String::new(),
    }
}

pub(super) fn script_set_json(
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

pub(super) fn sets(m: &Machine) -> Vec<&ScriptSet> {
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

pub(super) fn find_set<'a>(m: &'a Machine, id: &str) -> Result<&'a ScriptSet, Response> {
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
