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


async def test_many_runs_kept_state_reads_as_each_run_s_own(run_store: RunStore) -> None:
    # A restart reads a batch of runs' signals, callbacks and notifications
    # at once: each run gets exactly what reading it alone gives, in order.
    run_ids = [f"r{index:04d}" for index in range(1_200)]  # more than one IN list
    for index, run_id in enumerate(run_ids):
        if index % 3 == 0:
            run_store.put_signal(SignalRecord(run_id, 2, "b", {"n": index}, T0 + 2))
            run_store.put_signal(SignalRecord(run_id, 1, "a", None, T0 + 1, consumed_by="s"))
        if index % 4 == 0:
            run_store.put_callback(CallbackRecord(f"tok-{index}-late", run_id, "h", "t", T0 + 5))
            run_store.put_callback(CallbackRecord(f"tok-{index}", run_id, "h", "t", T0))
        if index % 5 == 0:
            run_store.put_notification(
                NotificationRecord(run_id, "http://x/", "k", "PENDING", index % 7, T0 + index)
            )
    run_store.put_signal(SignalRecord("not-asked", 1, "a", 1, T0))
    run_store.put_callback(CallbackRecord("tok-other", "not-asked", "h", "t", T0))
    run_store.put_notification(NotificationRecord("not-asked", "http://x/", "k"))
    await run_store.commit()
    asked = [*run_ids, "missing"]
    signals = await run_store.signals_of_runs(asked)
    callbacks = await run_store.callbacks_of_runs(asked)
    notifications = await run_store.notifications_of(asked)
    for run_id in asked:
        assert signals.get(run_id, []) == await run_store.signals_of(run_id)
        assert callbacks.get(run_id, []) == await run_store.callbacks_of(run_id)
        assert notifications.get(run_id) == await run_store.get_notification(run_id)
    assert (len(signals), len(callbacks), len(notifications)) == (400, 300, 240)
    assert "not-asked" not in signals | callbacks | notifications
    assert [c.token for c in callbacks["r0000"]] == ["tok-0", "tok-0-late"]
    assert await run_store.signals_of_runs([]) == {}
