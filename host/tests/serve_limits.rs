//! `wcp serve`'s limits against slow, idle and careless clients and
//! chatty policies: header and body timeouts, the connection cap under a
//! small descriptor limit, many idle connections beside a real client, a
//! shutdown that always finishes, and the log budget of policy output.
//! Each server is the real binary on a loopback port; every wait polls a
//! condition with a deadline.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod wire;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use wcp_test_artifacts as wasm;
use wire::parse_response;

/// Longer than any wait below should take, even on a slow machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running `wcp serve` and everything it has logged so far.
struct Server {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `wcp serve` on a free port over `data`, with the allow-all
    /// policy (and `extra` policies) in `<data>/policies`, and waits until
    /// it is ready. `nofile` is a `prlimit --nofile` value (`soft:hard`).
    fn start(data: &Path, args: &[&str], nofile: Option<&str>) -> Server {
        let policies = data.join("policies");
        install(&policies, "global/allow", wasm::ALLOW_ALL, "");
        let wcp = env!("CARGO_BIN_EXE_wcp");
        let mut command = match nofile {
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command.arg(format!("--nofile={limit}")).arg("--").arg(wcp);
                command
            }
            None => Command::new(wcp),
        };
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--policy-dir"])
            .arg(&policies)
            .args(args)
            .env("WCP_DATA_DIR", data)
            .env_remove("WCP_LISTEN")
            .env_remove("WCP_CONFIG")
            .env_remove("WCP_TENANTS")
            .env_remove("WCP_LOG")
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let (address, log) = wire::listening(&mut child, DEADLINE);
        let server = Server {
            child,
            address,
            log,
        };
        server.wait_until("ready", || server.get("/ready").0 == 200);
        server
    }

    /// Polls `check` until it holds, failing the test at [`DEADLINE`].
    fn wait_until(&self, what: &str, mut check: impl FnMut() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(
                start.elapsed() < DEADLINE,
                "not {what} within {DEADLINE:?}; log: {:#?}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.address).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream
    }

    /// One request on its own connection: (status, body).
    fn send(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        wire::send(self.address, method, path, body)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.send("GET", path, "")
    }

    /// Registers a workflow and returns its id.
    fn workflow(&self) -> String {
        let (status, body) = self.send("POST", "/api/v1/workflows", r#"{"workflow_name":"w"}"#);
        assert_eq!(status, 201, "{body}");
        json(&body)["workflow_id"].as_str().unwrap().to_owned()
    }

    /// Gates `step` of workflow `id`: (status, body).
    fn gate(&self, id: &str, step: &str) -> (u16, String) {
        self.send(
            "POST",
            &format!("/api/v1/workflows/{id}/steps/{step}/gate"),
            r#"{"step_type":"llm_call"}"#,
        )
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its code.
    fn exit_code(&mut self) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!(
                    "still running {DEADLINE:?} after SIGTERM; log: {:#?}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn install(dir: &Path, relative: &str, wasm: &str, manifest: &str) {
    let path = dir.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::copy(wasm, path.with_extension("wasm")).unwrap();
    fs::write(path.with_extension("toml"), manifest).unwrap();
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

/// Whether the server closes `stream` within `within`, reading and
/// discarding anything it sends first.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut buffer = [0u8; 4096];
    while start.elapsed() < within {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return true,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error) => panic!("reading: {error}"),
        }
    }
    false
}

/// Reads one whole response with a `Content-Length` from a kept-alive
/// connection.
fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "closed mid-response: {bytes:?}");
        bytes.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&bytes);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return parse_response(&text);
            }
        }
    }
}

#[test]
fn a_half_sent_head_and_an_idle_keep_alive_connection_are_closed_after_the_header_timeout() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--header-timeout", "1s"], None);

    let mut half_head = server.connect();
    half_head
        .write_all(b"GET /health HTTP/1.1\r\nHost: wc")
        .unwrap();
    let mut idle = server.connect();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: wcp\r\n\r\n")
        .unwrap();
    let (status, body) = read_response(&mut idle);
    assert_eq!(status, 200, "{body}");

    assert!(
        closed_within(&mut half_head, Duration::from_secs(10)),
        "a connection that never finishes its head stays open"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)),
        "an idle keep-alive connection stays open"
    );
    assert_eq!(server.get("/health").0, 200, "the server still serves");
}

