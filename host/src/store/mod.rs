//! Durable state in SQLite: workflows, steps, checkpoints and the audit
//! chains (design §7). All SQL of the crate lives under this module.
//!
//! - `migrations`: the schema (every table documented) and its versions.
//! - `writer`: the one writer thread and its group commit.
//! - `readers`: the pool of read-only connections.
//! - `backend`: [`StoreRead`] and [`StoreWrite`], implemented for SQLite.
//! - [`audit`]: the audit chains in SQL.
//! - [`approvals`]: the pending list and the holds due to expire.
//! - [`workflows`], [`steps`], [`checkpoints`]: workflows, steps and
//!   checkpoints in SQL.
//! - `error`: [`StoreError`].
//!
//! Writes go through [`Store::submit`] / [`Store::submit_async`] as jobs on
//! a `rusqlite::Transaction`; a job's result is returned only after its
//! commit, so an acknowledged change survives `kill -9` (and, with
//! `synchronous=FULL`, a power cut). Reads go through [`Store::read`].
//!
//! Inside the database a workflow's rows are keyed by `wid`, an integer
//! that grows with insertion order (schema v2), not by the random public
//! `workflow_id`: a gate's writes then land in the newest index pages
//! instead of random ones, and each commit writes fewer pages to the WAL.
//! The functions still take `workflow_id`; their SQL turns it into `wid`
//! with `wid = (SELECT wid FROM workflows WHERE workflow_id = ?)`, one probe
//! of `workflows`' unique index, and fills `wid` the same way on insert. An
//! unknown `workflow_id` gives NULL, which equals no row, so nothing
//! matches.
//!
//! The domain sees the store through two traits, [`StoreRead`] and
//! [`StoreWrite`] (module `backend`): the gate, approval and resume rules
//! and the handlers call only their methods. A later backend (PostgreSQL)
//! implements them for its own connection and transaction, plus this
//! module's `submit`/`read` plumbing; the table modules below are the
//! SQLite implementation.

pub mod approvals;
pub mod audit;
mod backend;
pub mod checkpoints;
mod error;
mod migrations;
#[cfg(test)]
mod query_plans;
mod readers;
pub mod steps;
#[cfg(test)]
mod test_db;
pub mod workflows;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction};

pub use backend::{StoreRead, StoreWrite};
pub use error::{SqlContext, StoreError};
pub use migrations::SCHEMA_VERSION;
use readers::ReadPool;
use writer::Writer;
pub(crate) use writer::in_savepoint;

/// The write transaction a job runs in, as the domain names it: today
/// SQLite's. Domain code calls only [`StoreRead`] and [`StoreWrite`] on it.
pub type WriteTx<'t> = Transaction<'t>;

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "wcp.db";

/// Read connections: reads are short indexed lookups, and the target
/// machine has 2 cores; 4 keeps a slow list from starving gate lookups.
const READERS: usize = 4;

/// Prepared statements each connection keeps. The store has a few dozen
/// distinct statements; rusqlite's default of 16 would evict and re-parse
/// them on every request.
const STATEMENT_CACHE: usize = 64;

/// How long a connection waits for a lock (a checkpoint, an offline tool)
/// before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The open database: one writer thread and a pool of readers. Cheap to
/// clone; the writer stops when the last clone is dropped or closed.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: ReadPool,
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/wcp.db`, creating the
    /// directory, and migrates it to [`SCHEMA_VERSION`]. A database written
    /// by a newer `wcp` is refused.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let open_error = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open_error)?;
        configure_writer(&conn).map_err(open_error)?;
        migrations::migrate(&mut conn, &path)?;
        // Readers open after the writer switched to WAL: a read-only
        // connection cannot make that switch itself.
        let readers = (0..READERS)
            .map(|_| open_reader(&path).map_err(open_error))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Writer::start(conn)?,
                readers: ReadPool::new(readers),
                path,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `job` on the writer and waits until it is committed. Blocks;
    /// from async code use [`Store::submit_async`].
    ///
    /// The job runs in its own savepoint: returning `Err` rolls back its
    /// writes only, and the error comes back here. Any `E` that a
    /// [`StoreError`] converts into works, so a domain refusal discovered
    /// inside the transaction (a 409 after a race) rolls back too.
    pub fn submit<T, E, F>(&self, job: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.inner.writer.submit(job)
    }

    /// As [`Store::submit`], for async code. The job is queued when this is
    /// called, not when the future is first polled.
    pub fn submit_async<T, E, F>(
        &self,
        job: F,
    ) -> impl Future<Output = Result<T, E>> + Send + 'static + use<T, E, F>
    where
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.inner.writer.submit_async(job)
    }

    /// Runs `read` on a read-only connection, inside one read transaction
    /// (one consistent snapshot). Blocks while all readers are busy; from
    /// async code use [`Store::read_async`].
    pub fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.inner.readers.read(read)
    }

    /// As [`Store::read`], on tokio's blocking pool.
    pub async fn read_async<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.read(read)).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => Err(StoreError::JobPanicked),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Batches the writer has committed since the store opened (for tests
    /// of group commit, and metrics).
    pub fn commits(&self) -> u64 {
        self.inner.writer.commits()
    }

    /// Stops the writer after it has committed and answered everything
    /// queued, and waits for it. With other clones alive, this only drops
    /// this handle; the last one to go does the shutdown.
    pub fn close(self) {
        if let Ok(mut inner) = Arc::try_unwrap(self.inner) {
            inner.writer.shutdown();
        }
    }
}

/// Opens `<data_dir>/wcp.db` read-only for offline tools (`wcp audit
/// verify`): creates nothing, migrates nothing, and refuses a database with
/// no schema or a newer one.
pub fn open_read_only(data_dir: &Path) -> Result<Connection, StoreError> {
    if !data_dir.is_dir() {
        return Err(StoreError::Missing {
            what: "data directory",
            path: data_dir.to_owned(),
        });
    }
    let path = data_dir.join(DB_FILE);
    if !path.is_file() {
        return Err(StoreError::Missing {
            what: "database",
            path,
        });
    }
    let conn = open_reader(&path).map_err(|source| StoreError::Open {
        path: path.clone(),
        source,
    })?;
    migrations::check_readable(&conn, &path)?;
    Ok(conn)
}

fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer or each other. Persistent in
    // the file, so readers and offline tools inherit it.
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "SQLite refused WAL mode; reads will block writes");
    }
    // FULL: fsync the WAL at every commit, so an answered job is durable
    // even across a power cut; group commit pays it once per batch.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}
