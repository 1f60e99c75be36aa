//! Workflow routes, registration and reads (contract §2.1-2.3): create,
//! get (with its steps), list. Another tenant's or org's workflow answers
//! exactly as a missing one.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath};
use super::paging::{Page, PageParams, query_map};
use super::paths::WORKFLOW_NOT_FOUND;
use super::{ApiError, AppState, Routes};
use crate::audit::{AuditKind, AuditRecord};
use crate::auth::{Authorized, WorkflowRead, WorkflowWrite};
use crate::clock;
use crate::fields::{self, LONG_TEXT, SHORT_TEXT};
use crate::gate::flow::check_capacity;
use crate::input::InputError;
use crate::refusal::FlowError;
use crate::store::{StepRow, WorkflowFilter, WorkflowRow};

/// Default and largest page of the list (contract §2.3).
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

/// The body of `POST /api/v1/workflows`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateBody {
    /// What the workflow is.
    #[schema(schema_with = fields::required_long_text, required = true)]
    workflow_name: Option<String>,
    /// The orchestrator kind; `external` when absent or `""`.
    #[schema(schema_with = fields::short_text)]
    source: Option<String>,
    /// The caller's own data, given to policies.
    #[schema(schema_with = fields::any_object)]
    metadata: Option<Map<String, Value>>,
    /// The caller's trace id, to find the workflow by.
    #[schema(schema_with = fields::long_text)]
    trace_id: Option<String>,
}

fn too_long(field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    match fields::too_long(field, value, max) {
        Some(message) => Err(ApiError::BadRequest(message)),
        None => Ok(()),
    }
}

/// The list's filters, for the OpenAPI document (the handler reads the
/// query as a map; unknown parameters are ignored).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct WorkflowQuery {
    /// Only workflows with this exact status.
    status: Option<String>,
    /// Only workflows with this exact source.
    source: Option<String>,
    /// Only workflows with this exact trace id.
    trace_id: Option<String>,
}

/// The answer of a create (contract §2.1), its fields in the order the
/// JSON has always had them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    /// When it was registered.
    #[schema(format = DateTime)]
    created_at: String,
    /// The orchestrator kind.
    source: String,
    /// When it started: its registration.
    #[schema(format = DateTime)]
    started_at: String,
    /// `in_progress`.
    status: String,
    /// The caller's trace id, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    /// `wf_` and a UUID: the workflow's id on every other route.
    workflow_id: String,
    /// What the workflow is.
    workflow_name: String,
}

/// POST /api/v1/workflows
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows",
    request_body(content = CreateBody, description = "The workflow to register"),
    responses(
        (status = 201, description = "Registered, in progress", body = Created),
        (status = 400, description = "Invalid body", body = super::error::ErrorBody),
        (status = 429, description = "The tenant is at its concurrency limit; nothing stored", body = super::error::ErrorBody),
    ))]
pub async fn create_workflow(
    Authorized(caller, _): Authorized<WorkflowWrite>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let workflow_name = body
        .workflow_name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ApiError::BadRequest("workflow_name is required".into()))?;
    too_long("workflow_name", Some(&workflow_name), LONG_TEXT)?;
    too_long("source", body.source.as_deref(), SHORT_TEXT)?;
    if fields::too_long("trace_id", body.trace_id.as_deref(), LONG_TEXT).is_some() {
        return Err(ApiError::Input(InputError {
            code: "INVALID_TRACE_ID",
            message: format!("trace_id exceeds maximum length of {LONG_TEXT} characters"),
        }));
    }
    let now = clock::now_rfc3339();
    let row = WorkflowRow {
        workflow_id: format!("wf_{}", Uuid::new_v4()),
        tenant: caller.tenant.clone(),
        org: caller.org.clone(),
        workflow_name,
        source: body
            .source
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "external".into()),
        status: "in_progress".into(),
        current_step_index: 0,
        total_steps: None,
        trace_id: body.trace_id.filter(|t| !t.is_empty()),
        metadata: Value::Object(body.metadata.unwrap_or_default()),
        failure_reason: None,
        abort_reason: None,
        total_cost_usd: 0.0,
        total_tokens_in: 0,
        total_tokens_out: 0,
        started_at: now.clone(),
        completed_at: None,
    };
    let mut details = Map::new();
    details.insert("workflow_name".into(), json!(row.workflow_name));
    details.insert("source".into(), json!(row.source));
    if let Some(trace_id) = &row.trace_id {
        details.insert("trace_id".into(), json!(trace_id));
    }
    let record = AuditRecord {
        at: now.clone(),
        tenant: caller.tenant.clone(),
        org: caller.org.clone(),
        actor: caller.actor.clone(),
        kind: AuditKind::WorkflowCreated.as_str().into(),
        workflow_id: Some(row.workflow_id.clone()),
        step_id: None,
        decision: None,
        reason: None,
        details,
    };
    let stored = row.clone();
    let limit = state.workflow_limit(&caller);
    state
        .store
        .submit_async(move |tx| -> Result<(), FlowError> {
            check_capacity(tx.count_running(&stored.tenant)?, limit)?;
            tx.insert_workflow(&stored)?;
            tx.append_audit(&stored.tenant, record)?;
            Ok(())
        })
        .await
        .map_err(|error| ApiError::from_flow("Failed to create workflow", error))?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            created_at: now.clone(),
            source: row.source,
            started_at: now,
            status: row.status,
            trace_id: row.trace_id,
            workflow_id: row.workflow_id,
            workflow_name: row.workflow_name,
        }),
    ))
}

