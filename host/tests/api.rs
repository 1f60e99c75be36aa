//! The HTTP edge through the real router (`oneshot`): routing, errors,
//! CORS, the body cap, ops endpoints, the OpenAPI document, policy reads and
//! dry runs with real policy components.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use host::api::{self, AppState};
use host::config::ServeConfig;
use host::policy_set::PolicySet;
use host::runtime::{PolicyRuntime, RuntimeConfig};
use host::store::Store;
use host::tenants::Authenticator;
use wcp_test_artifacts as wasm;

const LIMIT: usize = 1_048_576;
/// Basic credentials `acme:` and `globex:secret`.
const ACME: &str = "Basic YWNtZTo=";
const GLOBEX: &str = "Basic Z2xvYmV4OnNlY3JldA==";

/// One runtime and one loaded policy set for every test: compiling the
/// components once keeps the suite quick.
struct Fixture {
    runtime: Arc<PolicyRuntime>,
    set: PolicySet,
    store: Store,
    _data: tempfile::TempDir,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = PolicyRuntime::new(RuntimeConfig {
        cache_dir: None,
        disable_pooling: true,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let install = |relative: &str, wasm: &str, manifest: Option<&str>| {
        let path = dir.path().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::copy(wasm, path.with_extension("wasm")).unwrap();
        if let Some(text) = manifest {
            fs::write(path.with_extension("toml"), text).unwrap();
        }
    };
    install(
        "global/model-allowlist",
        wasm::MODEL_ALLOWLIST,
        Some("priority = 10\nstep_types = [\"llm_call\"]\n"),
    );
    install("global/panic", wasm::PANIC, None);
    install("global/dormant", wasm::ALLOW_ALL, Some("enabled = false\n"));
    install(
        "tenants/acme/tool-approval",
        wasm::TOOL_APPROVAL,
        Some("step_types = [\"tool_call\"]\n[settings]\ntools = [\"wire_transfer\"]\n"),
    );
    install("tenants/globex/secret-rule", wasm::ALLOW_ALL, None);
    let set = PolicySet::load(&runtime, dir.path(), &PolicySet::default());
    assert_eq!(set.serving_count(), 5, "{set:?}");
    let data = tempfile::tempdir().unwrap();
    Fixture {
        runtime: Arc::new(runtime),
        set,
        store: common::open_store(data.path()).0,
        _data: data,
    }
});

fn state(ready: bool) -> AppState {
    let state = AppState::new(
        ServeConfig::default(),
        Arc::clone(&FIXTURE.runtime),
        Authenticator::Community,
        FIXTURE.store.clone(),
    );
    state.publish(FIXTURE.set.clone());
    if ready {
        state.mark_ready();
    }
    state
}

fn app() -> Router {
    api::app(state(true))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

fn request(method: Method, uri: &str, auth: Option<&str>, body: Body) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(auth) = auth {
        builder = builder.header(header::AUTHORIZATION, auth);
    }
    builder.body(body).unwrap()
}

fn get(uri: &str) -> Request<Body> {
    request(Method::GET, uri, None, Body::empty())
}

fn post_json(uri: &str, auth: Option<&str>, body: &Value) -> Request<Body> {
    request(Method::POST, uri, auth, Body::from(body.to_string()))
}

fn assert_envelope(answer: &Answer, status: u16, code: &str, message: &str) {
    assert_eq!(answer.status.as_u16(), status, "{:?}", answer.body);
    let body = answer.json();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["message"], message, "{body}");
    let error = match code {
        "INVALID_TRACE_ID" | "INVALID_TOOL_CONTEXT" => "validation_error".to_owned(),
        _ => code.to_lowercase(),
    };
    assert_eq!(body["error"], error, "{body}");
}

#[tokio::test]
async fn unknown_routes_and_trailing_slashes_get_a_json_404() {
    let app = app();
    let cases = [
        ("unknown path", Method::GET, "/nope"),
        ("trailing slash on health", Method::GET, "/health/"),
        (
            "trailing slash on the list",
            Method::GET,
            "/api/v1/policies/",
        ),
        (
            "trailing slash on evaluate",
            Method::POST,
            "/api/v1/policies/global/panic/evaluate/",
        ),
        ("too deep", Method::GET, "/api/v1/policies/global/panic/x"),
        ("options on an unknown path", Method::OPTIONS, "/nope"),
    ];
    for (name, method, uri) in cases {
        let answer = send(&app, request(method, uri, None, Body::empty())).await;
        assert_envelope(&answer, 404, "NOT_FOUND", "Route not found");
        assert!(answer.header("allow").is_none(), "{name}");
    }
}

