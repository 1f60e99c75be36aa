//! The one writer: a thread that owns the write connection and commits
//! queued jobs together (group commit).
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` each
//! commit costs an fsync. So the thread drains whatever is queued, runs each
//! job in its own SAVEPOINT inside one transaction, commits once, and only
//! then answers: an answered job is on disk, and N concurrent gates cost one
//! fsync instead of N. A job that fails rolls back only its savepoint; if the
//! COMMIT fails, every job of the batch gets an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::error::SqlContext;
use crate::store::{StoreError, in_savepoint};

/// Jobs committed together at most: bounds the latency one batch adds to
/// the first job in it.
const MAX_BATCH: usize = 512;

/// A queued unit of work, with its result type erased.
trait Job: Send {
    /// Runs the work inside the batch's transaction; the result is held
    /// until the batch's fate is known.
    fn run(self: Box<Self>, tx: &Transaction) -> Box<dyn Held>;
    /// Answers without running: the batch's transaction could not start.
    fn refuse(self: Box<Self>, error: StoreError);
}

/// A job's result, waiting for the commit.
trait Held: Send {
    /// Sends the result, or `error` in its place when the batch was lost.
    fn answer(self: Box<Self>, lost: Option<&str>);
}

/// Where a job's result goes.
enum Reply<T, E> {
    Blocking(mpsc::SyncSender<Result<T, E>>),
    Async(oneshot::Sender<Result<T, E>>),
}

impl<T, E> Reply<T, E> {
    fn send(self, result: Result<T, E>) {
        // A submitter that gave up waiting is not the writer's problem.
        let _ = match self {
            Reply::Blocking(sender) => sender.send(result).ok(),
            Reply::Async(sender) => sender.send(result).ok(),
        };
    }
}

struct Queued<F, T, E> {
    work: F,
    reply: Reply<T, E>,
}

struct Done<T, E> {
    result: Result<T, E>,
    reply: Reply<T, E>,
}

impl<F, T, E> Job for Queued<F, T, E>
where
    F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, tx: &Transaction) -> Box<dyn Held> {
        let Queued { work, reply } = *self;
        let result = in_savepoint(tx, |_| work(tx));
        Box::new(Done { result, reply })
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        self.reply.send(Err(E::from(error)));
    }
}

impl<T: Send, E: From<StoreError> + Send> Held for Done<T, E> {
    fn answer(self: Box<Self>, lost: Option<&str>) {
        let result = match lost {
            // Even a job that failed on its own reports the lost batch:
            // nothing of it is on disk either way, and the cause matters more.
            Some(cause) => Err(E::from(StoreError::Commit(cause.to_owned()))),
            None => self.result,
        };
        self.reply.send(result);
    }
}

/// Opens the savepoint a job (or a part of one) runs in. Cached
/// statements: parsing these on every job cost a few percent of the
/// writer's time.
pub(super) fn open_savepoint(tx: &Transaction) -> Result<(), StoreError> {
    run_cached(tx, "SAVEPOINT job").context("starting a job's savepoint")
}

/// Ends the newest savepoint, keeping or undoing its writes. An error means
/// the savepoint is gone (the job ended the transaction itself, or SQLite
/// rolled it back); the batch loop notices and fails the batch.
pub(super) fn close_savepoint(tx: &Transaction, keep: bool) -> Result<(), StoreError> {
    let ended = if keep {
        run_cached(tx, "RELEASE job")
    } else {
        run_cached(tx, "ROLLBACK TO job").and_then(|()| run_cached(tx, "RELEASE job"))
    };
    ended.context("ending a job's savepoint")
}

fn run_cached(tx: &Transaction, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
}

/// The sending side of the writer, owned by the store.
#[derive(Debug)]
pub struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer thread on `conn`, already configured and migrated.
    pub(crate) fn start(conn: Connection) -> Result<Writer, StoreError> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        let thread = std::thread::Builder::new()
            .name("wcp-store-writer".into())
            .spawn(move || run(conn, &jobs, &counter))
            .map_err(StoreError::WriterThread)?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            commits,
        })
    }

    fn enqueue(&self, job: Box<dyn Job>) -> Result<(), Box<dyn Job>> {
        match &self.queue {
            Some(queue) => queue.send(job).map_err(|mpsc::SendError(job)| job),
            None => Err(job),
        }
    }

    /// Queues `work` and waits for its commit. Blocks the calling thread.
    pub fn submit<F, T, E>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (sender, receiver) = mpsc::sync_channel(1);
        let job = Box::new(Queued {
            work,
            reply: Reply::Blocking(sender),
        });
        if let Err(job) = self.enqueue(job) {
            job.refuse(StoreError::Closed);
        }
        receiver
            .recv()
            .unwrap_or_else(|_| Err(E::from(StoreError::Closed)))
    }

    /// Queues `work` now and returns a future of its committed result.
    pub fn submit_async<F, T, E>(
        &self,
        work: F,
    ) -> impl Future<Output = Result<T, E>> + Send + 'static + use<T, E, F>
    where
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (sender, receiver) = oneshot::channel();
        let job = Box::new(Queued {
            work,
            reply: Reply::Async(sender),
        });
        if let Err(job) = self.enqueue(job) {
            job.refuse(StoreError::Closed);
        }
        async move {
            receiver
                .await
                .unwrap_or_else(|_| Err(E::from(StoreError::Closed)))
        }
    }

    /// Batches committed so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stops taking jobs, lets the thread finish what is queued, and waits
    /// for it.
    pub(crate) fn shutdown(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // A job owning the last handle to the store would otherwise
            // wait for itself.
            if thread.thread().id() == std::thread::current().id() {
                return;
            }
            if thread.join().is_err() {
                tracing::error!("the store writer thread panicked");
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The writer thread: batch, run, commit, answer, until the queue closes
/// and is empty.
fn run(mut conn: Connection, jobs: &mpsc::Receiver<Box<dyn Job>>, commits: &AtomicU64) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, batch, commits);
    }
}

fn run_batch(conn: &mut Connection, batch: Vec<Box<dyn Job>>, commits: &AtomicU64) {
    let mut jobs = batch.into_iter();
    // Normally one pass. A job that ends the transaction under us (SQLite
    // rolls back on some I/O errors) loses the work of the jobs before it;
    // they are failed, and the rest get a fresh transaction.
    loop {
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(error) => {
                let cause = format!("cannot begin a transaction: {error}");
                tracing::error!("{cause}");
                for job in jobs {
                    job.refuse(StoreError::Commit(cause.clone()));
                }
                return;
            }
        };
        let mut held = Vec::new();
        let mut broken = false;
        for job in jobs.by_ref() {
            held.push(job.run(&tx));
            if tx.is_autocommit() {
                broken = true;
                break;
            }
        }
        if broken {
            drop(tx);
            let cause = "a job's error aborted the whole transaction";
            tracing::error!("{cause}");
            answer_all(held, Some(cause));
            continue;
        }
        match tx.commit() {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
                answer_all(held, None);
            }
            Err(error) => {
                // rusqlite rolls the transaction back when commit fails.
                let cause = error.to_string();
                tracing::error!("store commit failed: {cause}");
                answer_all(held, Some(&cause));
            }
        }
        return;
    }
}

fn answer_all(held: Vec<Box<dyn Held>>, lost: Option<&str>) {
    for done in held {
        done.answer(lost);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::mpsc;
    use std::time::Duration;

    use rusqlite::Connection;

    use super::*;

    fn writer() -> (Writer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE t (v INTEGER NOT NULL UNIQUE);
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
             PRAGMA foreign_keys = ON;",
        )
        .unwrap();
        (Writer::start(conn).unwrap(), dir)
    }

    fn insert(v: i64) -> impl FnOnce(&Transaction) -> Result<(), StoreError> + Send + 'static {
        move |tx| {
            tx.execute("INSERT INTO t (v) VALUES (?1)", [v])
                .map(drop)
                .context("test insert")
        }
    }

    fn values(writer: &Writer) -> Vec<i64> {
        writer
            .submit(|tx| {
                let mut stmt = tx.prepare("SELECT v FROM t ORDER BY v").unwrap();
                let rows = stmt.query_map([], |r| r.get(0)).unwrap();
                Ok::<_, StoreError>(rows.collect::<Result<Vec<i64>, _>>().unwrap())
            })
            .unwrap()
    }

    /// Occupies the writer with a job that waits for the returned sender,
    /// so whatever is queued meanwhile forms the next batch.
    fn hold_writer(
        writer: &Writer,
    ) -> (
        mpsc::Sender<()>,
        impl Future<Output = Result<(), StoreError>> + use<>,
    ) {
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let blocker = writer.submit_async(move |_tx| {
            started_tx.send(()).unwrap();
            released.recv_timeout(Duration::from_secs(10)).unwrap();
            Ok(())
        });
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        (release, blocker)
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn jobs_queued_during_a_batch_commit_together_in_the_next() {
        let (writer, _dir) = writer();
        let before = writer.commits();
        let (release, blocker) = hold_writer(&writer);
        let queued: Vec<_> = (0..20).map(|v| writer.submit_async(insert(v))).collect();
        release.send(()).unwrap();
        block_on(async {
            blocker.await.unwrap();
            for job in queued {
                job.await.unwrap();
            }
        });
        assert_eq!(
            writer.commits() - before,
            2,
            "one batch for the blocker, one for the 20"
        );
        assert_eq!(values(&writer), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn a_failing_job_rolls_back_only_itself_and_only_its_submitter_sees_the_error() {
        let (writer, _dir) = writer();
        let (release, blocker) = hold_writer(&writer);
        let first = writer.submit_async(insert(1));
        // Writes, then fails on the duplicate: both of its rows must go.
        let failing = writer.submit_async(|tx| {
            insert(2)(tx)?;
            insert(1)(tx)
        });
        let last = writer.submit_async(insert(3));
        release.send(()).unwrap();
        let (first, failing, last) = block_on(async {
            blocker.await.unwrap();
            (first.await, failing.await, last.await)
        });
        assert!(first.is_ok(), "{first:?}");
        assert!(last.is_ok(), "{last:?}");
        let error = failing.unwrap_err();
        assert!(error.to_string().contains("UNIQUE"), "{error}");
        assert_eq!(values(&writer), vec![1, 3]);
    }

    #[test]
    fn a_panicking_job_is_rolled_back_and_the_writer_keeps_going() {
        let (writer, _dir) = writer();
        let result: Result<(), StoreError> = writer.submit(|tx| {
            insert(7)(tx)?;
            panic!("job bug");
        });
        assert!(matches!(result, Err(StoreError::JobPanicked)), "{result:?}");
        writer.submit(insert(8)).unwrap();
        assert_eq!(values(&writer), vec![8]);
    }

    #[test]
    fn a_failed_commit_fails_every_job_of_the_batch_and_keeps_nothing() {
        let (writer, _dir) = writer();
        let (release, blocker) = hold_writer(&writer);
        let innocent = writer.submit_async(insert(1));
        // A deferred foreign key is only checked at COMMIT.
        let orphan = writer.submit_async(|tx| {
            tx.execute("INSERT INTO child (p) VALUES (99)", [])
                .map(drop)
                .context("orphan")
        });
        release.send(()).unwrap();
        let (innocent, orphan) = block_on(async {
            blocker.await.unwrap();
            (innocent.await, orphan.await)
        });
        assert!(
            matches!(innocent, Err(StoreError::Commit(_))),
            "{innocent:?}"
        );
        assert!(matches!(orphan, Err(StoreError::Commit(_))), "{orphan:?}");
        assert!(values(&writer).is_empty());
        writer.submit(insert(2)).unwrap();
        assert_eq!(values(&writer), vec![2], "the writer recovers");
    }

    #[test]
    fn a_job_that_ends_the_transaction_fails_its_batch_but_not_later_jobs() {
        let (writer, _dir) = writer();
        let (release, blocker) = hold_writer(&writer);
        let before = writer.submit_async(insert(1));
        let rogue = writer.submit_async(|tx| tx.execute_batch("ROLLBACK").context("rogue"));
        let after = writer.submit_async(insert(2));
        release.send(()).unwrap();
        let (before, rogue, after) = block_on(async {
            blocker.await.unwrap();
            (before.await, rogue.await, after.await)
        });
        assert!(before.is_err() && rogue.is_err(), "{before:?} {rogue:?}");
        assert!(after.is_ok(), "{after:?}");
        assert_eq!(values(&writer), vec![2]);
    }

    #[test]
    fn shutdown_drains_queued_jobs_then_refuses_new_ones() {
        let (mut writer, _dir) = writer();
        let (release, blocker) = hold_writer(&writer);
        let queued: Vec<_> = (0..5).map(|v| writer.submit_async(insert(v))).collect();
        release.send(()).unwrap();
        writer.shutdown();
        block_on(async {
            blocker.await.unwrap();
            for job in queued {
                job.await.unwrap();
            }
        });
        let late: Result<(), StoreError> = writer.submit(insert(9));
        assert!(matches!(late, Err(StoreError::Closed)), "{late:?}");
    }
}
