//! The workflows the server runs and what each step does.
//!
//! - `commit` (key `commit:{sha}`): `plan` then `apply`.
//! - `approved` (key `approved:{hash}`): `apply` of an approved plan.
//! - `reconcile` (key `reconcile:{sha}:{n}`): `drift` — re-plan the last applied
//!   commit; report what differs, or correct it where the policy allows.
//!
//! Every step is safe to run again: planning has no side effect, and applying
//! re-observes first and goes through the apply journal, so a step taken over after a
//! crash carries on from what is already done.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use strata_apply::{ApplyOptions, Journal, LoopOptions, Quiet, StepStatus};
use strata_diagnostics::Diagnostic;
use strata_fleet::Lock;
use strata_plan::{Kind, Plan, Platform, ResourceSet, SavedPlan, owner_tag};
use strata_providers::Provider;
use strata_spec::model::{DriftAction, Policy};
use strata_store::{Claim, Failed, StepSpec, now_ms};
use tokio::sync::watch;
use tracing::Instrument;

use crate::lifecycle;
use crate::policy::{self, Decision};
use crate::{Server, ServerError};

/// Why a step did not finish.
#[derive(Debug)]
enum StepError {
    /// Worth another attempt (a platform did not answer, the store hiccuped).
    Retry(String),
}

impl<E: std::fmt::Display> From<E> for StepError {
    fn from(e: E) -> Self {
        StepError::Retry(e.to_string())
    }
}

type StepResult = Result<Value, StepError>;

const LOCK_KEY: &str = "lock";
/// How long a claim holds a step without renewal. A running step renews it every third
/// of this, so a live worker keeps its step and a dead one's step is taken over this
/// long after it died.
const STEP_LEASE: Duration = Duration::from_secs(30);
const APPLIED_KEY: &str = "applied-commit";

fn step(name: &str, attempts: u32, timeout: Duration) -> StepSpec {
    StepSpec {
        max_attempts: attempts,
        timeout,
        ..StepSpec::new(name)
    }
}

/// Start the workflow of commit `sha` (idempotent).
pub async fn start_commit(s: &Server, sha: &str) -> Result<(), ServerError> {
    s.store
        .start(
            &format!("commit:{sha}"),
            "commit",
            sha,
            &[step("plan", 5, STEP_LEASE), step("apply", 5, STEP_LEASE)],
        )
        .await?;
    Ok(())
}

/// Start a reconcile of the last applied commit, once per interval. Returns whether
/// one was started.
pub async fn start_reconcile(s: &Server) -> Result<bool, ServerError> {
    let Some(sha) = s.store.get_value(APPLIED_KEY).await? else {
        return Ok(false);
    };
    let slot = now_ms() / (s.cfg.reconcile_interval.as_millis().max(1) as i64);
    let (_, new) = s
        .store
        .start(
            &format!("reconcile:{sha}:{slot}"),
            "reconcile",
            &sha,
            &[step("drift", 3, STEP_LEASE)],
        )
        .await?;
    Ok(new)
}

/// Start applying an approved plan (idempotent).
pub async fn start_approved(s: &Server, hash: &str) -> Result<String, ServerError> {
    let (id, _) = s
        .store
        .start(
            &format!("approved:{hash}"),
            "approved",
            hash,
            &[step("apply", 5, STEP_LEASE)],
        )
        .await?;
    s.work.notify_one();
    Ok(id)
}

/// `cfg.workers` claimers, each running one step at a time.
pub async fn worker_loop(s: Arc<Server>, rx: watch::Receiver<bool>) {
    let tasks: Vec<_> = (0..s.cfg.workers.max(1))
        .map(|_| tokio::spawn(claimer(s.clone(), rx.clone())))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

async fn claimer(s: Arc<Server>, mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        let mut claimed = false;
        if s.is_leader() {
            match s
                .store
                .claim(&s.cfg.instance, Some(s.fencing()), now_ms())
                .await
            {
                Ok(Some(c)) => {
                    claimed = true;
                    run_claim(&s, c).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim a step"),
            }
        }
        if !claimed {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = s.work.notified() => {}
                _ = rx.wait_for(|x| *x) => return,
            }
        }
    }
}

async fn run_claim(s: &Arc<Server>, c: Claim) {
    let span = tracing::info_span!("step", workflow = %c.workflow, kind = %c.kind, step = %c.name, attempt = c.attempt);
    run_claim_in(s, c).instrument(span).await;
}

