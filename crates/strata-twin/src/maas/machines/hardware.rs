//! A node's hardware sub-resources: PCI/USB devices, commissioning and testing script
//! results (with their output downloads).

use axum::response::IntoResponse;

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

/// The output a builtin script's result shows, generated from the hardware MAAS
/// knows (the twin does not run the builtins): `50-maas-01-commissioning` and
/// `20-maas-03-machine-resources` print the machine-resources document, `maas-lshw`
/// lshw's XML, `maas-capture-lldpd` lldpd's.
pub(super) fn script_output(m: &Machine, name: &str) -> String {
    let Some(hw) = m.reported.as_ref() else {
        return String::new();
    };
    match name {
        "maas-lshw" => super::super::bson::lshw_xml(m, hw),
        "20-maas-03-machine-resources" | "50-maas-01-commissioning" => {
            serde_json::to_string_pretty(&super::super::bson::machine_resources(m, hw))
                .unwrap_or_default()
        }
        "maas-capture-lldpd" => super::super::bson::lldp_xml(m),
        "smartctl-validate" => "SMART support is: Available\nSMART overall-health self-assessment test result: PASSED\n".into(),
        _ => String::new(),
    }
}

/// A result's streams as MAAS stores them: (combined output, stdout, stderr, result
/// YAML). A script the twin ran has them captured; a builtin's passed run shows its
/// generated output on stdout.
pub(super) fn streams(m: &Machine, res: &ScriptResult) -> (String, String, String, String) {
    if res.captured {
        return (
            res.output.clone(),
            res.stdout.clone(),
            res.stderr.clone(),
            res.result.clone(),
        );
    }
    let out = if res.status == script_status::PASSED {
        script_output(m, &res.name)
    } else {
        String::new()
    };
    (out.clone(), out, String::new(), String::new())
}

/// The results of a set a request picks (`filters`: names, tags or ids;
/// `hardware_type`), sorted by name as MAAS sorts them (canonical/maas
/// src/maasserver/api/scriptresults.py `filter_script_results`).
pub(super) fn picked<'a>(
    st: &State,
    set: &'a ScriptSet,
    filters: &[String],
    hardware_type: Option<u8>,
) -> Vec<&'a ScriptResult> {
    let tags_of = |res: &ScriptResult| -> Vec<String> {
        res.script_id
            .and_then(|id| {
                super::super::scripts::all(st)
                    .into_iter()
                    .find(|s| s.id == id)
            })
            .map(|s| s.tags)
            .unwrap_or_default()
    };
    let mut out: Vec<&ScriptResult> = set
        .results
        .iter()
        .filter(|res| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    *f == res.name
                        || f.parse::<u64>().ok() == Some(res.id)
                        || tags_of(res).contains(f)
                })
        })
        .filter(|res| {
            hardware_type.is_none_or(|t| res.script_id.is_some() && res.hardware_type == t)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The `hardware_type` parameter of a results request.
pub(super) fn hardware_type_param(r: &Req) -> Result<Option<u8>, Response> {
    match r.params.get("hardware_type") {
        None => Ok(None),
        Some(t) => super::super::scripts::translate_hardware_type(t)
            .map(Some)
            .map_err(|e: String| bad_request(&e)),
    }
}

pub(super) fn script_set_json(
    s: &Maas,
    st: &State,
    m: &Machine,
    set: &ScriptSet,
    include_output: bool,
    filters: &[String],
    hardware_type: Option<u8>,
) -> Value {
    use base64::Engine;
    let b64 = |x: &str| base64::engine::general_purpose::STANDARD.encode(x.as_bytes());
    let fmt = |t: Option<u64>| t.map(format_time);
    let results: Vec<Value> = picked(st, set, filters, hardware_type)
        .into_iter()
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
                "script_id": res.script_id,
                "script_revision_id": res.script_revision_id,
                "suppressed": false,
            });
            if include_output && let Some(o) = v.as_object_mut() {
                let (output, stdout, stderr, result) = streams(m, res);
                o.insert("output".into(), json!(b64(&output)));
                o.insert("stdout".into(), json!(b64(&stdout)));
                o.insert("stderr".into(), json!(b64(&stderr)));
                o.insert("result".into(), json!(b64(&result)));
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
    let hardware_type = match hardware_type_param(r) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let out: Vec<Value> = sets(m)
        .into_iter()
        .filter(|set| want.is_none_or(|t| set.result_type == t))
        .map(|set| script_set_json(s, st, m, set, include, &filters, hardware_type))
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
    let hardware_type = match hardware_type_param(r) {
        Ok(t) => t,
        Err(e) => return e,
    };
    match find_set(m, r.path("id")) {
        Ok(set) => ok(script_set_json(
            s,
            st,
            m,
            set,
            r.params.has("include_output"),
            &r.params.list("filters"),
            hardware_type,
        )),
        Err(e) => e,
    }
}

/// `op=download`: the outputs of a set's results (`output`: `combined`, `stdout`,
/// `stderr`, `result` or `all`), one file raw, several as MAAS's text bundle with a
/// dashed title line each (`filetype=txt`; the twin does not build `tar.xz`).
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
    let hardware_type = match hardware_type_param(r) {
        Ok(t) => t,
        Err(e) => return e,
    };
    match r.params.get("filetype").unwrap_or("txt") {
        "txt" => {}
        "tar.xz" => {
            return bad_request("The twin does not build tar.xz downloads: use filetype=txt.");
        }
        other => {
            return bad_request(&format!(
                "Unknown filetype \"{other}\" must be txt or tar.xz"
            ));
        }
    }
    let output = r.params.get("output").unwrap_or("combined");
    let mut files: Vec<(String, String)> = Vec::new();
    for res in picked(st, set, &r.params.list("filters"), hardware_type) {
        let (combined, stdout, stderr, result) = streams(m, res);
        let name = &res.name;
        match output {
            "combined" => files.push((name.clone(), combined)),
            "stdout" => files.push((format!("{name}.out"), stdout)),
            "stderr" => files.push((format!("{name}.err"), stderr)),
            "result" => files.push((format!("{name}.yaml"), result)),
            "all" => {
                files.push((name.clone(), combined));
                files.push((format!("{name}.out"), stdout));
                files.push((format!("{name}.err"), stderr));
                files.push((format!("{name}.yaml"), result));
            }
            _ => {}
        }
    }
    let text = if files.len() == 1 {
        files.remove(0).1
    } else {
        files
            .iter()
            .map(|(title, content)| {
                let dashes =
                    "-".repeat(((80.0 - (2 + title.len()) as f64) / 2.0).max(0.0) as usize);
                format!("{dashes} {title} {dashes}\n{content}\n")
            })
            .collect()
    };
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/binary")],
        text,
    )
        .into_response()
}
