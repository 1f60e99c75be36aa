"""Real decisions from the example policies, as the SDK receives them."""

from __future__ import annotations

from axonflow import CreateWorkflowRequest, GateDecision, StepGateRequest, StepType, ToolContext


async def gate_once(env, hint: str, request: StepGateRequest):
    client = env.client(env.tenant_name(hint))
    workflow_id = (await client.create_workflow(CreateWorkflowRequest(workflow_name=hint))).workflow_id
    return await client.step_gate(workflow_id, "s1", request)


def matched(gate) -> dict[str, str]:
    return {p.policy_id: p.action for p in gate.policies_matched or []}


async def test_pii_guard_blocks_a_social_security_number_without_echoing_it(env):
    request = StepGateRequest(
        step_type=StepType.LLM_CALL,
        model="gpt-4o",
        step_input={"prompt": "Customer SSN is 123-45-6789, summarise the account"},
    )
    gate = await gate_once(env, "pii-guard", request)
    assert gate.decision == GateDecision.BLOCK and gate.is_blocked(), gate
    assert gate.policy_ids == ["global/pii-guard"]
    assert gate.reason == "step input contains a US social security number"
    assert "6789" not in gate.model_dump_json()
    assert matched(gate) == {"global/pii-guard": "block"}


async def test_pii_guard_blocks_a_card_number_in_a_connector_call(env):
    request = StepGateRequest(
        step_type=StepType.CONNECTOR_CALL,
        step_input={"row": {"card": "4111 1111 1111 1111"}},
    )
    gate = await gate_once(env, "pii-card", request)
    assert gate.is_blocked() and gate.reason == "step input contains a payment card number", gate


async def test_model_allowlist_blocks_an_unlisted_model_by_name(env):
    gate = await gate_once(
        env, "model-allowlist", StepGateRequest(step_type=StepType.LLM_CALL, model="davinci-001")
    )
    assert gate.is_blocked() and gate.policy_ids == ["global/model-allowlist"], gate
    assert gate.reason == 'model "davinci-001" is not on the allowlist'
    assert matched(gate) == {"global/model-allowlist": "block"}


async def test_tool_approval_holds_a_listed_tool_for_a_human(env):
    for tool in ("send_email", "delete_user", "transfer_funds"):
        request = StepGateRequest(step_type=StepType.TOOL_CALL, tool_context=ToolContext(tool_name=tool))
        gate = await gate_once(env, f"tool-{tool.replace('_', '-')}", request)
        assert gate.decision == GateDecision.REQUIRE_APPROVAL and gate.requires_approval(), gate
        assert gate.policy_ids == ["global/tool-approval"]
        assert gate.reason == f'tool "{tool}" requires human approval'


async def test_cost_budget_holds_over_the_budget_and_blocks_over_the_hard_limit(env):
    cases = [
        (9.99, GateDecision.ALLOW, None),
        (25.0, GateDecision.REQUIRE_APPROVAL, "budget of $10.00"),
        (150.0, GateDecision.BLOCK, "hard limit of $100.00"),
    ]
    for cost, decision, reason in cases:
        request = StepGateRequest(step_type=StepType.HUMAN_TASK, cost_usd=cost)
        gate = await gate_once(env, "cost-budget", request)
        assert gate.decision == decision, (cost, gate)
        if reason:
            assert gate.policy_ids == ["global/cost-budget"], gate
            assert gate.reason == f"projected cost ${cost:.2f} exceeds the {reason}"


async def test_a_block_outranks_an_approval_and_names_both_policies(env):
    request = StepGateRequest(
        step_type=StepType.TOOL_CALL,
        tool_context=ToolContext(tool_name="send_email", tool_input={"body": "SSN 123-45-6789"}),
    )
    gate = await gate_once(env, "combined", request)
    assert gate.is_blocked(), gate
    assert gate.policy_ids == ["global/tool-approval", "global/pii-guard"]
    assert gate.reason == "tool input contains a US social security number"
    assert matched(gate) == {"global/tool-approval": "require_approval", "global/pii-guard": "block"}
    assert gate.approval_url is None
