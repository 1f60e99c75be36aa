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
//!
//! A table's current shape is its last `CREATE TABLE` below, plus later
//! `ALTER TABLE`s: v2 rebuilt `workflows`, `workflow_steps` and
//! `checkpoints` around the integer key `wid`, and added `wid` to
//! `audit_log`; v3 folded `checkpoints` into `workflow_steps`, leaving a
//! view of that name.

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
const V2: &str = r#"
-- workflows: wid is the rowid, so it grows with insertion order; the
-- public workflow_id becomes a unique column.
CREATE TABLE workflows_new (
    -- The store's key, never shown to clients. A rowid alias: new
    -- workflows take the next value, so the child tables' indexes, which
    -- lead with it, grow at their right-hand edge instead of being written
    -- at random pages. Workflows are never deleted, so no wid is reused.
    wid                INTEGER PRIMARY KEY,
    workflow_id        TEXT NOT NULL UNIQUE,          -- wf_<uuidv4>, the API's id
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
-- v1's columns follow wid in v1's order. Existing workflows keep their
-- order: each takes its old rowid as its wid.
INSERT INTO workflows_new SELECT rowid, * FROM workflows ORDER BY rowid;

-- workflow_steps: keyed by (wid, step_id). workflow_id stays, for reading
-- rows back; every write derives wid from it, so the two agree.
CREATE TABLE workflow_steps_new (
    wid                   INTEGER NOT NULL REFERENCES workflows_new (wid),
    workflow_id           TEXT NOT NULL,
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
    -- Both keys lead with wid: a gate's writes land next to those of the
    -- other workflows running now.
    PRIMARY KEY (wid, step_id),
    -- New steps take the bumped current_step_index, which only grows.
    UNIQUE (wid, step_index)
) STRICT;
-- v1's columns follow wid in v1's order. A step whose workflow is missing
-- gets a NULL wid and fails the migration rather than being dropped.
INSERT INTO workflow_steps_new
    SELECT (SELECT w.wid FROM workflows_new w WHERE w.workflow_id = s.workflow_id), s.*
    FROM workflow_steps s ORDER BY s.rowid;

-- checkpoints: keyed by (wid, step_id). Ids go to clients, so they are
-- copied as they are, and the AUTOINCREMENT counter with them: the new
-- table starts from the old counter, not from the highest id left.
CREATE TABLE checkpoints_new (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    wid                INTEGER NOT NULL,
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
    UNIQUE (wid, step_id),
    FOREIGN KEY (wid, step_id) REFERENCES workflow_steps_new (wid, step_id)
) STRICT;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'checkpoints_new', seq FROM sqlite_sequence WHERE name = 'checkpoints';
INSERT INTO checkpoints_new (id, wid, workflow_id, step_id, step_index, step_type, step_name,
        gate_decision, gate_reason, policies_evaluated, policies_matched, step_input,
        tool_context, model, provider, resume_count, last_resumed_at, tenant_id, org_id,
        client_id, created_at)
    SELECT c.id, (SELECT w.wid FROM workflows_new w WHERE w.workflow_id = c.workflow_id),
        c.workflow_id, c.step_id, c.step_index, c.step_type, c.step_name, c.gate_decision,
        c.gate_reason, c.policies_evaluated, c.policies_matched, c.step_input, c.tool_context,
        c.model, c.provider, c.resume_count, c.last_resumed_at, c.tenant_id, c.org_id,
        c.client_id, c.created_at
    FROM checkpoints c ORDER BY c.id;

-- Children first: nothing references a table when it is dropped. Dropping
-- a table drops its indexes and its sqlite_sequence row; renaming moves
-- the new one's row and rewrites the REFERENCES naming it.
DROP TABLE checkpoints;
DROP TABLE workflow_steps;
DROP TABLE workflows;
ALTER TABLE workflows_new RENAME TO workflows;
ALTER TABLE workflow_steps_new RENAME TO workflow_steps;
ALTER TABLE checkpoints_new RENAME TO checkpoints;

-- v1's indexes, on the rebuilt tables.
-- The list: tenant+org, newest first, ties by id (§2.3).
CREATE INDEX workflows_list ON workflows (tenant, org, started_at DESC, workflow_id);
-- The concurrency limit counts a tenant's running workflows (§2.1).
CREATE INDEX workflows_running ON workflows (tenant) WHERE status = 'in_progress';
CREATE INDEX workflows_trace ON workflows (tenant, org, trace_id) WHERE trace_id IS NOT NULL;
-- "A workflow has at most one pending step" (§3.2), enforced, and the
-- index that finds it; by wid like the table's keys.
CREATE UNIQUE INDEX workflow_steps_one_pending ON workflow_steps (wid)
    WHERE approval_status = 'pending';
-- Pending approvals, newest hold first (§2.12), and the expiry sweeper (§3.2).
CREATE INDEX workflow_steps_pending_newest ON workflow_steps (approval_requested_at DESC)
    WHERE approval_status = 'pending';
CREATE INDEX workflow_steps_pending_expiry ON workflow_steps (expires_at)
    WHERE approval_status = 'pending';
-- Listing by step_index, and "the resumable one with the highest index".
CREATE INDEX checkpoints_by_index ON checkpoints (wid, step_index);

-- audit_log: each entry about a workflow also records its wid, and the
-- per-workflow index leads with it after the chain. No foreign key: the
-- trail must outlive what it mentions. The hash covers the API's fields
-- only, so wid changes no hash. Filling wid in for the old entries is an
-- UPDATE, which the append-only trigger refuses: it is dropped for the
-- backfill and created again, as v1 had it, in the same transaction.
ALTER TABLE audit_log ADD COLUMN wid INTEGER;
DROP TRIGGER audit_log_no_update;
UPDATE audit_log
    SET wid = (SELECT w.wid FROM workflows w WHERE w.workflow_id = audit_log.workflow_id)
    WHERE workflow_id IS NOT NULL;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
DROP INDEX audit_log_by_workflow;
CREATE INDEX audit_log_by_workflow ON audit_log (chain, wid, seq)
    WHERE wid IS NOT NULL;
"#;

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
const V3: &str = r#"
-- The checkpoint of the step's last fresh evaluation; checkpoint_id is
-- NULL only for a step that has none (none is written that way now).
ALTER TABLE workflow_steps ADD COLUMN checkpoint_id INTEGER;
ALTER TABLE workflow_steps ADD COLUMN checkpoint_client_id TEXT;   -- the evaluating gate's actor
ALTER TABLE workflow_steps ADD COLUMN checkpoint_at TEXT;          -- the evaluation's time
ALTER TABLE workflow_steps ADD COLUMN resume_count INTEGER NOT NULL DEFAULT 0
    CHECK (resume_count >= 0);
ALTER TABLE workflow_steps ADD COLUMN last_resumed_at TEXT;
UPDATE workflow_steps AS s
    SET checkpoint_id = c.id, checkpoint_client_id = c.client_id,
        checkpoint_at = c.created_at, resume_count = c.resume_count,
        last_resumed_at = c.last_resumed_at
    FROM checkpoints AS c
    WHERE c.wid = s.wid AND c.step_id = s.step_id;

-- Counters the store hands out values from, one row each.
CREATE TABLE counters (
    name               TEXT PRIMARY KEY,
    value              INTEGER NOT NULL CHECK (value >= 0)   -- the last value handed out
) STRICT;
INSERT INTO counters (name, value)
    VALUES ('checkpoint_id',
            COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'checkpoints'), 0));

