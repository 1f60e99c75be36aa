//! The body of a dry run: a gate body, an optional step id and an
//! optional workflow.

use serde::Deserialize;
use utoipa::ToSchema;

use super::{GateBody, InputError, PolicyInput, StepInput, WorkflowInput};
use crate::fields;

/// A dry-run body: a gate body plus an optional `step_id` and `workflow`.
#[derive(Debug, Clone, Default)]
pub struct DryRunBody {
    /// The gate fields.
    pub gate: GateBody,
    /// Step id; `dry-run` when absent.
    pub step_id: Option<String>,
    /// The workflow the step belongs to; dry-run defaults for missing fields.
    pub workflow: Option<WorkflowInput>,
}

/// A dry-run body in the OpenAPI document: a gate body and the fields a
/// dry run adds.
impl utoipa::PartialSchema for DryRunBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, Ref};
        AllOfBuilder::new()
            .item(Ref::from_schema_name(GateBody::name()))
            .item(Ref::from_schema_name(DryRunExtra::name()))
            .into()
    }
}

impl ToSchema for DryRunBody {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((GateBody::name().into_owned(), GateBody::schema()));
        GateBody::schemas(schemas);
        schemas.push((DryRunExtra::name().into_owned(), DryRunExtra::schema()));
        DryRunExtra::schemas(schemas);
    }
}

/// The fields a dry run adds to a gate body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DryRunExtra {
    /// The step's id; `dry-run` when absent.
    #[serde(default)]
    #[schema(schema_with = fields::optional_text)]
    step_id: Option<String>,
    /// The workflow the step belongs to; dry-run defaults for missing fields.
    #[serde(default)]
    #[schema(nullable)]
    workflow: Option<WorkflowInput>,
}

impl DryRunBody {
    /// Parses a dry-run body from JSON text. The gate fields are read on their
    /// own first so that wrong types and duplicate keys are caught as they
    /// are on the gate endpoint.
    pub fn from_json(text: &[u8]) -> Result<Self, InputError> {
        let body_error = |error: serde_json::Error| {
            InputError::bad_request(format!("Invalid request body: {error}"))
        };
        let gate: GateBody = serde_json::from_slice(text).map_err(body_error)?;
        let extra: DryRunExtra = serde_json::from_slice(text).map_err(body_error)?;
        Ok(DryRunBody {
            gate,
            step_id: extra.step_id,
            workflow: extra.workflow,
        })
    }

    /// Validates the gate fields and builds the input a policy sees for a
    /// first gate of the step by `actor`.
    pub fn into_input(self, actor: &str) -> Result<PolicyInput, InputError> {
        let gate = self.gate.validate()?;
        let workflow = self.workflow.unwrap_or_default();
        let step = StepInput {
            step_id: self.step_id.unwrap_or_else(|| "dry-run".into()),
            step_name: gate.step_name,
            step_type: gate.step_type,
            step_index: workflow.steps_gated.saturating_add(1),
            model: gate.model,
            provider: gate.provider,
            step_input: gate.step_input,
            tool_context: gate.tool_context,
            tokens_in: gate.tokens_in,
            tokens_out: gate.tokens_out,
            cost_usd: gate.cost_usd,
            gate_count: 1,
            completion_count: 0,
        };
        Ok(PolicyInput {
            workflow,
            step,
            actor: actor.into(),
        })
    }
}
