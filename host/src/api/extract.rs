//! Extractors whose rejections are our own [`ApiError`]s.
//!
//! - [`CappedBody`]: the raw body, at most [`BODY_LIMIT`] bytes (contract
//!   §1.6). A larger declared `Content-Length` is refused before reading; a
//!   chunked body is refused as soon as it passes the limit.
//! - [`ApiJson`]: a capped body parsed as JSON (wrong types, duplicate keys,
//!   trailing data → 400 "Invalid request body: …"). The request
//!   `Content-Type` is not checked.
//! - [`ApiPath`]: path parameters.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use tower_http::timeout::TimeoutError;

use super::{ApiError, AppState};

/// Largest request body accepted: exactly this many bytes is fine.
pub const BODY_LIMIT: usize = 1_048_576;

/// A request body of at most [`BODY_LIMIT`] bytes.
#[derive(Debug)]
pub struct CappedBody(pub Bytes);

fn too_large() -> ApiError {
    ApiError::TooLarge {
        limit: BODY_LIMIT,
        what: "changed",
    }
}

impl FromRequest<AppState> for CappedBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &AppState) -> Result<Self, ApiError> {
        if declared_length(request.headers()).is_some_and(|length| length > BODY_LIMIT as u64) {
            return Err(too_large());
        }
        read_limited(request.into_body(), BODY_LIMIT, too_large)
            .await
            .map(CappedBody)
    }
}

/// The request's `Content-Length`, if it has a readable one.
pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
}

/// Reads a whole body of at most `limit` bytes: `too_large()` as soon as
/// it passes the limit, 400 if it cannot be read.
pub(super) async fn read_limited(
    body: Body,
    limit: usize,
    too_large: fn() -> ApiError,
) -> Result<Bytes, ApiError> {
    Limited::new(body, limit)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|error| unreadable(&*error, too_large))
}

/// The answer to a body that failed while read through a [`Limited`]:
/// `too_large()` when the limit was passed, 408 when it did not arrive
/// within the body timeout (`listen`), else 400.
pub(super) fn unreadable(
    error: &(dyn std::error::Error + 'static),
    too_large: fn() -> ApiError,
) -> ApiError {
    if error.is::<LengthLimitError>() {
        return too_large();
    }
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<TimeoutError>() {
            return ApiError::BodyTimeout;
        }
        cause = error.source();
    }
    ApiError::BadRequest(format!("Invalid request body: cannot read it: {error}"))
}

/// A JSON body of type `T`, read through [`CappedBody`].
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let CappedBody(bytes) = CappedBody::from_request(request, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a whole body as a JSON object, refusing trailing data. Any other
/// JSON value is refused too: serde would read an array as a struct.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some_and(|byte| *byte != b'{') {
        return Err(ApiError::BadRequest(
            "Invalid request body: expected a JSON object".into(),
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|error| ApiError::BadRequest(format!("Invalid request body: {error}")))
}

/// Path parameters of type `T`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::BadRequest(format!(
                "Invalid path: {}",
                rejection.body_text()
            ))),
        }
    }
}
