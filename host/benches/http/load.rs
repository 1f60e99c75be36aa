//! The load: simulated clients that each run whole workflows against `wcp`
//! (create, then five times gate + step complete, then complete), either as
//! fast as answers come back (closed loop) or with gates paced to a fixed
//! rate (open loop), and the same clients sending single gate-shaped requests
//! to the bare handler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::client::{Connection, Failure, parse};

/// The five steps of every workflow. Each runs three of the example
/// policies (tool-approval or model-allowlist, plus pii-guard and
/// cost-budget) and is allowed, so no step waits for an approval that would
/// hold the workflow's next gates.
fn gate_bodies() -> Vec<Bytes> {
    let messages = |text: &str| json!({"messages": [{"role": "user", "content": text}]});
    let bodies = [
        json!({"step_type": "llm_call", "step_name": "plan", "model": "gpt-4o", "provider": "openai",
               "step_input": messages("Summarise the quarterly revenue report for the northern region."),
               "tokens_in": 420, "cost_usd": 0.002}),
        json!({"step_type": "tool_call", "step_name": "search",
               "tool_context": {"tool_name": "search_web", "tool_type": "function",
                                "tool_input": {"query": "northern region revenue 2025"}}}),
        json!({"step_type": "llm_call", "step_name": "draft", "model": "claude-sonnet-4-5",
               "provider": "anthropic",
               "step_input": messages("Draft three bullet points comparing this year with last."),
               "tokens_in": 900, "cost_usd": 0.004}),
        json!({"step_type": "tool_call", "step_name": "fetch",
               "tool_context": {"tool_name": "fetch_url",
                                "tool_input": {"url": "https://intranet.example/reports/q3"}}}),
        json!({"step_type": "llm_call", "step_name": "review", "model": "gpt-4o-mini",
               "provider": "openai", "step_input": messages("Check the draft for factual errors."),
               "tokens_in": 1200, "cost_usd": 0.001}),
    ];
    bodies
        .iter()
        .map(|body| Bytes::from(body.to_string()))
        .collect()
}

/// What every step reports when it is done.
fn complete_body() -> Bytes {
    Bytes::from(
        json!({"output": {"text": "done", "items": 3}, "tokens_in": 420, "tokens_out": 150,
               "cost_usd": 0.002})
        .to_string(),
    )
}

/// The requests every client sends, built once.
#[derive(Debug)]
pub struct Workload {
    gates: Vec<Bytes>,
    complete: Bytes,
    create: Bytes,
}

impl Workload {
    /// The workflow described in the module docs.
    pub fn new() -> Workload {
        Workload {
            gates: gate_bodies(),
            complete: complete_body(),
            create: Bytes::from(
                json!({"workflow_name": "bench", "source": "external",
                       "metadata": {"team": "bench"}})
                .to_string(),
            ),
        }
    }
}

/// The measured stretch of a phase: work before `start` is warm-up, and no
/// request starts after `end`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// When measuring starts.
    pub start: Instant,
    /// When the phase ends.
    pub end: Instant,
}

impl Window {
    /// A window after `warmup`, lasting `duration`.
    pub fn after(warmup: Duration, duration: Duration) -> Window {
        let start = Instant::now() + warmup;
        Window {
            start,
            end: start + duration,
        }
    }

    fn contains(&self, from: Instant, to: Instant) -> bool {
        from >= self.start && to <= self.end
    }
}

/// What one client (or, merged, all of them) saw during the window.
#[derive(Debug)]
pub struct Tally {
    /// Gate latencies in microseconds, one per gate in the window.
    pub latency: Histogram<u64>,
    /// Requests of any kind in the window.
    pub requests: u64,
    /// Failed requests: transport errors, timeouts, unexpected status or
    /// decision. Counted whether in the window or not.
    pub errors: u64,
    /// The first few error messages.
    pub samples: Vec<String>,
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Tally {
        Tally {
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
            requests: 0,
            errors: 0,
            samples: Vec::new(),
        }
    }

    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.samples.len() < 5 {
            self.samples.push(message);
        }
    }

    /// Gates in the window.
    pub fn gates(&self) -> u64 {
        self.latency.len()
    }

    fn merge(&mut self, other: Tally) {
        self.latency
            .add(&other.latency)
            .expect("histograms with the same bounds");
        self.requests += other.requests;
        self.errors += other.errors;
        for sample in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(sample);
            }
        }
    }
}

