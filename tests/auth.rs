//! Token verification, the `AuthUser` extractor, JWKS sources and local sign-in.

#[path = "common/tokens.rs"]
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{http::StatusCode, test, web, App};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reactive_notebook::auth::{
    mint_local_token, AuthError, AuthMode, AuthUser, Verifier, LOCAL_KEY_FILE,
};
use reactive_notebook::config::AuthSettings;
use reactive_notebook::error::ApiError;
use serde_json::{json, Value};
use tokens::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------- helpers ----------

fn pem_settings() -> AuthSettings {
    AuthSettings {
        jwt_key: Some(public_pem()),
        ..AuthSettings::default()
    }
}

async fn verifier_with(settings: AuthSettings) -> Verifier {
    Verifier::from_settings(&settings, Path::new("/nonexistent"), reqwest::Client::new())
        .await
        .expect("verifier")
}

async fn pem_verifier() -> Verifier {
    verifier_with(pem_settings()).await
}

async fn rejects(verifier: &Verifier, token: &str, message: &str) {
    match verifier.verify(token).await {
        Ok(v) => panic!("expected '{message}', token accepted for {}", v.user_id),
        Err(err) => assert_eq!(err.to_string(), message),
    }
}

async fn accepts(verifier: &Verifier, token: &str, user: &str) {
    match verifier.verify(token).await {
        Ok(v) => assert_eq!(v.user_id, user),
        Err(err) => panic!("expected acceptance, got '{err}'"),
    }
}

fn claims_with(sub: &str, extra: Value) -> Value {
    let mut claims = valid_claims(sub);
    for (k, v) in extra.as_object().expect("object") {
        claims[k] = v.clone();
    }
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().expect("object").remove(key);
    claims
}

fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rn-auth-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

// ---------- (1) verifier matrix with a PEM key ----------

#[tokio::test]
async fn pem_valid_token_accepted() {
    let v = pem_verifier().await;
    assert_eq!(v.mode(), AuthMode::Clerk);
    let verified = v.verify(&token_for("user_1")).await.expect("valid");
    assert_eq!(verified.user_id, "user_1");
    assert!(verified.expires_at > now() + 3500);
    // Cached second verification gives the same answer.
    accepts(&v, &token_for("user_1"), "user_1").await;
    assert_eq!(v.jwks_fetch_count(), 0);
}

#[tokio::test]
async fn time_claims_checked() {
    let v = pem_verifier().await;
    let t = now();
    rejects(
        &v,
        &sign(claims_with("u", json!({"exp": t - 60})), None),
        "token expired",
    )
    .await;
    rejects(
        &v,
        &sign(claims_with("u", json!({"nbf": t + 60})), None),
        "token not yet valid",
    )
    .await;
    rejects(
        &v,
        &sign(claims_with("u", json!({"iat": t + 60})), None),
        "token issued in the future",
    )
    .await;
    // Within the 5 s leeway.
    accepts(
        &v,
        &sign(claims_with("u", json!({"exp": t - 2})), None),
        "u",
    )
    .await;
    accepts(
        &v,
        &sign(claims_with("u", json!({"nbf": t + 2, "iat": t + 2})), None),
        "u",
    )
    .await;
    rejects(
        &v,
        &sign(without(valid_claims("u"), "exp"), None),
        "missing exp claim",
    )
    .await;
    // A non-numeric exp is no valid exp; a non-numeric nbf/iat makes the token malformed.
    rejects(
        &v,
        &sign(claims_with("u", json!({"exp": "tomorrow"})), None),
        "missing exp claim",
    )
    .await;
    rejects(
        &v,
        &sign(claims_with("u", json!({"nbf": "soon"})), None),
        "malformed token",
    )
    .await;
    rejects(
        &v,
        &sign(claims_with("u", json!({"iat": "now"})), None),
        "malformed token",
    )
    .await;
}

