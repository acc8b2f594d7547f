//! A simulated Proxmox VE 9.1 cluster (one per DC), served on its own HTTPS listener
//! under `/api2/json/`, as `pveproxy` serves it on port 8006.
//!
//! What it reproduces:
//!
//! - Authentication by API token (`Authorization: PVEAPIToken=USER@REALM!ID=SECRET`) or
//!   ticket (`POST /access/ticket`, then cookie `PVEAuthCookie` and, on writes, the
//!   `CSRFPreventionToken` header). Failures are 401s with the reason in the status line
//!   (`No ticket`, `Authentication failed!`, `Permission denied - invalid csrf token`)
//!   and an empty body, as pveproxy sends them.
//! - Parameters from the query, forms (`application/x-www-form-urlencoded`) and JSON
//!   bodies, validated like PVE's JSON schema checker ([`params`]): 400 "Parameter
//!   verification failed." with an `errors` object.
//! - Responses `{"data": ...}`; errors carry the message in the HTTP reason phrase and
//!   in the body (`{"data": null, "message": "...\n"}`, as PVE 9 sends it).
//! - Guests as configuration maps with a SHA-1 `digest`, config locks (`lock: clone`,
//!   `create`, `destroyed`) and file locks (a clone holds a shared lock on its source, so
//!   parallel clones of a template run side by side while writes to it wait).
//! - Asynchronous tasks with real-looking UPIDs, logs and exit statuses, completing after
//!   a while (10x longer under the `slow_task` fault); per-object faults `task_fails`
//!   (the guest's next task fails) and `error_500` (the next call naming it fails).
//! - Races as they are: `GET /cluster/nextid` reserves nothing, so two creators can get
//!   the same id and one of them fails (synchronously, or in its clone task).
//! - HA resources and HA rules as in PVE 9 (HA groups are migrated to node-affinity
//!   rules there, so the `group` parameter and the groups API answer with an error);
//!   the HA manager starts and stops guests to match their requested state; HA resources
//!   list PVE 9's `failback` (default 1).
//! - Pending changes ([`model::Pending`]): changes to a running guest that cannot be
//!   hot-plugged (`cores`, and `memory` without memory hotplug) wait in `[PENDING]`
//!   until it stops, starts or reboots; `GET .../pending`, `config?current=1`.
//! - Users, API tokens, roles and ACLs ([`access`], `/access/acl`, `/access/roles`,
//!   `/access/users`): every route checks the privileges PVE checks ([`perms`]); lists
//!   leave out what the caller may not see. The configured token is an
//!   `Administrator` token without privilege separation.
//! - Storages restricted to nodes or disabled (`/_twin/` mutation of kind `storage`):
//!   new volumes on a node where the storage is not enabled are refused.
//!
//! - Day-2 operations ([`migrate`], [`snapshots`], [`nodes`]): migration with its
//!   preconditions and refusals, snapshots (create, delete, rollback, their configs),
//!   node versions and package updates, node reboots (the node is offline while it
//!   boots), nodes that are down or whose `pveproxy` does not answer (calls for them get
//!   595), and quorum (writes to `/etc/pve` fail without it). Upgrades happen in a shell
//!   (`apt dist-upgrade`), not through the API: the `/_twin/` mutation `node-upgrade`
//!   stands for one, and the object faults `upgrade_offline` / `upgrade_pveproxy_down` on
//!   a node make it come back broken.
//!
//! - Cluster membership ([`cluster`]): machines MAAS deployed as Proxmox VE nodes join
//!   the cluster (as `pvecm add`), nodes whose machine lost power go offline, and
//!   `GET /cluster/config/nodes`, `DELETE /cluster/config/nodes/{node}` (`pvecm
//!   delnode`, root@pam only) with PVE's refusals.
//!
//! Routes are listed in [`ROUTES`] (checked against the vendor schema by
//! `tests/proxmox_schema.rs`); [`route_params`] gives each one's parameters.

mod access;
mod api;
mod auth;
mod cluster;
mod migrate;
mod model;
mod nodes;
pub mod params;
mod perms;
mod qemu;
mod sha1;
mod snapshots;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::core::{ErrorBody, Route, RouteTable};
use crate::{DcContext, MutateRequest, Service};

use self::auth::{Auth, AuthFailure};
use self::model::State;
use self::params::{Errors, Fmt, NODE, P, Params, Spec, Ty, VMID, VMID_TY};

