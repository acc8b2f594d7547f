//! The OpenStack provider's Keystone part against the real services: Keystone 30 and
//! Placement 16, started by the repository's `scripts/openstack-real.sh` (installed by
//! `scripts/install-test-deps.sh`; a missing install fails the test with that command):
//! projects, and team quotas as Keystone unified limits (registered defaults and
//! project limits of the compute service, with Keystone's own refusals). Nova and
//! Neutron are not available for real here, so flavors, networks, subnets and quota
//! sets are covered by the twin only.
//!
//! `STRATA_SKIP_REAL_OPENSTACK=1` opts out explicitly (`.ci/run` never sets it).

use std::path::Path;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::{Value, json};
use strata_plan::{
    Action, Kind, ProjectFields, ProjectLimitFields, RegisteredLimitFields, Resource, ResourceId,
    Step,
};
use strata_providers::openstack::OpenstackProvider;
use strata_providers::targets::Targets;
use strata_providers::{ActContext, IntentLog, Provider, ProviderError};

const OWNER: &str = "strata-realtest";

#[derive(Default)]
struct MemIntents(Mutex<std::collections::HashMap<String, Value>>);

#[async_trait]
impl IntentLog for MemIntents {
    async fn record(&self, key: &str, intent: &Value) {
        self.0.lock().insert(key.to_string(), intent.clone());
    }
    async fn previous(&self, key: &str) -> Option<Value> {
        self.0.lock().get(key).cloned()
    }
}

fn provider(keystone: &str, password: &str) -> OpenstackProvider {
    let text = json!({"dcs": [{"name": "lab1", "openstack": {
        "auth_url": keystone, "region": "RegionOne", "username": "admin",
        "password": password, "project": "admin",
        "user_domain": "Default", "project_domain": "Default"}}]})
    .to_string();
    let t = Targets::parse(
        &text,
        Path::new("."),
        &strata_providers::secrets::StaticSecrets::new(),
    )
    .expect("targets");
    OpenstackProvider::new(
        "lab1",
        t.dcs[0].openstack.as_ref().expect("openstack"),
        OWNER,
    )
    .expect("provider")
}

