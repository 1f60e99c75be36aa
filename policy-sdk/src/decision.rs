//! What a policy answers.

use std::fmt;

use crate::SettingsError;

/// A policy's verdict on one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Let the step run.
    Allow,
    /// Refuse the step.
    Block,
    /// Hold the step until a human approves it.
    RequireApproval,
}

impl Verdict {
    /// The verdict as the gate API spells it: `allow`, `block`, `require_approval`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Block => "block",
            Verdict::RequireApproval => "require_approval",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verdict with an optional reason, returned from a policy's `evaluate`.
///
/// The reason is shown to the orchestrator and kept in the audit log, so it
/// should explain the decision without echoing sensitive input. The host cuts
/// reasons longer than 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    verdict: Verdict,
    reason: Option<String>,
}

impl Decision {
    /// Lets the step run.
    pub fn allow() -> Self {
        Decision {
            verdict: Verdict::Allow,
            reason: None,
        }
    }

    /// Refuses the step, saying why.
    pub fn block(reason: impl Into<String>) -> Self {
        Decision {
            verdict: Verdict::Block,
            reason: Some(reason.into()),
        }
    }

    /// Holds the step for human approval, saying why.
    pub fn require_approval(reason: impl Into<String>) -> Self {
        Decision {
            verdict: Verdict::RequireApproval,
            reason: Some(reason.into()),
        }
    }

    /// Replaces the reason; useful to explain an `allow`.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// The verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The reason, if any.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// `true` when the verdict is [`Verdict::Allow`].
    pub fn is_allow(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// `true` when the verdict is [`Verdict::Block`].
    pub fn is_block(&self) -> bool {
        self.verdict == Verdict::Block
    }

    /// `true` when the verdict is [`Verdict::RequireApproval`].
    pub fn is_require_approval(&self) -> bool {
        self.verdict == Verdict::RequireApproval
    }

    /// Splits the decision into its parts.
    pub fn into_parts(self) -> (Verdict, Option<String>) {
        (self.verdict, self.reason)
    }
}

/// What an `evaluate` function may return: a [`Decision`], or a
/// `Result<Decision, SettingsError>` so that `request.settings()?` works.
///
/// Settings that do not fit the policy's settings type block the step with a
/// reason naming the problem: a misconfigured policy fails closed, visibly.
pub trait IntoDecision {
    /// Converts into the decision sent to the host.
    fn into_decision(self) -> Decision;
}

impl IntoDecision for Decision {
    fn into_decision(self) -> Decision {
        self
    }
}

impl IntoDecision for Result<Decision, SettingsError> {
    fn into_decision(self) -> Decision {
        self.unwrap_or_else(|error| Decision::block(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_verdict_and_reason() {
        assert_eq!(Decision::allow().verdict(), Verdict::Allow);
        assert_eq!(Decision::allow().reason(), None);
        let block = Decision::block("no");
        assert!(block.is_block());
        assert_eq!(block.reason(), Some("no"));
        assert!(Decision::require_approval("ask").is_require_approval());
        assert_eq!(Decision::allow().with_reason("fine").reason(), Some("fine"));
    }

    #[test]
    fn settings_error_becomes_a_block_naming_the_problem() {
        let err: Result<Decision, SettingsError> = Err(SettingsError::new("missing field `x`"));
        let decision = err.into_decision();
        assert!(decision.is_block());
        assert_eq!(
            decision.reason(),
            Some("invalid policy settings: missing field `x`")
        );
    }
}
