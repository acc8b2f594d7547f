//! Keystone v3: version discovery, tokens (password and token methods; project, domain,
//! system or no scope), the service catalog, projects, users, domains, roles and role
//! assignments, regions, services and endpoints. Unified limits are in [`super::limits`].

use std::collections::BTreeSet;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::model::*;
use super::*;
use crate::core::{ApiError, ErrorBody};

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("/identity", &[(GET, versions)])
        .add("/identity/", &[(GET, versions)])
        .add("/identity/v3", &[(GET, version)])
        .add("/identity/v3/", &[(GET, version)])
        .add(
            "/identity/v3/auth/tokens",
            &[
                (POST, issue_token),
                (GET, validate_token),
                (HEAD, validate_token),
                (DELETE, revoke_token),
            ],
        )
        .add("/identity/v3/auth/catalog", &[(GET, auth_catalog)])
        .add("/identity/v3/auth/projects", &[(GET, auth_projects)])
        .add("/identity/v3/auth/domains", &[(GET, auth_domains)])
        .add("/identity/v3/auth/system", &[(GET, auth_system)])
        .add(
            "/identity/v3/projects",
            &[(GET, list_projects), (POST, create_project)],
        )
        .add(
            "/identity/v3/projects/{id}",
            &[
                (GET, get_project),
                (PATCH, update_project),
                (DELETE, delete_project),
            ],
        )
        .add(
            "/identity/v3/projects/{id}/users/{user}/roles",
            &[(GET, list_project_user_roles)],
        )
        .add(
            "/identity/v3/projects/{id}/users/{user}/roles/{role}",
            &[
                (PUT, grant_project_role),
                (GET, check_project_role),
                (HEAD, check_project_role),
                (DELETE, revoke_project_role),
            ],
        )
        .add(
            "/identity/v3/domains/{id}/users/{user}/roles/{role}",
            &[
                (PUT, grant_domain_role),
                (GET, check_domain_role),
                (HEAD, check_domain_role),
                (DELETE, revoke_domain_role),
            ],
        )
        .add(
            "/identity/v3/system/users/{user}/roles/{role}",
            &[
                (PUT, grant_system_role),
                (GET, check_system_role),
                (HEAD, check_system_role),
                (DELETE, revoke_system_role),
            ],
        )
        .add(
            "/identity/v3/role_assignments",
            &[(GET, list_role_assignments)],
        )
        .add(
            "/identity/v3/users",
            &[(GET, list_users), (POST, create_user)],
        )
        .add(
            "/identity/v3/users/{id}",
            &[(GET, get_user), (PATCH, update_user), (DELETE, delete_user)],
        )
        .add("/identity/v3/users/{id}/projects", &[(GET, user_projects)])
        .add("/identity/v3/domains", &[(GET, list_domains)])
        .add("/identity/v3/domains/{id}", &[(GET, get_domain)])
        .add("/identity/v3/regions", &[(GET, list_regions)])
        .add("/identity/v3/regions/{id}", &[(GET, get_region)])
        .add("/identity/v3/services", &[(GET, list_services)])
        .add("/identity/v3/services/{id}", &[(GET, get_service)])
        .add("/identity/v3/endpoints", &[(GET, list_endpoints)])
        .add("/identity/v3/endpoints/{id}", &[(GET, get_endpoint)])
        .add("/identity/v3/roles", &[(GET, list_roles)])
        .add("/identity/v3/roles/{id}", &[(GET, get_role)])
}

// ---------------------------------------------------------------------------------------
// Errors

/// Keystone's JSON responses carry `Vary: X-Auth-Token`.
pub(super) fn kresp(status: StatusCode, body: Value) -> Response {
    with_header(json_resp(status, body), "vary", "X-Auth-Token")
}

/// Keystone's 401 (with its `Vary`).
fn unauth(os: &Os) -> Response {
    with_header(unauthorized(os), "vary", "X-Auth-Token")
}

/// The caller behind `X-Auth-Token`, or Keystone's 401.
pub(super) fn kcaller(os: &Os, st: &State, req: &Req) -> Result<Caller, Response> {
    os.caller(st, req).map_err(|_| unauth(os))
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    let title = match status.as_u16() {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    KeystoneErrors.render(&ApiError::new(status.as_u16(), title, message))
}

/// Keystone's error body: `{"error": {"code": STATUS, "message": ..., "title": CODE}}`.
pub(crate) struct KeystoneErrors;

impl ErrorBody for KeystoneErrors {
    fn render(&self, e: &ApiError) -> Response {
        kresp(
            e.status,
            json!({"error": {"code": e.status.as_u16(), "message": e.message, "title": e.code}}),
        )
    }
}

pub(super) fn not_found(kind: &str, id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("Could not find {kind}: {id}."),
    )
}

fn forbidden(action: &str) -> Response {
    error(
        StatusCode::FORBIDDEN,
        &format!("You are not authorized to perform the requested action: identity:{action}."),
    )
}

pub(super) fn bad_request(msg: &str) -> Response {
    error(StatusCode::BAD_REQUEST, msg)
}

pub(super) fn validation(field: &str, value: &Value, why: &str) -> Response {
    bad_request(&format!(
        "Invalid input for field/attribute {field}. Value: {value}. {why}"
    ))
}

/// The caller, who must hold the admin role.
pub(super) fn admin(os: &Os, st: &State, req: &Req, action: &str) -> Result<Caller, Response> {
    let c = kcaller(os, st, req)?;
    if !c.is_admin() {
        return Err(forbidden(action));
    }
    Ok(c)
}

// ---------------------------------------------------------------------------------------
// Version discovery

fn version_doc(os: &Os) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/v3/", os.ctx.urls.identity)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

