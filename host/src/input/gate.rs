//! The body of a gate, as sent, and its validation in the contract's
//! field order.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{InputError, ToolContext};
use crate::fields::{self, IDEMPOTENT, LONG_TEXT, REEVALUATE, SHORT_TEXT};

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
