//! The PostgreSQL schema's versions: SQL files under
//! `postgres/migrations/`, read in at build time, each applied in one
//! transaction and recorded in `wcp_schema`. Replicas starting together
//! take a session advisory lock first, so exactly one migrates and the
//! others find the schema current. A database written by a newer `wcp` is
//! refused, as SQLite's is.
//!
//! Adding a version: add its file and append it to [`MIGRATIONS`];
//! [`SCHEMA_VERSION`] follows.

use tokio::runtime::Handle;

use super::conn::PgConn;
use super::values::{col, failed};
use crate::store::StoreError;

/// Every schema version in order; index 0 takes an empty database to v1.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_schema.sql")];

/// The schema version this binary writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The session advisory lock migrations run under (`wcp` in ASCII).
const MIGRATION_LOCK: i64 = 0x0077_6370;

/// The version recorded in `conn`'s database; 0 when it has none.
fn version(conn: &PgConn) -> Result<i64, StoreError> {
    conn.batch(
        "CREATE TABLE IF NOT EXISTS wcp_schema (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
        "creating the schema version table",
    )?;
    let row = conn.query_one(
        "SELECT coalesce(max(version), 0) FROM wcp_schema",
        &[],
        "reading the schema version",
    )?;
    col(&row, 0)
}

/// Brings the database to [`SCHEMA_VERSION`], refusing one that is newer.
pub(super) fn migrate(
    handle: &Handle,
    client: &deadpool_postgres::Client,
    target: &str,
) -> Result<(), StoreError> {
    let conn = PgConn::new(client, handle, super::conn::Mode::Write);
    let migrate_error = |source: StoreError| StoreError::Migrate {
        database: target.to_owned(),
        source: Box::new(source),
    };
    conn.query(
        "SELECT pg_advisory_lock($1)",
        &[&MIGRATION_LOCK],
        "waiting for another replica's migration",
    )?;
    let result = (|| {
        let found = version(&conn)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                database: target.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (index, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(found).unwrap_or(0))
        {
            let to = i64::try_from(index + 1).unwrap_or(i64::MAX);
            let apply = || -> Result<(), StoreError> {
                conn.batch("BEGIN", "starting a migration")?;
                conn.batch(sql, "applying a migration")?;
                conn.execute(
                    "INSERT INTO wcp_schema (version) VALUES ($1)",
                    &[&to],
                    "recording the schema version",
                )?;
                conn.batch("COMMIT", "committing a migration")
            };
            if let Err(error) = apply() {
                let _ = conn.batch("ROLLBACK", "rolling back a migration");
                return Err(migrate_error(error));
            }
            tracing::info!(version = to, "migrated the PostgreSQL schema");
        }
        Ok(())
    })();
    let unlocked = handle
        .block_on(client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]))
        .map_err(|error| failed("releasing the migration lock", error));
    result.and(unlocked.map(drop))
}

/// For offline tools, which never migrate: the schema must exist and not
/// be newer than this binary. Returns the version found.
pub(super) fn check_readable(
    handle: &Handle,
    client: &deadpool_postgres::Client,
    target: &str,
) -> Result<i64, StoreError> {
    let conn = PgConn::new(client, handle, super::conn::Mode::Read);
    // Asked in two steps: a query naming a missing table fails to plan.
    let exists = conn.query_one(
        "SELECT to_regclass('wcp_schema') IS NOT NULL",
        &[],
        "reading the schema version",
    )?;
    let found = if col::<bool>(&exists, 0)? {
        col(
            &conn.query_one(
                "SELECT coalesce(max(version), 0) FROM wcp_schema",
                &[],
                "reading the schema version",
            )?,
            0,
        )?
    } else {
        0
    };
    match found {
        0 => Err(StoreError::NoSchema {
            database: target.to_owned(),
        }),
        found if found > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            database: target.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }),
        found => Ok(found),
    }
}
