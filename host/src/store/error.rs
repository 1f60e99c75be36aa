//! What can go wrong in the store, with enough context to act on. The
//! variants name no database library: a backend's own error travels boxed
//! as [`DbError`], its message kept whole.

use std::path::PathBuf;

/// A database library's error, boxed so that [`StoreError`] names no
/// backend's types.
pub type DbError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    /// An entry for another tenant's chain: each chain holds its own
    /// tenant's entries only.
    pub(crate) fn wrong_chain(chain: &str, tenant: &str) -> StoreError {
        StoreError::Invalid {
            what: "audit chain",
            detail: format!(
                "chain `{chain}` holds only tenant `{chain}`'s entries, not `{tenant}`'s"
            ),
        }
    }

    /// A step complete for a step that was never stored.
    pub(crate) fn step_not_stored(workflow_id: &str, step_id: &str) -> StoreError {
        StoreError::Invalid {
            what: "step complete",
            detail: format!("step `{step_id}` of workflow `{workflow_id}` is not stored"),
        }
    }
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An offline tool was pointed at a directory or database that is not there.
    #[error("{what} {path} does not exist")]
    Missing {
        /// `data directory` or `database`.
        what: &'static str,
        /// The path looked at.
        path: PathBuf,
    },
    /// The database could not be opened or configured.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: DbError,
    },
    /// The database was written by a newer `wcp`; refusing beats corrupting it.
    #[error(
        "database {database} has schema version {found}, newer than the {supported} this wcp \
         understands; run a newer wcp or restore a backup"
    )]
    SchemaTooNew {
        /// The database: SQLite's file, or PostgreSQL's
        /// `postgres://user@host:port/db`.
        database: String,
        /// Its `user_version`.
        found: i64,
        /// The newest version this binary knows.
        supported: i64,
    },
    /// A read-only open found a database no `wcp` has initialised.
    #[error("database {database} has no wcp schema (version 0); start `wcp serve` on it first")]
    NoSchema {
        /// The database: SQLite's file, or PostgreSQL's
        /// `postgres://user@host:port/db`.
        database: String,
    },
    /// A migration failed; the database stays at its previous version.
    #[error("cannot migrate database {database}: {source}")]
    Migrate {
        /// The database: SQLite's file, or PostgreSQL's
        /// `postgres://user@host:port/db`.
        database: String,
        /// Why.
        source: DbError,
    },
    /// A statement failed.
    #[error("{context}: {source}")]
    Database {
        /// What the store was doing.
        context: &'static str,
        /// Why it failed.
        source: DbError,
    },
    /// A stored value does not decode (e.g. JSON that is not JSON).
    #[error("stored {what} is invalid: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A value cannot be stored as given (e.g. a chain other than the entry's tenant).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Which value.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The batch this job ran in could not be committed, so its work is
    /// gone even though the job itself succeeded.
    #[error("commit failed, nothing of this write was kept: {0}")]
    Commit(String),
    /// The job panicked; its writes were rolled back.
    #[error("store job panicked; its writes were rolled back")]
    JobPanicked,
    /// The writer thread could not be started.
    #[error("cannot start the store's writer thread: {0}")]
    WriterThread(std::io::Error),
    /// The database cannot be reached: down, restarting, or out of
    /// connections. Nothing was changed, and the request may be retried.
    #[error("the database is unavailable: {0}")]
    Unavailable(DbError),
    /// The writer has stopped (the store is shutting down).
    #[error("the store is closed")]
    Closed,
}
