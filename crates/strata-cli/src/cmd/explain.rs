use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use strata_diagnostics::codes;

use crate::Global;
use crate::output::outln;
use crate::output::{is_json, print_json};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A code such as S0303; without one, every code is listed.
    pub code: Option<String>,
    #[command(flatten)]
    pub global: Global,
}

pub fn run(a: ExplainArgs) -> Result<ExitCode> {
    let infos: Vec<_> = match &a.code {
        Some(c) => match codes::lookup(c) {
            Some(i) => vec![i],
            None => {
                eprintln!("error: unknown code `{c}`; `strata explain` lists every code");
                return Ok(ExitCode::from(1));
            }
        },
        None => codes::ALL.iter().collect(),
    };
    if is_json(&a.global) {
        print_json(&serde_json::to_value(&infos)?)?;
    } else {
        for i in infos {
            outln!(
                "{} {:<8} {}\n      {}",
                i.code,
                i.severity,
                i.name,
                i.explanation
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
