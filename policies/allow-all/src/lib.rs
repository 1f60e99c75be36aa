//! Allows every step: the smallest useful policy.
use wcp_policy_sdk::{Decision, Request, export_policy};

/// Lets every step run.
pub fn evaluate(_request: &Request) -> Decision {
    Decision::allow()
}

export_policy!(evaluate);
