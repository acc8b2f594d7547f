//! `strata`: one fleet spec in Git → every DC compiled, checked, rendered and kept
//! identical.
//!
//! This crate is the outer edge: it parses the command line, reads the spec
//! directory and `fleet.lock`, calls the pure core (`strata-spec`, `strata-fleet`,
//! `strata-check`, `strata-render`), writes files, runs the real validators
//! (`strata-verify`) and turns results into output and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

mod cmd;
mod output;
mod pipeline;
mod scaffold;
mod source;

/// strata: a control plane for fleets of data centres built on MAAS, Proxmox VE,
/// OpenStack and a BGP EVPN-VXLAN fabric.
///
/// One Git-versioned fleet spec (a directory of YAML files) is compiled into a fully
/// resolved fleet, checked for design errors and for snowflakes, and rendered into
/// every configuration file the DCs need, each validated by the tool that consumes it.
///
/// Exit codes: 0 success; 1 the spec has errors (or a command failed); 2 usage error.
/// A closed stdout (`strata explain | head -1`) ends a command quietly with 0.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every command that reports shares.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Output format: `human` (default) or `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Human, global = true)]
    pub format: Format,
    /// When to use colours in human output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Where the spec is, and how to treat fleet.lock.
#[derive(Debug, Clone, Args)]
pub struct SpecArgs {
    /// The fleet spec directory (every *.yaml below it is read).
    #[arg(default_value = "fleet")]
    pub dir: PathBuf,
    /// Fail if fleet.lock would change (for CI: allocations must already be committed).
    #[arg(long)]
    pub locked: bool,
}

