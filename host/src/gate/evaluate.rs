//! Running the applicable policies of one gate.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::input::PolicyInput;
use crate::policy_set::{PolicyEntry, PolicySet};
use crate::runtime::{Admission, FaultKind, PolicyRequest, PolicyRuntime};
use crate::verdict::Verdict;

/// A policy's own answer in a gate's record: its verdict, or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The policy allowed.
    Allow,
    /// The policy blocked.
    Block,
    /// The policy asked for approval.
    RequireApproval,
    /// The policy produced no verdict.
    Error,
}

impl From<Verdict> for Action {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Allow => Action::Allow,
            Verdict::Block => Action::Block,
            Verdict::RequireApproval => Action::RequireApproval,
        }
    }
}

/// Why a policy produced no verdict: a runtime fault, or no serving version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunErrorKind {
    /// Ran past its deadline.
    Timeout,
    /// Asked for more memory than its cap.
    MemoryLimit,
    /// Trapped (panic, `unreachable`, stack overflow, exit).
    Trap,
    /// Returned something that is not a decision.
    InvalidOutput,
    /// Has never loaded, so there is nothing to run.
    Unavailable,
}

impl RunErrorKind {
    /// The kind as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunErrorKind::Timeout => "timeout",
            RunErrorKind::MemoryLimit => "memory_limit",
            RunErrorKind::Trap => "trap",
            RunErrorKind::InvalidOutput => "invalid_output",
            RunErrorKind::Unavailable => "unavailable",
        }
    }
}

impl From<FaultKind> for RunErrorKind {
    fn from(kind: FaultKind) -> Self {
        match kind {
            FaultKind::Timeout => RunErrorKind::Timeout,
            FaultKind::MemoryLimit => RunErrorKind::MemoryLimit,
            FaultKind::Trap => RunErrorKind::Trap,
            FaultKind::InvalidOutput => RunErrorKind::InvalidOutput,
        }
    }
}

/// The error of a run that produced no verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// What went wrong.
    pub kind: RunErrorKind,
    /// A short explanation without host internals.
    pub message: String,
}

/// One policy's part in a gate: an entry of `policies_evaluated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRun {
    /// `global/<name>` or `<tenant>/<name>`.
    pub policy_id: String,
    /// The policy's name.
    pub policy_name: String,
    /// Its own verdict, or `error`.
    pub action: Action,
    /// Its reason, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Instantiation plus the call, in microseconds.
    pub duration_us: u64,
    /// First 12 hex digits of the serving `.wasm`'s sha256; absent when
    /// nothing serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Why there is no verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// The verdict that counts: the own verdict, or `on_error` for an error.
    #[serde(skip)]
    pub effective: Option<Verdict>,
    /// Bytes of the policy's output that did not reach the log.
    #[serde(skip)]
    pub dropped_log_bytes: u64,
}

impl PolicyRun {
    /// The verdict this run contributes to the decision. Runs read back from
    /// storage carry no effective verdict and count as their action, with
    /// errors failing closed.
    pub fn effective(&self) -> Verdict {
        self.effective.unwrap_or(match self.action {
            Action::Allow => Verdict::Allow,
            Action::RequireApproval => Verdict::RequireApproval,
            Action::Block | Action::Error => Verdict::Block,
        })
    }
}

/// Runs one policy on a prepared request. A policy with no serving version
/// is recorded as `unavailable` and counts as its `on_error`.
pub fn run_policy(
    runtime: &PolicyRuntime,
    entry: &PolicyEntry,
    request: &PolicyRequest,
) -> PolicyRun {
    let manifest = entry.manifest();
    let Some(serving) = &entry.serving else {
        return PolicyRun {
            policy_id: entry.id.clone(),
            policy_name: entry.name.clone(),
            action: Action::Error,
            reason: None,
            duration_us: 0,
            policy_version: None,
            error: Some(RunError {
                kind: RunErrorKind::Unavailable,
                message: "the policy has no loaded version".into(),
            }),
            effective: Some(manifest.on_error),
            dropped_log_bytes: 0,
        };
    };
    let evaluation = runtime.evaluate(
        &serving.compiled,
        request,
        manifest.settings_json(),
        manifest.limits(),
    );
    let dropped_log_bytes = evaluation.emit_logs(&entry.id, &serving.log_budget);
    let duration_us = u64::try_from(evaluation.duration.as_micros()).unwrap_or(u64::MAX);
    let (action, reason, error, effective) = match evaluation.outcome {
        Ok(decision) => (
            Action::from(decision.verdict),
            decision.reason.filter(|reason| !reason.is_empty()),
            None,
            decision.verdict,
        ),
        Err(fault) => {
            // A policy that faults on every gate is held to its log budget
            // too; the fault is in the gate's answer and the metrics anyway.
            let admitted = serving
                .log_budget
                .admit(fault.message.len(), Instant::now());
            if admitted == Admission::Logged {
                tracing::warn!(policy = %entry.id, kind = %fault.kind, message = %fault.message, "policy fault");
            }
            (
                Action::Error,
                None,
                Some(RunError {
                    kind: fault.kind.into(),
                    message: fault.message,
                }),
                manifest.on_error,
            )
        }
    };
    PolicyRun {
        policy_id: entry.id.clone(),
        policy_name: entry.name.clone(),
        action,
        reason,
        duration_us,
        policy_version: Some(serving.compiled.version().to_owned()),
        error,
        effective: Some(effective),
        dropped_log_bytes,
    }
}

/// Runs every policy that applies to this step for `tenant`, in evaluation
/// order, with no short-circuit (contract §4.2.3).
pub fn evaluate_policies(
    runtime: &PolicyRuntime,
    set: &PolicySet,
    tenant: &str,
    input: &PolicyInput,
) -> Vec<PolicyRun> {
    let request = PolicyRequest::new(input);
    set.applicable(tenant, &input.step.step_type)
        .map(|entry| run_policy(runtime, entry, &request))
        .collect()
}
