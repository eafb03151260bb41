"""The event translation sent to every watcher is the generic protobuf one.

`translate.event_to_proto` and `translate.value` take shortcuts (only the
fields an event sets, Struct.update instead of json_format) because they run
for every event sent; here they are checked, over generated events and JSON
values, against the plain generic construction they replaced.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from podium.core.failures import Failure
from podium.core.model import Event, Usage
from podium.core.states import EventType, RunState, StepState
from podium.server import translate
from podium.v1 import common_pb2, event_pb2

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
texts = st.text(max_size=6)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)


def _reference_value(data: Any) -> struct_pb2.Value:
    message = struct_pb2.Value()
    json_format.ParseDict(data, message)
    return message


def _reference_timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromNanoseconds(int(seconds * 1e9))
    return message


def _reference_money(amount: Decimal) -> common_pb2.Money:
    nanos_total = int((amount * translate.NANOS).to_integral_value())
    units, nanos = divmod(abs(nanos_total), 1_000_000_000)
    sign = -1 if nanos_total < 0 else 1
    return common_pb2.Money(currency_code="USD", units=sign * units, nanos=sign * nanos)


def _reference_event(event: Event) -> event_pb2.RunEvent:
    """Every field set through the generic API, as the translation did before."""
    retry_delay = None
    if event.retry_delay is not None:
        retry_delay = duration_pb2.Duration()
        retry_delay.FromNanoseconds(round(event.retry_delay * 1e9))
    message = event_pb2.RunEvent(
        run=f"runs/{event.run_id}",
        sequence=event.sequence,
        time=_reference_timestamp(event.time),
        type=int(event.type),  # type: ignore[arg-type]
        workflow=f"workflows/{event.workflow_id}",
        run_state=int(event.run_state),  # type: ignore[arg-type]
        step_id=event.step_id,
        attempt=event.attempt,
        message=event.message,
        progress=event.progress,
        failure=translate.failure(event.failure),
        provider=event.provider,
        model=event.model,
        item=event.item,
        retry_delay=retry_delay,
        due_time=_reference_timestamp(event.due_time),
        decision=event.decision,  # type: ignore[arg-type]
        breaker=event.breaker,
        budget=event.budget,
        price_version=event.price_version,
        tool=event.tool,
        actor=event.actor,
    )
    if event.step_state is not None:
        message.step_state = int(event.step_state)  # type: ignore[assignment]
    if event.output is not None:
        message.output.CopyFrom(_reference_value(event.output))
    if event.usage is not None:
        u = event.usage
        message.usage.CopyFrom(
            common_pb2.Usage(
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cached_input_tokens=u.cached_input_tokens,
                cache_write_tokens=u.cache_write_tokens,
                reasoning_tokens=u.reasoning_tokens,
                calls=u.calls,
            )
        )
    if event.cost is not None:
        message.cost.CopyFrom(_reference_money(event.cost))
    return message


events = st.builds(
    Event,
    run_id=st.text("0123456789abcdef", min_size=1, max_size=32),
    sequence=st.integers(min_value=1, max_value=2**40),
    time=times,
    type=st.sampled_from(EventType),
    workflow_id=texts,
    run_state=st.sampled_from(RunState),
    step_id=texts,
    step_state=st.none() | st.sampled_from(StepState),
    attempt=st.integers(min_value=0, max_value=50),
    message=texts,
    progress=st.floats(min_value=0, max_value=1),
    failure=st.none() | st.builds(Failure, texts, texts, st.booleans()),
    output=json_values,
    usage=st.none()
    | st.builds(Usage, *(st.integers(min_value=0, max_value=10**9) for _ in range(3))),
    cost=st.none() | st.decimals(min_value=-1000, max_value=1000, allow_nan=False, places=9),
    provider=texts,
    model=texts,
    item=st.integers(min_value=-1, max_value=10_000),
    retry_delay=st.none() | st.floats(min_value=0, max_value=1e6),
    due_time=st.none() | times,
    decision=st.integers(min_value=0, max_value=2),
    breaker=texts,
    budget=texts,
    price_version=texts,
    tool=texts,
    actor=texts,
)


@settings(max_examples=300, deadline=None)
@given(events)
def test_an_event_translates_as_the_generic_construction_does(event: Event) -> None:
    fast = translate.event_to_proto(event)
    assert fast == _reference_event(event)
    assert fast.SerializeToString(deterministic=True) == _reference_event(event).SerializeToString(
        deterministic=True
    )


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_a_json_value_translates_as_json_format_does(data: Any) -> None:
    assert translate.value(data) == _reference_value(data)