#[test]
fn a_body_slower_than_the_body_timeout_gets_408_and_changes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--body-timeout", "1s"], None);

    let body = br#"{"workflow_name":"slow"}"#;
    let mut slow = server.connect();
    write!(
        slow,
        "POST /api/v1/workflows HTTP/1.1\r\nHost: wcp\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // One byte every 200 ms: the connection is never idle for long, but
    // the whole body would take about 5 s.
    let (answered, answer) = mpsc::channel();
    let mut reader = slow.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        let _ = answered.send(text);
    });
    let mut text = None;
    for byte in body {
        if slow.write_all(&[*byte]).is_err() {
            break;
        }
        if let Ok(answer) = answer.recv_timeout(Duration::from_millis(200)) {
            text = Some(answer);
            break;
        }
    }
    let text = text.unwrap_or_else(|| answer.recv_timeout(DEADLINE).unwrap());
    let (status, body) = parse_response(&text);
    assert_eq!(status, 408, "{body}");
    assert_eq!(json(&body)["code"], "REQUEST_TIMEOUT", "{body}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );

    let (status, body) = server.get("/api/v1/workflows");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["total"], 0, "nothing was created: {body}");
}

/// SIGTERM with connections that would otherwise never finish: one with
/// half a head, one with half a body, and one idle; and a gate in flight on
/// a slow policy, which is answered and kept.
#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_within_the_grace_period() {
    let data = tempfile::tempdir().unwrap();
    install(
        &data.path().join("policies"),
        "global/slow",
        wasm::LOOP_FOREVER,
        "timeout_ms = 1500\non_error = \"allow\"\n",
    );
    let mut server = Server::start(
        data.path(),
        &[
            "--header-timeout",
            "10m",
            "--body-timeout",
            "10m",
            "--shutdown-grace",
            "3s",
        ],
        None,
    );
    let workflow = server.workflow();

    let mut half_head = server.connect();
    half_head.write_all(b"GET /health HTTP/1.1\r\nHo").unwrap();
    let mut half_body = server.connect();
    half_body
        .write_all(b"POST /api/v1/workflows HTTP/1.1\r\nHost: wcp\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let _idle = server.connect();

    let in_flight = {
        let address = server.address;
        let workflow = workflow.clone();
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(address).unwrap();
            let body = r#"{"step_type":"llm_call"}"#;
            write!(
                stream,
                "POST /api/v1/workflows/{workflow}/steps/s1/gate HTTP/1.1\r\nHost: wcp\r\n\
                 Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            parse_response(&text)
        })
    };
    // The gate is in flight once the slow policy runs; it runs 1.5 s.
    std::thread::sleep(Duration::from_millis(300));
    server.terminate();
    let (status, body) = in_flight.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["decision"], "allow", "{body}");
    assert_eq!(server.exit_code(), Some(0), "{:#?}", server.log());
    let log = server.log().join("\n");
    assert!(
        log.contains("still open after the 3s shutdown grace period"),
        "{log}"
    );
    for stream in [&mut half_head, &mut half_body] {
        assert!(closed_within(stream, Duration::from_secs(1)));
    }
    drop(server);

    // What was answered is on disk: the next start serves it.
    let server = Server::start(data.path(), &[], None);
    let (status, body) = server.get(&format!("/api/v1/workflows/{workflow}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["steps"][0]["decision"], "allow", "{body}");
}

/// Under a small descriptor limit the cap keeps the server inside it: the
/// connections past the cap wait instead of failing `accept` in a loop,
/// and once the header timeout closes the idle ones, a new client is
/// served.
#[test]
fn past_the_descriptor_limit_connections_wait_for_a_slot_instead_of_failing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--header-timeout", "2s"], Some("256:256"));
    let log = server.log().join("\n");
    assert!(
        log.contains("serving at most 128 connections at once"),
        "{log}"
    );
    assert!(
        log.contains("128 connections (open-file limit 256)"),
        "{log}"
    );

    let idle: Vec<TcpStream> = (0..400).map(|_| server.connect()).collect();
    let start = Instant::now();
    let (status, body) = server.get("/health");
    let waited = start.elapsed();
    assert_eq!(status, 200, "{body}");
    let log = server.log().join("\n");
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(!log.contains("cannot accept connections"), "{log}");
    eprintln!("with 400 idle connections past a cap of 128, /health answered after {waited:?}");
    drop(idle);
}