#[tokio::test]
async fn other_methods_get_a_json_405_with_allow() {
    let app = app();
    let cases = [
        ("post health", Method::POST, "/health", "GET,HEAD"),
        (
            "delete the list",
            Method::DELETE,
            "/api/v1/policies",
            "GET,HEAD",
        ),
        (
            "get evaluate",
            Method::GET,
            "/api/v1/policies/global/panic/evaluate",
            "POST",
        ),
        ("put metrics", Method::PUT, "/metrics", "GET,HEAD"),
    ];
    for (name, method, uri, allow) in cases {
        let answer = send(&app, request(method, uri, None, Body::empty())).await;
        assert_envelope(&answer, 405, "METHOD_NOT_ALLOWED", "Method not allowed");
        assert_eq!(answer.header("allow"), Some(allow), "{name}");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let ready = app();
    let starting = api::app(state(false));
    let cases = [
        ("200", &ready, get("/health")),
        ("404", &ready, get("/nope")),
        (
            "405",
            &ready,
            request(Method::POST, "/ready", None, Body::empty()),
        ),
        (
            "401",
            &ready,
            request(
                Method::GET,
                "/api/v1/policies",
                Some("Basic YmFkL25hbWU6"),
                Body::empty(),
            ),
        ),
        ("503", &starting, get("/api/v1/policies")),
    ];
    for (name, app, request) in cases {
        let answer = send(app, request).await;
        let id = answer.header("x-request-id").unwrap_or_default();
        assert!(!id.is_empty(), "{name}: {:?}", answer.headers);
    }
    let mut echoed = get("/health");
    echoed
        .headers_mut()
        .insert("x-request-id", "trace-me".parse().unwrap());
    assert_eq!(
        send(&ready, echoed).await.header("x-request-id"),
        Some("trace-me")
    );
}

#[tokio::test]
async fn cors_echoes_only_allowlisted_origins_and_never_a_wildcard() {
    let app = app();
    let cases = [
        (
            "allowlisted on 200",
            "/health",
            "http://localhost:3000",
            true,
        ),
        (
            "allowlisted on a 404",
            "/nope",
            "http://localhost:3000",
            true,
        ),
        ("foreign origin", "/health", "http://malicious.com", false),
        (
            "same host other port",
            "/health",
            "http://localhost:3001",
            false,
        ),
    ];
    for (name, uri, origin, allowed) in cases {
        let mut request = get(uri);
        request
            .headers_mut()
            .insert(header::ORIGIN, origin.parse().unwrap());
        let answer = send(&app, request).await;
        let acao = answer.header("access-control-allow-origin");
        if allowed {
            assert_eq!(acao, Some(origin), "{name}");
            assert_eq!(answer.header("vary"), Some("Origin"), "{name}");
        } else {
            assert_eq!(acao, None, "{name}");
        }
        assert_ne!(acao, Some("*"), "{name}");
    }
}

#[tokio::test]
async fn options_preflight_is_answered_before_readiness_and_auth() {
    let starting = api::app(state(false));
    for uri in [
        "/api/v1/policies",
        "/api/v1/policies/global/panic/evaluate",
        "/health",
    ] {
        let mut request = request(
            Method::OPTIONS,
            uri,
            Some("Basic YmFkL25hbWU6"),
            Body::empty(),
        );
        request
            .headers_mut()
            .insert(header::ORIGIN, "http://localhost:3000".parse().unwrap());
        request
            .headers_mut()
            .insert("access-control-request-method", "POST".parse().unwrap());
        let answer = send(&starting, request).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
        assert!(answer.body.is_empty(), "{uri}");
        assert_eq!(
            answer.header("access-control-allow-methods"),
            Some("GET, POST, PUT, DELETE, OPTIONS")
        );
        assert_eq!(
            answer.header("access-control-allow-headers"),
            Some("Authorization, Content-Type")
        );
        assert_eq!(answer.header("access-control-max-age"), Some("86400"));
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("http://localhost:3000")
        );
    }
}

