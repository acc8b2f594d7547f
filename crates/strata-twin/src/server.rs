//! Listeners, routing, the fault/counter layer and state persistence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::counters::{CallLabels, Counters};
use crate::faults::{Faults, Injected};
use crate::{Clock, Credentials, DcContext, Service, Shared, TwinOptions, Urls};

/// One DC's services.
pub struct DcRuntime {
    pub ctx: Arc<DcContext>,
    pub maas: Arc<dyn Service>,
    pub proxmox: Arc<dyn Service>,
    pub openstack: Arc<dyn Service>,
}

/// Everything the admin API and the listeners share.
pub struct TwinState {
    pub shared: Arc<Shared>,
    pub dcs: Vec<DcRuntime>,
    pub state_file: Option<PathBuf>,
    pub ca_pem: String,
    pub admin_url: String,
    ca_file: parking_lot::Mutex<Option<PathBuf>>,
}

#[derive(Serialize, Deserialize)]
struct SavedDc {
    name: String,
    creds: Credentials,
    maas: serde_json::Value,
    proxmox: serde_json::Value,
    openstack: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    dcs: Vec<SavedDc>,
}

impl TwinState {
    pub fn service(&self, dc: &str, service: &str) -> Option<&Arc<dyn Service>> {
        let d = self.dcs.iter().find(|d| d.ctx.name == dc)?;
        match service {
            "maas" => Some(&d.maas),
            "proxmox" => Some(&d.proxmox),
            "openstack" => Some(&d.openstack),
            _ => None,
        }
    }

    /// The endpoints document clients consume (`--write-endpoints`).
    pub fn endpoints_document(&self) -> serde_json::Value {
        let ca_file = self.ca_file.lock().clone();
        let dcs: Vec<_> = self
            .dcs
            .iter()
            .map(|d| {
                let c = &d.ctx.creds;
                let u = &d.ctx.urls;
                json!({
                    "name": d.ctx.name,
                    "maas": {"url": u.maas, "api_key": c.maas_api_key},
                    "proxmox": {
                        "url": u.proxmox,
                        "token_id": c.proxmox_token_id,
                        "token_secret": c.proxmox_token_secret,
                        "user": c.proxmox_user,
                        "password": c.proxmox_password,
                        "ca_file": ca_file.as_ref().map(|p| p.display().to_string()),
                        // PVE upgrades run in a shell on the node; the twin's admin
                        // API stands for that shell (`node-upgrade`).
                        "upgrade_command": format!(
                            "v=${{STRATA_VERSION:+\\\"$STRATA_VERSION\\\"}}; curl -fsS -X POST -H 'content-type: application/json' --data \"{{\\\"kind\\\":\\\"node-upgrade\\\",\\\"id\\\":\\\"$STRATA_NODE\\\",\\\"set\\\":{{\\\"version\\\":${{v:-null}}}}}}\" {}/dcs/{}/proxmox/mutate",
                            self.admin_url.trim_end_matches('/'),
                            d.ctx.name
                        ),
                    },
                    "openstack": {
                        "auth_url": format!("{}/v3", u.identity),
                        "region": d.ctx.name,
                        "username": c.openstack_username,
                        "password": c.openstack_password,
                        "project": c.openstack_project,
                        "user_domain": "Default",
                        "project_domain": "Default",
                    },
                })
            })
            .collect();
        json!({"dcs": dcs, "twin": {"admin": self.admin_url}})
    }

    /// Write the state file (when the twin has one).
    pub fn save(&self) -> Result<Option<PathBuf>> {
        let Some(path) = &self.state_file else {
            return Ok(None);
        };
        let saved = Saved {
            version: 1,
            dcs: self
                .dcs
                .iter()
                .map(|d| SavedDc {
                    name: d.ctx.name.clone(),
                    creds: d.ctx.creds.clone(),
                    maas: d.maas.save(),
                    proxmox: d.proxmox.save(),
                    openstack: d.openstack.save(),
                })
                .collect(),
        };
        let text = serde_json::to_string(&saved)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(Some(path.clone()))
    }
}

