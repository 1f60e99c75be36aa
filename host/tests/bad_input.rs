//! Bad input never changes anything (contract §1.4-1.6, §1.8, §11 "Fuzzed
//! input → 4xx only, nothing written"): malformed and truncated JSON,
//! wrong types, duplicate keys, trailing data, random bytes, huge bodies,
//! unknown routes, invalid ids and query values, on every writing route.
//! Each answer is a 4xx JSON envelope and the database is byte-for-byte
//! the same afterwards.

#![allow(clippy::unwrap_used)]

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

mod common;

use common::*;

/// Every row the store keeps, as text: equal snapshots mean nothing was
/// written.
fn snapshot(app: &App) -> String {
    app.database.dump()
}

/// A deterministic byte source (xorshift64*), so a failure replays.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Bodies that are not a valid request for a route taking `valid`: every
/// strict prefix, wrong types for each field, and the classic breakages.
fn broken_bodies(valid: &Value, noise: &mut Noise) -> Vec<Vec<u8>> {
    let text = valid.to_string();
    let mut bodies: Vec<Vec<u8>> = (1..text.len())
        .map(|end| text.as_bytes()[..end].to_vec())
        .collect();
    let object = valid.as_object().unwrap();
    for key in object.keys() {
        for wrong in [
            json!(12),
            json!([1]),
            json!(true),
            json!({"x": 1}),
            json!(-1.5),
        ] {
            let mut changed = object.clone();
            if changed[key].is_object() == wrong.is_object()
                && changed[key].is_number() == wrong.is_number()
            {
                continue;
            }
            changed.insert(key.clone(), wrong);
            bodies.push(Value::Object(changed).to_string().into_bytes());
        }
        // The same key twice.
        let first = format!("\"{key}\"");
        if let Some(at) = text.find(&first) {
            let mut doubled = text.clone();
            doubled.insert_str(at, &format!("{first}:{},", object[key]));
            bodies.push(doubled.into_bytes());
        }
    }
    for classic in [
        "{invalid",
        "[]",
        "\"text\"",
        "42",
        "null{}",
        "{\"a\":1}}",
        "{\"a\":1} trailing",
        "{\"a\":NaN}",
    ] {
        bodies.push(classic.as_bytes().to_vec());
    }
    // A lone surrogate in a field the route reads.
    if let Some(key) = object.keys().next() {
        bodies.push(format!("{{\"{key}\":\"\\ud800\"}}").into_bytes());
    }
    let mut trailing = text.clone().into_bytes();
    trailing.extend_from_slice(b" {}");
    bodies.push(trailing);
    bodies.push(vec![0xff, 0xfe, b'{', b'}']);
    let mut nested = "[".repeat(10_000);
    nested.push_str(&"]".repeat(10_000));
    bodies.push(nested.into_bytes());
    for _ in 0..40 {
        let len = (noise.next() % 64) as usize + 1;
        let mut bytes = noise.bytes(len);
        // Random bytes that happen to start an object still must not pass.
        if noise.next().is_multiple_of(2) {
            bytes.insert(0, b'{');
        }
        bodies.push(bytes);
    }
    bodies
}

