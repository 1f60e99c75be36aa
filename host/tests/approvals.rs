//! Approvals, the pending list and approval expiry (contract §2.10-2.12,
//! §3.2) through the real router (`oneshot`), each test with its own
//! database; `send_email()` is held by the fixture's tool-approval policy.
//! The sweeper is tested on a real server (`host::run`), since only the
//! server starts it.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use host::approval::{ExpiredHold, expire_due};
use host::config::ServeConfig;
use host::store::{DueScope, StepRow};

mod common;

use common::*;

const COMMENT: &str = "Checked the recipient list";
const REASON: &str = "Recipient is outside the company";

/// `approval_status` as no answer may ever carry it (contract §2.2).
const EXPIRED_STATUS: &str = r#""approval_status":"expired""#;

fn step_uri(id: &str, step: &str, verb: &str) -> String {
    format!("/api/v1/workflows/{id}/steps/{step}/{verb}")
}

impl App {
    /// A new workflow whose step `mail` is held for approval; returns its
    /// id and the gate's answer.
    async fn held(&self) -> (String, Value) {
        let id = self.create("mailer").await;
        let gate = self.gate(&id, "mail", send_email()).await.json();
        assert_eq!(gate["decision"], "require_approval", "{gate}");
        (id, gate)
    }

    async fn approve(&self, id: &str, step: &str, body: Value) -> Answer {
        self.post(&step_uri(id, step, "approve"), body).await
    }

    async fn reject(&self, id: &str, step: &str, body: Value) -> Answer {
        self.post(&step_uri(id, step, "reject"), body).await
    }

    fn stored_step(&self, id: &str, step: &str) -> StepRow {
        self.store
            .read(|conn| conn.find_step(id, step))
            .unwrap()
            .unwrap()
    }

    fn stored_status(&self, id: &str) -> String {
        self.store
            .read(|conn| conn.workflow_by_id(id))
            .unwrap()
            .unwrap()
            .status
    }
}

/// A workflow of the tenant `other` whose step `mail` is held.
async fn other_hold(app: &App) -> String {
    let created = app
        .send(
            Method::POST,
            "/api/v1/workflows",
            Some(OTHER),
            r#"{"workflow_name":"theirs"}"#,
        )
        .await
        .json();
    let id = created["workflow_id"].as_str().unwrap().to_owned();
    let gate = app
        .send(
            Method::POST,
            &step_uri(&id, "mail", "gate"),
            Some(OTHER),
            &send_email().to_string(),
        )
        .await
        .json();
    assert_eq!(gate["decision"], "require_approval", "{gate}");
    id
}

fn approval_id_of(id: &str, step: &str) -> String {
    let namespace = uuid::Uuid::parse_str("a1b2c3d4-e5f6-7890-abcd-ef1234567890").unwrap();
    uuid::Uuid::new_v5(&namespace, format!("{id}:{step}").as_bytes()).to_string()
}

fn assert_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    assert!(
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
            && text.len() == 27
            && text.ends_with('Z'),
        "{text}"
    );
}

