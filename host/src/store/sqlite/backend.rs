//! [`StoreRead`] and [`StoreWrite`] for SQLite: a read connection and the
//! writer's transaction, each method delegating to the SQL of its table
//! group's module.

use rusqlite::{Connection, Transaction};

use super::error::SqlContext;
use super::{approvals, audit, checkpoints, steps, workflows};
use crate::audit::{AuditEntry, AuditRecord, VerifyReport};
use crate::store::columns::Columns;
use crate::store::rows::{
    AuditFilter, CheckpointOwner, CheckpointRow, DueScope, PendingHold, StepRow, WorkflowFilter,
    WorkflowRow,
};
use crate::store::{StoreError, StoreRead, StoreWrite};

impl Columns for rusqlite::Row<'_> {
    fn text(&self, index: usize) -> Result<Option<String>, StoreError> {
        self.get(index).context("reading a row")
    }
    fn int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        self.get(index).context("reading a row")
    }
    fn real(&self, index: usize) -> Result<Option<f64>, StoreError> {
        self.get(index).context("reading a row")
    }
    fn flag(&self, index: usize) -> Result<bool, StoreError> {
        self.get(index).context("reading a row")
    }
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
            fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
                let $conn = self;
                audit::chains($as_conn)
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
    fn open_savepoint(&self) -> Result<(), StoreError> {
        super::writer::open_savepoint(self)
    }
    fn close_savepoint(&self, keep: bool) -> Result<(), StoreError> {
        super::writer::close_savepoint(self, keep)
    }
}
