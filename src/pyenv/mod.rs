//! The kernels' Python environment. With `PYTHON` set, kernels run that interpreter and nothing
//! is provisioned. Without it, the server owns a virtualenv under `DATA_DIR/python/` with a
//! default data stack, built in the background on start; kernels wait for it, and fall back to
//! the bare host interpreter if it fails.

pub mod installer;
pub mod packages;
pub mod progress;
pub mod provision;
pub mod stamp;
pub mod status;

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use installer::Source;
use progress::Reporter;
use provision::Plan;
pub use status::{Progress, State, Status};

/// Why a retry was refused.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// `PYTHON` is set: there is nothing to provision.
    #[error("the Python environment is not managed by the server (PYTHON is set)")]
    NotManaged,
    /// The environment is ready.
    #[error("the Python environment is already ready")]
    AlreadyReady,
}

/// A shared handle on the kernels' Python environment.
#[derive(Clone, Debug)]
pub struct Environment {
    status: watch::Sender<Status>,
    plan: Option<Arc<Plan>>,
}

impl Environment {
    /// The environment the settings ask for; a managed one starts provisioning in the
    /// background at once (call from within a Tokio runtime).
    pub fn start(config: &Config) -> Environment {
        if !config.managed_python {
            return Environment::fixed(config.python.clone());
        }
        let plan = Plan {
            base_python: config.python.clone(),
            venv: config.data_dir.join("python"),
            requirements: provision::REQUIREMENTS.to_string(),
            source: Source {
                wheels_dir: config.python_wheels_dir.clone(),
            },
        };
        let (status, _) = watch::channel(Status {
            state: State::Provisioning,
            python: installer::venv_python(&plan.venv).display().to_string(),
            managed: true,
            progress: Progress::default(),
            error: None,
        });
        let env = Environment {
            status,
            plan: Some(Arc::new(plan)),
        };
        env.spawn_run();
        env
    }

    /// An environment that is just this interpreter (`PYTHON` set).
    pub fn fixed(python: String) -> Environment {
        let (status, _) = watch::channel(Status {
            state: State::Ready,
            python,
            managed: false,
            progress: Progress::default(),
            error: None,
        });
        Environment { status, plan: None }
    }

    /// The current state.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// The interpreter kernels use now, or `None` while provisioning.
    pub fn python_now(&self) -> Option<String> {
        let status = self.status.borrow();
        (status.state != State::Provisioning).then(|| status.python.clone())
    }

    /// The interpreter kernels use, once provisioning is over (the managed one when ready, the
    /// bare host interpreter when it failed).
    pub async fn python(&self) -> String {
        let mut rx = self.status.subscribe();
        let python = match rx.wait_for(|s| s.state != State::Provisioning).await {
            Ok(status) => status.python.clone(),
            // Unreachable while `self` holds the sender; answer the current value anyway.
            Err(_) => self.status.borrow().python.clone(),
        };
        python
    }

    /// Starts provisioning again after a failure (a no-op while it runs).
    pub fn retry(&self) -> Result<(), RetryError> {
        if self.plan.is_none() {
            return Err(RetryError::NotManaged);
        }
        let mut start = false;
        let mut ready = false;
        self.status.send_if_modified(|s| match s.state {
            State::Failed => {
                s.state = State::Provisioning;
                s.error = None;
                start = true;
                true
            }
            State::Ready => {
                ready = true;
                false
            }
            State::Provisioning => false,
        });
        if ready {
            return Err(RetryError::AlreadyReady);
        }
        if start {
            self.spawn_run();
        }
        Ok(())
    }

    fn spawn_run(&self) {
        let Some(plan) = self.plan.clone() else {
            return;
        };
        let status = self.status.clone();
        tokio::spawn(async move {
            let target = installer::venv_python(&plan.venv).display().to_string();
            let reporter = Reporter::start(status, provision::step_count(&plan), target);
            match provision::run(&plan, &reporter).await {
                Ok(python) => reporter.ready(python.display().to_string()),
                Err(error) => reporter.failed(error, plan.base_python.clone()),
            }
        });
    }
}
