//! The one token verifier: picks the key, checks the signature, then the claims.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::error::AuthError;
use super::keys::{decoding_key_from_pem, JwksCache};
use super::local::{LocalKey, LOCAL_ISSUER, LOCAL_KID};
use crate::config::AuthSettings;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// Longest token accepted; real session tokens are a few KiB at most.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Verified tokens remembered at most.
const CACHE_CAPACITY: usize = 10_000;

/// Whether tokens are minted by this server or by Clerk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// No Clerk settings: the server signs its own tokens.
    Local,
    /// Tokens come from Clerk (PEM key, JWKS URL or Backend API).
    Clerk,
}

/// What a valid token says about its caller.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The `sub` claim.
    pub user_id: String,
    /// The `exp` claim (unix seconds).
    pub expires_at: i64,
    /// A display name from the `name` (or `username`) claim, when the token carries one.
    pub name: Option<String>,
}

enum KeySource {
    /// A single configured key (Clerk PEM or the local key); `kid` must be absent or `expected_kid`.
    Fixed {
        key: Arc<DecodingKey>,
        expected_kid: Option<&'static str>,
    },
    Jwks(JwksCache),
}

/// Verifies bearer tokens; shared by the HTTP extractor and WebSocket sessions.
pub struct Verifier {
    mode: AuthMode,
    source: KeySource,
    local: Option<LocalKey>,
    authorized_parties: Vec<String>,
    issuer: Option<String>,
    cache: TokenCache,
}

impl Verifier {
    /// Builds the verifier from settings; precedence: `jwt_key`, `jwks_url`, `secret_key`, else local mode.
    pub async fn from_settings(
        settings: &AuthSettings,
        data_dir: &Path,
        http: reqwest::Client,
    ) -> Result<Verifier, AuthError> {
        let interval = Duration::from_secs(settings.jwks_refetch_interval_secs);
        let ignored = |what: &str| log::info!("{what} is set but CLERK_JWT_KEY takes precedence");
        let source = if let Some(pem) = &settings.jwt_key {
            if settings.jwks_url.is_some() {
                ignored("CLERK_JWKS_URL");
            }
            if settings.secret_key.is_some() {
                ignored("CLERK_SECRET_KEY");
            }
            KeySource::Fixed {
                key: Arc::new(decoding_key_from_pem(pem)?),
                expected_kid: None,
            }
        } else if let Some(url) = &settings.jwks_url {
            if settings.secret_key.is_some() {
                log::info!("CLERK_SECRET_KEY is set but CLERK_JWKS_URL takes precedence");
            }
            KeySource::Jwks(JwksCache::new(url.clone(), None, http, interval))
        } else if let Some(secret) = &settings.secret_key {
            let api = settings.api_url.trim_end_matches('/');
            if api.is_empty() {
                return Err(AuthError::KeyConfig("CLERK_API_URL is empty".into()));
            }
            let url = format!("{api}/v1/jwks");
            KeySource::Jwks(JwksCache::new(url, Some(secret.clone()), http, interval))
        } else {
            let dir = data_dir.to_path_buf();
            // Key generation takes a noticeable time; keep it off the async workers.
            let local = tokio::task::spawn_blocking(move || LocalKey::load_or_create(&dir))
                .await
                .map_err(|e| AuthError::LocalKey(format!("key task failed: {e}")))??;
            return Ok(Verifier {
                mode: AuthMode::Local,
                source: KeySource::Fixed {
                    key: local.decoding.clone(),
                    expected_kid: Some(LOCAL_KID),
                },
                local: Some(local),
                // Local tokens carry no azp, and only our own issuer is valid.
                authorized_parties: Vec::new(),
                issuer: Some(LOCAL_ISSUER.into()),
                cache: TokenCache::new(CACHE_CAPACITY),
            });
        };
        if let KeySource::Jwks(jwks) = &source {
            // An outage at startup is not fatal: the first request retries.
            if let Err(err) = jwks.prefetch().await {
                log::warn!("initial JWKS fetch failed, will retry on demand: {err}");
            }
        }
        Ok(Verifier {
            mode: AuthMode::Clerk,
            source,
            local: None,
            authorized_parties: settings.authorized_parties.clone(),
            issuer: settings.issuer.clone(),
            cache: TokenCache::new(CACHE_CAPACITY),
        })
    }

