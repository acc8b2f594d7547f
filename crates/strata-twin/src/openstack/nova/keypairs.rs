//! Key pairs: per-user SSH keys (or X.509 certificates, `type` from 2.2) with nova's
//! fingerprints (nova/crypto.py `generate_fingerprint`: the MD5 of the decoded key blob,
//! as `ssh-keygen -E md5 -l` prints it; `generate_x509_fingerprint`: the SHA-1 of the
//! certificate), imported keys checked as `load_ssh_public_key` checks them, generated
//! ones real 2048-bit RSA keys as `generate_key_pair` makes them with paramiko (refused
//! from 2.92, where `public_key` is required), listed, shown and deleted (admins may act
//! on another user's keys from 2.10).

use base64::Engine;

use super::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn colon_hex(d: &[u8]) -> String {
    d.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Read one SSH wire-format `string` (u32 length, bytes) off the front of `b`.
fn ssh_string<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let out = b.get(4..4 + len)?;
    *b = &b[4 + len..];
    Some(out)
}

/// The decoded key blob of an OpenSSH public key line, when it is one that
/// cryptography's `load_ssh_public_key` loads: a known key type, base64 that decodes,
/// an inner key type equal to the outer one, the type's fields and no bytes after them.
pub(super) fn ssh_key_blob(public_key: &str) -> Option<Vec<u8>> {
    // cryptography splits on single spaces (`data.split(b" ", 2)`), as nova does.
    let mut parts = public_key.trim_end_matches(['\n', '\r']).splitn(3, ' ');
    let kind = parts.next()?;
    let blob = B64.decode(parts.next()?.trim()).ok()?;
    let mut b = blob.as_slice();
    if ssh_string(&mut b)? != kind.as_bytes() {
        return None;
    }
    let mpint = |b: &mut &[u8]| ssh_string(b).filter(|m| !m.is_empty()).map(|_| ());
    match kind {
        "ssh-rsa" => {
            mpint(&mut b)?;
            mpint(&mut b)?;
        }
        "ssh-dss" => {
            for _ in 0..4 {
                mpint(&mut b)?;
            }
        }
        "ssh-ed25519" => {
            if ssh_string(&mut b)?.len() != 32 {
                return None;
            }
        }
        "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
            let curve = &kind["ecdsa-sha2-".len()..];
            if ssh_string(&mut b)? != curve.as_bytes() {
                return None;
            }
            let coord = match curve {
                "nistp256" => 32,
                "nistp384" => 48,
                _ => 66,
            };
            let point = ssh_string(&mut b)?;
            if point.len() != 1 + 2 * coord || point[0] != 4 {
                return None;
            }
        }
        _ => return None,
    }
    // "Key body contains extra bytes."
    b.is_empty().then_some(blob)
}

/// nova/crypto.py `generate_fingerprint`, or nova's 400 for a key it cannot load.
pub(super) fn fingerprint(public_key: &str) -> Result<String, Response> {
    use md5::Digest;
    let blob = ssh_key_blob(public_key)
        .ok_or_else(|| bad("Keypair data is invalid: failed to generate fingerprint"))?;
    Ok(colon_hex(&md5::Md5::digest(&blob)))
}

/// nova/crypto.py `generate_x509_fingerprint`: the SHA-1 of a PEM certificate's DER.
fn x509_fingerprint(pem: &str) -> Result<String, Response> {
    use sha1::Digest;
    let body = pem
        .split_once("-----BEGIN CERTIFICATE-----")
        .and_then(|(_, rest)| rest.split_once("-----END CERTIFICATE-----"))
        .map(|(b, _)| b.split_whitespace().collect::<String>());
    let der = body
        .and_then(|b| B64.decode(b).ok())
        .filter(|d| d.first() == Some(&0x30) && d.len() > 16)
        .ok_or_else(|| {
            bad("Keypair data is invalid: failed to generate X509 fingerprint. Error message: Unable to load PEM file. See https://cryptography.io/en/latest/faq/#why-can-t-i-import-my-pem-file for more details. MalformedFraming")
        })?;
    Ok(colon_hex(&sha1::Sha1::digest(&der)))
}

