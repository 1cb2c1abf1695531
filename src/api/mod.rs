//! REST handlers, one file per resource.

pub mod audit;
pub mod body;
pub mod cells;
pub mod chat;
pub mod client_config;
pub mod environment;
pub mod execution;
pub mod health;
pub mod introspect;
pub mod invites;
pub mod members;
pub mod metrics;
pub mod notebooks;
pub mod packages;
pub mod static_files;
pub mod transfer;

use actix::{Actor, Addr, Handler, Message};
use actix_web::web;

use crate::db::store::StoreError;
use crate::error::ApiError;

/// Registers every REST route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(health::health)
        .service(health::ready)
        .service(metrics::metrics)
        .service(client_config::client_config)
        .service(environment::status)
        .service(environment::retry)
        .service(transfer::import)
        .service(notebooks::create)
        .service(notebooks::list)
        .service(notebooks::get)
        .service(notebooks::rename)
        .service(notebooks::set_db)
        .service(notebooks::delete)
        .service(transfer::export)
        .service(cells::create)
        .service(cells::update)
        .service(cells::delete)
        .service(cells::move_cell)
        .service(execution::run)
        .service(execution::run_all)
        .service(execution::set_lazy)
        .service(execution::interrupt)
        .service(execution::restart)
        .service(packages::install)
        .service(introspect::complete)
        .service(introspect::inspect)
        .service(introspect::variables)
        .service(chat::chat)
        .service(audit::list)
        .service(members::list)
        .service(members::set_role)
        .service(members::remove)
        .service(invites::create)
        .service(invites::list)
        .service(invites::revoke)
        .service(invites::accept)
        .service(invites::link)
        .service(crate::ws::connect);
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotebookNotFound => ApiError::notebook_not_found(),
            StoreError::CellNotFound => ApiError::NotFound("Cell not found".into()),
            StoreError::AfterCellNotFound => ApiError::NotFound("after_cell_id not found".into()),
            StoreError::BeforeCellNotFound => ApiError::NotFound("before_cell_id not found".into()),
            e @ StoreError::Conflict { .. } => ApiError::Conflict(e.to_string()),
            e @ StoreError::NotebookLimit { .. } => ApiError::Conflict(e.to_string()),
            // Nothing was written; the client retries and lands on the new owner.
            e @ StoreError::LeaseLost => ApiError::Unavailable(e.to_string()),
            StoreError::Db(crate::db::DbError::Unavailable(msg)) => {
                log::error!("database unavailable: {msg}");
                ApiError::Unavailable("database unavailable".into())
            }
            StoreError::Db(e) => ApiError::Internal(e.to_string()),
        }
    }
}

/// Sends a message without an error outcome to a room and waits until it is handled.
pub async fn tell<A, M>(room: &Addr<A>, msg: M) -> Result<(), ApiError>
where
    A: Actor<Context = actix::Context<A>> + Handler<M>,
    M: Message<Result = ()> + Send + 'static,
{
    room.send(msg).await.map_err(|_| closing())
}

fn closing() -> ApiError {
    ApiError::Unavailable("the notebook was closing; try again".into())
}

/// Sends a message to a room and waits for its answer (503 if the room stopped meanwhile).
pub async fn ask<A, M, T>(room: &Addr<A>, msg: M) -> Result<T, ApiError>
where
    A: Actor<Context = actix::Context<A>> + Handler<M>,
    M: Message<Result = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    room.send(msg).await.map_err(|_| closing())?
}
