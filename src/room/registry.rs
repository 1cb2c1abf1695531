//! The registry of live rooms: one per open notebook, started on demand.

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Addr};

use super::actor::NotebookRoom;
use super::pool::{KernelPool, PoolConfig};
use super::quota::KernelQuota;
use crate::cluster::{Cluster, Ownership};
use crate::collab::members;
use crate::collab::roles::{self, Role};
use crate::config::Config;
use crate::db::fence::Fence;
use crate::db::store::Store;
use crate::db::store::StoreError;
use crate::error::ApiError;
use crate::pyenv::Environment;

struct Entry {
    owner: String,
    addr: Addr<NotebookRoom>,
    /// The lease the room writes under (None when the cluster is disabled).
    fence: Option<Fence>,
}

impl Entry {
    /// Whether the room still serves: running, and its lease not lost.
    fn serving(&self) -> bool {
        self.addr.connected() && !self.fence.as_ref().is_some_and(Fence::is_lost)
    }
}

/// Finds or starts the room of a notebook.
#[derive(Clone)]
pub struct RoomRegistry {
    rooms: Arc<tokio::sync::Mutex<HashMap<String, Entry>>>,
    store: Store,
    config: Arc<Config>,
    quota: KernelQuota,
    environment: Environment,
    /// Notebooks to run once when their room first opens (a new user's demo).
    autorun: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Spare kernels for new notebooks, when `KERNEL_POOL` > 0 and kernels get a mount view.
    pool: Option<Addr<KernelPool>>,
    /// Notebook leases: a room opens only on the instance owning its notebook.
    cluster: Cluster,
    /// Set by a graceful shutdown: no room opens any more (its lease would outlive the server).
    closing: Arc<std::sync::atomic::AtomicBool>,
}

impl RoomRegistry {
    /// An empty registry.
    pub fn new(
        store: Store,
        config: Arc<Config>,
        environment: Environment,
        cluster: Cluster,
    ) -> RoomRegistry {
        let quota = KernelQuota::new(config.quotas.kernels_per_user, config.quotas.max_kernels);
        let pool = start_pool(&config, &environment, &quota);
        RoomRegistry {
            rooms: Arc::default(),
            store,
            config,
            quota,
            environment,
            autorun: Arc::default(),
            pool,
            cluster,
            closing: Arc::default(),
        }
    }

    /// The cluster this instance belongs to.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The spare-kernel pool, if there is one.
    pub fn kernel_pool(&self) -> Option<Addr<KernelPool>> {
        self.pool.clone()
    }

    /// Runs the notebook's first cell (and so everything downstream) when its room first
    /// opens on this server, so the demo shows its outputs without anyone pressing run.
    pub fn run_on_first_open(&self, notebook_id: &str) {
        if let Ok(mut pending) = self.autorun.lock() {
            pending.insert(notebook_id.to_string());
        }
    }

    /// The kernels' Python environment.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// The kernel quota ledger shared by every room.
    pub fn kernel_quota(&self) -> &KernelQuota {
        &self.quota
    }

    /// The room of `notebook_id` if `user` holds at least the role it `needs` there: a
    /// non-member gets 404 (same as a missing notebook), a member lacking the right 403.
    pub async fn open(
        &self,
        user: &str,
        notebook_id: &str,
        needs: Role,
    ) -> Result<Addr<NotebookRoom>, ApiError> {
        Ok(self.open_as(user, notebook_id, needs).await?.0)
    }

    /// [`RoomRegistry::open`], also answering the caller's role.
    pub async fn open_as(
        &self,
        user: &str,
        notebook_id: &str,
        needs: Role,
    ) -> Result<(Addr<NotebookRoom>, Role), ApiError> {
        let (owner, role) = members::access(self.store.db(), user, notebook_id)
            .await
            .map_err(StoreError::Db)?
            .ok_or_else(ApiError::notebook_not_found)?;
        let role = roles::require(role, needs)?;
        Ok((self.open_room(&owner, notebook_id).await?, role))
    }

    /// The live room of a notebook, if it is open on this server.
    pub async fn live(&self, notebook_id: &str) -> Option<Addr<NotebookRoom>> {
        let rooms = self.rooms.lock().await;
        rooms
            .get(notebook_id)
            .filter(|entry| entry.serving())
            .map(|entry| entry.addr.clone())
    }

