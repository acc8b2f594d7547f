//! `strata serve`: run the GitOps server (crate `strata-server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::{Args, ValueEnum};
use strata_providers::secrets::SystemSecrets;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The spec repository: a local repository (path) or a clone URL (file://,
    /// ssh://, git@host:path). The server follows one branch of it.
    #[arg(long, value_name = "REPO")]
    pub spec_repo: String,
    /// The branch to follow.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The spec's directory inside the repository (default: its root).
    #[arg(long, default_value = "", value_name = "DIR")]
    pub spec_path: String,
    /// The targets file: the endpoints and credentials of each DC (see `strata plan --help`).
    #[arg(long, value_name = "FILE")]
    pub targets: PathBuf,
    /// The server's database: `sqlite:PATH` (default: `strata.db` in the state
    /// directory; one server) or `postgres://…` (several servers, one leader).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Where to listen for HTTP (API, webhooks, /healthz, /readyz, /metrics).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The server's local state: the clone of a remote spec repository, and the apply
    /// journal unless the database is PostgreSQL (then the journal is in it, shared by
    /// every server).
    #[arg(long, default_value = ".strata-server", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// How often to look at the branch (webhooks make it look at once).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub poll_interval: Duration,
    /// How often to re-plan the applied commit against the platforms (drift).
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub reconcile_interval: Duration,
    /// A file holding the GitHub webhook secret (enables POST /webhooks/github).
    #[arg(long, value_name = "FILE")]
    pub github_secret_file: Option<PathBuf>,
    /// A file holding the GitLab webhook token (enables POST /webhooks/gitlab).
    #[arg(long, value_name = "FILE")]
    pub gitlab_token_file: Option<PathBuf>,
    /// On first start, write the first admin API token here (mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// This instance's name in the leader lease (default: host, pid and a random suffix).
    #[arg(long)]
    pub instance_id: Option<String>,
    /// How long the leader lease lasts without renewal (renewed every third of it).
    #[arg(long, default_value = "9s", value_parser = duration)]
    pub lease_ttl: Duration,
    /// Workflow steps run at once (machines onboarding in parallel, say); each
    /// platform endpoint also keeps its own concurrency limit.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,
    /// Machines in an active MAAS phase (commissioning, deploying, erasing) at once
    /// per DC's MAAS: the provisioning limit. Onboarding steps over it wait for a slot
    /// (Metal3's default is 20 in total; MAAS itself copes with far more).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub maas_concurrency: u16,
    /// API requests per second per caller (token or OIDC subject), with bursts of
    /// twice that; over it the API answers 429 with `Retry-After`.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_limit: u32,
    /// Accept OIDC bearer tokens (JWTs) from this issuer beside API tokens. Their
    /// roles claim grants `<team>:<role>` (role: viewer, member, operator, admin) or
    /// `fleet:<role>`. Needs --oidc-audience; the keys come from --oidc-jwks or the
    /// issuer's discovery document.
    #[arg(long, value_name = "URL", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,
    /// The `aud` every accepted JWT must carry (the client id at the IdP).
    #[arg(long, value_name = "AUD", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// The IdP's signing keys: a JWKS file, or its https:// URL (default: the
    /// `jwks_uri` of the issuer's /.well-known/openid-configuration). Unknown key ids
    /// reload it, at most once a minute.
    #[arg(long, value_name = "FILE|URL", requires = "oidc_issuer")]
    pub oidc_jwks: Option<String>,
    /// The claim holding the grants (a string array; dots follow nested claims).
    #[arg(long, default_value = "groups", requires = "oidc_issuer")]
    pub oidc_roles_claim: String,
    /// The 32-byte key (64 hexadecimal digits, or base64) that seals the secrets the
    /// server keeps in its database (outbound webhooks' signing secrets). Default:
    /// `secrets.key` in the state directory, made (mode 0600) on first start. Servers
    /// sharing one PostgreSQL database need the same key; keep it with the backups.
    #[arg(long, value_name = "FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// `500ms`, `30s`, `5m`, `1h`.
fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` needs a unit: ms, s, m or h (e.g. 30s)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 500ms, 30s, 5m, 1h)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("unknown unit `{unit}` in `{s}`: use ms, s, m or h")),
    };
    if d.is_zero() {
        return Err("a duration must be more than zero".into());
    }
    Ok(d)
}

/// The OIDC validator the flags ask for (`None` without --oidc-issuer).
async fn oidc_validator(a: &ServeArgs) -> Result<Option<strata_server::oidc::OidcValidator>> {
    use strata_server::oidc::{Jwks, OidcConfig, OidcValidator, discover_jwks_uri};
    let (Some(issuer), Some(audience)) = (&a.oidc_issuer, &a.oidc_audience) else {
        return Ok(None);
    };
    let jwks = match &a.oidc_jwks {
        Some(src) if src.starts_with("https://") || src.starts_with("http://") => {
            Jwks::fetch(src).await
        }
        Some(file) => Jwks::from_file(file),
        None => {
            Jwks::fetch(
                &discover_jwks_uri(issuer)
                    .await
                    .map_err(|e| anyhow!("{e}"))?,
            )
            .await
        }
    }
    .map_err(|e| anyhow!("OIDC keys: {e}"))?;
    let mut config = OidcConfig::new(issuer.clone(), audience.clone());
    config.roles_claim = a.oidc_roles_claim.clone();
    Ok(Some(OidcValidator::new(config, Arc::new(jwks))))
}

fn read_secret(path: &Option<PathBuf>, what: &str) -> Result<Option<Vec<u8>>> {
    let Some(p) = path else { return Ok(None) };
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("reading the {what} from {}", p.display()))?;
    let secret = text.trim().as_bytes().to_vec();
    if secret.is_empty() {
        return Err(anyhow!(
            "{} is empty: the {what} must not be empty",
            p.display()
        ));
    }
    Ok(Some(secret))
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn run(a: ServeArgs) -> Result<ExitCode> {
    init_logs(a.log_format);
    let targets_dir = a.targets.parent().map(PathBuf::from).unwrap_or_default();
    let database = a
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", a.state_dir.join("strata.db").display()));
    std::fs::create_dir_all(&a.state_dir)
        .with_context(|| format!("creating the state directory {}", a.state_dir.display()))?;
    let cfg = strata_server::Config {
        spec_repo: a.spec_repo.clone(),
        branch: a.branch.clone(),
        spec_path: a.spec_path.clone(),
        targets: a.targets.clone(),
        database,
        listen: a.listen,
        state_dir: a.state_dir.clone(),
        poll_interval: a.poll_interval,
        reconcile_interval: a.reconcile_interval,
        github_secret: read_secret(&a.github_secret_file, "GitHub webhook secret")?,
        gitlab_token: read_secret(&a.gitlab_token_file, "GitLab webhook token")?,
        admin_token_file: a.admin_token_file.clone(),
        instance: a
            .instance_id
            .clone()
            .unwrap_or_else(strata_server::default_instance),
        // `file:` references resolve beside the targets file (the spec is in Git).
        secrets: Arc::new(SystemSecrets::new(&targets_dir)),
        lease_ttl: a.lease_ttl,
        workers: usize::from(a.workers),
        maas_concurrency: usize::from(a.maas_concurrency),
        rate_limit: a.rate_limit,
        oidc: None,
        secrets_key_file: a.secrets_key_file.clone(),
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let mut cfg = cfg;
        cfg.oidc = oidc_validator(&a).await?;
        let running = strata_server::start(cfg)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        eprintln!(
            "strata serve: listening on http://{} (following {} branch {})",
            running.addr, a.spec_repo, a.branch
        );
        wait_for_signal().await;
        tracing::info!("shutting down");
        running.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(duration("30").is_err());
        assert!(duration("0s").is_err());
        assert!(duration("5d").is_err());
        assert!(duration("s").is_err());
    }
}
