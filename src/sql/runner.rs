//! Running one SQL cell against the notebook's PostgreSQL database.
//!
//! Each run opens its own connection (NoTls, 10 s connect timeout), sets the session's
//! `statement_timeout` and `TimeZone = 'UTC'`, prepares the cell's single statement with every
//! `{name}` placeholder rewritten to a bound parameter `$k`, converts the Python values to the
//! parameter types the server reports, streams the rows (keeping the first `max_rows`, counting
//! the rest) and closes the connection. One connection per run keeps runs independent (no
//! session state leaks between cells, a cancelled or timed-out run cannot poison a pool).

use std::collections::HashMap;
use std::ops::Range;
use std::pin::pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::TryStreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::{DbError, ErrorPosition, SqlState};
use tokio_postgres::types::Type;
use tokio_postgres::{CancelToken, Client, Config, NoTls, Statement};

use super::conn_string::mask_password;
use super::destination::{resolve_and_pin, DestinationError};
use super::host_policy::HostPolicy;
use super::params::{convert_value, infer_type, PgParam};
use super::render::{render_value, RawValue};

/// How long to wait for the database connection to be established.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One SQL cell to run.
#[derive(Clone, Copy)]
pub struct SqlRequest<'a> {
    /// The notebook's connection string (`postgres://...`); empty means none configured.
    pub conn_string: &'a str,
    /// The cell's SQL text, with `{name}` placeholders.
    pub code: &'a str,
    /// Byte range of each `{name}` placeholder in `code` and its name.
    pub placeholders: &'a [(Range<usize>, String)],
    /// The kernel's JSON encoding of each distinct name's value, in [`values_order`] order.
    pub values: &'a [Value],
    /// Maximum run time of the query.
    pub timeout: Duration,
    /// Maximum number of rows kept in the output table.
    pub max_rows: usize,
    /// Which hosts the connection may reach (`SQL_ALLOWED_HOSTS` / `SQL_DENIED_HOSTS`).
    pub hosts: &'a HostPolicy,
}

impl std::fmt::Debug for SqlRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlRequest")
            .field("conn_string", &mask_password(self.conn_string))
            .field("code", &self.code)
            .field("placeholders", &self.placeholders)
            .field("values", &self.values)
            .field("timeout", &self.timeout)
            .field("max_rows", &self.max_rows)
            .field("hosts", &self.hosts)
            .finish()
    }
}

/// The result of a successful SQL cell.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlOutcome {
    /// A result set, as the cell's output object (`application/json` table).
    Table(Value),
    /// A statement without a result set (INSERT, UPDATE, CREATE, ...) and its affected rows.
    Affected {
        /// The statement's command keyword, e.g. `INSERT`.
        command: String,
        /// Rows affected as reported by the server.
        rows: u64,
    },
}

/// Why a SQL cell failed; the message is safe to show (passwords are scrubbed).
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum SqlError {
    /// The notebook has no connection string.
    #[error("No database connection configured for this notebook")]
    NoConnection,
    /// The database could not be reached or refused the connection.
    #[error("Could not connect to the database: {0}")]
    Connect(String),
    /// The server's host policy refuses the connection string's host.
    #[error("Connection refused by the server's policy: {0}")]
    Refused(String),
    /// A Python value could not be used for a placeholder.
    #[error("Parameter {{{name}}}: {reason}")]
    Param {
        /// The placeholder's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// PostgreSQL reported an error.
    #[error("{0}")]
    Postgres(String),
    /// The query ran longer than the timeout (in seconds).
    #[error("Query timed out after {0} s")]
    Timeout(u64),
    /// The query was cancelled.
    #[error("Query cancelled")]
    Cancelled,
}

/// A run in progress that [`SqlCanceller::cancel`] can stop.
struct ActiveRun {
    cancelled: watch::Sender<bool>,
    token: Option<CancelToken>,
    runtime: tokio::runtime::Handle,
}

#[derive(Default)]
struct CancelState {
    next_id: u64,
    active: HashMap<u64, ActiveRun>,
}

/// Cancels the SQL query currently running with it (if any); cheap to clone and share.
#[derive(Clone, Default)]
pub struct SqlCanceller {
    state: Arc<Mutex<CancelState>>,
}

impl std::fmt::Debug for SqlCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlCanceller")
            .field("running", &self.lock().active.len())
            .finish()
    }
}

