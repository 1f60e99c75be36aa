//! Several `wcp serve` replicas on one PostgreSQL database, as a team runs
//! them behind a load balancer: each replica is the real binary on its own
//! loopback port and data directory, with the same global policies, and
//! every test spreads its requests over three of them.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod common;
mod wire;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{postgres, send_email};

/// Longer than any wait below should take, even on a slow machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// One `wcp serve` on the shared database.
struct Replica {
    child: Child,
    address: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    _data: tempfile::TempDir,
}

impl Replica {
    /// Starts a replica on `url` over `policies`, with `args`, and waits
    /// until `/ready` answers 200.
    fn start(url: &str, policies: &Path, args: &[&str]) -> Replica {
        let replica = Replica::spawn(url, policies, args);
        replica.wait_ready();
        replica
    }

    /// Starts a replica and waits only for its listening line.
    fn spawn(url: &str, policies: &Path, args: &[&str]) -> Replica {
        let data = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_wcp"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--database-url", url])
            .arg("--policy-dir")
            .arg(policies)
            .arg("--data-dir")
            .arg(data.path())
            .args(args)
            .env_remove("WCP_LISTEN")
            .env_remove("WCP_CONFIG")
            .env_remove("WCP_TENANTS")
            .env_remove("WCP_DATABASE_URL")
            .env_remove("WCP_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (address, log) = wire::listening(&mut child, DEADLINE);
        Replica {
            child,
            address,
            log,
            _data: data,
        }
    }

    /// Waits until `/ready` answers 200.
    fn wait_ready(&self) {
        let deadline = Instant::now() + DEADLINE;
        while self.send("GET", "/ready", "").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "never ready: {:?}",
                self.log.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the replica has logged a line containing `needle`.
    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(needle))
        {
            assert!(
                Instant::now() < deadline,
                "never logged {needle:?}: {:?}",
                self.log.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn send(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        wire::send(self.address, method, path, body)
    }

    /// A request that must succeed with `status`; returns its JSON.
    fn expect(&self, status: u16, method: &str, path: &str, body: Value) -> Value {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (got, text) = self.send(method, path, &body);
        assert_eq!(got, status, "{method} {path} on {}: {text}", self.address);
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    fn create(&self, name: &str) -> String {
        let created = self.expect(
            201,
            "POST",
            "/api/v1/workflows",
            json!({"workflow_name": name}),
        );
        created["workflow_id"].as_str().unwrap().to_owned()
    }

    fn gate(&self, id: &str, step: &str, body: Value) -> Value {
        self.expect(
            200,
            "POST",
            &format!("/api/v1/workflows/{id}/steps/{step}/gate"),
            body,
        )
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three replicas on a new database, started with `args`.
fn three(args: &[&str]) -> (Vec<Replica>, String, tempfile::TempDir) {
    let url = postgres::database();
    let policies = common::tool_approval_dir();
    let replicas = (0..3)
        .map(|_| Replica::start(&url, policies.path(), args))
        .collect();
    (replicas, url, policies)
}

const COMMENT: &str = "checked the recipient list";

#[test]
fn a_workflow_created_on_one_replica_is_gated_on_another_and_approved_on_a_third() {
    let (r, _url, _policies) = three(&[]);
    let id = r[0].create("mailer");
    let held = r[1].gate(&id, "mail", send_email());
    assert_eq!(held["decision"], "require_approval", "{held}");
    let pending = r[2].expect(
        200,
        "GET",
        "/api/v1/workflows/approvals/pending",
        Value::Null,
    );
    assert_eq!(pending["count"], 1, "{pending}");
    r[2].expect(
        200,
        "POST",
        &format!("/api/v1/workflows/{id}/steps/mail/approve"),
        json!({"comment": COMMENT}),
    );
    let again = r[0].gate(&id, "mail", send_email());
    assert_eq!(again["decision"], "allow", "{again}");
    let shown = r[1].expect(200, "GET", &format!("/api/v1/workflows/{id}"), Value::Null);
    assert_eq!(shown["steps"][0]["approval_status"], "approved", "{shown}");
    let verified = r[2].expect(200, "GET", "/api/v1/audit/verify", Value::Null);
    assert_eq!(verified["valid"], true, "{verified}");
}

#[test]
fn the_same_step_gated_on_two_replicas_at_once_is_evaluated_once() {
    let (r, _url, _policies) = three(&[]);
    let r = Arc::new(r);
    for round in 0..15 {
        let id = r[round % 3].create("racer");
        let start = Arc::new(Barrier::new(3));
        let answers: Vec<Value> = (0..3)
            .map(|n| {
                let (r, start, id) = (Arc::clone(&r), Arc::clone(&start), id.clone());
                thread::spawn(move || {
                    start.wait();
                    r[n].gate(&id, "s1", json!({"step_type": "llm_call"}))
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let fresh = answers
            .iter()
            .filter(|a| a["decision_source"] == "fresh")
            .count();
        assert_eq!(fresh, 1, "one fresh evaluation: {answers:?}");
        assert!(
            answers
                .iter()
                .all(|a| a["decision_id"] == answers[0]["decision_id"]),
            "{answers:?}"
        );
        let shown = r[0].expect(200, "GET", &format!("/api/v1/workflows/{id}"), Value::Null);
        assert_eq!(shown["current_step_index"], 1, "{shown}");
        assert_eq!(shown["steps"][0]["gate_count"], 3, "{shown}");
    }
}

#[test]
fn the_concurrency_limit_holds_over_replicas_and_the_chain_stays_one() {
    const LIMIT: usize = 4;
    let (r, url, _policies) = three(&["--max-concurrent-workflows", "4"]);
    let r = Arc::new(r);
    let start = Arc::new(Barrier::new(6));
    let statuses: Vec<u16> = (0..6)
        .map(|n| {
            let (r, start) = (Arc::clone(&r), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                (0..3)
                    .map(|_| {
                        r[n % 3]
                            .send("POST", "/api/v1/workflows", r#"{"workflow_name":"w"}"#)
                            .0
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let created = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(created, LIMIT, "{statuses:?}");
    assert_eq!(refused, statuses.len() - LIMIT, "{statuses:?}");
    // Every create and refusal was audited from three replicas at once:
    // the tenant's chain is still one chain, checked offline too.
    let verified = r[1].expect(200, "GET", "/api/v1/audit/verify", Value::Null);
    assert_eq!(verified["valid"], true, "{verified}");
    let out = Command::new(env!("CARGO_BIN_EXE_wcp"))
        .args(["audit", "verify", "--database-url", &url])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("BROKEN"), "{stdout}");
}

#[test]
fn each_hold_expires_exactly_once_whichever_replicas_sweep() {
    const HOLDS: usize = 6;
    // A short TTL: every replica's sweeper runs about once a second.
    let (r, _url, _policies) = three(&["--approval-ttl", "1s"]);
    let ids: Vec<String> = (0..HOLDS)
        .map(|n| {
            let id = r[n % 3].create("held");
            let held = r[(n + 1) % 3].gate(&id, "mail", send_email());
            assert_eq!(held["decision"], "require_approval", "{held}");
            id
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    let expired = loop {
        let page = r[0].expect(
            200,
            "GET",
            "/api/v1/audit?kind=approval_expired&limit=100",
            Value::Null,
        );
        let total = page["total"].as_u64().unwrap();
        if total >= HOLDS as u64 {
            break page;
        }
        assert!(Instant::now() < deadline, "holds never expired: {page}");
        thread::sleep(Duration::from_millis(100));
    };
    // Nothing may happen next, which no condition can show: give every
    // replica's sweeper (about one pass a second) two more passes.
    thread::sleep(Duration::from_millis(2_500));
    let page = r[1].expect(
        200,
        "GET",
        "/api/v1/audit?kind=approval_expired&limit=100",
        Value::Null,
    );
    assert_eq!(page["total"], HOLDS, "{page} after {expired}");
    for id in &ids {
        let shown = r[2].expect(200, "GET", &format!("/api/v1/workflows/{id}"), Value::Null);
        // An expired hold reads as rejected (contract §3.2).
        assert_eq!(shown["steps"][0]["approval_status"], "rejected", "{shown}");
        assert_eq!(shown["steps"][0]["approval_expired"], true, "{shown}");
    }
}

#[test]
fn sigkill_of_a_replica_under_load_loses_no_acknowledged_write() {
    const WORKERS: usize = 4;
    const MAX_STEPS: usize = 300;
    let (mut r, _url, _policies) = three(&[]);
    let ids: Vec<String> = (0..WORKERS).map(|_| r[1].create("busy")).collect();
    let victim = r[0].address;
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String, bool)>::new()));
    // Each worker gates and completes steps of its workflow on the victim
    // until the victim is gone, keeping what was acknowledged.
    let workers: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let acknowledged = Arc::clone(&acknowledged);
            thread::spawn(move || {
                for n in 1..=MAX_STEPS {
                    let step = format!("s{n}");
                    let gate = format!("/api/v1/workflows/{id}/steps/{step}/gate");
                    match wire::try_send(victim, "POST", &gate, r#"{"step_type":"llm_call"}"#) {
                        Ok((200, _)) => {}
                        Ok((status, body)) => panic!("gate answered {status}: {body}"),
                        Err(_) => return,
                    }
                    acknowledged
                        .lock()
                        .unwrap()
                        .push((id.clone(), step.clone(), false));
                    let complete = format!("/api/v1/workflows/{id}/steps/{step}/complete");
                    match wire::try_send(victim, "POST", &complete, r#"{"tokens_in":1}"#) {
                        Ok((204, _)) => {}
                        Ok((status, body)) => panic!("complete answered {status}: {body}"),
                        Err(_) => return,
                    }
                    acknowledged.lock().unwrap().push((id.clone(), step, true));
                }
            })
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    while acknowledged.lock().unwrap().len() < 40 {
        assert!(Instant::now() < deadline, "the load never got going");
        thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL mid-load: no shutdown, no flush.
    r[0].child.kill().unwrap();
    r[0].child.wait().unwrap();
    for worker in workers {
        worker.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() < WORKERS * MAX_STEPS * 2,
        "the kill came too late"
    );
    for (id, step, completed) in &acknowledged {
        let shown = r[2].expect(200, "GET", &format!("/api/v1/workflows/{id}"), Value::Null);
        let stored = shown["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step_id"] == step.as_str())
            .unwrap_or_else(|| panic!("acknowledged gate {id}/{step} lost: {shown}"));
        if *completed {
            assert_eq!(stored["completion_count"], 1, "{id}/{step}: {stored}");
        }
        // The client retries on another replica and gets the recorded answer.
        let again = r[1].gate(id, step, json!({"step_type": "llm_call"}));
        assert_eq!(again["decision_source"], "cached", "{again}");
        assert_eq!(again["decision"], "allow", "{again}");
    }
    let verified = r[2].expect(200, "GET", "/api/v1/audit/verify", Value::Null);
    assert_eq!(verified["valid"], true, "{verified}");
}

#[test]
fn a_replica_started_before_its_database_waits_for_it_but_a_wrong_database_stops_it() {
    // This test's own cluster: it is stopped while a replica starts.
    let cluster = postgres::Cluster::start(false);
    let url = cluster.create_database();
    let policies = common::tool_approval_dir();
    cluster.stop();
    let replica = Replica::spawn(&url, policies.path(), &[]);
    replica.wait_for_log("waiting for the database");
    cluster.resume();
    replica.wait_ready();
    let id = replica.create("late");
    let gate = replica.gate(&id, "s1", json!({"step_type": "llm_call"}));
    assert_eq!(gate["decision"], "allow", "{gate}");

    // A database that is not there is a mistake to fix, not a wait.
    let missing = format!("{}/no_such_database", url.rsplit_once('/').unwrap().0);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wcp"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &missing,
        ])
        .arg("--policy-dir")
        .arg(policies.path())
        .env_remove("WCP_DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wcp serve kept waiting for a database that does not exist");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no_such_database"), "{stderr}");
}
