//! The audit routes (contract §7, §11) through the real router: listing
//! with every filter and paging rule, tenant isolation, and verification
//! that finds an entry edited by hand in the database.

#![allow(clippy::unwrap_used)]

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

mod common;

use common::*;

impl App {
    async fn audit_page(&self, query: &str) -> Answer {
        self.get(&format!("/api/v1/audit{query}")).await
    }

    /// A workflow with a fresh gate, a cached re-gate and a step complete:
    /// four entries.
    async fn busy_workflow(&self, name: &str) -> String {
        let id = self.create(name).await;
        self.gate(&id, "s1", llm()).await;
        self.gate(&id, "s1", llm()).await;
        self.post(
            &format!("/api/v1/workflows/{id}/steps/s1/complete"),
            Value::Null,
        )
        .await;
        id
    }
}

fn kinds(page: &Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_list_filters_and_pages_the_callers_chain() {
    let app = app();
    let first = app.busy_workflow("first").await;
    let second = app.busy_workflow("second").await;

    let all = app.audit_page("").await;
    assert_eq!(all.status, StatusCode::OK);
    let all = all.json();
    assert_eq!(all["total"], 8);
    assert_eq!(all["limit"], 100);
    assert_eq!(all["offset"], 0);
    assert_eq!(all["has_more"], false);
    let entries = all["entries"].as_array().unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>(), "ascending seq");
    let step_gates: Vec<_> = entries
        .iter()
        .filter(|e| e["kind"] == "step_gate")
        .map(|e| e["details"]["cached"].clone())
        .collect();
    assert_eq!(
        step_gates,
        [json!(false), json!(true), json!(false), json!(true)]
    );
    for entry in entries {
        for key in [
            "at",
            "tenant",
            "org",
            "actor",
            "kind",
            "details",
            "prev_hash",
            "hash",
        ] {
            assert!(entry.get(key).is_some(), "{key} missing: {entry}");
        }
        assert_eq!(entry["tenant"], "community");
    }
    let middle = entries[4]["at"].as_str().unwrap().to_owned();
    let since_middle = entries
        .iter()
        .filter(|e| e["at"].as_str().unwrap() >= middle.as_str())
        .count();

    // (query, total, entries on the page, has_more)
    let cases = [
        (format!("?workflow_id={first}"), 4, 4, false),
        (format!("?workflow_id={second}&kind=step_gate"), 2, 2, false),
        ("?kind=workflow_created".to_owned(), 2, 2, false),
        ("?kind=unknown".to_owned(), 0, 0, false),
        ("?limit=3".to_owned(), 8, 3, true),
        ("?limit=3&offset=6".to_owned(), 8, 2, false),
        ("?offset=8".to_owned(), 8, 0, false),
        (
            format!("?since={middle}"),
            since_middle,
            since_middle,
            false,
        ),
        ("?since=2000-01-01T00:00:00Z".to_owned(), 8, 8, false),
        ("?since=2999-01-01T00:00:00%2B01:00".to_owned(), 0, 0, false),
        ("?scope=global".to_owned(), 0, 0, false),
    ];
    for (query, total, returned, has_more) in &cases {
        let page = app.audit_page(query).await;
        assert_eq!(page.status, StatusCode::OK, "{query}: {}", page.json());
        let page = page.json();
        assert_eq!(page["total"], *total, "{query}");
        assert_eq!(
            page["entries"].as_array().unwrap().len(),
            *returned,
            "{query}"
        );
        assert_eq!(page["has_more"], *has_more, "{query}");
    }
    assert_eq!(app.audit_page("?limit=5000").await.json()["limit"], 1000);
    assert_eq!(
        kinds(
            &app.audit_page(&format!("?workflow_id={first}"))
                .await
                .json()
        ),
        [
            "workflow_created",
            "step_gate",
            "step_gate",
            "step_completed"
        ]
    );
}

#[tokio::test]
async fn bad_audit_queries_get_400() {
    let app = app();
    app.busy_workflow("one").await;
    let cases = [
        ("?since=yesterday", "since must be an RFC 3339 timestamp"),
        ("?since=2026-03-01", "since must be an RFC 3339 timestamp"),
        ("?limit=0", "limit must be a positive integer"),
        ("?limit=-1", "limit must be a positive integer"),
        ("?limit=abc", "limit must be a positive integer"),
        ("?offset=-1", "offset must be a non-negative integer"),
        ("?scope=acme", "scope must be \"global\" when given"),
    ];
    for (query, message) in cases {
        let answer = app.audit_page(query).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.json()["code"], "BAD_REQUEST", "{query}");
        assert_eq!(answer.json()["message"], message, "{query}");
    }
    let verify = app.get("/api/v1/audit/verify?scope=acme").await;
    assert_eq!(verify.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn each_tenant_sees_and_verifies_only_its_own_chain() {
    let app = app();
    app.busy_workflow("community's").await;
    let answer = app
        .send(
            Method::POST,
            "/api/v1/workflows",
            Some(OTHER),
            r#"{"workflow_name":"other's"}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);

    let other = app
        .send(Method::GET, "/api/v1/audit", Some(OTHER), "")
        .await
        .json();
    assert_eq!(other["total"], 1);
    assert_eq!(other["entries"][0]["tenant"], "other");
    assert_eq!(other["entries"][0]["seq"], 1, "chains count per tenant");
    let verify = app
        .send(Method::GET, "/api/v1/audit/verify", Some(OTHER), "")
        .await
        .json();
    assert_eq!(verify, json!({"valid": true, "entries_checked": 1}));
    assert_eq!(app.audit_page("").await.json()["total"], 4);
}

#[tokio::test]
async fn verify_reports_the_first_entry_edited_by_hand() {
    let app = app();
    app.busy_workflow("tampered").await;
    let answer = app.get("/api/v1/audit/verify").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"valid": true, "entries_checked": 4}));
    assert_eq!(
        app.get("/api/v1/audit/verify?scope=global").await.json(),
        json!({"valid": true, "entries_checked": 0})
    );

    // Someone with the database file drops the guard and rewrites history.
    app.database.tamper_with_audit("community", 3);

    let answer = app.get("/api/v1/audit/verify").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"valid": false, "entries_checked": 3, "first_bad_seq": 3})
    );
}
