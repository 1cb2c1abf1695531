//! `AuthUser`: the request's caller, from `Authorization: Bearer <JWT>`.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::error::AuthError;
use super::verifier::Verifier;
use crate::cluster::identity::IDENTITY_HEADER;
use crate::cluster::Cluster;
use crate::error::ApiError;

/// The user a forwarded request's identity proof vouches for, or 401.
fn forwarded_user(req: &HttpRequest, proof: &str) -> Result<AuthUser, ApiError> {
    let verified = match req.app_data::<web::Data<Cluster>>() {
        Some(cluster) => cluster.verify_identity(proof),
        None => Err(crate::cluster::identity::IdentityError::NoSecret),
    };
    match verified {
        Ok(vouched) => Ok(AuthUser {
            user_id: vouched.user_id,
        }),
        Err(e) => {
            crate::metrics::auth_failure("cluster_identity");
            log::warn!("request rejected: {e}");
            Err(ApiError::Unauthorized(
                "Invalid cluster identity (CLUSTER_SECRET mismatch?)".into(),
            ))
        }
    }
}

/// The caller of a request, extracted from `Authorization: Bearer <JWT>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// The token's `sub`.
    pub user_id: String,
}

/// The bare token from an `Authorization: Bearer` header (scheme matched case-insensitively).
pub fn bearer_token(req: &HttpRequest) -> Result<&str, AuthError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::MissingHeader)?
        .to_str()
        .map_err(|_| AuthError::Malformed)?
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::BadScheme);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        // A request another instance forwarded carries the user it verified, signed with the
        // cluster secret; it is trusted only with a valid proof, never as a fallback.
        if let Some(proof) = req.headers().get(IDENTITY_HEADER) {
            let user = forwarded_user(req, proof.to_str().unwrap_or_default());
            return Box::pin(async move { user });
        }
        let verifier = req.app_data::<web::Data<Verifier>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let verifier = verifier
                .ok_or_else(|| ApiError::Internal("no Verifier registered as app data".into()))?;
            let token = token.map_err(|err| {
                crate::metrics::auth_failure(err.reason());
                log::info!("request rejected: {err}");
                ApiError::from(err)
            })?;
            let verified = verifier.verify(&token).await?;
            Ok(AuthUser {
                user_id: verified.user_id,
            })
        })
    }
}
