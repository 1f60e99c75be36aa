//! The sandboxed policy runtime.
//!
//! [`PolicyRuntime`] owns the wasmtime engine and the linker. [`PolicyRuntime::load`]
//! turns `.wasm` bytes into a validated [`CompiledPolicy`];
//! [`PolicyRuntime::evaluate`] runs one evaluation in a fresh instance with a
//! deadline and a memory cap and returns the decision or a [`Fault`].
//!
//! - `engine`: engine settings, the instance pool, the epoch ticker.
//! - `bindings`: the one `bindgen!` and the request conversion.
//! - `sandbox`: store state (empty WASI context, memory cap, log capture).
//! - `output`: bounded stdout/stderr capture.
//! - `validate`: header, import and export checks at load time.
//! - `fault`: fault kinds and how errors map to them.
//! - `cache`: precompiled artifacts on disk.

mod bindings;
mod cache;
mod engine;
mod fault;
mod log_budget;
mod output;
mod sandbox;
mod validate;

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

pub use bindings::{Level, PolicyRequest};
pub use cache::{ArtifactCache, CacheError};
pub use engine::EPOCH_TICK;
pub use fault::{Fault, FaultKind};
pub use log_budget::{Admission, BYTES_PER_MINUTE, LINES_PER_MINUTE, LogBudget};
pub use output::CAPTURE_LIMIT;
pub use sandbox::{LOG_LIMIT, LogSource, PolicyLog};
pub use validate::LoadError;

use crate::verdict::Verdict;
use bindings::{Policy, PolicyPre};
use sandbox::Sandbox;

/// Longest reason kept from a policy; longer ones are cut at a character
/// boundary (contract §5).
pub const REASON_LIMIT: usize = 1024;

/// Deadline and memory cap of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline (manifest `timeout_ms`, default 100 ms).
    pub timeout: Duration,
    /// Memory cap in bytes (manifest `memory_mib`, default 32 MiB).
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_millis(100),
            memory_bytes: 32 << 20,
        }
    }
}

/// Runtime-wide settings.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Keep precompiled policies here (usually `<data-dir>/cache`).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Use the on-demand allocator instead of the instance pool.
    pub disable_pooling: bool,
}

/// Failure to start the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the engine configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The epoch ticker thread did not start.
    #[error("cannot start the deadline ticker: {0}")]
    Ticker(std::io::Error),
    /// The cache directory is unusable.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// A policy's own answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDecision {
    /// The verdict.
    pub verdict: Verdict,
    /// The reason, at most [`REASON_LIMIT`] bytes.
    pub reason: Option<String>,
}

/// The result of one evaluation.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The decision, or why there is none.
    pub outcome: Result<PolicyDecision, Fault>,
    /// Instantiation plus the call.
    pub duration: Duration,
    /// What the policy logged and printed, bounded.
    pub logs: Vec<PolicyLog>,
    /// Log and output bytes dropped over the bounds.
    pub dropped_log_bytes: u64,
}

impl Evaluation {
    /// Forwards the policy's log lines to the host log, tagged with
    /// `policy`, as far as its `budget` allows. Returns the bytes of output
    /// that did not reach the log: over the capture bounds or the budget.
    pub fn emit_logs(&self, policy: &str, budget: &LogBudget) -> u64 {
        let now = Instant::now();
        let mut dropped = self.dropped_log_bytes;
        let mut announce = false;
        for line in &self.logs {
            let message = line.message.as_str();
            if let Admission::Dropped { first } = budget.admit(message.len(), now) {
                dropped += message.len() as u64;
                announce |= first;
                continue;
            }
            let source = line.source.as_str();
            match line.level {
                Level::Trace => tracing::trace!(policy, source, "{message}"),
                Level::Debug => tracing::debug!(policy, source, "{message}"),
                Level::Info => tracing::info!(policy, source, "{message}"),
                Level::Warn => tracing::warn!(policy, source, "{message}"),
                Level::Error => tracing::error!(policy, source, "{message}"),
            }
        }
        if self.dropped_log_bytes > 0 {
            match budget.admit(0, now) {
                Admission::Logged => tracing::warn!(
                    policy,
                    dropped_bytes = self.dropped_log_bytes,
                    "policy output over the log bounds was dropped"
                ),
                Admission::Dropped { first } => announce |= first,
            }
        }
        if announce {
            tracing::warn!(
                policy,
                "the policy logged more than {LINES_PER_MINUTE} lines or {BYTES_PER_MINUTE} bytes \
                 this minute; the rest of the minute's output is dropped and counted in \
                 wcp_policy_log_dropped_bytes_total"
            );
        }
        dropped
    }
}

/// A validated, compiled policy, ready to instantiate.
#[derive(Clone)]
pub struct CompiledPolicy {
    pre: PolicyPre<Sandbox>,
    sha256: String,
    size_bytes: usize,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("sha256", &self.sha256)
            .field("size_bytes", &self.size_bytes)
            .finish_non_exhaustive()
    }
}

impl CompiledPolicy {
    /// Lowercase hex sha256 of the `.wasm`.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The version shown in decisions: the first 12 hex digits of the sha256.
    pub fn version(&self) -> &str {
        &self.sha256[..12]
    }

    /// Size of the `.wasm` in bytes.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }
}

/// The engine, linker and cache shared by every evaluation.
pub struct PolicyRuntime {
    engine: Engine,
    linker: Linker<Sandbox>,
    cache: Option<ArtifactCache>,
}

