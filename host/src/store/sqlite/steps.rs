//! Workflow steps in SQL (contract §2.4, §2.5, §4.1). A step is read
//! whole, changed by the domain, and written back whole, so one upsert
//! serves first gates, cached re-gates and reevaluations. A step complete
//! writes only its own columns ([`save_completion`]).

use rusqlite::{Connection, Transaction, params};
use serde_json::Value;

use super::error::SqlContext;
use crate::store::StoreError;
use crate::store::columns::STEP_WIDTH as WIDTH;
pub(super) use crate::store::columns::{STEP as COLUMNS, step as decode};
use crate::store::rows::StepRow;

/// A count as SQLite stores it.
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The step `step_id` of `workflow_id`, if it was ever gated.
pub fn find_step(
    conn: &Connection,
    workflow_id: &str,
    step_id: &str,
) -> Result<Option<StepRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM workflow_steps
             WHERE wid = (SELECT wid FROM workflows WHERE workflow_id = ?1) AND step_id = ?2"
        ))
        .context("reading a step")?;
    let mut rows = stmt
        .query(params![workflow_id, step_id])
        .context("reading a step")?;
    match rows.next().context("reading a step")? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// Every step of a workflow, by `step_index`.
pub fn list_steps(conn: &Connection, workflow_id: &str) -> Result<Vec<StepRow>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM workflow_steps
             WHERE wid = (SELECT wid FROM workflows WHERE workflow_id = ?1) ORDER BY step_index"
        ))
        .context("listing steps")?;
    let mut rows = stmt.query([workflow_id]).context("listing steps")?;
    let mut steps = Vec::new();
    while let Some(row) = rows.next().context("listing steps")? {
        steps.push(decode(row)?);
    }
    Ok(steps)
}

/// How many steps the workflow has (every step gated at least once).
pub fn count_steps(conn: &Connection, workflow_id: &str) -> Result<u32, StoreError> {
    conn.prepare_cached(
        "SELECT count(*) FROM workflow_steps
         WHERE wid = (SELECT wid FROM workflows WHERE workflow_id = ?1)",
    )
    .and_then(|mut stmt| stmt.query_row([workflow_id], |row| row.get(0)))
    .context("counting steps")
}

/// The first step of the workflow whose approval is in one of `statuses`.
pub fn step_with_approval(
    conn: &Connection,
    workflow_id: &str,
    statuses: &[&str],
) -> Result<Option<String>, StoreError> {
    let wanted = |status: &str| statuses.contains(&status);
    let mut stmt = conn
        .prepare_cached(
            "SELECT step_id, approval_status FROM workflow_steps
             WHERE wid = (SELECT wid FROM workflows WHERE workflow_id = ?1)
               AND approval_status IS NOT NULL
             ORDER BY step_index",
        )
        .context("finding held steps")?;
    let rows: Vec<(String, String)> = stmt
        .query_map([workflow_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .and_then(|rows| rows.collect())
        .context("finding held steps")?;
    Ok(rows
        .into_iter()
        .find(|(_, status)| wanted(status))
        .map(|(step_id, _)| step_id))
}

/// The upsert of [`save_step`], built once: formatting it on every call
/// cost the store writer several percent of its time.
static SAVE_STEP_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let placeholders: Vec<String> = (1..=WIDTH).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = COLUMNS
        .split(", ")
        .skip(2)
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    format!(
        "INSERT INTO workflow_steps (wid, {COLUMNS}) \
         VALUES ((SELECT wid FROM workflows WHERE workflow_id = ?1), {}) \
         ON CONFLICT (wid, step_id) DO UPDATE SET {}",
        placeholders.join(", "),
        updates.join(", ")
    )
});

