//! The progress lines and the closing summary, a Markdown table that can go
//! into BENCHMARKS.md as it is.

use std::process::ExitCode;
use std::time::Duration;

use crate::cpu::CpuUse;
use crate::load::Tally;
use crate::server::print_warnings;

/// Design §10: gates per second at peak, on 2 cores.
const TARGET_GATES_PER_S: f64 = 10_000.0;
/// Design §10: wcp gates/s ÷ bare handler requests/s.
const TARGET_RATIO: f64 = 0.4;
/// Design §10: p99 gate latency at half the peak load, in microseconds.
const TARGET_P99_US: u64 = 5_000;

/// One progress line: rates and latency percentiles of a phase, whose
/// timed requests are `what` (gates, or the bare handler's requests).
pub fn line(tally: &Tally, duration: Duration, what: &str) -> String {
    let seconds = duration.as_secs_f64();
    let mut text = format!(
        "{:.0} {what}/s ({:.0} requests/s in all), latency {}",
        tally.gates() as f64 / seconds,
        tally.requests as f64 / seconds,
        percentiles(tally)
    );
    if tally.errors > 0 {
        text.push_str(&format!(", {} ERRORS", tally.errors));
    }
    text
}

/// The progress line of a phase's CPU use, when it could be read.
pub fn cpu_line(cpu: Option<CpuUse>, tally: &Tally) {
    if let Some(cpu) = cpu {
        eprintln!("  CPU: {}", cpu.describe(tally.requests));
    }
}

fn cpu_cell(cpu: Option<CpuUse>, tally: &Tally) -> String {
    cpu.map_or_else(|| "not read".into(), |cpu| cpu.describe(tally.requests))
}

fn percentiles(tally: &Tally) -> String {
    if tally.latency.is_empty() {
        return "n/a".into();
    }
    format!(
        "p50 {} / p99 {} / max {}",
        millis(tally.latency.value_at_quantile(0.50)),
        millis(tally.latency.value_at_quantile(0.99)),
        millis(tally.latency.max())
    )
}