impl std::fmt::Debug for PolicyRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRuntime")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl PolicyRuntime {
    /// Creates the engine, links the host interface and WASI, and starts the
    /// deadline ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine = engine::build_engine(!config.disable_pooling)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        Policy::add_to_linker::<_, HasSelf<_>>(&mut linker, |sandbox| sandbox)
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        engine::start_epoch_ticker(&engine).map_err(RuntimeError::Ticker)?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(ArtifactCache::open(dir, &engine)?),
            None => None,
        };
        Ok(PolicyRuntime {
            engine,
            linker,
            cache,
        })
    }

    /// Reads and loads a policy file.
    pub fn load_file(&self, path: &Path) -> Result<CompiledPolicy, LoadError> {
        let bytes = std::fs::read(path).map_err(|error| LoadError::Read {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        self.load(&bytes)
    }

    /// Validates and compiles a policy: the bytes must be a component that
    /// exports the `wcp:policy/policy` world and imports nothing but the host
    /// interface and WASI 0.2; one smoke instantiation must succeed.
    pub fn load(&self, wasm: &[u8]) -> Result<CompiledPolicy, LoadError> {
        validate::check_header(wasm)?;
        let sha256 = hex::encode(Sha256::digest(wasm));
        let component = match self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &sha256))
        {
            Some(component) => component,
            None => {
                let component = Component::new(&self.engine, wasm)
                    .map_err(|e| LoadError::Compile(validate::first_line(&e)))?;
                if let Some(cache) = &self.cache {
                    cache.store(&sha256, &component);
                }
                component
            }
        };
        validate::check_imports(&self.engine, &component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(validate::first_line(&e)))?;
        let pre = PolicyPre::new(instance_pre)
            .map_err(|e| LoadError::WrongWorld(validate::first_line(&e)))?;
        let policy = CompiledPolicy {
            pre,
            sha256,
            size_bytes: wasm.len(),
        };
        self.smoke_instantiate(&policy)?;
        Ok(policy)
    }

    fn smoke_instantiate(&self, policy: &CompiledPolicy) -> Result<(), LoadError> {
        let limits = Limits {
            timeout: Duration::from_secs(1),
            memory_bytes: 1 << 30,
        };
        let mut store = self.store(limits);
        policy
            .pre
            .instantiate(&mut store)
            .map(drop)
            .map_err(|e| LoadError::Instantiate(validate::first_line(&e)))
    }

    fn store(&self, limits: Limits) -> Store<Sandbox> {
        let mut store = Store::new(&self.engine, Sandbox::new(limits.memory_bytes));
        store.limiter(|sandbox| sandbox.limiter());
        store.set_epoch_deadline(engine::deadline_ticks(limits.timeout));
        store
    }

    /// Runs one evaluation in a fresh instance. Never panics and never
    /// returns a host error: anything the policy does wrong is a [`Fault`].
    pub fn evaluate(
        &self,
        policy: &CompiledPolicy,
        request: &PolicyRequest,
        settings: &str,
        limits: Limits,
    ) -> Evaluation {
        let request = request.with_settings(settings);
        let started = Instant::now();
        let mut store = self.store(limits);
        let result = policy
            .pre
            .instantiate(&mut store)
            .and_then(|instance| instance.call_evaluate(&mut store, &request));
        let duration = started.elapsed();
        let outcome = match result {
            Ok(decision) => Ok(convert(decision)),
            Err(error) => {
                let sandbox = store.data();
                let stderr = sandbox.stderr_text();
                Err(fault::classify(
                    &error,
                    fault::FaultContext {
                        timeout: limits.timeout,
                        memory_bytes: limits.memory_bytes,
                        memory_exceeded: sandbox.memory_exceeded(),
                        stderr: &stderr,
                    },
                ))
            }
        };
        let (logs, dropped_log_bytes) = store.into_data().into_logs();
        Evaluation {
            outcome,
            duration,
            logs,
            dropped_log_bytes,
        }
    }
}

/// One instance kept alive across calls. The server never does this (state
/// would leak between gates); it exists to measure what instantiation costs
/// against a bare call.
pub struct WarmInstance {
    store: Store<Sandbox>,
    policy: Policy,
}

impl std::fmt::Debug for WarmInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmInstance").finish_non_exhaustive()
    }
}

impl WarmInstance {
    /// Calls `evaluate` on the live instance.
    pub fn call(&mut self, request: &PolicyRequest, settings: &str) -> Option<PolicyDecision> {
        // Each call gets a fresh deadline on the same store.
        self.store
            .set_epoch_deadline(engine::deadline_ticks(Duration::from_secs(1)));
        self.policy
            .call_evaluate(&mut self.store, &request.with_settings(settings))
            .ok()
            .map(convert)
    }
}

impl PolicyRuntime {
    /// Instantiates `policy` once for repeated calls (measurement only).
    pub fn warm_instance(&self, policy: &CompiledPolicy) -> Result<WarmInstance, LoadError> {
        let mut store = self.store(Limits::default());
        let instance = policy
            .pre
            .instantiate(&mut store)
            .map_err(|e| LoadError::Instantiate(validate::first_line(&e)))?;
        Ok(WarmInstance {
            store,
            policy: instance,
        })
    }
}

fn convert(decision: bindings::Decision) -> PolicyDecision {
    let verdict = match decision.verdict {
        bindings::Verdict::Allow => Verdict::Allow,
        bindings::Verdict::Block => Verdict::Block,
        bindings::Verdict::RequireApproval => Verdict::RequireApproval,
    };
    let reason = decision.reason.map(|mut reason| {
        sandbox::truncate_to(&mut reason, REASON_LIMIT);
        reason
    });
    PolicyDecision { verdict, reason }
}
