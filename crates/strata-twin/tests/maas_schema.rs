//! Schema conformance: every route and `op` the twin's MAAS serves exists in the
//! vendor's OpenAPI document (MAAS HTTP API 2.0, where `POST .../machines/{system_id}/?op=deploy`
//! appears as `/machines/{system_id}/op-deploy`) with the same method and the same path
//! parameters; and the running twin really answers each of them (no 405, no
//! "Unrecognised signature").
//!
//! The schema is the repository's copy (`testdata/api-schemas/`, see its README); a
//! missing file fails the test.

use std::net::SocketAddr;

use serde_json::Value;
use strata_twin::maas::{META_ROUTES, routes};
use strata_twin::{DcSeed, FaultSpec, SeedMachine, TwinOptions};

const SCHEMA_FILE: &str = "api-schemas/maas-2.0-openapi.yaml";

fn schema() -> Value {
    let text = strata_testkit::read_testdata(SCHEMA_FILE);
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{SCHEMA_FILE}: {e}"))
}

/// The OpenAPI path of a route: `?op=x` becomes the `op-x` path suffix.
fn schema_path(path: &str, op: Option<&str>) -> String {
    match op {
        Some(op) => format!("{path}op-{op}"),
        None => path.to_string(),
    }
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_route_is_in_the_vendor_schema() {
    let schema = schema();
    let paths = schema["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    let served = routes();
    assert!(served.len() > 80, "{} routes", served.len());
    for r in &served {
        let key = schema_path(&r.path, r.op);
        let Some(item) = paths.get(&key) else {
            missing.push(format!("{} {key} (no such path)", r.method));
            continue;
        };
        let method = r.method.as_str().to_ascii_lowercase();
        let Some(op) = item.get(&method) else {
            missing.push(format!("{} {key} (path exists, method doesn't)", r.method));
            continue;
        };
        // Path parameters the schema declares (on the path item or the operation) are
        // the ones in our template.
        let declared: Vec<String> = [item.get("parameters"), op.get("parameters")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        for p in &declared {
            assert!(
                path_params(&r.path).contains(p),
                "{} {key}: schema path parameter {p} not in our template",
                r.method
            );
        }
    }
    assert!(
        missing.is_empty(),
        "routes not in {SCHEMA_FILE}:\n{}",
        missing.join("\n")
    );
    eprintln!("{} MAAS routes checked against {SCHEMA_FILE}", served.len());
    // The unversioned/anonymous meta routes are deliberately outside the 2.0 schema.
    for (_, p) in META_ROUTES {
        let key = p.trim_start_matches("/api/2.0");
        assert!(!paths.contains_key(key), "{p} unexpectedly in the schema");
    }
}

#[tokio::test]
async fn the_twin_answers_every_listed_route() {
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![DcSeed {
            name: "fra1".into(),
            machines: vec![SeedMachine {
                serial: "S1".into(),
                pxe_mac: "52:54:00:00:00:01".into(),
                cpu_count: 8,
                memory_mib: 8192,
                storage_gb: 100,
                ..SeedMachine::default()
            }],
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 3,
        timing: Default::default(),
    })
    .await
    .expect("start");
    let doc = twin.endpoints();
    let url = doc["dcs"][0]["maas"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let key = doc["dcs"][0]["maas"]["api_key"]
        .as_str()
        .expect("key")
        .to_string();
    let mut k = key.splitn(3, ':');
    let (ck, tk, secret) = (
        k.next().expect("ck"),
        k.next().expect("tk"),
        k.next().expect("s"),
    );
    let auth = format!(
        r#"OAuth oauth_version="1.0", oauth_signature_method="PLAINTEXT", oauth_consumer_key="{ck}", oauth_token="{tk}", oauth_signature="&{secret}", oauth_nonce="x", oauth_timestamp="1""#
    );
    let http = reqwest::Client::new();
    for r in routes() {
        // Placeholder values: the answer may be 404/400/409, but never "no such route".
        let path = r
            .path
            .replace("{system_id}", "xxxxxx")
            .replace("{fabric_id}", "0")
            .replace("{device_id}", "999")
            .replace("{vid}", "0")
            .replace("{id}", "999")
            .replace("{name}", "nope")
            .replace("{username}", "admin");
        let mut u = format!("{url}api/2.0{path}");
        if let Some(op) = r.op {
            u.push_str(&format!("?op={op}"));
        }
        let method = reqwest::Method::from_bytes(r.method.as_str().as_bytes()).expect("method");
        let resp = http
            .request(method, &u)
            .header("Authorization", &auth)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status != 405
                && !(status == 404 && body == "Not Found")
                && !body.starts_with("Unrecognised signature"),
            "{} {u}: {status} {body}",
            r.method
        );
    }
    for (m, p) in META_ROUTES {
        let r = http
            .request(
                reqwest::Method::from_bytes(m.as_bytes()).expect("m"),
                format!("{url}{}", p.trim_start_matches('/')),
            )
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 200, "{m} {p}");
    }
    twin.shutdown().await.expect("shutdown");
}
