//! Machines joining and leaving the platforms, as a real estate reacts: a machine MAAS
//! deploys with the Proxmox VE role becomes a cluster node, one deployed with an
//! OpenStack compute role's cloud-init registers its nova-compute service, hypervisor
//! and Placement provider (its GPUs as the region's PCI inventory); other roles join
//! nothing. Removing them goes through the vendors' APIs with their refusals (pve-cluster
//! `PVE/API2/ClusterConfig.pm` `delnode`, nova `services.py` `delete`, placement's
//! provider delete); releasing a machine without removing it first leaves a dead node
//! and a down service behind. Releases with a disk erase go through Disk erasing.

// Test code: a panic is the failure report, so unwrapping is fine here.
#![allow(clippy::unwrap_used)]

#[path = "openstack_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use strata_twin::{
    Clock, DcSeed, FaultSpec, RunningTwin, SeedGpu, SeedMachine, SeedStorage, TwinOptions,
};
use support::Cloud;

const PVE: &str = "PVE00001";
const PVE_B: &str = "PVE00002";
const CMP: &str = "CMP00001";
const GPU: &str = "GPU00001";
const OSD: &str = "OSD00001";

fn machine(serial: &str, n: u8, cpus: u32, gpus: usize) -> SeedMachine {
    SeedMachine {
        serial: serial.into(),
        pxe_mac: format!("52:54:00:aa:00:{n:02x}"),
        cpu_count: cpus,
        memory_mib: 262_144,
        storage_gb: 960,
        nics: vec!["eno1".into(), "eno2".into()],
        gpus: (0..gpus)
            .map(|g| SeedGpu {
                model: "H100 SXM5 80GB".into(),
                vendor_id: "10de".into(),
                device_id: "2330".into(),
                pcie_gen: 5,
                pcie_width: 16,
                numa_node: (g % 2) as u32,
                ..SeedGpu::default()
            })
            .collect(),
        ..SeedMachine::default()
    }
}

/// The region's Kolla files: the tests' GPU alias and, for the GPU machine that joins
/// (`fra1-gpu-09`), its device spec.
fn kolla() -> BTreeMap<String, String> {
    let mut files = support::kolla_config("fra1");
    files.insert(
        "config/nova/fra1-gpu-09.maas/nova.conf".into(),
        "[pci]\ndevice_spec = {\"vendor_id\": \"10de\", \"product_id\": \"2330\"}\n".into(),
    );
    files
}

