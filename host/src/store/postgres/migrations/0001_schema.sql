-- The PostgreSQL schema: the same tables, columns and rules as SQLite's
-- schema v3 (store/sqlite/migrations), in PostgreSQL's types. Times are
-- TEXT in the API's fixed-width format and ids are TEXT, all with the "C"
-- collation, so text order is byte order, as in SQLite: time order for
-- times, and the same tie-breaks for ids. JSON is TEXT, stored as the
-- domain serialised it, so answers are byte-for-byte those of SQLite.

-- One row per registered workflow (contract §2.1-2.3, §3.1). Tenant and org
-- scope every lookup; another tenant's id must look missing.
CREATE TABLE workflows (
    -- The store's key, never shown to clients; grows with insertion order.
    wid                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id        TEXT COLLATE "C" NOT NULL UNIQUE,   -- wf_<uuidv4>, the API's id
    tenant             TEXT COLLATE "C" NOT NULL,
    org                TEXT COLLATE "C" NOT NULL,
    workflow_name      TEXT NOT NULL,
    source             TEXT COLLATE "C" NOT NULL,
    status             TEXT COLLATE "C" NOT NULL
        CHECK (status IN ('in_progress', 'completed', 'failed', 'aborted')),
    -- Bumped by every fresh evaluation, reevaluations included (§4.1 step 9).
    current_step_index BIGINT NOT NULL DEFAULT 0 CHECK (current_step_index >= 0),
    total_steps        BIGINT,                             -- set when it ends
    trace_id           TEXT COLLATE "C",
    metadata           TEXT NOT NULL DEFAULT '{}',
    failure_reason     TEXT,
    abort_reason       TEXT,
    -- Sums of what step completes reported (§2.5).
    total_cost_usd     DOUBLE PRECISION NOT NULL DEFAULT 0,
    total_tokens_in    BIGINT NOT NULL DEFAULT 0,
    total_tokens_out   BIGINT NOT NULL DEFAULT 0,
    started_at         TEXT COLLATE "C" NOT NULL,          -- also the API's created_at
    completed_at       TEXT COLLATE "C"                    -- set when it ends, cleared on revival
);
-- The list: tenant+org, newest first, ties by id (§2.3).
CREATE INDEX workflows_list ON workflows (tenant, org, started_at DESC, workflow_id);
-- The concurrency limit counts a tenant's running workflows (§2.1).
CREATE INDEX workflows_running ON workflows (tenant) WHERE status = 'in_progress';
CREATE INDEX workflows_trace ON workflows (tenant, org, trace_id) WHERE trace_id IS NOT NULL;

