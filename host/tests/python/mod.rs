//! Python tools the suite runs, each in its own venv under the target
//! directory: made with `python3 -m venv` (or `WCP_PYTHON`) and
//! `pip install -r <requirements>` on the first run, and again whenever the
//! requirements file changes. Without python3, venv or pip, or PyPI on the
//! first run, the test fails saying which is missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use sha2::{Digest, Sha256};

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_owned()
}

/// Runs `command` with its output streaming to ours; a start failure
/// panics with `needs`, saying what the machine lacks.
pub fn run(command: &mut Command, needs: &str) -> ExitStatus {
    command
        .env("WCP_BIN", env!("CARGO_BIN_EXE_wcp"))
        .env_remove("WCP_URL")
        .status()
        .unwrap_or_else(|error| panic!("cannot run {command:?} ({error}): {needs}"))
}

/// The python of the venv `name`, with `requirements` installed.
pub fn venv(name: &str, requirements: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let bin = dir.join("bin");
    let python = bin.join("python");
    let marker = dir.join("requirements.sha256");
    let wanted = hex::encode(Sha256::digest(
        fs::read(requirements)
            .unwrap_or_else(|error| panic!("{}: {error}", requirements.display())),
    ));
    if python.is_file() && fs::read_to_string(&marker).is_ok_and(|found| found == wanted) {
        return python;
    }
    let _ = fs::remove_dir_all(&dir);
    let system = std::env::var("WCP_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let needs =
        "the suite needs CPython 3.11+ with venv (Debian: python3-venv), or WCP_PYTHON naming one";
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
    fs::write(&marker, wanted).expect("the venv directory is writable");
    python
}
