//! Declarative rules: match fields of the step with operators, then block the
//! step or hold it for approval, in the style of AxonFlow's policy conditions.
//!
//! A rule matches when all of its conditions hold. The decision is the most
//! restrictive action among the matching rules (`block` over
//! `require_approval`), with the reasons of the rules that chose it joined by
//! `"; "`. When no rule matches, or there are no rules, the step is allowed.
//!
//! # Settings
//!
//! `rules` (default `[]`): a list of
//! `{"conditions": [{"field", "operator", "value"}], "action", "reason"}`,
//! where `action` is `block` or `require_approval` and `reason` defaults to
//! `rule <n> matched`. An empty `conditions` list always matches.
//!
//! Fields: `step_type`, `step_name`, `model`, `provider`, `tool_name` (from
//! the tool context), `workflow_name`, `source`, and `step_input.<path>`, a
//! dot path into the step input (`step_input.user.country`; a numeric segment
//! indexes an array). An absent field, or a JSON `null`, is missing.
//!
//! Operators:
//!
//! | operator                        | holds when                                          |
//! |---------------------------------|-----------------------------------------------------|
//! | `equals`, `not_equals`          | the field equals `value` (numbers compare by value) |
//! | `contains`, `not_contains`      | a string field has substring `value`, or a list field has element `value` |
//! | `contains_any`                  | `contains` holds for some item of the list `value`  |
//! | `regex`                         | a string field matches the pattern `value`          |
//! | `greater_than`, `less_than`     | the field, as a number (numeric strings parse), compares so with `value` |
//! | `in`, `not_in`                  | the field equals some item of the list `value`      |
//!
//! A missing field makes every operator false except `not_equals`,
//! `not_contains` and `not_in`, which are true. Unknown keys, fields,
//! operators or actions, values of the wrong shape for their operator, and
//! invalid patterns are invalid settings, which block the step.
use std::borrow::Cow;

use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use wcp_policy_sdk::{Decision, Request, SettingsError, Value, export_policy};

/// The most memory one compiled pattern may take, well inside the sandbox's
/// memory cap; a larger pattern is invalid settings rather than a fault.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// The policy's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    conditions: Vec<Condition>,
    action: Action,
    #[serde(default)]
    reason: Option<String>,
}

/// What a matching rule asks for, least restrictive first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    RequireApproval,
    Block,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    field: Field,
    operator: Operator,
    value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Operator {
    Equals,
    NotEquals,
    Contains,
    NotContains,
    ContainsAny,
    Regex,
    GreaterThan,
    LessThan,
    In,
    NotIn,
}

impl Operator {
    fn name(self) -> &'static str {
        use Operator::*;
        match self {
            Equals => "equals",
            NotEquals => "not_equals",
            Contains => "contains",
            NotContains => "not_contains",
            ContainsAny => "contains_any",
            Regex => "regex",
            GreaterThan => "greater_than",
            LessThan => "less_than",
            In => "in",
            NotIn => "not_in",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(try_from = "String")]
enum Field {
    StepType,
    StepName,
    Model,
    Provider,
    ToolName,
    WorkflowName,
    Source,
    StepInput(Vec<String>),
}

impl TryFrom<String> for Field {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Ok(match name.as_str() {
            "step_type" => Field::StepType,
            "step_name" => Field::StepName,
            "model" => Field::Model,
            "provider" => Field::Provider,
            "tool_name" => Field::ToolName,
            "workflow_name" => Field::WorkflowName,
            "source" => Field::Source,
            _ => match name.strip_prefix("step_input.") {
                Some(path) if !path.split('.').any(str::is_empty) => {
                    Field::StepInput(path.split('.').map(String::from).collect())
                }
                _ => {
                    return Err(format!(
                        "unknown field {name:?}; expected step_type, step_name, model, \
                         provider, tool_name, workflow_name, source or step_input.<key>"
                    ));
                }
            },
        })
    }
}