DROP TABLE checkpoints;

-- What the checkpoints table showed, from the steps: tenant and org are
-- the workflow's, as the gate that wrote a checkpoint was the workflow's.
CREATE VIEW checkpoints AS
SELECT s.checkpoint_id AS id, s.wid, s.workflow_id, s.step_id, s.step_index, s.step_type,
       s.step_name, s.decision AS gate_decision, s.decision_reason AS gate_reason,
       CASE s.decision WHEN 'require_approval' THEN 'approval_boundary'
                       ELSE 'step_gate' END AS checkpoint_type,
       s.decision <> 'block' AS is_resumable,
       s.policies_evaluated, s.policies_matched, s.step_input, s.tool_context, s.model,
       s.provider, s.resume_count, s.last_resumed_at, w.tenant AS tenant_id,
       w.org AS org_id, s.checkpoint_client_id AS client_id, s.checkpoint_at AS created_at
FROM workflow_steps AS s JOIN workflows AS w ON w.wid = s.wid
WHERE s.checkpoint_id IS NOT NULL;
"#;

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
        use crate::store::checkpoints::{self, CheckpointOwner};
        use crate::store::steps::{self, StepRow};
        use crate::store::{StoreWrite, audit};
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
                &audit::AuditFilter {
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

        use crate::store::StoreWrite;
        use crate::store::checkpoints::{self, CheckpointOwner};
        use crate::store::steps::StepRow;
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
            let s2 = crate::store::steps::find_step(&tx, "wf_c", "s2")
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
