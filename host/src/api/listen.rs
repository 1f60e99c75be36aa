//! Serving the router on a TCP listener, with the limits that keep slow,
//! idle and careless clients from shutting everyone else out:
//!
//! - hyper's header read timeout: a request head must arrive within
//!   [`Limits::header_timeout`]. hyper starts that clock when a connection
//!   opens and again after each response, so it is also how long an idle
//!   keep-alive connection is kept.
//! - tower-http's request body deadline: a body not fully received within
//!   [`Limits::body_timeout`] of its head fails to read, and the handler
//!   answers 408 (see `extract::unreadable`).
//! - a cap on open connections: at the cap the loop stops accepting, so
//!   new connections wait in the kernel's backlog until one closes, and
//!   the process never runs out of descriptors mid-request.
//! - a bounded shutdown: once `shutdown` resolves, no connection is
//!   accepted, idle ones close, requests in flight get
//!   [`Limits::shutdown_grace`] to finish, and whatever is left is closed.
//!
//! Only HTTP/1.1 is served: it is what the orchestrators' clients speak,
//! and the header timeout above is an HTTP/1 setting.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;
use tower_http::timeout::RequestBodyDeadlineLayer;

/// The connection limits of `wcp serve` (each has a flag, see
/// `config::ServeArgs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time allowed for a request head, from the connection's opening or
    /// its previous response.
    pub header_timeout: Duration,
    /// Time allowed for a request body, from the end of its head.
    pub body_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Time requests in flight get to finish once shutdown starts.
    pub shutdown_grace: Duration,
}

/// Where a shutdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Serving,
    /// Finish the request in flight, then close.
    Draining,
    /// Close now.
    Closing,
}

/// Shortest and longest pause after a failed `accept`: a process out of
/// descriptors must not spin, nor wait long once one is free again.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(5), Duration::from_secs(1));

/// How often a repeated `accept` failure is logged.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then drains as [`Limits::shutdown_grace`] allows. Each request carries
/// its peer's address as [`ConnectInfo<SocketAddr>`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let app = tower::ServiceBuilder::new()
        .layer(RequestBodyDeadlineLayer::new(limits.body_timeout))
        .service(app);
    let max = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let permits = Arc::new(Semaphore::new(max as usize));
    let (phase, watch_phase) = watch::channel(Phase::Serving);
    let mut shutdown = pin!(shutdown);
    let mut failures = AcceptFailures::default();

    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    failures.recovered();
                    accepted
                }
                Err(error) => {
                    let pause = failures.failed(&error);
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(pause) => continue,
                    }
                }
            },
        };
        // Small JSON answers: send them without waiting for more.
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            });
        let connection = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let mut watch_phase = watch_phase.clone();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            let mut seen = Phase::Serving;
            loop {
                let current = seen;
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(error) = served {
                            tracing::debug!(%peer, %error, "connection ended with an error");
                        }
                        break;
                    }
                    phase = watch_phase.wait_for(move |phase| *phase > current) => {
                        seen = phase.map_or(Phase::Closing, |phase| *phase);
                        if seen != Phase::Draining {
                            break;
                        }
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(permit);
        });
    }

    drop(listener);
    let _ = phase.send(Phase::Draining);
    let everyone = permits.acquire_many(max);
    let drained = tokio::time::timeout(limits.shutdown_grace, everyone).await;
    if drained.is_err() {
        let open = max as usize - permits.available_permits();
        tracing::warn!(
            "closing {open} connection{} still open after the {:?} shutdown grace period",
            if open == 1 { "" } else { "s" },
            limits.shutdown_grace
        );
        let _ = phase.send(Phase::Closing);
        let _ = permits.acquire_many(max).await;
    }
    Ok(())
}

/// Failed `accept`s since the last success: backs off and logs now and
/// then, so a process out of descriptors neither spins nor floods the log.
#[derive(Debug, Default)]
struct AcceptFailures {
    count: u64,
    logged: Option<Instant>,
}

impl AcceptFailures {
    /// Counts a failure and returns how long to pause.
    fn failed(&mut self, error: &io::Error) -> Duration {
        self.count += 1;
        let due = self
            .logged
            .is_none_or(|logged| logged.elapsed() >= ACCEPT_LOG_EVERY);
        if due {
            tracing::warn!(
                %error,
                failures = self.count,
                "cannot accept connections; retrying (raise the descriptor limit or lower --max-connections)"
            );
            self.logged = Some(Instant::now());
        }
        let (least, most) = ACCEPT_BACKOFF;
        least.saturating_mul(1 << self.count.min(8)).min(most)
    }

    fn recovered(&mut self) {
        if self.count > 0 {
            tracing::info!(failures = self.count, "accepting connections again");
        }
        self.count = 0;
        self.logged = None;
    }
}

/// The peer address of a request served by [`serve`]; `None` for one
/// driven straight into the router (tests).
pub fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer)
}
