//! A pooled connection inside one transaction: its statements, the ones
//! sent with the next (savepoints, the audit insert), and its advisory
//! locks. `backend` makes it the domain's store.

use std::cell::{Cell, RefCell};
use std::pin::Pin;

use futures_util::future::join_all;

use tokio::runtime::Handle;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::values::failed;
use crate::store::StoreError;

/// One statement's arguments.
pub(super) type Args<'a> = &'a [&'a (dyn ToSql + Sync)];

/// What the transaction is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// A read-only snapshot: takes no locks.
    Read,
    /// A write job: takes the locks above.
    Write,
}

/// Takes a transaction-scoped advisory lock.
const LOCK: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";

/// The advisory-lock class of a tenant's running count.
pub(super) const LOCK_TENANT: i32 = 0x7763_7001;
/// The advisory-lock class of an audit chain's head.
pub(super) const LOCK_CHAIN: i32 = 0x7763_7002;

/// A statement whose answer nothing waits for: it is sent with the next
/// statement that is waited for, in one round trip, and fails that one if
/// it fails.
pub(super) enum Deferred {
    /// Statements without arguments or results (savepoints).
    Simple(String),
    /// An insert with owned arguments (an audit entry).
    Insert {
        /// The statement, prepared once per connection.
        sql: &'static str,
        /// Its arguments.
        args: Vec<Box<dyn ToSql + Sync + Send>>,
    },
}

/// A queued statement, prepared and ready to send.
enum Ready<'q> {
    Simple(&'q str),
    Insert(
        tokio_postgres::Statement,
        &'q [Box<dyn ToSql + Sync + Send>],
    ),
}

/// A connection in a transaction, waiting on each statement on `handle`.
pub(super) struct PgConn<'c> {
    client: &'c deadpool_postgres::Client,
    handle: &'c Handle,
    mode: Mode,
    savepoints: Cell<u32>,
    deferred: RefCell<Vec<Deferred>>,
}

impl<'c> PgConn<'c> {
    pub(super) fn new(
        client: &'c deadpool_postgres::Client,
        handle: &'c Handle,
        mode: Mode,
    ) -> Self {
        PgConn {
            client,
            handle,
            mode,
            savepoints: Cell::new(0),
            deferred: RefCell::new(Vec::new()),
        }
    }

    /// Queues `statement` to go out with the next one that is waited for.
    pub(super) fn defer(&self, statement: Deferred) {
        self.deferred.borrow_mut().push(statement);
    }

    /// Drops what was queued: the transaction is being rolled back.
    pub(super) fn discard(&self) {
        self.deferred.borrow_mut().clear();
    }

    /// Waits for `main` on the runtime, sending the queued statements
    /// before it in the same round trip: tokio-postgres pipelines requests
    /// in the order their futures are first polled. Each queued insert is
    /// prepared first (once per connection), so that a statement's own
    /// preparation never lets a later one overtake it.
    fn wait<T>(
        &self,
        main: impl Future<Output = Result<T, tokio_postgres::Error>>,
        context: &'static str,
    ) -> Result<T, StoreError> {
        let queued = self.deferred.take();
        self.handle
            .block_on(async {
                let mut ready = Vec::with_capacity(queued.len());
                for statement in &queued {
                    ready.push(match statement {
                        Deferred::Simple(sql) => Ready::Simple(sql),
                        Deferred::Insert { sql, args } => {
                            Ready::Insert(self.client.prepare_cached(sql).await?, args)
                        }
                    });
                }
                let sent = ready.iter().map(|statement| {
                    let sent: Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>>>> =
                        match statement {
                            Ready::Simple(sql) => Box::pin(self.client.batch_execute(sql)),
                            Ready::Insert(prepared, args) => Box::pin(async move {
                                let args: Vec<&(dyn ToSql + Sync)> = args
                                    .iter()
                                    .map(|arg| arg.as_ref() as &(dyn ToSql + Sync))
                                    .collect();
                                self.client.execute(prepared, &args).await.map(drop)
                            }),
                        };
                    sent
                });
                let (queued, main) = tokio::join!(join_all(sent), main);
                for result in queued {
                    result?;
                }
                main
            })
            .map_err(|error| failed(context, error))
    }

