//! The notebook domain: cells, their names, and the demo notebook.

pub mod analysis;
pub mod cell;
pub mod demo;
pub mod graph;
pub mod io;

pub use cell::{Cell, CellStatus, CellType};
