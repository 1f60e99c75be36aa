//! Resuming a workflow from a checkpoint (contract §2.14, §2.15): the
//! refusals, the choice of checkpoint, and the one transaction that revives
//! an aborted workflow, re-runs the step's stored gate as a `reevaluate`
//! (§4.1 from step 9), counts the resume and audits it. SQL stays in
//! `store`.

use std::time::Duration;

use serde_json::{Map, json};

use super::Combined;
use super::flow::{check_capacity, check_no_hold};
use super::record::{self, GateCall, GateView, Recorded, Via};
use crate::audit::{AuditKind, AuditRecord};
use crate::clock;
use crate::input::{RetryPolicy, ToolContext, ValidGate};
use crate::refusal::{FlowError, Refusal};
use crate::store::{CheckpointRow, ReadTx, StepRow, StoreError, WriteTx};

/// Which checkpoint to resume from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The resumable checkpoint with the highest `step_index` (§2.14).
    Last,
    /// This checkpoint of the workflow (§2.15).
    Id(i64),
}

/// A validated resume request.
#[derive(Debug, Clone)]
pub struct ResumeCall {
    /// Caller's tenant.
    pub tenant: String,
    /// Caller's org.
    pub org: String,
    /// Caller.
    pub actor: String,
    /// The workflow.
    pub workflow_id: String,
    /// The checkpoint asked for.
    pub target: Target,
    /// The tenant's concurrency limit, checked when reviving.
    pub limit: Option<u64>,
    /// How long a new hold lasts.
    pub approval_ttl: Duration,
}

/// What a resume re-runs: the checkpoint, and the step's stored gate as a
/// `reevaluate` call with what its policies see.
#[derive(Debug, Clone)]
pub struct ResumePlan {
    /// The checkpoint resumed from.
    pub checkpoint: CheckpointRow,
    /// The stored gate, replayed.
    pub call: GateCall,
    /// The workflow and step as the policies see them.
    pub view: GateView,
}

fn not_resumable(message: String) -> FlowError {
    Refusal::conflict("NOT_RESUMABLE", message).into()
}

/// Steps (1)-(3): refuses a finished or held workflow, then picks the
/// checkpoint and rebuilds the gate that produced it.
pub fn plan(conn: &ReadTx, call: &ResumeCall) -> Result<ResumePlan, FlowError> {
    let workflow = conn
        .find_workflow(&call.workflow_id, &call.tenant, &call.org)?
        .ok_or(Refusal::NotFound("Workflow not found"))?;
    if matches!(workflow.status.as_str(), "completed" | "failed") {
        return Err(not_resumable(format!(
            "cannot resume workflow in terminal state: {}",
            workflow.status
        )));
    }
    let all_steps = conn.list_steps(&call.workflow_id)?;
    for step in &all_steps {
        check_no_hold(step)?;
    }
    let checkpoint = match call.target {
        Target::Last => conn.last_resumable(&call.workflow_id)?.ok_or_else(|| {
            not_resumable(format!(
                "no resumable checkpoint found for workflow {}",
                call.workflow_id
            ))
        })?,
        Target::Id(id) => {
            let checkpoint = conn
                .find_checkpoint(&call.workflow_id, id)?
                .ok_or(Refusal::NotFound("Checkpoint not found"))?;
            if !checkpoint.is_resumable {
                return Err(not_resumable(format!("checkpoint {id} is not resumable")));
            }
            checkpoint
        }
    };
    let step = all_steps
        .iter()
        .find(|step| step.step_id == checkpoint.step_id)
        .cloned()
        .ok_or_else(|| StoreError::Invalid {
            what: "checkpoint",
            detail: format!("checkpoint {} has no step", checkpoint.id),
        })?;
    let gate = GateCall {
        tenant: call.tenant.clone(),
        org: call.org.clone(),
        actor: call.actor.clone(),
        workflow_id: call.workflow_id.clone(),
        step_id: step.step_id.clone(),
        gate: stored_gate(&step)?,
        approval_ttl: call.approval_ttl,
        via: Via::CheckpointResume,
    };
    let view = GateView {
        workflow,
        existing: Some(step),
        steps_gated: u32::try_from(all_steps.len()).unwrap_or(u32::MAX),
        cached: false,
    };
    Ok(ResumePlan {
        checkpoint,
        call: gate,
        view,
    })
}

