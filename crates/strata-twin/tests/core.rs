//! The twin's shell: listeners, admin API, endpoints document, TLS, persistence.

use std::net::SocketAddr;

use strata_twin::{DcSeed, FaultSpec, TwinOptions};

fn opts(dcs: &[&str]) -> TwinOptions {
    TwinOptions {
        dcs: dcs
            .iter()
            .map(|n| DcSeed {
                name: n.to_string(),
                proxmox_nodes: vec!["pve1".into()],
                ..DcSeed::default()
            })
            .collect(),
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 1,
        timing: Default::default(),
    }
}

fn client(ca_pem: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("client")
}

#[tokio::test]
async fn admin_api_endpoints_and_tls() {
    let twin = strata_twin::start(opts(&["fra1", "ams1"]))
        .await
        .expect("start");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("endpoints.json");
    twin.write_endpoints(&file).expect("write");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    assert_eq!(doc["dcs"].as_array().map(Vec::len), Some(2));
    let fra1 = &doc["dcs"][0];
    assert_eq!(fra1["name"], "fra1");
    assert!(
        fra1["maas"]["api_key"]
            .as_str()
            .is_some_and(|k| k.split(':').count() == 3)
    );
    assert!(
        fra1["proxmox"]["token_id"]
            .as_str()
            .is_some_and(|t| t.contains('!'))
    );
    assert!(
        fra1["proxmox"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://"))
    );
    assert!(dir.path().join("twin-ca.pem").exists());
    let clouds = std::fs::read_to_string(dir.path().join("clouds.yaml")).expect("clouds.yaml");
    assert!(
        clouds.contains("\"fra1\":") && clouds.contains("\"ams1\":"),
        "{clouds}"
    );

    let http = reqwest::Client::new();
    let admin = format!("http://{}/_twin", twin.addr);
    let health: serde_json::Value = http
        .get(format!("{admin}/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["ok"], true);
    // The Proxmox listener speaks TLS with a certificate the CA vouches for.
    let pve = fra1["proxmox"]["url"].as_str().expect("url");
    let r = client(&std::fs::read_to_string(dir.path().join("twin-ca.pem")).expect("ca"))
        .get(format!("{pve}/api2/json/version"))
        .send()
        .await
        .expect("TLS handshake with the twin's CA");
    assert!(r.status().as_u16() < 600);
    // Without the CA the certificate is refused.
    assert!(
        reqwest::Client::new()
            .get(format!("{pve}/api2/json/version"))
            .send()
            .await
            .is_err()
    );
    // Runtime fault control.
    let spec: serde_json::Value = http
        .put(format!("{admin}/faults"))
        .json(&serde_json::json!({"5xx": 0.5}))
        .send()
        .await
        .expect("put")
        .json()
        .await
        .expect("json");
    assert_eq!(spec["5xx"], 0.5);
    let metrics = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    twin.shutdown().await.expect("shutdown");
}
