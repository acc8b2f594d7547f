//! `strata serve` end to end, as an operator runs it: a `strata twin` of three DCs, a
//! bare spec repository that tests `git push` into, and `strata serve` following it.
//! A pushed commit is planned and (per the example fleet's policy) applied; a delete
//! waits for an approval bound to the plan's hash; a changed world refuses a stale
//! approval; webhooks with bad signatures are refused and change nothing; state
//! survives a restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// An HTTP call with curl: (status, body).
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "--max-time",
        "120",
    ]);
    for (k, v) in headers {
        c.arg("-H").arg(format!("{k}: {v}"));
    }
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    let out = c.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

struct Serve {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    dir: PathBuf,
    work: PathBuf,
    bare: PathBuf,
    endpoints: PathBuf,
}

impl Setup {
    fn serve(&self) -> Serve {
        let port = strata_testkit::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let listen = format!("127.0.0.1:{port}");
        let d = |p: &str| self.dir.join(p).to_str().expect("utf8").to_string();
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
                &listen,
                "--state-dir",
                &d("state"),
                // Only webhooks and the first look trigger a poll in this test.
                "--poll-interval",
                "1h",
                "--reconcile-interval",
                "1h",
                "--github-secret-file",
                &d("github.secret"),
                "--gitlab-token-file",
                &d("gitlab.token"),
                "--admin-token-file",
                &d("admin.token"),
                "--log-format",
                "json",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("serve.log")).expect("log"))
            .spawn()
            .expect("spawn strata serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, body) = http("GET", &format!("{base}/readyz"), &[], None);
            if code == 200 && json_of(&body)["leader"] == true {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "strata serve did not become ready and lead: {code} {body}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let token = std::fs::read_to_string(self.dir.join("admin.token"))
            .expect("admin token")
            .trim()
            .to_string();
        Serve { child, base, token }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// Commit everything in the work tree and push it to the bare repository.
    fn push(&self, message: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_string()
    }
}

impl Serve {
    fn get(&self, path: &str) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        let (code, body) = http(
            "GET",
            &format!("{}{path}", self.base),
            &[("Authorization", &auth)],
            None,
        );
        (code, json_of(&body))
    }

    fn post(&self, path: &str) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        let (code, body) = http(
            "POST",
            &format!("{}{path}", self.base),
            &[("Authorization", &auth)],
            Some("{}"),
        );
        (code, json_of(&body))
    }

    /// Wait until commit `sha` is in one of `states`.
    fn wait_commit(&self, setup: &Setup, sha: &str, states: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (code, v) = self.get(&format!("/api/v1/commits/{sha}"));
            if code == 200 && states.iter().any(|s| v["state"] == *s) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "commit {sha} never reached {states:?}: {code} {v:#}\n{}",
                setup.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn github_sign(secret: &str, body: &str) -> String {
    // openssl is on every Debian machine; the server's own HMAC is unit-tested against
    // GitHub's documented example.
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-hex"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.rsplit(' ').next().unwrap_or_default().trim();
    format!("sha256={hex}")
}

fn vms_in(twin: &TwinProcess, dc: &str) -> u64 {
    let (code, body) = http(
        "GET",
        &format!("{}dcs/{dc}/proxmox/summary", twin.admin()),
        &[],
        None,
    );
    assert_eq!(code, 200, "{body}");
    json_of(&body)["vms"].as_u64().expect("vms")
}

fn add_vm(work: &Path, name: &str) {
    let path = work.join("vms.yaml");
    let mut text = std::fs::read_to_string(&path).expect("vms.yaml");
    text.push_str(&format!(
        "  - {{ name: {name}, site: fra1, role: ci-runner, cores: 4, memory_mib: 8192, disk_gb: 60, networks: [management], tags: [ci] }}\n"
    ));
    std::fs::write(&path, text).expect("write");
}

fn remove_vm(work: &Path, name: &str, site: &str) {
    let path = work.join("vms.yaml");
    let text = std::fs::read_to_string(&path).expect("vms.yaml");
    let needle = format!("name: {name}, site: {site},");
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains(&needle)).collect();
    assert!(kept.len() < text.lines().count(), "no VM {name} in {site}");
    std::fs::write(&path, kept.join("\n") + "\n").expect("write");
}

