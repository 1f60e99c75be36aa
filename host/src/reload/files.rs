//! A policy's files as the API writes them (contract §6.3, design §6):
//! each file goes to a hidden temp file in the same directory, is synced,
//! and is renamed over the real name, so the watcher and a restart only
//! ever see a whole old file or a whole new one. The directory is synced
//! after the renames, so an acknowledged upload or removal survives a crash.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::policy_set::Scope;

/// `<policy-dir>/global` or `<policy-dir>/tenants/<tenant>`.
pub fn scope_dir(policy_dir: &Path, scope: &Scope) -> PathBuf {
    match scope {
        Scope::Global => policy_dir.join("global"),
        Scope::Tenant(tenant) => policy_dir.join("tenants").join(tenant),
    }
}

/// Writes `<dir>/<name>.wasm` and, with `manifest`, `<dir>/<name>.toml`;
/// without one, removes any `<name>.toml` so the defaults apply. Creates
/// `dir` if needed.
pub fn write_policy(
    dir: &Path,
    name: &str,
    module: &[u8],
    manifest: Option<&str>,
) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let manifest_path = dir.join(format!("{name}.toml"));
    match manifest {
        Some(text) => replace(&manifest_path, text.as_bytes())?,
        None => remove_if_present(&manifest_path)?,
    }
    replace(&dir.join(format!("{name}.wasm")), module)?;
    sync_dir(dir)
}

/// Removes `<dir>/<name>.wasm` and `<dir>/<name>.toml`, the module first so
/// that the policy is gone before its settings are.
pub fn remove_policy(dir: &Path, name: &str) -> io::Result<()> {
    remove_if_present(&dir.join(format!("{name}.wasm")))?;
    remove_if_present(&dir.join(format!("{name}.toml")))?;
    sync_dir(dir)
}

/// Replaces `path` with `bytes` through a synced hidden temp file and a
/// rename. The policy loader ignores hidden files, so a temp file left by
/// a crash is never loaded.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("policy");
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    Ok(())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn writes_replace_and_remove_the_files_leaving_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let scope = scope_dir(dir.path(), &Scope::Tenant("acme".into()));
        assert_eq!(scope, dir.path().join("tenants/acme"));

        write_policy(&scope, "p", b"one", Some("priority = 1\n")).unwrap();
        assert_eq!(fs::read(scope.join("p.wasm")).unwrap(), b"one");
        assert_eq!(
            fs::read_to_string(scope.join("p.toml")).unwrap(),
            "priority = 1\n"
        );

        // A raw module replaces the module and drops the old manifest.
        write_policy(&scope, "p", b"two", None).unwrap();
        assert_eq!(fs::read(scope.join("p.wasm")).unwrap(), b"two");
        assert!(!scope.join("p.toml").exists());

        let mut names: Vec<String> = fs::read_dir(&scope)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["p.wasm"]);

        remove_policy(&scope, "p").unwrap();
        assert_eq!(fs::read_dir(&scope).unwrap().count(), 0);
        // Removing what is already gone is not an error.
        remove_policy(&scope, "p").unwrap();
    }
}