-- One row per gated step (§2.4, §2.5, §4.1), holding its approval hold and
-- its checkpoint (§2.13).
CREATE TABLE workflow_steps (
    wid                   BIGINT NOT NULL REFERENCES workflows (wid),
    workflow_id           TEXT COLLATE "C" NOT NULL,
    step_id               TEXT COLLATE "C" NOT NULL,
    step_index            BIGINT NOT NULL CHECK (step_index >= 1),
    -- The request of the first gate, kept for idempotent-retry checks
    -- (§4.1 step 6) and for re-running the gate on checkpoint resume.
    step_type             TEXT NOT NULL,
    step_name             TEXT,
    model                 TEXT,
    provider              TEXT,
    step_input            TEXT NOT NULL DEFAULT '{}',
    tool_context          TEXT,
    idempotency_key       TEXT,                            -- NULL = none recorded
    estimated_tokens_in   BIGINT,                          -- gate estimates, when sent
    estimated_tokens_out  BIGINT,
    estimated_cost_usd    DOUBLE PRECISION,
    -- The stored decision and what produced it.
    decision              TEXT NOT NULL CHECK (decision IN ('allow', 'block', 'require_approval')),
    decision_reason       TEXT,
    policies_evaluated    TEXT NOT NULL DEFAULT '[]',
    policies_matched      TEXT NOT NULL DEFAULT '[]',
    last_decision         TEXT NOT NULL
        CHECK (last_decision IN ('allow', 'block', 'require_approval')),
    gate_count            BIGINT NOT NULL DEFAULT 1 CHECK (gate_count >= 1),
    first_attempt_at      TEXT COLLATE "C" NOT NULL,
    gate_checked_at       TEXT COLLATE "C" NOT NULL,       -- last gate, cached ones too
    -- The approval hold (§3.2).
    approval_status       TEXT COLLATE "C" CHECK (approval_status IS NULL
        OR approval_status IN ('pending', 'approved', 'rejected', 'expired')),
    approval_id           TEXT,
    approval_count        BIGINT NOT NULL DEFAULT 0,       -- holds so far: the n-th id uses `#n`
    approval_requested_at TEXT COLLATE "C",                -- hold start (pending list's created_at)
    expires_at            TEXT COLLATE "C",
    approved_by           TEXT,                            -- approver, rejector or system:auto-expired
    approved_at           TEXT COLLATE "C",
    approval_comment      TEXT,
    -- Step completes (§2.5): the last one's values.
    completion_count      BIGINT NOT NULL DEFAULT 0,
    completed_at          TEXT COLLATE "C",
    output                TEXT,
    tokens_in             BIGINT,
    tokens_out            BIGINT,
    cost_usd              DOUBLE PRECISION,
    -- The checkpoint of the step's last fresh evaluation.
    checkpoint_id         BIGINT,
    checkpoint_client_id  TEXT,                            -- the evaluating gate's actor
    checkpoint_at         TEXT COLLATE "C",                -- the evaluation's time
    resume_count          BIGINT NOT NULL DEFAULT 0 CHECK (resume_count >= 0),
    last_resumed_at       TEXT COLLATE "C",
    PRIMARY KEY (wid, step_id),
    -- New steps take the bumped current_step_index, which only grows.
    UNIQUE (wid, step_index)
);
-- "A workflow has at most one pending step" (§3.2), enforced.
CREATE UNIQUE INDEX workflow_steps_one_pending ON workflow_steps (wid)
    WHERE approval_status = 'pending';
-- Pending approvals, newest hold first (§2.12), and the expiry sweeper (§3.2).
CREATE INDEX workflow_steps_pending_newest ON workflow_steps (approval_requested_at DESC)
    WHERE approval_status = 'pending';
CREATE INDEX workflow_steps_pending_expiry ON workflow_steps (expires_at)
    WHERE approval_status = 'pending';

-- Checkpoint ids go to clients: positive and never reused. A sequence
-- hands them out without a row every gate would have to lock; a rolled
-- back gate leaves a gap, which the API allows.
CREATE SEQUENCE checkpoint_ids AS BIGINT MINVALUE 1;

-- What a checkpoint shows, from its step (as SQLite's view of the same name).
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

-- The hash-chained audit log (contract §7), one chain per tenant. No
-- foreign key: the trail must outlive what it mentions.
CREATE TABLE audit_log (
    chain       TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL CHECK (seq >= 1),
    at          TEXT COLLATE "C" NOT NULL,
    tenant      TEXT COLLATE "C" NOT NULL,
    org         TEXT COLLATE "C" NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    workflow_id TEXT COLLATE "C",
    step_id     TEXT COLLATE "C",
    decision    TEXT,
    reason      TEXT,
    details     TEXT NOT NULL DEFAULT '{}',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    wid         BIGINT,
    PRIMARY KEY (chain, seq),
    -- One chain per tenant: the chain is the entry's tenant.
    CHECK (chain = tenant)
);
CREATE INDEX audit_log_by_workflow ON audit_log (chain, wid, seq) WHERE wid IS NOT NULL;
-- Append-only. This stops mistakes, not attackers: the chain is what
-- shows tampering.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
