use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::output::outln;
use crate::output::{counts_line, diagnostics_json, is_json, print_diagnostics, print_json};
use crate::pipeline::{Analysis, analyze};
use crate::{Global, SpecArgs};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub global: Global,
}

/// Counts for summaries.
pub fn summary(a: &Analysis) -> serde_json::Value {
    match &a.fleet {
        Some(f) => json!({
            "dcs": f.dcs.len(),
            "switches": f.dcs.iter().map(|d| d.switches.len()).sum::<usize>(),
            "machines": f.dcs.iter().map(|d| d.machines.len()).sum::<usize>(),
            "vms": f.dcs.iter().map(|d| d.vms.len()).sum::<usize>(),
            "bgp_sessions": f.dcs.iter().map(|d| d.bgp.len()).sum::<usize>() / 2,
            "tenants": f.tenants.len(),
        }),
        None => json!(null),
    }
}

pub fn run(a: ValidateArgs) -> Result<ExitCode> {
    let an = analyze(&a.spec.dir, a.spec.locked)?;
    let ok = !an.has_errors();
    if is_json(&a.global) {
        print_json(&json!({
            "ok": ok,
            "summary": summary(&an),
            "lock_changed": an.lock_changed,
            "diagnostics": diagnostics_json(&an.diagnostics, an.sources()),
        }))?;
    } else {
        print_diagnostics(&a.global, &an.diagnostics, an.sources());
        let s = summary(&an);
        if ok {
            outln!(
                "ok: {} is valid: {} DCs, {} switches, {} machines, {} VMs ({})",
                a.spec.dir.display(),
                s["dcs"],
                s["switches"],
                s["machines"],
                s["vms"],
                counts_line(&an.diagnostics)
            )?;
            if an.lock_changed {
                outln!(
                    "note: fleet.lock would change; run `strata compile` to record the allocations"
                )?;
            }
        } else {
            outln!(
                "failed: {} has {}",
                a.spec.dir.display(),
                counts_line(&an.diagnostics)
            )?;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
