//! What the end-to-end tests share: running the `strata` binary, a `strata twin`
//! process, git without user configuration, a copy of the example fleet.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    strata_testkit::repo_root()
}

pub fn strata() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.current_dir(root())
        .env("NO_COLOR", "1")
        .env("BMC_PASSWORD_FRA1", "fra1-bmc-secret")
        .env("BMC_PASSWORD_AMS1", "ams1-bmc-secret")
        .env("BMC_PASSWORD_WAW1", "waw1-bmc-secret");
    c
}

pub fn run(args: &[&str]) -> Output {
    strata().args(args).output().expect("run strata")
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A `strata twin` process, killed on drop.
pub struct TwinProcess {
    pub child: Child,
    pub endpoints: PathBuf,
}

impl TwinProcess {
    pub fn start(dir: &Path, extra: &[&str]) -> TwinProcess {
        Self::start_with_fleet(dir, "examples/fleet", extra)
    }

    /// A twin seeded from the fleet at `fleet` (relative to the repository root, or
    /// absolute).
    pub fn start_with_fleet(dir: &Path, fleet: &str, extra: &[&str]) -> TwinProcess {
        let endpoints = dir.join("twin").join("endpoints.json");
        let mut args = vec![
            "twin",
            "--dcs",
            "3",
            "--fleet",
            fleet,
            "--listen",
            "127.0.0.1:0",
            "--write-endpoints",
        ];
        let ep = endpoints.to_str().expect("utf8").to_string();
        args.push(&ep);
        args.extend_from_slice(extra);
        let child = strata()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn strata twin");
        let t = TwinProcess { child, endpoints };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !t.endpoints.exists() {
            assert!(
                Instant::now() < deadline,
                "strata twin did not write its endpoints"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The file is written whole after every listener is up.
        std::thread::sleep(Duration::from_millis(200));
        t
    }

    pub fn doc(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&self.endpoints).expect("endpoints"))
            .expect("json")
    }

    pub fn admin(&self) -> String {
        self.doc()["twin"]["admin"]
            .as_str()
            .expect("admin url")
            .to_string()
    }
}

impl Drop for TwinProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run git in `dir` (no user configuration needed); its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=strata-test",
            "-c",
            "user.email=strata-test@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn fleet_copy(dir: &Path) -> PathBuf {
    let dst = dir.join("fleet");
    let status = Command::new("cp")
        .arg("-r")
        .arg(root().join("examples/fleet"))
        .arg(&dst)
        .status()
        .expect("cp");
    assert!(status.success());
    dst
}

/// An HTTP call with curl, optionally with a bearer token: (status, JSON body or null).
pub fn api(method: &str, url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "--max-time",
        "30",
    ]);
    if let Some(t) = token {
        c.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    let out = c.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// A copy of the example fleet whose policy also applies updates on its own (a
/// fresh fleet's bring-up updates what the platforms had), for server tests that do
/// not exercise approvals.
pub fn fleet_allowing_updates(dir: &Path) -> PathBuf {
    let work = fleet_copy(dir);
    let path = work.join("fleet.yaml");
    let yaml = std::fs::read_to_string(&path).expect("fleet.yaml");
    let allowed = yaml.replace(
        "auto_apply: [create, adopt]",
        "auto_apply: [create, adopt, update]",
    );
    assert_ne!(allowed, yaml, "the example fleet's policy changed");
    std::fs::write(&path, allowed).expect("write fleet.yaml");
    work
}

/// Add `per_rack` dense storage machines (2U, slots 30, 32, …) to both racks of every
/// DC of the fleet copy at `fleet`, and record their allocations in `fleet.lock`, so
/// that tests can onboard more machines than the example fleet has.
pub fn add_storage_machines(fleet: &Path, per_rack: u8) {
    for (dc, n) in [("fra1", 1u8), ("ams1", 2), ("waw1", 3)] {
        let path = fleet.join("inventory").join(format!("{dc}.yaml"));
        let mut yaml = std::fs::read_to_string(&path).expect("inventory");
        for rack in 1..=2u8 {
            for i in 0..per_rack {
                let slot = 30 + 2 * i;
                let up = dc.to_uppercase();
                yaml.push_str(&format!(
                    "  - serial: {up}R{rack:02}U{slot}\n    site: {dc}\n    rack: r{rack:02}\n    slot: {slot}\n    profile: storage-dense\n    role: openstack-storage\n    pxe_mac: \"52:54:{n:02x}:{rack:02x}:{slot:02x}:01\"\n    bmc: {{ mac: \"52:55:{n:02x}:{rack:02x}:{slot:02x}:01\", driver: redfish, username: strata, credential: {{ env: BMC_PASSWORD_{up} }} }}\n"
                ));
            }
        }
        std::fs::write(&path, yaml).expect("write inventory");
    }
    let out = run(&["compile", fleet.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", text(&out));
}
