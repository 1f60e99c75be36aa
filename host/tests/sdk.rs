//! The clients users already have drive `wcp`: AxonFlow's Python SDK,
//! unmodified (`tests/sdk/`), and the guide's curl walkthrough
//! (`tests/curl/walkthrough.sh`), each against `wcp serve` processes of
//! this build that it starts itself. Their output streams through; each
//! ends with its own `N passed, N failed` line.
//!
//! The SDK runs in a venv under the target directory, made with
//! `python3 -m venv` and `pip install -r tests/sdk/requirements.txt` on the
//! first run and again whenever that file changes. This needs python3 (or
//! `WCP_PYTHON`) with venv and pip, PyPI for the first install, curl and
//! bash; without them the test fails saying which is missing, so a machine
//! that cannot run the suite never passes it silently.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use sha2::{Digest, Sha256};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs `command` with its output streaming to ours; a start failure
/// panics with `needs`, saying what the machine lacks.
fn run(command: &mut Command, needs: &str) -> ExitStatus {
    command
        .env("AXONFLOW_TELEMETRY", "off")
        .env("WCP_BIN", env!("CARGO_BIN_EXE_wcp"))
        .env_remove("WCP_URL")
        .status()
        .unwrap_or_else(|error| panic!("cannot run {command:?} ({error}): {needs}"))
}

/// The venv's python, with the pinned requirements installed.
fn venv(requirements: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-venv");
    let python = dir.join("bin").join("python");
    let marker = dir.join("requirements.sha256");
    let wanted = hex::encode(Sha256::digest(fs::read(requirements).unwrap()));
    if python.is_file() && fs::read_to_string(&marker).is_ok_and(|found| found == wanted) {
        return python;
    }
    let _ = fs::remove_dir_all(&dir);
    let system = std::env::var("WCP_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let needs = "the SDK suite needs CPython 3.11+ with venv (or WCP_PYTHON naming one)";
    let made = run(Command::new(&system).args(["-m", "venv"]).arg(&dir), needs);
    assert!(
        made.success(),
        "`{system} -m venv {}` failed: {needs}",
        dir.display()
    );
    let installed = run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(["--quiet", "--requirement"])
            .arg(requirements),
        "pip is missing from the venv",
    );
    assert!(
        installed.success(),
        "pip could not install {}: the first run needs network access to PyPI",
        requirements.display()
    );
    fs::write(&marker, wanted).unwrap();
    python
}

#[test]
fn axonflow_python_sdk_and_curl_walkthrough_pass_against_wcp_serve() {
    let root = repo_root();
    let python = venv(&root.join("tests/sdk/requirements.txt"));
    let sdk = run(
        Command::new(&python).arg(root.join("tests/sdk/run.py")),
        "the venv's python is gone",
    );
    let curl = run(
        Command::new("bash")
            .arg(root.join("tests/curl/walkthrough.sh"))
            .env_remove("WCP_CLIENT_ID")
            .env_remove("WCP_CLIENT_SECRET"),
        "the curl walkthrough needs bash",
    );
    assert!(
        sdk.success() && curl.success(),
        "the SDK suite ({sdk}) or the curl walkthrough ({curl}) failed: see their output above"
    );
}
