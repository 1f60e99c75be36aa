//! The component glue, compiled only for wasm: the generated bindings and the
//! conversions between them and the SDK's own types. Policy authors never see
//! this module; [`export_policy!`](crate::export_policy) uses it.

// The generated export shims are `unsafe extern "C"` functions.
#![allow(unsafe_code)]

#[allow(missing_docs, unused_qualifications, missing_debug_implementations)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "wcp:policy/policy",
        pub_export_macro: true,
        export_macro_name: "__wcp_export_world",
        default_bindings_module: "::wcp_policy_sdk::__private::bindings",
        runtime_path: "::wcp_policy_sdk::__private::rt",
    });
}

use bindings::wcp::policy::{host, types};

use crate::decision::{IntoDecision, Verdict};
use crate::log::Level;
use crate::request::{LazyJson, Request, Step, Tool, Workflow};

pub use wit_bindgen::rt;

/// Runs the author's `evaluate` on a request lifted from the host.
pub fn run<R: IntoDecision>(
    request: types::GateRequest,
    evaluate: fn(&Request) -> R,
) -> types::Decision {
    let request = Request::from(request);
    let (verdict, reason) = evaluate(&request).into_decision().into_parts();
    let verdict = match verdict {
        Verdict::Allow => types::Verdict::Allow,
        Verdict::Block => types::Verdict::Block,
        Verdict::RequireApproval => types::Verdict::RequireApproval,
    };
    types::Decision { verdict, reason }
}

pub(crate) fn host_log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => host::Level::Trace,
        Level::Debug => host::Level::Debug,
        Level::Info => host::Level::Info,
        Level::Warn => host::Level::Warn,
        Level::Error => host::Level::Error,
    };
    host::log(level, message);
}

impl From<types::GateRequest> for Request {
    fn from(request: types::GateRequest) -> Self {
        let w = request.workflow;
        let s = request.step;
        Request {
            workflow: Workflow {
                id: w.id,
                name: w.name,
                source: w.source,
                tenant: w.tenant,
                org: w.org,
                trace_id: w.trace_id,
                started_at: w.started_at,
                metadata: LazyJson::new(w.metadata),
                steps_gated: w.steps_gated,
                total_cost_usd: w.total_cost_usd,
                total_tokens_in: w.total_tokens_in,
                total_tokens_out: w.total_tokens_out,
            },
            step: Step {
                id: s.id,
                name: s.name,
                step_type: s.step_type,
                index: s.index,
                model: s.model,
                provider: s.provider,
                input: LazyJson::new(s.input),
                tool: s.tool_context.map(|t| Tool {
                    name: t.tool_name,
                    kind: t.tool_type,
                    input: LazyJson::new(t.tool_input),
                }),
                tokens_in: s.tokens_in,
                tokens_out: s.tokens_out,
                cost_usd: s.cost_usd,
                gate_count: s.gate_count,
                completion_count: s.completion_count,
            },
            actor: request.actor,
            settings: LazyJson::new(request.settings),
        }
    }
}
