//! Phase `webhooks`: outbound webhooks as a CMDB meets them, and the usage export.
//!
//! A receiver in this test (a plain TCP server) fails the first two deliveries to
//! its `/fleet` path with 500, then accepts. A fleet admin subscribes it to `ip.*`;
//! IP allocations and a release through the API must all arrive there, in `seq`
//! order, none skipped after the failures (the failed record is retried, with the
//! same delivery id), each signed with HMAC-SHA256 under the secret (checked by
//! Python's `hmac`, not by strata's code). A team's subscription gets only its
//! team's records; another team's nothing of them. The secret is never in a
//! response and not in clear in the database file. `GET /api/v1/usage` answers CSV
//! with a header row.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Demo;

const SECRET: &str = "whsec-strata-test-3f9a1c0e5b7d2468";
const OTHER_SECRET: &str = "whsec-other-team-8e1b2c3d4f5a6978";

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answered: u16,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// A receiver on 127.0.0.1: its base URL and what it got. Requests to `/fleet`
/// are answered 500 the first `fail` times, everything else 200.
fn receiver(fail: usize) -> (String, Arc<Mutex<Vec<Got>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let got = Arc::new(Mutex::new(Vec::<Got>::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        let mut failed = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut r = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let answered = if path == "/fleet" && failed < fail {
                failed += 1;
                500
            } else {
                200
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {answered} {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                if answered == 200 {
                    "OK"
                } else {
                    "Internal Server Error"
                }
            );
            let _ = stream.flush();
            g.lock().expect("got").push(Got {
                path,
                headers,
                body,
                answered,
            });
        }
    });
    (base, got)
}

/// `(status, content type, body)` of a GET, for answers that are not JSON.
fn get_raw(d: &Demo, path: &str, token: &str) -> (u16, String, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}\n%{content_type}",
            "--max-time",
            "60",
        ])
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}{path}", d.base))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    d.seen.lock().expect("seen").push_str(&text);
    let (rest, ctype) = text.rsplit_once('\n').unwrap_or(("", ""));
    let (body, code) = rest.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        ctype.trim().to_string(),
        body.to_string(),
    )
}

/// How many of `got`'s requests to `path` were answered 2xx.
fn accepted(got: &Mutex<Vec<Got>>, path: &str) -> usize {
    got.lock()
        .expect("got")
        .iter()
        .filter(|g| g.path == path && g.answered == 200)
        .count()
}

/// Every signature checked by Python's hmac module under `secret`: the number that
/// do not verify.
fn bad_signatures(all: &[Got], secret: &str) -> usize {
    let list: Vec<Value> = all
        .iter()
        .map(|g| {
            json!({"sig": g.header("x-strata-signature-256"),
                   "body": String::from_utf8_lossy(&g.body)})
        })
        .collect();
    let file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(file.path(), Value::Array(list).to_string()).expect("write");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, json, hmac, hashlib\n\
             items = json.load(open(sys.argv[1]))\n\
             key = sys.argv[2].encode()\n\
             bad = [i for i in items if not hmac.compare_digest(i['sig'], 'sha256=' + \
             hmac.new(key, i['body'].encode(), hashlib.sha256).hexdigest())]\n\
             print(len(bad))",
        )
        .arg(file.path())
        .arg(secret)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

