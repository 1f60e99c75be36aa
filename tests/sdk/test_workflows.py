"""Workflow lifecycle through the SDK: create, get, list, complete, fail,
abort and resume."""

from __future__ import annotations

import asyncio
import re

from axonflow import (
    AxonFlow,
    CreateWorkflowRequest,
    ListWorkflowsOptions,
    StepGateRequest,
    StepType,
    ToolContext,
    WorkflowSource,
    WorkflowStatus,
)

from harness import raises_http

WORKFLOW_ID = re.compile(r"^wf_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_create_returns_the_id_status_start_and_trace_id(env):
    client = env.client(env.tenant_name("create"))
    created = await client.create_workflow(
        CreateWorkflowRequest(
            workflow_name="nightly-data-pipeline",
            source=WorkflowSource.LANGCHAIN,
            metadata={"environment": "production", "team": "data-eng"},
            trace_id="datadog-trace-abc123",
        )
    )
    assert WORKFLOW_ID.match(created.workflow_id), created.workflow_id
    assert created.workflow_name == "nightly-data-pipeline"
    assert created.status == WorkflowStatus.IN_PROGRESS
    assert created.started_at is not None and created.started_at.tzinfo is not None
    assert created.trace_id == "datadog-trace-abc123"
    assert created.source == WorkflowSource.LANGCHAIN


async def test_get_returns_what_create_stored_and_the_gated_steps(env):
    client = env.client(env.tenant_name("get"))
    metadata = {"customer_id": "cust-123", "priority": 2, "tags": ["a", "b"], "nested": {"x": None}}
    created = await client.create_workflow(
        CreateWorkflowRequest(workflow_name="support-agent", metadata=metadata, trace_id="otel-1")
    )
    workflow = await client.get_workflow(created.workflow_id)
    assert workflow.workflow_id == created.workflow_id
    assert workflow.workflow_name == "support-agent"
    assert workflow.source == WorkflowSource.EXTERNAL, "the SDK sends external by default"
    assert workflow.status == WorkflowStatus.IN_PROGRESS
    assert workflow.metadata == metadata
    assert workflow.trace_id == "otel-1"
    assert workflow.started_at == created.started_at
    assert workflow.current_step_index == 0
    assert workflow.steps == [] and workflow.total_steps is None and workflow.completed_at is None

    for step_id in ("fetch", "summarise"):
        await client.step_gate(
            created.workflow_id,
            step_id,
            StepGateRequest(step_name=step_id.title(), step_type=StepType.CONNECTOR_CALL),
        )
    workflow = await client.get_workflow(created.workflow_id)
    assert workflow.current_step_index == 2
    assert [(s.step_id, s.step_index, s.step_name) for s in workflow.steps] == [
        ("fetch", 1, "Fetch"),
        ("summarise", 2, "Summarise"),
    ]
    step = workflow.steps[0]
    assert step.step_type == StepType.CONNECTOR_CALL
    assert step.decision.value == "allow"
    assert step.approval_status is None and step.completed_at is None
    assert step.gate_checked_at >= workflow.started_at


async def test_list_filters_by_status_source_and_trace_id(env):
    client = env.client(env.tenant_name("list-filters"))
    ids = {}
    for name, source, trace_id in [
        ("a", WorkflowSource.LANGGRAPH, "trace-a"),
        ("b", WorkflowSource.LANGGRAPH, "trace-b"),
        ("c", WorkflowSource.CREWAI, "trace-c"),
        ("d", None, None),
    ]:
        request = CreateWorkflowRequest(workflow_name=name, source=source, trace_id=trace_id)
        ids[name] = (await client.create_workflow(request)).workflow_id
    await client.complete_workflow(ids["a"])
    await client.abort_workflow(ids["c"], "not needed any more")

    async def names(**options) -> list[str]:
        listed = await client.list_workflows(ListWorkflowsOptions(**options))
        assert listed.total == len(listed.workflows), listed
        return sorted(workflow.workflow_name for workflow in listed.workflows)

    assert await names() == ["a", "b", "c", "d"]
    assert await names(status=WorkflowStatus.IN_PROGRESS) == ["b", "d"]
    assert await names(status=WorkflowStatus.COMPLETED) == ["a"]
    assert await names(status=WorkflowStatus.ABORTED) == ["c"]
    assert await names(status=WorkflowStatus.FAILED) == []
    assert await names(source=WorkflowSource.LANGGRAPH) == ["a", "b"]
    assert await names(source=WorkflowSource.EXTERNAL) == ["d"]
    assert await names(source=WorkflowSource.LANGCHAIN) == []
    assert await names(trace_id="trace-c") == ["c"]
    assert await names(source=WorkflowSource.LANGGRAPH, status=WorkflowStatus.IN_PROGRESS) == ["b"]
    listed = await client.list_workflows()
    assert {w.workflow_id for w in listed.workflows} == set(ids.values()), "no options: all"


async def test_list_pages_newest_first_with_limit_and_offset(env):
    client = env.client(env.tenant_name("list-pages"))
    names = [f"run-{n}" for n in range(5)]
    for name in names:
        await client.create_workflow(CreateWorkflowRequest(workflow_name=name))
    newest_first = list(reversed(names))

    pages = []
    for offset in (0, 2, 4):
        page = await client.list_workflows(ListWorkflowsOptions(limit=2, offset=offset))
        assert page.total == 5 and page.limit == 2 and page.offset == offset, page
        assert all(workflow.steps == [] for workflow in page.workflows)
        pages.append([workflow.workflow_name for workflow in page.workflows])
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]

    everything = await client.list_workflows(ListWorkflowsOptions(limit=100))
    assert [w.workflow_name for w in everything.workflows] == newest_first
    beyond = await client.list_workflows(ListWorkflowsOptions(offset=10))
    assert beyond.workflows == [] and beyond.total == 5


