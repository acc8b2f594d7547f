//! Request parameters, OAuth 1.0 PLAINTEXT checks and MAAS-style responses.
//!
//! MAAS (Django + Piston) takes `op` from the query string, reads POST/PUT parameters
//! from `multipart/form-data` (python-libmaas, the CLI) or
//! `application/x-www-form-urlencoded` (Go clients) bodies, repeats keys for lists, and
//! answers errors as plain text, except form validation errors, which are a JSON object
//! of field → messages.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::core::http::parse_form;
use crate::core::{ApiError, ErrorBody};

/// An ordered multimap of request parameters (query string and body together).
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The last value of a key, as Django's `QueryDict.get` returns it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty value.
    pub fn get_nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.trim().is_empty())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Every value of a key, also splitting comma-separated values.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.all(key)
            .into_iter()
            .flat_map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// A boolean in any of the spellings MAAS accepts; `Err` names a bad value.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_bool(v).map(Some).ok_or_else(|| v.to_string()),
        }
    }

    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k[prefix.len()..].to_string(), v.clone()))
            .collect()
    }
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "y" | "t" => Some(true),
        "false" | "0" | "no" | "off" | "n" | "f" | "" => Some(false),
        _ => None,
    }
}

/// One parsed API request.
pub struct Req {
    pub method: String,
    pub op: Option<String>,
    pub path: BTreeMap<String, String>,
    pub params: Params,
    /// Scheme and authority the client used (for absolute URIs in `describe`).
    pub origin: Option<String>,
}

impl Req {
    pub fn path(&self, name: &str) -> &str {
        self.path.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Split a request into its query parameters, body parameters and headers.
pub async fn read_request(req: Request) -> Result<(String, Params, Params, HeaderMap), Response> {
    let method = req.method().to_string();
    let headers = req.headers().clone();
    let query = Params(parse_form(req.uri().query().unwrap_or("").as_bytes()));
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut body = Params::default();
    if ctype.starts_with("multipart/form-data") {
        let raw_ctype = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|e| text(StatusCode::BAD_REQUEST, &format!("Invalid body: {e}")))?;
        body.0 = parse_multipart(&raw_ctype, &bytes).map_err(|e| {
            text(
                StatusCode::BAD_REQUEST,
                &format!("Invalid multipart body: {e}"),
            )
        })?;
    } else if method != "GET" && method != "HEAD" {
        let bytes = axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024)
            .await
            .map_err(|e| text(StatusCode::BAD_REQUEST, &format!("Invalid body: {e}")))?;
        if !bytes.is_empty()
            && (ctype.is_empty() || ctype.starts_with("application/x-www-form-urlencoded"))
        {
            body.0 = parse_form(&bytes);
        }
    }
    Ok((method, query, body, headers))
}

/// Parse a `multipart/form-data` body tolerantly, as Django does: parts may be
/// base64 (`Content-Transfer-Encoding: base64`, python-libmaas sends every part so),
/// the body may hold a single empty part (python-libmaas's "no parameters"), and the
/// closing boundary may lack its final CRLF. Parts without a name are ignored.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let boundary = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty())
        .ok_or("no boundary in Content-Type")?;
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let find = |hay: &[u8], from: usize| -> Option<usize> {
        if hay.len() < d.len() {
            return None;
        }
        (from..=hay.len() - d.len()).find(|&i| &hay[i..i + d.len()] == d)
    };
    let mut out = Vec::new();
    let Some(mut pos) = find(body, 0) else {
        return if body.iter().all(u8::is_ascii_whitespace) {
            Ok(out)
        } else {
            Err("no boundary in body".into())
        };
    };
    loop {
        let start = pos + d.len();
        if body[start..].starts_with(b"--") {
            break;
        }
        let next = find(body, start).ok_or("unterminated part")?;
        let mut part = &body[start..next];
        // Strip the CRLF after the delimiter and before the next one.
        part = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"))
            .unwrap_or(part);
        part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .unwrap_or(part);
        let (head, data) = match (0..part.len()).find(|&i| part[i..].starts_with(b"\r\n\r\n")) {
            Some(i) => (&part[..i], &part[i + 4..]),
            None => match (0..part.len()).find(|&i| part[i..].starts_with(b"\n\n")) {
                Some(i) => (&part[..i], &part[i + 2..]),
                None => (part, &[][..]),
            },
        };
        let head = String::from_utf8_lossy(head);
        let mut name = None;
        let mut b64 = false;
        for line in head.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let k = k.trim().to_ascii_lowercase();
            if k == "content-disposition" {
                for p in v.split(';').skip(1) {
                    if let Some((pk, pv)) = p.trim().split_once('=')
                        && pk.trim().eq_ignore_ascii_case("name")
                    {
                        name = Some(pv.trim().trim_matches('"').to_string());
                    }
                }
            } else if k == "content-transfer-encoding" {
                b64 = v.trim().eq_ignore_ascii_case("base64");
            }
        }
        if let Some(name) = name {
            let value = if b64 {
                let compact: Vec<u8> = data
                    .iter()
                    .copied()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(&compact)
                    .map_err(|_| format!("invalid base64 in part {name}"))?
            } else {
                data.to_vec()
            };
            out.push((name, String::from_utf8_lossy(&value).into_owned()));
        }
        pos = next;
    }
    Ok(out)
}

