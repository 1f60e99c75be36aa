//! The closing summary: Markdown tables that can go into BENCHMARKS.md as
//! they are, with the machine's load average around each phase.

use std::process::ExitCode;
use std::time::Duration;

use crate::flip::Reloads;
use crate::server::print_warnings;
use crate::start::{Memory, Starts, millis};

/// Design §10: start with 20 cached policies, to ready.
pub const TARGET_WARM_START: Duration = Duration::from_secs(1);
/// Design §10: file written to new version deciding, p99, debounce included.
pub const TARGET_RELOAD: Duration = Duration::from_millis(500);
/// Design §10: resident memory, 100 policies loaded, idle.
pub const TARGET_RESIDENT: u64 = 150 * 1024 * 1024;

/// `/proc/loadavg`'s three averages, or `?` where it cannot be read.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "?".into())
}

/// The value at quantile `q` of `sorted` (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(values: &[Duration]) -> Vec<Duration> {
    let mut values = values.to_vec();
    values.sort();
    values
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", millis(duration))
}

/// Bytes in MiB, for people.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

/// One phase's load average before and after it.
#[derive(Debug, Clone)]
pub struct Load {
    /// The phase.
    pub phase: &'static str,
    /// Before it started.
    pub before: String,
    /// After it ended.
    pub after: String,
}

/// The reload phase's two series.
#[derive(Debug)]
pub struct ReloadSeries {
    /// The example policy reloaded.
    pub policy: String,
    /// Its component's size in bytes.
    pub size: usize,
    /// Every reload to content never seen: compiled.
    pub new: Reloads,
    /// Reloads alternating between two cached versions.
    pub known: Reloads,
}

/// Resident memory with many policies, after a cold and a warm start.
#[derive(Debug)]
pub struct Resident {
    /// Policies loaded.
    pub policies: usize,
    /// After a cold start (everything compiled in the process).
    pub cold: Memory,
    /// After a warm start (everything from the cache).
    pub warm: Memory,
}

/// Everything one run measured; a phase not run is `None`.
#[derive(Debug)]
pub struct Summary {
    /// Policies of the start phase.
    pub policies: usize,
    /// Phase 1.
    pub starts: Option<Starts>,
    /// Phase 2.
    pub reloads: Option<ReloadSeries>,
    /// Phase 3.
    pub resident: Option<Resident>,
    /// Load average around each phase.
    pub load: Vec<Load>,
    /// Warnings and errors the servers logged.
    pub warnings: Vec<String>,
}

impl Summary {
    /// Prints the tables, then any errors; fails the run if a reload
    /// request failed or a reload was missed.
    pub fn print(&self) -> ExitCode {
        if let Some(starts) = &self.starts {
            self.print_starts(starts);
        }
        if let Some(series) = &self.reloads {
            print_reloads(series);
        }
        if let Some(resident) = &self.resident {
            print_resident(resident);
        }
        println!();
        println!("| phase | load average before | after |");
        println!("|---|---|---|");
        for load in &self.load {
            println!("| {} | {} | {} |", load.phase, load.before, load.after);
        }
        println!();
        print_warnings(&self.warnings);
        let Some(series) = &self.reloads else {
            return ExitCode::SUCCESS;
        };
        let mut failed = false;
        for (case, reloads) in [
            ("new content", &series.new),
            ("known content", &series.known),
        ] {
            if reloads.errors > 0 || reloads.missed > 0 {
                failed = true;
                println!(
                    "!!! {case}: {} failed requests, {} missed reloads !!!",
                    reloads.errors, reloads.missed
                );
                for sample in &reloads.samples {
                    println!("  {sample}");
                }
            }
        }
        if failed {
            return ExitCode::FAILURE;
        }
        println!("no failed requests, no missed reloads");
        ExitCode::SUCCESS
    }

    fn print_starts(&self, starts: &Starts) {
        let cold = sorted(&starts.cold);
        let warm = sorted(&starts.warm);
        println!();
        println!(
            "| start to ready, {} policies | runs | min | p50 | max | target (design §10) | met |",
            self.policies
        );
        println!("|---|---|---|---|---|---|---|");
        for (what, times, target) in [
            ("cold: fresh data directory, all compiled", &cold, None),
            (
                "warm: same data directory, all from the cache",
                &warm,
                Some(TARGET_WARM_START),
            ),
        ] {
            let max = quantile(times, 1.0);
            let (target, met) = match target {
                Some(target) => (
                    format!("<= {}", ms(target)),
                    verdict(!times.is_empty() && max <= target),
                ),
                None => (String::new(), ""),
            };
            println!(
                "| {what} | {} | {} | {} | {} | {target} | {met} |",
                times.len(),
                ms(quantile(times, 0.0)),
                ms(quantile(times, 0.5)),
                ms(max),
            );
        }
    }
}

fn print_reloads(series: &ReloadSeries) {
    println!();
    println!(
        "| reload of {} ({} KiB): write to first gate decided by the new version | reloads | p50 | p99 | max | target (design §10) | met |",
        series.policy,
        series.size / 1024
    );
    println!("|---|---|---|---|---|---|---|");
    for (case, reloads) in [
        ("new content (compiled)", &series.new),
        ("known content (from the cache)", &series.known),
    ] {
        let latency = sorted(&reloads.latency);
        let p99 = quantile(&latency, 0.99);
        let met = !latency.is_empty() && reloads.missed == 0 && p99 <= TARGET_RELOAD;
        println!(
            "| {case} | {} | {} | {} | {} | p99 <= {} | {} |",
            latency.len(),
            ms(quantile(&latency, 0.5)),
            ms(p99),
            ms(quantile(&latency, 1.0)),
            ms(TARGET_RELOAD),
            verdict(met)
        );
        let loaded = sorted(&reloads.loaded);
        println!(
            "| {case}, of which write to `policy loaded` logged | {} | {} | {} | {} | | |",
            loaded.len(),
            ms(quantile(&loaded, 0.5)),
            ms(quantile(&loaded, 0.99)),
            ms(quantile(&loaded, 1.0)),
        );
    }
    println!();
    for (case, reloads) in [
        ("new content", &series.new),
        ("known content", &series.known),
    ] {
        println!(
            "{case}: {} gates probed, {:.1} ms per probe (create + gate): the resolution of a latency",
            reloads.gates,
            millis(reloads.probe_time())
        );
    }
}

fn print_resident(resident: &Resident) {
    println!();
    println!(
        "| resident memory, {} policies, idle | VmRSS | VmHWM (peak) | target (design §10) | met |",
        resident.policies
    );
    println!("|---|---|---|---|---|");
    for (what, memory) in [
        ("after a cold start (all compiled)", resident.cold),
        ("after a warm start (all from the cache)", resident.warm),
    ] {
        println!(
            "| {what} | {} | {} | <= {} | {} |",
            mib(memory.resident),
            mib(memory.peak),
            mib(TARGET_RESIDENT),
            verdict(memory.resident <= TARGET_RESIDENT)
        );
    }
}
