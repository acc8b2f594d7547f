//! Authentication as `pveproxy` does it: API tokens (`Authorization: PVEAPIToken=...`),
//! tickets from `POST /access/ticket` (cookie `PVEAuthCookie` or the same name in the
//! `Authorization` header) and the CSRF prevention token that ticket users must send on
//! every request that is not a GET.
//!
//! Tickets look like the real ones (`PVE:<user>:<hex time>::<base64 signature>`), but
//! are signed with an HMAC instead of RSA; clients treat them as opaque anyway.

use base64::Engine;
use sha2::{Digest, Sha256};

/// Tickets are valid for two hours (and up to five minutes "from the future").
pub const TICKET_LIFETIME: i64 = 7200;
const GRACE: i64 = 300;

/// Who a request runs as.
#[derive(Clone, Debug)]
pub struct Auth {
    /// `root@pam` for tickets, `strata@pve!twin` for tokens.
    pub user: String,
}

/// Why a request was not authenticated (the 401 reason phrase).
#[derive(Debug, PartialEq, Eq)]
pub struct AuthFailure(pub &'static str);

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        let d = Sha256::digest(key);
        k[..32].copy_from_slice(d.as_slice());
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for ((i, o), kb) in ipad.iter_mut().zip(opad.iter_mut()).zip(k) {
        *i ^= kb;
        *o ^= kb;
    }
    let mut inner = Sha256::new();
    inner.update(ipad);
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(opad);
    outer.update(inner.as_slice());
    let out = outer.finalize();
    let mut res = [0u8; 32];
    res.copy_from_slice(out.as_slice());
    res
}

fn escape_colon(s: &str) -> String {
    s.replace('%', "%25").replace(':', "%3A")
}

/// A new ticket for `user`.
pub fn make_ticket(secret: &[u8], user: &str, now: i64) -> String {
    let plain = format!("PVE:{}:{:08X}", escape_colon(user), now);
    let sig =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret, plain.as_bytes()));
    format!("{plain}::{sig}")
}

/// The user a valid ticket was issued to.
pub fn verify_ticket(secret: &[u8], ticket: &str, now: i64) -> Option<String> {
    let (plain, sig) = ticket.rsplit_once("::")?;
    if sig.is_empty() || sig.contains(':') || sig.contains(char::is_whitespace) {
        return None;
    }
    let want =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret, plain.as_bytes()));
    if want != sig {
        return None;
    }
    let rest = plain.strip_prefix("PVE:")?;
    let (user, ts) = rest.rsplit_once(':')?;
    if ts.len() != 8 {
        return None;
    }
    let issued = i64::from_str_radix(ts, 16).ok()?;
    let age = now - issued;
    if age <= -GRACE || age >= TICKET_LIFETIME {
        return None;
    }
    Some(percent_decode(user))
}

/// The CSRF prevention token of `user` (`<hex time>:<unpadded base64 HMAC>`).
pub fn make_csrf(secret: &[u8], user: &str, now: i64) -> String {
    let ts = format!("{now:08X}");
    let mac = hmac_sha256(secret, format!("{ts}:{user}").as_bytes());
    format!(
        "{ts}:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(mac)
    )
}

pub fn verify_csrf(secret: &[u8], user: &str, token: &str, now: i64) -> bool {
    let Some((ts, sig)) = token.split_once(':') else {
        return false;
    };
    if ts.len() != 8
        || !ts
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return false;
    }
    let Ok(issued) = i64::from_str_radix(ts, 16) else {
        return false;
    };
    let mac = hmac_sha256(secret, format!("{ts}:{user}").as_bytes());
    let age = now - issued;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(mac) == sig
        && age > -GRACE
        && age < TICKET_LIFETIME
}

/// `%XX` decoding (no `+` to space, like Perl's `uri_unescape`).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in a `Cookie` or `Authorization` header, found the way pveproxy
/// finds it: after the start or a blank, followed by `=` or a blank, up to the next `;`.
pub fn extract_auth_value(header: &str, key: &str) -> Option<String> {
    let mut from = 0;
    while let Some(pos) = header[from..].find(key) {
        let at = from + pos;
        let before_ok = at == 0 || header[..at].ends_with(char::is_whitespace);
        let after = &header[at + key.len()..];
        if before_ok && (after.starts_with('=') || after.starts_with(' ')) {
            let value = after[1..].split(';').next().unwrap_or("");
            let value = value.trim_matches('"');
            if value.is_empty() {
                return None;
            }
            return Some(percent_decode(value));
        }
        from = at + key.len();
    }
    None
}

/// Split `user@realm!tokenid=secret`.
pub fn split_token(value: &str) -> Option<(&str, &str)> {
    let (id, secret) = value.rsplit_once('=')?;
    Some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_and_csrf_round_trip() {
        let key = b"secret";
        let t = make_ticket(key, "root@pam", 1_700_000_000);
        assert!(t.starts_with("PVE:root@pam:"), "{t}");
        assert_eq!(
            verify_ticket(key, &t, 1_700_000_100).as_deref(),
            Some("root@pam")
        );
        assert_eq!(
            verify_ticket(key, &t, 1_700_000_000 + TICKET_LIFETIME),
            None
        );
        assert_eq!(verify_ticket(b"other", &t, 1_700_000_100), None);
        let c = make_csrf(key, "root@pam", 1_700_000_000);
        assert!(verify_csrf(key, "root@pam", &c, 1_700_000_010));
        assert!(!verify_csrf(key, "other@pam", &c, 1_700_000_010));
        assert!(!verify_csrf(key, "root@pam", "nonsense", 1_700_000_010));
    }

    #[test]
    fn auth_values_are_found_like_pveproxy_does() {
        assert_eq!(
            extract_auth_value("PVEAPIToken=a@pve!t=123", "PVEAPIToken").as_deref(),
            Some("a@pve!t=123")
        );
        assert_eq!(
            extract_auth_value("PVEAPIToken a@pve!t=123", "PVEAPIToken").as_deref(),
            Some("a@pve!t=123")
        );
        assert_eq!(
            extract_auth_value(
                "foo=1; PVEAuthCookie=PVE%3Aroot%40pam%3A1::x; bar=2",
                "PVEAuthCookie"
            )
            .as_deref(),
            Some("PVE:root@pam:1::x")
        );
        assert_eq!(
            extract_auth_value("XPVEAuthCookie=1", "PVEAuthCookie"),
            None
        );
        assert_eq!(split_token("a@pve!t=s-1"), Some(("a@pve!t", "s-1")));
    }
}
