//! The rows and filters the store reads and writes, as the domain sees
//! them: plain values, the same whichever backend holds them.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::verdict::Verdict;

/// One row of `workflows`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRow {
    /// `wf_<uuidv4>`.
    pub workflow_id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Owning org.
    pub org: String,
    /// Registered name.
    pub workflow_name: String,
    /// Orchestrator kind.
    pub source: String,
    /// `in_progress`, `completed`, `failed` or `aborted`.
    pub status: String,
    /// Bumped by every fresh evaluation.
    pub current_step_index: u32,
    /// Set when the workflow ends.
    pub total_steps: Option<u32>,
    /// Caller's trace id.
    pub trace_id: Option<String>,
    /// Metadata object.
    pub metadata: Value,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Why it was aborted.
    pub abort_reason: Option<String>,
    /// Sum of step-complete costs.
    pub total_cost_usd: f64,
    /// Sum of step-complete input tokens.
    pub total_tokens_in: u64,
    /// Sum of step-complete output tokens.
    pub total_tokens_out: u64,
    /// Start (and creation) time.
    pub started_at: String,
    /// End time.
    pub completed_at: Option<String>,
}

impl WorkflowRow {
    /// Whether the workflow has ended for good or was aborted.
    pub fn is_terminal(&self) -> bool {
        self.status != "in_progress"
    }
}

/// Which workflows of a tenant and org to list (contract §2.3).
#[derive(Debug, Clone, Default)]
pub struct WorkflowFilter {
    /// Only this status.
    pub status: Option<String>,
    /// Only this source.
    pub source: Option<String>,
    /// Only this trace id.
    pub trace_id: Option<String>,
    /// Page size (already capped).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
}

/// One row of `workflow_steps`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    /// Owning workflow.
    pub workflow_id: String,
    /// Caller's step id.
    pub step_id: String,
    /// Position, from 1.
    pub step_index: u32,
    /// Step type of the first gate.
    pub step_type: String,
    /// Step name.
    pub step_name: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Provider.
    pub provider: Option<String>,
    /// Step input object.
    pub step_input: Value,
    /// Tool context object.
    pub tool_context: Option<Value>,
    /// Key recorded by the first gate that sent one.
    pub idempotency_key: Option<String>,
    /// Gate estimate.
    pub estimated_tokens_in: Option<u64>,
    /// Gate estimate.
    pub estimated_tokens_out: Option<u64>,
    /// Gate estimate.
    pub estimated_cost_usd: Option<f64>,
    /// Stored decision.
    pub decision: Verdict,
    /// Stored reason.
    pub decision_reason: Option<String>,
    /// `policies_evaluated` array.
    pub policies_evaluated: Value,
    /// `policies_matched` array.
    pub policies_matched: Value,
    /// Decision before the last gate.
    pub last_decision: Verdict,
    /// Gate calls.
    pub gate_count: u32,
    /// First gate.
    pub first_attempt_at: String,
    /// Last gate.
    pub gate_checked_at: String,
    /// `pending`, `approved`, `rejected`, `expired`.
    pub approval_status: Option<String>,
    /// Current hold's id.
    pub approval_id: Option<String>,
    /// Holds so far.
    pub approval_count: u32,
    /// Current hold's start.
    pub approval_requested_at: Option<String>,
    /// Current hold's expiry.
    pub expires_at: Option<String>,
    /// Approver, rejector or `system:auto-expired`.
    pub approved_by: Option<String>,
    /// When it was decided.
    pub approved_at: Option<String>,
    /// Approver's comment.
    pub approval_comment: Option<String>,
    /// Step completes.
    pub completion_count: u32,
    /// Last step complete.
    pub completed_at: Option<String>,
    /// Last step-complete output.
    pub output: Option<Value>,
    /// Last step-complete usage.
    pub tokens_in: Option<u64>,
    /// Last step-complete usage.
    pub tokens_out: Option<u64>,
    /// Last step-complete cost.
    pub cost_usd: Option<f64>,
}

