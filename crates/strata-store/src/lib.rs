//! The server's durable state, on SQLite (the embedded default: one file, nothing to
//! install) or PostgreSQL (several servers on one database, for HA): workflows and
//! their steps, each workflow's events, and named leases with a fencing counter.
//!
//! **Workflows.** A workflow is an ordered list of steps stored here. A worker
//! [`Store::claim`]s the next runnable step of any running workflow — the first step
//! not done, once its backoff has passed, or a step whose lease ran out (its worker
//! died): that is how a workflow resumes after a crash from its last completed step.
//! A claim carries the attempt number; [`Store::complete`] and [`Store::fail`] succeed
//! only for the current attempt of a live lease, so a worker that lost its lease
//! cannot record a result over its successor's. On PostgreSQL the claim takes the row
//! with `FOR UPDATE SKIP LOCKED`, so concurrent servers never claim one step twice;
//! SQLite serialises writers. Each step's idempotency key is `{workflow}:{step}`.
//!
//! **Leases.** [`Store::acquire_lease`] takes or renews a named lease (the leader's);
//! its fencing counter rises whenever the lease changes hands. A side-effecting step
//! checks [`Store::fence`] right before it acts: a paused old leader finds a higher
//! counter and stops.
//!
//! This crate owns the schema (migrations embedded in the binary, portable between
//! both databases, applied at connect) and the claim protocol. It never talks to a
//! platform and never decides what a step does: callers run the step and report back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

mod access;
mod gitops;
pub mod ipam;
mod requests;
mod webhooks;
pub use access::{AuditChain, AuditEntry, NewAudit, TokenRow};
pub use gitops::{ApprovalView, CommitView, PlanView};
pub use requests::{RequestRow, Usage};
pub use webhooks::{DeliveryRow, WebhookRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite:PATH or postgres://…")]
    Url(String),
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("workflow {0} has no steps")]
    NoSteps(String),
}

/// The schema, in order; each is applied once, in one transaction, and recorded in
/// `strata_schema`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_workflows.sql")),
    (2, include_str!("../migrations/0002_gitops.sql")),
    (3, include_str!("../migrations/0003_access.sql")),
    (4, include_str!("../migrations/0004_ipam.sql")),
    (5, include_str!("../migrations/0005_requests.sql")),
    (6, include_str!("../migrations/0006_webhooks.sql")),
];

/// The statements of a migration: `;`-separated, `--` comments dropped.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Which database is behind the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One step of a new workflow.
#[derive(Clone, Debug)]
pub struct StepSpec {
    pub name: String,
    /// Attempts before the step (and its workflow) fails.
    pub max_attempts: u32,
    /// How long a claim holds the step before another worker may take it over.
    pub timeout: Duration,
}

impl StepSpec {
    pub fn new(name: impl Into<String>) -> StepSpec {
        StepSpec {
            name: name.into(),
            max_attempts: 5,
            timeout: Duration::from_secs(300),
        }
    }
}

/// A claimed step: what to run, and the attempt it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub workflow: String,
    pub kind: String,
    pub subject: String,
    pub step: u32,
    pub name: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub worker: String,
    /// The fencing counter the step was claimed under, if the caller holds a lease.
    pub fencing: Option<i64>,
}

impl Claim {
    /// The step's idempotency key: `{workflow}:{step}`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.workflow, self.step)
    }
}

