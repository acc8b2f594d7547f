//! Self-service requests: what a team asked for, what it counts against the team's
//! quota, where it was placed, what was made for it, and its workflows.
//!
//! A request and the workflow that provisions it are written in one transaction,
//! after the team's live requests (every one not yet released, but for those that
//! failed before anything was placed) were summed under a
//! lock (a PostgreSQL advisory lock; SQLite has one writer): two requests racing for
//! the last GPUs cannot both pass the quota. A request that needs an approval has
//! the first step of its workflow *held* (never claimable) until
//! [`Store::approve_request`] lets it go. A release is a second workflow, started in
//! the same transaction that marks the request `releasing`, once.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::{Backend, StepSpec, Store, StoreError, now_ms};

/// `not_before_ms` of a held step: no claim ever reaches it.
const HELD: i64 = i64::MAX;

/// What a request counts against its team's quota (or what a quota allows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub instances: i64,
    pub cores: i64,
    pub ram_mib: i64,
    pub gpus: i64,
}

impl Usage {
    pub fn plus(&self, o: &Usage) -> Usage {
        Usage {
            instances: self.instances + o.instances,
            cores: self.cores + o.cores,
            ram_mib: self.ram_mib + o.ram_mib,
            gpus: self.gpus + o.gpus,
        }
    }

    /// Every part is within `limit`.
    pub fn within(&self, limit: &Usage) -> bool {
        self.instances <= limit.instances
            && self.cores <= limit.cores
            && self.ram_mib <= limit.ram_mib
            && self.gpus <= limit.gpus
    }
}

/// One request as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RequestRow {
    pub id: String,
    pub team: String,
    pub name: String,
    /// `vm`, `metal` or `gpu`.
    pub kind: String,
    /// `approval`, `provisioning`, `ready`, `failed`, `releasing` or `released`.
    pub state: String,
    /// The request as accepted.
    pub spec: Value,
    pub usage: Usage,
    /// Where it was placed (empty until placed).
    pub dc: String,
    pub placement: Option<Value>,
    pub resources: Option<Value>,
    pub workflow_id: String,
    /// Empty until a release started.
    pub release_workflow_id: String,
    pub created_by: String,
    pub approved_by: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// 0: never expires.
    pub expires_ms: i64,
    pub detail: String,
}

const COLUMNS: &str = "id, team, name, kind, state, spec, instances, cores, ram_mib, gpus, dc, \
     placement, resources, workflow_id, release_workflow_id, created_by, approved_by, \
     created_ms, updated_ms, expires_ms, detail";

