//! `NotebookRoom`: the actor that owns one open notebook's live state.
//!
//! It is the single writer: REST mutations, runs and kernel events all arrive as messages and
//! are applied one at a time, persisted through the store and broadcast to joined sessions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix::WeakAddr;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use std::sync::Arc;

pub mod collab;
pub mod introspection;
pub mod yjs;

use super::executor::{ExecutorConfig, ExecutorHandle, Job, PlannedCell, Work};
use super::messages::*;
use super::outbox::{max_events, CloseOrder, Outbox, Pushed};
use super::packages::PackageBook;
use super::quota::{KernelQuota, QuotaError, SlotRequest};
use super::registry::RoomRegistry;
use super::run::{RunState, Source};
use super::staleness;
use super::state::{LiveCell, NotebookState};
use super::variables::Variables;
use super::Wake;
use crate::config::Config;
use crate::db::models::{CellRow, CellRunState, NotebookRow, PackageRow};
use crate::db::store::{CellEdit, NewCell, Store};
use crate::error::ApiError;
use crate::notebook::analysis::sql_placeholders;
use crate::notebook::cell::default_result_name;
use crate::notebook::{CellStatus, CellType};
use crate::pyenv::packages::Layer;
use crate::sql::host_policy::HostPolicy;

mod stale;

/// Work for the room's persistence task, applied in order.
enum PersistJob {
    /// Save a cell's results.
    Save {
        cell_id: String,
        state: CellRunState,
    },
    /// Answer once everything queued before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// A joined session, as the room sees it.
struct SessionHandle {
    outbox: Arc<Outbox>,
    wake: Recipient<Wake>,
    /// Who the session is signed in as.
    user_id: String,
    /// Its role, shared with the session so a change applies at once.
    role: Arc<crate::collab::SessionRole>,
}

/// From this many sessions, wake-ups wait [`COALESCE_FOR`] so the events that follow
/// (a run's status, output and end) reach each session in one write: a wave of writes to
/// that many sessions takes several times the wait. Below it, waking at once is faster
/// (measured: 1000 tabs p50 21 -> 14 ms with the wait; an edit seen by one of 200 tabs
/// 2 -> 5 ms, so smaller rooms do not wait).
const COALESCE_FROM_SESSIONS: usize = 256;
/// How long a big room gathers events before waking its sessions.
const COALESCE_FOR: Duration = Duration::from_millis(1);

/// The actor owning one notebook's live state, kernel and sessions.
pub struct NotebookRoom {
    pub(super) state: NotebookState,
    pub(super) store: Store,
    pub(super) registry: RoomRegistry,
    pub(super) exec_config: ExecutorConfig,
    /// The notebook's packages and their installs.
    pub(super) packages: PackageBook,
    executor: Option<ExecutorHandle>,
    /// Kernel quota ledger, and the ticket of the slot this room's kernel holds there.
    quota: KernelQuota,
    slot: Option<u64>,
    run: RunState,
    next_token: u64,
    seq: u64,
    sessions: HashMap<u64, SessionHandle>,
    /// Sessions with new events and no wake-up sent yet: woken together once the messages
    /// already in the room's mailbox are handled, so a batch of events costs each session
    /// one write, not one per event.
    pending_wakes: Vec<Recipient<Wake>>,
    /// The room's own address, to schedule [`FlushWakes`] (weak: it must not keep the room
    /// alive).
    own_addr: Option<WeakAddr<NotebookRoom>>,
    next_session: u64,
    idle_after: Duration,
    last_activity: Instant,
    persist: mpsc::UnboundedSender<PersistJob>,
    /// Most cells this notebook may hold (`CELLS_PER_NOTEBOOK`).
    max_cells: u64,
    /// What the kernel last reported about the names cells define.
    variables: Variables,
    /// Who has the notebook open, and in which cell.
    presence: crate::collab::presence::Presence,
    /// Cells' Yjs documents and the co-edited code not stored yet.
    collab: yjs::Collab,
    /// Counts the room in `rooms_open` until it is dropped, however it stops.
    _open: crate::metrics::GaugeGuard,
}

impl NotebookRoom {
    /// A room for a stored notebook.
    pub fn new(
        notebook: NotebookRow,
        cells: &[CellRow],
        packages: Vec<PackageRow>,
        lazy: bool,
        store: Store,
        registry: RoomRegistry,
        config: &Config,
    ) -> NotebookRoom {
        let layer = Layer::for_notebook(&config.data_dir, &notebook.id);
        let exec_config = ExecutorConfig {
            environment: registry.environment().clone(),
            layer: layer.clone(),
            work_dir: config.data_dir.join("kernels").join(&notebook.id),
            memory_mb: config.kernel_memory_mb,
            timeout: Duration::from_secs(config.kernel_timeout_secs),
            limits: config.kernel_limits.clone(),
            sql_hosts: Arc::new(HostPolicy::from_settings_or_refuse_all(&config.sql_hosts)),
            pool: registry.kernel_pool(),
        };
        let (persist, rx) = mpsc::unbounded_channel();
        tokio::spawn(persist_loop(store.clone(), notebook.id.clone(), rx));
        let quota = registry.kernel_quota().clone();
        NotebookRoom {
            state: NotebookState::load(notebook, cells, lazy),
            packages: PackageBook::new(packages, layer, config.python_wheels_dir.clone()),
            store,
            registry,
            exec_config,
            executor: None,
            quota,
            slot: None,
            run: RunState::default(),
            next_token: 0,
            seq: 0,
            sessions: HashMap::new(),
            pending_wakes: Vec::new(),
            own_addr: None,
            next_session: 0,
            idle_after: Duration::from_secs(config.room_idle_secs.max(1)),
            last_activity: Instant::now(),
            persist,
            max_cells: config.quotas.cells_per_notebook,
            variables: Variables::default(),
            presence: Default::default(),
            collab: yjs::Collab::default(),
            _open: crate::metrics::room_opened(),
        }
    }

