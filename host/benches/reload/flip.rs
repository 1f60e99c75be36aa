//! Reload latency: one running server whose only policy is
//! `global/flip.wasm` (a variant of an example policy, tool-approval unless
//! told otherwise, applying to tool calls). Each
//! reload writes a new version of the file (temp file, then rename) and
//! gates `send_email` tool calls, each on a new workflow over one
//! keep-alive connection, as fast as answers come, until one is decided by
//! the new version. Latency: from just before the write to that answer.
//!
//! The server's log, read as it is written, says when the new version was
//! loaded (after the debounce, the rescan and the compile or cache load),
//! which splits each latency in two: the time to load the new version, and
//! the rest (its audit entry, publishing, and the probe that saw it).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::client::{Connection, Failure, parse};
use crate::layout::{self, Variant};
use crate::server::{LogLine, Server};
use crate::start;

/// The policy's name and id.
const NAME: &str = "flip";
const ID: &str = "global/flip";
/// Its manifest: tool calls only, default settings (tool-approval holds
/// `send_email` for approval).
const MANIFEST: &str = "step_types = [\"tool_call\"]\n";
/// How long one reload may take before it is given up and counted as
/// missed: above the periodic rescan (30 s by default), which catches a
/// change whose file event was lost.
const RELOAD_DEADLINE: Duration = Duration::from_secs(60);
/// How long the log lines of a reload may lag behind its first new answer.
const LOG_DEADLINE: Duration = Duration::from_secs(5);

/// What a series of reloads measured.
#[derive(Debug, Default)]
pub struct Reloads {
    /// From just before the write to the first gate decided by the new
    /// version, one per reload that made it.
    pub latency: Vec<Duration>,
    /// From just before the write to the server's `policy loaded` line of
    /// the new version: debounce, rescan, compile or cache load.
    pub loaded: Vec<Duration>,
    /// Reloads not seen within a minute.
    pub missed: usize,
    /// Gates answered, by either version.
    pub gates: u64,
    /// Time spent probing (workflow create + gate), over all gates.
    pub probing: Duration,
    /// Failed requests.
    pub errors: u64,
    /// The first few failures.
    pub samples: Vec<String>,
}

impl Reloads {
    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.samples.len() < 5 {
            self.samples.push(message);
        }
    }

    /// Mean time of one probe (create + gate): the resolution of a latency.
    pub fn probe_time(&self) -> Duration {
        self.probing
            .checked_div(u32::try_from(self.gates).unwrap_or(u32::MAX))
            .unwrap_or_default()
    }
}

/// The running server, its policy directory and the probe's connection.
#[derive(Debug)]
pub struct Flip {
    server: Server,
    policies: tempfile::TempDir,
    connection: Option<Connection>,
    log: UnboundedReceiver<LogLine>,
    base: Vec<u8>,
    create: Bytes,
    gate: Bytes,
}

/// Part of a gate's answer.
#[derive(Deserialize)]
struct GateAnswer {
    policies_evaluated: Vec<PolicyRun>,
}

#[derive(Deserialize)]
struct PolicyRun {
    policy_id: String,
    policy_version: Option<String>,
}

/// Part of the create answer.
#[derive(Deserialize)]
struct Created {
    workflow_id: String,
}

