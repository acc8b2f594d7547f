//! The apply journal: a write-ahead log in SQL, where the caller says ([`JournalLocation`]):
//! a SQLite file (the CLI keeps it in its state directory, `DIR/.strata/fleet.journal` by
//! default; a server on SQLite in its `--state-dir`) or a PostgreSQL database (the one
//! `strata serve` instances share for HA, so a step taken over after a leader crash finds
//! the intents the crashed leader recorded).
//!
//! Every step is recorded as `started` before its first API call and as `done` (with
//! the fields it applied) or `failed` after. Providers record their *intent* (the id
//! they are about to create) durably before the call that creates it. After a crash
//! at any point, the next run re-observes the platforms; a step whose earlier attempt
//! was interrupted gets that attempt's intent back, so the provider adopts what the
//! interrupted call created instead of creating it again.
//!
//! The journal also keeps, per resource, the fields strata last applied: the baseline
//! `strata drift` compares the live objects against.
//!
//! Both backends run the same statements (`$N` placeholders; timestamps as ISO-8601 UTC
//! text made by the database), differing only in table names, the run id's column and
//! the timestamp expression. On SQLite the tables are `runs`, `steps`, `intents` and
//! `applied`, as in every journal file written so far; on PostgreSQL, which the journal
//! shares with `strata-store` (whose tables include `steps`), they are prefixed
//! `journal_`. The PostgreSQL schema is created under an advisory lock, so servers that
//! start together create it once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use strata_providers::IntentLog;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// `path` is the location as [`JournalLocation`]'s `Display` writes it (no password).
    #[error("apply journal {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "apply journal {0}: not a journal location (a file path, `sqlite:PATH` or `postgres://…`)"
    )]
    Location(String),
    #[error("apply journal: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Where a journal lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalLocation {
    /// A SQLite file (created when first opened to write).
    File(PathBuf),
    /// `postgres://…`/`postgresql://…` (the tables are prefixed `journal_`), or
    /// `sqlite:PATH` (as [`JournalLocation::File`]).
    Url(String),
}

impl JournalLocation {
    fn is_postgres(url: &str) -> bool {
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    /// Whether there can be a journal there already: a file that exists, or any
    /// database (a PostgreSQL journal is created on first open; reading it is cheap).
    pub fn exists(&self) -> bool {
        match self {
            JournalLocation::File(path) => path.exists(),
            JournalLocation::Url(url) if url.starts_with("sqlite:") => {
                if url.contains(":memory:") || url.contains("mode=memory") {
                    return true;
                }
                // Unparseable: opening it says why.
                SqliteConnectOptions::from_str(url).map_or(true, |o| o.get_filename().exists())
            }
            JournalLocation::Url(_) => true,
        }
    }
}

/// `postgres://…`, `postgresql://…` and `sqlite:…` are URLs; anything else a file path.
impl FromStr for JournalLocation {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(
            if JournalLocation::is_postgres(s) || s.starts_with("sqlite:") {
                JournalLocation::Url(s.to_string())
            } else {
                JournalLocation::File(PathBuf::from(s))
            },
        )
    }
}

impl From<PathBuf> for JournalLocation {
    fn from(path: PathBuf) -> Self {
        JournalLocation::File(path)
    }
}

impl From<&Path> for JournalLocation {
    fn from(path: &Path) -> Self {
        JournalLocation::File(path.to_path_buf())
    }
}

impl From<&PathBuf> for JournalLocation {
    fn from(path: &PathBuf) -> Self {
        JournalLocation::File(path.clone())
    }
}

impl From<&JournalLocation> for JournalLocation {
    fn from(at: &JournalLocation) -> Self {
        at.clone()
    }
}

/// The path, or the URL without its password (errors and logs show it).
impl fmt::Display for JournalLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalLocation::File(path) => write!(f, "{}", path.display()),
            JournalLocation::Url(url) if JournalLocation::is_postgres(url) => {
                f.write_str(&redacted(url))
            }
            JournalLocation::Url(url) => f.write_str(url),
        }
    }
}

