//! `wcp policy test`: a policy's cases file, each case's verdict checked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::Value;

use super::EvalOptions;
use super::shared::{load, read_json, report, request_from, runtime, settings_text};
use crate::cli::CliError;
use crate::verdict::Verdict;

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
pub(super) struct Case {
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

pub(super) fn test(
    wasm: &Path,
    cases_path: &Path,
    options: &EvalOptions,
) -> Result<ExitCode, CliError> {
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
