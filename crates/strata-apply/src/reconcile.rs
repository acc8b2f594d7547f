//! The control loop, as a library: observe → diff → apply in waves → requeue what
//! failed (kube-rs's controller shape: level-triggered, idempotent, requeue with
//! backoff). The CLI's `plan`, `apply` and `drift` and the server call these functions;
//! they only parse arguments and print.
//!
//! - [`observe`]: every provider concurrently; the observed state and the scopes seen.
//! - [`plan`]: desired vs observed (knowing the creates an interrupted apply left in the
//!   journal) → a [`Planned`].
//! - [`converge`]: carry out a plan; while steps fail, back off, observe again and apply
//!   what is still missing, up to `max_rounds`. With a saved plan, a later round may
//!   only retry steps of that plan: anything new stops the loop (the world changed
//!   while applying, and that was not reviewed).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use strata_plan::{Observed, Plan, Platform, ResourceId, ResourceSet, SavedPlan};
use strata_providers::Provider;

use crate::{
    ApplyError, ApplyOptions, ApplyReport, Journal, JournalError, JournalLocation, Progress,
    StepStatus,
};

/// Why the loop could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("could not observe:\n  {}", .0.join("\n  "))]
    Observe(Vec<String>),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(
        "refusing to apply: {0} desired object(s) conflict with objects strata does not own (see the plan)"
    )]
    Conflicts(usize),
}

/// A plan and what it was made from.
#[derive(Clone, Debug)]
pub struct Planned {
    pub plan: Plan,
    /// The (DC, platform) pairs observed.
    pub scopes: Vec<(String, Platform)>,
    /// API calls the observation took (all providers).
    pub observe_calls: u64,
}

/// Observe every provider concurrently. Any provider that fails fails the whole
/// observation (a partial view would plan deletes or creates that are not real).
pub async fn observe(
    providers: &[Arc<dyn Provider>],
) -> Result<(Observed, Vec<(String, Platform)>), ReconcileError> {
    let results = join_all(
        providers
            .iter()
            .map(|p| async move { (p.dc().to_string(), p.platform(), p.observe().await) }),
    )
    .await;
    let mut observed = Observed::default();
    let mut scopes = Vec::new();
    let mut errors = Vec::new();
    for (dc, platform, r) in results {
        match r {
            Ok(o) => {
                observed.extend(o);
                scopes.push((dc, platform));
            }
            Err(e) => errors.push(format!("{dc} {platform}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok((observed, scopes))
    } else {
        Err(ReconcileError::Observe(errors))
    }
}

/// Resources an interrupted apply was creating, from the journal at `journal` (a path
/// or a [`JournalLocation`]; none when there is no journal file yet).
pub async fn resuming(
    journal: impl Into<JournalLocation>,
) -> Result<BTreeSet<ResourceId>, ReconcileError> {
    let at = journal.into();
    if !at.exists() {
        return Ok(BTreeSet::new());
    }
    let journal = Journal::inspect_at(&at).await?;
    let keys = journal.resuming().await;
    journal.close().await;
    Ok(keys?
        .iter()
        .filter_map(|k| k.parse::<ResourceId>().ok())
        .collect())
}

/// Plan `desired` against what the providers hold now. `journal`: where the journal is
/// (a path or a [`JournalLocation`]).
pub async fn plan(
    desired: &ResourceSet,
    providers: &[Arc<dyn Provider>],
    journal: impl Into<JournalLocation>,
) -> Result<Planned, ReconcileError> {
    let journal = journal.into();
    for p in providers {
        p.expect(desired);
    }
    let before: u64 = providers.iter().map(|p| p.calls()).sum();
    let resuming = resuming(journal).await?;
    let (observed, scopes) = observe(providers).await?;
    let after: u64 = providers.iter().map(|p| p.calls()).sum();
    Ok(Planned {
        plan: strata_plan::diff_resuming(desired, &observed, &scopes, &resuming),
        scopes,
        observe_calls: after.saturating_sub(before),
    })
}

/// How [`converge`] runs.
#[derive(Clone, Debug)]
pub struct LoopOptions {
    pub apply: ApplyOptions,
    /// Observe → plan → act rounds at most (at least 1).
    pub max_rounds: u32,
    /// Backoff before round N+1 is `backoff * N`.
    pub backoff: Duration,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            apply: ApplyOptions::default(),
            max_rounds: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// Progress of the loop (rounds) on top of the executor's (waves, steps).
pub trait LoopProgress: Progress {
    /// Round `round` starts: `failed` steps failed in the last one, `left` are planned now.
    fn requeue(&self, _round: u32, _failed: usize, _left: usize) {}
}

impl LoopProgress for crate::Quiet {}

/// Carry out `first` (planned from `desired`), then requeue failed work until nothing
/// is left, a round makes no progress possible, or `max_rounds` is reached. With
/// `saved`, later rounds may only retry steps of that saved plan. `journal_at` is where
/// `journal` is (a path or a [`JournalLocation`]): later rounds plan from it.
#[allow(clippy::too_many_arguments)]
pub async fn converge(
    desired: &ResourceSet,
    first: Plan,
    providers: &[Arc<dyn Provider>],
    journal: &Journal,
    journal_at: impl Into<JournalLocation>,
    owner_tag: &str,
    saved: Option<&SavedPlan>,
    opts: &LoopOptions,
    progress: &dyn LoopProgress,
) -> Result<ApplyReport, ReconcileError> {
    if !first.conflicts.is_empty() {
        return Err(ReconcileError::Conflicts(first.conflicts.len()));
    }
    let journal_at = journal_at.into();
    let mut plan = first;
    let mut round = 1;
    loop {
        let mut report =
            crate::apply(&plan, providers, journal, owner_tag, &opts.apply, progress).await?;
        report.rounds = round;
        if report.succeeded() || round >= opts.max_rounds.max(1) {
            return Ok(report);
        }
        let failed = report.count(StepStatus::Failed);
        tokio::time::sleep(opts.backoff * round).await;
        round += 1;
        let next = self::plan(desired, providers, &journal_at).await?.plan;
        if let Some(saved) = saved {
            let allowed: BTreeSet<&ResourceId> = saved.plan.steps.iter().map(|s| &s.id).collect();
            let unreviewed: Vec<String> = next
                .steps
                .iter()
                .filter(|s| !allowed.contains(&s.id))
                .map(|s| format!("{} {}", s.action.symbol(), s.id))
                .collect();
            if !unreviewed.is_empty() {
                report.rounds = round - 1;
                report.unreviewed = unreviewed;
                return Ok(report);
            }
        }
        progress.requeue(round, failed, next.counts().total());
        if !next.conflicts.is_empty() || next.is_empty() {
            if next.is_empty() {
                // Everything that failed was done after all (or by the retry of a
                // dependency): only the successes remain to report.
                report.results.retain(|r| r.status == StepStatus::Done);
                report.stopped_after_wave = None;
            }
            report.rounds = round;
            return Ok(report);
        }
        plan = next;
    }
}
