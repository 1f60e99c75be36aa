//! The HTTP edge: router, middleware, extractors, errors, one module per
//! resource. Handlers translate HTTP to domain calls and back; the domain
//! (gate, workflow, approval, policy set, reload, store, runtime) knows
//! nothing of HTTP, and nothing outside this module names it.
//!
//! Processing order (contract §1.8): route (404/405) → `OPTIONS` preflight →
//! readiness (503, `/api/v1/` only) → auth and role (extractors) → path →
//! body cap (413) → JSON (400) → fields (400) → state (404/409/429).
//!
//! - `state`: [`AppState`]. `error`: [`ApiError`] and its envelope.
//! - `extract`: body cap, JSON and path extractors with our rejections.
//! - `paths`: the step id's rule and the path parameters' schema types.
//! - `routes`: [`Routes`], registration from `#[utoipa::path]`.
//! - `listen`: the accept loop, connection limits and bounded shutdown.
//! - `auth`: the caller extractors. `ops`: `/health`, `/ready`, `/metrics`
//!   (the series are [`crate::telemetry`]'s).
//! - `policies`: policy list, get, dry run. `openapi`: `/openapi.json`.
//! - `audit`: the audit chain, listed and verified.
//! - `workflows`: create, get, list. `lifecycle`: complete, fail, abort,
//!   resume. `steps`: the gate and the step complete. `checkpoints`: the
//!   checkpoint list and both resumes. `approvals`: approve, reject,
//!   pending.
//!
//! Each handler parses, makes one domain call (a [`crate::gate::Gates`]
//! method, a [`crate::workflow`] function, a store read) and answers; the
//! domain's errors become [`ApiError`]s at this edge (`error`).

mod approvals;
mod audit;
mod auth;
mod checkpoints;
mod error;
pub mod extract;
mod lifecycle;
pub mod listen;
pub mod openapi;
pub mod ops;
mod paging;
mod paths;
pub mod policies;
mod routes;
mod state;
mod steps;
mod upload;
pub mod workflows;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use routes::Routes;
pub use state::AppState;
pub use upload::{MODULE_LIMIT, PolicyUpload, UPLOAD_LIMIT, UploadKind};

/// Every route, with the documented operations it serves.
pub fn routes(state: &AppState) -> Routes {
    let api_v1 = policies::routes()
        .merge(audit::routes())
        .merge(workflows::routes())
        .merge(lifecycle::routes())
        .merge(steps::routes())
        .merge(checkpoints::routes())
        .merge(approvals::routes())
        .map_router(|router| router.route_layer(from_fn_with_state(state.clone(), require_ready)));
    ops::routes().merge(openapi::routes()).merge(api_v1)
}

/// The whole HTTP service.
pub fn app(state: AppState) -> Router {
    routes(&state)
        .into_router()
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(route_not_found)
        .layer(from_fn_with_state(state.clone(), count_request))
        .layer(from_fn_with_state(state.clone(), allow_origin))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // Request spans only: a 5xx is logged once, with its cause, where
        // the handler builds it; the expected 503s of start-up are not errors.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .with_state(state)
}

async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// A known route with another method: a CORS preflight for `OPTIONS`
/// (before readiness and auth, contract §1.7), else 405. The router adds
/// `Allow` with the route's methods.
async fn method_not_allowed(method: Method) -> Response {
    if method != Method::OPTIONS {
        return ApiError::MethodNotAllowed.into_response();
    }
    (
        StatusCode::OK,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, PUT, DELETE, OPTIONS",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
        .into_response()
}

/// `/api/v1/` routes answer 503 until the server is ready.
async fn require_ready(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.is_ready() {
        return ApiError::NotReady.into_response();
    }
    next.run(request).await
}

/// Echoes an allowlisted `Origin` on every response, errors included; any
/// other origin gets no CORS header at all (never `*`).
async fn allow_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .filter(|origin| {
            let origin = origin.as_bytes();
            state
                .config
                .cors_origins
                .iter()
                .any(|allowed| allowed.as_bytes() == origin)
        })
        .cloned();
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// Counts requests by route template (never the raw path: ids would make
/// the series unbounded), method and status.
async fn count_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // Extension methods are arbitrary tokens: one label for all of them.
    let method = match *request.method() {
        Method::GET | Method::HEAD | Method::POST | Method::PUT | Method::DELETE => {
            request.method().as_str()
        }
        Method::OPTIONS | Method::PATCH | Method::TRACE | Method::CONNECT => {
            request.method().as_str()
        }
        _ => "OTHER",
    }
    .to_owned();
    let response = next.run(request).await;
    state
        .metrics
        .http_request(&route, &method, response.status().as_u16());
    response
}
