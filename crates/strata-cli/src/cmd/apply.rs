use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use strata_apply::{ApplyOptions, Journal, Progress, StepResult, StepStatus};
use strata_plan::{Step, owner_tag};

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

pub fn run(a: ApplyArgs) -> Result<ExitCode> {
    let fleet = live::fleet_of(&a.spec.dir, &a.global)?;
    let secrets = live::system_secrets(&a.spec.dir);
    let providers = live::providers_for(&a.targets, &fleet, secrets.clone())?;
    let journal_path = live::journal_path(&a.spec.dir, &a.state);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let plan = live::plan(&fleet, &providers, secrets.as_ref(), &journal_path).await?;
        let json = is_json(&a.global);
        if !json {
            out!("{}", strata_plan::display::render(&plan, 200))?;
        }
        if !plan.conflicts.is_empty() {
            bail!(
                "refusing to apply: {} desired object(s) conflict with objects strata does not own (see the plan above)",
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
        if !a.auto_approve {
            if !std::io::stdin().is_terminal() {
                bail!("refusing to apply without confirmation: stdin is not a terminal (pass --auto-approve)");
            }
            out!("\nApply these {} changes? Type `yes` to continue: ", plan.counts().total())?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            if line.trim() != "yes" {
                outln!("Apply cancelled.")?;
                return Ok(ExitCode::from(1));
            }
        }
        live::prepare_state_dir(&a.spec.dir, &journal_path)?;
        let journal = Journal::open(&journal_path).await?;
        let opts = ApplyOptions {
            wave_size: a.wave_size,
            max_destroy_percent: a.max_destroy_percent,
            parallelism: a.parallelism,
        };
        let owner = owner_tag(&fleet.organisation.fleet_id);
        let started = std::time::Instant::now();
        let mut plan = plan;
        let mut round = 1;
        let mut report = loop {
            let report = run_round(&plan, &providers, &journal, &owner, &opts, json).await?;
            if report.succeeded() || round >= a.max_rounds {
                break report;
            }
            // Requeue: back off, observe again, and plan what is still missing.
            let failed = report.count(StepStatus::Failed);
            tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(round))).await;
            round += 1;
            plan = live::plan(&fleet, &providers, secrets.as_ref(), &journal_path).await?;
            if !json {
                eprintln!(
                    "round {round}: {failed} step(s) failed; re-observed, {} step(s) left",
                    plan.counts().total()
                );
            }
            if !plan.conflicts.is_empty() || plan.is_empty() {
                let mut done = report;
                if plan.is_empty() {
                    done.results.retain(|r| r.status == StepStatus::Done);
                    done.stopped_after_wave = None;
                }
                break done;
            }
        };
        report.rounds = round;
        let calls: u64 = providers.iter().map(|p| p.calls()).sum();
        let rounds = report.rounds;
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
                rounds,
                calls,
                journal_path.display()
            )?;
            if let Some(w) = report.stopped_after_wave {
                outln!("Rollout stopped after wave {}; later waves were not started.", w + 1)?;
            }
        }
        Ok(if report.succeeded() { ExitCode::SUCCESS } else { ExitCode::from(1) })
    })
}

/// One round: the plan through the executor, with a progress bar on a terminal.
async fn run_round(
    plan: &strata_plan::Plan,
    providers: &[std::sync::Arc<dyn strata_providers::Provider>],
    journal: &Journal,
    owner: &str,
    opts: &ApplyOptions,
    json: bool,
) -> Result<strata_apply::ApplyReport> {
    if std::io::stderr().is_terminal() && !json {
        let bar = ProgressBar::new(plan.steps.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} steps {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let p = Bar(bar);
        let r = strata_apply::apply(plan, providers, journal, owner, opts, &p).await;
        p.0.finish_and_clear();
        Ok(r?)
    } else {
        Ok(strata_apply::apply(plan, providers, journal, owner, opts, &Lines).await?)
    }
}
