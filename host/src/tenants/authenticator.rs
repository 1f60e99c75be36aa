//! Tenants mode (contract §1.2): each caller sends Basic credentials of a
//! client in the tenants file, which decides its tenant, org, roles and
//! workflow limit.
//!
//! Checking a secret is an argon2id verification, tens of milliseconds of
//! CPU and ~19 MiB of memory: it runs on the blocking pool, at most one per
//! core at a time, and a success is remembered for [`VERIFIED_TTL`] so an
//! orchestrator's gates do not pay for it each time. More than
//! [`MAX_FAILURES`] failures for one client id from one source address
//! within [`FAILURE_WINDOW`] answer 429 to that address until the window
//! frees, before any secret is checked. Counting by the pair means that
//! someone who knows a client id cannot lock the real client out from
//! elsewhere; guessing from many addresses stays bounded by the argon2
//! checks, one per core at a time.
//!
//! The server re-reads the file when it changes, through
//! [`TenantsAuth::reload`]; a file that does not parse keeps the clients
//! already loaded, with an error in the log.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::limiter::FailureLimiter;
use super::secret::Verifier;
use super::{Client, TenantsError, TenantsFile};
use crate::auth::{AuthError, Caller, basic_credentials};

/// How callers are identified.
#[derive(Debug, Clone, Default)]
pub enum Authenticator {
    /// No credentials needed: the Basic username, if any, is the tenant.
    #[default]
    Community,
    /// Basic credentials of a client in the tenants file (`--tenants`).
    Tenants(Arc<TenantsAuth>),
}

impl Authenticator {
    /// Identifies the caller from the text of its `Authorization` header
    /// (`None`: absent, or not visible ASCII); `source` is the peer's
    /// address, when known, which failed attempts are counted by.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        source: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        match self {
            Authenticator::Community => crate::auth::community(authorization),
            Authenticator::Tenants(tenants) => tenants.authenticate(authorization, source).await,
        }
    }
}

/// How long a verified secret is trusted without checking it again.
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);
/// Failures for one client id tolerated within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 10;
/// The window failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The tenants-mode authenticator.
pub struct TenantsAuth {
    path: PathBuf,
    file: ArcSwap<TenantsFile>,
    /// sha256 of the text the clients were parsed from, to skip re-parsing
    /// (and re-logging) an unchanged file.
    digest: Mutex<[u8; 32]>,
    verifier: Verifier,
    limiter: FailureLimiter,
    /// Bounds argon2 verifications running at once.
    verifications: Semaphore,
}

impl std::fmt::Debug for TenantsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantsAuth")
            .field("path", &self.path)
            .field("clients", &self.file.load().len())
            .finish_non_exhaustive()
    }
}

impl TenantsAuth {
    /// Loads the tenants file at `path`; at start a bad file is an error.
    pub fn open(path: &Path) -> Result<TenantsAuth, TenantsError> {
        let text = TenantsFile::read_text(path)?;
        let file = TenantsFile::parse_from(path, &text)?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(TenantsAuth {
            path: path.to_owned(),
            file: ArcSwap::from_pointee(file),
            digest: Mutex::new(Sha256::digest(&text).into()),
            verifier: Verifier::new(VERIFIED_TTL),
            limiter: FailureLimiter::new(MAX_FAILURES, FAILURE_WINDOW),
            verifications: Semaphore::new(cores),
        })
    }

    /// The tenants file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The clients in force.
    pub fn clients(&self) -> Arc<TenantsFile> {
        self.file.load_full()
    }

    /// Re-reads the file. Unchanged text is skipped; text that does not
    /// parse keeps the clients in force and logs why. Blocking. Returns
    /// whether new clients took effect.
    pub fn reload(&self) -> bool {
        let text = match TenantsFile::read_text(&self.path) {
            Ok(text) => text,
            Err(error) => {
                tracing::error!(%error, "the clients already loaded stay in force");
                return false;
            }
        };
        let digest: [u8; 32] = Sha256::digest(&text).into();
        let mut last = self.digest.lock().unwrap_or_else(PoisonError::into_inner);
        if *last == digest {
            return false;
        }
        // A broken file is reported once, not on every poll, until it changes.
        *last = digest;
        let parsed = TenantsFile::parse_from(&self.path, &text);
        match parsed {
            Ok(file) => {
                tracing::info!(path = %self.path.display(), clients = file.len(), "tenants file reloaded");
                self.file.store(Arc::new(file));
                true
            }
            Err(error) => {
                tracing::error!(%error, "the tenants file does not load; the clients already loaded stay in force");
                false
            }
        }
    }

    /// Identifies the caller (contract §1.2): 401 without Basic
    /// credentials or with wrong ones, 429 after too many failures, 403
    /// for a disabled client.
    pub async fn authenticate(
        self: &Arc<Self>,
        authorization: Option<&str>,
        source: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        let (client_id, secret) = match basic_credentials(authorization) {
            None => return Err(AuthError::Unauthorized("Authentication required")),
            Some(None) => return Err(AuthError::Unauthorized("Invalid credentials")),
            Some(Some(credentials)) => credentials,
        };
        let attempts = attempts_key(&client_id, source);
        if let Some(wait) = self.limiter.blocked(&attempts, Instant::now()) {
            return Err(too_many_failures(wait));
        }
        let file = self.file.load_full();
        let client = file.client(&client_id);
        let verified = match client {
            Some(client) if self.verifier.cached(client, &secret) => true,
            _ => self.verify_slowly(client.cloned(), secret).await?,
        };
        let client = match client {
            Some(client) if verified => client,
            _ => {
                tracing::info!(%client_id, source = ?source, "authentication failed");
                return match self.limiter.record_failure(&attempts, Instant::now()) {
                    Some(wait) => Err(too_many_failures(wait)),
                    None => Err(AuthError::Unauthorized("Invalid credentials")),
                };
            }
        };
        if !client.enabled {
            return Err(AuthError::Forbidden("Client is disabled".into()));
        }
        Ok(Caller {
            tenant: client.tenant.clone(),
            org: client.org.clone(),
            actor: client.client_id.clone(),
            roles: client.roles.clone(),
            workflow_limit: client.max_concurrent_workflows,
        })
    }

    /// The argon2 check, on the blocking pool. An unknown client id costs
    /// the same as a wrong secret, so timing does not tell which exist.
    async fn verify_slowly(
        self: &Arc<Self>,
        client: Option<Client>,
        secret: String,
    ) -> Result<bool, AuthError> {
        let _permit = self
            .verifications
            .acquire()
            .await
            .map_err(|error| AuthError::Internal(error.to_string()))?;
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || match &client {
            Some(client) => this.verifier.verify(client, &secret),
            None => {
                this.verifier.verify_unknown(&secret);
                false
            }
        })
        .await
        .map_err(|error| AuthError::Internal(error.to_string()))
    }
}

/// What failed attempts are counted by: the client id and the source
/// address (an IPv4 address the same however the socket was bound).
fn attempts_key(client_id: &str, source: Option<IpAddr>) -> String {
    match source {
        Some(source) => format!("{client_id}\u{0}{}", source.to_canonical()),
        None => client_id.to_owned(),
    }
}

/// Throttled, retrying once enough failures have aged out.
fn too_many_failures(wait: Duration) -> AuthError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    AuthError::Throttled {
        retry_after: u32::try_from(seconds.max(1)).unwrap_or(u32::MAX),
    }
}
