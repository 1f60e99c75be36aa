//! The one place the policy world's host bindings are generated, and the
//! conversion from [`PolicyInput`] into the generated request type.

use crate::input::PolicyInput;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wcp:policy/policy",
});

pub use wcp::policy::host::Level;
pub use wcp::policy::types::{StepInfo, ToolContext, Verdict, WorkflowInfo};

/// A gate request ready to hand to any number of policies: the JSON fields
/// are serialised once per gate, and only the settings differ per policy.
#[derive(Debug, Clone)]
pub struct PolicyRequest {
    request: GateRequest,
}

impl PolicyRequest {
    /// Builds the request a policy receives for `input`.
    pub fn new(input: &PolicyInput) -> Self {
        let workflow = &input.workflow;
        let step = &input.step;
        let request = GateRequest {
            workflow: WorkflowInfo {
                id: workflow.workflow_id.clone(),
                name: workflow.workflow_name.clone(),
                source: workflow.source.clone(),
                tenant: workflow.tenant.clone(),
                org: workflow.org.clone(),
                trace_id: workflow.trace_id.clone(),
                started_at: workflow.started_at.clone(),
                metadata: workflow.metadata.to_string(),
                steps_gated: workflow.steps_gated,
                total_cost_usd: workflow.total_cost_usd,
                total_tokens_in: workflow.total_tokens_in,
                total_tokens_out: workflow.total_tokens_out,
            },
            step: StepInfo {
                id: step.step_id.clone(),
                name: step.step_name.clone(),
                step_type: step.step_type.clone(),
                index: step.step_index,
                model: step.model.clone(),
                provider: step.provider.clone(),
                input: step.step_input.to_string(),
                tool_context: step.tool_context.as_ref().map(|tool| ToolContext {
                    tool_name: tool.tool_name.clone(),
                    tool_type: tool.tool_type.clone(),
                    tool_input: tool.tool_input.to_string(),
                }),
                tokens_in: step.tokens_in,
                tokens_out: step.tokens_out,
                cost_usd: step.cost_usd,
                gate_count: step.gate_count,
                completion_count: step.completion_count,
            },
            actor: input.actor.clone(),
            settings: String::from("{}"),
        };
        PolicyRequest { request }
    }

    /// The request with one policy's settings (JSON text).
    pub(crate) fn with_settings(&self, settings: &str) -> GateRequest {
        let mut request = self.request.clone();
        request.settings = settings.to_owned();
        request
    }
}
