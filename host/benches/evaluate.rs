//! Policy evaluation cost (design §10: fresh-instance p50 <= 10 µs).
//!
//! - `fresh/allow-all`, `fresh/pii-guard`: what a gate pays per policy: a new
//!   store, instantiation from the pre-linked component, the call.
//! - `warm/allow-all`: a call on an instance kept alive, isolating the
//!   instantiation cost (the server never reuses instances).
//! - `native/pii-guard`: the same pii-guard logic compiled natively, the
//!   floor any sandbox is measured against.
//!
//! Run: `cargo bench -p host --bench evaluate`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use host::input::DryRunBody;
use host::runtime::{Limits, PolicyRequest, PolicyRuntime, RuntimeConfig};
use serde_json::{Value, json};
use wcp_policy_sdk::testing::RequestBuilder;
use wcp_test_artifacts as wasm;

/// A realistic LLM step: a chat transcript of about 2 KiB with no PII, so
/// pii-guard scans every string to the end.
fn chat_input() -> Value {
    let turn = "Summarise the quarterly revenue figures for the northern region \
                and compare them with the previous year, highlighting the three \
                largest changes and their likely causes.";
    json!({
        "messages": (0..12).map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": turn})).collect::<Vec<_>>(),
        "temperature": 0.2
    })
}

fn request(body: Value) -> PolicyRequest {
    let input = DryRunBody::from_json(body.to_string().as_bytes())
        .and_then(|body| body.into_input("community"))
        .expect("valid body");
    PolicyRequest::new(&input)
}

fn benches(c: &mut Criterion) {
    let runtime = PolicyRuntime::new(RuntimeConfig::default()).expect("runtime");
    let allow_all = runtime.load_file(wasm::ALLOW_ALL.as_ref()).expect("loads");
    let pii_guard = runtime.load_file(wasm::PII_GUARD.as_ref()).expect("loads");
    let simple = request(json!({"step_type": "llm_call", "model": "gpt-4o"}));
    let chat =
        request(json!({"step_type": "llm_call", "model": "gpt-4o", "step_input": chat_input()}));
    let limits = Limits::default();

    let mut fresh = c.benchmark_group("fresh");
    fresh.bench_function("allow-all", |b| {
        b.iter(|| black_box(runtime.evaluate(&allow_all, &simple, "{}", limits)))
    });
    fresh.bench_function("pii-guard", |b| {
        b.iter(|| black_box(runtime.evaluate(&pii_guard, &chat, "{}", limits)))
    });
    fresh.finish();

    let mut warm = runtime.warm_instance(&allow_all).expect("instantiates");
    c.bench_function("warm/allow-all", |b| {
        b.iter(|| black_box(warm.call(&simple, "{}")))
    });

    let native = RequestBuilder::new("llm_call")
        .model("gpt-4o")
        .input(chat_input())
        .build();
    // A fresh clone per call: the input is parsed from JSON text each time,
    // as it is inside the sandbox.
    c.bench_function("native/pii-guard", |b| {
        b.iter_batched(
            || native.clone(),
            |request| black_box(pii_guard::evaluate(&request)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(evaluate, benches);
criterion_main!(evaluate);
