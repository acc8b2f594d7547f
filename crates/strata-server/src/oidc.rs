//! OIDC bearer tokens for the API: a JWT signed by the identity provider (IdP) is
//! checked against the IdP's published keys (JWKS) and turned into an
//! [`OidcIdentity`] with the [`Grant`]s its roles claim carries.
//!
//! - **Keys** ([`Jwks`]): read from a JWKS file or fetched from the IdP's `jwks_uri`
//!   (see [`discover_jwks_uri`]), kept by `kid`. A token naming a `kid` the set does
//!   not hold makes the set reload, at most once per [`Jwks::DEFAULT_REFRESH_INTERVAL`],
//!   so a key rotation at the IdP works without a restart while a flood of made-up
//!   `kid`s cannot hammer the IdP. A reload that fails, or yields no usable key,
//!   keeps the keys held before. Keys named in the token itself (`jku`, `jwk`, `x5u`,
//!   `x5c`) are never used.
//! - **Algorithms**: asymmetric signatures only (RS256/384/512, PS256/384/512,
//!   ES256/384, EdDSA). `none` and HS* are refused before any key is looked at (no
//!   algorithm confusion: a public key is never used as an HMAC secret), symmetric
//!   (`oct`) keys in a JWKS are dropped, and the key's `kty` (and curve) must fit the
//!   header's `alg`, as must the key's own `alg` where it names one.
//! - **Claims** ([`OidcValidator::validate`]): `iss` equal to the configured issuer,
//!   `aud` (a string or an array) holding the configured audience, `exp` required,
//!   `nbf` and `iat` (when present) not in the future, all with
//!   [`OidcConfig::leeway_s`] of clock skew, and a non-empty `sub`.
//! - **Grants**: the roles claim ([`OidcConfig::roles_claim`], `groups` by default)
//!   is a list of strings `"<team>:<role>"` (role: `admin`, `operator`, `member` or
//!   `viewer`) or `"fleet:<role>"` for the whole fleet (`"fleet:admin"`: a fleet-wide
//!   admin). Other entries (the IdP's unrelated groups) are ignored.
//!
//! Every [`OidcError`] that [`OidcValidator::validate`] returns is safe to show a
//! client: none of them repeats the token or anything taken from it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest bearer token looked at (bytes); longer ones are refused unread.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Largest JWKS or discovery document read from the IdP (bytes).
const MAX_DOCUMENT_LEN: usize = 1024 * 1024;
/// How long one request to the IdP may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a token was refused, or a key set could not be loaded.
///
/// The messages are safe to return to a client: they never echo the token, nor any
/// value taken from it. [`OidcError::Jwks`] comes only from loading keys
/// ([`Jwks::from_file`], [`Jwks::fetch`], [`Jwks::refresh`], [`discover_jwks_uri`]),
/// never from [`OidcValidator::validate`] (a failed reload there is logged and the
/// token is refused as [`OidcError::UnknownKey`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("malformed bearer token")]
    Malformed,
    #[error(
        "token signing algorithm not allowed (accepted: RS256/384/512, PS256/384/512, ES256/384, EdDSA)"
    )]
    AlgorithmNotAllowed,
    #[error("token header has no key id (kid)")]
    NoKeyId,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("token algorithm does not match its signing key")]
    KeyMismatch,
    #[error("invalid token signature")]
    BadSignature,
    #[error("token issuer is not trusted")]
    WrongIssuer,
    #[error("token audience does not include this server")]
    WrongAudience,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issued in the future")]
    IssuedInFuture,
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    #[error("token claim `{0}` is not valid")]
    InvalidClaim(&'static str),
    /// Loading the key set failed (file, network, or content).
    #[error("JWKS: {0}")]
    Jwks(String),
}

/// A role on a team (or on the whole fleet), weakest first: a role allows what every
/// role before it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Member, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a role name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (admin, operator, member or viewer)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    /// `admin`, `operator`, `member` or `viewer` (lower case, exactly).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// A role on one team, or on every team (`team == "*"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// The team's name, or [`Grant::FLEET`] for fleet-wide.
    pub team: String,
    pub role: Role,
}

impl Grant {
    /// The `team` of a fleet-wide grant.
    pub const FLEET: &'static str = "*";

    pub fn fleet(role: Role) -> Grant {
        Grant {
            team: Grant::FLEET.to_string(),
            role,
        }
    }

    pub fn is_fleet(&self) -> bool {
        self.team == Grant::FLEET
    }

    /// Whether this grant gives at least `role` on `team`.
    pub fn allows(&self, team: &str, role: Role) -> bool {
        (self.is_fleet() || self.team == team) && self.role >= role
    }

    /// A roles-claim entry: `"<team>:<role>"` (team: a DNS label, as spec team names
    /// are) or `"fleet:<role>"` (fleet-wide). One leading `/` is ignored (Keycloak
    /// writes group paths). `None`: not a grant.
    pub fn parse(entry: &str) -> Option<Grant> {
        let entry = entry.strip_prefix('/').unwrap_or(entry);
        let (team, role) = entry.split_once(':')?;
        let role = role.parse::<Role>().ok()?;
        if team == "fleet" {
            return Some(Grant::fleet(role));
        }
        strata_spec::values::is_dns_label(team).then(|| Grant {
            team: team.to_string(),
            role,
        })
    }
}

impl fmt::Display for Grant {
    /// The roles-claim form, which [`Grant::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let team = if self.is_fleet() { "fleet" } else { &self.team };
        write!(f, "{team}:{}", self.role)
    }
}

/// Whom a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OidcIdentity {
    /// The `sub` claim (unique at the issuer).
    pub subject: String,
    /// The `email` claim, unless the token says `email_verified: false`.
    pub email: Option<String>,
    /// From the roles claim, without duplicates, in the claim's order.
    pub grants: Vec<Grant>,
}

/// Which tokens the server accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcConfig {
    /// The `iss` tokens must carry, exactly (OIDC compares issuers as strings: mind a
    /// trailing `/`).
    pub issuer: String,
    /// A value the token's `aud` must hold (usually the server's client id at the IdP).
    pub audience: String,
    /// The claim holding the grants (a list of strings). A name with dots that is not
    /// itself a claim is followed as a path (`realm_access.roles`).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    #[serde(default = "default_leeway_s")]
    pub leeway_s: u64,
}

fn default_roles_claim() -> String {
    "groups".to_string()
}

