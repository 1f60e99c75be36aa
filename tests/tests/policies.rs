//! Every example policy, built to a component, decides through the real
//! runtime exactly as its native unit tests say it should.

#![allow(clippy::unwrap_used)]

mod common;

use common::evaluate;
use host::verdict::Verdict;
use serde_json::{Value, json};
use wcp_test_artifacts as wasm;

struct Case {
    name: &'static str,
    policy: &'static str,
    body: Value,
    settings: Value,
    verdict: Verdict,
    reason_contains: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "allow-all allows a tool call",
            policy: wasm::ALLOW_ALL,
            body: json!({"step_type": "tool_call", "tool_context": {"tool_name": "delete_user"}}),
            settings: json!({}),
            verdict: Verdict::Allow,
            reason_contains: "",
        },
        Case {
            name: "model-allowlist blocks an unknown model by name",
            policy: wasm::MODEL_ALLOWLIST,
            body: json!({"step_type": "llm_call", "model": "davinci-001"}),
            settings: json!({}),
            verdict: Verdict::Block,
            reason_contains: "davinci-001",
        },
        Case {
            name: "model-allowlist allows gpt-4o by default",
            policy: wasm::MODEL_ALLOWLIST,
            body: json!({"step_type": "llm_call", "model": "gpt-4o"}),
            settings: json!({}),
            verdict: Verdict::Allow,
            reason_contains: "",
        },
        Case {
            name: "model-allowlist follows its settings",
            policy: wasm::MODEL_ALLOWLIST,
            body: json!({"step_type": "llm_call", "model": "gpt-4o"}),
            settings: json!({"allowed_models": ["claude-sonnet-4"]}),
            verdict: Verdict::Block,
            reason_contains: "gpt-4o",
        },
        Case {
            name: "tool-approval holds send_email from the tool context",
            policy: wasm::TOOL_APPROVAL,
            body: json!({"step_type": "tool_call", "step_name": "x", "tool_context": {"tool_name": "send_email"}}),
            settings: json!({}),
            verdict: Verdict::RequireApproval,
            reason_contains: "send_email",
        },
        Case {
            name: "tool-approval reads step_input.tool",
            policy: wasm::TOOL_APPROVAL,
            body: json!({"step_type": "tool_call", "step_input": {"tool": "transfer_funds"}}),
            settings: json!({}),
            verdict: Verdict::RequireApproval,
            reason_contains: "transfer_funds",
        },
        Case {
            name: "tool-approval blocks a blocked tool",
            policy: wasm::TOOL_APPROVAL,
            body: json!({"step_type": "tool_call", "tool_context": {"tool_name": "rm_rf"}}),
            settings: json!({"blocked_tools": ["rm_rf"]}),
            verdict: Verdict::Block,
            reason_contains: "rm_rf",
        },
        Case {
            name: "pii-guard blocks a nested SSN without echoing it",
            policy: wasm::PII_GUARD,
            body: json!({"step_type": "llm_call", "step_input": {"messages": [{"content": "my ssn is 123-45-6789"}]}}),
            settings: json!({}),
            verdict: Verdict::Block,
            reason_contains: "social security",
        },
        Case {
            name: "pii-guard blocks a card number in the tool input",
            policy: wasm::PII_GUARD,
            body: json!({"step_type": "tool_call", "tool_context": {"tool_name": "pay", "tool_input": {"card": "4111 1111 1111 1111"}}}),
            settings: json!({}),
            verdict: Verdict::Block,
            reason_contains: "card",
        },
        Case {
            name: "pii-guard allows clean input",
            policy: wasm::PII_GUARD,
            body: json!({"step_type": "llm_call", "step_input": {"prompt": "summarise the quarterly report"}}),
            settings: json!({}),
            verdict: Verdict::Allow,
            reason_contains: "",
        },
        Case {
            name: "cost-budget holds a step over the soft budget",
            policy: wasm::COST_BUDGET,
            body: json!({"step_type": "llm_call", "cost_usd": 3.0, "workflow": {"total_cost_usd": 8.0}}),
            settings: json!({"max_usd": 10.0, "hard_max_usd": 50.0}),
            verdict: Verdict::RequireApproval,
            reason_contains: "11.00",
        },
        Case {
            name: "cost-budget blocks above the hard limit",
            policy: wasm::COST_BUDGET,
            body: json!({"step_type": "llm_call", "cost_usd": 30.0, "workflow": {"total_cost_usd": 25.0}}),
            settings: json!({"max_usd": 10.0, "hard_max_usd": 50.0}),
            verdict: Verdict::Block,
            reason_contains: "55.00",
        },
        Case {
            name: "conditions applies a ported AxonFlow rule",
            policy: wasm::CONDITIONS,
            body: json!({"step_type": "tool_call", "tool_context": {"tool_name": "wire"}, "step_input": {"amount": 25000}}),
            settings: json!({"rules": [{
                "conditions": [
                    {"field": "tool_name", "operator": "equals", "value": "wire"},
                    {"field": "step_input.amount", "operator": "greater_than", "value": 10000}
                ],
                "action": "require_approval",
                "reason": "Over 10000 USD"
            }]}),
            verdict: Verdict::RequireApproval,
            reason_contains: "Over 10000 USD",
        },
        Case {
            name: "conditions allows when no rule matches",
            policy: wasm::CONDITIONS,
            body: json!({"step_type": "llm_call", "model": "gpt-4o"}),
            settings: json!({"rules": [{
                "conditions": [{"field": "model", "operator": "in", "value": ["davinci-001"]}],
                "action": "block",
                "reason": "retired model"
            }]}),
            verdict: Verdict::Allow,
            reason_contains: "",
        },
        Case {
            name: "settings that do not fit block with the reason",
            policy: wasm::MODEL_ALLOWLIST,
            body: json!({"step_type": "llm_call", "model": "gpt-4o"}),
            settings: json!({"allowed_models": "gpt-4o"}),
            verdict: Verdict::Block,
            reason_contains: "invalid policy settings",
        },
    ]
}

#[test]
fn example_policies_decide_through_the_runtime() {
    for case in cases() {
        let evaluation = evaluate(case.policy, case.body, case.settings);
        let decision = evaluation
            .outcome
            .unwrap_or_else(|fault| panic!("{}: fault {fault}", case.name));
        assert_eq!(
            decision.verdict, case.verdict,
            "{}: {decision:?}",
            case.name
        );
        let reason = decision.reason.unwrap_or_default();
        assert!(
            reason.contains(case.reason_contains),
            "{}: reason {reason:?} lacks {:?}",
            case.name,
            case.reason_contains
        );
    }
}

#[test]
fn every_example_policy_is_covered() {
    let covered: Vec<&str> = cases().iter().map(|case| case.policy).collect();
    for (name, path) in wasm::POLICIES {
        assert!(covered.contains(path), "{name} has no case above");
    }
}

#[test]
fn pii_guard_never_echoes_what_it_found() {
    let secrets = ["123-45-6789", "4111111111111111", "jane@example.com"];
    for secret in secrets {
        let body =
            json!({"step_type": "llm_call", "step_input": {"text": format!("value {secret}")}});
        let evaluation = evaluate(wasm::PII_GUARD, body, json!({"block_emails": true}));
        let decision = evaluation.outcome.expect("decides");
        assert_eq!(decision.verdict, Verdict::Block, "{secret}");
        let reason = decision.reason.unwrap_or_default();
        assert!(!reason.contains(secret), "reason echoes {secret}: {reason}");
    }
}
