//! What a policy sees (contract §5), and how a gate body becomes it.
//!
//! [`PolicyInput`] carries the contract's JSON names, so serialising it gives
//! the `input` of a dry run. [`GateBody`] is the body of the gate endpoint,
//! validated in the contract's field order; [`DryRunBody`] adds the optional
//! `step_id` and `workflow` that `wcp policy eval` and the dry-run route
//! accept.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::fields::{self, IDEMPOTENT, LONG_TEXT, REEVALUATE, SHORT_TEXT};

/// The workflow part of a policy's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct WorkflowInput {
    /// `wf_` + UUID.
    pub workflow_id: String,
    /// Registered name.
    pub workflow_name: String,
    /// Orchestrator kind.
    pub source: String,
    /// Owning tenant.
    pub tenant: String,
    /// Owning organisation.
    pub org: String,
    /// Caller's trace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = fields::optional_text)]
    pub trace_id: Option<String>,
    /// Start time, RFC 3339 UTC; now when absent.
    #[schema(schema_with = fields::plain_text)]
    pub started_at: String,
    /// Metadata object.
    #[schema(value_type = Value)]
    pub metadata: Value,
    /// Distinct steps gated before this one.
    #[serde(deserialize_with = "fields::whole_u32_value")]
    #[schema(schema_with = fields::whole_u32)]
    pub steps_gated: u32,
    /// Running cost total in US dollars.
    #[schema(schema_with = fields::any_number)]
    pub total_cost_usd: f64,
    /// Running input-token total.
    #[serde(deserialize_with = "fields::whole_u64_value")]
    #[schema(schema_with = fields::whole_u64)]
    pub total_tokens_in: u64,
    /// Running output-token total.
    #[serde(deserialize_with = "fields::whole_u64_value")]
    #[schema(schema_with = fields::whole_u64)]
    pub total_tokens_out: u64,
}

impl Default for WorkflowInput {
    /// The workflow of a dry run.
    fn default() -> Self {
        WorkflowInput {
            workflow_id: "wf_dry_run".into(),
            workflow_name: "dry-run".into(),
            source: "external".into(),
            tenant: "community".into(),
            org: "default".into(),
            trace_id: None,
            started_at: crate::clock::now_rfc3339(),
            metadata: Value::Object(Map::new()),
            steps_gated: 0,
            total_cost_usd: 0.0,
            total_tokens_in: 0,
            total_tokens_out: 0,
        }
    }
}

/// The tool a step calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolContext {
    /// Tool name, never empty.
    pub tool_name: String,
    /// Tool kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_type: Option<String>,
    /// Tool arguments object (`{}` when none).
    pub tool_input: Value,
}

/// The step part of a policy's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInput {
    /// Step id.
    pub step_id: String,
    /// Step name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_name: Option<String>,
    /// Step type.
    pub step_type: String,
    /// Position in the workflow, from 1.
    pub step_index: u32,
    /// Model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Step input object (`{}` when none).
    pub step_input: Value,
    /// Tool context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_context: Option<ToolContext>,
    /// Estimated input tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_in: Option<u64>,
    /// Estimated output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_out: Option<u64>,
    /// Estimated cost in US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Gate calls for this step, this one included.
    pub gate_count: u32,
    /// Step completions reported so far.
    pub completion_count: u32,
}

/// Everything a policy is given apart from its own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyInput {
    /// The workflow.
    pub workflow: WorkflowInput,
    /// The step being gated.
    pub step: StepInput,
    /// The caller.
    pub actor: String,
}

/// A body that breaks the gate contract: the error code and message the API
/// answers with (400), also printed by the CLI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// `BAD_REQUEST`, or `INVALID_TOOL_CONTEXT` for an empty tool name.
    pub code: &'static str,
    /// What is wrong, naming the field.
    pub message: String,
}

impl InputError {
    fn bad_request(message: impl Into<String>) -> Self {
        InputError {
            code: "BAD_REQUEST",
            message: message.into(),
        }
    }
}

/// `tool_context` as sent.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ToolContextBody {
    /// Tool name; required and non-empty.
    #[schema(schema_with = fields::required_long_text, required = true)]
    pub tool_name: Option<String>,
    /// Tool kind.
    #[schema(schema_with = fields::short_text)]
    pub tool_type: Option<String>,
    /// Tool arguments.
    #[schema(schema_with = fields::any_object)]
    pub tool_input: Option<Map<String, Value>>,
}