/// The API key `consumer_key:token_key:token_secret`.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub consumer_key: String,
    pub token_key: String,
    pub token_secret: String,
}

impl ApiKey {
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.splitn(3, ':');
        Some(ApiKey {
            consumer_key: it.next()?.to_string(),
            token_key: it.next()?.to_string(),
            token_secret: it.next()?.to_string(),
        })
    }
}

/// Parse the parameters of an `Authorization: OAuth ...` header: comma-separated
/// `key="value"` pairs in any order, quoted or not, percent-encoded values; `realm`
/// and anything not `oauth_*` is ignored.
pub fn oauth_params(header_value: &str) -> Option<BTreeMap<String, String>> {
    let v = header_value.trim();
    let rest = if v.len() >= 5 && v[..5].eq_ignore_ascii_case("oauth") {
        &v[5..]
    } else {
        return None;
    };
    let mut out = BTreeMap::new();
    for part in rest.split(',') {
        let part = part.trim();
        let Some((k, val)) = part.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if !k.starts_with("oauth_") {
            continue;
        }
        let val = val.trim();
        let val = val.strip_prefix('"').unwrap_or(val);
        let val = val.strip_suffix('"').unwrap_or(val);
        out.insert(k.to_string(), percent_decode(val));
    }
    Some(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Check a request's OAuth credentials (header, or `oauth_*` query parameters as Piston
/// also accepts). `Err` is the 401 response.
pub fn check_auth(headers: &HeaderMap, query: &Params, key: &ApiKey) -> Result<(), Response> {
    let params = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(h) => match oauth_params(h) {
            Some(p) => p,
            None => {
                return Err(unauthorized(
                    "Authorization Error: missing starting 'OAuth' from 'Authentication' header",
                ));
            }
        },
        None => {
            let p: BTreeMap<String, String> = query
                .0
                .iter()
                .filter(|(k, _)| k.starts_with("oauth_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if p.is_empty() {
                return Err(unauthorized("Authorization Required"));
            }
            p
        }
    };
    let missing: Vec<&str> = ["oauth_consumer_key", "oauth_token", "oauth_signature"]
        .into_iter()
        .filter(|k| params.get(*k).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return Err(unauthorized(&format!(
            "Authorization Error: the following problems were found among the auth params: {}",
            missing
                .iter()
                .map(|m| format!("{m} is missing"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(m) = params.get("oauth_signature_method")
        && !m.eq_ignore_ascii_case("PLAINTEXT")
    {
        return Err(unauthorized(&format!(
            "Authorization Error: 'Unsupported signature method: {m}'"
        )));
    }
    if params["oauth_consumer_key"] != key.consumer_key {
        return Err(unauthorized("Authorization Error: Invalid API key."));
    }
    if params["oauth_token"] != key.token_key {
        return Err(unauthorized(&format!(
            "Authorization Error: 'Invalid access token: {}'",
            params["oauth_token"]
        )));
    }
    // PLAINTEXT: escape(consumer_secret) & escape(token_secret); MAAS consumers have an
    // empty secret. Accept the value once or twice percent-decoded.
    let sig = &params["oauth_signature"];
    let expected = format!("&{}", key.token_secret);
    if *sig != expected && percent_decode(sig) != expected {
        return Err(unauthorized("Authorization Error: 'Invalid signature.'"));
    }
    Ok(())
}

fn unauthorized(msg: &str) -> Response {
    let mut r = text(StatusCode::UNAUTHORIZED, msg);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("OAuth realm=\"OAuth\""),
    );
    r
}

/// A JSON answer.
pub fn json(status: StatusCode, v: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub fn ok(v: serde_json::Value) -> Response {
    json(StatusCode::OK, &v)
}

/// A plain-text answer, as MAAS's API exceptions render.
pub fn text(status: StatusCode, msg: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(msg.to_string()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// MAAS's error bodies: form validation errors as `{"field": ["message", ...]}`
/// (`__all__` for the form), every other error as plain text.
pub struct MaasErrors;

impl ErrorBody for MaasErrors {
    fn render(&self, e: &ApiError) -> Response {
        if e.fields.is_empty() {
            return text(e.status, &e.message);
        }
        let mut map = serde_json::Map::new();
        for (field, msg) in &e.fields {
            let entry = map
                .entry(field.to_string())
                .or_insert_with(|| serde_json::Value::Array(vec![]));
            if let Some(a) = entry.as_array_mut() {
                a.push(serde_json::Value::String(msg.clone()));
            }
        }
        json(e.status, &serde_json::Value::Object(map))
    }
}

/// 400 with a form's errors: `{"field": ["message", ...]}` (`__all__` for the form).
pub fn invalid(errors: &[(&str, String)]) -> Response {
    let fields = errors
        .iter()
        .map(|(f, m)| (f.to_string(), m.clone()))
        .collect();
    MaasErrors.render(&ApiError::fields("invalid form", fields))
}

pub fn invalid1(field: &str, msg: impl Into<String>) -> Response {
    invalid(&[(field, msg.into())])
}

/// 404 as Django's `get_object_or_404` words it.
pub fn not_found(model: &str) -> Response {
    MaasErrors.render(&ApiError::new(
        404,
        "not_found",
        format!("No {model} matches the given query."),
    ))
}

/// 409, as MAAS's `NodeStateViolation`.
pub fn conflict(msg: &str) -> Response {
    MaasErrors.render(&ApiError::new(409, "node_state_violation", msg))
}

pub fn bad_request(msg: &str) -> Response {
    MaasErrors.render(&ApiError::new(400, "bad_request", msg))
}

pub fn deleted() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKey {
        ApiKey::parse("ck:tk:secret").expect("key")
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(v).expect("header"),
        );
        h
    }

    #[test]
    fn oauth_quirks() {
        let q = Params::default();
        let ok_forms = [
            r#"OAuth oauth_version="1.0", oauth_signature_method="PLAINTEXT", oauth_consumer_key="ck", oauth_token="tk", oauth_signature="&secret", oauth_nonce="1", oauth_timestamp="2""#,
            r#"OAuth realm="", oauth_nonce="1", oauth_timestamp="2", oauth_token="tk", oauth_consumer_key="ck", oauth_signature_method="PLAINTEXT", oauth_signature="%26secret""#,
            r#"OAuth oauth_consumer_key=ck,oauth_token=tk,oauth_signature=%26secret,oauth_signature_method=PLAINTEXT"#,
        ];
        for f in ok_forms {
            assert!(check_auth(&headers(f), &q, &key()).is_ok(), "{f}");
        }
        let bad = [
            r#"OAuth oauth_consumer_key="ck", oauth_token="tk", oauth_signature="&wrong""#,
            r#"OAuth oauth_consumer_key="xx", oauth_token="tk", oauth_signature="&secret""#,
            r#"OAuth oauth_consumer_key="ck", oauth_token="xx", oauth_signature="&secret""#,
            r#"OAuth oauth_consumer_key="ck", oauth_token="tk""#,
            r#"Bearer abc"#,
        ];
        for f in bad {
            let r = check_auth(&headers(f), &q, &key()).expect_err(f);
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        assert!(check_auth(&HeaderMap::new(), &q, &key()).is_err());
    }

    #[test]
    fn multipart_as_python_libmaas_sends_it() {
        let ct = r#"multipart/form-data; boundary="===============2166190527031543892==""#;
        let empty = b"--===============2166190527031543892==\r\n\r\n--===============2166190527031543892==--";
        assert_eq!(parse_multipart(ct, empty), Ok(vec![]));
        let body = b"--===============2166190527031543892==\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: form-data; name=\"tags\"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\nYQ==\r\n\r\n--===============2166190527031543892==\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\nb\r\n--===============2166190527031543892==--";
        assert_eq!(
            parse_multipart(ct, body),
            Ok(vec![
                ("tags".to_string(), "a".to_string()),
                ("tags".to_string(), "b".to_string())
            ])
        );
        assert!(parse_multipart("multipart/form-data", body).is_err());
    }

    #[test]
    fn params_lists_and_bools() {
        let p = Params(vec![
            ("tags".into(), "a".into()),
            ("tags".into(), "b,c".into()),
            ("x".into(), "1".into()),
            ("x".into(), "2".into()),
            ("flag".into(), "True".into()),
        ]);
        assert_eq!(p.list("tags"), vec!["a", "b", "c"]);
        assert_eq!(p.get("x"), Some("2"));
        assert_eq!(p.bool("flag"), Ok(Some(true)));
        assert_eq!(p.bool("nope"), Ok(None));
        assert_eq!(percent_decode("%26abc%2"), "&abc%2");
    }
}