fn versions(os: &Os, _req: &Req) -> R {
    let r = kresp(
        StatusCode::MULTIPLE_CHOICES,
        json!({"versions": {"values": [version_doc(os)]}}),
    );
    Ok(with_header(
        r,
        "location",
        &format!("{}/v3/", os.ctx.urls.identity),
    ))
}

fn version(os: &Os, _req: &Req) -> R {
    Ok(kresp(StatusCode::OK, json!({"version": version_doc(os)})))
}

// ---------------------------------------------------------------------------------------
// Tokens

/// The caller behind a token id, when the token is valid.
pub(crate) fn token_caller(st: &State, token: &str, now: i64) -> Option<Caller> {
    let t = st.tokens.get(token)?;
    if t.expires_ms <= now {
        return None;
    }
    let user = st.users.iter().find(|u| u.id == t.user_id && u.enabled)?;
    if let Some(p) = &t.project_id {
        st.projects.iter().find(|x| &x.id == p && x.enabled)?;
    }
    let roles = token_roles(st, t)
        .into_iter()
        .map(|r| r.name.clone())
        .collect();
    Some(Caller {
        user_id: user.id.clone(),
        project_id: t.project_id.clone(),
        roles,
    })
}

/// Role ids granted on a scope, with the roles they imply.
fn effective_roles(st: &State, direct: impl Iterator<Item = String>) -> Vec<&Role> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut todo: Vec<String> = direct.collect();
    while let Some(id) = todo.pop() {
        if seen.insert(id.clone())
            && let Some(r) = st.roles.iter().find(|r| r.id == id)
        {
            todo.extend(r.implies.iter().cloned());
        }
    }
    st.roles.iter().filter(|r| seen.contains(&r.id)).collect()
}

fn token_roles<'a>(st: &'a State, t: &Token) -> Vec<&'a Role> {
    let direct = st.assignments.iter().filter(|a| {
        a.user_id == t.user_id
            && match (&t.project_id, &t.domain_id, t.system) {
                (Some(p), _, _) => a.project_id.as_ref() == Some(p),
                (None, Some(d), _) => a.domain_id.as_ref() == Some(d),
                (None, None, true) => a.system,
                _ => false,
            }
    });
    effective_roles(st, direct.map(|a| a.role_id.clone()))
}

fn domain_ref(st: &State, id: &str) -> Value {
    let name = st
        .domains
        .iter()
        .find(|d| d.id == id)
        .map(|d| d.name.clone())
        .unwrap_or_default();
    json!({"id": id, "name": name})
}

pub(crate) fn catalog(st: &State) -> Value {
    Value::Array(
        st.services
            .iter()
            .map(|s| {
                json!({
                    "endpoints": s.endpoints.iter().map(|e| json!({
                        "id": e.id,
                        "interface": e.interface,
                        "region_id": st.region,
                        "url": e.url,
                        "region": st.region,
                    })).collect::<Vec<_>>(),
                    "id": s.id,
                    "type": s.kind,
                    "name": s.name,
                })
            })
            .collect(),
    )
}

fn token_body(st: &State, t: &Token, with_catalog: bool) -> Value {
    let user = st.users.iter().find(|u| u.id == t.user_id);
    let mut tok = json!({
        "methods": t.methods,
        "user": {
            "domain": domain_ref(st, user.map(|u| u.domain_id.as_str()).unwrap_or("default")),
            "id": t.user_id,
            "name": user.map(|u| u.name.clone()).unwrap_or_default(),
            "password_expires_at": null,
        },
        "audit_ids": t.audit_ids,
        "expires_at": iso_us(t.expires_ms),
        "issued_at": iso_us(t.issued_ms),
    });
    let scoped = t.project_id.is_some() || t.domain_id.is_some() || t.system;
    if let Some(pid) = &t.project_id
        && let Some(p) = st.projects.iter().find(|p| &p.id == pid)
    {
        tok["project"] =
            json!({"domain": domain_ref(st, &p.domain_id), "id": p.id, "name": p.name});
        tok["is_domain"] = json!(false);
    } else if let Some(did) = &t.domain_id {
        tok["domain"] = domain_ref(st, did);
    } else if t.system {
        tok["system"] = json!({"all": true});
    }
    if scoped {
        tok["roles"] = Value::Array(
            token_roles(st, t)
                .into_iter()
                .map(|r| json!({"id": r.id, "name": r.name}))
                .collect(),
        );
        if with_catalog {
            tok["catalog"] = catalog(st);
        }
    }
    json!({"token": tok})
}

fn new_token_id(os: &Os) -> String {
    let mut bytes = Vec::with_capacity(136);
    while bytes.len() < 136 {
        bytes.extend_from_slice(&os.random_u64().to_be_bytes());
    }
    format!(
        "gAAAAAB{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..133])
    )
}

