//! Durable state: workflows, steps, checkpoints and the audit chains
//! (design §7), behind one interface that names no database library.
//!
//! - `traits`: [`StoreRead`] and [`StoreWrite`], what the domain may ask
//!   of a snapshot and of a write transaction.
//! - `rows`: the values they read and write ([`WorkflowRow`], [`StepRow`],
//!   [`CheckpointRow`], …) and the filters of the lists.
//! - `error`: [`StoreError`].
//! - [`sqlite`]: the embedded backend, the default. All SQL and every
//!   rusqlite type of the crate live there.
//!
//! The domain holds a [`Store`] and gives it closures: [`Store::submit`]
//! runs one on a write transaction (`&WriteTx`, a `dyn StoreWrite`) and
//! answers only after its commit, so an acknowledged change survives
//! `kill -9` (and, with SQLite's `synchronous=FULL`, a power cut);
//! [`Store::read`] runs one on a consistent snapshot (`&ReadTx`, a
//! `dyn StoreRead`). A closure that returns `Err` has its writes rolled
//! back, whatever the backend; [`in_savepoint`] nests that inside a job.
//!
//! # How a second backend plugs in
//!
//! PostgreSQL (for several replicas on one database) is meant to fit
//! beside SQLite without the domain changing:
//!
//! 1. A module `store/postgres/` holds its SQL, its migrations and its
//!    pool, and is the only place that names its driver.
//! 2. Its transaction type implements [`StoreWrite`] and its snapshot
//!    type [`StoreRead`]. The rules that need a lock with several writers
//!    take it inside those methods, where SQLite needs none because it has
//!    one writer: `append_audit` locks the chain's head row (`SELECT …
//!    FOR UPDATE`), `due_holds` claims holds with `FOR UPDATE SKIP
//!    LOCKED`, and the tenant's running count is read under a lock on the
//!    tenant's row.
//! 3. [`Store`]'s private `Backend` gains a variant, and `submit`,
//!    `submit_async` and `read` a match arm each. Where SQLite batches
//!    every queued job into one transaction (group commit, one fsync for
//!    many gates), PostgreSQL runs each job in its own transaction on a
//!    pooled connection, and answers after its `COMMIT`, as SQLite answers
//!    after the batch's.
//! 4. The driver is async (tokio-postgres), the traits are not: a domain
//!    rule is a short run of reads and writes with decisions between them,
//!    clearest as straight-line code, and SQLite's writer is a plain
//!    thread. A PostgreSQL job therefore runs on tokio's blocking pool,
//!    holding its pooled connection, and each trait method waits on the
//!    driver's future there (`Handle::block_on`, as the `postgres` crate
//!    wraps tokio-postgres). The pool's size bounds those threads; the
//!    async handlers await `submit_async` and `read_async` either way.

mod error;
mod rows;
pub mod sqlite;
mod traits;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

pub use error::{DbError, StoreError};
pub use rows::{
    AuditFilter, CheckpointOwner, CheckpointRow, DueScope, PendingHold, StepRow, WorkflowFilter,
    WorkflowRow,
};
pub use sqlite::{DB_FILE, SCHEMA_VERSION};
pub use traits::{StoreRead, StoreWrite};

/// The write transaction a job runs in. Domain code calls only
/// [`StoreRead`] and [`StoreWrite`] on it.
pub type WriteTx<'t> = dyn StoreWrite + 't;

/// The consistent snapshot a read runs on.
pub type ReadTx<'c> = dyn StoreRead + 'c;

/// The open store. Cheap to clone; the backend shuts down when the last
/// clone is dropped or closed.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

/// The database behind a [`Store`]; one variant per backend.
#[derive(Debug)]
enum Backend {
    /// The embedded database in the data directory.
    Sqlite(sqlite::Sqlite),
}

