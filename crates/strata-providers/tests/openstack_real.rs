//! The OpenStack provider's Keystone part against the real services: Keystone 30 and
//! Placement 16, started by `/work/shared/tools/openstack-real.sh` (about a minute the
//! first time; the virtual environment is cached). Nova and Neutron are not available
//! for real here, so flavors, networks, subnets and quotas are covered by the twin only.
//!
//! Set `STRATA_SKIP_REAL_OPENSTACK=1` to skip. `STRATA_OPENSTACK_REAL_SCRIPT` and
//! `STRATA_OPENSTACK_REAL_CACHE` override the script and the cache directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::{Value, json};
use strata_plan::{Action, Kind, Resource, ResourceId, Step};
use strata_providers::openstack::OpenstackProvider;
use strata_providers::targets::Targets;
use strata_providers::{ActContext, IntentLog, Provider, ProviderError};

const OWNER: &str = "strata-realtest";

/// Real Keystone and Placement processes; stopped (both process groups) on drop.
struct RealServices {
    keystone: String,
    placement: String,
    groups: Vec<i32>,
    run_dir: PathBuf,
}

impl Drop for RealServices {
    fn drop(&mut self) {
        stop_groups(&self.groups);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// `kill -- -PGID` for each group, then wait for them to go (gunicorn shuts down
/// gracefully); whatever is still there after 20 s gets SIGKILL.
fn stop_groups(groups: &[i32]) {
    let signal = |sig: &str, g: i32| {
        Command::new("kill")
            .args([sig, "--", &format!("-{g}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for g in groups {
        signal("-TERM", *g);
    }
    for _ in 0..100 {
        if !groups.iter().any(|g| signal("-0", *g)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for g in groups {
        signal("-KILL", *g);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn pid_file(dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn start_real() -> RealServices {
    let script = std::env::var_os("STRATA_OPENSTACK_REAL_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/tools/openstack-real.sh"));
    assert!(
        script.is_file(),
        "{} is missing (set STRATA_SKIP_REAL_OPENSTACK=1 to skip this test)",
        script.display()
    );
    let cache = std::env::var_os("STRATA_OPENSTACK_REAL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/strata-openstack-real-providers"));
    std::fs::create_dir_all(&cache).expect("cache directory");
    // One start at a time per cache: the first one builds the shared virtualenv.
    let lock = std::fs::File::create(cache.join(".lock")).expect("lock file");
    lock.lock().expect("lock the cache");
    let venv = cache.join("venv");
    if !venv.join("bin/python").exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(ok.success(), "python3 -m venv failed");
    }
    // Each run gets fresh databases and keys; the virtualenv is shared.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let run_dir = cache.join(format!("run-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&run_dir).expect("run directory");
    std::os::unix::fs::symlink(&venv, run_dir.join("venv")).expect("link the venv");
    let (ks, pl) = (free_port(), free_port());
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(&run_dir)
        .arg(ks.to_string())
        .arg(pl.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start openstack-real.sh");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(format!("stderr: {line}"));
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut log = Vec::new();
    let ready = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left.min(Duration::from_secs(5))) {
            Ok(line) if line.starts_with("READY ") => break Some(line),
            Ok(line) => log.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if std::time::Instant::now() >= deadline {
                    break None;
                }
                if let Ok(Some(status)) = child.try_wait()
                    && !status.success()
                {
                    // Drain what is left, then give up.
                    std::thread::sleep(Duration::from_millis(200));
                    log.extend(rx.try_iter());
                    break None;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break None,
        }
    };
    let _ = child.wait();
    drop(lock);
    let Some(ready) = ready else {
        // Whatever was started before the failure goes too.
        let groups: Vec<i32> = ["ks.pid", "pl.pid"]
            .iter()
            .filter_map(|f| pid_file(&run_dir, f))
            .collect();
        stop_groups(&groups);
        let _ = std::fs::remove_dir_all(&run_dir);
        panic!(
            "the real OpenStack services did not start (set STRATA_SKIP_REAL_OPENSTACK=1 to skip):\n{}",
            log.join("\n")
        );
    };
    // READY keystone=URL placement=URL pids: A B
    let word = |prefix: &str| {
        ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix(prefix))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{prefix} in `{ready}`"))
    };
    let groups: Vec<i32> = ready
        .split_once("pids:")
        .map(|(_, p)| {
            p.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(groups.len(), 2, "two process groups in `{ready}`");
    RealServices {
        keystone: word("keystone="),
        placement: word("placement="),
        groups,
        run_dir,
    }
}

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
    if std::env::var("STRATA_SKIP_REAL_OPENSTACK").as_deref() == Ok("1") {
        eprintln!(
            "NOTE: skipped the test against real Keystone/Placement (STRATA_SKIP_REAL_OPENSTACK=1)"
        );
        return;
    }
    let real = tokio::task::spawn_blocking(start_real)
        .await
        .expect("start the real services");
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
    let want = Resource::new(id.clone())
        .field("description", "made by strata's real-Keystone test")
        .field("tags", vec![OWNER.to_string()]);
    let create = Step {
        id: id.clone(),
        action: Action::Create,
        changes: vec![],
        desired: Some(want.clone()),
        observed: None,
        depends_on: vec![],
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
    let changed = Resource::new(id.clone())
        .field("description", "team ml (strata)")
        .field("tags", tags.clone());
    let update = Step {
        id: id.clone(),
        action: Action::Update,
        changes: vec![],
        desired: Some(changed.clone()),
        observed: Some(seen.clone()),
        depends_on: vec![],
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
    };
    let e = act(&p, &del_service, &intents).await.expect_err("refused");
    assert!(matches!(e, ProviderError::Refused(_)), "{e}");

    // Delete ours; deleting again is a no-op.
    let delete = Step {
        id: id.clone(),
        action: Action::Delete,
        changes: vec![],
        desired: None,
        observed: Some(seen.clone()),
        depends_on: vec![],
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