/// A running twin.
pub struct RunningTwin {
    pub state: Arc<TwinState>,
    pub addr: SocketAddr,
    pub proxmox_addrs: Vec<SocketAddr>,
    shutdown: tokio::sync::watch::Sender<bool>,
    proxmox_handles: Vec<axum_server::Handle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningTwin {
    /// The clock every service of this twin reads.
    pub fn clock(&self) -> &Clock {
        &self.state.shared.clock
    }

    pub fn endpoints(&self) -> serde_json::Value {
        self.state.endpoints_document()
    }

    /// Write the endpoints document to `path`, the CA beside it (`twin-ca.pem`) and a
    /// `clouds.yaml` for the `openstack` CLI (one cloud per DC, named after it).
    pub fn write_endpoints(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let ca = dir.join("twin-ca.pem");
        std::fs::write(&ca, &self.state.ca_pem)
            .with_context(|| format!("writing {}", ca.display()))?;
        *self.state.ca_file.lock() = Some(ca);
        let doc = self.endpoints();
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        let mut clouds =
            String::from("# Written by `strata twin`: one cloud per simulated DC.\nclouds:\n");
        for d in doc["dcs"].as_array().into_iter().flatten() {
            let o = &d["openstack"];
            let q = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
            clouds.push_str(&format!(
                "  {name}:\n    auth:\n      auth_url: {auth}\n      username: {user}\n      password: {pass}\n      project_name: {proj}\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: {region}\n    identity_api_version: 3\n    interface: public\n",
                name = q(&d["name"]),
                auth = q(&o["auth_url"]),
                user = q(&o["username"]),
                pass = q(&o["password"]),
                proj = q(&o["project"]),
                region = q(&o["region"]),
            ));
        }
        std::fs::write(dir.join("clouds.yaml"), clouds)?;
        Ok(())
    }

    /// Stop serving and save the state file.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        for h in &self.proxmox_handles {
            h.graceful_shutdown(Some(Duration::from_secs(2)));
        }
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        self.state.save()?;
        Ok(())
    }
}

fn random_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn new_credentials() -> Credentials {
    let r = || random_secret();
    Credentials {
        maas_api_key: format!("{}:{}:{}", &r()[..18], &r()[..18], r()),
        proxmox_token_id: "strata@pve!twin".into(),
        proxmox_token_secret: uuid::Uuid::new_v4().to_string(),
        proxmox_user: "root@pam".into(),
        proxmox_password: r(),
        openstack_username: "admin".into(),
        openstack_password: r(),
        openstack_project: "admin".into(),
    }
}

/// Start a twin on the system clock: bind every listener, build every DC's services,
/// serve.
pub async fn start(opts: TwinOptions) -> Result<RunningTwin> {
    start_with_clock(opts, Clock::system()).await
}

/// Start a twin whose services read time from `clock` (a virtual clock in tests, so
/// that asynchronous behaviour is driven by [`Clock::advance`] instead of sleeping).
pub async fn start_with_clock(opts: TwinOptions, clock: Clock) -> Result<RunningTwin> {
    let saved: Option<Saved> = match &opts.state_file {
        Some(p) if p.exists() => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a twin state file", p.display()))?,
            )
        }
        _ => None,
    };
    let shared = Arc::new(Shared {
        clock,
        faults: Faults::new(opts.faults.clone(), opts.seed),
        counters: Counters::default(),
        latency_ms: opts.latency_ms,
        timing: opts.timing,
        seed: opts.seed,
    });

    let main = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    let addr = main.local_addr()?;
    let mut pve_listeners = Vec::new();
    for i in 0..opts.dcs.len() {
        let port = if opts.listen.port() == 0 {
            0
        } else {
            opts.listen.port().saturating_add(1 + i as u16)
        };
        let l = std::net::TcpListener::bind(SocketAddr::new(opts.listen.ip(), port))
            .with_context(|| format!("binding the Proxmox listener on port {port}"))?;
        l.set_nonblocking(true)?;
        pve_listeners.push(l);
    }
    let proxmox_addrs: Vec<SocketAddr> = pve_listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<std::io::Result<_>>()?;
    let tls = crate::tls::generate(&[])?;
    let host = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let base = format!("http://{host}:{}", addr.port());

    let mut dcs = Vec::new();
    for (i, seed) in opts.dcs.iter().enumerate() {
        let saved_dc = saved
            .as_ref()
            .and_then(|s| s.dcs.iter().find(|d| d.name == seed.name));
        let creds = saved_dc
            .map(|d| d.creds.clone())
            .unwrap_or_else(new_credentials);
        let dc = &seed.name;
        let urls = Urls {
            maas: format!("{base}/{dc}/MAAS/"),
            proxmox: format!("https://{host}:{}", proxmox_addrs[i].port()),
            identity: format!("{base}/{dc}/openstack/identity"),
            compute: format!("{base}/{dc}/openstack/compute"),
            network: format!("{base}/{dc}/openstack/network"),
            image: format!("{base}/{dc}/openstack/image"),
            placement: format!("{base}/{dc}/openstack/placement"),
        };
        let ctx = Arc::new(DcContext {
            name: dc.clone(),
            index: i,
            seed: seed.clone(),
            creds,
            urls,
            shared: shared.clone(),
            platform: Default::default(),
        });
        let maas = crate::maas::build(ctx.clone(), saved_dc.map(|d| d.maas.clone()))
            .with_context(|| format!("MAAS of {dc}"))?;
        let proxmox = crate::proxmox::build(ctx.clone(), saved_dc.map(|d| d.proxmox.clone()))
            .with_context(|| format!("Proxmox of {dc}"))?;
        let openstack = crate::openstack::build(ctx.clone(), saved_dc.map(|d| d.openstack.clone()))
            .with_context(|| format!("OpenStack of {dc}"))?;
        dcs.push(DcRuntime {
            ctx,
            maas,
            proxmox,
            openstack,
        });
    }

    let state = Arc::new(TwinState {
        shared: shared.clone(),
        dcs,
        state_file: opts.state_file.clone(),
        ca_pem: tls.ca_pem.clone(),
        admin_url: format!("{base}/_twin/"),
        ca_file: parking_lot::Mutex::new(None),
    });

    let mut app = Router::new().nest("/_twin", crate::admin::router(state.clone()));
    for d in &state.dcs {
        let dc = &d.ctx.name;
        app = app
            .nest(
                &format!("/{dc}/MAAS"),
                vendor(d.maas.clone(), &shared, dc, &format!("/{dc}/MAAS")),
            )
            .nest(
                &format!("/{dc}/openstack"),
                vendor(
                    d.openstack.clone(),
                    &shared,
                    dc,
                    &format!("/{dc}/openstack"),
                ),
            );
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut rx_main = rx.clone();
    tasks.push(tokio::spawn(async move {
        let _ = axum::serve(main, app)
            .with_graceful_shutdown(async move {
                let _ = rx_main.wait_for(|v| *v).await;
            })
            .await;
    }));
    let mut proxmox_handles = Vec::new();
    for (d, listener) in state.dcs.iter().zip(pve_listeners) {
        let router = vendor(d.proxmox.clone(), &shared, &d.ctx.name, "");
        let handle = axum_server::Handle::new();
        proxmox_handles.push(handle.clone());
        let config = axum_server::tls_rustls::RustlsConfig::from_config(tls.server.clone());
        let server = axum_server::from_tcp_rustls(listener, config).handle(handle);
        tasks.push(tokio::spawn(async move {
            let _ = server.serve(router.into_make_service()).await;
        }));
    }
    Ok(RunningTwin {
        state,
        addr,
        proxmox_addrs,
        shutdown: tx,
        proxmox_handles,
        tasks,
    })
}