/// Every method this simulator serves: (HTTP method, path below `/api2/json`), as the
/// vendor schema writes them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/version"),
    ("POST", "/access/ticket"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{node}/status"),
    ("POST", "/nodes/{node}/status"),
    ("GET", "/nodes/{node}/version"),
    ("GET", "/nodes/{node}/apt/update"),
    ("POST", "/nodes/{node}/apt/update"),
    ("GET", "/nodes/{node}/network"),
    ("GET", "/nodes/{node}/dns"),
    ("PUT", "/nodes/{node}/dns"),
    ("GET", "/nodes/{node}/storage"),
    ("GET", "/nodes/{node}/storage/{storage}/status"),
    ("GET", "/nodes/{node}/tasks"),
    ("GET", "/nodes/{node}/tasks/{upid}"),
    ("GET", "/nodes/{node}/tasks/{upid}/status"),
    ("GET", "/nodes/{node}/tasks/{upid}/log"),
    ("GET", "/nodes/{node}/qemu"),
    ("POST", "/nodes/{node}/qemu"),
    ("GET", "/nodes/{node}/qemu/{vmid}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}"),
    ("GET", "/nodes/{node}/qemu/{vmid}/config"),
    ("POST", "/nodes/{node}/qemu/{vmid}/config"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/config"),
    ("GET", "/nodes/{node}/qemu/{vmid}/pending"),
    ("POST", "/nodes/{node}/qemu/{vmid}/clone"),
    ("POST", "/nodes/{node}/qemu/{vmid}/template"),
    ("PUT", "/nodes/{node}/qemu/{vmid}/resize"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status"),
    ("GET", "/nodes/{node}/qemu/{vmid}/status/current"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/start"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/stop"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown"),
    ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot"),
    ("GET", "/nodes/{node}/qemu/{vmid}/migrate"),
    ("POST", "/nodes/{node}/qemu/{vmid}/migrate"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("POST", "/nodes/{node}/qemu/{vmid}/snapshot"),
    ("GET", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    ("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}"),
    (
        "GET",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config",
    ),
    (
        "PUT",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config",
    ),
    (
        "POST",
        "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback",
    ),
    ("GET", "/cluster/status"),
    ("GET", "/cluster/config/nodes"),
    ("DELETE", "/cluster/config/nodes/{node}"),
    ("GET", "/cluster/resources"),
    ("GET", "/cluster/nextid"),
    ("GET", "/cluster/ha/resources"),
    ("POST", "/cluster/ha/resources"),
    ("GET", "/cluster/ha/resources/{sid}"),
    ("PUT", "/cluster/ha/resources/{sid}"),
    ("DELETE", "/cluster/ha/resources/{sid}"),
    ("GET", "/cluster/ha/rules"),
    ("POST", "/cluster/ha/rules"),
    ("GET", "/cluster/ha/rules/{rule}"),
    ("PUT", "/cluster/ha/rules/{rule}"),
    ("DELETE", "/cluster/ha/rules/{rule}"),
    ("GET", "/cluster/ha/groups"),
    ("POST", "/cluster/ha/groups"),
    ("GET", "/cluster/ha/groups/{group}"),
    ("PUT", "/cluster/ha/groups/{group}"),
    ("DELETE", "/cluster/ha/groups/{group}"),
    ("GET", "/storage"),
    ("GET", "/storage/{storage}"),
    ("GET", "/pools"),
    ("POST", "/pools"),
    ("GET", "/pools/{poolid}"),
    ("PUT", "/pools/{poolid}"),
    ("DELETE", "/pools/{poolid}"),
    ("GET", "/access/acl"),
    ("PUT", "/access/acl"),
    ("GET", "/access/roles"),
    ("POST", "/access/roles"),
    ("GET", "/access/roles/{roleid}"),
    ("PUT", "/access/roles/{roleid}"),
    ("DELETE", "/access/roles/{roleid}"),
    ("POST", "/access/users"),
    ("POST", "/access/users/{userid}/token/{tokenid}"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum R {
    Version,
    Ticket,
    Nodes,
    NodeStatus,
    NodePower,
    NodeVersion,
    AptList,
    AptUpdate,
    Network,
    DnsGet,
    DnsPut,
    NodeStorage,
    NodeStorageStatus,
    Tasks,
    TaskIndex,
    TaskStatus,
    TaskLog,
    QemuList,
    QemuCreate,
    QemuIndex,
    QemuDelete,
    ConfigGet,
    ConfigPost,
    ConfigPut,
    PendingGet,
    Clone,
    Template,
    Resize,
    StatusIndex,
    StatusCurrent,
    Start,
    Stop,
    Shutdown,
    Reboot,
    MigrateCheck,
    Migrate,
    SnapshotList,
    SnapshotCreate,
    SnapshotIndex,
    SnapshotDelete,
    SnapshotConfigGet,
    SnapshotConfigPut,
    Rollback,
    ClusterStatus,
    ConfigNodes,
    DelNode,
    Resources,
    NextId,
    HaList,
    HaCreate,
    HaGet,
    HaPut,
    HaDelete,
    RuleList,
    RuleCreate,
    RuleGet,
    RulePut,
    RuleDelete,
    GroupList,
    GroupCreate,
    GroupGet,
    GroupPut,
    GroupDelete,
    StorageList,
    StorageGet,
    PoolList,
    PoolCreate,
    PoolGet,
    PoolPut,
    PoolDelete,
    AclList,
    AclPut,
    RoleList,
    RoleCreate,
    RoleGet,
    RolePut,
    RoleDelete,
    UserCreate,
    TokenCreate,
}

/// [`ROUTES`] as the twin's route table; each handler is the route's index (into
/// [`ROUTES`] and `KINDS`).
fn route_table() -> RouteTable<usize> {
    ROUTES
        .iter()
        .enumerate()
        .map(|(i, (m, path))| {
            let method = Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET);
            Route::new(method, *path, i)
        })
        .collect()
}

/// What each entry of [`ROUTES`] is (same order; the length is checked by the type).
const KINDS: [R; ROUTES.len()] = [
    R::Version,
    R::Ticket,
    R::Nodes,
    R::NodeStatus,
    R::NodePower,
    R::NodeVersion,
    R::AptList,
    R::AptUpdate,
    R::Network,
    R::DnsGet,
    R::DnsPut,
    R::NodeStorage,
    R::NodeStorageStatus,
    R::Tasks,
    R::TaskIndex,
    R::TaskStatus,
    R::TaskLog,
    R::QemuList,
    R::QemuCreate,
    R::QemuIndex,
    R::QemuDelete,
    R::ConfigGet,
    R::ConfigPost,
    R::ConfigPut,
    R::PendingGet,
    R::Clone,
    R::Template,
    R::Resize,
    R::StatusIndex,
    R::StatusCurrent,
    R::Start,
    R::Stop,
    R::Shutdown,
    R::Reboot,
    R::MigrateCheck,
    R::Migrate,
    R::SnapshotList,
    R::SnapshotCreate,
    R::SnapshotIndex,
    R::SnapshotDelete,
    R::SnapshotConfigGet,
    R::SnapshotConfigPut,
    R::Rollback,
    R::ClusterStatus,
    R::ConfigNodes,
    R::DelNode,
    R::Resources,
    R::NextId,
    R::HaList,
    R::HaCreate,
    R::HaGet,
    R::HaPut,
    R::HaDelete,
    R::RuleList,
    R::RuleCreate,
    R::RuleGet,
    R::RulePut,
    R::RuleDelete,
    R::GroupList,
    R::GroupCreate,
    R::GroupGet,
    R::GroupPut,
    R::GroupDelete,
    R::StorageList,
    R::StorageGet,
    R::PoolList,
    R::PoolCreate,
    R::PoolGet,
    R::PoolPut,
    R::PoolDelete,
    R::AclList,
    R::AclPut,
    R::RoleList,
    R::RoleCreate,
    R::RoleGet,
    R::RolePut,
    R::RoleDelete,
    R::UserCreate,
    R::TokenCreate,
];

const S: Ty = Ty::Str;
const B: Ty = Ty::Bool;
const NONNEG: Ty = Ty::Int(Some(0), None);
const ANYINT: Ty = Ty::Int(None, None);
const SKIPLOCK: P = P::opt("skiplock", B);
const TIMEOUT: P = P::opt("timeout", NONNEG);
const HA_STATES: Ty = Ty::Enum(&["started", "stopped", "enabled", "disabled", "ignored"]);
const SID: P = P::req("sid", S).fmt(Fmt::HaSid);
const POOLID: P = P::req("poolid", S).fmt(Fmt::PoolId);
const POOL_TYPES: Ty = Ty::Enum(&["qemu", "lxc", "storage"]);

static NONE: &[P] = &[];
static TICKET: &[P] = &[
    P::req("username", S).max(64),
    P::req("password", S),
    P::opt("realm", S).max(32),
    P::opt("otp", S),
    P::opt("path", S).max(64),
    P::opt("privs", S).max(64),
    P::opt("new-format", B),
    P::opt("tfa-challenge", S),
];
static NODE_ONLY: &[P] = &[NODE];
static DNS_PUT: &[P] = &[
    P::opt("dns1", S).fmt(Fmt::Ip),
    P::opt("dns2", S).fmt(Fmt::Ip),
    P::opt("dns3", S).fmt(Fmt::Ip),
    NODE,
    P::req("search", S),
];
static NETWORK: &[P] = &[
    NODE,
    P::opt(
        "type",
        Ty::Enum(&[
            "bridge",
            "bond",
            "eth",
            "alias",
            "vlan",
            "fabric",
            "OVSBridge",
            "OVSBond",
            "OVSPort",
            "OVSIntPort",
            "vnet",
            "any_bridge",
            "any_local_bridge",
            "include_sdn",
        ]),
    ),
];
static NODE_STORAGE: &[P] = &[
    NODE,
    P::opt("content", S).fmt(Fmt::ContentList),
    P::opt("enabled", B),
    P::opt("format", B),
    P::opt("storage", S).fmt(Fmt::StorageId),
    P::opt("target", S).fmt(Fmt::Node),
];
static NODE_STORAGE_STATUS: &[P] = &[NODE, P::req("storage", S).fmt(Fmt::StorageId)];
static TASKS: &[P] = &[
    NODE,
    P::opt("errors", B),
    P::opt("limit", NONNEG),
    P::opt("since", ANYINT),
    P::opt("source", Ty::Enum(&["archive", "active", "all"])),
    P::opt("start", NONNEG),
    P::opt("statusfilter", S).fmt(Fmt::TaskStatusList),
    P::opt("typefilter", S),
    P::opt("until", ANYINT),
    P::opt("userfilter", S),
    P::opt("vmid", VMID_TY).fmt(Fmt::Vmid),
];
static TASK: &[P] = &[NODE, P::req("upid", S)];
static TASK_LOG: &[P] = &[
    NODE,
    P::req("upid", S),
    P::opt("download", B),
    P::opt("limit", NONNEG),
    P::opt("start", NONNEG),
];
static QEMU_LIST: &[P] = &[NODE, P::opt("full", B)];
static QEMU_CREATE: &[P] = &[
    NODE,
    VMID,
    P::opt("archive", S).max(255),
    P::opt("bwlimit", NONNEG),
    P::opt("force", B),
    P::opt("ha-managed", B),
    P::opt("import-working-storage", S).fmt(Fmt::StorageId),
    P::opt("live-restore", B),
    P::opt("pool", S).fmt(Fmt::PoolId),
    P::opt("start", B),
    P::opt("storage", S).fmt(Fmt::StorageId),
    P::opt("unique", B),
];
static NODE_VMID: &[P] = &[NODE, VMID];
static QEMU_DELETE: &[P] = &[
    NODE,
    VMID,
    P::opt("destroy-unreferenced-disks", B),
    P::opt("purge", B),
    SKIPLOCK,
];
static CONFIG_GET: &[P] = &[
    NODE,
    VMID,
    P::opt("current", B),
    P::opt("snapshot", S).fmt(Fmt::ConfigId).max(40),
];
static CONFIG_PUT: &[P] = &[
    NODE,
    VMID,
    P::opt("delete", S).fmt(Fmt::ConfigIdList),
    P::opt("digest", S).max(40),
    P::opt("force", B),
    P::opt("revert", S).fmt(Fmt::ConfigIdList),
    SKIPLOCK,
];
static CONFIG_POST: &[P] = &[
    NODE,
    VMID,
    P::opt("background_delay", Ty::Int(Some(1), Some(30))),
    P::opt("delete", S).fmt(Fmt::ConfigIdList),
    P::opt("digest", S).max(40),
    P::opt("force", B),
    P::opt("import-working-storage", S).fmt(Fmt::StorageId),
    P::opt("revert", S).fmt(Fmt::ConfigIdList),
    SKIPLOCK,
];
static CLONE: &[P] = &[
    NODE,
    VMID,
    P::req("newid", VMID_TY).fmt(Fmt::Vmid),
    P::opt("bwlimit", NONNEG),
    P::opt("description", S),
    P::opt("format", Ty::Enum(&["raw", "qcow2", "vmdk"])),
    P::opt("full", B),
    P::opt("name", S).fmt(Fmt::DnsName),
    P::opt("pool", S).fmt(Fmt::PoolId),
    P::opt("snapname", S).fmt(Fmt::ConfigId).max(40),
    P::opt("storage", S).fmt(Fmt::StorageId),
    P::opt("target", S).fmt(Fmt::Node),
];
const DISKS: Ty = Ty::Enum(&[
    "ide0",
    "ide1",
    "ide2",
    "ide3",
    "scsi0",
    "scsi1",
    "scsi2",
    "scsi3",
    "scsi4",
    "scsi5",
    "scsi6",
    "scsi7",
    "scsi8",
    "scsi9",
    "scsi10",
    "scsi11",
    "scsi12",
    "scsi13",
    "scsi14",
    "scsi15",
    "scsi16",
    "scsi17",
    "scsi18",
    "scsi19",
    "scsi20",
    "scsi21",
    "scsi22",
    "scsi23",
    "scsi24",
    "scsi25",
    "scsi26",
    "scsi27",
    "scsi28",
    "scsi29",
    "scsi30",
    "virtio0",
    "virtio1",
    "virtio2",
    "virtio3",
    "virtio4",
    "virtio5",
    "virtio6",
    "virtio7",
    "virtio8",
    "virtio9",
    "virtio10",
    "virtio11",
    "virtio12",
    "virtio13",
    "virtio14",
    "virtio15",
    "sata0",
    "sata1",
    "sata2",
    "sata3",
    "sata4",
    "sata5",
    "efidisk0",
    "tpmstate0",
]);
static TEMPLATE: &[P] = &[NODE, VMID, P::opt("disk", DISKS)];
static RESIZE: &[P] = &[
    NODE,
    VMID,
    P::req("disk", DISKS),
    P::req("size", S),
    P::opt("digest", S).max(40),
    SKIPLOCK,
];
static START: &[P] = &[
    NODE,
    VMID,
    P::opt("force-cpu", S),
    P::opt("machine", S),
    P::opt("migratedfrom", S).fmt(Fmt::Node),
    P::opt("migration_network", S),
    P::opt("migration_type", Ty::Enum(&["secure", "insecure"])),
    P::opt("nets-host-mtu", S),
    SKIPLOCK,
    P::opt("stateuri", S).max(128),
    P::opt("targetstorage", S),
    TIMEOUT,
    P::opt("with-conntrack-state", B),
];
static STOP: &[P] = &[
    NODE,
    VMID,
    P::opt("keepActive", B),
    P::opt("migratedfrom", S).fmt(Fmt::Node),
    P::opt("overrule-shutdown", B),
    SKIPLOCK,
    TIMEOUT,
];
static SHUTDOWN: &[P] = &[
    NODE,
    VMID,
    P::opt("forceStop", B),
    P::opt("keepActive", B),
    SKIPLOCK,
    TIMEOUT,
];
static REBOOT: &[P] = &[NODE, VMID, TIMEOUT];
static NODE_POWER: &[P] = &[NODE, P::req("command", Ty::Enum(&["reboot", "shutdown"]))];
static APT_UPDATE: &[P] = &[NODE, P::opt("notify", B), P::opt("quiet", B)];
static MIGRATE_CHECK: &[P] = &[NODE, VMID, P::opt("target", S).fmt(Fmt::Node)];
static MIGRATE: &[P] = &[
    NODE,
    VMID,
    P::req("target", S).fmt(Fmt::Node),
    P::opt("bwlimit", NONNEG),
    P::opt("force", B),
    P::opt("migration_network", S).fmt(Fmt::Cidr),
    P::opt("migration_type", Ty::Enum(&["secure", "insecure"])),
    P::opt("online", B),
    P::opt("targetstorage", S).fmt(Fmt::StoragePairList),
    P::opt("with-conntrack-state", B),
    P::opt("with-local-disks", B),
];
/// `pve-snapshot-name`: a configuration ID of at most 40 characters.
const SNAPNAME: P = P::req("snapname", S).fmt(Fmt::ConfigId).max(40);
static SNAPSHOT_CREATE: &[P] = &[
    NODE,
    VMID,
    SNAPNAME,
    P::opt("description", S),
    P::opt("vmstate", B),
];
static SNAPSHOT_ONE: &[P] = &[NODE, VMID, SNAPNAME];
static SNAPSHOT_DELETE: &[P] = &[NODE, VMID, SNAPNAME, P::opt("force", B)];
static SNAPSHOT_CONFIG_PUT: &[P] = &[NODE, VMID, SNAPNAME, P::opt("description", S)];
static ROLLBACK: &[P] = &[NODE, VMID, SNAPNAME, P::opt("start", B)];
static RESOURCES: &[P] = &[P::opt("type", Ty::Enum(&["vm", "storage", "node", "sdn"]))];
static NEXTID: &[P] = &[P::opt("vmid", VMID_TY).fmt(Fmt::Vmid)];
static HA_LIST: &[P] = &[P::opt("type", Ty::Enum(&["ct", "vm"]))];
static HA_CREATE: &[P] = &[
    SID,
    P::opt("comment", S).max(4096),
    P::opt("failback", B),
    P::opt("group", S).fmt(Fmt::ConfigId),
    P::opt("max_relocate", NONNEG),
    P::opt("max_restart", NONNEG),
    P::opt("state", HA_STATES),
    P::opt("type", Ty::Enum(&["ct", "vm"])),
];
static HA_SID: &[P] = &[SID];
static HA_PUT: &[P] = &[
    SID,
    P::opt("comment", S).max(4096),
    P::opt("delete", S).fmt(Fmt::ConfigIdList).max(4096),
    P::opt("digest", S).max(64),
    P::opt("failback", B),
    P::opt("group", S).fmt(Fmt::ConfigId),
    P::opt("max_relocate", NONNEG),
    P::opt("max_restart", NONNEG),
    P::opt("state", HA_STATES),
];
static HA_DELETE: &[P] = &[SID, P::opt("purge", B)];
const RULE: P = P::req("rule", S).fmt(Fmt::ConfigId);
const RULE_TYPES: Ty = Ty::Enum(&["node-affinity", "resource-affinity"]);
const AFFINITY: P = P::opt("affinity", Ty::Enum(&["positive", "negative"]));
static RULE_LIST: &[P] = &[P::opt("resource", S), P::opt("type", RULE_TYPES)];
static RULE_CREATE: &[P] = &[
    AFFINITY,
    P::opt("comment", S).max(4096),
    P::opt("disable", B),
    P::opt("nodes", S).fmt(Fmt::HaNodeList),
    P::req("resources", S).fmt(Fmt::HaSidList),
    RULE,
    P::opt("strict", B),
    P::req("type", RULE_TYPES),
];
static RULE_ONLY: &[P] = &[RULE];
static RULE_PUT: &[P] = &[
    AFFINITY,
    P::opt("comment", S).max(4096),
    P::opt("delete", S).fmt(Fmt::ConfigIdList).max(4096),
    P::opt("digest", S).max(64),
    P::opt("disable", B),
    P::opt("nodes", S).fmt(Fmt::HaNodeList),
    P::opt("resources", S).fmt(Fmt::HaSidList),
    RULE,
    P::opt("strict", B),
    P::req("type", RULE_TYPES),
];
const GROUP: P = P::req("group", S).fmt(Fmt::ConfigId);
static GROUP_CREATE: &[P] = &[
    P::opt("comment", S).max(4096),
    GROUP,
    P::req("nodes", S).fmt(Fmt::HaNodeList),
    P::opt("nofailback", B),
    P::opt("restricted", B),
    P::opt("type", Ty::Enum(&["group"])),
];
static GROUP_ONLY: &[P] = &[GROUP];
static GROUP_PUT: &[P] = &[
    P::opt("comment", S).max(4096),
    P::opt("delete", S).fmt(Fmt::ConfigIdList).max(4096),
    P::opt("digest", S).max(64),
    GROUP,
    P::opt("nodes", S).fmt(Fmt::HaNodeList),
    P::opt("nofailback", B),
    P::opt("restricted", B),
];
static STORAGE_LIST: &[P] = &[P::opt(
    "type",
    Ty::Enum(&[
        "btrfs",
        "cephfs",
        "cifs",
        "dir",
        "esxi",
        "iscsi",
        "iscsidirect",
        "lvm",
        "lvmthin",
        "nfs",
        "pbs",
        "rbd",
        "zfs",
        "zfspool",
    ]),
)];
static STORAGE_GET: &[P] = &[P::req("storage", S).fmt(Fmt::StorageId)];
static POOL_LIST: &[P] = &[
    P::opt("poolid", S).fmt(Fmt::PoolId),
    P::opt("type", POOL_TYPES),
];
static POOL_CREATE: &[P] = &[POOLID, P::opt("comment", S)];
static POOL_GET: &[P] = &[POOLID, P::opt("type", POOL_TYPES)];
static POOL_PUT: &[P] = &[
    POOLID,
    P::opt("allow-move", B),
    P::opt("comment", S),
    P::opt("delete", B),
    P::opt("storage", S).fmt(Fmt::StorageIdList),
    P::opt("vms", S).fmt(Fmt::VmidList),
];
static POOL_DELETE: &[P] = &[POOLID];
static ACL_PUT: &[P] = &[
    P::opt("delete", B),
    P::opt("groups", S),
    P::req("path", S),
    P::opt("propagate", B),
    P::req("roles", S),
    P::opt("tokens", S),
    P::opt("users", S),
];
const ROLEID: P = P::req("roleid", S);
static ROLE_CREATE: &[P] = &[P::opt("privs", S), ROLEID];
static ROLE_ONLY: &[P] = &[ROLEID];
static ROLE_PUT: &[P] = &[P::opt("append", B), P::opt("privs", S), ROLEID];
const USERID: P = P::req("userid", S).max(64);
static USER_CREATE: &[P] = &[
    P::opt("comment", S).max(2048),
    P::opt("email", S).max(254),
    P::opt("enable", B),
    P::opt("expire", NONNEG),
    P::opt("firstname", S).max(1024),
    P::opt("groups", S),
    P::opt("keys", S),
    P::opt("lastname", S).max(1024),
    P::opt("password", S).max(64),
    USERID,
];
static TOKEN_CREATE: &[P] = &[
    P::opt("comment", S),
    P::opt("expire", NONNEG),
    P::opt("privsep", B),
    P::req("tokenid", S),
    USERID,
];

fn spec(r: R) -> Spec {
    let (params, qemu): (&'static [P], bool) = match r {
        R::Version | R::Nodes | R::ClusterStatus | R::ConfigNodes => (NONE, false),
        R::DelNode => (NODE_ONLY, false),
        R::Ticket => (TICKET, false),
        R::NodeStatus | R::DnsGet | R::NodeVersion | R::AptList => (NODE_ONLY, false),
        R::NodePower => (NODE_POWER, false),
        R::AptUpdate => (APT_UPDATE, false),
        R::MigrateCheck => (MIGRATE_CHECK, false),
        R::Migrate => (MIGRATE, false),
        R::SnapshotList => (NODE_VMID, false),
        R::SnapshotCreate => (SNAPSHOT_CREATE, false),
        R::SnapshotIndex | R::SnapshotConfigGet => (SNAPSHOT_ONE, false),
        R::SnapshotDelete => (SNAPSHOT_DELETE, false),
        R::SnapshotConfigPut => (SNAPSHOT_CONFIG_PUT, false),
        R::Rollback => (ROLLBACK, false),
        R::DnsPut => (DNS_PUT, false),
        R::Network => (NETWORK, false),
        R::NodeStorage => (NODE_STORAGE, false),
        R::NodeStorageStatus => (NODE_STORAGE_STATUS, false),
        R::Tasks => (TASKS, false),
        R::TaskIndex | R::TaskStatus => (TASK, false),
        R::TaskLog => (TASK_LOG, false),
        R::QemuList => (QEMU_LIST, false),
        R::QemuCreate => (QEMU_CREATE, true),
        R::QemuIndex | R::StatusIndex | R::StatusCurrent | R::PendingGet => (NODE_VMID, false),
        R::QemuDelete => (QEMU_DELETE, false),
        R::ConfigGet => (CONFIG_GET, false),
        R::ConfigPut => (CONFIG_PUT, true),
        R::ConfigPost => (CONFIG_POST, true),
        R::Clone => (CLONE, false),
        R::Template => (TEMPLATE, false),
        R::Resize => (RESIZE, false),
        R::Start => (START, false),
        R::Stop => (STOP, false),
        R::Shutdown => (SHUTDOWN, false),
        R::Reboot => (REBOOT, false),
        R::Resources => (RESOURCES, false),
        R::NextId => (NEXTID, false),
        R::HaList => (HA_LIST, false),
        R::HaCreate => (HA_CREATE, false),
        R::HaGet => (HA_SID, false),
        R::HaPut => (HA_PUT, false),
        R::HaDelete => (HA_DELETE, false),
        R::RuleList => (RULE_LIST, false),
        R::RuleCreate => (RULE_CREATE, false),
        R::RuleGet | R::RuleDelete => (RULE_ONLY, false),
        R::RulePut => (RULE_PUT, false),
        R::GroupList => (NONE, false),
        R::GroupCreate => (GROUP_CREATE, false),
        R::GroupGet | R::GroupDelete => (GROUP_ONLY, false),
        R::GroupPut => (GROUP_PUT, false),
        R::StorageList => (STORAGE_LIST, false),
        R::StorageGet => (STORAGE_GET, false),
        R::PoolList => (POOL_LIST, false),
        R::PoolCreate => (POOL_CREATE, false),
        R::PoolGet => (POOL_GET, false),
        R::PoolPut => (POOL_PUT, false),
        R::PoolDelete => (POOL_DELETE, false),
        R::AclList | R::RoleList => (NONE, false),
        R::AclPut => (ACL_PUT, false),
        R::RoleCreate => (ROLE_CREATE, false),
        R::RoleGet | R::RoleDelete => (ROLE_ONLY, false),
        R::RolePut => (ROLE_PUT, false),
        R::UserCreate => (USER_CREATE, false),
        R::TokenCreate => (TOKEN_CREATE, false),
    };
    Spec { params, qemu }
}

/// The parameters a route accepts, as `(name, required)`; VM configuration keys are
/// listed in the vendor schema's notation (`net[n]`). `None` for routes not served.
pub fn route_params(method: &str, path: &str) -> Option<Vec<(String, bool)>> {
    let i = ROUTES
        .iter()
        .position(|(m, p)| *m == method && *p == path)?;
    let spec = spec(KINDS[i]);
    let mut out: Vec<(String, bool)> = spec
        .params
        .iter()
        .map(|p| (p.name.to_string(), !p.optional))
        .collect();
    if spec.qemu {
        out.extend(params::qemu_key_names().into_iter().map(|n| (n, false)));
    }
    Some(out)
}

/// An API error is the twin's shared one: a status with its message (reason phrase and
/// body), or parameter errors in `fields`. These are its constructors in Proxmox's
/// terms.
pub(crate) use crate::core::ApiError;

impl ApiError {
    /// A status with its message.
    pub(crate) fn status(code: u16, m: impl Into<String>) -> ApiError {
        ApiError::new(code, "", m)
    }
    /// A 500 with its message, what most of pve's `die` calls answer.
    pub(crate) fn msg(m: impl Into<String>) -> ApiError {
        ApiError::status(500, m)
    }
    /// Parameter verification errors (400).
    pub(crate) fn params(errors: Errors) -> ApiError {
        ApiError::fields(
            "Parameter verification failed.",
            errors.into_iter().collect(),
        )
    }
    /// One parameter's verification error (400).
    pub(crate) fn param(name: &str, m: impl Into<String>) -> ApiError {
        ApiError::params(BTreeMap::from([(name.to_string(), m.into())]))
    }
}

/// A successful result: `data` and, for some lists, `total`.
pub(crate) struct Reply {
    data: Value,
    total: Option<usize>,
}

impl From<Value> for Reply {
    fn from(data: Value) -> Reply {
        Reply { data, total: None }
    }
}

pub(crate) type ApiResult = Result<Reply, ApiError>;

fn reason(resp: &mut Response, text: &str) {
    let line = text.lines().next().unwrap_or("").trim_end();
    let clean: String = line
        .chars()
        .map(|c| {
            if c == '\t' || (' '..='~').contains(&c) {
                c
            } else {
                '?'
            }
        })
        .collect();
    if let Ok(p) = hyper::ext::ReasonPhrase::try_from(clean.into_bytes()) {
        resp.extensions_mut().insert(p);
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

fn error_response(e: ApiError) -> Response {
    ProxmoxErrors.render(&e)
}

/// pveproxy's error bodies: `{"data": null, "message": ...}` for a status, `{"data":
/// null, "errors": {param: message}, "message": "Parameter verification failed.\n"}`
/// for parameter errors; the message's first line is the reason phrase.
pub(crate) struct ProxmoxErrors;

impl ErrorBody for ProxmoxErrors {
    fn render(&self, e: &ApiError) -> Response {
        if e.fields.is_empty() {
            let msg = &e.message;
            let message = if msg.ends_with('\n') {
                msg.clone()
            } else {
                format!("{msg}\n")
            };
            let mut r = json_response(e.status, &json!({"data": null, "message": message}));
            reason(&mut r, msg);
            return r;
        }
        let errors: Errors = e.fields.iter().cloned().collect();
        let mut r = json_response(
            StatusCode::BAD_REQUEST,
            &json!({"data": null, "errors": errors, "message": "Parameter verification failed.\n"}),
        );
        reason(&mut r, "Parameter verification failed.");
        r
    }
}

/// pveproxy's answer to failed authentication: a 401 with the reason and no body.
fn unauthorized(why: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    reason(&mut r, why);
    r
}

/// File locks (`/var/lock/qemu-server/lock-<vmid>.conf`): shared or exclusive holders.
#[derive(Default, Debug)]
struct Flock {
    shared: u32,
    exclusive: bool,
}

/// A held file lock; released when dropped.
pub(crate) struct FlockGuard {
    svc: Arc<Pve>,
    vmid: u32,
    exclusive: bool,
}

impl Drop for FlockGuard {
    fn drop(&mut self) {
        let mut locks = self.svc.flocks.lock();
        if let Some(l) = locks.get_mut(&self.vmid) {
            if self.exclusive {
                l.exclusive = false;
            } else {
                l.shared = l.shared.saturating_sub(1);
            }
            if !l.exclusive && l.shared == 0 {
                locks.remove(&self.vmid);
            }
        }
    }
}

/// One DC's Proxmox VE cluster.
pub struct Pve {
    ctx: Arc<DcContext>,
    st: Mutex<State>,
    flocks: Mutex<HashMap<u32, Flock>>,
    secret: Vec<u8>,
}

impl Pve {
    /// `/_twin/` mutation of a storage's `storage.cfg` entry: `nodes` (comma-separated,
    /// or null for all) and `disabled`.
    fn mutate_storage(&self, req: &MutateRequest) -> Result<Value, String> {
        let mut st = self.st.lock();
        let names: Vec<String> = st.nodes.iter().map(|n| n.name.clone()).collect();
        let Some(s) = st.storages.iter_mut().find(|s| s.id == req.id) else {
            return Err(format!("storage '{}' does not exist", req.id));
        };
        for (k, v) in &req.set {
            match k.as_str() {
                "nodes" => {
                    s.nodes = match v {
                        Value::Null => None,
                        Value::String(list) => {
                            let nodes: std::collections::BTreeSet<String> =
                                params::split_list(list).map(String::from).collect();
                            if let Some(n) = nodes.iter().find(|n| !names.contains(n)) {
                                return Err(format!("no such cluster node '{n}'"));
                            }
                            Some(nodes)
                        }
                        _ => return Err("`nodes` is a comma-separated list or null".into()),
                    }
                }
                "disabled" => {
                    s.disabled = v
                        .as_bool()
                        .ok_or_else(|| "`disabled` is true or false".to_string())?
                }
                other => return Err(format!("unknown storage setting '{other}'")),
            }
        }
        Ok(serde_json::to_value(&*s).unwrap_or(Value::Null))
    }

    /// The twin's clock.
    pub(crate) fn clock(&self) -> &crate::core::Clock {
        &self.ctx.shared.clock
    }

    /// Seconds since the epoch, on the twin's clock (what Proxmox puts in `starttime`,
    /// `uptime` and tickets).
    pub(crate) fn now(&self) -> i64 {
        self.clock().now_secs()
    }

    fn rand(&self) -> u64 {
        self.ctx.shared.faults.random_u64()
    }

    /// Take a file lock on a guest, waiting up to `timeout` like `flock` with a timeout.
    pub(crate) async fn flock(
        self: &Arc<Self>,
        vmid: u32,
        exclusive: bool,
        timeout: Duration,
    ) -> Result<FlockGuard, String> {
        let deadline = self.clock().now_ms() + timeout.as_millis() as u64;
        loop {
            {
                let mut locks = self.flocks.lock();
                let l = locks.entry(vmid).or_default();
                let free = if exclusive {
                    !l.exclusive && l.shared == 0
                } else {
                    !l.exclusive
                };
                if free {
                    if exclusive {
                        l.exclusive = true;
                    } else {
                        l.shared += 1;
                    }
                    return Ok(FlockGuard {
                        svc: self.clone(),
                        vmid,
                        exclusive,
                    });
                }
            }
            if self.clock().now_ms() >= deadline {
                return Err(format!(
                    "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"
                ));
            }
            self.clock().sleep(Duration::from_millis(10)).await;
        }
    }

    fn authenticate(&self, parts: &Parts) -> Result<Auth, AuthFailure> {
        const FAILED: AuthFailure = AuthFailure("Authentication failed!");
        let headers = |name: &str| -> Option<String> {
            let v: Vec<&str> = parts
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!v.is_empty()).then(|| v.join("; "))
        };
        let cookie = headers("cookie");
        let authz = headers("authorization");
        let mut ticket = cookie
            .as_deref()
            .and_then(|c| auth::extract_auth_value(c, "PVEAuthCookie"));
        if ticket.is_none() {
            ticket = authz
                .as_deref()
                .and_then(|a| auth::extract_auth_value(a, "PVEAuthCookie"));
        }
        let creds = &self.ctx.creds;
        if ticket.is_none()
            && let Some(token) = authz
                .as_deref()
                .and_then(|a| auth::extract_auth_value(a, "PVEAPIToken"))
        {
            let (id, secret) = auth::split_token(&token).ok_or(FAILED)?;
            // The configured token and those created through `/access/users`.
            if (id == creds.proxmox_token_id && secret == creds.proxmox_token_secret)
                || self.st.lock().access.token_matches(id, secret)
            {
                return Ok(Auth {
                    user: id.to_string(),
                });
            }
            return Err(FAILED);
        }
        let Some(ticket) = ticket else {
            return Err(AuthFailure("No ticket"));
        };
        let user = auth::verify_ticket(&self.secret, &ticket, self.now()).ok_or(FAILED)?;
        if user != creds.proxmox_user {
            return Err(FAILED);
        }
        if parts.method != Method::GET {
            let csrf = headers("csrfpreventiontoken").unwrap_or_default();
            if !auth::verify_csrf(&self.secret, &user, &csrf, self.now()) {
                return Err(AuthFailure("Permission denied - invalid csrf token"));
            }
        }
        Ok(Auth { user })
    }

    async fn dispatch(self: Arc<Self>, i: usize, req: Request) -> Response {
        let kind = KINDS[i];
        let (mut parts, body) = req.into_parts();
        let auth = if kind == R::Ticket {
            Auth {
                user: String::new(),
            }
        } else {
            match self.authenticate(&parts) {
                Ok(a) => a,
                Err(AuthFailure(why)) => return unauthorized(why),
            }
        };
        let bytes = match axum::body::to_bytes(body, 1 << 20).await {
            Ok(b) => b,
            Err(_) => return error_response(ApiError::status(413, "request too large")),
        };
        let method = parts.method.clone();
        let mut raw: BTreeMap<String, Value> = BTreeMap::new();
        if !bytes.is_empty() {
            if method != Method::POST && method != Method::PUT {
                return error_response(ApiError::status(
                    501,
                    format!("Unexpected content for method '{method}'"),
                ));
            }
            let is_json = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"));
            if is_json {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Object(m)) => raw.extend(m),
                    Ok(_) => return error_response(ApiError::msg("Not a HASH reference")),
                    Err(e) => {
                        return error_response(ApiError::msg(format!(
                            "malformed JSON string: {e}"
                        )));
                    }
                }
            } else {
                add_urlencoded(&mut raw, &bytes);
            }
        }
        if let Some(q) = parts.uri.query() {
            add_urlencoded(&mut raw, q.as_bytes());
        }
        if let Ok(Path(path_params)) =
            Path::<BTreeMap<String, String>>::from_request_parts(&mut parts, &()).await
        {
            for (k, v) in path_params {
                if let Some(existing) = raw.get(&k)
                    && model::value_text(existing) != v
                {
                    return error_response(ApiError::param(
                        &k,
                        "duplicate parameter (already defined in URI) with conflicting values!",
                    ));
                }
                raw.insert(k, Value::String(v));
            }
        }
        // pveproxy hands calls for another node to that node's pveproxy (the methods'
        // `proxyto => 'node'`) before anything is checked; a node it cannot reach
        // answers 595 with the connection error as the reason.
        if let Some(r) = self.unreachable(i, &raw) {
            return r;
        }
        let params = match params::validate(&spec(kind), &raw) {
            Ok(p) => p,
            Err(e) => return error_response(ApiError::params(e)),
        };
        if let Some(vmid) = params.get("vmid").and_then(Value::as_u64) {
            let faults = &self.ctx.shared.faults;
            let id = vmid.to_string();
            if faults
                .peek_object(&self.ctx.name, "proxmox", &id)
                .as_deref()
                == Some("error_500")
                && faults.take_object(&self.ctx.name, "proxmox", &id).is_some()
            {
                return error_response(ApiError::msg(format!(
                    "VM {vmid}: injected error (error_500 fault)"
                )));
            }
        }
        // Privileges (checked before the handler, as PVE's `check` permissions are).
        if kind != R::Ticket {
            let st = self.st.lock();
            if let Err(e) = perms::authorize(&st.access, &st, kind, &auth, &params) {
                return error_response(e);
            }
        }
        if needs_quorum(kind) && !nodes::quorate(&self.st.lock()) {
            // pve-cluster `PVE/Cluster.pm` `check_cfs_quorum`: /etc/pve is read-only.
            return error_response(ApiError::msg("cluster not ready - no quorum?"));
        }
        match self.call(kind, &auth, &params).await {
            Ok(Reply { mut data, total }) => {
                {
                    let st = self.st.lock();
                    perms::filter(&st.access, &st, kind, &auth, &mut data);
                }
                let mut body = json!({"data": data});
                if let Some(t) = total {
                    body["total"] = json!(t);
                }
                json_response(StatusCode::OK, &body)
            }
            Err(e) => error_response(e),
        }
    }

    async fn call(self: &Arc<Self>, kind: R, auth: &Auth, p: &Params) -> ApiResult {
        match kind {
            R::Version => self.version(),
            R::Ticket => self.ticket(p),
            R::Nodes => self.nodes(),
            R::NodeStatus => self.node_status(p),
            R::NodePower => self.node_power(p),
            R::NodeVersion => self.node_version(p),
            R::AptList => self.apt_list(p),
            R::AptUpdate => self.apt_update(auth, p),
            R::Network => self.network(p),
            R::DnsGet => self.dns_get(p),
            R::DnsPut => self.dns_put(p),
            R::NodeStorage => self.node_storage(p),
            R::NodeStorageStatus => self.node_storage_status(p),
            R::Tasks => self.tasks(p),
            R::TaskIndex => self.task_index(p),
            R::TaskStatus => self.task_status(p),
            R::TaskLog => self.task_log(p),
            R::QemuList => self.qemu_list(p),
            R::QemuCreate => self.qemu_create(auth, p),
            R::QemuIndex => self.qemu_index(p),
            R::QemuDelete => self.qemu_delete(auth, p),
            R::ConfigGet => self.config_get(p),
            R::ConfigPut => self.config_put(auth, p).await,
            R::ConfigPost => self.config_post(auth, p).await,
            R::PendingGet => self.pending_get(p),
            R::Clone => self.clone_vm(auth, p),
            R::Template => self.template(auth, p),
            R::Resize => self.resize(auth, p),
            R::StatusIndex => self.status_index(p),
            R::StatusCurrent => self.status_current(p),
            R::Start => self.start(auth, p),
            R::Stop => self.stop(auth, p, false),
            R::Shutdown => self.stop(auth, p, true),
            R::Reboot => self.reboot(auth, p),
            R::MigrateCheck => self.migrate_check(p),
            R::Migrate => self.migrate(auth, p),
            R::SnapshotList => self.snapshot_list(p),
            R::SnapshotCreate => self.snapshot_create(auth, p),
            R::SnapshotIndex => Ok(json!([{"cmd": "rollback"}, {"cmd": "config"}]).into()),
            R::SnapshotDelete => self.snapshot_delete(auth, p),
            R::SnapshotConfigGet => self.snapshot_config_get(p),
            R::SnapshotConfigPut => self.snapshot_config_put(p),
            R::Rollback => self.rollback(auth, p),
            R::ClusterStatus => self.cluster_status(),
            R::ConfigNodes => self.config_nodes(),
            R::DelNode => self.delnode(p),
            R::Resources => self.resources(p),
            R::NextId => self.nextid(p),
            R::HaList => self.ha_list(p),
            R::HaCreate => self.ha_create(p),
            R::HaGet => self.ha_get(p),
            R::HaPut => self.ha_put(p),
            R::HaDelete => self.ha_delete(p),
            R::RuleList => self.rule_list(p),
            R::RuleCreate => self.rule_create(p),
            R::RuleGet => self.rule_get(p),
            R::RulePut => self.rule_put(p),
            R::RuleDelete => self.rule_delete(p),
            R::GroupList => Err(ApiError::msg(
                "cannot index groups: ha groups have been migrated to rules",
            )),
            R::GroupGet => Err(ApiError::msg(
                "cannot read group: ha groups have been migrated to rules",
            )),
            R::GroupCreate => Err(ApiError::msg(
                "cannot create group: ha groups have been migrated to rules",
            )),
            R::GroupPut => Err(ApiError::msg(
                "cannot update group: ha groups have been migrated to rules",
            )),
            R::GroupDelete => Err(ApiError::msg(
                "cannot delete group: ha groups have been migrated to rules",
            )),
            R::StorageList => self.storage_list(p),
            R::StorageGet => self.storage_get(p),
            R::PoolList => self.pool_list(p),
            R::PoolCreate => self.pool_create(p),
            R::PoolGet => self.pool_get(p),
            R::PoolPut => self.pool_put(p),
            R::PoolDelete => self.pool_delete(p),
            R::AclList => self.acl_list(auth),
            R::AclPut => self.acl_put(p),
            R::RoleList => self.role_list(),
            R::RoleCreate => self.role_create(p),
            R::RoleGet => self.role_get(p),
            R::RolePut => self.role_put(p),
            R::RoleDelete => self.role_delete(p),
            R::UserCreate => self.user_create(p),
            R::TokenCreate => self.token_create(p),
        }
    }

    /// pveproxy's 595 when the call cannot reach the node it is for: the cluster
    /// answers through its first node that is up, which proxies calls for other nodes
    /// to them.
    fn unreachable(
        self: &Arc<Self>,
        route: usize,
        raw: &BTreeMap<String, Value>,
    ) -> Option<Response> {
        self.tick();
        let st = self.st.lock();
        let Some(local) = nodes::serving_node(&st) else {
            return Some(proxy_error("Connection refused"));
        };
        // Only the node methods are proxied (`proxyto => 'node'`); `delnode` names
        // a node but runs where it is called.
        if !ROUTES[route].1.starts_with("/nodes/{node}") {
            return None;
        }
        let target = raw.get("node").and_then(Value::as_str)?;
        if target == local {
            return None;
        }
        match st.node(target).map(|n| n.health) {
            Some(model::Health::Offline) => Some(proxy_error("No route to host")),
            Some(model::Health::PveproxyDown) => Some(proxy_error("Connection refused")),
            _ => None,
        }
    }

    /// Unknown paths and methods: authentication first, then 501 as PVE answers.
    async fn not_implemented(self: Arc<Self>, req: Request) -> Response {
        let (parts, _) = req.into_parts();
        if let Err(AuthFailure(why)) = self.authenticate(&parts) {
            return unauthorized(why);
        }
        let path = parts.uri.path();
        let rel = path.strip_prefix("/api2/json").unwrap_or(path);
        error_response(ApiError::status(
            501,
            format!("Method '{} {}' not implemented", parts.method, rel),
        ))
    }
}

/// Whether a call writes `/etc/pve` (which pmxcfs makes read-only without quorum):
/// every write but logging in, rebooting a node, refreshing its package index, its DNS
/// settings (`/etc/resolv.conf`) and stopping guests.
fn needs_quorum(kind: R) -> bool {
    let i = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
    ROUTES[i].0 != "GET"
        && !matches!(
            kind,
            R::Ticket
                | R::NodePower
                | R::AptUpdate
                | R::DnsPut
                | R::Stop
                | R::Shutdown
                // `delnode` checks quorum itself, after refusing to delete the node
                // answering.
                | R::DelNode
        )
}

/// What pveproxy answers when it cannot reach the node a call is for: 595 with the
/// connection error as the reason and no body (pve-http-server
/// `PVE/APIServer/AnyEvent.pm` `proxy_request`, AnyEvent::HTTP's status for connection
/// errors).
fn proxy_error(why: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::from_u16(595).unwrap_or(StatusCode::BAD_GATEWAY);
    reason(&mut r, why);
    r
}

/// Form or query data: `key=value` pairs; empty values count as absent (as in PVE).
fn add_urlencoded(raw: &mut BTreeMap<String, Value>, data: &[u8]) {
    if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) {
        for (k, v) in pairs {
            if v.is_empty() {
                raw.remove(&k);
            } else {
                raw.insert(k, Value::String(v));
            }
        }
    }
}

fn method_filter(m: &str) -> MethodFilter {
    match m {
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}

impl Service for Pve {
    fn name(&self) -> &'static str {
        "proxmox"
    }

    fn routes(&self) -> Vec<(String, String)> {
        route_table().listing("/api2/json")
    }

    fn router(self: Arc<Self>) -> Router {
        let table = route_table();
        let mut router = Router::new();
        for (path, routes) in table.by_path() {
            let mut mr = MethodRouter::new();
            for route in routes {
                let (svc, i) = (self.clone(), route.handler);
                let handler = move |req: Request| {
                    let svc = svc.clone();
                    async move { svc.dispatch(i, req).await }
                };
                mr = mr.on(method_filter(route.method.as_str()), handler);
            }
            let svc = self.clone();
            let mr = mr.fallback(move |req: Request| {
                let svc = svc.clone();
                async move { svc.not_implemented(req).await }
            });
            router = router.route(&format!("/api2/json{path}"), mr);
        }
        let svc = self.clone();
        router.fallback(move |req: Request| {
            let svc = svc.clone();
            async move { svc.not_implemented(req).await }
        })
    }

    fn save(&self) -> Value {
        self.platform_events();
        serde_json::to_value(&*self.st.lock()).unwrap_or(Value::Null)
    }

    fn mutate(&self, req: &MutateRequest) -> Result<Value, String> {
        match req.kind.as_str() {
            "storage" => return self.mutate_storage(req),
            "node" => return self.mutate_node(req),
            "node-upgrade" => return self.mutate_upgrade(req),
            "apt-repository" => return self.mutate_repo(req),
            "qemu" | "vm" => {}
            other => {
                return Err(format!(
                    "unknown kind `{other}`; use `qemu`, `storage`, `node`, `node-upgrade` or `apt-repository`"
                ));
            }
        }
        let vmid: u32 = req
            .id
            .trim_start_matches("qemu/")
            .parse()
            .map_err(|_| format!("`{}` is not a VMID", req.id))?;
        let mut st = self.st.lock();
        if !st.vms.contains_key(&vmid) {
            return Err(format!("VM {vmid} does not exist"));
        }
        if req.delete {
            st.vms.remove(&vmid);
            for pool in st.pools.values_mut() {
                pool.vms.remove(&vmid);
            }
            return Ok(json!({"vmid": vmid, "deleted": true}));
        }
        let node_names: Vec<String> = st.nodes.iter().map(|n| n.name.clone()).collect();
        let pid = (self.rand() % 4_000_000) as u32 + 1000;
        let Some(vm) = st.vms.get_mut(&vmid) else {
            return Err(format!("VM {vmid} does not exist"));
        };
        for (k, v) in &req.set {
            match k.as_str() {
                "status" => match v.as_str() {
                    Some("running") => {
                        if !vm.running {
                            vm.running = true;
                            vm.started = self.now();
                            vm.pid = pid;
                        }
                    }
                    Some("stopped") => vm.running = false,
                    _ => return Err("`status` is `running` or `stopped`".into()),
                },
                "node" => {
                    let n = v.as_str().unwrap_or_default();
                    if !node_names.iter().any(|x| x == n) {
                        return Err(format!("no such cluster node '{n}'"));
                    }
                    vm.node = n.to_string();
                }
                key => {
                    if v.is_null() {
                        vm.conf.remove(key);
                        continue;
                    }
                    let Some(p) = params::qemu_key(key) else {
                        return Err(format!("unknown setting '{key}'"));
                    };
                    let v = params::check_value(&p, key, v).map_err(|e| format!("{key}: {e}"))?;
                    vm.conf.insert(key.to_string(), model::conf_value(key, &v));
                }
            }
        }
        let mut config = json!(vm.conf);
        config["digest"] = json!(vm.digest());
        Ok(
            json!({"vmid": vmid, "node": vm.node, "status": if vm.running { "running" } else { "stopped" }, "config": config}),
        )
    }

    fn summary(&self) -> Value {
        self.platform_events();
        let st = self.st.lock();
        let templates = st.vms.values().filter(|v| v.is_template()).count();
        json!({
            "nodes": st.nodes.len(),
            "nodes_online": st.nodes.iter().filter(|n| n.health.is_online()).count(),
            "node_versions": st.nodes.iter().map(|n| (n.name.clone(), json!(n.version))).collect::<serde_json::Map<String, Value>>(),
            "snapshots": st.vms.values().map(|v| v.snapshots.len()).sum::<usize>(),
            "vms": st.vms.len() - templates,
            "templates": templates,
            "running": st.vms.values().filter(|v| v.running).count(),
            "tasks": st.tasks.len(),
            "tasks_running": st.tasks.values().filter(|t| t.status.is_none()).count(),
            "ha_resources": st.ha.len(),
            "pools": st.pools.len(),
            "storages": st.storages.len(),
        })
    }
}

/// The configured API token (`strata@pve!twin` unless the credentials say otherwise)
/// exists, with its current secret, as a token without privilege separation of a user
/// who is `Administrator` on `/`: what `pveum user token add strata@pve twin
/// --privsep 0` after `pveum acl modify / --users strata@pve --roles Administrator`
/// leaves. Tokens made through `/access/users/{userid}/token/{tokenid}` get only what
/// their ACLs give.
fn seed_access(st: &mut State, creds: &crate::Credentials) {
    let Some((user, id)) = access::split_tokenid(&creds.proxmox_token_id) else {
        return;
    };
    let known = st.access.users.contains_key(user);
    let u = st.access.users.entry(user.to_string()).or_default();
    u.tokens.insert(
        id.to_string(),
        access::Token {
            secret: creds.proxmox_token_secret.clone(),
            privsep: false,
            comment: None,
        },
    );
    if !known {
        st.access.acl.insert(access::AclEntry {
            path: "/".into(),
            kind: access::Ugid::User,
            ugid: user.to_string(),
            roleid: "Administrator".into(),
            propagate: true,
        });
    }
}

/// Build this DC's Proxmox VE cluster (from saved state when given).
pub fn build(ctx: Arc<DcContext>, saved: Option<Value>) -> anyhow::Result<Arc<dyn Service>> {
    let state = match saved {
        Some(v) if !v.is_null() => {
            let mut st: State =
                serde_json::from_value(v).context("the saved Proxmox VE state is not readable")?;
            st.reindex();
            st
        }
        _ => api::fresh_state(&ctx),
    };
    let mut state = state;
    seed_access(&mut state, &ctx.creds);
    let secret = hex::decode(&state.secret).unwrap_or_else(|_| state.secret.as_bytes().to_vec());
    let pve = Arc::new(Pve {
        ctx,
        st: Mutex::new(state),
        flocks: Mutex::new(HashMap::new()),
        secret,
    });
    pve.recover_tasks();
    Ok(pve)
}
