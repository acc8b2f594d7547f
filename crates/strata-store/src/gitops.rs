//! What the server saw in Git and did about it: commits and their results, saved plans
//! waiting for (or bound by) an approval, the approvals themselves, and a few named
//! values (the allocation lock the server applied with).

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::{Store, StoreError, now_ms};

/// One commit the server processed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommitView {
    pub sha: String,
    pub branch: String,
    pub seen_ms: i64,
    pub updated_ms: i64,
    pub state: String,
    pub result: Option<Value>,
}

/// A saved plan the server made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanView {
    pub hash: String,
    pub commit_sha: String,
    pub origin: String,
    pub created_ms: i64,
    pub state: String,
    pub reasons: Vec<String>,
    /// The saved plan (JSON text, format `strata-plan/1`).
    #[serde(skip)]
    pub saved: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApprovalView {
    pub id: String,
    pub plan_hash: String,
    pub approver: String,
    pub at_ms: i64,
    pub outcome: String,
    pub detail: String,
}

fn commit_of(r: &sqlx::any::AnyRow) -> Result<CommitView, StoreError> {
    let result: Option<String> = r.try_get(5)?;
    Ok(CommitView {
        sha: r.try_get(0)?,
        branch: r.try_get(1)?,
        seen_ms: r.try_get(2)?,
        updated_ms: r.try_get(3)?,
        state: r.try_get(4)?,
        result: result.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

fn plan_of(r: &sqlx::any::AnyRow) -> Result<PlanView, StoreError> {
    let reasons: String = r.try_get(5)?;
    Ok(PlanView {
        hash: r.try_get(0)?,
        commit_sha: r.try_get(1)?,
        origin: r.try_get(2)?,
        created_ms: r.try_get(3)?,
        state: r.try_get(4)?,
        reasons: serde_json::from_str(&reasons).unwrap_or_default(),
        saved: r.try_get(6)?,
    })
}

macro_rules! commit_columns {
    () => {
        "sha, branch, seen_ms, updated_ms, state, result"
    };
}

macro_rules! plan_columns {
    () => {
        "hash, commit_sha, origin, created_ms, state, reasons, saved"
    };
}

impl Store {
    /// Record a commit seen on `branch` (state `queued`). Returns whether it is new.
    pub async fn record_commit(&self, sha: &str, branch: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO commits (sha, branch, seen_ms, updated_ms, state) \
             VALUES ($1, $2, $3, $4, 'queued') ON CONFLICT (sha) DO NOTHING",
        )
        .bind(sha)
        .bind(branch)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Set a commit's state and (when given) its result.
    pub async fn set_commit(
        &self,
        sha: &str,
        state: &str,
        result: Option<&Value>,
    ) -> Result<(), StoreError> {
        let q = match result {
            Some(v) => sqlx::query(
                "UPDATE commits SET state = $1, result = $2, updated_ms = $3 WHERE sha = $4",
            )
            .bind(state)
            .bind(v.to_string()),
            None => sqlx::query("UPDATE commits SET state = $1, updated_ms = $2 WHERE sha = $3")
                .bind(state),
        };
        q.bind(now_ms()).bind(sha).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn commit(&self, sha: &str) -> Result<Option<CommitView>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            commit_columns!(),
            " FROM commits WHERE sha = $1"
        ))
        .bind(sha)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(commit_of)
        .transpose()
    }

    /// The newest commits first, at most `limit`; `before_ms` pages back.
    pub async fn commits(
        &self,
        limit: u32,
        before_ms: Option<i64>,
    ) -> Result<Vec<CommitView>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            commit_columns!(),
            " FROM commits WHERE seen_ms < $1 ORDER BY seen_ms DESC, sha LIMIT $2"
        ))
        .bind(before_ms.unwrap_or(i64::MAX))
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(commit_of).collect()
    }

    /// Save a plan (idempotent on its hash).
    pub async fn save_plan(
        &self,
        hash: &str,
        commit_sha: &str,
        origin: &str,
        state: &str,
        reasons: &[String],
        saved: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO plans (hash, commit_sha, origin, created_ms, state, reasons, saved) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hash) DO NOTHING",
        )
        .bind(hash)
        .bind(commit_sha)
        .bind(origin)
        .bind(now_ms())
        .bind(state)
        .bind(serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into()))
        .bind(saved)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn plan(&self, hash: &str) -> Result<Option<PlanView>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            plan_columns!(),
            " FROM plans WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(plan_of)
        .transpose()
    }

    /// Plans in `state` (all when `None`), newest first, at most `limit`.
    pub async fn plans(
        &self,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PlanView>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            plan_columns!(),
            " FROM plans WHERE ($1 = '' OR state = $2) ORDER BY created_ms DESC, hash LIMIT $3"
        ))
        .bind(state.unwrap_or(""))
        .bind(state.unwrap_or(""))
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(plan_of).collect()
    }

    /// Move plan `hash` from state `from` to `to`. Returns false if it was not in
    /// `from` (someone else moved it first: an approval is acted on once).
    pub async fn move_plan(&self, hash: &str, from: &str, to: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE plans SET state = $1 WHERE hash = $2 AND state = $3")
            .bind(to)
            .bind(hash)
            .bind(from)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Mark every waiting plan but `keep` superseded (a newer commit or drift plan
    /// replaces them). Returns how many.
    pub async fn supersede_waiting(&self, keep: &str) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE plans SET state = 'superseded' WHERE state = 'waiting' AND hash <> $1",
        )
        .bind(keep)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Record an approval attempt and what came of it.
    pub async fn record_approval(
        &self,
        plan_hash: &str,
        approver: &str,
        outcome: &str,
        detail: &str,
    ) -> Result<String, StoreError> {
        // Time-ordered: approvals in the same millisecond keep their order.
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO approvals (id, plan_hash, approver, at_ms, outcome, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(plan_hash)
        .bind(approver)
        .bind(now_ms())
        .bind(outcome)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn approvals(&self, plan_hash: &str) -> Result<Vec<ApprovalView>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, plan_hash, approver, at_ms, outcome, detail FROM approvals \
             WHERE plan_hash = $1 ORDER BY at_ms, id",
        )
        .bind(plan_hash)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApprovalView {
                    id: r.try_get(0)?,
                    plan_hash: r.try_get(1)?,
                    approver: r.try_get(2)?,
                    at_ms: r.try_get(3)?,
                    outcome: r.try_get(4)?,
                    detail: r.try_get(5)?,
                })
            })
            .collect()
    }

    pub async fn get_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query("SELECT value FROM kv WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?)
    }

    /// When `key` was last written (`None`: it has no value): a cheap version for
    /// callers that cache what they derive from a large value.
    pub async fn value_written_ms(&self, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query("SELECT updated_ms FROM kv WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?)
    }

    pub async fn put_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO kv (key, value, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Set `key` only if it has no value yet. Returns whether this call set it (of
    /// servers racing to do a first-start task, exactly one wins).
    pub async fn put_value_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO kv (key, value, updated_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Remove `key`.
    pub async fn delete_value(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM kv WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Who holds lease `name` and until when (`None`: never taken).
    pub async fn lease_holder(&self, name: &str) -> Result<Option<(String, i64, i64)>, StoreError> {
        let row = sqlx::query("SELECT holder, fencing, expires_ms FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .transpose()
    }

    /// The subjects of every running workflow of `kind` (no limit: the running ones
    /// are what is in flight right now).
    pub async fn running_subjects(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT subject FROM workflows WHERE kind = $1 AND state = 'running' ORDER BY id",
        )
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Workflows, newest first, of `kind` (all when `None`), at most `limit`.
    pub async fn workflows(
        &self,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, subject, state FROM workflows WHERE ($1 = '' OR kind = $2) \
             ORDER BY created_ms DESC, id LIMIT $3",
        )
        .bind(kind.unwrap_or(""))
        .bind(kind.unwrap_or(""))
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }

    /// The newest workflow of `kind` whose subject ends with `suffix`.
    pub async fn latest_workflow(
        &self,
        kind: &str,
        suffix: &str,
    ) -> Result<Option<crate::WorkflowView>, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM workflows WHERE kind = $1 AND subject LIKE $2 \
             ORDER BY created_ms DESC, id DESC LIMIT 1",
        )
        .bind(kind)
        .bind(format!("%{}", suffix.replace(['%', '_'], "")))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => self.workflow(&r.try_get::<String, _>(0)?).await,
            None => Ok(None),
        }
    }
}
