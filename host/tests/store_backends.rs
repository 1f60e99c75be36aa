//! The store's interface on both backends, through one code path: each
//! check below takes a [`Store`] and runs once on an embedded SQLite
//! database and once on a private PostgreSQL (`common::postgres`). The
//! checks that need several replicas open two stores on one PostgreSQL
//! database, as two `wcp serve` processes would.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use host::audit::{AuditKind, AuditRecord};
use host::store::{
    CheckpointOwner, DueScope, StepRow, Store, StoreError, WorkflowFilter, WorkflowRow,
};
use host::verdict::Verdict;
use serde_json::json;

use common::postgres;

/// A store on a backend, and what keeps its database alive.
struct Opened {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    url: Option<String>,
}

fn sqlite() -> Opened {
    let dir = tempfile::tempdir().unwrap();
    Opened {
        store: Store::open(dir.path()).unwrap(),
        _dir: Some(dir),
        url: None,
    }
}

fn pg() -> Opened {
    let url = postgres::database();
    Opened {
        store: Store::open_postgres(&url).unwrap(),
        _dir: None,
        url: Some(url),
    }
}

/// `check` as a test on each backend.
macro_rules! on_both {
    ($($check:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test] fn $check() { super::$check(super::sqlite()) })*
        }
        mod on_postgres {
            $(#[test] fn $check() { super::$check(super::pg()) })*
        }
    };
}

on_both!(
    workflows_round_trip_and_stay_in_their_tenant,
    steps_round_trip_whole,
    checkpoints_take_an_id_once_and_count_resumes,
    a_failed_job_changes_nothing,
    audit_entries_chain_and_verify,
    pending_holds_are_listed_and_found_due,
);

fn workflow(id: &str, tenant: &str, started_at: &str) -> WorkflowRow {
    WorkflowRow {
        workflow_id: id.into(),
        tenant: tenant.into(),
        org: "default".into(),
        workflow_name: format!("name of {id}"),
        source: "external".into(),
        status: "in_progress".into(),
        current_step_index: 0,
        total_steps: None,
        trace_id: Some("trace-1".into()),
        metadata: json!({"team": "ml", "nested": {"k": [1, 2.5, "x"]}}),
        failure_reason: None,
        abort_reason: None,
        total_cost_usd: 0.0,
        total_tokens_in: 0,
        total_tokens_out: 0,
        started_at: started_at.into(),
        completed_at: None,
    }
}

fn insert(store: &Store, row: WorkflowRow) {
    store.submit(move |tx| tx.insert_workflow(&row)).unwrap();
}

fn record(tenant: &str, workflow_id: Option<&str>, n: usize) -> AuditRecord {
    AuditRecord {
        at: host::clock::now_rfc3339(),
        tenant: tenant.into(),
        org: "default".into(),
        actor: format!("client-{n}"),
        kind: AuditKind::WorkflowCreated.into(),
        workflow_id: workflow_id.map(str::to_owned),
        step_id: None,
        decision: Some(Verdict::Allow),
        reason: Some(format!("entry {n}")),
        details: json!({"n": n}).as_object().cloned().unwrap(),
    }
}

const T0: &str = "2026-03-01T12:00:00.000000Z";
const T1: &str = "2026-03-01T12:00:01.000000Z";

fn workflows_round_trip_and_stay_in_their_tenant(db: Opened) {
    let store = &db.store;
    let first = workflow("wf_a", "acme", T0);
    insert(store, first.clone());
    insert(store, workflow("wf_b", "acme", T1));
    insert(store, workflow("wf_c", "other", T1));
    store
        .submit(|tx| {
            tx.add_totals("wf_a", 10, 20, 0.25)?;
            tx.bump_step_index("wf_a")?;
            tx.end_workflow("wf_b", "failed", T1, Some("boom"))
        })
        .unwrap();
    let (found, missing, page, running) = store
        .read(|conn| {
            Ok((
                conn.find_workflow("wf_a", "acme", "default")?,
                conn.find_workflow("wf_c", "acme", "default")?,
                conn.list_workflows(
                    "acme",
                    "default",
                    &WorkflowFilter {
                        limit: 10,
                        ..WorkflowFilter::default()
                    },
                )?,
                conn.count_running("acme")?,
            ))
        })
        .unwrap();
    let mut expected = first;
    expected.total_tokens_in = 10;
    expected.total_tokens_out = 20;
    expected.total_cost_usd = 0.25;
    expected.current_step_index = 1;
    assert_eq!(found, Some(expected));
    assert_eq!(missing, None, "another tenant's workflow looks missing");
    let ids: Vec<_> = page.0.iter().map(|w| w.workflow_id.as_str()).collect();
    assert_eq!(ids, ["wf_b", "wf_a"], "newest first");
    assert_eq!(page.1, 2);
    assert_eq!(page.0[0].status, "failed");
    assert_eq!(page.0[0].failure_reason.as_deref(), Some("boom"));
    assert_eq!(page.0[0].total_steps, Some(0));
    assert_eq!(running, 1);
}

