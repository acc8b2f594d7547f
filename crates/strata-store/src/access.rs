//! API tokens and the audit log.
//!
//! Tokens: the store keeps each token's id, team, role, scopes, expiry and an argon2id
//! hash of its secret (computed by the caller); the secret itself is never stored.
//!
//! Audit: every mutation the server makes is one row, appended with the next sequence
//! number and `hash = sha256(prev_hash ‖ canonical fields)`. [`Store::audit_verify`]
//! walks the chain: a changed, inserted or deleted row breaks it at that row. Appends
//! are serialised (a PostgreSQL advisory lock; SQLite has one writer).

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{Backend, Store, StoreError, now_ms};

/// The chain's first `prev_hash`.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub team: String,
    pub role: String,
    pub scopes: Vec<String>,
    #[serde(skip)]
    pub secret_hash: String,
    pub created_by: String,
    pub created_ms: i64,
    /// 0: never.
    pub expires_ms: i64,
    /// 0: not revoked.
    pub revoked_ms: i64,
    pub last_used_ms: i64,
}

impl TokenRow {
    /// Whether the token may be used at `now`.
    pub fn live(&self, now: i64) -> bool {
        self.revoked_ms == 0 && (self.expires_ms == 0 || now < self.expires_ms)
    }
}

/// What a caller records about one mutation.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    pub actor: &'a str,
    pub team: &'a str,
    pub action: &'a str,
    pub object: &'a str,
    pub before: &'a serde_json::Value,
    pub after: &'a serde_json::Value,
    pub request_id: &'a str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub team: String,
    pub action: String,
    pub object: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub request_id: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The result of walking the audit chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditChain {
    pub entries: i64,
    /// The last row's hash (the chain head a copy elsewhere can be compared with).
    pub head: String,
    /// The first row whose hash or link does not hold, with why.
    pub broken_at: Option<i64>,
    pub reason: Option<String>,
}