/// Writes the whole step, inserting it or replacing the stored values.
pub fn save_step(tx: &Transaction, step: &StepRow) -> Result<(), StoreError> {
    let to_text = |value: &Option<Value>| value.as_ref().map(Value::to_string);
    tx.prepare_cached(&SAVE_STEP_SQL)
        .and_then(|mut stmt| {
            stmt.execute(params![
                step.workflow_id,
                step.step_id,
                step.step_index,
                step.step_type,
                step.step_name,
                step.model,
                step.provider,
                step.step_input.to_string(),
                to_text(&step.tool_context),
                step.idempotency_key,
                step.estimated_tokens_in.map(signed),
                step.estimated_tokens_out.map(signed),
                step.estimated_cost_usd,
                step.decision.as_str(),
                step.decision_reason,
                step.policies_evaluated.to_string(),
                step.policies_matched.to_string(),
                step.last_decision.as_str(),
                step.gate_count,
                step.first_attempt_at,
                step.gate_checked_at,
                step.approval_status,
                step.approval_id,
                step.approval_count,
                step.approval_requested_at,
                step.expires_at,
                step.approved_by,
                step.approved_at,
                step.approval_comment,
                step.completion_count,
                step.completed_at,
                to_text(&step.output),
                step.tokens_in.map(signed),
                step.tokens_out.map(signed),
                step.cost_usd,
            ])
        })
        .context("writing a step")?;
    Ok(())
}

