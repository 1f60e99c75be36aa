//! What every handler shares: handles to the domain, the settings and the
//! readiness flag; no logic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::Caller;
use crate::config::ServeConfig;
use crate::gate::Gates;
use crate::policy_set::PolicySet;
use crate::reload::PolicyHost;
use crate::runtime::PolicyRuntime;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tenants::Authenticator;

/// Shared state of the HTTP edge. Cloning is one reference count: every
/// request clones it several times (each middleware and the handler), so
/// the fields live behind one `Arc` rather than one each.
#[derive(Debug, Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

/// What [`AppState`] shares; its fields read as the state's own.
#[derive(Debug)]
pub struct Shared {
    /// The runtime and the serving policy snapshot, which every change of
    /// the policies goes through.
    pub policies: Arc<PolicyHost>,
    /// Set once the first policy load is done (and, later, the store is open).
    pub ready: AtomicBool,
    /// The server's settings.
    pub config: ServeConfig,
    /// Prometheus series of this server.
    pub metrics: Metrics,
    /// How callers are identified.
    pub auth: Authenticator,
    /// Workflows, steps, checkpoints and audit.
    pub store: Store,
    /// The gate, from the workflow's lock to its record, with the
    /// evaluation pool, the workflow locks and approval expiry.
    pub gates: Gates,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl AppState {
    /// State over `runtime` and `store`, with an empty policy set and not
    /// yet ready.
    pub fn new(
        config: ServeConfig,
        runtime: Arc<PolicyRuntime>,
        auth: Authenticator,
        store: Store,
    ) -> Self {
        let metrics = Metrics::new();

        let policies = PolicyHost::new(
            runtime,
            config.policy_dir.clone(),
            config.policy_rescan,
            store.clone(),
            metrics.clone(),
        );
        let policies = Arc::new(policies);
        let gates = Gates::new(Arc::clone(&policies), store.clone(), metrics.clone());
        AppState {
            shared: Arc::new(Shared {
                policies,
                ready: AtomicBool::new(false),
                config,
                metrics,
                auth,
                store,
                gates,
            }),
        }
    }

    /// The most workflows `caller`'s tenant may have in progress when it
    /// creates or revives one (contract §2.1): its credentials' limit, else
    /// `--max-concurrent-workflows`, else none.
    pub fn workflow_limit(&self, caller: &Caller) -> Option<u64> {
        caller
            .workflow_limit
            .or(self.config.max_concurrent_workflows.map(u64::from))
    }

    /// Whether `/ready` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Publishes a policy set and updates the policy gauges.
    pub fn publish(&self, set: PolicySet) {
        self.policies.publish(set);
    }

    /// Marks the server ready.
    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }
}
