//! The twin's MAAS against the real python-libmaas client
//! (`scripts/clients/libmaas_check.py`, run with the test-tools venv).
//!
//! Set `STRATA_SKIP_CLIENT_TESTS=1` to skip; otherwise a missing venv or library is a
//! failure (install them with `scripts/install-test-deps.sh`). `STRATA_TOOLS_VENV`
//! selects another venv (default `/opt/strata-tools`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use strata_twin::{DcSeed, FaultSpec, SeedGpu, SeedMachine, TwinOptions};

use strata_testkit::repo_root;

fn python() -> PathBuf {
    strata_testkit::venv_bin("python")
}

fn skip() -> bool {
    strata_testkit::OptOut::Clients.is_set()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_libmaas_drives_the_lifecycle() {
    if skip() {
        strata_testkit::skip_note(strata_testkit::OptOut::Clients, "the python-libmaas check");
        return;
    }
    let py = python();
    assert!(
        py.exists(),
        "{} not found: run scripts/install-test-deps.sh (or set STRATA_TOOLS_VENV, or STRATA_SKIP_CLIENT_TESTS=1 to skip)",
        py.display()
    );
    let probe = tokio::process::Command::new(&py)
        .args(["-c", "import maas.client, bson"])
        .output()
        .await
        .expect("run python");
    assert!(
        probe.status.success(),
        "python-libmaas is not importable from {}: run scripts/install-test-deps.sh\n{}",
        py.display(),
        String::from_utf8_lossy(&probe.stderr)
    );

    let machines: Vec<SeedMachine> = (0..4)
        .map(|i| SeedMachine {
            serial: format!("LIBMAAS{i:03}"),
            pxe_mac: format!("52:54:00:1b:00:{i:02x}"),
            cpu_count: 32,
            memory_mib: 131072,
            storage_gb: 960,
            nics: vec!["eno1".into(), "eno2".into()],
            gpus: if i == 3 {
                vec![SeedGpu {
                    model: "L40S".into(),
                    vendor_id: "10de".into(),
                    device_id: "26b9".into(),
                    pcie_gen: 4,
                    pcie_width: 16,
                    numa_node: 1,
                }]
            } else {
                vec![]
            },
            zone: None,
            ..SeedMachine::default()
        })
        .collect();
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![DcSeed {
            name: "ams1".into(),
            machines,
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 7,
    })
    .await
    .expect("start");
    let dir = tempfile::tempdir().expect("tmp");
    let endpoints = dir.path().join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");

    let script = repo_root().join("scripts/clients/libmaas_check.py");
    let child = tokio::process::Command::new(&py)
        .arg(&script)
        .arg(&endpoints)
        .env("PYTHONWARNINGS", "default")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), child)
        .await
        .expect("libmaas_check.py timed out")
        .expect("run libmaas_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "libmaas_check.py failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    eprintln!("libmaas_check.py:\n{stdout}{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("summary JSON");
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["machines"], 4);
    assert_eq!(summary["released"], "READY");
    assert_eq!(summary["deployed"]["status"], "DEPLOYED");
    assert_eq!(summary["deployed"]["distro_series"], "noble");
    assert_eq!(summary["impossible_allocation"], "refused");

    // The machine the client drove is back to Ready, untagged by release.
    let sid = summary["machine"]["system_id"].as_str().expect("system_id");
    let s = twin.state.service("ams1", "maas").expect("maas").summary();
    assert_eq!(s["machines"]["by_status"]["Ready"], 1, "{s} ({sid})");
    twin.shutdown().await.expect("shutdown");
}
