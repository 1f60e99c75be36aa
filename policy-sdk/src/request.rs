//! What a policy is given: the workflow, the step, the caller and settings.
//!
//! JSON-shaped fields arrive as text and are parsed on first use, so a policy
//! that never looks at the step input never pays for parsing it.

use std::cell::OnceCell;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parses JSON text once, on first access. Text that is not JSON (which the
/// host never sends) reads as `null`.
#[derive(Clone, Default)]
pub(crate) struct LazyJson {
    text: String,
    value: OnceCell<Value>,
}

impl LazyJson {
    pub(crate) fn new(text: String) -> Self {
        LazyJson {
            text,
            value: OnceCell::new(),
        }
    }

    pub(crate) fn from_value(value: &Value) -> Self {
        LazyJson::new(value.to_string())
    }

    fn text(&self) -> &str {
        &self.text
    }

    fn value(&self) -> &Value {
        self.value
            .get_or_init(|| serde_json::from_str(&self.text).unwrap_or(Value::Null))
    }
}

impl fmt::Debug for LazyJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The settings given to the policy could not be read into the policy's
/// settings type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    detail: String,
}

impl SettingsError {
    /// An error with the given detail.
    pub fn new(detail: impl Into<String>) -> Self {
        SettingsError {
            detail: detail.into(),
        }
    }

    /// What did not fit, as serde reported it.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid policy settings: {}", self.detail)
    }
}

impl std::error::Error for SettingsError {}

/// The workflow a gated step belongs to.
#[derive(Debug, Clone, Default)]
pub struct Workflow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) tenant: String,
    pub(crate) org: String,
    pub(crate) trace_id: Option<String>,
    pub(crate) started_at: String,
    pub(crate) metadata: LazyJson,
    pub(crate) steps_gated: u32,
    pub(crate) total_cost_usd: f64,
    pub(crate) total_tokens_in: u64,
    pub(crate) total_tokens_out: u64,
}

impl Workflow {
    /// Workflow id (`wf_…`).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The name the workflow was registered under.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The orchestrator driving it (`external`, `langgraph`, …).
    pub fn source(&self) -> &str {
        &self.source
    }
    /// The owning tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
    /// The owning organisation.
    pub fn org(&self) -> &str {
        &self.org
    }
    /// The caller's trace id, if registered.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }
    /// Start time, RFC 3339 UTC.
    pub fn started_at(&self) -> &str {
        &self.started_at
    }
    /// The workflow's metadata object, parsed on first use.
    pub fn metadata(&self) -> &Value {
        self.metadata.value()
    }
    /// Distinct steps gated before this one.
    pub fn steps_gated(&self) -> u32 {
        self.steps_gated
    }
    /// Cost reported by completed steps so far, in US dollars.
    pub fn total_cost_usd(&self) -> f64 {
        self.total_cost_usd
    }
    /// Input tokens reported by completed steps so far.
    pub fn total_tokens_in(&self) -> u64 {
        self.total_tokens_in
    }
    /// Output tokens reported by completed steps so far.
    pub fn total_tokens_out(&self) -> u64 {
        self.total_tokens_out
    }
}

/// The tool a step is about to call.
#[derive(Debug, Clone, Default)]
pub struct Tool {
    pub(crate) name: String,
    pub(crate) kind: Option<String>,
    pub(crate) input: LazyJson,
}

impl Tool {
    /// Tool name, never empty.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Tool kind as the orchestrator labels it.
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    /// The tool's arguments, parsed on first use (`{}` when none).
    pub fn input(&self) -> &Value {
        self.input.value()
    }
}

/// The step being gated.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) step_type: String,
    pub(crate) index: u32,
    pub(crate) model: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) input: LazyJson,
    pub(crate) tool: Option<Tool>,
    pub(crate) tokens_in: Option<u64>,
    pub(crate) tokens_out: Option<u64>,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) gate_count: u32,
    pub(crate) completion_count: u32,
}

impl Step {
    /// Step id, unique within the workflow.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Human-readable name, if sent.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// Step type (`llm_call`, `tool_call`, `connector_call`, `human_task`, …).
    pub fn step_type(&self) -> &str {
        &self.step_type
    }
    /// Position in the workflow, from 1.
    pub fn index(&self) -> u32 {
        self.index
    }
    /// Model of an `llm_call`, if sent.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
    /// Model provider, if sent.
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }
    /// The step input object, parsed on first use (`{}` when none).
    pub fn input(&self) -> &Value {
        self.input.value()
    }
    /// The step input as the JSON text the host sent.
    pub fn input_json(&self) -> &str {
        self.input.text()
    }
    /// The tool this step calls, if the orchestrator sent a tool context.
    pub fn tool(&self) -> Option<&Tool> {
        self.tool.as_ref()
    }
    /// Estimated input tokens sent with this gate.
    pub fn tokens_in(&self) -> Option<u64> {
        self.tokens_in
    }
    /// Estimated output tokens sent with this gate.
    pub fn tokens_out(&self) -> Option<u64> {
        self.tokens_out
    }
    /// Estimated cost of this step in US dollars, sent with this gate.
    pub fn cost_usd(&self) -> Option<f64> {
        self.cost_usd
    }
    /// Gate calls for this step, including this one.
    pub fn gate_count(&self) -> u32 {
        self.gate_count
    }
    /// Times the step was reported completed.
    pub fn completion_count(&self) -> u32 {
        self.completion_count
    }
}

