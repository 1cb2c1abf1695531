//! Where verification keys come from: a configured PEM key, or a JWKS fetched over HTTP and cached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::DecodingKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use serde_json::Value;

use super::error::AuthError;

/// Smallest RSA modulus accepted (ring refuses to verify with less anyway).
const MIN_RSA_BITS: usize = 2048;
/// A JWKS older than this is refreshed in the background of one request, so removed keys expire.
const MAX_KEY_SET_AGE: Duration = Duration::from_secs(3600);
/// Upper bound between retries while no key set has ever been fetched.
const EMPTY_SET_RETRY: Duration = Duration::from_secs(5);
/// Per-request timeout for JWKS fetches.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a verification key from PEM text as Clerk's dashboard shows it.
///
/// Accepts SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`), literal `\n` escapes, surrounding
/// quotes, collapsed whitespace, and a bare base64 body without the BEGIN/END lines.
pub(crate) fn decoding_key_from_pem(text: &str) -> Result<DecodingKey, AuthError> {
    let bad = |reason: &str| AuthError::KeyConfig(format!("jwt_key: {reason}"));
    let text = text
        .replace("\\r", "")
        .replace("\\n", "\n")
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string();
    let (label, body) = match text.find("-----BEGIN ") {
        Some(start) => {
            let after = &text[start + "-----BEGIN ".len()..];
            let label_end = after
                .find("-----")
                .ok_or_else(|| bad("unterminated BEGIN line"))?;
            let label = after[..label_end].trim().to_string();
            let rest = &after[label_end + "-----".len()..];
            let body_end = rest
                .find("-----END")
                .ok_or_else(|| bad("missing END line"))?;
            (Some(label), rest[..body_end].to_string())
        }
        None => (None, text),
    };
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| bad("key body is not base64"))?;
    let key = match label.as_deref() {
        Some("PUBLIC KEY") => RsaPublicKey::from_public_key_der(&der).ok(),
        Some("RSA PUBLIC KEY") => RsaPublicKey::from_pkcs1_der(&der).ok(),
        Some(other) => {
            return Err(bad(&format!(
                "expected a PUBLIC KEY or RSA PUBLIC KEY, found {other}"
            )))
        }
        None => RsaPublicKey::from_public_key_der(&der)
            .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
            .ok(),
    };
    let key = key.ok_or_else(|| bad("not an RSA public key"))?;
    rsa_decoding_key(&key).map_err(|reason| bad(&reason))
}

/// Turns an RSA public key into a jsonwebtoken key, refusing weak moduli.
pub(crate) fn rsa_decoding_key(key: &RsaPublicKey) -> Result<DecodingKey, String> {
    if key.size() * 8 < MIN_RSA_BITS {
        return Err(format!("RSA key shorter than {MIN_RSA_BITS} bits"));
    }
    Ok(DecodingKey::from_rsa_raw_components(
        &key.n().to_bytes_be(),
        &key.e().to_bytes_be(),
    ))
}

/// One fetched JWKS: the usable RSA signing keys by `kid`.
struct KeySet {
    keys: Vec<(Option<String>, Arc<DecodingKey>)>,
    fetched_at: Instant,
}

impl KeySet {
    /// The key for `kid`; a token without `kid` may only use a set holding exactly one key.
    fn find(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| key.clone()),
            None if self.keys.len() == 1 => self.keys.first().map(|(_, key)| key.clone()),
            None => None,
        }
    }

    fn parse(doc: &Value) -> Result<KeySet, String> {
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("response has no \"keys\" array")?;
        let mut keys = Vec::new();
        for jwk in entries {
            let field = |name: &str| jwk.get(name).and_then(Value::as_str);
            let usable = field("kty") == Some("RSA")
                && matches!(field("use"), None | Some("sig"))
                && matches!(field("alg"), None | Some("RS256" | "RS384" | "RS512"));
            let (Some(n), Some(e)) = (field("n"), field("e")) else {
                continue;
            };
            if !usable {
                continue;
            }
            match DecodingKey::from_rsa_components(n, e) {
                Ok(key) => keys.push((field("kid").map(String::from), Arc::new(key))),
                Err(err) => log::warn!("skipping unusable JWKS key: {err}"),
            }
        }
        if keys.is_empty() {
            return Err("no usable RSA signing keys".into());
        }
        Ok(KeySet {
            keys,
            fetched_at: Instant::now(),
        })
    }
}

/// Bookkeeping for fetches, guarded by an async mutex so only one fetch runs at a time.
#[derive(Default)]
struct FetchState {
    /// When a token with an unknown `kid` last caused a refetch (rate-limits key-rotation refetches).
    last_unknown_kid_refetch: Option<Instant>,
    /// When any fetch was last attempted, and its error if it failed.
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// A JWKS endpoint with a cached key set and single-flight, rate-limited refetching.
pub(crate) struct JwksCache {
    url: String,
    bearer: Option<String>,
    http: reqwest::Client,
    refetch_interval: Duration,
    keys: RwLock<Option<Arc<KeySet>>>,
    fetch_state: tokio::sync::Mutex<FetchState>,
    fetch_count: AtomicU64,
}

impl JwksCache {
    /// A cache for `url`; `bearer` is sent as `Authorization: Bearer` (Clerk's Backend API).
    pub(crate) fn new(
        url: String,
        bearer: Option<String>,
        http: reqwest::Client,
        refetch_interval: Duration,
    ) -> JwksCache {
        JwksCache {
            url,
            bearer,
            http,
            refetch_interval,
            keys: RwLock::new(None),
            fetch_state: tokio::sync::Mutex::new(FetchState::default()),
            fetch_count: AtomicU64::new(0),
        }
    }

