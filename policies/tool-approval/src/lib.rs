//! Holds calls to sensitive tools for human approval, and blocks forbidden ones.
//!
//! For a `tool_call` step the tool name is `tool_context.tool_name`, or, when
//! the orchestrator sent no tool context, the string `step_input.tool`. A tool
//! in `blocked_tools` is blocked; otherwise a tool in `tools` is held for
//! human approval; anything else is allowed. Blocking wins when a tool is in
//! both lists. Names match exactly. Other step types, and tool calls that name
//! no tool, are allowed.
//!
//! # Settings
//!
//! | key             | type            | default                                         |
//! |-----------------|-----------------|-------------------------------------------------|
//! | `tools`         | list of strings | `["send_email", "delete_user", "transfer_funds"]` |
//! | `blocked_tools` | list of strings | `[]`                                            |
use serde::Deserialize;
use wcp_policy_sdk::{Decision, Request, SettingsError, export_policy};

/// The policy's settings.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct Settings {
    /// Tools that need a human's approval.
    tools: Vec<String>,
    /// Tools that may never run.
    blocked_tools: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tools: ["send_email", "delete_user", "transfer_funds"]
                .map(String::from)
                .to_vec(),
            blocked_tools: Vec::new(),
        }
    }
}

/// The tool a `tool_call` step invokes: the tool context's name, else the
/// step input's `tool` string.
fn tool_name(request: &Request) -> Option<&str> {
    request
        .tool_name()
        .or_else(|| request.input().get("tool")?.as_str())
}

/// Blocks forbidden tools and holds sensitive ones for approval.
pub fn evaluate(request: &Request) -> Result<Decision, SettingsError> {
    let settings: Settings = request.settings()?;
    if request.step_type() != "tool_call" {
        return Ok(Decision::allow());
    }
    let Some(tool) = tool_name(request) else {
        return Ok(Decision::allow());
    };
    let listed = |list: &[String]| list.iter().any(|name| name == tool);
    Ok(if listed(&settings.blocked_tools) {
        Decision::block(format!("tool {tool:?} is blocked by policy"))
    } else if listed(&settings.tools) {
        Decision::require_approval(format!("tool {tool:?} requires human approval"))
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
    use wcp_policy_sdk::{json, testing::RequestBuilder};

    fn tool(name: &str) -> RequestBuilder {
        RequestBuilder::new("tool_call").tool(name)
    }

    #[test]
    fn decides_by_tool_name_and_lists() {
        let defaults = json!({});
        let blocking = json!({"blocked_tools": ["drop_table", "send_email"]});
        let own = json!({"tools": ["deploy"]});
        let cases = [
            ("default send_email", "send_email", &defaults, Approve),
            ("default delete_user", "delete_user", &defaults, Approve),
            ("default transfer", "transfer_funds", &defaults, Approve),
            ("unlisted tool", "search_web", &defaults, Allow),
            ("names match exactly", "Send_Email", &defaults, Allow),
            ("blocked tool", "drop_table", &blocking, Block),
            ("blocked wins over approval", "send_email", &blocking, Block),
            ("approvals still apply", "delete_user", &blocking, Approve),
            ("own approval list", "deploy", &own, Approve),
            ("own list replaces defaults", "send_email", &own, Allow),
        ];
        for (name, tool_name, settings, expected) in cases {
            let request = tool(tool_name).settings(settings.clone()).build();
            let decision = evaluate(&request).unwrap();
            assert_eq!(decision.verdict(), expected, "{name}: {decision:?}");
        }
    }

    #[test]
    fn finds_the_tool_name() {
        let step = RequestBuilder::new;
        let sent = json!({"tool": "send_email"});
        let by_input = step("tool_call").input(sent.clone());
        let not_a_string = step("tool_call").input(json!({"tool": 1}));
        let cases = [
            ("tool_context", tool("send_email"), Approve),
            ("step_input.tool", by_input, Approve),
            ("context first", tool("x").input(sent.clone()), Allow),
            ("input tool not a string", not_a_string, Allow),
            ("no tool named", step("tool_call"), Allow),
            ("not a tool_call", step("llm_call").input(sent), Allow),
        ];
        for (name, request, expected) in cases {
            let decision = evaluate(&request.build()).unwrap();
            assert_eq!(decision.verdict(), expected, "{name}: {decision:?}");
        }
    }

    #[test]
    fn reasons_name_the_tool() {
        let reason = |request: RequestBuilder| {
            evaluate(&request.build())
                .unwrap()
                .reason()
                .map(String::from)
        };
        let approval = reason(tool("send_email")).unwrap();
        assert_eq!(approval, r#"tool "send_email" requires human approval"#);
        let blocked = reason(tool("rm").settings(json!({"blocked_tools": ["rm"]}))).unwrap();
        assert_eq!(blocked, r#"tool "rm" is blocked by policy"#);
        assert_eq!(reason(tool("search_web")), None);
    }

    #[test]
    fn malformed_settings_are_an_error() {
        let request = tool("send_email").settings(json!({"blocked_tools": [1]}));
        assert!(evaluate(&request.build()).is_err());
    }
}
