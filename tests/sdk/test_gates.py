"""`step_gate` and `mark_step_completed` through the SDK: every step type,
tool context, retry policies, idempotency keys and prior output."""

from __future__ import annotations

from axonflow import (
    CreateWorkflowRequest,
    GateDecision,
    IdempotencyKeyMismatchError,
    MarkStepCompletedRequest,
    RetryPolicy,
    StepGateRequest,
    StepType,
    ToolContext,
)
from axonflow.workflow import PriorCompletionStatus

from harness import PUBLIC_BASE_URL, raises_http

# The example policies each step type runs, in priority order.
POLICIES_BY_TYPE = {
    StepType.LLM_CALL: ["pii-guard", "model-allowlist", "cost-budget"],
    StepType.TOOL_CALL: ["tool-approval", "pii-guard", "cost-budget"],
    StepType.CONNECTOR_CALL: ["pii-guard", "cost-budget"],
    StepType.HUMAN_TASK: ["pii-guard", "cost-budget"],
}


async def new_workflow(client, name: str = "gates") -> str:
    return (await client.create_workflow(CreateWorkflowRequest(workflow_name=name))).workflow_id


async def test_every_step_type_is_gated_by_the_policies_for_its_type(env):
    client = env.client(env.tenant_name("step-types"))
    workflow_id = await new_workflow(client)
    for step_type, policies in POLICIES_BY_TYPE.items():
        step_id = f"{step_type.value}-1"
        request = StepGateRequest(
            step_name=f"a {step_type.value}",
            step_type=step_type,
            step_input={"text": "nothing personal"},
            model="gpt-4o" if step_type == StepType.LLM_CALL else None,
            provider="openai" if step_type == StepType.LLM_CALL else None,
            tool_context=ToolContext(tool_name="web_search") if step_type == StepType.TOOL_CALL else None,
        )
        gate = await client.step_gate(workflow_id, step_id, request)
        assert gate.decision == GateDecision.ALLOW and gate.is_allowed(), gate
        assert gate.step_id == step_id
        assert gate.decision_id == f"dec_{workflow_id}_{step_id}"
        assert gate.reason == "No matching policies"
        assert gate.policy_ids == [] and not gate.policies_matched
        assert [p.policy_name for p in gate.policies_evaluated] == policies, gate.policies_evaluated
        assert all(
            p.action == "allow" and p.policy_id == f"global/{p.policy_name}" for p in gate.policies_evaluated
        )
        assert gate.cached is False and gate.decision_source == "fresh"
        context = gate.retry_context
        assert context is not None
        assert (context.gate_count, context.completion_count) == (1, 0)
        assert context.prior_completion_status == PriorCompletionStatus.NONE
        assert context.prior_output_available is False and context.prior_output is None
        assert context.prior_completion_at is None
        assert context.first_attempt_at <= context.last_attempt_at
        assert context.last_decision == GateDecision.ALLOW and context.idempotency_key == ""
    workflow = await client.get_workflow(workflow_id)
    assert [step.step_type for step in workflow.steps] == list(POLICIES_BY_TYPE)


async def test_tool_context_reaches_the_policies(env):
    client = env.client(env.tenant_name("tool-context"))
    workflow_id = await new_workflow(client)

    def tool(name: str, **tool_input) -> StepGateRequest:
        context = ToolContext(tool_name=name, tool_type="function", tool_input=tool_input)
        return StepGateRequest(step_type=StepType.TOOL_CALL, tool_context=context)

    gate = await client.step_gate(workflow_id, "search", tool("web_search", query="weather"))
    assert gate.is_allowed(), gate

    gate = await client.step_gate(workflow_id, "lookup", tool("crm_lookup", note="SSN 123-45-6789"))
    assert gate.is_blocked() and gate.policy_ids == ["global/pii-guard"], gate
    assert gate.reason == "tool input contains a US social security number"
    assert gate.approval_url is None

    gate = await client.step_gate(workflow_id, "notify", tool("send_email", to="ops@example.test"))
    assert gate.requires_approval() and gate.policy_ids == ["global/tool-approval"], gate
    assert gate.reason == 'tool "send_email" requires human approval'
    assert gate.approval_url == f"{PUBLIC_BASE_URL}/workflows/{workflow_id}/steps/notify/approve"


async def test_an_idempotent_retry_answers_the_recorded_decision(env):
    client = env.client(env.tenant_name("idempotent"))
    workflow_id = await new_workflow(client)
    request = StepGateRequest(step_type=StepType.LLM_CALL, model="davinci-001", step_input={"q": 1})
    first = await client.step_gate(workflow_id, "s1", request)
    assert first.is_blocked() and first.cached is False, first
    for retry_policy in (None, RetryPolicy.IDEMPOTENT):
        retry = request.model_copy(update={"retry_policy": retry_policy})
        again = await client.step_gate(workflow_id, "s1", retry)
        assert again.is_blocked() and again.reason == first.reason, again
        assert again.cached is True and again.decision_source == "cached"
        assert again.policy_ids == first.policy_ids == ["global/model-allowlist"]
        assert again.retry_context.first_attempt_at == first.retry_context.first_attempt_at
    assert again.retry_context.gate_count == 3
    assert (await client.get_workflow(workflow_id)).current_step_index == 1, "no fresh evaluation"

    changed = request.model_copy(update={"step_input": {"q": 2}})
    async with raises_http(409, "STEP_INPUT_MISMATCH", "s1"):
        await client.step_gate(workflow_id, "s1", changed)


