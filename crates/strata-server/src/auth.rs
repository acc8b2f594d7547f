//! Who is calling and what they may do.
//!
//! Every `/api/v1` request carries `Authorization: Bearer <token>`: an API token
//! (`strata_<id>_<secret>`, made by [`issue_token`], stored as an argon2id hash, shown
//! once) or, when OIDC is configured, a JWT from the identity provider. Either way the
//! caller becomes a [`Principal`]: an actor name, grants (`team` → [`Role`]; team `*`
//! is the whole fleet) and scopes (`read`, `write`).
//!
//! Objects belong to a team or to the fleet. A read of another team's object is
//! answered exactly like a read of a missing one (404): the API never confirms what a
//! caller may not see. Each principal also has a request budget ([`RateLimits`]).
//!
//! This module decides; it never writes anything but token rows and never logs a
//! token.

use std::collections::HashMap;
use std::time::Instant;

use argon2::{PasswordHasher, PasswordVerifier};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strata_store::{Store, TokenRow, now_ms};

use crate::http::Problem;

pub use crate::oidc::{Grant, Role};

/// The team `FLEET` stands for every team and the fleet's own objects.
pub const FLEET: &str = Grant::FLEET;

/// The authenticated caller.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    /// `token:<id>` or `oidc:<subject>`.
    pub actor: String,
    pub grants: Vec<Grant>,
    pub read: bool,
    pub write: bool,
}

impl Principal {
    /// The strongest role the caller has in `team` (a fleet grant counts in every team).
    pub fn role_in(&self, team: &str) -> Option<Role> {
        self.grants
            .iter()
            .filter(|g| g.team == team || g.team == FLEET)
            .map(|g| g.role)
            .max()
    }

    pub fn fleet_role(&self) -> Option<Role> {
        self.role_in(FLEET)
    }

    /// The teams whose objects the caller sees (`None`: all of them).
    pub fn visible_teams(&self) -> Option<Vec<String>> {
        if self.fleet_role().is_some() {
            return None;
        }
        let mut t: Vec<String> = self.grants.iter().map(|g| g.team.clone()).collect();
        t.sort();
        t.dedup();
        Some(t)
    }

    /// May the caller see `team`'s object? `Err` is the 404 a missing object gets.
    pub fn see(&self, team: &str, missing: impl FnOnce() -> Problem) -> Result<Role, Problem> {
        self.role_in(team).ok_or_else(missing)
    }

    /// May the caller do something needing `min` in `team` (whose object it can see)?
    pub fn need(&self, team: &str, min: Role, what: &str) -> Result<(), Problem> {
        if !self.write {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "insufficient-scope",
                "this token has the read scope only",
            ));
        }
        match self.role_in(team) {
            Some(r) if r >= min => Ok(()),
            _ => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{what} needs the {min} role in {}",
                    if team == FLEET {
                        "the fleet".to_string()
                    } else {
                        format!("team {team}")
                    }
                ),
            )),
        }
    }

    /// Reads of fleet-wide objects (commits, plans, fleet workflows, audit) need a
    /// fleet grant.
    pub fn see_fleet(&self) -> Result<Role, Problem> {
        self.fleet_role().ok_or_else(|| {
            Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "fleet-wide objects need a fleet grant (a token of team \"*\")",
            )
        })
    }
}

/// A token as its owner sees it once.
#[derive(Debug, Serialize)]
pub struct IssuedToken {
    /// The whole bearer token; it is not stored and cannot be shown again.
    pub token: String,
    #[serde(flatten)]
    pub row: TokenRow,
}

/// What a caller asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    pub team: String,
    pub role: Role,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Lifetime in seconds (`None`: 90 days; 0: never expires, fleet admins only).
    #[serde(default, deserialize_with = "whole_u64_opt")]
    pub expires_in_s: Option<u64>,
}

/// A non-negative JSON integer, also when a client writes it with a zero fraction
/// (`600.0`): JSON Schema, and so the API document, counts that as an integer.
pub(crate) fn whole_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => Ok(u),
        (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => Ok(f as u64),
        _ => Err(serde::de::Error::custom(format!(
            "invalid value: {n}, expected a non-negative integer"
        ))),
    }
}

/// [`whole_u64`], or null.
pub(crate) fn whole_u64_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_u64")] u64);
    Ok(Option::<Whole>::deserialize(d)?.map(|Whole(n)| n))
}

