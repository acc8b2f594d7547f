use std::process::ExitCode;

use crate::output::out;
use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Write the schema to this file instead of stdout.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

pub fn run(a: SchemaArgs) -> Result<ExitCode> {
    let mut s = strata_spec::json_schema();
    s.push('\n');
    match a.out {
        Some(p) => std::fs::write(&p, s)?,
        None => out!("{s}")?,
    }
    Ok(ExitCode::SUCCESS)
}
