//! The store as the domain sees it: [`StoreRead`] for what a consistent
//! snapshot can answer, [`StoreWrite`] for what a write transaction can
//! change. The gate, approval and resume rules and the handlers use only
//! these methods, never SQL, so a second backend (PostgreSQL, say)
//! implements these two traits for its connection and transaction types,
//! plus [`Store`](super::Store)'s `submit`/`read` plumbing, and the domain
//! code stays as it is.
//!
//! The SQLite backend implements them here by delegating to the SQL of
//! each table group's module.

use rusqlite::{Connection, Transaction};

use super::StoreError;
use super::approvals::{self, DueScope, PendingHold};
use super::audit::{self, AuditFilter};
use super::checkpoints::{self, CheckpointOwner, CheckpointRow};
use super::steps::{self, StepRow};
use super::workflows::{self, WorkflowFilter, WorkflowRow};
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
}

/// The SQLite reads, for a read connection and, through the macro below,
/// for the writer's transaction.
macro_rules! sqlite_reads {
    ($type:ty, $conn:ident => $as_conn:expr) => {
        impl StoreRead for $type {
            fn find_workflow(
                &self,
                id: &str,
                tenant: &str,
                org: &str,
            ) -> Result<Option<WorkflowRow>, StoreError> {
                let $conn = self;
                workflows::find_workflow($as_conn, id, tenant, org)
            }
            fn workflow_by_id(&self, id: &str) -> Result<Option<WorkflowRow>, StoreError> {
                let $conn = self;
                workflows::workflow_by_id($as_conn, id)
            }
            fn list_workflows(
                &self,
                tenant: &str,
                org: &str,
                filter: &WorkflowFilter,
            ) -> Result<(Vec<WorkflowRow>, u64), StoreError> {
                let $conn = self;
                workflows::list_workflows($as_conn, tenant, org, filter)
            }
            fn count_running(&self, tenant: &str) -> Result<u64, StoreError> {
                let $conn = self;
                workflows::count_running($as_conn, tenant)
            }
            fn count_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
                let $conn = self;
                workflows::count_by_status($as_conn)
            }
            fn find_step(
                &self,
                workflow_id: &str,
                step_id: &str,
            ) -> Result<Option<StepRow>, StoreError> {
                let $conn = self;
                steps::find_step($as_conn, workflow_id, step_id)
            }
            fn count_steps(&self, workflow_id: &str) -> Result<u32, StoreError> {
                let $conn = self;
                steps::count_steps($as_conn, workflow_id)
            }
            fn list_steps(&self, workflow_id: &str) -> Result<Vec<StepRow>, StoreError> {
                let $conn = self;
                steps::list_steps($as_conn, workflow_id)
            }
            fn step_with_approval(
                &self,
                workflow_id: &str,
                statuses: &[&str],
            ) -> Result<Option<String>, StoreError> {
                let $conn = self;
                steps::step_with_approval($as_conn, workflow_id, statuses)
            }
            fn any_due(&self, scope: &DueScope, now: &str) -> Result<bool, StoreError> {
                let $conn = self;
                approvals::any_due($as_conn, scope, now)
            }
            fn due_holds(
                &self,
                scope: &DueScope,
                now: &str,
            ) -> Result<Vec<(String, String)>, StoreError> {
                let $conn = self;
                approvals::due_holds($as_conn, scope, now)
            }
            fn list_pending(
                &self,
                tenant: &str,
                org: &str,
                now: &str,
                limit: u32,
            ) -> Result<(Vec<PendingHold>, u64), StoreError> {
                let $conn = self;
                approvals::list_pending($as_conn, tenant, org, now, limit)
            }
            fn list_checkpoints(
                &self,
                workflow_id: &str,
            ) -> Result<Vec<CheckpointRow>, StoreError> {
                let $conn = self;
                checkpoints::list_checkpoints($as_conn, workflow_id)
            }
            fn find_checkpoint(
                &self,
                workflow_id: &str,
                id: i64,
            ) -> Result<Option<CheckpointRow>, StoreError> {
                let $conn = self;
                checkpoints::find_checkpoint($as_conn, workflow_id, id)
            }
            fn last_resumable(
                &self,
                workflow_id: &str,
            ) -> Result<Option<CheckpointRow>, StoreError> {
                let $conn = self;
                checkpoints::last_resumable($as_conn, workflow_id)
            }
            fn audit_entries(
                &self,
                chain: &str,
                filter: &AuditFilter,
            ) -> Result<(Vec<AuditEntry>, u64), StoreError> {
                let $conn = self;
                audit::list($as_conn, chain, filter)
            }
            fn verify_chain(&self, chain: &str) -> Result<VerifyReport, StoreError> {
                let $conn = self;
                audit::verify_chain($as_conn, chain)
            }
        }
    };
}

sqlite_reads!(Connection, conn => conn);
sqlite_reads!(Transaction<'_>, tx => tx);

impl StoreWrite for Transaction<'_> {
    fn insert_workflow(&self, row: &WorkflowRow) -> Result<(), StoreError> {
        workflows::insert_workflow(self, row)
    }
    fn end_workflow(
        &self,
        id: &str,
        status: &str,
        at: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        workflows::end_workflow(self, id, status, at, reason)
    }
    fn revive_workflow(&self, id: &str) -> Result<(), StoreError> {
        workflows::revive_workflow(self, id)
    }
    fn bump_step_index(&self, id: &str) -> Result<u32, StoreError> {
        workflows::bump_step_index(self, id)
    }
    fn add_totals(
        &self,
        id: &str,
        tokens_in: u64,
        tokens_out: u64,
        cost_usd: f64,
    ) -> Result<(), StoreError> {
        workflows::add_totals(self, id, tokens_in, tokens_out, cost_usd)
    }
    fn save_step(&self, step: &StepRow) -> Result<(), StoreError> {
        steps::save_step(self, step)
    }
    fn save_completion(&self, step: &StepRow) -> Result<(), StoreError> {
        steps::save_completion(self, step)
    }
    fn upsert_checkpoint(&self, step: &StepRow, owner: CheckpointOwner) -> Result<i64, StoreError> {
        checkpoints::upsert_checkpoint(self, step, owner)
    }
    fn mark_resumed(&self, workflow_id: &str, id: i64, at: &str) -> Result<u32, StoreError> {
        checkpoints::mark_resumed(self, workflow_id, id, at)
    }
    fn append_audit(&self, chain: &str, record: AuditRecord) -> Result<AuditEntry, StoreError> {
        audit::append(self, chain, record)
    }
}