fn default_leeway_s() -> u64 {
    60
}

impl OidcConfig {
    /// `roles_claim` `groups`, `leeway_s` 60.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        OidcConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            roles_claim: default_roles_claim(),
            leeway_s: default_leeway_s(),
        }
    }
}

/// One usable verification key of a JWKS.
struct JwksKey {
    kid: Option<String>,
    /// The key's own `alg`, where it names one.
    alg: Option<Algorithm>,
    params: AlgorithmParameters,
    key: DecodingKey,
}

impl JwksKey {
    /// Whether this key may verify a signature made with `alg`.
    fn fits(&self, alg: Algorithm) -> bool {
        let kty_fits = match &self.params {
            AlgorithmParameters::RSA(_) => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            AlgorithmParameters::EllipticCurve(p) => matches!(
                (&p.curve, alg),
                (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
            ),
            AlgorithmParameters::OctetKeyPair(p) => {
                p.curve == EllipticCurve::Ed25519 && alg == Algorithm::EdDSA
            }
            _ => false,
        };
        kty_fits && self.alg.is_none_or(|a| a == alg)
    }
}

/// The header's `alg` if it is one accepted.
fn allowed_alg(alg: &str) -> Option<Algorithm> {
    let alg = match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    };
    Some(alg)
}

/// The usable signature keys of a JWKS document. Keys for encryption, symmetric
/// keys, keys for algorithms not accepted and keys that do not parse are skipped
/// (logged at debug). No usable key at all is an error.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<Arc<JwksKey>>, OidcError> {
    #[derive(Deserialize)]
    struct Doc {
        keys: Vec<Value>,
    }
    let doc: Doc = serde_json::from_slice(bytes)
        .map_err(|e| OidcError::Jwks(format!("not a JWKS document ({e})")))?;
    let mut keys = Vec::new();
    for (i, raw) in doc.keys.into_iter().enumerate() {
        match parse_key(raw) {
            Ok(k) => keys.push(Arc::new(k)),
            Err(why) => tracing::debug!(index = i, "JWKS key skipped: {why}"),
        }
    }
    if keys.is_empty() {
        return Err(OidcError::Jwks(
            "the key set holds no usable signature key (RSA, EC P-256/P-384 or Ed25519)".into(),
        ));
    }
    Ok(keys)
}

fn parse_key(raw: Value) -> Result<JwksKey, String> {
    let jwk: Jwk = serde_json::from_value(raw).map_err(|e| e.to_string())?;
    let kid = jwk.common.key_id.clone();
    if let Some(u) = &jwk.common.public_key_use
        && *u != PublicKeyUse::Signature
    {
        return Err(format!("kid {kid:?}: not a signature key"));
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err(format!("kid {kid:?}: key_ops lacks verify"));
    }
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(ka) => {
            let a = Algorithm::try_from(ka)
                .ok()
                .filter(|a| a.family() != AlgorithmFamily::Hmac)
                .ok_or_else(|| format!("kid {kid:?}: algorithm {ka} not accepted"))?;
            Some(a)
        }
    };
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => {}
        AlgorithmParameters::EllipticCurve(p)
            if matches!(p.curve, EllipticCurve::P256 | EllipticCurve::P384) => {}
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {}
        _ => return Err(format!("kid {kid:?}: key type or curve not accepted")),
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("kid {kid:?}: {e}"))?;
    let key = JwksKey {
        kid,
        alg,
        params: jwk.algorithm,
        key,
    };
    // A key whose own `alg` contradicts its type could verify nothing.
    if let Some(a) = key.alg
        && !key.fits(a)
    {
        return Err(format!("kid {:?}: alg {a:?} does not fit the key", key.kid));
    }
    Ok(key)
}

enum Source {
    /// Given once; never reloaded.
    Fixed,
    File(PathBuf),
    Url {
        client: reqwest::Client,
        url: url::Url,
    },
}

/// The IdP's verification keys, by `kid`, reloaded when a token names a `kid` the
/// set does not hold (at most once per refresh interval).
pub struct Jwks {
    source: Source,
    keys: parking_lot::RwLock<Arc<Vec<Arc<JwksKey>>>>,
    /// When the last reload was tried; held while one runs, so concurrent requests
    /// with unknown kids cause one reload.
    last_reload: tokio::sync::Mutex<Option<Instant>>,
    refresh_interval: Duration,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Fixed => "fixed".to_string(),
            Source::File(p) => p.display().to_string(),
            Source::Url { url, .. } => url.to_string(),
        };
        f.debug_struct("Jwks")
            .field("source", &source)
            .field("kids", &self.kids())
            .field("refresh_interval", &self.refresh_interval)
            .finish()
    }
}

impl Jwks {
    /// The shortest time between two reloads caused by unknown kids.
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

    fn with_source(source: Source, keys: Vec<Arc<JwksKey>>) -> Jwks {
        Jwks {
            source,
            keys: parking_lot::RwLock::new(Arc::new(keys)),
            last_reload: tokio::sync::Mutex::new(None),
            refresh_interval: Jwks::DEFAULT_REFRESH_INTERVAL,
        }
    }

    /// A fixed key set from a JWKS document (`{"keys": [...]}`); never reloaded.
    pub fn from_json(json: &[u8]) -> Result<Jwks, OidcError> {
        Ok(Jwks::with_source(Source::Fixed, parse_jwks(json)?))
    }

