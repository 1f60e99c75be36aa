//! The three answers a gate can give, ordered by how restrictive they are.

use serde::{Deserialize, Serialize};

/// A policy's verdict on a step, and the gate's combined decision.
///
/// The derived order is by restrictiveness, so the combined decision of
/// several policies is simply the maximum: `block` > `require_approval` >
/// `allow`. Approving a step must never unlock what another policy blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Let the step run.
    Allow,
    /// Hold the step until a human approves it.
    RequireApproval,
    /// Refuse the step.
    Block,
}

impl Verdict {
    /// The verdict as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::RequireApproval => "require_approval",
            Verdict::Block => "block",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Verdict::Allow),
            "require_approval" => Ok(Verdict::RequireApproval),
            "block" => Ok(Verdict::Block),
            other => Err(format!(
                "unknown verdict `{other}` (expected allow, block or require_approval)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict;

    #[test]
    fn most_restrictive_wins() {
        let all = [Verdict::Allow, Verdict::Block, Verdict::RequireApproval];
        assert_eq!(all.iter().max(), Some(&Verdict::Block));
        assert!(Verdict::RequireApproval > Verdict::Allow);
    }

    #[test]
    fn parses_and_prints_api_names() {
        for verdict in [Verdict::Allow, Verdict::Block, Verdict::RequireApproval] {
            assert_eq!(verdict.as_str().parse::<Verdict>(), Ok(verdict));
        }
        assert!("BLOCK".parse::<Verdict>().is_err());
    }
}
