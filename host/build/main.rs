//! Builds the example policies that ship a manifest (`policies/<name>/policy.toml`)
//! to components and embeds them in the `wcp` binary, so `wcp serve` can lay
//! them out as a working policy directory with no build step of the user's.
//!
//! The components and manifests are copied into `OUT_DIR` and embedded from
//! there: the shared `<target>/wasm` directory is also written by
//! `tests/artifacts`, and a rewrite there must not make the host recompile.

#[path = "components.rs"]
mod components;

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host sits one level below the workspace root")
        .to_owned();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    // Only the sources of the components: a change to the host's own code
    // must not run the nested build again.
    for dir in ["policies", "policy-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    let examples: Vec<String> = components::crates_in(&root.join("policies"))
        .into_iter()
        .filter(|name| {
            root.join("policies")
                .join(name)
                .join("policy.toml")
                .is_file()
        })
        .collect();
    if examples.is_empty() {
        components::fail(&format!(
            "no example policy ships a policy.toml under {}",
            root.join("policies").display()
        ));
    }
    let built = components::build(&root, &examples);

    let mut entries = String::new();
    for name in &examples {
        let wasm = out.join(format!("{name}.wasm"));
        let manifest = out.join(format!("{name}.toml"));
        fs::copy(components::wasm_file(&built, name), &wasm).unwrap_or_else(|e| {
            components::fail(&format!("cannot copy the {name} component: {e}"))
        });
        fs::copy(
            root.join("policies").join(name).join("policy.toml"),
            &manifest,
        )
        .unwrap_or_else(|e| components::fail(&format!("cannot copy the {name} manifest: {e}")));
        writeln!(
            entries,
            "    Example {{ name: {name:?}, wasm: include_bytes!({:?}), manifest: include_str!({:?}) }},",
            wasm.display().to_string(),
            manifest.display().to_string()
        )
        .expect("writing to a String");
    }
    let code = format!("&[\n{entries}]\n");
    if let Err(e) = fs::write(out.join("examples.rs"), code) {
        components::fail(&format!("cannot write examples.rs: {e}"));
    }
}
