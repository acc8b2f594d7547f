//! `strata lab up|test|down`: build a DC's rendered fabric from network namespaces and
//! real FRR, test it, and take it down (the work is in the `strata-lab` crate).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use strata_lab::checks::Status;
use strata_lab::{PlanOptions, TestOptions, UpOptions};

use crate::output::outln;
use crate::output::{counts_line, diagnostics_json, is_json, print_diagnostics, print_json};
use crate::pipeline::analyze;
use crate::{Global, SpecArgs};

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build a DC's fabric, scaled down to K racks: a namespace per spine, leaf and test
    /// host, veths for every link, VXLAN, bridges and SVIs, FRR with the rendered
    /// frr.conf on every switch, and keepalived on a VIP pair.
    ///
    /// Refuses to build over what is left of a lab of the same name unless --force.
    ///
    /// Example: strata lab up examples/fleet --dc ams1 --racks 2
    Up(UpArgs),
    /// Check the running lab: BGP sessions, EVPN routes, reachability with DF at the
    /// tenant MTU, tenant isolation, routing in the tenant VRFs, VIP failover and,
    /// with --dci, the interconnect. Exit 0 only when every check passes.
    Test(TestArgs),
    /// Remove every namespace, link, mount and process of the lab (and only those).
    /// Safe to run twice.
    Down(DownArgs),
    /// The TCP listener a VIP member's health check connects to (started by `lab up`).
    #[command(hide = true)]
    ServeTcp(ServeArgs),
}

/// Which lab.
#[derive(Debug, Clone, Args)]
pub struct LabId {
    /// Name of the lab: its namespaces are `sl.<name>.*`, its files `<state-dir>/<name>/`.
    #[arg(long, default_value = "lab", env = "STRATA_LAB_NAME")]
    pub name: String,
    /// Directory holding every lab's state (a tmpfs, for the FRR sockets).
    #[arg(long, default_value = strata_lab::state::DEFAULT_ROOT, env = "STRATA_LAB_STATE_DIR")]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The DC to build.
    #[arg(long)]
    pub dc: String,
    /// How many racks (the first K) to build.
    #[arg(long, default_value_t = 2)]
    pub racks: usize,
    /// Also build a second DC and join the two through their border leaves.
    #[arg(long)]
    pub dci: bool,
    /// The second DC for --dci (default: the first DC interconnected with --dc).
    #[arg(long, requires = "dci")]
    pub peer_dc: Option<String>,
    /// Take down what is left of a lab of the same name first.
    #[arg(long)]
    pub force: bool,
    /// Build even when the spec has errors (to show that a broken design fails the
    /// lab, not only the static checks).
    #[arg(long)]
    pub allow_invalid: bool,
    #[command(flatten)]
    pub id: LabId,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only check this DC of the lab (default: all of them).
    #[arg(long)]
    pub dc: Option<String>,
    /// Seconds to wait for BGP and EVPN to converge.
    #[arg(long, default_value_t = 90)]
    pub timeout: u64,
    #[command(flatten)]
    pub id: LabId,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub id: LabId,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long)]
    pub listen: SocketAddr,
    /// The lab directory (identifies the process as the lab's).
    #[arg(long)]
    pub lab_dir: PathBuf,
}

