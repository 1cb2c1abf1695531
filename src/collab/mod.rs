//! Collaboration: roles and access checks, members, invites, and presence.

pub mod invites;
pub mod members;
pub mod presence;
pub mod roles;

pub use roles::{Role, SessionRole};
