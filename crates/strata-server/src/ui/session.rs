//! Browser sessions and their CSRF tokens.
//!
//! Logging in with an API token (or an OIDC JWT) makes a session: a random 256-bit id
//! the browser keeps in the `strata_session` cookie (HttpOnly, SameSite=Strict, Path=/,
//! Secure when the request came over HTTPS) and a record in the store's key-value
//! table under the id's SHA-256, so a copy of the database holds no usable session.
//! The record says who the caller is, when the session ends and the session's CSRF
//! token; every form carries that token and every state-changing request made with
//! the cookie must present it (the `csrf` form field, or the `X-CSRF-Token` header).
//!
//! A session made from an API token follows the token: revoking it, or its expiry,
//! ends the session at the next request. A session never outlives [`LIFETIME_MS`].
//!
//! The pure parts (cookies, ids, CSRF comparison, form fields) are plain functions with
//! their own tests; [`create`], [`lookup`] and [`end`] are the only store I/O.

use axum::http::{HeaderMap, Uri, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strata_store::{Store, StoreError};

use crate::auth::{Grant, Principal};

/// The session cookie.
pub const COOKIE: &str = "strata_session";
/// The login form's own CSRF cookie (double submit: there is no session yet).
pub const LOGIN_COOKIE: &str = "strata_login";
/// The form field every UI form carries.
pub const CSRF_FIELD: &str = "csrf";
/// The header a script (htmx) sends instead.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts at most.
pub const LIFETIME_MS: i64 = 8 * 3600 * 1000;
/// How long the login form stays valid.
pub const LOGIN_FORM_S: i64 = 600;
const KEY_PREFIX: &str = "ui-session:";

/// What the store keeps about one session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub actor: String,
    pub grants: Vec<Grant>,
    pub read: bool,
    pub write: bool,
    pub csrf: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

impl SessionRecord {
    pub fn for_principal(who: &Principal, now_ms: i64, expires_ms: i64) -> SessionRecord {
        SessionRecord {
            actor: who.actor.clone(),
            grants: who.grants.clone(),
            read: who.read,
            write: who.write,
            csrf: random_hex(32),
            created_ms: now_ms,
            expires_ms,
        }
    }

    pub fn principal(&self) -> Principal {
        Principal {
            actor: self.actor.clone(),
            grants: self.grants.clone(),
            read: self.read,
            write: self.write,
        }
    }

    pub fn live(&self, now_ms: i64) -> bool {
        now_ms < self.expires_ms
    }

    /// The API token behind the session (`None`: an OIDC login).
    pub fn token_id(&self) -> Option<&str> {
        self.actor.strip_prefix("token:")
    }
}

/// A live session: its store key and record.
#[derive(Clone, Debug)]
pub struct Session {
    pub key: String,
    pub record: SessionRecord,
}

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

/// A new session id (what the cookie holds).
pub fn new_id() -> String {
    random_hex(32)
}

/// Whether `id` has the shape [`new_id`] makes (anything else is not looked up).
pub fn valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The store key of session `id`: its SHA-256, never the id itself.
pub fn store_key(id: &str) -> String {
    format!("{KEY_PREFIX}{}", hex::encode(Sha256::digest(id.as_bytes())))
}

/// A short, non-secret name for a session in the audit log.
pub fn audit_name(key: &str) -> String {
    let digest = key.strip_prefix(KEY_PREFIX).unwrap_or(key);
    format!("session/{}", &digest[..digest.len().min(16)])
}

/// The value of cookie `name` in the request (the first, when sent twice).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// Whether the request came over HTTPS: its own scheme, or what a TLS-terminating
/// proxy in front says (`X-Forwarded-Proto`, `Forwarded: proto=`). A wrong claim only
/// makes the cookie stricter.
pub fn is_https(headers: &HeaderMap, uri: &Uri) -> bool {
    if uri.scheme_str() == Some("https") {
        return true;
    }
    let xfp = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get("forwarded")
        .and_then(|h| h.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            first.split(';').any(|kv| {
                kv.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        });
    xfp || forwarded
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always, Secure over HTTPS.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age_s: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age_s.max(0),
        if secure { "; Secure" } else { "" }
    )
}

/// A `Set-Cookie` value that removes cookie `name`.
pub fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    set_cookie(name, "", path, 0, secure)
}

/// Does `got` equal the `expected` token? Constant time; an empty token never matches.
pub fn csrf_ok(expected: &str, got: Option<&str>) -> bool {
    match got {
        Some(g) if !expected.is_empty() && g.len() == expected.len() => {
            subtle::ConstantTimeEq::ct_eq(g.as_bytes(), expected.as_bytes()).into()
        }
        _ => false,
    }
}

