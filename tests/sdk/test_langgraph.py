"""The SDK's LangGraph adapter (AxonFlowLangGraphAdapter) against wcp."""

from __future__ import annotations

from axonflow import ApprovalStatus, WorkflowSource, WorkflowStatus
from axonflow.adapters import AxonFlowLangGraphAdapter, WorkflowBlockedError

from harness import adapter_waiting_for_approval, raises_http


async def test_the_adapter_runs_a_graph_to_completion(env):
    client = env.client(env.tenant_name("langgraph"))
    async with AxonFlowLangGraphAdapter(client, "code-review-pipeline") as adapter:
        workflow_id = await adapter.start_workflow(metadata={"repo": "wcp"}, trace_id="langsmith-run-abc123")
        assert await adapter.check_gate("analyze", "llm_call", model="gpt-4o", provider="openai")
        await adapter.step_completed(
            "analyze", output={"findings": 3}, tokens_in=150, tokens_out=45, cost_usd=0.0023
        )
        assert await adapter.check_tool_gate("web_search", "function", tool_input={"query": "CVE-2024"})
        await adapter.tool_completed("web_search", output={"results": ["a"]})
        assert await adapter.check_gate("review", "human_task", step_input={"pr": 42})
        await adapter.step_completed("review")

    workflow = await client.get_workflow(workflow_id)
    assert workflow.status == WorkflowStatus.COMPLETED, "leaving the block completes the workflow"
    assert workflow.source == WorkflowSource.LANGGRAPH and workflow.trace_id == "langsmith-run-abc123"
    assert workflow.metadata == {"repo": "wcp"} and workflow.total_steps == 3
    assert [step.step_id for step in workflow.steps] == [
        "step-1-analyze",
        "step-2-tools-web_search",
        "step-3-review",
    ]
    assert all(step.completed_at is not None for step in workflow.steps)


async def test_check_gate_raises_blocked_and_the_adapter_aborts_on_the_way_out(env):
    client = env.client(env.tenant_name("langgraph-blocked"))
    adapter = AxonFlowLangGraphAdapter(client, "summariser")
    try:
        async with adapter:
            await adapter.start_workflow()
            await adapter.check_gate("generate", "llm_call", model="davinci-001")
    except WorkflowBlockedError as error:
        assert error.step_id == "step-1-generate"
        assert error.reason == 'model "davinci-001" is not on the allowlist'
        assert error.policy_ids == ["global/model-allowlist"]
        assert str(error) == "Step 'generate' blocked: model \"davinci-001\" is not on the allowlist"
    else:
        raise AssertionError("no WorkflowBlockedError")
    workflow = await client.get_workflow(adapter.workflow_id)
    assert workflow.status == WorkflowStatus.ABORTED

    lenient = AxonFlowLangGraphAdapter(client, "lenient", auto_block=False)
    await lenient.start_workflow()
    assert await lenient.check_gate("leak", "connector_call", step_input={"ssn": "123-45-6789"}) is False
    await lenient.fail_workflow("input held personal data")
    assert (await client.get_workflow(lenient.workflow_id)).status == WorkflowStatus.FAILED


async def test_wait_for_approval_returns_true_once_a_second_client_approves(env):
    tenant = env.tenant_name("langgraph-approve")
    adapter, step_id, waiting = await adapter_waiting_for_approval(env.client(tenant))

    reviewer = env.client(tenant)
    pending = await reviewer.get_pending_approvals()
    assert [(a.workflow_id, a.step_id) for a in pending.pending_approvals] == [(adapter.workflow_id, step_id)]
    await reviewer.approve_step(adapter.workflow_id, step_id, comment="Recipient list checked")
    assert await waiting is True

    assert await adapter.check_tool_gate(
        "send_email", "function", step_id=step_id, tool_input={"to": "customer"}
    )
    await adapter.tool_completed("send_email", step_id=step_id, output={"sent": True})
    await adapter.complete_workflow()
    assert (await reviewer.get_workflow(adapter.workflow_id)).status == WorkflowStatus.COMPLETED


async def test_wait_for_approval_returns_false_once_a_second_client_rejects(env):
    tenant = env.tenant_name("langgraph-reject")
    adapter, step_id, waiting = await adapter_waiting_for_approval(env.client(tenant))
    await env.client(tenant).reject_step(adapter.workflow_id, step_id, reason="Customer opted out of email")
    assert await waiting is False
    workflow = await adapter.client.get_workflow(adapter.workflow_id)
    assert workflow.status == WorkflowStatus.ABORTED


async def test_an_expired_approval_reads_as_rejected_so_wait_for_approval_returns_false(env):
    # The expiring server holds approvals for 300 ms. wcp stores the hold
    # as expired but sends "rejected" (+ approval_expired): SDK 9.5.0's
    # ApprovalStatus has no "expired" and would raise on it.
    tenant = env.tenant_name("langgraph-expiry")
    client = env.client(tenant, server=env.expiring)
    adapter, step_id, waiting = await adapter_waiting_for_approval(client, "slow-review")
    assert await waiting is False

    workflow = await client.get_workflow(adapter.workflow_id)
    assert workflow.status == WorkflowStatus.ABORTED
    step = workflow.steps[0]
    assert step.approval_status == ApprovalStatus.REJECTED and step.approved_by == "system:auto-expired"
    assert (await client.get_pending_approvals()).count == 0
    async with raises_http(409, "APPROVAL_EXPIRED"):
        await client.approve_step(adapter.workflow_id, step_id, comment="too late to approve this")
