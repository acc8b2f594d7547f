//! Phase `ui`: the web UI of `strata serve`, first over plain HTTP (redirects, cookies,
//! headers, who may see and do what), then in headless Chromium through Playwright
//! (`scripts/clients/ui_check.py`): login through the login page, every page without a
//! console error or a failed request, cookie flags, CSRF on forms and on the API with
//! the session cookie, a viewer without the Approve button (and refused when it
//! approves anyway), the admin's Approve button, logout, and the self-service form.
//!
//! A waiting plan is made for the phase: a commit that changes a VM's tags (an update,
//! which the example policy does not apply on its own). The admin approves it through
//! the UI and the phase waits for it to be applied, so later phases find the fleet
//! converged. Screenshots of every page land in `target/ui-screenshots/`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Demo;
use super::common::{git, root};

const PYTHON: &str = "/opt/strata-tools/bin/python";
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'";

pub fn run(d: &mut Demo) {
    let started = Instant::now();
    require_playwright();
    let admin = d.admin.clone();
    let (viewer, viewer_id) = d.token(&admin, "*", "viewer", None);
    let (member, _) = d.token(&admin, "ml-research", "member", None);
    let hash = waiting_plan(d);

    http_checks(d, &admin, &viewer, &member, &hash);

    let requests = requests_route(d, &admin);
    if !requests {
        eprintln!("strata-skip: ui request form (POST /api/v1/requests is not served yet)");
    }
    let report = browser_checks(d, &admin, &viewer, &member, &hash, requests);
    if requests {
        // The request the member made through the form is the team's, as the API
        // shows it; release it again so later phases find the team's quota unused.
        let id = report["request"]["id"]
            .as_str()
            .expect("the request's id")
            .to_string();
        let (code, body) = d.call(
            "GET",
            &format!("/api/v1/requests/{id}"),
            Some(&member),
            None,
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["team"], "ml-research", "{body}");
        let (code, body) = d.call(
            "DELETE",
            &format!("/api/v1/requests/{id}"),
            Some(&member),
            None,
        );
        assert!(
            (200..300).contains(&code),
            "releasing the UI's request: {code} {body}"
        );
    }

    // The Approve button approved the plan; the server applies it.
    let deadline = Instant::now() + Duration::from_secs(120);
    let state = loop {
        let (code, body) = d.call("GET", &format!("/api/v1/plans/{hash}"), Some(&admin), None);
        assert_eq!(code, 200, "{body}");
        let state = body["plan"]["state"].as_str().unwrap_or("").to_string();
        if matches!(state.as_str(), "applied" | "failed") || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        state, "applied",
        "the plan approved through the UI was not applied"
    );

    // Logins, logouts and the approval are in the audit log; the viewer approved nothing.
    let (code, audit) = d.call("GET", "/api/v1/audit?limit=500", Some(&admin), None);
    assert_eq!(code, 200, "{audit}");
    let rows = audit["items"].as_array().expect("items");
    let has = |action: &str| rows.iter().any(|r| r["action"] == action);
    assert!(
        has("ui.login") && has("ui.logout"),
        "UI logins and logouts are audited"
    );
    let approvals: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"] == "plan.approve" && r["object"] == format!("plan/{hash}"))
        .collect();
    assert_eq!(
        approvals.len(),
        1,
        "one approval of the plan: {approvals:?}"
    );
    assert_ne!(approvals[0]["actor"], format!("token:{viewer_id}"));
    assert!(
        rows.iter()
            .any(|r| r["action"] == "ui.login" && r["actor"] == format!("token:{viewer_id}")),
        "the viewer's login is audited"
    );
    eprintln!("api phase ui: {:.1} s", started.elapsed().as_secs_f64());
}

/// The browser test needs the tools venv with Playwright and Debian's Chromium.
fn require_playwright() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import playwright.sync_api"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let chromium = std::env::var("STRATA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        ok && std::path::Path::new(&chromium).exists(),
        "the ui phase drives Chromium through Playwright: {PYTHON} with playwright and {chromium} are needed; \
         install them with `sudo scripts/install-test-deps.sh` (or skip the phase: STRATA_API_PHASES=access)"
    );
}

