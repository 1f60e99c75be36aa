//! Load-time checks: is it a component, does it implement our world, and
//! does it import only what the sandbox offers. Each failure names the
//! problem so a policy author can fix it without reading host logs.

use wasmtime::Engine;
use wasmtime::component::Component;

/// Why a policy cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (no `\\0asm` header)")]
    NotWasm,
    /// A core module where a component is needed.
    #[error(
        "a core WebAssembly module, not a component: build the policy with `--target wasm32-wasip2`"
    )]
    CoreModule,
    /// wasmtime could not compile it.
    #[error("not a valid WebAssembly component: {0}")]
    Compile(String),
    /// It imports something the sandbox does not offer.
    #[error(
        "imports `{0}`, which the host does not offer (allowed: wcp:policy/host and WASI 0.2 cli, clocks, filesystem, io, random, sockets)"
    )]
    ForbiddenImport(String),
    /// Its imports cannot be satisfied by the linker.
    #[error("cannot link the policy's imports: {0}")]
    Link(String),
    /// It does not export `evaluate` with the expected signature.
    #[error("does not implement the wcp:policy/policy world: {0}")]
    WrongWorld(String),
    /// Its start-up code failed.
    #[error("failed to instantiate: {0}")]
    Instantiate(String),
}

/// Rejects anything that is not a component before handing it to the
/// compiler, to give a precise message for the common mistakes.
pub(crate) fn check_header(wasm: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    // Bytes 4..8: version and layer. Core modules are version 1, layer 0;
    // components set layer 1.
    const CORE: &[u8] = &[1, 0, 0, 0];
    if wasm.len() < 8 || &wasm[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    if &wasm[4..8] == CORE {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

/// WASI 0.2 packages the sandbox links (with an empty context).
const WASI_PACKAGES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

fn allowed(import: &str) -> bool {
    if let Some(rest) = import.strip_prefix("wcp:policy/") {
        return rest.starts_with("host@0.1.") || rest.starts_with("types@0.1.");
    }
    WASI_PACKAGES.iter().any(|package| {
        import
            .strip_prefix(package)
            .and_then(|rest| rest.split_once('@'))
            .is_some_and(|(_, version)| version.starts_with("0.2."))
    })
}

/// Refuses the first import outside the sandbox's offer, by name.
pub(crate) fn check_imports(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let component_type = component.component_type();
    for (name, _) in component_type.imports(engine) {
        if !allowed(name) {
            return Err(LoadError::ForbiddenImport(name.to_owned()));
        }
    }
    Ok(())
}

/// The first line of an error chain's top message: wasmtime errors can be
/// long and include internals the author does not need.
pub(crate) fn first_line(error: &wasmtime::Error) -> String {
    let text = format!("{error:#}");
    let line = text.lines().next().unwrap_or_default();
    let mut line = line.to_owned();
    super::sandbox::truncate_to(&mut line, 512);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_told_apart() {
        assert_eq!(check_header(b"hello world"), Err(LoadError::NotWasm));
        assert_eq!(check_header(b"\0asm"), Err(LoadError::NotWasm));
        assert_eq!(check_header(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule));
        assert_eq!(check_header(b"\0asm\x0d\0\x01\0"), Ok(()));
    }

    #[test]
    fn only_the_host_interface_and_wasi_0_2_are_allowed() {
        for import in [
            "wcp:policy/host@0.1.0",
            "wcp:policy/types@0.1.0",
            "wasi:cli/environment@0.2.6",
            "wasi:io/streams@0.2.0",
            "wasi:sockets/tcp@0.2.3",
        ] {
            assert!(allowed(import), "{import}");
        }
        for import in [
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:cli/environment@0.3.0",
            "wcp:policy/admin@0.1.0",
            "evil:net/raw",
            "wasi:keyvalue/store@0.2.0-draft",
        ] {
            assert!(!allowed(import), "{import}");
        }
    }
}
