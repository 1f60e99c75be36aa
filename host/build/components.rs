//! Building workspace crates to `wasm32-wasip2` components with a nested
//! `cargo build`. Shared by `host`'s build script (the example policies the
//! binary embeds) and `tests/artifacts`' (every example and hostile fixture),
//! so both build with the same flags into the same target directory: a crate
//! compiles once, and when both scripts run at the same time the second waits
//! on cargo's lock of that directory and then finds the work done.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target directory of the nested build: `<target>/wasm`, beside the
/// outer build's own directories. It has its own lock, so the nested build
/// never waits on the outer one that runs this script.
pub fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("wasm"),
        None => root.join("target/wasm"),
    }
}

/// Builds `packages` (release, `wasm32-wasip2`) from the workspace at `root`
/// and returns the directory holding their `.wasm` files. Panics with a
/// clear message if cargo cannot run or the build fails.
pub fn build(root: &Path, packages: &[String]) -> PathBuf {
    let target_dir = target_dir(root);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the outer build must not leak into the wasm build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_MAKEFLAGS")
        // `cargo clippy` lints through this wrapper. The nested build is a
        // build, not a lint; left in, it would also change the crates'
        // fingerprints, so every switch between clippy and a test run would
        // rebuild the components.
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    for name in packages {
        build.arg("-p").arg(name);
    }
    let status = build
        .status()
        .expect("cannot run cargo to build the wasm components");
    assert!(status.success(), "building the wasm components failed");
    target_dir.join("wasm32-wasip2/release")
}

/// The `.wasm` file cargo writes for package `name` in `out_dir`.
pub fn wasm_file(out_dir: &Path, name: &str) -> PathBuf {
    let file = out_dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(file.exists(), "{} was not built", file.display());
    file
}

/// Package names of the crates directly under `dir` (directory name =
/// package name), sorted.
pub fn crates_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().join("Cargo.toml").exists())
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