#[tokio::test]
async fn approve_sets_approved_allow_the_actor_and_a_uuid_v5_approval_id() {
    let app = app();
    let (id, gate) = app.held().await;
    let before = app.audit().len();

    let answer = app.approve(&id, "mail", json!({"comment": COMMENT})).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    let expected = json!({
        "workflow_id": id, "step_id": "mail", "status": "approved",
        "approval_status": "approved", "decision": "allow",
        "reason": format!("Approved: {}", gate["reason"].as_str().unwrap()),
        "approval_id": approval_id_of(&id, "mail"), "approved_by": "community",
        "approved_at": body["approved_at"], "policies_matched": gate["policies_matched"],
        "retry_context": body["retry_context"], "message": "Step approved",
    });
    assert_eq!(body, expected);
    assert_timestamp(&body["approved_at"]);
    // As on the gate, but no gate is counted.
    let retry = &body["retry_context"];
    assert_eq!(retry.as_object().unwrap().len(), 10, "{retry}");
    assert_eq!(retry["gate_count"], 1);
    assert_eq!(retry["prior_completion_status"], "gated_not_completed");
    assert_eq!(retry["last_decision"], "require_approval");
    assert_eq!(
        retry["last_attempt_at"],
        gate["retry_context"]["last_attempt_at"]
    );

    let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    let step = &got["steps"][0];
    assert_eq!(step["approval_status"], "approved");
    assert_eq!(step["approved_by"], "community");
    assert_eq!(step["approved_at"], body["approved_at"]);
    assert_eq!(
        step["decision"], "require_approval",
        "the stored decision stays"
    );
    assert_eq!(step["gate_count"], 1);
    assert_eq!(got["status"], "in_progress");
    assert_eq!(
        app.stored_step(&id, "mail").approval_comment.as_deref(),
        Some(COMMENT)
    );

    let audit = app.audit();
    assert_eq!(audit.len(), before + 1);
    let entry = &audit[before].record;
    assert_eq!(entry.kind, "step_approved");
    assert_eq!(entry.actor, "community");
    assert_eq!(entry.step_id.as_deref(), Some("mail"));
    assert_eq!(entry.decision.map(|d| d.as_str()), Some("allow"));
    assert_eq!(entry.reason.as_deref(), Some(COMMENT));
    assert_eq!(entry.details["approval_id"], approval_id_of(&id, "mail"));
    app.assert_chain_valid();

    // The approver comes from the credentials: another tenant's own hold.
    let theirs = other_hold(&app).await;
    let comment = json!({"comment": COMMENT}).to_string();
    let uri = step_uri(&theirs, "mail", "approve");
    let approved = app.send(Method::POST, &uri, Some(OTHER), &comment).await;
    assert_eq!(approved.status, StatusCode::OK);
    assert_eq!(approved.json()["approved_by"], "other");
}

#[tokio::test]
async fn a_regate_after_approve_allows_as_previously_approved() {
    let app = app();
    let (id, gate) = app.held().await;
    app.approve(&id, "mail", json!({"comment": COMMENT})).await;

    let again = app.gate(&id, "mail", send_email()).await.json();
    assert_eq!(again["decision"], "allow");
    assert_eq!(
        again["reason"],
        format!("Previously approved: {}", gate["reason"].as_str().unwrap())
    );
    assert_eq!(again["cached"], true);
    assert!(again.get("approval_id").is_none(), "{again}");
    // Nothing holds the workflow any more.
    let other = app.gate(&id, "s2", llm()).await;
    assert_eq!(other.status, StatusCode::OK);
    let complete = app
        .post(&format!("/api/v1/workflows/{id}/complete"), Value::Null)
        .await;
    assert_eq!(complete.status, StatusCode::OK);
}

