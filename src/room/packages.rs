//! A room's package book: the notebook's requested packages, their install queue, and the
//! messages that install them one at a time into the notebook's layer.

use std::collections::VecDeque;
use std::path::PathBuf;

use actix::prelude::*;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::actor::NotebookRoom;
use crate::db::models::PackageRow;
use crate::error::ApiError;
use crate::pyenv::packages::{install, InstallJob, Layer, Requirement};

/// Where a package stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageState {
    /// Queued or running.
    Installing,
    /// In the layer.
    Installed,
    /// The last install failed.
    Failed,
}

impl PackageState {
    /// The wire and database text.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageState::Installing => "installing",
            PackageState::Installed => "installed",
            PackageState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> PackageState {
        match text {
            "installed" => PackageState::Installed,
            "failed" => PackageState::Failed,
            _ => PackageState::Installing,
        }
    }
}

/// One requested package.
#[derive(Debug, Clone)]
pub struct PackageEntry {
    /// The requirement (normalized name, optional specifiers).
    pub requirement: Requirement,
    /// Where it stands.
    pub state: PackageState,
    /// Why the last install failed.
    pub error: Option<String>,
}

impl PackageEntry {
    fn wire(&self) -> Value {
        let mut v = json!({
            "name": self.requirement.name,
            "version": self.requirement.version,
            "state": self.state.as_str(),
        });
        if let Some(error) = &self.error {
            v["error"] = json!(error);
        }
        v
    }
}

/// The packages of one notebook and the state of their installs.
pub struct PackageBook {
    entries: Vec<PackageEntry>,
    queue: VecDeque<String>,
    running: Option<(String, tokio::task::AbortHandle)>,
    /// The notebook's layer.
    pub layer: Layer,
    wheels_dir: Option<PathBuf>,
}

impl PackageBook {
    /// The book of a notebook from its stored rows.
    pub fn new(rows: Vec<PackageRow>, layer: Layer, wheels_dir: Option<PathBuf>) -> PackageBook {
        let entries = rows
            .into_iter()
            .map(|row| PackageEntry {
                requirement: Requirement {
                    name: row.name,
                    version: row.version,
                },
                state: PackageState::parse(&row.state),
                error: row.error,
            })
            .collect();
        PackageBook {
            entries,
            queue: VecDeque::new(),
            running: None,
            layer,
            wheels_dir,
        }
    }

    /// The list `GET /api/notebooks/{id}` shows.
    pub fn wire(&self) -> Value {
        Value::Array(self.entries.iter().map(PackageEntry::wire).collect())
    }

    /// Whether an install is queued or running.
    pub fn busy(&self) -> bool {
        self.running.is_some() || !self.queue.is_empty()
    }

    /// Stops a running install (the room is closing or the notebook is gone).
    pub fn abort(&mut self) {
        if let Some((_, handle)) = self.running.take() {
            handle.abort();
        }
        self.queue.clear();
    }

    fn entry_mut(&mut self, name: &str) -> Option<&mut PackageEntry> {
        self.entries.iter_mut().find(|e| e.requirement.name == name)
    }

    /// Packages this server's layer lacks although the notebook has them (opened on a new
    /// server, or an install interrupted by a restart): queued again, marked installing.
    fn missing_from_layer(&mut self) -> Vec<String> {
        let installed = self.layer.installed();
        let mut missing = Vec::new();
        for entry in &mut self.entries {
            if entry.state == PackageState::Failed {
                continue;
            }
            let arg = entry.requirement.pip_arg();
            if installed.get(&entry.requirement.name) != Some(&arg) {
                entry.state = PackageState::Installing;
                entry.error = None;
                missing.push(entry.requirement.name.clone());
            }
        }
        missing
    }
}

/// Install a package into the notebook's layer (answers once the request is recorded).
#[derive(Message)]
#[rtype(result = "Result<Value, ApiError>")]
pub struct InstallPackage(pub Requirement);

/// A line of an install's output.
#[derive(Message)]
#[rtype(result = "()")]
struct InstallLine {
    name: String,
    line: String,
}

/// An install ended.
#[derive(Message)]
#[rtype(result = "()")]
struct InstallDone {
    name: String,
    result: Result<(), String>,
}

impl NotebookRoom {
    /// Queues again every package the layer lacks; call once when the room starts.
    pub(super) fn restore_packages(&mut self, ctx: &mut Context<Self>) {
        let missing = self.packages.missing_from_layer();
        if missing.is_empty() {
            return;
        }
        log::info!(
            "notebook {}: re-installing {} package(s) into its layer",
            self.state.id,
            missing.len()
        );
        self.packages.queue.extend(missing);
        self.next_install(ctx);
    }

    fn package_event(&mut self, name: &str, line: Option<&str>) {
        let Some(entry) = self
            .packages
            .entries
            .iter()
            .find(|e| e.requirement.name == name)
        else {
            return;
        };
        let mut event = entry.wire();
        event["type"] = json!("package_install");
        if let Some(line) = line {
            event["line"] = json!(line);
        }
        self.broadcast(event);
    }

