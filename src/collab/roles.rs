//! Roles on a notebook (viewer < editor < owner) and the check every route makes.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::ApiError;

/// What a user may do on one notebook; later variants may do everything earlier ones may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads the notebook and joins over WebSocket to see outputs live.
    Viewer,
    /// A viewer who may also create, edit, move, delete and run cells, interrupt and restart.
    Editor,
    /// An editor who may also rename, set the database, manage invites and members, delete.
    Owner,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }

    /// Parses a wire name (`owner` included).
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// Parses a role that can be granted to a member (`editor` or `viewer`, never `owner`).
    pub fn parse_grantable(text: &str) -> Result<Role, ApiError> {
        match Role::parse(text) {
            Some(role @ (Role::Editor | Role::Viewer)) => Ok(role),
            _ => Err(ApiError::Unprocessable(format!(
                "role must be 'editor' or 'viewer', not '{text}'"
            ))),
        }
    }

    /// Whether this role may change the notebook (cells, runs, kernel).
    pub fn can_edit(self) -> bool {
        self >= Role::Editor
    }
}

/// Checks the caller's role (`None`: not a member) against what an action `needs`.
/// A non-member gets the same 404 as for a missing notebook; a member lacking the right 403.
pub fn require(role: Option<Role>, needs: Role) -> Result<Role, ApiError> {
    match role {
        None => Err(ApiError::notebook_not_found()),
        Some(role) if role >= needs => Ok(role),
        Some(role) => Err(ApiError::Forbidden(format!(
            "this needs the {} role on the notebook; you are a {}",
            needs.as_str(),
            role.as_str()
        ))),
    }
}

/// A session's current role, shared between the WebSocket session and its room so that a
/// role change applies to an open socket at once.
#[derive(Debug)]
pub struct SessionRole(AtomicU8);

impl SessionRole {
    /// Starts at `role`.
    pub fn new(role: Role) -> SessionRole {
        SessionRole(AtomicU8::new(encode(role)))
    }

    /// The current role.
    pub fn get(&self) -> Role {
        match self.0.load(Ordering::Acquire) {
            2 => Role::Owner,
            1 => Role::Editor,
            _ => Role::Viewer,
        }
    }

    /// Replaces the role.
    pub fn set(&self, role: Role) {
        self.0.store(encode(role), Ordering::Release);
    }
}

fn encode(role: Role) -> u8 {
    match role {
        Role::Viewer => 0,
        Role::Editor => 1,
        Role::Owner => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_checks() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Owner);
        assert!(require(Some(Role::Owner), Role::Editor).is_ok());
        assert!(matches!(
            require(Some(Role::Viewer), Role::Editor),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            require(None, Role::Viewer),
            Err(ApiError::NotFound(_))
        ));
        assert!(Role::parse_grantable("owner").is_err());
        let shared = SessionRole::new(Role::Editor);
        shared.set(Role::Viewer);
        assert_eq!(shared.get(), Role::Viewer);
    }
}
