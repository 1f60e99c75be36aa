//! A workflow's life outside its gates (contract §2.5-2.9): a step's
//! completion, completing, failing and aborting the workflow, and the
//! check of a workflow resume. Each change
//! and its audit entry commit in one transaction, after the workflow's due
//! approval expiries; a refusal found inside it rolls back and is not
//! audited. No HTTP and no SQL.

use serde_json::{Map, Value, json};

use crate::approval::Expiry;
use crate::audit::{AuditKind, AuditRecord};
use crate::auth::Caller;
use crate::clock;
use crate::gate::GateError;
use crate::gate::flow;
use crate::refusal::{FlowError, Refusal, WORKFLOW_NOT_FOUND, approval_pending};
use crate::store::{ReadTx, WorkflowRow, WriteTx};

/// How a workflow ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `completed`: every step done; refused while a step awaits approval.
    Completed,
    /// `failed`, with a reason.
    Failed,
    /// `aborted`, with a reason; a checkpoint resume can revive it.
    Aborted,
}

impl End {
    /// The workflow's status afterwards.
    pub fn status(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::Failed => "failed",
            End::Aborted => "aborted",
        }
    }

    /// The reason used when the caller gives none.
    pub fn default_reason(self) -> &'static str {
        match self {
            End::Completed => "",
            End::Failed => "Failed",
            End::Aborted => "Aborted by user",
        }
    }

    fn audit_kind(self) -> AuditKind {
        match self {
            End::Completed => AuditKind::WorkflowCompleted,
            End::Failed => AuditKind::WorkflowFailed,
            End::Aborted => AuditKind::WorkflowAborted,
        }
    }
}

/// Loads the caller's workflow in `conn`, refusing a missing one and,
/// with `terminal` as the message prefix, an ended one.
fn load_running(
    conn: &ReadTx,
    caller: &Caller,
    id: &str,
    terminal: &str,
) -> Result<WorkflowRow, FlowError> {
    let row = conn
        .find_workflow(id, &caller.tenant, &caller.org)?
        .ok_or(Refusal::NotFound(WORKFLOW_NOT_FOUND))?;
    if row.is_terminal() {
        return Err(
            Refusal::conflict("WORKFLOW_TERMINAL", format!("{terminal}: {}", row.status)).into(),
        );
    }
    Ok(row)
}

/// Appends the caller's change to its tenant's chain: `kind` about the
/// workflow and, for a step's change, the step of `at`.
fn audit(
    tx: &WriteTx,
    caller: &Caller,
    kind: AuditKind,
    (workflow_id, step_id): (&str, Option<&str>),
    reason: Option<String>,
    details: Map<String, Value>,
    now: String,
) -> Result<(), FlowError> {
    let record = AuditRecord {
        at: now,
        tenant: caller.tenant.clone(),
        org: caller.org.clone(),
        actor: caller.actor.clone(),
        kind: kind.as_str().into(),
        workflow_id: Some(workflow_id.to_owned()),
        step_id: step_id.map(str::to_owned),
        decision: None,
        reason,
        details,
    };
    tx.append_audit(&caller.tenant, record)?;
    Ok(())
}

/// Ends the caller's workflow `id` as `how`, with `reason` (fail and
/// abort), and audits it, in one transaction after its due expiries.
pub async fn end(
    expiry: &Expiry,
    caller: Caller,
    id: String,
    how: End,
    reason: Option<String>,
) -> Result<(), GateError> {
    let scope = id.clone();
    expiry
        .write_after(&scope, move |tx| -> Result<(), FlowError> {
            let row = load_running(tx, &caller, &id, "workflow is already in terminal state")?;
            let mut details = Map::new();
            match how {
                End::Completed => {
                    if let Some(step) = tx.step_with_approval(&id, &["pending"])? {
                        return Err(approval_pending(&step).into());
                    }
                    details.insert("steps_executed".into(), json!(row.current_step_index));
                    details.insert("total_cost_usd".into(), json!(row.total_cost_usd));
                    details.insert("total_tokens_in".into(), json!(row.total_tokens_in));
                    details.insert("total_tokens_out".into(), json!(row.total_tokens_out));
                }
                End::Failed | End::Aborted => {
                    details.insert("cause".into(), json!("api"));
                }
            }
            let now = clock::now_rfc3339();
            tx.end_workflow(&id, how.status(), &now, reason.as_deref())?;
            audit(
                tx,
                &caller,
                how.audit_kind(),
                (&id, None),
                reason,
                details,
                now,
            )
        })
        .await
        .map_err(GateError::Expiry)?
        .map_err(GateError::Flow)
}

