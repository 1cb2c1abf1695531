//! `src/db/schema.rs` is written by hand for both backends (diesel.toml does not regenerate it),
//! so it is compared here with the tables every migration produces, on SQLite and PostgreSQL:
//! table names, column names in order, types, nullability and primary keys. The expectations
//! are parsed from schema.rs itself, so a new migration plus its schema.rs change need no edit.

mod common;

use std::collections::BTreeMap;

use common::{Backend, TestDb};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use reactive_notebook::config::DatabaseTarget;
use reactive_notebook::db::migrate;

/// One column as both sides describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// Diesel's SQL type name without `Nullable<>` (`Text`, `BigInt`, ...).
    sql_type: String,
    nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Table {
    primary_key: Vec<String>,
    columns: Vec<Column>,
}

type Schema = BTreeMap<String, Table>;

/// Parses the `diesel::table!` blocks of a schema.rs text.
fn parse_schema_rs(text: &str) -> Schema {
    let mut schema = Schema::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line != "diesel::table! {" {
            continue;
        }
        let header = lines.next().expect("a table! block has a header line");
        let (name, rest) = header.split_once('(').expect("header is `name (pk) {`");
        let pk = rest.split_once(')').expect("header closes its key list").0;
        let mut table = Table {
            primary_key: pk.split(',').map(|c| c.trim().to_string()).collect(),
            columns: Vec::new(),
        };
        for line in lines.by_ref() {
            if line == "}" {
                break;
            }
            if line.is_empty() || line.starts_with("//") || line.starts_with('#') {
                continue;
            }
            let (col, ty) = line
                .trim_end_matches(',')
                .split_once("->")
                .unwrap_or_else(|| panic!("column line `{line}` is `name -> Type,`"));
            let ty = ty.trim();
            let (sql_type, nullable) = match ty
                .strip_prefix("Nullable<")
                .and_then(|t| t.strip_suffix('>'))
            {
                Some(inner) => (inner.to_string(), true),
                None => (ty.to_string(), false),
            };
            table.columns.push(Column {
                name: col.trim().to_string(),
                sql_type: canonical_diesel_type(&sql_type),
                nullable,
            });
        }
        schema.insert(name.trim().to_string(), table);
    }
    schema
}

/// Diesel's aliases collapse to one name each (`Int4` is `Integer`, ...).
fn canonical_diesel_type(ty: &str) -> String {
    match ty {
        "Int4" => "Integer",
        "Int8" => "BigInt",
        "Int2" => "SmallInt",
        "Bool" => "Bool",
        "Float8" => "Double",
        "Float4" => "Float",
        "Varchar" => "Text",
        "Bytea" => "Binary",
        other => other,
    }
    .to_string()
}

/// The diesel type a PostgreSQL `information_schema` data type maps to.
fn pg_type(data_type: &str) -> String {
    match data_type {
        "text" | "character varying" => "Text",
        "timestamp without time zone" => "Timestamp",
        "timestamp with time zone" => "Timestamptz",
        "bigint" => "BigInt",
        "integer" => "Integer",
        "smallint" => "SmallInt",
        "boolean" => "Bool",
        "double precision" => "Double",
        "real" => "Float",
        "bytea" => "Binary",
        "date" => "Date",
        other => other,
    }
    .to_string()
}

/// The diesel type a SQLite declared column type maps to (the names the migrations use).
fn sqlite_type(declared: &str) -> String {
    let upper = declared.to_ascii_uppercase();
    match upper.split('(').next().unwrap_or("").trim() {
        "TEXT" | "VARCHAR" => "Text",
        "TIMESTAMP" | "DATETIME" => "Timestamp",
        "BIGINT" => "BigInt",
        "INTEGER" | "INT" => "Integer",
        "SMALLINT" => "SmallInt",
        "BOOLEAN" | "BOOL" => "Bool",
        "DOUBLE" | "REAL" => "Double",
        "FLOAT" => "Float",
        "BLOB" => "Binary",
        "DATE" => "Date",
        _ => return declared.to_string(),
    }
    .to_string()
}

/// Every difference between schema.rs and a database, one line each.
fn differences(expected: &Schema, found: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for name in expected.keys().filter(|n| !found.contains_key(*n)) {
        out.push(format!(
            "table {name} is in schema.rs but not in the database"
        ));
    }
    for name in found.keys().filter(|n| !expected.contains_key(*n)) {
        out.push(format!(
            "table {name} is in the database but not in schema.rs"
        ));
    }
    for (name, want) in expected {
        let Some(got) = found.get(name) else { continue };
        if want.primary_key != got.primary_key {
            out.push(format!(
                "{name}: primary key {:?} in schema.rs, {:?} in the database",
                want.primary_key, got.primary_key
            ));
        }
        if want.columns != got.columns {
            out.push(format!(
                "{name}: columns differ\n  schema.rs: {:?}\n  database:  {:?}",
                want.columns, got.columns
            ));
        }
    }
    out
}

fn schema_rs() -> Schema {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/db/schema.rs");
    let text = std::fs::read_to_string(path).expect("read src/db/schema.rs");
    let schema = parse_schema_rs(&text);
    assert!(
        !schema.is_empty() && schema.values().all(|t| !t.columns.is_empty()),
        "no tables parsed from schema.rs: {schema:?}"
    );
    schema
}

