//! strata's Proxmox VE provider: observes the VMs of one cluster and creates, updates
//! and deletes the ones the fleet owns; and keeps the resolvers and search domain of
//! the nodes the fleet declares (`node-dns`, through `/nodes/{node}/dns`; see [`dns`]:
//! one `GET /nodes` plus one call per declared node, only when the desired state
//! declares them).
//!
//! **Observe** costs three list calls per cluster, run concurrently, whatever the
//! number of guests: `GET /cluster/resources?type=vm`, `GET /cluster/ha/resources` and
//! `GET /cluster/ha/rules` (PVE 9's HA rules, `ha-rule` resources; see [`ha`]). A VM is owned when its tags contain the fleet's ownership tag;
//! owned VMs become `vm` resources (name = VM name, `external_id` = vmid, fields as in
//! the model's vocabulary: `cores` = maxcpu, `memory` = maxmem in MiB, `disk_gb` =
//! boot disk size in GiB (rounded down), `tags` sorted, `status`, `ha` (an HA resource);
//! `spec.node` says where it runs). Everything else, templates included, is listed as
//! unowned. The guest network lives only in each VM's configuration, so observe reads
//! **one configuration per owned VM** (never for unowned guests), concurrently within
//! the endpoint's limit (16 requests in flight unless the targets file says
//! otherwise): `nets` (the `netN` NICs in order, without the MAC addresses Proxmox
//! assigns), `ipconfig` (cloud-init `ipconfigN` per NIC), `nameserver` and
//! `searchdomain` (empty when unset). They are compared like any field, so a changed
//! address is drift and an update writes it back (cloud-init applies it at the
//! guest's next boot). A cluster with V owned VMs and N declared nodes costs
//! 3 + V + (1 + N) calls per observe.
//!
//! **Create** clones the template (by name, found in the cluster's resources) onto the
//! online node with the fewest VMs that can reach the storage, then configures cores,
//! memory, tags (the ownership tag first makes the VM strata's, so this comes right
//! after the clone), NICs, grows the boot disk, joins HA (when `ha`) and starts it. It is
//! crash- and race-safe: see [`create`].
//!
//! **Update** re-reads the configuration and refuses VMs without the ownership tag,
//! then applies only the fields that changed (configuration writes carry the `digest`
//! read just before; one retry after a conflict). A disk never shrinks (refused).
//!
//! **Delete** refuses unowned VMs, leaves HA, stops the VM and destroys it with
//! `purge` (and its unreferenced disks).
//!
//! Every task (clone, start, stop, resize, destroy) is awaited with a timeout of
//! [`client::TASK_TIMEOUT`], polling every [`client::POLL`].

mod client;
mod conf;
mod create;
mod dns;
pub mod guests;
mod ha;
mod modify;
pub mod nodes;

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use futures::future::join_all;
use parking_lot::Mutex;
use serde_json::Value;
use strata_plan::{
    Action, Kind, Observed, Platform, Resource, ResourceId, ResourceSet, Step, UnownedObject,
    VmFields, VmSpec,
};

use self::client::Client;
use self::conf::{GIB, MIB, as_u64, split_tags, text};
use crate::http::{Endpoint, EndpointConfig};
use crate::targets::ProxmoxTarget;
use crate::{ActContext, Outcome, Provider, ProviderError};

/// Requests in flight at most per cluster unless the targets file says otherwise.
pub(crate) const DEFAULT_CONCURRENCY: usize = 16;

/// An API client for `target` with the token, at most `concurrency` requests in flight.
fn api_client(target: &ProxmoxTarget, concurrency: usize) -> Result<Client, ProviderError> {
    let http = Endpoint::new(EndpointConfig {
        ca_pem: target.tls.ca_pem.clone(),
        insecure: target.tls.insecure,
        concurrency: concurrency.max(1),
        limit_key: Some(format!("proxmox {}", target.url)),
        ..EndpointConfig::default()
    })?;
    Client::new(
        &target.url,
        &target.token_id,
        target.token_secret.expose(),
        http,
    )
}

