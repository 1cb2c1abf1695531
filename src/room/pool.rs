//! Spare kernels started ahead of time (`KERNEL_POOL`), so a new notebook's first run does
//! not wait for Python to start.
//!
//! A spare is an ordinary sandboxed kernel started on folders of its own (a work dir and an
//! empty package layer). A brand-new notebook (neither folder exists yet) adopts it: its
//! folders are renamed to the notebook's, which the kernel keeps seeing because its mount
//! view binds the directories, not their names. Spares hold quota slots of their own, owned
//! by nobody: they count against `MAX_KERNELS`, never against a user's `KERNELS_PER_USER`,
//! and being idle they are the first stopped when a run needs room.

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::prelude::*;

use crate::config::KernelLimits;
use crate::kernel::{Kernel, KernelConfig};
use crate::pyenv::packages::Layer;
use crate::pyenv::Environment;

use super::executor::layer_env;
use super::messages::StopKernelForQuota;
use super::quota::{KernelQuota, KernelSlot, SlotRequest};

/// The quota owner of spare kernels: no user has this id (ids are never empty).
pub const SPARE_OWNER: &str = "";
/// Folder name prefix of spares' work dirs and layers.
const SPARE_PREFIX: &str = ".spare-";
/// How long after a failed start the pool tries again.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// How often the pool checks whether the Python environment is ready.
const ENVIRONMENT_POLL: Duration = Duration::from_secs(1);

/// What spares are started with.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Spares to keep.
    pub size: usize,
    /// The server's data directory (spares' folders live under `kernels/` and `packages/`).
    pub data_dir: PathBuf,
    /// The kernels' Python environment.
    pub environment: Environment,
    /// Kernel memory limit (MiB).
    pub memory_mb: u64,
    /// Sandbox and resource limits.
    pub limits: KernelLimits,
}

/// A spare kernel, handed to a notebook by [`Spare::adopt`].
pub struct Spare {
    kernel: Kernel,
    python: String,
    work_dir: PathBuf,
    layer_root: PathBuf,
    /// Released once the kernel belongs to a notebook (whose own slot then counts it).
    _slot: KernelSlot,
}

impl Spare {
    /// The interpreter the spare runs.
    pub fn python(&self) -> &str {
        &self.python
    }

    /// Moves the spare's folders to `work_dir` and `layer_root` (neither may exist) and
    /// returns its kernel; on failure the spare is stopped and its folders removed.
    pub async fn adopt(self, work_dir: &Path, layer_root: &Path) -> Result<Kernel, String> {
        let moved = move_dir(&self.work_dir, work_dir)
            .and_then(|()| move_dir(&self.layer_root, layer_root));
        match moved {
            Ok(()) => {
                self.kernel.set_spare(false);
                Ok(self.kernel)
            }
            Err(e) => {
                let Spare {
                    kernel,
                    work_dir: own_work_dir,
                    layer_root: own_layer,
                    ..
                } = self;
                kernel.shutdown().await;
                // What was not moved is still the spare's; what was is an empty new folder.
                let _ = std::fs::remove_dir_all(own_work_dir);
                let _ = std::fs::remove_dir_all(own_layer);
                Err(e)
            }
        }
    }
}

fn move_dir(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::rename(from, to)
        .map_err(|e| format!("moving {} to {}: {e}", from.display(), to.display()))
}

/// Asks for a spare running `python`, if one is ready.
#[derive(Message)]
#[rtype(result = "Option<Spare>")]
pub struct TakeSpare {
    /// The interpreter the notebook's kernel would run.
    pub python: String,
}

/// Starts spares until the pool is full (or the quota says no).
#[derive(Message)]
#[rtype(result = "()")]
struct Refill;

/// The pool actor.
pub struct KernelPool {
    config: PoolConfig,
    quota: KernelQuota,
    spares: Vec<Spare>,
    starting: usize,
    /// Slots of spares still starting that the quota asked back: discarded once started.
    doomed: std::collections::HashSet<u64>,
}

impl KernelPool {
    /// Starts the pool (removing spares' folders a previous run left behind).
    pub fn start(config: PoolConfig, quota: KernelQuota) -> Addr<KernelPool> {
        for parent in ["kernels", "packages"] {
            remove_leftovers(&config.data_dir.join(parent));
        }
        KernelPool {
            config,
            quota,
            spares: Vec::new(),
            starting: 0,
            doomed: Default::default(),
        }
        .start()
    }
}

fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(SPARE_PREFIX)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Actor for KernelPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.notify(Refill);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // The runtime may be going away: dropping a kernel kills it; the folders go now.
        for spare in self.spares.drain(..) {
            let _ = std::fs::remove_dir_all(&spare.work_dir);
            let _ = std::fs::remove_dir_all(&spare.layer_root);
        }
    }
}

