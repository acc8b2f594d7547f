//! Phase `schema`: the API describes itself, truthfully.
//!
//! - `GET /api/v1/openapi.json` (a token needed, like all of `/api/v1`) is an OpenAPI
//!   3.1 document whose operations are exactly the routes the router serves. The
//!   router is asked, not a list kept here: every path the server's source registers
//!   and every documented path gets an `OPTIONS` request (never a handler's method, so
//!   nothing acts), which the router answers 405 with `Allow` naming its methods, or 404
//!   when no API route has that path.
//! - `/api/v1/docs` is an HTML page (Swagger UI) under a Content-Security-Policy of
//!   `'self'` whose every script, style sheet and link is one of this server's paths,
//!   each served.
//! - `scripts/clients/schemathesis_check.py` finds no response that differs from the
//!   document: real objects first, then schemathesis 4 (`--checks all`, fixed seed)
//!   with the admin token over the reads and harmless writes, and with a read-only
//!   token over the writes (which the bearer middleware refuses before any handler
//!   runs, so the demo stays as it was).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use strata_testkit::{OptOut, opted_out, repo_root, script, venv_bin};

use super::Demo;

pub fn run(d: &mut Demo) {
    let admin = d.admin.clone();

    // --- Both routes need a token, like the rest of /api/v1.
    for path in [
        "/api/v1/openapi.json",
        "/api/v1/docs",
        "/api/v1/docs/strata-docs.js",
    ] {
        let (code, body) = d.call("GET", path, None, None);
        assert_eq!(
            (code, body["code"].as_str()),
            (401, Some("unauthenticated")),
            "{path}"
        );
    }

    // --- The document: OpenAPI 3.1, bearer everywhere.
    let (code, doc) = d.call("GET", "/api/v1/openapi.json", Some(&admin), None);
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (bearer["type"].as_str(), bearer["scheme"].as_str()),
        (Some("http"), Some("bearer")),
        "{bearer}"
    );
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    let documented = documented(&doc);
    for (path, methods) in &documented {
        assert!(path.starts_with("/api/v1/"), "{path}");
        for m in methods {
            let op = &doc["paths"][path][m.to_lowercase()];
            assert!(
                op["operationId"].is_string(),
                "{m} {path} has no operationId"
            );
            for (status, r) in op["responses"].as_object().expect("responses") {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        r["content"]["application/problem+json"].is_object(),
                        "{m} {path} {status}: {r}"
                    );
                }
            }
        }
    }

    // --- Every list bounds `limit` as documented (1 to 500), the GitOps lists too.
    for path in [
        "/api/v1/commits?limit=0",
        "/api/v1/plans?limit=501",
        "/api/v1/workflows?limit=0",
        "/api/v1/machines?limit=501",
    ] {
        let (code, body) = d.call("GET", path, Some(&admin), None);
        assert_eq!(
            (code, body["code"].as_str()),
            (400, Some("bad-limit")),
            "{path}: {body}"
        );
    }

    // --- Exactly the router's routes.
    let mut candidates: BTreeSet<String> = documented.keys().cloned().collect();
    candidates.extend(source_paths());
    let mut served = BTreeMap::new();
    for path in &candidates {
        if let Some(methods) = allowed(d, path) {
            served.insert(path.clone(), methods);
        }
    }
    // An undocumented literal path that a served template also matches, with the same
    // methods, reached that template's route: the top-level `/webhooks/github`, probed
    // under `/api/v1`, is `/webhooks/{id}`. (A route of its own, such as
    // `/requests/policy` beside `/requests/{id}`, has methods of its own.)
    let templates: Vec<(String, BTreeSet<String>)> = served
        .iter()
        .filter(|(p, _)| p.contains('{'))
        .map(|(p, m)| (p.clone(), m.clone()))
        .collect();
    served.retain(|p, m| {
        p.contains('{')
            || documented.contains_key(p)
            || !templates.iter().any(|(t, tm)| tm == m && matches(t, p))
    });
    assert!(
        served.contains_key("/api/v1/whoami") && served.contains_key("/api/v1/sync"),
        "{served:?}"
    );
    assert_eq!(
        served, documented,
        "the router's routes (left) and the document's (right) differ"
    );
    eprintln!(
        "schema: {} paths, {} operations, as the router serves them",
        served.len(),
        served.values().map(BTreeSet::len).sum::<usize>()
    );

    // --- The page: only this server's assets, under a CSP of 'self'.
    let (code, headers, html) = raw(d, "/api/v1/docs", &admin);
    assert_eq!(code, 200, "{html}");
    assert!(
        header(&headers, "content-type").starts_with("text/html"),
        "{headers}"
    );
    let csp = header(&headers, "content-security-policy");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    for directive in csp.split(';') {
        for source in directive.split_whitespace().skip(1) {
            assert!(
                ["'self'", "'none'"].contains(&source),
                "the CSP allows {source}: {csp}"
            );
        }
    }
    let refs = references(&html);
    assert!(
        refs.iter().any(|r| r.ends_with(".js")),
        "the page loads no script: {html}"
    );
    let mut loaded = String::new();
    for r in &refs {
        assert!(
            !r.contains("//") && !r.starts_with("data:") && !r.starts_with("javascript:"),
            "the page refers outside this server: {r}"
        );
        let path = if r.starts_with('/') {
            r.clone()
        } else {
            format!("/api/v1/{r}")
        };
        let (code, headers, body) = raw(d, &path, &admin);
        assert_eq!(code, 200, "{path}: {headers}");
        let kind = header(&headers, "content-type");
        if path.ends_with(".js") {
            assert!(kind.starts_with("text/javascript"), "{path}: {headers}");
        } else if path.ends_with(".css") {
            assert!(kind.starts_with("text/css"), "{path}: {headers}");
        }
        loaded.push_str(&body);
    }
    // Swagger UI, started on this server's document, without its external validator.
    assert!(
        loaded.contains("SwaggerUIBundle"),
        "the page does not load Swagger UI"
    );
    assert!(
        loaded.contains("url: \"openapi.json\"") && loaded.contains("validatorUrl: null"),
        "the page does not start Swagger UI on openapi.json alone"
    );
    let (code, _, body) = raw(d, "/api/v1/docs/nope.js", &admin);
    assert_eq!(code, 404, "{body}");

    // --- schemathesis: every response as documented.
    if opted_out(OptOut::Clients, "schemathesis against the API document") {
        return;
    }
    let python = venv_bin("python");
    let found = Command::new(&python)
        .args(["-c", "import schemathesis"])
        .status();
    assert!(
        found.is_ok_and(|s| s.success()),
        "schemathesis is not importable by {}: run scripts/install-test-deps.sh (or set STRATA_SKIP_CLIENT_TESTS=1)",
        python.display()
    );
    let (readonly, _) = d.token(&admin, "*", "viewer", Some(&["read"]));
    let reports = repo_root().join("target/schemathesis");
    let started = Instant::now();
    let out = Command::new(&python)
        .arg(script("clients/schemathesis_check.py"))
        .env("STRATA_API", &d.base)
        .env("STRATA_ADMIN_TOKEN", &admin)
        .env("STRATA_READONLY_TOKEN", &readonly)
        .env("STRATA_SCHEMATHESIS_REPORTS", &reports)
        .output()
        .expect("run schemathesis_check.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Its own summary lines and schemathesis's result lines (`N generated, N passed`,
    // `=== No issues found in 24.17s ===`).
    for line in text.lines().filter(|l| {
        l.starts_with("schemathesis_check")
            || l.contains(" generated, ")
            || (l.starts_with("====") && l.contains(" in ") && l.trim_end().ends_with('='))
    }) {
        eprintln!("schema: {line}");
    }
    eprintln!("schema: schemathesis_check took {:.0?}", started.elapsed());
    assert!(
        out.status.success(),
        "schemathesis found responses that differ from the document:\n{text}"
    );
    assert!(
        text.contains("pass 0 0 failures, pass 1 exit 0, pass 2 exit 0"),
        "{text}"
    );
}

