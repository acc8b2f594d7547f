//! A small client of the server's `/api/v1` for the command line (`strata request`):
//! bearer token, JSON in and out, and the API's problem documents as errors with
//! their code and detail.

use std::time::Duration;

use serde_json::Value;

/// An answer the API refused (a problem document), or why there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status (0: no answer).
    pub status: u16,
    /// The problem's stable code (`quota-exceeded`, ...; `unreachable` without an answer).
    pub code: String,
    pub detail: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == 0 {
            write!(f, "{} ({})", self.detail, self.code)
        } else {
            write!(f, "HTTP {} {}: {}", self.status, self.code, self.detail)
        }
    }
}

impl std::error::Error for ApiError {}

/// The server at `base` (`http://host:port`), as the holder of `token`.
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str, token: &str) -> Result<ApiClient, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError {
                status: 0,
                code: "client".into(),
                detail: e.to_string(),
            })?;
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            http,
        })
    }

    /// `method path` (below `/api/v1`) with an optional JSON body; the answer's JSON.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| ApiError {
            status: 0,
            code: "client".into(),
            detail: e.to_string(),
        })?;
        let url = format!("{}/api/v1{path}", self.base);
        let mut rb = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .header("Accept", "application/json");
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| ApiError {
            status: 0,
            code: "unreachable".into(),
            detail: format!("cannot reach {url}: {e}"),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
        };
        if (200..300).contains(&status) {
            return Ok(v);
        }
        Err(ApiError {
            status,
            code: v["code"].as_str().unwrap_or("error").to_string(),
            detail: v["detail"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(500).collect()),
        })
    }
}