    fn executor(&mut self, ctx: &mut Context<Self>) -> &ExecutorHandle {
        let config = self.exec_config.clone();
        self.executor.get_or_insert_with(|| {
            let addr = ctx.address();
            ExecutorHandle::start(config, addr.clone().recipient(), addr.recipient())
        })
    }

    /// Sends an event to every joined session, numbered by `seq`.
    pub(super) fn broadcast(&mut self, mut event: Value) {
        if self.has_unannounced() && event.get("type").and_then(Value::as_str) != Some("yjs") {
            self.announce_co_edits();
        }
        self.seq += 1;
        crate::metrics::broadcast();
        if let Value::Object(map) = &mut event {
            map.insert("seq".into(), json!(self.seq));
        }
        let message = Arc::new(event.to_string());
        let limit = max_events(self.state.cells.len());
        let pending = &mut self.pending_wakes;
        let was_empty = pending.is_empty();
        self.sessions.retain(
            |_, session| match session.outbox.push(message.clone(), limit) {
                Pushed::Wake => {
                    pending.push(session.wake.clone());
                    true
                }
                Pushed::Queued => true,
                Pushed::Dropped => {
                    // Over its limits (or closing): one last wake-up so it closes itself.
                    session.wake.do_send(Wake);
                    false
                }
            },
        );
        if was_empty && !self.pending_wakes.is_empty() {
            match self.own_addr.as_ref().and_then(WeakAddr::upgrade) {
                Some(addr) if self.sessions.len() >= COALESCE_FROM_SESSIONS => {
                    actix::spawn(async move {
                        tokio::time::sleep(COALESCE_FOR).await;
                        addr.do_send(FlushWakes);
                    });
                }
                Some(addr) => addr.do_send(FlushWakes),
                None => self.flush_wakes(),
            }
        }
    }

    /// Wakes every session [`NotebookRoom::broadcast`] queued events for.
    fn flush_wakes(&mut self) {
        for wake in self.pending_wakes.drain(..) {
            wake.do_send(Wake);
        }
    }

    fn broadcast_cell_updated(&mut self, cell_id: &str) {
        if let Some(cell) = self.state.wire_cell_by_id(cell_id) {
            self.broadcast(json!({"type": "cell_updated", "cellId": cell_id, "cell": cell}));
        }
    }

    fn set_status(&mut self, cell_id: &str, status: CellStatus) {
        if let Some(cell) = self.state.cell_mut(cell_id) {
            cell.set_status(status);
            // Clients see a graph error (duplicate definition, cycle) as the status.
            let shown = if self.state.graph.errors().contains_key(cell_id) {
                CellStatus::Error
            } else {
                status
            };
            self.broadcast(json!({"type": "cell_status", "cellId": cell_id, "status": shown}));
        }
    }

    fn persist_cell(&self, cell_id: &str) {
        if let Some(cell) = self.state.cell(cell_id) {
            let state = CellRunState {
                status: cell.status.as_str().to_string(),
                stdout: cell.stdout.clone(),
                error: cell.error.clone(),
                // Serialized in place: cloning 32 MiB of outputs first would double the peak.
                outputs: serde_json::to_string(&cell.outputs).unwrap_or_else(|_| "[]".into()),
                updated_at: chrono::Utc::now().naive_utc(),
            };
            let _ = self.persist.send(PersistJob::Save {
                cell_id: cell_id.to_string(),
                state,
            });
        }
    }

    /// Whether running `order` needs the Python kernel (Python cells, SQL with `{name}`).
    fn needs_kernel(&self, order: &[String]) -> bool {
        order
            .iter()
            .filter_map(|id| self.state.cell(id))
            .any(|cell| match cell.cell_type {
                CellType::Python => true,
                CellType::Sql => !sql_placeholders(&cell.code).is_empty(),
                CellType::Markdown => false,
            })
    }

    /// Makes sure a run has its kernel within quota: the room's slot is marked busy, or, when
    /// the run `needed` a kernel, a new one is reserved (which may stop another idle kernel).
    fn claim_kernel(&mut self, needed: bool, ctx: &mut Context<Self>) -> Result<(), QuotaError> {
        let mut replacing = None;
        if let Some(ticket) = self.slot {
            if self.quota.begin(ticket) {
                return Ok(());
            }
            // The slot was taken for another run, or vanished when its kernel failed to start.
            let taken = self.quota.taken(ticket);
            self.slot = None;
            self.let_kernel_go(ticket, taken);
            replacing = Some(ticket);
        }
        if !needed {
            return Ok(());
        }
        let slot = self.quota.acquire(SlotRequest {
            owner: &self.state.owner_id,
            notebook_id: &self.state.id,
            replacing,
            room: ctx.address().recipient(),
        })?;
        self.slot = Some(slot.ticket());
        self.executor(ctx).send(Job::Grant(slot));
        Ok(())
    }

