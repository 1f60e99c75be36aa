//! Tenants mode (contract §1.2, issue 5): Basic credentials from a tenants
//! file, roles, isolation on every route, failure limits, per-client
//! workflow limits, and reloading the file.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use common::Answer;
use common::live::{Live, eventually, install, lay_out};
use host::config::ServeConfig;
use host::tenants::Authenticator;
use host::tenants::{TenantsAuth, hash_secret};
use wcp_test_artifacts as wasm;

/// (client id, tenant, org, roles, enabled, max_concurrent_workflows)
type ClientRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    bool,
    Option<u64>,
);

const CLIENTS: &[ClientRow] = &[
    ("acme-member", "acme", "acme-org", &["member"], true, None),
    (
        "acme-approver",
        "acme",
        "acme-org",
        &["approver"],
        true,
        None,
    ),
    ("acme-admin", "acme", "acme-org", &["admin"], true, None),
    (
        "acme-disabled",
        "acme",
        "acme-org",
        &["member", "approver", "admin"],
        false,
        None,
    ),
    (
        "acme-elsewhere",
        "acme",
        "other-org",
        &["member", "approver", "admin"],
        true,
        None,
    ),
    (
        "globex-all",
        "globex",
        "globex-org",
        &["member", "approver", "admin"],
        true,
        None,
    ),
    (
        "acme-limited",
        "acme",
        "acme-org",
        &["member"],
        true,
        Some(3),
    ),
];

/// Each client's secret is `<client id>-secret`; hashed once per binary.
static HASHES: LazyLock<Vec<String>> = LazyLock::new(|| {
    CLIENTS
        .iter()
        .map(|(id, ..)| hash_secret(&secret(id)).unwrap())
        .collect()
});

fn secret(client: &str) -> String {
    format!("{client}-secret")
}

fn tenants_toml(rows: &[ClientRow]) -> String {
    let mut text = String::new();
    for (id, tenant, org, roles, enabled, limit) in rows {
        let index = CLIENTS.iter().position(|row| row.0 == *id).unwrap();
        text.push_str(&format!(
            "[[clients]]\nclient_id = \"{id}\"\nsecret_hash = \"{}\"\ntenant = \"{tenant}\"\n\
             org = \"{org}\"\nroles = {roles:?}\nenabled = {enabled}\n",
            HASHES[index]
        ));
        if let Some(limit) = limit {
            text.push_str(&format!("max_concurrent_workflows = {limit}\n"));
        }
        text.push('\n');
    }
    text
}