/// Commit a change the policy waits for and return the waiting plan's hash.
fn waiting_plan(d: &Demo) -> String {
    let spec = d.dir.path().join("spec");
    let path = spec.join("vms.yaml");
    let text = std::fs::read_to_string(&path).expect("vms.yaml");
    let line = "{ name: ci-runner1, site: fra1, role: ci-runner, cores: 8, memory_mib: 16384, disk_gb: 120, networks: [management], tags: [ci] }";
    assert!(
        text.contains(line),
        "the example's fra1 ci-runner1 changed; update the ui phase"
    );
    let changed = line.replace("tags: [ci]", "tags: [ci, ui-review]");
    std::fs::write(&path, text.replacen(line, &changed, 1)).expect("write vms.yaml");
    git(
        &spec,
        &[
            "commit",
            "-qam",
            "ui phase: tag ci-runner1 (an update waits for an approval)",
        ],
    );
    let sha = git(&spec, &["rev-parse", "HEAD"]).trim().to_string();
    let (code, body) = d.call("POST", "/api/v1/sync", Some(&d.admin), None);
    assert_eq!(code, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, body) = d.call("GET", "/api/v1/plans?state=waiting", Some(&d.admin), None);
        assert_eq!(code, 200, "{body}");
        let found = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["commit_sha"] == sha.as_str())
            .and_then(|p| p["hash"].as_str())
            .map(str::to_string);
        if let Some(h) = found {
            return h;
        }
        if Instant::now() > deadline {
            let (_, c) = d.call(
                "GET",
                &format!("/api/v1/commits/{sha}"),
                Some(&d.admin),
                None,
            );
            panic!("no waiting plan for commit {sha}: {c}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `(status, lowercased head, body)` of one request made with curl.
fn raw(
    d: &Demo,
    method: &str,
    path: &str,
    headers: &[String],
    body: Option<&str>,
) -> (u16, String, String) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-X",
        method,
        "-D",
        "-",
        "--max-time",
        "60",
        "-H",
        "X-Request-Id: api-test-ui",
    ]);
    for h in headers {
        c.arg("-H").arg(h);
    }
    if let Some(b) = body {
        c.args([
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "--data-binary",
            b,
        ]);
    }
    let out = c.arg(format!("{}{path}", d.base)).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    d.seen.lock().expect("seen").push_str(&text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_lowercase(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .collect()
}

fn bearer(t: &str) -> Vec<String> {
    vec![format!("Authorization: Bearer {t}")]
}

fn http_checks(d: &Demo, admin: &str, viewer: &str, member: &str, hash: &str) {
    // Without a session every page goes to the login page (coming back after).
    let (code, head, _) = raw(d, "GET", "/ui/", &[], None);
    assert_eq!(
        (code, header(&head, "location")),
        (303, vec!["/ui/login"]),
        "{head}"
    );
    let (code, head, _) = raw(d, "GET", "/ui/plans?state=all", &[], None);
    assert_eq!(code, 303, "{head}");
    assert_eq!(
        header(&head, "location"),
        ["/ui/login?next=%2fui%2fplans%3fstate%3dall"]
    );
    let (code, head, _) = raw(d, "POST", "/ui/logout", &[], Some("csrf=x"));
    assert_eq!(
        (code, header(&head, "location")),
        (303, vec!["/ui/login"]),
        "{head}"
    );
    assert_eq!(raw(d, "GET", "/ui", &[], None).0, 303);
    // The login page and the assets are open; every UI answer has the CSP.
    let (code, head, body) = raw(d, "GET", "/ui/login", &[], None);
    assert_eq!(code, 200, "{head}");
    assert_eq!(
        header(&head, "content-security-policy"),
        [CSP.to_lowercase()]
    );
    let login_cookie = header(&head, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with("strata_login="))
        .expect("login cookie")
        .to_string();
    assert!(
        login_cookie.contains("httponly") && login_cookie.contains("samesite=strict"),
        "{login_cookie}"
    );
    assert!(
        body.contains("name=\"csrf\"") && body.contains("type=\"password\""),
        "{body}"
    );
    let (code, head, body) = raw(d, "GET", "/ui/assets/htmx.min.js", &[], None);
    assert_eq!(code, 200);
    assert!(
        header(&head, "content-type")[0].starts_with("text/javascript"),
        "{head}"
    );
    assert!(body.contains("version:\"2.0.11\""), "the vendored htmx");
    assert_eq!(raw(d, "GET", "/ui/assets/ui.css", &[], None).0, 200);
    assert_eq!(raw(d, "GET", "/ui/assets/nope.js", &[], None).0, 404);

    // The login form: its own CSRF cookie must come back with it.
    let nonce = login_cookie
        .trim_start_matches("strata_login=")
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    let form = format!("csrf={nonce}&token={admin}&next=%2Fui%2Fplans");
    let (code, head, _) = raw(d, "POST", "/ui/login", &[], Some(&form));
    assert_eq!(code, 403, "a login without the form's cookie: {head}");
    let cookie = vec![format!("Cookie: strata_login={nonce}")];
    let (code, _, body) = raw(
        d,
        "POST",
        "/ui/login",
        &cookie,
        Some(&format!("csrf={nonce}&token=strata_0_0")),
    );
    assert_eq!(code, 401, "a bad token");
    assert!(body.contains("not accepted"), "{body}");
    let (code, head, _) = raw(d, "POST", "/ui/login", &cookie, Some(&form));
    assert_eq!(
        (code, header(&head, "location")),
        (303, vec!["/ui/plans"]),
        "{head}"
    );
    let session = header(&head, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with("strata_session="))
        .expect("session cookie")
        .to_string();
    for flag in ["httponly", "samesite=strict", "path=/", "max-age="] {
        assert!(session.contains(flag), "{flag}: {session}");
    }
    assert!(
        !session.contains("secure"),
        "no Secure over plain HTTP: {session}"
    );
    // Behind a TLS-terminating proxy the cookie is Secure.
    let mut https = cookie.clone();
    https.push("X-Forwarded-Proto: https".into());
    let (code, head, _) = raw(d, "POST", "/ui/login", &https, Some(&form));
    assert_eq!(code, 303);
    assert!(
        header(&head, "set-cookie")
            .iter()
            .any(|c| c.starts_with("strata_session=") && c.contains("; secure")),
        "{head}"
    );

    // The session reads UI pages; a UI form without the CSRF token is refused.
    let id = session
        .trim_start_matches("strata_session=")
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    let with_session = vec![format!("Cookie: strata_session={id}")];
    let (code, _, body) = raw(d, "GET", "/ui/plans", &with_session, None);
    assert_eq!(code, 200);
    assert!(body.contains(hash), "the waiting plan is listed");
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf field")
        .to_string();
    let approve = format!("/ui/plans/{hash}/approve");
    let (code, _, body) = raw(d, "POST", &approve, &with_session, Some("x=1"));
    assert_eq!(code, 403, "a UI form without the CSRF token: {body}");
    assert!(body.contains("data-code=\"csrf\""), "{body}");
    // The API takes the cookie for reads; a write needs X-CSRF-Token.
    let (code, _, body) = raw(d, "GET", "/api/v1/whoami", &with_session, None);
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = raw(d, "POST", "/api/v1/sync", &with_session, None);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("\"csrf\""), "{body}");
    let mut with_token = with_session.clone();
    with_token.push(format!("X-CSRF-Token: {csrf}"));
    assert_eq!(raw(d, "POST", "/api/v1/sync", &with_token, None).0, 202);
    // A forged session id is no session.
    let forged = vec![format!("Cookie: strata_session={}", "a".repeat(64))];
    assert_eq!(raw(d, "GET", "/ui/plans", &forged, None).0, 303);
    assert_eq!(raw(d, "GET", "/api/v1/whoami", &forged, None).0, 401);
    // Logout (with the token) ends it.
    let (code, head, _) = raw(
        d,
        "POST",
        "/ui/logout",
        &with_session,
        Some(&format!("csrf={csrf}")),
    );
    assert_eq!(code, 303, "{head}");
    assert!(
        header(&head, "set-cookie")
            .iter()
            .any(|c| c.starts_with("strata_session=;") && c.contains("max-age=0")),
        "{head}"
    );
    assert_eq!(raw(d, "GET", "/ui/plans", &with_session, None).0, 303);

    // A bearer token also opens the pages (scripts); pages escape and inline nothing.
    let (code, head, body) = raw(d, "GET", "/ui/", &bearer(admin), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        header(&head, "content-security-policy"),
        [CSP.to_lowercase()]
    );
    assert!(body.contains("Fleet overview"));
    assert_eq!(
        body.matches("<script").count(),
        body.matches("<script src=\"/ui/assets/").count(),
        "inline script"
    );
    assert!(
        !body.contains(" style=") && !body.contains("<style"),
        "inline style"
    );
    assert_eq!(raw(d, "GET", "/ui/", &bearer("strata_0_0"), None).0, 401);
    // Who sees what: the Approve button and the approval itself need a fleet operator.
    let (code, _, body) = raw(d, "GET", &format!("/ui/plans/{hash}"), &bearer(admin), None);
    assert_eq!(code, 200);
    assert!(
        body.contains("id=\"approve\"") && body.contains("class=\"diff\""),
        "{body}"
    );
    assert!(body.contains("ui-review"), "the diff shows the new tag");
    let (code, _, body) = raw(
        d,
        "GET",
        &format!("/ui/plans/{hash}"),
        &bearer(viewer),
        None,
    );
    assert_eq!(code, 200);
    assert!(
        !body.contains("id=\"approve\""),
        "a viewer sees no Approve button"
    );
    let (code, _, body) = raw(d, "POST", &approve, &bearer(viewer), Some("x=1"));
    assert_eq!(code, 403, "a viewer's approval: {body}");
    assert!(body.contains("data-code=\"forbidden\""), "{body}");
    // A team member sees no fleet plans, no audit log and no fleet workflows.
    assert_eq!(raw(d, "GET", "/ui/plans", &bearer(member), None).0, 403);
    assert_eq!(
        raw(
            d,
            "GET",
            &format!("/ui/plans/{hash}"),
            &bearer(member),
            None
        )
        .0,
        403
    );
    assert_eq!(raw(d, "GET", "/ui/audit", &bearer(member), None).0, 403);
    let (code, _, body) = raw(d, "GET", "/ui/workflows", &bearer(member), None);
    assert_eq!(code, 200);
    for kind in ["commit", "onboard", "reconcile", "approved"] {
        assert!(
            !body.contains(&format!("<td>{kind}</td>")),
            "a team member sees fleet {kind} workflows"
        );
    }
    let (code, _, body) = raw(d, "GET", "/ui/requests", &bearer(member), None);
    assert_eq!(code, 200);
    assert!(
        body.contains("hx-post=\"/api/v1/requests\"") && body.contains("ml-research"),
        "{body}"
    );
    // Bounded lists.
    assert_eq!(
        raw(d, "GET", "/ui/machines?limit=100000", &bearer(admin), None).0,
        400
    );
    assert_eq!(
        raw(d, "GET", "/ui/audit?limit=0", &bearer(admin), None).0,
        400
    );
    assert_eq!(
        raw(d, "GET", "/ui/no-such-page", &bearer(admin), None).0,
        404
    );
}