/// A condition checked and ready to evaluate.
struct Check<'s> {
    field: &'s Field,
    test: Test<'s>,
    /// `not_equals`, `not_contains`, `not_in`: the test's result is flipped,
    /// and a missing field passes.
    negated: bool,
}

/// What a condition's operator compares the field with.
enum Test<'s> {
    Equals(&'s Value),
    Contains(&'s Value),
    ContainsAny(&'s [Value]),
    Regex(Regex),
    GreaterThan(f64),
    LessThan(f64),
    In(&'s [Value]),
}

impl<'s> Check<'s> {
    /// Checks the value's shape against the operator and compiles patterns.
    fn new(condition: &'s Condition) -> Result<Self, String> {
        use Operator as Op;
        let value = &condition.value;
        let list = || {
            value
                .as_array()
                .map(Vec::as_slice)
                .ok_or("needs a list value")
        };
        let number = || number(value).ok_or("needs a number value");
        let test = match condition.operator {
            Op::Equals | Op::NotEquals => Test::Equals(value),
            Op::Contains | Op::NotContains => Test::Contains(value),
            Op::ContainsAny => Test::ContainsAny(list()?),
            Op::In | Op::NotIn => Test::In(list()?),
            Op::GreaterThan => Test::GreaterThan(number()?),
            Op::LessThan => Test::LessThan(number()?),
            Op::Regex => {
                let pattern = value.as_str().ok_or("needs a string pattern")?;
                let regex = RegexBuilder::new(pattern)
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build();
                Test::Regex(regex.map_err(|e| invalid_pattern(pattern, &e))?)
            }
        };
        let negated = matches!(
            condition.operator,
            Op::NotEquals | Op::NotContains | Op::NotIn
        );
        Ok(Check {
            field: &condition.field,
            test,
            negated,
        })
    }

    fn holds(&self, request: &Request) -> bool {
        match resolve(self.field, request) {
            Some(actual) => self.test.holds(&actual) != self.negated,
            None => self.negated,
        }
    }
}

impl Test<'_> {
    fn holds(&self, actual: &Value) -> bool {
        match self {
            Test::Equals(expected) => same(actual, expected),
            Test::Contains(expected) => contains(actual, expected),
            Test::ContainsAny(items) => items.iter().any(|item| contains(actual, item)),
            Test::Regex(pattern) => actual.as_str().is_some_and(|text| pattern.is_match(text)),
            Test::GreaterThan(limit) => number(actual).is_some_and(|n| n > *limit),
            Test::LessThan(limit) => number(actual).is_some_and(|n| n < *limit),
            Test::In(items) => items.iter().any(|item| same(actual, item)),
        }
    }
}

/// One line naming the pattern and the problem (the regex crate's own message
/// spans several lines to point at the error).
fn invalid_pattern(pattern: &str, error: &regex::Error) -> String {
    let detail = error.to_string();
    let problem = detail.lines().last().unwrap_or_default();
    let problem = problem.strip_prefix("error: ").unwrap_or(problem);
    format!("invalid pattern {pattern:?}: {problem}")
}

/// Equality, with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn contains(actual: &Value, needle: &Value) -> bool {
    match (actual, needle) {
        (Value::String(text), Value::String(part)) => text.contains(part.as_str()),
        (Value::Array(items), _) => items.iter().any(|item| same(item, needle)),
        _ => false,
    }
}

/// A finite number, or a string that parses as one.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

/// The field's value in this request; `None` when it is missing or `null`.
fn resolve<'r>(field: &Field, request: &'r Request) -> Option<Cow<'r, Value>> {
    let text = |text: &str| Some(Cow::Owned(Value::String(text.to_owned())));
    match field {
        Field::StepType => text(request.step_type()),
        Field::StepName => request.step_name().and_then(text),
        Field::Model => request.model().and_then(text),
        Field::Provider => request.provider().and_then(text),
        Field::ToolName => request.tool_name().and_then(text),
        Field::WorkflowName => text(request.workflow().name()),
        Field::Source => text(request.workflow().source()),
        Field::StepInput(path) => path
            .iter()
            .try_fold(request.input(), |value, key| match value {
                Value::Array(items) => items.get(key.parse::<usize>().ok()?),
                _ => value.get(key),
            })
            .filter(|value| !value.is_null())
            .map(Cow::Borrowed),
    }
}

