//! The column lists both backends select and write, each in the order its
//! decoders read them: one schema, two SQL dialects.

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
