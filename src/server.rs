//! Builds the application (shared by `main` and the tests) and runs the HTTP server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::ServerHandle;
use actix_web::{middleware, web, App, HttpServer};

use crate::auth::{AuthError, Verifier};
use crate::cluster::Cluster;
use crate::config::DatabaseTarget;
use crate::config::{Config, ConfigError};
use crate::data_dir;
use crate::db::instance_lock::{InstanceLock, InstanceLockError};
use crate::db::store::Store;
use crate::db::{migrate, Db, DbError};
use crate::pyenv::Environment;
use crate::room::RoomRegistry;
use crate::schedule::{Runs, Scheduler};
use crate::sql::host_policy::HostPolicy;

/// State shared by every handler.
pub struct AppState {
    /// The notebook store.
    pub store: Store,
    /// The server's settings.
    pub config: Arc<Config>,
    /// Live notebook rooms.
    pub rooms: RoomRegistry,
    /// The kernels' Python environment.
    pub environment: Environment,
    /// Recorded notebook runs (scheduled, manual, API) going on this instance.
    pub runs: Runs,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database is unreachable or migrations failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The token verifier could not be set up.
    #[error("authentication setup failed: {0}")]
    Auth(#[from] AuthError),
    /// A setting is invalid.
    #[error(transparent)]
    Setting(#[from] ConfigError),
    /// The data directory could not be created or made private.
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another instance serves the same SQLite file.
    #[error(transparent)]
    InstanceLock(#[from] InstanceLockError),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running server.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The token verifier it uses.
    pub verifier: Arc<Verifier>,
    /// Its live notebook rooms.
    pub rooms: RoomRegistry,
    /// Its notebook leases.
    pub cluster: Cluster,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    scheduler: Scheduler,
    /// Released only after the rooms have committed their last writes.
    _instance_lock: Option<InstanceLock>,
}

impl RunningServer {
    /// Graceful shutdown: scheduled runs are killed and recorded as failed, WebSocket
    /// sessions are closed with 1001, pending writes are committed, kernels are stopped,
    /// leases are handed over, then the HTTP server stops.
    pub async fn stop(self) {
        self.scheduler.shutdown().await;
        self.cluster.close_bridges();
        self.rooms.shutdown_all().await;
        self.cluster.release_all().await;
        self.handle.stop(true).await;
        let _ = self.task.await;
    }

    /// Serves until SIGTERM or Ctrl+C, then shuts down gracefully.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => log::info!("SIGTERM received; shutting down"),
            _ = tokio::signal::ctrl_c() => log::info!("interrupt received; shutting down"),
        }
        self.stop().await;
        log::info!("shutdown complete");
        Ok(())
    }
}

/// Connects the store, applies migrations when configured, sets up auth and starts serving.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    // Settings built in code skip `Settings::into_config`; refuse a bad host list here too.
    HostPolicy::from_settings(&config.sql_hosts)?;
    // Before anything (the SQLite file, the signing key) is written into it.
    data_dir::prepare(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    // Before migrations: a second instance must not write to the file at all.
    let instance_lock = match &config.database {
        DatabaseTarget::Sqlite(path) => {
            data_dir::prepare_sqlite(path).map_err(|source| StartError::DataDir {
                path: path.display().to_string(),
                source,
            })?;
            Some(InstanceLock::acquire(path)?)
        }
        DatabaseTarget::Postgres(_) => None,
    };
    if config.migrate_on_start {
        let applied = migrate::run_pending(&config.database).await?;
        for version in &applied {
            log::info!("applied migration {version}");
        }
    }
    let db = Db::connect(&config.database)?;
    log::info!("storage: {}", db.backend_name());
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| AuthError::KeySetUnavailable(e.to_string()))?;
    let verifier = Arc::new(Verifier::from_settings(&config.auth, &config.data_dir, http).await?);
    crate::kernel::sandbox::log_report(&config.kernel_limits);
    crate::metrics::init();
    let config = Arc::new(config);
    // Provisioning runs in the background; the server answers meanwhile.
    let environment = Environment::start(&config);
    let listener = TcpListener::bind(&config.bind).map_err(|source| StartError::Bind {
        addr: config.bind.clone(),
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.bind.clone(),
        source,
    })?;
    let cluster = Cluster::new(&config, db.clone(), format!("http://{addr}"));
    cluster.start_renewals();
    let store = Store::new(db);
    let rooms = RoomRegistry::new(
        store.clone(),
        config.clone(),
        environment.clone(),
        cluster.clone(),
    );
    // Only once nothing can fail before serving, so a failed start leaves no scheduler behind.
    let scheduler = Scheduler::start(
        store.db().clone(),
        config.clone(),
        environment.clone(),
        rooms.kernel_quota().clone(),
    );
    let state = web::Data::new(AppState {
        store,
        config: config.clone(),
        rooms: rooms.clone(),
        environment,
        runs: scheduler.runs(),
    });
    let verifier_data = web::Data::from(verifier.clone());
    let cluster_data = web::Data::new(cluster.clone());
    let origins = config.allowed_origins.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(verifier_data.clone())
            .app_data(cluster_data.clone())
            // Inside CORS and the logger: a forwarded request is answered like a local one.
            .wrap(middleware::from_fn(crate::cluster::forward::forward))
            .wrap(cors(&origins))
            .wrap(middleware::Logger::new("%a \"%r\" %s %b %Dms"))
            // Outermost, so CORS answers and refusals are counted too.
            .wrap(middleware::from_fn(crate::metrics::http::track))
            .configure(crate::cluster::internal::routes)
            .configure(crate::api::routes)
            .default_service(web::to(crate::api::static_files::serve))
    })
    .workers(2)
    // Live updates are many small WebSocket frames: with Nagle's algorithm a frame written
    // right after another waits for the client's delayed ACK (about 40 ms on Linux).
    .tcp_nodelay(true)
    // Signals are handled by `run_until_signal`, which closes sessions and kernels first.
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)
    .map_err(|source| StartError::Bind {
        addr: addr.to_string(),
        source,
    })?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    log::info!("listening on http://{addr}");
    Ok(RunningServer {
        addr,
        verifier,
        rooms,
        cluster,
        handle,
        task,
        scheduler,
        _instance_lock: instance_lock,
    })
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allow_any_method()
        .allow_any_header()
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}
