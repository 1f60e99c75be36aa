//! Step routes (contract §2.4, §2.5): the gate and the step complete. The
//! gate itself is [`crate::gate::Gates::run`]; the route parses the body,
//! runs it and answers.

use std::time::Instant;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::extract::{ApiPath, CappedBody, parse_json};
use super::paths::check_step_id;
use super::{ApiError, AppState, Routes};
use crate::auth::{Authorized, WorkflowWrite};
use crate::fields::{self, LONG_TEXT};
use crate::gate::flow::{self, RetryContext};
use crate::gate::record::{self, GateCall, Recorded, Via};
use crate::input::{GateBody, InputError};
use crate::verdict::Verdict;
use crate::workflow::{self, StepCompletion};

const COMPLETE_FAILED: &str = "Failed to complete step";

/// The answer of a gate (contract §2.4).
#[derive(Debug, Serialize, ToSchema)]
pub struct GateAnswer {
    /// `allow`, `block` or `require_approval`.
    #[schema(value_type = String)]
    pub decision: Verdict,
    /// The step.
    pub step_id: String,
    /// `dec_<workflow_id>_<step_id>`.
    pub decision_id: String,
    /// Why.
    pub reason: String,
    /// Policies that did not allow.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_ids: Vec<String>,
    /// The hold, for `require_approval` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Where to approve it, when a public base URL is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_url: Option<String>,
    /// One entry per policy run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub policies_evaluated: Vec<Value>,
    /// The entries that did not allow.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub policies_matched: Vec<Value>,
    /// Answered from the stored decision.
    pub cached: bool,
    /// `fresh` or `cached`.
    pub decision_source: &'static str,
    /// The step's history.
    #[schema(value_type = Object)]
    pub retry_context: RetryContext,
}

/// `text` as one URL path segment: every byte outside RFC 3986's
/// unreserved set is percent-encoded, so a step id with `/`, `?` or `#`
/// still names its own approval URL.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn array(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

/// POST /api/v1/workflows/{id}/steps/{step_id}/gate
#[utoipa::path(post, path = "/api/v1/workflows/{id}/steps/{step_id}/gate", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id"),
           ("step_id" = inline(super::paths::StepId), Path, description = "Step id"),
           ("include_prior_output" = Option<String>, Query, description = "`true` fills `retry_context.prior_output`; any other value does not")),
    request_body(content = GateBody, description = "The step to decide"),
    responses(
        (status = 200, description = "The decision", body = GateAnswer),
        (status = 400, description = "Invalid body or step id", body = super::error::ErrorBody),
        (status = 404, description = "Unknown, or another tenant's", body = super::error::ErrorBody),
        (status = 409, description = "Terminal, key or input mismatch, approval hold or pending", body = super::error::ErrorBody),
        (status = 413, description = "Body over 1048576 bytes", body = super::error::ErrorBody),
    ))]
pub async fn gate_step(
    Authorized(caller, _): Authorized<WorkflowWrite>,
    State(state): State<AppState>,
    ApiPath((workflow_id, step_id)): ApiPath<(String, String)>,
    RawQuery(query): RawQuery,
    body: Result<CappedBody, ApiError>,
) -> Result<Json<GateAnswer>, ApiError> {
    let started = Instant::now();
    check_step_id(&step_id)?;
    let CappedBody(body) = body.map_err(|error| match error {
        ApiError::TooLarge { limit, .. } => ApiError::TooLarge {
            limit,
            what: "gated or run",
        },
        other => other,
    })?;
    let gate = parse_json::<GateBody>(&body)?.validate()?;
    let include_output = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|pair| pair == "include_prior_output=true"));
    let call = GateCall {
        tenant: caller.tenant,
        org: caller.org,
        actor: caller.actor,
        workflow_id,
        step_id,
        gate,
        approval_ttl: state.config.approval_ttl,
        via: Via::Gate,
    };

    let recorded = state.gates.run(&call, started).await?;
    let base = state.config.public_base_url.as_deref();
    Ok(Json(GateAnswer::of(&recorded, &call, base, include_output)))
}

