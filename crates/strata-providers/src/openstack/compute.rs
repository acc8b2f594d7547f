//! Day-2 operations on one region's compute hosts, for the server's lifecycle
//! workflows: whether a host has joined (its `nova-compute` service is up and its
//! Placement provider tree carries the inventory it should, GPUs included), draining
//! it (disable the service, move every instance off: live migration for running
//! ones, cold migration and confirm for stopped ones) and removing it (delete the
//! service, which makes Nova delete the host's Placement providers).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::client::{Client, Service, query, seg};
use crate::ProviderError;
use crate::http::{Endpoint, EndpointConfig};
use crate::targets::OpenstackTarget;

/// A compute host's `nova-compute` service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ComputeService {
    pub id: String,
    pub host: String,
    /// `enabled` / `disabled`.
    pub status: String,
    /// `up` / `down`.
    pub state: String,
    pub disabled_reason: Option<String>,
}

/// An instance on a host.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HostServer {
    pub id: String,
    pub name: String,
    pub status: String,
}

/// What Placement holds for a host: the providers of its tree and their inventory
/// totals per resource class.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostInventory {
    pub providers: Vec<String>,
    pub totals: std::collections::BTreeMap<String, i64>,
}

impl HostInventory {
    /// Accelerators in the tree: `PGPU`, `VGPU` and custom classes naming a GPU or
    /// a PCI device (`CUSTOM_PCI_…`, as Nova's PCI-in-Placement reports them).
    pub fn gpus(&self) -> i64 {
        self.totals
            .iter()
            .filter(|(rc, _)| {
                matches!(rc.as_str(), "PGPU" | "VGPU")
                    || (rc.starts_with("CUSTOM_") && (rc.contains("GPU") || rc.contains("PCI")))
            })
            .map(|(_, n)| *n)
            .sum()
    }
}

/// One region's compute hosts.
pub struct ComputeHosts {
    dc: String,
    client: Client,
}

impl ComputeHosts {
    pub fn new(dc: &str, target: &OpenstackTarget) -> Result<Self, ProviderError> {
        let http = Endpoint::new(EndpointConfig {
            ca_pem: target.tls.ca_pem.clone(),
            insecure: target.tls.insecure,
            limit_key: Some(format!("openstack {}", target.auth_url)),
            ..EndpointConfig::default()
        })?;
        Ok(ComputeHosts {
            dc: dc.to_string(),
            client: Client::new(http, target),
        })
    }

