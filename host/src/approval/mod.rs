//! Approval holds (contract §2.10, §2.11, §3.2): a human approves or
//! rejects a held step, or the hold times out. The rules are plain
//! functions; [`decide`] and [`expire_due`] apply them inside one writer
//! transaction together with their audit entries, so a change and its
//! trail commit or roll back as one. SQL stays in `store`, HTTP in `api`.
//!
//! - `expiry`: [`Expiry`], applying due expiries on touch and by the sweeper.

mod expiry;

pub use expiry::Expiry;

use serde_json::{Map, json};

use crate::audit::{AuditKind, AuditRecord};
use crate::clock;
use crate::refusal::{FlowError, Refusal};
use crate::store::{DueScope, StepRow, StoreError, WorkflowRow, WriteTx};
use crate::verdict::Verdict;

/// Actor of the changes nobody asked for: expiries by the sweeper or on
/// touch.
pub const SYSTEM_ACTOR: &str = "system";

/// `approved_by` of an expired hold.
pub const AUTO_EXPIRED: &str = "system:auto-expired";

/// What an approver decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `pending → approved`: the step may run.
    Approved,
    /// `pending → rejected`, and the workflow is aborted.
    Rejected,
}

impl Outcome {
    /// The approval status it sets, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "approved",
            Outcome::Rejected => "rejected",
        }
    }

    /// The decision a re-gate and the answer give the step from now on.
    pub fn decision(self) -> Verdict {
        match self {
            Outcome::Approved => Verdict::Allow,
            Outcome::Rejected => Verdict::Block,
        }
    }

    fn kind(self) -> AuditKind {
        match self {
            Outcome::Approved => AuditKind::StepApproved,
            Outcome::Rejected => AuditKind::StepRejected,
        }
    }
}

/// A validated approve or reject.
#[derive(Debug, Clone)]
pub struct ApprovalCall {
    /// Caller's tenant.
    pub tenant: String,
    /// Caller's org.
    pub org: String,
    /// The approver.
    pub actor: String,
    /// The workflow.
    pub workflow_id: String,
    /// The held step.
    pub step_id: String,
    /// Approve or reject.
    pub outcome: Outcome,
    /// The comment (approve) or reason (reject), trimmed.
    pub comment: String,
}

/// Whether `step` of `workflow` can be decided at `now`, with the
/// refusals in the contract's order (§2.10): no approval needed, expired
/// (stored, or pending past its `expires_at`), not pending, and only then
/// an ended workflow, so a rejected step answers `NOT_PENDING` even though
/// the rejection ended its workflow.
pub fn check_decidable(step: &StepRow, workflow: &WorkflowRow, now: &str) -> Result<(), Refusal> {
    if step.decision != Verdict::RequireApproval {
        return Err(Refusal::conflict(
            "NO_APPROVAL_NEEDED",
            "step does not require approval",
        ));
    }
    let status = step.approval_status.as_deref();
    let overdue = status == Some("pending")
        && step
            .expires_at
            .as_deref()
            .is_some_and(|expires_at| expires_at <= now);
    if status == Some("expired") || overdue {
        return Err(Refusal::conflict(
            "APPROVAL_EXPIRED",
            format!("approval for step {} expired", step.step_id),
        ));
    }
    if status != Some("pending") {
        return Err(Refusal::conflict(
            "NOT_PENDING",
            "step is not pending approval",
        ));
    }
    if workflow.is_terminal() {
        return Err(Refusal::conflict(
            "WORKFLOW_TERMINAL",
            format!("workflow is in terminal state: {}", workflow.status),
        ));
    }
    Ok(())
}

