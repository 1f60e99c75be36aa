//! The policy write routes (contract §6.3): an admin uploads and deletes
//! policies of its own tenant over the API, on a live server state whose
//! directory is watched (`common::live`), so what the API writes is also
//! what a rescan finds.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use common::live::{Live, eventually, install, lay_out, version_of};
use common::{Answer, OTHER, send_email};
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

const BOUNDARY: &str = "wcp-test-boundary";

/// `PUT /api/v1/policies/<name>` of a raw module.
async fn put_raw(live: &Live, name: &str, module: &[u8], auth: Option<&str>) -> Answer {
    let mut headers = vec![("content-type", "application/wasm")];
    headers.extend(auth.map(|a| ("authorization", a)));
    live.app
        .send_with(
            Method::PUT,
            &format!("/api/v1/policies/{name}"),
            &headers,
            module.to_vec(),
        )
        .await
}

/// `PUT /api/v1/policies/<name>` of a module and a manifest, as multipart.
async fn put_multipart(live: &Live, name: &str, module: &[u8], manifest: &str) -> Answer {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"module\"; filename=\"p.wasm\"\r\n\
             Content-Type: application/wasm\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(module);
    body.extend_from_slice(
        format!(
            "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\r\n\
             {manifest}\r\n--{BOUNDARY}--\r\n"
        )
        .as_bytes(),
    );
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    live.app
        .send_with(
            Method::PUT,
            &format!("/api/v1/policies/{name}"),
            &[("content-type", &content_type)],
            body,
        )
        .await
}

/// Every file under the policy directory, relative, sorted.
fn files(live: &Live) -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(live.policies.path(), live.policies.path(), &mut out);
    out.sort();
    out
}

fn read(path: &str) -> Vec<u8> {
    fs::read(path).unwrap()
}

