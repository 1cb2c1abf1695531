//! Shared test helpers: RSA test keys, JWKS documents and signed tokens.
//!
//! Standalone (jsonwebtoken, rsa, rand, serde_json, base64, std) so any test binary can include it
//! with `#[path = "common/tokens.rs"] mod tokens;`.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};

/// A test key pair with its encodings precomputed.
pub struct TestKey {
    pub private: RsaPrivateKey,
    pub encoding: EncodingKey,
    pub public_pem: String,
}

fn make_key() -> TestKey {
    let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("generate test key");
    let der = private.to_pkcs1_der().expect("encode test key");
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("encode public key");
    TestKey {
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        private,
        public_pem,
    }
}

/// The main test key (the one servers under test trust).
pub fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(make_key)
}

/// A second key nobody trusts unless a test publishes it.
pub fn other_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(make_key)
}

/// Current unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of the main test key.
pub fn public_pem() -> String {
    test_key().public_pem.clone()
}

/// SPKI PEM of the other key.
pub fn other_public_pem() -> String {
    other_key().public_pem.clone()
}

/// A JWK (RSA, use sig, RS256) for `key` with `kid`.
pub fn jwk(key: &TestKey, kid: &str) -> Value {
    let public = key.private.to_public_key();
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    })
}

/// A JWKS holding the main test key under `kid`.
pub fn jwks_json(kid: &str) -> Value {
    json!({ "keys": [jwk(test_key(), kid)] })
}

/// A JWKS holding the other key under `kid`.
pub fn other_jwks_json(kid: &str) -> Value {
    json!({ "keys": [jwk(other_key(), kid)] })
}

fn sign_with(key: &TestKey, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(String::from);
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign test token")
}

/// RS256 token signed with the main test key.
pub fn sign(claims: Value, kid: Option<&str>) -> String {
    sign_with(test_key(), &claims, kid)
}

/// RS256 token signed with the other key.
pub fn sign_with_other_key(claims: Value, kid: Option<&str>) -> String {
    sign_with(other_key(), &claims, kid)
}

/// Claims valid for an hour: sub, exp, iat, nbf (no azp, no iss).
pub fn valid_claims(sub: &str) -> Value {
    let now = now();
    json!({ "sub": sub, "exp": now + 3600, "iat": now - 10, "nbf": now - 10 })
}

/// A valid token for `sub` signed with the main test key, without `kid`.
pub fn token_for(sub: &str) -> String {
    sign(valid_claims(sub), None)
}

/// Base64url (no padding) of a JSON value, for hand-built tokens.
pub fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}
