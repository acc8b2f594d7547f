//! The MAAS 2.0 API over HTTP: OAuth 1.0 PLAINTEXT, form-urlencoded bodies, `op` in
//! the query string, JSON answers.
//!
//! Every request goes through [`Endpoint`] (retries, backoff, concurrency limit, call
//! counter). A POST that fails ambiguously (it may have reached MAAS) is reported as
//! such ([`CallError::ambiguous`]) so that the caller re-reads before trying again.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::ProviderError;
use crate::http::{Endpoint, EndpointConfig, HttpError};
use crate::secrets::Secret;

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The endpoint's own error (status, transport, configuration).
    Http(HttpError),
    /// A 2xx answer whose body could not be read or decoded.
    Body {
        method: Method,
        path: String,
        detail: String,
    },
}

impl CallError {
    /// May the request have taken effect although it failed?
    pub(crate) fn ambiguous(&self) -> bool {
        match self {
            CallError::Http(e) => e.is_ambiguous(),
            // MAAS answered 2xx: the change happened, only its answer was lost.
            CallError::Body { .. } => true,
        }
    }

    pub(crate) fn status(&self) -> Option<StatusCode> {
        match self {
            CallError::Http(e) => e.status(),
            CallError::Body { .. } => None,
        }
    }

    /// The answer's body for a status error (MAAS puts its reason there).
    pub(crate) fn body(&self) -> &str {
        match self {
            CallError::Http(HttpError::Status { body, .. }) => body,
            _ => "",
        }
    }

    pub(crate) fn is_status(&self, s: StatusCode) -> bool {
        self.status() == Some(s)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Http(e) => write!(f, "{e}"),
            CallError::Body {
                method,
                path,
                detail,
            } => write!(f, "{method} {path}: unreadable answer: {detail}"),
        }
    }
}

impl From<HttpError> for CallError {
    fn from(e: HttpError) -> Self {
        CallError::Http(e)
    }
}

impl From<CallError> for ProviderError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Http(h) => ProviderError::Http(h),
            other => ProviderError::Api(other.to_string()),
        }
    }
}

/// Form parameters (keys may repeat).
pub(crate) type Form = Vec<(String, String)>;