    /// Starts the notebook's kernel as the room opens, so the first run finds it ready; only
    /// in a free slot (never stopping another kernel) and once the Python environment is.
    fn warm_kernel(&mut self, ctx: &mut Context<Self>) {
        if self.slot.is_some() || self.exec_config.environment.python_now().is_none() {
            return;
        }
        let request = SlotRequest {
            owner: &self.state.owner_id,
            notebook_id: &self.state.id,
            replacing: None,
            room: ctx.address().recipient(),
        };
        let Some(slot) = self.quota.acquire_free(request) else {
            return;
        };
        self.slot = Some(slot.ticket());
        self.executor(ctx).send(Job::Grant(slot));
        self.executor(ctx).send(Job::Warm);
    }

    /// Lets go of a slot the room no longer holds; if it was `taken` for quota, its kernel
    /// is stopped and the cells' values are gone, exactly as when the room idles out.
    fn let_kernel_go(&mut self, ticket: u64, taken: bool) {
        if let Some(executor) = &self.executor {
            executor.send(Job::Release(ticket));
        }
        // Only idle slots are taken, so no run is cut short here.
        if taken && !self.run.active() {
            self.values_gone(None);
        }
    }

    /// Queues a run of `targets` (with the stale ancestors they need, see
    /// [`staleness::plan`]) as a new run, or folds it into the current one.
    fn request_run(
        &mut self,
        targets: Vec<String>,
        ctx: &mut Context<Self>,
    ) -> Result<(), ApiError> {
        let plan = staleness::plan(&self.state, &targets, |id| self.run.will_run(id));
        self.claim_kernel(self.needs_kernel(&plan.order), ctx)?;
        if self.run.active() {
            // Lazy mode's stale marks wait for the run to start: the plan is made again then.
            let mut added = false;
            for id in plan.order {
                if !self.run.will_run(&id) {
                    added = true;
                    self.set_status(&id, CellStatus::Queued);
                }
            }
            if added {
                self.run.next_roots.extend(targets);
            }
            return Ok(());
        }
        self.start_run(plan, ctx);
        Ok(())
    }

    fn start_run(&mut self, plan: staleness::RunPlan, ctx: &mut Context<Self>) {
        self.run.failed.clear();
        self.mark_stale(&plan.stale);
        for id in &plan.order {
            self.set_status(id, CellStatus::Queued);
        }
        self.run.set_plan(plan.order);
        self.step(ctx);
    }

    /// Sends the next job: the longest stretch of Python cells ahead in the plan as one plan
    /// for the kernel, or a SQL cell on its own. Cells that cannot run are settled on the way.
    fn step(&mut self, ctx: &mut Context<Self>) {
        let mut batch: Vec<PlannedCell> = Vec::new();
        let mut sent: Vec<(String, Source)> = Vec::new();
        let mut in_batch: HashMap<String, usize> = HashMap::new();
        while let Some(id) = self.run.next_planned() {
            let Some(cell) = self.state.cell(&id) else {
                self.run.settled_unsent(&id);
                continue;
            };
            if self.state.graph.errors().contains_key(&id) {
                // The graph error is shown as the cell's error until the code is fixed; the
                // cell does not run and its descendants are blocked.
                self.run.settled_unsent(&id);
                self.run.failed.insert(id.clone());
                self.set_status(&id, CellStatus::Idle);
                self.broadcast_cell_updated(&id);
                continue;
            }
            let parents = self.state.graph.parents(&id);
            if parents.iter().any(|p| self.run.failed.contains(p)) {
                self.run.settled_unsent(&id);
                self.block_cell(&id);
                continue;
            }
            let work = match cell.cell_type {
                CellType::Python => Work::Python {
                    code: cell.code.clone(),
                },
                CellType::Sql => Work::Sql {
                    code: cell.code.clone(),
                    conn_string: self.state.db_conn_string.clone(),
                    placeholders: sql_placeholders(&cell.code),
                    result_name: cell.result_name.clone(),
                },
                // Never executed (and never in a run order: it has no edges); skipped if named.
                CellType::Markdown => {
                    self.run.settled_unsent(&id);
                    continue;
                }
            };
            let source = (cell.code.clone(), cell.result_name.clone());
            if matches!(work, Work::Sql { .. }) && !batch.is_empty() {
                // SQL runs on its own job: send the Python cells before it first.
                self.run.put_back(id);
                break;
            }
            if let Err(e) = self.claim_for_cell(&work, ctx) {
                self.run.settled_unsent(&id);
                if let Some(cell) = self.state.cell_mut(&id) {
                    cell.reset_results();
                }
                self.broadcast_cell_updated(&id);
                self.settle_error(&id, e.to_string());
                continue;
            }
            match work {
                Work::Python { code } => {
                    let parents = parents
                        .iter()
                        .filter_map(|p| in_batch.get(p).copied())
                        .collect();
                    in_batch.insert(id.clone(), batch.len());
                    batch.push(PlannedCell {
                        cell_id: id.clone(),
                        code,
                        parents,
                    });
                    sent.push((id, source));
                    if batch.len() >= MAX_PLAN_CELLS {
                        break;
                    }
                }
                sql => {
                    self.next_token += 1;
                    let token = self.next_token;
                    self.run.sent(token, vec![(id.clone(), source)]);
                    self.run.mark_started();
                    self.show_running(&id);
                    self.executor(ctx).send(Job::Execute {
                        token,
                        cell_id: id,
                        work: sql,
                    });
                    return;
                }
            }
        }
        if !batch.is_empty() {
            self.next_token += 1;
            let token = self.next_token;
            self.run.sent(token, sent);
            self.executor(ctx).send(Job::ExecutePlan {
                token,
                cells: batch,
            });
            return;
        }
        if !self.run.next_roots.is_empty() {
            let roots = std::mem::take(&mut self.run.next_roots);
            let plan = staleness::plan(&self.state, &roots, |_| false);
            self.unqueue_except(&plan.order);
            self.start_run(plan, ctx);
        } else {
            // The run is over: what its cells defined, and the kernel may be stopped for
            // someone else's run.
            self.send_variables_request(ctx);
            if let Some(ticket) = self.slot {
                self.quota.finish(ticket);
            }
        }
    }

