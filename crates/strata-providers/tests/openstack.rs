//! The OpenStack provider against the published API samples and the twin's region.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use strata_plan::{
    Action, FlavorAccessFields, FlavorFields, Kind, NetworkFields, NetworkRbacFields, Observed,
    Plan, Platform, ProjectFields, ProjectLimitFields, QuotaFields, RegisteredLimitFields,
    Resource, ResourceId, ResourceSet, RoleAssignmentFields, Step, SubnetFields, diff,
};
use strata_providers::openstack::{OpenstackProvider, QuotaModel, api, parse_time};
use strata_providers::targets::{Interface, OpenstackTarget, Targets};
use strata_providers::{ActContext, IntentLog, Provider, ProviderError};
use strata_twin::{DcSeed, FaultSpec, RunningTwin, TwinOptions};

const DC: &str = "fra1";
const OWNER: &str = "strata-acme";

// ---------------------------------------------------------------------------------------
// 1. Every relevant published sample parses with the client's response types.

fn samples_dir() -> PathBuf {
    strata_testkit::testdata("api-samples")
}

fn sample<T: DeserializeOwned>(dir: &Path, rel: &str) -> T {
    let path = dir.join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("sample {} is missing: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("sample {rel} does not parse: {e}"))
}

#[test]
fn api_samples_parse() {
    let dir = samples_dir();
    let d = dir.as_path();

    // Keystone: scoped tokens carry a project and a catalog with public endpoints.
    for f in [
        "keystone/auth-password-project-scoped-response.json",
        "keystone/auth-token-scoped-response.json",
        "keystone/auth-application-credential-response.json",
    ] {
        let t: api::TokenResponse = sample(d, f);
        assert!(t.token.project.is_some(), "{f}: project");
        assert!(!t.token.catalog.is_empty(), "{f}: catalog");
        let region = t.token.catalog[0].endpoints[0]
            .region_id
            .clone()
            .expect("region");
        let kinds: &[&str] = if f.contains("application-credential") {
            &["identity"]
        } else {
            &["identity", "compute"]
        };
        for kind in kinds {
            assert!(
                api::public_url(&t.token.catalog, kind, &region).is_some(),
                "{f}: public {kind} endpoint"
            );
        }
        assert!(parse_time(&t.token.expires_at).is_some(), "{f}: expires_at");
    }
    for f in [
        "keystone/auth-password-unscoped-response.json",
        "keystone/auth-password-explicit-unscoped-response.json",
        "keystone/auth-token-unscoped-response.json",
    ] {
        let t: api::TokenResponse = sample(d, f);
        assert!(
            t.token.project.is_none() && t.token.catalog.is_empty(),
            "{f}"
        );
    }
    // The raw HTTP sample (headers only): the token travels in X-Subject-Token.
    let raw = std::fs::read_to_string(
        d.join("keystone/auth-password-user-name-unscoped-response-HTTP.txt"),
    )
    .expect("HTTP sample");
    assert!(raw.starts_with("HTTP/1.1 201"), "{raw}");
    assert!(
        raw.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("x-subject-token: ")),
        "X-Subject-Token header"
    );
    let projects: api::ProjectList =
        sample(d, "keystone/get-available-project-scopes-response.json");
    assert_eq!(projects.projects.len(), 2);
    assert!(projects.links.expect("links").next.is_none());

    // Nova flavors: extra_specs embedded from 2.61 on (the microversion strata asks for),
    // swap as "" before 2.75 and as an integer after.
    for v in ["v2.61", "v2.75", "v2.102"] {
        let l: api::FlavorList = sample(d, &format!("nova/flavors/{v}/flavors-detail-resp.json"));
        assert!(!l.flavors.is_empty());
        assert!(
            l.flavors.iter().all(|f| f.extra_specs.is_some()),
            "{v}: extra_specs embedded"
        );
        let one: api::FlavorResponse = sample(d, &format!("nova/flavors/{v}/flavor-get-resp.json"));
        assert!(one.flavor.extra_specs.is_some(), "{v}: flavor get");
        let made: api::FlavorResponse = sample(
            d,
            &format!("nova/flavor-manage/{v}/flavor-create-post-resp.json"),
        );
        assert!(made.flavor.vcpus > 0);
    }
    for f in [
        "nova/flavors/flavors-detail-resp.json",
        "nova/flavors/v2.55/flavors-detail-resp.json",
    ] {
        let l: api::FlavorList = sample(d, f);
        assert!(l.flavors.iter().all(|f| f.extra_specs.is_none()), "{f}");
    }
    let _: api::FlavorResponse = sample(d, "nova/flavor-manage/flavor-create-post-resp.json");
    for f in [
        "nova/flavor-extra-specs/flavor-extra-specs-list-resp.json",
        "nova/flavor-extra-specs/flavor-extra-specs-create-resp.json",
    ] {
        let s: api::ExtraSpecs = sample(d, f);
        assert_eq!(s.extra_specs["hw:numa_nodes"], "1");
    }
    for v in ["", "v2.36/", "v2.57/"] {
        for f in [
            "quotas-show-get-resp.json",
            "quotas-show-defaults-get-resp.json",
            "quotas-update-post-resp.json",
            "quotas-update-force-post-resp.json",
            "user-quotas-show-get-resp.json",
            "user-quotas-update-post-resp.json",
        ] {
            let q: api::QuotaSetResponse = sample(d, &format!("nova/os-quota-sets/{v}{f}"));
            assert!(q.quota_set.cores != 0 && q.quota_set.ram != 0, "{v}{f}");
        }
    }

    // Neutron networks (with provider attributes) and subnets.
    for f in [
        "neutron/networks/networks-list-response.json",
        "neutron/networks/networks-provider-list-response.json",
        "neutron/networks/networks-bulk-create-response.json",
    ] {
        let l: api::NetworkList = sample(d, f);
        assert!(!l.networks.is_empty(), "{f}");
    }
    let l: api::NetworkList = sample(d, "neutron/networks/networks-provider-list-response.json");
    assert_eq!(
        l.networks[0].provider(),
        (Some("vlan".into()), Some("public".into()), Some(3))
    );
    for f in [
        "neutron/networks/network-create-response.json",
        "neutron/networks/network-show-response.json",
        "neutron/networks/network-update-response.json",
        "neutron/networks/network-provider-create-response.json",
        "neutron/networks/network-provider-show-response.json",
        "neutron/networks/network-multi-show-response.json",
        "neutron/networks/network-multi-create-response.json",
    ] {
        let _: api::NetworkResponse = sample(d, f);
    }
    for f in [
        "neutron/subnets/subnets-list-response.json",
        "neutron/subnets/subnets-create-bulk-response.json",
    ] {
        let l: api::SubnetList = sample(d, f);
        assert!(!l.subnets.is_empty(), "{f}");
    }
    for f in [
        "neutron/subnets/subnet-create-response.json",
        "neutron/subnets/subnet-show-response.json",
        "neutron/subnets/subnet-update-response.json",
    ] {
        let s: api::SubnetResponse = sample(d, f);
        assert!(s.subnet.ip_version == 4 || s.subnet.ip_version == 6, "{f}");
    }

    // Placement's root document.
    let root: api::PlacementRoot = sample(d, "placement/root/get-root.json");
    assert_eq!(root.versions[0].min_version, "1.0");
}

// ---------------------------------------------------------------------------------------
// Twin helpers

