//! Approval holds and checkpoints in SQL (contract §2.12-2.15, §3.2), as
//! the SQLite backend's `approvals` and `checkpoints` modules have them.
//! A write transaction claims due holds with their workflows `FOR UPDATE`,
//! a pass over many workflows with `SKIP LOCKED`: a hold another replica
//! is expiring right now is left to it, so each hold expires once.

use tokio_postgres::types::ToSql;

use super::conn::PgConn;
use super::steps::{self, WID};
use super::values::{col, small, unsigned};
use crate::store::StoreError;
use crate::store::columns::CHECKPOINT as CHECKPOINT_COLUMNS;
use crate::store::columns::checkpoint as decode_checkpoint;
use crate::store::rows::{CheckpointOwner, CheckpointRow, DueScope, PendingHold, StepRow};

/// The `FROM … WHERE …` of pending holds in `scope` due at `now` (`$1`),
/// with the scope's arguments after it. It joins each hold's workflow, so
/// a claim can lock both.
fn due_filter<'a>(
    scope: &'a DueScope,
    now: &'a String,
) -> (&'static str, Vec<&'a (dyn ToSql + Sync)>) {
    macro_rules! due {
        ($scope:literal) => {
            concat!(
                "FROM workflow_steps s JOIN workflows w ON w.wid = s.wid \
                 WHERE s.approval_status = 'pending' AND s.expires_at <= $1",
                $scope
            )
        };
    }
    match scope {
        DueScope::Workflow(workflow_id) => (
            due!(" AND w.workflow_id = $2"),
            vec![now as &(dyn ToSql + Sync), workflow_id],
        ),
        DueScope::Tenant { tenant, org } => (
            due!(" AND w.tenant = $2 AND w.org = $3"),
            vec![now as &(dyn ToSql + Sync), tenant, org],
        ),
        DueScope::All => (due!(""), vec![now as &(dyn ToSql + Sync)]),
    }
}

/// Whether any pending hold in `scope` has `expires_at <= now`.
pub(super) fn any_due(conn: &PgConn, scope: &DueScope, now: &str) -> Result<bool, StoreError> {
    let now = now.to_owned();
    let (filter, args) = due_filter(scope, &now);
    let row = conn.query_one(
        &format!("SELECT EXISTS (SELECT 1 {filter})"),
        &args,
        "looking for expired approvals",
    )?;
    col(&row, 0)
}

/// `(workflow_id, step_id)` of every pending hold in `scope` due at `now`,
/// earliest expiry first. In a write transaction, each hold's step and
/// workflow are locked until this one ends: a claim takes every workflow
/// lock it needs before it appends to an audit chain, as every other write
/// does, so two writers never wait on each other in a circle.
pub(super) fn due_holds(
    conn: &PgConn,
    scope: &DueScope,
    now: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let now = now.to_owned();
    let (filter, args) = due_filter(scope, &now);
    // One workflow's own expiry waits for whoever holds the workflow, then
    // sees what it left; a pass over many skips workflows in use, whose
    // own requests expire their holds.
    let lock = match (conn.writes(), scope) {
        (false, _) => "",
        (true, DueScope::Workflow(_)) => " FOR UPDATE OF s, w",
        (true, _) => " FOR UPDATE OF s, w SKIP LOCKED",
    };
    conn.query(
        &format!(
            "SELECT s.workflow_id, s.step_id {filter} ORDER BY s.expires_at, s.workflow_id{lock}"
        ),
        &args,
        "listing expired approvals",
    )?
    .iter()
    .map(|row| Ok((col(row, 0)?, col(row, 1)?)))
    .collect()
}

