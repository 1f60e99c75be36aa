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
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host sits one level below the workspace root")
        .to_owned();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    println!("cargo:rustc-env=WCP_GIT_COMMIT={}", git_commit(&root));

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

/// The commit `wcp --version` names: `WCP_GIT_COMMIT` when a packager sets
/// it, else the checkout's `HEAD` (12 hex digits), else `unknown` (a
/// source tarball). The script runs again when `HEAD` moves, so the binary
/// never names a commit it was not built from.
fn git_commit(root: &Path) -> String {
    println!("cargo:rerun-if-env-changed=WCP_GIT_COMMIT");
    if let Some(commit) = env::var("WCP_GIT_COMMIT").ok().filter(|c| !c.is_empty()) {
        return commit;
    }
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_owned();
    };
    // HEAD names a branch whose ref file (or packed-refs) moves on a commit;
    // a detached HEAD is itself the file that changes. Paths that do not
    // exist are left out: cargo would rerun the script on every build.
    let watched = [
        git(&["rev-parse", "--path-format=absolute", "--git-path", "HEAD"]),
        git(&["symbolic-ref", "-q", "HEAD"])
            .and_then(|name| git(&["rev-parse", "--path-format=absolute", "--git-path", &name])),
        git(&[
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            "packed-refs",
        ]),
    ];
    for path in watched.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    commit
}
