//! Reading the policy directory into the next [`PolicySet`]: which files
//! are policies, which are not (logged once), which directories cannot be
//! listed (their policies keep serving), and loading each policy, reusing
//! the previous set's compiled version when its files are unchanged.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{PolicyEntry, PolicySet, Scope, Status, order_key, policy_id};
use crate::fields::{valid_policy_name, valid_tenant_id};
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest};
use crate::runtime::PolicyRuntime;

impl PolicySet {
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

pub(super) fn fingerprint(wasm_sha256: &str, manifest: Option<&str>) -> String {
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
