//! Compiles every example policy (`policies/*`) and hostile fixture
//! (`tests/fixtures/*`) to a `wasm32-wasip2` component, once per build of
//! this crate, and writes their paths into `artifacts.rs` as constants.
//!
//! The nested `cargo build` is the one `host`'s build script runs too (see
//! `host/build/components.rs`): same flags, same target directory, so the
//! example policies compile once for both.

#[path = "../../host/build/components.rs"]
mod components;

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/artifacts sits two levels below the workspace root")
        .to_owned();
    let policies = components::crates_in(&root.join("policies"));
    let fixtures = components::crates_in(&root.join("tests/fixtures"));

    for dir in ["policies", "tests/fixtures", "policy-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    let all: Vec<String> = policies.iter().chain(&fixtures).cloned().collect();
    let out_dir = components::build(&root, &all);

    let mut code = String::new();
    let list = |group: &str, names: &[String], code: &mut String| {
        let mut entries = String::new();
        for name in names {
            let file = components::wasm_file(&out_dir, name);
            // The constants name files outside OUT_DIR: when one is deleted
            // or rewritten (a `cargo clean` of the nested directory, another
            // checkout sharing the target directory), the script runs again
            // and rebuilds it, so no test or bench finds its path missing.
            println!("cargo:rerun-if-changed={}", file.display());
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
    if let Err(e) = fs::write(&out, code) {
        components::fail(&format!("cannot write {}: {e}", out.display()));
    }
}
