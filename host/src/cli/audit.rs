//! `wcp audit verify`: check the audit chains offline, against the database
//! file or the PostgreSQL database, without a running server (contract §7).
//!
//! Exit codes: 0 every chain checked is intact, 1 at least one is broken,
//! 2 the data directory or database is missing or unreadable.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::CliError;
use crate::audit::VerifyReport;
use crate::store;

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Verify the hash chains of the audit log; prints one line per chain.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
    /// The server's data directory (holds `wcp.db`); opened read-only.
    #[arg(
        long,
        env = "WCP_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// The PostgreSQL database replicas share, instead of the data
    /// directory's file; read only.
    #[arg(
        long,
        env = "WCP_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Verify only this chain: a tenant, or `global` for global policies.
    #[arg(long, value_name = "TENANT", conflicts_with = "all")]
    scope: Option<String>,
    /// Verify every chain present (the default).
    #[arg(long)]
    all: bool,
}

pub(super) fn run(command: AuditCommand) -> Result<ExitCode, CliError> {
    match command {
        AuditCommand::Verify(args) => verify(&args),
    }
}

fn verify(args: &VerifyArgs) -> Result<ExitCode, CliError> {
    let failed = |error: store::StoreError| CliError::new(error.to_string());
    let db = match &args.database_url {
        Some(url) => Db::Shared(store::Store::open_postgres_existing(url).map_err(failed)?),
        None => Db::File(store::open_read_only(&args.data_dir).map_err(failed)?),
    };
    let chains = match &args.scope {
        Some(scope) => vec![scope.clone()],
        None => db.read(|conn| conn.audit_chains()).map_err(failed)?,
    };
    if chains.is_empty() {
        println!("ok: no audit entries");
        return Ok(ExitCode::SUCCESS);
    }
    let mut broken = false;
    for chain in &chains {
        let report = db.read(|conn| conn.verify_chain(chain)).map_err(failed)?;
        println!("{}", line(chain, &report));
        broken |= !report.valid;
    }
    Ok(if broken {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The database the chains are read from.
enum Db {
    /// The data directory's file, opened read-only.
    File(Box<store::ReadTx<'static>>),
    /// A PostgreSQL database.
    Shared(store::Store),
}

impl Db {
    fn read<T: Send>(
        &self,
        read: impl FnOnce(&store::ReadTx) -> Result<T, store::StoreError> + Send,
    ) -> Result<T, store::StoreError> {
        match self {
            Db::File(conn) => read(conn.as_ref()),
            Db::Shared(store) => store.read(read),
        }
    }
}

fn line(chain: &str, report: &VerifyReport) -> String {
    match report.first_bad_seq {
        None => {
            let noun = if report.entries_checked == 1 {
                "entry"
            } else {
                "entries"
            };
            format!("ok: chain {chain}, {} {noun}", report.entries_checked)
        }
        Some(seq) => format!(
            "BROKEN: chain {chain}, first bad entry seq {seq} (of {} checked)",
            report.entries_checked
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_chain_count_and_first_bad_seq() {
        let report = |valid, entries_checked, first_bad_seq| VerifyReport {
            valid,
            entries_checked,
            first_bad_seq,
        };
        let cases = [
            (
                "intact",
                report(true, 12, None),
                "ok: chain acme, 12 entries",
            ),
            (
                "one entry",
                report(true, 1, None),
                "ok: chain acme, 1 entry",
            ),
            (
                "broken",
                report(false, 7, Some(7)),
                "BROKEN: chain acme, first bad entry seq 7 (of 7 checked)",
            ),
        ];
        for (name, report, expected) in cases {
            assert_eq!(line("acme", &report), expected, "{name}");
        }
    }
}
