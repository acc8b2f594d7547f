//! Real OpenStack clients against the twin: the `openstack` CLI and openstacksdk, driven by
//! `scripts/clients/openstack_check.sh` and `scripts/clients/openstacksdk_check.py` over the
//! endpoints document and clouds.yaml the twin writes.
//!
//! Set `STRATA_SKIP_CLIENT_TESTS=1` to skip; otherwise missing tools are a failure.

#[path = "openstack_support.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;

fn repo_root() -> PathBuf {
    strata_testkit::repo_root()
        .canonicalize()
        .expect("repo root")
}

fn skip() -> bool {
    if strata_testkit::OptOut::Clients.is_set() {
        strata_testkit::skip_note(
            strata_testkit::OptOut::Clients,
            "the OpenStack client checks",
        );
        return true;
    }
    false
}

fn tool(name: &str) -> PathBuf {
    let p = strata_testkit::venv_bin(name);
    if p.exists() {
        return p;
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let c = dir.join(name);
            if c.exists() {
                return c;
            }
        }
    }
    panic!(
        "`{name}` is not installed (looked in {} and PATH): run scripts/install-test-deps.sh, or set STRATA_SKIP_CLIENT_TESTS=1 to skip",
        strata_testkit::tools_venv().join("bin").display()
    );
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    eprintln!("{what}:\n{stdout}");
}

fn path_with_tools() -> String {
    format!(
        "{}:{}",
        strata_testkit::tools_venv().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_against_the_twin() {
    if skip() {
        return;
    }
    let osc = tool("openstack");
    let twin = support::start_system_clock(&["fra1", "ams1"]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let endpoints = dir.path().join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");
    let script = repo_root().join("scripts/clients/openstack_check.sh");
    let ep = endpoints.clone();
    let env_path = path_with_tools();
    // The CLI blocks; run it off the runtime that serves the twin.
    tokio::task::spawn_blocking(move || {
        for dc in ["fra1", "ams1"] {
            run(
                Command::new("bash")
                    .arg(&script)
                    .arg(&ep)
                    .arg(dc)
                    .env("OPENSTACK", &osc)
                    .env("PATH", &env_path)
                    .env("VLAN", "1001"),
                &format!("openstack_check.sh {dc}"),
            );
        }
    })
    .await
    .expect("join");
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstacksdk_against_the_twin() {
    if skip() {
        return;
    }
    let python = tool("python");
    let check = Command::new(&python)
        .args(["-c", "import openstack"])
        .output()
        .expect("python");
    assert!(
        check.status.success(),
        "openstacksdk is not importable by {}: run scripts/install-test-deps.sh, or set STRATA_SKIP_CLIENT_TESTS=1 to skip",
        python.display()
    );
    let twin = support::start_system_clock(&["fra1"]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let endpoints = dir.path().join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");
    let script = repo_root().join("scripts/clients/openstacksdk_check.py");
    tokio::task::spawn_blocking(move || {
        run(
            Command::new(&python)
                .arg(&script)
                .arg(&endpoints)
                .arg("fra1"),
            "openstacksdk_check.py",
        );
    })
    .await
    .expect("join");
    twin.shutdown().await.expect("shutdown");
}
