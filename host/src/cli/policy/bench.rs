//! `wcp policy bench`: fresh-instance evaluations of one request, timed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use super::EvalOptions;
use super::shared::{load, micros, read_json, report, request_from, runtime};
use crate::cli::CliError;

pub(super) fn bench(
    wasm: &Path,
    request: Option<&Path>,
    iterations: u32,
    options: &EvalOptions,
) -> Result<ExitCode, CliError> {
    let (origin, body) = match request {
        Some(path) => (path.to_owned(), read_json(path)?),
        None => (
            PathBuf::from("default request"),
            serde_json::json!({"step_type": "llm_call", "model": "gpt-4o"}),
        ),
    };
    let request = request_from(&origin, body, &options.actor)?;
    let effective = options.resolve(wasm)?;
    let settings = effective.settings;
    let runtime = runtime()?;
    let policy = load(&runtime, wasm)?;
    let limits = effective.limits;
    let iterations = iterations.max(1);

    let warmup = (iterations / 10).clamp(1, 1000);
    let first = runtime.evaluate(&policy, &request, &settings, limits);
    for _ in 1..warmup {
        runtime.evaluate(&policy, &request, &settings, limits);
    }
    eprintln!("measuring {iterations} fresh-instance evaluations...");
    let mut samples = Vec::with_capacity(iterations as usize);
    let started = Instant::now();
    for _ in 0..iterations {
        // Time the whole call, teardown of the instance included: that is
        // what every evaluation costs the host.
        let call = Instant::now();
        drop(runtime.evaluate(&policy, &request, &settings, limits));
        samples.push(call.elapsed());
    }
    let wall = started.elapsed();
    samples.sort_unstable();
    let percentile = |p: f64| {
        let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[index.min(samples.len() - 1)]
    };
    let report = report(wasm, &policy, &first, effective.on_error);
    println!(
        "policy     {} (version {})",
        wasm.display(),
        policy.version()
    );
    println!("decision   {} ({})", report.verdict, report.action);
    println!("runs       {iterations} after {warmup} warm-up");
    println!("p50        {}", micros(percentile(0.50)));
    println!("p99        {}", micros(percentile(0.99)));
    println!("max        {}", micros(percentile(1.0)));
    println!(
        "rate       {:.0} evaluations/s (one thread)",
        f64::from(iterations) / wall.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