const DEFAULT_TOKEN_LIFETIME_S: u64 = 90 * 24 * 3600;

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

fn hash_secret(secret: &str) -> Result<String, Problem> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    argon2::Argon2::default()
        .hash_password_with_salt(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| internal("cannot hash the token"))
}

fn internal(detail: &str) -> Problem {
    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
}

/// Check `req` against what `by` may grant and make the token. Nobody grants more than
/// they hold: a team admin makes tokens for their team up to admin; fleet tokens (team
/// `*`) and tokens that never expire need a fleet admin.
pub fn issue_token(
    by: Option<&Principal>,
    req: &TokenRequest,
) -> Result<(TokenRow, String), Problem> {
    let name = req.name.trim();
    // Characters as sent (not bytes, not trimmed): what the API document promises.
    if name.is_empty() || req.name.chars().count() > 100 {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-token-name",
            "a token's name is 1 to 100 characters",
        ));
    }
    if req.team != FLEET
        && (req.team.is_empty()
            || req.team.len() > 63
            || !req
                .team
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-team",
            "a team is a DNS label (lowercase letters, digits, '-') or \"*\" for the fleet",
        ));
    }
    let scopes = req
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["read".into(), "write".into()]);
    if scopes.is_empty() || scopes.iter().any(|s| s != "read" && s != "write") {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-scopes",
            "scopes are \"read\" and/or \"write\"",
        ));
    }
    if scopes.iter().any(|s| s == "write") && !scopes.iter().any(|s| s == "read") {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-scopes",
            "a write token also needs the read scope",
        ));
    }
    let lifetime = req.expires_in_s.unwrap_or(DEFAULT_TOKEN_LIFETIME_S);
    if let Some(by) = by {
        by.need(&req.team, Role::Admin, "making a token")?;
        if by.role_in(&req.team).is_none_or(|r| r < req.role) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a token cannot have a stronger role than its maker",
            ));
        }
        if lifetime == 0 && by.fleet_role() != Some(Role::Admin) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only a fleet admin makes tokens that never expire",
            ));
        }
    }
    if lifetime > 10 * 365 * 24 * 3600 {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad-expiry",
            "expires_in_s is at most ten years (0: never expires)",
        ));
    }
    let id = random_hex(8);
    let secret = random_hex(32);
    let now = now_ms();
    let row = TokenRow {
        id: id.clone(),
        name: name.to_string(),
        team: req.team.clone(),
        role: req.role.as_str().to_string(),
        scopes,
        secret_hash: hash_secret(&secret)?,
        created_by: by
            .map(|p| p.actor.clone())
            .unwrap_or_else(|| "strata serve".into()),
        created_ms: now,
        expires_ms: if lifetime == 0 {
            0
        } else {
            now + i64::try_from(lifetime * 1000).unwrap_or(i64::MAX / 2)
        },
        revoked_ms: 0,
        last_used_ms: 0,
    };
    Ok((row, format!("strata_{id}_{secret}")))
}

/// Split `strata_<id>_<secret>`.
fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("strata_")?;
    let (id, secret) = rest.split_once('_')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (ok(id, 16) && ok(secret, 64)).then_some((id, secret))
}

/// Tokens already checked against their argon2 hash in this process: id → SHA-256 of
/// the whole token. Argon2 is deliberately slow; a token is verified once, then each
/// request costs one row read (so a revocation or expiry takes effect at once).
///
/// Guessing secrets for a known token id would make every guess an argon2 run: the
/// hash checks per token id are themselves rate-limited (`checks`), so a flood of wrong
/// secrets costs the server little and answers 401 without hashing.
/// A burst of requests with a token not yet verified runs one hash check: the others
/// wait for it (`inflight`, one lock per token id) and then find it verified.
pub struct VerifiedTokens {
    verified: parking_lot::Mutex<HashMap<String, [u8; 32]>>,
    checks: RateLimits,
    inflight: parking_lot::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl Default for VerifiedTokens {
    fn default() -> VerifiedTokens {
        VerifiedTokens {
            verified: Default::default(),
            // 5 hash checks a second per token id, 10 at once.
            checks: RateLimits::new(5),
            inflight: Default::default(),
        }
    }
}

impl VerifiedTokens {
    fn hit(&self, id: &str, digest: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .get(id)
            .is_some_and(|d| subtle::ConstantTimeEq::ct_eq(&d[..], &digest[..]).into())
    }