/// The body of `POST …/steps/{step_id}/gate` (contract §2.4). Unknown fields
/// are ignored and `null` means absent.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct GateBody {
    /// The kind of step: `llm_call`, `tool_call`, or the orchestrator's own.
    #[schema(schema_with = fields::required_short_text, required = true)]
    pub step_type: Option<String>,
    /// The tool the step calls.
    #[schema(nullable)]
    pub tool_context: Option<ToolContextBody>,
    /// `idempotent` (default): a repeated gate answers the stored decision;
    /// `reevaluate` runs the policies again.
    #[schema(schema_with = fields::retry_policy)]
    pub retry_policy: Option<String>,
    /// Caller's key for the step; `""` means absent.
    #[schema(schema_with = fields::long_text)]
    pub idempotency_key: Option<String>,
    /// Step name.
    #[schema(schema_with = fields::long_text)]
    pub step_name: Option<String>,
    /// Model.
    #[schema(schema_with = fields::short_text)]
    pub model: Option<String>,
    /// Provider.
    #[schema(schema_with = fields::short_text)]
    pub provider: Option<String>,
    /// Step input object.
    #[schema(schema_with = fields::any_object)]
    pub step_input: Option<Map<String, Value>>,
    /// Estimated input tokens.
    #[serde(default, deserialize_with = "fields::whole_number")]
    #[schema(schema_with = fields::token_count)]
    pub tokens_in: Option<i64>,
    /// Estimated output tokens.
    #[serde(default, deserialize_with = "fields::whole_number")]
    #[schema(schema_with = fields::token_count)]
    pub tokens_out: Option<i64>,
    /// Estimated cost in US dollars.
    #[schema(schema_with = fields::cost)]
    pub cost_usd: Option<f64>,
}

/// How a repeated gate of the same step is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryPolicy {
    /// Answer from the stored decision.
    Idempotent,
    /// Run the policies again.
    Reevaluate,
}

/// A gate body that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidGate {
    /// Step type.
    pub step_type: String,
    /// Tool context with defaults applied.
    pub tool_context: Option<ToolContext>,
    /// Retry policy.
    pub retry_policy: RetryPolicy,
    /// Idempotency key, `None` when absent or empty.
    pub idempotency_key: Option<String>,
    /// Step name.
    pub step_name: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Provider.
    pub provider: Option<String>,
    /// Step input object.
    pub step_input: Value,
    /// Estimated input tokens.
    pub tokens_in: Option<u64>,
    /// Estimated output tokens.
    pub tokens_out: Option<u64>,
    /// Estimated cost.
    pub cost_usd: Option<f64>,
}

impl GateBody {
    /// Checks the fields in the contract's order and applies defaults.
    pub fn validate(self) -> Result<ValidGate, InputError> {
        let step_type = match self.step_type {
            Some(step_type) if !step_type.is_empty() => step_type,
            _ => return Err(InputError::bad_request("step_type is required")),
        };
        let tool_context = match self.tool_context {
            None => None,
            Some(tool) => {
                let tool_name = tool.tool_name.unwrap_or_default();
                if tool_name.is_empty() {
                    return Err(InputError {
                        code: "INVALID_TOOL_CONTEXT",
                        message: "tool_name is required when tool_context is provided".into(),
                    });
                }
                Some(ToolContext {
                    tool_name,
                    tool_type: tool.tool_type,
                    tool_input: Value::Object(tool.tool_input.unwrap_or_default()),
                })
            }
        };
        let retry_policy = match self.retry_policy.as_deref() {
            None | Some("") | Some(IDEMPOTENT) => RetryPolicy::Idempotent,
            Some(REEVALUATE) => RetryPolicy::Reevaluate,
            Some(_) => {
                return Err(InputError::bad_request(format!(
                    r#"retry_policy must be "{IDEMPOTENT}" or "{REEVALUATE}""#
                )));
            }
        };
        let idempotency_key = self.idempotency_key.filter(|key| !key.is_empty());
        check_len("idempotency_key", idempotency_key.as_deref(), LONG_TEXT)?;
        check_len("step_name", self.step_name.as_deref(), LONG_TEXT)?;
        check_len("step_type", Some(&step_type), SHORT_TEXT)?;
        check_len("model", self.model.as_deref(), SHORT_TEXT)?;
        check_len("provider", self.provider.as_deref(), SHORT_TEXT)?;
        if let Some(tool) = &tool_context {
            check_len("tool_name", Some(&tool.tool_name), LONG_TEXT)?;
            check_len("tool_type", tool.tool_type.as_deref(), SHORT_TEXT)?;
        }
        let tokens_in = non_negative("tokens_in", self.tokens_in)?;
        let tokens_out = non_negative("tokens_out", self.tokens_out)?;
        let cost_usd = match self.cost_usd {
            Some(cost) if !cost.is_finite() || cost < 0.0 => {
                return Err(InputError::bad_request("cost_usd must be >= 0"));
            }
            other => other,
        };
        Ok(ValidGate {
            step_type,
            tool_context,
            retry_policy,
            idempotency_key,
            step_name: self.step_name,
            model: self.model,
            provider: self.provider,
            step_input: Value::Object(self.step_input.unwrap_or_default()),
            tokens_in,
            tokens_out,
            cost_usd,
        })
    }
}

