//! The column lists both backends select and write, and the decoders that
//! turn a row of them into the domain's values: one schema, two SQL
//! dialects, one reading of what is stored.

use serde_json::{Map, Value};

use super::StoreError;
use super::rows::{CheckpointRow, StepRow, WorkflowRow};
use crate::audit::{AuditEntry, AuditRecord};
use crate::verdict::Verdict;

/// `workflows`, as a workflow row reads them.
pub(crate) const WORKFLOW: &str = "workflow_id, tenant, org, workflow_name, source, status, \
    current_step_index, total_steps, trace_id, metadata, failure_reason, abort_reason, \
    total_cost_usd, total_tokens_in, total_tokens_out, started_at, completed_at";

/// `workflow_steps`, as a step row reads them.
pub(crate) const STEP: &str = "workflow_id, step_id, step_index, step_type, step_name, model, provider, \
    step_input, tool_context, idempotency_key, estimated_tokens_in, estimated_tokens_out, \
    estimated_cost_usd, decision, decision_reason, policies_evaluated, policies_matched, \
    last_decision, gate_count, first_attempt_at, gate_checked_at, approval_status, approval_id, \
    approval_count, approval_requested_at, expires_at, approved_by, approved_at, \
    approval_comment, completion_count, completed_at, output, tokens_in, tokens_out, cost_usd";

/// Number of columns in [`STEP`].
pub(crate) const STEP_WIDTH: usize = 35;

/// The `checkpoints` view, as a checkpoint row reads them.
pub(crate) const CHECKPOINT: &str = "id, workflow_id, step_id, step_index, step_type, step_name, \
    checkpoint_type, gate_decision, gate_reason, policies_evaluated, policies_matched, \
    step_input, tool_context, model, provider, is_resumable, resume_count, last_resumed_at, \
    tenant_id, org_id, client_id, created_at";

/// `audit_log`, as an audit entry reads them.
pub(crate) const AUDIT: &str = "seq, at, tenant, org, actor, kind, workflow_id, step_id, decision, \
                       reason, details, prev_hash, hash";

/// The reason columns an end of a workflow fills: `(failure_reason,
/// abort_reason)`, the one that goes with `status`.
pub(crate) fn end_reasons<'r>(
    status: &str,
    reason: Option<&'r str>,
) -> (Option<&'r str>, Option<&'r str>) {
    match status {
        "failed" => (reason, None),
        "aborted" => (None, reason),
        _ => (None, None),
    }
}

/// A result row as the shared decoders read it: each backend's row type
/// gives its columns by index, and the rules of what a stored value means
/// (counts never below zero, JSON text, decisions) live here once.
pub(crate) trait Columns {
    /// A text column.
    fn text(&self, index: usize) -> Result<Option<String>, StoreError>;
    /// An integer column.
    fn int(&self, index: usize) -> Result<Option<i64>, StoreError>;
    /// A floating-point column.
    fn real(&self, index: usize) -> Result<Option<f64>, StoreError>;
    /// A boolean column (SQLite's 0 and 1).
    fn flag(&self, index: usize) -> Result<bool, StoreError>;
}

fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

fn required<T>(value: Option<T>, what: &'static str) -> Result<T, StoreError> {
    value.ok_or_else(|| corrupt(what, "NULL"))
}

/// A count column; stored counts are never negative.
fn count(row: &impl Columns, index: usize) -> Result<Option<u64>, StoreError> {
    Ok(row
        .int(index)?
        .map(|value| u64::try_from(value).unwrap_or(0)))
}

/// A count column that is never NULL and fits the domain's `u32`.
fn small(row: &impl Columns, index: usize, what: &'static str) -> Result<u32, StoreError> {
    let value = required(row.int(index)?, what)?;
    u32::try_from(value).map_err(|_| corrupt(what, value))
}

fn json(text: &str, what: &'static str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|error| corrupt(what, error))
}

fn json_column(row: &impl Columns, index: usize, what: &'static str) -> Result<Value, StoreError> {
    json(&required(row.text(index)?, what)?, what)
}

fn opt_json(
    row: &impl Columns,
    index: usize,
    what: &'static str,
) -> Result<Option<Value>, StoreError> {
    row.text(index)?.map(|text| json(&text, what)).transpose()
}

fn text(row: &impl Columns, index: usize, what: &'static str) -> Result<String, StoreError> {
    required(row.text(index)?, what)
}

fn verdict(row: &impl Columns, index: usize) -> Result<Verdict, StoreError> {
    text(row, index, "step decision")?
        .parse()
        .map_err(|detail: String| corrupt("step decision", detail))
}

/// A workflow from a row selected as [`WORKFLOW`].
pub(crate) fn workflow(row: &impl Columns) -> Result<WorkflowRow, StoreError> {
    Ok(WorkflowRow {
        workflow_id: text(row, 0, "workflow id")?,
        tenant: text(row, 1, "workflow tenant")?,
        org: text(row, 2, "workflow org")?,
        workflow_name: text(row, 3, "workflow name")?,
        source: text(row, 4, "workflow source")?,
        status: text(row, 5, "workflow status")?,
        current_step_index: small(row, 6, "workflow step index")?,
        total_steps: count(row, 7)?.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        trace_id: row.text(8)?,
        metadata: json_column(row, 9, "workflow metadata")?,
        failure_reason: row.text(10)?,
        abort_reason: row.text(11)?,
        total_cost_usd: row.real(12)?.unwrap_or(0.0),
        total_tokens_in: count(row, 13)?.unwrap_or(0),
        total_tokens_out: count(row, 14)?.unwrap_or(0),
        started_at: text(row, 15, "workflow start")?,
        completed_at: row.text(16)?,
    })
}