/// Compiles every condition of every rule, so that any invalid condition is
/// reported even when an earlier rule would match.
fn compile(rules: &[Rule]) -> Result<Vec<Vec<Check<'_>>>, SettingsError> {
    let mut compiled = Vec::with_capacity(rules.len());
    for (n, rule) in (1..).zip(rules) {
        let checks = (1..).zip(&rule.conditions).map(|(c, condition)| {
            Check::new(condition).map_err(|e| {
                let operator = condition.operator.name();
                SettingsError::new(format!("rule {n}, condition {c} ({operator}): {e}"))
            })
        });
        compiled.push(checks.collect::<Result<_, _>>()?);
    }
    Ok(compiled)
}

/// Applies the rules in the settings to the step.
pub fn evaluate(request: &Request) -> Result<Decision, SettingsError> {
    let settings: Settings = request.settings()?;
    let checks = compile(&settings.rules)?;
    let matched: Vec<(usize, &Rule)> = (1..)
        .zip(&settings.rules)
        .zip(&checks)
        .filter(|(_, checks)| checks.iter().all(|check| check.holds(request)))
        .map(|(rule, _)| rule)
        .collect();
    let Some(action) = matched.iter().map(|(_, rule)| rule.action).max() else {
        return Ok(Decision::allow());
    };
    let reasons: Vec<String> = matched
        .iter()
        .filter(|(_, rule)| rule.action == action)
        .map(|(n, rule)| {
            rule.reason
                .clone()
                .unwrap_or_else(|| format!("rule {n} matched"))
        })
        .collect();
    let reason = reasons.join("; ");
    Ok(match action {
        Action::Block => Decision::block(reason),
        Action::RequireApproval => Decision::require_approval(reason),
    })
}

