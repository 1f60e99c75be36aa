//! Tenants mode (contract §1.2): the file of API clients, each with a hashed
//! secret, the tenant and org it acts in and its roles.
//!
//! ```toml
//! [[clients]]
//! client_id = "acme-orchestrator"
//! secret_hash = "$argon2id$v=19$..."   # from `wcp tenants hash-secret`
//! tenant = "acme"
//! org = "acme-org"
//! roles = ["member"]                   # member | approver | admin
//! enabled = true                       # default true
//! max_concurrent_workflows = 25        # optional; absent = unlimited
//! ```
//!
//! Unknown keys are errors, as in manifests, so a typo never silently drops a
//! limit. Errors are one line naming the client and the key, and never quote
//! a `secret_hash` (it might be a secret pasted in clear) nor a source line.
//!
//! - `file`: reading and parsing the file. `validate`: checking each
//!   client's fields, each mistake one line naming the client and the key.
//! - [`secret`]: hashing secrets and verifying them, with a short-lived cache.
//! - [`limiter`]: refusing a client id after repeated failures.

pub mod authenticator;
mod file;
pub mod limiter;
pub mod secret;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::auth::Role;

pub use authenticator::{Authenticator, TenantsAuth};
pub use limiter::FailureLimiter;
pub use secret::{SecretError, Verifier, hash_secret};

/// Largest tenants file read.
pub const MAX_TENANTS_FILE_BYTES: u64 = 1024 * 1024;

/// Longest `client_id`.
pub const MAX_CLIENT_ID_CHARS: usize = 128;

/// Longest `org`.
pub const MAX_ORG_CHARS: usize = 128;

/// One API client of the tenants file.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    /// The Basic-auth username; also the actor of what the client does.
    pub client_id: String,
    /// The secret as an argon2id PHC string; never the secret itself.
    pub secret_hash: String,
    /// Tenant every read and write of the client is scoped to.
    pub tenant: String,
    /// Organisation within the tenant.
    pub org: String,
    /// Roles granted: non-empty, without duplicates.
    pub roles: Vec<Role>,
    /// A disabled client is refused (403) even with the right secret.
    pub enabled: bool,
    /// The most workflows the client's tenant may have in progress; `None`
    /// is unlimited.
    pub max_concurrent_workflows: Option<u64>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("secret_hash", &"<redacted>")
            .field("tenant", &self.tenant)
            .field("org", &self.org)
            .field("roles", &self.roles)
            .field("enabled", &self.enabled)
            .field("max_concurrent_workflows", &self.max_concurrent_workflows)
            .finish()
    }
}

/// A validated tenants file: at least one client, ids unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantsFile {
    clients: BTreeMap<String, Client>,
}

/// Why a tenants file is refused; one line, never quoting a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantsError {
    /// The file cannot be read, is too large or is not UTF-8.
    #[error("cannot read tenants file {}: {message}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The text is not a valid tenants file.
    #[error("invalid tenants file{}: {message}", in_file(.path.as_deref()))]
    Invalid {
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// The problem, naming the client (`clients[2] (acme-ci)`) and key.
        message: String,
    },
}

fn in_file(path: Option<&Path>) -> String {
    path.map(|path| format!(" {}", path.display()))
        .unwrap_or_default()
}

