//! HTTP load benchmark (design §10): `wcp serve` with the example policies,
//! driven over loopback by concurrent clients that each run whole workflows
//! (create, 5 gates with step completes, complete), against a bare axum
//! JSON handler driven by the same clients in the same run.
//!
//! 1. Closed loop: every client sends its next request as soon as the last
//!    is answered: peak gates/s, p50 and p99 gate latency.
//! 2. Open loop at half that gate rate: p50 and p99 gate latency, counted
//!    from each gate's scheduled time.
//! 3. Closed loop against the bare handler: requests/s, and the ratio
//!    `wcp gates/s ÷ bare requests/s`.
//! 4. Closed loop against a stateless decision server (`stateless.rs`: the
//!    same gate parsing and example policies through the same runtime, no
//!    store): gates/s, and the ratio `wcp gates/s ÷ stateless gates/s`,
//!    the cost of durability and workflow state.
//! 5. With `--database-url`: `wcp serve` on that PostgreSQL database in a
//!    closed loop; its gates/s is reported as a share of SQLite's from
//!    phase 1 (target: half).
//! 6. Open loop against it at half that rate (p99 against 10 ms).
//! 7. Two replicas on the database, with the clients spread over them.
//!
//! All servers are child processes on the same machine as the load
//! generator, which competes with them for the cores. The closed-loop
//! phases also report the CPU time each side spent per request.
//!
//! Run: `cargo bench -p host --bench http` (options after `--`, see `--help`).

mod bare;
#[path = "../common/client.rs"]
mod client;
mod cpu;
mod load;
mod process;
mod report;
#[path = "../common/server.rs"]
mod server;
mod stateless;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::load::{Pace, Window, Workload};

/// Drive `wcp serve` and a bare axum handler with concurrent clients.
#[derive(Debug, Parser)]
struct Options {
    /// Concurrent clients, each on one keep-alive connection.
    #[arg(long, env = "WCP_BENCH_CLIENTS", default_value_t = 32)]
    clients: usize,
    /// Seconds of warm-up before each phase's measurement.
    #[arg(long, env = "WCP_BENCH_WARMUP", default_value_t = 3)]
    warmup: u64,
    /// Seconds measured in each phase.
    #[arg(long, env = "WCP_BENCH_DURATION", default_value_t = 20)]
    duration: u64,
    /// Threads of the load generator.
    #[arg(long, env = "WCP_BENCH_THREADS", default_value_t = 1)]
    threads: usize,
    /// Directory to make wcp's temporary data directory in [default: the
    /// system's temporary directory]. Its file system's fsync is part of
    /// every write: compare a disk with a tmpfs such as /dev/shm to see it.
    #[arg(long, env = "WCP_BENCH_DATA_IN", value_name = "DIR")]
    data_in: Option<PathBuf>,
    /// The `wcp` binary to serve [default: the release binary cargo built
    /// beside this bench]. Naming another build (say, an earlier commit's)
    /// compares two builds under the same load generator.
    #[arg(long, env = "WCP_BENCH_WCP", value_name = "PATH")]
    wcp: Option<PathBuf>,
    /// Also run the workload on this PostgreSQL database, after the SQLite
    /// phases: one replica, then two with the clients spread over them
    /// (`postgres://user@host:port/db`; give a fresh one per run).
    #[arg(
        long,
        env = "WCP_BENCH_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    if std::env::var_os(bare::SERVE_ENV).is_some() {
        return bare::serve();
    }
    if std::env::var_os(stateless::SERVE_ENV).is_some() {
        return stateless::serve();
    }
    let options = Options::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads.max(1))
        .enable_all()
        .build()
        .expect("cannot start the load generator's runtime");
    runtime.block_on(run(options))
}