fn audit_id(os: &Os) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&os.random_u64().to_be_bytes());
    b[8..].copy_from_slice(&os.random_u64().to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Resolve `{"id": ...}` or `{"name": ..., "domain": {"id"|"name": ...}}`.
fn find_domain(st: &State, d: &Value) -> Option<String> {
    if let Some(id) = d.get("id").and_then(Value::as_str) {
        return st.domains.iter().find(|x| x.id == id).map(|x| x.id.clone());
    }
    let name = d.get("name").and_then(Value::as_str)?;
    st.domains
        .iter()
        .find(|x| x.name == name)
        .map(|x| x.id.clone())
}

fn issue_token(os: &Os, req: &Req) -> R {
    let body = req
        .json()
        .ok_or_else(|| bad_request("Malformed request body: the body is not JSON."))?;
    let identity = body.pointer("/auth/identity").ok_or_else(|| {
        validation(
            "auth",
            body.get("auth").unwrap_or(&Value::Null),
            "'identity' is a required property",
        )
    })?;
    let methods: Vec<String> = identity
        .get("methods")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| validation("identity", identity, "'methods' is a required property"))?;
    let now = os.now_ms();
    let mut st = os.st.lock();
    // Drop expired tokens now and then.
    st.tokens.retain(|_, t| t.expires_ms > now - 3_600_000);

    let unauthorized_ = || unauth(os);
    // Who.
    let (user_id, mut token_methods, expires_ms, mut audit_ids) = if methods
        .iter()
        .any(|m| m == "password")
    {
        let user = identity.pointer("/password/user").ok_or_else(|| {
            validation(
                "password",
                identity.get("password").unwrap_or(&Value::Null),
                "'user' is a required property",
            )
        })?;
        let password = user.get("password").and_then(Value::as_str).unwrap_or("");
        let found = if let Some(id) = user.get("id").and_then(Value::as_str) {
            st.users.iter().find(|u| u.id == id)
        } else {
            let name = user
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("Expecting to find id or name in user - the server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."))?;
            let domain = user.get("domain").ok_or_else(|| {
                bad_request("Expecting to find domain in user. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
            })?;
            let did = find_domain(&st, domain).ok_or_else(unauthorized_)?;
            st.users
                .iter()
                .find(|u| u.name == name && u.domain_id == did)
        };
        let u = found.ok_or_else(unauthorized_)?;
        if !u.enabled || u.password != password {
            return Err(unauth(os));
        }
        (
            u.id.clone(),
            vec!["password".to_string()],
            now + 3_600_000,
            vec![audit_id(os)],
        )
    } else if methods.iter().any(|m| m == "token") {
        let id = identity
            .pointer("/token/id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let old = st
            .tokens
            .get(id)
            .filter(|t| t.expires_ms > now)
            .cloned()
            .ok_or_else(|| error(StatusCode::NOT_FOUND, "Could not recognize Fernet token"))?;
        let mut m = old.methods.clone();
        if !m.iter().any(|x| x == "token") {
            m.push("token".into());
        }
        let mut audits = vec![audit_id(os)];
        audits.extend(old.audit_ids.first().cloned());
        (old.user_id.clone(), m, old.expires_ms, audits)
    } else {
        return Err(unauth(os));
    };
    if token_methods.is_empty() {
        token_methods.push("password".into());
    }
    audit_ids.truncate(2);

    // Scope.
    let user = st
        .users
        .iter()
        .find(|u| u.id == user_id)
        .cloned()
        .ok_or_else(unauthorized_)?;
    let scope = body.pointer("/auth/scope").cloned();
    let (mut project_id, mut domain_id, mut system) = (None, None, false);
    match &scope {
        None | Some(Value::Null) => {
            if let Some(p) = &user.default_project_id
                && st
                    .assignments
                    .iter()
                    .any(|a| a.user_id == user.id && a.project_id.as_ref() == Some(p))
            {
                project_id = Some(p.clone());
            }
        }
        Some(Value::String(s)) if s == "unscoped" => {}
        Some(Value::Object(m)) => {
            if let Some(p) = m.get("project") {
                let found = if let Some(id) = p.get("id").and_then(Value::as_str) {
                    st.projects.iter().find(|x| x.id == id)
                } else {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                    let domain = p.get("domain").ok_or_else(|| {
                        bad_request("Expecting to find domain in project. The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")
                    })?;
                    let did = find_domain(&st, domain).ok_or_else(unauthorized_)?;
                    st.projects
                        .iter()
                        .find(|x| x.name == name && x.domain_id == did)
                };
                let p = found.ok_or_else(unauthorized_)?;
                if !p.enabled
                    || !st
                        .assignments
                        .iter()
                        .any(|a| a.user_id == user.id && a.project_id.as_ref() == Some(&p.id))
                {
                    return Err(unauth(os));
                }
                project_id = Some(p.id.clone());
            } else if let Some(d) = m.get("domain") {
                let did = find_domain(&st, d).ok_or_else(unauthorized_)?;
                if !st
                    .assignments
                    .iter()
                    .any(|a| a.user_id == user.id && a.domain_id.as_ref() == Some(&did))
                {
                    return Err(unauth(os));
                }
                domain_id = Some(did);
            } else if m.get("system").is_some() {
                if !st
                    .assignments
                    .iter()
                    .any(|a| a.user_id == user.id && a.system)
                {
                    return Err(unauth(os));
                }
                system = true;
            } else {
                return Err(validation(
                    "scope",
                    scope.as_ref().unwrap_or(&Value::Null),
                    "Additional properties are not allowed",
                ));
            }
        }
        Some(other) => {
            return Err(validation(
                "scope",
                other,
                "is not valid under any of the given schemas",
            ));
        }
    }
    let token = Token {
        user_id,
        project_id,
        domain_id,
        system,
        methods: token_methods,
        issued_ms: now,
        expires_ms,
        audit_ids,
    };
    let id = new_token_id(os);
    let nocatalog = req.q("nocatalog").is_some();
    let body = token_body(&st, &token, !nocatalog);
    st.tokens.insert(id.clone(), token);
    Ok(with_header(
        kresp(StatusCode::CREATED, body),
        "x-subject-token",
        &id,
    ))
}

fn validate_token(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    let subject = req
        .header("x-subject-token")
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "No token in the request"))?;
    let t = st
        .tokens
        .get(subject)
        .filter(|t| t.expires_ms > os.now_ms())
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "Could not recognize Fernet token"))?;
    // Fernet tokens carry their methods as a bit set; read back, they come in the
    // reverse order of `[auth] methods` (token before password).
    let mut t = t.clone();
    t.methods
        .sort_by_key(|m| std::cmp::Reverse(METHOD_ORDER.iter().position(|x| x == m).unwrap_or(0)));
    let body = token_body(&st, &t, req.q("nocatalog").is_none());
    Ok(with_header(
        kresp(StatusCode::OK, body),
        "x-subject-token",
        subject,
    ))
}

