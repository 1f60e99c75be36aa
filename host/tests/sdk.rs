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

mod python;

use std::process::Command;

use python::{repo_root, run, venv};

#[test]
fn axonflow_python_sdk_and_curl_walkthrough_pass_against_wcp_serve() {
    let root = repo_root();
    let python = venv("sdk-venv", &root.join("tests/sdk/requirements.txt"));
    let sdk = run(
        Command::new(&python)
            .arg(root.join("tests/sdk/run.py"))
            .env("AXONFLOW_TELEMETRY", "off"),
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
