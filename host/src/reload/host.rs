//! [`PolicyHost`]: what serves policies, and what every change of them
//! goes through. The HTTP state holds one; the watcher and the policy API
//! change the serving set only through it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::{Mutex, MutexGuard};

use crate::policy_set::PolicySet;
use crate::runtime::PolicyRuntime;
use crate::store::Store;
use crate::telemetry::Metrics;

/// The runtime, the serving snapshot, where the policy files are, and the
/// lock that every change takes.
#[derive(Debug)]
pub struct PolicyHost {
    runtime: Arc<PolicyRuntime>,
    /// The current snapshot. A request loads it once and keeps that
    /// `Arc<PolicySet>` for its whole run, so a change never alters the
    /// policies under a gate in flight.
    current: ArcSwap<PolicySet>,
    /// Held by every change (rescan, upload, removal), so two changes never
    /// build on the same snapshot.
    changes: Mutex<()>,
    dir: PathBuf,
    rescan: Duration,
    /// Where changes are audited.
    pub(super) store: Store,
    /// Where changes are counted.
    pub(super) metrics: Metrics,
}

impl PolicyHost {
    /// A host over `runtime` for the policy directory `dir`, rescanned
    /// every `rescan`, with an empty set until the first load.
    pub fn new(
        runtime: Arc<PolicyRuntime>,
        dir: PathBuf,
        rescan: Duration,
        store: Store,
        metrics: Metrics,
    ) -> Self {
        PolicyHost {
            runtime,
            current: ArcSwap::from_pointee(PolicySet::default()),
            changes: Mutex::new(()),
            dir,
            rescan,
            store,
            metrics,
        }
    }

    /// The serving snapshot, for a short look.
    pub fn load(&self) -> Guard<Arc<PolicySet>> {
        self.current.load()
    }

    /// The serving snapshot, to keep.
    pub fn load_full(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Serves `set` from now on and updates the policy gauges.
    pub fn publish(&self, set: PolicySet) {
        self.metrics.policies(&set);
        self.current.store(Arc::new(set));
    }

    /// The sandboxed runtime the policies run in.
    pub fn runtime(&self) -> &Arc<PolicyRuntime> {
        &self.runtime
    }

    /// The policy directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How often the directory is rescanned when no event says so.
    pub fn rescan(&self) -> Duration {
        self.rescan
    }

    /// Waits for and holds the change lock.
    pub(super) async fn lock_changes(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().await
    }
}