/// Keystone's default `[auth] methods`, whose order fixes the bits of a Fernet token.
const METHOD_ORDER: &[&str] = &[
    "external",
    "password",
    "token",
    "oauth1",
    "mapped",
    "application_credential",
];

fn revoke_token(os: &Os, req: &Req) -> R {
    let mut st = os.st.lock();
    kcaller(os, &st, req)?;
    let subject = req
        .header("x-subject-token")
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "No token in the request"))?
        .to_string();
    if st.tokens.remove(&subject).is_none() {
        return Err(error(
            StatusCode::NOT_FOUND,
            "Could not recognize Fernet token",
        ));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn current_token<'a>(st: &'a State, req: &Req) -> Option<&'a Token> {
    st.tokens.get(req.header("x-auth-token").unwrap_or(""))
}

fn links(os: &Os, path: &str) -> Value {
    json!({"next": null, "self": format!("{}/v3/{path}", os.ctx.urls.identity), "previous": null})
}

fn auth_catalog(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    let t = current_token(&st, req).ok_or_else(|| unauth(os))?;
    if t.project_id.is_none() && t.domain_id.is_none() && !t.system {
        return Err(forbidden("get_auth_catalog"));
    }
    Ok(kresp(
        StatusCode::OK,
        json!({"catalog": catalog(&st), "links": {"self": format!("{}/v3/auth/catalog", os.ctx.urls.identity)}}),
    ))
}

fn auth_projects(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    let c = kcaller(os, &st, req)?;
    let projects: Vec<Value> = st
        .projects
        .iter()
        .filter(|p| {
            p.enabled
                && st
                    .assignments
                    .iter()
                    .any(|a| a.user_id == c.user_id && a.project_id.as_ref() == Some(&p.id))
        })
        .map(|p| project_json(os, p))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"projects": projects, "links": links(os, "auth/projects")}),
    ))
}

fn auth_domains(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    let c = kcaller(os, &st, req)?;
    let domains: Vec<Value> = st
        .domains
        .iter()
        .filter(|d| {
            st.assignments
                .iter()
                .any(|a| a.user_id == c.user_id && a.domain_id.as_ref() == Some(&d.id))
        })
        .map(|d| domain_json(os, d))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"domains": domains, "links": links(os, "auth/domains")}),
    ))
}

fn auth_system(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    let c = kcaller(os, &st, req)?;
    let has = st
        .assignments
        .iter()
        .any(|a| a.user_id == c.user_id && a.system);
    let system: Vec<Value> = if has {
        vec![json!({"all": true})]
    } else {
        vec![]
    };
    Ok(kresp(
        StatusCode::OK,
        json!({"system": system, "links": {"self": format!("{}/v3/auth/system", os.ctx.urls.identity)}}),
    ))
}

// ---------------------------------------------------------------------------------------
// Projects

pub(crate) fn project_json(os: &Os, p: &Project) -> Value {
    let mut v = json!({
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "description": p.description,
        "enabled": p.enabled,
        "parent_id": p.domain_id,
        "is_domain": false,
        "tags": p.tags,
        "options": {},
        "links": {"self": format!("{}/v3/projects/{}", os.ctx.urls.identity, p.id)},
    });
    for (k, x) in &p.extra {
        v[k] = x.clone();
    }
    v
}

fn filter_str(req: &Req, key: &str, value: &str) -> bool {
    req.q(key).is_none_or(|q| q == value)
}

fn filter_bool(req: &Req, key: &str, value: bool) -> bool {
    req.q(key).and_then(parse_bool).is_none_or(|q| q == value)
}

fn list_projects(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    admin(os, &st, req, "list_projects")?;
    let tags: Vec<&str> = req
        .q("tags")
        .map(|t| t.split(',').collect())
        .unwrap_or_default();
    let tags_any: Vec<&str> = req
        .q("tags-any")
        .map(|t| t.split(',').collect())
        .unwrap_or_default();
    let projects: Vec<Value> = st
        .projects
        .iter()
        .filter(|p| {
            filter_str(req, "name", &p.name)
                && filter_str(req, "domain_id", &p.domain_id)
                && filter_str(req, "parent_id", &p.domain_id)
                && filter_bool(req, "enabled", p.enabled)
                && req.q("is_domain").and_then(parse_bool).is_none_or(|d| !d)
                && tags.iter().all(|t| p.tags.iter().any(|x| x == t))
                && (tags_any.is_empty() || tags_any.iter().any(|t| p.tags.iter().any(|x| x == t)))
        })
        .map(|p| project_json(os, p))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"projects": projects, "links": links(os, "projects")}),
    ))
}

fn find_project<'a>(st: &'a State, id: &str) -> Option<&'a Project> {
    st.projects.iter().find(|p| p.id == id)
}

fn get_project(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    let c = kcaller(os, &st, req)?;
    let id = req.param("id");
    if !c.is_admin() && c.project() != id {
        return Err(forbidden("get_project"));
    }
    let p = find_project(&st, id).ok_or_else(|| not_found("project", id))?;
    Ok(kresp(
        StatusCode::OK,
        json!({"project": project_json(os, p)}),
    ))
}

