//! What a policy sees (contract §5), and how a gate body becomes it.
//!
//! [`PolicyInput`] carries the contract's JSON names, so serialising it gives
//! the `input` of a dry run. [`GateBody`] is the body of the gate endpoint,
//! validated in the contract's field order; [`DryRunBody`] adds the optional
//! `step_id` and `workflow` that `wcp policy eval` and the dry-run route
//! accept.
//!
//! - `gate`: the gate body and its validation. `dry_run`: the dry-run body.

mod dry_run;
mod gate;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::fields;

pub use dry_run::{DryRunBody, DryRunExtra};
pub use gate::{GateBody, RetryPolicy, ToolContextBody, ValidGate};

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
