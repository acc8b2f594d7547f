//! Helpers shared by the OpenStack twin tests (included with `#[path]`; compiled on its
//! own as an empty test crate).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use strata_twin::{Clock, DcSeed, FaultSpec, RunningTwin, TwinOptions};

pub fn opts(dcs: &[&str], state_file: Option<PathBuf>) -> TwinOptions {
    TwinOptions {
        dcs: dcs
            .iter()
            .map(|n| DcSeed {
                name: n.to_string(),
                proxmox_nodes: vec!["pve1".into()],
                kolla_config: kolla_config(n),
                ..DcSeed::default()
            })
            .collect(),
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file,
        seed: 7,
        timing: Default::default(),
    }
}

/// The Kolla files these tests deploy each region with (what `strata render` writes
/// under `<dc>/kolla/`, trimmed to what the twin reads): the GPU alias (with the
/// resource class the tests' Placement queries name), the GPU host's device spec, and
/// the ML2 physnets: `physnet1` with a tenant range, `physnet2` for provider networks
/// only.
pub fn kolla_config(dc: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "config/nova.conf".to_string(),
            "[pci]\nalias = {\"name\": \"gpu-h100\", \"vendor_id\": \"10de\", \"product_id\": \"2330\", \"device_type\": \"type-PCI\", \"numa_policy\": \"preferred\", \"resource_class\": \"CUSTOM_GPU_H100\"}\n".to_string(),
        ),
        (
            format!("config/nova/{dc}-gpu-01.{dc}.example.net/nova.conf"),
            "[pci]\ndevice_spec = {\"vendor_id\": \"10de\", \"product_id\": \"2330\"}\n".to_string(),
        ),
        (
            "config/neutron/ml2_conf.ini".to_string(),
            "[ml2_type_vlan]\nnetwork_vlan_ranges = physnet1:1000:2999,physnet2\n\n[ml2_type_flat]\nflat_networks = physnet1\n".to_string(),
        ),
    ])
}

/// A twin on a virtual clock: builds, reboots and other transitions complete only when
/// a test advances it (as [`Cloud::wait_server`] does).
pub async fn start(dcs: &[&str]) -> RunningTwin {
    strata_twin::start_with_clock(opts(dcs, None), Clock::virtual_now())
        .await
        .expect("start twin")
}

/// A twin on the system clock, for real clients that poll in wall-clock time.
pub async fn start_system_clock(dcs: &[&str]) -> RunningTwin {
    strata_twin::start(opts(dcs, None))
        .await
        .expect("start twin")
}

/// A response: status, headers, body (JSON, a string for non-JSON bodies, or null).
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// A logged-in OpenStack client for one DC of a twin.
pub struct Cloud {
    pub http: reqwest::Client,
    pub dc: String,
    pub admin: String,
    pub auth_url: String,
    pub identity: String,
    pub compute: String,
    pub network: String,
    pub image: String,
    pub placement: String,
    pub token: String,
    pub project_id: String,
    pub user_id: String,
    pub username: String,
    pub password: String,
    pub token_body: Value,
    /// The twin's clock, which [`Cloud::wait_server`] moves between polls.
    pub clock: Clock,
}

pub async fn send(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Resp {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut rb = http.request(m, url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Resp {
        status,
        headers,
        body,
    }
}

pub fn password_auth(user: &str, password: &str, project: Option<&str>) -> Value {
    let mut auth = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}}}});
    if let Some(p) = project {
        auth["auth"]["scope"] = json!({"project": {"name": p, "domain": {"name": "Default"}}});
    }
    auth
}

fn catalog_url(token: &Value, kind: &str) -> String {
    token["token"]["catalog"]
        .as_array()
        .expect("catalog")
        .iter()
        .find(|s| s["type"] == kind)
        .and_then(|s| s["endpoints"].as_array())
        .and_then(|e| e.iter().find(|e| e["interface"] == "public"))
        .and_then(|e| e["url"].as_str())
        .unwrap_or_else(|| panic!("no {kind} endpoint"))
        .to_string()
}