fn check_tags(tags: &Value) -> Result<Vec<String>, Response> {
    let arr = tags
        .as_array()
        .ok_or_else(|| validation("tags", tags, "is not of type 'array'"))?;
    let mut out = Vec::new();
    for t in arr {
        let s = t
            .as_str()
            .ok_or_else(|| validation("tags", tags, "is not of type 'string'"))?;
        if s.is_empty() || s.len() > 255 || s.contains('/') || s.contains(',') {
            return Err(validation(
                "tags",
                tags,
                &format!("'{s}' is not a valid tag"),
            ));
        }
        out.push(s.to_string());
    }
    if out.len() > 80 {
        return Err(validation("tags", tags, "is too long"));
    }
    Ok(out)
}

const PROJECT_FIELDS: &[&str] = &[
    "name",
    "domain_id",
    "description",
    "enabled",
    "tags",
    "parent_id",
    "is_domain",
    "options",
];

fn create_project(os: &Os, req: &Req) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let mut st = os.st.lock();
    admin(os, &st, req, "create_project")?;
    let p = body
        .get("project")
        .filter(|p| p.is_object())
        .ok_or_else(|| validation("request body", &body, "'project' is a required property"))?;
    let name = p
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| validation("project", p, "'name' is a required property"))?
        .to_string();
    if name.is_empty() || name.len() > 64 {
        return Err(validation(
            "name",
            &json!(name),
            "is not a valid project name",
        ));
    }
    let domain_id = p
        .get("domain_id")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    if !st.domains.iter().any(|d| d.id == domain_id) {
        return Err(not_found("domain", &domain_id));
    }
    if let Some(other) = st
        .projects
        .iter()
        .find(|x| x.name == name && x.domain_id == domain_id)
    {
        return Err(error(
            StatusCode::CONFLICT,
            &format!(
                "Conflict occurred attempting to store project - it is not permitted to have two projects with either the same name or same id in the same domain: name is {name}, project id {}.",
                other.id
            ),
        ));
    }
    let tags = match p.get("tags") {
        Some(t) => check_tags(t)?,
        None => vec![],
    };
    let enabled = match p.get("enabled") {
        Some(v) => v
            .as_bool()
            .ok_or_else(|| validation("enabled", v, "is not of type 'boolean'"))?,
        None => true,
    };
    let extra = p
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !PROJECT_FIELDS.contains(&k.as_str()) && k.as_str() != "id")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let project = Project {
        id: os.hex_id(),
        name,
        domain_id,
        description: p
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        enabled,
        tags,
        extra,
    };
    let v = project_json(os, &project);
    st.projects.push(project);
    Ok(kresp(StatusCode::CREATED, json!({"project": v})))
}

fn update_project(os: &Os, req: &Req) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let mut st = os.st.lock();
    admin(os, &st, req, "update_project")?;
    let id = req.param("id").to_string();
    let p = body
        .get("project")
        .filter(|p| p.is_object())
        .ok_or_else(|| validation("request body", &body, "'project' is a required property"))?
        .clone();
    let idx = st
        .projects
        .iter()
        .position(|x| x.id == id)
        .ok_or_else(|| not_found("project", &id))?;
    if let Some(n) = p.get("name") {
        let n = n
            .as_str()
            .ok_or_else(|| validation("name", n, "is not of type 'string'"))?;
        if st
            .projects
            .iter()
            .any(|x| x.id != id && x.name == n && x.domain_id == st.projects[idx].domain_id)
        {
            return Err(error(
                StatusCode::CONFLICT,
                &format!(
                    "Conflict occurred attempting to store project - it is not permitted to have two projects with either the same name or same id in the same domain: name is {n}, project id {id}."
                ),
            ));
        }
    }
    if p.get("domain_id")
        .and_then(Value::as_str)
        .is_some_and(|d| d != st.projects[idx].domain_id)
    {
        return Err(validation(
            "domain_id",
            &p["domain_id"],
            "Update of `domain_id` is not allowed.",
        ));
    }
    let tags = match p.get("tags") {
        Some(t) => Some(check_tags(t)?),
        None => None,
    };
    let enabled = match p.get("enabled") {
        Some(v) => Some(
            v.as_bool()
                .ok_or_else(|| validation("enabled", v, "is not of type 'boolean'"))?,
        ),
        None => None,
    };
    let proj = &mut st.projects[idx];
    if let Some(n) = p.get("name").and_then(Value::as_str) {
        proj.name = n.to_string();
    }
    if let Some(d) = p.get("description").and_then(Value::as_str) {
        proj.description = d.to_string();
    }
    if let Some(t) = tags {
        proj.tags = t;
    }
    if let Some(e) = enabled {
        proj.enabled = e;
    }
    if let Some(m) = p.as_object() {
        for (k, v) in m {
            if !PROJECT_FIELDS.contains(&k.as_str()) && k != "id" {
                proj.extra.insert(k.clone(), v.clone());
            }
        }
    }
    let mut v = project_json(os, proj);
    v["extra"] = json!({});
    Ok(kresp(StatusCode::OK, json!({"project": v})))
}

fn delete_project(os: &Os, req: &Req) -> R {
    let mut st = os.st.lock();
    admin(os, &st, req, "delete_project")?;
    let id = req.param("id").to_string();
    remove_project(&mut st, &id).map_err(|_| not_found("project", &id))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Delete a project with its role assignments and the tokens scoped to it.
pub(crate) fn remove_project(st: &mut State, id: &str) -> Result<(), ()> {
    let idx = st.projects.iter().position(|p| p.id == id).ok_or(())?;
    st.projects.remove(idx);
    st.assignments
        .retain(|a| a.project_id.as_deref() != Some(id));
    st.tokens.retain(|_, t| t.project_id.as_deref() != Some(id));
    // keystone's project-deleted callback drops the project's limits.
    st.limits.retain(|l| l.project_id.as_deref() != Some(id));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Role assignments

fn role_json(os: &Os, r: &Role) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "domain_id": null,
        "description": r.description,
        "options": {"immutable": true},
        "links": {"self": format!("{}/v3/roles/{}", os.ctx.urls.identity, r.id)},
    })
}

