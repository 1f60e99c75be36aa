//! `wcp`: the Workflow Control Plane host.
//!
//! Orchestrators ask `wcp` for a gate decision before every workflow step;
//! policies compiled to WebAssembly components decide, each in a fresh,
//! sandboxed instance with a deadline and a memory cap.
//!
//! # Layout
//!
//! - [`runtime`]: the wasmtime engine, policy loading and validation,
//!   sandboxed evaluation, fault kinds, the precompiled-artifact cache.
//! - [`manifest`]: a policy's `.toml`: order, step types, limits, `on_error`, settings.
//! - [`approval`]: approving, rejecting and expiring approval holds, on
//!   touch and by the sweeper ([`approval::Expiry`]).
//! - [`gate`]: running the applicable policies of a gate and combining their
//!   verdicts, and the other writes under a workflow's gate lock ([`gate::Gates`]:
//!   a gate, a hold's decision, a checkpoint resume, a policy's dry run).
//! - [`refusal`]: why the domain refuses a valid request (missing, or a state
//!   that forbids the change), shared by approvals, gates and workflow ends.
//! - [`workflow`]: ending a workflow (complete, fail, abort) and the
//!   workflow resume check.
//! - [`policy_set`]: the policy directory as an immutable, ordered snapshot.
//! - [`reload`]: changing what serves: the directory watcher and rescan,
//!   uploads and removals, each audited and published atomically.
//! - [`examples`]: the example policies built into the binary, and laying them
//!   out as a policy directory.
//! - [`input`]: what a policy sees (contract §5) and how a gate body becomes it.
//! - [`fields`]: the rules of request fields and ids, declared once for the
//!   validators and the OpenAPI document.
//! - [`verdict`]: `allow`, `require_approval`, `block`, ordered by severity.
//! - [`store`]: durable state behind the [`store::StoreRead`] and
//!   [`store::StoreWrite`] traits, which name no database; the SQLite
//!   backend under [`store::sqlite`] (schema and migrations, the one
//!   group-committing writer, read-only readers) and the PostgreSQL one
//!   under [`store::postgres`] (pool, migrations, the locks of several
//!   replicas): all of the crate's SQL.
//! - [`audit`]: audit entries, their hash chain and its verification (no SQL).
//! - [`config`]: `wcp serve` settings from flags, `WCP_*` environment and a TOML file.
//! - [`server`]: startup (runtime, store, first policy load) and graceful shutdown; [`run`].
//! - [`api`]: the HTTP edge: router, middleware, extractors, errors, ops, policy,
//!   workflow and step routes.
//! - [`auth`]: who is calling: the community-mode authenticator, callers,
//!   roles and why a caller is refused; no HTTP (its extractors are in
//!   `api/auth.rs`).
//! - [`tenants`]: tenants mode: the tenants file of clients, hashing and
//!   verifying their secrets, refusing repeated failures; the
//!   [`tenants::Authenticator`] choosing community or tenants mode.
//! - [`telemetry`]: the server's Prometheus series.
//! - [`clock`]: the API's timestamp format.
//! - [`cli`]: the `wcp` command line.
//!
//! Arrows point one way: [`cli`] → [`server`] → [`api`] → the domain
//! ([`workflow`] → [`gate`] → [`approval`] → [`refusal`]; [`reload`] and
//! [`tenants`] each → [`auth`]) → [`store`], [`runtime`] and the plain
//! value modules. No two top-level modules import each other, directly or
//! through others, and only `api` and `server` name axum.

pub mod api;
pub mod approval;
pub mod audit;
pub mod auth;
pub mod canonical;
pub mod cli;
pub mod clock;
pub mod config;
pub mod examples;
pub mod fields;
pub mod gate;
pub mod input;
pub mod manifest;
pub mod policy_set;
pub mod refusal;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod verdict;
pub mod workflow;

pub use server::run;

/// The git commit this binary was built from (12 hex digits), or `unknown`
/// when it was built outside a checkout.
pub const GIT_COMMIT: &str = env!("WCP_GIT_COMMIT");

/// What `wcp --version` and the startup log say: `0.1.0 (<commit>)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("WCP_GIT_COMMIT"), ")");