pub struct ProxmoxProvider {
    dc: String,
    owner_tag: String,
    api: Client,
    /// VMIDs this process is creating right now (never handed out twice here).
    reserved: Mutex<HashSet<u32>>,
    /// Creates in flight per node (so parallel creates spread over the nodes).
    placing: Mutex<HashMap<String, usize>>,
    /// HA writes from this process go one at a time.
    ha_lock: tokio::sync::Mutex<()>,
    /// The nodes whose resolvers the desired state manages (from `expect`), sorted.
    dns_nodes: Mutex<Vec<String>>,
    /// The VMs the desired state has in this DC (from `expect`), for the plan-time
    /// preconditions of their creates.
    planned: Mutex<Vec<create::PlannedVm>>,
}

impl ProxmoxProvider {
    pub fn new(dc: &str, target: &ProxmoxTarget, owner_tag: &str) -> Result<Self, ProviderError> {
        let parsed = url::Url::parse(&target.url).map_err(|e| {
            ProviderError::Refused(format!(
                "{dc}: Proxmox URL {:?} is not valid: {e}",
                target.url
            ))
        })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(ProviderError::Refused(format!(
                "{dc}: Proxmox URL {:?} must be https://HOST:8006",
                target.url
            )));
        }
        if !target.token_id.contains('!') {
            return Err(ProviderError::Refused(format!(
                "{dc}: Proxmox token_id {:?} must be USER@REALM!TOKENID",
                target.token_id
            )));
        }
        let api = api_client(target, target.concurrency.unwrap_or(DEFAULT_CONCURRENCY))?;
        Ok(ProxmoxProvider {
            dc: dc.to_string(),
            owner_tag: owner_tag.to_string(),
            api,
            reserved: Mutex::new(HashSet::new()),
            placing: Mutex::new(HashMap::new()),
            ha_lock: tokio::sync::Mutex::new(()),
            dns_nodes: Mutex::new(Vec::new()),
            planned: Mutex::new(Vec::new()),
        })
    }

    /// Every guest of the cluster (one list call).
    async fn guests(&self) -> Result<Vec<Guest>, ProviderError> {
        let data = self
            .api
            .get("/cluster/resources", &[("type", "vm".to_string())])
            .await?;
        Ok(parse_guests(&data))
    }

    /// Guests, nodes and storages (one list call).
    async fn cluster(&self) -> Result<Cluster, ProviderError> {
        let data = self.api.get("/cluster/resources", &[]).await?;
        Ok(Cluster::parse(&data))
    }

    async fn node_names(&self) -> Result<Vec<String>, ProviderError> {
        let data = self.api.get("/nodes", &[]).await?;
        let mut names: Vec<String> = data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.get("node").and_then(Value::as_str).map(String::from))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// One guest as `/cluster/resources` lists it.
#[derive(Clone, Debug)]
pub(crate) struct Guest {
    pub vmid: u32,
    pub name: String,
    pub node: String,
    /// `qemu` or `lxc`.
    pub kind: String,
    pub status: String,
    pub template: bool,
    pub tags: Vec<String>,
    pub lock: Option<String>,
    pub maxcpu: u64,
    pub maxmem: u64,
    pub maxdisk: u64,
}

impl Guest {
    fn parse(v: &Value) -> Option<Guest> {
        let vmid = u32::try_from(as_u64(v.get("vmid")?)?).ok()?;
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("qemu");
        if kind != "qemu" && kind != "lxc" {
            return None;
        }
        let num = |k: &str| v.get(k).and_then(as_u64).unwrap_or(0);
        Some(Guest {
            vmid,
            name: v
                .get("name")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| format!("VM {vmid}")),
            node: v.get("node").map(text).unwrap_or_default(),
            kind: kind.to_string(),
            status: v.get("status").map(text).unwrap_or_default(),
            template: num("template") == 1,
            tags: split_tags(&v.get("tags").map(text).unwrap_or_default()),
            lock: v.get("lock").map(text).filter(|l| !l.is_empty()),
            maxcpu: num("maxcpu"),
            maxmem: num("maxmem"),
            maxdisk: num("maxdisk"),
        })
    }

    fn is_vm(&self) -> bool {
        self.kind == "qemu" && !self.template
    }

    fn owned_by(&self, owner: &str) -> bool {
        self.is_vm() && self.tags.iter().any(|t| t == owner)
    }
}

