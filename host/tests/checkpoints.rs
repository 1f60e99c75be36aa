//! Checkpoints, both resume routes and the concurrency limit (contract
//! §2.1, §2.13-2.15, §11) through the real router.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use host::config::ServeConfig;

mod common;

use common::*;

fn limited(n: u32) -> App {
    app_with(ServeConfig {
        max_concurrent_workflows: Some(n),
        ..ServeConfig::default()
    })
}

impl App {
    async fn checkpoints(&self, id: &str) -> Vec<Value> {
        let answer = self
            .get(&format!("/api/v1/workflows/{id}/checkpoints"))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["workflow_id"], id);
        answer.json()["checkpoints"].as_array().unwrap().clone()
    }

    async fn resume_last(&self, id: &str) -> Answer {
        self.post(
            &format!("/api/v1/workflows/{id}/checkpoints/resume"),
            Value::Null,
        )
        .await
    }

    async fn resume(&self, id: &str, checkpoint: &str) -> Answer {
        self.post(
            &format!("/api/v1/workflows/{id}/checkpoints/{checkpoint}/resume"),
            Value::Null,
        )
        .await
    }

    async fn status(&self, id: &str) -> String {
        let answer = self.get(&format!("/api/v1/workflows/{id}")).await;
        answer.json()["status"].as_str().unwrap().to_owned()
    }
}

fn assert_refused(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.json());
    assert_eq!(answer.json()["code"], code, "{}", answer.json());
}

