//! The plans SQLite picks for the statements a gate and its neighbours
//! run: every lookup of a workflow's rows in `workflow_steps` (which holds
//! the checkpoints since schema v3) or `audit_log` must search an index
//! leading with `wid` (schema v2), and the `workflow_id` to `wid` step must be one probe of
//! `workflows`' unique index; no table is scanned. The statements are
//! captured from the store's own functions as they run, so the test
//! follows any change to their SQL.

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;

use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, params_from_iter};
use serde_json::Map;

use super::test_db;
use crate::audit::AuditRecord;
use crate::store::rows::{AuditFilter, CheckpointOwner, DueScope, StepRow};
use crate::store::{StoreRead, StoreWrite};
use crate::verdict::Verdict;

thread_local! {
    /// SQL of the statements started on this thread while tracing.
    static STARTED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn remember(event: TraceEvent<'_>) {
    if let TraceEvent::Stmt(stmt, _) = event {
        STARTED.with(|started| started.borrow_mut().push(stmt.sql().into_owned()));
    }
}

/// The distinct statements `operation` runs, in order; trigger programs
/// and transaction control left out.
fn statements(tx: &Transaction, operation: impl FnOnce(&Transaction)) -> Vec<String> {
    STARTED.with(|started| started.borrow_mut().clear());
    tx.trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, Some(remember));
    operation(tx);
    tx.trace_v2(TraceEventCodes::empty(), None);
    let mut found: Vec<String> = Vec::new();
    for sql in STARTED.with(|started| started.take()) {
        let verb = sql.split_whitespace().next().unwrap_or("");
        let data = ["SELECT", "INSERT", "UPDATE", "DELETE"]
            .iter()
            .any(|v| verb.eq_ignore_ascii_case(v));
        if data && !found.contains(&sql) {
            found.push(sql);
        }
    }
    found
}

/// The detail lines of `sql`'s query plan.
fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    // Unbound, as when SQLite plans at prepare time.
    let unbound = vec![Value::Null; stmt.parameter_count()];
    stmt.query_map(params_from_iter(unbound), |row| row.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

type Operation = fn(&Transaction);

/// The hot operations, each with a line its plan must hold. The
/// statements' autoindexes of `workflow_steps`: `_1` is the primary key
/// (wid, step_id), `_2` the unique (wid, step_index).
const OPERATIONS: &[(&str, Operation, &str)] = &[
    (
        "find step",
        |tx| {
            tx.find_step("wf_a", "s1").unwrap();
        },
        "SEARCH workflow_steps USING INDEX sqlite_autoindex_workflow_steps_1 (wid=? AND step_id=?)",
    ),
    (
        "save step",
        |tx| tx.save_step(&step()).unwrap(),
        "SEARCH workflows USING COVERING INDEX sqlite_autoindex_workflows_1 (workflow_id=?)",
    ),
    (
        "save completion",
        |tx| tx.save_completion(&step()).unwrap(),
        "SEARCH workflow_steps USING INDEX sqlite_autoindex_workflow_steps_1 (wid=? AND step_id=?)",
    ),
    (
        "upsert checkpoint",
        |tx| {
            tx.upsert_checkpoint(&step(), owner()).unwrap();
        },
        "SEARCH workflow_steps USING INDEX sqlite_autoindex_workflow_steps_1 (wid=? AND step_id=?)",
    ),
    (
        "count a checkpoint resume",
        |tx| {
            tx.mark_resumed("wf_a", 1, AT).unwrap();
        },
        "SEARCH workflow_steps USING INDEX sqlite_autoindex_workflow_steps_2 (wid=?)",
    ),
    (
        "count steps",
        |tx| {
            tx.count_steps("wf_a").unwrap();
        },
        "SEARCH workflow_steps USING COVERING INDEX sqlite_autoindex_workflow_steps_2 (wid=?)",
    ),
    (
        "step with approval",
        |tx| {
            tx.step_with_approval("wf_a", &["pending"]).unwrap();
        },
        "SEARCH workflow_steps USING INDEX sqlite_autoindex_workflow_steps_2 (wid=?)",
    ),
    (
        "list steps",
        |tx| {
            tx.list_steps("wf_a").unwrap();
        },
        "SEARCH workflow_steps USING INDEX sqlite_autoindex_workflow_steps_2 (wid=?)",
    ),
    (
        "list checkpoints",
        |tx| {
            tx.list_checkpoints("wf_a").unwrap();
        },
        "SEARCH s USING INDEX sqlite_autoindex_workflow_steps_2 (wid=?)",
    ),
    (
        "last resumable checkpoint",
        |tx| {
            tx.last_resumable("wf_a").unwrap();
        },
        "SEARCH s USING INDEX sqlite_autoindex_workflow_steps_2 (wid=?)",
    ),
    (
        "holds of a workflow due",
        |tx| {
            let scope = DueScope::Workflow("wf_a".into());
            tx.any_due(&scope, "2026-03-01T14:00:00.000000Z").unwrap();
        },
        "SEARCH s USING INDEX workflow_steps_one_pending (wid=?)",
    ),
    (
        "audit append",
        |tx| {
            tx.append_audit("acme", audit_record()).unwrap();
        },
        "SEARCH workflows USING COVERING INDEX sqlite_autoindex_workflows_1 (workflow_id=?)",
    ),
    (
        "audit list of a workflow",
        |tx| {
            let filter = AuditFilter {
                workflow_id: Some("wf_a".into()),
                ..AuditFilter::default()
            };
            tx.audit_entries("acme", &filter).unwrap();
        },
        "SEARCH audit_log USING INDEX audit_log_by_workflow (chain=? AND wid=?)",
    ),
    (
        "audit list of a workflow, as a caller of its org sees it",
        |tx| {
            let filter = AuditFilter {
                org: Some("acme-org".into()),
                workflow_id: Some("wf_a".into()),
                ..AuditFilter::default()
            };
            tx.audit_entries("acme", &filter).unwrap();
        },
        "SEARCH audit_log USING INDEX audit_log_by_workflow (chain=? AND wid=?)",
    ),
];

const AT: &str = "2026-03-01T12:00:00.000000Z";

fn step() -> StepRow {
    let mut step = StepRow::new("wf_a", "s1", 1, Verdict::RequireApproval, AT);
    step.step_type = "llm_call".into();
    step.gate_count = 1;
    step.approval_status = Some("pending".into());
    step.expires_at = Some("2026-03-01T13:00:00.000000Z".into());
    step
}

fn owner() -> CheckpointOwner<'static> {
    CheckpointOwner {
        actor: "alice",
        at: AT,
    }
}