/// Field `name` of an `application/x-www-form-urlencoded` body (the first).
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// When a session made now for `who` ends: [`LIFETIME_MS`] from now, or earlier when
/// its token expires first (`token_expires_ms` 0: never).
pub fn expiry(now_ms: i64, token_expires_ms: i64) -> i64 {
    let end = now_ms + LIFETIME_MS;
    if token_expires_ms > 0 {
        end.min(token_expires_ms)
    } else {
        end
    }
}

/// Make a session for `who`; returns the id for the cookie and the session.
pub async fn create(
    store: &Store,
    who: &Principal,
    now_ms: i64,
) -> Result<(String, Session), StoreError> {
    let token_expiry = match who.actor.strip_prefix("token:") {
        Some(id) => store.token(id).await?.map_or(0, |t| t.expires_ms),
        None => 0,
    };
    let record = SessionRecord::for_principal(who, now_ms, expiry(now_ms, token_expiry));
    let id = new_id();
    let key = store_key(&id);
    let text = serde_json::to_string(&record).unwrap_or_default();
    store.put_value(&key, &text).await?;
    Ok((id, Session { key, record }))
}

/// The live session the request's cookie names (`None`: no cookie, or a session that
/// ended, whose record is then removed).
pub async fn lookup(
    store: &Store,
    headers: &HeaderMap,
    now_ms: i64,
) -> Result<Option<Session>, StoreError> {
    let Some(id) = cookie(headers, COOKIE).filter(|id| valid_id(id)) else {
        return Ok(None);
    };
    let key = store_key(id);
    let Some(text) = store.get_value(&key).await? else {
        return Ok(None);
    };
    let record: Option<SessionRecord> = serde_json::from_str(&text).ok();
    let live = match &record {
        Some(r) if r.live(now_ms) => match r.token_id() {
            // Follow the token: revoked, expired or deleted ends the session.
            Some(tid) => store.token(tid).await?.is_some_and(|t| t.live(now_ms)),
            None => true,
        },
        _ => false,
    };
    match record {
        Some(record) if live => Ok(Some(Session { key, record })),
        _ => {
            store.delete_value(&key).await?;
            Ok(None)
        }
    }
}

