//! The store as the domain sees it: [`StoreRead`] for what a consistent
//! snapshot can answer, [`StoreWrite`] for what a write transaction can
//! change. The gate, approval and resume rules and the handlers use only
//! these methods, never SQL, and reach them as `&ReadTx` and `&WriteTx`
//! (trait objects), so a second backend implements these two traits for
//! its own connection and transaction types and the domain code stays as
//! it is. Both traits are object safe: no generic methods.

use super::StoreError;
use super::rows::{
    AuditFilter, CheckpointOwner, CheckpointRow, DueScope, PendingHold, StepRow, WorkflowFilter,
    WorkflowRow,
};
use crate::audit::{AuditEntry, AuditRecord, VerifyReport};

/// Reads, all from one snapshot when called on one connection.
pub trait StoreRead {
    /// The workflow `id` if it belongs to `tenant` and `org`.
    fn find_workflow(
        &self,
        id: &str,
        tenant: &str,
        org: &str,
    ) -> Result<Option<WorkflowRow>, StoreError>;
    /// The workflow `id` whoever owns it: for system work only (expiry).
    fn workflow_by_id(&self, id: &str) -> Result<Option<WorkflowRow>, StoreError>;
    /// A page of the tenant's and org's workflows, newest first, and the
    /// number matching in all.
    fn list_workflows(
        &self,
        tenant: &str,
        org: &str,
        filter: &WorkflowFilter,
    ) -> Result<(Vec<WorkflowRow>, u64), StoreError>;
    /// The tenant's `in_progress` workflows (the concurrency limit).
    fn count_running(&self, tenant: &str) -> Result<u64, StoreError>;
    /// Workflows per status over every tenant (metrics).
    fn count_by_status(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// A step, if it was ever gated.
    fn find_step(&self, workflow_id: &str, step_id: &str) -> Result<Option<StepRow>, StoreError>;
    /// How many steps the workflow has.
    fn count_steps(&self, workflow_id: &str) -> Result<u32, StoreError>;
    /// Every step of a workflow by `step_index`.
    fn list_steps(&self, workflow_id: &str) -> Result<Vec<StepRow>, StoreError>;
    /// The first step whose approval is in one of `statuses`.
    fn step_with_approval(
        &self,
        workflow_id: &str,
        statuses: &[&str],
    ) -> Result<Option<String>, StoreError>;
    /// Whether any hold in `scope` is due to expire at `now`.
    fn any_due(&self, scope: &DueScope, now: &str) -> Result<bool, StoreError>;
    /// The (workflow, step) of every hold in `scope` due at `now`.
    fn due_holds(&self, scope: &DueScope, now: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// A page of the tenant's and org's pending holds, newest first, and
    /// the number in all.
    fn list_pending(
        &self,
        tenant: &str,
        org: &str,
        now: &str,
        limit: u32,
    ) -> Result<(Vec<PendingHold>, u64), StoreError>;
    /// A workflow's checkpoints by `step_index`.
    fn list_checkpoints(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, StoreError>;
    /// Checkpoint `id` if it belongs to the workflow.
    fn find_checkpoint(
        &self,
        workflow_id: &str,
        id: i64,
    ) -> Result<Option<CheckpointRow>, StoreError>;
    /// The resumable checkpoint with the highest `step_index`.
    fn last_resumable(&self, workflow_id: &str) -> Result<Option<CheckpointRow>, StoreError>;
    /// A page of a chain's entries, ascending `seq`, and the number
    /// matching in all.
    fn audit_entries(
        &self,
        chain: &str,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, u64), StoreError>;
    /// Walks a chain from `seq` 1 to its first bad entry.
    fn verify_chain(&self, chain: &str) -> Result<VerifyReport, StoreError>;
    /// Every chain that has entries, by name.
    fn audit_chains(&self) -> Result<Vec<String>, StoreError>;
}

/// Changes, inside one transaction: all of a job's changes commit together
/// or not at all.
pub trait StoreWrite: StoreRead {
    /// Inserts a new workflow.
    fn insert_workflow(&self, row: &WorkflowRow) -> Result<(), StoreError>;
    /// Ends a workflow with `status` at `at`, with the reason for it.
    fn end_workflow(
        &self,
        id: &str,
        status: &str,
        at: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Brings an aborted workflow back to `in_progress`.
    fn revive_workflow(&self, id: &str) -> Result<(), StoreError>;
    /// Bumps `current_step_index`; returns the new value.
    fn bump_step_index(&self, id: &str) -> Result<u32, StoreError>;
    /// Adds reported usage to the workflow's totals.
    fn add_totals(
        &self,
        id: &str,
        tokens_in: u64,
        tokens_out: u64,
        cost_usd: f64,
    ) -> Result<(), StoreError>;
    /// Writes the whole step, inserting or replacing it.
    fn save_step(&self, step: &StepRow) -> Result<(), StoreError>;
    /// Writes a step complete's columns of a stored step: completion count
    /// and time, output, usage.
    fn save_completion(&self, step: &StepRow) -> Result<(), StoreError>;
    /// Records the step's checkpoint for a fresh evaluation: its actor and
    /// time, and an id if it has none. The checkpoint lives in the step's
    /// row, so the step must be saved first in the same transaction; a
    /// step not stored is an error. Returns the id.
    fn upsert_checkpoint(&self, step: &StepRow, owner: CheckpointOwner) -> Result<i64, StoreError>;
    /// Counts a resume from checkpoint `id` of `workflow_id`; returns the
    /// new count.
    fn mark_resumed(&self, workflow_id: &str, id: i64, at: &str) -> Result<u32, StoreError>;
    /// Appends `record` to `chain`, hashed onto its head.
    fn append_audit(&self, chain: &str, record: AuditRecord) -> Result<AuditEntry, StoreError>;
    /// Opens a savepoint nested in this transaction. Use
    /// [`in_savepoint`](super::in_savepoint), which always ends it.
    fn open_savepoint(&self) -> Result<(), StoreError>;
    /// Ends the newest open savepoint, keeping its writes if `keep`, else
    /// undoing them.
    fn close_savepoint(&self, keep: bool) -> Result<(), StoreError>;
}