impl TenantsError {
    fn invalid(message: impl Into<String>) -> Self {
        TenantsError::Invalid {
            path: None,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid argon2id PHC string (of "s3cret"), computed once.
    pub(super) fn phc() -> &'static str {
        static PHC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        PHC.get_or_init(|| hash_secret("s3cret").expect("hashes"))
    }

    fn client_toml(extra: &str) -> String {
        format!(
            "[[clients]]\nclient_id = \"acme-ci\"\nsecret_hash = \"{}\"\ntenant = \"acme\"\norg = \"acme-org\"\nroles = [\"member\"]\n{extra}",
            phc()
        )
    }

    #[test]
    fn parses_every_field_and_applies_defaults() {
        let text = format!(
            "{}\n[[clients]]\nclient_id = \"ops.bot@acme\"\nsecret_hash = \"{}\"\ntenant = \"Acme.Corp_1\"\norg = \"ops\"\nroles = [\"approver\", \"admin\"]\nenabled = false\nmax_concurrent_workflows = 25\n",
            client_toml(""),
            phc()
        );
        let file = TenantsFile::parse(&text).expect("valid");
        assert_eq!(file.len(), 2);
        assert!(!file.is_empty());
        let ci = file.client("acme-ci").expect("present");
        assert_eq!(
            ci,
            &Client {
                client_id: "acme-ci".to_owned(),
                secret_hash: phc().to_owned(),
                tenant: "acme".to_owned(),
                org: "acme-org".to_owned(),
                roles: vec![Role::Member],
                enabled: true,
                max_concurrent_workflows: None,
            }
        );
        let ops = file.client("ops.bot@acme").expect("present");
        assert_eq!(ops.tenant, "Acme.Corp_1");
        assert_eq!(ops.roles, vec![Role::Approver, Role::Admin]);
        assert!(!ops.enabled);
        assert_eq!(ops.max_concurrent_workflows, Some(25));
        assert!(file.client("nobody").is_none());
        let ids: Vec<&str> = file.clients().map(|c| c.client_id.as_str()).collect();
        assert_eq!(ids, ["acme-ci", "ops.bot@acme"]);
        assert_eq!(
            file.tenants().into_iter().collect::<Vec<_>>(),
            ["Acme.Corp_1", "acme"]
        );
    }

    #[test]
    fn each_mistake_is_one_line_naming_the_client_and_key() {
        let without = |key: &str| {
            client_toml("")
                .lines()
                .filter(|line| !line.starts_with(&format!("{key} =")))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let replaced = |key: &str, value: &str| {
            client_toml("")
                .lines()
                .map(|line| {
                    if line.starts_with(&format!("{key} =")) {
                        format!("{key} = {value}")
                    } else {
                        line.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let twice = format!("{}\n{}", client_toml(""), client_toml(""));
        let long_id = format!("\"{}\"", "c".repeat(129));
        let long_org = format!("\"{}\"", "o".repeat(129));
        // (name, file, expected substring)
        let cases: Vec<(&str, String, &str)> = vec![
            ("empty file", String::new(), "no clients"),
            ("empty list", "clients = []".to_owned(), "no clients"),
            (
                "unknown top-level key",
                "tenant_mode = true\n".to_owned(),
                "line 1, column 1: unknown field `tenant_mode`",
            ),
            (
                "one table, not an array",
                "[clients]\nclient_id = \"a\"\n".to_owned(),
                "invalid tenants file: clients: must be [[clients]] tables",
            ),
            (
                "not a table",
                "clients = [\"acme-ci\"]\n".to_owned(),
                "invalid tenants file: clients[0]: must be a table",
            ),
            (
                "syntax error",
                "[[clients]\n".to_owned(),
                "invalid tenants file: line 1",
            ),
            (
                "unknown client key",
                client_toml("max_workflows = 3"),
                "clients[0] (acme-ci): unknown field `max_workflows`",
            ),
            (
                "wrong type",
                client_toml("enabled = \"yes\""),
                "clients[0] (acme-ci): enabled: invalid type",
            ),
            (
                "unknown role",
                replaced("roles", "[\"root\"]"),
                "clients[0] (acme-ci): roles: unknown variant `root`",
            ),
            (
                "missing client_id",
                without("client_id"),
                "clients[0]: client_id: missing",
            ),
            (
                "empty client_id",
                replaced("client_id", "\"\""),
                "clients[0]: client_id: must not be empty",
            ),
            (
                "long client_id",
                replaced("client_id", &long_id),
                "client_id: must be at most 128 characters, not 129",
            ),
            (
                "colon in client_id",
                replaced("client_id", "\"acme:ci\""),
                "clients[0]: client_id: must be printable ASCII without ':' or whitespace, not \"acme:ci\"",
            ),
            (
                "space in client_id",
                replaced("client_id", "\"acme ci\""),
                "client_id: must be printable ASCII",
            ),
            (
                "non-ASCII client_id",
                replaced("client_id", "\"acmé\""),
                "client_id: must be printable ASCII",
            ),
            (
                "duplicate client_id",
                twice,
                "clients[1] (acme-ci): client_id is already used by clients[0]",
            ),
            (
                "missing secret_hash",
                without("secret_hash"),
                "clients[0] (acme-ci): secret_hash: missing",
            ),
            (
                "secret in clear",
                replaced("secret_hash", "\"hunter2\""),
                "secret_hash: not a PHC string; put the output of `wcp tenants hash-secret` here",
            ),
            (
                "argon2i",
                replaced(
                    "secret_hash",
                    "\"$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$9gfJ8s2eAbI0yITm3JmbJA\"",
                ),
                "secret_hash: must be an argon2id PHC string",
            ),
            (
                "other algorithm",
                replaced(
                    "secret_hash",
                    "\"$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$9gfJ8s2eAbI0yITm3JmbJA\"",
                ),
                "secret_hash: must be an argon2id PHC string",
            ),
            (
                "argon2id without a hash",
                replaced("secret_hash", "\"$argon2id$v=19$m=19456,t=2,p=1\""),
                "secret_hash: an incomplete argon2id PHC string",
            ),
            (
                "missing tenant",
                without("tenant"),
                "clients[0] (acme-ci): tenant: missing",
            ),
            (
                "tenant global",
                replaced("tenant", "\"global\""),
                "tenant: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63} and not be \"global\", not \"global\"",
            ),
            (
                "tenant with a slash",
                replaced("tenant", "\"a/b\""),
                "tenant: must match",
            ),
            (
                "missing org",
                without("org"),
                "clients[0] (acme-ci): org: missing",
            ),
            ("empty org", replaced("org", "\"\""), "org: must match"),
            ("long org", replaced("org", &long_org), "(129 characters)"),
            (
                "org with a space",
                replaced("org", "\"a b\""),
                "org: must match",
            ),
            ("missing roles", without("roles"), "roles: missing"),
            (
                "no roles",
                replaced("roles", "[]"),
                "roles: must name at least one",
            ),
            (
                "duplicate role",
                replaced("roles", "[\"member\", \"admin\", \"member\"]"),
                "roles: lists \"member\" more than once",
            ),
            (
                "zero workflows",
                client_toml("max_concurrent_workflows = 0"),
                "max_concurrent_workflows: must be at least 1 (leave it out for no limit), not 0",
            ),
            (
                "negative workflows",
                client_toml("max_concurrent_workflows = -3"),
                "max_concurrent_workflows: must be at least 1",
            ),
            (
                "second client named by position",
                format!("{}\n[[clients]]\nclient_id = \"b\"\n", client_toml("")),
                "clients[1] (b): secret_hash: missing",
            ),
        ];
        for (name, text, expected) in cases {
            let error = TenantsFile::parse(&text).expect_err(name).to_string();
            assert!(error.contains(expected), "{name}: {error}");
            assert!(!error.contains('\n'), "{name}: {error}");
            assert!(!error.contains("hunter2"), "{name}: {error}");
        }
    }

    #[test]
    fn a_syntax_error_does_not_quote_the_line() {
        let text = "[[clients]]\nclient_id = \"a\"\nsecret_hash = \"hunter2\nroles = []\n";
        let error = TenantsFile::parse(text).expect_err("invalid").to_string();
        assert!(error.starts_with("invalid tenants file: line 3"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn debug_never_shows_the_secret_hash() {
        let file = TenantsFile::parse(&client_toml("")).expect("valid");
        let client = file.client("acme-ci").expect("present");
        for text in [
            format!("{client:?}"),
            format!("{file:?}"),
            format!("{file:#?}"),
        ] {
            assert!(text.contains("acme-ci"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
            assert!(!text.contains("argon2"), "{text}");
        }
    }

    #[test]
    fn load_names_the_path_and_refuses_large_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("tenants.toml");
        std::fs::write(&good, client_toml("")).expect("write");
        assert_eq!(TenantsFile::load(&good).expect("valid").len(), 1);

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "clients = []").expect("write");
        let error = TenantsFile::load(&bad).expect_err("no clients").to_string();
        assert!(
            error.starts_with(&format!(
                "invalid tenants file {}: no clients",
                bad.display()
            )),
            "{error}"
        );

        let missing = dir.path().join("missing.toml");
        let error = TenantsFile::load(&missing)
            .expect_err("missing")
            .to_string();
        assert!(
            error.starts_with(&format!("cannot read tenants file {}:", missing.display())),
            "{error}"
        );

        let large = dir.path().join("large.toml");
        let mut text = client_toml("");
        text.push_str(&"#".repeat(MAX_TENANTS_FILE_BYTES as usize));
        std::fs::write(&large, text).expect("write");
        let error = TenantsFile::load(&large).expect_err("large").to_string();
        assert!(error.contains("larger than 1048576 bytes"), "{error}");

        let binary = dir.path().join("binary.toml");
        std::fs::write(&binary, [0xff, 0xfe]).expect("write");
        let error = TenantsFile::load(&binary).expect_err("binary").to_string();
        assert!(error.ends_with("not UTF-8"), "{error}");
    }
}
