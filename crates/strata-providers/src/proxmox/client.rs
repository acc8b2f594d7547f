//! The Proxmox VE API over one [`Endpoint`]: token authentication, `{"data": ...}`
//! envelopes, error messages, asynchronous tasks.
//!
//! Error messages: PVE puts the message of a failed call in the HTTP reason phrase
//! (`500 unable to create VM 100: config file already exists`). reqwest does not expose
//! the raw reason phrase (`StatusCode::canonical_reason` is the standard text, not the
//! server's), so strata reads the status code and the body: PVE 9 repeats the message
//! there (`{"data": null, "message": "...\n"}`) and parameter errors come as
//! `{"errors": {"param": "why"}}`. Against a PVE that sends only the reason phrase the
//! message is unknown and such an answer counts as ambiguous (see [`Failure`]).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use super::conf::{segment, text, upid_node};
use crate::ProviderError;
use crate::http::{Endpoint, HttpError};

/// How long one asynchronous task (clone, start, stop, resize, destroy) may take.
pub(crate) const TASK_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a running task is polled.
pub(crate) const POLL: Duration = Duration::from_millis(150);

pub(crate) struct Client {
    base: String,
    auth: HeaderValue,
    http: Endpoint,
    /// `USER@REALM!TOKENID` (named in permission errors; never the secret).
    token_id: String,
}

/// What a failed call means for a caller deciding whether something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server refused the request before doing anything (4xx: bad parameters,
    /// permissions, missing objects in the path).
    Refused,
    /// The server answered with an error of its own (a 5xx with a PVE message): the
    /// call failed; nothing was started.
    Failed,
    /// Unknown: a timeout, a dropped connection, a 5xx without a PVE message (a proxy,
    /// or a PVE that reports errors only in the reason phrase). It may have happened.
    Ambiguous,
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TaskEnd {
    Ok,
    /// The task's exit status (`unable to create VM 100: config file already exists`).
    Failed(String),
}

impl Client {
    pub(crate) fn new(
        url: &str,
        token_id: &str,
        secret: &str,
        http: Endpoint,
    ) -> Result<Client, ProviderError> {
        let mut auth =
            HeaderValue::from_str(&format!("PVEAPIToken={token_id}={secret}")).map_err(|_| {
                ProviderError::Secret(
                    "the Proxmox API token contains characters not allowed in an HTTP header"
                        .into(),
                )
            })?;
        auth.set_sensitive(true);
        let base = format!("{}/api2/json", url.trim_end_matches('/'));
        Ok(Client {
            base,
            auth,
            http,
            token_id: token_id.to_string(),
        })
    }

    pub(crate) fn calls(&self) -> u64 {
        self.http.calls()
    }

    /// One call; the `data` of the answer. `query` goes into the URL, `form` into an
    /// `application/x-www-form-urlencoded` body. `idempotent` as [`Endpoint::send`].
    /// A body lost after a successful status line is retried here for safe calls.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        form: &[(&str, String)],
        idempotent: Option<bool>,
    ) -> Result<Value, ProviderError> {
        let url = format!("{}{path}", self.base);
        let safe =
            idempotent.unwrap_or(matches!(method, Method::GET | Method::PUT | Method::DELETE));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resp = self
                .http
                .send(method.clone(), &url, idempotent, |rb| {
                    let mut rb = rb.header(AUTHORIZATION, self.auth.clone());
                    if !query.is_empty() {
                        rb = rb.query(query);
                    }
                    if !form.is_empty() {
                        rb = rb.form(form);
                    }
                    rb
                })
                .await
                .map_err(|e| match e.status() {
                    Some(StatusCode::UNAUTHORIZED) => ProviderError::Api(format!(
                        "{method} {path}: authentication failed (HTTP 401): check the API token id and secret"
                    )),
                    Some(StatusCode::FORBIDDEN) => {
                        permission_error(&method, path, &self.token_id, &ProviderError::Http(e))
                    }
                    _ => ProviderError::Http(e),
                })?;
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    if safe && attempt < 4 {
                        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                        continue;
                    }
                    return Err(ProviderError::Http(HttpError::Transport {
                        method,
                        url,
                        source: e,
                    }));
                }
            };
            if body.is_empty() {
                return Ok(Value::Null);
            }
            let v: Value = serde_json::from_slice(&body).map_err(|e| {
                ProviderError::Api(format!("{method} {path}: the answer is not JSON: {e}"))
            })?;
            return Ok(v.get("data").cloned().unwrap_or(Value::Null));
        }
    }

    pub(crate) async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Value, ProviderError> {
        self.call(Method::GET, path, query, &[], None).await
    }

    /// A POST that creates or starts something: not retried on ambiguous failures.
    pub(crate) async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<Value, ProviderError> {
        self.call(Method::POST, path, &[], form, None).await
    }

    /// The status of a task until it stops, polling every [`POLL`], at most [`TASK_TIMEOUT`].
    /// The first look is one [`POLL`] after the start: the tasks strata waits for
    /// (clone, start, stop, resize, destroy) take longer than that, so a look at once
    /// would almost always say `running` and only cost a call.
    pub(crate) async fn wait_task(&self, upid: &str, what: &str) -> Result<TaskEnd, ProviderError> {
        let node = upid_node(upid).ok_or_else(|| {
            ProviderError::Api(format!("{what}: the answer is not a task id: {upid:?}"))
        })?;
        let path = format!("/nodes/{}/tasks/{}/status", segment(node), segment(upid));
        let deadline = Instant::now() + TASK_TIMEOUT;
        loop {
            tokio::time::sleep(POLL).await;
            let st = self.get(&path, &[]).await?;
            if st.get("status").and_then(Value::as_str) == Some("stopped") {
                let exit = st.get("exitstatus").map(text).unwrap_or_default();
                // `WARNINGS: n` is a success with warnings in the task log.
                if exit == "OK" || exit.starts_with("WARNINGS") {
                    if exit != "OK" {
                        tracing::warn!("{what}: task {upid} ended with {exit}");
                    }
                    return Ok(TaskEnd::Ok);
                }
                return Ok(TaskEnd::Failed(if exit.is_empty() {
                    "unknown exit status".into()
                } else {
                    exit
                }));
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::Timeout(format!(
                    "{what}: task {upid} still running after {}s",
                    TASK_TIMEOUT.as_secs()
                )));
            }
        }
    }

    /// Wait for a task whose id is the `data` of an answer (some calls answer `null`
    /// when there is nothing to do, or on older versions where they are synchronous).
    pub(crate) async fn finish(&self, data: &Value, what: &str) -> Result<(), ProviderError> {
        match data.as_str().filter(|s| s.starts_with("UPID:")) {
            Some(upid) => match self.wait_task(upid, what).await? {
                TaskEnd::Ok => Ok(()),
                TaskEnd::Failed(e) => Err(ProviderError::Api(format!("{what}: {e}"))),
            },
            None => Ok(()),
        }
    }
}

