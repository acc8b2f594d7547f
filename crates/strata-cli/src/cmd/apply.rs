use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use strata_apply::{
    ApplyOptions, Journal, LoopOptions, LoopProgress, Progress, StepResult, StepStatus,
};
use strata_plan::{ResourceSet, SavedPlan, Step, owner_tag};

use crate::cmd::live;
use crate::output::{is_json, print_json};
use crate::output::{out, outln};
use crate::{Global, SpecArgs, StateArgs};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The targets file (see `strata plan --help`).
    #[arg(long)]
    pub targets: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// DCs per wave after the first (the first wave is always one DC).
    #[arg(long, default_value_t = 2)]
    pub wave_size: usize,
    /// Refuse a plan that deletes more than this share (percent) of a DC's owned objects.
    #[arg(long, default_value_t = 10.0)]
    pub max_destroy_percent: f64,
    /// Steps in flight at most (each endpoint also has its own limit).
    #[arg(long, default_value_t = 64)]
    pub parallelism: usize,
    #[command(flatten)]
    pub state: StateArgs,
    /// Rounds of observe → plan → act: when steps fail (a platform error, a timeout),
    /// strata re-observes and retries what is left, like a controller's requeue.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_rounds: u32,
    #[command(flatten)]
    pub global: Global,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn wave(&self, index: usize, dcs: &[String], steps: usize) {
        self.0.println(format!(
            "wave {}: {} ({steps} steps)",
            index + 1,
            dcs.join(", ")
        ));
    }
    fn step_done(&self, step: &Step, r: &StepResult) {
        if r.status != StepStatus::Done {
            self.0.println(format!(
                "  {:?} {} {}: {}",
                r.status,
                step.action.symbol(),
                step.id,
                r.error.as_deref().unwrap_or("")
            ));
        }
        self.0.inc(1);
    }
}

struct Lines;

impl Progress for Lines {
    fn wave(&self, index: usize, dcs: &[String], steps: usize) {
        eprintln!("wave {}: {} ({steps} steps)", index + 1, dcs.join(", "));
    }
    fn step_done(&self, step: &Step, r: &StepResult) {
        let status = match r.status {
            StepStatus::Done => "done",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
        };
        let detail = r
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        eprintln!("  {status} {} {}{detail}", step.action.symbol(), step.id);
    }
}

impl LoopProgress for Bar {
    fn requeue(&self, round: u32, failed: usize, left: usize) {
        self.0.inc_length(left as u64);
        self.0.println(format!(
            "round {round}: {failed} step(s) failed; re-observed, {left} step(s) left"
        ));
    }
}

impl LoopProgress for Lines {
    fn requeue(&self, round: u32, failed: usize, left: usize) {
        eprintln!("round {round}: {failed} step(s) failed; re-observed, {left} step(s) left");
    }
}

/// What `apply` carries out: the spec as it is now, or a saved plan file.
struct Target {
    spec_dir: PathBuf,
    fleet_id: String,
    dcs: Vec<String>,
    desired: ResourceSet,
    saved: Option<(PathBuf, SavedPlan)>,
}

fn target(a: &ApplyArgs) -> Result<Target> {
    if a.spec.dir.is_file() {
        let path = a.spec.dir.clone();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the plan file {}", path.display()))?;
        let saved = SavedPlan::from_json(&text)
            .with_context(|| format!("{} cannot be applied", path.display()))?;
        let dcs = saved.dcs();
        return Ok(Target {
            spec_dir: PathBuf::from(&saved.spec_dir),
            fleet_id: saved.fleet_id.clone(),
            dcs,
            desired: saved.desired.clone(),
            saved: Some((path, saved)),
        });
    }
    let fleet = live::fleet_of(&a.spec.dir, &a.global)?;
    Ok(Target {
        spec_dir: a.spec.dir.clone(),
        fleet_id: fleet.organisation.fleet_id.clone(),
        dcs: fleet.dcs.iter().map(|d| d.name.clone()).collect(),
        desired: strata_plan::desired(&fleet)?,
        saved: None,
    })
}