/// How gates are sent.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Each client sends its next request as soon as the last is answered.
    Closed,
    /// All clients together send this many gates per second, each client's
    /// gates on a fixed schedule; a gate's latency counts from its scheduled
    /// time, so a server that falls behind is charged for the wait.
    Open(f64),
}

/// Runs `clients` simulated clients, each looping whole workflows against
/// one of the `wcp` replicas at `addresses` (spread evenly) until the
/// window ends, and merges what they saw.
pub async fn workflows(
    addresses: &[SocketAddr],
    clients: usize,
    pace: Pace,
    window: Window,
    workload: Arc<Workload>,
) -> Tally {
    let mut slots = match pace {
        Pace::Closed => Vec::new(),
        Pace::Open(rate) => pacer(clients, rate, window),
    };
    // Client n talks to server n mod the servers, all the run.
    let tasks: Vec<_> = (0..clients)
        .map(|n| {
            let workload = Arc::clone(&workload);
            let schedule = slots.pop();
            let address = addresses[n % addresses.len()];
            tokio::spawn(workflow_client(address, window, schedule, workload))
        })
        .collect();
    merge(tasks).await
}

/// A gate slot's scheduled time, from the pacer.
type Slots = mpsc::UnboundedReceiver<Instant>;

/// The open loop's schedule: `rate` gate slots per second in all, dealt to
/// the clients in turn, so each has one every `clients / rate` seconds.
///
/// A thread of its own sleeps until each slot and hands it over on time.
/// tokio's timer rounds a sleep up to the next millisecond, and a gate's
/// latency counts from its slot, so pacing with it would have charged up
/// to 1 ms of the load generator's own lateness to the server. A client
/// still busy with its previous request finds its slots waiting and sends
/// at once, its latency counting from the slot it missed.
fn pacer(clients: usize, rate: f64, window: Window) -> Vec<Slots> {
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..clients).map(|_| mpsc::unbounded_channel()).unzip();
    let step = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || {
            for (k, client) in (0u32..).zip(senders.iter().cycle()) {
                let slot = start + step * k;
                if slot >= window.end {
                    break;
                }
                if let Some(wait) = slot.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // A client that has stopped needs no more slots.
                let _ = client.send(slot);
            }
        })
        .expect("cannot start the pacer thread");
    receivers
}

/// Runs `clients` simulated clients sending gate bodies to the bare handler
/// at `address`, as fast as answers come back, until the window ends.
pub async fn bare(
    address: SocketAddr,
    clients: usize,
    window: Window,
    workload: Arc<Workload>,
) -> Tally {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let workload = Arc::clone(&workload);
            tokio::spawn(bare_client(address, window, workload))
        })
        .collect();
    merge(tasks).await
}

/// The client's keep-alive connection, opened again when there is none.
/// A failed open is counted as an error and waited out briefly: `None`.
async fn connected<'a>(
    slot: &'a mut Option<Connection>,
    address: SocketAddr,
    tally: &mut Tally,
) -> Option<&'a mut Connection> {
    if slot.is_none() {
        match Connection::open(address).await {
            Ok(conn) => *slot = Some(conn),
            Err(error) => {
                tally.error(format!("{error:#}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                return None;
            }
        }
    }
    slot.as_mut()
}

async fn merge(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut total = Tally::new();
    for task in tasks {
        match task.await {
            Ok(tally) => total.merge(tally),
            Err(error) => total.error(format!("a client task failed: {error}")),
        }
    }
    total
}

/// Part of a gate's answer: enough to tell that the step may run.
#[derive(Deserialize)]
struct GateAnswer<'a> {
    decision: &'a str,
}

/// Part of the create answer.
#[derive(Deserialize)]
struct Created {
    workflow_id: String,
}

