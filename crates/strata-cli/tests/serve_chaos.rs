//! `strata serve` SIGKILLed at random points while more than 50 machines onboard (the
//! example fleet plus 24 dense storage machines), and started again each time on the
//! same database: every machine ends in service or in quarantine, and the twin's call
//! counters show no machine commissioned, allocated or deployed twice.

mod common;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    api("GET", url, token)
}

struct Server {
    dir: PathBuf,
    bare: PathBuf,
    endpoints: PathBuf,
    port: u16,
    child: Option<Child>,
    starts: u32,
}

impl Server {
    fn start(&mut self) {
        let d = |p: &str| self.dir.join(p).to_str().expect("utf8").to_string();
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("serve-{}.log", self.starts)))
            .expect("log");
        let child = strata()
            .args([
                "serve",
                "--spec-repo",
                self.bare.to_str().expect("utf8"),
                "--targets",
                self.endpoints.to_str().expect("utf8"),
                "--database",
                &format!("sqlite:{}", d("server.db")),
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--state-dir",
                &d("state"),
                "--poll-interval",
                "1s",
                "--reconcile-interval",
                "1h",
                "--admin-token-file",
                &d("admin.token"),
                "--lease-ttl",
                "3s",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn strata serve");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Calls to MAAS machine actions, summed over the DCs: `op` → count.
fn machine_ops(twin: &TwinProcess) -> std::collections::BTreeMap<String, u64> {
    let (_, v) = get(&format!("{}counters", twin.admin()), None);
    let mut out = std::collections::BTreeMap::new();
    for c in v["calls"].as_array().into_iter().flatten() {
        let route = c["route"].as_str().unwrap_or_default();
        if c["service"] == "maas"
            && c["method"] == "POST"
            && c["status"] == "2xx"
            && let Some((_, op)) = route
                .split_once("machines/{system_id}/?op=")
                .or_else(|| route.split_once("machines/?op="))
        {
            *out.entry(op.to_string()).or_default() += c["count"].as_u64().unwrap_or(0);
        }
    }
    out
}

#[test]
fn killed_at_random_points_while_machines_onboard_every_machine_ends_in_service_or_quarantine() {
    let dir = strata_testkit::scratch_dir("strata-serve-chaos");
    // Its policy applies the bring-up's updates too: no approval to wait for.
    let work = fleet_allowing_updates(&dir);
    add_storage_machines(&work, 4);
    let twin = TwinProcess::start_with_fleet(
        &dir,
        work.to_str().expect("utf8"),
        &["--hardware-fault", "FRA1R02U20=gpu-x8"],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "fleet"]);
    let bare = dir.join("fleet.git");
    git(
        &dir,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().expect("utf8"),
            bare.to_str().expect("utf8"),
        ],
    );
    let sha = git(&work, &["rev-parse", "HEAD"]).trim().to_string();

    let mut server = Server {
        dir: dir.clone(),
        bare,
        endpoints: twin.endpoints.clone(),
        port: strata_testkit::free_port(),
        child: None,
        starts: 0,
    };
    let base = format!("http://127.0.0.1:{}", server.port);
    server.start();
    // Kill it at pseudo-random moments (seeded by the process id, printed to replay).
    let mut x = u64::from(std::process::id()) | 1;
    eprintln!("chaos seed {x}");
    let mut token = None;
    for _ in 0..6 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(1500 + x % 3000));
        server.kill();
        if token.is_none() {
            token = std::fs::read_to_string(dir.join("admin.token"))
                .ok()
                .map(|t| t.trim().to_string());
        }
        server.start();
    }
    let token = token
        .or_else(|| {
            std::fs::read_to_string(dir.join("admin.token"))
                .ok()
                .map(|t| t.trim().to_string())
        })
        .expect("admin token");

    // Left alone, it finishes: the commit applied and every onboarding done.
    let deadline = Instant::now() + Duration::from_secs(600);
    let flows = loop {
        let (_, c) = get(&format!("{base}/api/v1/commits/{sha}"), Some(&token));
        let (_, list) = get(
            &format!("{base}/api/v1/workflows?kind=onboard&limit=500"),
            Some(&token),
        );
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if c["state"] == "applied"
            && !items.is_empty()
            && items.iter().all(|w| w["state"] != "running")
        {
            break items;
        }
        assert!(Instant::now() < deadline, "not finished: {c:#}\n{list:#}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut quarantined = 0;
    let mut in_service = 0;
    for w in &flows {
        assert_eq!(w["state"], "done", "{w:#}");
        let (_, v) = get(
            &format!("{base}/api/v1/workflows/{}", w["id"].as_str().expect("id")),
            Some(&token),
        );
        let steps = &v["workflow"]["steps"];
        if steps[0]["evidence"]["quarantined"].is_string() {
            quarantined += 1;
        } else {
            // Joined its platform (a Proxmox node its cluster, a compute host Nova
            // and Placement), then in service.
            assert!(steps[2]["evidence"]["joined"].is_object(), "{v:#}");
            assert_eq!(steps[3]["evidence"]["in_service"], true, "{v:#}");
            in_service += 1;
        }
    }
    assert_eq!(quarantined, 1);
    assert!(flows.len() >= 50, "only {} machines onboarded", flows.len());
    eprintln!(
        "{in_service} machines in service, {quarantined} quarantined, {} server starts",
        server.starts
    );
    // No side effect twice: one commission per machine, one allocate and one deploy per
    // machine in service.
    let ops = machine_ops(&twin);
    let machines = (in_service + quarantined) as u64;
    assert_eq!(ops.get("commission").copied(), Some(machines), "{ops:?}");
    assert_eq!(
        ops.get("allocate").copied(),
        Some(in_service as u64),
        "{ops:?}"
    );
    assert_eq!(
        ops.get("deploy").copied(),
        Some(in_service as u64),
        "{ops:?}"
    );
    // And nothing else is left to do but the quarantined machine.
    let plan = run(&[
        "plan",
        work.to_str().expect("utf8"),
        "--targets",
        twin.endpoints.to_str().expect("utf8"),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&plan.stdout).unwrap_or(Value::Null);
    let left: Vec<String> = v["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            s["id"]
                .as_str()
                .map(str::to_string)
                .or_else(|| Some(s["id"].to_string()))
        })
        .collect();
    assert_eq!(left.len(), 1, "{left:?}\n{}", text(&plan));
    assert!(left[0].contains("FRA1R02U20"), "{left:?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
