"""Human approvals through the SDK: approve, reject, and the pending list."""

from __future__ import annotations

from axonflow import (
    ApprovalStatus,
    CreateWorkflowRequest,
    GateDecision,
    StepGateRequest,
    StepType,
    ToolContext,
    WorkflowStatus,
)

from harness import raises_http

SEND_EMAIL = StepGateRequest(
    step_name="Email the customer",
    step_type=StepType.TOOL_CALL,
    tool_context=ToolContext(tool_name="send_email", tool_input={"to": "customer"}),
)


async def held(client, name: str = "approvals", step_id: str = "notify") -> str:
    """A new workflow whose step `step_id` waits for approval."""
    workflow_id = (await client.create_workflow(CreateWorkflowRequest(workflow_name=name))).workflow_id
    assert (await client.step_gate(workflow_id, step_id, SEND_EMAIL)).requires_approval()
    return workflow_id


async def test_approve_needs_a_comment_of_ten_characters_and_unlocks_the_step(env):
    tenant = env.tenant_name("approve")
    client = env.client(tenant)
    workflow_id = await held(client)
    for comment in ("", "too short", "   short   "):
        async with raises_http(400, "BAD_REQUEST", "Comment is required (minimum 10 characters)"):
            await client.approve_step(workflow_id, "notify", comment=comment)

    approved = await client.approve_step(workflow_id, "notify", comment="0123456789")
    assert (
        approved.status == "approved" and approved.workflow_id == workflow_id and approved.step_id == "notify"
    )
    step = (await client.get_workflow(workflow_id)).steps[0]
    assert step.approval_status == ApprovalStatus.APPROVED
    assert step.approved_by == tenant, "the actor is the Basic username in community mode"
    assert step.decision == GateDecision.REQUIRE_APPROVAL, "the stored decision stays"

    gate = await client.step_gate(workflow_id, "notify", SEND_EMAIL)
    assert gate.is_allowed() and gate.cached, gate
    assert gate.reason == 'Previously approved: tool "send_email" requires human approval'
    async with raises_http(409, "NOT_PENDING"):
        await client.approve_step(workflow_id, "notify", comment="approving a second time")
    await client.complete_workflow(workflow_id)


async def test_reject_needs_a_reason_of_ten_characters_and_aborts_the_workflow(env):
    client = env.client(env.tenant_name("reject"))
    workflow_id = await held(client)
    for reason in ("", "too short"):
        async with raises_http(400, "BAD_REQUEST", "Reason is required (minimum 10 characters)"):
            await client.reject_step(workflow_id, "notify", reason=reason)

    rejected = await client.reject_step(workflow_id, "notify", reason="Recipient is not a customer")
    assert rejected.status == "rejected" and rejected.step_id == "notify"
    workflow = await client.get_workflow(workflow_id)
    assert workflow.status == WorkflowStatus.ABORTED
    assert workflow.steps[0].approval_status == ApprovalStatus.REJECTED
    async with raises_http(409, "NOT_PENDING"):
        await client.approve_step(workflow_id, "notify", comment="changed my mind after all")
    async with raises_http(409, "WORKFLOW_TERMINAL", "aborted"):
        await client.resume_workflow(workflow_id)


async def test_only_a_held_step_can_be_approved(env):
    client = env.client(env.tenant_name("approve-what"))
    workflow_id = (await client.create_workflow(CreateWorkflowRequest(workflow_name="a"))).workflow_id
    await client.step_gate(workflow_id, "plain", StepGateRequest(step_type=StepType.HUMAN_TASK))
    async with raises_http(409, "NO_APPROVAL_NEEDED"):
        await client.approve_step(workflow_id, "plain", comment="nothing to approve here")
    async with raises_http(404, "Step not found"):
        await client.approve_step(workflow_id, "missing", comment="nothing to approve here")
    async with raises_http(404, "Step not found"):
        await client.reject_step(workflow_id, "missing", reason="nothing to reject here")


async def test_a_held_step_keeps_the_workflow_from_completing_and_other_steps_from_gating(env):
    client = env.client(env.tenant_name("held"))
    workflow_id = await held(client)
    async with raises_http(409, "APPROVAL_PENDING", "notify"):
        await client.complete_workflow(workflow_id)
    async with raises_http(409, "APPROVAL_PENDING", "notify"):
        await client.step_gate(workflow_id, "next", StepGateRequest(step_type=StepType.HUMAN_TASK))
    again = await client.step_gate(workflow_id, "notify", SEND_EMAIL)
    assert again.requires_approval() and again.cached, "a retry is still held"


async def test_pending_approvals_lists_the_callers_holds_newest_first(env):
    client = env.client(env.tenant_name("pending"))
    assert (await client.get_pending_approvals()).pending_approvals == []
    ids = [await held(client, name=f"pending-{n}", step_id=f"notify-{n}") for n in range(3)]

    pending = await client.get_pending_approvals()
    assert pending.count == 3
    assert [a.workflow_id for a in pending.pending_approvals] == list(reversed(ids))
    entry = pending.pending_approvals[0]
    assert (entry.workflow_name, entry.step_id, entry.step_index) == ("pending-2", "notify-2", 1)
    assert (entry.step_name, entry.step_type) == ("Email the customer", "tool_call")
    assert entry.decision == "require_approval" and entry.approval_status == "pending"
    assert entry.decision_reason == 'tool "send_email" requires human approval'
    assert [p["policy_id"] for p in entry.policies_matched] == ["global/tool-approval"]
    assert entry.step_input == {} and entry.created_at

    limited = await client.get_pending_approvals(limit=2)
    assert len(limited.pending_approvals) == 2 and limited.count == 3
    await client.approve_step(ids[0], "notify-0", comment="Recipient list checked")
    await client.abort_workflow(ids[1], "no longer needed")
    remaining = await client.get_pending_approvals()
    assert [a.workflow_id for a in remaining.pending_approvals] == [ids[2]] and remaining.count == 1

    stranger = env.client(env.tenant_name("pending-stranger"))
    assert (await stranger.get_pending_approvals()).count == 0