async fn run_claim_in(s: &Arc<Server>, c: Claim) {
    // Renew the step's lease while it runs; stop renewing when it ends.
    let (done_tx, mut done_rx) = watch::channel(false);
    let beat = {
        let s = s.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let every = STEP_LEASE / 3;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = done_rx.wait_for(|d| *d) => return,
                }
                let until = now_ms() + STEP_LEASE.as_millis() as i64;
                if !matches!(s.store.heartbeat(&c, until).await, Ok(true)) {
                    return;
                }
            }
        })
    };
    let lifecycle = |r: Result<lifecycle::StepOutcome, lifecycle::Retry>| match r {
        Ok(lifecycle::StepOutcome::Done(v)) => Ok((v, None)),
        Ok(lifecycle::StepOutcome::Halt(v, why)) => Ok((v, Some(why))),
        Err(lifecycle::Retry(e)) => Err(StepError::Retry(e)),
    };
    let result = match (c.kind.as_str(), c.name.as_str()) {
        ("commit", "plan") => plan_commit(s, &c.subject).await.map(|v| (v, None)),
        ("commit", "apply") => apply_commit(s, &c).await.map(|v| (v, None)),
        ("approved", "apply") => apply_approved(s, &c).await.map(|v| (v, None)),
        ("reconcile", "drift") => reconcile(s, &c).await.map(|v| (v, None)),
        ("onboard", _) => onboard(s, &c).await.map(|v| (v, None)),
        ("upgrade", _) => lifecycle(lifecycle::upgrade_step(s, &c).await),
        ("decommission", _) => lifecycle(lifecycle::decommission_step(s, &c).await),
        ("request", _) => lifecycle(crate::requests::step(s, &c).await),
        (k, n) => Ok((json!({"skipped": format!("no handler for {k}/{n}")}), None)),
    };
    let _ = done_tx.send(true);
    let _ = beat.await;
    match result {
        Ok((evidence, Some(why))) => {
            s.metrics.step(&c.kind, &c.name, "stopped");
            tracing::warn!(reason = %why, "workflow stopped");
            match s.store.halt(&c, &evidence, &why).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("step finished after its claim was taken over; result dropped")
                }
                Err(e) => tracing::warn!(error = %e, "cannot record a stopped workflow"),
            }
        }
        Ok((evidence, None)) => {
            s.metrics.step(&c.kind, &c.name, "done");
            match s.store.complete(&c, &evidence).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("step finished after its claim was taken over; result dropped")
                }
                Err(e) => tracing::warn!(error = %e, "cannot record a finished step"),
            }
        }
        Err(StepError::Retry(e)) => {
            s.metrics.step(&c.kind, &c.name, "failed");
            tracing::warn!(error = %e, "step failed");
            match s.store.fail(&c, &e, now_ms()).await {
                Ok(Failed::Exhausted) => {
                    if c.kind == "commit" {
                        let _ = s
                            .store
                            .set_commit(&c.subject, "failed", Some(&json!({"error": e})))
                            .await;
                        s.metrics
                            .commits
                            .get_or_create(&crate::metrics::StateLabels {
                                state: "failed".into(),
                            })
                            .inc();
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot record a failed step"),
            }
        }
    }
}

/// What a commit compiles to.
struct Prepared {
    diagnostics: Value,
    has_errors: bool,
    fleet_id: String,
    dcs: Vec<String>,
    desired: ResourceSet,
    policy: Policy,
    lock_text: String,
    lock_behind: bool,
    /// The compiled fleet (`None` when the commit has errors).
    fleet: Option<Arc<strata_fleet::Fleet>>,
}

/// The last commit compiled, by commit and applied lock: onboarding steps of many
/// machines prepare the same commit, and compile it once.
#[derive(Default)]
pub(crate) struct PreparedCache(std::sync::Mutex<Option<(String, Arc<Prepared>)>>);

/// Read commit `sha` and run the pure pipeline (once per commit and applied lock).
async fn prepare(s: &Server, sha: &str) -> Result<Arc<Prepared>, StepError> {
    // Keyed by when the applied lock was last written, not by its text: the lock is
    // hundreds of kilobytes, and every API read of the inventory comes through here.
    let written = s.store.value_written_ms(LOCK_KEY).await?;
    let key = format!("{sha}:{}", written.unwrap_or(0));
    let cached = |c: &PreparedCache| {
        let slot = c.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, p)| p.clone())
    };
    if let Some(p) = cached(&s.prepared) {
        return Ok(p);
    }
    let applied = s.store.get_value(LOCK_KEY).await?;
    let p = Arc::new(compile(s, sha, applied.as_deref()).await?);
    *s.prepared.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, p.clone()));
    Ok(p)
}

