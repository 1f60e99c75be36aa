//! The gate algorithm's rules (contract §1.3, §2.4, §4.1) as plain
//! functions: identifiers, the idempotency and input checks, how a
//! stored step is answered on a cached re-gate, and the `retry_context`.
//! No SQL and no HTTP: `gate::record` applies these inside a transaction.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::refusal::Refusal;
use crate::store::{StepRow, WorkflowRow};
use crate::verdict::Verdict;

/// Namespace of approval ids (contract §1.3).
const APPROVAL_NAMESPACE: Uuid = Uuid::from_u128(0xa1b2c3d4_e5f6_7890_abcd_ef1234567890);

/// Refuses one more running workflow when the tenant has `running` of at
/// most `limit` (none: unlimited).
pub fn check_capacity(running: u64, limit: Option<u64>) -> Result<(), Refusal> {
    match limit {
        Some(limit) if running >= limit => Err(Refusal::ConcurrencyLimit { limit }),
        _ => Ok(()),
    }
}

/// The largest token total stored: an SQL integer.
pub const MAX_TOKEN_TOTAL: u64 = i64::MAX as u64;

/// §2.5: a step complete's usage must fit in its workflow's totals. Token
/// totals are at most [`MAX_TOKEN_TOTAL`] and the cost total stays finite;
/// a usage that would pass either is refused, naming its field, rather
/// than stored wrapped, rounded to infinity or failed in the database.
pub fn check_totals(
    workflow: &WorkflowRow,
    tokens_in: Option<u64>,
    tokens_out: Option<u64>,
    cost_usd: Option<f64>,
) -> Result<(), Refusal> {
    let past = |field: &str, total: &str, ceiling: &str| {
        Refusal::Invalid(format!(
            "{field} would take the workflow's {total} past {ceiling}; nothing was changed"
        ))
    };
    for (field, total, sent) in [
        ("tokens_in", workflow.total_tokens_in, tokens_in),
        ("tokens_out", workflow.total_tokens_out, tokens_out),
    ] {
        let sum = total.checked_add(sent.unwrap_or(0));
        if sum.is_none_or(|sum| sum > MAX_TOKEN_TOTAL) {
            return Err(past(
                field,
                &format!("total_{field}"),
                &MAX_TOKEN_TOTAL.to_string(),
            ));
        }
    }
    if !(workflow.total_cost_usd + cost_usd.unwrap_or(0.0)).is_finite() {
        return Err(past(
            "cost_usd",
            "total_cost_usd",
            "the largest number stored",
        ));
    }
    Ok(())
}

/// `dec_<workflow_id>_<step_id>`.
pub fn decision_id(workflow_id: &str, step_id: &str) -> String {
    format!("dec_{workflow_id}_{step_id}")
}

/// The id of a step's `n`-th approval hold (from 1): UUIDv5 of
/// `<workflow_id>:<step_id>`, with `#<n>` from the second hold on.
pub fn approval_id(workflow_id: &str, step_id: &str, n: u32) -> String {
    let name = if n <= 1 {
        format!("{workflow_id}:{step_id}")
    } else {
        format!("{workflow_id}:{step_id}#{n}")
    };
    Uuid::new_v5(&APPROVAL_NAMESPACE, name.as_bytes()).to_string()
}

/// RFC 8785 text of a JSON value: equal for equal values, whatever the key
/// order they were sent in.
pub fn canonical(value: &Value) -> String {
    crate::canonical::to_string(value)
}

/// Lowercase hex SHA-256 of the canonical JSON of `value`.
pub fn sha256_of(value: &Value) -> String {
    hex::encode(Sha256::digest(canonical(value).as_bytes()))
}

/// §4.1 step 5: a step's recorded key must equal the sent one (absent and
/// `""` are the same).
pub fn check_key(step: &StepRow, sent: Option<&str>) -> Result<(), Refusal> {
    let expected = step.idempotency_key.clone().unwrap_or_default();
    let received = sent.unwrap_or_default().to_owned();
    if expected == received {
        return Ok(());
    }
    Err(Refusal::KeyMismatch {
        workflow_id: step.workflow_id.clone(),
        step_id: step.step_id.clone(),
        expected,
        received,
    })
}

