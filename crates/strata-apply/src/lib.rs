//! The executor and the control loop: carries out a plan against the providers, and
//! ([`reconcile`]) observes, plans and requeues until the platforms match.
//!
//! - **Waves**: the first DC alone, then `wave_size` DCs at a time; a wave with a
//!   failed step stops the rollout before the next wave.
//! - **Order**: within a wave, a step starts once the steps it depends on have
//!   succeeded (a failed dependency skips its dependents); independent steps run
//!   concurrently up to `parallelism` (each endpoint also has its own limit);
//!   deletions run last, in plan order.
//! - **Blast radius**: a plan that deletes more than `max_destroy_percent` of a DC's
//!   owned objects is refused before anything runs.
//! - **Journal**: every step is written ahead to the [`journal::Journal`]; see there
//!   for how an interrupted apply converges on the next run.
//!
//! Architecture invariant: the executor decides order and records progress; it never
//! talks to a platform itself (providers do) and never decides *what* to do (the plan
//! does).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use strata_plan::{Action, Plan, Platform, ResourceId, Step};
use strata_providers::{ActContext, Provider};
use tokio::sync::Semaphore;

pub mod journal;
pub mod reconcile;

pub use journal::{Journal, JournalBackend, JournalError, JournalLocation};
pub use reconcile::{LoopOptions, LoopProgress, Planned, ReconcileError, converge, observe, plan};

#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// DCs per wave after the first (which is always one DC).
    pub wave_size: usize,
    /// Refuse plans deleting more than this share (percent) of a DC's owned objects.
    pub max_destroy_percent: f64,
    /// Steps in flight at most.
    pub parallelism: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            wave_size: 2,
            max_destroy_percent: 10.0,
            parallelism: 64,
        }
    }
}

/// Progress callbacks (progress bars, logs).
pub trait Progress: Send + Sync {
    fn wave(&self, _index: usize, _dcs: &[String], _steps: usize) {}
    fn step_done(&self, _step: &Step, _result: &StepResult) {}
}

/// No progress output.
pub struct Quiet;
impl Progress for Quiet {}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Done,
    Failed,
    /// Not run because a dependency failed or an earlier wave failed.
    Skipped,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepResult {
    pub resource: String,
    pub action: Action,
    pub status: StepStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    pub waves: Vec<Vec<String>>,
    pub results: Vec<StepResult>,
    /// The wave after which the rollout stopped because of failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_after_wave: Option<usize>,
    /// Observe-plan-act rounds it took (set by callers that requeue).
    pub rounds: u32,
    /// Steps a requeue round found necessary that the saved plan being applied does not
    /// have: not carried out, and the apply is not a success.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreviewed: Vec<String>,
}

impl ApplyReport {
    pub fn succeeded(&self) -> bool {
        self.unreviewed.is_empty() && self.results.iter().all(|r| r.status == StepStatus::Done)
    }

    pub fn count(&self, status: StepStatus) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "refusing to apply: the plan deletes {} (more than {max}% of the DC's owned objects); raise --max-destroy-percent to allow it",
        .over.iter().map(|(dc, p)| format!("{p:.0}% of {dc}")).collect::<Vec<_>>().join(", ")
    )]
    BlastRadius { over: Vec<(String, f64)>, max: f64 },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Split DCs into waves: the first alone, then `size` at a time.
pub fn waves(dcs: &[String], size: usize) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    if let Some((first, rest)) = dcs.split_first() {
        out.push(vec![first.clone()]);
        for chunk in rest.chunks(size.max(1)) {
            out.push(chunk.to_vec());
        }
    }
    out
}

/// The key intents of a step are recorded under: stable across plans.
pub fn intent_key(step: &Step) -> String {
    format!("{}#{:?}", step.id, step.action).to_lowercase()
}

/// Carry out `plan`.
pub async fn apply(
    plan: &Plan,
    providers: &[Arc<dyn Provider>],
    journal: &Journal,
    owner_tag: &str,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, ApplyError> {
    let over = plan.over_blast_radius(opts.max_destroy_percent);
    if !over.is_empty() {
        return Err(ApplyError::BlastRadius {
            over,
            max: opts.max_destroy_percent,
        });
    }
    // Reboots of running VMs (changes Proxmox keeps pending) count against the same
    // blast radius: over it, the change is written and reported pending.
    let mut plan = plan.clone();
    plan.limit_reboots(opts.max_destroy_percent);
    let plan = &plan;
    let by_scope: HashMap<(String, Platform), Arc<dyn Provider>> = providers
        .iter()
        .map(|p| ((p.dc().to_string(), p.platform()), p.clone()))
        .collect();
    let mut report = ApplyReport {
        waves: waves(&plan.dcs(), opts.wave_size),
        rounds: 1,
        ..ApplyReport::default()
    };
    let limit = Arc::new(Semaphore::new(opts.parallelism.max(1)));
    let waves = report.waves.clone();
    for (i, wave) in waves.iter().enumerate() {
        let steps: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| wave.contains(&s.id.dc))
            .collect();
        progress.wave(i, wave, steps.len());
        if report.stopped_after_wave.is_some() {
            for s in steps {
                let r = skipped(s, "an earlier wave failed");
                progress.step_done(s, &r);
                report.results.push(r);
            }
            continue;
        }
        let results = run_wave(&steps, &by_scope, journal, owner_tag, &limit, progress).await?;
        let failed = results.iter().any(|r| r.status != StepStatus::Done);
        report.results.extend(results);
        if failed {
            report.stopped_after_wave = Some(i);
        }
    }
    journal
        .finish(
            if report.succeeded() {
                "succeeded"
            } else {
                "failed"
            },
            report.results.len(),
        )
        .await?;
    Ok(report)
}

