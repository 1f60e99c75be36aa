//! `wcp store copy`: moves an existing SQLite deployment into PostgreSQL,
//! for running several replicas on it (README, "Running several
//! replicas"). Stop `wcp serve` on the data directory first: what it writes
//! during the copy is not copied.
//!
//! Exit codes: 0 copied and verified, 2 anything else (nothing is kept in
//! the target unless every row was written).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::CliError;
use crate::store::copy;

#[derive(Debug, Subcommand)]
pub(super) enum StoreCommand {
    /// Copy a data directory's SQLite database into an empty PostgreSQL
    /// database, audit chains included, and verify the copy.
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
pub(super) struct CopyArgs {
    /// The data directory holding `wcp.db`; opened read-only.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The PostgreSQL database, postgres://user[:password]@host:port/db;
    /// migrated first, and it must hold no workflows or audit entries.
    #[arg(long, value_name = "URL")]
    to: String,
}

pub(super) fn run(command: StoreCommand) -> Result<ExitCode, CliError> {
    match command {
        StoreCommand::Copy(args) => {
            let copied = copy::copy(&args.from, &args.to, |table, rows| {
                eprintln!("read {rows} rows of {table}");
            })
            .map_err(|error| CliError::new(format!("copy failed, nothing kept: {error}")))?;
            for (table, rows) in &copied.rows {
                println!("copied {rows} rows of {table}");
            }
            for (chain, entries) in &copied.chains {
                println!("ok: chain {chain}, {entries} entries, verified in the target");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
