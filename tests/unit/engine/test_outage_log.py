"""OutageLog (podium.engine.outage_log): a failure repeated every second is
logged once, then once per interval with the count of those not logged, and
once when it ends; driven by a ManualClock."""

from __future__ import annotations

import logging

import pytest

from podium.core.clock import ManualClock
from podium.core.errors import Unavailable
from podium.engine.outage_log import OutageLog

GONE = Unavailable("lost the database db: gone", reason="STORAGE_UNAVAILABLE")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    found = [record.getMessage() for record in caplog.records if record.name == "podium.test"]
    caplog.clear()
    return found


def test_an_outage_is_one_line_then_one_a_minute_then_one_at_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = ManualClock(0.0)
    outage = OutageLog(logging.getLogger("podium.test"), "scheduler tick", clock.monotonic)
    outage.succeeded()  # nothing failed: nothing to say
    assert lines(caplog) == []

    outage.failed(GONE)
    first = caplog.records[0]
    assert first.exc_info is not None and first.exc_info[1] is GONE
    assert lines(caplog) == ["scheduler tick failed (retried; while it fails, logged once per 60s)"]
    # A failure a second for the next 59 s: not logged.
    for _ in range(59):
        clock.advance(1)
        outage.failed(GONE)
    assert lines(caplog) == [] and outage.failing
    clock.advance(1)
    outage.failed(GONE)
    assert lines(caplog) == [
        "scheduler tick still failing after 60s (59 failures not logged since the last line): "
        "lost the database db: gone"
    ]
    for _ in range(30):
        clock.advance(1)
        outage.failed(GONE)
    assert lines(caplog) == []

    clock.advance(1)
    outage.succeeded()
    assert lines(caplog) == ["scheduler tick works again after 91s and 91 failures"]
    assert not outage.failing
    outage.succeeded()
    assert lines(caplog) == []

    # The next outage is logged at once again.
    outage.failed(KeyError("a bug"))
    assert lines(caplog) == ["scheduler tick failed (retried; while it fails, logged once per 60s)"]


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        OutageLog(logging.getLogger("podium.test"), "x", ManualClock().monotonic, interval=0)
