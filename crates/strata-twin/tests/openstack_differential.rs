//! Differential check against the real services: start real Keystone + Placement with
//! the repository's `scripts/openstack-real.sh` (installed by `scripts/install-test-deps.sh`),
//! run `scripts/clients/differential_openstack.py` against them and a twin, and require no
//! difference. The real services' process groups are killed however the test ends.
//!
//! When they are not installed the test fails with the command that installs them;
//! `STRATA_SKIP_REAL_OPENSTACK=1` opts out explicitly (`.ci/run` never sets it).

#[path = "openstack_support.rs"]
mod support;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_matches_real_keystone_and_placement() {
    let Some(real) = tokio::task::spawn_blocking(|| {
        strata_testkit::RealOpenstack::start(
            "the differential check of the twin against real Keystone and Placement",
        )
    })
    .await
    .expect("join") else {
        return;
    };
    let (keystone, placement) = (real.keystone.clone(), real.placement.clone());
    eprintln!("real Keystone at {keystone}, Placement at {placement}");

    let twin = support::start(&["fra1"]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let endpoints = dir.path().join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");
    let script = strata_testkit::repo_root().join("scripts/clients/differential_openstack.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .arg("--twin-endpoints")
            .arg(&endpoints)
            .arg("--keystone")
            .arg(&keystone)
            .arg("--placement")
            .arg(&placement)
            .output()
            .expect("differential_openstack.py")
    })
    .await
    .expect("join");
    twin.shutdown().await.expect("shutdown");
    drop(real);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "the twin differs from the real services:\n{stdout}\n{stderr}"
    );
}
