//! Notebook rooms: one actor per open notebook, the single writer of its live state.

pub mod actor;
pub mod executor;
pub mod messages;
pub mod outbox;
pub mod packages;
pub mod pool;
pub mod quota;
pub mod registry;
pub mod run;
pub mod staleness;
pub mod state;
pub mod variables;

pub use actor::NotebookRoom;
pub use registry::RoomRegistry;

/// Tells a session that its outbox has events (or a close order) to write.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
pub struct Wake;