/// Writes what a step complete changes (§2.5): the completion count and
/// time, output and usage. The rest of the row stays as stored, so its JSON
/// columns are neither serialised again nor re-checked.
pub fn save_completion(tx: &Transaction, step: &StepRow) -> Result<(), StoreError> {
    let changed = tx
        .prepare_cached(
            "UPDATE workflow_steps SET completion_count = ?3, completed_at = ?4, output = ?5,
                 tokens_in = ?6, tokens_out = ?7, cost_usd = ?8
             WHERE wid = (SELECT wid FROM workflows WHERE workflow_id = ?1) AND step_id = ?2",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                step.workflow_id,
                step.step_id,
                step.completion_count,
                step.completed_at,
                step.output.as_ref().map(Value::to_string),
                step.tokens_in.map(signed),
                step.tokens_out.map(signed),
                step.cost_usd,
            ])
        })
        .context("recording a step complete")?;
    if changed != 1 {
        return Err(StoreError::step_not_stored(
            &step.workflow_id,
            &step.step_id,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::CheckpointOwner;
    use crate::store::DueScope;
    use crate::store::sqlite::approvals;
    use crate::store::sqlite::checkpoints;
    use crate::store::sqlite::test_db;
    use crate::verdict::Verdict;

    const AT: &str = "2026-03-01T12:00:00.000000Z";

    /// A step as a first gate writes it.
    fn gated(workflow_id: &str, step_id: &str, index: u32, decision: Verdict) -> StepRow {
        let mut step = StepRow::new(workflow_id, step_id, index, decision, AT);
        step.step_type = "llm_call".into();
        step.gate_count = 1;
        step
    }

    #[test]
    fn a_step_is_found_only_under_its_own_workflow() {
        let mut conn = test_db::db();
        test_db::add_workflow(&conn, "wf_a", "acme");
        test_db::add_workflow(&conn, "wf_b", "acme");
        let mut held = gated("wf_a", "s1", 1, Verdict::RequireApproval);
        held.approval_status = Some("pending".into());
        held.expires_at = Some("2026-03-01T13:00:00.000000Z".into());
        let owner = CheckpointOwner {
            actor: "alice",
            at: AT,
        };
        let tx = conn.transaction().unwrap();
        save_step(&tx, &held).unwrap();
        let checkpoint = checkpoints::upsert_checkpoint(&tx, &held, owner).unwrap();
        tx.commit().unwrap();

        let later = "2026-03-01T14:00:00.000000Z";
        assert_eq!(
            find_step(&conn, "wf_a", "s1").unwrap().as_ref(),
            Some(&held)
        );
        assert_eq!(count_steps(&conn, "wf_a").unwrap(), 1);
        let due = DueScope::Workflow("wf_a".into());
        assert!(approvals::any_due(&conn, &due, later).unwrap());
        // Another workflow's id, and one no workflow has: its wid
        // subquery gives NULL, and `wid = NULL` holds for no row.
        for other in ["wf_b", "wf_unknown"] {
            assert_eq!(find_step(&conn, other, "s1").unwrap(), None, "{other}");
            assert!(list_steps(&conn, other).unwrap().is_empty(), "{other}");
            assert_eq!(count_steps(&conn, other).unwrap(), 0, "{other}");
            let pending = step_with_approval(&conn, other, &["pending"]).unwrap();
            assert_eq!(pending, None, "{other}");
            let due = DueScope::Workflow(other.into());
            assert!(!approvals::any_due(&conn, &due, later).unwrap(), "{other}");
            assert!(
                checkpoints::list_checkpoints(&conn, other)
                    .unwrap()
                    .is_empty()
            );
            let found = checkpoints::find_checkpoint(&conn, other, checkpoint).unwrap();
            assert_eq!(found, None, "{other}");
            assert_eq!(checkpoints::last_resumable(&conn, other).unwrap(), None);
        }
    }

    #[test]
    fn saving_a_step_again_updates_it_in_place() {
        let mut conn = test_db::db();
        test_db::add_workflow(&conn, "wf_a", "acme");
        let mut step = gated("wf_a", "s1", 1, Verdict::Allow);
        let tx = conn.transaction().unwrap();
        save_step(&tx, &step).unwrap();
        step.gate_count = 2;
        step.decision = Verdict::Block;
        save_step(&tx, &step).unwrap();
        tx.commit().unwrap();
        assert_eq!(list_steps(&conn, "wf_a").unwrap(), [step]);
    }

    #[test]
    fn a_completion_writes_its_columns_and_keeps_the_rest_of_the_row() {
        let mut conn = test_db::db();
        test_db::add_workflow(&conn, "wf_a", "acme");
        test_db::add_workflow(&conn, "wf_b", "acme");
        let mut step = gated("wf_a", "s1", 1, Verdict::Allow);
        step.step_input = serde_json::json!({"q": 1});
        step.policies_evaluated = serde_json::json!([{"policy_id": "p"}]);
        let tx = conn.transaction().unwrap();
        save_step(&tx, &step).unwrap();
        let other = gated("wf_b", "s1", 1, Verdict::Allow);
        save_step(&tx, &other).unwrap();
        step.completion_count = 1;
        step.completed_at = Some(AT.into());
        step.output = Some(serde_json::json!({"answer": "yes"}));
        step.tokens_in = Some(10);
        step.tokens_out = Some(20);
        step.cost_usd = Some(0.5);
        // Fields outside a completion's columns are not written.
        let mut sent = step.clone();
        sent.gate_count = 9;
        sent.step_input = serde_json::json!({"changed": true});
        save_completion(&tx, &sent).unwrap();
        tx.commit().unwrap();
        assert_eq!(list_steps(&conn, "wf_a").unwrap(), [step]);
        assert_eq!(
            list_steps(&conn, "wf_b").unwrap(),
            [other],
            "another workflow's step"
        );
    }

    #[test]
    fn a_completion_of_a_step_not_stored_is_refused() {
        let mut conn = test_db::db();
        test_db::add_workflow(&conn, "wf_a", "acme");
        let tx = conn.transaction().unwrap();
        for (workflow, step) in [("wf_a", "s9"), ("wf_unknown", "s1")] {
            let error =
                save_completion(&tx, &gated(workflow, step, 1, Verdict::Allow)).unwrap_err();
            assert!(error.to_string().contains("is not stored"), "{error}");
        }
    }

    #[test]
    fn a_step_of_an_unknown_workflow_is_refused() {
        let mut conn = test_db::db();
        let tx = conn.transaction().unwrap();
        let error = save_step(&tx, &gated("wf_unknown", "s1", 1, Verdict::Allow)).unwrap_err();
        assert!(error.to_string().contains("NOT NULL"), "{error}");
    }
}
