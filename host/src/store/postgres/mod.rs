//! The PostgreSQL backend, for several `wcp serve` replicas on one
//! database. Everything in the crate that names tokio-postgres or its pool
//! lives under this module.
//!
//! - `migrations`: the schema's versions, SQL files under `migrations/`,
//!   applied under an advisory lock so replicas starting together migrate
//!   once.
//! - `conn`: a pooled connection in a transaction, and its statements.
//! - `backend`: [`StoreRead`](crate::store::StoreRead) and
//!   [`StoreWrite`](crate::store::StoreWrite) for it, and the locks that
//!   make them safe with many writers.
//! - `values`: the driver's errors and values as the store's.
//! - `workflows`, `steps`, `holds`, `audit`: the SQL of each table group.
//!
//! **Driver.** tokio-postgres with deadpool-postgres: the driver the
//! server's runtime already speaks (tokio), a pool that reconnects by
//! itself after the database restarts, and plain SQL, as the SQLite
//! backend has; sqlx would bring a second SQL layer and its own pool for
//! the same queries. No ORM: the store's SQL is short and each statement
//! is written for its index.
//!
//! **Jobs.** The store's traits are synchronous (see [`crate::store`]). A
//! job runs on a blocking thread of this backend's own small runtime,
//! holding one pooled connection for its whole transaction, and waits on
//! each statement there; the connections' I/O runs on the same runtime.
//! Each write job is one transaction (`READ COMMITTED`), answered after
//! its `COMMIT`; each read is one `REPEATABLE READ` snapshot, so a page
//! and its count agree.

mod audit;
mod backend;
mod conn;
mod holds;
mod import;
mod migrations;
mod steps;
mod values;
mod workflows;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Timeouts};
use tokio::runtime::{Handle, Runtime};
use tokio_postgres::NoTls;

pub use migrations::SCHEMA_VERSION;

use conn::{Mode, PgConn};

use super::{ReadTx, StoreError, WriteTx};

/// The name of the backend's threads, which may wait on the driver.
const THREAD_NAME: &str = "wcp-postgres";

/// Connections per replica: jobs hold one for their whole transaction.
const POOL_SIZE: usize = 16;

