//! Which privileges each route needs, checked before the handler runs, and the lists
//! filtered to what the caller may see.
//!
//! The route-level checks are the `permissions` of the vendor schema
//! (`testdata/api-schemas/proxmox-ve-9.1-api.json`); the ones a handler makes itself
//! follow the vendor code:
//!
//! - configuration keys: qemu-server `src/PVE/API2/Qemu.pm`
//!   `$check_vm_modify_config_perm` (CPU, memory, hardware, general, disk, network and
//!   cloud-init options each need their `VM.Config.*` privilege; `tags` need
//!   `VM.Config.Options`, `GuestHelpers::assert_tag_permissions`);
//! - NICs: `SDN.Use` on the bridge (`/sdn/zones/localnetwork/<bridge>[/<tag>]`,
//!   qemu-server `PVE/QemuServer.pm` `check_bridge_access`);
//! - new volumes (create, clone, resize): `Datastore.AllocateSpace` on the storage;
//! - clone: `VM.Clone` on the source and `VM.Allocate` on the new VMID (or its pool);
//! - `ha-managed` on create: `Sys.Console` on `/`, as the HA resource API asks;
//! - `/cluster/resources` lists only guests with `VM.Audit`, nodes with `Sys.Audit`,
//!   storages with `Datastore.Audit` or `Datastore.AllocateSpace` and pools with
//!   `Pool.Audit` (pve-manager `PVE/API2/Cluster.pm` `resources`); `/nodes/{node}/qemu`
//!   only guests with `VM.Audit`; the storage lists only storages with
//!   `Datastore.Audit` or `Datastore.AllocateSpace`; task lists, statuses and logs need
//!   `Sys.Audit` on the node unless the caller started the task;
//! - migration with a storage map: `VM.Config.Disk` and space on the target storages;
//!   a rollback that starts the guest: `VM.PowerMgmt`.

use serde_json::Value;

use super::access::{Access, denied};
use super::api::ParamsExt;
use super::auth::Auth;
use super::model::{State, value_text};
use super::params::{self, Params};
use super::{ApiError, R};

const CONFIG_ANY: &[&str] = &[
    "VM.Config.Disk",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.HWType",
    "VM.Config.Options",
    "VM.Config.Cloudinit",
];

/// What a caller checks against: the ACLs and the pools guests are in.
struct Ctx<'a> {
    access: &'a Access,
    st: &'a State,
    who: &'a str,
}

