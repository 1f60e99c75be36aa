//! What the `wcp policy` subcommands share: the runtime, loading a
//! component, reading a request, printing a decision and its logs.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::cli::CliError;
use crate::input::DryRunBody;
use crate::runtime::{
    CompiledPolicy, Evaluation, Fault, PolicyRequest, PolicyRuntime, RuntimeConfig,
};
use crate::verdict::Verdict;

pub(super) fn runtime() -> Result<PolicyRuntime, CliError> {
    PolicyRuntime::new(RuntimeConfig::default()).map_err(|e| CliError::new(e.to_string()))
}

pub(super) fn load(runtime: &PolicyRuntime, wasm: &Path) -> Result<CompiledPolicy, CliError> {
    runtime.load_file(wasm).map_err(|error| match error {
        crate::runtime::LoadError::Read { .. } => CliError::new(error.to_string()),
        other => CliError::new(format!("{}: {other}", wasm.display())),
    })
}

pub(super) fn read_json(path: &Path) -> Result<Value, CliError> {
    let text = std::fs::read(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| CliError::new(format!("{} is not valid JSON: {e}", path.display())))
}

pub(super) fn settings_text(origin: &Path, settings: Value) -> Result<String, CliError> {
    if !settings.is_object() {
        return Err(CliError::new(format!(
            "{}: settings must be a JSON object",
            origin.display()
        )));
    }
    Ok(settings.to_string())
}

pub(super) fn request_from(
    origin: &Path,
    body: Value,
    actor: &str,
) -> Result<PolicyRequest, CliError> {
    let body = DryRunBody::from_json(body.to_string().as_bytes())
        .and_then(|body| body.into_input(actor))
        .map_err(|e| CliError::new(format!("{}: {e}", origin.display())))?;
    Ok(PolicyRequest::new(&body))
}

pub(super) fn print_logs(evaluation: &Evaluation) {
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

/// What `eval` prints: the shape of the dry-run API's answer.
#[derive(Debug, Serialize)]
pub(super) struct EvalReport<'a> {
    pub(super) policy_name: String,
    pub(super) policy_version: &'a str,
    /// The policy's own verdict, or `error`.
    pub(super) action: &'static str,
    /// The verdict after `--on-error`.
    pub(super) verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<Fault>,
    pub(super) duration_us: u128,
}

pub(super) fn report<'a>(
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

pub(super) fn policy_name(wasm: &Path) -> String {
    wasm.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(super) fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}
