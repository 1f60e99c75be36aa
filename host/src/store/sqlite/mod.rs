//! The SQLite backend: one file in the data directory, one writer thread
//! with group commit, and a pool of read-only connections. Everything in
//! the crate that names rusqlite lives under this module.
//!
//! - `migrations`: the schema (every table documented) and its versions,
//!   the SQL of each under `migrations/`.
//! - `writer`: the one writer thread and its group commit.
//! - `readers`: the pool of read-only connections.
//! - `backend`: [`StoreRead`](crate::store::StoreRead) and
//!   [`StoreWrite`](crate::store::StoreWrite) for a connection and the
//!   writer's transaction.
//! - [`audit`], [`approvals`], [`workflows`], [`steps`], [`checkpoints`]:
//!   the SQL of each table group.
//! - `error`: [`SqlContext`], rusqlite's errors as store errors.
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

pub mod approvals;
pub mod audit;
mod backend;
pub mod checkpoints;
mod error;
mod export;
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
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use error::SqlContext;
pub use export::export;
pub use migrations::SCHEMA_VERSION;
use readers::ReadPool;
pub use writer::Writer;

use super::{ReadTx, StoreError};

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

/// The open database: one writer thread and a pool of readers. The
/// writer stops when this is dropped or closed.
#[derive(Debug)]
pub struct Sqlite {
    path: PathBuf,
    writer: Writer,
    readers: ReadPool,
}

impl Sqlite {
    /// Opens (creating if needed) `<data_dir>/wcp.db`, creating the
    /// directory, and migrates it to [`SCHEMA_VERSION`]. A database written
    /// by a newer `wcp` is refused.
    pub fn open(data_dir: &Path) -> Result<Sqlite, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let open_error = |source: rusqlite::Error| StoreError::Open {
            path: path.clone(),
            source: Box::new(source),
        };
        let mut conn = Connection::open(&path).map_err(open_error)?;
        configure_writer(&conn).map_err(open_error)?;
        migrations::migrate(&mut conn, &path)?;
        // Readers open after the writer switched to WAL: a read-only
        // connection cannot make that switch itself.
        let readers = (0..READERS)
            .map(|_| open_reader(&path).map_err(open_error))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sqlite {
            writer: Writer::start(conn)?,
            readers: ReadPool::new(readers),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The one writer, which runs each job in its own savepoint of a
    /// batch's transaction and answers after the batch commits. The job
    /// sees rusqlite's transaction: the domain goes through
    /// [`Store::submit`](super::Store::submit); this is for SQLite's own
    /// tests and tools.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Runs `read` on a read-only connection, inside one read transaction
    /// (one consistent snapshot). Blocks while all readers are busy.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.readers.read(read)
    }

    /// Stops the writer after it has committed and answered everything
    /// queued, and waits for it.
    pub fn close(mut self) {
        self.writer.shutdown();
    }
}

/// Opens `<data_dir>/wcp.db` read-only for offline tools (`wcp audit
/// verify`): creates nothing, migrates nothing, and refuses a database with
/// no schema or a newer one. Each read is its own snapshot.
pub fn open_read_only(data_dir: &Path) -> Result<Box<ReadTx<'static>>, StoreError> {
    Ok(Box::new(open_existing(data_dir)?.0))
}

/// A read-only connection to `<data_dir>/wcp.db`, which must exist and
/// hold a schema this binary reads, and that schema's version.
fn open_existing(data_dir: &Path) -> Result<(Connection, i64), StoreError> {
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
        source: Box::new(source),
    })?;
    let version = migrations::check_readable(&conn, &path)?;
    Ok((conn, version))
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