/// Tag carried by the vendor layer.
struct LayerTag {
    shared: Arc<Shared>,
    dc: String,
    service: &'static str,
    prefix: String,
}

/// A service's router wrapped in the latency, fault and counter layer.
fn vendor(svc: Arc<dyn Service>, shared: &Arc<Shared>, dc: &str, prefix: &str) -> Router {
    let tag = Arc::new(LayerTag {
        shared: shared.clone(),
        dc: dc.to_string(),
        service: svc.name(),
        prefix: prefix.to_string(),
    });
    svc.router()
        .route_layer(middleware::from_fn_with_state(tag, vendor_layer))
}

async fn vendor_layer(
    State(tag): State<Arc<LayerTag>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let _in_flight = tag.shared.counters.enter(&tag.dc, tag.service);
    if tag.shared.latency_ms > 0 {
        let latency = tag.shared.timing.scaled_latency(tag.shared.latency_ms);
        tokio::time::sleep(latency).await;
    }
    let method = req.method().to_string();
    let route = matched
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let mut route = route
        .strip_prefix(&tag.prefix)
        .unwrap_or(&route)
        .to_string();
    // MAAS multiplexes actions on one path by `op` (commission, deploy, release...):
    // counted apart, so a test can tell how often each action was sent.
    if let Some(op) = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("op="))
            .filter(|op| op.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    }) {
        route.push_str("?op=");
        route.push_str(op);
    }
    let resp = match tag.shared.faults.roll() {
        Injected::None => next.run(req).await,
        Injected::ServerError => injected_error(tag.service, StatusCode::SERVICE_UNAVAILABLE),
        Injected::TooManyRequests => {
            let mut r = injected_error(tag.service, StatusCode::TOO_MANY_REQUESTS);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Injected::Timeout => {
            tokio::time::sleep(Duration::from_millis(tag.shared.faults.timeout_ms())).await;
            injected_error(tag.service, StatusCode::GATEWAY_TIMEOUT)
        }
        Injected::Drop => {
            let stream = futures::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
                    "connection dropped by the twin",
                ))
            });
            Response::builder()
                .status(StatusCode::OK)
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    };
    let status = resp.status().as_u16();
    tag.shared.counters.record(CallLabels {
        dc: tag.dc.clone(),
        service: tag.service.to_string(),
        method,
        route,
        status: format!("{}xx", status / 100),
    });
    resp
}

/// An injected error in the vendor's own error format.
fn injected_error(service: &str, status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("error");
    match service {
        // Proxmox: message in the reason phrase, `{"data": null}` body.
        "proxmox" => {
            let mut r = (status, axum::Json(json!({"data": null}))).into_response();
            if let Ok(p) = hyper::ext::ReasonPhrase::try_from(format!("{reason} (injected by the twin)").into_bytes()) {
                r.extensions_mut().insert(p);
            }
            r
        }
        // MAAS (Django/Piston): plain text.
        "maas" => (status, format!("{reason} (injected by the twin)")).into_response(),
        // OpenStack: a JSON error document.
        _ => (
            status,
            axum::Json(json!({"error": {"code": status.as_u16(), "title": reason, "message": "injected by the twin"}})),
        )
            .into_response(),
    }
}
