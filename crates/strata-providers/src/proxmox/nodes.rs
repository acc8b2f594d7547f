//! Day-2 operations on a Proxmox VE cluster's nodes, for the server's lifecycle
//! workflows (rolling upgrade, decommission): read the nodes and their health, move
//! guests off a node (live migration), upgrade a node's packages, remove a node from
//! the cluster.
//!
//! Package upgrades do not go through the API (PVE has no `dist-upgrade` call; the
//! GUI runs it in a shell): the targets file names an `upgrade_command` that strata
//! runs locally with `STRATA_NODE` and `STRATA_VERSION` in its environment (typically
//! `ssh root@$STRATA_NODE apt-get -y dist-upgrade`; the twin writes one that asks the
//! twin to stand for it). Node names and versions are checked against a strict
//! character set before they reach the command.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::client::{Client, TaskEnd};
use super::conf::{segment, text};
use crate::ProviderError;
use crate::http::{Endpoint, EndpointConfig};
use crate::targets::ProxmoxTarget;

/// A node as the cluster sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeHealth {
    pub node: String,
    /// In the cluster (corosync sees it).
    pub online: bool,
    /// Its API answers (`GET /nodes/{node}/status` through the cluster).
    pub api: bool,
    /// `pve-manager` version (`GET /nodes/{node}/version`); empty when unreachable.
    pub version: String,
    /// The cluster is quorate.
    pub quorate: bool,
}

impl NodeHealth {
    /// Healthy at `version` (any version when `None`).
    pub fn healthy_at(&self, version: Option<&str>) -> bool {
        self.online && self.api && self.quorate && version.is_none_or(|v| self.version == v)
    }

    /// What is wrong, in words (empty when healthy at `version`).
    pub fn problems(&self, version: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        if !self.online {
            out.push(format!("{} is not in the cluster (offline)", self.node));
        }
        if self.online && !self.api {
            out.push(format!("{}'s API does not answer (pveproxy)", self.node));
        }
        if !self.quorate {
            out.push("the cluster is not quorate".into());
        }
        if let Some(v) = version
            && self.api
            && self.version != v
        {
            out.push(format!(
                "{} runs pve-manager {} instead of {v}",
                self.node, self.version
            ));
        }
        out
    }
}

/// A guest on a node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeGuest {
    pub vmid: u32,
    pub name: String,
    pub running: bool,
}

/// One cluster's nodes, through its API.
pub struct ProxmoxNodes {
    dc: String,
    api: Client,
    upgrade_command: Option<String>,
    /// For the calls only `root@pam` may make: the API's base URL, an endpoint, the
    /// user and password.
    root: Option<(String, Endpoint, String, crate::secrets::Secret)>,
}

/// `[A-Za-z0-9._-]+`: what may go into the upgrade command's environment.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b'+'))
}

impl ProxmoxNodes {
    pub fn new(dc: &str, target: &ProxmoxTarget) -> Result<Self, ProviderError> {
        let api = super::api_client(
            target,
            target.concurrency.unwrap_or(super::DEFAULT_CONCURRENCY),
        )?;
        let root = match &target.root {
            Some((user, password)) => Some((
                format!("{}/api2/json", target.url.trim_end_matches('/')),
                Endpoint::new(EndpointConfig {
                    ca_pem: target.tls.ca_pem.clone(),
                    insecure: target.tls.insecure,
                    concurrency: 1,
                    ..EndpointConfig::default()
                })?,
                user.clone(),
                password.clone(),
            )),
            None => None,
        };
        Ok(ProxmoxNodes {
            dc: dc.to_string(),
            api,
            upgrade_command: target.upgrade_command.clone(),
            root,
        })
    }

