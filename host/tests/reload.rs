//! Hot reload (design §6, contract §6.2): files changed in a watched policy
//! directory (`common::live`) change the decisions of later gates.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use common::live::{Live, eventually, install, lay_out, version_of};
use host::audit::AuditEntry;
use host::config::ServeConfig;
use wcp_test_artifacts as wasm;

fn send_email() -> Value {
    common::send_email()
}

/// The one `policies_evaluated` entry of a gate answer.
fn only_run(gate: &Value) -> &Value {
    let runs = gate["policies_evaluated"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{gate}");
    &runs[0]
}

fn kinds(entries: &[AuditEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.record.kind.as_str()).collect()
}

#[tokio::test]
async fn replacing_a_policy_file_changes_the_decisions() {
    let live = Live::start(|dir| lay_out(dir, &[("p.wasm", wasm::ALLOW_ALL)])).await;
    let allow = version_of(wasm::ALLOW_ALL);
    let hold = version_of(wasm::TOOL_APPROVAL);
    let gate = live.gate(send_email()).await;
    assert_eq!(gate["decision"], "allow");
    assert_eq!(only_run(&gate)["policy_version"], allow.as_str());

    install(wasm::TOOL_APPROVAL, &live.global("p.wasm"));
    let gate = eventually("a gate decided by the new version", || async {
        let gate = live.gate(send_email()).await;
        (only_run(&gate)["policy_version"] == hold.as_str()).then_some(gate)
    })
    .await;
    assert_eq!(gate["decision"], "require_approval");

    // Start-up and the replacement are both on the global chain, by the
    // watcher, from disk.
    let audit = live.audit("global");
    assert_eq!(kinds(&audit), ["policy_loaded", "policy_loaded"]);
    for (entry, version) in audit.iter().zip([&allow, &hold]) {
        assert_eq!(entry.record.actor, "system");
        assert_eq!(entry.record.details["policy_id"], "global/p");
        assert_eq!(entry.record.details["version"], version.as_str());
        assert_eq!(entry.record.details["source"], "disk");
    }
    live.stop().await;
}

#[tokio::test]
async fn a_corrupt_file_leaves_the_old_version_deciding_and_says_why() {
    let live = Live::start(|dir| lay_out(dir, &[("p.wasm", wasm::TOOL_APPROVAL)])).await;
    let good = version_of(wasm::TOOL_APPROVAL);

    fs::write(live.global("p.wasm"), b"\0asm this is not a component").unwrap();
    let policy = eventually("status failed", || async {
        live.policy("p").await.filter(|p| p["status"] == "failed")
    })
    .await;
    assert_eq!(policy["version"], good.as_str(), "{policy}");
    assert!(
        policy["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{policy}"
    );

    let gate = live.gate(send_email()).await;
    assert_eq!(gate["decision"], "require_approval");
    assert_eq!(only_run(&gate)["policy_version"], good.as_str());

    let audit = live.audit("global");
    assert_eq!(kinds(&audit), ["policy_loaded", "policy_load_failed"]);
    assert_eq!(
        audit[1].record.reason.as_deref(),
        policy["last_error"].as_str()
    );

    // `/metrics` counts the start-up load and the failure.
    let metrics = String::from_utf8(live.app.get("/metrics").await.body.to_vec()).unwrap();
    for line in [
        "wcp_policy_reloads_total{result=\"loaded\"} 1",
        "wcp_policy_reloads_total{result=\"failed\"} 1",
        "wcp_policy_reloads_total{result=\"removed\"} 0",
        "wcp_policies{status=\"failed\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line} in\n{metrics}"
        );
    }
    live.stop().await;
}

#[tokio::test]
async fn a_truncated_write_never_serves_and_the_full_write_then_lands() {
    let live = Live::start(|dir| lay_out(dir, &[("p.wasm", wasm::ALLOW_ALL)])).await;
    let old = version_of(wasm::ALLOW_ALL);
    let new = version_of(wasm::TOOL_APPROVAL);
    let bytes = fs::read(wasm::TOOL_APPROVAL).unwrap();

    // A slow in-place write, caught half way.
    fs::write(live.global("p.wasm"), &bytes[..bytes.len() / 2]).unwrap();
    eventually("the half file to fail", || async {
        live.policy("p").await.filter(|p| p["status"] == "failed")
    })
    .await;
    let gate = live.gate(send_email()).await;
    assert_eq!(gate["decision"], "allow");
    assert_eq!(only_run(&gate)["policy_version"], old.as_str());

    fs::write(live.global("p.wasm"), &bytes).unwrap();
    let policy = live.serving("p", &new).await;
    assert_eq!(policy["status"], "loaded");
    assert_eq!(policy["last_error"], Value::Null);
    assert_eq!(
        live.gate(send_email()).await["decision"],
        "require_approval"
    );
    live.stop().await;
}

#[tokio::test]
async fn deleting_a_file_unloads_the_policy() {
    let live = Live::start(|dir| {
        lay_out(dir, &[("p.wasm", wasm::TOOL_APPROVAL)]);
        fs::write(dir.join("global/p.toml"), "priority = 5\n").unwrap();
    })
    .await;
    assert_eq!(
        live.gate(send_email()).await["decision"],
        "require_approval"
    );

    fs::remove_file(live.global("p.wasm")).unwrap();
    eventually("the policy to be unlisted", || async {
        live.policy("p").await.is_none().then_some(())
    })
    .await;
    let gate = live.gate(send_email()).await;
    assert_eq!(gate["decision"], "allow");
    assert_eq!(gate["reason"], "No matching policies");

    let audit = live.audit("global");
    assert_eq!(kinds(&audit), ["policy_loaded", "policy_removed"]);
    assert_eq!(
        audit[1].record.details["version"],
        version_of(wasm::TOOL_APPROVAL).as_str()
    );
    live.stop().await;
}

#[tokio::test]
async fn changing_only_the_manifest_applies_the_new_settings() {
    let live = Live::start(|dir| lay_out(dir, &[("rules.wasm", wasm::CONDITIONS)])).await;
    let version = version_of(wasm::CONDITIONS);
    assert_eq!(live.gate(send_email()).await["decision"], "allow");

    fs::write(
        live.global("rules.toml"),
        "priority = 7\n[settings]\nrules = [{conditions = [], action = \"block\", reason = \"closed\"}]\n",
    )
    .unwrap();
    let policy = eventually("the new manifest", || async {
        live.policy("rules").await.filter(|p| p["priority"] == 7)
    })
    .await;
    assert_eq!(policy["version"], version.as_str());
    let gate = live.gate(send_email()).await;
    assert_eq!(gate["decision"], "block");
    assert_eq!(gate["reason"], "closed");
    assert_eq!(only_run(&gate)["policy_version"], version.as_str());

    // Removing the manifest restores the defaults.
    fs::remove_file(live.global("rules.toml")).unwrap();
    eventually("the default manifest", || async {
        live.policy("rules").await.filter(|p| p["priority"] == 100)
    })
    .await;
    assert_eq!(live.gate(send_email()).await["decision"], "allow");
    live.stop().await;
}

#[tokio::test]
async fn two_files_changed_together_both_land() {
    let live = Live::start(|dir| {
        lay_out(
            dir,
            &[("a.wasm", wasm::ALLOW_ALL), ("b.wasm", wasm::ALLOW_ALL)],
        );
    })
    .await;
    let new = version_of(wasm::TOOL_APPROVAL);
    install(wasm::TOOL_APPROVAL, &live.global("a.wasm"));
    install(wasm::TOOL_APPROVAL, &live.global("b.wasm"));
    live.serving("a", &new).await;
    live.serving("b", &new).await;
    let gate = live.gate(send_email()).await;
    assert_eq!(gate["decision"], "require_approval");
    assert_eq!(gate["policy_ids"], json!(["global/a", "global/b"]));
    live.stop().await;
}

#[tokio::test]
async fn rewriting_identical_content_is_not_a_reload() {
    let live = Live::start(|dir| lay_out(dir, &[("p.wasm", wasm::ALLOW_ALL)])).await;
    let loaded_at = live.policy("p").await.unwrap()["loaded_at"].clone();
    // The same bytes again, then a second policy whose arrival proves the
    // watcher has looked at the directory since.
    fs::copy(wasm::ALLOW_ALL, live.global("p.wasm")).unwrap();
    install(wasm::TOOL_APPROVAL, &live.global("q.wasm"));
    live.serving("q", &version_of(wasm::TOOL_APPROVAL)).await;

    assert_eq!(live.policy("p").await.unwrap()["loaded_at"], loaded_at);
    let audit = live.audit("global");
    let ids: Vec<&Value> = audit
        .iter()
        .map(|entry| &entry.record.details["policy_id"])
        .collect();
    assert_eq!(ids, [&json!("global/p"), &json!("global/q")]);
    live.stop().await;
}

#[tokio::test]
async fn tenant_policies_reload_into_their_tenants_chain() {
    let live = Live::start(|_| {}).await;
    let dir = live.policies.path().join("tenants/community");
    fs::create_dir_all(&dir).unwrap();
    install(wasm::TOOL_APPROVAL, &dir.join("mine.wasm"));
    eventually("the tenant policy", || async {
        let answer = live.app.get("/api/v1/policies/community/mine").await;
        (answer.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(
        live.gate(send_email()).await["decision"],
        "require_approval"
    );
    let audit = live.app.audit();
    let loaded: Vec<&AuditEntry> = audit
        .iter()
        .filter(|e| e.record.kind == "policy_loaded")
        .collect();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].record.details["policy_id"], "community/mine");
    live.app.assert_chain_valid();
    assert!(live.audit("global").is_empty());
    live.stop().await;
}

#[tokio::test]
async fn a_policy_directory_created_after_start_is_found_by_the_rescan() {
    // Nothing to watch at start: the directory does not exist.
    let live = Live::start_with(
        |dir| fs::remove_dir(dir).unwrap(),
        ServeConfig {
            policy_rescan: Duration::from_millis(200),
            ..ServeConfig::default()
        },
    )
    .await;
    lay_out(live.policies.path(), &[("p.wasm", wasm::ALLOW_ALL)]);
    live.serving("p", &version_of(wasm::ALLOW_ALL)).await;
    install(wasm::TOOL_APPROVAL, &live.global("p.wasm"));
    live.serving("p", &version_of(wasm::TOOL_APPROVAL)).await;
    live.stop().await;
}

#[tokio::test]
async fn a_policy_directory_that_cannot_be_listed_keeps_its_policies() {
    let live = Live::start(|dir| lay_out(dir, &[("p.wasm", wasm::TOOL_APPROVAL)])).await;
    // `global` turns into something that cannot be listed (here a file:
    // listing it fails with "not a directory", as an I/O error would).
    let global = live.policies.path().join("global");
    fs::rename(&global, live.policies.path().join("moved")).unwrap();
    fs::write(&global, b"not a directory").unwrap();
    // A tenant policy arriving proves the watcher has rescanned since.
    let tenant = live.policies.path().join("tenants/community");
    fs::create_dir_all(&tenant).unwrap();
    install(wasm::ALLOW_ALL, &tenant.join("t.wasm"));
    eventually("the tenant policy", || async {
        let answer = live.app.get("/api/v1/policies/community/t").await;
        (answer.status == StatusCode::OK).then_some(())
    })
    .await;

    let policy = live.policy("p").await.unwrap();
    assert_eq!(policy["version"], version_of(wasm::TOOL_APPROVAL).as_str());
    assert_eq!(
        live.gate(send_email()).await["decision"],
        "require_approval"
    );
    assert_eq!(kinds(&live.audit("global")), ["policy_loaded"]);
    live.stop().await;
}

/// The load test of issue 4: gates run without pause while a policy is
/// replaced 100 times, alternating between a version that allows and one
/// that holds for approval, by rename and by in-place rewrite. No request
/// may fail, and every decision must be the one of the version that
/// `policies_evaluated` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gates_stay_clean_through_100_reloads_of_a_flipping_policy() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const RELOADS: usize = 100;
    const CLIENTS: usize = 4;
    let live = Arc::new(Live::start(|dir| lay_out(dir, &[("p.wasm", wasm::ALLOW_ALL)])).await);
    let versions = [
        (version_of(wasm::ALLOW_ALL), "allow", wasm::ALLOW_ALL),
        (
            version_of(wasm::TOOL_APPROVAL),
            "require_approval",
            wasm::TOOL_APPROVAL,
        ),
    ];
    let seen: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let stop = Arc::new(AtomicBool::new(false));

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (live, seen, stop) = (Arc::clone(&live), Arc::clone(&seen), Arc::clone(&stop));
        let versions = versions.clone();
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut gates = 0u64;
            while !stop.load(Ordering::Relaxed) {
                gates += 1;
                let created = live
                    .app
                    .post(
                        "/api/v1/workflows",
                        json!({"workflow_name": format!("c{client}")}),
                    )
                    .await;
                if created.status != StatusCode::CREATED {
                    failures.push(format!("create: {}", created.status));
                    continue;
                }
                let id = created.json()["workflow_id"].as_str().unwrap().to_owned();
                let answer = live.app.gate(&id, "s1", send_email()).await;
                if answer.status != StatusCode::OK {
                    failures.push(format!("gate: {} {:?}", answer.status, answer.body));
                    continue;
                }
                let gate = answer.json();
                let version = &only_run(&gate)["policy_version"];
                match versions.iter().position(|(v, _, _)| version == v.as_str()) {
                    Some(index) if gate["decision"] == versions[index].1 => {
                        seen[index].fetch_add(1, Ordering::Relaxed);
                    }
                    _ => failures.push(format!("decision not of its version: {gate}")),
                }
            }
            (gates, failures)
        }));
    }

    for reload in 1..=RELOADS {
        let index = reload % 2;
        let (version, _, source) = &versions[index];
        let before = seen[index].load(Ordering::Relaxed);
        if reload % 4 < 2 {
            install(source, &live.global("p.wasm"));
        } else {
            fs::write(live.global("p.wasm"), fs::read(source).unwrap()).unwrap();
        }
        // The reload lands, then gates run on it before the next one.
        eventually(&format!("reload {reload} to be decided by"), || async {
            let set = live.state.policies.load();
            let serving = set
                .get("global/p")
                .and_then(|p| p.version().map(str::to_owned));
            (serving.as_deref() == Some(version.as_str())
                && seen[index].load(Ordering::Relaxed) > before)
                .then_some(())
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for client in clients {
        let (gates, failures) = client.await.unwrap();
        assert!(failures.is_empty(), "{failures:#?}");
        total += gates;
    }
    assert!(total >= RELOADS as u64, "only {total} gates ran");
    let audit = live.audit("global");
    let loads = audit
        .iter()
        .filter(|e| e.record.kind == "policy_loaded")
        .count();
    assert!(
        loads > RELOADS,
        "{loads} policy_loaded entries for {RELOADS} reloads"
    );
    Arc::try_unwrap(live).ok().unwrap().stop().await;
}
