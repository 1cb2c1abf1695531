//! Notebook rooms: one actor per open notebook, the single writer of its live state.

pub mod actor;
pub mod executor;
pub mod messages;
pub mod registry;
pub mod run;
pub mod state;

pub use actor::NotebookRoom;
pub use registry::RoomRegistry;

/// One event for a session, already serialised (shared by every session it goes to).
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "()")]
pub struct Broadcast(pub std::sync::Arc<String>);