    /// The cluster's node names, sorted.
    pub async fn nodes(&self) -> Result<Vec<String>, ProviderError> {
        let data = self.api.get("/nodes", &[]).await?;
        let mut out: Vec<String> = data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.get("node").and_then(Value::as_str).map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// How `node` is doing: cluster membership and quorum (`/cluster/status`), its
    /// API and version (a node whose pveproxy is down answers 595 through the cluster).
    pub async fn health(&self, node: &str) -> Result<NodeHealth, ProviderError> {
        let status = self.api.get("/cluster/status", &[]).await?;
        let list = status.as_array().cloned().unwrap_or_default();
        let quorate = list
            .iter()
            .find(|e| e.get("type").and_then(Value::as_str) == Some("cluster"))
            .map(|c| text(c.get("quorate").unwrap_or(&Value::Null)) == "1")
            // A single node without a cluster is its own quorum.
            .unwrap_or(true);
        let entry = list.iter().find(|e| {
            e.get("type").and_then(Value::as_str) == Some("node")
                && e.get("name").and_then(Value::as_str) == Some(node)
        });
        let Some(entry) = entry else {
            return Err(ProviderError::Refused(format!(
                "{}: Proxmox has no cluster node {node}",
                self.dc
            )));
        };
        let online = text(entry.get("online").unwrap_or(&Value::Null)) == "1";
        let path = format!("/nodes/{}", segment(node));
        let api = online && self.api.get(&format!("{path}/status"), &[]).await.is_ok();
        let version = if api {
            match self.api.get(&format!("{path}/version"), &[]).await {
                Ok(v) => v.get("version").map(text).unwrap_or_default(),
                Err(_) => String::new(),
            }
        } else {
            String::new()
        };
        Ok(NodeHealth {
            node: node.to_string(),
            online,
            api,
            version,
            quorate,
        })
    }

    /// Poll `health` until `node` is healthy at `version` or `within` passes; the last
    /// health seen either way.
    pub async fn wait_healthy(
        &self,
        node: &str,
        version: Option<&str>,
        within: Duration,
    ) -> Result<NodeHealth, ProviderError> {
        let deadline = Instant::now() + within;
        let mut every = Duration::from_millis(250);
        loop {
            let h = match self.health(node).await {
                Ok(h) => h,
                // The API we talk to may be the node that is restarting.
                Err(ProviderError::Http(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(every).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if h.healthy_at(version) || Instant::now() >= deadline {
                return Ok(h);
            }
            tokio::time::sleep(every.min(deadline.saturating_duration_since(Instant::now()))).await;
            every = (every * 2).min(Duration::from_secs(5));
        }
    }

    /// The guests on `node` (qemu only), by vmid.
    pub async fn guests(&self, node: &str) -> Result<Vec<NodeGuest>, ProviderError> {
        let data = self
            .api
            .get(&format!("/nodes/{}/qemu", segment(node)), &[])
            .await?;
        let mut out: Vec<NodeGuest> = data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| {
                let vmid = text(g.get("vmid")?).parse().ok()?;
                Some(NodeGuest {
                    vmid,
                    name: g.get("name").map(text).unwrap_or_default(),
                    running: g.get("status").and_then(Value::as_str) == Some("running"),
                })
            })
            .collect();
        out.sort_by_key(|g| g.vmid);
        Ok(out)
    }

    /// Migrate guest `vmid` from `from` to `to` (online when it runs; with its local
    /// disks when it has any) and wait for the task. Idempotent: a guest already on
    /// `to` is left alone.
    pub async fn migrate(
        &self,
        vmid: u32,
        from: &str,
        to: &str,
        running: bool,
    ) -> Result<(), ProviderError> {
        if self
            .guests(to)
            .await
            .map(|g| g.iter().any(|g| g.vmid == vmid))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let path = format!("/nodes/{}/qemu/{vmid}/migrate", segment(from));
        let check = self
            .api
            .get(&path, &[("target", to.to_string())])
            .await
            .unwrap_or(Value::Null);
        let local = check
            .get("local_disks")
            .and_then(Value::as_array)
            .is_some_and(|d| !d.is_empty());
        let mut form = vec![("target", to.to_string())];
        if running {
            form.push(("online", "1".into()));
        }
        if local {
            form.push(("with-local-disks", "1".into()));
        }
        let what = format!("{}: migrate VM {vmid} from {from} to {to}", self.dc);
        let upid = self.api.post(&path, &form).await?;
        match upid.as_str().filter(|u| u.starts_with("UPID:")) {
            Some(u) => match self.api.wait_task(u, &what).await? {
                TaskEnd::Ok => Ok(()),
                TaskEnd::Failed(e) => Err(ProviderError::Api(format!("{what}: {e}"))),
            },
            None => Ok(()),
        }
    }

    /// Upgrade `node` to `version` (or to what its package index offers when `None`)
    /// through the targets file's `upgrade_command`. Returns the command's output.
    pub async fn upgrade(
        &self,
        node: &str,
        version: Option<&str>,
    ) -> Result<String, ProviderError> {
        let Some(cmd) = &self.upgrade_command else {
            return Err(ProviderError::Refused(format!(
                "{}: the targets file has no proxmox `upgrade_command`: PVE upgrades run in a shell on the node (e.g. `ssh root@$STRATA_NODE apt-get -y dist-upgrade`), so strata needs that command to upgrade {node}",
                self.dc
            )));
        };
        if !plain(node) || version.is_some_and(|v| !plain(v)) {
            return Err(ProviderError::Refused(format!(
                "{}: node {node:?} or version {version:?} has characters strata does not pass to a shell",
                self.dc
            )));
        }
        let out = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("STRATA_DC", &self.dc)
            .env("STRATA_NODE", node)
            .env("STRATA_VERSION", version.unwrap_or(""))
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| {
                ProviderError::Api(format!("{}: cannot run upgrade_command: {e}", self.dc))
            })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let tail: String = {
            let t = text.trim();
            let start = t.len().saturating_sub(2000);
            t.get(start..).unwrap_or(t).to_string()
        };
        if !out.status.success() {
            return Err(ProviderError::Api(format!(
                "{}: upgrade_command for {node} failed ({}): {tail}",
                self.dc, out.status
            )));
        }
        Ok(tail)
    }

    /// Shut `node` down (`POST /nodes/{node}/status command=shutdown`) and wait until
    /// the cluster sees it offline (at most five minutes). Idempotent: an offline node
    /// or one the cluster no longer lists is left alone.
    pub async fn shutdown(&self, node: &str) -> Result<(), ProviderError> {
        if !self.nodes().await?.iter().any(|n| n == node) || !self.health(node).await?.online {
            return Ok(());
        }
        self.api
            .post(
                &format!("/nodes/{}/status", segment(node)),
                &[("command", "shutdown".to_string())],
            )
            .await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !self.health(node).await?.online {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::Timeout(format!(
                    "{}: {node} is still online five minutes after its shutdown",
                    self.dc
                )));
            }
        }
    }

