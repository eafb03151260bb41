"""The console against a server that requires API tokens: it asks for one, refuses a wrong
one, keeps the right one in the tab's sessionStorage only (nothing in localStorage or
cookies), and signs out."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from podium.testing import ServerProcess, start_server_process
from podium.testing.process import CLI

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, free_port: int
) -> Iterator[tuple[ServerProcess, str, str]]:
    directory = tmp_path_factory.mktemp("console-auth")
    db = directory / "podium.db"
    created = subprocess.run(
        [*CLI, "tokens", "create", "--db", str(db), "--role", "admin", "--name", "browser"],
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.strip()
    served = start_server_process(
        db, args=["--auth", "--http-address", f"127.0.0.1:{free_port}"], cwd=REPO
    )
    with served:
        yield served, f"http://127.0.0.1:{free_port}", token


def test_sign_in_with_a_token_kept_for_the_session_only(
    server: tuple[ServerProcess, str, str], page: Page, console_errors: Any
) -> None:
    _, url, token = server
    # The browser logs each refused call itself ("Failed to load resource: ... 401"); the
    # page handles them by asking for a token.
    console_errors.allowed.append("status of 401")
    page.goto(f"{url}/#/runs")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("requires an API token")).to_contain_text("Unauthenticated")

    page.get_by_label("API token").fill("pod_wrong_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_text("requires an API token")).to_contain_text("Unauthenticated")

    page.get_by_label("API token").fill(token)
    page.get_by_label("API token").press("Enter")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.locator(".link-state")).to_have_text("● live")
    page.goto(f"{url}/#/agents")
    expect(page.get_by_role("cell", name="echo", exact=True)).to_be_visible()

    stored = page.evaluate(
        "() => ({session: {...sessionStorage}, local: localStorage.length,"
        " cookies: document.cookie})"
    )
    assert stored == {"session": {"podium.token": token}, "local": 0, "cookies": ""}
    page.reload()
    expect(page.get_by_role("cell", name="echo", exact=True)).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
