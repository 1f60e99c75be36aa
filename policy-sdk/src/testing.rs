//! Native testing support: build a [`Request`] in a unit test, call your
//! `evaluate` function directly, and assert on the [`Decision`](crate::Decision).
//!
//! ```
//! use serde_json::json;
//! use wcp_policy_sdk::{testing::RequestBuilder, Decision, Request};
//!
//! fn evaluate(request: &Request) -> Decision {
//!     match request.model() {
//!         Some("gpt-4o") => Decision::allow(),
//!         _ => Decision::block("unknown model"),
//!     }
//! }
//!
//! let request = RequestBuilder::new("llm_call").model("gpt-4o").build();
//! assert!(evaluate(&request).is_allow());
//! let request = RequestBuilder::new("llm_call")
//!     .model("davinci-001")
//!     .settings(json!({"strict": true}))
//!     .build();
//! assert!(evaluate(&request).is_block());
//! ```

use std::cell::RefCell;

use serde_json::Value;

use crate::log::Level;
use crate::request::{LazyJson, Request, Step, Tool, Workflow};

/// Builds a [`Request`] as the host would send it, with the defaults of a dry
/// run: workflow `wf_dry_run` named `dry-run` from `external`, tenant
/// `community`, step `dry-run` at index 1 with gate count 1, `{}` input and
/// settings.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    request: Request,
}

impl RequestBuilder {
    /// A request for a step of the given type.
    pub fn new(step_type: impl Into<String>) -> Self {
        let workflow = Workflow {
            id: "wf_dry_run".into(),
            name: "dry-run".into(),
            source: "external".into(),
            tenant: "community".into(),
            org: "default".into(),
            started_at: "2026-01-01T00:00:00.000000Z".into(),
            metadata: LazyJson::new("{}".into()),
            ..Workflow::default()
        };
        let step = Step {
            id: "dry-run".into(),
            step_type: step_type.into(),
            index: 1,
            input: LazyJson::new("{}".into()),
            gate_count: 1,
            ..Step::default()
        };
        RequestBuilder {
            request: Request {
                workflow,
                step,
                actor: "community".into(),
                settings: LazyJson::new("{}".into()),
            },
        }
    }

    /// Sets the step id.
    pub fn step_id(mut self, id: impl Into<String>) -> Self {
        self.request.step.id = id.into();
        self
    }
    /// Sets the step name.
    pub fn step_name(mut self, name: impl Into<String>) -> Self {
        self.request.step.name = Some(name.into());
        self
    }
    /// Sets the model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.request.step.model = Some(model.into());
        self
    }
    /// Sets the provider.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.request.step.provider = Some(provider.into());
        self
    }
    /// Sets the step input object.
    pub fn input(mut self, input: Value) -> Self {
        self.request.step.input = LazyJson::from_value(&input);
        self
    }
    /// Adds a tool context with this tool name.
    pub fn tool(mut self, name: impl Into<String>) -> Self {
        let tool = self.request.step.tool.get_or_insert_with(empty_tool);
        tool.name = name.into();
        self
    }
    /// Sets the tool kind (adding a tool context if needed).
    pub fn tool_type(mut self, kind: impl Into<String>) -> Self {
        let tool = self.request.step.tool.get_or_insert_with(empty_tool);
        tool.kind = Some(kind.into());
        self
    }
    /// Sets the tool input (adding a tool context if needed).
    pub fn tool_input(mut self, input: Value) -> Self {
        let tool = self.request.step.tool.get_or_insert_with(empty_tool);
        tool.input = LazyJson::from_value(&input);
        self
    }
    /// Sets the estimated cost of this step.
    pub fn cost_usd(mut self, cost: f64) -> Self {
        self.request.step.cost_usd = Some(cost);
        self
    }
    /// Sets the estimated token counts of this step.
    pub fn tokens(mut self, tokens_in: u64, tokens_out: u64) -> Self {
        self.request.step.tokens_in = Some(tokens_in);
        self.request.step.tokens_out = Some(tokens_out);
        self
    }
    /// Sets the step's position and gate count.
    pub fn index(mut self, index: u32) -> Self {
        self.request.step.index = index;
        self
    }
    /// Sets how many times this step has been gated, this call included.
    pub fn gate_count(mut self, gate_count: u32) -> Self {
        self.request.step.gate_count = gate_count;
        self
    }
    /// Sets the workflow name.
    pub fn workflow_name(mut self, name: impl Into<String>) -> Self {
        self.request.workflow.name = name.into();
        self
    }
    /// Sets the workflow source.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.request.workflow.source = source.into();
        self
    }
    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.request.workflow.tenant = tenant.into();
        self
    }
    /// Sets the workflow metadata object.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.request.workflow.metadata = LazyJson::from_value(&metadata);
        self
    }
    /// Sets the workflow's running cost total.
    pub fn total_cost_usd(mut self, total: f64) -> Self {
        self.request.workflow.total_cost_usd = total;
        self
    }
    /// Sets the workflow's running token totals.
    pub fn total_tokens(mut self, tokens_in: u64, tokens_out: u64) -> Self {
        self.request.workflow.total_tokens_in = tokens_in;
        self.request.workflow.total_tokens_out = tokens_out;
        self
    }
    /// Sets how many distinct steps were gated before this one.
    pub fn steps_gated(mut self, steps: u32) -> Self {
        self.request.workflow.steps_gated = steps;
        self
    }
    /// Sets the caller.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.request.actor = actor.into();
        self
    }
    /// Sets the policy settings, as the manifest's `[settings]` would.
    pub fn settings(mut self, settings: Value) -> Self {
        self.request.settings = LazyJson::from_value(&settings);
        self
    }

    /// The finished request.
    pub fn build(self) -> Request {
        self.request
    }
}

fn empty_tool() -> Tool {
    Tool {
        name: String::new(),
        kind: None,
        input: LazyJson::new("{}".into()),
    }
}

thread_local! {
    static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn record_log(level: Level, message: String) {
    LOGS.with(|logs| logs.borrow_mut().push((level, message)));
}

/// Returns and clears the messages this thread logged with [`crate::log`].
/// Each test runs on its own thread, so tests do not see each other's logs.
pub fn take_logs() -> Vec<(Level, String)> {
    LOGS.with(|logs| std::mem::take(&mut *logs.borrow_mut()))
}
