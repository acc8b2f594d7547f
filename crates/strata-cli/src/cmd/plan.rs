use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use strata_plan::SavedPlan;

use crate::cmd::live;
use crate::output::out;
use crate::output::{is_json, print_json};
use crate::{Global, SpecArgs, StateArgs};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The targets file (the endpoints file `strata twin --write-endpoints` writes, or
    /// the same format for real endpoints; secrets may be `{"env": "VAR"}`). An
    /// OpenStack target's `"interface"` picks the catalog endpoints: `internal`
    /// (default, as Kolla's admin-openrc.sh), `public` or `admin`.
    #[arg(long)]
    pub targets: PathBuf,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Show at most this many lines of steps (0 = all).
    #[arg(long, default_value_t = 200)]
    pub max_lines: usize,
    /// Also save the plan to FILE (JSON, no secrets: sensitive values appear as
    /// digests), for review; `strata apply FILE --targets T` carries out exactly that
    /// plan and refuses it, saying why, if what it observes has changed since.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub global: Global,
}

pub fn run(a: PlanArgs) -> Result<ExitCode> {
    let fleet = live::fleet_of(&a.spec.dir, &a.global)?;
    let secrets = live::system_secrets(&a.spec.dir);
    let providers = live::providers_for(&a.targets, &fleet, secrets.clone())?;
    let rt = tokio::runtime::Runtime::new()?;
    let journal = live::journal_path(&a.spec.dir, &a.state);
    let desired = strata_plan::desired(&fleet)?;
    let planned = rt.block_on(live::plan(&desired, &providers, secrets.as_ref(), &journal));
    // Bounded: a task a library left behind never keeps the command from exiting.
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    let planned = planned?;
    let plan = &planned.plan;
    if let Some(file) = &a.out {
        let spec_dir = std::path::absolute(&a.spec.dir)
            .with_context(|| format!("resolving {}", a.spec.dir.display()))?;
        let saved = SavedPlan::new(
            &fleet.organisation.fleet_id,
            env!("CARGO_PKG_VERSION"),
            &spec_dir.to_string_lossy(),
            &desired,
            &planned.scopes,
            plan,
        );
        std::fs::write(file, saved.to_json())
            .with_context(|| format!("writing the plan to {}", file.display()))?;
        eprintln!(
            "Saved the plan to {} (digest {}); apply exactly it with `strata apply {} --targets {}`",
            file.display(),
            &saved.digest[..16],
            file.display(),
            a.targets.display()
        );
    }
    if is_json(&a.global) {
        print_json(&live::plan_json(plan))?;
    } else {
        out!("{}", strata_plan::display::render(plan, a.max_lines))?;
    }
    if !plan.conflicts.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(if a.detailed_exitcode && !plan.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
