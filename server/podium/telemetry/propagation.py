"""W3C trace context in and out: a caller's `traceparent`, a run's stored
context."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
_propagator = TraceContextTextMapPropagator()


def context_from(traceparent: str) -> Context | None:
    """The context a traceparent names, or None when it is empty or invalid."""
    if not traceparent:
        return None
    context = _propagator.extract({TRACEPARENT: traceparent})
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def span_context_from(traceparent: str) -> trace.SpanContext | None:
    context = context_from(traceparent)
    return None if context is None else trace.get_current_span(context).get_span_context()


def traceparent_of(span: trace.Span) -> str:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT, "")


def caller_traceparent(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The parent a new run's span gets: the current span when one is active
    (the RPC's span, with gRPC instrumentation on), else the caller's valid
    `traceparent` metadata, else ""."""
    current = trace.get_current_span()
    if current.get_span_context().is_valid:
        return traceparent_of(current)
    for key, value in metadata or ():
        if key == TRACEPARENT:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            return text if context_from(text) is not None else ""
    return ""
