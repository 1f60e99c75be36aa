//! rusqlite's errors as [`StoreError`]s.

use crate::store::StoreError;

/// Adds the "what was the store doing" context to a rusqlite result.
pub trait SqlContext<T> {
    /// Wraps an error as [`StoreError::Database`] with `context`.
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Database {
            context,
            source: Box::new(source),
        })
    }
}