/// One DER element at the front of `b`: (tag, contents); `b` moves past it.
fn der<'a>(b: &mut &'a [u8]) -> Option<(u8, &'a [u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let out = b.get(head..head + len)?;
    *b = &b[head + len..];
    Some((tag, out))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// nova/crypto.py `generate_key_pair`: a 2048-bit RSA key (paramiko's
/// `RSAKey.generate`), the private key as paramiko's `write_private_key` writes it
/// (PKCS#1, `RSA PRIVATE KEY`) and the public key as `ssh-rsa <blob> Generated-by-Nova`.
/// The key comes from aws-lc-rs through rcgen, both already dependencies of the twin.
fn generate_rsa() -> Result<(String, String), String> {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|e| e.to_string())?;
    // The public key is PKCS#1 `RSAPublicKey` (SEQUENCE { n, e }).
    let mut pub_der = kp.public_key_raw();
    let (_, mut seq) = der(&mut pub_der).ok_or("bad public key")?;
    let (_, n) = der(&mut seq).ok_or("bad modulus")?;
    let (_, e) = der(&mut seq).ok_or("bad exponent")?;
    let mut blob = Vec::new();
    for field in [b"ssh-rsa".as_slice(), e, n] {
        blob.extend_from_slice(&(field.len() as u32).to_be_bytes());
        blob.extend_from_slice(field);
    }
    // PKCS#8 `PrivateKeyInfo` wraps the PKCS#1 key in its OCTET STRING.
    let pkcs8 = kp.serialize_der();
    let mut p = pkcs8.as_slice();
    let (_, mut info) = der(&mut p).ok_or("bad private key")?;
    der(&mut info).ok_or("bad version")?;
    der(&mut info).ok_or("bad algorithm")?;
    let (_, pkcs1) = der(&mut info).ok_or("bad key")?;
    Ok((
        pem("RSA PRIVATE KEY", pkcs1),
        format!("ssh-rsa {} Generated-by-Nova", B64.encode(&blob)),
    ))
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

/// `parameter_types.keypair_name_special_chars` (and its 2.92 variant): a nova name
/// that also matches the key-pair pattern.
fn check_keypair_name(v: &Value, mv: u32) -> Result<String, Response> {
    let name = check_name("name", v)?;
    let (pattern, extra) = if mv >= 92 {
        (r"^[_\-\@\. a-zA-Z0-9]+$", "_- @.")
    } else {
        (r"^[_\- a-zA-Z0-9]+$", "_- ")
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    {
        return Err(invalid("name", v, &no_match(name, pattern)));
    }
    Ok(name.to_string())
}

pub(super) fn keypair_create_(os: &Os, req: &Req, st: &mut State, cx: &Cx) -> R {
    let body = req.json().unwrap_or(Value::Null);
    let k = body
        .get("keypair")
        .filter(|k| k.is_object())
        .ok_or_else(|| invalid("request body", &body, "'keypair' is a required property"))?;
    // schemas/keypairs.py: `create`, `create_v22` (type), `create_v210` (user_id),
    // `create_v292` (public_key required, `@` and `.` in names).
    let mut allowed = vec!["name", "public_key"];
    if cx.mv >= 2 {
        allowed.push("type");
    }
    if cx.mv >= 10 {
        allowed.push("user_id");
    }
    let required: &[&str] = if cx.mv >= 92 {
        &["name", "public_key"]
    } else {
        &["name"]
    };
    check_object(k, &allowed, required, Some("keypair"))?;
    let name = check_keypair_name(&k["name"], cx.mv)?;
    let kind = match k.get("type") {
        Some(Value::String(t)) if t == "ssh" || t == "x509" => t.clone(),
        Some(t) if cx.mv >= 2 => {
            return Err(invalid(
                "type",
                t,
                &format!("{} is not one of ['ssh', 'x509']", py_repr(t)),
            ));
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
    let used = st.keypairs.iter().filter(|x| x.user_id == user).count() as i64;
    let limit = quota_limits(st, cx.caller.project())
        .get("key_pairs")
        .copied()
        .unwrap_or(100);
    if limit >= 0 && used + 1 > limit {
        return Err(err(403, "Quota exceeded, too many key pairs."));
    }
    let mut private = None;
    let (public_key, fp) = match k.get("public_key") {
        Some(Value::String(p)) => {
            let fp = if kind == "x509" {
                x509_fingerprint(p)?
            } else {
                fingerprint(p)?
            };
            (p.clone(), fp)
        }
        Some(v) => {
            return Err(invalid(
                "public_key",
                v,
                &format!("{} is not of type 'string'", py_repr(v)),
            ));
        }
        // From 2.92 `public_key` is required (schemas/keypairs.py `create_v292`).
        None if cx.mv >= 92 => {
            return Err(invalid("keypair", k, "'public_key' is a required property"));
        }
        None => {
            let (priv_pem, public) =
                generate_rsa().map_err(|e| err(500, &format!("Key generation failed: {e}")))?;
            private = Some(priv_pem);
            let fp = fingerprint(&public)?;
            (public, fp)
        }
    };
    // compute/api.py: the name and quota checks (`_validate_new_key_pair`), the
    // fingerprint, then the insert that finds a duplicate (KeyPairExists, 409).
    if st
        .keypairs
        .iter()
        .any(|x| x.user_id == user && x.name == name)
    {
        return Err(err(409, &format!("Key pair '{name}' already exists.")));
    }
    let kp = Keypair {
        id: st.next_keypair,
        name,
        user_id: user.clone(),
        fingerprint: fp,
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
