//! A policy's manifest: the optional `<name>.toml` beside `<name>.wasm`
//! (contract §6.1). It sets when the policy runs, its limits, what a fault
//! means, and the settings it receives.
//!
//! ```toml
//! priority = 10                  # lower runs first (default 100)
//! step_types = ["tool_call"]     # absent: every step type
//! timeout_ms = 50                # 1-10000 (default 100)
//! memory_mib = 16                # 1-1024 (default 32)
//! on_error = "require_approval"  # block | require_approval | allow (default block)
//! enabled = true
//!
//! [settings]                     # given to the policy as JSON
//! tools = ["send_email", "wire_transfer"]
//! ```
//!
//! Unknown keys make the manifest invalid, so a typo (`timeout = 5`) is an
//! error rather than a silently ignored limit.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::runtime::Limits;
use crate::verdict::Verdict;

/// Largest manifest accepted, on disk or uploaded.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// Why a manifest is refused; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid manifest: {0}")]
pub struct ManifestError(String);

/// The manifest as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    priority: Option<i64>,
    step_types: Option<Vec<String>>,
    timeout_ms: Option<u64>,
    memory_mib: Option<u64>,
    on_error: Option<String>,
    enabled: Option<bool>,
    settings: Option<toml::Table>,
}

/// A validated manifest with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Evaluation order, lower first.
    pub priority: i64,
    /// Step types the policy applies to; `None` means all.
    pub step_types: Option<Vec<String>>,
    /// Deadline per evaluation, in milliseconds.
    pub timeout_ms: u64,
    /// Memory cap per evaluation, in MiB.
    pub memory_mib: u64,
    /// The verdict a fault turns into.
    pub on_error: Verdict,
    /// Whether the policy runs at all.
    pub enabled: bool,
    /// The `[settings]` table as a JSON object.
    pub settings: Value,
    /// `settings` serialised once, as the policy receives it.
    settings_json: String,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            priority: 100,
            step_types: None,
            timeout_ms: 100,
            memory_mib: 32,
            on_error: Verdict::Block,
            enabled: true,
            settings: Value::Object(Map::new()),
            settings_json: String::from("{}"),
        }
    }
}

impl Manifest {
    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError(format!(
                "larger than {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        let file: ManifestFile =
            toml::from_str(text).map_err(|e| ManifestError(one_line(&e.to_string())))?;
        let defaults = Manifest::default();
        let timeout_ms = in_range(
            "timeout_ms",
            file.timeout_ms,
            1,
            10_000,
            defaults.timeout_ms,
        )?;
        let memory_mib = in_range("memory_mib", file.memory_mib, 1, 1024, defaults.memory_mib)?;
        let on_error = match file.on_error.as_deref() {
            None => defaults.on_error,
            Some(text) => text.parse().map_err(|_| {
                ManifestError(format!(
                    "on_error must be \"block\", \"require_approval\" or \"allow\", not {text:?}"
                ))
            })?,
        };
        let settings = Value::Object(
            file.settings
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| (key, toml_to_json(value)))
                .collect(),
        );
        Ok(Manifest {
            priority: file.priority.unwrap_or(defaults.priority),
            step_types: file.step_types,
            timeout_ms,
            memory_mib,
            on_error,
            enabled: file.enabled.unwrap_or(defaults.enabled),
            settings_json: settings.to_string(),
            settings,
        })
    }

    /// The settings as the JSON text the policy receives.
    pub fn settings_json(&self) -> &str {
        &self.settings_json
    }

    /// The policy's deadline and memory cap.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: (self.memory_mib as usize) << 20,
        }
    }

    /// Whether the policy runs for a step of this type.
    pub fn applies_to(&self, step_type: &str) -> bool {
        self.enabled
            && self
                .step_types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == step_type))
    }
}

fn in_range(
    key: &str,
    value: Option<u64>,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, ManifestError> {
    match value {
        None => Ok(default),
        Some(value) if (min..=max).contains(&value) => Ok(value),
        Some(value) => Err(ManifestError(format!(
            "{key} must be between {min} and {max}, not {value}"
        ))),
    }
}

/// TOML to JSON; dates and times become their RFC 3339 text.
fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(key, value)| (key, toml_to_json(value)))
                .collect(),
        ),
    }
}

/// TOML errors span several lines with a source excerpt; keep the gist.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with('|')
                && !line.chars().all(|c| c == '^' || c == ' ')
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_empty_manifest_has_the_contract_defaults() {
        let manifest = Manifest::parse("").expect("valid");
        assert_eq!(manifest, Manifest::default());
        assert_eq!(manifest.priority, 100);
        assert_eq!(manifest.timeout_ms, 100);
        assert_eq!(manifest.memory_mib, 32);
        assert_eq!(manifest.on_error, Verdict::Block);
        assert!(manifest.applies_to("anything"));
        assert_eq!(manifest.settings_json(), "{}");
    }

    #[test]
    fn reads_every_key() {
        let manifest = Manifest::parse(
            r#"
            priority = -5
            step_types = ["tool_call", "llm_call"]
            timeout_ms = 250
            memory_mib = 64
            on_error = "require_approval"
            enabled = true

            [settings]
            tools = ["send_email"]
            max_usd = 12.5
            nested = { on = true, since = 2026-01-01 }
            "#,
        )
        .expect("valid");
        assert_eq!(manifest.priority, -5);
        assert!(manifest.applies_to("llm_call"));
        assert!(!manifest.applies_to("human_task"));
        assert_eq!(manifest.limits().timeout, Duration::from_millis(250));
        assert_eq!(manifest.limits().memory_bytes, 64 << 20);
        assert_eq!(manifest.on_error, Verdict::RequireApproval);
        assert_eq!(
            manifest.settings,
            json!({"tools": ["send_email"], "max_usd": 12.5, "nested": {"on": true, "since": "2026-01-01"}})
        );
        let reparsed: Value = serde_json::from_str(manifest.settings_json()).expect("JSON");
        assert_eq!(reparsed, manifest.settings);
    }

    #[test]
    fn a_disabled_policy_applies_to_nothing() {
        let manifest = Manifest::parse("enabled = false").expect("valid");
        assert!(!manifest.applies_to("llm_call"));
    }

    #[test]
    fn invalid_manifests_name_the_problem() {
        let cases = [
            ("unknown key", "timeout = 5", "timeout"),
            (
                "timeout zero",
                "timeout_ms = 0",
                "timeout_ms must be between 1 and 10000",
            ),
            (
                "timeout too long",
                "timeout_ms = 10001",
                "timeout_ms must be between 1 and 10000",
            ),
            (
                "memory too big",
                "memory_mib = 2048",
                "memory_mib must be between 1 and 1024",
            ),
            ("bad on_error", "on_error = \"ignore\"", "on_error must be"),
            ("wrong type", "priority = \"high\"", "priority"),
            ("not toml", "priority = = 1", "invalid manifest"),
            (
                "step_types not a list",
                "step_types = \"llm_call\"",
                "step_types",
            ),
        ];
        for (name, text, needle) in cases {
            let error = Manifest::parse(text).expect_err(name);
            let message = error.to_string();
            assert!(message.contains(needle), "{name}: {message}");
            assert!(!message.contains('\n'), "{name}: {message}");
        }
    }

    #[test]
    fn oversized_manifests_are_refused() {
        let text = format!("# {}", "x".repeat(MAX_MANIFEST_BYTES));
        assert!(Manifest::parse(&text).is_err());
    }
}
