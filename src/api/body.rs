//! `JsonBody<T>`: a JSON request body with our limits and error answers.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body: malformed JSON is 400, a body of the wrong shape 422, over `LIMIT` bytes (1 MiB
/// unless a handler asks for more) 413. An empty body reads as `{}`.
pub struct JsonBody<T, const LIMIT: usize = MAX_BODY_BYTES>(pub T);

impl<T: DeserializeOwned + 'static, const LIMIT: usize> FromRequest for JsonBody<T, LIMIT> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > LIMIT) {
                return Err(too_large(LIMIT));
            }
            let mut body = Vec::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::BadRequest(format!("could not read body: {e}")))?;
                if body.len() + chunk.len() > LIMIT {
                    return Err(too_large(LIMIT));
                }
                body.extend_from_slice(&chunk);
            }
            parse(&body).map(JsonBody)
        })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("request body is larger than {limit} bytes"))
}

/// Parses JSON bytes, classifying syntax errors (400) apart from shape errors (422).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::Unprocessable(format!("invalid body: {e}")),
        _ => ApiError::BadRequest(format!("malformed JSON: {e}")),
    })
}