fn assert_4xx(answer: &Answer, what: &str) {
    assert!(
        answer.status.is_client_error(),
        "{what}: {} {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let body: Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|_| panic!("{what}: not JSON: {:?}", answer.body));
    let code = body["code"]
        .as_str()
        .or_else(|| body["error"]["code"].as_str());
    assert!(code.is_some(), "{what}: no error code in {body}");
}

#[tokio::test]
async fn fuzzed_bodies_get_4xx_and_write_nothing() {
    let app = app();
    let id = app.create("target").await;
    app.gate(&id, "s1", llm()).await;
    let before = snapshot(&app);
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);

    let routes = [
        (
            "/api/v1/workflows".to_owned(),
            json!({"workflow_name": "w", "source": "external", "metadata": {"a": 1},
                   "trace_id": "t"}),
        ),
        (
            format!("/api/v1/workflows/{id}/steps/s2/gate"),
            json!({"step_type": "tool_call", "step_name": "n", "model": "m",
                   "tool_context": {"tool_name": "x", "tool_input": {}},
                   "step_input": {"k": "v"}, "tokens_in": 1, "cost_usd": 0.5,
                   "retry_policy": "reevaluate", "idempotency_key": "k"}),
        ),
        (
            format!("/api/v1/workflows/{id}/steps/s1/complete"),
            json!({"output": {"ok": true}, "tokens_in": 1, "tokens_out": 2,
                   "cost_usd": 0.1}),
        ),
        (
            format!("/api/v1/workflows/{id}/fail"),
            json!({"reason": "r"}),
        ),
        (
            format!("/api/v1/workflows/{id}/abort"),
            json!({"reason": "r"}),
        ),
        (
            "/api/v1/policies/global/tool-approval/evaluate".to_owned(),
            json!({"step_type": "tool_call", "step_input": {"a": 1}}),
        ),
    ];
    let mut sent = 0;
    for (path, valid) in &routes {
        for body in broken_bodies(valid, &mut noise) {
            let text = String::from_utf8_lossy(&body).into_owned();
            let answer = app.send_bytes(Method::POST, path, None, body.clone()).await;
            // A prefix or a random string may still be a valid request for
            // a route whose body is optional or lenient: those must not be
            // 5xx, and the snapshot check below catches any write.
            if answer.status.is_success() {
                panic!("{path} accepted broken body {text:?}");
            }
            assert_4xx(&answer, &format!("{path} {text:?}"));
            sent += 1;
        }
    }
    assert!(sent > 500, "only {sent} bodies sent");
    assert_eq!(snapshot(&app), before, "a refused request wrote something");
}

#[tokio::test]
async fn bad_paths_queries_and_sizes_get_4xx_and_write_nothing() {
    let app = app();
    let id = app.create("target").await;
    app.gate(&id, "s1", llm()).await;
    let before = snapshot(&app);
    let long_step = "s".repeat(256);
    let over_cap = vec![b' '; 1_048_577];
    let unknown = "wf_00000000-0000-4000-8000-000000000000";
    // (method, path, body, status)
    let cases: Vec<(Method, String, Vec<u8>, StatusCode)> = vec![
        (
            Method::GET,
            "/api/v1/nope".into(),
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/workflows/".into(),
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            format!("/api/v1/workflows/{id}"),
            vec![],
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::PUT,
            "/api/v1/workflows".into(),
            b"{}".to_vec(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            format!("/api/v1/workflows/{unknown}"),
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/workflows/not-an-id".into(),
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/workflows/{unknown}/steps/s1/gate"),
            br#"{"step_type":"llm_call"}"#.to_vec(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/workflows/{unknown}/complete"),
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/workflows/{id}/steps/{long_step}/gate"),
            br#"{"step_type":"llm_call"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/api/v1/workflows/{id}/steps/{long_step}/complete"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/api/v1/workflows/{id}/steps/never/complete"),
            vec![],
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/workflows/{id}/checkpoints/x/resume"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("/api/v1/workflows/{id}/steps/s2/gate"),
            over_cap.clone(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Method::POST,
            "/api/v1/workflows".into(),
            over_cap.clone(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Method::POST,
            format!("/api/v1/workflows/{id}/fail"),
            over_cap,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Method::POST,
            format!("/api/v1/workflows/{id}/steps/s2/gate"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/workflows".into(),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/workflows?limit=-1".into(),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/workflows?limit=0".into(),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/workflows?limit=abc".into(),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/workflows?offset=-1".into(),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/audit?limit=-1".into(),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/audit?since=never".into(),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/policies/global/unknown/evaluate".into(),
            br#"{"step_type":"x"}"#.to_vec(),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, path, body, status) in cases {
        let what = format!("{method} {}", &path[..path.len().min(120)]);
        let answer = app.send_bytes(method, &path, None, body).await;
        assert_eq!(
            answer.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_4xx(&answer, &what);
    }
    assert_eq!(snapshot(&app), before, "a refused request wrote something");
}
