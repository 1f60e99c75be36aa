//! The SQLite half of `wcp store copy` (`store::copy`): a database's
//! tables as plain [`Cell`]s.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::error::SqlContext;
use super::migrations::SCHEMA_VERSION;
use crate::store::StoreError;
use crate::store::copy::{Cell, Table};

/// A data directory's database, opened read-only for a copy.
#[derive(Debug)]
pub struct Export {
    conn: Connection,
}

/// Opens `<data_dir>/wcp.db` read-only for a copy. Its schema must be this
/// binary's: an older one is migrated by starting `wcp serve` on it once.
pub fn export(data_dir: &Path) -> Result<Export, StoreError> {
    let (conn, version) = super::open_existing(data_dir)?;
    if version != SCHEMA_VERSION {
        return Err(StoreError::Invalid {
            what: "source database",
            detail: format!(
                "it has schema version {version}, this wcp copies version {SCHEMA_VERSION}; \
                 start `wcp serve` on it once to migrate it, then copy"
            ),
        });
    }
    Ok(Export { conn })
}

impl Export {
    /// Every row of `table`, in its key order.
    pub fn rows(&self, table: &Table) -> Result<Vec<Vec<Cell>>, StoreError> {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            table.columns.join(", "),
            table.name,
            table.order
        );
        let mut stmt = self.conn.prepare(&sql).context("reading a table to copy")?;
        let mut rows = stmt.query([]).context("reading a table to copy")?;
        let mut all = Vec::new();
        while let Some(row) = rows.next().context("reading a table to copy")? {
            let mut cells = Vec::with_capacity(table.columns.len());
            for index in 0..table.columns.len() {
                cells.push(
                    match row.get_ref(index).context("reading a table to copy")? {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(value) => Cell::Int(value),
                        ValueRef::Real(value) => Cell::Real(value),
                        ValueRef::Text(text) => {
                            Cell::Text(String::from_utf8_lossy(text).into_owned())
                        }
                        ValueRef::Blob(_) => {
                            return Err(StoreError::Corrupt {
                                what: "copied value",
                                detail: format!(
                                    "a blob in {}.{}",
                                    table.name, table.columns[index]
                                ),
                            });
                        }
                    },
                );
            }
            all.push(cells);
        }
        Ok(all)
    }

    /// The last checkpoint id handed out.
    pub fn checkpoint_counter(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT coalesce((SELECT value FROM counters WHERE name = 'checkpoint_id'), 0)",
                [],
                |row| row.get(0),
            )
            .context("reading the checkpoint counter")
    }

    /// How many entries `chain` holds.
    pub fn chain_length(&self, chain: &str) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM audit_log WHERE chain = ?1",
                [chain],
                |row| row.get(0),
            )
            .context("counting an audit chain")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