impl Store {
    /// Opens (creating if needed) the embedded database `<data_dir>/wcp.db`,
    /// creating the directory, and migrates it to [`SCHEMA_VERSION`]. A
    /// database written by a newer `wcp` is refused.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Arc::new(Backend::Sqlite(sqlite::Sqlite::open(data_dir)?)),
        })
    }

    /// Which database this is, for the startup log: the backend and where
    /// it lives, never a credential.
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::Sqlite(db) => format!("SQLite {}", db.path().display()),
        }
    }

    /// The SQLite backend, for its own tests and tools; `None` on another
    /// backend. Domain code never needs it.
    pub fn sqlite(&self) -> Option<&sqlite::Sqlite> {
        match &*self.backend {
            Backend::Sqlite(db) => Some(db),
        }
    }

    /// Runs `job` in a write transaction and waits until it is committed.
    /// Blocks; from async code use [`Store::submit_async`].
    ///
    /// The job's writes are kept only if it returns `Ok`: returning `Err`
    /// rolls back its writes only, and the error comes back here. Any `E`
    /// that a [`StoreError`] converts into works, so a domain refusal
    /// discovered inside the transaction (a 409 after a race) rolls back
    /// too.
    pub fn submit<T, E, F>(&self, job: F) -> Result<T, E>
    where
        F: FnOnce(&WriteTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match &*self.backend {
            Backend::Sqlite(db) => db.writer().submit(move |tx| job(tx)),
        }
    }

    /// As [`Store::submit`], for async code. The job is queued when this is
    /// called, not when the future is first polled.
    pub fn submit_async<T, E, F>(
        &self,
        job: F,
    ) -> impl Future<Output = Result<T, E>> + Send + 'static + use<T, E, F>
    where
        F: FnOnce(&WriteTx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match &*self.backend {
            Backend::Sqlite(db) => db.writer().submit_async(move |tx| job(tx)),
        }
    }

    /// Runs `read` on one consistent snapshot. Blocks while every reader
    /// is busy; from async code use [`Store::read_async`].
    pub fn read<T>(
        &self,
        read: impl FnOnce(&ReadTx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &*self.backend {
            Backend::Sqlite(db) => db.read(|conn| read(conn)),
        }
    }

    /// As [`Store::read`], on tokio's blocking pool.
    pub async fn read_async<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        F: FnOnce(&ReadTx) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.read(read)).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => Err(StoreError::JobPanicked),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Write transactions committed since the store opened: with SQLite's
    /// group commit, one per batch (for tests of group commit, and
    /// metrics).
    pub fn commits(&self) -> u64 {
        match &*self.backend {
            Backend::Sqlite(db) => db.writer().commits(),
        }
    }

    /// Stops the backend after it has committed and answered everything
    /// queued, and waits for it. With other clones alive, this only drops
    /// this handle; the last one to go does the shutdown.
    pub fn close(self) {
        if let Ok(backend) = Arc::try_unwrap(self.backend) {
            match backend {
                Backend::Sqlite(db) => db.close(),
            }
        }
    }
}

/// Opens the embedded database of `data_dir` read-only for offline tools
/// (`wcp audit verify`): creates nothing, migrates nothing, and refuses a
/// database with no schema or a newer one.
pub fn open_read_only(data_dir: &Path) -> Result<Box<ReadTx<'static>>, StoreError> {
    sqlite::open_read_only(data_dir)
}

/// Runs `work` in a savepoint of `tx`, keeping its writes only if it
/// succeeds. A panicking `work` is caught and rolled back, so one bad job
/// cannot take a writer down. Nests: a job can keep its first part when a
/// later part fails.
pub fn in_savepoint<T, E: From<StoreError>>(
    tx: &WriteTx,
    work: impl FnOnce(&WriteTx) -> Result<T, E>,
) -> Result<T, E> {
    tx.open_savepoint()?;
    let result = catch_unwind(AssertUnwindSafe(|| work(tx)))
        .unwrap_or_else(|_| Err(E::from(StoreError::JobPanicked)));
    match tx.close_savepoint(result.is_ok()) {
        Ok(()) => result,
        Err(error) => Err(E::from(error)),
    }
}
