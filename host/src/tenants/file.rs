//! Reading a tenants file and parsing it into a [`TenantsFile`], its
//! clients checked by [`super::validate`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::validate::{client, label};
use super::{Client, MAX_TENANTS_FILE_BYTES, TenantsError, TenantsFile};

/// The file as written; every field optional so a missing one gets our
/// own message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    clients: Option<toml::Value>,
}

impl TenantsFile {
    /// Parses and validates the text of a tenants file.
    pub fn parse(text: &str) -> Result<TenantsFile, TenantsError> {
        if text.len() as u64 > MAX_TENANTS_FILE_BYTES {
            return Err(TenantsError::invalid(format!(
                "larger than {MAX_TENANTS_FILE_BYTES} bytes"
            )));
        }
        // No source excerpt in errors: the line could hold a secret.
        let shape: FileShape = toml::from_str(text).map_err(|error| {
            TenantsError::invalid(match error.span() {
                Some(span) => format!("{}: {}", position(text, span.start), error.message()),
                None => error.message().to_owned(),
            })
        })?;
        let tables = match shape.clients {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items,
            Some(_) => {
                return Err(TenantsError::invalid(
                    "clients: must be [[clients]] tables, one per client",
                ));
            }
        };
        if tables.is_empty() {
            return Err(TenantsError::invalid(
                "no clients: add at least one [[clients]] table",
            ));
        }
        let mut clients = BTreeMap::new();
        let mut positions: BTreeMap<String, usize> = BTreeMap::new();
        for (index, item) in tables.into_iter().enumerate() {
            let toml::Value::Table(table) = item else {
                return Err(TenantsError::invalid(format!(
                    "clients[{index}]: must be a table of client_id, secret_hash, tenant, org, roles"
                )));
            };
            let client = client(index, table)?;
            if let Some(first) = positions.insert(client.client_id.clone(), index) {
                return Err(TenantsError::invalid(format!(
                    "{}: client_id is already used by clients[{first}]",
                    label(index, Some(&client.client_id))
                )));
            }
            clients.insert(client.client_id.clone(), client);
        }
        Ok(TenantsFile { clients })
    }

    /// Reads (refusing files over 1 MiB) and parses; the error names the path.
    pub fn load(path: &Path) -> Result<TenantsFile, TenantsError> {
        TenantsFile::parse_from(path, &TenantsFile::read_text(path)?)
    }

    /// The text of the tenants file at `path`, refusing files over
    /// [`MAX_TENANTS_FILE_BYTES`] and text that is not UTF-8.
    pub fn read_text(path: &Path) -> Result<String, TenantsError> {
        let read_error = |message: String| TenantsError::Read {
            path: path.to_owned(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|error| read_error(error.to_string()))?;
        let mut bytes = Vec::new();
        file.take(MAX_TENANTS_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| read_error(error.to_string()))?;
        if bytes.len() as u64 > MAX_TENANTS_FILE_BYTES {
            return Err(read_error(format!(
                "larger than {MAX_TENANTS_FILE_BYTES} bytes"
            )));
        }
        String::from_utf8(bytes).map_err(|_| read_error("not UTF-8".to_owned()))
    }

    /// Parses `text`, read from `path`, naming the path in errors.
    pub fn parse_from(path: &Path, text: &str) -> Result<TenantsFile, TenantsError> {
        TenantsFile::parse(text).map_err(|error| match error {
            TenantsError::Invalid { message, .. } => TenantsError::Invalid {
                path: Some(path.to_owned()),
                message,
            },
            other => other,
        })
    }

    /// The client with this id.
    pub fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients.get(client_id)
    }

    /// Every client, in `client_id` order.
    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }

    /// The tenants the clients act in, sorted, each once.
    pub fn tenants(&self) -> BTreeSet<&str> {
        self.clients()
            .map(|client| client.tenant.as_str())
            .collect()
    }

    /// How many clients there are (at least one).
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Always false: a tenants file has at least one client.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// `line 3, column 8` of a byte offset.
fn position(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("line {line}, column {column}")
}
