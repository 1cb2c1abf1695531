//! Fenced writes: a room's mutation commits only while its instance still holds the notebook's
//! lease at the epoch the room was opened with, checked inside the mutation's own transaction.
//!
//! The check takes a share lock on the lease row, so a takeover (an UPDATE of that row) waits
//! for the write to commit, and the write waits for a takeover in progress, then sees the new
//! owner and is refused. A paused or partitioned old owner can therefore never overwrite what a
//! newer owner wrote.

use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tokio::sync::watch;

use super::schema::notebook_leases;
use super::store::StoreError;

/// The lease a room writes under.
#[derive(Debug, Clone)]
pub struct Fence {
    notebook_id: String,
    instance_id: String,
    epoch: i64,
    /// Set once the lease is known lost; the room watches it to close itself.
    lost: Arc<watch::Sender<bool>>,
}

impl Fence {
    /// A fence for `notebook_id` held by `instance_id` at `epoch`, reporting loss on `lost`.
    pub fn new(
        notebook_id: &str,
        instance_id: &str,
        epoch: i64,
        lost: Arc<watch::Sender<bool>>,
    ) -> Fence {
        Fence {
            notebook_id: notebook_id.to_string(),
            instance_id: instance_id.to_string(),
            epoch,
            lost,
        }
    }

    /// The lease epoch.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Whether the lease is known lost.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Records that the lease is lost (wakes whoever watches it).
    pub fn mark_lost(&self) {
        self.lost.send_replace(true);
    }

    /// A receiver that sees the lease being lost.
    pub fn watch_lost(&self) -> watch::Receiver<bool> {
        self.lost.subscribe()
    }
}

/// The fence check, run first inside a mutation's transaction.
pub(super) trait FenceCheck {
    /// Fails with [`StoreError::LeaseLost`] (and marks the fence lost) unless the lease row
    /// still names this instance and epoch; locks that row until the transaction ends.
    async fn check_fence(&mut self, fence: Option<&Fence>) -> Result<(), StoreError>;
}

impl FenceCheck for diesel_async::AsyncPgConnection {
    async fn check_fence(&mut self, fence: Option<&Fence>) -> Result<(), StoreError> {
        let Some(fence) = fence else {
            return Ok(());
        };
        let held = notebook_leases::table
            .find(&fence.notebook_id)
            .filter(notebook_leases::instance_id.eq(&fence.instance_id))
            .filter(notebook_leases::epoch.eq(fence.epoch))
            .select(notebook_leases::epoch)
            .for_share()
            .first::<i64>(self)
            .await
            .optional()?;
        if held.is_none() {
            log::warn!(
                "write to notebook {} refused: this instance no longer holds its lease at epoch {}",
                fence.notebook_id,
                fence.epoch
            );
            fence.mark_lost();
            return Err(StoreError::LeaseLost);
        }
        Ok(())
    }
}

impl FenceCheck for super::pool::SqliteConn {
    async fn check_fence(&mut self, _fence: Option<&Fence>) -> Result<(), StoreError> {
        // SQLite is single-instance (the file lock refuses a second server): nothing to fence.
        Ok(())
    }
}
