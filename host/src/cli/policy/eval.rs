//! `wcp policy eval`: one dry run, printed as the dry-run API answers.

use std::path::Path;
use std::process::ExitCode;

use super::EvalOptions;
use super::shared::{load, print_logs, read_json, report, request_from, runtime};
use crate::cli::CliError;

pub(super) fn eval(
    wasm: &Path,
    request: &Path,
    options: &EvalOptions,
) -> Result<ExitCode, CliError> {
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
