//! Per-notebook packages: validated requirements, the notebook's layer, and the sandboxed
//! installer that fills it.

pub mod install;
pub mod layer;
pub mod requirement;

pub use install::{install, InstallJob};
pub use layer::Layer;
pub use requirement::{Requirement, RequirementError};