async fn run(options: Options) -> ExitCode {
    let clients = options.clients.max(1);
    let warmup = Duration::from_secs(options.warmup);
    let duration = Duration::from_secs(options.duration.max(1));
    let workload = Arc::new(Workload::new());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!(
        "{cores} cores; {clients} clients, {} load thread(s), {}s warm-up + {}s per phase",
        options.threads,
        warmup.as_secs(),
        duration.as_secs()
    );

    let binary = options
        .wcp
        .clone()
        .unwrap_or_else(|| PathBuf::from(server::BUILT_WCP));
    let wcp = process::wcp(&binary, options.data_in.as_deref(), None).await;
    eprintln!(
        "{} serve (pid {}) ready on {} with the example policies, data in {}",
        binary.display(),
        wcp.pid(),
        wcp.address,
        wcp.data_dir().display()
    );
    let phases = if options.database_url.is_some() { 7 } else { 4 };
    eprintln!("phase 1/{phases}: closed loop against wcp ...");
    let window = Window::after(warmup, duration);
    let peak_cpu = cpu::measure(wcp.pid(), window);
    let peak = load::workflows(
        &[wcp.address],
        clients,
        Pace::Closed,
        window,
        Arc::clone(&workload),
    )
    .await;
    let peak_rate = peak.gates() as f64 / duration.as_secs_f64();
    let peak_cpu = peak_cpu.await.ok().flatten();
    eprintln!("  {}", report::line(&peak, duration, "gates"));
    report::cpu_line(peak_cpu, &peak);

    let half = peak_rate / 2.0;
    eprintln!("phase 2/{phases}: open loop against wcp at {half:.0} gates/s ...");
    let window = Window::after(warmup, duration);
    let paced = if half > 0.0 {
        load::workflows(
            &[wcp.address],
            clients,
            Pace::Open(half),
            window,
            Arc::clone(&workload),
        )
        .await
    } else {
        load::Tally::new()
    };
    eprintln!("  {}", report::line(&paced, duration, "gates"));
    let wcp_warnings = wcp.warnings.lock().map(|w| w.clone()).unwrap_or_default();
    drop(wcp);

    let bare = process::bare();
    eprintln!(
        "phase 3/{phases}: closed loop against the bare axum handler on {} ...",
        bare.address
    );
    let window = Window::after(warmup, duration);
    let bare_cpu = cpu::measure(bare.pid(), window);
    let baseline = load::bare(bare.address, clients, window, Arc::clone(&workload)).await;
    let bare_cpu = bare_cpu.await.ok().flatten();
    eprintln!(
        "  {}",
        report::line(&baseline, duration, "gate-shaped requests")
    );
    report::cpu_line(bare_cpu, &baseline);
    drop(bare);

    let stateless = process::stateless();
    eprintln!(
        "phase 4/{phases}: closed loop against the stateless decision server on {} ...",
        stateless.address
    );
    let window = Window::after(warmup, duration);
    let stateless_cpu = cpu::measure(stateless.pid(), window);
    let decisions = load::bare(stateless.address, clients, window, Arc::clone(&workload)).await;
    let stateless_cpu = stateless_cpu.await.ok().flatten();
    eprintln!("  {}", report::line(&decisions, duration, "gates"));
    report::cpu_line(stateless_cpu, &decisions);
    drop(stateless);

    let summary = report::Summary {
        clients,
        duration,
        peak,
        peak_cpu,
        half_rate: half,
        paced,
        bare: baseline,
        bare_cpu,
        stateless: decisions,
        stateless_cpu,
        wcp_warnings,
    };
    let code = summary.print();
    if let Some(url) = &options.database_url {
        let replicas = postgres_phases(&binary, url, &options, warmup, duration, workload).await;
        report::postgres_rows(&summary, &replicas);
    }
    code
}

/// Phases 5-7: the same workload on PostgreSQL at `url`, one replica in a
/// closed loop and at half its peak, then two replicas on the database
/// with the clients spread over them.
async fn postgres_phases(
    binary: &std::path::Path,
    url: &str,
    options: &Options,
    warmup: Duration,
    duration: Duration,
    workload: Arc<Workload>,
) -> report::Replicas {
    let clients = options.clients.max(1);
    let first = process::wcp(binary, options.data_in.as_deref(), Some(url)).await;
    eprintln!("phase 5/7: closed loop against one replica on PostgreSQL ...");
    let window = Window::after(warmup, duration);
    let one_cpu = cpu::measure(first.pid(), window);
    let one = load::workflows(
        &[first.address],
        clients,
        Pace::Closed,
        window,
        Arc::clone(&workload),
    )
    .await;
    let one_cpu = one_cpu.await.ok().flatten();
    eprintln!("  {}", report::line(&one, duration, "gates"));
    report::cpu_line(one_cpu, &one);
    let half = one.gates() as f64 / duration.as_secs_f64() / 2.0;
    eprintln!("phase 6/7: open loop against one replica at {half:.0} gates/s ...");
    let window = Window::after(warmup, duration);
    let paced = if half > 0.0 {
        load::workflows(
            &[first.address],
            clients,
            Pace::Open(half),
            window,
            Arc::clone(&workload),
        )
        .await
    } else {
        load::Tally::new()
    };
    eprintln!("  {}", report::line(&paced, duration, "gates"));
    let second = process::wcp(binary, options.data_in.as_deref(), Some(url)).await;
    eprintln!("phase 7/7: closed loop against two replicas on PostgreSQL, clients spread ...");
    let window = Window::after(warmup, duration);
    let two = load::workflows(
        &[first.address, second.address],
        clients,
        Pace::Closed,
        window,
        workload,
    )
    .await;
    eprintln!("  {}", report::line(&two, duration, "gates"));
    report::Replicas {
        one,
        one_cpu,
        half_rate: half,
        paced,
        two,
    }
}