/// Where plan, apply and drift keep strata's local state (the apply journal).
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// Directory for local state: the apply journal (SQLite, with its -wal and -shm
    /// files). Default: DIR/.strata, which holds a `.gitignore` of `*` so that Git
    /// never sees it.
    #[arg(long, env = "STRATA_STATE_DIR", value_name = "PATH")]
    pub state_dir: Option<PathBuf>,
    /// The apply journal file itself (default: STATE_DIR/fleet.journal; a
    /// DIR/fleet.journal left by strata 0.1 is still used while it exists).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scaffold a valid starter fleet (or a large synthetic one for benchmarks).
    ///
    /// Examples:
    ///   strata init ./fleet --dcs 3
    ///   strata init /tmp/big --dcs 10 --racks-per-dc 50 --machines-per-rack 40 --vms-per-dc 20000
    Init(cmd::init::InitArgs),
    /// Print the JSON Schema of spec files (for editors: yaml-language-server).
    ///
    /// Put `# yaml-language-server: $schema=PATH` at the top of a spec file to get
    /// completion and inline errors in editors.
    Schema(cmd::schema::SchemaArgs),
    /// Parse, compile and check the spec (errors, warnings and snowflakes).
    ///
    /// Exit 0 when there are no errors, 1 otherwise. Does not write fleet.lock.
    Validate(cmd::validate::ValidateArgs),
    /// Report how each DC differs from the blueprint ("zero snowflakes").
    ///
    /// Every difference is listed with the blueprint's value, the DC's value, and
    /// whether it is declared (a site override with a reason). Exit 1 when any
    /// difference is undeclared.
    Conform(cmd::conform::ConformArgs),
    /// Compile the spec into the fully resolved fleet and update fleet.lock.
    ///
    /// `-o json` prints the resolved fleet (every DC, switch, link, session, VLAN,
    /// machine, VM and address).
    Compile(cmd::compile::CompileArgs),
    /// Write every generated configuration file; `--verify` runs the real tools on them.
    ///
    /// Files: FRR per switch, netplan and cloud-init per host role, Proxmox
    /// /etc/network/interfaces, keepalived, Kolla-Ansible globals and inventory, nova
    /// PCI passthrough, Prometheus scrape and federation configs.
    Render(cmd::render::RenderArgs),
    /// Diff the fleet against live MAAS, Proxmox and OpenStack endpoints.
    ///
    /// Grouped by DC and platform: `+` create, `@` adopt (a machine MAAS enlisted),
    /// `~` update with old → new per field, `-` delete (only objects strata owns).
    Plan(cmd::plan::PlanArgs),
    /// Carry out the plan: waves, a blast-radius guard and a crash-safe journal.
    Apply(cmd::apply::ApplyArgs),
    /// Report changes made outside strata to the objects it owns (exit 2 on drift).
    Drift(cmd::drift::DriftArgs),
    /// Run simulated MAAS, Proxmox VE and OpenStack endpoints (the digital twin).
    ///
    /// Example: strata twin --dcs 3 --fleet examples/fleet --listen 127.0.0.1:5240 --write-endpoints twin/endpoints.json
    Twin(cmd::twin::TwinArgs),
    /// Run the demo on the embedded example fleet of three DCs.
    Demo(cmd::demo::DemoArgs),
    /// Build a DC's rendered fabric from network namespaces and real FRR, and test it.
    ///
    /// Example: strata lab up examples/fleet --dc ams1 && strata lab test && strata lab down
    Lab(cmd::lab::LabArgs),
    /// Explain a diagnostic code, or list them all.
    Explain(cmd::explain::ExplainArgs),
    /// Run the GitOps server: follow a spec repository, plan each commit, apply what
    /// the spec's policy allows, wait for approvals for the rest, reconcile drift.
    ///
    /// Example: strata serve --spec-repo /srv/fleet.git --targets targets.yaml --admin-token-file admin.token
    /// HA: start two or three with the same --database postgres://…; one leads.
    Serve(Box<cmd::serve::ServeArgs>),
    /// Check the server's audit log: every mutation is a hash-chained record, so a
    /// changed or removed record is found.
    ///
    /// Example: strata audit verify --database sqlite:state/strata.db
    Audit(cmd::audit::AuditArgs),
    /// Self-service: ask `strata serve` for VMs, bare-metal machines or GPU instances
    /// for a team; list, show, approve and release requests.
    ///
    /// Example: strata request vm --server http://strata:8080 --token-file token --team ml-research --name nb --cores 4 --memory-mib 16384 --wait
    Request(cmd::request::RequestArgs),
}

/// Whether the command line asked for `-o json` (on the innermost subcommand).
fn wants_json(matches: &clap::ArgMatches) -> bool {
    let mut m = matches;
    while let Some((_, sub)) = m.subcommand() {
        m = sub;
    }
    matches!(m.try_get_one::<Format>("format"), Ok(Some(Format::Json)))
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let json = wants_json(&matches);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Init(a) => cmd::init::run(a),
        Command::Schema(a) => cmd::schema::run(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::Conform(a) => cmd::conform::run(a),
        Command::Compile(a) => cmd::compile::run(a),
        Command::Render(a) => cmd::render::run(a),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Apply(a) => cmd::apply::run(a),
        Command::Drift(a) => cmd::drift::run(a),
        Command::Twin(a) => cmd::twin::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Lab(a) => cmd::lab::run(a),
        Command::Explain(a) => cmd::explain::run(a),
        Command::Serve(a) => cmd::serve::run(*a),
        Command::Audit(a) => cmd::audit::run(a),
        Command::Request(a) => cmd::request::run(a),
    };
    match result {
        Ok(code) => code,
        // The reader closed stdout (`strata explain | head -1`): it has what it
        // wanted. Exit quietly with 0, as ripgrep does.
        Err(e) if output::is_stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if json {
                // Scripts that asked for JSON get the failure as JSON on stdout too
                // (best effort: stdout may be what failed).
                let doc = serde_json::json!({"ok": false, "error": {"message": format!("{e:#}")}});
                let _ = output::outln!("{doc}");
            }
            ExitCode::from(1)
        }
    }
}