fn full_step() -> StepRow {
    let mut step = StepRow::new("wf_a", "s1", 1, Verdict::RequireApproval, T0);
    step.step_type = "tool_call".into();
    step.step_name = Some("send".into());
    step.model = Some("gpt".into());
    step.provider = Some("openai".into());
    step.step_input = json!({"to": "a@b.c", "n": 3});
    step.tool_context = Some(json!({"tool_name": "send_email"}));
    step.idempotency_key = Some("key-1".into());
    step.estimated_tokens_in = Some(100);
    step.estimated_tokens_out = Some(200);
    step.estimated_cost_usd = Some(0.5);
    step.decision_reason = Some("needs a human".into());
    step.policies_evaluated = json!([{"policy_id": "global/x", "action": "require_approval"}]);
    step.policies_matched = json!([{"policy_id": "global/x"}]);
    step.gate_count = 2;
    step.approval_status = Some("pending".into());
    step.approval_id = Some("apr_1#1".into());
    step.approval_count = 1;
    step.approval_requested_at = Some(T0.into());
    step.expires_at = Some(T1.into());
    step.completion_count = 1;
    step.completed_at = Some(T1.into());
    step.output = Some(json!({"ok": true}));
    step.tokens_in = Some(7);
    step.tokens_out = Some(8);
    step.cost_usd = Some(0.01);
    step
}

fn steps_round_trip_whole(db: Opened) {
    let store = &db.store;
    insert(store, workflow("wf_a", "acme", T0));
    let step = full_step();
    let saved = step.clone();
    store.submit(move |tx| tx.save_step(&saved)).unwrap();
    let mut changed = step.clone();
    changed.completion_count = 2;
    changed.output = Some(json!({"ok": false}));
    let completion = changed.clone();
    store
        .submit(move |tx| tx.save_completion(&completion))
        .unwrap();
    let (found, all, count, held) = store
        .read(|conn| {
            Ok((
                conn.find_step("wf_a", "s1")?,
                conn.list_steps("wf_a")?,
                conn.count_steps("wf_a")?,
                conn.step_with_approval("wf_a", &["pending"])?,
            ))
        })
        .unwrap();
    assert_eq!(found.as_ref(), Some(&changed));
    assert_eq!(all, vec![changed]);
    assert_eq!(count, 1);
    assert_eq!(held.as_deref(), Some("s1"));
    let unknown = StepRow::new("wf_a", "nope", 2, Verdict::Allow, T0);
    let error = store
        .submit(move |tx| tx.save_completion(&unknown))
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid { .. }), "{error}");
}

fn checkpoints_take_an_id_once_and_count_resumes(db: Opened) {
    let store = &db.store;
    insert(store, workflow("wf_a", "acme", T0));
    let mut step = full_step();
    step.decision = Verdict::Allow;
    let saved = step.clone();
    let owner = |at| CheckpointOwner { actor: "gate", at };
    let first = store
        .submit(move |tx| {
            tx.save_step(&saved)?;
            tx.upsert_checkpoint(&saved, owner(T0))
        })
        .unwrap();
    let again = step.clone();
    let second = store
        .submit(move |tx| tx.upsert_checkpoint(&again, owner(T1)))
        .unwrap();
    assert!(first >= 1);
    assert_eq!(first, second, "a step keeps its checkpoint id");
    let resumes = store
        .submit(move |tx| tx.mark_resumed("wf_a", first, T1))
        .unwrap();
    assert_eq!(resumes, 1);
    let (listed, found, last) = store
        .read(move |conn| {
            Ok((
                conn.list_checkpoints("wf_a")?,
                conn.find_checkpoint("wf_a", first)?,
                conn.last_resumable("wf_a")?,
            ))
        })
        .unwrap();
    assert_eq!(listed.len(), 1);
    let checkpoint = &listed[0];
    assert_eq!(checkpoint.id, first);
    assert_eq!(checkpoint.checkpoint_type, "step_gate");
    assert!(checkpoint.is_resumable);
    assert_eq!(checkpoint.created_at, T1);
    assert_eq!(checkpoint.resume_count, 1);
    assert_eq!(checkpoint.tenant_id, "acme");
    assert_eq!(checkpoint.step_input, step.step_input);
    assert_eq!(found.as_ref(), Some(checkpoint));
    assert_eq!(last.as_ref(), Some(checkpoint));
    let orphan = StepRow::new("wf_a", "nope", 9, Verdict::Allow, T0);
    let error = store
        .submit(move |tx| tx.upsert_checkpoint(&orphan, owner(T0)))
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid { .. }), "{error}");
}

