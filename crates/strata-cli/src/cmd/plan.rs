use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::cmd::live;
use crate::output::out;
use crate::output::{is_json, print_json};
use crate::{Global, SpecArgs, StateArgs};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The targets file (the endpoints file `strata twin --write-endpoints` writes, or
    /// the same format for real endpoints; secrets may be `{"env": "VAR"}`).
    #[arg(long)]
    pub targets: PathBuf,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Show at most this many lines of steps (0 = all).
    #[arg(long, default_value_t = 200)]
    pub max_lines: usize,
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
    let plan = rt.block_on(live::plan(&fleet, &providers, secrets.as_ref(), &journal))?;
    if is_json(&a.global) {
        print_json(&live::plan_json(&plan))?;
    } else {
        out!("{}", strata_plan::display::render(&plan, a.max_lines))?;
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