    /// A cell starts running: its previous results go, and every tab sees it run.
    fn show_running(&mut self, cell_id: &str) {
        let had_results = self
            .state
            .cell_mut(cell_id)
            .map(|cell| {
                let had =
                    !cell.stdout.is_empty() || !cell.outputs.is_empty() || cell.error.is_some();
                cell.reset_results();
                had
            })
            .unwrap_or(false);
        // Nothing to clear, nothing to tell: the status change says it all.
        if had_results {
            self.broadcast_cell_updated(cell_id);
        }
        self.set_status(cell_id, CellStatus::Running);
    }

    /// A cell about to run that needs the kernel while the room holds no slot (its run began
    /// without one, or the kernel failed to start): claim one now.
    fn claim_for_cell(&mut self, work: &Work, ctx: &mut Context<Self>) -> Result<(), QuotaError> {
        let needed = match work {
            Work::Python { .. } => true,
            // Embedded SQL runs in the kernel; a database's result is bound in it.
            Work::Sql {
                placeholders,
                conn_string,
                result_name,
                ..
            } => !placeholders.is_empty() || conn_string.is_none() || result_name.is_some(),
        };
        if !needed || self.slot.is_some_and(|ticket| self.quota.holds(ticket)) {
            return Ok(());
        }
        self.claim_kernel(true, ctx)
    }

    /// Blocks a cell whose upstream failed in this run: it does not run, its old results go.
    fn block_cell(&mut self, cell_id: &str) {
        crate::metrics::cell_run(crate::metrics::CellOutcome::Blocked, None);
        self.run.failed.insert(cell_id.to_string());
        if let Some(cell) = self.state.cell_mut(cell_id) {
            cell.reset_results();
        }
        self.broadcast_cell_updated(cell_id);
        self.set_status(cell_id, CellStatus::Blocked);
        self.persist_cell(cell_id);
    }

    /// Marks every cell but `except` that had run stale (the others idle): their values died
    /// with the kernel.
    fn values_gone(&mut self, except: Option<&str>) {
        self.clear_variables();
        if let (Some((token, _)), Some(executor)) = (self.run.current(), &self.executor) {
            executor.cancel_plan(token);
        }
        self.run.abandon();
        let ids: Vec<String> = self
            .state
            .cells
            .iter()
            .filter(|c| Some(c.id.as_str()) != except)
            .map(|c| c.id.clone())
            .collect();
        for id in ids {
            self.out_of_date(&id);
        }
    }

    fn handle_finished(&mut self, cell_id: &str, finished: Finished, ctx: &mut Context<Self>) {
        if matches!(finished.outcome, Outcome::Cancelled) {
            // Skipped by a cancelled plan (an edit meanwhile): it runs again with its new code.
            self.run.requeue_current();
            if self.run.current().is_none() {
                self.step(ctx);
            }
            return;
        }
        let ran = self.run.finish_current();
        for output in finished.outputs {
            self.add_output(cell_id, output);
        }
        match finished.outcome {
            Outcome::Success => {
                self.set_status(cell_id, CellStatus::Success);
                self.persist_cell(cell_id);
            }
            Outcome::Error(message) => self.settle_error(cell_id, message),
            Outcome::Blocked => self.block_cell(cell_id),
            Outcome::Cancelled => {}
            Outcome::Interrupted => {
                self.settle_error(cell_id, "Interrupted".into());
                self.abandon_run();
            }
            Outcome::Died(message) => {
                let message = if std::mem::take(&mut self.run.restarting) {
                    "Interrupted: the kernel was restarted".to_string()
                } else {
                    message
                };
                self.settle_error(cell_id, message);
                self.values_gone(Some(cell_id));
            }
        }
        // Edited while it ran: what it shows came from the old code.
        let edited = self.state.cell(cell_id).is_some_and(|cell| {
            ran.as_ref()
                .is_some_and(|(code, name)| *code != cell.code || *name != cell.result_name)
        });
        if edited {
            self.out_of_date(cell_id);
        }
        // Even a failed cell may have defined some of its names before it stopped.
        self.refresh_variables(cell_id, ctx);
        if self.run.current().is_none() {
            self.step(ctx);
        }
    }

    /// Drops the rest of the run (the kernel skips what it was sent); the cells dropped are
    /// settled as out of date.
    fn abandon_run(&mut self) {
        if let (Some((token, _)), Some(executor)) = (self.run.current(), &self.executor) {
            executor.cancel_plan(token);
        }
        for id in self.run.abandon() {
            self.out_of_date(&id);
        }
    }

    /// Keeps an output on the cell and sends it to every session.
    fn add_output(&mut self, cell_id: &str, output: Value) {
        if let Some(cell) = self.state.cell_mut(cell_id) {
            cell.outputs.push(output.clone());
        }
        self.broadcast(json!({"type": "cell_output", "cellId": cell_id, "output": output}));
    }

    fn settle_error(&mut self, cell_id: &str, message: String) {
        self.run.failed.insert(cell_id.to_string());
        if let Some(cell) = self.state.cell_mut(cell_id) {
            cell.error = Some(message.clone());
        }
        self.broadcast(json!({"type": "cell_error", "cellId": cell_id, "error": message}));
        self.set_status(cell_id, CellStatus::Error);
        self.persist_cell(cell_id);
    }

