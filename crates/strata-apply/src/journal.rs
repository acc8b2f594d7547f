//! The apply journal: a write-ahead log in SQLite, at the path the caller gives (the
//! CLI keeps it in its state directory, `DIR/.strata/fleet.journal` by default).
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

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use strata_providers::IntentLog;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("apply journal {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("apply journal: {0}")]
    Sql(#[from] sqlx::Error),
}

/// An open journal.
#[derive(Clone)]
pub struct Journal {
    pool: SqlitePool,
    run: i64,
}

const SCHEMA: &[&str] = &[
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
];

impl Journal {
    /// Open (or create) the journal at `path` and start a new run.
    pub async fn open(path: &Path) -> Result<Journal, JournalError> {
        let mut j = Journal::inspect(path).await?;
        // A run that never finished was interrupted.
        sqlx::query("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
            .execute(&j.pool)
            .await?;
        j.run = sqlx::query("INSERT INTO runs DEFAULT VALUES RETURNING id")
            .fetch_one(&j.pool)
            .await?
            .get::<i64, _>(0);
        Ok(j)
    }

    /// Open the journal to read it (plan, drift): no run is started.
    pub async fn inspect(path: &Path) -> Result<Journal, JournalError> {
        let open_err = |source| JournalError::Open {
            path: path.display().to_string(),
            source,
        };
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| JournalError::Open {
                path: path.display().to_string(),
                source: e,
            })?;
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&pool).await?;
        }
        Ok(Journal { pool, run: 0 })
    }

    /// Close the connection and wait for its worker thread. Call it before the runtime
    /// that opened the journal ends: a pool dropped unclosed leaves its maintenance task
    /// behind, which can keep the runtime from shutting down.
    pub async fn close(self) {
        self.pool.close().await;
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
        sqlx::query(
            "INSERT INTO steps (idempotency_key, resource, action, state, run_id, attempts)
             VALUES (?1, ?2, ?3, 'started', ?4, 1)
             ON CONFLICT(idempotency_key) DO UPDATE SET state = 'started', run_id = ?4,
               attempts = attempts + 1, error = NULL,
               updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
        )
        .bind(key)
        .bind(resource)
        .bind(action)
        .bind(self.run)
        .execute(&self.pool)
        .await?;
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE steps SET state = 'done', external_id = ?2,
               updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE idempotency_key = ?1",
        )
        .bind(key)
        .bind(external_id)
        .execute(&mut *tx)
        .await?;
        match applied {
            Some(fields) => {
                sqlx::query(
                    "INSERT INTO applied (resource, fields, external_id) VALUES (?1, ?2, ?3)
                     ON CONFLICT(resource) DO UPDATE SET fields = ?2, external_id = ?3,
                       updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
                )
                .bind(resource)
                .bind(fields.to_string())
                .bind(external_id)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM applied WHERE resource = ?1")
                    .bind(resource)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query("DELETE FROM intents WHERE key = ?1")
            .bind(intent_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record that a step failed. `error` must not contain secrets (provider errors
    /// never do).
    pub async fn failed(&self, key: &str, error: &str) -> Result<(), JournalError> {
        sqlx::query(
            "UPDATE steps SET state = 'failed', error = ?2,
               updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE idempotency_key = ?1",
        )
        .bind(key)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Close the run with a status (`succeeded`, `failed`).
    pub async fn finish(&self, status: &str, steps: usize) -> Result<(), JournalError> {
        sqlx::query(
            "UPDATE runs SET status = ?2, steps = ?3,
               finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1",
        )
        .bind(self.run)
        .bind(status)
        .bind(steps as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The fields strata last applied to each resource (the drift baseline).
    pub async fn applied(&self) -> Result<Vec<(String, Value)>, JournalError> {
        let rows = sqlx::query("SELECT resource, fields FROM applied ORDER BY resource")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let res: String = r.get(0);
                let f: String = r.get(1);
                serde_json::from_str(&f).ok().map(|v| (res, v))
            })
            .collect())
    }

    /// Resources with an intent from an attempt that did not finish (keys are
    /// `dc/kind/name#action`).
    pub async fn resuming(&self) -> Result<Vec<String>, JournalError> {
        let rows = sqlx::query("SELECT key FROM intents ORDER BY key")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let k: String = r.get(0);
                k.split('#').next().map(str::to_string)
            })
            .collect())
    }

    /// Steps in a given state (for reports and tests).
    pub async fn steps_in(&self, state: &str) -> Result<Vec<(String, String)>, JournalError> {
        let rows =
            sqlx::query("SELECT resource, action FROM steps WHERE state = ?1 ORDER BY resource")
                .bind(state)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

#[async_trait]
impl IntentLog for Journal {
    async fn record(&self, key: &str, intent: &Value) {
        // A journal that cannot write must not let the provider go on: but the trait
        // is infallible, so log loudly; the executor checks the journal is writable
        // before each step.
        if let Err(e) = sqlx::query(
            "INSERT INTO intents (key, intent, run_id) VALUES (?1, ?2, ?3)
             ON CONFLICT(key) DO UPDATE SET intent = ?2, run_id = ?3,
               updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
        )
        .bind(key)
        .bind(intent.to_string())
        .bind(self.run)
        .execute(&self.pool)
        .await
        {
            tracing::error!("apply journal: cannot record intent for {key}: {e}");
        }
    }

    async fn previous(&self, key: &str) -> Option<Value> {
        let row = sqlx::query("SELECT intent FROM intents WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .ok()??;
        serde_json::from_str(&row.get::<String, _>(0)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn intents_survive_a_reopen_and_are_cleared_when_done() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("fleet.journal");
        {
            let j = Journal::open(&path).await.expect("open");
            j.started("k1", "fra1/vm/a", "create")
                .await
                .expect("started");
            j.record("fra1/vm/a#create", &serde_json::json!({"vmid": 123}))
                .await;
            // Killed here: no done().
        }
        let j = Journal::open(&path).await.expect("reopen");
        assert_eq!(
            j.previous("fra1/vm/a#create").await,
            Some(serde_json::json!({"vmid": 123}))
        );
        assert_eq!(
            j.steps_in("started").await.expect("steps"),
            vec![("fra1/vm/a".to_string(), "create".to_string())]
        );
        j.started("k1", "fra1/vm/a", "create")
            .await
            .expect("started");
        j.done(
            "k1",
            "fra1/vm/a",
            Some("123"),
            Some(&serde_json::json!({"memory": 1})),
            "fra1/vm/a#create",
        )
        .await
        .expect("done");
        assert_eq!(j.previous("fra1/vm/a#create").await, None);
        assert_eq!(j.applied().await.expect("applied").len(), 1);
        j.finish("succeeded", 1).await.expect("finish");
    }
}