fn json_of(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn row_of(r: &sqlx::any::AnyRow) -> Result<RequestRow, StoreError> {
    let spec: String = r.try_get(5)?;
    Ok(RequestRow {
        id: r.try_get(0)?,
        team: r.try_get(1)?,
        name: r.try_get(2)?,
        kind: r.try_get(3)?,
        state: r.try_get(4)?,
        spec: serde_json::from_str(&spec).unwrap_or(Value::Null),
        usage: Usage {
            instances: r.try_get(6)?,
            cores: r.try_get(7)?,
            ram_mib: r.try_get(8)?,
            gpus: r.try_get(9)?,
        },
        dc: r.try_get(10)?,
        placement: json_of(r.try_get(11)?),
        resources: json_of(r.try_get(12)?),
        workflow_id: r.try_get(13)?,
        release_workflow_id: r.try_get(14)?,
        created_by: r.try_get(15)?,
        approved_by: r.try_get(16)?,
        created_ms: r.try_get(17)?,
        updated_ms: r.try_get(18)?,
        expires_ms: r.try_get(19)?,
        detail: r.try_get(20)?,
    })
}

/// A new workflow, inside `tx`: its row and steps (the first held when `hold_first`).
/// Returns its id, or the id of the workflow that already has `key`.
async fn insert_workflow(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &str,
    kind: &str,
    subject: &str,
    steps: &[StepSpec],
    hold_first: bool,
) -> Result<(String, bool), StoreError> {
    if steps.is_empty() {
        return Err(StoreError::NoSteps(key.to_string()));
    }
    if let Some(r) = sqlx::query("SELECT id FROM workflows WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?
    {
        return Ok((r.try_get(0)?, false));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO workflows (id, key, kind, subject, state, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, 'running', $5, $6)",
    )
    .bind(&id)
    .bind(key)
    .bind(kind)
    .bind(subject)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    for (i, s) in steps.iter().enumerate() {
        let not_before = if i == 0 && hold_first { HELD } else { 0 };
        sqlx::query(
            "INSERT INTO steps (workflow_id, idx, name, state, attempts, max_attempts, \
             timeout_ms, not_before_ms) VALUES ($1, $2, $3, 'pending', 0, $4, $5, $6)",
        )
        .bind(&id)
        .bind(i64::try_from(i).unwrap_or(i64::MAX))
        .bind(&s.name)
        .bind(i64::from(s.max_attempts.max(1)))
        .bind(i64::try_from(s.timeout.as_millis()).unwrap_or(i64::MAX))
        .bind(not_before)
        .execute(&mut **tx)
        .await?;
    }
    Ok((id, true))
}

impl Store {
    /// What `team`'s live requests count, in `tx`: every one not released, but for
    /// those that failed before they were placed (nothing was made for them).
    async fn usage_in(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        team: &str,
    ) -> Result<Usage, StoreError> {
        // SUM over BIGINT is NUMERIC on PostgreSQL: cast back, on both databases.
        let r = sqlx::query(
            "SELECT CAST(COALESCE(SUM(instances), 0) AS BIGINT), \
             CAST(COALESCE(SUM(cores), 0) AS BIGINT), \
             CAST(COALESCE(SUM(ram_mib), 0) AS BIGINT), CAST(COALESCE(SUM(gpus), 0) AS BIGINT) \
             FROM requests WHERE team = $1 AND state <> 'released' \
             AND NOT (state = 'failed' AND dc = '')",
        )
        .bind(team)
        .fetch_one(&mut **tx)
        .await?;
        let n = |i: usize| -> Result<i64, StoreError> { Ok(r.try_get::<i64, _>(i)?) };
        Ok(Usage {
            instances: n(0)?,
            cores: n(1)?,
            ram_mib: n(2)?,
            gpus: n(3)?,
        })
    }

    /// What `team`'s live requests count against its quota.
    pub async fn team_usage(&self, team: &str) -> Result<Usage, StoreError> {
        let mut tx = self.pool.begin().await?;
        let u = Self::usage_in(&mut tx, team).await?;
        tx.rollback().await?;
        Ok(u)
    }

    /// Record request `row` and start its workflow (`kind` `request`, subject
    /// `{team}/{id}`, key `request:{id}`; the first step held when `hold_first`), if
    /// the team's live requests plus this one stay within `limit`. `Ok(Err(used))`:
    /// over the quota, nothing written; `used` is what the team's requests hold.
    pub async fn create_request(
        &self,
        row: &RequestRow,
        limit: &Usage,
        steps: &[StepSpec],
        hold_first: bool,
    ) -> Result<Result<RequestRow, Usage>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(74210005)")
                .execute(&mut *tx)
                .await?;
        }
        let used = Self::usage_in(&mut tx, &row.team).await?;
        if !used.plus(&row.usage).within(limit) {
            tx.rollback().await?;
            return Ok(Err(used));
        }
        let subject = format!("{}/{}", row.team, row.id);
        let (workflow, _) = insert_workflow(
            &mut tx,
            &format!("request:{}", row.id),
            "request",
            &subject,
            steps,
            hold_first,
        )
        .await?;
        let now = now_ms();
        let mut stored = row.clone();
        stored.workflow_id = workflow.clone();
        stored.created_ms = now;
        stored.updated_ms = now;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        )))
        .bind(&stored.id)
        .bind(&stored.team)
        .bind(&stored.name)
        .bind(&stored.kind)
        .bind(&stored.state)
        .bind(stored.spec.to_string())
        .bind(stored.usage.instances)
        .bind(stored.usage.cores)
        .bind(stored.usage.ram_mib)
        .bind(stored.usage.gpus)
        .bind(&stored.dc)
        .bind(stored.placement.as_ref().map(Value::to_string))
        .bind(stored.resources.as_ref().map(Value::to_string))
        .bind(&stored.workflow_id)
        .bind(&stored.release_workflow_id)
        .bind(&stored.created_by)
        .bind(&stored.approved_by)
        .bind(stored.created_ms)
        .bind(stored.updated_ms)
        .bind(stored.expires_ms)
        .bind(&stored.detail)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.event(&workflow, "started", &format!("request {subject}"))
            .await?;
        Ok(Ok(stored))
    }

    pub async fn request(&self, id: &str) -> Result<Option<RequestRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| row_of(&r))
        .transpose()
    }

    /// Requests of `team` (every team's when `None`), by id, after `cursor`, at most
    /// `limit`.
    pub async fn requests(
        &self,
        team: Option<&str>,
        cursor: &str,
        limit: u32,
    ) -> Result<Vec<RequestRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM requests WHERE ($1 = '' OR team = $2) AND id > $3 \
             ORDER BY id LIMIT $4"
        )))
        .bind(team.unwrap_or(""))
        .bind(team.unwrap_or(""))
        .bind(cursor)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }

    /// Move request `id` to `state` (with `detail`) when its state is one of `from`
    /// (any but `released` when empty). Whether it moved.
    pub async fn set_request_state(
        &self,
        id: &str,
        from: &[&str],
        state: &str,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let current = match self.request(id).await? {
            Some(r) => r.state,
            None => return Ok(false),
        };
        let allowed = if from.is_empty() {
            current != "released"
        } else {
            from.contains(&current.as_str())
        };
        if !allowed {
            return Ok(false);
        }
        let r = sqlx::query(
            "UPDATE requests SET state = $1, detail = $2, updated_ms = $3 \
             WHERE id = $4 AND state = $5",
        )
        .bind(state)
        .bind(detail)
        .bind(now_ms())
        .bind(id)
        .bind(&current)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Record where request `id` was placed.
    pub async fn set_request_placement(
        &self,
        id: &str,
        dc: &str,
        placement: &Value,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE requests SET dc = $1, placement = $2, updated_ms = $3 WHERE id = $4")
            .bind(dc)
            .bind(placement.to_string())
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Record what was made for request `id`, as last observed.
    pub async fn set_request_resources(
        &self,
        id: &str,
        resources: &Value,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE requests SET resources = $1, updated_ms = $2 WHERE id = $3")
            .bind(resources.to_string())
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Approve request `id` (state `approval`) for `by`: the held first step of its
    /// workflow becomes claimable. `false` when it was not waiting for an approval.
    pub async fn approve_request(&self, id: &str, by: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE requests SET state = 'provisioning', approved_by = $1, detail = '', \
             updated_ms = $2 WHERE id = $3 AND state = 'approval' RETURNING workflow_id",
        )
        .bind(by)
        .bind(now_ms())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = r else {
            tx.rollback().await?;
            return Ok(false);
        };
        let workflow: String = r.try_get(0)?;
        sqlx::query(
            "UPDATE steps SET not_before_ms = 0 WHERE workflow_id = $1 AND idx = 0 \
             AND state = 'pending' AND not_before_ms = $2",
        )
        .bind(&workflow)
        .bind(HELD)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.event(&workflow, "approved", &format!("by {by}"))
            .await?;
        Ok(true)
    }

    /// Start the release of request `id` (key `request-release:{id}`, kind `request`,
    /// the request's subject) and mark it `releasing`, once: `None` when it is
    /// releasing or released already (or does not exist).
    pub async fn release_request(
        &self,
        id: &str,
        steps: &[StepSpec],
        detail: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT team, state FROM requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let team: String = row.try_get(0)?;
        let state: String = row.try_get(1)?;
        if state == "releasing" || state == "released" {
            tx.rollback().await?;
            return Ok(None);
        }
        let subject = format!("{team}/{id}");
        let (workflow, _) = insert_workflow(
            &mut tx,
            &format!("request-release:{id}"),
            "request",
            &subject,
            steps,
            false,
        )
        .await?;
        let moved = sqlx::query(
            "UPDATE requests SET state = 'releasing', release_workflow_id = $1, detail = $2, \
             updated_ms = $3 WHERE id = $4 AND state = $5",
        )
        .bind(&workflow)
        .bind(detail)
        .bind(now_ms())
        .bind(id)
        .bind(&state)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        self.event(&workflow, "started", &format!("release {subject}"))
            .await?;
        Ok(Some(workflow))
    }

    /// Requests past their expiry (`expires_ms` at or before `now`) that are not
    /// being released or released, oldest expiry first.
    pub async fn expired_requests(&self, now: i64) -> Result<Vec<RequestRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM requests WHERE state NOT IN ('releasing', 'released') \
             AND expires_ms > 0 AND expires_ms <= $1 ORDER BY expires_ms, id LIMIT 100"
        )))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, team: &str, gpus: i64) -> RequestRow {
        RequestRow {
            id: id.into(),
            team: team.into(),
            name: "train".into(),
            kind: "gpu".into(),
            state: "provisioning".into(),
            spec: serde_json::json!({"flavor": "g1"}),
            usage: Usage {
                instances: 1,
                cores: 24,
                ram_mib: 1024,
                gpus,
            },
            dc: String::new(),
            placement: None,
            resources: None,
            workflow_id: String::new(),
            release_workflow_id: String::new(),
            created_by: "token:x".into(),
            approved_by: String::new(),
            created_ms: 0,
            updated_ms: 0,
            expires_ms: 0,
            detail: String::new(),
        }
    }

    fn steps() -> Vec<StepSpec> {
        ["approve", "place"]
            .iter()
            .map(|n| StepSpec::new(*n))
            .collect()
    }

    #[tokio::test]
    async fn requests_on_sqlite() {
        protocol(Store::connect("sqlite::memory:").await.expect("store")).await;
    }

    /// The same on the PostgreSQL beside the tests (see `tests/store.rs`), in a
    /// schema of its own.
    #[tokio::test]
    async fn requests_on_postgres() {
        let base = std::env::var("STRATA_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let schema = format!("strata_req_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 (or STRATA_TEST_POSTGRES)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let s = Store::connect(&format!("{base}{sep}options=-c%20search_path%3D{schema}"))
            .await
            .expect("store");
        protocol(s).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut conn)
            .await
            .expect("drop");
    }

    async fn protocol(s: Store) {
        let limit = Usage {
            instances: 10,
            cores: 100,
            ram_mib: 10_000,
            gpus: 8,
        };
        let a = s
            .create_request(&row("req-a", "ml", 6), &limit, &steps(), true)
            .await
            .expect("db")
            .expect("within quota");
        assert!(!a.workflow_id.is_empty());
        // 6 + 3 > 8: refused, nothing written; another team is not affected.
        let used = s
            .create_request(&row("req-b", "ml", 3), &limit, &steps(), false)
            .await
            .expect("db")
            .expect_err("over quota");
        assert_eq!(used.gpus, 6);
        assert!(s.request("req-b").await.expect("db").is_none());
        assert!(
            s.create_request(&row("req-c", "other", 8), &limit, &steps(), false)
                .await
                .expect("db")
                .is_ok()
        );
        // The held first step is never claimed until the approval.
        assert!(
            s.claim("w", None, now_ms())
                .await
                .expect("claim")
                .is_some_and(|c| c.subject == "other/req-c")
        );
        assert!(s.claim("w", None, now_ms()).await.expect("claim").is_none());
        let mut waiting = row("req-d", "team3", 1);
        waiting.state = "approval".into();
        let d = s
            .create_request(&waiting, &limit, &steps(), true)
            .await
            .expect("db")
            .expect("ok");
        assert!(s.claim("w", None, now_ms()).await.expect("claim").is_none());
        assert!(s.approve_request("req-d", "token:op").await.expect("db"));
        assert!(
            !s.approve_request("req-d", "token:op").await.expect("db"),
            "once"
        );
        let c = s
            .claim("w", None, now_ms())
            .await
            .expect("claim")
            .expect("claimable");
        assert_eq!(
            (c.workflow.as_str(), c.name.as_str()),
            (d.workflow_id.as_str(), "approve")
        );
        assert_eq!(
            s.request("req-d")
                .await
                .expect("db")
                .expect("row")
                .approved_by,
            "token:op"
        );
        // A release starts once; released requests no longer count.
        let rel = s
            .release_request("req-a", &steps(), "released by x")
            .await
            .expect("db")
            .expect("started");
        assert!(
            s.release_request("req-a", &steps(), "again")
                .await
                .expect("db")
                .is_none()
        );
        let a = s.request("req-a").await.expect("db").expect("row");
        assert_eq!(
            (a.state.as_str(), a.release_workflow_id.as_str()),
            ("releasing", rel.as_str())
        );
        assert_eq!(
            s.team_usage("ml").await.expect("db").gpus,
            6,
            "releasing still counts"
        );
        assert!(
            s.set_request_state("req-a", &["releasing"], "released", "")
                .await
                .expect("db")
        );
        assert!(
            !s.set_request_state("req-a", &[], "ready", "")
                .await
                .expect("db"),
            "released is final"
        );
        assert_eq!(s.team_usage("ml").await.expect("db"), Usage::default());
        // A request that failed before it was placed holds nothing.
        let f = s
            .create_request(&row("req-f", "ml", 2), &limit, &steps(), false)
            .await
            .expect("db")
            .expect("ok");
        assert_eq!(s.team_usage("ml").await.expect("db").gpus, 2);
        assert!(
            s.set_request_state(&f.id, &["provisioning"], "failed", "no room")
                .await
                .expect("db")
        );
        assert_eq!(s.team_usage("ml").await.expect("db").gpus, 0);
        // Expiry.
        let mut e = row("req-e", "ml", 0);
        e.expires_ms = 5;
        s.create_request(&e, &limit, &steps(), false)
            .await
            .expect("db")
            .expect("ok");
        let expired: Vec<String> = s
            .expired_requests(10)
            .await
            .expect("db")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(expired, ["req-e"]);
        assert!(s.expired_requests(4).await.expect("db").is_empty());
        let page = s.requests(Some("ml"), "", 10).await.expect("db");
        assert_eq!(
            page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["req-a", "req-e", "req-f"]
        );
        assert_eq!(s.requests(None, "req-c", 10).await.expect("db").len(), 3);
    }
}
