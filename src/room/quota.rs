//! The kernel quota ledger: live kernels per user and per server, shared by every room.
//!
//! A room takes a slot before its executor may start a kernel; the notebook's owner is the
//! user charged. At a limit the least recently used idle kernel is stopped to make room (the
//! user's own at `KERNELS_PER_USER`, anyone's at `MAX_KERNELS`); when every candidate is busy
//! the run is refused. Admission happens under one lock, so two concurrent runs can never
//! both take the last slot.
//!
//! A slot freed by stopping a kernel is handed over at once (so nobody else can take it), but
//! the new kernel may only start once the stopped one has exited: the new slot "waits for" the
//! old one. The number of kernel processes therefore never exceeds a limit, not even briefly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use actix::Recipient;
use tokio::sync::Notify;

use super::messages::StopKernelForQuota;
use crate::error::ApiError;

/// Why a run could not get a kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The owner holds `KERNELS_PER_USER` kernels and all of them are busy.
    #[error(
        "Kernel limit reached: this user already has {limit} live kernels (KERNELS_PER_USER={limit}) \
         and all of them are busy; wait for a run to finish or interrupt one"
    )]
    UserLimit {
        /// The per-user limit.
        limit: usize,
    },
    /// The server holds `MAX_KERNELS` kernels and all of them are busy.
    #[error(
        "The server is at its kernel limit (MAX_KERNELS={limit}) and all of its kernels are busy; \
         try again when a run finishes"
    )]
    ServerLimit {
        /// The server-wide limit.
        limit: usize,
    },
}

impl From<QuotaError> for ApiError {
    fn from(e: QuotaError) -> Self {
        ApiError::TooManyRequests(e.to_string())
    }
}

/// One kernel slot, held by a room's executor.
struct Entry {
    owner: String,
    notebook_id: String,
    /// Running a cell or a job; busy kernels are never stopped for quota.
    busy: bool,
    last_used: Instant,
    /// Picked to be stopped for quota; its room is letting the kernel go.
    stopping: bool,
    /// Stopping slots whose kernels must exit before this slot's kernel may start.
    waits_for: Vec<u64>,
    /// The room to tell when this kernel is picked to be stopped.
    room: Recipient<StopKernelForQuota>,
}

#[derive(Default)]
struct Ledger {
    next_ticket: u64,
    entries: HashMap<u64, Entry>,
}

impl Ledger {
    /// Tickets that count against the limits. A stopping slot counts unless a live slot took
    /// it over (that one counts instead); `also_waited` are tickets a new slot will take over.
    fn counted(&self, also_waited: &[u64]) -> Vec<u64> {
        let waited: HashSet<u64> = self
            .entries
            .values()
            .filter(|e| !e.stopping)
            .flat_map(|e| e.waits_for.iter().copied())
            .chain(also_waited.iter().copied())
            .collect();
        self.entries
            .iter()
            .filter(|(ticket, e)| !e.stopping || !waited.contains(ticket))
            .map(|(ticket, _)| *ticket)
            .collect()
    }

    /// `ticket` and every slot it still waits for: what a slot taking it over must wait for.
    fn chain(&self, ticket: u64) -> Vec<u64> {
        match self.entries.get(&ticket) {
            Some(e) => std::iter::once(ticket)
                .chain(e.waits_for.iter().copied())
                .collect(),
            None => Vec::new(),
        }
    }

    /// The least recently used idle slot among `candidates`, optionally only `owner`'s.
    fn lru_idle(&self, candidates: &[u64], owner: Option<&str>) -> Option<u64> {
        candidates
            .iter()
            .filter_map(|t| self.entries.get(t).map(|e| (*t, e)))
            .filter(|(_, e)| !e.stopping && !e.busy)
            .filter(|(_, e)| owner.is_none_or(|o| e.owner == o))
            // Spare kernels first: stopping one loses nobody's values.
            .min_by_key(|(_, e)| (e.owner != super::pool::SPARE_OWNER, e.last_used))
            .map(|(t, _)| t)
    }
}

struct Shared {
    per_user: usize,
    max: usize,
    ledger: Mutex<Ledger>,
    /// Woken whenever a slot is released, for slots waiting on a stopping kernel.
    released: Notify,
}

/// The ledger of live kernels, shared by every room of this server.
#[derive(Clone)]
pub struct KernelQuota {
    shared: Arc<Shared>,
}

/// What a room asks for when it needs a kernel.
pub struct SlotRequest<'a> {
    /// The notebook's owner (the user charged).
    pub owner: &'a str,
    /// The notebook.
    pub notebook_id: &'a str,
    /// The room's previous slot, if it was taken away (its kernel must exit first).
    pub replacing: Option<u64>,
    /// Where to send the order to stop this kernel for quota.
    pub room: Recipient<StopKernelForQuota>,
}

