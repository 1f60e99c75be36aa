//! The example policies built into the binary, and laying them out as a
//! policy directory (contract §6.1):
//!
//! ```text
//! <dir>/global/<name>.toml   the example's manifest (policies/<name>/policy.toml)
//! <dir>/global/<name>.wasm   its component
//! ```
//!
//! The build script compiles every example crate that ships a `policy.toml`
//! and embeds the component with its manifest, so a fresh `wcp serve` decides
//! gates with real policies and `wcp policy examples` can hand them out.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// One example policy: its component and the manifest it is seeded with.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// The policy name, its file stem; its id in the directory is `global/<name>`.
    pub name: &'static str,
    /// The `wasm32-wasip2` component.
    pub wasm: &'static [u8],
    /// The manifest text: priority, step types, settings.
    pub manifest: &'static str,
}

/// Every embedded example, sorted by name.
pub const EXAMPLES: &[Example] = include!(concat!(env!("OUT_DIR"), "/examples.rs"));

/// Why the examples could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExamplesError {
    /// A file of the layout is already there and overwriting was not asked for.
    #[error("{} already exists", path.display())]
    Exists {
        /// The first file found in the way.
        path: PathBuf,
    },
    /// The file system refused.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
}

/// The example names, comma-separated, for messages.
pub fn names() -> String {
    EXAMPLES
        .iter()
        .map(|example| example.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes every example into `dir` as `global/<name>.toml` and
/// `global/<name>.wasm`, creating the directories, and returns the files
/// written. Without `overwrite`, nothing is written if any of those files
/// exists. Each file is written to a temporary name and renamed, manifest
/// first, so a server watching `dir` never reads half a file.
pub fn write(dir: &Path, overwrite: bool) -> Result<Vec<PathBuf>, ExamplesError> {
    let global = dir.join("global");
    let files: Vec<(PathBuf, &[u8])> = EXAMPLES
        .iter()
        .flat_map(|example| {
            [
                (
                    global.join(format!("{}.toml", example.name)),
                    example.manifest.as_bytes(),
                ),
                (global.join(format!("{}.wasm", example.name)), example.wasm),
            ]
        })
        .collect();
    if !overwrite
        && let Some((path, _)) = files
            .iter()
            .find(|(path, _)| path.symlink_metadata().is_ok())
    {
        return Err(ExamplesError::Exists { path: path.clone() });
    }
    fs::create_dir_all(&global).map_err(|source| ExamplesError::Write {
        path: global.clone(),
        source,
    })?;
    for (path, bytes) in &files {
        replace(&global, path, bytes).map_err(|source| ExamplesError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// Writes `bytes` to a temporary file in `dir`, then renames it to `path`.
fn replace(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".example-");
    // Temporary files are private (0600) by default; these are ordinary
    // files a user edits, so they get the usual mode, less the umask.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut file = builder.tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// Lays the examples out in `dir` if `dir` does not exist yet, and says
/// whether it did. The layout is built in a temporary directory beside `dir`
/// and renamed into place, so a start interrupted halfway leaves no partial
/// directory that would never be seeded again.
pub fn seed(dir: &Path) -> Result<bool, ExamplesError> {
    if dir.symlink_metadata().is_ok() {
        return Ok(false);
    }
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let failed = |source| ExamplesError::Write {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(parent).map_err(failed)?;
    let staging = tempfile::Builder::new()
        .prefix(".policies-")
        .tempdir_in(parent)
        .map_err(failed)?;
    write(staging.path(), false)?;
    match fs::rename(staging.path(), dir) {
        Ok(()) => Ok(true),
        // Another process made the directory meanwhile: it is theirs.
        Err(_) if dir.symlink_metadata().is_ok() => Ok(false),
        Err(error) => Err(failed(error)),
    }
    // `staging` is removed on drop if it was not renamed.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_default_examples_are_embedded_with_manifests() {
        let names: Vec<&str> = EXAMPLES.iter().map(|example| example.name).collect();
        for expected in [
            "cost-budget",
            "model-allowlist",
            "pii-guard",
            "tool-approval",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        for example in EXAMPLES {
            assert!(
                example.wasm.starts_with(b"\0asm"),
                "{} is not wasm",
                example.name
            );
            assert!(
                crate::manifest::Manifest::parse(example.manifest).is_ok(),
                "{}'s manifest is invalid",
                example.name
            );
        }
    }
}