async fn start() -> RunningTwin {
    let opts = TwinOptions {
        dcs: vec![DcSeed {
            name: "fra1".into(),
            machines: vec![
                machine(PVE, 1, 32, 0),
                machine(PVE_B, 2, 32, 0),
                machine(CMP, 3, 64, 0),
                machine(GPU, 4, 96, 4),
                machine(OSD, 5, 16, 0),
            ],
            proxmox_nodes: vec!["pve1".into(), "pve2".into(), "pve3".into()],
            proxmox_storages: vec![SeedStorage {
                name: "ceph-vm".into(),
                kind: "rbd".into(),
                content: vec!["images".into()],
            }],
            extra_vms: 1,
            kolla_config: kolla(),
            boot_images: vec!["custom/debian-13-pve".into()],
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 11,
        timing: Default::default(),
    };
    strata_twin::start_with_clock(opts, Clock::virtual_now())
        .await
        .unwrap()
}

/// strata's cloud-init for a role, as MAAS takes it (base64).
fn user_data(role: &str) -> String {
    let text = format!(
        "#cloud-config\npackage_update: true\nwrite_files:\n  - path: /etc/strata/role\n    owner: root:root\n    permissions: \"0644\"\n    content: |\n      role={role}\n      dc=fra1\n      fleet_id=test\n"
    );
    base64::engine::general_purpose::STANDARD.encode(text)
}

// ---------------------------------------------------------------------------------
// A small MAAS client (OAuth PLAINTEXT).

struct Maas {
    http: reqwest::Client,
    api: String,
    key: (String, String, String),
    clock: Clock,
}

impl Maas {
    fn new(twin: &RunningTwin) -> Maas {
        let doc = twin.endpoints();
        let url = doc["dcs"][0]["maas"]["url"].as_str().unwrap().to_string();
        let mut parts = doc["dcs"][0]["maas"]["api_key"]
            .as_str()
            .unwrap()
            .splitn(3, ':')
            .map(str::to_string);
        Maas {
            http: reqwest::Client::new(),
            api: format!("{url}api/2.0/"),
            key: (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            ),
            clock: twin.clock().clone(),
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value, String) {
        let (ck, tk, secret) = &self.key;
        let auth = format!(
            "OAuth oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", oauth_consumer_key=\"{ck}\", oauth_token=\"{tk}\", oauth_signature=\"&{secret}\", oauth_nonce=\"{}\", oauth_timestamp=\"1\"",
            uuid::Uuid::new_v4().simple()
        );
        let r = rb.header("Authorization", auth).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        )
    }

    async fn get(&self, path: &str) -> Value {
        let (s, v, t) = self
            .send(self.http.get(format!("{}{path}", self.api)))
            .await;
        assert_eq!(s, 200, "GET {path}: {t}");
        v
    }

    async fn post(
        &self,
        path: &str,
        op: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, Value, String) {
        let mut rb = self.http.post(format!("{}{path}", self.api));
        if let Some(op) = op {
            rb = rb.query(&[("op", op)]);
        }
        self.send(rb.form(form)).await
    }

    async fn put(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value, String) {
        self.send(self.http.put(format!("{}{path}", self.api)).form(form))
            .await
    }

    /// The system id of the machine with this serial.
    async fn sid(&self, serial: &str) -> String {
        let all = self.get("machines/").await;
        all.as_array()
            .unwrap()
            .iter()
            .find(|m| m["hardware_info"]["system_serial"] == serial)
            .and_then(|m| m["system_id"].as_str())
            .unwrap_or_else(|| panic!("no machine {serial}"))
            .to_string()
    }

    /// Poll until the machine is in `want`, moving the twin's clock; the statuses it
    /// went through.
    async fn wait(&self, sid: &str, want: u64) -> Vec<u64> {
        let mut seen = Vec::new();
        for _ in 0..400 {
            let m = self.get(&format!("machines/{sid}/")).await;
            let s = m["status"].as_u64().unwrap();
            if seen.last() != Some(&s) {
                seen.push(s);
            }
            if s == want {
                return seen;
            }
            self.clock.advance(Duration::from_millis(50));
        }
        panic!("{sid} never reached {want}: {seen:?}");
    }

    /// Commission (when not Ready yet) and deploy the machine as `hostname`.
    async fn deploy(&self, serial: &str, hostname: &str, series: &str, ud: Option<&str>) -> String {
        let sid = self.sid(serial).await;
        let m = self.get(&format!("machines/{sid}/")).await;
        if m["status"] != 4 {
            let (s, _, t) = self
                .put(&format!("machines/{sid}/"), &[("hostname", hostname)])
                .await;
            assert_eq!(s, 200, "{t}");
            let (s, _, t) = self
                .post(&format!("machines/{sid}/"), Some("commission"), &[])
                .await;
            assert_eq!(s, 200, "{t}");
            self.wait(&sid, 4).await;
        }
        let mut form = vec![("distro_series", series)];
        if let Some(ud) = ud {
            form.push(("user_data", ud));
        }
        let (s, _, t) = self
            .post(&format!("machines/{sid}/"), Some("deploy"), &form)
            .await;
        assert_eq!(s, 200, "deploy {hostname}: {t}");
        self.wait(&sid, 6).await;
        sid
    }
}

// ---------------------------------------------------------------------------------
// A small Proxmox VE client: the configured token, or a root@pam ticket.

struct Pve {
    http: reqwest::Client,
    base: String,
    token: String,
    ticket: Option<(String, String)>,
}

struct PveResp {
    status: StatusCode,
    reason: String,
    body: Value,
}

impl PveResp {
    fn data(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{} {}", self.reason, self.body);
        self.body["data"].clone()
    }
    fn fails(&self, status: u16, reason: &str) {
        assert_eq!(
            (self.status.as_u16(), self.reason.as_str()),
            (status, reason),
            "{}",
            self.body
        );
    }
}

impl Pve {
    async fn new(twin: &RunningTwin) -> Pve {
        let doc = twin.endpoints();
        let p = &doc["dcs"][0]["proxmox"];
        let ca = reqwest::Certificate::from_pem(twin.state.ca_pem.as_bytes()).unwrap();
        Pve {
            http: reqwest::Client::builder()
                .tls_certs_only([ca])
                .build()
                .unwrap(),
            base: format!("{}/api2/json", p["url"].as_str().unwrap()),
            token: format!(
                "PVEAPIToken={}={}",
                p["token_id"].as_str().unwrap(),
                p["token_secret"].as_str().unwrap()
            ),
            ticket: None,
        }
    }

    /// The same cluster as root@pam with a ticket (what `pvecm delnode` needs).
    async fn as_root(twin: &RunningTwin) -> Pve {
        let mut pve = Pve::new(twin).await;
        let doc = twin.endpoints();
        let p = &doc["dcs"][0]["proxmox"];
        let r = pve
            .send(
                reqwest::Method::POST,
                "/access/ticket",
                &[
                    ("username", p["user"].as_str().unwrap()),
                    ("password", p["password"].as_str().unwrap()),
                ],
            )
            .await
            .data();
        pve.ticket = Some((
            r["ticket"].as_str().unwrap().to_string(),
            r["CSRFPreventionToken"].as_str().unwrap().to_string(),
        ));
        pve
    }

    async fn send(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> PveResp {
        let mut rb = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        rb = match &self.ticket {
            Some((t, csrf)) => rb
                .header("Cookie", format!("PVEAuthCookie={t}"))
                .header("CSRFPreventionToken", csrf),
            None => rb.header("Authorization", &self.token),
        };
        rb = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            rb.query(form)
        } else {
            rb.form(form)
        };
        let r = rb.send().await.unwrap();
        let status = r.status();
        let reason = r
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
        let body = serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null);
        PveResp {
            status,
            reason,
            body,
        }
    }

    async fn get(&self, path: &str) -> PveResp {
        self.send(reqwest::Method::GET, path, &[]).await
    }

    async fn delete(&self, path: &str) -> PveResp {
        self.send(reqwest::Method::DELETE, path, &[]).await
    }

    /// A node's `/nodes` entry.
    async fn node(&self, name: &str) -> Option<Value> {
        self.get("/nodes")
            .await
            .data()
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == name)
            .cloned()
    }

    async fn config_nodes(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .get("/cluster/config/nodes")
            .await
            .data()
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["node"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

// ---------------------------------------------------------------------------------
// Helpers on the region and the event log.

async fn admin(twin: &RunningTwin, method: &str, path: &str, body: Value) -> Value {
    let url = format!("http://{}/_twin{path}", twin.addr);
    let http = reqwest::Client::new();
    let rb = match method {
        "GET" => http.get(url),
        _ => http.post(url).json(&body),
    };
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status < 300, "{method} {path}: {status} {v}");
    v
}

/// The event log entries of `source` about `host`, as `event` names.
async fn events(twin: &RunningTwin, source: &str, host: &str) -> Vec<String> {
    let v = admin(twin, "GET", "/dcs/fra1/events", Value::Null).await;
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == source && e["hostname"] == host)
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

async fn compute_service(c: &Cloud, host: &str) -> Option<Value> {
    let r = c
        .nova(
            "GET",
            &format!("/os-services?binary=nova-compute&host={host}"),
            "2.53",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["services"].as_array().unwrap().first().cloned()
}

async fn hypervisor(c: &Cloud, name: &str) -> Option<Value> {
    let r = c.nova("GET", "/os-hypervisors/detail", "2.53", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["hypervisors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hypervisor_hostname"] == name)
        .cloned()
}

/// The provider named `name` and its inventories (class → total).
async fn provider(c: &Cloud, name: &str) -> Option<(String, BTreeMap<String, i64>)> {
    let r = c
        .placement(
            "GET",
            &format!("/resource_providers?name={name}"),
            "1.14",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rp = r.body["resource_providers"]
        .as_array()
        .unwrap()
        .first()?
        .clone();
    let uuid = rp["uuid"].as_str().unwrap().to_string();
    let inv = c
        .placement(
            "GET",
            &format!("/resource_providers/{uuid}/inventories"),
            "1.14",
            None,
        )
        .await;
    assert_eq!(inv.status, 200, "{}", inv.body);
    let totals = inv.body["inventories"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["total"].as_i64().unwrap()))
        .collect();
    Some((uuid, totals))
}

fn nova_message(body: &Value) -> String {
    body.as_object()
        .and_then(|m| m.values().next())
        .and_then(|v| v["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn boot_on(c: &Cloud, name: &str, flavor: &str, host: &str) -> String {
    let image = c.glance("GET", "/images?name=cirros", None).await.body["images"][0]["id"].clone();
    let r = c
        .nova(
            "POST",
            "/servers",
            "2.37",
            Some(
                json!({"server": {"name": name, "flavorRef": flavor, "imageRef": image,
                "networks": "none", "availability_zone": format!("nova:{host}")}}),
            ),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    let s = c.wait_server(&id, &["ACTIVE"]).await;
    assert_eq!(s["OS-EXT-SRV-ATTR:host"], host);
    id
}

async fn flavor_id(c: &Cloud, name: &str) -> String {
    let r = c.nova("GET", "/flavors", "2.1", None).await;
    r.body["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .and_then(|f| f["id"].as_str())
        .unwrap_or_else(|| panic!("no flavor {name}"))
        .to_string()
}

// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_machine_deployed_as_a_proxmox_node_joins_the_cluster() {
    let twin = start().await;
    let maas = Maas::new(&twin);
    let pve = Pve::new(&twin).await;
    assert!(pve.node("pve4").await.is_none());
    let cluster_version = pve.get("/nodes/pve1/version").await.data()["version"].clone();

    // strata sends a Proxmox node no user-data: the PVE image says what it is.
    maas.deploy(PVE, "pve4", "custom/debian-13-pve", None).await;

    let n = pve.node("pve4").await.expect("pve4 in /nodes");
    assert_eq!(n["status"], "online", "{n}");
    assert_eq!(n["maxcpu"], 32);
    assert_eq!(n["maxmem"], 262_144u64 << 20);
    let status = pve.get("/cluster/status").await.data();
    let entry = status
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "pve4")
        .cloned()
        .expect("pve4 in /cluster/status");
    assert_eq!(
        (entry["online"].clone(), entry["nodeid"].clone()),
        (json!(1), json!(4))
    );
    assert_eq!(status[0]["nodes"], 4);
    assert_eq!(pve.config_nodes().await, ["pve1", "pve2", "pve3", "pve4"]);
    assert_eq!(
        pve.get("/nodes/pve4/version").await.data()["version"],
        cluster_version
    );
    // Shared storages are the new node's too.
    let storages = pve.get("/nodes/pve4/storage").await.data();
    assert!(
        storages
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["storage"] == "ceph-vm"),
        "{storages}"
    );
    assert_eq!(events(&twin, "maas", "pve4").await, ["deployed"]);
    assert_eq!(events(&twin, "proxmox", "pve4").await, ["joined"]);
    twin.shutdown().await.unwrap();
}

#[tokio::test]
async fn compute_machines_join_nova_and_placement_and_others_join_nothing() {
    let twin = start().await;
    let maas = Maas::new(&twin);
    let c = Cloud::login(&twin, "fra1").await;
    let before = c
        .nova("GET", "/os-services?binary=nova-compute", "2.53", None)
        .await
        .body["services"]
        .as_array()
        .unwrap()
        .len();
    let compute = user_data("openstack-compute");

    // A plain compute host.
    maas.deploy(CMP, "fra1-cmp-09", "noble", Some(&compute))
        .await;
    let svc = compute_service(&c, "fra1-cmp-09").await.expect("service");
    assert_eq!(
        (
            svc["status"].clone(),
            svc["state"].clone(),
            svc["zone"].clone()
        ),
        (json!("enabled"), json!("up"), json!("nova"))
    );
    let hyp = hypervisor(&c, "fra1-cmp-09.maas")
        .await
        .expect("hypervisor");
    assert_eq!(hyp["vcpus"], 64, "{hyp}");
    assert_eq!(hyp["memory_mb"], 262_144);
    assert_eq!(hyp["state"], "up");
    assert_eq!(hyp["service"]["host"], "fra1-cmp-09");
    let (uuid, inv) = provider(&c, "fra1-cmp-09.maas").await.expect("provider");
    assert_eq!(hyp["id"], uuid.as_str(), "the hypervisor is its provider");
    assert_eq!(inv.get("VCPU"), Some(&64));
    assert_eq!(inv.get("MEMORY_MB"), Some(&262_144));
    assert!(inv.get("DISK_GB").is_some_and(|d| *d > 0), "{inv:?}");
    assert!(!inv.contains_key("CUSTOM_GPU_H100"), "{inv:?}");

    // A GPU host: its four H100s are the alias's class, as the device spec allows.
    maas.deploy(GPU, "fra1-gpu-09", "noble", Some(&compute))
        .await;
    let (_, inv) = provider(&c, "fra1-gpu-09.maas")
        .await
        .expect("gpu provider");
    assert_eq!(inv.get("CUSTOM_GPU_H100"), Some(&4), "{inv:?}");
    assert_eq!(inv.get("VCPU"), Some(&96));
    let traits = c
        .placement(
            "GET",
            &format!(
                "/resource_providers/{}/traits",
                provider(&c, "fra1-gpu-09.maas").await.unwrap().0
            ),
            "1.14",
            None,
        )
        .await;
    assert!(
        traits.body["traits"]
            .as_array()
            .unwrap()
            .contains(&json!("COMPUTE_ACCELERATORS")),
        "{}",
        traits.body
    );
    // The scheduler uses it: a GPU flavor lands there.
    let g1 = flavor_id(&c, "g1.h100.1").await;
    boot_on(&c, "gpu-vm", &g1, "fra1-gpu-09").await;
    let (_, usage) = {
        let uuid = provider(&c, "fra1-gpu-09.maas").await.unwrap().0;
        let u = c
            .placement(
                "GET",
                &format!("/resource_providers/{uuid}/usages"),
                "1.14",
                None,
            )
            .await;
        (uuid, u.body)
    };
    assert_eq!(usage["usages"]["CUSTOM_GPU_H100"], 1, "{usage}");

    // A storage node's cloud-init: it joins nothing.
    maas.deploy(
        OSD,
        "fra1-osd-09",
        "noble",
        Some(&user_data("openstack-storage")),
    )
    .await;
    let after = c
        .nova("GET", "/os-services?binary=nova-compute", "2.53", None)
        .await
        .body["services"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before + 2);
    assert!(compute_service(&c, "fra1-osd-09").await.is_none());
    assert_eq!(events(&twin, "maas", "fra1-osd-09").await, ["deployed"]);
    assert!(events(&twin, "openstack", "fra1-osd-09").await.is_empty());
    assert!(events(&twin, "proxmox", "fra1-osd-09").await.is_empty());
    assert_eq!(events(&twin, "openstack", "fra1-cmp-09").await, ["joined"]);
    assert_eq!(events(&twin, "openstack", "fra1-gpu-09").await, ["joined"]);
    twin.shutdown().await.unwrap();
}

#[tokio::test]
async fn proxmox_delnode_refusals_and_what_it_leaves_behind() {
    let twin = start().await;
    let maas = Maas::new(&twin);
    maas.deploy(PVE, "pve4", "custom/debian-13-pve", None).await;
    let token = Pve::new(&twin).await;
    let root = Pve::as_root(&twin).await;
    assert!(token.node("pve4").await.is_some());

    // No `permissions`: root@pam only, a token (even an Administrator's) is refused.
    token
        .delete("/cluster/config/nodes/pve4")
        .await
        .fails(403, "Permission check failed (user != root@pam)");
    // The node answering the API cannot remove itself.
    root.delete("/cluster/config/nodes/pve1")
        .await
        .fails(500, "Cannot delete myself from cluster!");
    root.delete("/cluster/config/nodes/pve9")
        .await
        .fails(500, "Node/IP: pve9 is not a known host of the cluster.");
    // Without quorum (two of four nodes down) the configuration cannot change.
    for n in ["pve2", "pve3"] {
        admin(
            &twin,
            "POST",
            "/dcs/fra1/proxmox/mutate",
            json!({"kind": "node", "id": n, "set": {"health": "offline"}}),
        )
        .await;
    }
    root.delete("/cluster/config/nodes/pve4")
        .await
        .fails(500, "cluster not ready - no quorum?");
    for n in ["pve2", "pve3"] {
        admin(
            &twin,
            "POST",
            "/dcs/fra1/proxmox/mutate",
            json!({"kind": "node", "id": n, "set": {"health": "online"}}),
        )
        .await;
    }

    // A guest still on the node: PVE does not look, the node goes and the guest's
    // configuration stays behind, on a node the cluster no longer has.
    let resources = token.get("/cluster/resources?type=vm").await.data();
    let vmid = resources
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["template"] == 0)
        .and_then(|r| r["vmid"].as_u64())
        .expect("a guest");
    admin(
        &twin,
        "POST",
        "/dcs/fra1/proxmox/mutate",
        json!({"kind": "qemu", "id": vmid.to_string(), "set": {"node": "pve4", "status": "running"}}),
    )
    .await;
    assert_eq!(
        root.delete("/cluster/config/nodes/pve4").await.data(),
        Value::Null
    );
    assert_eq!(root.config_nodes().await, ["pve1", "pve2", "pve3"]);
    assert!(root.node("pve4").await.is_none());
    let orphan = root
        .get("/cluster/resources?type=vm")
        .await
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vmid"] == vmid)
        .cloned()
        .expect("the guest is still listed");
    assert_eq!(
        (orphan["node"].clone(), orphan["status"].clone()),
        (json!("pve4"), json!("unknown"))
    );
    root.get("/nodes/pve4/qemu").await.fails(
        500,
        "hostname lookup 'pve4' failed - failed to get address info for: pve4: Name or service not known",
    );
    assert_eq!(root.get("/cluster/status").await.data()[0]["nodes"], 3);
    assert_eq!(
        events(&twin, "proxmox", "pve4").await,
        ["joined", "removed"]
    );
    twin.shutdown().await.unwrap();
}

#[tokio::test]
async fn nova_service_delete_refusals_and_placement_cleanup() {
    let twin = start().await;
    let maas = Maas::new(&twin);
    let c = Cloud::login(&twin, "fra1").await;
    maas.deploy(
        CMP,
        "fra1-cmp-09",
        "noble",
        Some(&user_data("openstack-compute")),
    )
    .await;
    let svc = compute_service(&c, "fra1-cmp-09").await.unwrap();
    let id = svc["id"].as_str().unwrap().to_string();
    let (rp, _) = provider(&c, "fra1-cmp-09.maas").await.unwrap();

    // A server on the host: found by host (admin), refusing the service's deletion.
    let small = flavor_id(&c, "m1.small").await;
    let server = boot_on(&c, "on-cmp-09", &small, "fra1-cmp-09").await;
    let listed = c
        .nova(
            "GET",
            "/servers/detail?host=fra1-cmp-09&all_tenants=1",
            "2.53",
            None,
        )
        .await;
    let ids: Vec<&Value> = listed.body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&json!(server)], "{}", listed.body);
    assert_eq!(
        listed.body["servers"][0]["OS-EXT-SRV-ATTR:host"],
        "fra1-cmp-09"
    );
    let other = c
        .nova(
            "GET",
            "/servers/detail?host=fra1-cmp-01&all_tenants=1",
            "2.53",
            None,
        )
        .await;
    assert!(
        !other.body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == server.as_str()),
        "{}",
        other.body
    );
    let r = c
        .nova("DELETE", &format!("/os-services/{id}"), "2.53", None)
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        nova_message(&r.body),
        "Unable to delete compute service that is hosting instances. Migrate or delete the instances first."
    );
    // Placement refuses to drop a provider with allocations.
    let r = c
        .placement("DELETE", &format!("/resource_providers/{rp}"), "1.14", None)
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["errors"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Resource provider has allocations")),
        "{}",
        r.body
    );
    // The id's form per microversion, and an unknown service.
    let r = c
        .nova("DELETE", "/os-services/not-a-uuid", "2.53", None)
        .await;
    assert_eq!(
        (r.status, nova_message(&r.body)),
        (400, "Invalid uuid not-a-uuid".into())
    );
    let r = c.nova("DELETE", "/os-services/abc", "2.1", None).await;
    assert_eq!(
        (r.status, nova_message(&r.body)),
        (400, "Invalid input received: id must be an integer".into())
    );
    let missing = "0b0e6a64-9a4f-4c43-9f1f-4a1f1a2e7d55";
    let r = c
        .nova("DELETE", &format!("/os-services/{missing}"), "2.53", None)
        .await;
    assert_eq!(
        (r.status, nova_message(&r.body)),
        (404, format!("Service {missing} not found."))
    );

    // Drained: the service, the hypervisor and the provider go.
    let r = c
        .nova("DELETE", &format!("/servers/{server}"), "2.1", None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    for _ in 0..100 {
        if c.nova("GET", &format!("/servers/{server}"), "2.1", None)
            .await
            .status
            == 404
        {
            break;
        }
        c.clock.advance(Duration::from_millis(100));
    }
    let r = c
        .nova("DELETE", &format!("/os-services/{id}"), "2.53", None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(compute_service(&c, "fra1-cmp-09").await.is_none());
    assert!(hypervisor(&c, "fra1-cmp-09.maas").await.is_none());
    assert!(provider(&c, "fra1-cmp-09.maas").await.is_none());
    let r = c
        .placement("GET", &format!("/resource_providers/{rp}"), "1.14", None)
        .await;
    assert_eq!(r.status, 404);
    // Placement deletes an idle provider itself.
    let (gpu_rp, _) = provider(&c, "fra1-gpu-01.fra1.twin")
        .await
        .expect("seeded gpu host");
    let r = c
        .placement(
            "DELETE",
            &format!("/resource_providers/{gpu_rp}"),
            "1.14",
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        events(&twin, "openstack", "fra1-cmp-09").await,
        ["joined", "service-deleted"]
    );
    twin.shutdown().await.unwrap();
}

#[tokio::test]
async fn releasing_without_removing_leaves_a_dead_node_and_a_down_service() {
    let twin = start().await;
    let maas = Maas::new(&twin);
    let c = Cloud::login(&twin, "fra1").await;
    let root = Pve::as_root(&twin).await;
    let pve_sid = maas.deploy(PVE, "pve4", "custom/debian-13-pve", None).await;
    let cmp_sid = maas
        .deploy(
            CMP,
            "fra1-cmp-09",
            "noble",
            Some(&user_data("openstack-compute")),
        )
        .await;

    // `secure_erase` alone does not erase (MAAS's `release_or_erase`): a plain release.
    let (s, v, t) = maas
        .post(
            &format!("machines/{pve_sid}/"),
            Some("release"),
            &[("secure_erase", "true")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["status"], 12, "Releasing");
    assert_eq!(maas.wait(&pve_sid, 4).await.last(), Some(&4));
    // The node is dead, not gone.
    let n = root.node("pve4").await.expect("still listed");
    assert_eq!(n["status"], "offline");
    assert!(root.config_nodes().await.contains(&"pve4".to_string()));
    let status = root.get("/cluster/status").await.data();
    assert_eq!(
        status
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "pve4")
            .map(|e| e["online"].clone()),
        Some(json!(0))
    );
    let (code, reason) = {
        let r = root.get("/nodes/pve4/status").await;
        (r.status.as_u16(), r.reason)
    };
    assert_eq!((code, reason.as_str()), (595, "No route to host"));

    // A compute host released with a quick erase: Disk erasing, then Ready.
    let (s, v, t) = maas
        .post(
            &format!("machines/{cmp_sid}/"),
            Some("release"),
            &[("erase", "true"), ("quick_erase", "true")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["status"], 14, "Disk erasing");
    assert_eq!(maas.wait(&cmp_sid, 4).await.last(), Some(&4));
    let summary = admin(&twin, "GET", "/dcs/fra1/maas/summary", Value::Null).await;
    assert_eq!(summary["disk_erasures"][CMP], json!(["quick"]), "{summary}");
    // Its service is down but registered; forcing it up does not revive a dead host.
    let svc = compute_service(&c, "fra1-cmp-09")
        .await
        .expect("still registered");
    assert_eq!(
        (svc["state"].clone(), svc["status"].clone()),
        (json!("down"), json!("enabled"))
    );
    let hyp = hypervisor(&c, "fra1-cmp-09.maas")
        .await
        .expect("still listed");
    assert_eq!(hyp["state"], "down");
    let id = svc["id"].as_str().unwrap();
    for forced in [true, false] {
        let r = c
            .nova(
                "PUT",
                &format!("/os-services/{id}"),
                "2.53",
                Some(json!({"forced_down": forced})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["service"]["state"], "down");
    }
    assert!(provider(&c, "fra1-cmp-09.maas").await.is_some());

    // Reinstalling the node without `pvecm delnode` first: the join is refused.
    maas.deploy(PVE, "pve4", "custom/debian-13-pve", None).await;
    assert_eq!(root.node("pve4").await.unwrap()["status"], "offline");
    let ev = admin(&twin, "GET", "/dcs/fra1/events", Value::Null).await;
    let failed = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["source"] == "proxmox" && e["hostname"] == "pve4")
        .cloned()
        .unwrap();
    assert_eq!(failed["event"], "join-failed");
    assert_eq!(failed["detail"], "can't add existing node 'pve4'");
    // Removed first, the next deployment joins.
    let (s, _, t) = maas
        .post(&format!("machines/{pve_sid}/"), Some("release"), &[])
        .await;
    assert_eq!(s, 200, "{t}");
    maas.wait(&pve_sid, 4).await;
    assert_eq!(
        root.delete("/cluster/config/nodes/pve4").await.data(),
        Value::Null
    );
    maas.deploy(PVE, "pve4", "custom/debian-13-pve", None).await;
    assert_eq!(root.node("pve4").await.unwrap()["status"], "online");
    assert_eq!(
        events(&twin, "proxmox", "pve4").await,
        [
            "joined",
            "offline",
            "join-failed",
            "ignored",
            "removed",
            "joined"
        ]
    );
    // The compute host powered on again after a power-off: its service is back up.
    let cmp2 = maas
        .deploy(
            CMP,
            "fra1-cmp-09",
            "noble",
            Some(&user_data("openstack-compute")),
        )
        .await;
    assert_eq!(
        compute_service(&c, "fra1-cmp-09").await.unwrap()["state"],
        "up"
    );
    let (s, _, t) = maas
        .post(&format!("machines/{cmp2}/"), Some("power_off"), &[])
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        compute_service(&c, "fra1-cmp-09").await.unwrap()["state"],
        "down"
    );
    let (s, _, t) = maas
        .post(&format!("machines/{cmp2}/"), Some("power_on"), &[])
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        compute_service(&c, "fra1-cmp-09").await.unwrap()["state"],
        "up"
    );
    assert_eq!(
        events(&twin, "openstack", "fra1-cmp-09").await,
        ["joined", "down", "rejoined", "down", "up"]
    );
    twin.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_released_machine_is_marked_for_rma_with_a_tag_and_a_description() {
    let twin = start().await;
    let maas = Maas::new(&twin);
    let sid = maas
        .deploy(
            CMP,
            "fra1-cmp-09",
            "noble",
            Some(&user_data("openstack-compute")),
        )
        .await;
    // MAAS configured to erase on every release: a plain release erases (full).
    let (s, _, t) = maas
        .post(
            "maas/",
            Some("set_config"),
            &[
                ("name", "enable_disk_erasing_on_release"),
                ("value", "true"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let (s, v, t) = maas
        .post(&format!("machines/{sid}/"), Some("release"), &[])
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["status"], 14);
    let seen = maas.wait(&sid, 4).await;
    assert_eq!(seen.last(), Some(&4));
    let summary = admin(&twin, "GET", "/dcs/fra1/maas/summary", Value::Null).await;
    assert_eq!(summary["disk_erasures"][CMP], json!(["full"]));

    let (s, _, t) = maas.post("tags/", None, &[("name", "strata-rma")]).await;
    assert_eq!(s, 200, "{t}");
    let (s, v, t) = maas
        .post("tags/strata-rma/", Some("update_nodes"), &[("add", &sid)])
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["added"], 1, "{v}");
    let (s, v, t) = maas
        .put(
            &format!("machines/{sid}/"),
            &[("description", "sent for RMA: bad DIMM")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["description"], "sent for RMA: bad DIMM");
    let m = maas.get(&format!("machines/{sid}/")).await;
    assert!(
        m["tag_names"]
            .as_array()
            .unwrap()
            .contains(&json!("strata-rma")),
        "{m}"
    );
    let tagged = maas.get("tags/strata-rma/?op=machines").await;
    assert_eq!(tagged[0]["system_id"], sid.as_str());
    // MAAS lets only the owner mark a machine broken: a released one has none.
    let (s, _, _) = maas
        .post(&format!("machines/{sid}/"), Some("mark_broken"), &[])
        .await;
    assert_eq!(s, 403);
    twin.shutdown().await.unwrap();
}