/// Build a form from `(key, value)` pairs.
pub(crate) fn form<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Form {
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// One MAAS region's API.
pub(crate) struct Client {
    ep: Endpoint,
    /// `http://host:5240/MAAS/api/2.0/`
    api: String,
    consumer_key: String,
    token_key: String,
    /// The PLAINTEXT signature as it travels in the header: `%26` + the encoded secret.
    signature: Secret,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

const GET_BODY_ATTEMPTS: u32 = 3;

impl Client {
    /// `url` is the region's base URL (ending in `/MAAS/`); `api_key` is
    /// `consumer_key:token_key:token_secret`.
    pub(crate) fn new(
        url: &str,
        api_key: &str,
        config: EndpointConfig,
    ) -> Result<Self, ProviderError> {
        let mut parts = api_key.trim().splitn(3, ':');
        let (Some(ck), Some(tk), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ProviderError::Refused(
                "the MAAS api_key must have the form consumer_key:token_key:token_secret".into(),
            ));
        };
        if ck.is_empty() || tk.is_empty() || secret.is_empty() {
            return Err(ProviderError::Refused(
                "the MAAS api_key must have the form consumer_key:token_key:token_secret".into(),
            ));
        }
        let parsed = url::Url::parse(url)
            .map_err(|e| ProviderError::Refused(format!("MAAS url {url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ProviderError::Refused(format!(
                "MAAS url {url:?} must be http or https"
            )));
        }
        let mut base = url.trim_end_matches('/').to_string();
        base.push('/');
        let ep = Endpoint::new(config)?;
        Ok(Client {
            ep,
            api: format!("{base}api/2.0/"),
            consumer_key: ck.to_string(),
            token_key: tk.to_string(),
            signature: Secret::new(format!("%26{}", pct(secret))),
        })
    }

    pub(crate) fn calls(&self) -> u64 {
        self.ep.calls()
    }

    /// The `Authorization` header: a fresh nonce and timestamp for every request.
    fn auth(&self) -> HeaderValue {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let v = format!(
            "OAuth oauth_version=\"1.0\", oauth_signature_method=\"PLAINTEXT\", \
             oauth_consumer_key=\"{}\", oauth_token=\"{}\", oauth_signature=\"{}\", \
             oauth_nonce=\"{nonce}\", oauth_timestamp=\"{ts}\"",
            pct(&self.consumer_key),
            pct(&self.token_key),
            self.signature.expose(),
        );
        let mut h = HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("OAuth"));
        h.set_sensitive(true);
        h
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Form>,
        idempotent: Option<bool>,
    ) -> Result<Response, CallError> {
        let url = format!("{}{path}", self.api);
        let build = |rb: RequestBuilder| {
            let mut rb = rb
                .header(AUTHORIZATION, self.auth())
                .header(reqwest::header::ACCEPT, "application/json");
            if !query.is_empty() {
                rb = rb.query(query);
            }
            if let Some(f) = body {
                rb = rb.form(f);
            }
            rb
        };
        Ok(self.ep.send(method, &url, idempotent, build).await?)
    }

    /// `GET path?query`, decoded. A body that cannot be read is fetched again.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, CallError> {
        self.read_twice(Method::GET, path, query, None).await
    }

    /// `PUT path` with a form (idempotent: retried, body re-read on failure).
    pub(crate) async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Form,
    ) -> Result<T, CallError> {
        self.read_twice(Method::PUT, path, &[], Some(body)).await
    }

    async fn read_twice<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Form>,
    ) -> Result<T, CallError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resp = self
                .exchange(method.clone(), path, query, body, None)
                .await?;
            match decode(resp, &method, path).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < GET_BODY_ATTEMPTS => {
                    tracing::debug!(%method, path, error = %e, "re-reading a MAAS answer");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `POST path?op=OP` with a form. Retried automatically only when `idempotent`;
    /// otherwise an ambiguous failure comes back to the caller.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        op: Option<&str>,
        body: &Form,
        idempotent: bool,
    ) -> Result<T, CallError> {
        let query: Vec<(&str, &str)> = op.map(|o| ("op", o)).into_iter().collect();
        let resp = self
            .exchange(Method::POST, path, &query, Some(body), Some(idempotent))
            .await?;
        decode(resp, &Method::POST, path).await
    }

    /// `POST path?op=OP` whose answer is not JSON (MAAS answers `set_boot_disk` with
    /// a plain-text `OK`): only the status counts.
    pub(crate) async fn post_ok(
        &self,
        path: &str,
        op: &str,
        body: &Form,
        idempotent: bool,
    ) -> Result<(), CallError> {
        self.exchange(
            Method::POST,
            path,
            &[("op", op)],
            Some(body),
            Some(idempotent),
        )
        .await
        .map(drop)
    }

    /// `DELETE path`; `Ok(false)` when it was already gone (404).
    pub(crate) async fn delete(&self, path: &str) -> Result<bool, CallError> {
        match self.exchange(Method::DELETE, path, &[], None, None).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_status(StatusCode::NOT_FOUND) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

async fn decode<T: DeserializeOwned>(
    resp: Response,
    method: &Method,
    path: &str,
) -> Result<T, CallError> {
    let bytes = resp.bytes().await.map_err(|e| CallError::Body {
        method: method.clone(),
        path: path.to_string(),
        detail: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| CallError::Body {
        method: method.clone(),
        path: path.to_string(),
        detail: format!("not the expected JSON: {e}"),
    })
}

/// RFC 3986 percent-encoding (everything but unreserved characters), as OAuth wants.
pub(crate) fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(pct("abc-._~XYZ09"), "abc-._~XYZ09");
        assert_eq!(pct("&a b/c"), "%26a%20b%2Fc");
    }

    #[test]
    fn the_signature_is_the_encoded_secret_after_an_ampersand_and_never_prints() {
        let c = Client::new(
            "http://maas:5240/MAAS/",
            "ck:tk:s3cr=t",
            EndpointConfig::default(),
        )
        .expect("client");
        assert_eq!(c.api, "http://maas:5240/MAAS/api/2.0/");
        assert_eq!(c.signature.expose(), "%26s3cr%3Dt");
        let h = c.auth();
        assert!(h.is_sensitive());
        let text = h.to_str().expect("ascii").to_string();
        assert!(
            text.contains("oauth_signature_method=\"PLAINTEXT\""),
            "{text}"
        );
        assert!(text.contains("oauth_signature=\"%26s3cr%3Dt\""), "{text}");
        assert_ne!(text, c.auth().to_str().expect("ascii"), "nonce must change");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr"), "{dbg}");
        assert!(Client::new("http://m/MAAS/", "only:two", EndpointConfig::default()).is_err());
    }
}
