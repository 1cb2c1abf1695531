//! Collaboration: roles and access checks, members, invites, presence, and the per-cell Yjs
//! documents a notebook's sessions co-edit.

pub mod cursor;
pub mod invites;
pub mod members;
pub mod presence;
pub mod roles;
pub mod yjs;

pub use roles::{Role, SessionRole};
