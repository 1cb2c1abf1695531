//! Collaboration: per-cell Yjs documents shared by a notebook's sessions.

pub mod yjs;