struct Region {
    twin: RunningTwin,
    _dir: tempfile::TempDir,
    target: OpenstackTarget,
    http: reqwest::Client,
}

/// The Kolla files `strata render` writes for the example fleet's `fra1` (the deploy
/// host's `/etc/kolla/`, keyed by the path below it), with the blueprint's Kolla release
/// set to `release`: what the twin's region is deployed with, as the real one would be.
/// From 2026.2 on, Nova runs unified limits (team quotas are Keystone limits); before,
/// the legacy quota driver (quota sets).
fn rendered_kolla_at(release: &str) -> BTreeMap<String, String> {
    let mut fleet = strata_testkit::example_fleet();
    for dc in &mut fleet.dcs {
        dc.openstack.kolla_release = release.to_string();
    }
    let mut files = strata_render::kolla::render(&fleet).expect("render kolla");
    files.extend(strata_render::nova_pci::render(&fleet).expect("render nova pci"));
    let prefix = format!("{DC}/kolla/");
    files
        .into_iter()
        .filter_map(|f| {
            f.path
                .strip_prefix(&prefix)
                .map(|p| (p.to_string(), f.content))
        })
        .collect()
}

/// A region on the legacy quota driver (Kolla 2025.1), where team quotas are Nova quota
/// sets: most tests here exercise the quota-set path.
async fn region(faults: FaultSpec) -> Region {
    region_with(faults, rendered_kolla_at("2025.1")).await
}

async fn region_with(faults: FaultSpec, kolla_config: BTreeMap<String, String>) -> Region {
    let twin = strata_twin::start(TwinOptions {
        dcs: vec![DcSeed {
            name: DC.into(),
            kolla_config,
            keystone_users: vec!["carol".into()],
            ..DcSeed::default()
        }],
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr"),
        faults,
        latency_ms: 0,
        state_file: None,
        seed: 11,
        timing: Default::default(),
    })
    .await
    .expect("start the twin");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("endpoints.json");
    twin.write_endpoints(&path).expect("write endpoints");
    let text = std::fs::read_to_string(&path).expect("endpoints");
    let targets = Targets::parse(
        &text,
        dir.path(),
        &strata_providers::secrets::StaticSecrets::new(),
    )
    .expect("targets");
    let target = targets.dcs[0].openstack.clone().expect("openstack target");
    Region {
        twin,
        _dir: dir,
        target,
        http: reqwest::Client::new(),
    }
}

impl Region {
    fn provider(&self) -> OpenstackProvider {
        OpenstackProvider::new(DC, &self.target, OWNER).expect("provider")
    }

    fn admin(&self) -> String {
        self.twin.state.admin_url.clone()
    }

    /// Calls the twin counted for this DC's OpenStack services.
    async fn counted(&self) -> (u64, HashMap<String, u64>) {
        let v: Value = self
            .http
            .get(format!("{}counters", self.admin()))
            .send()
            .await
            .expect("counters")
            .json()
            .await
            .expect("counters json");
        let mut total = 0;
        // "METHOD /route" and "status Nxx" → calls.
        let mut by_route = HashMap::new();
        for c in v["calls"].as_array().expect("calls") {
            if c["dc"] == DC && c["service"] == "openstack" {
                let n = c["count"].as_u64().expect("count");
                total += n;
                *by_route
                    .entry(format!(
                        "{} {}",
                        c["method"].as_str().unwrap_or(""),
                        c["route"].as_str().unwrap_or("")
                    ))
                    .or_insert(0) += n;
                *by_route
                    .entry(format!("status {}", c["status"].as_str().unwrap_or("")))
                    .or_insert(0) += n;
            }
        }
        (total, by_route)
    }

    async fn mutate(&self, body: Value) {
        let r = self
            .http
            .post(format!("{}dcs/{DC}/openstack/mutate", self.admin()))
            .json(&body)
            .send()
            .await
            .expect("mutate");
        assert!(r.status().is_success(), "mutate {body}: {}", r.status());
    }

    async fn set_faults(&self, spec: Value) {
        let r = self
            .http
            .put(format!("{}faults", self.admin()))
            .json(&spec)
            .send()
            .await
            .expect("faults");
        assert!(r.status().is_success());
    }

    /// The twin's whole OpenStack state (what `--state` would save).
    fn state(&self) -> Value {
        self.twin
            .state
            .service(DC, "openstack")
            .expect("openstack service")
            .save()
    }

    /// A token of our own (not the provider's) and the catalog's compute URL.
    async fn token(&self) -> (String, Value) {
        let t = &self.target;
        self.token_as(&t.username, t.password.expose(), &t.project)
            .await
            .expect("admin token")
    }