/// §4.1 step 6a: an idempotent retry must send the same `step_input` and
/// `tool_context`, compared as canonical JSON.
pub fn check_same_input(
    step: &StepRow,
    step_input: &Value,
    tool_context: Option<&Value>,
) -> Result<(), Refusal> {
    let same_tool = match (&step.tool_context, tool_context) {
        (None, None) => true,
        (Some(stored), Some(sent)) => canonical(stored) == canonical(sent),
        _ => false,
    };
    if canonical(&step.step_input) == canonical(step_input) && same_tool {
        return Ok(());
    }
    Err(Refusal::conflict(
        "STEP_INPUT_MISMATCH",
        format!(
            "step_input or tool_context differs from the first gate of step {}",
            step.step_id
        ),
    ))
}

/// §4.1 step 7: a fresh evaluation may not overwrite a hold.
pub fn check_no_hold(step: &StepRow) -> Result<(), Refusal> {
    match step.approval_status.as_deref() {
        Some(status @ ("pending" | "rejected" | "expired")) => Err(Refusal::conflict(
            "APPROVAL_HOLD",
            format!("step {} holds approval {status}", step.step_id),
        )),
        _ => Ok(()),
    }
}

/// The decision and reason a cached re-gate answers (§4.1 step 6b): the
/// stored decision, folded with the approval's outcome.
pub fn folded(step: &StepRow) -> (Verdict, String) {
    let reason = step.decision_reason.clone().unwrap_or_default();
    match step.approval_status.as_deref() {
        Some("pending") => (Verdict::RequireApproval, reason),
        Some("approved") => (Verdict::Allow, format!("Previously approved: {reason}")),
        Some("rejected") => (Verdict::Block, format!("Previously rejected: {reason}")),
        Some("expired") => (
            Verdict::Block,
            format!("Previously expired (approval timed out): {reason}"),
        ),
        _ => (step.decision, reason),
    }
}

/// `retry_context` of a gate answer (contract §2.4).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryContext {
    /// Gate calls, this one included.
    pub gate_count: u32,
    /// Step completes.
    pub completion_count: u32,
    /// `none`, `completed` or `gated_not_completed`.
    pub prior_completion_status: &'static str,
    /// Whether a step complete stored an output.
    pub prior_output_available: bool,
    /// That output, when asked for.
    pub prior_output: Option<Value>,
    /// Last step complete.
    pub prior_completion_at: Option<String>,
    /// First gate.
    pub first_attempt_at: String,
    /// This call.
    pub last_attempt_at: String,
    /// Stored decision before this call.
    pub last_decision: Verdict,
    /// Recorded key or `""`.
    pub idempotency_key: String,
}

impl RetryContext {
    /// The context after this gate wrote `step`; `first_gate` when this call
    /// created the step.
    pub fn of(step: &StepRow, first_gate: bool, include_output: bool) -> Self {
        let completed = step.completion_count > 0;
        RetryContext {
            gate_count: step.gate_count,
            completion_count: step.completion_count,
            prior_completion_status: if first_gate {
                "none"
            } else if completed {
                "completed"
            } else {
                "gated_not_completed"
            },
            prior_output_available: completed,
            prior_output: if include_output {
                step.output.clone()
            } else {
                None
            },
            prior_completion_at: step.completed_at.clone(),
            first_attempt_at: step.first_attempt_at.clone(),
            last_attempt_at: step.gate_checked_at.clone(),
            last_decision: step.last_decision,
            idempotency_key: step.idempotency_key.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn approval_ids_are_uuid_v5_of_workflow_and_step() {
        let first = approval_id("wf_1", "s1", 1);
        assert_eq!(first, approval_id("wf_1", "s1", 1));
        assert_ne!(first, approval_id("wf_1", "s1", 2));
        assert_ne!(first, approval_id("wf_1", "s2", 1));
        let parsed = Uuid::parse_str(&first).map(|id| id.get_version_num());
        assert_eq!(parsed.ok(), Some(5));
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        let b = json!({"b": {"d": "x", "c": [1, 2]}, "a": 1});
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&json!({"a": 2})));
        assert_eq!(sha256_of(&a), sha256_of(&b));
    }
}
