//! Why the domain refuses a request once its input is valid, shared by the
//! gate, approvals and workflow ends: a [`Refusal`] (the workflow or step is
//! missing, or its state forbids the change), or a [`FlowError`] when the
//! store fails instead. Plain values: `api` turns them into HTTP answers;
//! this module names no HTTP, no SQL and no other domain module.

use crate::store::StoreError;

/// The 404 of a missing or foreign workflow.
pub const WORKFLOW_NOT_FOUND: &str = "Workflow not found";

/// Why a request is refused once its input is valid: the workflow or step
/// is missing, or its state forbids the change (409). Nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 404 with this message.
    NotFound(&'static str),
    /// 409 with this code and message.
    Conflict {
        /// `WORKFLOW_TERMINAL`, `APPROVAL_PENDING`, …
        code: &'static str,
        /// The contract's message.
        message: String,
    },
    /// 409 `IDEMPOTENCY_KEY_MISMATCH` (nested envelope, contract §1.5).
    KeyMismatch {
        /// The workflow.
        workflow_id: String,
        /// The step.
        step_id: String,
        /// Recorded key, `""` when none.
        expected: String,
        /// Sent key, `""` when none.
        received: String,
    },
    /// 400 `BAD_REQUEST`: a value the request may send, but not here (a
    /// usage that would take a workflow's total past what is stored).
    Invalid(String),
    /// 429 `CONCURRENT_EXECUTION_LIMIT`: the tenant already has `limit`
    /// workflows in progress (contract §2.1).
    ConcurrencyLimit {
        /// The tenant's limit.
        limit: u64,
    },
}

impl Refusal {
    /// A 409 with `code` and `message`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Refusal::Conflict {
            code,
            message: message.into(),
        }
    }
}

/// What can stop a workflow write: a refusal, or the store failing.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The request is refused; nothing changed.
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Refusal> for FlowError {
    fn from(refusal: Refusal) -> Self {
        FlowError::Refused(refusal)
    }
}

/// The 409 for another step waiting for approval.
pub fn approval_pending(step_id: &str) -> Refusal {
    Refusal::conflict(
        "APPROVAL_PENDING",
        format!("workflow has pending approval for step {step_id}"),
    )
}
