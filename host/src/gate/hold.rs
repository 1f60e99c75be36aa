//! The other writes that share a workflow's gate lock: deciding a held
//! step (contract §2.10, §2.11) and resuming from a checkpoint (§2.14,
//! §2.15). Each is one [`Gates`] method with the gate's shape: take the
//! workflow's lock, apply its due expiries, read, evaluate if needed, and
//! record in one transaction that checks the state again.

use super::resume::{self, ResumeCall, Resumed};
use super::{GateError, Gates, record};
use crate::approval::{self, ApprovalCall};
use crate::store::{DueScope, StepRow};

impl Gates {
    /// Approves or rejects the held step of `call`; returns the step as
    /// recorded. Serialised with the workflow's gates, so a decision never
    /// races a re-gate of the same step.
    pub async fn decide_hold(&self, call: &ApprovalCall) -> Result<StepRow, GateError> {
        let _serialised = self.locks().lock(&call.workflow_id).await;
        self.expire_workflow(&call.workflow_id).await?;
        let job = call.clone();
        let step = self
            .store()
            .submit_async(move |tx| approval::decide(tx, &job))
            .await?;
        Ok(step)
    }

    /// Resumes the workflow of `call` from a checkpoint: plans on a read,
    /// runs the stored gate's policies afresh, and records the revival,
    /// the re-gate and the resume in one transaction.
    pub async fn resume(&self, call: &ResumeCall) -> Result<Resumed, GateError> {
        let _serialised = self.locks().lock(&call.workflow_id).await;
        self.expire_workflow(&call.workflow_id).await?;
        let planned = call.clone();
        let plan = self
            .store()
            .read_async(move |conn| Ok(resume::plan(conn, &planned)))
            .await
            .map_err(|error| GateError::Flow(error.into()))??;
        let input = record::policy_input(&plan.view, &plan.call);
        let fresh = self.evaluate(&call.tenant, input).await?;
        let job = call.clone();
        let resumed = self
            .store()
            .submit_async(move |tx| resume::record(tx, &job, &plan, fresh))
            .await?;
        Ok(resumed)
    }

    /// Applies the due approval expiries of `workflow_id`, whoever owns it:
    /// every request that reads or changes a workflow does so first, after
    /// its input is valid.
    pub async fn expire_workflow(&self, workflow_id: &str) -> Result<(), GateError> {
        self.expiry()
            .apply(DueScope::Workflow(workflow_id.to_owned()))
            .await
            .map(drop)
            .map_err(GateError::Expiry)
    }

    /// Applies the due approval expiries of every workflow of `tenant` and
    /// `org`: for requests that read many workflows (lists, pending).
    pub async fn expire_tenant(&self, tenant: &str, org: &str) -> Result<(), GateError> {
        let scope = DueScope::Tenant {
            tenant: tenant.to_owned(),
            org: org.to_owned(),
        };
        self.expiry()
            .apply(scope)
            .await
            .map(drop)
            .map_err(GateError::Expiry)
    }
}