    /// `host`'s `nova-compute` service, if Nova has one.
    pub async fn service(&self, host: &str) -> Result<Option<ComputeService>, ProviderError> {
        let r = self
            .client
            .get(
                Service::Compute,
                &format!(
                    "/os-services?{}",
                    query(&[("binary", "nova-compute"), ("host", host)])
                ),
            )
            .await?;
        Ok(r.body
            .get("services")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|s| s.get("host").and_then(Value::as_str) == Some(host))
            .map(|s| ComputeService {
                id: match s.get("id") {
                    Some(Value::String(x)) => x.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                },
                host: host.to_string(),
                status: str_of(s, "status"),
                state: str_of(s, "state"),
                disabled_reason: s
                    .get("disabled_reason")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }))
    }

    /// What Placement holds for `host`: the provider tree of its compute node. The
    /// node is found through Nova (`/os-hypervisors/detail`, by its service's host:
    /// hypervisors are named as libvirt reports the host, usually its FQDN), and its
    /// id is its provider's UUID (microversion 2.53+).
    pub async fn inventory(&self, host: &str) -> Result<Option<HostInventory>, ProviderError> {
        match self.provider_of(host).await? {
            Some(root) => self.tree(&root).await.map(Some),
            None => Ok(None),
        }
    }

    /// The UUID of `host`'s compute node, which is its Placement provider's.
    pub async fn provider_of(&self, host: &str) -> Result<Option<String>, ProviderError> {
        let r = self
            .client
            .get(
                Service::Compute,
                &format!(
                    "/os-hypervisors/detail?{}",
                    query(&[("hypervisor_hostname_pattern", host)])
                ),
            )
            .await;
        let list = match r {
            Ok(r) => r.body,
            // Nova answers 404 when no hypervisor matches the pattern.
            Err(ProviderError::Http(h)) if h.status() == Some(reqwest::StatusCode::NOT_FOUND) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let Some(root) = list
            .get("hypervisors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|h| h.pointer("/service/host").and_then(Value::as_str) == Some(host))
            .and_then(|h| h.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Ok(None);
        };
        Ok(Some(root))
    }

    /// Whether Placement still has provider `uuid`.
    pub async fn provider_exists(&self, uuid: &str) -> Result<bool, ProviderError> {
        match self
            .client
            .get(
                Service::Placement,
                &format!("/resource_providers/{}", seg(uuid)),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(ProviderError::Http(h)) if h.status() == Some(reqwest::StatusCode::NOT_FOUND) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The inventory totals of the provider tree rooted at `root`.
    async fn tree(&self, root: &str) -> Result<HostInventory, ProviderError> {
        let tree = self
            .client
            .get(
                Service::Placement,
                &format!("/resource_providers?{}", query(&[("in_tree", root)])),
            )
            .await?;
        let mut inv = HostInventory::default();
        for p in tree
            .body
            .get("resource_providers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(uuid) = p.get("uuid").and_then(Value::as_str) else {
                continue;
            };
            inv.providers.push(str_of(p, "name"));
            let i = self
                .client
                .get(
                    Service::Placement,
                    &format!("/resource_providers/{}/inventories", seg(uuid)),
                )
                .await?;
            if let Some(map) = i.body.get("inventories").and_then(Value::as_object) {
                for (rc, v) in map {
                    let total = v.get("total").and_then(Value::as_i64).unwrap_or(0);
                    *inv.totals.entry(rc.clone()).or_default() += total;
                }
            }
        }
        inv.providers.sort();
        Ok(inv)
    }

    /// Disable `host`'s compute service so the scheduler places nothing new there.
    /// Idempotent.
    pub async fn disable(&self, host: &str, reason: &str) -> Result<(), ProviderError> {
        let Some(svc) = self.service(host).await? else {
            return Err(ProviderError::Refused(format!(
                "{}: Nova has no nova-compute service on {host}",
                self.dc
            )));
        };
        if svc.status == "disabled" {
            return Ok(());
        }
        self.client
            .request(
                Service::Compute,
                Method::PUT,
                &format!("/os-services/{}", seg(&svc.id)),
                Some(&json!({"status": "disabled", "disabled_reason": reason})),
                Some(true),
            )
            .await?;
        Ok(())
    }

    /// The instances Nova has on `host` (all projects).
    pub async fn servers(&self, host: &str) -> Result<Vec<HostServer>, ProviderError> {
        let r = self
            .client
            .get(
                Service::Compute,
                &format!(
                    "/servers/detail?{}",
                    query(&[("all_tenants", "1"), ("host", host)])
                ),
            )
            .await?;
        Ok(r.body
            .get("servers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            // Trust the host attribute over the filter (an old Nova ignores unknown
            // filters for non-admins).
            .filter(|s| {
                s.get("OS-EXT-SRV-ATTR:host")
                    .and_then(Value::as_str)
                    .is_none_or(|h| h == host)
            })
            .map(|s| HostServer {
                id: str_of(s, "id"),
                name: str_of(s, "name"),
                status: str_of(s, "status"),
            })
            .collect())
    }

    /// Move instance `server` off `host` and wait until it runs (or rests) elsewhere:
    /// live migration when it is ACTIVE, cold migration and confirm when it is
    /// SHUTOFF. Idempotent: an instance already elsewhere is left alone.
    pub async fn move_off(
        &self,
        server: &str,
        host: &str,
        within: Duration,
    ) -> Result<String, ProviderError> {
        let path = format!("/servers/{}", seg(server));
        let show = |v: &Value| -> (String, String) {
            let s = v.get("server").cloned().unwrap_or(Value::Null);
            (
                str_of(&s, "status"),
                s.get("OS-EXT-SRV-ATTR:host")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        };
        let (status, on) = show(&self.client.get(Service::Compute, &path).await?.body);
        if on != host && status != "VERIFY_RESIZE" && status != "MIGRATING" {
            return Ok(on);
        }
        let action = format!("{path}/action");
        match status.as_str() {
            "ACTIVE" => {
                self.client
                    .request(
                        Service::Compute,
                        Method::POST,
                        &action,
                        Some(&json!({"os-migrateLive": {"host": null, "block_migration": "auto"}})),
                        Some(false),
                    )
                    .await?;
            }
            "SHUTOFF" => {
                self.client
                    .request(
                        Service::Compute,
                        Method::POST,
                        &action,
                        Some(&json!({"migrate": null})),
                        Some(false),
                    )
                    .await?;
            }
            "VERIFY_RESIZE" | "MIGRATING" | "RESIZE" => {}
            other => {
                return Err(ProviderError::Refused(format!(
                    "{}: instance {server} on {host} is {other}; strata moves ACTIVE and SHUTOFF instances only: fix or delete it, then retry",
                    self.dc
                )));
            }
        }
        let deadline = Instant::now() + within;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (status, on) = show(&self.client.get(Service::Compute, &path).await?.body);
            match status.as_str() {
                "VERIFY_RESIZE" => {
                    self.client
                        .request(
                            Service::Compute,
                            Method::POST,
                            &action,
                            Some(&json!({"confirmResize": null})),
                            Some(false),
                        )
                        .await?;
                }
                "ACTIVE" | "SHUTOFF" if on != host => return Ok(on),
                "ERROR" => {
                    return Err(ProviderError::Api(format!(
                        "{}: moving instance {server} off {host} left it in ERROR",
                        self.dc
                    )));
                }
                // Back where it was: the migration failed (no other host fits).
                "ACTIVE" | "SHUTOFF" if Instant::now() >= deadline => {
                    return Err(ProviderError::Api(format!(
                        "{}: instance {server} is still on {host}: the migration did not move it (no other host with room?)",
                        self.dc
                    )));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::Timeout(format!(
                    "{}: instance {server} still {status} on {on} after {}s",
                    self.dc,
                    within.as_secs()
                )));
            }
        }
    }

    /// Delete `host`'s compute service (Nova then deletes its Placement providers).
    /// Idempotent: `false` when there was none.
    pub async fn remove(&self, host: &str) -> Result<bool, ProviderError> {
        let Some(svc) = self.service(host).await? else {
            return Ok(false);
        };
        self.client
            .request(
                Service::Compute,
                Method::DELETE,
                &format!("/os-services/{}", seg(&svc.id)),
                None,
                Some(true),
            )
            .await?;
        Ok(true)
    }
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_count_accelerator_classes_only() {
        let mut inv = HostInventory::default();
        for (rc, n) in [
            ("VCPU", 128),
            ("MEMORY_MB", 1_000_000),
            ("PGPU", 2),
            ("CUSTOM_PCI_10DE_2330", 4),
            ("CUSTOM_GPU_H100", 2),
            ("CUSTOM_NVME", 8),
        ] {
            inv.totals.insert(rc.into(), n);
        }
        assert_eq!(inv.gpus(), 8);
    }
}
