//! `wcp store copy`: moves an embedded SQLite deployment into a PostgreSQL
//! database, tables as they are (keys, checkpoint ids and audit hashes
//! included), in one PostgreSQL transaction, and then checks the result:
//! every table holds as many rows as the source, and every audit chain
//! verifies, with as many entries.
//!
//! The rows travel as [`Cell`]s, plain values, so neither backend's
//! module names the other's library: `sqlite::export` reads them,
//! `postgres::Postgres::import` writes them.

use std::path::Path;

use super::{StoreError, postgres, sqlite};

/// One stored value, as both backends' columns hold them.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// NULL.
    Null,
    /// An integer (BIGINT).
    Int(i64),
    /// A floating-point number (DOUBLE PRECISION).
    Real(f64),
    /// Text.
    Text(String),
}

/// A table the copy moves: its name, the columns both schemas give it,
/// and the order its rows are read and written in.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The table.
    pub name: &'static str,
    /// Its columns, in both schemas.
    pub columns: &'static [&'static str],
    /// `ORDER BY` of the export, so the copy is written in key order.
    pub order: &'static str,
}

/// Every table, parents first.
pub const TABLES: &[Table] = &[
    Table {
        name: "workflows",
        columns: &[
            "wid",
            "workflow_id",
            "tenant",
            "org",
            "workflow_name",
            "source",
            "status",
            "current_step_index",
            "total_steps",
            "trace_id",
            "metadata",
            "failure_reason",
            "abort_reason",
            "total_cost_usd",
            "total_tokens_in",
            "total_tokens_out",
            "started_at",
            "completed_at",
        ],
        order: "wid",
    },
    Table {
        name: "workflow_steps",
        columns: &[
            "wid",
            "workflow_id",
            "step_id",
            "step_index",
            "step_type",
            "step_name",
            "model",
            "provider",
            "step_input",
            "tool_context",
            "idempotency_key",
            "estimated_tokens_in",
            "estimated_tokens_out",
            "estimated_cost_usd",
            "decision",
            "decision_reason",
            "policies_evaluated",
            "policies_matched",
            "last_decision",
            "gate_count",
            "first_attempt_at",
            "gate_checked_at",
            "approval_status",
            "approval_id",
            "approval_count",
            "approval_requested_at",
            "expires_at",
            "approved_by",
            "approved_at",
            "approval_comment",
            "completion_count",
            "completed_at",
            "output",
            "tokens_in",
            "tokens_out",
            "cost_usd",
            "checkpoint_id",
            "checkpoint_client_id",
            "checkpoint_at",
            "resume_count",
            "last_resumed_at",
        ],
        order: "wid, step_id",
    },
    Table {
        name: "audit_log",
        columns: &[
            "chain",
            "seq",
            "at",
            "tenant",
            "org",
            "actor",
            "kind",
            "workflow_id",
            "step_id",
            "decision",
            "reason",
            "details",
            "prev_hash",
            "hash",
            "wid",
        ],
        order: "chain, seq",
    },
];

/// What a copy moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Rows per table, in [`TABLES`] order.
    pub rows: Vec<(&'static str, u64)>,
    /// Audit chains verified on the target, with their entries.
    pub chains: Vec<(String, u64)>,
}

/// Copies the SQLite database of `data_dir` into the empty PostgreSQL
/// database at `url` (migrating it first), then verifies the copy.
/// `progress` hears each table as it is read. Nothing is written to the
/// target unless every row is; a target that already holds workflows or
/// audit entries is refused.
pub fn copy(
    data_dir: &Path,
    url: &str,
    mut progress: impl FnMut(&str, u64),
) -> Result<Copied, StoreError> {
    let source = sqlite::export(data_dir)?;
    let target = postgres::Postgres::open(url)?;
    let mut tables = Vec::new();
    for table in TABLES {
        let rows = source.rows(table)?;
        progress(table.name, rows.len() as u64);
        tables.push((*table, rows));
    }
    let (rows, chains) = target.import(&tables, source.checkpoint_counter()?)?;
    let expected: Vec<(&str, u64)> = tables
        .iter()
        .map(|(table, rows)| (table.name, rows.len() as u64))
        .collect();
    if rows != expected {
        return Err(StoreError::Invalid {
            what: "copy",
            detail: format!("the target holds {rows:?} rows, the source {expected:?}"),
        });
    }
    let mut verified = Vec::new();
    for (chain, report) in chains {
        let source_entries = source.chain_length(&chain)?;
        if !report.valid || report.entries_checked != source_entries {
            return Err(StoreError::Invalid {
                what: "copy",
                detail: format!(
                    "audit chain `{chain}` does not verify on the target ({report:?}; \
                     {source_entries} entries in the source)"
                ),
            });
        }
        verified.push((chain, report.entries_checked));
    }
    target.close();
    Ok(Copied {
        rows,
        chains: verified,
    })
}
