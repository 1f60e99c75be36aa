//! Approval expiry at the HTTP edge: the handlers' calls into
//! [`crate::approval::Expiry`], with its failures as 500s, and the sweeper
//! started beside the server.

use std::time::Duration;

use super::error::EXPIRY_FAILED;
use super::{ApiError, AppState};
use crate::store::StoreError;
use crate::store::approvals::DueScope;

impl AppState {
    /// Applies the due approval expiries of `workflow_id` (whoever owns
    /// it). Call it before a request reads or changes that workflow, after
    /// the request's input is validated.
    pub async fn expire_due(&self, workflow_id: &str) -> Result<(), ApiError> {
        self.gates
            .expiry()
            .apply(DueScope::Workflow(workflow_id.to_owned()))
            .await
            .map(drop)
            .map_err(|error| ApiError::internal(EXPIRY_FAILED, error))
    }

    /// Applies the due approval expiries of every workflow of `tenant` and
    /// `org`: for requests that read many workflows (lists, pending).
    pub async fn expire_due_in(&self, tenant: &str, org: &str) -> Result<(), ApiError> {
        let scope = DueScope::Tenant {
            tenant: tenant.to_owned(),
            org: org.to_owned(),
        };
        self.gates
            .expiry()
            .apply(scope)
            .await
            .map(drop)
            .map_err(|error| ApiError::internal(EXPIRY_FAILED, error))
    }

    /// Applies every due approval expiry (the sweeper's pass); returns how
    /// many holds expired.
    pub async fn expire_all_due(&self) -> Result<usize, StoreError> {
        self.gates
            .expiry()
            .apply(DueScope::All)
            .await
            .map(|expired| expired.len())
    }
}

/// The 500 of an expiry that failed.
pub(super) fn expiry_failed(error: StoreError) -> ApiError {
    ApiError::internal(EXPIRY_FAILED, error)
}

/// Expires due approvals every `every` until `stop` resolves (see
/// [`crate::approval::Expiry::sweep`]).
pub async fn sweep_approvals(
    state: AppState,
    every: Duration,
    stop: impl Future<Output = ()> + Send,
) {
    state.gates.expiry().clone().sweep(every, stop).await;
}
