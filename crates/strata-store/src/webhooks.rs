//! Outbound webhooks: subscriptions to the audit log and their delivery attempts.
//!
//! The audit log is the event source: every mutation is one record, in `seq` order.
//! A subscription keeps a durable cursor (the last `seq` it is done with); the
//! deliverer moves it only past a record that was delivered (or that the
//! subscription does not want), with a compare-and-set on the cursor, so a record
//! that failed is tried again until it is delivered, nothing after it goes first,
//! and a restart resumes where the cursor stands. The store keeps the last
//! [`KEPT_DELIVERIES`] attempts per subscription for people to read.
//!
//! The signing secret is stored sealed by the caller (`secret_sealed`); this crate
//! never sees it in clear.

use serde::Serialize;
use sqlx::Row;

use crate::{AuditEntry, Store, StoreError};

/// Delivery attempts kept per subscription (older ones are dropped).
pub const KEPT_DELIVERIES: i64 = 200;

/// One subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    /// The sealed signing secret; never serialised.
    #[serde(skip)]
    pub secret_sealed: String,
    /// Action patterns: `*`, `ip.*`, `machine.decommission`.
    pub events: Vec<String>,
    /// The team whose records it receives; `*` for every record.
    pub team: String,
    pub created_by: String,
    pub created_ms: i64,
    /// The last audit `seq` it is done with.
    pub cursor_seq: i64,
    /// Failed attempts at the record after the cursor.
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: String,
    /// Records delivered so far.
    pub delivered: i64,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRow {
    pub id: String,
    pub subscription_id: String,
    pub seq: i64,
    pub action: String,
    pub attempt: i64,
    pub at_ms: i64,
    pub duration_ms: i64,
    /// `delivered` or `failed`.
    pub outcome: String,
    /// The receiver's HTTP status; 0 when it did not answer.
    pub http_status: i64,
    pub error: String,
}

const SUB_COLUMNS: &str = "id, url, secret_sealed, events, team, created_by, created_ms, \
     cursor_seq, attempts, next_attempt_ms, last_error, delivered";

const DELIVERY_COLUMNS: &str =
    "id, subscription_id, seq, action, attempt, at_ms, duration_ms, outcome, http_status, error";

const AUDIT_COLUMNS: &str =
    "seq, at_ms, actor, team, action, object, before_json, after_json, request_id, prev_hash, hash";

fn sub_of(r: &sqlx::any::AnyRow) -> Result<WebhookRow, StoreError> {
    let events: String = r.try_get(3)?;
    Ok(WebhookRow {
        id: r.try_get(0)?,
        url: r.try_get(1)?,
        secret_sealed: r.try_get(2)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        team: r.try_get(4)?,
        created_by: r.try_get(5)?,
        created_ms: r.try_get(6)?,
        cursor_seq: r.try_get(7)?,
        attempts: r.try_get(8)?,
        next_attempt_ms: r.try_get(9)?,
        last_error: r.try_get(10)?,
        delivered: r.try_get(11)?,
    })
}

fn delivery_of(r: &sqlx::any::AnyRow) -> Result<DeliveryRow, StoreError> {
    Ok(DeliveryRow {
        id: r.try_get(0)?,
        subscription_id: r.try_get(1)?,
        seq: r.try_get(2)?,
        action: r.try_get(3)?,
        attempt: r.try_get(4)?,
        at_ms: r.try_get(5)?,
        duration_ms: r.try_get(6)?,
        outcome: r.try_get(7)?,
        http_status: r.try_get(8)?,
        error: r.try_get(9)?,
    })
}