impl SqlCanceller {
    /// A canceller with no query running.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, CancelState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cancels the running query (the server is asked to stop it); does nothing when idle.
    pub fn cancel(&self) {
        let mut state = self.lock();
        for run in state.active.values_mut() {
            run.cancelled.send_replace(true);
            if let Some(token) = run.token.take() {
                send_cancel(&run.runtime, token);
            }
        }
    }

    /// Registers a run; the guard unregisters it when dropped.
    fn begin(&self) -> (RunGuard, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id = state.next_id.wrapping_add(1);
        state.active.insert(
            id,
            ActiveRun {
                cancelled: tx,
                token: None,
                runtime: tokio::runtime::Handle::current(),
            },
        );
        let guard = RunGuard {
            canceller: self.clone(),
            id,
        };
        (guard, rx)
    }
}

/// Unregisters a run from its canceller when the run ends (or its future is dropped).
struct RunGuard {
    canceller: SqlCanceller,
    id: u64,
}

impl RunGuard {
    /// Records how to cancel the run's query; if a cancel already came, it is sent now.
    fn set_token(&self, token: CancelToken) {
        let mut state = self.canceller.lock();
        if let Some(run) = state.active.get_mut(&self.id) {
            if *run.cancelled.borrow() {
                send_cancel(&run.runtime, token);
            } else {
                run.token = Some(token);
            }
        }
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.canceller.lock().active.remove(&self.id);
    }
}

fn send_cancel(runtime: &tokio::runtime::Handle, token: CancelToken) {
    runtime.spawn(async move {
        if let Err(e) = token.cancel_query(NoTls).await {
            log::warn!("could not cancel SQL query: {e}");
        }
    });
}

