//! Starting `wcp serve` over a policy directory: time from spawn to the
//! first 200 from `/ready`, cold (a fresh data directory: every policy is
//! compiled) and warm (the same data directory again: every policy comes
//! from the precompiled cache); and the resident memory of a started server.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::mpsc::UnboundedSender;

use crate::client::Connection;
use crate::server::{BUILT_WCP, LogLine, Server, WCP_LISTENING, wcp_serve};

/// How often `/ready` is polled while a server starts.
const READY_POLL: Duration = Duration::from_millis(5);

/// Start times of one layout, one cold and one warm start per run.
#[derive(Debug, Default)]
pub struct Starts {
    /// Fresh data directory: everything compiled.
    pub cold: Vec<Duration>,
    /// The cold run's data directory again: everything from the cache.
    pub warm: Vec<Duration>,
}

/// A started server and how long it took to be ready.
#[derive(Debug)]
pub struct Started {
    /// The running server.
    pub server: Server,
    /// From spawning the process to the first 200 from `/ready`.
    pub ready_after: Duration,
}

/// Starts `wcp serve` over `policy_dir` with `data_dir` (owned by the
/// server when `data` is given) and waits until it is ready. Every log line
/// goes to `tap`, if any.
pub async fn start(
    policy_dir: &Path,
    data_dir: &Path,
    data: Option<tempfile::TempDir>,
    tap: Option<UnboundedSender<LogLine>>,
) -> Started {
    let mut command = wcp_serve(Path::new(BUILT_WCP), data_dir);
    command.arg("--policy-dir").arg(policy_dir);
    let spawned = Instant::now();
    let server = Server::spawn(command, WCP_LISTENING, data, tap);
    let ready = server.wait_ready(READY_POLL).await;
    Started {
        server,
        ready_after: ready.duration_since(spawned),
    }
}

/// `runs` times: a cold start over `policy_dir` with a fresh data directory
/// made in `data_in`, then, once it is stopped, a warm start with the same
/// data directory. Checks after each start (untimed) that all `expected`
/// policies serve.
pub async fn cold_and_warm(
    policy_dir: &Path,
    data_in: &Path,
    expected: usize,
    runs: usize,
) -> Starts {
    let mut starts = Starts::default();
    for run in 1..=runs {
        let [(cold, _), (warm, _)] =
            cold_then_warm(policy_dir, data_in, expected, Duration::ZERO).await;
        eprintln!(
            "  run {run}/{runs}: cold {:.0} ms, warm {:.0} ms",
            millis(cold),
            millis(warm)
        );
        starts.cold.push(cold);
        starts.warm.push(warm);
    }
    starts
}

/// A cold start over `policy_dir` with a fresh data directory made in
/// `data_in`, then, once it is stopped, a warm start with the same data
/// directory. After each one: checks that all `expected` policies serve,
/// leaves the server idle for `idle`, and reads its memory. Returns the
/// time to ready and the memory of each.
pub async fn cold_then_warm(
    policy_dir: &Path,
    data_in: &Path,
    expected: usize,
    idle: Duration,
) -> [(Duration, Memory); 2] {
    let data = tempfile::tempdir_in(data_in).expect("cannot make a data directory");
    let mut starts = [(Duration::ZERO, Memory::default()); 2];
    for slot in &mut starts {
        let started = start(policy_dir, data.path(), None, None).await;
        check_loaded(&started.server, expected).await;
        tokio::time::sleep(idle).await;
        *slot = (started.ready_after, memory(&started.server));
    }
    starts
}

/// Part of `GET /api/v1/policies`.
#[derive(Deserialize)]
struct PolicyList {
    policies: Vec<PolicyStatus>,
}

#[derive(Deserialize)]
struct PolicyStatus {
    id: String,
    status: String,
}

/// Panics unless `server` serves exactly `expected` policies, all loaded:
/// a start that skipped or failed some would be timed short.
pub async fn check_loaded(server: &Server, expected: usize) {
    let mut conn = Connection::open(server.address)
        .await
        .expect("cannot connect to wcp");
    let (status, body) = conn
        .get("/api/v1/policies")
        .await
        .expect("cannot list the policies");
    assert!(status.is_success(), "GET /api/v1/policies: {status}");
    let list: PolicyList = serde_json::from_slice(&body).expect("a policy list");
    let failed: Vec<&str> = list
        .policies
        .iter()
        .filter(|policy| policy.status != "loaded")
        .map(|policy| policy.id.as_str())
        .collect();
    assert!(
        list.policies.len() == expected && failed.is_empty(),
        "expected {expected} loaded policies, found {} (not loaded: {failed:?}); log: {:#?}",
        list.policies.len(),
        server
            .warnings
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default()
    );
}

/// A process's resident memory now and at its peak, from
/// `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`.
    pub resident: u64,
    /// `VmHWM`.
    pub peak: u64,
}

/// Reads `server`'s [`Memory`].
pub fn memory(server: &Server) -> Memory {
    let path = format!("/proc/{}/status", server.pid());
    let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|number| number.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {key} in {path}"))
    };
    Memory {
        resident: kib("VmRSS:") * 1024,
        peak: kib("VmHWM:") * 1024,
    }
}

/// A duration in milliseconds.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
