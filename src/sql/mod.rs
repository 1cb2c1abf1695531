//! SQL cells against the notebook's PostgreSQL database.

pub mod conn_string;
pub mod destination;
pub mod host_policy;
pub mod params;
pub mod render;
pub mod runner;
