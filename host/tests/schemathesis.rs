//! The OpenAPI document tells the truth, as Schemathesis finds it: a
//! bounded run of `st run --checks all` against a real `wcp serve` with the
//! example policies, through every phase (examples, coverage, fuzzing, and
//! the stateful phase that follows the document's links from a created
//! workflow to its routes). It fails on any 5xx, any answer that does not
//! match the document, valid data refused, invalid data accepted, or a
//! panic in the server's log; the server must then stop on SIGTERM and
//! exit 0.
//!
//! Schemathesis runs in its own venv (`tests/schemathesis/requirements.txt`,
//! pinned), made on the first run like the SDK suite's. Its settings are in
//! `tests/schemathesis/schemathesis.toml`, each exception with its reason.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod python;
mod wire;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use python::{repo_root, run, venv};

/// Far above what any wait here needs on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(60);
/// Examples per operation and phase: enough to cover every field rule in a
/// run of about a minute on 2 cores.
const MAX_EXAMPLES: &str = "40";

struct Server {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `wcp serve` on a free loopback port over `data`, with the example
    /// policies, once it answers `/ready`.
    fn start(data: &Path) -> Server {
        let wcp = env!("CARGO_BIN_EXE_wcp");
        let policies = data.join("policies");
        let made = Command::new(wcp)
            .args(["policy", "examples"])
            .arg(&policies)
            .status()
            .unwrap();
        assert!(made.success(), "wcp policy examples failed");
        let mut child = Command::new(wcp)
            .args(["serve", "--listen", "127.0.0.1:0", "--policy-dir"])
            .arg(&policies)
            .env("WCP_DATA_DIR", data.join("data"))
            .env("WCP_LOG", "info")
            .env_remove("WCP_LISTEN")
            .env_remove("WCP_CONFIG")
            .env_remove("WCP_TENANTS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (address, log) = wire::listening(&mut child, DEADLINE);
        let server = Server {
            child,
            address,
            log,
        };
        let start = Instant::now();
        while !server.ready() {
            assert!(
                start.elapsed() < DEADLINE,
                "not ready within {DEADLINE:?}: {:#?}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn ready(&self) -> bool {
        wire::send(self.address, "GET", "/ready", "").0 == 200
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit status, within [`DEADLINE`].
    fn stop(mut self) -> (Option<i32>, Vec<String>) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), self.log());
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!("wcp serve did not stop on SIGTERM: {:#?}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn schemathesis_finds_the_openapi_document_true_on_every_route() {
    let root = repo_root();
    let python = venv(
        "schemathesis-venv",
        &root.join("tests/schemathesis/requirements.txt"),
    );
    let st = python.with_file_name("st");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = Server::start(&dir);

    let checked = run(
        Command::new(&st)
            .arg("--config-file")
            .arg(root.join("tests/schemathesis/schemathesis.toml"))
            .arg("run")
            .arg(format!("http://{}/openapi.json", server.address))
            .args(["--checks", "all"])
            .args(["--max-examples", MAX_EXAMPLES])
            .args(["--workers", "2"])
            .args(["--seed", "17"])
            .arg("--no-color")
            .current_dir(&dir)
            .env("SCHEMATHESIS_HOOKS", "")
            .env("NO_COLOR", "1"),
        "the venv has no `st`",
    );
    let (code, log) = server.stop();
    let panics: Vec<&String> = log
        .iter()
        .filter(|line| line.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "the server panicked: {panics:#?}");
    assert_eq!(code, Some(0), "wcp serve's exit after SIGTERM: {log:#?}");
    assert!(
        checked.success(),
        "Schemathesis found the server and its OpenAPI document at odds ({checked}): see its report above"
    );
}
