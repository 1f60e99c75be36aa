//! Changing the policies that serve (design §6, contract §6.2, §6.3): a
//! rescan of the policy directory, an upload, a removal. Each one builds
//! the next [`PolicySet`], audits what changed, counts it, and publishes the
//! set atomically; a gate in flight keeps the snapshot it started with.
//!
//! Every change takes one lock, so an upload and a rescan never interleave:
//! a rescan after an upload finds the uploaded files already serving and
//! reports nothing.
//!
//! - `host`: [`PolicyHost`], the serving set and the lock of its changes.
//! - [`watch`]: the directory watcher and the periodic rescan that call
//!   [`reload`].
//! - [`files`]: writing a policy's files so that a reader never sees half
//!   of one.

pub mod files;
mod host;
pub mod watch;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::audit::{AuditKind, AuditRecord};
use crate::auth::Caller;
use crate::clock;
use crate::fields::{valid_policy_name, valid_tenant_id};
use crate::manifest::Manifest;
use crate::policy_set::{Change, PolicyEntry, PolicySet, Scope, Status, policy_id};

pub use host::PolicyHost;
pub use watch::{WatcherHandle, spawn_file_reloader, spawn_watcher};

/// Where a change came from, as the audit's `source` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The policy directory changed on disk (or the server started).
    Disk,
    /// An admin uploaded or deleted a policy over the API.
    Api,
}

impl Source {
    /// `disk` or `api`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Disk => "disk",
            Source::Api => "api",
        }
    }
}

/// Who made a change, for its audit entries.
#[derive(Debug, Clone)]
pub struct ChangedBy {
    actor: String,
    org: String,
    source: Source,
}

impl ChangedBy {
    /// The watcher: actor `system`, no org.
    pub fn disk() -> Self {
        ChangedBy {
            actor: "system".into(),
            org: String::new(),
            source: Source::Disk,
        }
    }

    /// A caller of the policy API.
    pub fn api(caller: &Caller) -> Self {
        ChangedBy {
            actor: caller.actor.clone(),
            org: caller.org.clone(),
            source: Source::Api,
        }
    }
}

/// Rescans the policy directory and publishes what changed: new or edited
/// files that load, files that fail (the previous version keeps serving),
/// removed files. Unchanged files are neither recompiled nor audited.
/// Returns the changes, empty when there were none.
pub async fn reload(host: &PolicyHost) -> Vec<Change> {
    let _changing = host.lock_changes().await;
    let runtime = Arc::clone(host.runtime());
    let previous = host.load_full();
    let dir = host.dir().to_owned();
    let before = Arc::clone(&previous);
    let next = match tokio::task::spawn_blocking(move || PolicySet::load(&runtime, &dir, &before))
        .await
    {
        Ok(next) => next,
        Err(error) => {
            tracing::error!(%error, "rescanning the policy directory failed; the current policies keep serving");
            return Vec::new();
        }
    };
    let changes = next.changes_since(&previous);
    if changes.is_empty() {
        return changes;
    }
    if let Err(error) = record(host, &changes, &ChangedBy::disk()).await {
        // The files on disk are what serves: the change is published even
        // when its audit entry could not be written, and the log says so.
        tracing::error!(%error, "could not audit policy changes from disk");
    }
    host.publish(next);
    changes
}

/// Why an upload or a removal was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The name is not `^[a-z0-9][a-z0-9_-]{0,63}$`.
    #[error("invalid policy name")]
    InvalidName,
    /// The caller's tenant cannot own policies (`global`, or not a tenant id).
    #[error("tenant {0:?} cannot own policies")]
    InvalidTenant(String),
    /// The upload is not a policy this host can run: the message names why.
    #[error("{0}")]
    InvalidPolicy(String),
    /// No such policy in the caller's scope.
    #[error("Policy not found")]
    NotFound,
    /// Writing the files or the audit failed; nothing was acknowledged.
    #[error("{0}")]
    Internal(String),
}

/// An uploaded policy, now serving.
#[derive(Debug)]
pub struct Installed {
    /// The policy as it now serves.
    pub entry: Arc<PolicyEntry>,
    /// Whether no policy of that id existed before.
    pub created: bool,
}

/// Installs `module` (with `manifest`, or the defaults when `None`) as the
/// policy `name` of the caller's tenant (contract §6.3): validates and
/// compiles it first, then writes the files (temp file, then rename),
/// audits `policy_loaded` and publishes. A refused upload changes nothing.
pub async fn install(
    host: &PolicyHost,
    caller: &Caller,
    name: &str,
    module: Bytes,
    manifest: Option<String>,
) -> Result<Installed, ChangeError> {
    let scope = tenant_scope(caller, name)?;
    let parsed = match manifest.as_deref() {
        Some(text) => {
            Manifest::parse(text).map_err(|error| ChangeError::InvalidPolicy(error.to_string()))?
        }
        None => Manifest::default(),
    };
    let runtime = Arc::clone(host.runtime());
    let bytes = module.clone();
    let compiled = tokio::task::spawn_blocking(move || runtime.load(&bytes))
        .await
        .map_err(|error| ChangeError::Internal(error.to_string()))?
        .map_err(|error| ChangeError::InvalidPolicy(error.to_string()))?;

    let _changing = host.lock_changes().await;
    let dir = files::scope_dir(host.dir(), &scope);
    let file_name = name.to_owned();
    let text = manifest.clone();
    tokio::task::spawn_blocking(move || {
        files::write_policy(&dir, &file_name, &module, text.as_deref())
    })
    .await
    .map_err(|error| ChangeError::Internal(error.to_string()))?
    .map_err(|error| ChangeError::Internal(format!("cannot write the policy files: {error}")))?;

    let entry = PolicyEntry::loaded(scope, name, compiled, parsed, manifest.as_deref());
    let id = entry.id.clone();
    let previous = host.load_full();
    let created = previous.get(&id).is_none();
    let next = previous.with(entry);
    let entry = next
        .get(&id)
        .cloned()
        .ok_or_else(|| ChangeError::Internal("the installed policy is missing".into()))?;
    tracing::info!(policy = %entry.id, version = entry.version(), actor = %caller.actor, "policy uploaded");
    record(
        host,
        &[Change::Loaded(Arc::clone(&entry))],
        &ChangedBy::api(caller),
    )
    .await
    .map_err(ChangeError::Internal)?;
    host.publish(next);
    Ok(Installed { entry, created })
}

