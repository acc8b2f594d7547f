//! One HTTP endpoint: TLS (custom CA or an explicit `insecure`), timeouts, a
//! concurrency limit, retries with exponential backoff and jitter on 5xx, 429,
//! timeouts and dropped connections (honouring `Retry-After`), and a call counter.
//!
//! Retries are automatic only for requests that are safe to repeat (GET, HEAD, PUT,
//! DELETE, and requests the caller marks idempotent). A create (POST) that fails
//! ambiguously is returned to the provider, which re-observes before trying again:
//! that is how an apply never makes duplicates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::Semaphore;

/// How to reach an endpoint.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// PEM of a CA to trust (in addition to none: only this CA when given).
    pub ca_pem: Option<String>,
    /// Accept any certificate (labs only; never the default).
    pub insecure: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Attempts per request (1 = no retries).
    pub attempts: u32,
    /// First backoff; doubles each retry, with full jitter, capped at `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Endpoints made with the same key in this process share one request limit (the
    /// first one's `concurrency`): the providers a server builds for many steps at
    /// once then stay within the limit together. `None`: a limit of its own.
    pub limit_key: Option<String>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            ca_pem: None,
            insecure: false,
            timeout: Duration::from_secs(15),
            concurrency: 16,
            attempts: 8,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            limit_key: None,
        }
    }
}

/// Why a request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("{method} {url}: {source}")]
    Transport {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("invalid endpoint configuration: {0}")]
    Config(String),
}

impl HttpError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Did the request possibly reach the server (so a create may have happened)?
    pub fn is_ambiguous(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => {
                status.is_server_error() && *status != StatusCode::SERVICE_UNAVAILABLE
            }
            HttpError::Transport { source, .. } => !source.is_connect(),
            HttpError::Config(_) => false,
        }
    }
}

/// The process-wide request limit of endpoint `key` (made with `concurrency` permits
/// the first time).
fn shared_limit(key: &str, concurrency: usize) -> Arc<Semaphore> {
    static LIMITS: std::sync::LazyLock<
        std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
    > = std::sync::LazyLock::new(Default::default);
    let mut map = LIMITS.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(key.to_string())
        .or_insert_with(|| Arc::new(Semaphore::new(concurrency.max(1))))
        .clone()
}

/// An HTTP endpoint with its own client, limit and counters.
#[derive(Clone)]
pub struct Endpoint {
    client: reqwest::Client,
    config: EndpointConfig,
    limit: Arc<Semaphore>,
    calls: Arc<AtomicU64>,
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Result<Self, HttpError> {
        let mut b = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(config.concurrency.max(1))
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")));
        if config.insecure {
            b = b.danger_accept_invalid_certs(true);
        } else if let Some(pem) = &config.ca_pem {
            let ca = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| HttpError::Config(format!("CA certificate: {e}")))?;
            b = b.tls_certs_only([ca]);
        }
        let client = b.build().map_err(|e| HttpError::Config(e.to_string()))?;
        let limit = match &config.limit_key {
            Some(key) => shared_limit(key, config.concurrency),
            None => Arc::new(Semaphore::new(config.concurrency.max(1))),
        };
        Ok(Endpoint {
            client,
            limit,
            config,
            calls: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Requests sent so far (each attempt counts).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Send a request built by `build`, retrying when safe. `idempotent` overrides the
    /// method-based default (e.g. a POST that is an idempotent action such as MAAS
    /// `release`). The response is returned for 2xx, otherwise an error with the body.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        idempotent: Option<bool>,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, HttpError> {
        let safe = idempotent.unwrap_or(matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        ));
        let attempts = self.config.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = {
                let _permit = self
                    .limit
                    .acquire()
                    .await
                    .map_err(|_| HttpError::Config("endpoint closed".into()))?;
                self.calls.fetch_add(1, Ordering::Relaxed);
                build(self.client.request(method.clone(), url)).send().await
            };
            let (err, retry_after) = match result {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = retry_after(&resp);
                    let body = resp.text().await.unwrap_or_default();
                    let err = HttpError::Status {
                        method: method.clone(),
                        url: url.to_string(),
                        status,
                        body: truncate(&body),
                    };
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::SERVICE_UNAVAILABLE
                        || (status.is_server_error() && safe);
                    if !retryable {
                        return Err(err);
                    }
                    (err, retry_after)
                }
                Err(e) => {
                    let retryable = e.is_connect()
                        || ((e.is_timeout() || e.is_request() || e.is_body()) && safe);
                    let err = HttpError::Transport {
                        method: method.clone(),
                        url: url.to_string(),
                        source: e,
                    };
                    if !retryable {
                        return Err(err);
                    }
                    (err, None)
                }
            };
            if attempt >= attempts {
                return Err(err);
            }
            tokio::time::sleep(retry_after.unwrap_or_else(|| self.backoff(attempt))).await;
        }
    }

    /// Exponential backoff with full jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .base_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.config.max_backoff);
        let ms = exp.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }
}

fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs.min(60)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    when.duration_since(std::time::SystemTime::now())
        .ok()
        .map(|d| d.min(Duration::from_secs(60)))
}

fn truncate(s: &str) -> String {
    if s.len() <= 2000 {
        return s.to_string();
    }
    let mut end = 2000;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_with_one_key_share_one_limit() {
        let cfg = |key: Option<&str>, concurrency| EndpointConfig {
            concurrency,
            limit_key: key.map(str::to_string),
            ..EndpointConfig::default()
        };
        let a = Endpoint::new(cfg(Some("maas http://unit-test-a/"), 3)).expect("a");
        // The first one's size holds for the key.
        let b = Endpoint::new(cfg(Some("maas http://unit-test-a/"), 50)).expect("b");
        let c = Endpoint::new(cfg(Some("maas http://unit-test-c/"), 3)).expect("c");
        let own = Endpoint::new(cfg(None, 3)).expect("own");
        let held = a.limit.clone().try_acquire_many_owned(3).expect("permits");
        assert_eq!(b.limit.available_permits(), 0);
        assert_eq!(c.limit.available_permits(), 3);
        assert_eq!(own.limit.available_permits(), 3);
        drop(held);
        assert_eq!(b.limit.available_permits(), 3);
    }
}
