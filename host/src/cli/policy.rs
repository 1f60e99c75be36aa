//! `wcp policy check | eval | test | bench`: work with one policy component
//! outside the server, with the same runtime and sandbox the server uses;
//! `wcp policy examples`: write the built-in example policies as a policy
//! directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::CliError;
use crate::examples::{self, ExamplesError};
use crate::input::DryRunBody;
use crate::manifest::Manifest;
use crate::runtime::{
    CompiledPolicy, Evaluation, Fault, Limits, PolicyRequest, PolicyRuntime, RuntimeConfig,
};
use crate::verdict::Verdict;

#[derive(Debug, Subcommand)]
pub(super) enum PolicyCommand {
    /// Validate a policy: a component of the wcp:policy/policy world that
    /// imports only what the sandbox offers.
    Check {
        /// The policy's `.wasm` file.
        wasm: PathBuf,
    },
    /// Evaluate one gate request and print the decision as JSON.
    Eval {
        /// The policy's `.wasm` file.
        wasm: PathBuf,
        /// JSON file: a gate body (`step_type`, `step_name`, `step_input`,
        /// `model`, `provider`, `tool_context`, `cost_usd`, ...) plus optional
        /// `step_id` and `workflow`.
        #[arg(long, value_name = "JSON")]
        request: PathBuf,
        #[command(flatten)]
        options: EvalOptions,
    },
    /// Run named cases from a JSON file and check each verdict.
    Test {
        /// The policy's `.wasm` file.
        wasm: PathBuf,
        /// JSON file: `{"settings": {..}, "cases": [{"name", "request",
        /// "expect", "reason_contains"?, "settings"?}]}` or just the array.
        cases: PathBuf,
        #[command(flatten)]
        options: EvalOptions,
    },
    /// Measure fresh-instance evaluations: p50, p99 and evaluations/s.
    Bench {
        /// The policy's `.wasm` file.
        wasm: PathBuf,
        /// JSON gate request (default: `{"step_type": "llm_call"}`).
        #[arg(long, value_name = "JSON")]
        request: Option<PathBuf>,
        /// Number of measured evaluations.
        #[arg(short = 'n', long, default_value_t = 10_000)]
        iterations: u32,
        #[command(flatten)]
        options: EvalOptions,
    },
    /// Write the built-in example policies into a policy directory, as
    /// `global/<name>.wasm` with its manifest `global/<name>.toml`.
    Examples {
        /// The policy directory; created if missing.
        dir: PathBuf,
        /// Overwrite example files that are already there.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub(super) struct EvalOptions {
    /// The policy's manifest (TOML). Default: the `.toml` beside the `.wasm`,
    /// if there is one, as in the policy directory.
    #[arg(long, value_name = "TOML")]
    manifest: Option<PathBuf>,
    /// JSON object given to the policy as its settings, instead of the
    /// manifest's `[settings]`.
    #[arg(long, value_name = "JSON")]
    settings: Option<PathBuf>,
    /// Deadline per evaluation [default: the manifest's, else 100].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    timeout_ms: Option<u64>,
    /// Memory cap per evaluation [default: the manifest's, else 32].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    memory_mib: Option<u64>,
    /// Verdict when the policy faults (timeout, memory, trap, bad output)
    /// [default: the manifest's, else block].
    #[arg(long, value_parser = parse_verdict)]
    on_error: Option<Verdict>,
    /// The caller the policy sees.
    #[arg(long, default_value = "community")]
    actor: String,
}

fn parse_verdict(text: &str) -> Result<Verdict, String> {
    text.parse()
}

/// What an evaluation runs with: the manifest, overridden by flags.
struct Effective {
    settings: String,
    limits: Limits,
    on_error: Verdict,
}

impl EvalOptions {
    fn resolve(&self, wasm: &Path) -> Result<Effective, CliError> {
        let beside = wasm.with_extension("toml");
        let manifest_path = match &self.manifest {
            Some(path) => Some(path.clone()),
            None => beside.is_file().then_some(beside),
        };
        let manifest = match &manifest_path {
            None => Manifest::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
                let manifest = Manifest::parse(&text)
                    .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
                if self.manifest.is_none() {
                    eprintln!("using manifest {}", path.display());
                }
                manifest
            }
        };
        let settings = match &self.settings {
            Some(path) => settings_text(path, read_json(path)?)?,
            None => manifest.settings_json().to_owned(),
        };
        let defaults = manifest.limits();
        let limits = Limits {
            timeout: self
                .timeout_ms
                .map_or(defaults.timeout, Duration::from_millis),
            memory_bytes: self
                .memory_mib
                .map_or(defaults.memory_bytes, |mib| (mib as usize) << 20),
        };
        Ok(Effective {
            settings,
            limits,
            on_error: self.on_error.unwrap_or(manifest.on_error),
        })
    }
}