/// How long a job waits for a connection, and a new connection for the
/// server, before the request is answered "unavailable".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The open database: a connection pool and the runtime its I/O runs on.
pub struct Postgres {
    pool: Pool,
    runtime: Option<Runtime>,
    handle: Handle,
    target: String,
    commits: AtomicU64,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/db`) and
    /// migrates the database to [`SCHEMA_VERSION`]. A database written by a
    /// newer `wcp` is refused. Blocks; call it off the async threads.
    pub fn open(url: &str) -> Result<Postgres, StoreError> {
        let db = blocking(|| Postgres::connect(url))?;
        blocking(|| db.with_client(|client| migrations::migrate(&db.handle, client, &db.target)))?;
        Ok(db)
    }

    /// Connects to `url` for offline tools (`wcp audit verify`): migrates
    /// nothing, and refuses a database with no schema or a newer one.
    pub fn open_existing(url: &str) -> Result<Postgres, StoreError> {
        let db = blocking(|| Postgres::connect(url))?;
        blocking(|| {
            db.with_client(|client| migrations::check_readable(&db.handle, client, &db.target))
        })?;
        Ok(db)
    }

    /// The pool and runtime for `url`, connecting once to report a
    /// database that cannot be reached now rather than at the first job.
    fn connect(url: &str) -> Result<Postgres, StoreError> {
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|error| StoreError::Invalid {
                what: "database URL",
                detail: error.to_string(),
            })?;
        config.application_name("wcp");
        config.connect_timeout(CONNECT_TIMEOUT);
        let target = describe(&config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()
            .map_err(StoreError::WriterThread)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(CONNECT_TIMEOUT),
                create: Some(CONNECT_TIMEOUT),
                recycle: Some(CONNECT_TIMEOUT),
            })
            .build()
            .map_err(|error| StoreError::Invalid {
                what: "database pool",
                detail: error.to_string(),
            })?;
        let db = Postgres {
            pool,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            target,
            commits: AtomicU64::new(0),
        };
        db.with_client(|_| Ok(()))?;
        Ok(db)
    }

    /// `postgres://user@host:port/db`, never the password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The runtime jobs run on, for queueing one from async code.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `work` with a pooled connection. Blocks.
    fn with_client<T>(
        &self,
        work: impl FnOnce(&deadpool_postgres::Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let client = self.handle.block_on(self.pool.get()).map_err(pool_failed)?;
        work(&client)
    }

    /// Runs `job` in its own transaction and answers after its `COMMIT`.
    /// Blocks: from async code go through the store, which queues it on
    /// [`Postgres::handle`]'s blocking threads. Returning `Err` rolls back.
    pub fn submit<T, E>(&self, job: impl FnOnce(&WriteTx) -> Result<T, E> + Send) -> Result<T, E>
    where
        T: Send,
        E: From<StoreError> + Send,
    {
        blocking(|| self.run_job(job))
    }

    fn run_job<T, E>(&self, job: impl FnOnce(&WriteTx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let client = self
            .handle
            .block_on(self.pool.get())
            .map_err(|error| E::from(pool_failed(error)))?;
        let (result, unusable) = {
            let tx = PgConn::new(&client, &self.handle, Mode::Write);
            tx.batch("BEGIN", "starting a transaction")?;
            match catch_unwind(AssertUnwindSafe(|| job(&tx))) {
                Ok(Ok(value)) => match tx.batch("COMMIT", "committing") {
                    Ok(()) => (Ok(value), false),
                    // A lost connection stays "unavailable" (503): the
                    // client retries, and a retried gate finds its answer.
                    Err(error @ StoreError::Unavailable(_)) => (Err(E::from(error)), true),
                    Err(error) => (Err(E::from(StoreError::Commit(error.to_string()))), true),
                },
                Ok(Err(error)) => {
                    tx.discard();
                    (Err(error), tx.batch("ROLLBACK", "rolling back").is_err())
                }
                Err(_) => {
                    tx.discard();
                    (
                        Err(E::from(StoreError::JobPanicked)),
                        tx.batch("ROLLBACK", "rolling back").is_err(),
                    )
                }
            }
        };
        if unusable {
            // A connection whose transaction did not end cleanly must not
            // serve another job.
            drop(deadpool_postgres::Object::take(client));
        }
        if result.is_ok() {
            self.commits.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Runs `read` on one `REPEATABLE READ` snapshot. Blocks.
    pub fn read<T: Send>(
        &self,
        read: impl FnOnce(&ReadTx) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        blocking(|| self.run_read(read))
    }

    fn run_read<T>(
        &self,
        read: impl FnOnce(&ReadTx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_client(|client| {
            let conn = PgConn::new(client, &self.handle, Mode::Read);
            conn.batch(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                "starting a read",
            )?;
            let result = read(&conn);
            conn.batch("COMMIT", "ending a read")?;
            result
        })
    }

    /// Write transactions committed since the store opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Closes the pool and waits a moment for jobs still running; from
    /// async code, which may not block, it stops without waiting.
    pub fn close(mut self) {
        self.pool.close();
        if let Some(runtime) = self.runtime.take() {
            if Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(CONNECT_TIMEOUT);
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime blocks, which async code may not.
            runtime.shutdown_background();
        }
    }
}

/// Runs `work`, which waits on the driver, where waiting is allowed: here
/// on this backend's own threads and on threads outside any runtime (the
/// evaluation pool), else on a thread of its own, since a tokio worker
/// must never block on another runtime (a test or a tool calling the
/// store from async code).
fn blocking<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    let free = Handle::try_current().is_err() || std::thread::current().name() == Some(THREAD_NAME);
    if free {
        return work();
    }
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A connection the pool could not give: the server refusing it for a
/// reason (a wrong password, no such database) is that error; no answer
/// at all, or a wait past the timeout, is the database being unavailable.
fn pool_failed(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => {
            values::failed("connecting to the database", error)
        }
        other => StoreError::Unavailable(Box::new(other)),
    }
}

/// `postgres://user@host:port/db` of `config`: what the startup log and
/// errors name. The password is never part of it.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{db}")
}
