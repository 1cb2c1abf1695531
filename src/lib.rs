//! A self-hostable server for reactive Python and SQL notebooks.

pub mod api;
pub mod assistant;
pub mod auth;
pub mod check;
pub mod cluster;
pub mod collab;
pub mod config;
pub mod data_dir;
pub mod db;
pub mod error;
pub mod headless;
pub mod kernel;
pub mod metrics;
pub mod notebook;
pub mod pyenv;
pub mod room;
pub mod schedule;
pub mod server;
pub mod sql;
pub mod ws;
