//! Endpoints only other instances call, under `/internal/cluster/`. Each answers 401 unless
//! the request carries an identity signed with `CLUSTER_SECRET` (and always without one set).

use actix_web::{get, web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use super::identity::IDENTITY_HEADER;
use super::Cluster;
use crate::auth::Verifier;
use crate::error::ApiError;
use crate::server::AppState;
use crate::ws::session::WsSession;

/// Registers the internal endpoints.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(socket);
}

/// `GET /internal/cluster/ws/notebooks/{id}`: a bridged tab's socket on the owner, already
/// authenticated as the user the bridging instance verified.
#[get("/internal/cluster/ws/notebooks/{id}")]
async fn socket(
    req: HttpRequest,
    stream: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
    verifier: web::Data<Verifier>,
    cluster: web::Data<Cluster>,
) -> Result<HttpResponse, actix_web::Error> {
    let proof = req
        .headers()
        .get(IDENTITY_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let user = cluster.verify_identity(proof).map_err(|e| {
        crate::metrics::auth_failure("cluster_identity");
        log::warn!("internal socket refused: {e}");
        ApiError::Unauthorized("A valid cluster identity is required".into())
    })?;
    let session = WsSession::new(
        path.into_inner(),
        verifier.into_inner(),
        state.rooms.clone(),
        &state.config,
    )
    .relayed_for(user);
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(crate::ws::MAX_MESSAGE_BYTES)
        .start()
}
