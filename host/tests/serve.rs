//! The server end to end: `host::run` on a real socket, and `wcp serve` as
//! a user starts and stops it.

#![allow(clippy::unwrap_used)]

mod wire;

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use host::config::ServeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use wcp_test_artifacts as wasm;

/// Sends raw HTTP/1.1 bytes and returns (status, body) once the server
/// closes the connection.
async fn exchange(address: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    wire::parse_response(&String::from_utf8_lossy(&response))
}

async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: wcp\r\nConnection: close\r\n\r\n");
    exchange(address, request.as_bytes()).await
}

/// A POST whose body is sent chunked, with no declared length.
async fn post_chunked(address: SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: wcp\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(100_000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    exchange(address, &request).await
}

fn install(dir: &Path, relative: &str, wasm: &str, manifest: &str) {
    let path = dir.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::copy(wasm, path.with_extension("wasm")).unwrap();
    fs::write(path.with_extension("toml"), manifest).unwrap();
}

/// A dry-run body of exactly `size` bytes.
fn body_of(size: usize) -> Vec<u8> {
    let head = br#"{"step_type":"llm_call","model":"gpt-4o","step_input":{"pad":""#;
    let mut body = head.to_vec();
    body.resize(size - 3, b'x');
    body.extend_from_slice(br#""}}"#);
    body
}

#[tokio::test]
async fn run_serves_over_tcp_and_finishes_in_flight_requests_on_shutdown() {
    let data = tempfile::tempdir().unwrap();
    let policies = data.path().join("policies");
    install(
        &policies,
        "global/model-allowlist",
        wasm::MODEL_ALLOWLIST,
        "",
    );
    // Spins until its 800 ms deadline: a request that is in flight when
    // shutdown starts.
    install(
        &policies,
        "global/slow",
        wasm::LOOP_FOREVER,
        "timeout_ms = 800\n",
    );
    let config = ServeConfig {
        data_dir: data.path().to_owned(),
        policy_dir: policies,
        ..ServeConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(host::run(config, listener, async {
        let _ = stopped.await;
    }));

    let (status, body) = get(address, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"healthy""#), "{body}");

    let mut ready = false;
    for _ in 0..600 {
        if get(address, "/ready").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the server never became ready");
    assert!(
        get(address, "/health")
            .await
            .1
            .contains(r#""policies_loaded":2"#)
    );

    let uri = "/api/v1/policies/global/model-allowlist/evaluate";
    let (status, body) = post_chunked(address, uri, &body_of(1_048_576)).await;
    assert_eq!(status, 200, "chunked, exactly the limit: {body}");
    let (status, body) = post_chunked(address, uri, &body_of(1_048_577)).await;
    assert_eq!(status, 413, "chunked, one byte over: {body}");
    assert!(body.contains(r#""limit_bytes":1048576"#), "{body}");

    let slow = tokio::spawn(post_chunked(
        address,
        "/api/v1/policies/global/slow/evaluate",
        br#"{"step_type":"llm_call"}"#,
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""kind":"timeout""#), "{body}");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(address).await.is_err(),
        "still listening"
    );
}

fn wcp_serve(args: &[&str], data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wcp"));
    command
        .arg("serve")
        .args(args)
        .env("WCP_DATA_DIR", data)
        .env_remove("WCP_LISTEN")
        .env_remove("WCP_CONFIG")
        .env_remove("WCP_TENANTS");
    command
}

#[test]
fn bad_settings_and_bind_failures_are_one_line_errors_with_exit_2() {
    let data = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    // (name, flags, environment, expected part of the error line)
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        (
            "bad flag value",
            vec!["--policy-rescan", "soon"],
            vec![],
            "invalid --policy-rescan value",
        ),
        (
            "bad env value",
            vec![],
            vec![("WCP_LISTEN", "nowhere")],
            "(from WCP_LISTEN)",
        ),
        (
            "missing tenants file",
            vec!["--tenants", "missing.toml"],
            vec![],
            "cannot read tenants file missing.toml",
        ),
        (
            "address in use",
            vec!["--listen", &taken],
            vec![],
            "cannot listen on",
        ),
    ];
    for (name, args, env, needle) in cases {
        let output = wcp_serve(&args, data.path()).envs(env).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {stderr}");
        assert!(lines[0].contains(needle), "{name}: {stderr}");
    }
}

#[cfg(unix)]
#[test]
fn wcp_serve_logs_its_address_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut child = wcp_serve(
        &["--listen", "127.0.0.1:0", "--log-format", "json"],
        data.path(),
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("listening on http://127.0.0.1:"))
        .expect("a listening line");
    let json: serde_json::Value = serde_json::from_str(&listening).expect("a JSON log line");
    assert!(
        json["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("listening on")
    );

    let url = json["fields"]["message"]
        .as_str()
        .unwrap()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();

    // Once the first load is published, one event says where everything is.
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains(r#""message":"ready""#))
        .expect("a ready line");
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("a JSON log line");
    let fields = &ready["fields"];
    assert_eq!(fields["version"], host::VERSION);
    assert_eq!(fields["listen"], url.as_str());
    assert!(fields["mode"].as_str().unwrap().starts_with("community"));
    let store = data.path().join("wcp.db");
    assert_eq!(fields["store"], format!("SQLite {}", store.display()));
    assert!(store.is_file());
    let policy_dir = data.path().join("policies");
    assert_eq!(fields["policy_dir"], policy_dir.display().to_string());
    // The seeded examples: one component per directory under `global/`.
    let examples = fs::read_dir(policy_dir.join("global"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension() == Some("wasm".as_ref()))
        .count();
    assert!(examples > 0);
    assert_eq!(fields["policies_loaded"], examples);
    assert_eq!(fields["policies_failed"], 0);
    let limits = fields["limits"].as_str().unwrap();
    assert!(
        limits.contains(" connections (open-file limit "),
        "{limits}"
    );
    assert_eq!(fields["openapi"], format!("{url}/openapi.json"));
    assert_eq!(fields["metrics"], format!("{url}/metrics"));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{rest:?}");
    assert!(rest.iter().any(|line| line.contains("SIGTERM")), "{rest:?}");
}

/// The human log's startup block, in tenants mode with one policy that
/// does not load: every line a user looks for, in order.
#[cfg(unix)]
#[test]
fn wcp_serve_starts_with_a_block_saying_where_everything_is() {
    let data = tempfile::tempdir().unwrap();
    let policies = data.path().join("rules");
    install(&policies, "global/allow", wasm::ALLOW_ALL, "");
    fs::write(policies.join("global/broken.wasm"), b"not a component").unwrap();

    let mut hash = Command::new(env!("CARGO_BIN_EXE_wcp"))
        .args(["tenants", "hash-secret"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut hash.stdin.take().unwrap(), b"s3cret\n").unwrap();
    let hash = hash.wait_with_output().unwrap();
    assert!(hash.status.success());
    let phc = String::from_utf8(hash.stdout).unwrap();
    let tenants = data.path().join("tenants.toml");
    fs::write(
        &tenants,
        format!(
            "[[clients]]\nclient_id = \"ci\"\nsecret_hash = \"{}\"\ntenant = \"acme\"\norg = \"o\"\nroles = [\"member\"]\n",
            phc.trim_end()
        ),
    )
    .unwrap();

    let mut child = wcp_serve(
        &[
            "--listen",
            "0.0.0.0:0",
            "--policy-dir",
            policies.to_str().unwrap(),
            "--tenants",
            tenants.to_str().unwrap(),
        ],
        data.path(),
    )
    .env_remove("WCP_LOG")
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let head = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains(" is ready"))
        .expect("a ready line");
    let block: Vec<String> = lines.by_ref().take(7).map_while(Result::ok).collect();
    // Stop it before any assertion can fail and leave it running.
    child.kill().unwrap();
    child.wait().unwrap();
    let port = block[0]
        .rsplit_once(':')
        .unwrap()
        .1
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        head.ends_with(&format!("wcp {} is ready", host::VERSION)),
        "{head}"
    );
    let hard = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap().1;
    let expected = [
        format!("  listen    http://0.0.0.0:{port} (every interface)"),
        format!(
            "  mode      tenants: 1 client of 1 tenant (acme) from {}",
            tenants.display()
        ),
        format!(
            "  store     SQLite {}",
            data.path().join("wcp.db").display()
        ),
        format!(
            "  policies  {}: 1 loaded, 1 failed (their errors are logged above)",
            policies.display()
        ),
        // The soft open-file limit is raised to the hard one, and the
        // connection cap fits 256 descriptors under it.
        format!(
            "  limits    {} connections (open-file limit {hard}), header 30s, body 30s, \
             shutdown grace 10s",
            10_000.min(hard - 256.min(hard / 2))
        ),
        format!("  openapi   http://127.0.0.1:{port}/openapi.json"),
        format!("  metrics   http://127.0.0.1:{port}/metrics"),
    ];
    assert_eq!(block, expected);
}

/// A POST with a JSON body (`""`: none).
async fn post(address: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: wcp\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(address, request.as_bytes()).await
}

/// A `wcp serve` child on a free port: waits for its listening line and
/// then for `/ready`, polling with a generous deadline.
struct Child {
    process: std::process::Child,
    address: SocketAddr,
}

impl Child {
    async fn start(data: &Path, policies: &Path) -> Child {
        let policy_dir = policies.to_str().unwrap();
        let mut process = wcp_serve(
            &["--listen", "127.0.0.1:0", "--policy-dir", policy_dir],
            data,
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let stderr = process.stderr.take().unwrap();
        let address = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stderr).lines();
            let line = lines
                .by_ref()
                .map_while(Result::ok)
                .find(|line| line.contains("listening on http://"))
                .expect("a listening line");
            // Keep draining the log so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            let address = line.split("http://").nth(1).unwrap();
            address
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .parse::<SocketAddr>()
                .unwrap()
        })
        .await
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while get(address, "/ready").await.0 != 200 {
            assert!(std::time::Instant::now() < deadline, "never ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Child { process, address }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn acknowledged_gates_and_completions_survive_sigkill_of_wcp_serve() {
    const STEPS: usize = 25;
    let data = tempfile::tempdir().unwrap();
    let policies = data.path().join("my-policies");
    install(
        &policies,
        "global/tool-approval",
        wasm::TOOL_APPROVAL,
        "step_types = [\"tool_call\"]\n",
    );
    let mut server = Child::start(data.path(), &policies).await;
    let (status, body) = post(
        server.address,
        "/api/v1/workflows",
        r#"{"workflow_name":"durable"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = created["workflow_id"].as_str().unwrap().to_owned();
    for n in 1..=STEPS {
        let gate = format!("/api/v1/workflows/{id}/steps/s{n}/gate");
        let (status, body) = post(server.address, &gate, r#"{"step_type":"llm_call"}"#).await;
        assert_eq!(status, 200, "{body}");
        let complete = format!("/api/v1/workflows/{id}/steps/s{n}/complete");
        let (status, body) = post(server.address, &complete, r#"{"tokens_in":1}"#).await;
        assert_eq!(status, 204, "{body}");
    }
    // SIGKILL right after the last acknowledgement: no shutdown, no flush.
    server.process.kill().unwrap();
    server.process.wait().unwrap();

    let server = Child::start(data.path(), &policies).await;
    let (status, body) = get(server.address, &format!("/api/v1/workflows/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let workflow: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(workflow["current_step_index"], STEPS);
    assert_eq!(workflow["total_tokens_in"], STEPS);
    let steps = workflow["steps"].as_array().unwrap();
    assert_eq!(steps.len(), STEPS);
    for (n, step) in steps.iter().enumerate() {
        assert_eq!(step["step_id"], format!("s{}", n + 1));
        assert_eq!(step["gate_count"], 1);
        assert_eq!(step["completion_count"], 1);
    }
    let (status, body) = get(server.address, "/api/v1/audit/verify").await;
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["entries_checked"], 1 + 2 * STEPS, "{report}");
}
