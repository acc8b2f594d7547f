//! `strata drift`: what changed outside strata on the objects it owns.
//!
//! The baseline of each owned object is what strata last applied to it (from the
//! apply journal), or the desired state when the journal has no record of it. Objects
//! without the fleet's ownership tag are listed and never touched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::cmd::live;
use crate::output::outln;
use crate::output::{is_json, print_json};
use crate::{Global, SpecArgs, StateArgs};

#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The targets file (see `strata plan --help`).
    #[arg(long)]
    pub targets: PathBuf,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub global: Global,
}

pub fn run(a: DriftArgs) -> Result<ExitCode> {
    let fleet = live::fleet_of(&a.spec.dir, &a.global)?;
    let providers = live::providers_for(&a.targets, &fleet, live::system_secrets(&a.spec.dir))?;
    let journal_path = live::journal_path(&a.spec.dir, &a.state);
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let desired = strata_plan::desired(&fleet)?;
        // What the fleet declares decides what some providers observe (node resolvers).
        for p in &providers {
            p.expect(&desired);
        }
        let (observed, scopes) = live::observe_all(&providers).await?;
        let baseline: BTreeMap<String, Value> = if journal_path.exists() {
            {
                let j = strata_apply::Journal::inspect(&journal_path).await?;
                let applied = j.applied().await;
                j.close().await;
                applied?.into_iter().collect()
            }
        } else {
            BTreeMap::new()
        };
        let found = strata_plan::drift(&observed, &scopes, &baseline, &desired);
        let (drift, missing) = (&found.changed, &found.missing);
        let drifted = !found.is_empty();
        if is_json(&a.global) {
            print_json(&serde_json::json!({
                "drift": drifted,
                "changed": drift,
                "missing": missing,
                "unowned": observed.unowned,
            }))?;
        } else {
            for d in drift {
                outln!(
                    "~ {}{}: {} = {} (strata set {})",
                    d.resource,
                    d.external_id.as_deref().map(|i| format!(" [{i}]")).unwrap_or_default(),
                    d.field,
                    d.actual.as_ref().map(Value::to_string).unwrap_or_else(|| "(absent)".into()),
                    d.expected.as_ref().map(Value::to_string).unwrap_or_else(|| "(absent)".into()),
                )?;
            }
            for m in missing {
                outln!("- {m}: deleted outside strata")?;
            }
            outln!(
                "{}: {} changed field(s), {} missing object(s); {} unowned object(s) listed, not touched",
                if drifted { "drift" } else { "no drift" },
                drift.len(),
                missing.len(),
                observed.unowned.len()
            )?;
            for u in observed.unowned.iter().take(20) {
                outln!("  unowned {} {} {} {} ({})", u.dc, u.platform, u.kind, u.name, u.external_id)?;
            }
            if observed.unowned.len() > 20 {
                outln!("  ... {} more (-o json lists all)", observed.unowned.len() - 20)?;
            }
        }
        Ok(if drifted { ExitCode::from(2) } else { ExitCode::SUCCESS })
    })
}