/// Approves or rejects a pending step in `tx` and returns it as written.
/// The state is read inside the transaction, so a hold decided, expired or
/// re-gated since the request arrived is refused, not overwritten. A
/// rejection also aborts the workflow. Audit: `step_approved` or
/// `step_rejected`, then `workflow_aborted` (`cause: "rejected"`).
pub fn decide(tx: &WriteTx, call: &ApprovalCall) -> Result<StepRow, FlowError> {
    let workflow = tx
        .find_workflow(&call.workflow_id, &call.tenant, &call.org)?
        .ok_or(Refusal::NotFound("Workflow not found"))?;
    let mut step = tx
        .find_step(&call.workflow_id, &call.step_id)?
        .ok_or(Refusal::NotFound("Step not found"))?;
    let now = clock::now_rfc3339();
    check_decidable(&step, &workflow, &now)?;

    step.approval_status = Some(call.outcome.as_str().to_owned());
    step.approved_by = Some(call.actor.clone());
    step.approved_at = Some(now.clone());
    step.approval_comment = Some(call.comment.clone());
    tx.save_step(&step)?;
    let record = |kind: AuditKind, decision, reason: &str, details| AuditRecord {
        at: now.clone(),
        tenant: call.tenant.clone(),
        org: call.org.clone(),
        actor: call.actor.clone(),
        kind: kind.as_str().to_owned(),
        workflow_id: Some(call.workflow_id.clone()),
        step_id: Some(call.step_id.clone()),
        decision,
        reason: Some(reason.to_owned()),
        details,
    };
    let mut details = Map::new();
    details.insert("approval_id".into(), json!(step.approval_id));
    let decided = record(
        call.outcome.kind(),
        Some(call.outcome.decision()),
        &call.comment,
        details,
    );
    tx.append_audit(&call.tenant, decided)?;

    if call.outcome == Outcome::Rejected {
        let reason = format!("Step {} rejected by {}", call.step_id, call.actor);
        tx.end_workflow(&call.workflow_id, "aborted", &now, Some(reason.as_str()))?;
        let mut details = Map::new();
        details.insert("cause".into(), json!("rejected"));
        let mut aborted = record(AuditKind::WorkflowAborted, None, &reason, details);
        aborted.step_id = None;
        tx.append_audit(&call.tenant, aborted)?;
    }
    Ok(step)
}

/// A hold moved to `expired` by [`expire_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredHold {
    /// The workflow.
    pub workflow_id: String,
    /// The step that was held.
    pub step_id: String,
    /// Whether the expiry aborted the workflow (it was `in_progress`).
    pub aborted: bool,
}

