"""The console against a server without authentication: start the ERP example run from the
workflow's page, watch its steps turn green live, approve its waiting step, read its cost;
open a breaker and reset it from the governance page; every page loads without a console
error, and works from the keyboard."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page, expect

from podium.testing import ServerProcess, start_server_process

REPO = Path(__file__).resolve().parents[2]

# The ERP example, with a sign-off that waits for an approval once the audit report is done.
SIGN_OFF = {
    "id": "sign_off",
    "depends_on": ["audit_report"],
    "approval": {"prompt": "Publish the audit report?"},
}
# Calls to sim-large fail (a provider fault) and fall back to sim-small: the policy's breaker
# model:simulated/sim-large opens after two in a row.
FAILING = {
    "workflow_id": "flaky-model",
    "spec": {
        "steps": [
            {
                "id": "ask",
                "agent": "llm",
                "for_each": {"items": "[1, 2, 3]", "max_concurrency": 1},
                "config": {
                    "model": "sim-large",
                    "max_tokens": 20,
                    "prompt": "Say something.",
                    "options": {"fail_with": "server_error", "fail_models": ["sim-large"]},
                    "fallbacks": [{"provider": "simulated", "model": "sim-small"}],
                },
            }
        ]
    },
}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, free_port: int
) -> Iterator[tuple[ServerProcess, str]]:
    directory = tmp_path_factory.mktemp("console")
    port = free_port
    served = start_server_process(
        directory / "podium.db",
        args=[
            "--http-address",
            f"127.0.0.1:{port}",
            "--policy",
            str(REPO / "examples" / "policy.yaml"),
        ],
        cwd=REPO,
    )
    with served:
        erp = yaml.safe_load((REPO / "examples" / "erp.yaml").read_text())
        erp["spec"]["steps"].append(SIGN_OFF)
        for name, definition in (("erp", erp), ("flaky-model", FAILING)):
            path = directory / f"{name}.yaml"
            path.write_text(yaml.safe_dump(definition))
            applied = served.cli("workflows", "apply", "-f", str(path))
            assert applied.returncode == 0, applied.stderr
        yield served, f"http://127.0.0.1:{port}"


def test_start_the_erp_run_watch_it_live_approve_and_read_the_cost(
    server: tuple[ServerProcess, str], page: Page, screenshot: Callable[[str], Path]
) -> None:
    _, url = server
    page.goto(f"{url}/#/workflows/erp")
    expect(page.get_by_role("heading", name="Workflow erp")).to_be_visible()
    page.get_by_label("Input (JSON)").fill((REPO / "examples" / "erp-input.json").read_text())
    page.get_by_label("Labels").fill("origin=browser")
    page.get_by_role("button", name="Start run").click()

    page.wait_for_url(re.compile(r"#/runs/[^/]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    # The page came up while the run was still going: what follows arrives live.
    node = page.locator('g.node[data-step="audit_report"]')
    expect(node).not_to_have_attribute("data-state", "succeeded")
    for step in ("resume_parse", "invoice", "stock_analysis", "policy_check", "audit_report"):
        expect(page.locator(f'g.node[data-step="{step}"]')).to_have_attribute(
            "data-state", "succeeded"
        )
    expect(page.locator('g.node[data-step="sign_off"]')).to_have_attribute("data-state", "waiting")
    expect(page.locator(".title-row .badge")).to_have_text("waiting approval")
    screenshot("run-waiting-approval")

    page.get_by_role("button", name="Approve").click()
    page.get_by_label("Comment").fill("Looks right")
    page.get_by_role("toolbar", name="Run actions").get_by_role(
        "button", name="Approve"
    ).last.click()
    expect(page.locator(".title-row .badge")).to_have_text("succeeded")
    expect(page.locator('g.node[data-step="sign_off"]')).to_have_attribute(
        "data-state", "succeeded"
    )
    expect(page.get_by_role("cell", name="approval resolved")).to_be_visible()
    expect(page.get_by_text("approved by")).to_be_visible()

    cost = page.get_by_test_id("run-cost").inner_text()
    amount = float(cost.split()[0])
    assert amount > 0, cost
    # The page's cost is the stored run's.
    got = server[0].cli("runs", "get", run_id, "--json")
    assert got.returncode == 0, got.stderr
    stored = json.loads(got.stdout)
    stored_cost = int(stored["cost"].get("units", 0)) + stored["cost"].get("nanos", 0) / 1e9
    assert amount == pytest.approx(stored_cost, abs=1e-6)
    # Per step: tokens and cost.
    row = page.locator('table.grid tr[data-step="screen"]')
    expect(row).to_contain_text("in /")
    expect(row).to_contain_text("USD")

    # The keyboard reaches a step of the graph and opens its details.
    page.locator('g.node[data-step="screen"]').focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("region", name="Step screen")).to_be_visible()
    screenshot("run")


def test_a_breaker_opens_and_is_reset_from_the_governance_page(
    server: tuple[ServerProcess, str], page: Page, screenshot: Callable[[str], Path]
) -> None:
    served, url = server
    started = served.cli("runs", "start", "flaky-model", "--watch")
    assert started.returncode == 0, started.stderr + started.stdout
    page.goto(f"{url}/#/governance")
    row = page.locator('tr[data-breaker="model:simulated/sim-large"]')
    expect(row).to_contain_text("open")
    expect(page.get_by_role("meter", name="server-daily utilisation")).to_be_visible()
    expect(page.get_by_role("heading", name="By model")).to_be_visible()
    expect(page.locator("table").filter(has_text="sim-small").first).to_be_visible()
    screenshot("governance")
    row.get_by_role("button", name=re.compile("^Reset")).click()
    expect(row).to_contain_text("closed")
    listed = served.cli("breakers", "--json")
    assert listed.returncode == 0
    breaker = next(
        b for b in json.loads(listed.stdout)["breakers"] if b["name"] == "model:simulated/sim-large"
    )
    assert breaker["state"] == "BREAKER_STATE_CLOSED"


def test_every_page_loads_and_the_keyboard_moves_between_them(
    server: tuple[ServerProcess, str], page: Page, screenshot: Callable[[str], Path]
) -> None:
    _, url = server
    page.goto(f"{url}/")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.locator(".link-state")).to_have_text("● live")
    expect(page.get_by_role("link", name="erp").first).to_be_visible()
    page.get_by_label("State").select_option(label="succeeded")
    expect(page.locator("tbody tr").first).to_contain_text("succeeded")
    # Tab to the sections and follow one with Enter.
    nav = page.get_by_role("navigation", name="Sections")
    nav.get_by_role("link", name="Workflows").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    page.get_by_role("link", name="erp", exact=True).click()
    expect(page.get_by_role("heading", name="Execution levels")).to_be_visible()
    expect(page.get_by_label("Definition as YAML")).to_contain_text("resume_parse")
    page.get_by_role("link", name="Insights").click()
    expect(page.get_by_role("heading", name="Insights: erp")).to_be_visible()
    expect(page.get_by_text("Runs read")).to_be_visible()
    page.goto(f"{url}/#/agents")
    expect(page.get_by_role("cell", name="echo", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="simulated", exact=True).first).to_be_visible()
