"""`podium insights WORKFLOW` against a real server (in this process; the
CLI runs in a thread, as a user's shell would run it beside the server)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from podium.cli.main import main
from podium.core.clock import ManualClock
from podium.testing import create_workflow, eventually, get_run, serving, start_run
from podium.v1 import run_pb2

FLAKY = {
    "steps": [
        {
            "id": "fetch",
            "agent": "flaky",
            "input": {"i": "input.i"},
            "config": {"fail_attempts": 1},
            "retry": [{"errorEquals": ["FlakyError"], "interval": "2s", "maxAttempts": 3}],
        }
    ]
}


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_insights_prints_the_summary_the_steps_and_each_recommendation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    async with serving(clock=clock) as served:
        stubs, address = served.stubs, served.address
        await create_workflow(stubs, "fetcher", FLAKY)
        for i in range(5):
            run = await start_run(stubs, "fetcher", {"i": i})
            await eventually(lambda: clock.sleepers > 0)
            clock.advance(2)

            async def ended(name: str = run.name) -> bool:
                return (await get_run(stubs, name)).state == run_pb2.RUN_STATE_SUCCEEDED

            await eventually(ended)

        code, out, err = await cli(capsys, "insights", "fetcher", "--address", address)
        assert (code, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == (
            "workflows/fetcher: 5 finished runs analysed; runs p50 2s, p95 2s, cost p50 $0.00"
        )
        assert lines[1] == "critical path: fetch (2s)"
        assert any(line.split("│")[1:3] == [" fetch ", " 5    "] for line in lines if "│" in line)
        assert "[flaky] fetch needed a retry in 5 of 5 executions (saves about 2s a run)" in lines
        assert any(
            line.startswith("    evidence: retry rate 100%; failures: FlakyError x5")
            for line in lines
        )

        code, out, _ = await cli(capsys, "insights", "fetcher", "--json", "--address", address)
        assert code == 0
        parsed = json.loads(out)
        assert parsed["runs"] == "5"
        assert [r["kind"] for r in parsed["recommendations"]] == ["RECOMMENDATION_KIND_FLAKY"]

        code, out, err = await cli(capsys, "insights", "nope", "--address", address)
        assert code != 0 and out == ""
        assert err.strip().splitlines() == [err.strip()] and err.startswith("error: ")
        assert "Traceback" not in err


async def test_validate_shows_the_estimate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    definition = tmp_path / "ask.yaml"
    definition.write_text(
        "workflow_id: ask\n"
        "spec:\n"
        "  steps:\n"
        "    - {id: ask, agent: llm, config: {model: sim-small, prompt: hello, max_tokens: 10}}\n"
    )
    async with serving() as served:
        code, out, err = await cli(
            capsys, "workflows", "validate", "-f", str(definition), "--address", served.address
        )
    assert (code, err) == (0, "")
    (line,) = [line for line in out.splitlines() if line.startswith("estimate: ")]
    assert line.startswith("estimate: cost at most $")
    assert "no finished runs yet" in line
