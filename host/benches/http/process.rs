//! The servers under load, each a child process: `wcp serve` (the release
//! binary cargo built beside this bench, or the one `--wcp` names) on a
//! temporary data directory, and
//! the bare handler and the stateless decision server (this bench
//! re-executed).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::server::{Server, WCP_LISTENING, wcp_serve};
use crate::{bare, stateless};

/// Starts `wcp serve` of the binary `wcp` on a free port with a fresh data
/// directory (made in `data_in`, else the system's temporary directory) and
/// no `--policy-dir`, so it seeds and serves the example policies, and
/// waits until it is ready.
pub async fn wcp(wcp: &Path, data_in: Option<&Path>, database_url: Option<&str>) -> Server {
    let data = match data_in {
        Some(parent) => tempfile::tempdir_in(parent),
        None => tempfile::tempdir(),
    }
    .expect("cannot make a temporary data directory");
    let mut command = wcp_serve(wcp, data.path());
    if let Some(url) = database_url {
        command.env("WCP_DATABASE_URL", url);
    }
    let server = Server::spawn(command, WCP_LISTENING, Some(data), None);
    server.wait_ready(Duration::from_millis(50)).await;
    server
}

/// Starts the bare handler: this bench binary, re-executed in server mode.
pub fn bare() -> Server {
    this_bench_serving(bare::SERVE_ENV)
}

/// Starts the stateless decision server: this bench binary, re-executed in
/// that mode. It answers once its policies are loaded.
pub fn stateless() -> Server {
    this_bench_serving(stateless::SERVE_ENV)
}

fn this_bench_serving(mode: &str) -> Server {
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut command = Command::new(exe);
    command
        .env(mode, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    Server::spawn(command, "listening on ", None, None)
}
