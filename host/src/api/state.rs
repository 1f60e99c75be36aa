//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

use super::{ApiError, Metrics};
use crate::auth::Authenticator;
use crate::config::ServeConfig;
use crate::policy_set::PolicySet;
use crate::runtime::PolicyRuntime;

/// Shared state of the HTTP edge. Cloning is cheap: every field is shared.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The sandboxed policy runtime.
    pub runtime: Arc<PolicyRuntime>,
    /// The current policy snapshot. A request loads it once and keeps that
    /// `Arc<PolicySet>` for its whole run, so a reload never changes the
    /// policies under a gate in flight.
    pub policies: Arc<ArcSwap<PolicySet>>,
    /// Set once the first policy load is done (and, later, the store is open).
    pub ready: Arc<AtomicBool>,
    /// The server's settings.
    pub config: Arc<ServeConfig>,
    /// Prometheus series of this server.
    pub metrics: Metrics,
    /// How callers are identified.
    pub auth: Arc<Authenticator>,
    /// Bounds policy evaluations running at once to the number of cores.
    evaluations: Arc<Semaphore>,
}

impl AppState {
    /// State over `runtime`, with an empty policy set and not yet ready.
    pub fn new(config: ServeConfig, runtime: Arc<PolicyRuntime>, auth: Authenticator) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        AppState {
            runtime,
            policies: Arc::new(ArcSwap::from_pointee(PolicySet::default())),
            ready: Arc::new(AtomicBool::new(false)),
            config: Arc::new(config),
            metrics: Metrics::new(),
            auth: Arc::new(auth),
            evaluations: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Whether `/ready` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Publishes a policy set and updates the policy gauges.
    pub fn publish(&self, set: PolicySet) {
        self.metrics.policies(&set);
        self.policies.store(Arc::new(set));
    }

    /// Marks the server ready.
    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Runs CPU-bound policy work off the async executor, at most one job per
    /// core at a time, so a slow policy never stalls the HTTP threads.
    pub async fn run_blocking<T, F>(&self, operation: &'static str, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&PolicyRuntime) -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.evaluations)
            .acquire_owned()
            .await
            .map_err(|error| ApiError::internal(operation, error))?;
        let runtime = Arc::clone(&self.runtime);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&runtime)
        })
        .await
        .map_err(|error| ApiError::internal(operation, error))
    }
}
