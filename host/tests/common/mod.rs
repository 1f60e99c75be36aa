//! The harness of the router tests: a real router (`oneshot`) per test
//! with its own database, over a policy directory holding
//! `global/tool-approval` (tool calls only: `send_email` is held for
//! approval, `drop_table` blocked), compiled once per test binary.

#![allow(clippy::unwrap_used, dead_code)]

pub mod live;
pub mod postgres;

use std::fs;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use host::api::{self, AppState};
use host::audit::AuditEntry;
use host::config::ServeConfig;
use host::policy_set::PolicySet;
use host::runtime::{PolicyRuntime, RuntimeConfig};
use host::store::AuditFilter;
use host::store::Store;
use host::tenants::Authenticator;
use wcp_test_artifacts as wasm;

/// Basic credentials `other:`.
pub const OTHER: &str = "Basic b3RoZXI6";

struct Fixture {
    runtime: Arc<PolicyRuntime>,
    set: PolicySet,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = PolicyRuntime::new(RuntimeConfig {
        cache_dir: None,
        disable_pooling: true,
    })
    .unwrap();
    let dir = tool_approval_dir();
    let set = PolicySet::load(&runtime, dir.path(), &PolicySet::default());
    assert_eq!(set.serving_count(), 1, "{set:?}");
    Fixture {
        runtime: Arc::new(runtime),
        set,
    }
});

/// A policy directory holding `global/tool-approval` for tool calls only:
/// `send_email` is held for approval, `drop_table` blocked.
pub fn tool_approval_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("global")).unwrap();
    fs::copy(
        wasm::TOOL_APPROVAL,
        dir.path().join("global/tool-approval.wasm"),
    )
    .unwrap();
    fs::write(
        dir.path().join("global/tool-approval.toml"),
        "step_types = [\"tool_call\"]\n[settings]\nblocked_tools = [\"drop_table\"]\n",
    )
    .unwrap();
    dir
}

pub struct App {
    pub router: Router,
    pub store: Store,
    pub data: tempfile::TempDir,
    pub database: Database,
}

/// Where a test's store keeps its rows, for tests that look at them raw.
#[derive(Debug, Clone)]
pub enum Database {
    /// `wcp.db` in the data directory.
    Sqlite(std::path::PathBuf),
    /// A database of the binary's private PostgreSQL.
    Postgres(String),
}

impl Database {
    /// Every row the store keeps, as text: equal dumps mean nothing was
    /// written. Checkpoint ids come from a counter row (SQLite) or a
    /// sequence (PostgreSQL), which is dumped too.
    pub fn dump(&self) -> String {
        match self {
            Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut out = String::new();
                for table in ["workflows", "workflow_steps", "counters", "audit_log"] {
                    let mut stmt = conn
                        .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
                        .unwrap();
                    let width = stmt.column_count();
                    let mut rows = stmt.query([]).unwrap();
                    while let Some(row) = rows.next().unwrap() {
                        out.push_str(table);
                        for index in 0..width {
                            out.push_str(&format!(" {:?}", row.get_ref(index).unwrap()));
                        }
                        out.push('\n');
                    }
                }
                out
            }
            Database::Postgres(url) => [
                "SELECT * FROM workflows ORDER BY wid",
                "SELECT * FROM workflow_steps ORDER BY wid, step_id",
                "SELECT last_value, is_called FROM checkpoint_ids",
                "SELECT * FROM audit_log ORDER BY chain, seq",
            ]
            .iter()
            .map(|query| postgres::cluster().sql(url, query))
            .collect::<Vec<_>>()
            .join("\n"),
        }
    }

    /// Rewrites the `actor` of audit entry `seq` of `chain` behind the
    /// store's back, as someone with the database could.
    pub fn tamper_with_audit(&self, chain: &str, seq: u64) {
        match self {
            Database::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch(&format!(
                    "DROP TRIGGER audit_log_no_update;
                     UPDATE audit_log SET actor = 'someone-else' WHERE chain = '{chain}' AND seq = {seq};"
                ))
                .unwrap();
            }
            Database::Postgres(url) => {
                postgres::cluster().sql(
                    url,
                    &format!(
                        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change;
                         UPDATE audit_log SET actor = 'someone-else' WHERE chain = '{chain}' AND seq = {seq};"
                    ),
                );
            }
        }
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Whether this test binary runs on PostgreSQL. `tests/<name>_on_postgres.rs`
/// are symbolic links to `tests/<name>.rs`: the same tests, built a second
/// time under a name that puts their stores on PostgreSQL.
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_on_postgres")
}

