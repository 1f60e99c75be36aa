//! Durable state: workflows, steps, checkpoints and the audit chains
//! (design §7), behind one interface that names no database library.
//!
//! - `traits`: [`StoreRead`] and [`StoreWrite`], what the domain may ask
//!   of a snapshot and of a write transaction.
//! - `rows`: the values they read and write ([`WorkflowRow`], [`StepRow`],
//!   [`CheckpointRow`], …) and the filters of the lists.
//! - `error`: [`StoreError`].
//! - [`sqlite`] and [`postgres`]: the backends. All SQL of the crate, and
//!   every type of rusqlite and of tokio-postgres, live there.
//!
//! The domain holds a [`Store`] and gives it closures: [`Store::submit`]
//! runs one on a write transaction (`&WriteTx`, a `dyn StoreWrite`) and
//! answers only after its commit, so an acknowledged change survives
//! `kill -9` (and, with SQLite's `synchronous=FULL`, a power cut);
//! [`Store::read`] runs one on a consistent snapshot (`&ReadTx`, a
//! `dyn StoreRead`). A closure that returns `Err` has its writes rolled
//! back, whatever the backend; [`in_savepoint`] nests that inside a job.
//!
//! # Two backends
//!
//! - [`sqlite`], the default: one file in the data directory, one writer
//!   thread that batches every queued job into one transaction (group
//!   commit: one fsync for many gates), and read-only connections.
//! - [`postgres`], for several replicas on one database: each job runs in
//!   its own transaction on a pooled connection and is answered after its
//!   `COMMIT`, as SQLite answers after its batch's. The rules that SQLite
//!   keeps by having one writer take a lock there instead, inside the
//!   trait methods, so the domain code is the same: a write transaction
//!   reads its workflow `FOR UPDATE`, the tenant's running count and each
//!   audit chain's head are taken under advisory locks, and due holds are
//!   claimed `FOR UPDATE SKIP LOCKED`.
//!
//! The driver is async (tokio-postgres), the traits are not: a domain rule
//! is a short run of reads and writes with decisions between them, clearest
//! as straight-line code, and SQLite's writer is a plain thread. A
//! PostgreSQL job therefore runs on a blocking thread of the backend's own
//! runtime, holding its pooled connection, and waits on each statement
//! there. The pool's size bounds those connections; the async handlers
//! await `submit_async` and `read_async` either way.

mod columns;
pub mod copy;
mod error;
pub mod postgres;
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

/// A queued write job's answer.
type Pending<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'static>>;

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
    /// A PostgreSQL database several replicas share.
    Postgres(postgres::Postgres),
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

    /// Connects to the PostgreSQL database at `url` and migrates it to
    /// [`postgres::SCHEMA_VERSION`]; replicas starting together migrate
    /// once. A database written by a newer `wcp` is refused. Blocks.
    pub fn open_postgres(url: &str) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Arc::new(Backend::Postgres(postgres::Postgres::open(url)?)),
        })
    }

    /// Connects to the PostgreSQL database at `url` for offline tools (`wcp
    /// audit verify`): migrates nothing, and refuses a database with no
    /// schema or a newer one. Blocks.
    pub fn open_postgres_existing(url: &str) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Arc::new(Backend::Postgres(postgres::Postgres::open_existing(url)?)),
        })
    }

    /// Which database this is, for the startup log: the backend and where
    /// it lives, never a credential.
    pub fn describe(&self) -> String {
        match &*self.backend {
            Backend::Sqlite(db) => format!("SQLite {}", db.path().display()),
            Backend::Postgres(db) => format!("PostgreSQL {}", db.target()),
        }
    }

    /// The SQLite backend, for its own tests and tools; `None` on another
    /// backend. Domain code never needs it.
    pub fn sqlite(&self) -> Option<&sqlite::Sqlite> {
        match &*self.backend {
            Backend::Sqlite(db) => Some(db),
            Backend::Postgres(_) => None,
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
            Backend::Postgres(db) => db.submit(job),
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
            Backend::Sqlite(db) => {
                Box::pin(db.writer().submit_async(move |tx| job(tx))) as Pending<Result<T, E>>
            }
            Backend::Postgres(db) => {
                let store = self.clone();
                let task = db.handle().spawn_blocking(move || store.submit(job));
                Box::pin(async move {
                    match task.await {
                        Ok(result) => result,
                        Err(error) if error.is_panic() => Err(E::from(StoreError::JobPanicked)),
                        Err(_) => Err(E::from(StoreError::Closed)),
                    }
                }) as Pending<Result<T, E>>
            }
        }
    }

    /// Runs `read` on one consistent snapshot. Blocks while every reader
    /// is busy; from async code use [`Store::read_async`].
    pub fn read<T: Send>(
        &self,
        read: impl FnOnce(&ReadTx) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        match &*self.backend {
            Backend::Sqlite(db) => db.read(|conn| read(conn)),
            Backend::Postgres(db) => db.read(read),
        }
    }

    /// As [`Store::read`], on tokio's blocking pool.
    pub async fn read_async<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        F: FnOnce(&ReadTx) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        let task = match &*self.backend {
            Backend::Sqlite(_) => tokio::task::spawn_blocking(move || store.read(read)),
            // On the backend's own threads, which wait on its driver.
            Backend::Postgres(db) => db.handle().spawn_blocking(move || store.read(read)),
        };
        match task.await {
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
            Backend::Postgres(db) => db.commits(),
        }
    }

    /// Stops the backend after it has committed and answered everything
    /// queued, and waits for it. With other clones alive, this only drops
    /// this handle; the last one to go does the shutdown.
    pub fn close(self) {
        if let Ok(backend) = Arc::try_unwrap(self.backend) {
            match backend {
                Backend::Sqlite(db) => db.close(),
                Backend::Postgres(db) => db.close(),
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
