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
