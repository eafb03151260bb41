"""`podium quotas|budgets|spend|breakers` and `runs start --max-cost` against a real
`podium serve --policy FILE` process, and `podium serve` refusing a bad policy in one line."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from podium.client import AsyncClient, PodiumError
from podium.testing import ServerProcess
from podium.testing.process import CLI
from podium.v1 import control_service_pb2

C = control_service_pb2

# The fixtures of tests/e2e/conftest.py.
StartServing = Callable[..., ServerProcess]
OneLineError = Callable[..., None]

POLICY = """
quotas:
  - {name: sim-rpm, scope: "provider:simulated", dimension: requests, limit: 600, burst: 50}
  - {name: sim-calls, scope: "provider:simulated", dimension: concurrency, limit: 4}
budgets:
  - {name: daily, scope: server, limit: "5.00", period: day, warn_fraction: 0.5}
  - {name: llm-total, scope: "agent:llm", limit: "20"}
breakers:
  overrides:
    "model:simulated/sim-large": {failure_threshold: 2, cooldown: 30}
"""

LLM_WORKFLOW = """
workflow_id: ask
spec:
  steps:
    - id: ask
      agent: llm
      config:
        model: sim-small
        max_tokens: 50
        prompt: Say hello.
"""


@pytest.fixture
def governed(tmp_path: Path, start_serving: StartServing) -> ServerProcess:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    return start_serving(args=("--policy", str(policy_file)))


def ok_json(served: ServerProcess, *args: str) -> dict[str, object]:
    result = served.cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def ok(served: ServerProcess, *args: str) -> str:
    result = served.cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


# -- against a real server -------------------------------------------------------------------


def test_quotas_and_budgets_list_the_policy(governed: ServerProcess) -> None:
    quotas = {q["name"]: q for q in ok_json(governed, "quotas")["quotas"]}  # type: ignore[attr-defined]
    assert set(quotas) == {"sim-rpm", "sim-calls"}
    assert quotas["sim-rpm"]["scope"] == {"kind": "SCOPE_KIND_PROVIDER", "value": "simulated"}
    assert quotas["sim-rpm"]["dimension"] == "QUOTA_DIMENSION_REQUESTS"
    assert quotas["sim-rpm"]["limit"] == 600
    assert quotas["sim-rpm"]["burst"] == 50
    assert quotas["sim-calls"]["dimension"] == "QUOTA_DIMENSION_CONCURRENCY"

    table = ok(governed, "quotas")
    assert "sim-rpm" in table and "provider:simulated" in table and "600/min" in table
    assert "4 concurrent" in table

    budgets = {b["name"]: b for b in ok_json(governed, "budgets")["budgets"]}  # type: ignore[attr-defined]
    assert set(budgets) == {"daily", "llm-total"}
    assert budgets["daily"]["scope"] == {"kind": "SCOPE_KIND_SERVER"}
    assert budgets["daily"]["limit"]["units"] == "5"  # int64 is a string in proto JSON
    assert budgets["daily"]["period"] == "BUDGET_PERIOD_DAY"
    assert budgets["daily"]["warn_fraction"] == 0.5
    assert budgets["llm-total"]["scope"] == {"kind": "SCOPE_KIND_AGENT", "value": "llm"}

    table = ok(governed, "budgets")
    assert "daily" in table and "$5.00" in table and "50%" in table and "agent:llm" in table

    # Nothing has called a model yet: the configured providers' breakers, all closed and
    # unused; no spend.
    listed: list[dict[str, object]] = ok_json(governed, "breakers")["breakers"]  # type: ignore[assignment]
    assert "provider:simulated" in {b["name"] for b in listed}
    assert all(b["state"] == "BREAKER_STATE_CLOSED" and not b.get("calls") for b in listed)
    assert "provider:simulated" in ok(governed, "breakers")
    assert ok_json(governed, "spend").get("entries", []) == []
    assert "total: $0.00" in ok(governed, "spend")


def test_set_and_delete_quotas_and_budgets(
    governed: ServerProcess, one_line_error: OneLineError
) -> None:
    out = ok(
        governed,
        "budgets",
        "set",
        "weekly-ish",
        "--scope",
        "provider:simulated",
        "--limit",
        "2.50",
        "--period",
        "month",
        "--time-zone",
        "Europe/Paris",
        "--warn",
        "0.9",
    )
    assert "budget weekly-ish" in out and "$2.50" in out
    budgets = {b["name"]: b for b in ok_json(governed, "budgets")["budgets"]}  # type: ignore[attr-defined]
    added = budgets["weekly-ish"]
    assert added["scope"] == {"kind": "SCOPE_KIND_PROVIDER", "value": "simulated"}
    assert (added["limit"]["units"], added["limit"]["nanos"]) == ("2", 500_000_000)
    assert added["period"] == "BUDGET_PERIOD_MONTH"
    assert added["time_zone"] == "Europe/Paris"
    assert added["warn_fraction"] == 0.9
    assert "weekly-ish" in ok(governed, "budgets")

    quota = ok_json(
        governed,
        "quotas",
        "set",
        "sim-tokens",
        "--scope",
        "model:simulated/sim-small",
        "--dimension",
        "tokens",
        "--limit",
        "10000",
    )
    assert quota["scope"] == {"kind": "SCOPE_KIND_MODEL", "value": "simulated/sim-small"}
    assert "sim-tokens" in ok(governed, "quotas")

    assert "deleted quota sim-tokens" in ok(governed, "quotas", "delete", "sim-tokens")
    assert "deleted budget weekly-ish" in ok(governed, "budgets", "delete", "weekly-ish")
    assert "sim-tokens" not in ok(governed, "quotas")
    assert "weekly-ish" not in ok(governed, "budgets")
    one_line_error(governed.cli("quotas", "delete", "sim-tokens"), "NOT_FOUND")
    one_line_error(governed.cli("budgets", "delete", "nope"), "NOT_FOUND", "nope")


def test_bad_values_are_one_line_errors_naming_the_field(
    governed: ServerProcess, one_line_error: OneLineError
) -> None:
    negative = governed.cli("budgets", "set", "b", "--scope", "server", "--limit=-1")
    assert negative.returncode == 1
    one_line_error(negative, "INVALID_ARGUMENT", "budget.limit")

    planet = governed.cli("budgets", "set", "b", "--scope", "planet:x", "--limit", "1")
    assert planet.returncode == 1
    one_line_error(planet, "INVALID_ARGUMENT", "budget.scope", "planet")

    quota = governed.cli(
        "quotas", "set", "q", "--scope", "provider:x", "--dimension", "requests", "--limit=-5"
    )
    assert quota.returncode == 1
    one_line_error(quota, "INVALID_ARGUMENT", "quota.limit")

    model = governed.cli(
        "quotas", "set", "q", "--scope", "agent:llm", "--dimension", "concurrency", "--limit", "1.5"
    )
    one_line_error(model, "INVALID_ARGUMENT", "quota")

    zone = governed.cli(
        "budgets", "set", "b", "--scope", "server", "--limit", "1", "--time-zone", "Mars/Olympus"
    )
    one_line_error(zone, "INVALID_ARGUMENT", "budget.time_zone", "Mars/Olympus")

    # Malformed syntax is a usage error (exit 2), still one line.
    usage = governed.cli("budgets", "set", "b", "--scope", "server", "--limit", "lots")
    assert usage.returncode == 2
    one_line_error(usage, "--limit")
    one_line_error(governed.cli("spend", "--scope", "planet"), "scope", "planet")

    # Nothing was stored.
    names = [b["name"] for b in ok_json(governed, "budgets")["budgets"]]  # type: ignore[attr-defined]
    assert "b" not in names


def test_alerts_are_shown_set_and_switched_off(
    governed: ServerProcess, one_line_error: OneLineError
) -> None:
    assert ok(governed, "alerts").strip() == "alerts are off"
    shown = ok(
        governed,
        "alerts",
        "set",
        "--kind",
        "quota_wait",
        "--kind",
        "breaker_opened",
        "--wait-after",
        "15",
        "--threshold",
        "0.5",
    )
    assert "url: metrics only" in shown
    assert "kinds: quota_wait, breaker_opened" in shown
    assert "budget thresholds: 0.5" in shown and "wait after: 15s" in shown
    assert ok_json(governed, "alerts")["alerts"]["wait_after"] == "15s"  # type: ignore[index]

    # A secret the server does not hold: one line naming the field; nothing changes.
    refused = governed.cli("alerts", "set", "--url", "https://hooks.example.com", "--secret", "k")
    assert refused.returncode == 1
    one_line_error(refused, "INVALID_ARGUMENT", "alerts.secret", "'k' is not configured")
    late = governed.cli("alerts", "set", "--threshold", "1.5")
    one_line_error(late, "INVALID_ARGUMENT", "alerts.budget_thresholds")
    assert "wait after: 15s" in ok(governed, "alerts")

    assert ok(governed, "alerts", "off").strip() == "alerts are off"
    assert ok(governed, "alerts").strip() == "alerts are off"


def test_resetting_an_unknown_breaker_is_not_found(
    governed: ServerProcess, one_line_error: OneLineError
) -> None:
    result = governed.cli("breakers", "reset", "provider:nope")
    assert result.returncode == 1
    one_line_error(result, "NOT_FOUND", "provider:nope")


def test_an_llm_run_shows_in_spend_and_breakers(
    governed: ServerProcess, tmp_path: Path, one_line_error: OneLineError
) -> None:
    workflow = tmp_path / "ask.yaml"
    workflow.write_text(LLM_WORKFLOW)
    ok(governed, "workflows", "apply", "-f", str(workflow))
    started = governed.cli("runs", "start", "ask", "--max-cost", "0.50", "--watch")
    assert started.returncode == 0, started.stderr + started.stdout
    assert "LLM_CALL" in started.stdout
    assert "simulated/sim-small" in started.stdout

    spend = ok_json(governed, "spend")
    total = spend["total"]
    assert isinstance(total, dict)
    assert Decimal(total.get("units", "0")) * 10**9 + total.get("nanos", 0) > 0
    entries = spend["entries"]
    assert isinstance(entries, list)
    scopes = {(e["scope"]["kind"], e["scope"].get("value", "")) for e in entries}
    assert ("SCOPE_KIND_SERVER", "") in scopes
    assert ("SCOPE_KIND_PROVIDER", "simulated") in scopes
    assert all(int(e["calls"]) >= 1 for e in entries)

    only = ok_json(governed, "spend", "--scope", "provider:simulated", "--period", "month")
    assert [e["scope"]["kind"] for e in only["entries"]] == ["SCOPE_KIND_PROVIDER"]  # type: ignore[attr-defined]
    table = ok(governed, "spend")
    assert "provider:simulated" in table and "total: $" in table

    budgets = {b["name"]: b for b in ok_json(governed, "budgets")["budgets"]}  # type: ignore[attr-defined]
    assert budgets["daily"]["spent"].get("nanos", 0) > 0

    breakers = {b["name"]: b for b in ok_json(governed, "breakers")["breakers"]}  # type: ignore[attr-defined]
    assert breakers["provider:simulated"]["state"] == "BREAKER_STATE_CLOSED"
    assert "CLOSED" in ok(governed, "breakers")
    reset = ok_json(governed, "breakers", "reset", "provider:simulated")
    assert reset["state"] == "BREAKER_STATE_CLOSED"

    shown = ok(governed, "runs", "list", "--workflow", "ask", "--json")
    name = json.loads(shown)["runs"][0]["name"]
    assert "$0.50" in ok(governed, "runs", "get", name)

    # A max cost the server refuses is one line too.
    refused = governed.cli("runs", "start", "ask", "--max-cost=-1")
    one_line_error(refused, "INVALID_ARGUMENT", "max_cost")


def test_serve_refuses_a_bad_policy_in_one_line(
    tmp_path: Path, one_line_error: OneLineError
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """
            quotas:
              - {name: q, scope: "provider:simulated", dimension: requests, limit: -1}
            """
        )
    )
    # Refused before it ever listens: any address will do.
    address, db = "127.0.0.1:0", str(tmp_path / "p.db")
    result = subprocess.run(
        [*CLI, "serve", "--address", address, "--db", db, "--policy", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    one_line_error(result, "quotas[0].limit")


@pytest.mark.parametrize(
    ("alerts", "field"),
    [
        # A secret the server does not hold: refused at start, not at every alert.
        ('{url: "http://127.0.0.1:9/alerts", secret: nowhere}', "alerts.secret"),
        ('{url: "ftp://example.com/alerts", secret: k}', "alerts.url"),
        ("{kinds: [budget_threshold, budget_exploded]}", "alerts.kinds[1]"),
    ],
)
def test_serve_refuses_a_bad_alerts_section_in_one_line(
    tmp_path: Path, one_line_error: OneLineError, alerts: str, field: str
) -> None:
    bad = tmp_path / "alerts.yaml"
    bad.write_text(f"alerts: {alerts}\n")
    address, db = "127.0.0.1:0", str(tmp_path / "a.db")
    result = subprocess.run(
        [*CLI, "serve", "--address", address, "--db", db, "--policy", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    one_line_error(result, field)


async def test_the_async_client_governs_too(governed: ServerProcess) -> None:
    async with AsyncClient(governed.address) as podium:
        assert {q.name for q in await podium.list_quotas()} == {"sim-rpm", "sim-calls"}
        quota = await podium.update_quota("q", "agent:llm", "concurrency", 2)
        assert (quota.scope.kind, quota.limit) == (C.SCOPE_KIND_AGENT, 2)
        budget = await podium.update_budget("b", "workflow:ask", Decimal("1.5"), period="day")
        assert (budget.limit.units, budget.limit.nanos) == (1, 500_000_000)
        assert "b" in {b.name for b in await podium.list_budgets()}
        await podium.delete_quota("q")
        await podium.delete_budget("b")
        assert (await podium.get_spend("server")).total.units == 0
        listed = await podium.list_breakers()
        assert listed and not any(b.calls for b in listed)
        with pytest.raises(PodiumError) as raised:
            await podium.reset_breaker("agent:nope")
        assert raised.value.code_name == "NOT_FOUND"
        with pytest.raises(PodiumError) as raised:
            await podium.update_budget("b", "server", "-2")
        assert raised.value.field_violations[0][0] == "budget.limit"
