//! Approval routes (contract §2.10-2.12): approve, reject, and the
//! caller's pending approvals.
//!
//! An approval holds its workflow's gate lock, like a gate, so it never
//! interleaves with a gate of the same workflow; its state checks run
//! again inside the one transaction that records it.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::extract::{ApiPath, CappedBody, parse_json};
use super::paging::{LimitParam, Page, query_map};
use super::paths::{StepId, check_step_id};
use super::{ApiError, AppState, Routes};
use crate::approval::{ApprovalCall, Outcome};
use crate::auth::{Approve, Authorized, Caller, WorkflowRead};
use crate::clock;
use crate::fields::{self, MIN_COMMENT_CHARS};
use crate::gate::flow::RetryContext;
use crate::store::PendingHold;

/// Default and largest page of the pending list (contract §2.12).
const PENDING_LIMIT: u32 = 20;
const PENDING_MAX: u32 = 100;

/// The body of an approve.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ApproveBody {
    /// Why the step may run: at least 10 characters after trimming white
    /// space.
    #[schema(schema_with = fields::comment, required = true)]
    comment: Option<String>,
}

/// The body of a reject.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RejectBody {
    /// Why the step must not run: at least 10 characters after trimming
    /// white space.
    #[schema(schema_with = fields::comment, required = true)]
    reason: Option<String>,
}

impl Outcome {
    /// The 400 for a missing or short comment or reason.
    fn missing(self) -> ApiError {
        let field = match self {
            Outcome::Approved => "Comment",
            Outcome::Rejected => "Reason",
        };
        ApiError::BadRequest(format!(
            "{field} is required (minimum {MIN_COMMENT_CHARS} characters)"
        ))
    }

    fn operation(self) -> &'static str {
        match self {
            Outcome::Approved => "Failed to approve step",
            Outcome::Rejected => "Failed to reject step",
        }
    }
}

/// The trimmed `comment` (approve) or `reason` (reject) of a required
/// body. No body at all is a missing comment, not a JSON error: the
/// approver forgot the comment, not how to write JSON.
fn comment(body: &[u8], outcome: Outcome) -> Result<String, ApiError> {
    let sent = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match outcome {
            Outcome::Approved => parse_json::<ApproveBody>(body)?.comment,
            Outcome::Rejected => parse_json::<RejectBody>(body)?.reason,
        }
    };
    match sent {
        Some(text) if fields::is_comment(&text) => Ok(text.trim().to_owned()),
        _ => Err(outcome.missing()),
    }
}

/// Approves or rejects after the contract's checks (§1.8): path, body cap,
/// JSON, comment; then, serialised with the workflow's gates, its due
/// expiries and the state checks inside the recording transaction.
async fn decide_step(
    state: AppState,
    caller: Caller,
    (workflow_id, step_id): (String, String),
    body: Result<CappedBody, ApiError>,
    outcome: Outcome,
) -> Result<Json<Value>, ApiError> {
    check_step_id(&step_id)?;
    let CappedBody(body) = body?;
    let comment = comment(&body, outcome)?;
    let call = ApprovalCall {
        tenant: caller.tenant,
        org: caller.org,
        actor: caller.actor,
        workflow_id,
        step_id,
        outcome,
        comment,
    };

    let step = state
        .gates
        .decide_hold(&call)
        .await
        .map_err(|error| ApiError::from_gate(outcome.operation(), error))?;

    let stored_reason = step.decision_reason.clone().unwrap_or_default();
    let (reason, by, at, message) = match outcome {
        Outcome::Approved => (
            format!("Approved: {stored_reason}"),
            "approved_by",
            "approved_at",
            "Step approved",
        ),
        Outcome::Rejected => (
            format!("Rejected: {stored_reason}"),
            "rejected_by",
            "rejected_at",
            "Step rejected, workflow aborted",
        ),
    };
    let mut answer = json!({
        "workflow_id": call.workflow_id, "step_id": call.step_id,
        "status": outcome.as_str(), "approval_status": outcome.as_str(),
        "decision": outcome.decision(), "reason": reason, "approval_id": step.approval_id,
        "policies_matched": step.policies_matched,
        "retry_context": RetryContext::of(&step, false, false), "message": message,
    });
    answer[by] = json!(step.approved_by);
    answer[at] = json!(step.approved_at);
    Ok(Json(answer))
}

