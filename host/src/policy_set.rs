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

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use sha2::{Digest, Sha256};

use crate::clock;
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest};
use crate::runtime::{CompiledPolicy, LogBudget, PolicyRuntime};

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
            fingerprint: fingerprint(&file_sha256, manifest_text),
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

    /// Scans `dir` and builds the next set. Unchanged files reuse `previous`'s
    /// compiled versions; a file that fails keeps `previous`'s serving version.
    /// A missing directory is an empty set.
    ///
    /// Files that are not policies are logged once, when first seen, not
    /// on every rescan. A directory that exists but cannot be listed keeps
    /// its policies as they were: an I/O error never unloads a policy.
    pub fn load(runtime: &PolicyRuntime, dir: &Path, previous: &PolicySet) -> PolicySet {
        let scan = scan(dir);
        for (path, why) in &scan.ignored {
            if !previous.ignored.contains_key(path) {
                tracing::warn!(path = %path.display(), "ignoring {why} in the policy directory");
            }
        }
        let mut entries: Vec<Arc<PolicyEntry>> = scan
            .found
            .into_iter()
            .map(|found| Arc::new(load_one(runtime, found, previous)))
            .collect();
        entries.extend(
            previous
                .entries
                .iter()
                .filter(|entry| scan.unreadable.iter().any(|u| u.covers(&entry.scope)))
                .cloned(),
        );
        entries.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        PolicySet {
            entries,
            ignored: scan.ignored,
        }
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

/// A `.wasm` found in the directory, with its manifest path.
#[derive(Debug)]
struct Found {
    scope: Scope,
    name: String,
    wasm: PathBuf,
    manifest: PathBuf,
}

fn load_one(runtime: &PolicyRuntime, found: Found, previous: &PolicySet) -> PolicyEntry {
    let id = policy_id(&found.scope, &found.name);
    let before = previous.get(&id);
    let failed = |file_sha256: Option<String>, fingerprint: String, error: String| {
        tracing::warn!(policy = %id, %error, "policy failed to load; the previous version keeps serving");
        PolicyEntry {
            id: id.clone(),
            name: found.name.clone(),
            scope: found.scope.clone(),
            serving: before.and_then(|b| b.serving.clone()),
            status: Status::Failed,
            last_error: Some(error),
            file_sha256,
            fingerprint,
        }
    };

    let wasm = match fs::read(&found.wasm) {
        Ok(bytes) => bytes,
        Err(error) => {
            return failed(
                None,
                String::new(),
                format!("cannot read the module: {error}"),
            );
        }
    };
    let wasm_sha256 = hex::encode(Sha256::digest(&wasm));
    let manifest_text = match read_manifest(&found.manifest) {
        Ok(text) => text,
        Err(error) => return failed(Some(wasm_sha256), String::new(), error),
    };
    let fingerprint = fingerprint(&wasm_sha256, manifest_text.as_deref());
    if let Some(before) = before
        && before.fingerprint == fingerprint
    {
        return PolicyEntry::clone(before);
    }
    let manifest = match manifest_text.as_deref().map(Manifest::parse).transpose() {
        Ok(manifest) => manifest.unwrap_or_default(),
        Err(error) => return failed(Some(wasm_sha256), fingerprint, error.to_string()),
    };
    // A manifest-only change keeps the compiled component.
    let reused = before
        .and_then(|b| b.serving.as_ref())
        .filter(|serving| serving.compiled.sha256() == wasm_sha256)
        .map(|serving| serving.compiled.clone());
    let compiled = match reused.map_or_else(|| runtime.load(&wasm), Ok) {
        Ok(compiled) => compiled,
        Err(error) => return failed(Some(wasm_sha256), fingerprint, error.to_string()),
    };
    tracing::info!(policy = %id, version = compiled.version(), "policy loaded");
    PolicyEntry::loaded(
        found.scope,
        &found.name,
        compiled,
        manifest,
        manifest_text.as_deref(),
    )
}

/// `global/<name>` or `<tenant>/<name>`.
pub fn policy_id(scope: &Scope, name: &str) -> String {
    format!("{}/{}", scope.as_str(), name)
}

fn read_manifest(path: &Path) -> Result<Option<String>, String> {
    match fs::metadata(path) {
        Err(_) => Ok(None),
        Ok(meta) if meta.len() > MAX_MANIFEST_BYTES as u64 => Err(format!(
            "invalid manifest: larger than {MAX_MANIFEST_BYTES} bytes"
        )),
        Ok(_) => fs::read_to_string(path)
            .map(Some)
            .map_err(|error| format!("cannot read the manifest: {error}")),
    }
}

fn fingerprint(wasm_sha256: &str, manifest: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(wasm_sha256.as_bytes());
    // A missing manifest differs from an empty one: both mean the defaults,
    // but removing the file is a change worth reloading for.
    match manifest {
        Some(text) => {
            hasher.update(b"+");
            hasher.update(text.as_bytes());
        }
        None => hasher.update(b"-"),
    }
    hex::encode(hasher.finalize())
}

/// Policy file names: `^[a-z0-9][a-z0-9_-]{0,63}$`.
pub fn valid_policy_name(name: &str) -> bool {
    crate::fields::is_policy_name(name)
}

/// Tenant ids: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`, never `global`.
pub fn valid_tenant_id(tenant: &str) -> bool {
    tenant != "global" && valid_identifier(tenant, 64)
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]*$`, at most `max_len` bytes: tenant ids and
/// orgs.
pub fn valid_identifier(text: &str, max_len: usize) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max_len
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What a scan of the policy directory found.
#[derive(Debug, Default)]
struct Scan {
    /// The policies.
    found: Vec<Found>,
    /// Files and directories that are not policies, with why.
    ignored: BTreeMap<PathBuf, &'static str>,
    /// Scopes whose directory exists but could not be listed: their
    /// policies keep serving as they were, never silently unloaded.
    unreadable: Vec<Unreadable>,
}

/// A directory that could not be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unreadable {
    /// `global/`.
    Global,
    /// `tenants/` itself: every tenant.
    Tenants,
    /// `tenants/<tenant>/`.
    Tenant(String),
}

impl Unreadable {
    fn covers(&self, scope: &Scope) -> bool {
        match (self, scope) {
            (Unreadable::Global, Scope::Global) => true,
            (Unreadable::Tenants, Scope::Tenant(_)) => true,
            (Unreadable::Tenant(name), Scope::Tenant(tenant)) => name == tenant,
            _ => false,
        }
    }
}

/// Every policy file under `dir`; anything else is noted as ignored.
fn scan(dir: &Path) -> Scan {
    let mut scan = Scan::default();
    policies_in(&dir.join("global"), &Scope::Global, &mut scan);
    let tenants = dir.join("tenants");
    match regular_entries(&tenants, true, &mut scan.ignored) {
        Ok(entries) => {
            for (path, name) in entries {
                if valid_tenant_id(&name) {
                    policies_in(&path, &Scope::Tenant(name), &mut scan);
                } else {
                    scan.ignored.insert(
                        path,
                        "a tenant directory whose name is not a valid tenant id",
                    );
                }
            }
        }
        Err(()) => scan.unreadable.push(Unreadable::Tenants),
    }
    scan
}

fn policies_in(dir: &Path, scope: &Scope, scan: &mut Scan) {
    let Ok(entries) = regular_entries(dir, false, &mut scan.ignored) else {
        scan.unreadable.push(match scope {
            Scope::Global => Unreadable::Global,
            Scope::Tenant(tenant) => Unreadable::Tenant(tenant.clone()),
        });
        return;
    };
    let files: HashMap<String, PathBuf> = entries.into_iter().map(|(p, n)| (n, p)).collect();
    for (file, path) in &files {
        let Some((stem, extension)) = file.rsplit_once('.') else {
            scan.ignored
                .insert(path.clone(), "a file that is not a policy");
            continue;
        };
        match extension {
            "wasm" if valid_policy_name(stem) => scan.found.push(Found {
                scope: scope.clone(),
                name: stem.to_owned(),
                wasm: path.clone(),
                manifest: dir.join(format!("{stem}.toml")),
            }),
            "toml" if files.contains_key(&format!("{stem}.wasm")) => {}
            "toml" => {
                scan.ignored
                    .insert(path.clone(), "a manifest without a .wasm");
            }
            _ => {
                scan.ignored.insert(
                    path.clone(),
                    "a file that is not a policy (names are [a-z0-9][a-z0-9_-]*, up to 64 characters)",
                );
            }
        }
    }
}

/// Entries of `dir` that are regular files (or directories when `dirs`),
/// with their UTF-8 names; symlinks are noted in `ignored`. A missing
/// directory has none; one that exists but cannot be listed is an error.
fn regular_entries(
    dir: &Path,
    dirs: bool,
    ignored: &mut BTreeMap<PathBuf, &'static str>,
) -> Result<Vec<(PathBuf, String)>, ()> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            tracing::error!(dir = %dir.display(), %error, "cannot list a policy directory; its policies keep serving as they were");
            return Err(());
        }
    };
    let mut entries = Vec::new();
    for entry in read.filter_map(Result::ok) {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_symlink() {
            ignored.insert(path, "a symlink");
            continue;
        }
        let wanted = if dirs { kind.is_dir() } else { kind.is_file() };
        let Ok(name) = entry.file_name().into_string() else {
            ignored.insert(path, "a name that is not UTF-8");
            continue;
        };
        if wanted && !name.starts_with('.') {
            entries.push((path, name));
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_follow_the_contract() {
        for name in ["a", "tool-approval", "pii_guard2", "0x", &"a".repeat(64)] {
            assert!(valid_policy_name(name), "{name}");
        }
        for name in ["", "Tool", "-x", "_x", "a.b", "a b", &"a".repeat(65)] {
            assert!(!valid_policy_name(name), "{name}");
        }
    }

    #[test]
    fn tenant_ids_follow_the_contract() {
        for tenant in ["acme", "Acme.Corp_1-2", "7"] {
            assert!(valid_tenant_id(tenant), "{tenant}");
        }
        for tenant in ["global", "", ".x", "a/b", "a b", &"t".repeat(65)] {
            assert!(!valid_tenant_id(tenant), "{tenant}");
        }
    }
}