#[tokio::test]
async fn signature_and_algorithm_checked() {
    let v = pem_verifier().await;
    rejects(
        &v,
        &sign_with_other_key(valid_claims("u"), None),
        "invalid signature",
    )
    .await;

    // alg none, hand-built.
    let none = format!(
        "{}.{}.",
        b64_json(&json!({"alg": "none", "typ": "JWT"})),
        b64_json(&valid_claims("u"))
    );
    rejects(&v, &none, "unsupported algorithm none").await;

    // Key confusion: HS256 keyed with the public key's PEM text.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &valid_claims("u"),
        &EncodingKey::from_secret(public_pem().as_bytes()),
    )
    .expect("hs256");
    rejects(&v, &hs, "unsupported algorithm HS256").await;

    let es = format!(
        "{}.{}.{}",
        b64_json(&json!({"alg": "ES256"})),
        b64_json(&valid_claims("u")),
        URL_SAFE_NO_PAD.encode([1u8; 64])
    );
    rejects(&v, &es, "unsupported algorithm ES256").await;

    // RS256 header, garbage signature.
    let good = token_for("u");
    let (message, _) = good.rsplit_once('.').expect("three parts");
    let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode([7u8; 256]));
    rejects(&v, &forged, "invalid signature").await;

    // Tampered payload with the original signature.
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64_json(&valid_claims("admin")),
        parts[2]
    );
    rejects(&v, &tampered, "invalid signature").await;

    // Signature is checked before claims: an expired token from another key is a signature failure.
    let expired_other = sign_with_other_key(claims_with("u", json!({"exp": now() - 600})), None);
    rejects(&v, &expired_other, "invalid signature").await;
}

#[tokio::test]
async fn sub_required() {
    let v = pem_verifier().await;
    rejects(
        &v,
        &sign(without(valid_claims("u"), "sub"), None),
        "missing sub claim",
    )
    .await;
    rejects(&v, &sign(valid_claims(""), None), "missing sub claim").await;
    rejects(
        &v,
        &sign(claims_with("u", json!({"sub": 42})), None),
        "missing sub claim",
    )
    .await;
}

#[tokio::test]
async fn azp_checked_when_configured() {
    let v = verifier_with(AuthSettings {
        authorized_parties: vec!["https://app.example.com".into()],
        ..pem_settings()
    })
    .await;
    let with_azp = |azp: &str| sign(claims_with("u", json!({ "azp": azp })), None);
    rejects(
        &v,
        &with_azp("https://evil.example.com"),
        "azp not authorized",
    )
    .await;
    rejects(&v, &token_for("u"), "missing azp claim").await;
    accepts(&v, &with_azp("https://app.example.com"), "u").await;

    // Not configured: azp is ignored.
    let open = pem_verifier().await;
    accepts(&open, &with_azp("https://anything.example.com"), "u").await;
}

#[tokio::test]
async fn issuer_checked_when_configured() {
    let v = verifier_with(AuthSettings {
        issuer: Some("https://clerk.example.com".into()),
        ..pem_settings()
    })
    .await;
    let with_iss = |iss: &str| sign(claims_with("u", json!({ "iss": iss })), None);
    rejects(&v, &with_iss("https://clerk.evil.com"), "invalid issuer").await;
    rejects(&v, &token_for("u"), "invalid issuer").await;
    accepts(&v, &with_iss("https://clerk.example.com"), "u").await;
}

#[tokio::test]
async fn pending_session_rejected() {
    let v = pem_verifier().await;
    rejects(
        &v,
        &sign(claims_with("u", json!({"sts": "pending"})), None),
        "session is pending",
    )
    .await;
    accepts(
        &v,
        &sign(claims_with("u", json!({"sts": "active"})), None),
        "u",
    )
    .await;
}

#[tokio::test]
async fn garbage_rejected_without_echo() {
    let v = pem_verifier().await;
    for garbage in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "....",
        "not a token at all",
        "\u{1F600}.\u{1F600}.\u{1F600}",
    ] {
        let err = v.verify(garbage).await.expect_err("garbage");
        assert_eq!(err.to_string(), "malformed token", "for {garbage:?}");
    }
    // A valid RS256 header over junk: the signature is checked first, so that is what fails.
    rejects(&v, "eyJhbGciOiJSUzI1NiJ9.%%%.sig", "invalid signature").await;
    let long = "x".repeat(100_000);
    assert_eq!(
        v.verify(&long).await.expect_err("long"),
        AuthError::Malformed
    );
    // The message never contains the token.
    let secretish = sign_with_other_key(valid_claims("u"), None);
    let err = v.verify(&secretish).await.expect_err("other key");
    assert!(!err.to_string().contains(&secretish[..20]));
    // A weird alg name is not echoed verbatim.
    let odd = format!(
        "{}.{}.x",
        b64_json(&json!({"alg": "<script>alert(1)</script>"})),
        b64_json(&valid_claims("u"))
    );
    rejects(&v, &odd, "unsupported algorithm (invalid)").await;
}