async def test_complete_counts_the_steps_and_a_second_complete_is_409(env):
    client = env.client(env.tenant_name("complete"))
    workflow_id = (await client.create_workflow(CreateWorkflowRequest(workflow_name="etl"))).workflow_id
    for step_id in ("extract", "transform", "load"):
        request = StepGateRequest(step_type=StepType.CONNECTOR_CALL)
        assert (await client.step_gate(workflow_id, step_id, request)).is_allowed()
    await client.complete_workflow(workflow_id)
    workflow = await client.get_workflow(workflow_id)
    assert workflow.status == WorkflowStatus.COMPLETED and workflow.is_terminal()
    assert workflow.total_steps == 3
    assert workflow.completed_at is not None and workflow.completed_at >= workflow.started_at
    async with raises_http(409, "WORKFLOW_TERMINAL", "already in terminal state: completed"):
        await client.complete_workflow(workflow_id)


async def test_fail_and_abort_end_the_workflow_with_or_without_a_reason(env):
    client = env.client(env.tenant_name("fail-abort"))

    async def new() -> str:
        return (await client.create_workflow(CreateWorkflowRequest(workflow_name="job"))).workflow_id

    cases = [
        (client.fail_workflow, "Step extract-data timed out after 300s", WorkflowStatus.FAILED),
        (client.fail_workflow, None, WorkflowStatus.FAILED),
        (client.abort_workflow, "Cancelled by operator", WorkflowStatus.ABORTED),
        (client.abort_workflow, None, WorkflowStatus.ABORTED),
    ]
    for end, reason, status in cases:
        workflow_id = await new()
        await end(workflow_id, reason)
        workflow = await client.get_workflow(workflow_id)
        assert workflow.status == status, (end.__name__, reason, workflow.status)
        assert workflow.completed_at is not None
        async with raises_http(409, "WORKFLOW_TERMINAL", status.value):
            await end(workflow_id, "a second time")
        async with raises_http(409, "WORKFLOW_TERMINAL"):
            await client.step_gate(workflow_id, "late", StepGateRequest(step_type=StepType.LLM_CALL))


async def test_resume_checks_the_workflow_can_go_on(env):
    client = env.client(env.tenant_name("resume"))
    workflow_id = (await client.create_workflow(CreateWorkflowRequest(workflow_name="r"))).workflow_id
    await client.resume_workflow(workflow_id)

    held = StepGateRequest(
        step_type=StepType.TOOL_CALL,
        tool_context=ToolContext(tool_name="send_email", tool_input={"to": "ops"}),
    )
    assert (await client.step_gate(workflow_id, "notify", held)).requires_approval()
    async with raises_http(409, "APPROVAL_PENDING", "notify"):
        await client.resume_workflow(workflow_id)
    await client.approve_step(workflow_id, "notify", comment="Recipient list checked")
    await client.resume_workflow(workflow_id)
    assert (await client.get_workflow(workflow_id)).status == WorkflowStatus.IN_PROGRESS

    await client.complete_workflow(workflow_id)
    async with raises_http(409, "WORKFLOW_TERMINAL", "cannot resume workflow in terminal state: completed"):
        await client.resume_workflow(workflow_id)


async def test_the_sync_client_runs_a_workflow_end_to_end(env):
    tenant = env.tenant_name("sync")

    def run() -> str:
        # AxonFlow.sync runs its own event loop, as scripts and Airflow tasks use it.
        client = AxonFlow.sync(endpoint=env.community.url, client_id=tenant)
        try:
            workflow_id = client.create_workflow(CreateWorkflowRequest(workflow_name="sync")).workflow_id
            gate = client.step_gate(workflow_id, "s1", StepGateRequest(step_type=StepType.HUMAN_TASK))
            assert gate.is_allowed(), gate
            client.mark_step_completed(workflow_id, "s1")
            client.complete_workflow(workflow_id)
            listed = client.list_workflows(ListWorkflowsOptions(status=WorkflowStatus.COMPLETED))
            assert [w.workflow_id for w in listed.workflows] == [workflow_id]
            return workflow_id
        finally:
            client.close()

    workflow_id = await asyncio.to_thread(run)
    workflow = await env.client(tenant).get_workflow(workflow_id)
    assert workflow.status == WorkflowStatus.COMPLETED and workflow.total_steps == 1
