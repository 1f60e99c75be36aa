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
