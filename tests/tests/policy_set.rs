//! Loading the policy directory into a `PolicySet`: layout, ids, order,
//! tenant visibility, step-type filters, and what happens when files change
//! or break.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::{put, runtime};
use host::policy_set::{PolicySet, Scope, Status};
use wcp_test_artifacts as wasm;

fn module(path: &str) -> Vec<u8> {
    fs::read(path).unwrap()
}

fn ids(set: &PolicySet) -> Vec<&str> {
    set.entries().iter().map(|e| e.id.as_str()).collect()
}

/// global: allow-all (default priority 100), model-allowlist (priority 10,
/// llm_call only); acme: tool-approval (priority 100); other: pii-guard;
/// plus files that must be ignored.
fn layout(dir: &Path) {
    put(dir, "global/allow-all.wasm", &module(wasm::ALLOW_ALL));
    put(
        dir,
        "global/model-allowlist.wasm",
        &module(wasm::MODEL_ALLOWLIST),
    );
    put(
        dir,
        "global/model-allowlist.toml",
        b"priority = 10\nstep_types = [\"llm_call\"]\n",
    );
    put(
        dir,
        "tenants/acme/tool-approval.wasm",
        &module(wasm::TOOL_APPROVAL),
    );
    put(
        dir,
        "tenants/acme/tool-approval.toml",
        b"[settings]\ntools = [\"wire\"]\n",
    );
    put(
        dir,
        "tenants/other/pii-guard.wasm",
        &module(wasm::PII_GUARD),
    );
    put(dir, "global/README.md", b"notes");
    put(dir, "global/Bad-Name.wasm", &module(wasm::ALLOW_ALL));
    put(dir, "global/orphan.toml", b"priority = 1\n");
    put(dir, "tenants/global/x.wasm", &module(wasm::ALLOW_ALL));
    #[cfg(unix)]
    std::os::unix::fs::symlink(wasm::ALLOW_ALL, dir.join("global/linked.wasm")).unwrap();
}

#[test]
fn loads_the_layout_in_evaluation_order_and_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let set = PolicySet::load(runtime(), dir.path(), &PolicySet::default());
    assert_eq!(
        ids(&set),
        [
            "global/model-allowlist",
            "global/allow-all",
            "acme/tool-approval",
            "other/pii-guard"
        ]
    );
    assert_eq!(set.serving_count(), 4);
    let acme = set.get("acme/tool-approval").unwrap();
    assert_eq!(acme.scope, Scope::Tenant("acme".into()));
    assert_eq!(acme.status, Status::Loaded);
    assert_eq!(acme.manifest().settings_json(), r#"{"tools":["wire"]}"#);
    assert_eq!(acme.version().unwrap().len(), 12);
}

#[test]
fn tenants_see_global_policies_and_their_own_only() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let set = PolicySet::load(runtime(), dir.path(), &PolicySet::default());
    let visible: Vec<&str> = set.visible_to("acme").map(|e| e.id.as_str()).collect();
    assert_eq!(
        visible,
        [
            "global/model-allowlist",
            "global/allow-all",
            "acme/tool-approval"
        ]
    );
    let applicable: Vec<&str> = set
        .applicable("acme", "tool_call")
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(applicable, ["global/allow-all", "acme/tool-approval"]);
    let stranger: Vec<&str> = set
        .applicable("nobody", "llm_call")
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(stranger, ["global/model-allowlist", "global/allow-all"]);
}

#[test]
fn unchanged_files_keep_their_compiled_version() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let first = PolicySet::load(runtime(), dir.path(), &PolicySet::default());
    let second = PolicySet::load(runtime(), dir.path(), &first);
    for (a, b) in first.entries().iter().zip(second.entries()) {
        let (a, b) = (a.serving.as_ref().unwrap(), b.serving.as_ref().unwrap());
        assert!(Arc::ptr_eq(a, b), "reloaded an unchanged policy");
    }
}

#[test]
fn a_corrupt_module_keeps_the_previous_version_serving() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let first = PolicySet::load(runtime(), dir.path(), &PolicySet::default());
    let version = first
        .get("global/allow-all")
        .unwrap()
        .version()
        .unwrap()
        .to_owned();

    put(dir.path(), "global/allow-all.wasm", b"\0asm garbage");
    let second = PolicySet::load(runtime(), dir.path(), &first);
    let entry = second.get("global/allow-all").unwrap();
    assert_eq!(entry.status, Status::Failed);
    assert!(
        entry.last_error.as_deref().unwrap().contains("WebAssembly"),
        "{:?}",
        entry.last_error
    );
    assert_eq!(entry.version(), Some(version.as_str()));
}

#[test]
fn an_invalid_manifest_keeps_the_previous_version_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let first = PolicySet::load(runtime(), dir.path(), &PolicySet::default());
    put(
        dir.path(),
        "global/model-allowlist.toml",
        b"timeout_ms = 0\n",
    );
    let second = PolicySet::load(runtime(), dir.path(), &first);
    let entry = second.get("global/model-allowlist").unwrap();
    assert_eq!(entry.status, Status::Failed);
    assert!(entry.last_error.as_deref().unwrap().contains("timeout_ms"));
    assert_eq!(entry.manifest().priority, 10, "the serving manifest stays");
    assert_eq!(ids(&second)[0], "global/model-allowlist");
}

#[test]
fn a_policy_that_never_loaded_has_no_version_and_applies_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "global/broken.wasm", b"not wasm");
    put(
        dir.path(),
        "global/broken.toml",
        b"step_types = [\"llm_call\"]\n",
    );
    let set = PolicySet::load(runtime(), dir.path(), &PolicySet::default());
    let entry = set.get("global/broken").unwrap();
    assert_eq!(entry.status, Status::Failed);
    assert!(entry.serving.is_none());
    assert_eq!(set.applicable("acme", "tool_call").count(), 1);
}

#[test]
fn deleted_and_disabled_policies_do_not_run() {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let first = PolicySet::load(runtime(), dir.path(), &PolicySet::default());
    fs::remove_file(dir.path().join("global/allow-all.wasm")).unwrap();
    put(
        dir.path(),
        "global/model-allowlist.toml",
        b"enabled = false\n",
    );
    let second = PolicySet::load(runtime(), dir.path(), &first);
    assert!(second.get("global/allow-all").is_none());
    let applicable: Vec<&str> = second
        .applicable("acme", "llm_call")
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(applicable, ["acme/tool-approval"]);
    assert_eq!(
        second.get("global/model-allowlist").unwrap().status,
        Status::Loaded
    );
}

#[test]
fn a_missing_directory_is_an_empty_set() {
    let dir = tempfile::tempdir().unwrap();
    let set = PolicySet::load(runtime(), &dir.path().join("absent"), &PolicySet::default());
    assert!(set.entries().is_empty());
}
