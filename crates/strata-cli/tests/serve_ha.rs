//! Three `strata serve` processes on one PostgreSQL: one leads (the lease), the others
//! serve reads. SIGKILL of the leader in the middle of an apply → another takes over
//! within 15 s, the commit is applied, and the twin's call counters show no create
//! done twice.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn pg_base() -> String {
    std::env::var("STRATA_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([&pg_base(), "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", text(&out));
}

fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    api("GET", url, token)
}

struct Instance {
    name: String,
    base: String,
    child: Option<Child>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(dir: &Path, name: &str, bare: &Path, endpoints: &Path, database: &str) -> Instance {
    let port = strata_testkit::free_port();
    let d = |p: &str| dir.join(p).to_str().expect("utf8").to_string();
    let child = strata()
        .args([
            "serve",
            "--spec-repo",
            bare.to_str().expect("utf8"),
            "--targets",
            endpoints.to_str().expect("utf8"),
            "--database",
            database,
            "--listen",
            &format!("127.0.0.1:{port}"),
            // Nothing local is shared: the apply journal is in the shared database,
            // as it is for servers on different hosts.
            "--state-dir",
            &d(&format!("state-{name}")),
            "--poll-interval",
            "1s",
            "--reconcile-interval",
            "1h",
            "--admin-token-file",
            &d("admin.token"),
            "--instance-id",
            name,
            "--lease-ttl",
            "6s",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).expect("log"))
        .spawn()
        .expect("spawn strata serve");
    Instance {
        name: name.into(),
        base: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    }
}

fn leader_of(instances: &[Instance]) -> Option<usize> {
    instances.iter().position(|i| {
        i.child.is_some() && get(&format!("{}/readyz", i.base), None).1["leader"] == true
    })
}

fn clone_calls(twin: &TwinProcess) -> u64 {
    let (_, v) = get(&format!("{}counters", twin.admin()), None);
    v["calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .filter(|c| {
                    c["method"] == "POST"
                        && c["route"].as_str().is_some_and(|r| r.ends_with("/clone"))
                })
                .filter_map(|c| c["count"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

fn vms(twin: &TwinProcess) -> u64 {
    ["fra1", "ams1", "waw1"]
        .iter()
        .map(|dc| {
            get(&format!("{}dcs/{dc}/proxmox/summary", twin.admin()), None).1["vms"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn the_leader_is_killed_mid_apply_and_another_takes_over() {
    let dir: PathBuf = strata_testkit::scratch_dir("strata-serve-ha");
    let schema = format!("strata_ha_{}", std::process::id());
    psql(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ));
    let database = format!("{}?options=-c%20search_path%3D{schema}", pg_base());

    let twin = TwinProcess::start(&dir, &[]);
    // Its policy applies the bring-up's updates too: no approval to wait for.
    let work = fleet_allowing_updates(&dir);
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
    let vms_before = vms(&twin);
    let clones_before = clone_calls(&twin);

    let mut instances: Vec<Instance> = ["s1", "s2", "s3"]
        .iter()
        .map(|n| start(&dir, n, &bare, &twin.endpoints, &database))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first = None;
    while first.is_none() {
        assert!(Instant::now() < deadline, "no instance became the leader");
        first = leader_of(&instances);
        std::thread::sleep(Duration::from_millis(200));
    }
    let first = first.expect("leader");
    // Every instance answers (followers serve reads).
    for i in &instances {
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&format!("{}/readyz", i.base), None).0 != 200 {
            assert!(Instant::now() < deadline, "{} never became ready", i.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Exactly one leads; every instance answers reads and names the same leader.
    let leaders: Vec<String> = instances
        .iter()
        .map(|i| {
            get(&format!("{}/readyz", i.base), None).1["leader_instance"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        leaders.iter().all(|l| *l == instances[first].name),
        "{leaders:?}"
    );
    let token = std::fs::read_to_string(dir.join("admin.token"))
        .expect("token")
        .trim()
        .to_string();

    // Kill the leader once the commit is being applied (some VMs exist, not all).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, c) = get(
            &format!("{}/api/v1/commits/{sha}", instances[first].base),
            Some(&token),
        );
        if c["state"] == "applying" && vms(&twin) > vms_before {
            break;
        }
        assert!(
            c["state"] != "applied",
            "the apply finished before the kill: {c}"
        );
        assert!(
            Instant::now() < deadline,
            "the commit was never applied: {c}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed_at = Instant::now();
    if let Some(mut c) = instances[first].child.take() {
        let _ = c.kill(); // SIGKILL
        let _ = c.wait();
    }
    let mut next = None;
    while next.is_none() {
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "no takeover within 15 s of the leader's SIGKILL"
        );
        next = leader_of(&instances);
        std::thread::sleep(Duration::from_millis(100));
    }
    let takeover = killed_at.elapsed();
    let next = next.expect("leader");
    eprintln!("takeover after {takeover:?} by {}", instances[next].name);

    // The new leader resumes the step once its lease runs out, and finishes.
    let deadline = Instant::now() + Duration::from_secs(300);
    let c = loop {
        let (_, c) = get(
            &format!("{}/api/v1/commits/{sha}", instances[next].base),
            Some(&token),
        );
        if c["state"] == "applied" || c["state"] == "failed" {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "the commit never finished after the takeover: {c}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(c["state"], "applied", "{c:#}");
    // No VM was cloned twice: every clone call made one VM.
    let made = vms(&twin) - vms_before;
    assert!(made > 0);
    assert_eq!(
        clone_calls(&twin) - clones_before,
        made,
        "a clone ran twice"
    );
    // The machines onboard in workflows of their own, resumed by the new leader.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (_, list) = get(
            &format!(
                "{}/api/v1/workflows?kind=onboard&limit=500",
                instances[next].base
            ),
            Some(&token),
        );
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() && items.iter().all(|w| w["state"] == "done") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "onboarding never finished: {list:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // And the fleet is converged: a plan from the CLI has nothing to do.
    let plan = run(&[
        "plan",
        work.to_str().expect("utf8"),
        "--targets",
        twin.endpoints.to_str().expect("utf8"),
        "--detailed-exitcode",
    ]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    drop(instances);
    psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    let _ = std::fs::remove_dir_all(&dir);
}
