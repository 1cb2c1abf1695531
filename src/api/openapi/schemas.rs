//! Schemas of the REST answers that handlers build with `json!`: each type here describes one
//! such answer field by field (the handler named in its doc comment is the source of truth).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::kernel::sandbox::SandboxReport;
use crate::notebook::cell::Cell;
use crate::notebook::io::ImportWarning;

/// Every error answer: `{"detail": "..."}` (see `crate::error::ApiError`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a human.
    pub detail: String,
}

/// A role on a notebook.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Created the notebook; may do everything.
    Owner,
    /// May edit and run cells.
    Editor,
    /// May read.
    Viewer,
}

/// A role that can be granted to a member or an invite.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GrantableRole {
    /// May edit and run cells.
    Editor,
    /// May read.
    Viewer,
}

/// `GET /health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /health/ready`: `{"status":"ok","database":"ok"}`, or with 503
/// `{"status":"unavailable","detail":"database unavailable"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub status: String,
    /// `ok` when the database answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Why the server is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How users sign in.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthModeName {
    /// Tokens signed by this server's key (`AUTH_MODE=local`).
    Local,
    /// Clerk sessions.
    Clerk,
}

/// `GET /api/config`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientConfig {
    /// The auth mode.
    pub auth_mode: AuthModeName,
    /// Clerk's publishable key (Clerk mode).
    pub clerk_publishable_key: Option<String>,
    /// Whether the AI assistant is configured.
    pub assistant_enabled: bool,
    /// The kernel sandbox's layers.
    pub sandbox: SandboxReport,
}

/// `POST /api/notebooks`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotebookCreated {
    /// The new notebook's id.
    pub notebook_id: String,
}

/// One notebook in `GET /api/notebooks`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotebookSummary {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The caller's role on it.
    pub role: RoleName,
}

/// `GET /api/notebooks`: the caller's notebooks, then those shared with them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotebookList {
    /// The notebooks.
    pub notebooks: Vec<NotebookSummary>,
}

/// `GET /api/notebooks/{id}`: the notebook with its cells.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotebookSnapshot {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The PostgreSQL connection string with its password masked (null when unset; absent for
    /// viewers).
    #[serde(default)]
    pub db_conn_string: Option<String>,
    /// Changes with every edit.
    pub revision: i64,
    /// Lazy mode: edits mark descendants stale instead of running them.
    pub lazy: bool,
    /// The room's event counter when this snapshot was taken.
    pub seq: u64,
    /// The cells in order.
    pub cells: Vec<Cell>,
    /// The caller's role.
    pub role: RoleName,
}

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusOk {
    /// `ok`.
    pub status: String,
}

/// `{"status": "accepted"}`: the work goes on; results arrive over the WebSocket.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// `accepted`.
    pub status: String,
}

/// `PUT /api/notebooks/{id}/name`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Renamed {
    /// `ok`.
    pub status: String,
    /// The stored (trimmed) name.
    pub name: String,
}

/// `PUT /api/notebooks/{id}/lazy`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LazySet {
    /// `ok`.
    pub status: String,
    /// The mode now.
    pub lazy: bool,
}

/// `POST /api/notebooks/{id}/cells`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CellCreated {
    /// The new cell's id.
    pub cell_id: String,
}

/// A cell change: the notebook's revision after it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revised {
    /// `ok`.
    pub status: String,
    /// The notebook's revision now.
    pub revision: i64,
}

/// One completion.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CompletionMatch {
    /// The completed text.
    pub text: String,
    /// What it is (`function`, `module`, ...; may be empty).
    #[serde(rename = "type")]
    pub kind: String,
}

/// `POST /api/notebooks/{id}/complete`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Completions {
    /// The completions (at most 500).
    pub matches: Vec<CompletionMatch>,
    /// Where the replaced text starts (code points).
    pub cursor_start: usize,
    /// Where it ends (the cursor).
    pub cursor_end: usize,
    /// `true` when the kernel could not answer in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy: Option<bool>,
    /// The kernel's error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/notebooks/{id}/inspect`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Inspection {
    /// Whether something was found at the cursor.
    pub found: bool,
    /// `true` when the kernel could not answer in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy: Option<bool>,
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Its docstring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docstring: Option<String>,
    /// The kernel's error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/notebooks/{id}/variables`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Variables {
    /// The variables, sorted by name.
    pub variables: Vec<super::wire::Variable>,
}

/// One message of a chat request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: ChatRole,
    /// The text (not blank).
    pub content: String,
}

/// Who wrote a chat message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// The person.
    User,
    /// The assistant.
    Assistant,
}

/// Body of `POST /api/chat/{notebook_id}` (read by `crate::assistant::parse_messages`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatRequest {
    /// The conversation so far (not empty), oldest first.
    pub messages: Vec<ChatMessage>,
}

/// One entry of the audit log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Its id.
    pub id: String,
    /// When (RFC 3339, UTC, milliseconds).
    pub created_at: String,
    /// Who acted.
    pub user_id: String,
    /// The notebook.
    pub notebook_id: String,
    /// The tool or action (`run_cell`, `member_removed`, ...).
    pub tool: String,
    /// Its input (JSON, or the stored text).
    pub input: Value,
    /// Its outcome (JSON, or the stored text).
    pub outcome: Value,
    /// Whether it succeeded.
    pub ok: bool,
}

/// `GET /api/notebooks/{id}/audit`, newest first (at most 500).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditLog {
    /// The entries.
    pub entries: Vec<AuditEntry>,
}

/// A member of a notebook.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// The user.
    pub user_id: String,
    /// Their role.
    pub role: RoleName,
}

/// `GET /api/notebooks/{id}/members`: the owner first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Members {
    /// The members.
    pub members: Vec<Member>,
}

/// `PUT /api/notebooks/{id}/members/{user_id}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoleChanged {
    /// `ok`.
    pub status: String,
    /// The member.
    pub user_id: String,
    /// Their role now.
    pub role: GrantableRole,
}

/// `POST /api/notebooks/{id}/invites` (the code is shown only now).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InviteCreated {
    /// The invite's id.
    pub id: String,
    /// The secret code.
    pub code: String,
    /// The link to hand out (`/invite/{code}` on this server).
    pub url: String,
    /// The role it grants.
    pub role: GrantableRole,
    /// When it expires (RFC 3339, UTC).
    pub expires_at: String,
}

/// An invite that still works, without its code.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InviteSummary {
    /// Its id.
    pub id: String,
    /// The role it grants.
    pub role: GrantableRole,
    /// Who created it.
    pub created_by: String,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// When it expires (RFC 3339, UTC).
    pub expires_at: String,
}

/// `GET /api/notebooks/{id}/invites`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Invites {
    /// The invites.
    pub invites: Vec<InviteSummary>,
}

/// `POST /api/invites/{code}/accept`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InviteAccepted {
    /// The notebook joined.
    pub notebook_id: String,
    /// The caller's role there now.
    pub role: RoleName,
}

/// `POST /api/notebooks/import`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Imported {
    /// The new notebook's id.
    pub notebook_id: String,
    /// How many cells it has.
    pub cells: usize,
    /// Cells that need attention.
    pub warnings: Vec<ImportWarning>,
}