#[tokio::test]
async fn checkpoints_record_each_fresh_evaluation_by_type() {
    let app = app();
    let id = app.create("checkpoints").await;
    assert!(app.checkpoints(&id).await.is_empty(), "none before a gate");
    // (step, body, decision, checkpoint_type, is_resumable)
    let cases = [
        ("s1", llm(), "allow", "step_gate", true),
        ("s2", drop_table(), "block", "step_gate", false),
        (
            "s3",
            send_email(),
            "require_approval",
            "approval_boundary",
            true,
        ),
    ];
    for (step, body, decision, ..) in &cases {
        let answer = app.gate(&id, step, body.clone()).await;
        assert_eq!(answer.json()["decision"], *decision, "{step}");
    }
    let checkpoints = app.checkpoints(&id).await;
    assert_eq!(checkpoints.len(), cases.len());
    for ((step, body, decision, kind, resumable), checkpoint) in cases.iter().zip(&checkpoints) {
        assert_eq!(checkpoint["step_id"], *step);
        assert_eq!(checkpoint["gate_decision"], *decision, "{step}");
        assert_eq!(checkpoint["checkpoint_type"], *kind, "{step}");
        assert_eq!(checkpoint["is_resumable"], *resumable, "{step}");
        assert_eq!(checkpoint["step_type"], body["step_type"], "{step}");
        assert_eq!(checkpoint["resume_count"], 0);
        assert_eq!(checkpoint["last_resumed_at"], Value::Null);
        assert_eq!(checkpoint["tenant_id"], "community");
        assert_eq!(checkpoint["org_id"], "default");
        assert_eq!(checkpoint["client_id"], "community");
        assert!(checkpoint["id"].as_i64().unwrap() > 0);
        for key in [
            "workflow_id",
            "step_index",
            "step_name",
            "gate_reason",
            "policies_evaluated",
            "policies_matched",
            "step_input",
            "tool_context",
            "model",
            "provider",
            "created_at",
        ] {
            assert!(checkpoint.get(key).is_some(), "{step} lacks {key}");
        }
    }
    let indexes: Vec<_> = checkpoints
        .iter()
        .map(|c| c["step_index"].clone())
        .collect();
    assert_eq!(indexes, [json!(1), json!(2), json!(3)]);

    // A cached re-gate leaves the checkpoint alone.
    app.gate(&id, "s1", llm()).await;
    assert_eq!(app.checkpoints(&id).await, checkpoints);
    let foreign = app
        .send(
            axum::http::Method::GET,
            &format!("/api/v1/workflows/{id}/checkpoints"),
            Some(OTHER),
            "",
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn resume_last_reruns_the_highest_resumable_checkpoint() {
    let app = app();
    let id = app.create("resume").await;
    app.gate(&id, "s1", llm()).await;
    app.gate(&id, "s2", llm()).await;
    app.gate(&id, "s3", drop_table()).await;
    let audit_before = app.audit().len();

    for expected_count in 1..=2 {
        let answer = app.resume_last(&id).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
        let body = answer.json();
        assert_eq!(
            body["resumed_from_checkpoint"], "s2",
            "blocked s3 is skipped"
        );
        assert_eq!(body["resumed_from_index"], 2);
        assert_eq!(body["new_decision"], "allow");
        assert_eq!(body["decision_source"], "fresh");
        assert_eq!(body["resume_count"], expected_count);
        let checkpoint = app.checkpoints(&id).await[1].clone();
        assert_eq!(
            body["message"],
            format!("Resumed from checkpoint {}", checkpoint["id"])
        );
        assert_eq!(checkpoint["resume_count"], expected_count);
        assert!(checkpoint["last_resumed_at"].is_string());
    }
    // Each resume is a fresh evaluation: the index moves, the step's gate
    // count grows, and two audit entries (resumed, then the gate) are added.
    let workflow = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    assert_eq!(workflow["current_step_index"], 5);
    assert_eq!(workflow["steps"][1]["gate_count"], 3);
    let added: Vec<_> = app.audit()[audit_before..]
        .iter()
        .map(|entry| {
            let via = entry.record.details.get("via").cloned();
            (entry.record.kind.clone(), via)
        })
        .collect();
    let resumed = ("workflow_resumed".to_owned(), None);
    let gate = ("step_gate".to_owned(), Some(json!("checkpoint_resume")));
    assert_eq!(added, [resumed.clone(), gate.clone(), resumed, gate]);
    app.assert_chain_valid();
}

#[tokio::test]
async fn resumes_refuse_what_cannot_resume() {
    let app = app();
    let nothing = app.create("nothing gated").await;
    let blocked = app.create("only blocked").await;
    app.gate(&blocked, "s1", drop_table()).await;
    let done = app.create("completed").await;
    app.gate(&done, "s1", llm()).await;
    app.post(&format!("/api/v1/workflows/{done}/complete"), Value::Null)
        .await;
    let failed = app.create("failed").await;
    app.post(&format!("/api/v1/workflows/{failed}/fail"), Value::Null)
        .await;
    let blocked_checkpoint = app.checkpoints(&blocked).await[0]["id"].to_string();
    let other_checkpoint = app.checkpoints(&done).await[0]["id"].to_string();
    let audit_before = app.audit().len();

    let cases: Vec<(&str, Answer, StatusCode, &str)> = vec![
        (
            "no checkpoint",
            app.resume_last(&nothing).await,
            StatusCode::CONFLICT,
            "NOT_RESUMABLE",
        ),
        (
            "only a blocked checkpoint",
            app.resume_last(&blocked).await,
            StatusCode::CONFLICT,
            "NOT_RESUMABLE",
        ),
        (
            "completed",
            app.resume_last(&done).await,
            StatusCode::CONFLICT,
            "NOT_RESUMABLE",
        ),
        (
            "failed, by id",
            app.resume(&failed, "1").await,
            StatusCode::CONFLICT,
            "NOT_RESUMABLE",
        ),
        (
            "blocked checkpoint by id",
            app.resume(&blocked, &blocked_checkpoint).await,
            StatusCode::CONFLICT,
            "NOT_RESUMABLE",
        ),
        (
            "another workflow's checkpoint",
            app.resume(&blocked, &other_checkpoint).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            "unknown workflow",
            app.resume_last("wf_00000000-0000-4000-8000-000000000000")
                .await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
    ];
    for (case, answer, status, code) in &cases {
        assert_eq!(answer.status, *status, "{case}: {}", answer.json());
        assert_eq!(answer.json()["code"], *code, "{case}");
    }
    assert_eq!(
        cases[0].1.json()["message"],
        format!("no resumable checkpoint found for workflow {nothing}")
    );
    assert_eq!(
        cases[2].1.json()["message"],
        "cannot resume workflow in terminal state: completed"
    );
    assert_eq!(
        cases[4].1.json()["message"],
        format!("checkpoint {blocked_checkpoint} is not resumable")
    );
    assert_eq!(cases[5].1.json()["message"], "Checkpoint not found");

    // A checkpoint id must be a positive integer: checked before the
    // workflow is looked up.
    for bad in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        let answer = app.resume("wf_unknown", bad).await;
        assert_refused(&answer, StatusCode::BAD_REQUEST, "BAD_REQUEST");
        assert_eq!(answer.json()["message"], "Invalid checkpoint ID", "{bad}");
    }
    assert_eq!(app.audit().len(), audit_before, "refusals are not audited");
}

#[tokio::test]
async fn an_aborted_workflow_revives_only_without_a_hold() {
    let app = app();
    let free = app.create("aborted, no hold").await;
    app.gate(&free, "s1", llm()).await;
    app.post(&format!("/api/v1/workflows/{free}/abort"), Value::Null)
        .await;
    let answer = app.resume_last(&free).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let workflow = app.get(&format!("/api/v1/workflows/{free}")).await.json();
    assert_eq!(workflow["status"], "in_progress");
    for cleared in ["completed_at", "total_steps", "abort_reason"] {
        assert!(workflow.get(cleared).is_none(), "{cleared}: {workflow}");
    }
    let resumed = app
        .audit()
        .into_iter()
        .rfind(|entry| entry.record.kind == "workflow_resumed")
        .unwrap();
    assert_eq!(resumed.record.details["revived"], true);
    // Revived, it takes gates again.
    assert_eq!(app.gate(&free, "s2", llm()).await.status, StatusCode::OK);

    let held = app.create("aborted with a hold").await;
    app.gate(&held, "s1", llm()).await;
    app.gate(&held, "s2", send_email()).await;
    app.post(&format!("/api/v1/workflows/{held}/abort"), Value::Null)
        .await;
    let audit_before = app.audit().len();
    for answer in [app.resume_last(&held).await, app.resume(&held, "1").await] {
        assert_refused(&answer, StatusCode::CONFLICT, "APPROVAL_HOLD");
        assert_eq!(answer.json()["message"], "step s2 holds approval pending");
    }
    assert_eq!(app.status(&held).await, "aborted");
    assert_eq!(app.audit().len(), audit_before);
}

#[tokio::test]
async fn the_concurrency_limit_refuses_creates_and_revivals() {
    let app = limited(2);
    let first = app.create("one").await;
    let second = app.create("two").await;
    let audit_before = app.audit().len();
    let answer = app
        .post("/api/v1/workflows", json!({"workflow_name": "three"}))
        .await;
    assert_refused(
        &answer,
        StatusCode::TOO_MANY_REQUESTS,
        "CONCURRENT_EXECUTION_LIMIT",
    );
    assert_eq!(
        answer.json(),
        json!({"error": "concurrent_execution_limit", "code": "CONCURRENT_EXECUTION_LIMIT",
               "message": "Maximum concurrent workflows reached for this tenant (limit 2)"})
    );
    assert_eq!(app.audit().len(), audit_before, "nothing audited");
    let listed = app.get("/api/v1/workflows").await.json();
    assert_eq!(listed["total"], 2, "nothing stored");

    // Another tenant has its own count.
    let other = app
        .send(
            axum::http::Method::POST,
            "/api/v1/workflows",
            Some(OTHER),
            r#"{"workflow_name":"elsewhere"}"#,
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);

    // Finishing one frees a slot; an aborted workflow may not come back
    // while the tenant is full.
    app.gate(&first, "s1", llm()).await;
    app.post(&format!("/api/v1/workflows/{first}/abort"), Value::Null)
        .await;
    let third = app.create("three").await;
    let revival = app.resume_last(&first).await;
    assert_refused(
        &revival,
        StatusCode::TOO_MANY_REQUESTS,
        "CONCURRENT_EXECUTION_LIMIT",
    );
    assert_eq!(app.status(&first).await, "aborted");
    app.post(&format!("/api/v1/workflows/{third}/complete"), Value::Null)
        .await;
    assert_eq!(app.resume_last(&first).await.status, StatusCode::OK);
    assert_eq!(app.status(&first).await, "in_progress");
    assert_eq!(app.status(&second).await, "in_progress");
}

#[tokio::test]
async fn parallel_creates_never_pass_the_limit() {
    const LIMIT: u32 = 4;
    let app = Arc::new(limited(LIMIT));
    let tasks: Vec<_> = (0..2 * LIMIT)
        .map(|n| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                app.post(
                    "/api/v1/workflows",
                    json!({"workflow_name": format!("w{n}")}),
                )
                .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.status {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}: {}", answer.json()),
        }
    }
    assert_eq!(created, LIMIT);
    let listed = app.get("/api/v1/workflows?status=in_progress").await.json();
    assert_eq!(listed["total"], LIMIT);
}