fn a_failed_job_changes_nothing(db: Opened) {
    let store = &db.store;
    let row = workflow("wf_a", "acme", T0);
    let error = store
        .submit(move |tx| -> Result<(), StoreError> {
            tx.insert_workflow(&row)?;
            tx.append_audit("acme", record("acme", Some("wf_a"), 0))?;
            Err(StoreError::Invalid {
                what: "test",
                detail: "refused after writing".into(),
            })
        })
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid { .. }));
    let nested = workflow("wf_b", "acme", T0);
    store
        .submit(move |tx| -> Result<(), StoreError> {
            tx.insert_workflow(&nested)?;
            let inner = host::store::in_savepoint(tx, |tx| -> Result<(), StoreError> {
                tx.bump_step_index("wf_b")?;
                Err(StoreError::Closed)
            });
            assert!(inner.is_err());
            Ok(())
        })
        .unwrap();
    let (gone, kept, chains) = store
        .read(|conn| {
            Ok((
                conn.find_workflow("wf_a", "acme", "default")?,
                conn.find_workflow("wf_b", "acme", "default")?,
                conn.audit_chains()?,
            ))
        })
        .unwrap();
    assert_eq!(gone, None);
    assert_eq!(
        kept.unwrap().current_step_index,
        0,
        "the savepoint rolled back"
    );
    assert!(chains.is_empty());
}

fn audit_entries_chain_and_verify(db: Opened) {
    let store = &db.store;
    insert(store, workflow("wf_a", "acme", T0));
    for n in 0..5 {
        let workflow_id = (n % 2 == 0).then_some("wf_a");
        let entry = record("acme", workflow_id, n);
        store
            .submit(move |tx| tx.append_audit("acme", entry))
            .unwrap();
    }
    let wrong = record("other", None, 9);
    let error = store
        .submit(move |tx| tx.append_audit("acme", wrong))
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid { .. }));
    let (report, all, of_workflow, chains) = store
        .read(|conn| {
            let filter = host::store::AuditFilter::default();
            Ok((
                conn.verify_chain("acme")?,
                conn.audit_entries("acme", &filter)?,
                conn.audit_entries(
                    "acme",
                    &host::store::AuditFilter {
                        workflow_id: Some("wf_a".into()),
                        ..filter.clone()
                    },
                )?,
                conn.audit_chains()?,
            ))
        })
        .unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.entries_checked, 5);
    assert_eq!(all.1, 5);
    let seqs: Vec<u64> = all.0.iter().map(|entry| entry.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(all.0[1].prev_hash, all.0[0].hash);
    assert_eq!(of_workflow.1, 3);
    assert_eq!(chains, ["acme"]);
}

fn pending_holds_are_listed_and_found_due(db: Opened) {
    let store = &db.store;
    insert(store, workflow("wf_a", "acme", T0));
    let step = full_step();
    store.submit(move |tx| tx.save_step(&step)).unwrap();
    let scope = DueScope::Workflow("wf_a".into());
    let (before, after, due, listed) = store
        .read(move |conn| {
            Ok((
                conn.any_due(&scope, T0)?,
                conn.any_due(&scope, T1)?,
                conn.due_holds(&DueScope::All, T1)?,
                conn.list_pending("acme", "default", T0, 10)?,
            ))
        })
        .unwrap();
    assert!(!before, "not due before expires_at");
    assert!(after);
    assert_eq!(due, [("wf_a".to_owned(), "s1".to_owned())]);
    assert_eq!(listed.1, 1);
    assert_eq!(listed.0[0].workflow_name, "name of wf_a");
    assert_eq!(listed.0[0].step.step_id, "s1");
}

/// Two stores on one PostgreSQL database, as two replicas.
fn two_replicas() -> (Store, Store, String) {
    let db = pg();
    let url = db.url.clone().unwrap();
    let second = Store::open_postgres(&url).unwrap();
    (db.store, second, url)
}

