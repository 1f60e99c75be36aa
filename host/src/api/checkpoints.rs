//! Checkpoint routes (contract §2.13-2.15): the list, and resuming from the
//! last resumable checkpoint or from one by id. A resume holds the
//! workflow's gate lock like a gate: it re-runs a step's gate.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::ApiPath;
use super::paths::WORKFLOW_NOT_FOUND;
use super::{ApiError, AppState, Routes};
use crate::auth::{Authorized, Caller, WorkflowRead, WorkflowWrite};
use crate::gate::resume::{ResumeCall, Target};
use crate::store::CheckpointRow;
use crate::verdict::Verdict;

const RESUME_FAILED: &str = "Failed to resume workflow from checkpoint";

/// The answer of the checkpoint list.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointList {
    /// The workflow.
    pub workflow_id: String,
    /// One per gated step with a fresh evaluation, by `step_index`.
    #[schema(value_type = Vec<Object>)]
    pub checkpoints: Vec<CheckpointRow>,
}

/// The answer of a resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResumeAnswer {
    /// The workflow.
    pub workflow_id: String,
    /// The step whose gate was re-run.
    pub resumed_from_checkpoint: String,
    /// That step's index.
    pub resumed_from_index: u32,
    /// The re-run gate's decision.
    #[schema(value_type = String)]
    pub new_decision: Verdict,
    /// Always `fresh`: the policies ran.
    pub decision_source: &'static str,
    /// Resumes of the checkpoint, this one included.
    pub resume_count: u32,
    /// `Resumed from checkpoint <id>`.
    pub message: String,
}

/// GET /api/v1/workflows/{id}/checkpoints
#[utoipa::path(get, path = "/api/v1/workflows/{id}/checkpoints", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "The workflow's checkpoints", body = CheckpointList),
        (status = 404, description = "Unknown, or another tenant's", body = super::error::ErrorBody),
    ))]
pub async fn get_checkpoints(
    Authorized(caller, _): Authorized<WorkflowRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CheckpointList>, ApiError> {
    state.gates.expire_workflow(&id).await?;
    let workflow_id = id.clone();
    let checkpoints = state
        .store
        .read_async(move |conn| {
            if conn
                .find_workflow(&id, &caller.tenant, &caller.org)?
                .is_none()
            {
                return Ok(None);
            }
            conn.list_checkpoints(&id).map(Some)
        })
        .await
        .map_err(|error| ApiError::from_store("Failed to list checkpoints", error))?
        .ok_or(ApiError::NotFound(WORKFLOW_NOT_FOUND))?;
    Ok(Json(CheckpointList {
        workflow_id,
        checkpoints,
    }))
}

/// POST /api/v1/workflows/{id}/checkpoints/resume
#[utoipa::path(post, path = "/api/v1/workflows/{id}/checkpoints/resume", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "Resumed; the step's gate was re-run", body = ResumeAnswer),
        (status = 404, description = "Unknown, or another tenant's", body = super::error::ErrorBody),
        (status = 409, description = "Finished, held for approval, or nothing resumable", body = super::error::ErrorBody),
        (status = 429, description = "Reviving would pass the tenant's concurrency limit", body = super::error::ErrorBody),
    ))]
pub async fn resume_last(
    Authorized(caller, _): Authorized<WorkflowWrite>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ResumeAnswer>, ApiError> {
    resume_from(&state, caller, id, Target::Last).await
}

/// POST /api/v1/workflows/{id}/checkpoints/{checkpoint_id}/resume
#[utoipa::path(post, path = "/api/v1/workflows/{id}/checkpoints/{checkpoint_id}/resume", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id"),
           ("checkpoint_id" = inline(super::paths::CheckpointId), Path, description = "Checkpoint id")),
    responses(
        (status = 200, description = "Resumed; the step's gate was re-run", body = ResumeAnswer),
        (status = 400, description = "Invalid checkpoint id", body = super::error::ErrorBody),
        (status = 404, description = "Unknown workflow or checkpoint", body = super::error::ErrorBody),
        (status = 409, description = "Finished, held for approval, or not resumable", body = super::error::ErrorBody),
        (status = 429, description = "Reviving would pass the tenant's concurrency limit", body = super::error::ErrorBody),
    ))]
pub async fn resume_checkpoint(
    Authorized(caller, _): Authorized<WorkflowWrite>,
    State(state): State<AppState>,
    ApiPath((id, checkpoint_id)): ApiPath<(String, String)>,
) -> Result<Json<ResumeAnswer>, ApiError> {
    let checkpoint_id = crate::fields::checkpoint_id_of(&checkpoint_id)
        .ok_or_else(|| ApiError::BadRequest("Invalid checkpoint ID".into()))?;
    resume_from(&state, caller, id, Target::Id(checkpoint_id)).await
}

/// Resumes from `target` (see [`crate::gate::Gates::resume`]) and answers.
async fn resume_from(
    state: &AppState,
    caller: Caller,
    workflow_id: String,
    target: Target,
) -> Result<Json<ResumeAnswer>, ApiError> {
    let call = ResumeCall {
        limit: state.workflow_limit(&caller),
        tenant: caller.tenant,
        org: caller.org,
        actor: caller.actor,
        workflow_id,
        target,
        approval_ttl: state.config.approval_ttl,
    };
    let resumed = state
        .gates
        .resume(&call)
        .await
        .map_err(|error| ApiError::from_gate(RESUME_FAILED, error))?;
    Ok(Json(ResumeAnswer {
        workflow_id: call.workflow_id,
        resumed_from_checkpoint: resumed.checkpoint.step_id.clone(),
        resumed_from_index: resumed.gate.step.step_index,
        new_decision: resumed.gate.decision,
        decision_source: "fresh",
        resume_count: resumed.resume_count,
        message: format!("Resumed from checkpoint {}", resumed.checkpoint.id),
    }))
}

/// The checkpoint routes.
pub fn routes() -> Routes {
    Routes::new()
        .route::<__path_get_checkpoints, _, _>(get_checkpoints)
        .route::<__path_resume_last, _, _>(resume_last)
        .route::<__path_resume_checkpoint, _, _>(resume_checkpoint)
}
