//! Blocks LLM calls to models that are not on an allowlist.
//!
//! A step of type `llm_call` runs only when its `model` is one of
//! `allowed_models` (exact, case-sensitive match); otherwise it is blocked with
//! a reason naming the model. An `llm_call` that gives no model is blocked too,
//! since there is nothing to check. Other step types are allowed.
//!
//! # Settings
//!
//! | key              | type            | default                                    |
//! |------------------|-----------------|--------------------------------------------|
//! | `allowed_models` | list of strings | [`DEFAULT_MODELS`]: current OpenAI, Anthropic and Google models |
//!
//! Giving `allowed_models` replaces the default list rather than extending it.
use serde::Deserialize;
use wcp_policy_sdk::{Decision, Request, SettingsError, export_policy};

/// The models allowed when the settings give no `allowed_models`.
pub const DEFAULT_MODELS: &[&str] = &[
    // OpenAI
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4",
    "gpt-4-turbo",
    "o1",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    // Anthropic
    "claude-opus-4",
    "claude-opus-4-1",
    "claude-sonnet-4",
    "claude-sonnet-4-5",
    "claude-3-7-sonnet",
    "claude-3-5-haiku",
    "claude-haiku-4-5",
    // Google
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-1.5-pro",
];

/// The policy's settings.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Settings {
    allowed_models: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allowed_models: DEFAULT_MODELS
                .iter()
                .map(|&model| model.to_owned())
                .collect(),
        }
    }
}

/// Blocks an `llm_call` whose model is missing or not on the allowlist.
pub fn evaluate(request: &Request) -> Result<Decision, SettingsError> {
    let settings: Settings = request.settings()?;
    if request.step_type() != "llm_call" {
        return Ok(Decision::allow());
    }
    Ok(match request.model() {
        None => Decision::block(
            "llm_call gives no model, so it cannot be checked against the allowlist",
        ),
        Some(model)
            if settings
                .allowed_models
                .iter()
                .any(|allowed| allowed == model) =>
        {
            Decision::allow()
        }
        Some(model) => Decision::block(format!("model {model:?} is not on the allowlist")),
    })
}

export_policy!(evaluate);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wcp_policy_sdk::Verdict::{Allow, Block};
    use wcp_policy_sdk::{json, testing::RequestBuilder};

    fn llm(model: &str) -> RequestBuilder {
        RequestBuilder::new("llm_call").model(model)
    }

    #[test]
    fn decides_by_model_and_step_type() {
        let mine = || json!({"allowed_models": ["my-model"]});
        let none = json!({"allowed_models": []});
        let other = RequestBuilder::new;
        let cases = [
            ("gpt-4o is a default", llm("gpt-4o"), Allow),
            ("gpt-4 is a default", llm("gpt-4"), Allow),
            ("claude is a default", llm("claude-sonnet-4"), Allow),
            ("gemini is a default", llm("gemini-2.5-pro"), Allow),
            ("unknown model", llm("davinci-001"), Block),
            ("case-sensitive", llm("GPT-4o"), Block),
            ("no prefix match", llm("gpt-4o-2024-05-13"), Block),
            ("no model", other("llm_call"), Block),
            ("custom list", llm("my-model").settings(mine()), Allow),
            ("replaces list", llm("gpt-4o").settings(mine()), Block),
            ("empty list", llm("gpt-4o").settings(none), Block),
            ("tool_call", other("tool_call").model("x"), Allow),
            ("human_task", other("human_task"), Allow),
        ];
        for (name, request, expected) in cases {
            let decision = evaluate(&request.build()).unwrap();
            assert_eq!(decision.verdict(), expected, "{name}: {decision:?}");
        }
    }

    #[test]
    fn reasons_name_the_model_or_its_absence() {
        let reason = |request: RequestBuilder| {
            evaluate(&request.build())
                .unwrap()
                .reason()
                .map(String::from)
        };
        let davinci = reason(llm("davinci-001"));
        assert_eq!(
            davinci.as_deref(),
            Some(r#"model "davinci-001" is not on the allowlist"#)
        );
        let missing = reason(RequestBuilder::new("llm_call")).unwrap();
        assert!(missing.contains("no model"), "{missing}");
        assert_eq!(reason(llm("gpt-4o")), None);
    }

    #[test]
    fn malformed_settings_are_an_error() {
        let request = llm("gpt-4o").settings(json!({"allowed_models": "gpt-4o"}));
        let error = evaluate(&request.build()).unwrap_err();
        assert!(error.to_string().contains("invalid type"), "{error}");
    }

    #[test]
    fn default_list_holds_the_required_models() {
        for model in ["gpt-4o", "gpt-4", "claude-sonnet-4"] {
            assert!(DEFAULT_MODELS.contains(&model), "{model}");
        }
    }
}
