//! The two servers under load, each a child process: `wcp serve` (the
//! release binary cargo built beside this bench) on a temporary data
//! directory, and the bare handler (this bench re-executed).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::bare;
use crate::client::Connection;

/// A server child process, killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its log lines at warning level or above.
    pub warnings: Arc<Mutex<Vec<String>>>,
    /// Its data directory, removed after the child is gone.
    data: Option<tempfile::TempDir>,
}

impl Server {
    /// wcp's data directory (empty for the bare server).
    pub fn data_dir(&self) -> &Path {
        self.data.as_ref().map_or(Path::new(""), |data| data.path())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `wcp serve` on a free port with a fresh data directory (made in
/// `data_in`, else the system's temporary directory) and no `--policy-dir`,
/// so it seeds and serves the example policies, and waits until it is ready.
pub async fn wcp(data_in: Option<&Path>) -> Server {
    let data = match data_in {
        Some(parent) => tempfile::tempdir_in(parent),
        None => tempfile::tempdir(),
    }
    .expect("cannot make a temporary data directory");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wcp"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(data.path())
        .env("WCP_LOG", "info")
        .env_remove("WCP_POLICY_DIR")
        .env_remove("WCP_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start wcp serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let (address, warnings) = read_log(stderr, "listening on http://");
    let server = Server {
        child,
        address,
        warnings,
        data: Some(data),
    };
    wait_ready(&server).await;
    server
}

/// Starts the bare handler: this bench binary, re-executed in server mode.
pub async fn bare() -> Server {
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut child = Command::new(exe)
        .env(bare::SERVE_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot start the bare server");
    let stdout = child.stdout.take().expect("piped stdout");
    let (address, warnings) = read_log(stdout, "listening on ");
    Server {
        child,
        address,
        warnings,
        data: None,
    }
}

/// Reads `output` up to the line announcing the address, then keeps reading
/// it on a thread (a full pipe would stall the server), keeping warnings
/// and errors.
fn read_log(
    output: impl Read + Send + 'static,
    marker: &str,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut lines = BufReader::new(output).lines();
    let mut seen = Vec::new();
    let address = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("the server exited before listening: {seen:#?}");
        };
        if let Some((_, rest)) = line.split_once(marker) {
            let end = rest
                .find(|c: char| c == '"' || c.is_whitespace())
                .unwrap_or(rest.len());
            break rest[..end].parse().expect("a socket address");
        }
        seen.push(line);
    };
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&warnings);
    thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("\"WARN\"") || line.contains("\"ERROR\"") {
                sink.lock().expect("log lock").push(line);
            }
        }
    });
    (address, warnings)
}

/// Polls `/ready` until it answers 200, for at most a minute.
async fn wait_ready(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut conn) = Connection::open(server.address).await
            && let Ok((status, _)) = conn.get("/ready").await
            && status.is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "wcp serve never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
