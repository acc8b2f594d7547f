//! The MAAS region API (2.0) of one simulated DC, as python-libmaas, the MAAS CLI and
//! Go clients see it under `http://ADDR/<dc>/MAAS/`.
//!
//! - Auth: OAuth 1.0 PLAINTEXT with the DC's API key (`consumer:token:secret`); the
//!   describe document and the version endpoints are anonymous.
//! - `op` travels in the query string; POST/PUT bodies are multipart (python-libmaas,
//!   base64 parts included) or urlencoded (Go); keys repeat for lists.
//! - Machines follow MAAS's status machine with its numeric codes; transitions that
//!   take time in MAAS (commissioning, testing, deploying, releasing, disk erasing)
//!   complete asynchronously, evaluated lazily against the wall clock so that saved
//!   state resumes where it was.
//! - Release erases the disks (Disk erasing, then Ready) when asked (`erase=true`) or
//!   when the configuration says so (`enable_disk_erasing_on_release`);
//!   `secure_erase`/`quick_erase` only choose how (unset: the `disk_erase_with_*`
//!   configuration), as node.py `release_or_erase` does. Completed erasures are in
//!   `summary()["disk_erasures"]` (by serial: `full`, `quick`, `secure`,
//!   `secure+quick`).
//! - What happens to a machine's operating system (a deployment completed, a deployed
//!   machine powered on, off, released or erased) reaches the DC's Proxmox VE cluster
//!   and OpenStack region as its role says (`platforms.rs`, [`crate::platform`]).
//! - Hardware is exposed on the machine (`cpu_count`, `memory`, `storage`,
//!   `numanode_set`, `hardware_info`, block devices, interfaces), per device through
//!   `GET /api/2.0/nodes/{system_id}/devices/` (MAAS 3.x node devices), through
//!   commissioning script results (`/nodes/{system_id}/results/`) and as BSON
//!   lshw/lldp via `op=details`.
//! - Scripts (`/api/2.0/scripts/`, `scripts.rs`): the builtins and uploaded ones;
//!   an uploaded commissioning (or testing) script really runs when its phase ends,
//!   against a fake sysfs of the machine (`sysfs.rs`), and its output, exit status
//!   and status are its result's.
//!
//! # Hardware as commissioning reports it
//!
//! Seed machines are enlisted New with their hardware already known (MAAS runs the
//! commissioning scripts during enlistment); commissioning re-reports it, with the
//! `gpu_degraded`/`memory_missing` faults applied, and records what it found of the
//! NIC ports on the interfaces with their MACs. Machines created through the API
//! without a seed behind their MAC have no hardware until commissioned. Where each
//! fact shows is where MAAS 3.x shows it (canonical/maas
//! src/metadataserver/builtin_scripts/hooks.py `process_lxd_results` reads them
//! from LXD's resources document; src/maasserver/api/machines.py,
//! src/maasserver/api/nodes.py, src/maasserver/api/interfaces.py,
//! src/maasserver/api/nodedevices.py render them):
//!
//! - Machine (`GET /api/2.0/machines/{system_id}/`, and each machine of the
//!   listing): `cpu_count`, `cpu_speed` (MHz: the model's ` @ x.xxGHz`, else the
//!   turbo frequency), `memory` (MiB), `storage` (MB, float), `hardware_info.
//!   {system_vendor, system_product, system_family, system_version, system_sku,
//!   system_serial, cpu_model (without ` @ ...`), mainboard_{vendor, product, serial,
//!   version}, mainboard_firmware_{vendor, date, version} (the BIOS), chassis_{vendor,
//!   type, serial, version}}`, `numanode_set: [{index, cores: [cpu ids], memory (MiB),
//!   hugepages_set: []}]`, `physicalblockdevice_set`/`blockdevice_set`/`boot_disk`
//!   (`name`, `size` bytes, `model`, `serial`, ...), `interface_set`/`boot_interface`.
//! - Interfaces (there and `GET /nodes/{system_id}/interfaces/`): `name`,
//!   `mac_address`, `vendor`, `product`, `interface_speed` (Mbit/s, the fastest mode
//!   the port supports), `link_speed` (Mbit/s negotiated, 0 when down),
//!   `link_connected`, `numa_node`, `vlan`, `links`.
//! - Devices (`GET /api/2.0/nodes/{system_id}/devices/[?hardware_type=gpu|network]`):
//!   `[{id, bus: 1, bus_name: "PCIE", hardware_type: 5 (GPU) | 4 (network),
//!   hardware_type_name, system_id, numa_node, vendor_id ("10de"), product_id
//!   ("2330"), vendor_name, product_name (the model), commissioning_driver,
//!   pci_address ("0000:18:00.0"), physical_interface, physical_blockdevice,
//!   bus_number, device_number, resource_uri}]`. MAAS records no PCIe link state:
//!   generation and width are read by a commissioning script from sysfs.
//! - Script results (`GET /api/2.0/nodes/{system_id}/results/?type=commissioning&include_output=1`):
//!   script sets with `results[].{name, status, status_name, exit_status,
//!   script_id, script_revision_id, output, stdout, stderr, result (base64)}`, sorted
//!   by name; `50-maas-01-commissioning` and `20-maas-03-machine-resources` carry the
//!   machine-resources document (LXD resources: `resources.{cpu, memory.nodes,
//!   gpu.cards, network.cards[].ports, storage, pci.devices, system}`), `maas-lshw`
//!   the lshw XML; an uploaded script's streams are what it printed.
//! - `GET /api/2.0/machines/{system_id}/?op=details`: BSON
//!   `{"lshw": Binary(XML), "lldp": Binary(XML)}` (`application/bson`), as MAAS sends.
//!
//! A seed's `commissioning_fails` makes every commissioning of the machine fail
//! (Failed commissioning, status 2, `50-maas-01-commissioning` exiting 1); an
//! uploaded script that exits non-zero or runs past its timeout fails its
//! commissioning the same way (MAAS's `_process_commissioning`), though MAAS still
//! records the hardware the builtins reported.
//!
//! # Storage
//!
//! Each machine has MAAS's storage model over its reported disks (`storage.rs`):
//! GPT partitions, RAIDs (`raid-0|1|5|6|10`) with their virtual `md` block devices,
//! and filesystems, with MAAS's sizes, `used_for` strings, state rules and refusals.
//! Commissioning clears it and ends with MAAS's default layout (flat: a fat32 EFI
//! partition at `/boot/efi` and ext4 `/` on the boot disk); `set_storage_layout
//! blank|flat` replaces it; `/nodes/{system_id}/blockdevices/`, `.../partitions/`,
//! `.../partition/{id}` and `/nodes/{system_id}/raids/`, `/raid/{id}/` change it;
//! allocation works on copies of the filesystems that release drops; a deploy
//! without `/` is refused. The machine's `raids` lists references
//! (`{system_id, id, __incomplete__}`) as MAAS's does; the RAIDs' devices, members
//! (`used_for: "Active raid-1 device for md0"`) and filesystems are in
//! `blockdevice_set`.
//!
//! Per-object faults (`POST /_twin/faults/object` with service `maas` and the machine's
//! system id, serial or hostname as id): `commission_fails`, `testing_fails`,
//! `deploy_fails`, `release_fails`, `erase_fails`, `gpu_degraded` (the first GPU's link
//! trains narrower and slower: x8 — or half the width when that is 8 or less — and one
//! generation lower, as sysfs shows it to a commissioning script),
//! `memory_missing` (commissioning reports 3/4 of the memory, missing from the last
//! NUMA node),
//! `power_fails` (power actions answer 503) and `error_500` (by system id: any request
//! on that machine's URLs answers 500). Faults without `times` fire until cleared.

