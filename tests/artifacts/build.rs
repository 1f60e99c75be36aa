//! Compiles every example policy (`policies/*`) and hostile fixture
//! (`tests/fixtures/*`) to a `wasm32-wasip2` component, once per build of
//! this crate, and writes their paths into `artifacts.rs` as constants.
//!
//! The nested `cargo build` uses its own target directory so it never waits
//! on the lock held by the outer build.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/artifacts sits two levels below the workspace root")
        .to_owned();
    let policies = crates_in(&root.join("policies"));
    let fixtures = crates_in(&root.join("tests/fixtures"));

    for dir in ["policies", "tests/fixtures", "policy-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    let target_dir = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("wasm"),
        None => root.join("target/wasm"),
    };
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host build must not leak into the wasm build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_MAKEFLAGS");
    for name in policies.iter().chain(&fixtures) {
        build.arg("-p").arg(name);
    }
    let status = build
        .status()
        .expect("cannot run cargo to build the wasm artifacts");
    assert!(status.success(), "building the wasm artifacts failed");

    let out_dir = target_dir.join("wasm32-wasip2/release");
    let mut code = String::new();
    let list = |group: &str, names: &[String], code: &mut String| {
        let mut entries = String::new();
        for name in names {
            let file = out_dir.join(format!("{}.wasm", name.replace('-', "_")));
            assert!(file.exists(), "{} was not built", file.display());
            let constant = name.replace('-', "_").to_uppercase();
            writeln!(
                code,
                "/// `{name}` built to a component.\npub const {constant}: &str = {:?};",
                file.display().to_string()
            )
            .expect("writing to a String");
            writeln!(entries, "    ({name:?}, {constant}),").expect("writing to a String");
        }
        writeln!(
            code,
            "/// Every {group} crate: (package name, path to its `.wasm`).\npub const {}: &[(&str, &str)] = &[\n{entries}];",
            group.to_uppercase()
        )
        .expect("writing to a String");
    };
    list("policies", &policies, &mut code);
    list("fixtures", &fixtures, &mut code);
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("artifacts.rs");
    fs::write(out, code).expect("cannot write artifacts.rs");
}

/// Package names of the crates directly under `dir` (directory name =
/// package name), sorted.
fn crates_in(dir: &Path) -> Vec<String> {
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
