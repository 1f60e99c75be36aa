//! The schema, versioned by SQLite's `user_version` through
//! `rusqlite_migration`: each migration runs in one transaction, so a
//! database is always at exactly one version.
//!
//! Adding a version: append an `M::up` to [`MIGRATIONS`], bump nothing else
//! ([`SCHEMA_VERSION`] follows), and add a row to the upgrade test's
//! fixtures seeding data of the previous version.
//!
//! Conventions of every table: `STRICT` (a value of the wrong type is an
//! error, not silently stored); timestamps are TEXT in the API's format
//! (`2026-03-01T12:00:00.123456Z`), fixed width, so text order is time
//! order; JSON is TEXT checked by `json_type`.

use std::path::Path;

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use super::error::{SqlContext, StoreError};

/// Schema v1: everything contract v0.1 needs.
const V1: &str = r#"
-- One row per registered workflow (contract §2.1-2.3, §3.1). Tenant and org
-- scope every lookup; another tenant's id must look missing.
CREATE TABLE workflows (
    workflow_id        TEXT PRIMARY KEY,              -- wf_<uuidv4>
    tenant             TEXT NOT NULL,
    org                TEXT NOT NULL,
    workflow_name      TEXT NOT NULL,
    source             TEXT NOT NULL,
    status             TEXT NOT NULL
        CHECK (status IN ('in_progress', 'completed', 'failed', 'aborted')),
    -- Bumped by every fresh evaluation, reevaluations included (§4.1 step 9).
    current_step_index INTEGER NOT NULL DEFAULT 0 CHECK (current_step_index >= 0),
    total_steps        INTEGER,                       -- set when it ends
    trace_id           TEXT,
    metadata           TEXT NOT NULL DEFAULT '{}' CHECK (json_type(metadata) = 'object'),
    failure_reason     TEXT,
    abort_reason       TEXT,
    -- Sums of what step completes reported (§2.5).
    total_cost_usd     REAL NOT NULL DEFAULT 0,
    total_tokens_in    INTEGER NOT NULL DEFAULT 0,
    total_tokens_out   INTEGER NOT NULL DEFAULT 0,
    started_at         TEXT NOT NULL,                 -- also the API's created_at
    completed_at       TEXT                           -- set when it ends, cleared on revival
) STRICT;
-- The list: tenant+org, newest first, ties by id (§2.3).
CREATE INDEX workflows_list ON workflows (tenant, org, started_at DESC, workflow_id);
-- The concurrency limit counts a tenant's running workflows (§2.1).
CREATE INDEX workflows_running ON workflows (tenant) WHERE status = 'in_progress';
CREATE INDEX workflows_trace ON workflows (tenant, org, trace_id) WHERE trace_id IS NOT NULL;