/// 2,000 idle and half-sent connections beside a real client: the server
/// raises its soft descriptor limit (1,024 here) to the hard one, holds
/// them all, and answers the client's gate while they are all still open
/// (no timeout closes any during the test).
#[test]
fn two_thousand_idle_and_slow_connections_do_not_keep_a_gate_waiting() {
    let hard = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap().1;
    assert!(
        hard >= 4_500,
        "this test needs a hard open-file limit of at least 4500, not {hard}"
    );
    rlimit::increase_nofile_limit(4_500).unwrap();
    let data = tempfile::tempdir().unwrap();
    // No connection closes by timeout while the test runs.
    let server = Server::start(
        data.path(),
        &["--header-timeout", "10m"],
        Some(&format!("1024:{hard}")),
    );
    let log = server.log().join("\n");
    assert!(
        log.contains(&format!("open-file limit {hard}")),
        "the soft limit is raised to the hard one: {log}"
    );
    let workflow = server.workflow();

    let start = Instant::now();
    let (status, body) = server.gate(&workflow, "before");
    let quiet = start.elapsed();
    assert_eq!(status, 200, "{body}");

    let mut held = Vec::with_capacity(2_000);
    for n in 0..2_000 {
        let mut stream = server.connect();
        if n % 2 == 1 {
            stream
                .write_all(b"POST /api/v1/workflows HTTP/1.1\r\nHo")
                .unwrap();
        }
        held.push(stream);
    }
    let start = Instant::now();
    let (status, body) = server.gate(&workflow, "beside");
    let busy = start.elapsed();
    assert_eq!(status, 200, "{body}");
    eprintln!("gate alone: {quiet:?}; beside 2000 held connections: {busy:?}");
    let log = server.log().join("\n");
    assert!(!log.contains("Too many open files"), "{log}");
    drop(held);
}

/// A policy that prints 11 MiB on every evaluation gets at most a minute's
/// log budget into the server log; the rest is counted in `/metrics`.
#[test]
fn a_policy_that_floods_its_output_is_held_to_its_log_budget() {
    let data = tempfile::tempdir().unwrap();
    // The longest deadline: writing 11 MiB takes longer than the default
    // 100 ms on a loaded machine, and a policy stopped at its deadline
    // logs nothing, so the budget under test would never be reached.
    install(
        &data.path().join("policies"),
        "global/flood",
        wasm::STDOUT_FLOOD,
        "timeout_ms = 10000\n",
    );
    let server = Server::start(data.path(), &[], None);
    let workflow = server.workflow();
    let gates = 30;
    for n in 0..gates {
        let (status, body) = server.gate(&workflow, &format!("s{n}"));
        assert_eq!(status, 200, "{body}");
    }
    let metric = "wcp_policy_log_dropped_bytes_total{policy=\"global/flood\"}";
    let mut dropped = 0.0;
    server.wait_until("the dropped bytes counted", || {
        let (_, text) = server.get("/metrics");
        dropped = text
            .lines()
            .find_map(|line| line.strip_prefix(metric))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        dropped > 0.0
    });
    // Each evaluation writes up to 11 MiB, of which 32 KiB are captured:
    // far more than a minute's budget is dropped.
    let budget = host::runtime::BYTES_PER_MINUTE as f64;
    assert!(dropped > 10.0 * budget, "{dropped}");

    let log = server.log();
    let flood: Vec<&String> = log
        .iter()
        .filter(|line| line.contains("global/flood"))
        .collect();
    let bytes: usize = flood.iter().map(|line| line.len()).sum();
    // Without the budget: 30 gates x (16 KiB stdout + 16 KiB stderr).
    assert!(
        bytes < 2 * host::runtime::BYTES_PER_MINUTE,
        "{bytes} bytes of policy output logged in {} lines",
        flood.len()
    );
    assert!(flood.len() <= host::runtime::LINES_PER_MINUTE + 1);
    let announced = flood
        .iter()
        .filter(|line| line.contains("the rest of the minute's output is dropped"))
        .count();
    assert_eq!(announced, 1, "{flood:#?}");
}
