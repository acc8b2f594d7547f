//! The API, the web UI and self-service as their users meet them, against ONE
//! `strata demo` (a twin of three DCs with the example fleet applied through `strata
//! serve`; starting it is most of the cost, so every phase shares it). Phases, each
//! in `tests/api/`: `access` (authentication, tokens, the role × endpoint × other
//! team matrix, audit, inventory, planted secrets), and the others listed in
//! [`PHASES`]. `STRATA_API_PHASES=access,ui` runs only those (while developing one).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// The secrets the suite plants (BMC passwords, see `common::strata`): no response
/// and no log line may contain one.
pub const PLANTED: [&str; 3] = ["fra1-bmc-secret", "ams1-bmc-secret", "waw1-bmc-secret"];

pub struct Demo {
    pub child: Child,
    pub base: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub log: Arc<Mutex<String>>,
    /// Every response body the test saw.
    pub seen: Mutex<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    pub fn start() -> Demo {
        let dir = tempfile::tempdir().expect("tmp");
        let mut child = strata()
            .args(["demo", "--no-verify", "--listen", "127.0.0.1:0", "--out"])
            .arg(dir.path())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strata demo");
        let log = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr");
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l2.lock().expect("log").push_str(&(line + "\n"));
            }
        });
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let l3 = log.clone();
        std::thread::spawn(move || {
            let mut base = None;
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l3.lock().expect("log").push_str(&(line.clone() + "\n"));
                if let Some(rest) = line.trim().strip_prefix("strata serve on ") {
                    base = rest.split_whitespace().next().map(str::to_string);
                }
                if line.contains("keep running") {
                    let _ = tx.send(base.clone());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(Some(b)) => b,
            _ => panic!("the demo did not come up:\n{}", log.lock().expect("log")),
        };
        let admin = std::fs::read_to_string(dir.path().join("admin.token"))
            .expect("admin token")
            .trim()
            .to_string();
        Demo {
            child,
            base,
            admin,
            dir,
            log,
            seen: Mutex::new(String::new()),
        }
    }

    /// `(status, body)`, recording the body for the secrets check.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut c = std::process::Command::new("curl");
        c.args([
            "-s",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            "--max-time",
            "60",
        ]);
        c.args(["-H", "X-Request-Id: api-test"]);
        if let Some(t) = token {
            c.arg("-H").arg(format!("Authorization: Bearer {t}"));
        }
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(b.to_string());
        }
        let out = c
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        self.seen.lock().expect("seen").push_str(&text);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    pub fn token(
        &self,
        by: &str,
        team: &str,
        role: &str,
        scopes: Option<&[&str]>,
    ) -> (String, String) {
        let mut req = json!({"name": format!("{team}-{role}"), "team": team, "role": role});
        if let Some(s) = scopes {
            req["scopes"] = json!(s);
        }
        let (code, body) = self.call("POST", "/api/v1/tokens", Some(by), Some(req));
        assert_eq!(code, 201, "token for {team}/{role}: {body}");
        (
            body["token"].as_str().expect("token").to_string(),
            body["id"].as_str().expect("id").to_string(),
        )
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("strata.db")
    }
}

#[path = "api/access.rs"]
mod access;
#[path = "api/ipam.rs"]
mod ipam;
#[path = "api/requests.rs"]
mod requests;
#[path = "api/schema.rs"]
mod schema;
#[path = "api/ui.rs"]
mod ui;
#[path = "api/webhooks.rs"]
mod webhooks;

/// Every phase, in the order they run (later phases may rely on tokens and state the
/// earlier ones made only through the API, never through shared variables).
type Phase = (&'static str, fn(&mut Demo));

const PHASES: &[Phase] = &[
    ("access", access::run),
    ("ipam", ipam::run),
    ("webhooks", webhooks::run),
    ("requests", requests::run),
    ("ui", ui::run),
    ("schema", schema::run),
];

#[test]
fn api_ui_and_self_service_on_one_demo() {
    let only = std::env::var("STRATA_API_PHASES").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x.trim() == name))
    };
    let mut d = Demo::start();
    for (name, phase) in PHASES {
        if wanted(name) {
            eprintln!("api phase: {name}");
            phase(&mut d);
        } else {
            eprintln!("strata-skip: api phase {name} (STRATA_API_PHASES)");
        }
    }
    d.check_secrets();
    d.tamper_audit();
}

impl Demo {
    /// No planted secret in any response the phases saw or any line the demo printed.
    fn check_secrets(&self) {
        let seen = self.seen.lock().expect("seen").clone();
        let log = self.log.lock().expect("log").clone();
        assert!(!seen.is_empty());
        for s in PLANTED {
            assert!(
                !seen.contains(s),
                "a response contains the planted secret {s}"
            );
            assert!(
                !log.contains(s),
                "the server's output contains the planted secret {s}"
            );
        }
    }

    /// Stop the server, change one audit record, and `strata audit verify` finds it.
    fn tamper_audit(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let db = format!("sqlite:{}", self.db().display());
        let ok = run(&["audit", "verify", "--database", &db, "-o", "json"]);
        assert!(ok.status.success(), "{}", text(&ok));
        let changed = std::process::Command::new("python3")
            .arg("-c")
            .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE audit_log SET actor='someone-else' WHERE seq=3\"); c.commit()")
            .arg(self.db())
            .status()
            .expect("python3");
        assert!(changed.success());
        let bad = run(&["audit", "verify", "--database", &db, "-o", "json"]);
        assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
        let v: Value = serde_json::from_slice(&bad.stdout).expect("json");
        assert_eq!(v["broken_at"], 3, "{v}");
        let human = run(&["audit", "verify", "--database", &db]);
        assert!(
            String::from_utf8_lossy(&human.stdout).contains("BROKEN at record 3"),
            "{}",
            text(&human)
        );
    }
}
