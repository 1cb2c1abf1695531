//! Local sign-in mode: a server-held RSA key in the data directory signs and verifies tokens.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;
use serde_json::json;

use super::error::AuthError;
use super::keys::rsa_decoding_key;

/// `kid` of locally minted tokens.
pub const LOCAL_KID: &str = "local";
/// `iss` of locally minted tokens (and the only issuer accepted in local mode).
pub const LOCAL_ISSUER: &str = "reactive-notebook-local";
/// File name of the signing key inside the data directory.
pub const LOCAL_KEY_FILE: &str = "local-signing-key.pem";

const KEY_BITS: usize = 2048;

/// The local signing key pair.
pub(crate) struct LocalKey {
    encoding: EncodingKey,
    pub(crate) decoding: Arc<DecodingKey>,
}

impl LocalKey {
    /// Reads `data_dir/local-signing-key.pem`, creating it first if absent. Blocking (may generate a key).
    pub(crate) fn load_or_create(data_dir: &Path) -> Result<LocalKey, AuthError> {
        let path = data_dir.join(LOCAL_KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(pem) => {
                crate::data_dir::tighten_if_present(&path)
                    .map_err(|e| file_error("cannot restrict", &path, e))?;
                LocalKey::from_pem(&pem, &path)
            }
            Err(err) if err.kind() == ErrorKind::NotFound => LocalKey::create(data_dir, &path),
            Err(err) => Err(file_error("cannot read", &path, err)),
        }
    }

    fn from_pem(pem: &str, path: &Path) -> Result<LocalKey, AuthError> {
        let key = RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|_| {
                AuthError::LocalKey(format!(
                    "{} is not an RSA private key (delete it to create a new one)",
                    path.display()
                ))
            })?;
        LocalKey::from_private(&key)
    }

    fn from_private(key: &RsaPrivateKey) -> Result<LocalKey, AuthError> {
        let der = key
            .to_pkcs1_der()
            .map_err(|e| AuthError::LocalKey(format!("cannot encode key: {e}")))?;
        let decoding = rsa_decoding_key(&key.to_public_key()).map_err(AuthError::LocalKey)?;
        Ok(LocalKey {
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            decoding: Arc::new(decoding),
        })
    }

    /// Generates a key and publishes it atomically; if another process wins the race, uses its key.
    fn create(data_dir: &Path, path: &Path) -> Result<LocalKey, AuthError> {
        crate::data_dir::prepare(data_dir).map_err(|e| file_error("cannot create", data_dir, e))?;
        log::info!("creating local signing key {}", path.display());
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS)
            .map_err(|e| AuthError::LocalKey(format!("cannot generate key: {e}")))?;
        let pem = key
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| AuthError::LocalKey(format!("cannot encode key: {e}")))?;
        let tmp = temp_path(data_dir);
        let result = write_private(&tmp, pem.as_bytes()).and_then(|()| {
            // hard_link fails if the target exists, so a concurrently created key is never replaced.
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(false),
                // Filesystems without hard links: rename is still atomic (last writer wins).
                Err(_) => fs::rename(&tmp, path).map(|()| false),
            }
        });
        let _ = fs::remove_file(&tmp);
        match result {
            Ok(true) => LocalKey::from_private(&key),
            // Whatever is on disk now is the key every process must use.
            Ok(false) => {
                let pem =
                    fs::read_to_string(path).map_err(|e| file_error("cannot read", path, e))?;
                LocalKey::from_pem(&pem, path)
            }
            Err(err) => Err(file_error("cannot write", path, err)),
        }
    }

    /// Signs an RS256 token for `user`, valid for `ttl_secs`.
    pub(crate) fn mint(&self, user: &str, ttl_secs: u64) -> Result<String, AuthError> {
        if user.trim().is_empty() {
            return Err(AuthError::MissingClaim("sub"));
        }
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX);
        let claims = json!({
            "sub": user,
            "iss": LOCAL_ISSUER,
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(ttl),
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(LOCAL_KID.into());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| AuthError::LocalKey(format!("cannot sign token: {e}")))
    }
}

/// Mints a local-mode token for `user` with the key in `data_dir` (created if absent); for the CLI.
pub fn mint_local_token(data_dir: &Path, user: &str, ttl_secs: u64) -> Result<String, AuthError> {
    LocalKey::load_or_create(data_dir)?.mint(user, ttl_secs)
}

fn file_error(action: &str, path: &Path, err: std::io::Error) -> AuthError {
    AuthError::LocalKey(format!("{action} {}: {err}", path.display()))
}

fn temp_path(dir: &Path) -> PathBuf {
    // pid + counter + time: unique across processes and threads.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!(
        ".{LOCAL_KEY_FILE}.{}.{n}.{nanos}.tmp",
        std::process::id()
    ))
}

/// Writes a new file readable only by the owner (mode 0600 from creation, never wider).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
