//! Phase `access`: authentication on every route, tokens per team and role, the role
//! × endpoint × another team's object matrix (denied, never data), the read scope,
//! revocation, the audit log, and the inventory with paging and ETags.

use serde_json::{Value, json};

use super::Demo;

pub fn run(d: &mut Demo) {
    let admin = d.admin.clone();

    // --- Authentication on every API route; the open ones stay open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(d.call("GET", path, None, None).0, 200, "{path}");
    }
    let routes = [
        ("GET", "/api/v1/whoami"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("GET", "/api/v1/teams"),
        ("GET", "/api/v1/audit"),
        ("POST", "/api/v1/audit/verify"),
        ("GET", "/api/v1/dcs"),
        ("GET", "/api/v1/machines"),
        ("GET", "/api/v1/vms"),
        ("GET", "/api/v1/prefixes"),
        ("GET", "/api/v1/commits"),
        ("GET", "/api/v1/plans"),
        ("GET", "/api/v1/workflows"),
        ("POST", "/api/v1/sync"),
        ("GET", "/api/v1/no-such-route"),
    ];
    for (m, p) in routes {
        let (code, body) = d.call(m, p, None, None);
        assert_eq!(code, 401, "{m} {p} without a token: {body}");
        assert_eq!(body["code"], "unauthenticated");
        let (code, _) = d.call(m, p, Some("strata_0000000000000000_00"), None);
        assert_eq!(code, 401, "{m} {p} with a malformed token");
        let forged = format!("strata_{}_{}", "a".repeat(16), "b".repeat(64));
        assert_eq!(d.call(m, p, Some(&forged), None).0, 401, "{m} {p} forged");
    }

    let (code, me) = d.call("GET", "/api/v1/whoami", Some(&admin), None);
    assert_eq!(code, 200, "{me}");
    assert_eq!(me["grants"][0], json!({"team": "*", "role": "admin"}));

    // --- Tokens per team and role.
    let teams = ["platform", "ml-research"];
    let roles = ["viewer", "member", "operator", "admin"];
    let mut tok: std::collections::HashMap<(String, String), (String, String)> = Default::default();
    for t in teams {
        for r in roles {
            tok.insert((t.into(), r.into()), d.token(&admin, t, r, None));
        }
    }
    let fleet_viewer = d.token(&admin, "*", "viewer", None).0;
    // A team admin makes tokens for its team only, never stronger than itself.
    let ml_admin = &tok[&("ml-research".into(), "admin".into())].0;
    let ml_member = &tok[&("ml-research".into(), "member".into())].0;
    let (code, _) = d.call(
        "POST",
        "/api/v1/tokens",
        Some(ml_admin),
        Some(json!({"name": "x", "team": "ml-research", "role": "operator"})),
    );
    assert_eq!(code, 201);
    for bad in [
        json!({"name": "x", "team": "platform", "role": "viewer"}),
        json!({"name": "x", "team": "*", "role": "viewer"}),
        json!({"name": "x", "team": "ml-research", "role": "viewer", "expires_in_s": 0}),
    ] {
        let (code, body) = d.call("POST", "/api/v1/tokens", Some(ml_admin), Some(bad.clone()));
        assert_eq!(code, 403, "{bad}: {body}");
    }
    let (code, body) = d.call(
        "POST",
        "/api/v1/tokens",
        Some(ml_member),
        Some(json!({"name": "x", "team": "ml-research", "role": "viewer"})),
    );
    assert_eq!(code, 403, "{body}");
    let (code, body) = d.call(
        "POST",
        "/api/v1/tokens",
        Some(&admin),
        Some(json!({"name": "x", "team": "ml-research", "role": "root"})),
    );
    assert_eq!(
        (code, body["code"].as_str()),
        (400, Some("bad-body")),
        "{body}"
    );

    // --- The matrix: every role of one team against the other team's objects and
    // the fleet's, on every route: denied, never data.
    let platform_admin_token_id = tok[&("platform".into(), "admin".into())].1.clone();
    let (_, fleet_wfs) = d.call("GET", "/api/v1/workflows?limit=5", Some(&admin), None);
    let fleet_wf = fleet_wfs["items"][0]["id"]
        .as_str()
        .expect("a workflow")
        .to_string();
    let (_, plans) = d.call("GET", "/api/v1/commits?limit=1", Some(&admin), None);
    let sha = plans["items"][0]["sha"]
        .as_str()
        .expect("a commit")
        .to_string();
    for r in roles {
        let (me, _) = &tok[&("ml-research".into(), r.into())];
        let me = me.as_str();
        let denied: Vec<(&str, String, Option<Value>, &[u16])> = vec![
            ("GET", "/api/v1/teams/platform".into(), None, &[404]),
            (
                "GET",
                "/api/v1/tokens?team=platform".to_string(),
                None,
                &[200],
            ),
            (
                "DELETE",
                format!("/api/v1/tokens/{platform_admin_token_id}"),
                None,
                &[404],
            ),
            ("GET", "/api/v1/audit?team=platform".into(), None, &[403]),
            ("GET", "/api/v1/audit".into(), None, &[400]),
            ("POST", "/api/v1/audit/verify".into(), None, &[403]),
            ("GET", "/api/v1/commits".into(), None, &[403]),
            ("GET", format!("/api/v1/commits/{sha}"), None, &[403]),
            ("GET", "/api/v1/plans".into(), None, &[403]),
            ("GET", format!("/api/v1/workflows/{fleet_wf}"), None, &[404]),
            (
                "POST",
                format!("/api/v1/workflows/{fleet_wf}/cancel"),
                None,
                &[404],
            ),
            (
                "POST",
                format!("/api/v1/plans/{}/approve", "0".repeat(64)),
                None,
                &[403],
            ),
            ("POST", "/api/v1/sync".into(), None, &[403]),
            (
                "POST",
                "/api/v1/dcs/fra1/proxmox/upgrade".into(),
                Some(json!({"version": "9.9"})),
                &[403],
            ),
            (
                "POST",
                "/api/v1/machines/fra1/fra1-r01-cmp01/decommission".into(),
                Some(json!({"reason": "x"})),
                &[403],
            ),
        ];
        for (m, p, body, want) in denied {
            let (code, got) = d.call(m, &p, Some(me), body);
            assert!(
                want.contains(&code),
                "ml-research/{r}: {m} {p} → {code} {got}"
            );
            let text = got.to_string();
            assert!(
                !text.contains("platform-"),
                "ml-research/{r}: {m} {p} leaked: {text}"
            );
            if code == 200 {
                // A list the caller may not see into is empty, not an error.
                assert_eq!(got["items"], json!([]), "ml-research/{r}: {p}: {got}");
            }
        }
        // Its own team is visible.
        let (code, body) = d.call("GET", "/api/v1/teams/ml-research", Some(me), None);
        assert_eq!(code, 200, "{body}");
        let (_, body) = d.call("GET", "/api/v1/teams", Some(me), None);
        let names: Vec<&str> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names, ["ml-research"], "ml-research/{r} sees only its team");
        let (_, body) = d.call("GET", "/api/v1/workflows", Some(me), None);
        assert_eq!(
            body["items"],
            json!([]),
            "fleet workflows are not a team's: {body}"
        );
    }
    // A fleet viewer reads everything and changes nothing.
    assert_eq!(
        d.call("GET", "/api/v1/commits", Some(&fleet_viewer), None)
            .0,
        200
    );
    assert_eq!(
        d.call("GET", "/api/v1/teams/platform", Some(&fleet_viewer), None)
            .0,
        200
    );
    let (code, body) = d.call("POST", "/api/v1/sync", Some(&fleet_viewer), None);
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    // A read-only token is refused any write before the handler runs.
    let (ro, _) = d.token(&admin, "*", "admin", Some(&["read"]));
    let (code, body) = d.call("POST", "/api/v1/sync", Some(&ro), None);
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("insufficient-scope")),
        "{body}"
    );
    assert_eq!(d.call("GET", "/api/v1/commits", Some(&ro), None).0, 200);

    // A body over the API's limit (1 MiB) is refused before it is read.
    let big = d.dir.path().join("big.json");
    let body = json!({"name": "x".repeat(2 << 20), "team": "platform", "role": "viewer"});
    std::fs::write(&big, body.to_string()).expect("write");
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/json",
        ])
        .arg("-H")
        .arg(format!("Authorization: Bearer {admin}"))
        .arg("--data-binary")
        .arg(format!("@{}", big.display()))
        .arg(format!("{}/api/v1/tokens", d.base))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413", "a 2 MiB body");

    // --- Revocation takes effect at once.
    let (victim, victim_id) = d.token(&admin, "platform", "viewer", None);
    assert_eq!(d.call("GET", "/api/v1/whoami", Some(&victim), None).0, 200);
    assert_eq!(
        d.call(
            "DELETE",
            &format!("/api/v1/tokens/{victim_id}"),
            Some(&admin),
            None
        )
        .0,
        204
    );
    let (code, body) = d.call("GET", "/api/v1/whoami", Some(&victim), None);
    assert_eq!(code, 401, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or("").contains("revoked"),
        "{body}"
    );
    // A listed token never shows its secret or hash.
    let (_, list) = d.call("GET", "/api/v1/tokens?limit=500", Some(&admin), None);
    assert!(
        list["items"].as_array().expect("items").len() >= 10,
        "{list}"
    );
    assert!(!list.to_string().contains("argon2"), "{list}");

    // --- Inventory: bounded lists, cursors, ETags.
    let (code, dcs) = d.call("GET", "/api/v1/dcs", Some(ml_member), None);
    assert_eq!(code, 200, "{dcs}");
    let names: Vec<&str> = dcs["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(names, ["ams1", "fra1", "waw1"]);
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (code, page) = d.call(
            "GET",
            &format!("/api/v1/machines?limit=7{cursor}"),
            Some(ml_member),
            None,
        );
        assert_eq!(code, 200, "{page}");
        for m in page["items"].as_array().expect("items") {
            all.push(format!(
                "{}/{}",
                m["dc"].as_str().unwrap_or(""),
                m["hostname"].as_str().unwrap_or("")
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(all, sorted, "pages are in order and never repeat");
    assert!(all.len() > 20, "{}", all.len());
    assert_eq!(
        d.call("GET", "/api/v1/machines?limit=501", Some(ml_member), None)
            .0,
        400
    );
    assert_eq!(
        d.call("GET", "/api/v1/machines?bogus=1", Some(ml_member), None)
            .0,
        400
    );
    let (code, m) = d.call(
        "GET",
        &format!("/api/v1/machines/{}", all[0]),
        Some(ml_member),
        None,
    );
    assert_eq!(code, 200, "{m}");
    assert!(m["bmc"].get("credential").is_none(), "{m}");
    // A machine the server onboarded carries its onboarding (commissioning facts and
    // hardware validation are that workflow's evidence).
    let (_, flows) = d.call(
        "GET",
        "/api/v1/workflows?kind=onboard&limit=1",
        Some(&admin),
        None,
    );
    let subject = flows["items"][0]["subject"]
        .as_str()
        .expect("an onboarding")
        .to_string();
    let id = subject.split_whitespace().nth(1).expect("resource id");
    let (dc, serial) = (
        id.split('/').next().unwrap_or(""),
        id.rsplit('/').next().unwrap_or(""),
    );
    let (_, in_dc) = d.call(
        "GET",
        &format!("/api/v1/machines?dc={dc}&limit=500"),
        Some(ml_member),
        None,
    );
    let host = in_dc["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|m| m["serial"] == serial)
        .and_then(|m| m["hostname"].as_str())
        .expect("the machine")
        .to_string();
    let (code, m) = d.call(
        "GET",
        &format!("/api/v1/machines/{dc}/{host}"),
        Some(ml_member),
        None,
    );
    assert_eq!(code, 200, "{m}");
    assert_eq!(m["onboarding"]["workflow"], flows["items"][0]["id"], "{m}");
    assert!(
        m["onboarding"]["steps"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{m}"
    );
    let etag = std::process::Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "-H"])
        .arg(format!("Authorization: Bearer {ml_member}"))
        .arg(format!("{}/api/v1/machines/{}", d.base, all[0]))
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&etag.stdout).to_lowercase();
    let tag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag")
        .trim()
        .to_string();
    assert!(
        head.contains("x-request-id:") && head.contains("x-content-type-options: nosniff"),
        "{head}"
    );
    let cond = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {ml_member}"))
        .args(["-H", &format!("If-None-Match: {tag}")])
        .arg(format!("{}/api/v1/machines/{}", d.base, all[0]))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&cond.stdout), "304");
    let (code, body) = d.call(
        "GET",
        "/api/v1/machines/fra1/no-such-host",
        Some(ml_member),
        None,
    );
    assert_eq!(
        (code, body["code"].as_str()),
        (404, Some("machine-not-found")),
        "{body}"
    );

    // --- The audit log: every mutation above, by whom, with the request id.
    let (code, log) = d.call("GET", "/api/v1/audit?limit=500", Some(&admin), None);
    assert_eq!(code, 200, "{log}");
    let items = log["items"].as_array().expect("items");
    let creates = items
        .iter()
        .filter(|e| e["action"] == "token.create")
        .count();
    assert!(creates >= 11, "{creates} token.create records");
    let revoke = items
        .iter()
        .find(|e| e["action"] == "token.revoke")
        .expect("revoke record");
    assert_eq!(revoke["request_id"], "api-test");
    assert_eq!(revoke["actor"], me["actor"]);
    assert_eq!(revoke["object"], format!("token/{victim_id}"));
    // A team admin reads its team's records only.
    let (code, own) = d.call(
        "GET",
        "/api/v1/audit?team=ml-research",
        Some(ml_admin),
        None,
    );
    assert_eq!(code, 200);
    assert!(
        own["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|e| e["team"] == "ml-research"),
        "{own}"
    );
    let (code, body) = d.call("POST", "/api/v1/audit/verify", Some(&admin), None);
    assert_eq!(
        (code, body["broken_at"].clone()),
        (200, Value::Null),
        "{body}"
    );

    // Tokens never appear in the server's output.
    let log = d.log.lock().expect("log").clone();
    for (t, _) in tok.values() {
        assert!(!log.contains(t.as_str()), "a token was logged");
    }
}