    /// A token of `user` scoped to `project` (domain Default), or the refusal's status.
    async fn token_as(
        &self,
        user: &str,
        password: &str,
        project: &str,
    ) -> Result<(String, Value), u16> {
        let t = &self.target;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": t.user_domain}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": t.project_domain}}}}});
        let r = self
            .http
            .post(format!("{}/auth/tokens", t.auth_url))
            .json(&body)
            .send()
            .await
            .expect("auth");
        if r.status().as_u16() != 201 {
            return Err(r.status().as_u16());
        }
        let token = r
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .expect("token")
            .to_string();
        Ok((token, r.json().await.expect("token body")))
    }

    /// GET `url` with `token`: status and body.
    async fn get_with(&self, token: &str, url: &str) -> (u16, Value) {
        let r = self
            .http
            .get(url)
            .header("x-auth-token", token)
            .header("openstack-api-version", "compute 2.61")
            .send()
            .await
            .expect("get");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

fn catalog(body: &Value, kind: &str) -> String {
    let cat: Vec<api::CatalogService> =
        serde_json::from_value(body["token"]["catalog"].clone()).expect("catalog");
    api::public_url(&cat, kind, DC).expect("endpoint")
}

/// An in-memory intent log; `forget` is what the journal does when a step is done.
#[derive(Default)]
struct MemIntents(Mutex<HashMap<String, Value>>);

impl MemIntents {
    fn forget(&self, key: &str) {
        self.0.lock().remove(key);
    }
    fn get(&self, key: &str) -> Option<Value> {
        self.0.lock().get(key).cloned()
    }
}

#[async_trait]
impl IntentLog for MemIntents {
    async fn record(&self, key: &str, intent: &Value) {
        self.0.lock().insert(key.to_string(), intent.clone());
    }
    async fn previous(&self, key: &str) -> Option<Value> {
        self.0.lock().get(key).cloned()
    }
}

fn key(step: &Step) -> String {
    format!("{}#{:?}", step.id, step.action).to_lowercase()
}

async fn act(
    p: &OpenstackProvider,
    step: &Step,
    intents: &MemIntents,
) -> Result<strata_providers::Outcome, ProviderError> {
    let k = key(step);
    let ctx = ActContext {
        key: &k,
        intents,
        owner_tag: OWNER,
    };
    p.act(step, &ctx).await
}

fn scopes() -> Vec<(String, Platform)> {
    vec![(DC.to_string(), Platform::Openstack)]
}

fn plan(desired: &ResourceSet, observed: &Observed) -> Plan {
    diff(desired, observed, &scopes())
}

/// The plan an apply makes when its journal holds intents for every desired object
/// (an earlier run was killed mid-create): namesakes are resumed, not conflicts.
fn plan_resuming(desired: &ResourceSet, observed: &Observed) -> Plan {
    let resuming = desired.resources.keys().cloned().collect();
    strata_plan::diff_resuming(desired, observed, &scopes(), &resuming)
}

/// Observe, plan and act until nothing is left to do (at most `rounds` rounds);
/// returns the number of rounds that had steps.
async fn converge(
    p: &OpenstackProvider,
    desired: &ResourceSet,
    intents: &MemIntents,
    rounds: usize,
) -> usize {
    let mut errors = Vec::new();
    for round in 0..rounds {
        let observed = match p.observe().await {
            Ok(o) => o,
            Err(e) => {
                errors.push(format!("observe: {e}"));
                continue;
            }
        };
        let plan = plan(desired, &observed);
        if plan.is_empty() {
            return round;
        }
        if round + 1 == rounds {
            errors.push(format!("still planned: {:#?}", plan.steps));
        }
        for step in &plan.steps {
            match act(p, step, intents).await {
                Ok(_) => intents.forget(&key(step)),
                Err(e) => errors.push(format!("{} {:?}: {e}", step.id, step.action)),
            }
        }
    }
    panic!("did not converge in {rounds} rounds: {errors:#?}");
}

fn project_described(name: &str, description: &str) -> Resource {
    Resource::with_fields(
        ResourceId::new(DC, Kind::Project, name),
        &ProjectFields {
            description: description.to_string(),
            tags: vec![OWNER.to_string()],
        },
    )
}

fn project(name: &str) -> Resource {
    project_described(name, &format!("team {name} ({OWNER})"))
}

fn quota(name: &str, instances: i64, cores: i64, ram: i64) -> Resource {
    let mut q = Resource::with_fields(
        ResourceId::new(DC, Kind::Quota, name),
        &QuotaFields {
            instances,
            cores,
            ram,
        },
    );
    q.depends_on.push(ResourceId::new(DC, Kind::Project, name));
    q
}

fn flavor(name: &str, vcpus: u64, ram: u64, disk: u64, specs: &[(&str, &str)]) -> Resource {
    let mut extra_specs: BTreeMap<String, String> = specs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    extra_specs.insert("strata:owner".into(), OWNER.to_string());
    Resource::with_fields(
        ResourceId::new(DC, Kind::Flavor, name),
        &FlavorFields {
            vcpus,
            ram,
            disk,
            is_public: true,
            extra_specs,
        },
    )
}

fn network(name: &str, vlan: i64) -> Resource {
    Resource::with_fields(
        ResourceId::new(DC, Kind::Network, name),
        &NetworkFields {
            provider_network_type: Some("vlan".to_string()),
            provider_physical_network: Some("physnet1".to_string()),
            provider_segmentation_id: Some(vlan),
            shared: false,
            tags: vec![OWNER.to_string()],
        },
    )
}

fn subnet(name: &str, cidr: &str, gateway: &str) -> Resource {
    let mut s = Resource::with_fields(
        ResourceId::new(DC, Kind::Subnet, name),
        &SubnetFields {
            network: name.to_string(),
            cidr: cidr.to_string(),
            gateway_ip: Some(gateway.to_string()),
            enable_dhcp: true,
            ip_version: 4,
        },
    );
    s.depends_on.push(ResourceId::new(DC, Kind::Network, name));
    s
}

fn fleet() -> ResourceSet {
    let mut d = ResourceSet::default();
    for r in [
        project("ml"),
        quota("ml", 20, 64, 262_144),
        project("web"),
        quota("web", 10, 20, 51_200),
        flavor("s1.small", 2, 4096, 20, &[("hw:cpu_policy", "dedicated")]),
        flavor(
            "g2.h100.1",
            16,
            131_072,
            200,
            &[
                ("pci_passthrough:alias", "gpu-h100:1"),
                ("hw:cpu_policy", "dedicated"),
            ],
        ),
        network("acme-app", 120),
        subnet("acme-app", "10.20.0.0/24", "10.20.0.1"),
        network("acme-db", 121),
        subnet("acme-db", "10.21.0.0/24", "10.21.0.1"),
    ] {
        d.insert(r);
    }
    d
}

fn names<'a>(state: &'a Value, coll: &str) -> Vec<&'a str> {
    state[coll]
        .as_array()
        .unwrap_or_else(|| panic!("{coll} in the twin state"))
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect()
}

fn count(state: &Value, coll: &str, name: &str) -> usize {
    names(state, coll).iter().filter(|n| **n == name).count()
}

// ---------------------------------------------------------------------------------------
// 2. A fresh region: nothing owned, a constant number of calls.

#[tokio::test]
async fn a_fresh_region_has_nothing_owned_and_observing_costs_constant_calls() {
    let r = region(FaultSpec::default()).await;
    let p = r.provider();
    assert_eq!(p.calls(), 0);
    let (before, _) = r.counted().await;
    assert_eq!(before, 0);

    let o = p.observe().await.expect("observe");
    assert!(o.resources.is_empty(), "{:#?}", o.resources);
    let unowned: Vec<(&str, &str)> = o
        .unowned
        .iter()
        .map(|u| (u.kind.as_str(), u.name.as_str()))
        .collect();
    for want in [
        ("project", "admin"),
        ("project", "service"),
        ("flavor", "m1.tiny"),
        ("flavor", "g1.h100.1"),
    ] {
        assert!(unowned.contains(&want), "{want:?} in {unowned:?}");
    }
    assert!(unowned.iter().any(|(k, _)| *k == "network"), "{unowned:?}");
    assert!(
        o.unowned
            .iter()
            .all(|u| u.platform == Platform::Openstack && u.dc == DC)
    );

    // One token, then one list call per collection: projects, flavors, networks,
    // subnets, role assignments, network RBAC policies.
    assert_eq!(p.calls(), 7);
    let (total, routes) = r.counted().await;
    assert_eq!(total, 7, "{routes:#?}");
    for route in [
        "POST /identity/v3/auth/tokens",
        "GET /identity/v3/projects",
        "GET /identity/v3/role_assignments",
        "GET /compute/v2.1/flavors/detail",
        "GET /network/v2.0/networks",
        "GET /network/v2.0/subnets",
        "GET /network/v2.0/rbac-policies",
    ] {
        assert_eq!(routes.get(route), Some(&1), "{route}: {routes:#?}");
    }
    // The token is cached: the next observe costs the six lists only.
    let again = p.observe().await.expect("observe again");
    assert_eq!(again, o);
    assert_eq!(p.calls(), 13);
    assert_eq!(r.counted().await.0, 13);

    // Small pages: every next link is followed, the result is the same.
    let paged = r.provider().with_page_size(2);
    let o2 = paged.observe().await.expect("paged observe");
    assert_eq!(o2, o);
    assert!(paged.calls() > 7, "pages were followed: {}", paged.calls());

    // What the session found in the catalog.
    let s = p.authenticate().await.expect("session");
    assert!(s.endpoints["compute"].ends_with("/fra1/openstack/compute/v2.1"));
    assert!(s.endpoints["network"].ends_with("/fra1/openstack/network/v2.0"));
    assert!(s.endpoints["identity"].ends_with("/fra1/openstack/identity/v3"));
    let root = p.placement_root().await.expect("placement root");
    assert!(root.versions[0].max_version.starts_with("1."));
}

