//! `strata demo`: the main job on the embedded example fleet.
//!
//! Today the demo validates the example fleet, reports conformance per DC, renders
//! every configuration file and (when the tools are installed) verifies them with
//! the real validators, then prints a summary per DC.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use strata_diagnostics::SourceMap;
use strata_fleet::Lock;
use strata_render::FileKind;

use crate::Global;
use crate::output::{counts_line, is_json, print_diagnostics, print_json};
use crate::pipeline::analyze_sources;
use crate::source::SpecDir;

/// The example fleet, compiled into the binary.
pub const EXAMPLE: &[(&str, &str)] = &[
    (
        "examples/fleet/blueprint.yaml",
        include_str!("../../../../examples/fleet/blueprint.yaml"),
    ),
    (
        "examples/fleet/fleet.yaml",
        include_str!("../../../../examples/fleet/fleet.yaml"),
    ),
    (
        "examples/fleet/hardware.yaml",
        include_str!("../../../../examples/fleet/hardware.yaml"),
    ),
    (
        "examples/fleet/inventory/ams1.yaml",
        include_str!("../../../../examples/fleet/inventory/ams1.yaml"),
    ),
    (
        "examples/fleet/inventory/fra1.yaml",
        include_str!("../../../../examples/fleet/inventory/fra1.yaml"),
    ),
    (
        "examples/fleet/inventory/waw1.yaml",
        include_str!("../../../../examples/fleet/inventory/waw1.yaml"),
    ),
    (
        "examples/fleet/pools.yaml",
        include_str!("../../../../examples/fleet/pools.yaml"),
    ),
    (
        "examples/fleet/sites/ams1.yaml",
        include_str!("../../../../examples/fleet/sites/ams1.yaml"),
    ),
    (
        "examples/fleet/sites/fra1.yaml",
        include_str!("../../../../examples/fleet/sites/fra1.yaml"),
    ),
    (
        "examples/fleet/sites/waw1.yaml",
        include_str!("../../../../examples/fleet/sites/waw1.yaml"),
    ),
    (
        "examples/fleet/teams.yaml",
        include_str!("../../../../examples/fleet/teams.yaml"),
    ),
    (
        "examples/fleet/tenants.yaml",
        include_str!("../../../../examples/fleet/tenants.yaml"),
    ),
    (
        "examples/fleet/vms.yaml",
        include_str!("../../../../examples/fleet/vms.yaml"),
    ),
];

/// The embedded example's lock file.
pub const EXAMPLE_LOCK: &str = include_str!("../../../../examples/fleet/fleet.lock");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the rendered files (default: a temporary directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Skip running the real validators even when they are installed.
    #[arg(long)]
    pub no_verify: bool,
    #[command(flatten)]
    pub global: Global,
}

pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let mut sources = SourceMap::new();
    for (path, text) in EXAMPLE {
        sources.add(*path, *text);
    }
    let dir = SpecDir {
        root: PathBuf::from("examples/fleet"),
        sources,
        diagnostics: Vec::new(),
    };
    let lock = Lock::parse(EXAMPLE_LOCK)?;
    let an = analyze_sources(dir, &lock, Some(EXAMPLE_LOCK.to_string()), false);
    print_diagnostics(&a.global, &an.diagnostics, an.sources());
    let Some(fleet) = an.fleet.as_ref().filter(|_| !an.has_errors()) else {
        eprintln!(
            "the embedded example does not validate: {}",
            counts_line(&an.diagnostics)
        );
        return Ok(ExitCode::from(1));
    };
    let files = strata_render::render_all(fleet);
    let tmp;
    let out = match &a.out {
        Some(p) => p.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("strata-demo-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    crate::cmd::render::write_files(&out, &files)?;
    let mut verified = None;
    if !a.no_verify {
        let v = strata_verify::Verifier::discover();
        let available = FileKind::VERIFIED.iter().all(|k| v.missing(*k).is_none());
        if available {
            let list: Vec<(String, FileKind)> =
                files.iter().map(|f| (f.path.clone(), f.kind)).collect();
            let checks = v.verify_dir(&out, &list);
            let failed: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
            for c in &failed {
                eprintln!("verify failed: {} ({})\n{}", c.path, c.tool, c.output);
            }
            verified = Some((checks.len() - failed.len(), checks.len()));
        }
    }
    let report = an.conformance.as_ref();
    if is_json(&a.global) {
        print_json(&serde_json::json!({
            "dcs": fleet.dcs.iter().map(|d| serde_json::json!({
                "name": d.name, "region": d.region,
                "switches": d.switches.len(), "machines": d.machines.len(), "vms": d.vms.len(),
                "bgp_sessions": d.bgp.len() / 2, "overrides": d.overrides,
            })).collect::<Vec<_>>(),
            "conformance": report,
            "rendered": files.len(),
            "embedded_files": EXAMPLE.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            "out": out.display().to_string(),
            "verified": verified.map(|(ok, n)| serde_json::json!({"ok": ok, "total": n})),
        }));
    } else {
        println!(
            "strata demo: example fleet `{}` ({} DCs)\n",
            fleet.organisation.fleet_id,
            fleet.dcs.len()
        );
        for d in &fleet.dcs {
            let conf = report
                .and_then(|r| r.dcs.iter().find(|c| c.dc == d.name))
                .map(|c| {
                    if c.differences.is_empty() {
                        "identical to the blueprint".to_string()
                    } else if c.conformant {
                        format!(
                            "conformant, declared: {}",
                            c.differences
                                .iter()
                                .map(|x| format!("{} = {}", x.path, x.dc))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    } else {
                        "NOT conformant".to_string()
                    }
                })
                .unwrap_or_default();
            let dc_files = files
                .iter()
                .filter(|f| f.path.starts_with(&format!("{}/", d.name)))
                .count();
            let count = |role| d.switches.iter().filter(|s| s.role == role).count();
            println!(
                "  {:<5} {:<10} {} spines, {} leaves, {} border leaves, {} machines, {} VMs, {} BGP sessions, {} files; {}",
                d.name,
                d.region,
                count(strata_fleet::SwitchRole::Spine),
                count(strata_fleet::SwitchRole::Leaf),
                count(strata_fleet::SwitchRole::Border),
                d.machines.len(),
                d.vms.len(),
                d.bgp.len() / 2,
                dc_files,
                conf
            );
        }
        println!("\nrendered {} files into {}", files.len(), out.display());
        match verified {
            Some((ok, n)) => println!("verified {ok}/{n} files with the real tools"),
            None if a.no_verify => {}
            None => println!(
                "(validators not installed: run scripts/install-test-deps.sh, then the demo verifies every file)"
            ),
        }
        if a.out.is_none() {
            println!("(pass --out DIR to keep the files)");
        }
    }
    let ok = verified.is_none_or(|(ok, n)| ok == n);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
