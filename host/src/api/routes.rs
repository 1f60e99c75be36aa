//! Registering handlers at the path and methods their `#[utoipa::path]`
//! documents, so the router and the OpenAPI document share one source.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, on};
use utoipa::openapi::path::HttpMethod;

use super::AppState;

/// A router that remembers the documented operations it serves.
#[derive(Debug, Default)]
pub struct Routes {
    router: Router<AppState>,
    operations: Vec<(String, String)>,
}

impl Routes {
    /// No routes.
    pub fn new() -> Self {
        Routes::default()
    }

    /// Serves `handler` at the path and methods documented by `P`, the
    /// `__path_<handler>` type `#[utoipa::path]` generates.
    pub fn route<P, H, T>(mut self, handler: H) -> Self
    where
        P: utoipa::Path,
        H: Handler<T, AppState>,
        T: 'static,
    {
        let path = P::path();
        let mut filter: Option<MethodFilter> = None;
        for method in P::methods() {
            let (name, one) = match method {
                HttpMethod::Get => ("GET", MethodFilter::GET),
                HttpMethod::Post => ("POST", MethodFilter::POST),
                HttpMethod::Put => ("PUT", MethodFilter::PUT),
                HttpMethod::Delete => ("DELETE", MethodFilter::DELETE),
                HttpMethod::Options => ("OPTIONS", MethodFilter::OPTIONS),
                HttpMethod::Head => ("HEAD", MethodFilter::HEAD),
                HttpMethod::Patch => ("PATCH", MethodFilter::PATCH),
                HttpMethod::Trace => ("TRACE", MethodFilter::TRACE),
            };
            self.operations.push((name.to_owned(), path.clone()));
            filter = Some(filter.map_or(one, |filter| filter.or(one)));
        }
        if let Some(filter) = filter {
            self.router = self.router.route(&path, on(filter, handler));
        }
        self
    }

    /// Adds `other`'s routes.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.operations.extend(other.operations);
        self
    }

    /// Applies `f` to the router (layers); the operations stay.
    pub fn map_router(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }

    /// `(METHOD, path)` of every operation served, in registration order.
    pub fn operations(&self) -> &[(String, String)] {
        &self.operations
    }

    /// The router.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
