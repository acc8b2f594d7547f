//! Instances for self-service requests: a team's servers, in the team's own project,
//! with a security group that admits only the team's networks, a server group for
//! anti-affinity and a port per server; and what Placement has free of a GPU class.
//!
//! Servers are made in the team's project (so the project's quota, its private
//! flavors and the networks shared with it apply as they do to the team's own
//! boots): strata's user is given the `admin` role on that project (idempotent; the
//! fleet manages only `member` assignments, so it leaves this one alone) and logs in
//! scoped to it. Every object is named from the request (`<request>-<i>`, the
//! request id for the groups), so each step observes first and makes only what is
//! missing: a retried create finds what the crashed attempt made.
//!
//! This module keeps its own session (token, catalog) rather than the provider's:
//! it needs Glance (images) and a scope other than the target's project.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use super::api;
use super::client::{Service, normalise, query, seg};
use crate::ProviderError;
use crate::http::{Endpoint, EndpointConfig, HttpError};
use crate::secrets::Secret;
use crate::targets::OpenstackTarget;

/// The compute microversion these calls speak (server groups take `policies`).
const COMPUTE: &str = "compute 2.61";
const PLACEMENT: &str = "placement 1.14";

/// A region, logged into as the target's user.
pub struct Region {
    dc: String,
    target: OpenstackTarget,
    http: Endpoint,
}

/// One logged-in session: a project-scoped token and the catalog's endpoints.
pub struct Cloud {
    dc: String,
    http: Endpoint,
    token: Secret,
    pub user_id: String,
    pub project_id: String,
    pub domain_id: String,
    endpoints: BTreeMap<String, String>,
}

/// Free devices of one GPU class on one compute host (its Placement tree).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GpuHost {
    /// The root provider's name: the compute node (hypervisor) name.
    pub host: String,
    pub total: i64,
    pub free: i64,
}

/// A server as a request sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ServerInfo {
    pub id: String,
    pub name: String,
    /// `BUILD`, `ACTIVE`, `ERROR`, ...
    pub status: String,
    pub host: Option<String>,
    /// Why it failed (Nova's `fault.message`).
    pub fault: Option<String>,
    pub addresses: Vec<String>,
}

/// What a server is made of.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub name: String,
    pub flavor_id: String,
    pub image_id: String,
    /// One port per network, in order.
    pub port_ids: Vec<String>,
    pub group_id: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

fn status_error(e: &ProviderError) -> Option<u16> {
    e.status()
}

impl Region {
    pub fn new(dc: &str, target: &OpenstackTarget) -> Result<Self, ProviderError> {
        let http = Endpoint::new(EndpointConfig {
            ca_pem: target.tls.ca_pem.clone(),
            insecure: target.tls.insecure,
            limit_key: Some(format!("openstack {}", target.auth_url)),
            ..EndpointConfig::default()
        })?;
        Ok(Region {
            dc: dc.to_string(),
            target: target.clone(),
            http,
        })
    }

