//! On-disk cache of precompiled policies.
//!
//! Compiling a component takes tens of milliseconds; loading the precompiled
//! artifact takes a fraction of one. Artifacts are keyed by the `.wasm`'s
//! sha256 and the engine's compatibility hash, so a host upgrade or a
//! different CPU never loads a stale one.
//!
//! Deserialising an artifact runs native code it contains, so only artifacts
//! this host wrote are loaded: each file carries an HMAC-SHA256 tag under a
//! key generated on first use and kept (mode 0600) in the cache directory.
//! A file dropped in by anyone without that key, or damaged, fails the check
//! and is recompiled from the `.wasm`.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;

const KEY_FILE: &str = "cache.key";
const TAG_LEN: usize = 32;

/// Failure to set up the cache directory.
#[derive(Debug, thiserror::Error)]
#[error("cannot use policy cache directory {path}: {source}")]
pub struct CacheError {
    path: PathBuf,
    source: std::io::Error,
}

/// A directory of host-produced precompiled policies.
#[derive(Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    key: [u8; 32],
    engine_tag: String,
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache in `dir` for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheError> {
        let error = |source| CacheError {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(error)?;
        restrict_permissions(dir, 0o700).map_err(error)?;
        let key = load_or_create_key(&dir.join(KEY_FILE)).map_err(error)?;
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            key,
            engine_tag: engine_tag(engine),
        })
    }

    fn path_for(&self, wasm_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{wasm_sha256}-{}.cwasm", self.engine_tag))
    }

    /// The cached component for this `.wasm` digest, if a valid one exists.
    pub fn load(&self, engine: &Engine, wasm_sha256: &str) -> Option<Component> {
        let path = self.path_for(wasm_sha256);
        let bytes = fs::read(&path).ok()?;
        if bytes.len() < TAG_LEN {
            return None;
        }
        let (tag, artifact) = bytes.split_at(TAG_LEN);
        let mut mac = self.mac(wasm_sha256);
        mac.update(artifact);
        if mac.verify_slice(tag).is_err() {
            tracing::warn!(path = %path.display(), "ignoring a cached artifact this host did not write");
            return None;
        }
        // SAFETY: `deserialize` trusts its input to be an artifact produced by
        // `Component::serialize` for a compatible engine. The HMAC above
        // proves this host wrote these exact bytes for this digest, and the
        // file name carries the engine's compatibility hash.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, artifact) };
        match component {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring an unreadable cached artifact");
                None
            }
        }
    }

    /// Stores a compiled component. Failures are logged, not fatal: the cache
    /// only makes the next start faster.
    pub fn store(&self, wasm_sha256: &str, component: &Component) {
        if let Err(error) = self.try_store(wasm_sha256, component) {
            tracing::warn!(%error, "could not write the policy cache");
        }
    }

    fn try_store(&self, wasm_sha256: &str, component: &Component) -> Result<(), String> {
        let artifact = component.serialize().map_err(|e| e.to_string())?;
        let mut mac = self.mac(wasm_sha256);
        mac.update(&artifact);
        let tag = mac.finalize().into_bytes();
        // Write a temp file in the same directory, then rename: a reader
        // never sees a half-written artifact.
        let mut file = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| e.to_string())?;
        file.write_all(&tag).map_err(|e| e.to_string())?;
        file.write_all(&artifact).map_err(|e| e.to_string())?;
        file.persist(self.path_for(wasm_sha256))
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn mac(&self, wasm_sha256: &str) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(wasm_sha256.as_bytes());
        mac.update(self.engine_tag.as_bytes());
        mac
    }
}

/// A short hex digest of the engine's compatibility hash.
fn engine_tag(engine: &Engine) -> String {
    struct Sha256Hasher(Sha256);
    impl Hasher for Sha256Hasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

fn load_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(bytes) = fs::read(path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(&key)?;
    restrict_permissions(file.path(), 0o600)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(key)
}

#[cfg(unix)]
fn restrict_permissions(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}
