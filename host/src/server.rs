//! Starting and stopping the server: runtime, store, first policy load, serving
//! with graceful shutdown. Reads top to bottom in the order it happens.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::api::listen::Limits;
use crate::api::{self, AppState};
use crate::config::{LogFormat, ServeConfig};
use crate::examples::{self, ExamplesError};
use crate::reload;
use crate::runtime::{PolicyRuntime, RuntimeConfig, RuntimeError};
use crate::store::{Store, StoreError};
use crate::tenants::Authenticator;
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
    let address = listener.local_addr()?;
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
    let store = open_store(&config).await?;
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
    let limits = connection_limits(&config);
    let startup = Startup::new(&config, address, &auth, &store, limits);
    let state = AppState::new(config, Arc::new(runtime), auth, store);

    // Policies load in the background, then the directory is watched;
    // `/ready` turns 200 once the first load is published, and the log
    // then says where everything is.
    let ready = state.clone();
    let watcher = reload::spawn_watcher(Arc::clone(&state.policies), move |loaded, failed| {
        ready.mark_ready();
        startup.log(loaded, failed);
    });

    // The approval sweeper runs beside the server and stops after it, once
    // in-flight requests are done; its pass in progress finishes first.
    let (stop_sweeper, sweeper_stopped) = oneshot::channel::<()>();
    let sweeper = tokio::spawn(state.gates.expiry().clone().sweep(
        state.config.sweep_interval(),
        async move {
            let _ = sweeper_stopped.await;
        },
    ));

    let served = api::listen::serve(listener, api::app(state), limits.http, shutdown).await;
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

/// How long `wcp serve` waits between attempts to reach a database that
/// does not answer yet, at most.
const DATABASE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Opens the store of `config`. A PostgreSQL database that does not answer
/// yet (a replica started before it, or while it restarts) is waited for,
/// with a warning at each attempt; any other failure (a wrong password, a
/// schema from a newer `wcp`) stops the start.
async fn open_store(config: &ServeConfig) -> Result<Store, ServerError> {
    let mut pause = Duration::from_millis(250);
    loop {
        let data_dir = config.data_dir.clone();
        let database_url = config.database_url.clone();
        let opened = tokio::task::spawn_blocking(move || match database_url {
            Some(url) => Store::open_postgres(url.expose()),
            None => Store::open(&data_dir),
        })
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))?;
        match opened {
            Err(StoreError::Unavailable(error)) => {
                tracing::warn!(%error, retry_in = ?pause, "waiting for the database");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(DATABASE_RETRY_MAX);
            }
            opened => return Ok(opened?),
        }
    }
}

/// Community mode, or tenants mode from the `--tenants` file: a file that
/// does not load stops the server before it listens.
async fn authenticator(config: &ServeConfig) -> Result<Authenticator, ServerError> {
    let Some(path) = config.tenants.clone() else {
        return Ok(Authenticator::Community);
    };
    let tenants = tokio::task::spawn_blocking(move || TenantsAuth::open(&path))
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))??;
    Ok(Authenticator::Tenants(Arc::new(tenants)))
}

/// The connection limits in force, and the descriptor limit they fit in.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    http: Limits,
    /// The soft `RLIMIT_NOFILE` after raising it; `None` where it cannot
    /// be read.
    descriptors: Option<u64>,
}

/// Descriptors kept for everything but connections: the database and its
/// readers, the policy files and cache, the watcher, the runtime.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises the soft descriptor limit to the hard one, so the connection cap
/// is what limits connections, and fits the cap under it: at most the
/// limit less [`RESERVED_DESCRIPTORS`] (or half of a small limit).
fn connection_limits(config: &ServeConfig) -> ConnectionLimits {
    let descriptors = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "cannot read or raise the open-file limit");
            None
        }
    };
    let mut max_connections = config.max_connections;
    if let Some(limit) = descriptors {
        let room = limit - RESERVED_DESCRIPTORS.min(limit / 2);
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        if room < max_connections {
            tracing::warn!(
                "the open-file limit is {limit}: serving at most {room} connections at once, \
                 not the {max_connections} asked for (raise the hard limit, e.g. LimitNOFILE=)"
            );
            max_connections = room;
        }
    }
    ConnectionLimits {
        http: Limits {
            header_timeout: config.header_timeout,
            body_timeout: config.body_timeout,
            max_connections,
            shutdown_grace: config.shutdown_grace,
        },
        descriptors,
    }
}

