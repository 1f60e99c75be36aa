//! Policy reload and start-time benchmark (design §6, §10): the release
//! `wcp serve` as a child process over policy directories this bench lays
//! out, with distinct variants of the example policies (each with its own
//! sha256, so its own compilation and cache entry; see `layout`).
//!
//! 1. Start time with 20 policies: from spawning `wcp serve` to the first
//!    200 from `/ready` (polled every 5 ms), cold (a fresh data directory:
//!    every policy compiled) and warm (the same data directory again: every
//!    policy loaded from the precompiled cache). Target: warm <= 1 s.
//! 2. Reload latency: from just before a new `global/flip.wasm` is written
//!    (temp file, then rename) to the first gate decided by it, with new
//!    content every time (compiled) and with two known versions in turn
//!    (from the cache). Target: p99 <= 500 ms, debounce included.
//! 3. Resident memory with 100 policies, idle, after a cold and a warm
//!    start. Target: <= 150 MiB.
//!
//! The load average before and after each phase goes into the summary:
//! these figures mean little on a busy machine.
//!
//! Run: `cargo bench -p host --bench reload` (options after `--`, see `--help`).

#[path = "../common/client.rs"]
mod client;
mod flip;
mod layout;
mod report;
#[path = "../common/server.rs"]
mod server;
mod start;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::flip::Flip;
use crate::report::{Load, ReloadSeries, Resident, Summary};
use crate::start::Starts;

/// Measure wcp's start time, policy reload latency and idle memory.
#[derive(Debug, Parser)]
struct Options {
    /// Phases to run, repeatable [default: all].
    #[arg(long, value_enum)]
    phase: Vec<Phase>,
    /// Cold and warm starts each in phase 1.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Policies in the directory of phase 1.
    #[arg(long, default_value_t = 20)]
    policies: usize,
    /// Measured reloads of each kind in phase 2.
    #[arg(long, default_value_t = 100)]
    reloads: usize,
    /// The example policy whose variants phase 2 reloads (allow-all,
    /// conditions, cost-budget, model-allowlist, pii-guard, tool-approval).
    #[arg(long, default_value = "tool-approval", value_name = "NAME")]
    flip_policy: String,
    /// Policies in the directory of phase 3.
    #[arg(long, default_value_t = 100)]
    memory_policies: usize,
    /// Seconds a server of phase 3 stays idle before its memory is read.
    #[arg(long, default_value_t = 2)]
    idle: u64,
    /// Directory to make the temporary policy and data directories in
    /// [default: the system's temporary directory].
    #[arg(long, value_name = "DIR")]
    data_in: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A phase of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Start time, cold and warm.
    Start,
    /// Reload latency.
    Reload,
    /// Idle resident memory.
    Memory,
}

fn main() -> ExitCode {
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start the bench's runtime");
    runtime.block_on(run(options))
}

async fn run(options: Options) -> ExitCode {
    let runs = |phase| options.phase.is_empty() || options.phase.contains(&phase);
    let data_in = options.data_in.clone().unwrap_or_else(std::env::temp_dir);
    let examples = layout::examples();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!(
        "{cores} cores, load average {}; temporary directories in {}",
        report::load_average(),
        data_in.display()
    );
    let mut summary = Summary {
        policies: options.policies,
        starts: None,
        reloads: None,
        resident: None,
        load: Vec::new(),
        warnings: Vec::new(),
    };

    if runs(Phase::Start) {
        let announce = format!(
            "phase 1/3: start to ready with {} policies, {} cold + {} warm starts ...",
            options.policies, options.starts, options.starts
        );
        let work = starts(&options, &data_in, &examples);
        summary.starts = Some(phase(&mut summary.load, "1: start", announce, work).await);
    }
    if runs(Phase::Reload) {
        let announce = format!(
            "phase 2/3: reload latency of {}, {} reloads to new content, then {} to known content ...",
            options.flip_policy, options.reloads, options.reloads
        );
        let work = reloads(&options, &data_in, &examples, &mut summary.warnings);
        summary.reloads = Some(phase(&mut summary.load, "2: reload", announce, work).await);
    }
    if runs(Phase::Memory) {
        let announce = format!(
            "phase 3/3: resident memory with {} policies, {}s idle, after a cold and a warm start ...",
            options.memory_policies, options.idle
        );
        let work = resident(&options, &data_in, &examples);
        summary.resident = Some(phase(&mut summary.load, "3: memory", announce, work).await);
    }
    summary.print()
}

/// Prints `announce`, runs `work`, and notes the load average before and
/// after it in `loads` as `label`.
async fn phase<T>(
    loads: &mut Vec<Load>,
    label: &'static str,
    announce: String,
    work: impl Future<Output = T>,
) -> T {
    eprintln!("{announce}");
    let before = report::load_average();
    let value = work.await;
    loads.push(Load {
        phase: label,
        before,
        after: report::load_average(),
    });
    value
}

/// Phase 1.
async fn starts(options: &Options, data_in: &Path, examples: &[(&str, Vec<u8>)]) -> Starts {
    let policies = lay_out(data_in, examples, options.policies);
    start::cold_and_warm(policies.path(), data_in, options.policies, options.starts).await
}

/// Phase 2; the server's warnings go to `warnings`.
async fn reloads(
    options: &Options,
    data_in: &Path,
    examples: &[(&str, Vec<u8>)],
    warnings: &mut Vec<String>,
) -> ReloadSeries {
    let base = layout::example(examples, &options.flip_policy);
    let mut flip = Flip::start(data_in, base).await;
    let server = flip.server();
    eprintln!(
        "  wcp serve (pid {}) ready on {}, data in {}",
        server.pid(),
        server.address,
        server.data_dir().display()
    );
    let new = flip.new_content("new", options.reloads).await;
    let known = flip.known_content("known", options.reloads).await;
    let logged = flip.server().warnings.lock().map(|w| w.clone());
    warnings.extend(logged.unwrap_or_default());
    ReloadSeries {
        policy: options.flip_policy.clone(),
        size: base.len(),
        new,
        known,
    }
}

/// Phase 3.
async fn resident(options: &Options, data_in: &Path, examples: &[(&str, Vec<u8>)]) -> Resident {
    let policies = lay_out(data_in, examples, options.memory_policies);
    let idle = Duration::from_secs(options.idle);
    let [(_, cold), (_, warm)] =
        start::cold_then_warm(policies.path(), data_in, options.memory_policies, idle).await;
    eprintln!(
        "  VmRSS {} cold, {} warm",
        report::mib(cold.resident),
        report::mib(warm.resident)
    );
    Resident {
        policies: options.memory_policies,
        cold,
        warm,
    }
}

/// A temporary policy directory in `data_in` with `count` distinct global
/// policies.
fn lay_out(data_in: &Path, examples: &[(&str, Vec<u8>)], count: usize) -> tempfile::TempDir {
    let policies = tempfile::tempdir_in(data_in).expect("cannot make a policy directory");
    layout::global_policies(policies.path(), examples, count);
    policies
}
