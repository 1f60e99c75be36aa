//! The evaluation pool and the per-workflow gate locks: the two things
//! every gate, approval and resume shares besides the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, Semaphore};

use crate::runtime::PolicyRuntime;

/// Runs CPU-bound policy work off the async executor, at most one job per
/// core at a time, so a slow policy never stalls the HTTP threads.
#[derive(Debug, Clone)]
pub struct EvaluationPool {
    runtime: Arc<PolicyRuntime>,
    permits: Arc<Semaphore>,
}

/// The pool could not run a job: it was closed, or the job panicked.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PoolError(String);

impl EvaluationPool {
    /// A pool over `runtime`, as wide as the machine has cores.
    pub fn new(runtime: Arc<PolicyRuntime>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        EvaluationPool {
            runtime,
            permits: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Runs `work` with the runtime on the blocking pool, once a core is
    /// free.
    pub async fn run<T, F>(&self, work: F) -> Result<T, PoolError>
    where
        F: FnOnce(&PolicyRuntime) -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|error| PoolError(error.to_string()))?;
        let runtime = Arc::clone(&self.runtime);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&runtime)
        })
        .await
        .map_err(|error| PoolError(error.to_string()))
    }
}

/// Serialises the gates of one workflow (contract §4.1), so concurrent
/// first gates of a step run the policies once; approvals and resumes take
/// the same lock.
#[derive(Debug, Default)]
pub struct WorkflowLocks {
    locks: Mutex<HashMap<String, Weak<AsyncMutex<()>>>>,
}

impl WorkflowLocks {
    /// Waits for and holds the lock of `workflow_id`. Locks nobody holds
    /// are dropped with their last guard.
    pub async fn lock(&self, workflow_id: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            match locks.get(workflow_id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    locks.retain(|_, lock| lock.strong_count() > 0);
                    let lock = Arc::new(AsyncMutex::new(()));
                    locks.insert(workflow_id.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}
