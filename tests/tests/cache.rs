//! The precompiled-artifact cache: a warm load skips compilation, and only
//! artifacts this host wrote are ever deserialised.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use host::runtime::{PolicyRuntime, RuntimeConfig};
use host::verdict::Verdict;
use wcp_test_artifacts as wasm;

fn runtime(cache: &Path) -> PolicyRuntime {
    PolicyRuntime::new(RuntimeConfig {
        cache_dir: Some(cache.to_owned()),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn artifacts(cache: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(cache)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    files.sort();
    files
}

fn decides(runtime: &PolicyRuntime, bytes: &[u8]) -> Verdict {
    let policy = runtime.load(bytes).unwrap();
    let input =
        host::input::DryRunBody::from_json(br#"{"step_type":"llm_call","model":"davinci-001"}"#)
            .unwrap()
            .into_input("community")
            .unwrap();
    let request = host::runtime::PolicyRequest::new(&input);
    let evaluation = runtime.evaluate(&policy, &request, "{}", Default::default());
    evaluation.outcome.unwrap().verdict
}

#[test]
fn a_compiled_policy_is_cached_under_its_digest_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(wasm::MODEL_ALLOWLIST).unwrap();
    let first = runtime(dir.path());
    assert_eq!(decides(&first, &bytes), Verdict::Block);
    let files = artifacts(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let digest = first.load(&bytes).unwrap().sha256().to_owned();
    assert!(name.starts_with(&digest), "{name} is not keyed by {digest}");
    let written = fs::metadata(&files[0]).unwrap().modified().unwrap();

    // A second runtime (a restart) loads the artifact instead of recompiling.
    let second = runtime(dir.path());
    assert_eq!(decides(&second, &bytes), Verdict::Block);
    assert_eq!(artifacts(dir.path()), files);
    assert_eq!(
        fs::metadata(&files[0]).unwrap().modified().unwrap(),
        written
    );
}

#[test]
fn an_artifact_the_host_did_not_write_is_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(wasm::MODEL_ALLOWLIST).unwrap();
    let first = runtime(dir.path());
    assert_eq!(decides(&first, &bytes), Verdict::Block);
    let artifact = artifacts(dir.path()).remove(0);

    // Replace the artifact with one compiled from another policy, as an
    // attacker with write access to the cache might: valid wasmtime output,
    // but not what this host wrote for this digest.
    let other_dir = tempfile::tempdir().unwrap();
    let other = runtime(other_dir.path());
    other.load(&fs::read(wasm::ALLOW_ALL).unwrap()).unwrap();
    let foreign = artifacts(other_dir.path()).remove(0);
    fs::copy(&foreign, &artifact).unwrap();

    // The host notices, recompiles from the .wasm, and still blocks.
    let second = runtime(dir.path());
    assert_eq!(decides(&second, &bytes), Verdict::Block);
}

#[test]
fn a_truncated_artifact_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(wasm::MODEL_ALLOWLIST).unwrap();
    decides(&runtime(dir.path()), &bytes);
    let artifact = artifacts(dir.path()).remove(0);
    let full = fs::read(&artifact).unwrap();
    fs::write(&artifact, &full[..full.len() / 2]).unwrap();
    assert_eq!(decides(&runtime(dir.path()), &bytes), Verdict::Block);
    assert_eq!(fs::read(&artifact).unwrap(), full, "rewritten by the host");
}