    async fn login(&self, scope: Value) -> Result<Cloud, ProviderError> {
        let t = &self.target;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": t.username, "domain": {"name": t.user_domain},
                "password": t.password.expose(),
            }}},
            "scope": scope,
        }});
        let url = format!("{}/auth/tokens", t.auth_url.trim_end_matches('/'));
        let resp = self
            .http
            .send(Method::POST, &url, Some(true), |b| {
                b.header("Accept", "application/json").json(&body)
            })
            .await
            .map_err(|e| match e.status() {
                Some(s) if s.as_u16() == 401 => ProviderError::Refused(format!(
                    "{}: Keystone refused user {} for the scope {}",
                    self.dc, t.username, scope
                )),
                _ => ProviderError::Http(e),
            })?;
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| ProviderError::Api("Keystone issued no X-Subject-Token".into()))?;
        let parsed: api::TokenResponse = resp
            .json()
            .await
            .map_err(|e| ProviderError::Api(format!("unexpected Keystone token response: {e}")))?;
        let tk = parsed.token;
        let project = tk.project.as_ref().ok_or_else(|| {
            ProviderError::Api("Keystone issued a token without a project scope".into())
        })?;
        let mut endpoints = BTreeMap::new();
        let iface = t.interface.as_str();
        for (kind, svc) in [
            ("identity", Some(Service::Identity)),
            ("compute", Some(Service::Compute)),
            ("network", Some(Service::Network)),
            ("placement", Some(Service::Placement)),
            ("image", None),
        ] {
            if let Some(u) = api::endpoint_url(&tk.catalog, kind, &t.region, iface) {
                let u = match svc {
                    Some(s) => normalise(s, &u),
                    None => u.trim_end_matches('/').trim_end_matches("/v2").to_string(),
                };
                endpoints.insert(kind.to_string(), u);
            }
        }
        endpoints
            .entry("identity".into())
            .or_insert_with(|| normalise(Service::Identity, &t.auth_url));
        Ok(Cloud {
            dc: self.dc.clone(),
            http: self.http.clone(),
            token: Secret::new(token),
            user_id: tk.user.as_ref().map(|u| u.id.clone()).unwrap_or_default(),
            project_id: project.id.clone(),
            domain_id: project
                .domain
                .as_ref()
                .and_then(|d| d.id.clone())
                .unwrap_or_else(|| "default".into()),
            endpoints,
        })
    }

    /// A session in the target's own project (the operator's, usually `admin`).
    pub async fn admin(&self) -> Result<Cloud, ProviderError> {
        let t = &self.target;
        self.login(json!({"project": {"name": t.project, "domain": {"name": t.project_domain}}}))
            .await
    }

    /// A session in project `name` (a team's), after giving strata's user the `admin`
    /// role there (idempotent).
    pub async fn team(&self, name: &str) -> Result<Cloud, ProviderError> {
        let admin = self.admin().await?;
        let projects = admin
            .call(
                "identity",
                Method::GET,
                &format!("/projects?{}", query(&[("name", name)])),
                None,
            )
            .await?;
        let pid = projects["projects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .and_then(|p| p["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{}: Keystone has no project {name} (the fleet's apply makes one per team)",
                    self.dc
                ))
            })?;
        let roles = admin
            .call("identity", Method::GET, "/roles?name=admin", None)
            .await?;
        let rid = roles["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == "admin")
            .and_then(|r| r["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::Api(format!("{}: Keystone has no admin role", self.dc))
            })?;
        admin
            .call(
                "identity",
                Method::PUT,
                &format!(
                    "/projects/{}/users/{}/roles/{}",
                    seg(&pid),
                    seg(&admin.user_id),
                    seg(&rid)
                ),
                None,
            )
            .await?;
        self.login(json!({"project": {"id": pid}})).await
    }

    /// Per compute host, the free devices of Placement resource class `class`: the
    /// providers that have at least one free (`?resources=CLASS:1`), their inventory
    /// and usage, summed per provider tree.
    pub async fn gpu_hosts(&self, class: &str) -> Result<Vec<GpuHost>, ProviderError> {
        self.admin().await?.gpu_hosts(class).await
    }
}

impl Cloud {
    fn base(&self, svc: &str) -> Result<&str, ProviderError> {
        self.endpoints.get(svc).map(String::as_str).ok_or_else(|| {
            ProviderError::Refused(format!(
                "{}: the service catalog has no {svc} endpoint in the region",
                self.dc
            ))
        })
    }

