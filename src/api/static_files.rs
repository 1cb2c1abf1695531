//! The web UI: files from `static/`, embedded in the binary or read from `STATIC_DIR`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

use crate::server::AppState;

/// The `static/` folder, compiled into the binary.
#[derive(RustEmbed)]
#[folder = "static/"]
struct Embedded;

/// Serves a UI file; unknown paths that look like app routes get `index.html`.
pub async fn serve(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let path = req.path().trim_start_matches('/');
    if path.starts_with("api/") || path.contains("..") {
        return HttpResponse::NotFound().json(serde_json::json!({"detail": "Not Found"}));
    }
    let path = if path.is_empty() { "index.html" } else { path };
    match load(&state, path).or_else(|| {
        // Client-side routes (e.g. /notebooks/<id>) fall back to the app shell.
        (!path.contains('.'))
            .then(|| load(&state, "index.html"))
            .flatten()
    }) {
        Some((bytes, name)) => {
            let mime = mime_guess::from_path(&name).first_or_octet_stream();
            let cache = if name.starts_with("vendor/") {
                "public, max-age=86400"
            } else {
                "no-cache"
            };
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, mime.essence_str().to_string()))
                .insert_header((header::CACHE_CONTROL, cache))
                .insert_header(("X-Content-Type-Options", "nosniff"))
                .body(bytes)
        }
        None => HttpResponse::NotFound().json(serde_json::json!({"detail": "Not Found"})),
    }
}

/// A file of the UI by its path under `static/`, with that path.
pub(crate) fn load(state: &AppState, path: &str) -> Option<(Vec<u8>, String)> {
    if let Some(dir) = &state.config.static_dir {
        let full = dir.join(path);
        return std::fs::read(&full).ok().map(|b| (b, path.to_string()));
    }
    Embedded::get(path).map(|file| (file.data.into_owned(), path.to_string()))
}