/// Documented `path → {METHOD}`.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let methods: BTreeSet<String> = ["get", "put", "post", "patch", "delete"]
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .map(str::to_uppercase)
            .collect();
        out.insert(path.clone(), methods);
    }
    out
}

/// Every path literal the server's source registers with `.route(...)`, under
/// `/api/v1` (those of other routers, such as `/healthz` or the UI's, are probed too:
/// the API has no such route, so they answer 404 there and drop out).
fn source_paths() -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![repo_root().join("crates/strata-server/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("server source") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut rest = text.as_str();
            while let Some(i) = rest.find(".route(") {
                rest = rest[i + 7..].trim_start();
                if let Some(lit) = rest.strip_prefix('"').and_then(|r| r.split('"').next())
                    && lit.starts_with('/')
                    && !lit.contains(char::is_whitespace)
                {
                    out.push(format!("/api/v1{lit}"));
                }
            }
        }
    }
    out
}

/// Whether `path` (no parameters) fits `template` segment by segment.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| a.starts_with('{') || a == b)
}

/// The methods the router serves at `path` (`{param}`s filled in), from the `Allow` of
/// its 405 to `OPTIONS`; `None` when the API has no such route.
fn allowed(d: &Demo, path: &str) -> Option<BTreeSet<String>> {
    let concrete: String = path
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/");
    let (code, headers, body) = raw_method(d, "OPTIONS", &concrete, &d.admin);
    match code {
        404 => {
            assert!(body.contains("not-found"), "{path}: {body}");
            None
        }
        405 => Some(
            header(&headers, "allow")
                .split(',')
                .map(|m| m.trim().to_uppercase())
                .filter(|m| !m.is_empty() && m != "HEAD")
                .collect(),
        ),
        other => panic!("OPTIONS {concrete}: {other} {headers}{body}"),
    }
}

fn raw(d: &Demo, path: &str, token: &str) -> (u16, String, String) {
    raw_method(d, "GET", path, token)
}

/// `(status, headers, body)`, the body recorded for the secrets check.
fn raw_method(d: &Demo, method: &str, path: &str, token: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "-X", method, "--max-time", "60", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}{path}", d.base))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    d.seen.lock().expect("seen").push_str(&text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

fn header(head: &str, name: &str) -> String {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

/// The values of every `src` and `href` attribute.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}