fn parse_guests(data: &Value) -> Vec<Guest> {
    let mut out: Vec<Guest> = data
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Guest::parse)
        .collect();
    out.sort_by_key(|g| g.vmid);
    out
}

/// A storage as one node sees it.
#[derive(Clone, Debug)]
pub(crate) struct StorageAt {
    pub storage: String,
    pub node: String,
    pub shared: bool,
    pub available: bool,
}

/// The whole of `/cluster/resources`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cluster {
    pub guests: Vec<Guest>,
    /// `(node, online)`, sorted by name.
    pub nodes: Vec<(String, bool)>,
    pub storages: Vec<StorageAt>,
}

impl Cluster {
    fn parse(data: &Value) -> Cluster {
        let mut c = Cluster {
            guests: parse_guests(data),
            ..Cluster::default()
        };
        for e in data.as_array().into_iter().flatten() {
            match e.get("type").and_then(Value::as_str) {
                Some("node") => {
                    let name = e.get("node").map(text).unwrap_or_default();
                    let online = e.get("status").and_then(Value::as_str) == Some("online");
                    c.nodes.push((name, online));
                }
                Some("storage") => c.storages.push(StorageAt {
                    storage: e.get("storage").map(text).unwrap_or_default(),
                    node: e.get("node").map(text).unwrap_or_default(),
                    shared: e.get("shared").and_then(as_u64) == Some(1),
                    available: e
                        .get("status")
                        .and_then(Value::as_str)
                        .is_none_or(|s| s == "available"),
                }),
                _ => {}
            }
        }
        c.nodes.sort();
        c
    }

    fn guest(&self, vmid: u32) -> Option<&Guest> {
        self.guests.iter().find(|g| g.vmid == vmid)
    }
}

/// A VM resource with its guest network from its configuration: `nets` (NICs in
/// order, without MAC addresses), `ipconfig` (cloud-init per NIC), `nameserver` and
/// `searchdomain` (empty when unset, as desired state says "none").
fn with_guest_network(r: VmFields, conf: &modify::Conf) -> VmFields {
    let nets: Vec<String> = conf::indexed(conf, "net")
        .iter()
        .map(|n| conf::nic_without_mac(n))
        .collect();
    let value = |k: &str| conf.get(k).map(text).unwrap_or_default();
    VmFields {
        nets: Some(nets),
        ipconfig: Some(conf::indexed(conf, "ipconfig")),
        nameserver: Some(value("nameserver")),
        searchdomain: Some(value("searchdomain")),
        ..r
    }
}

/// A VM's fields as its configuration will have them after its next boot (what
/// `GET .../config` shows, pending changes included), the fields whose running value
/// differs (with that value: `cores` and `memory` against what `/cluster/resources`
/// says it runs with, the guest network against the configuration's current
/// section), and its `hotplug` setting.
fn observed_vm(
    running: VmFields,
    c: &modify::PendingConf,
) -> (VmFields, BTreeMap<String, Value>, Option<String>) {
    let now = with_guest_network(running.clone(), &c.current);
    let mut f = with_guest_network(running, &c.effective);
    let mut pending = BTreeMap::new();
    let cores = modify::conf_cpus(&c.effective);
    if cores != f.cores {
        pending.insert("cores".to_string(), Value::from(f.cores));
        f.cores = cores;
    }
    let memory = modify::conf_memory_mib(&c.effective);
    if memory != f.memory {
        pending.insert("memory".to_string(), Value::from(f.memory));
        f.memory = memory;
    }
    let as_value = |v: &Option<Vec<String>>| serde_json::to_value(v).unwrap_or(Value::Null);
    if now.nets != f.nets {
        pending.insert("nets".into(), as_value(&now.nets));
    }
    if now.ipconfig != f.ipconfig {
        pending.insert("ipconfig".into(), as_value(&now.ipconfig));
    }
    let hotplug = c.current.get("hotplug").map(text);
    (f, pending, hotplug)
}

