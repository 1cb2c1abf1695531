//! Why a token was rejected (or why tokens cannot be checked at all).

use crate::error::ApiError;

/// An authentication failure; messages say what was wrong and never include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header on the request.
    #[error("missing Authorization header")]
    MissingHeader,
    /// The header uses a scheme other than `Bearer`.
    #[error("Authorization scheme must be Bearer")]
    BadScheme,
    /// The token is not a well-formed JWT.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not RS256, RS384 or RS512.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The signature does not match the key.
    #[error("invalid signature")]
    InvalidSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// A required claim (`sub`, `exp`, `azp`) is absent or empty.
    #[error("missing {0} claim")]
    MissingClaim(&'static str),
    /// `azp` is not one of the authorized parties.
    #[error("azp not authorized")]
    AzpNotAuthorized,
    /// `iss` is not the configured issuer.
    #[error("invalid issuer")]
    InvalidIssuer,
    /// The Clerk session is still pending (`sts: "pending"`).
    #[error("session is pending")]
    SessionPending,
    /// No key in the key set matches the token's `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The JWKS could not be fetched or parsed.
    #[error("key set unavailable: {0}")]
    KeySetUnavailable(String),
    /// The configured public key cannot be used (a startup error).
    #[error("invalid key configuration: {0}")]
    KeyConfig(String),
    /// The local signing key could not be created, read or used.
    #[error("local signing key: {0}")]
    LocalKey(String),
    /// Minting was asked of a verifier that checks third-party (Clerk) tokens.
    #[error("tokens can only be minted in local sign-in mode")]
    NotLocalMode,
}

impl AuthError {
    /// The failure as one word from a fixed set, for the `auth_failures_total` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingHeader => "missing_header",
            AuthError::BadScheme => "bad_scheme",
            AuthError::Malformed => "malformed",
            AuthError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            AuthError::InvalidSignature => "invalid_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "issued_in_future",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::AzpNotAuthorized => "azp_not_authorized",
            AuthError::InvalidIssuer => "invalid_issuer",
            AuthError::SessionPending => "session_pending",
            AuthError::UnknownKey => "unknown_key",
            AuthError::KeySetUnavailable(_) => "key_set_unavailable",
            AuthError::KeyConfig(_) | AuthError::LocalKey(_) | AuthError::NotLocalMode => {
                "server_error"
            }
        }
    }

    /// True when the failure is on our side (key source or setup), not the caller's token.
    pub fn is_server_side(&self) -> bool {
        matches!(
            self,
            AuthError::KeySetUnavailable(_)
                | AuthError::KeyConfig(_)
                | AuthError::LocalKey(_)
                | AuthError::NotLocalMode
        )
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            // An unreachable key source is an outage, not a bad credential.
            AuthError::KeySetUnavailable(_) => ApiError::Unavailable(err.to_string()),
            AuthError::KeyConfig(_) | AuthError::LocalKey(_) | AuthError::NotLocalMode => {
                ApiError::Internal(err.to_string())
            }
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

/// Maps jsonwebtoken's failure kinds onto our messages.
impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(err: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match err.kind() {
            ErrorKind::InvalidSignature | ErrorKind::Crypto(_) | ErrorKind::InvalidRsaKey(_) => {
                AuthError::InvalidSignature
            }
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::InvalidIssuer,
            ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                "exp" => AuthError::MissingClaim("exp"),
                "sub" => AuthError::MissingClaim("sub"),
                "nbf" => AuthError::MissingClaim("nbf"),
                "iss" => AuthError::MissingClaim("iss"),
                _ => AuthError::Malformed,
            },
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                AuthError::UnsupportedAlgorithm("for this key".into())
            }
            _ => AuthError::Malformed,
        }
    }
}
