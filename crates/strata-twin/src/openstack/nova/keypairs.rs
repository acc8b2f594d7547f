//! Key pairs: per-user SSH keys with fingerprints, generated or imported, listed, shown and
//! deleted (admins may act on another user's keys from 2.10).

use super::*;

pub(super) fn fingerprint(key: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key.as_bytes());
    d[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(super) fn keypair_json(k: &Keypair, mv: u32, full: bool) -> Value {
    let mut v = json!({"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint});
    if mv >= 2 {
        v["type"] = json!(k.kind);
    }
    if full {
        v["user_id"] = json!(k.user_id);
        v["created_at"] = json!(iso_plain_us(k.created_ms));
        v["deleted"] = json!(false);
        v["deleted_at"] = Value::Null;
        v["updated_at"] = Value::Null;
        v["id"] = json!(k.id);
    }
    v
}

pub(super) fn keypair_user(req: &Req, cx: &Cx) -> Result<String, Response> {
    match req.q("user_id") {
        Some(u) if cx.mv >= 10 => {
            if u != cx.caller.user_id {
                cx.require_admin("os_compute_api:os-keypairs:index")?;
            }
            Ok(u.to_string())
        }
        _ => Ok(cx.caller.user_id.clone()),
    }
}

pub(super) fn keypairs_list_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let user = keypair_user(req, cx)?;
    let mut items: Vec<&Keypair> = st.keypairs.iter().filter(|k| k.user_id == user).collect();
    items.sort_by(|a, b| a.name.cmp(&b.name));
    let (page, next) = if cx.mv >= 35 {
        paginate(
            os,
            req,
            items,
            |k| k.name.clone(),
            "os-keypairs",
            |m| bad(&format!("Marker {m} could not be found.")),
        )?
    } else {
        (items, None)
    };
    let mut body = json!({"keypairs": page.iter().map(|k| json!({"keypair": keypair_json(k, cx.mv, false)})).collect::<Vec<_>>()});
    if let Some(n) = next {
        body["keypairs_links"] = n;
    }
    Ok(json_resp(StatusCode::OK, body))
}

pub(super) fn keypair_create_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let k = body
        .get("keypair")
        .filter(|k| k.is_object())
        .ok_or_else(|| invalid("request body", &body, "'keypair' is a required property"))?;
    let name = k
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("keypair", k, "'name' is a required property"))?
        .to_string();
    if name.is_empty() || name.len() > 255 || name.trim() != name {
        return Err(bad(
            "Keypair data is invalid: Keypair name contains unsafe characters",
        ));
    }
    let kind = match k.get("type").and_then(Value::as_str) {
        Some(t) if cx.mv >= 2 => {
            if t != "ssh" && t != "x509" {
                return Err(invalid("type", &json!(t), "is not one of ['ssh', 'x509']"));
            }
            t.to_string()
        }
        _ => "ssh".to_string(),
    };
    let user = match k.get("user_id").and_then(Value::as_str) {
        Some(u) if cx.mv >= 10 => {
            if u != cx.caller.user_id {
                cx.require_admin("os_compute_api:os-keypairs:create")?;
            }
            u.to_string()
        }
        _ => cx.caller.user_id.clone(),
    };
    if st
        .keypairs
        .iter()
        .any(|x| x.user_id == user && x.name == name)
    {
        return Err(err(409, &format!("Key pair '{name}' already exists.")));
    }
    let used = st.keypairs.iter().filter(|x| x.user_id == user).count() as i64;
    let limit = quota_limits(st, cx.caller.project())
        .get("key_pairs")
        .copied()
        .unwrap_or(100);
    if limit >= 0 && used + 1 > limit {
        return Err(err(403, "Quota exceeded, too many key pairs."));
    }
    let mut private = None;
    let public_key = match k.get("public_key").and_then(Value::as_str) {
        Some(p) => {
            if p.split_whitespace().count() < 2 && kind == "ssh" {
                return Err(bad(
                    "Keypair data is invalid: failed to generate fingerprint",
                ));
            }
            p.to_string()
        }
        None if cx.mv >= 92 => {
            return Err(invalid("keypair", k, "'public_key' is a required property"));
        }
        None => {
            let seed = format!("{:016x}{:016x}", os.random_u64(), os.random_u64());
            use base64::Engine;
            let blob = base64::engine::general_purpose::STANDARD
                .encode(format!("ssh-ed25519-twin-{seed}"));
            private = Some(format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(format!("twin-private-{seed}"))
            ));
            format!("ssh-ed25519 {blob} Generated-by-Nova")
        }
    };
    let kp = Keypair {
        id: st.next_keypair,
        name,
        user_id: user.clone(),
        fingerprint: fingerprint(&public_key),
        public_key,
        kind,
        created_ms: os.now_ms(),
    };
    st.next_keypair += 1;
    let mut v = keypair_json(&kp, cx.mv, false);
    v["user_id"] = json!(user);
    if let Some(p) = private {
        v["private_key"] = json!(p);
    }
    st.keypairs.push(kp);
    let status = if cx.mv >= 2 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_resp(status, json!({"keypair": v})))
}

pub(super) fn keypair_get_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let user = keypair_user(req, cx)?;
    let name = req.param("name");
    let k = st
        .keypairs
        .iter()
        .find(|k| k.user_id == user && k.name == name)
        .ok_or_else(|| err(404, &format!("Keypair {name} not found for user {user}")))?;
    Ok(json_resp(
        StatusCode::OK,
        json!({"keypair": keypair_json(k, cx.mv, true)}),
    ))
}

pub(super) fn keypair_delete_(_os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let user = keypair_user(req, cx)?;
    let name = req.param("name");
    let idx = st
        .keypairs
        .iter()
        .position(|k| k.user_id == user && k.name == name)
        .ok_or_else(|| err(404, &format!("Keypair {name} not found for user {user}")))?;
    st.keypairs.remove(idx);
    Ok(empty(if cx.mv >= 2 {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    }))
}
