//! The policy write routes (contract §6.3): an admin uploads and deletes
//! policies of its own tenant over the API, on a live server state whose
//! directory is watched (`common::live`), so what the API writes is also
//! what a rescan finds.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use common::live::{Live, install, lay_out};
use common::{OTHER, send_email};
use wcp_test_artifacts as wasm;

/// Lays out `global/g` (allow-all) and the community tenant's `mine`
/// (tool-approval, with a manifest).
fn with_tenant_policy(dir: &std::path::Path) {
    lay_out(dir, &[("g.wasm", wasm::ALLOW_ALL)]);
    let tenant = dir.join("tenants/community");
    fs::create_dir_all(&tenant).unwrap();
    install(wasm::TOOL_APPROVAL, &tenant.join("mine.wasm"));
    fs::write(tenant.join("mine.toml"), "priority = 5\n").unwrap();
}

#[tokio::test]
async fn delete_removes_the_files_unloads_and_audits() {
    let live = Live::start(with_tenant_policy).await;
    assert_eq!(
        live.gate(send_email()).await["decision"],
        "require_approval"
    );

    let answer = live
        .app
        .send(Method::DELETE, "/api/v1/policies/mine", None, "")
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{:?}", answer.body);
    assert!(answer.body.is_empty());

    let tenant = live.policies.path().join("tenants/community");
    assert!(!tenant.join("mine.wasm").exists());
    assert!(!tenant.join("mine.toml").exists());
    let gone = live.app.get("/api/v1/policies/community/mine").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    // The next gate runs only the global policy, at once: no rescan needed.
    let gate = live.gate(send_email()).await;
    assert_eq!(gate["decision"], "allow");
    assert_eq!(gate["policies_evaluated"][0]["policy_id"], "global/g");

    let removed: Vec<_> = live
        .app
        .audit()
        .into_iter()
        .filter(|entry| entry.record.kind == "policy_removed")
        .collect();
    assert_eq!(removed.len(), 1);
    let entry = &removed[0].record;
    assert_eq!(entry.actor, "community");
    assert_eq!(entry.details["policy_id"], "community/mine");
    assert_eq!(entry.details["source"], "api");
    live.app.assert_chain_valid();

    // Deleting it again: it is gone.
    let again = live
        .app
        .send(Method::DELETE, "/api/v1/policies/mine", None, "")
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    live.stop().await;
}

#[tokio::test]
async fn delete_refuses_bad_names_global_policies_and_other_tenants() {
    let live = Live::start(with_tenant_policy).await;
    let delete = |uri: &'static str, auth: Option<&'static str>| {
        let app = &live.app;
        async move { app.send(Method::DELETE, uri, auth, "").await }
    };

    let bad = delete("/api/v1/policies/Not-A-Name", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["message"], "invalid policy name");

    // A global policy cannot be deleted over the API: the caller's tenant
    // has no policy of that name.
    let global = delete("/api/v1/policies/g", None).await;
    assert_eq!(global.status, StatusCode::NOT_FOUND);
    assert!(live.global("g.wasm").exists());

    // Another tenant sees exactly what it sees for a missing policy.
    let foreign = delete("/api/v1/policies/mine", Some(OTHER)).await;
    let missing = delete("/api/v1/policies/nothing", Some(OTHER)).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(foreign.body, missing.body);
    assert_eq!(
        foreign.json(),
        json!({"error": "not_found", "code": "NOT_FOUND", "message": "Policy not found"})
    );
    assert!(
        live.policies
            .path()
            .join("tenants/community/mine.wasm")
            .exists()
    );

    // None of the refusals was audited.
    let kinds: Vec<Value> = live
        .app
        .audit()
        .iter()
        .map(|entry| json!(entry.record.kind))
        .collect();
    assert_eq!(kinds, [json!("policy_loaded")]);
    live.stop().await;
}