-- One row per gated step (§2.2, §2.4, §2.5, §3.2, §4.1), created by its
-- first gate and updated by later gates, approvals and completes.
CREATE TABLE workflow_steps (
    workflow_id           TEXT NOT NULL REFERENCES workflows (workflow_id),
    step_id               TEXT NOT NULL,
    step_index            INTEGER NOT NULL CHECK (step_index >= 1),
    -- The request of the first gate, kept for idempotent-retry checks
    -- (§4.1 step 6) and for re-running the gate on checkpoint resume.
    step_type             TEXT NOT NULL,
    step_name             TEXT,
    model                 TEXT,
    provider              TEXT,
    step_input            TEXT NOT NULL DEFAULT '{}' CHECK (json_type(step_input) = 'object'),
    tool_context          TEXT CHECK (tool_context IS NULL OR json_type(tool_context) = 'object'),
    idempotency_key       TEXT,                       -- NULL = none recorded
    estimated_tokens_in   INTEGER,                    -- gate estimates, when sent
    estimated_tokens_out  INTEGER,
    estimated_cost_usd    REAL,
    -- The stored decision and what produced it.
    decision              TEXT NOT NULL CHECK (decision IN ('allow', 'block', 'require_approval')),
    decision_reason       TEXT,
    policies_evaluated    TEXT NOT NULL DEFAULT '[]' CHECK (json_type(policies_evaluated) = 'array'),
    policies_matched      TEXT NOT NULL DEFAULT '[]' CHECK (json_type(policies_matched) = 'array'),
    last_decision         TEXT NOT NULL CHECK (last_decision IN ('allow', 'block', 'require_approval')),
    gate_count            INTEGER NOT NULL DEFAULT 1 CHECK (gate_count >= 1),
    first_attempt_at      TEXT NOT NULL,
    gate_checked_at       TEXT NOT NULL,              -- last gate, cached ones too
    -- The approval hold (§3.2).
    approval_status       TEXT CHECK (approval_status IS NULL
        OR approval_status IN ('pending', 'approved', 'rejected', 'expired')),
    approval_id           TEXT,
    approval_count        INTEGER NOT NULL DEFAULT 0, -- holds so far: the n-th id uses `#n`
    approval_requested_at TEXT,                       -- hold start (pending list's created_at)
    expires_at            TEXT,
    approved_by           TEXT,                       -- approver, rejector or system:auto-expired
    approved_at           TEXT,
    approval_comment      TEXT,
    -- Step completes (§2.5): the last one's values.
    completion_count      INTEGER NOT NULL DEFAULT 0,
    completed_at          TEXT,
    output                TEXT CHECK (output IS NULL OR json_type(output) = 'object'),
    tokens_in             INTEGER,
    tokens_out            INTEGER,
    cost_usd              REAL,
    PRIMARY KEY (workflow_id, step_id),
    -- New steps take the bumped current_step_index, which only grows.
    UNIQUE (workflow_id, step_index)
) STRICT;
-- "A workflow has at most one pending step" (§3.2), enforced, and the
-- index that finds it.
CREATE UNIQUE INDEX workflow_steps_one_pending ON workflow_steps (workflow_id)
    WHERE approval_status = 'pending';
-- Pending approvals, newest hold first (§2.12), and the expiry sweeper (§3.2).
CREATE INDEX workflow_steps_pending_newest ON workflow_steps (approval_requested_at DESC)
    WHERE approval_status = 'pending';
CREATE INDEX workflow_steps_pending_expiry ON workflow_steps (expires_at)
    WHERE approval_status = 'pending';

-- One checkpoint per step, upserted by each fresh evaluation (§2.13-2.15).
-- AUTOINCREMENT: ids go to clients, so one is never handed out twice.
CREATE TABLE checkpoints (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id        TEXT NOT NULL,
    step_id            TEXT NOT NULL,
    step_index         INTEGER NOT NULL,
    step_type          TEXT NOT NULL,
    step_name          TEXT,
    gate_decision      TEXT NOT NULL CHECK (gate_decision IN ('allow', 'block', 'require_approval')),
    gate_reason        TEXT,
    -- Derived, so they can never disagree with the decision.
    checkpoint_type    TEXT GENERATED ALWAYS AS (CASE gate_decision
        WHEN 'require_approval' THEN 'approval_boundary' ELSE 'step_gate' END) VIRTUAL,
    is_resumable       INTEGER GENERATED ALWAYS AS (gate_decision <> 'block') VIRTUAL,
    policies_evaluated TEXT NOT NULL DEFAULT '[]' CHECK (json_type(policies_evaluated) = 'array'),
    policies_matched   TEXT NOT NULL DEFAULT '[]' CHECK (json_type(policies_matched) = 'array'),
    step_input         TEXT NOT NULL DEFAULT '{}' CHECK (json_type(step_input) = 'object'),
    tool_context       TEXT CHECK (tool_context IS NULL OR json_type(tool_context) = 'object'),
    model              TEXT,
    provider           TEXT,
    resume_count       INTEGER NOT NULL DEFAULT 0,
    last_resumed_at    TEXT,
    tenant_id          TEXT NOT NULL,
    org_id             TEXT NOT NULL,
    client_id          TEXT NOT NULL,                 -- the gate's actor
    created_at         TEXT NOT NULL,
    UNIQUE (workflow_id, step_id),
    FOREIGN KEY (workflow_id, step_id) REFERENCES workflow_steps (workflow_id, step_id)
) STRICT;
-- Listing by step_index, and "the resumable one with the highest index".
CREATE INDEX checkpoints_by_index ON checkpoints (workflow_id, step_index);

-- The hash-chained audit trail (§7): one chain per tenant, plus `global`.
-- No foreign keys: the trail must outlive anything it mentions.
CREATE TABLE audit_log (
    chain       TEXT NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    at          TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    org         TEXT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    workflow_id TEXT,
    step_id     TEXT,
    decision    TEXT,
    reason      TEXT,
    details     TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (chain, seq),
    -- One chain per tenant: the chain is the entry's tenant.
    CHECK (chain = tenant)
) STRICT;
CREATE INDEX audit_log_by_workflow ON audit_log (chain, workflow_id, seq)
    WHERE workflow_id IS NOT NULL;
-- Append-only. This stops mistakes, not attackers: the chain is what
-- shows tampering.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"#;

/// Every schema version in order; index 0 takes an empty database to v1.
const MIGRATIONS: &[M<'static>] = &[M::up(V1)];

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
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    migrations()
        .to_latest(conn)
        .map_err(|source| StoreError::Migrate {
            path: path.to_owned(),
            source,
        })
}

/// For read-only opens, which cannot migrate: the schema must exist and
/// not be newer than this binary. Returns the version found.
pub(crate) fn check_readable(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    match user_version(conn)? {
        0 => Err(StoreError::NoSchema {
            path: path.to_owned(),
        }),
        found if found > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
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

    use super::*;

    /// Data as it looked at one schema version, seeded before upgrading
    /// from it and checked afterwards. Adding v2: add `from: 1` seeding v1
    /// rows, with a query proving they survived.
    struct Fixture {
        from: usize,
        seed: &'static str,
        /// A query returning one integer that must be 1 after the upgrade.
        survived: &'static str,
    }

    const FIXTURES: &[Fixture] = &[Fixture {
        from: 0,
        seed: "",
        survived: "SELECT 1",
    }];

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
        for table in ["audit_log", "checkpoints", "workflow_steps", "workflows"] {
            assert!(
                tables.iter().any(|t| t == table),
                "{table} missing: {tables:?}"
            );
        }
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
            migrations().to_version(&mut conn, fixture.from).unwrap();
            conn.execute_batch(fixture.seed).unwrap();
            migrate(&mut conn, Path::new("db")).unwrap();
            assert_eq!(
                user_version(&conn).unwrap(),
                SCHEMA_VERSION,
                "from v{}",
                fixture.from
            );
            let survived: i64 = conn.query_row(fixture.survived, [], |r| r.get(0)).unwrap();
            assert_eq!(survived, 1, "data of v{} lost", fixture.from);
            let fk_violations: i64 = conn
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(fk_violations, 0, "from v{}", fixture.from);
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
