"""The RunStore port's signals, callback tokens and completion notifications
(podium.engine.ports): what a resumed run reads back, against every backend
of conftest.BACKENDS, through the port only."""

from __future__ import annotations

from podium.core.model import CallbackRecord, NotificationRecord, SignalRecord
from podium.engine.ports import RunStore

from .records import T0, run_record


async def test_signals_are_read_back_in_order_with_their_consumer(run_store: RunStore) -> None:
    run_store.put_signal(SignalRecord("r1", 2, "b", {"x": [1, "two"]}, T0 + 2, "req-2"))
    run_store.put_signal(SignalRecord("r1", 1, "a", None, T0 + 1))
    run_store.put_signal(SignalRecord("r2", 1, "a", 5, T0 + 3))
    await run_store.commit()
    assert await run_store.signals_of("r1") == [
        SignalRecord("r1", 1, "a", None, T0 + 1),
        SignalRecord("r1", 2, "b", {"x": [1, "two"]}, T0 + 2, "req-2"),
    ]
    # Consuming one is writing it again with its consumer; nothing else changes.
    run_store.put_signal(SignalRecord("r1", 1, "a", None, T0 + 1, consumed_by="gate"))
    await run_store.commit()
    first, second = await run_store.signals_of("r1")
    assert (first.consumed_by, second.consumed_by) == ("gate", "")
    assert await run_store.signals_of("missing") == []


async def test_a_callback_token_is_found_and_spent(run_store: RunStore) -> None:
    issued = CallbackRecord("tok-1", "r1", "hook", "acme", T0)
    run_store.put_callback(issued)
    run_store.put_callback(CallbackRecord("tok-2", "r2", "hook", "acme", T0))
    await run_store.commit()
    assert await run_store.get_callback("tok-1") == issued
    assert await run_store.get_callback("unknown") is None
    run_store.put_callback(
        CallbackRecord("tok-1", "r1", "hook", "acme", T0, "COMPLETED", {"ok": True})
    )
    await run_store.commit()
    spent = await run_store.get_callback("tok-1")
    assert spent is not None and (spent.outcome, spent.payload) == ("COMPLETED", {"ok": True})
    assert [c.token for c in await run_store.callbacks_of("r1")] == ["tok-1"]


async def test_pending_notifications_are_the_due_ones_by_due_time(run_store: RunStore) -> None:
    run_store.put_notification(NotificationRecord("armed", "http://x/", "k"))
    run_store.put_notification(NotificationRecord("late", "http://x/", "k", "PENDING", 2, T0 + 9))
    run_store.put_notification(NotificationRecord("soon", "http://x/", "k", "PENDING", 0, T0))
    run_store.put_notification(NotificationRecord("done", "http://x/", "k", "DELIVERED", 1))
    await run_store.commit()
    assert [n.run_id for n in await run_store.pending_notifications()] == ["soon", "late"]
    assert await run_store.get_notification("late") == NotificationRecord(
        "late", "http://x/", "k", "PENDING", 2, T0 + 9
    )
    run_store.put_notification(NotificationRecord("soon", "http://x/", "k", "DELIVERED", 1))
    await run_store.commit()
    assert [n.run_id for n in await run_store.pending_notifications()] == ["late"]
    assert await run_store.get_notification("missing") is None


async def test_deleting_a_run_deletes_its_signals_callbacks_and_notification(
    run_store: RunStore,
) -> None:
    run_store.put_run(run_record("gone"))
    run_store.put_signal(SignalRecord("gone", 1, "a", 1, T0))
    run_store.put_callback(CallbackRecord("tok", "gone", "hook", "default", T0))
    run_store.put_notification(NotificationRecord("gone", "http://x/", "k", "PENDING", 0, T0))
    await run_store.commit()
    assert await run_store.delete_runs(["gone"]) == 1
    assert await run_store.signals_of("gone") == []
    assert await run_store.get_callback("tok") is None
    assert await run_store.get_notification("gone") is None
    assert await run_store.pending_notifications() == []
