//! Forwarding: a REST request for a notebook another live instance owns is proxied to that
//! instance, so any load balancer works without sticky sessions.
//!
//! The caller's token is verified here; the owner receives the verified user id signed with
//! `CLUSTER_SECRET` ([`super::identity`]) instead of the token. A forwarded request is never
//! forwarded again: if ownership moved meanwhile, the receiving instance answers 503 and the
//! client retries.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};
use futures_util::StreamExt;

use super::identity::{Vouched, IDENTITY_HEADER};
use super::{Cluster, Holder};
use crate::auth::{bearer_token, Verifier};
use crate::error::ApiError;

/// Largest request body forwarded (imports, the biggest bodies, do not name a notebook).
const MAX_FORWARDED_BODY: usize = 64 * 1024 * 1024;

/// How long the owner may take to start answering (a frozen owner must not hold requests
/// forever; the body, such as the assistant's event stream, may then take as long as it takes).
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Request headers never passed on: hop-by-hop ones, the host, and credentials (the owner
/// gets the signed identity instead).
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "proxy-authorization",
    IDENTITY_HEADER,
];

/// Response headers never passed back (hop-by-hop; the length is set again here).
const DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "trailer",
    "upgrade",
];

/// The notebook a REST path is about, for the routes served by the notebook's room.
/// WebSockets are not forwarded here: their session bridges to the owner itself.
pub fn notebook_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/api/notebooks/")
        .or_else(|| path.strip_prefix("/api/chat/"))?;
    let id = rest.split('/').next().unwrap_or_default();
    // `/api/notebooks/import` creates a notebook; it names none.
    (!id.is_empty() && id != "import").then_some(id)
}

/// The middleware: forwards requests for notebooks owned by another live instance.
pub async fn forward(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(target) = forward_target(&req).await else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let (cluster, holder, notebook_id) = target;
    // The caller is verified here; a request without valid credentials is answered locally,
    // exactly as it would be on the owner (401).
    let Some(user) = verified_user(&req).await else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let proof = match cluster.sign_identity(&user) {
        Ok(proof) => proof,
        Err(e) => {
            log::error!(
                "notebook {notebook_id} is owned by instance {} ({}) but this request cannot be \
                 forwarded: {e}; set the same CLUSTER_SECRET on every instance",
                holder.instance_id,
                holder.url
            );
            let refused = ApiError::Unavailable(
                "This notebook is open on another server instance and forwarding is not \
                 configured (CLUSTER_SECRET is not set)"
                    .into(),
            );
            return Ok(req.error_response(refused));
        }
    };
    let (http_req, payload) = req.into_parts();
    let response = match proxy(&cluster, &holder, &http_req, payload, &proof).await {
        Ok(response) => response,
        Err(e) => actix_web::ResponseError::error_response(&e),
    };
    Ok(ServiceResponse::new(http_req, response))
}

/// The cluster and owner to forward `req` to, when it names a notebook another live
/// instance owns and was not itself forwarded.
async fn forward_target(req: &ServiceRequest) -> Option<(Cluster, Holder, String)> {
    let cluster = req.app_data::<web::Data<Cluster>>()?.get_ref().clone();
    if !cluster.enabled() || req.headers().contains_key(IDENTITY_HEADER) {
        return None;
    }
    let notebook_id = notebook_of(req.path())?.to_string();
    match cluster.remote_owner(&notebook_id).await {
        Ok(Some(holder)) => Some((cluster, holder, notebook_id)),
        Ok(None) => None,
        Err(e) => {
            // Served locally, where the same failure gets its usual answer.
            log::warn!("looking up the owner of notebook {notebook_id} failed: {e}");
            None
        }
    }
}

/// The user the request's bearer token names, if it verifies.
async fn verified_user(req: &ServiceRequest) -> Option<Vouched> {
    let verifier = req.app_data::<web::Data<Verifier>>()?.clone();
    let token = bearer_token(req.request()).ok()?.to_string();
    let verified = verifier.verify(&token).await.ok()?;
    Some(Vouched {
        user_id: verified.user_id,
        name: verified.name,
    })
}

/// Sends the request to the owner and streams its answer back.
async fn proxy(
    cluster: &Cluster,
    holder: &Holder,
    req: &actix_web::HttpRequest,
    mut payload: actix_web::dev::Payload,
    proof: &str,
) -> Result<HttpResponse, ApiError> {
    let http = cluster
        .http()
        .ok_or_else(|| ApiError::Internal("forwarding without a cluster".into()))?;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("request body: {e}")))?;
        if body.len() + chunk.len() > MAX_FORWARDED_BODY {
            return Err(ApiError::PayloadTooLarge(format!(
                "request body is larger than {MAX_FORWARDED_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", holder.url.trim_end_matches('/'));
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::BadRequest("unsupported method".into()))?;
    let mut out = http.request(method, &url).header(IDENTITY_HEADER, proof);
    for (name, value) in req.headers() {
        if !DROPPED_REQUEST_HEADERS.contains(&name.as_str()) {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let started = std::time::Instant::now();
    let unreachable = || {
        ApiError::Unavailable(
            "The server instance that has this notebook open is unreachable; try again shortly"
                .into(),
        )
    };
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, out.body(body).send())
        .await
        .map_err(|_| {
            log::warn!(
                "forwarding {} {path} to {}: no answer within {ANSWER_TIMEOUT:?}",
                req.method(),
                holder.url
            );
            unreachable()
        })?
        .map_err(|e| {
            log::warn!(
                "forwarding {} {path} to {} failed: {e}",
                req.method(),
                holder.url
            );
            unreachable()
        })?;
    log::debug!(
        "forwarded {} {path} to {} ({} in {:?})",
        req.method(),
        holder.url,
        answer.status(),
        started.elapsed()
    );
    let status = StatusCode::from_u16(answer.status().as_u16())
        .map_err(|e| ApiError::Internal(format!("owner answered a bad status: {e}")))?;
    let mut response = HttpResponse::build(status);
    for (name, value) in answer.headers() {
        if DROPPED_RESPONSE_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_str().as_bytes()),
            header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.append_header((name, value));
        }
    }
    // Streamed chunk by chunk, so a forwarded chat's events arrive as the owner sends them.
    let chunks = futures_util::stream::unfold(Some(answer), |answer| async move {
        let mut answer = answer?;
        match answer.chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(answer))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(response.streaming(chunks))
}

#[cfg(test)]
mod tests {
    use super::notebook_of;

    #[test]
    fn only_notebook_routes_name_a_notebook() {
        assert_eq!(notebook_of("/api/notebooks/abc"), Some("abc"));
        assert_eq!(notebook_of("/api/notebooks/abc/cells/x/run"), Some("abc"));
        assert_eq!(notebook_of("/api/chat/abc"), Some("abc"));
        assert_eq!(notebook_of("/api/notebooks/import"), None);
        assert_eq!(notebook_of("/api/notebooks"), None);
        assert_eq!(notebook_of("/api/notebooks/"), None);
        assert_eq!(notebook_of("/api/ws/notebooks/abc"), None);
    }
}