/// What the startup block says once the first policy load is published:
/// the version, where the server listens, who may call it, where its data
/// and policies are, and where its description and metrics are served.
struct Startup {
    format: LogFormat,
    listen: String,
    /// The base of the URLs to try: the listen address, or loopback when
    /// the server listens on every interface.
    base: String,
    mode: String,
    store: String,
    policy_dir: String,
    limits: String,
}

impl Startup {
    fn new(
        config: &ServeConfig,
        address: SocketAddr,
        auth: &Authenticator,
        store: &Store,
        limits: ConnectionLimits,
    ) -> Self {
        let listen = format!("http://{address}");
        let (listen, base) = if address.ip().is_unspecified() {
            let loopback = match address {
                SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, address.port())),
                SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, address.port())),
            };
            (
                format!("{listen} (every interface)"),
                format!("http://{loopback}"),
            )
        } else {
            (listen.clone(), listen)
        };
        let mode = match auth {
            Authenticator::Community => "community: no credentials needed \
                 (start with --tenants FILE for tenants mode)"
                .to_owned(),
            Authenticator::Tenants(tenants) => {
                let clients = tenants.clients();
                let names = clients.tenants().into_iter().collect::<Vec<_>>();
                format!(
                    "tenants: {} client{} of {} tenant{} ({}) from {}",
                    clients.len(),
                    if clients.len() == 1 { "" } else { "s" },
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", "),
                    tenants.path().display()
                )
            }
        };
        Startup {
            format: config.log_format,
            listen,
            base,
            mode,
            store: store.describe(),
            policy_dir: config.policy_dir.display().to_string(),
            limits: describe_limits(limits),
        }
    }

    /// Logs the block: one multi-line event in the human format, one event
    /// with a field per line in the JSON format.
    fn log(&self, loaded: usize, failed: usize) {
        let openapi = format!("{}/openapi.json", self.base);
        let metrics = format!("{}/metrics", self.base);
        match self.format {
            LogFormat::Json => tracing::info!(
                version = crate::VERSION,
                listen = %self.listen,
                mode = %self.mode,
                store = %self.store,
                policy_dir = %self.policy_dir,
                limits = %self.limits,
                policies_loaded = loaded,
                policies_failed = failed,
                openapi = %openapi,
                metrics = %metrics,
                "ready"
            ),
            LogFormat::Human => {
                let failures = if failed == 0 {
                    ""
                } else {
                    " (their errors are logged above)"
                };
                tracing::info!(
                    "wcp {version} is ready\n  \
                     listen    {listen}\n  \
                     mode      {mode}\n  \
                     store     {store}\n  \
                     policies  {dir}: {loaded} loaded, {failed} failed{failures}\n  \
                     limits    {limits}\n  \
                     openapi   {openapi}\n  \
                     metrics   {metrics}",
                    version = crate::VERSION,
                    listen = self.listen,
                    mode = self.mode,
                    store = self.store,
                    dir = self.policy_dir,
                    limits = self.limits,
                )
            }
        }
    }
}

/// `10000 connections (open-file limit 1048576), header 30s, body 30s,
/// shutdown grace 10s`.
fn describe_limits(limits: ConnectionLimits) -> String {
    let http = limits.http;
    let descriptors = limits
        .descriptors
        .map_or_else(|| "unknown".to_owned(), |limit| limit.to_string());
    format!(
        "{} connections (open-file limit {descriptors}), header {:?}, body {:?}, shutdown grace {:?}",
        http.max_connections, http.header_timeout, http.body_timeout, http.shutdown_grace
    )
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
