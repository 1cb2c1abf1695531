//! Several instances on one PostgreSQL: each open notebook has one owning instance, named by
//! a lease row with an epoch; requests that land elsewhere are forwarded to it, and every write
//! a room makes is fenced by the lease (see [`crate::db::fence`]).
//!
//! On SQLite the cluster is disabled: one instance serves the file (the instance lock), owns
//! every notebook, and nothing is fenced or forwarded.

pub mod bridge;
pub mod forward;
pub mod identity;
pub mod internal;
pub mod lease;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, DatabaseTarget};
use crate::db::fence::Fence;
use crate::db::store::StoreError;
use crate::db::{Db, DbConn, DbError};
use identity::{IdentityError, IdentityKey, Vouched};
pub use lease::Holder;

/// Where a notebook's room lives.
pub enum Ownership {
    /// Here; its writes are fenced by this lease (None when the cluster is disabled).
    Local(Option<Fence>),
    /// On another live instance.
    Remote(Holder),
}

/// A lease this instance holds.
struct Held {
    epoch: i64,
    lost: Arc<watch::Sender<bool>>,
}

struct Inner {
    me: Holder,
    lease_secs: u64,
    identity: Option<IdentityKey>,
    db: Db,
    held: Mutex<HashMap<String, Held>>,
    http: reqwest::Client,
}

/// This instance's view of the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Option<Arc<Inner>>,
    /// Set when the server starts stopping: bridged tabs are closed with 1001.
    stopping: Arc<watch::Sender<bool>>,
}

impl Cluster {
    /// The cluster of a server on `db`, reachable at `url`; disabled on SQLite.
    pub fn new(config: &Config, db: Db, url: String) -> Cluster {
        if !matches!(config.database, DatabaseTarget::Postgres(_)) {
            return Cluster::disabled();
        }
        let settings = &config.cluster;
        let me = Holder {
            instance_id: uuid::Uuid::new_v4().to_string(),
            url: settings.instance_url.clone().unwrap_or(url),
        };
        log::info!(
            "cluster: instance {} reachable at {}, leases of {} s{}",
            me.instance_id,
            me.url,
            settings.lease_secs,
            if settings.secret.is_some() {
                ""
            } else {
                " (no CLUSTER_SECRET: requests for notebooks owned elsewhere are refused)"
            }
        );
        // No overall timeout: a forwarded chat streams for as long as the answer takes.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Cluster {
            stopping: Arc::new(watch::channel(false).0),
            inner: Some(Arc::new(Inner {
                me,
                lease_secs: settings.lease_secs.max(1),
                identity: settings.secret.as_deref().map(IdentityKey::new),
                db,
                held: Mutex::default(),
                http,
            })),
        }
    }

    /// A cluster of one (SQLite, or code that needs no leases).
    pub fn disabled() -> Cluster {
        Cluster {
            inner: None,
            stopping: Arc::new(watch::channel(false).0),
        }
    }

    /// Closes every bridged tab of this instance (1001), as a graceful stop does to local ones.
    pub fn close_bridges(&self) {
        self.stopping.send_replace(true);
    }

    /// What a bridge watches to learn that this instance is stopping.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Whether leases are in use.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// This instance's id and address (None when disabled).
    pub fn me(&self) -> Option<&Holder> {
        self.inner.as_ref().map(|inner| &inner.me)
    }

    /// Makes this instance the owner of `notebook_id` if no other live instance is.
    pub async fn acquire(&self, notebook_id: &str) -> Result<Ownership, StoreError> {
        let Some(inner) = &self.inner else {
            return Ok(Ownership::Local(None));
        };
        if let Some(fence) = inner.held_fence(notebook_id) {
            return Ok(Ownership::Local(Some(fence)));
        }
        let mut conn = inner.db.get().await?;
        let DbConn::Pg(c) = &mut conn else {
            return Ok(Ownership::Local(None));
        };
        let taken = lease::acquire(c, notebook_id, &inner.me, inner.lease_secs)
            .await
            .map_err(DbError::Query)?;
        if let Some(epoch) = taken {
            log::info!("lease of notebook {notebook_id} taken at epoch {epoch}");
            let lost = Arc::new(watch::channel(false).0);
            let fence = Fence::new(notebook_id, &inner.me.instance_id, epoch, lost.clone());
            inner.lock_held().insert(
                notebook_id.to_string(),
                Held {
                    epoch,
                    lost: lost.clone(),
                },
            );
            return Ok(Ownership::Local(Some(fence)));
        }
        match lease::holder(c, notebook_id)
            .await
            .map_err(DbError::Query)?
        {
            Some(holder) => Ok(Ownership::Remote(holder)),
            // It expired in between: the caller's retry takes it.
            None => Err(StoreError::LeaseLost),
        }
    }

    /// The live instance other than this one that owns `notebook_id`, if there is one.
    pub async fn remote_owner(&self, notebook_id: &str) -> Result<Option<Holder>, StoreError> {
        let Some(inner) = &self.inner else {
            return Ok(None);
        };
        if inner.held_fence(notebook_id).is_some() {
            return Ok(None);
        }
        let mut conn = inner.db.get().await?;
        let DbConn::Pg(c) = &mut conn else {
            return Ok(None);
        };
        let holder = lease::holder(c, notebook_id)
            .await
            .map_err(DbError::Query)?;
        Ok(holder.filter(|h| h.instance_id != inner.me.instance_id))
    }

    /// Lets go of the lease of a room that stopped (only the epoch it held).
    pub async fn release(&self, notebook_id: &str, epoch: i64) {
        let Some(inner) = &self.inner else {
            return;
        };
        {
            let mut held = inner.lock_held();
            if held.get(notebook_id).is_some_and(|h| h.epoch == epoch) {
                held.remove(notebook_id);
            }
        }
        let released = match inner.db.get().await {
            Ok(DbConn::Pg(mut c)) => {
                lease::release(&mut c, &inner.me.instance_id, notebook_id, epoch)
                    .await
                    .map_err(|e| e.to_string())
            }
            Ok(DbConn::Sqlite(_)) => Ok(0),
            Err(e) => Err(e.to_string()),
        };
        match released {
            Ok(_) => log::info!("lease of notebook {notebook_id} released (epoch {epoch})"),
            Err(e) => log::warn!(
                "releasing the lease of {notebook_id} failed (it expires by itself): {e}"
            ),
        }
    }

    /// Expires every lease this instance holds, so other instances take the notebooks at once
    /// (graceful shutdown, after the rooms committed their last writes).
    pub async fn release_all(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let leases: Vec<Held> = inner.lock_held().drain().map(|(_, held)| held).collect();
        for held in &leases {
            held.lost.send_replace(true);
        }
        match inner.db.get().await {
            Ok(DbConn::Pg(mut c)) => {
                match lease::release_all(&mut c, &inner.me.instance_id).await {
                    Ok(n) => log::info!("handed over {n} notebook lease(s)"),
                    Err(e) => {
                        log::warn!("handing over leases failed (they expire by themselves): {e}")
                    }
                }
            }
            Ok(DbConn::Sqlite(_)) => {}
            Err(e) => log::warn!("handing over leases failed (they expire by themselves): {e}"),
        }
    }

    /// Renews every held lease in one query a few times per lease period, off the request
    /// path; a lease found taken over is marked lost, which closes its room.
    pub fn start_renewals(&self) {
        let Some(inner) = &self.inner else {
            return;
        };
        let weak = Arc::downgrade(inner);
        tokio::spawn(renew_loop(weak, self.renew_every()));
    }

    /// How often leases are renewed (and bridges check their owner still holds one).
    pub fn renew_every(&self) -> Duration {
        let lease_secs = self.inner.as_ref().map_or(10, |inner| inner.lease_secs);
        Duration::from_millis(lease_secs * 1000 / 3).max(Duration::from_millis(300))
    }

    /// Signs `user` for a forwarded request (an error without `CLUSTER_SECRET`).
    pub fn sign_identity(&self, user: &Vouched) -> Result<String, IdentityError> {
        self.identity_key()?.sign(user)
    }

    /// The user a forwarded request's identity proof vouches for.
    pub fn verify_identity(&self, proof: &str) -> Result<Vouched, IdentityError> {
        self.identity_key()?.verify(proof)
    }

    fn identity_key(&self) -> Result<&IdentityKey, IdentityError> {
        self.inner
            .as_ref()
            .and_then(|inner| inner.identity.as_ref())
            .ok_or(IdentityError::NoSecret)
    }

    /// The HTTP client forwarded requests go out with (None when disabled).
    pub(crate) fn http(&self) -> Option<&reqwest::Client> {
        self.inner.as_ref().map(|inner| &inner.http)
    }
}