/// A 403: the token lacks a privilege. PVE names the path and the privilege
/// ("Permission check failed (/vms/100, VM.Config.CPU)"); the error says what to grant.
fn permission_error(
    method: &Method,
    path: &str,
    token_id: &str,
    e: &ProviderError,
) -> ProviderError {
    let msg = message(e);
    let what = msg
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map(|(inner, _)| inner.to_string());
    let fix = match what.as_deref().and_then(|w| w.split_once(", ")) {
        Some((acl_path, privilege)) => format!(
            "the token lacks `{privilege}` on `{acl_path}`: add it to the token's role, e.g. `pveum role modify StrataProvisioner --append 1 --privs {privilege}` (a privilege-separated token needs it in its own ACL and in its user's; the README lists the role strata needs)"
        ),
        None => "grant the token the role the README lists for strata".to_string(),
    };
    ProviderError::Refused(format!(
        "{method} {path}: Proxmox refused API token `{token_id}`: {msg}; {fix}"
    ))
}

/// The message PVE gave for a failed call (from the body; see the module docs).
pub(crate) fn message(e: &ProviderError) -> String {
    match e {
        ProviderError::Http(HttpError::Status { body, status, .. }) => {
            let parsed: Option<Value> = serde_json::from_str(body).ok();
            let mut msg = parsed
                .as_ref()
                .and_then(|v| v.get("message"))
                .and_then(Value::as_str)
                .map(|m| m.trim().to_string())
                .unwrap_or_default();
            if let Some(errors) = parsed
                .as_ref()
                .and_then(|v| v.get("errors"))
                .and_then(Value::as_object)
            {
                for (k, v) in errors {
                    msg.push_str(&format!(" {k}: {}", text(v).trim()));
                }
            }
            if msg.is_empty() {
                format!("HTTP {status}")
            } else {
                msg
            }
        }
        other => other.to_string(),
    }
}

/// Whether the server gave a message of its own (a PVE answer, not a proxy's).
fn has_message(body: &str) -> bool {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(Value::as_str)
                .map(|m| !m.trim().is_empty())
        })
        .unwrap_or(false)
}

/// Classify a failed call (see [`Failure`]).
pub(crate) fn failure(e: &ProviderError) -> Failure {
    match e {
        ProviderError::Http(h @ HttpError::Status { status, body, .. }) => {
            if *status == StatusCode::TOO_MANY_REQUESTS
                || *status == StatusCode::SERVICE_UNAVAILABLE
            {
                // Refused before it was handled (the endpoint already retried).
                Failure::Failed
            } else if status.is_client_error() {
                Failure::Refused
            } else if h.is_ambiguous() && !has_message(body) {
                Failure::Ambiguous
            } else {
                Failure::Failed
            }
        }
        ProviderError::Http(h) => {
            if h.is_ambiguous() {
                Failure::Ambiguous
            } else {
                Failure::Failed
            }
        }
        ProviderError::Timeout(_) => Failure::Ambiguous,
        ProviderError::Refused(_) => Failure::Refused,
        _ => Failure::Failed,
    }
}

/// A 501 "Method ... not implemented" (or 404): the server lacks that path.
pub(crate) fn not_implemented(e: &ProviderError) -> bool {
    e.status() == Some(StatusCode::NOT_IMPLEMENTED.as_u16()) || e.is_not_found()
}

/// "Configuration file ... does not exist" and friends: the guest is not (or no
/// longer) on that node.
pub(crate) fn is_missing(e: &ProviderError) -> bool {
    let m = message(e);
    m.contains("does not exist") || m.contains("no such VM") || m.contains("not found")
}