    /// Checks `token` (the bare JWT, without `Bearer `) and returns its user.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let result = self.verify_uncached(token).await;
        if let Err(err) = &result {
            crate::metrics::auth_failure(err.reason());
            // Reason only: the token itself is a credential and never logged.
            if err.is_server_side() {
                log::warn!("token verification failed: {err}");
            } else {
                log::info!("token rejected: {err}");
            }
        }
        result
    }

    async fn verify_uncached(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let now = chrono::Utc::now().timestamp();
        let digest = TokenCache::digest(token);
        if let Some(hit) = self.cache.get(&digest, now) {
            return Ok(hit);
        }
        let (alg, kid) = parse_header(token)?;
        let key = match &self.source {
            KeySource::Fixed { key, expected_kid } => {
                if let (Some(kid), Some(expected)) = (kid.as_deref(), expected_kid) {
                    if kid != *expected {
                        return Err(AuthError::UnknownKey);
                    }
                }
                key.clone()
            }
            KeySource::Jwks(jwks) => jwks.key_for(kid.as_deref()).await?,
        };
        // Only the header's (already vetted) RS algorithm: no HS/none/ES with an RSA key.
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        // jsonwebtoken checks the signature before it looks at any claim.
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)?;
        let verified = self.check_claims(&data.claims, now)?;
        self.cache.insert(digest, verified.clone(), now);
        Ok(verified)
    }

    /// The claims jsonwebtoken does not check (or not the way we need).
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<VerifiedToken, AuthError> {
        let leeway = LEEWAY_SECS as i64;
        let number = |name: &str| -> Result<Option<i64>, AuthError> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or(AuthError::Malformed),
            }
        };
        let expires_at = number("exp")?.ok_or(AuthError::MissingClaim("exp"))?;
        // jsonwebtoken ignores an nbf it cannot parse; we refuse it.
        number("nbf")?;
        if number("iat")?.is_some_and(|iat| iat > now + leeway) {
            return Err(AuthError::IssuedInFuture);
        }
        let user_id = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.trim().is_empty() => sub.clone(),
            _ => return Err(AuthError::MissingClaim("sub")),
        };
        if !self.authorized_parties.is_empty() {
            match claims.get("azp") {
                None | Some(Value::Null) => return Err(AuthError::MissingClaim("azp")),
                Some(Value::String(azp)) if self.authorized_parties.iter().any(|p| p == azp) => {}
                Some(_) => return Err(AuthError::AzpNotAuthorized),
            }
        }
        if let Some(issuer) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
                return Err(AuthError::InvalidIssuer);
            }
        }
        if claims.get("sts").and_then(Value::as_str) == Some("pending") {
            return Err(AuthError::SessionPending);
        }
        Ok(VerifiedToken {
            user_id,
            expires_at,
            name: display_name(claims),
        })
    }

    /// Local sign-in or Clerk.
    pub fn mode(&self) -> AuthMode {
        self.mode.clone()
    }

    /// Mints a token for `user` valid `ttl_secs` (local mode only).
    pub fn mint(&self, user: &str, ttl_secs: u64) -> Result<String, AuthError> {
        self.local
            .as_ref()
            .ok_or(AuthError::NotLocalMode)?
            .mint(user, ttl_secs)
    }

    /// JWKS fetches attempted so far (0 without a JWKS source).
    pub fn jwks_fetch_count(&self) -> u64 {
        match &self.source {
            KeySource::Jwks(jwks) => jwks.fetch_count(),
            KeySource::Fixed { .. } => 0,
        }
    }
}

/// Reads `alg` and `kid` from the header, accepting only RS256/RS384/RS512.
fn parse_header(token: &str) -> Result<(Algorithm, Option<String>), AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::Malformed);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed)?;
    let header: Value = serde_json::from_slice(&raw).map_err(|_| AuthError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(AuthError::Malformed)?;
    let alg = match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        other => {
            // Echo short plain names only; the header is attacker-controlled.
            let shown = if !other.is_empty()
                && other.len() <= 16
                && other.chars().all(|c| c.is_ascii_alphanumeric())
            {
                other.to_string()
            } else {
                "(invalid)".to_string()
            };
            return Err(AuthError::UnsupportedAlgorithm(shown));
        }
    };
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed),
    };
    Ok((alg, kid))
}

/// Successful verifications by token digest, each valid until the token's `exp`.
struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], VerifiedToken>>,
    capacity: usize,
}

impl TokenCache {
    fn new(capacity: usize) -> TokenCache {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// SHA-256 of the whole token: collisions would let one token pass as another.
    fn digest(token: &str) -> [u8; 32] {
        let hash = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(hash.as_ref());
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], VerifiedToken>> {
        // The map stays consistent even if a holder panicked.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, digest: &[u8; 32], now: i64) -> Option<VerifiedToken> {
        let mut entries = self.lock();
        match entries.get(digest) {
            Some(hit) if now < hit.expires_at => Some(hit.clone()),
            Some(_) => {
                // Past exp: forget it and let full verification (with leeway) decide.
                entries.remove(digest);
                None
            }
            None => None,
        }
    }

    fn insert(&self, digest: [u8; 32], verified: VerifiedToken, now: i64) {
        if verified.expires_at <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, v| v.expires_at > now);
            if entries.len() >= self.capacity {
                // Crude but bounded: a full cache of live tokens just starts over.
                entries.clear();
            }
        }
        entries.insert(digest, verified);
    }
}

/// Most characters of a display name kept (it is shown to other users of a notebook).
const MAX_NAME_CHARS: usize = 80;

/// The caller's display name from optional claims (Clerk adds them through a session token
/// template); blank values count as absent.
fn display_name(claims: &serde_json::Map<String, Value>) -> Option<String> {
    ["name", "username"].iter().find_map(|key| {
        let name = claims.get(*key)?.as_str()?.trim();
        (!name.is_empty()).then(|| name.chars().take(MAX_NAME_CHARS).collect())
    })
}
