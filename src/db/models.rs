//! Rows of the notebook store, as diesel reads and writes them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{cells, notebook_packages, notebooks, users};

/// A row of `notebooks`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notebooks)]
pub struct NotebookRow {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub db_conn_string: Option<String>,
    pub revision: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A row of `cells`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cells)]
pub struct CellRow {
    pub id: String,
    pub notebook_id: String,
    pub position: i32,
    pub cell_type: String,
    pub code: String,
    pub code_revision: i64,
    pub status: String,
    pub stdout: String,
    pub error: Option<String>,
    pub outputs: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The Python name a SQL cell's result is bound to (None for Python cells).
    pub result_name: Option<String>,
}

/// A row of `users`.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub created_at: NaiveDateTime,
}

/// The result fields of a cell run, saved together.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = cells, treat_none_as_null = true)]
pub struct CellRunState {
    pub status: String,
    pub stdout: String,
    pub error: Option<String>,
    pub outputs: String,
    pub updated_at: NaiveDateTime,
}

/// A row of `notebook_packages`: one package a notebook installs into its layer.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notebook_packages)]
pub struct PackageRow {
    pub notebook_id: String,
    /// The normalized distribution name (PEP 503).
    pub name: String,
    /// The version specifier, e.g. `==1.2` or `>=2,<3`.
    pub version: Option<String>,
    /// `installing`, `installed` or `failed`.
    pub state: String,
    /// Why the install failed.
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}