// Handlers answer errors as ready HTTP responses (`Result<_, Response>`): the error
// *is* the vendor-format reply, so it is not boxed.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::core::Route;
use crate::{DcContext, MutateRequest, Service};

mod api;
mod bson;
mod dns;
mod http;
mod machines;
mod misc;
mod model;
mod network;
mod platforms;
mod render;
mod reservedips;
mod scripts;
mod seed;
mod storage;
mod sysfs;

pub use api::{Endpoint, HANDLERS, Handler, routes};

use http::{ApiKey, Params, Req};
use model::State;

/// The MAAS version the twin reports.
pub const MAAS_VERSION: &str = "3.5.4";
const MAAS_SUBVERSION: &str = "16237-g.e4ad8e5b1";

/// Routes served outside the 2.0 handler catalogue (and outside the OpenAPI
/// document, which only describes `/api/2.0/` operations): the anonymous describe
/// document and the plain-text API version.
pub const META_ROUTES: &[(&str, &str)] = &[("GET", "/api/2.0/describe/"), ("GET", "/api/version/")];

/// Configuration items `op=get_config` knows, with their fresh-site values (JSON).
pub const DEFAULT_CONFIG: &[(&str, &str)] = &[
    ("maas_name", "\"maas\""),
    ("theme", "\"\""),
    ("default_osystem", "\"ubuntu\""),
    ("default_distro_series", "\"noble\""),
    ("commissioning_distro_series", "\"noble\""),
    ("default_min_hwe_kernel", "\"\""),
    ("default_storage_layout", "\"flat\""),
    ("enable_disk_erasing_on_release", "false"),
    ("disk_erase_with_secure_erase", "false"),
    ("disk_erase_with_quick_erase", "false"),
    ("enable_third_party_drivers", "true"),
    ("enable_http_proxy", "true"),
    ("use_peer_proxy", "false"),
    ("http_proxy", "null"),
    ("upstream_dns", "\"\""),
    ("dnssec_validation", "\"auto\""),
    ("dns_trusted_acl", "\"\""),
    ("ntp_servers", "\"ntp.ubuntu.com\""),
    ("ntp_external_only", "false"),
    ("kernel_opts", "\"\""),
    ("network_discovery", "\"enabled\""),
    ("active_discovery_interval", "10800"),
    ("maas_internal_domain", "\"maas-internal\""),
    ("completed_intro", "true"),
    ("max_node_commissioning_results", "10"),
    ("max_node_testing_results", "10"),
    ("max_node_installation_results", "3"),
    ("node_timeout", "30"),
    ("release_notifications", "true"),
    ("use_rack_proxy", "true"),
    ("remote_syslog", "null"),
    ("maas_proxy_port", "8000"),
    ("prefer_v4_proxy", "false"),
    ("boot_images_auto_import", "true"),
    ("enable_analytics", "false"),
    ("curtin_verbose", "true"),
    ("default_dns_ttl", "30"),
    ("windows_kms_host", "null"),
    ("vcenter_server", "\"\""),
    ("hardware_sync_interval", "\"15m\""),
    ("session_length", "1209600"),
];

