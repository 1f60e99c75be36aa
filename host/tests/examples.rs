//! The example policies built into `wcp`: they load as a policy directory,
//! `wcp serve` seeds them into the default directory only, `wcp policy
//! examples` writes them without clobbering, and a first `wcp serve` decides
//! a gate with them.

#![allow(clippy::unwrap_used)]

mod wire;

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use host::examples::{self, EXAMPLES};
use host::policy_set::{PolicySet, Status};
use host::runtime::{PolicyRuntime, RuntimeConfig};
use serde_json::{Value, json};

/// The examples in the order their manifests' priorities give.
const ORDER: [&str; 4] = [
    "global/tool-approval",
    "global/pii-guard",
    "global/model-allowlist",
    "global/cost-budget",
];

fn load(dir: &Path) -> PolicySet {
    let runtime = PolicyRuntime::new(RuntimeConfig {
        cache_dir: None,
        disable_pooling: true,
    })
    .unwrap();
    PolicySet::load(&runtime, dir, &PolicySet::default())
}

#[test]
fn embedded_examples_load_as_a_policy_directory_in_priority_order() {
    let dir = tempfile::tempdir().unwrap();
    let written = examples::write(dir.path(), false).unwrap();
    assert_eq!(written.len(), 2 * EXAMPLES.len());

    let set = load(dir.path());
    for entry in set.entries() {
        assert_eq!(entry.status, Status::Loaded, "{entry:?}");
    }
    assert_eq!(set.serving_count(), EXAMPLES.len());
    let ids: Vec<&str> = set.entries().iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ORDER);

    // The manifests decide which steps each example sees.
    let runs = |step_type: &str| -> Vec<String> {
        set.applicable("community", step_type)
            .map(|entry| entry.id.clone())
            .collect()
    };
    assert_eq!(
        runs("tool_call"),
        [
            "global/tool-approval",
            "global/pii-guard",
            "global/cost-budget"
        ]
    );
    assert_eq!(
        runs("llm_call"),
        [
            "global/pii-guard",
            "global/model-allowlist",
            "global/cost-budget"
        ]
    );
    let tool_approval = set.get("global/tool-approval").unwrap().manifest();
    assert_eq!(
        tool_approval.settings["tools"],
        json!(["send_email", "delete_user", "transfer_funds"])
    );
}

#[test]
fn seeding_fills_a_missing_directory_and_leaves_an_existing_one_alone() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("nested/policies");
    assert!(
        examples::seed(&dir).unwrap(),
        "a missing directory is seeded"
    );
    for example in EXAMPLES {
        let wasm = dir.join(format!("global/{}.wasm", example.name));
        assert_eq!(fs::read(&wasm).unwrap(), example.wasm);
        let manifest = dir.join(format!("global/{}.toml", example.name));
        assert_eq!(fs::read_to_string(&manifest).unwrap(), example.manifest);
    }
    let leftovers: Vec<_> = fs::read_dir(data.path().join("nested"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["policies"], "no staging directory is left");

    // A policy the user removed stays removed on the next start.
    fs::remove_file(dir.join("global/tool-approval.wasm")).unwrap();
    assert!(!examples::seed(&dir).unwrap());
    assert!(!dir.join("global/tool-approval.wasm").exists());

    let empty = data.path().join("empty");
    fs::create_dir(&empty).unwrap();
    assert!(!examples::seed(&empty).unwrap());
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}

fn wcp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wcp"))
        .args(args)
        .env("WCP_LOG", "error")
        .output()
        .unwrap()
}