/// End a session (logout).
pub async fn end(store: &Store, session: &Session) -> Result<(), StoreError> {
    store.delete_value(&session.key).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{FLEET, Role};
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn viewer() -> Principal {
        Principal {
            actor: "token:00112233aabbccdd".into(),
            grants: vec![Grant {
                team: FLEET.into(),
                role: Role::Viewer,
            }],
            read: true,
            write: false,
        }
    }

    #[test]
    fn ids_are_random_hex_and_keys_hide_them() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert!(valid_id(&a) && valid_id(&b));
        assert!(!valid_id("abc") && !valid_id(&"g".repeat(64)) && !valid_id(""));
        let key = store_key(&a);
        assert!(key.starts_with("ui-session:"));
        assert!(!key.contains(&a), "the store key must not contain the id");
        assert_eq!(key, store_key(&a));
        let name = audit_name(&key);
        assert!(name.starts_with("session/") && name.len() == "session/".len() + 16);
        assert!(!a.contains(&name["session/".len()..]));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[
            ("cookie", "a=1; strata_session=abc ; b=2"),
            ("cookie", "c=3"),
        ]);
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "strata"), None);
        assert_eq!(cookie(&HeaderMap::new(), COOKIE), None);
        // A cookie whose name merely ends with ours is not ours.
        let h = headers(&[("cookie", "xstrata_session=evil")]);
        assert_eq!(cookie(&h, COOKIE), None);
    }

    #[test]
    fn cookie_flags_and_secure_only_over_https() {
        let c = set_cookie(COOKIE, "v", "/", 60, false);
        assert_eq!(
            c,
            "strata_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie(COOKIE, "v", "/", 60, true).ends_with("; Secure"));
        let gone = clear_cookie(COOKIE, "/", false);
        assert!(gone.starts_with("strata_session=; ") && gone.contains("Max-Age=0"));

        let plain: Uri = "/ui/login".parse().expect("uri");
        assert!(!is_https(&HeaderMap::new(), &plain));
        assert!(is_https(
            &headers(&[("x-forwarded-proto", "https")]),
            &plain
        ));
        assert!(is_https(
            &headers(&[("x-forwarded-proto", "HTTPS, http")]),
            &plain
        ));
        assert!(!is_https(
            &headers(&[("x-forwarded-proto", "http")]),
            &plain
        ));
        assert!(is_https(
            &headers(&[("forwarded", "for=1.2.3.4;proto=https;by=x")]),
            &plain
        ));
        assert!(!is_https(
            &headers(&[("forwarded", "for=1.2.3.4;proto=http")]),
            &plain
        ));
        let abs: Uri = "https://strata.example/ui/".parse().expect("uri");
        assert!(is_https(&HeaderMap::new(), &abs));
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let t = random_hex(32);
        assert!(csrf_ok(&t, Some(&t)));
        assert!(!csrf_ok(&t, None));
        assert!(!csrf_ok(&t, Some("")));
        assert!(!csrf_ok(&t, Some(&t[..63])));
        let mut other = t.clone();
        other.replace_range(0..1, if t.starts_with('0') { "1" } else { "0" });
        assert!(!csrf_ok(&t, Some(&other)));
        // No expected token (a session without one) matches nothing, not even "".
        assert!(!csrf_ok("", Some("")));
    }

    #[test]
    fn form_fields_are_decoded() {
        let body = b"token=strata_a%2Bb&csrf=abc&next=%2Fui%2Fplans&csrf=second";
        assert_eq!(form_field(body, "csrf").as_deref(), Some("abc"));
        assert_eq!(form_field(body, "token").as_deref(), Some("strata_a+b"));
        assert_eq!(form_field(body, "next").as_deref(), Some("/ui/plans"));
        assert_eq!(form_field(body, "missing"), None);
        assert_eq!(form_field(b"", "csrf"), None);
    }

    #[test]
    fn records_expire_and_follow_tokens() {
        let who = viewer();
        let r = SessionRecord::for_principal(&who, 1_000, expiry(1_000, 0));
        assert_eq!(r.expires_ms, 1_000 + LIFETIME_MS);
        assert!(r.live(1_000) && !r.live(r.expires_ms));
        assert_eq!(r.token_id(), Some("00112233aabbccdd"));
        assert_eq!(r.csrf.len(), 64);
        let back = r.principal();
        assert_eq!(
            (back.actor, back.grants, back.read, back.write),
            (who.actor, who.grants, true, false)
        );
        // A token that expires sooner ends the session sooner.
        assert_eq!(expiry(1_000, 5_000), 5_000);
        // Two sessions never share a CSRF token.
        assert_ne!(
            r.csrf,
            SessionRecord::for_principal(&viewer(), 1_000, 2_000).csrf
        );
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(
            serde_json::from_str::<SessionRecord>(&json).expect("parse"),
            r
        );
    }

    #[tokio::test]
    async fn sessions_live_in_the_store_until_they_end() {
        let store = Store::connect("sqlite::memory:").await.expect("store");
        let oidc = Principal {
            actor: "oidc:alice".into(),
            ..viewer()
        };
        let (id, s) = create(&store, &oidc, 10_000).await.expect("create");
        assert!(
            store
                .get_value(&store_key(&id))
                .await
                .expect("get")
                .is_some()
        );
        let h = headers(&[("cookie", &format!("{COOKIE}={id}"))]);
        let found = lookup(&store, &h, 10_001)
            .await
            .expect("lookup")
            .expect("live");
        assert_eq!(found.record, s.record);
        // A forged or malformed id finds nothing.
        let forged = headers(&[("cookie", &format!("{COOKIE}={}", new_id()))]);
        assert!(
            lookup(&store, &forged, 10_001)
                .await
                .expect("lookup")
                .is_none()
        );
        let bad = headers(&[("cookie", "strata_session=../../etc")]);
        assert!(
            lookup(&store, &bad, 10_001)
                .await
                .expect("lookup")
                .is_none()
        );
        // Past its end it is gone, and its record with it.
        assert!(
            lookup(&store, &h, s.record.expires_ms)
                .await
                .expect("lookup")
                .is_none()
        );
        assert!(store.get_value(&s.key).await.expect("get").is_none());
        // Logout removes the record.
        let (id2, s2) = create(&store, &oidc, 10_000).await.expect("create");
        end(&store, &s2).await.expect("end");
        let h2 = headers(&[("cookie", &format!("{COOKIE}={id2}"))]);
        assert!(lookup(&store, &h2, 10_001).await.expect("lookup").is_none());
        // A session of a token the store does not know is not live.
        let (id3, _) = create(&store, &viewer(), 10_000).await.expect("create");
        let h3 = headers(&[("cookie", &format!("{COOKIE}={id3}"))]);
        assert!(lookup(&store, &h3, 10_001).await.expect("lookup").is_none());
    }
}