/// Everything a policy is given to decide one gate.
///
/// The shortcuts on `Request` cover what most policies read; [`Request::step`]
/// and [`Request::workflow`] give the rest.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub(crate) workflow: Workflow,
    pub(crate) step: Step,
    pub(crate) actor: String,
    pub(crate) settings: LazyJson,
}

impl Request {
    /// The workflow.
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }
    /// The step being gated.
    pub fn step(&self) -> &Step {
        &self.step
    }
    /// The authenticated caller (client id, or `community`).
    pub fn actor(&self) -> &str {
        &self.actor
    }
    /// The step type, for example `llm_call` or `tool_call`.
    pub fn step_type(&self) -> &str {
        self.step.step_type()
    }
    /// The step name, if sent.
    pub fn step_name(&self) -> Option<&str> {
        self.step.name()
    }
    /// The model, if sent.
    pub fn model(&self) -> Option<&str> {
        self.step.model()
    }
    /// The provider, if sent.
    pub fn provider(&self) -> Option<&str> {
        self.step.provider()
    }
    /// The tool name from the tool context, if sent.
    pub fn tool_name(&self) -> Option<&str> {
        self.step.tool().map(Tool::name)
    }
    /// The step input object, parsed on first use.
    pub fn input(&self) -> &Value {
        self.step.input()
    }
    /// The raw settings object, parsed on first use (`{}` when none).
    pub fn settings_value(&self) -> &Value {
        self.settings.value()
    }

    /// Reads the policy's settings into the author's own type.
    ///
    /// Give the type `#[serde(default)]` so that a policy deployed without a
    /// `[settings]` table still gets sensible values. Settings that do not fit
    /// give a [`SettingsError`] naming the problem; returned from `evaluate`
    /// with `?`, it blocks the step with that reason.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, SettingsError> {
        let text = self.settings.text();
        let text = if text.trim().is_empty() { "{}" } else { text };
        serde_json::from_str(text).map_err(|error| SettingsError::new(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use crate::testing::RequestBuilder;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(default)]
    struct Limits {
        max: u32,
        names: Vec<String>,
    }

    impl Default for Limits {
        fn default() -> Self {
            Limits {
                max: 7,
                names: vec!["a".into()],
            }
        }
    }

    #[test]
    fn absent_settings_fall_back_to_defaults() {
        let request = RequestBuilder::new("llm_call").build();
        let limits: Limits = request.settings().expect("defaults apply");
        assert_eq!(limits, Limits::default());
    }

    #[test]
    fn settings_that_do_not_fit_name_the_field() {
        let request = RequestBuilder::new("llm_call")
            .settings(json!({"max": "seven"}))
            .build();
        let error = request
            .settings::<Limits>()
            .expect_err("a string is not a u32");
        assert!(error.to_string().contains("invalid type"), "{error}");
        assert!(error.to_string().starts_with("invalid policy settings: "));
    }

    #[test]
    fn accessors_read_the_step_and_tool() {
        let request = RequestBuilder::new("tool_call")
            .step_name("notify")
            .model("gpt-4o")
            .provider("openai")
            .input(json!({"to": "a@b.c"}))
            .tool("send_email")
            .tool_input(json!({"subject": "hi"}))
            .build();
        assert_eq!(request.step_type(), "tool_call");
        assert_eq!(request.step_name(), Some("notify"));
        assert_eq!(request.model(), Some("gpt-4o"));
        assert_eq!(request.provider(), Some("openai"));
        assert_eq!(request.tool_name(), Some("send_email"));
        assert_eq!(request.input()["to"], "a@b.c");
        let tool = request.step().tool().expect("tool set");
        assert_eq!(tool.input()["subject"], "hi");
    }

    #[test]
    fn input_defaults_to_an_empty_object() {
        let request = RequestBuilder::new("llm_call").build();
        assert_eq!(request.input(), &json!({}));
        assert_eq!(request.workflow().metadata(), &json!({}));
    }
}