/// The distinct placeholder names in order of first appearance (the order of `values`).
pub fn values_order(placeholders: &[(Range<usize>, String)]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (_, name) in placeholders {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// Replaces every occurrence of the connection string's password in `message` by `***`
/// (the whole connection string by its masked form first).
pub fn scrub_password(conn_string: &str, message: &str) -> String {
    let mut out = message.to_string();
    if !conn_string.is_empty() {
        out = out.replace(conn_string, &mask_password(conn_string));
    }
    let mut secrets: Vec<String> = Vec::new();
    if let Ok(url) = url::Url::parse(conn_string) {
        if let Some(p) = url.password() {
            secrets.push(p.to_string());
        }
        for (k, v) in url.query_pairs() {
            if k.eq_ignore_ascii_case("password") {
                secrets.push(v.into_owned());
            }
        }
    }
    if let Ok(config) = Config::from_str(conn_string) {
        if let Some(p) = config.get_password() {
            secrets.push(String::from_utf8_lossy(p).into_owned());
        }
    }
    // Percent-decoded and raw forms; longest first so a prefix never leaves a tail behind.
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty() && s != "***");
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    for secret in &secrets {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

/// `%XX` escapes decoded (lossy UTF-8), as in a URL's user info.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The SQL sent to the server: placeholders replaced by `$k`, with a map from each character
/// of it back to a byte offset in the cell's code (for error positions).
struct Rewritten {
    sql: String,
    origin: Vec<usize>,
}

fn rewrite(
    code: &str,
    placeholders: &[(Range<usize>, String)],
    names: &[String],
) -> Result<Rewritten, SqlError> {
    let mut sorted: Vec<&(Range<usize>, String)> = placeholders.iter().collect();
    sorted.sort_by_key(|(r, _)| r.start);
    let mut sql = String::with_capacity(code.len());
    let mut origin = Vec::with_capacity(code.len());
    let copy = |sql: &mut String, origin: &mut Vec<usize>, from: usize, text: &str| {
        for (i, c) in text.char_indices() {
            sql.push(c);
            origin.push(from + i);
        }
    };
    let mut pos = 0;
    for (range, name) in sorted {
        let bad = || SqlError::Param {
            name: name.clone(),
            reason: "the placeholder's position in the SQL text is invalid".into(),
        };
        if range.start < pos || range.end < range.start {
            return Err(bad());
        }
        let before = code.get(pos..range.start).ok_or_else(bad)?;
        code.get(range.clone()).ok_or_else(bad)?;
        copy(&mut sql, &mut origin, pos, before);
        let k = names.iter().position(|n| n == name).ok_or_else(bad)? + 1;
        for c in format!("${k}").chars() {
            sql.push(c);
            origin.push(range.start);
        }
        pos = range.end;
    }
    let rest = code.get(pos..).unwrap_or("");
    copy(&mut sql, &mut origin, pos, rest);
    Ok(Rewritten { sql, origin })
}

/// A word of SQL outside comments and literals, with its parenthesis depth.
fn sql_words(sql: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = sql.chars().collect();
    let mut words = Vec::new();
    let (mut i, mut depth) = (0usize, 0usize);
    let at = |j: usize| chars.get(j).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '-' && at(i + 1) == '-' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut nest = 0usize;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    nest += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    nest -= 1;
                    i += 2;
                    if nest == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '\'' || c == '"' {
            i += 1;
            while i < chars.len() {
                if chars[i] == c && at(i + 1) == c {
                    i += 2;
                } else if chars[i] == c {
                    break;
                } else {
                    i += 1;
                }
            }
            i += 1;
        } else if c == '$' && !at(i + 1).is_ascii_digit() {
            // Dollar quoting: $tag$ ... $tag$
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            if at(j) == '$' {
                let tag: String = chars[i..=j].iter().collect();
                let tag: Vec<char> = tag.chars().collect();
                let mut k = j + 1;
                while k < chars.len() && chars.get(k..k + tag.len()) != Some(&tag[..]) {
                    k += 1;
                }
                i = k + tag.len();
            } else {
                i = j;
            }
        } else if c == '(' {
            depth += 1;
            i += 1;
        } else if c == ')' {
            depth = depth.saturating_sub(1);
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            words.push((depth, chars[start..i].iter().collect()));
        } else {
            i += 1;
        }
    }
    words
}

/// The statement's command keyword (`INSERT`, `CREATE`, ...); for `WITH` the main statement's.
pub fn command_tag(sql: &str) -> String {
    let words = sql_words(sql);
    let Some((_, first)) = words.first() else {
        return String::new();
    };
    let first = first.to_ascii_uppercase();
    if first == "WITH" {
        const MAIN: [&str; 7] = [
            "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE",
        ];
        if let Some((_, w)) = words
            .iter()
            .skip(1)
            .find(|(d, w)| *d == 0 && MAIN.contains(&w.to_ascii_uppercase().as_str()))
        {
            return w.to_ascii_uppercase();
        }
    }
    first
}

/// PostgreSQL's error as shown to the user: message, the offending line with a caret,
/// detail and hint.
fn describe_db_error(db: &DbError, code: &str, rewritten: &Rewritten) -> String {
    let mut out = db.message().to_string();
    if let Some(ErrorPosition::Original(p)) = db.position() {
        let idx = (*p as usize).saturating_sub(1);
        let byte = rewritten
            .origin
            .get(idx)
            .copied()
            .unwrap_or(code.len())
            .min(code.len());
        let line_start = code
            .get(..byte)
            .and_then(|s| s.rfind('\n'))
            .map_or(0, |i| i + 1);
        let line_end = code
            .get(byte..)
            .and_then(|s| s.find('\n'))
            .map_or(code.len(), |i| byte + i);
        let line_no = code.get(..byte).map_or(0, |s| s.matches('\n').count()) + 1;
        let line = code.get(line_start..line_end).unwrap_or("");
        let col = code.get(line_start..byte).map_or(0, |s| s.chars().count());
        let prefix = format!("LINE {line_no}: ");
        out.push_str(&format!(
            "\n{prefix}{}\n{}^",
            line.trim_end_matches('\r'),
            " ".repeat(prefix.len() + col)
        ));
    }
    if let Some(detail) = db.detail() {
        out.push_str(&format!("\nDETAIL: {detail}"));
    }
    if let Some(hint) = db.hint() {
        out.push_str(&format!("\nHINT: {hint}"));
    }
    if db.code() == &SqlState::SYNTAX_ERROR && db.message().contains("multiple commands") {
        out.push_str(
            "\nHINT: a SQL cell runs a single statement; split the statements into separate cells",
        );
    }
    out
}

fn timeout_secs(timeout: Duration) -> u64 {
    timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0)
}

/// Everything a run needs to turn errors into user-facing ones.
struct Ctx<'a> {
    req: &'a SqlRequest<'a>,
    rewritten: &'a Rewritten,
}