pub fn run(d: &mut Demo) {
    let admin = d.admin.clone();
    let (team_admin, _) = d.token(&admin, "ml-research", "admin", None);
    let (member, _) = d.token(&admin, "ml-research", "member", None);
    let (other_admin, _) = d.token(&admin, "platform", "admin", None);
    let (fleet_viewer, _) = d.token(&admin, "*", "viewer", None);
    let (base, got) = receiver(2);

    // Refused subscriptions.
    let good = json!({"url": format!("{base}/fleet"), "secret": SECRET, "events": ["ip.*"]});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, code) in [
        (with("url", json!("ftp://127.0.0.1/x")), 422),
        (
            with("url", json!(format!("http://cmdb:pw@{}/x", &base[7..]))),
            422,
        ),
        (with("events", json!([])), 422),
        (with("events", json!(["ip*"])), 422),
        (with("secret", json!("short")), 422),
        (with("unknown", json!(1)), 400),
    ] {
        let (c, b) = d.call("POST", "/api/v1/webhooks", Some(&admin), Some(body.clone()));
        assert_eq!(c, code, "{body} → {b}");
    }
    // Every team's records need a fleet admin; a team's its admins.
    for (token, team) in [
        (&team_admin, None),
        (&member, Some("ml-research")),
        (&team_admin, Some("platform")),
        (&fleet_viewer, None),
    ] {
        let mut body = good.clone();
        if let Some(t) = team {
            body["team"] = json!(t);
        }
        let (c, b) = d.call("POST", "/api/v1/webhooks", Some(token), Some(body));
        assert_eq!(c, 403, "{team:?}: {b}");
    }

    // The subscriptions.
    let (c, fleet_sub) = d.call("POST", "/api/v1/webhooks", Some(&admin), Some(good.clone()));
    assert_eq!(c, 201, "{fleet_sub}");
    let fleet_id = fleet_sub["id"].as_str().expect("id").to_string();
    assert_eq!(fleet_sub["team"], Value::Null);
    assert_eq!(fleet_sub["events"], json!(["ip.*"]));
    let (c, team_sub) = d.call(
        "POST",
        "/api/v1/webhooks",
        Some(&team_admin),
        Some(json!({"url": format!("{base}/team"), "secret": SECRET,
                    "events": ["ip.allocate"], "team": "ml-research"})),
    );
    assert_eq!(c, 201, "{team_sub}");
    let team_id = team_sub["id"].as_str().expect("id").to_string();
    let (c, other_sub) = d.call(
        "POST",
        "/api/v1/webhooks",
        Some(&other_admin),
        Some(
            json!({"url": format!("{base}/other"), "secret": OTHER_SECRET,
                    "events": ["*"], "team": "platform"}),
        ),
    );
    assert_eq!(c, 201, "{other_sub}");
    let other_id = other_sub["id"].as_str().expect("id").to_string();

    // Who sees which.
    let ids = |token: &str| -> Vec<String> {
        let (c, b) = d.call("GET", "/api/v1/webhooks", Some(token), None);
        assert_eq!(c, 200, "{b}");
        let mut v: Vec<String> = b["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|w| w["id"].as_str().map(str::to_string))
            .collect();
        v.sort();
        v
    };
    let mut all = vec![fleet_id.clone(), team_id.clone(), other_id.clone()];
    all.sort();
    assert_eq!(ids(&admin), all);
    assert_eq!(ids(&team_admin), vec![team_id.clone()]);
    assert_eq!(ids(&other_admin), vec![other_id.clone()]);
    assert!(ids(&member).is_empty());
    assert!(ids(&fleet_viewer).is_empty());
    for token in [&member, &other_admin] {
        let (c, _) = d.call(
            "GET",
            &format!("/api/v1/webhooks/{team_id}"),
            Some(token),
            None,
        );
        assert_eq!(c, 404);
    }
    let (c, shown) = d.call(
        "GET",
        &format!("/api/v1/webhooks/{fleet_id}"),
        Some(&admin),
        None,
    );
    assert_eq!(c, 200, "{shown}");
    assert_eq!(shown["url"], format!("{base}/fleet"));

    // Address changes: four allocations, then one released.
    let (c, pools) = d.call("GET", "/api/v1/ipam/pools?dc=fra1", Some(&member), None);
    assert_eq!(c, 200, "{pools}");
    let pool = pools["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| p["kind"] == "addresses")
        .max_by_key(|p| p["range_size"].as_u64().unwrap_or(0))
        .and_then(|p| p["id"].as_str())
        .expect("an address pool")
        .to_string();
    let mut expected = Vec::new();
    let mut allocated = Vec::new();
    for i in 0..4 {
        let (c, a) = d.call(
            "POST",
            &format!("/api/v1/ipam/pools/{pool}/allocations"),
            Some(&member),
            Some(json!({"team": "ml-research", "description": format!("cmdb {i}")})),
        );
        assert_eq!(c, 201, "{a}");
        let id = a["id"].as_str().expect("id").to_string();
        expected.push(("ip.allocate".to_string(), format!("ip/{id}")));
        allocated.push(id);
    }
    let (c, b) = d.call(
        "DELETE",
        &format!("/api/v1/ipam/allocations/{}", allocated[1]),
        Some(&member),
        None,
    );
    assert_eq!(c, 204, "{b}");
    expected.push(("ip.release".to_string(), format!("ip/{}", allocated[1])));

    // Everything arrives (the first record after two failures: 1 s, then 2 s).
    let deadline = Instant::now() + Duration::from_secs(25);
    while (accepted(&got, "/fleet") < expected.len() || accepted(&got, "/team") < 4)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    // A moment more: nothing else may arrive.
    std::thread::sleep(Duration::from_millis(1500));
    let all_got = got.lock().expect("got").clone();
    let fleet: Vec<&Got> = all_got.iter().filter(|g| g.path == "/fleet").collect();
    assert!(
        fleet.len() >= 2 && fleet[0].answered == 500 && fleet[1].answered == 500,
        "the receiver failed the first two: {fleet:?}"
    );
    // The failed record was retried, with the same id and increasing attempts, and
    // nothing went before it.
    let first = fleet[0].json();
    for (n, g) in fleet.iter().take(3).enumerate() {
        assert_eq!(
            g.json()["seq"],
            first["seq"],
            "attempt {n} is the same record"
        );
        assert_eq!(
            g.header("x-strata-delivery"),
            first["id"].as_str().unwrap_or("?")
        );
        assert_eq!(g.header("x-strata-attempt"), (n + 1).to_string());
    }
    let delivered: Vec<Value> = fleet
        .iter()
        .filter(|g| g.answered == 200)
        .map(|g| g.json())
        .collect();
    let got_order: Vec<(String, String)> = delivered
        .iter()
        .map(|v| {
            (
                v["action"].as_str().unwrap_or("").to_string(),
                v["object"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(got_order, expected, "every event, in order, once");
    let seqs: Vec<i64> = delivered.iter().filter_map(|v| v["seq"].as_i64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {seqs:?}"
    );
    for g in &fleet {
        let v = g.json();
        assert_eq!(
            g.header("x-strata-event"),
            v["action"].as_str().unwrap_or("?")
        );
        assert_eq!(
            g.header("x-strata-delivery"),
            v["id"].as_str().unwrap_or("?")
        );
        assert_eq!(g.header("content-type"), "application/json");
        assert!(v["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
        for k in ["actor", "team", "before", "after"] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
    }
    assert!(
        delivered[0]["after"]["address"].is_string(),
        "{}",
        delivered[0]
    );
    assert_eq!(delivered[4]["before"]["id"], allocated[1].as_str());
    let (mine, theirs): (Vec<Got>, Vec<Got>) =
        all_got.iter().cloned().partition(|g| g.path != "/other");
    assert_eq!(bad_signatures(&mine, SECRET), 0, "every signature verifies");
    assert_eq!(
        bad_signatures(&theirs, OTHER_SECRET),
        0,
        "under each one's secret"
    );
    // The team's subscription: its team's allocations only.
    let team: Vec<Value> = all_got
        .iter()
        .filter(|g| g.path == "/team")
        .map(|g| g.json())
        .collect();
    assert_eq!(team.len(), 4, "{team:?}");
    assert!(
        team.iter()
            .all(|v| v["action"] == "ip.allocate" && v["team"] == "ml-research")
    );
    // Another team's: nothing of ml-research's.
    assert!(
        all_got
            .iter()
            .filter(|g| g.path == "/other")
            .all(|g| g.json()["team"] == "platform"),
        "another team's subscription saw ml-research's records"
    );

    // The attempts, newest first.
    let (c, del) = d.call(
        "GET",
        &format!("/api/v1/webhooks/{fleet_id}/deliveries?limit=200"),
        Some(&admin),
        None,
    );
    assert_eq!(c, 200, "{del}");
    let items = del["items"].as_array().expect("items");
    let outcomes: Vec<(&str, i64)> = items
        .iter()
        .rev()
        .map(|x| {
            (
                x["outcome"].as_str().unwrap_or(""),
                x["http_status"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        outcomes[..3],
        [("failed", 500), ("failed", 500), ("delivered", 200)],
        "{del}"
    );
    assert_eq!(outcomes.len(), expected.len() + 2, "{del}");
    assert!(
        items
            .last()
            .is_some_and(|x| x["error"].as_str().is_some_and(|e| e.contains("500")))
    );
    assert_eq!(del["subscription"]["delivered"], expected.len());
    assert_eq!(del["subscription"]["failing"], false);
    let (c, _) = d.call(
        "GET",
        &format!("/api/v1/webhooks/{fleet_id}/deliveries"),
        Some(&team_admin),
        None,
    );
    assert_eq!(c, 404);

    // The usage export: CSV with a header, the team's addresses in it.
    let (c, ctype, csv) = get_raw(d, "/api/v1/usage?team=ml-research&format=csv", &team_admin);
    assert_eq!(c, 200, "{csv}");
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "team,kind,gpu_model,count,core_hours,gpu_hours,ram_gib_hours,storage_gb_hours,address_days"
        )
    );
    let ip = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f[0] == "ml-research" && f[1] == "ip")
        .expect("an ip line");
    assert!(ip[3].parse::<u64>().unwrap_or(0) >= 4, "{ip:?}");
    assert!(ip[8].parse::<f64>().unwrap_or(0.0) > 0.0, "{ip:?}");
    let (c, j) = d.call("GET", "/api/v1/usage", Some(&fleet_viewer), None);
    assert_eq!(c, 200, "{j}");
    assert!(j["items"].as_array().is_some_and(|i| !i.is_empty()), "{j}");
    assert_eq!(
        d.call("GET", "/api/v1/usage?team=ml-research", Some(&member), None)
            .0,
        403
    );
    assert_eq!(
        d.call("GET", "/api/v1/usage", Some(&team_admin), None).0,
        400
    );
    assert_eq!(
        d.call(
            "GET",
            "/api/v1/usage?team=ml-research&from=yesterday",
            Some(&admin),
            None
        )
        .0,
        400
    );
    assert_eq!(
        d.call(
            "GET",
            "/api/v1/usage?team=ml-research&format=xml",
            Some(&admin),
            None
        )
        .0,
        400
    );

    // Deleting: audited, gone, no more deliveries.
    for (id, token) in [
        (&fleet_id, &admin),
        (&team_id, &team_admin),
        (&other_id, &other_admin),
    ] {
        let (c, b) = d.call(
            "DELETE",
            &format!("/api/v1/webhooks/{id}"),
            Some(token),
            None,
        );
        assert_eq!(c, 204, "{b}");
        assert_eq!(
            d.call("GET", &format!("/api/v1/webhooks/{id}"), Some(&admin), None)
                .0,
            404
        );
    }
    let (c, audit) = d.call("GET", "/api/v1/audit?limit=500", Some(&admin), None);
    assert_eq!(c, 200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| r["object"] == format!("webhook/{fleet_id}"))
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(actions, ["webhook.delete", "webhook.create"]);

    // The secret: never in a response, and not in clear in the database.
    let seen = d.seen.lock().expect("seen").clone();
    assert!(
        !seen.contains(SECRET) && !seen.contains(OTHER_SECRET),
        "a response showed a secret"
    );
    let mut db = std::fs::read(d.db()).expect("the database file");
    let wal = d.db().with_extension("db-wal");
    if let Ok(w) = std::fs::read(&wal) {
        db.extend(w);
    }
    assert!(db.len() > 4096);
    for s in [SECRET, OTHER_SECRET] {
        assert!(
            !db.windows(s.len()).any(|w| w == s.as_bytes()),
            "the secret is in clear in the database"
        );
    }
}
