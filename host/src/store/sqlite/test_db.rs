//! Databases for the store's unit tests: in memory, at the latest schema,
//! with foreign keys on as on the writer connection.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use rusqlite::{Connection, params};

use super::migrations::migrate;

/// An empty database at the latest schema.
pub(crate) fn db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    migrate(&mut conn, Path::new(":memory:")).unwrap();
    conn
}

/// Registers an `in_progress` workflow `id` of `tenant`, org `default`.
pub(crate) fn add_workflow(conn: &Connection, id: &str, tenant: &str) {
    conn.execute(
        "INSERT INTO workflows (workflow_id, tenant, org, workflow_name, source, status, started_at)
         VALUES (?1, ?2, 'default', 'w', 'external', 'in_progress', '2026-03-01T12:00:00.000000Z')",
        params![id, tenant],
    )
    .unwrap();
}
