//! Write `wcp` gate policies in Rust.
//!
//! A policy is a function from a [`Request`] (the workflow, the step about to
//! run, the caller, and the policy's settings) to a [`Decision`]: allow the
//! step, block it, or hold it for human approval. [`export_policy!`] turns the
//! function into a WebAssembly component that `wcp` runs in a sandbox; the same
//! function runs natively under `cargo test`, with requests built by
//! [`testing::RequestBuilder`].
//!
//! # A complete policy
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "max-tokens"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! wcp-policy-sdk = { path = "../../policy-sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use serde::Deserialize;
//! use wcp_policy_sdk::{export_policy, Decision, Request, SettingsError};
//!
//! /// Settings from the manifest's `[settings]` table; defaults apply when absent.
//! #[derive(Deserialize)]
//! #[serde(default)]
//! struct Settings {
//!     max_tokens: u64,
//! }
//!
//! impl Default for Settings {
//!     fn default() -> Self {
//!         Settings { max_tokens: 100_000 }
//!     }
//! }
//!
//! pub fn evaluate(request: &Request) -> Result<Decision, SettingsError> {
//!     let settings: Settings = request.settings()?;
//!     let asked = request.step().tokens_in().unwrap_or(0);
//!     if asked > settings.max_tokens {
//!         return Ok(Decision::require_approval(format!(
//!             "{asked} input tokens is over the limit of {}",
//!             settings.max_tokens
//!         )));
//!     }
//!     Ok(Decision::allow())
//! }
//!
//! export_policy!(evaluate);
//!
//! #[cfg(test)]
//! mod tests {
//!     use super::*;
//!     use wcp_policy_sdk::testing::RequestBuilder;
//!
//!     #[test]
//!     fn large_prompts_need_approval() {
//!         let request = RequestBuilder::new("llm_call").tokens(200_000, 0).build();
//!         assert!(evaluate(&request).unwrap().is_require_approval());
//!     }
//! }
//! # let request = wcp_policy_sdk::testing::RequestBuilder::new("llm_call").tokens(200_000, 0).build();
//! # assert!(evaluate(&request).unwrap().is_require_approval());
//! ```
//!
//! Build the component with `cargo build --release --target wasm32-wasip2`,
//! try it with `wcp policy eval target/wasm32-wasip2/release/max_tokens.wasm
//! --request gate.json`, and deploy it by copying the `.wasm` into the policy
//! directory.
//!
//! # Sandbox
//!
//! A policy gets a fresh instance for every evaluation, so nothing carries
//! over between gates. WASI 0.2 is linked with an empty context: opening files,
//! reading the environment and opening sockets all fail. Standard output and
//! error are captured into the host's log, bounded; prefer [`log`]. Each
//! evaluation has a deadline and a memory cap (manifest `timeout_ms`,
//! `memory_mib`); running past either, or panicking, is a fault that the host
//! turns into the manifest's `on_error` verdict (`block` by default).
//!
//! # Layout
//!
//! - [`Request`], [`request::Workflow`], [`request::Step`], [`request::Tool`]:
//!   what the policy is given; JSON fields are parsed on first use.
//! - [`Decision`], [`Verdict`]: what it answers.
//! - [`log`]: messages into the host's log.
//! - [`testing`]: native unit-test support.
//! - [`export_policy!`]: the component export.

#![deny(missing_docs)]
// The crate example deliberately shows a policy's `#[cfg(test)]` module.
#![allow(clippy::test_attr_in_doctest)]

// Lets the generated bindings name this crate the same way from inside the SDK
// and from the policy crates that expand `export_policy!`.
extern crate self as wcp_policy_sdk;

mod decision;
pub mod log;
pub mod request;
pub mod testing;

#[cfg(target_arch = "wasm32")]
mod guest;

pub use decision::{Decision, IntoDecision, Verdict};
pub use request::{Request, SettingsError};
pub use serde_json::{Value, json};

#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use crate::guest::{bindings, rt, run};
}

/// Exports a function as the policy's `evaluate`.
///
/// The function takes `&Request` and returns a [`Decision`] or a
/// `Result<Decision, SettingsError>`. The macro expands to nothing on native
/// targets, so the crate's unit tests call the function directly.
///
/// ```
/// use wcp_policy_sdk::{export_policy, Decision, Request};
///
/// fn evaluate(_request: &Request) -> Decision {
///     Decision::allow()
/// }
///
/// export_policy!(evaluate);
/// ```
#[macro_export]
macro_rules! export_policy {
    ($evaluate:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct WcpPolicy;

            impl $crate::__private::bindings::Guest for WcpPolicy {
                fn evaluate(
                    request: $crate::__private::bindings::wcp::policy::types::GateRequest,
                ) -> $crate::__private::bindings::wcp::policy::types::Decision {
                    $crate::__private::run(request, $evaluate)
                }
            }

            $crate::__private::bindings::__wcp_export_world!(WcpPolicy with_types_in $crate::__private::bindings);
        };
    };
}