impl Ctx<'_> {
    fn scrub(&self, msg: &str) -> String {
        scrub_password(self.req.conn_string, msg)
    }

    fn pg_error(&self, e: &tokio_postgres::Error) -> SqlError {
        match e.as_db_error() {
            Some(db) if db.code() == &SqlState::QUERY_CANCELED => {
                if db.message().contains("statement timeout") {
                    SqlError::Timeout(timeout_secs(self.req.timeout))
                } else {
                    SqlError::Cancelled
                }
            }
            Some(db) => SqlError::Postgres(self.scrub(&describe_db_error(
                db,
                self.req.code,
                self.rewritten,
            ))),
            None => SqlError::Postgres(self.scrub(&e.to_string())),
        }
    }
}

/// Runs one SQL cell; see the module docs. Cancel it with `canceller` from another task.
pub async fn run_sql(
    req: SqlRequest<'_>,
    canceller: &SqlCanceller,
) -> Result<SqlOutcome, SqlError> {
    if req.conn_string.trim().is_empty() {
        return Err(SqlError::NoConnection);
    }
    let names = values_order(req.placeholders);
    if let Some(missing) = names.get(req.values.len()) {
        return Err(SqlError::Param {
            name: missing.clone(),
            reason: "no value was provided".into(),
        });
    }
    let rewritten = rewrite(req.code, req.placeholders, &names)?;
    if sql_words(&rewritten.sql).is_empty() {
        return Err(SqlError::Postgres(
            "Nothing to run: the SQL cell has no statement".into(),
        ));
    }
    let ctx = Ctx {
        req: &req,
        rewritten: &rewritten,
    };
    let (guard, mut cancelled) = canceller.begin();
    let cancel_requested = async {
        if cancelled.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        biased;
        () = cancel_requested => Err(SqlError::Cancelled),
        result = run_connected(&ctx, &names, &guard) => result,
    }
}

