use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use comfy_table::{ContentArrangement, Table, presets};
use strata_diagnostics::codes;

use crate::output::outln;
use crate::output::{diagnostics_json, is_json, print_diagnostics, print_json};
use crate::pipeline::analyze;
use crate::{Global, SpecArgs};

#[derive(Debug, Args)]
pub struct ConformArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub global: Global,
}

pub fn run(a: ConformArgs) -> Result<ExitCode> {
    let an = analyze(&a.spec.dir, a.spec.locked)?;
    // Errors other than undeclared differences (design errors, a stale lock) make
    // the spec invalid: conformance of an invalid spec means nothing.
    let invalid = an
        .diagnostics
        .iter()
        .any(|d| d.is_error() && d.code != codes::S0501);
    let report = an.conformance.as_ref().filter(|_| !invalid);
    let Some(report) = report else {
        // The spec does not compile or breaks a design rule: show why.
        print_diagnostics(&a.global, &an.diagnostics, an.sources());
        if is_json(&a.global) {
            print_json(&serde_json::json!({
                "conformant": false,
                "diagnostics": diagnostics_json(&an.diagnostics, an.sources()),
            }))?;
        }
        eprintln!("failed: the spec has errors; fix them before checking conformance");
        return Ok(ExitCode::from(1));
    };
    let conf_diags: Vec<_> = an
        .diagnostics
        .iter()
        .filter(|d| d.code == codes::S0501 || d.code == codes::S0502)
        .cloned()
        .collect();
    if is_json(&a.global) {
        let mut v = serde_json::to_value(report)?;
        v["diagnostics"] = diagnostics_json(&conf_diags, an.sources());
        print_json(&v)?;
    } else {
        print_diagnostics(&a.global, &conf_diags, an.sources());
        let mut t = Table::new();
        t.load_style(presets::UTF8_BORDERS_ONLY)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(vec![
                "DC",
                "path",
                "blueprint",
                "DC value",
                "declared",
                "reason",
            ]);
        let mut rows = 0;
        for dc in &report.dcs {
            for d in &dc.differences {
                rows += 1;
                t.add_row(vec![
                    dc.dc.clone(),
                    d.path.clone(),
                    d.blueprint.to_string(),
                    d.dc.to_string(),
                    if d.declared {
                        "yes".into()
                    } else {
                        "NO".into()
                    },
                    d.reason.clone().unwrap_or_default(),
                ]);
            }
        }
        if rows > 0 {
            outln!("{t}")?;
        }
        for dc in &report.dcs {
            let undeclared = dc.differences.iter().filter(|d| !d.declared).count();
            outln!(
                "{:<8} {}",
                dc.dc,
                if dc.differences.is_empty() {
                    "identical to the blueprint".to_string()
                } else if undeclared == 0 {
                    format!(
                        "conformant ({} declared difference(s))",
                        dc.differences.len()
                    )
                } else {
                    format!("NOT conformant: {undeclared} undeclared difference(s)")
                }
            )?;
        }
    }
    Ok(if report.conformant {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
