//! A small pool of read-only connections.
//!
//! In WAL mode readers never block the writer nor each other, so reads run
//! beside the writer thread on their own connections. Read-only at the
//! SQLite level: a read path cannot write, even by mistake.

use std::sync::{Condvar, Mutex, PoisonError};

use rusqlite::Connection;

use super::error::SqlContext;
use crate::store::StoreError;

/// Read-only connections behind a mutex; a reader waits for a free one.
#[derive(Debug)]
pub(crate) struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

/// Gives the connection back even if the read panics.
struct Lease<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            self.pool.returned.notify_one();
        }
    }
}

impl ReadPool {
    pub(crate) fn new(connections: Vec<Connection>) -> ReadPool {
        ReadPool {
            idle: Mutex::new(connections),
            returned: Condvar::new(),
        }
    }

    fn lease(&self) -> Lease<'_> {
        // The pool's state is a plain Vec, valid even after a panic elsewhere.
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(conn) = idle.pop() {
                return Lease {
                    pool: self,
                    conn: Some(conn),
                };
            }
            idle = self
                .returned
                .wait(idle)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Runs `read` on a free connection inside one read transaction, so
    /// everything it reads comes from the same snapshot (a page and its
    /// total agree).
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let lease = self.lease();
        let Some(conn) = lease.conn.as_ref() else {
            return Err(StoreError::Closed);
        };
        let tx = conn
            .unchecked_transaction()
            .context("starting a read transaction")?;
        let result = read(&tx);
        // Ending a read-only transaction cannot lose anything; its error
        // matters only if the read itself succeeded.
        let ended = tx.commit().context("ending a read transaction");
        let value = result?;
        ended?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rusqlite::{Connection, OpenFlags};

    use super::*;

    fn pool(dir: &std::path::Path, size: usize) -> ReadPool {
        let path = dir.join("r.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        let readers = (0..size)
            .map(|_| Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap())
            .collect();
        ReadPool::new(readers)
    }

    #[test]
    fn reads_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), 1);
        let error = pool
            .read(|conn| {
                conn.execute("INSERT INTO t VALUES (2)", [])
                    .context("write")
            })
            .unwrap_err();
        assert!(error.to_string().contains("readonly"), "{error}");
    }

    #[test]
    fn more_readers_than_connections_all_get_served_and_never_share_one() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Arc::new(pool(dir.path(), 2));
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (pool, active, peak) =
                    (Arc::clone(&pool), Arc::clone(&active), Arc::clone(&peak));
                std::thread::spawn(move || {
                    pool.read(|conn| {
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        let v: i64 = conn
                            .query_row("SELECT v FROM t", [], |r| r.get(0))
                            .context("read")?;
                        active.fetch_sub(1, Ordering::SeqCst);
                        Ok(v)
                    })
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap().unwrap(), 1);
        }
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "more reads at once than connections"
        );
    }

    #[test]
    fn a_panicking_read_returns_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), 1);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.read(|_| -> Result<(), StoreError> { panic!("read bug") })
        }));
        assert!(caught.is_err());
        assert_eq!(
            pool.read(|conn| conn
                .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .context("read"))
                .unwrap(),
            1
        );
    }
}
