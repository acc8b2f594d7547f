//! The simulated Proxmox VE API, driven over HTTPS like a client would.

// Test code: a panic is the failure report, so unwrapping is fine here.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use strata_twin::{DcSeed, FaultSpec, RunningTwin, SeedStorage, TwinOptions};

fn seed(name: &str, extra_vms: usize) -> DcSeed {
    DcSeed {
        name: name.into(),
        proxmox_nodes: vec!["pve1".into(), "pve2".into(), "pve3".into()],
        proxmox_storages: vec![
            SeedStorage {
                name: "ceph-vm".into(),
                kind: "rbd".into(),
                content: vec!["images".into()],
            },
            SeedStorage {
                name: "local-zfs".into(),
                kind: "zfspool".into(),
                content: vec!["images".into(), "rootdir".into()],
            },
        ],
        extra_vms,
        ..DcSeed::default()
    }
}

fn opts(dcs: Vec<DcSeed>, state_file: Option<PathBuf>) -> TwinOptions {
    TwinOptions {
        dcs,
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file,
        seed: 7,
        timing: Default::default(),
    }
}

/// A client of one DC's Proxmox VE.
#[derive(Clone)]
struct Pve {
    base: String,
    http: reqwest::Client,
    token: String,
    user: String,
    password: String,
    admin: String,
    dc: String,
    /// The twin's (virtual) clock: polls move it instead of sleeping.
    clock: strata_twin::Clock,
}

/// A response: status, reason phrase, body (JSON when there is one).
#[derive(Debug)]
struct Resp {
    status: StatusCode,
    reason: String,
    body: Value,
    raw: String,
}

impl Resp {
    fn data(&self) -> &Value {
        &self.body["data"]
    }
    fn ok(self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "{} {}: {}",
            self.status,
            self.reason,
            self.raw
        );
        self.body["data"].clone()
    }
}

async fn read(r: reqwest::Response) -> Resp {
    let status = r.status();
    let reason = r
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
    let raw = r.text().await.expect("body");
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Resp {
        status,
        reason,
        body,
        raw,
    }
}

fn client(ca_pem: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("client")
}

fn pve(twin: &RunningTwin, i: usize) -> Pve {
    let doc = twin.endpoints();
    let d = &doc["dcs"][i];
    let p = &d["proxmox"];
    Pve {
        base: format!("{}/api2/json", p["url"].as_str().expect("url")),
        http: client(&twin.state.ca_pem),
        token: format!(
            "PVEAPIToken={}={}",
            p["token_id"].as_str().unwrap(),
            p["token_secret"].as_str().unwrap()
        ),
        user: p["user"].as_str().unwrap().into(),
        password: p["password"].as_str().unwrap().into(),
        admin: format!("http://{}/_twin", twin.addr),
        dc: d["name"].as_str().unwrap().into(),
        clock: twin.clock().clone(),
    }
}

impl Pve {
    /// Move the twin's clock and let its task workers run.
    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        tokio::task::yield_now().await;
    }
    /// Await `request` while moving the twin's clock, for calls that wait for a task in
    /// twin time (`background_delay`).
    async fn advancing<T>(&self, request: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(request);
        loop {
            tokio::select! {
                out = &mut request => return out,
                () = tokio::task::yield_now() => self.clock.advance(Duration::from_millis(20)),
            }
        }
    }
    async fn get(&self, path: &str) -> Resp {
        read(
            self.http
                .get(format!("{}{path}", self.base))
                .header("Authorization", &self.token)
                .send()
                .await
                .expect("get"),
        )
        .await
    }
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        read(
            self.http
                .post(format!("{}{path}", self.base))
                .header("Authorization", &self.token)
                .form(form)
                .send()
                .await
                .expect("post"),
        )
        .await
    }
    async fn post_json(&self, path: &str, body: Value) -> Resp {
        read(
            self.http
                .post(format!("{}{path}", self.base))
                .header("Authorization", &self.token)
                .json(&body)
                .send()
                .await
                .expect("post"),
        )
        .await
    }
    async fn put(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        read(
            self.http
                .put(format!("{}{path}", self.base))
                .header("Authorization", &self.token)
                .form(form)
                .send()
                .await
                .expect("put"),
        )
        .await
    }
    async fn delete(&self, path: &str) -> Resp {
        read(
            self.http
                .delete(format!("{}{path}", self.base))
                .header("Authorization", &self.token)
                .send()
                .await
                .expect("delete"),
        )
        .await
    }
    /// Poll a task until it stops; its status.
    async fn wait(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).expect("node in UPID");
        for polls in 0.. {
            let s = self
                .get(&format!("/nodes/{node}/tasks/{upid}/status"))
                .await
                .ok();
            if s["status"] == "stopped" {
                return s;
            }
            assert!(polls < 750, "task {upid} still running: {s}");
            self.advance(Duration::from_millis(40)).await;
        }
        unreachable!()
    }
    async fn nextid(&self) -> String {
        let id = self.get("/cluster/nextid").await.ok();
        id.as_str().expect("nextid is a string").to_string()
    }
    /// Clone the template to a new VMID and wait; the new VMID.
    async fn clone_template(&self, name: &str) -> String {
        let id = self.nextid().await;
        let upid = self
            .post(
                "/nodes/pve1/qemu/9000/clone",
                &[("newid", &id), ("name", name)],
            )
            .await
            .ok();
        let st = self.wait(upid.as_str().unwrap()).await;
        assert_eq!(st["exitstatus"], "OK", "{st}");
        id
    }
    async fn config(&self, node: &str, vmid: &str) -> Value {
        self.get(&format!("/nodes/{node}/qemu/{vmid}/config"))
            .await
            .ok()
    }
}

async fn twin(extra_vms: usize) -> (RunningTwin, Pve) {
    let t = strata_twin::start_with_clock(
        opts(vec![seed("fra1", extra_vms)], None),
        strata_twin::Clock::virtual_now(),
    )
    .await
    .expect("start");
    let p = pve(&t, 0);
    (t, p)
}

