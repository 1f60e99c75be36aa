//! Log messages into the host's log, tagged with the policy id.
//!
//! In a policy running under `wcp` the message goes to the host through the
//! `host.log` import. Under native `cargo test` it is kept in memory so a test
//! can assert on it with [`crate::testing::take_logs`].

use std::fmt::Display;

/// Severity of a log message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Fine-grained detail.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something looks wrong but the policy can decide.
    Warn,
    /// Something failed.
    Error,
}

/// Logs `message` at `level`.
pub fn log(level: Level, message: impl Display) {
    emit(level, message.to_string());
}

/// Logs at [`Level::Trace`].
pub fn trace(message: impl Display) {
    log(Level::Trace, message);
}

/// Logs at [`Level::Debug`].
pub fn debug(message: impl Display) {
    log(Level::Debug, message);
}

/// Logs at [`Level::Info`].
pub fn info(message: impl Display) {
    log(Level::Info, message);
}

/// Logs at [`Level::Warn`].
pub fn warn(message: impl Display) {
    log(Level::Warn, message);
}

/// Logs at [`Level::Error`].
pub fn error(message: impl Display) {
    log(Level::Error, message);
}

#[cfg(target_arch = "wasm32")]
fn emit(level: Level, message: String) {
    crate::guest::host_log(level, &message);
}

#[cfg(not(target_arch = "wasm32"))]
fn emit(level: Level, message: String) {
    crate::testing::record_log(level, message);
}