/// One client: a connection, reopened after any error, looping workflows.
async fn workflow_client(
    address: SocketAddr,
    window: Window,
    mut schedule: Option<Slots>,
    workload: Arc<Workload>,
) -> Tally {
    let mut tally = Tally::new();
    let mut connection = None;
    while Instant::now() < window.end {
        let Some(conn) = connected(&mut connection, address, &mut tally).await else {
            continue;
        };
        if let Err(error) = workflow(conn, &workload, window, &mut schedule, &mut tally).await {
            tally.error(error.message);
            if error.transport {
                connection = None;
            }
        }
    }
    tally
}

/// Sends one request, counts it if it was answered within the window, and
/// checks its status.
async fn call(
    conn: &mut Connection,
    path: &str,
    body: &Bytes,
    expect: StatusCode,
    window: Window,
    tally: &mut Tally,
) -> Result<(Bytes, Instant), Failure> {
    let sent = Instant::now();
    let answer = conn.post_expecting(path, body.clone(), expect).await;
    let done = Instant::now();
    let answered = !matches!(&answer, Err(failure) if failure.transport);
    if answered && window.contains(sent, done) {
        tally.requests += 1;
    }
    answer.map(|answer| (answer, done))
}

/// One whole workflow. Stops early, without error, when the window ends.
async fn workflow(
    conn: &mut Connection,
    workload: &Workload,
    window: Window,
    schedule: &mut Option<Slots>,
    tally: &mut Tally,
) -> Result<(), Failure> {
    let created = StatusCode::CREATED;
    let (answer, _) = call(
        conn,
        "/api/v1/workflows",
        &workload.create,
        created,
        window,
        tally,
    )
    .await?;
    let id = parse::<Created>("create", &answer)?.workflow_id;
    for (index, gate) in workload.gates.iter().enumerate() {
        // In the open loop the gate waits for its slot, and its latency
        // counts from that slot.
        let started = match schedule {
            Some(slots) => match slots.recv().await {
                Some(slot) => slot,
                // The pacer has dealt the window's last slot.
                None => return Ok(()),
            },
            None => Instant::now(),
        };
        if started >= window.end {
            return Ok(());
        }
        let path = format!("/api/v1/workflows/{id}/steps/s{index}/gate");
        let (answer, done) = call(conn, &path, gate, StatusCode::OK, window, tally).await?;
        let decision = parse::<GateAnswer>("gate", &answer)?.decision;
        if decision != "allow" {
            return Err(Failure {
                message: format!("{path}: decision {decision}, expected allow"),
                transport: false,
            });
        }
        if window.contains(started, done) {
            let micros = done.duration_since(started).as_micros();
            tally
                .latency
                .saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
        }
        let path = format!("/api/v1/workflows/{id}/steps/s{index}/complete");
        let no_content = StatusCode::NO_CONTENT;
        call(conn, &path, &workload.complete, no_content, window, tally).await?;
    }
    let path = format!("/api/v1/workflows/{id}/complete");
    call(conn, &path, &Bytes::new(), StatusCode::OK, window, tally).await?;
    Ok(())
}

/// One client of the bare handler: gate bodies in turn, as fast as answers
/// come back.
async fn bare_client(address: SocketAddr, window: Window, workload: Arc<Workload>) -> Tally {
    let mut tally = Tally::new();
    let mut connection = None;
    let mut index = 0usize;
    while Instant::now() < window.end {
        let Some(conn) = connected(&mut connection, address, &mut tally).await else {
            continue;
        };
        let step = index % workload.gates.len();
        index += 1;
        let path = format!("/api/v1/workflows/wf_bare/steps/s{step}/gate");
        let gate = &workload.gates[step];
        let started = Instant::now();
        match call(conn, &path, gate, StatusCode::OK, window, &mut tally).await {
            Ok((_, done)) => {
                if window.contains(started, done) {
                    let micros = done.duration_since(started).as_micros();
                    tally
                        .latency
                        .saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
                }
            }
            Err(failure) => {
                tally.error(failure.message);
                if failure.transport {
                    connection = None;
                }
            }
        }
    }
    tally
}