/// The desired state of a VM, from a step's `desired` resource (absent fields are not
/// managed).
#[derive(Clone, Debug, Default)]
pub(crate) struct Desired {
    pub name: String,
    pub cores: Option<u64>,
    pub memory: Option<u64>,
    pub disk_gb: Option<u64>,
    pub tags: Option<Vec<String>>,
    pub status: Option<String>,
    /// HA-managed (an HA resource of the cluster).
    pub ha: Option<bool>,
    pub nets: Option<Vec<String>>,
    /// Cloud-init network settings of the guest: `ipconfigN` per NIC, in NIC order, and
    /// its resolvers and search domain. Written with the NICs, never compared.
    pub ipconfig: Option<Vec<String>>,
    pub nameserver: Option<String>,
    pub searchdomain: Option<String>,
    pub template: Option<String>,
    pub storage: Option<String>,
}

/// The fields of kind `vm` strata knows how to change.
const FIELDS: [&str; 10] = [
    "cores",
    "memory",
    "disk_gb",
    "tags",
    "status",
    "ha",
    "nets",
    "ipconfig",
    "nameserver",
    "searchdomain",
];

impl Desired {
    fn from_resource(r: &Resource) -> Result<Desired, ProviderError> {
        let f: VmFields = r.fields_as()?;
        let spec: VmSpec = r.spec_as()?;
        let positive = |k: &str, n: u64| {
            if n > 0 {
                Ok(Some(n))
            } else {
                Err(ProviderError::Refused(format!(
                    "{}: field `{k}` must be a positive integer",
                    r.id
                )))
            }
        };
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(Desired {
            name: r.id.name.clone(),
            cores: positive("cores", f.cores)?,
            memory: positive("memory", f.memory)?,
            disk_gb: positive("disk_gb", f.disk_gb)?,
            tags: Some(f.tags),
            status: Some(f.status),
            ha: Some(f.ha),
            nets: f.nets,
            ipconfig: f.ipconfig,
            nameserver: non_empty(f.nameserver),
            searchdomain: non_empty(f.searchdomain),
            template: non_empty(spec.template),
            storage: non_empty(spec.storage),
        })
    }

    fn wants_running(&self) -> bool {
        self.status.as_deref() != Some("stopped")
    }
}

#[async_trait]
impl Provider for ProxmoxProvider {
    fn platform(&self) -> Platform {
        Platform::Proxmox
    }

    fn dc(&self) -> &str {
        &self.dc
    }

    /// Remember which nodes' resolvers the fleet manages (`node-dns` resources).
    fn expect(&self, desired: &ResourceSet) {
        let mut nodes: Vec<String> = desired
            .iter()
            .filter(|r| r.id.dc == self.dc && r.id.kind == Kind::NodeDns)
            .map(|r| r.id.name.clone())
            .collect();
        nodes.sort();
        *self.dns_nodes.lock() = nodes;
        let planned: Vec<create::PlannedVm> = desired
            .iter()
            .filter(|r| r.id.dc == self.dc && r.id.kind == Kind::Vm)
            .map(|r| {
                let spec: VmSpec = r.spec_as().unwrap_or_default();
                create::PlannedVm {
                    name: r.id.name.clone(),
                    template: spec.template.filter(|t| !t.is_empty()),
                    storage: spec.storage.filter(|s| !s.is_empty()),
                }
            })
            .collect();
        *self.planned.lock() = planned;
    }

