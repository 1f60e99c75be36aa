//! Checking one `[[clients]]` table of a tenants file: every field's
//! rule, each mistake one line naming the client and the key, never
//! quoting a secret hash.

use argon2::{ARGON2ID_IDENT, Params, PasswordHash};
use serde::Deserialize;

use super::{Client, MAX_CLIENT_ID_CHARS, MAX_ORG_CHARS, TenantsError};
use crate::auth::Role;
use crate::fields::{valid_identifier, valid_tenant_id};

/// One `[[clients]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientShape {
    client_id: Option<String>,
    secret_hash: Option<String>,
    tenant: Option<String>,
    org: Option<String>,
    roles: Option<Vec<Role>>,
    enabled: Option<bool>,
    max_concurrent_workflows: Option<i64>,
}

/// Validates `clients[index]`.
pub(super) fn client(index: usize, table: toml::Table) -> Result<Client, TenantsError> {
    // Name the client by its id once the id is known to be valid.
    let written_id = table
        .get("client_id")
        .and_then(toml::Value::as_str)
        .filter(|id| valid_client_id(id).is_ok())
        .map(str::to_owned);
    let fail = |key: &str, problem: String| {
        TenantsError::invalid(format!(
            "{}: {key}: {problem}",
            label(index, written_id.as_deref())
        ))
    };
    let shape: ClientShape = toml::Value::Table(table).try_into().map_err(|error| {
        // The key is on a line of its own: "in `enabled`".
        let text = error.to_string();
        let key = text
            .lines()
            .find_map(|line| line.strip_prefix("in `")?.strip_suffix('`'))
            .map(str::to_owned);
        match key {
            Some(key) => fail(&key, error.message().to_owned()),
            None => TenantsError::invalid(format!(
                "{}: {}",
                label(index, written_id.as_deref()),
                error.message()
            )),
        }
    })?;
    let missing = |key: &str| fail(key, "missing".to_owned());

    let client_id = shape.client_id.ok_or_else(|| missing("client_id"))?;
    valid_client_id(&client_id).map_err(|problem| fail("client_id", problem))?;

    let secret_hash = shape.secret_hash.ok_or_else(|| missing("secret_hash"))?;
    valid_secret_hash(&secret_hash).map_err(|problem| fail("secret_hash", problem.to_owned()))?;

    let tenant = shape.tenant.ok_or_else(|| missing("tenant"))?;
    let org = shape.org.ok_or_else(|| missing("org"))?;
    for (key, value, valid, rule) in [
        (
            "tenant",
            &tenant,
            valid_tenant_id(&tenant),
            "[A-Za-z0-9][A-Za-z0-9._-]{0,63} and not be \"global\"",
        ),
        (
            "org",
            &org,
            valid_identifier(&org, MAX_ORG_CHARS),
            "[A-Za-z0-9][A-Za-z0-9._-]{0,127}",
        ),
    ] {
        if !valid {
            return Err(fail(
                key,
                format!("must match {rule}, not {}", quoted(value)),
            ));
        }
    }

    let roles = shape.roles.ok_or_else(|| missing("roles"))?;
    if roles.is_empty() {
        return Err(fail(
            "roles",
            "must name at least one of \"member\", \"approver\", \"admin\"".to_owned(),
        ));
    }
    for (at, role) in roles.iter().enumerate() {
        if roles[..at].contains(role) {
            return Err(fail(
                "roles",
                format!("lists \"{}\" more than once", role.as_str()),
            ));
        }
    }

    let max_concurrent_workflows = match shape.max_concurrent_workflows {
        None => None,
        Some(limit) => match u64::try_from(limit) {
            Ok(limit) if limit >= 1 => Some(limit),
            _ => {
                return Err(fail(
                    "max_concurrent_workflows",
                    format!("must be at least 1 (leave it out for no limit), not {limit}"),
                ));
            }
        },
    };

    Ok(Client {
        client_id,
        secret_hash,
        tenant,
        org,
        roles,
        enabled: shape.enabled.unwrap_or(true),
        max_concurrent_workflows,
    })
}

/// `clients[3]`, or `clients[3] (acme-ci)` once the id is known.
pub(super) fn label(index: usize, client_id: Option<&str>) -> String {
    match client_id {
        Some(id) => format!("clients[{index}] ({id})"),
        None => format!("clients[{index}]"),
    }
}

/// 1-128 printable ASCII characters, without `:` (Basic auth splits on the
/// first one) and without spaces.
fn valid_client_id(client_id: &str) -> Result<(), String> {
    if client_id.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if client_id.chars().count() > MAX_CLIENT_ID_CHARS {
        return Err(format!(
            "must be at most {MAX_CLIENT_ID_CHARS} characters, not {}",
            client_id.chars().count()
        ));
    }
    if !client_id.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(format!(
            "must be printable ASCII without ':' or whitespace, not {}",
            quoted(client_id)
        ));
    }
    Ok(())
}

/// An argon2id PHC string whose parameters, salt and hash argon2 accepts.
/// The messages never quote the value: it might be a secret in clear.
pub(super) fn valid_secret_hash(secret_hash: &str) -> Result<(), &'static str> {
    let Ok(hash) = PasswordHash::new(secret_hash) else {
        return Err(
            "not a PHC string; put the output of `wcp tenants hash-secret` here, never the secret itself",
        );
    };
    if hash.algorithm != ARGON2ID_IDENT {
        return Err(
            "must be an argon2id PHC string ($argon2id$v=19$...) as `wcp tenants hash-secret` prints, not another algorithm's",
        );
    }
    if hash.salt.is_none() || hash.hash.is_none() || Params::try_from(&hash).is_err() {
        return Err(
            "an incomplete argon2id PHC string (parameters, salt or hash); use `wcp tenants hash-secret`",
        );
    }
    Ok(())
}

/// A value for an error message, escaped, long ones cut.
fn quoted(value: &str) -> String {
    const SHOWN: usize = 40;
    if value.chars().count() <= SHOWN {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(SHOWN).collect();
        format!("{head:?}... ({} characters)", value.chars().count())
    }
}
