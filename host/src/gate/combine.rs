//! Folding policy runs into one gate decision (contract §4.2).

use super::evaluate::{Action, PolicyRun};
use crate::verdict::Verdict;

/// The gate's decision and how it came about.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    /// The most restrictive effective verdict; `allow` when nothing ran.
    pub decision: Verdict,
    /// `No matching policies` for an allow, else the deciding runs' reasons.
    pub reason: String,
    /// Every run, in order (`policies_evaluated`).
    pub evaluated: Vec<PolicyRun>,
    /// Runs whose own action is not `allow`, errors included
    /// (`policies_matched`).
    pub matched: Vec<PolicyRun>,
    /// Ids of the matched runs (`policy_ids`).
    pub policy_ids: Vec<String>,
}

/// Combines runs: `block` > `require_approval` > `allow`. Approving a step
/// must never unlock what another policy blocked, so `block` ranks first
/// (unlike AxonFlow).
pub fn combine(evaluated: Vec<PolicyRun>) -> Combined {
    let decision = evaluated
        .iter()
        .map(PolicyRun::effective)
        .max()
        .unwrap_or(Verdict::Allow);
    let reason = match decision {
        Verdict::Allow => String::from("No matching policies"),
        _ => evaluated
            .iter()
            .filter(|run| run.effective() == decision)
            .map(|run| contribution(run, decision))
            .collect::<Vec<_>>()
            .join("; "),
    };
    let matched: Vec<PolicyRun> = evaluated
        .iter()
        .filter(|run| run.action != Action::Allow)
        .cloned()
        .collect();
    let policy_ids = matched.iter().map(|run| run.policy_id.clone()).collect();
    Combined {
        decision,
        reason,
        evaluated,
        matched,
        policy_ids,
    }
}

/// What one deciding run adds to the reason.
fn contribution(run: &PolicyRun, decision: Verdict) -> String {
    if let Some(error) = &run.error {
        return format!("Policy {} failed ({})", run.policy_id, error.kind.as_str());
    }
    match run.reason.as_deref() {
        Some(reason) if !reason.is_empty() => reason.to_owned(),
        _ => match decision {
            Verdict::Block => format!("Blocked by policy {}", run.policy_id),
            _ => format!("Approval required by policy {}", run.policy_id),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{RunError, RunErrorKind};

    fn run(id: &str, action: Action, reason: Option<&str>) -> PolicyRun {
        let effective = match action {
            Action::Allow => Verdict::Allow,
            Action::Block | Action::Error => Verdict::Block,
            Action::RequireApproval => Verdict::RequireApproval,
        };
        PolicyRun {
            policy_id: id.into(),
            policy_name: id.rsplit('/').next().unwrap_or(id).into(),
            action,
            reason: reason.map(Into::into),
            duration_us: 10,
            policy_version: Some("0123456789ab".into()),
            error: None,
            effective: Some(effective),
            dropped_log_bytes: 0,
        }
    }

    fn fault(id: &str, kind: RunErrorKind, on_error: Verdict) -> PolicyRun {
        PolicyRun {
            error: Some(RunError {
                kind,
                message: "x".into(),
            }),
            effective: Some(on_error),
            ..run(id, Action::Error, None)
        }
    }

    #[test]
    fn the_contract_example() {
        let combined = combine(vec![
            run("global/a", Action::Block, Some("PII in input")),
            run("global/b", Action::RequireApproval, Some("needs a human")),
            fault("global/c", RunErrorKind::Timeout, Verdict::Block),
        ]);
        assert_eq!(combined.decision, Verdict::Block);
        assert_eq!(
            combined.reason,
            "PII in input; Policy global/c failed (timeout)"
        );
        assert_eq!(combined.policy_ids, ["global/a", "global/b", "global/c"]);
        assert_eq!(combined.evaluated.len(), 3);
    }

    #[test]
    fn combination_table() {
        // (name, runs, decision, reason, policy_ids)
        type Case = (
            &'static str,
            Vec<PolicyRun>,
            Verdict,
            &'static str,
            Vec<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing ran",
                vec![],
                Verdict::Allow,
                "No matching policies",
                vec![],
            ),
            (
                "all allow",
                vec![run("global/a", Action::Allow, Some("fine"))],
                Verdict::Allow,
                "No matching policies",
                vec![],
            ),
            (
                "approval over allow, only non-allow matched",
                vec![
                    run("global/a", Action::Allow, None),
                    run("acme/b", Action::RequireApproval, Some("Over 10000 USD")),
                ],
                Verdict::RequireApproval,
                "Over 10000 USD",
                vec!["acme/b"],
            ),
            (
                "block reasons joined, approval reasons left out",
                vec![
                    run("global/a", Action::Block, Some("first")),
                    run("global/b", Action::RequireApproval, Some("ask")),
                    run("acme/c", Action::Block, Some("second")),
                ],
                Verdict::Block,
                "first; second",
                vec!["global/a", "global/b", "acme/c"],
            ),
            (
                "missing reasons get a sentence naming the policy",
                vec![
                    run("global/a", Action::Block, None),
                    run("global/b", Action::Block, Some("")),
                ],
                Verdict::Block,
                "Blocked by policy global/a; Blocked by policy global/b",
                vec!["global/a", "global/b"],
            ),
            (
                "approval without a reason",
                vec![run("acme/x", Action::RequireApproval, None)],
                Verdict::RequireApproval,
                "Approval required by policy acme/x",
                vec!["acme/x"],
            ),
            (
                "a fault with on_error allow allows but is still matched",
                vec![fault("global/t", RunErrorKind::Trap, Verdict::Allow)],
                Verdict::Allow,
                "No matching policies",
                vec!["global/t"],
            ),
            (
                "a fault with on_error require_approval",
                vec![
                    run("global/a", Action::Allow, None),
                    fault(
                        "global/m",
                        RunErrorKind::MemoryLimit,
                        Verdict::RequireApproval,
                    ),
                ],
                Verdict::RequireApproval,
                "Policy global/m failed (memory_limit)",
                vec!["global/m"],
            ),
            (
                "an unavailable policy fails closed",
                vec![fault("global/u", RunErrorKind::Unavailable, Verdict::Block)],
                Verdict::Block,
                "Policy global/u failed (unavailable)",
                vec!["global/u"],
            ),
        ];
        for (name, runs, decision, reason, ids) in cases {
            let combined = combine(runs);
            assert_eq!(combined.decision, decision, "{name}");
            assert_eq!(combined.reason, reason, "{name}");
            assert_eq!(combined.policy_ids, ids, "{name}");
            assert_eq!(combined.matched.len(), ids.len(), "{name}");
        }
    }

    #[test]
    fn entries_serialise_with_contract_names() {
        let json = serde_json::to_value(fault("global/c", RunErrorKind::Timeout, Verdict::Block))
            .expect("serialises");
        assert_eq!(json["action"], "error");
        assert_eq!(json["error"]["kind"], "timeout");
        assert_eq!(json["policy_version"], "0123456789ab");
        assert!(json.get("reason").is_none());
        assert!(json.get("effective").is_none());
        let allow = serde_json::to_value(run("global/a", Action::RequireApproval, Some("r")))
            .expect("serialises");
        assert_eq!(allow["action"], "require_approval");
        assert_eq!(allow["reason"], "r");
    }
}
