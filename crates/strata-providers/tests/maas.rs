//! The MAAS provider against the twin's MAAS: observe cost and ownership, network
//! create with DHCP, adopt + deploy, failures, crash safety and faults.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use serde_json::{Value, json};
use strata_plan::{
    Action, DnsDomainFields, DnsRecordFields, Kind, MaasSubnetFields, MaasSubnetSpec,
    MaasTagFields, MachineBond, MachineBridge, MachineFields, MachineLink, MachineNetwork,
    MachineRaid, MachineSpec, MachineStorage, Observed, Plan, Platform, Resource, ResourceId,
    ResourceSet, Step, VlanFields, VlanSpec,
};
use strata_providers::http::EndpointConfig;
use strata_providers::maas::{MaasOptions, MaasProvider};
use strata_providers::secrets::{SecretRef, SecretResolver, StaticSecrets, SystemSecrets};
use strata_providers::targets::{MaasTarget, Targets};
use strata_providers::{ActContext, IntentLog, Outcome, Provider, ProviderError};
use strata_twin::{
    DcSeed, FaultSpec, RunningTwin, SeedController, SeedDisk, SeedMachine, SeedNic, TwinOptions,
};

const DC: &str = "fra1";
const OWNER: &str = "strata-testfleet";

fn seed(i: usize) -> SeedMachine {
    SeedMachine {
        serial: format!("SN{i:05}"),
        pxe_mac: mac(0, i),
        cpu_count: 32,
        memory_mib: 131072,
        storage_gb: 960,
        ..SeedMachine::default()
    }
}

fn mac(prefix: u8, i: usize) -> String {
    format!(
        "52:54:{prefix:02x}:{:02x}:{:02x}:{:02x}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

struct Env {
    twin: RunningTwin,
    target: MaasTarget,
    admin: String,
    _dir: tempfile::TempDir,
}

async fn start(machines: Vec<SeedMachine>, faults: FaultSpec) -> Env {
    start_with(machines, Vec::new(), faults).await
}

fn nic(name: &str, address: &str, gateway: Option<&str>) -> SeedNic {
    SeedNic {
        name: name.into(),
        address: address.into(),
        gateway: gateway.map(str::to_string),
        vlan: None,
    }
}

/// The controllers as the example fleet's VMs register: one NIC per VLAN, untagged
/// in the guest; the default route on management.
fn registered_controllers() -> Vec<SeedController> {
    let mut out = vec![SeedController {
        hostname: "fra1-maas-region1".into(),
        rack: false,
        interfaces: vec![
            nic("eth0", "10.10.0.2/24", None),
            nic("eth1", "10.12.0.2/24", Some("10.12.0.1")),
        ],
    }];
    for (i, r) in ["a", "b"].iter().enumerate() {
        let host = 5 + i;
        out.push(SeedController {
            hostname: format!("fra1-maas-rack-{r}"),
            rack: true,
            interfaces: vec![
                nic("eth0", &format!("10.10.0.{host}/24"), None),
                nic("eth1", &format!("10.11.0.{host}/24"), None),
                nic("eth2", &format!("10.12.0.{host}/24"), Some("10.12.0.1")),
            ],
        });
    }
    out
}

async fn start_with(
    machines: Vec<SeedMachine>,
    controllers: Vec<SeedController>,
    faults: FaultSpec,
) -> Env {
    start_dc(
        DcSeed {
            name: DC.into(),
            machines,
            proxmox_nodes: vec!["pve1".into()],
            controllers,
            ..DcSeed::default()
        },
        faults,
    )
    .await
}

async fn start_dc(dc: DcSeed, faults: FaultSpec) -> Env {
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![dc],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults,
        latency_ms: 0,
        state_file: None,
        seed: 11,
        timing: Default::default(),
    })
    .await
    .expect("twin");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("endpoints.json");
    twin.write_endpoints(&path).expect("endpoints");
    let text = std::fs::read_to_string(&path).expect("read endpoints");
    let targets = Targets::parse(&text, dir.path(), &StaticSecrets::new()).expect("targets");
    let target = targets.dcs[0].maas.clone().expect("maas target");
    Env {
        admin: format!("http://{}/_twin", twin.addr),
        twin,
        target,
        _dir: dir,
    }
}

fn fast() -> MaasOptions {
    MaasOptions {
        endpoint: EndpointConfig {
            timeout: Duration::from_secs(120),
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            ..EndpointConfig::default()
        },
        poll_interval: Duration::from_millis(50),
        max_poll_interval: Duration::from_millis(200),
        commission_timeout: Duration::from_secs(60),
        deploy_timeout: Duration::from_secs(60),
        release_timeout: Duration::from_secs(60),
    }
}

/// The resolver the CLI uses: the environment and files (the tests write absolute
/// paths).
fn system_secrets() -> Arc<dyn SecretResolver> {
    Arc::new(SystemSecrets::new("."))
}

fn provider(env: &Env) -> MaasProvider {
    MaasProvider::with_options(DC, &env.target, OWNER, system_secrets(), fast()).expect("provider")
}

/// A raw MAAS client for checks behind the provider's back.
struct Raw {
    http: reqwest::Client,
    api: String,
    key: Vec<String>,
}

impl Raw {
    fn new(env: &Env) -> Raw {
        Raw {
            http: reqwest::Client::new(),
            api: format!("{}api/2.0/", env.target.url),
            key: env
                .target
                .api_key
                .expose()
                .splitn(3, ':')
                .map(str::to_string)
                .collect(),
        }
    }

    /// GET, retried through the twin's injected faults.
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        for _ in 0..50 {
            let auth = format!(
                "OAuth oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", oauth_consumer_key=\"{}\", oauth_token=\"{}\", oauth_signature=\"&{}\", oauth_nonce=\"{}\", oauth_timestamp=\"1\"",
                self.key[0],
                self.key[1],
                self.key[2],
                uuid::Uuid::new_v4().simple()
            );
            let r = self
                .http
                .get(format!("{}{path}", self.api))
                .query(query)
                .header("Authorization", auth)
                .send()
                .await
                .expect("send");
            let status = r.status();
            if status.is_success() {
                return r.json().await.expect("json");
            }
            assert!(
                status.as_u16() == 429 || status.is_server_error(),
                "{path}: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path}: the twin kept failing");
    }

