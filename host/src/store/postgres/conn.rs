//! A pooled connection inside one transaction, as the domain's
//! [`StoreRead`] and [`StoreWrite`], and the locks that keep the rules of
//! one writer true with several replicas writing at once:
//!
//! - a write transaction reads a workflow `FOR UPDATE`, so two gates, an
//!   approval and an end of the same workflow on different replicas take
//!   turns, and the second sees what the first committed (a re-gate finds
//!   the step and answers it cached);
//! - counting a tenant's running workflows takes a transaction-scoped
//!   advisory lock on the tenant, so count and insert are atomic across
//!   replicas (`max_concurrent_workflows`);
//! - appending to an audit chain takes an advisory lock on the chain, so
//!   each tenant's chain stays one chain;
//! - due holds are claimed `FOR UPDATE SKIP LOCKED`, so each expires once.

use std::cell::{Cell, RefCell};
use std::pin::Pin;

use futures_util::future::join_all;

use tokio::runtime::Handle;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::{audit, holds, steps, workflows};
use crate::audit::{AuditEntry, AuditRecord, VerifyReport};
use crate::store::columns::Columns;
use crate::store::rows::{
    AuditFilter, CheckpointOwner, CheckpointRow, DueScope, PendingHold, StepRow, WorkflowFilter,
    WorkflowRow,
};
use crate::store::{StoreError, StoreRead, StoreWrite};

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
const LOCK_TENANT: i32 = 0x7763_7001;
/// The advisory-lock class of an audit chain's head.
const LOCK_CHAIN: i32 = 0x7763_7002;

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

/// A driver error as a store error: a lost or refused connection is the
/// database being unavailable, anything else the statement failing.
pub(super) fn failed(context: &'static str, error: tokio_postgres::Error) -> StoreError {
    if error.is_closed() || (error.as_db_error().is_none() && is_io(&error)) {
        StoreError::Unavailable(Box::new(error))
    } else if let Some(code) = error.code()
        && unavailable_code(code)
    {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Database {
            context,
            source: Box::new(error),
        }
    }
}

fn is_io(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if inner.is::<std::io::Error>() {
            return true;
        }
        source = inner.source();
    }
    false
}

/// SQLSTATEs of a server shutting down or starting: class 57P (operator
/// intervention) and 08 (connection exception).
fn unavailable_code(code: &tokio_postgres::error::SqlState) -> bool {
    let code = code.code();
    code.starts_with("57P") || code.starts_with("08")
}

/// A non-negative count as PostgreSQL stores it.
pub(super) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored count, never below zero.
pub(super) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A stored count that fits the domain's `u32`.
pub(super) fn small(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// Column `index` of `row`; a value of another type is corrupt.
pub(super) fn col<'r, T: FromSql<'r>>(row: &'r Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index).map_err(|error| StoreError::Corrupt {
        what: "stored value",
        detail: error.to_string(),
    })
}

impl Columns for Row {
    fn text(&self, index: usize) -> Result<Option<String>, StoreError> {
        col(self, index)
    }
    fn int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        col(self, index)
    }
    fn real(&self, index: usize) -> Result<Option<f64>, StoreError> {
        col(self, index)
    }
    fn flag(&self, index: usize) -> Result<bool, StoreError> {
        col(self, index)
    }
}