    async fn observe(&self) -> Result<Observed, ProviderError> {
        // The whole of `/cluster/resources` (guests, nodes, storages): the same one
        // call, and what the create preconditions need.
        let (cluster, resources, rules, dns) = tokio::join!(
            self.cluster(),
            self.ha_resources(),
            self.ha_rules(),
            self.observe_dns()
        );
        let (cluster, resources, rules) = (cluster?, resources?, rules?);
        let guests = cluster.guests.clone();
        let managed: HashSet<&str> = resources.iter().map(|r| r.sid.as_str()).collect();
        let failback: HashMap<String, bool> = resources
            .iter()
            .map(|r| (r.sid.clone(), r.failback))
            .collect();
        let mut out = Observed::default();
        for r in dns? {
            out.resources.insert(r);
        }
        let mut owned: Vec<(String, u32, ResourceId, VmFields)> = Vec::new();
        let mut seen: HashSet<ResourceId> = HashSet::new();
        for g in guests {
            let id = ResourceId::new(&self.dc, Kind::Vm, g.name.clone());
            let owns = g.owned_by(&self.owner_tag);
            let duplicate = owns && seen.contains(&id);
            if !owns || duplicate {
                if duplicate {
                    tracing::warn!(
                        "{}: VM {} is a second owned VM named {}; it is listed as unowned and left alone",
                        self.dc,
                        g.vmid,
                        g.name
                    );
                }
                out.unowned.push(UnownedObject {
                    dc: self.dc.clone(),
                    platform: Platform::Proxmox,
                    kind: g.kind.clone(),
                    name: g.name.clone(),
                    external_id: g.vmid.to_string(),
                });
                continue;
            }
            seen.insert(id.clone());
            let fields = VmFields {
                cores: g.maxcpu,
                memory: g.maxmem / MIB,
                disk_gb: g.maxdisk / GIB,
                nets: None,
                ipconfig: None,
                nameserver: None,
                searchdomain: None,
                tags: g.tags.clone(),
                status: g.status.clone(),
                ha: managed.contains(format!("vm:{}", g.vmid).as_str()),
            };
            owned.push((g.node.clone(), g.vmid, id, fields));
        }
        let owned_names: HashSet<String> =
            owned.iter().map(|(_, _, id, _)| id.name.clone()).collect();
        self.check_create_preconditions(&cluster, &owned_names)
            .await?;
        // HA rules: strata's (the ownership tag in the comment) are `ha-rule`
        // resources naming their VMs by name; the others are listed as unowned.
        let names: HashMap<String, String> = owned
            .iter()
            .map(|(_, vmid, id, _)| (format!("vm:{vmid}"), id.name.clone()))
            .collect();
        for rule in rules.iter().flatten() {
            if ha::owned_by(&rule.comment, &self.owner_tag) {
                out.resources
                    .insert(ha::rule_resource(&self.dc, rule, &names, &failback));
            } else {
                out.unowned.push(UnownedObject {
                    dc: self.dc.clone(),
                    platform: Platform::Proxmox,
                    kind: "ha-rule".into(),
                    name: rule.id.clone(),
                    external_id: rule.id.clone(),
                });
            }
        }
        // The guest network (NICs, cloud-init addresses and resolvers) lives only in
        // each VM's configuration: one read per owned VM, concurrently within the
        // endpoint's limit. Unowned guests are never read.
        // `GET .../pending` gives the current configuration and what waits for the
        // VM's next boot in one call.
        let configs = join_all(
            owned
                .iter()
                .map(|(node, vmid, _, _)| self.pending_config(node, *vmid)),
        )
        .await;
        for ((node, vmid, id, fields), conf) in owned.into_iter().zip(configs) {
            let (fields, pending, hotplug) = match conf {
                Ok(c) => observed_vm(fields, &c),
                // Gone between the list and the read: observed without its network,
                // so a plan updates it and the update finds it missing.
                Err(e) if client::is_missing(&e) => (fields, BTreeMap::new(), None),
                Err(e) => return Err(e),
            };
            let mut r = Resource::with_fields(id, &fields).with_spec(&VmSpec {
                node: Some(node),
                pending,
                hotplug,
                ..VmSpec::default()
            });
            r.owned = true;
            r.external_id = Some(vmid.to_string());
            out.resources.insert(r);
        }
        Ok(out)
    }