impl KernelQuota {
    /// A ledger with `per_user` kernels per user and `max` on the server (each at least 1).
    pub fn new(per_user: usize, max: usize) -> KernelQuota {
        KernelQuota {
            shared: Arc::new(Shared {
                per_user: per_user.max(1),
                max: max.max(1),
                ledger: Mutex::default(),
                released: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        // Every update leaves the ledger consistent, so a panic elsewhere cannot corrupt it.
        self.shared
            .ledger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves a slot for a kernel that is about to run a cell (the slot starts busy),
    /// stopping the least recently used idle kernel if a limit is reached.
    pub fn acquire(&self, request: SlotRequest<'_>) -> Result<KernelSlot, QuotaError> {
        self.reserve(request, true)
    }

    /// Reserves a slot for a kernel started ahead of its first run (the slot starts idle),
    /// only if one is free: it never stops another kernel.
    pub fn acquire_free(&self, request: SlotRequest<'_>) -> Option<KernelSlot> {
        self.reserve(request, false).ok()
    }

    fn reserve(&self, request: SlotRequest<'_>, for_run: bool) -> Result<KernelSlot, QuotaError> {
        let SlotRequest {
            owner,
            notebook_id,
            replacing,
            room,
        } = request;
        let mut victim_room = None;
        let ticket = {
            let mut ledger = self.lock();
            let mut waits_for = replacing.map(|t| ledger.chain(t)).unwrap_or_default();
            let counted = ledger.counted(&waits_for);
            let of_owner: Vec<u64> = counted
                .iter()
                .copied()
                .filter(|t| ledger.entries.get(t).is_some_and(|e| e.owner == owner))
                .collect();
            let victim = if !for_run
                && (of_owner.len() >= self.shared.per_user || counted.len() >= self.shared.max)
            {
                return Err(QuotaError::ServerLimit {
                    limit: self.shared.max,
                });
            } else if of_owner.len() >= self.shared.per_user {
                let limit = self.shared.per_user;
                let victim = ledger
                    .lru_idle(&of_owner, Some(owner))
                    .ok_or(QuotaError::UserLimit { limit })?;
                Some((victim, format!("KERNELS_PER_USER={limit}")))
            } else if counted.len() >= self.shared.max {
                let limit = self.shared.max;
                let victim = ledger
                    .lru_idle(&counted, None)
                    .ok_or(QuotaError::ServerLimit { limit })?;
                Some((victim, format!("MAX_KERNELS={limit}")))
            } else {
                None
            };
            if let Some((victim, why)) = victim {
                waits_for.extend(ledger.chain(victim));
                if let Some(e) = ledger.entries.get_mut(&victim) {
                    e.stopping = true;
                    log::info!(
                        "kernel quota ({why}): stopping the idle kernel of notebook {} (user {}) \
                         to start one for notebook {notebook_id} (user {owner})",
                        e.notebook_id,
                        e.owner
                    );
                    victim_room = Some((e.room.clone(), victim));
                }
            }
            let ticket = ledger.next_ticket;
            ledger.next_ticket += 1;
            ledger.entries.insert(
                ticket,
                Entry {
                    owner: owner.to_string(),
                    notebook_id: notebook_id.to_string(),
                    busy: for_run,
                    last_used: Instant::now(),
                    stopping: false,
                    waits_for,
                    room,
                },
            );
            ticket
        };
        if let Some((room, victim)) = victim_room {
            // A room that is already gone releases its slot when its executor ends.
            room.do_send(StopKernelForQuota { ticket: victim });
        }
        Ok(KernelSlot {
            ticket,
            quota: self.clone(),
        })
    }

    /// Marks `ticket`'s kernel busy; false if the slot was taken away (or released).
    pub fn begin(&self, ticket: u64) -> bool {
        let mut ledger = self.lock();
        match ledger.entries.get_mut(&ticket) {
            Some(e) if !e.stopping => {
                e.busy = true;
                e.last_used = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Marks `ticket`'s kernel idle (its run ended): it may now be stopped for quota.
    pub fn finish(&self, ticket: u64) {
        if let Some(e) = self.lock().entries.get_mut(&ticket) {
            e.busy = false;
            e.last_used = Instant::now();
        }
    }

    /// Whether the slot was picked to be stopped for another run (and is not yet released).
    pub fn taken(&self, ticket: u64) -> bool {
        self.lock().entries.get(&ticket).is_some_and(|e| e.stopping)
    }

    /// Whether the slot is still held and not being taken away.
    pub fn holds(&self, ticket: u64) -> bool {
        self.lock()
            .entries
            .get(&ticket)
            .is_some_and(|e| !e.stopping)
    }

    /// Kernels counted against `MAX_KERNELS` now (started, starting or not yet stopped).
    pub fn live_kernels(&self) -> usize {
        self.lock().counted(&[]).len()
    }

    /// Kernels counted against `owner`'s `KERNELS_PER_USER` now.
    pub fn live_kernels_of(&self, owner: &str) -> usize {
        let ledger = self.lock();
        ledger
            .counted(&[])
            .iter()
            .filter(|t| ledger.entries.get(t).is_some_and(|e| e.owner == owner))
            .count()
    }

    fn release(&self, ticket: u64) {
        {
            let mut ledger = self.lock();
            ledger.entries.remove(&ticket);
            for e in ledger.entries.values_mut() {
                e.waits_for.retain(|t| *t != ticket);
            }
        }
        self.shared.released.notify_waiters();
    }

    fn may_start(&self, ticket: u64) -> bool {
        self.lock()
            .entries
            .get(&ticket)
            .is_none_or(|e| e.waits_for.is_empty())
    }
}

/// A reserved kernel slot; dropping it releases the slot (do so only once the kernel is gone).
pub struct KernelSlot {
    ticket: u64,
    quota: KernelQuota,
}

impl KernelSlot {
    /// The slot's ticket, as the ledger and the room know it.
    pub fn ticket(&self) -> u64 {
        self.ticket
    }

    /// Waits until every kernel this slot took over has exited, so starting one is in quota.
    pub async fn ready(&self) {
        loop {
            let released = self.quota.shared.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release in between is not missed.
            released.as_mut().enable();
            if self.quota.may_start(self.ticket) {
                return;
            }
            released.await;
        }
    }
}

impl Drop for KernelSlot {
    fn drop(&mut self) {
        self.quota.release(self.ticket);
    }
}

impl std::fmt::Debug for KernelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelSlot")
            .field("ticket", &self.ticket)
            .finish()
    }
}
