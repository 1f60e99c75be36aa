//! `wcp policy …` and `wcp tenants …` as a user runs them: real binary, real
//! components, exit codes and one-line errors.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use wcp_test_artifacts as wasm;

fn wcp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wcp"))
        .args(args)
        .env("WCP_LOG", "error")
        .output()
        .unwrap()
}

fn write_json(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, value.to_string()).unwrap();
    path
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that prints an eval report and returns it, parsed.
fn eval_report(args: &[&str]) -> Value {
    let output = wcp(args);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `wcp policy eval <policy> --request <request> <extra…>`.
fn eval(policy: &str, request: &Value, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let request = write_json(dir.path(), "gate.json", request);
    let mut args = vec![
        "policy",
        "eval",
        policy,
        "--request",
        request.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    eval_report(&args)
}

#[test]
fn eval_blocks_an_unknown_model_naming_it_and_allows_gpt_4o() {
    let report = eval(
        wasm::MODEL_ALLOWLIST,
        &json!({"step_type": "llm_call", "model": "davinci-001"}),
        &[],
    );
    assert_eq!(report["verdict"], "block");
    assert_eq!(report["action"], "block");
    assert!(
        report["reason"].as_str().unwrap().contains("davinci-001"),
        "{report}"
    );
    assert!(report["duration_us"].is_u64(), "{report}");
    assert_eq!(report["policy_version"].as_str().unwrap().len(), 12);

    let report = eval(
        wasm::MODEL_ALLOWLIST,
        &json!({"step_type": "llm_call", "model": "gpt-4o"}),
        &[],
    );
    assert_eq!(report["verdict"], "allow", "{report}");
}

#[test]
fn eval_reports_a_fault_and_applies_on_error() {
    let report = eval(wasm::PANIC, &json!({"step_type": "llm_call"}), &[]);
    assert_eq!(report["action"], "error");
    assert_eq!(report["verdict"], "block");
    assert_eq!(report["error"]["kind"], "trap");

    let report = eval(
        wasm::PANIC,
        &json!({"step_type": "llm_call"}),
        &["--on-error", "allow"],
    );
    assert_eq!(report["verdict"], "allow", "{report}");
}

#[test]
fn eval_passes_settings_to_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let settings = write_json(
        dir.path(),
        "settings.json",
        &json!({"allowed_models": ["o3"]}),
    );
    let report = eval(
        wasm::MODEL_ALLOWLIST,
        &json!({"step_type": "llm_call", "model": "gpt-4o"}),
        &["--settings", settings.to_str().unwrap()],
    );
    assert_eq!(report["verdict"], "block", "{report}");
}

#[test]
fn user_mistakes_exit_2_with_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_json(dir.path(), "gate.json", &json!({"step_type": "llm_call"}));
    let good = good.to_str().unwrap();
    let bad_json = dir.path().join("bad.json");
    fs::write(&bad_json, "{\"step_type\": ").unwrap();
    let no_type = write_json(dir.path(), "no-type.json", &json!({"model": "gpt-4o"}));
    let text = dir.path().join("notes.wasm");
    fs::write(&text, "just text").unwrap();
    let core = dir.path().join("core.wasm");
    fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let empty_component = dir.path().join("empty.wasm");
    fs::write(&empty_component, b"\0asm\x0d\0\x01\0").unwrap();
    let missing = dir.path().join("missing.wasm");

    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "missing file",
            vec![
                "policy",
                "eval",
                missing.to_str().unwrap(),
                "--request",
                good,
            ],
            "missing.wasm",
        ),
        (
            "not wasm",
            vec!["policy", "check", text.to_str().unwrap()],
            "not a WebAssembly file",
        ),
        (
            "core module",
            vec!["policy", "check", core.to_str().unwrap()],
            "not a component",
        ),
        (
            "wrong world",
            vec!["policy", "check", empty_component.to_str().unwrap()],
            "does not implement the wcp:policy/policy world",
        ),
        (
            "forbidden import",
            vec!["policy", "check", wasm::FORBIDDEN_IMPORT],
            "fixture:exfil/network",
        ),
        (
            "bad request JSON",
            vec![
                "policy",
                "eval",
                wasm::ALLOW_ALL,
                "--request",
                bad_json.to_str().unwrap(),
            ],
            "bad.json is not valid JSON",
        ),
        (
            "invalid gate body",
            vec![
                "policy",
                "eval",
                wasm::ALLOW_ALL,
                "--request",
                no_type.to_str().unwrap(),
            ],
            "step_type is required",
        ),
        (
            "missing request",
            vec![
                "policy",
                "eval",
                wasm::ALLOW_ALL,
                "--request",
                missing.to_str().unwrap(),
            ],
            "missing.wasm",
        ),
        (
            "unknown flag",
            vec!["policy", "eval", "--frobnicate"],
            "--frobnicate",
        ),
    ];
    for (name, args, needle) in cases {
        let output = wcp(&args);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", stderr(&output));
        let err = stderr(&output);
        assert!(err.contains(needle), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        if name != "unknown flag" {
            assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
            assert!(err.starts_with("error: "), "{name}: {err}");
        }
    }
}

