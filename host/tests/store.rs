//! The store on a real data directory: opening, durability across reopen,
//! concurrent writers, the schema's constraints, and `wcp audit verify` as
//! a user runs it.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use host::audit::{AuditKind, AuditRecord, VerifyReport};
use host::store::sqlite::{SqlContext, Sqlite, audit};
use host::store::{self, SCHEMA_VERSION, Store, StoreError};
use rusqlite::{Connection, Transaction};
use serde_json::json;

fn record(tenant: &str, n: usize) -> AuditRecord {
    AuditRecord {
        at: host::clock::now_rfc3339(),
        tenant: tenant.into(),
        org: "default".into(),
        actor: format!("client-{n}"),
        kind: AuditKind::WorkflowCreated.into(),
        workflow_id: Some(format!("wf_{n}")),
        step_id: None,
        decision: None,
        reason: None,
        details: json!({"workflow_name": format!("w{n}")})
            .as_object()
            .cloned()
            .unwrap(),
    }
}

fn append_entries(store: &Store, tenant: &str, count: usize) {
    for n in 0..count {
        let tenant = tenant.to_owned();
        db(store)
            .writer()
            .submit(move |tx| audit::append(tx, &tenant, record(&tenant, n)))
            .unwrap();
    }
}

fn verify(store: &Store, chain: &'static str) -> VerifyReport {
    db(store)
        .read(move |conn| audit::verify_chain(conn, chain))
        .unwrap()
}

/// The store's SQLite backend, whose SQL these tests read and write.
fn db(store: &Store) -> &Sqlite {
    store.sqlite().expect("the SQLite backend")
}

fn insert_workflow(tx: &Transaction, id: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO workflows (workflow_id, tenant, org, workflow_name, source, status, started_at)
         VALUES (?1, 'acme', 'default', 'w', 'external', 'in_progress', '2026-03-01T12:00:00.000000Z')",
        [id],
    )
    .context("inserting a workflow")?;
    Ok(())
}

fn insert_step(
    tx: &Transaction,
    workflow: &str,
    step: &str,
    index: i64,
    pending: bool,
) -> Result<(), StoreError> {
    // The store's way of keying a step: the workflow's wid, looked up by id.
    tx.execute(
        "INSERT INTO workflow_steps (wid, workflow_id, step_id, step_index, step_type, decision,
                                     last_decision, first_attempt_at, gate_checked_at,
                                     approval_status)
         VALUES ((SELECT wid FROM workflows WHERE workflow_id = ?1), ?1, ?2, ?3, 'llm_call',
                 'require_approval', 'require_approval', '2026-03-01T12:00:00.000000Z',
                 '2026-03-01T12:00:00.000000Z', ?4)",
        rusqlite::params![workflow, step, index, pending.then_some("pending")],
    )
    .context("inserting a step")?;
    Ok(())
}

#[test]
fn open_creates_the_data_dir_and_a_wal_database_at_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested/data");
    let store = Store::open(&data_dir).unwrap();
    assert_eq!(db(&store).path(), data_dir.join("wcp.db"));
    let (mode, version): (String, i64) = db(&store)
        .read(|conn| {
            let mode = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .context("mode")?;
            let version = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .context("version")?;
            Ok((mode, version))
        })
        .unwrap();
    assert_eq!((mode.as_str(), version), ("wal", SCHEMA_VERSION));
}

#[test]
fn jobs_from_many_threads_all_commit_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                append_entries(&store, if t % 2 == 0 { "acme" } else { "globex" }, 25)
            })
        })
        .collect();
    // And from async code, concurrently.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let jobs: Vec<_> = (0..50)
            .map(|n| {
                db(&store)
                    .writer()
                    .submit_async(move |tx| audit::append(tx, "acme", record("acme", n)))
            })
            .collect();
        for job in jobs {
            job.await.unwrap();
        }
    });
    for thread in threads {
        thread.join().unwrap();
    }
    store.close();

    let reopened = Store::open(dir.path()).unwrap();
    assert_eq!(
        verify(&reopened, "acme"),
        VerifyReport {
            valid: true,
            entries_checked: 150,
            first_bad_seq: None
        }
    );
    assert_eq!(verify(&reopened, "globex").entries_checked, 100);
}