async fn connect(ctx: &Ctx<'_>) -> Result<Client, SqlError> {
    let conn = ctx.req.conn_string;
    let lower = conn.to_ascii_lowercase();
    let tls_wanted = [
        "sslmode=require",
        "sslmode=verify-ca",
        "sslmode=verify-full",
    ]
    .iter()
    .any(|m| lower.contains(m));
    let mut config = Config::from_str(conn).map_err(|e| {
        if tls_wanted {
            tls_unsupported()
        } else {
            SqlError::Connect(ctx.scrub(&format!("invalid connection string: {e}")))
        }
    })?;
    if tls_wanted || config.get_ssl_mode() == SslMode::Require {
        return Err(tls_unsupported());
    }
    // Every host is resolved and checked once, and the connection goes to exactly the checked
    // addresses, so a changing DNS answer cannot lead it to a refused one.
    config = resolve_and_pin(ctx.req.hosts, &config, CONNECT_TIMEOUT)
        .await
        .map_err(|e| match e {
            DestinationError::Refused(r) => SqlError::Refused(r.to_string()),
            other => SqlError::Connect(ctx.scrub(&other.to_string())),
        })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("reactive-notebook");
    }
    let connecting = config.connect(NoTls);
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), connecting)
            .await
            .map_err(|_| {
                SqlError::Connect(format!(
                    "timed out after {} s connecting to {}",
                    CONNECT_TIMEOUT.as_secs(),
                    mask_password(conn)
                ))
            })?
            .map_err(|e| {
                SqlError::Connect(ctx.scrub(&format!("{} ({})", e, mask_password(conn))))
            })?;
    let masked = mask_password(conn);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("SQL connection to {masked} ended: {e}");
        }
    });
    Ok(client)
}

fn tls_unsupported() -> SqlError {
    SqlError::Connect(
        "TLS connections (sslmode=require/verify-ca/verify-full) are not supported yet; \
         use sslmode=disable or sslmode=prefer"
            .into(),
    )
}

async fn run_connected(
    ctx: &Ctx<'_>,
    names: &[String],
    guard: &RunGuard,
) -> Result<SqlOutcome, SqlError> {
    let client = connect(ctx).await?;
    guard.set_token(client.cancel_token());
    let timeout = ctx.req.timeout;
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    let limit = if timeout.is_zero() { 0 } else { ms };
    client
        .batch_execute(&format!(
            "SET statement_timeout = {limit}; SET TimeZone = 'UTC'"
        ))
        .await
        .map_err(|e| ctx.pg_error(&e))?;
    if timeout.is_zero() {
        return query(ctx, &client, names).await;
    }
    match tokio::time::timeout(timeout, query(ctx, &client, names)).await {
        Ok(result) => result,
        Err(_) => {
            // Stop the server-side work too; the connection closes when `client` drops.
            send_cancel(&tokio::runtime::Handle::current(), client.cancel_token());
            Err(SqlError::Timeout(timeout_secs(timeout)))
        }
    }
}

async fn prepare(ctx: &Ctx<'_>, client: &Client) -> Result<Statement, SqlError> {
    let sql = &ctx.rewritten.sql;
    match client.prepare(sql).await {
        Ok(stmt) => Ok(stmt),
        Err(e) if e.code() == Some(&SqlState::INDETERMINATE_DATATYPE) => {
            // e.g. `SELECT {x} IS NULL`: declare the types from the Python values.
            let types: Vec<Type> = ctx.req.values.iter().map(infer_type).collect();
            client
                .prepare_typed(sql, &types)
                .await
                .map_err(|e| ctx.pg_error(&e))
        }
        Err(e) => Err(ctx.pg_error(&e)),
    }
}

