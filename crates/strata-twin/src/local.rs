//! One simulated DC served in process, without listeners, and requests decoded from
//! arbitrary bytes: what the API-handler fuzzers (`fuzz/fuzz_targets/twin_api.rs` and
//! the `tests/fuzz_requests.rs` property test) drive.
//!
//! A [`LocalDc`] holds the three services of one DC behind their routers, as `strata
//! twin` mounts them, minus the listeners and the fault layer. [`LocalDc::request`]
//! turns bytes into one well-formed HTTP request aimed at a route the service really
//! serves (method, path template with its parameters filled, query, headers, a form,
//! JSON or raw body, valid credentials most of the time), so that fuzzing reaches the
//! handlers instead of stopping at the router or the authentication check.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Response, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::counters::Counters;
use crate::faults::{FaultSpec, Faults};
use crate::{Credentials, DcContext, DcSeed, SeedMachine, SeedStorage, Service, Shared, Urls};

/// Which of a DC's services a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Maas = 0,
    Proxmox = 1,
    OpenStack = 2,
}

/// One DC's MAAS, Proxmox VE and OpenStack, served in process.
pub struct LocalDc {
    pub creds: Credentials,
    /// In `Target` order.
    services: [Served; 3],
    /// A Keystone token of the admin project, issued at start.
    os_token: String,
    /// Identifiers seen in the first list responses (machine ids, VM ids, node names,
    /// flavor and network ids, ...), used to fill path parameters.
    known: Vec<String>,
}

/// One service: its router and the routes it lists (computed once: the decoder picks
/// from them on every request).
struct Served {
    router: Router,
    routes: Vec<(String, String)>,
}

impl Served {
    fn new(service: Arc<dyn Service>) -> Served {
        Served {
            routes: service.routes(),
            router: service.router(),
        }
    }
}

/// The largest response body read back (a fuzzer only needs to consume it).
const BODY_LIMIT: usize = 16 << 20;

fn seed() -> DcSeed {
    DcSeed {
        name: "fz1".into(),
        machines: (0..2)
            .map(|i| SeedMachine {
                serial: format!("SN-FZ-{i}"),
                pxe_mac: format!("52:54:00:00:00:{i:02x}"),
                cpu_count: 16,
                memory_mib: 65536,
                storage_gb: 480,
                nics: vec![format!("52:54:00:00:00:{i:02x}")],
                gpus: Vec::new(),
                zone: None,
                ..SeedMachine::default()
            })
            .collect(),
        proxmox_nodes: vec!["pve1".into(), "pve2".into()],
        proxmox_storages: vec![SeedStorage {
            name: "local-zfs".into(),
            kind: "zfspool".into(),
            content: vec!["images".into(), "rootdir".into()],
        }],
        extra_vms: 1,
        kolla_config: Default::default(),
        compute_hosts: Vec::new(),
        boot_images: Vec::new(),
        controllers: Vec::new(),
        keystone_users: Vec::new(),
    }
}

impl LocalDc {
    /// A fresh DC (two enlisted machines, two Proxmox nodes with a template, an
    /// OpenStack region), deterministic for a given `rng_seed`.
    pub async fn new(rng_seed: u64) -> anyhow::Result<LocalDc> {
        let shared = Arc::new(Shared {
            clock: crate::Clock::system(),
            faults: Faults::new(FaultSpec::default(), rng_seed.max(1)),
            counters: Counters::default(),
            latency_ms: 0,
            timing: crate::Timing::default(),
            seed: rng_seed,
        });
        let base = "http://twin.invalid/fz1";
        let creds = Credentials {
            maas_api_key: "fzconsumer:fztoken:fzsecret".into(),
            proxmox_token_id: "strata@pve!twin".into(),
            proxmox_token_secret: "0b7a3a58-5f0e-4a43-9d7b-3c3f0f6b7e11".into(),
            proxmox_user: "root@pam".into(),
            proxmox_password: "fzpassword".into(),
            openstack_username: "admin".into(),
            openstack_password: "fzpassword".into(),
            openstack_project: "admin".into(),
        };
        let ctx = Arc::new(DcContext {
            name: "fz1".into(),
            index: 0,
            seed: seed(),
            creds: creds.clone(),
            urls: Urls {
                maas: format!("{base}/MAAS/"),
                proxmox: "https://twin.invalid:8006".into(),
                identity: format!("{base}/openstack/identity"),
                compute: format!("{base}/openstack/compute"),
                network: format!("{base}/openstack/network"),
                image: format!("{base}/openstack/image"),
                placement: format!("{base}/openstack/placement"),
            },
            shared,
            platform: Default::default(),
        });
        let maas = crate::maas::build(ctx.clone(), None)?;
        let proxmox = crate::proxmox::build(ctx.clone(), None)?;
        let openstack = crate::openstack::build(ctx, None)?;
        let services = [
            Served::new(maas),
            Served::new(proxmox),
            Served::new(openstack),
        ];
        let mut dc = LocalDc {
            creds,
            services,
            os_token: String::new(),
            known: Vec::new(),
        };
        dc.os_token = dc.issue_token().await?;
        dc.known = dc.harvest_ids().await;
        Ok(dc)
    }