#[test]
fn check_accepts_every_example_policy() {
    for (name, path) in wasm::POLICIES {
        let output = wcp(&["policy", "check", path]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert!(stdout(&output).starts_with("ok: "), "{name}");
    }
}

#[test]
fn test_command_passes_each_policys_own_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for (name, path) in wasm::POLICIES {
        let cases = root.join("policies").join(name).join("cases.json");
        if !cases.exists() {
            continue;
        }
        let output = wcp(&["policy", "test", path, cases.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{name}: {}{}",
            stdout(&output),
            stderr(&output)
        );
        assert!(
            stdout(&output).contains(" 0 failed"),
            "{name}: {}",
            stdout(&output)
        );
    }
}

#[test]
fn test_command_shows_a_table_and_exits_1_on_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let cases = write_json(
        dir.path(),
        "cases.json",
        &json!({"cases": [
            {"name": "old model blocked", "request": {"step_type": "llm_call", "model": "davinci-001"},
             "expect": "block", "reason_contains": "davinci-001"},
            {"name": "wrong expectation", "request": {"step_type": "llm_call", "model": "gpt-4o"},
             "expect": "block"},
            {"name": "wrong reason", "request": {"step_type": "llm_call", "model": "ada"},
             "expect": "block", "reason_contains": "not there"}
        ]}),
    );
    let output = wcp(&[
        "policy",
        "test",
        wasm::MODEL_ALLOWLIST,
        cases.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(table.starts_with("CASE"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_owned()
    };
    assert!(row("old model blocked").ends_with("ok"), "{table}");
    assert!(row("wrong expectation").contains("FAIL"), "{table}");
    assert!(row("wrong reason").contains("does not contain"), "{table}");
    assert!(table.contains("1 passed, 2 failed"), "{table}");
}

#[test]
fn bench_reports_percentiles_and_rate() {
    let output = wcp(&["policy", "bench", wasm::ALLOW_ALL, "-n", "200"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for label in ["p50", "p99", "evaluations/s", "decision   allow"] {
        assert!(text.contains(label), "{label} missing: {text}");
    }
}

#[test]
fn eval_reads_the_manifest_beside_the_policy_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("model-allowlist.wasm");
    fs::copy(wasm::MODEL_ALLOWLIST, &policy).unwrap();
    fs::write(
        dir.path().join("model-allowlist.toml"),
        "[settings]\nallowed_models = [\"davinci-001\"]\n",
    )
    .unwrap();
    let request = write_json(
        dir.path(),
        "gate.json",
        &json!({"step_type": "llm_call", "model": "davinci-001"}),
    );
    let (policy, request) = (policy.to_str().unwrap(), request.to_str().unwrap());

    let output = wcp(&["policy", "eval", policy, "--request", request]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["verdict"], "allow",
        "manifest settings apply: {report}"
    );
    assert!(
        stderr(&output).contains("using manifest"),
        "{}",
        stderr(&output)
    );

    let settings = write_json(dir.path(), "s.json", &json!({"allowed_models": ["gpt-4o"]}));
    let report = eval_report(&[
        "policy",
        "eval",
        policy,
        "--request",
        request,
        "--settings",
        settings.to_str().unwrap(),
    ]);
    assert_eq!(report["verdict"], "block", "--settings overrides: {report}");
}

#[test]
fn a_manifest_sets_on_error_and_an_invalid_one_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let request = write_json(dir.path(), "gate.json", &json!({"step_type": "llm_call"}));
    let request = request.to_str().unwrap();
    let manifest = dir.path().join("lenient.toml");
    fs::write(&manifest, "on_error = \"require_approval\"\n").unwrap();
    let report = eval_report(&[
        "policy",
        "eval",
        wasm::PANIC,
        "--request",
        request,
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(report["verdict"], "require_approval", "{report}");

    fs::write(&manifest, "timeout_ms = 0\n").unwrap();
    let output = wcp(&[
        "policy",
        "eval",
        wasm::PANIC,
        "--request",
        request,
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("timeout_ms must be between 1 and 10000"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// `wcp tenants hash-secret` with `input` on stdin.
fn hash_secret(input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wcp"))
        .args(["tenants", "hash-secret"])
        .env("WCP_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn hash_secret_prints_an_argon2id_hash_that_a_tenants_file_accepts() {
    use argon2::{Argon2, PasswordHash, PasswordVerifier};

    let output = hash_secret(b"s3cret\n");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let out = stdout(&output);
    let phc = out.strip_suffix('\n').unwrap();
    assert!(!phc.contains('\n'), "{out}");
    let parsed = PasswordHash::new(phc).unwrap();
    assert_eq!(parsed.algorithm.as_str(), "argon2id");
    // The trailing newline is not part of the secret.
    assert!(
        Argon2::default()
            .verify_password(b"s3cret", &parsed)
            .is_ok()
    );
    assert!(
        Argon2::default()
            .verify_password(b"s3cret\n", &parsed)
            .is_err()
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.toml");
    let client = |id: &str, tenant: &str| {
        format!(
            "[[clients]]\nclient_id = \"{id}\"\nsecret_hash = \"{phc}\"\ntenant = \"{tenant}\"\norg = \"o\"\nroles = [\"member\"]\n"
        )
    };
    fs::write(&file, client("a", "zeta") + &client("b", "acme")).unwrap();
    let path = file.to_str().unwrap();
    let output = wcp(&["tenants", "check", path]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("ok: {path}: 2 clients (tenants: acme, zeta)\n")
    );
}

#[test]
fn tenants_mistakes_exit_2_with_one_line() {
    let output = hash_secret(b"\n");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    assert!(err.starts_with("error: empty secret"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.toml");
    fs::write(
        &file,
        "[[clients]]\nclient_id = \"a\"\nsecret_hash = \"hunter2\"\ntenant = \"t\"\norg = \"o\"\nroles = [\"member\"]\n",
    )
    .unwrap();
    let missing = dir.path().join("missing.toml");
    for (name, path, needle) in [
        (
            "plain secret",
            &file,
            "clients[0] (a): secret_hash: not a PHC string",
        ),
        ("missing file", &missing, "cannot read tenants file"),
    ] {
        let output = wcp(&["tenants", "check", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{name}");
        let err = stderr(&output);
        assert!(err.starts_with("error: "), "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
        assert!(err.contains(path.to_str().unwrap()), "{name}: {err}");
        assert!(!err.contains("hunter2"), "{name}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: {err}");
    }
}

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    let output = wcp(&["--version"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // The build names the checkout's HEAD, or `unknown` outside one.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |out| String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        );
    let expected = if std::env::var_os("WCP_GIT_COMMIT").is_some() {
        host::GIT_COMMIT.to_owned()
    } else {
        head
    };
    assert_eq!(
        stdout(&output),
        format!("wcp {} ({expected})\n", env!("CARGO_PKG_VERSION"))
    );
}
