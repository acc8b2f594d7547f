use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::output::outln;
use crate::scaffold::{Params, generate};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the fleet in (must not exist, or be empty).
    #[arg(default_value = "fleet")]
    pub dir: PathBuf,
    /// Number of data centres.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub dcs: u32,
    /// Racks per DC (switches to the synthetic layout; default 2).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=500))]
    pub racks_per_dc: Option<u32>,
    /// 1U machines per rack (synthetic layout; 6-40, default 8: every DC needs
    /// hypervisors, network, storage and two compute nodes per availability zone).
    #[arg(long, value_parser = clap::value_parser!(u32).range(6..=40))]
    pub machines_per_rack: Option<u32>,
    /// Infrastructure VMs per DC (synthetic layout; default 6).
    #[arg(long, value_parser = clap::value_parser!(u32).range(4..=1_000_000))]
    pub vms_per_dc: Option<u32>,
    /// Write into a non-empty directory, replacing files of the same name.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: InitArgs) -> Result<ExitCode> {
    if a.dir.exists() {
        let non_empty = fs::read_dir(&a.dir)
            .with_context(|| format!("reading {}", a.dir.display()))?
            .next()
            .is_some();
        if non_empty && !a.force {
            bail!(
                "{} exists and is not empty; choose another directory or pass --force",
                a.dir.display()
            );
        }
    }
    let files = generate(&Params {
        dcs: a.dcs,
        racks_per_dc: a.racks_per_dc,
        machines_per_rack: a.machines_per_rack,
        vms_per_dc: a.vms_per_dc,
    });
    let mut bytes = 0usize;
    for (rel, text) in &files {
        let path = a.dir.join(rel);
        if let Some(p) = path.parent() {
            fs::create_dir_all(p)?;
        }
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        bytes += text.len();
    }
    ignore_state_dir(&a.dir)?;
    let mut schema = strata_spec::json_schema();
    schema.push('\n');
    fs::write(a.dir.join("strata.schema.json"), schema)?;
    outln!(
        "created {} with {} DCs ({} files, {} KiB); next: strata validate {}",
        a.dir.display(),
        a.dcs,
        files.len() + 1,
        bytes / 1024,
        a.dir.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// plan/apply keep their journal in DIR/.strata (which also ignores itself); say so
/// in the spec's `.gitignore` too, keeping whatever else it holds.
fn ignore_state_dir(dir: &std::path::Path) -> Result<()> {
    let path = dir.join(".gitignore");
    let existing = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let listed = existing
        .lines()
        .any(|l| matches!(l.trim(), "/.strata/" | ".strata/" | "/.strata" | ".strata"));
    if !listed {
        let mut text = existing;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(
            "# strata's local state: the apply journal (see `strata apply --help`)\n/.strata/\n",
        );
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