    async fn act(&self, step: &Step, ctx: &ActContext<'_>) -> Result<Outcome, ProviderError> {
        if step.id.dc == self.dc && step.id.kind == Kind::NodeDns {
            return self.act_dns(step).await;
        }
        if step.id.dc == self.dc && step.id.kind == Kind::HaRule {
            return self.act_rule(step).await;
        }
        if step.id.kind != Kind::Vm || step.id.dc != self.dc {
            return Err(ProviderError::Refused(format!(
                "{}: the Proxmox provider of {} manages VMs, HA rules and node resolvers only",
                step.id, self.dc
            )));
        }
        match step.action {
            Action::Create => self.create(step, ctx).await,
            Action::Update => self.update(step, ctx).await,
            Action::Delete => self.delete(step, ctx).await,
            Action::Adopt => Err(ProviderError::Refused(format!(
                "{}: strata does not take over VMs it did not create; tag the VM `{}` to hand it over",
                step.id, ctx.owner_tag
            ))),
        }
    }

    fn calls(&self) -> u64 {
        self.api.calls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn guests_and_the_cluster_parse() {
        let data = json!([
            {"id": "qemu/101", "vmid": 101, "type": "qemu", "node": "pve2", "name": "b", "status": "running",
             "template": 0, "tags": "strata-x;role", "maxcpu": 2, "maxmem": 2147483648u64, "maxdisk": 34359738368u64},
            {"id": "qemu/9000", "vmid": 9000, "type": "qemu", "node": "pve1", "name": "tmpl", "status": "stopped", "template": 1},
            {"id": "lxc/200", "vmid": "200", "type": "lxc", "node": "pve1", "name": "ct", "status": "running", "lock": "backup"},
            {"id": "node/pve1", "type": "node", "node": "pve1", "status": "online"},
            {"id": "node/pve2", "type": "node", "node": "pve2", "status": "offline"},
            {"id": "storage/pve1/ceph", "type": "storage", "node": "pve1", "storage": "ceph", "shared": 1, "status": "available"},
            {"id": "/pool/p", "type": "pool", "pool": "p"}
        ]);
        let c = Cluster::parse(&data);
        assert_eq!(c.guests.len(), 3);
        let b = c.guest(101).expect("101");
        assert!(b.owned_by("strata-x") && !b.owned_by("strata-y"));
        assert_eq!((b.maxmem / MIB, b.maxdisk / GIB), (2048, 32));
        assert!(c.guest(9000).expect("tmpl").template);
        assert_eq!(c.guest(200).expect("ct").lock.as_deref(), Some("backup"));
        assert!(!c.guest(200).expect("ct").is_vm());
        assert_eq!(c.nodes, vec![("pve1".into(), true), ("pve2".into(), false)]);
        assert!(c.storages[0].shared && c.storages[0].available);
    }

    #[test]
    fn desired_fields_are_checked() {
        let fields = VmFields {
            cores: 2,
            memory: 2048,
            disk_gb: 3,
            nets: Some(vec!["virtio,bridge=vmbr0,tag=10".into()]),
            ipconfig: None,
            nameserver: None,
            searchdomain: None,
            tags: vec!["strata-x".into()],
            status: "running".into(),
            ha: false,
        };
        let r = Resource::with_fields(ResourceId::new("fra1", Kind::Vm, "a"), &fields).with_spec(
            &VmSpec {
                template: Some("tmpl".into()),
                ..VmSpec::default()
            },
        );
        let d = Desired::from_resource(&r).expect("desired");
        assert_eq!(
            (d.cores, d.memory, d.disk_gb),
            (Some(2), Some(2048), Some(3))
        );
        assert_eq!(d.ha, Some(false));
        assert_eq!(d.nets.as_deref().map(<[String]>::len), Some(1));
        assert_eq!(d.template.as_deref(), Some("tmpl"));
        assert!(d.wants_running());
        let mut bad = r.clone();
        bad.fields.insert("cores".into(), Value::from("many"));
        assert!(matches!(
            Desired::from_resource(&bad),
            Err(ProviderError::Refused(_))
        ));
        let none = Resource::with_fields(
            ResourceId::new("fra1", Kind::Vm, "a"),
            &VmFields { cores: 0, ..fields },
        );
        assert!(matches!(
            Desired::from_resource(&none),
            Err(ProviderError::Refused(_))
        ));
    }
}
