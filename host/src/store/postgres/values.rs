//! The driver's errors and values as the store's: a lost connection is
//! "unavailable", counts are never negative, a column of an unexpected
//! type is corrupt.

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use crate::store::StoreError;
use crate::store::columns::Columns;

/// A driver error as a store error: a lost or refused connection is the
/// database being unavailable, anything else the statement failing.
pub(super) fn failed(context: &'static str, error: tokio_postgres::Error) -> StoreError {
    if error.is_closed() || (error.as_db_error().is_none() && is_io(&error)) {
        StoreError::Unavailable(Box::new(error))
    } else if let Some(code) = error.code()
        && unavailable_code(code)
    {
        StoreError::Unavailable(Box::new(error))
    } else if let Some(db) = error.as_db_error() {
        // The server's own message ("database … does not exist"): the
        // driver's error says only "db error".
        StoreError::Database {
            context,
            source: Box::new(db.clone()),
        }
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
