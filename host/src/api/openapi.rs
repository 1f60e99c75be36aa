//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' `#[utoipa::path]` attributes and the response types.

use axum::Json;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::{Routes, approvals, audit, checkpoints, lifecycle, ops, policies, steps, workflows};

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
    components(schemas(super::error::ErrorBody)),
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
pub async fn get_openapi() -> Json<Value> {
    Json(document())
}

/// The document as served.
pub fn document() -> Value {
    let mut document = ApiDoc::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    optional_bodies(&mut document);
    let mut document = serde_json::to_value(document).unwrap_or_default();
    links(&mut document);
    document
}

/// An answer that links to the operations taking some of its values.
struct LinkSource {
    path: &'static str,
    method: &'static str,
    status: &'static str,
    /// Each path parameter it gives, and the runtime expression of its value.
    from: &'static [(&'static str, &'static str)],
}

const LINK_SOURCES: [LinkSource; 3] = [
    LinkSource {
        path: "/api/v1/workflows",
        method: "post",
        status: "201",
        from: &[("id", "$response.body#/workflow_id")],
    },
    LinkSource {
        path: "/api/v1/workflows/{id}/steps/{step_id}/gate",
        method: "post",
        status: "200",
        from: &[
            ("id", "$request.path.id"),
            ("step_id", "$request.path.step_id"),
        ],
    },
    LinkSource {
        path: "/api/v1/policies/{name}",
        method: "put",
        status: "201",
        from: &[("name", "$request.path.name")],
    },
];

/// Links from an answer to the operations it lets a client call next (and
/// that Schemathesis's stateful phase follows): a created workflow's id to
/// every route of that workflow (a step route's step id is the client's
/// own); a gated step's workflow and step ids to the step's routes; an
/// uploaded policy's name to the routes of a policy.
///
/// Written into the JSON: utoipa 5.5 spells a link's `operationId` as
/// `operation_id`.
fn links(document: &mut Value) {
    // (operation id, its path parameters) of every operation.
    let mut targets: Vec<(String, Vec<String>)> = Vec::new();
    for item in document["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
    {
        for operation in item.as_object().into_iter().flat_map(|item| item.values()) {
            let Some(id) = operation["operationId"].as_str() else {
                continue;
            };
            let path_parameters: Vec<String> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|parameter| parameter["in"] == "path")
                .filter_map(|parameter| parameter["name"].as_str().map(str::to_owned))
                .collect();
            targets.push((id.to_owned(), path_parameters));
        }
    }
    for LinkSource {
        path,
        method,
        status,
        from,
    } in LINK_SOURCES
    {
        let parameters: Map<String, Value> = from
            .iter()
            .map(|(name, value)| ((*name).to_owned(), json!(value)))
            .collect();
        let links: Map<String, Value> = targets
            .iter()
            .filter(|(_, parameters)| {
                from.iter()
                    .all(|(name, _)| parameters.iter().any(|parameter| parameter == name))
            })
            .map(|(target, _)| {
                (
                    target.clone(),
                    json!({"operationId": target, "parameters": parameters}),
                )
            })
            .collect();
        if let Some(response) = document
            .pointer_mut(&format!(
                "/paths/{}/{method}/responses/{status}",
                escape(path)
            ))
            .and_then(Value::as_object_mut)
        {
            response.insert("links".into(), Value::Object(links));
        }
    }
}

/// `path` as one JSON Pointer token.
fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}

/// utoipa states an optional body (`Option<T>`) as one that may be JSON
/// `null`. These routes take no body or an object, never `null`: the
/// schema of such a body is the object's alone.
fn optional_bodies(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Schema, Type};
    let is_null = |schema: &RefOr<Schema>| {
        matches!(schema, RefOr::T(Schema::Object(object))
            if object.schema_type == Type::Null.into())
    };
    for item in document.paths.paths.values_mut() {
        for operation in [&mut item.post, &mut item.put, &mut item.patch]
            .into_iter()
            .flatten()
        {
            let Some(body) = operation.request_body.as_mut() else {
                continue;
            };
            if body.required == Some(utoipa::openapi::Required::True) {
                continue;
            }
            for content in body.content.values_mut() {
                if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                    let mut items: Vec<&RefOr<Schema>> =
                        one_of.items.iter().filter(|item| !is_null(item)).collect();
                    if items.len() == 1 {
                        content.schema = items.pop().cloned();
                    }
                }
            }
        }
    }
}

/// The document route.
pub fn routes() -> Routes {
    Routes::new().route::<__path_get_openapi, _, _>(get_openapi)
}
