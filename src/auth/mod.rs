//! Authentication: one token verifier (Clerk or local sign-in) and the `AuthUser` extractor.

mod error;
mod extractor;
mod keys;
mod local;
mod probe;
mod verifier;

pub use error::AuthError;
pub use extractor::{bearer_token, AuthUser};
pub use local::{mint_local_token, LOCAL_ISSUER, LOCAL_KEY_FILE, LOCAL_KID};
pub use probe::{probe_key_source, KeyProbe};
pub use verifier::{AuthMode, VerifiedToken, Verifier, LEEWAY_SECS};