    /// The key set in a JWKS file, read now; a reload reads the file again.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Jwks, OidcError> {
        let path = path.into();
        let bytes = std::fs::read(&path)
            .map_err(|e| OidcError::Jwks(format!("cannot read {}: {e}", path.display())))?;
        let keys = parse_jwks(&bytes)
            .map_err(|e| OidcError::Jwks(format!("{}: {}", path.display(), inner(e))))?;
        Ok(Jwks::with_source(Source::File(path), keys))
    }

    /// The key set at the IdP's `jwks_uri`, not fetched yet: the first token (or
    /// [`Jwks::refresh`]) fetches it. `https`, or `http` to a loopback address only.
    pub fn from_url(jwks_uri: &str) -> Result<Jwks, OidcError> {
        let (client, url) = idp_client(jwks_uri)?;
        Ok(Jwks::with_source(Source::Url { client, url }, Vec::new()))
    }

    /// The key set at the IdP's `jwks_uri`, fetched now (fails if the IdP does not
    /// answer with a usable key set).
    pub async fn fetch(jwks_uri: &str) -> Result<Jwks, OidcError> {
        let jwks = Jwks::from_url(jwks_uri)?;
        jwks.refresh().await?;
        Ok(jwks)
    }

    /// Change the shortest time between two reloads caused by unknown kids (default
    /// [`Jwks::DEFAULT_REFRESH_INTERVAL`]).
    pub fn with_refresh_interval(mut self, interval: Duration) -> Jwks {
        self.refresh_interval = interval;
        self
    }

    /// Reload the set now, whatever the interval (at start, or by an operator).
    /// Returns how many usable keys it holds. On error the keys held stay.
    pub async fn refresh(&self) -> Result<usize, OidcError> {
        let mut last = self.last_reload.lock().await;
        *last = Some(Instant::now());
        self.reload().await
    }

    /// The kids of the keys held (a key without a kid is left out).
    pub fn kids(&self) -> Vec<String> {
        self.keys
            .read()
            .iter()
            .filter_map(|k| k.kid.clone())
            .collect()
    }

    /// How many usable keys are held.
    pub fn len(&self) -> usize {
        self.keys.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn reload(&self) -> Result<usize, OidcError> {
        let keys = match &self.source {
            Source::Fixed => return Ok(self.len()),
            Source::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| OidcError::Jwks(format!("cannot read {}: {e}", path.display())))?;
                parse_jwks(&bytes)
                    .map_err(|e| OidcError::Jwks(format!("{}: {}", path.display(), inner(e))))?
            }
            Source::Url { client, url } => {
                let bytes = get_document(client, url).await?;
                parse_jwks(&bytes).map_err(|e| OidcError::Jwks(format!("{url}: {}", inner(e))))?
            }
        };
        let n = keys.len();
        *self.keys.write() = Arc::new(keys);
        tracing::info!(keys = n, kids = ?self.kids(), "loaded the OIDC key set");
        Ok(n)
    }

    /// The key for a token with this header `kid` and `alg`.
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<JwksKey>, OidcError> {
        let keys = self.keys.read().clone();
        let named: Vec<&Arc<JwksKey>> = match kid {
            Some(kid) => keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            // No kid: only a set of exactly one key says which key is meant.
            None if keys.len() == 1 => keys.iter().collect(),
            None => return Err(OidcError::NoKeyId),
        };
        if named.is_empty() {
            return Err(OidcError::UnknownKey);
        }
        named
            .into_iter()
            .find(|k| k.fits(alg))
            .cloned()
            .ok_or(OidcError::KeyMismatch)
    }

    /// [`Jwks::lookup`], reloading the set once if the kid is unknown and the last
    /// reload is older than the refresh interval.
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<JwksKey>, OidcError> {
        match self.lookup(kid, alg) {
            Err(OidcError::UnknownKey) => {}
            Err(OidcError::NoKeyId) if self.is_empty() => {}
            found => return found,
        }
        if matches!(self.source, Source::Fixed) {
            return Err(OidcError::UnknownKey);
        }
        let mut last = self.last_reload.lock().await;
        // Another request may have reloaded while this one waited.
        match self.lookup(kid, alg) {
            Err(OidcError::UnknownKey) => {}
            Err(OidcError::NoKeyId) if self.is_empty() => {}
            found => return found,
        }
        if last.is_some_and(|t| t.elapsed() < self.refresh_interval) {
            tracing::debug!("unknown key id; the OIDC key set was reloaded recently");
            return Err(OidcError::UnknownKey);
        }
        *last = Some(Instant::now());
        tracing::info!("a token names an unknown key id: reloading the OIDC key set");
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "cannot reload the OIDC key set; keeping the keys held");
            return Err(OidcError::UnknownKey);
        }
        drop(last);
        match self.lookup(kid, alg) {
            Err(OidcError::NoKeyId) if self.is_empty() => Err(OidcError::UnknownKey),
            other => other,
        }
    }
}

/// The message of a [`OidcError::Jwks`], without its prefix.
fn inner(e: OidcError) -> String {
    match e {
        OidcError::Jwks(m) => m,
        other => other.to_string(),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A client for the IdP and the URL parsed: `https`, or `http` to loopback only
/// (keys fetched in clear over a network could be replaced by anyone on the path).
fn idp_client(url: &str) -> Result<(reqwest::Client, url::Url), OidcError> {
    let url = url::Url::parse(url).map_err(|e| OidcError::Jwks(format!("bad URL {url}: {e}")))?;
    let loopback = is_loopback(&url);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(OidcError::Jwks(format!(
                "{url}: the IdP must be reached over https (http only on a loopback address)"
            )));
        }
    }
    let mut b = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")));
    if loopback {
        b = b.no_proxy();
    }
    let client = b
        .build()
        .map_err(|e| OidcError::Jwks(format!("HTTP client: {e}")))?;
    Ok((client, url))
}

