//! A live server state for tests of what changes while it runs: the
//! directory watcher running over a temp policy directory, the real router
//! on top. Every wait polls a condition with a deadline.

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use super::App;
use host::api::{self, AppState};
use host::audit::AuditEntry;
use host::config::ServeConfig;
use host::reload::{WatcherHandle, spawn_watcher};
use host::runtime::{PolicyRuntime, RuntimeConfig};
use host::store::AuditFilter;
use host::tenants::Authenticator;

/// One runtime per test binary, with a precompiled cache under the target
/// directory: a policy compiles once, and every reload back to it is a
/// cache load, as on a real server.
static RUNTIME: LazyLock<Arc<PolicyRuntime>> = LazyLock::new(|| {
    Arc::new(
        PolicyRuntime::new(RuntimeConfig {
            cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("reload-cache")),
            disable_pooling: true,
        })
        .unwrap(),
    )
});

/// How long any awaited change may take before the test fails. Far above
/// the debounce plus a compile, so a slow CI machine does not flake.
const DEADLINE: Duration = Duration::from_secs(20);

pub struct Live {
    pub app: App,
    pub state: AppState,
    pub policies: tempfile::TempDir,
    watcher: Option<WatcherHandle>,
}

impl Live {
    /// A server state over an empty policy directory (after `setup` lays
    /// files out in it), watched, and ready.
    pub async fn start(setup: impl FnOnce(&Path)) -> Live {
        Live::start_with(setup, ServeConfig::default()).await
    }

    /// As [`Live::start`], with `config`'s settings but for the directories.
    pub async fn start_with(setup: impl FnOnce(&Path), config: ServeConfig) -> Live {
        Live::start_as(setup, config, Authenticator::Community).await
    }

    /// As [`Live::start_with`], identifying callers with `auth`.
    pub async fn start_as(
        setup: impl FnOnce(&Path),
        config: ServeConfig,
        auth: Authenticator,
    ) -> Live {
        let policies = tempfile::tempdir().unwrap();
        setup(policies.path());
        let data = tempfile::tempdir().unwrap();
        let (store, database) = super::open_store(data.path());
        let config = ServeConfig {
            policy_dir: policies.path().to_owned(),
            data_dir: data.path().to_owned(),
            ..config
        };
        let state = AppState::new(config, Arc::clone(&RUNTIME), auth, store.clone());
        let ready = state.clone();
        let watcher = spawn_watcher(Arc::clone(&state.policies), move |_, _| ready.mark_ready());
        let ready = state.clone();
        eventually("the first load", || {
            let ready = ready.clone();
            async move { ready.is_ready().then_some(()) }
        })
        .await;
        Live {
            app: App {
                router: api::app(state.clone()),
                store,
                data,
                database,
            },
            state,
            policies,
            watcher: Some(watcher),
        }
    }

    pub fn global(&self, file: &str) -> PathBuf {
        self.policies.path().join("global").join(file)
    }

    /// The policy `global/<name>` as `GET /api/v1/policies/...` shows it,
    /// or `None` when it is not listed.
    pub async fn policy(&self, name: &str) -> Option<Value> {
        let answer = self
            .app
            .get(&format!("/api/v1/policies/global/{name}"))
            .await;
        match answer.status {
            StatusCode::OK => Some(answer.json()),
            StatusCode::NOT_FOUND => None,
            other => panic!("GET policy answered {other}"),
        }
    }

    /// Waits until `global/<name>` serves `version`.
    pub async fn serving(&self, name: &str, version: &str) -> Value {
        eventually(&format!("global/{name} serving {version}"), || async {
            self.policy(name)
                .await
                .filter(|policy| policy["version"] == version)
        })
        .await
    }

    /// A gate of a send_email tool call in a new workflow.
    pub async fn gate(&self, body: Value) -> Value {
        let id = self.app.create("reload").await;
        let answer = self.app.gate(&id, "s1", body).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        answer.json()
    }

    pub fn audit(&self, chain: &str) -> Vec<AuditEntry> {
        let filter = AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        };
        self.app
            .store
            .read(|conn| conn.audit_entries(chain, &filter))
            .unwrap()
            .0
    }

    pub async fn stop(mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.stop().await;
        }
    }
}

/// Polls `check` every 10 ms until it yields a value, failing after
/// [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The 12-hex version of a `.wasm` file.
pub fn version_of(path: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(fs::read(path).unwrap()))[..12].to_owned()
}

/// Copies `from` over `to` the way deploy tools do: a temp file in the
/// same directory, then a rename.
pub fn install(from: &str, to: &Path) {
    let temp = to.with_extension("wasm.part");
    fs::copy(from, &temp).unwrap();
    fs::rename(&temp, to).unwrap();
}

pub fn lay_out(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir.join("global")).unwrap();
    for (name, from) in files {
        fs::copy(from, dir.join("global").join(name)).unwrap();
    }
}
