//! Workflow steps in SQL (contract §2.4, §2.5, §4.1), as the SQLite
//! backend's `steps` module has them: read whole, written back whole by
//! one upsert, and a step complete's own columns alone.

use std::sync::LazyLock;

use serde_json::Value;

use super::conn::PgConn;
use super::values::{col, signed, small};
use crate::store::StoreError;
pub(super) use crate::store::columns::step as decode;
pub(super) use crate::store::columns::{STEP as COLUMNS, STEP_WIDTH as WIDTH};
use crate::store::rows::StepRow;

/// The key of a step's workflow, from its public id.
pub(super) const WID: &str = "(SELECT wid FROM workflows WHERE workflow_id = $1)";

/// The step `step_id` of `workflow_id`, if it was ever gated.
pub(super) fn find_step(
    conn: &PgConn,
    workflow_id: &str,
    step_id: &str,
) -> Result<Option<StepRow>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!("SELECT {COLUMNS} FROM workflow_steps WHERE wid = {WID} AND step_id = $2")
    });
    conn.query_opt(&SQL, &[&workflow_id, &step_id], "reading a step")?
        .as_ref()
        .map(decode)
        .transpose()
}

/// Every step of a workflow, by `step_index`.
pub(super) fn list_steps(conn: &PgConn, workflow_id: &str) -> Result<Vec<StepRow>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!("SELECT {COLUMNS} FROM workflow_steps WHERE wid = {WID} ORDER BY step_index")
    });
    conn.query(&SQL, &[&workflow_id], "listing steps")?
        .iter()
        .map(decode)
        .collect()
}

/// How many steps the workflow has.
pub(super) fn count_steps(conn: &PgConn, workflow_id: &str) -> Result<u32, StoreError> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT count(*) FROM workflow_steps WHERE wid = {WID}"));
    let row = conn.query_one(&SQL, &[&workflow_id], "counting steps")?;
    Ok(small(col(&row, 0)?))
}

/// The first step of the workflow whose approval is in one of `statuses`.
pub(super) fn step_with_approval(
    conn: &PgConn,
    workflow_id: &str,
    statuses: &[&str],
) -> Result<Option<String>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT step_id, approval_status FROM workflow_steps \
             WHERE wid = {WID} AND approval_status IS NOT NULL ORDER BY step_index"
        )
    });
    for row in conn.query(&SQL, &[&workflow_id], "finding held steps")? {
        let status: String = col(&row, 1)?;
        if statuses.contains(&status.as_str()) {
            return col(&row, 0).map(Some);
        }
    }
    Ok(None)
}

/// The upsert of [`save_step`], built once.
static SAVE_STEP_SQL: LazyLock<String> = LazyLock::new(|| {
    let placeholders: Vec<String> = (1..=WIDTH).map(|i| format!("${i}")).collect();
    let updates: Vec<String> = COLUMNS
        .split(", ")
        .skip(2)
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    format!(
        "INSERT INTO workflow_steps (wid, {COLUMNS}) VALUES ({WID}, {}) \
         ON CONFLICT (wid, step_id) DO UPDATE SET {}",
        placeholders.join(", "),
        updates.join(", ")
    )
});

/// Writes the whole step, inserting it or replacing the stored values.
pub(super) fn save_step(tx: &PgConn, step: &StepRow) -> Result<(), StoreError> {
    let to_text = |value: &Option<Value>| value.as_ref().map(Value::to_string);
    let wide = |value: Option<u64>| value.map(signed);
    let (input, tool, evaluated, matched, output) = (
        step.step_input.to_string(),
        to_text(&step.tool_context),
        step.policies_evaluated.to_string(),
        step.policies_matched.to_string(),
        to_text(&step.output),
    );
    let (decision, last_decision) = (step.decision.as_str(), step.last_decision.as_str());
    let counts = [
        i64::from(step.step_index),
        i64::from(step.gate_count),
        i64::from(step.approval_count),
        i64::from(step.completion_count),
    ];
    let estimates = [
        wide(step.estimated_tokens_in),
        wide(step.estimated_tokens_out),
    ];
    let usage = [wide(step.tokens_in), wide(step.tokens_out)];
    tx.execute(
        &SAVE_STEP_SQL,
        &[
            &step.workflow_id,
            &step.step_id,
            &counts[0],
            &step.step_type,
            &step.step_name,
            &step.model,
            &step.provider,
            &input,
            &tool,
            &step.idempotency_key,
            &estimates[0],
            &estimates[1],
            &step.estimated_cost_usd,
            &decision,
            &step.decision_reason,
            &evaluated,
            &matched,
            &last_decision,
            &counts[1],
            &step.first_attempt_at,
            &step.gate_checked_at,
            &step.approval_status,
            &step.approval_id,
            &counts[2],
            &step.approval_requested_at,
            &step.expires_at,
            &step.approved_by,
            &step.approved_at,
            &step.approval_comment,
            &counts[3],
            &step.completed_at,
            &output,
            &usage[0],
            &usage[1],
            &step.cost_usd,
        ],
        "writing a step",
    )?;
    Ok(())
}

/// Writes what a step complete changes (§2.5): the completion count and
/// time, output and usage.
pub(super) fn save_completion(tx: &PgConn, step: &StepRow) -> Result<(), StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE workflow_steps SET completion_count = $3, completed_at = $4, output = $5, \
                 tokens_in = $6, tokens_out = $7, cost_usd = $8 \
             WHERE wid = {WID} AND step_id = $2"
        )
    });
    let changed = tx.execute(
        &SQL,
        &[
            &step.workflow_id,
            &step.step_id,
            &i64::from(step.completion_count),
            &step.completed_at,
            &step.output.as_ref().map(Value::to_string),
            &step.tokens_in.map(signed),
            &step.tokens_out.map(signed),
            &step.cost_usd,
        ],
        "recording a step complete",
    )?;
    if changed != 1 {
        return Err(StoreError::step_not_stored(
            &step.workflow_id,
            &step.step_id,
        ));
    }
    Ok(())
}
