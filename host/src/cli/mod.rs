//! The `wcp` command line.
//!
//! Exit codes: 0 success, 1 a `policy test` case did not match, 2 bad usage
//! or input (a missing file, not a component, bad JSON), always with a
//! one-line message naming the problem.

mod audit;
mod policy;
mod serve;
mod store;
mod tenants;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Workflow Control Plane: gate decisions for workflow steps, made by
/// sandboxed WebAssembly policies.
#[derive(Debug, Parser)]
#[command(name = "wcp", version = crate::VERSION, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<crate::config::ServeArgs>),
    /// Check, try, test and measure policy components; write the examples.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Verify the audit log's hash chains, offline.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Hash client secrets and check tenants files, for tenants mode.
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
    /// Move the store between backends.
    #[command(subcommand)]
    Store(store::StoreCommand),
}

/// A failure the user can fix, printed as `error: <message>`, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(String);

impl CliError {
    fn new(message: impl Into<String>) -> Self {
        CliError(message.into())
    }
}

/// Parses the arguments, runs the command and returns the exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with success; usage errors exit 2.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Policy(command) => {
            init_logging();
            policy::run(command)
        }
        Command::Audit(command) => {
            init_logging();
            audit::run(command)
        }
        Command::Tenants(command) => {
            init_logging();
            tenants::run(command)
        }
        Command::Store(command) => {
            init_logging();
            store::run(command)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// The terse log of the one-shot commands: warnings and errors on stderr.
/// `wcp serve` sets up its own, fuller log.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WCP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
