//! Day-2 operations on the simulated Proxmox VE cluster, over HTTPS as a client does
//! them: migration (preconditions, refusals, the `qmigrate` task and where the guest
//! ends up), snapshots (take, list, roll back, delete, their configurations), node
//! versions and package updates, node reboots, upgrades (the `node-upgrade` mutation)
//! and the faults that make a node fail its health after one.
//!
//! Messages and status codes are qemu-server's (`src/PVE/API2/Qemu.pm`,
//! `src/PVE/QemuMigrate.pm`), pve-guest-common's (`src/PVE/AbstractConfig.pm`,
//! `src/PVE/AbstractMigrate.pm`), pve-manager's (`PVE/API2/Nodes.pm`,
//! `PVE/API2/APT.pm`) and pveproxy's (595 for a node it cannot reach).

// Test code: a panic is the failure report, so unwrapping is fine here.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use strata_twin::{DcSeed, FaultSpec, RunningTwin, SeedStorage, TwinOptions};

fn seed() -> DcSeed {
    DcSeed {
        name: "fra1".into(),
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
            SeedStorage {
                name: "san-lvm".into(),
                kind: "lvm".into(),
                content: vec!["images".into()],
            },
        ],
        ..DcSeed::default()
    }
}

struct Pve {
    base: String,
    http: reqwest::Client,
    token: String,
    admin: String,
    dc: String,
    clock: strata_twin::Clock,
}

#[derive(Debug)]
struct Resp {
    status: StatusCode,
    reason: String,
    body: Value,
    raw: String,
}

