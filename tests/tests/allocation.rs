//! The on-demand allocator, used when the instance pool cannot reserve its
//! address space, enforces the same limits and decides the same way.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use host::input::DryRunBody;
use host::runtime::{FaultKind, Limits, PolicyRequest, PolicyRuntime, RuntimeConfig};
use host::verdict::Verdict;
use wcp_test_artifacts as wasm;

fn request(body: &str) -> PolicyRequest {
    let input = DryRunBody::from_json(body.as_bytes())
        .unwrap()
        .into_input("community")
        .unwrap();
    PolicyRequest::new(&input)
}

#[test]
fn on_demand_allocation_enforces_the_same_sandbox() {
    let runtime = PolicyRuntime::new(RuntimeConfig {
        disable_pooling: true,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let llm = request(r#"{"step_type":"llm_call","model":"davinci-001"}"#);

    let allowlist = runtime.load_file(wasm::MODEL_ALLOWLIST.as_ref()).unwrap();
    let decision = runtime
        .evaluate(&allowlist, &llm, "{}", Limits::default())
        .outcome
        .unwrap();
    assert_eq!(decision.verdict, Verdict::Block);

    // Only the loop's case depends on the deadline; the others get one no
    // healthy evaluation reaches, even in a debug build on a loaded machine.
    let short = Duration::from_millis(50);
    let long = Duration::from_secs(10);
    let cases = [
        (wasm::MEMORY_BOMB, long, FaultKind::MemoryLimit),
        (wasm::LOOP_FOREVER, short, FaultKind::Timeout),
        (wasm::PANIC, long, FaultKind::Trap),
    ];
    for (path, timeout, kind) in cases {
        let limits = Limits {
            timeout,
            memory_bytes: 16 << 20,
        };
        let policy = runtime.load_file(path.as_ref()).unwrap();
        let fault = runtime
            .evaluate(&policy, &llm, "{}", limits)
            .outcome
            .expect_err(path);
        assert_eq!(fault.kind, kind, "{path}");
    }
}
