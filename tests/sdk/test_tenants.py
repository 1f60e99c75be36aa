"""Tenants mode: SDK clients with client_id/client_secret against a server
started with `--tenants FILE` holding two tenants, acme and globex."""

from __future__ import annotations

from axonflow import (
    AxonFlow,
    CreateWorkflowRequest,
    ListWorkflowsOptions,
    StepGateRequest,
    StepType,
    ToolContext,
    WorkflowStatus,
)

from harness import adapter_waiting_for_approval, raises_http

SEND_EMAIL = StepGateRequest(step_type=StepType.TOOL_CALL, tool_context=ToolContext(tool_name="send_email"))


async def test_another_tenants_client_cannot_see_the_first_tenants_workflows(env):
    acme = env.tenant_client("acme")
    created = await acme.create_workflow(
        CreateWorkflowRequest(workflow_name="acme-private", trace_id="acme-trace")
    )
    workflow_id = created.workflow_id
    assert (await acme.step_gate(workflow_id, "notify", SEND_EMAIL)).requires_approval()
    assert (await acme.get_workflow(workflow_id)).workflow_name == "acme-private"

    globex = env.tenant_client("globex")
    globex_oncall = env.tenant_client("globex-oncall")
    foreign = {
        "get_workflow": globex.get_workflow(workflow_id),
        "step_gate": globex.step_gate(workflow_id, "s2", StepGateRequest(step_type=StepType.HUMAN_TASK)),
        "mark_step_completed": globex.mark_step_completed(workflow_id, "notify"),
        "complete_workflow": globex.complete_workflow(workflow_id),
        "abort_workflow": globex.abort_workflow(workflow_id, "not yours"),
        "approve_step": globex_oncall.approve_step(workflow_id, "notify", comment="approving someone else's"),
    }
    for name, call in foreign.items():
        async with raises_http(404, "Workflow not found", what=name):
            await call
    listed = await globex.list_workflows(ListWorkflowsOptions(trace_id="acme-trace"))
    assert listed.total == 0 and listed.workflows == []
    assert workflow_id not in {w.workflow_id for w in (await globex.list_workflows()).workflows}
    assert (await globex_oncall.get_pending_approvals()).count == 0

    acme_pending = await env.tenant_client("acme-oncall").get_pending_approvals()
    assert [a.workflow_id for a in acme_pending.pending_approvals] == [workflow_id]
    assert (await acme.get_workflow(workflow_id)).status == WorkflowStatus.IN_PROGRESS, "untouched"


async def test_roles_decide_who_runs_and_who_approves(env):
    acme = env.tenant_client("acme")
    oncall = env.tenant_client("acme-oncall")
    async with raises_http(403, "Role member required"):
        await oncall.create_workflow(CreateWorkflowRequest(workflow_name="approvers do not run workflows"))

    adapter, step_id, waiting = await adapter_waiting_for_approval(acme, "acme-outreach")
    async with raises_http(403, "Role approver required"):
        await acme.approve_step(adapter.workflow_id, step_id, comment="members cannot approve")
    await oncall.approve_step(adapter.workflow_id, step_id, comment="On-call reviewed the recipients")
    assert await waiting is True
    steps = (await oncall.get_workflow(adapter.workflow_id)).steps
    assert steps[0].approved_by == "acme-oncall", "the approver is the client, from its credentials"
    await adapter.complete_workflow()


async def test_wrong_or_missing_credentials_are_401(env):
    async with raises_http(401, "Invalid credentials"):
        await env.tenant_client("globex", secret="not the secret").list_workflows()
    async with AxonFlow(endpoint=env.tenants.url) as anonymous:
        async with raises_http(401, "Invalid credentials"):
            await anonymous.list_workflows()
