//! The gate's domain logic, free of HTTP and SQL.
//!
//! - `evaluate`: run every applicable policy of a [`PolicySet`] snapshot on
//!   one step, each in a fresh sandboxed instance, recording one
//!   [`PolicyRun`] per policy.
//! - `combine`: fold the runs into the gate's decision and reason
//!   (contract §4.2).
//! - `flow`: the rules of §4.1 as plain functions (ids, refusals, checks,
//!   cached answers, `retry_context`).
//! - `record`: §4.1 against the store: the pre-check and the one
//!   transaction recording a gate, its checkpoint and audit entry.
//! - `resume`: checkpoint resumes (§2.14, §2.15), replaying a step's
//!   stored gate.
//! - `pool`: the evaluation pool and the per-workflow gate locks.
//! - `run`: [`Gates`], one gate from the workflow's lock to its record,
//!   and a policy's dry run.
//! - `hold`: the other writes under a workflow's gate lock, as [`Gates`]
//!   methods: deciding a held step and resuming from a checkpoint.
//!
//! [`PolicySet`]: crate::policy_set::PolicySet

mod combine;
mod evaluate;
pub mod flow;
mod hold;
mod pool;
pub mod record;
pub mod resume;
mod run;

pub use combine::{Combined, combine};
pub use evaluate::{Action, PolicyRun, RunError, RunErrorKind, evaluate_policies, run_policy};
pub use pool::{EvaluationPool, PoolError, WorkflowLocks};
pub use run::{GateError, Gates};
