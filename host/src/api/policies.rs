//! Policy routes (contract §6.3): list, get, the dry run of one policy,
//! and an admin's upload and delete in its own tenant. Global policies and
//! the caller's tenant's are visible; any other scope answers exactly as a
//! missing policy does. Global policies change only on disk.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{ApiPath, CappedBody};
use super::upload::{PolicyUpload, UploadKind};
use super::{ApiError, AppState, Routes};
use crate::auth::{Authorized, Caller, PolicyRead, PolicyWrite};
use crate::fields::valid_policy_name;
use crate::gate::{Action, RunError};
use crate::input::DryRunBody;
use crate::policy_set::{PolicyEntry, PolicySet, Scope, Status};
use crate::reload::{self, ChangeError};
use crate::verdict::Verdict;

const NOT_FOUND: &str = "Policy not found";

/// A policy as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyObject {
    /// `global/<name>` or `<tenant>/<name>`.
    pub id: String,
    /// File stem.
    pub name: String,
    /// `global` or the tenant.
    pub scope: String,
    /// First 12 hex of the serving `.wasm`'s sha256; null if nothing serves.
    pub version: Option<String>,
    /// sha256 of the serving `.wasm`; null if nothing serves.
    pub sha256: Option<String>,
    /// Size of the serving `.wasm`; null if nothing serves.
    pub size_bytes: Option<usize>,
    /// When the serving version loaded; null if nothing serves.
    pub loaded_at: Option<String>,
    /// Whether the policy runs at all.
    pub enabled: bool,
    /// Step types it applies to; `[]` means all.
    pub step_types: Vec<String>,
    /// Evaluation order, lower first.
    pub priority: i64,
    /// Deadline per evaluation.
    pub timeout_ms: u64,
    /// Memory cap per evaluation.
    pub memory_mib: u64,
    /// Verdict of a fault: `block`, `require_approval` or `allow`.
    #[schema(value_type = String)]
    pub on_error: Verdict,
    /// `loaded` or `failed`.
    pub status: &'static str,
    /// Why the last load failed, else null.
    pub last_error: Option<String>,
    /// The manifest's `[settings]`; tenant policies only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

impl PolicyObject {
    fn from_entry(entry: &PolicyEntry) -> Self {
        let manifest = entry.manifest();
        let serving = entry.serving.as_deref();
        PolicyObject {
            id: entry.id.clone(),
            name: entry.name.clone(),
            scope: entry.scope.as_str().to_owned(),
            version: entry.version().map(str::to_owned),
            sha256: serving.map(|s| s.compiled.sha256().to_owned()),
            size_bytes: serving.map(|s| s.compiled.size_bytes()),
            loaded_at: serving.map(|s| s.loaded_at.clone()),
            enabled: manifest.enabled,
            step_types: manifest.step_types.clone().unwrap_or_default(),
            priority: manifest.priority,
            timeout_ms: manifest.timeout_ms,
            memory_mib: manifest.memory_mib,
            on_error: manifest.on_error,
            status: match entry.status {
                Status::Loaded => "loaded",
                Status::Failed => "failed",
            },
            last_error: entry.last_error.clone(),
            settings: None,
        }
    }

    /// One policy as `GET /api/v1/policies/{scope}/{name}` shows it: with
    /// its `settings` when it is a tenant's own.
    fn detailed(entry: &PolicyEntry) -> Self {
        let mut object = PolicyObject::from_entry(entry);
        if matches!(entry.scope, Scope::Tenant(_)) {
            object.settings = Some(entry.manifest().settings.clone());
        }
        object
    }
}

/// `GET /api/v1/policies`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyList {
    /// Global and the caller's tenant's policies, in evaluation order.
    pub policies: Vec<PolicyObject>,
    /// Number of policies.
    pub count: usize,
}

/// The answer of a dry run.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRun {
    /// The policy's id.
    pub policy_id: String,
    /// The policy's name.
    pub policy_name: String,
    /// The version that ran; null if nothing serves.
    pub policy_version: Option<String>,
    /// Whether a gate of this step would run the policy (enabled and
    /// `step_types` match).
    pub applies: bool,
    /// The policy's own verdict, or `error`.
    #[schema(value_type = String)]
    pub action: Action,
    /// The verdict that counts, after `on_error`.
    #[schema(value_type = String)]
    pub verdict: Verdict,
    /// The policy's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why there is no verdict: `{kind, message}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<RunError>,
    /// Instantiation plus the call.
    pub duration_us: u64,
    /// What the policy saw (contract §5), with its `settings`.
    #[schema(value_type = Object)]
    pub input: Value,
}

