//! What the workflow routes read from their paths: the step id's rule,
//! the schema types the OpenAPI document states path parameters with, and
//! the 404 of a workflow that is missing or another's.

use super::ApiError;
use crate::fields::{self, LONG_TEXT};

pub use crate::refusal::WORKFLOW_NOT_FOUND;

/// `step_id`: 1 to [`LONG_TEXT`] characters (contract §1.3, which counts
/// bytes; characters are what the OpenAPI document can state).
pub fn check_step_id(step_id: &str) -> Result<(), ApiError> {
    if step_id.is_empty() {
        return Err(ApiError::BadRequest("step_id is required".into()));
    }
    match fields::too_long("step_id", Some(step_id), LONG_TEXT) {
        Some(message) => Err(ApiError::BadRequest(message)),
        None => Ok(()),
    }
}

fields::schema_type!(
    /// A step id in a path, for the OpenAPI document: the rule of
    /// [`check_step_id`].
    StepId => fields::required_long_text
);

fields::schema_type!(
    /// A checkpoint id in a path, for the OpenAPI document.
    CheckpointId => fields::checkpoint_id
);