async fn query(ctx: &Ctx<'_>, client: &Client, names: &[String]) -> Result<SqlOutcome, SqlError> {
    let stmt = prepare(ctx, client).await?;
    let mut params: Vec<PgParam> = Vec::with_capacity(stmt.params().len());
    for (i, ty) in stmt.params().iter().enumerate() {
        let (Some(name), Some(value)) = (names.get(i), ctx.req.values.get(i)) else {
            return Err(SqlError::Postgres(format!(
                "The query uses parameter ${} directly; write {{name}} placeholders instead",
                i + 1
            )));
        };
        let param = convert_value(value, ty).map_err(|reason| SqlError::Param {
            name: name.clone(),
            reason,
        })?;
        params.push(param);
    }

    let stream = client
        .query_raw(&stmt, params.iter())
        .await
        .map_err(|e| ctx.pg_error(&e))?;
    let mut stream = pin!(stream);
    let columns = stmt.columns();
    let types: Vec<&Type> = columns.iter().map(|c| c.type_()).collect();
    let mut rows: Vec<Value> = Vec::new();
    let mut total: u64 = 0;
    while let Some(row) = stream.try_next().await.map_err(|e| ctx.pg_error(&e))? {
        total += 1;
        if rows.len() < ctx.req.max_rows {
            let cells = types
                .iter()
                .enumerate()
                .map(|(i, ty)| match row.try_get::<_, RawValue>(i) {
                    Ok(raw) => render_value(ty, raw.0),
                    Err(_) => Value::String(format!("<{}>", ty.name())),
                })
                .collect();
            rows.push(Value::Array(cells));
        }
    }

    let command = command_tag(&ctx.rewritten.sql);
    let returns_rows =
        !columns.is_empty() || matches!(command.as_str(), "SELECT" | "VALUES" | "TABLE");
    if !returns_rows {
        return Ok(SqlOutcome::Affected {
            command,
            rows: stream.rows_affected().unwrap_or(0),
        });
    }
    let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
    let mut data = json!({ "type": "table", "columns": names, "rows": rows });
    if total > rows.len() as u64 {
        data["truncated"] = json!(format!("Showing {} of {} rows", rows.len(), total));
    }
    Ok(SqlOutcome::Table(json!({
        "mime_type": "application/json",
        "data": data,
        "metadata": {},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn canceller_and_run_are_thread_safe() {
        fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
        assert_shareable::<SqlCanceller>();
        let canceller = SqlCanceller::new();
        let req = SqlRequest {
            conn_string: "",
            code: "",
            placeholders: &[],
            values: &[],
            timeout: Duration::from_secs(1),
            max_rows: 1,
            hosts: &HostPolicy::default(),
        };
        assert_send(&run_sql(req, &canceller));
        canceller.cancel();
    }

    #[test]
    fn orders_distinct_names() {
        let p = vec![
            (0..3, "a".to_string()),
            (5..8, "b".into()),
            (9..12, "a".into()),
        ];
        assert_eq!(values_order(&p), vec!["a", "b"]);
    }

    #[test]
    fn rewrites_placeholders_to_parameters() {
        let code = "SELECT {a}, {b}, {a}";
        let p = vec![
            (7..10, "a".to_string()),
            (12..15, "b".into()),
            (17..20, "a".into()),
        ];
        let names = values_order(&p);
        let r = rewrite(code, &p, &names).unwrap();
        assert_eq!(r.sql, "SELECT $1, $2, $1");
        assert_eq!(r.origin.len(), r.sql.chars().count());
        assert!(rewrite(code, &[(7..30, "a".into())], &names).is_err());
    }

    #[test]
    fn command_tags() {
        assert_eq!(
            command_tag("  -- hi\n/* x */ insert into t values (1);"),
            "INSERT"
        );
        assert_eq!(
            command_tag("WITH x AS (SELECT 1) UPDATE t SET a = (SELECT 1 FROM x)"),
            "UPDATE"
        );
        assert_eq!(command_tag("create table t (a int)"), "CREATE");
        assert_eq!(command_tag("$$x$$ -- "), "");
        assert_eq!(command_tag("'select'"), "");
    }

    #[test]
    fn scrubs_passwords() {
        let conn = "postgres://bob:s%40cret@db:5432/x";
        let msg = format!("failed for {conn}; password s@cret; raw s%40cret");
        let out = scrub_password(conn, &msg);
        assert!(
            !out.contains("s@cret") && !out.contains("s%40cret"),
            "{out}"
        );
        assert!(out.contains("postgres://bob:***@db:5432/x"), "{out}");
        let kv = "host=db user=bob password=hunter22";
        assert_eq!(scrub_password(kv, "bad hunter22"), "bad ***");
    }
}
