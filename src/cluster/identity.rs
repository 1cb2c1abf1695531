//! The caller's identity as one instance vouches for it to another: a short-lived HS256 token
//! signed with `CLUSTER_SECRET`, sent in [`IDENTITY_HEADER`] on forwarded requests.
//!
//! The forwarding instance has already verified the user's own token, so the owner needs no
//! access to the user's key source (in local sign-in mode each instance has its own key).
//! jsonwebtoken (already used for user tokens) does the signing and the constant-time check.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The header carrying a forwarded caller's identity.
pub const IDENTITY_HEADER: &str = "x-cluster-identity";

/// Who signs identities, so a user token (another issuer) can never pass for one.
const ISSUER: &str = "reactive-notebook-cluster";

/// How long a signed identity stays valid: one forwarded request's trip.
const TTL_SECS: u64 = 60;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    exp: u64,
    /// The display name from the user's token (presence), when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// A user as another instance vouched for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    /// The user id (the token's `sub`).
    pub user_id: String,
    /// Their display name, when their token had one.
    pub name: Option<String>,
}

/// Signs and checks forwarded identities with the shared cluster secret.
pub struct IdentityKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// Why a forwarded identity was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// This instance has no `CLUSTER_SECRET`, so it trusts no peer.
    #[error("forwarded identity refused: CLUSTER_SECRET is not set on this instance")]
    NoSecret,
    /// The proof does not verify (wrong secret, expired, tampered).
    #[error("forwarded identity refused: {0}")]
    Invalid(String),
}

impl IdentityKey {
    /// A key from the shared secret.
    pub fn new(secret: &str) -> IdentityKey {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        IdentityKey {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// A proof that this instance verified `user`.
    pub fn sign(&self, user: &Vouched) -> Result<String, IdentityError> {
        let claims = Claims {
            sub: user.user_id.clone(),
            iss: ISSUER.to_string(),
            exp: jsonwebtoken::get_current_timestamp() + TTL_SECS,
            name: user.name.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| IdentityError::Invalid(e.to_string()))
    }

    /// The user a proof vouches for.
    pub fn verify(&self, proof: &str) -> Result<Vouched, IdentityError> {
        let data = jsonwebtoken::decode::<Claims>(proof, &self.decoding, &self.validation)
            .map_err(|e| IdentityError::Invalid(e.to_string()))?;
        if data.claims.sub.is_empty() {
            return Err(IdentityError::Invalid("empty subject".into()));
        }
        Ok(Vouched {
            user_id: data.claims.sub,
            name: data.claims.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_verifies_only_with_the_same_secret() {
        let key = IdentityKey::new("s3cret");
        let alice = Vouched {
            user_id: "alice".into(),
            name: Some("Alice".into()),
        };
        let proof = key.sign(&alice).expect("signed");
        assert_eq!(key.verify(&proof).expect("verified"), alice);
        assert!(IdentityKey::new("other").verify(&proof).is_err());
        assert!(key.verify("not-a-token").is_err());
    }
}
