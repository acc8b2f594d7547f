//! Webhook authentication: GitHub's `X-Hub-Signature-256` (HMAC-SHA256 of the raw
//! body, hex, prefixed `sha256=`) and GitLab's `X-Gitlab-Token` (a shared secret sent
//! as is). Both compared in constant time. Pure.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Whether `header` is GitHub's signature of `body` under `secret`.
pub fn github_signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Whether `header` is GitLab's token `secret`.
pub fn gitlab_token_ok(secret: &[u8], header: Option<&str>) -> bool {
    match header {
        // Lengths leak through the comparison's early exit; the secret's length is
        // not what protects it.
        Some(h) => !secret.is_empty() && bool::from(h.as_bytes().ct_eq(secret)),
        None => false,
    }
}

/// The branch a push event is for (`refs/heads/<branch>`), from GitHub's or GitLab's
/// payload (both carry `ref`).
pub fn pushed_branch(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("ref")?
        .as_str()?
        .strip_prefix("refs/heads/")
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("key");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn github_signatures_are_checked_over_the_raw_body() {
        // The example from GitHub's documentation on validating webhook deliveries.
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(github_signature_ok(secret, body, Some(header)));
        assert_eq!(sign(secret, body), header);
        assert!(!github_signature_ok(secret, b"Hello, World?", Some(header)));
        assert!(!github_signature_ok(b"other", body, Some(header)));
        assert!(!github_signature_ok(secret, body, None));
        assert!(!github_signature_ok(secret, body, Some("sha1=abc")));
        assert!(!github_signature_ok(secret, body, Some("sha256=zz")));
        assert!(!github_signature_ok(secret, body, Some("sha256=")));
    }

    #[test]
    fn gitlab_tokens_must_match_exactly() {
        assert!(gitlab_token_ok(b"t0ken", Some("t0ken")));
        assert!(!gitlab_token_ok(b"t0ken", Some("t0ke")));
        assert!(!gitlab_token_ok(b"t0ken", Some("t0ken ")));
        assert!(!gitlab_token_ok(b"t0ken", None));
        assert!(!gitlab_token_ok(b"", Some("")));
    }

    #[test]
    fn push_events_name_their_branch() {
        assert_eq!(
            pushed_branch(br#"{"ref":"refs/heads/main","after":"abc"}"#).as_deref(),
            Some("main")
        );
        assert_eq!(pushed_branch(br#"{"ref":"refs/tags/v1"}"#), None);
        assert_eq!(pushed_branch(b"not json"), None);
    }
}