impl Resp {
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
    /// The status and the message's first line (the reason phrase).
    fn fails(&self, status: u16, reason: &str) {
        assert_eq!(
            (self.status.as_u16(), self.reason.as_str()),
            (status, reason),
            "{}",
            self.raw
        );
    }
    fn param_error(&self, param: &str) -> String {
        assert_eq!(self.status, StatusCode::BAD_REQUEST, "{}", self.raw);
        self.body["errors"][param]
            .as_str()
            .unwrap_or_else(|| panic!("no error for {param}: {}", self.raw))
            .to_string()
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

impl Pve {
    async fn send(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Resp {
        let url = format!("{}{path}", self.base);
        let rb = self
            .http
            .request(method.clone(), url)
            .header("Authorization", &self.token);
        let rb = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            rb.query(form)
        } else {
            rb.form(form)
        };
        read(rb.send().await.expect("request")).await
    }
    async fn get(&self, path: &str) -> Resp {
        self.send(reqwest::Method::GET, path, &[]).await
    }
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.send(reqwest::Method::POST, path, form).await
    }
    async fn put(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.send(reqwest::Method::PUT, path, form).await
    }
    async fn delete(&self, path: &str) -> Resp {
        self.send(reqwest::Method::DELETE, path, &[]).await
    }
    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
    /// Poll a task until it stops; its status.
    async fn wait(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).expect("node in UPID");
        for _ in 0..2_000 {
            let s = self
                .get(&format!("/nodes/{node}/tasks/{upid}/status"))
                .await
                .ok();
            if s["status"] == "stopped" {
                return s;
            }
            self.advance(Duration::from_millis(40)).await;
        }
        panic!("task {upid} still running");
    }
    /// Run a task to its end; (exit status, log text).
    async fn task(&self, r: Resp) -> (String, String) {
        let upid = r.ok();
        let upid = upid.as_str().expect("a UPID").to_string();
        let st = self.wait(&upid).await;
        let node = upid.split(':').nth(1).unwrap();
        let log = self
            .send(
                reqwest::Method::GET,
                &format!("/nodes/{node}/tasks/{upid}/log"),
                &[("limit", "500")],
            )
            .await
            .ok();
        let text: Vec<String> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["t"].as_str().unwrap().to_string())
            .collect();
        (
            st["exitstatus"].as_str().unwrap().to_string(),
            text.join("\n"),
        )
    }
    async fn mutate(&self, kind: &str, id: &str, set: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/dcs/{}/proxmox/mutate", self.admin, self.dc))
            .json(&json!({"kind": kind, "id": id, "set": set}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    async fn fault(&self, id: &str, fault: &str) {
        let r = self
            .http
            .post(format!("{}/faults/object", self.admin))
            .json(
                &json!({"dc": self.dc, "service": "proxmox", "id": id, "fault": fault, "times": 1}),
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    /// Clone the template (disks on the shared `ceph-vm`) to `newid` on pve1.
    async fn clone_template(&self, newid: &str, name: &str) {
        let (st, log) = self
            .task(
                self.post(
                    "/nodes/pve1/qemu/9000/clone",
                    &[("newid", newid), ("name", name), ("full", "1")],
                )
                .await,
            )
            .await;
        assert_eq!(st, "OK", "{log}");
    }
    /// A guest with one disk on `disk` (e.g. `local-zfs:4`) on pve1.
    async fn create(&self, vmid: &str, disk: &str, start: bool) {
        let mut form = vec![
            ("vmid", vmid),
            ("name", "vm"),
            ("memory", "1024"),
            ("scsi0", disk),
            ("net0", "virtio,bridge=vmbr0"),
        ];
        if start {
            form.push(("start", "1"));
        }
        let (st, log) = self.task(self.post("/nodes/pve1/qemu", &form).await).await;
        assert_eq!(st, "OK", "{log}");
    }
    async fn node_of(&self, vmid: &str) -> String {
        let res = self
            .send(
                reqwest::Method::GET,
                "/cluster/resources",
                &[("type", "vm")],
            )
            .await
            .ok();
        res.as_array()
            .unwrap()
            .iter()
            .find(|e| e["vmid"].as_u64().is_some_and(|v| v.to_string() == vmid))
            .map(|e| e["node"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

async fn twin() -> (RunningTwin, Pve) {
    let t = strata_twin::start_with_clock(
        TwinOptions {
            dcs: vec![seed()],
            listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
            faults: FaultSpec::default(),
            latency_ms: 0,
            state_file: None,
            seed: 5,
            timing: Default::default(),
        },
        strata_twin::Clock::virtual_now(),
    )
    .await
    .expect("start");
    let doc = t.endpoints();
    let p = &doc["dcs"][0]["proxmox"];
    let ca = reqwest::Certificate::from_pem(t.state.ca_pem.as_bytes()).unwrap();
    let pve = Pve {
        base: format!("{}/api2/json", p["url"].as_str().unwrap()),
        http: reqwest::Client::builder()
            .tls_certs_only([ca])
            .build()
            .unwrap(),
        token: format!(
            "PVEAPIToken={}={}",
            p["token_id"].as_str().unwrap(),
            p["token_secret"].as_str().unwrap()
        ),
        admin: format!("http://{}/_twin", t.addr),
        dc: "fra1".into(),
        clock: t.clock().clone(),
    };
    (t, pve)
}

#[tokio::test]
async fn migrate_moves_a_stopped_guest_and_refuses_what_pve_refuses() {
    let (_t, p) = twin().await;
    p.clone_template("100", "web").await;

    // Preconditions: stopped, every other node allowed, no local disks (ceph is shared).
    let pre = p.get("/nodes/pve1/qemu/100/migrate").await.ok();
    assert_eq!(pre["running"], 0, "{pre}");
    assert_eq!(pre["allowed_nodes"], json!(["pve2", "pve3"]), "{pre}");
    assert_eq!(pre["not_allowed_nodes"], json!({}), "{pre}");
    assert_eq!(pre["local_disks"], json!([]), "{pre}");
    assert_eq!(pre["local_resources"], json!([]), "{pre}");

    // Refusals of the API call itself.
    let r = p
        .post("/nodes/pve1/qemu/100/migrate", &[("target", "pve1")])
        .await;
    assert_eq!(r.param_error("target"), "target is local node.");
    let r = p
        .post("/nodes/pve1/qemu/100/migrate", &[("target", "pve9")])
        .await;
    r.fails(500, "no such cluster node 'pve9'");
    let r = p
        .post("/nodes/pve1/qemu/100/migrate", &[("target", "not_a node")])
        .await;
    assert!(r.param_error("target").contains("valid node name"), "{r:?}");
    let r = p.post("/nodes/pve1/qemu/100/migrate", &[]).await;
    assert_eq!(
        r.param_error("target"),
        "property is missing and it is not optional"
    );
    let r = p
        .post(
            "/nodes/pve1/qemu/100/migrate",
            &[("target", "pve2"), ("force", "1")],
        )
        .await;
    assert_eq!(r.param_error("force"), "Only root may use this option.");
    let r = p
        .post("/nodes/pve2/qemu/100/migrate", &[("target", "pve3")])
        .await;
    r.fails(
        500,
        "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist",
    );

    // `online` on a stopped guest is ignored (the API warns to its own log): an offline
    // migration.
    let upid = p
        .post(
            "/nodes/pve1/qemu/100/migrate",
            &[("target", "pve2"), ("online", "1")],
        )
        .await
        .ok();
    let upid = upid.as_str().unwrap().to_string();
    assert!(upid.starts_with("UPID:pve1:"), "{upid}");
    assert!(upid.contains(":qmigrate:100:"), "{upid}");
    // While it runs the guest is locked.
    p.advance(Duration::from_millis(200)).await;
    let conf = p.get("/nodes/pve1/qemu/100/config").await.ok();
    assert_eq!(conf["lock"], "migrate", "{conf}");
    let r = p
        .post("/nodes/pve1/qemu/100/migrate", &[("target", "pve3")])
        .await;
    r.fails(500, "VM is locked (migrate)");
    let st = p.wait(&upid).await;
    assert_eq!(st["exitstatus"], "OK", "{st}");
    let log = p.get(&format!("/nodes/pve1/tasks/{upid}/log")).await.ok();
    let log = log.to_string();
    assert!(log.contains("starting migration of VM 100 to node 'pve2'"));
    assert!(log.contains("migration finished successfully"));

    // The guest is on pve2 now, unlocked.
    assert_eq!(p.node_of("100").await, "pve2");
    let conf = p.get("/nodes/pve2/qemu/100/config").await.ok();
    assert!(conf.get("lock").is_none(), "{conf}");
    p.get("/nodes/pve1/qemu/100/config").await.fails(
        500,
        "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist",
    );
    let listed = p.get("/nodes/pve2/qemu").await.ok();
    assert!(
        listed.as_array().unwrap().iter().any(|v| v["vmid"] == 100),
        "{listed}"
    );
}

#[tokio::test]
async fn running_guests_need_online_and_local_disks_need_with_local_disks() {
    let (_t, p) = twin().await;
    p.create("101", "local-zfs:4", true).await;
    let pre = p.get("/nodes/pve1/qemu/101/migrate").await.ok();
    assert_eq!(pre["running"], 1);
    let disks = pre["local_disks"].as_array().unwrap();
    assert_eq!(disks.len(), 1, "{pre}");
    assert_eq!(disks[0]["volid"], "local-zfs:vm-101-disk-0");
    assert_eq!(disks[0]["drivename"], "scsi0");
    assert_eq!(disks[0]["size"], 4u64 << 30);

    let r = p
        .post("/nodes/pve1/qemu/101/migrate", &[("target", "pve2")])
        .await;
    r.fails(500, "can't migrate running VM without --online");

    // Online, but the local disk cannot move without `with-local-disks`: the task fails.
    let (st, log) = p
        .task(
            p.post(
                "/nodes/pve1/qemu/101/migrate",
                &[("target", "pve2"), ("online", "1")],
            )
            .await,
        )
        .await;
    assert_eq!(st, "migration aborted", "{log}");
    assert!(log.contains(
        "can't migrate local disk 'local-zfs:vm-101-disk-0': can't live migrate attached local disks without with-local-disks option"
    ), "{log}");
    assert!(
        log.contains("ERROR: migration aborted (duration 00:00:0"),
        "{log}"
    );
    assert!(log.ends_with("TASK ERROR: migration aborted"), "{log}");
    assert_eq!(p.node_of("101").await, "pve1");
    let conf = p.get("/nodes/pve1/qemu/101/config").await.ok();
    assert!(conf.get("lock").is_none(), "{conf}");

    // With it, the guest moves and keeps running.
    let (st, log) = p
        .task(
            p.post(
                "/nodes/pve1/qemu/101/migrate",
                &[
                    ("target", "pve2"),
                    ("online", "1"),
                    ("with-local-disks", "1"),
                ],
            )
            .await,
        )
        .await;
    assert_eq!(st, "OK", "{log}");
    assert!(
        log.contains("found local disk 'local-zfs:vm-101-disk-0' (attached)"),
        "{log}"
    );
    assert!(
        log.contains("starting VM 101 on remote node 'pve2'"),
        "{log}"
    );
    let cur = p.get("/nodes/pve2/qemu/101/status/current").await.ok();
    assert_eq!(cur["status"], "running", "{cur}");

    // A storage map moves the local disk to another storage.
    let (st, log) = p
        .task(
            p.post(
                "/nodes/pve2/qemu/101/migrate",
                &[
                    ("target", "pve3"),
                    ("online", "1"),
                    ("with-local-disks", "1"),
                    ("targetstorage", "local-zfs:ceph-vm"),
                ],
            )
            .await,
        )
        .await;
    assert_eq!(st, "OK", "{log}");
    let conf = p.get("/nodes/pve3/qemu/101/config").await.ok();
    assert!(
        conf["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("ceph-vm:vm-101-disk-0"),
        "{conf}"
    );
    let r = p
        .post(
            "/nodes/pve3/qemu/101/migrate",
            &[
                ("target", "pve1"),
                ("online", "1"),
                ("targetstorage", "nowhere"),
            ],
        )
        .await;
    r.fails(500, "storage 'nowhere' does not exist");
}

#[tokio::test]
async fn storages_restrict_targets_and_down_nodes_abort_migrations() {
    let (_t, p) = twin().await;
    p.create("102", "local-zfs:2", false).await;
    let (s, _) = p
        .mutate("storage", "local-zfs", json!({"nodes": "pve1,pve2"}))
        .await;
    assert_eq!(s, 200);
    let pre = p.get("/nodes/pve1/qemu/102/migrate").await.ok();
    assert_eq!(pre["allowed_nodes"], json!(["pve2"]), "{pre}");
    assert_eq!(
        pre["not_allowed_nodes"]["pve3"]["unavailable_storages"],
        json!(["local-zfs"]),
        "{pre}"
    );
    let r = p
        .post("/nodes/pve1/qemu/102/migrate", &[("target", "pve3")])
        .await;
    r.fails(500, "storage 'local-zfs' is not available on node 'pve3'");

    // A node that is down: the API call is accepted (PVE does not check), the task's
    // ssh test fails.
    let (s, node) = p.mutate("node", "pve2", json!({"health": "offline"})).await;
    assert_eq!(s, 200, "{node}");
    assert_eq!(node["health"], "offline");
    let (st, log) = p
        .task(
            p.post("/nodes/pve1/qemu/102/migrate", &[("target", "pve2")])
                .await,
        )
        .await;
    assert_eq!(st, "migration aborted");
    assert!(
        log.contains("ERROR: migration aborted (duration 00:00:00): Can't connect to destination address using public key")
            || log.contains("Can't connect to destination address using public key"),
        "{log}"
    );
    assert_eq!(p.node_of("102").await, "pve1");
}

#[tokio::test]
async fn ha_resources_migrate_through_the_ha_manager() {
    let (_t, p) = twin().await;
    p.clone_template("103", "ha").await;
    p.post("/cluster/ha/resources", &[("sid", "vm:103")])
        .await
        .ok();
    // The HA manager starts it.
    for _ in 0..100 {
        if p.get("/nodes/pve1/qemu/103/status/current").await.ok()["status"] == "running" {
            break;
        }
        p.advance(Duration::from_millis(100)).await;
    }
    let pre = p.get("/nodes/pve1/qemu/103/migrate").await.ok();
    assert_eq!(pre["dependent-ha-resources"], json!([]), "{pre}");
    let upid = p
        .post(
            "/nodes/pve1/qemu/103/migrate",
            &[("target", "pve3"), ("online", "1")],
        )
        .await
        .ok();
    let upid = upid.as_str().unwrap().to_string();
    assert!(upid.contains(":hamigrate:103:"), "{upid}");
    let st = p.wait(&upid).await;
    assert_eq!(st["exitstatus"], "OK");
    // Then the HA manager's own `qmigrate`, as root@pam.
    let mut moved = false;
    for _ in 0..200 {
        if p.node_of("103").await == "pve3" {
            moved = true;
            break;
        }
        p.advance(Duration::from_millis(100)).await;
    }
    assert!(moved, "the HA manager did not migrate vm:103");
    let tasks = p.get("/nodes/pve1/tasks").await.ok();
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["type"] == "qmigrate" && t["user"] == "root@pam" && t["status"] == "OK"),
        "{tasks}"
    );
    let cur = p.get("/nodes/pve3/qemu/103/status/current").await.ok();
    assert_eq!(cur["status"], "running");
}

#[tokio::test]
async fn snapshots_are_taken_listed_rolled_back_and_deleted() {
    let (_t, p) = twin().await;
    p.clone_template("104", "db").await;
    let before = p.get("/nodes/pve1/qemu/104/config").await.ok();

    // Names: format and length are checked first (400), the reserved names by the API.
    let r = p
        .post("/nodes/pve1/qemu/104/snapshot", &[("snapname", "1st")])
        .await;
    assert_eq!(
        r.param_error("snapname"),
        "invalid format - invalid configuration ID '1st'\n"
    );
    let long = "s".repeat(41);
    let r = p
        .post("/nodes/pve1/qemu/104/snapshot", &[("snapname", &long)])
        .await;
    assert_eq!(
        r.param_error("snapname"),
        "value may only be 40 characters long"
    );
    p.post("/nodes/pve1/qemu/104/snapshot", &[("snapname", "current")])
        .await
        .fails(500, "unable to use snapshot name 'current' (reserved name)");
    p.post("/nodes/pve1/qemu/104/snapshot", &[("snapname", "Pending")])
        .await
        .fails(500, "unable to use snapshot name 'pending' (reserved name)");
    p.post("/nodes/pve1/qemu/999/snapshot", &[("snapname", "x1")])
        .await
        .fails(
            500,
            "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist",
        );

    // Take one.
    let (st, log) = p
        .task(
            p.post(
                "/nodes/pve1/qemu/104/snapshot",
                &[("snapname", "pre-upgrade"), ("description", "before 9.1")],
            )
            .await,
        )
        .await;
    assert_eq!(st, "OK", "{log}");
    let list = p.get("/nodes/pve1/qemu/104/snapshot").await.ok();
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["name"], "pre-upgrade");
    assert_eq!(list[0]["description"], "before 9.1");
    assert_eq!(list[0]["vmstate"], 0);
    assert!(list[0]["snaptime"].as_i64().unwrap() > 0);
    assert_eq!(list[1]["name"], "current");
    assert_eq!(list[1]["parent"], "pre-upgrade");
    assert_eq!(list[1]["description"], "You are here!");
    let conf = p.get("/nodes/pve1/qemu/104/config").await.ok();
    assert_eq!(conf["parent"], "pre-upgrade");
    assert_ne!(conf["digest"], before["digest"]);
    let snap = p
        .get("/nodes/pve1/qemu/104/snapshot/pre-upgrade/config")
        .await
        .ok();
    assert_eq!(snap["memory"], before["memory"], "{snap}");
    assert_eq!(snap["description"], "before 9.1");
    assert!(snap.get("lock").is_none() && snap.get("digest").is_none());
    let idx = p
        .get("/nodes/pve1/qemu/104/snapshot/pre-upgrade")
        .await
        .ok();
    assert_eq!(idx, json!([{"cmd": "rollback"}, {"cmd": "config"}]));
    let at = p
        .send(
            reqwest::Method::GET,
            "/nodes/pve1/qemu/104/config",
            &[("snapshot", "pre-upgrade")],
        )
        .await
        .ok();
    assert_eq!(at["memory"], before["memory"]);
    p.put(
        "/nodes/pve1/qemu/104/snapshot/pre-upgrade/config",
        &[("description", "kept")],
    )
    .await
    .ok();
    p.get("/nodes/pve1/qemu/104/snapshot/nope/config")
        .await
        .fails(500, "snapshot 'nope' does not exist");

    // A name already used fails the task.
    let (st, _) = p
        .task(
            p.post(
                "/nodes/pve1/qemu/104/snapshot",
                &[("snapname", "pre-upgrade")],
            )
            .await,
        )
        .await;
    assert_eq!(st, "snapshot name 'pre-upgrade' already used");

    // Change the guest, then roll back: the snapshot's configuration is back.
    p.put("/nodes/pve1/qemu/104/config", &[("memory", "8192")])
        .await
        .ok();
    let (st, log) = p
        .task(
            p.post(
                "/nodes/pve1/qemu/104/snapshot/pre-upgrade/rollback",
                &[("start", "1")],
            )
            .await,
        )
        .await;
    assert_eq!(st, "OK", "{log}");
    let conf = p.get("/nodes/pve1/qemu/104/config").await.ok();
    assert_eq!(conf["memory"], before["memory"], "{conf}");
    assert_eq!(conf["parent"], "pre-upgrade");
    let cur = p.get("/nodes/pve1/qemu/104/status/current").await.ok();
    assert_eq!(cur["status"], "running", "rollback with start=1 starts it");
    let (st, _) = p
        .task(
            p.post("/nodes/pve1/qemu/104/snapshot/nope/rollback", &[])
                .await,
        )
        .await;
    assert_eq!(st, "snapshot 'nope' does not exist");

    // A second snapshot, child of the first; deleting the first relinks it.
    let (st, _) = p
        .task(
            p.post("/nodes/pve1/qemu/104/snapshot", &[("snapname", "second")])
                .await,
        )
        .await;
    assert_eq!(st, "OK");
    let snap = p
        .get("/nodes/pve1/qemu/104/snapshot/second/config")
        .await
        .ok();
    assert_eq!(snap["parent"], "pre-upgrade");
    let (st, _) = p
        .task(p.delete("/nodes/pve1/qemu/104/snapshot/pre-upgrade").await)
        .await;
    assert_eq!(st, "OK");
    let snap = p
        .get("/nodes/pve1/qemu/104/snapshot/second/config")
        .await
        .ok();
    assert!(snap.get("parent").is_none(), "{snap}");
    let (st, _) = p
        .task(p.delete("/nodes/pve1/qemu/104/snapshot/gone").await)
        .await;
    assert_eq!(st, "snapshot 'gone' does not exist");

    // A clone of a snapshot.
    let (st, log) = p
        .task(
            p.post(
                "/nodes/pve1/qemu/104/clone",
                &[("newid", "105"), ("snapname", "second"), ("full", "1")],
            )
            .await,
        )
        .await;
    assert_eq!(st, "OK", "{log}");

    // Templates and storages without snapshots refuse in the task.
    let (st, _) = p
        .task(
            p.post("/nodes/pve1/qemu/9000/snapshot", &[("snapname", "t1")])
                .await,
        )
        .await;
    assert_eq!(st, "you can't take a snapshot if it's a template");
    p.create("106", "san-lvm:2", false).await;
    let (st, _) = p
        .task(
            p.post("/nodes/pve1/qemu/106/snapshot", &[("snapname", "s1")])
                .await,
        )
        .await;
    assert_eq!(st, "snapshot feature is not available");
}

#[tokio::test]
async fn snapshots_with_ram_and_local_disks_limit_migration() {
    let (_t, p) = twin().await;
    p.create("110", "local-zfs:2", true).await;
    let (st, log) = p
        .task(
            p.post(
                "/nodes/pve1/qemu/110/snapshot",
                &[("snapname", "live"), ("vmstate", "1")],
            )
            .await,
        )
        .await;
    assert_eq!(st, "OK", "{log}");
    let list = p.get("/nodes/pve1/qemu/110/snapshot").await.ok();
    assert_eq!(list[0]["vmstate"], 1, "{list}");
    let snap = p
        .get("/nodes/pve1/qemu/110/snapshot/live/config")
        .await
        .ok();
    assert_eq!(snap["vmstate"], "local-zfs:vm-110-state-live");

    // A running guest with a snapshot on a local disk cannot move live.
    let (st, log) = p
        .task(
            p.post(
                "/nodes/pve1/qemu/110/migrate",
                &[
                    ("target", "pve2"),
                    ("online", "1"),
                    ("with-local-disks", "1"),
                ],
            )
            .await,
        )
        .await;
    assert_eq!(st, "migration aborted");
    assert!(
        log.contains("online storage migration not possible if non-replicated snapshot exists"),
        "{log}"
    );
    // Stopped, a ZFS volume with snapshots moves.
    let (st, _) = p
        .task(p.post("/nodes/pve1/qemu/110/status/stop", &[]).await)
        .await;
    assert_eq!(st, "OK");
    let (st, log) = p
        .task(
            p.post("/nodes/pve1/qemu/110/migrate", &[("target", "pve2")])
                .await,
        )
        .await;
    assert_eq!(st, "OK", "{log}");
    // Rolling back to a snapshot with RAM starts the guest.
    let (st, _) = p
        .task(
            p.post("/nodes/pve2/qemu/110/snapshot/live/rollback", &[])
                .await,
        )
        .await;
    assert_eq!(st, "OK");
    let cur = p.get("/nodes/pve2/qemu/110/status/current").await.ok();
    assert_eq!(cur["status"], "running");
}

#[tokio::test]
async fn node_versions_and_package_updates() {
    let (_t, p) = twin().await;
    let v = p.get("/nodes/pve2/version").await.ok();
    assert_eq!(v["version"], "9.1.2");
    assert_eq!(v["release"], "9.1");
    assert!(v["repoid"].as_str().is_some_and(|r| r.len() == 16));
    assert_eq!(p.get("/version").await.ok()["version"], "9.1.2");
    let st = p.get("/nodes/pve2/status").await.ok();
    assert!(
        st["pveversion"]
            .as_str()
            .unwrap()
            .starts_with("pve-manager/9.1.2/"),
        "{st}"
    );
    p.get("/nodes/pve9/version").await.fails(
        500,
        "hostname lookup 'pve9' failed - failed to get address info for: pve9: Name or service not known",
    );

    // What the package index knows of: pve-manager and a new kernel.
    let updates = p.get("/nodes/pve2/apt/update").await.ok();
    let updates = updates.as_array().unwrap().clone();
    let mgr = updates
        .iter()
        .find(|u| u["Package"] == "pve-manager")
        .expect("pve-manager update");
    assert_eq!(mgr["OldVersion"], "9.1.2");
    assert_eq!(mgr["Version"], "9.1.5");
    assert_eq!(mgr["Origin"], "Proxmox");
    let kernel = updates
        .iter()
        .find(|u| u["Section"] == "kernel")
        .expect("kernel");
    assert_eq!(kernel["Package"], "proxmox-kernel-6.17.4-2-pve-signed");
    assert!(kernel.get("OldVersion").is_none());

    // The repository moves on; the node sees it after `apt-get update`.
    let (s, repo) = p
        .mutate("apt-repository", "pve", json!({"version": "9.1.6"}))
        .await;
    assert_eq!((s, repo["version"].clone()), (200, json!("9.1.6")));
    let u = p.get("/nodes/pve2/apt/update").await.ok();
    assert_eq!(u[0]["Version"], "9.1.5", "not refreshed yet");
    let upid = p.post("/nodes/pve2/apt/update", &[]).await.ok();
    assert!(upid.as_str().unwrap().contains(":aptupdate::"), "{upid}");
    let st = p.wait(upid.as_str().unwrap()).await;
    assert_eq!(st["exitstatus"], "OK");
    let u = p.get("/nodes/pve2/apt/update").await.ok();
    assert_eq!(u[0]["Version"], "9.1.6");
    let u = p.get("/nodes/pve3/apt/update").await.ok();
    assert_eq!(u[0]["Version"], "9.1.5", "other nodes keep their index");

    // `apt dist-upgrade` (the mutation): the version at once, the kernel at the next boot.
    let (s, n) = p.mutate("node-upgrade", "pve2", json!({})).await;
    assert_eq!(s, 200, "{n}");
    assert_eq!(n["version"], "9.1.6");
    assert_eq!(n["previous"], "9.1.2");
    assert_eq!(n["kernel_installed"], "6.17.4-2-pve");
    assert_eq!(n["changed"], true);
    assert_eq!(p.get("/nodes/pve2/version").await.ok()["version"], "9.1.6");
    assert_eq!(p.get("/nodes/pve1/version").await.ok()["version"], "9.1.2");
    assert_eq!(
        p.get("/nodes/pve2/apt/update").await.ok(),
        json!([]),
        "nothing left to upgrade"
    );
    let st = p.get("/nodes/pve2/status").await.ok();
    assert_eq!(st["current-kernel"]["release"], "6.17.2-1-pve");
    // Nothing newer: no change.
    let (s, n) = p.mutate("node-upgrade", "pve2", json!({})).await;
    assert_eq!((s, n["changed"].clone()), (200, json!(false)));

    // Refusals of the admin API.
    let (s, e) = p.mutate("node-upgrade", "pve9", json!({})).await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = p
        .mutate("node-upgrade", "pve2", json!({"channel": "test"}))
        .await;
    assert_eq!(s, 400);
    let (s, _) = p.mutate("node", "pve2", json!({"health": "sleepy"})).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn a_reboot_takes_the_node_away_and_brings_it_back_on_its_new_kernel() {
    let (_t, p) = twin().await;
    p.create("120", "ceph-vm:2", true).await;
    p.create("121", "ceph-vm:2", true).await;
    p.put("/nodes/pve1/qemu/121/config", &[("onboot", "1")])
        .await
        .ok();
    let (st, _) = p
        .task(
            p.post(
                "/nodes/pve1/qemu/120/migrate",
                &[("target", "pve2"), ("online", "1")],
            )
            .await,
        )
        .await;
    assert_eq!(st, "OK");
    let (st, _) = p
        .task(
            p.post(
                "/nodes/pve1/qemu/121/migrate",
                &[("target", "pve2"), ("online", "1")],
            )
            .await,
        )
        .await;
    assert_eq!(st, "OK");
    p.mutate("node-upgrade", "pve2", json!({})).await;

    let r = p.post("/nodes/pve2/status", &[("command", "sleep")]).await;
    assert!(r.param_error("command").contains("enumeration"), "{r:?}");
    let r = p.post("/nodes/pve2/status", &[("command", "reboot")]).await;
    assert_eq!(r.ok(), Value::Null);
    // Still up for a moment, then down.
    assert_eq!(p.get("/nodes/pve2/status").await.status, StatusCode::OK);
    p.advance(Duration::from_secs(6)).await;
    let r = p.get("/nodes/pve2/status").await;
    r.fails(595, "No route to host");
    assert_eq!(r.raw, "");
    let cs = p.get("/cluster/status").await.ok();
    let pve2 = cs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "pve2")
        .unwrap()
        .clone();
    assert_eq!(pve2["online"], 0, "{cs}");
    assert_eq!(cs[0]["quorate"], 1, "two of three are quorate");
    let nodes = p.get("/nodes").await.ok();
    let pve2 = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"] == "pve2")
        .unwrap()
        .clone();
    assert_eq!(pve2["status"], "offline");
    assert!(pve2.get("uptime").is_none());
    let res = p
        .send(
            reqwest::Method::GET,
            "/cluster/resources",
            &[("type", "vm")],
        )
        .await
        .ok();
    let vm = res
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["vmid"] == 120)
        .unwrap()
        .clone();
    assert_eq!(vm["status"], "unknown", "{vm}");

    // Back after the boot: the new kernel runs, guests with onboot start again.
    p.advance(Duration::from_secs(61)).await;
    let st = p.get("/nodes/pve2/status").await.ok();
    assert_eq!(st["current-kernel"]["release"], "6.17.4-2-pve");
    assert!(st["uptime"].as_i64().unwrap() < 10, "{st}");
    let mut started = false;
    for _ in 0..50 {
        let c = p.get("/nodes/pve2/qemu/121/status/current").await.ok();
        if c["status"] == "running" {
            started = true;
            break;
        }
        p.advance(Duration::from_millis(100)).await;
    }
    assert!(started, "onboot guest 121 did not start after the boot");
    let c = p.get("/nodes/pve2/qemu/120/status/current").await.ok();
    assert_eq!(c["status"], "stopped", "a guest without onboot stays off");
}

#[tokio::test]
async fn broken_upgrades_fail_the_health_gate_until_rolled_back() {
    let (_t, p) = twin().await;
    // pveproxy does not come back: corosync still sees the node, the API does not.
    p.fault("pve2", "upgrade_pveproxy_down").await;
    let (s, n) = p.mutate("node-upgrade", "pve2", json!({})).await;
    assert_eq!(s, 200, "{n}");
    assert_eq!(n["health"], "pveproxy-down");
    let r = p.get("/nodes/pve2/status").await;
    r.fails(595, "Connection refused");
    let r = p.get("/nodes/pve2/version").await;
    r.fails(595, "Connection refused");
    let cs = p.get("/cluster/status").await.ok();
    assert!(
        cs.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "pve2" && e["online"] == 1),
        "{cs}"
    );
    // Repaired out of band (pveproxy restarted by hand).
    let (s, n) = p.mutate("node", "pve2", json!({"health": "online"})).await;
    assert_eq!((s, n["health"].clone()), (200, json!("online")));

    // The node does not come back at all.
    p.fault("pve3", "upgrade_offline").await;
    let (_, n) = p
        .mutate("node-upgrade", "pve3", json!({"reboot": true}))
        .await;
    assert_eq!(n["rebooting"], true);
    assert_eq!(n["version"], "9.1.5");
    p.advance(Duration::from_secs(70)).await;
    p.get("/nodes/pve3/status")
        .await
        .fails(595, "No route to host");
    let nodes = p.get("/nodes").await.ok();
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"] == "pve3" && e["status"] == "offline"),
        "{nodes}"
    );
    // Rolled back (pinned to the old version): healthy again.
    let (s, n) = p
        .mutate("node-upgrade", "pve3", json!({"version": "9.1.2"}))
        .await;
    assert_eq!(s, 200, "{n}");
    assert_eq!(n["health"], "online");
    assert_eq!(n["previous"], "9.1.5");
    assert_eq!(p.get("/nodes/pve3/version").await.ok()["version"], "9.1.2");
    assert_eq!(p.get("/nodes/pve3/status").await.status, StatusCode::OK);
}

#[tokio::test]
async fn without_quorum_writes_fail() {
    let (_t, p) = twin().await;
    p.clone_template("130", "q").await;
    for n in ["pve2", "pve3"] {
        p.mutate("node", n, json!({"health": "offline"})).await;
    }
    let cs = p.get("/cluster/status").await.ok();
    assert_eq!(cs[0]["quorate"], 0, "{cs}");
    p.post("/nodes/pve1/qemu/130/status/start", &[])
        .await
        .fails(500, "cluster not ready - no quorum?");
    p.post("/nodes/pve1/qemu/130/snapshot", &[("snapname", "s1")])
        .await
        .fails(500, "cluster not ready - no quorum?");
    // Reads and a node's own power still work.
    p.get("/nodes/pve1/qemu/130/config").await.ok();
    // The first node down: the next one answers, and /version is its own.
    p.mutate(
        "node",
        "pve2",
        json!({"health": "online", "version": "9.1.3"}),
    )
    .await;
    p.mutate("node", "pve1", json!({"health": "offline"})).await;
    assert_eq!(p.get("/version").await.ok()["version"], "9.1.3");
    p.get("/nodes/pve1/qemu")
        .await
        .fails(595, "No route to host");
}

#[tokio::test]
async fn migration_and_snapshots_need_their_privileges() {
    let (_t, p) = twin().await;
    p.clone_template("140", "acl").await;
    p.post("/access/users", &[("userid", "ops@pve")]).await.ok();
    let tok = p
        .post("/access/users/ops@pve/token/ops", &[("privsep", "0")])
        .await
        .ok();
    let secret = tok["value"].as_str().unwrap().to_string();
    p.put(
        "/access/acl",
        &[("path", "/"), ("users", "ops@pve"), ("roles", "PVEVMUser")],
    )
    .await
    .ok();
    let ops = Pve {
        base: p.base.clone(),
        http: p.http.clone(),
        token: format!("PVEAPIToken=ops@pve!ops={secret}"),
        admin: p.admin.clone(),
        dc: p.dc.clone(),
        clock: p.clock.clone(),
    };
    ops.post("/nodes/pve1/qemu/140/migrate", &[("target", "pve2")])
        .await
        .fails(403, "Permission check failed (/vms/140, VM.Migrate)");
    ops.get("/nodes/pve1/qemu/140/migrate")
        .await
        .fails(403, "Permission check failed (/vms/140, VM.Migrate)");
    ops.post("/nodes/pve1/qemu/140/snapshot", &[("snapname", "s1")])
        .await
        .fails(403, "Permission check failed (/vms/140, VM.Snapshot)");
    ops.get("/nodes/pve1/qemu/140/snapshot").await.ok();
    ops.post("/nodes/pve1/status", &[("command", "reboot")])
        .await
        .fails(403, "Permission check failed (/nodes/pve1, Sys.PowerMgmt)");
    ops.get("/nodes/pve1/apt/update")
        .await
        .fails(403, "Permission check failed (/nodes/pve1, Sys.Modify)");
    ops.get("/nodes/pve1/version").await.ok();
}
