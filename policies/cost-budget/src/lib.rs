//! Holds or blocks steps that would take a workflow over its cost budget.
//!
//! The projected cost is the workflow's running `total_cost_usd` plus the
//! step's estimated `cost_usd` (0 when the step gives none). Above `max_usd`
//! the step is held for human approval; above `hard_max_usd` it is blocked.
//! Reaching a limit exactly is not exceeding it; sums within a billionth of a
//! dollar of a limit count as reaching it, so float rounding (`0.1 + 0.2`)
//! does not trip the budget.
//!
//! # Settings
//!
//! | key            | type   | default |
//! |----------------|--------|---------|
//! | `max_usd`      | number | `10.0`  |
//! | `hard_max_usd` | number | `100.0` |
//!
//! Negative limits, or `hard_max_usd` below `max_usd`, are invalid settings.
use serde::Deserialize;
use wcp_policy_sdk::{Decision, Request, SettingsError, export_policy};

/// Differences smaller than this are float noise, not spending.
const TOLERANCE_USD: f64 = 1e-9;

/// The policy's settings.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Settings {
    /// Above this projected total, a human must approve the step.
    max_usd: f64,
    /// Above this projected total, the step is blocked.
    hard_max_usd: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_usd: 10.0,
            hard_max_usd: 100.0,
        }
    }
}

impl Settings {
    fn validate(self) -> Result<Self, SettingsError> {
        if self.max_usd < 0.0 || self.hard_max_usd < 0.0 {
            return Err(SettingsError::new(
                "max_usd and hard_max_usd must not be negative",
            ));
        }
        if self.hard_max_usd < self.max_usd {
            return Err(SettingsError::new(format!(
                "hard_max_usd ({}) is below max_usd ({})",
                self.hard_max_usd, self.max_usd
            )));
        }
        Ok(self)
    }
}

/// Holds a step that takes the workflow over `max_usd`, blocks one that takes
/// it over `hard_max_usd`.
pub fn evaluate(request: &Request) -> Result<Decision, SettingsError> {
    let settings = request.settings::<Settings>()?.validate()?;
    let projected = request.workflow().total_cost_usd() + request.step().cost_usd().unwrap_or(0.0);
    let exceeds = |limit: f64| projected - limit > TOLERANCE_USD;
    Ok(if exceeds(settings.hard_max_usd) {
        Decision::block(format!(
            "projected cost ${projected:.2} exceeds the hard limit of ${:.2}",
            settings.hard_max_usd
        ))
    } else if exceeds(settings.max_usd) {
        Decision::require_approval(format!(
            "projected cost ${projected:.2} exceeds the budget of ${:.2}",
            settings.max_usd
        ))
    } else {
        Decision::allow()
    })
}

export_policy!(evaluate);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wcp_policy_sdk::Verdict::{Allow, Block, RequireApproval as Approve};
    use wcp_policy_sdk::{Value, json, testing::RequestBuilder};

    fn spend(total: f64, cost: Option<f64>, settings: &Value) -> Decision {
        let mut request = RequestBuilder::new("llm_call").total_cost_usd(total);
        if let Some(cost) = cost {
            request = request.cost_usd(cost);
        }
        evaluate(&request.settings(settings.clone()).build()).unwrap()
    }

    #[test]
    fn decides_by_projected_total() {
        let default = json!({});
        let tight = json!({"max_usd": 0.3, "hard_max_usd": 0.5});
        let soft_only = json!({"max_usd": 50.0});
        let zero = json!({"max_usd": 0.0});
        let cases = [
            ("nothing spent", 0.0, None, &default, Allow),
            ("under budget", 4.0, Some(5.0), &default, Allow),
            ("exactly the budget", 7.5, Some(2.5), &default, Allow),
            ("over budget", 10.0, Some(2.5), &default, Approve),
            ("total alone over", 10.01, None, &default, Approve),
            ("at the hard limit", 90.0, Some(10.0), &default, Approve),
            ("over the hard limit", 99.0, Some(1.5), &default, Block),
            ("float noise", 0.1, Some(0.2), &tight, Allow),
            ("own budget", 0.25, Some(0.1), &tight, Approve),
            ("own hard limit", 0.25, Some(0.3), &tight, Block),
            ("only max_usd given", 20.0, None, &soft_only, Allow),
            ("zero budget", 0.0, Some(0.01), &zero, Approve),
        ];
        for (name, total, cost, settings, expected) in cases {
            let decision = spend(total, cost, settings);
            assert_eq!(decision.verdict(), expected, "{name}: {decision:?}");
        }
    }

    #[test]
    fn reasons_give_projection_and_limit() {
        let over = spend(10.0, Some(2.5), &json!({}));
        let budget = "projected cost $12.50 exceeds the budget of $10.00";
        assert_eq!(over.reason(), Some(budget));
        let far_over = spend(120.0, Some(0.333), &json!({}));
        let hard = "projected cost $120.33 exceeds the hard limit of $100.00";
        assert_eq!(far_over.reason(), Some(hard));
        assert_eq!(spend(1.0, None, &json!({})).reason(), None);
    }

    #[test]
    fn inconsistent_settings_are_errors() {
        let cases = [
            (
                json!({"max_usd": 50.0, "hard_max_usd": 20.0}),
                "hard_max_usd (20) is below max_usd (50)",
            ),
            (
                json!({"max_usd": 500.0}),
                "hard_max_usd (100) is below max_usd (500)",
            ),
            (json!({"max_usd": -1.0}), "must not be negative"),
            (json!({"max_usd": "ten"}), "invalid type"),
        ];
        for (settings, needle) in cases {
            let request = RequestBuilder::new("llm_call").settings(settings);
            let error = evaluate(&request.build()).unwrap_err();
            assert!(error.to_string().contains(needle), "{error}");
        }
    }
}
