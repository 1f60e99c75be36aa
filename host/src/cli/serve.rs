//! `wcp serve`: resolve the settings, set up logging, bind, serve until
//! SIGINT or SIGTERM, then let in-flight requests finish.

use std::io::IsTerminal;
use std::process::ExitCode;

use tracing::Dispatch;
use tracing_subscriber::EnvFilter;

use super::CliError;
use crate::config::{LogFormat, ServeArgs};

pub(super) fn run(args: ServeArgs) -> Result<ExitCode, CliError> {
    let config = args
        .resolve_from_env()
        .map_err(|e| CliError::new(e.to_string()))?;

    // The server's log (level, format) is the process-wide subscriber; the
    // one-shot commands install their own terse one instead.
    let _ = tracing::dispatcher::set_global_default(log_dispatch(config.log_format));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;

    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", config.listen)))?;
        let address = listener
            .local_addr()
            .map_err(|e| CliError::new(format!("cannot listen on {}: {e}", config.listen)))?;
        let shutdown = shutdown_signal()?;
        tracing::info!("listening on http://{address}");
        crate::server::run(config, listener, shutdown)
            .await
            .map_err(|e| CliError::new(e.to_string()))
    })?;
    Ok(ExitCode::SUCCESS)
}

fn log_dispatch(format: LogFormat) -> Dispatch {
    let filter = EnvFilter::try_from_env("WCP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => Dispatch::new(builder.finish()),
        LogFormat::Json => Dispatch::new(builder.json().finish()),
    }
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM now, so a signal sent right after
/// the "listening" line is not missed; the future resolves on the first.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| CliError::new(format!("cannot listen for {name}: {e}")))
    };
    let mut interrupt = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut terminate = listen(SignalKind::terminate(), "SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received; finishing in-flight requests"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; finishing in-flight requests"),
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, CliError> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received; finishing in-flight requests");
    })
}