impl Cloud {
    pub async fn login(twin: &RunningTwin, dc: &str) -> Cloud {
        let doc = twin.endpoints();
        let d = doc["dcs"]
            .as_array()
            .expect("dcs")
            .iter()
            .find(|d| d["name"] == dc)
            .expect("dc")
            .clone();
        let o = &d["openstack"];
        let username = o["username"].as_str().expect("user").to_string();
        let password = o["password"].as_str().expect("password").to_string();
        let project = o["project"].as_str().expect("project").to_string();
        Cloud::login_as(twin, dc, &username, &password, &project).await
    }

    /// Log in to one DC as `username` (domain Default) scoped to `project`.
    pub async fn login_as(
        twin: &RunningTwin,
        dc: &str,
        username: &str,
        password: &str,
        project: &str,
    ) -> Cloud {
        let doc = twin.endpoints();
        let d = doc["dcs"]
            .as_array()
            .expect("dcs")
            .iter()
            .find(|d| d["name"] == dc)
            .expect("dc")
            .clone();
        let o = &d["openstack"];
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let (username, password) = (username.to_string(), password.to_string());
        let auth_url = o["auth_url"].as_str().expect("auth_url").to_string();
        let r = send(
            &http,
            "POST",
            &format!("{auth_url}/auth/tokens"),
            &[],
            Some(&password_auth(&username, &password, Some(project))),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let token = r.header("x-subject-token").expect("X-Subject-Token");
        let tb = r.body;
        Cloud {
            http,
            dc: dc.to_string(),
            admin: format!("http://{}/_twin", twin.addr),
            clock: twin.clock().clone(),
            identity: auth_url.trim_end_matches("/v3").to_string(),
            auth_url,
            compute: catalog_url(&tb, "compute"),
            network: catalog_url(&tb, "network"),
            image: catalog_url(&tb, "image"),
            placement: catalog_url(&tb, "placement"),
            token,
            project_id: tb["token"]["project"]["id"]
                .as_str()
                .expect("project id")
                .to_string(),
            user_id: tb["token"]["user"]["id"]
                .as_str()
                .expect("user id")
                .to_string(),
            username,
            password,
            token_body: tb,
        }
    }

    /// A request with the token and, when given, a microversion header
    /// (`compute 2.60` or `placement 1.20`).
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        version: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut h: Vec<(&str, &str)> = vec![("x-auth-token", self.token.as_str())];
        if let Some(v) = version {
            h.push(("openstack-api-version", v));
        }
        send(&self.http, method, url, &h, body.as_ref()).await
    }

    pub async fn nova(&self, method: &str, path: &str, mv: &str, body: Option<Value>) -> Resp {
        let v = format!("compute {mv}");
        self.call(method, &format!("{}{path}", self.compute), Some(&v), body)
            .await
    }

    pub async fn neutron(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call(method, &format!("{}/v2.0{path}", self.network), None, body)
            .await
    }

    pub async fn glance(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call(method, &format!("{}/v2{path}", self.image), None, body)
            .await
    }

    pub async fn placement(&self, method: &str, path: &str, mv: &str, body: Option<Value>) -> Resp {
        let v = format!("placement {mv}");
        self.call(method, &format!("{}{path}", self.placement), Some(&v), body)
            .await
    }

    pub async fn keystone(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call(method, &format!("{}{path}", self.auth_url), None, body)
            .await
    }

    /// POST to the twin's admin API.
    pub async fn twin_admin(&self, method: &str, path: &str, body: Value) -> Resp {
        send(
            &self.http,
            method,
            &format!("{}{path}", self.admin),
            &[],
            Some(&body),
        )
        .await
    }

    /// Poll a server until its status is one of `want`, moving the twin's clock 100 ms
    /// between polls (or panic after 20 s of twin time).
    pub async fn wait_server(&self, id: &str, want: &[&str]) -> Value {
        for _ in 0..200 {
            let r = self
                .nova("GET", &format!("/servers/{id}"), "2.1", None)
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            let s = r.body["server"]["status"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if want.contains(&s.as_str()) {
                return r.body["server"].clone();
            }
            self.clock.advance(Duration::from_millis(100));
        }
        panic!("server {id} never reached {want:?}");
    }
}
