//! The one error type of the HTTP edge, and its envelope (contract §1.5):
//! `{"error": lower(code), "code": CODE, "message": text}`.
//!
//! Server faults are logged with their details and answered with a message
//! naming only the operation that failed.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::gate::GateError;
use crate::input::InputError;
use crate::refusal::{FlowError, Refusal};
use crate::store::StoreError;

/// Seconds a client should wait before retrying a request refused while
/// the server starts.
const NOT_READY_RETRY_AFTER: &str = "1";

/// Seconds a client should wait before creating another workflow once its
/// tenant is at its concurrency limit (contract §2.1).
const LIMIT_RETRY_AFTER: u32 = 5;

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `BAD_REQUEST`.
    #[error("{0}")]
    BadRequest(String),
    /// 400 `INVALID_POLICY`: an uploaded policy (module or manifest) is
    /// refused; the message names the problem.
    #[error("{0}")]
    InvalidPolicy(String),
    /// 400 with the code an input check chose (`BAD_REQUEST`,
    /// `INVALID_TOOL_CONTEXT`, `INVALID_TRACE_ID`).
    #[error("{}", .0.message)]
    Input(#[from] InputError),
    /// 401 `UNAUTHORIZED`.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403 `FORBIDDEN`.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `NOT_FOUND` for a resource (`Policy not found`).
    #[error("{0}")]
    NotFound(&'static str),
    /// 404 `NOT_FOUND` for a path no route serves.
    #[error("Route not found")]
    RouteNotFound,
    /// 405 `METHOD_NOT_ALLOWED` (the router adds `Allow`).
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// 409 with the code the state check chose (`WORKFLOW_TERMINAL`, …).
    #[error("{message}")]
    Conflict {
        /// The contract's code.
        code: &'static str,
        /// The contract's message.
        message: String,
    },
    /// 409 `IDEMPOTENCY_KEY_MISMATCH`, in the nested envelope the SDK reads.
    #[error("idempotency_key does not match the key recorded on gate")]
    KeyMismatch {
        /// The workflow.
        workflow_id: String,
        /// The step.
        step_id: String,
        /// Recorded key, `""` when none.
        expected: String,
        /// Sent key, `""` when none.
        received: String,
    },
    /// 413 `REQUEST_TOO_LARGE`; nothing was read past the limit.
    #[error("request body exceeds {limit} bytes; nothing was {what}")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
        /// `changed`, or `gated or run` on the gate.
        what: &'static str,
    },
    /// 413 `REQUEST_TOO_LARGE` on a policy upload: the module is over
    /// `limit` bytes; nothing was read past the upload's limit.
    #[error("module exceeds {limit} bytes; nothing was changed")]
    ModuleTooLarge {
        /// The module limit in bytes.
        limit: usize,
    },
    /// 408 `REQUEST_TIMEOUT`: the body did not arrive in time; nothing was
    /// changed.
    #[error("request body not received within the server's body timeout; nothing was changed")]
    BodyTimeout,
    /// 415 `UNSUPPORTED_MEDIA_TYPE`; the message names the accepted types.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// 429 with the code of the limit hit, and `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        /// `CONCURRENT_EXECUTION_LIMIT`, …
        code: &'static str,
        /// The contract's message.
        message: String,
        /// Seconds to wait before retrying.
        retry_after: u32,
    },
    /// 503 `DATABASE_UNAVAILABLE`, with `Retry-After`: the database cannot
    /// be reached; nothing was changed. `detail` is only logged.
    #[error("The database is unavailable; retry shortly")]
    Unavailable {
        /// Why, for the log only.
        detail: String,
    },
    /// 503 `NOT_READY` until the first policy load is done.
    #[error("Server is starting")]
    NotReady,
    /// 500 `INTERNAL_ERROR`: `operation` is sent, `detail` only logged.
    #[error("{operation}")]
    Internal {
        /// What failed, as the client sees it ("Failed to evaluate policy").
        operation: &'static str,
        /// Why, for the log only.
        detail: String,
    },
}

/// The 500 message of a failed approval expiry.
pub(super) const EXPIRY_FAILED: &str = "Failed to expire approvals";

impl From<GateError> for ApiError {
    fn from(error: GateError) -> Self {
        ApiError::from_gate("Failed to evaluate step gate", error)
    }
}