fn check_len(field: &str, value: Option<&str>, max: usize) -> Result<(), InputError> {
    match fields::too_long(field, value, max) {
        Some(message) => Err(InputError::bad_request(message)),
        None => Ok(()),
    }
}

fn non_negative(field: &str, value: Option<i64>) -> Result<Option<u64>, InputError> {
    match value {
        None => Ok(None),
        Some(value) => u64::try_from(value)
            .map(Some)
            .map_err(|_| InputError::bad_request(format!("{field} must be >= 0"))),
    }
}

/// A dry-run body: a gate body plus an optional `step_id` and `workflow`.
#[derive(Debug, Clone, Default)]
pub struct DryRunBody {
    /// The gate fields.
    pub gate: GateBody,
    /// Step id; `dry-run` when absent.
    pub step_id: Option<String>,
    /// The workflow the step belongs to; dry-run defaults for missing fields.
    pub workflow: Option<WorkflowInput>,
}

/// A dry-run body in the OpenAPI document: a gate body and the fields a
/// dry run adds.
impl utoipa::PartialSchema for DryRunBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, Ref};
        AllOfBuilder::new()
            .item(Ref::from_schema_name(GateBody::name()))
            .item(Ref::from_schema_name(DryRunExtra::name()))
            .into()
    }
}

impl ToSchema for DryRunBody {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((GateBody::name().into_owned(), GateBody::schema()));
        GateBody::schemas(schemas);
        schemas.push((DryRunExtra::name().into_owned(), DryRunExtra::schema()));
        DryRunExtra::schemas(schemas);
    }
}

/// The fields a dry run adds to a gate body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DryRunExtra {
    /// The step's id; `dry-run` when absent.
    #[serde(default)]
    #[schema(schema_with = fields::optional_text)]
    step_id: Option<String>,
    /// The workflow the step belongs to; dry-run defaults for missing fields.
    #[serde(default)]
    #[schema(nullable)]
    workflow: Option<WorkflowInput>,
}

impl DryRunBody {
    /// Parses a dry-run body from JSON text. The gate fields are read on their
    /// own first so that wrong types and duplicate keys are caught as they
    /// are on the gate endpoint.
    pub fn from_json(text: &[u8]) -> Result<Self, InputError> {
        let body_error = |error: serde_json::Error| {
            InputError::bad_request(format!("Invalid request body: {error}"))
        };
        let gate: GateBody = serde_json::from_slice(text).map_err(body_error)?;
        let extra: DryRunExtra = serde_json::from_slice(text).map_err(body_error)?;
        Ok(DryRunBody {
            gate,
            step_id: extra.step_id,
            workflow: extra.workflow,
        })
    }