    fn insert(&self, id: &str, digest: [u8; 32]) {
        let mut m = self.verified.lock();
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(id.to_string(), digest);
    }
}

/// Why a bearer token was refused (the message is safe to return).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token was revoked")]
    Revoked,
    #[error("{0}")]
    Oidc(String),
    #[error("the database did not answer")]
    Store(#[from] strata_store::StoreError),
}

/// The principal behind an API token.
pub async fn token_principal(
    store: &Store,
    cache: &VerifiedTokens,
    token: &str,
) -> Result<Principal, AuthError> {
    let (id, secret) = parse_token(token).ok_or(AuthError::Invalid)?;
    let row = store.token(id).await?.ok_or(AuthError::Invalid)?;
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    if !cache.hit(id, &digest) {
        let gate = {
            let mut m = cache.inflight.lock();
            if m.len() > 10_000 {
                m.retain(|_, g| std::sync::Arc::strong_count(g) > 1);
            }
            m.entry(id.to_string()).or_default().clone()
        };
        let _one_at_a_time = gate.lock().await;
        if cache.hit(id, &digest) {
            return finish(store, row).await;
        }
        if cache.checks.take(id).is_err() {
            return Err(AuthError::Invalid);
        }
        let hash = row.secret_hash.clone();
        let secret = secret.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordVerifier::<str>::verify_password(
                &argon2::Argon2::default(),
                secret.as_bytes(),
                hash.as_str(),
            )
            .is_ok()
        })
        .await
        .unwrap_or(false);
        if !ok {
            return Err(AuthError::Invalid);
        }
        cache.insert(id, digest);
    }
    finish(store, row).await
}

/// A verified token's row → its principal (revocation and expiry checked now).
async fn finish(store: &Store, row: TokenRow) -> Result<Principal, AuthError> {
    let id = row.id.as_str();
    let now = now_ms();
    if row.revoked_ms != 0 {
        return Err(AuthError::Revoked);
    }
    if !row.live(now) {
        return Err(AuthError::Expired);
    }
    let _ = store.touch_token(id, now).await;
    let role = row.role.parse::<Role>().map_err(|_| AuthError::Invalid)?;
    Ok(Principal {
        actor: format!("token:{}", row.id),
        grants: vec![Grant {
            team: row.team.clone(),
            role,
        }],
        read: row.scopes.iter().any(|s| s == "read"),
        write: row.scopes.iter().any(|s| s == "write"),
    })
}