#[test]
fn a_pushed_commit_is_planned_applied_or_held_for_approval() {
    let dir = strata_testkit::scratch_dir("strata-serve");
    let twin = TwinProcess::start(&dir, &[]);
    // The spec repository: a working clone that pushes into a bare repository.
    let work = fleet_copy(&dir);
    git(&work, &["init", "-q", "-b", "main"]);
    let bare = dir.join("fleet.git");
    git(
        &dir,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            bare.to_str().expect("utf8"),
        ],
    );
    git(
        &work,
        &["remote", "add", "origin", bare.to_str().expect("utf8")],
    );
    std::fs::write(dir.join("github.secret"), "gh-secret\n").expect("secret");
    std::fs::write(dir.join("gitlab.token"), "gl-token\n").expect("token");
    let setup = Setup {
        dir: dir.clone(),
        work: work.clone(),
        bare,
        endpoints: twin.endpoints.clone(),
    };
    let first = setup.push("the example fleet");
    let vms_before = vms_in(&twin, "fra1");

    let serve = setup.serve();
    // The admin token file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("admin.token"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Without a token, or with a wrong one, the API refuses, as problem+json.
    let (code, body) = http("GET", &format!("{}/api/v1/commits", serve.base), &[], None);
    assert_eq!(code, 401, "{body}");
    assert_eq!(json_of(&body)["code"], "unauthenticated");
    let (code, _) = http(
        "GET",
        &format!("{}/api/v1/commits", serve.base),
        &[("Authorization", "Bearer nope")],
        None,
    );
    assert_eq!(code, 401);

    // The first commit brings the fleet up: creates and adoptions, and updates of
    // what the platforms had before strata (Proxmox node resolvers…). Updates are not
    // in the example policy's auto_apply, so the bring-up waits for one approval.
    let c = serve.wait_commit(
        &setup,
        &first,
        &["applied", "failed", "invalid", "waiting", "blocked"],
    );
    assert_eq!(c["state"], "waiting", "{c:#}\n{}", setup.log());
    assert!(
        c["result"]["counts"]["create"].as_u64().unwrap_or(0) > 0,
        "{c:#}"
    );
    let reasons = &c["result"]["decision"]["reasons"];
    assert!(
        reasons[0]
            .as_str()
            .is_some_and(|r| r.contains("update(s): policy.auto_apply allows only create, adopt")),
        "{reasons}"
    );
    assert_eq!(
        vms_in(&twin, "fra1"),
        vms_before,
        "nothing applied before the approval"
    );
    let (_, md) = http(
        "GET",
        &format!("{}/api/v1/commits/{first}/summary", serve.base),
        &[("Authorization", &format!("Bearer {}", serve.token))],
        None,
    );
    assert!(md.starts_with("### strata plan for"), "{md}");
    assert!(md.contains("Waiting for an approval"), "{md}");
    let hash = c["result"]["plan_hash"].as_str().expect("hash").to_string();
    let (code, v) = serve.post(&format!("/api/v1/plans/{hash}/approve"));
    assert_eq!(code, 202, "{v:#}");
    let c = serve.wait_commit(&setup, &first, &["applied", "failed"]);
    assert_eq!(c["state"], "applied", "{c:#}\n{}", setup.log());
    assert_eq!(c["result"]["outcome"]["succeeded"], true, "{c:#}");
    assert!(vms_in(&twin, "fra1") > vms_before);
    let vms_applied = vms_in(&twin, "fra1");

    // A commit adding a VM; a webhook with a bad signature is refused and triggers nothing.
    add_vm(&work, "ci-runner9");
    let second = setup.push("add ci-runner9");
    let push = json!({"ref": "refs/heads/main", "after": second}).to_string();
    let (code, body) = http(
        "POST",
        &format!("{}/webhooks/github", serve.base),
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &github_sign("wrong", &push)),
        ],
        Some(&push),
    );
    assert_eq!(code, 401, "{body}");
    assert_eq!(json_of(&body)["code"], "bad-signature");
    let (code, _) = http(
        "POST",
        &format!("{}/webhooks/gitlab", serve.base),
        &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "wrong")],
        Some(&push),
    );
    assert_eq!(code, 401);
    std::thread::sleep(Duration::from_secs(2));
    let (_, list) = serve.get("/api/v1/commits");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list:#}");
    assert_eq!(vms_in(&twin, "fra1"), vms_applied);

    // Signed correctly, the push is picked up at once and the new VM appears.
    let (code, body) = http(
        "POST",
        &format!("{}/webhooks/github", serve.base),
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &github_sign("gh-secret", &push)),
        ],
        Some(&push),
    );
    assert_eq!(code, 202, "{body}");
    let c = serve.wait_commit(
        &setup,
        &second,
        &["applied", "failed", "invalid", "waiting", "blocked"],
    );
    assert_eq!(c["state"], "applied", "{c:#}");
    assert!(
        c["result"]["summary"]
            .as_str()
            .is_some_and(|m| m.contains("Applying automatically")),
        "{c:#}"
    );
    assert_eq!(c["result"]["counts"]["create"], 1, "{c:#}");
    assert_eq!(vms_in(&twin, "fra1"), vms_applied + 1);

    // Removing a VM: a delete waits for an approval (GitLab's webhook this time).
    remove_vm(&work, "ci-runner9", "fra1");
    let third = setup.push("remove ci-runner9");
    let push = json!({"ref": "refs/heads/main"}).to_string();
    let (code, _) = http(
        "POST",
        &format!("{}/webhooks/gitlab", serve.base),
        &[
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Token", "gl-token"),
        ],
        Some(&push),
    );
    assert_eq!(code, 202);
    let c = serve.wait_commit(
        &setup,
        &third,
        &["waiting", "applied", "failed", "invalid", "blocked"],
    );
    assert_eq!(c["state"], "waiting", "{c:#}");
    let hash = c["result"]["plan_hash"].as_str().expect("hash").to_string();
    let summary = c["result"]["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("deletes always wait"), "{summary}");
    assert!(
        summary.contains(&format!("/api/v1/plans/{hash}/approve")),
        "{summary}"
    );
    assert_eq!(
        vms_in(&twin, "fra1"),
        vms_applied + 1,
        "nothing deleted before the approval"
    );
    let (code, waiting) = serve.get("/api/v1/plans?state=waiting");
    assert_eq!(code, 200);
    assert!(
        waiting["items"]
            .as_array()
            .is_some_and(|l| l.iter().any(|p| p["hash"] == hash.as_str())),
        "{waiting:#}"
    );

    // An approval of a malformed or unknown hash.
    assert_eq!(serve.post("/api/v1/plans/xyz/approve").0, 400);
    assert_eq!(
        serve
            .post(&format!("/api/v1/plans/{}/approve", "0".repeat(64)))
            .0,
        404
    );

    // Approved, the delete is carried out; approving again is a conflict.
    let (code, v) = serve.post(&format!("/api/v1/plans/{hash}/approve"));
    assert_eq!(code, 202, "{v:#}");
    let c = serve.wait_commit(&setup, &third, &["applied", "failed"]);
    assert_eq!(c["state"], "applied", "{c:#}");
    assert_eq!(vms_in(&twin, "fra1"), vms_applied);
    let (code, v) = serve.post(&format!("/api/v1/plans/{hash}/approve"));
    assert_eq!(code, 409, "{v:#}");
    assert_eq!(v["code"], "plan-not-waiting");
    let (_, p) = serve.get(&format!("/api/v1/plans/{hash}"));
    let outcomes: Vec<&str> = p["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .filter_map(|a| a["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["accepted", "refused"], "{p:#}");

    // A stale approval: the VM the plan deletes disappears behind strata's back.
    remove_vm(&work, "ci-runner2", "fra1");
    let fourth = setup.push("remove ci-runner2");
    assert_eq!(serve.post("/api/v1/sync").0, 202);
    let c = serve.wait_commit(
        &setup,
        &fourth,
        &["waiting", "applied", "failed", "invalid", "blocked"],
    );
    assert_eq!(c["state"], "waiting", "{c:#}");
    let hash = c["result"]["plan_hash"].as_str().expect("hash").to_string();
    let (_, p) = serve.get(&format!("/api/v1/plans/{hash}"));
    let vmid = p["steps"][0]["observed"]["external_id"]
        .as_str()
        .expect("vmid")
        .to_string();
    let (code, body) = http(
        "POST",
        &format!("{}dcs/fra1/proxmox/mutate", twin.admin()),
        &[],
        Some(&json!({"kind": "qemu", "id": vmid, "delete": true}).to_string()),
    );
    assert_eq!(code, 200, "{body}");
    let (code, v) = serve.post(&format!("/api/v1/plans/{hash}/approve"));
    assert_eq!(code, 409, "{v:#}");
    assert_eq!(v["code"], "plan-stale");
    assert!(
        v["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no longer planned")),
        "{v:#}"
    );

    // Itself observable: metrics that promtool accepts, readiness naming the leader.
    let (code, metrics) = http("GET", &format!("{}/metrics", serve.base), &[], None);
    assert_eq!(code, 200);
    assert!(metrics.contains("strata_server_leader 1"), "{metrics}");
    assert!(
        metrics.contains("strata_server_commits_total{state=\"applied\"}"),
        "{metrics}"
    );
    if let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(metrics.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool check metrics: {}",
            text(&out)
        );
    }

    // A restart keeps everything: the same commits, nothing applied again.
    let workflows_before = serve.get("/api/v1/workflows?limit=500").1["items"]
        .as_array()
        .map(Vec::len);
    drop(serve);
    let serve = setup.serve();
    std::thread::sleep(Duration::from_secs(2));
    let (_, list) = serve.get("/api/v1/commits");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(4), "{list:#}");
    assert_eq!(
        serve.get(&format!("/api/v1/commits/{first}")).1["state"],
        "applied"
    );
    assert_eq!(
        serve.get("/api/v1/workflows?limit=500").1["items"]
            .as_array()
            .map(Vec::len),
        workflows_before
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Purchased → in service through the server: a commit's machines onboard in a
/// workflow each (commission, validate against the profile, deploy, in service);
/// machines whose hardware deviates end in quarantine with the deviation as evidence.
#[test]
fn machines_onboard_through_the_server_and_deviating_ones_are_quarantined() {
    let dir = strata_testkit::scratch_dir("strata-serve-onboard");
    let twin = TwinProcess::start(
        &dir,
        &[
            "--hardware-fault",
            "FRA1R02U20=gpu-gen4",
            "--hardware-fault",
            "AMS1R01U12=nic-10g",
        ],
    );
    // Its policy applies the bring-up's updates too: no approval to wait for.
    let work = fleet_allowing_updates(&dir);
    git(&work, &["init", "-q", "-b", "main"]);
    let bare = dir.join("fleet.git");
    git(
        &dir,
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            bare.to_str().expect("utf8"),
        ],
    );
    git(
        &work,
        &["remote", "add", "origin", bare.to_str().expect("utf8")],
    );
    std::fs::write(dir.join("github.secret"), "gh-secret\n").expect("secret");
    std::fs::write(dir.join("gitlab.token"), "gl-token\n").expect("token");
    let setup = Setup {
        dir: dir.clone(),
        work: work.clone(),
        bare,
        endpoints: twin.endpoints.clone(),
    };
    let sha = setup.push("the example fleet");
    let serve = setup.serve();
    let c = serve.wait_commit(
        &setup,
        &sha,
        &["applied", "failed", "invalid", "waiting", "blocked"],
    );
    assert_eq!(c["state"], "applied", "{c:#}\n{}", setup.log());
    let onboarding = c["result"]["outcome"]["onboarding"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(onboarding.len() >= 10, "{c:#}");
    assert!(
        onboarding.iter().any(|m| m == "fra1/machine/FRA1R02U20"),
        "{onboarding:?}"
    );

    // Every onboarding ends: in service, or quarantined with the deviation.
    let deadline = Instant::now() + Duration::from_secs(300);
    let flows = loop {
        let (_, list) = serve.get("/api/v1/workflows?kind=onboard&limit=500");
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.len() == onboarding.len() && items.iter().all(|w| w["state"] != "running") {
            break items;
        }
        assert!(
            Instant::now() < deadline,
            "onboarding did not finish: {list:#}\n{}",
            setup.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut quarantined = Vec::new();
    let mut in_service = 0;
    for w in &flows {
        assert_eq!(w["state"], "done", "{w:#}");
        let (_, v) = serve.get(&format!(
            "/api/v1/workflows/{}",
            w["id"].as_str().expect("id")
        ));
        let steps = &v["workflow"]["steps"];
        if let Some(q) = steps[0]["evidence"]["quarantined"].as_str() {
            quarantined.push(q.to_string());
            assert_eq!(steps[1]["evidence"]["skipped"], "quarantined", "{v:#}");
        } else {
            // Joined its platform (a Proxmox node its cluster, a compute host Nova
            // and Placement), then in service.
            assert!(steps[2]["evidence"]["joined"].is_object(), "{v:#}");
            assert_eq!(steps[3]["evidence"]["in_service"], true, "{v:#}");
            assert!(
                steps[0]["evidence"]["done"]
                    .as_str()
                    .is_some_and(|d| d.contains("hardware matches profile")),
                "{v:#}"
            );
            in_service += 1;
        }
    }
    quarantined.sort();
    assert_eq!(quarantined.len(), 2, "{quarantined:#?}");
    assert!(
        quarantined[0].contains("ams1/machine/AMS1R01U12")
            && quarantined[0].contains("nic ens1f0np0 speed: expected 100G, found 10G"),
        "{quarantined:#?}"
    );
    assert!(
        quarantined[1].contains("fra1/machine/FRA1R02U20")
            && quarantined[1].contains("found PCIe Gen4 x16"),
        "{quarantined:#?}"
    );
    assert_eq!(in_service, onboarding.len() - 2);

    // Decommission: a compute host that joined Nova and Placement goes for RMA, a
    // Proxmox node carrying the fleet's VMs is retired; each is drained, removed from
    // its platform, released with its disks erased and tagged.
    let summary = |svc: &str| -> Value {
        let (code, v) = api(
            "GET",
            &format!("{}dcs/fra1/{svc}/summary", twin.admin()),
            None,
        );
        assert_eq!(code, 200, "{v}");
        v
    };
    let pve_before = summary("proxmox");
    let maas_before = summary("maas");
    let decommission = |host: &str, body: &str| -> Value {
        let auth = format!("Bearer {}", serve.token);
        let (code, out) = http(
            "POST",
            &format!("{}/api/v1/machines/fra1/{host}/decommission", serve.base),
            &[("Authorization", &auth)],
            Some(body),
        );
        let v = json_of(&out);
        assert_eq!(code, 202, "{out}");
        let id = v["workflow"].as_str().expect("workflow").to_string();
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let (_, w) = serve.get(&format!("/api/v1/workflows/{id}"));
            if w["workflow"]["state"] != "running" {
                assert_eq!(w["workflow"]["state"], "done", "{w:#}\n{}", setup.log());
                return w;
            }
            assert!(Instant::now() < deadline, "{w:#}");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // Refused up front: no reason, an unknown machine.
    let auth = format!("Bearer {}", serve.token);
    let (code, out) = http(
        "POST",
        &format!(
            "{}/api/v1/machines/fra1/fra1-r01-cmp04/decommission",
            serve.base
        ),
        &[("Authorization", &auth)],
        Some(r#"{"reason": ""}"#),
    );
    assert_eq!(code, 400, "{out}");
    let (code, out) = http(
        "POST",
        &format!(
            "{}/api/v1/machines/fra1/no-such-host/decommission",
            serve.base
        ),
        &[("Authorization", &auth)],
        Some(r#"{"reason": "gone"}"#),
    );
    assert_eq!(code, 400, "{out}");

    let w = decommission(
        "fra1-r01-cmp04",
        r#"{"reason": "ECC errors on DIMM B2", "rma": true}"#,
    );
    let steps = &w["workflow"]["steps"];
    assert_eq!(steps[0]["evidence"]["nova_disabled"], true, "{w:#}");
    assert_eq!(steps[1]["evidence"]["nova_removed"], true, "{w:#}");
    assert_eq!(steps[2]["evidence"]["after"]["status"], "Ready", "{w:#}");
    let after = &steps[3]["evidence"]["after"];
    assert_eq!(after["status"], "Broken", "{w:#}");
    assert!(after["tags"].to_string().contains("strata-rma"), "{w:#}");

    let w = decommission("fra1-r02-pve01", r#"{"reason": "end of life"}"#);
    let steps = &w["workflow"]["steps"];
    assert_eq!(steps[1]["evidence"]["proxmox_removed"], true, "{w:#}");
    let after = &steps[3]["evidence"]["after"];
    assert_eq!(after["status"], "Ready", "{w:#}");
    assert!(
        after["tags"].to_string().contains("strata-retired"),
        "{w:#}"
    );
    let pve_after = summary("proxmox");
    assert_eq!(
        pve_after["nodes"].as_u64(),
        pve_before["nodes"].as_u64().map(|n| n - 1),
        "{pve_after}"
    );
    assert!(
        pve_after["node_versions"].get("fra1-r02-pve01").is_none(),
        "{pve_after}"
    );
    // Its guests moved, none lost.
    assert_eq!(pve_after["vms"], pve_before["vms"], "{pve_after}");
    assert_eq!(pve_after["running"], pve_before["running"], "{pve_after}");
    let maas_after = summary("maas");
    assert_eq!(
        maas_after["machines"]["by_status"]["Broken"]
            .as_u64()
            .unwrap_or(0),
        maas_before["machines"]["by_status"]["Broken"]
            .as_u64()
            .unwrap_or(0)
            + 1,
        "{maas_after}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