/// Whether `/api/v1/requests` is served (the self-service API).
fn requests_route(d: &Demo, admin: &str) -> bool {
    let (code, body) = d.call(
        "POST",
        "/api/v1/requests",
        Some(admin),
        Some(serde_json::json!({})),
    );
    !(code == 404 && body["code"] == "not-found")
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root().join(t) })
        .unwrap_or_else(|| root().join("target"));
    let dir = target.join("ui-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir.canonicalize().unwrap_or(dir)
}

fn browser_checks(
    d: &Demo,
    admin: &str,
    viewer: &str,
    member: &str,
    hash: &str,
    requests: bool,
) -> Value {
    let shots = screenshots_dir();
    let html = d.dir.path().join("ui-pages.html");
    let log = d.dir.path().join("ui-check.log");
    let out = d.dir.path().join("ui-check.json");
    let mut c = Command::new(PYTHON);
    c.arg(root().join("scripts/clients/ui_check.py"))
        .args(["--base", &d.base, "--plan", hash, "--shots"])
        .arg(&shots)
        .arg("--html")
        .arg(&html)
        .env("STRATA_UI_ADMIN", admin)
        .env("STRATA_UI_VIEWER", viewer)
        .env("STRATA_UI_MEMBER", member)
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(std::fs::File::create(&log).expect("log"));
    if requests {
        c.args(["--requests", "ml-research"]);
    }
    let started = Instant::now();
    let mut child = c.spawn().expect("run ui_check.py");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(240) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let pages = std::fs::read_to_string(&html).unwrap_or_default();
    d.seen.lock().expect("seen").push_str(&pages);
    assert!(
        status.is_some_and(|s| s.success()),
        "ui_check.py failed ({status:?}, {:.0} s); screenshots in {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    let report: Value = serde_json::from_str(&stdout).expect("ui_check.py prints JSON");
    let n = report["screenshots"].as_u64().unwrap_or(0);
    assert!(n >= 12, "{report}");
    for c in report["checks"].as_array().into_iter().flatten() {
        eprintln!("  ui: {}", c.as_str().unwrap_or(""));
    }
    eprintln!(
        "  ui: {n} screenshots in {} ({:.1} s in the browser)",
        shots.display(),
        started.elapsed().as_secs_f64()
    );
    assert!(!pages.is_empty(), "no page markup came back");
    report
}