    /// Validates the gate fields and builds the input a policy sees for a
    /// first gate of the step by `actor`.
    pub fn into_input(self, actor: &str) -> Result<PolicyInput, InputError> {
        let gate = self.gate.validate()?;
        let workflow = self.workflow.unwrap_or_default();
        let step = StepInput {
            step_id: self.step_id.unwrap_or_else(|| "dry-run".into()),
            step_name: gate.step_name,
            step_type: gate.step_type,
            step_index: workflow.steps_gated.saturating_add(1),
            model: gate.model,
            provider: gate.provider,
            step_input: gate.step_input,
            tool_context: gate.tool_context,
            tokens_in: gate.tokens_in,
            tokens_out: gate.tokens_out,
            cost_usd: gate.cost_usd,
            gate_count: 1,
            completion_count: 0,
        };
        Ok(PolicyInput {
            workflow,
            step,
            actor: actor.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn input(body: Value) -> Result<PolicyInput, InputError> {
        DryRunBody::from_json(body.to_string().as_bytes())?.into_input("community")
    }

    #[test]
    fn minimal_body_gets_dry_run_defaults() {
        let input = input(json!({"step_type": "llm_call", "model": "gpt-4o"})).expect("valid");
        assert_eq!(input.workflow.workflow_id, "wf_dry_run");
        assert_eq!(input.workflow.workflow_name, "dry-run");
        assert_eq!(input.workflow.source, "external");
        assert_eq!(input.step.step_id, "dry-run");
        assert_eq!(input.step.step_index, 1);
        assert_eq!(input.step.gate_count, 1);
        assert_eq!(input.step.step_input, json!({}));
        assert_eq!(input.step.model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn workflow_object_overrides_defaults_field_by_field() {
        let input = input(json!({
            "step_type": "tool_call",
            "workflow": {"workflow_name": "payments", "total_cost_usd": 4.5, "steps_gated": 2}
        }))
        .expect("valid");
        assert_eq!(input.workflow.workflow_name, "payments");
        assert_eq!(input.workflow.workflow_id, "wf_dry_run");
        assert_eq!(input.workflow.total_cost_usd, 4.5);
        assert_eq!(input.step.step_index, 3);
    }

    #[test]
    fn invalid_bodies_name_the_problem() {
        let long = "x".repeat(256);
        let cases = [
            (
                "missing step_type",
                json!({}),
                "BAD_REQUEST",
                "step_type is required",
            ),
            (
                "empty tool name",
                json!({"step_type": "tool_call", "tool_context": {"tool_name": ""}}),
                "INVALID_TOOL_CONTEXT",
                "tool_name is required when tool_context is provided",
            ),
            (
                "retry policy case",
                json!({"step_type": "x", "retry_policy": "IDEMPOTENT"}),
                "BAD_REQUEST",
                r#"retry_policy must be "idempotent" or "reevaluate""#,
            ),
            (
                "long key",
                json!({"step_type": "x", "idempotency_key": long}),
                "BAD_REQUEST",
                "idempotency_key must be at most 255 characters",
            ),
            (
                "long model",
                json!({"step_type": "x", "model": "m".repeat(101)}),
                "BAD_REQUEST",
                "model must be at most 100 characters",
            ),
            (
                "negative tokens",
                json!({"step_type": "x", "tokens_in": -1}),
                "BAD_REQUEST",
                "tokens_in must be >= 0",
            ),
            (
                "negative cost",
                json!({"step_type": "x", "cost_usd": -0.5}),
                "BAD_REQUEST",
                "cost_usd must be >= 0",
            ),
        ];
        for (name, body, code, message) in cases {
            let error = input(body).expect_err(name);
            assert_eq!(
                (error.code, error.message.as_str()),
                (code, message),
                "{name}"
            );
        }
    }

    #[test]
    fn wrong_types_and_trailing_data_are_body_errors() {
        for text in [
            r#"{"step_type": 5}"#,
            r#"{"step_type": "x", "step_input": "text"}"#,
            r#"{"step_type": "x"} trailing"#,
            r#"{"step_type": "x", "step_type": "y"}"#,
            "{invalid",
        ] {
            let error = DryRunBody::from_json(text.as_bytes()).expect_err(text);
            assert!(
                error.message.starts_with("Invalid request body: "),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn serialises_with_contract_names() {
        let input = input(json!({
            "step_type": "tool_call",
            "tool_context": {"tool_name": "send_email"}
        }))
        .expect("valid");
        let json = serde_json::to_value(&input).expect("serialises");
        assert_eq!(json["step"]["tool_context"]["tool_name"], "send_email");
        assert_eq!(json["step"]["tool_context"]["tool_input"], json!({}));
        assert_eq!(json["workflow"]["workflow_id"], "wf_dry_run");
        assert!(json["step"].get("model").is_none());
    }
}