/// What became of a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failed {
    /// Tried again once `retry_at_ms` has passed.
    Retrying { retry_at_ms: i64 },
    /// Out of attempts: the step and its workflow failed.
    Exhausted,
    /// The claim was no longer current (its lease ran out and another worker took
    /// the step, or the workflow was cancelled): nothing was recorded.
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepView {
    pub idx: u32,
    pub name: String,
    pub state: String,
    pub attempts: u32,
    pub evidence: Option<Value>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkflowView {
    pub id: String,
    pub key: String,
    pub kind: String,
    pub subject: String,
    pub state: String,
    pub steps: Vec<StepView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub at_ms: i64,
    pub kind: String,
    pub detail: String,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Backoff before attempt `attempt + 1`: 1 s, 2 s, 4 s, … capped at 5 minutes.
pub fn backoff_ms(attempt: u32) -> i64 {
    let shift = attempt.saturating_sub(1).min(16);
    (1000i64 << shift).min(300_000)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Open (creating a SQLite file if missing) and migrate. `url`: `sqlite:PATH`,
    /// `sqlite::memory:`, or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url, max) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let sep = if rest.contains('?') { '&' } else { '?' };
            let url = if rest.contains("mode=") {
                url.to_string()
            } else {
                format!("{url}{sep}mode=rwc")
            };
            // SQLite has one writer: one connection serialises every claim.
            (Backend::Sqlite, url, 1)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string(), 8)
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let opts: AnyConnectOptions = url.parse().map_err(StoreError::Connect)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect_with(opts)
            .await
            .map_err(StoreError::Connect)?;
        if backend == Backend::Sqlite && !url.contains(":memory:") {
            // Write-ahead logging: one fsync per commit instead of the rollback
            // journal's several, and readers never block the writer. The mode is
            // stored in the file; synchronous stays FULL (a commit survives power loss).
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(StoreError::Connect)?;
        }
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Apply the migrations this database lacks. On PostgreSQL an advisory lock
    /// makes servers that start together migrate one after the other.
    async fn migrate(&self) -> Result<(), StoreError> {
        // `CREATE TABLE IF NOT EXISTS` is not safe against a concurrent creator on
        // PostgreSQL (both pass the check, one fails on the catalog's unique index):
        // take the lock first.
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(74210001)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS strata_schema \
             (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        for (version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            if self.backend == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(74210001)")
                    .execute(&mut *tx)
                    .await?;
            }
            let have = sqlx::query("SELECT version FROM strata_schema WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
            if have.is_some() {
                tx.rollback().await?;
                continue;
            }
            for stmt in statements(sql) {
                sqlx::query(sqlx::AssertSqlSafe(stmt))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO strata_schema (version, applied_ms) VALUES ($1, $2)")
                .bind(*version)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "store schema migrated");
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn event(&self, workflow: &str, kind: &str, detail: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO events (id, workflow_id, at_ms, kind, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        // Time-ordered ids (UUIDv7, monotonic within this process): events in the same
        // millisecond keep their order.
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(workflow)
        .bind(now_ms())
        .bind(kind)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Start a workflow; with a `key` already used, the workflow that has it. Returns
    /// its id and whether this call created it.
    pub async fn start(
        &self,
        key: &str,
        kind: &str,
        subject: &str,
        steps: &[StepSpec],
    ) -> Result<(String, bool), StoreError> {
        if steps.is_empty() {
            return Err(StoreError::NoSteps(key.to_string()));
        }
        if let Some(id) = self.workflow_by_key(key).await? {
            return Ok((id, false));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO workflows (id, key, kind, subject, state, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, 'running', $5, $6) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&id)
        .bind(key)
        .bind(kind)
        .bind(subject)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            let existing = self.workflow_by_key(key).await?;
            return Ok((existing.unwrap_or_default(), false));
        }
        for (i, s) in steps.iter().enumerate() {
            sqlx::query(
                "INSERT INTO steps (workflow_id, idx, name, state, attempts, max_attempts, \
                 timeout_ms, not_before_ms) VALUES ($1, $2, $3, 'pending', 0, $4, $5, 0)",
            )
            .bind(&id)
            .bind(i64::try_from(i).unwrap_or(i64::MAX))
            .bind(&s.name)
            .bind(i64::from(s.max_attempts.max(1)))
            .bind(ms(s.timeout))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.event(&id, "started", &format!("{kind} {subject}"))
            .await?;
        Ok((id, true))
    }

    async fn workflow_by_key(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT id FROM workflows WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?)
    }

    /// Claim the next runnable step for `worker`, holding it for the step's timeout.
    /// `fencing`: the counter of the lease the worker holds (recorded with the step).
    /// Among runnable steps, workflows further along go first (a machine's `deploy`
    /// before another machine's `commission`: what is started gets finished), then the
    /// oldest workflow.
    pub async fn claim(
        &self,
        worker: &str,
        fencing: Option<i64>,
        now: i64,
    ) -> Result<Option<Claim>, StoreError> {
        // Steps whose last attempt's lease ran out with no attempts left fail.
        let exhausted = sqlx::query(
            "UPDATE steps SET state = 'failed', lease_owner = NULL, \
             error = 'timed out on its last attempt' \
             WHERE state = 'running' AND lease_until_ms < $1 AND attempts >= max_attempts \
             RETURNING workflow_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        for r in exhausted {
            let w: String = r.try_get(0)?;
            self.finish_workflow(&w, "failed").await?;
        }
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE OF s SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE steps SET state = 'running', attempts = attempts + 1, lease_owner = $1, \
             lease_until_ms = $2 + timeout_ms, fencing = $3 \
             WHERE (workflow_id, idx) = ( \
               SELECT s.workflow_id, s.idx FROM steps s JOIN workflows w ON w.id = s.workflow_id \
               WHERE w.state = 'running' AND s.attempts < s.max_attempts \
                 AND ((s.state = 'pending' AND s.not_before_ms <= $4) \
                   OR (s.state = 'running' AND s.lease_until_ms < $5)) \
                 AND NOT EXISTS (SELECT 1 FROM steps p WHERE p.workflow_id = s.workflow_id \
                   AND p.idx < s.idx AND p.state <> 'done') \
               ORDER BY s.not_before_ms, s.idx DESC, w.created_ms, s.workflow_id LIMIT 1{lock}) \
             RETURNING workflow_id, idx, name, attempts"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(now)
            .bind(fencing)
            .bind(now)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let workflow: String = row.try_get(0)?;
        let step = u32_of(row.try_get::<i64, _>(1)?);
        let name: String = row.try_get(2)?;
        let attempt = u32_of(row.try_get::<i64, _>(3)?);
        let w = sqlx::query("SELECT kind, subject FROM workflows WHERE id = $1")
            .bind(&workflow)
            .fetch_one(&self.pool)
            .await?;
        self.event(
            &workflow,
            "claimed",
            &format!("step {step} {name}, attempt {attempt}, by {worker}"),
        )
        .await?;
        Ok(Some(Claim {
            kind: w.try_get(0)?,
            subject: w.try_get(1)?,
            workflow,
            step,
            name,
            attempt,
            worker: worker.to_string(),
            fencing,
        }))
    }

    /// The columns that identify `claim`'s attempt: workflow, step, attempt, worker.
    /// An update matches them only while the claim is the step's live attempt.
    fn attempt_of(claim: &Claim) -> (&str, i64, i64, &str) {
        (
            &claim.workflow,
            i64::from(claim.step),
            i64::from(claim.attempt),
            &claim.worker,
        )
    }

    /// Extend a running step's lease to `until_ms` (a long step renews while it works,
    /// so no one takes it over). `false` when the claim is no longer current: the
    /// worker must stop.
    pub async fn heartbeat(&self, claim: &Claim, until_ms: i64) -> Result<bool, StoreError> {
        let (w, idx, attempt, worker) = Self::attempt_of(claim);
        let r = sqlx::query(
            "UPDATE steps SET lease_until_ms = $1 \
             WHERE workflow_id = $2 AND idx = $3 AND attempts = $4 AND lease_owner = $5 \
               AND state = 'running'",
        )
        .bind(until_ms)
        .bind(w)
        .bind(idx)
        .bind(attempt)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// The evidence a workflow's step `idx` recorded when it completed.
    pub async fn evidence(&self, workflow: &str, idx: u32) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query(
            "SELECT evidence FROM steps WHERE workflow_id = $1 AND idx = $2 AND state = 'done'",
        )
        .bind(workflow)
        .bind(i64::from(idx))
        .fetch_optional(&self.pool)
        .await?;
        let text: Option<String> = row.map(|r| r.try_get(0)).transpose()?.flatten();
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Mark `claim`'s step done with `evidence`, only while the claim is the step's
    /// live attempt and its workflow runs. `false`: nothing changed.
    async fn mark_done(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        claim: &Claim,
        evidence: &Value,
    ) -> Result<bool, StoreError> {
        let (w, idx, attempt, worker) = Self::attempt_of(claim);
        let done = sqlx::query(
            "UPDATE steps SET state = 'done', evidence = $1, error = NULL, lease_owner = NULL \
             WHERE workflow_id = $2 AND idx = $3 AND attempts = $4 AND lease_owner = $5 \
               AND state = 'running' \
               AND EXISTS (SELECT 1 FROM workflows w WHERE w.id = $6 AND w.state = 'running')",
        )
        .bind(evidence.to_string())
        .bind(w)
        .bind(idx)
        .bind(attempt)
        .bind(worker)
        .bind(w)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Record the step done with its evidence; the workflow is done with its last
    /// step. `false` (nothing recorded) when the claim is no longer current.
    pub async fn complete(&self, claim: &Claim, evidence: &Value) -> Result<bool, StoreError> {
        let w = claim.workflow.as_str();
        let mut tx = self.pool.begin().await?;
        if !Self::mark_done(&mut tx, claim, evidence).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        self.event(
            w,
            "step-done",
            &format!("step {} {}", claim.step, claim.name),
        )
        .await?;
        let left: i64 =
            sqlx::query("SELECT COUNT(*) FROM steps WHERE workflow_id = $1 AND state <> 'done'")
                .bind(w)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        if left == 0 {
            self.finish_workflow(w, "done").await?;
        }
        Ok(true)
    }

    /// Record a failed attempt: retried after a backoff while attempts remain, else
    /// the step and its workflow fail.
    pub async fn fail(&self, claim: &Claim, error: &str, now: i64) -> Result<Failed, StoreError> {
        let (w, idx, attempt, worker) = Self::attempt_of(claim);
        let retry_at = now + backoff_ms(claim.attempt);
        let row = sqlx::query(
            "UPDATE steps SET \
               state = CASE WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END, \
               not_before_ms = $1, error = $2, lease_owner = NULL \
             WHERE workflow_id = $3 AND idx = $4 AND attempts = $5 AND lease_owner = $6 \
               AND state = 'running' \
             RETURNING state",
        )
        .bind(retry_at)
        .bind(error)
        .bind(w)
        .bind(idx)
        .bind(attempt)
        .bind(worker)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Failed::Stale);
        };
        let state: String = row.try_get(0)?;
        self.event(
            w,
            "step-failed",
            &format!(
                "step {} {}, attempt {}: {error}",
                claim.step, claim.name, claim.attempt
            ),
        )
        .await?;
        if state == "failed" {
            self.finish_workflow(w, "failed").await?;
            Ok(Failed::Exhausted)
        } else {
            Ok(Failed::Retrying {
                retry_at_ms: retry_at,
            })
        }
    }

    /// Record `claim`'s step done with `evidence` and stop its workflow there: the
    /// steps after it are skipped and the workflow ends `stopped` (a rolling upgrade
    /// whose node failed its health gate). `false` (nothing recorded) when the claim
    /// is no longer current.
    pub async fn halt(
        &self,
        claim: &Claim,
        evidence: &Value,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let w = claim.workflow.as_str();
        let mut tx = self.pool.begin().await?;
        if !Self::mark_done(&mut tx, claim, evidence).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE steps SET state = 'skipped', lease_owner = NULL \
             WHERE workflow_id = $1 AND state = 'pending'",
        )
        .bind(w)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE workflows SET state = 'stopped', updated_ms = $1 WHERE id = $2 AND state = 'running'",
        )
        .bind(now_ms())
        .bind(w)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.event(
            w,
            "step-done",
            &format!("step {} {}", claim.step, claim.name),
        )
        .await?;
        self.event(w, "stopped", reason).await?;
        Ok(true)
    }

    /// Cancel a running workflow: no further step is claimed, and a step in flight
    /// cannot record its result. `false` when it was not running.
    pub async fn cancel(&self, workflow: &str) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE workflows SET state = 'cancelled', updated_ms = $1 \
             WHERE id = $2 AND state = 'running'",
        )
        .bind(now_ms())
        .bind(workflow)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE steps SET state = 'cancelled', lease_owner = NULL \
             WHERE workflow_id = $1 AND state IN ('pending', 'running')",
        )
        .bind(workflow)
        .execute(&self.pool)
        .await?;
        self.event(workflow, "cancelled", "").await?;
        Ok(true)
    }

    async fn finish_workflow(&self, workflow: &str, state: &str) -> Result<(), StoreError> {
        let n = sqlx::query(
            "UPDATE workflows SET state = $1, updated_ms = $2 WHERE id = $3 AND state = 'running'",
        )
        .bind(state)
        .bind(now_ms())
        .bind(workflow)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n > 0 {
            self.event(workflow, state, "").await?;
        }
        Ok(())
    }

    /// A workflow with its steps.
    pub async fn workflow(&self, id: &str) -> Result<Option<WorkflowView>, StoreError> {
        let Some(w) =
            sqlx::query("SELECT id, key, kind, subject, state FROM workflows WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT idx, name, state, attempts, evidence, error FROM steps \
             WHERE workflow_id = $1 ORDER BY idx",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut steps = Vec::new();
        for r in rows {
            let evidence: Option<String> = r.try_get(4)?;
            steps.push(StepView {
                idx: u32_of(r.try_get::<i64, _>(0)?),
                name: r.try_get(1)?,
                state: r.try_get(2)?,
                attempts: u32_of(r.try_get::<i64, _>(3)?),
                evidence: evidence.and_then(|e| serde_json::from_str(&e).ok()),
                error: r.try_get(5)?,
            });
        }
        Ok(Some(WorkflowView {
            id: w.try_get(0)?,
            key: w.try_get(1)?,
            kind: w.try_get(2)?,
            subject: w.try_get(3)?,
            state: w.try_get(4)?,
            steps,
        }))
    }

    /// A workflow's events, oldest first.
    pub async fn events(&self, workflow: &str) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, kind, detail FROM events WHERE workflow_id = $1 ORDER BY at_ms, id",
        )
        .bind(workflow)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Event {
                    at_ms: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    detail: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Take or renew lease `name` for `holder` until `now + ttl`. Returns the fencing
    /// counter while `holder` holds it (raised when it changed hands), `None` while
    /// another holder's lease is live.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "INSERT INTO leases (name, holder, fencing, expires_ms) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (name) DO UPDATE SET \
               fencing = CASE WHEN leases.holder = excluded.holder THEN leases.fencing \
                              ELSE leases.fencing + 1 END, \
               holder = excluded.holder, expires_ms = excluded.expires_ms \
             WHERE leases.holder = excluded.holder OR leases.expires_ms < $4 \
             RETURNING fencing",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ms(ttl))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()?)
    }

    /// Whether `fencing` is still lease `name`'s counter: checked right before a side
    /// effect, so a holder that lost the lease (paused, partitioned) does not act.
    pub async fn fence(&self, name: &str, fencing: i64) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT fencing FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .is_some_and(|f| f == fencing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_and_approval_ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..2000)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn migrations_split_into_statements_without_comments() {
        let s = statements(MIGRATIONS[0].1);
        assert!(s.iter().all(|x| !x.contains("--") && !x.ends_with(';')));
        assert!(s.iter().any(|x| x.starts_with("CREATE TABLE steps")));
        assert_eq!(s.len(), 6);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1), 1000);
        assert_eq!(backoff_ms(2), 2000);
        assert_eq!(backoff_ms(4), 8000);
        assert_eq!(backoff_ms(30), 300_000);
    }

    #[test]
    fn a_claims_key_is_workflow_and_step() {
        let c = Claim {
            workflow: "w1".into(),
            kind: "onboard".into(),
            subject: "SN1".into(),
            step: 3,
            name: "deploy".into(),
            attempt: 1,
            worker: "a".into(),
            fencing: None,
        };
        assert_eq!(c.key(), "w1:3");
    }
}
