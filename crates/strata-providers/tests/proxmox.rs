//! The Proxmox VE provider against the twin's simulated cluster.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::{Value, json};
use strata_plan::{
    Action, Kind, NodeDnsFields, Observed, Plan, Platform, Resource, ResourceId, ResourceSet, Step,
    VmFields, VmSpec, diff, display,
};
use strata_providers::proxmox::ProxmoxProvider;
use strata_providers::targets::Targets;
use strata_providers::{ActContext, IntentLog, Outcome, Provider, ProviderError};
use strata_twin::{DcSeed, FaultSpec, RunningTwin, SeedStorage, TwinOptions};

const DC: &str = "fra1";
const OWNER: &str = "strata-test";
const TEMPLATE: &str = "debian-12-cloudinit";

/// Intents kept in memory (the apply journal keeps them in SQLite).
#[derive(Default)]
struct MemIntents(Mutex<HashMap<String, Value>>);

#[async_trait]
impl IntentLog for MemIntents {
    async fn record(&self, key: &str, intent: &Value) {
        self.0.lock().insert(key.to_string(), intent.clone());
    }
    async fn previous(&self, key: &str) -> Option<Value> {
        self.0.lock().get(key).cloned()
    }
}

struct Env {
    twin: RunningTwin,
    _dir: tempfile::TempDir,
    targets: Targets,
    admin: String,
    http: reqwest::Client,
    pve: reqwest::Client,
    pve_base: String,
    pve_auth: String,
}

async fn start(extra_vms: usize) -> Env {
    let seed = DcSeed {
        name: DC.into(),
        proxmox_nodes: vec!["pve1".into(), "pve2".into(), "pve3".into()],
        proxmox_storages: vec![
            SeedStorage {
                name: "ceph-vm".into(),
                kind: "rbd".into(),
                content: vec!["images".into()],
            },
            SeedStorage {
                name: "local-zfs".into(),
                kind: "zfspool".into(),
                content: vec!["images".into(), "rootdir".into()],
            },
        ],
        extra_vms,
        ..DcSeed::default()
    };
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![seed],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults: FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 11,
        timing: Default::default(),
    })
    .await
    .expect("twin");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("endpoints.json");
    twin.write_endpoints(&file).expect("endpoints");
    let text = std::fs::read_to_string(&file).expect("read endpoints");
    let targets = Targets::parse(
        &text,
        dir.path(),
        &strata_providers::secrets::StaticSecrets::new(),
    )
    .expect("targets");
    let doc: Value = serde_json::from_str(&text).expect("json");
    let p = &doc["dcs"][0]["proxmox"];
    let ca = std::fs::read_to_string(dir.path().join("twin-ca.pem")).expect("ca");
    let pve = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("pem")])
        .build()
        .expect("client");
    Env {
        admin: format!("http://{}/_twin", twin.addr),
        http: reqwest::Client::new(),
        pve,
        pve_base: format!("{}/api2/json", p["url"].as_str().expect("url")),
        pve_auth: format!(
            "PVEAPIToken={}={}",
            p["token_id"].as_str().expect("id"),
            p["token_secret"].as_str().expect("secret")
        ),
        twin,
        _dir: dir,
        targets,
    }
}