/// The hash of one row: over the previous hash and every field, length-prefixed so
/// no two different rows serialise alike.
fn row_hash(prev: &str, seq: i64, at_ms: i64, fields: [&str; 7]) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(seq.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    for f in fields {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

fn token_of(r: &sqlx::any::AnyRow) -> Result<TokenRow, StoreError> {
    let scopes: String = r.try_get(4)?;
    Ok(TokenRow {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        team: r.try_get(2)?,
        role: r.try_get(3)?,
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        secret_hash: r.try_get(5)?,
        created_by: r.try_get(6)?,
        created_ms: r.try_get(7)?,
        expires_ms: r.try_get(8)?,
        revoked_ms: r.try_get(9)?,
        last_used_ms: r.try_get(10)?,
    })
}

const TOKEN_COLUMNS: &str = "id, name, team, role, scopes, secret_hash, created_by, created_ms, \
                             expires_ms, revoked_ms, last_used_ms";

fn audit_of(r: &sqlx::any::AnyRow) -> Result<AuditEntry, StoreError> {
    let before: String = r.try_get(6)?;
    let after: String = r.try_get(7)?;
    Ok(AuditEntry {
        seq: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        actor: r.try_get(2)?,
        team: r.try_get(3)?,
        action: r.try_get(4)?,
        object: r.try_get(5)?,
        before: serde_json::from_str(&before).unwrap_or(serde_json::Value::String(before)),
        after: serde_json::from_str(&after).unwrap_or(serde_json::Value::String(after)),
        request_id: r.try_get(8)?,
        prev_hash: r.try_get(9)?,
        hash: r.try_get(10)?,
    })
}

const AUDIT_COLUMNS: &str =
    "seq, at_ms, actor, team, action, object, before_json, after_json, request_id, prev_hash, hash";

impl Store {
    /// Record a new token (its id must be unique; the caller made it random).
    pub async fn insert_token(&self, t: &TokenRow) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.team)
        .bind(&t.role)
        .bind(t.scopes.join(" "))
        .bind(&t.secret_hash)
        .bind(&t.created_by)
        .bind(t.created_ms)
        .bind(t.expires_ms)
        .bind(t.revoked_ms)
        .bind(t.last_used_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| token_of(&r))
        .transpose()
    }

    /// Tokens of `team` (every team's when `None`), by id, after `cursor`, at most `limit`.
    pub async fn tokens(
        &self,
        team: Option<&str>,
        cursor: &str,
        limit: u32,
    ) -> Result<Vec<TokenRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE ($1 = '' OR team = $2) AND id > $3 \
             ORDER BY id LIMIT $4"
        )))
        .bind(team.unwrap_or(""))
        .bind(team.unwrap_or(""))
        .bind(cursor)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_of).collect()
    }

    /// Revoke a token; false when it does not exist or was already revoked.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE api_tokens SET revoked_ms = $1 WHERE id = $2 AND revoked_ms = 0")
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Note a use (at most once a minute per token, to keep reads cheap).
    pub async fn touch_token(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_tokens SET last_used_ms = $1 WHERE id = $2 AND last_used_ms < $3")
            .bind(now)
            .bind(id)
            .bind(now - 60_000)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Append one audit row; returns its sequence number.
    pub async fn audit(&self, a: &NewAudit<'_>) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(74210003)")
                .execute(&mut *tx)
                .await?;
        }
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (seq, prev) = match last {
            Some(r) => (r.try_get::<i64, _>(0)? + 1, r.try_get::<String, _>(1)?),
            None => (1, GENESIS.to_string()),
        };
        let at = now_ms();
        let before = a.before.to_string();
        let after = a.after.to_string();
        let hash = row_hash(
            &prev,
            seq,
            at,
            [
                a.actor,
                a.team,
                a.action,
                a.object,
                &before,
                &after,
                a.request_id,
            ],
        );
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(seq)
        .bind(at)
        .bind(a.actor)
        .bind(a.team)
        .bind(a.action)
        .bind(a.object)
        .bind(&before)
        .bind(&after)
        .bind(a.request_id)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Audit rows, newest first, before sequence `before` (0: from the newest), of
    /// `team` (all when `None`), at most `limit`.
    pub async fn audit_entries(
        &self,
        team: Option<&str>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE ($1 = '' OR team = $2) AND ($3 = 0 OR seq < $4) \
             ORDER BY seq DESC LIMIT $5"
        )))
        .bind(team.unwrap_or(""))
        .bind(team.unwrap_or(""))
        .bind(before)
        .bind(before)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_of).collect()
    }

    /// Walk the whole chain in order, in pages, recomputing every hash.
    pub async fn audit_verify(&self) -> Result<AuditChain, StoreError> {
        let mut prev = GENESIS.to_string();
        let mut expect_seq = 1i64;
        let mut entries = 0i64;
        loop {
            let rows = sqlx::query(
                "SELECT seq, at_ms, actor, team, action, object, before_json, after_json, \
                 request_id, prev_hash, hash FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT 1000",
            )
            .bind(expect_seq)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let seq: i64 = r.try_get(0)?;
                let at: i64 = r.try_get(1)?;
                let f: Vec<String> = (2..=8)
                    .map(|i| r.try_get::<String, _>(i))
                    .collect::<Result<_, _>>()?;
                let stored_prev: String = r.try_get(9)?;
                let stored: String = r.try_get(10)?;
                let broken = |why: String| AuditChain {
                    entries,
                    head: prev.clone(),
                    broken_at: Some(seq),
                    reason: Some(why),
                };
                if seq != expect_seq {
                    return Ok(broken(format!(
                        "row {expect_seq} is missing (the next row is {seq})"
                    )));
                }
                if stored_prev != prev {
                    return Ok(broken(
                        "its prev_hash is not the previous row's hash".into(),
                    ));
                }
                let want = row_hash(
                    &prev,
                    seq,
                    at,
                    [&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]],
                );
                if want != stored {
                    return Ok(broken(
                        "its contents do not match its hash (the row was changed)".into(),
                    ));
                }
                prev = stored;
                expect_seq += 1;
                entries += 1;
            }
        }
        Ok(AuditChain {
            entries,
            head: prev,
            broken_at: None,
            reason: None,
        })
    }
}
