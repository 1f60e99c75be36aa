//! Checkpoints in SQL (contract §2.13-2.15): one row per step, upserted by
//! each fresh evaluation; listed, picked for a resume, and counted when
//! resumed. `checkpoint_type` and `is_resumable` are generated columns, so
//! they always agree with the stored decision.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use serde_json::Value;

use super::error::{SqlContext, StoreError};
use super::steps::StepRow;

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

const COLUMNS: &str = "id, workflow_id, step_id, step_index, step_type, step_name, \
    checkpoint_type, gate_decision, gate_reason, policies_evaluated, policies_matched, \
    step_input, tool_context, model, provider, is_resumable, resume_count, last_resumed_at, \
    tenant_id, org_id, client_id, created_at";

fn json(text: &str, what: &'static str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
        what,
        detail: error.to_string(),
    })
}

fn decode(row: &Row) -> Result<CheckpointRow, StoreError> {
    let read = || -> rusqlite::Result<(CheckpointRow, [Option<String>; 4])> {
        let texts = [row.get(9)?, row.get(10)?, row.get(11)?, row.get(12)?];
        let checkpoint = CheckpointRow {
            id: row.get(0)?,
            workflow_id: row.get(1)?,
            step_id: row.get(2)?,
            step_index: row.get(3)?,
            step_type: row.get(4)?,
            step_name: row.get(5)?,
            checkpoint_type: row.get(6)?,
            gate_decision: row.get(7)?,
            gate_reason: row.get(8)?,
            policies_evaluated: Value::Null,
            policies_matched: Value::Null,
            step_input: Value::Null,
            tool_context: None,
            model: row.get(13)?,
            provider: row.get(14)?,
            is_resumable: row.get(15)?,
            resume_count: row.get(16)?,
            last_resumed_at: row.get(17)?,
            tenant_id: row.get(18)?,
            org_id: row.get(19)?,
            client_id: row.get(20)?,
            created_at: row.get(21)?,
        };
        Ok((checkpoint, texts))
    };
    let (mut checkpoint, [evaluated, matched, input, tool]) =
        read().context("reading a checkpoint")?;
    let text = |value: Option<String>| value.unwrap_or_default();
    checkpoint.policies_evaluated = json(&text(evaluated), "checkpoint policies")?;
    checkpoint.policies_matched = json(&text(matched), "checkpoint policies")?;
    checkpoint.step_input = json(&text(input), "checkpoint step input")?;
    checkpoint.tool_context = tool
        .map(|tool| json(&tool, "checkpoint tool context"))
        .transpose()?;
    Ok(checkpoint)
}

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

/// Who wrote a checkpoint, and when.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointOwner<'a> {
    /// Workflow tenant.
    pub tenant: &'a str,
    /// Workflow org.
    pub org: &'a str,
    /// The gate's actor.
    pub actor: &'a str,
    /// The gate's time.
    pub at: &'a str,
}

/// Upserts the step's checkpoint from its freshly evaluated row (§2.13),
/// keeping its id and resume counters. Returns the checkpoint id.
pub fn upsert_checkpoint(
    tx: &Transaction,
    step: &StepRow,
    owner: CheckpointOwner,
) -> Result<i64, StoreError> {
    let to_text = |value: &Option<Value>| value.as_ref().map(Value::to_string);
    tx.prepare_cached(
        "INSERT INTO checkpoints (wid, workflow_id, step_id, step_index, step_type, step_name,
             gate_decision, gate_reason, policies_evaluated, policies_matched, step_input,
             tool_context, model, provider, tenant_id, org_id, client_id, created_at)
         VALUES ((SELECT wid FROM workflows WHERE workflow_id = ?1),
                 ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (wid, step_id) DO UPDATE SET
             step_index = excluded.step_index, step_type = excluded.step_type,
             step_name = excluded.step_name, gate_decision = excluded.gate_decision,
             gate_reason = excluded.gate_reason, policies_evaluated = excluded.policies_evaluated,
             policies_matched = excluded.policies_matched, step_input = excluded.step_input,
             tool_context = excluded.tool_context, model = excluded.model,
             provider = excluded.provider, client_id = excluded.client_id,
             created_at = excluded.created_at
         RETURNING id",
    )
    .and_then(|mut stmt| {
        stmt.query_row(
            params![
                step.workflow_id,
                step.step_id,
                step.step_index,
                step.step_type,
                step.step_name,
                step.decision.as_str(),
                step.decision_reason,
                step.policies_evaluated.to_string(),
                step.policies_matched.to_string(),
                step.step_input.to_string(),
                to_text(&step.tool_context),
                step.model,
                step.provider,
                owner.tenant,
                owner.org,
                owner.actor,
                owner.at,
            ],
            |row| row.get(0),
        )
    })
    .optional()
    .context("writing a checkpoint")?
    .ok_or_else(|| StoreError::Invalid {
        what: "checkpoint",
        detail: "upsert returned no id".into(),
    })
}

/// Counts a resume from checkpoint `id` at `at`; returns the new count.
pub fn mark_resumed(tx: &Transaction, id: i64, at: &str) -> Result<u32, StoreError> {
    tx.prepare_cached(
        "UPDATE checkpoints SET resume_count = resume_count + 1, last_resumed_at = ?2
         WHERE id = ?1 RETURNING resume_count",
    )
    .and_then(|mut stmt| stmt.query_row(params![id, at], |row| row.get(0)))
    .context("counting a checkpoint resume")
}