crate::fields::schema_type!(
    /// A policy name in a path, for the OpenAPI document: the rule of
    /// [`valid_policy_name`].
    PolicyNameSchema => crate::fields::policy_name
);

crate::fields::schema_type!(
    /// A module uploaded as `application/wasm`, for the OpenAPI document.
    WasmModule => crate::fields::binary
);

/// The parts of a `multipart/form-data` upload, for the OpenAPI document;
/// parts of other names are skipped.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct PolicyParts {
    /// The WebAssembly component.
    #[schema(schema_with = crate::fields::binary)]
    module: Vec<u8>,
    /// The manifest, TOML, at most 64 KiB.
    manifest: Option<String>,
}

/// GET /api/v1/policies
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies", responses(
    (status = 200, description = "Global and the caller's policies, in evaluation order", body = PolicyList),
))]
pub async fn list_policies(
    Authorized(caller, _): Authorized<PolicyRead>,
    State(state): State<AppState>,
) -> Json<PolicyList> {
    let set = state.policies.load();
    let policies: Vec<PolicyObject> = set
        .visible_to(&caller.tenant)
        .map(|entry| PolicyObject::from_entry(entry))
        .collect();
    Json(PolicyList {
        count: policies.len(),
        policies,
    })
}

/// GET /api/v1/policies/{scope}/{name}
#[utoipa::path(get, path = "/api/v1/policies/{scope}/{name}", tag = "policies",
    params(("scope" = String, Path, description = "`global` or the caller's tenant"),
           ("name" = inline(PolicyNameSchema), Path, description = "Policy name")),
    responses(
        (status = 200, description = "The policy (with `settings` for tenant scope)", body = PolicyObject),
        (status = 404, description = "Unknown, or another tenant's", body = super::error::ErrorBody),
    ))]
pub async fn get_policy(
    Authorized(caller, _): Authorized<PolicyRead>,
    State(state): State<AppState>,
    ApiPath((scope, name)): ApiPath<(String, String)>,
) -> Result<Json<PolicyObject>, ApiError> {
    let set = state.policies.load();
    let entry = find(&set, &caller, &scope, &name)?;
    Ok(Json(PolicyObject::detailed(entry)))
}

/// POST /api/v1/policies/{scope}/{name}/evaluate
#[utoipa::path(post, path = "/api/v1/policies/{scope}/{name}/evaluate", tag = "policies",
    params(("scope" = String, Path, description = "`global` or the caller's tenant"),
           ("name" = inline(PolicyNameSchema), Path, description = "Policy name")),
    request_body(content = DryRunBody, description = "A gate body plus optional `step_id` and `workflow`"),
    responses(
        (status = 200, description = "The policy's answer; nothing is stored", body = DryRun),
        (status = 400, description = "Invalid body", body = super::error::ErrorBody),
        (status = 404, description = "Unknown, or another tenant's", body = super::error::ErrorBody),
        (status = 413, description = "Body over 1048576 bytes", body = super::error::ErrorBody),
    ))]
pub async fn evaluate_policy(
    Authorized(caller, _): Authorized<PolicyRead>,
    State(state): State<AppState>,
    ApiPath((scope, name)): ApiPath<(String, String)>,
    CappedBody(body): CappedBody,
) -> Result<Json<DryRun>, ApiError> {
    let mut input = DryRunBody::from_json(&body)?.into_input(&caller.actor)?;
    // Identity comes from credentials, never from the body.
    input.workflow.tenant.clone_from(&caller.tenant);
    input.workflow.org.clone_from(&caller.org);
    let set = state.policies.load_full();
    let entry = Arc::clone(find(&set, &caller, &scope, &name)?);
    let applies = entry.manifest().applies_to(&input.step.step_type);
    let mut seen = serde_json::to_value(&input)
        .map_err(|error| ApiError::internal("Failed to evaluate policy", error))?;
    seen["settings"] = entry.manifest().settings.clone();

    let run = state
        .gates
        .dry_run(entry, &input)
        .await
        .map_err(|error| ApiError::from_gate("Failed to evaluate policy", error))?;
    Ok(Json(DryRun {
        verdict: run.effective(),
        policy_id: run.policy_id,
        policy_name: run.policy_name,
        policy_version: run.policy_version,
        applies,
        action: run.action,
        reason: run.reason,
        error: run.error,
        duration_us: run.duration_us,
        input: seen,
    }))
}