fn audit_of(r: &sqlx::any::AnyRow) -> Result<AuditEntry, StoreError> {
    let json = |i: usize| -> Result<serde_json::Value, StoreError> {
        let t: String = r.try_get(i)?;
        Ok(serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
    };
    Ok(AuditEntry {
        seq: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        actor: r.try_get(2)?,
        team: r.try_get(3)?,
        action: r.try_get(4)?,
        object: r.try_get(5)?,
        before: json(6)?,
        after: json(7)?,
        request_id: r.try_get(8)?,
        prev_hash: r.try_get(9)?,
        hash: r.try_get(10)?,
    })
}

impl Store {
    /// The newest audit record's `seq` (0: the log is empty).
    pub async fn audit_head(&self) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM audit_log")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get(0)?)
    }

    /// Audit records after `after_seq`, oldest first: only `team`'s when given, only
    /// those whose action starts with `action_prefix` when given; at most `limit`.
    pub async fn audit_after(
        &self,
        after_seq: i64,
        team: Option<&str>,
        action_prefix: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        // `LIKE` with the prefix's own `%` and `_` escaped (`\` is the escape).
        let like = action_prefix
            .map(|p| {
                let mut e = String::new();
                for c in p.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        e.push('\\');
                    }
                    e.push(c);
                }
                e.push('%');
                e
            })
            .unwrap_or_default();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 AND ($2 = '' OR team = $3) \
             AND ($4 = '' OR action LIKE $5 ESCAPE '\\') ORDER BY seq LIMIT $6"
        )))
        .bind(after_seq)
        .bind(team.unwrap_or(""))
        .bind(team.unwrap_or(""))
        .bind(&like)
        .bind(&like)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_of).collect()
    }

    /// Record a new subscription (its id must be unique; the caller made it random).
    pub async fn insert_webhook(&self, w: &WebhookRow) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhook_subscriptions ({SUB_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )))
        .bind(&w.id)
        .bind(&w.url)
        .bind(&w.secret_sealed)
        .bind(serde_json::to_string(&w.events).unwrap_or_else(|_| "[]".into()))
        .bind(&w.team)
        .bind(&w.created_by)
        .bind(w.created_ms)
        .bind(w.cursor_seq)
        .bind(w.attempts)
        .bind(w.next_attempt_ms)
        .bind(&w.last_error)
        .bind(w.delivered)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn webhook(&self, id: &str) -> Result<Option<WebhookRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUB_COLUMNS} FROM webhook_subscriptions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| sub_of(&r))
        .transpose()
    }

    /// Every subscription (only `team`'s when given), oldest first.
    pub async fn webhooks(&self, team: Option<&str>) -> Result<Vec<WebhookRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUB_COLUMNS} FROM webhook_subscriptions WHERE ($1 = '' OR team = $2) \
             ORDER BY created_ms, id"
        )))
        .bind(team.unwrap_or(""))
        .bind(team.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sub_of).collect()
    }

    /// Delete a subscription and its attempts; false when there was none.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM webhook_subscriptions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM webhook_deliveries WHERE subscription_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Move subscription `id`'s cursor from `from_seq` to `to_seq` (forward only),
    /// clearing its failures; `delivered` records were delivered on the way. False
    /// when the cursor was no longer at `from_seq` (another deliverer moved it) or the
    /// subscription is gone.
    pub async fn webhook_advance(
        &self,
        id: &str,
        from_seq: i64,
        to_seq: i64,
        delivered: i64,
    ) -> Result<bool, StoreError> {
        if to_seq <= from_seq {
            return Ok(true);
        }
        let n = sqlx::query(
            "UPDATE webhook_subscriptions SET cursor_seq = $1, attempts = 0, next_attempt_ms = 0, \
             last_error = '', delivered = delivered + $2 WHERE id = $3 AND cursor_seq = $4",
        )
        .bind(to_seq)
        .bind(delivered)
        .bind(id)
        .bind(from_seq)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Record a failed attempt at the record after cursor `at_seq`: `attempts` so
    /// far, no new attempt before `next_attempt_ms`. The cursor does not move.
    pub async fn webhook_failed(
        &self,
        id: &str,
        at_seq: i64,
        attempts: i64,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE webhook_subscriptions SET attempts = $1, next_attempt_ms = $2, last_error = $3 \
             WHERE id = $4 AND cursor_seq = $5",
        )
        .bind(attempts)
        .bind(next_attempt_ms)
        .bind(error)
        .bind(id)
        .bind(at_seq)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Record one attempt, keeping the newest [`KEPT_DELIVERIES`] of its subscription.
    pub async fn record_delivery(&self, d: &DeliveryRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Not for a subscription deleted while the attempt was in flight.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
             WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE id = $11)"
        )))
        .bind(&d.id)
        .bind(&d.subscription_id)
        .bind(d.seq)
        .bind(&d.action)
        .bind(d.attempt)
        .bind(d.at_ms)
        .bind(d.duration_ms)
        .bind(&d.outcome)
        .bind(d.http_status)
        .bind(&d.error)
        .bind(&d.subscription_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE subscription_id = $1 AND id NOT IN \
             (SELECT id FROM webhook_deliveries WHERE subscription_id = $2 ORDER BY id DESC LIMIT $3)",
        )
        .bind(&d.subscription_id)
        .bind(&d.subscription_id)
        .bind(KEPT_DELIVERIES)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Subscription `id`'s newest attempts first, at most `limit`.
    pub async fn webhook_deliveries(
        &self,
        id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE subscription_id = $1 \
             ORDER BY id DESC LIMIT $2"
        )))
        .bind(id)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_of).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewAudit, now_ms};
    use serde_json::{Value, json};

    fn sub(id: &str, team: &str, cursor: i64) -> WebhookRow {
        WebhookRow {
            id: id.into(),
            url: "https://cmdb.example/hook".into(),
            secret_sealed: "v1:sealed".into(),
            events: vec!["ip.*".into()],
            team: team.into(),
            created_by: "token:x".into(),
            created_ms: now_ms(),
            cursor_seq: cursor,
            attempts: 0,
            next_attempt_ms: 0,
            last_error: String::new(),
            delivered: 0,
        }
    }

    async fn audit(s: &Store, team: &str, action: &str) -> i64 {
        s.audit(&NewAudit {
            actor: "t",
            team,
            action,
            object: "ip/1",
            before: &Value::Null,
            after: &json!({"a": 1}),
            request_id: "r",
        })
        .await
        .expect("audit")
    }

    #[tokio::test]
    async fn webhooks_on_sqlite() {
        protocol(Store::connect("sqlite::memory:").await.expect("store")).await;
    }

    /// The same on the PostgreSQL beside the tests (see `tests/store.rs`), in a
    /// schema of its own.
    #[tokio::test]
    async fn webhooks_on_postgres() {
        let base = std::env::var("STRATA_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let schema = format!("strata_wh_{}", uuid::Uuid::new_v4().simple());
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
        assert_eq!(s.audit_head().await.expect("head"), 0);
        let a = audit(&s, "ml", "ip.allocate").await;
        let b = audit(&s, "web", "ip.allocate").await;
        let c = audit(&s, "ml", "token.create").await;
        let d = audit(&s, "ml", "ip_x.release").await;
        assert_eq!(s.audit_head().await.expect("head"), d);
        let seqs = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(s.audit_after(0, None, None, 10).await.expect("all")),
            [a, b, c, d]
        );
        assert_eq!(
            seqs(s.audit_after(a, Some("ml"), None, 10).await.expect("ml")),
            [c, d]
        );
        // The prefix is literal: `ip.` does not match `ip_x.` (nor would `_` match any).
        assert_eq!(
            seqs(s.audit_after(0, None, Some("ip."), 10).await.expect("ip")),
            [a, b]
        );
        assert_eq!(
            seqs(s.audit_after(0, None, Some("ip_"), 10).await.expect("ip_")),
            [d]
        );
        assert_eq!(
            s.audit_after(0, None, None, 2).await.expect("limit").len(),
            2
        );

        s.insert_webhook(&sub("w1", "*", 0)).await.expect("insert");
        s.insert_webhook(&sub("w2", "ml", b)).await.expect("insert");
        assert_eq!(s.webhooks(None).await.expect("all").len(), 2);
        let ml = s.webhooks(Some("ml")).await.expect("ml");
        assert_eq!(ml.len(), 1);
        assert_eq!(ml[0].events, ["ip.*"]);
        assert_eq!(ml[0].secret_sealed, "v1:sealed");
        // The cursor moves forward by compare-and-set only.
        assert!(s.webhook_advance("w1", 0, a, 1).await.expect("advance"));
        assert!(!s.webhook_advance("w1", 0, b, 1).await.expect("stale"));
        assert!(
            s.webhook_failed("w1", a, 1, 99, "HTTP 500")
                .await
                .expect("fail")
        );
        assert!(
            !s.webhook_failed("w1", 0, 2, 99, "stale")
                .await
                .expect("fail")
        );
        let w = s.webhook("w1").await.expect("get").expect("w1");
        assert_eq!(
            (
                w.cursor_seq,
                w.attempts,
                w.next_attempt_ms,
                w.last_error.as_str()
            ),
            (a, 1, 99, "HTTP 500")
        );
        assert!(s.webhook_advance("w1", a, b, 1).await.expect("advance"));
        let w = s.webhook("w1").await.expect("get").expect("w1");
        assert_eq!((w.cursor_seq, w.attempts, w.delivered), (b, 0, 2));
        // Attempts: newest first, bounded.
        let attempt = |sub: &str, seq: i64| DeliveryRow {
            id: uuid::Uuid::now_v7().to_string(),
            subscription_id: sub.into(),
            seq,
            action: "ip.allocate".into(),
            attempt: 1,
            at_ms: now_ms(),
            duration_ms: 3,
            outcome: "delivered".into(),
            http_status: 200,
            error: String::new(),
        };
        for i in 0..(KEPT_DELIVERIES + 5) {
            s.record_delivery(&attempt("w1", i)).await.expect("record");
        }
        // None for a subscription that is gone.
        s.record_delivery(&attempt("gone", 1))
            .await
            .expect("record");
        assert!(
            s.webhook_deliveries("gone", 10)
                .await
                .expect("none")
                .is_empty()
        );
        let got = s.webhook_deliveries("w1", 1000).await.expect("deliveries");
        assert_eq!(got.len() as i64, KEPT_DELIVERIES);
        assert_eq!(got[0].seq, KEPT_DELIVERIES + 4);
        assert!(
            s.webhook_deliveries("w2", 10)
                .await
                .expect("none")
                .is_empty()
        );
        assert!(s.delete_webhook("w1").await.expect("delete"));
        assert!(!s.delete_webhook("w1").await.expect("again"));
        assert!(s.webhook("w1").await.expect("get").is_none());
        assert!(
            s.webhook_deliveries("w1", 10)
                .await
                .expect("gone")
                .is_empty()
        );
    }
}