struct Inner {
    st: State,
    ids: seed::Ids,
}

/// One DC's MAAS.
pub struct Maas {
    ctx: Arc<DcContext>,
    key: Option<ApiKey>,
    /// API prefix for resource URIs: the script prefix (e.g. `/fra1/MAAS/`) + `api/2.0/`.
    api: String,
    /// Origin (`http://host:port`) from the configured URL.
    origin: String,
    inner: Mutex<Inner>,
    /// Seed machines by normalised PXE MAC (a machine created with such a MAC is that
    /// hardware).
    seed_by_mac: std::collections::HashMap<String, usize>,
}

/// Build this DC's MAAS service (from saved state when given).
pub fn build(
    ctx: Arc<DcContext>,
    saved: Option<serde_json::Value>,
) -> anyhow::Result<Arc<dyn Service>> {
    let maas = Arc::new(Maas::new(ctx, saved)?);
    maas.connect_platforms();
    Ok(maas)
}

impl Maas {
    fn new(ctx: Arc<DcContext>, saved: Option<Value>) -> anyhow::Result<Self> {
        let url = url::Url::parse(&ctx.urls.maas)
            .map_err(|e| anyhow::anyhow!("MAAS URL {}: {e}", ctx.urls.maas))?;
        let mut prefix = url.path().to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let origin = url.origin().ascii_serialization();
        let seed_value = ctx.shared.faults.random_u64() ^ fnv(&ctx.name);
        let (st, ids) = match saved {
            Some(v) if !v.is_null() => {
                let mut st: State = serde_json::from_value(v)
                    .map_err(|e| anyhow::anyhow!("saved MAAS state: {e}"))?;
                st.reindex();
                let ids = seed::Ids::new(st.rng_state ^ seed_value);
                (st, ids)
            }
            _ => {
                let mut ids = seed::Ids::new(seed_value);
                let now = ctx.shared.clock.now_ms();
                let st = seed::fresh(&ctx.seed, &mut ids, now);
                (st, ids)
            }
        };
        let seed_by_mac = ctx
            .seed
            .machines
            .iter()
            .enumerate()
            .filter_map(|(i, m)| model::normalize_mac(&m.pxe_mac).map(|mac| (mac, i)))
            .collect();
        Ok(Maas {
            key: ApiKey::parse(&ctx.creds.maas_api_key),
            api: format!("{prefix}api/2.0/"),
            origin,
            ctx,
            inner: Mutex::new(Inner { st, ids }),
            seed_by_mac,
        })
    }

