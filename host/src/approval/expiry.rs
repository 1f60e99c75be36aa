//! Approval expiry (contract §3.2): every request that touches a workflow
//! first applies its due expiries, and a sweeper expires the holds nobody
//! touches, so nobody ever sees an overdue `pending`.
//!
//! Expiring writes, but almost every request finds nothing due. A request
//! that writes anyway applies the expiries in the same writer job as its
//! own change ([`Expiry::write_after`]). Otherwise a read connection probes
//! the pending-expiry index first, and only a hit queues a write job, which
//! finds the due holds again inside its transaction.

use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::{ExpiredHold, expire_due};
use crate::clock;
use crate::store::{DueScope, ReadTx, Store, StoreError, WriteTx, in_savepoint};
use crate::telemetry::Metrics;

/// Applies due approval expiries, counting and logging each.
#[derive(Debug, Clone)]
pub struct Expiry {
    store: Store,
    metrics: Metrics,
}

impl Expiry {
    /// Expiry over `store`, counted in `metrics`.
    pub fn new(store: Store, metrics: Metrics) -> Self {
        Expiry { store, metrics }
    }

    /// Applies the due expiries of `scope`; returns the holds that expired.
    pub async fn apply(&self, scope: DueScope) -> Result<Vec<ExpiredHold>, StoreError> {
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
            .submit_async(move |tx| expire_due(tx, &scope, &clock::now_rfc3339()))
            .await?;
        self.note(&expired);
        Ok(expired)
    }

    /// Runs `work` on the writer right after applying the due expiries of
    /// `workflow_id`, in one job: `work` sees the expired holds, and the
    /// expiries are kept even when `work` fails and is rolled back. The
    /// outer error is the expiry failing, in which case `work` never ran.
    pub async fn write_after<T, E, F>(
        &self,
        workflow_id: &str,
        work: F,
    ) -> Result<Result<T, E>, StoreError>
    where
        F: FnOnce(&WriteTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let scope = DueScope::Workflow(workflow_id.to_owned());
        let (expired, result) = self
            .store
            .submit_async(move |tx| -> Result<_, StoreError> {
                let expired = expire_due(tx, &scope, &clock::now_rfc3339())?;
                Ok((expired, in_savepoint(tx, work)))
            })
            .await?;
        self.note(&expired);
        Ok(result)
    }

    /// Runs `read` on a snapshot taken right after applying the due
    /// expiries of `workflow_id`, so it never sees an overdue `pending`.
    /// The outer error is the expiry failing, in which case `read` never
    /// ran; the inner one is the read's own.
    pub async fn read_after<T, F>(
        &self,
        workflow_id: &str,
        read: F,
    ) -> Result<Result<T, StoreError>, StoreError>
    where
        F: FnOnce(&ReadTx) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.apply(DueScope::Workflow(workflow_id.to_owned()))
            .await?;
        Ok(self.store.read_async(read).await)
    }

    /// Expires due approvals every `every` until `stop` resolves. A failed
    /// pass is logged and retried at the next tick; a pass in progress
    /// when `stop` resolves finishes first.
    pub async fn sweep(self, every: Duration, stop: impl Future<Output = ()> + Send) {
        // `interval` refuses a zero period.
        let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
        // After a slow pass, wait a whole interval rather than catching up.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = ticks.tick() => {
                    if let Err(error) = self.apply(DueScope::All).await {
                        tracing::warn!(%error, "approval sweep failed; retrying at the next tick");
                    }
                }
            }
        }
    }

    fn note(&self, expired: &[ExpiredHold]) {
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
}