/// PUT /api/v1/policies/{name}
#[utoipa::path(put, path = "/api/v1/policies/{name}", tag = "policies",
    params(("name" = inline(PolicyNameSchema), Path, description = "Policy name in the caller's tenant")),
    request_body(description = "The module as `application/wasm` (default manifest; an existing one is \
        removed), or `multipart/form-data` with part `module` and optional part `manifest` (TOML, at most 64 KiB)",
        content(
            (inline(WasmModule) = "application/wasm"),
            (PolicyParts = "multipart/form-data"),
        )),
    responses(
        (status = 201, description = "A new policy, now serving", body = PolicyObject),
        (status = 200, description = "A replaced policy, now serving its new version", body = PolicyObject),
        (status = 400, description = "Invalid name, multipart body or manifest, or not a policy this host runs (`INVALID_POLICY`)", body = super::error::ErrorBody),
        (status = 403, description = "The caller is not an admin", body = super::error::ErrorBody),
        (status = 413, description = "Module over 16777216 bytes", body = super::error::ErrorBody),
        (status = 415, description = "Neither application/wasm nor multipart/form-data", body = super::error::ErrorBody),
    ))]
pub async fn upload_policy(
    Authorized(caller, _): Authorized<PolicyWrite>,
    State(state): State<AppState>,
    PolicyName(name): PolicyName,
    upload: PolicyUpload,
) -> Result<(StatusCode, Json<PolicyObject>), ApiError> {
    // A raw module means the defaults: any manifest on disk goes.
    let manifest = match upload.kind {
        UploadKind::Raw => None,
        UploadKind::Multipart => upload.manifest,
    };
    let installed = reload::install(&state.policies, &caller, &name, upload.module, manifest)
        .await
        .map_err(|error| change_error("Failed to upload policy", error))?;
    let object = PolicyObject::detailed(&installed.entry);
    let status = if installed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(object)))
}

/// DELETE /api/v1/policies/{name}
#[utoipa::path(delete, path = "/api/v1/policies/{name}", tag = "policies",
    params(("name" = inline(PolicyNameSchema), Path, description = "Policy name in the caller's tenant")),
    responses(
        (status = 204, description = "Removed: its files are deleted and later gates no longer run it"),
        (status = 400, description = "Invalid policy name", body = super::error::ErrorBody),
        (status = 403, description = "The caller is not an admin", body = super::error::ErrorBody),
        (status = 404, description = "No such policy in the caller's tenant", body = super::error::ErrorBody),
    ))]
pub async fn delete_policy(
    Authorized(caller, _): Authorized<PolicyWrite>,
    State(state): State<AppState>,
    PolicyName(name): PolicyName,
) -> Result<StatusCode, ApiError> {
    reload::remove(&state.policies, &caller, &name)
        .await
        .map_err(|error| change_error("Failed to delete policy", error))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `{name}` of an upload or delete, checked before the body is read
/// (contract §1.8: path, then body).
#[derive(Debug)]
pub struct PolicyName(pub String);

impl FromRequestParts<AppState> for PolicyName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ApiPath(name) = ApiPath::<String>::from_request_parts(parts, state).await?;
        if valid_policy_name(&name) {
            Ok(PolicyName(name))
        } else {
            Err(ApiError::BadRequest("invalid policy name".into()))
        }
    }
}

/// The answer to a refused upload or delete.
fn change_error(operation: &'static str, error: ChangeError) -> ApiError {
    match error {
        ChangeError::InvalidName => ApiError::BadRequest("invalid policy name".into()),
        ChangeError::NotFound => ApiError::NotFound(NOT_FOUND),
        ChangeError::InvalidPolicy(problem) => ApiError::InvalidPolicy(problem),
        ChangeError::InvalidTenant(_) | ChangeError::Internal(_) => {
            ApiError::internal(operation, error)
        }
    }
}

/// The policy `scope/name` if the caller may see it; anything else is the
/// same 404, so a foreign policy cannot be told from a missing one.
fn find<'a>(
    set: &'a PolicySet,
    caller: &Caller,
    scope: &str,
    name: &str,
) -> Result<&'a Arc<PolicyEntry>, ApiError> {
    if scope != "global" && scope != caller.tenant {
        return Err(ApiError::NotFound(NOT_FOUND));
    }
    set.get(&format!("{scope}/{name}"))
        .ok_or(ApiError::NotFound(NOT_FOUND))
}

/// The policy routes.
pub fn routes() -> Routes {
    Routes::new()
        .route::<__path_list_policies, _, _>(list_policies)
        .route::<__path_get_policy, _, _>(get_policy)
        .route::<__path_evaluate_policy, _, _>(evaluate_policy)
        .route::<__path_upload_policy, _, _>(upload_policy)
        .route::<__path_delete_policy, _, _>(delete_policy)
}
