//! Workflow, gate and step routes through the real router (`oneshot`),
//! each test with its own database and a policy directory holding
//! `global/tool-approval` (tool calls only, default settings).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use host::audit::AuditEntry;
use host::config::ServeConfig;

mod common;

use common::*;

#[tokio::test]
async fn create_answers_201_with_a_v4_workflow_id() {
    let app = app();
    let answer = app
        .post(
            "/api/v1/workflows",
            json!({"workflow_name": "etl", "trace_id": "t-1", "total_steps": 9}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let body = answer.json();
    let id = body["workflow_id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id.strip_prefix("wf_").unwrap()).unwrap();
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(id, id.to_lowercase());
    assert_eq!(body["workflow_name"], "etl");
    assert_eq!(body["source"], "external");
    assert_eq!(body["status"], "in_progress");
    assert_eq!(body["trace_id"], "t-1");
    assert_eq!(body["created_at"], body["started_at"]);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7, "{keys:?}");

    let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    assert_eq!(got["current_step_index"], 0);
    assert_eq!(got["metadata"], json!({}));
    assert!(got.get("steps").is_none());
    assert!(got.get("completed_at").is_none());
}

#[tokio::test]
async fn create_refuses_invalid_bodies_in_field_order() {
    let long = "x".repeat(256);
    // (name, body, code, message)
    let cases = [
        ("empty body", None, "BAD_REQUEST", "Invalid request body"),
        (
            "no name",
            Some(json!({"source": "x"})),
            "BAD_REQUEST",
            "workflow_name is required",
        ),
        (
            "empty name",
            Some(json!({"workflow_name": ""})),
            "BAD_REQUEST",
            "workflow_name is required",
        ),
        (
            "long name",
            Some(json!({"workflow_name": long})),
            "BAD_REQUEST",
            "workflow_name must be at most 255 characters",
        ),
        (
            "long source",
            Some(json!({"workflow_name": "a", "source": "s".repeat(101)})),
            "BAD_REQUEST",
            "source must be at most 100 characters",
        ),
        (
            "metadata not object",
            Some(json!({"workflow_name": "a", "metadata": [1]})),
            "BAD_REQUEST",
            "Invalid request body",
        ),
        (
            "long trace id",
            Some(json!({"workflow_name": "a", "trace_id": long})),
            "INVALID_TRACE_ID",
            "trace_id exceeds maximum length of 255 characters",
        ),
    ];
    let app = app();
    for (name, body, code, message) in cases {
        let answer = app
            .post("/api/v1/workflows", body.unwrap_or(Value::Null))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
        let body = answer.json();
        assert_eq!(body["code"], code, "{name}");
        assert!(
            body["message"].as_str().unwrap().starts_with(message),
            "{name}: {body}"
        );
    }
    assert!(app.audit().is_empty(), "refusals are not audited");
}

#[tokio::test]
async fn foreign_and_unknown_workflows_get_the_same_404() {
    let app = app();
    let id = app.create("mine").await;
    let foreign = app
        .send(
            Method::GET,
            &format!("/api/v1/workflows/{id}"),
            Some(OTHER),
            "",
        )
        .await;
    let unknown = app.get("/api/v1/workflows/wf_nope").await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(foreign.body, unknown.body);
    assert_eq!(
        foreign.json(),
        json!({"error": "not_found", "code": "NOT_FOUND", "message": "Workflow not found"})
    );
    let gate = app
        .send(
            Method::POST,
            &format!("/api/v1/workflows/{id}/steps/s1/gate"),
            Some(OTHER),
            &llm().to_string(),
        )
        .await;
    assert_eq!(gate.body, unknown.body);
}

#[tokio::test]
async fn list_pages_newest_first_and_validates_parameters() {
    let app = app();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(app.create(&format!("w{n}")).await);
    }
    let page = app.get("/api/v1/workflows?limit=2&offset=0").await.json();
    assert_eq!(page["total"], 3);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["workflows"][0]["workflow_id"], ids[2].as_str());
    assert_eq!(page["workflows"][1]["workflow_id"], ids[1].as_str());
    let rest = app.get("/api/v1/workflows?limit=2&offset=2").await.json();
    assert_eq!(rest["workflows"].as_array().unwrap().len(), 1);
    assert_eq!(rest["has_more"], false);
    let capped = app.get("/api/v1/workflows?limit=1000").await.json();
    assert_eq!(capped["limit"], 100);
    let filtered = app.get("/api/v1/workflows?status=completed").await.json();
    assert_eq!(filtered["workflows"], json!([]));
    assert_eq!(filtered["total"], 0);
    let other = app
        .send(Method::GET, "/api/v1/workflows", Some(OTHER), "")
        .await
        .json();
    assert_eq!(other["total"], 0);

    let bad = [
        ("limit=0", "limit must be a positive integer"),
        ("limit=-1", "limit must be a positive integer"),
        ("limit=abc", "limit must be a positive integer"),
        ("offset=-1", "offset must be a non-negative integer"),
        ("offset=x", "offset must be a non-negative integer"),
    ];
    for (query, message) in bad {
        let answer = app.get(&format!("/api/v1/workflows?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.json()["message"], message, "{query}");
    }
}

#[tokio::test]
async fn gate_without_matching_policies_allows_with_a_full_retry_context() {
    let app = app();
    let id = app.create("w").await;
    let answer = app.gate(&id, "s1", llm()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["decision"], "allow");
    assert_eq!(body["reason"], "No matching policies");
    assert_eq!(body["decision_id"], format!("dec_{id}_s1"));
    assert_eq!(body["cached"], false);
    assert_eq!(body["decision_source"], "fresh");
    for absent in [
        "policy_ids",
        "policies_evaluated",
        "policies_matched",
        "approval_id",
    ] {
        assert!(body.get(absent).is_none(), "{absent}: {body}");
    }
    let retry = &body["retry_context"];
    assert_eq!(retry["gate_count"], 1);
    assert_eq!(retry["completion_count"], 0);
    assert_eq!(retry["prior_completion_status"], "none");
    assert_eq!(retry["prior_output_available"], false);
    assert_eq!(retry["prior_output"], Value::Null);
    assert_eq!(retry["prior_completion_at"], Value::Null);
    assert_eq!(retry["last_decision"], "allow");
    assert_eq!(retry["idempotency_key"], "");
    assert_eq!(retry["first_attempt_at"], retry["last_attempt_at"]);
    assert_eq!(retry.as_object().unwrap().len(), 10);
}

#[tokio::test]
async fn tool_approval_holds_send_email_and_a_regate_is_cached() {
    let app = app_with(ServeConfig {
        public_base_url: Some("https://wcp.example".into()),
        ..ServeConfig::default()
    });
    let id = app.create("w").await;
    let first = app.gate(&id, "mail", send_email()).await.json();
    assert_eq!(first["decision"], "require_approval");
    assert_eq!(first["policy_ids"], json!(["global/tool-approval"]));
    assert_eq!(first["policies_evaluated"][0]["action"], "require_approval");
    let approval_id = first["approval_id"].as_str().unwrap();
    let namespace = uuid::Uuid::parse_str("a1b2c3d4-e5f6-7890-abcd-ef1234567890").unwrap();
    let expected = uuid::Uuid::new_v5(&namespace, format!("{id}:mail").as_bytes());
    assert_eq!(approval_id, expected.to_string());
    assert_eq!(
        first["approval_url"],
        format!("https://wcp.example/workflows/{id}/steps/mail/approve")
    );

    let again = app.gate(&id, "mail", send_email()).await.json();
    assert_eq!(again["cached"], true);
    assert_eq!(again["decision_source"], "cached");
    assert_eq!(again["decision"], "require_approval");
    assert_eq!(again["approval_id"], approval_id);
    assert_eq!(again["retry_context"]["gate_count"], 2);
    assert_eq!(
        again["retry_context"]["prior_completion_status"],
        "gated_not_completed"
    );

    // The hold blocks other steps, a reevaluation and the workflow's completion.
    let other = app.gate(&id, "s2", llm()).await;
    assert_eq!(other.status, StatusCode::CONFLICT);
    assert_eq!(other.json()["code"], "APPROVAL_PENDING");
    assert_eq!(
        other.json()["message"],
        "workflow has pending approval for step mail"
    );
    let mut reevaluate = send_email();
    reevaluate["retry_policy"] = json!("reevaluate");
    let held = app.gate(&id, "mail", reevaluate).await.json();
    assert_eq!(held["code"], "APPROVAL_HOLD");
    assert_eq!(held["message"], "step mail holds approval pending");
    let complete = app
        .post(&format!("/api/v1/workflows/{id}/complete"), Value::Null)
        .await;
    assert_eq!(complete.status, StatusCode::CONFLICT);
    assert_eq!(complete.json()["code"], "APPROVAL_PENDING");
    let resume = app
        .post(&format!("/api/v1/workflows/{id}/resume"), Value::Null)
        .await;
    assert_eq!(resume.json()["code"], "APPROVAL_PENDING");

    let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    assert_eq!(got["steps"][0]["approval_status"], "pending");
    assert_eq!(got["steps"][0]["gate_count"], 2);
    assert_eq!(got["current_step_index"], 1);
}

#[tokio::test]
async fn idempotent_retries_must_match_input_and_key() {
    let app = app();
    let id = app.create("w").await;
    let mut first = llm();
    first["idempotency_key"] = json!("k1");
    assert_eq!(app.gate(&id, "s1", first).await.status, StatusCode::OK);

    let reordered = json!({"step_type": "llm_call", "idempotency_key": "k1",
                           "step_input": {"n": 1, "prompt": "hi"}});
    let cached = app.gate(&id, "s1", reordered).await.json();
    assert_eq!(cached["cached"], true, "{cached}");
    assert_eq!(cached["retry_context"]["idempotency_key"], "k1");

    let changed = json!({"step_type": "llm_call", "idempotency_key": "k1",
                         "step_input": {"prompt": "bye", "n": 1}});
    let answer = app.gate(&id, "s1", changed).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(
        answer.json(),
        json!({"error": "step_input_mismatch", "code": "STEP_INPUT_MISMATCH",
               "message": "step_input or tool_context differs from the first gate of step s1"})
    );

    let answer = app.gate(&id, "s1", llm()).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(
        answer.json(),
        json!({"error": {"code": "IDEMPOTENCY_KEY_MISMATCH",
               "message": "idempotency_key does not match the key recorded on gate",
               "details": {"workflow_id": id, "step_id": "s1",
                           "expected_idempotency_key": "k1", "received_idempotency_key": ""}}})
    );
    let complete = app
        .post(
            &format!("/api/v1/workflows/{id}/steps/s1/complete"),
            json!({"idempotency_key": "k2"}),
        )
        .await;
    assert_eq!(complete.json()["error"]["code"], "IDEMPOTENCY_KEY_MISMATCH");
    let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    assert_eq!(got["steps"][0]["gate_count"], 2, "refusals change nothing");
}

#[tokio::test]
async fn ended_workflows_refuse_gates_and_ends() {
    let app = app();
    let id = app.create("w").await;
    let done = app
        .post(&format!("/api/v1/workflows/{id}/complete"), Value::Null)
        .await;
    assert_eq!(
        done.json(),
        json!({"workflow_id": id, "status": "completed", "message": "Workflow completed successfully"})
    );
    let gate = app.gate(&id, "s1", llm()).await;
    assert_eq!(gate.status, StatusCode::CONFLICT);
    assert_eq!(gate.json()["code"], "WORKFLOW_TERMINAL");
    assert_eq!(
        gate.json()["message"],
        "workflow is in terminal state: completed"
    );
    for (action, message) in [
        (
            "complete",
            "workflow is already in terminal state: completed",
        ),
        ("fail", "workflow is already in terminal state: completed"),
        ("abort", "workflow is already in terminal state: completed"),
        (
            "resume",
            "cannot resume workflow in terminal state: completed",
        ),
    ] {
        let answer = app
            .post(&format!("/api/v1/workflows/{id}/{action}"), Value::Null)
            .await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{action}");
        assert_eq!(answer.json()["code"], "WORKFLOW_TERMINAL", "{action}");
        assert_eq!(answer.json()["message"], message, "{action}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_first_gates_evaluate_once() {
    let app = Arc::new(app());
    let id = app.create("w").await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (app, id) = (Arc::clone(&app), id.clone());
            tokio::spawn(async move { app.gate(&id, "mail", send_email()).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let decisions: Vec<Value> = answers
        .iter()
        .map(|answer| {
            assert_eq!(answer.status, StatusCode::OK);
            let body = answer.json();
            json!([body["decision"], body["approval_id"]])
        })
        .collect();
    assert!(
        decisions.iter().all(|d| *d == decisions[0]),
        "{decisions:?}"
    );
    let fresh = answers
        .iter()
        .filter(|a| a.json()["cached"] == false)
        .count();
    assert_eq!(fresh, 1);
    let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    assert_eq!(got["steps"][0]["gate_count"], 10);
    assert_eq!(got["current_step_index"], 1);
    let gates: Vec<AuditEntry> = app
        .audit()
        .into_iter()
        .filter(|entry| entry.record.kind == "step_gate")
        .collect();
    assert_eq!(gates.len(), 10);
    assert_eq!(
        gates
            .iter()
            .filter(|e| e.record.details["cached"] == false)
            .count(),
        1
    );
}

#[tokio::test]
async fn steps_take_indexes_and_completes_add_to_the_totals() {
    let app = app();
    let id = app.create("w").await;
    for step in ["a", "b", "c"] {
        assert_eq!(app.gate(&id, step, llm()).await.status, StatusCode::OK);
    }
    let uri = format!("/api/v1/workflows/{id}/steps/b/complete");
    let complete = |body: Value| app.post(&uri, body);
    let answer = complete(
        json!({"output": {"rows": 3}, "tokens_in": 10, "tokens_out": 5,
                                 "cost_usd": 0.5, "metadata": {"x": 1}}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert!(answer.body.is_empty());
    assert_eq!(complete(Value::Null).await.status, StatusCode::NO_CONTENT);
    // A whole number is an integer however it is written, as JSON Schema's
    // `integer` says: `2.0` counts as 2; `2.5` and `-1` are refused.
    assert_eq!(
        complete(json!({"tokens_in": 2.0})).await.status,
        StatusCode::NO_CONTENT
    );
    let fraction = complete(json!({"tokens_in": 2.5})).await;
    assert_eq!(fraction.status, StatusCode::BAD_REQUEST);
    assert!(
        fraction.json()["message"]
            .as_str()
            .unwrap()
            .contains("floating point `2.5`, expected a whole number"),
        "{:?}",
        fraction.json()
    );
    assert_eq!(
        complete(json!({"tokens_in": -1})).await.json()["message"],
        "tokens_in must be >= 0"
    );
    let missing = app
        .post(
            &format!("/api/v1/workflows/{id}/steps/zzz/complete"),
            Value::Null,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["message"], "Step not found");

    let regate = app
        .post(
            &format!("/api/v1/workflows/{id}/steps/b/gate?include_prior_output=true"),
            llm(),
        )
        .await
        .json();
    assert_eq!(
        regate["retry_context"]["prior_completion_status"],
        "completed"
    );
    assert_eq!(regate["retry_context"]["prior_output"], json!({"rows": 3}));
    assert_eq!(regate["retry_context"]["completion_count"], 3);

    app.post(&format!("/api/v1/workflows/{id}/complete"), Value::Null)
        .await;
    let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    let indexes: Vec<&Value> = got["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["step_index"])
        .collect();
    assert_eq!(indexes, [&json!(1), &json!(2), &json!(3)]);
    assert_eq!(got["status"], "completed");
    assert_eq!(got["total_steps"], 3);
    assert_eq!(got["total_tokens_in"], 12);
    assert_eq!(got["total_tokens_out"], 5);
    assert_eq!(got["total_cost_usd"], 0.5);
    assert_eq!(got["steps"][1]["completion_count"], 3);
    assert_eq!(got["steps"][1]["tokens_in"], 2);
}

/// Usage that would take a workflow's totals past what can be stored is
/// refused with a 400 naming the field, and changes nothing: no 500, no
/// wrapped or infinite total.
#[tokio::test]
async fn usage_that_would_overflow_the_totals_is_a_400_that_changes_nothing() {
    let app = app();
    let id = app.create("w").await;
    for step in ["s1", "s2"] {
        assert_eq!(app.gate(&id, step, llm()).await.status, StatusCode::OK);
    }
    let complete = |step: &str, body: Value| {
        let uri = format!("/api/v1/workflows/{id}/steps/{step}/complete");
        let app = &app;
        async move { app.post(&uri, body).await }
    };
    let max = json!({"tokens_in": i64::MAX, "tokens_out": i64::MAX, "cost_usd": f64::MAX});
    assert_eq!(complete("s1", max).await.status, StatusCode::NO_CONTENT);
    let before = app.get(&format!("/api/v1/workflows/{id}")).await.body;
    let audit_before = app.audit().len();
    for (field, body) in [
        ("tokens_in", json!({"tokens_in": 1})),
        ("tokens_out", json!({"tokens_out": 1})),
        ("cost_usd", json!({"cost_usd": f64::MAX})),
    ] {
        let answer = complete("s2", body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{field}");
        let message = answer.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.starts_with(&format!(
                "{field} would take the workflow's total_{field} past"
            )),
            "{message}"
        );
    }
    let after = app.get(&format!("/api/v1/workflows/{id}")).await.body;
    assert_eq!(before, after, "nothing changed");
    assert_eq!(app.audit().len(), audit_before, "nothing audited");
    // What fits still does.
    assert_eq!(
        complete("s2", json!({"cost_usd": 0.0, "tokens_in": 0}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.assert_chain_valid();
}

#[tokio::test]
async fn fail_and_abort_record_their_reasons() {
    // (name, action, body, status, reason, column)
    let cases = [
        (
            "fail default",
            "fail",
            None,
            "failed",
            "Failed",
            "failure_reason",
        ),
        (
            "fail empty reason",
            "fail",
            Some(json!({"reason": ""})),
            "failed",
            "Failed",
            "failure_reason",
        ),
        (
            "fail given",
            "fail",
            Some(json!({"reason": "disk full"})),
            "failed",
            "disk full",
            "failure_reason",
        ),
        (
            "abort default",
            "abort",
            None,
            "aborted",
            "Aborted by user",
            "abort_reason",
        ),
        (
            "abort given",
            "abort",
            Some(json!({"reason": "operator"})),
            "aborted",
            "operator",
            "abort_reason",
        ),
    ];
    let app = app();
    for (name, action, body, status, reason, column) in cases {
        let id = app.create(name).await;
        let answer = app
            .post(
                &format!("/api/v1/workflows/{id}/{action}"),
                body.unwrap_or(Value::Null),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{name}");
        assert_eq!(answer.json()["status"], status, "{name}");
        assert_eq!(answer.json()["reason"], reason, "{name}");
        let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
        assert_eq!(got["status"], status, "{name}");
        assert_eq!(got[column], reason, "{name}");
        assert!(got["completed_at"].is_string(), "{name}");
    }
    let id = app.create("malformed").await;
    for body in ["{", "{\"reason\": 5}", "[]"] {
        let answer = app
            .send(
                Method::POST,
                &format!("/api/v1/workflows/{id}/fail"),
                None,
                body,
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    assert_eq!(got["status"], "in_progress");
}

#[tokio::test]
async fn every_change_writes_one_audit_entry_and_the_chain_verifies() {
    let app = app();
    let id = app.create("w").await;
    app.gate(&id, "s1", llm()).await;
    app.gate(&id, "s1", llm()).await;
    app.post(
        &format!("/api/v1/workflows/{id}/steps/s1/complete"),
        json!({"tokens_in": 1}),
    )
    .await;
    // Refusals and reads write nothing.
    app.gate(&id, "s1", json!({"step_type": "llm_call"})).await;
    app.get(&format!("/api/v1/workflows/{id}")).await;
    app.post(&format!("/api/v1/workflows/{id}/resume"), Value::Null)
        .await;
    app.post(
        &format!("/api/v1/workflows/{id}/fail"),
        json!({"reason": "x"}),
    )
    .await;
    app.post(&format!("/api/v1/workflows/{id}/abort"), Value::Null)
        .await;

    let kinds: Vec<String> = app.audit().into_iter().map(|e| e.record.kind).collect();
    assert_eq!(
        kinds,
        [
            "workflow_created",
            "step_gate",
            "step_gate",
            "step_completed",
            "workflow_failed"
        ]
    );
    let entries = app.audit();
    assert_eq!(entries[1].record.details["cached"], false);
    assert_eq!(entries[2].record.details["cached"], true);
    assert_eq!(entries[1].record.details["via"], "gate");
    assert_eq!(entries[4].record.reason.as_deref(), Some("x"));
    app.assert_chain_valid();
}

#[tokio::test]
async fn gate_bodies_and_step_ids_are_validated() {
    let app = app();
    let id = app.create("w").await;
    let long_step = "s".repeat(256);
    // (name, step id, body, code, message)
    let cases = [
        (
            "long step id",
            long_step.as_str(),
            llm(),
            "BAD_REQUEST",
            "step_id must be at most 255 characters",
        ),
        (
            "no step type",
            "s1",
            json!({}),
            "BAD_REQUEST",
            "step_type is required",
        ),
        (
            "empty tool name",
            "s1",
            json!({"step_type": "tool_call", "tool_context": {"tool_name": ""}}),
            "INVALID_TOOL_CONTEXT",
            "tool_name is required when tool_context is provided",
        ),
        (
            "bad retry policy",
            "s1",
            json!({"step_type": "x", "retry_policy": "never"}),
            "BAD_REQUEST",
            "retry_policy must be \"idempotent\" or \"reevaluate\"",
        ),
    ];
    for (name, step, body, code, message) in cases {
        let answer = app.gate(&id, step, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(answer.json()["code"], code, "{name}");
        assert_eq!(answer.json()["message"], message, "{name}");
    }
    let empty = app.gate(&id, "s1", Value::Null).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(app.audit().iter().all(|e| e.record.kind != "step_gate"));
}

#[tokio::test]
async fn metrics_count_gates_and_workflows() {
    let app = app();
    let running = app.create("running").await;
    let done = app.create("done").await;
    app.gate(&running, "s1", llm()).await;
    app.gate(&running, "s1", llm()).await;
    app.gate(&running, "s2", send_email()).await;
    app.post(&format!("/api/v1/workflows/{done}/complete"), Value::Null)
        .await;
    // A refused gate is not an answered gate.
    app.gate(&done, "s1", llm()).await;

    let answer = app.get("/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    for series in [
        r#"wcp_gate_requests_total{decision="allow",source="fresh"} 1"#,
        r#"wcp_gate_requests_total{decision="allow",source="cached"} 1"#,
        r#"wcp_gate_requests_total{decision="require_approval",source="fresh"} 1"#,
        "wcp_gate_duration_seconds_count 3",
        r#"wcp_workflows{status="in_progress"} 1"#,
        r#"wcp_workflows{status="completed"} 1"#,
        r#"wcp_workflows{status="failed"} 0"#,
        r#"wcp_workflows{status="aborted"} 0"#,
        r#"wcp_policy_reloads_total{result="removed"} 0"#,
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    assert!(!text.contains("community"), "no tenant in metrics");
}

#[tokio::test]
async fn reevaluate_runs_the_policies_again_and_moves_the_index() {
    let app = app();
    let id = app.create("w").await;
    let first = app.gate(&id, "s1", drop_table()).await.json();
    assert_eq!(first["decision"], "block");
    let mut again = drop_table();
    again["retry_policy"] = json!("reevaluate");
    // A reevaluation may change the request: it is a new evaluation.
    again["tool_context"]["tool_name"] = json!("search");
    let answer = app.gate(&id, "s1", again).await.json();
    assert_eq!(answer["cached"], false, "{answer}");
    assert_eq!(answer["decision_source"], "fresh");
    assert_eq!(answer["decision"], "allow");
    assert_eq!(answer["retry_context"]["last_decision"], "block");
    assert_eq!(answer["retry_context"]["gate_count"], 2);
    assert_eq!(
        answer["policies_evaluated"][0]["policy_id"],
        "global/tool-approval"
    );
    let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    assert_eq!(got["current_step_index"], 2);
    assert_eq!(got["steps"][0]["step_index"], 1, "the step keeps its index");
    assert_eq!(got["steps"][0]["decision"], "allow");
    let checkpoints = app
        .get(&format!("/api/v1/workflows/{id}/checkpoints"))
        .await
        .json();
    let checkpoints = checkpoints["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 1, "one checkpoint per step");
    assert_eq!(checkpoints[0]["gate_decision"], "allow");
}

#[tokio::test]
async fn blocked_steps_take_completes_and_do_not_stop_the_workflow() {
    let app = app();
    let id = app.create("w").await;
    assert_eq!(
        app.gate(&id, "s1", drop_table()).await.json()["decision"],
        "block"
    );
    let complete_step = format!("/api/v1/workflows/{id}/steps/s1/complete");
    let answer = app.post(&complete_step, json!({"tokens_in": 3})).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let answer = app
        .post(&format!("/api/v1/workflows/{id}/complete"), Value::Null)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    // An ended workflow still takes step completes (contract §2.5, §3.1).
    let answer = app.post(&complete_step, Value::Null).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    assert_eq!(got["steps"][0]["completion_count"], 2);
    assert_eq!(got["total_tokens_in"], 3);
    assert_eq!(got["total_steps"], 1);
}

#[tokio::test]
async fn retry_policy_case_and_key_length_are_checked_on_gate_and_step_complete() {
    let app = app();
    let id = app.create("w").await;
    let key = |n: usize| "k".repeat(n);
    let gate_cases = [
        (
            json!({"step_type": "llm_call", "retry_policy": "IDEMPOTENT"}),
            "retry_policy must be \"idempotent\" or \"reevaluate\"",
        ),
        (
            json!({"step_type": "llm_call", "idempotency_key": key(256)}),
            "idempotency_key must be at most 255 characters",
        ),
        (
            json!({"step_type": "tool_call", "tool_context": {"tool_name": ""}}),
            "tool_name is required when tool_context is provided",
        ),
    ];
    for (body, message) in gate_cases {
        let answer = app.gate(&id, "s1", body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.json()["message"], message, "{body}");
    }
    let mut ok = llm();
    ok["idempotency_key"] = json!(key(255));
    assert_eq!(app.gate(&id, "s1", ok).await.status, StatusCode::OK);
    let complete = format!("/api/v1/workflows/{id}/steps/s1/complete");
    let answer = app
        .post(&complete, json!({"idempotency_key": key(256)}))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.json()["message"],
        "idempotency_key must be at most 255 characters"
    );
    let answer = app
        .post(&complete, json!({"idempotency_key": key(255)}))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
}