fn millis(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Summary {
    /// Simulated clients.
    pub clients: usize,
    /// Measured time per phase.
    pub duration: Duration,
    /// Phase 1: closed loop against wcp.
    pub peak: Tally,
    /// Phase 1's CPU use.
    pub peak_cpu: Option<CpuUse>,
    /// Phase 2's target gate rate: half of phase 1's.
    pub half_rate: f64,
    /// Phase 2: open loop against wcp.
    pub paced: Tally,
    /// Phase 3: closed loop against the bare handler.
    pub bare: Tally,
    /// Phase 3's CPU use.
    pub bare_cpu: Option<CpuUse>,
    /// Phase 4: closed loop against the stateless decision server.
    pub stateless: Tally,
    /// Phase 4's CPU use.
    pub stateless_cpu: Option<CpuUse>,
    /// Warnings and errors wcp logged.
    pub wcp_warnings: Vec<String>,
}

impl Summary {
    /// Prints the table, then any errors; fails the run if there were any.
    pub fn print(&self) -> ExitCode {
        let seconds = self.duration.as_secs_f64();
        let gates = self.peak.gates() as f64 / seconds;
        let requests = self.peak.requests as f64 / seconds;
        let paced = self.paced.gates() as f64 / seconds;
        let bare = self.bare.requests as f64 / seconds;
        let ratio = if bare > 0.0 { gates / bare } else { 0.0 };
        let stateless = self.stateless.requests as f64 / seconds;
        let p99_paced = self.paced.latency.value_at_quantile(0.99);
        let p99_met = !self.paced.latency.is_empty() && p99_paced <= TARGET_P99_US;

        println!();
        println!("| measure | value | target (design §10) | met |");
        println!("|---|---|---|---|");
        println!(
            "| wcp peak, closed loop, {} clients | {gates:.0} gates/s | >= {TARGET_GATES_PER_S:.0} gates/s on 2 cores | {} ({:.0}% of target) |",
            self.clients,
            verdict(gates >= TARGET_GATES_PER_S),
            100.0 * gates / TARGET_GATES_PER_S
        );
        println!("| gate latency at peak | {} | | |", percentiles(&self.peak));
        println!(
            "| wcp requests at peak (create, gate, step complete, complete) | {requests:.0} requests/s | | |"
        );
        println!(
            "| CPU at peak | {} | | |",
            cpu_cell(self.peak_cpu, &self.peak)
        );
        println!(
            "| wcp at half peak, open loop, {:.0} gates/s asked | {paced:.0} gates/s done | | |",
            self.half_rate
        );
        println!(
            "| gate latency at half peak (from the scheduled send time) | {} | p99 <= 5 ms | {} |",
            percentiles(&self.paced),
            verdict(p99_met)
        );
        println!(
            "| bare axum JSON handler, closed loop, {} clients | {bare:.0} requests/s, latency {} | | |",
            self.clients,
            percentiles(&self.bare)
        );
        println!(
            "| CPU, bare handler | {} | | |",
            cpu_cell(self.bare_cpu, &self.bare)
        );
        println!(
            "| ratio: wcp gates/s ÷ bare handler requests/s | {gates:.0} ÷ {bare:.0} = {ratio:.2} | >= {TARGET_RATIO:.2} | {} |",
            verdict(ratio >= TARGET_RATIO)
        );
        println!(
            "| for comparison: wcp requests/s ÷ bare handler requests/s | {:.2} | | |",
            if bare > 0.0 { requests / bare } else { 0.0 }
        );
        println!(
            "| stateless decision server (same parsing, policies and runtime, no store), closed loop | {stateless:.0} gates/s, latency {} | | |",
            percentiles(&self.stateless)
        );
        println!(
            "| CPU, stateless decision server | {} | | |",
            cpu_cell(self.stateless_cpu, &self.stateless)
        );
        println!(
            "| cost of durability and workflow state: wcp gates/s ÷ stateless gates/s | {gates:.0} ÷ {stateless:.0} = {:.2} | | |",
            if stateless > 0.0 {
                gates / stateless
            } else {
                0.0
            }
        );

        let errors =
            self.peak.errors + self.paced.errors + self.bare.errors + self.stateless.errors;
        println!();
        print_warnings(&self.wcp_warnings);
        if errors == 0 {
            println!("no HTTP errors");
            return ExitCode::SUCCESS;
        }
        println!("!!! {errors} HTTP ERRORS: these figures are not valid !!!");
        for (phase, tally) in [
            ("closed loop", &self.peak),
            ("open loop", &self.paced),
            ("bare handler", &self.bare),
            ("stateless server", &self.stateless),
        ] {
            for sample in &tally.samples {
                println!("  {phase}: {sample}");
            }
        }
        ExitCode::FAILURE
    }
}

/// What phases 5-7 measured on PostgreSQL.
#[derive(Debug)]
pub struct Replicas {
    /// Phase 5: closed loop against one replica.
    pub one: Tally,
    /// Phase 5's CPU use.
    pub one_cpu: Option<CpuUse>,
    /// Phase 6's target gate rate: half of phase 5's.
    pub half_rate: f64,
    /// Phase 6: open loop against one replica.
    pub paced: Tally,
    /// Phase 7: closed loop against two replicas.
    pub two: Tally,
}

/// Target of issue 19: one PostgreSQL replica at half of SQLite's gates/s
/// or more, in the same run.
const TARGET_POSTGRES_SHARE: f64 = 0.5;

/// Target of issue 19: gate p99 at half load on one replica, in µs.
const TARGET_POSTGRES_P99_US: u64 = 10_000;

/// The PostgreSQL rows, after the table of phases 1-4.
pub fn postgres_rows(summary: &Summary, replicas: &Replicas) {
    let seconds = summary.duration.as_secs_f64();
    let sqlite = summary.peak.gates() as f64 / seconds;
    let one = replicas.one.gates() as f64 / seconds;
    let two = replicas.two.gates() as f64 / seconds;
    let share = if sqlite > 0.0 { one / sqlite } else { 0.0 };
    let p99 = replicas.paced.latency.value_at_quantile(0.99);
    let p99_met = !replicas.paced.latency.is_empty() && p99 <= TARGET_POSTGRES_P99_US;
    println!(
        "| PostgreSQL, one replica, closed loop | {one:.0} gates/s, {} | >= {:.0}% of SQLite's | {} ({:.0}%) |",
        percentiles(&replicas.one),
        100.0 * TARGET_POSTGRES_SHARE,
        verdict(share >= TARGET_POSTGRES_SHARE),
        100.0 * share
    );
    println!(
        "| CPU, one PostgreSQL replica (wcp only) | {} | | |",
        cpu_cell(replicas.one_cpu, &replicas.one)
    );
    println!(
        "| PostgreSQL, one replica at half its peak, {:.0} gates/s asked | {} | p99 <= 10 ms | {} |",
        replicas.half_rate,
        percentiles(&replicas.paced),
        verdict(p99_met)
    );
    println!(
        "| PostgreSQL, two replicas, clients spread | {two:.0} gates/s, {} | | |",
        percentiles(&replicas.two)
    );
    for (name, tally) in [
        ("one replica", &replicas.one),
        ("half peak", &replicas.paced),
        ("two replicas", &replicas.two),
    ] {
        if tally.errors > 0 {
            println!("PostgreSQL {name}: {} HTTP errors", tally.errors);
        }
    }
}