#[test]
fn policy_examples_writes_the_layout_and_refuses_to_clobber() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("policies");
    let target_arg = target.to_str().unwrap();
    let output = wcp(&["policy", "examples", target_arg]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    for example in EXAMPLES {
        for extension in ["wasm", "toml"] {
            let path = target.join(format!("global/{}.{extension}", example.name));
            assert!(path.is_file(), "{}", path.display());
            assert!(stdout.contains(&path.display().to_string()), "{stdout}");
        }
    }
    assert!(stdout.contains("--policy-dir"), "{stdout}");

    let edited = target.join("global/cost-budget.toml");
    fs::write(&edited, "priority = 1\n").unwrap();
    let output = wcp(&["policy", "examples", target_arg]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(fs::read_to_string(&edited).unwrap(), "priority = 1\n");

    let output = wcp(&["policy", "examples", target_arg, "--force"]);
    assert!(output.status.success(), "{output:?}");
    let restored = fs::read_to_string(&edited).unwrap();
    assert!(restored.contains("max_usd"), "{restored}");
}

/// A `wcp serve` child process, killed when dropped, with its log collected.
struct Server {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `wcp serve` on a free port with `data` as its data directory
    /// and waits, with a generous deadline, until `/ready` answers 200.
    fn start(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wcp"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .env("WCP_DATA_DIR", data)
            .env("WCP_LOG", "info")
            .env_remove("WCP_POLICY_DIR")
            .env_remove("WCP_CONFIG")
            .env_remove("WCP_LISTEN")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut address = None;
        for line in lines.by_ref().map_while(Result::ok) {
            log.lock().unwrap().push(line.clone());
            if let Some((_, rest)) = line.split_once("listening on http://") {
                let end = rest.find('"').unwrap_or(rest.len());
                address = Some(rest[..end].parse().unwrap());
                break;
            }
        }
        let address = address.unwrap_or_else(|| panic!("no listening line: {log:?}"));
        // Keep draining the log so the server never blocks on a full pipe.
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let server = Server {
            child,
            address,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while server.request("GET", "/ready", None).0 != 200 {
            assert!(Instant::now() < deadline, "never ready: {:?}", server.log());
            thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// One request on its own connection; returns (status, JSON body).
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let (status, text) = wire::send(self.address, method, path, &body);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn create_workflow(&self) -> String {
        let (status, body) = self.request(
            "POST",
            "/api/v1/workflows",
            Some(&json!({"workflow_name": "examples"})),
        );
        assert_eq!(status, 201, "{body}");
        body["workflow_id"].as_str().unwrap().to_owned()
    }

    fn gate(&self, workflow: &str, step: &str, body: &Value) -> Value {
        let path = format!("/api/v1/workflows/{workflow}/steps/{step}/gate");
        let (status, answer) = self.request("POST", &path, Some(body));
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_first_wcp_serve_seeds_the_examples_and_gates_with_them() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    assert!(
        data.path()
            .join("policies/global/tool-approval.wasm")
            .is_file(),
        "the default policy directory was seeded"
    );
    let log = server.log();
    assert!(
        log.iter()
            .any(|line| line.contains("laid out the example policies")),
        "{log:?}"
    );
    let (_, health) = server.request("GET", "/health", None);
    assert_eq!(health["policies_loaded"], EXAMPLES.len(), "{health}");

    // The README's gate.
    let workflow = server.create_workflow();
    let answer = server.gate(
        &workflow,
        "s1",
        &json!({"step_type": "tool_call", "step_name": "x",
                "tool_context": {"tool_name": "send_email"}}),
    );
    assert_eq!(answer["decision"], "require_approval", "{answer}");
    assert_eq!(answer["policy_ids"], json!(["global/tool-approval"]));
    let ran: Vec<&str> = answer["policies_evaluated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["policy_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ran,
        [
            "global/tool-approval",
            "global/pii-guard",
            "global/cost-budget"
        ]
    );

    // The LLM examples decide too, on a workflow with nothing pending.
    let workflow = server.create_workflow();
    let answer = server.gate(
        &workflow,
        "llm-1",
        &json!({"step_type": "llm_call", "model": "gpt-4o", "cost_usd": 0.01}),
    );
    assert_eq!(answer["decision"], "allow", "{answer}");
    let answer = server.gate(
        &workflow,
        "llm-2",
        &json!({"step_type": "llm_call", "model": "davinci-001"}),
    );
    assert_eq!(answer["decision"], "block", "{answer}");
    assert_eq!(answer["policy_ids"], json!(["global/model-allowlist"]));
}

#[test]
fn an_explicit_policy_dir_is_never_seeded() {
    let data = tempfile::tempdir().unwrap();
    let named = data.path().join("mine");
    let server = Server::start(data.path(), &["--policy-dir", named.to_str().unwrap()]);
    let (_, health) = server.request("GET", "/health", None);
    assert_eq!(health["policies_loaded"], 0, "{health}");
    assert!(!named.exists(), "the named directory was created");
    assert!(
        !data.path().join("policies").exists(),
        "the default directory was seeded although another was named"
    );
    let log = server.log();
    assert!(
        !log.iter()
            .any(|line| line.contains("laid out the example policies")),
        "{log:?}"
    );
}
