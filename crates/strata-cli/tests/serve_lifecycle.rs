//! Day-2 workflows of `strata serve` against the twin: a rolling upgrade of a DC's
//! Proxmox cluster whose second node fails its health gate (that node is rolled back
//! and the rollout stops), and the cancel route.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

struct Serve {
    child: Child,
    port: u16,
    token: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A JSON call with the admin token: (status, body).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            "--max-time",
            "30",
        ])
        // The scheme is case-insensitive.
        .arg("-H")
        .arg(format!("Authorization: bearer {}", self.token));
        if let Some(b) = body {
            c.args(["-H", "content-type: application/json", "--data"])
                .arg(b.to_string());
        }
        let out = c.arg(self.url(path)).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    /// Wait until workflow `id` leaves `running`; its view.
    fn wait_workflow(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (code, v) = self.call("GET", &format!("/api/v1/workflows/{id}"), None);
            assert_eq!(code, 200, "{v}");
            if v["workflow"]["state"] != "running" {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "workflow {id} still running: {v:#}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The example fleet in a repository (its bring-up plan waits for an approval, so
/// the server changes nothing on its own), and `strata serve` following it.
fn serve(dir: &Path, twin: &TwinProcess) -> Serve {
    let work = fleet_copy(dir);
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "fleet"]);
    let port = free_port();
    let d = |p: &str| -> String { dir.join(p).to_str().expect("utf8").to_string() };
    let log = std::fs::File::create(dir.join("serve.log")).expect("log");
    let child = strata()
        .args([
            "serve",
            "--spec-repo",
            work.to_str().expect("utf8"),
            "--targets",
            twin.endpoints.to_str().expect("utf8"),
            "--database",
            &format!("sqlite:{}", d("server.db")),
            "--listen",
            &format!("127.0.0.1:{port}"),
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
    let token_file = PathBuf::from(d("admin.token"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let token = loop {
        if let Ok(t) = std::fs::read_to_string(&token_file)
            && !t.trim().is_empty()
        {
            break t.trim().to_string();
        }
        assert!(Instant::now() < deadline, "no admin token written");
        std::thread::sleep(Duration::from_millis(100));
    };
    let s = Serve { child, port, token };
    // Leader before the test starts asking for work.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, v) = api("GET", &s.url("/readyz"), None);
        if code == 200 && v["leader"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "server never led: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    s
}

fn proxmox_summary(twin: &TwinProcess, dc: &str) -> Value {
    let (code, v) = api(
        "GET",
        &format!("{}dcs/{dc}/proxmox/summary", twin.admin()),
        None,
    );
    assert_eq!(code, 200, "{v}");
    v
}

fn post_twin(twin: &TwinProcess, path: &str, body: &Value) {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "--data",
        ])
        .arg(body.to_string())
        .arg(format!("{}{path}", twin.admin()))
        .output()
        .expect("curl");
    assert!(out.status.success(), "POST {path}: {}", text(&out));
}

#[test]
fn rolling_upgrade_rolls_back_the_node_that_fails_its_gate_and_stops() {
    let dir = strata_testkit::scratch_dir("strata-serve-upgrade");
    let twin = TwinProcess::start(&dir, &["--vms-per-dc", "6"]);
    let before = proxmox_summary(&twin, "fra1");
    let versions = before["node_versions"]
        .as_object()
        .expect("versions")
        .clone();
    let nodes: Vec<String> = versions.keys().cloned().collect();
    assert!(nodes.len() >= 3, "{before}");
    let old = versions[&nodes[0]].as_str().expect("version").to_string();
    let target = "9.9.1";
    // The second node's next upgrade breaks its pveproxy (once: the rollback, an
    // upgrade to the old version, repairs it).
    post_twin(
        &twin,
        "faults/object",
        &json!({"dc": "fra1", "service": "proxmox", "id": nodes[1], "fault": "upgrade_pveproxy_down", "times": 1}),
    );
    let s = serve(&dir, &twin);

    // Refused before anything starts: a bad body, an unknown DC.
    let (code, v) = s.call(
        "POST",
        "/api/v1/dcs/fra1/proxmox/upgrade",
        Some(&json!({"versoin": target})),
    );
    assert_eq!((code, v["code"].as_str()), (400, Some("bad-body")), "{v}");
    let (code, v) = s.call(
        "POST",
        "/api/v1/dcs/nowhere/proxmox/upgrade",
        Some(&json!({"version": target})),
    );
    assert_eq!(code, 400, "{v}");

    let (code, v) = s.call(
        "POST",
        "/api/v1/dcs/fra1/proxmox/upgrade",
        Some(&json!({"version": target, "gate_timeout_s": 5})),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["workflow"].as_str().expect("workflow id").to_string();
    // One rollout per DC at a time.
    let (code, v) = s.call(
        "POST",
        "/api/v1/dcs/fra1/proxmox/upgrade",
        Some(&json!({"version": target})),
    );
    assert!(
        code == 409 || code == 202,
        "a second rollout while one runs: {code} {v}"
    );
    if code == 202 {
        // The first had finished already; nothing to check here.
    } else {
        assert_eq!(v["code"], "workflow-running", "{v}");
    }

    let w = s.wait_workflow(&id, Duration::from_secs(240));
    assert_eq!(w["workflow"]["state"], "stopped", "{w:#}");
    let steps = w["workflow"]["steps"].as_array().expect("steps");
    let state_of = |name: &str| -> String {
        steps
            .iter()
            .find(|st| st["name"] == name)
            .and_then(|st| st["state"].as_str())
            .unwrap_or("missing")
            .to_string()
    };
    for what in ["drain", "upgrade", "gate"] {
        assert_eq!(state_of(&format!("{what}:{}", nodes[0])), "done", "{w:#}");
        assert_eq!(state_of(&format!("{what}:{}", nodes[1])), "done", "{w:#}");
        assert_eq!(
            state_of(&format!("{what}:{}", nodes[2])),
            "skipped",
            "{w:#}"
        );
    }
    let gate = steps
        .iter()
        .find(|st| st["name"] == format!("gate:{}", nodes[1]))
        .expect("gate step");
    let ev = &gate["evidence"];
    assert_eq!(ev["gate"], "failed", "{gate:#}");
    assert!(
        ev["problems"].to_string().contains("API does not answer"),
        "{gate:#}"
    );
    assert_eq!(ev["rollback"]["to"], old, "{gate:#}");
    assert_eq!(ev["rollback"]["healthy_after"], true, "{gate:#}");
    let events = w["events"].to_string();
    assert!(events.contains("the rollout stopped"), "{events}");

    // The platform agrees: the first node upgraded, the second back where it was and
    // healthy, the third untouched; every VM still exists and the drained nodes are
    // empty of running guests they had to give up.
    let after = proxmox_summary(&twin, "fra1");
    assert_eq!(after["node_versions"][&nodes[0]], target, "{after}");
    assert_eq!(after["node_versions"][&nodes[1]], old, "{after}");
    assert_eq!(after["node_versions"][&nodes[2]], old, "{after}");
    assert_eq!(after["nodes_online"], before["nodes_online"], "{after}");
    assert_eq!(after["vms"], before["vms"], "{after}");
    assert_eq!(after["running"], before["running"], "{after}");
    let drained = steps
        .iter()
        .find(|st| st["name"] == format!("drain:{}", nodes[0]))
        .expect("drain step");
    let moved = drained["evidence"]["moved"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for m in &moved {
        assert_ne!(m["to"], nodes[0].as_str(), "{drained:#}");
    }

    // Cancel: a running workflow can be cancelled once; a finished one cannot.
    let (code, v) = s.call("POST", &format!("/api/v1/workflows/{id}/cancel"), None);
    assert_eq!(
        (code, v["code"].as_str()),
        (409, Some("workflow-not-running")),
        "{v}"
    );
    let (code, v) = s.call(
        "POST",
        "/api/v1/dcs/fra1/proxmox/upgrade",
        Some(&json!({"version": target, "gate_timeout_s": 5})),
    );
    assert_eq!(code, 202, "{v}");
    let second = v["workflow"].as_str().expect("id").to_string();
    let (code, v) = s.call("POST", &format!("/api/v1/workflows/{second}/cancel"), None);
    assert!(
        code == 202 || (code == 409 && v["code"] == "workflow-not-running"),
        "{code} {v}"
    );
    let w = s.wait_workflow(&second, Duration::from_secs(120));
    assert_ne!(w["workflow"]["state"], "running", "{w:#}");
    let (code, _) = s.call("POST", "/api/v1/workflows/no-such-workflow/cancel", None);
    assert_eq!(code, 404);
}