#[test]
fn replicas_starting_together_migrate_once() {
    let url = postgres::database();
    let start = Arc::new(Barrier::new(4));
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let (url, start) = (url.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                Store::open_postgres(&url)
            })
        })
        .collect();
    for handle in opened {
        handle.join().unwrap().unwrap();
    }
    let versions = postgres::cluster().sql(&url, "SELECT version FROM wcp_schema ORDER BY 1");
    let expected: Vec<String> = (1..=host::store::postgres::SCHEMA_VERSION)
        .map(|v| v.to_string())
        .collect();
    assert_eq!(versions, expected.join("\n"));
}

#[test]
fn a_database_from_a_newer_wcp_is_refused() {
    let url = postgres::database();
    Store::open_postgres(&url).unwrap().close();
    postgres::cluster().sql(&url, "INSERT INTO wcp_schema (version) VALUES (999)");
    let error = Store::open_postgres(&url).unwrap_err();
    assert!(
        matches!(error, StoreError::SchemaTooNew { found: 999, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("newer"), "{error}");
}

#[test]
fn concurrent_appends_from_replicas_keep_one_chain() {
    let (first, second, _) = two_replicas();
    let start = Arc::new(Barrier::new(6));
    let writers: Vec<_> = (0..6)
        .map(|n| {
            let store = if n % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for i in 0..40 {
                    let entry = record("acme", None, n * 100 + i);
                    store
                        .submit(move |tx| tx.append_audit("acme", entry))
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let report = first.read(|conn| conn.verify_chain("acme")).unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!(report.entries_checked, 240);
}

#[test]
fn the_running_limit_holds_across_replicas() {
    let (first, second, _) = two_replicas();
    const LIMIT: u64 = 5;
    let start = Arc::new(Barrier::new(8));
    let creators: Vec<_> = (0..8)
        .map(|n| {
            let store = if n % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut created = 0;
                for i in 0..5 {
                    let row = workflow(&format!("wf_{n}_{i}"), "acme", T0);
                    let made = store
                        .submit(move |tx| -> Result<bool, StoreError> {
                            if tx.count_running("acme")? >= LIMIT {
                                return Ok(false);
                            }
                            tx.insert_workflow(&row)?;
                            Ok(true)
                        })
                        .unwrap();
                    created += u64::from(made);
                }
                created
            })
        })
        .collect();
    let created: u64 = creators.into_iter().map(|c| c.join().unwrap()).sum();
    let running = first.read(|conn| conn.count_running("acme")).unwrap();
    assert_eq!(created, LIMIT);
    assert_eq!(running, LIMIT);
}

#[test]
fn each_due_hold_is_claimed_by_one_replica() {
    let (first, second, _) = two_replicas();
    insert(&first, workflow("wf_a", "acme", T0));
    let step = full_step();
    first.submit(move |tx| tx.save_step(&step)).unwrap();
    // Both replicas look for due holds at once, each in a transaction that
    // expires what it claims; a claimed hold is skipped by the other.
    let start = Arc::new(Barrier::new(2));
    let claims: Vec<_> = [first.clone(), second.clone()]
        .into_iter()
        .map(|store| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                store
                    .submit(move |tx| -> Result<usize, StoreError> {
                        start.wait();
                        let due = tx.due_holds(&DueScope::All, T1)?;
                        for (workflow_id, step_id) in &due {
                            let mut step = tx.find_step(workflow_id, step_id)?.unwrap();
                            step.approval_status = Some("expired".into());
                            tx.save_step(&step)?;
                        }
                        Ok(due.len())
                    })
                    .unwrap()
            })
        })
        .collect();
    let claimed: usize = claims.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(claimed, 1, "one replica expires the hold");
    let step = first
        .read(|conn| conn.find_step("wf_a", "s1"))
        .unwrap()
        .unwrap();
    assert_eq!(step.approval_status.as_deref(), Some("expired"));
}

#[test]
fn wcp_audit_verify_reads_a_postgres_database() {
    let db = pg();
    for n in 0..3 {
        let entry = record("acme", None, n);
        db.store
            .submit(move |tx| tx.append_audit("acme", entry))
            .unwrap();
    }
    let verify = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wcp"))
            .args(["audit", "verify", "--database-url", url])
            .env_remove("WCP_DATA_DIR")
            .output()
            .unwrap()
    };
    let out = verify(db.url.as_deref().unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "ok: chain acme, 3 entries");
    // A database no wcp has migrated is refused, and nothing is created.
    let empty = postgres::database();
    let out = verify(&empty);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no wcp schema"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tables = postgres::cluster().sql(
        &empty,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    );
    assert_eq!(tables, "0");
}