pub(super) fn run(command: PolicyCommand) -> Result<ExitCode, CliError> {
    match command {
        PolicyCommand::Check { wasm } => check(&wasm),
        PolicyCommand::Eval {
            wasm,
            request,
            options,
        } => eval(&wasm, &request, &options),
        PolicyCommand::Test {
            wasm,
            cases,
            options,
        } => test(&wasm, &cases, &options),
        PolicyCommand::Bench {
            wasm,
            request,
            iterations,
            options,
        } => bench(&wasm, request.as_deref(), iterations, &options),
        PolicyCommand::Examples { dir, force } => write_examples(&dir, force),
    }
}

fn runtime() -> Result<PolicyRuntime, CliError> {
    PolicyRuntime::new(RuntimeConfig::default()).map_err(|e| CliError::new(e.to_string()))
}

fn load(runtime: &PolicyRuntime, wasm: &Path) -> Result<CompiledPolicy, CliError> {
    runtime.load_file(wasm).map_err(|error| match error {
        crate::runtime::LoadError::Read { .. } => CliError::new(error.to_string()),
        other => CliError::new(format!("{}: {other}", wasm.display())),
    })
}

fn read_json(path: &Path) -> Result<Value, CliError> {
    let text = std::fs::read(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| CliError::new(format!("{} is not valid JSON: {e}", path.display())))
}

fn settings_text(origin: &Path, settings: Value) -> Result<String, CliError> {
    if !settings.is_object() {
        return Err(CliError::new(format!(
            "{}: settings must be a JSON object",
            origin.display()
        )));
    }
    Ok(settings.to_string())
}

fn request_from(origin: &Path, body: Value, actor: &str) -> Result<PolicyRequest, CliError> {
    let body = DryRunBody::from_json(body.to_string().as_bytes())
        .and_then(|body| body.into_input(actor))
        .map_err(|e| CliError::new(format!("{}: {e}", origin.display())))?;
    Ok(PolicyRequest::new(&body))
}

fn print_logs(evaluation: &Evaluation) {
    for line in &evaluation.logs {
        eprintln!(
            "policy {} [{:?}]: {}",
            line.source.as_str(),
            line.level,
            line.message
        );
    }
    if evaluation.dropped_log_bytes > 0 {
        eprintln!(
            "policy output: {} bytes over the bounds were dropped",
            evaluation.dropped_log_bytes
        );
    }
}

fn check(wasm: &Path) -> Result<ExitCode, CliError> {
    let runtime = runtime()?;
    let policy = load(&runtime, wasm)?;
    println!(
        "ok: {} is a valid policy (version {}, {} bytes, sha256 {})",
        wasm.display(),
        policy.version(),
        policy.size_bytes(),
        policy.sha256()
    );
    Ok(ExitCode::SUCCESS)
}

/// What `eval` prints: the shape of the dry-run API's answer.
#[derive(Debug, Serialize)]
struct EvalReport<'a> {
    policy_name: String,
    policy_version: &'a str,
    /// The policy's own verdict, or `error`.
    action: &'static str,
    /// The verdict after `--on-error`.
    verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Fault>,
    duration_us: u128,
}

fn report<'a>(
    wasm: &Path,
    policy: &'a CompiledPolicy,
    evaluation: &Evaluation,
    on_error: Verdict,
) -> EvalReport<'a> {
    let (action, verdict, reason, error) = match &evaluation.outcome {
        Ok(decision) => (
            decision.verdict.as_str(),
            decision.verdict,
            decision.reason.clone(),
            None,
        ),
        Err(fault) => ("error", on_error, None, Some(fault.clone())),
    };
    EvalReport {
        policy_name: policy_name(wasm),
        policy_version: policy.version(),
        action,
        verdict,
        reason,
        error,
        duration_us: evaluation.duration.as_micros(),
    }
}

