//! A server under test as a child process: started, its address read from
//! the log line announcing it, its log kept read on a thread (a full pipe
//! would stall it), polled until `/ready`, and killed when dropped. Shared
//! by the benches that drive a server over loopback (`#[path]`-included as
//! their `server` module, beside the shared `client` module).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::client::Connection;

/// The line `wcp serve` logs once it listens, followed by its address.
pub const WCP_LISTENING: &str = "listening on http://";

/// How long a server may take to answer `/ready` before the bench gives up.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// A log line and when the bench read it.
pub type LogLine = (Instant, String);

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
    /// Spawns `command`, whose log is its one piped output (stdout or
    /// stderr), and reads the log up to the line holding `marker` followed
    /// by the address the server listens on. The server owns `data`
    /// (removed when it is dropped); every later log line also goes to
    /// `tap`, if any, with the time it was read.
    pub fn spawn(
        mut command: Command,
        marker: &str,
        data: Option<tempfile::TempDir>,
        tap: Option<UnboundedSender<LogLine>>,
    ) -> Server {
        let mut child = command
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot start the server");
        let log: Box<dyn Read + Send> = match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), None) => Box::new(stdout),
            (None, Some(stderr)) => Box::new(stderr),
            _ => panic!("the server's log must be its one piped output"),
        };
        let (address, warnings) = read_log(log, marker, tap);
        Server {
            child,
            address,
            warnings,
            data,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The data directory it owns (empty when it owns none).
    pub fn data_dir(&self) -> &Path {
        self.data.as_ref().map_or(Path::new(""), |data| data.path())
    }

    /// Polls `/ready` every `interval`, on one keep-alive connection
    /// (opened again after an error), until it answers 200; returns when
    /// that answer came. Panics after a minute.
    pub async fn wait_ready(&self, interval: Duration) -> Instant {
        let deadline = Instant::now() + READY_DEADLINE;
        let mut connection = None;
        loop {
            if connection.is_none() {
                connection = Connection::open(self.address).await.ok();
            }
            if let Some(conn) = connection.as_mut() {
                match conn.get("/ready").await {
                    Ok((status, _)) if status.is_success() => return Instant::now(),
                    Ok(_) => {}
                    Err(_) => connection = None,
                }
            }
            assert!(Instant::now() < deadline, "the server never became ready");
            tokio::time::sleep(interval).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `wcp` release binary cargo built beside the bench.
pub const BUILT_WCP: &str = env!("CARGO_BIN_EXE_wcp");

/// `wcp serve` of the binary `wcp` (usually [`BUILT_WCP`]) on a free
/// loopback port with `data_dir`, logging JSON at info level to a piped
/// stderr, unaffected by the caller's `WCP_POLICY_DIR` and `WCP_CONFIG`.
/// Without a `--policy-dir` it seeds and serves the example policies.
pub fn wcp_serve(wcp: &Path, data_dir: &Path) -> Command {
    let mut command = Command::new(wcp);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--data-dir")
        .arg(data_dir)
        .env("WCP_LOG", "info")
        .env_remove("WCP_POLICY_DIR")
        .env_remove("WCP_CONFIG")
        .env_remove("WCP_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Prints how many warning or error lines a server logged, and the first
/// few; nothing when there were none.
pub fn print_warnings(warnings: &[String]) {
    if warnings.is_empty() {
        return;
    }
    println!(
        "wcp logged {} warning or error lines; the first:",
        warnings.len()
    );
    for line in warnings.iter().take(3) {
        println!("  {line}");
    }
}

/// Reads `output` up to the line announcing the address, then keeps reading
/// it on a thread, keeping warnings and errors and passing every line to
/// `tap`.
fn read_log(
    output: impl Read + Send + 'static,
    marker: &str,
    tap: Option<UnboundedSender<LogLine>>,
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
            let read = Instant::now();
            if line.contains("\"WARN\"") || line.contains("\"ERROR\"") {
                sink.lock().expect("log lock").push(line.clone());
            }
            if let Some(tap) = &tap {
                let _ = tap.send((read, line));
            }
        }
    });
    (address, warnings)
}
