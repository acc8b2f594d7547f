//! Differential check against the real services: start real Keystone + Placement with
//! `/work/shared/tools/openstack-real.sh` (or `$STRATA_OPENSTACK_REAL`), run
//! `scripts/clients/differential_openstack.py` against them and a twin, and require no
//! difference. The real services' process groups are killed however the test ends.
//!
//! Set `STRATA_SKIP_REAL_OPENSTACK=1` to skip. The first run installs Keystone and
//! Placement into a venv cached in `/var/tmp/strata-openstack-real` (or
//! `$STRATA_OPENSTACK_REAL_CACHE`), which takes a minute or two; later runs reuse it and
//! only create fresh databases.

#[path = "openstack_support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Kills the real services' process groups when dropped (also on panic).
struct RealServices {
    base: PathBuf,
    pgids: Vec<i32>,
}

impl RealServices {
    fn all_pgids(&self) -> Vec<i32> {
        let mut out = self.pgids.clone();
        // The tool records its gunicorn process groups; read them in case it failed after
        // starting them (before printing READY).
        for f in ["ks.pid", "pl.pid"] {
            if let Ok(s) = std::fs::read_to_string(self.base.join(f))
                && let Ok(p) = s.trim().parse::<i32>()
                && !out.contains(&p)
            {
                out.push(p);
            }
        }
        out
    }
}

impl Drop for RealServices {
    fn drop(&mut self) {
        for sig in ["-TERM", "-KILL"] {
            for pg in self.all_pgids() {
                if pg > 1 {
                    let _ = Command::new("kill")
                        .args([sig, "--", &format!("-{pg}")])
                        .stderr(Stdio::null())
                        .status();
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_matches_real_keystone_and_placement() {
    if std::env::var("STRATA_SKIP_REAL_OPENSTACK").as_deref() == Ok("1") {
        eprintln!(
            "note: STRATA_SKIP_REAL_OPENSTACK=1: skipping the differential check against real Keystone and Placement"
        );
        return;
    }
    let tool = std::env::var("STRATA_OPENSTACK_REAL")
        .unwrap_or_else(|_| "/work/shared/tools/openstack-real.sh".into());
    assert!(
        Path::new(&tool).exists(),
        "{tool} is missing: it installs and starts real Keystone and Placement (set STRATA_SKIP_REAL_OPENSTACK=1 to skip)"
    );
    let cache = PathBuf::from(
        std::env::var("STRATA_OPENSTACK_REAL_CACHE")
            .unwrap_or_else(|_| "/var/tmp/strata-openstack-real".into()),
    );
    // The venv is cached across runs and linked into each fresh base. Python's venv
    // module refuses to create an environment through a symlink, so make it here, in
    // place, the first time (the script then only installs into it).
    std::fs::create_dir_all(&cache).expect("venv cache");
    // One start at a time per cache (the providers' real-OpenStack test shares it).
    let lock = std::fs::File::create(cache.join(".lock")).expect("lock file");
    lock.lock().expect("lock the cache");
    let venv = cache.join("venv");
    if !venv.join("bin/python").exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .expect("python3 -m venv");
        assert!(
            made.status.success(),
            "python3 -m venv {}: {}",
            venv.display(),
            String::from_utf8_lossy(&made.stderr)
        );
    }
    // A fresh base (fresh databases and keys) around the cached venv.
    let base = tempfile::Builder::new()
        .prefix("strata-openstack-real-")
        .tempdir()
        .expect("tmp");
    std::os::unix::fs::symlink(cache.join("venv"), base.path().join("venv")).expect("venv link");
    let (ks, pl) = (free_port(), free_port());
    let mut real = RealServices {
        base: base.path().to_path_buf(),
        pgids: vec![],
    };

    let base_path = base.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(&tool)
            .arg(&base_path)
            .arg(ks.to_string())
            .arg(pl.to_string())
            .stdin(Stdio::null())
            .output()
            .expect("openstack-real.sh")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let ready = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("READY"))
        .map(str::to_string);
    let Some(ready) = ready.filter(|_| out.status.success()) else {
        panic!(
            "the real services did not start ({}):\n{stdout}\n{stderr}",
            out.status
        );
    };
    // READY keystone=URL placement=URL pids: A B
    let words: Vec<&str> = ready.split_whitespace().collect();
    let keystone = words[1].trim_start_matches("keystone=").to_string();
    let placement = words[2].trim_start_matches("placement=").to_string();
    real.pgids = words[4..].iter().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(real.pgids.len(), 2, "{ready}");
    eprintln!("{stderr}{ready}");

    let twin = support::start(&["fra1"]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let endpoints = dir.path().join("endpoints.json");
    twin.write_endpoints(&endpoints).expect("endpoints");
    let script = repo_root().join("scripts/clients/differential_openstack.py");
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
