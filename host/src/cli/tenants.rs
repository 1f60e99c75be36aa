//! `wcp tenants hash-secret` and `wcp tenants check`: preparing a tenants
//! file (contract §1.2) before a server reads it.
//!
//! Exit codes: 0 success, 2 an empty secret or an invalid file, with a
//! one-line message.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::CliError;
use crate::tenants::{self, TenantsFile};

#[derive(Debug, Subcommand)]
pub(super) enum TenantsCommand {
    /// Hash a client secret read from stdin (one trailing newline removed)
    /// and print the argon2id PHC string for `secret_hash`.
    HashSecret,
    /// Validate a tenants file; prints its clients and tenants.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// The tenants file.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub(super) fn run(command: TenantsCommand) -> Result<ExitCode, CliError> {
    match command {
        TenantsCommand::HashSecret => hash_secret(),
        TenantsCommand::Check(args) => check(&args),
    }
}

fn hash_secret() -> Result<ExitCode, CliError> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|error| CliError::new(format!("cannot read the secret from stdin: {error}")))?;
    let secret = secret_from(input)?;
    let hash = tenants::hash_secret(&secret).map_err(|error| CliError::new(error.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{hash}")
        .and_then(|()| stdout.flush())
        .map_err(|error| CliError::new(format!("cannot write to stdout: {error}")))?;
    Ok(ExitCode::SUCCESS)
}

/// The whole input with one trailing `\n` or `\r\n` removed, as `echo` or
/// a file add it.
fn secret_from(mut input: Vec<u8>) -> Result<String, CliError> {
    if input.ends_with(b"\n") {
        input.pop();
        if input.ends_with(b"\r") {
            input.pop();
        }
    }
    if input.is_empty() {
        return Err(CliError::new(
            "empty secret: pipe it in, e.g. printf '%s' \"$SECRET\" | wcp tenants hash-secret",
        ));
    }
    String::from_utf8(input).map_err(|_| CliError::new("the secret on stdin is not UTF-8"))
}

fn check(args: &CheckArgs) -> Result<ExitCode, CliError> {
    let file = TenantsFile::load(&args.file).map_err(|error| CliError::new(error.to_string()))?;
    println!("{}", summary(&args.file.display().to_string(), &file));
    Ok(ExitCode::SUCCESS)
}

fn summary(path: &str, file: &TenantsFile) -> String {
    let tenants: Vec<&str> = file.tenants().into_iter().collect();
    let noun = if file.len() == 1 { "client" } else { "clients" };
    format!(
        "ok: {path}: {} {noun} (tenants: {})",
        file.len(),
        tenants.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_not_part_of_the_secret() {
        let cases: [(&str, &[u8], Option<&str>); 8] = [
            ("plain", b"s3cret", Some("s3cret")),
            ("newline", b"s3cret\n", Some("s3cret")),
            ("crlf", b"s3cret\r\n", Some("s3cret")),
            ("only one newline", b"s3cret\n\n", Some("s3cret\n")),
            ("spaces kept", b" s3cret \n", Some(" s3cret ")),
            ("empty", b"", None),
            ("just a newline", b"\r\n", None),
            ("not UTF-8", b"\xff\n", None),
        ];
        for (name, input, expected) in cases {
            let result = secret_from(input.to_vec());
            match expected {
                Some(secret) => assert_eq!(result.expect(name), secret, "{name}"),
                None => assert!(result.is_err(), "{name}"),
            }
        }
    }

    #[test]
    fn the_summary_counts_clients_and_lists_tenants_once() {
        let hash = tenants::hash_secret("s3cret").expect("hashes");
        let client = |id: &str, tenant: &str| {
            format!(
                "[[clients]]\nclient_id = \"{id}\"\nsecret_hash = \"{hash}\"\ntenant = \"{tenant}\"\norg = \"o\"\nroles = [\"member\"]\n"
            )
        };
        let one = TenantsFile::parse(&client("a", "acme")).expect("valid");
        assert_eq!(
            summary("t.toml", &one),
            "ok: t.toml: 1 client (tenants: acme)"
        );
        let three = TenantsFile::parse(&format!(
            "{}{}{}",
            client("a", "zeta"),
            client("b", "acme"),
            client("c", "zeta")
        ))
        .expect("valid");
        assert_eq!(
            summary("t.toml", &three),
            "ok: t.toml: 3 clients (tenants: acme, zeta)"
        );
    }
}
