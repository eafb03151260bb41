"""Budget admission that waits: a call that fits its budget on settled spend but not with
other calls' open reservations waits (STEP_WAITING budget:<name>) instead of failing, so a
concurrent fan-out gets as many calls out of a budget as the same calls one after another."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podium.governance.policy import Policy
from podium.testing import create_workflow, of_type, run_to_end, serving, step_of
from podium.v1 import event_pb2, run_pb2

E, R = event_pb2, run_pb2
CALLS = 40
# Worst cases a few times what a call costs, as when max_tokens is generous.
MAX_TOKENS = 100


def fan_out(concurrency: int) -> dict[str, Any]:
    return {
        "steps": [
            {
                "id": "ask",
                "agent": "llm",
                "for_each": {
                    "items": "input.tickets",
                    "max_concurrency": concurrency,
                    "tolerated_failure_percent": 100,
                },
                "input": {"ticket": "item"},
                "config": {
                    "prompt": "Summarise ticket {{ input.ticket }} in one line.",
                    "max_tokens": MAX_TOKENS,
                    "options": {"latency_ms": 5},
                },
            }
        ]
    }


async def run_under_budget(db: Path, limit: str, concurrency: int) -> tuple[Any, list[Any]]:
    rules = Policy.model_validate({"budgets": [{"name": "cap", "scope": "server", "limit": limit}]})
    async with serving(str(db), policy=rules) as (_, stubs):
        await create_workflow(stubs, "tickets", fan_out(concurrency))
        tickets = [f"T-{n:03d}" for n in range(CALLS)]
        return await run_to_end(stubs, "tickets", {"tickets": tickets})


def outcomes(run: Any) -> tuple[int, int]:
    step = step_of(run, "ask")
    return step.items_succeeded, step.items_failed


async def test_a_concurrent_fan_out_waits_for_reservations_instead_of_failing(
    tmp_path: Path,
) -> None:
    # What one call costs, then a budget that pays for 13 of them one after another (their
    # worst cases, at max_tokens, are a few times what they cost).
    probe, _ = await run_under_budget(tmp_path / "probe.db", "100", 1)
    cost = probe.cost.units + probe.cost.nanos / 1e9
    limit = f"{cost / CALLS * 17:.9f}"

    one_by_one, _ = await run_under_budget(tmp_path / "sequential.db", limit, 1)
    four_at_once, events = await run_under_budget(tmp_path / "concurrent.db", limit, 4)

    done_sequentially, _ = outcomes(one_by_one)
    done_concurrently, failed = outcomes(four_at_once)
    assert done_sequentially >= 10
    # As many calls as one after another: waiting, not failing, while others hold room.
    assert done_concurrently == done_sequentially
    assert failed == CALLS - done_concurrently
    waits = [e for e in of_type(events, E.RUN_EVENT_TYPE_STEP_WAITING) if "budget:cap" in e.message]
    assert waits, "no call waited for the budget"
    # Those that could never fit failed with the budget's figures, not retried.
    failures = [
        e.failure for e in of_type(events, E.RUN_EVENT_TYPE_ITEM_FAILED) if e.HasField("failure")
    ]
    assert failures and all(f.type == "podium.BudgetExceeded" for f in failures)
    assert all("limit" in f.message and "spent" in f.message for f in failures)
    assert not any(f.retryable for f in failures)
    # The hard ceiling held.
    spent = four_at_once.cost.units + four_at_once.cost.nanos / 1e9
    assert spent <= float(limit) + 1e-9


async def test_calls_route_to_the_cheaper_target_once_the_budget_passes_a_threshold(
    tmp_path: Path,
) -> None:
    step = {
        "id": "ask",
        "agent": "llm",
        "config": {
            "prompt": "Draft a reply.",
            "model": "sim-large",
            "max_tokens": 50,
            "fallbacks": [
                {
                    "provider": "simulated",
                    "model": "sim-small",
                    "when_budget_above": {"budget": "monthly", "fraction": 0.15},
                }
            ],
        },
    }
    probe_rules = Policy.model_validate({"budgets": []})
    async with serving(str(tmp_path / "probe.db"), policy=probe_rules) as (_, stubs):
        await create_workflow(stubs, "reply", {"steps": [step]})
        probe, _ = await run_to_end(stubs, "reply")
    large_cost = probe.cost.units + probe.cost.nanos / 1e9
    assert large_cost > 0
    rules = Policy.model_validate(
        {
            "budgets": [
                {
                    "name": "monthly",
                    "scope": "workflow:reply",
                    "limit": f"{large_cost * 12:.9f}",
                    "period": "month",
                }
            ]
        }
    )
    async with serving(str(tmp_path / "routed.db"), policy=rules) as (_, stubs):
        await create_workflow(stubs, "reply", {"steps": [step]})
        answered = []
        for _ in range(4):
            run, events = await run_to_end(stubs, "reply")
            assert run.state == R.RUN_STATE_SUCCEEDED, step_of(run, "ask").failure
            (call,) = of_type(events, E.RUN_EVENT_TYPE_LLM_CALL)
            answered.append((call.model, call.message))
    # A twelfth of the budget per sim-large call: the third call finds it 17 % used.
    assert [model for model, _ in answered] == ["sim-large", "sim-large", "sim-small", "sim-small"]
    assert answered[0][1] == ""
    assert answered[2][1].startswith(
        "routed to simulated/sim-small: budget monthly is 1"
    ) and answered[2][1].endswith("used (at or above 15%)")


async def test_a_malformed_routing_threshold_is_refused_at_create_workflow(tmp_path: Path) -> None:
    import grpc

    from podium.testing import field_violations

    step = {
        "id": "ask",
        "agent": "llm",
        "config": {
            "prompt": "hi",
            "fallbacks": [
                {
                    "provider": "simulated",
                    "model": "sim-small",
                    "when_budget_above": {"budget": "monthly", "fraction": 1.5},
                }
            ],
        },
    }
    async with serving(str(tmp_path / "p.db")) as (_, stubs):
        try:
            await create_workflow(stubs, "bad", {"steps": [step]})
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field_violations(error) == [
                (
                    "spec.steps[0].config.fallbacks[0].when_budget_above.fraction",
                    "violates the agent's config_schema: 1.5 is greater than the maximum of 1",
                )
            ]
        else:
            raise AssertionError("accepted a fraction of 1.5")