/// A Kolla region registers `internal` endpoints on the internal VIP and `public` ones on
/// the external VIP. strata uses the target's `interface` (default `internal`, as Kolla's
/// admin-openrc.sh): with the public compute endpoint unreachable, the default target
/// still observes everything, and a target that asks for `public` gets the public URL.
#[tokio::test]
async fn the_targets_interface_picks_the_catalog_endpoints() {
    let r = region(FaultSpec::default()).await;
    let internal = r.provider().authenticate().await.expect("session");
    assert_eq!(internal.endpoints.len(), 4, "{:?}", internal.endpoints);
    let unreachable = "http://127.0.0.1:9/compute/v2.1";
    r.mutate(json!({"kind": "endpoint", "id": "compute/public", "set": {"url": unreachable}}))
        .await;

    let p = r.provider();
    assert_eq!(r.target.interface, Interface::Internal);
    let s = p.authenticate().await.expect("session");
    assert_eq!(s.endpoints["compute"], internal.endpoints["compute"]);
    p.observe()
        .await
        .expect("observe through the internal endpoints");

    let mut public = r.target.clone();
    public.interface = Interface::Public;
    let p = OpenstackProvider::new(DC, &public, OWNER).expect("provider");
    let s = p.authenticate().await.expect("session");
    assert_eq!(s.endpoints["compute"], unreachable);
    assert_eq!(s.endpoints["network"], internal.endpoints["network"]);

    // A catalog without the interface asked for is refused, naming it.
    let mut admin = r.target.clone();
    admin.interface = Interface::Admin;
    let p = OpenstackProvider::new(DC, &admin, OWNER).expect("provider");
    let e = p
        .observe()
        .await
        .expect_err("no admin endpoints in a Kolla catalog");
    assert!(e.to_string().contains("has no admin "), "{e}");
}

fn private_flavor(name: &str, specs: &[(&str, &str)]) -> Resource {
    let public = flavor(name, 16, 131_072, 200, specs);
    let mut fields: FlavorFields = public.fields_as().expect("flavor fields");
    fields.is_public = false;
    Resource::with_fields(public.id, &fields)
}

fn linked<F: strata_plan::KindFields>(name: &str, fields: &F, on: &[ResourceId]) -> Resource {
    let mut r = Resource::with_fields(ResourceId::new(DC, F::KIND, name), fields);
    r.depends_on = on.to_vec();
    r
}

/// A team project whose member uses a private GPU flavor and a tenant network.
fn tenancy_fleet(with_access: bool) -> ResourceSet {
    let mut d = ResourceSet::default();
    let ml = ResourceId::new(DC, Kind::Project, "ml");
    let gpu = ResourceId::new(DC, Kind::Flavor, "g2.h100.1");
    let net = ResourceId::new(DC, Kind::Network, "acme-app");
    for r in [
        project("ml"),
        quota("ml", 10, 20, 51_200),
        private_flavor("g2.h100.1", &[("pci_passthrough:alias", "gpu-h100:1")]),
        network("acme-app", 120),
        subnet("acme-app", "10.20.0.0/24", "10.20.0.1"),
    ] {
        d.insert(r);
    }
    if with_access {
        d.insert(linked(
            "ml:carol",
            &RoleAssignmentFields {
                project: "ml".into(),
                user: "carol".into(),
                role: "member".into(),
            },
            std::slice::from_ref(&ml),
        ));
        d.insert(linked(
            "g2.h100.1:ml",
            &FlavorAccessFields {
                flavor: "g2.h100.1".into(),
                project: "ml".into(),
            },
            &[gpu, ml.clone()],
        ));
        d.insert(linked(
            "acme-app:ml",
            &NetworkRbacFields {
                network: "acme-app".into(),
                project: "ml".into(),
                action: "access_as_shared".into(),
            },
            &[net, ml],
        ));
    }
    d
}

/// Without a role, a flavor access and an RBAC policy, a team member can neither log
/// in to the project nor see the private GPU flavor or the admin-owned tenant network
/// (Keystone, Nova and Neutron refuse as the real services do). strata grants all three,
/// converges to an empty plan, and takes them away again when the spec drops them.
#[tokio::test]
async fn team_members_get_their_role_private_flavors_and_shared_networks() {
    let r = region(FaultSpec::default()).await;
    let p = r.provider();
    let intents = MemIntents::default();
    converge(&p, &tenancy_fleet(false), &intents, 4).await;
    // carol exists (the identity backend's) but has no role on ml: no token for it.
    let (admin, _) = r.token().await;
    let (status, users) = r
        .get_with(&admin, &format!("{}/users?name=carol", r.target.auth_url))
        .await;
    assert_eq!(status, 200, "{users}");
    let carol = users["users"][0]["id"].as_str().expect("carol").to_string();
    let set_pw = r
        .http
        .patch(format!("{}/users/{carol}", r.target.auth_url))
        .header("x-auth-token", &admin)
        .json(&json!({"user": {"password": "carol-pw"}}))
        .send()
        .await
        .expect("patch user");
    assert!(set_pw.status().is_success());
    assert_eq!(r.token_as("carol", "carol-pw", "ml").await.err(), Some(401));

    // The plan grants exactly the three links; applying them converges.
    let o = p.observe().await.expect("observe");
    let desired = tenancy_fleet(true);
    let steps = plan(&desired, &o).steps;
    let kinds: Vec<Kind> = steps.iter().map(|s| s.id.kind).collect();
    assert_eq!(
        kinds,
        [Kind::RoleAssignment, Kind::FlavorAccess, Kind::NetworkRbac],
        "{steps:#?}"
    );
    assert!(steps.iter().all(|s| s.action == Action::Create));
    converge(&p, &desired, &intents, 3).await;
    let o = p.observe().await.expect("observe");
    assert!(plan(&desired, &o).is_empty());
    let rbac: NetworkRbacFields = o
        .resources
        .get(&ResourceId::new(DC, Kind::NetworkRbac, "acme-app:ml"))
        .expect("observed policy")
        .fields_as()
        .expect("rbac fields");
    assert_eq!(rbac.action, "access_as_shared");

    // carol, as a member of ml, sees the private flavor and the shared network.
    let (token, body) = r
        .token_as("carol", "carol-pw", "ml")
        .await
        .expect("carol's token");
    let (status, flavors) = r
        .get_with(&token, &format!("{}/flavors", catalog(&body, "compute")))
        .await;
    assert_eq!(status, 200, "{flavors}");
    assert!(flavors.to_string().contains("g2.h100.1"), "{flavors}");
    let (status, nets) = r
        .get_with(
            &token,
            &format!("{}/v2.0/networks?name=acme-app", catalog(&body, "network")),
        )
        .await;
    assert_eq!(status, 200, "{nets}");
    assert_eq!(nets["networks"][0]["name"], "acme-app", "{nets}");
    assert_eq!(nets["networks"][0]["shared"], true, "{nets}");

    // Granting twice is harmless: the steps are idempotent against a live object.
    for step in &plan(&desired, &Observed::default()).steps {
        if matches!(
            step.id.kind,
            Kind::RoleAssignment | Kind::FlavorAccess | Kind::NetworkRbac
        ) {
            act(&p, step, &intents).await.expect("again");
        }
    }
    assert!(plan(&desired, &p.observe().await.expect("observe")).is_empty());

    // Dropped from the spec: the links are deleted, and carol is locked out again.
    let without = tenancy_fleet(false);
    let o = p.observe().await.expect("observe");
    let steps = plan(&without, &o).steps;
    assert_eq!(steps.len(), 3, "{steps:#?}");
    assert!(steps.iter().all(|s| s.action == Action::Delete));
    converge(&p, &without, &intents, 3).await;
    assert_eq!(r.token_as("carol", "carol-pw", "ml").await.err(), Some(401));
    let state = r.state();
    assert_eq!(
        state["rbac_policies"],
        json!([]),
        "{}",
        state["rbac_policies"]
    );
}