/// GET a JSON document from the IdP (2xx, at most [`MAX_DOCUMENT_LEN`] bytes).
async fn get_document(client: &reqwest::Client, url: &url::Url) -> Result<Vec<u8>, OidcError> {
    let fail = |e: &dyn fmt::Display| OidcError::Jwks(format!("GET {url}: {e}"));
    let mut resp = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fail(&e))?;
    if !resp.status().is_success() {
        return Err(fail(&format!("HTTP {}", resp.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(&e))? {
        if body.len() + chunk.len() > MAX_DOCUMENT_LEN {
            return Err(fail(&format!("document over {MAX_DOCUMENT_LEN} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `jwks_uri` in the IdP's discovery document
/// (`<issuer>/.well-known/openid-configuration`), whose `issuer` must equal `issuer`.
pub async fn discover_jwks_uri(issuer: &str) -> Result<String, OidcError> {
    let base = issuer.trim_end_matches('/');
    let (client, url) = idp_client(&format!("{base}/.well-known/openid-configuration"))?;
    let bytes = get_document(&client, &url).await?;
    #[derive(Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let doc: Discovery = serde_json::from_slice(&bytes)
        .map_err(|e| OidcError::Jwks(format!("{url}: not a discovery document ({e})")))?;
    if doc.issuer != issuer {
        return Err(OidcError::Jwks(format!(
            "{url}: the discovery document is for issuer {:?}, not {issuer:?}",
            doc.issuer
        )));
    }
    Ok(doc.jwks_uri)
}

/// Checks bearer tokens against one issuer's keys.
#[derive(Debug)]
pub struct OidcValidator {
    config: OidcConfig,
    jwks: Arc<Jwks>,
}

impl OidcValidator {
    pub fn new(config: OidcConfig, jwks: Arc<Jwks>) -> Self {
        OidcValidator { config, jwks }
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    pub fn jwks(&self) -> &Arc<Jwks> {
        &self.jwks
    }

    /// Check `token` (the bearer token, without `Bearer `) at time `now`: its
    /// signature by a key of the set, then its claims. May reload the key set (see
    /// [`Jwks`]).
    pub async fn validate(&self, token: &str, now: SystemTime) -> Result<OidcIdentity, OidcError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(OidcError::Malformed);
        }
        let header = peek_header(token)?;
        let alg = allowed_alg(&header.alg).ok_or(OidcError::AlgorithmNotAllowed)?;
        let key = self.jwks.key(header.kid.as_deref(), alg).await?;

        // The signature only: the claims are checked below, against `now`.
        let mut v = Validation::new(alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v)
            .map_err(decode_error)?;
        self.check_claims(&data.claims, now)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<OidcIdentity, OidcError> {
        let cfg = &self.config;
        match claims.get("iss") {
            None | Some(Value::Null) => return Err(OidcError::MissingClaim("iss")),
            Some(Value::String(iss)) if *iss == cfg.issuer => {}
            Some(Value::String(_)) => return Err(OidcError::WrongIssuer),
            Some(_) => return Err(OidcError::InvalidClaim("iss")),
        }
        match claims.get("aud") {
            None | Some(Value::Null) => return Err(OidcError::MissingClaim("aud")),
            Some(Value::String(aud)) => {
                if *aud != cfg.audience {
                    return Err(OidcError::WrongAudience);
                }
            }
            Some(Value::Array(auds)) => {
                if !auds.iter().all(Value::is_string) {
                    return Err(OidcError::InvalidClaim("aud"));
                }
                if !auds
                    .iter()
                    .any(|a| a.as_str() == Some(cfg.audience.as_str()))
                {
                    return Err(OidcError::WrongAudience);
                }
            }
            Some(_) => return Err(OidcError::InvalidClaim("aud")),
        }

        let now = unix_seconds(now);
        let leeway = cfg.leeway_s as f64;
        let exp = numeric_date(claims, "exp")?.ok_or(OidcError::MissingClaim("exp"))?;
        if now >= exp + leeway {
            return Err(OidcError::Expired);
        }
        if let Some(nbf) = numeric_date(claims, "nbf")?
            && nbf > now + leeway
        {
            return Err(OidcError::NotYetValid);
        }
        if let Some(iat) = numeric_date(claims, "iat")?
            && iat > now + leeway
        {
            return Err(OidcError::IssuedInFuture);
        }

        let subject = match claims.get("sub") {
            None | Some(Value::Null) => return Err(OidcError::MissingClaim("sub")),
            Some(Value::String(s)) if s.is_empty() => return Err(OidcError::MissingClaim("sub")),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(OidcError::InvalidClaim("sub")),
        };
        let verified = claims.get("email_verified").and_then(Value::as_bool) != Some(false);
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .filter(|e| verified && !e.is_empty())
            .map(str::to_string);
        let grants = grants_from(claim_at(claims, &cfg.roles_claim), &cfg.roles_claim);
        Ok(OidcIdentity {
            subject,
            email,
            grants,
        })
    }
}

#[derive(Deserialize)]
struct PeekHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The header of a compact JWS (three base64url parts), unverified.
fn peek_header(token: &str) -> Result<PeekHeader, OidcError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| OidcError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| OidcError::Malformed)
}

fn decode_error(e: jsonwebtoken::errors::Error) -> OidcError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => OidcError::BadSignature,
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => OidcError::Malformed,
        K::InvalidAlgorithm => OidcError::KeyMismatch,
        kind => {
            tracing::debug!(?kind, "token verification failed");
            OidcError::BadSignature
        }
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// A NumericDate claim (seconds since the epoch, integer or not); absent: `None`.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, OidcError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or(OidcError::InvalidClaim(name)),
        Some(_) => Err(OidcError::InvalidClaim(name)),
    }
}

/// The claim `name`, or, when there is none and the name has dots, the value at that
/// path through nested objects.
fn claim_at<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    if !name.contains('.') {
        return None;
    }
    let mut parts = name.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// The grants in a roles claim: a list of strings (a lone string counts as a list of
/// one). Entries that are not grants are skipped (logged at debug).
fn grants_from(value: Option<&Value>, claim: &str) -> Vec<Grant> {
    let entries: Vec<&Value> = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::String(_)) => vec![v],
        Some(_) => {
            tracing::debug!(claim, "the roles claim is not a list of strings; no grants");
            return Vec::new();
        }
    };
    let mut grants: Vec<Grant> = Vec::new();
    for entry in entries {
        match entry.as_str().and_then(Grant::parse) {
            Some(g) => {
                if !grants.contains(&g) {
                    grants.push(g);
                }
            }
            None => tracing::debug!(claim, %entry, "roles claim entry is not a grant; ignored"),
        }
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ISS: &str = "https://idp.example.com/realms/ops";
    const AUD: &str = "strata";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A private key to sign with and its public JWK (as JSON, with kid and alg).
    struct TestKey {
        alg: Algorithm,
        kid: String,
        enc: EncodingKey,
        jwk: Value,
    }

    impl TestKey {
        fn ec(kid: &str) -> TestKey {
            let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
            let raw = kp.public_key_raw();
            assert_eq!(raw.len(), 65);
            TestKey {
                alg: Algorithm::ES256,
                kid: kid.into(),
                enc: EncodingKey::from_ec_der(&kp.serialize_der()),
                jwk: json!({
                    "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                    "x": b64(&raw[1..33]), "y": b64(&raw[33..]),
                }),
            }
        }

        fn rsa(kid: &str, alg: Algorithm) -> TestKey {
            let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
            let enc = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).expect("RSA pem");
            let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&enc, alg).expect("jwk"))
                .expect("jwk json");
            jwk["kid"] = json!(kid);
            TestKey {
                alg,
                kid: kid.into(),
                enc,
                jwk,
            }
        }

        fn ed(kid: &str) -> TestKey {
            let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
            TestKey {
                alg: Algorithm::EdDSA,
                kid: kid.into(),
                enc: EncodingKey::from_ed_der(&kp.serialize_der()),
                jwk: json!({
                    "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(kp.public_key_raw()),
                }),
            }
        }

        fn sign(&self, claims: &Value) -> String {
            let mut h = Header::new(self.alg);
            h.kid = Some(self.kid.clone());
            encode(&h, claims, &self.enc).expect("encode")
        }
    }

    fn set(keys: &[&TestKey]) -> Vec<u8> {
        serde_json::to_vec(
            &json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }),
        )
        .expect("json")
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn t(offset: i64) -> i64 {
        1_800_000_000 + offset
    }

    fn claims() -> Value {
        json!({
            "iss": ISS, "aud": AUD, "sub": "u-123", "email": "ada@example.com",
            "iat": t(-10), "nbf": t(-10), "exp": t(300),
            "groups": ["web:operator", "fleet:admin", "unrelated-group", "db:owner"],
        })
    }

    fn validator(keys: &[&TestKey]) -> OidcValidator {
        let jwks = Jwks::from_json(&set(keys)).expect("jwks");
        OidcValidator::new(OidcConfig::new(ISS, AUD), Arc::new(jwks))
    }

    async fn check(v: &OidcValidator, token: &str) -> Result<OidcIdentity, OidcError> {
        v.validate(token, now()).await
    }

    #[tokio::test]
    async fn valid_tokens_of_each_key_type() {
        let ec = TestKey::ec("ec-1");
        let rs = TestKey::rsa("rsa-1", Algorithm::RS256);
        let ed = TestKey::ed("ed-1");
        let v = validator(&[&ec, &rs, &ed]);
        for key in [&ec, &rs, &ed] {
            let id = check(&v, &key.sign(&claims())).await.expect("valid");
            assert_eq!(id.subject, "u-123");
            assert_eq!(id.email.as_deref(), Some("ada@example.com"));
            assert_eq!(
                id.grants,
                vec![
                    Grant {
                        team: "web".into(),
                        role: Role::Operator
                    },
                    Grant::fleet(Role::Admin),
                ]
            );
        }
        let mut kids = v.jwks().kids();
        kids.sort();
        assert_eq!(kids, ["ec-1", "ed-1", "rsa-1"]);
    }

    #[tokio::test]
    async fn rsa_pss_token() {
        let ps = TestKey::rsa("ps-1", Algorithm::PS256);
        let v = validator(&[&ps]);
        check(&v, &ps.sign(&claims())).await.expect("PS256");
    }

    #[tokio::test]
    async fn time_claims() {
        let k = TestKey::ec("k");
        let v = validator(&[&k]);
        let with = |patch: Value| {
            let mut c = claims();
            for (name, val) in patch.as_object().expect("object") {
                c[name] = val.clone();
            }
            k.sign(&c)
        };
        // Expired, beyond the 60 s leeway; within it still good.
        let e = check(&v, &with(json!({"exp": t(-61)}))).await;
        assert_eq!(e, Err(OidcError::Expired));
        assert!(check(&v, &with(json!({"exp": t(-59)}))).await.is_ok());
        // Not before: in the future beyond the leeway.
        let e = check(&v, &with(json!({"nbf": t(120)}))).await;
        assert_eq!(e, Err(OidcError::NotYetValid));
        assert!(check(&v, &with(json!({"nbf": t(30)}))).await.is_ok());
        // Issued in the future.
        let e = check(&v, &with(json!({"iat": t(3600)}))).await;
        assert_eq!(e, Err(OidcError::IssuedInFuture));
        // exp is required and numeric; float dates are fine.
        let e = check(&v, &with(json!({"exp": null}))).await;
        assert_eq!(e, Err(OidcError::MissingClaim("exp")));
        let e = check(&v, &with(json!({"exp": "soon"}))).await;
        assert_eq!(e, Err(OidcError::InvalidClaim("exp")));
        assert!(
            check(&v, &with(json!({"exp": t(100) as f64 + 0.5})))
                .await
                .is_ok()
        );
        // The same token, later: expired.
        let token = k.sign(&claims());
        let later = v.validate(&token, now() + Duration::from_secs(361)).await;
        assert_eq!(later, Err(OidcError::Expired));
    }

    #[tokio::test]
    async fn issuer_and_audience() {
        let k = TestKey::ec("k");
        let v = validator(&[&k]);
        let mut c = claims();
        c["iss"] = json!("https://evil.example.com");
        assert_eq!(check(&v, &k.sign(&c)).await, Err(OidcError::WrongIssuer));
        c["iss"] = json!(format!("{ISS}/"));
        assert_eq!(check(&v, &k.sign(&c)).await, Err(OidcError::WrongIssuer));
        c["iss"] = json!(null);
        assert_eq!(
            check(&v, &k.sign(&c)).await,
            Err(OidcError::MissingClaim("iss"))
        );

        let mut c = claims();
        c["aud"] = json!("someone-else");
        assert_eq!(check(&v, &k.sign(&c)).await, Err(OidcError::WrongAudience));
        c["aud"] = json!(["someone-else", AUD]);
        assert!(check(&v, &k.sign(&c)).await.is_ok());
        c["aud"] = json!(["someone-else", "another"]);
        assert_eq!(check(&v, &k.sign(&c)).await, Err(OidcError::WrongAudience));
        c["aud"] = json!([]);
        assert_eq!(check(&v, &k.sign(&c)).await, Err(OidcError::WrongAudience));
        c["aud"] = json!(42);
        assert_eq!(
            check(&v, &k.sign(&c)).await,
            Err(OidcError::InvalidClaim("aud"))
        );
        c.as_object_mut().expect("object").remove("aud");
        assert_eq!(
            check(&v, &k.sign(&c)).await,
            Err(OidcError::MissingClaim("aud"))
        );
    }

    #[tokio::test]
    async fn subject_and_email() {
        let k = TestKey::ec("k");
        let v = validator(&[&k]);
        let mut c = claims();
        c.as_object_mut().expect("object").remove("sub");
        assert_eq!(
            check(&v, &k.sign(&c)).await,
            Err(OidcError::MissingClaim("sub"))
        );
        c["sub"] = json!("");
        assert_eq!(
            check(&v, &k.sign(&c)).await,
            Err(OidcError::MissingClaim("sub"))
        );
        c["sub"] = json!(7);
        assert_eq!(
            check(&v, &k.sign(&c)).await,
            Err(OidcError::InvalidClaim("sub"))
        );

        let mut c = claims();
        c["email_verified"] = json!(false);
        let id = check(&v, &k.sign(&c)).await.expect("valid");
        assert_eq!(id.email, None);
        c.as_object_mut().expect("object").remove("email");
        c["email_verified"] = json!(true);
        assert_eq!(check(&v, &k.sign(&c)).await.expect("valid").email, None);
    }

    /// A token with the given header JSON, the claims, and this signature part.
    fn raw_token(header: &Value, claims: &Value, sig: &str) -> String {
        format!(
            "{}.{}.{sig}",
            b64(&serde_json::to_vec(header).expect("json")),
            b64(&serde_json::to_vec(claims).expect("json"))
        )
    }

    #[tokio::test]
    async fn alg_none_refused() {
        let k = TestKey::ec("k");
        let v = validator(&[&k]);
        for alg in ["none", "None", "NONE", ""] {
            let token = raw_token(&json!({"alg": alg, "kid": "k"}), &claims(), "");
            assert_eq!(
                check(&v, &token).await,
                Err(OidcError::AlgorithmNotAllowed),
                "{alg}"
            );
        }
        // No alg at all.
        let token = raw_token(&json!({"kid": "k"}), &claims(), "");
        assert_eq!(check(&v, &token).await, Err(OidcError::Malformed));
    }

    #[tokio::test]
    async fn hmac_with_the_public_key_refused() {
        let ec = TestKey::ec("ec");
        let rs = TestKey::rsa("rs", Algorithm::RS256);
        let v = validator(&[&ec, &rs]);
        // The classic confusion: the public key (as the JWK's JSON, as PEM-ish text,
        // or raw) used as an HMAC secret.
        let secrets: Vec<Vec<u8>> = vec![
            serde_json::to_vec(&rs.jwk).expect("json"),
            rs.jwk["n"].as_str().expect("n").as_bytes().to_vec(),
            serde_json::to_vec(&ec.jwk).expect("json"),
        ];
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for (secret, kid) in secrets.iter().zip(["rs", "rs", "ec"]) {
                let mut h = Header::new(alg);
                h.kid = Some(kid.into());
                let token = encode(
                    &h,
                    &claims(),
                    &EncodingKey::from_secret(secret).expect("key"),
                )
                .expect("encode");
                assert_eq!(check(&v, &token).await, Err(OidcError::AlgorithmNotAllowed));
            }
        }
    }

    #[test]
    fn symmetric_and_unusable_keys_are_dropped() {
        let ec = TestKey::ec("ec");
        let doc = json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": b64(b"0123456789abcdef0123456789abcdef"), "alg": "HS256"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "kid": "confused", "alg": "RS256", "x": ec.jwk["x"], "y": ec.jwk["y"]},
            {"kty": "whatever"},
            ec.jwk,
        ]});
        let jwks = Jwks::from_json(&serde_json::to_vec(&doc).expect("json")).expect("jwks");
        assert_eq!(jwks.kids(), ["ec"]);

        let only_bad = json!({"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]});
        let e = Jwks::from_json(&serde_json::to_vec(&only_bad).expect("json"));
        assert!(matches!(e, Err(OidcError::Jwks(_))));
        assert!(matches!(
            Jwks::from_json(b"not json"),
            Err(OidcError::Jwks(_))
        ));
    }

    #[tokio::test]
    async fn key_must_fit_the_header_alg() {
        let ec = TestKey::ec("ec");
        let rs = TestKey::rsa("rs", Algorithm::RS256);
        let v = validator(&[&ec, &rs]);
        // An RS256 key (its JWK says so) does not verify a PS256 token.
        let mut h = Header::new(Algorithm::PS256);
        h.kid = Some("rs".into());
        let token = encode(&h, &claims(), &rs.enc).expect("encode");
        assert_eq!(check(&v, &token).await, Err(OidcError::KeyMismatch));
        // A P-256 key does not verify ES384, nor an RSA or EdDSA signature.
        for alg in ["ES384", "RS256", "EdDSA"] {
            let token = raw_token(&json!({"alg": alg, "kid": "ec"}), &claims(), "AAAA");
            assert_eq!(
                check(&v, &token).await,
                Err(OidcError::KeyMismatch),
                "{alg}"
            );
        }
        // The ES256 token signed by one key but naming the other's kid.
        let ec2 = TestKey::ec("ec2");
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("ec".into());
        let token = encode(&h, &claims(), &ec2.enc).expect("encode");
        assert_eq!(check(&v, &token).await, Err(OidcError::BadSignature));
    }

    #[tokio::test]
    async fn tampering_refused() {
        let k = TestKey::ec("k");
        let v = validator(&[&k]);
        let token = k.sign(&claims());
        let parts: Vec<&str> = token.split('.').collect();
        // A changed signature (a character in the middle, not the padding bits).
        let mut sig: Vec<u8> = parts[2].as_bytes().to_vec();
        let i = sig.len() / 2;
        sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
        let bad = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            String::from_utf8(sig).expect("ascii")
        );
        assert_eq!(check(&v, &bad).await, Err(OidcError::BadSignature));
        // Changed claims under the original signature.
        let mut c = claims();
        c["groups"] = json!(["fleet:admin"]);
        c["sub"] = json!("someone-else");
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(&serde_json::to_vec(&c).expect("json")),
            parts[2]
        );
        assert_eq!(check(&v, &forged).await, Err(OidcError::BadSignature));
        // No signature, and shapes that are no JWS at all.
        let unsigned = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(check(&v, &unsigned).await, Err(OidcError::BadSignature));
        for junk in ["", "abc", "a.b", "a.b.c.d", "!!!.x.y", &"A".repeat(20_000)] {
            assert_eq!(
                check(&v, junk).await,
                Err(OidcError::Malformed),
                "{junk:.20}"
            );
        }
    }

    #[tokio::test]
    async fn kid_handling_on_a_fixed_set() {
        let a = TestKey::ec("a");
        let b = TestKey::ec("b");
        let v = validator(&[&a]);
        assert_eq!(
            check(&v, &b.sign(&claims())).await,
            Err(OidcError::UnknownKey)
        );
        // No kid: fine with a set of one key, refused with several.
        let no_kid = encode(&Header::new(Algorithm::ES256), &claims(), &a.enc).expect("encode");
        assert!(check(&v, &no_kid).await.is_ok());
        let v2 = validator(&[&a, &b]);
        assert_eq!(check(&v2, &no_kid).await, Err(OidcError::NoKeyId));
    }

    #[test]
    fn error_messages_do_not_echo_the_token() {
        for e in [
            OidcError::Malformed,
            OidcError::AlgorithmNotAllowed,
            OidcError::UnknownKey,
            OidcError::MissingClaim("sub"),
        ] {
            let m = e.to_string();
            assert!(!m.is_empty() && !m.contains("eyJ"), "{m}");
        }
    }

    #[test]
    fn roles_and_grants() {
        assert!(Role::Viewer < Role::Member && Role::Member < Role::Operator);
        assert!(Role::Operator < Role::Admin);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("Admin".parse::<Role>().is_err());
        assert!("owner".parse::<Role>().is_err());

        let g = |team: &str, role| Grant {
            team: team.into(),
            role,
        };
        assert_eq!(Grant::parse("web:admin"), Some(g("web", Role::Admin)));
        assert_eq!(Grant::parse("db-2:viewer"), Some(g("db-2", Role::Viewer)));
        assert_eq!(Grant::parse("/web:member"), Some(g("web", Role::Member)));
        assert_eq!(Grant::parse("fleet:admin"), Some(Grant::fleet(Role::Admin)));
        assert_eq!(
            Grant::parse("fleet:viewer"),
            Some(Grant::fleet(Role::Viewer))
        );
        for bad in [
            "web",
            "web:",
            ":admin",
            "web:owner",
            "web:Admin",
            "Web:admin",
            "web:admin:x",
            "a/b:admin",
            "*:admin",
            "-web:admin",
            "web admin",
        ] {
            assert_eq!(Grant::parse(bad), None, "{bad}");
        }
        for s in ["web:operator", "fleet:admin"] {
            assert_eq!(Grant::parse(s).expect("grant").to_string(), s);
        }

        let fleet_admin = Grant::fleet(Role::Admin);
        assert!(fleet_admin.allows("anything", Role::Admin));
        let web_op = g("web", Role::Operator);
        assert!(web_op.allows("web", Role::Member));
        assert!(web_op.allows("web", Role::Operator));
        assert!(!web_op.allows("web", Role::Admin));
        assert!(!web_op.allows("db", Role::Viewer));

        assert_eq!(
            serde_json::to_value(g("web", Role::Operator)).expect("json"),
            json!({"team": "web", "role": "operator"})
        );
    }

    #[tokio::test]
    async fn grants_from_the_roles_claim() {
        let k = TestKey::ec("k");
        let v = validator(&[&k]);
        let grants = |c: Value| {
            let token = k.sign(&c);
            let v = &v;
            async move { check(v, &token).await.expect("valid").grants }
        };
        let mut c = claims();
        c["groups"] = json!(["web:viewer", "web:viewer", 7, {"x": 1}, "db:admin"]);
        assert_eq!(
            grants(c.clone()).await,
            vec![
                Grant {
                    team: "web".into(),
                    role: Role::Viewer
                },
                Grant {
                    team: "db".into(),
                    role: Role::Admin
                }
            ]
        );
        c["groups"] = json!("fleet:admin");
        assert_eq!(grants(c.clone()).await, vec![Grant::fleet(Role::Admin)]);
        c["groups"] = json!({"web": "admin"});
        assert!(grants(c.clone()).await.is_empty());
        c.as_object_mut().expect("object").remove("groups");
        assert!(grants(c.clone()).await.is_empty());

        // Another claim name, and a nested path (Keycloak's realm roles).
        let mut cfg = OidcConfig::new(ISS, AUD);
        cfg.roles_claim = "realm_access.roles".into();
        let v2 = OidcValidator::new(cfg, v.jwks().clone());
        let mut c = claims();
        c["realm_access"] = json!({"roles": ["web:member", "offline_access"]});
        let id = v2.validate(&k.sign(&c), now()).await.expect("valid");
        assert_eq!(
            id.grants,
            vec![Grant {
                team: "web".into(),
                role: Role::Member
            }]
        );
        let mut cfg = OidcConfig::new(ISS, AUD);
        cfg.roles_claim = "https://strata.example/roles".into();
        let v3 = OidcValidator::new(cfg, v.jwks().clone());
        let mut c = claims();
        c["https://strata.example/roles"] = json!(["fleet:operator"]);
        let id = v3.validate(&k.sign(&c), now()).await.expect("valid");
        assert_eq!(id.grants, vec![Grant::fleet(Role::Operator)]);
    }

    #[test]
    fn config_defaults() {
        let cfg: OidcConfig =
            serde_json::from_value(json!({"issuer": ISS, "audience": AUD})).expect("config");
        assert_eq!(cfg, OidcConfig::new(ISS, AUD));
        assert_eq!(cfg.roles_claim, "groups");
        assert_eq!(cfg.leeway_s, 60);
    }

    /// A tiny IdP: the discovery document and the JWKS (swappable), counting JWKS GETs.
    struct Idp {
        base: String,
        jwks: Arc<parking_lot::Mutex<Vec<u8>>>,
        hits: Arc<AtomicUsize>,
    }

    impl Idp {
        async fn start(initial: Vec<u8>) -> Idp {
            use axum::routing::get;
            let jwks = Arc::new(parking_lot::Mutex::new(initial));
            let hits = Arc::new(AtomicUsize::new(0));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let base = format!("http://{}", listener.local_addr().expect("addr"));
            let (j, h, b) = (jwks.clone(), hits.clone(), base.clone());
            let app =
                axum::Router::new()
                    .route(
                        "/jwks",
                        get(move || {
                            let (j, h) = (j.clone(), h.clone());
                            async move {
                                h.fetch_add(1, Ordering::SeqCst);
                                // A little latency, so concurrent reloads would overlap.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                j.lock().clone()
                            }
                        }),
                    )
                    .route(
                        "/.well-known/openid-configuration",
                        get(move || {
                            let b = b.clone();
                            async move {
                                axum::Json(json!({"issuer": b, "jwks_uri": format!("{b}/jwks")}))
                            }
                        }),
                    );
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Idp { base, jwks, hits }
        }

        fn jwks_uri(&self) -> String {
            format!("{}/jwks", self.base)
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn unknown_kid_reloads_and_picks_up_a_rotated_key() {
        let old = TestKey::ec("old");
        let new = TestKey::rsa("new", Algorithm::RS256);
        let idp = Idp::start(set(&[&old])).await;
        let uri = discover_jwks_uri(&idp.base).await.expect("discovery");
        assert_eq!(uri, idp.jwks_uri());
        let jwks = Arc::new(Jwks::fetch(&uri).await.expect("fetch"));
        assert_eq!(idp.hits(), 1);
        let v = OidcValidator::new(OidcConfig::new(ISS, AUD), jwks.clone());

        check(&v, &old.sign(&claims())).await.expect("old key");
        assert_eq!(idp.hits(), 1, "a known kid needs no reload");

        // The IdP rotates: the new key replaces the old one.
        *idp.jwks.lock() = set(&[&new]);
        // The reload at start was just now: the interval holds it back...
        assert_eq!(
            check(&v, &new.sign(&claims())).await,
            Err(OidcError::UnknownKey)
        );
        assert_eq!(idp.hits(), 1);

        // ...but not once the interval is over (a set with a short interval, holding
        // `new`; then the IdP rotates again, to `next`).
        let jwks = Arc::new(
            Jwks::fetch(&uri)
                .await
                .expect("fetch")
                .with_refresh_interval(Duration::from_secs(1)),
        );
        assert_eq!(idp.hits(), 2);
        assert_eq!(jwks.kids(), ["new"]);
        let v = OidcValidator::new(OidcConfig::new(ISS, AUD), jwks.clone());
        check(&v, &new.sign(&claims())).await.expect("new key");
        let next = TestKey::ed("next");
        *idp.jwks.lock() = set(&[&next]);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let id = check(&v, &next.sign(&claims())).await.expect("rotated key");
        assert_eq!(id.subject, "u-123");
        assert_eq!(idp.hits(), 3);
        assert_eq!(jwks.kids(), ["next"]);
        // The rotated-out key is gone, and another reload is held back.
        assert_eq!(
            check(&v, &new.sign(&claims())).await,
            Err(OidcError::UnknownKey)
        );
        assert_eq!(idp.hits(), 3);
    }

    #[tokio::test]
    async fn bogus_kids_cannot_hammer_the_idp() {
        let k = TestKey::ec("k");
        let idp = Idp::start(set(&[&k])).await;
        // Lazy: nothing fetched until a token needs a key.
        let jwks = Arc::new(Jwks::from_url(&idp.jwks_uri()).expect("url"));
        assert!(jwks.is_empty());
        let v = Arc::new(OidcValidator::new(OidcConfig::new(ISS, AUD), jwks.clone()));
        check(&v, &k.sign(&claims()))
            .await
            .expect("first use fetches");
        assert_eq!(idp.hits(), 1);

        // A flood of tokens with made-up kids, at once and one after the other.
        let mut tasks = Vec::new();
        for i in 0..50 {
            let bogus = TestKey {
                kid: format!("bogus-{i}"),
                ..TestKey::ec("x")
            };
            let v = v.clone();
            let token = bogus.sign(&claims());
            tasks.push(tokio::spawn(async move { check(&v, &token).await }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), Err(OidcError::UnknownKey));
        }
        assert_eq!(idp.hits(), 1, "within the interval after the first fetch");

        // With the interval over, concurrent unknown kids cause a single reload.
        let jwks = Arc::new(
            Jwks::fetch(&idp.jwks_uri())
                .await
                .expect("fetch")
                .with_refresh_interval(Duration::from_secs(1)),
        );
        assert_eq!(idp.hits(), 2);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let v = Arc::new(OidcValidator::new(OidcConfig::new(ISS, AUD), jwks));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let bogus = TestKey {
                kid: format!("bogus-{i}"),
                ..TestKey::ec("x")
            };
            let v = v.clone();
            let token = bogus.sign(&claims());
            tasks.push(tokio::spawn(async move { check(&v, &token).await }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), Err(OidcError::UnknownKey));
        }
        assert_eq!(idp.hits(), 3);
        // Good tokens still pass throughout.
        check(&v, &k.sign(&claims())).await.expect("valid");
    }

    #[tokio::test]
    async fn a_failed_reload_keeps_the_keys() {
        let k = TestKey::ec("k");
        let idp = Idp::start(set(&[&k])).await;
        let jwks = Arc::new(
            Jwks::fetch(&idp.jwks_uri())
                .await
                .expect("fetch")
                .with_refresh_interval(Duration::ZERO),
        );
        let v = OidcValidator::new(OidcConfig::new(ISS, AUD), jwks.clone());
        *idp.jwks.lock() = b"<html>oops</html>".to_vec();
        let other = TestKey::ec("other");
        assert_eq!(
            check(&v, &other.sign(&claims())).await,
            Err(OidcError::UnknownKey)
        );
        assert_eq!(idp.hits(), 2);
        assert!(matches!(jwks.refresh().await, Err(OidcError::Jwks(_))));
        check(&v, &k.sign(&claims())).await.expect("old keys kept");
    }

    #[tokio::test]
    async fn file_source_reloads_on_unknown_kid() {
        let a = TestKey::ec("a");
        let b = TestKey::ed("b");
        let dir = std::env::temp_dir().join(format!("strata-oidc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("jwks.json");
        std::fs::write(&path, set(&[&a])).expect("write");
        let jwks = Jwks::from_file(&path)
            .expect("file")
            .with_refresh_interval(Duration::ZERO);
        let v = OidcValidator::new(OidcConfig::new(ISS, AUD), Arc::new(jwks));
        check(&v, &a.sign(&claims())).await.expect("a");
        std::fs::write(&path, set(&[&a, &b])).expect("write");
        check(&v, &b.sign(&claims())).await.expect("b after reload");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(
            Jwks::from_file(dir.join("missing.json")),
            Err(OidcError::Jwks(_))
        ));
    }

    #[tokio::test]
    async fn urls_must_be_https_or_loopback() {
        assert!(Jwks::from_url("https://idp.example.com/jwks").is_ok());
        assert!(Jwks::from_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(Jwks::from_url("http://localhost/jwks").is_ok());
        assert!(matches!(
            Jwks::from_url("http://idp.example.com/jwks"),
            Err(OidcError::Jwks(_))
        ));
        assert!(matches!(
            Jwks::from_url("not a url"),
            Err(OidcError::Jwks(_))
        ));
        // Discovery refuses a document for another issuer.
        let idp = Idp::start(b"{}".to_vec()).await;
        let e = discover_jwks_uri(&format!("{}/", idp.base)).await;
        assert!(matches!(e, Err(OidcError::Jwks(_))), "{e:?}");
    }
}
