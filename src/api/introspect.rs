//! Completion, inspection (docs) and the variables table of a notebook's kernel.
//!
//! Completion and inspection are answered by the kernel (jedi against the live namespace) on
//! helper threads, so they work while a cell runs; an answer that does not come in time is
//! `busy` instead of a hang. With no kernel running, one is started (within quota), as a run
//! would. The kernel is untrusted: its answers are reshaped and cut to fixed sizes here.

use std::time::Duration;

use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::ask;
use crate::api::body::JsonBody;
use crate::api::openapi::schemas::{Completions, ErrorBody, Inspection, Variables};
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::error::ApiError;
use crate::kernel::{IntrospectRequest, Introspector};
use crate::room::actor::introspection::{GetVariables, Introspection, KernelAccess};
use crate::room::variables::cut;
use crate::server::AppState;

/// Longest code accepted for completion or inspection (bytes).
pub const MAX_CODE_BYTES: usize = 256 * 1024;
/// How long a live kernel gets to answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a kernel started for the request gets to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Most completions returned.
pub const MAX_MATCHES: usize = 500;
const MAX_MATCH_CHARS: usize = 200;
const MAX_KIND_CHARS: usize = 40;
const MAX_NAME_CHARS: usize = 200;
const MAX_SIGNATURE_CHARS: usize = 2000;
/// Longest docstring returned (characters).
pub const MAX_DOC_CHARS: usize = 20_000;
const MAX_ERROR_CHARS: usize = 500;

/// Body of `complete` and `inspect`: the code and a cursor offset in Unicode code points.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CodeAt {
    /// The code (at most 256 KiB).
    code: String,
    /// The cursor's offset in Unicode code points.
    cursor: usize,
}

impl CodeAt {
    /// 422 for code over the size limit or a cursor past its end.
    fn validate(&self) -> Result<(), ApiError> {
        if self.code.len() > MAX_CODE_BYTES {
            return Err(ApiError::Unprocessable(format!(
                "code is longer than {MAX_CODE_BYTES} bytes"
            )));
        }
        let chars = self.code.chars().count();
        if self.cursor > chars {
            return Err(ApiError::Unprocessable(format!(
                "cursor {} is past the end of the code ({chars} characters)",
                self.cursor
            )));
        }
        Ok(())
    }
}

/// Completions at the cursor: `{"matches": [{"text","type"}], "cursor_start", "cursor_end"}`;
/// `"busy": true` (and no matches) when the kernel could not answer in time.
#[utoipa::path(
    tag = "introspection",
    params(("id" = String, Path, description = "The notebook")),
    request_body = CodeAt,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Completions (`busy` when the kernel could not answer in time)", body = Completions),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body, code over 256 KiB, or a cursor past its end", body = ErrorBody),
        (status = 429, description = "No kernel may start (kernel quota)", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[post("/api/notebooks/{id}/complete")]
pub async fn complete(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<CodeAt>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    body.validate()?;
    let cursor = body.cursor;
    let request = IntrospectRequest::Complete {
        code: body.code,
        cursor,
    };
    let answer = ask_kernel(&state, &user, &path, &request).await?;
    Ok(HttpResponse::Ok().json(completion_answer(answer, cursor)))
}

/// What is at the cursor: `{"found", "name"?, "type"?, "signature"?, "docstring"?}`.
#[utoipa::path(
    tag = "introspection",
    params(("id" = String, Path, description = "The notebook")),
    request_body = CodeAt,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What is at the cursor (`busy` when the kernel could not answer in time)", body = Inspection),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body, code over 256 KiB, or a cursor past its end", body = ErrorBody),
        (status = 429, description = "No kernel may start (kernel quota)", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[post("/api/notebooks/{id}/inspect")]
pub async fn inspect(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<CodeAt>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    body.validate()?;
    let request = IntrospectRequest::Inspect {
        code: body.code,
        cursor: body.cursor,
    };
    let answer = ask_kernel(&state, &user, &path, &request).await?;
    Ok(HttpResponse::Ok().json(inspection_answer(answer)))
}

/// The variables the kernel reported after the latest runs:
/// `{"variables": [{"name","type","summary","cell_id"}]}`.
#[utoipa::path(
    tag = "introspection",
    params(("id" = String, Path, description = "The notebook")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The variables", body = Variables),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[get("/api/notebooks/{id}/variables")]
pub async fn variables(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = state.rooms.open(&user.user_id, &path, Role::Viewer).await?;
    Ok(HttpResponse::Ok().json(ask(&room, GetVariables).await?))
}

/// The kernel's raw answer, or `None` when it did not come in time (or no kernel could run).
async fn ask_kernel(
    state: &AppState,
    user: &AuthUser,
    notebook_id: &str,
    request: &IntrospectRequest,
) -> Result<Option<Value>, ApiError> {
    let room = state
        .rooms
        .open(&user.user_id, notebook_id, Role::Viewer)
        .await?;
    let introspector: Option<Introspector> = match ask(&room, Introspection).await? {
        KernelAccess::Ready(introspector) => Some(introspector),
        KernelAccess::Starting(starting) => tokio::time::timeout(START_TIMEOUT, starting)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten(),
    };
    let Some(introspector) = introspector else {
        return Ok(None);
    };
    match introspector.request(request, ANSWER_TIMEOUT).await {
        Ok(answer) => Ok(Some(answer)),
        Err(e) => {
            log::debug!("introspection of {notebook_id}: {e}");
            Ok(None)
        }
    }
}

fn text(v: &Value, key: &str, max: usize) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(|s| cut(s, max))
}

/// The kernel's completion answer in the API's shape, within the caps.
fn completion_answer(answer: Option<Value>, cursor: usize) -> Value {
    let Some(answer) = answer.filter(|a| a.get("busy") != Some(&Value::Bool(true))) else {
        return json!({"matches": [], "busy": true, "cursor_start": cursor, "cursor_end": cursor});
    };
    let matches: Vec<Value> = answer
        .get("matches")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            let text = m.get("text").and_then(Value::as_str)?;
            if text.is_empty() || text.chars().count() > MAX_MATCH_CHARS {
                return None;
            }
            let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
            Some(json!({"text": text, "type": cut(kind, MAX_KIND_CHARS)}))
        })
        .take(MAX_MATCHES)
        .collect();
    let start = answer
        .get("cursor_start")
        .and_then(Value::as_u64)
        .and_then(|s| usize::try_from(s).ok())
        .filter(|s| *s <= cursor)
        .unwrap_or(cursor);
    let mut out = json!({"matches": matches, "cursor_start": start, "cursor_end": cursor});
    if let Some(error) = text(&answer, "error", MAX_ERROR_CHARS) {
        out["error"] = Value::String(error);
    }
    out
}

