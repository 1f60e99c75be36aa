//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' `#[utoipa::path]` attributes and the response types.

use axum::Json;
use serde::Serialize;
use utoipa::OpenApi;

use super::{Routes, approvals, audit, checkpoints, lifecycle, ops, policies, steps, workflows};

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

/// The document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "wcp", description = "Workflow Control Plane: gate decisions for workflow steps, made by sandboxed WebAssembly policies."),
    paths(
        ops::get_health,
        ops::get_ready,
        ops::get_metrics,
        get_openapi,
        policies::list_policies,
        policies::get_policy,
        policies::evaluate_policy,
        policies::upload_policy,
        policies::delete_policy,
        workflows::create_workflow,
        workflows::list_workflows,
        workflows::get_workflow,
        lifecycle::complete_workflow,
        lifecycle::fail_workflow,
        lifecycle::abort_workflow,
        lifecycle::resume_workflow,
        steps::gate_step,
        steps::complete_step,
        checkpoints::get_checkpoints,
        checkpoints::resume_last,
        checkpoints::resume_checkpoint,
        audit::list_audit,
        audit::verify_audit,
        approvals::approve_step,
        approvals::reject_step,
        approvals::list_pending_approvals,
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "ops", description = "Health, readiness, metrics, this document"),
        (name = "policies", description = "Policies visible to the caller, and dry runs"),
        (name = "workflows", description = "Workflows, their steps and gates"),
        (name = "approvals", description = "Approving and rejecting held steps, pending approvals"),
        (name = "audit", description = "The hash-chained audit trail"),
    )
)]
pub struct ApiDoc;

/// GET /openapi.json
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "This OpenAPI 3.1 document", body = Object)))]
pub async fn get_openapi() -> Json<utoipa::openapi::OpenApi> {
    let mut document = ApiDoc::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    Json(document)
}

/// The document route.
pub fn routes() -> Routes {
    Routes::new().route::<__path_get_openapi, _, _>(get_openapi)
}