impl Ctx<'_> {
    fn vm_pool(&self, vmid: u32) -> Option<&str> {
        self.st.pool_of(vmid)
    }
    fn vm(&self, vmid: u32, privs: &[&str]) -> Result<(), ApiError> {
        self.access
            .check(self.who, &format!("/vms/{vmid}"), self.vm_pool(vmid), privs)
    }
    fn vm_any(&self, vmid: u32, privs: &[&str]) -> Result<(), ApiError> {
        self.access
            .check_any(self.who, &format!("/vms/{vmid}"), self.vm_pool(vmid), privs)
    }
    fn path(&self, path: &str, privs: &[&str]) -> Result<(), ApiError> {
        self.access.check(self.who, path, None, privs)
    }
    fn has(&self, path: &str, pool: Option<&str>, privs: &[&str]) -> bool {
        let have = self.access.permissions(self.who, path, pool);
        privs.iter().any(|p| have.contains(*p))
    }
    fn storage(&self, sid: &str) -> Result<(), ApiError> {
        self.path(&format!("/storage/{sid}"), &["Datastore.AllocateSpace"])
    }

    /// `SDN.Use` on the bridge (and VLAN) of NIC `key`.
    fn bridge(&self, key: &str, value: &Value) -> Result<(), ApiError> {
        if let Ok(net) = params::parse_net(key, &value_text(value))
            && let Some(bridge) = net.bridge
        {
            let mut path = format!("/sdn/zones/localnetwork/{bridge}");
            if let Some(tag) = net.tag {
                path.push_str(&format!("/{tag}"));
            }
            self.access.check_any(self.who, &path, None, &["SDN.Use"])?;
        }
        Ok(())
    }

    /// The privileges a configuration key needs (`$check_vm_modify_config_perm`).
    fn config_key(&self, vmid: u32, key: &str, value: Option<&Value>) -> Result<(), ApiError> {
        const CPU: &[&str] = &[
            "cores", "cpu", "cpulimit", "cpuunits", "numa", "sockets", "vcpus", "affinity",
        ];
        const MEMORY: &[&str] = &["memory", "balloon", "shares", "allow-ksm"];
        const HWTYPE: &[&str] = &[
            "acpi", "hotplug", "kvm", "machine", "scsihw", "smbios1", "tablet", "vga", "watchdog",
            "audio0", "rng0",
        ];
        const GENERAL: &[&str] = &[
            "agent",
            "autostart",
            "bios",
            "description",
            "keyboard",
            "localtime",
            "migrate_downtime",
            "migrate_speed",
            "name",
            "onboot",
            "ostype",
            "protection",
            "reboot",
            "startdate",
            "startup",
            "tdf",
            "template",
            "tags",
        ];
        const DISK: &[&str] = &["boot", "bootdisk", "vmstatestorage"];
        const CLOUDINIT: &[&str] = &[
            "cicustom",
            "cipassword",
            "citype",
            "ciuser",
            "ciupgrade",
            "nameserver",
            "searchdomain",
            "sshkeys",
        ];
        let is_net = key.starts_with("net") && key[3..].parse::<u32>().is_ok();
        if CPU.contains(&key) || (key.starts_with("numa") && key[4..].parse::<u32>().is_ok()) {
            self.vm(vmid, &["VM.Config.CPU"])
        } else if MEMORY.contains(&key) {
            self.vm(vmid, &["VM.Config.Memory"])
        } else if HWTYPE.contains(&key) {
            self.vm(vmid, &["VM.Config.HWType"])
        } else if GENERAL.contains(&key) {
            self.vm(vmid, &["VM.Config.Options"])?;
            if key == "startup" {
                self.path("/", &["Sys.Modify"])?;
            }
            Ok(())
        } else if DISK.contains(&key) {
            self.vm(vmid, &["VM.Config.Disk"])
        } else if is_net {
            self.vm(vmid, &["VM.Config.Network"])?;
            match value {
                Some(v) => self.bridge(key, v),
                None => Ok(()),
            }
        } else if CLOUDINIT.contains(&key) || key.starts_with("ipconfig") {
            self.vm_any(vmid, &["VM.Config.Cloudinit", "VM.Config.Network"])
        } else if params::is_drive_key(key) || key == "cdrom" {
            let text = value.map(value_text).unwrap_or_default();
            let drive = params::parse_drive(key, &text).ok();
            if key == "cdrom" || drive.as_ref().is_some_and(|d| d.is_cdrom()) {
                self.vm(vmid, &["VM.Config.CDROM"])
            } else {
                self.vm(vmid, &["VM.Config.Disk"])?;
                // A new volume (`STORAGE:SIZE`) needs space on the storage.
                if let Some(d) = drive
                    && let Some((sid, vol)) = d.file.split_once(':')
                    && params::is_number(vol)
                {
                    self.storage(sid)?;
                }
                Ok(())
            }
        } else if key.starts_with("unused") {
            self.vm(vmid, &["VM.Config.Disk"])
        } else {
            Err(ApiError::msg(format!("only root can set '{key}' config")))
        }
    }

    fn config_changes(&self, vmid: u32, p: &Params) -> Result<(), ApiError> {
        for (k, v) in p.iter() {
            if params::qemu_key(k).is_some() || k == "cdrom" {
                self.config_key(vmid, k, Some(v))?;
            }
        }
        if let Some(d) = p.s("delete") {
            for k in params::split_list(d) {
                self.config_key(vmid, k, None)?;
            }
        }
        Ok(())
    }
}

