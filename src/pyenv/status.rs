//! What `GET /api/environment` reports: the environment's state, interpreter and progress.

use serde::Serialize;

/// Where provisioning stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = EnvironmentState)]
pub enum State {
    /// The virtualenv is being created or its packages installed; kernels wait.
    Provisioning,
    /// Kernels run the interpreter in `python`.
    Ready,
    /// Provisioning failed; kernels run the bare host interpreter in `python`.
    Failed,
}

/// Steps done out of the total, and the one under way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = EnvironmentProgress)]
pub struct Progress {
    /// Steps finished.
    pub done: u64,
    /// All steps.
    pub total: u64,
    /// The step under way (empty when none).
    pub current: String,
}

/// A snapshot of the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = EnvironmentStatus)]
pub struct Status {
    /// Provisioning state.
    pub state: State,
    /// The interpreter kernels use (or will use once ready).
    pub python: String,
    /// Whether the server provisions this environment (`PYTHON` unset).
    pub managed: bool,
    /// Progress of the current or last provisioning.
    pub progress: Progress,
    /// pip's (or venv's) error when provisioning failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
