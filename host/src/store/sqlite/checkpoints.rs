//! Checkpoints in SQL (contract §2.13-2.15): one per step, upserted by
//! each fresh evaluation; listed, picked for a resume, and counted when
//! resumed. A checkpoint lives in its step's row (schema v3): it shows the
//! step's request, decision and policy runs, so they cannot disagree. The
//! view `checkpoints` reads it back in the API's shape, with
//! `checkpoint_type` and `is_resumable` derived from the decision.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::error::SqlContext;
use crate::store::StoreError;
use crate::store::columns::{CHECKPOINT as COLUMNS, checkpoint as decode};
use crate::store::rows::{CheckpointOwner, CheckpointRow, StepRow};

fn query(
    conn: &Connection,
    condition: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<CheckpointRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM checkpoints WHERE {condition}"
        ))
        .context("reading checkpoints")?;
    let mut rows = stmt.query(args).context("reading checkpoints")?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().context("reading checkpoints")? {
        found.push(decode(row)?);
    }
    Ok(found)
}

/// Every checkpoint of a workflow, by `step_index`.
pub fn list_checkpoints(
    conn: &Connection,
    workflow_id: &str,
) -> Result<Vec<CheckpointRow>, StoreError> {
    query(
        conn,
        "wid = (SELECT wid FROM workflows WHERE workflow_id = ?1) ORDER BY step_index",
        [workflow_id],
    )
}

/// The checkpoint `id` if it belongs to `workflow_id`.
pub fn find_checkpoint(
    conn: &Connection,
    workflow_id: &str,
    id: i64,
) -> Result<Option<CheckpointRow>, StoreError> {
    Ok(query(
        conn,
        "wid = (SELECT wid FROM workflows WHERE workflow_id = ?1) AND id = ?2",
        params![workflow_id, id],
    )?
    .pop())
}

/// The resumable checkpoint with the highest `step_index` (§2.14).
pub fn last_resumable(
    conn: &Connection,
    workflow_id: &str,
) -> Result<Option<CheckpointRow>, StoreError> {
    Ok(query(
        conn,
        "wid = (SELECT wid FROM workflows WHERE workflow_id = ?1) AND is_resumable \
         ORDER BY step_index DESC LIMIT 1",
        [workflow_id],
    )?
    .pop())
}

/// Records the step's checkpoint after a fresh evaluation wrote the step
/// (§2.13): the step row holds everything else the checkpoint shows, so
/// this only stamps who evaluated and when, and gives the step a
/// checkpoint id if it has none. Keeps the id and resume counters; returns
/// the id.
pub fn upsert_checkpoint(
    tx: &Transaction,
    step: &StepRow,
    owner: CheckpointOwner,
) -> Result<i64, StoreError> {
    // The id a step without one takes; the counter moves only if it does.
    let next: i64 = tx
        .prepare_cached("SELECT value + 1 FROM counters WHERE name = 'checkpoint_id'")
        .and_then(|mut stmt| stmt.query_row([], |row| row.get(0)))
        .context("reading the checkpoint counter")?;
    let id: i64 = tx
        .prepare_cached(
            "UPDATE workflow_steps
             SET checkpoint_id = coalesce(checkpoint_id, ?3),
                 checkpoint_client_id = ?4, checkpoint_at = ?5
             WHERE wid = (SELECT wid FROM workflows WHERE workflow_id = ?1) AND step_id = ?2
             RETURNING checkpoint_id",
        )
        .and_then(|mut stmt| {
            stmt.query_row(
                params![step.workflow_id, step.step_id, next, owner.actor, owner.at],
                |row| row.get(0),
            )
        })
        .optional()
        .context("writing a checkpoint")?
        .ok_or_else(|| StoreError::Invalid {
            what: "checkpoint",
            detail: format!("step {} is not stored", step.step_id),
        })?;
    if id == next {
        tx.prepare_cached("UPDATE counters SET value = ?1 WHERE name = 'checkpoint_id'")
            .and_then(|mut stmt| stmt.execute([next]))
            .context("moving the checkpoint counter")?;
    }
    Ok(id)
}

/// Counts a resume from checkpoint `id` of `workflow_id` at `at`; returns
/// the new count.
pub fn mark_resumed(
    tx: &Transaction,
    workflow_id: &str,
    id: i64,
    at: &str,
) -> Result<u32, StoreError> {
    tx.prepare_cached(
        "UPDATE workflow_steps SET resume_count = resume_count + 1, last_resumed_at = ?3
         WHERE wid = (SELECT wid FROM workflows WHERE workflow_id = ?1) AND checkpoint_id = ?2
         RETURNING resume_count",
    )
    .and_then(|mut stmt| stmt.query_row(params![workflow_id, id, at], |row| row.get(0)))
    .context("counting a checkpoint resume")
}