// ---------------------------------------------------------------------------------------
// 2b. A region deployed without strata's ML2 override (Kolla's network_vlan_ranges is
// empty) refuses the tenant networks with Neutron's 400; with it, they are created.

#[tokio::test]
async fn tenant_networks_need_the_rendered_ml2_override() {
    let net = network("acme-app", 120);
    let mut desired = ResourceSet::default();
    desired.insert(net);
    let intents = MemIntents::default();

    let bare = region_with(FaultSpec::default(), BTreeMap::new()).await;
    let p = bare.provider();
    let steps = plan(&desired, &p.observe().await.expect("observe")).steps;
    assert_eq!(steps.len(), 1);
    let e = act(&p, &steps[0], &intents)
        .await
        .expect_err("no VLAN physnet without the override");
    assert!(
        e.to_string()
            .contains("physical_network 'physnet1' unknown for VLAN provider network"),
        "{e}"
    );

    let configured = region(FaultSpec::default()).await;
    let p = configured.provider();
    let intents = MemIntents::default();
    let steps = plan(&desired, &p.observe().await.expect("observe")).steps;
    act(&p, &steps[0], &intents)
        .await
        .expect("the rendered ml2_conf.ini names physnet1");
}

// ---------------------------------------------------------------------------------------
// 3. Create everything, re-observe to an empty diff, then drift behind strata's back.