/// What a grant route assigns the role on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum On {
    Project,
    Domain,
    /// `/v3/system/users/{user}/roles/{role}`: the whole deployment.
    System,
}

fn assignment_target(st: &State, req: &Req, on: On) -> Result<Assignment, Response> {
    let id = if on == On::System {
        "all"
    } else {
        req.param("id")
    };
    let domain = on == On::Domain;
    match on {
        On::System => {}
        On::Domain if !st.domains.iter().any(|d| d.id == id) => {
            return Err(not_found("domain", id));
        }
        On::Project if find_project(st, id).is_none() => {
            return Err(not_found("project", id));
        }
        _ => {}
    }
    let user = req.param("user");
    if !st.users.iter().any(|u| u.id == user) {
        return Err(not_found("user", user));
    }
    let role = req.param("role");
    if !st.roles.iter().any(|r| r.id == role) {
        return Err(not_found("role", role));
    }
    Ok(Assignment {
        user_id: user.into(),
        project_id: (on == On::Project).then(|| id.to_string()),
        domain_id: domain.then(|| id.to_string()),
        system: on == On::System,
        role_id: role.into(),
    })
}

fn grant(os: &Os, req: &Req, on: On) -> R {
    let mut st = os.st.lock();
    admin(os, &st, req, "create_grant")?;
    let a = assignment_target(&st, req, on)?;
    if !st.assignments.contains(&a) {
        st.assignments.push(a);
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn check(os: &Os, req: &Req, on: On) -> R {
    let st = os.st.lock();
    admin(os, &st, req, "check_grant")?;
    let a = assignment_target(&st, req, on)?;
    if st.assignments.contains(&a) {
        Ok(empty(StatusCode::NO_CONTENT))
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            &format!(
                "Could not find role assignment with role: {}, user or group: {}, project, domain, or system: {}.",
                a.role_id,
                a.user_id,
                if on == On::System {
                    "all"
                } else {
                    req.param("id")
                }
            ),
        ))
    }
}

fn revoke(os: &Os, req: &Req, on: On) -> R {
    let mut st = os.st.lock();
    admin(os, &st, req, "revoke_grant")?;
    let a = assignment_target(&st, req, on)?;
    let before = st.assignments.len();
    st.assignments.retain(|x| x != &a);
    if st.assignments.len() == before {
        return Err(error(
            StatusCode::NOT_FOUND,
            &format!(
                "Could not find role assignment with role: {}, user or group: {}, project, domain, or system: {}.",
                a.role_id,
                a.user_id,
                if on == On::System {
                    "all"
                } else {
                    req.param("id")
                }
            ),
        ));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn grant_project_role(os: &Os, req: &Req) -> R {
    grant(os, req, On::Project)
}
fn check_project_role(os: &Os, req: &Req) -> R {
    check(os, req, On::Project)
}
fn revoke_project_role(os: &Os, req: &Req) -> R {
    revoke(os, req, On::Project)
}
fn grant_domain_role(os: &Os, req: &Req) -> R {
    grant(os, req, On::Domain)
}
fn check_domain_role(os: &Os, req: &Req) -> R {
    check(os, req, On::Domain)
}
fn revoke_domain_role(os: &Os, req: &Req) -> R {
    revoke(os, req, On::Domain)
}
fn grant_system_role(os: &Os, req: &Req) -> R {
    grant(os, req, On::System)
}
fn check_system_role(os: &Os, req: &Req) -> R {
    check(os, req, On::System)
}
fn revoke_system_role(os: &Os, req: &Req) -> R {
    revoke(os, req, On::System)
}

fn list_project_user_roles(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    admin(os, &st, req, "list_grants")?;
    let (pid, uid) = (req.param("id"), req.param("user"));
    find_project(&st, pid).ok_or_else(|| not_found("project", pid))?;
    let roles: Vec<Value> = st
        .assignments
        .iter()
        .filter(|a| a.user_id == uid && a.project_id.as_deref() == Some(pid))
        .filter_map(|a| st.roles.iter().find(|r| r.id == a.role_id))
        .map(|r| role_json(os, r))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"roles": roles, "links": links(os, &format!("projects/{pid}/users/{uid}/roles"))}),
    ))
}