    /// Removes names from the kernel before anything else runs (queued ahead of later jobs).
    fn forget(&mut self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        self.forget_variables(&names);
        if let Some(executor) = &self.executor {
            executor.send(Job::Forget(names));
        }
    }

    /// A cell's code changed: the rest of a running plan is re-planned, and the graph is
    /// rebuilt only when the names the cell writes or reads changed (an edit of a value, or
    /// every keystroke inside an expression, costs nothing that grows with the notebook).
    pub(super) fn code_changed(&mut self, cell_id: &str, names_changed: bool) {
        if names_changed {
            self.graph_changed(cell_id);
        } else {
            self.replan_unstarted();
        }
    }

    /// Cells were added, removed, moved or renamed what they define: rebuilds the graph and
    /// re-announces the cells whose graph error changed (except `except`).
    fn graph_changed(&mut self, except: &str) {
        self.replan_unstarted();
        for id in self.state.rebuild_graph() {
            if id != except {
                self.broadcast_cell_updated(&id);
            }
        }
    }

    /// The kernel holds cells sent with old code or an old graph: it skips those not started,
    /// and they come back as `Cancelled` to be sent again as they are now.
    fn replan_unstarted(&mut self) {
        if !self.run.has_unstarted() {
            return;
        }
        if let (Some((token, _)), Some(executor)) = (self.run.current(), &self.executor) {
            executor.cancel_plan(token);
        }
    }

    /// Tells every session to close (after the events already queued) and forgets them.
    fn close_sessions(&mut self, code: u16, reason: &str) {
        for (_, session) in self.sessions.drain() {
            let order = CloseOrder {
                code,
                reason: reason.to_string(),
            };
            if session.outbox.close(order) {
                session.wake.do_send(Wake);
            }
        }
    }

    pub(super) fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Closes the room as soon as its lease is known lost (a renewal found it taken over, or a
    /// fenced write was refused).
    fn watch_lease(&mut self, ctx: &mut Context<Self>) {
        let Some(fence) = self.store.fence() else {
            return;
        };
        let mut lost = fence.watch_lost();
        ctx.spawn(
            async move { lost.wait_for(|lost| *lost).await.is_ok() }
                .into_actor(self)
                .map(|lost, room, ctx| {
                    if lost {
                        room.on_lease_lost(ctx);
                    }
                }),
        );
    }

    /// Another instance owns the notebook now: whatever this room holds is outdated and can no
    /// longer be written. Runs stop, the kernel is killed, and tabs are told to reconnect
    /// (1012), which lands them on the new owner.
    fn on_lease_lost(&mut self, ctx: &mut Context<Self>) {
        log::warn!(
            "notebook {}: another instance owns it now; closing this room",
            self.state.id
        );
        self.run.abandon();
        let dropped = self.take_unsaved_code().len();
        if dropped > 0 {
            log::warn!(
                "notebook {}: {dropped} co-edited cell(s) not stored before the lease was lost",
                self.state.id
            );
        }
        self.close_sessions(1012, "notebook moved to another server instance; reconnect");
        self.packages.abort();
        if let Some(executor) = self.executor.take() {
            executor.kill();
        }
        ctx.stop();
    }
}

/// Most cells sent to the kernel in one plan; a longer run is sent in several, back to back.
const MAX_PLAN_CELLS: usize = 2000;

/// How long results gather before they are written together.
const PERSIST_WINDOW: Duration = Duration::from_millis(50);
/// Most results written in one transaction.
const PERSIST_BATCH: usize = 500;

/// Writes run results off the hot path: what arrives within [`PERSIST_WINDOW`] (at most
/// [`PERSIST_BATCH`] events) goes in one transaction, each cell's latest state only. A flush
/// writes at once and answers after the write, so an abrupt kill loses at most one window.
async fn persist_loop(
    store: Store,
    notebook_id: String,
    mut jobs: mpsc::UnboundedReceiver<PersistJob>,
) {
    while let Some(first) = jobs.recv().await {
        let mut batch = PersistBatch::default();
        batch.take(first);
        let deadline = tokio::time::Instant::now() + PERSIST_WINDOW;
        let mut events = 1;
        while batch.flushes.is_empty() && events < PERSIST_BATCH {
            match tokio::time::timeout_at(deadline, jobs.recv()).await {
                Ok(Some(job)) => {
                    batch.take(job);
                    events += 1;
                }
                // The window closed, or the room is gone: write what there is.
                Ok(None) | Err(_) => break,
            }
        }
        let cells = batch.states.len();
        if let Err(e) = store.save_run_states(&notebook_id, batch.states).await {
            log::error!("saving {cells} cell result(s) of {notebook_id} failed: {e}");
        }
        for done in batch.flushes {
            let _ = done.send(());
        }
    }
}

/// Results gathered for one write: each cell's latest state, and the flushes to answer after.
#[derive(Default)]
struct PersistBatch {
    states: Vec<(String, CellRunState)>,
    index: HashMap<String, usize>,
    flushes: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl PersistBatch {
    fn take(&mut self, job: PersistJob) {
        match job {
            PersistJob::Save { cell_id, state } => match self.index.get(&cell_id) {
                Some(&at) => self.states[at].1 = state,
                None => {
                    self.index.insert(cell_id.clone(), self.states.len());
                    self.states.push((cell_id, state));
                }
            },
            PersistJob::Flush(done) => self.flushes.push(done),
        }
    }
}

impl Actor for NotebookRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.own_addr = Some(ctx.address().downgrade());
        let every =
            (self.idle_after / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
        ctx.run_interval(every, |_, ctx| ctx.notify(IdleCheck));
        self.watch_lease(ctx);
        self.restore_packages(ctx);
        self.warm_kernel(ctx);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.flush_wakes();
        log::info!("room closed for notebook {}", self.state.id);
        // An unfinished install is queued again when the notebook next opens.
        self.packages.abort();
        // Dropping the executor handle ends its task, which shuts the kernel down.
        self.executor = None;
        let registry = self.registry.clone();
        let id = self.state.id.clone();
        // During a runtime shutdown there is nothing left to tidy.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let addr = ctx.address();
            runtime.spawn(async move { registry.remove(&id, &addr).await });
        }
    }
}

impl Handler<IdleCheck> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, _: IdleCheck, ctx: &mut Self::Context) {
        if self.run.active()
            || self.packages.busy()
            || !self.sessions.is_empty()
            || self.has_unsaved_code()
        {
            self.touch();
            return;
        }
        if self.last_activity.elapsed() >= self.idle_after {
            ctx.stop();
        }
    }
}