/// Check that `auth` may call route `kind` with `p` (a 403 when not).
pub(crate) fn authorize(
    access: &Access,
    st: &State,
    kind: R,
    auth: &Auth,
    p: &Params,
) -> Result<(), ApiError> {
    let c = Ctx {
        access,
        st,
        who: &auth.user,
    };
    if auth.user == "root@pam" {
        return Ok(());
    }
    let vmid = p.vmid();
    let node = format!("/nodes/{}", p.node());
    match kind {
        R::Ticket
        | R::Version
        | R::Nodes
        | R::Network
        | R::NodeStorage
        | R::Tasks
        | R::TaskIndex
        | R::QemuList
        | R::QemuIndex
        | R::StatusIndex
        | R::Resources
        | R::NextId
        | R::StorageList
        | R::PoolList
        | R::GroupList
        | R::GroupGet
        | R::GroupCreate
        | R::GroupPut
        | R::GroupDelete
        | R::AclList
        | R::RoleList
        | R::RoleGet => Ok(()),
        R::TaskStatus | R::TaskLog => {
            let upid = p.s("upid").unwrap_or_default();
            let owner = st
                .upids
                .get(upid)
                .and_then(|s| st.tasks.get(s))
                .map(|t| t.user.clone());
            let mine = owner.is_some_and(|u| u == auth.user);
            if mine {
                Ok(())
            } else {
                c.path(&node, &["Sys.Audit"])
            }
        }
        R::NodeStatus | R::DnsGet => c.path(&node, &["Sys.Audit"]),
        R::DnsPut => c.path(&node, &["Sys.Modify"]),
        R::NodeStorageStatus => c.access.check_any(
            c.who,
            &format!("/storage/{}", p.s("storage").unwrap_or_default()),
            None,
            &["Datastore.Audit", "Datastore.AllocateSpace"],
        ),
        R::QemuCreate => {
            let pool = p.s("pool");
            let on_vm = c.has(&format!("/vms/{vmid}"), None, &["VM.Allocate"]);
            let on_pool =
                pool.is_some_and(|pl| c.has(&format!("/pool/{pl}"), None, &["VM.Allocate"]));
            if !on_vm && !on_pool {
                return Err(denied(&format!("/vms/{vmid}"), "VM.Allocate"));
            }
            if p.flag("ha-managed") {
                c.path("/", &["Sys.Console"])?;
            }
            c.config_changes(vmid, p)
        }
        R::QemuDelete | R::Template => c.vm(vmid, &["VM.Allocate"]),
        R::ConfigGet | R::PendingGet | R::StatusCurrent => c.vm(vmid, &["VM.Audit"]),
        R::ConfigPut | R::ConfigPost => {
            c.vm_any(vmid, CONFIG_ANY)?;
            c.config_changes(vmid, p)
        }
        R::Clone => {
            c.vm(vmid, &["VM.Clone"])?;
            let newid = p.i("newid").unwrap_or_default();
            let on_new = c.has(&format!("/vms/{newid}"), None, &["VM.Allocate"]);
            let on_pool = p
                .s("pool")
                .is_some_and(|pl| c.has(&format!("/pool/{pl}"), None, &["VM.Allocate"]));
            if !on_new && !on_pool {
                return Err(denied(&format!("/vms/{newid}"), "VM.Allocate"));
            }
            let source = st.vms.get(&vmid);
            match p.s("storage") {
                Some(sid) => c.storage(sid)?,
                None => {
                    for (_, d) in source.map(|v| v.drives()).unwrap_or_default() {
                        if !d.is_cdrom()
                            && let Some((sid, _)) = d.volume()
                        {
                            c.storage(sid)?;
                        }
                    }
                }
            }
            // The clone keeps the source's NICs: the caller must be allowed their
            // bridges.
            for (k, v) in source.map(|v| v.conf.clone()).unwrap_or_default() {
                if k.starts_with("net") && k[3..].parse::<u32>().is_ok() {
                    c.bridge(&k, &v)?;
                }
            }
            Ok(())
        }
        R::Resize => {
            c.vm(vmid, &["VM.Config.Disk"])?;
            let disk = p.s("disk").unwrap_or_default();
            if let Some(d) = st
                .vms
                .get(&vmid)
                .and_then(|v| v.conf.get(disk))
                .and_then(|v| params::parse_drive(disk, &value_text(v)).ok())
                && let Some((sid, _)) = d.volume()
            {
                c.storage(sid)?;
            }
            Ok(())
        }
        R::Start | R::Stop | R::Shutdown | R::Reboot => c.vm(vmid, &["VM.PowerMgmt"]),
        // qemu-server `src/PVE/API2/Qemu.pm`: `migrate_vm` and its preconditions.
        R::MigrateCheck => c.vm(vmid, &["VM.Migrate"]),
        R::Migrate => {
            c.vm(vmid, &["VM.Migrate"])?;
            // A storage map other than `1` moves disks: `VM.Config.Disk`, and space
            // on each target storage (`$check_storage_access_migrate`).
            if let Some(map) = p.s("targetstorage").filter(|m| *m != "1") {
                c.vm(vmid, &["VM.Config.Disk"])?;
                for item in params::split_list(map) {
                    let sid = item.split_once(':').map(|(_, b)| b).unwrap_or(item);
                    c.storage(sid)?;
                }
            }
            Ok(())
        }
        R::SnapshotList => c.vm(vmid, &["VM.Audit"]),
        R::SnapshotCreate | R::SnapshotDelete | R::SnapshotConfigPut => {
            c.vm(vmid, &["VM.Snapshot"])
        }
        R::SnapshotIndex | R::NodeVersion => Ok(()),
        R::SnapshotConfigGet => {
            c.vm_any(vmid, &["VM.Snapshot", "VM.Snapshot.Rollback", "VM.Audit"])
        }
        R::Rollback => {
            c.vm_any(vmid, &["VM.Snapshot", "VM.Snapshot.Rollback"])?;
            // Starting afterwards needs the power privilege the start would.
            if p.flag("start") {
                c.vm(vmid, &["VM.PowerMgmt"])?;
            }
            Ok(())
        }
        R::NodePower => c.path(&node, &["Sys.PowerMgmt"]),
        R::AptList | R::AptUpdate => c.path(&node, &["Sys.Modify"]),
        // A method without `permissions` is root@pam's only (pve-access-control
        // `PVE/RPCEnvironment.pm` `check_api2_permissions`), tokens included.
        R::DelNode => Err(ApiError::status(
            403,
            "Permission check failed (user != root@pam)",
        )),
        R::ClusterStatus | R::ConfigNodes | R::HaList | R::HaGet | R::RuleList | R::RuleGet => {
            c.path("/", &["Sys.Audit"])
        }
        R::HaCreate | R::HaPut | R::HaDelete | R::RuleCreate | R::RulePut | R::RuleDelete => {
            c.path("/", &["Sys.Console"])
        }
        R::StorageGet => c.path(
            &format!("/storage/{}", p.s("storage").unwrap_or_default()),
            &["Datastore.Allocate"],
        ),
        R::PoolGet => c.path(
            &format!("/pool/{}", p.s("poolid").unwrap_or_default()),
            &["Pool.Audit"],
        ),
        R::PoolCreate | R::PoolPut | R::PoolDelete => c.path(
            &format!("/pool/{}", p.s("poolid").unwrap_or_default()),
            &["Pool.Allocate"],
        ),
        R::AclPut => c.path(p.s("path").unwrap_or("/"), &["Permissions.Modify"]),
        R::RoleCreate | R::RolePut | R::RoleDelete => c.path("/access", &["Sys.Modify"]),
        R::UserCreate => {
            let realm = p
                .s("userid")
                .and_then(|u| u.rsplit_once('@'))
                .map(|(_, r)| r)
                .unwrap_or_default();
            c.path(&format!("/access/realm/{realm}"), &["Realm.AllocateUser"])?;
            c.path("/access/groups", &["User.Modify"])
        }
        R::TokenCreate => {
            let own = super::access::split_tokenid(&auth.user)
                .map(|(u, _)| u)
                .unwrap_or(&auth.user);
            if p.s("userid") == Some(own) {
                Ok(())
            } else {
                c.path("/access/groups", &["User.Modify"])
            }
        }
    }
}