/// GET /api/v1/workflows/{id}
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses(
        (status = 200, description = "The workflow with its steps", body = Object),
        (status = 404, description = "Unknown, or another tenant's", body = super::error::ErrorBody),
    ))]
pub async fn get_workflow(
    Authorized(caller, _): Authorized<WorkflowRead>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    state.gates.expire_workflow(&id).await?;
    let found = state
        .store
        .read_async(move |conn| {
            let Some(row) = conn.find_workflow(&id, &caller.tenant, &caller.org)? else {
                return Ok(None);
            };
            let steps = conn.list_steps(&id)?;
            Ok(Some((row, steps)))
        })
        .await
        .map_err(|error| ApiError::from_store("Failed to get workflow", error))?;
    let (row, steps) = found.ok_or(ApiError::NotFound(WORKFLOW_NOT_FOUND))?;
    let mut object = workflow_object(&row);
    if !steps.is_empty() {
        object["steps"] = Value::Array(steps.iter().map(step_entry).collect());
    }
    Ok(Json(object))
}

/// GET /api/v1/workflows
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows",
    params(PageParams, WorkflowQuery),
    responses(
        (status = 200, description = "A page of the caller's workflows, newest first", body = Object),
        (status = 400, description = "Bad limit or offset", body = super::error::ErrorBody),
    ))]
pub async fn list_workflows(
    Authorized(caller, _): Authorized<WorkflowRead>,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let query = query_map(query)?;
    let page = Page::from_query(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    let filter = WorkflowFilter {
        status: query.get("status").cloned(),
        source: query.get("source").cloned(),
        trace_id: query.get("trace_id").cloned(),
        limit: page.limit,
        offset: page.offset,
    };
    state
        .gates
        .expire_tenant(&caller.tenant, &caller.org)
        .await?;
    let (rows, total) = state
        .store
        .read_async(move |conn| conn.list_workflows(&caller.tenant, &caller.org, &filter))
        .await
        .map_err(|error| ApiError::from_store("Failed to list workflows", error))?;
    let workflows: Vec<Value> = rows.iter().map(workflow_object).collect();
    Ok(Json(json!({
        "workflows": workflows, "total": total, "limit": page.limit, "offset": page.offset,
        "has_more": page.has_more(rows.len(), total),
    })))
}

/// The workflow object of §2.2, without `steps`.
fn workflow_object(row: &WorkflowRow) -> Value {
    let mut object = json!({
        "workflow_id": row.workflow_id, "workflow_name": row.workflow_name,
        "source": row.source, "status": row.status,
        "current_step_index": row.current_step_index, "started_at": row.started_at,
        "metadata": row.metadata, "total_cost_usd": row.total_cost_usd,
        "total_tokens_in": row.total_tokens_in, "total_tokens_out": row.total_tokens_out,
    });
    if row.is_terminal() {
        object["total_steps"] = json!(row.total_steps);
        object["completed_at"] = json!(row.completed_at);
    }
    for (key, value) in [
        ("trace_id", &row.trace_id),
        ("failure_reason", &row.failure_reason),
        ("abort_reason", &row.abort_reason),
    ] {
        if let Some(value) = value {
            object[key] = json!(value);
        }
    }
    object
}

/// A step entry of §2.2. An expired hold is sent as `rejected` plus
/// `approval_expired`, because SDK 9.5.0 raises on `expired`.
fn step_entry(step: &StepRow) -> Value {
    let mut entry = json!({
        "step_id": step.step_id, "step_index": step.step_index, "step_type": step.step_type,
        "decision": step.decision, "gate_checked_at": step.gate_checked_at,
        "gate_count": step.gate_count, "completion_count": step.completion_count,
    });
    let optional = [
        ("step_name", step.step_name.as_ref().map(|v| json!(v))),
        (
            "decision_reason",
            step.decision_reason.as_ref().map(|v| json!(v)),
        ),
        ("approved_by", step.approved_by.as_ref().map(|v| json!(v))),
        ("approved_at", step.approved_at.as_ref().map(|v| json!(v))),
        ("completed_at", step.completed_at.as_ref().map(|v| json!(v))),
        ("tokens_in", step.tokens_in.map(|v| json!(v))),
        ("tokens_out", step.tokens_out.map(|v| json!(v))),
        ("cost_usd", step.cost_usd.map(|v| json!(v))),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            entry[key] = value;
        }
    }
    match step.approval_status.as_deref() {
        Some("expired") => {
            entry["approval_status"] = json!("rejected");
            entry["approval_expired"] = json!(true);
        }
        Some(status) => entry["approval_status"] = json!(status),
        None => {}
    }
    entry
}

/// The workflow routes.
pub fn routes() -> Routes {
    Routes::new()
        .route::<__path_create_workflow, _, _>(create_workflow)
        .route::<__path_list_workflows, _, _>(list_workflows)
        .route::<__path_get_workflow, _, _>(get_workflow)
}