/// Tables the migration machinery owns, not the application.
fn is_bookkeeping(table: &str) -> bool {
    table == "__diesel_schema_migrations" || table.starts_with("sqlite_")
}

async fn postgres_schema(url: &str) -> Schema {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the migrated database");
    let task = tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .expect("read information_schema.columns");
    let mut schema = Schema::new();
    for row in rows {
        let table: String = row.get(0);
        if is_bookkeeping(&table) {
            continue;
        }
        let data_type: String = row.get(2);
        let nullable: String = row.get(3);
        schema.entry(table).or_default().columns.push(Column {
            name: row.get(1),
            sql_type: pg_type(&data_type),
            nullable: nullable == "YES",
        });
    }
    let keys = client
        .query(
            "SELECT tc.table_name::text, kcu.column_name::text \
             FROM information_schema.table_constraints tc \
             JOIN information_schema.key_column_usage kcu \
               ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema \
             WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema() \
             ORDER BY tc.table_name, kcu.ordinal_position",
            &[],
        )
        .await
        .expect("read primary keys");
    for row in keys {
        let table: String = row.get(0);
        if let Some(t) = schema.get_mut(&table) {
            t.primary_key.push(row.get(1));
        }
    }
    drop(client);
    let _ = task.await;
    schema
}

#[derive(QueryableByName)]
struct SqliteTable {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    declared: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    notnull: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pk: i32,
}

fn sqlite_schema(path: &std::path::Path) -> Schema {
    let mut conn = diesel::sqlite::SqliteConnection::establish(&path.to_string_lossy())
        .expect("open the migrated SQLite file");
    let tables: Vec<SqliteTable> =
        diesel::sql_query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .load(&mut conn)
            .expect("list tables");
    let mut schema = Schema::new();
    for SqliteTable { name } in tables.into_iter().filter(|t| !is_bookkeeping(&t.name)) {
        let columns: Vec<SqliteColumn> = diesel::sql_query(
            "SELECT name, type AS declared, \"notnull\", pk FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind::<diesel::sql_types::Text, _>(&name)
        .load(&mut conn)
        .expect("read pragma_table_info");
        let mut keyed: Vec<(i32, String)> = columns
            .iter()
            .filter(|c| c.pk > 0)
            .map(|c| (c.pk, c.name.clone()))
            .collect();
        keyed.sort();
        let table = Table {
            primary_key: keyed.into_iter().map(|(_, n)| n).collect(),
            columns: columns
                .into_iter()
                .map(|c| Column {
                    // SQLite lets a non-INTEGER primary key hold NULL unless declared NOT NULL;
                    // diesel's own print-schema treats key columns as NOT NULL, and so do we.
                    nullable: c.notnull == 0 && c.pk == 0,
                    sql_type: sqlite_type(&c.declared),
                    name: c.name,
                })
                .collect(),
        };
        schema.insert(name, table);
    }
    schema
}

async fn migrated_schema(backend: Backend) -> (TestDb, Schema) {
    let db = TestDb::new(backend).await;
    let applied = migrate::run_pending(&db.target)
        .await
        .expect("migrations apply");
    assert!(!applied.is_empty(), "a fresh database gets every migration");
    let schema = match &db.target {
        DatabaseTarget::Postgres(url) => postgres_schema(url).await,
        DatabaseTarget::Sqlite(path) => sqlite_schema(path),
    };
    (db, schema)
}

async fn schema_rs_matches(backend: Backend) {
    let (db, found) = migrated_schema(backend).await;
    let diffs = differences(&schema_rs(), &found);
    db.cleanup().await;
    assert!(
        diffs.is_empty(),
        "src/db/schema.rs does not match the {backend:?} migrations:\n{}",
        diffs.join("\n")
    );
}

#[tokio::test]
async fn schema_rs_matches_sqlite_migrations() {
    schema_rs_matches(Backend::Sqlite).await;
}

#[tokio::test]
async fn schema_rs_matches_postgres_migrations() {
    schema_rs_matches(Backend::Postgres).await;
}

/// The comparison notices a wrong nullability, a wrong type, a missing and an extra table.
#[tokio::test]
async fn a_schema_rs_that_drifted_is_caught() {
    let (db, found) = migrated_schema(Backend::Sqlite).await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/db/schema.rs"))
        .expect("read schema.rs");
    db.cleanup().await;
    let drifted = text
        .replacen("name -> Text,", "name -> Nullable<Text>,", 1)
        .replacen("revision -> BigInt,", "revision -> Integer,", 1)
        .replacen("users (id) {", "people (id) {", 1);
    let diffs = differences(&parse_schema_rs(&drifted), &found);
    let all = diffs.join("\n");
    assert!(all.contains("table people is in schema.rs"), "{all}");
    assert!(all.contains("table users is in the database"), "{all}");
    assert!(all.contains("notebooks: columns differ"), "{all}");
    assert!(
        differences(&parse_schema_rs(&text), &found).is_empty(),
        "the committed schema.rs matches"
    );
}