/// Drop from a list what the caller may not see.
pub(crate) fn filter(access: &Access, st: &State, kind: R, auth: &Auth, data: &mut Value) {
    if auth.user == "root@pam" {
        return;
    }
    let Some(list) = data.as_array_mut() else {
        return;
    };
    let c = Ctx {
        access,
        st,
        who: &auth.user,
    };
    let storage_ok = |e: &Value| {
        let sid = e.get("storage").map(value_text).unwrap_or_default();
        c.has(
            &format!("/storage/{sid}"),
            None,
            &["Datastore.Audit", "Datastore.AllocateSpace"],
        )
    };
    let vm_ok = |e: &Value| {
        let vmid = e
            .get("vmid")
            .and_then(|v| v.as_u64().or_else(|| value_text(v).parse().ok()))
            .unwrap_or(0) as u32;
        c.has(&format!("/vms/{vmid}"), c.vm_pool(vmid), &["VM.Audit"])
    };
    match kind {
        R::Resources => list.retain(|e| match e.get("type").and_then(Value::as_str) {
            Some("qemu") | Some("lxc") => vm_ok(e),
            Some("node") => c.has(
                &format!(
                    "/nodes/{}",
                    e.get("node").map(value_text).unwrap_or_default()
                ),
                None,
                &["Sys.Audit"],
            ),
            Some("storage") => storage_ok(e),
            Some("pool") => c.has(
                &format!(
                    "/pool/{}",
                    e.get("pool").map(value_text).unwrap_or_default()
                ),
                None,
                &["Pool.Audit"],
            ),
            _ => true,
        }),
        R::QemuList => list.retain(vm_ok),
        R::StorageList | R::NodeStorage => list.retain(storage_ok),
        R::PoolList => list.retain(|e| {
            c.has(
                &format!(
                    "/pool/{}",
                    e.get("poolid").map(value_text).unwrap_or_default()
                ),
                None,
                &["Pool.Audit"],
            )
        }),
        R::Tasks => list.retain(|e| {
            let mut user = e.get("user").map(value_text).unwrap_or_default();
            if let Some(t) = e.get("tokenid") {
                user = format!("{user}!{}", value_text(t));
            }
            user == auth.user
                || c.has(
                    &format!(
                        "/nodes/{}",
                        e.get("node").map(value_text).unwrap_or_default()
                    ),
                    None,
                    &["Sys.Audit"],
                )
        }),
        _ => {}
    }
}
