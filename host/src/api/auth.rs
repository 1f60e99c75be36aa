//! The HTTP edge of [`crate::auth`]: the [`Caller`] and [`Authorized`]
//! extractors, which read the `Authorization` header and the peer address,
//! and the answers of an [`AuthError`].

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState, listen};
use crate::auth::{Access, AuthError, Authorized, Caller};

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthorized(message) => ApiError::Unauthorized(message),
            AuthError::Forbidden(message) => ApiError::Forbidden(message),
            AuthError::Throttled { retry_after } => ApiError::TooManyRequests {
                code: "TOO_MANY_REQUESTS",
                message: error.to_string(),
                retry_after,
            },
            AuthError::Internal(detail) => ApiError::internal("Failed to authenticate", detail),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let source = listen::peer(&parts.extensions).map(|peer| peer.ip());
        // A header that is not visible ASCII is as good as none.
        let authorization = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        Ok(state.auth.authenticate(authorization, source).await?)
    }
}

impl<A: Access + Send + Sync> FromRequestParts<AppState> for Authorized<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require::<A>()?;
        Ok(Authorized(caller, PhantomData))
    }
}