/// A PostgreSQL URL with its password (in the authority or as a `password` parameter)
/// replaced by `***`.
fn redacted(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "postgres://<unparseable URL>".to_string();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    if u.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Which database a journal is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalBackend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open journal.
#[derive(Clone)]
pub struct Journal {
    pool: Pool,
    run: i64,
}

/// The statements of one backend.
struct Sql {
    schema: &'static [&'static str],
    interrupt_running: &'static str,
    new_run: &'static str,
    started: &'static str,
    step_done: &'static str,
    upsert_applied: &'static str,
    delete_applied: &'static str,
    delete_intent: &'static str,
    step_failed: &'static str,
    finish: &'static str,
    applied: &'static str,
    resuming: &'static str,
    steps_in: &'static str,
    record_intent: &'static str,
    previous_intent: &'static str,
}

/// The statements both backends share, given the table-name prefix and the expression
/// for "now" as ISO-8601 UTC text. Upserts qualify the existing row's columns with the
/// table name (PostgreSQL finds a bare name ambiguous with `excluded`).
macro_rules! statements {
    ($t:literal, $now:literal, $schema:expr) => {
        Sql {
            schema: $schema,
            interrupt_running: concat!(
                "UPDATE ",
                $t,
                "runs SET status = 'interrupted' WHERE status = 'running'"
            ),
            new_run: concat!("INSERT INTO ", $t, "runs DEFAULT VALUES RETURNING id"),
            started: concat!(
                "INSERT INTO ",
                $t,
                "steps (idempotency_key, resource, action, state, run_id, attempts)
                 VALUES ($1, $2, $3, 'started', $4, 1)
                 ON CONFLICT(idempotency_key) DO UPDATE SET state = 'started', run_id = $4,
                   attempts = ",
                $t,
                "steps.attempts + 1, error = NULL, updated_at = ",
                $now
            ),
            step_done: concat!(
                "UPDATE ",
                $t,
                "steps SET state = 'done', external_id = $2, updated_at = ",
                $now,
                " WHERE idempotency_key = $1"
            ),
            upsert_applied: concat!(
                "INSERT INTO ",
                $t,
                "applied (resource, fields, external_id) VALUES ($1, $2, $3)
                 ON CONFLICT(resource) DO UPDATE SET fields = $2, external_id = $3,
                   updated_at = ",
                $now
            ),
            delete_applied: concat!("DELETE FROM ", $t, "applied WHERE resource = $1"),
            delete_intent: concat!("DELETE FROM ", $t, "intents WHERE key = $1"),
            step_failed: concat!(
                "UPDATE ",
                $t,
                "steps SET state = 'failed', error = $2, updated_at = ",
                $now,
                " WHERE idempotency_key = $1"
            ),
            finish: concat!(
                "UPDATE ",
                $t,
                "runs SET status = $2, steps = $3, finished_at = ",
                $now,
                " WHERE id = $1"
            ),
            applied: concat!(
                "SELECT resource, fields FROM ",
                $t,
                "applied ORDER BY resource"
            ),
            resuming: concat!("SELECT key FROM ", $t, "intents ORDER BY key"),
            steps_in: concat!(
                "SELECT resource, action FROM ",
                $t,
                "steps WHERE state = $1 ORDER BY resource"
            ),
            record_intent: concat!(
                "INSERT INTO ",
                $t,
                "intents (key, intent, run_id) VALUES ($1, $2, $3)
                 ON CONFLICT(key) DO UPDATE SET intent = $2, run_id = $3, updated_at = ",
                $now
            ),
            previous_intent: concat!("SELECT intent FROM ", $t, "intents WHERE key = $1"),
        }
    };
}

/// SQLite: the tables every journal file has had since the first release.
const SQLITE: Sql = statements!(
    "",
    "strftime('%Y-%m-%dT%H:%M:%fZ','now')",
    &[
        "CREATE TABLE IF NOT EXISTS runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
            finished_at TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            steps INTEGER NOT NULL DEFAULT 0
        )",
        "CREATE TABLE IF NOT EXISTS steps (
            idempotency_key TEXT PRIMARY KEY,
            resource TEXT NOT NULL,
            action TEXT NOT NULL,
            state TEXT NOT NULL,
            run_id INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            external_id TEXT,
            error TEXT,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
        )",
        "CREATE TABLE IF NOT EXISTS intents (
            key TEXT PRIMARY KEY,
            intent TEXT NOT NULL,
            run_id INTEGER NOT NULL,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
        )",
        "CREATE TABLE IF NOT EXISTS applied (
            resource TEXT PRIMARY KEY,
            fields TEXT NOT NULL,
            external_id TEXT,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
        )",
    ]
);