async fn act(
    p: &OpenstackProvider,
    step: &Step,
    intents: &MemIntents,
) -> Result<strata_providers::Outcome, ProviderError> {
    let key = format!("{}#{:?}", step.id, step.action).to_lowercase();
    p.act(
        step,
        &ActContext {
            key: &key,
            intents,
            owner_tag: OWNER,
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_and_placement_for_real() {
    let Some(real) = tokio::task::spawn_blocking(|| {
        strata_testkit::RealOpenstack::start("the OpenStack provider against real Keystone")
    })
    .await
    .expect("start the real services") else {
        return;
    };
    eprintln!(
        "real Keystone at {}, Placement at {}",
        real.keystone, real.placement
    );
    let p = provider(&real.keystone, "secret");

    // Authenticate and read the catalog: identity and placement are registered in
    // RegionOne; there is no Nova or Neutron here.
    let s = p.authenticate().await.expect("authenticate");
    assert_eq!(s.endpoints["identity"], real.keystone.trim_end_matches('/'));
    assert_eq!(s.endpoints["placement"], real.placement);
    assert!(!s.endpoints.contains_key("compute") && !s.endpoints.contains_key("network"));
    assert_eq!(s.domain_id, "default");
    assert!(strata_providers::openstack::parse_time(&s.expires_at).is_some());

    // Placement's root document, through the catalog (it answers without a token too,
    // but strata sends one: keystonemiddleware accepts it).
    let root = p.placement_root().await.expect("placement root");
    assert_eq!(root.versions[0].id, "v1.0");
    assert!(root.versions[0].max_version.starts_with("1."), "{root:?}");

    // Observe projects: the bootstrap's admin and service, neither of them ours.
    let o = p.observe_projects().await.expect("projects");
    assert!(o.resources.is_empty(), "{:#?}", o.resources);
    let names: Vec<&str> = o.unowned.iter().map(|u| u.name.as_str()).collect();
    assert!(
        names.contains(&"admin") && names.contains(&"service"),
        "{names:?}"
    );
    // Keystone pages when asked: one project per page, every next link followed.
    let paged = provider(&real.keystone, "secret").with_page_size(1);
    let o1 = paged.observe_projects().await.expect("paged projects");
    assert_eq!(o1, o);
    assert!(
        paged.calls() > o.unowned.len() as u64,
        "one page per project: {} calls",
        paged.calls()
    );
    // The full observe needs Nova and Neutron: a clear refusal, not a crash.
    let e = p.observe().await.expect_err("no compute here");
    assert!(e.to_string().contains("compute"), "{e}");

    // Create, tag, adopt-on-retry and delete a project.
    let intents = MemIntents::default();
    let name = format!("strata-real-{}", std::process::id());
    let id = ResourceId::new("lab1", Kind::Project, name.clone());
    let want = Resource::with_fields(
        id.clone(),
        &ProjectFields {
            description: "made by strata's real-Keystone test".to_string(),
            tags: vec![OWNER.to_string()],
        },
    );
    let create = Step {
        id: id.clone(),
        action: Action::Create,
        changes: vec![],
        desired: Some(want.clone()),
        observed: None,
        depends_on: vec![],
        reboot: None,
    };
    let made = act(&p, &create, &intents).await.expect("create project");
    let project_id = made.external_id.clone().expect("project id");
    let o = p.observe_projects().await.expect("projects");
    let seen = o.resources.get(&id).expect("the project is ours");
    assert!(seen.owned);
    assert_eq!(seen.external_id.as_deref(), Some(project_id.as_str()));
    assert_eq!(seen.fields, want.fields);
    // The same create again (a crash before the journal said done): adopted, no second
    // project (Keystone would refuse a duplicate name with 409 anyway).
    let again = act(&p, &create, &intents).await.expect("create again");
    assert_eq!(again.external_id.as_deref(), Some(project_id.as_str()));
    assert!(again.note.contains("already existed"), "{}", again.note);

    // Tag and describe it differently.
    let mut tags = vec!["team-ml".to_string(), OWNER.to_string()];
    tags.sort();
    let changed = Resource::with_fields(
        id.clone(),
        &ProjectFields {
            description: "team ml (strata)".to_string(),
            tags: tags.clone(),
        },
    );
    let update = Step {
        id: id.clone(),
        action: Action::Update,
        changes: vec![],
        desired: Some(changed.clone()),
        observed: Some(seen.clone()),
        depends_on: vec![],
        reboot: None,
    };
    act(&p, &update, &intents).await.expect("update project");
    let o = p.observe_projects().await.expect("projects");
    let seen = o.resources.get(&id).expect("still ours");
    assert_eq!(seen.fields, changed.fields);

    // An unowned project (the bootstrap's `service`) cannot be deleted through a forged
    // step: the live object is checked first.
    let service = o
        .unowned
        .iter()
        .find(|u| u.name == "service")
        .expect("service project");
    let mut forged = Resource::new(ResourceId::new("lab1", Kind::Project, "service"));
    forged.external_id = Some(service.external_id.clone());
    let del_service = Step {
        id: forged.id.clone(),
        action: Action::Delete,
        changes: vec![],
        desired: None,
        observed: Some(forged),
        depends_on: vec![],
        reboot: None,
    };
    let e = act(&p, &del_service, &intents).await.expect_err("refused");
    assert!(matches!(e, ProviderError::Refused(_)), "{e}");

    // Team quotas as unified limits, in real Keystone: register a compute service (Kolla
    // does for nova), then the registered default and the project's GPU limit.
    unified_limits_for_real(&real.keystone, &p, &name, &intents).await;

    // Delete ours; deleting again is a no-op.
    let delete = Step {
        id: id.clone(),
        action: Action::Delete,
        changes: vec![],
        desired: None,
        observed: Some(seen.clone()),
        depends_on: vec![],
        reboot: None,
    };
    let gone = act(&p, &delete, &intents).await.expect("delete project");
    assert!(gone.note.starts_with("deleted project"), "{}", gone.note);
    let o = p.observe_projects().await.expect("projects");
    assert!(o.resources.get(&id).is_none());
    assert!(o.unowned.iter().any(|u| u.name == "service"));
    let again = act(&p, &delete, &intents).await.expect("delete again");
    assert_eq!(again.note, "already gone");

    // Wrong password: refused, and the password is not in the message.
    let e = provider(&real.keystone, "not-the-secret")
        .authenticate()
        .await
        .expect_err("bad password");
    assert!(matches!(e, ProviderError::Refused(_)), "{e}");
    assert!(!e.to_string().contains("not-the-secret"), "{e}");
    eprintln!("{} calls to the real services", p.calls());
    drop(real);
}

/// An admin token of our own, for what the provider does not do (registering a
/// service, as a Kolla deploy does).
async fn admin_token(keystone: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/auth/tokens", keystone.trim_end_matches('/')))
        .json(
            &json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": "secret"}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}),
        )
        .send()
        .await
        .expect("token");
    assert_eq!(r.status().as_u16(), 201);
    r.headers()["x-subject-token"]
        .to_str()
        .expect("token header")
        .to_string()
}

fn step(
    id: ResourceId,
    action: Action,
    desired: Option<Resource>,
    observed: Option<Resource>,
) -> Step {
    Step {
        id,
        action,
        changes: vec![],
        desired,
        observed,
        depends_on: vec![],
        reboot: None,
    }
}

async fn unified_limits_for_real(
    keystone: &str,
    p: &OpenstackProvider,
    project: &str,
    intents: &MemIntents,
) {
    let base = keystone.trim_end_matches('/');
    let http = reqwest::Client::new();
    let token = admin_token(keystone).await;
    // Without a compute service, a limit has nothing to hang on: a clear refusal.
    let rc = "class:CUSTOM_PCI_10DE_2330";
    let reg_id = ResourceId::new("lab1", Kind::RegisteredLimit, rc);
    let reg = Resource::with_fields(reg_id.clone(), &RegisteredLimitFields { default_limit: 0 });
    let create_reg = step(reg_id.clone(), Action::Create, Some(reg.clone()), None);
    let e = act(p, &create_reg, intents)
        .await
        .expect_err("no compute service");
    assert!(e.to_string().contains("no compute service"), "{e}");

    let r = http
        .post(format!("{base}/services"))
        .header("x-auth-token", &token)
        .json(&json!({"service": {"type": "compute", "name": "nova", "enabled": true}}))
        .send()
        .await
        .expect("create service");
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);

    // A project limit before its registered default: Keystone refuses (403), and the
    // provider says what is missing.
    let lim_id = ResourceId::new("lab1", Kind::ProjectLimit, format!("{project}:{rc}"));
    let lim = Resource::with_fields(
        lim_id.clone(),
        &ProjectLimitFields {
            project: project.to_string(),
            resource: rc.to_string(),
            limit: 8,
        },
    );
    let create_lim = step(lim_id.clone(), Action::Create, Some(lim.clone()), None);
    let e = act(p, &create_lim, intents)
        .await
        .expect_err("no registered limit");
    assert!(e.to_string().contains("registered"), "{e}");

    // Nova reads the limits as its service user (Kolla's `nova`), which strata grants
    // the system reader role; without that user strata refuses to set limits nova
    // could not read.
    let e = act(p, &create_reg, intents)
        .await
        .expect_err("no nova user");
    assert!(e.to_string().contains("no user nova"), "{e}");
    let r = http
        .post(format!("{base}/users"))
        .header("x-auth-token", &token)
        .json(&json!({"user": {"name": "nova", "domain_id": "default", "password": "nova-secret"}}))
        .send()
        .await
        .expect("create nova user");
    assert_eq!(r.status().as_u16(), 201);
    let nova: Value = r.json().await.expect("user json");
    let nova_id = nova["user"]["id"].as_str().expect("nova id").to_string();

    // The default, then the project's limit; both again (a lost answer): adopted.
    act(p, &create_reg, intents)
        .await
        .expect("registered limit");
    let grants: Value = http
        .get(format!(
            "{base}/role_assignments?user.id={nova_id}&scope.system=all&include_names=true"
        ))
        .header("x-auth-token", &token)
        .send()
        .await
        .expect("role assignments")
        .json()
        .await
        .expect("assignments json");
    assert!(
        grants["role_assignments"].as_array().is_some_and(|a| a
            .iter()
            .any(|x| x["role"]["name"] == "reader" && x["scope"]["system"]["all"] == true)),
        "{grants}"
    );
    let made = act(p, &create_lim, intents).await.expect("project limit");
    assert!(made.external_id.is_some());
    let again = act(p, &create_lim, intents).await.expect("again");
    assert!(again.note.contains("already existed"), "{}", again.note);
    assert_eq!(again.external_id, made.external_id);
    let again = act(p, &create_reg, intents).await.expect("again");
    assert!(again.note.contains("already existed"), "{}", again.note);

    // Observed as ours, with the values set.
    let o = p.observe_identity().await.expect("observe identity");
    let seen_reg = o
        .resources
        .get(&reg_id)
        .expect("registered limit observed")
        .clone();
    let seen_lim = o
        .resources
        .get(&lim_id)
        .expect("project limit observed")
        .clone();
    assert!(seen_reg.owned && seen_lim.owned);
    assert_eq!(seen_lim.fields, lim.fields);
    assert_eq!(seen_reg.fields, reg.fields);

    // Update both values. Keystone refuses to change a registered limit that a project
    // limit uses (403); the provider takes its own limit off and puts it back.
    let reg2 = Resource::with_fields(reg_id.clone(), &RegisteredLimitFields { default_limit: 1 });
    let out = act(
        p,
        &step(
            reg_id.clone(),
            Action::Update,
            Some(reg2.clone()),
            Some(seen_reg.clone()),
        ),
        intents,
    )
    .await
    .expect("update registered");
    assert!(
        out.note
            .contains("1 project limit(s) taken off and put back"),
        "{}",
        out.note
    );
    let o = p.observe_identity().await.expect("observe identity");
    let seen_lim = o.resources.get(&lim_id).expect("put back").clone();
    assert_eq!(seen_lim.fields, lim.fields);
    let lim2 = Resource::with_fields(
        lim_id.clone(),
        &ProjectLimitFields {
            project: project.to_string(),
            resource: rc.to_string(),
            limit: 16,
        },
    );
    act(
        p,
        &step(
            lim_id.clone(),
            Action::Update,
            Some(lim2.clone()),
            Some(seen_lim.clone()),
        ),
        intents,
    )
    .await
    .expect("update limit");
    let o = p.observe_identity().await.expect("observe identity");
    assert_eq!(o.resources.get(&reg_id).expect("reg").fields, reg2.fields);
    assert_eq!(o.resources.get(&lim_id).expect("lim").fields, lim2.fields);

    // Keystone will not drop the default while the project limit hangs on it; the
    // project limit first, then the default; both twice.
    let del_reg = step(reg_id.clone(), Action::Delete, None, Some(seen_reg));
    let e = act(p, &del_reg, intents).await.expect_err("referenced");
    assert!(
        e.to_string().contains("403") || e.to_string().contains("project limits"),
        "{e}"
    );
    let del_lim = step(lim_id.clone(), Action::Delete, None, Some(seen_lim));
    act(p, &del_lim, intents).await.expect("delete limit");
    act(p, &del_reg, intents).await.expect("delete registered");
    assert_eq!(
        act(p, &del_lim, intents).await.expect("again").note,
        "already gone"
    );
    assert_eq!(
        act(p, &del_reg, intents).await.expect("again").note,
        "already gone"
    );
    let o = p.observe_identity().await.expect("observe identity");
    assert!(o.resources.get(&reg_id).is_none() && o.resources.get(&lim_id).is_none());
}
