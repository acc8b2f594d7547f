//! OIDC bearer tokens end to end: `strata serve` configured with an identity
//! provider's JWKS accepts the JWTs it signs, maps their `groups` claim to grants, and
//! denies what those grants do not cover; a JWT for another audience, an expired one
//! or one signed by a key the IdP never published is 401. The test is the IdP: it
//! mints its own EC key and tokens.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use strata_server::oidc::{Jwks, OidcConfig, OidcValidator};

const ISSUER: &str = "https://idp.test.invalid/realms/strata";
const AUDIENCE: &str = "strata-api";

struct Idp {
    key: EncodingKey,
    jwks: Value,
}

fn idp() -> Idp {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
    let raw = kp.public_key_raw();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    Idp {
        key: EncodingKey::from_ec_der(&kp.serialize_der()),
        jwks: json!({"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
            "kid": "k1", "x": b64(&raw[1..33]), "y": b64(&raw[33..])}]}),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn jwt(key: &EncodingKey, claims: Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    jsonwebtoken::encode(&h, &claims, key).expect("sign")
}

fn claims(groups: &[&str]) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "carol", "email": "carol@example.net",
           "iat": now(), "exp": now() + 300, "groups": groups})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_grant_what_their_groups_say() {
    let dir = tempfile::tempdir().expect("tmp");
    let repo = dir.path().join("spec");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(repo.join("README"), "empty spec\n").expect("write");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "x",
        ],
    ] {
        assert!(
            Command::new("git")
                .args(args)
                .current_dir(&repo)
                .status()
                .expect("git")
                .success()
        );
    }
    let provider = idp();
    let jwks = Jwks::from_json(provider.jwks.to_string().as_bytes()).expect("jwks");
    let cfg = strata_server::Config {
        spec_repo: repo.display().to_string(),
        branch: "main".into(),
        spec_path: String::new(),
        targets: dir.path().join("targets.yaml"),
        database: format!("sqlite:{}", dir.path().join("s.db").display()),
        listen: "127.0.0.1:0".parse().expect("addr"),
        state_dir: dir.path().join("state"),
        poll_interval: Duration::from_secs(3600),
        reconcile_interval: Duration::from_secs(3600),
        github_secret: None,
        gitlab_token: None,
        admin_token_file: None,
        instance: "oidc-test".into(),
        secrets: Arc::new(strata_providers::secrets::StaticSecrets::new()),
        lease_ttl: Duration::from_secs(9),
        workers: 1,
        maas_concurrency: 1,
        rate_limit: 1000,
        oidc: Some(OidcValidator::new(
            OidcConfig::new(ISSUER, AUDIENCE),
            Arc::new(jwks),
        )),
        secrets_key_file: None,
    };
    let running = strata_server::start(cfg).await.expect("start");
    let base = format!("http://{}/api/v1", running.addr);
    let http = reqwest::Client::new();
    let get = |path: &str, token: String| {
        let req = http.get(format!("{base}{path}")).bearer_auth(token);
        async move {
            let r = req.send().await.expect("send");
            let code = r.status().as_u16();
            (code, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let member = jwt(
        &provider.key,
        claims(&["ml-research:member", "/platform:viewer", "junk"]),
    );
    let (code, me) = get("/whoami", member.clone()).await;
    assert_eq!(code, 200, "{me}");
    assert_eq!(me["actor"], "oidc:carol");
    let grants = me["grants"].as_array().expect("grants");
    assert!(
        grants.contains(&json!({"team": "ml-research", "role": "member"})),
        "{me}"
    );
    assert!(
        grants.contains(&json!({"team": "platform", "role": "viewer"})),
        "{me}"
    );
    assert_eq!(grants.len(), 2, "unknown group entries grant nothing: {me}");
    // Another team's object: a 404 like a missing one; fleet objects: 403.
    assert_eq!(get("/teams/web", member.clone()).await.0, 404);
    assert_eq!(get("/commits", member.clone()).await.0, 403);
    // A fleet grant reads fleet objects.
    let fleet = jwt(&provider.key, claims(&["fleet:viewer"]));
    assert_eq!(get("/commits", fleet).await.0, 200);

    // Refused: wrong audience, expired, unknown signer, garbage.
    let mut wrong_aud = claims(&["fleet:admin"]);
    wrong_aud["aud"] = json!("another-client");
    let mut expired = claims(&["fleet:admin"]);
    expired["exp"] = json!(now() - 3600);
    let stranger = jwt(&idp().key, claims(&["fleet:admin"]));
    for (what, token) in [
        ("wrong audience", jwt(&provider.key, wrong_aud)),
        ("expired", jwt(&provider.key, expired)),
        ("unknown signer", stranger),
        ("garbage", "a.b.c".to_string()),
    ] {
        let (code, body) = get("/whoami", token.clone()).await;
        assert_eq!(code, 401, "{what}: {body}");
        assert_eq!(body["code"], "unauthenticated", "{what}: {body}");
        assert!(
            !body.to_string().contains(&token),
            "{what}: the token is echoed"
        );
    }
    running.stop().await;
}