/// PostgreSQL: the same columns, the tables prefixed `journal_` (the database is shared
/// with `strata-store`).
const POSTGRES: Sql = statements!(
    "journal_",
    "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
    &[
        "CREATE TABLE IF NOT EXISTS journal_runs (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            started_at TEXT NOT NULL
                DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')),
            finished_at TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            steps BIGINT NOT NULL DEFAULT 0
        )",
        "CREATE TABLE IF NOT EXISTS journal_steps (
            idempotency_key TEXT PRIMARY KEY,
            resource TEXT NOT NULL,
            action TEXT NOT NULL,
            state TEXT NOT NULL,
            run_id BIGINT NOT NULL,
            attempts BIGINT NOT NULL DEFAULT 0,
            external_id TEXT,
            error TEXT,
            updated_at TEXT NOT NULL
                DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))
        )",
        "CREATE TABLE IF NOT EXISTS journal_intents (
            key TEXT PRIMARY KEY,
            intent TEXT NOT NULL,
            run_id BIGINT NOT NULL,
            updated_at TEXT NOT NULL
                DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))
        )",
        "CREATE TABLE IF NOT EXISTS journal_applied (
            resource TEXT PRIMARY KEY,
            fields TEXT NOT NULL,
            external_id TEXT,
            updated_at TEXT NOT NULL
                DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))
        )",
    ]
);

/// The PostgreSQL advisory lock the journal's schema is created under (`strata-store`'s
/// migrations take 74210001).
const SCHEMA_LOCK: i64 = 74210002;

/// Connections a PostgreSQL journal holds at most (steps of an apply write concurrently;
/// SQLite has one writer and gets one).
const PG_CONNECTIONS: u32 = 4;

/// Run `$body` with `$pool` the backend's pool and `$sql` its statements.
macro_rules! with_pool {
    ($self:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($pool) => {
                let $sql = &SQLITE;
                $body
            }
            Pool::Postgres($pool) => {
                let $sql = &POSTGRES;
                $body
            }
        }
    };
}

impl Journal {
    /// Open (or create) the journal file at `path` and start a new run.
    pub async fn open(path: &Path) -> Result<Journal, JournalError> {
        Journal::open_at(&JournalLocation::from(path)).await
    }

    /// Open the journal file at `path` to read it (plan, drift): no run is started.
    pub async fn inspect(path: &Path) -> Result<Journal, JournalError> {
        Journal::inspect_at(&JournalLocation::from(path)).await
    }

    /// Open (or create) the journal at `at` and start a new run.
    pub async fn open_at(at: &JournalLocation) -> Result<Journal, JournalError> {
        let mut j = Journal::inspect_at(at).await?;
        j.run = with_pool!(j, |pool, sql| {
            // A run that never finished was interrupted. (On a journal several
            // processes share, a run still going elsewhere is marked too, until its
            // `finish` sets its status: the label is informational, nothing reads it.)
            sqlx::query(sql.interrupt_running).execute(pool).await?;
            sqlx::query(sql.new_run)
                .fetch_one(pool)
                .await?
                .get::<i64, _>(0)
        });
        Ok(j)
    }

