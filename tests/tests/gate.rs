//! A gate's policies from a real policy directory: every applicable policy
//! runs in order, faults become `on_error`, and the combination follows
//! contract §4.2 (checklist: fault kinds, on_error, unavailable, priority,
//! versions).

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use common::{put, runtime};
use host::gate::{Action, RunErrorKind, combine, evaluate_policies};
use host::input::{DryRunBody, PolicyInput};
use host::policy_set::PolicySet;
use host::verdict::Verdict;
use wcp_test_artifacts as wasm;

fn install(dir: &Path, id: &str, module: &str, manifest: &str) {
    put(dir, &format!("{id}.wasm"), &fs::read(module).unwrap());
    if !manifest.is_empty() {
        put(dir, &format!("{id}.toml"), manifest.as_bytes());
    }
}

fn input(body: &str) -> PolicyInput {
    DryRunBody::from_json(body.as_bytes())
        .unwrap()
        .into_input("acme")
        .unwrap()
}

#[test]
fn faults_become_on_error_and_are_always_matched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    install(d, "global/allow-all", wasm::ALLOW_ALL, "priority = 1");
    install(
        d,
        "global/loop",
        wasm::LOOP_FOREVER,
        "priority = 2\ntimeout_ms = 20\non_error = \"allow\"",
    );
    install(
        d,
        "global/bomb",
        wasm::MEMORY_BOMB,
        "priority = 3\nmemory_mib = 8\ntimeout_ms = 10000",
    );
    install(
        d,
        "global/panic",
        wasm::PANIC,
        "priority = 4\ntimeout_ms = 10000\non_error = \"require_approval\"",
    );
    install(
        d,
        "global/bad",
        wasm::BAD_OUTPUT,
        "priority = 5\ntimeout_ms = 10000",
    );
    let set = PolicySet::load(runtime(), d, &PolicySet::default());

    let runs = evaluate_policies(
        runtime(),
        &set,
        "acme",
        &input(r#"{"step_type":"llm_call"}"#),
    );
    let kinds: Vec<(&str, Action, Option<RunErrorKind>)> = runs
        .iter()
        .map(|r| {
            (
                r.policy_id.as_str(),
                r.action,
                r.error.as_ref().map(|e| e.kind),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("global/allow-all", Action::Allow, None),
            ("global/loop", Action::Error, Some(RunErrorKind::Timeout)),
            (
                "global/bomb",
                Action::Error,
                Some(RunErrorKind::MemoryLimit)
            ),
            ("global/panic", Action::Error, Some(RunErrorKind::Trap)),
            (
                "global/bad",
                Action::Error,
                Some(RunErrorKind::InvalidOutput)
            ),
        ]
    );
    for run in &runs {
        assert_eq!(
            run.policy_version.as_deref().map(str::len),
            Some(12),
            "{}",
            run.policy_id
        );
    }
    let combined = combine(runs);
    assert_eq!(combined.decision, Verdict::Block);
    assert_eq!(
        combined.reason,
        "Policy global/bomb failed (memory_limit); Policy global/bad failed (invalid_output)"
    );
    assert_eq!(
        combined.policy_ids,
        ["global/loop", "global/bomb", "global/panic", "global/bad"]
    );
}

#[test]
fn on_error_allow_lets_the_step_through_but_records_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    install(
        dir.path(),
        "global/loop",
        wasm::LOOP_FOREVER,
        "timeout_ms = 20\non_error = \"allow\"",
    );
    let set = PolicySet::load(runtime(), dir.path(), &PolicySet::default());
    let combined = combine(evaluate_policies(
        runtime(),
        &set,
        "acme",
        &input(r#"{"step_type":"tool_call","tool_context":{"tool_name":"x"}}"#),
    ));
    assert_eq!(combined.decision, Verdict::Allow);
    assert_eq!(combined.policy_ids, ["global/loop"]);
}

#[test]
fn a_never_loaded_policy_is_unavailable_and_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "global/broken.wasm", b"not a module");
    let set = PolicySet::load(runtime(), dir.path(), &PolicySet::default());
    let runs = evaluate_policies(
        runtime(),
        &set,
        "acme",
        &input(r#"{"step_type":"llm_call"}"#),
    );
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].error.as_ref().unwrap().kind,
        RunErrorKind::Unavailable
    );
    assert!(runs[0].policy_version.is_none());
    let combined = combine(runs);
    assert_eq!(combined.decision, Verdict::Block);
    assert_eq!(combined.reason, "Policy global/broken failed (unavailable)");
}

#[test]
fn priority_orders_runs_and_tenant_policies_run_beside_global_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    install(
        d,
        "global/tool-approval",
        wasm::TOOL_APPROVAL,
        "priority = 50",
    );
    install(
        d,
        "tenants/acme/tool-approval",
        wasm::TOOL_APPROVAL,
        "priority = 50\n[settings]\nblocked_tools = [\"send_email\"]",
    );
    install(d, "tenants/acme/allow-all", wasm::ALLOW_ALL, "priority = 5");
    install(
        d,
        "tenants/other/pii-guard",
        wasm::PII_GUARD,
        "priority = 1",
    );
    install(
        d,
        "global/model-allowlist",
        wasm::MODEL_ALLOWLIST,
        "step_types = [\"llm_call\"]",
    );
    let set = PolicySet::load(runtime(), d, &PolicySet::default());

    let runs = evaluate_policies(
        runtime(),
        &set,
        "acme",
        &input(r#"{"step_type":"tool_call","tool_context":{"tool_name":"send_email"}}"#),
    );
    let order: Vec<&str> = runs.iter().map(|r| r.policy_id.as_str()).collect();
    assert_eq!(
        order,
        [
            "acme/allow-all",
            "global/tool-approval",
            "acme/tool-approval"
        ]
    );
    let combined = combine(runs);
    assert_eq!(
        combined.decision,
        Verdict::Block,
        "block outranks require_approval"
    );
    assert_eq!(
        combined.policy_ids,
        ["global/tool-approval", "acme/tool-approval"]
    );
    assert!(
        combined.reason.contains("send_email"),
        "{}",
        combined.reason
    );
}

#[test]
fn disabled_policies_do_not_run() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "global/panic", wasm::PANIC, "enabled = false");
    let set = PolicySet::load(runtime(), dir.path(), &PolicySet::default());
    let runs = evaluate_policies(
        runtime(),
        &set,
        "acme",
        &input(r#"{"step_type":"llm_call"}"#),
    );
    assert!(runs.is_empty());
    assert_eq!(combine(runs).reason, "No matching policies");
}
