//! Starting and stopping the server: runtime, store, first policy load, serving
//! with graceful shutdown. Reads top to bottom in the order it happens.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::api::{self, AppState};
use crate::auth::Authenticator;
use crate::config::ServeConfig;
use crate::examples::{self, ExamplesError};
use crate::reload;
use crate::runtime::{PolicyRuntime, RuntimeConfig, RuntimeError};
use crate::store::{Store, StoreError};
use crate::tenants::{TenantsAuth, TenantsError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The policy runtime did not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tenants file could not be loaded.
    #[error(transparent)]
    Tenants(#[from] TenantsError),
    /// The example policies could not be laid out in the default policy directory.
    #[error("cannot lay out the example policies: {0}")]
    Examples(#[from] ExamplesError),
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves the API on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish. Policies load in the background; the
/// `/api/v1/` routes answer 503 until they have. The approval sweeper runs
/// as long as the server does.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // A tenants file that does not load stops the start before anything
    // is written.
    let auth = authenticator(&config).await?;
    if config.seed_examples {
        seed_examples(&config.policy_dir).await?;
    }
    let runtime = PolicyRuntime::new(RuntimeConfig {
        cache_dir: Some(config.data_dir.join("cache")),
        ..RuntimeConfig::default()
    })?;
    // The store opens (and migrates) before anything is served: every
    // `/api/v1/` workflow route needs it, and a database that cannot be
    // opened must stop the server, not answer 500s.
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))??;
    let tenants_reloader = match &auth {
        Authenticator::Tenants(tenants) => {
            let tenants = Arc::clone(tenants);
            Some(reload::spawn_file_reloader(
                tenants.path().to_owned(),
                config.policy_rescan,
                move || {
                    tenants.reload();
                },
            ))
        }
        Authenticator::Community => None,
    };
    let state = AppState::new(config, Arc::new(runtime), auth, store);

    // Policies load in the background, then the directory is watched;
    // `/ready` turns 200 once the first load is published.
    let watcher = reload::spawn_watcher(state.clone());

    // The approval sweeper runs beside the server and stops after it, once
    // in-flight requests are done; its pass in progress finishes first.
    let (stop_sweeper, sweeper_stopped) = oneshot::channel::<()>();
    let sweeper = tokio::spawn(api::sweep_approvals(
        state.clone(),
        state.config.sweep_interval(),
        async move {
            let _ = sweeper_stopped.await;
        },
    ));

    let served = axum::serve(listener, api::app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_sweeper.send(());
    watcher.stop().await;
    if let Some(reloader) = tenants_reloader {
        reloader.stop().await;
    }
    if let Err(error) = sweeper.await {
        tracing::error!(%error, "the approval sweeper failed");
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Community mode, or tenants mode from the `--tenants` file: a file that
/// does not load stops the server before it listens.
async fn authenticator(config: &ServeConfig) -> Result<Authenticator, ServerError> {
    let Some(path) = config.tenants.clone() else {
        tracing::info!(
            "community mode: no credentials needed (start with --tenants FILE for tenants mode)"
        );
        return Ok(Authenticator::Community);
    };
    let tenants = tokio::task::spawn_blocking(move || TenantsAuth::open(&path))
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))??;
    let clients = tenants.clients();
    tracing::info!(
        path = %tenants.path().display(),
        clients = clients.len(),
        tenants = clients.tenants().into_iter().collect::<Vec<_>>().join(", "),
        "tenants mode"
    );
    Ok(Authenticator::Tenants(Arc::new(tenants)))
}

/// Lays the example policies out in the default policy directory if it does
/// not exist yet, so a first start decides gates with real policies, and
/// says so in one line.
async fn seed_examples(dir: &Path) -> Result<(), ServerError> {
    let path = dir.to_owned();
    let seeded = tokio::task::spawn_blocking(move || examples::seed(&path))
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))??;
    if seeded {
        tracing::info!(
            "no policy directory yet: laid out the example policies ({}) in {}; \
             edit or remove them there, or start with --policy-dir DIR to use your own",
            examples::names(),
            dir.join("global").display()
        );
    }
    Ok(())
}