/// PostgreSQL stops under a running server and comes back: meanwhile every
/// request, `/ready` included, is a 503 with `Retry-After` (never a 500),
/// and the server recovers by itself. The cluster is this test's own, so
/// stopping it disturbs no other test.
#[tokio::test]
async fn requests_get_503_while_the_database_is_down_and_recover_after() {
    use axum::http::{Method, StatusCode};
    let cluster = postgres::Cluster::start(false);
    let url = cluster.create_database();
    let store = Store::open_postgres(&url).unwrap();
    let app = common::app_on(
        store,
        common::Database::Postgres(url),
        tempfile::tempdir().unwrap(),
        host::config::ServeConfig::default(),
    );
    let created = app
        .send(
            Method::POST,
            "/api/v1/workflows",
            None,
            r#"{"workflow_name":"w"}"#,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json()["workflow_id"].as_str().unwrap().to_owned();
    let gate = format!("/api/v1/workflows/{id}/steps/s1/gate");
    let body = r#"{"step_type":"llm_call"}"#;

    cluster.stop();
    for (method, uri, body) in [
        (Method::POST, gate.as_str(), body),
        (Method::GET, "/ready", ""),
        (Method::GET, "/api/v1/workflows", ""),
    ] {
        let answer = app.send(method, uri, None, body).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert_eq!(answer.json()["code"], "DATABASE_UNAVAILABLE", "{uri}");
        assert_eq!(answer.headers["retry-after"], "1", "{uri}");
    }

    cluster.resume();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.send(Method::GET, "/ready", None, "").await.status != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let answer = app.send(Method::POST, &gate, None, body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["decision"], "allow");
}

#[test]
fn wcp_store_copy_moves_a_sqlite_deployment_into_postgres_and_verifies_it() {
    // A SQLite deployment with workflows, a checkpointed step and a chain.
    let dir = tempfile::tempdir().unwrap();
    let source = Store::open(dir.path()).unwrap();
    insert(&source, workflow("wf_a", "acme", T0));
    insert(&source, workflow("wf_b", "acme", T1));
    let step = full_step();
    let saved = step.clone();
    let checkpoint = source
        .submit(move |tx| {
            tx.save_step(&saved)?;
            tx.upsert_checkpoint(
                &saved,
                CheckpointOwner {
                    actor: "gate",
                    at: T0,
                },
            )
        })
        .unwrap();
    for n in 0..4 {
        let entry = record("acme", Some("wf_a"), n);
        source
            .submit(move |tx| tx.append_audit("acme", entry))
            .unwrap();
    }
    source.close();

    let url = postgres::database();
    let copy = |to: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wcp"))
            .args(["store", "copy", "--from"])
            .arg(dir.path())
            .args(["--to", to])
            .output()
            .unwrap()
    };
    let out = copy(&url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("copied 2 rows of workflows"), "{stdout}");
    assert!(
        stdout.contains("copied 1 rows of workflow_steps"),
        "{stdout}"
    );
    assert!(stdout.contains("ok: chain acme, 4 entries"), "{stdout}");

    // The copy serves as the original did, and goes on from it.
    let target = Store::open_postgres(&url).unwrap();
    let (found, stored, ckpt, chain) = target
        .read(move |conn| {
            Ok((
                conn.find_workflow("wf_a", "acme", "default")?,
                conn.find_step("wf_a", "s1")?,
                conn.find_checkpoint("wf_a", checkpoint)?,
                conn.audit_entries("acme", &host::store::AuditFilter::default())?,
            ))
        })
        .unwrap();
    assert_eq!(found, Some(workflow("wf_a", "acme", T0)));
    assert_eq!(stored, Some(step));
    assert!(ckpt.is_some(), "checkpoint ids are kept");
    assert_eq!(chain.1, 4);
    insert(&target, workflow("wf_c", "acme", T1));
    let next = record("acme", None, 9);
    let entry = target
        .submit(move |tx| tx.append_audit("acme", next))
        .unwrap();
    assert_eq!(entry.seq, 5, "the chain goes on from the copied head");
    let mut later = StepRow::new("wf_c", "s1", 1, Verdict::Allow, T1);
    later.step_type = "llm_call".into();
    later.gate_count = 1;
    let saved = later.clone();
    let id = target
        .submit(move |tx| {
            tx.save_step(&saved)?;
            tx.upsert_checkpoint(
                &saved,
                CheckpointOwner {
                    actor: "gate",
                    at: T1,
                },
            )
        })
        .unwrap();
    assert!(id > checkpoint, "new checkpoint ids follow the copied ones");

    // A target that already holds data is refused, and keeps what it had.
    let out = copy(&url);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already holds"), "{stderr}");
    let count = postgres::cluster().sql(&url, "SELECT count(*) FROM workflows");
    assert_eq!(count, "3");
}
