use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::output::outln;
use crate::output::{counts_line, is_json, print_diagnostics, print_json};
use crate::pipeline::analyze;
use crate::source::write_lock;
use crate::{Global, SpecArgs};

#[derive(Debug, Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Do not write fleet.lock (allocations are still computed).
    #[arg(long)]
    pub no_write_lock: bool,
    #[command(flatten)]
    pub global: Global,
}

pub fn run(a: CompileArgs) -> Result<ExitCode> {
    let an = analyze(&a.spec.dir, a.spec.locked)?;
    print_diagnostics(&a.global, &an.diagnostics, an.sources());
    if an.has_errors() {
        if is_json(&a.global) {
            print_json(&serde_json::json!({
                "ok": false,
                "diagnostics": crate::output::diagnostics_json(&an.diagnostics, an.sources()),
            }))?;
        } else {
            eprintln!("failed: {}", counts_line(&an.diagnostics));
        }
        return Ok(ExitCode::from(1));
    }
    let Some(fleet) = &an.fleet else {
        return Ok(ExitCode::from(1));
    };
    let wrote = if a.no_write_lock || a.spec.locked {
        false
    } else {
        write_lock(&an.dir.root, &an.lock, an.old_lock_text.as_deref())?
    };
    if is_json(&a.global) {
        print_json(&serde_json::to_value(fleet)?)?;
    } else {
        for dc in &fleet.dcs {
            outln!(
                "{:<8} {:<12} {:>3} switches {:>5} machines {:>6} VMs {:>4} BGP sessions  supernet {}",
                dc.name,
                dc.region,
                dc.switches.len(),
                dc.machines.len(),
                dc.vms.len(),
                dc.bgp.len() / 2,
                dc.supernet
            )?;
        }
        outln!(
            "compiled {} DCs ({}); fleet.lock {} ({} allocations)",
            fleet.dcs.len(),
            counts_line(&an.diagnostics),
            if wrote { "updated" } else { "unchanged" },
            an.lock.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
