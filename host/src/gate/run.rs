//! [`Gates`]: one gate (contract §4.1) from the workflow's lock to its
//! durable record.
//!
//! A gate holds its workflow's gate lock from the first read to the
//! commit, so gates of one workflow are serialised and ten concurrent first
//! gates of a step run the policies once. Before its transaction, one trip
//! to the evaluation pool probes for due approval expiries, reads the
//! gate's view of the workflow and step, and for a fresh evaluation runs
//! the policies on one snapshot of the policy set. The transaction checks
//! the state again before writing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::{self, GateCall, Recorded};
use super::{Combined, EvaluationPool, PolicyRun, PoolError, WorkflowLocks, combine};
use super::{evaluate_policies, run_policy};
use crate::approval::Expiry;
use crate::clock;
use crate::input::PolicyInput;
use crate::policy_set::PolicyEntry;
use crate::refusal::FlowError;
use crate::reload::PolicyHost;
use crate::runtime::PolicyRequest;
use crate::store::{DueScope, Store, StoreError};
use crate::telemetry::{Metrics, PolicyRunSample};

/// Why a gate has no answer.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Refused, or the store failed; nothing changed.
    #[error(transparent)]
    Flow(#[from] FlowError),
    /// Applying the workflow's due approval expiries failed.
    #[error("expiring approvals: {0}")]
    Expiry(StoreError),
    /// The evaluation pool could not run the policies.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Everything a gate uses: the serving policies, the store, the
/// evaluation pool, the per-workflow locks, approval expiry and the
/// metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gates {
    policies: Arc<PolicyHost>,
    store: Store,
    metrics: Metrics,
    pool: EvaluationPool,
    locks: Arc<WorkflowLocks>,
    expiry: Expiry,
}

/// What a gate finds out before its transaction.
enum Prepared {
    /// An approval of the workflow is due to expire: expire it and look again.
    ExpiryDue,
    /// The policy runs of a fresh evaluation; `None` for a cached re-gate.
    Ready(Option<Vec<PolicyRun>>),
}

impl Gates {
    /// Gates of the policies `policies` serves, recorded in `store` and
    /// counted in `metrics`, with an evaluation pool as wide as the machine
    /// has cores.
    pub fn new(policies: Arc<PolicyHost>, store: Store, metrics: Metrics) -> Self {
        Gates {
            pool: EvaluationPool::new(Arc::clone(policies.runtime())),
            locks: Arc::default(),
            expiry: Expiry::new(store.clone(), metrics.clone()),
            policies,
            store,
            metrics,
        }
    }

    /// The evaluation pool, for other work that runs policies.
    pub fn pool(&self) -> &EvaluationPool {
        &self.pool
    }

    /// The per-workflow locks, which approvals and resumes also take.
    pub fn locks(&self) -> &WorkflowLocks {
        &self.locks
    }

    /// Approval expiry, which every route touching a workflow applies.
    pub fn expiry(&self) -> &Expiry {
        &self.expiry
    }

    /// The store gates are recorded in.
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Evaluates the policies that apply to `tenant` on one snapshot of the
    /// policy set, on the evaluation pool, and combines (and counts) the
    /// runs into a decision (contract §4.2).
    pub async fn evaluate(&self, tenant: &str, input: PolicyInput) -> Result<Combined, GateError> {
        let set = self.policies.load_full();
        let tenant = tenant.to_owned();
        let runs = self
            .pool
            .run(move |runtime| evaluate_policies(runtime, &set, &tenant, &input))
            .await?;
        Ok(self.combine(runs))
    }

    /// Runs the one policy `entry` on `input` as a gate would, on the
    /// evaluation pool, whether or not it applies to the step type. A dry
    /// run stores, audits and counts nothing (contract §6.3): the policy
    /// metrics describe gates only.
    pub async fn dry_run(
        &self,
        entry: Arc<PolicyEntry>,
        input: &PolicyInput,
    ) -> Result<PolicyRun, GateError> {
        let request = PolicyRequest::new(input);
        let run = self
            .pool
            .run(move |runtime| run_policy(runtime, &entry, &request))
            .await?;
        Ok(run)
    }

    /// Runs the gate `call`, whose request arrived at `started`, and
    /// returns what it recorded (or found recorded, for a cached re-gate).
    pub async fn run(&self, call: &GateCall, started: Instant) -> Result<Recorded, GateError> {
        let _serialised = self.locks.lock(&call.workflow_id).await;
        // The second pass does not probe, so it always ends the loop.
        let mut probe = true;
        let runs = loop {
            match self.prepare(call, probe).await? {
                Prepared::Ready(runs) => break runs,
                Prepared::ExpiryDue => {
                    self.expiry
                        .apply(DueScope::Workflow(call.workflow_id.clone()))
                        .await
                        .map_err(GateError::Expiry)?;
                    probe = false;
                }
            }
        };
        let fresh = runs.map(|runs| self.combine(runs));
        let job_call = call.clone();
        let recorded = self
            .store
            .submit_async(move |tx| record::record(tx, &job_call, fresh))
            .await?;
        let source = if recorded.cached { "cached" } else { "fresh" };
        self.metrics
            .gate(recorded.decision.as_str(), source, started.elapsed());
        Ok(recorded)
    }

    /// Counts each policy run and combines the runs into a decision.
    pub fn combine(&self, runs: Vec<PolicyRun>) -> Combined {
        for run in &runs {
            self.metrics.policy_run(PolicyRunSample {
                policy_id: &run.policy_id,
                fault: run.error.as_ref().map(|error| error.kind.as_str()),
                dropped_log_bytes: run.dropped_log_bytes,
                took: run
                    .policy_version
                    .is_some()
                    .then(|| Duration::from_micros(run.duration_us)),
            });
        }
        combine(runs)
    }

    /// The part of a gate before its transaction, in one trip to the
    /// evaluation pool: the approval-expiry probe (with `probe`), the
    /// gate's view of the workflow and step (refusals included), and for a
    /// fresh evaluation the policies, run on one snapshot of the set.
    async fn prepare(&self, call: &GateCall, probe: bool) -> Result<Prepared, GateError> {
        let store = self.store.clone();
        let set = self.policies.load_full();
        let call = call.clone();
        let prepared: Result<Prepared, FlowError> = self
            .pool
            .run(move |runtime| {
                let due = DueScope::Workflow(call.workflow_id.clone());
                let view = store.read(|conn| {
                    if probe && conn.any_due(&due, &clock::now_rfc3339())? {
                        return Ok(None);
                    }
                    Ok(Some(record::view(conn, &call)))
                })?;
                let Some(view) = view else {
                    return Ok(Prepared::ExpiryDue);
                };
                let view = view?;
                if view.cached {
                    return Ok(Prepared::Ready(None));
                }
                let input = record::policy_input(&view, &call);
                let runs = evaluate_policies(runtime, &set, &call.tenant, &input);
                Ok(Prepared::Ready(Some(runs)))
            })
            .await?;
        prepared.map_err(GateError::from)
    }
}
