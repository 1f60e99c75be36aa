//! Workflows in SQL (contract §2.1-2.3, §2.6-2.9), as the SQLite
//! backend's `workflows` module has them. In a write transaction a
//! workflow is read `FOR UPDATE`: whoever changes it next waits for this
//! transaction, then sees what it wrote.

use tokio_postgres::types::ToSql;

use super::conn::PgConn;
use super::values::{col, signed, small, unsigned};
use crate::store::StoreError;
use crate::store::columns::WORKFLOW as COLUMNS;
use crate::store::columns::{end_reasons, workflow as decode};
use crate::store::rows::{WorkflowFilter, WorkflowRow};

/// Inserts a new workflow.
pub(super) fn insert_workflow(tx: &PgConn, row: &WorkflowRow) -> Result<(), StoreError> {
    let metadata = row.metadata.to_string();
    tx.execute(
        &format!(
            "INSERT INTO workflows ({COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ),
        &[
            &row.workflow_id,
            &row.tenant,
            &row.org,
            &row.workflow_name,
            &row.source,
            &row.status,
            &i64::from(row.current_step_index),
            &row.total_steps.map(i64::from),
            &row.trace_id,
            &metadata,
            &row.failure_reason,
            &row.abort_reason,
            &row.total_cost_usd,
            &signed(row.total_tokens_in),
            &signed(row.total_tokens_out),
            &row.started_at,
            &row.completed_at,
        ],
        "inserting a workflow",
    )?;
    Ok(())
}

/// The workflow `id`, if it belongs to `owner`'s tenant and org (`None`:
/// whoever owns it, for system work such as expiry).
pub(super) fn find_workflow(
    conn: &PgConn,
    id: &str,
    owner: Option<(&str, &str)>,
) -> Result<Option<WorkflowRow>, StoreError> {
    let lock = if conn.writes() { " FOR UPDATE" } else { "" };
    let row = match owner {
        Some((tenant, org)) => conn.query_opt(
            &format!(
                "SELECT {COLUMNS} FROM workflows \
                 WHERE workflow_id = $1 AND tenant = $2 AND org = $3{lock}"
            ),
            &[&id, &tenant, &org],
            "reading a workflow",
        )?,
        None => conn.query_opt(
            &format!("SELECT {COLUMNS} FROM workflows WHERE workflow_id = $1{lock}"),
            &[&id],
            "reading a workflow",
        )?,
    };
    row.as_ref().map(decode).transpose()
}

/// A page of the tenant's and org's workflows, newest first, and how many
/// match in all.
pub(super) fn list_workflows(
    conn: &PgConn,
    tenant: &str,
    org: &str,
    filter: &WorkflowFilter,
) -> Result<(Vec<WorkflowRow>, u64), StoreError> {
    let mut conditions = String::from("tenant = $1 AND org = $2");
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&tenant, &org];
    for (column, value) in [
        ("status", &filter.status),
        ("source", &filter.source),
        ("trace_id", &filter.trace_id),
    ] {
        if let Some(value) = value {
            args.push(value);
            conditions.push_str(&format!(" AND {column} = ${}", args.len()));
        }
    }
    let total: i64 = col(
        &conn.query_one(
            &format!("SELECT count(*) FROM workflows WHERE {conditions}"),
            &args,
            "counting workflows",
        )?,
        0,
    )?;
    let limit = i64::from(filter.limit);
    let offset = signed(filter.offset);
    args.push(&limit);
    args.push(&offset);
    let rows = conn.query(
        &format!(
            "SELECT {COLUMNS} FROM workflows WHERE {conditions} \
             ORDER BY started_at DESC, workflow_id LIMIT ${} OFFSET ${}",
            args.len() - 1,
            args.len()
        ),
        &args,
        "listing workflows",
    )?;
    let rows = rows.iter().map(decode).collect::<Result<_, _>>()?;
    Ok((rows, unsigned(total)))
}

/// Ends a workflow: `status`, `completed_at`, `total_steps` from the
/// current index, and the reason column that goes with the status.
pub(super) fn end_workflow(
    tx: &PgConn,
    id: &str,
    status: &str,
    at: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    let (failure, abort) = end_reasons(status, reason);
    tx.execute(
        "UPDATE workflows SET status = $2, completed_at = $3, total_steps = current_step_index,
             failure_reason = coalesce($4, failure_reason), abort_reason = coalesce($5, abort_reason)
         WHERE workflow_id = $1",
        &[&id, &status, &at, &failure, &abort],
        "ending a workflow",
    )?;
    Ok(())
}

/// Bumps `current_step_index` and returns the new value (§4.1 step 9).
pub(super) fn bump_step_index(tx: &PgConn, id: &str) -> Result<u32, StoreError> {
    let row = tx.query_one(
        "UPDATE workflows SET current_step_index = current_step_index + 1
         WHERE workflow_id = $1 RETURNING current_step_index",
        &[&id],
        "advancing the step index",
    )?;
    Ok(small(col(&row, 0)?))
}

/// Adds a step complete's reported usage to the workflow's totals.
pub(super) fn add_totals(
    tx: &PgConn,
    id: &str,
    tokens_in: u64,
    tokens_out: u64,
    cost_usd: f64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE workflows SET total_tokens_in = total_tokens_in + $2,
             total_tokens_out = total_tokens_out + $3, total_cost_usd = total_cost_usd + $4
         WHERE workflow_id = $1",
        &[&id, &signed(tokens_in), &signed(tokens_out), &cost_usd],
        "adding to the workflow's totals",
    )?;
    Ok(())
}

/// How many of the tenant's workflows are `in_progress` (contract §2.1).
pub(super) fn count_running(conn: &PgConn, tenant: &str) -> Result<u64, StoreError> {
    let row = conn.query_one(
        "SELECT count(*) FROM workflows WHERE tenant = $1 AND status = 'in_progress'",
        &[&tenant],
        "counting running workflows",
    )?;
    Ok(unsigned(col(&row, 0)?))
}

/// Brings an aborted workflow back to `in_progress` (contract §2.14 step 4).
pub(super) fn revive_workflow(tx: &PgConn, id: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE workflows SET status = 'in_progress', completed_at = NULL, total_steps = NULL,
             abort_reason = NULL
         WHERE workflow_id = $1 AND status = 'aborted'",
        &[&id],
        "reviving a workflow",
    )?;
    Ok(())
}

/// How many workflows each status has, over every tenant (metrics).
pub(super) fn count_by_status(conn: &PgConn) -> Result<Vec<(String, u64)>, StoreError> {
    let rows = conn.query(
        "SELECT status, count(*) FROM workflows GROUP BY status",
        &[],
        "counting workflows",
    )?;
    rows.iter()
        .map(|row| Ok((col(row, 0)?, unsigned(col(row, 1)?))))
        .collect()
}
