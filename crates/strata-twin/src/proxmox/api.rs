//! Cluster-, node-, storage-, pool-, HA- and task-level methods, the ticket call, and
//! the contents of a fresh cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use super::auth;
use super::model::{self, Node, NodeDns, Pool, State, Storage, TEMPLATE_NAME, TEMPLATE_VMID, Vm};
use super::params::{self, Params};
use super::{ApiError, ApiResult, Pve, Reply};
use crate::DcContext;

pub(crate) const PVE_VERSION: &str = "9.1.2";
pub(crate) const PVE_REPOID: &str = "4f1e3b8c2d9a7e60";
/// The kernel a fresh node runs.
pub(crate) const PVE_KERNEL: &str = "6.17.2-1-pve";
/// What the repositories offer a fresh cluster: a newer point release and kernel, as a
/// cluster that has not been upgraded for a while sees.
pub(crate) const REPO_VERSION: &str = "9.1.5";
pub(crate) const REPO_KERNEL: &str = "6.17.4-2-pve";
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Typed access to validated parameters.
pub(crate) trait ParamsExt {
    fn s(&self, k: &str) -> Option<&str>;
    fn i(&self, k: &str) -> Option<i64>;
    fn b(&self, k: &str) -> Option<bool>;
    fn flag(&self, k: &str) -> bool {
        self.b(k).unwrap_or(false)
    }
    fn node(&self) -> &str {
        self.s("node").unwrap_or_default()
    }
    fn vmid(&self) -> u32 {
        self.i("vmid").unwrap_or_default() as u32
    }
}

impl ParamsExt for Params {
    fn s(&self, k: &str) -> Option<&str> {
        self.get(k).and_then(Value::as_str)
    }
    fn i(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(Value::as_i64)
    }
    fn b(&self, k: &str) -> Option<bool> {
        self.get(k).and_then(Value::as_bool)
    }
}

/// PVE's answer for a node name it cannot resolve.
pub(crate) fn check_node(st: &State, node: &str) -> Result<(), ApiError> {
    if st.node(node).is_some() {
        Ok(())
    } else {
        Err(ApiError::msg(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
        )))
    }
}

fn storage_kind_shared(kind: &str) -> bool {
    matches!(
        kind,
        "rbd" | "cephfs" | "nfs" | "cifs" | "iscsi" | "iscsidirect" | "pbs" | "glusterfs"
    )
}

fn storage_capacity(kind: &str) -> u64 {
    match kind {
        "rbd" | "cephfs" => 200 * TIB,
        "nfs" | "cifs" | "pbs" => 50 * TIB,
        "zfspool" | "lvmthin" | "lvm" => 7 * TIB,
        _ => 940 * GIB,
    }
}