/// The step's latest fresh gate as a `reevaluate` request with the same
/// key, so the idempotency check passes and the policies run.
fn stored_gate(step: &StepRow) -> Result<ValidGate, StoreError> {
    let tool_context = step
        .tool_context
        .clone()
        .map(serde_json::from_value::<ToolContext>)
        .transpose()
        .map_err(|error| StoreError::Corrupt {
            what: "step tool context",
            detail: error.to_string(),
        })?;
    Ok(ValidGate {
        step_type: step.step_type.clone(),
        tool_context,
        retry_policy: RetryPolicy::Reevaluate,
        idempotency_key: step.idempotency_key.clone(),
        step_name: step.step_name.clone(),
        model: step.model.clone(),
        provider: step.provider.clone(),
        step_input: step.step_input.clone(),
        tokens_in: step.estimated_tokens_in,
        tokens_out: step.estimated_tokens_out,
        cost_usd: step.estimated_cost_usd,
    })
}

/// A recorded resume.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The checkpoint resumed from, before this resume.
    pub checkpoint: CheckpointRow,
    /// The re-run gate as recorded.
    pub gate: Recorded,
    /// Resumes of the checkpoint, this one included.
    pub resume_count: u32,
}

/// Steps (4)-(6) in `tx`, after re-checking (1)-(3): revives an aborted
/// workflow within the concurrency limit, records the re-run gate with
/// `fresh` (evaluated on the plan outside the transaction), and counts the
/// resume. Any refusal rolls all of it back.
pub fn record(
    tx: &WriteTx,
    call: &ResumeCall,
    planned: &ResumePlan,
    fresh: Combined,
) -> Result<Resumed, FlowError> {
    let plan = plan(tx, call)?;
    if plan.checkpoint.id != planned.checkpoint.id {
        // Gates of a workflow are serialised, so only a resume racing an
        // unserialised write gets here; the client retries.
        return Err(Refusal::conflict(
            "NOT_RESUMABLE",
            "the workflow changed while resuming; retry",
        )
        .into());
    }
    let revived = plan.view.workflow.status == "aborted";
    if revived {
        check_capacity(tx.count_running(&call.tenant)?, call.limit)?;
        tx.revive_workflow(&call.workflow_id)?;
    }
    let now = clock::now_rfc3339();
    tx.append_audit(
        &call.tenant,
        resumed_record(call, &plan.checkpoint, revived, &now),
    )?;
    let gate = record::record(tx, &plan.call, Some(fresh))?;
    let resume_count = tx.mark_resumed(&plan.checkpoint.workflow_id, plan.checkpoint.id, &now)?;
    Ok(Resumed {
        checkpoint: plan.checkpoint,
        gate,
        resume_count,
    })
}

fn resumed_record(
    call: &ResumeCall,
    checkpoint: &CheckpointRow,
    revived: bool,
    now: &str,
) -> AuditRecord {
    let mut details = Map::new();
    details.insert("checkpoint_id".into(), json!(checkpoint.id));
    details.insert("step_id".into(), json!(checkpoint.step_id));
    details.insert("revived".into(), json!(revived));
    AuditRecord {
        at: now.to_owned(),
        tenant: call.tenant.clone(),
        org: call.org.clone(),
        actor: call.actor.clone(),
        kind: AuditKind::WorkflowResumed.as_str().into(),
        workflow_id: Some(call.workflow_id.clone()),
        step_id: Some(checkpoint.step_id.clone()),
        decision: None,
        reason: None,
        details,
    }
}
