//! `strata request`: self-service through a running `strata serve` — ask for VMs,
//! bare-metal machines or GPU instances, list, show, approve and release requests.
//!
//! Every subcommand talks to the server's `/api/v1/requests` with the token in
//! `--token-file`; a refusal is printed with the API's problem code and detail.
//! `--wait` follows a request until it is ready (exit 0), failed (exit 1) or the
//! `--timeout` passed (exit 2).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use strata_server::requests::client::{ApiClient, ApiError};

use crate::Global;
use crate::output::outln;
use crate::output::{is_json, print_json};

#[derive(Debug, Args)]
pub struct RequestArgs {
    #[command(subcommand)]
    pub command: RequestCommand,
}

const VM_EXAMPLES: &str = "Examples:
  strata request vm --server http://strata:8080 --token-file ~/.strata/token \\
      --team ml-research --name notebook --cores 4 --memory-mib 16384 --wait
  strata request vm --server http://strata:8080 --token-file ~/.strata/token \\
      --team platform --name ci --cores 8 --memory-mib 32768 --count 3 --anti-affinity \\
      --expires-in 8h -o json";

const METAL_EXAMPLES: &str = "Example:
  strata request metal --server http://strata:8080 --token-file ~/.strata/token \\
      --team platform --name bench --profile hv-std --wait";

const GPU_EXAMPLES: &str = "Examples:
  strata request gpu --server http://strata:8080 --token-file ~/.strata/token \\
      --team ml-research --name train --flavor g1.h100x1 --wait
  strata request gpu --server http://strata:8080 --token-file ~/.strata/token \\
      --team ml-research --name big --gpu-model 'NVIDIA H100 SXM5 80GB' --gpus 8 \\
      --count 2 --anti-affinity --network ml-training";

const OTHER_EXAMPLES: &str = "Examples:
  strata request list --server http://strata:8080 --token-file ~/.strata/token --team ml-research
  strata request show req-0123456789ab --server http://strata:8080 --token-file ~/.strata/token
  strata request approve req-0123456789ab --server http://strata:8080 --token-file op.token
  strata request release req-0123456789ab --server http://strata:8080 --token-file ~/.strata/token --wait

--server and --token-file may come from STRATA_SERVER and STRATA_TOKEN_FILE.";

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Ask for VMs on a Proxmox VE cluster.
    ///
    /// The VMs are clones of the cluster's template on the nodes with room for them
    /// (with --anti-affinity, each on another node), with a NIC on each of the team's
    /// networks asked for.
    #[command(after_help = VM_EXAMPLES)]
    Vm(VmArgs),
    /// Ask for bare-metal machines of a hardware profile.
    ///
    /// MAAS allocates spare machines of the profile (Ready, not the fleet's: tagged
    /// with the profile's name or reporting its hardware) and deploys them.
    #[command(after_help = METAL_EXAMPLES)]
    Metal(MetalArgs),
    /// Ask for GPU instances: OpenStack servers of a GPU flavor the team may boot.
    ///
    /// They are booted in the team's project with a security group that admits only
    /// the team's networks (and a server group with --anti-affinity). Requests for more
    /// GPUs than the server's approval threshold wait for an operator's approval.
    #[command(after_help = GPU_EXAMPLES)]
    Gpu(GpuArgs),
    /// List the requests of the teams the token sees.
    #[command(after_help = OTHER_EXAMPLES)]
    List(ListArgs),
    /// Show one request: its state, placement, resources and workflow.
    #[command(after_help = OTHER_EXAMPLES)]
    Show(IdArgs),
    /// Release a request: its VMs and servers are deleted, its machines released.
    #[command(after_help = OTHER_EXAMPLES)]
    Release(ReleaseArgs),
    /// Approve a request waiting for an approval (operators of its team).
    #[command(after_help = OTHER_EXAMPLES)]
    Approve(IdArgs),
}

/// Where the server is and who is asking.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// The server's base URL (`strata serve --listen`).
    #[arg(long, env = "STRATA_SERVER", value_name = "URL")]
    pub server: String,
    /// A file holding the API token (as `POST /api/v1/tokens` made it).
    #[arg(long, env = "STRATA_TOKEN_FILE", value_name = "FILE")]
    pub token_file: PathBuf,
}