impl ApiError {
    /// A failed store call: 503 when the database cannot be reached, else
    /// a server fault of `operation`.
    pub fn from_store(operation: &'static str, error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => ApiError::Unavailable {
                detail: error.to_string(),
            },
            error => ApiError::internal(operation, error),
        }
    }

    /// A server fault: logged with `detail`, answered with `operation`.
    pub fn internal(operation: &'static str, detail: impl std::fmt::Display) -> Self {
        ApiError::Internal {
            operation,
            detail: detail.to_string(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidPolicy(_) | ApiError::Input(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } | ApiError::KeyMismatch { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } | ApiError::ModuleTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotReady | ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The contract's error code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BAD_REQUEST",
            ApiError::InvalidPolicy(_) => "INVALID_POLICY",
            ApiError::Input(error) => error.code,
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) | ApiError::RouteNotFound => "NOT_FOUND",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::Conflict { code, .. } => code,
            ApiError::KeyMismatch { .. } => "IDEMPOTENCY_KEY_MISMATCH",
            ApiError::TooLarge { .. } | ApiError::ModuleTooLarge { .. } => "REQUEST_TOO_LARGE",
            ApiError::BodyTimeout => "REQUEST_TIMEOUT",
            ApiError::UnsupportedMediaType(_) => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::TooManyRequests { code, .. } => code,
            ApiError::NotReady => "NOT_READY",
            ApiError::Unavailable { .. } => "DATABASE_UNAVAILABLE",
            ApiError::Internal { .. } => "INTERNAL_ERROR",
        }
    }

    /// The envelope sent for this error.
    pub fn body(&self) -> Value {
        let code = self.code();
        if let ApiError::KeyMismatch {
            workflow_id,
            step_id,
            expected,
            received,
        } = self
        {
            return json!({"error": {"code": code, "message": self.to_string(), "details": {
                "workflow_id": workflow_id, "step_id": step_id,
                "expected_idempotency_key": expected, "received_idempotency_key": received}}});
        }
        // As AxonFlow: these two codes are validation errors of one field.
        let error = match code {
            "INVALID_TRACE_ID" | "INVALID_TOOL_CONTEXT" => "validation_error".to_owned(),
            _ => code.to_ascii_lowercase(),
        };
        let mut body = json!({"error": error, "code": code, "message": self.to_string()});
        if let ApiError::TooLarge { limit, .. } | ApiError::ModuleTooLarge { limit } = self {
            body["limit_bytes"] = json!(limit);
        }
        body
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::NotFound(message) => ApiError::NotFound(message),
            Refusal::Invalid(message) => ApiError::BadRequest(message),
            Refusal::Conflict { code, message } => ApiError::Conflict { code, message },
            Refusal::KeyMismatch {
                workflow_id,
                step_id,
                expected,
                received,
            } => ApiError::KeyMismatch {
                workflow_id,
                step_id,
                expected,
                received,
            },
            Refusal::ConcurrencyLimit { limit } => ApiError::TooManyRequests {
                code: "CONCURRENT_EXECUTION_LIMIT",
                message: format!(
                    "Maximum concurrent workflows reached for this tenant (limit {limit})"
                ),
                retry_after: LIMIT_RETRY_AFTER,
            },
        }
    }
}

impl ApiError {
    /// A failed workflow write or read: its refusal, or a fault of
    /// `operation`.
    pub fn from_flow(operation: &'static str, error: FlowError) -> Self {
        match error {
            FlowError::Refused(refusal) => refusal.into(),
            FlowError::Store(error) => ApiError::from_store(operation, error),
        }
    }

    /// A refused or failed write under a workflow's gate lock: the refusal's
    /// own answer, else a 500 naming `operation` (or the expiry that
    /// failed).
    pub fn from_gate(operation: &'static str, error: GateError) -> Self {
        match error {
            GateError::Flow(error) => ApiError::from_flow(operation, error),
            GateError::Expiry(error) => ApiError::from_store(EXPIRY_FAILED, error),
            GateError::Pool(error) => ApiError::internal(operation, error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal { operation, detail } = &self {
            tracing::error!(%operation, %detail, "request failed");
        }
        if let ApiError::Unavailable { detail } = &self {
            tracing::warn!(%detail, "the database is unavailable");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        let retry_after = match &self {
            ApiError::NotReady | ApiError::Unavailable { .. } => {
                Some(HeaderValue::from_static(NOT_READY_RETRY_AFTER))
            }
            ApiError::TooManyRequests { retry_after, .. } => Some(HeaderValue::from(*retry_after)),
            _ => None,
        };
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let ApiError::BodyTimeout = &self {
            // The rest of the body may still come: the connection cannot
            // carry another request (RFC 9110 §15.5.9).
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let ApiError::Unauthorized(_) = &self {
            // A 401 names the scheme to answer it with (RFC 9110 §11.6.1).
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"wcp\""),
            );
        }
        response
    }
}

/// The error envelope (contract §1.5).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `lower(code)`, or `validation_error`.
    #[schema(example = "not_found")]
    pub error: String,
    /// The error code.
    #[schema(example = "NOT_FOUND")]
    pub code: String,
    /// What went wrong.
    #[schema(example = "Policy not found")]
    pub message: String,
    /// The body limit, on 413 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_follow_the_contract() {
        let cases: Vec<(ApiError, u16, Value)> = vec![
            (
                ApiError::NotFound("Policy not found"),
                404,
                json!({"error": "not_found", "code": "NOT_FOUND", "message": "Policy not found"}),
            ),
            (
                ApiError::Input(InputError {
                    code: "INVALID_TOOL_CONTEXT",
                    message: "tool_name is required when tool_context is provided".into(),
                }),
                400,
                json!({"error": "validation_error", "code": "INVALID_TOOL_CONTEXT",
                       "message": "tool_name is required when tool_context is provided"}),
            ),
            (
                ApiError::TooLarge {
                    limit: 1_048_576,
                    what: "changed",
                },
                413,
                json!({"error": "request_too_large", "code": "REQUEST_TOO_LARGE",
                       "message": "request body exceeds 1048576 bytes; nothing was changed",
                       "limit_bytes": 1_048_576}),
            ),
            (
                ApiError::ModuleTooLarge { limit: 16_777_216 },
                413,
                json!({"error": "request_too_large", "code": "REQUEST_TOO_LARGE",
                       "message": "module exceeds 16777216 bytes; nothing was changed",
                       "limit_bytes": 16_777_216}),
            ),
            (
                ApiError::InvalidPolicy("invalid policy name".into()),
                400,
                json!({"error": "invalid_policy", "code": "INVALID_POLICY",
                       "message": "invalid policy name"}),
            ),
            (
                ApiError::UnsupportedMediaType("Content-Type must be application/wasm"),
                415,
                json!({"error": "unsupported_media_type", "code": "UNSUPPORTED_MEDIA_TYPE",
                       "message": "Content-Type must be application/wasm"}),
            ),
            (
                ApiError::internal("Failed to evaluate policy", "secret detail"),
                500,
                json!({"error": "internal_error", "code": "INTERNAL_ERROR",
                       "message": "Failed to evaluate policy"}),
            ),
        ];
        for (error, status, body) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.body(), body, "{error}");
        }
    }
}