/// A step from the first [`STEP_WIDTH`] columns of a row selected as
/// [`STEP`].
pub(crate) fn step(row: &impl Columns) -> Result<StepRow, StoreError> {
    Ok(StepRow {
        workflow_id: text(row, 0, "step workflow")?,
        step_id: text(row, 1, "step id")?,
        step_index: small(row, 2, "step index")?,
        step_type: text(row, 3, "step type")?,
        step_name: row.text(4)?,
        model: row.text(5)?,
        provider: row.text(6)?,
        step_input: json_column(row, 7, "step input")?,
        tool_context: opt_json(row, 8, "tool context")?,
        idempotency_key: row.text(9)?,
        estimated_tokens_in: count(row, 10)?,
        estimated_tokens_out: count(row, 11)?,
        estimated_cost_usd: row.real(12)?,
        decision: verdict(row, 13)?,
        decision_reason: row.text(14)?,
        policies_evaluated: json_column(row, 15, "policies evaluated")?,
        policies_matched: json_column(row, 16, "policies matched")?,
        last_decision: verdict(row, 17)?,
        gate_count: small(row, 18, "gate count")?,
        first_attempt_at: text(row, 19, "first attempt")?,
        gate_checked_at: text(row, 20, "gate time")?,
        approval_status: row.text(21)?,
        approval_id: row.text(22)?,
        approval_count: small(row, 23, "approval count")?,
        approval_requested_at: row.text(24)?,
        expires_at: row.text(25)?,
        approved_by: row.text(26)?,
        approved_at: row.text(27)?,
        approval_comment: row.text(28)?,
        completion_count: small(row, 29, "completion count")?,
        completed_at: row.text(30)?,
        output: opt_json(row, 31, "step output")?,
        tokens_in: count(row, 32)?,
        tokens_out: count(row, 33)?,
        cost_usd: row.real(34)?,
    })
}

/// A checkpoint from a row selected as [`CHECKPOINT`].
pub(crate) fn checkpoint(row: &impl Columns) -> Result<CheckpointRow, StoreError> {
    Ok(CheckpointRow {
        id: required(row.int(0)?, "checkpoint id")?,
        workflow_id: text(row, 1, "checkpoint workflow")?,
        step_id: text(row, 2, "checkpoint step")?,
        step_index: small(row, 3, "checkpoint step index")?,
        step_type: text(row, 4, "checkpoint step type")?,
        step_name: row.text(5)?,
        checkpoint_type: text(row, 6, "checkpoint type")?,
        gate_decision: text(row, 7, "checkpoint decision")?,
        gate_reason: row.text(8)?,
        policies_evaluated: json_column(row, 9, "checkpoint policies")?,
        policies_matched: json_column(row, 10, "checkpoint policies")?,
        step_input: json_column(row, 11, "checkpoint step input")?,
        tool_context: opt_json(row, 12, "checkpoint tool context")?,
        model: row.text(13)?,
        provider: row.text(14)?,
        is_resumable: row.flag(15)?,
        resume_count: small(row, 16, "checkpoint resume count")?,
        last_resumed_at: row.text(17)?,
        tenant_id: text(row, 18, "checkpoint tenant")?,
        org_id: text(row, 19, "checkpoint org")?,
        client_id: text(row, 20, "checkpoint client")?,
        created_at: text(row, 21, "checkpoint time")?,
    })
}

/// An audit entry from a row selected as [`AUDIT`]. An entry whose stored
/// values do not decode is an error, which a chain walk counts as its
/// first bad entry.
pub(crate) fn audit_entry(row: &impl Columns) -> Result<AuditEntry, StoreError> {
    let seq = required(row.int(0)?, "audit seq")?;
    let decision = row
        .text(8)?
        .map(|text| {
            text.parse()
                .map_err(|error: String| corrupt("audit decision", error))
        })
        .transpose()?;
    let details: Map<String, Value> = serde_json::from_str(&text(row, 10, "audit details")?)
        .map_err(|error| corrupt("audit details", error))?;
    Ok(AuditEntry {
        seq: u64::try_from(seq).map_err(|_| corrupt("audit seq", seq))?,
        record: AuditRecord {
            at: text(row, 1, "audit at")?,
            tenant: text(row, 2, "audit tenant")?,
            org: text(row, 3, "audit org")?,
            actor: text(row, 4, "audit actor")?,
            kind: text(row, 5, "audit kind")?,
            workflow_id: row.text(6)?,
            step_id: row.text(7)?,
            decision,
            reason: row.text(9)?,
            details,
        },
        prev_hash: text(row, 11, "audit prev_hash")?,
        hash: text(row, 12, "audit hash")?,
    })
}