/// Removes the policy `name` of the caller's tenant: deletes its files,
/// audits `policy_removed` and publishes the set without it.
pub async fn remove(host: &PolicyHost, caller: &Caller, name: &str) -> Result<(), ChangeError> {
    let scope = tenant_scope(caller, name)?;
    let _changing = host.lock_changes().await;
    let previous = host.load_full();
    let entry = previous
        .get(&policy_id(&scope, name))
        .cloned()
        .ok_or(ChangeError::NotFound)?;
    let dir = files::scope_dir(host.dir(), &scope);
    let file_name = name.to_owned();
    tokio::task::spawn_blocking(move || files::remove_policy(&dir, &file_name))
        .await
        .map_err(|error| ChangeError::Internal(error.to_string()))?
        .map_err(|error| {
            ChangeError::Internal(format!("cannot remove the policy files: {error}"))
        })?;
    let next = previous.without(&entry.id);
    tracing::info!(policy = %entry.id, actor = %caller.actor, "policy deleted");
    record(host, &[Change::Removed(entry)], &ChangedBy::api(caller))
        .await
        .map_err(ChangeError::Internal)?;
    host.publish(next);
    Ok(())
}

/// The scope an admin's upload or removal of `name` goes to: its tenant.
fn tenant_scope(caller: &Caller, name: &str) -> Result<Scope, ChangeError> {
    if !valid_policy_name(name) {
        return Err(ChangeError::InvalidName);
    }
    if !valid_tenant_id(&caller.tenant) {
        return Err(ChangeError::InvalidTenant(caller.tenant.clone()));
    }
    Ok(Scope::Tenant(caller.tenant.clone()))
}

/// Logs, counts and audits `changes` in one transaction: each entry goes to
/// its scope's chain (`global` for global policies).
async fn record(host: &PolicyHost, changes: &[Change], by: &ChangedBy) -> Result<(), String> {
    let now = clock::now_rfc3339();
    let mut records = Vec::with_capacity(changes.len());
    for change in changes {
        host.metrics.policy_reloads(change.result(), 1);
        // A failure is logged where it happens; API changes by their route.
        if by.source == Source::Disk {
            let entry = change.entry();
            match change {
                Change::Loaded(_) => {
                    tracing::info!(policy = %entry.id, version = entry.version(), "policy now serving");
                }
                Change::Removed(_) => {
                    tracing::info!(policy = %entry.id, "policy file removed; unloaded")
                }
                Change::Failed(_) => {}
            }
        }
        records.push(audit_record(change, by, &now));
    }
    host.store
        .submit_async(move |tx| {
            for record in records {
                let chain = record.tenant.clone();
                tx.append_audit(&chain, record)?;
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .await
        .map_err(|error| error.to_string())
}

/// The audit entry of one change (contract §7): the error as reason;
/// `policy_id`, `version`, `sha256`, `source` in the details. `version` and
/// `sha256` name the files that loaded or failed, or the version removed.
fn audit_record(change: &Change, by: &ChangedBy, now: &str) -> AuditRecord {
    let entry = change.entry();
    let (kind, sha256) = match change {
        Change::Loaded(_) => (AuditKind::PolicyLoaded, entry.file_sha256.clone()),
        Change::Failed(_) => (AuditKind::PolicyLoadFailed, entry.file_sha256.clone()),
        Change::Removed(_) => (
            AuditKind::PolicyRemoved,
            entry
                .serving
                .as_ref()
                .map(|serving| serving.compiled.sha256().to_owned())
                .or_else(|| entry.file_sha256.clone()),
        ),
    };
    let mut details = Map::new();
    details.insert("policy_id".into(), json!(entry.id));
    details.insert(
        "version".into(),
        sha256
            .as_deref()
            .and_then(|sha| sha.get(..12))
            .map_or(Value::Null, |version| json!(version)),
    );
    details.insert("sha256".into(), json!(sha256));
    details.insert("source".into(), json!(by.source.as_str()));
    AuditRecord {
        at: now.to_owned(),
        tenant: entry.scope.as_str().to_owned(),
        org: by.org.clone(),
        actor: by.actor.clone(),
        kind: kind.into(),
        workflow_id: None,
        step_id: None,
        decision: None,
        reason: match change {
            Change::Failed(_) => entry.last_error.clone(),
            Change::Loaded(_) | Change::Removed(_) => None,
        },
        details,
    }
}

/// How many policies of `set` loaded and failed, for the start-up summary.
pub fn summary(set: &PolicySet) -> (usize, usize) {
    let failed = set
        .entries()
        .iter()
        .filter(|entry| entry.status == Status::Failed)
        .count();
    (set.entries().len() - failed, failed)
}
