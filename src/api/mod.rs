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
pub mod openapi;
pub mod packages;
pub mod runs;
pub mod schedules;
pub mod static_files;
pub mod transfer;

use actix::{Actor, Addr, Handler, Message};
use actix_web::web;

use crate::db::store::StoreError;
use crate::error::ApiError;
use crate::ws;

/// The route table: every REST route, once. From it [`routes`] registers the handlers and
/// [`RoutePaths`] documents them (each handler's `#[utoipa::path]` annotation), so a route
/// cannot be served without being documented. To add a route: write the handler with its
/// actix attribute (`#[get("/api/...")]`) and a `#[utoipa::path(...)]` above it, then add
/// `module::handler` on one line below, in the order actix should try it.
macro_rules! route_table {
    ($($module:ident :: $handler:ident),* $(,)?) => {
        /// Registers every REST route.
        pub fn routes(cfg: &mut web::ServiceConfig) {
            $(cfg.service($module::$handler);)*
        }

        /// The paths of the OpenAPI document: one operation per route of the table.
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($module::$handler),*))]
        pub struct RoutePaths;

        /// The table's handlers (`module::handler`), in registration order.
        pub const ROUTE_HANDLERS: &[&str] =
            &[$(concat!(stringify!($module), "::", stringify!($handler))),*];
    };
}

route_table! {
    openapi::openapi_json,
    openapi::docs,
    health::health,
    health::ready,
    metrics::metrics,
    client_config::client_config,
    environment::status,
    environment::retry,
    transfer::import,
    notebooks::create,
    notebooks::list,
    notebooks::get,
    notebooks::rename,
    notebooks::set_db,
    notebooks::delete,
    transfer::export,
    cells::create,
    cells::update,
    cells::delete,
    cells::move_cell,
    execution::run,
    execution::run_all,
    execution::set_lazy,
    execution::interrupt,
    execution::restart,
    packages::install,
    introspect::complete,
    introspect::inspect,
    introspect::variables,
    chat::chat,
    audit::list,
    members::list,
    members::set_role,
    members::remove,
    invites::create,
    invites::list,
    invites::revoke,
    invites::accept,
    invites::link,
    schedules::create,
    schedules::list,
    schedules::remove,
    runs::list,
    runs::get,
    runs::start,
    ws::connect,
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
