//! `wcp policy check | eval | test | bench`: work with one policy component
//! outside the server, with the same runtime and sandbox the server uses;
//! `wcp policy examples`: write the built-in example policies as a policy
//! directory.
//!
//! One file per subcommand: `check`, `eval`, `cases` (`test`), `bench`;
//! `shared` holds loading, reading requests and reporting a decision.

mod bench;
mod cases;
mod check;
mod eval;
mod shared;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::CliError;
use crate::examples::{self, ExamplesError};
use crate::manifest::Manifest;
use crate::runtime::Limits;
use crate::verdict::Verdict;
use shared::{read_json, settings_text};

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
        PolicyCommand::Check { wasm } => check::check(&wasm),
        PolicyCommand::Eval {
            wasm,
            request,
            options,
        } => eval::eval(&wasm, &request, &options),
        PolicyCommand::Test {
            wasm,
            cases,
            options,
        } => cases::test(&wasm, &cases, &options),
        PolicyCommand::Bench {
            wasm,
            request,
            iterations,
            options,
        } => bench::bench(&wasm, request.as_deref(), iterations, &options),
        PolicyCommand::Examples { dir, force } => write_examples(&dir, force),
    }
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
