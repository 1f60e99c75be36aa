//! [`StoreRead`] and [`StoreWrite`] for a pooled connection in a
//! transaction, and the locks that keep the rules of one writer true with
//! several replicas writing at once:
//!
//! - a write transaction reads a workflow `FOR UPDATE`, so two gates, an
//!   approval and an end of the same workflow on different replicas take
//!   turns, and the second sees what the first committed (a re-gate finds
//!   the step and answers it cached);
//! - counting a tenant's running workflows takes a transaction-scoped
//!   advisory lock on the tenant, so count and insert are atomic across
//!   replicas (`max_concurrent_workflows`);
//! - appending to an audit chain takes an advisory lock on the chain, so
//!   each tenant's chain stays one chain;
//! - due holds are claimed `FOR UPDATE SKIP LOCKED`, so each expires once.

use super::conn::{LOCK_CHAIN, LOCK_TENANT, PgConn};
use super::{audit, holds, steps, workflows};
use crate::audit::{AuditEntry, AuditRecord, VerifyReport};
use crate::store::rows::{
    AuditFilter, CheckpointOwner, CheckpointRow, DueScope, PendingHold, StepRow, WorkflowFilter,
    WorkflowRow,
};
use crate::store::{StoreError, StoreRead, StoreWrite};

impl StoreRead for PgConn<'_> {
    fn find_workflow(
        &self,
        id: &str,
        tenant: &str,
        org: &str,
    ) -> Result<Option<WorkflowRow>, StoreError> {
        workflows::find_workflow(self, id, Some((tenant, org)))
    }
    fn workflow_by_id(&self, id: &str) -> Result<Option<WorkflowRow>, StoreError> {
        workflows::find_workflow(self, id, None)
    }
    fn list_workflows(
        &self,
        tenant: &str,
        org: &str,
        filter: &WorkflowFilter,
    ) -> Result<(Vec<WorkflowRow>, u64), StoreError> {
        workflows::list_workflows(self, tenant, org, filter)
    }
    fn count_running(&self, tenant: &str) -> Result<u64, StoreError> {
        if self.writes() {
            self.lock(LOCK_TENANT, tenant)?;
        }
        workflows::count_running(self, tenant)
    }
    fn count_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        workflows::count_by_status(self)
    }
    fn find_step(&self, workflow_id: &str, step_id: &str) -> Result<Option<StepRow>, StoreError> {
        steps::find_step(self, workflow_id, step_id)
    }
    fn count_steps(&self, workflow_id: &str) -> Result<u32, StoreError> {
        steps::count_steps(self, workflow_id)
    }
    fn list_steps(&self, workflow_id: &str) -> Result<Vec<StepRow>, StoreError> {
        steps::list_steps(self, workflow_id)
    }
    fn step_with_approval(
        &self,
        workflow_id: &str,
        statuses: &[&str],
    ) -> Result<Option<String>, StoreError> {
        steps::step_with_approval(self, workflow_id, statuses)
    }
    fn any_due(&self, scope: &DueScope, now: &str) -> Result<bool, StoreError> {
        holds::any_due(self, scope, now)
    }
    fn due_holds(&self, scope: &DueScope, now: &str) -> Result<Vec<(String, String)>, StoreError> {
        holds::due_holds(self, scope, now)
    }
    fn list_pending(
        &self,
        tenant: &str,
        org: &str,
        now: &str,
        limit: u32,
    ) -> Result<(Vec<PendingHold>, u64), StoreError> {
        holds::list_pending(self, tenant, org, now, limit)
    }
    fn list_checkpoints(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, StoreError> {
        holds::list_checkpoints(self, workflow_id)
    }
    fn find_checkpoint(
        &self,
        workflow_id: &str,
        id: i64,
    ) -> Result<Option<CheckpointRow>, StoreError> {
        holds::find_checkpoint(self, workflow_id, id)
    }
    fn last_resumable(&self, workflow_id: &str) -> Result<Option<CheckpointRow>, StoreError> {
        holds::last_resumable(self, workflow_id)
    }
    fn audit_entries(
        &self,
        chain: &str,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        audit::list(self, chain, filter)
    }
    fn verify_chain(&self, chain: &str) -> Result<VerifyReport, StoreError> {
        audit::verify_chain(self, chain)
    }
    fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
        audit::chains(self)
    }
}

impl StoreWrite for PgConn<'_> {
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
        holds::upsert_checkpoint(self, step, owner)
    }
    fn mark_resumed(&self, workflow_id: &str, id: i64, at: &str) -> Result<u32, StoreError> {
        holds::mark_resumed(self, workflow_id, id, at)
    }
    fn append_audit(&self, chain: &str, record: AuditRecord) -> Result<AuditEntry, StoreError> {
        audit::append(self, (LOCK_CHAIN, chain), record)
    }
    fn open_savepoint(&self) -> Result<(), StoreError> {
        self.savepoint();
        Ok(())
    }
    fn close_savepoint(&self, keep: bool) -> Result<(), StoreError> {
        self.end_savepoint(keep)
    }
}
