//! Policy files for the bench: distinct variants of the example components
//! and the policy directories laid out from them.
//!
//! A variant is a component with a custom section appended: a component
//! binary is a sequence of sections, a custom section (id 0, its size, a
//! name, any payload) is valid anywhere after the header and ignored by the
//! runtime, so each variant behaves like its base but has its own sha256,
//! hence its own compilation and its own cache entry.

use std::fs;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The custom section's name.
const SECTION_NAME: &str = "wcp-bench";

/// Step types given to the policies of a laid-out directory, in turn: all
/// steps (no `step_types`), LLM calls, tool calls.
const STEP_TYPES: [Option<&str>; 3] = [None, Some("llm_call"), Some("tool_call")];

/// A component's bytes and the version the server will report for them.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The `.wasm` file's content.
    pub bytes: Vec<u8>,
    /// First 12 hex digits of its sha256, as gate answers name it.
    pub version: String,
}

impl Variant {
    /// `base` with a custom section whose payload is `tag`.
    pub fn of(base: &[u8], tag: &str) -> Variant {
        let mut bytes = base.to_vec();
        bytes.extend(custom_section(SECTION_NAME, tag.as_bytes()));
        let version = hex::encode(&Sha256::digest(&bytes)[..6]);
        Variant { bytes, version }
    }
}

/// A custom section: id 0, the LEB128 size of the rest, the LEB128-length
/// prefixed name, the payload.
fn custom_section(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut content = leb128(name.len());
    content.extend(name.as_bytes());
    content.extend(payload);
    let mut section = vec![0u8];
    section.extend(leb128(content.len()));
    section.extend(content);
    section
}

/// Unsigned LEB128.
fn leb128(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The example policy components, read once: (name, bytes).
pub fn examples() -> Vec<(&'static str, Vec<u8>)> {
    wcp_test_artifacts::POLICIES
        .iter()
        .map(|(name, path)| {
            let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
            (*name, bytes)
        })
        .collect()
}

/// The example component called `name`.
pub fn example<'a>(examples: &'a [(&str, Vec<u8>)], name: &str) -> &'a [u8] {
    examples
        .iter()
        .find(|(example, _)| *example == name)
        .map(|(_, bytes)| bytes.as_slice())
        .unwrap_or_else(|| panic!("no example policy {name}"))
}

/// Lays out `count` distinct global policies in `dir`: `global/pNNN.wasm`,
/// a variant of each example in turn, with a manifest giving it a priority
/// and (in turn) all steps, LLM calls or tool calls.
pub fn global_policies(dir: &Path, examples: &[(&str, Vec<u8>)], count: usize) {
    for index in 0..count {
        let (base_name, base) = &examples[index % examples.len()];
        let variant = Variant::of(base, &format!("{base_name}-{index}"));
        let mut manifest = format!("priority = {index}\n");
        if let Some(step_type) = STEP_TYPES[index % STEP_TYPES.len()] {
            manifest.push_str(&format!("step_types = [\"{step_type}\"]\n"));
        }
        let name = format!("p{index:03}");
        write_policy(dir, &name, &variant.bytes, &manifest);
    }
}

/// Writes `global/<name>.wasm` and its manifest `global/<name>.toml` the
/// way a deployment should: each to a hidden temp file, then renamed into
/// place, so the server never reads half a file.
pub fn write_policy(dir: &Path, name: &str, wasm: &[u8], manifest: &str) {
    write_manifest(dir, name, manifest);
    write_wasm(dir, name, wasm);
}

/// Writes `global/<name>.toml` (temp file, then rename).
pub fn write_manifest(dir: &Path, name: &str, manifest: &str) {
    write_atomic(
        &dir.join("global"),
        &format!("{name}.toml"),
        manifest.as_bytes(),
    );
}

/// Writes `global/<name>.wasm` (temp file, then rename).
pub fn write_wasm(dir: &Path, name: &str, wasm: &[u8]) {
    write_atomic(&dir.join("global"), &format!("{name}.wasm"), wasm);
}

fn write_atomic(dir: &Path, file: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
    let temp = dir.join(format!(".{file}.tmp"));
    fs::write(&temp, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", temp.display()));
    let target = dir.join(file);
    fs::rename(&temp, &target)
        .unwrap_or_else(|e| panic!("cannot rename to {}: {e}", target.display()));
}
