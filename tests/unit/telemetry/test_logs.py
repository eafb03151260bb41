"""Log formats: JSON lines that parse and carry a run's ids; text lines
with the ids in brackets; levels and formats checked."""

from __future__ import annotations

import io
import json
import logging

import pytest

from podium.core.errors import Unavailable
from podium.telemetry.logs import (
    JsonFormatter,
    TextFormatter,
    TraceIds,
    configure_logging,
    parse_level,
    run_fields,
)


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("podium.runs", logging.WARNING, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_json_line_parses_and_carries_the_runs_ids() -> None:
    line = JsonFormatter().format(
        record("attempt failed", **run_fields("r1", workflow_id="erp", step_id="s", attempt=2))
    )
    parsed = json.loads(line)
    assert parsed["message"] == "attempt failed"
    assert parsed["level"] == "WARNING"
    assert parsed["logger"] == "podium.runs"
    assert parsed["time"].endswith("Z")
    assert {k: parsed[k] for k in ("run_id", "workflow_id", "step_id", "attempt")} == {
        "run_id": "r1",
        "workflow_id": "erp",
        "step_id": "s",
        "attempt": 2,
    }
    # No item for a plain step, no empty ids.
    assert "item" not in parsed and "trace_id" not in parsed


def test_a_json_line_holds_the_traceback_of_an_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        made = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    parsed = json.loads(JsonFormatter().format(made))
    assert "ValueError: boom" in parsed["exception"]
    assert "Traceback" in parsed["exception"]


def test_a_text_line_shows_the_ids_in_brackets_and_none_without_them() -> None:
    formatter = TextFormatter()
    with_ids = formatter.format(record("hello", run_id="r1", attempt=1, item=-1))
    assert with_ids.endswith("podium.runs: hello [run_id=r1 attempt=1]")
    assert formatter.format(record("plain")).endswith("podium.runs: plain")


def test_trace_ids_are_added_for_runs_with_an_open_span() -> None:
    spans = {"r1": ("a" * 32, "b" * 16)}
    ids = TraceIds(spans.get)
    traced, other, unrelated = record("x", run_id="r1"), record("y", run_id="r2"), record("z")
    assert ids.filter(traced) and ids.filter(other) and ids.filter(unrelated)
    assert (traced.trace_id, traced.span_id) == ("a" * 32, "b" * 16)  # type: ignore[attr-defined]
    assert not hasattr(other, "trace_id") and not hasattr(unrelated, "trace_id")


def test_configure_logging_sets_the_level_and_format() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        configure_logging("warning", "json", stream)
        logging.getLogger("podium.test").info("dropped")
        logging.getLogger("podium.test").warning("kept", extra=run_fields("r9"))
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["message"], line["run_id"]) for line in lines] == [("kept", "r9")]


@pytest.mark.parametrize("level", ["loud", ""])
def test_unknown_levels_and_formats_are_refused(level: str) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        parse_level(level)
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging("info", "xml", io.StringIO())


def test_an_unavailable_caught_by_a_loop_is_one_line_other_errors_keep_their_traceback() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    log = logging.getLogger("podium.test")
    try:
        configure_logging("info", "text", stream)
        for error in (
            Unavailable("lost the database db: gone", reason="STORAGE_UNAVAILABLE"),
            KeyError("a bug"),
        ):
            try:
                raise error
            except Exception:
                log.exception("tick %d failed", 3)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    text = stream.getvalue()
    first, rest = text.split("\n", 1)
    assert first.endswith("tick 3 failed: lost the database db: gone")
    assert rest.startswith(first[:10]) and "tick 3 failed" in rest
    assert text.count("Traceback") == 1 and "KeyError: 'a bug'" in text