pub fn run(a: LabArgs) -> Result<ExitCode> {
    match a.command {
        LabCommand::Up(a) => up(a),
        LabCommand::Test(a) => test(a),
        LabCommand::Down(a) => down(a),
        LabCommand::ServeTcp(a) => {
            let _ = a.lab_dir;
            strata_lab::exec::serve_tcp(a.listen)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn up(a: UpArgs) -> Result<ExitCode> {
    let an = analyze(&a.spec.dir, a.spec.locked)?;
    if !is_json(&a.global) {
        print_diagnostics(&a.global, &an.diagnostics, an.sources());
    }
    let fleet = match &an.fleet {
        Some(f) if !an.has_errors() || a.allow_invalid => f,
        _ => {
            let why = if an.fleet.is_some() {
                format!(
                    "the spec has {}; fix them, or pass --allow-invalid to build the design as it is",
                    counts_line(&an.diagnostics)
                )
            } else {
                format!(
                    "the spec has {} and does not compile",
                    counts_line(&an.diagnostics)
                )
            };
            if is_json(&a.global) {
                print_json(&json!({
                    "ok": false,
                    "error": why,
                    "diagnostics": diagnostics_json(&an.diagnostics, an.sources()),
                }))?;
            } else {
                eprintln!("failed: nothing built: {why}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    if an.has_errors() && !is_json(&a.global) {
        eprintln!(
            "warning: --allow-invalid: building despite {} (the lab tests the design as it is)",
            counts_line(&an.diagnostics)
        );
    }
    let mut files = strata_render::frr::render(fleet)?;
    files.extend(strata_render::keepalived::render(fleet)?);
    let lab = strata_lab::plan(
        fleet,
        &files,
        &PlanOptions {
            name: a.id.name.clone(),
            dc: a.dc.clone(),
            racks: a.racks,
            dci: a.dci,
            peer_dc: a.peer_dc.clone(),
        },
    )?;
    let dcs: Vec<String> = lab
        .dcs
        .iter()
        .map(|d| format!("{} (racks {})", d.name, d.racks.join(", ")))
        .collect();
    if !is_json(&a.global) {
        eprintln!(
            "building lab `{}`: {}{}: {} switches, {} hosts, {} namespaces",
            lab.name,
            dcs.join(" + "),
            lab.interconnect
                .as_ref()
                .map(|i| format!(" joined by {i}"))
                .unwrap_or_default(),
            lab.routers.len(),
            lab.hosts.len(),
            lab.namespaces.len()
        );
    }
    let notes = lab.notes.clone();
    let name = lab.name.clone();
    let helper = std::env::current_exe().context("locating the strata binary")?;
    let result = strata_lab::exec::up(
        lab,
        &UpOptions {
            root: a.id.state_dir.clone(),
            force: a.force,
            helper,
            spec: a.spec.dir.display().to_string(),
            allow_invalid: a.allow_invalid,
        },
    );
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            let hint = match e {
                strata_lab::Error::Exists(_) | strata_lab::Error::Env(_) => String::new(),
                _ => format!(
                    "\n(what was built stays until `strata lab down --name {name}{}`)",
                    state_dir_arg(&a.id)
                ),
            };
            bail!("{e}{hint}");
        }
    };
    if is_json(&a.global) {
        print_json(&json!({
            "ok": true,
            "lab": name,
            "dcs": dcs,
            "report": report,
            "notes": notes,
        }))?;
    } else {
        outln!(
            "lab `{name}` is up in {:.1} s: {} namespaces, {} links, {} switches running FRR, {} hosts, {} processes (state in {})",
            report.seconds,
            report.namespaces,
            report.links,
            report.routers,
            report.hosts,
            report.processes,
            report.dir.display()
        )?;
        for n in &notes {
            outln!("note: {n}")?;
        }
        outln!(
            "next: strata lab test --name {name}{}",
            state_dir_arg(&a.id)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn state_dir_arg(id: &LabId) -> String {
    if id.state_dir == std::path::Path::new(strata_lab::state::DEFAULT_ROOT) {
        String::new()
    } else {
        format!(" --state-dir {}", id.state_dir.display())
    }
}

fn test(a: TestArgs) -> Result<ExitCode> {
    let mut rt = strata_lab::exec::Runtime::open(&a.id.state_dir, &a.id.name)?;
    if let Some(dc) = &a.dc
        && rt.lab().dc(dc).is_none()
    {
        bail!(
            "lab `{}` has no DC `{dc}` (it has {})",
            a.id.name,
            rt.lab()
                .dcs
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let allow_invalid = rt.state.allow_invalid;
    let spec = rt.state.spec.clone();
    let report = strata_lab::checks::run(
        &mut rt,
        &TestOptions {
            dc: a.dc.clone(),
            converge: Duration::from_secs(a.timeout),
        },
    );
    if is_json(&a.global) {
        print_json(&json!({
            "ok": report.ok,
            "spec": spec,
            "allow_invalid": allow_invalid,
            "report": report,
        }))?;
    } else {
        outln!(
            "lab `{}` ({}), built from {spec}{}",
            report.lab,
            report.dcs.join(", "),
            if allow_invalid {
                " with --allow-invalid (static checks bypassed)"
            } else {
                ""
            }
        )?;
        for c in &report.checks {
            outln!(
                "[{}] {}. {} ({:.1} s)",
                c.status.as_str(),
                c.id,
                c.title,
                c.seconds
            )?;
            outln!("       {}", c.summary)?;
            for p in &c.problems {
                outln!("       problem: {p}")?;
            }
            for e in &c.evidence {
                outln!("       evidence: {}$ {}", e.node, e.command)?;
                for line in e.output.lines() {
                    outln!("         | {line}")?;
                }
            }
        }
        for n in &report.notes {
            outln!("note: {n}")?;
        }
        let count = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
        outln!(
            "{}: {} passed, {} failed, {} skipped, {} unsupported ({:.1} s)",
            if report.ok { "ok" } else { "failed" },
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skipped),
            count(Status::Unsupported),
            report.seconds
        )?;
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn down(a: DownArgs) -> Result<ExitCode> {
    let report = strata_lab::exec::down(&a.id.state_dir, &a.id.name)?;
    if is_json(&a.global) {
        print_json(&json!({"ok": true, "lab": a.id.name, "removed": report}))?;
    } else if report.nothing() {
        outln!("lab `{}`: nothing to remove", a.id.name)?;
    } else {
        outln!(
            "lab `{}` is down: stopped {} processes, unmounted {} VRF namespace bind mounts, \
             deleted {} namespaces (with their links){}",
            a.id.name,
            report.processes.len(),
            report.mounts,
            report.namespaces.len(),
            if report.dir_removed {
                format!(", removed {}", report.dir.display())
            } else {
                String::new()
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
