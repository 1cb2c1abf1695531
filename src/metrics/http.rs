//! The HTTP middleware: one latency observation per request, by method, route template and
//! status.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::Error;

/// The `route` of a request no route matched (static files, the web UI, 404s).
pub const UNMATCHED: &str = "unmatched";

/// Times the request and records it under its route template (`/api/notebooks/{id}`), never
/// its path, so ids and probes for random paths cannot create new series.
pub async fn track<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let result = next.call(req).await;
    // The pattern is read after routing, from the request the response carries: cloning the
    // request beforehand would keep the router from updating it. An error a middleware
    // returns carries no request, so it counts as unmatched.
    let (route, status) = match &result {
        Ok(res) => (res.request().match_pattern(), res.status()),
        Err(e) => (None, e.as_response_error().status_code()),
    };
    super::http_request(
        method,
        route.as_deref().unwrap_or(UNMATCHED),
        status.as_str(),
        started.elapsed(),
    );
    result
}

/// The standard methods by name; anything else (extension methods) as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