#[test]
fn a_read_after_an_answered_write_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for n in 0..20 {
        db(&store)
            .writer()
            .submit(move |tx| insert_workflow(tx, &format!("wf_{n}")))
            .unwrap();
        let count: i64 = db(&store)
            .read(|conn| {
                conn.query_row("SELECT count(*) FROM workflows", [], |r| r.get(0))
                    .context("count")
            })
            .unwrap();
        assert_eq!(count, n + 1);
    }
}

#[test]
fn reopening_keeps_data_and_does_not_migrate_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    db(&store)
        .writer()
        .submit(|tx| insert_workflow(tx, "wf_1"))
        .unwrap();
    store.close();
    // A re-run of v1 would fail on CREATE TABLE of existing tables.
    let store = Store::open(dir.path()).unwrap();
    let count: i64 = db(&store)
        .read(|conn| {
            conn.query_row("SELECT count(*) FROM workflows", [], |r| r.get(0))
                .context("count")
        })
        .unwrap();
    assert_eq!(count, 1);
}

#[test]
fn a_database_from_a_newer_wcp_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("wcp.db")).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let error = Store::open(dir.path()).unwrap_err();
    assert!(matches!(error, StoreError::SchemaTooNew { .. }), "{error}");
    assert!(error.to_string().contains("newer than"), "{error}");
    let error = store::open_read_only(dir.path())
        .err()
        .expect("a newer schema is refused");
    assert!(matches!(error, StoreError::SchemaTooNew { .. }), "{error}");
}

#[test]
fn the_schema_enforces_its_invariants() {
    type Write = fn(&Transaction) -> Result<(), StoreError>;
    let cases: [(&str, Write, &str); 6] = [
        (
            "step of an unknown workflow id",
            |tx| insert_step(tx, "wf_none", "s1", 1, false),
            "NOT NULL",
        ),
        (
            "step of a missing wid",
            |tx| {
                tx.execute(
                    "INSERT INTO workflow_steps (wid, workflow_id, step_id, step_index, step_type,
                         decision, last_decision, first_attempt_at, gate_checked_at)
                     VALUES (99, 'wf_1', 's9', 9, 'llm_call', 'allow', 'allow', 't', 't')",
                    [],
                )
                .map(drop)
                .context("insert")
            },
            "FOREIGN KEY",
        ),
        (
            "same step twice",
            |tx| insert_step(tx, "wf_1", "s1", 2, false),
            "UNIQUE",
        ),
        (
            "two steps at one index",
            |tx| insert_step(tx, "wf_1", "s2", 1, false),
            "UNIQUE",
        ),
        (
            "a second pending step",
            |tx| insert_step(tx, "wf_1", "s2", 2, true),
            "UNIQUE",
        ),
        (
            "unknown status",
            |tx| {
                tx.execute("UPDATE workflows SET status = 'paused'", [])
                    .map(drop)
                    .context("update")
            },
            "CHECK",
        ),
    ];
    for (name, write, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        db(&store)
            .writer()
            .submit(|tx| {
                insert_workflow(tx, "wf_1")?;
                insert_step(tx, "wf_1", "s1", 1, true)
            })
            .unwrap();
        let error = db(&store).writer().submit(write).unwrap_err();
        assert!(error.to_string().contains(expected), "{name}: {error}");
    }
}

#[test]
fn checkpoint_type_and_resumability_follow_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rows: Vec<(String, String, bool)> = db(&store).writer()
        .submit(|tx| {
            insert_workflow(tx, "wf_1")?;
            for (index, decision) in [(1, "allow"), (2, "require_approval"), (3, "block")] {
                let step = format!("s{index}");
                insert_step(tx, "wf_1", &step, index, false)?;
                // A checkpoint is part of its step's row (schema v3).
                tx.execute(
                    "UPDATE workflow_steps
                     SET decision = ?2, checkpoint_id = ?3, checkpoint_client_id = 'alice',
                         checkpoint_at = '2026-03-01T12:00:00.000000Z'
                     WHERE step_id = ?1",
                    rusqlite::params![step, decision, index],
                )
                .context("checkpoint")?;
            }
            let mut stmt = tx
                .prepare("SELECT gate_decision, checkpoint_type, is_resumable FROM checkpoints ORDER BY step_index")
                .context("select")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(|rows| rows.collect())
                .context("select")?;
            Ok::<_, StoreError>(rows)
        })
        .unwrap();
    let expected = [
        ("allow", "step_gate", true),
        ("require_approval", "approval_boundary", true),
        ("block", "step_gate", false),
    ];
    let rows: Vec<_> = rows
        .iter()
        .map(|(d, t, r)| (d.as_str(), t.as_str(), *r))
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn dropping_the_last_clone_drains_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let jobs: Vec<_> = (0..30)
        .map(|n| {
            db(&store)
                .writer()
                .submit_async(move |tx| audit::append(tx, "acme", record("acme", n)))
        })
        .collect();
    drop(jobs); // Nobody waits for the answers ...
    drop(store); // ... and the store goes away at once.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        verify(&store, "acme").entries_checked,
        30,
        "every queued job was committed"
    );
}

