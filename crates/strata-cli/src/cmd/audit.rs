//! `strata audit verify`: walk the server's hash-chained audit log in its database.

use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};

use crate::Global;
use crate::output::outln;
use crate::output::{is_json, print_json};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every record's hash and link; exit 0 when the chain holds, 1 when a
    /// record was changed, inserted or removed (the first such record is named).
    ///
    /// The chain cannot show that records were cut off its end: compare the printed
    /// head hash with one kept elsewhere (a previous run's output, say).
    ///
    /// Example: strata audit verify --database sqlite:/var/lib/strata/strata.db -o json
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The server's database: `sqlite:PATH` or `postgres://…` (as `strata serve --database`).
    #[arg(long, env = "STRATA_DATABASE")]
    pub database: String,
    #[command(flatten)]
    pub global: Global,
}

pub fn run(a: AuditArgs) -> Result<ExitCode> {
    match a.command {
        AuditCommand::Verify(v) => verify(v),
    }
}

fn verify(a: VerifyArgs) -> Result<ExitCode> {
    if let Some(path) = a.database.strip_prefix("sqlite:")
        && !path.starts_with(':')
        && !std::path::Path::new(path.split('?').next().unwrap_or(path)).exists()
    {
        return Err(anyhow!(
            "no database at {path}: pass the file `strata serve --database` uses"
        ));
    }
    let rt = tokio::runtime::Runtime::new()?;
    let chain = rt.block_on(async {
        let store = strata_store::Store::connect(&a.database)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        store.audit_verify().await.map_err(|e| anyhow!("{e}"))
    })?;
    if is_json(&a.global) {
        print_json(&serde_json::to_value(&chain)?)?;
    } else if let (Some(at), Some(why)) = (chain.broken_at, &chain.reason) {
        outln!(
            "audit chain BROKEN at record {at}: {why}\n{} records before it hold; last good hash {}",
            chain.entries,
            chain.head
        )?;
    } else {
        outln!(
            "audit chain holds: {} records, head {}",
            chain.entries,
            chain.head
        )?;
    }
    Ok(if chain.broken_at.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