    /// How many fetches were attempted so far.
    pub(crate) fn fetch_count(&self) -> u64 {
        self.fetch_count.load(Ordering::Relaxed)
    }

    /// Fetches the key set now (used at startup; failures are retried lazily).
    pub(crate) async fn prefetch(&self) -> Result<(), AuthError> {
        let mut state = self.fetch_state.lock().await;
        self.fetch(&mut state).await.map(|_| ())
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        // A poisoned lock still holds a consistent Option<Arc<_>>.
        match self.keys.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, set: Arc<KeySet>) {
        match self.keys.write() {
            Ok(mut guard) => *guard = Some(set),
            Err(poisoned) => *poisoned.into_inner() = Some(set),
        }
    }

    /// The key to verify a token whose header carries `kid`.
    pub(crate) async fn key_for(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError> {
        if let Some(set) = self.snapshot() {
            if let Some(key) = set.find(kid) {
                if set.fetched_at.elapsed() >= MAX_KEY_SET_AGE {
                    self.refresh_stale(kid).await;
                    // Prefer the refreshed set; fall back to the stale key if the kid vanished.
                    return Ok(self.snapshot().and_then(|s| s.find(kid)).unwrap_or(key));
                }
                return Ok(key);
            }
            if kid.is_none() {
                // Refetching cannot make an ambiguous kid-less token resolvable.
                return Err(AuthError::UnknownKey);
            }
        }
        self.slow_path(kid).await
    }

    /// Refreshes an old key set if no other request is already doing so.
    async fn refresh_stale(&self, kid: Option<&str>) {
        let Ok(mut state) = self.fetch_state.try_lock() else {
            return;
        };
        let recently_tried = state
            .last_attempt
            .is_some_and(|t| t.elapsed() < self.refetch_interval.max(EMPTY_SET_RETRY));
        let still_stale = self
            .snapshot()
            .is_some_and(|s| s.fetched_at.elapsed() >= MAX_KEY_SET_AGE);
        if still_stale && !recently_tried {
            if let Err(err) = self.fetch(&mut state).await {
                log::warn!("keeping the cached JWKS (kid {kid:?}): {err}");
            }
        }
    }

    /// Unknown `kid` or nothing cached yet: one fetch at a time, rate-limited.
    async fn slow_path(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, AuthError> {
        let mut state = self.fetch_state.lock().await;
        // Another request may have fetched while this one waited for the lock.
        match self.snapshot() {
            Some(set) => {
                if let Some(key) = set.find(kid) {
                    return Ok(key);
                }
                if kid.is_none() {
                    return Err(AuthError::UnknownKey);
                }
                let allowed = state
                    .last_unknown_kid_refetch
                    .is_none_or(|t| t.elapsed() >= self.refetch_interval);
                if !allowed {
                    return Err(AuthError::UnknownKey);
                }
                state.last_unknown_kid_refetch = Some(Instant::now());
            }
            None => {
                let backoff = self.refetch_interval.min(EMPTY_SET_RETRY);
                if let (Some(at), Some(err)) = (state.last_attempt, &state.last_error) {
                    if at.elapsed() < backoff {
                        return Err(AuthError::KeySetUnavailable(err.clone()));
                    }
                }
            }
        }
        let set = self.fetch(&mut state).await?;
        set.find(kid).ok_or(AuthError::UnknownKey)
    }

    /// Fetches and stores the key set; the caller holds the fetch lock.
    async fn fetch(&self, state: &mut FetchState) -> Result<Arc<KeySet>, AuthError> {
        self.fetch_count.fetch_add(1, Ordering::Relaxed);
        state.last_attempt = Some(Instant::now());
        match self.download().await {
            Ok(set) => {
                let set = Arc::new(set);
                log::info!("fetched JWKS ({} keys)", set.keys.len());
                self.store(set.clone());
                state.last_error = None;
                Ok(set)
            }
            Err(reason) => {
                log::warn!("JWKS fetch from {} failed: {reason}", self.url);
                state.last_error = Some(reason.clone());
                Err(AuthError::KeySetUnavailable(reason))
            }
        }
    }

    async fn download(&self) -> Result<KeySet, String> {
        let mut request = self.http.get(&self.url).timeout(FETCH_TIMEOUT);
        if let Some(secret) = &self.bearer {
            request = request.bearer_auth(secret);
        }
        // without_url: the message may reach clients in a 503 body.
        let response = request
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("key endpoint answered HTTP {}", status.as_u16()));
        }
        let doc: Value = response
            .json()
            .await
            .map_err(|_| "key endpoint returned invalid JSON".to_string())?;
        KeySet::parse(&doc)
    }
}
