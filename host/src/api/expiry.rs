//! Approval expiry at the HTTP edge (contract §3.2): every request that
//! touches a workflow first applies its due expiries, and a sweeper
//! expires the holds nobody touches, so nobody ever sees an overdue
//! `pending`.
//!
//! Expiring writes, but almost every request finds nothing due. A request
//! that writes anyway applies the expiries in the same writer job as its
//! own change ([`AppState::write_after_expiry`]). Otherwise a read
//! connection probes the pending-expiry index first (the gate does it in
//! the same read as its own), and only a hit queues a write job, which
//! finds the due holds again inside its transaction.

use std::time::Duration;

use tokio::time::MissedTickBehavior;

use rusqlite::Transaction;

use super::{ApiError, AppState};
use crate::approval::{self, ExpiredHold};
use crate::clock;
use crate::store::approvals::DueScope;
use crate::store::{StoreError, StoreRead, in_savepoint};

const EXPIRY_FAILED: &str = "Failed to expire approvals";

impl AppState {
    /// Applies the due approval expiries of `workflow_id` (whoever owns
    /// it). Call it before a request reads or changes that workflow, after
    /// the request's input is validated.
    pub async fn expire_due(&self, workflow_id: &str) -> Result<(), ApiError> {
        self.expire(DueScope::Workflow(workflow_id.to_owned()))
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
        self.expire(scope)
            .await
            .map(drop)
            .map_err(|error| ApiError::internal(EXPIRY_FAILED, error))
    }

    /// Applies every due approval expiry (the sweeper's pass); returns how
    /// many holds expired.
    pub async fn expire_all_due(&self) -> Result<usize, StoreError> {
        self.expire(DueScope::All)
            .await
            .map(|expired| expired.len())
    }

    /// Runs `work` on the writer right after applying the due approval
    /// expiries of `workflow_id`, in one job: `work` sees the expired holds,
    /// and the expiries are kept even when `work` fails and is rolled back.
    /// The outer error is the expiry failing, in which case `work` never ran.
    pub async fn write_after_expiry<T, E, F>(
        &self,
        workflow_id: &str,
        work: F,
    ) -> Result<Result<T, E>, ApiError>
    where
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let scope = DueScope::Workflow(workflow_id.to_owned());
        let (expired, result) = self
            .store
            .submit_async(move |tx| -> Result<_, StoreError> {
                let expired = approval::expire_due(tx, &scope, &clock::now_rfc3339())?;
                Ok((expired, in_savepoint(tx, work)))
            })
            .await
            .map_err(|error| ApiError::internal(EXPIRY_FAILED, error))?;
        self.note_expired(&expired);
        Ok(result)
    }

    fn note_expired(&self, expired: &[ExpiredHold]) {
        if expired.is_empty() {
            return;
        }
        self.metrics.approvals_expired(expired.len() as u64);
        for hold in expired {
            tracing::info!(
                workflow_id = %hold.workflow_id,
                step_id = %hold.step_id,
                aborted = hold.aborted,
                "approval expired"
            );
        }
    }

    async fn expire(&self, scope: DueScope) -> Result<Vec<ExpiredHold>, StoreError> {
        let probe = scope.clone();
        let due = self
            .store
            .read_async(move |conn| conn.any_due(&probe, &clock::now_rfc3339()))
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        let expired = self
            .store
            .submit_async(move |tx| approval::expire_due(tx, &scope, &clock::now_rfc3339()))
            .await?;
        self.note_expired(&expired);
        Ok(expired)
    }
}

/// Expires due approvals every `every` until `stop` resolves. A failed
/// pass is logged and retried at the next tick; a pass in progress when
/// `stop` resolves finishes first.
pub async fn sweep_approvals(
    state: AppState,
    every: Duration,
    stop: impl Future<Output = ()> + Send,
) {
    // `interval` refuses a zero period.
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
    // After a slow pass, wait a whole interval rather than catching up.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = ticks.tick() => {
                if let Err(error) = state.expire_all_due().await {
                    tracing::warn!(%error, "approval sweep failed; retrying at the next tick");
                }
            }
        }
    }
}