#[tokio::test]
async fn create_converge_and_see_drift() {
    let r = region(FaultSpec::default()).await;
    let p = r.provider();
    let intents = MemIntents::default();
    let desired = fleet();

    let first = plan(&desired, &p.observe().await.expect("observe"));
    assert_eq!(first.counts().create, desired.len());
    for step in &first.steps {
        let out = act(&p, step, &intents)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", step.id));
        assert!(out.external_id.is_some(), "{}: {out:?}", step.id);
        intents.forget(&key(step));
    }

    let calls = p.calls();
    let observed = p.observe().await.expect("observe");
    // Six lists plus one quota read per owned project.
    assert_eq!(p.calls() - calls, 6 + 2);
    let again = plan(&desired, &observed);
    assert!(again.is_empty(), "{:#?}", again.steps);
    let gpu = observed
        .resources
        .get(&ResourceId::new(DC, Kind::Flavor, "g2.h100.1"))
        .expect("gpu flavor");
    assert!(gpu.owned);
    let gpu: FlavorFields = gpu.fields_as().expect("flavor fields");
    assert_eq!(gpu.extra_specs["pci_passthrough:alias"], "gpu-h100:1");
    let net = observed
        .resources
        .get(&ResourceId::new(DC, Kind::Network, "acme-app"))
        .expect("network");
    let net: NetworkFields = net.fields_as().expect("network fields");
    assert_eq!(net.provider_network_type.as_deref(), Some("vlan"));
    assert_eq!(net.provider_physical_network.as_deref(), Some("physnet1"));
    assert_eq!(net.provider_segmentation_id, Some(120));
    let sub = observed
        .resources
        .get(&ResourceId::new(DC, Kind::Subnet, "acme-app"))
        .expect("subnet");
    let sub: SubnetFields = sub.fields_as().expect("subnet fields");
    assert_eq!(sub.network, "acme-app");
    assert_eq!(sub.gateway_ip.as_deref(), Some("10.20.0.1"));
    // The seeded objects are still there and still not ours.
    assert!(observed.unowned.iter().any(|u| u.name == "m1.tiny"));

    // Behind strata's back: an extra spec and a quota.
    r.mutate(json!({"kind": "flavor", "id": "g2.h100.1", "set": {"extra_specs": {
        "strata:owner": OWNER, "pci_passthrough:alias": "gpu-h100:2", "hw:cpu_policy": "dedicated", "hw:mem_page_size": "large"}}}))
        .await;
    r.mutate(json!({"kind": "quota", "id": "ml", "set": {"cores": 7}}))
        .await;
    let drift = plan(&desired, &p.observe().await.expect("observe"));
    let updates: Vec<(String, Vec<String>)> = drift
        .steps
        .iter()
        .map(|s| {
            assert_eq!(s.action, Action::Update, "{}", s.id);
            (
                s.id.to_string(),
                s.changes.iter().map(|c| c.field.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        updates,
        vec![
            (
                "fra1/flavor/g2.h100.1".to_string(),
                vec!["extra_specs".to_string()]
            ),
            ("fra1/quota/ml".to_string(), vec!["cores".to_string()]),
        ]
    );
    let q = drift
        .steps
        .iter()
        .find(|s| s.id.kind == Kind::Quota)
        .expect("quota step");
    assert_eq!(q.changes[0].old, Some(json!(7)));
    assert_eq!(q.changes[0].new, Some(json!(64)));
    for s in &drift.steps {
        let out = act(&p, s, &intents).await.expect("update");
        if s.id.kind == Kind::Flavor {
            assert!(
                out.note.contains("set pci_passthrough:alias")
                    && out.note.contains("removed hw:mem_page_size"),
                "{}",
                out.note
            );
        }
    }
    assert!(plan(&desired, &p.observe().await.expect("observe")).is_empty());

    // A size change replaces the (owned) flavor: Nova flavors are immutable.
    let mut bigger = desired.clone();
    bigger.insert(flavor(
        "s1.small",
        4,
        8192,
        20,
        &[("hw:cpu_policy", "dedicated")],
    ));
    let before = p.observe().await.expect("observe");
    let old_id = before
        .resources
        .get(&ResourceId::new(DC, Kind::Flavor, "s1.small"))
        .and_then(|f| f.external_id.clone())
        .expect("flavor id");
    let change = plan(&bigger, &before);
    assert_eq!(change.steps.len(), 1);
    let out = act(&p, &change.steps[0], &intents).await.expect("replace");
    assert!(
        out.note.contains("replaced flavor s1.small"),
        "{}",
        out.note
    );
    assert!(out.note.contains("vcpus/ram"), "{}", out.note);
    assert_ne!(out.external_id.as_deref(), Some(old_id.as_str()));
    intents.forget(&key(&change.steps[0]));
    assert!(plan(&bigger, &p.observe().await.expect("observe")).is_empty());
    assert_eq!(count(&r.state(), "flavors", "s1.small"), 1);

    // Neutron and Keystone updates: a VLAN, a gateway, a description in place; a
    // subnet's cidr cannot change, so that subnet is replaced.
    bigger.insert(network("acme-app", 125));
    bigger.insert(subnet("acme-app", "10.20.0.0/24", "10.20.0.254"));
    bigger.insert(subnet("acme-db", "10.21.8.0/24", "10.21.8.1"));
    bigger.insert(project_described("ml", "machine learning"));
    let edits = plan(&bigger, &p.observe().await.expect("observe"));
    let what: Vec<(String, Vec<String>)> = edits
        .steps
        .iter()
        .map(|s| {
            assert_eq!(s.action, Action::Update, "{}", s.id);
            (
                s.id.to_string(),
                s.changes.iter().map(|c| c.field.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        what,
        vec![
            ("fra1/project/ml".into(), vec!["description".into()]),
            (
                "fra1/network/acme-app".into(),
                vec!["provider_segmentation_id".into()]
            ),
            ("fra1/subnet/acme-app".into(), vec!["gateway_ip".into()]),
            (
                "fra1/subnet/acme-db".into(),
                vec!["cidr".into(), "gateway_ip".into()]
            ),
        ]
    );
    for s in &edits.steps {
        let out = act(&p, s, &intents)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s.id));
        if s.id.name == "acme-db" {
            assert!(
                out.note.starts_with("replaced subnet acme-db"),
                "{}",
                out.note
            );
        }
        intents.forget(&key(s));
    }
    let left = plan(&bigger, &p.observe().await.expect("observe"));
    assert!(left.is_empty(), "{:#?}", left.steps);
    assert_eq!(count(&r.state(), "subnets", "acme-db"), 1);

    // Drop a team and a network: deletes run last, subnet before network, quota
    // before project; unowned objects are untouched.
    let mut smaller = bigger.clone();
    for id in [
        ResourceId::new(DC, Kind::Project, "web"),
        ResourceId::new(DC, Kind::Quota, "web"),
        ResourceId::new(DC, Kind::Network, "acme-db"),
        ResourceId::new(DC, Kind::Subnet, "acme-db"),
    ] {
        smaller.resources.remove(&id);
    }
    let seeded_before = (
        names(&r.state(), "flavors").len(),
        names(&r.state(), "networks").len(),
    );
    let shrink = plan(&smaller, &p.observe().await.expect("observe"));
    let order: Vec<String> = shrink
        .steps
        .iter()
        .map(|s| format!("{:?} {}", s.action, s.id))
        .collect();
    assert_eq!(
        order,
        vec![
            "Delete fra1/quota/web",
            "Delete fra1/subnet/acme-db",
            "Delete fra1/network/acme-db",
            "Delete fra1/project/web",
        ]
    );
    for s in &shrink.steps {
        act(&p, s, &intents).await.expect("delete");
    }
    let after = p.observe().await.expect("observe");
    assert!(plan(&smaller, &after).is_empty());
    let st = r.state();
    assert_eq!(count(&st, "projects", "web"), 0);
    assert_eq!(count(&st, "networks", "acme-db"), 0);
    assert_eq!(names(&st, "networks").len(), seeded_before.1 - 1);
    assert_eq!(names(&st, "flavors").len(), seeded_before.0);
    // Deleting again is a no-op.
    let out = act(&p, &shrink.steps[3], &intents)
        .await
        .expect("delete again");
    assert_eq!(out.note, "already gone");
}

// ---------------------------------------------------------------------------------------
// Never touch what is not ours.

#[tokio::test]
async fn unowned_objects_are_never_changed() {
    let r = region(FaultSpec::default()).await;
    let p = r.provider();
    let intents = MemIntents::default();
    let o = p.observe().await.expect("observe");
    let tiny = o
        .unowned
        .iter()
        .find(|u| u.name == "m1.tiny")
        .expect("m1.tiny")
        .clone();

    // A desired flavor whose name an unowned flavor has: a plan conflict, and a
    // create step forced through anyway is refused, not taken over.
    let mut desired = ResourceSet::default();
    desired.insert(flavor("m1.tiny", 1, 512, 1, &[]));
    let blocked = plan(&desired, &o);
    assert!(blocked.steps.is_empty());
    assert_eq!(blocked.conflicts.len(), 1);
    let steps = plan_resuming(&desired, &o).steps;
    assert_eq!(steps[0].action, Action::Create);
    let e = act(&p, &steps[0], &intents).await.expect_err("refused");
    assert!(matches!(e, ProviderError::Refused(_)), "{e}");
    assert!(e.to_string().contains("ownership tag"), "{e}");

    // A forged step claiming the seeded flavor is owned: the live check refuses.
    let mut forged = Resource::new(ResourceId::new(DC, Kind::Flavor, "m1.tiny"));
    forged.external_id = Some(tiny.external_id.clone());
    let del = Step {
        id: forged.id.clone(),
        action: Action::Delete,
        changes: vec![],
        desired: None,
        observed: Some(forged.clone()),
        depends_on: vec![],
        reboot: None,
    };
    let e = act(&p, &del, &intents).await.expect_err("refused");
    assert!(matches!(e, ProviderError::Refused(_)), "{e}");
    // An unowned observed object: refused before any call.
    let mut unowned = forged;
    unowned.owned = false;
    let upd = Step {
        observed: Some(unowned),
        action: Action::Update,
        desired: Some(flavor("m1.tiny", 1, 512, 1, &[])),
        ..del
    };
    let calls = p.calls();
    assert!(act(&p, &upd, &intents).await.is_err());
    assert_eq!(p.calls(), calls);
    let st = r.state();
    assert_eq!(count(&st, "flavors", "m1.tiny"), 1);
    let f = st["flavors"]
        .as_array()
        .expect("flavors")
        .iter()
        .find(|f| f["name"] == "m1.tiny")
        .expect("m1.tiny");
    assert_eq!(f["extra_specs"], json!({}));
}

// ---------------------------------------------------------------------------------------
// 4. Crashes and faults: no duplicates, convergence.

#[tokio::test]
async fn an_interrupted_create_is_finished_not_duplicated() {
    let r = region(FaultSpec::default()).await;
    let p = r.provider();
    let intents = MemIntents::default();
    let mut desired = ResourceSet::default();
    desired.insert(flavor(
        "g2.h100.8",
        128,
        1_048_576,
        400,
        &[("pci_passthrough:alias", "gpu-h100:8")],
    ));
    desired.insert(project("ml"));
    desired.insert(quota("ml", 5, 10, 20480));
    desired.insert(network("acme-app", 120));
    desired.insert(subnet("acme-app", "10.20.0.0/24", "10.20.0.1"));

    // A first run planned the flavor, recorded its intent and created it, then died
    // before setting the extra specs (so the flavor carries no ownership tag yet).
    let step = plan(&desired, &p.observe().await.expect("observe"))
        .steps
        .into_iter()
        .find(|s| s.id.kind == Kind::Flavor)
        .expect("flavor step");
    let crashed_id = "0d6f7e9a-1111-4222-8333-944455556666";
    intents
        .record(
            &key(&step),
            &json!({"flavor_id": crashed_id, "name": "g2.h100.8"}),
        )
        .await;
    let (token, body) = r.token().await;
    let compute = catalog(&body, "compute");
    let resp = r
        .http
        .post(format!("{compute}/flavors"))
        .header("x-auth-token", &token)
        .header("openstack-api-version", "compute 2.61")
        .json(&json!({"flavor": {"name": "g2.h100.8", "id": crashed_id, "vcpus": 128, "ram": 1_048_576, "disk": 400}}))
        .send()
        .await
        .expect("raw create");
    assert!(resp.status().is_success());

    // The next run sees an untagged flavor (unowned). Without the journal's intent
    // that is a conflict; with it, a create the provider finishes instead of making
    // another.
    let o = p.observe().await.expect("observe");
    assert!(o.unowned.iter().any(|u| u.external_id == crashed_id));
    assert!(
        plan(&desired, &o)
            .conflicts
            .iter()
            .any(|c| c.external_id == crashed_id)
    );
    let steps = plan_resuming(&desired, &o).steps;
    for s in &steps {
        let out = act(&p, s, &intents)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s.id));
        if s.id.kind == Kind::Flavor {
            assert_eq!(out.external_id.as_deref(), Some(crashed_id));
            assert!(out.note.contains("earlier attempt"), "{}", out.note);
        }
    }
    // Killed again after every create but before the journal said done: the same
    // steps run once more with their intents still recorded.
    for s in steps.iter().filter(|s| s.id.kind != Kind::Quota) {
        assert!(
            intents.get(&key(s)).is_some(),
            "{} recorded an intent",
            s.id
        );
        let out = act(&p, s, &intents)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", s.id));
        assert!(
            out.note.contains("already existed"),
            "{}: {}",
            s.id,
            out.note
        );
    }
    let st = r.state();
    assert_eq!(count(&st, "flavors", "g2.h100.8"), 1);
    assert_eq!(count(&st, "projects", "ml"), 1);
    assert_eq!(count(&st, "networks", "acme-app"), 1);
    assert_eq!(count(&st, "subnets", "acme-app"), 1);
    let o = p.observe().await.expect("observe");
    let left = plan(&desired, &o);
    assert!(left.is_empty(), "{:#?}", left.steps);
    let f = o
        .resources
        .get(&ResourceId::new(DC, Kind::Flavor, "g2.h100.8"))
        .expect("owned now");
    assert_eq!(f.external_id.as_deref(), Some(crashed_id));
}

#[tokio::test]
async fn everything_converges_under_faults_without_duplicates() {
    let r = region("5xx=0.1,429=0.05".parse().expect("faults")).await;
    let p = r.provider();
    let intents = MemIntents::default();
    let mut desired = fleet();
    for i in 0..8u32 {
        desired.insert(flavor(
            &format!("x{i}.medium"),
            2 + u64::from(i),
            4096,
            20,
            &[("hw:cpu_policy", "shared")],
        ));
    }
    for i in 0..4u32 {
        let name = format!("acme-t{i}");
        desired.insert(network(&name, 200 + i64::from(i)));
        desired.insert(subnet(
            &name,
            &format!("10.3{i}.0.0/24"),
            &format!("10.3{i}.0.1"),
        ));
    }
    let rounds = converge(&p, &desired, &intents, 6).await;
    assert!(rounds >= 1);
    // Faults off: the region holds exactly one of everything strata wanted.
    r.set_faults(json!({})).await;
    let (total, routes) = r.counted().await;
    eprintln!(
        "{total} calls under faults: {:?} 4xx (429s), {:?} 5xx",
        routes.get("status 4xx"),
        routes.get("status 5xx")
    );
    assert!(
        routes.get("status 5xx").is_some_and(|n| *n > 0),
        "faults were injected"
    );
    let o = p.observe().await.expect("observe");
    assert!(plan(&desired, &o).is_empty());
    let st = r.state();
    for (coll, name) in [
        ("flavors", "s1.small"),
        ("flavors", "g2.h100.1"),
        ("projects", "ml"),
        ("projects", "web"),
        ("networks", "acme-app"),
        ("networks", "acme-db"),
        ("subnets", "acme-app"),
        ("subnets", "acme-db"),
    ] {
        assert_eq!(count(&st, coll, name), 1, "{coll} {name}");
    }
    // Dropped connections too (a POST whose answer is lost is ambiguous: the provider
    // looks before it tries again).
    let mut more = desired.clone();
    more.insert(flavor("s1.large", 8, 16384, 40, &[]));
    more.insert(network("acme-web", 122));
    for i in 0..8u32 {
        more.insert(flavor(
            &format!("y{i}.large"),
            4 + u64::from(i),
            8192,
            40,
            &[],
        ));
        let name = format!("acme-u{i}");
        more.insert(network(&name, 300 + i64::from(i)));
        more.insert(subnet(
            &name,
            &format!("10.4{i}.0.0/24"),
            &format!("10.4{i}.0.1"),
        ));
    }
    r.set_faults(json!({"5xx": 0.1, "429": 0.02, "drop": 0.1}))
        .await;
    converge(&p, &more, &intents, 8).await;
    r.set_faults(json!({})).await;
    assert!(plan(&more, &p.observe().await.expect("observe")).is_empty());
    let (total, routes) = r.counted().await;
    eprintln!("{total} calls in all, {:?} 5xx", routes.get("status 5xx"));
    let st = r.state();
    for r in more
        .iter()
        .filter(|r| matches!(r.id.kind, Kind::Flavor | Kind::Network | Kind::Subnet))
    {
        let coll = match r.id.kind {
            Kind::Flavor => "flavors",
            Kind::Network => "networks",
            _ => "subnets",
        };
        assert_eq!(count(&st, coll, &r.id.name), 1, "{}", r.id);
    }
}

// ---------------------------------------------------------------------------------------
// Token handling: a revoked token is replaced once, transparently.

#[tokio::test]
async fn a_revoked_token_is_renewed_once() {
    let r = region(FaultSpec::default()).await;
    let p = r.provider();
    p.observe().await.expect("observe");
    let issued: Vec<String> = r.state()["tokens"]
        .as_object()
        .expect("tokens")
        .keys()
        .cloned()
        .collect();
    assert_eq!(issued.len(), 1, "one token for the provider");
    let (mine, _) = r.token().await;
    let resp = r
        .http
        .delete(format!("{}/auth/tokens", r.target.auth_url))
        .header("x-auth-token", &mine)
        .header("x-subject-token", &issued[0])
        .send()
        .await
        .expect("revoke");
    assert_eq!(resp.status().as_u16(), 204);
    let (_, before) = r.counted().await;
    let auths =
        |m: &HashMap<String, u64>| m.get("POST /identity/v3/auth/tokens").copied().unwrap_or(0);
    p.observe().await.expect("observe with a revoked token");
    let (_, after) = r.counted().await;
    assert_eq!(auths(&after) - auths(&before), 1, "exactly one new token");
    // Wrong credentials: a clear refusal that does not echo the password.
    let mut bad = r.target.clone();
    let text = format!(
        r#"{{"dcs":[{{"name":"{DC}","openstack":{{"auth_url":"{}","region":"{DC}","username":"admin","password":"not-the-password","project":"admin"}}}}]}}"#,
        bad.auth_url
    );
    bad = Targets::parse(
        &text,
        Path::new("."),
        &strata_providers::secrets::StaticSecrets::new(),
    )
    .expect("targets")
    .dcs[0]
        .openstack
        .clone()
        .expect("target");
    let e = OpenstackProvider::new(DC, &bad, OWNER)
        .expect("provider")
        .observe()
        .await
        .expect_err("bad password");
    assert!(matches!(e, ProviderError::Refused(_)), "{e}");
    assert!(!e.to_string().contains("not-the-password"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Team quotas as Keystone unified limits (Kolla 2026.2 and later).

/// What the planner wants in fra1 for the example fleet's teams on a unified-limits
/// region: the projects, the registered defaults and one limit per team and resource.
fn unified_quota_fleet() -> ResourceSet {
    let mut fleet = strata_testkit::example_fleet();
    for dc in &mut fleet.dcs {
        dc.openstack.kolla_release = "2026.2".into();
    }
    let all = strata_plan::desired(&fleet).expect("desired");
    let mut out = ResourceSet::default();
    for r in all.resources.values() {
        match r.id.kind {
            // The fleet's projects, under this test's owner tag.
            Kind::Project if r.id.dc == DC => out.insert(project(&r.id.name)),
            Kind::RegisteredLimit | Kind::ProjectLimit if r.id.dc == DC => out.insert(r.clone()),
            _ => {}
        }
    }
    out
}

async fn send_json(
    r: &Region,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (token, _) = r.token().await;
    let mut req = r.http.request(method, url).header("x-auth-token", &token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// On a 2026.2 region the team quotas (GPUs included) become Keystone limits of the
/// compute service: created after their registered defaults, read back by Nova's quota
/// API, observed without drift, corrected when changed by hand, adopted when a create's
/// answer was lost, and removed with the team. Limits strata did not make are never
/// touched.
#[tokio::test]
async fn team_quotas_are_keystone_unified_limits() {
    let r = region_with(FaultSpec::default(), rendered_kolla_at("2026.2")).await;
    let p = r.provider().with_quota_model(QuotaModel::UnifiedLimits);
    let intents = MemIntents::default();
    let desired = unified_quota_fleet();
    let gpu_limit = ResourceId::new(
        DC,
        Kind::ProjectLimit,
        "ml-research:class:CUSTOM_PCI_10DE_2330",
    );
    assert!(
        desired.resources.contains_key(&gpu_limit),
        "{:#?}",
        desired.resources.keys()
    );
    assert!(
        !desired.resources.keys().any(|id| id.kind == Kind::Quota),
        "no quota sets on a unified-limits region"
    );

    // A limit somebody registered by hand: observed as unowned, never changed.
    let url = |path: &str| format!("{}{path}", r.target.auth_url);
    let (_, services) = send_json(
        &r,
        reqwest::Method::GET,
        &url("/services?type=compute"),
        None,
    )
    .await;
    let service = services["services"][0]["id"]
        .as_str()
        .expect("compute service")
        .to_string();
    let (status, body) = send_json(
        &r,
        reqwest::Method::POST,
        &url("/registered_limits"),
        Some(json!({"registered_limits": [{"service_id": service, "region_id": DC, "resource_name": "class:DISK_GB", "default_limit": 5000}]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let first = plan(&desired, &p.observe().await.expect("observe"));
    let position = |kind: Kind| first.steps.iter().position(|s| s.id.kind == kind);
    assert!(
        position(Kind::RegisteredLimit) < position(Kind::ProjectLimit),
        "registered defaults before project limits: {:#?}",
        first.steps
    );
    converge(&p, &desired, &intents, 4).await;
    let observed = p.observe().await.expect("observe");
    assert!(plan(&desired, &observed).is_empty());
    // Nova's service user may now read the limits (system-scoped reader).
    let (token, _) = r.token().await;
    let (status, grants) = r
        .get_with(
            &token,
            &url("/role_assignments?scope.system=all&include_names=true"),
        )
        .await;
    assert_eq!(status, 200, "{grants}");
    assert!(
        grants["role_assignments"].as_array().is_some_and(|a| a
            .iter()
            .any(|x| { x["user"]["name"] == "nova" && x["role"]["name"] == "reader" })),
        "{grants}"
    );
    let gpu: ProjectLimitFields = observed
        .resources
        .get(&gpu_limit)
        .expect("gpu limit")
        .fields_as()
        .expect("fields");
    assert_eq!((gpu.project.as_str(), gpu.limit), ("ml-research", 16));
    assert!(
        observed
            .unowned
            .iter()
            .any(|u| u.kind == "registered-limit" && u.name == "class:DISK_GB"),
        "{:#?}",
        observed.unowned
    );

    // Nova's quota API answers from Keystone: the team's instances and cores.
    let (token, body) = r.token().await;
    let (_, projects) = r.get_with(&token, &url("/projects?name=ml-research")).await;
    let project = projects["projects"][0]["id"]
        .as_str()
        .expect("project")
        .to_string();
    let (status, q) = r
        .get_with(
            &token,
            &format!("{}/os-quota-sets/{project}", catalog(&body, "compute")),
        )
        .await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["quota_set"]["instances"], 20, "{q}");
    assert_eq!(q["quota_set"]["cores"], 800, "{q}");

    // Changed by hand: the plan puts it back.
    let external = observed
        .resources
        .get(&gpu_limit)
        .expect("gpu limit")
        .external_id
        .clone()
        .expect("id");
    let (status, body) = send_json(
        &r,
        reqwest::Method::PATCH,
        &url(&format!("/limits/{external}")),
        Some(json!({"limit": {"resource_limit": 64}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let drift = plan(&desired, &p.observe().await.expect("observe"));
    assert_eq!(drift.steps.len(), 1, "{:#?}", drift.steps);
    assert_eq!(drift.steps[0].id, gpu_limit);
    assert_eq!(drift.steps[0].changes[0].old, Some(json!(64)));
    assert_eq!(drift.steps[0].changes[0].new, Some(json!(16)));
    converge(&p, &desired, &intents, 2).await;

    // The blueprint's default changes. Keystone changes no registered limit that
    // project limits use; strata takes its own off and puts them back around it.
    let servers = ResourceId::new(DC, Kind::RegisteredLimit, "servers");
    let mut new_default = desired.clone();
    new_default.insert(Resource::with_fields(
        servers.clone(),
        &RegisteredLimitFields { default_limit: 7 },
    ));
    let steps = plan(&new_default, &p.observe().await.expect("observe")).steps;
    assert_eq!(steps.len(), 1, "{steps:#?}");
    assert_eq!(
        (steps[0].id.clone(), steps[0].action),
        (servers.clone(), Action::Update)
    );
    let out = act(&p, &steps[0], &intents).await.expect("new default");
    assert!(out.note.contains("put back"), "{}", out.note);
    assert!(plan(&new_default, &p.observe().await.expect("observe")).is_empty());
    converge(&p, &desired, &intents, 2).await;

    // A create whose answer was lost is run again: Keystone's 409, and strata adopts
    // its own limit instead of failing or duplicating.
    for step in plan(&desired, &Observed::default())
        .steps
        .iter()
        .filter(|s| matches!(s.id.kind, Kind::RegisteredLimit | Kind::ProjectLimit))
    {
        let out = act(&p, step, &intents).await.expect("create again");
        assert!(
            out.note.contains("already existed"),
            "{}: {}",
            step.id,
            out.note
        );
    }
    let state = r.state();
    assert_eq!(
        state["limits"].as_array().map(Vec::len),
        Some(
            desired
                .resources
                .keys()
                .filter(|id| id.kind == Kind::ProjectLimit)
                .count()
        ),
        "{}",
        state["limits"]
    );
    assert!(plan(&desired, &p.observe().await.expect("observe")).is_empty());

    // The team leaves the spec: its limits go (before its project), the defaults stay.
    let mut without = desired.clone();
    without
        .resources
        .retain(|id, _| !id.name.starts_with("ml-research"));
    let steps = plan(&without, &p.observe().await.expect("observe")).steps;
    assert!(
        steps.iter().all(|s| s.action == Action::Delete),
        "{steps:#?}"
    );
    assert!(steps.iter().any(|s| s.id.kind == Kind::Project));
    converge(&p, &without, &intents, 3).await;
    let state = r.state();
    assert!(
        state["limits"]
            .as_array()
            .expect("limits")
            .iter()
            .all(|l| l["project_id"] != json!(project)),
        "{}",
        state["limits"]
    );
    // The hand-made default is still there, unchanged.
    assert!(
        state["registered_limits"]
            .as_array()
            .expect("registered limits")
            .iter()
            .any(|l| l["resource_name"] == "class:DISK_GB" && l["default_limit"] == 5000),
        "{}",
        state["registered_limits"]
    );
}