impl Handler<FlushWakes> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, _: FlushWakes, _: &mut Self::Context) {
        self.flush_wakes();
    }
}

impl Handler<ExecEvents> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, events: ExecEvents, ctx: &mut Self::Context) {
        for event in events.0 {
            self.on_exec_event(event, ctx);
        }
    }
}

impl Handler<ExecEvent> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, event: ExecEvent, ctx: &mut Self::Context) {
        self.on_exec_event(event, ctx);
    }
}

impl NotebookRoom {
    fn on_exec_event(&mut self, event: ExecEvent, ctx: &mut Context<Self>) {
        if !self.run.is_current(event.token, &event.cell_id) {
            return;
        }
        self.touch();
        let cell_id = event.cell_id;
        match event.kind {
            ExecEventKind::Started => {
                self.run.mark_started();
                self.show_running(&cell_id);
            }
            ExecEventKind::Stream { name: _, text } => {
                // Sessions get exactly what the cell keeps, so a live view matches a re-fetch.
                let appended = self
                    .state
                    .cell_mut(&cell_id)
                    .and_then(|cell| cell.append_stdout(&text));
                if let Some(data) = appended {
                    self.broadcast(json!({"type": "cell_stdout", "cellId": cell_id, "data": data}));
                }
            }
            ExecEventKind::Output(output) => self.add_output(&cell_id, output),
            ExecEventKind::Waiting(Some(reason)) => {
                if let Some(cell) = self.state.cell_mut(&cell_id) {
                    cell.status = CellStatus::Queued;
                }
                self.broadcast(json!({
                    "type": "cell_status", "cellId": cell_id, "status": CellStatus::Queued,
                    "reason": reason,
                }));
            }
            ExecEventKind::Waiting(None) => self.set_status(&cell_id, CellStatus::Running),
            ExecEventKind::Finished(finished) => self.handle_finished(&cell_id, finished, ctx),
        }
    }
}

impl Handler<Snapshot> for NotebookRoom {
    type Result = Result<Value, ApiError>;

    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let mut snapshot = self.state.snapshot(self.seq);
        snapshot["packages"] = self.packages.wire();
        Ok(snapshot)
    }
}

impl Handler<RunCell> for NotebookRoom {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: RunCell, ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        let Some(cell) = self.state.cell(&msg.cell_id) else {
            return Err(ApiError::NotFound("Cell not found".into()));
        };
        if !cell.cell_type.executes() {
            // Running a markdown cell is a no-op success: it has nothing to run or re-run.
            return Ok(());
        }
        self.request_run(vec![msg.cell_id], ctx)
    }
}

impl Handler<StopKernelForQuota> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, msg: StopKernelForQuota, _: &mut Self::Context) {
        if self.slot != Some(msg.ticket) {
            // Already replaced (the room asked for a new slot first) or released.
            return;
        }
        self.slot = None;
        self.let_kernel_go(msg.ticket, true);
    }
}

impl Handler<Interrupt> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, _: Interrupt, _: &mut Self::Context) {
        self.touch();
        if let (Some((token, _)), Some(executor)) = (self.run.current(), &self.executor) {
            executor.interrupt(token);
        }
    }
}

impl Handler<Restart> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        self.touch();
        log::info!("kernel restart requested for notebook {}", self.state.id);
        if self.run.current().is_some() {
            self.run.abandon();
            // A cell that was running ends with the kernel; it says why.
            self.run.restarting = self.run.current().is_some();
            if let Some(executor) = &self.executor {
                executor.kill();
            }
        }
        // Without a slot there is no kernel to replace; the next run starts a fresh one.
        if self.slot.is_some_and(|ticket| self.quota.holds(ticket)) {
            self.executor(ctx).send(Job::Restart);
        }
        let running = self.run.current().map(|(_, id)| id.to_string());
        self.values_gone(running.as_deref());
    }
}

impl Handler<Rename> for NotebookRoom {
    type Result = AtomicResponse<Self, Result<(), ApiError>>;

    fn handle(&mut self, msg: Rename, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let store = self.store.clone();
        let (owner, id) = (self.state.owner_id.clone(), self.state.id.clone());
        let name = msg.name;
        AtomicResponse::new(Box::pin(
            async move {
                let revision = store.rename_notebook(&owner, &id, &name).await?;
                Ok::<_, ApiError>((revision, name))
            }
            .into_actor(self)
            .map(|result, room, _| {
                let (revision, name) = result?;
                room.state.revision = revision;
                room.state.name = name.clone();
                room.broadcast(json!({"type": "notebook_updated", "name": name}));
                Ok(())
            }),
        ))
    }
}