export_policy!(evaluate);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wcp_policy_sdk::Verdict::{Allow, Block, RequireApproval as Approve};
    use wcp_policy_sdk::{json, testing::RequestBuilder};

    /// A payment step with nested input, a tool and every named field set.
    fn request(settings: Value) -> Request {
        RequestBuilder::new("tool_call")
            .step_name("pay invoice")
            .model("gpt-4o")
            .provider("openai")
            .tool("transfer_funds")
            .workflow_name("billing")
            .source("airflow")
            .input(json!({
                "amount": 2500,
                "limit": "1000.5",
                "memo": "Quarterly payment for ACME",
                "tags": ["urgent", "finance", 7],
                "user": {"country": "DE", "roles": ["admin"]},
                "lines": [{"sku": "A-1"}],
                "note": null,
            }))
            .settings(settings)
            .build()
    }

    /// Settings with one blocking rule of one condition, written
    /// `field operator json-value`.
    fn one_rule(condition: &str) -> Value {
        let mut parts = condition.splitn(3, ' ');
        let (field, operator) = (parts.next().unwrap(), parts.next().unwrap());
        let value: Value = parts.next().unwrap().parse().unwrap();
        json!({"rules": [{
            "conditions": [{"field": field, "operator": operator, "value": value}],
            "action": "block",
            "reason": "matched",
        }]})
    }

    fn holds(condition: &str) -> bool {
        let decision = evaluate(&request(one_rule(condition))).unwrap();
        assert!(!decision.is_require_approval(), "{decision:?}");
        decision.is_block()
    }

    #[test]
    fn operators() {
        let cases = [
            (r#"step_type equals "tool_call""#, true),
            (r#"step_type equals "Tool_call""#, false),
            (r#"workflow_name equals "billing""#, true),
            ("step_input.amount equals 2500.0", true),
            (r#"step_input.amount equals "2500""#, false),
            (r#"model not_equals "gpt-4""#, true),
            (r#"model not_equals "gpt-4o""#, false),
            (r#"step_input.memo contains "payment""#, true),
            (r#"step_input.memo contains "refund""#, false),
            (r#"step_input.tags contains "urgent""#, true),
            ("step_input.tags contains 7", true),
            (r#"step_input.tags contains "urg""#, false),
            (r#"step_input.amount contains "25""#, false),
            (r#"step_name not_contains "refund""#, true),
            (r#"step_name not_contains "pay""#, false),
            (r#"step_input.memo contains_any ["x", "ACME"]"#, true),
            (r#"step_input.tags contains_any ["finance"]"#, true),
            (r#"step_input.memo contains_any ["acme"]"#, false),
            ("step_input.memo contains_any []", false),
            (r#"tool_name regex "^transfer_\\w+$""#, true),
            (r#"tool_name regex "^delete_""#, false),
            (r#"step_input.memo regex "\\bACME\\b""#, true),
            (r#"step_input.amount regex "\\d""#, false),
            ("step_input.amount greater_than 1000", true),
            ("step_input.amount greater_than 2500", false),
            ("step_input.limit greater_than 1000", true),
            (r#"step_input.amount greater_than "999.5""#, true),
            ("step_input.memo greater_than 0", false),
            ("step_input.amount less_than 10000", true),
            ("step_input.amount less_than 2500", false),
            (r#"provider in ["anthropic", "openai"]"#, true),
            (r#"provider in ["anthropic"]"#, false),
            ("step_input.amount in [1, 2500]", true),
            (r#"source not_in ["langgraph"]"#, true),
            (r#"source not_in ["airflow"]"#, false),
        ];
        for (condition, expected) in cases {
            assert_eq!(holds(condition), expected, "{condition}");
        }
    }

    #[test]
    fn nested_and_missing_fields() {
        let cases = [
            (r#"step_input.user.country equals "DE""#, true),
            (r#"step_input.user.roles contains "admin""#, true),
            (r#"step_input.lines.0.sku equals "A-1""#, true),
            (r#"step_input.lines.x.sku not_equals "A-1""#, true),
            (r#"step_input.memo.x equals "a""#, false),
            (r#"step_input.user.city equals "Berlin""#, false),
            (r#"step_input.nope contains "a""#, false),
            (r#"step_input.nope contains_any ["a"]"#, false),
            (r#"step_input.nope regex ".*""#, false),
            ("step_input.nope greater_than 0", false),
            ("step_input.nope less_than 0", false),
            (r#"step_input.nope in ["a"]"#, false),
            (r#"step_input.nope not_equals "a""#, true),
            (r#"step_input.nope not_contains "a""#, true),
            (r#"step_input.nope not_in ["a"]"#, true),
            ("step_input.note not_equals null", true),
        ];
        for (condition, expected) in cases {
            assert_eq!(holds(condition), expected, "{condition}");
        }
        // Optional fields the step does not carry are missing too.
        let bare = |condition: &str| {
            RequestBuilder::new("x")
                .settings(one_rule(condition))
                .build()
        };
        for field in ["step_name", "model", "provider", "tool_name"] {
            let equals = evaluate(&bare(&format!("{field} equals \"x\""))).unwrap();
            let not_in = evaluate(&bare(&format!("{field} not_in [\"x\"]"))).unwrap();
            assert!(equals.is_allow() && not_in.is_block(), "{field}");
        }
    }

    #[test]
    fn rules_combine_by_precedence() {
        let rule = |field: &str, value: &str, action: &str, reason: Option<&str>| {
            json!({
                "conditions": [{"field": field, "operator": "equals", "value": value}],
                "action": action,
                "reason": reason,
            })
        };
        let model = rule("model", "gpt-4o", "require_approval", Some("check model"));
        let tool = rule(
            "tool_name",
            "transfer_funds",
            "require_approval",
            Some("check tool"),
        );
        let source = rule("source", "airflow", "block", Some("no airflow"));
        let unnamed = rule("model", "gpt-4o", "block", None);
        let never = rule("model", "o1", "block", Some("never"));
        let both = json!({
            "conditions": [
                {"field": "step_type", "operator": "equals", "value": "tool_call"},
                {"field": "step_input.amount", "operator": "greater_than", "value": 5000},
            ],
            "action": "block",
        });
        let cases = [
            ("no settings", json!({}), Allow, None),
            ("no rules", json!([]), Allow, None),
            ("no match", json!([never]), Allow, None),
            ("all conditions must hold", json!([both]), Allow, None),
            (
                "one approval",
                json!([model, never]),
                Approve,
                Some("check model"),
            ),
            (
                "reasons joined",
                json!([model, tool]),
                Approve,
                Some("check model; check tool"),
            ),
            (
                "block wins",
                json!([model, source, tool]),
                Block,
                Some("no airflow"),
            ),
            (
                "default reason",
                json!([never, source, unnamed]),
                Block,
                Some("no airflow; rule 3 matched"),
            ),
            (
                "empty conditions match",
                json!([{"conditions": [], "action": "block"}]),
                Block,
                Some("rule 1 matched"),
            ),
        ];
        for (name, rules, verdict, reason) in cases {
            let settings = if rules.is_array() {
                json!({ "rules": rules })
            } else {
                rules
            };
            let decision = evaluate(&request(settings)).unwrap();
            assert_eq!(decision.verdict(), verdict, "{name}: {decision:?}");
            assert_eq!(decision.reason(), reason, "{name}");
        }
    }

    #[test]
    fn invalid_conditions_name_the_problem() {
        let cases = [
            (r#"model starts_with "g""#, "unknown variant `starts_with`"),
            (r#"modle equals "gpt""#, r#"unknown field "modle""#),
            ("step_input. equals 1", r#"unknown field "step_input.""#),
            ("step_input.a..b equals 1", r#""step_input.a..b""#),
            (
                r#"model regex "gpt-(4""#,
                r#"pattern "gpt-(4": unclosed group"#,
            ),
            (r#"model regex "a{999}{999}""#, "exceeds size limit"),
            ("model regex 4", "(regex): needs a string pattern"),
            (r#"model in "gpt-4o""#, "(in): needs a list value"),
            (r#"model not_in "gpt-4o""#, "(not_in): needs a list"),
            (r#"model contains_any "g""#, "(contains_any): needs a list"),
            ("model greater_than []", "(greater_than): needs a number"),
            ("model less_than [1]", "(less_than): needs a number"),
        ];
        for (condition, needle) in cases {
            let error = evaluate(&request(one_rule(condition))).unwrap_err();
            assert!(error.to_string().contains(needle), "{needle}: {error}");
        }
    }

    #[test]
    fn invalid_rules_name_the_problem() {
        let cases = [
            (r#"[{"conditions": [], "action": "deny"}]"#, "`deny`"),
            (r#"[{"action": "block"}]"#, "missing field `conditions`"),
            (r#"[{"conditions": [{}], "action": "block"}]"#, "`field`"),
            (r#"[{"conditions": [], "action": "block", "x": 1}]"#, "`x`"),
            (r#"{"action": "block"}"#, "expected a sequence"),
        ];
        for (rules, needle) in cases {
            let rules: Value = rules.parse().unwrap();
            let error = evaluate(&request(json!({ "rules": rules }))).unwrap_err();
            assert!(error.to_string().contains(needle), "{needle}: {error}");
        }
        let error = evaluate(&request(json!({"rule": []}))).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `rule`"),
            "{error}"
        );
    }

    #[test]
    fn every_pattern_is_checked_even_after_a_match() {
        let settings = json!({"rules": [
            {"conditions": [], "action": "block", "reason": "first"},
            {"conditions": [{"field": "model", "operator": "regex", "value": "["}], "action": "block"},
        ]});
        let error = evaluate(&request(settings)).unwrap_err();
        assert!(
            error.to_string().contains("rule 2, condition 1 (regex)"),
            "{error}"
        );
    }
}
