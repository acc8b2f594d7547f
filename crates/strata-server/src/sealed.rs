//! Secrets the server must keep and use again (an outbound webhook's signing secret),
//! sealed at rest.
//!
//! [`SecretBox`] seals with XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`)
//! under the server's 32-byte secrets key: a random 24-byte nonce per seal, and a
//! caller's *context* (the owning row's id) as associated data, so a sealed value
//! copied onto another row does not open. The text stored is versioned:
//! `v1:<base64(nonce ‖ ciphertext ‖ tag)>`; a later format gets another prefix.
//!
//! The key comes from `strata serve --secrets-key-file FILE` (64 hexadecimal digits or
//! the standard base64 of 32 bytes; raw 32 bytes also work). Without the flag the
//! server makes one on first start in its state directory (`secrets.key`, mode 0600)
//! and says where; several servers on one PostgreSQL database must be given the same
//! file ([`matches_store`] finds, and the server logs, a key that differs from the
//! one the database's secrets were sealed with). Losing the key loses the sealed secrets (their subscriptions must be made
//! again); the database alone does not reveal them.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The key file made in the state directory when no `--secrets-key-file` is given.
pub const DEFAULT_KEY_FILE: &str = "secrets.key";

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("{0}")]
    Key(String),
    #[error("the sealed value is not in a known format (want v1:<base64>)")]
    Format,
    #[error(
        "the sealed value does not open with this server's secrets key (changed, or the value was altered)"
    )]
    Open,
}

/// Seals and opens secrets under one key. Its `Debug` shows no key.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> SecretBox {
        SecretBox {
            cipher: XChaCha20Poly1305::new(&(*key).into()),
        }
    }

    /// A key file's contents: 64 hexadecimal digits, the standard base64 of 32 bytes
    /// (surrounding whitespace ignored), or exactly 32 raw bytes.
    pub fn parse_key(bytes: &[u8]) -> Result<[u8; 32], SealError> {
        let bad = || {
            SealError::Key(
                "a secrets key is 32 bytes: 64 hexadecimal digits or their base64".into(),
            )
        };
        let text = std::str::from_utf8(bytes).ok().map(str::trim);
        let decoded = match text {
            Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
                hex::decode(t).map_err(|_| bad())?
            }
            Some(t) if (43..=44).contains(&t.len()) => B64
                .decode(t)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
                .map_err(|_| bad())?,
            _ if bytes.len() == 32 => bytes.to_vec(),
            _ => return Err(bad()),
        };
        decoded.try_into().map_err(|_| bad())
    }

    /// The box for `file` (`--secrets-key-file`), or else for `state_dir`'s
    /// [`DEFAULT_KEY_FILE`], made there (mode 0600) when missing. Returns where the
    /// key came from and whether it was just made.
    pub fn load_or_create(
        file: Option<&Path>,
        state_dir: &Path,
    ) -> Result<(SecretBox, PathBuf, bool), SealError> {
        if let Some(f) = file {
            return Ok((read_key(f)?, f.to_path_buf(), false));
        }
        let path = state_dir.join(DEFAULT_KEY_FILE);
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        match write_new(&path, &format!("{}\n", hex::encode(key))) {
            Ok(()) => Ok((SecretBox::new(&key), path, true)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok((read_key(&path)?, path, false))
            }
            Err(e) => Err(SealError::Key(format!(
                "cannot create the secrets key {}: {e}",
                path.display()
            ))),
        }
    }

    /// Seal `secret` for `context` (the id of the row that will hold it).
    pub fn seal(&self, secret: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let nonce = XNonce::from(nonce);
        // Encryption fails only for messages beyond the cipher's limit (256 GiB).
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret,
                    aad: context.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Open what [`SecretBox::seal`] made for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let b = sealed
            .strip_prefix(PREFIX)
            .and_then(|t| B64.decode(t).ok())
            .filter(|b| b.len() >= NONCE_LEN + TAG_LEN)
            .ok_or(SealError::Format)?;
        let (nonce, ct) = b.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Format)?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)
    }
}

/// The store key of a value sealed on the database's first start.
const KEY_CHECK: &str = "secrets-key-check";

/// Whether `b`'s key is the one the database's secrets are sealed with: the first
/// server to start on a database seals a check value there; every later start (and
/// every other server sharing the database) must open it. `false`: a different key
/// (sealed secrets will not open).
pub async fn matches_store(
    store: &strata_store::Store,
    b: &SecretBox,
) -> Result<bool, strata_store::StoreError> {
    let mine = b.seal(b"strata secrets key check", KEY_CHECK);
    if store.put_value_if_absent(KEY_CHECK, &mine).await? {
        return Ok(true);
    }
    Ok(match store.get_value(KEY_CHECK).await? {
        Some(v) => b.open(&v, KEY_CHECK).is_ok(),
        None => true,
    })
}

