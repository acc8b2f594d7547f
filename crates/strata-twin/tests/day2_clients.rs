//! Day-2 workflows against the twin with real clients: proxmoxer migrates a guest and
//! takes, rolls back and deletes a snapshot (`tests/clients/proxmoxer_lifecycle.py`);
//! the `openstack` CLI and openstacksdk disable a compute service, cold- and
//! live-migrate a server off its host and enable the service again
//! (`tests/clients/openstack_decommission.py`); proxmoxer removes a node from the
//! cluster (`cluster.config.nodes(name).delete()`) and openstacksdk a compute service
//! (`conn.compute.delete_service`), each after the vendor's refusals
//! (`tests/clients/platform_removal.py`).
//!
//! Needs the tools venv (`scripts/install-test-deps.sh`, default `/opt/strata-tools`,
//! or `$STRATA_TOOLS_VENV`). Set `STRATA_SKIP_CLIENT_TESTS=1` to skip; otherwise a
//! missing tool is a failure.

#[path = "openstack_support.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use strata_twin::{DcSeed, FaultSpec, SeedStorage, TwinOptions};

fn skip(what: &str) -> bool {
    if strata_testkit::OptOut::Clients.is_set() {
        strata_testkit::skip_note(strata_testkit::OptOut::Clients, what);
        return true;
    }
    false
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// The venv's python, able to import `module` (a failure otherwise).
fn python_with(module: &str) -> PathBuf {
    let py = strata_testkit::venv_bin("python");
    let probe = Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .output();
    match probe {
        Ok(o) if o.status.success() => py,
        _ => panic!(
            "{} cannot import {module}: run scripts/install-test-deps.sh (or set STRATA_SKIP_CLIENT_TESTS=1)",
            py.display()
        ),
    }
}

/// Run a client script on the twin's endpoints document (off the runtime that serves
/// the twin); its stdout.
async fn run(cmd: Command, what: &'static str) -> String {
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = cmd;
        cmd.output()
    });
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
        .expect("join")
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    eprintln!("{what}:\n{stdout}");
    stdout
}

fn last_json(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no JSON summary ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_migrates_and_snapshots() {
    if skip("the proxmoxer day-2 check") {
        return;
    }
    let python = python_with("proxmoxer");
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![DcSeed {
            name: "fra1".into(),
            proxmox_nodes: vec!["fra1-pve1".into(), "fra1-pve2".into(), "fra1-pve3".into()],
            proxmox_storages: vec![SeedStorage {
                name: "ceph-vm".into(),
                kind: "rbd".into(),
                content: vec!["images".into()],
            }],
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 13,
        timing: Default::default(),
    })
    .await
    .expect("twin");
    let dir = tempfile::tempdir().expect("tmp");
    let endpoints = dir.path().join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");
    let mut cmd = Command::new(&python);
    cmd.arg(script("proxmoxer_lifecycle.py")).arg(&endpoints);
    let stdout = run(cmd, "proxmoxer_lifecycle.py").await;
    let summary = last_json(&stdout);
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["migrated"]["from"], "fra1-pve1", "{summary}");
    assert_eq!(summary["snapshots"], "ok");
    twin.shutdown().await.expect("shutdown");
}

fn tool(name: &str) -> PathBuf {
    let p = strata_testkit::venv_bin(name);
    assert!(
        Path::new(&p).exists(),
        "`{name}` is not installed in {}: run scripts/install-test-deps.sh, or set STRATA_SKIP_CLIENT_TESTS=1 to skip",
        strata_testkit::tools_venv().display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_and_sdk_decommission_a_compute_host() {
    if skip("the OpenStack decommission check") {
        return;
    }
    let python = python_with("openstack");
    let osc = tool("openstack");
    let twin = support::start_system_clock(&["fra1"]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let endpoints = dir.path().join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");
    let mut cmd = Command::new(&python);
    cmd.arg(script("openstack_decommission.py"))
        .arg(&endpoints)
        .arg("fra1")
        .env("OPENSTACK", &osc);
    let stdout = run(cmd, "openstack_decommission.py").await;
    let summary = last_json(&stdout);
    assert_eq!(summary["ok"], true, "{summary}");
    assert_ne!(summary["source"], summary["cold"]);
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_and_openstacksdk_remove_a_node_and_a_compute_service() {
    if skip("the node and compute service removal check") {
        return;
    }
    let python = python_with("proxmoxer");
    python_with("openstack");
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![DcSeed {
            name: "fra1".into(),
            proxmox_nodes: vec!["fra1-pve1".into(), "fra1-pve2".into(), "fra1-pve3".into()],
            proxmox_storages: vec![SeedStorage {
                name: "ceph-vm".into(),
                kind: "rbd".into(),
                content: vec!["images".into()],
            }],
            kolla_config: support::kolla_config("fra1"),
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 17,
        timing: Default::default(),
    })
    .await
    .expect("twin");
    let dir = tempfile::tempdir().expect("tmp");
    let endpoints = dir.path().join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");
    let mut cmd = Command::new(&python);
    cmd.arg(script("platform_removal.py")).arg(&endpoints);
    let stdout = run(cmd, "platform_removal.py").await;
    let summary = last_json(&stdout);
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["proxmox"]["removed"], "fra1-pve3", "{summary}");
    assert_ne!(
        summary["openstack"]["refused"], summary["openstack"]["deleted"],
        "{summary}"
    );
    twin.shutdown().await.expect("shutdown");
}