impl Handler<Refill> for KernelPool {
    type Result = ();

    fn handle(&mut self, _: Refill, ctx: &mut Self::Context) {
        if self.spares.len() + self.starting >= self.config.size {
            return;
        }
        if self.config.environment.python_now().is_none() {
            ctx.notify_later(Refill, ENVIRONMENT_POLL);
            return;
        }
        let request = SlotRequest {
            owner: SPARE_OWNER,
            notebook_id: "(spare kernel)",
            replacing: None,
            room: ctx.address().recipient(),
        };
        // Only in a free slot: a spare never stops anyone's kernel.
        let Some(slot) = self.quota.acquire_free(request) else {
            ctx.notify_later(Refill, RETRY_AFTER);
            return;
        };
        self.starting += 1;
        let config = self.config.clone();
        ctx.spawn(
            async move {
                let started = start_spare(&config).await;
                (started, slot)
            }
            .into_actor(self)
            .map(|(started, slot), pool, ctx| {
                pool.starting -= 1;
                match started {
                    Ok((kernel, python, work_dir, layer_root))
                        if pool.doomed.remove(&slot.ticket()) =>
                    {
                        let spare = Spare {
                            kernel,
                            python,
                            work_dir,
                            layer_root,
                            _slot: slot,
                        };
                        actix::spawn(discard(spare));
                        ctx.notify_later(Refill, RETRY_AFTER);
                    }
                    Ok((kernel, python, work_dir, layer_root)) => {
                        log::info!(
                            "spare kernel ready ({} of {})",
                            pool.spares.len() + 1,
                            pool.config.size
                        );
                        pool.spares.push(Spare {
                            kernel,
                            python,
                            work_dir,
                            layer_root,
                            _slot: slot,
                        });
                        ctx.notify(Refill);
                    }
                    Err(e) => {
                        log::warn!("spare kernel did not start: {e}");
                        pool.doomed.remove(&slot.ticket());
                        drop(slot);
                        ctx.notify_later(Refill, RETRY_AFTER);
                    }
                }
            }),
        );
    }
}

impl Handler<TakeSpare> for KernelPool {
    type Result = MessageResult<TakeSpare>;

    fn handle(&mut self, msg: TakeSpare, ctx: &mut Self::Context) -> Self::Result {
        let at = self.spares.iter().position(|s| s.python == msg.python);
        let spare = at.map(|i| self.spares.swap_remove(i));
        if spare.is_some() {
            ctx.notify(Refill);
        }
        MessageResult(spare)
    }
}

impl Handler<StopKernelForQuota> for KernelPool {
    type Result = ();

    fn handle(&mut self, msg: StopKernelForQuota, ctx: &mut Self::Context) {
        if let Some(i) = self
            .spares
            .iter()
            .position(|s| s._slot.ticket() == msg.ticket)
        {
            log::info!("spare kernel stopped to make room for a notebook's kernel");
            let spare = self.spares.swap_remove(i);
            actix::spawn(discard(spare));
        } else if self.starting > 0 {
            // Still starting: it goes as soon as it is up.
            self.doomed.insert(msg.ticket);
        }
        // Try again later: room may free up.
        ctx.notify_later(Refill, RETRY_AFTER);
    }
}

/// Stops a spare, removes its folders, then gives its slot back.
async fn discard(spare: Spare) {
    let Spare {
        kernel,
        work_dir,
        layer_root,
        _slot,
        ..
    } = spare;
    kernel.shutdown().await;
    let _ = tokio::fs::remove_dir_all(&work_dir).await;
    let _ = tokio::fs::remove_dir_all(&layer_root).await;
    drop(_slot);
}

/// Starts one spare kernel on fresh folders.
async fn start_spare(config: &PoolConfig) -> Result<(Kernel, String, PathBuf, PathBuf), String> {
    let name = format!("{SPARE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let work_dir = config.data_dir.join("kernels").join(&name);
    let layer = Layer {
        root: config.data_dir.join("packages").join(&name),
    };
    let python = config.environment.python().await;
    let (extra_env, read_only_dirs) = layer_env(&layer, &python).await;
    if read_only_dirs.is_empty() {
        // Without its own layer a spare could not see the packages its notebook installs.
        let _ = std::fs::remove_dir_all(&layer.root);
        return Err("its package layer could not be prepared".into());
    }
    let kernel_config = KernelConfig {
        python: python.clone(),
        work_dir: work_dir.clone(),
        memory_mb: config.memory_mb,
        extra_env,
        limits: config.limits.clone(),
        read_only_dirs,
    };
    match Kernel::spawn(&kernel_config).await {
        Ok(kernel) => {
            kernel.set_spare(true);
            Ok((kernel, python, work_dir, layer.root))
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work_dir);
            let _ = std::fs::remove_dir_all(&layer.root);
            Err(e.to_string())
        }
    }
}