impl GateAnswer {
    /// The answer to `call` from what it recorded; a hold links to its
    /// approval under `base`, when set.
    fn of(recorded: &Recorded, call: &GateCall, base: Option<&str>, include_output: bool) -> Self {
        let step = &recorded.step;
        let holds = recorded.decision == Verdict::RequireApproval;
        let approval_url = base.filter(|_| holds).map(|base| {
            format!(
                "{base}/workflows/{}/steps/{}/approve",
                call.workflow_id,
                path_segment(&call.step_id)
            )
        });
        GateAnswer {
            decision: recorded.decision,
            step_id: call.step_id.clone(),
            decision_id: flow::decision_id(&call.workflow_id, &call.step_id),
            reason: recorded.reason.clone(),
            policy_ids: record::policy_ids(&step.policies_matched),
            approval_id: step.approval_id.clone().filter(|_| holds),
            approval_url,
            policies_evaluated: array(&step.policies_evaluated),
            policies_matched: array(&step.policies_matched),
            cached: recorded.cached,
            decision_source: if recorded.cached { "cached" } else { "fresh" },
            retry_context: RetryContext::of(step, recorded.first_gate, include_output),
        }
    }
}

/// The optional body of a step complete.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CompleteBody {
    /// What the step produced, kept as its checkpoint's output.
    #[schema(schema_with = fields::any_object)]
    output: Option<Map<String, Value>>,
    /// Input tokens the step used.
    #[serde(default, deserialize_with = "fields::whole_number")]
    #[schema(schema_with = fields::token_count)]
    tokens_in: Option<i64>,
    /// Output tokens the step used.
    #[serde(default, deserialize_with = "fields::whole_number")]
    #[schema(schema_with = fields::token_count)]
    tokens_out: Option<i64>,
    /// What the step cost, in US dollars.
    #[schema(schema_with = fields::cost)]
    cost_usd: Option<f64>,
    /// Caller's key for the completion; `""` means absent.
    #[schema(schema_with = fields::long_text)]
    idempotency_key: Option<String>,
}

fn non_negative(field: &str, value: Option<i64>) -> Result<Option<u64>, ApiError> {
    value
        .map(|value| {
            u64::try_from(value).map_err(|_| ApiError::BadRequest(format!("{field} must be >= 0")))
        })
        .transpose()
}

/// POST /api/v1/workflows/{id}/steps/{step_id}/complete
#[utoipa::path(post, path = "/api/v1/workflows/{id}/steps/{step_id}/complete", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id"),
           ("step_id" = inline(super::paths::StepId), Path, description = "Step id")),
    request_body(content = Option<CompleteBody>, description = "Optional: the step's output and usage"),
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "Invalid body or step id", body = super::error::ErrorBody),
        (status = 404, description = "Unknown workflow or step", body = super::error::ErrorBody),
        (status = 409, description = "Idempotency key mismatch", body = Object),
    ))]
pub async fn complete_step(
    Authorized(caller, _): Authorized<WorkflowWrite>,
    State(state): State<AppState>,
    ApiPath((workflow_id, step_id)): ApiPath<(String, String)>,
    body: Result<CappedBody, ApiError>,
) -> Result<StatusCode, ApiError> {
    check_step_id(&step_id)?;
    let CappedBody(body) = body?;
    let body: CompleteBody = if body.is_empty() {
        CompleteBody::default()
    } else {
        parse_json(&body)?
    };
    let tokens_in = non_negative("tokens_in", body.tokens_in)?;
    let tokens_out = non_negative("tokens_out", body.tokens_out)?;
    if body
        .cost_usd
        .is_some_and(|cost| !cost.is_finite() || cost < 0.0)
    {
        return Err(ApiError::BadRequest("cost_usd must be >= 0".into()));
    }
    let key = body.idempotency_key.filter(|key| !key.is_empty());
    if let Some(message) = fields::too_long("idempotency_key", key.as_deref(), LONG_TEXT) {
        return Err(ApiError::Input(InputError {
            code: "BAD_REQUEST",
            message,
        }));
    }
    let completion = StepCompletion {
        caller,
        workflow_id,
        step_id,
        output: body.output,
        tokens_in,
        tokens_out,
        cost_usd: body.cost_usd,
        key,
    };
    workflow::complete_step(state.gates.expiry(), completion)
        .await
        .map_err(|error| ApiError::from_gate(COMPLETE_FAILED, error))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The step routes.
pub fn routes() -> Routes {
    Routes::new()
        .route::<__path_gate_step, _, _>(gate_step)
        .route::<__path_complete_step, _, _>(complete_step)
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_encode_everything_but_unreserved_bytes() {
        let cases = [
            ("pay-1.a_b~", "pay-1.a_b~"),
            ("a/b?c#d", "a%2Fb%3Fc%23d"),
            ("x y:z", "x%20y%3Az"),
            ("é", "%C3%A9"),
        ];
        for (raw, encoded) in cases {
            assert_eq!(super::path_segment(raw), encoded, "{raw}");
        }
    }
}
