//! Approval holds in SQL (contract §2.12, §3.2): the pending list and the
//! lookups of holds past their `expires_at`. Every query names
//! `approval_status = 'pending'` literally, so SQLite can use the partial
//! indexes over pending rows (`workflow_steps_one_pending` by workflow,
//! `workflow_steps_pending_expiry` by expiry, `workflow_steps_pending_newest`
//! by hold start).

use rusqlite::{Connection, params, params_from_iter, types::Value as SqlValue};

use super::error::SqlContext;
use super::steps::{COLUMNS, decode};
use crate::store::StoreError;
use crate::store::rows::{DueScope, PendingHold};

impl DueScope {
    /// The `FROM … WHERE …` of pending holds due at `now`, with its
    /// arguments.
    fn filter(&self, now: &str) -> (String, Vec<SqlValue>) {
        let mut args = vec![SqlValue::Text(now.to_owned())];
        let mut sql = String::from("FROM workflow_steps s");
        match self {
            DueScope::Workflow(workflow_id) => {
                sql.push_str(
                    " WHERE s.approval_status = 'pending' AND s.expires_at <= ? \
                     AND s.wid = (SELECT wid FROM workflows WHERE workflow_id = ?)",
                );
                args.push(SqlValue::Text(workflow_id.clone()));
            }
            DueScope::Tenant { tenant, org } => {
                sql.push_str(
                    " JOIN workflows w ON w.wid = s.wid \
                     WHERE s.approval_status = 'pending' AND s.expires_at <= ? \
                     AND w.tenant = ? AND w.org = ?",
                );
                args.push(SqlValue::Text(tenant.clone()));
                args.push(SqlValue::Text(org.clone()));
            }
            DueScope::All => {
                sql.push_str(" WHERE s.approval_status = 'pending' AND s.expires_at <= ?");
            }
        }
        (sql, args)
    }
}

/// Whether any pending hold in `scope` has `expires_at <= now`: one
/// indexed probe, cheap enough to run before every request that touches a
/// workflow. Stored times are fixed-width text, so text order is time order.
pub fn any_due(conn: &Connection, scope: &DueScope, now: &str) -> Result<bool, StoreError> {
    let (filter, args) = scope.filter(now);
    conn.prepare_cached(&format!("SELECT EXISTS (SELECT 1 {filter})"))
        .and_then(|mut stmt| stmt.query_row(params_from_iter(&args), |row| row.get(0)))
        .context("looking for expired approvals")
}

/// `(workflow_id, step_id)` of every pending hold in `scope` due at `now`,
/// earliest expiry first.
pub fn due_holds(
    conn: &Connection,
    scope: &DueScope,
    now: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let (filter, args) = scope.filter(now);
    conn.prepare_cached(&format!(
        "SELECT s.workflow_id, s.step_id {filter} ORDER BY s.expires_at, s.workflow_id"
    ))
    .and_then(|mut stmt| {
        stmt.query_map(params_from_iter(&args), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect()
    })
    .context("listing expired approvals")
}

/// The holds still pending at `now` of the tenant's and org's
/// `in_progress` workflows, newest hold first, at most `limit`, and how
/// many there are in all (contract §2.12). Run it inside one read so the
/// page and the count agree.
pub fn list_pending(
    conn: &Connection,
    tenant: &str,
    org: &str,
    now: &str,
    limit: u32,
) -> Result<(Vec<PendingHold>, u64), StoreError> {
    // A hold past its expiry is never listed, even if no expiry pass has
    // reached it yet: every entry must be actionable.
    let filter = "FROM workflow_steps s JOIN workflows w ON w.wid = s.wid \
                  WHERE s.approval_status = 'pending' AND s.expires_at > ?1 \
                  AND w.tenant = ?2 AND w.org = ?3 AND w.status = 'in_progress'";
    let count: i64 = conn
        .prepare_cached(&format!("SELECT count(*) {filter}"))
        .and_then(|mut stmt| stmt.query_row(params![now, tenant, org], |row| row.get(0)))
        .context("counting pending approvals")?;
    let columns: Vec<String> = COLUMNS
        .split(", ")
        .map(|column| format!("s.{}", column.trim()))
        .collect();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {}, w.workflow_name {filter} \
             ORDER BY s.approval_requested_at DESC, s.workflow_id, s.step_id LIMIT ?4",
            columns.join(", ")
        ))
        .context("listing pending approvals")?;
    let mut rows = stmt
        .query(params![now, tenant, org, i64::from(limit)])
        .context("listing pending approvals")?;
    let mut holds = Vec::new();
    while let Some(row) = rows.next().context("listing pending approvals")? {
        holds.push(PendingHold {
            step: decode(row)?,
            workflow_name: row
                .get(columns.len())
                .context("listing pending approvals")?,
        });
    }
    Ok((holds, u64::try_from(count).unwrap_or(0)))
}