    /// Remove `node` from the cluster configuration (`pvecm delnode`). PVE lets only
    /// `root@pam` do this (no API token, whatever its privileges), so it takes the
    /// targets file's `user`/`password` and a ticket. Idempotent: a node the cluster
    /// does not list is gone already (`false`).
    pub async fn remove(&self, node: &str) -> Result<bool, ProviderError> {
        let listed = self.api.get("/cluster/config/nodes", &[]).await?;
        let member = listed.as_array().into_iter().flatten().any(|n| {
            n.get("name")
                .or_else(|| n.get("node"))
                .and_then(Value::as_str)
                == Some(node)
        });
        if !member {
            return Ok(false);
        }
        let Some((base, http, user, password)) = &self.root else {
            return Err(ProviderError::Refused(format!(
                "{}: removing node {node} from the cluster needs root@pam (PVE refuses API tokens for `pvecm delnode`): add `user` and `password` to the DC's proxmox target, or run `pvecm delnode {node}` on another node",
                self.dc
            )));
        };
        let what = format!("{}: remove node {node} from the cluster", self.dc);
        let ticket = http
            .send(
                reqwest::Method::POST,
                &format!("{base}/access/ticket"),
                Some(true),
                |b| b.form(&[("username", user.as_str()), ("password", password.expose())]),
            )
            .await
            .map_err(|e| {
                ProviderError::Refused(format!("{what}: logging in as {user} failed: {e}"))
            })?;
        let body: Value = ticket.json().await.map_err(|e| {
            ProviderError::Api(format!("{what}: the ticket answer is not JSON: {e}"))
        })?;
        let data = &body["data"];
        let (Some(t), Some(csrf)) = (
            data.get("ticket").and_then(Value::as_str),
            data.get("CSRFPreventionToken").and_then(Value::as_str),
        ) else {
            return Err(ProviderError::Refused(format!(
                "{what}: no ticket for {user}"
            )));
        };
        let cookie = format!("PVEAuthCookie={t}");
        http.send(
            reqwest::Method::DELETE,
            &format!("{base}/cluster/config/nodes/{}", segment(node)),
            Some(true),
            |b| {
                b.header("Cookie", cookie.as_str())
                    .header("CSRFPreventionToken", csrf)
            },
        )
        .await
        .map_err(|e| ProviderError::Api(format!("{what}: {e}")))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_reach_the_shell() {
        assert!(plain("pve-fra1-01"));
        assert!(plain("9.1.2"));
        assert!(plain("6.17.4-2-pve"));
        assert!(!plain(""));
        assert!(!plain("a;reboot"));
        assert!(!plain("$(id)"));
        assert!(!plain("a b"));
    }

    #[test]
    fn problems_name_what_is_wrong() {
        let h = NodeHealth {
            node: "n1".into(),
            online: true,
            api: false,
            version: String::new(),
            quorate: true,
        };
        assert!(!h.healthy_at(None));
        assert_eq!(
            h.problems(Some("9.1")),
            ["n1's API does not answer (pveproxy)"]
        );
        let ok = NodeHealth {
            api: true,
            version: "9.1".into(),
            ..h
        };
        assert!(ok.healthy_at(Some("9.1")));
        assert!(!ok.healthy_at(Some("9.2")));
        assert_eq!(
            ok.problems(Some("9.2")),
            ["n1 runs pve-manager 9.1 instead of 9.2"]
        );
    }
}
