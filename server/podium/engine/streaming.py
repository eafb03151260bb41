"""Token streaming: a step's streamed answer reaches live subscribers as
output deltas while the provider streams it.

Deltas are live only: they bypass the event log (no sequence, nothing stored,
nothing replayed), so the log stays gap-free and a reconnecting subscriber
gets the step's final output from its event, as always. No delta is made
while nobody listens to the run."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from podium.core.model import OutputDelta
from podium.plugins.api import CompletionRequest, LlmGateway, LlmResult, Target


class DeltaSink(Protocol):
    """Where deltas go (the engine's EventHub)."""

    def wants_deltas(self, run_id: str) -> bool: ...
    def publish_delta(self, delta: OutputDelta) -> None: ...


class StreamingGateway:
    """An attempt's LlmGateway whose streamed requests publish their deltas."""

    __slots__ = ("_attempt", "_gate", "_indexes", "_item", "_run_id", "_sink", "_step_id")

    def __init__(
        self, gate: LlmGateway, sink: DeltaSink, run_id: str, step_id: str, item: int, attempt: int
    ) -> None:
        self._gate = gate
        self._sink = sink
        self._run_id = run_id
        self._step_id = step_id
        self._item = item
        self._attempt = attempt
        # One numbering per attempt, across its calls (a react loop's turns).
        self._indexes = itertools.count(1)

    async def complete(
        self, provider: str, request: CompletionRequest, *, fallbacks: Sequence[Target] = ()
    ) -> LlmResult:
        if request.stream and request.on_delta is None:
            request = replace(request, on_delta=self._publish)
        return await self._gate.complete(provider, request, fallbacks=fallbacks)

    def _publish(self, text: str) -> None:
        if self._sink.wants_deltas(self._run_id):
            delta = OutputDelta(
                self._run_id, self._step_id, self._item, self._attempt, next(self._indexes), text
            )
            self._sink.publish_delta(delta)