/// Requests per second per principal: a token bucket of `burst` refilled at `rate`.
pub struct RateLimits {
    rate: f64,
    burst: f64,
    buckets: parking_lot::Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimits {
    pub fn new(rate: u32) -> RateLimits {
        RateLimits {
            rate: f64::from(rate.max(1)),
            burst: f64::from(rate.max(1)) * 2.0,
            buckets: Default::default(),
        }
    }

    /// `Ok` to go on, `Err(seconds)` to wait.
    pub fn take(&self, actor: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut m = self.buckets.lock();
        if m.len() > 100_000 {
            m.clear();
        }
        let (tokens, at) = m.entry(actor.to_string()).or_insert((self.burst, now));
        let refill = now.duration_since(*at).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(grants: &[(&str, Role)]) -> Principal {
        Principal {
            actor: "t".into(),
            grants: grants
                .iter()
                .map(|(t, r)| Grant {
                    team: (*t).into(),
                    role: *r,
                })
                .collect(),
            read: true,
            write: true,
        }
    }

    fn req(team: &str, role: Role) -> TokenRequest {
        TokenRequest {
            name: "ci".into(),
            team: team.into(),
            role,
            scopes: None,
            expires_in_s: None,
        }
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Viewer < Role::Member && Role::Operator < Role::Admin);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().ok(), Some(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn fleet_grant_counts_in_every_team() {
        let a = p(&[(FLEET, Role::Viewer), ("ml", Role::Admin)]);
        assert_eq!(a.role_in("ml"), Some(Role::Admin));
        assert_eq!(a.role_in("platform"), Some(Role::Viewer));
        assert_eq!(a.visible_teams(), None);
        let b = p(&[("ml", Role::Member)]);
        assert_eq!(b.role_in("platform"), None);
        assert_eq!(b.visible_teams(), Some(vec!["ml".to_string()]));
        assert!(b.see_fleet().is_err());
    }

    #[test]
    fn nobody_grants_more_than_they_hold() {
        let team_admin = p(&[("ml", Role::Admin)]);
        assert!(issue_token(Some(&team_admin), &req("ml", Role::Operator)).is_ok());
        assert!(issue_token(Some(&team_admin), &req("platform", Role::Viewer)).is_err());
        assert!(issue_token(Some(&team_admin), &req(FLEET, Role::Viewer)).is_err());
        let member = p(&[("ml", Role::Member)]);
        assert!(issue_token(Some(&member), &req("ml", Role::Viewer)).is_err());
        let mut never = req("ml", Role::Viewer);
        never.expires_in_s = Some(0);
        assert!(issue_token(Some(&team_admin), &never).is_err());
        let fleet_admin = p(&[(FLEET, Role::Admin)]);
        assert!(issue_token(Some(&fleet_admin), &never).is_ok());
        let mut ro = p(&[("ml", Role::Admin)]);
        ro.write = false;
        assert!(issue_token(Some(&ro), &req("ml", Role::Viewer)).is_err());
    }

    #[test]
    fn token_requests_are_checked() {
        let admin = p(&[(FLEET, Role::Admin)]);
        let mut r = req("ML Team", Role::Viewer);
        assert!(issue_token(Some(&admin), &r).is_err());
        r.team = "ml".into();
        r.scopes = Some(vec!["write".into()]);
        assert!(issue_token(Some(&admin), &r).is_err());
        r.scopes = Some(vec!["admin".into()]);
        assert!(issue_token(Some(&admin), &r).is_err());
        r.scopes = Some(vec!["read".into()]);
        r.name = " ".into();
        assert!(issue_token(Some(&admin), &r).is_err());
    }

    #[test]
    fn issued_tokens_parse_and_hash() {
        let (row, token) = issue_token(None, &req(FLEET, Role::Admin)).expect("issue");
        let (id, secret) = parse_token(&token).expect("parse");
        assert_eq!(id, row.id);
        assert!(!row.secret_hash.contains(secret));
        assert!(row.secret_hash.starts_with("$argon2id$"));
        assert!(parse_token("strata_zz_zz").is_none());
        assert!(parse_token("Bearer x").is_none());
    }

    #[test]
    fn rate_limit_refills() {
        let r = RateLimits::new(1);
        assert!(r.take("a").is_ok());
        assert!(r.take("a").is_ok());
        assert!(r.take("a").is_err());
        assert!(r.take("b").is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_with_a_fresh_token_all_succeeds() {
        let store = std::sync::Arc::new(Store::connect("sqlite::memory:").await.expect("store"));
        let cache = std::sync::Arc::new(VerifiedTokens::default());
        let (row, token) = issue_token(None, &req("ml", Role::Member)).expect("issue");
        store.insert_token(&row).await.expect("insert");
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (store, cache, token) = (store.clone(), cache.clone(), token.clone());
                tokio::spawn(async move { token_principal(&store, &cache, &token).await.is_ok() })
            })
            .collect();
        for t in tasks {
            assert!(t.await.expect("join"), "a legitimate request was refused");
        }
    }

    #[tokio::test]
    async fn tokens_verify_expire_and_revoke() {
        let store = Store::connect("sqlite::memory:").await.expect("store");
        let cache = VerifiedTokens::default();
        let (row, token) = issue_token(None, &req("ml", Role::Member)).expect("issue");
        store.insert_token(&row).await.expect("insert");
        let who = token_principal(&store, &cache, &token)
            .await
            .expect("valid");
        assert_eq!(who.role_in("ml"), Some(Role::Member));
        // A wrong secret with the right id is refused, cached or not.
        let forged = format!(
            "{}{}",
            &token[..token.len() - 1],
            if token.ends_with('0') { '1' } else { '0' }
        );
        assert!(matches!(
            token_principal(&store, &cache, &forged).await,
            Err(AuthError::Invalid)
        ));
        // A flood of wrong secrets for one id is refused without hashing each.
        for _ in 0..50 {
            assert!(token_principal(&store, &cache, &forged).await.is_err());
        }
        // The real token, verified before, still works from the cache.
        assert!(token_principal(&store, &cache, &token).await.is_ok());
        store.revoke_token(&row.id).await.expect("revoke");
        assert!(matches!(
            token_principal(&store, &cache, &token).await,
            Err(AuthError::Revoked)
        ));
    }
}