fn skipped(s: &Step, why: &str) -> StepResult {
    StepResult {
        resource: s.id.to_string(),
        action: s.action,
        status: StepStatus::Skipped,
        external_id: None,
        note: String::new(),
        error: Some(why.to_string()),
    }
}

async fn run_one(
    step: &Step,
    provider: Option<Arc<dyn Provider>>,
    journal: &Journal,
    owner_tag: &str,
) -> Result<StepResult, JournalError> {
    let key = step.idempotency_key();
    let resource = step.id.to_string();
    let action = format!("{:?}", step.action).to_lowercase();
    let Some(provider) = provider else {
        return Ok(StepResult {
            resource,
            action: step.action,
            status: StepStatus::Failed,
            external_id: None,
            note: String::new(),
            error: Some(format!(
                "no {} endpoint for {} in the targets file",
                step.id.platform(),
                step.id.dc
            )),
        });
    };
    journal.started(&key, &resource, &action).await?;
    let ikey = intent_key(step);
    let ctx = ActContext {
        key: &ikey,
        intents: journal,
        owner_tag,
    };
    match provider.act(step, &ctx).await {
        Ok(outcome) => {
            let applied = step
                .desired
                .as_ref()
                .map(|d| serde_json::to_value(&d.fields).unwrap_or_default());
            journal
                .done(
                    &key,
                    &resource,
                    outcome.external_id.as_deref(),
                    applied.as_ref(),
                    &ikey,
                )
                .await?;
            Ok(StepResult {
                resource,
                action: step.action,
                status: StepStatus::Done,
                external_id: outcome.external_id,
                note: outcome.note,
                error: None,
            })
        }
        Err(e) => {
            let msg = e.to_string();
            journal.failed(&key, &msg).await?;
            Ok(StepResult {
                resource,
                action: step.action,
                status: StepStatus::Failed,
                external_id: None,
                note: String::new(),
                error: Some(msg),
            })
        }
    }
}

async fn run_wave(
    steps: &[&Step],
    providers: &HashMap<(String, Platform), Arc<dyn Provider>>,
    journal: &Journal,
    owner_tag: &str,
    limit: &Arc<Semaphore>,
    progress: &dyn Progress,
) -> Result<Vec<StepResult>, ApplyError> {
    let in_plan: HashSet<&ResourceId> = steps.iter().map(|s| &s.id).collect();
    let (deletes, work): (Vec<&Step>, Vec<&Step>) =
        steps.iter().partition(|s| s.action == Action::Delete);
    let mut state: BTreeMap<&ResourceId, Option<bool>> =
        work.iter().map(|s| (&s.id, None)).collect();
    let mut results: Vec<StepResult> = Vec::new();
    let mut pending: Vec<&Step> = work.clone();
    let mut running = FuturesUnordered::new();
    loop {
        // Start every ready step; skip those whose dependency failed.
        let mut i = 0;
        while i < pending.len() {
            let s = pending[i];
            let deps: Vec<&ResourceId> = s
                .depends_on
                .iter()
                .filter(|d| in_plan.contains(d))
                .collect();
            if deps
                .iter()
                .any(|d| state.get(d).copied().flatten() == Some(false))
            {
                let r = skipped(s, "a step it depends on failed");
                progress.step_done(s, &r);
                state.insert(&s.id, Some(false));
                results.push(r);
                pending.swap_remove(i);
                continue;
            }
            if deps
                .iter()
                .all(|d| state.get(d).copied().flatten() == Some(true))
            {
                let provider = providers.get(&(s.id.dc.clone(), s.id.platform())).cloned();
                let limit = limit.clone();
                running.push(async move {
                    let _permit = limit.acquire_owned().await;
                    (s, run_one(s, provider, journal, owner_tag).await)
                });
                pending.swap_remove(i);
                continue;
            }
            i += 1;
        }
        let Some((s, r)) = running.next().await else {
            break;
        };
        let r = r?;
        state.insert(&s.id, Some(r.status == StepStatus::Done));
        progress.step_done(s, &r);
        results.push(r);
    }
    // Anything left waits on a dependency that is neither done nor failed (a cycle):
    // refuse to guess.
    for s in pending {
        let r = skipped(s, "its dependencies never completed");
        progress.step_done(s, &r);
        results.push(r);
    }
    let work_failed = results.iter().any(|r| r.status != StepStatus::Done);
    for s in deletes {
        if work_failed {
            let r = skipped(s, "other steps of this wave failed; deletions wait");
            progress.step_done(s, &r);
            results.push(r);
            continue;
        }
        let provider = providers.get(&(s.id.dc.clone(), s.id.platform())).cloned();
        let r = run_one(s, provider, journal, owner_tag).await?;
        progress.step_done(s, &r);
        results.push(r);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_dc_goes_alone() {
        let dcs: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            waves(&dcs, 2),
            vec![
                vec!["a".to_string()],
                vec!["b".into(), "c".into()],
                vec!["d".into()]
            ]
        );
        assert!(waves(&[], 2).is_empty());
    }
}
