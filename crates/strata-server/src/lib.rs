//! `strata serve`: the server that keeps the fleet equal to its Git repository.
//!
//! - **GitOps** ([`repo`]): the server follows one branch of the spec repository
//!   (polled, and at once on a signed webhook). Each new commit becomes a durable
//!   `commit` workflow in the store: `plan` (read the commit's files → validate →
//!   compile → observe every platform → diff → the [`policy`] decides) then `apply`
//!   (re-observe, carry out what the policy allows, through the library loop
//!   `strata_apply::converge`). A plan the policy does not allow waits, saved with its
//!   hash; an approval binds to that hash and is refused if the platforms changed
//!   since. A periodic `reconcile` workflow re-plans the last applied commit: drift is
//!   reported, or corrected where the policy says so.
//! - **Durability**: workflows, their step evidence, plans, approvals and the
//!   allocation lock the server applied with live in the store (`strata-store`, SQLite
//!   or PostgreSQL), never only in memory. A step's lease is renewed while it runs; a
//!   crashed server's step is taken over once its lease runs out and resumes from the
//!   last completed step (apply is idempotent through its journal).
//! - **Leadership**: every instance serves reads; only the holder of the `leader`
//!   lease polls Git and runs steps, and a side effect first checks the lease's
//!   fencing counter.
//! - **HTTP** ([`http`]): `/healthz`, `/readyz`, `/metrics`, the webhooks and the
//!   `/api/v1` routes (bearer token), and the web UI under `/ui/` ([`ui`]).
//!
//! This crate owns the server's wiring and decisions; it never talks to a platform
//! except through `strata-providers`, and never writes the spec repository.

pub mod api;
pub mod auth;
pub mod http;
pub mod ipam;
pub mod lifecycle;
pub mod metrics;
pub mod openapi;
pub mod outbound;
pub mod policy;
pub mod repo;
pub mod requests;
pub mod sealed;
pub mod ui;
pub mod usage;
pub mod webhook;
mod work;

pub use work::{ApproveError, approve};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use strata_providers::secrets::SecretResolver;
use strata_store::{Store, now_ms};
use tokio::sync::{Notify, watch};

use crate::metrics::Metrics;
use crate::repo::SpecRepo;

/// The lease every instance competes for.
pub const LEADER_LEASE: &str = "leader";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] strata_store::StoreError),
    #[error(transparent)]
    Repo(#[from] repo::RepoError),
    #[error("{0}")]
    Io(String),
}

/// How the server runs (the CLI fills it from `strata serve`'s flags).
pub struct Config {
    /// A local repository path or a clone URL.
    pub spec_repo: String,
    pub branch: String,
    /// The spec's directory inside the repository (`""`: the root).
    pub spec_path: String,
    /// The targets file (endpoints and credentials per DC).
    pub targets: PathBuf,
    /// `sqlite:PATH` or `postgres://…`.
    pub database: String,
    pub listen: SocketAddr,
    /// The clone of a remote spec repository and (unless `database` is PostgreSQL) the
    /// apply journal live here.
    pub state_dir: PathBuf,
    pub poll_interval: Duration,
    pub reconcile_interval: Duration,
    /// GitHub's webhook secret (`X-Hub-Signature-256`); `None`: the route answers 404.
    pub github_secret: Option<Vec<u8>>,
    /// GitLab's webhook token (`X-Gitlab-Token`); `None`: the route answers 404.
    pub gitlab_token: Option<Vec<u8>>,
    /// Where the first admin token is written on first start (mode 0600).
    pub admin_token_file: Option<PathBuf>,
    /// This instance's name in the leader lease.
    pub instance: String,
    /// How secret references in the spec and the targets file resolve.
    pub secrets: Arc<dyn SecretResolver>,
    /// How long the leader lease lasts without renewal.
    pub lease_ttl: Duration,
    /// Workflow steps run at once (each platform endpoint also has its own limit).
    pub workers: usize,
    /// Machines in an active MAAS phase (commissioning, deploying, erasing) at once per
    /// DC's MAAS: the provisioning limit. Steps over it wait for a slot.
    pub maas_concurrency: usize,
    /// API requests per second per caller (twice that in a burst).
    pub rate_limit: u32,
    /// OIDC bearer tokens (JWTs from this identity provider) accepted beside API tokens.
    pub oidc: Option<oidc::OidcValidator>,
    /// The 32-byte key that seals secrets the server keeps (webhook signing secrets);
    /// `None`: `secrets.key` in `state_dir`, made on first start ([`sealed`]).
    pub secrets_key_file: Option<PathBuf>,
}