impl StoreRead for PgConn<'_> {
    fn find_workflow(
        &self,
        id: &str,
        tenant: &str,
        org: &str,
    ) -> Result<Option<WorkflowRow>, StoreError> {
        workflows::find_workflow(self, id, Some((tenant, org)))
    }
    fn workflow_by_id(&self, id: &str) -> Result<Option<WorkflowRow>, StoreError> {
        workflows::find_workflow(self, id, None)
    }
    fn list_workflows(
        &self,
        tenant: &str,
        org: &str,
        filter: &WorkflowFilter,
    ) -> Result<(Vec<WorkflowRow>, u64), StoreError> {
        workflows::list_workflows(self, tenant, org, filter)
    }
    fn count_running(&self, tenant: &str) -> Result<u64, StoreError> {
        if self.writes() {
            self.lock(LOCK_TENANT, tenant)?;
        }
        workflows::count_running(self, tenant)
    }
    fn count_by_status(&self) -> Result<Vec<(String, u64)>, StoreError> {
        workflows::count_by_status(self)
    }
    fn find_step(&self, workflow_id: &str, step_id: &str) -> Result<Option<StepRow>, StoreError> {
        steps::find_step(self, workflow_id, step_id)
    }
    fn count_steps(&self, workflow_id: &str) -> Result<u32, StoreError> {
        steps::count_steps(self, workflow_id)
    }
    fn list_steps(&self, workflow_id: &str) -> Result<Vec<StepRow>, StoreError> {
        steps::list_steps(self, workflow_id)
    }
    fn step_with_approval(
        &self,
        workflow_id: &str,
        statuses: &[&str],
    ) -> Result<Option<String>, StoreError> {
        steps::step_with_approval(self, workflow_id, statuses)
    }
    fn any_due(&self, scope: &DueScope, now: &str) -> Result<bool, StoreError> {
        holds::any_due(self, scope, now)
    }
    fn due_holds(&self, scope: &DueScope, now: &str) -> Result<Vec<(String, String)>, StoreError> {
        holds::due_holds(self, scope, now)
    }
    fn list_pending(
        &self,
        tenant: &str,
        org: &str,
        now: &str,
        limit: u32,
    ) -> Result<(Vec<PendingHold>, u64), StoreError> {
        holds::list_pending(self, tenant, org, now, limit)
    }
    fn list_checkpoints(&self, workflow_id: &str) -> Result<Vec<CheckpointRow>, StoreError> {
        holds::list_checkpoints(self, workflow_id)
    }
    fn find_checkpoint(
        &self,
        workflow_id: &str,
        id: i64,
    ) -> Result<Option<CheckpointRow>, StoreError> {
        holds::find_checkpoint(self, workflow_id, id)
    }
    fn last_resumable(&self, workflow_id: &str) -> Result<Option<CheckpointRow>, StoreError> {
        holds::last_resumable(self, workflow_id)
    }
    fn audit_entries(
        &self,
        chain: &str,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, u64), StoreError> {
        audit::list(self, chain, filter)
    }
    fn verify_chain(&self, chain: &str) -> Result<VerifyReport, StoreError> {
        audit::verify_chain(self, chain)
    }
    fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
        audit::chains(self)
    }
}

impl StoreWrite for PgConn<'_> {
    fn insert_workflow(&self, row: &WorkflowRow) -> Result<(), StoreError> {
        workflows::insert_workflow(self, row)
    }
    fn end_workflow(
        &self,
        id: &str,
        status: &str,
        at: &str,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        workflows::end_workflow(self, id, status, at, reason)
    }
    fn revive_workflow(&self, id: &str) -> Result<(), StoreError> {
        workflows::revive_workflow(self, id)
    }
    fn bump_step_index(&self, id: &str) -> Result<u32, StoreError> {
        workflows::bump_step_index(self, id)
    }
    fn add_totals(
        &self,
        id: &str,
        tokens_in: u64,
        tokens_out: u64,
        cost_usd: f64,
    ) -> Result<(), StoreError> {
        workflows::add_totals(self, id, tokens_in, tokens_out, cost_usd)
    }
    fn save_step(&self, step: &StepRow) -> Result<(), StoreError> {
        steps::save_step(self, step)
    }
    fn save_completion(&self, step: &StepRow) -> Result<(), StoreError> {
        steps::save_completion(self, step)
    }
    fn upsert_checkpoint(&self, step: &StepRow, owner: CheckpointOwner) -> Result<i64, StoreError> {
        holds::upsert_checkpoint(self, step, owner)
    }
    fn mark_resumed(&self, workflow_id: &str, id: i64, at: &str) -> Result<u32, StoreError> {
        holds::mark_resumed(self, workflow_id, id, at)
    }
    fn append_audit(&self, chain: &str, record: AuditRecord) -> Result<AuditEntry, StoreError> {
        audit::append(self, (LOCK_CHAIN, chain), record)
    }
    fn open_savepoint(&self) -> Result<(), StoreError> {
        // Deferred: it goes out with the job's first statement.
        let depth = self.savepoints.get() + 1;
        self.defer(Deferred::Simple(format!("SAVEPOINT sp{depth}")));
        self.savepoints.set(depth);
        Ok(())
    }
    fn close_savepoint(&self, keep: bool) -> Result<(), StoreError> {
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
}
