//! The baseline: a bare axum server with one JSON handler on the gate's
//! route. It parses a gate body into a typed struct and answers a gate-shaped
//! JSON object, with no policies, no database and no middleware: the cost of
//! HTTP and JSON alone, which `wcp`'s gate throughput is compared with.
//!
//! It runs in a child process (this bench binary, re-executed with
//! [`SERVE_ENV`] set), so it gets the same treatment as `wcp serve`: its own
//! process, its own async runtime, loopback sockets.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;

use axum::extract::Path;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Set in the environment of the re-executed bench binary to make it serve
/// the bare handler instead of running the benchmark.
pub const SERVE_ENV: &str = "WCP_BENCH_BARE_SERVER";

/// The gate body, as `wcp` reads it.
#[derive(Deserialize)]
#[allow(dead_code)] // parsed for its cost; only some fields are answered
struct GateBody {
    step_type: String,
    step_name: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    #[serde(default)]
    step_input: BTreeMap<String, Value>,
    tool_context: Option<ToolContext>,
    tokens_in: Option<u64>,
    tokens_out: Option<u64>,
    cost_usd: Option<f64>,
}

#[derive(Deserialize)]
#[allow(dead_code)] // parsed for its cost
struct ToolContext {
    tool_name: String,
    tool_type: Option<String>,
    tool_input: Option<BTreeMap<String, Value>>,
}

/// A gate-shaped answer, as `wcp` sends it for an allowed step.
#[derive(Serialize)]
struct GateAnswer {
    decision: &'static str,
    step_id: String,
    decision_id: String,
    reason: &'static str,
    cached: bool,
    decision_source: &'static str,
    retry_context: RetryContext,
}

#[derive(Serialize)]
struct RetryContext {
    gate_count: u32,
    completion_count: u32,
    prior_completion_status: &'static str,
    prior_output_available: bool,
    prior_output: Option<Value>,
    last_decision: &'static str,
    idempotency_key: &'static str,
    step_type: String,
}

/// `POST /api/v1/workflows/{id}/steps/{step_id}/gate`: parse, answer `allow`.
async fn gate(
    Path((workflow_id, step_id)): Path<(String, String)>,
    Json(body): Json<GateBody>,
) -> Json<GateAnswer> {
    Json(GateAnswer {
        decision: "allow",
        decision_id: format!("dec_{workflow_id}_{step_id}"),
        step_id,
        reason: "No matching policies",
        cached: false,
        decision_source: "fresh",
        retry_context: RetryContext {
            gate_count: 1,
            completion_count: 0,
            prior_completion_status: "none",
            prior_output_available: false,
            prior_output: None,
            last_decision: "allow",
            idempotency_key: "",
            step_type: body.step_type,
        },
    })
}

/// Serves the bare handler on a free loopback port, printing
/// `listening on <address>` on stdout, until the process is killed.
pub fn serve() -> ExitCode {
    serve_on_loopback(
        "bare",
        Router::new().route("/api/v1/workflows/{id}/steps/{step_id}/gate", post(gate)),
    )
}

/// Serves `app` on a free loopback port in a runtime of its own, printing
/// `listening on <address>` on stdout, until the process is killed; `what`
/// names the server in its failures.
pub fn serve_on_loopback(what: &str, app: Router) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("cannot start the {what} server's runtime: {error}"));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("cannot bind the {what} server: {error}"));
        let address = listener.local_addr().expect("a bound address");
        println!("listening on {address}");
        std::io::stdout().flush().expect("stdout");
        axum::serve(listener, app)
            .await
            .unwrap_or_else(|error| panic!("the {what} server failed: {error}"));
    });
    ExitCode::SUCCESS
}
