"""How wcp's errors reach SDK users: AxonFlowError("HTTP <status>: <body>"),
or the typed IdempotencyKeyMismatchError (see test_gates)."""

from __future__ import annotations

from axonflow import (
    CreateWorkflowRequest,
    MarkStepCompletedRequest,
    StepGateRequest,
    StepType,
)

from harness import raises_http

MISSING = "wf_00000000-0000-4000-8000-000000000000"


async def test_an_unknown_workflow_is_404_on_every_method(env):
    client = env.client(env.tenant_name("not-found"))
    gate = StepGateRequest(step_type=StepType.LLM_CALL, model="gpt-4o")
    calls = {
        "get_workflow": client.get_workflow(MISSING),
        "step_gate": client.step_gate(MISSING, "s1", gate),
        "mark_step_completed": client.mark_step_completed(MISSING, "s1", MarkStepCompletedRequest()),
        "complete_workflow": client.complete_workflow(MISSING),
        "fail_workflow": client.fail_workflow(MISSING, "gone"),
        "abort_workflow": client.abort_workflow(MISSING, "gone"),
        "resume_workflow": client.resume_workflow(MISSING),
        "approve_step": client.approve_step(MISSING, "s1", comment="a long enough comment"),
        "reject_step": client.reject_step(MISSING, "s1", reason="a long enough reason"),
    }
    for name, call in calls.items():
        async with raises_http(404, '"code":"NOT_FOUND"', "Workflow not found", what=name):
            await call


async def test_conflicts_are_409_naming_the_code(env):
    client = env.client(env.tenant_name("conflict"))
    workflow_id = (await client.create_workflow(CreateWorkflowRequest(workflow_name="c"))).workflow_id
    await client.fail_workflow(workflow_id, "broken pipe")
    cases = {
        "gate": client.step_gate(workflow_id, "s1", StepGateRequest(step_type=StepType.HUMAN_TASK)),
        "complete": client.complete_workflow(workflow_id),
        "abort": client.abort_workflow(workflow_id),
    }
    for name, call in cases.items():
        async with raises_http(409, '"code":"WORKFLOW_TERMINAL"', "failed", what=name):
            await call


async def test_bad_input_is_400_with_the_reason(env):
    client = env.client(env.tenant_name("bad-input"))
    async with raises_http(400, "INVALID_TRACE_ID", "trace_id exceeds maximum length of 255 characters"):
        await client.create_workflow(CreateWorkflowRequest(workflow_name="t", trace_id="t" * 256))
    async with raises_http(400, "limit must be a positive integer"):
        await client.get_pending_approvals(limit=0)


async def test_the_concurrency_limit_is_429_until_a_workflow_ends(env):
    # The tenants server caps tenant "initech" at two running workflows.
    client = env.tenant_client("capped")
    ids = []
    for n in range(2):
        ids.append(
            (await client.create_workflow(CreateWorkflowRequest(workflow_name=f"batch-{n}"))).workflow_id
        )
    async with raises_http(429, "CONCURRENT_EXECUTION_LIMIT", "(limit 2)"):
        await client.create_workflow(CreateWorkflowRequest(workflow_name="one too many"))
    await client.complete_workflow(ids[0])
    third = await client.create_workflow(CreateWorkflowRequest(workflow_name="batch-2"))
    listed = await client.list_workflows()
    assert listed.total == 3 and third.workflow_id in {w.workflow_id for w in listed.workflows}
    for workflow_id in (ids[1], third.workflow_id):
        await client.abort_workflow(workflow_id, "test cleanup")