async def test_reevaluate_runs_the_policies_again(env):
    client = env.client(env.tenant_name("reevaluate"))
    workflow_id = await new_workflow(client)
    blocked = StepGateRequest(step_type=StepType.LLM_CALL, model="davinci-001")
    assert (await client.step_gate(workflow_id, "s1", blocked)).is_blocked()
    allowed = StepGateRequest(
        step_type=StepType.LLM_CALL, model="gpt-4o", retry_policy=RetryPolicy.REEVALUATE
    )
    gate = await client.step_gate(workflow_id, "s1", allowed)
    assert gate.is_allowed() and gate.cached is False and gate.decision_source == "fresh", gate
    assert gate.retry_context.gate_count == 2
    assert gate.retry_context.last_decision == GateDecision.BLOCK
    workflow = await client.get_workflow(workflow_id)
    assert workflow.current_step_index == 2 and len(workflow.steps) == 1
    assert workflow.steps[0].decision == GateDecision.ALLOW


async def test_an_idempotency_key_is_recorded_and_must_match(env):
    client = env.client(env.tenant_name("idempotency-key"))
    workflow_id = await new_workflow(client)
    key = "payment:wire:acct4471:invoice-7721"
    request = StepGateRequest(step_type=StepType.CONNECTOR_CALL, idempotency_key=key)
    gate = await client.step_gate(workflow_id, "pay", request)
    assert gate.retry_context.idempotency_key == key
    again = await client.step_gate(workflow_id, "pay", request)
    assert again.cached and again.retry_context.idempotency_key == key

    def gate_with(other_key):
        return client.step_gate(workflow_id, "pay", request.model_copy(update={"idempotency_key": other_key}))

    mismatches = [
        ("gate, other key", gate_with("other"), "other"),
        ("gate, no key", gate_with(None), ""),
        ("complete, no key", client.mark_step_completed(workflow_id, "pay", MarkStepCompletedRequest()), ""),
        ("complete, no body", client.mark_step_completed(workflow_id, "pay"), ""),
    ]
    for name, call, received in mismatches:
        try:
            await call
        except IdempotencyKeyMismatchError as error:
            assert error.workflow_id == workflow_id and error.step_id == "pay", name
            assert error.expected_idempotency_key == key, (name, error.expected_idempotency_key)
            assert error.received_idempotency_key == received, (name, error.received_idempotency_key)
        else:
            raise AssertionError(f"{name}: no IdempotencyKeyMismatchError")
    await client.mark_step_completed(workflow_id, "pay", MarkStepCompletedRequest(idempotency_key=key))

    # A step gated without a key refuses a completion that brings one.
    await client.step_gate(workflow_id, "plain", StepGateRequest(step_type=StepType.HUMAN_TASK))
    try:
        await client.mark_step_completed(workflow_id, "plain", MarkStepCompletedRequest(idempotency_key=key))
    except IdempotencyKeyMismatchError as error:
        assert (error.expected_idempotency_key, error.received_idempotency_key) == ("", key)
    else:
        raise AssertionError("no IdempotencyKeyMismatchError for a key the gate never had")


async def test_include_prior_output_returns_the_last_completion(env):
    client = env.client(env.tenant_name("prior-output"))
    workflow_id = await new_workflow(client)
    request = StepGateRequest(step_type=StepType.CONNECTOR_CALL, step_input={"table": "customers"})
    await client.step_gate(workflow_id, "extract", request)
    gate = await client.step_gate(workflow_id, "extract", request, include_prior_output=True)
    assert gate.retry_context.prior_completion_status == PriorCompletionStatus.GATED_NOT_COMPLETED
    assert gate.retry_context.prior_output is None

    output = {"rows_extracted": 15000, "files": ["a.csv", "b.csv"]}
    await client.mark_step_completed(workflow_id, "extract", MarkStepCompletedRequest(output=output))
    gate = await client.step_gate(workflow_id, "extract", request, include_prior_output=True)
    context = gate.retry_context
    assert context.prior_completion_status == PriorCompletionStatus.COMPLETED
    assert context.prior_output_available is True and context.prior_output == output
    assert context.prior_completion_at is not None and context.completion_count == 1

    gate = await client.step_gate(workflow_id, "extract", request)
    assert gate.retry_context.prior_output_available is True
    assert gate.retry_context.prior_output is None, "only sent when asked for"


async def test_mark_step_completed_with_and_without_metrics(env):
    client = env.client(env.tenant_name("step-complete"))
    workflow_id = await new_workflow(client)
    request = StepGateRequest(step_type=StepType.LLM_CALL, model="gpt-4o")
    await client.step_gate(workflow_id, "bare", request)
    await client.mark_step_completed(workflow_id, "bare")
    await client.step_gate(workflow_id, "measured", request)
    metrics = MarkStepCompletedRequest(
        output={"result": "done"}, metadata={"node": "llm"}, tokens_in=150, tokens_out=45, cost_usd=11.5
    )
    await client.mark_step_completed(workflow_id, "measured", metrics)

    workflow = await client.get_workflow(workflow_id)
    assert all(step.completed_at is not None for step in workflow.steps), workflow.steps
    again = await client.step_gate(workflow_id, "measured", request)
    assert again.retry_context.completion_count == 1

    # The reported cost counts: the next step takes the workflow over the
    # cost-budget example's $10 budget.
    gate = await client.step_gate(workflow_id, "next", request.model_copy(update={"cost_usd": 0.5}))
    assert gate.requires_approval() and gate.policy_ids == ["global/cost-budget"], gate
    assert gate.reason == "projected cost $12.00 exceeds the budget of $10.00"

    async with raises_http(404, "Step not found"):
        await client.mark_step_completed(workflow_id, "never-gated")
