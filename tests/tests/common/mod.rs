//! Shared by the end-to-end test binaries: one runtime per binary, and each
//! component compiled once per binary however many tests use it.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use host::input::DryRunBody;
use host::runtime::{
    CompiledPolicy, Evaluation, Limits, PolicyRequest, PolicyRuntime, RuntimeConfig,
};
use serde_json::Value;

/// The runtime every test in this binary shares, as the server would.
pub fn runtime() -> &'static PolicyRuntime {
    static RUNTIME: OnceLock<PolicyRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| PolicyRuntime::new(RuntimeConfig::default()).expect("runtime starts"))
}

/// The compiled component at `path`, compiled on first use.
pub fn policy(path: &str) -> CompiledPolicy {
    static COMPILED: OnceLock<Mutex<HashMap<String, CompiledPolicy>>> = OnceLock::new();
    let cache = COMPILED.get_or_init(Default::default);
    if let Some(policy) = cache.lock().unwrap().get(path) {
        return policy.clone();
    }
    let compiled = runtime()
        .load_file(path.as_ref())
        .unwrap_or_else(|e| panic!("{path} should load: {e}"));
    cache
        .lock()
        .unwrap()
        .insert(path.to_owned(), compiled.clone());
    compiled
}

/// A request built from a gate body, as `wcp policy eval` reads it.
pub fn request(body: Value) -> PolicyRequest {
    let input = DryRunBody::from_json(body.to_string().as_bytes())
        .and_then(|body| body.into_input("community"))
        .expect("valid gate body");
    PolicyRequest::new(&input)
}

/// Evaluates `path` on `body` with `settings` and the given limits.
pub fn evaluate_with(path: &str, body: Value, settings: Value, limits: Limits) -> Evaluation {
    let policy = policy(path);
    runtime().evaluate(&policy, &request(body), &settings.to_string(), limits)
}

/// A deadline no well-behaved evaluation reaches, even in a debug build on
/// a loaded machine: tests that are not about time must not depend on it.
pub const GENEROUS: Duration = Duration::from_secs(10);

/// Evaluates `path` on `body` with `settings`, the default memory cap and a
/// [`GENEROUS`] deadline.
pub fn evaluate(path: &str, body: Value, settings: Value) -> Evaluation {
    let limits = Limits {
        timeout: GENEROUS,
        ..Limits::default()
    };
    evaluate_with(path, body, settings, limits)
}

/// Writes `bytes` to `relative` under `dir`, creating directories as needed.
pub fn put(dir: &Path, relative: &str, bytes: &[u8]) {
    let path = dir.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}