impl Inner {
    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The fence of a lease held and not known lost.
    fn held_fence(&self, notebook_id: &str) -> Option<Fence> {
        let held = self.lock_held();
        let entry = held.get(notebook_id)?;
        if *entry.lost.borrow() {
            return None;
        }
        Some(Fence::new(
            notebook_id,
            &self.me.instance_id,
            entry.epoch,
            entry.lost.clone(),
        ))
    }

    /// One renewal: extends every held lease; marks the ones taken over lost. A failed renewal
    /// changes nothing: the rooms' writes are fenced anyway, and the next renewal that reaches
    /// the database tells which leases were taken meanwhile (a database outage on a single
    /// instance thus costs no kernel).
    async fn renew_once(&self) {
        let held: Vec<(String, i64)> = self
            .lock_held()
            .iter()
            .map(|(id, h)| (id.clone(), h.epoch))
            .collect();
        if held.is_empty() {
            return;
        }
        let ids: Vec<String> = held.iter().map(|(id, _)| id.clone()).collect();
        let renewed = match self.db.get().await {
            Ok(DbConn::Pg(mut c)) => {
                lease::renew(&mut c, &self.me.instance_id, &ids, self.lease_secs)
                    .await
                    .map_err(|e| e.to_string())
            }
            Ok(DbConn::Sqlite(_)) => return,
            Err(e) => Err(e.to_string()),
        };
        let lost: Vec<(String, i64)> = match renewed {
            Ok(rows) => held
                .into_iter()
                .filter(|pair| !rows.contains(pair))
                .collect(),
            Err(e) => {
                log::warn!("renewing {} notebook lease(s) failed: {e}", ids.len());
                return;
            }
        };
        let mut map = self.lock_held();
        for (id, epoch) in lost {
            if map.get(&id).is_some_and(|h| h.epoch == epoch) {
                if let Some(h) = map.remove(&id) {
                    log::warn!("lease of notebook {id} (epoch {epoch}) lost; closing its room");
                    h.lost.send_replace(true);
                }
            }
        }
    }
}

async fn renew_loop(inner: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The server stopped: nothing left to renew.
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.renew_once().await;
    }
}