fn audit_record() -> AuditRecord {
    AuditRecord {
        at: AT.into(),
        tenant: "acme".into(),
        org: "default".into(),
        actor: "alice".into(),
        kind: "step_gate".into(),
        workflow_id: Some("wf_a".into()),
        step_id: Some("s1".into()),
        decision: Some(Verdict::RequireApproval),
        reason: None,
        details: Map::new(),
    }
}

#[test]
fn workflow_lookups_search_the_wid_indexes() {
    let conn = test_db::db();
    test_db::add_workflow(&conn, "wf_a", "acme");
    // Every row an operation looks for exists, so upserts take their
    // update path and lists return rows.
    let tx = conn.unchecked_transaction().unwrap();
    tx.save_step(&step()).unwrap();
    tx.upsert_checkpoint(&step(), owner()).unwrap();
    tx.append_audit("acme", audit_record()).unwrap();
    for (name, operation, expected) in OPERATIONS {
        let statements = statements(&tx, *operation);
        assert!(!statements.is_empty(), "{name}: nothing ran");
        let plans: Vec<Vec<String>> = statements.iter().map(|sql| plan(&tx, sql)).collect();
        println!("{name}:");
        for (sql, plan) in statements.iter().zip(&plans) {
            let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            println!("  {}", sql.chars().take(100).collect::<String>());
            for line in plan {
                println!("    {line}");
            }
        }
        let lines: Vec<&String> = plans.iter().flatten().collect();
        assert!(
            lines.iter().any(|line| line == expected),
            "{name}: no `{expected}` in {lines:#?}"
        );
        for line in lines {
            // `SCAN CONSTANT ROW` is the outer row of `SELECT EXISTS (…)`.
            let scan = line.starts_with("SCAN") && line != "SCAN CONSTANT ROW";
            assert!(!scan, "{name} scans: {line}");
            if line.contains(" workflows ") {
                assert!(
                    line.ends_with("(workflow_id=?)") || line.contains("INTEGER PRIMARY KEY"),
                    "{name}: {line}"
                );
            }
        }
    }
}
