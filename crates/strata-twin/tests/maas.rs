//! The MAAS region API of the twin, over HTTP as clients see it: OAuth quirks,
//! anonymous describe/version, form and multipart bodies, the machine lifecycle with
//! its asynchronous transitions, per-object faults, VLAN DHCP rules, admin mutation,
//! save/restore and listing at scale.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use strata_twin::{Clock, DcSeed, FaultSpec, RunningTwin, SeedGpu, SeedMachine, TwinOptions};

fn seed_machine(i: usize, gpus: usize) -> SeedMachine {
    SeedMachine {
        serial: format!("SN{i:05}"),
        pxe_mac: format!(
            "52:54:00:{:02x}:{:02x}:{:02x}",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        ),
        cpu_count: 16 + 16 * gpus as u32,
        memory_mib: 65536 * (1 + gpus as u64),
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
        zone: None,
        ..SeedMachine::default()
    }
}

fn opts(machines: Vec<SeedMachine>, state_file: Option<std::path::PathBuf>) -> TwinOptions {
    TwinOptions {
        dcs: vec![DcSeed {
            name: "fra1".into(),
            machines,
            proxmox_nodes: vec!["pve1".into()],
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file,
        seed: 42,
        timing: Default::default(),
    }
}

/// A twin on a virtual clock: the machines' asynchronous phases move only when a test
/// advances it.
async fn start(o: TwinOptions) -> anyhow::Result<RunningTwin> {
    strata_twin::start_with_clock(o, Clock::virtual_now()).await
}

/// A small MAAS client: OAuth PLAINTEXT header built here, as a client would.
struct Maas {
    http: reqwest::Client,
    root: String,
    api: String,
    admin: String,
    key: (String, String, String),
    clock: Clock,
}

impl Maas {
    fn new(twin: &RunningTwin) -> Self {
        let doc = twin.endpoints();
        let url = doc["dcs"][0]["maas"]["url"]
            .as_str()
            .expect("url")
            .to_string();
        let key = doc["dcs"][0]["maas"]["api_key"].as_str().expect("key");
        let mut parts = key.splitn(3, ':');
        let key = (
            parts.next().expect("ck").to_string(),
            parts.next().expect("tk").to_string(),
            parts.next().expect("secret").to_string(),
        );
        Maas {
            http: reqwest::Client::new(),
            api: format!("{url}api/2.0/"),
            root: url,
            admin: format!("http://{}/_twin", twin.addr),
            key,
            clock: twin.clock().clone(),
        }
    }

    fn auth(&self) -> String {
        let (ck, tk, secret) = &self.key;
        format!(
            "OAuth oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", oauth_consumer_key=\"{ck}\", oauth_token=\"{tk}\", oauth_signature=\"&{secret}\", oauth_nonce=\"{}\", oauth_timestamp=\"{}\"",
            uuid::Uuid::new_v4().simple(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("time")
                .as_secs()
        )
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value, String) {
        let r = rb
            .header("Authorization", self.auth())
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = r.text().await.expect("body");
        let v = if ctype.starts_with("application/json") {
            serde_json::from_str(&text).expect("json")
        } else {
            Value::Null
        };
        (status, v, text)
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value, String) {
        self.send(self.http.get(format!("{}{path}", self.api)).query(query))
            .await
    }

    /// POST with a urlencoded body (as Go clients send), `op` in the query string.
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

    /// POST with a multipart body (as python-libmaas sends).
    async fn post_multipart(
        &self,
        path: &str,
        op: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, Value, String) {
        let mut rb = self.http.post(format!("{}{path}", self.api));
        if let Some(op) = op {
            rb = rb.query(&[("op", op)]);
        }
        let mut mp = reqwest::multipart::Form::new();
        for (k, v) in form {
            mp = mp.text(k.to_string(), v.to_string());
        }
        self.send(rb.multipart(mp)).await
    }

    async fn put(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value, String) {
        self.send(self.http.put(format!("{}{path}", self.api)).form(form))
            .await
    }

    async fn delete(&self, path: &str) -> (u16, Value, String) {
        self.send(self.http.delete(format!("{}{path}", self.api)))
            .await
    }

    async fn machine(&self, sid: &str) -> Value {
        let (s, v, t) = self.get(&format!("machines/{sid}/"), &[]).await;
        assert_eq!(s, 200, "{t}");
        v
    }

    /// Poll a machine until it reaches `want`, moving the twin's clock 50 ms between
    /// polls (for at most 20 s of twin time).
    async fn wait_status(&self, sid: &str, want: u64) -> Value {
        for _ in 0..400 {
            let m = self.machine(sid).await;
            if m["status"] == want {
                return m;
            }
            self.clock.advance(Duration::from_millis(50));
        }
        let m = self.machine(sid).await;
        panic!("{sid} stuck in {} waiting for {want}", m["status_name"]);
    }

    async fn fault(&self, id: &str, fault: &str) {
        self.fault_times(id, fault, None).await
    }

    async fn fault_times(&self, id: &str, fault: &str, times: Option<u32>) {
        let r = self
            .http
            .post(format!("{}/faults/object", self.admin))
            .json(
                &json!({"dc": "fra1", "service": "maas", "id": id, "fault": fault, "times": times}),
            )
            .send()
            .await
            .expect("fault");
        assert_eq!(r.status().as_u16(), 204);
    }

    async fn machines(&self) -> Vec<Value> {
        let (s, v, t) = self.get("machines/", &[]).await;
        assert_eq!(s, 200, "{t}");
        v.as_array().expect("array").clone()
    }
}

fn sid(v: &Value) -> String {
    v["system_id"].as_str().expect("system_id").to_string()
}

#[tokio::test]
async fn auth_quirks_and_anonymous_endpoints() {
    let twin = start(opts(vec![seed_machine(1, 0)], None))
        .await
        .expect("start");
    let c = Maas::new(&twin);
    let (ck, tk, secret) = c.key.clone();
    let url = format!("{}machines/", c.api);
    let try_auth = |h: Option<String>| {
        let mut rb = c.http.get(&url);
        if let Some(h) = h {
            rb = rb.header("Authorization", h);
        }
        async move { rb.send().await.expect("send").status().as_u16() }
    };
    // Accepted: reordered, realm, %26, unquoted.
    for h in [
        format!(
            r#"OAuth realm="", oauth_nonce="n", oauth_timestamp="1", oauth_token="{tk}", oauth_signature_method="PLAINTEXT", oauth_consumer_key="{ck}", oauth_signature="%26{secret}", oauth_version="1.0""#
        ),
        format!(
            r#"OAuth oauth_signature="&{secret}", oauth_consumer_key="{ck}", oauth_token="{tk}", oauth_signature_method="PLAINTEXT", oauth_nonce="n", oauth_timestamp="1""#
        ),
        format!(
            "OAuth oauth_consumer_key={ck},oauth_token={tk},oauth_signature=%26{secret},oauth_signature_method=PLAINTEXT,oauth_nonce=n,oauth_timestamp=1"
        ),
    ] {
        assert_eq!(try_auth(Some(h.clone())).await, 200, "{h}");
    }
    // Rejected: wrong secret, wrong token, wrong consumer, missing signature, no header.
    for h in [
        format!(r#"OAuth oauth_consumer_key="{ck}", oauth_token="{tk}", oauth_signature="&nope""#),
        format!(
            r#"OAuth oauth_consumer_key="{ck}", oauth_token="bad", oauth_signature="&{secret}""#
        ),
        format!(
            r#"OAuth oauth_consumer_key="bad", oauth_token="{tk}", oauth_signature="&{secret}""#
        ),
        format!(r#"OAuth oauth_consumer_key="{ck}", oauth_token="{tk}""#),
    ] {
        assert_eq!(try_auth(Some(h.clone())).await, 401, "{h}");
    }
    let r = c.http.get(&url).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 401);
    assert!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    assert!(r.headers().contains_key("www-authenticate"));

    // Anonymous: describe, version (text and JSON).
    let d: Value = c
        .http
        .get(format!("{}describe/", c.api))
        .send()
        .await
        .expect("describe")
        .json()
        .await
        .expect("json");
    let res = d["resources"].as_array().expect("resources");
    let machine = res
        .iter()
        .find(|r| r["name"] == "MachineHandler")
        .expect("MachineHandler");
    assert_eq!(machine["auth"]["params"], json!(["system_id"]));
    assert!(
        machine["auth"]["uri"]
            .as_str()
            .expect("uri")
            .ends_with("/fra1/MAAS/api/2.0/machines/{system_id}/")
    );
    assert!(
        machine["auth"]["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .any(|a| a["name"] == "deploy"
                && a["op"] == "deploy"
                && a["method"] == "POST"
                && a["restful"] == false)
    );
    let vlan = res
        .iter()
        .find(|r| r["name"] == "VlanHandler")
        .expect("VlanHandler");
    assert_eq!(vlan["auth"]["params"], json!(["fabric_id", "vid"]));
    assert!(
        d["handlers"]
            .as_array()
            .is_some_and(|h| h.len() == res.len())
    );
    let v = c
        .http
        .get(format!("{}api/version/", c.root))
        .send()
        .await
        .expect("version");
    assert_eq!(v.text().await.expect("text"), "2.0");
    let v: Value = c
        .http
        .get(format!("{}version/", c.api))
        .send()
        .await
        .expect("v2")
        .json()
        .await
        .expect("json");
    assert!(
        v["capabilities"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "authenticate-api"))
    );
    // Unknown ops and methods.
    let (s, _, t) = c.post("machines/", Some("frobnicate"), &[]).await;
    assert_eq!(s, 400);
    assert_eq!(t, "Unrecognised signature: method=POST op=frobnicate");
    let (s, _, _) = c.send(c.http.patch(format!("{}machines/", c.api))).await;
    assert_eq!(s, 405);
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn bodies_form_multipart_and_repeated_keys() {
    let twin = start(opts((1..=3).map(|i| seed_machine(i, 0)).collect(), None))
        .await
        .expect("start");
    let c = Maas::new(&twin);
    // urlencoded (Go) and multipart (python-libmaas).
    let (s, v, t) = c
        .post(
            "tags/",
            None,
            &[("name", "gpu"), ("comment", "from a form")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["comment"], "from a form");
    let (s, v, t) = c
        .post_multipart(
            "zones/",
            None,
            &[("name", "rack-a"), ("description", "multipart")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["description"], "multipart");
    // python-libmaas's exact encoding: every part base64 with Content-Transfer-Encoding.
    let b64 = |x: &str| base64::engine::general_purpose::STANDARD.encode(x);
    let boundary = "===============1234567890==";
    let body = format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{}\r\n--{boundary}--\r\n",
        b64("pool-b64"),
        b64("encoded by libmaas")
    );
    let (s, v, t) = c
        .send(
            c.http
                .post(format!("{}resourcepools/", c.api))
                .header(
                    "Content-Type",
                    format!("multipart/form-data; boundary=\"{boundary}\""),
                )
                .body(body),
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (v["name"].as_str(), v["description"].as_str()),
        (Some("pool-b64"), Some("encoded by libmaas"))
    );
    // Repeated keys: add two machines to a tag at once; filter with repeated hostnames.
    let ms = c.machines().await;
    let (a, b) = (sid(&ms[0]), sid(&ms[1]));
    let (s, v, t) = c
        .post_multipart(
            "tags/gpu/",
            Some("update_nodes"),
            &[("add", &a), ("add", &b)],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["added"], 2);
    let h0 = ms[0]["hostname"].as_str().expect("h");
    let h2 = ms[2]["hostname"].as_str().expect("h");
    let (_, v, _) = c
        .get("machines/", &[("hostname", h0), ("hostname", h2)])
        .await;
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    let (_, v, _) = c.get("tags/gpu/", &[("op", "machines")]).await;
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    // Validation errors are JSON field → messages.
    let (s, v, _) = c.post("zones/", None, &[("name", "rack-a")]).await;
    assert_eq!(s, 400);
    assert!(
        v["name"][0]
            .as_str()
            .is_some_and(|m| m.contains("already exists"))
    );
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn machine_lifecycle() {
    let seeds = vec![seed_machine(1, 0), seed_machine(2, 4), seed_machine(3, 0)];
    let twin = start(opts(seeds.clone(), None)).await.expect("start");
    let c = Maas::new(&twin);
    let ms = c.machines().await;
    assert_eq!(ms.len(), 3);
    for (m, s) in ms.iter().zip(&seeds) {
        assert_eq!(m["status"], 0);
        assert_eq!(m["status_name"], "New");
        assert_eq!(m["power_type"], "manual");
        assert_eq!(m["hardware_info"]["system_serial"], s.serial.as_str());
        assert_eq!(m["boot_interface"]["mac_address"], s.pxe_mac.as_str());
        assert_eq!(m["interface_set"].as_array().map(Vec::len), Some(2));
        let sid = m["system_id"].as_str().expect("sid");
        assert!(
            sid.len() == 6
                && sid
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{sid}"
        );
        assert!(m["hostname"].as_str().is_some_and(|h| h.contains('-')));
        assert_eq!(
            m["fqdn"],
            format!("{}.maas", m["hostname"].as_str().expect("h"))
        );
        assert_eq!(m["zone"]["name"], "default");
        assert_eq!(m["pool"]["name"], "default");
    }
    // Adopt by MAC: filter by the PXE MAC (any case / separator); a duplicate create fails.
    let mac = seeds[1].pxe_mac.to_uppercase().replace(':', "-");
    let (_, v, _) = c.get("machines/", &[("mac_address", &mac)]).await;
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    let gpu_sid = sid(&v[0]);
    let (s, v, _) = c
        .post(
            "machines/",
            None,
            &[
                ("architecture", "amd64"),
                ("mac_addresses", &seeds[1].pxe_mac),
            ],
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["mac_addresses"][0]
            .as_str()
            .is_some_and(|m| m.contains("already in use")),
        "{v}"
    );
    let (s, _, t) = c
        .get("machines/", &[("status", "new"), ("status", "ready")])
        .await;
    assert_eq!(s, 200, "{t}");

    // Commission all three (op in the query string, form body).
    for m in &ms {
        let (s, v, t) = c
            .post(&format!("machines/{}/", sid(m)), Some("commission"), &[])
            .await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(v["status"], 1);
        assert_eq!(v["status_name"], "Commissioning");
    }
    let mut saw_testing = false;
    for polls in 0.. {
        let m = c.machine(&gpu_sid).await;
        saw_testing |= m["status"] == 21;
        if m["status"] == 4 {
            break;
        }
        assert!(polls < 1000, "stuck in {}", m["status_name"]);
        c.clock.advance(Duration::from_millis(20));
    }
    assert!(saw_testing, "commissioning goes through Testing");
    for m in &ms {
        c.wait_status(&sid(m), 4).await;
    }
    let gpu = c.machine(&gpu_sid).await;
    assert_eq!(gpu["cpu_count"], 80);
    assert_eq!(gpu["memory"], 65536 * 5);
    assert_eq!(gpu["commissioning_status_name"], "Passed");
    assert_eq!(gpu["numanode_set"].as_array().map(Vec::len), Some(2));
    let (_, devs, _) = c
        .get(
            &format!("nodes/{gpu_sid}/devices/"),
            &[("hardware_type", "gpu")],
        )
        .await;
    let devs = devs.as_array().expect("devices").clone();
    assert_eq!(devs.len(), 4);
    assert_eq!(devs[0]["vendor_id"], "10de");
    assert_eq!(devs[0]["pci_address"], "0000:18:00.0");
    // MAAS records no PCIe link state (a commissioning script reads it from sysfs).
    assert!(devs[0].get("pcie_link").is_none(), "{}", devs[0]);
    assert_eq!(devs[1]["numa_node"], 1);
    let (_, res, _) = c
        .get(
            &format!("nodes/{gpu_sid}/results/"),
            &[("type", "commissioning"), ("include_output", "1")],
        )
        .await;
    let mr = res[0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["name"] == "20-maas-03-machine-resources")
        .expect("machine-resources")
        .clone();
    let out = base64::engine::general_purpose::STANDARD
        .decode(mr["output"].as_str().expect("output"))
        .expect("b64");
    let doc: Value = serde_json::from_slice(&out).expect("resources json");
    assert_eq!(doc["resources"]["gpu"]["total"], 4);
    // Details are BSON with lshw XML.
    let r = c
        .http
        .get(format!("{}machines/{gpu_sid}/", c.api))
        .query(&[("op", "details")])
        .header("Authorization", c.auth())
        .send()
        .await
        .expect("details");
    assert_eq!(r.headers()["content-type"], "application/bson");
    let bytes = r.bytes().await.expect("bytes");
    assert_eq!(
        i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
        bytes.len()
    );
    assert!(String::from_utf8_lossy(&bytes).contains("<businfo>pci@"));

    // Allocation: constraints, 409 when nothing matches.
    let (s, _, t) = c
        .post("machines/", Some("allocate"), &[("cpu_count", "1000")])
        .await;
    assert_eq!(s, 409);
    assert!(
        t.starts_with("No available machine matches constraints: [('cpu_count', ['1000'])]"),
        "{t}"
    );
    let (s, v, _) = c
        .post("machines/", Some("allocate"), &[("tags", "nonexistent")])
        .await;
    assert_eq!(s, 400);
    assert!(
        v["tags"][0]
            .as_str()
            .is_some_and(|m| m.contains("No such tag"))
    );
    let (s, v, t) = c
        .post(
            "machines/",
            Some("allocate"),
            &[
                ("devices", "vendor_id=10de,product_id=2330"),
                ("mem", "1024"),
                ("agent_name", "strata"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(sid(&v), gpu_sid);
    assert_eq!(v["status"], 10);
    assert_eq!(v["status_name"], "Allocated");
    assert_eq!(v["owner"], "admin");
    let (s, _, _) = c
        .post("machines/", Some("allocate"), &[("system_id", &gpu_sid)])
        .await;
    assert_eq!(s, 409, "an allocated machine is not available");
    // Power is only for allocated machines.
    let other = sid(&ms[0]);
    let (s, _, t) = c
        .post(&format!("machines/{other}/"), Some("power_on"), &[])
        .await;
    assert_eq!(
        (s, t.as_str()),
        (409, "Can't start node: it hasn't been allocated.")
    );
    // Update: power type and parameters, then query the BMC.
    let (s, v, t) = c
        .put(
            &format!("machines/{gpu_sid}/"),
            &[
                ("power_type", "ipmi"),
                ("power_parameters_power_address", "10.0.0.5"),
                ("power_parameters_power_user", "admin"),
                ("power_parameters_power_pass", "pw"),
                ("description", "gpu box"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (v["power_type"].as_str(), v["description"].as_str()),
        (Some("ipmi"), Some("gpu box"))
    );
    let (_, pp, _) = c
        .get(
            &format!("machines/{gpu_sid}/"),
            &[("op", "power_parameters")],
        )
        .await;
    assert_eq!(pp["power_address"], "10.0.0.5");
    let (_, ps, _) = c
        .get(
            &format!("machines/{gpu_sid}/"),
            &[("op", "query_power_state")],
        )
        .await;
    assert_eq!(ps, json!({"state": "off"}));

    // Deploy with base64 user-data (multipart, like python-libmaas).
    let ud = base64::engine::general_purpose::STANDARD.encode("#cloud-config\n");
    let (s, v, t) = c
        .post_multipart(
            &format!("machines/{gpu_sid}/"),
            Some("deploy"),
            &[
                ("user_data", &ud),
                ("distro_series", "ubuntu/jammy"),
                ("hwe_kernel", "hwe-22.04"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["status"], 9);
    assert_eq!(
        (v["osystem"].as_str(), v["distro_series"].as_str()),
        (Some("ubuntu"), Some("jammy"))
    );
    let v = c.wait_status(&gpu_sid, 6).await;
    assert_eq!(v["status_name"], "Deployed");
    assert_eq!(v["power_state"], "on");
    let (s, v, _) = c
        .post(
            &format!("machines/{other}/"),
            Some("deploy"),
            &[("distro_series", "warty")],
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["distro_series"][0]
            .as_str()
            .is_some_and(|m| m.contains("is not a valid distro_series"))
    );
    // Release twice: the second is a no-op on a Ready machine.
    let (s, v, _) = c
        .post(&format!("machines/{gpu_sid}/"), Some("release"), &[])
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["status"], 12);
    let v = c.wait_status(&gpu_sid, 4).await;
    assert_eq!(
        (v["owner"].clone(), v["osystem"].as_str()),
        (Value::Null, Some(""))
    );
    let (s, v, _) = c
        .post(&format!("machines/{gpu_sid}/"), Some("release"), &[])
        .await;
    assert_eq!((s, v["status"].clone()), (200, json!(4)));
    // Deploy straight from Ready allocates first; abort returns to Allocated.
    let (s, v, _) = c
        .post(&format!("machines/{other}/"), Some("deploy"), &[])
        .await;
    assert_eq!(
        (s, v["status"].clone(), v["owner"].clone()),
        (200, json!(9), json!("admin"))
    );
    let (s, v, _) = c
        .post(&format!("machines/{other}/"), Some("abort"), &[])
        .await;
    assert_eq!((s, v["status"].clone()), (200, json!(10)));
    // Broken and fixed (marking broken needs ownership).
    let (s, v, _) = c
        .post(
            &format!("machines/{other}/"),
            Some("mark_broken"),
            &[("comment", "bad dimm")],
        )
        .await;
    assert_eq!(
        (s, v["status"].clone(), v["error_description"].clone()),
        (200, json!(8), json!("bad dimm"))
    );
    let (s, v, _) = c
        .post(&format!("machines/{other}/"), Some("mark_fixed"), &[])
        .await;
    assert_eq!((s, v["status"].clone()), (200, json!(4)));
    let (s, _, t) = c
        .post(&format!("machines/{other}/"), Some("mark_fixed"), &[])
        .await;
    assert_eq!(
        (s, t.as_str()),
        (409, "Can't mark a non-broken node as 'Ready'.")
    );
    let (s, _, _) = c
        .post(&format!("machines/{other}/"), Some("mark_broken"), &[])
        .await;
    assert_eq!(s, 403, "a machine the user does not own");
    // Releasing a New machine is refused; creating one enlists or commissions.
    let (s, v, t) = c
        .post(
            "machines/",
            None,
            &[
                ("architecture", "amd64/generic"),
                ("mac_addresses", "52:54:00:aa:bb:01"),
                ("mac_addresses", "52:54:00:aa:bb:02"),
                ("commission", "false"),
                ("hostname", "made-by-api"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (v["status"].clone(), v["hostname"].clone()),
        (json!(0), json!("made-by-api"))
    );
    let new_sid = sid(&v);
    let (s, _, t) = c
        .post(&format!("machines/{new_sid}/"), Some("release"), &[])
        .await;
    assert_eq!(
        (s, t.as_str()),
        (
            409,
            "Machine cannot be released in its current state ('New')."
        )
    );
    let (s, _, t) = c
        .post(&format!("machines/{new_sid}/"), Some("commission"), &[])
        .await;
    assert_eq!(
        (s, t.as_str()),
        (
            503,
            "Unconfigured power type. Please configure the power type and try again."
        )
    );
    let (s, v, t) = c
        .post_multipart(
            "machines/",
            None,
            &[
                ("architecture", "amd64"),
                ("mac_addresses", "52:54:00:aa:bb:03"),
                ("power_type", "redfish"),
                ("power_parameters_power_address", "10.1.1.1"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        v["status"], 1,
        "an admin's new machine commissions by default"
    );
    // Bulk operations: set_zone, release (all or nothing).
    let (s, _, _) = c.post("zones/", None, &[("name", "row-2")]).await;
    assert_eq!(s, 200);
    let (s, _, t) = c
        .post(
            "machines/",
            Some("set_zone"),
            &[("zone", "row-2"), ("nodes", &gpu_sid), ("nodes", &other)],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(c.machine(&other).await["zone"]["name"], "row-2");
    let (s, _, _) = c
        .post(
            "machines/",
            Some("allocate"),
            &[("zone", "row-2"), ("system_id", &gpu_sid)],
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, t) = c
        .post(
            "machines/",
            Some("release"),
            &[("machines", &gpu_sid), ("machines", &new_sid)],
        )
        .await;
    assert_eq!(s, 409, "{t}");
    assert!(t.contains(&format!("{new_sid} ('New')")), "{t}");
    assert_eq!(c.machine(&gpu_sid).await["status"], 10, "nothing released");
    let (s, v, t) = c
        .post(
            "machines/",
            Some("release"),
            &[("machines", &gpu_sid), ("machines", &other)],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v, json!([gpu_sid.clone()]));
    c.wait_status(&gpu_sid, 4).await;
    let (s, _, _) = c.delete(&format!("machines/{new_sid}/")).await;
    assert_eq!(s, 204);
    let (s, _, t) = c.get(&format!("machines/{new_sid}/"), &[]).await;
    assert_eq!(
        (s, t.as_str()),
        (404, "No Machine matches the given query.")
    );
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn per_object_faults() {
    let seeds: Vec<SeedMachine> = (1..=6)
        .map(|i| seed_machine(i, if i >= 5 { 2 } else { 0 }))
        .collect();
    let twin = start(opts(seeds.clone(), None)).await.expect("start");
    let c = Maas::new(&twin);
    let ms = c.machines().await;
    let ids: Vec<String> = ms.iter().map(sid).collect();
    // By system id and by serial.
    c.fault_times(&ids[0], "commission_fails", Some(1)).await;
    c.fault(&seeds[1].serial, "testing_fails").await;
    c.fault(&ids[2], "deploy_fails").await;
    c.fault(&ids[4], "gpu_degraded").await;
    c.fault(&ids[5], "memory_missing").await;
    // The GPUs' links as a commissioning script reads them from sysfs.
    let (s, _, t) = c
        .post_multipart(
            "scripts/",
            None,
            &[
                ("name", "gpu-links"),
                ("type", "commissioning"),
                (
                    "script",
                    "#!/bin/sh\nfor d in \"${SYSFS_ROOT:-/sys}\"/bus/pci/devices/*; do\n  case $(cat \"$d/class\") in 0x03*) echo \"$(basename \"$d\") $(cat \"$d/current_link_speed\") x$(cat \"$d/current_link_width\")\";; esac\ndone\n",
                ),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    for id in &ids {
        let (s, _, t) = c
            .post(&format!("machines/{id}/"), Some("commission"), &[])
            .await;
        assert_eq!(s, 200, "{t}");
    }
    let m = c.wait_status(&ids[0], 2).await;
    assert_eq!(m["status_name"], "Failed commissioning");
    assert_eq!(m["commissioning_status_name"], "Failed");
    let m = c.wait_status(&ids[1], 22).await;
    assert_eq!(m["status_name"], "Failed testing");
    for id in &ids[2..] {
        c.wait_status(id, 4).await;
    }
    let (_, res, _) = c
        .get(
            &format!("nodes/{}/results/current-commissioning/", ids[4]),
            &[("include_output", "1"), ("filters", "gpu-links")],
        )
        .await;
    let out = base64::engine::general_purpose::STANDARD
        .decode(res["results"][0]["stdout"].as_str().expect("stdout"))
        .expect("b64");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "0000:18:00.0 16.0 GT/s PCIe x8\n0000:a4:00.0 32.0 GT/s PCIe x16\n",
        "only the first GPU degrades"
    );
    let m = c.machine(&ids[5]).await;
    assert_eq!(m["memory"], 65536 * 3 * 3 / 4);
    // A failed machine is still owned by the commissioning user: it can be marked broken.
    let (s, v, _) = c
        .post(&format!("machines/{}/", ids[0]), Some("mark_broken"), &[])
        .await;
    assert_eq!((s, v["status"].clone()), (200, json!(8)));
    // Deployment failure.
    let (s, _, t) = c
        .post(&format!("machines/{}/", ids[2]), Some("deploy"), &[])
        .await;
    assert_eq!(s, 200, "{t}");
    let m = c.wait_status(&ids[2], 11).await;
    assert_eq!(m["status_name"], "Failed deployment");
    // A failed deployment can be released.
    let (s, _, _) = c
        .post(&format!("machines/{}/", ids[2]), Some("release"), &[])
        .await;
    assert_eq!(s, 200);
    c.wait_status(&ids[2], 4).await;
    // The one-shot fault was consumed: re-commissioning the first machine now succeeds.
    let (s, _, _) = c
        .post(&format!("machines/{}/", ids[0]), Some("commission"), &[])
        .await;
    assert_eq!(s, 200);
    c.wait_status(&ids[0], 4).await;
    // Faults that persist fire again; power faults answer 503.
    c.fault(&ids[3], "power_fails").await;
    for _ in 0..2 {
        let (s, _, _) = c
            .post(&format!("machines/{}/", ids[3]), Some("deploy"), &[])
            .await;
        assert_eq!(s, 503);
    }
    assert_eq!(
        c.machine(&ids[3]).await["status"],
        4,
        "a failed power action changes nothing"
    );
    // error_500 on a machine's URLs, once.
    c.fault_times(&ids[4], "error_500", Some(1)).await;
    let (s, _, _) = c.get(&format!("machines/{}/", ids[4]), &[]).await;
    assert_eq!(s, 500);
    let (s, _, _) = c.get(&format!("machines/{}/", ids[4]), &[]).await;
    assert_eq!(s, 200);
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn slow_tasks_take_ten_times_longer() {
    let mut o = opts(vec![seed_machine(1, 0)], None);
    o.faults = "slow_task=1".parse().expect("spec");
    let twin = start(o).await.expect("start");
    let c = Maas::new(&twin);
    let id = sid(&c.machines().await[0]);
    let (s, _, _) = c
        .post(&format!("machines/{id}/"), Some("commission"), &[])
        .await;
    assert_eq!(s, 200);
    // Commissioning + testing normally end after 0.5 s; slowed, after 5 s.
    twin.clock().advance(Duration::from_millis(1200));
    assert_eq!(c.machine(&id).await["status"], 1, "still commissioning");
    twin.shutdown().await.expect("shutdown");
}

/// Realistic MAAS timings divided by the time scale, and the peak number of machines
/// in an active phase per DC in the twin's counters.
#[tokio::test]
async fn realistic_timings_scale_and_the_active_machines_peak() {
    let mut o = opts((1..=4).map(|i| seed_machine(i, 0)).collect(), None);
    o.timing = strata_twin::Timing {
        maas: strata_twin::MaasTiming::Realistic,
        scale: 60,
    };
    let twin = start(o).await.expect("start");
    let c = Maas::new(&twin);
    let active = || async {
        let r = c
            .http
            .get(format!("{}/counters", c.admin))
            .send()
            .await
            .expect("counters");
        let v: Value = r.json().await.expect("json");
        let fra1 = v["maas_active"]
            .as_array()
            .and_then(|a| a.iter().find(|d| d["dc"] == "fra1").cloned())
            .unwrap_or(Value::Null);
        (fra1["active"].as_u64(), fra1["max_active"].as_u64())
    };
    let ids: Vec<String> = c.machines().await.iter().map(sid).collect();
    for (n, id) in ids.iter().enumerate() {
        let (s, _, t) = c
            .post(&format!("machines/{id}/"), Some("commission"), &[])
            .await;
        assert_eq!(s, 200, "{t}");
        // Each request first sees the machines started before it.
        assert_eq!(active().await, (Some(n as u64), Some(n as u64)));
    }
    c.machines().await;
    assert_eq!(active().await, (Some(4), Some(4)));
    // Commissioning takes 8 min ± 25 % and its tests 2 min ± 25 %: at 1/60, 7.5 s to
    // 12.5 s of twin time. Before 6 s every machine is still commissioning.
    twin.clock().advance(Duration::from_millis(5900));
    for id in &ids {
        assert_eq!(c.machine(id).await["status_name"], "Commissioning");
    }
    twin.clock().advance(Duration::from_millis(12_600 - 5900));
    for id in &ids {
        assert_eq!(c.machine(id).await["status_name"], "Ready");
    }
    assert_eq!(active().await, (Some(0), Some(4)));
    // A reset starts the peak again from what is active now.
    c.http
        .post(format!("{}/counters/reset", c.admin))
        .send()
        .await
        .expect("reset");
    let (s, _, t) = c
        .post(&format!("machines/{}/", ids[0]), Some("commission"), &[])
        .await;
    assert_eq!(s, 200, "{t}");
    c.machines().await;
    assert_eq!(active().await, (Some(1), Some(1)));
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn networking_and_vlan_dhcp() {
    let twin = start(opts(vec![], None)).await.expect("start");
    let c = Maas::new(&twin);
    let (_, racks, _) = c.get("rackcontrollers/", &[]).await;
    let racks = racks.as_array().expect("racks").clone();
    assert_eq!(racks.len(), 2);
    assert_eq!(racks[0]["hostname"], "fra1-maas-rack-a");
    assert_eq!(racks[1]["hostname"], "fra1-maas-rack-b");
    let (ra, rb) = (sid(&racks[0]), sid(&racks[1]));
    let (_, regions, _) = c.get("regioncontrollers/", &[]).await;
    assert_eq!(regions.as_array().map(Vec::len), Some(1));
    let (_, fabrics, _) = c.get("fabrics/", &[]).await;
    assert_eq!(fabrics[0]["name"], "fabric-0");
    assert_eq!(fabrics[0]["vlans"][0]["vid"], 0);
    assert_eq!(fabrics[0]["vlans"][0]["name"], "untagged");
    let (_, zones, _) = c.get("zones/", &[]).await;
    assert_eq!(zones[0]["name"], "default");
    let (_, pools, _) = c.get("resourcepools/", &[]).await;
    assert_eq!(pools[0]["name"], "default");
    let (_, boot, _) = c.get("boot-resources/", &[]).await;
    let names: Vec<&str> = boot
        .as_array()
        .expect("boot")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert!(
        names.contains(&"ubuntu/noble") && names.contains(&"ubuntu/jammy"),
        "{names:?}"
    );
    let (_, cfg, _) = c
        .get(
            "maas/",
            &[("op", "get_config"), ("name", "default_distro_series")],
        )
        .await;
    assert_eq!(cfg, "noble");

    // A tagged VLAN on a new fabric, keyed by VID.
    let (s, f, _) = c.post("fabrics/", None, &[("name", "storage")]).await;
    assert_eq!(s, 200);
    let fid = f["id"].as_u64().expect("id").to_string();
    let (s, v, t) = c
        .post(
            &format!("fabrics/{fid}/vlans/"),
            None,
            &[("vid", "100"), ("name", "data"), ("mtu", "9000")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (v["vid"].clone(), v["mtu"].clone(), v["fabric"].clone()),
        (json!(100), json!(9000), json!("storage"))
    );
    let (s, v, _) = c
        .post(&format!("fabrics/{fid}/vlans/"), None, &[("vid", "100")])
        .await;
    assert_eq!(s, 400);
    assert!(
        v["__all__"][0]
            .as_str()
            .is_some_and(|m| m.contains("already exists"))
    );
    let (s, v, _) = c.get(&format!("fabrics/{fid}/vlans/100/"), &[]).await;
    assert_eq!((s, v["name"].clone()), (200, json!("data")));

    // DHCP needs a dynamic range, then a primary rack.
    let path = format!("fabrics/{fid}/vlans/100/");
    let (s, v, _) = c.put(&path, &[("dhcp_on", "true")]).await;
    assert_eq!(s, 400);
    assert_eq!(
        v["dhcp_on"][0],
        "dhcp can only be turned on when a dynamic IP range is defined."
    );
    let vlan_id = c.get(&path, &[]).await.1["id"]
        .as_u64()
        .expect("vlan id")
        .to_string();
    let (s, sn, t) = c
        .post(
            "subnets/",
            None,
            &[
                ("cidr", "10.20.0.0/24"),
                ("vlan", &vlan_id),
                ("gateway_ip", "10.20.0.1"),
                ("dns_servers", "10.20.0.2,10.20.0.3"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(sn["vlan"]["vid"], 100);
    assert_eq!(sn["dns_servers"], json!(["10.20.0.2", "10.20.0.3"]));
    let (s, v, _) = c
        .post(
            "subnets/",
            None,
            &[("cidr", "10.30.0.0/24"), ("gateway_ip", "10.99.0.1")],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["gateway_ip"][0], "Gateway IP must be within CIDR range.");
    let (s, _, t) = c
        .post(
            "ipranges/",
            None,
            &[
                ("type", "dynamic"),
                ("start_ip", "10.20.0.100"),
                ("end_ip", "10.20.0.199"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let (s, _, _) = c
        .post(
            "ipranges/",
            None,
            &[
                ("type", "reserved"),
                ("start_ip", "10.20.0.150"),
                ("end_ip", "10.20.0.160"),
            ],
        )
        .await;
    assert_eq!(s, 400, "overlapping ranges");
    let (s, v, _) = c.put(&path, &[("dhcp_on", "true")]).await;
    assert_eq!(s, 400);
    assert_eq!(
        v["__all__"][0],
        "dhcp can only be turned on when a primary rack controller is set."
    );
    // A rack without an interface on a VLAN of this VID is not a valid choice.
    let (s, v, _) = c
        .put(&path, &[("dhcp_on", "true"), ("primary_rack", &ra)])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["primary_rack"][0],
        format!("Select a valid choice. {ra} is not one of the available choices.")
    );
    let (s, v, _) = c.put(&path, &[("secondary_rack", &rb)]).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["secondary_rack"][0].is_string(), "{v}");
    // Once rackd reports an interface on the VID, the racks may serve it.
    for r in [&ra, &rb] {
        let http = c.http.clone();
        let resp = http
            .post(format!("{}/dcs/fra1/maas/mutate", c.admin))
            .json(&json!({"kind": "rack_controller", "id": r, "set": {"add_vlan_interface": vlan_id}}))
            .send()
            .await
            .expect("mutate");
        assert_eq!(resp.status().as_u16(), 200);
    }
    let (s, v, t) = c
        .put(
            &path,
            &[
                ("dhcp_on", "true"),
                ("primary_rack", &ra),
                ("secondary_rack", &rb),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (
            v["dhcp_on"].clone(),
            v["primary_rack"].clone(),
            v["secondary_rack"].clone()
        ),
        (json!(true), json!(ra), json!(rb))
    );
    let (s, v, _) = c.put(&path, &[("secondary_rack", &ra)]).await;
    assert_eq!(s, 400);
    assert!(
        v["__all__"][0]
            .as_str()
            .is_some_and(|m| m.contains("already set as the primary rack controller"))
    );
    // Removing the primary promotes the secondary.
    let (s, v, _) = c.put(&path, &[("primary_rack", "")]).await;
    assert_eq!(
        (s, v["primary_rack"].clone(), v["secondary_rack"].clone()),
        (200, json!(rb), Value::Null)
    );
    let (s, v, _) = c.put(&path, &[("dhcp_on", "false")]).await;
    assert_eq!((s, v["dhcp_on"].clone()), (200, json!(false)));
    let (_, stats, _) = c
        .get(&format!("subnets/{}/", sn["id"]), &[("op", "statistics")])
        .await;
    assert_eq!(stats["total_addresses"], 254);
    // Spaces, deletes.
    let (s, sp, _) = c.post("spaces/", None, &[("name", "storage-net")]).await;
    assert_eq!(s, 200);
    let (s, v, _) = c.put(&path, &[("space", "storage-net")]).await;
    assert_eq!((s, v["space"].clone()), (200, json!("storage-net")));
    let (s, _, _) = c.delete(&format!("spaces/{}/", sp["id"])).await;
    assert_eq!(s, 204);
    let (s, _, _) = c.delete(&format!("fabrics/{fid}/")).await;
    assert_eq!(s, 400, "subnets still present");
    let (s, _, _) = c.delete(&format!("subnets/{}/", sn["id"])).await;
    assert_eq!(s, 204);
    let (s, _, _) = c.delete(&format!("fabrics/{fid}/vlans/100/")).await;
    assert_eq!(s, 204);
    let (s, _, _) = c.delete(&format!("fabrics/{fid}/")).await;
    assert_eq!(s, 204);
    let (s, _, _) = c.delete("fabrics/0/").await;
    assert_eq!(s, 400, "the default fabric stays");
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn admin_mutation_and_summary() {
    let twin = start(opts((1..=3).map(|i| seed_machine(i, 0)).collect(), None))
        .await
        .expect("start");
    let c = Maas::new(&twin);
    let ms = c.machines().await;
    let (a, b) = (sid(&ms[0]), sid(&ms[1]));
    let mutate = |body: Value| {
        let http = c.http.clone();
        let url = format!("{}/dcs/fra1/maas/mutate", c.admin);
        async move {
            let r = http.post(url).json(&body).send().await.expect("mutate");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (s, v) = mutate(json!({"kind": "machine", "id": a, "set": {"hostname": "renamed", "status": "broken", "tag_names": ["x"]}})).await;
    assert_eq!(s, 200, "{v}");
    let m = c.machine(&a).await;
    assert_eq!(
        (
            m["hostname"].clone(),
            m["status"].clone(),
            m["status_name"].clone()
        ),
        (json!("renamed"), json!(8), json!("Broken"))
    );
    assert_eq!(m["tag_names"], json!(["x"]));
    // A status that takes time completes on its own.
    let (s, _) = mutate(json!({"kind": "machine", "id": b, "set": {"status": "Deploying"}})).await;
    assert_eq!(s, 200);
    c.wait_status(&b, 6).await;
    let (s, _) = mutate(json!({"kind": "machine", "id": a, "delete": true})).await;
    assert_eq!(s, 200);
    let (s, _, _) = c.get(&format!("machines/{a}/"), &[]).await;
    assert_eq!(s, 404);
    let (s, _) = mutate(json!({"kind": "machine", "id": "nope", "set": {}})).await;
    assert_eq!(s, 400);
    let (s, v) = mutate(json!({"kind": "vlan", "id": "0/0", "set": {"dhcp_on": true}})).await;
    assert_eq!((s, v["dhcp_on"].clone()), (200, json!(true)));
    let summary: Value = c
        .http
        .get(format!("{}/dcs/fra1/maas/summary", c.admin))
        .send()
        .await
        .expect("summary")
        .json()
        .await
        .expect("json");
    assert_eq!(summary["machines"]["total"], 2);
    assert_eq!(summary["machines"]["by_status"]["Deployed"], 1);
    assert_eq!(summary["machines"]["by_status"]["New"], 1);
    assert_eq!(summary["rack_controllers"], 2);
    assert_eq!(summary["fabrics"], 1);
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn save_and_restore() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("twin-state.json");
    let seeds: Vec<SeedMachine> = (1..=3).map(|i| seed_machine(i, 0)).collect();
    let twin = start(opts(seeds.clone(), Some(state.clone())))
        .await
        .expect("start");
    let c = Maas::new(&twin);
    let ms = c.machines().await;
    let a = sid(&ms[0]);
    c.post(&format!("machines/{a}/"), Some("commission"), &[])
        .await;
    c.wait_status(&a, 4).await;
    let (s, _, _) = c
        .post("machines/", Some("allocate"), &[("system_id", &a)])
        .await;
    assert_eq!(s, 200);
    c.post("tags/", None, &[("name", "kept")]).await;
    c.post("subnets/", None, &[("cidr", "10.9.0.0/16")]).await;
    let b = sid(&ms[1]);
    c.post(&format!("machines/{b}/"), Some("commission"), &[])
        .await;
    let key = c.key.clone();
    let before = c.machines().await;
    twin.shutdown().await.expect("shutdown");
    assert!(state.exists());

    let twin = start(opts(seeds, Some(state.clone())))
        .await
        .expect("restart");
    let c = Maas::new(&twin);
    assert_eq!(c.key, key, "credentials survive");
    let after = c.machines().await;
    assert_eq!(after.len(), 3);
    for (x, y) in before.iter().zip(&after) {
        assert_eq!(
            (x["system_id"].clone(), x["hostname"].clone()),
            (y["system_id"].clone(), y["hostname"].clone())
        );
    }
    assert_eq!(c.machine(&a).await["status"], 10);
    // The transition in flight at shutdown completes after the restart.
    c.wait_status(&b, 4).await;
    let (s, _, _) = c.get("tags/kept/", &[]).await;
    assert_eq!(s, 200);
    let (_, subnets, _) = c.get("subnets/", &[]).await;
    assert_eq!(subnets[0]["cidr"], "10.9.0.0/16");
    // New ids don't collide with restored ones.
    let (s, v, _) = c
        .post(
            "machines/",
            None,
            &[
                ("mac_addresses", "52:54:00:ee:ee:ee"),
                ("commission", "false"),
            ],
        )
        .await;
    assert_eq!(s, 200);
    assert!(after.iter().all(|m| m["system_id"] != v["system_id"]));
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn listing_and_creating_at_scale() {
    let seeds: Vec<SeedMachine> = (0..2000)
        .map(|i| seed_machine(i, (i % 8 == 0) as usize))
        .collect();
    let t0 = Instant::now();
    let twin = start(opts(seeds, None)).await.expect("start");
    let start_time = t0.elapsed();
    let c = Maas::new(&twin);
    let t1 = Instant::now();
    let ms = c.machines().await;
    let list_time = t1.elapsed();
    assert_eq!(ms.len(), 2000);
    let mut sids: Vec<&str> = ms.iter().filter_map(|m| m["system_id"].as_str()).collect();
    sids.sort();
    sids.dedup();
    assert_eq!(sids.len(), 2000, "unique system ids");
    let mut hosts: Vec<&str> = ms.iter().filter_map(|m| m["hostname"].as_str()).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts.len(), 2000, "unique hostnames");
    let t2 = Instant::now();
    for i in 0..200u32 {
        let mac = format!("02:aa:00:00:{:02x}:{:02x}", i >> 8, i & 0xff);
        let (s, _, t) = c
            .post(
                "machines/",
                None,
                &[("mac_addresses", &mac), ("commission", "false")],
            )
            .await;
        assert_eq!(s, 200, "{t}");
    }
    let create_time = t2.elapsed();
    let (_, v, _) = c
        .get("machines/", &[("mac_address", "02:aa:00:00:00:07")])
        .await;
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    eprintln!("start {start_time:?}, list 2000 {list_time:?}, create 200 {create_time:?}");
    assert!(
        list_time < Duration::from_secs(15),
        "listing 2000 machines took {list_time:?}"
    );
    assert!(
        create_time < Duration::from_secs(20),
        "creating 200 machines took {create_time:?}"
    );
    twin.shutdown().await.expect("shutdown");
}

/// A machine that already runs is created with `deployed=true`: straight to Deployed,
/// owned, no commissioning, no power action, no OS recorded (MAAS's
/// `AdminMachineForm._setup_deployed_machine`). Without it, creating the same
/// machine commissions it: a power cycle through its BMC. A BMC answers only at the
/// address MAAS's DHCP reserved for its MAC (`/reservedips/`); a power action at any
/// other `power_address` fails as a MAAS power error. Deploy accepts only images
/// MAAS has (synced Ubuntu releases, uploaded custom images).
#[tokio::test]
async fn running_hosts_reserved_bmc_addresses_and_images() {
    let running = SeedMachine {
        running: true,
        bmc_mac: Some("52:55:00:00:00:01".into()),
        ..seed_machine(1, 0)
    };
    let enlisted = SeedMachine {
        bmc_mac: Some("52:55:00:00:00:02".into()),
        ..seed_machine(2, 0)
    };
    let mut o = opts(vec![running.clone(), enlisted.clone()], None);
    o.dcs[0].boot_images = vec!["custom/debian-13-pve".into()];
    let twin = start(o).await.expect("start");
    let c = Maas::new(&twin);
    let power_actions = |serial: &str| -> u64 {
        let s = twin.state.service("fra1", "maas").expect("maas").summary();
        s["power_actions"][serial].as_u64().unwrap_or(0)
    };
    // A running host did not PXE boot: MAAS does not know it.
    let ms = c.machines().await;
    assert_eq!(ms.len(), 1, "only the PXE-enlisted machine: {ms:?}");

    // deployed=true must be a boolean.
    let (s, v, t) = c
        .post(
            "machines/",
            None,
            &[("mac_addresses", &running.pxe_mac), ("deployed", "maybe")],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    assert!(
        v["deployed"][0]
            .as_str()
            .is_some_and(|m| m.contains("maybe")),
        "{v}"
    );
    // Registered as deployed: no commissioning, no power action, no OS recorded.
    let (s, v, t) = c
        .post(
            "machines/",
            None,
            &[
                ("mac_addresses", &running.pxe_mac),
                ("architecture", "amd64/generic"),
                ("deployed", "true"),
                ("power_type", "redfish"),
                ("power_parameters_power_address", "10.11.0.5"),
                ("power_parameters_power_user", "strata"),
                ("power_parameters_power_pass", "x"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["status_name"], "Deployed");
    assert_eq!(v["osystem"], "");
    assert_eq!(v["distro_series"], "");
    assert!(v["owner"].is_string(), "{v}");
    let running_sid = sid(&v);
    c.clock.advance(Duration::from_secs(600));
    assert_eq!(c.machine(&running_sid).await["status_name"], "Deployed");
    assert_eq!(power_actions(&running.serial), 0);

    // The enlisted machine: its BMC has no reserved address yet, so pointing MAAS at
    // 10.11.0.9 reaches nothing; commissioning fails as a power error, the BMC is
    // never driven.
    let enlisted_sid = sid(&ms[0]);
    let (s, _, t) = c
        .put(
            &format!("machines/{enlisted_sid}/"),
            &[
                ("power_type", "redfish"),
                ("power_parameters_power_address", "10.11.0.9"),
                ("power_parameters_power_user", "strata"),
                ("power_parameters_power_pass", "x"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let (s, _, t) = c
        .post(
            &format!("machines/{enlisted_sid}/"),
            Some("commission"),
            &[],
        )
        .await;
    assert_eq!(s, 503, "{t}");
    assert!(
        t.contains("no BMC answers at power_address '10.11.0.9'"),
        "{t}"
    );
    assert_eq!(power_actions(&enlisted.serial), 0);

    // Reserved IPs: MAAS's form rules.
    let (s, v, t) = c
        .post(
            "reservedips/",
            None,
            &[("ip", "10.11.0.9"), ("mac_address", "52:55:00:00:00:02")],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    assert!(
        v["subnet"][0]
            .as_str()
            .is_some_and(|m| m.contains("There is no subnet for 10.11.0.9")),
        "{v}"
    );
    let (s, _, t) = c.post("subnets/", None, &[("cidr", "10.11.0.0/24")]).await;
    assert_eq!(s, 200, "{t}");
    let (s, v, t) = c
        .post(
            "reservedips/",
            None,
            &[("ip", "10.11.0.0"), ("mac_address", "52:55:00:00:00:02")],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    assert_eq!(v["ip"][0], "The network address cannot be a reserved IP.");
    let (s, v, t) = c
        .post(
            "reservedips/",
            None,
            &[("ip", "10.11.0.9"), ("mac_address", "nope")],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    assert!(v["mac_address"][0].is_string(), "{v}");
    let (s, v, t) = c
        .post(
            "reservedips/",
            None,
            &[
                ("ip", "10.11.0.9"),
                ("mac_address", "52:55:00:00:00:02"),
                ("comment", "BMC"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(v["subnet"]["cidr"], "10.11.0.0/24");
    assert_eq!(v["mac_address"], "52:55:00:00:00:02");
    let reservation = v["id"].as_u64().expect("id");
    let (s, v, t) = c
        .post(
            "reservedips/",
            None,
            &[("ip", "10.11.0.9"), ("mac_address", "52:55:00:00:00:03")],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    assert_eq!(
        v["ip"][0],
        "Reserved IP with this IP address already exists."
    );
    let (s, v, t) = c
        .put(
            &format!("reservedips/{reservation}/"),
            &[("ip", "10.11.0.10")],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    assert!(
        v["__all__"][0]
            .as_str()
            .is_some_and(|m| m.contains("immutable")),
        "{v}"
    );
    let (s, v, _) = c.get("reservedips/", &[]).await;
    assert_eq!(s, 200);
    assert_eq!(v.as_array().map(Vec::len), Some(1));

    // Now the BMC holds 10.11.0.9: commissioning powers the machine (one action).
    let (s, _, t) = c
        .post(
            &format!("machines/{enlisted_sid}/"),
            Some("commission"),
            &[("testing_scripts", "none")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(power_actions(&enlisted.serial), 1);
    c.wait_status(&enlisted_sid, 4).await;

    // Deploy: an image MAAS does not have is refused by the form; the uploaded
    // custom image deploys, recorded as osystem `custom`.
    let (s, _, t) = c
        .post(
            "machines/",
            Some("allocate"),
            &[("system_id", &enlisted_sid)],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let (s, v, t) = c
        .post(
            &format!("machines/{enlisted_sid}/"),
            Some("deploy"),
            &[("distro_series", "custom/debian-12-pve")],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    let msg = v["distro_series"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("'custom/debian-12-pve' is not a valid distro_series")
            && msg.contains("'custom/debian-13-pve'"),
        "{msg}"
    );
    let (s, _, t) = c
        .post(
            &format!("machines/{enlisted_sid}/"),
            Some("deploy"),
            &[("distro_series", "custom/debian-13-pve")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let m = c.wait_status(&enlisted_sid, 6).await;
    assert_eq!(m["osystem"], "custom");
    assert_eq!(m["distro_series"], "debian-13-pve");
    assert_eq!(power_actions(&enlisted.serial), 2);
    // The reservation gone, the BMC falls back to nothing: power actions fail again.
    let (s, _, _) = c.delete(&format!("reservedips/{reservation}/")).await;
    assert_eq!(s, 204);
    let (s, _, t) = c
        .post(&format!("machines/{enlisted_sid}/"), Some("power_off"), &[])
        .await;
    assert_eq!(s, 503, "{t}");
    assert_eq!(power_actions(&enlisted.serial), 2);
}

fn nic(name: &str, address: &str, gateway: Option<&str>) -> strata_twin::SeedNic {
    strata_twin::SeedNic {
        name: name.into(),
        address: address.into(),
        gateway: gateway.map(str::to_string),
        vlan: None,
    }
}

/// Controllers registered as MAAS registers them: a region with NICs on the
/// provisioning and management networks, a rack with NICs on provisioning, BMC and
/// management and a VLAN interface (tag 20) for storage.
fn registered() -> TwinOptions {
    let mut o = opts(vec![seed_machine(1, 0)], None);
    o.dcs[0].controllers = vec![
        strata_twin::SeedController {
            hostname: "fra1-maas-region1".into(),
            rack: false,
            interfaces: vec![
                nic("eth0", "10.0.10.2/24", None),
                nic("eth1", "10.0.12.2/24", Some("10.0.12.1")),
            ],
        },
        strata_twin::SeedController {
            hostname: "fra1-maas-rack-a".into(),
            rack: true,
            interfaces: vec![
                nic("eth0", "10.0.10.5/24", None),
                nic("eth1", "10.0.11.5/24", None),
                nic("eth2", "10.0.12.5/24", Some("10.0.12.1")),
                strata_twin::SeedNic {
                    vlan: Some((20, "eth0".into())),
                    ..nic("eth0.20", "10.0.20.5/24", None)
                },
            ],
        },
    ];
    o
}

#[tokio::test]
async fn registered_controllers_make_the_network_model_and_racks_serve_only_their_vids() {
    let twin = start(registered()).await.expect("start");
    let c = Maas::new(&twin);
    // MAAS's registration: the first interface takes fabric-0's untagged VLAN, every
    // other new L2 segment a new fabric; known subnets are joined; the VLAN interface
    // makes VLAN 20 on its parent's fabric.
    let (_, fabrics, _) = c.get("fabrics/", &[]).await;
    let names: Vec<&str> = fabrics
        .as_array()
        .expect("fabrics")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["fabric-0", "fabric-1", "fabric-2"]);
    let (_, subnets, _) = c.get("subnets/", &[]).await;
    let view: Vec<(String, String, u64, Value)> = subnets
        .as_array()
        .expect("subnets")
        .iter()
        .map(|s| {
            (
                s["cidr"].as_str().unwrap_or("").to_string(),
                s["vlan"]["fabric"].as_str().unwrap_or("").to_string(),
                s["vlan"]["vid"].as_u64().unwrap_or(99),
                s["gateway_ip"].clone(),
            )
        })
        .collect();
    assert_eq!(
        view,
        vec![
            ("10.0.10.0/24".into(), "fabric-0".into(), 0, Value::Null),
            (
                "10.0.12.0/24".into(),
                "fabric-1".into(),
                0,
                json!("10.0.12.1")
            ),
            ("10.0.11.0/24".into(), "fabric-2".into(), 0, Value::Null),
            ("10.0.20.0/24".into(), "fabric-0".into(), 20, Value::Null),
        ]
    );
    assert_eq!(subnets[0]["name"], "10.0.10.0/24");
    // The machine enlisted where it PXE-booted: the provisioning VLAN.
    let ms = c.machines().await;
    assert_eq!(ms[0]["boot_interface"]["vlan"]["fabric"], "fabric-0");
    let (_, racks, _) = c.get("rackcontrollers/", &[]).await;
    let rack = sid(&racks[0]);
    // The rack has interfaces on VID 0 and VID 20: it may be primary there...
    let (s, v, t) = c
        .put("fabrics/0/vlans/20/", &[("primary_rack", &rack)])
        .await;
    assert_eq!((s, v["primary_rack"].clone()), (200, json!(rack)), "{t}");
    let (s, _, t) = c
        .put("fabrics/2/vlans/0/", &[("primary_rack", &rack)])
        .await;
    assert_eq!(s, 200, "{t}");
    // ... but not on a VID it has no interface on.
    let (s, _, t) = c
        .post(
            "fabrics/0/vlans/",
            None,
            &[("vid", "30"), ("name", "corosync")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let (s, v, _) = c
        .put("fabrics/0/vlans/30/", &[("primary_rack", &rack)])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["primary_rack"][0],
        format!("Select a valid choice. {rack} is not one of the available choices.")
    );
    // A region controller is no rack at all.
    let (s, _, _) = c
        .put(
            "fabrics/0/vlans/0/",
            &[("primary_rack", "fra1-maas-region1")],
        )
        .await;
    assert_eq!(s, 400);
    // The controllers' addresses are taken in their subnets.
    let (_, free, _) = c
        .get(
            &format!("subnets/{}/", subnets[0]["id"]),
            &[("op", "unreserved_ip_ranges")],
        )
        .await;
    assert_eq!(free[0]["start"], "10.0.10.1");
    assert_eq!(free[0]["end"], "10.0.10.1");
    assert_eq!(free[1]["start"], "10.0.10.3");
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn domains_and_dns_resources() {
    let twin = start(opts(vec![], None)).await.expect("start");
    let c = Maas::new(&twin);
    let (s, d, t) = c
        .post(
            "domains/",
            None,
            &[("name", "fra1.example.net"), ("authoritative", "false")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let did = d["id"].to_string();
    let (s, d, _) = c
        .put(&format!("domains/{did}/"), &[("authoritative", "true")])
        .await;
    assert_eq!((s, d["authoritative"].clone()), (200, json!(true)));
    let (s, v, _) = c
        .put(&format!("domains/{did}/"), &[("name", "bad_name.example")])
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["name"][0], "Invalid domain name: bad_name.example.");

    // fqdn is split into name and domain; the addresses become A records.
    let (s, r, t) = c
        .post(
            "dnsresources/",
            None,
            &[
                ("fqdn", "openstack-api.fra1.example.net"),
                ("ip_addresses", "10.0.12.10"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(r["fqdn"], "openstack-api.fra1.example.net");
    assert_eq!(r["ip_addresses"][0]["ip"], "10.0.12.10");
    let rid = r["id"].to_string();
    let (s, v, _) = c
        .post(
            "dnsresources/",
            None,
            &[("name", "openstack-api"), ("domain", &did)],
        )
        .await;
    assert_eq!(s, 400, "one name per domain: {v}");
    // An unknown domain is a 404 (the handler looks it up before the form runs).
    let (s, _, _) = c
        .post(
            "dnsresources/",
            None,
            &[("fqdn", "x.nowhere.example"), ("ip_addresses", "10.0.0.1")],
        )
        .await;
    assert_eq!(s, 404);
    let (s, v, _) = c
        .post(
            "dnsresources/",
            None,
            &[("name", "bad_label"), ("domain", &did)],
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["name"][0], "Invalid dnsresource name: bad_label.");
    let (s, v, _) = c
        .post(
            "dnsresources/",
            None,
            &[
                ("name", "y"),
                ("domain", &did),
                ("ip_addresses", "not-an-ip"),
            ],
        )
        .await;
    assert_eq!(s, 400);
    assert!(v["ip_addresses"][0].is_string(), "{v}");
    let (s, r, _) = c
        .put(
            &format!("dnsresources/{rid}/"),
            &[("ip_addresses", "10.0.12.11 10.0.12.12")],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(r["ip_addresses"].as_array().map(Vec::len), Some(2));
    let (_, list, _) = c
        .get("dnsresources/", &[("domain", "fra1.example.net")])
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (s, _, _) = c.delete(&format!("dnsresources/{rid}/")).await;
    assert_eq!(s, 204);
    let (s, _, _) = c.get(&format!("dnsresources/{rid}/"), &[]).await;
    assert_eq!(s, 404);
    twin.shutdown().await.expect("shutdown");
}

/// A machine's network model as MAAS's interface forms build it before deploy: a bond
/// of members on one VLAN, with MAAS's modes; VLAN interfaces on tagged VLANs of the
/// parent's fabric, once each; a static link; the default gateway; deleting a bond
/// takes its VLANs. What MAAS refuses, the twin refuses with MAAS's field errors.
#[tokio::test]
async fn bonds_vlans_and_the_default_gateway_follow_maas_rules() {
    let twin = start(opts(vec![seed_machine(1, 0)], None))
        .await
        .expect("start");
    let c = Maas::new(&twin);
    let m = &c.machines().await[0];
    let sid = sid(m);
    let ifaces = format!("nodes/{sid}/interfaces/");
    let iface = |name: &str| {
        m["interface_set"]
            .as_array()
            .expect("interfaces")
            .iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
            .clone()
    };
    let (eno1, eno2) = (iface("eno1"), iface("eno2"));
    let untagged = eno1["vlan"]["id"].as_u64().expect("PXE VLAN").to_string();
    let (e1, e2) = (eno1["id"].to_string(), eno2["id"].to_string());

    // Members on different VLANs cannot bond; put eno2 on the PXE VLAN first.
    let bond = |extra: &[(&'static str, &'static str)]| {
        let mut f: Vec<(&str, String)> = vec![
            ("name", "bond0".into()),
            ("parents", e1.clone()),
            ("parents", e2.clone()),
        ];
        f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        f
    };
    let form = |f: &[(&str, String)]| -> Vec<(String, String)> {
        f.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    };
    let post = |f: Vec<(String, String)>, op: &'static str, path: String| {
        let c = &c;
        async move {
            let pairs: Vec<(&str, &str)> =
                f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            c.post(&path, Some(op), &pairs).await
        }
    };
    let (s, v, t) = post(form(&bond(&[])), "create_bond", ifaces.clone()).await;
    assert_eq!(s, 400, "{t}");
    assert!(
        v["parents"][0]
            .as_str()
            .is_some_and(|m| m.contains("same VLAN")),
        "{t}"
    );
    let (s, _, t) = c
        .put(&format!("{ifaces}{e2}/"), &[("vlan", untagged.as_str())])
        .await;
    assert_eq!(s, 200, "{t}");
    let (s, v, t) = post(
        form(&bond(&[("bond_mode", "lacp")])),
        "create_bond",
        ifaces.clone(),
    )
    .await;
    assert_eq!(s, 400, "{t}");
    assert!(
        v["bond_mode"][0]
            .as_str()
            .is_some_and(|m| m.contains("valid choice")),
        "{t}"
    );
    let (s, b, t) = post(
        form(&bond(&[
            ("bond_mode", "802.3ad"),
            ("bond_lacp_rate", "fast"),
            ("bond_xmit_hash_policy", "layer3+4"),
            ("mtu", "9000"),
        ])),
        "create_bond",
        ifaces.clone(),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(b["type"], "bond");
    assert_eq!(b["parents"], json!(["eno1", "eno2"]));
    assert_eq!(b["params"]["bond_mode"], "802.3ad");
    assert_eq!(b["params"]["bond_lacp_rate"], "fast");
    assert_eq!(b["params"]["bond_xmit_hash_policy"], "layer3+4");
    assert_eq!(b["effective_mtu"], 9000);
    assert_eq!(b["mac_address"], eno1["mac_address"]);
    let bond_id = b["id"].to_string();
    let (s, v, t) = c
        .post(
            &ifaces,
            Some("create_bond"),
            &[("name", "bond1"), ("parents", e1.as_str())],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    assert!(
        v["parents"][0]
            .as_str()
            .is_some_and(|m| m == "Interfaces already in-use: eno1."),
        "{t}"
    );
    let (_, eno1_now, _) = c.get(&format!("{ifaces}{e1}/"), &[]).await;
    assert_eq!(eno1_now["children"], json!(["bond0"]), "{eno1_now}");

    // A tagged VLAN with a subnet on the PXE VLAN's fabric.
    let fabric = eno1["vlan"]["fabric_id"]
        .as_u64()
        .expect("fabric")
        .to_string();
    let (s, vlan12, t) = c
        .post(
            &format!("fabrics/{fabric}/vlans/"),
            None,
            &[("vid", "12"), ("mtu", "1500")],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let vlan12 = vlan12["id"].to_string();
    let (s, _, t) = c
        .post(
            "subnets/",
            None,
            &[
                ("cidr", "10.12.0.0/24"),
                ("vlan", vlan12.as_str()),
                ("gateway_ip", "10.12.0.1"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");

    // VLAN interfaces: tagged VLANs only, one per parent and VLAN, never on a VLAN.
    let (s, v, t) = c
        .post(
            &ifaces,
            Some("create_vlan"),
            &[("parent", bond_id.as_str()), ("vlan", untagged.as_str())],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    assert!(
        v["vlan"][0].as_str().is_some_and(|m| m.contains("tagged")),
        "{t}"
    );
    let (s, v12, t) = c
        .post(
            &ifaces,
            Some("create_vlan"),
            &[("parent", bond_id.as_str()), ("vlan", vlan12.as_str())],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        (v12["name"].clone(), v12["type"].clone()),
        (json!("bond0.12"), json!("vlan"))
    );
    assert_eq!(v12["parents"], json!(["bond0"]));
    let (s, _, t) = c
        .post(
            &ifaces,
            Some("create_vlan"),
            &[("parent", bond_id.as_str()), ("vlan", vlan12.as_str())],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    let v12_id = v12["id"].to_string();
    let (s, _, t) = c
        .post(
            &ifaces,
            Some("create_vlan"),
            &[("parent", v12_id.as_str()), ("vlan", vlan12.as_str())],
        )
        .await;
    assert_eq!(s, 400, "{t}");

    // No link with a gateway yet; then a static address and the default route.
    let (s, _, t) = c
        .post(
            &format!("{ifaces}{v12_id}/"),
            Some("set_default_gateway"),
            &[],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    let (s, linked, t) = c
        .post(
            &format!("{ifaces}{v12_id}/"),
            Some("link_subnet"),
            &[
                ("mode", "STATIC"),
                ("subnet", "10.12.0.0/24"),
                ("ip_address", "10.12.0.10"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(linked["links"][0]["ip_address"], "10.12.0.10");
    let (s, _, t) = c
        .post(
            &format!("{ifaces}{v12_id}/"),
            Some("set_default_gateway"),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    let m = c.machine(&sid).await;
    assert_eq!(
        m["default_gateways"]["ipv4"]["gateway_ip"], "10.12.0.1",
        "{m}"
    );

    // A physical interface cannot be deleted; the bond can, with its VLAN.
    let (s, _, _) = c.delete(&format!("{ifaces}{e1}/")).await;
    assert_eq!(s, 400);
    let (s, _, t) = c.delete(&format!("{ifaces}{bond_id}/")).await;
    assert_eq!(s, 204, "{t}");
    let m = c.machine(&sid).await;
    let names: Vec<&str> = m["interface_set"]
        .as_array()
        .expect("interfaces")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["eno1", "eno2"]);
    assert_eq!(
        m["default_gateways"]["ipv4"]["gateway_ip"],
        Value::Null,
        "{m}"
    );

    // Bridges (BridgeInterfaceForm): one parent, not a bridge, not already in a bond
    // or a bridge; MAAS's defaults; VLAN interfaces may sit on it.
    let (s, v, t) = c
        .post(
            &ifaces,
            Some("create_bridge"),
            &[
                ("name", "br0"),
                ("parents", e1.as_str()),
                ("parents", e2.as_str()),
            ],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    assert!(
        v["parents"][0]
            .as_str()
            .is_some_and(|m| m.contains("exactly one parent")),
        "{t}"
    );
    let (s, v, t) = c
        .post(
            &ifaces,
            Some("create_bridge"),
            &[
                ("name", "br0"),
                ("parents", e1.as_str()),
                ("bridge_type", "linux"),
            ],
        )
        .await;
    assert_eq!(s, 400, "{t}");
    assert!(v["bridge_type"][0].is_string(), "{t}");
    let (s, br, t) = c
        .post(
            &ifaces,
            Some("create_bridge"),
            &[("name", "br0"), ("parent", e1.as_str())],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(br["type"], "bridge");
    assert_eq!(br["parents"], json!(["eno1"]));
    assert_eq!(br["params"]["bridge_type"], "standard");
    assert_eq!(br["params"]["bridge_stp"], false);
    assert_eq!(br["params"]["bridge_fd"], 15);
    assert_eq!(br["vlan"]["id"], eno1["vlan"]["id"]);
    let br_id = br["id"].to_string();
    for (name, parent) in [("br1", e1.as_str()), ("br2", br_id.as_str())] {
        let (s, _, t) = c
            .post(
                &ifaces,
                Some("create_bridge"),
                &[("name", name), ("parents", parent)],
            )
            .await;
        assert_eq!(s, 400, "{name} on {parent}: {t}");
    }
    let (s, _, t) = c
        .post(
            &ifaces,
            Some("create_bond"),
            &[
                ("name", "bond1"),
                ("parents", e1.as_str()),
                ("parents", e2.as_str()),
            ],
        )
        .await;
    assert_eq!(s, 400, "a bridge port cannot join a bond: {t}");
    let (s, vb, t) = c
        .post(
            &ifaces,
            Some("create_vlan"),
            &[("parent", br_id.as_str()), ("vlan", vlan12.as_str())],
        )
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(vb["name"], "br0.12");
}