/// What every kind of request takes.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    pub conn: Conn,
    /// The team the request is for (the token needs the member role in it).
    #[arg(long)]
    pub team: String,
    /// A name for people (a DNS label); objects are named after the request's id.
    #[arg(long)]
    pub name: String,
    /// Only this DC (default: where it fits best).
    #[arg(long)]
    pub dc: Option<String>,
    /// How many.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Each on another node, zone or host.
    #[arg(long)]
    pub anti_affinity: bool,
    /// Release it after this long: `90s`, `30m`, `8h`, `7d` (or seconds).
    #[arg(long, value_name = "DURATION", conflicts_with = "expires_at")]
    pub expires_in: Option<String>,
    /// Release it at this time (RFC 3339, `2026-05-01T18:00:00Z`).
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<String>,
    /// A tenant network of the team's (`ml-training`); repeat for several.
    #[arg(long = "network", value_name = "NAME")]
    pub networks: Vec<String>,
    /// Wait until it is ready (exit 0), failed (exit 1) or --timeout passed (exit 2).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, in seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub timeout: u64,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args)]
pub struct VmArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub cores: u32,
    #[arg(long, value_name = "MIB")]
    pub memory_mib: u64,
    /// Boot disk size (default 32).
    #[arg(long, value_name = "GB")]
    pub disk_gb: Option<u64>,
}

#[derive(Debug, Args)]
pub struct MetalArgs {
    #[command(flatten)]
    pub common: Common,
    /// A hardware profile of the fleet (`hv-std`).
    #[arg(long)]
    pub profile: String,
}

#[derive(Debug, Args)]
pub struct GpuArgs {
    #[command(flatten)]
    pub common: Common,
    /// A GPU flavor the team may boot.
    #[arg(long, conflicts_with_all = ["gpu_model", "gpus"])]
    pub flavor: Option<String>,
    /// The GPU model (with --gpus: GPUs per instance) to find the team's flavor by.
    #[arg(long, requires = "gpus")]
    pub gpu_model: Option<String>,
    #[arg(long, requires = "gpu_model")]
    pub gpus: Option<u32>,
    /// A Glance image (default: the newest Ubuntu).
    #[arg(long)]
    pub image: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Only this team's.
    #[arg(long)]
    pub team: Option<String>,
    /// Only those in this state (`ready`, `failed`, `released`, ...).
    #[arg(long)]
    pub state: Option<String>,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The request's id (`req-…`).
    pub id: String,
    #[command(flatten)]
    pub conn: Conn,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The request's id (`req-…`).
    pub id: String,
    #[command(flatten)]
    pub conn: Conn,
    /// Wait until everything is released (exit 2 after --timeout).
    #[arg(long)]
    pub wait: bool,
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub timeout: u64,
    #[command(flatten)]
    pub global: Global,
}

/// `90s`, `30m`, `8h`, `7d` or plain seconds.
fn parse_duration(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("{s:?} is not a duration (90s, 30m, 8h, 7d)"))?;
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(anyhow!("{s:?}: the unit is s, m, h or d")),
    };
    Ok(n * mul)
}

fn client(c: &Conn) -> Result<ApiClient> {
    let token = std::fs::read_to_string(&c.token_file)
        .map_err(|e| anyhow!("cannot read the token file {}: {e}", c.token_file.display()))?;
    ApiClient::new(&c.server, token.trim()).map_err(|e| anyhow!("{e}"))
}

/// A refusal from the API: printed with its code (as JSON too under `-o json`).
fn refused(g: &Global, e: &ApiError) -> Result<ExitCode> {
    eprintln!("error: {e}");
    if is_json(g) {
        print_json(
            &json!({"ok": false, "error": {"status": e.status, "code": e.code, "detail": e.detail}}),
        )?;
    }
    Ok(ExitCode::from(1))
}

pub fn run(a: RequestArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        match a.command {
            RequestCommand::Vm(v) => {
                let mut body = base(&v.common)?;
                body["kind"] = json!("vm");
                body["cores"] = json!(v.cores);
                body["memory_mib"] = json!(v.memory_mib);
                if let Some(d) = v.disk_gb {
                    body["disk_gb"] = json!(d);
                }
                submit(&v.common, body).await
            }
            RequestCommand::Metal(m) => {
                let mut body = base(&m.common)?;
                body["kind"] = json!("metal");
                body["profile"] = json!(m.profile);
                submit(&m.common, body).await
            }
            RequestCommand::Gpu(g) => {
                let mut body = base(&g.common)?;
                body["kind"] = json!("gpu");
                match (&g.flavor, &g.gpu_model, g.gpus) {
                    (Some(f), _, _) => body["flavor"] = json!(f),
                    (None, Some(m), Some(n)) => {
                        body["gpu_model"] = json!(m);
                        body["gpus"] = json!(n);
                    }
                    _ => return Err(anyhow!("give --flavor, or --gpu-model and --gpus")),
                }
                if let Some(i) = &g.image {
                    body["image"] = json!(i);
                }
                submit(&g.common, body).await
            }
            RequestCommand::List(l) => list(l).await,
            RequestCommand::Show(s) => show(s).await,
            RequestCommand::Release(r) => release(r).await,
            RequestCommand::Approve(s) => approve(s).await,
        }
    })
}