impl Handler<SetDb> for NotebookRoom {
    type Result = AtomicResponse<Self, Result<(), ApiError>>;

    fn handle(&mut self, msg: SetDb, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let store = self.store.clone();
        let (owner, id) = (self.state.owner_id.clone(), self.state.id.clone());
        let conn = msg.conn_string;
        AtomicResponse::new(Box::pin(
            async move {
                let revision = store
                    .set_db_conn_string(&owner, &id, conn.as_deref())
                    .await?;
                Ok::<_, ApiError>((revision, conn))
            }
            .into_actor(self)
            .map(|result, room, _| {
                let (revision, conn) = result?;
                room.state.revision = revision;
                room.state.db_conn_string = conn;
                let name = room.state.name.clone();
                room.broadcast(json!({"type": "notebook_updated", "name": name}));
                Ok(())
            }),
        ))
    }
}

impl Handler<DeleteNotebook> for NotebookRoom {
    type Result = AtomicResponse<Self, Result<(), ApiError>>;

    fn handle(&mut self, _: DeleteNotebook, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let (owner, id) = (self.state.owner_id.clone(), self.state.id.clone());
        AtomicResponse::new(Box::pin(
            async move {
                store
                    .delete_notebook(&owner, &id)
                    .await
                    .map_err(ApiError::from)
            }
            .into_actor(self)
            .map(|result, room, ctx| {
                result?;
                room.run.abandon();
                room.take_unsaved_code();
                room.broadcast(json!({"type": "notebook_deleted"}));
                room.close_sessions(1000, "notebook deleted");
                // The kernel and its working directory go with the notebook.
                let executor = room.executor.take();
                let work_dir = room.exec_config.work_dir.clone();
                room.packages.abort();
                let layer = room.packages.layer.clone();
                tokio::spawn(async move {
                    if let Some(executor) = executor {
                        executor.shutdown().await;
                    }
                    if let Err(e) = layer.remove() {
                        log::warn!("could not remove {}: {e}", layer.root.display());
                    }
                    if let Err(e) = tokio::fs::remove_dir_all(&work_dir).await {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            log::warn!("could not remove {}: {e}", work_dir.display());
                        }
                    }
                });
                ctx.stop();
                Ok(())
            }),
        ))
    }
}

impl Handler<CreateCell> for NotebookRoom {
    type Result = AtomicResponse<Self, Result<String, ApiError>>;

    fn handle(&mut self, msg: CreateCell, _: &mut Self::Context) -> Self::Result {
        self.touch();
        // The room is the notebook's single writer and handles one creation at a time, so this
        // count cannot be raced by concurrent requests.
        let count = u64::try_from(self.state.cells.len()).unwrap_or(u64::MAX);
        if count >= self.max_cells {
            let limit = self.max_cells;
            return AtomicResponse::new(Box::pin(fut::ready(Err(ApiError::Conflict(format!(
                "Cell limit reached: a notebook may hold at most {limit} cells \
                 (CELLS_PER_NOTEBOOK); delete a cell to add another"
            ))))));
        }
        let store = self.store.clone();
        let (owner, id) = (self.state.owner_id.clone(), self.state.id.clone());
        let result_name = (msg.cell_type == CellType::Sql).then(|| {
            default_result_name(
                self.state
                    .cells
                    .iter()
                    .filter_map(|c| c.result_name.as_deref()),
            )
        });
        let cell = NewCell {
            id: uuid::Uuid::new_v4().to_string(),
            cell_type: msg.cell_type.as_str().to_string(),
            code: msg.code,
            result_name,
        };
        let after = msg.after_cell_id;
        let before = msg.before_cell_id;
        AtomicResponse::new(Box::pin(
            async move {
                store
                    .create_cell(&owner, &id, cell, after.as_deref(), before.as_deref())
                    .await
                    .map_err(ApiError::from)
            }
            .into_actor(self)
            .map(|result, room, _| {
                let (row, index, revision) = result?;
                room.state.revision = revision;
                let index = index.min(room.state.cells.len());
                room.state.insert_cell(index, LiveCell::from_row(&row));
                room.graph_changed(&row.id);
                if let Some(cell) = room.state.wire_cell_by_id(&row.id) {
                    room.broadcast(json!({
                        "type": "cell_created", "cellId": row.id, "cell": cell, "index": index,
                    }));
                }
                room.yjs_cell_created(&row.id);
                Ok(row.id)
            }),
        ))
    }
}

impl Handler<UpdateCell> for NotebookRoom {
    type Result = AtomicResponse<Self, Result<i64, ApiError>>;