/// A dry-run body of exactly `size` bytes.
fn body_of(size: usize) -> Vec<u8> {
    let head = br#"{"step_type":"llm_call","model":"gpt-4o","step_input":{"pad":""#;
    let tail = br#""}}"#;
    let mut body = head.to_vec();
    body.resize(size - tail.len(), b'x');
    body.extend_from_slice(tail);
    body
}

#[tokio::test]
async fn body_cap_accepts_exactly_the_limit_and_refuses_one_byte_more() {
    let app = app();
    let uri = "/api/v1/policies/global/model-allowlist/evaluate";
    let declared = |size: usize| {
        let body = body_of(size);
        let mut request = request(Method::POST, uri, None, Body::from(body.clone()));
        request.headers_mut().insert(
            header::CONTENT_LENGTH,
            body.len().to_string().parse().unwrap(),
        );
        request
    };
    let cases: Vec<(&str, Request<Body>, u16)> = vec![
        ("declared, exactly the limit", declared(LIMIT), 200),
        ("declared, one byte over", declared(LIMIT + 1), 413),
        (
            "undeclared, exactly the limit",
            request(Method::POST, uri, None, Body::from(body_of(LIMIT))),
            200,
        ),
        (
            "undeclared, one byte over",
            request(Method::POST, uri, None, Body::from(body_of(LIMIT + 1))),
            413,
        ),
        (
            "declared huge, nothing sent",
            {
                let mut request = request(Method::POST, uri, None, Body::empty());
                request
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, "1073741824".parse().unwrap());
                request
            },
            413,
        ),
    ];
    for (name, request, status) in cases {
        let answer = send(&app, request).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{name}: {:?}",
            answer.json()
        );
        if status == 413 {
            assert_envelope(
                &answer,
                413,
                "REQUEST_TOO_LARGE",
                "request body exceeds 1048576 bytes; nothing was changed",
            );
            assert_eq!(answer.json()["limit_bytes"], 1_048_576, "{name}");
        } else {
            assert_eq!(answer.json()["action"], "allow", "{name}");
        }
    }
}