impl Env {
    fn provider(&self) -> ProxmoxProvider {
        let t = self.targets.dcs[0]
            .proxmox
            .as_ref()
            .expect("proxmox target");
        ProxmoxProvider::new(DC, t, OWNER).expect("provider")
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.admin))
            .json(&body)
            .send()
            .await
            .expect("admin call");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    async fn faults(&self, spec: Value) {
        self.admin(reqwest::Method::PUT, "/faults", spec).await;
    }

    async fn counters(&self) -> Value {
        self.http
            .get(format!("{}/counters", self.admin))
            .send()
            .await
            .expect("counters")
            .json()
            .await
            .expect("json")
    }

    /// A direct (non-strata) Proxmox API read.
    async fn pve_get(&self, path: &str) -> Value {
        let r = self
            .pve
            .get(format!("{}{path}", self.pve_base))
            .header("Authorization", &self.pve_auth)
            .send()
            .await
            .expect("pve get");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json::<Value>().await.expect("json")["data"].clone()
    }

    /// A direct (non-strata) Proxmox API write, as an operator would make it.
    async fn pve_form(&self, method: reqwest::Method, path: &str, form: &Value) {
        let form: Vec<(String, String)> = form
            .as_object()
            .expect("form")
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), String::from),
                )
            })
            .collect();
        let r = self
            .pve
            .request(method, format!("{}{path}", self.pve_base))
            .header("Authorization", &self.pve_auth)
            .form(&form)
            .send()
            .await
            .expect("pve write");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    /// Every guest name in the cluster, with how often it occurs.
    async fn names(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for g in self
            .pve_get("/cluster/resources?type=vm")
            .await
            .as_array()
            .expect("list")
        {
            *out.entry(g["name"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
        out
    }
}

/// A VM on one NIC; its cloud-init network is left unmanaged.
fn vm_fields(memory: u64, ha: bool) -> VmFields {
    let mut tags = vec![OWNER.to_string(), "role-test".to_string()];
    tags.sort();
    VmFields {
        cores: 2,
        memory,
        disk_gb: 3,
        nets: Some(vec!["virtio,bridge=vmbr0,tag=10".to_string()]),
        ipconfig: None,
        nameserver: None,
        searchdomain: None,
        tags,
        status: "running".to_string(),
        ha,
    }
}

fn vm_with(name: &str, fields: &VmFields) -> Resource {
    Resource::with_fields(ResourceId::new(DC, Kind::Vm, name), fields).with_spec(&VmSpec {
        template: Some(TEMPLATE.to_string()),
        storage: Some("ceph-vm".to_string()),
        cluster: Some("pve".to_string()),
        ..VmSpec::default()
    })
}

fn vm_seen(r: &Resource) -> VmFields {
    r.fields_as().expect("vm fields")
}

fn vm(name: &str, memory: u64, ha: bool) -> Resource {
    vm_with(name, &vm_fields(memory, ha))
}

fn rule(name: &str, fields: Value) -> Resource {
    let mut r = Resource::new(ResourceId::new(DC, Kind::HaRule, name));
    for (k, v) in fields.as_object().expect("fields") {
        r = r.field(k, v.clone());
    }
    r.depends_on = r.fields["vms"]
        .as_array()
        .expect("vms")
        .iter()
        .filter_map(Value::as_str)
        .map(|v| ResourceId::new(DC, Kind::Vm, v))
        .collect();
    r
}

fn set(resources: impl IntoIterator<Item = Resource>) -> ResourceSet {
    let mut s = ResourceSet::default();
    for r in resources {
        s.insert(r);
    }
    s
}

fn plan(desired: &ResourceSet, observed: &Observed) -> Plan {
    diff(desired, observed, &[(DC.to_string(), Platform::Proxmox)])
}

/// The plan an apply makes when its journal holds intents for every desired object
/// (an earlier run was killed mid-create): namesakes are resumed, not conflicts.
fn plan_resuming(desired: &ResourceSet, observed: &Observed) -> Plan {
    let resuming = desired.resources.keys().cloned().collect();
    strata_plan::diff_resuming(
        desired,
        observed,
        &[(DC.to_string(), Platform::Proxmox)],
        &resuming,
    )
}

fn key(step: &Step) -> String {
    format!("{}#{:?}", step.id, step.action).to_lowercase()
}

async fn act(
    p: &dyn Provider,
    step: &Step,
    intents: &dyn IntentLog,
) -> Result<Outcome, ProviderError> {
    let k = key(step);
    let ctx = ActContext {
        key: &k,
        intents,
        owner_tag: OWNER,
    };
    p.act(step, &ctx).await
}

async fn apply(p: &dyn Provider, desired: &ResourceSet, intents: &dyn IntentLog) -> Vec<Outcome> {
    let observed = p.observe().await.expect("observe");
    let mut out = Vec::new();
    for step in plan(desired, &observed).steps {
        out.push(
            act(p, &step, intents)
                .await
                .unwrap_or_else(|e| panic!("{} {:?}: {e}", step.id, step.action)),
        );
    }
    out
}

fn create_step(r: &Resource) -> Step {
    Step {
        id: r.id.clone(),
        action: Action::Create,
        changes: Vec::new(),
        desired: Some(r.clone()),
        observed: None,
        depends_on: Vec::new(),
        reboot: None,
    }
}

#[tokio::test]
async fn observe_lists_without_owning_and_costs_a_constant_number_of_calls() {
    for extra in [3usize, 2000] {
        let env = start(extra).await;
        let p = env.provider();
        env.admin(reqwest::Method::POST, "/counters/reset", json!({}))
            .await;
        let before = p.calls();
        let observed = p.observe().await.expect("observe");
        let used = p.calls() - before;
        assert_eq!(used, 3, "one observe with {extra} VMs used {used} calls");
        let counters = env.counters().await;
        assert_eq!(counters["total"], 3, "{counters:#}");
        let routes: BTreeSet<String> = counters["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["method"].as_str().unwrap_or(""),
                    c["route"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            routes,
            [
                "GET /api2/json/cluster/ha/resources",
                "GET /api2/json/cluster/ha/rules",
                "GET /api2/json/cluster/resources",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        );
        assert!(
            observed.resources.is_empty(),
            "nothing is owned on a fresh cluster"
        );
        assert_eq!(observed.unowned.len(), extra + 1);
        assert!(
            observed
                .unowned
                .iter()
                .all(|u| u.kind == "qemu" && u.platform == Platform::Proxmox)
        );
        assert!(
            observed
                .unowned
                .iter()
                .any(|u| u.name == TEMPLATE && u.external_id == "9000")
        );
        env.twin.shutdown().await.expect("shutdown");
    }
}

#[tokio::test]
async fn create_then_observe_matches_and_the_next_plan_is_empty() {
    let env = start(0).await;
    let p = env.provider();
    let intents = MemIntents::default();
    let desired = set([
        vm("web1", 2048, false),
        vm("db1", 4096, true),
        rule(
            "db-pin",
            json!({"type": "node-affinity", "affinity": null, "nodes": ["pve2", "pve3"], "strict": true, "vms": ["db1"]}),
        ),
    ]);
    let observed = p.observe().await.expect("observe");
    let first = plan(&desired, &observed);
    assert_eq!(first.counts().create, 3);
    // The plan orders the rule after the VMs it names.
    assert_eq!(first.steps.last().map(|s| s.id.kind), Some(Kind::HaRule));
    for step in &first.steps {
        let out = act(&p, step, &intents).await.expect("create");
        assert!(out.external_id.is_some(), "{out:?}");
        if step.id.kind == Kind::Vm {
            assert!(out.note.contains("cloned from"), "{out:?}");
        }
    }
    let observed = p.observe().await.expect("observe");
    for want in desired.iter() {
        let got = observed.resources.get(&want.id).expect("observed");
        assert!(got.owned);
        for (k, v) in &want.fields {
            assert_eq!(got.fields.get(k), Some(v), "{} {k}", want.id);
        }
        if want.id.kind != Kind::Vm {
            continue;
        }
        // The guest network is observed too (this desired state leaves the cloud-init
        // part of it unmanaged).
        let got: VmFields = got.fields_as().expect("vm fields");
        assert_eq!(
            got.nets,
            Some(vec!["virtio,bridge=vmbr0,tag=10".to_string()]),
            "{}",
            want.id
        );
    }
    let again = plan(&desired, &observed);
    assert!(again.is_empty(), "{:#?}", again.steps);
    // NICs as asked, MAC kept; the HA rule strata made for the group.
    let web1 = observed
        .resources
        .get(&ResourceId::new(DC, Kind::Vm, "web1"))
        .expect("web1");
    let node = web1.spec["node"].as_str().expect("node");
    let vmid = web1.external_id.as_deref().expect("vmid");
    let conf = env
        .pve_get(&format!("/nodes/{node}/qemu/{vmid}/config"))
        .await;
    let net0 = conf["net0"].as_str().expect("net0");
    assert!(
        net0.starts_with("virtio=") && net0.contains("tag=10"),
        "{net0}"
    );
    let rules = env.pve_get("/cluster/ha/rules").await;
    let db1 = observed
        .resources
        .get(&ResourceId::new(DC, Kind::Vm, "db1"))
        .and_then(|r| r.external_id.clone())
        .expect("db1");
    let pin = rules
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["rule"] == "db-pin")
        .unwrap_or_else(|| panic!("{rules:#}"));
    assert_eq!(pin["resources"], format!("vm:{db1}"));
    assert_eq!(pin["nodes"], "pve2,pve3");
    assert!(
        pin["comment"].as_str().is_some_and(|c| c.contains(OWNER)),
        "{pin}"
    );
    // An operator's rule is listed as unowned, and one with the same name as a
    // desired rule is a conflict, never overwritten.
    env.pve_form(
        reqwest::Method::POST,
        "/cluster/ha/rules",
        &json!({"rule": "ops-rule", "type": "node-affinity", "nodes": "pve1", "resources": format!("vm:{db1}")}),
    )
    .await;
    let observed = p.observe().await.expect("observe");
    assert!(
        observed
            .unowned
            .iter()
            .any(|u| u.kind == "ha-rule" && u.name == "ops-rule")
    );
    let theirs = set([rule(
        "ops-rule",
        json!({"type": "node-affinity", "affinity": null, "nodes": ["pve1"], "strict": false, "vms": ["db1"]}),
    )]);
    assert!(!plan(&theirs, &observed).conflicts.is_empty());
    // A rule changed in the spec is updated in place; one dropped from it is deleted;
    // the operator's rule is left alone.
    let mut moved = desired.clone();
    moved.insert(rule(
        "db-pin",
        json!({"type": "node-affinity", "affinity": null, "nodes": ["pve3"], "strict": true, "vms": ["db1"]}),
    ));
    let step = plan(&moved, &observed).steps.pop().expect("an update");
    assert_eq!((step.id.kind, step.action), (Kind::HaRule, Action::Update));
    act(&p, &step, &intents).await.expect("update the rule");
    let observed = p.observe().await.expect("observe");
    assert!(plan(&moved, &observed).is_empty());
    let without = set(desired.iter().filter(|r| r.id.kind == Kind::Vm).cloned());
    let del = plan(&without, &observed);
    assert_eq!(del.steps.len(), 1, "{:#?}", del.steps);
    assert_eq!(
        (del.steps[0].id.kind, del.steps[0].action),
        (Kind::HaRule, Action::Delete)
    );
    act(&p, &del.steps[0], &intents)
        .await
        .expect("delete the rule");
    let rules = env.pve_get("/cluster/ha/rules").await;
    let ids: Vec<&str> = rules
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["rule"].as_str())
        .collect();
    assert_eq!(ids, ["ops-rule"]);
    // Creating again (a re-run of the same step) adopts instead of cloning.
    let step = create_step(desired.iter().next().expect("one"));
    let out = act(&p, &step, &intents).await.expect("re-create");
    assert!(out.note.contains("adopted"), "{out:?}");
    assert_eq!(env.names().await.values().copied().max(), Some(1));
    env.twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn updates_apply_changed_fields_and_drift_is_observed() {
    let env = start(0).await;
    let p = env.provider();
    let intents = MemIntents::default();
    apply(&p, &set([vm("app1", 2048, false)]), &intents).await;
    let id = ResourceId::new(DC, Kind::Vm, "app1");

    // strata changes memory and becomes HA-managed.
    let desired = set([vm("app1", 3072, true)]);
    let observed = p.observe().await.expect("observe");
    let step = plan(&desired, &observed).steps.pop().expect("a step");
    assert_eq!(step.action, Action::Update);
    let fields: BTreeSet<&str> = step.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, BTreeSet::from(["ha", "memory"]));
    act(&p, &step, &intents).await.expect("update");
    let observed = p.observe().await.expect("observe");
    let got = observed.resources.get(&id).expect("app1");
    let seen = vm_seen(got);
    assert_eq!(seen.memory, 3072);
    assert!(seen.ha);
    assert!(plan(&desired, &observed).is_empty());

    // Someone changes memory behind strata's back.
    let vmid = got.external_id.clone().expect("vmid");
    env.admin(
        reqwest::Method::POST,
        &format!("/dcs/{DC}/proxmox/mutate"),
        json!({"kind": "qemu", "id": vmid, "set": {"memory": 4096}}),
    )
    .await;
    let observed = p.observe().await.expect("observe");
    assert_eq!(
        vm_seen(observed.resources.get(&id).expect("app1")).memory,
        4096
    );
    let fix = plan(&desired, &observed);
    assert_eq!(fix.steps.len(), 1);
    assert_eq!(fix.steps[0].changes[0].field, "memory");
    act(&p, &fix.steps[0], &intents).await.expect("fix");
    assert!(plan(&desired, &p.observe().await.expect("observe")).is_empty());

    // Leave HA, stop, and shrinking the disk is refused before anything is written.
    let stopped_fields = VmFields {
        status: "stopped".to_string(),
        ..vm_fields(3072, false)
    };
    let stopped = vm_with("app1", &stopped_fields);
    apply(&p, &set([stopped.clone()]), &intents).await;
    let observed = p.observe().await.expect("observe");
    let got = observed.resources.get(&id).expect("app1");
    let seen = vm_seen(got);
    assert_eq!(seen.status, "stopped");
    assert!(!seen.ha);
    let smaller = vm_with(
        "app1",
        &VmFields {
            disk_gb: 2,
            cores: 4,
            ..stopped_fields.clone()
        },
    );
    let step = plan(&set([smaller]), &observed).steps.pop().expect("step");
    let err = act(&p, &step, &intents).await.expect_err("shrink");
    assert!(matches!(err, ProviderError::Refused(_)), "{err}");
    let after = p.observe().await.expect("observe");
    assert_eq!(
        vm_seen(after.resources.get(&id).expect("app1")).cores,
        2,
        "nothing written"
    );

    // Growing the disk: a resize task.
    let bigger = vm_with(
        "app1",
        &VmFields {
            disk_gb: 8,
            ..stopped_fields
        },
    );
    let step = plan(&set([bigger.clone()]), &after)
        .steps
        .pop()
        .expect("step");
    act(&p, &step, &intents).await.expect("resize");
    let now = p.observe().await.expect("observe");
    assert_eq!(vm_seen(now.resources.get(&id).expect("app1")).disk_gb, 8);
    env.twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn delete_removes_owned_vms_and_unowned_ones_are_refused() {
    let env = start(2).await;
    let p = env.provider();
    let intents = MemIntents::default();
    apply(
        &p,
        &set([vm("tmp1", 2048, true), vm("keep1", 2048, false)]),
        &intents,
    )
    .await;
    let observed = p.observe().await.expect("observe");
    let del = plan(&set([vm("keep1", 2048, false)]), &observed);
    assert_eq!(del.counts().delete, 1);
    let out = act(&p, &del.steps[0], &intents).await.expect("delete");
    assert!(out.note.contains("destroyed"), "{out:?}");
    let observed = p.observe().await.expect("observe");
    assert!(
        observed
            .resources
            .get(&ResourceId::new(DC, Kind::Vm, "tmp1"))
            .is_none()
    );
    assert!(!env.names().await.contains_key("tmp1"));
    let resources = env.pve_get("/cluster/ha/resources").await;
    assert_eq!(resources.as_array().map(Vec::len), Some(0), "{resources:#}");
    // Deleting again is a no-op.
    let out = act(&p, &del.steps[0], &intents)
        .await
        .expect("delete again");
    assert_eq!(out.note, "already gone");

    // An unowned VM: a step aimed at it (a forged plan) is refused, and it stays.
    let legacy = observed
        .unowned
        .iter()
        .find(|u| u.name.starts_with("legacy-"))
        .expect("a legacy VM");
    let mut target = vm(&legacy.name, 2048, false);
    target.owned = true;
    target.external_id = Some(legacy.external_id.clone());
    let delete = Step {
        id: target.id.clone(),
        action: Action::Delete,
        changes: Vec::new(),
        desired: None,
        observed: Some(target.clone()),
        depends_on: Vec::new(),
        reboot: None,
    };
    let err = act(&p, &delete, &intents)
        .await
        .expect_err("unowned delete");
    assert!(matches!(err, ProviderError::Refused(_)), "{err}");
    let update = Step {
        action: Action::Update,
        changes: vec![strata_plan::Change {
            field: "memory".into(),
            old: None,
            new: Some(json!(8192)),
            sensitive: false,
        }],
        desired: Some(vm(&legacy.name, 8192, false)),
        ..delete.clone()
    };
    let err = act(&p, &update, &intents)
        .await
        .expect_err("unowned update");
    assert!(matches!(err, ProviderError::Refused(_)), "{err}");
    assert!(env.names().await.contains_key(&legacy.name));
    // Creating a VM whose name an unowned VM already has is refused, not duplicated.
    let err = act(&p, &create_step(&vm(&legacy.name, 2048, false)), &intents)
        .await
        .expect_err("create over unowned");
    assert!(matches!(err, ProviderError::Refused(_)), "{err}");
    assert_eq!(env.names().await[&legacy.name], 1);
    // Adopt is never done for VMs.
    let adopt = Step {
        action: Action::Adopt,
        ..update
    };
    assert!(matches!(
        act(&p, &adopt, &intents).await,
        Err(ProviderError::Refused(_))
    ));
    env.twin.shutdown().await.expect("shutdown");
}

async fn create_many(
    providers: &[Arc<ProxmoxProvider>],
    names: &[String],
    intents: &MemIntents,
) -> Vec<String> {
    let futs = names.iter().enumerate().map(|(i, n)| {
        let p = providers[i % providers.len()].clone();
        let step = create_step(&vm(n, 1024, false));
        async move {
            act(p.as_ref(), &step, intents)
                .await
                .unwrap_or_else(|e| panic!("create {n}: {e}"))
                .external_id
                .expect("vmid")
        }
    });
    futures::future::join_all(futs).await
}

#[tokio::test]
async fn concurrent_creates_race_for_nextid_without_duplicates() {
    let env = start(0).await;
    let intents = MemIntents::default();
    // One process: its own creates never collide.
    let one = vec![Arc::new(env.provider())];
    let names: Vec<String> = (0..10).map(|i| format!("solo{i}")).collect();
    let ids = create_many(&one, &names, &intents).await;
    // Two processes (two providers): `nextid` hands both the same ids.
    let two = vec![Arc::new(env.provider()), Arc::new(env.provider())];
    let names2: Vec<String> = (0..20).map(|i| format!("duo{i}")).collect();
    let ids2 = create_many(&two, &names2, &intents).await;
    let all: BTreeSet<&String> = ids.iter().chain(&ids2).collect();
    assert_eq!(all.len(), 30, "vmids must be distinct: {ids:?} {ids2:?}");
    let counts = env.names().await;
    for n in names.iter().chain(&names2) {
        assert_eq!(counts.get(n), Some(&1), "{n}: {counts:?}");
    }
    let observed = one[0].observe().await.expect("observe");
    assert_eq!(observed.resources.len(), 30);
    let desired = set(names.iter().chain(&names2).map(|n| vm(n, 1024, false)));
    assert!(plan(&desired, &observed).is_empty());
    env.twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_interrupted_create_is_adopted_not_duplicated() {
    let env = start(0).await;
    let p = env.provider();
    let intents = MemIntents::default();
    let want = vm("crash1", 2048, false);
    let step = create_step(&want);
    // The clone goes through, then every call naming the new VM fails: the create
    // dies after the clone, before the VM carries the ownership tag.
    let next = env.pve_get("/cluster/nextid").await;
    let next = next
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| next.to_string());
    let fault = json!({"dc": DC, "service": "proxmox", "id": next, "fault": "error_500"});
    env.admin(reqwest::Method::POST, "/faults/object", fault.clone())
        .await;
    let err = act(&p, &step, &intents).await.expect_err("interrupted");
    assert!(err.to_string().contains("injected"), "{err}");
    let intent = intents
        .previous(&key(&step))
        .await
        .expect("intent recorded");
    assert_eq!(intent["vmid"].to_string().trim_matches('"'), next);
    assert_eq!(intent["name"], "crash1");
    let observed = p.observe().await.expect("observe");
    assert!(observed.resources.is_empty(), "not owned yet");
    assert!(observed.unowned.iter().any(|u| u.name == "crash1"));
    env.admin(reqwest::Method::DELETE, "/faults/object", fault)
        .await;

    // The next run (same step key) finds the intent and adopts the clone; without
    // the journal's intent the untagged namesake would be a conflict.
    let observed = p.observe().await.expect("observe");
    assert_eq!(plan(&set([want.clone()]), &observed).conflicts.len(), 1);
    let steps = plan_resuming(&set([want.clone()]), &observed).steps;
    assert_eq!(steps.len(), 1);
    assert_eq!(key(&steps[0]), key(&step));
    let out = act(&p, &steps[0], &intents).await.expect("resume");
    assert_eq!(out.external_id.as_deref(), Some(next.as_str()));
    assert!(out.note.contains("interrupted"), "{out:?}");
    assert_eq!(env.names().await["crash1"], 1);
    let observed = p.observe().await.expect("observe");
    assert!(plan(&set([want]), &observed).is_empty());

    // An intent whose vmid now holds something else is not adopted: a fresh clone.
    let other = vm("crash2", 2048, false);
    let step2 = create_step(&other);
    intents
        .record(
            &key(&step2),
            &json!({"vmid": 9000, "name": "crash2", "node": "pve1"}),
        )
        .await;
    let out = act(&p, &step2, &intents).await.expect("create");
    assert_ne!(out.external_id.as_deref(), Some("9000"));
    assert_eq!(env.names().await["crash2"], 1);
    env.twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn creates_converge_through_injected_faults() {
    let env = start(0).await;
    let p = Arc::new(env.provider());
    let intents = MemIntents::default();
    env.faults(json!({"5xx": 0.1, "429": 0.05})).await;
    let names: Vec<String> = (0..8).map(|i| format!("flaky{i}")).collect();
    let desired = set(names.iter().map(|n| vm(n, 1024, n.ends_with('0'))));
    // Each run does what the plan says; a step that still fails is retried by the
    // next run, as an operator re-runs apply.
    let mut converged = false;
    for _ in 0..4 {
        let Ok(observed) = p.observe().await else {
            continue;
        };
        let steps = plan(&desired, &observed).steps;
        if steps.is_empty() {
            converged = true;
            break;
        }
        let results =
            futures::future::join_all(steps.iter().map(|s| act(p.as_ref(), s, &intents))).await;
        for (s, r) in steps.iter().zip(results) {
            if let Err(e) = r {
                eprintln!("{}: {e} (the next run retries)", s.id);
            }
        }
    }
    env.faults(json!({})).await;
    let observed = p.observe().await.expect("observe");
    assert!(
        converged || plan(&desired, &observed).is_empty(),
        "did not converge"
    );
    let counts = env.names().await;
    for n in &names {
        assert_eq!(counts.get(n), Some(&1), "{n}: {counts:?}");
    }
    let failed: u64 = env.counters().await["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter(|c| c["status"] != "2xx")
        .map(|c| c["count"].as_u64().unwrap_or(0))
        .sum();
    assert!(failed > 0, "faults were injected");
    env.twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn creates_converge_through_timeouts_and_dropped_connections() {
    let env = start(0).await;
    // Two processes, so `nextid` races too; timeouts and dropped connections make
    // creates ambiguous (did the clone happen?).
    let providers = [Arc::new(env.provider()), Arc::new(env.provider())];
    let intents = MemIntents::default();
    env.faults(json!({"5xx": 0.1, "429": 0.02, "timeout": 0.05, "drop": 0.05, "timeout_ms": 300}))
        .await;
    let names: Vec<String> = (0..16).map(|i| format!("st{i}")).collect();
    let desired = set(names.iter().map(|n| vm(n, 1024, n.ends_with('1'))));
    for _ in 0..5 {
        let Ok(observed) = providers[0].observe().await else {
            continue;
        };
        let steps = plan(&desired, &observed).steps;
        if steps.is_empty() {
            break;
        }
        let results = futures::future::join_all(
            steps
                .iter()
                .enumerate()
                .map(|(i, s)| act(providers[i % 2].as_ref(), s, &intents)),
        )
        .await;
        for (s, r) in steps.iter().zip(results) {
            if let Err(e) = r {
                eprintln!("{}: {e} (the next run retries)", s.id);
            }
        }
    }
    env.faults(json!({})).await;
    let counts = env.names().await;
    for n in &names {
        assert_eq!(counts.get(n), Some(&1), "{n}: {counts:?}");
    }
    let observed = providers[0].observe().await.expect("observe");
    assert!(plan(&desired, &observed).is_empty(), "did not converge");
    env.twin.shutdown().await.expect("shutdown");
}

fn node_dns(node: &str, servers: &[&str]) -> Resource {
    Resource::with_fields(
        ResourceId::new(DC, Kind::NodeDns, node),
        &NodeDnsFields {
            search: "fra1.example.net".to_string(),
            dns: servers.iter().map(ToString::to_string).collect(),
        },
    )
}

#[tokio::test]
async fn node_resolvers_are_set_through_the_dns_api_and_drift_is_planned_again() {
    let env = start(0).await;
    let p = env.provider();
    let servers = ["10.0.0.2", "10.0.0.3"];
    let desired = set(["pve1", "pve2", "pve3"].map(|n| node_dns(n, &servers)));
    p.expect(&desired);

    // Fresh nodes hold what the installer wrote: one update per node.
    let before = p.calls();
    let o = p.observe().await.expect("observe");
    // 3 list calls, `GET /nodes` and one `GET /nodes/{node}/dns` per declared node.
    assert_eq!(p.calls() - before, 3 + 1 + 3);
    let first = plan(&desired, &o);
    assert_eq!(first.steps.len(), 3, "{}", display::render(&first, 0));
    for step in &first.steps {
        assert_eq!(step.action, Action::Update);
        assert!(step.changes.iter().any(|c| c.field == "search"), "{step:?}");
        act(&p, step, &MemIntents::default())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", step.id));
    }
    assert_eq!(
        env.pve_get("/nodes/pve2/dns").await,
        json!({"search": "fra1.example.net", "dns1": "10.0.0.2", "dns2": "10.0.0.3"})
    );
    let o = p.observe().await.expect("observe");
    let converged = plan(&desired, &o);
    assert!(converged.is_empty(), "{}", display::render(&converged, 0));

    // Someone changes pve3's resolvers by hand: strata plans them back.
    let r = env
        .pve
        .put(format!("{}/nodes/pve3/dns", env.pve_base))
        .header("Authorization", &env.pve_auth)
        .form(&[("search", "fra1.example.net"), ("dns1", "192.0.2.53")])
        .send()
        .await
        .expect("put");
    assert!(r.status().is_success(), "{}", r.status());
    let o = p.observe().await.expect("observe");
    let drift = plan(&desired, &o);
    assert_eq!(drift.steps.len(), 1, "{}", display::render(&drift, 0));
    let step = &drift.steps[0];
    assert_eq!(step.id.name, "pve3");
    assert_eq!(
        step.changes
            .iter()
            .map(|c| c.field.as_str())
            .collect::<Vec<_>>(),
        vec!["dns"]
    );
    act(&p, step, &MemIntents::default())
        .await
        .expect("re-apply");
    assert!(plan(&desired, &p.observe().await.expect("observe")).is_empty());

    // A node the cluster does not have is planned as a create, which is refused.
    let missing = set([node_dns("pve9", &servers)]);
    p.expect(&missing);
    let o = p.observe().await.expect("observe");
    let step = plan(&missing, &o).steps.remove(0);
    assert_eq!(step.action, Action::Create);
    let e = act(&p, &step, &MemIntents::default())
        .await
        .expect_err("no such node");
    assert!(e.to_string().contains("no node pve9"), "{e}");
}

#[tokio::test]
async fn a_changed_guest_address_is_drift_and_is_applied_again() {
    let env = start(3).await;
    let p = env.provider();
    let intents = MemIntents::default();
    let with_network = |name: &str, last: u8| {
        vm_with(
            name,
            &VmFields {
                nets: Some(vec![
                    "virtio,bridge=vmbr0,tag=10".to_string(),
                    "virtio,bridge=vmbr0,tag=12".to_string(),
                ]),
                ipconfig: Some(vec![
                    format!("ip=10.1.10.{last}/24"),
                    format!("ip=10.1.12.{last}/24,gw=10.1.12.1"),
                ]),
                nameserver: Some("10.1.12.21 10.1.12.22".to_string()),
                searchdomain: Some("fra1.example.net".to_string()),
                ..vm_fields(2048, false)
            },
        )
    };
    let desired = set([with_network("net-a", 30), with_network("net-b", 31)]);
    apply(&p, &desired, &intents).await;

    // Converged: NICs compare without the MAC addresses Proxmox assigned.
    let before = p.calls();
    let o = p.observe().await.expect("observe");
    // 3 list calls and one configuration read per owned VM (never for the 3 others).
    assert_eq!(p.calls() - before, 3 + 2);
    let converged = plan(&desired, &o);
    assert!(converged.is_empty(), "{}", display::render(&converged, 0));
    let a = o
        .resources
        .get(&ResourceId::new(DC, Kind::Vm, "net-a"))
        .expect("net-a observed");
    assert_eq!(
        vm_seen(a).ipconfig.expect("ipconfig")[1],
        "ip=10.1.12.30/24,gw=10.1.12.1"
    );

    // Someone re-addresses net-a's second NIC and changes its resolvers by hand.
    let vmid = a.external_id.clone().expect("vmid");
    let node = a.spec["node"].as_str().expect("node").to_string();
    let r = env
        .pve
        .put(format!("{}/nodes/{node}/qemu/{vmid}/config", env.pve_base))
        .header("Authorization", &env.pve_auth)
        .form(&[
            ("ipconfig1", "ip=10.1.12.99/24,gw=10.1.12.1"),
            ("nameserver", "192.0.2.53"),
        ])
        .send()
        .await
        .expect("put");
    assert!(r.status().is_success(), "{}", r.status());
    let o = p.observe().await.expect("observe");
    let drift = plan(&desired, &o);
    assert_eq!(drift.steps.len(), 1, "{}", display::render(&drift, 0));
    let step = &drift.steps[0];
    assert_eq!(
        (step.id.name.as_str(), step.action),
        ("net-a", Action::Update)
    );
    let mut fields: Vec<&str> = step.changes.iter().map(|c| c.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(fields, vec!["ipconfig", "nameserver"]);
    act(&p, step, &intents).await.expect("re-apply");
    let conf = env
        .pve_get(&format!("/nodes/{node}/qemu/{vmid}/config"))
        .await;
    assert_eq!(conf["ipconfig1"], "ip=10.1.12.30/24,gw=10.1.12.1");
    assert_eq!(conf["nameserver"], "10.1.12.21 10.1.12.22");
    let again = plan(&desired, &p.observe().await.expect("observe"));
    assert!(again.is_empty(), "{}", display::render(&again, 0));
}

#[tokio::test]
async fn a_cpu_change_to_a_running_vm_is_rebooted_in_or_reported_pending() {
    // Proxmox keeps `cores` of a running VM pending until it boots again: the plan
    // says so, apply reboots within the blast radius and never calls the rest updated.
    let env = start(0).await;
    let p = env.provider();
    let intents = MemIntents::default();
    apply(
        &p,
        &set([vm("app1", 2048, false), vm("app2", 2048, false)]),
        &intents,
    )
    .await;
    let four = |name: &str| {
        vm_with(
            name,
            &VmFields {
                cores: 4,
                ..vm_fields(2048, false)
            },
        )
    };
    let desired = set([four("app1"), four("app2")]);
    let mut first = plan(&desired, &p.observe().await.expect("observe"));
    assert_eq!(first.steps.len(), 2);
    for s in &first.steps {
        let r = s.reboot.as_ref().expect("a reboot");
        assert_eq!(
            (r.fields.clone(), r.allowed),
            (vec!["cores".to_string()], true)
        );
    }
    let shown = display::render(&first, 0);
    assert!(shown.contains("⟳ reboot: cores"), "{shown}");
    assert!(
        serde_json::to_string(&first)
            .expect("json")
            .contains("\"reboot\"")
    );
    // Two owned VMs, 10%: one reboot now, the other deferred.
    first.limit_reboots(10.0);
    let allowed: Vec<bool> = first
        .steps
        .iter()
        .map(|s| s.reboot.as_ref().is_some_and(|r| r.allowed))
        .collect();
    assert_eq!(allowed, [true, false]);
    assert!(display::render(&first, 0).contains("reboot deferred"));
    let done = act(&p, &first.steps[0], &intents).await.expect("app1");
    assert_eq!(done.note, "updated cores (rebooted to apply them)");
    let deferred = act(&p, &first.steps[1], &intents).await.expect("app2");
    assert!(
        !deferred.note.contains("updated") && deferred.note.contains("pending until VM"),
        "{}",
        deferred.note
    );

    // Observe reports what waits; the next plan is a reboot of app2 alone.
    let observed = p.observe().await.expect("observe");
    let app2 = observed
        .resources
        .get(&ResourceId::new(DC, Kind::Vm, "app2"))
        .expect("app2");
    let spec: VmSpec = app2.spec_as().expect("spec");
    assert_eq!(spec.pending.get("cores"), Some(&json!(2)), "{spec:?}");
    assert_eq!(vm_seen(app2).cores, 4);
    let next = plan(&desired, &observed);
    assert_eq!(next.steps.len(), 1, "{}", display::render(&next, 0));
    assert_eq!(next.steps[0].id.name, "app2");
    assert!(next.steps[0].changes.is_empty());
    let done = act(&p, &next.steps[0], &intents).await.expect("reboot");
    assert!(
        done.note.starts_with("rebooted to apply cores"),
        "{}",
        done.note
    );
    let now = p.observe().await.expect("observe");
    assert!(plan(&desired, &now).is_empty());
    for name in ["app1", "app2"] {
        let r = now
            .resources
            .get(&ResourceId::new(DC, Kind::Vm, name))
            .expect("vm");
        let vmid = r.external_id.clone().expect("vmid");
        let node = r.spec_as::<VmSpec>().expect("spec").node.expect("node");
        let current = env
            .pve_get(&format!("/nodes/{node}/qemu/{vmid}/config?current=1"))
            .await;
        assert_eq!(current["cores"], 4, "{name}");
    }

    // Someone else's pending change is drift; undoing it needs no reboot.
    let r = now
        .resources
        .get(&ResourceId::new(DC, Kind::Vm, "app1"))
        .expect("app1");
    let vmid = r.external_id.clone().expect("vmid");
    let node = r.spec_as::<VmSpec>().expect("spec").node.expect("node");
    env.pve_form(
        reqwest::Method::PUT,
        &format!("/nodes/{node}/qemu/{vmid}/config"),
        &json!({"memory": "4096"}),
    )
    .await;
    let fix = plan(&desired, &p.observe().await.expect("observe"));
    assert_eq!(fix.steps.len(), 1);
    assert_eq!(fix.steps[0].changes[0].field, "memory");
    assert!(fix.steps[0].reboot.is_none(), "{:?}", fix.steps[0].reboot);
    let done = act(&p, &fix.steps[0], &intents).await.expect("fix");
    assert_eq!(done.note, "updated memory");
    assert!(plan(&desired, &p.observe().await.expect("observe")).is_empty());
    env.twin.shutdown().await.expect("shutdown");
}

/// The custom role the README documents for strata (`pveum role add StrataProvisioner`).
const STRATA_ROLE: &str = "Datastore.AllocateSpace,Datastore.Audit,SDN.Use,Sys.Audit,Sys.Console,Sys.Modify,VM.Allocate,VM.Audit,VM.Clone,VM.Config.CPU,VM.Config.Cloudinit,VM.Config.Disk,VM.Config.Memory,VM.Config.Network,VM.Config.Options,VM.PowerMgmt";

impl Env {
    /// Through the twin's administrator token, as the README's `pveum` commands do:
    /// the role, a user with it on `/`, a privilege-separated token with it on `/`. A
    /// provider that uses that token.
    async fn minimal_token_provider(&self, privs: &str) -> ProxmoxProvider {
        let post = |path: &str, form: Value| {
            let path = path.to_string();
            async move { self.pve_form(reqwest::Method::POST, &path, &form).await }
        };
        post(
            "/access/roles",
            json!({"roleid": "StrataProvisioner", "privs": privs}),
        )
        .await;
        post("/access/users", json!({"userid": "provisioner@pve"})).await;
        let r = self
            .pve
            .post(format!(
                "{}/access/users/provisioner@pve/token/strata",
                self.pve_base
            ))
            .header("Authorization", &self.pve_auth)
            .form(&[("privsep", "1")])
            .send()
            .await
            .expect("token");
        let token: Value = r.json().await.expect("json");
        let secret = token["data"]["value"].as_str().expect("secret").to_string();
        for (kind, who) in [
            ("users", "provisioner@pve"),
            ("tokens", "provisioner@pve!strata"),
        ] {
            self.pve_form(
                reqwest::Method::PUT,
                "/access/acl",
                &json!({"path": "/", kind: who, "roles": "StrataProvisioner"}),
            )
            .await;
        }
        let mut t = self.targets.dcs[0].proxmox.clone().expect("proxmox target");
        t.token_id = "provisioner@pve!strata".into();
        t.token_secret = strata_providers::secrets::Secret::new(secret);
        ProxmoxProvider::new(DC, &t, OWNER).expect("provider")
    }
}

#[tokio::test]
async fn a_token_with_the_documented_role_converges_and_a_missing_privilege_is_named() {
    let env = start(2).await;
    let p = env.minimal_token_provider(STRATA_ROLE).await;
    let intents = MemIntents::default();
    let desired = set([
        vm("app1", 2048, true),
        vm("app2", 2048, false),
        rule(
            "pin",
            json!({"type": "node-affinity", "affinity": null, "nodes": ["pve1", "pve2"], "strict": false, "failback": false, "vms": ["app1"]}),
        ),
        node_dns("pve1", &["10.0.0.2"]),
    ]);
    p.expect(&desired);
    apply(&p, &desired, &intents).await;
    let observed = p.observe().await.expect("observe");
    assert!(
        plan(&desired, &observed).is_empty(),
        "{}",
        display::render(&plan(&desired, &observed), 0)
    );
    // The unowned guests stay visible (VM.Audit on /vms through `/`).
    assert!(observed.unowned.iter().any(|u| u.name == TEMPLATE));

    // Updates (with the reboot they need) and deletes work too.
    let bigger = set([vm("app2", 3072, false)]);
    let step = plan(&bigger, &p.observe().await.expect("observe"))
        .steps
        .into_iter()
        .find(|s| s.action == Action::Update)
        .expect("update");
    act(&p, &step, &intents)
        .await
        .expect("update with the role");

    // Without VM.Config.Memory: the error names the privilege, the path and the fix.
    let less: Vec<&str> = STRATA_ROLE
        .split(',')
        .filter(|p| *p != "VM.Config.Memory")
        .collect();
    env.pve_form(
        reqwest::Method::PUT,
        "/access/roles/StrataProvisioner",
        &json!({"privs": less.join(",")}),
    )
    .await;
    let again = set([vm("app2", 4096, false)]);
    let step = plan(&again, &p.observe().await.expect("observe"))
        .steps
        .into_iter()
        .find(|s| s.action == Action::Update)
        .expect("update");
    let err = act(&p, &step, &intents)
        .await
        .expect_err("no memory privilege");
    let msg = err.to_string();
    assert!(matches!(err, ProviderError::Refused(_)), "{msg}");
    assert!(
        msg.contains("Permission check failed (/vms/")
            && msg.contains("VM.Config.Memory)")
            && msg.contains("provisioner@pve!strata")
            && msg.contains("--privs VM.Config.Memory"),
        "{msg}"
    );
    let delete = plan(&set([]), &p.observe().await.expect("observe"));
    for s in delete.steps.iter().filter(|s| s.id.kind != Kind::NodeDns) {
        act(&p, s, &intents).await.expect("delete with the role");
    }
    env.twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_node_affinity_rule_sets_failback_on_its_ha_resources() {
    // PVE 9: `failback` is a flag of each HA resource (pve-ha-manager `Groups.pm`
    // migrates a group's `nofailback` to it).
    let env = start(0).await;
    let p = env.provider();
    let intents = MemIntents::default();
    let pin = |failback: bool| {
        rule(
            "pin",
            json!({"type": "node-affinity", "affinity": null, "nodes": ["pve1"], "strict": true, "failback": failback, "vms": ["db1"]}),
        )
    };
    let desired = set([vm("db1", 2048, true), pin(false)]);
    apply(&p, &desired, &intents).await;
    let observed = p.observe().await.expect("observe");
    assert!(plan(&desired, &observed).is_empty());
    let vmid = observed
        .resources
        .get(&ResourceId::new(DC, Kind::Vm, "db1"))
        .and_then(|r| r.external_id.clone())
        .expect("vmid");
    let res = env
        .pve_get(&format!("/cluster/ha/resources/vm:{vmid}"))
        .await;
    assert_eq!(res["failback"], 0, "{res}");

    let back = set([vm("db1", 2048, true), pin(true)]);
    let step = plan(&back, &observed).steps.pop().expect("step");
    assert_eq!(step.changes[0].field, "failback");
    act(&p, &step, &intents).await.expect("failback on");
    let res = env
        .pve_get(&format!("/cluster/ha/resources/vm:{vmid}"))
        .await;
    assert_eq!(res["failback"], 1, "{res}");
    assert!(plan(&back, &p.observe().await.expect("observe")).is_empty());
    env.twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn create_preconditions_fail_the_plan_naming_what_to_fix() {
    let env = start(0).await;
    let p = env.provider();
    let observe_err = |desired: ResourceSet| {
        let p = &p;
        async move {
            p.expect(&desired);
            p.observe().await.expect_err("preconditions").to_string()
        }
    };
    // No such template.
    let missing = vm_with("app1", &vm_fields(2048, false));
    let mut missing = missing;
    missing
        .spec
        .insert("template".into(), json!("ubuntu-24.04"));
    let e = observe_err(set([missing])).await;
    assert!(
        e.contains("template `ubuntu-24.04` does not exist") && e.contains("app1"),
        "{e}"
    );
    // No such storage.
    let mut nowhere = vm("app1", 2048, false);
    nowhere.spec.insert("storage".into(), json!("nfs-fast"));
    let e = observe_err(set([nowhere])).await;
    assert!(
        e.contains("storage `nfs-fast` is not enabled on any node"),
        "{e}"
    );
    // The storage is disabled.
    let storage = |set: Value| {
        let env = &env;
        async move {
            env.admin(
                reqwest::Method::POST,
                &format!("/dcs/{DC}/proxmox/mutate"),
                json!({"kind": "storage", "id": "ceph-vm", "set": set}),
            )
            .await;
        }
    };
    storage(json!({"disabled": true})).await;
    let e = observe_err(set([vm("app1", 2048, false)])).await;
    assert!(
        e.contains("storage `ceph-vm` is not enabled on any node"),
        "{e}"
    );
    storage(json!({"disabled": false})).await;
    // The template has no cloud-init drive.
    env.admin(
        reqwest::Method::POST,
        &format!("/dcs/{DC}/proxmox/mutate"),
        json!({"kind": "qemu", "id": "9000", "set": {"ide2": null}}),
    )
    .await;
    let e = observe_err(set([vm("app1", 2048, false)])).await;
    assert!(
        e.contains("has no cloud-init drive")
            && e.contains("qm set 9000 --ide2 <storage>:cloudinit"),
        "{e}"
    );
    // Nothing to create: nothing checked (and no extra call).
    p.expect(&set([]));
    p.observe().await.expect("observe");
    env.twin.shutdown().await.expect("shutdown");
}