    fn handle(&mut self, msg: UpdateCell, _: &mut Self::Context) -> Self::Result {
        self.touch();
        if msg.result_name.is_some()
            && self
                .state
                .cell(&msg.cell_id)
                .is_some_and(|c| c.cell_type != CellType::Sql)
        {
            return AtomicResponse::new(Box::pin(fut::ready(Err(ApiError::Unprocessable(
                "result_name applies to SQL cells only".into(),
            )))));
        }
        let store = self.store.clone();
        let (owner, id) = (self.state.owner_id.clone(), self.state.id.clone());
        // Co-edited code is stored first, so expected_revision sees those edits too.
        let unsaved = self.take_unsaved_code();
        AtomicResponse::new(Box::pin(
            async move {
                let saved = yjs::save_codes(&store, &owner, &id, unsaved).await;
                let edit = CellEdit {
                    code: msg.code.as_deref(),
                    result_name: msg.result_name.as_deref(),
                };
                let result = store
                    .update_cell(&owner, &id, &msg.cell_id, edit, msg.expected_revision)
                    .await
                    .map_err(ApiError::from);
                (saved, result)
            }
            .into_actor(self)
            .map(|(saved, result), room, _| {
                if let Some(saved) = saved {
                    room.state.revision = room.state.revision.max(saved);
                }
                let (row, revision) = result?;
                room.state.revision = revision;
                let edited = room.edit_marks(&row);
                let old_writes = room
                    .state
                    .cell(&row.id)
                    .map(|c| c.names.writes.clone())
                    .unwrap_or_default();
                let names_changed = room
                    .state
                    .cell_mut(&row.id)
                    .is_some_and(|cell| cell.set_code(row.code.clone(), row.result_name.clone()));
                let stale = room.state.names_only_defined_by(&row.id, &old_writes);
                room.forget(stale);
                room.code_changed(&row.id, names_changed);
                room.mark_edited_stale(edited);
                room.yjs_code_replaced(&row.id, &row.code);
                room.broadcast_cell_updated(&row.id);
                Ok(revision)
            }),
        ))
    }
}

impl Handler<DeleteCell> for NotebookRoom {
    type Result = AtomicResponse<Self, Result<i64, ApiError>>;

    fn handle(&mut self, msg: DeleteCell, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let store = self.store.clone();
        let (owner, id) = (self.state.owner_id.clone(), self.state.id.clone());
        let cell_id = msg.cell_id;
        AtomicResponse::new(Box::pin(
            async move {
                let revision = store
                    .delete_cell(&owner, &id, &cell_id)
                    .await
                    .map_err(ApiError::from)?;
                Ok::<_, ApiError>((revision, cell_id))
            }
            .into_actor(self)
            .map(|result, room, _| {
                let (revision, cell_id) = result?;
                room.state.revision = revision;
                let old_writes = room
                    .state
                    .cell(&cell_id)
                    .map(|c| c.names.writes.clone())
                    .unwrap_or_default();
                let stale = room.state.names_only_defined_by(&cell_id, &old_writes);
                let orphans = staleness::descendants(&room.state, std::slice::from_ref(&cell_id));
                room.state.remove_cell(&cell_id);
                room.yjs_cell_deleted(&cell_id);
                room.run.remove(&cell_id);
                room.forget(stale);
                room.broadcast(json!({"type": "cell_deleted", "cellId": cell_id}));
                room.graph_changed(&cell_id);
                room.mark_stale(&orphans);
                Ok(revision)
            }),
        ))
    }
}

impl Handler<MoveCell> for NotebookRoom {
    type Result = AtomicResponse<Self, Result<i64, ApiError>>;

    fn handle(&mut self, msg: MoveCell, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let store = self.store.clone();
        let (owner, id) = (self.state.owner_id.clone(), self.state.id.clone());
        AtomicResponse::new(Box::pin(
            async move {
                store
                    .move_cell(&owner, &id, &msg.cell_id, &msg.target_id, msg.after)
                    .await
                    .map(|(index, revision)| (msg.cell_id, index, revision))
                    .map_err(ApiError::from)
            }
            .into_actor(self)
            .map(|result, room, _| {
                let (cell_id, index, revision) = result?;
                room.state.revision = revision;
                room.state.move_cell(&cell_id, index);
                room.broadcast(json!({"type": "cell_moved", "cellId": cell_id, "index": index}));
                // Order never changes what runs, only the positions graph errors name.
                room.graph_changed("");
                Ok(revision)
            }),
        ))
    }
}

impl Handler<Join> for NotebookRoom {
    type Result = Joined;

    fn handle(&mut self, msg: Join, _: &mut Self::Context) -> Joined {
        self.touch();
        self.next_session += 1;
        let session_id = self.next_session;
        self.yjs_welcome(&msg.outbox, &msg.wake);
        self.sessions.insert(
            session_id,
            SessionHandle {
                outbox: msg.outbox,
                wake: msg.wake,
                user_id: msg.user_id.clone(),
                role: msg.role,
            },
        );
        self.presence.join(session_id, &msg.user_id, msg.name);
        self.broadcast_presence();
        Joined {
            session_id,
            seq: self.seq,
        }
    }
}

impl Handler<Leave> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Self::Context) {
        self.touch();
        self.sessions.remove(&msg.session_id);
        self.hide_cursor(msg.session_id);
        if self.presence.leave(msg.session_id) {
            self.broadcast_presence();
        }
    }
}

impl Handler<Shutdown> for NotebookRoom {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.run.abandon();
        self.close_sessions(1001, "server shutting down");
        let (done, flushed) = tokio::sync::oneshot::channel();
        let _ = self.persist.send(PersistJob::Flush(done));
        let executor = self.executor.take();
        let unsaved = self.take_unsaved_code();
        let (store, owner, id) = (
            self.store.clone(),
            self.state.owner_id.clone(),
            self.state.id.clone(),
        );
        let cluster = self.registry.cluster().clone();
        Box::pin(
            async move {
                yjs::save_codes(&store, &owner, &id, unsaved).await;
                let _ = tokio::time::timeout(Duration::from_secs(10), flushed).await;
                // Everything is committed: hand the notebook over before the kernel stops.
                if let Some(fence) = store.fence() {
                    cluster.release(&id, fence.epoch()).await;
                }
                if let Some(executor) = executor {
                    executor.shutdown().await;
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}
