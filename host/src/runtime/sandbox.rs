//! The per-evaluation store state: an empty WASI context, the memory cap, and
//! bounded capture of everything the policy logs or prints.

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Level, wcp};
use super::output::CapturedOutput;

/// Bytes of `host.log` messages kept per evaluation.
pub const LOG_LIMIT: usize = 64 * 1024;
/// Longest single log message kept; longer ones are cut.
const MESSAGE_LIMIT: usize = 4 * 1024;

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// The `host.log` import.
    Host,
    /// WASI standard output.
    Stdout,
    /// WASI standard error.
    Stderr,
}

impl LogSource {
    /// How logs name the source: `log`, `stdout`, `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::Host => "log",
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
        }
    }
}

/// One message a policy logged during an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    /// Severity (`info` for stdout, `warn` for stderr).
    pub level: Level,
    /// Where it came from.
    pub source: LogSource,
    /// The message, cut to a bounded length.
    pub message: String,
}

/// Store data for one evaluation.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
    logs: Vec<PolicyLog>,
    log_bytes: usize,
    dropped_bytes: u64,
}

impl Sandbox {
    /// A sandbox whose linear memories may grow to `memory_bytes` in total.
    pub fn new(memory_bytes: usize) -> Self {
        let stdout = CapturedOutput::default();
        let stderr = CapturedOutput::default();
        // An empty context: no preopened directories, environment variables,
        // arguments or network access; stdin is empty.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Sandbox {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap::new(memory_bytes),
            stdout,
            stderr,
            logs: Vec::new(),
            log_bytes: 0,
            dropped_bytes: 0,
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.memory
    }

    /// `true` once the policy asked for more memory than its cap.
    pub fn memory_exceeded(&self) -> bool {
        self.memory.exceeded
    }

    /// The text the policy wrote to stderr so far (for panic messages).
    pub(crate) fn stderr_text(&self) -> String {
        self.stderr.text()
    }

    /// Everything logged and printed, in that order, and the bytes dropped.
    pub fn into_logs(mut self) -> (Vec<PolicyLog>, u64) {
        for (source, output, level) in [
            (LogSource::Stdout, &self.stdout, Level::Info),
            (LogSource::Stderr, &self.stderr, Level::Warn),
        ] {
            let (text, dropped) = output.take();
            self.dropped_bytes += dropped;
            for line in text.lines().filter(|line| !line.trim().is_empty()) {
                self.logs.push(PolicyLog {
                    level,
                    source,
                    message: line.to_owned(),
                });
            }
        }
        (self.logs, self.dropped_bytes)
    }
}

impl wcp::policy::host::Host for Sandbox {
    fn log(&mut self, level: Level, mut message: String) {
        truncate_to(&mut message, MESSAGE_LIMIT);
        if self.log_bytes + message.len() > LOG_LIMIT {
            self.dropped_bytes += message.len() as u64;
            return;
        }
        self.log_bytes += message.len();
        self.logs.push(PolicyLog {
            level,
            source: LogSource::Host,
            message,
        });
    }
}

impl wcp::policy::types::Host for Sandbox {}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary.
pub fn truncate_to(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// `StoreLimits` with growth failures turned into traps, remembering that the
/// cap was hit so the fault is reported as `memory_limit`, not a plain trap.
struct MemoryCap {
    limits: StoreLimits,
    exceeded: bool,
}

impl MemoryCap {
    fn new(memory_bytes: usize) -> Self {
        MemoryCap {
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.exceeded = true;
        }
        allowed
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.exceeded = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_to;

    #[test]
    fn truncates_at_a_character_boundary() {
        let mut text = String::from("aé");
        truncate_to(&mut text, 2);
        assert_eq!(text, "a");
        let mut short = String::from("abc");
        truncate_to(&mut short, 10);
        assert_eq!(short, "abc");
    }
}
