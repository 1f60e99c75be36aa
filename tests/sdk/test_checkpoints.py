"""Checkpoints through the SDK: listed per gated step, and resumed from."""

from __future__ import annotations

from axonflow import CreateWorkflowRequest, StepGateRequest, StepType, ToolContext, WorkflowStatus

from harness import raises_http

ALLOWED = StepGateRequest(step_type=StepType.LLM_CALL, model="gpt-4o")
BLOCKED = StepGateRequest(step_type=StepType.LLM_CALL, model="davinci-001")
HELD = StepGateRequest(step_type=StepType.TOOL_CALL, tool_context=ToolContext(tool_name="send_email"))


async def test_every_gated_step_leaves_a_checkpoint(env):
    client = env.client(env.tenant_name("checkpoints"))
    workflow_id = (await client.create_workflow(CreateWorkflowRequest(workflow_name="cp"))).workflow_id
    assert (await client.get_checkpoints(workflow_id)).checkpoints == []
    for step_id, request in (("draft", ALLOWED), ("legacy", BLOCKED), ("notify", HELD)):
        await client.step_gate(workflow_id, step_id, request)

    listed = await client.get_checkpoints(workflow_id)
    assert listed.workflow_id == workflow_id
    rows = [
        (
            c.step_id,
            c.step_index,
            c.step_type,
            c.checkpoint_type,
            c.gate_decision,
            c.is_resumable,
            c.resume_count,
        )
        for c in listed.checkpoints
    ]
    assert rows == [
        ("draft", 1, "llm_call", "step_gate", "allow", True, 0),
        ("legacy", 2, "llm_call", "step_gate", "block", False, 0),
        ("notify", 3, "tool_call", "approval_boundary", "require_approval", True, 0),
    ]
    assert listed.checkpoints[1].gate_reason == 'model "davinci-001" is not on the allowlist'
    async with raises_http(409, "APPROVAL_HOLD"):
        await client.resume_from_last_checkpoint(workflow_id)


async def test_an_aborted_workflow_resumes_from_its_last_resumable_checkpoint(env):
    client = env.client(env.tenant_name("checkpoint-resume"))
    workflow_id = (await client.create_workflow(CreateWorkflowRequest(workflow_name="cp"))).workflow_id
    await client.step_gate(workflow_id, "draft", ALLOWED)
    await client.step_gate(workflow_id, "legacy", BLOCKED)
    await client.abort_workflow(workflow_id, "operator stopped it")

    resumed = await client.resume_from_last_checkpoint(workflow_id)
    assert (resumed.workflow_id, resumed.resumed_from_checkpoint, resumed.resumed_from_index) == (
        workflow_id,
        "draft",
        1,
    )
    assert (resumed.new_decision, resumed.decision_source, resumed.resume_count) == ("allow", "fresh", 1)
    assert (await client.get_workflow(workflow_id)).status == WorkflowStatus.IN_PROGRESS

    checkpoints = {c.step_id: c.id for c in (await client.get_checkpoints(workflow_id)).checkpoints}
    again = await client.resume_from_checkpoint(workflow_id, checkpoints["draft"])
    assert again.resume_count == 2 and again.message == f"Resumed from checkpoint {checkpoints['draft']}"
    async with raises_http(409, "NOT_RESUMABLE", f"checkpoint {checkpoints['legacy']} is not resumable"):
        await client.resume_from_checkpoint(workflow_id, checkpoints["legacy"])
    async with raises_http(404, "Checkpoint not found"):
        await client.resume_from_checkpoint(workflow_id, 999_999)

    await client.complete_workflow(workflow_id)
    async with raises_http(409, "NOT_RESUMABLE", "terminal state: completed"):
        await client.resume_from_last_checkpoint(workflow_id)