impl Config {
    pub fn journal_path(&self) -> PathBuf {
        self.state_dir.join("fleet.journal")
    }

    /// Where the apply journal is: in the shared database when that is PostgreSQL (a
    /// step taken over from a crashed leader on another host finds its intents), else
    /// the SQLite file [`Config::journal_path`].
    pub fn journal_location(&self) -> strata_apply::JournalLocation {
        let db = &self.database;
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            strata_apply::JournalLocation::Url(db.clone())
        } else {
            strata_apply::JournalLocation::File(self.journal_path())
        }
    }
}

/// The running server's shared state.
pub struct Server {
    pub cfg: Config,
    pub store: Store,
    pub repo: Arc<SpecRepo>,
    pub metrics: Metrics,
    leader: AtomicBool,
    fencing: AtomicI64,
    /// Wakes the Git poller (a webhook arrived).
    poke: Notify,
    /// Wakes the workers (a workflow was started).
    work: Notify,
    /// The last commit compiled.
    prepared: work::PreparedCache,
    /// One provisioning-slot semaphore per DC's MAAS (`cfg.maas_concurrency` each).
    maas_slots: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// API tokens already checked against their hash.
    pub(crate) verified: auth::VerifiedTokens,
    pub(crate) rate: auth::RateLimits,
    /// The applied commit the IP pools were last synced from.
    pub(crate) ipam_synced: parking_lot::Mutex<Option<String>>,
    /// Seals the secrets the server keeps at rest (outbound webhooks' secrets).
    pub(crate) sealer: sealed::SecretBox,
}

impl Server {
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    pub fn fencing(&self) -> i64 {
        self.fencing.load(Ordering::SeqCst)
    }

    /// A provisioning slot on `dc`'s MAAS, held while a machine is in an active phase;
    /// waits while `cfg.maas_concurrency` machines of that DC are.
    pub(crate) async fn maas_slot(&self, dc: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let sem = {
            let mut slots = self.maas_slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .entry(dc.to_string())
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Semaphore::new(
                        self.cfg.maas_concurrency.max(1),
                    ))
                })
                .clone()
        };
        sem.acquire_owned().await.ok()
    }

    /// Ask the poller to look at the repository now.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// The principal behind an OIDC bearer token.
    pub(crate) async fn oidc_principal(
        &self,
        token: &str,
    ) -> Result<auth::Principal, auth::AuthError> {
        let Some(v) = &self.cfg.oidc else {
            return Err(auth::AuthError::Invalid);
        };
        let id = v
            .validate(token, std::time::SystemTime::now())
            .await
            .map_err(|e| auth::AuthError::Oidc(e.to_string()))?;
        Ok(auth::Principal {
            actor: format!("oidc:{}", id.subject),
            grants: id.grants,
            read: true,
            write: true,
        })
    }

    /// Record a mutation in the audit log. A failure to record is logged and
    /// returned: callers that mutate first report it (the change happened).
    #[allow(clippy::too_many_arguments)]
    pub async fn audit(
        &self,
        who: &auth::Principal,
        rid: &str,
        team: &str,
        action: &str,
        object: &str,
        before: &serde_json::Value,
        after: &serde_json::Value,
    ) -> Result<(), strata_store::StoreError> {
        let r = self
            .store
            .audit(&strata_store::NewAudit {
                actor: &who.actor,
                team,
                action,
                object,
                before,
                after,
                request_id: rid,
            })
            .await;
        if let Err(e) = &r {
            tracing::error!(error = %e, action, object, "cannot write the audit record");
        }
        r.map(|_| ())
    }
}

/// The store key naming the first admin token's id (servers starting together on one
/// database: one of them makes it).
const FIRST_ADMIN_KEY: &str = "first-admin-token";

