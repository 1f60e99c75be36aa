//! A stateless decision server: what a user could run instead of `wcp
//! serve`, the way OPA is run. It reads the gate body as `wcp` does
//! (`GateBody`, validated, into the policy input), runs the same example
//! policies through the same runtime on the blocking pool (at most one per
//! core at a time, as `wcp` does), combines their verdicts and answers
//! them: no store, no workflow state, no audit, no middleware. Its gates/s
//! beside `wcp`'s are the cost of durability and workflow state.
//!
//! Like the bare handler, it runs in a child process: this bench binary,
//! re-executed with [`SERVE_ENV`] set.

use std::process::ExitCode;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use host::gate::{combine, evaluate_policies};
use host::input::{DryRunBody, GateBody};
use host::policy_set::PolicySet;
use host::runtime::{PolicyRuntime, RuntimeConfig};

/// Set in the environment of the re-executed bench binary to make it serve
/// stateless decisions instead of running the benchmark.
pub const SERVE_ENV: &str = "WCP_BENCH_STATELESS_SERVER";

/// What every request shares.
struct Decider {
    runtime: Arc<PolicyRuntime>,
    policies: Arc<PolicySet>,
    evaluations: Arc<Semaphore>,
}

type Answer = (StatusCode, Json<Value>);

fn refused(status: StatusCode, message: String) -> Answer {
    (status, Json(json!({"error": message})))
}

/// `POST /api/v1/workflows/{id}/steps/{step_id}/gate`: decide, remember
/// nothing.
async fn gate(
    State(decider): State<Arc<Decider>>,
    Path((workflow_id, step_id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let gate: GateBody = match serde_json::from_slice(&body) {
        Ok(gate) => gate,
        Err(error) => return refused(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let dry_run = DryRunBody {
        gate,
        step_id: Some(step_id.clone()),
        workflow: None,
    };
    let input = match dry_run.into_input("community") {
        Ok(input) => input,
        Err(error) => return refused(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let Ok(permit) = Arc::clone(&decider.evaluations).acquire_owned().await else {
        return refused(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    };
    let runtime = Arc::clone(&decider.runtime);
    let policies = Arc::clone(&decider.policies);
    let decided = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        combine(evaluate_policies(&runtime, &policies, "community", &input))
    })
    .await;
    let combined = match decided {
        Ok(combined) => combined,
        Err(error) => return refused(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    };
    (
        StatusCode::OK,
        Json(json!({
            "decision": combined.decision,
            "step_id": step_id,
            "decision_id": format!("dec_{workflow_id}_{step_id}"),
            "reason": combined.reason,
            "policy_ids": combined.policy_ids,
        })),
    )
}

/// Loads the example policies, then serves decisions on a free loopback
/// port, printing `listening on <address>` on stdout, until killed.
pub fn serve() -> ExitCode {
    let dir = tempfile::tempdir().expect("cannot make a policy directory");
    host::examples::write(dir.path(), false).expect("cannot write the example policies");
    let runtime = PolicyRuntime::new(RuntimeConfig::default()).expect("cannot start the runtime");
    let policies = PolicySet::load(&runtime, dir.path(), &PolicySet::default());
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let decider = Arc::new(Decider {
        runtime: Arc::new(runtime),
        policies: Arc::new(policies),
        evaluations: Arc::new(Semaphore::new(cores)),
    });
    let app = Router::new()
        .route("/api/v1/workflows/{id}/steps/{step_id}/gate", post(gate))
        .with_state(decider);
    crate::bare::serve_on_loopback("stateless", app)
}
