"""How `podium serve` sets up the interpreter it runs in, read from the real
server process: a sitecustomize on its PYTHONPATH records the settings as the
process exits (after SIGTERM).

- The switch interval is 1 ms: the event loop's thread shares the interpreter
  lock with the store's threads, the worker threads and gRPC's poller, and
  each hand-off to the loop waits up to that long (podium.server.main).
- What start-up allocated is frozen out of the collector's sight (gc.freeze),
  so that a full collection does not walk it.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from podium.server.main import SWITCH_INTERVAL_S

from .conftest import StartServing

RECORD_SETTINGS = """
import atexit
import gc
import json
import os
import sys


def _record():
    with open(os.environ["PODIUM_TEST_INTERPRETER"], "w") as out:
        json.dump(
            {
                "switch_interval": sys.getswitchinterval(),
                "frozen": gc.get_freeze_count(),
                "serving": "podium.server.app" in sys.modules,
            },
            out,
        )


atexit.register(_record)
"""


def test_the_server_hands_the_interpreter_over_every_millisecond_and_freezes_start_up(
    tmp_path: Path, start_serving: StartServing
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(RECORD_SETTINGS))
    record = tmp_path / "interpreter.json"
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "PODIUM_TEST_INTERPRETER": str(record),
    }
    server = start_serving(env=env)
    assert server.stop() == 0, server.log_tail()

    settings = json.loads(record.read_text())
    assert settings["serving"]  # the record is the server's
    assert settings["switch_interval"] == pytest.approx(SWITCH_INTERVAL_S)
    assert SWITCH_INTERVAL_S < 0.005  # below the interpreter's default
    # Start-up's modules, descriptors and plugins: far more than a handful of objects.
    assert settings["frozen"] > 10_000