fn list_role_assignments(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    admin(os, &st, req, "list_role_assignments")?;
    let names = req
        .q("include_names")
        .is_some_and(|v| v.is_empty() || parse_bool(v).unwrap_or(false));
    let base = &os.ctx.urls.identity;
    let items: Vec<Value> = st
        .assignments
        .iter()
        .filter(|a| {
            req.q("user.id").is_none_or(|u| u == a.user_id)
                && req.q("role.id").is_none_or(|r| r == a.role_id)
                && req
                    .q("scope.project.id")
                    .is_none_or(|p| a.project_id.as_deref() == Some(p))
                && req
                    .q("scope.domain.id")
                    .is_none_or(|d| a.domain_id.as_deref() == Some(d))
                && req.q("scope.system").is_none_or(|_| a.system)
        })
        .map(|a| {
            let role = st.roles.iter().find(|r| r.id == a.role_id);
            let user = st.users.iter().find(|u| u.id == a.user_id);
            let mut r = json!({"id": a.role_id});
            let mut u = json!({"id": a.user_id});
            if names {
                r["name"] = json!(role.map(|r| r.name.clone()));
                u["name"] = json!(user.map(|u| u.name.clone()));
                u["domain"] =
                    domain_ref(&st, user.map(|u| u.domain_id.as_str()).unwrap_or("default"));
            }
            let (scope, link) = if let Some(p) = &a.project_id {
                let mut s = json!({"id": p});
                if names && let Some(pp) = find_project(&st, p) {
                    s["name"] = json!(pp.name);
                    s["domain"] = domain_ref(&st, &pp.domain_id);
                }
                (
                    json!({"project": s}),
                    format!(
                        "{base}/v3/projects/{p}/users/{}/roles/{}",
                        a.user_id, a.role_id
                    ),
                )
            } else if let Some(d) = &a.domain_id {
                (
                    json!({"domain": domain_ref(&st, d)}),
                    format!(
                        "{base}/v3/domains/{d}/users/{}/roles/{}",
                        a.user_id, a.role_id
                    ),
                )
            } else {
                (
                    json!({"system": {"all": true}}),
                    format!("{base}/v3/system/users/{}/roles/{}", a.user_id, a.role_id),
                )
            };
            json!({"role": r, "user": u, "scope": scope, "links": {"assignment": link}})
        })
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"role_assignments": items, "links": links(os, "role_assignments")}),
    ))
}

// ---------------------------------------------------------------------------------------
// Users

fn user_json(os: &Os, u: &User) -> Value {
    let mut v = json!({
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": u.enabled,
        "password_expires_at": null,
        "options": {},
        "links": {"self": format!("{}/v3/users/{}", os.ctx.urls.identity, u.id)},
    });
    if let Some(e) = &u.email {
        v["email"] = json!(e);
    }
    if let Some(d) = &u.description {
        v["description"] = json!(d);
    }
    if let Some(p) = &u.default_project_id {
        v["default_project_id"] = json!(p);
    }
    v
}

fn list_users(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    admin(os, &st, req, "list_users")?;
    let users: Vec<Value> = st
        .users
        .iter()
        .filter(|u| {
            filter_str(req, "name", &u.name)
                && filter_str(req, "domain_id", &u.domain_id)
                && filter_bool(req, "enabled", u.enabled)
        })
        .map(|u| user_json(os, u))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"users": users, "links": links(os, "users")}),
    ))
}

fn get_user(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    let c = kcaller(os, &st, req)?;
    let id = req.param("id");
    if !c.is_admin() && c.user_id != id {
        return Err(forbidden("get_user"));
    }
    let u = st
        .users
        .iter()
        .find(|u| u.id == id)
        .ok_or_else(|| not_found("user", id))?;
    Ok(kresp(StatusCode::OK, json!({"user": user_json(os, u)})))
}

fn user_fields(u: &mut User, body: &Value) -> Result<(), Response> {
    if let Some(v) = body.get("enabled") {
        u.enabled = v
            .as_bool()
            .ok_or_else(|| validation("enabled", v, "is not of type 'boolean'"))?;
    }
    if let Some(v) = body.get("password").and_then(Value::as_str) {
        u.password = v.into();
    }
    if let Some(v) = body.get("email") {
        u.email = v.as_str().map(str::to_string);
    }
    if let Some(v) = body.get("description") {
        u.description = v.as_str().map(str::to_string);
    }
    if let Some(v) = body.get("default_project_id") {
        u.default_project_id = v.as_str().map(str::to_string);
    }
    if let Some(v) = body.get("name").and_then(Value::as_str) {
        u.name = v.into();
    }
    Ok(())
}

fn create_user(os: &Os, req: &Req) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let mut st = os.st.lock();
    admin(os, &st, req, "create_user")?;
    let b = body
        .get("user")
        .filter(|u| u.is_object())
        .ok_or_else(|| validation("request body", &body, "'user' is a required property"))?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && n.len() <= 255)
        .ok_or_else(|| validation("user", b, "'name' is a required property"))?;
    let domain_id = b
        .get("domain_id")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    if !st.domains.iter().any(|d| d.id == domain_id) {
        return Err(not_found("domain", &domain_id));
    }
    if st
        .users
        .iter()
        .any(|u| u.name == name && u.domain_id == domain_id)
    {
        return Err(error(
            StatusCode::CONFLICT,
            &format!(
                "Conflict occurred attempting to store user - Duplicate entry found with name {name} at domain ID {domain_id}."
            ),
        ));
    }
    let mut u = User {
        id: os.hex_id(),
        name: name.into(),
        domain_id,
        password: String::new(),
        enabled: true,
        email: None,
        description: None,
        default_project_id: None,
    };
    user_fields(&mut u, b)?;
    let v = user_json(os, &u);
    st.users.push(u);
    Ok(kresp(StatusCode::CREATED, json!({"user": v})))
}

fn update_user(os: &Os, req: &Req) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let mut st = os.st.lock();
    admin(os, &st, req, "update_user")?;
    let id = req.param("id");
    let b = body
        .get("user")
        .filter(|u| u.is_object())
        .ok_or_else(|| validation("request body", &body, "'user' is a required property"))?;
    let u = st
        .users
        .iter_mut()
        .find(|u| u.id == id)
        .ok_or_else(|| not_found("user", id))?;
    user_fields(u, b)?;
    let v = user_json(os, u);
    Ok(kresp(StatusCode::OK, json!({"user": v})))
}