    fn router(&self, t: Target) -> &Router {
        // `services` is in `Target` order.
        &self.services[t as usize].router
    }

    /// Every (method, path template) of a service.
    pub fn routes(&self, t: Target) -> &[(String, String)] {
        &self.services[t as usize].routes
    }

    /// Send one request and read the whole response body.
    pub async fn send(&self, t: Target, req: Request<Body>) -> (Response<()>, Vec<u8>) {
        let resp = match self.router(t).clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        (Response::from_parts(parts, ()), bytes)
    }

    async fn issue_token(&self) -> anyhow::Result<String> {
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.creds.openstack_username,
                "domain": {"id": "default"},
                "password": self.creds.openstack_password}}},
            "scope": {"project": {"name": self.creds.openstack_project, "domain": {"id": "default"}}}
        }});
        let req = Request::post("/identity/v3/auth/tokens")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))?;
        let (resp, _) = self.send(Target::OpenStack, req).await;
        resp.headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("Keystone issued no token ({})", resp.status()))
    }

    async fn harvest_ids(&self) -> Vec<String> {
        let lists = [
            (Target::Maas, "/api/2.0/machines/"),
            (Target::Maas, "/api/2.0/fabrics/"),
            (Target::Maas, "/api/2.0/subnets/"),
            (Target::Proxmox, "/api2/json/cluster/resources"),
            (Target::OpenStack, "/compute/v2.1/flavors"),
            (Target::OpenStack, "/network/v2.0/networks"),
            (Target::OpenStack, "/image/v2/images"),
            (Target::OpenStack, "/placement/resource_providers"),
            (Target::OpenStack, "/identity/v3/projects"),
        ];
        let mut out = Vec::new();
        for (t, path) in lists {
            let Ok(req) = self.authorized(t, Method::GET, path).body(Body::empty()) else {
                continue;
            };
            let (_, body) = self.send(t, req).await;
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                collect_ids(&v, &mut out);
            }
        }
        out.sort();
        out.dedup();
        out.truncate(96);
        out
    }

    fn authorized(&self, t: Target, method: Method, uri: &str) -> axum::http::request::Builder {
        let b = Request::builder().method(method).uri(uri);
        match t {
            Target::Maas => b.header(header::AUTHORIZATION, self.maas_auth()),
            Target::Proxmox => b.header(
                header::AUTHORIZATION,
                format!(
                    "PVEAPIToken={}={}",
                    self.creds.proxmox_token_id, self.creds.proxmox_token_secret
                ),
            ),
            Target::OpenStack => b.header("x-auth-token", self.os_token.as_str()),
        }
    }

    fn maas_auth(&self) -> String {
        let mut parts = self.creds.maas_api_key.splitn(3, ':');
        let (ck, tk, ts) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        format!(
            "OAuth oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", \
             oauth_consumer_key=\"{ck}\", oauth_token=\"{tk}\", oauth_signature=\"&{ts}\", \
             oauth_nonce=\"1\", oauth_timestamp=\"1\""
        )
    }

    /// Decode one request from arbitrary bytes (never fails; short input gives a
    /// simple request).
    pub fn request(&self, data: &[u8]) -> (Target, Request<Body>) {
        let mut r = Reader { data, pos: 0 };
        let target = match r.byte() % 3 {
            0 => Target::Maas,
            1 => Target::Proxmox,
            _ => Target::OpenStack,
        };
        let (method, template) = r
            .pick(self.routes(target))
            .cloned()
            .unwrap_or_else(|| ("GET".into(), "/".into()));
        let method = if r.byte().is_multiple_of(8) {
            r.pick(METHODS).copied().unwrap_or("GET").to_string()
        } else {
            method
        };
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);

        let (path, query) = match template.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (template.clone(), None),
        };
        let mut uri = String::new();
        for (i, seg) in path.split('/').enumerate() {
            if i > 0 {
                uri.push('/');
            }
            if seg.starts_with('{') && seg.ends_with('}') {
                let v = r.token(&self.known);
                uri.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
            } else {
                uri.push_str(seg);
            }
        }
        if uri.is_empty() {
            uri.push('/');
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            pairs.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        for _ in 0..r.byte() % 4 {
            let k = r.key();
            let v = r.token(&self.known);
            pairs.push((k, v));
        }
        if !pairs.is_empty() {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            uri.push('?');
            uri.push_str(&q);
        }

        let mut b = match r.byte() % 16 {
            0 => Request::builder().method(method).uri(uri.as_str()),
            1 => Request::builder()
                .method(method)
                .uri(uri.as_str())
                .header(header::AUTHORIZATION, r.raw())
                .header("x-auth-token", r.raw()),
            _ => self.authorized(target, method, &uri),
        };
        if r.byte().is_multiple_of(4) {
            let (name, value) = (r.pick(HEADERS).copied().unwrap_or("accept"), r.raw());
            b = b.header(name, value);
        }
        let body = match r.byte() % 4 {
            0 => Body::empty(),
            1 => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for _ in 0..r.byte() % 6 {
                    let (k, v) = (r.key(), r.token(&self.known));
                    form.append_pair(&k, &v);
                }
                b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form.finish())
            }
            2 => {
                let v = r.json(&self.known, 0);
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            _ => {
                let ct = r.pick(CONTENT_TYPES).copied().unwrap_or("text/plain");
                b = b.header(header::CONTENT_TYPE, ct);
                Body::from(r.rest())
            }
        };
        let req = b.body(body).unwrap_or_else(|_| {
            // A header value the builder refused: send the route bare instead.
            Request::get("/").body(Body::empty()).unwrap_or_default()
        });
        (target, req)
    }
}

