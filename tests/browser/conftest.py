"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
`podium serve --http-address` subprocess. One server and one browser per module.

Chromium must be at /usr/bin/chromium (`make test` installs it when missing); without it the
tests fail with that message, they are never skipped. Playwright never downloads a browser.
Screenshots go to test-artifacts/browser/ (gitignored)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
VIEWPORT = {"width": 1280, "height": 800}
# Generous bounds for what the page waits on (a run of a few seconds on a loaded machine).
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def free_port() -> int:
    """A port free now, for the module's server to bind (`--http-address`)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}: `make test` installs it as root"
            " (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


class ConsoleErrors:
    """Every error the page logged or threw: a test fails on any, except the lines a test
    names as expected (`allowed`), such as the browser's own log line for a call the server
    refused on purpose."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not any(a in message.text for a in self.allowed):
            self.errors.append(f"console: {message.text}")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"page error: {error}")


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(
    browser: Browser, request: pytest.FixtureRequest, console_errors: ConsoleErrors
) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    errors = console_errors
    opened.on("console", errors.on_console)
    opened.on("pageerror", errors.on_page_error)
    try:
        yield opened
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}-last.png"), full_page=True)
        context.close()
    assert not errors.errors, "\n".join(errors.errors)


@pytest.fixture
def screenshot(page: Page) -> Callable[[str], Path]:
    """Saves the page as test-artifacts/browser/NAME.png."""

    def save(name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