    async fn machines_with_mac(&self, mac: &str) -> usize {
        self.get("machines/", &[("mac_address", mac)])
            .await
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------
// Desired state, as strata-plan's desired() builds it.

const HOME: &str = "10.10.0.0/24";

/// A design VLAN as desired() builds it: `vid` is MAAS's (0 for the native VLAN, the
/// design VID on the home fabric for every other).
fn vlan(
    role: &str,
    vid: u16,
    cidr: &str,
    mtu: u32,
    dhcp: Option<(&str, Option<&str>)>,
) -> Resource {
    let mut r = Resource::with_fields(
        ResourceId::new(DC, Kind::Vlan, role),
        &VlanFields {
            vid,
            name: role.to_string(),
            mtu,
            dhcp_on: dhcp.is_some(),
            primary_rack: dhcp.map(|d| d.0.to_string()),
            secondary_rack: dhcp.and_then(|d| d.1).map(str::to_string),
        },
    )
    .with_spec(&VlanSpec {
        cidr: cidr.to_string(),
        home: "provisioning".to_string(),
        home_cidr: HOME.to_string(),
    });
    if vid != 0 {
        r.depends_on
            .push(ResourceId::new(DC, Kind::MaasSubnet, HOME));
    }
    r
}

fn subnet(role: &str, vid: u16, cidr: &str, gw: Option<&str>) -> Resource {
    let mut s = Resource::with_fields(
        ResourceId::new(DC, Kind::MaasSubnet, cidr),
        &MaasSubnetFields {
            cidr: cidr.to_string(),
            name: format!("{DC}-{role}"),
            vid,
            gateway_ip: gw.map(str::to_string),
            managed: true,
        },
    )
    .with_spec(&MaasSubnetSpec {
        dynamic_range: None,
        vlan: Some(role.to_string()),
    });
    s.depends_on.push(ResourceId::new(DC, Kind::Vlan, role));
    s
}

/// The MAAS status of an observed machine.
fn status(m: &Resource) -> String {
    m.fields_as::<MachineFields>()
        .expect("machine fields")
        .status
}

fn network() -> Vec<Resource> {
    vec![
        vlan(
            "provisioning",
            0,
            HOME,
            1500,
            Some(("fra1-maas-rack-a", Some("fra1-maas-rack-b"))),
        ),
        vlan(
            "bmc",
            11,
            "10.11.0.0/24",
            1500,
            Some(("fra1-maas-rack-b", None)),
        ),
        vlan("management", 12, "10.12.0.0/24", 1500, None),
        vlan("storage", 20, "10.20.0.0/24", 9000, None),
        subnet("provisioning", 0, HOME, None),
        subnet("bmc", 11, "10.11.0.0/24", None),
        subnet("management", 12, "10.12.0.0/24", Some("10.12.0.1")),
        subnet("storage", 20, "10.20.0.0/24", None),
    ]
}

fn machine(serial: &str, hostname: &str, pxe_mac: &str, role: &str, pass_ref: &str) -> Resource {
    let mut tags = vec![OWNER.to_string(), format!("role-{role}")];
    tags.sort();
    let mut r = Resource::with_fields(
        ResourceId::new(DC, Kind::Machine, serial),
        &MachineFields {
            hostname: hostname.to_string(),
            power_type: "ipmi".to_string(),
            power_address: Some(format!("10.11.0.{}", 10 + hostname.len())),
            power_user: Some("admin".to_string()),
            tags,
            status: "Deployed".to_string(),
            distro_series: "noble".to_string(),
            zone: "default".to_string(),
            network: None,
            storage: None,
        },
    )
    .with_spec(&MachineSpec {
        pxe_mac: Some(pxe_mac.to_string()),
        power_pass: Some(pass_ref.to_string()),
        user_data: Some(
            base64::engine::general_purpose::STANDARD.encode("#cloud-config\npackages: [chrony]\n"),
        ),
        role: Some(role.to_string()),
        ..MachineSpec::default()
    });
    r.sensitive.insert("power_pass".into());
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
    strata_plan::diff(desired, observed, &[(DC.to_string(), Platform::Maas)])
}

fn intent_key(step: &Step) -> String {
    format!("{}#{:?}", step.id, step.action).to_lowercase()
}

/// An in-memory intent log that can "crash" (never return) right after a create.
#[derive(Default)]
struct MemLog {
    map: parking_lot::Mutex<HashMap<String, Value>>,
    crash_after_create: AtomicBool,
}

#[async_trait]
impl IntentLog for MemLog {
    async fn record(&self, key: &str, intent: &Value) {
        self.map.lock().insert(key.to_string(), intent.clone());
        if self.crash_after_create.load(Ordering::SeqCst) && intent.get("system_id").is_some() {
            std::future::pending::<()>().await;
        }
    }
    async fn previous(&self, key: &str) -> Option<Value> {
        self.map.lock().get(key).cloned()
    }
}

async fn act(p: &MaasProvider, step: &Step, log: &dyn IntentLog) -> Result<Outcome, ProviderError> {
    let key = intent_key(step);
    let ctx = ActContext {
        key: &key,
        intents: log,
        owner_tag: OWNER,
    };
    p.act(step, &ctx).await
}

/// Network steps one by one, each after the steps it depends on (as the apply
/// engine orders them), then every machine step at once.
async fn apply(
    p: &MaasProvider,
    plan: &Plan,
    log: &dyn IntentLog,
) -> Vec<(String, Result<Outcome, ProviderError>)> {
    let mut out = Vec::new();
    let mut pending: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| s.id.kind != Kind::Machine)
        .collect();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|s| {
                !s.depends_on
                    .iter()
                    .any(|d| pending.iter().any(|x| &x.id == d))
            })
            .unwrap_or(0);
        let s = pending.remove(ready);
        out.push((s.id.to_string(), act(p, s, log).await));
    }
    let machines: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| s.id.kind == Kind::Machine)
        .map(|s| async move { (s.id.to_string(), act(p, s, log).await) })
        .collect();
    out.extend(futures::future::join_all(machines).await);
    out
}

fn assert_all_ok(results: &[(String, Result<Outcome, ProviderError>)]) {
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(id, r)| r.as_ref().err().map(|e| format!("{id}: {e}")))
        .collect();
    assert!(failed.is_empty(), "failed steps:\n{}", failed.join("\n"));
}

// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fresh_region_offers_enlisted_machines_for_adoption_at_constant_cost() {
    let env = start((0..2000).map(seed).collect(), FaultSpec::default()).await;
    let p = provider(&env);

    let before = p.calls();
    let o = p.observe().await.expect("observe");
    let cost = p.calls() - before;
    assert_eq!(
        cost, 8,
        "fabrics, subnets, rack controllers, machines, power parameters, domains, DNS resources, tags"
    );

    // Without expectations every enlisted machine (serial known) is adoptable.
    let machines: Vec<&Resource> = o
        .resources
        .iter()
        .filter(|r| r.id.kind == Kind::Machine)
        .collect();
    assert_eq!(machines.len(), 2000);
    assert!(machines.iter().all(|m| !m.owned && status(m) == "New"));
    assert!(
        o.resources.iter().all(|r| r.id.kind == Kind::Machine),
        "no owned fabric, VLAN or subnet"
    );
    let unowned = |kind: &str| -> Vec<String> {
        o.unowned
            .iter()
            .filter(|u| u.kind == kind)
            .map(|u| u.name.clone())
            .collect()
    };
    assert_eq!(
        unowned("rack-controller"),
        vec!["fra1-maas-rack-a", "fra1-maas-rack-b"]
    );
    assert_eq!(unowned("fabric"), vec!["fabric-0"]);

    // With the desired set: matched by serial, or by boot MAC when MAAS does not know
    // the serial strata does; all others are unowned.
    let desired = set([
        machine("SN00001", "fra1-c1", &mac(0, 1), "compute", "env:UNUSED"),
        machine("SN00002", "fra1-c2", &mac(0, 2), "compute", "env:UNUSED"),
        machine("CHASSIS-7", "fra1-c7", &mac(0, 7), "storage", "env:UNUSED"),
    ]);
    p.expect_machines(&desired);
    let before = p.calls();
    let o = p.observe().await.expect("observe");
    assert_eq!(
        p.calls() - before,
        cost,
        "the cost does not depend on expectations"
    );
    let adoptable: Vec<String> = o
        .resources
        .iter()
        .filter(|r| r.id.kind == Kind::Machine && !r.owned)
        .map(|r| r.id.name.clone())
        .collect();
    assert_eq!(adoptable, vec!["CHASSIS-7", "SN00001", "SN00002"]);
    assert_eq!(unowned("rack-controller").len(), 2);
    assert_eq!(
        o.unowned.iter().filter(|u| u.kind == "machine").count(),
        1997
    );
    let plan = plan(&desired, &o);
    assert_eq!(plan.counts().adopt, 3, "{:?}", plan.steps);
    assert_eq!(plan.counts().total(), 3);

    // The same cost for a small region.
    let small = start((0..3).map(seed).collect(), FaultSpec::default()).await;
    let q = provider(&small);
    q.observe().await.expect("observe");
    assert_eq!(q.calls(), cost);
}

/// The VLANs and subnets of a MAAS VLAN as MAAS itself shows them.
async fn maas_subnet(raw: &Raw, cidr: &str) -> Value {
    raw.get("subnets/", &[])
        .await
        .as_array()
        .expect("subnets")
        .iter()
        .find(|s| s["cidr"] == cidr)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_racks_network_is_adopted_and_the_design_attached_to_it() {
    let env = start_with(
        vec![seed(1)],
        registered_controllers(),
        FaultSpec::default(),
    )
    .await;
    let p = provider(&env);
    let raw = Raw::new(&env);
    let desired = set(network());
    p.expect_machines(&desired);
    let o = p.observe().await.expect("observe");
    let first = plan(&desired, &o);
    // What the controllers' registration made is adopted (matched by CIDR): the
    // native VLAN and every subnet. The other VLANs are made tagged on the native
    // VLAN's fabric (the controllers sit on bmc and management untagged, on fabrics
    // of their own); the storage subnet, which nothing registered, is created.
    let actions: Vec<(String, Action)> = first
        .steps
        .iter()
        .map(|s| (s.id.name.clone(), s.action))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("bmc".to_string(), Action::Create),
            ("management".to_string(), Action::Create),
            ("provisioning".to_string(), Action::Adopt),
            ("storage".to_string(), Action::Create),
            ("10.10.0.0/24".to_string(), Action::Adopt),
            ("10.11.0.0/24".to_string(), Action::Adopt),
            ("10.12.0.0/24".to_string(), Action::Adopt),
            ("10.20.0.0/24".to_string(), Action::Create),
        ],
        "{}",
        strata_plan::display::render(&first, 0)
    );
    assert!(first.conflicts.is_empty(), "{:?}", first.conflicts);
    let log = MemLog::default();
    assert_all_ok(&apply(&p, &first, &log).await);

    let o = p.observe().await.expect("re-observe");
    let again = plan(&desired, &o);
    assert!(
        again.is_empty(),
        "{}",
        strata_plan::display::render(&again, 0)
    );
    let get = |kind: Kind, name: &str| {
        o.resources
            .get(&ResourceId::new(DC, kind, name))
            .cloned()
            .expect("resource")
    };
    let prov = get(Kind::Vlan, "provisioning");
    assert!(prov.owned && prov.adopted);
    assert_eq!(prov.fields["dhcp_on"], true);
    assert_eq!(prov.fields["primary_rack"], "fra1-maas-rack-a");
    assert_eq!(prov.fields["secondary_rack"], "fra1-maas-rack-b");
    let storage = get(Kind::Vlan, "storage");
    assert!(storage.owned && !storage.adopted);
    let bmc = get(Kind::Vlan, "bmc");
    assert_eq!(bmc.fields["vid"], 11);
    assert_eq!(bmc.fields["primary_rack"], "fra1-maas-rack-b");
    assert_eq!(bmc.fields["dhcp_on"], true);

    // MAAS itself: no strata fabric; the design sits on the racks' fabrics; the
    // unrouted subnets have no gateway, the routed one keeps its gateway; the tagged
    // VLAN is on the provisioning VLAN's fabric.
    let fabrics = raw.get("fabrics/", &[]).await;
    assert!(
        fabrics
            .as_array()
            .expect("fabrics")
            .iter()
            .all(|f| f["name"] != "strata"),
        "{fabrics}"
    );
    let prov_subnet = maas_subnet(&raw, HOME).await;
    assert_eq!(prov_subnet["vlan"]["name"], "provisioning");
    assert_eq!(prov_subnet["gateway_ip"], Value::Null);
    assert_eq!(
        prov_subnet["description"],
        format!("{OWNER}: adopted by strata")
    );
    let mgmt = maas_subnet(&raw, "10.12.0.0/24").await;
    assert_eq!(mgmt["gateway_ip"], "10.12.0.1");
    // The controllers' NICs moved with their subnets onto the tagged VLANs of the
    // native VLAN's fabric, and the fabrics their registration made are gone.
    for (cidr, vid) in [("10.11.0.0/24", 11), ("10.12.0.0/24", 12)] {
        let s = maas_subnet(&raw, cidr).await;
        assert_eq!(
            (s["vlan"]["vid"].clone(), s["vlan"]["fabric_id"].clone()),
            (json!(vid), prov_subnet["vlan"]["fabric_id"].clone()),
            "{s}"
        );
    }
    assert_eq!(fabrics.as_array().map(Vec::len), Some(1), "{fabrics}");
    let racks = raw.get("rackcontrollers/", &[]).await;
    for rack in racks.as_array().expect("racks") {
        for i in rack["interface_set"].as_array().expect("interfaces") {
            let on_bmc = i["links"]
                .as_array()
                .is_some_and(|l| l.iter().any(|l| l["subnet"]["cidr"] == "10.11.0.0/24"));
            if on_bmc {
                assert_eq!(i["vlan"]["vid"], 11, "{i}");
            }
        }
    }
    let st = maas_subnet(&raw, "10.20.0.0/24").await;
    assert_eq!(
        (st["vlan"]["vid"].clone(), st["vlan"]["fabric_id"].clone()),
        (json!(20), prov_subnet["vlan"]["fabric_id"].clone())
    );
    assert_eq!(st["vlan"]["mtu"], 9000);
    let ranges = raw.get("ipranges/", &[]).await;
    assert!(
        ranges
            .as_array()
            .expect("ranges")
            .iter()
            .any(|r| r["type"] == "dynamic" && r["subnet"]["cidr"] == HOME),
        "{ranges}"
    );

    // Repeating every step (as after a crash) changes nothing and duplicates nothing.
    assert_all_ok(&apply(&p, &first, &log).await);
    let o = p.observe().await.expect("observe");
    assert!(plan(&desired, &o).is_empty());
    assert_eq!(
        raw.get("subnets/", &[]).await.as_array().map(Vec::len),
        Some(4)
    );

    // Dropped from the design: what strata created goes, what it adopted stays.
    let smaller = set(network()
        .into_iter()
        .filter(|r| r.id.name != "storage" && r.id.name != "10.20.0.0/24")
        .filter(|r| r.id.name != "10.11.0.0/24"));
    p.expect_machines(&smaller);
    let o = p.observe().await.expect("observe");
    let shrink = plan(&smaller, &o);
    let deletes: Vec<String> = shrink
        .steps
        .iter()
        .filter(|s| s.action == Action::Delete)
        .map(|s| s.id.name.clone())
        .collect();
    assert_eq!(
        deletes,
        vec!["10.20.0.0/24".to_string(), "storage".to_string()],
        "{}",
        strata_plan::display::render(&shrink, 0)
    );
    assert_all_ok(&apply(&p, &shrink, &log).await);
    assert_eq!(maas_subnet(&raw, "10.20.0.0/24").await, Value::Null);
    assert_ne!(maas_subnet(&raw, "10.11.0.0/24").await, Value::Null);
}

