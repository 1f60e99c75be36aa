//! The policies a gate can run: an immutable snapshot built from the policy
//! directory (contract §6.1, §6.2).
//!
//! ```text
//! <policy-dir>/global/<name>.wasm            [+ <name>.toml]   id global/<name>
//! <policy-dir>/tenants/<tenant>/<name>.wasm  [+ <name>.toml]   id <tenant>/<name>
//! ```
//!
//! A gate takes the current `Arc<PolicySet>` and keeps it for its whole run,
//! so a reload never changes the policies of a gate in flight. Loading is
//! incremental: a policy whose `.wasm` and manifest are unchanged keeps its
//! compiled version, and a policy that fails to load keeps serving its
//! previous version, marked `failed` with the reason.
//!
//! - `scan`: reading the directory into the next set ([`PolicySet::load`]).

mod scan;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use crate::clock;
use crate::manifest::Manifest;
use crate::runtime::{CompiledPolicy, LogBudget};

/// Where a policy applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every tenant; changed only on disk.
    Global,
    /// One tenant.
    Tenant(String),
}

impl Scope {
    /// `global` or the tenant id, as policy ids and the API spell it.
    pub fn as_str(&self) -> &str {
        match self {
            Scope::Global => "global",
            Scope::Tenant(tenant) => tenant,
        }
    }
}

/// Whether the policy's files last loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The files on disk are what serves.
    Loaded,
    /// The files on disk failed; the previous version (if any) serves.
    Failed,
}

/// A compiled version in service.
#[derive(Debug, Clone)]
pub struct ServingVersion {
    /// The compiled component.
    pub compiled: CompiledPolicy,
    /// The manifest it serves with.
    pub manifest: Manifest,
    /// When it was loaded.
    pub loaded_at: String,
    /// How much of its output may still reach the log this minute.
    pub log_budget: Arc<LogBudget>,
}

/// One policy of the set.
#[derive(Debug, Clone)]
pub struct PolicyEntry {
    /// `global/<name>` or `<tenant>/<name>`.
    pub id: String,
    /// The file stem.
    pub name: String,
    /// Where it applies.
    pub scope: Scope,
    /// What serves, if anything ever loaded.
    pub serving: Option<Arc<ServingVersion>>,
    /// Outcome of the last load of the files on disk.
    pub status: Status,
    /// Why the last load failed.
    pub last_error: Option<String>,
    /// sha256 of the `.wasm` last read, whether or not it loaded; `None`
    /// when it could not be read.
    pub file_sha256: Option<String>,
    /// Digest of the `.wasm` and manifest text last seen, to skip reloads.
    fingerprint: String,
}

impl PolicyEntry {
    /// The manifest deciding when and how the policy runs: the serving
    /// version's, else the defaults (a never-loaded policy applies to all
    /// step types and fails closed).
    pub fn manifest(&self) -> &Manifest {
        static DEFAULT: LazyLock<Manifest> = LazyLock::new(Manifest::default);
        self.serving
            .as_ref()
            .map_or(&*DEFAULT, |serving| &serving.manifest)
    }

    /// The serving version's 12-hex id, if any.
    pub fn version(&self) -> Option<&str> {
        self.serving.as_ref().map(|s| s.compiled.version())
    }

    /// A policy that just loaded from `wasm` and `manifest_text` (the
    /// manifest's source, `None` for the defaults), serving `compiled`.
    pub fn loaded(
        scope: Scope,
        name: &str,
        compiled: CompiledPolicy,
        manifest: Manifest,
        manifest_text: Option<&str>,
    ) -> PolicyEntry {
        let file_sha256 = compiled.sha256().to_owned();
        PolicyEntry {
            id: policy_id(&scope, name),
            name: name.to_owned(),
            scope,
            serving: Some(Arc::new(ServingVersion {
                compiled,
                manifest,
                loaded_at: clock::now_rfc3339(),
                log_budget: Arc::default(),
            })),
            status: Status::Loaded,
            last_error: None,
            fingerprint: scan::fingerprint(&file_sha256, manifest_text),
            file_sha256: Some(file_sha256),
        }
    }

    /// Whether `other` was built from the same files (so swapping one for
    /// the other changes nothing worth a reload or an audit entry).
    pub fn same_files(&self, other: &PolicyEntry) -> bool {
        self.fingerprint == other.fingerprint && self.status == other.status
    }
}

