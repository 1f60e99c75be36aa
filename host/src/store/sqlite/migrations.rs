//! The schema, versioned by SQLite's `user_version` through
//! `rusqlite_migration`: each migration runs in one transaction, so a
//! database is always at exactly one version.
//!
//! Each version's SQL is a file of `sqlite/migrations/`, read in at build
//! time. Adding a version: add its file, append an `M::up` to
//! [`MIGRATIONS`], bump nothing else ([`SCHEMA_VERSION`] follows), and add
//! a row to the upgrade test's fixtures seeding data of the previous
//! version.
//!
//! Conventions of every table: `STRICT` (a value of the wrong type is an
//! error, not silently stored); timestamps are TEXT in the API's format
//! (`2026-03-01T12:00:00.123456Z`), fixed width, so text order is time
//! order; JSON is TEXT checked by `json_type`.
//!
//! A table's current shape is its last `CREATE TABLE` in those files, plus later
//! `ALTER TABLE`s: v2 rebuilt `workflows`, `workflow_steps` and
//! `checkpoints` around the integer key `wid`, and added `wid` to
//! `audit_log`; v3 folded `checkpoints` into `workflow_steps`, leaving a
//! view of that name.

use std::path::Path;

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use super::error::SqlContext;
use crate::store::StoreError;

/// Schema v1: everything contract v0.1 needs.
const V1: &str = include_str!("migrations/0001_schema.sql");

/// Schema v2: an integer key, `wid`, for workflows, leading every index of
/// their child tables. The API keeps `workflow_id`; the store turns it into
/// `wid` with one probe of `workflows`' unique index
/// (`(SELECT wid FROM workflows WHERE workflow_id = ?)`).
///
/// Why: `workflow_id` is `wf_<uuidv4>`, random, and every child index led
/// with it, so each gate wrote about five random index leaf pages, and each
/// commit copied every touched 4 KB page into the WAL (~25 KB a write job).
/// `wid` grows with insertion order, so the rows of the workflows running
/// now sit in the newest pages of each index, which a batch of gates shares.
///
/// How: SQLite's rebuild of a table (lang_altertable.html#otheralter),
/// done with foreign keys ON, as the writer connection has them (the pragma
/// cannot change inside the migration's transaction): the new tables are
/// created as `*_new`, referencing each other, and filled; the old ones are
/// dropped children first, so no drop deletes a row something still
/// references; renaming the new ones rewrites the `REFERENCES` clauses that
/// name them. The migration runs `PRAGMA foreign_key_check` before it
/// commits ([`M::foreign_key_check`]).
const V2: &str = include_str!("migrations/0002_integer_workflow_keys.sql");

/// Schema v3: a checkpoint is part of its step's row.
///
/// Why: a checkpoint is "upserted by each fresh evaluation" (contract
/// §2.13), so every field it shows but five was a copy of the step row
/// written in the same transaction: the request, the decision and the
/// policy runs, JSON included. Writing that copy, with its three indexes,
/// was a large part of the store writer's work per gate (BENCHMARKS.md,
/// "Gates over HTTP"). Now the step row keeps the checkpoint's own fields,
/// and the view `checkpoints` shows what the table did, under the same
/// column names.
///
/// Ids stay as they were and are never reused: the counter starts from the
/// table's AUTOINCREMENT counter, not from the highest id left.
const V3: &str = include_str!("migrations/0003_checkpoints_in_steps.sql");

/// Every schema version in order; index 0 takes an empty database to v1.
/// v2 rebuilds tables, so it checks foreign keys before committing.
const MIGRATIONS: &[M<'static>] = &[M::up(V1), M::up(V2).foreign_key_check(), M::up(V3)];

/// The schema version this binary writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
}

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .context("reading the schema version")
}

/// Brings the database to [`SCHEMA_VERSION`], refusing one that is newer.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    // Checked here rather than left to rusqlite_migration so the message
    // says what to do about it.
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            database: path.display().to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    migrations()
        .to_latest(conn)
        .map_err(|source| StoreError::Migrate {
            database: path.display().to_string(),
            source: Box::new(source),
        })
}

