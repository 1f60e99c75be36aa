//! Building workspace crates to `wasm32-wasip2` components with a nested
//! `cargo build`. Shared by `host`'s build script (the example policies the
//! binary embeds) and `tests/artifacts`' (every example and hostile fixture),
//! so both build with the same flags into the same target directory: a crate
//! compiles once, and when both scripts run at the same time the second waits
//! on cargo's lock of that directory and then finds the work done.
//!
//! A machine whose toolchain lacks the `wasm32-wasip2` standard library (rustup
//! installs a toolchain file's `targets` only along with the toolchain itself)
//! gets it here with `rustup target add`, so a fresh checkout builds with
//! nothing but cargo. Every failure ends the build script with one
//! `cargo::error` line saying what to do, never a panic.

use std::env;
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{self, Command};

/// The target the components are built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Ends the build script: cargo shows `message` as the build's error and
/// fails the build. The exit status is 0 because the directive alone fails
/// the build; a non-zero one would make cargo dump the script's whole output
/// around the message.
pub fn fail(message: &str) -> ! {
    exit_with_error(message, 0)
}

/// Like [`fail`], but with a non-zero exit, so that cargo also shows what
/// the script's children printed to stderr (the nested build's errors).
fn fail_showing_output(message: &str) -> ! {
    exit_with_error(message, 1)
}

fn exit_with_error(message: &str, code: i32) -> ! {
    // One line: a directive ends at the line's end.
    println!("cargo::error={}", message.replace('\n', " "));
    process::exit(code)
}

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
/// and returns the directory holding their `.wasm` files. Adds the target to
/// the toolchain first if it is missing; fails the build script with a clear
/// message if cargo cannot run or the build fails.
pub fn build(root: &Path, packages: &[String]) -> PathBuf {
    let target_dir = target_dir(root);
    ensure_target(root, &target_dir);
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(root)
        .args(["build", "--release", "--target", WASM_TARGET])
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
    match build.status() {
        Ok(status) if status.success() => {}
        // The nested cargo printed the compiler's errors to this script's
        // stderr, which cargo shows after a non-zero exit.
        Ok(status) => fail_showing_output(&format!(
            "building the policy components for {WASM_TARGET} failed ({status}); the errors are in this script's stderr below"
        )),
        Err(e) => fail(&format!(
            "cannot run cargo to build the policy components: {e}"
        )),
    }
    target_dir.join(WASM_TARGET).join("release")
}

/// The `.wasm` file cargo writes for package `name` in `out_dir`.
pub fn wasm_file(out_dir: &Path, name: &str) -> PathBuf {
    let file = out_dir.join(format!("{}.wasm", name.replace('-', "_")));
    if !file.exists() {
        fail(&format!(
            "the nested build succeeded but wrote no {}",
            file.display()
        ));
    }
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

/// Makes sure the compiler cargo builds with has the `wasm32-wasip2`
/// standard library, running `rustup target add` for the active toolchain
/// when it does not.
///
/// Both build scripts may get here at once; a file lock in the nested target
/// directory lets one of them install while the other waits and then finds
/// the target there, so rustup never runs twice side by side.
fn ensure_target(root: &Path, target_dir: &Path) {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = target_libdir(&rustc);
    if has_std(&libdir) {
        return;
    }
    if let Err(e) = fs::create_dir_all(target_dir) {
        fail(&format!("cannot create {}: {e}", target_dir.display()));
    }
    let lock_path = target_dir.join(".rustup-target-add.lock");
    let _lock = File::create(&lock_path)
        .and_then(|file| file.lock().map(|()| file))
        .unwrap_or_else(|e| fail(&format!("cannot lock {}: {e}", lock_path.display())));
    if has_std(&libdir) {
        return;
    }

    // Under rustup's proxy, cargo and this script run with the toolchain it
    // chose (here from rust-toolchain.toml) named in RUSTUP_TOOLCHAIN.
    let mut args = vec![
        "target".to_owned(),
        "add".to_owned(),
        WASM_TARGET.to_owned(),
    ];
    if let Some(name) = env::var_os("RUSTUP_TOOLCHAIN") {
        args.push("--toolchain".to_owned());
        args.push(name.to_string_lossy().into_owned());
    }
    let command = format!("rustup {}", args.join(" "));
    let mut add = Command::new("rustup");
    add.current_dir(root).args(&args);
    match add.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let reason = stderr
                .lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("no message");
            fail(&format!(
                "the {WASM_TARGET} standard library is missing and `{command}` failed ({}: {reason}); run it yourself, then build again",
                out.status
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(&format!(
            "the {WASM_TARGET} standard library is missing from {} and rustup is not installed: install rustup and run `rustup target add {WASM_TARGET}`, or give this compiler that target's standard library",
            libdir.display()
        )),
        Err(e) => fail(&format!(
            "the {WASM_TARGET} standard library is missing and `{command}` could not run: {e}"
        )),
    }
    if !has_std(&libdir) {
        fail(&format!(
            "`{command}` succeeded, but {} still has no {WASM_TARGET} standard library in {}: build with a rustup toolchain, or install the target for this compiler",
            rustc.to_string_lossy(),
            libdir.display()
        ));
    }
    println!(
        "cargo::warning=the {WASM_TARGET} target was missing from the Rust toolchain, so this build ran `{command}` to compile the policy components"
    );
}

/// Where `rustc` keeps (or would keep) the `wasm32-wasip2` libraries.
fn target_libdir(rustc: &OsString) -> PathBuf {
    let out = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", rustc.to_string_lossy())));
    if !out.status.success() {
        fail(&format!(
            "{} does not know the {WASM_TARGET} target ({}): use Rust 1.82 or newer",
            rustc.to_string_lossy(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Whether `libdir` holds a compiled standard library.
fn has_std(libdir: &Path) -> bool {
    fs::read_dir(libdir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}