fn base(c: &Common) -> Result<Value> {
    let mut body =
        json!({"team": c.team, "name": c.name, "count": c.count, "anti_affinity": c.anti_affinity});
    if let Some(dc) = &c.dc {
        body["dc"] = json!(dc);
    }
    if let Some(d) = &c.expires_in {
        body["expires_in_s"] = json!(parse_duration(d)?);
    }
    if let Some(t) = &c.expires_at {
        body["expires_at"] = json!(t);
    }
    if !c.networks.is_empty() {
        body["networks"] = json!(c.networks);
    }
    Ok(body)
}

async fn submit(c: &Common, body: Value) -> Result<ExitCode> {
    let api = client(&c.conn)?;
    let accepted = match api.call("POST", "/requests", Some(&body)).await {
        Ok(v) => v,
        Err(e) => return refused(&c.global, &e),
    };
    let id = accepted["id"].as_str().unwrap_or_default().to_string();
    if !c.wait {
        if is_json(&c.global) {
            print_json(&accepted)?;
        } else {
            outln!(
                "request {id} accepted: {}{}",
                accepted["state"].as_str().unwrap_or(""),
                if accepted["approval_required"] == true {
                    " (it waits for an operator's approval: strata request approve)"
                } else {
                    ""
                }
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !is_json(&c.global) {
        eprintln!("request {id} accepted; waiting until it is ready");
    }
    follow(
        &api,
        &id,
        &["ready"],
        Duration::from_secs(c.timeout),
        &c.global,
    )
    .await
}

/// Poll request `id` until its state is one of `done` (exit 0), a failure (exit 1) or
/// `timeout` passed (exit 2); print what it became.
async fn follow(
    api: &ApiClient,
    id: &str,
    done: &[&str],
    timeout: Duration,
    g: &Global,
) -> Result<ExitCode> {
    let start = Instant::now();
    let mut last = String::new();
    let mut every = Duration::from_millis(300);
    loop {
        let v = match api.call("GET", &format!("/requests/{id}"), None).await {
            Ok(v) => v,
            Err(e) if e.status == 0 || e.status >= 500 => {
                // The server is briefly away: keep waiting.
                if start.elapsed() >= timeout {
                    return refused(g, &e);
                }
                tokio::time::sleep(every).await;
                continue;
            }
            Err(e) => return refused(g, &e),
        };
        let state = v["state"].as_str().unwrap_or("").to_string();
        let progress = progress_line(&v);
        if progress != last && !is_json(g) {
            eprintln!("{id}: {progress}");
            last = progress;
        }
        let failed = matches!(state.as_str(), "failed" | "release-failed");
        if done.contains(&state.as_str()) || failed {
            if is_json(g) {
                print_json(&v)?;
            } else {
                print_request(&v)?;
            }
            return Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        if start.elapsed() >= timeout {
            if is_json(g) {
                print_json(&json!({"ok": false, "timed_out": true, "request": v}))?;
            }
            eprintln!(
                "error: request {id} is still {state} after {}s",
                timeout.as_secs()
            );
            return Ok(ExitCode::from(2));
        }
        tokio::time::sleep(every).await;
        every = (every * 2).min(Duration::from_secs(3));
    }
}

/// `provisioning (place done, create running)`.
fn progress_line(v: &Value) -> String {
    let wf = if v["state"] == "releasing" || v["state"] == "released" {
        &v["release_workflow"]
    } else {
        &v["workflow"]
    };
    let steps: Vec<String> = wf["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            format!(
                "{} {}",
                s["name"].as_str().unwrap_or(""),
                s["state"].as_str().unwrap_or("")
            )
        })
        .collect();
    format!(
        "{} ({})",
        v["state"].as_str().unwrap_or(""),
        steps.join(", ")
    )
}

fn print_request(v: &Value) -> Result<()> {
    outln!(
        "{}  {}  {} {}  team {}  {}{}",
        v["id"].as_str().unwrap_or(""),
        v["state"].as_str().unwrap_or(""),
        v["count"],
        v["kind"].as_str().unwrap_or(""),
        v["team"].as_str().unwrap_or(""),
        v["name"].as_str().unwrap_or(""),
        v["dc"]
            .as_str()
            .map(|d| format!("  in {d}"))
            .unwrap_or_default()
    )?;
    let detail = v["detail"].as_str().unwrap_or("");
    if !detail.is_empty() {
        outln!("  {detail}")?;
    }
    let r = &v["resources"];
    for vm in r["vms"].as_array().into_iter().flatten() {
        outln!(
            "  vm {} (vmid {}) on {}: {}",
            vm["name"].as_str().unwrap_or(""),
            vm["vmid"],
            vm["node"].as_str().unwrap_or(""),
            vm["status"].as_str().unwrap_or("")
        )?;
    }
    for m in r["machines"].as_array().into_iter().flatten() {
        outln!(
            "  machine {} ({}): {}",
            m["hostname"].as_str().unwrap_or(""),
            m["system_id"].as_str().unwrap_or(""),
            m["status"].as_str().unwrap_or("")
        )?;
    }
    for s in r["servers"].as_array().into_iter().flatten() {
        let addrs: Vec<&str> = s["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        outln!(
            "  server {} ({}): {} {}",
            s["name"].as_str().unwrap_or(""),
            s["id"].as_str().unwrap_or(""),
            s["status"].as_str().unwrap_or(""),
            addrs.join(" ")
        )?;
    }
    if let Some(sg) = r["security_group"].as_object() {
        let ingress: Vec<&str> = sg
            .get("ingress")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        outln!(
            "  security group {} admits {}",
            sg.get("name").and_then(Value::as_str).unwrap_or(""),
            ingress.join(", ")
        )?;
    }
    if let Some(e) = v["expires_at"].as_str() {
        outln!("  expires at {e}")?;
    }
    Ok(())
}

async fn list(l: ListArgs) -> Result<ExitCode> {
    let api = client(&l.conn)?;
    let mut q = Vec::new();
    if let Some(t) = &l.team {
        q.push(format!("team={t}"));
    }
    if let Some(s) = &l.state {
        q.push(format!("state={s}"));
    }
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut parts = q.clone();
        if let Some(c) = &cursor {
            parts.push(format!("cursor={c}"));
        }
        let path = if parts.is_empty() {
            "/requests".to_string()
        } else {
            format!("/requests?{}", parts.join("&"))
        };
        let page = match api.call("GET", &path, None).await {
            Ok(v) => v,
            Err(e) => return refused(&l.global, &e),
        };
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    if is_json(&l.global) {
        print_json(&json!({"items": items}))?;
    } else if items.is_empty() {
        outln!("no requests")?;
    } else {
        for v in &items {
            print_request(v)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(a: IdArgs) -> Result<ExitCode> {
    let api = client(&a.conn)?;
    match api.call("GET", &format!("/requests/{}", a.id), None).await {
        Ok(v) => {
            if is_json(&a.global) {
                print_json(&v)?;
            } else {
                print_request(&v)?;
                outln!("  workflow: {}", progress_line(&v))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(&a.global, &e),
    }
}

async fn release(a: ReleaseArgs) -> Result<ExitCode> {
    let api = client(&a.conn)?;
    let v = match api
        .call("DELETE", &format!("/requests/{}", a.id), None)
        .await
    {
        Ok(v) => v,
        Err(e) => return refused(&a.global, &e),
    };
    if a.wait {
        return follow(
            &api,
            &a.id,
            &["released"],
            Duration::from_secs(a.timeout),
            &a.global,
        )
        .await;
    }
    if is_json(&a.global) {
        print_json(&v)?;
    } else {
        outln!(
            "request {} is being released (workflow {})",
            a.id,
            v["release_workflow"].as_str().unwrap_or("")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn approve(a: IdArgs) -> Result<ExitCode> {
    let api = client(&a.conn)?;
    match api
        .call("POST", &format!("/requests/{}/approve", a.id), None)
        .await
    {
        Ok(v) => {
            if is_json(&a.global) {
                print_json(&v)?;
            } else {
                outln!("request {} approved; it is being provisioned", a.id)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(&a.global, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").ok(), Some(90));
        assert_eq!(parse_duration("90s").ok(), Some(90));
        assert_eq!(parse_duration("30m").ok(), Some(1800));
        assert_eq!(parse_duration("8h").ok(), Some(28_800));
        assert_eq!(parse_duration("2d").ok(), Some(172_800));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
    }
}
