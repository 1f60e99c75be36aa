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