/// Read commit `sha` and run the pure pipeline. The lock is the commit's
/// `fleet.lock` plus every allocation the server already applied (`applied`) that it
/// lacks, so that a commit without an updated lock never moves an address.
async fn compile(s: &Server, sha: &str, applied: Option<&str>) -> Result<Prepared, StepError> {
    let repo = s.repo.clone();
    let sha_owned = sha.to_string();
    let files = tokio::task::spawn_blocking(move || {
        repo.files_at(&sha_owned, &strata_spec::Limits::default())
    })
    .await??;
    let mut read = files.diagnostics;
    let mut lock = match files.lock_text.as_deref().map(Lock::parse) {
        None => Lock::new(),
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            read.push(
                Diagnostic::new(strata_diagnostics::codes::S0601, format!("fleet.lock: {e}"))
                    .help("restore fleet.lock from an earlier commit, or delete it to re-allocate"),
            );
            Lock::new()
        }
    };
    let mut lock_behind = false;
    if let Some(applied) = applied
        && let Ok(applied) = Lock::parse(applied)
    {
        lock_behind = lock.merge_missing(&applied) > 0;
    }
    let an = strata_check::analyze(
        &files.sources,
        read,
        &lock,
        files.lock_text.as_deref(),
        false,
    );
    let diagnostics = strata_diagnostics::render_json(&an.diagnostics, &files.sources);
    let has_errors = an.has_errors();
    let policy = an
        .spec
        .policy
        .as_ref()
        .map(|p| p.value.clone())
        .unwrap_or_default();
    let (fleet_id, dcs, desired) = match &an.fleet {
        Some(f) if !has_errors => (
            f.organisation.fleet_id.clone(),
            f.dcs.iter().map(|d| d.name.clone()).collect(),
            strata_plan::desired(f)?,
        ),
        _ => (String::new(), Vec::new(), ResourceSet::default()),
    };
    Ok(Prepared {
        diagnostics,
        has_errors,
        fleet_id,
        dcs,
        desired,
        policy,
        lock_text: an.lock.to_text(),
        lock_behind: lock_behind || an.lock_changed,
        fleet: an.fleet.filter(|_| !has_errors).map(Arc::new),
    })
}

/// The compiled fleet of the last applied commit (`None` before the first apply).
pub(crate) async fn applied_fleet(
    s: &Server,
) -> Result<Option<(String, Arc<strata_fleet::Fleet>)>, String> {
    let Some(sha) = s
        .store
        .get_value(APPLIED_KEY)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let p = prepare(s, &sha).await.map_err(|StepError::Retry(e)| e)?;
    Ok(p.fleet.clone().map(|f| (sha, f)))
}

/// Providers for the targets file's DCs (which must be the fleet's).
fn providers(
    s: &Server,
    fleet_id: &str,
    dcs: &[String],
    desired: &ResourceSet,
) -> Result<Vec<Arc<dyn Provider>>, StepError> {
    Ok(strata_providers::providers_for_fleet(
        &s.cfg.targets,
        dcs,
        fleet_id,
        s.cfg.secrets.clone(),
        desired,
    )?)
}

/// Observe and diff; secrets the plan needs must resolve.
async fn observe_plan(
    s: &Server,
    desired: &ResourceSet,
    providers: &[Arc<dyn Provider>],
    policy: &Policy,
) -> Result<(Plan, Vec<(String, Platform)>), StepError> {
    let planned = strata_apply::plan(desired, providers, &s.cfg.journal_location()).await?;
    let mut plan = planned.plan;
    let missing = strata_providers::secrets::unresolved(&plan, providers, s.cfg.secrets.as_ref());
    if !missing.is_empty() {
        let lines: Vec<String> = missing.iter().map(ToString::to_string).collect();
        return Err(StepError::Retry(format!(
            "secret reference(s) the plan needs cannot be resolved: {}",
            lines.join("; ")
        )));
    }
    plan.limit_reboots(policy.max_destroy_percent.value);
    Ok((plan, planned.scopes))
}

fn counts(plan: &Plan) -> Value {
    serde_json::to_value(plan.counts()).unwrap_or(Value::Null)
}