/// Every string or number under an identifying key, anywhere in `v`.
fn collect_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let is_id = matches!(
                    k.as_str(),
                    "id" | "system_id" | "vmid" | "node" | "name" | "uuid" | "vid" | "storage"
                );
                match x {
                    Value::String(s) if is_id && s.len() <= 64 => out.push(s.clone()),
                    Value::Number(n) if is_id => out.push(n.to_string()),
                    _ => collect_ids(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_ids(x, out)),
        _ => {}
    }
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

const HEADERS: &[&str] = &[
    "accept",
    "openstack-api-version",
    "x-openstack-nova-api-version",
    "csrfpreventiontoken",
    "cookie",
    "if-match",
    "content-length",
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fz",
    "text/plain",
    "application/octet-stream",
];

/// Parameter and field names the three APIs use, so decoded bodies look like theirs.
const KEYS: &[&str] = &[
    "name",
    "id",
    "vmid",
    "newid",
    "node",
    "target",
    "full",
    "storage",
    "cores",
    "sockets",
    "memory",
    "net0",
    "scsi0",
    "ide2",
    "digest",
    "delete",
    "tags",
    "description",
    "template",
    "size",
    "disk",
    "sid",
    "state",
    "group",
    "upid",
    "hostname",
    "architecture",
    "mac_addresses",
    "power_type",
    "power_parameters_power_address",
    "cpu_count",
    "mem",
    "zone",
    "pool",
    "user_data",
    "distro_series",
    "vid",
    "dhcp_on",
    "primary_rack",
    "secondary_rack",
    "cidr",
    "gateway_ip",
    "start_ip",
    "end_ip",
    "type",
    "fabric",
    "vlan",
    "server",
    "flavor",
    "flavorRef",
    "imageRef",
    "networks",
    "ram",
    "vcpus",
    "extra_specs",
    "network",
    "provider:network_type",
    "provider:segmentation_id",
    "provider:physical_network",
    "subnet",
    "ip_version",
    "quota_set",
    "instances",
    "resource_class",
    "resource_classes",
    "inventories",
    "total",
    "reserved",
    "resource_provider_generation",
    "resources",
    "auth",
    "identity",
    "methods",
    "password",
    "user",
    "domain",
    "scope",
    "project",
    "token",
    "marker",
    "limit",
    "sort_key",
    "status",
    "enabled",
    "is_public",
    "op",
    "port",
    "fixed_ips",
    "availability_zone",
    "os:scheduler_hints",
];

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn pick<'t, T>(&mut self, items: &'t [T]) -> Option<&'t T> {
        if items.is_empty() {
            return None;
        }
        let i = usize::from(self.byte()) | usize::from(self.byte()) << 8;
        items.get(i % items.len())
    }

    fn raw(&mut self) -> String {
        let n = usize::from(self.byte() % 24);
        let start = self.pos.min(self.data.len());
        let end = (start + n).min(self.data.len());
        self.pos = start + n;
        String::from_utf8_lossy(&self.data[start..end]).into_owned()
    }

    fn rest(&mut self) -> Vec<u8> {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        self.data[start..].to_vec()
    }

    fn key(&mut self) -> String {
        if self.byte().is_multiple_of(8) {
            self.raw()
        } else {
            self.pick(KEYS).copied().unwrap_or("name").to_string()
        }
    }

    fn number(&mut self) -> i64 {
        let mut b = [0u8; 8];
        for x in b.iter_mut().take(usize::from(self.byte() % 9)) {
            *x = self.byte();
        }
        i64::from_le_bytes(b)
    }

    fn token(&mut self, known: &[String]) -> String {
        match self.byte() % 6 {
            0 => self.raw(),
            1 => self.number().to_string(),
            2 => [
                "", "0", "1", "-1", "true", "none", "9000", "100", "pve1", "default",
            ][usize::from(self.byte() % 10)]
            .to_string(),
            _ => self.pick(known).cloned().unwrap_or_else(|| "1".to_string()),
        }
    }

    fn json(&mut self, known: &[String], depth: u8) -> Value {
        match self.byte() % if depth >= 3 { 4 } else { 7 } {
            0 => Value::Null,
            1 => Value::Bool(self.byte().is_multiple_of(2)),
            2 => Value::from(self.number()),
            3 => Value::String(self.token(known)),
            4 => Value::Array(
                (0..self.byte() % 4)
                    .map(|_| self.json(known, depth + 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..self.byte() % 5)
                    .map(|_| (self.key(), self.json(known, depth + 1)))
                    .collect(),
            ),
        }
    }
}