    /// Complete every transition that is due; a machine whose commissioning ended
    /// gets MAAS's default storage layout.
    ///
    /// Every handler calls this first, under the lock, so phases start only right
    /// after the due ones ended: the machines found in an active phase here were all
    /// in it together when the last of them started. That count is recorded as the
    /// DC's concurrent provisions (before and after completing), so its peak is exact
    /// although phases end lazily.
    fn advance(&self, inner: &mut Inner) {
        let now = self.now_ms();
        let pace = self.pace();
        let active = |st: &State| {
            st.machines
                .values()
                .filter(|m| {
                    m.pending
                        .as_ref()
                        .is_some_and(|p| machines::is_active(p.phase))
                })
                .count() as u64
        };
        let before = active(&inner.st);
        let mut commissioned = Vec::new();
        for m in inner.st.machines.values_mut() {
            if m.pending.is_some()
                && machines::advance(m, &self.ctx.shared.faults, &self.ctx.name, now, pace)
            {
                commissioned.push(m.id);
            }
        }
        for id in commissioned {
            machines::apply_default_layout(&mut inner.st, id);
        }
        let counters = &self.ctx.shared.counters;
        counters.maas_active(&self.ctx.name, before);
        counters.maas_active(&self.ctx.name, active(&inner.st));
    }