impl StepRow {
    /// A step as its first gate creates it at `at`, with `decision` and
    /// nothing else known yet: the gate fills in its request, runs and
    /// approval before writing it.
    pub fn new(
        workflow_id: &str,
        step_id: &str,
        step_index: u32,
        decision: Verdict,
        at: &str,
    ) -> StepRow {
        StepRow {
            workflow_id: workflow_id.to_owned(),
            step_id: step_id.to_owned(),
            step_index,
            step_type: String::new(),
            step_name: None,
            model: None,
            provider: None,
            step_input: Value::Object(serde_json::Map::new()),
            tool_context: None,
            idempotency_key: None,
            estimated_tokens_in: None,
            estimated_tokens_out: None,
            estimated_cost_usd: None,
            decision,
            decision_reason: None,
            policies_evaluated: Value::Array(Vec::new()),
            policies_matched: Value::Array(Vec::new()),
            last_decision: decision,
            gate_count: 0,
            first_attempt_at: at.to_owned(),
            gate_checked_at: at.to_owned(),
            approval_status: None,
            approval_id: None,
            approval_count: 0,
            approval_requested_at: None,
            expires_at: None,
            approved_by: None,
            approved_at: None,
            approval_comment: None,
            completion_count: 0,
            completed_at: None,
            output: None,
            tokens_in: None,
            tokens_out: None,
            cost_usd: None,
        }
    }
}

/// One row of `checkpoints`, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointRow {
    /// Positive id, never reused.
    pub id: i64,
    /// Owning workflow.
    pub workflow_id: String,
    /// The step.
    pub step_id: String,
    /// The step's position.
    pub step_index: u32,
    /// The step's type.
    pub step_type: String,
    /// The step's name.
    pub step_name: Option<String>,
    /// `approval_boundary` for `require_approval`, else `step_gate`.
    pub checkpoint_type: String,
    /// The evaluation's decision.
    pub gate_decision: String,
    /// Its reason.
    pub gate_reason: Option<String>,
    /// Every policy run.
    pub policies_evaluated: Value,
    /// The runs that did not allow.
    pub policies_matched: Value,
    /// The gate's step input.
    pub step_input: Value,
    /// The gate's tool context.
    pub tool_context: Option<Value>,
    /// The gate's model.
    pub model: Option<String>,
    /// The gate's provider.
    pub provider: Option<String>,
    /// Whether a resume may start here (the decision is not `block`).
    pub is_resumable: bool,
    /// Resumes so far.
    pub resume_count: u32,
    /// Last resume.
    pub last_resumed_at: Option<String>,
    /// Workflow tenant.
    pub tenant_id: String,
    /// Workflow org.
    pub org_id: String,
    /// The evaluating gate's actor.
    pub client_id: String,
    /// The evaluation's time.
    pub created_at: String,
}

/// Who wrote a checkpoint, and when.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointOwner<'a> {
    /// The gate's actor.
    pub actor: &'a str,
    /// The gate's time.
    pub at: &'a str,
}

/// Which holds an expiry pass looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DueScope {
    /// The holds of one workflow (a request touching it).
    Workflow(String),
    /// The holds of one tenant's and org's workflows (a list).
    Tenant {
        /// The tenant.
        tenant: String,
        /// The org within it.
        org: String,
    },
    /// Every hold (the sweeper).
    All,
}

/// A pending hold with the name of its workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingHold {
    /// The held step.
    pub step: StepRow,
    /// Its workflow's name.
    pub workflow_name: String,
}

/// Which entries of a chain to list; `Default` is the API's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries about no workflow (the tenant's policy changes) or
    /// about a workflow of this org: what a caller of the org may see.
    /// `None` for every entry, as the offline tools read them.
    pub org: Option<String>,
    /// Only entries about this workflow.
    pub workflow_id: Option<String>,
    /// Only entries of this kind.
    pub kind: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Page size; the API caps it (1000) before it gets here.
    pub limit: u32,
    /// Entries to skip.
    pub offset: u64,
}

impl AuditFilter {
    /// `since` in the stored format, rounded *up* to the microsecond:
    /// stored times have six digits, and truncating would admit entries
    /// just before it. Stored times are fixed-width text, so text order is
    /// time order.
    pub fn since_stored(&self) -> Option<String> {
        let since = self.since?;
        let below_micro = since.nanosecond() % 1_000;
        let since = if below_micro == 0 {
            since
        } else {
            since + time::Duration::nanoseconds(i64::from(1_000 - below_micro))
        };
        Some(crate::clock::rfc3339(since))
    }
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            org: None,
            workflow_id: None,
            kind: None,
            since: None,
            limit: 100,
            offset: 0,
        }
    }
}