fn delete_user(os: &Os, req: &Req) -> R {
    let mut st = os.st.lock();
    admin(os, &st, req, "delete_user")?;
    let id = req.param("id").to_string();
    let idx = st
        .users
        .iter()
        .position(|u| u.id == id)
        .ok_or_else(|| not_found("user", &id))?;
    st.users.remove(idx);
    st.assignments.retain(|a| a.user_id != id);
    st.tokens.retain(|_, t| t.user_id != id);
    Ok(empty(StatusCode::NO_CONTENT))
}

fn user_projects(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    let c = kcaller(os, &st, req)?;
    let id = req.param("id");
    if !c.is_admin() && c.user_id != id {
        return Err(forbidden("list_user_projects"));
    }
    st.users
        .iter()
        .find(|u| u.id == id)
        .ok_or_else(|| not_found("user", id))?;
    let projects: Vec<Value> = st
        .projects
        .iter()
        .filter(|p| {
            st.assignments
                .iter()
                .any(|a| a.user_id == id && a.project_id.as_ref() == Some(&p.id))
        })
        .map(|p| project_json(os, p))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"projects": projects, "links": links(os, &format!("users/{id}/projects"))}),
    ))
}

// ---------------------------------------------------------------------------------------
// Domains, regions, services, endpoints, roles

fn domain_json(os: &Os, d: &Domain) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "description": d.description,
        "enabled": d.enabled,
        "tags": [],
        "options": {},
        "links": {"self": format!("{}/v3/domains/{}", os.ctx.urls.identity, d.id)},
    })
}

fn list_domains(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    let domains: Vec<Value> = st
        .domains
        .iter()
        .filter(|d| filter_str(req, "name", &d.name) && filter_bool(req, "enabled", d.enabled))
        .map(|d| domain_json(os, d))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"domains": domains, "links": links(os, "domains")}),
    ))
}

fn get_domain(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    let id = req.param("id");
    let d = st
        .domains
        .iter()
        .find(|d| d.id == id)
        .ok_or_else(|| not_found("domain", id))?;
    Ok(kresp(StatusCode::OK, json!({"domain": domain_json(os, d)})))
}

fn region_json(os: &Os, st: &State) -> Value {
    json!({
        "id": st.region,
        "description": "",
        "parent_region_id": null,
        "links": {"self": format!("{}/v3/regions/{}", os.ctx.urls.identity, st.region)},
    })
}

fn list_regions(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    let regions = if req.q("parent_region_id").is_some() {
        vec![]
    } else {
        vec![region_json(os, &st)]
    };
    Ok(kresp(
        StatusCode::OK,
        json!({"regions": regions, "links": links(os, "regions")}),
    ))
}

fn get_region(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    let id = req.param("id");
    if id != st.region {
        return Err(not_found("region", id));
    }
    Ok(kresp(
        StatusCode::OK,
        json!({"region": region_json(os, &st)}),
    ))
}

fn service_json(os: &Os, s: &CatalogService) -> Value {
    json!({
        "description": s.description,
        "enabled": true,
        "id": s.id,
        "name": s.name,
        "type": s.kind,
        "links": {"self": format!("{}/v3/services/{}", os.ctx.urls.identity, s.id)},
    })
}

fn list_services(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    admin(os, &st, req, "list_services")?;
    let services: Vec<Value> = st
        .services
        .iter()
        .filter(|s| filter_str(req, "type", &s.kind) && filter_str(req, "name", &s.name))
        .map(|s| service_json(os, s))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"services": services, "links": links(os, "services")}),
    ))
}

fn get_service(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    admin(os, &st, req, "get_service")?;
    let id = req.param("id");
    let s = st
        .services
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| not_found("service", id))?;
    Ok(kresp(
        StatusCode::OK,
        json!({"service": service_json(os, s)}),
    ))
}

fn endpoint_json(os: &Os, st: &State, s: &CatalogService, e: &CatalogEndpoint) -> Value {
    json!({
        "id": e.id,
        "interface": e.interface,
        "region_id": st.region,
        "service_id": s.id,
        "url": e.url,
        "enabled": true,
        "region": st.region,
        "links": {"self": format!("{}/v3/endpoints/{}", os.ctx.urls.identity, e.id)},
    })
}

fn list_endpoints(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    admin(os, &st, req, "list_endpoints")?;
    let mut endpoints = Vec::new();
    for s in &st.services {
        for e in &s.endpoints {
            if filter_str(req, "interface", &e.interface)
                && filter_str(req, "service_id", &s.id)
                && filter_str(req, "region_id", &st.region)
                && filter_str(req, "region", &st.region)
            {
                endpoints.push(endpoint_json(os, &st, s, e));
            }
        }
    }
    Ok(kresp(
        StatusCode::OK,
        json!({"endpoints": endpoints, "links": links(os, "endpoints")}),
    ))
}

fn get_endpoint(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    admin(os, &st, req, "get_endpoint")?;
    let id = req.param("id");
    for s in &st.services {
        if let Some(e) = s.endpoints.iter().find(|e| e.id == id) {
            return Ok(kresp(
                StatusCode::OK,
                json!({"endpoint": endpoint_json(os, &st, s, e)}),
            ));
        }
    }
    Err(not_found("endpoint", id))
}

fn list_roles(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    let roles: Vec<Value> = st
        .roles
        .iter()
        .filter(|r| filter_str(req, "name", &r.name))
        .map(|r| role_json(os, r))
        .collect();
    Ok(kresp(
        StatusCode::OK,
        json!({"roles": roles, "links": links(os, "roles")}),
    ))
}

fn get_role(os: &Os, req: &Req) -> R {
    let st = os.st.lock();
    kcaller(os, &st, req)?;
    let id = req.param("id");
    let r = st
        .roles
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| not_found("role", id))?;
    Ok(kresp(StatusCode::OK, json!({"role": role_json(os, r)})))
}