/// The contents of a fresh cluster: nodes, storages, the template, the unowned guests.
pub(crate) fn fresh_state(ctx: &DcContext) -> State {
    let rnd = || ctx.shared.faults.random_u64();
    let t = ctx.shared.clock.now_secs();
    let names: Vec<String> = if ctx.seed.proxmox_nodes.is_empty() {
        vec!["pve1".into(), "pve2".into(), "pve3".into()]
    } else {
        ctx.seed.proxmox_nodes.clone()
    };
    let nodes: Vec<Node> = names
        .iter()
        .enumerate()
        .map(|(i, name)| Node {
            name: name.clone(),
            nodeid: i as u32 + 1,
            ip: format!("10.{}.10.{}", 10 + ctx.index % 200, 11 + i),
            maxcpu: 64,
            maxmem: 512 * GIB,
            maxdisk: 94 * GIB,
            boot: t - 12 * 86_400 - 3_671 * i as i64,
            // What the installer leaves: the installation's domain and its gateway.
            dns: NodeDns {
                search: Some("localdomain".into()),
                dns1: Some(format!("10.{}.10.1", 10 + ctx.index % 200)),
                dns2: None,
                dns3: None,
            },
            version: PVE_VERSION.into(),
            kernel: PVE_KERNEL.into(),
            kernel_installed: None,
            // `pveupdate` refreshes the package index daily.
            index: Some(model::Repo::default()),
            health: Default::default(),
            broken: None,
            power: None,
        })
        .collect();
    let mut storages: Vec<Storage> = ctx
        .seed
        .proxmox_storages
        .iter()
        .map(|s| Storage {
            id: s.name.clone(),
            kind: s.kind.clone(),
            content: if s.content.is_empty() {
                vec!["images".into(), "rootdir".into()]
            } else {
                s.content.clone()
            },
            shared: storage_kind_shared(&s.kind),
            total: storage_capacity(&s.kind),
            nodes: None,
            disabled: false,
        })
        .collect();
    if !storages.iter().any(|s| s.id == "local") {
        storages.insert(
            0,
            Storage {
                id: "local".into(),
                kind: "dir".into(),
                content: vec!["backup".into(), "iso".into(), "vztmpl".into()],
                shared: false,
                total: 94 * GIB,
                nodes: None,
                disabled: false,
            },
        );
    }
    if !storages.iter().any(Storage::has_images) {
        storages.push(Storage {
            id: "local-lvm".into(),
            kind: "lvmthin".into(),
            content: vec!["images".into(), "rootdir".into()],
            shared: false,
            total: storage_capacity("lvmthin"),
            nodes: None,
            disabled: false,
        });
    }
    let image_store = storages
        .iter()
        .find(|s| s.shared && s.has_images())
        .or_else(|| storages.iter().find(|s| s.has_images()))
        .cloned()
        .expect("an images storage");
    let secret: String = (0..4).map(|_| format!("{:016x}", rnd())).collect();
    let mut st = State {
        version: model::STATE_VERSION,
        secret,
        cluster: ctx.name.clone(),
        nodes,
        storages,
        vms: BTreeMap::new(),
        ha: BTreeMap::new(),
        ha_rules: BTreeMap::new(),
        pools: BTreeMap::new(),
        access: Default::default(),
        tasks: BTreeMap::new(),
        repo: model::Repo::default(),
        next_task: 1,
        next_pid: 0x1000 + (rnd() % 0x8000) as u32,
        pstart: 0x0100_0000 + (rnd() % 0x0100_0000) as u32,
        upids: HashMap::new(),
    };

    let first = st.nodes[0].name.clone();
    let stor = &image_store.id;
    let disk = model::volume_name(&image_store.kind, TEMPLATE_VMID, 0, true);
    let cloudinit = if image_store.kind == "dir" {
        format!("{TEMPLATE_VMID}/vm-{TEMPLATE_VMID}-cloudinit.qcow2")
    } else {
        format!("vm-{TEMPLATE_VMID}-cloudinit")
    };
    let template: BTreeMap<String, Value> = [
        ("agent", json!("1")),
        ("boot", json!("order=scsi0")),
        ("ciuser", json!("debian")),
        ("cores", json!(2)),
        ("ide2", json!(format!("{stor}:{cloudinit},media=cdrom"))),
        ("ipconfig0", json!("ip=dhcp")),
        ("memory", json!("2048")),
        (
            "meta",
            json!(format!("creation-qemu=10.1.2,ctime={}", t - 30 * 86_400)),
        ),
        ("name", json!(TEMPLATE_NAME)),
        (
            "net0",
            json!(format!("virtio={},bridge=vmbr0", model::random_mac(rnd()))),
        ),
        ("ostype", json!("l26")),
        ("scsi0", json!(format!("{stor}:{disk},discard=on,size=3G"))),
        ("scsihw", json!("virtio-scsi-pci")),
        ("serial0", json!("socket")),
        (
            "smbios1",
            json!(format!("uuid={}", model::uuid_from(rnd(), rnd()))),
        ),
        ("template", json!(1)),
        ("vga", json!("serial0")),
        ("vmgenid", json!(model::uuid_from(rnd(), rnd()))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    st.vms.insert(
        TEMPLATE_VMID,
        Vm {
            vmid: TEMPLATE_VMID,
            node: first,
            conf: template,
            running: false,
            started: 0,
            pid: 0,
            pending: Default::default(),
            snapshots: Default::default(),
        },
    );

    let mut vmid = 100u32;
    for n in 1..=ctx.seed.extra_vms {
        while st.vms.contains_key(&vmid) {
            vmid += 1;
        }
        let node = st.nodes[(n - 1) % st.nodes.len()].name.clone();
        let running = n % 2 == 1;
        let h = (vmid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let disk = model::volume_name(&image_store.kind, vmid, 0, false);
        let conf: BTreeMap<String, Value> = [
            ("boot", json!("order=scsi0;net0")),
            ("cores", json!(1 + (n % 4) as i64)),
            ("memory", json!(format!("{}", 2048 * (1 + n % 4)))),
            ("name", json!(format!("legacy-{n}"))),
            (
                "net0",
                json!(format!(
                    "virtio={},bridge=vmbr0,tag={}",
                    model::random_mac(h >> 8),
                    100 + n % 20
                )),
            ),
            ("ostype", json!("l26")),
            ("scsi0", json!(format!("{stor}:{disk},size=32G"))),
            ("scsihw", json!("virtio-scsi-pci")),
            (
                "smbios1",
                json!(format!("uuid={}", model::uuid_from(h, h.rotate_left(17)))),
            ),
            ("tags", json!("legacy")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        st.vms.insert(
            vmid,
            Vm {
                vmid,
                node,
                conf,
                running,
                started: if running {
                    t - 3_600 - (h % 500_000) as i64
                } else {
                    0
                },
                pid: if running {
                    2_000 + (h % 900_000) as u32
                } else {
                    0
                },
                pending: Default::default(),
                snapshots: Default::default(),
            },
        );
        vmid += 1;
    }
    st
}

impl Pve {
    /// `GET /version`: the version of the node that answers (the first one reachable).
    pub(crate) fn version(&self) -> ApiResult {
        let st = self.st.lock();
        let version = st
            .nodes
            .iter()
            .find(|n| n.health.is_online())
            .map(|n| n.version.clone())
            .unwrap_or_else(|| PVE_VERSION.to_string());
        Ok(super::nodes::version_json(&version).into())
    }

    /// `POST /access/ticket`: a ticket and CSRF token for a user and password (or a
    /// still valid ticket as the password, to renew it).
    pub(crate) fn ticket(&self, p: &Params) -> ApiResult {
        let mut username = p.s("username").unwrap_or_default().to_string();
        if !username.contains('@')
            && let Some(realm) = p.s("realm")
        {
            username = format!("{username}@{realm}");
        }
        let password = p.s("password").unwrap_or_default();
        let creds = &self.ctx.creds;
        let t = self.now();
        let ok = if password.starts_with("PVE:") {
            auth::verify_ticket(&self.secret, password, t).is_some_and(|u| u == username)
        } else {
            username == creds.proxmox_user && password == creds.proxmox_password
        };
        if !ok {
            return Err(ApiError::status(401, "authentication failure"));
        }
        let cluster = self.st.lock().cluster.clone();
        let all =
            |privs: &[&str]| -> Value { privs.iter().map(|p| (p.to_string(), json!(1))).collect() };
        Ok(json!({
            "username": username,
            "ticket": auth::make_ticket(&self.secret, &username, t),
            "CSRFPreventionToken": auth::make_csrf(&self.secret, &username, t),
            "clustername": cluster,
            "cap": {
                "vms": all(&["VM.Allocate", "VM.Audit", "VM.Clone", "VM.Config.CPU", "VM.Config.Disk",
                    "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.PowerMgmt"]),
                "storage": all(&["Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.Audit"]),
                "nodes": all(&["Sys.Audit", "Sys.Console", "Sys.Modify"]),
                "dc": all(&["Sys.Audit", "SDN.Audit"]),
                "access": all(&["User.Modify", "Permissions.Modify"]),
            },
        })
        .into())
    }

    fn node_usage(st: &State, node: &str) -> (u64, f64, usize) {
        let running: Vec<&Vm> = st
            .vms
            .values()
            .filter(|v| v.node == node && v.running)
            .collect();
        let mem = 6 * GIB + running.iter().map(|v| v.mem_used()).sum::<u64>();
        let cpu = (0.02 + 0.004 * running.len() as f64).min(1.0);
        (mem, cpu, running.len())
    }

    fn node_entry(st: &State, n: &Node, t: i64) -> Value {
        if !n.health.in_cluster() {
            // pvestatd has no fresh data of a node corosync does not see: only what the
            // cluster configuration knows (pve-manager `PVE/API2/Nodes.pm` `index`).
            return json!({
                "id": format!("node/{}", n.name),
                "node": n.name,
                "type": "node",
                "status": "offline",
                "level": "",
                "ssl_fingerprint": fingerprint(&n.name),
            });
        }
        let (mem, cpu, _) = Self::node_usage(st, &n.name);
        json!({
            "id": format!("node/{}", n.name),
            "node": n.name,
            "type": "node",
            "status": "online",
            "level": "",
            "cpu": cpu,
            "maxcpu": n.maxcpu,
            "mem": mem.min(n.maxmem),
            "maxmem": n.maxmem,
            "disk": 11 * GIB,
            "maxdisk": n.maxdisk,
            "uptime": t - n.boot,
            "ssl_fingerprint": fingerprint(&n.name),
        })
    }

    pub(crate) fn nodes(&self) -> ApiResult {
        let st = self.st.lock();
        let t = self.now();
        let list: Vec<Value> = st
            .nodes
            .iter()
            .map(|n| Self::node_entry(&st, n, t))
            .collect();
        Ok(json!(list).into())
    }

    pub(crate) fn node_status(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let n = st
            .node(p.node())
            .cloned()
            .ok_or_else(|| ApiError::msg("no node"))?;
        let (mem, cpu, running) = Self::node_usage(&st, &n.name);
        let mem = mem.min(n.maxmem);
        let load = format!("{:.2}", 0.3 + running as f64 * 0.05);
        Ok(json!({
            "uptime": self.now() - n.boot,
            "cpu": cpu,
            "wait": 0.0004,
            "idle": 0,
            "loadavg": [load.clone(), load.clone(), load],
            "kversion": format!("Linux {} #1 SMP PREEMPT_DYNAMIC PMX {} (2025-10-21T11:55Z) x86_64", n.kernel, n.kernel.trim_end_matches("-pve")),
            "pveversion": format!("pve-manager/{}/{}", n.version, super::nodes::repoid(&n.version)),
            "cpuinfo": {
                "cpus": n.maxcpu, "sockets": 2, "cores": n.maxcpu / 4, "mhz": "2900.000",
                "model": "AMD EPYC 9354 32-Core Processor", "hvm": "1", "user_hz": 100,
                "flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov svm",
            },
            "memory": {"total": n.maxmem, "used": mem, "free": n.maxmem - mem, "available": n.maxmem - mem},
            "swap": {"total": 8 * GIB, "used": 0, "free": 8 * GIB},
            "rootfs": {"total": n.maxdisk, "used": 11 * GIB, "free": n.maxdisk - 11 * GIB, "avail": n.maxdisk - 16 * GIB},
            "ksm": {"shared": 0},
            "boot-info": {"mode": "efi", "secureboot": 0},
            "current-kernel": {"sysname": "Linux", "release": n.kernel, "machine": "x86_64",
                "version": format!("#1 SMP PREEMPT_DYNAMIC PMX {} (2025-10-21T11:55Z)", n.kernel.trim_end_matches("-pve"))},
        })
        .into())
    }

    /// `GET /nodes/{node}/dns`: only the keys that are set, as PVE reads resolv.conf.
    pub(crate) fn dns_get(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let dns = st.node(p.node()).map(|n| n.dns.clone()).unwrap_or_default();
        let mut out = serde_json::Map::new();
        for (k, v) in [
            ("search", dns.search),
            ("dns1", dns.dns1),
            ("dns2", dns.dns2),
            ("dns3", dns.dns3),
        ] {
            if let Some(v) = v {
                out.insert(k.into(), Value::from(v));
            }
        }
        Ok(Value::Object(out).into())
    }

    /// `PUT /nodes/{node}/dns`: rewrites resolv.conf from the parameters, so name
    /// servers not given are removed (as PVE does).
    pub(crate) fn dns_put(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        check_node(&st, p.node())?;
        let node = p.node().to_string();
        let dns = NodeDns {
            search: p.s("search").map(String::from),
            dns1: p.s("dns1").map(String::from),
            dns2: p.s("dns2").map(String::from),
            dns3: p.s("dns3").map(String::from),
        };
        if let Some(n) = st.nodes.iter_mut().find(|n| n.name == node) {
            n.dns = dns;
        }
        Ok(Value::Null.into())
    }

    pub(crate) fn network(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let ip = st.node(p.node()).map(|n| n.ip.clone()).unwrap_or_default();
        let gw = format!(
            "{}.1",
            ip.rsplit_once('.').map(|(a, _)| a).unwrap_or("10.0.0")
        );
        let eth = |name: &str, prio: u32| {
            json!({"iface": name, "type": "eth", "active": 1, "exists": 1, "autostart": 1,
                "method": "manual", "method6": "manual", "families": [], "priority": prio})
        };
        let all = vec![
            eth("eno1", 3),
            eth("eno2", 4),
            json!({"iface": "bond0", "type": "bond", "active": 1, "autostart": 1, "method": "manual",
                "method6": "manual", "families": ["inet"], "slaves": "eno1 eno2", "bond_mode": "802.3ad",
                "bond-xmit-hash-policy": "layer3+4", "bond_miimon": "100", "priority": 5}),
            json!({"iface": "vmbr0", "type": "bridge", "active": 1, "autostart": 1, "method": "static",
                "method6": "manual", "families": ["inet"], "address": ip, "netmask": "24",
                "cidr": format!("{ip}/24"), "gateway": gw, "bridge_ports": "bond0", "bridge_stp": "off",
                "bridge_fd": "0", "bridge_vlan_aware": 1, "bridge_vids": "2-4094", "priority": 6}),
        ];
        let list: Vec<Value> = match p.s("type") {
            None => all,
            Some("any_bridge") | Some("any_local_bridge") => {
                all.into_iter().filter(|i| i["type"] == "bridge").collect()
            }
            Some(t) => all.into_iter().filter(|i| i["type"] == t).collect(),
        };
        Ok(json!(list).into())
    }

    /// Bytes used per (storage, node) — shared storages under the node `""`.
    fn storage_usage(st: &State) -> HashMap<(String, String), u64> {
        let shared: BTreeSet<&str> = st
            .storages
            .iter()
            .filter(|s| s.shared)
            .map(|s| s.id.as_str())
            .collect();
        let mut used: HashMap<(String, String), u64> = HashMap::new();
        for vm in st.vms.values() {
            for (_, d) in vm.drives() {
                if d.is_cdrom() {
                    continue;
                }
                if let Some((sid, _)) = d.volume() {
                    let node = if shared.contains(sid) {
                        String::new()
                    } else {
                        vm.node.clone()
                    };
                    *used.entry((sid.to_string(), node)).or_default() += d.size_bytes();
                }
            }
        }
        used
    }

    fn storage_entry(s: &Storage, node: &str, usage: &HashMap<(String, String), u64>) -> Value {
        let key = (
            s.id.clone(),
            if s.shared {
                String::new()
            } else {
                node.to_string()
            },
        );
        let used = usage.get(&key).copied().unwrap_or(0).min(s.total);
        json!({
            "storage": s.id,
            "type": s.kind,
            "content": s.content_string(),
            "active": 1,
            "enabled": 1,
            "shared": u8::from(s.shared),
            "total": s.total,
            "used": used,
            "avail": s.total - used,
            "used_fraction": used as f64 / s.total.max(1) as f64,
        })
    }

    pub(crate) fn node_storage(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let usage = Self::storage_usage(&st);
        let want: Vec<&str> = p
            .s("content")
            .map(|c| params::split_list(c).collect())
            .unwrap_or_default();
        let list: Vec<Value> = st
            .storages
            .iter()
            .filter(|s| p.s("storage").is_none_or(|id| id == s.id))
            .filter(|s| want.iter().all(|c| s.content.iter().any(|x| x == c)))
            .map(|s| Self::storage_entry(s, p.node(), &usage))
            .collect();
        Ok(json!(list).into())
    }

    pub(crate) fn node_storage_status(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let id = p.s("storage").unwrap_or_default();
        let s = st
            .storage(id)
            .ok_or_else(|| ApiError::msg(format!("storage '{id}' does not exist")))?;
        let usage = Self::storage_usage(&st);
        Ok(Self::storage_entry(s, p.node(), &usage).into())
    }

    fn storage_config_json(s: &Storage) -> Value {
        let mut v =
            json!({"storage": s.id, "type": s.kind, "content": s.content_string(), "digest": ""});
        if s.shared {
            v["shared"] = json!(1);
        }
        match s.kind.as_str() {
            "rbd" => {
                v["pool"] = json!(s.id);
                v["krbd"] = json!(0);
            }
            "zfspool" => {
                v["pool"] = json!("rpool/data");
                v["sparse"] = json!(1);
            }
            "lvmthin" => {
                v["vgname"] = json!("pve");
                v["thinpool"] = json!("data");
            }
            "dir" => {
                v["path"] = json!(if s.id == "local" {
                    "/var/lib/vz".to_string()
                } else {
                    format!("/mnt/{}", s.id)
                })
            }
            _ => {}
        }
        v
    }

    fn storage_cfg_digest(st: &State) -> String {
        super::sha1::sha1_hex(
            serde_json::to_string(&st.storages)
                .unwrap_or_default()
                .as_bytes(),
        )
    }

    pub(crate) fn storage_list(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        let digest = Self::storage_cfg_digest(&st);
        let list: Vec<Value> = st
            .storages
            .iter()
            .filter(|s| p.s("type").is_none_or(|t| t == s.kind))
            .map(|s| {
                let mut v = Self::storage_config_json(s);
                v["digest"] = json!(digest);
                v
            })
            .collect();
        Ok(json!(list).into())
    }

    pub(crate) fn storage_get(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        let id = p.s("storage").unwrap_or_default();
        let s = st
            .storage(id)
            .ok_or_else(|| ApiError::msg(format!("storage '{id}' does not exist")))?;
        let mut v = Self::storage_config_json(s);
        v["digest"] = json!(Self::storage_cfg_digest(&st));
        Ok(v.into())
    }

    /// `GET /cluster/status`: corosync's view; nodes that are down are `online: 0`
    /// and the cluster is quorate while more than half of the nodes are members.
    pub(crate) fn cluster_status(&self) -> ApiResult {
        let st = self.st.lock();
        let mut list = vec![json!({
            "type": "cluster",
            "id": "cluster",
            "name": st.cluster,
            "nodes": st.nodes.len(),
            "quorate": u8::from(super::nodes::quorate(&st)),
            "version": st.nodes.len() + 2,
        })];
        let local = super::nodes::serving_node(&st).map(String::from);
        for n in &st.nodes {
            list.push(json!({
                "type": "node",
                "id": format!("node/{}", n.name),
                "name": n.name,
                "nodeid": n.nodeid,
                "ip": n.ip,
                "online": u8::from(n.health.in_cluster()),
                "local": u8::from(local.as_deref() == Some(n.name.as_str())),
                "level": "",
            }));
        }
        Ok(json!(list).into())
    }

    /// HA state of a guest as `/cluster/resources` shows it.
    fn hastate(st: &State, vmid: u32) -> Option<String> {
        let opts = st.ha.get(&format!("vm:{vmid}"))?;
        let state = opts
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("started");
        Some(match state {
            "enabled" => "started".into(),
            other => other.to_string(),
        })
    }

    pub(crate) fn vm_resource(st: &State, vm: &Vm, t: i64) -> Value {
        let mut e = json!({
            "id": format!("qemu/{}", vm.vmid),
            "vmid": vm.vmid,
            "node": vm.node,
            "type": "qemu",
            "name": vm.name(),
            "status": if st.node(&vm.node).is_none_or(|n| !n.health.in_cluster()) {
                // A guest on a node the cluster cannot see (offline, or removed from
                // the cluster with its guests' configurations left behind).
                "unknown"
            } else if vm.running {
                "running"
            } else {
                "stopped"
            },
            "template": u8::from(vm.is_template()),
            "uptime": vm.uptime(t),
            "maxcpu": vm.cpus(),
            "cpu": vm.cpu_used(),
            "maxmem": vm.maxmem(),
            "mem": vm.mem_used(),
            "maxdisk": vm.maxdisk(),
            "disk": 0,
            "netin": 0,
            "netout": 0,
            "diskread": 0,
            "diskwrite": 0,
        });
        if let Some(pool) = st.pool_of(vm.vmid) {
            e["pool"] = json!(pool);
        }
        if let Some(l) = vm.lock() {
            e["lock"] = json!(l);
        }
        if let Some(tags) = vm.tags() {
            e["tags"] = json!(tags);
        }
        if let Some(h) = Self::hastate(st, vm.vmid) {
            e["hastate"] = json!(h);
        }
        e
    }

    pub(crate) fn resources(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        let t = self.now();
        let ty = p.s("type");
        let mut list = Vec::new();
        if ty.is_none() {
            for id in st.pools.keys() {
                list.push(json!({"id": format!("/pool/{id}"), "pool": id, "type": "pool"}));
            }
        }
        if ty.is_none() || ty == Some("vm") {
            // PVE sorts the VMIDs as strings.
            let mut ids: Vec<String> = st.vms.keys().map(|k| k.to_string()).collect();
            ids.sort();
            for id in ids {
                if let Some(vm) = id.parse().ok().and_then(|k: u32| st.vms.get(&k)) {
                    list.push(Self::vm_resource(&st, vm, t));
                }
            }
        }
        if ty.is_none() || ty == Some("node") {
            for n in &st.nodes {
                list.push(Self::node_entry(&st, n, t));
            }
        }
        if ty.is_none() || ty == Some("storage") {
            let usage = Self::storage_usage(&st);
            for s in &st.storages {
                // Only where it is configured and enabled (pvestatd reports the
                // storages active on each node).
                for n in st.nodes.iter().filter(|n| s.usable_on(&n.name).is_ok()) {
                    let e = Self::storage_entry(s, &n.name, &usage);
                    let (used, total) = (e["used"].clone(), e["total"].clone());
                    list.push(json!({
                        "id": format!("storage/{}/{}", n.name, s.id),
                        "storage": s.id,
                        "node": n.name,
                        "type": "storage",
                        "plugintype": s.kind,
                        "status": "available",
                        "shared": u8::from(s.shared),
                        "content": s.content_string(),
                        "disk": used,
                        "maxdisk": total,
                    }));
                }
            }
        }
        Ok(json!(list).into())
    }

    /// `GET /cluster/nextid`: the lowest free VMID (a string, as PVE returns it). Nothing
    /// is reserved: two callers get the same answer until one of them creates the guest.
    pub(crate) fn nextid(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        if let Some(v) = p.i("vmid") {
            if st.vms.contains_key(&(v as u32)) {
                return Err(ApiError::param("vmid", format!("VM {v} already exists")));
            }
            return Ok(json!(v.to_string()).into());
        }
        match st.next_free_vmid() {
            Some(id) => Ok(json!(id.to_string()).into()),
            None => Err(ApiError::msg(
                "unable to get any free VMID in range [100, 1000000]",
            )),
        }
    }

    // ---- tasks ----

    fn find_task(st: &State, node: &str, upid: &str) -> Result<u64, ApiError> {
        let segs: Vec<&str> = upid.split(':').collect();
        let valid = segs.len() == 9
            && segs[0] == "UPID"
            && params::is_hostname_label(segs[1])
            && segs[8].is_empty()
            && [segs[2], segs[4]]
                .iter()
                .all(|x| x.len() == 8 && x.bytes().all(|c| c.is_ascii_hexdigit()))
            && (8..=9).contains(&segs[3].len());
        if !valid {
            return Err(ApiError::param("upid", "unable to parse worker upid"));
        }
        match st.upids.get(upid) {
            Some(seq) if st.tasks.get(seq).is_some_and(|t| t.node == node) => Ok(*seq),
            _ => Err(ApiError::param("upid", "no such task")),
        }
    }

    pub(crate) fn tasks(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let start = p.i("start").unwrap_or(0).max(0) as usize;
        let mut limit = p.i("limit").unwrap_or(50).max(0) as usize;
        let source = p.s("source").unwrap_or("archive");
        let mut filter: BTreeSet<&str> = ["ok", "warning", "error", "unknown"].into();
        let lowered: Vec<String>;
        if let Some(sf) = p.s("statusfilter")
            && !p.flag("errors")
        {
            lowered = params::split_list(sf)
                .map(|s| s.to_ascii_lowercase())
                .collect();
            filter = lowered.iter().map(String::as_str).collect();
        } else if p.flag("errors") {
            filter.remove("ok");
        }
        let matches = |t: &model::Task| -> bool {
            if let Some(u) = p.s("userfilter")
                && !t.user.to_lowercase().contains(&u.to_lowercase())
            {
                return false;
            }
            if p.s("typefilter").is_some_and(|ty| ty != t.ttype) {
                return false;
            }
            if let Some(v) = p.i("vmid")
                && t.id != v.to_string()
            {
                return false;
            }
            if p.i("since").is_some_and(|s| t.starttime < s)
                || p.i("until").is_some_and(|u| t.starttime > u)
            {
                return false;
            }
            filter.contains(t.status_type())
        };
        let mut count = 0usize;
        let mut out = Vec::new();
        let node_tasks = || st.tasks.values().rev().filter(|t| t.node == p.node());
        let mut take = |t: &model::Task| {
            if !matches(t) {
                return;
            }
            count += 1;
            if count <= start || limit == 0 {
                return;
            }
            out.push(t.list_json());
            limit -= 1;
        };
        if source == "active" || source == "all" {
            node_tasks()
                .filter(|t| t.status.is_none())
                .for_each(&mut take);
        }
        if source != "active" {
            node_tasks()
                .filter(|t| t.status.is_some())
                .for_each(&mut take);
        }
        Ok(Reply {
            data: json!(out),
            total: Some(count),
        })
    }

    pub(crate) fn task_index(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        Self::find_task(&st, p.node(), p.s("upid").unwrap_or_default())?;
        Ok(json!([{"name": "log"}, {"name": "status"}]).into())
    }

    pub(crate) fn task_status(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let seq = Self::find_task(&st, p.node(), p.s("upid").unwrap_or_default())?;
        Ok(st.tasks[&seq].status_json().into())
    }

    pub(crate) fn task_log(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        check_node(&st, p.node())?;
        let seq = Self::find_task(&st, p.node(), p.s("upid").unwrap_or_default())?;
        let t = &st.tasks[&seq];
        let start = p.i("start").unwrap_or(0).max(0) as usize;
        let limit = p.i("limit").unwrap_or(50).max(0) as usize;
        let lines: Vec<Value> = t
            .log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, l)| json!({"n": i + 1, "t": l}))
            .collect();
        let total = if t.log.is_empty() { 1 } else { t.log.len() };
        let lines = if t.log.is_empty() && start == 0 {
            vec![json!({"n": 1, "t": "no content"})]
        } else {
            lines
        };
        Ok(Reply {
            data: json!(lines),
            total: Some(total),
        })
    }

    // ---- HA ----

    /// `vm:100` from `vm:100` or `100`.
    fn parse_sid(st: &State, sid: &str) -> Result<(String, String, String), ApiError> {
        if !sid.is_empty() && sid.bytes().all(|c| c.is_ascii_digit()) {
            let id: u32 = sid.parse().unwrap_or(0);
            if st.vms.contains_key(&id) {
                return Ok((format!("vm:{id}"), "vm".into(), id.to_string()));
            }
            return Err(ApiError::msg(format!(
                "unable to detect SID from VMID - VM/CT {sid} does not exist"
            )));
        }
        match sid.split_once(':') {
            Some((t, n)) if !t.is_empty() && !n.is_empty() => {
                Ok((sid.to_string(), t.to_string(), n.to_string()))
            }
            _ => Err(ApiError::msg(format!("unable to parse service id '{sid}'"))),
        }
    }

    fn ha_json(st: &State, sid: &str, opts: &BTreeMap<String, Value>) -> Value {
        let mut v = json!({"sid": sid, "type": sid.split(':').next().unwrap_or("vm"), "digest": st.ha_digest()});
        // The defaults of what is unset (pve-ha-manager `src/PVE/HA/Config.pm`
        // `read_and_check_resources_config`; `failback` is PVE 9's).
        v["state"] = json!("started");
        v["failback"] = json!(1);
        v["max_restart"] = json!(1);
        v["max_relocate"] = json!(1);
        for (k, val) in opts {
            v[k] = val.clone();
        }
        v
    }

    pub(crate) fn ha_list(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        let list: Vec<Value> = st
            .ha
            .iter()
            .filter(|(sid, _)| {
                p.s("type")
                    .is_none_or(|t| sid.starts_with(&format!("{t}:")))
            })
            .map(|(sid, o)| Self::ha_json(&st, sid, o))
            .collect();
        Ok(json!(list).into())
    }

    pub(crate) fn ha_get(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        let (sid, _, _) = Self::parse_sid(&st, p.s("sid").unwrap_or_default())?;
        let opts = st
            .ha
            .get(&sid)
            .ok_or_else(|| ApiError::msg(format!("no such resource '{sid}'")))?;
        Ok(Self::ha_json(&st, &sid, opts).into())
    }

    fn ha_options(p: &Params) -> BTreeMap<String, Value> {
        [
            "state",
            "comment",
            "max_restart",
            "max_relocate",
            "failback",
        ]
        .iter()
        .filter_map(|k| {
            let v = p.get(*k)?;
            let v = match v {
                Value::Bool(b) => json!(u8::from(*b)),
                other => other.clone(),
            };
            Some((k.to_string(), v))
        })
        .collect()
    }

    pub(crate) fn ha_create(self: &std::sync::Arc<Self>, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let (sid, ty, name) = Self::parse_sid(&st, p.s("sid").unwrap_or_default())?;
        if let Some(t) = p.s("type")
            && t != ty
        {
            return Err(ApiError::msg("types does not match"));
        }
        if p.get("group").is_some() {
            return Err(ApiError::msg(
                "invalid parameter 'group': ha groups have been migrated to rules",
            ));
        }
        if ty != "vm" && ty != "ct" {
            return Err(ApiError::msg(format!("unknown resource type '{ty}'")));
        }
        let vmid: u32 = name
            .parse()
            .map_err(|_| ApiError::msg(format!("invalid VMID '{name}'")))?;
        if ty == "ct" || !st.vms.contains_key(&vmid) {
            return Err(ApiError::msg(format!(
                "resource '{ty}:{name}' does not exist in cluster"
            )));
        }
        if st.ha.contains_key(&sid) {
            return Err(ApiError::msg(format!(
                "create resource failed: resource ID '{sid}' already defined"
            )));
        }
        st.ha.insert(sid, Self::ha_options(p));
        self.ha_reconcile(&mut st, vmid);
        Ok(Value::Null.into())
    }

    pub(crate) fn ha_put(self: &std::sync::Arc<Self>, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let (sid, _, name) = Self::parse_sid(&st, p.s("sid").unwrap_or_default())?;
        if p.get("group").is_some() {
            return Err(ApiError::msg(
                "invalid parameter 'group': ha groups have been migrated to rules",
            ));
        }
        if let Some(d) = p.s("digest")
            && d != st.ha_digest()
        {
            return Err(ApiError::msg(
                "update resources config failed: detected modified configuration - file changed by other user? Try again.",
            ));
        }
        let digest_free = Self::ha_options(p);
        let Some(opts) = st.ha.get_mut(&sid) else {
            return Err(ApiError::msg(format!(
                "update resources config failed: no such resource '{sid}'"
            )));
        };
        if let Some(del) = p.s("delete") {
            for k in params::split_list(del) {
                opts.remove(k);
            }
        }
        opts.extend(digest_free);
        if let Ok(vmid) = name.parse() {
            self.ha_reconcile(&mut st, vmid);
        }
        Ok(Value::Null.into())
    }

    pub(crate) fn ha_delete(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let (sid, _, _) = Self::parse_sid(&st, p.s("sid").unwrap_or_default())?;
        if st.ha.remove(&sid).is_none() {
            return Err(ApiError::msg(format!(
                "cannot delete service '{sid}', not HA managed!"
            )));
        }
        if p.b("purge").unwrap_or(true) {
            // The resource leaves the rules naming it; rules left empty go.
            st.ha_rules.retain(|_, o| {
                let Some(list) = o.get("resources").and_then(Value::as_str) else {
                    return true;
                };
                let rest: Vec<&str> = list.split(',').filter(|x| *x != sid).collect();
                if rest.is_empty() {
                    return false;
                }
                let rest = rest.join(",");
                o.insert("resources".into(), json!(rest));
                true
            });
        }
        Ok(Value::Null.into())
    }

    // ---- HA rules (PVE 9 replaces HA groups with node-affinity rules) ----

    fn rules_digest(st: &State) -> String {
        super::sha1::sha1_hex(
            serde_json::to_string(&st.ha_rules)
                .unwrap_or_default()
                .as_bytes(),
        )
    }

    fn rule_json(st: &State, id: &str, opts: &BTreeMap<String, Value>) -> Value {
        let mut v = json!({"rule": id, "digest": Self::rules_digest(st)});
        for (k, val) in opts {
            v[k] = val.clone();
        }
        v
    }

    /// Check and normalise `resources` (`vm:100,101` → `vm:100,vm:101`); each must be
    /// an HA resource.
    fn rule_resources(st: &State, list: &str, ctx: &str) -> Result<String, ApiError> {
        let mut sids = Vec::new();
        for item in params::split_list(list) {
            let (sid, _, _) = Self::parse_sid(st, item)?;
            sids.push(sid);
        }
        sids.sort();
        sids.dedup();
        if sids.is_empty() {
            return Err(ApiError::msg(format!("{ctx}: no resources were specified")));
        }
        let unmanaged: Vec<&str> = sids
            .iter()
            .filter(|s| !st.ha.contains_key(*s))
            .map(String::as_str)
            .collect();
        if !unmanaged.is_empty() {
            return Err(ApiError::msg(format!(
                "{ctx}: cannot use unmanaged resource(s) {}.",
                unmanaged.join(", ")
            )));
        }
        Ok(sids.join(","))
    }

    fn rule_nodes(st: &State, list: &str, ctx: &str) -> Result<String, ApiError> {
        let nodes: Vec<&str> = params::split_list(list).collect();
        if nodes.is_empty() {
            return Err(ApiError::msg(format!("{ctx}: no nodes were specified")));
        }
        let missing: Vec<&str> = nodes
            .iter()
            .map(|n| n.split(':').next().unwrap_or(n))
            .filter(|n| st.node(n).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::msg(format!(
                "{ctx}: cannot use non-existent node(s) {}.",
                missing.join(", ")
            )));
        }
        Ok(nodes.join(","))
    }

    /// Whether a rule of type `ty` has the option `key` (besides `type`).
    fn rule_allows(ty: &str, key: &str) -> bool {
        match key {
            "resources" | "comment" | "disable" => true,
            "nodes" | "strict" => ty == "node-affinity",
            "affinity" => ty == "resource-affinity",
            _ => false,
        }
    }

    fn rule_options(
        st: &State,
        ty: &str,
        p: &Params,
        ctx: &str,
    ) -> Result<BTreeMap<String, Value>, ApiError> {
        let mut opts = BTreeMap::new();
        for key in [
            "resources",
            "nodes",
            "strict",
            "affinity",
            "comment",
            "disable",
        ] {
            let Some(v) = p.get(key) else { continue };
            if !Self::rule_allows(ty, key) {
                return Err(ApiError::param(key, params::NOT_IN_SCHEMA));
            }
            let v = match (key, v) {
                ("resources", Value::String(s)) => json!(Self::rule_resources(st, s, ctx)?),
                ("nodes", Value::String(s)) => json!(Self::rule_nodes(st, s, ctx)?),
                (_, Value::Bool(b)) => json!(u8::from(*b)),
                (_, other) => other.clone(),
            };
            opts.insert(key.to_string(), v);
        }
        if opts.get("disable") == Some(&json!(0)) {
            opts.remove("disable");
        }
        Ok(opts)
    }

    pub(crate) fn rule_list(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        let want = match p.s("resource") {
            Some(r) => Some(Self::parse_sid(&st, r)?.0),
            None => None,
        };
        let of_type = |o: &BTreeMap<String, Value>| {
            p.s("type")
                .is_none_or(|t| o.get("type").and_then(Value::as_str) == Some(t))
        };
        let names = |o: &BTreeMap<String, Value>| {
            want.as_ref().is_none_or(|sid| {
                o.get("resources")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.split(',').any(|x| x == sid))
            })
        };
        let list: Vec<Value> = st
            .ha_rules
            .iter()
            .filter(|(_, o)| of_type(o) && names(o))
            .map(|(id, o)| Self::rule_json(&st, id, o))
            .collect();
        Ok(json!(list).into())
    }

    pub(crate) fn rule_get(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        let id = p.s("rule").unwrap_or_default();
        let o = st
            .ha_rules
            .get(id)
            .ok_or_else(|| ApiError::msg(format!("no such ha rule '{id}'")))?;
        Ok(Self::rule_json(&st, id, o).into())
    }

    pub(crate) fn rule_create(&self, p: &Params) -> ApiResult {
        const CTX: &str = "create ha rule failed";
        let mut st = self.st.lock();
        let id = p.s("rule").unwrap_or_default().to_string();
        let ty = p.s("type").unwrap_or_default().to_string();
        if ty == "node-affinity" && p.get("nodes").is_none() {
            return Err(ApiError::param("nodes", params::MISSING));
        }
        if ty == "resource-affinity" && p.get("affinity").is_none() {
            return Err(ApiError::param("affinity", params::MISSING));
        }
        if st.ha_rules.contains_key(&id) {
            return Err(ApiError::msg(format!(
                "{CTX}: HA rule '{id}' already defined"
            )));
        }
        let mut opts = Self::rule_options(&st, &ty, p, CTX)?;
        opts.insert("type".into(), json!(ty));
        let order = st
            .ha_rules
            .values()
            .filter_map(|o| o.get("order").and_then(Value::as_u64))
            .max()
            .unwrap_or(0)
            + 1;
        opts.insert("order".into(), json!(order));
        st.ha_rules.insert(id, opts);
        Ok(Value::Null.into())
    }

    pub(crate) fn rule_put(&self, p: &Params) -> ApiResult {
        const CTX: &str = "update HA rules failed";
        let mut st = self.st.lock();
        let id = p.s("rule").unwrap_or_default().to_string();
        if let Some(d) = p.s("digest")
            && d != Self::rules_digest(&st)
        {
            return Err(ApiError::msg(format!(
                "{CTX}: detected modified configuration - file changed by other user? Try again."
            )));
        }
        let ty = st
            .ha_rules
            .get(&id)
            .and_then(|o| o.get("type"))
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| ApiError::msg(format!("{CTX}: HA rule '{id}' does not exist")))?;
        let opts = Self::rule_options(&st, &ty, p, CTX)?;
        let Some(rule) = st.ha_rules.get_mut(&id) else {
            return Err(ApiError::msg(format!(
                "{CTX}: HA rule '{id}' does not exist"
            )));
        };
        if let Some(del) = p.s("delete") {
            for k in params::split_list(del) {
                if k == "resources" || k == "type" || (k == "nodes" && ty == "node-affinity") {
                    return Err(ApiError::msg(format!(
                        "{CTX}: unable to delete required option '{k}'"
                    )));
                }
                rule.remove(k);
            }
        }
        rule.extend(opts);
        Ok(Value::Null.into())
    }

    pub(crate) fn rule_delete(&self, p: &Params) -> ApiResult {
        self.st
            .lock()
            .ha_rules
            .remove(p.s("rule").unwrap_or_default());
        Ok(Value::Null.into())
    }

    // ---- pools ----

    fn pool_json(st: &State, id: &str, pool: &Pool, ty: Option<&str>, t: i64) -> Value {
        let mut members: Vec<Value> = Vec::new();
        if ty.is_none() || ty == Some("qemu") {
            for vmid in &pool.vms {
                if let Some(vm) = st.vms.get(vmid) {
                    members.push(Self::vm_resource(st, vm, t));
                }
            }
        }
        if ty.is_none() || ty == Some("storage") {
            let usage = Self::storage_usage(st);
            for sid in &pool.storage {
                if let Some(s) = st.storage(sid) {
                    let node = st.nodes.first().map(|n| n.name.clone()).unwrap_or_default();
                    let e = Self::storage_entry(s, &node, &usage);
                    members.push(json!({
                        "id": format!("storage/{node}/{sid}"), "storage": sid, "node": node, "type": "storage",
                        "plugintype": s.kind, "status": "available", "shared": u8::from(s.shared),
                        "content": s.content_string(), "disk": e["used"], "maxdisk": e["total"],
                    }));
                }
            }
        }
        let mut v = json!({"poolid": id, "members": members});
        if let Some(c) = &pool.comment {
            v["comment"] = json!(c);
        }
        v
    }

    pub(crate) fn pool_list(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        if let Some(id) = p.s("poolid") {
            let pool = st
                .pools
                .get(id)
                .ok_or_else(|| ApiError::msg(format!("pool '{id}' does not exist")))?;
            return Ok(json!([Self::pool_json(&st, id, pool, p.s("type"), self.now())]).into());
        }
        let list: Vec<Value> = st
            .pools
            .iter()
            .map(|(id, pool)| {
                let mut v = json!({"poolid": id});
                if let Some(c) = &pool.comment {
                    v["comment"] = json!(c);
                }
                v
            })
            .collect();
        Ok(json!(list).into())
    }

    pub(crate) fn pool_get(&self, p: &Params) -> ApiResult {
        let st = self.st.lock();
        let id = p.s("poolid").unwrap_or_default();
        let pool = st
            .pools
            .get(id)
            .ok_or_else(|| ApiError::msg(format!("pool '{id}' does not exist")))?;
        Ok(Self::pool_json(&st, id, pool, p.s("type"), self.now()).into())
    }

    pub(crate) fn pool_create(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let id = p.s("poolid").unwrap_or_default().to_string();
        let fail = |m: String| Err(ApiError::msg(format!("create pool failed: {m}")));
        if st.pools.contains_key(&id) {
            return fail(format!("pool '{id}' already exists"));
        }
        let leaf = match id.rsplit_once('/') {
            Some((parent, leaf)) => {
                if !st.pools.contains_key(parent) {
                    return fail(format!("parent '{parent}' of pool '{id}' does not exist"));
                }
                leaf.to_string()
            }
            None => id.clone(),
        };
        if !leaf.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return fail("pool name must start with a letter".into());
        }
        let comment = p.s("comment").filter(|c| !c.is_empty()).map(String::from);
        st.pools.insert(
            id,
            Pool {
                comment,
                ..Pool::default()
            },
        );
        Ok(Value::Null.into())
    }

    pub(crate) fn pool_put(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let id = p.s("poolid").unwrap_or_default().to_string();
        let fail = |m: String| Err(ApiError::msg(format!("update pools failed: {m}")));
        if !st.pools.contains_key(&id) {
            return fail(format!("pool '{id}' does not exist"));
        }
        let delete = p.flag("delete");
        let mut pools = st.pools.clone();
        if let Some(c) = p.s("comment")
            && let Some(pool) = pools.get_mut(&id)
        {
            pool.comment = Some(c.to_string());
        }
        if let Some(vms) = p.s("vms") {
            for v in params::split_list(vms) {
                let vmid: u32 = v.parse().unwrap_or(0);
                let current = pools
                    .iter()
                    .find(|(_, pl)| pl.vms.contains(&vmid))
                    .map(|(k, _)| k.clone());
                if delete {
                    if current.as_deref() != Some(id.as_str()) {
                        return fail(format!("VM {vmid} is not a pool member"));
                    }
                    if let Some(pool) = pools.get_mut(&id) {
                        pool.vms.remove(&vmid);
                    }
                } else {
                    match current {
                        Some(c) if c == id => {
                            return fail(format!("VM {vmid} is already a pool member"));
                        }
                        Some(c) => {
                            if !p.flag("allow-move") {
                                return fail(format!(
                                    "VM {vmid} belongs already to pool '{c}' and 'allow-move' is not set"
                                ));
                            }
                            if let Some(old) = pools.get_mut(&c) {
                                old.vms.remove(&vmid);
                            }
                        }
                        None => {}
                    }
                    if let Some(pool) = pools.get_mut(&id) {
                        pool.vms.insert(vmid);
                    }
                }
            }
        }
        if let Some(stor) = p.s("storage") {
            for sid in params::split_list(stor) {
                let Some(pool) = pools.get_mut(&id) else {
                    break;
                };
                if delete {
                    if !pool.storage.remove(sid) {
                        return fail(format!("Storage '{sid}' is not a pool member"));
                    }
                } else if !pool.storage.insert(sid.to_string()) {
                    return fail(format!("Storage '{sid}' is already a pool member"));
                }
            }
        }
        st.pools = pools;
        Ok(Value::Null.into())
    }

    pub(crate) fn pool_delete(&self, p: &Params) -> ApiResult {
        let mut st = self.st.lock();
        let id = p.s("poolid").unwrap_or_default().to_string();
        let fail = |m: String| Err(ApiError::msg(format!("delete pool failed: {m}")));
        let Some(pool) = st.pools.get(&id) else {
            return fail(format!("pool '{id}' does not exist"));
        };
        let prefix = format!("{id}/");
        if let Some(sub) = st.pools.keys().find(|k| k.starts_with(&prefix)) {
            return fail(format!("pool '{id}' is not empty (contains pool '{sub}')"));
        }
        if let Some(vmid) = pool.vms.iter().find(|v| st.vms.contains_key(v)) {
            return fail(format!("pool '{id}' is not empty (contains VM {vmid})"));
        }
        if let Some(s) = pool.storage.iter().next() {
            return fail(format!("pool '{id}' is not empty (contains storage '{s}')"));
        }
        st.pools.remove(&id);
        Ok(Value::Null.into())
    }
}

/// A stable, fake certificate fingerprint for a node.
fn fingerprint(node: &str) -> String {
    let h = super::sha1::sha1_hex(node.as_bytes())
        + &super::sha1::sha1_hex(format!("{node}-cert").as_bytes());
    h.as_bytes()
        .chunks(2)
        .take(32)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}