const KILL_CHILD_DIR: &str = "WCP_TEST_KILL_CHILD_DIR";

/// Not a test by itself (hence ignored): the child process of
/// `acknowledged_writes_survive_kill_9`, which runs it with `--ignored` and
/// sets the variable. It writes and reports each acknowledged write until
/// it is killed.
#[test]
#[ignore = "the child process of acknowledged_writes_survive_kill_9"]
fn kill_9_child_helper() {
    let Some(dir) = std::env::var_os(KILL_CHILD_DIR) else {
        return;
    };
    let store = Store::open(Path::new(&dir)).unwrap();
    for n in 1..=100_000 {
        db(&store)
            .writer()
            .submit(move |tx| audit::append(tx, "acme", record("acme", n)))
            .unwrap();
        println!("acked {n}");
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_9_child_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL_CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(n) = line.unwrap().strip_prefix("acked ") {
            acked = n.parse().unwrap();
            if acked >= 200 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix: no destructors, no shutdown.
    child.wait().unwrap();
    assert_eq!(acked, 200, "the child stopped early");
    let store = Store::open(dir.path()).unwrap();
    let report = verify(&store, "acme");
    assert!(report.valid, "{report:?}");
    assert!(
        report.entries_checked >= acked,
        "{} acknowledged, {} kept",
        acked,
        report.entries_checked
    );
}

// --- `wcp audit verify` -----------------------------------------------------

fn wcp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wcp"))
        .args(args)
        .env("WCP_LOG", "error")
        .env_remove("WCP_DATA_DIR")
        .output()
        .unwrap()
}

fn verify_cli(data_dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["audit", "verify", "--data-dir", data_dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = wcp(&args);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn data_dir_with_chains() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    append_entries(&store, "acme", 12);
    append_entries(&store, "globex", 3);
    store.close();
    dir
}

#[test]
fn audit_verify_exits_0_and_lists_every_intact_chain() {
    let dir = data_dir_with_chains();
    let (code, stdout, stderr) = verify_cli(dir.path(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "ok: chain acme, 12 entries\nok: chain globex, 3 entries\n"
    );
    let (code, stdout, _) = verify_cli(dir.path(), &["--scope", "globex"]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "ok: chain globex, 3 entries\n")
    );
}

#[test]
fn audit_verify_exits_1_naming_the_first_bad_seq_of_a_tampered_chain() {
    let dir = data_dir_with_chains();
    let conn = Connection::open(dir.path().join("wcp.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_log_no_update;
         UPDATE audit_log SET actor = 'someone-else' WHERE chain = 'acme' AND seq = 7;",
    )
    .unwrap();
    drop(conn);
    let (code, stdout, stderr) = verify_cli(dir.path(), &["--all"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stdout,
        "BROKEN: chain acme, first bad entry seq 7 (of 7 checked)\nok: chain globex, 3 entries\n"
    );
}

#[test]
fn audit_verify_exits_2_with_one_line_when_there_is_nothing_to_read() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_db = tempfile::tempdir().unwrap();
    std::fs::write(not_a_db.path().join("wcp.db"), b"this is not sqlite").unwrap();
    let cases = [
        ("no data dir", dir.path().join("missing"), "does not exist"),
        ("no database", dir.path().to_owned(), "does not exist"),
        (
            "not a database",
            not_a_db.path().to_owned(),
            "not a database",
        ),
    ];
    for (name, data_dir, expected) in cases {
        let (code, stdout, stderr) = verify_cli(&data_dir, &[]);
        assert_eq!(code, Some(2), "{name}: {stdout}{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expected),
            "{name}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
    }
    assert!(
        !dir.path().join("wcp.db").exists(),
        "an offline check creates nothing"
    );
}

#[test]
fn audit_verify_refuses_scope_together_with_all() {
    let dir = data_dir_with_chains();
    let (code, _, stderr) = verify_cli(dir.path(), &["--scope", "acme", "--all"]);
    assert_eq!(code, Some(2), "{stderr}");
}
