"""The Temporal-activity and Airflow-task patterns of AxonFlow's external
orchestrator guide, as plain functions: the same SDK calls in the same order,
without Temporal or Airflow themselves."""

from __future__ import annotations

import asyncio

from axonflow import AxonFlow
from axonflow.workflow import (
    CreateWorkflowRequest,
    MarkStepCompletedRequest,
    StepGateRequest,
    StepType,
    WorkflowStatus,
)


class ApplicationError(Exception):
    """Stands in for temporalio.exceptions.ApplicationError."""


class AirflowSkipException(Exception):
    """Stands in for airflow.exceptions.AirflowSkipException."""


def completed(result: str) -> MarkStepCompletedRequest:
    """What both of the guide's examples report once their step has run."""
    return MarkStepCompletedRequest(output={"result": result}, tokens_in=150, tokens_out=45, cost_usd=0.0023)


async def call_llm(prompt: str) -> str:
    return f"summary of {prompt!r}"


# --- Temporal -------------------------------------------------------------


async def governed_llm_call(
    endpoint: str, tenant: str, workflow_id: str, step_name: str, prompt: str, model: str = "gpt-4"
) -> str:
    """The guide's `@activity.defn governed_llm_call`."""
    async with AxonFlow(endpoint=endpoint, client_id=tenant) as client:
        gate = await client.step_gate(
            workflow_id=workflow_id,
            step_id=step_name,
            request=StepGateRequest(
                step_name=step_name,
                step_type=StepType.LLM_CALL,
                model=model,
                provider="openai",
            ),
        )
        if gate.is_blocked():
            raise ApplicationError(f"Blocked by policy: {gate.reason}")

        result = await call_llm(prompt)
        await client.mark_step_completed(
            workflow_id=workflow_id,
            step_id=step_name,
            request=completed(result),
        )
        return result


async def temporal_workflow(endpoint: str, tenant: str, activities: list[tuple[str, str]]) -> str:
    """The Temporal workflow function: registers the AxonFlow workflow, runs
    each activity, and completes or fails it in its completion handler."""
    async with AxonFlow(endpoint=endpoint, client_id=tenant) as client:
        created = await client.create_workflow(CreateWorkflowRequest(workflow_name="temporal-research"))
        try:
            for step_name, model in activities:
                await governed_llm_call(endpoint, tenant, created.workflow_id, step_name, "Q3 report", model)
        except ApplicationError as error:
            await client.fail_workflow(created.workflow_id, str(error))
        else:
            await client.complete_workflow(created.workflow_id)
        return created.workflow_id


async def test_temporal_activities_run_when_allowed_and_fail_the_workflow_when_blocked(env):
    tenant = env.tenant_name("temporal")
    url = env.community.url
    client = env.client(tenant)

    done = await temporal_workflow(url, tenant, [("research", "gpt-4"), ("draft", "gpt-4o")])
    workflow = await client.get_workflow(done)
    assert workflow.status == WorkflowStatus.COMPLETED and workflow.total_steps == 2
    assert [(s.step_id, s.completed_at is not None) for s in workflow.steps] == [
        ("research", True),
        ("draft", True),
    ]

    failed = await temporal_workflow(url, tenant, [("research", "gpt-4"), ("draft", "text-davinci-003")])
    workflow = await client.get_workflow(failed)
    assert workflow.status == WorkflowStatus.FAILED
    assert [(s.step_id, s.decision.value) for s in workflow.steps] == [
        ("research", "allow"),
        ("draft", "block"),
    ]
    assert workflow.steps[1].completed_at is None, "a blocked activity never runs"


# --- Airflow --------------------------------------------------------------


def governed_step(endpoint: str, tenant: str, workflow_id: str, step_name: str, **kwargs) -> str:
    """The guide's `@task governed_step`: a synchronous task that runs its
    own event loop. Unlike the guide it names its model, because the
    model-allowlist example blocks an llm_call that names none."""

    async def run():
        async with AxonFlow(endpoint=endpoint, client_id=tenant) as client:
            gate = await client.step_gate(
                workflow_id=workflow_id,
                step_id=step_name,
                request=StepGateRequest(
                    step_name=step_name,
                    step_type=StepType.LLM_CALL,
                    model="gpt-4o",
                    step_input=kwargs.get("step_input", {}),
                ),
            )
            if gate.is_blocked():
                # A blocked branch is skipped, not failed.
                raise AirflowSkipException(f"Blocked: {gate.reason}")
            result = f"{step_name} done"
            await client.mark_step_completed(
                workflow_id=workflow_id,
                step_id=step_name,
                request=completed(result),
            )
            return result

    return asyncio.run(run())


def create_task(endpoint: str, tenant: str) -> str:
    """The DAG's first task: creates the workflow; its id goes to XCom."""

    async def run() -> str:
        async with AxonFlow(endpoint=endpoint, client_id=tenant) as client:
            created = await client.create_workflow(CreateWorkflowRequest(workflow_name="airflow-dag"))
            return created.workflow_id

    return asyncio.run(run())


async def test_airflow_tasks_share_the_workflow_and_skip_a_blocked_branch(env):
    tenant = env.tenant_name("airflow")
    url = env.community.url
    # Airflow runs each task in its own process; threads give each its own
    # event loop here, as asyncio.run in a task does there.
    xcom = {"workflow_id": await asyncio.to_thread(create_task, url, tenant)}
    results, skipped = [], []
    dag = [("extract", {}), ("enrich", {"step_input": {"note": "card 4111 1111 1111 1111"}}), ("load", {})]
    for step_name, task_kwargs in dag:
        try:
            results.append(
                await asyncio.to_thread(
                    governed_step, url, tenant, xcom["workflow_id"], step_name, **task_kwargs
                )
            )
        except AirflowSkipException as skip:
            skipped.append((step_name, str(skip)))
    assert results == ["extract done", "load done"]
    assert skipped == [("enrich", "Blocked: step input contains a payment card number")]

    async with AxonFlow(endpoint=url, client_id=tenant) as client:
        await client.complete_workflow(xcom["workflow_id"])
        workflow = await client.get_workflow(xcom["workflow_id"])
    assert workflow.status == WorkflowStatus.COMPLETED and workflow.total_steps == 3
    assert [(s.step_id, s.decision.value, s.completed_at is not None) for s in workflow.steps] == [
        ("extract", "allow", True),
        ("enrich", "block", False),
        ("load", "allow", True),
    ]