fn basic(user: &str, password: &str) -> String {
    // Standard base64, as Basic credentials use.
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (group >> (18 - 6 * i)) & 63;
                out.push(TABLE[index as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn creds(client: &str) -> String {
    basic(client, &secret(client))
}

/// A tenants-mode server over `global/tool-approval` (tool calls: send_email
/// held, drop_table blocked) and acme's own `x` (allow-all).
struct Tenants {
    live: Live,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tenants {
    async fn start() -> Tenants {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tenants.toml");
        fs::write(&file, tenants_toml(CLIENTS)).unwrap();
        let auth = TenantsAuth::open(&file).unwrap();
        let live = Live::start_as(
            |policies| {
                lay_out(policies, &[("tool-approval.wasm", wasm::TOOL_APPROVAL)]);
                fs::write(
                    policies.join("global/tool-approval.toml"),
                    "step_types = [\"tool_call\"]\n[settings]\nblocked_tools = [\"drop_table\"]\n",
                )
                .unwrap();
                let acme = policies.join("tenants/acme");
                fs::create_dir_all(&acme).unwrap();
                install(wasm::ALLOW_ALL, &acme.join("x.wasm"));
            },
            ServeConfig::default(),
            Authenticator::Tenants(Arc::new(auth)),
        )
        .await;
        Tenants {
            live,
            file,
            _dir: dir,
        }
    }

    async fn call(&self, method: Method, uri: &str, auth: Option<&str>, body: Body) -> Answer {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(auth) = auth {
            headers.push(("authorization", auth));
        }
        let bytes = match &body {
            Body::None => Vec::new(),
            Body::Json(value) => value.to_string().into_bytes(),
            Body::Wasm(path) => fs::read(path).unwrap(),
        };
        if let Body::Wasm(_) = body {
            headers.push(("content-type", "application/wasm"));
        }
        self.live.app.send_with(method, uri, &headers, bytes).await
    }

    /// Sends as `client` (its right secret) and expects `status`.
    async fn expect(
        &self,
        client: &str,
        method: Method,
        uri: &str,
        body: Body,
        status: u16,
    ) -> Value {
        let answer = self
            .call(method.clone(), uri, Some(&creds(client)), body)
            .await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{client} {method} {uri}: {:?}",
            answer.body
        );
        if answer.body.is_empty() {
            Value::Null
        } else {
            answer.json()
        }
    }

    /// A workflow of acme's member, with step `s1` gated by `gate`.
    async fn workflow(&self, gate: Option<Value>) -> String {
        let created = self
            .expect(
                "acme-member",
                Method::POST,
                "/api/v1/workflows",
                Body::Json(json!({"workflow_name": "matrix"})),
                201,
            )
            .await;
        let id = created["workflow_id"].as_str().unwrap().to_owned();
        if let Some(gate) = gate {
            self.expect(
                "acme-member",
                Method::POST,
                &format!("/api/v1/workflows/{id}/steps/s1/gate"),
                Body::Json(gate),
                200,
            )
            .await;
        }
        id
    }
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Wasm(&'static str),
}

fn llm() -> Value {
    json!({"step_type": "llm_call", "model": "gpt-4o"})
}

fn send_email() -> Value {
    json!({"step_type": "tool_call", "tool_context": {"tool_name": "send_email"}})
}

/// What a route needs before it can succeed for acme.
#[derive(Debug, Clone, Copy)]
enum Needs {
    Nothing,
    /// A workflow (its id replaces `{wf}`).
    Workflow,
    /// A workflow whose step s1 was allowed.
    Allowed,
    /// A workflow whose step s1 is held for approval.
    Held,
}

/// One route of the matrix.
struct Route {
    name: &'static str,
    method: Method,
    /// `{wf}` is the prepared workflow's id.
    uri: &'static str,
    body: Body,
    needs: Needs,
    /// Roles that may call it (contract §1.2).
    roles: &'static [&'static str],
    /// Status for the owner.
    own: u16,
    /// Status for another tenant's client with every role: 404 for
    /// another tenant's object (byte-identical to a missing one), else
    /// what the route answers on its own tenant's (empty) data.
    foreign: u16,
}

const MEMBER: &[&str] = &["member"];
const READER: &[&str] = &["member", "approver"];
const APPROVER: &[&str] = &["approver"];
const POLICY_READER: &[&str] = &["member", "admin"];
const ADMIN: &[&str] = &["admin"];

fn routes() -> Vec<Route> {
    let route = |name, method, uri, body, needs, roles, own, foreign| Route {
        name,
        method,
        uri,
        body,
        needs,
        roles,
        own,
        foreign,
    };
    let json = Body::Json;
    vec![
        route(
            "create",
            Method::POST,
            "/api/v1/workflows",
            json(json!({"workflow_name": "w"})),
            Needs::Nothing,
            MEMBER,
            201,
            201,
        ),
        route(
            "list",
            Method::GET,
            "/api/v1/workflows",
            Body::None,
            Needs::Workflow,
            READER,
            200,
            200,
        ),
        route(
            "get",
            Method::GET,
            "/api/v1/workflows/{wf}",
            Body::None,
            Needs::Workflow,
            READER,
            200,
            404,
        ),
        route(
            "gate",
            Method::POST,
            "/api/v1/workflows/{wf}/steps/s2/gate",
            json(llm()),
            Needs::Workflow,
            MEMBER,
            200,
            404,
        ),
        route(
            "step complete",
            Method::POST,
            "/api/v1/workflows/{wf}/steps/s1/complete",
            json(json!({})),
            Needs::Allowed,
            MEMBER,
            204,
            404,
        ),
        route(
            "complete",
            Method::POST,
            "/api/v1/workflows/{wf}/complete",
            Body::None,
            Needs::Allowed,
            MEMBER,
            200,
            404,
        ),
        route(
            "fail",
            Method::POST,
            "/api/v1/workflows/{wf}/fail",
            json(json!({})),
            Needs::Workflow,
            MEMBER,
            200,
            404,
        ),
        route(
            "abort",
            Method::POST,
            "/api/v1/workflows/{wf}/abort",
            json(json!({})),
            Needs::Workflow,
            MEMBER,
            200,
            404,
        ),
        route(
            "resume",
            Method::POST,
            "/api/v1/workflows/{wf}/resume",
            Body::None,
            Needs::Workflow,
            MEMBER,
            200,
            404,
        ),
        route(
            "approve",
            Method::POST,
            "/api/v1/workflows/{wf}/steps/s1/approve",
            json(json!({"comment": "checked the recipients"})),
            Needs::Held,
            APPROVER,
            200,
            404,
        ),
        route(
            "reject",
            Method::POST,
            "/api/v1/workflows/{wf}/steps/s1/reject",
            json(json!({"reason": "wrong recipients"})),
            Needs::Held,
            APPROVER,
            200,
            404,
        ),
        route(
            "pending",
            Method::GET,
            "/api/v1/workflows/approvals/pending",
            Body::None,
            Needs::Held,
            READER,
            200,
            200,
        ),
        route(
            "checkpoints",
            Method::GET,
            "/api/v1/workflows/{wf}/checkpoints",
            Body::None,
            Needs::Allowed,
            READER,
            200,
            404,
        ),
        route(
            "resume last checkpoint",
            Method::POST,
            "/api/v1/workflows/{wf}/checkpoints/resume",
            Body::None,
            Needs::Allowed,
            MEMBER,
            200,
            404,
        ),
        route(
            "resume a checkpoint",
            Method::POST,
            "/api/v1/workflows/{wf}/checkpoints/1/resume",
            Body::None,
            Needs::Allowed,
            MEMBER,
            200,
            404,
        ),
        route(
            "policy list",
            Method::GET,
            "/api/v1/policies",
            Body::None,
            Needs::Nothing,
            POLICY_READER,
            200,
            200,
        ),
        route(
            "policy get",
            Method::GET,
            "/api/v1/policies/acme/x",
            Body::None,
            Needs::Nothing,
            POLICY_READER,
            200,
            404,
        ),
        route(
            "policy evaluate",
            Method::POST,
            "/api/v1/policies/acme/x/evaluate",
            json(llm()),
            Needs::Nothing,
            POLICY_READER,
            200,
            404,
        ),
        route(
            "policy upload",
            Method::PUT,
            "/api/v1/policies/y",
            Body::Wasm(wasm::ALLOW_ALL),
            Needs::Nothing,
            ADMIN,
            201,
            201,
        ),
        route(
            "policy delete",
            Method::DELETE,
            "/api/v1/policies/x",
            Body::None,
            Needs::Nothing,
            ADMIN,
            204,
            404,
        ),
        route(
            "audit",
            Method::GET,
            "/api/v1/audit",
            Body::None,
            Needs::Workflow,
            ADMIN,
            200,
            200,
        ),
        route(
            "audit verify",
            Method::GET,
            "/api/v1/audit/verify",
            Body::None,
            Needs::Workflow,
            ADMIN,
            200,
            200,
        ),
    ]
}

/// The acme client to call `roles` as (first with one of them), and one
/// holding none of them.
fn own_and_roleless(roles: &[&str]) -> (&'static str, &'static str) {
    let staff = ["acme-member", "acme-approver", "acme-admin"];
    fn role_of(client: &str) -> &str {
        client.trim_start_matches("acme-")
    }
    let own = staff.iter().find(|c| roles.contains(&role_of(c))).unwrap();
    let roleless = staff.iter().find(|c| !roles.contains(&role_of(c))).unwrap();
    (own, roleless)
}

/// `route` sent to `uri` with `auth`.
async fn send(server: &Tenants, route: &Route, uri: &str, auth: Option<&str>) -> Answer {
    server
        .call(route.method.clone(), uri, auth, route.body.clone())
        .await
}

async fn prepare(server: &Tenants, route: &Route) -> String {
    let workflow = match route.needs {
        Needs::Nothing => return route.uri.to_owned(),
        Needs::Workflow => server.workflow(None).await,
        Needs::Allowed => server.workflow(Some(llm())).await,
        Needs::Held => server.workflow(Some(send_email())).await,
    };
    route.uri.replace("{wf}", &workflow)
}

/// A uri with the prepared object replaced by one that does not exist.
fn missing(uri: &str) -> String {
    let absent = "wf_00000000-0000-4000-8000-000000000000";
    let mut out = uri.to_owned();
    if let Some(start) = uri.find("wf_") {
        out.replace_range(start..start + absent.len(), absent);
    }
    out.replace("/policies/acme/x", "/policies/acme/nothing")
        .replace("/policies/x", "/policies/nothing")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_by_every_kind_of_caller() {
    for route in routes() {
        // A fresh server per route: a refused call must leave nothing behind
        // for the next, and failure counts start from zero.
        let server = Tenants::start().await;
        let (own, roleless) = own_and_roleless(route.roles);
        let name = route.name;

        // No credentials, wrong secret, disabled client, missing role: each
        // refused before any lookup, with the contract's message.
        let uri = prepare(&server, &route).await;
        let refusals: [(&str, Option<String>, u16, String); 4] = [
            ("none", None, 401, "Authentication required".into()),
            (
                "wrong secret",
                Some(basic(own, "nope")),
                401,
                "Invalid credentials".into(),
            ),
            (
                "disabled",
                Some(creds("acme-disabled")),
                403,
                "Client is disabled".into(),
            ),
            (
                "missing role",
                Some(creds(roleless)),
                403,
                format!("Role {} required", route.roles.join(" or ")),
            ),
        ];
        for (who, auth, status, message) in refusals {
            let answer = send(&server, &route, &uri, auth.as_deref()).await;
            assert_eq!(
                answer.status.as_u16(),
                status,
                "{name} / {who}: {:?}",
                answer.body
            );
            assert_eq!(answer.json()["message"], message.as_str(), "{name} / {who}");
        }
        let none = server
            .call(route.method.clone(), &uri, None, Body::None)
            .await;
        assert_eq!(
            none.headers.get("www-authenticate").unwrap(),
            "Basic realm=\"wcp\"",
            "{name}"
        );

        // Another tenant: its answer for acme's object is byte for byte its
        // answer for one that does not exist.
        let foreign = send(&server, &route, &uri, Some(&creds("globex-all"))).await;
        assert_eq!(
            foreign.status.as_u16(),
            route.foreign,
            "{name} / foreign: {:?}",
            foreign.body
        );
        if route.foreign == 404 {
            let absent = send(&server, &route, &missing(&uri), Some(&creds("globex-all"))).await;
            assert_eq!(absent.status.as_u16(), 404, "{name} / missing");
            assert_eq!(
                foreign.body, absent.body,
                "{name}: foreign and missing differ"
            );
        }
        // Workflows also need the same org.
        if uri.contains("/workflows/wf_") {
            let elsewhere = send(&server, &route, &uri, Some(&creds("acme-elsewhere"))).await;
            assert_eq!(elsewhere.status.as_u16(), 404, "{name} / other org");
        }

        // The owner, last: the only call that may change anything.
        server
            .expect(
                own,
                route.method.clone(),
                &uri,
                route.body.clone(),
                route.own,
            )
            .await;
        server.live.stop().await;
    }
}

#[tokio::test]
async fn lists_show_only_the_callers_tenant_and_org() {
    let server = Tenants::start().await;
    let mine = server.workflow(Some(send_email())).await;
    for (client, expected) in [
        ("acme-member", vec![mine.clone()]),
        ("acme-approver", vec![mine.clone()]),
        ("globex-all", vec![]),
        ("acme-elsewhere", vec![]),
    ] {
        let list = server
            .expect(client, Method::GET, "/api/v1/workflows", Body::None, 200)
            .await;
        let ids: Vec<String> = list["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["workflow_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, expected, "{client}");
        let pending = server
            .expect(
                client,
                Method::GET,
                "/api/v1/workflows/approvals/pending",
                Body::None,
                200,
            )
            .await;
        assert_eq!(pending["count"], expected.len(), "{client}: {pending}");
    }
    // Policies: global ones for everybody, acme's only for acme.
    let ids = |list: &Value| -> Vec<String> {
        list["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let acme = server
        .expect(
            "acme-member",
            Method::GET,
            "/api/v1/policies",
            Body::None,
            200,
        )
        .await;
    assert_eq!(ids(&acme), ["global/tool-approval", "acme/x"]);
    let globex = server
        .expect(
            "globex-all",
            Method::GET,
            "/api/v1/policies",
            Body::None,
            200,
        )
        .await;
    assert_eq!(ids(&globex), ["global/tool-approval"]);
    // Audit: each tenant its own chain; acme's actor is the client id.
    let audit = server
        .expect("acme-admin", Method::GET, "/api/v1/audit", Body::None, 200)
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["tenant"] == "acme"), "{audit}");
    assert_eq!(entries[1]["actor"], "acme-member", "{audit}");
    let theirs = server
        .expect("globex-all", Method::GET, "/api/v1/audit", Body::None, 200)
        .await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    server.live.stop().await;
}

#[tokio::test]
async fn more_than_ten_failures_a_minute_lock_the_client_id_out_from_that_address_only() {
    let server = Tenants::start().await;
    let uri = "/api/v1/workflows";
    let attacker: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let from = |peer: SocketAddr, auth: String| {
        let server = &server;
        async move {
            server
                .live
                .app
                .send_from(
                    Some(peer),
                    Method::GET,
                    uri,
                    &[("authorization", &auth)],
                    Vec::new(),
                )
                .await
        }
    };
    for attempt in 1..=10 {
        // A new connection each time: the port changes, the address not.
        let peer = SocketAddr::new(attacker.ip(), 40_000 + attempt);
        let answer = from(peer, basic("acme-member", "wrong")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let eleventh = from(attacker, basic("acme-member", "wrong")).await;
    assert_eq!(eleventh.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        eleventh.json(),
        json!({"error": "too_many_requests", "code": "TOO_MANY_REQUESTS",
               "message": "Too many failed authentication attempts"})
    );
    // Even the right secret waits for the window to free, from there.
    let right = from(attacker, creds("acme-member")).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    let retry = right
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The real client, elsewhere, is not locked out by them; an IPv4
    // address counts as itself however the socket was bound.
    let elsewhere: SocketAddr = "198.51.100.20:50000".parse().unwrap();
    let answer = from(elsewhere, creds("acme-member")).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let mapped: SocketAddr = "[::ffff:192.0.2.7]:40100".parse().unwrap();
    let answer = from(mapped, creds("acme-member")).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // Other client ids are not affected.
    let answer = from(attacker, creds("acme-approver")).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    server.live.stop().await;
}

/// The audit list shows an org the entries about its own workflows and
/// the tenant's policy changes; another org's workflows are as absent
/// there as on the workflow routes, byte for byte.
#[tokio::test]
async fn the_audit_shows_an_org_only_its_own_workflows_and_the_tenant_s_policy_changes() {
    let server = Tenants::start().await;
    let mine = server.workflow(Some(send_email())).await;
    // A tenant-level entry: acme-org's admin uploads a policy.
    server
        .expect(
            "acme-admin",
            Method::PUT,
            "/api/v1/policies/y",
            Body::Wasm(wasm::ALLOW_ALL),
            201,
        )
        .await;
    let about_mine = |page: &Value| -> usize {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["workflow_id"] == mine.as_str())
            .count()
    };
    let policy_changes = |page: &Value| -> usize {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["workflow_id"].is_null())
            .count()
    };
    let own = server
        .expect("acme-admin", Method::GET, "/api/v1/audit", Body::None, 200)
        .await;
    assert!(about_mine(&own) >= 2, "created and gated: {own}");
    assert!(policy_changes(&own) >= 1, "{own}");

    let theirs = server
        .expect(
            "acme-elsewhere",
            Method::GET,
            "/api/v1/audit",
            Body::None,
            200,
        )
        .await;
    assert_eq!(about_mine(&theirs), 0, "{theirs}");
    assert!(policy_changes(&theirs) >= 1, "{theirs}");
    assert_eq!(theirs["total"], policy_changes(&theirs), "{theirs}");

    // Filters: another org's workflow id answers as a missing one does.
    let absent = "wf_00000000-0000-4000-8000-000000000000";
    for query in [
        format!("workflow_id={mine}"),
        format!("workflow_id={mine}&kind=step_gate"),
        format!("workflow_id={mine}&since=2000-01-01T00:00:00Z"),
    ] {
        let foreign = server
            .call(
                Method::GET,
                &format!("/api/v1/audit?{query}"),
                Some(&creds("acme-elsewhere")),
                Body::None,
            )
            .await;
        let missing = server
            .call(
                Method::GET,
                &format!("/api/v1/audit?{}", query.replace(&mine, absent)),
                Some(&creds("acme-elsewhere")),
                Body::None,
            )
            .await;
        assert_eq!(foreign.status, StatusCode::OK, "{query}");
        assert_eq!(foreign.body, missing.body, "{query}");
        let own = server
            .expect(
                "acme-admin",
                Method::GET,
                &format!("/api/v1/audit?{query}"),
                Body::None,
                200,
            )
            .await;
        assert!(own["total"].as_u64().unwrap() >= 1, "{query}: {own}");
    }
    let kinds = server
        .expect(
            "acme-elsewhere",
            Method::GET,
            "/api/v1/audit?kind=workflow_created",
            Body::None,
            200,
        )
        .await;
    assert_eq!(kinds["total"], 0, "{kinds}");
    server.live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_workflow_limit_holds_under_parallel_creates() {
    let server = Arc::new(Tenants::start().await);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            server
                .call(
                    Method::POST,
                    "/api/v1/workflows",
                    Some(&creds("acme-limited")),
                    Body::Json(json!({"workflow_name": "burst"})),
                )
                .await
        }));
    }
    let mut created = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.status {
            StatusCode::CREATED => {
                created.push(answer.json()["workflow_id"].as_str().unwrap().to_owned());
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(answer.json()["code"], "CONCURRENT_EXECUTION_LIMIT");
                assert!(answer.headers.contains_key("retry-after"));
            }
            other => panic!("create answered {other}"),
        }
    }
    assert_eq!(created.len(), 3, "{created:?}");
    let running = server
        .expect(
            "acme-member",
            Method::GET,
            "/api/v1/workflows?status=in_progress",
            Body::None,
            200,
        )
        .await;
    assert_eq!(running["total"], 3, "{running}");

    // Finishing one frees a slot, for one more create only.
    server
        .expect(
            "acme-limited",
            Method::POST,
            &format!("/api/v1/workflows/{}/complete", created[0]),
            Body::None,
            200,
        )
        .await;
    let body = Body::Json(json!({"workflow_name": "after"}));
    server
        .expect(
            "acme-limited",
            Method::POST,
            "/api/v1/workflows",
            body.clone(),
            201,
        )
        .await;
    server
        .expect("acme-limited", Method::POST, "/api/v1/workflows", body, 429)
        .await;
    // The limit is the client's: another acme client without one is free.
    server
        .expect(
            "acme-member",
            Method::POST,
            "/api/v1/workflows",
            Body::Json(json!({"workflow_name": "unlimited"})),
            201,
        )
        .await;
    Arc::try_unwrap(server).ok().unwrap().live.stop().await;
}