/// strata never sets a rack on a VLAN it has no interface on: the twin refuses it as
/// MAAS does, and a design that asks for it fails at its VLAN step with MAAS's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rack_without_an_interface_on_the_vid_is_refused() {
    let env = start_with(vec![], registered_controllers(), FaultSpec::default()).await;
    let p = provider(&env);
    let mut resources = network();
    resources.push(vlan(
        "corosync",
        30,
        "10.30.0.0/24",
        1500,
        Some(("fra1-maas-rack-a", None)),
    ));
    resources.push(subnet("corosync", 30, "10.30.0.0/24", None));
    let desired = set(resources);
    p.expect_machines(&desired);
    let o = p.observe().await.expect("observe");
    let log = MemLog::default();
    let results = apply(&p, &plan(&desired, &o), &log).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(id, r)| r.as_ref().err().map(|e| format!("{id}: {e}")))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("corosync") && failed[0].contains("Select a valid choice"),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enlisted_machine_is_adopted_and_deployed_and_its_bmc_password_never_shows() {
    const VAR: &str = "STRATA_MAAS_TEST_BMC_PASSWORD_ADOPT";
    let secret = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let env = start((0..3).map(seed).collect(), FaultSpec::default()).await;
    let secrets = StaticSecrets::new().with(SecretRef::Env(VAR.into()), secret.clone());
    let p = MaasProvider::with_options(DC, &env.target, OWNER, Arc::new(secrets), fast())
        .expect("provider");
    let raw = Raw::new(&env);
    let reference = format!("env:{VAR}");
    let desired = set([machine(
        "SN00001",
        "fra1-compute-1",
        &mac(0, 1),
        "compute",
        &reference,
    )]);
    let o = p.observe().await.expect("observe");
    let first = plan(&desired, &o);
    assert_eq!(first.counts().adopt, 1);
    let step = &first.steps[0];
    assert_eq!(step.observed.as_ref().map(status), Some("New".to_string()));

    let log = MemLog::default();
    let outcome = act(&p, step, &log).await.expect("adopt and deploy");
    for phase in ["adopted", "tagged", "commissioned", "allocated", "deployed"] {
        assert!(
            outcome.note.contains(phase),
            "{phase} missing from {:?}",
            outcome.note
        );
    }
    let sid = outcome.external_id.clone().expect("system id");

    let o = p.observe().await.expect("re-observe");
    let again = plan(&desired, &o);
    assert!(
        again.is_empty(),
        "{}",
        strata_plan::display::render(&again, 0)
    );
    let m = o.resources.get(&step.id).expect("machine");
    assert!(m.owned);
    assert_eq!(status(m), "Deployed");
    assert_eq!(m.external_id.as_deref(), Some(sid.as_str()));

    // MAAS got the password, the user data and the OS.
    let pp = raw
        .get(&format!("machines/{sid}/"), &[("op", "power_parameters")])
        .await;
    assert_eq!(pp["power_pass"], secret.as_str());
    let mj = raw.get(&format!("machines/{sid}/"), &[]).await;
    assert_eq!(mj["distro_series"], "noble");
    assert_eq!(mj["hostname"], "fra1-compute-1");

    // The password shows nowhere: not in outcomes, observations, plans or errors.
    let bad = set([machine(
        "SN00002",
        "bad_hostname!",
        &mac(0, 2),
        "compute",
        &reference,
    )]);
    let bad_plan = plan(&bad, &o);
    let err = act(&p, &bad_plan.steps[0], &log)
        .await
        .expect_err("invalid hostname");
    assert!(err.to_string().contains("hostname"), "{err}");
    let texts = [
        err.to_string(),
        format!("{err:?}"),
        format!("{outcome:?}"),
        format!("{p:?}"),
        format!("{o:?}"),
        serde_json::to_string(&o.unowned).expect("json"),
        format!("{first:?}"),
        strata_plan::display::render(&first, 0),
        format!("{:?}", log.map.lock()),
    ];
    for t in texts {
        assert!(!t.contains(&secret), "the BMC password leaked: {t}");
    }
    let missing = set([machine(
        "SN00002",
        "fra1-compute-2",
        &mac(0, 2),
        "compute",
        "env:STRATA_MAAS_TEST_NOT_SET",
    )]);
    let err = act(&p, &plan(&missing, &o).steps[0], &log)
        .await
        .expect_err("unset");
    assert!(matches!(err, ProviderError::Secret(_)), "{err}");
    assert!(
        err.to_string().contains("STRATA_MAAS_TEST_NOT_SET"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_commissioning_fails_the_step_with_maas_message() {
    let env = start((0..3).map(seed).collect(), FaultSpec::default()).await;
    let p = provider(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let pass = dir.path().join("bmc");
    std::fs::write(&pass, "s3cret\n").expect("write");
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/faults/object", env.admin))
        .json(&json!({"dc": DC, "service": "maas", "id": "SN00002", "fault": "commission_fails"}))
        .send()
        .await
        .expect("fault");
    assert!(r.status().is_success());
    let desired = set([machine(
        "SN00002",
        "fra1-storage-2",
        &mac(0, 2),
        "storage",
        &format!("file:{}", pass.display()),
    )]);
    let o = p.observe().await.expect("observe");
    let steps = plan(&desired, &o).steps;
    let err = act(&p, &steps[0], &MemLog::default())
        .await
        .expect_err("commissioning fails");
    let msg = err.to_string();
    assert!(msg.contains("commissioning of fra1-storage-2"), "{msg}");
    assert!(msg.contains("Failed commissioning"), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
    // Nothing pretends otherwise: the machine is tagged (ours now) and failed.
    let o = p.observe().await.expect("observe");
    let m = o.resources.get(&steps[0].id).expect("machine");
    assert!(m.owned);
    assert_eq!(status(m), "Failed commissioning");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_interrupted_after_the_post_is_found_by_its_intent_not_made_twice() {
    let env = start((0..2).map(seed).collect(), FaultSpec::default()).await;
    let raw = Raw::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let pass = dir.path().join("bmc");
    std::fs::write(&pass, "pw").expect("write");
    let new_mac = mac(1, 42);
    let desired = set([machine(
        "NEW-42",
        "fra1-new-42",
        &new_mac,
        "compute",
        &format!("file:{}", pass.display()),
    )]);
    let p = provider(&env);
    let o = p.observe().await.expect("observe");
    let first = plan(&desired, &o);
    assert_eq!(first.counts().create, 1);
    let step = &first.steps[0];

    let log = MemLog::default();
    log.crash_after_create.store(true, Ordering::SeqCst);
    let crashed = tokio::time::timeout(Duration::from_secs(5), act(&p, step, &log)).await;
    assert!(
        crashed.is_err(),
        "the run was meant to die after the create"
    );
    drop(p);
    assert_eq!(raw.machines_with_mac(&new_mac).await, 1);
    let intent = log.previous(&intent_key(step)).await.expect("intent");
    assert_eq!(intent["mac"], new_mac.as_str());

    // A new process: a fresh plan sees the half-made machine (untagged, but marked
    // with the serial it was created for) and would adopt it, never create it again.
    log.crash_after_create.store(false, Ordering::SeqCst);
    let p = provider(&env);
    let o = p.observe().await.expect("observe");
    let replan = plan(&desired, &o);
    assert_eq!(replan.steps.len(), 1);
    assert_eq!(replan.steps[0].action, Action::Adopt);
    // Resuming the interrupted step itself (same journal) finds it by its intent.
    let outcome = act(&p, step, &log).await.expect("resume");
    assert!(
        outcome.note.contains("interrupted create"),
        "{}",
        outcome.note
    );
    assert_eq!(raw.machines_with_mac(&new_mac).await, 1);
    let o = p.observe().await.expect("observe");
    assert!(plan(&desired, &o).is_empty());
    assert_eq!(
        o.resources.get(&step.id).map(status),
        Some("Deployed".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn a_batch_converges_without_duplicates_under_faults() {
    let faults: FaultSpec = "5xx=0.1,429=0.05".parse().expect("faults");
    let env = start_with((0..6).map(seed).collect(), registered_controllers(), faults).await;
    let raw = Raw::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let pass = dir.path().join("bmc");
    std::fs::write(&pass, "pw").expect("write");
    let pass = format!("file:{}", pass.display());
    let mut resources = network();
    for i in 0..4 {
        resources.push(machine(
            &format!("SN{i:05}"),
            &format!("fra1-c{i}"),
            &mac(0, i),
            "compute",
            &pass,
        ));
    }
    for i in 0..3 {
        resources.push(machine(
            &format!("NEW-{i}"),
            &format!("fra1-n{i}"),
            &mac(2, i),
            "storage",
            &pass,
        ));
    }
    // Known to strata by a chassis serial MAAS does not see: matched by boot MAC.
    resources.push(machine(
        "CHASSIS-4",
        "fra1-c4",
        &mac(0, 4),
        "compute",
        &pass,
    ));
    let mut az = machine("NEW-9", "fra1-n9", &mac(2, 9), "storage", &pass);
    az.fields.insert("zone".into(), json!("az-2"));
    resources.push(az);
    let desired = set(resources);
    let p = provider(&env);
    p.expect_machines(&desired);
    let o = p.observe().await.expect("observe");
    let first = plan(&desired, &o);
    let c = first.counts();
    // Created: the three tagged VLANs, the storage subnet, four new machines.
    // Adopted: the provisioning VLAN and the three subnets the controllers
    // registered, five enlisted machines.
    assert_eq!(
        (c.create, c.adopt),
        (3 + 1 + 4, 1 + 3 + 5),
        "{:?}",
        first.steps
    );
    let log = MemLog::default();
    let results = apply(&p, &first, &log).await;
    assert_all_ok(&results);

    let o = p.observe().await.expect("re-observe");
    let again = plan(&desired, &o);
    assert!(
        again.is_empty(),
        "{}",
        strata_plan::display::render(&again, 0)
    );
    let all = raw.get("machines/", &[]).await;
    let all = all.as_array().expect("machines");
    assert_eq!(all.len(), 6 + 4, "no machine enlisted twice");
    for i in 0..3 {
        assert_eq!(raw.machines_with_mac(&mac(2, i)).await, 1);
    }
    // The controllers' registration made a fabric per NIC; moving their NICs onto
    // the tagged VLANs of the provisioning fabric left only that one.
    assert_eq!(
        raw.get("fabrics/", &[]).await.as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        raw.get("subnets/", &[]).await.as_array().map(Vec::len),
        Some(4)
    );
    let owned = all
        .iter()
        .filter(|m| {
            m["tag_names"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == OWNER))
        })
        .count();
    assert_eq!(owned, 9);
    let injected: u64 = env
        .twin
        .state
        .shared
        .counters
        .snapshot()
        .iter()
        .filter(|c| {
            c.labels.service == "maas" && (c.labels.status == "5xx" || c.labels.status == "4xx")
        })
        .map(|c| c.count)
        .sum();
    assert!(injected > 0, "the faults were meant to fire");
}

/// The twin's count of power actions driven through a machine's BMC, by serial.
fn power_actions(env: &Env, serial: &str) -> u64 {
    let s = env.twin.state.service(DC, "maas").expect("maas").summary();
    s["power_actions"][serial].as_u64().unwrap_or(0)
}

/// A host that already runs (a Proxmox node under MAAS and the control plane) is
/// registered with `deployed=true` and never power-cycled; one that MAAS knows only
/// as New is refused, not commissioned. A deployed machine's BMC address is reserved
/// for the BMC's MAC before MAAS is pointed at it (the twin's BMCs answer only
/// there), and deploy asks for the role's image (a custom Debian 13 image).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn running_hosts_are_registered_deployed_and_bmc_addresses_are_reserved() {
    let bmc = |i: usize| mac(0x55, i);
    let running = SeedMachine {
        running: true,
        bmc_mac: Some(bmc(10)),
        ..seed(10)
    };
    let enlisted = SeedMachine {
        bmc_mac: Some(bmc(11)),
        ..seed(11)
    };
    let enlisted_but_running = SeedMachine {
        bmc_mac: Some(bmc(12)),
        ..seed(12)
    };
    let env = start_dc(
        DcSeed {
            name: DC.into(),
            machines: vec![running, enlisted, enlisted_but_running],
            proxmox_nodes: vec!["pve1".into()],
            boot_images: vec!["custom/debian-13-pve".into()],
            controllers: registered_controllers(),
            ..DcSeed::default()
        },
        FaultSpec::default(),
    )
    .await;
    let p = provider(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let pass = dir.path().join("bmc");
    std::fs::write(&pass, "s3cret\n").expect("write");
    let pass_ref = format!("file:{}", pass.display());

    let with = |r: Resource, f: &dyn Fn(&mut MachineFields, &mut MachineSpec)| -> Resource {
        let mut fields: MachineFields = r.fields_as().expect("fields");
        let mut spec: MachineSpec = r.spec_as().expect("spec");
        f(&mut fields, &mut spec);
        let mut out = Resource::with_fields(r.id.clone(), &fields).with_spec(&spec);
        out.sensitive = r.sensitive.clone();
        out.depends_on
            .push(ResourceId::new(DC, Kind::MaasSubnet, "10.11.0.0/24"));
        out
    };
    let hypervisor = with(
        machine("SN00010", "fra1-pve-1", &mac(0, 10), "proxmox", &pass_ref),
        &|f, s| {
            f.distro_series = String::new();
            s.deployed = true;
            s.user_data = None;
            s.bmc_mac = Some(bmc(10));
        },
    );
    let compute = with(
        machine(
            "SN00011",
            "fra1-compute-11",
            &mac(0, 11),
            "compute",
            &pass_ref,
        ),
        &|f, s| {
            f.distro_series = "debian-13-pve".into();
            s.image = Some("custom/debian-13-pve".into());
            s.bmc_mac = Some(bmc(11));
        },
    );
    let mut desired = set(network());
    desired.insert(hypervisor.clone());
    desired.insert(compute.clone());
    let o = p.observe().await.expect("observe");
    let first = plan(&desired, &o);
    let log = MemLog::default();
    let results = apply(&p, &first, &log).await;
    assert_all_ok(&results);

    // The hypervisor: registered as Deployed, never powered; no OS recorded.
    let raw = Raw::new(&env);
    let found = raw.get("machines/", &[("mac_address", &mac(0, 10))]).await;
    assert_eq!(found[0]["status_name"], "Deployed", "{found}");
    assert_eq!(found[0]["distro_series"], "");
    assert_eq!(power_actions(&env, "SN00010"), 0);
    // The compute node: its BMC address reserved for its MAC, then commissioned and
    // deployed with the role's image through that BMC.
    let reserved = raw.get("reservedips/", &[]).await;
    let reserved: Vec<(String, String)> = reserved
        .as_array()
        .expect("list")
        .iter()
        .map(|r| {
            (
                r["ip"].as_str().unwrap_or_default().to_string(),
                r["mac_address"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        reserved.contains(&("10.11.0.25".to_string(), bmc(11))),
        "{reserved:?}"
    );
    assert!(
        reserved.contains(&("10.11.0.20".to_string(), bmc(10))),
        "{reserved:?}"
    );
    let found = raw.get("machines/", &[("mac_address", &mac(0, 11))]).await;
    assert_eq!(found[0]["status_name"], "Deployed");
    assert_eq!(found[0]["osystem"], "custom");
    assert_eq!(found[0]["distro_series"], "debian-13-pve");
    assert!(power_actions(&env, "SN00011") >= 2, "commission and deploy");

    // Converged: nothing left to do, and a second apply drives no BMC.
    let o = p.observe().await.expect("re-observe");
    let again = plan(&desired, &o);
    assert!(
        again.is_empty(),
        "{}",
        strata_plan::display::render(&again, 0)
    );

    // A host that runs but that MAAS holds as New (it PXE-enlisted once): strata
    // refuses rather than commission (power-cycle) it.
    let running_but_new = with(
        machine("SN00012", "fra1-pve-02", &mac(0, 12), "proxmox", &pass_ref),
        &|f, s| {
            f.distro_series = String::new();
            s.deployed = true;
            s.user_data = None;
            s.bmc_mac = Some(bmc(12));
        },
    );
    let mut desired = set(network());
    desired.insert(running_but_new);
    let step_plan = plan(&desired, &o);
    let step = step_plan
        .steps
        .iter()
        .find(|s| s.id.kind == Kind::Machine)
        .expect("machine step");
    assert_eq!(step.action, Action::Adopt);
    let err = act(&p, step, &log).await.expect_err("refused");
    assert!(matches!(err, ProviderError::Refused(_)), "{err}");
    assert!(err.to_string().contains("never commissions"), "{err}");
    assert_eq!(power_actions(&env, "SN00012"), 0);
}

fn dns(domain: &str, fqdn: &str, ip: &str) -> Vec<Resource> {
    let d = Resource::with_fields(
        ResourceId::new(DC, Kind::DnsDomain, domain),
        &DnsDomainFields {
            authoritative: true,
        },
    );
    let mut r = Resource::with_fields(
        ResourceId::new(DC, Kind::DnsRecord, fqdn),
        &DnsRecordFields {
            fqdn: fqdn.to_string(),
            ip_addresses: vec![ip.to_string()],
        },
    );
    r.depends_on.push(d.id.clone());
    vec![d, r]
}

/// The DC's domain and Kolla's API name land in MAAS DNS; a record that already
/// exists with another address is corrected, not duplicated; nothing is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dcs_domain_and_kollas_api_name_are_published_in_maas_dns() {
    let env = start(vec![], FaultSpec::default()).await;
    let p = provider(&env);
    let raw = Raw::new(&env);
    let desired = set(dns(
        "fra1.example.net",
        "openstack-api.fra1.example.net",
        "10.12.0.10",
    ));
    p.expect_machines(&desired);
    let o = p.observe().await.expect("observe");
    let first = plan(&desired, &o);
    assert_eq!(first.counts().create, 2, "{:?}", first.steps);
    let log = MemLog::default();
    assert_all_ok(&apply(&p, &first, &log).await);
    let o = p.observe().await.expect("observe");
    assert!(plan(&desired, &o).is_empty());
    let records = raw.get("dnsresources/", &[]).await;
    assert_eq!(records[0]["fqdn"], "openstack-api.fra1.example.net");
    assert_eq!(records[0]["ip_addresses"][0]["ip"], "10.12.0.10");

    // The VIP moves: one update, same record.
    let moved = set(dns(
        "fra1.example.net",
        "openstack-api.fra1.example.net",
        "10.12.0.11",
    ));
    p.expect_machines(&moved);
    let o = p.observe().await.expect("observe");
    let step = plan(&moved, &o);
    assert_eq!(
        step.steps
            .iter()
            .map(|s| (s.id.kind, s.action))
            .collect::<Vec<_>>(),
        vec![(Kind::DnsRecord, Action::Update)]
    );
    assert_all_ok(&apply(&p, &step, &log).await);
    let records = raw.get("dnsresources/", &[]).await;
    assert_eq!(records.as_array().map(Vec::len), Some(1));
    assert_eq!(records[0]["ip_addresses"][0]["ip"], "10.12.0.11");

    // Dropped from the design: left in place (MAAS DNS names carry no owner mark).
    p.expect_machines(&set([]));
    let o = p.observe().await.expect("observe");
    assert!(plan(&set([]), &o).is_empty());
    assert_eq!(
        raw.get("dnsresources/", &[]).await.as_array().map(Vec::len),
        Some(1)
    );
}

fn kernel_tag(owner: &str, opts: &str) -> Resource {
    Resource::with_fields(
        ResourceId::new(DC, Kind::MaasTag, "kernel-gpu-h100"),
        &MaasTagFields {
            comment: strata_plan::desired::kernel_tag_comment("gpu-h100", owner),
            kernel_opts: opts.to_string(),
        },
    )
}

/// A GPU host's kernel options (IOMMU, 1 GiB pages) reach MAAS as a tag's
/// `kernel_opts` that the machine carries, so MAAS boots its deployed OS with them
/// (MAAS takes the first tag, by name, with kernel options). A change of the options
/// is an update of the tag; a `kernel-*` tag another fleet made is a conflict in the
/// plan and is never changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gpu_hosts_kernel_options_reach_maas_as_a_tag_it_boots_with() {
    const VAR: &str = "STRATA_MAAS_TEST_BMC_PASSWORD_KERNEL";
    let env = start((0..2).map(seed).collect(), FaultSpec::default()).await;
    let secrets = StaticSecrets::new().with(SecretRef::Env(VAR.into()), "pw".to_string());
    let p = MaasProvider::with_options(DC, &env.target, OWNER, Arc::new(secrets), fast())
        .expect("provider");
    let opts = "intel_iommu=on iommu=pt default_hugepagesz=1G hugepagesz=1G hugepages=1920";
    let gpu_host = || {
        let mut m = machine(
            "SN00001",
            "fra1-gpu-1",
            &mac(0, 1),
            "compute",
            &format!("env:{VAR}"),
        );
        let mut f: MachineFields = m.fields_as().expect("fields");
        f.tags.push("kernel-gpu-h100".into());
        f.tags.sort();
        let spec: MachineSpec = m.spec_as().expect("spec");
        let sensitive = m.sensitive.clone();
        m = Resource::with_fields(m.id.clone(), &f).with_spec(&spec);
        m.sensitive = sensitive;
        m.depends_on.push(kernel_tag(OWNER, opts).id);
        m
    };
    let desired = set([kernel_tag(OWNER, opts), gpu_host()]);
    p.expect_machines(&desired);
    let log = MemLog::default();
    // The machine step never makes the tag itself (it would lack options and mark).
    let early = plan(&desired, &p.observe().await.expect("observe"));
    let machine_step = early
        .steps
        .iter()
        .find(|s| s.id.kind == Kind::Machine)
        .expect("machine step");
    let err = act(&p, machine_step, &log).await.expect_err("tag missing");
    assert!(err.to_string().contains("must succeed first"), "{err}");
    assert_eq!(
        Raw::new(&env)
            .get("tags/", &[])
            .await
            .as_array()
            .map(|t| t.iter().filter(|t| t["name"] == "kernel-gpu-h100").count()),
        Some(0)
    );
    let first = plan(&desired, &p.observe().await.expect("observe"));
    assert_eq!(first.counts().create, 1, "{first:#?}");
    assert_all_ok(&apply(&p, &first, &log).await);
    let summary = env.twin.state.service(DC, "maas").expect("maas").summary();
    assert_eq!(summary["kernel_opts"]["SN00001"], opts, "{summary}");
    assert_eq!(summary["kernel_opts"]["SN00002"], Value::Null, "{summary}");
    assert!(plan(&desired, &p.observe().await.expect("observe")).is_empty());

    // New options (another page count): the tag is updated in place.
    let more = opts.replace("hugepages=1920", "hugepages=1984");
    let changed = set([kernel_tag(OWNER, &more), gpu_host()]);
    let update = plan(&changed, &p.observe().await.expect("observe"));
    let kinds: Vec<(Kind, Action)> = update.steps.iter().map(|s| (s.id.kind, s.action)).collect();
    assert_eq!(kinds, vec![(Kind::MaasTag, Action::Update)], "{update:#?}");
    assert_all_ok(&apply(&p, &update, &log).await);
    let tag = Raw::new(&env).get("tags/kernel-gpu-h100/", &[]).await;
    assert_eq!(tag["kernel_opts"], more.as_str(), "{tag}");
    assert!(plan(&changed, &p.observe().await.expect("observe")).is_empty());

    // Another fleet's tag of the same name: a conflict, and a forced step is refused.
    let env2 = start(vec![], FaultSpec::default()).await;
    let theirs = MaasProvider::with_options(
        DC,
        &env2.target,
        "strata-otherfleet",
        system_secrets(),
        fast(),
    )
    .expect("provider");
    let made = strata_plan::diff(
        &set([kernel_tag("strata-otherfleet", opts)]),
        &theirs.observe().await.expect("observe"),
        &[(DC.to_string(), Platform::Maas)],
    );
    let key = intent_key(&made.steps[0]);
    theirs
        .act(
            &made.steps[0],
            &ActContext {
                key: &key,
                intents: &log,
                owner_tag: "strata-otherfleet",
            },
        )
        .await
        .expect("their tag");
    let ours = provider(&env2);
    let o = ours.observe().await.expect("observe");
    assert!(o.resources.is_empty(), "{:?}", o.resources);
    let blocked = plan(&set([kernel_tag(OWNER, opts)]), &o);
    assert!(blocked.steps.is_empty(), "{blocked:#?}");
    assert_eq!(blocked.conflicts.len(), 1, "{blocked:#?}");
    let forced = strata_plan::diff(
        &set([kernel_tag(OWNER, opts)]),
        &Observed::default(),
        &[(DC.to_string(), Platform::Maas)],
    );
    let err = act(&ours, &forced.steps[0], &log)
        .await
        .expect_err("not ours");
    assert!(matches!(err, ProviderError::Refused(_)), "{err}");
    assert!(err.to_string().contains("another owner"), "{err}");
}

/// A Proxmox node MAAS deploys: its bond is the port of bridge `vmbr0`, which
/// carries the native address, with the VLAN devices on the bridge; its disks are a
/// RAID-1 root. Apply builds both in MAAS before deploy (the disks while the machine
/// is Ready), and observe then reads back exactly the design.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bridged_node_with_a_raid_root_is_configured_before_deploy() {
    let disk = |name: &str| SeedDisk {
        name: name.into(),
        size_gb: 480,
        kind: "ssd".into(),
    };
    let node = SeedMachine {
        nics: vec!["eno1".into(), "eno2".into()],
        disks: vec![disk("sda"), disk("sdb"), disk("sdc")],
        ..seed(1)
    };
    let env = start_with(vec![node], registered_controllers(), FaultSpec::default()).await;
    let p = provider(&env);
    let raw = Raw::new(&env);
    let dir = tempfile::tempdir().expect("tmp");
    let pass = dir.path().join("bmc");
    std::fs::write(&pass, "pw").expect("write");
    let mut m = machine(
        "SN00001",
        "fra1-pve9",
        &mac(0, 1),
        "proxmox",
        &format!("file:{}", pass.display()),
    );
    let net = MachineNetwork {
        bond: Some(MachineBond {
            name: "bond0".into(),
            members: vec!["eno1".into(), "eno2".into()],
            mode: "802.3ad".into(),
            lacp_rate: Some("fast".into()),
            xmit_hash_policy: Some("layer3+4".into()),
        }),
        bridge: Some(MachineBridge {
            name: "vmbr0".into(),
            parent: "bond0".into(),
        }),
        uplink: "vmbr0".into(),
        mtu: 1500,
        links: vec![
            MachineLink {
                device: "vmbr0".into(),
                vid: 10,
                native: true,
                address: "10.10.0.50/24".into(),
                mtu: 1500,
                gateway: None,
            },
            MachineLink {
                device: "vmbr0.12".into(),
                vid: 12,
                native: false,
                address: "10.12.0.50/24".into(),
                mtu: 1500,
                gateway: Some("10.12.0.1".into()),
            },
        ],
    };
    let storage = MachineStorage {
        raids: vec![MachineRaid {
            name: "md0".into(),
            level: "raid-1".into(),
            members: vec!["sda".into(), "sdb".into()],
            fstype: Some("ext4".into()),
            mount: Some("/".into()),
        }],
    };
    m.fields.insert("network".into(), json!(net.summary()));
    m.fields.insert("storage".into(), json!(storage.summary()));
    m.spec.insert(
        "network".into(),
        serde_json::to_value(&net).expect("network"),
    );
    m.spec.insert(
        "storage".into(),
        serde_json::to_value(&storage).expect("storage"),
    );
    for cidr in [HOME, "10.12.0.0/24"] {
        m.depends_on
            .push(ResourceId::new(DC, Kind::MaasSubnet, cidr));
    }
    let mut resources = network();
    resources.push(m);
    let desired = set(resources);
    p.expect_machines(&desired);
    let o = p.observe().await.expect("observe");
    let first = plan(&desired, &o);
    let log = MemLog::default();
    assert_all_ok(&apply(&p, &first, &log).await);

    let o = p.observe().await.expect("re-observe");
    let again = plan(&desired, &o);
    assert!(
        again.is_empty(),
        "{}",
        strata_plan::display::render(&again, 0)
    );
    let seen = o
        .resources
        .get(&ResourceId::new(DC, Kind::Machine, "SN00001"))
        .expect("machine");
    assert_eq!(status(seen), "Deployed");
    let sid = seen.external_id.clone().expect("system id");
    let ifaces = raw.get(&format!("nodes/{sid}/interfaces/"), &[]).await;
    let by = |name: &str| {
        ifaces
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by("vmbr0")["type"], "bridge", "{ifaces}");
    assert_eq!(by("vmbr0")["parents"], json!(["bond0"]), "{ifaces}");
    assert_eq!(by("vmbr0.12")["parents"], json!(["vmbr0"]), "{ifaces}");
    assert_eq!(by("vmbr0.12")["links"][0]["ip_address"], "10.12.0.50");
    assert_eq!(
        by("bond0")["links"],
        json!([]),
        "the bond's address moved to the bridge"
    );
    let disks = raw.get(&format!("nodes/{sid}/blockdevices/"), &[]).await;
    let md0 = disks
        .as_array()
        .and_then(|a| a.iter().find(|d| d["name"] == "md0"))
        .cloned()
        .expect("md0");
    assert_eq!(md0["filesystem"]["mount_point"], "/");
    let sdc = disks
        .as_array()
        .and_then(|a| a.iter().find(|d| d["name"] == "sdc"))
        .cloned()
        .expect("sdc");
    assert_eq!(sdc["used_for"], "Unused", "a disk in no array stays unused");

    // Repeating every step (as after a crash) changes nothing.
    assert_all_ok(&apply(&p, &first, &log).await);
    let o = p.observe().await.expect("observe");
    assert!(plan(&desired, &o).is_empty());
}