    /// One call; the answer's JSON (`null` when empty). `idempotent` as
    /// [`Endpoint::send`].
    async fn send(
        &self,
        svc: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotent: Option<bool>,
    ) -> Result<Value, ProviderError> {
        let url = format!("{}{path}", self.base(svc)?);
        let version = match svc {
            "compute" => Some(COMPUTE),
            "placement" => Some(PLACEMENT),
            _ => None,
        };
        let resp = self
            .http
            .send(method.clone(), &url, idempotent, |b| {
                let mut b = b
                    .header("X-Auth-Token", self.token.expose())
                    .header("Accept", "application/json");
                if let Some(v) = version {
                    b = b.header("OpenStack-API-Version", v);
                }
                if let Some(v) = body {
                    b = b.json(v);
                }
                b
            })
            .await?;
        let bytes = resp.bytes().await.map_err(|e| {
            ProviderError::Http(HttpError::Transport {
                method: method.clone(),
                url: url.clone(),
                source: e,
            })
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::Api(format!("{method} {url}: the answer is not JSON: {e}")))
    }

    async fn call(
        &self,
        svc: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ProviderError> {
        self.send(svc, method, path, body, None).await
    }

    /// A create (POST): never retried blindly; the caller looks before trying again.
    async fn create(&self, svc: &str, path: &str, body: &Value) -> Result<Value, ProviderError> {
        self.send(svc, Method::POST, path, Some(body), Some(false))
            .await
    }

    /// A DELETE that counts a 404 as done.
    async fn delete(&self, svc: &str, path: &str) -> Result<bool, ProviderError> {
        match self.call(svc, Method::DELETE, path, None).await {
            Ok(_) => Ok(true),
            Err(e) if status_error(&e) == Some(404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// See [`Region::gpu_hosts`].
    pub async fn gpu_hosts(&self, class: &str) -> Result<Vec<GpuHost>, ProviderError> {
        let list = self
            .call(
                "placement",
                Method::GET,
                &format!(
                    "/resource_providers?{}",
                    query(&[("resources", &format!("{class}:1"))])
                ),
                None,
            )
            .await?;
        let mut per_root: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for rp in list["resource_providers"].as_array().into_iter().flatten() {
            let Some(uuid) = rp["uuid"].as_str() else {
                continue;
            };
            let root = rp["root_provider_uuid"]
                .as_str()
                .unwrap_or(uuid)
                .to_string();
            if let Some(n) = rp["name"].as_str() {
                names.insert(uuid.to_string(), n.to_string());
            }
            let inv = self
                .call(
                    "placement",
                    Method::GET,
                    &format!("/resource_providers/{}/inventories", seg(uuid)),
                    None,
                )
                .await?;
            let usage = self
                .call(
                    "placement",
                    Method::GET,
                    &format!("/resource_providers/{}/usages", seg(uuid)),
                    None,
                )
                .await?;
            let i = &inv["inventories"][class];
            let total = i["total"].as_i64().unwrap_or(0);
            let reserved = i["reserved"].as_i64().unwrap_or(0);
            let used = usage["usages"][class].as_i64().unwrap_or(0);
            let e = per_root.entry(root).or_insert((0, 0));
            e.0 += total - reserved;
            e.1 += (total - reserved - used).max(0);
        }
        let mut out = Vec::new();
        for (root, (total, free)) in per_root {
            let host = match names.get(&root) {
                Some(n) => n.clone(),
                None => self
                    .call(
                        "placement",
                        Method::GET,
                        &format!("/resource_providers/{}", seg(&root)),
                        None,
                    )
                    .await?["name"]
                    .as_str()
                    .unwrap_or(&root)
                    .to_string(),
            };
            out.push(GpuHost { host, total, free });
        }
        out.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(out)
    }

    /// The id of flavor `name` (private ones the project may use included).
    pub async fn flavor_id(&self, name: &str) -> Result<String, ProviderError> {
        let list = self
            .call(
                "compute",
                Method::GET,
                "/flavors/detail?is_public=None",
                None,
            )
            .await?;
        list["flavors"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == name)
            .and_then(|f| f["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{}: flavor {name} does not exist or the project may not use it",
                    self.dc
                ))
            })
    }

    /// The id of active image `name`, or (without a name) of the newest Ubuntu image,
    /// else the first active one.
    pub async fn image_id(&self, name: Option<&str>) -> Result<String, ProviderError> {
        let list = self
            .call(
                "image",
                Method::GET,
                "/v2/images?status=active&limit=1000",
                None,
            )
            .await?;
        let images: Vec<&Value> = list["images"].as_array().into_iter().flatten().collect();
        let pick = match name {
            Some(n) => images.iter().find(|i| i["name"] == n || i["id"] == n),
            None => images
                .iter()
                .filter(|i| i["name"].as_str().is_some_and(|n| n.starts_with("ubuntu")))
                .max_by_key(|i| i["name"].as_str().unwrap_or("").to_string())
                .or_else(|| images.first()),
        };
        pick.and_then(|i| i["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{}: no active image {}",
                    self.dc,
                    name.unwrap_or("at all")
                ))
            })
    }

    /// The id of network `name` (one the project may use).
    pub async fn network_id(&self, name: &str) -> Result<String, ProviderError> {
        let list = self
            .call(
                "network",
                Method::GET,
                &format!("/networks?{}", query(&[("name", name)])),
                None,
            )
            .await?;
        list["networks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["name"] == name)
            .and_then(|n| n["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::Refused(format!(
                    "{}: network {name} does not exist or is not shared with the project",
                    self.dc
                ))
            })
    }