/// An immutable snapshot of every policy, in evaluation order.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    entries: Vec<Arc<PolicyEntry>>,
    /// Paths the last scan ignored, so each is logged once.
    ignored: BTreeMap<PathBuf, &'static str>,
}

impl PolicySet {
    /// Every policy, in evaluation order: priority ascending, global before
    /// tenant, then by name.
    pub fn entries(&self) -> &[Arc<PolicyEntry>] {
        &self.entries
    }

    /// The policy with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<PolicyEntry>> {
        self.entries.iter().find(|entry| entry.id == id)
    }

    /// Global policies and those of `tenant`, in evaluation order.
    pub fn visible_to<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a Arc<PolicyEntry>> {
        self.entries.iter().filter(move |entry| match &entry.scope {
            Scope::Global => true,
            Scope::Tenant(owner) => owner == tenant,
        })
    }

    /// The policies a gate of `step_type` by `tenant` runs (contract §4.2.1).
    pub fn applicable<'a>(
        &'a self,
        tenant: &'a str,
        step_type: &'a str,
    ) -> impl Iterator<Item = &'a Arc<PolicyEntry>> {
        self.visible_to(tenant)
            .filter(move |entry| entry.manifest().applies_to(step_type))
    }

    /// Policies with a serving version.
    pub fn serving_count(&self) -> usize {
        self.entries.iter().filter(|e| e.serving.is_some()).count()
    }

    /// This set with `entry` added, or replacing the policy of the same id.
    pub fn with(&self, entry: PolicyEntry) -> PolicySet {
        let mut entries: Vec<Arc<PolicyEntry>> = self
            .entries
            .iter()
            .filter(|e| e.id != entry.id)
            .cloned()
            .collect();
        entries.push(Arc::new(entry));
        entries.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        PolicySet {
            entries,
            ignored: self.ignored.clone(),
        }
    }

    /// This set without the policy `id`.
    pub fn without(&self, id: &str) -> PolicySet {
        PolicySet {
            entries: self
                .entries
                .iter()
                .filter(|e| e.id != id)
                .cloned()
                .collect(),
            ignored: self.ignored.clone(),
        }
    }

    /// What differs from `previous` to this set, in this set's order, then
    /// the removed policies: the events a reload reports and audits.
    pub fn changes_since(&self, previous: &PolicySet) -> Vec<Change> {
        let mut changes: Vec<Change> = self
            .entries
            .iter()
            .filter(|entry| {
                previous
                    .get(&entry.id)
                    .is_none_or(|before| !before.same_files(entry))
            })
            .map(|entry| match entry.status {
                Status::Loaded => Change::Loaded(Arc::clone(entry)),
                Status::Failed => Change::Failed(Arc::clone(entry)),
            })
            .collect();
        changes.extend(
            previous
                .entries
                .iter()
                .filter(|before| self.get(&before.id).is_none())
                .map(|before| Change::Removed(Arc::clone(before))),
        );
        changes
    }
}

/// One difference between two policy sets.
#[derive(Debug, Clone)]
pub enum Change {
    /// New files loaded and serve.
    Loaded(Arc<PolicyEntry>),
    /// New files failed; the previous version, if any, still serves.
    Failed(Arc<PolicyEntry>),
    /// The policy is gone (the entry as it was).
    Removed(Arc<PolicyEntry>),
}

impl Change {
    /// The policy concerned.
    pub fn entry(&self) -> &Arc<PolicyEntry> {
        match self {
            Change::Loaded(entry) | Change::Failed(entry) | Change::Removed(entry) => entry,
        }
    }

    /// `loaded`, `failed` or `removed`, as the reload metric labels it.
    pub fn result(&self) -> &'static str {
        match self {
            Change::Loaded(_) => "loaded",
            Change::Failed(_) => "failed",
            Change::Removed(_) => "removed",
        }
    }
}

/// Evaluation order: priority ascending, global before tenant, then name.
fn order_key(entry: &PolicyEntry) -> (i64, &Scope, &str) {
    (entry.manifest().priority, &entry.scope, &entry.name)
}

/// `global/<name>` or `<tenant>/<name>`.
pub fn policy_id(scope: &Scope, name: &str) -> String {
    format!("{}/{}", scope.as_str(), name)
}
