//! Ending a workflow (contract §2.6-2.9): complete, fail, abort, and the
//! resume check. Each end and its audit entry commit in one transaction;
//! a refusal found inside it rolls back and is not audited.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::extract::{ApiPath, CappedBody, parse_json};
use super::paths::WORKFLOW_NOT_FOUND;
use super::{ApiError, AppState, Routes};
use crate::audit::{AuditKind, AuditRecord};
use crate::auth::{Authorized, Caller, WorkflowWrite};
use crate::clock;
use crate::fields;
use crate::gate::flow::{FlowError, Refusal, approval_pending};
use crate::store::workflows::WorkflowRow;
use crate::store::{StoreRead, StoreWrite};

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

/// How a workflow ends.
#[derive(Debug, Clone, Copy)]
enum End {
    Completed,
    Failed,
    Aborted,
}

impl End {
    fn status(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::Failed => "failed",
            End::Aborted => "aborted",
        }
    }

    /// The answer's `message` (contract §2.6-2.8).
    fn message(self) -> &'static str {
        match self {
            End::Completed => "Workflow completed successfully",
            End::Failed => "Workflow marked as failed",
            End::Aborted => "Workflow aborted",
        }
    }

    /// The reason used when the body gives none.
    fn default_reason(self) -> &'static str {
        match self {
            End::Completed => "",
            End::Failed => "Failed",
            End::Aborted => "Aborted by user",
        }
    }

    fn operation(self) -> &'static str {
        match self {
            End::Completed => "Failed to complete workflow",
            End::Failed => "Failed to fail workflow",
            End::Aborted => "Failed to abort workflow",
        }
    }
}

/// Loads the caller's workflow in `conn`, refusing a missing one and,
/// with `terminal` as the message prefix, an ended one.
fn load_running(
    conn: &impl StoreRead,
    caller: &Caller,
    id: &str,
    terminal: &str,
) -> Result<WorkflowRow, FlowError> {
    let row = conn
        .find_workflow(id, &caller.tenant, &caller.org)?
        .ok_or(Refusal::NotFound(WORKFLOW_NOT_FOUND))?;
    if row.is_terminal() {
        return Err(
            Refusal::conflict("WORKFLOW_TERMINAL", format!("{terminal}: {}", row.status)).into(),
        );
    }
    Ok(row)
}

/// Ends the workflow in one transaction with its audit entry.
async fn end(
    state: &AppState,
    caller: Caller,
    id: String,
    how: End,
    reason: Option<String>,
) -> Result<(), ApiError> {
    let scope = id.clone();
    state
        .gates
        .expiry()
        .write_after(&scope, move |tx| -> Result<(), FlowError> {
            let row = load_running(tx, &caller, &id, "workflow is already in terminal state")?;
            let mut details = Map::new();
            match how {
                End::Completed => {
                    if let Some(step) = tx.step_with_approval(&id, &["pending"])? {
                        return Err(approval_pending(&step).into());
                    }
                    details.insert("steps_executed".into(), json!(row.current_step_index));
                    details.insert("total_cost_usd".into(), json!(row.total_cost_usd));
                    details.insert("total_tokens_in".into(), json!(row.total_tokens_in));
                    details.insert("total_tokens_out".into(), json!(row.total_tokens_out));
                }
                End::Failed | End::Aborted => {
                    details.insert("cause".into(), json!("api"));
                }
            }
            let now = clock::now_rfc3339();
            tx.end_workflow(&id, how.status(), &now, reason.as_deref())?;
            let kind = match how {
                End::Completed => AuditKind::WorkflowCompleted,
                End::Failed => AuditKind::WorkflowFailed,
                End::Aborted => AuditKind::WorkflowAborted,
            };
            let record = AuditRecord {
                at: now,
                tenant: caller.tenant.clone(),
                org: caller.org.clone(),
                actor: caller.actor.clone(),
                kind: kind.as_str().into(),
                workflow_id: Some(id.clone()),
                step_id: None,
                decision: None,
                reason,
                details,
            };
            tx.append_audit(&caller.tenant, record)?;
            Ok(())
        })
        .await
        .map_err(super::expiry::expiry_failed)?
        .map_err(|error| ApiError::from_flow(how.operation(), error))
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
        "workflow_id": id, "status": End::Completed.status(), "message": End::Completed.message(),
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
        "workflow_id": id, "status": how.status(), "message": how.message(), "reason": reason,
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
    state.expire_due(&id).await?;
    let checked_id = id.clone();
    state
        .store
        .read_async(move |conn| {
            Ok((|| -> Result<(), FlowError> {
                load_running(
                    conn,
                    &caller,
                    &checked_id,
                    "cannot resume workflow in terminal state",
                )?;
                if let Some(step) = conn.step_with_approval(&checked_id, &["pending"])? {
                    return Err(approval_pending(&step).into());
                }
                if let Some(step) =
                    conn.step_with_approval(&checked_id, &["rejected", "expired"])?
                {
                    return Err(Refusal::conflict(
                        "STEP_REJECTED",
                        format!("workflow has rejected step {step}"),
                    )
                    .into());
                }
                Ok(())
            })())
        })
        .await
        .map_err(|error| ApiError::internal("Failed to resume workflow", error))?
        .map_err(|error| ApiError::from_flow("Failed to resume workflow", error))?;
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
