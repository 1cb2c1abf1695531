//! Loads the configured key source once without starting a server, for `reactive-notebook check`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;

use super::keys::{decoding_key_from_pem, JwksCache};
use super::{AuthError, LOCAL_KEY_FILE};
use crate::config::AuthSettings;

/// What the key source turned out to be.
#[derive(Debug)]
pub enum KeyProbe {
    /// A key source was loaded; the text says which.
    Loaded(String),
    /// Local sign-in mode and no key yet: `serve` (or `token`) creates it here.
    LocalKeyMissing(PathBuf),
}

/// Loads the key source with the same precedence as the verifier (PEM, JWKS URL, Backend API,
/// local key), fetching a JWKS once. Writes nothing: a missing local key is reported, not made.
pub async fn probe_key_source(
    settings: &AuthSettings,
    data_dir: &Path,
    http: reqwest::Client,
) -> Result<KeyProbe, AuthError> {
    if let Some(pem) = &settings.jwt_key {
        decoding_key_from_pem(pem)?;
        return Ok(KeyProbe::Loaded(
            "PEM public key (CLERK_JWT_KEY) parsed".into(),
        ));
    }
    let (url, bearer, what) = if let Some(url) = &settings.jwks_url {
        (url.clone(), None, "CLERK_JWKS_URL")
    } else if let Some(secret) = &settings.secret_key {
        let api = settings.api_url.trim_end_matches('/');
        (
            format!("{api}/v1/jwks"),
            Some(secret.clone()),
            "CLERK_SECRET_KEY",
        )
    } else {
        return probe_local(data_dir);
    };
    let cache = JwksCache::new(url.clone(), bearer, http, Duration::from_secs(30));
    cache.prefetch().await?;
    Ok(KeyProbe::Loaded(format!(
        "JWKS fetched from {url} ({what})"
    )))
}

fn probe_local(data_dir: &Path) -> Result<KeyProbe, AuthError> {
    let path = data_dir.join(LOCAL_KEY_FILE);
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(KeyProbe::LocalKeyMissing(path))
        }
        Err(e) => {
            return Err(AuthError::LocalKey(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    RsaPrivateKey::from_pkcs1_pem(&pem)
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(&pem))
        .map_err(|_| {
            AuthError::LocalKey(format!(
                "{} is not an RSA private key (delete it to create a new one)",
                path.display()
            ))
        })?;
    Ok(KeyProbe::Loaded(format!(
        "local sign-in key {} loaded",
        path.display()
    )))
}
