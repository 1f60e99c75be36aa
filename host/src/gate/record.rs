//! §4.1 steps 2-13 against the store: what a gate finds, what policies
//! see, and the one transaction that records a cached or fresh gate with
//! its checkpoint and audit entry. SQL stays in `store`.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Combined;
use super::flow::{self, check_key, check_no_hold, check_same_input};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock;
use crate::input::{PolicyInput, RetryPolicy, StepInput, ValidGate, WorkflowInput};
use crate::refusal::{FlowError, Refusal, approval_pending};
use crate::store::{CheckpointOwner, ReadTx, StepRow, StoreError, WorkflowRow, WriteTx};
use crate::verdict::Verdict;

/// A validated gate call.
#[derive(Debug, Clone)]
pub struct GateCall {
    /// Caller's tenant.
    pub tenant: String,
    /// Caller's org.
    pub org: String,
    /// Caller.
    pub actor: String,
    /// The workflow.
    pub workflow_id: String,
    /// The step.
    pub step_id: String,
    /// The body.
    pub gate: ValidGate,
    /// How long a new hold lasts.
    pub approval_ttl: Duration,
    /// What asked for the gate.
    pub via: Via,
}

/// What asked for a gate, as its audit entry's `via` says (contract §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The gate route.
    Gate,
    /// A checkpoint resume re-running the step's stored gate.
    CheckpointResume,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Gate => "gate",
            Via::CheckpointResume => "checkpoint_resume",
        }
    }
}

impl GateCall {
    fn tool_context(&self) -> Option<Value> {
        self.gate
            .tool_context
            .as_ref()
            .and_then(|tool| serde_json::to_value(tool).ok())
    }
}

/// What a gate finds before deciding (§4.1 steps 2-8).
#[derive(Debug, Clone)]
pub struct GateView {
    /// The workflow, in progress.
    pub workflow: WorkflowRow,
    /// The step's row, if it was gated before.
    pub existing: Option<StepRow>,
    /// Distinct steps gated so far.
    pub steps_gated: u32,
    /// Whether the answer comes from the stored row.
    pub cached: bool,
}

/// Loads the workflow and step and applies the refusals of §4.1 steps 2-8.
pub fn view(conn: &ReadTx, call: &GateCall) -> Result<GateView, FlowError> {
    let workflow = conn
        .find_workflow(&call.workflow_id, &call.tenant, &call.org)?
        .ok_or(Refusal::NotFound("Workflow not found"))?;
    if workflow.is_terminal() {
        return Err(Refusal::conflict(
            "WORKFLOW_TERMINAL",
            format!("workflow is in terminal state: {}", workflow.status),
        )
        .into());
    }
    let existing = conn.find_step(&call.workflow_id, &call.step_id)?;
    let cached = match &existing {
        Some(step) => {
            check_key(step, call.gate.idempotency_key.as_deref())?;
            if call.gate.retry_policy == RetryPolicy::Idempotent {
                check_same_input(step, &call.gate.step_input, call.tool_context().as_ref())?;
                true
            } else {
                check_no_hold(step)?;
                false
            }
        }
        None => false,
    };
    if !cached
        && let Some(pending) = conn.step_with_approval(&call.workflow_id, &["pending"])?
        && pending != call.step_id
    {
        return Err(approval_pending(&pending).into());
    }
    let steps_gated = conn.count_steps(&call.workflow_id)?;
    Ok(GateView {
        workflow,
        existing,
        steps_gated,
        cached,
    })
}

/// What the policies see for a fresh evaluation (contract §5).
pub fn policy_input(view: &GateView, call: &GateCall) -> PolicyInput {
    let workflow = &view.workflow;
    let existing = view.existing.as_ref();
    let gate = &call.gate;
    PolicyInput {
        workflow: WorkflowInput {
            workflow_id: workflow.workflow_id.clone(),
            workflow_name: workflow.workflow_name.clone(),
            source: workflow.source.clone(),
            tenant: workflow.tenant.clone(),
            org: workflow.org.clone(),
            trace_id: workflow.trace_id.clone(),
            started_at: workflow.started_at.clone(),
            metadata: workflow.metadata.clone(),
            steps_gated: view
                .steps_gated
                .saturating_sub(u32::from(existing.is_some())),
            total_cost_usd: workflow.total_cost_usd,
            total_tokens_in: workflow.total_tokens_in,
            total_tokens_out: workflow.total_tokens_out,
        },
        step: StepInput {
            step_id: call.step_id.clone(),
            step_name: gate.step_name.clone(),
            step_type: gate.step_type.clone(),
            step_index: existing.map_or(workflow.current_step_index + 1, |s| s.step_index),
            model: gate.model.clone(),
            provider: gate.provider.clone(),
            step_input: gate.step_input.clone(),
            tool_context: gate.tool_context.clone(),
            tokens_in: gate.tokens_in,
            tokens_out: gate.tokens_out,
            cost_usd: gate.cost_usd,
            gate_count: existing.map_or(1, |s| s.gate_count + 1),
            completion_count: existing.map_or(0, |s| s.completion_count),
        },
        actor: call.actor.clone(),
    }
}

/// A recorded gate: the step as written and how to answer.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The step row after this gate.
    pub step: StepRow,
    /// Answered from the stored row.
    pub cached: bool,
    /// This gate created the step.
    pub first_gate: bool,
    /// The answered decision (folded when cached).
    pub decision: Verdict,
    /// The answered reason.
    pub reason: String,
}