/// POST /api/v1/workflows/{id}/steps/{step_id}/approve
#[utoipa::path(post, path = "/api/v1/workflows/{id}/steps/{step_id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "Workflow id"),
           ("step_id" = inline(StepId), Path, description = "Step id")),
    request_body(content = ApproveBody, description = "Why the step may run"),
    responses(
        (status = 200, description = "Approved; the step may run", body = Object),
        (status = 400, description = "Missing or short comment, invalid body or step id", body = super::error::ErrorBody),
        (status = 403, description = "Role approver required", body = super::error::ErrorBody),
        (status = 404, description = "Unknown workflow (or another tenant's) or step", body = super::error::ErrorBody),
        (status = 409, description = "No approval needed, expired, not pending, or the workflow ended", body = super::error::ErrorBody),
        (status = 413, description = "Body over 1048576 bytes", body = super::error::ErrorBody),
    ))]
pub async fn approve_step(
    Authorized(caller, _): Authorized<Approve>,
    State(state): State<AppState>,
    ApiPath(path): ApiPath<(String, String)>,
    body: Result<CappedBody, ApiError>,
) -> Result<Json<Value>, ApiError> {
    decide_step(state, caller, path, body, Outcome::Approved).await
}

/// POST /api/v1/workflows/{id}/steps/{step_id}/reject
#[utoipa::path(post, path = "/api/v1/workflows/{id}/steps/{step_id}/reject", tag = "approvals",
    params(("id" = String, Path, description = "Workflow id"),
           ("step_id" = inline(StepId), Path, description = "Step id")),
    request_body(content = RejectBody, description = "Why the step must not run"),
    responses(
        (status = 200, description = "Rejected; the workflow is aborted", body = Object),
        (status = 400, description = "Missing or short reason, invalid body or step id", body = super::error::ErrorBody),
        (status = 403, description = "Role approver required", body = super::error::ErrorBody),
        (status = 404, description = "Unknown workflow (or another tenant's) or step", body = super::error::ErrorBody),
        (status = 409, description = "No approval needed, expired, not pending, or the workflow ended", body = super::error::ErrorBody),
        (status = 413, description = "Body over 1048576 bytes", body = super::error::ErrorBody),
    ))]
pub async fn reject_step(
    Authorized(caller, _): Authorized<Approve>,
    State(state): State<AppState>,
    ApiPath(path): ApiPath<(String, String)>,
    body: Result<CappedBody, ApiError>,
) -> Result<Json<Value>, ApiError> {
    decide_step(state, caller, path, body, Outcome::Rejected).await
}

/// GET /api/v1/workflows/approvals/pending
#[utoipa::path(get, path = "/api/v1/workflows/approvals/pending", tag = "approvals",
    params(LimitParam),
    responses(
        (status = 200, description = "The caller's pending holds of running workflows, newest first", body = Object),
        (status = 400, description = "Bad limit", body = super::error::ErrorBody),
    ))]
pub async fn list_pending_approvals(
    Authorized(caller, _): Authorized<WorkflowRead>,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let limit = Page::limit_from_query(&query_map(query)?, PENDING_LIMIT, PENDING_MAX)?;
    state
        .gates
        .expire_tenant(&caller.tenant, &caller.org)
        .await?;
    let (holds, count) = state
        .store
        .read_async(move |conn| {
            let now = clock::now_rfc3339();
            conn.list_pending(&caller.tenant, &caller.org, &now, limit)
        })
        .await
        .map_err(|error| ApiError::from_store("Failed to list pending approvals", error))?;
    let entries: Vec<Value> = holds.iter().map(pending_entry).collect();
    Ok(Json(json!({"pending_approvals": entries, "count": count})))
}

/// An entry of the pending list (§2.12).
fn pending_entry(hold: &PendingHold) -> Value {
    let step = &hold.step;
    let mut entry = json!({
        "workflow_id": step.workflow_id, "workflow_name": hold.workflow_name,
        "step_id": step.step_id, "step_index": step.step_index, "step_type": step.step_type,
        "decision": step.decision, "decision_reason": step.decision_reason,
        "policies_matched": step.policies_matched, "step_input": step.step_input,
        "approval_status": "pending", "approval_id": step.approval_id,
        "created_at": step.approval_requested_at, "expires_at": step.expires_at,
    });
    if let Some(name) = &step.step_name {
        entry["step_name"] = json!(name);
    }
    entry
}

/// The approval routes.
pub fn routes() -> Routes {
    Routes::new()
        .route::<__path_approve_step, _, _>(approve_step)
        .route::<__path_reject_step, _, _>(reject_step)
        .route::<__path_list_pending_approvals, _, _>(list_pending_approvals)
}