/// The kernel's inspection answer in the API's shape, within the caps.
fn inspection_answer(answer: Option<Value>) -> Value {
    let Some(answer) = answer.filter(|a| a.get("busy") != Some(&Value::Bool(true))) else {
        return json!({"found": false, "busy": true});
    };
    let found = answer.get("found") == Some(&Value::Bool(true));
    let mut out = Map::new();
    out.insert("found".into(), Value::Bool(found));
    if found {
        let fields = [
            ("name", MAX_NAME_CHARS),
            ("type", MAX_KIND_CHARS),
            ("signature", MAX_SIGNATURE_CHARS),
            ("docstring", MAX_DOC_CHARS),
        ];
        for (key, max) in fields {
            if let Some(value) = text(&answer, key, max) {
                out.insert(key.into(), Value::String(value));
            }
        }
    }
    if let Some(error) = text(&answer, "error", MAX_ERROR_CHARS) {
        out.insert("error".into(), Value::String(error));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_answers_are_capped_and_checked() {
        let many: Vec<Value> = (0..2000)
            .map(|i| json!({"text": format!("n{i}"), "type": "x".repeat(100)}))
            .collect();
        let out = completion_answer(Some(json!({"matches": many, "cursor_start": 99})), 3);
        assert_eq!(out["matches"].as_array().map(Vec::len), Some(MAX_MATCHES));
        assert_eq!(out["cursor_start"], 3, "a start past the cursor is ignored");
        let kind = out["matches"][0]["type"].as_str().unwrap_or_default();
        assert_eq!(kind.chars().count(), MAX_KIND_CHARS);
        let busy = completion_answer(Some(json!({"busy": true})), 2);
        assert_eq!(busy["busy"], true);
        assert_eq!(completion_answer(None, 0)["matches"], json!([]));
    }

    #[test]
    fn inspection_answers_are_capped() {
        let doc = "d".repeat(MAX_DOC_CHARS * 2);
        let out = inspection_answer(Some(json!({"found": true, "name": "f", "docstring": doc})));
        assert_eq!(out["found"], true);
        let kept = out["docstring"].as_str().unwrap_or_default();
        assert_eq!(kept.chars().count(), MAX_DOC_CHARS);
        let out = inspection_answer(Some(json!({"found": "yes", "name": "f"})));
        assert_eq!(out, json!({"found": false}));
    }
}