#[tokio::test]
async fn an_uploaded_policy_is_live_and_a_reupload_replaces_it() {
    let live = Live::start(|dir| lay_out(dir, &[("g.wasm", wasm::ALLOW_ALL)])).await;

    // A new policy: 201, serving at once.
    let answer = put_raw(&live, "up", &read(wasm::TOOL_APPROVAL), None).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    let object = answer.json();
    let first = version_of(wasm::TOOL_APPROVAL);
    assert_eq!(object["id"], "community/up");
    assert_eq!(object["scope"], "community");
    assert_eq!(object["version"], first.as_str());
    assert_eq!(object["status"], "loaded");
    assert_eq!(object["settings"], json!({}));
    assert_eq!(object["size_bytes"], json!(read(wasm::TOOL_APPROVAL).len()));
    let gate = live.gate(send_email()).await;
    assert_eq!(gate["decision"], "require_approval");
    assert_eq!(gate["policy_ids"], json!(["community/up"]));
    assert_eq!(files(&live), ["global/g.wasm", "tenants/community/up.wasm"]);
    let listed = live.app.get("/api/v1/policies/community/up").await;
    assert_eq!(listed.json()["version"], first.as_str());

    // A re-upload with a manifest: 200, the new version and its settings.
    let manifest = "priority = 3\nstep_types = [\"tool_call\"]\n[settings]\n\
                    rules = [{conditions = [], action = \"block\", reason = \"uploaded rule\"}]\n";
    let answer = put_multipart(&live, "up", &read(wasm::CONDITIONS), manifest).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let object = answer.json();
    let second = version_of(wasm::CONDITIONS);
    assert_eq!(object["version"], second.as_str());
    assert_eq!(object["priority"], 3);
    assert_eq!(object["settings"]["rules"][0]["reason"], "uploaded rule");
    let gate = live.gate(send_email()).await;
    assert_eq!(gate["decision"], "block");
    assert_eq!(gate["reason"], "uploaded rule");
    assert_eq!(
        fs::read_to_string(live.policies.path().join("tenants/community/up.toml")).unwrap(),
        manifest
    );

    // A raw re-upload drops the manifest: the defaults apply again.
    let answer = put_raw(&live, "up", &read(wasm::CONDITIONS), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["priority"], 100);
    assert_eq!(answer.json()["settings"], json!({}));
    assert_eq!(files(&live), ["global/g.wasm", "tenants/community/up.wasm"]);

    // The watcher sees the uploaded files as already serving: once a later
    // disk change has landed, the audit holds one entry per upload, all
    // from the API.
    install(wasm::TOOL_APPROVAL, &live.global("later.wasm"));
    live.serving("later", &first).await;
    let uploads: Vec<_> = live
        .app
        .audit()
        .into_iter()
        .filter(|entry| entry.record.details.get("policy_id") == Some(&json!("community/up")))
        .collect();
    let seen: Vec<(String, Value, Value)> = uploads
        .iter()
        .map(|entry| {
            (
                entry.record.kind.clone(),
                entry.record.details["version"].clone(),
                entry.record.details["source"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("policy_loaded".into(), json!(first), json!("api")),
            ("policy_loaded".into(), json!(second), json!("api")),
            ("policy_loaded".into(), json!(second), json!("api")),
        ]
    );
    assert!(
        uploads
            .iter()
            .all(|entry| entry.record.actor == "community")
    );
    live.app.assert_chain_valid();
    live.stop().await;
}

#[tokio::test]
async fn refused_uploads_change_nothing() {
    let live = Live::start(|dir| lay_out(dir, &[("g.wasm", wasm::ALLOW_ALL)])).await;
    // A good version first, so a refused replacement has something to spare.
    let answer = put_raw(&live, "up", &read(wasm::TOOL_APPROVAL), None).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let before_files = files(&live);
    let before_audit = live.app.audit().len();
    let serving = version_of(wasm::TOOL_APPROVAL);

    // An empty core module and an empty component: valid WebAssembly, not policies.
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    let cases: Vec<(&str, Vec<u8>, Option<&str>, &str)> = vec![
        (
            "garbage",
            b"not wasm at all".to_vec(),
            None,
            "not a WebAssembly file",
        ),
        ("core module", core_module, None, "core"),
        ("wrong world", empty_component, None, "wcp:policy/policy"),
        (
            "foreign import",
            read(wasm::FORBIDDEN_IMPORT),
            None,
            "imports `fixture:exfil/network@0.1.0`",
        ),
        (
            "bad manifest",
            read(wasm::CONDITIONS),
            Some("priority = \"high\"\n"),
            "invalid manifest",
        ),
        (
            "unknown manifest key",
            read(wasm::CONDITIONS),
            Some("prority = 1\n"),
            "invalid manifest",
        ),
    ];
    for (what, module, manifest, says) in cases {
        let answer = match manifest {
            Some(text) => put_multipart(&live, "up", &module, text).await,
            None => put_raw(&live, "up", &module, None).await,
        };
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{what}: {:?}",
            answer.body
        );
        let body = answer.json();
        assert_eq!(body["code"], "INVALID_POLICY", "{what}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{what}: {body}"
        );
    }

    // Name, media type and size are refused before anything is compiled.
    let bad_name = put_raw(&live, "Bad.Name", &read(wasm::ALLOW_ALL), None).await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_name.json()["message"], "invalid policy name");
    let text = live
        .app
        .send_with(
            Method::PUT,
            "/api/v1/policies/up",
            &[("content-type", "text/plain")],
            read(wasm::ALLOW_ALL),
        )
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(text.json()["code"], "UNSUPPORTED_MEDIA_TYPE");
    let huge = put_raw(&live, "up", &vec![0u8; 16 * 1024 * 1024 + 1], None).await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.json()["limit_bytes"], 16_777_216);

    // Still the first version, the same files, no audit entry.
    let policy = live.app.get("/api/v1/policies/community/up").await.json();
    assert_eq!(policy["version"], serving.as_str());
    assert_eq!(policy["status"], "loaded");
    assert_eq!(files(&live), before_files);
    assert_eq!(live.app.audit().len(), before_audit);
    assert_eq!(
        live.gate(send_email()).await["decision"],
        "require_approval"
    );
    live.stop().await;
}

#[tokio::test]
async fn uploads_go_to_the_callers_tenant_only() {
    let live = Live::start(|_| {}).await;
    let answer = put_raw(&live, "theirs", &read(wasm::TOOL_APPROVAL), Some(OTHER)).await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.json()["id"], "other/theirs");
    assert!(
        live.policies
            .path()
            .join("tenants/other/theirs.wasm")
            .exists()
    );
    // Invisible to, and not run for, the community tenant.
    let listed = live.app.get("/api/v1/policies").await.json();
    assert_eq!(listed["count"], 0, "{listed}");
    assert_eq!(live.gate(send_email()).await["decision"], "allow");
    let foreign = live.app.get("/api/v1/policies/other/theirs").await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    // And audited in the other tenant's chain.
    let theirs = eventually("the other tenant's entry", || async {
        let entries = live.audit("other");
        (!entries.is_empty()).then_some(entries)
    })
    .await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].record.actor, "other");
    live.stop().await;
}
