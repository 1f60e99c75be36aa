//! The routes that end a workflow (contract §2.6-2.9): complete, fail,
//! abort, and the resume check; the rules are [`crate::workflow`]'s.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::extract::{ApiPath, CappedBody, parse_json};
use super::{ApiError, AppState, Routes};
use crate::auth::{Authorized, Caller, WorkflowWrite};
use crate::fields;
use crate::workflow::{self, End};

/// The optional body of fail and abort.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReasonBody {
    /// Why; the route's default when absent or `""`.
    #[schema(schema_with = fields::optional_text)]
    reason: Option<String>,
}

/// The reason sent, or `default` for an empty body, absent or `""` reason.
fn reason(body: &[u8], default: &str) -> Result<String, ApiError> {
    if body.is_empty() {
        return Ok(default.to_owned());
    }
    let body: ReasonBody = parse_json(body)?;
    Ok(body
        .reason
        .filter(|reason| !reason.is_empty())
        .unwrap_or_else(|| default.to_owned()))
}

/// The answer's `message` (contract §2.6-2.8).
fn message(how: End) -> &'static str {
    match how {
        End::Completed => "Workflow completed successfully",
        End::Failed => "Workflow marked as failed",
        End::Aborted => "Workflow aborted",
    }
}

/// The 500's message when ending fails.
fn operation(how: End) -> &'static str {
    match how {
        End::Completed => "Failed to complete workflow",
        End::Failed => "Failed to fail workflow",
        End::Aborted => "Failed to abort workflow",
    }
}

/// Ends the workflow (see [`workflow::end`]).
async fn end(
    state: &AppState,
    caller: Caller,
    id: String,
    how: End,
    reason: Option<String>,
) -> Result<(), ApiError> {
    workflow::end(state.gates.expiry(), caller, id, how, reason)
        .await
        .map_err(|error| ApiError::from_gate(operation(how), error))
}

/// POST /api/v1/workflows/{id}/complete
#[utoipa::path(post, path = "/api/v1/workflows/{id}/complete", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "Completed", body = Object),
        (status = 404, description = "Unknown, or another tenant's", body = super::error::ErrorBody),
        (status = 409, description = "Ended already, or a step is pending approval", body = super::error::ErrorBody),
    ))]
pub async fn complete_workflow(
    Authorized(caller, _): Authorized<WorkflowWrite>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    end(&state, caller, id.clone(), End::Completed, None).await?;
    Ok(Json(json!({
        "workflow_id": id, "status": End::Completed.status(), "message": message(End::Completed),
    })))
}

/// POST /api/v1/workflows/{id}/fail
#[utoipa::path(post, path = "/api/v1/workflows/{id}/fail", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Option<ReasonBody>, description = "Optional: why"),
    responses(
        (status = 200, description = "Failed", body = Object),
        (status = 400, description = "Malformed body", body = super::error::ErrorBody),
        (status = 404, description = "Unknown, or another tenant's", body = super::error::ErrorBody),
        (status = 409, description = "Ended already", body = super::error::ErrorBody),
    ))]
pub async fn fail_workflow(
    Authorized(caller, _): Authorized<WorkflowWrite>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    CappedBody(body): CappedBody,
) -> Result<Json<Value>, ApiError> {
    end_with_reason(&state, caller, id, End::Failed, &body).await
}

/// POST /api/v1/workflows/{id}/abort
#[utoipa::path(post, path = "/api/v1/workflows/{id}/abort", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    request_body(content = Option<ReasonBody>, description = "Optional: why"),
    responses(
        (status = 200, description = "Aborted", body = Object),
        (status = 400, description = "Malformed body", body = super::error::ErrorBody),
        (status = 404, description = "Unknown, or another tenant's", body = super::error::ErrorBody),
        (status = 409, description = "Ended already", body = super::error::ErrorBody),
    ))]
pub async fn abort_workflow(
    Authorized(caller, _): Authorized<WorkflowWrite>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    CappedBody(body): CappedBody,
) -> Result<Json<Value>, ApiError> {
    end_with_reason(&state, caller, id, End::Aborted, &body).await
}

/// Fails or aborts with the reason from an optional `{"reason"}` body
/// (contract §2.7, §2.8), answering with the reason used.
async fn end_with_reason(
    state: &AppState,
    caller: Caller,
    id: String,
    how: End,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    let reason = reason(body, how.default_reason())?;
    end(state, caller, id.clone(), how, Some(reason.clone())).await?;
    Ok(Json(json!({
        "workflow_id": id, "status": how.status(), "message": message(how), "reason": reason,
    })))
}

/// POST /api/v1/workflows/{id}/resume
#[utoipa::path(post, path = "/api/v1/workflows/{id}/resume", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "Nothing holds the workflow; nothing changed", body = Object),
        (status = 404, description = "Unknown, or another tenant's", body = super::error::ErrorBody),
        (status = 409, description = "Ended, pending approval, or a rejected step", body = super::error::ErrorBody),
    ))]
pub async fn resume_workflow(
    Authorized(caller, _): Authorized<WorkflowWrite>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    workflow::check_resumable(state.gates.expiry(), caller, id.clone())
        .await
        .map_err(|error| ApiError::from_gate("Failed to resume workflow", error))?;
    Ok(Json(json!({
        "workflow_id": id, "status": "in_progress", "message": "Workflow resumed",
    })))
}

/// The lifecycle routes.
pub fn routes() -> Routes {
    Routes::new()
        .route::<__path_complete_workflow, _, _>(complete_workflow)
        .route::<__path_fail_workflow, _, _>(fail_workflow)
        .route::<__path_abort_workflow, _, _>(abort_workflow)
        .route::<__path_resume_workflow, _, _>(resume_workflow)
}