/// Moves every pending hold in `scope` whose `expires_at <= now` to
/// `expired` in `tx` (contract §3.2): approver `system:auto-expired`,
/// decided at its `expires_at`; audit `approval_expired` in the workflow
/// tenant's chain. An `in_progress` workflow is aborted ("Step <step_id>
/// auto-expired", audit `workflow_aborted` with `cause: "expired"`); an
/// ended one keeps its status. Only rows still pending inside `tx` move,
/// so a hold decided meanwhile is left alone.
pub fn expire_due(
    tx: &WriteTx,
    scope: &DueScope,
    now: &str,
) -> Result<Vec<ExpiredHold>, StoreError> {
    let mut expired = Vec::new();
    for (workflow_id, step_id) in tx.due_holds(scope, now)? {
        let (Some(mut step), Some(workflow)) = (
            tx.find_step(&workflow_id, &step_id)?,
            tx.workflow_by_id(&workflow_id)?,
        ) else {
            continue;
        };
        let expires_at = step.expires_at.clone().unwrap_or_else(|| now.to_owned());
        step.approval_status = Some("expired".into());
        step.approved_by = Some(AUTO_EXPIRED.into());
        step.approved_at = Some(expires_at.clone());
        tx.save_step(&step)?;
        let record = |kind: AuditKind, decision, reason: Option<String>, details| AuditRecord {
            at: now.to_owned(),
            tenant: workflow.tenant.clone(),
            org: workflow.org.clone(),
            actor: SYSTEM_ACTOR.to_owned(),
            kind: kind.as_str().to_owned(),
            workflow_id: Some(workflow_id.clone()),
            step_id: None,
            decision,
            reason,
            details,
        };
        let mut details = Map::new();
        details.insert("approval_id".into(), json!(step.approval_id));
        details.insert("expires_at".into(), json!(expires_at));
        let mut entry = record(
            AuditKind::ApprovalExpired,
            Some(Verdict::Block),
            None,
            details,
        );
        entry.step_id = Some(step_id.clone());
        tx.append_audit(&workflow.tenant, entry)?;

        let aborted = !workflow.is_terminal();
        if aborted {
            let reason = format!("Step {step_id} auto-expired");
            tx.end_workflow(&workflow_id, "aborted", now, Some(reason.as_str()))?;
            let mut details = Map::new();
            details.insert("cause".into(), json!("expired"));
            let entry = record(AuditKind::WorkflowAborted, None, Some(reason), details);
            tx.append_audit(&workflow.tenant, entry)?;
        }
        expired.push(ExpiredHold {
            workflow_id,
            step_id,
            aborted,
        });
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn workflow(status: &str) -> WorkflowRow {
        WorkflowRow {
            workflow_id: "wf_1".into(),
            tenant: "t".into(),
            org: "o".into(),
            workflow_name: "w".into(),
            source: "external".into(),
            status: status.into(),
            current_step_index: 1,
            total_steps: None,
            trace_id: None,
            metadata: json!({}),
            failure_reason: None,
            abort_reason: None,
            total_cost_usd: 0.0,
            total_tokens_in: 0,
            total_tokens_out: 0,
            started_at: "2026-03-01T12:00:00.000000Z".into(),
            completed_at: None,
        }
    }

    fn step(decision: Verdict, status: Option<&str>, expires_at: Option<&str>) -> StepRow {
        let mut step = StepRow::new("wf_1", "s1", 1, decision, "2026-03-01T12:00:00.000000Z");
        step.step_type = "tool_call".into();
        step.gate_count = 1;
        step.approval_count = 1;
        step.approval_status = status.map(str::to_owned);
        step.expires_at = expires_at.map(str::to_owned);
        step
    }

    #[test]
    fn refusals_come_in_the_contracts_order() {
        let now = "2026-03-01T12:00:00.000000Z";
        let later = Some("2026-03-01T12:00:00.000001Z");
        let hold = Verdict::RequireApproval;
        // (name, step, workflow status, expected code or None for decidable)
        let cases = [
            (
                "allow step",
                step(Verdict::Allow, None, None),
                "in_progress",
                Some("NO_APPROVAL_NEEDED"),
            ),
            (
                "no approval needed beats an ended workflow",
                step(Verdict::Block, None, None),
                "aborted",
                Some("NO_APPROVAL_NEEDED"),
            ),
            (
                "stored expiry",
                step(hold, Some("expired"), Some(now)),
                "aborted",
                Some("APPROVAL_EXPIRED"),
            ),
            (
                "pending but due exactly now",
                step(hold, Some("pending"), Some(now)),
                "in_progress",
                Some("APPROVAL_EXPIRED"),
            ),
            (
                "approved",
                step(hold, Some("approved"), later),
                "in_progress",
                Some("NOT_PENDING"),
            ),
            (
                "rejected, workflow aborted by it",
                step(hold, Some("rejected"), later),
                "aborted",
                Some("NOT_PENDING"),
            ),
            (
                "pending in an aborted workflow",
                step(hold, Some("pending"), later),
                "aborted",
                Some("WORKFLOW_TERMINAL"),
            ),
            (
                "pending in a running workflow",
                step(hold, Some("pending"), later),
                "in_progress",
                None,
            ),
        ];
        for (name, step, status, expected) in cases {
            let code = match check_decidable(&step, &workflow(status), now) {
                Ok(()) => None,
                Err(Refusal::Conflict { code, .. }) => Some(code),
                Err(other) => panic!("{name}: {other:?}"),
            };
            assert_eq!(code, expected, "{name}");
        }
    }
}
