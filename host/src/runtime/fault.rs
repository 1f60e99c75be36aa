//! Policy faults: the ways an evaluation can fail to produce a decision.
//! Each kind is kept apart so operators can tell a slow policy from a greedy
//! or a broken one, and each becomes the policy's `on_error` verdict.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use wasmtime::Trap;

/// Longest fault message; messages never carry host internals.
const MESSAGE_LIMIT: usize = 256;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The evaluation ran past its deadline.
    Timeout,
    /// The policy asked for more memory than its cap.
    MemoryLimit,
    /// The policy trapped: a panic, `unreachable`, a stack overflow, an exit.
    Trap,
    /// The policy returned something the host cannot read as a decision.
    InvalidOutput,
}

impl FaultKind {
    /// The kind as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Timeout => "timeout",
            FaultKind::MemoryLimit => "memory_limit",
            FaultKind::Trap => "trap",
            FaultKind::InvalidOutput => "invalid_output",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed evaluation: its kind and a short explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// What went wrong.
    pub kind: FaultKind,
    /// A short explanation, at most 256 bytes.
    pub message: String,
}

impl Fault {
    fn new(kind: FaultKind, message: impl Into<String>) -> Self {
        let mut message = message.into();
        super::sandbox::truncate_to(&mut message, MESSAGE_LIMIT);
        Fault { kind, message }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What the classifier needs to know about the evaluation besides the error.
pub(crate) struct FaultContext<'a> {
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub memory_exceeded: bool,
    /// What the policy wrote to stderr; a Rust panic message lands here.
    pub stderr: &'a str,
}

/// Sorts an error from instantiating or calling a policy into a fault kind.
///
/// Order matters: a memory-cap hit shows up as a trap (the growth failure is
/// turned into one), and an epoch interrupt is a trap with its own code.
/// Errors that are neither traps nor exits come from lifting the result.
pub(crate) fn classify(error: &wasmtime::Error, context: FaultContext<'_>) -> Fault {
    if context.memory_exceeded {
        return Fault::new(
            FaultKind::MemoryLimit,
            format!(
                "policy exceeded its memory limit of {} MiB",
                context.memory_bytes / (1024 * 1024)
            ),
        );
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        if *trap == Trap::Interrupt {
            return Fault::new(
                FaultKind::Timeout,
                format!(
                    "policy did not finish within its {} ms deadline",
                    context.timeout.as_millis()
                ),
            );
        }
        if let Some(panic) = panic_message(context.stderr) {
            return Fault::new(FaultKind::Trap, format!("policy panicked: {panic}"));
        }
        return Fault::new(FaultKind::Trap, format!("policy trapped: {trap}"));
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Fault::new(
            FaultKind::Trap,
            format!("policy exited with status {}", exit.0),
        );
    }
    Fault::new(
        FaultKind::InvalidOutput,
        format!("policy returned a result that is not a valid decision: {error}"),
    )
}

/// The message of a Rust panic as the standard library prints it:
/// `thread '…' panicked at src/lib.rs:4:5:` followed by the message line.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines();
    while let Some(line) = lines.next() {
        if line.contains("panicked at") {
            let message = lines.next().unwrap_or("").trim();
            return Some(if message.is_empty() {
                line.trim().to_owned()
            } else {
                message.to_owned()
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(stderr: &str, memory_exceeded: bool) -> FaultContext<'_> {
        FaultContext {
            timeout: Duration::from_millis(100),
            memory_bytes: 32 << 20,
            memory_exceeded,
            stderr,
        }
    }

    #[test]
    fn interrupt_is_a_timeout() {
        let fault = classify(&wasmtime::Error::new(Trap::Interrupt), context("", false));
        assert_eq!(fault.kind, FaultKind::Timeout);
        assert_eq!(
            fault.message,
            "policy did not finish within its 100 ms deadline"
        );
    }

    #[test]
    fn memory_cap_wins_over_the_trap_it_causes() {
        let error = wasmtime::Error::new(Trap::UnreachableCodeReached);
        let fault = classify(&error, context("", true));
        assert_eq!(fault.kind, FaultKind::MemoryLimit);
        assert!(fault.message.contains("32 MiB"), "{}", fault.message);
    }

    #[test]
    fn panic_message_is_reported() {
        let stderr = "thread '<unnamed>' panicked at src/lib.rs:4:5:\nboom\nnote: run with `RUST_BACKTRACE=1`";
        let error = wasmtime::Error::new(Trap::UnreachableCodeReached);
        let fault = classify(&error, context(stderr, false));
        assert_eq!(fault.kind, FaultKind::Trap);
        assert_eq!(fault.message, "policy panicked: boom");
    }

    #[test]
    fn other_errors_are_invalid_output() {
        let error = wasmtime::format_err!("invalid utf-8");
        let fault = classify(&error, context("", false));
        assert_eq!(fault.kind, FaultKind::InvalidOutput);
    }

    #[test]
    fn long_messages_are_cut() {
        let stderr = format!("panicked at x\n{}", "é".repeat(300));
        let error = wasmtime::Error::new(Trap::UnreachableCodeReached);
        let fault = classify(&error, context(&stderr, false));
        assert!(fault.message.len() <= 256);
    }
}