/// A step's reported completion (contract §2.5), its input valid.
#[derive(Debug, Clone)]
pub struct StepCompletion {
    /// Who reports it.
    pub caller: Caller,
    /// The workflow.
    pub workflow_id: String,
    /// The step.
    pub step_id: String,
    /// What the step produced, kept as its checkpoint's output.
    pub output: Option<Map<String, Value>>,
    /// Input tokens the step used.
    pub tokens_in: Option<u64>,
    /// Output tokens the step used.
    pub tokens_out: Option<u64>,
    /// What the step cost, in US dollars.
    pub cost_usd: Option<f64>,
    /// Caller's key for the completion, if any.
    pub key: Option<String>,
}

/// Records a step's completion: its output and usage, the workflow's
/// totals and the audit entry, in one transaction after the workflow's due
/// expiries. A key that differs from the step's is refused.
pub async fn complete_step(expiry: &Expiry, call: StepCompletion) -> Result<(), GateError> {
    let scope = call.workflow_id.clone();
    expiry
        .write_after(&scope, move |tx| -> Result<(), FlowError> {
            let StepCompletion {
                caller,
                workflow_id,
                step_id,
                output,
                tokens_in,
                tokens_out,
                cost_usd,
                key,
            } = call;
            let workflow = tx
                .find_workflow(&workflow_id, &caller.tenant, &caller.org)?
                .ok_or(Refusal::NotFound(WORKFLOW_NOT_FOUND))?;
            let mut step = tx
                .find_step(&workflow_id, &step_id)?
                .ok_or(Refusal::NotFound("Step not found"))?;
            flow::check_key(&step, key.as_deref())?;
            flow::check_totals(&workflow, tokens_in, tokens_out, cost_usd)?;
            let now = clock::now_rfc3339();
            step.completion_count += 1;
            step.completed_at = Some(now.clone());
            if let Some(output) = output {
                step.output = Some(Value::Object(output));
            }
            step.tokens_in = tokens_in.or(step.tokens_in);
            step.tokens_out = tokens_out.or(step.tokens_out);
            step.cost_usd = cost_usd.or(step.cost_usd);
            tx.save_completion(&step)?;
            tx.add_totals(
                &workflow_id,
                tokens_in.unwrap_or(0),
                tokens_out.unwrap_or(0),
                cost_usd.unwrap_or(0.0),
            )?;
            let mut details = Map::new();
            details.insert("completion_count".into(), json!(step.completion_count));
            for (field, value) in [
                ("tokens_in", tokens_in.map(|v| json!(v))),
                ("tokens_out", tokens_out.map(|v| json!(v))),
                ("cost_usd", cost_usd.map(|v| json!(v))),
            ] {
                if let Some(value) = value {
                    details.insert(field.into(), value);
                }
            }
            details.insert("idempotency_key".into(), json!(key.unwrap_or_default()));
            let at = (workflow_id.as_str(), Some(step_id.as_str()));
            audit(
                tx,
                &caller,
                AuditKind::StepCompleted,
                at,
                None,
                details,
                now,
            )
        })
        .await
        .map_err(GateError::Expiry)?
        .map_err(GateError::Flow)
}

/// Checks that nothing holds the caller's workflow `id` (contract §2.9):
/// it runs, no step awaits approval, and none was rejected or expired.
/// Changes nothing beyond the workflow's due expiries.
pub async fn check_resumable(expiry: &Expiry, caller: Caller, id: String) -> Result<(), GateError> {
    let scope = id.clone();
    let checked = expiry
        .read_after(&scope, move |conn| {
            Ok((|| -> Result<(), FlowError> {
                load_running(
                    conn,
                    &caller,
                    &id,
                    "cannot resume workflow in terminal state",
                )?;
                if let Some(step) = conn.step_with_approval(&id, &["pending"])? {
                    return Err(approval_pending(&step).into());
                }
                if let Some(step) = conn.step_with_approval(&id, &["rejected", "expired"])? {
                    return Err(Refusal::conflict(
                        "STEP_REJECTED",
                        format!("workflow has rejected step {step}"),
                    )
                    .into());
                }
                Ok(())
            })())
        })
        .await
        .map_err(GateError::Expiry)?
        .map_err(|error| GateError::Flow(error.into()))?;
    checked.map_err(GateError::Flow)
}