    /// The room of `notebook_id`, owned by `owner`, started if needed: only on the instance
    /// holding the notebook's lease (taken here when free), with its writes fenced by it.
    async fn open_room(
        &self,
        owner: &str,
        notebook_id: &str,
    ) -> Result<Addr<NotebookRoom>, ApiError> {
        let mut rooms = self.rooms.lock().await;
        if let Some(entry) = rooms.get(notebook_id) {
            if entry.serving() {
                if entry.owner != owner {
                    return Err(ApiError::notebook_not_found());
                }
                return Ok(entry.addr.clone());
            }
            // Stopped, or its lease was lost (the room closes itself): never serve it again.
            rooms.remove(notebook_id);
        }
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ApiError::Unavailable(
                "This server instance is shutting down; try again".into(),
            ));
        }
        let fence = match self.cluster.acquire(notebook_id).await? {
            Ownership::Local(fence) => fence,
            Ownership::Remote(holder) => {
                log::info!(
                    "notebook {notebook_id} is owned by instance {} ({}); not opened here",
                    holder.instance_id,
                    holder.url
                );
                return Err(ApiError::Unavailable(OWNED_ELSEWHERE.into()));
            }
        };
        let store = match &fence {
            Some(fence) => self.store.fenced(fence.clone()),
            None => self.store.clone(),
        };
        let loaded = load(&store, owner, notebook_id).await;
        let (notebook, cells, packages, lazy) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                if let Some(fence) = &fence {
                    self.cluster.release(notebook_id, fence.epoch()).await;
                }
                return Err(e.into());
            }
        };
        let room = NotebookRoom::new(
            notebook,
            &cells,
            packages,
            lazy,
            store,
            self.clone(),
            &self.config,
        );
        let addr = room.start();
        log::info!("room opened for notebook {notebook_id}");
        let autorun = self
            .autorun
            .lock()
            .map(|mut pending| pending.remove(notebook_id))
            .unwrap_or(false);
        if let (true, Some(first)) = (autorun, cells.first()) {
            addr.do_send(super::messages::RunCell {
                cell_id: first.id.clone(),
            });
        }
        rooms.insert(
            notebook_id.to_string(),
            Entry {
                owner: owner.to_string(),
                addr: addr.clone(),
                fence,
            },
        );
        Ok(addr)
    }

    /// Forgets a stopped room (only if it is still the registered one).
    /// Its lease is let go, so any instance can open the notebook at once.
    pub async fn remove(&self, notebook_id: &str, addr: &Addr<NotebookRoom>) {
        let removed = {
            let mut rooms = self.rooms.lock().await;
            if rooms
                .get(notebook_id)
                .is_some_and(|entry| &entry.addr == addr)
            {
                rooms.remove(notebook_id)
            } else {
                None
            }
        };
        if let Some(fence) = removed.and_then(|entry| entry.fence) {
            self.cluster.release(notebook_id, fence.epoch()).await;
        }
    }

    /// Number of live rooms.
    pub async fn len(&self) -> usize {
        self.rooms.lock().await.len()
    }

    /// Whether no room is live.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }

    /// Addresses of every live room (for shutdown).
    pub async fn all(&self) -> Vec<Addr<NotebookRoom>> {
        self.rooms
            .lock()
            .await
            .values()
            .map(|e| e.addr.clone())
            .collect()
    }
}

impl RoomRegistry {
    /// Shuts every room down: sessions closed with 1001, pending writes flushed, kernels stopped.
    pub async fn shutdown_all(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let rooms = self.all().await;
        let waits = rooms
            .iter()
            .map(|room| room.send(super::messages::Shutdown));
        futures_util::future::join_all(waits).await;
    }
}

/// Why a room is not opened here (short enough for a WebSocket close reason).
pub const OWNED_ELSEWHERE: &str = "This notebook is open on another server instance; try again";

/// A notebook's row, cells, packages and mode, as a room opens with them.
async fn load(
    store: &Store,
    owner: &str,
    notebook_id: &str,
) -> Result<
    (
        crate::db::models::NotebookRow,
        Vec<crate::db::models::CellRow>,
        Vec<crate::db::models::PackageRow>,
        bool,
    ),
    StoreError,
> {
    let (notebook, cells) = store.get_notebook(owner, notebook_id).await?;
    let packages = store.list_packages(notebook_id).await?;
    let lazy = store.notebook_lazy(notebook_id).await?;
    Ok((notebook, cells, packages, lazy))
}

/// Starts the spare-kernel pool. A spare is handed to a notebook by renaming its folders,
/// which only a kernel inside its own mount view keeps seeing; without one there is no pool.
fn start_pool(
    config: &Config,
    environment: &Environment,
    quota: &KernelQuota,
) -> Option<Addr<KernelPool>> {
    if config.kernel_pool == 0 {
        return None;
    }
    let report = crate::kernel::sandbox::report(&config.kernel_limits);
    if !report.active.iter().any(|layer| layer == "mount-view") {
        log::warn!("KERNEL_POOL ignored: kernels get no mount view on this host (sandbox off or no namespaces)");
        return None;
    }
    let pool = PoolConfig {
        size: config.kernel_pool,
        data_dir: config.data_dir.clone(),
        environment: environment.clone(),
        memory_mb: config.kernel_memory_mb,
        limits: config.kernel_limits.clone(),
    };
    Some(KernelPool::start(pool, quota.clone()))
}
