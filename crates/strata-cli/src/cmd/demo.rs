//! `strata demo`: the main job on the embedded example fleet.
//!
//! The demo validates the example fleet, reports conformance per DC, renders every
//! configuration file and (when the tools are installed) verifies them with the real
//! validators; then it starts a digital twin of the three DCs (MAAS, Proxmox VE,
//! OpenStack), plans and applies the fleet against it, checks that a second plan is
//! empty, prints what was built and how to explore it with real clients, and keeps
//! the twin running until interrupted (`--exit` stops right away).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use strata_diagnostics::SourceMap;
use strata_fleet::Lock;
use strata_providers::secrets::{SecretRef, SecretResolver, StaticSecrets, SystemSecrets};
use strata_render::FileKind;

use crate::Global;
use crate::output::outln;
use crate::output::{counts_line, is_json, print_diagnostics, print_json};
use crate::pipeline::analyze_sources;
use crate::source::SpecDir;

/// The example fleet, compiled into the binary.
pub const EXAMPLE: &[(&str, &str)] = &[
    (
        "examples/fleet/blueprint.yaml",
        include_str!("../../../../examples/fleet/blueprint.yaml"),
    ),
    (
        "examples/fleet/fleet.yaml",
        include_str!("../../../../examples/fleet/fleet.yaml"),
    ),
    (
        "examples/fleet/hardware.yaml",
        include_str!("../../../../examples/fleet/hardware.yaml"),
    ),
    (
        "examples/fleet/inventory/ams1.yaml",
        include_str!("../../../../examples/fleet/inventory/ams1.yaml"),
    ),
    (
        "examples/fleet/inventory/fra1.yaml",
        include_str!("../../../../examples/fleet/inventory/fra1.yaml"),
    ),
    (
        "examples/fleet/inventory/waw1.yaml",
        include_str!("../../../../examples/fleet/inventory/waw1.yaml"),
    ),
    (
        "examples/fleet/pools.yaml",
        include_str!("../../../../examples/fleet/pools.yaml"),
    ),
    (
        "examples/fleet/sites/ams1.yaml",
        include_str!("../../../../examples/fleet/sites/ams1.yaml"),
    ),
    (
        "examples/fleet/sites/fra1.yaml",
        include_str!("../../../../examples/fleet/sites/fra1.yaml"),
    ),
    (
        "examples/fleet/sites/waw1.yaml",
        include_str!("../../../../examples/fleet/sites/waw1.yaml"),
    ),
    (
        "examples/fleet/teams.yaml",
        include_str!("../../../../examples/fleet/teams.yaml"),
    ),
    (
        "examples/fleet/tenants.yaml",
        include_str!("../../../../examples/fleet/tenants.yaml"),
    ),
    (
        "examples/fleet/vms.yaml",
        include_str!("../../../../examples/fleet/vms.yaml"),
    ),
];