fn policy_name(wasm: &Path) -> String {
    wasm.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn eval(wasm: &Path, request: &Path, options: &EvalOptions) -> Result<ExitCode, CliError> {
    let body = read_json(request)?;
    let request = request_from(request, body, &options.actor)?;
    let effective = options.resolve(wasm)?;
    let runtime = runtime()?;
    let policy = load(&runtime, wasm)?;
    let evaluation = runtime.evaluate(&policy, &request, &effective.settings, effective.limits);
    print_logs(&evaluation);
    let report = report(wasm, &policy, &evaluation, effective.on_error);
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| CliError::new(format!("cannot print the decision: {e}")))?;
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CasesFile {
    Cases(Vec<Case>),
    Suite {
        #[serde(default)]
        settings: Option<Value>,
        cases: Vec<Case>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    request: Value,
    #[serde(deserialize_with = "deserialize_verdict")]
    expect: Verdict,
    #[serde(default)]
    reason_contains: Option<String>,
    #[serde(default)]
    settings: Option<Value>,
}

fn deserialize_verdict<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

struct CaseResult {
    name: String,
    expected: String,
    got: String,
    failure: Option<String>,
}

fn test(wasm: &Path, cases_path: &Path, options: &EvalOptions) -> Result<ExitCode, CliError> {
    let file: CasesFile = serde_json::from_value(read_json(cases_path)?).map_err(|e| {
        CliError::new(format!(
            "{}: not a cases file ({e}); expected {{\"cases\": [{{\"name\", \"request\", \"expect\"}}]}}",
            cases_path.display()
        ))
    })?;
    let (suite_settings, cases) = match file {
        CasesFile::Cases(cases) => (None, cases),
        CasesFile::Suite { settings, cases } => (settings, cases),
    };
    if cases.is_empty() {
        return Err(CliError::new(format!("{}: no cases", cases_path.display())));
    }
    let effective = options.resolve(wasm)?;
    let default_settings = match suite_settings {
        Some(settings) => settings_text(cases_path, settings)?,
        None => effective.settings.clone(),
    };
    let runtime = runtime()?;
    let policy = load(&runtime, wasm)?;

    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let origin = PathBuf::from(format!("{} case \"{}\"", cases_path.display(), case.name));
        let request = request_from(&origin, case.request, &options.actor)?;
        let settings = match case.settings {
            Some(settings) => settings_text(&origin, settings)?,
            None => default_settings.clone(),
        };
        let evaluation = runtime.evaluate(&policy, &request, &settings, effective.limits);
        let report = report(wasm, &policy, &evaluation, effective.on_error);
        let got = match &report.error {
            Some(fault) => format!("{} ({})", report.verdict, fault.kind),
            None => report.verdict.to_string(),
        };
        let mut failure = None;
        if report.verdict != case.expect {
            failure = Some(match (&report.reason, &report.error) {
                (_, Some(fault)) => fault.to_string(),
                (Some(reason), None) => format!("reason: {reason}"),
                (None, None) => String::new(),
            });
        } else if let Some(needle) = &case.reason_contains {
            let reason = report.reason.as_deref().unwrap_or("");
            if !reason.contains(needle.as_str()) {
                failure = Some(format!("reason {reason:?} does not contain {needle:?}"));
            }
        }
        results.push(CaseResult {
            name: case.name,
            expected: case.expect.to_string(),
            got,
            failure,
        });
    }
    print_table(&results);
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    println!("\n{} passed, {} failed", results.len() - failed, failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_table(results: &[CaseResult]) {
    let width = |header: &str, column: &dyn Fn(&CaseResult) -> usize| {
        results
            .iter()
            .map(column)
            .max()
            .unwrap_or(0)
            .max(header.len())
    };
    let name_w = width("CASE", &|r| r.name.chars().count());
    let expected_w = width("EXPECTED", &|r| r.expected.len());
    let got_w = width("GOT", &|r| r.got.len());
    println!(
        "{:<name_w$}  {:<expected_w$}  {:<got_w$}  RESULT",
        "CASE", "EXPECTED", "GOT"
    );
    for result in results {
        let outcome = match &result.failure {
            None => "ok".to_owned(),
            Some(detail) if detail.is_empty() => "FAIL".to_owned(),
            Some(detail) => format!("FAIL  {detail}"),
        };
        println!(
            "{:<name_w$}  {:<expected_w$}  {:<got_w$}  {outcome}",
            result.name, result.expected, result.got
        );
    }
}

fn bench(
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

fn write_examples(dir: &Path, force: bool) -> Result<ExitCode, CliError> {
    let written = examples::write(dir, force).map_err(|error| match error {
        ExamplesError::Exists { .. } => CliError::new(format!(
            "{error}; nothing was written (--force overwrites the example files)"
        )),
        ExamplesError::Write { .. } => CliError::new(error.to_string()),
    })?;
    for path in &written {
        println!("wrote {}", path.display());
    }
    println!(
        "{} example policies ({}); serve them with: wcp serve --policy-dir {}",
        examples::EXAMPLES.len(),
        examples::names(),
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}
