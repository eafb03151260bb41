"""`podium serve` with `--log-format json` and `--metrics-address`: every log
line is JSON, lines about a run carry its ids, the Prometheus endpoint
answers over HTTP; bad values end with one line and exit code 2."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from podium.testing import HANG_TIMEOUT, eventually
from podium.testing.process import CLI

from .conftest import ROOT, OneLineError, StartServing


def test_json_logs_and_the_metrics_endpoint_of_a_real_server(
    start_serving: StartServing,
) -> None:
    served = start_serving(args=("--log-format", "json", "--metrics-address", "127.0.0.1:0"))
    applied = served.cli("workflows", "apply", "-f", "examples/hello.yaml")
    assert applied.returncode == 0, applied.stderr
    started = served.cli("runs", "start", "hello", "--input", '{"name": "Ada"}', "--watch")
    assert started.returncode == 0, started.stderr
    run_id = re.search(r"runs/([0-9a-f]{32})", started.stdout)
    assert run_id is not None, started.stdout

    def logged() -> list[dict[str, object]]:
        text = served.log_path.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def ended() -> bool:
        return any(
            line.get("run_id") == run_id.group(1) and "ended SUCCEEDED" in str(line["message"])
            for line in logged()
        )

    asyncio.run(eventually(ended))
    lines = logged()  # every line parses as JSON
    about = [line for line in lines if line.get("run_id") == run_id.group(1)]
    assert [line["message"] for line in about] == [
        f"run {run_id.group(1)} of workflow hello started",
        f"run {run_id.group(1)} ended SUCCEEDED, cost 0",
    ]
    assert all(line["workflow_id"] == "hello" for line in about)
    (announced,) = [line for line in lines if str(line["message"]).startswith("metrics on ")]
    url = str(announced["message"]).removeprefix("metrics on ")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    with urllib.request.urlopen(url, timeout=HANG_TIMEOUT) as response:
        body = response.read().decode()
    samples = [
        sample for family in text_string_to_metric_families(body) for sample in family.samples
    ]
    finished = [
        (s.labels["podium_workflow_id"], s.labels["podium_run_state"], s.value)
        for s in samples
        if s.name == "podium_runs_finished_total"
    ]
    assert finished == [("hello", "SUCCEEDED", 1.0)]
    assert [s.value for s in samples if s.name == "podium_runs_active"] == [0.0]
    assert served.stop() == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--log-format", "xml"], "invalid choice: 'xml'"),
        (["--log-level", "loud"], "invalid choice: 'loud'"),
        (["--metrics-address", "nowhere"], "--metrics-address"),
    ],
)
def test_bad_telemetry_options_end_with_one_line(
    tmp_path: Path, one_line_error: OneLineError, args: list[str], needle: str
) -> None:
    result = subprocess.run(
        [*CLI, "serve", "--db", str(tmp_path / "podium.db"), "--address", "127.0.0.1:0", *args],
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT,
        cwd=ROOT,
    )
    one_line_error(result, needle)
    assert result.returncode == 2