/// For read-only opens, which cannot migrate: the schema must exist and
/// not be newer than this binary. Returns the version found.
pub(crate) fn check_readable(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    match user_version(conn)? {
        0 => Err(StoreError::NoSchema {
            database: path.display().to_string(),
        }),
        found if found > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            database: path.display().to_string(),
            found,
            supported: SCHEMA_VERSION,
        }),
        found => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use rusqlite::Connection;
    use rusqlite::types::Value;

    use super::*;

    /// Data as it looked at one schema version, seeded before upgrading
    /// from it and checked afterwards. Beyond `survived`, the upgrade test
    /// checks that every table of the old version still holds every value
    /// it had, under the same column names (v3's `checkpoints` is a view
    /// over the steps, read the same way). Adding v4: add `from: 3`
    /// seeding v3 rows.
    struct Fixture {
        from: usize,
        /// Writes rows as that version stores them.
        seed: fn(&Connection),
        /// Checks, at the latest version, what the upgrade must have done
        /// beyond keeping the values.
        survived: fn(&mut Connection),
    }

    const FIXTURES: &[Fixture] = &[
        Fixture {
            from: 0,
            seed: |_| {},
            survived: |_| {},
        },
        Fixture {
            from: 1,
            seed: v1::seed,
            survived: v1::survived,
        },
        Fixture {
            from: 2,
            seed: v2::seed,
            survived: v2::survived,
        },
    ];

    /// A v1 database in use: two workflows (`wf_b` registered first), two
    /// steps of `wf_a`, one held for approval, a checkpoint, and an audit
    /// chain mentioning both workflows and a policy.
    mod v1 {
        use rusqlite::Connection;
        use serde_json::json;

        use crate::audit::{AuditEntry, AuditRecord, GENESIS_HASH};
        use crate::store::CheckpointOwner;
        use crate::store::StepRow;
        use crate::store::StoreWrite;
        use crate::store::sqlite::audit;
        use crate::store::sqlite::checkpoints;
        use crate::store::sqlite::steps;
        use crate::verdict::Verdict;

        /// Entries of the `acme` chain: (workflow, kind).
        const AUDIT: [(Option<&str>, &str); 4] = [
            (Some("wf_b"), "workflow_created"),
            (Some("wf_a"), "workflow_created"),
            (None, "policy_loaded"),
            (Some("wf_a"), "step_gate"),
        ];

        pub(super) fn seed(conn: &Connection) {
            conn.execute_batch(
                r#"
                INSERT INTO workflows (workflow_id, tenant, org, workflow_name, source, status,
                    current_step_index, trace_id, metadata, total_cost_usd, total_tokens_in,
                    total_tokens_out, started_at)
                VALUES ('wf_b', 'acme', 'default', 'older', 'langgraph', 'in_progress',
                        0, NULL, '{}', 0, 0, 0, '2026-03-01T12:00:00.000000Z'),
                       ('wf_a', 'acme', 'default', 'newer', 'external', 'in_progress',
                        2, 'trace-1', '{"team":"x"}', 0.25, 100, 50,
                        '2026-03-01T12:00:01.000000Z');
                INSERT INTO workflow_steps (workflow_id, step_id, step_index, step_type, step_name,
                    model, step_input, decision, decision_reason, policies_evaluated,
                    last_decision, gate_count, first_attempt_at, gate_checked_at,
                    completion_count, completed_at, output, tokens_in, tokens_out, cost_usd)
                VALUES ('wf_a', 's1', 1, 'llm_call', 'draft', 'gpt', '{"prompt":"hi"}', 'allow',
                        NULL, '[{"policy":"p"}]', 'allow', 2, '2026-03-01T12:00:02.000000Z',
                        '2026-03-01T12:00:03.000000Z', 1, '2026-03-01T12:00:04.000000Z',
                        '{"text":"ok"}', 100, 50, 0.25);
                INSERT INTO workflow_steps (workflow_id, step_id, step_index, step_type,
                    decision, decision_reason, last_decision, first_attempt_at, gate_checked_at,
                    approval_status, approval_id, approval_count, approval_requested_at,
                    expires_at)
                VALUES ('wf_a', 's2', 2, 'tool_call', 'require_approval', 'needs a human',
                        'require_approval', '2026-03-01T12:00:05.000000Z',
                        '2026-03-01T12:00:05.000000Z', 'pending', 'apr_1#1', 1,
                        '2026-03-01T12:00:05.000000Z', '2026-03-01T13:00:05.000000Z');
                INSERT INTO checkpoints (workflow_id, step_id, step_index, step_type, step_name,
                    gate_decision, policies_evaluated, step_input, model, resume_count,
                    last_resumed_at, tenant_id, org_id, client_id, created_at)
                VALUES ('wf_a', 's1', 1, 'llm_call', 'draft', 'allow', '[{"policy":"p"}]',
                        '{"prompt":"hi"}', 'gpt', 1, '2026-03-01T12:00:06.000000Z', 'acme',
                        'default', 'alice', '2026-03-01T12:00:02.000000Z');
                -- Hands out id 2, then loses it: the counter (2) is ahead of
                -- the highest id left (1), and id 2 must never come back.
                INSERT INTO checkpoints (workflow_id, step_id, step_index, step_type,
                    gate_decision, tenant_id, org_id, client_id, created_at)
                VALUES ('wf_a', 's2', 2, 'tool_call', 'require_approval', 'acme', 'default',
                        'alice', '2026-03-01T12:00:05.000000Z');
                DELETE FROM checkpoints WHERE id = 2;
                "#,
            )
            .unwrap();
            // The chain, hashed as append does, stored in v1's columns
            // from the entries as the API shows them.
            let mut chain: Vec<AuditEntry> = Vec::new();
            for (seq, (workflow_id, kind)) in (1..).zip(AUDIT) {
                let prev_hash = chain.last().map_or(GENESIS_HASH, |entry| &entry.hash);
                let entry = AuditRecord {
                    at: format!("2026-03-01T12:00:0{seq}.000000Z"),
                    tenant: "acme".into(),
                    org: "default".into(),
                    actor: "alice".into(),
                    kind: kind.into(),
                    workflow_id: workflow_id.map(Into::into),
                    step_id: (kind == "step_gate").then(|| "s1".into()),
                    decision: (kind == "step_gate").then_some(Verdict::Allow),
                    reason: None,
                    details: json!({"n": seq}).as_object().cloned().unwrap(),
                }
                .seal(seq, prev_hash);
                chain.push(entry);
            }
            conn.execute(
                "INSERT INTO audit_log (chain, seq, at, tenant, org, actor, kind, workflow_id,
                     step_id, decision, reason, details, prev_hash, hash)
                 SELECT e ->> 'tenant', e ->> 'seq', e ->> 'at', e ->> 'tenant', e ->> 'org',
                     e ->> 'actor', e ->> 'kind', e ->> 'workflow_id', e ->> 'step_id',
                     e ->> 'decision', e ->> 'reason', e -> 'details', e ->> 'prev_hash',
                     e ->> 'hash'
                 FROM (SELECT value AS e FROM json_each(?1))",
                [serde_json::to_string(&chain).unwrap()],
            )
            .unwrap();
        }

        fn ints(conn: &Connection, sql: &str) -> Vec<i64> {
            let mut stmt = conn.prepare(sql).unwrap();
            stmt.query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }

        pub(super) fn survived(conn: &mut Connection) {
            // wid follows registration order, not the text of the id.
            let order: Vec<String> = {
                let mut stmt = conn
                    .prepare("SELECT workflow_id FROM workflows ORDER BY wid")
                    .unwrap();
                stmt.query_map([], |row| row.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            };
            assert_eq!(order, ["wf_b", "wf_a"]);
            // Every row's wid is its own workflow's, audit entries
            // included; entries about no workflow have none.
            for table in ["workflow_steps", "checkpoints", "audit_log"] {
                let mismatched = ints(
                    conn,
                    &format!(
                        "SELECT count(*) FROM {table} t WHERE t.wid IS NOT \
                         (SELECT w.wid FROM workflows w WHERE w.workflow_id = t.workflow_id)"
                    ),
                );
                assert_eq!(mismatched, [0], "{table}");
            }
            assert_eq!(
                ints(
                    conn,
                    "SELECT seq FROM audit_log WHERE wid IS NOT NULL ORDER BY seq"
                ),
                [1, 2, 4]
            );

            // The store reads the migrated rows through wid.
            let held = steps::find_step(conn, "wf_a", "s2").unwrap().unwrap();
            assert_eq!(held.approval_status.as_deref(), Some("pending"));
            assert_eq!(steps::count_steps(conn, "wf_a").unwrap(), 2);
            let checkpoint = checkpoints::last_resumable(conn, "wf_a").unwrap().unwrap();
            assert_eq!((checkpoint.id, checkpoint.resume_count), (1, 1));

            // The chain still verifies: wid is not part of the hash.
            let report = audit::verify_chain(conn, "acme").unwrap();
            assert!(report.valid && report.entries_checked == 4, "{report:?}");
            let (entries, total) = audit::list(
                conn,
                "acme",
                &crate::store::AuditFilter {
                    workflow_id: Some("wf_a".into()),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(total, 2);
            assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 4]);
            // The trigger dropped for the backfill is back.
            let error = conn
                .execute("UPDATE audit_log SET reason = 'x'", [])
                .unwrap_err();
            assert!(error.to_string().contains("append-only"), "{error}");

            // New writes: a checkpoint takes an id past the old counter,
            // never the lost id 2, and the chain grows on its old head.
            let tx = conn.transaction().unwrap();
            let mut step = StepRow::new(
                "wf_a",
                "s3",
                3,
                Verdict::Allow,
                "2026-03-01T12:01:00.000000Z",
            );
            step.step_type = "llm_call".into();
            step.gate_count = 1;
            tx.save_step(&step).unwrap();
            let owner = CheckpointOwner {
                actor: "alice",
                at: "2026-03-01T12:01:00.000000Z",
            };
            assert_eq!(tx.upsert_checkpoint(&step, owner).unwrap(), 3);
            let mut record = audit::list(&tx, "acme", &Default::default()).unwrap().0[3]
                .record
                .clone();
            record.at = "2026-03-01T12:01:00.000000Z".into();
            assert_eq!(tx.append_audit("acme", record).unwrap().seq, 5);
            assert!(audit::verify_chain(&tx, "acme").unwrap().valid);
            tx.commit().unwrap();
        }
    }

    /// A v2 database in use: one workflow with an allowed step resumed
    /// twice and a blocked step, each with its checkpoint, and a counter
    /// past the highest id (id 7 was handed out and lost). That the view
    /// shows every checkpoint column as the table had it is the upgrade
    /// test's own check.
    mod v2 {
        use rusqlite::Connection;

        use crate::store::CheckpointOwner;
        use crate::store::StepRow;
        use crate::store::StoreWrite;
        use crate::store::sqlite::checkpoints;
        use crate::verdict::Verdict;

        pub(super) fn seed(conn: &Connection) {
            conn.execute_batch(
                r#"
                INSERT INTO workflows (wid, workflow_id, tenant, org, workflow_name, source,
                    status, current_step_index, started_at)
                VALUES (1, 'wf_c', 'acme', 'default', 'resumed', 'external', 'in_progress', 2,
                        '2026-03-02T12:00:00.000000Z');
                INSERT INTO workflow_steps (wid, workflow_id, step_id, step_index, step_type,
                    step_name, model, provider, step_input, tool_context, decision,
                    decision_reason, policies_evaluated, policies_matched, last_decision,
                    gate_count, first_attempt_at, gate_checked_at)
                VALUES (1, 'wf_c', 's1', 1, 'tool_call', 'send', 'gpt', 'openai',
                        '{"to":"a@b.c"}', '{"tool_name":"send_email"}', 'allow', 'fine',
                        '[{"policy_id":"global/p","action":"allow"}]', '[]', 'allow', 3,
                        '2026-03-02T12:00:01.000000Z', '2026-03-02T12:00:09.000000Z'),
                       (1, 'wf_c', 's2', 2, 'llm_call', NULL, NULL, NULL, '{}', NULL, 'block',
                        'no', '[{"policy_id":"global/q","action":"block"}]',
                        '[{"policy_id":"global/q","action":"block"}]', 'block', 1,
                        '2026-03-02T12:00:02.000000Z', '2026-03-02T12:00:02.000000Z');
                INSERT INTO checkpoints (id, wid, workflow_id, step_id, step_index, step_type,
                    step_name, gate_decision, gate_reason, policies_evaluated, policies_matched,
                    step_input, tool_context, model, provider, resume_count, last_resumed_at,
                    tenant_id, org_id, client_id, created_at)
                VALUES (5, 1, 'wf_c', 's1', 1, 'tool_call', 'send', 'allow', 'fine',
                        '[{"policy_id":"global/p","action":"allow"}]', '[]', '{"to":"a@b.c"}',
                        '{"tool_name":"send_email"}', 'gpt', 'openai', 2,
                        '2026-03-02T12:00:08.000000Z', 'acme', 'default', 'bob',
                        '2026-03-02T12:00:07.000000Z'),
                       (6, 1, 'wf_c', 's2', 2, 'llm_call', NULL, 'block', 'no',
                        '[{"policy_id":"global/q","action":"block"}]',
                        '[{"policy_id":"global/q","action":"block"}]', '{}', NULL, NULL, NULL,
                        0, NULL, 'acme', 'default', 'carol', '2026-03-02T12:00:02.000000Z');
                UPDATE sqlite_sequence SET seq = 7 WHERE name = 'checkpoints';
                "#,
            )
            .unwrap();
        }

        pub(super) fn survived(conn: &mut Connection) {
            // The blocked step's checkpoint is not resumable.
            let last = checkpoints::last_resumable(conn, "wf_c").unwrap().unwrap();
            assert_eq!((last.id, last.step_id.as_str()), (5, "s1"));

            let tx = conn.transaction().unwrap();
            assert_eq!(
                tx.mark_resumed("wf_c", 5, "2026-03-02T12:01:00.000000Z")
                    .unwrap(),
                3
            );
            // A reevaluation keeps the step's id; a new step takes the one
            // after the lost id 7.
            let owner = CheckpointOwner {
                actor: "dave",
                at: "2026-03-02T12:01:01.000000Z",
            };
            let mut step = StepRow::new("wf_c", "s3", 3, Verdict::Allow, owner.at);
            step.step_type = "llm_call".into();
            step.gate_count = 1;
            tx.save_step(&step).unwrap();
            assert_eq!(tx.upsert_checkpoint(&step, owner).unwrap(), 8);
            let s2 = crate::store::sqlite::steps::find_step(&tx, "wf_c", "s2")
                .unwrap()
                .unwrap();
            assert_eq!(tx.upsert_checkpoint(&s2, owner).unwrap(), 6);
            tx.commit().unwrap();

            let listed = checkpoints::list_checkpoints(conn, "wf_c").unwrap();
            let summary: Vec<_> = listed
                .iter()
                .map(|c| {
                    (
                        c.id,
                        c.resume_count,
                        c.client_id.as_str(),
                        c.created_at.as_str(),
                    )
                })
                .collect();
            assert_eq!(
                summary,
                [
                    (5, 3, "bob", "2026-03-02T12:00:07.000000Z"),
                    (6, 0, "dave", "2026-03-02T12:01:01.000000Z"),
                    (8, 0, "dave", "2026-03-02T12:01:01.000000Z"),
                ]
            );
        }
    }

    /// Every row of every table, by table, all columns, in a fixed order.
    fn contents(conn: &Connection) -> Vec<(String, Vec<String>, Vec<Vec<Value>>)> {
        tables(conn)
            .into_iter()
            .map(|table| {
                let stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
                let columns: Vec<String> =
                    stmt.column_names().into_iter().map(String::from).collect();
                let rows = rows_of(conn, &table, &columns);
                (table, columns, rows)
            })
            .collect()
    }

    /// `columns` of every row of `table`, ordered by all of them.
    fn rows_of(conn: &Connection, table: &str, columns: &[String]) -> Vec<Vec<Value>> {
        let order: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {} FROM {table} ORDER BY {}",
                columns.join(", "),
                order.join(", ")
            ))
            .unwrap();
        stmt.query_map([], |row| {
            (0..columns.len()).map(|i| row.get::<_, Value>(i)).collect()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn fresh_database_gets_the_latest_version_and_every_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let tables = tables(&conn);
        for table in ["audit_log", "counters", "workflow_steps", "workflows"] {
            assert!(
                tables.iter().any(|t| t == table),
                "{table} missing: {tables:?}"
            );
        }
        let views: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name = 'checkpoints'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(views, 1, "the checkpoints view");
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, Path::new("db")).unwrap();
        let before = tables(&conn);
        migrate(&mut conn, Path::new("db")).unwrap();
        assert_eq!(tables(&conn), before);
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn upgrades_from_every_older_version_keeping_data() {
        assert_eq!(
            FIXTURES.iter().map(|f| f.from).collect::<Vec<_>>(),
            (0..MIGRATIONS.len()).collect::<Vec<_>>(),
            "one fixture per older version"
        );
        for fixture in FIXTURES {
            let mut conn = Connection::open_in_memory().unwrap();
            // As the writer connection runs migrations (`configure_writer`).
            conn.pragma_update(None, "foreign_keys", "ON").unwrap();
            migrations().to_version(&mut conn, fixture.from).unwrap();
            (fixture.seed)(&conn);
            let before = contents(&conn);
            migrate(&mut conn, Path::new("db")).unwrap();
            assert_eq!(
                user_version(&conn).unwrap(),
                SCHEMA_VERSION,
                "from v{}",
                fixture.from
            );
            for (table, columns, rows) in before {
                // v3 dropped the checkpoints table, and its AUTOINCREMENT
                // counter with it; `survived` checks that ids go on from it.
                if table == "sqlite_sequence" {
                    continue;
                }
                assert_eq!(
                    rows_of(&conn, &table, &columns),
                    rows,
                    "{table} from v{}",
                    fixture.from
                );
            }
            let fk_violations: i64 = conn
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(fk_violations, 0, "from v{}", fixture.from);
            (fixture.survived)(&mut conn);
        }
    }

    #[test]
    fn refuses_a_newer_schema_and_leaves_it_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let error = migrate(&mut conn, Path::new("data/wcp.db")).unwrap_err();
        assert!(
            matches!(error, StoreError::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1)
        );
        assert!(error.to_string().contains("newer"), "{error}");
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION + 1);
        assert!(tables(&conn).is_empty());
    }

    #[test]
    fn read_only_check_refuses_empty_and_newer_databases() {
        let conn = Connection::open_in_memory().unwrap();
        let cases = [
            (0, false),
            (SCHEMA_VERSION, true),
            (SCHEMA_VERSION + 1, false),
        ];
        for (version, readable) in cases {
            conn.pragma_update(None, "user_version", version).unwrap();
            assert_eq!(
                check_readable(&conn, Path::new("db")).is_ok(),
                readable,
                "v{version}"
            );
        }
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }
}
