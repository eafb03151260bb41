"""What an idle `podium serve` has imported: not the provider SDKs, PyJWT,
cryptography, the CEL runtime, the outbound HTTP client or croniter (tens of
MB and most of a second of start-up), which load on first use, nor reflection's
servicer with protobuf's descriptor_pb2 (loaded at the first reflection call), nor the HTTP
API's server or the PostgreSQL driver, which load when configured.
(jsonschema loads at start-up: plugins' agent schemas and tool parameters are
checked to be JSON Schemas when they register, so that a broken one fails its
plugin then.) The provider plugins are loaded all
the same, and a broken plugin is still reported at start-up.

The modules are read from the real server process: a sitecustomize on its
PYTHONPATH writes sys.modules to a file as the process exits (after SIGTERM).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import grpc

from podium.testing import ServerProcess, Stubs
from podium.v1 import control_service_pb2

from .conftest import StartServing

C = control_service_pb2

# Top-level packages an idle server must not have imported.
DEFERRED = (
    "openai",
    "anthropic",
    "httpx",
    "jwt",
    "cryptography",
    "cel_expr_python",
    # The outbound HTTP client (http steps, notifications, alert webhooks).
    "httpx2",
    # The HTTP API (off by default), the PostgreSQL driver (SQLite here) and
    # cron expressions (no schedule here).
    "hypercorn",
    "starlette",
    "connectrpc",
    "asyncpg",
    "croniter",
)

DUMP_MODULES = """
import atexit
import os
import sys


def _dump():
    with open(os.environ["PODIUM_TEST_MODULES"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))


atexit.register(_dump)
"""

BROKEN_PLUGIN = """
raise ImportError("this plugin is broken")
"""


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(DUMP_MODULES))
    (site / "podium_e2e_broken.py").write_text(textwrap.dedent(BROKEN_PLUGIN))
    dist_info = site / "podium_e2e_broken-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: podium-e2e-broken\n")
    (dist_info / "entry_points.txt").write_text("[podium]\npodium_e2e_broken = podium_e2e_broken\n")
    return site


def _modules_at_exit(server: ServerProcess, path: Path) -> set[str]:
    assert server.stop() == 0, server.log_tail()
    return set(path.read_text().split())


async def test_an_idle_server_defers_heavy_imports_and_still_reports_plugins(
    tmp_path: Path, start_serving: StartServing
) -> None:
    site = _site(tmp_path)
    modules_file = tmp_path / "modules.txt"
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "PODIUM_TEST_MODULES": str(modules_file),
    }
    server = start_serving(env=env)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stubs = Stubs.on(channel)
        plugins = await stubs.control.ListPlugins(C.ListPluginsRequest())
        status = {p.name: p for p in plugins.plugins}
        # The broken plugin is reported at start-up, as before.
        assert status["podium_e2e_broken"].status == C.PLUGIN_STATUS_FAILED
        assert "this plugin is broken" in status["podium_e2e_broken"].error
        # The provider plugins are loaded, their providers listed, their SDKs not imported.
        for name in ("openai", "anthropic"):
            assert status[name].status == C.PLUGIN_STATUS_LOADED, status[name].error
        providers = await stubs.control.ListProviders(C.ListProvidersRequest())
        assert {"openai", "anthropic"} <= {p.name for p in providers.providers}

    modules = _modules_at_exit(server, modules_file)
    assert "podium_openai.plugin" in modules and "podium_anthropic.plugin" in modules
    assert "podium.server.app" in modules  # the dump is the server's
    imported = sorted(m for m in modules if m.split(".")[0] in DEFERRED)
    assert imported == []
    # Reflection's servicer and the descriptors it serves load at its first call.
    assert not {"google.protobuf.descriptor_pb2", "grpc_reflection.v1alpha._base"} & modules