#[tokio::test]
async fn the_tenants_file_reloads_and_a_broken_one_keeps_the_clients() {
    let server = Tenants::start().await;
    // `server.live` watches policies, not the tenants file; reloading is
    // driven as the server's file reloader drives it.
    let Authenticator::Tenants(auth) = &server.live.state.auth else {
        panic!("not tenants mode");
    };
    let auth = Arc::clone(auth);
    let reloader = host::reload::spawn_file_reloader(
        server.file.clone(),
        std::time::Duration::from_secs(30),
        move || {
            auth.reload();
        },
    );

    let member_gets = |status: StatusCode| {
        let server = &server;
        eventually("acme-member's answer to change", move || async move {
            let answer = server
                .call(
                    Method::GET,
                    "/api/v1/workflows",
                    Some(&creds("acme-member")),
                    Body::None,
                )
                .await;
            (answer.status == status).then_some(())
        })
    };

    // Disable acme-member by editing the file.
    let mut rows: Vec<ClientRow> = CLIENTS.to_vec();
    rows[0].4 = false;
    write_atomically(&server.file, &tenants_toml(&rows));
    member_gets(StatusCode::FORBIDDEN).await;

    // A broken file leaves the clients in force (the reload of one is
    // checked directly in the next test); a good file then lands again.
    fs::write(&server.file, "[[clients]]\nclient_id = \"half").unwrap();
    server
        .expect(
            "acme-approver",
            Method::GET,
            "/api/v1/workflows",
            Body::None,
            200,
        )
        .await;
    write_atomically(&server.file, &tenants_toml(CLIENTS));
    member_gets(StatusCode::OK).await;
    reloader.stop().await;
    server.live.stop().await;
}

#[tokio::test]
async fn a_broken_file_after_start_is_ignored_until_fixed() {
    let server = Tenants::start().await;
    let Authenticator::Tenants(auth) = &server.live.state.auth else {
        panic!("not tenants mode");
    };
    fs::write(&server.file, "[[clients]]\nclient_id = 7\n").unwrap();
    assert!(!auth.reload(), "a broken file must not take effect");
    assert_eq!(auth.clients().len(), CLIENTS.len());
    server
        .expect(
            "acme-member",
            Method::GET,
            "/api/v1/workflows",
            Body::None,
            200,
        )
        .await;
    server.live.stop().await;
}

fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("toml.part");
    fs::write(&temp, text).unwrap();
    fs::rename(&temp, path).unwrap();
}

#[test]
fn a_tenants_file_that_does_not_load_stops_the_start_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenants.toml");
    fs::write(
        &file,
        "[[clients]]\nclient_id = \"a\"\nsecret_hash = \"plain\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wcp"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tenants"])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("tenants file"), "{stderr}");
    assert!(
        !stderr.contains("plain"),
        "the secret_hash value leaked: {stderr}"
    );
}