#[tokio::test]
async fn a_comment_is_counted_in_characters_after_trimming() {
    let app = app();
    let (id, _) = app.held().await;
    // Ten characters, thirty bytes, with white space around them that
    // `trim` and the document's pattern both discard.
    let answer = app
        .approve(
            &id,
            "mail",
            json!({"comment": "\u{3000} 承認しました、どうぞ\n"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json());
    assert_eq!(answer.json()["status"], "approved");
    assert_eq!(
        app.stored_step(&id, "mail").approval_comment.as_deref(),
        Some("承認しました、どうぞ")
    );
}

#[tokio::test]
async fn bad_comments_and_reasons_get_400_and_write_nothing() {
    let app = app();
    let (id, _) = app.held().await;
    let comment_required = "Comment is required (minimum 10 characters)";
    let reason_required = "Reason is required (minimum 10 characters)";
    let invalid = "Invalid request body";
    let long_step = "s".repeat(256);
    let (id, long_step) = (id.as_str(), long_step.as_str());
    // (name, verb, workflow, step, raw body, message prefix)
    let cases = [
        ("no body", "approve", id, "mail", "", comment_required),
        (
            "blank body",
            "approve",
            id,
            "mail",
            "  \n",
            comment_required,
        ),
        (
            "empty object",
            "approve",
            id,
            "mail",
            "{}",
            comment_required,
        ),
        (
            "null comment",
            "approve",
            id,
            "mail",
            r#"{"comment":null}"#,
            comment_required,
        ),
        (
            "ok",
            "approve",
            id,
            "mail",
            r#"{"comment":"ok"}"#,
            comment_required,
        ),
        (
            "short once trimmed",
            "approve",
            id,
            "mail",
            r#"{"comment":"   ok  ok    "}"#,
            comment_required,
        ),
        (
            "nine bytes",
            "approve",
            id,
            "mail",
            r#"{"comment":"123456789"}"#,
            comment_required,
        ),
        (
            "six characters in eighteen bytes",
            "approve",
            id,
            "mail",
            r#"{"comment":"承認しました"}"#,
            comment_required,
        ),
        (
            "reason on approve",
            "approve",
            id,
            "mail",
            r#"{"reason":"a fine reason"}"#,
            comment_required,
        ),
        ("json string", "approve", id, "mail", r#""ok""#, invalid),
        ("malformed", "approve", id, "mail", "{invalid", invalid),
        (
            "wrong type",
            "approve",
            id,
            "mail",
            r#"{"comment":12345678901}"#,
            invalid,
        ),
        (
            "duplicate key",
            "approve",
            id,
            "mail",
            r#"{"comment":"a long comment","comment":"a long comment"}"#,
            invalid,
        ),
        (
            "trailing data",
            "approve",
            id,
            "mail",
            r#"{"comment":"a long comment"} x"#,
            invalid,
        ),
        ("reject: no body", "reject", id, "mail", "", reason_required),
        (
            "reject: empty object",
            "reject",
            id,
            "mail",
            "{}",
            reason_required,
        ),
        (
            "reject: ok",
            "reject",
            id,
            "mail",
            r#"{"reason":"ok"}"#,
            reason_required,
        ),
        (
            "comment on reject",
            "reject",
            id,
            "mail",
            r#"{"comment":"a fine comment"}"#,
            reason_required,
        ),
        (
            "input before state",
            "approve",
            "wf_missing",
            "mail",
            "{}",
            comment_required,
        ),
        (
            "step id before body",
            "approve",
            id,
            long_step,
            "{invalid",
            "step_id must be at most 255 characters",
        ),
    ];
    let before = app.audit().len();
    for (name, verb, workflow, step, body, message) in cases {
        let answer = app
            .send(Method::POST, &step_uri(workflow, step, verb), None, body)
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
        let error = answer.json();
        assert_eq!(error["code"], "BAD_REQUEST", "{name}");
        assert_eq!(error["error"], "bad_request", "{name}");
        assert!(
            error["message"].as_str().unwrap().starts_with(message),
            "{name}: {error}"
        );
    }
    let huge = json!({"comment": "x".repeat(1_048_576)}).to_string();
    let too_large = app
        .send(Method::POST, &step_uri(id, "mail", "approve"), None, &huge)
        .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.json()["limit_bytes"], 1_048_576);

    assert_eq!(app.audit().len(), before, "refusals are not audited");
    assert_eq!(
        app.stored_step(id, "mail").approval_status.as_deref(),
        Some("pending")
    );
    // Ten characters after trimming are needed, however many bytes.
    let five_chars = app
        .approve(id, "mail", json!({"comment": "  ééééé  "}))
        .await;
    assert_eq!(five_chars.status, StatusCode::BAD_REQUEST);
    let ten_chars = app
        .approve(id, "mail", json!({"comment": "  éééééééééé  "}))
        .await;
    assert_eq!(ten_chars.status, StatusCode::OK);
}

#[tokio::test]
async fn approve_and_reject_refuse_unknown_unneeded_decided_and_ended_holds() {
    let app = app();
    let (running, _) = app.held().await;
    let allowed = app.create("allowed").await;
    app.gate(&allowed, "s1", llm()).await;
    let (twice, _) = app.held().await;
    assert_eq!(
        app.approve(&twice, "mail", json!({"comment": COMMENT}))
            .await
            .status,
        StatusCode::OK
    );
    let (aborted, _) = app.held().await;
    app.post(&format!("/api/v1/workflows/{aborted}/abort"), Value::Null)
        .await;
    let (failed, _) = app.held().await;
    app.post(&format!("/api/v1/workflows/{failed}/fail"), Value::Null)
        .await;
    let foreign = other_hold(&app).await;

    let ids = [&running, &allowed, &twice, &aborted, &failed, &foreign].map(String::as_str);
    let [running, allowed, twice, aborted, failed, foreign] = ids;
    // (name, workflow, step, status, code, message)
    let cases = [
        (
            "unknown workflow",
            "wf_missing",
            "mail",
            404,
            "NOT_FOUND",
            "Workflow not found",
        ),
        (
            "foreign workflow",
            foreign,
            "mail",
            404,
            "NOT_FOUND",
            "Workflow not found",
        ),
        (
            "unknown step",
            running,
            "nope",
            404,
            "NOT_FOUND",
            "Step not found",
        ),
        (
            "allow step",
            allowed,
            "s1",
            409,
            "NO_APPROVAL_NEEDED",
            "step does not require approval",
        ),
        (
            "approved already",
            twice,
            "mail",
            409,
            "NOT_PENDING",
            "step is not pending approval",
        ),
        (
            "aborted workflow",
            aborted,
            "mail",
            409,
            "WORKFLOW_TERMINAL",
            "workflow is in terminal state: aborted",
        ),
        (
            "failed workflow",
            failed,
            "mail",
            409,
            "WORKFLOW_TERMINAL",
            "workflow is in terminal state: failed",
        ),
    ];
    let unknown = app
        .approve("wf_missing", "mail", json!({"comment": COMMENT}))
        .await;
    let before = app.audit().len();
    for verb in ["approve", "reject"] {
        for (name, workflow, step, status, code, message) in &cases {
            let body = json!({"comment": COMMENT, "reason": REASON});
            let answer = app.post(&step_uri(workflow, step, verb), body).await;
            assert_eq!(answer.status.as_u16(), *status, "{verb} {name}");
            let error = answer.json();
            assert_eq!(error["code"], *code, "{verb} {name}");
            assert_eq!(error["message"], *message, "{verb} {name}");
            if *name == "foreign workflow" {
                assert_eq!(answer.body, unknown.body, "byte-identical 404");
            }
        }
    }
    assert_eq!(app.audit().len(), before, "refusals are not audited");
    // A refused decision leaves the hold as it was.
    for workflow in [aborted, failed] {
        assert_eq!(
            app.stored_step(workflow, "mail").approval_status.as_deref(),
            Some("pending")
        );
    }
}

#[tokio::test]
async fn reject_blocks_the_step_and_aborts_the_workflow_for_good() {
    let app = app();
    let (id, gate) = app.held().await;
    let before = app.audit().len();

    let answer = app.reject(&id, "mail", json!({"reason": REASON})).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    let expected = json!({
        "workflow_id": id, "step_id": "mail", "status": "rejected",
        "approval_status": "rejected", "decision": "block",
        "reason": format!("Rejected: {}", gate["reason"].as_str().unwrap()),
        "approval_id": approval_id_of(&id, "mail"), "rejected_by": "community",
        "rejected_at": body["rejected_at"], "policies_matched": gate["policies_matched"],
        "retry_context": body["retry_context"], "message": "Step rejected, workflow aborted",
    });
    assert_eq!(body, expected);
    assert_timestamp(&body["rejected_at"]);
    assert_eq!(body["retry_context"]["gate_count"], 1);

    let got = app.get(&format!("/api/v1/workflows/{id}")).await.json();
    assert_eq!(got["status"], "aborted");
    assert_eq!(got["abort_reason"], "Step mail rejected by community");
    assert_timestamp(&got["completed_at"]);
    let step = &got["steps"][0];
    assert_eq!(step["approval_status"], "rejected");
    assert_eq!(step["approved_by"], "community");
    assert_eq!(step["approved_at"], body["rejected_at"]);
    assert!(step.get("approval_expired").is_none());

    let audit = app.audit();
    let kinds: Vec<&str> = audit[before..]
        .iter()
        .map(|e| e.record.kind.as_str())
        .collect();
    assert_eq!(kinds, ["step_rejected", "workflow_aborted"]);
    let (rejected, aborted) = (&audit[before].record, &audit[before + 1].record);
    assert_eq!(rejected.decision.map(|d| d.as_str()), Some("block"));
    assert_eq!(rejected.reason.as_deref(), Some(REASON));
    assert_eq!(rejected.details["approval_id"], approval_id_of(&id, "mail"));
    assert_eq!(aborted.actor, "community");
    assert_eq!(
        aborted.reason.as_deref(),
        Some("Step mail rejected by community")
    );
    assert_eq!(aborted.details["cause"], "rejected");
    assert_eq!(aborted.at, rejected.at, "one transaction, one time");

    // The rejection is final.
    let before = app.audit().len();
    let refusals = [
        (
            "approve after",
            step_uri(&id, "mail", "approve"),
            "NOT_PENDING",
        ),
        (
            "reject again",
            step_uri(&id, "mail", "reject"),
            "NOT_PENDING",
        ),
        (
            "resume",
            format!("/api/v1/workflows/{id}/resume"),
            "WORKFLOW_TERMINAL",
        ),
        (
            "re-gate",
            step_uri(&id, "mail", "gate"),
            "WORKFLOW_TERMINAL",
        ),
    ];
    for (name, uri, code) in refusals {
        let body = json!({"comment": COMMENT, "reason": REASON, "step_type": "tool_call",
                          "tool_context": {"tool_name": "send_email"}});
        let answer = app.post(&uri, body).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{name}");
        assert_eq!(answer.json()["code"], code, "{name}");
    }
    assert_eq!(app.audit().len(), before, "refusals are not audited");
    app.assert_chain_valid();
}

#[tokio::test]
async fn pending_lists_only_the_callers_holds_of_running_workflows_newest_first() {
    let app = app();
    let empty = app.get("/api/v1/workflows/approvals/pending").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json(), json!({"pending_approvals": [], "count": 0}));

    let (first, _) = app.held().await;
    let (second, _) = app.held().await;
    let third = app.create("named").await;
    let mut named = send_email();
    named["step_name"] = json!("Send the invoice");
    named["step_input"] = json!({"to": "a@example.com"});
    let held = app.gate(&third, "mail", named).await.json();
    // Not listed: an aborted workflow's hold, an approved hold, an allowed
    // step, another tenant's hold.
    let (aborted, _) = app.held().await;
    app.post(&format!("/api/v1/workflows/{aborted}/abort"), Value::Null)
        .await;
    let (approved, _) = app.held().await;
    app.approve(&approved, "mail", json!({"comment": COMMENT}))
        .await;
    let allowed = app.create("allowed").await;
    app.gate(&allowed, "s1", llm()).await;
    let foreign = other_hold(&app).await;

    let before = app.audit().len();
    let answer = app.get("/api/v1/workflows/approvals/pending").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["count"], 3);
    let ids: Vec<&str> = body["pending_approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["workflow_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [third.as_str(), &second, &first], "newest hold first");
    let entry = &body["pending_approvals"][0];
    let stored = app.stored_step(&third, "mail");
    let expected = json!({
        "workflow_id": third, "workflow_name": "named", "step_id": "mail", "step_index": 1,
        "step_name": "Send the invoice", "step_type": "tool_call",
        "decision": "require_approval", "decision_reason": held["reason"],
        "policies_matched": held["policies_matched"], "step_input": {"to": "a@example.com"},
        "approval_status": "pending", "approval_id": held["approval_id"],
        "created_at": stored.approval_requested_at, "expires_at": stored.expires_at,
    });
    assert_eq!(*entry, expected);
    assert!(entry["expires_at"].as_str() > entry["created_at"].as_str());
    assert!(body["pending_approvals"][1].get("step_name").is_none());

    // `limit` as the workflow list's: capped, never echoed, validated.
    // (name, query, entries or None for 400)
    let pages = [
        ("limit 2", "?limit=2", Some(2)),
        ("limit 1", "?limit=1", Some(1)),
        ("limit 500 is capped", "?limit=500", Some(3)),
        ("unknown parameters ignored", "?offset=abc&x=1", Some(3)),
        ("zero", "?limit=0", None),
        ("negative", "?limit=-1", None),
        ("not a number", "?limit=abc", None),
    ];
    for (name, query, entries) in pages {
        let answer = app
            .get(&format!("/api/v1/workflows/approvals/pending{query}"))
            .await;
        match entries {
            Some(entries) => {
                assert_eq!(answer.status, StatusCode::OK, "{name}");
                let body = answer.json();
                assert_eq!(
                    body["pending_approvals"].as_array().unwrap().len(),
                    entries,
                    "{name}"
                );
                assert_eq!(body["count"], 3, "{name}: count is all matches");
            }
            None => {
                assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
                assert_eq!(answer.json()["message"], "limit must be a positive integer");
            }
        }
    }

    let theirs = app
        .send(
            Method::GET,
            "/api/v1/workflows/approvals/pending",
            Some(OTHER),
            "",
        )
        .await
        .json();
    assert_eq!(theirs["count"], 1);
    assert_eq!(
        theirs["pending_approvals"][0]["workflow_id"],
        foreign.as_str()
    );
    assert_eq!(app.audit().len(), before, "reads are not audited");
}