    fn persist_package(&self, name: &str) {
        let Some(entry) = self
            .packages
            .entries
            .iter()
            .find(|e| e.requirement.name == name)
        else {
            return;
        };
        let store = self.store.clone();
        let id = self.state.id.clone();
        let entry = entry.clone();
        tokio::spawn(async move {
            let saved = store
                .save_package(
                    &id,
                    &entry.requirement.name,
                    entry.requirement.version.as_deref(),
                    entry.state.as_str(),
                    entry.error.as_deref(),
                )
                .await;
            if let Err(e) = saved {
                log::error!(
                    "saving package {} of {id} failed: {e}",
                    entry.requirement.name
                );
            }
        });
    }

    /// Starts the next queued install, if none runs.
    fn next_install(&mut self, ctx: &mut Context<Self>) {
        if self.packages.running.is_some() {
            return;
        }
        let Some(name) = self.packages.queue.pop_front() else {
            return;
        };
        let Some(entry) = self
            .packages
            .entries
            .iter()
            .find(|e| e.requirement.name == name)
        else {
            return self.next_install(ctx);
        };
        let requirement = entry.requirement.clone();
        let environment = self.registry.environment().clone();
        let layer = self.packages.layer.clone();
        let wheels_dir = self.packages.wheels_dir.clone();
        let (memory_mb, limits) = (self.exec_config.memory_mb, self.exec_config.limits.clone());
        let addr = ctx.address();
        let notebook = self.state.id.clone();
        let task = tokio::spawn(async move {
            // Installs wait for the managed environment, whose pip they use.
            let python = environment.python().await;
            log::info!("notebook {notebook}: installing {}", requirement.pip_arg());
            let result = match layer.site_dirs(&python).await {
                Ok(site_dirs) => {
                    let job = InstallJob {
                        python,
                        layer,
                        site_dirs,
                        requirement: requirement.clone(),
                        wheels_dir,
                        memory_mb,
                        limits,
                    };
                    let (tx, mut rx) = mpsc::unbounded_channel();
                    let name = requirement.name.clone();
                    let lines = addr.clone();
                    let relay = tokio::spawn(async move {
                        while let Some(line) = rx.recv().await {
                            lines.do_send(InstallLine {
                                name: name.clone(),
                                line,
                            });
                        }
                    });
                    let result = install(&job, tx).await;
                    let _ = relay.await;
                    result
                }
                Err(e) => Err(e),
            };
            match &result {
                Ok(()) => log::info!("notebook {notebook}: installed {}", requirement.pip_arg()),
                Err(e) => log::warn!(
                    "notebook {notebook}: installing {} failed: {}",
                    requirement.pip_arg(),
                    e.lines().next().unwrap_or("")
                ),
            }
            addr.do_send(InstallDone {
                name: requirement.name,
                result,
            });
        });
        self.packages.running = Some((name, task.abort_handle()));
    }
}

impl Handler<InstallPackage> for NotebookRoom {
    type Result = ResponseActFuture<Self, Result<Value, ApiError>>;

    fn handle(&mut self, msg: InstallPackage, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let requirement = msg.0;
        let name = requirement.name.clone();
        if self.packages.queue.contains(&name)
            || matches!(&self.packages.running, Some((running, _)) if *running == name)
        {
            return Box::pin(fut::ready(Err(ApiError::Conflict(format!(
                "{name} is already being installed"
            )))));
        }
        let store = self.store.clone();
        let id = self.state.id.clone();
        let saved = requirement.clone();
        Box::pin(
            async move {
                store
                    .save_package(
                        &id,
                        &saved.name,
                        saved.version.as_deref(),
                        "installing",
                        None,
                    )
                    .await
            }
            .into_actor(self)
            .map(move |stored, room, ctx| {
                stored.map_err(ApiError::from)?;
                let entry = PackageEntry {
                    requirement: requirement.clone(),
                    state: PackageState::Installing,
                    error: None,
                };
                match room.packages.entry_mut(&requirement.name) {
                    Some(existing) => *existing = entry.clone(),
                    None => room.packages.entries.push(entry.clone()),
                }
                room.packages.queue.push_back(requirement.name.clone());
                room.package_event(&requirement.name, None);
                room.next_install(ctx);
                Ok(entry.wire())
            }),
        )
    }
}

impl Handler<InstallLine> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, msg: InstallLine, _: &mut Self::Context) {
        self.touch();
        self.package_event(&msg.name, Some(&msg.line));
    }
}

impl Handler<InstallDone> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, msg: InstallDone, ctx: &mut Self::Context) {
        self.touch();
        if matches!(&self.packages.running, Some((running, _)) if *running == msg.name) {
            self.packages.running = None;
        }
        let recorded = match &msg.result {
            Ok(()) => self
                .packages
                .entries
                .iter()
                .find(|e| e.requirement.name == msg.name)
                .map(|e| e.requirement.pip_arg())
                .map(|arg| self.packages.layer.record(&msg.name, Some(&arg)))
                .transpose()
                .map_err(|e| format!("cannot record the install: {e}")),
            Err(e) => Err(e.clone()),
        };
        if let Some(entry) = self.packages.entry_mut(&msg.name) {
            match recorded {
                Ok(_) => {
                    entry.state = PackageState::Installed;
                    entry.error = None;
                }
                Err(error) => {
                    entry.state = PackageState::Failed;
                    entry.error = Some(error);
                }
            }
        }
        self.persist_package(&msg.name);
        self.package_event(&msg.name, None);
        self.next_install(ctx);
    }
}