/// Records one gate in `tx` (§4.1 steps 2-13). The state is checked again
/// inside the transaction: a step that appeared since `view` is answered as
/// cached, so concurrent first gates agree. `fresh` is the evaluation made
/// outside the transaction; a fresh gate without one is refused as a fault.
pub fn record(
    tx: &WriteTx,
    call: &GateCall,
    fresh: Option<Combined>,
) -> Result<Recorded, FlowError> {
    let view = view(tx, call)?;
    let now = clock::now_rfc3339();
    let recorded = match (view.existing, view.cached, fresh) {
        (Some(mut step), true, _) => {
            step.gate_count += 1;
            step.last_decision = step.decision;
            step.gate_checked_at.clone_from(&now);
            let (decision, reason) = flow::folded(&step);
            Recorded {
                step,
                cached: true,
                first_gate: false,
                decision,
                reason,
            }
        }
        (existing, false, Some(combined)) => fresh_step(tx, call, existing, combined, &now)?,
        _ => {
            return Err(StoreError::Invalid {
                what: "gate",
                detail: "a fresh gate reached the store without an evaluation".into(),
            }
            .into());
        }
    };
    tx.save_step(&recorded.step)?;
    if !recorded.cached {
        let owner = CheckpointOwner {
            actor: &call.actor,
            at: &now,
        };
        tx.upsert_checkpoint(&recorded.step, owner)?;
    }
    tx.append_audit(&call.tenant, audit_record(call, &recorded, &now))?;
    Ok(recorded)
}

fn fresh_step(
    tx: &WriteTx,
    call: &GateCall,
    existing: Option<StepRow>,
    combined: Combined,
    now: &str,
) -> Result<Recorded, FlowError> {
    let index = tx.bump_step_index(&call.workflow_id)?;
    let gate = &call.gate;
    let to_json = |runs: &[super::PolicyRun]| serde_json::to_value(runs).unwrap_or(json!([]));
    let first_gate = existing.is_none();
    let mut step = existing.unwrap_or_else(|| {
        let mut step = StepRow::new(
            &call.workflow_id,
            &call.step_id,
            index,
            combined.decision,
            now,
        );
        step.idempotency_key.clone_from(&gate.idempotency_key);
        step
    });
    step.last_decision = if first_gate {
        combined.decision
    } else {
        step.decision
    };
    step.step_type.clone_from(&gate.step_type);
    step.step_name.clone_from(&gate.step_name);
    step.model.clone_from(&gate.model);
    step.provider.clone_from(&gate.provider);
    step.step_input.clone_from(&gate.step_input);
    step.tool_context = call.tool_context();
    step.estimated_tokens_in = gate.tokens_in;
    step.estimated_tokens_out = gate.tokens_out;
    step.estimated_cost_usd = gate.cost_usd;
    step.decision = combined.decision;
    step.decision_reason = Some(combined.reason.clone());
    step.policies_evaluated = to_json(&combined.evaluated);
    step.policies_matched = to_json(&combined.matched);
    step.gate_count += 1;
    step.gate_checked_at = now.to_owned();
    if combined.decision == Verdict::RequireApproval {
        step.approval_count += 1;
        step.approval_status = Some("pending".into());
        step.approval_id = Some(flow::approval_id(
            &call.workflow_id,
            &call.step_id,
            step.approval_count,
        ));
        step.approval_requested_at = Some(now.to_owned());
        let expires = time::OffsetDateTime::now_utc() + call.approval_ttl;
        step.expires_at = Some(clock::rfc3339(expires));
    } else {
        step.approval_status = None;
        step.approval_requested_at = None;
        step.expires_at = None;
    }
    step.approved_by = None;
    step.approved_at = None;
    step.approval_comment = None;
    Ok(Recorded {
        step,
        cached: false,
        first_gate,
        decision: combined.decision,
        reason: combined.reason,
    })
}

/// Ids of the policies that did not allow, from a stored `policies_matched`.
pub fn policy_ids(matched: &Value) -> Vec<String> {
    matched
        .as_array()
        .map(|runs| {
            runs.iter()
                .filter_map(|run| run.get("policy_id")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn audit_record(call: &GateCall, recorded: &Recorded, now: &str) -> AuditRecord {
    let step = &recorded.step;
    let mut details = Map::new();
    details.insert("cached".into(), json!(recorded.cached));
    let retry = match call.gate.retry_policy {
        RetryPolicy::Idempotent => "idempotent",
        RetryPolicy::Reevaluate => "reevaluate",
    };
    details.insert("retry_policy".into(), json!(retry));
    details.insert("step_type".into(), json!(step.step_type));
    details.insert("step_index".into(), json!(step.step_index));
    details.insert("gate_count".into(), json!(step.gate_count));
    details.insert(
        "idempotency_key".into(),
        json!(step.idempotency_key.clone().unwrap_or_default()),
    );
    if let Some(tool) = &call.gate.tool_context {
        details.insert("tool_name".into(), json!(tool.tool_name));
    }
    details.insert(
        "policy_ids".into(),
        json!(policy_ids(&step.policies_matched)),
    );
    details.insert("policies_evaluated".into(), step.policies_evaluated.clone());
    details.insert(
        "step_input_sha256".into(),
        json!(flow::sha256_of(&step.step_input)),
    );
    details.insert("via".into(), json!(call.via.as_str()));
    AuditRecord {
        at: now.to_owned(),
        tenant: call.tenant.clone(),
        org: call.org.clone(),
        actor: call.actor.clone(),
        kind: AuditKind::StepGate.as_str().to_owned(),
        workflow_id: Some(call.workflow_id.clone()),
        step_id: Some(call.step_id.clone()),
        decision: Some(recorded.decision),
        reason: Some(recorded.reason.clone()),
        details,
    }
}