pub fn run(a: ApplyArgs) -> Result<ExitCode> {
    let t = target(&a)?;
    let secrets = live::system_secrets(&t.spec_dir);
    let providers =
        live::providers_for_dcs(&a.targets, &t.dcs, &t.fleet_id, secrets.clone(), &t.desired)?;
    let journal_path = live::journal_path(&t.spec_dir, &a.state);
    let json = is_json(&a.global);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let planned = live::plan(&t.desired, &providers, secrets.as_ref(), &journal_path).await?;
        let mut plan = planned.plan;
        if let Some((path, saved)) = &t.saved
            && let Err(stale) = saved.check_current(&plan)
        {
            bail!(
                "refusing to apply {}: what strata observes now differs from when the plan was made ({stale}); make and review a new plan with `strata plan {} --targets {} --out {}`",
                path.display(),
                t.spec_dir.display(),
                a.targets.display(),
                path.display()
            );
        }
        // Show which reboots this apply will do and which it defers.
        plan.limit_reboots(a.max_destroy_percent);
        if t.saved.is_none() && !json {
            out!("{}", strata_plan::display::render(&plan, 200))?;
        }
        if !plan.conflicts.is_empty() {
            bail!(
                "refusing to apply: {} desired object(s) conflict with objects strata does not own (see the plan)",
                plan.conflicts.len()
            );
        }
        if plan.is_empty() {
            if json {
                print_json(&serde_json::json!({"applied": false, "plan": live::plan_json(&plan)}))?;
            } else {
                outln!("Nothing to do: every platform matches the fleet.")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        // A saved plan was reviewed when it was made: applying it is the approval.
        if !a.auto_approve && t.saved.is_none() {
            if !std::io::stdin().is_terminal() {
                bail!("refusing to apply without confirmation: stdin is not a terminal (pass --auto-approve, or apply a saved plan: `strata plan --out FILE`, then `strata apply FILE`)");
            }
            out!("\nApply these {} changes? Type `yes` to continue: ", plan.counts().total())?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            if line.trim() != "yes" {
                outln!("Apply cancelled.")?;
                return Ok(ExitCode::from(1));
            }
        }
        live::prepare_state_dir(&t.spec_dir, &journal_path)?;
        let journal = Journal::open(&journal_path).await?;
        let opts = LoopOptions {
            apply: ApplyOptions {
                wave_size: a.wave_size,
                max_destroy_percent: a.max_destroy_percent,
                parallelism: a.parallelism,
            },
            max_rounds: a.max_rounds,
            ..LoopOptions::default()
        };
        let owner = owner_tag(&t.fleet_id);
        let saved = t.saved.as_ref().map(|(_, s)| s);
        let started = std::time::Instant::now();
        let steps = plan.steps.len() as u64;
        // A progress bar on a terminal, plain lines on stderr otherwise.
        let bar = (std::io::stderr().is_terminal() && !json).then(|| {
            let bar = ProgressBar::new(steps);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} steps {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Bar(bar)
        });
        let progress: &dyn LoopProgress = match &bar {
            Some(b) => b,
            None => &Lines,
        };
        let report = strata_apply::converge(&t.desired, plan, &providers, &journal, &journal_path, &owner, saved, &opts, progress).await;
        journal.close().await;
        if let Some(b) = &bar {
            b.0.finish_and_clear();
        }
        let report = report?;
        let calls: u64 = providers.iter().map(|p| p.calls()).sum();
        if json {
            print_json(&serde_json::json!({
                "applied": true,
                "succeeded": report.succeeded(),
                "report": report,
                "api_calls": calls,
                "seconds": started.elapsed().as_secs_f64(),
            }))?;
        } else {
            outln!(
                "\nApply {}: {} done, {} failed, {} skipped in {:.1}s ({} round(s), {} API calls); journal {}",
                if report.succeeded() { "complete" } else { "FAILED" },
                report.count(StepStatus::Done),
                report.count(StepStatus::Failed),
                report.count(StepStatus::Skipped),
                started.elapsed().as_secs_f64(),
                report.rounds,
                calls,
                journal_path.display()
            )?;
            if let Some(w) = report.stopped_after_wave {
                outln!("Rollout stopped after wave {}; later waves were not started.", w + 1)?;
            }
            if !report.unreviewed.is_empty() {
                outln!(
                    "Stopped: retrying needs steps the saved plan does not have ({}); make and review a new plan.",
                    report.unreviewed.join(", ")
                )?;
            }
        }
        Ok(if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}