    /// Opens a savepoint, sent with the job's next statement.
    pub(super) fn savepoint(&self) {
        // Deferred: it goes out with the job's first statement.
        let depth = self.savepoints.get() + 1;
        self.defer(Deferred::Simple(format!("SAVEPOINT sp{depth}")));
        self.savepoints.set(depth);
    }
    /// Ends the newest savepoint, keeping or undoing its writes, sent with
    /// the next statement or the COMMIT.
    pub(super) fn end_savepoint(&self, keep: bool) -> Result<(), StoreError> {
        let depth = self.savepoints.get();
        if depth == 0 {
            return Err(StoreError::Invalid {
                what: "savepoint",
                detail: "none is open".into(),
            });
        }
        let sql = if keep {
            format!("RELEASE SAVEPOINT sp{depth}")
        } else {
            format!("ROLLBACK TO SAVEPOINT sp{depth}; RELEASE SAVEPOINT sp{depth}")
        };
        // Deferred: it goes out with the next statement, or the COMMIT.
        self.savepoints.set(depth - 1);
        self.defer(Deferred::Simple(sql));
        Ok(())
    }

    /// Whether this is a write job's transaction.
    pub(super) fn writes(&self) -> bool {
        self.mode == Mode::Write
    }

    /// Runs statements without arguments or results.
    pub(super) fn batch(&self, sql: &str, context: &'static str) -> Result<(), StoreError> {
        self.wait(self.client.batch_execute(sql), context)
    }

    /// Every row of one statement, prepared once per connection.
    pub(super) fn query(
        &self,
        sql: &str,
        args: Args,
        context: &'static str,
    ) -> Result<Vec<Row>, StoreError> {
        self.wait(
            async {
                let statement = self.client.prepare_cached(sql).await?;
                self.client.query(&statement, args).await
            },
            context,
        )
    }

    /// The one row a statement returns, if any.
    pub(super) fn query_opt(
        &self,
        sql: &str,
        args: Args,
        context: &'static str,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args, context)?.into_iter().next())
    }

    /// The one row a statement must return.
    pub(super) fn query_one(
        &self,
        sql: &str,
        args: Args,
        context: &'static str,
    ) -> Result<Row, StoreError> {
        self.query_opt(sql, args, context)?
            .ok_or_else(|| StoreError::Database {
                context,
                source: "the statement returned no row".into(),
            })
    }

    /// Runs a statement; returns the rows it changed.
    pub(super) fn execute(
        &self,
        sql: &str,
        args: Args,
        context: &'static str,
    ) -> Result<u64, StoreError> {
        self.wait(
            async {
                let statement = self.client.prepare_cached(sql).await?;
                self.client.execute(&statement, args).await
            },
            context,
        )
    }

    /// Holds the advisory lock `(class, hashtext(key))` until the
    /// transaction ends. Different keys may share a hash; they then only
    /// take turns.
    pub(super) fn lock(&self, class: i32, key: &str) -> Result<(), StoreError> {
        self.query(LOCK, &[&class, &key], "taking a lock").map(drop)
    }

    /// As [`PgConn::lock`], then every row of `sql`, in one round trip:
    /// the two statements are pipelined, and the server runs the second
    /// once the first holds the lock. A lock held until commit is a queue
    /// for everyone behind it, so each trip inside it counts.
    pub(super) fn query_locked(
        &self,
        (class, key): (i32, &str),
        sql: &str,
        args: Args,
        context: &'static str,
    ) -> Result<Vec<Row>, StoreError> {
        self.wait(
            async {
                let lock = self.client.prepare_cached(LOCK).await?;
                let statement = self.client.prepare_cached(sql).await?;
                let lock_args: [&(dyn ToSql + Sync); 2] = [&class, &key];
                let (locked, rows) = tokio::join!(
                    self.client.query(&lock, &lock_args),
                    self.client.query(&statement, args)
                );
                locked?;
                rows
            },
            context,
        )
    }
}