    /// Milliseconds since the epoch, on the twin's clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.ctx.shared.clock.now_ms()
    }

    /// How a phase started now is timed.
    fn pace(&self) -> machines::Pace {
        machines::Pace {
            slow: self.ctx.shared.faults.slow_task(),
            timing: self.ctx.shared.timing,
            seed: self.ctx.shared.seed,
        }
    }

    /// Is a per-object fault set on this id (without consuming it)?
    fn fault(&self, ids: &[&str], names: &[&str]) -> Option<String> {
        for id in ids {
            if id.is_empty() {
                continue;
            }
            if let Some(f) = self
                .ctx
                .shared
                .faults
                .peek_object(&self.ctx.name, "maas", id)
                && names.contains(&f.as_str())
            {
                self.ctx
                    .shared
                    .faults
                    .take_object(&self.ctx.name, "maas", id);
                return Some(f);
            }
        }
        None
    }

    /// Serve a request to `template` (a path below `/api/2.0`) with the route of its
    /// method and `op` among `routes`, all the routes of that path.
    async fn dispatch(
        self: Arc<Self>,
        template: Arc<str>,
        routes: Arc<[Route<Endpoint>]>,
        req: Request,
    ) -> Response {
        let path = req.uri().path().to_string();
        let forwarded_host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(|h| {
                format!(
                    "{}://{h}",
                    self.origin.split("://").next().unwrap_or("http")
                )
            });
        let (method, query, body, headers) = match http::read_request(req).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let op = query
            .get("op")
            .or_else(|| body.get("op"))
            .map(str::to_string);
        let allowed: Vec<&str> = routes.iter().map(|r| r.method.as_str()).collect();
        if !allowed.contains(&method.as_str()) {
            let mut uniq = allowed.clone();
            uniq.sort();
            uniq.dedup();
            let mut r = StatusCode::METHOD_NOT_ALLOWED.into_response();
            if let Ok(v) = HeaderValue::from_str(&uniq.join(", ")) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            return r;
        }
        if !routes.iter().all(|r| r.handler.anon) {
            match &self.key {
                Some(key) => {
                    if let Err(r) = http::check_auth(&headers, &query, key) {
                        return r;
                    }
                }
                None => {
                    return http::text(
                        StatusCode::UNAUTHORIZED,
                        "Authorization Error: no API key configured",
                    );
                }
            }
        }
        let Some(route) = routes
            .iter()
            .find(|r| r.method.as_str() == method && r.op == op.as_deref())
        else {
            return http::bad_request(&format!(
                "Unrecognised signature: method={} op={}",
                method,
                op.as_deref().unwrap_or("None")
            ));
        };
        let mut params = Params::default();
        for (k, v) in query.0.into_iter().chain(body.0) {
            if k != "op" && !k.starts_with("oauth_") {
                params.0.push((k, v));
            }
        }
        let r = Req {
            method,
            op,
            path: api::match_path(&template, &path),
            params,
            origin: forwarded_host,
        };
        if let Some(sid) = r.path.get("system_id")
            && self.fault(&[sid.as_str()], &["error_500"]).is_some()
        {
            return http::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error (injected by the twin)",
            );
        }
        let resp = (route.handler.run)(&self, &r);
        // What the request changed of machines' OSes reaches the platforms.
        self.publish_now();
        resp
    }

    fn describe(&self, origin: &str) -> Value {
        api::describe(&self.api, origin)
    }
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl Service for Maas {
    fn name(&self) -> &'static str {
        "maas"
    }

    fn routes(&self) -> Vec<(String, String)> {
        let mut out = api::routes().listing("/api/2.0");
        for (m, p) in META_ROUTES {
            out.push((m.to_string(), p.to_string()));
        }
        out
    }

    fn router(self: Arc<Self>) -> Router {
        let mut r = Router::new();
        let table = routes();
        for (path, on_path) in table.by_path() {
            let full = format!("/api/2.0{path}");
            let template: Arc<str> = Arc::from(path);
            let on_path: Arc<[Route<Endpoint>]> = on_path.into_iter().cloned().collect();
            let svc = self.clone();
            let handler = move |req: Request| {
                let (svc, template, on_path) = (svc.clone(), template.clone(), on_path.clone());
                async move { svc.dispatch(template, on_path, req).await }
            };
            r = r.route(&full, any(handler.clone()));
            let trimmed = full.trim_end_matches('/').to_string();
            if trimmed != full {
                r = r.route(&trimmed, any(handler.clone()));
            }
            // MAAS's partition route also answers as `partitions/{id}` (LP:1715230).
            if full.ends_with("/partition/{id}") {
                r = r.route(
                    &full.replace("/partition/{id}", "/partitions/{id}"),
                    any(handler),
                );
            }
        }
        let svc = self.clone();
        r = r.route(
            "/api/2.0/describe/",
            axum::routing::get(move |req: Request| {
                let svc = svc.clone();
                async move {
                    let origin = req
                        .headers()
                        .get(header::HOST)
                        .and_then(|v| v.to_str().ok())
                        .map(|h| {
                            format!("{}://{h}", svc.origin.split("://").next().unwrap_or("http"))
                        })
                        .unwrap_or_else(|| svc.origin.clone());
                    http::ok(svc.describe(&origin))
                }
            }),
        );
        r = r.route(
            "/api/version/",
            axum::routing::get(|| async { http::text(StatusCode::OK, "2.0") }),
        );
        r.fallback(|| async { http::text(StatusCode::NOT_FOUND, "Not Found") })
            .with_state(())
    }

    fn save(&self) -> Value {
        let mut inner = self.inner.lock();
        self.advance(&mut inner);
        self.publish(&inner.st, false);
        inner.st.rng_state = inner.ids.next_u64();
        serde_json::to_value(&inner.st).unwrap_or(Value::Null)
    }

    fn mutate(&self, req: &MutateRequest) -> Result<Value, String> {
        let mut inner = self.inner.lock();
        self.advance(&mut inner);
        let out = match req.kind.as_str() {
            "machine" | "machines" | "node" => machines::mutate(self, &mut inner.st, req),
            other => network::mutate(self, &mut inner.st, other, req),
        };
        self.publish(&inner.st, false);
        out
    }

    fn summary(&self) -> Value {
        let mut inner = self.inner.lock();
        self.advance(&mut inner);
        self.publish(&inner.st, false);
        let st = &inner.st;
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        for m in st.machines.values() {
            *by_status
                .entry(model::status::name(m.status).to_string())
                .or_default() += 1;
        }
        let racks = st.controllers.iter().filter(|c| c.is_rack()).count();
        let regions = st.controllers.iter().filter(|c| c.is_region()).count();
        json!({
            "machines": {"total": st.machines.len(), "by_status": by_status},
            "rack_controllers": racks,
            "region_controllers": regions,
            "fabrics": st.fabrics.len(),
            "vlans": st.vlans.len(),
            "subnets": st.subnets.len(),
            "ipranges": st.ipranges.len(),
            "spaces": st.spaces.len(),
            "zones": st.zones.len(),
            "resource_pools": st.pools.len(),
            "tags": st.tags.len(),
            "domains": st.domains.len(),
            "boot_resources": st.boot_resources.len(),
            "reserved_ips": st.reserved_ips.len(),
            // Power actions driven through each machine's BMC, by hardware serial.
            "power_actions": st
                .machines
                .values()
                .map(|m| (m.actual.serial.clone(), m.power_actions))
                .collect::<BTreeMap<String, u64>>(),
            // The disk erasures that completed on each machine, by serial.
            "disk_erasures": st
                .machines
                .values()
                .filter(|m| !m.disk_erasures.is_empty())
                .map(|m| (m.actual.serial.clone(), m.disk_erasures.clone()))
                .collect::<BTreeMap<String, Vec<String>>>(),
            // The kernel options each deployed machine booted with, by serial.
            "kernel_opts": st
                .machines
                .values()
                .filter(|m| !m.deployed_kernel_opts.is_empty())
                .map(|m| (m.actual.serial.clone(), m.deployed_kernel_opts.clone()))
                .collect::<BTreeMap<String, String>>(),
        })
    }
}

/// Version document (`GET /api/2.0/version/`).
fn version(_s: &Maas, _r: &Req) -> Response {
    http::ok(json!({
        "capabilities": [
            "networks-management",
            "static-ipaddresses",
            "ipv6-deployment-ubuntu",
            "devices-management",
            "storage-deployment-ubuntu",
            "network-deployment-ubuntu",
            "bridging-interface-ubuntu",
            "bridging-automatic-ubuntu",
            "authenticate-api",
        ],
        "version": MAAS_VERSION,
        "subversion": MAAS_SUBVERSION,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handler_path_is_well_formed() {
        for h in HANDLERS {
            // MAAS's partition and script routes have no trailing slash.
            assert!(
                h.path.starts_with('/')
                    && (h.path.ends_with('/')
                        || ["PartitionHandler", "NodeScriptHandler"].contains(&h.name)),
                "{}",
                h.path
            );
            for p in h.params {
                assert!(h.path.contains(&format!("{{{p}}}")), "{} lacks {p}", h.path);
            }
            assert!(!h.actions.is_empty(), "{}", h.name);
        }
    }
}
