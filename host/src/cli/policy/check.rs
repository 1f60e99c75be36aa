//! `wcp policy check`: whether a file is a policy this host runs.

use std::path::Path;
use std::process::ExitCode;

use super::shared::{load, runtime};
use crate::cli::CliError;

pub(super) fn check(wasm: &Path) -> Result<ExitCode, CliError> {
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