fn read_key(path: &Path) -> Result<SecretBox, SealError> {
    let bytes = std::fs::read(path).map_err(|e| {
        SealError::Key(format!(
            "cannot read the secrets key {}: {e}",
            path.display()
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the secrets key is readable by other users: chmod 600 it");
        }
    }
    let key = SecretBox::parse_key(&bytes)
        .map_err(|e| SealError::Key(format!("{}: {e}", path.display())))?;
    Ok(SecretBox::new(&key))
}

/// Create `path` with `text`, readable by its owner only; fails if it exists.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed() -> SecretBox {
        SecretBox::new(&[7u8; 32])
    }

    #[test]
    fn seals_open_and_differ_each_time() {
        let b = boxed();
        let a = b.seal(b"whsec-1234", "sub-1");
        let c = b.seal(b"whsec-1234", "sub-1");
        assert!(a.starts_with("v1:"));
        assert_ne!(a, c, "a random nonce per seal");
        assert!(!a.contains("whsec"));
        assert_eq!(b.open(&a, "sub-1").expect("open"), b"whsec-1234");
        assert_eq!(b.open(&c, "sub-1").expect("open"), b"whsec-1234");
        assert_eq!(format!("{b:?}"), "SecretBox(***)");
    }

    #[test]
    fn tampering_another_context_or_key_is_refused() {
        let b = boxed();
        let sealed = b.seal(b"whsec-1234", "sub-1");
        // Another row's id.
        assert_eq!(b.open(&sealed, "sub-2"), Err(SealError::Open));
        // Another key.
        assert_eq!(
            SecretBox::new(&[8u8; 32]).open(&sealed, "sub-1"),
            Err(SealError::Open)
        );
        // Any flipped bit of the nonce, the ciphertext or the tag.
        let raw = B64.decode(&sealed[3..]).expect("b64");
        for i in [0, NONCE_LEN, raw.len() - 1] {
            let mut t = raw.clone();
            t[i] ^= 1;
            let forged = format!("v1:{}", B64.encode(&t));
            assert_eq!(b.open(&forged, "sub-1"), Err(SealError::Open), "byte {i}");
        }
        // A truncated or unversioned value.
        assert_eq!(b.open("v1:AAAA", "sub-1"), Err(SealError::Format));
        assert_eq!(b.open(&sealed[3..], "sub-1"), Err(SealError::Format));
        assert_eq!(
            b.open(&sealed.replacen("v1:", "v2:", 1), "sub-1"),
            Err(SealError::Format)
        );
    }

    #[test]
    fn keys_parse_from_hex_base64_or_raw() {
        let key = [0xabu8; 32];
        let hex_text = format!("{}\n", hex::encode(key));
        assert_eq!(SecretBox::parse_key(hex_text.as_bytes()), Ok(key));
        assert_eq!(SecretBox::parse_key(B64.encode(key).as_bytes()), Ok(key));
        assert_eq!(SecretBox::parse_key(&key), Ok(key));
        assert!(SecretBox::parse_key(b"short").is_err());
        assert!(SecretBox::parse_key(hex::encode([1u8; 31]).as_bytes()).is_err());
    }

    #[tokio::test]
    async fn the_database_remembers_its_key() {
        let store = strata_store::Store::connect("sqlite::memory:")
            .await
            .expect("store");
        assert!(matches_store(&store, &boxed()).await.expect("first"));
        assert!(matches_store(&store, &boxed()).await.expect("same key"));
        assert!(
            !matches_store(&store, &SecretBox::new(&[9u8; 32]))
                .await
                .expect("another key")
        );
    }

    #[test]
    fn a_missing_key_is_made_once_owner_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let (b1, path, made) = SecretBox::load_or_create(None, dir.path()).expect("make");
        assert!(made);
        assert_eq!(path, dir.path().join(DEFAULT_KEY_FILE));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = b1.seal(b"s", "ctx");
        let (b2, _, made) = SecretBox::load_or_create(None, dir.path()).expect("load");
        assert!(!made);
        assert_eq!(b2.open(&sealed, "ctx").expect("same key"), b"s");
        // An explicit file wins; a missing one is an error, not a new key.
        let (b3, _, _) = SecretBox::load_or_create(Some(&path), dir.path()).expect("file");
        assert_eq!(b3.open(&sealed, "ctx").expect("same key"), b"s");
        assert!(SecretBox::load_or_create(Some(&dir.path().join("nope")), dir.path()).is_err());
    }
}
