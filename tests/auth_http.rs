//! The auth matrix over real HTTP: every bad credential is a 401 and changes nothing.

mod common;

use common::tokens::{self, b64_json, now, sign, sign_with_other_key, valid_claims};
use common::{Backend, TestDb, TestServer};
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

const ISSUER: &str = "https://clerk.example.test";
const PARTY: &str = "https://app.example.test";
const USER: &str = "user_matrix";

fn good(extra: Value) -> Value {
    let mut claims = valid_claims(USER);
    claims["iss"] = json!(ISSUER);
    claims["azp"] = json!(PARTY);
    if let (Value::Object(map), Value::Object(extra)) = (&mut claims, extra) {
        for (k, v) in extra {
            if v.is_null() {
                map.remove(&k);
            } else {
                map.insert(k, v);
            }
        }
    }
    claims
}

fn bad_authorizations() -> Vec<(&'static str, Option<String>)> {
    let t = now();
    let bearer = |token: String| Some(format!("Bearer {token}"));
    let hs256_with_public_key = encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &good(json!({})),
        &EncodingKey::from_secret(tokens::public_pem().as_bytes()),
    )
    .expect("hs256 token");
    let alg_none = format!(
        "{}.{}.",
        b64_json(&json!({"alg": "none", "typ": "JWT"})),
        b64_json(&good(json!({})))
    );
    vec![
        ("no header", None),
        ("basic scheme", Some("Basic dXNlcjpwYXNz".into())),
        ("garbage", bearer("not-a-jwt".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("expired", bearer(sign(good(json!({"exp": t - 60})), None))),
        (
            "nbf in future",
            bearer(sign(good(json!({"nbf": t + 300})), None)),
        ),
        (
            "iat in future",
            bearer(sign(good(json!({"iat": t + 300})), None)),
        ),
        (
            "other key",
            bearer(sign_with_other_key(good(json!({})), None)),
        ),
        ("alg none", bearer(alg_none)),
        ("hs256 with public key", bearer(hs256_with_public_key)),
        (
            "missing sub",
            bearer(sign(good(json!({"sub": null})), None)),
        ),
        (
            "wrong azp",
            bearer(sign(good(json!({"azp": "https://evil.test"})), None)),
        ),
        (
            "missing azp",
            bearer(sign(good(json!({"azp": null})), None)),
        ),
        (
            "wrong iss",
            bearer(sign(good(json!({"iss": "https://evil.test"})), None)),
        ),
        (
            "pending session",
            bearer(sign(good(json!({"sts": "pending"})), None)),
        ),
    ]
}

both_backends!(auth_matrix, |backend: Backend| async move {
    let db = TestDb::new(backend).await;
    let mut config = db.config();
    config.auth.issuer = Some(ISSUER.into());
    config.auth.authorized_parties = vec![PARTY.into()];
    let s = TestServer::start_with(db, config).await;
    let good_token = sign(good(json!({})), None);
    let call = |method: Method, path: String, auth: Option<String>, body: Option<Value>| {
        let mut req = s.http.request(method, s.url(&path));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };
    // The good token works and sets up a notebook to attack.
    let resp = call(
        Method::POST,
        "/api/notebooks".into(),
        Some(format!("Bearer {good_token}")),
        Some(json!({"name": "target"})),
    )
    .await
    .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let id = resp.json::<Value>().await.expect("json")["notebook_id"]
        .as_str()
        .expect("id")
        .to_string();
    let snapshot = || async {
        call(
            Method::GET,
            format!("/api/notebooks/{id}"),
            Some(format!("Bearer {good_token}")),
            None,
        )
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json")
    };
    let before = snapshot().await;

    for (case, auth) in bad_authorizations() {
        for (method, path, body) in [
            (Method::GET, "/api/notebooks".to_string(), None),
            (
                Method::POST,
                "/api/notebooks".to_string(),
                Some(json!({"name": "x"})),
            ),
            (
                Method::PUT,
                format!("/api/notebooks/{id}/name"),
                Some(json!({"name": "pwned"})),
            ),
            (Method::DELETE, format!("/api/notebooks/{id}"), None),
        ] {
            let resp = call(method.clone(), path.clone(), auth.clone(), body)
                .await
                .expect("sent");
            assert_eq!(resp.status().as_u16(), 401, "{case}: {method} {path}");
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
            let body: Value = resp.json().await.expect("json detail");
            let detail = body["detail"].as_str().expect("detail");
            if let Some(auth) = &auth {
                let token = auth
                    .trim_start_matches("Bearer ")
                    .trim_start_matches("Basic ");
                if token.len() > 8 {
                    assert!(!detail.contains(token), "{case}: detail echoes the token");
                }
            }
        }
    }
    let after = snapshot().await;
    assert_eq!(before, after);
    let resp = call(
        Method::GET,
        "/api/notebooks".into(),
        Some(format!("Bearer {good_token}")),
        None,
    )
    .await
    .expect("sent");
    let list: Value = resp.json().await.expect("json");
    let names: Vec<&str> = list["notebooks"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert!(
        !names.contains(&"x"),
        "no notebook created by a rejected request"
    );
    s.finish().await;
});

both_backends!(local_mode_sign_in, |backend: Backend| async move {
    let db = TestDb::new(backend).await;
    let mut config = db.config();
    config.auth.jwt_key = None;
    let data_dir = db.data_dir.clone();
    let s = TestServer::start_with(db, config).await;
    let (_, cfg) = s.call(Method::GET, "/api/config", None, None).await;
    assert_eq!(cfg["auth_mode"], "local");
    let token = reactive_notebook::auth::mint_local_token(&data_dir, "local", 600).expect("mint");
    let resp = s
        .http
        .get(s.url("/api/notebooks"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    // A token for the test key is not valid in local mode.
    let resp = s
        .http
        .get(s.url("/api/notebooks"))
        .bearer_auth(tokens::token_for("local"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 401);
    s.finish().await;
});