/// On first start (no first admin token yet), make a fleet admin token, write it to
/// `path` (mode 0600, never overwriting a file) and store its hash. Later starts, and
/// every other instance on the same database, find it made.
async fn first_admin_token(store: &Store, path: Option<&PathBuf>) -> Result<(), ServerError> {
    if store.get_value(FIRST_ADMIN_KEY).await?.is_some() {
        return Ok(());
    }
    let Some(path) = path else {
        tracing::warn!(
            "no admin token yet: start once with --admin-token-file FILE to create one; /api/v1 answers 401 until then"
        );
        return Ok(());
    };
    let req = auth::TokenRequest {
        name: "first admin".into(),
        team: auth::FLEET.into(),
        role: auth::Role::Admin,
        scopes: None,
        expires_in_s: Some(0),
    };
    let (row, token) = auth::issue_token(None, &req)
        .map_err(|_| ServerError::Io("cannot make the first admin token".into()))?;
    if !store.put_value_if_absent(FIRST_ADMIN_KEY, &row.id).await? {
        return Ok(());
    }
    store.insert_token(&row).await?;
    if let Err(e) = write_private(path, &token) {
        // Nobody would know the token: revoke and forget it, so the next start tries again.
        store.revoke_token(&row.id).await?;
        store.delete_value(FIRST_ADMIN_KEY).await?;
        return Err(e);
    }
    store
        .audit(&strata_store::NewAudit {
            actor: "strata serve",
            team: auth::FLEET,
            action: "token.create",
            object: &format!("token/{}", row.id),
            before: &serde_json::Value::Null,
            after: &serde_json::to_value(&row).unwrap_or_default(),
            request_id: "first-start",
        })
        .await?;
    tracing::info!(path = %path.display(), "wrote the first admin token");
    Ok(())
}

fn write_private(path: &PathBuf, text: &str) -> Result<(), ServerError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        ServerError::Io(format!(
            "cannot create the admin token file {} ({e}); remove it, or point --admin-token-file elsewhere",
            path.display()
        ))
    })?;
    f.write_all(format!("{text}\n").as_bytes())
        .map_err(|e| ServerError::Io(format!("writing {}: {e}", path.display())))
}

/// A started server: its address and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub server: Arc<Server>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stop every task and the listener (waits for them).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Open the store and the repository, bind the listener and start the loops.
pub async fn start(cfg: Config) -> Result<Running, ServerError> {
    std::fs::create_dir_all(&cfg.state_dir).map_err(|e| {
        ServerError::Io(format!(
            "cannot create the state directory {}: {e}",
            cfg.state_dir.display()
        ))
    })?;
    let (sealer, key_path, made) =
        sealed::SecretBox::load_or_create(cfg.secrets_key_file.as_deref(), &cfg.state_dir)
            .map_err(|e| ServerError::Io(e.to_string()))?;
    if made {
        tracing::warn!(path = %key_path.display(), "made a new secrets key (it seals the webhook secrets in the database): keep it with the database's backups; servers sharing one database need the same --secrets-key-file");
    } else {
        tracing::info!(path = %key_path.display(), "secrets key loaded");
    }
    let store = Store::connect(&cfg.database).await?;
    if !sealed::matches_store(&store, &sealer).await? {
        tracing::error!(path = %key_path.display(), "this secrets key is not the one the database's secrets were sealed with: webhook secrets will not open (give every server on this database the same --secrets-key-file)");
    }
    first_admin_token(&store, cfg.admin_token_file.as_ref()).await?;
    let (source, cache, branch, subdir) = (
        cfg.spec_repo.clone(),
        cfg.state_dir.clone(),
        cfg.branch.clone(),
        cfg.spec_path.clone(),
    );
    let repo =
        tokio::task::spawn_blocking(move || SpecRepo::open(&source, &cache, &branch, &subdir))
            .await
            .map_err(|e| ServerError::Io(e.to_string()))??;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| ServerError::Io(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Io(e.to_string()))?;
    let rate_limit = cfg.rate_limit;
    let server = Arc::new(Server {
        cfg,
        store,
        repo: Arc::new(repo),
        metrics: Metrics::new(),
        leader: AtomicBool::new(false),
        fencing: AtomicI64::new(0),
        poke: Notify::new(),
        work: Notify::new(),
        prepared: work::PreparedCache::default(),
        maas_slots: Default::default(),
        verified: Default::default(),
        rate: auth::RateLimits::new(rate_limit),
        ipam_synced: Default::default(),
        sealer,
    });
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(lease_loop(server.clone(), rx.clone())),
        tokio::spawn(poll_loop(server.clone(), rx.clone())),
        tokio::spawn(work::worker_loop(server.clone(), rx.clone())),
        tokio::spawn(reconcile_loop(server.clone(), rx.clone())),
        tokio::spawn(requests::expiry_loop(server.clone(), rx.clone())),
        tokio::spawn(outbound::delivery_loop(server.clone(), rx.clone())),
    ];
    let app = http::router(server.clone());
    let mut stop = rx.clone();
    tasks.push(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }));
    tracing::info!(%addr, instance = %server.cfg.instance, repo = %server.repo.source, "strata serve started");
    Ok(Running {
        addr,
        server,
        shutdown,
        tasks,
    })
}

