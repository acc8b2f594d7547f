//! The Proxmox VE simulator driven by a real third-party client: proxmoxer (Python),
//! through `scripts/clients/proxmoxer_check.py`, against a twin of two DCs.
//!
//! Needs the tools venv (`scripts/install-test-deps.sh`, default `/opt/strata-tools`,
//! or `$STRATA_TOOLS_VENV`). Set `STRATA_SKIP_CLIENT_TESTS=1` to skip.

// Test code: a panic is the failure report, so unwrapping is fine here.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use strata_twin::{DcSeed, FaultSpec, SeedStorage, TwinOptions};

fn venv_python() -> PathBuf {
    strata_testkit::venv_bin("python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_drives_the_twin() {
    if strata_testkit::OptOut::Clients.is_set() {
        strata_testkit::skip_note(strata_testkit::OptOut::Clients, "the proxmoxer check");
        return;
    }
    let python = venv_python();
    let probe = tokio::process::Command::new(&python)
        .args(["-c", "import proxmoxer, requests"])
        .output()
        .await;
    match probe {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "{} cannot import proxmoxer: run scripts/install-test-deps.sh (or set STRATA_SKIP_CLIENT_TESTS=1)",
            python.display()
        ),
    }

    let dc = |name: &str, nodes: &[&str]| DcSeed {
        name: name.into(),
        proxmox_nodes: nodes.iter().map(|n| n.to_string()).collect(),
        proxmox_storages: vec![SeedStorage {
            name: "ceph-vm".into(),
            kind: "rbd".into(),
            content: vec!["images".into()],
        }],
        extra_vms: 3,
        ..DcSeed::default()
    };
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![
            dc("fra1", &["fra1-pve1", "fra1-pve2"]),
            dc("ams1", &["ams1-pve1", "ams1-pve2", "ams1-pve3"]),
        ],
        listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 11,
        timing: Default::default(),
    })
    .await
    .expect("twin");
    let dir = tempfile::tempdir().unwrap();
    let endpoints = dir.path().join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");

    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/clients/proxmoxer_check.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&endpoints)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("proxmoxer check timed out")
        .expect("run the proxmoxer check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "proxmoxer check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("{stdout}");
    let summary: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout}"));
    assert_eq!(summary["ok"], true, "{summary}");
    let dcs = summary["dcs"].as_array().expect("dcs");
    assert_eq!(dcs.len(), 2, "{summary}");
    for d in dcs {
        let runs = d["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["auth"], "token");
        assert_eq!(runs[1]["auth"], "ticket");
        assert!(runs.iter().all(|r| r["status"] == "running"), "{d}");
    }
    assert_eq!(dcs[1]["runs"][0]["nodes"].as_array().unwrap().len(), 3);
    twin.shutdown().await.unwrap();
}
