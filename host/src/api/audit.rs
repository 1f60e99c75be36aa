//! Audit routes (contract §7): the caller's chain, or with `scope=global`
//! the chain of global-policy events, listed and verified. Admins only;
//! no route edits or deletes an entry. The list shows an org's admins the
//! entries about their org's workflows and the tenant's policy changes,
//! never another org's workflows; verifying walks the whole chain.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::paging::{Page, PageParams, query_map};
use super::{ApiError, AppState, Routes};
use crate::audit::{AuditEntry, VerifyReport};
use crate::auth::{AuditRead, Authorized, Caller};
use crate::fields::{self, GLOBAL_CHAIN};
use crate::store::AuditFilter;

/// Default and largest page of the audit list.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// A page of a chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries, ascending `seq`.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<AuditEntry>,
    /// Entries matching the filter in all.
    pub total: u64,
    /// Effective page size.
    pub limit: u32,
    /// Entries skipped.
    pub offset: u64,
    /// Whether more match after this page.
    pub has_more: bool,
}

/// The list's filters, for the OpenAPI document (the handler reads the
/// query as a map; unknown parameters are ignored).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct AuditQuery {
    /// Only this workflow's entries.
    workflow_id: Option<String>,
    /// Only entries of this kind.
    kind: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[param(schema_with = fields::timestamp)]
    since: Option<String>,
}

/// `scope`, for the OpenAPI document: the rule of [`chain`].
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ScopeParam {
    /// `global`: the chain of global-policy events instead of the
    /// caller's tenant's.
    #[param(schema_with = fields::audit_scope)]
    scope: Option<String>,
}

/// The chain the caller asked for: its tenant's, or `global`.
fn chain(caller: &Caller, query: &HashMap<String, String>) -> Result<String, ApiError> {
    match query.get("scope").map(String::as_str) {
        None => Ok(caller.tenant.clone()),
        Some(GLOBAL_CHAIN) => Ok(GLOBAL_CHAIN.to_owned()),
        Some(_) => Err(ApiError::BadRequest(
            "scope must be \"global\" when given".into(),
        )),
    }
}

/// GET /api/v1/audit
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(AuditQuery, PageParams, ScopeParam),
    responses(
        (status = 200, description = "A page of the chain, ascending seq", body = AuditPage),
        (status = 400, description = "Bad since, limit, offset or scope", body = super::error::ErrorBody),
    ))]
pub async fn list_audit(
    Authorized(caller, _): Authorized<AuditRead>,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let query = query_map(query)?;
    let since = query
        .get("since")
        .map(|text| OffsetDateTime::parse(text, &Rfc3339))
        .transpose()
        .map_err(|_| ApiError::BadRequest("since must be an RFC 3339 timestamp".into()))?;
    let page = Page::from_query(&query, DEFAULT_LIMIT, MAX_LIMIT)?;
    let chain = chain(&caller, &query)?;
    // Entries about another org's workflows are as unseen as the workflows.
    let filter = AuditFilter {
        org: Some(caller.org.clone()),
        workflow_id: query.get("workflow_id").cloned(),
        kind: query.get("kind").cloned(),
        since,
        limit: page.limit,
        offset: page.offset,
    };
    let (entries, total) = state
        .store
        .read_async(move |conn| conn.audit_entries(&chain, &filter))
        .await
        .map_err(|error| ApiError::from_store("Failed to list audit entries", error))?;
    Ok(Json(AuditPage {
        has_more: page.has_more(entries.len(), total),
        entries,
        total,
        limit: page.limit,
        offset: page.offset,
    }))
}

/// GET /api/v1/audit/verify
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    params(ScopeParam),
    responses(
        (status = 200, description = "`valid`, entries checked, and the first bad seq if any", body = Object),
        (status = 400, description = "Bad scope", body = super::error::ErrorBody),
    ))]
pub async fn verify_audit(
    Authorized(caller, _): Authorized<AuditRead>,
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<VerifyReport>, ApiError> {
    let chain = chain(&caller, &query_map(query)?)?;
    let report = state
        .store
        .read_async(move |conn| conn.verify_chain(&chain))
        .await
        .map_err(|error| ApiError::from_store("Failed to verify the audit chain", error))?;
    Ok(Json(report))
}

/// The audit routes.
pub fn routes() -> Routes {
    Routes::new()
        .route::<__path_list_audit, _, _>(list_audit)
        .route::<__path_verify_audit, _, _>(verify_audit)
}
