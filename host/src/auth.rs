//! Who is calling (contract §1.2): tenant, org, actor and roles come only
//! from credentials; `X-Tenant-ID` and friends are never read.
//!
//! The server runs in one of two modes: community mode (here) or tenants
//! mode (the `tenants` module, built on this one's types). Handlers only see the [`Caller`]
//! (or [`Authorized`], which also checks roles).
//!
//! This module knows no HTTP: it reads the `Authorization` header's text
//! and answers an [`AuthError`]; `api/auth.rs` makes the extractors and the
//! HTTP answers of both.

use std::marker::PhantomData;

use crate::fields::valid_tenant_id;

/// Why a caller is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials, or wrong ones (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Known but not allowed: a disabled client, a missing role (403).
    #[error("{0}")]
    Forbidden(String),
    /// Too many failures from this address; retry after this many seconds
    /// (429).
    #[error("Too many failed authentication attempts")]
    Throttled {
        /// Whole seconds until a retry can succeed, at least 1.
        retry_after: u32,
    },
    /// The check itself failed (500).
    #[error("{0}")]
    Internal(String),
}

/// Tenant and actor of a community-mode caller without credentials.
pub const COMMUNITY: &str = "community";
/// Org of every community-mode caller.
pub const DEFAULT_ORG: &str = "default";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Workflow writes and reads, policy reads.
    Member,
    /// Approve and reject; workflow reads.
    Approver,
    /// Policy writes, audit; policy reads.
    Admin,
}

impl Role {
    /// The role as the tenants file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Tenant every read and write is scoped to.
    pub tenant: String,
    /// Organisation within the tenant.
    pub org: String,
    /// Who acts: client id, community username or `community`.
    pub actor: String,
    /// Roles granted.
    pub roles: Vec<Role>,
    /// The most workflows the caller's tenant may have in progress when
    /// this caller creates or revives one, if its credentials set one.
    pub workflow_limit: Option<u64>,
}

impl Caller {
    /// Whether the caller holds one of `roles`.
    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|role| self.roles.contains(role))
    }
}

/// The caller of community mode: no credentials needed; the Basic
/// username, if any, is the tenant.
pub(crate) fn community(authorization: Option<&str>) -> Result<Caller, AuthError> {
    let invalid = || AuthError::Unauthorized("Invalid tenant name");
    let tenant = match basic_credentials(authorization) {
        None => COMMUNITY.to_owned(),
        Some(None) => return Err(invalid()),
        Some(Some((username, _password))) if valid_tenant_id(&username) => username,
        Some(Some(_)) => return Err(invalid()),
    };
    Ok(Caller {
        actor: tenant.clone(),
        tenant,
        org: DEFAULT_ORG.to_owned(),
        roles: vec![Role::Member, Role::Approver, Role::Admin],
        workflow_limit: None,
    })
}

/// `None`: no Basic credentials sent. `Some(None)`: Basic credentials that
/// cannot be read. `Some(Some((user, password)))` otherwise.
#[allow(clippy::type_complexity)]
pub(crate) fn basic_credentials(authorization: Option<&str>) -> Option<Option<(String, String)>> {
    let (scheme, encoded) = authorization?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = decode_base64(encoded.trim()).and_then(|bytes| String::from_utf8(bytes).ok());
    Some(decoded.map(|text| match text.split_once(':') {
        Some((user, password)) => (user.to_owned(), password.to_owned()),
        None => (text, String::new()),
    }))
}

/// Standard base64 with padding (RFC 4648 §4), as Basic credentials use.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let last = index + 1 == bytes.len() / 4;
        let padding = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut group = 0u32;
        for &c in &chunk[..4 - padding] {
            group = (group << 6) | value(c)?;
        }
        group <<= 6 * padding as u32;
        let [_, a, b, c] = group.to_be_bytes();
        out.extend_from_slice(&[a, b, c][..3 - padding]);
    }
    Some(out)
}

/// The roles a group of routes needs (contract §1.2).
pub trait Access {
    /// Any one of these is enough.
    const ROLES: &'static [Role];
}

/// Policy list, get and evaluate: `member` or `admin`.
#[derive(Debug)]
pub struct PolicyRead;

impl Access for PolicyRead {
    const ROLES: &'static [Role] = &[Role::Member, Role::Admin];
}

/// Policy upload and delete: `admin`.
#[derive(Debug)]
pub struct PolicyWrite;

impl Access for PolicyWrite {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// Workflow writes: `member`.
#[derive(Debug)]
pub struct WorkflowWrite;

impl Access for WorkflowWrite {
    const ROLES: &'static [Role] = &[Role::Member];
}

/// Workflow reads: `member` or `approver`.
#[derive(Debug)]
pub struct WorkflowRead;

impl Access for WorkflowRead {
    const ROLES: &'static [Role] = &[Role::Member, Role::Approver];
}

/// The audit trail: `admin`.
#[derive(Debug)]
pub struct AuditRead;

impl Access for AuditRead {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// Approve and reject: `approver`.
#[derive(Debug)]
pub struct Approve;

impl Access for Approve {
    const ROLES: &'static [Role] = &[Role::Approver];
}

/// A caller holding one of `A`'s roles. As an extractor it runs before the
/// path and the body are read, keeping the contract's order (§1.8).
#[derive(Debug)]
pub struct Authorized<A>(pub Caller, pub PhantomData<A>);

impl Caller {
    /// `Ok` when the caller holds one of the roles `A` needs.
    pub fn require<A: Access>(&self) -> Result<(), AuthError> {
        if self.has_any(A::ROLES) {
            return Ok(());
        }
        let names: Vec<&str> = A::ROLES.iter().map(|role| role.as_str()).collect();
        Err(AuthError::Forbidden(format!(
            "Role {} required",
            names.join(" or ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_standard_vectors() {
        let cases = [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
        ];
        for (encoded, plain) in cases {
            assert_eq!(
                decode_base64(encoded).as_deref(),
                Some(plain.as_bytes()),
                "{encoded}"
            );
        }
        for bad in ["Zg=", "Z===", "Zg==Zm9v", "Zm9*"] {
            assert_eq!(decode_base64(bad), None, "{bad}");
        }
    }

    #[test]
    fn community_callers_by_credentials() {
        // (name, Authorization header, tenant or None for 401)
        let cases = [
            ("no header", None, Some("community")),
            (
                "sdk default community:",
                Some("Basic Y29tbXVuaXR5Og=="),
                Some("community"),
            ),
            (
                "acme with a password",
                Some("Basic YWNtZTpzZWNyZXQ="),
                Some("acme"),
            ),
            ("lowercase scheme", Some("basic YWNtZTo="), Some("acme")),
            (
                "bearer is not basic",
                Some("Bearer token"),
                Some("community"),
            ),
            ("reserved name global", Some("Basic Z2xvYmFsOg=="), None),
            ("slash in name", Some("Basic YS9iOg=="), None),
            ("empty username", Some("Basic OnNlY3JldA=="), None),
            ("not base64", Some("Basic !!!"), None),
        ];
        for (name, header, tenant) in cases {
            let result = community(header);
            match tenant {
                Some(tenant) => {
                    let caller = result.expect(name);
                    assert_eq!(caller.tenant, tenant, "{name}");
                    assert_eq!(caller.actor, tenant, "{name}");
                    assert_eq!(caller.org, "default", "{name}");
                    assert!(caller.has_any(&[Role::Admin]), "{name}");
                }
                None => assert!(
                    matches!(result, Err(AuthError::Unauthorized("Invalid tenant name"))),
                    "{name}"
                ),
            }
        }
    }
}