/// A test's store: SQLite in `data`, or, in the `*_on_postgres` test
/// binaries, a new database of the binary's private PostgreSQL.
pub fn open_store(data: &std::path::Path) -> (Store, Database) {
    if on_postgres() {
        let url = postgres::database();
        (Store::open_postgres(&url).unwrap(), Database::Postgres(url))
    } else {
        let store = Store::open(data).unwrap();
        (store, Database::Sqlite(data.join(host::store::DB_FILE)))
    }
}

pub fn app_with(config: ServeConfig) -> App {
    let data = tempfile::tempdir().unwrap();
    let (store, database) = open_store(data.path());
    app_on(store, database, data, config)
}

/// A router over `store`, kept in `database`, with `data` as its data
/// directory.
pub fn app_on(
    store: Store,
    database: Database,
    data: tempfile::TempDir,
    config: ServeConfig,
) -> App {
    let state = AppState::new(
        config,
        Arc::clone(&FIXTURE.runtime),
        Authenticator::Community,
        store.clone(),
    );
    state.publish(FIXTURE.set.clone());
    state.mark_ready();
    App {
        router: api::app(state),
        store,
        data,
        database,
    }
}

pub fn app() -> App {
    app_with(ServeConfig::default())
}

impl App {
    pub async fn send(&self, method: Method, uri: &str, auth: Option<&str>, body: &str) -> Answer {
        self.send_bytes(method, uri, auth, body.as_bytes().to_vec())
            .await
    }

    pub async fn send_bytes(
        &self,
        method: Method,
        uri: &str,
        auth: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        self.send_with(method, uri, &headers, body).await
    }

    pub async fn send_with(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        self.send_from(None, method, uri, headers, body).await
    }

    /// As [`App::send_with`], from `peer` as the listener would record it.
    pub async fn send_from(
        &self,
        peer: Option<SocketAddr>,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(peer) = peer {
            request = request.extension(ConnectInfo(peer));
        }
        let request = request.body(Body::from(body)).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, uri: &str, body: Value) -> Answer {
        let text = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.send(Method::POST, uri, None, &text).await
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.send(Method::GET, uri, None, "").await
    }

    pub async fn create(&self, name: &str) -> String {
        let answer = self
            .post("/api/v1/workflows", json!({"workflow_name": name}))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        answer.json()["workflow_id"].as_str().unwrap().to_owned()
    }

    pub async fn gate(&self, id: &str, step: &str, body: Value) -> Answer {
        self.post(&format!("/api/v1/workflows/{id}/steps/{step}/gate"), body)
            .await
    }

    pub fn audit(&self) -> Vec<AuditEntry> {
        let filter = AuditFilter {
            limit: 1000,
            ..AuditFilter::default()
        };
        self.store
            .read(|conn| conn.audit_entries("community", &filter))
            .unwrap()
            .0
    }

    pub fn assert_chain_valid(&self) {
        let report = self
            .store
            .read(|conn| conn.verify_chain("community"))
            .unwrap();
        let report = serde_json::to_value(report).unwrap();
        assert_eq!(report["valid"], true, "{report}");
    }
}

pub fn llm() -> Value {
    json!({"step_type": "llm_call", "step_input": {"prompt": "hi", "n": 1}})
}

pub fn drop_table() -> Value {
    json!({"step_type": "tool_call", "tool_context": {"tool_name": "drop_table"}})
}

pub fn send_email() -> Value {
    json!({"step_type": "tool_call", "tool_context": {"tool_name": "send_email"}})
}
