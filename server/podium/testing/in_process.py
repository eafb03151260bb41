"""A real Podium server in the test's own event loop.

It listens on 127.0.0.1 on an ephemeral port (so tests never collide with
each other or with a server the developer runs) and speaks real gRPC, so a
test exercises the same servicers, engine and store as production; only the
process is shared. Options are those of `podium.server.app.start_server`:
the engine's clock (a ManualClock makes timers, retries and quotas move only
when the test says), the plugins (your own agents next to the builtin ones),
a governance policy, the server-wide step limit and retention.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import grpc

from podium.core.clock import Clock
from podium.core.limits import Limits
from podium.egress.settings import EgressSettings
from podium.governance.policy import Policy
from podium.plugins.manager import PluginReport
from podium.server.app import PodiumServer, start_server
from podium.server.http.serving import HttpSettings
from podium.server.security import SecurityConfig
from podium.telemetry.setup import TelemetryRuntime
from podium.testing.stubs import Stubs

__all__ = ["STOP_GRACE", "InProcessServer", "serving"]

# Seconds in-flight unary calls get when the test is done: a test has none it
# cares about, and a long grace would only slow every test down.
STOP_GRACE = 0.5


class InProcessServer(NamedTuple):
    """A running server and stubs on a channel to it; unpacks as
    `(server, stubs)`."""

    server: PodiumServer
    stubs: Stubs

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def http_url(self) -> str:
        """The HTTP API's base URL (served with `serving(http=...)`)."""
        assert self.server.http is not None, "serve with http=HttpSettings(...)"
        return f"http://127.0.0.1:{self.server.http.port}"


@contextlib.asynccontextmanager
async def serving(
    db_path: str = ":memory:",
    *,
    clock: Clock | None = None,
    plugins: PluginReport | None = None,
    policy: Policy | None = None,
    max_running_steps: int | None = None,
    max_output_bytes: int | None = None,
    retention_seconds: float | None = None,
    version: str = "",
    limits: Limits | None = None,
    security: SecurityConfig | None = None,
    telemetry: TelemetryRuntime | None = None,
    http: HttpSettings | None = None,
    egress: EgressSettings | None = None,
) -> AsyncIterator[InProcessServer]:
    """Serves `db_path` (a SQLite file; ":memory:" keeps nothing) until the
    block ends, then stops the server with a short grace.

    Restart tests stop the server themselves (`server.stop(...)`) and serve
    the same file again: stopping twice is harmless. `plugins` is a
    `podium.plugins.manager.load_plugins()` report, perhaps with agents added
    to its registry; None loads the installed plugins as `podium serve` does.
    `limits` (podium.core.limits.Limits, e.g. `Limits(max_steps=5)`): None
    reads them from the environment as `podium serve` does.
    With `security` (authentication, TLS) the yielded stubs carry no
    credentials (nor TLS): open stubs with `podium.testing.identity.stubs_for`.
    `telemetry`: e.g. `podium.telemetry.setup.with_providers(...)` on in-memory
    exporters; the server closes it when it stops.
    `http`: also serve HTTP (e.g. `HttpSettings("127.0.0.1:0")`); its URL is `http_url`.
    `egress`: secrets and allowed private networks of outbound calls (`http`
    steps, notifications), e.g. `EgressSettings.parse(allow=["127.0.0.1"])`.
    """
    options: dict[str, Any] = {
        "clock": clock,
        "plugins": plugins,
        "policy": policy,
        "retention_seconds": retention_seconds,
        "version": version,
        "limits": limits,
        "security": security,
        "telemetry": telemetry,
        "http": http,
        "egress": egress,
    }
    if max_running_steps is not None:  # else the server's own default
        options["max_running_steps"] = max_running_steps
    if max_output_bytes is not None:
        options["max_output_bytes"] = max_output_bytes
    server = await start_server("127.0.0.1:0", db_path, **options)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield InProcessServer(server, Stubs.on(channel))
    finally:
        await server.stop(STOP_GRACE)