    async fn find_named(
        &self,
        svc: &str,
        path: &str,
        collection: &str,
        name: &str,
    ) -> Result<Option<Value>, ProviderError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let list = self
            .call(
                svc,
                Method::GET,
                &format!("{path}{sep}{}", query(&[("name", name)])),
                None,
            )
            .await?;
        Ok(list[collection]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["name"] == name)
            .cloned())
    }

    /// Security group `name` in the project, admitting (ingress, any protocol) exactly
    /// the prefixes `cidrs`; Neutron's default egress rules stay. Returns its id and
    /// its ingress prefixes after the change.
    pub async fn ensure_security_group(
        &self,
        name: &str,
        description: &str,
        cidrs: &[String],
    ) -> Result<(String, Vec<String>), ProviderError> {
        let path = format!("/security-groups?project_id={}", seg(&self.project_id));
        let sg = match self
            .find_named("network", &path, "security_groups", name)
            .await?
        {
            Some(sg) => sg,
            None => {
                let body = json!({"security_group": {"name": name, "description": description}});
                match self.create("network", "/security-groups", &body).await {
                    Ok(v) => v["security_group"].clone(),
                    Err(e) => match self
                        .find_named("network", &path, "security_groups", name)
                        .await?
                    {
                        Some(sg) => sg,
                        None => return Err(e),
                    },
                }
            }
        };
        let id = sg["id"]
            .as_str()
            .ok_or_else(|| ProviderError::Api(format!("security group {name} has no id")))?
            .to_string();
        let rules = self
            .call(
                "network",
                Method::GET,
                &format!("/security-group-rules?security_group_id={}", seg(&id)),
                None,
            )
            .await?;
        let ingress: Vec<(String, String)> = rules["security_group_rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["direction"] == "ingress")
            .map(|r| {
                (
                    r["id"].as_str().unwrap_or("").to_string(),
                    r["remote_ip_prefix"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        // Rules no longer wanted go (a rule from a remote group has no prefix).
        for (rid, prefix) in &ingress {
            if !cidrs.contains(prefix) {
                self.delete("network", &format!("/security-group-rules/{}", seg(rid)))
                    .await?;
            }
        }
        for cidr in cidrs {
            if ingress.iter().any(|(_, p)| p == cidr) {
                continue;
            }
            let ethertype = if cidr.contains(':') { "IPv6" } else { "IPv4" };
            let body = json!({"security_group_rule": {
                "security_group_id": id, "direction": "ingress", "ethertype": ethertype,
                "remote_ip_prefix": cidr, "description": description,
            }});
            match self.create("network", "/security-group-rules", &body).await {
                Ok(_) => {}
                // The rule exists (a lost answer of an earlier try).
                Err(e) if status_error(&e) == Some(409) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((id, cidrs.to_vec()))
    }

    /// The ingress prefixes of security group `id`, sorted.
    pub async fn security_group_prefixes(&self, id: &str) -> Result<Vec<String>, ProviderError> {
        let rules = self
            .call(
                "network",
                Method::GET,
                &format!("/security-group-rules?security_group_id={}", seg(id)),
                None,
            )
            .await?;
        let mut out: Vec<String> = rules["security_group_rules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["direction"] == "ingress")
            .filter_map(|r| r["remote_ip_prefix"].as_str().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Server group `name` with `policy` (`anti-affinity`, ...) in the project; its id.
    pub async fn ensure_server_group(
        &self,
        name: &str,
        policy: &str,
    ) -> Result<String, ProviderError> {
        let find = || async {
            let list = self
                .call("compute", Method::GET, "/os-server-groups", None)
                .await?;
            Ok::<_, ProviderError>(
                list["server_groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|g| g["name"] == name)
                    .and_then(|g| g["id"].as_str())
                    .map(str::to_string),
            )
        };
        if let Some(id) = find().await? {
            return Ok(id);
        }
        let body = json!({"server_group": {"name": name, "policies": [policy]}});
        match self.create("compute", "/os-server-groups", &body).await {
            Ok(v) => v["server_group"]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    ProviderError::Api(format!("server group {name}: no id in the answer"))
                }),
            Err(e) => find().await?.ok_or(e),
        }
    }

    /// Port `name` on network `network_id` with security group `sg_id`; its id.
    pub async fn ensure_port(
        &self,
        name: &str,
        network_id: &str,
        sg_id: &str,
        description: &str,
    ) -> Result<String, ProviderError> {
        let path = format!("/ports?project_id={}", seg(&self.project_id));
        if let Some(p) = self.find_named("network", &path, "ports", name).await? {
            let id = p["id"].as_str().unwrap_or("").to_string();
            let sgs: Vec<&str> = p["security_groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if sgs != [sg_id] {
                self.call(
                    "network",
                    Method::PUT,
                    &format!("/ports/{}", seg(&id)),
                    Some(&json!({"port": {"security_groups": [sg_id]}})),
                )
                .await?;
            }
            return Ok(id);
        }
        let body = json!({"port": {
            "name": name, "network_id": network_id, "security_groups": [sg_id],
            "description": description,
        }});
        match self.create("network", "/ports", &body).await {
            Ok(v) => v["port"]["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| ProviderError::Api(format!("port {name}: no id in the answer"))),
            Err(e) => match self.find_named("network", &path, "ports", name).await? {
                Some(p) => Ok(p["id"].as_str().unwrap_or("").to_string()),
                None => Err(e),
            },
        }
    }

    /// The security groups of the ports of server `id`.
    pub async fn server_port_groups(&self, id: &str) -> Result<Vec<String>, ProviderError> {
        let list = self
            .call(
                "network",
                Method::GET,
                &format!("/ports?device_id={}", seg(id)),
                None,
            )
            .await?;
        let mut out: Vec<String> = list["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["security_groups"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn server_of(v: &Value) -> ServerInfo {
        let mut addresses: Vec<String> = v["addresses"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|a| a.as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["addr"].as_str().map(str::to_string))
            .collect();
        addresses.sort();
        ServerInfo {
            id: v["id"].as_str().unwrap_or("").to_string(),
            name: v["name"].as_str().unwrap_or("").to_string(),
            status: v["status"].as_str().unwrap_or("").to_string(),
            host: v["OS-EXT-SRV-ATTR:host"].as_str().map(str::to_string),
            fault: v["fault"]["message"].as_str().map(str::to_string),
            addresses,
        }
    }

    /// Server `name` in the project (the newest, should there be several: Nova lists
    /// newest first).
    pub async fn server_named(&self, name: &str) -> Result<Option<ServerInfo>, ProviderError> {
        let list = self
            .call(
                "compute",
                Method::GET,
                &format!(
                    "/servers/detail?{}",
                    query(&[("name", &format!("^{name}$"))])
                ),
                None,
            )
            .await?;
        Ok(list["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .map(Self::server_of))
    }

    /// Server `spec.name`, booted when missing; as Nova shows it afterwards.
    pub async fn ensure_server(&self, spec: &ServerSpec) -> Result<ServerInfo, ProviderError> {
        if let Some(s) = self.server_named(&spec.name).await? {
            return Ok(s);
        }
        let mut body = json!({"server": {
            "name": spec.name, "flavorRef": spec.flavor_id, "imageRef": spec.image_id,
            "networks": spec.port_ids.iter().map(|p| json!({"port": p})).collect::<Vec<_>>(),
            "metadata": spec.metadata,
        }});
        if let Some(g) = &spec.group_id {
            body["os:scheduler_hints"] = json!({"group": g});
        }
        if let Err(e) = self.create("compute", "/servers", &body).await {
            // A lost answer: the server may be there.
            return match self.server_named(&spec.name).await? {
                Some(s) => Ok(s),
                None => Err(e),
            };
        }
        self.server_named(&spec.name).await?.ok_or_else(|| {
            ProviderError::Api(format!(
                "{}: Nova accepted server {} but does not list it",
                self.dc, spec.name
            ))
        })
    }

    /// Delete server `name` (if there is one); `true` when one was asked to go.
    pub async fn delete_server(&self, name: &str) -> Result<bool, ProviderError> {
        match self.server_named(name).await? {
            Some(s) => {
                self.delete("compute", &format!("/servers/{}", seg(&s.id)))
                    .await
            }
            None => Ok(false),
        }
    }

    /// Delete port `name` (if there is one).
    pub async fn delete_port(&self, name: &str) -> Result<bool, ProviderError> {
        let path = format!("/ports?project_id={}", seg(&self.project_id));
        match self.find_named("network", &path, "ports", name).await? {
            Some(p) => {
                let id = p["id"].as_str().unwrap_or("");
                self.delete("network", &format!("/ports/{}", seg(id))).await
            }
            None => Ok(false),
        }
    }

    /// Delete security group `name` (if there is one).
    pub async fn delete_security_group(&self, name: &str) -> Result<bool, ProviderError> {
        let path = format!("/security-groups?project_id={}", seg(&self.project_id));
        match self
            .find_named("network", &path, "security_groups", name)
            .await?
        {
            Some(sg) => {
                let id = sg["id"].as_str().unwrap_or("");
                self.delete("network", &format!("/security-groups/{}", seg(id)))
                    .await
            }
            None => Ok(false),
        }
    }

    /// Delete server group `name` (if there is one).
    pub async fn delete_server_group(&self, name: &str) -> Result<bool, ProviderError> {
        let list = self
            .call("compute", Method::GET, "/os-server-groups", None)
            .await?;
        let id = list["server_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["name"] == name)
            .and_then(|g| g["id"].as_str())
            .map(str::to_string);
        match id {
            Some(id) => {
                self.delete("compute", &format!("/os-server-groups/{}", seg(&id)))
                    .await
            }
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_read_addresses_and_faults() {
        let v = json!({"id": "s1", "name": "req-1-0", "status": "ERROR",
            "fault": {"message": "No valid host was found."},
            "addresses": {"ml-training": [{"addr": "10.1.0.5"}, {"addr": "fd00::5"}]}});
        let s = Cloud::server_of(&v);
        assert_eq!(s.status, "ERROR");
        assert_eq!(s.fault.as_deref(), Some("No valid host was found."));
        assert_eq!(s.addresses, ["10.1.0.5", "fd00::5"]);
        assert_eq!(s.host, None);
    }
}