#[tokio::test]
async fn pem_variants_accepted() {
    let pem = public_pem();
    let escaped = pem.trim_end().replace('\n', "\\n");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let one_line = pem.replace('\n', " ");
    for (name, key) in [
        ("escaped", escaped),
        ("bare body", body),
        ("one line", one_line),
    ] {
        let v = Verifier::from_settings(
            &AuthSettings {
                jwt_key: Some(key),
                ..AuthSettings::default()
            },
            Path::new("/nonexistent"),
            reqwest::Client::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        accepts(&v, &token_for("u"), "u").await;
    }
    // Precedence: jwt_key wins over a (broken) JWKS URL.
    let v = verifier_with(AuthSettings {
        jwks_url: Some("http://127.0.0.1:1/jwks".into()),
        secret_key: Some("sk".into()),
        ..pem_settings()
    })
    .await;
    accepts(&v, &token_for("u"), "u").await;
    assert_eq!(v.jwks_fetch_count(), 0);
}

#[tokio::test]
async fn bad_pem_is_a_config_error() {
    for key in [
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    ] {
        let result = Verifier::from_settings(
            &AuthSettings {
                jwt_key: Some(key.into()),
                ..AuthSettings::default()
            },
            Path::new("/nonexistent"),
            reqwest::Client::new(),
        )
        .await;
        assert!(matches!(result, Err(AuthError::KeyConfig(_))), "{key}");
    }
}

#[actix_web::test]
async fn error_mapping() {
    let unauthorized = ApiError::from(AuthError::Expired);
    assert!(matches!(unauthorized, ApiError::Unauthorized(ref m) if m == "token expired"));
    let outage = ApiError::from(AuthError::KeySetUnavailable("down".into()));
    assert!(matches!(outage, ApiError::Unavailable(_)));
}

// ---------- (2) the AuthUser extractor ----------

async fn whoami(user: AuthUser) -> String {
    user.user_id
}

#[actix_web::test]
async fn extractor_requires_bearer_token() {
    let verifier = web::Data::new(pem_verifier().await);
    let app = test::init_service(
        App::new()
            .app_data(verifier)
            .route("/me", web::get().to(whoami)),
    )
    .await;

    let resp = test::call_service(&app, test::TestRequest::get().uri("/me").to_request()).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers().get("www-authenticate").map(|h| h.as_bytes()),
        Some(&b"Bearer"[..])
    );
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body, json!({"detail": "missing Authorization header"}));

    let req = test::TestRequest::get()
        .uri("/me")
        .insert_header(("Authorization", "Basic dXNlcjpwYXNz"))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["detail"], "Authorization scheme must be Bearer");

    let req = test::TestRequest::get()
        .uri("/me")
        .insert_header((
            "Authorization",
            format!("Bearer {}", sign_with_other_key(valid_claims("x"), None)),
        ))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body["detail"], "invalid signature");

    for scheme in ["Bearer", "bearer", "BEARER"] {
        let req = test::TestRequest::get()
            .uri("/me")
            .insert_header(("Authorization", format!("{scheme} {}", token_for("alice"))))
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(test::read_body(resp).await, "alice");
    }
}