#[tokio::test]
async fn malformed_bodies_get_the_400_envelope() {
    let app = app();
    let uri = "/api/v1/policies/global/model-allowlist/evaluate";
    let cases: Vec<(&str, &str, &str, Option<&str>)> = vec![
        ("empty body", "", "BAD_REQUEST", None),
        ("not JSON", "{invalid", "BAD_REQUEST", None),
        ("wrong type", r#"{"step_type": 5}"#, "BAD_REQUEST", None),
        (
            "step_input not an object",
            r#"{"step_type": "x", "step_input": "text"}"#,
            "BAD_REQUEST",
            None,
        ),
        (
            "trailing data",
            r#"{"step_type": "x"} {}"#,
            "BAD_REQUEST",
            None,
        ),
        (
            "duplicate key",
            r#"{"step_type": "x", "step_type": "y"}"#,
            "BAD_REQUEST",
            None,
        ),
        (
            "missing step_type",
            "{}",
            "BAD_REQUEST",
            Some("step_type is required"),
        ),
        (
            "empty tool name",
            r#"{"step_type": "tool_call", "tool_context": {"tool_name": ""}}"#,
            "INVALID_TOOL_CONTEXT",
            Some("tool_name is required when tool_context is provided"),
        ),
    ];
    for (name, body, code, message) in cases {
        let answer = send(&app, request(Method::POST, uri, None, Body::from(body))).await;
        let json = answer.json();
        match message {
            Some(message) => assert_envelope(&answer, 400, code, message),
            None => {
                assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
                assert_eq!(json["code"], code, "{name}");
                assert_eq!(json["error"], "bad_request", "{name}");
                let text = json["message"].as_str().unwrap();
                assert!(text.starts_with("Invalid request body: "), "{name}: {text}");
            }
        }
    }
}

#[tokio::test]
async fn health_is_always_up_and_ready_turns_200_after_loading() {
    let state = state(false);
    let app = api::app(state.clone());

    let health = send(&app, get("/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    let body = health.json();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["service"], "wcp");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["policies_loaded"], 5);

    for uri in ["/ready", "/api/v1/policies"] {
        let answer = send(&app, get(uri)).await;
        assert_envelope(&answer, 503, "NOT_READY", "Server is starting");
        assert_eq!(answer.header("retry-after"), Some("1"), "{uri}");
    }
    state.mark_ready();
    let ready = send(&app, get("/ready")).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json(), json!({"status": "ready"}));
    assert_eq!(
        send(&app, get("/api/v1/policies")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_expose_the_contract_series_without_tenants() {
    let app = app();
    send(
        &app,
        request(Method::GET, "/api/v1/policies", Some(ACME), Body::empty()),
    )
    .await;
    send(&app, get("/nope")).await;
    let dry_run = json!({"step_type": "llm_call", "model": "davinci-001"});
    send(
        &app,
        post_json("/api/v1/policies/global/panic/evaluate", None, &dry_run),
    )
    .await;
    send(
        &app,
        post_json(
            "/api/v1/policies/global/model-allowlist/evaluate",
            None,
            &dry_run,
        ),
    )
    .await;

    let answer = send(&app, get("/metrics")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    let expected = [
        r#"wcp_http_requests_total{route="/api/v1/policies",method="GET",status="200"} 1"#,
        r#"wcp_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        r#"wcp_policies{status="loaded"} 5"#,
        r#"wcp_policies{status="failed"} 0"#,
    ];
    for series in expected {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    // Dry runs count nothing (contract §6.3): no policy series from them.
    for series in [
        "wcp_policy_evaluation_duration_seconds_bucket{policy=\"global/model-allowlist\"",
        "wcp_policy_errors_total{policy=\"global/panic\"",
    ] {
        assert!(!text.contains(series), "a dry run was counted: {series}");
    }
    assert!(!text.contains("tenant"), "{text}");
    assert!(!text.contains("acme"), "{text}");
}

#[tokio::test]
async fn openapi_states_the_rules_the_validators_apply_and_links_the_workflow_routes() {
    use host::fields;
    let app = api::app(state(true));
    let doc = send(&app, get("/openapi.json")).await.json();
    let schemas = &doc["components"]["schemas"];
    let gate = &schemas["GateBody"];
    assert_eq!(gate["required"], json!(["step_type"]));
    assert_eq!(
        gate["properties"]["step_type"]["maxLength"],
        fields::SHORT_TEXT
    );
    assert_eq!(gate["properties"]["step_type"]["minLength"], 1);
    assert_eq!(
        gate["properties"]["step_name"]["maxLength"],
        fields::LONG_TEXT
    );
    assert_eq!(
        gate["properties"]["step_name"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(gate["properties"]["tokens_in"]["minimum"], 0);
    assert_eq!(gate["properties"]["tokens_in"]["maximum"], i64::MAX);
    assert_eq!(
        gate["properties"]["retry_policy"]["enum"],
        json!(["idempotent", "reevaluate", "", null])
    );
    assert_eq!(schemas["CreateBody"]["required"], json!(["workflow_name"]));
    for body in ["ApproveBody", "RejectBody"] {
        let field = if body == "ApproveBody" {
            "comment"
        } else {
            "reason"
        };
        assert_eq!(schemas[body]["required"], json!([field]));
        assert_eq!(
            schemas[body]["properties"][field]["pattern"],
            fields::COMMENT_PATTERN.as_str()
        );
    }
    let audit = doc["paths"]["/api/v1/audit"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let parameter = |name: &str| {
        audit
            .iter()
            .find(|parameter| parameter["name"] == name)
            .map(|parameter| parameter["schema"].clone())
            .unwrap()
    };
    assert_eq!(parameter("since")["format"], "date-time");
    assert_eq!(parameter("limit")["minimum"], 1);
    assert_eq!(parameter("offset")["minimum"], 0);
    assert_eq!(parameter("scope")["enum"], json!(["global"]));
    // An optional body is an object or nothing, never `null`.
    let complete = &doc["paths"]["/api/v1/workflows/{id}/steps/{step_id}/complete"]["post"];
    assert_eq!(
        complete["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CompleteBody"
    );
    assert_ne!(complete["requestBody"]["required"], true);

    // The create's 201 links every route that takes a workflow id.
    let links = doc["paths"]["/api/v1/workflows"]["post"]["responses"]["201"]["links"]
        .as_object()
        .unwrap();
    let mut linked: Vec<&str> = links.keys().map(String::as_str).collect();
    linked.sort_unstable();
    assert_eq!(
        linked,
        [
            "abort_workflow",
            "approve_step",
            "complete_step",
            "complete_workflow",
            "fail_workflow",
            "gate_step",
            "get_checkpoints",
            "get_workflow",
            "reject_step",
            "resume_checkpoint",
            "resume_last",
            "resume_workflow",
        ]
    );
    for (target, link) in links {
        assert_eq!(link["operationId"], target.as_str());
        assert_eq!(link["parameters"]["id"], "$response.body#/workflow_id");
    }
    let approve = &doc["paths"]["/api/v1/workflows/{id}/steps/{step_id}/gate"]["post"]["responses"]
        ["200"]["links"]["approve_step"];
    assert_eq!(approve["parameters"]["step_id"], "$request.path.step_id");
}

#[tokio::test]
async fn openapi_is_3_1_and_matches_the_router() {
    let state = state(true);
    let app = api::app(state.clone());
    let answer = send(&app, get("/openapi.json")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|key| !matches!(key.as_str(), "parameters" | "summary" | "description"))
                .map(|method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let served: BTreeSet<(String, String)> =
        api::routes(&state).operations().iter().cloned().collect();
    assert_eq!(documented, served, "the document and the router disagree");

    let contract: BTreeSet<(String, String)> = [
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/api/v1/policies"),
        ("GET", "/api/v1/policies/{scope}/{name}"),
        ("POST", "/api/v1/policies/{scope}/{name}/evaluate"),
        ("POST", "/api/v1/workflows"),
        ("GET", "/api/v1/workflows"),
        ("GET", "/api/v1/workflows/{id}"),
        ("POST", "/api/v1/workflows/{id}/complete"),
        ("POST", "/api/v1/workflows/{id}/fail"),
        ("POST", "/api/v1/workflows/{id}/abort"),
        ("POST", "/api/v1/workflows/{id}/resume"),
        ("POST", "/api/v1/workflows/{id}/steps/{step_id}/gate"),
        ("POST", "/api/v1/workflows/{id}/steps/{step_id}/complete"),
        ("GET", "/api/v1/workflows/{id}/checkpoints"),
        ("POST", "/api/v1/workflows/{id}/checkpoints/resume"),
        (
            "POST",
            "/api/v1/workflows/{id}/checkpoints/{checkpoint_id}/resume",
        ),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/audit/verify"),
        ("POST", "/api/v1/workflows/{id}/steps/{step_id}/approve"),
        ("POST", "/api/v1/workflows/{id}/steps/{step_id}/reject"),
        ("GET", "/api/v1/workflows/approvals/pending"),
        ("PUT", "/api/v1/policies/{name}"),
        ("DELETE", "/api/v1/policies/{name}"),
    ]
    .iter()
    .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
    .collect();
    assert_eq!(documented, contract);

    // Each documented operation is really routed there, with exactly the
    // documented methods.
    for (method, path) in &documented {
        let uri = path
            .replace("{scope}", "global")
            .replace("{name}", "model-allowlist")
            .replace("{id}", "wf_missing")
            .replace("{step_id}", "s1")
            .replace("{checkpoint_id}", "1");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let answer = send(&app, request(method.clone(), &uri, None, Body::from("{}"))).await;
        assert!(
            !matches!(answer.status.as_u16(), 404 | 405)
                || answer.json()["message"] == "Policy not found"
                || answer.json()["message"] == "Workflow not found",
            "{method} {uri}: {}",
            answer.status
        );
        let options = send(&app, request(Method::OPTIONS, &uri, None, Body::empty())).await;
        let allow: BTreeSet<&str> = options.header("allow").unwrap().split(',').collect();
        let mut expected: BTreeSet<&str> = documented
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        if expected.contains("GET") {
            expected.insert("HEAD");
        }
        assert_eq!(allow, expected, "{uri}");
    }
}

async fn list(
    app: &Router,
    auth: Option<&str>,
    extra: Option<(&'static str, &str)>,
) -> Vec<String> {
    let mut request = request(Method::GET, "/api/v1/policies", auth, Body::empty());
    if let Some((name, value)) = extra {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let answer = send(app, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    let ids: Vec<String> = body["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(body["count"], ids.len());
    ids
}

#[tokio::test]
async fn a_tenant_lists_global_policies_and_its_own_in_evaluation_order() {
    let app = app();
    // (name, Authorization, extra header, expected ids)
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<(&'static str, &'static str)>,
        &'static [&'static str],
    );
    let cases: [Case; 4] = [
        (
            "community",
            None,
            None,
            &["global/model-allowlist", "global/dormant", "global/panic"],
        ),
        (
            "acme",
            Some(ACME),
            None,
            &[
                "global/model-allowlist",
                "global/dormant",
                "global/panic",
                "acme/tool-approval",
            ],
        ),
        (
            "globex",
            Some(GLOBEX),
            None,
            &[
                "global/model-allowlist",
                "global/dormant",
                "global/panic",
                "globex/secret-rule",
            ],
        ),
        (
            "X-Tenant-ID is ignored",
            None,
            Some(("x-tenant-id", "acme")),
            &["global/model-allowlist", "global/dormant", "global/panic"],
        ),
    ];
    for (name, auth, extra, expected) in cases {
        assert_eq!(list(&app, auth, extra).await, expected, "{name}");
    }
}

#[tokio::test]
async fn policy_objects_have_the_contract_fields() {
    let app = app();
    let global = send(&app, get("/api/v1/policies/global/model-allowlist"))
        .await
        .json();
    assert_eq!(global["id"], "global/model-allowlist");
    assert_eq!(global["scope"], "global");
    assert_eq!(global["version"].as_str().unwrap().len(), 12);
    assert_eq!(global["sha256"].as_str().unwrap().len(), 64);
    assert!(
        global["sha256"]
            .as_str()
            .unwrap()
            .starts_with(global["version"].as_str().unwrap())
    );
    assert!(global["size_bytes"].as_u64().unwrap() > 0);
    assert!(global["loaded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(global["enabled"], true);
    assert_eq!(global["step_types"], json!(["llm_call"]));
    assert_eq!(global["priority"], 10);
    assert_eq!(global["timeout_ms"], 100);
    assert_eq!(global["memory_mib"], 32);
    assert_eq!(global["on_error"], "block");
    assert_eq!(global["status"], "loaded");
    assert_eq!(global["last_error"], Value::Null);
    assert!(
        global.get("settings").is_none(),
        "global settings stay private"
    );

    let panic = send(&app, get("/api/v1/policies/global/panic"))
        .await
        .json();
    assert_eq!(panic["step_types"], json!([]), "[] means all");

    let own = send(
        &app,
        request(
            Method::GET,
            "/api/v1/policies/acme/tool-approval",
            Some(ACME),
            Body::empty(),
        ),
    )
    .await
    .json();
    assert_eq!(own["scope"], "acme");
    assert_eq!(own["settings"], json!({"tools": ["wire_transfer"]}));
}

#[tokio::test]
async fn a_foreign_policy_is_byte_identical_to_a_missing_one() {
    let app = app();
    let missing = send(
        &app,
        request(
            Method::GET,
            "/api/v1/policies/globex/no-such-rule",
            Some(GLOBEX),
            Body::empty(),
        ),
    )
    .await;
    assert_envelope(&missing, 404, "NOT_FOUND", "Policy not found");
    let cases = [
        (
            "acme reads globex",
            Method::GET,
            "/api/v1/policies/globex/secret-rule",
            Some(ACME),
        ),
        (
            "community reads acme",
            Method::GET,
            "/api/v1/policies/acme/tool-approval",
            None,
        ),
        (
            "unknown global",
            Method::GET,
            "/api/v1/policies/global/nothing",
            Some(ACME),
        ),
        (
            "acme runs globex",
            Method::POST,
            "/api/v1/policies/globex/secret-rule/evaluate",
            Some(ACME),
        ),
    ];
    for (name, method, uri, auth) in cases {
        let body = if method == Method::POST {
            Body::from(r#"{"step_type":"x"}"#)
        } else {
            Body::empty()
        };
        let answer = send(&app, request(method, uri, auth, body)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{name}");
        assert_eq!(answer.body, missing.body, "{name}");
    }
}

#[tokio::test]
async fn dry_run_of_model_allowlist_blocks_naming_the_model() {
    let app = app();
    let body = json!({"step_type": "llm_call", "model": "davinci-001",
                      "workflow": {"workflow_name": "nightly", "tenant": "someone-else"}});
    let answer = send(
        &app,
        post_json(
            "/api/v1/policies/global/model-allowlist/evaluate",
            Some(ACME),
            &body,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json());
    let run = answer.json();
    assert_eq!(run["policy_id"], "global/model-allowlist");
    assert_eq!(run["policy_name"], "model-allowlist");
    assert_eq!(run["policy_version"].as_str().unwrap().len(), 12);
    assert_eq!(run["applies"], true);
    assert_eq!(run["action"], "block");
    assert_eq!(run["verdict"], "block");
    assert!(
        run["reason"].as_str().unwrap().contains("davinci-001"),
        "{run}"
    );
    assert!(run.get("error").is_none());
    assert!(run["duration_us"].is_u64());
    let input = &run["input"];
    assert_eq!(
        input["workflow"]["tenant"], "acme",
        "identity comes from credentials"
    );
    assert_eq!(input["workflow"]["org"], "default");
    assert_eq!(input["workflow"]["workflow_name"], "nightly");
    assert_eq!(input["workflow"]["workflow_id"], "wf_dry_run");
    assert_eq!(input["step"]["step_id"], "dry-run");
    assert_eq!(input["step"]["model"], "davinci-001");
    assert_eq!(input["actor"], "acme");
    assert_eq!(input["settings"], json!({}));
}

#[tokio::test]
async fn dry_runs_report_applicability_settings_and_faults() {
    let app = app();
    let cases = [
        (
            "panic traps and fails closed",
            "/api/v1/policies/global/panic/evaluate",
            json!({"step_type": "llm_call"}),
            true,
            "error",
            "block",
        ),
        (
            "a disabled policy still runs",
            "/api/v1/policies/global/dormant/evaluate",
            json!({"step_type": "llm_call"}),
            false,
            "allow",
            "allow",
        ),
        (
            "a step type the policy skips",
            "/api/v1/policies/global/model-allowlist/evaluate",
            json!({"step_type": "tool_call"}),
            false,
            "allow",
            "allow",
        ),
        (
            "tenant settings reach the policy",
            "/api/v1/policies/acme/tool-approval/evaluate",
            json!({"step_type": "tool_call", "step_id": "pay-1",
                   "tool_context": {"tool_name": "wire_transfer"}}),
            true,
            "require_approval",
            "require_approval",
        ),
    ];
    for (name, uri, body, applies, action, verdict) in cases {
        let answer = send(&app, post_json(uri, Some(ACME), &body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {:?}", answer.json());
        let run = answer.json();
        assert_eq!(run["applies"], applies, "{name}");
        assert_eq!(run["action"], action, "{name}");
        assert_eq!(run["verdict"], verdict, "{name}");
        if action == "error" {
            assert_eq!(run["error"]["kind"], "trap", "{name}: {run}");
            assert!(run.get("reason").is_none(), "{name}");
        }
    }
    let run = send(
        &app,
        post_json(
            "/api/v1/policies/acme/tool-approval/evaluate",
            Some(ACME),
            &json!({"step_type": "tool_call", "step_id": "pay-1", "tool_context": {"tool_name": "x"}}),
        ),
    )
    .await
    .json();
    assert_eq!(
        run["input"]["settings"],
        json!({"tools": ["wire_transfer"]})
    );
    assert_eq!(run["input"]["step"]["step_id"], "pay-1");
    assert_eq!(
        run["input"]["step"]["tool_context"]["tool_input"],
        json!({})
    );
}

#[tokio::test]
async fn an_invalid_tenant_username_is_401() {
    let app = app();
    let cases = [
        ("slash", "Basic YmFkL25hbWU6"),
        ("reserved global", "Basic Z2xvYmFsOg=="),
        ("not base64", "Basic ***"),
    ];
    for (name, auth) in cases {
        for request in [
            request(Method::GET, "/api/v1/policies", Some(auth), Body::empty()),
            post_json(
                "/api/v1/policies/global/panic/evaluate",
                Some(auth),
                &json!({"step_type": "x"}),
            ),
        ] {
            let answer = send(&app, request).await;
            assert_envelope(&answer, 401, "UNAUTHORIZED", "Invalid tenant name");
            let _ = name;
        }
    }
    // Ops endpoints need no credentials, so bad ones do not matter there.
    let health = send(
        &app,
        request(
            Method::GET,
            "/health",
            Some("Basic YmFkL25hbWU6"),
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
}