#[tokio::test]
async fn an_expired_hold_reads_as_rejected_aborts_its_workflow_and_refuses_approval() {
    let app = app_with(ServeConfig {
        approval_ttl: Duration::ZERO,
        ..ServeConfig::default()
    });
    let mut answers: Vec<Answer> = Vec::new();
    let (id, gate) = app.held().await;
    let before = app.audit().len();

    let got = app.get(&format!("/api/v1/workflows/{id}")).await;
    let body = got.json();
    assert_eq!(body["status"], "aborted");
    assert_eq!(body["abort_reason"], "Step mail auto-expired");
    let step = &body["steps"][0];
    assert_eq!(step["approval_status"], "rejected");
    assert_eq!(step["approval_expired"], true);
    assert_eq!(step["approved_by"], "system:auto-expired");
    let stored = app.stored_step(&id, "mail");
    assert_eq!(stored.approval_status.as_deref(), Some("expired"));
    assert_eq!(
        step["approved_at"],
        json!(stored.expires_at),
        "decided at its expiry"
    );
    answers.push(got);

    let audit = app.audit();
    let kinds: Vec<&str> = audit[before..]
        .iter()
        .map(|e| e.record.kind.as_str())
        .collect();
    assert_eq!(kinds, ["approval_expired", "workflow_aborted"]);
    let (expired, aborted) = (&audit[before].record, &audit[before + 1].record);
    assert_eq!(expired.actor, "system");
    assert_eq!(
        expired.tenant, "community",
        "in the workflow's tenant chain"
    );
    assert_eq!(expired.step_id.as_deref(), Some("mail"));
    assert_eq!(expired.decision.map(|d| d.as_str()), Some("block"));
    assert_eq!(expired.details["approval_id"], gate["approval_id"]);
    assert_eq!(expired.details["expires_at"], json!(stored.expires_at));
    assert_eq!(aborted.actor, "system");
    assert_eq!(aborted.reason.as_deref(), Some("Step mail auto-expired"));
    assert_eq!(aborted.details["cause"], "expired");
    app.assert_chain_valid();

    // Decided for good: refused, and nothing more is written.
    let before = app.audit().len();
    for verb in ["approve", "reject"] {
        let body = json!({"comment": COMMENT, "reason": REASON});
        let answer = app.post(&step_uri(&id, "mail", verb), body).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{verb}");
        let error = answer.json();
        assert_eq!(error["code"], "APPROVAL_EXPIRED", "{verb}");
        assert_eq!(error["message"], "approval for step mail expired", "{verb}");
        answers.push(answer);
    }
    assert_eq!(app.audit().len(), before, "refusals are not audited");

    let regate = app.gate(&id, "mail", send_email()).await;
    assert_eq!(regate.json()["code"], "WORKFLOW_TERMINAL");
    answers.push(regate);
    answers.push(app.get("/api/v1/workflows/approvals/pending").await);
    answers.push(app.get("/api/v1/workflows").await);
    assert_eq!(
        answers.last().unwrap().json()["workflows"][0]["status"],
        "aborted"
    );
    for answer in &answers {
        let text = String::from_utf8_lossy(&answer.body);
        assert!(!text.contains(EXPIRED_STATUS), "{text}");
    }
    assert_eq!(
        answers[answers.len() - 2].json(),
        json!({"pending_approvals": [], "count": 0})
    );
    let metrics = app.get("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("wcp_approvals_expired_total 1"), "{text}");
}

#[tokio::test]
async fn every_request_touching_a_workflow_applies_its_due_expiries_first() {
    let app = app_with(ServeConfig {
        approval_ttl: Duration::ZERO,
        ..ServeConfig::default()
    });
    let workflow = |id: &str, tail: &str| format!("/api/v1/workflows/{id}{tail}");
    // (route, method, path tail after the workflow id or None for a
    // tenant-wide list, body, status, code). Without the expiry first,
    // complete would answer APPROVAL_PENDING, approve 200, and so on.
    type Touch = (
        &'static str,
        Method,
        Option<&'static str>,
        Value,
        u16,
        Option<&'static str>,
    );
    let cases: [Touch; 14] = [
        ("get", Method::GET, Some(""), Value::Null, 200, None),
        ("list", Method::GET, None, Value::Null, 200, None),
        ("pending", Method::GET, None, Value::Null, 200, None),
        (
            "gate",
            Method::POST,
            Some("/steps/mail/gate"),
            send_email(),
            409,
            Some("WORKFLOW_TERMINAL"),
        ),
        (
            "other gate",
            Method::POST,
            Some("/steps/s2/gate"),
            llm(),
            409,
            Some("WORKFLOW_TERMINAL"),
        ),
        (
            "step complete",
            Method::POST,
            Some("/steps/mail/complete"),
            Value::Null,
            204,
            None,
        ),
        (
            "complete",
            Method::POST,
            Some("/complete"),
            Value::Null,
            409,
            Some("WORKFLOW_TERMINAL"),
        ),
        (
            "fail",
            Method::POST,
            Some("/fail"),
            Value::Null,
            409,
            Some("WORKFLOW_TERMINAL"),
        ),
        (
            "abort",
            Method::POST,
            Some("/abort"),
            Value::Null,
            409,
            Some("WORKFLOW_TERMINAL"),
        ),
        (
            "resume",
            Method::POST,
            Some("/resume"),
            Value::Null,
            409,
            Some("WORKFLOW_TERMINAL"),
        ),
        (
            "approve",
            Method::POST,
            Some("/steps/mail/approve"),
            json!({"comment": COMMENT}),
            409,
            Some("APPROVAL_EXPIRED"),
        ),
        (
            "reject",
            Method::POST,
            Some("/steps/mail/reject"),
            json!({"reason": REASON}),
            409,
            Some("APPROVAL_EXPIRED"),
        ),
        (
            "checkpoints",
            Method::GET,
            Some("/checkpoints"),
            Value::Null,
            200,
            None,
        ),
        (
            "checkpoint resume",
            Method::POST,
            Some("/checkpoints/resume"),
            Value::Null,
            409,
            Some("APPROVAL_HOLD"),
        ),
    ];
    for (name, method, tail, body, status, code) in cases {
        let (id, _) = app.held().await;
        assert_eq!(
            app.stored_status(&id),
            "in_progress",
            "{name}: nothing expires by itself"
        );
        let uri = match (tail, name) {
            (Some(tail), _) => workflow(&id, tail),
            (None, "pending") => "/api/v1/workflows/approvals/pending".to_owned(),
            (None, _) => "/api/v1/workflows".to_owned(),
        };
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let answer = app.send(method, &uri, None, &text).await;
        assert_eq!(answer.status.as_u16(), status, "{name}");
        if let Some(code) = code {
            assert_eq!(answer.json()["code"], code, "{name}");
        }
        assert!(
            !String::from_utf8_lossy(&answer.body).contains(EXPIRED_STATUS),
            "{name}"
        );
        assert_eq!(
            app.stored_step(&id, "mail").approval_status.as_deref(),
            Some("expired"),
            "{name}"
        );
        assert_eq!(app.stored_status(&id), "aborted", "{name}");
    }
    app.assert_chain_valid();
}

#[tokio::test]
async fn expiry_passes_keep_to_their_scope_and_an_ended_workflows_status() {
    let app = app();
    let (failed, _) = app.held().await;
    // Failing leaves the hold pending (contract §2.7) until it expires.
    let answer = app
        .post(
            &format!("/api/v1/workflows/{failed}/fail"),
            json!({"reason": "gave up"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let (running, _) = app.held().await;
    let theirs = other_hold(&app).await;

    // Passes run as if a day and more had gone by.
    let expire = |scope: DueScope| {
        app.store
            .submit(move |tx| expire_due(tx, &scope, "9999-12-31T23:59:59.999999Z"))
            .unwrap()
    };
    let before = app.audit().len();
    let expired = expire(DueScope::Workflow(failed.clone()));
    let hold = |id: &str, aborted| ExpiredHold {
        workflow_id: id.to_owned(),
        step_id: "mail".into(),
        aborted,
    };
    assert_eq!(expired, [hold(&failed, false)]);
    assert_eq!(app.stored_status(&failed), "failed");
    let got = app.get(&format!("/api/v1/workflows/{failed}")).await.json();
    assert_eq!(got["failure_reason"], "gave up");
    assert!(got.get("abort_reason").is_none(), "{got}");
    let kinds: Vec<String> = app.audit()[before..]
        .iter()
        .map(|e| e.record.kind.clone())
        .collect();
    assert_eq!(kinds, ["approval_expired"], "no abort of an ended workflow");

    let tenant = DueScope::Tenant {
        tenant: "community".into(),
        org: "default".into(),
    };
    assert_eq!(expire(tenant.clone()), [hold(&running, true)]);
    assert!(expire(tenant).is_empty(), "nothing is expired twice");
    assert_eq!(
        app.stored_step(&theirs, "mail").approval_status.as_deref(),
        Some("pending"),
        "another tenant's hold is not in this tenant's scope"
    );
    assert_eq!(expire(DueScope::All), [hold(&theirs, true)]);
    app.assert_chain_valid();
}

/// One HTTP/1.1 exchange on a fresh connection: (status, body).
async fn http(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: wcp\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Polls `check` every 20 ms until it holds; fails after a deadline far
/// beyond any sweep interval, so a slow machine never fails it.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn install_tool_approval(policies: &Path) {
    let global = policies.join("global");
    std::fs::create_dir_all(&global).unwrap();
    std::fs::copy(
        wcp_test_artifacts::TOOL_APPROVAL,
        global.join("tool-approval.wasm"),
    )
    .unwrap();
    std::fs::write(
        global.join("tool-approval.toml"),
        "step_types = [\"tool_call\"]\n",
    )
    .unwrap();
}

#[tokio::test]
async fn the_sweeper_expires_a_hold_no_request_touches_and_stops_with_the_server() {
    let data = tempfile::tempdir().unwrap();
    let policies = data.path().join("policies");
    install_tool_approval(&policies);
    let config = ServeConfig {
        data_dir: data.path().to_owned(),
        policy_dir: policies,
        approval_ttl: Duration::from_millis(1),
        approval_sweep: Duration::from_millis(20),
        ..ServeConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(host::run(config, listener, async {
        let _ = stopped.await;
    }));
    let mut ready = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready && Instant::now() < deadline {
        ready = http(address, "GET", "/ready", "").await.0 == 200;
        if !ready {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(ready, "the server never became ready");

    let (status, created) = http(
        address,
        "POST",
        "/api/v1/workflows",
        r#"{"workflow_name":"w"}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();
    let id = created["workflow_id"].as_str().unwrap().to_owned();
    let (status, gate) = http(
        address,
        "POST",
        &step_uri(&id, "mail", "gate"),
        &send_email().to_string(),
    )
    .await;
    assert_eq!(status, 200, "{gate}");
    assert!(gate.contains(r#""decision":"require_approval""#), "{gate}");

    // No request touches the workflow from here on; the store shows the
    // sweeper's work.
    let conn = host::store::open_read_only(data.path()).unwrap();
    eventually("the sweeper expires the hold", || {
        let step = conn.find_step(&id, "mail").unwrap().unwrap();
        step.approval_status.as_deref() == Some("expired")
    })
    .await;
    let workflow = conn.workflow_by_id(&id).unwrap().unwrap();
    assert_eq!(workflow.status, "aborted");
    assert_eq!(
        workflow.abort_reason.as_deref(),
        Some("Step mail auto-expired")
    );
    let filter = host::store::AuditFilter::default();
    let (entries, _) = conn.audit_entries("community", &filter).unwrap();
    let kinds: Vec<&str> = entries.iter().map(|e| e.record.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "workflow_created",
            "step_gate",
            "approval_expired",
            "workflow_aborted"
        ]
    );
    let report = conn.verify_chain("community").unwrap();
    assert!(report.valid, "{report:?}");
    let (_, metrics) = http(address, "GET", "/metrics", "").await;
    assert!(
        metrics.contains("wcp_approvals_expired_total 1"),
        "{metrics}"
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server and its sweeper stop")
        .unwrap()
        .unwrap();
}