async fn plan_commit(s: &Server, sha: &str) -> StepResult {
    let seen = s.store.commit(sha).await?.map(|c| c.seen_ms);
    let p = prepare(s, sha).await?;
    if p.has_errors {
        let result = json!({"decision": "invalid", "diagnostics": p.diagnostics});
        s.store.set_commit(sha, "invalid", Some(&result)).await?;
        s.metrics
            .commits
            .get_or_create(&crate::metrics::StateLabels {
                state: "invalid".into(),
            })
            .inc();
        return Ok(result);
    }
    let providers = providers(s, &p.fleet_id, &p.dcs, &p.desired)?;
    let (plan, scopes) = observe_plan(s, &p.desired, &providers, &p.policy).await?;
    let plan = without_onboarding(s, plan).await?;
    let decision = policy::decide(&plan, &p.policy, now_ms());
    let saved = SavedPlan::new(
        &p.fleet_id,
        env!("CARGO_PKG_VERSION"),
        &format!("git:{sha}"),
        &p.desired,
        &scopes,
        &plan,
    );
    let hash = saved.digest.clone();
    let reasons = match &decision {
        Decision::Wait { reasons } | Decision::Blocked { reasons } => reasons.clone(),
        _ => Vec::new(),
    };
    s.store
        .save_plan(
            &hash,
            sha,
            "commit",
            decision.state(),
            &reasons,
            &saved.to_json(),
        )
        .await?;
    // The newest commit's plan replaces any older one still waiting.
    s.store.supersede_waiting(&hash).await?;
    s.store
        .put_value(&format!("compiled-lock:{sha}"), &p.lock_text)
        .await?;
    let summary = policy::summary_markdown(sha, &plan, &decision, Some(&hash));
    let result = json!({
        "decision": decision,
        "plan_hash": hash,
        "counts": counts(&plan),
        "summary": summary,
        "diagnostics": p.diagnostics,
        "lock_behind": p.lock_behind,
    });
    s.store
        .set_commit(sha, decision.state(), Some(&result))
        .await?;
    if let Some(seen) = seen {
        s.metrics
            .commit_to_plan
            .observe((now_ms() - seen).max(0) as f64 / 1000.0);
    }
    if decision == Decision::UpToDate {
        s.store.put_value(APPLIED_KEY, sha).await?;
        s.store.put_value(LOCK_KEY, &p.lock_text).await?;
    }
    refresh_waiting(s).await;
    Ok(result)
}

async fn refresh_waiting(s: &Server) {
    if let Ok(w) = s.store.plans(Some("waiting"), 500).await {
        s.metrics.waiting_plans.set(w.len() as i64);
    }
}

/// What an apply works on: the fleet, its desired state and the platforms.
struct Target<'a> {
    fleet_id: &'a str,
    desired: &'a ResourceSet,
    providers: &'a [Arc<dyn Provider>],
}

/// Carry out `plan` (planned from the target's desired state); `saved` limits later
/// rounds to its steps.
async fn execute(
    s: &Server,
    claim: &Claim,
    t: Target<'_>,
    plan: Plan,
    saved: Option<&SavedPlan>,
    max_destroy_percent: f64,
) -> Result<(bool, Value), StepError> {
    let Target {
        fleet_id,
        desired,
        providers,
    } = t;
    // A paused old leader must not act: check the fencing counter right before.
    lifecycle::fenced(s, claim)
        .await
        .map_err(|lifecycle::Retry(e)| StepError::Retry(e))?;
    let journal_at = s.cfg.journal_location();
    let journal = Journal::open_at(&journal_at).await?;
    let opts = LoopOptions {
        apply: ApplyOptions {
            max_destroy_percent,
            ..ApplyOptions::default()
        },
        ..LoopOptions::default()
    };
    let report = strata_apply::converge(
        desired,
        plan,
        providers,
        &journal,
        &journal_at,
        &owner_tag(fleet_id),
        saved,
        &opts,
        &Quiet,
    )
    .await;
    journal.close().await;
    let report = report?;
    let failed: Vec<Value> = report
        .results
        .iter()
        .filter(|r| r.status == StepStatus::Failed)
        .map(|r| json!({"resource": r.resource, "error": r.error}))
        .collect();
    Ok((
        report.succeeded(),
        json!({
            "succeeded": report.succeeded(),
            "done": report.count(StepStatus::Done),
            "failed": report.count(StepStatus::Failed),
            "skipped": report.count(StepStatus::Skipped),
            "rounds": report.rounds,
            "errors": failed,
            "unreviewed": report.unreviewed,
        }),
    ))
}

async fn finish_commit(s: &Server, sha: &str, ok: bool, outcome: &Value) -> Result<(), StepError> {
    let mut result = s
        .store
        .commit(sha)
        .await?
        .and_then(|c| c.result)
        .unwrap_or_else(|| json!({}));
    result["outcome"] = outcome.clone();
    let state = if ok { "applied" } else { "failed" };
    s.store.set_commit(sha, state, Some(&result)).await?;
    s.metrics
        .commits
        .get_or_create(&crate::metrics::StateLabels {
            state: state.into(),
        })
        .inc();
    if ok {
        s.store.put_value(APPLIED_KEY, sha).await?;
        if let Some(lock) = s.store.get_value(&format!("compiled-lock:{sha}")).await? {
            s.store.put_value(LOCK_KEY, &lock).await?;
        }
    }
    Ok(())
}