#[tokio::test]
async fn token_and_ticket_auth_with_csrf() {
    let (t, p) = twin(0).await;
    let url = |path: &str| format!("{}{path}", p.base);

    // No credentials: 401, reason in the status line, no body.
    let r = read(p.http.get(url("/nodes")).send().await.unwrap()).await;
    assert_eq!(
        (r.status, r.reason.as_str(), r.raw.as_str()),
        (StatusCode::UNAUTHORIZED, "No ticket", "")
    );
    let r = read(
        p.http
            .get(url("/nodes"))
            .header("Authorization", "PVEAPIToken=strata@pve!twin=wrong")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (StatusCode::UNAUTHORIZED, "Authentication failed!")
    );

    // Token, as `PVEAPIToken=` and as `PVEAPIToken ` (both are accepted by pveproxy).
    let v = p.get("/version").await.ok();
    assert!(v["version"].as_str().unwrap().starts_with("9.1."), "{v}");
    assert_eq!(v["release"], "9.1");
    let spaced = p.token.replacen("PVEAPIToken=", "PVEAPIToken ", 1);
    let r = read(
        p.http
            .get(url("/nodes"))
            .header("Authorization", spaced)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.data().as_array().map(Vec::len), Some(3));

    // Ticket: wrong password, then form and JSON logins.
    let r = read(
        p.http
            .post(url("/access/ticket"))
            .form(&[("username", p.user.as_str()), ("password", "nope")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (StatusCode::UNAUTHORIZED, "authentication failure")
    );
    let r = read(
        p.http
            .post(url("/access/ticket"))
            .json(&json!({"username": p.user, "password": p.password}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let login = r.ok();
    assert_eq!(login["username"], p.user.as_str());
    let r = read(
        p.http
            .post(url("/access/ticket"))
            .form(&[
                ("username", p.user.as_str()),
                ("password", p.password.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let login = r.ok();
    let ticket = login["ticket"].as_str().unwrap().to_string();
    let csrf = login["CSRFPreventionToken"].as_str().unwrap().to_string();
    assert!(ticket.starts_with("PVE:root@pam:"), "{ticket}");
    let cookie = format!("PVEAuthCookie={ticket}");
    let r = read(
        p.http
            .get(url("/cluster/status"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.ok()[0]["type"], "cluster");

    // Writes with a ticket need the CSRF token.
    let r = read(
        p.http
            .post(url("/pools"))
            .header("Cookie", &cookie)
            .form(&[("poolid", "ops")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "Permission denied - invalid csrf token"
        )
    );
    let r = read(
        p.http
            .post(url("/pools"))
            .header("Cookie", &cookie)
            .header("CSRFPreventionToken", &csrf)
            .form(&[("poolid", "ops")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.ok(), Value::Null);
    // Renewing a ticket with the ticket as the password.
    let r = read(
        p.http
            .post(url("/access/ticket"))
            .form(&[("username", p.user.as_str()), ("password", ticket.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(r.ok()["ticket"].as_str().unwrap().starts_with("PVE:"));

    // Unknown methods: 501 after authentication.
    let r = p.get("/nodes/pve1/lxc/100/feature").await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED, "{r:?}");
    assert!(
        r.reason
            .starts_with("Method 'GET /nodes/pve1/lxc/100/feature' not implemented"),
        "{}",
        r.reason
    );
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn form_and_json_bodies_and_error_shapes() {
    let (t, p) = twin(0).await;
    // JSON and form bodies.
    assert_eq!(
        p.post_json(
            "/pools",
            json!({"poolid": "json-pool", "comment": "from JSON"})
        )
        .await
        .ok(),
        Value::Null
    );
    assert_eq!(
        p.post("/pools", &[("poolid", "form-pool")]).await.ok(),
        Value::Null
    );
    let pools = p.get("/pools").await.ok();
    assert_eq!(
        pools,
        json!([{"poolid": "form-pool"}, {"poolid": "json-pool", "comment": "from JSON"}])
    );
    let r = p.post("/pools", &[("poolid", "form-pool")]).await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (500, "create pool failed: pool 'form-pool' already exists")
    );
    assert_eq!(r.body["data"], Value::Null);
    assert_eq!(
        r.body["message"],
        "create pool failed: pool 'form-pool' already exists\n"
    );

    // Parameter verification: missing, unknown, wrongly typed; 400 with `errors`.
    let r = p
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("full", "true"), ("bogus", "1"), ("name", "web_01")],
        )
        .await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (StatusCode::BAD_REQUEST, "Parameter verification failed.")
    );
    assert_eq!(r.body["data"], Value::Null);
    let e = &r.body["errors"];
    assert_eq!(e["newid"], "property is missing and it is not optional");
    assert_eq!(
        e["bogus"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    assert_eq!(e["full"], "type check ('boolean') failed - got 'true'");
    assert_eq!(
        e["name"],
        "invalid format - value does not look like a valid DNS name\n"
    );
    let r = p.get("/nodes/pve1/qemu/abc/config").await;
    assert_eq!(
        r.body["errors"]["vmid"],
        "type check ('integer') failed - got 'abc'"
    );
    let r = p
        .post_json(
            "/nodes/pve1/qemu/9000/clone",
            json!({"newid": 99, "full": true}),
        )
        .await;
    assert_eq!(
        r.body["errors"]["newid"],
        "invalid format - value does not look like a valid VM ID\n"
    );
    let r = p
        .post(
            "/nodes/pve1/qemu",
            &[("vmid", "150"), ("net0", "virtio,bridge=vmbr0,tag=5000")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body["errors"]["net0"]
            .as_str()
            .unwrap()
            .contains("net0.tag: value must have a maximum value of 4094"),
        "{}",
        r.raw
    );
    // A JSON boolean is a boolean; a JSON number is a fine integer.
    let id = p.nextid().await;
    let upid = p
        .post_json(
            "/nodes/pve1/qemu/9000/clone",
            json!({"newid": id.parse::<u32>().unwrap(), "full": true}),
        )
        .await
        .ok();
    assert_eq!(p.wait(upid.as_str().unwrap()).await["exitstatus"], "OK");
    // Not found.
    let r = p.get("/nodes/pve1/qemu/4242/config").await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (
            500,
            "Configuration file 'nodes/pve1/qemu-server/4242.conf' does not exist"
        )
    );
    let r = p.get("/nodes/pve9/qemu").await;
    assert!(
        r.reason.starts_with("hostname lookup 'pve9' failed"),
        "{}",
        r.reason
    );
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn clone_creates_a_locked_guest_then_completes() {
    let (t, p) = twin(0).await;
    let template = p.config("pve1", "9000").await;
    assert_eq!(template["template"], 1);
    assert_eq!(template["name"], "debian-12-cloudinit");

    let id = p.nextid().await;
    assert_eq!(id, "100");
    let upid = p
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", &id), ("name", "web-01"), ("target", "pve2")],
        )
        .await
        .ok();
    let upid = upid.as_str().unwrap().to_string();
    let seg: Vec<&str> = upid.split(':').collect();
    assert_eq!(seg.len(), 9, "{upid}");
    assert_eq!(
        (seg[0], seg[1], seg[5], seg[6], seg[7], seg[8]),
        ("UPID", "pve1", "qmclone", "9000", "strata@pve!twin", "")
    );
    assert!(seg[2..5].iter().all(|s| {
        s.len() == 8
            && s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
    }));

    // While the clone runs, the new guest exists on the source node with `lock: clone`.
    let mut polls = 0;
    let locked = loop {
        let r = p.get(&format!("/nodes/pve1/qemu/{id}/config")).await;
        if r.status == StatusCode::OK {
            break r.ok();
        }
        polls += 1;
        assert!(polls < 1000, "the new guest never appeared: {r:?}");
        p.advance(Duration::from_millis(5)).await;
    };
    assert_eq!(locked["lock"], "clone", "{locked}");
    let r = p
        .put(
            &format!("/nodes/pve1/qemu/{id}/config"),
            &[("memory", "4096")],
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (500, "VM is locked (clone)")
    );
    let r = p
        .post(
            &format!("/nodes/pve1/qemu/{id}/clone"),
            &[("newid", "4000")],
        )
        .await;
    assert_eq!(r.reason, "VM is locked (clone)");
    // A start's worker waits for the clone's file lock on the new VMID; by then the
    // clone has moved the guest to the target node, so the start (addressed to pve1) fails.
    let start_upid = p
        .post(&format!("/nodes/pve1/qemu/{id}/status/start"), &[])
        .await
        .ok();
    let st = p.wait(start_upid.as_str().unwrap()).await;
    assert_eq!(
        st["exitstatus"],
        format!("Configuration file 'nodes/pve1/qemu-server/{id}.conf' does not exist"),
        "{st}"
    );
    // The source carries no config lock: a second clone of the template runs alongside,
    // and a config write to the template waits for the clones' shared lock.
    assert!(p.config("pve1", "9000").await.get("lock").is_none());
    let second = p
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", "4001")])
        .await
        .ok();
    let r = p
        .put(
            "/nodes/pve1/qemu/9000/config",
            &[("description", "golden image")],
        )
        .await;
    assert_eq!(r.ok(), Value::Null);
    assert_eq!(p.wait(second.as_str().unwrap()).await["exitstatus"], "OK");

    let st = p.wait(&upid).await;
    assert_eq!(st["exitstatus"], "OK");
    assert_eq!(
        (
            st["type"].as_str(),
            st["id"].as_str(),
            st["user"].as_str(),
            st["tokenid"].as_str()
        ),
        (
            Some("qmclone"),
            Some("9000"),
            Some("strata@pve"),
            Some("twin")
        )
    );
    // Moved to the target node once done; unlocked, new MAC, linked clone of the base disk.
    let r = p.get(&format!("/nodes/pve1/qemu/{id}/config")).await;
    assert_eq!(r.status.as_u16(), 500);
    let conf = p.config("pve2", &id).await;
    assert!(conf.get("lock").is_none(), "{conf}");
    assert_eq!(conf["name"], "web-01");
    assert_eq!(conf["memory"], "2048");
    assert_eq!(conf["cores"], 2);
    assert!(conf.get("template").is_none());
    assert_eq!(
        conf["scsi0"],
        format!("ceph-vm:base-9000-disk-0/vm-{id}-disk-0,discard=on,size=3G")
    );
    assert_ne!(conf["net0"], template["net0"]);
    assert!(
        conf["net0"]
            .as_str()
            .unwrap()
            .starts_with("virtio=BC:24:11:")
    );
    assert_eq!(conf["digest"].as_str().unwrap().len(), 40);
    let log = p.get(&format!("/nodes/pve1/tasks/{upid}/log")).await;
    assert_eq!(
        log.body["data"].as_array().unwrap().last().unwrap()["t"],
        "TASK OK"
    );
    let tasks = p.get("/nodes/pve1/tasks?typefilter=qmclone").await;
    assert!(
        tasks
            .data()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["upid"] == upid.as_str()),
        "{}",
        tasks.raw
    );
    assert!(tasks.body["total"].as_u64().unwrap() >= 2);
    let r = p.get("/nodes/pve1/tasks/UPID:pve1:nonsense/status").await;
    assert_eq!(r.body["errors"]["upid"], "unable to parse worker upid");

    // A full clone to another storage; a linked clone of a VM is refused.
    let id2 = p.nextid().await;
    let upid = p
        .post(
            &format!("/nodes/pve2/qemu/{id}/clone"),
            &[("newid", &id2), ("full", "1"), ("storage", "local-zfs")],
        )
        .await
        .ok();
    assert_eq!(p.wait(upid.as_str().unwrap()).await["exitstatus"], "OK");
    assert_eq!(
        p.config("pve2", &id2).await["scsi0"],
        format!("local-zfs:vm-{id2}-disk-0,discard=on,size=3G")
    );
    let r = p
        .post(
            &format!("/nodes/pve2/qemu/{id}/clone"),
            &[("newid", "4100"), ("full", "0")],
        )
        .await;
    assert!(
        r.reason
            .starts_with("Linked clone feature is not supported for"),
        "{}",
        r.reason
    );
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn config_digest_protects_against_concurrent_changes() {
    let (t, p) = twin(0).await;
    let id = p.clone_template("db-01").await;
    let path = format!("/nodes/pve1/qemu/{id}/config");
    let before = p.config("pve1", &id).await;
    let digest = before["digest"].as_str().unwrap().to_string();
    assert_eq!(
        p.put(
            &path,
            &[("memory", "8192"), ("cores", "4"), ("digest", &digest)]
        )
        .await
        .ok(),
        Value::Null
    );
    let after = p.config("pve1", &id).await;
    assert_eq!(
        (after["memory"].as_str(), after["cores"].as_i64()),
        (Some("8192"), Some(4))
    );
    assert_ne!(after["digest"], before["digest"]);
    // The old digest is stale now.
    let r = p
        .put(&path, &[("memory", "1024"), ("digest", &digest)])
        .await;
    assert_eq!(
        (r.status.as_u16(), r.reason.as_str()),
        (500, "checksum mismatch (file change by other user?)")
    );
    let r = p
        .post(&path, &[("memory", "1024"), ("digest", &digest)])
        .await;
    assert_eq!(r.reason, "checksum mismatch (file change by other user?)");
    // `delete` removes keys; a new disk is allocated; the asynchronous POST returns a task.
    let fresh = after["digest"].as_str().unwrap();
    let upid = p
        .post(
            &path,
            &[
                ("delete", "description,tags"),
                ("scsi1", "ceph-vm:10"),
                ("tags", "web;prod"),
                ("digest", fresh),
            ],
        )
        .await
        .ok();
    assert!(upid.as_str().unwrap().contains(":qmconfig:"));
    assert_eq!(p.wait(upid.as_str().unwrap()).await["exitstatus"], "OK");
    let conf = p.config("pve1", &id).await;
    assert_eq!(conf["scsi1"], format!("ceph-vm:vm-{id}-disk-1,size=10G"));
    assert_eq!(conf["tags"], "prod;web");
    // Deleting a disk keeps its volume as an unused disk.
    assert_eq!(p.put(&path, &[("delete", "scsi1")]).await.ok(), Value::Null);
    assert_eq!(
        p.config("pve1", &id).await["unused0"],
        format!("ceph-vm:vm-{id}-disk-1")
    );
    // `background_delay` waits for the task and returns null.
    assert_eq!(
        p.advancing(p.post(&path, &[("onboot", "1"), ("background_delay", "5")]))
            .await
            .ok(),
        Value::Null
    );
    assert_eq!(p.config("pve1", &id).await["onboot"], 1);
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn nextid_is_not_reserved_and_one_of_two_creators_fails() {
    let (t, p) = twin(0).await;
    let a = p.nextid().await;
    let b = p.nextid().await;
    assert_eq!(a, b, "nextid reserves nothing");
    // Two clones racing for the same VMID: exactly one guest is created.
    let (f1, f2) = (
        [("newid", a.as_str()), ("name", "one")],
        [("newid", a.as_str()), ("name", "two")],
    );
    let (r1, r2) = tokio::join!(
        p.post("/nodes/pve1/qemu/9000/clone", &f1),
        p.post("/nodes/pve1/qemu/9000/clone", &f2),
    );
    let mut ok = 0;
    let mut failures = Vec::new();
    for r in [r1, r2] {
        if r.status != StatusCode::OK {
            failures.push(r.reason.clone());
            continue;
        }
        let st = p.wait(r.data().as_str().unwrap()).await;
        if st["exitstatus"] == "OK" {
            ok += 1;
        } else {
            failures.push(st["exitstatus"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(ok, 1, "{failures:?}");
    assert_eq!(
        failures,
        vec![format!(
            "unable to create VM {a}: config file already exists"
        )]
    );
    // Creating an existing VMID fails at once.
    let r = p
        .post("/nodes/pve1/qemu", &[("vmid", &a), ("name", "three")])
        .await;
    assert_eq!(
        r.reason,
        format!("unable to create VM {a} - VM {a} already exists on node 'pve1'")
    );
    // `vmid` asks whether an id is free.
    let r = p.get(&format!("/cluster/nextid?vmid={a}")).await;
    assert_eq!(r.body["errors"]["vmid"], format!("VM {a} already exists"));
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn create_start_stop_and_delete() {
    let (t, p) = twin(0).await;
    let id = p.nextid().await;
    let upid = p
        .post(
            "/nodes/pve2/qemu",
            &[
                ("vmid", &id),
                ("name", "app-01"),
                ("cores", "2"),
                ("memory", "4096"),
                ("net0", "virtio,bridge=vmbr0,tag=12"),
                ("scsi0", "ceph-vm:32,discard=on"),
                ("scsihw", "virtio-scsi-single"),
                ("ide2", "ceph-vm:cloudinit"),
                ("tags", "strata;team-a"),
                ("pool", "missing"),
            ],
        )
        .await;
    assert_eq!(upid.reason, "pool 'missing' does not exist");
    let upid = p
        .post(
            "/nodes/pve2/qemu",
            &[
                ("vmid", &id),
                ("name", "app-01"),
                ("cores", "2"),
                ("memory", "4096"),
                ("net0", "virtio,bridge=vmbr0,tag=12"),
                ("scsi0", "ceph-vm:32,discard=on"),
                ("ide2", "ceph-vm:cloudinit"),
                ("tags", "strata;team-a"),
            ],
        )
        .await
        .ok();
    let upid = upid.as_str().unwrap().to_string();
    assert!(upid.contains(":qmcreate:"));
    assert_eq!(p.config("pve2", &id).await["lock"], "create");
    assert_eq!(p.wait(&upid).await["exitstatus"], "OK");
    let conf = p.config("pve2", &id).await;
    assert_eq!(
        conf["scsi0"],
        format!("ceph-vm:vm-{id}-disk-0,discard=on,size=32G")
    );
    assert_eq!(
        conf["ide2"],
        format!("ceph-vm:vm-{id}-cloudinit,media=cdrom")
    );
    assert!(
        conf["net0"]
            .as_str()
            .unwrap()
            .ends_with(",bridge=vmbr0,tag=12"),
        "{conf}"
    );
    assert_eq!(conf["boot"], "order=scsi0;net0");
    assert!(conf["smbios1"].as_str().unwrap().starts_with("uuid="));

    let cur = format!("/nodes/pve2/qemu/{id}/status/current");
    assert_eq!(p.get(&cur).await.ok()["status"], "stopped");
    let up = p
        .post(&format!("/nodes/pve2/qemu/{id}/status/start"), &[])
        .await
        .ok();
    assert_eq!(p.wait(up.as_str().unwrap()).await["exitstatus"], "OK");
    let s = p.get(&cur).await.ok();
    assert_eq!(
        (s["status"].as_str(), s["qmpstatus"].as_str()),
        (Some("running"), Some("running"))
    );
    assert_eq!(s["maxmem"], 4096u64 << 20);
    assert_eq!(s["cpus"], 2);
    let again = p
        .post(&format!("/nodes/pve2/qemu/{id}/status/start"), &[])
        .await
        .ok();
    assert_eq!(
        p.wait(again.as_str().unwrap()).await["exitstatus"],
        format!("VM {id} already running")
    );
    let r = p.delete(&format!("/nodes/pve2/qemu/{id}")).await;
    assert_eq!(
        (r.status.as_u16(), r.reason.clone()),
        (500, format!("VM {id} is running - destroy failed"))
    );
    let reboot = p
        .post(&format!("/nodes/pve2/qemu/{id}/status/reboot"), &[])
        .await
        .ok();
    assert_eq!(p.wait(reboot.as_str().unwrap()).await["exitstatus"], "OK");
    let down = p
        .post(&format!("/nodes/pve2/qemu/{id}/status/shutdown"), &[])
        .await
        .ok();
    assert!(down.as_str().unwrap().contains(":qmshutdown:"));
    assert_eq!(p.wait(down.as_str().unwrap()).await["exitstatus"], "OK");
    assert_eq!(p.get(&cur).await.ok()["status"], "stopped");
    let r = p
        .post(&format!("/nodes/pve2/qemu/{id}/status/reboot"), &[])
        .await;
    assert_eq!(r.reason, format!("VM {id} not running"));
    // skiplock is root's alone.
    let r = p
        .post(
            &format!("/nodes/pve2/qemu/{id}/status/stop"),
            &[("skiplock", "1")],
        )
        .await;
    assert_eq!(
        r.body["errors"]["skiplock"],
        "Only root may use this option."
    );
    // Templates do not start.
    let r = p.post("/nodes/pve1/qemu/9000/status/start", &[]).await.ok();
    assert_eq!(
        p.wait(r.as_str().unwrap()).await["exitstatus"],
        "you can't start a vm if it's a template"
    );

    let del = p.delete(&format!("/nodes/pve2/qemu/{id}")).await.ok();
    assert!(del.as_str().unwrap().contains(":qmdestroy:"));
    assert_eq!(p.wait(del.as_str().unwrap()).await["exitstatus"], "OK");
    let r = p.get(&format!("/nodes/pve2/qemu/{id}/config")).await;
    assert_eq!(r.status.as_u16(), 500);
    assert_eq!(p.nextid().await, id, "the id is free again");
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn ha_resources() {
    let (t, p) = twin(0).await;
    let id = p.clone_template("ha-01").await;
    let sid = format!("vm:{id}");
    let r = p
        .post("/cluster/ha/resources", &[("sid", &sid), ("group", "g1")])
        .await;
    assert_eq!(
        r.reason,
        "invalid parameter 'group': ha groups have been migrated to rules"
    );
    assert_eq!(
        p.post(
            "/cluster/ha/resources",
            &[("sid", &sid), ("state", "started"), ("max_restart", "2")]
        )
        .await
        .ok(),
        Value::Null
    );
    let r = p.post("/cluster/ha/resources", &[("sid", &id)]).await;
    assert_eq!(
        r.reason,
        format!("create resource failed: resource ID '{sid}' already defined")
    );
    let list = p.get("/cluster/ha/resources").await.ok();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        (
            list[0]["sid"].as_str(),
            list[0]["state"].as_str(),
            list[0]["type"].as_str()
        ),
        (Some(sid.as_str()), Some("started"), Some("vm"))
    );
    let one = p.get(&format!("/cluster/ha/resources/{sid}")).await.ok();
    assert_eq!(one["max_restart"], 2);
    // The HA manager starts the guest.
    let cur = format!("/nodes/pve1/qemu/{id}/status/current");
    let mut polls = 0;
    while p.get(&cur).await.ok()["status"] != "running" {
        polls += 1;
        assert!(polls < 200, "HA never started the guest");
        p.advance(Duration::from_millis(50)).await;
    }
    let s = p.get(&cur).await.ok();
    assert_eq!(s["ha"]["managed"], 1);
    let res = p.get("/cluster/resources?type=vm").await.ok();
    let entry = res
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vmid"].as_u64().map(|v| v.to_string()).as_deref() == Some(id.as_str()))
        .unwrap()
        .clone();
    assert_eq!(entry["hastate"], "started");
    // Stopping an HA guest goes through the HA manager.
    let stop = p
        .post(&format!("/nodes/pve1/qemu/{id}/status/stop"), &[])
        .await
        .ok();
    assert!(stop.as_str().unwrap().contains(":hastop:"), "{stop}");
    assert_eq!(p.wait(stop.as_str().unwrap()).await["exitstatus"], "OK");
    assert_eq!(
        p.get(&format!("/cluster/ha/resources/{sid}")).await.ok()["state"],
        "stopped"
    );
    // Digest-protected update; delete.
    let current = p.get(&format!("/cluster/ha/resources/{sid}")).await.ok();
    let digest = current["digest"].as_str().unwrap().to_string();
    assert_eq!(
        p.put(
            &format!("/cluster/ha/resources/{sid}"),
            &[("comment", "db"), ("digest", &digest)]
        )
        .await
        .ok(),
        Value::Null
    );
    let r = p
        .put(
            &format!("/cluster/ha/resources/{sid}"),
            &[("comment", "x"), ("digest", &digest)],
        )
        .await;
    assert!(
        r.reason
            .ends_with("detected modified configuration - file changed by other user? Try again."),
        "{}",
        r.reason
    );
    let r = p.delete(&format!("/nodes/pve1/qemu/{id}")).await;
    assert_eq!(
        r.reason,
        format!("unable to remove VM {id} - used in HA resources and purge parameter not set.")
    );
    assert_eq!(
        p.delete(&format!("/cluster/ha/resources/{sid}")).await.ok(),
        Value::Null
    );
    let r = p.delete(&format!("/cluster/ha/resources/{sid}")).await;
    assert_eq!(
        r.reason,
        format!("cannot delete service '{sid}', not HA managed!")
    );
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn cluster_resources_show_everything() {
    let (t, p) = twin(25).await;
    let all = p.get("/cluster/resources").await.ok();
    let all = all.as_array().unwrap();
    let of = |ty: &str| all.iter().filter(|e| e["type"] == ty).count();
    assert_eq!(of("qemu"), 26);
    assert_eq!(of("node"), 3);
    assert_eq!(
        of("storage"),
        9,
        "local, ceph-vm and local-zfs on three nodes"
    );
    let tpl = all.iter().find(|e| e["vmid"] == 9000).unwrap();
    assert_eq!(
        (
            tpl["id"].as_str(),
            tpl["template"].as_i64(),
            tpl["node"].as_str()
        ),
        (Some("qemu/9000"), Some(1), Some("pve1"))
    );
    let legacy: Vec<&Value> = all
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("legacy-")))
        .collect();
    assert_eq!(legacy.len(), 25);
    assert!(
        legacy.iter().any(|e| e["status"] == "running")
            && legacy.iter().any(|e| e["status"] == "stopped")
    );
    assert!(
        legacy
            .iter()
            .all(|e| e["tags"] == "legacy" && e["maxmem"].as_u64().unwrap() > 0)
    );
    let nodes: Vec<&str> = legacy.iter().map(|e| e["node"].as_str().unwrap()).collect();
    assert!(["pve1", "pve2", "pve3"].iter().all(|n| nodes.contains(n)));
    let vms = p.get("/cluster/resources?type=vm").await.ok();
    assert_eq!(vms.as_array().unwrap().len(), 26);
    let storage = p.get("/cluster/resources?type=storage").await.ok();
    let ceph = storage
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["storage"] == "ceph-vm")
        .unwrap()
        .clone();
    assert_eq!(
        (ceph["shared"].as_i64(), ceph["plugintype"].as_str()),
        (Some(1), Some("rbd"))
    );
    assert!(ceph["disk"].as_u64().unwrap() >= 25 * (32u64 << 30));
    // Per-node views agree.
    let on1 = p.get("/nodes/pve1/qemu").await.ok();
    assert_eq!(on1.as_array().unwrap().len(), 1 + 9);
    let st = p.get("/nodes/pve1/storage?content=images").await.ok();
    assert_eq!(st.as_array().unwrap().len(), 2);
    let net = p.get("/nodes/pve1/network?type=bridge").await.ok();
    assert_eq!(
        (
            net[0]["iface"].as_str(),
            net[0]["bridge_vlan_aware"].as_i64()
        ),
        (Some("vmbr0"), Some(1))
    );
    let status = p.get("/nodes/pve2/status").await.ok();
    assert!(
        status["pveversion"]
            .as_str()
            .unwrap()
            .starts_with("pve-manager/9.1.")
    );
    let cs = p.get("/cluster/status").await.ok();
    assert_eq!(cs.as_array().unwrap().len(), 4);
    assert_eq!(cs[1]["nodeid"], 1);
    let storages = p.get("/storage").await.ok();
    assert_eq!(storages.as_array().unwrap().len(), 3);
    assert_eq!(p.nextid().await, "125");
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn ten_thousand_guests_stay_cheap() {
    let (t, p) = twin(10_000).await;
    let started = Instant::now();
    let vms = p.get("/cluster/resources?type=vm").await.ok();
    assert_eq!(vms.as_array().unwrap().len(), 10_001);
    assert_eq!(
        p.nextid().await,
        "10101",
        "100..=10100 minus the template's 9000 are taken"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn admin_mutation_changes_memory_and_digest() {
    let (t, p) = twin(3).await;
    let before = p.config("pve1", "100").await;
    let http = reqwest::Client::new();
    let url = format!("{}/dcs/{}/proxmox/mutate", p.admin, p.dc);
    let r = http
        .post(&url)
        .json(&json!({"kind": "qemu", "id": "100", "set": {"memory": 8192, "cores": 4}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let after = p.config("pve1", "100").await;
    assert_eq!(
        (after["memory"].as_str(), after["cores"].as_i64()),
        (Some("8192"), Some(4))
    );
    assert_ne!(before["digest"], after["digest"]);
    // A client holding the old digest now gets a conflict.
    let r = p
        .put(
            "/nodes/pve1/qemu/100/config",
            &[
                ("memory", "2048"),
                ("digest", before["digest"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(r.reason, "checksum mismatch (file change by other user?)");
    let r = http
        .post(&url)
        .json(&json!({"kind": "qemu", "id": "100", "set": {"bogus": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = http
        .post(&url)
        .json(&json!({"kind": "qemu", "id": "100", "delete": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        p.get("/nodes/pve1/qemu/100/config").await.status.as_u16(),
        500
    );
    let summary: Value = http
        .get(format!("{}/dcs/{}/proxmox/summary", p.admin, p.dc))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (summary["vms"].as_u64(), summary["templates"].as_u64()),
        (Some(2), Some(1))
    );
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn injected_task_failure_and_error_500() {
    let (t, p) = twin(0).await;
    let http = reqwest::Client::new();
    let fault =
        json!({"dc": p.dc, "service": "proxmox", "id": "9000", "fault": "task_fails", "times": 1});
    assert!(
        http.post(format!("{}/faults/object", p.admin))
            .json(&fault)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let id = p.nextid().await;
    let upid = p
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", &id)])
        .await
        .ok();
    let st = p.wait(upid.as_str().unwrap()).await;
    assert!(
        st["exitstatus"]
            .as_str()
            .unwrap()
            .starts_with("clone failed: "),
        "{st}"
    );
    assert_eq!(
        p.get(&format!("/nodes/pve1/qemu/{id}/config"))
            .await
            .status
            .as_u16(),
        500,
        "the failed clone left nothing"
    );
    let log = p
        .get(&format!("/nodes/pve1/tasks/{}/log", upid.as_str().unwrap()))
        .await
        .ok();
    assert!(
        log.as_array().unwrap().last().unwrap()["t"]
            .as_str()
            .unwrap()
            .starts_with("TASK ERROR: clone failed")
    );
    let errors = p.get("/nodes/pve1/tasks?errors=1").await.ok();
    assert_eq!(errors.as_array().unwrap().len(), 1);
    // The fault was used up.
    let upid = p
        .post("/nodes/pve1/qemu/9000/clone", &[("newid", &id)])
        .await
        .ok();
    assert_eq!(p.wait(upid.as_str().unwrap()).await["exitstatus"], "OK");
    let fault =
        json!({"dc": p.dc, "service": "proxmox", "id": id, "fault": "error_500", "times": 1});
    http.post(format!("{}/faults/object", p.admin))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(
        p.get(&format!("/nodes/pve1/qemu/{id}/config"))
            .await
            .status
            .as_u16(),
        500
    );
    assert_eq!(
        p.get(&format!("/nodes/pve1/qemu/{id}/config"))
            .await
            .status
            .as_u16(),
        200
    );
    t.shutdown().await.unwrap();
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    let t = strata_twin::start_with_clock(
        opts(vec![seed("fra1", 2)], Some(file.clone())),
        strata_twin::Clock::virtual_now(),
    )
    .await
    .unwrap();
    let p = pve(&t, 0);
    assert_eq!(
        p.post("/pools", &[("poolid", "keep")]).await.ok(),
        Value::Null
    );
    let id = p.nextid().await;
    let upid = p
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", &id), ("name", "kept"), ("pool", "keep")],
        )
        .await
        .ok();
    let upid = upid.as_str().unwrap().to_string();
    p.wait(&upid).await;
    // One more task still running when the twin stops.
    let running = p
        .post(&format!("/nodes/pve1/qemu/{id}/status/start"), &[])
        .await
        .ok();
    let conf = p.config("pve1", &id).await;
    t.shutdown().await.unwrap();

    let t = strata_twin::start_with_clock(
        opts(vec![seed("fra1", 2)], Some(file)),
        strata_twin::Clock::virtual_now(),
    )
    .await
    .unwrap();
    let q = pve(&t, 0);
    assert_eq!(q.token, p.token, "credentials are kept");
    let again = q.config("pve1", &id).await;
    assert_eq!(again["digest"], conf["digest"]);
    assert_eq!(again["name"], "kept");
    assert_eq!(
        q.get(&format!("/nodes/pve1/tasks/{upid}/status"))
            .await
            .ok()["exitstatus"],
        "OK"
    );
    assert_eq!(q.wait(running.as_str().unwrap()).await["exitstatus"], "OK");
    assert_eq!(
        q.get(&format!("/nodes/pve1/qemu/{id}/status/current"))
            .await
            .ok()["status"],
        "running"
    );
    let pool = q.get("/pools/keep").await.ok();
    assert_eq!(pool["members"][0]["vmid"].to_string(), id);
    assert_eq!(
        q.nextid().await,
        (id.parse::<u32>().unwrap() + 1).to_string()
    );
    t.shutdown().await.unwrap();
}

#[test]
fn build_restores_saved_state() {
    use std::sync::Arc;
    use strata_twin::{Credentials, DcContext, Shared, Urls};
    let creds = Credentials {
        maas_api_key: "a:b:c".into(),
        proxmox_token_id: "strata@pve!twin".into(),
        proxmox_token_secret: "s".into(),
        proxmox_user: "root@pam".into(),
        proxmox_password: "p".into(),
        openstack_username: "admin".into(),
        openstack_password: "p".into(),
        openstack_project: "admin".into(),
    };
    let urls = Urls {
        maas: String::new(),
        proxmox: String::new(),
        identity: String::new(),
        compute: String::new(),
        network: String::new(),
        image: String::new(),
        placement: String::new(),
    };
    let ctx = Arc::new(DcContext {
        name: "fra1".into(),
        index: 0,
        seed: seed("fra1", 5),
        creds,
        urls,
        shared: Arc::new(Shared {
            clock: strata_twin::Clock::system(),
            faults: strata_twin::faults::Faults::new(FaultSpec::default(), 3),
            counters: Default::default(),
            latency_ms: 0,
            timing: Default::default(),
            seed: 3,
        }),
        platform: Default::default(),
    });
    let a = strata_twin::proxmox::build(ctx.clone(), None).unwrap();
    let req: strata_twin::MutateRequest = serde_json::from_value(
        json!({"kind": "qemu", "id": "101", "set": {"memory": 16384, "name": "renamed"}}),
    )
    .unwrap();
    let changed = a.mutate(&req).unwrap();
    let saved = a.save();
    let b = strata_twin::proxmox::build(ctx, Some(saved.clone())).unwrap();
    assert_eq!(b.save(), saved);
    assert_eq!(b.summary()["vms"], 5);
    let again = b
        .mutate(&serde_json::from_value(json!({"kind": "qemu", "id": "101"})).unwrap())
        .unwrap();
    assert_eq!(again["config"]["digest"], changed["config"]["digest"]);
    assert_eq!(again["config"]["memory"], "16384");
}

#[tokio::test]
async fn templates_pools_storage_and_ha_rules() {
    let (t, p) = twin(0).await;
    // Convert a full clone into a template, then link-clone from it.
    let id = p.nextid().await;
    let upid = p
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[("newid", &id), ("full", "1"), ("name", "golden")],
        )
        .await
        .ok();
    p.wait(upid.as_str().unwrap()).await;
    assert_eq!(
        p.get(&format!("/nodes/pve1/tasks/{}", upid.as_str().unwrap()))
            .await
            .ok(),
        json!([{"name": "log"}, {"name": "status"}])
    );
    let upid = p
        .post(&format!("/nodes/pve1/qemu/{id}/template"), &[])
        .await
        .ok();
    assert!(upid.as_str().unwrap().contains(":qmtemplate:"));
    assert_eq!(p.wait(upid.as_str().unwrap()).await["exitstatus"], "OK");
    let conf = p.config("pve1", &id).await;
    assert_eq!(conf["template"], 1);
    assert_eq!(
        conf["scsi0"],
        format!("ceph-vm:base-{id}-disk-0,discard=on,size=3G")
    );
    let r = p
        .post(&format!("/nodes/pve1/qemu/{id}/template"), &[])
        .await;
    assert_eq!(r.reason, "you can't convert a template to a template");
    let child = p.nextid().await;
    let upid = p
        .post(
            &format!("/nodes/pve1/qemu/{id}/clone"),
            &[("newid", &child), ("pool", "nope")],
        )
        .await;
    assert_eq!(upid.reason, "pool 'nope' does not exist");

    // Pools: create, add guests, read members, refuse to delete a non-empty pool.
    assert_eq!(
        p.post("/pools", &[("poolid", "team-a"), ("comment", "Team A")])
            .await
            .ok(),
        Value::Null
    );
    let upid = p
        .post(
            &format!("/nodes/pve1/qemu/{id}/clone"),
            &[("newid", &child), ("pool", "team-a")],
        )
        .await
        .ok();
    p.wait(upid.as_str().unwrap()).await;
    assert_eq!(
        p.config("pve1", &child).await["scsi0"],
        format!("ceph-vm:base-{id}-disk-0/vm-{child}-disk-0,discard=on,size=3G")
    );
    assert_eq!(
        p.put("/pools/team-a", &[("vms", &id)]).await.ok(),
        Value::Null
    );
    let r = p.put("/pools/team-a", &[("vms", &id)]).await;
    assert_eq!(
        r.reason,
        format!("update pools failed: VM {id} is already a pool member")
    );
    let pool = p.get("/pools/team-a").await.ok();
    assert_eq!(pool["comment"], "Team A");
    let mut members: Vec<String> = pool["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["vmid"].to_string())
        .collect();
    members.sort();
    assert_eq!(members, vec![id.clone(), child.clone()]);
    let res = p.get("/cluster/resources").await.ok();
    assert!(
        res.as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "pool" && e["pool"] == "team-a")
    );
    let r = p.delete("/pools/team-a").await;
    assert!(
        r.reason
            .starts_with("delete pool failed: pool 'team-a' is not empty (contains VM"),
        "{}",
        r.reason
    );
    assert_eq!(
        p.put(
            "/pools/team-a",
            &[("vms", &format!("{id},{child}")), ("delete", "1")]
        )
        .await
        .ok(),
        Value::Null
    );
    assert_eq!(p.delete("/pools/team-a").await.ok(), Value::Null);

    // Storage views.
    let s = p.get("/storage/ceph-vm").await.ok();
    assert_eq!(
        (
            s["type"].as_str(),
            s["shared"].as_i64(),
            s["content"].as_str()
        ),
        (Some("rbd"), Some(1), Some("images"))
    );
    let s = p.get("/nodes/pve3/storage/local-zfs/status").await.ok();
    assert_eq!(
        (
            s["active"].as_i64(),
            s["shared"].as_i64(),
            s["used"].as_u64()
        ),
        (Some(1), Some(0), Some(0))
    );
    assert_eq!(
        p.get("/storage/nope").await.reason,
        "storage 'nope' does not exist"
    );

    // HA: groups are gone in 9.x; node-affinity rules replace them.
    let r = p.get("/cluster/ha/groups").await;
    assert_eq!(
        r.reason,
        "cannot index groups: ha groups have been migrated to rules"
    );
    let sid = format!("vm:{child}");
    let r = p
        .post(
            "/cluster/ha/rules",
            &[
                ("rule", "pin-a"),
                ("type", "node-affinity"),
                ("resources", &sid),
                ("nodes", "pve1:2,pve2"),
            ],
        )
        .await;
    assert_eq!(
        r.reason,
        format!("create ha rule failed: cannot use unmanaged resource(s) {sid}.")
    );
    assert_eq!(
        p.post(
            "/cluster/ha/resources",
            &[("sid", &sid), ("state", "stopped")]
        )
        .await
        .ok(),
        Value::Null
    );
    let r = p
        .post(
            "/cluster/ha/rules",
            &[
                ("rule", "pin-a"),
                ("type", "node-affinity"),
                ("resources", &sid),
            ],
        )
        .await;
    assert_eq!(
        r.body["errors"]["nodes"],
        "property is missing and it is not optional"
    );
    let r = p
        .post(
            "/cluster/ha/rules",
            &[
                ("rule", "pin-a"),
                ("type", "node-affinity"),
                ("resources", &sid),
                ("nodes", "pve9"),
            ],
        )
        .await;
    assert_eq!(
        r.reason,
        "create ha rule failed: cannot use non-existent node(s) pve9."
    );
    let ok = p
        .post(
            "/cluster/ha/rules",
            &[
                ("rule", "pin-a"),
                ("type", "node-affinity"),
                ("resources", &child),
                ("nodes", "pve1:2,pve2"),
                ("strict", "1"),
            ],
        )
        .await;
    assert_eq!(ok.ok(), Value::Null);
    let rules = p
        .get(&format!("/cluster/ha/rules?resource={sid}"))
        .await
        .ok();
    assert_eq!(rules.as_array().unwrap().len(), 1);
    let rule = &rules[0];
    assert_eq!(
        (
            rule["rule"].as_str(),
            rule["resources"].as_str(),
            rule["nodes"].as_str(),
            rule["strict"].as_i64()
        ),
        (
            Some("pin-a"),
            Some(sid.as_str()),
            Some("pve1:2,pve2"),
            Some(1)
        )
    );
    let digest = rule["digest"].as_str().unwrap().to_string();
    assert_eq!(
        p.put(
            "/cluster/ha/rules/pin-a",
            &[
                ("type", "node-affinity"),
                ("nodes", "pve3"),
                ("digest", &digest)
            ]
        )
        .await
        .ok(),
        Value::Null
    );
    let r = p
        .put(
            "/cluster/ha/rules/pin-a",
            &[
                ("type", "node-affinity"),
                ("comment", "x"),
                ("digest", &digest),
            ],
        )
        .await;
    assert!(
        r.reason.ends_with("file changed by other user? Try again."),
        "{}",
        r.reason
    );
    assert_eq!(p.get("/cluster/ha/rules/pin-a").await.ok()["nodes"], "pve3");
    // Removing the HA resource (purge is the default) removes it from its rules.
    assert_eq!(
        p.delete(&format!("/cluster/ha/resources/{sid}")).await.ok(),
        Value::Null
    );
    assert_eq!(
        p.get("/cluster/ha/rules/pin-a").await.reason,
        "no such ha rule 'pin-a'"
    );
    t.shutdown().await.unwrap();
}

/// A client of the same twin that authenticates with another API token.
fn with_token(p: &Pve, tokenid: &str, secret: &str) -> Pve {
    Pve {
        token: format!("PVEAPIToken={tokenid}={secret}"),
        ..p.clone()
    }
}

#[tokio::test]
async fn running_guests_keep_cpu_and_memory_changes_pending_until_they_boot_again() {
    // qemu-server `vmconfig_hotplug_pending`: without `cpu`/`memory` hotplug, `cores`
    // and `memory` of a running guest wait in `[PENDING]`; tags apply at once.
    let (_t, p) = twin(0).await;
    let id = p.clone_template("pending").await;
    let vm = format!("/nodes/pve1/qemu/{id}");
    let upid = p.post(&format!("{vm}/status/start"), &[]).await.ok();
    assert_eq!(p.wait(upid.as_str().unwrap()).await["exitstatus"], "OK");
    let before = p.config("pve1", &id).await;

    p.put(
        &format!("{vm}/config"),
        &[("cores", "4"), ("memory", "4096"), ("tags", "web")],
    )
    .await
    .ok();
    // `GET config` shows the pending values, `current=1` what runs; the digest covers
    // the `[PENDING]` section.
    let conf = p.config("pve1", &id).await;
    assert_eq!(
        (conf["cores"].clone(), conf["memory"].clone()),
        (json!(4), json!("4096"))
    );
    assert_ne!(conf["digest"], before["digest"]);
    let current = p.get(&format!("{vm}/config?current=1")).await.ok();
    assert_eq!(current["cores"], before["cores"]);
    assert_eq!(current["memory"], before["memory"]);
    assert_eq!(current["tags"], "web");
    let pending = p.get(&format!("{vm}/pending")).await.ok();
    let entry = |k: &str| {
        pending
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == k)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(entry("cores")["value"], before["cores"]);
    assert_eq!(entry("cores")["pending"], 4);
    assert_eq!(entry("memory")["pending"], "4096");
    assert!(entry("tags").get("pending").is_none(), "{pending}");
    // What the guest runs with is unchanged.
    let res = p.get("/cluster/resources?type=vm").await.ok();
    let listed = res
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vmid"].to_string().as_str() == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["maxcpu"], before["cores"]);

    // A reboot applies them.
    let upid = p.post(&format!("{vm}/status/reboot"), &[]).await.ok();
    assert_eq!(p.wait(upid.as_str().unwrap()).await["exitstatus"], "OK");
    let current = p.get(&format!("{vm}/config?current=1")).await.ok();
    assert_eq!(current["cores"], 4);
    let pending = p.get(&format!("{vm}/pending")).await.ok();
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("pending").is_none()),
        "{pending}"
    );

    // Writing back the running value cancels a pending change (`cleanup_pending`).
    p.put(&format!("{vm}/config"), &[("cores", "8")]).await.ok();
    p.put(&format!("{vm}/config"), &[("cores", "4")]).await.ok();
    let pending = p.get(&format!("{vm}/pending")).await.ok();
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("pending").is_none()),
        "{pending}"
    );

    // With memory hotplug, memory goes live.
    p.put(
        &format!("{vm}/config"),
        &[("hotplug", "network,disk,memory")],
    )
    .await
    .ok();
    let upid = p.post(&format!("{vm}/status/reboot"), &[]).await.ok();
    p.wait(upid.as_str().unwrap()).await;
    p.put(&format!("{vm}/config"), &[("memory", "8192")])
        .await
        .ok();
    let current = p.get(&format!("{vm}/config?current=1")).await.ok();
    assert_eq!(current["memory"], "8192");

    // A stopped guest takes everything at once.
    let upid = p.post(&format!("{vm}/status/stop"), &[]).await.ok();
    p.wait(upid.as_str().unwrap()).await;
    p.put(&format!("{vm}/config"), &[("cores", "1")]).await.ok();
    let current = p.get(&format!("{vm}/config?current=1")).await.ok();
    assert_eq!(current["cores"], 1);
}

#[tokio::test]
async fn privilege_separated_tokens_see_and_do_only_what_their_acls_allow() {
    // pve-access-control: roles, ACL inheritance, privsep tokens; 403 "Permission
    // check failed (path, privilege)"; `/cluster/resources` filters silently.
    let (_t, p) = twin(2).await;
    let ok = |r: Resp| r.ok();
    ok(p.post(
        "/access/roles",
        &[("roleid", "Watcher"), ("privs", "VM.Audit,Sys.Audit")],
    )
    .await);
    let bad = p
        .post("/access/roles", &[("roleid", "Bad"), ("privs", "VM.Fly")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.raw);
    ok(p.post("/access/users", &[("userid", "ops@pve")]).await);
    let tok = ok(p
        .post("/access/users/ops@pve/token/watch", &[("privsep", "1")])
        .await);
    assert_eq!(tok["full-tokenid"], "ops@pve!watch");
    let secret = tok["value"].as_str().unwrap().to_string();
    let w = with_token(&p, "ops@pve!watch", &secret);

    // No ACL yet: the token sees nothing, and may not read the HA resources.
    let res = w.get("/cluster/resources").await.ok();
    assert_eq!(res.as_array().map(Vec::len), Some(0), "{res}");
    let r = w.get("/cluster/ha/resources").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.reason, "Permission check failed (/, Sys.Audit)");

    // The token's ACL alone is not enough: its user must have the privileges too.
    ok(p.put(
        "/access/acl",
        &[
            ("path", "/"),
            ("tokens", "ops@pve!watch"),
            ("roles", "Watcher"),
        ],
    )
    .await);
    let res = w.get("/cluster/resources").await.ok();
    assert_eq!(res.as_array().map(Vec::len), Some(0), "{res}");
    ok(p.put(
        "/access/acl",
        &[
            ("path", "/vms"),
            ("users", "ops@pve"),
            ("roles", "PVEVMAdmin"),
        ],
    )
    .await);
    let res = w.get("/cluster/resources").await.ok();
    let kinds: Vec<&str> = res
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    // Guests (VM.Audit on /vms, inherited), but no nodes or storages (no Sys.Audit
    // or Datastore privilege on their paths for the user).
    assert!(
        kinds.iter().all(|k| *k == "qemu") && kinds.len() == 3,
        "{res}"
    );

    // Writes need their privilege; the answer names the path and the privilege.
    let r = w
        .put("/nodes/pve1/qemu/9000/config", &[("cores", "4")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.raw);
    assert_eq!(
        r.body["message"],
        "Permission check failed (/vms/9000, VM.Config.Disk|VM.Config.CDROM|VM.Config.CPU|VM.Config.Memory|VM.Config.Network|VM.Config.HWType|VM.Config.Options|VM.Config.Cloudinit)\n"
    );
    let r = w.post("/nodes/pve1/qemu/9000/status/start", &[]).await;
    assert_eq!(
        r.reason,
        "Permission check failed (/vms/9000, VM.PowerMgmt)"
    );

    // A role with CPU but not memory: cores go through, memory is refused.
    ok(p.put(
        "/access/roles/Watcher",
        &[("privs", "VM.Config.CPU"), ("append", "1")],
    )
    .await);
    let id = p.clone_template("acl").await;
    w.put(&format!("/nodes/pve1/qemu/{id}/config"), &[("cores", "2")])
        .await
        .ok();
    let r = w
        .put(
            &format!("/nodes/pve1/qemu/{id}/config"),
            &[("memory", "4096")],
        )
        .await;
    assert_eq!(
        r.reason,
        format!("Permission check failed (/vms/{id}, VM.Config.Memory)")
    );
    // A deeper NoAccess entry replaces what was inherited.
    ok(p.put(
        "/access/acl",
        &[
            ("path", &format!("/vms/{id}")),
            ("tokens", "ops@pve!watch"),
            ("roles", "NoAccess"),
        ],
    )
    .await);
    let res = w.get("/cluster/resources?type=vm").await.ok();
    assert!(
        res.as_array()
            .unwrap()
            .iter()
            .all(|r| r["vmid"].to_string().as_str() != id.as_str()),
        "{res}"
    );
    let acl = p.get("/access/acl").await.ok();
    assert!(
        acl.as_array()
            .unwrap()
            .iter()
            .any(|e| e["ugid"] == "ops@pve!watch"
                && e["type"] == "token"
                && e["roleid"] == "NoAccess"),
        "{acl}"
    );
}

#[tokio::test]
async fn storages_are_usable_only_on_the_nodes_they_are_enabled_on() {
    // pve-storage `storage_check_node`: "storage 'X' is not available on node 'Y'".
    let (_t, p) = twin(0).await;
    let url = format!("{}/dcs/{}/proxmox/mutate", p.admin, p.dc);
    let r = p
        .http
        .post(&url)
        .json(&json!({"kind": "storage", "id": "ceph-vm", "set": {"nodes": "pve1"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let res = p.get("/cluster/resources?type=storage").await.ok();
    let on: Vec<String> = res
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["storage"] == "ceph-vm")
        .map(|s| s["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(on, vec!["pve1".to_string()]);
    let id = p.nextid().await;
    let r = p
        .post(
            "/nodes/pve1/qemu/9000/clone",
            &[
                ("newid", id.as_str()),
                ("name", "x"),
                ("target", "pve2"),
                ("full", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.raw);
    assert_eq!(
        r.reason,
        "storage 'ceph-vm' is not available on node 'pve2'"
    );
}
