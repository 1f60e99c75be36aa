//! Workflows in SQL (contract §2.1-2.3, §2.6-2.9): insert, scoped lookup,
//! the filtered list, ends and running totals.

use rusqlite::{Connection, Transaction, params, params_from_iter, types::Value as SqlValue};

use super::error::SqlContext;
use crate::store::StoreError;
use crate::store::columns::{WORKFLOW as COLUMNS, end_reasons, workflow as decode};
use crate::store::rows::{WorkflowFilter, WorkflowRow};

/// A count as SQLite stores it.
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Inserts a new workflow.
pub fn insert_workflow(tx: &Transaction, row: &WorkflowRow) -> Result<(), StoreError> {
    tx.prepare_cached(&format!(
        "INSERT INTO workflows ({COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    ))
    .and_then(|mut stmt| {
        stmt.execute(params![
            row.workflow_id,
            row.tenant,
            row.org,
            row.workflow_name,
            row.source,
            row.status,
            row.current_step_index,
            row.total_steps,
            row.trace_id,
            row.metadata.to_string(),
            row.failure_reason,
            row.abort_reason,
            row.total_cost_usd,
            signed(row.total_tokens_in),
            signed(row.total_tokens_out),
            row.started_at,
            row.completed_at,
        ])
    })
    .context("inserting a workflow")?;
    Ok(())
}

/// The workflow `id` if it belongs to `tenant` and `org`.
pub fn find_workflow(
    conn: &Connection,
    id: &str,
    tenant: &str,
    org: &str,
) -> Result<Option<WorkflowRow>, StoreError> {
    first(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM workflows WHERE workflow_id = ?1 AND tenant = ?2 AND org = ?3"
        ),
        params![id, tenant, org],
    )
}

/// The workflow `id` whoever owns it: for system work (approval expiry)
/// that acts on a workflow without a caller. Never answer a caller with it.
pub fn workflow_by_id(conn: &Connection, id: &str) -> Result<Option<WorkflowRow>, StoreError> {
    first(
        conn,
        &format!("SELECT {COLUMNS} FROM workflows WHERE workflow_id = ?1"),
        [id],
    )
}

/// The first workflow `sql` selects, if any.
fn first(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Option<WorkflowRow>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).context("reading a workflow")?;
    let mut rows = stmt.query(args).context("reading a workflow")?;
    match rows.next().context("reading a workflow")? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

/// A page of the tenant's and org's workflows, newest first, and how many
/// match in all. Run it inside one read so the two agree.
pub fn list_workflows(
    conn: &Connection,
    tenant: &str,
    org: &str,
    filter: &WorkflowFilter,
) -> Result<(Vec<WorkflowRow>, u64), StoreError> {
    let mut conditions = String::from("tenant = ? AND org = ?");
    let mut args = vec![
        SqlValue::Text(tenant.to_owned()),
        SqlValue::Text(org.to_owned()),
    ];
    for (column, value) in [
        ("status", &filter.status),
        ("source", &filter.source),
        ("trace_id", &filter.trace_id),
    ] {
        if let Some(value) = value {
            conditions.push_str(&format!(" AND {column} = ?"));
            args.push(SqlValue::Text(value.clone()));
        }
    }
    let total: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM workflows WHERE {conditions}"),
            params_from_iter(args.iter()),
            |row| row.get(0),
        )
        .context("counting workflows")?;
    args.push(SqlValue::Integer(i64::from(filter.limit)));
    args.push(SqlValue::Integer(
        i64::try_from(filter.offset).unwrap_or(i64::MAX),
    ));
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM workflows WHERE {conditions} \
             ORDER BY started_at DESC, workflow_id LIMIT ? OFFSET ?"
        ))
        .context("listing workflows")?;
    let mut rows = stmt
        .query(params_from_iter(args.iter()))
        .context("listing workflows")?;
    let mut page = Vec::new();
    while let Some(row) = rows.next().context("listing workflows")? {
        page.push(decode(row)?);
    }
    Ok((page, u64::try_from(total).unwrap_or(0)))
}

/// Ends a workflow: `status`, `completed_at`, `total_steps` from the current
/// index, and the reason column that goes with the status.
pub fn end_workflow(
    tx: &Transaction,
    id: &str,
    status: &str,
    at: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    let (failure, abort) = end_reasons(status, reason);
    tx.prepare_cached(
        "UPDATE workflows SET status = ?2, completed_at = ?3, total_steps = current_step_index,
             failure_reason = coalesce(?4, failure_reason), abort_reason = coalesce(?5, abort_reason)
         WHERE workflow_id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![id, status, at, failure, abort]))
    .context("ending a workflow")?;
    Ok(())
}

/// Bumps `current_step_index` and returns the new value (§4.1 step 9).
pub fn bump_step_index(tx: &Transaction, id: &str) -> Result<u32, StoreError> {
    tx.prepare_cached(
        "UPDATE workflows SET current_step_index = current_step_index + 1
         WHERE workflow_id = ?1 RETURNING current_step_index",
    )
    .and_then(|mut stmt| stmt.query_row([id], |row| row.get(0)))
    .context("advancing the step index")
}

/// Adds a step complete's reported usage to the workflow's totals.
pub fn add_totals(
    tx: &Transaction,
    id: &str,
    tokens_in: u64,
    tokens_out: u64,
    cost_usd: f64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE workflows SET total_tokens_in = total_tokens_in + ?2,
             total_tokens_out = total_tokens_out + ?3, total_cost_usd = total_cost_usd + ?4
         WHERE workflow_id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![id, signed(tokens_in), signed(tokens_out), cost_usd]))
    .context("adding to the workflow's totals")?;
    Ok(())
}

/// How many of the tenant's workflows are `in_progress`: what the
/// concurrency limit counts (contract §2.1). Inside the writer's
/// transaction, the count and the insert that follows are atomic.
pub fn count_running(conn: &Connection, tenant: &str) -> Result<u64, StoreError> {
    let count: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM workflows WHERE tenant = ?1 AND status = 'in_progress'",
        )
        .and_then(|mut stmt| stmt.query_row([tenant], |row| row.get(0)))
        .context("counting running workflows")?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Brings an aborted workflow back to `in_progress` (contract §2.14 step
/// 4): the end time, step total and abort reason are cleared.
pub fn revive_workflow(tx: &Transaction, id: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE workflows SET status = 'in_progress', completed_at = NULL, total_steps = NULL,
             abort_reason = NULL
         WHERE workflow_id = ?1 AND status = 'aborted'",
    )
    .and_then(|mut stmt| stmt.execute([id]))
    .context("reviving a workflow")?;
    Ok(())
}

/// How many workflows each status has, over every tenant (the metrics
/// gauge; no tenant label).
pub fn count_by_status(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT status, count(*) FROM workflows GROUP BY status")
        .context("counting workflows")?;
    let counts = stmt
        .query_map([], |row| {
            let count: i64 = row.get(1)?;
            Ok((row.get(0)?, u64::try_from(count).unwrap_or(0)))
        })
        .and_then(|rows| rows.collect())
        .context("counting workflows")?;
    Ok(counts)
}