async fn apply_commit(s: &Server, c: &Claim) -> StepResult {
    let plan_evidence = s
        .store
        .evidence(&c.workflow, 0)
        .await?
        .unwrap_or(Value::Null);
    if plan_evidence["decision"]["decision"] != "apply" {
        return Ok(json!({"skipped": "the policy did not allow applying this plan automatically"}));
    }
    let sha = &c.subject;
    // A newer commit replaces this one: apply only the newest.
    if let Some(newest) = s.store.commits(1, None).await?.first()
        && newest.sha != *sha
    {
        s.store.set_commit(sha, "superseded", None).await?;
        return Ok(json!({"skipped": format!("superseded by {}", newest.sha)}));
    }
    // Level-triggered: plan again from what the platforms hold now, and decide again.
    let p = prepare(s, sha).await?;
    let providers = providers(s, &p.fleet_id, &p.dcs, &p.desired)?;
    let (plan, _) = observe_plan(s, &p.desired, &providers, &p.policy).await?;
    let plan = without_onboarding(s, plan).await?;
    let decision = policy::decide(&plan, &p.policy, now_ms());
    match decision {
        Decision::Apply => {}
        Decision::UpToDate => {
            let outcome = json!({"succeeded": true, "done": 0, "note": "nothing left to do"});
            finish_commit(s, sha, true, &outcome).await?;
            return Ok(outcome);
        }
        other => {
            // The platforms changed since the plan: this one now needs a person.
            let result = json!({"replanned": other});
            s.store.set_commit(sha, other.state(), None).await?;
            return Ok(result);
        }
    }
    s.store.set_commit(sha, "applying", None).await?;
    // Machines to onboard get a workflow each, once the rest (the VLANs, subnets and
    // tags they depend on) is applied.
    let (machines, rest): (Vec<_>, Vec<_>) = plan.steps.into_iter().partition(onboarding);
    let plan = Plan {
        steps: rest,
        ..plan
    };
    let ids: Vec<String> = machines.iter().map(|m| m.id.to_string()).collect();
    let hash = plan_evidence["plan_hash"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (ok, outcome) = execute(
        s,
        c,
        Target {
            fleet_id: &p.fleet_id,
            desired: &p.desired,
            providers: &providers,
        },
        plan,
        None,
        p.policy.max_destroy_percent.value,
    )
    .await?;
    let onboarding = start_onboarding(s, sha, &ids).await?;
    let mut outcome = outcome;
    outcome["onboarding"] = json!(onboarding);
    let _ = s
        .store
        .move_plan(&hash, "applying", if ok { "applied" } else { "failed" })
        .await;
    finish_commit(s, sha, ok, &outcome).await?;
    Ok(outcome)
}

async fn apply_approved(s: &Server, c: &Claim) -> StepResult {
    let hash = &c.subject;
    let Some(view) = s.store.plan(hash).await? else {
        return Ok(json!({"skipped": "no such plan"}));
    };
    if view.state != "approved" {
        return Ok(json!({"skipped": format!("the plan is {}", view.state)}));
    }
    let saved = SavedPlan::from_json(&view.saved)?;
    let dcs = saved.dcs();
    let providers = providers(s, &saved.fleet_id, &dcs, &saved.desired)?;
    let planned = strata_apply::plan(&saved.desired, &providers, &s.cfg.journal_location()).await?;
    let mut plan = without_onboarding(s, planned.plan).await?;
    // The approval was checked against the platforms when it was given. Here, on a
    // retry after a crash, part of the plan may be done: what is left must be a part
    // of the approved plan, nothing else.
    let approved: std::collections::BTreeSet<String> = saved
        .plan
        .steps
        .iter()
        .map(|st| format!("{:?} {}", st.action, st.id))
        .collect();
    let extra: Vec<String> = plan
        .steps
        .iter()
        .map(|st| format!("{:?} {}", st.action, st.id))
        .filter(|k| !approved.contains(k))
        .collect();
    if !extra.is_empty() {
        s.store.move_plan(hash, "approved", "stale").await?;
        let outcome = json!({"succeeded": false, "stale": extra});
        finish_commit(s, &view.commit_sha, false, &outcome).await?;
        return Ok(outcome);
    }
    plan.limit_reboots(100.0);
    let (machines, rest): (Vec<_>, Vec<_>) = plan.steps.into_iter().partition(onboarding);
    let plan = Plan {
        steps: rest,
        ..plan
    };
    let ids: Vec<String> = machines.iter().map(|m| m.id.to_string()).collect();
    let (ok, outcome) = execute(
        s,
        c,
        Target {
            fleet_id: &saved.fleet_id,
            desired: &saved.desired,
            providers: &providers,
        },
        plan,
        Some(&saved),
        100.0,
    )
    .await?;
    let onboarding = start_onboarding(s, &view.commit_sha, &ids).await?;
    let mut outcome = outcome;
    outcome["onboarding"] = json!(onboarding);
    s.store
        .move_plan(hash, "approved", if ok { "applied" } else { "failed" })
        .await?;
    if view.origin == "commit" {
        finish_commit(s, &view.commit_sha, ok, &outcome).await?;
    }
    refresh_waiting(s).await;
    Ok(outcome)
}

async fn reconcile(s: &Server, c: &Claim) -> StepResult {
    let sha = c.subject.as_str();
    s.metrics.reconciles.inc();
    let p = prepare(s, sha).await?;
    if p.has_errors {
        return Ok(json!({"skipped": "the applied commit no longer compiles"}));
    }
    let providers = providers(s, &p.fleet_id, &p.dcs, &p.desired)?;
    let (plan, scopes) = observe_plan(s, &p.desired, &providers, &p.policy).await?;
    s.metrics.drift_resources.set(plan.steps.len() as i64);
    if plan.is_empty() && plan.conflicts.is_empty() {
        return Ok(json!({"drift": 0}));
    }
    let decision = policy::decide(&plan, &p.policy, now_ms());
    let correct = p.policy.drift == DriftAction::Correct && decision == Decision::Apply;
    let drifted: Vec<String> = plan
        .steps
        .iter()
        .map(|st| format!("{} {}", st.action.symbol(), st.id))
        .collect();
    if correct {
        let (ok, outcome) = execute(
            s,
            c,
            Target {
                fleet_id: &p.fleet_id,
                desired: &p.desired,
                providers: &providers,
            },
            plan,
            None,
            p.policy.max_destroy_percent.value,
        )
        .await?;
        return Ok(json!({"drift": drifted, "corrected": ok, "outcome": outcome}));
    }
    let mut reasons = vec![format!(
        "drift: {} resource(s) differ from the applied commit {}",
        drifted.len(),
        sha.get(..12).unwrap_or(sha)
    )];
    if p.policy.drift == DriftAction::Report {
        reasons.push("policy.drift is `report`: correcting needs an approval".into());
    }
    if let Decision::Wait { reasons: r } | Decision::Blocked { reasons: r } = &decision {
        reasons.extend(r.iter().cloned());
    }
    let saved = SavedPlan::new(
        &p.fleet_id,
        env!("CARGO_PKG_VERSION"),
        &format!("git:{sha}"),
        &p.desired,
        &scopes,
        &plan,
    );
    let state = if matches!(decision, Decision::Blocked { .. }) {
        "blocked"
    } else {
        "waiting"
    };
    s.store
        .save_plan(
            &saved.digest,
            sha,
            "drift",
            state,
            &reasons,
            &saved.to_json(),
        )
        .await?;
    refresh_waiting(s).await;
    Ok(json!({"drift": drifted, "plan_hash": saved.digest, "reasons": reasons}))
}

/// Why an approval was not accepted.
#[derive(Debug)]
pub enum ApproveError {
    NotFound,
    /// The plan is not waiting (applied, superseded, approved already…).
    NotWaiting(String),
    /// The platforms changed since the plan was made: what differs.
    Stale(String),
    /// The platforms could not be observed.
    Unavailable(String),
    Store(String),
}

impl From<strata_store::StoreError> for ApproveError {
    fn from(e: strata_store::StoreError) -> Self {
        ApproveError::Store(e.to_string())
    }
}

/// Approve plan `hash` for `approver`: accepted only while the plan waits and only if
/// planning now gives exactly the same steps (the approval binds to what was
/// reviewed). Every attempt is recorded. Returns the apply workflow's id.
pub async fn approve(s: &Server, hash: &str, approver: &str) -> Result<String, ApproveError> {
    let Some(view) = s.store.plan(hash).await? else {
        return Err(ApproveError::NotFound);
    };
    if view.state != "waiting" {
        s.store
            .record_approval(
                hash,
                approver,
                "refused",
                &format!("plan is {}", view.state),
            )
            .await?;
        return Err(ApproveError::NotWaiting(view.state));
    }
    let saved =
        SavedPlan::from_json(&view.saved).map_err(|e| ApproveError::Store(e.to_string()))?;
    let dcs = saved.dcs();
    let unavailable = |e: StepError| match e {
        StepError::Retry(m) => ApproveError::Unavailable(m),
    };
    let providers = providers(s, &saved.fleet_id, &dcs, &saved.desired).map_err(unavailable)?;
    let planned = strata_apply::plan(&saved.desired, &providers, &s.cfg.journal_location())
        .await
        .map_err(|e| ApproveError::Unavailable(e.to_string()))?;
    let fresh = without_onboarding(s, planned.plan)
        .await
        .map_err(unavailable)?;
    if let Err(stale) = saved.check_current(&fresh) {
        let detail = format!("the platforms changed since the plan was made: {stale}");
        s.store.move_plan(hash, "waiting", "stale").await?;
        s.store
            .record_approval(hash, approver, "refused", &detail)
            .await?;
        refresh_waiting(s).await;
        return Err(ApproveError::Stale(detail));
    }
    if !s.store.move_plan(hash, "waiting", "approved").await? {
        return Err(ApproveError::NotWaiting(
            "approved or replaced while this approval was checked".into(),
        ));
    }
    s.store
        .record_approval(hash, approver, "accepted", "")
        .await?;
    refresh_waiting(s).await;
    start_approved(s, hash)
        .await
        .map_err(|e| ApproveError::Store(e.to_string()))
}

// ---------------------------------------------------------------------------
// Onboarding: one durable workflow per machine, purchased → in service.

/// The machine steps of `plan` that take a machine MAAS knows (or will enlist) to
/// Deployed: commissioned, validated against its profile and deployed by an
/// onboarding workflow each, not inside a commit's apply. Machines that already run
/// (registered as deployed) and machines already deployed stay in the plan.
fn onboarding(step: &strata_plan::Step) -> bool {
    if step.id.kind != Kind::Machine || step.action == strata_plan::Action::Delete {
        return false;
    }
    let Some(d) = &step.desired else { return false };
    let spec: strata_plan::MachineSpec = d.spec_as().unwrap_or_default();
    let observed = step
        .observed
        .as_ref()
        .and_then(|o| o.fields.get("status"))
        .and_then(Value::as_str);
    !spec.deployed
        && d.fields.get("status") == Some(&json!("Deployed"))
        && observed != Some("Deployed")
}

/// Machines whose onboarding workflow is running (by resource id).
async fn onboarding_in_flight(s: &Server) -> Result<Vec<String>, StepError> {
    Ok(s.store
        .running_subjects("onboard")
        .await?
        .into_iter()
        .filter_map(|subject| subject.split_once(' ').map(|(_, id)| id.to_string()))
        .collect())
}

/// `plan` without the steps of machines an onboarding workflow is taking care of.
async fn without_onboarding(s: &Server, mut plan: Plan) -> Result<Plan, StepError> {
    let busy = onboarding_in_flight(s).await?;
    plan.steps.retain(|st| !busy.contains(&st.id.to_string()));
    Ok(plan)
}

/// Start the onboarding of every machine in `machines` (idempotent per commit and
/// machine; a machine with an onboarding still running is left to it).
async fn start_onboarding(
    s: &Server,
    sha: &str,
    machines: &[String],
) -> Result<Vec<String>, StepError> {
    let running = onboarding_in_flight(s).await?;
    let mut started = Vec::new();
    for id in machines {
        if running.contains(id) {
            continue;
        }
        s.store
            .start(
                &format!("onboard:{sha}:{id}"),
                "onboard",
                &format!("{sha} {id}"),
                &[
                    // MAAS takes minutes per phase; a step retries with backoff
                    // (1 s, 2 s, … up to 5 minutes) before the machine's onboarding fails.
                    step("commission", 10, STEP_LEASE),
                    step("deploy", 10, STEP_LEASE),
                    // A node takes minutes to join after its first boot.
                    step("join", 10, STEP_LEASE),
                    step("in-service", 10, STEP_LEASE),
                ],
            )
            .await?;
        started.push(id.clone());
    }
    s.work.notify_waiters();
    Ok(started)
}

/// Plan machine `id` alone against its DC's MAAS: the step that takes it where
/// `status` says (`Ready`: commissioned and validated; `Deployed`), or `None` when it
/// is there already. Returns the providers too (the step acts through them).
async fn machine_step(
    s: &Server,
    sha: &str,
    id: &strata_plan::ResourceId,
    status: &str,
) -> Result<Option<(strata_plan::Step, Vec<Arc<dyn Provider>>, String)>, StepError> {
    let p = prepare(s, sha).await?;
    let Some(want) = p.desired.get(id).cloned() else {
        return Ok(None);
    };
    let mut only = ResourceSet::default();
    only.insert(want);
    let providers: Vec<Arc<dyn Provider>> = providers(s, &p.fleet_id, &p.dcs, &p.desired)?
        .into_iter()
        .filter(|pr| pr.dc() == id.dc && pr.platform() == Platform::Maas)
        .collect();
    let planned = strata_apply::plan(&only, &providers, &s.cfg.journal_location()).await?;
    let Some(mut st) = planned.plan.steps.into_iter().find(|st| st.id == *id) else {
        return Ok(None);
    };
    let observed = st
        .observed
        .as_ref()
        .and_then(|o| o.fields.get("status"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if status == "Ready" {
        if matches!(
            observed.as_deref(),
            Some("Deployed" | "Deploying" | "Allocated")
        ) {
            return Ok(None);
        }
        if let Some(d) = st.desired.as_mut() {
            d.fields.insert("status".into(), json!("Ready"));
        }
    }
    Ok(Some((st, providers, p.fleet_id.clone())))
}

/// Carry out one machine step through its provider, with the apply journal as the
/// intent log (a create interrupted by a crash is found again, not repeated).
async fn act_machine(
    s: &Server,
    claim: &Claim,
    st: &strata_plan::Step,
    providers: &[Arc<dyn Provider>],
    fleet_id: &str,
) -> Result<Result<strata_providers::Outcome, strata_providers::ProviderError>, StepError> {
    lifecycle::fenced(s, claim)
        .await
        .map_err(|lifecycle::Retry(e)| StepError::Retry(e))?;
    let Some(provider) = providers.first() else {
        return Err(StepError::Retry(format!(
            "no MAAS endpoint for {}",
            st.id.dc
        )));
    };
    let journal = Journal::open_at(&s.cfg.journal_location()).await?;
    let key = format!("{}#{:?}", st.id, st.action).to_lowercase();
    let owner = owner_tag(fleet_id);
    let ctx = strata_providers::ActContext {
        key: &key,
        intents: &journal,
        owner_tag: &owner,
    };
    let r = provider.act(st, &ctx).await;
    journal.close().await;
    Ok(r)
}

fn quarantined(e: &strata_providers::ProviderError) -> bool {
    matches!(e, strata_providers::ProviderError::Refused(m) if m.contains("is quarantined"))
}

async fn onboard(s: &Server, c: &Claim) -> StepResult {
    let Some((sha, id)) = c.subject.split_once(' ') else {
        return Ok(json!({"skipped": "malformed subject"}));
    };
    let id: strata_plan::ResourceId = id.parse().map_err(|e| StepError::Retry(format!("{e}")))?;
    // A quarantined machine goes no further.
    if c.step > 0
        && let Some(first) = s.store.evidence(&c.workflow, 0).await?
        && first.get("quarantined").is_some()
    {
        return Ok(json!({"skipped": "quarantined"}));
    }
    match c.name.as_str() {
        "commission" | "deploy" => {
            let status = if c.name == "commission" {
                "Ready"
            } else {
                "Deployed"
            };
            let Some((st, providers, fleet_id)) = machine_step(s, sha, &id, status).await? else {
                return Ok(json!({"machine": id.to_string(), "already": status}));
            };
            let _slot = s.maas_slot(&id.dc).await;
            match act_machine(s, c, &st, &providers, &fleet_id).await? {
                Ok(o) => Ok(json!({
                    "machine": id.to_string(),
                    "system_id": o.external_id,
                    "done": o.note,
                    "status": status,
                })),
                Err(e) if quarantined(&e) => {
                    tracing::warn!(machine = %id, "quarantined: {e}");
                    // An audit record, so the outbound webhooks carry it (crate::outbound).
                    crate::outbound::machine_record(
                        s,
                        c,
                        &id.dc,
                        crate::outbound::MachineKey::Serial(&id.name),
                        "machine.quarantine",
                        json!({"state": "quarantined", "reason": e.to_string()}),
                    )
                    .await;
                    Ok(json!({"machine": id.to_string(), "quarantined": e.to_string()}))
                }
                Err(e) => Err(StepError::Retry(e.to_string())),
            }
        }
        "join" => {
            let p = prepare(s, sha).await?;
            let Some(want) = p.desired.get(&id) else {
                return Ok(json!({"machine": id.to_string(), "skipped": "no longer in the spec"}));
            };
            let spec: strata_plan::MachineSpec = want.spec_as().unwrap_or_default();
            let hostname = want
                .fields
                .get("hostname")
                .and_then(Value::as_str)
                .unwrap_or(&id.name)
                .to_string();
            let gpus = spec
                .hardware
                .as_ref()
                .and_then(|h| h.gpus.as_ref())
                .map_or(0, |g| g.count);
            let role = spec.role.unwrap_or_default();
            match lifecycle::joined(s, &id.dc, &hostname, &role, gpus).await {
                Ok(v) => Ok(json!({"machine": id.to_string(), "joined": v})),
                Err(lifecycle::Retry(e)) => Err(StepError::Retry(e)),
            }
        }
        "in-service" => {
            // In service when MAAS has it Deployed with nothing left to change.
            match machine_step(s, sha, &id, "Deployed").await? {
                None => {
                    // An audit record, so the outbound webhooks carry it (crate::outbound).
                    crate::outbound::machine_record(
                        s,
                        c,
                        &id.dc,
                        crate::outbound::MachineKey::Serial(&id.name),
                        "machine.in-service",
                        json!({"state": "in-service"}),
                    )
                    .await;
                    Ok(json!({"machine": id.to_string(), "in_service": true}))
                }
                Some((st, _, _)) => Err(StepError::Retry(format!(
                    "{id} is not deployed as designed yet ({} change(s) left)",
                    st.changes.len()
                ))),
            }
        }
        other => Ok(json!({"skipped": format!("unknown onboarding step {other}")})),
    }
}
