//! Schema conformance: every route the Proxmox VE simulator serves exists in the vendor's
//! published API schema (Proxmox VE 9.1, `apidata.js` as JSON) with the same method and
//! the same parameters, and the running simulator enforces them: required parameters
//! are required, unknown ones rejected, integers, booleans and enumerations checked.
//!
//! The schema is the repository's copy (`testdata/api-schemas/`, see its README); a
//! missing file fails the test.

// Test code: a panic is the failure report, so unwrapping is fine here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::Value;
use strata_twin::proxmox::{ROUTES, route_params};
use strata_twin::{DcSeed, FaultSpec, SeedStorage, TwinOptions};

const SCHEMA_FILE: &str = "api-schemas/proxmox-ve-9.1-api.json";

fn schema() -> Value {
    let text = strata_testkit::read_testdata(SCHEMA_FILE);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{SCHEMA_FILE}: {e}"))
}

/// path → method → method info.
fn index(schema: &Value) -> BTreeMap<String, BTreeMap<String, Value>> {
    fn walk(node: &Value, out: &mut BTreeMap<String, BTreeMap<String, Value>>) {
        match node {
            Value::Array(items) => items.iter().for_each(|n| walk(n, out)),
            Value::Object(o) => {
                if let (Some(path), Some(info)) = (
                    o.get("path").and_then(Value::as_str),
                    o.get("info").and_then(Value::as_object),
                ) {
                    let entry = out.entry(path.to_string()).or_default();
                    for (m, i) in info {
                        entry.insert(m.clone(), i.clone());
                    }
                }
                if let Some(c) = o.get("children") {
                    walk(c, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(schema, &mut out);
    out
}

fn properties(info: &Value) -> BTreeMap<String, Value> {
    info["parameters"]["properties"]
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn is_optional(p: &Value) -> bool {
    p["optional"].as_i64() == Some(1) || p["optional"].as_bool() == Some(true)
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(String::from)
        .collect()
}

#[test]
fn every_route_and_parameter_is_in_the_vendor_schema() {
    let schema = schema();
    let idx = index(&schema);
    let mut problems = Vec::new();
    for (method, path) in ROUTES {
        let Some(info) = idx.get(*path).and_then(|m| m.get(*method)) else {
            problems.push(format!("{method} {path}: not in the schema"));
            continue;
        };
        let theirs = properties(info);
        let ours: BTreeMap<String, bool> = route_params(method, path)
            .expect("route params")
            .into_iter()
            .collect();
        for (name, p) in &theirs {
            match ours.get(name) {
                None => problems.push(format!(
                    "{method} {path}: schema parameter `{name}` not accepted"
                )),
                Some(required) if *required == is_optional(p) => problems.push(format!(
                    "{method} {path}: `{name}` is {} in the schema",
                    if is_optional(p) {
                        "optional"
                    } else {
                        "required"
                    }
                )),
                _ => {}
            }
        }
        for name in ours.keys() {
            if !theirs.contains_key(name) {
                problems.push(format!("{method} {path}: `{name}` is not in the schema"));
            }
        }
        for pp in path_params(path) {
            if theirs.get(&pp).is_none_or(is_optional) {
                problems.push(format!(
                    "{method} {path}: path parameter `{pp}` is not a required schema parameter"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!(
        "{} Proxmox VE routes and their parameters checked against {SCHEMA_FILE}",
        ROUTES.len()
    );
}

/// Values for path parameters that exist in a fresh twin.
fn fill(path: &str) -> String {
    path.replace("{node}", "pve1")
        .replace("{vmid}", "9000")
        .replace(
            "{upid}",
            "UPID:pve1:00001234:00ABCDEF:6A000000:qmstart:9000:root@pam:",
        )
        .replace("{sid}", "vm:9000")
        .replace("{storage}", "ceph-vm")
        .replace("{poolid}", "pool1")
}

/// A value of the wrong type (or outside the enumeration) for a schema parameter, and
/// the start of the error PVE gives for it.
fn wrong_value(p: &Value) -> Option<(&'static str, String)> {
    if let Some(e) = p["enum"].as_array() {
        let _ = e;
        return Some((
            "zzz-not-listed",
            "value 'zzz-not-listed' does not have a value in the enumeration".into(),
        ));
    }
    match p["type"].as_str()? {
        "integer" => Some(("x1", "type check ('integer') failed - got 'x1'".into())),
        "boolean" => Some(("yes", "type check ('boolean') failed - got 'yes'".into())),
        "number" => Some(("x1", "type check ('number') failed - got 'x1'".into())),
        _ => None,
    }
}

#[tokio::test]
async fn the_simulator_enforces_the_schema() {
    let schema = schema();
    let idx = index(&schema);
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![DcSeed {
            name: "fra1".into(),
            proxmox_nodes: vec!["pve1".into(), "pve2".into()],
            proxmox_storages: vec![SeedStorage {
                name: "ceph-vm".into(),
                kind: "rbd".into(),
                content: vec!["images".into()],
            }],
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 1,
        timing: Default::default(),
    })
    .await
    .unwrap();
    let doc = twin.endpoints();
    let p = &doc["dcs"][0]["proxmox"];
    let base = format!("{}/api2/json", p["url"].as_str().unwrap());
    let token = format!(
        "PVEAPIToken={}={}",
        p["token_id"].as_str().unwrap(),
        p["token_secret"].as_str().unwrap()
    );
    let ca = reqwest::Certificate::from_pem(twin.state.ca_pem.as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();

    let send = |method: &str, path: &str, params: Vec<(String, String)>| {
        let url = format!("{base}{}", fill(path));
        let req = match method {
            "GET" => http.get(url).query(&params),
            "DELETE" => http.delete(url).query(&params),
            "PUT" => http.put(url).form(&params),
            _ => http.post(url).form(&params),
        };
        let req = req.header("Authorization", &token);
        async move {
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };

    let mut problems = Vec::new();
    let mut checked = 0;
    for (method, path) in ROUTES {
        let info = &idx[*path][*method];
        let props = properties(info);
        let in_path = path_params(path);
        // Unknown parameters are refused.
        let (status, body) = send(method, path, vec![("not-a-parameter".into(), "1".into())]).await;
        if status != 400
            || body["errors"]["not-a-parameter"]
                .as_str()
                .is_none_or(|e| !e.contains("not defined in schema"))
        {
            problems.push(format!(
                "{method} {path}: unknown parameter not refused ({status} {body})"
            ));
        }
        // Required parameters are required.
        let required: Vec<&String> = props
            .iter()
            .filter(|(n, p)| !is_optional(p) && !in_path.contains(n))
            .map(|(n, _)| n)
            .collect();
        if !required.is_empty() {
            let (status, body) = send(method, path, vec![]).await;
            for name in &required {
                if status != 400
                    || body["errors"][name.as_str()] != "property is missing and it is not optional"
                {
                    problems.push(format!(
                        "{method} {path}: `{name}` not required ({status} {body})"
                    ));
                }
            }
        }
        // Types and enumerations are checked.
        for (name, prop) in &props {
            if in_path.contains(name) || name.contains("[n]") {
                continue;
            }
            let Some((value, want)) = wrong_value(prop) else {
                continue;
            };
            checked += 1;
            let (status, body) = send(method, path, vec![(name.clone(), value.to_string())]).await;
            let got = body["errors"][name.as_str()].as_str().unwrap_or_default();
            if status != 400 || !got.starts_with(&want) {
                problems.push(format!(
                    "{method} {path}: `{name}={value}` gave {status} `{got}`, want `{want}`"
                ));
            }
        }
    }
    assert!(checked > 100, "only {checked} typed parameters checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    twin.shutdown().await.unwrap();
}