/// The embedded example's lock file.
pub const EXAMPLE_LOCK: &str = include_str!("../../../../examples/fleet/fleet.lock");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the rendered files (default: a temporary directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip running the real validators even when they are installed.
    #[arg(long)]
    pub no_verify: bool,
    /// Where the twin listens (Proxmox takes the next ports); a busy port falls back
    /// to free ones.
    #[arg(long, default_value = "127.0.0.1:5240")]
    pub listen: std::net::SocketAddr,
    /// Only validate and render: no twin, no apply.
    #[arg(long)]
    pub no_twin: bool,
    /// Exit after applying instead of serving the twin until interrupted.
    #[arg(long)]
    pub exit: bool,
    #[command(flatten)]
    pub global: Global,
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let mut sources = SourceMap::new();
    for (path, text) in EXAMPLE {
        sources.add(*path, *text);
    }
    let dir = SpecDir {
        root: PathBuf::from("examples/fleet"),
        sources,
        diagnostics: Vec::new(),
    };
    let lock = Lock::parse(EXAMPLE_LOCK)?;
    let an = analyze_sources(dir, &lock, Some(EXAMPLE_LOCK.to_string()), false);
    print_diagnostics(&a.global, &an.diagnostics, an.sources());
    let Some(fleet) = an.fleet.as_ref().filter(|_| !an.has_errors()) else {
        eprintln!(
            "the embedded example does not validate: {}",
            counts_line(&an.diagnostics)
        );
        return Ok(ExitCode::from(1));
    };
    let files = strata_render::render_all(fleet)?;
    let tmp;
    let out = match &a.out {
        Some(p) => p.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("strata-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    crate::cmd::render::write_files(&out, &files)?;
    let mut verified = None;
    if !a.no_verify {
        let v = strata_verify::Verifier::discover();
        let available = FileKind::VERIFIED.iter().all(|k| v.missing(*k).is_none());
        if available {
            let list: Vec<(String, FileKind)> =
                files.iter().map(|f| (f.path.clone(), f.kind)).collect();
            let checks = v.verify_dir(&out, &list);
            let failed: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
            for c in &failed {
                eprintln!("verify failed: {} ({})\n{}", c.path, c.tool, c.output);
            }
            verified = Some((checks.len() - failed.len(), checks.len()));
        }
    }
    let report = an.conformance.as_ref();
    let json = is_json(&a.global);
    let mut doc = serde_json::Value::Null;
    if json {
        doc = serde_json::json!({
            "dcs": fleet.dcs.iter().map(|d| serde_json::json!({
                "name": d.name, "region": d.region,
                "switches": d.switches.len(), "machines": d.machines.len(), "vms": d.vms.len(),
                "bgp_sessions": d.bgp.len() / 2, "overrides": d.overrides,
            })).collect::<Vec<_>>(),
            "conformance": report,
            "rendered": files.len(),
            "embedded_files": EXAMPLE.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            "out": out.display().to_string(),
            "verified": verified.map(|(ok, n)| serde_json::json!({"ok": ok, "total": n})),
        });
    } else {
        outln!(
            "strata demo: example fleet `{}` ({} DCs)\n",
            fleet.organisation.fleet_id,
            fleet.dcs.len()
        )?;
        for d in &fleet.dcs {
            let conf = report
                .and_then(|r| r.dcs.iter().find(|c| c.dc == d.name))
                .map(|c| {
                    if c.differences.is_empty() {
                        "identical to the blueprint".to_string()
                    } else if c.conformant {
                        format!(
                            "conformant, declared: {}",
                            c.differences
                                .iter()
                                .map(|x| format!("{} = {}", x.path, x.dc))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    } else {
                        "NOT conformant".to_string()
                    }
                })
                .unwrap_or_default();
            let dc_files = files
                .iter()
                .filter(|f| f.path.starts_with(&format!("{}/", d.name)))
                .count();
            let count = |role| d.switches.iter().filter(|s| s.role == role).count();
            outln!(
                "  {:<5} {:<10} {} spines, {} leaves, {} border leaves, {} machines, {} VMs, {} BGP sessions, {} files; {}",
                d.name,
                d.region,
                count(strata_fleet::SwitchRole::Spine),
                count(strata_fleet::SwitchRole::Leaf),
                count(strata_fleet::SwitchRole::Border),
                d.machines.len(),
                d.vms.len(),
                d.bgp.len() / 2,
                dc_files,
                conf
            )?;
        }
        outln!("\nrendered {} files into {}", files.len(), out.display())?;
        match verified {
            Some((ok, n)) => outln!("verified {ok}/{n} files with the real tools")?,
            None if a.no_verify => {}
            None => outln!(
                "(validators not installed: run scripts/install-test-deps.sh, then the demo verifies every file)"
            )?,
        }
    }
    let mut twin_ok = true;
    if !a.no_twin {
        let rt = tokio::runtime::Runtime::new()?;
        let summary = rt.block_on(run_twin(&a, fleet, &out))?;
        twin_ok = summary["converged"] == true && summary["apply_succeeded"] == true;
        if json {
            doc["twin"] = summary;
        }
    } else if !json && a.out.is_none() {
        outln!("(pass --out DIR to keep the files)")?;
    }
    if json {
        print_json(&doc)?;
    }
    let ok = verified.is_none_or(|(ok, n)| ok == n) && twin_ok;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The example inventory references BMC passwords as `env:BMC_PASSWORD_<DC>`; the
/// twin's BMCs accept any password, so the demo answers those it finds unset with a
/// placeholder (never a real credential), without touching the process environment.
fn demo_secrets() -> Arc<dyn SecretResolver> {
    let system: Arc<dyn SecretResolver> = Arc::new(SystemSecrets::new("examples/fleet"));
    let mut secrets = StaticSecrets::new();
    for dc in ["FRA1", "AMS1", "WAW1"] {
        let reference = SecretRef::Env(format!("BMC_PASSWORD_{dc}"));
        if system.resolve(&reference).is_err() {
            secrets = secrets.with(reference, "demo-not-a-secret");
        }
    }
    Arc::new(secrets.or_else(system))
}

/// Start the twin, apply the fleet to it, check convergence, print how to explore it.
async fn run_twin(
    a: &DemoArgs,
    fleet: &strata_fleet::Fleet,
    out: &std::path::Path,
) -> Result<serde_json::Value> {
    use strata_plan::Kind;

    let json = is_json(&a.global);
    let seeds = crate::cmd::twin::seeds_from_fleet(fleet, fleet.dcs.len(), 0)?;
    let mut opts = strata_twin::TwinOptions {
        dcs: seeds,
        listen: a.listen,
        faults: strata_twin::FaultSpec::default(),
        latency_ms: 0,
        state_file: None,
        seed: 0,
        timing: Default::default(),
    };
    let twin = match strata_twin::start(opts.clone()).await {
        Ok(t) => t,
        Err(_) => {
            // The port is busy: take free ones.
            opts.listen.set_port(0);
            strata_twin::start(opts).await?
        }
    };
    let endpoints = out.join("twin").join("endpoints.json");
    twin.write_endpoints(&endpoints)?;
    if !json {
        outln!()?;
        crate::cmd::twin::print_endpoints(&twin.endpoints(), Some(&endpoints))?;
    }
    let secrets = demo_secrets();
    let providers = crate::cmd::live::providers_for(&endpoints, fleet, secrets.clone())?;
    let desired = strata_plan::desired(fleet)?;
    let started = std::time::Instant::now();
    let served = serve_fleet(a, out, &endpoints, secrets.clone(), json).await?;
    let seconds = started.elapsed().as_secs_f64();
    for p in &providers {
        p.expect(&desired);
    }
    let (observed, _) = crate::cmd::live::observe_all(&providers).await?;
    let again = strata_plan::diff(
        &desired,
        &observed,
        &providers
            .iter()
            .map(|p| (p.dc().to_string(), p.platform()))
            .collect::<Vec<_>>(),
    );
    let mut per_dc = Vec::new();
    for dc in &fleet.dcs {
        let n = |k: Kind, f: &dyn Fn(&strata_plan::Resource) -> bool| {
            observed
                .resources
                .iter()
                .filter(|r| r.owned && r.id.dc == dc.name && r.id.kind == k && f(r))
                .count()
        };
        let deployed = n(Kind::Machine, &|r| {
            r.fields_as::<strata_plan::MachineFields>()
                .is_ok_and(|f| f.status == "Deployed")
        });
        let running = n(Kind::Vm, &|r| {
            r.fields_as::<strata_plan::VmFields>()
                .is_ok_and(|f| f.status == "running")
        });
        let ha = n(Kind::Vm, &|r| {
            r.fields_as::<strata_plan::VmFields>().is_ok_and(|f| f.ha)
        });
        let rules = n(Kind::HaRule, &|_| true);
        let flavors = n(Kind::Flavor, &|_| true);
        let networks = n(Kind::Network, &|_| true);
        let projects = n(Kind::Project, &|_| true);
        per_dc.push(serde_json::json!({
            "dc": dc.name, "machines_deployed": deployed, "vms_running": running,
            "vms_ha_managed": ha, "ha_rules": rules,
            "flavors": flavors, "networks": networks, "projects": projects,
        }));
        if !json {
            outln!(
                "  {:<5} MAAS: {deployed} machines deployed · Proxmox: {running} VMs running ({ha} HA-managed, {rules} HA rules) · OpenStack: {flavors} flavors, {networks} provider networks, {projects} team projects",
                dc.name
            )?;
        }
    }
    let calls: u64 = providers.iter().map(|p| p.calls()).sum();
    if !json {
        outln!(
            "\nthrough strata serve in {seconds:.1}s ({calls} API calls from this check); a second plan shows {} changes{}",
            again.counts().total(),
            if again.is_empty() { ": converged" } else { "" }
        )?;
        let doc = twin.endpoints();
        let d0 = &doc["dcs"][0];
        let dir = endpoints
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        outln!(
            "\nExplore the twin with real clients (the venv from scripts/install-test-deps.sh has them):"
        )?;
        outln!(
            "  /opt/strata-tools/bin/python -c \"from proxmoxer import ProxmoxAPI; p = ProxmoxAPI('{}', port={}, user='{}', token_name='{}', token_value='{}', verify_ssl='{dir}/twin-ca.pem'); print([v['name'] for v in p.cluster.resources.get(type='vm')])\"",
            url_host(d0["proxmox"]["url"].as_str().unwrap_or("")),
            url_port(d0["proxmox"]["url"].as_str().unwrap_or("")),
            d0["proxmox"]["token_id"]
                .as_str()
                .unwrap_or("")
                .split('!')
                .next()
                .unwrap_or(""),
            d0["proxmox"]["token_id"]
                .as_str()
                .unwrap_or("")
                .split('!')
                .nth(1)
                .unwrap_or(""),
            d0["proxmox"]["token_secret"].as_str().unwrap_or(""),
        )?;
        outln!(
            "  OS_CLIENT_CONFIG_FILE={dir}/clouds.yaml /opt/strata-tools/bin/openstack --os-cloud {} flavor list",
            d0["name"].as_str().unwrap_or("")
        )?;
        outln!(
            "  strata plan examples/fleet --targets {} --detailed-exitcode",
            endpoints.display()
        )?;
        outln!(
            "  curl -s {}counters | head",
            doc["twin"]["admin"].as_str().unwrap_or("")
        )?;
        outln!(
            "  curl -s -H \"Authorization: Bearer $(cat {})\" http://{}/api/v1/workflows?kind=onboard",
            served.token_file.display(),
            served.running.addr
        )?;
        // The seeded admin token, shown this once (it is also in the 0600 file).
        if let Ok(t) = std::fs::read_to_string(&served.token_file) {
            outln!(
                "\nAdmin API token (fleet admin; shown once, kept in {}):\n  {}",
                served.token_file.display(),
                t.trim()
            )?;
        }
    }
    let summary = serde_json::json!({
        "endpoints": endpoints.display().to_string(),
        "server": format!("http://{}", served.running.addr),
        "plan": served.plan_counts,
        "apply_succeeded": served.applied,
        "apply_seconds": seconds,
        "onboarded": served.in_service,
        "quarantined": served.quarantined,
        "api_calls": calls,
        "converged": again.is_empty(),
        "dcs": per_dc,
    });
    if !a.exit {
        if !json {
            outln!("\nThe twin and strata serve keep running; press Ctrl-C to stop.")?;
        }
        crate::cmd::twin::wait_for_signal().await;
    }
    served.running.stop().await;
    twin.shutdown().await?;
    Ok(summary)
}

fn url_host(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|r| r.rsplit_once(':'))
        .map(|(h, _)| h.to_string())
        .unwrap_or_default()
}

fn url_port(url: &str) -> String {
    url.rsplit_once(':')
        .map(|(_, p)| p.trim_end_matches('/').to_string())
        .unwrap_or_default()
}

/// What the demo's server did.
struct Served {
    running: strata_server::Running,
    token_file: std::path::PathBuf,
    plan_counts: serde_json::Value,
    applied: bool,
    in_service: usize,
    quarantined: usize,
}

/// Run git in `dir` without user configuration.
fn git(dir: &std::path::Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=strata demo",
            "-c",
            "user.email=demo@strata.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| anyhow::anyhow!("the demo keeps the example fleet in a Git repository and needs git ({e}); install it: apt-get install git"))?;
    if !out.status.success() {
        anyhow::bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The example fleet through `strata serve`: committed to a Git repository, planned by
/// the server, the bring-up approved (as an operator would), applied, and every
/// machine onboarded from enlisted to in service by its own workflow.
async fn serve_fleet(
    a: &DemoArgs,
    out: &std::path::Path,
    endpoints: &std::path::Path,
    secrets: Arc<dyn SecretResolver>,
    json: bool,
) -> Result<Served> {
    let repo = out.join("spec");
    for (path, text) in EXAMPLE {
        let rel = path.strip_prefix("examples/fleet/").unwrap_or(path);
        let dst = repo.join(rel);
        if let Some(d) = dst.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&dst, text)?;
    }
    std::fs::write(repo.join("fleet.lock"), EXAMPLE_LOCK)?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["add", "-A"])?;
    git(
        &repo,
        &["commit", "-q", "--allow-empty", "-m", "the example fleet"],
    )?;
    let sha = git(&repo, &["rev-parse", "HEAD"])?;
    let token_file = out.join("admin.token");
    let _ = std::fs::remove_file(&token_file);
    let mut listen = a.listen;
    listen.set_port(0);
    let cfg = strata_server::Config {
        spec_repo: repo.display().to_string(),
        branch: "main".into(),
        spec_path: String::new(),
        targets: endpoints.to_path_buf(),
        database: format!("sqlite:{}", out.join("strata.db").display()),
        listen,
        state_dir: out.join("server"),
        poll_interval: std::time::Duration::from_secs(2),
        reconcile_interval: std::time::Duration::from_secs(300),
        github_secret: None,
        gitlab_token: None,
        admin_token_file: Some(token_file.clone()),
        instance: "demo".into(),
        secrets,
        lease_ttl: std::time::Duration::from_secs(9),
        workers: 16,
        maas_concurrency: 50,
        rate_limit: 200,
        oidc: None,
        secrets_key_file: None,
    };
    let _ = std::fs::remove_file(out.join("strata.db"));
    let running = strata_server::start(cfg)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !json {
        outln!(
            "\nstrata serve on http://{} follows {} (commit {})",
            running.addr,
            repo.display(),
            &sha[..12.min(sha.len())]
        )?;
    }
    let store = &running.server.store;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let mut approved = false;
    let commit = loop {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the server did not apply the example fleet in time"
        );
        match store.commit(&sha).await? {
            Some(c) if c.state == "waiting" && !approved => {
                let r = c.result.unwrap_or_default();
                let hash = r["plan_hash"].as_str().unwrap_or_default().to_string();
                if !json {
                    outln!(
                        "  the bring-up plan waits for an approval: {}",
                        r["decision"]["reasons"][0].as_str().unwrap_or("")
                    )?;
                    outln!(
                        "  approving it as an operator would (POST /api/v1/plans/{}…/approve)",
                        &hash[..12.min(hash.len())]
                    )?;
                }
                strata_server::approve(&running.server, &hash, "demo")
                    .await
                    .map_err(|e| anyhow::anyhow!("approval refused: {e:?}"))?;
                approved = true;
            }
            Some(c)
                if matches!(
                    c.state.as_str(),
                    "applied" | "failed" | "invalid" | "blocked"
                ) =>
            {
                break c;
            }
            _ => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    let result = commit.result.clone().unwrap_or_default();
    let applied = commit.state == "applied";
    if !json {
        outln!(
            "  commit {}: {} (create {}, adopt {}, update {})",
            &sha[..12.min(sha.len())],
            commit.state,
            result["counts"]["create"],
            result["counts"]["adopt"],
            result["counts"]["update"]
        )?;
    }
    // Each machine onboards in its own workflow: purchased → in service.
    let (in_service, quarantined) = loop {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the machines did not finish onboarding in time"
        );
        let flows = store.workflows(Some("onboard"), 500).await?;
        if flows.iter().all(|(_, _, _, state)| state != "running") {
            let mut ok = 0;
            let mut q = 0;
            for (id, _, _, _) in &flows {
                match store.evidence(id, 0).await? {
                    Some(e) if e.get("quarantined").is_some() => q += 1,
                    _ => ok += 1,
                }
            }
            break (ok, q);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    if !json {
        outln!(
            "  {in_service} machines onboarded by the server (enlisted → commissioned → hardware validated against their profile → deployed → in service), {quarantined} quarantined"
        )?;
    }
    Ok(Served {
        running,
        token_file,
        plan_counts: result["counts"].clone(),
        applied,
        in_service,
        quarantined,
    })
}