/// The holds still pending at `now` of the tenant's and org's
/// `in_progress` workflows, newest hold first, at most `limit`, and how
/// many there are in all (contract §2.12).
pub(super) fn list_pending(
    conn: &PgConn,
    tenant: &str,
    org: &str,
    now: &str,
    limit: u32,
) -> Result<(Vec<PendingHold>, u64), StoreError> {
    let filter = "FROM workflow_steps s JOIN workflows w ON w.wid = s.wid \
                  WHERE s.approval_status = 'pending' AND s.expires_at > $1 \
                  AND w.tenant = $2 AND w.org = $3 AND w.status = 'in_progress'";
    let count = conn.query_one(
        &format!("SELECT count(*) {filter}"),
        &[&now, &tenant, &org],
        "counting pending approvals",
    )?;
    let columns: Vec<String> = steps::COLUMNS
        .split(", ")
        .map(|column| format!("s.{}", column.trim()))
        .collect();
    let rows = conn.query(
        &format!(
            "SELECT {}, w.workflow_name {filter} \
             ORDER BY s.approval_requested_at DESC, s.workflow_id, s.step_id LIMIT $4",
            columns.join(", ")
        ),
        &[&now, &tenant, &org, &i64::from(limit)],
        "listing pending approvals",
    )?;
    let holds = rows
        .iter()
        .map(|row| {
            Ok(PendingHold {
                step: steps::decode(row)?,
                workflow_name: col(row, steps::WIDTH)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((holds, unsigned(col(&count, 0)?)))
}

fn checkpoints(
    conn: &PgConn,
    condition: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<Vec<CheckpointRow>, StoreError> {
    conn.query(
        &format!("SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE wid = {WID} {condition}"),
        args,
        "reading checkpoints",
    )?
    .iter()
    .map(decode_checkpoint)
    .collect()
}

/// Every checkpoint of a workflow, by `step_index`.
pub(super) fn list_checkpoints(
    conn: &PgConn,
    workflow_id: &str,
) -> Result<Vec<CheckpointRow>, StoreError> {
    checkpoints(conn, "ORDER BY step_index", &[&workflow_id])
}

/// The checkpoint `id` if it belongs to `workflow_id`.
pub(super) fn find_checkpoint(
    conn: &PgConn,
    workflow_id: &str,
    id: i64,
) -> Result<Option<CheckpointRow>, StoreError> {
    Ok(checkpoints(conn, "AND id = $2", &[&workflow_id, &id])?.pop())
}

/// The resumable checkpoint with the highest `step_index` (§2.14).
pub(super) fn last_resumable(
    conn: &PgConn,
    workflow_id: &str,
) -> Result<Option<CheckpointRow>, StoreError> {
    Ok(checkpoints(
        conn,
        "AND is_resumable ORDER BY step_index DESC LIMIT 1",
        &[&workflow_id],
    )?
    .pop())
}

/// Records the step's checkpoint after a fresh evaluation wrote the step
/// (§2.13): stamps who evaluated and when, and gives the step an id from
/// the sequence if it has none. Returns the id.
pub(super) fn upsert_checkpoint(
    tx: &PgConn,
    step: &StepRow,
    owner: CheckpointOwner,
) -> Result<i64, StoreError> {
    let row = tx.query_opt(
        &format!(
            "UPDATE workflow_steps \
             SET checkpoint_id = coalesce(checkpoint_id, nextval('checkpoint_ids')), \
                 checkpoint_client_id = $3, checkpoint_at = $4 \
             WHERE wid = {WID} AND step_id = $2 RETURNING checkpoint_id"
        ),
        &[&step.workflow_id, &step.step_id, &owner.actor, &owner.at],
        "writing a checkpoint",
    )?;
    match row {
        Some(row) => col(&row, 0),
        None => Err(StoreError::Invalid {
            what: "checkpoint",
            detail: format!("step {} is not stored", step.step_id),
        }),
    }
}

/// Counts a resume from checkpoint `id` of `workflow_id` at `at`; returns
/// the new count.
pub(super) fn mark_resumed(
    tx: &PgConn,
    workflow_id: &str,
    id: i64,
    at: &str,
) -> Result<u32, StoreError> {
    let row = tx.query_one(
        &format!(
            "UPDATE workflow_steps SET resume_count = resume_count + 1, last_resumed_at = $3 \
             WHERE wid = {WID} AND checkpoint_id = $2 RETURNING resume_count"
        ),
        &[&workflow_id, &id, &at],
        "counting a checkpoint resume",
    )?;
    Ok(small(col(&row, 0)?))
}