    /// Open the journal at `at` to read it (plan, drift): no run is started. The schema
    /// is created if missing (a SQLite file too).
    pub async fn inspect_at(at: &JournalLocation) -> Result<Journal, JournalError> {
        let open_err = |source| JournalError::Open {
            path: at.to_string(),
            source,
        };
        let pool = match at {
            JournalLocation::File(path) => {
                let opts = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true);
                Pool::Sqlite(sqlite_pool(opts).await.map_err(open_err)?)
            }
            JournalLocation::Url(url) if url.starts_with("sqlite:") => {
                let mut opts = SqliteConnectOptions::from_str(url).map_err(open_err)?;
                // A `mode=` in the URL says whether a missing file is created.
                if !url.contains("mode=") {
                    opts = opts.create_if_missing(true);
                }
                Pool::Sqlite(sqlite_pool(opts).await.map_err(open_err)?)
            }
            JournalLocation::Url(url) if JournalLocation::is_postgres(url) => {
                let opts = PgConnectOptions::from_str(url).map_err(open_err)?;
                let pool = PgPoolOptions::new()
                    .max_connections(PG_CONNECTIONS)
                    .connect_with(opts)
                    .await
                    .map_err(open_err)?;
                if let Err(e) = create_postgres_schema(&pool).await {
                    pool.close().await;
                    return Err(open_err(e));
                }
                Pool::Postgres(pool)
            }
            JournalLocation::Url(_) => return Err(JournalError::Location(at.to_string())),
        };
        Ok(Journal { pool, run: 0 })
    }

    /// Which database the journal is in.
    pub fn backend(&self) -> JournalBackend {
        match self.pool {
            Pool::Sqlite(_) => JournalBackend::Sqlite,
            Pool::Postgres(_) => JournalBackend::Postgres,
        }
    }

    /// Close the connections and wait for their worker threads. Call it before the
    /// runtime that opened the journal ends: a pool dropped unclosed leaves its
    /// maintenance task behind, which can keep the runtime from shutting down.
    pub async fn close(self) {
        match self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    pub fn run_id(&self) -> i64 {
        self.run
    }

    /// Record that a step is about to start.
    pub async fn started(
        &self,
        key: &str,
        resource: &str,
        action: &str,
    ) -> Result<(), JournalError> {
        with_pool!(self, |pool, sql| {
            sqlx::query(sql.started)
                .bind(key)
                .bind(resource)
                .bind(action)
                .bind(self.run)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Record that a step finished, with the fields it applied (none for deletes).
    pub async fn done(
        &self,
        key: &str,
        resource: &str,
        external_id: Option<&str>,
        applied: Option<&Value>,
        intent_key: &str,
    ) -> Result<(), JournalError> {
        with_pool!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            sqlx::query(sql.step_done)
                .bind(key)
                .bind(external_id)
                .execute(&mut *tx)
                .await?;
            match applied {
                Some(fields) => {
                    sqlx::query(sql.upsert_applied)
                        .bind(resource)
                        .bind(fields.to_string())
                        .bind(external_id)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    sqlx::query(sql.delete_applied)
                        .bind(resource)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query(sql.delete_intent)
                .bind(intent_key)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Record that a step failed. `error` must not contain secrets (provider errors
    /// never do).
    pub async fn failed(&self, key: &str, error: &str) -> Result<(), JournalError> {
        with_pool!(self, |pool, sql| {
            sqlx::query(sql.step_failed)
                .bind(key)
                .bind(error)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Close the run with a status (`succeeded`, `failed`).
    pub async fn finish(&self, status: &str, steps: usize) -> Result<(), JournalError> {
        let steps = i64::try_from(steps).unwrap_or(i64::MAX);
        with_pool!(self, |pool, sql| {
            sqlx::query(sql.finish)
                .bind(self.run)
                .bind(status)
                .bind(steps)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The fields strata last applied to each resource (the drift baseline).
    pub async fn applied(&self) -> Result<Vec<(String, Value)>, JournalError> {
        let rows: Vec<(String, String)> = with_pool!(self, |pool, sql| {
            sqlx::query(sql.applied)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        });
        Ok(rows
            .into_iter()
            .filter_map(|(res, f)| serde_json::from_str(&f).ok().map(|v| (res, v)))
            .collect())
    }

    /// Resources with an intent from an attempt that did not finish (keys are
    /// `dc/kind/name#action`).
    pub async fn resuming(&self) -> Result<Vec<String>, JournalError> {
        let keys: Vec<String> = with_pool!(self, |pool, sql| {
            sqlx::query(sql.resuming)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| r.get(0))
                .collect()
        });
        Ok(keys
            .iter()
            .filter_map(|k| k.split('#').next().map(str::to_string))
            .collect())
    }

    /// Steps in a given state (for reports and tests).
    pub async fn steps_in(&self, state: &str) -> Result<Vec<(String, String)>, JournalError> {
        Ok(with_pool!(self, |pool, sql| {
            sqlx::query(sql.steps_in)
                .bind(state)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }))
    }

    async fn record_intent(&self, key: &str, intent: &Value) -> Result<(), sqlx::Error> {
        with_pool!(self, |pool, sql| {
            sqlx::query(sql.record_intent)
                .bind(key)
                .bind(intent.to_string())
                .bind(self.run)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn previous_intent(&self, key: &str) -> Result<Option<String>, sqlx::Error> {
        Ok(with_pool!(self, |pool, sql| {
            sqlx::query(sql.previous_intent)
                .bind(key)
                .fetch_optional(pool)
                .await?
                .map(|r| r.get::<String, _>(0))
        }))
    }
}

/// One connection (SQLite has one writer), write-ahead logging, and every commit
/// synced to disk.
async fn sqlite_pool(opts: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let opts = opts
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let since = Instant::now();
    let pool = loop {
        match SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
        {
            Ok(pool) => break pool,
            // Journals opened at once on a new file all switch it to WAL, and SQLite
            // answers some of them SQLITE_BUSY at once instead of waiting (where waiting
            // could deadlock): try again, within the busy timeout.
            Err(e) if sqlite_busy(&e) && since.elapsed() < SQLITE_BUSY_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => return Err(e),
        }
    };
    for stmt in SQLITE.schema {
        if let Err(e) = sqlx::query(*stmt).execute(&pool).await {
            pool.close().await;
            return Err(e);
        }
    }
    Ok(pool)
}

/// How long a SQLite journal waits for another connection's lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLITE_BUSY, or one of its extended codes.
fn sqlite_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

/// Create the tables under the advisory lock: `CREATE TABLE IF NOT EXISTS` is not safe
/// against a concurrent creator on PostgreSQL (both pass the check, one fails on the
/// catalog's unique index), and servers that start together open the journal together.
async fn create_postgres_schema(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    for stmt in POSTGRES.schema {
        sqlx::query(*stmt).execute(&mut *tx).await?;
    }
    tx.commit().await
}

#[async_trait]
impl IntentLog for Journal {
    async fn record(&self, key: &str, intent: &Value) {
        // A journal that cannot write must not let the provider go on: but the trait
        // is infallible, so log loudly; the executor checks the journal is writable
        // before each step.
        if let Err(e) = self.record_intent(key, intent).await {
            tracing::error!("apply journal: cannot record intent for {key}: {e}");
        }
    }

    async fn previous(&self, key: &str) -> Option<Value> {
        let intent = self.previous_intent(key).await.ok()??;
        serde_json::from_str(&intent).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_urls_for_databases_and_paths_otherwise() {
        let at = |s: &str| s.parse::<JournalLocation>().expect("infallible");
        assert_eq!(
            at("postgres://strata@db/fleet"),
            JournalLocation::Url("postgres://strata@db/fleet".into())
        );
        assert_eq!(
            at("postgresql://db/fleet"),
            JournalLocation::Url("postgresql://db/fleet".into())
        );
        assert_eq!(
            at("sqlite:/var/lib/strata/j.db"),
            JournalLocation::Url("sqlite:/var/lib/strata/j.db".into())
        );
        assert_eq!(
            at("state/fleet.journal"),
            JournalLocation::File("state/fleet.journal".into())
        );
        assert_eq!(
            JournalLocation::from(Path::new("a/b")),
            JournalLocation::File("a/b".into())
        );
    }

    #[test]
    fn a_location_never_shows_a_password() {
        let shown = JournalLocation::Url("postgres://strata:hunter2@db:5432/fleet".into());
        assert_eq!(shown.to_string(), "postgres://strata:***@db:5432/fleet");
        let shown = JournalLocation::Url("postgres://db/fleet?user=strata&password=hunter2".into())
            .to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user=strata"), "{shown}");
        let unparseable = JournalLocation::Url("postgres://db:notaport/x:hunter2@".into());
        assert!(!unparseable.to_string().contains("hunter2"));
        assert_eq!(
            JournalLocation::File("/tmp/fleet.journal".into()).to_string(),
            "/tmp/fleet.journal"
        );
    }

    #[tokio::test]
    async fn another_scheme_is_refused() {
        let at = JournalLocation::Url("mysql://db/fleet".into());
        assert!(matches!(
            Journal::open_at(&at).await,
            Err(JournalError::Location(_))
        ));
    }

    #[tokio::test]
    async fn a_file_is_only_there_once_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("fleet.journal");
        let url = JournalLocation::Url(format!("sqlite:{}", path.display()));
        assert!(!JournalLocation::File(path.clone()).exists());
        assert!(!url.exists());
        let j = Journal::open_at(&url).await.expect("open");
        assert_eq!(j.backend(), JournalBackend::Sqlite);
        j.close().await;
        assert!(JournalLocation::File(path).exists());
        assert!(url.exists());

        // A mode in the URL is kept: `ro` does not create, `rwc` does.
        let other = dir.path().join("other.journal");
        let ro = JournalLocation::Url(format!("sqlite:{}?mode=ro", other.display()));
        assert!(Journal::inspect_at(&ro).await.is_err());
        assert!(!other.exists());
        let rwc = JournalLocation::Url(format!("sqlite:{}?mode=rwc", other.display()));
        Journal::inspect_at(&rwc).await.expect("rwc").close().await;
        assert!(other.exists());
    }
}