impl Flip {
    /// Lays out `global/flip.wasm` (a variant of `base`) in a fresh policy
    /// directory, starts `wcp serve` on it with a fresh data directory (both
    /// made in `data_in`) and waits until it is ready.
    pub async fn start(data_in: &Path, base: &[u8]) -> Flip {
        let policies = tempfile::tempdir_in(data_in).expect("cannot make a policy directory");
        let data = tempfile::tempdir_in(data_in).expect("cannot make a data directory");
        let first = Variant::of(base, "flip-initial");
        layout::write_policy(policies.path(), NAME, &first.bytes, MANIFEST);
        let (tap, log) = unbounded_channel();
        let data_dir = data.path().to_owned();
        let started = start::start(policies.path(), &data_dir, Some(data), Some(tap)).await;
        let mut flip = Flip {
            server: started.server,
            policies,
            connection: None,
            log,
            base: base.to_vec(),
            create: Bytes::from(
                json!({"workflow_name": "reload-bench", "source": "external"}).to_string(),
            ),
            gate: Bytes::from(
                json!({"step_type": "tool_call", "step_name": "notify",
                       "tool_context": {"tool_name": "send_email", "tool_type": "function",
                                        "tool_input": {"to": "ops@example.com"}}})
                .to_string(),
            ),
        };
        let mut unmeasured = Reloads::default();
        let version = flip.probe(&mut unmeasured).await;
        assert_eq!(
            version.as_deref(),
            Ok(first.version.as_str()),
            "the first version does not serve: {:?}",
            unmeasured.samples
        );
        flip
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// `count` reloads, each to content the server has never seen: a
    /// variant tagged `{label}-{n}`, compiled on the reload.
    pub async fn new_content(&mut self, label: &str, count: usize) -> Reloads {
        let mut reloads = Reloads::default();
        for index in 0..count {
            let variant = Variant::of(&self.base, &format!("{label}-{index}"));
            self.reload(&variant, &mut reloads).await;
            progress(index, count, &reloads);
        }
        reloads
    }

    /// `count` reloads alternating between two variants that served
    /// before (each is reloaded once, unmeasured, first), so each reload
    /// loads the precompiled artifact from the cache.
    pub async fn known_content(&mut self, label: &str, count: usize) -> Reloads {
        let pair = [
            Variant::of(&self.base, &format!("{label}-a")),
            Variant::of(&self.base, &format!("{label}-b")),
        ];
        let mut unmeasured = Reloads::default();
        for variant in &pair {
            self.reload(variant, &mut unmeasured).await;
        }
        assert!(
            unmeasured.missed == 0 && unmeasured.errors == 0,
            "the known variants did not load: {:?}",
            unmeasured.samples
        );
        let mut reloads = Reloads::default();
        for index in 0..count {
            self.reload(&pair[index % 2], &mut reloads).await;
            progress(index, count, &reloads);
        }
        reloads
    }

    /// Writes `variant` as `global/flip.wasm` and probes until it decides
    /// a gate; records the latency and the server's log times.
    async fn reload(&mut self, variant: &Variant, reloads: &mut Reloads) {
        let written = Instant::now();
        layout::write_wasm(self.policies.path(), NAME, &variant.bytes);
        let deadline = written + RELOAD_DEADLINE;
        let answered = loop {
            if Instant::now() >= deadline {
                reloads.missed += 1;
                reloads.error(format!("version {} never served", variant.version));
                return;
            }
            let probed = Instant::now();
            let version = self.probe(reloads).await;
            let now = Instant::now();
            reloads.probing += now.duration_since(probed);
            if version.as_deref() == Ok(variant.version.as_str()) {
                break now;
            }
        };
        reloads.latency.push(answered.duration_since(written));
        if let Some(loaded) = self.loaded(&variant.version, written).await {
            reloads.loaded.push(loaded.duration_since(written));
        }
    }

    /// When the log said `version` was loaded, among the lines read after
    /// `since`; `None` if that line did not come.
    async fn loaded(&mut self, version: &str, since: Instant) -> Option<Instant> {
        let quoted = format!("\"{version}\"");
        let deadline = tokio::time::Instant::now() + LOG_DEADLINE;
        loop {
            let (at, line) = tokio::time::timeout_at(deadline, self.log.recv())
                .await
                .ok()??;
            if at >= since
                && line.contains("\"policy loaded\"")
                && line.contains(ID)
                && line.contains(&quoted)
            {
                return Some(at);
            }
        }
    }

    /// One gate on a new workflow: the version of `global/flip` that
    /// decided it, or why there is none (also counted in `reloads`).
    async fn probe(&mut self, reloads: &mut Reloads) -> Result<String, String> {
        let result = self.try_probe().await;
        reloads.gates += 1;
        result.map_err(|failure| {
            if failure.transport {
                self.connection = None;
            }
            reloads.error(failure.message.clone());
            failure.message
        })
    }

    async fn try_probe(&mut self) -> Result<String, Failure> {
        let conn = match self.connection.take() {
            Some(conn) => conn,
            None => Connection::open(self.server.address)
                .await
                .map_err(Failure::transport)?,
        };
        let conn = self.connection.insert(conn);
        let created = conn
            .post_expecting(
                "/api/v1/workflows",
                self.create.clone(),
                StatusCode::CREATED,
            )
            .await?;
        let created: Created = parse("create", &created)?;
        let path = format!("/api/v1/workflows/{}/steps/s1/gate", created.workflow_id);
        let answer = conn
            .post_expecting(&path, self.gate.clone(), StatusCode::OK)
            .await?;
        let answer: GateAnswer = parse("gate", &answer)?;
        answer
            .policies_evaluated
            .into_iter()
            .find(|run| run.policy_id == ID)
            .and_then(|run| run.policy_version)
            .ok_or_else(|| Failure {
                message: format!("{path}: no version of {ID} decided"),
                transport: false,
            })
    }
}

/// A progress line every tenth of the way.
fn progress(index: usize, count: usize, reloads: &Reloads) {
    let done = index + 1;
    if done == count || done.is_multiple_of((count / 10).max(1)) {
        let last = reloads.latency.last().copied().unwrap_or_default();
        eprintln!(
            "  {done}/{count} reloads, last {:.0} ms, {} errors",
            start::millis(last),
            reloads.errors
        );
    }
}