#[actix_web::test]
async fn extractor_without_verifier_is_internal_error() {
    let app = test::init_service(App::new().route("/me", web::get().to(whoami))).await;
    let req = test::TestRequest::get()
        .uri("/me")
        .insert_header(("Authorization", format!("Bearer {}", token_for("alice"))))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

// ---------- (3) JWKS sources ----------

/// Requests seen by the test server: (path, Authorization header).
type SeenRequests = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A tiny HTTP server publishing a JWKS; records each request's path and Authorization header.
struct JwksServer {
    base: String,
    body: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    seen: SeenRequests,
}

impl JwksServer {
    async fn start(initial: Value) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let body = Arc::new(Mutex::new(initial));
        let hits = Arc::new(AtomicUsize::new(0));
        let seen: SeenRequests = Arc::new(Mutex::new(Vec::new()));
        let (b, h, s) = (body.clone(), hits.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (b, h, s) = (b.clone(), h.clone(), s.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let auth = head.lines().find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("authorization")
                            .then(|| value.trim().to_string())
                    });
                    h.fetch_add(1, Ordering::SeqCst);
                    s.lock().unwrap().push((path, auth));
                    // Slow enough that concurrent callers really overlap with the fetch.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    let payload = b.lock().unwrap().to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        payload.len(),
                        payload
                    );
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        JwksServer {
            base,
            body,
            hits,
            seen,
        }
    }

    fn url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.base)
    }

    fn publish(&self, jwks: Value) {
        *self.body.lock().unwrap() = jwks;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn jwks_settings(url: String, interval: u64) -> AuthSettings {
    AuthSettings {
        jwks_url: Some(url),
        jwks_refetch_interval_secs: interval,
        ..AuthSettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_kid_accepted_and_cached() {
    let server = JwksServer::start(jwks_json("k1")).await;
    let v = verifier_with(jwks_settings(server.url(), 30)).await;
    assert_eq!(v.mode(), AuthMode::Clerk);
    accepts(&v, &sign(valid_claims("u1"), Some("k1")), "u1").await;
    accepts(&v, &sign(valid_claims("u2"), Some("k1")), "u2").await;
    // Single key in the set: a kid-less token may use it.
    accepts(&v, &token_for("u3"), "u3").await;
    rejects(
        &v,
        &sign_with_other_key(valid_claims("u"), Some("k1")),
        "invalid signature",
    )
    .await;
    assert_eq!(v.jwks_fetch_count(), 1);
    assert_eq!(server.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_kidless_token_needs_single_key() {
    let mut keys = jwks_json("k1");
    keys["keys"]
        .as_array_mut()
        .expect("keys")
        .push(tokens::jwk(other_key(), "k2"));
    // Keys that must be ignored: not RSA, or not for signatures.
    keys["keys"]
        .as_array_mut()
        .expect("keys")
        .push(json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}));
    let mut enc = tokens::jwk(other_key(), "enc");
    enc["use"] = json!("enc");
    keys["keys"].as_array_mut().expect("keys").push(enc);
    let server = JwksServer::start(keys).await;
    let v = verifier_with(jwks_settings(server.url(), 30)).await;
    rejects(&v, &token_for("u"), "unknown signing key").await;
    accepts(&v, &sign_with_other_key(valid_claims("u"), Some("k2")), "u").await;
    rejects(
        &v,
        &sign_with_other_key(valid_claims("u"), Some("enc")),
        "unknown signing key",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_key_rotation_refetches() {
    let server = JwksServer::start(jwks_json("k1")).await;
    let v = verifier_with(jwks_settings(server.url(), 1)).await;
    accepts(&v, &sign(valid_claims("u"), Some("k1")), "u").await;
    assert_eq!(v.jwks_fetch_count(), 1);

    server.publish(other_jwks_json("k2"));
    accepts(&v, &sign_with_other_key(valid_claims("u"), Some("k2")), "u").await;
    assert_eq!(v.jwks_fetch_count(), 2);
    assert_eq!(server.hits(), 2);

    // Within the interval, another unknown kid does not refetch.
    rejects(
        &v,
        &sign(valid_claims("u"), Some("k3")),
        "unknown signing key",
    )
    .await;
    assert_eq!(v.jwks_fetch_count(), 2);
    // After it, it does.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    rejects(
        &v,
        &sign(valid_claims("u"), Some("k3")),
        "unknown signing key",
    )
    .await;
    assert_eq!(v.jwks_fetch_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_kids_refetch_at_most_once() {
    let server = JwksServer::start(jwks_json("k1")).await;
    let v = Arc::new(verifier_with(jwks_settings(server.url(), 30)).await);
    let before = v.jwks_fetch_count();
    let hits_before = server.hits();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let v = v.clone();
            let token = sign(valid_claims(&format!("u{i}")), Some("unknown-kid"));
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for task in tasks {
        let result = task.await.expect("task");
        assert_eq!(result.expect_err("unknown kid"), AuthError::UnknownKey);
    }
    assert!(
        v.jwks_fetch_count() - before <= 1,
        "fetches: {}",
        v.jwks_fetch_count() - before
    );
    assert!(server.hits() - hits_before <= 1);
    eprintln!(
        "refetches for 200 unknown-kid tokens: {}",
        v.jwks_fetch_count() - before
    );
    // Known kids keep working throughout.
    accepts(&v, &sign(valid_claims("u"), Some("k1")), "u").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_key_fetches_backend_api_jwks() {
    let server = JwksServer::start(jwks_json("k1")).await;
    let v = verifier_with(AuthSettings {
        secret_key: Some("sk_test_secret".into()),
        api_url: format!("{}/", server.base),
        ..AuthSettings::default()
    })
    .await;
    accepts(&v, &sign(valid_claims("u"), Some("k1")), "u").await;
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "/v1/jwks");
    assert_eq!(seen[0].1.as_deref(), Some("Bearer sk_test_secret"));
}

#[tokio::test]
async fn unreachable_jwks_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
    drop(listener);
    let v = verifier_with(jwks_settings(url, 30)).await;
    let err = v
        .verify(&sign(valid_claims("u"), Some("k1")))
        .await
        .expect_err("down");
    assert!(matches!(err, AuthError::KeySetUnavailable(_)), "{err}");
    assert!(matches!(ApiError::from(err), ApiError::Unavailable(_)));
}

// ---------- (4) local sign-in mode ----------

async fn local_verifier(dir: &Path) -> Verifier {
    Verifier::from_settings(&AuthSettings::default(), dir, reqwest::Client::new())
        .await
        .expect("local verifier")
}

#[tokio::test]
async fn local_mode_creates_key_and_verifies_minted_tokens() {
    let dir = temp_dir("local");
    let v = local_verifier(&dir).await;
    assert_eq!(v.mode(), AuthMode::Local);
    let key_file = dir.join(LOCAL_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pem = std::fs::read_to_string(&key_file).expect("read key");
    // No temp files left behind.
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 1);

    let token = v.mint("local", 60).expect("mint");
    let verified = v.verify(&token).await.expect("verify");
    assert_eq!(verified.user_id, "local");
    assert!((verified.expires_at - now() - 60).abs() <= 2);

    // A second verifier (and the CLI helper) reuse the same key.
    let again = local_verifier(&dir).await;
    accepts(&again, &token, "local").await;
    let cli = mint_local_token(&dir, "bob", 3600).expect("cli mint");
    accepts(&v, &cli, "bob").await;
    assert_eq!(std::fs::read_to_string(&key_file).expect("read key"), pem);

    // Tokens from another data dir's key are rejected.
    let other_dir = temp_dir("local-other");
    let foreign = mint_local_token(&other_dir, "local", 60).expect("foreign mint");
    rejects(&v, &foreign, "invalid signature").await;

    // Local mode only accepts its own issuer; Clerk-style tokens fail even if well-formed.
    rejects(&v, &token_for("u"), "invalid signature").await;
    assert!(v.mint("", 60).is_err());
    let expired = v.mint("local", 0).expect("mint");
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    // ttl 0 is still within the 5 s leeway; just make sure it is signed correctly.
    accepts(&v, &expired, "local").await;

    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other_dir);
}

#[tokio::test]
async fn concurrent_local_key_creation_agrees() {
    let dir = temp_dir("race");
    let (a, b) = (dir.clone(), dir.clone());
    let t1 = std::thread::spawn(move || mint_local_token(&a, "a", 60));
    let t2 = std::thread::spawn(move || mint_local_token(&b, "b", 60));
    let ta = t1.join().expect("thread").expect("mint a");
    let tb = t2.join().expect("thread").expect("mint b");
    let v = local_verifier(&dir).await;
    accepts(&v, &ta, "a").await;
    accepts(&v, &tb, "b").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn mint_outside_local_mode_fails() {
    let v = pem_verifier().await;
    assert_eq!(v.mint("u", 60).expect_err("clerk"), AuthError::NotLocalMode);
}
