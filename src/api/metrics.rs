//! `GET /metrics`: the Prometheus text exposition, behind `METRICS_TOKEN` when it is set.

use actix_web::{get, web, HttpRequest, HttpResponse};
use subtle::ConstantTimeEq;

use crate::api::openapi::schemas::ErrorBody;
use crate::auth::bearer_token;
use crate::error::ApiError;
use crate::server::AppState;

/// Every metric of this server (see the README's "Metrics").
#[utoipa::path(
    tag = "probes",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "`METRICS_TOKEN` is set and the request does not carry it", body = ErrorBody),
        (status = 500, description = "The metrics could not be rendered", body = ErrorBody)
    )
)]
#[get("/metrics")]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = state.config.metrics_token.as_deref() {
        let offered = bearer_token(&req).ok();
        if !offered.is_some_and(|token| same_secret(token, expected)) {
            crate::metrics::auth_failure("metrics_token");
            return Err(ApiError::Unauthorized(
                "a valid metrics token is required (Authorization: Bearer <METRICS_TOKEN>)".into(),
            ));
        }
    }
    let body = crate::metrics::render()?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(body))
}

/// Compares the SHA-256 digests in constant time, so response timing reveals neither a prefix
/// of the token nor its length.
fn same_secret(offered: &str, expected: &str) -> bool {
    use ring::digest::{digest, SHA256};
    let offered = digest(&SHA256, offered.as_bytes());
    let expected = digest(&SHA256, expected.as_bytes());
    offered.as_ref().ct_eq(expected.as_ref()).into()
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn only_the_exact_token_matches() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
        assert!(!same_secret("s3cret ", "s3cret"));
        assert!(!same_secret("", "s3cret"));
    }
}