/// Sleep `d`, or return true at once when shutdown was asked for.
async fn stopped_within(rx: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let stop = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = rx.wait_for(|s| *s) => true,
    };
    stop || *rx.borrow()
}

async fn lease_loop(s: Arc<Server>, mut rx: watch::Receiver<bool>) {
    let ttl = s.cfg.lease_ttl;
    loop {
        match s
            .store
            .acquire_lease(LEADER_LEASE, &s.cfg.instance, ttl, now_ms())
            .await
        {
            Ok(Some(fencing)) => {
                s.fencing.store(fencing, Ordering::SeqCst);
                if !s.leader.swap(true, Ordering::SeqCst) {
                    // A new leader looks at the repository and the queue at once.
                    tracing::info!(fencing, "became the leader");
                    s.work.notify_one();
                    s.poke.notify_one();
                }
            }
            Ok(None) => {
                if s.is_leader() {
                    tracing::warn!("lost the leader lease");
                }
                s.leader.store(false, Ordering::SeqCst);
            }
            Err(e) => {
                // Cannot renew: stop acting before the lease runs out elsewhere.
                if s.is_leader() {
                    tracing::warn!(error = %e, "cannot renew the leader lease; stepping down");
                }
                s.leader.store(false, Ordering::SeqCst);
            }
        }
        s.metrics.leader.set(i64::from(s.is_leader()));
        if stopped_within(&mut rx, ttl / 3).await {
            s.leader.store(false, Ordering::SeqCst);
            return;
        }
    }
}

/// Look at the branch once: a commit the store has not seen becomes a workflow.
pub async fn check_repo(s: &Arc<Server>) -> Result<Option<String>, ServerError> {
    let repo = s.repo.clone();
    let sha = tokio::task::spawn_blocking(move || repo.refresh())
        .await
        .map_err(|e| ServerError::Io(e.to_string()))??;
    if s.store.commit(&sha).await?.is_some() {
        return Ok(None);
    }
    // Start first (idempotent by key), then record: a crash in between starts
    // nothing twice and still records the commit at the next poll.
    work::start_commit(s, &sha).await?;
    s.store.record_commit(&sha, &s.cfg.branch).await?;
    tracing::info!(%sha, "new commit");
    s.work.notify_one();
    Ok(Some(sha))
}

async fn poll_loop(s: Arc<Server>, mut rx: watch::Receiver<bool>) {
    loop {
        if s.is_leader()
            && let Err(e) = check_repo(&s).await
        {
            tracing::warn!(error = %e, "cannot read the spec repository");
        }
        tokio::select! {
            _ = tokio::time::sleep(s.cfg.poll_interval) => {}
            _ = s.poke.notified() => {}
            _ = rx.wait_for(|x| *x) => return,
        }
        if *rx.borrow() {
            return;
        }
    }
}

async fn reconcile_loop(s: Arc<Server>, mut rx: watch::Receiver<bool>) {
    loop {
        if stopped_within(&mut rx, s.cfg.reconcile_interval).await {
            return;
        }
        if s.is_leader() {
            match work::start_reconcile(&s).await {
                Ok(true) => s.work.notify_one(),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot start a reconcile"),
            }
        }
    }
}

/// A name for this instance: host name, process id and a random suffix.
pub fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "strata".into());
    let mut b = [0u8; 3];
    rand::fill(&mut b);
    format!("{host}-{}-{}", std::process::id(), hex::encode(b))
}
pub mod oidc;
