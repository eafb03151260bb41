"""The RelayStore port (podium.engine.relay_store): two servers' stores on one
database, on SQLite and on PostgreSQL. Server "a" owns runs and relays their
attempts; server "b" holds the worker that runs them."""

from __future__ import annotations

import asyncio

from podium.engine.relay_store import RelayTask, WorkerOffer

from .cluster_members import LEASE, NOW, Member, create_owned_run

WLOG = WorkerOffer("default", "wlog")
DECLARATION = {
    "name": "wlog",
    "version": "1",
    "description": "logs",
    "config_schema": {"type": "object", "required": ["log"]},
    "output_schema": {"type": "object", "properties": {"pid": {"type": "integer"}}},
}


def task(
    run_id: str = "r1", attempt: int = 1, *, tenant: str = "default", **kw: object
) -> RelayTask:
    fields: dict[str, object] = {
        "run_id": run_id,
        "step_id": "s",
        "item": -1,
        "attempt": attempt,
        "epoch": 1,
        "queue": "default",
        "agent": "wlog",
        "tenant": tenant,
        "payload": {"input": {"x": 1}, "config": {"k": "v"}, "big": 2**62},
    }
    fields.update(kw)
    return RelayTask(**fields)  # type: ignore[arg-type]


async def joined(a: Member, b: Member) -> None:
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW, LEASE)


async def test_presence_is_seen_by_the_others_while_the_server_s_lease_is_live(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await joined(a, b)
    await b.relay.set_offers(
        [WLOG, WorkerOffer("gpu", "wlog", "acme"), WLOG], {"wlog": DECLARATION}
    )

    assert await a.relay.offers_elsewhere(NOW) == {"b": [WLOG, WorkerOffer("gpu", "wlog", "acme")]}
    assert await b.relay.offers_elsewhere(NOW) == {}  # its own are not "elsewhere"
    assert await a.relay.offers_elsewhere(NOW + LEASE + 1) == {}  # b's lease expired

    assert await a.relay.declarations_elsewhere(NOW) == {"wlog": DECLARATION}
    assert await b.relay.declarations_elsewhere(NOW) == {}
    assert await a.relay.declarations_elsewhere(NOW + LEASE + 1) == {}

    other = {"name": "other", "version": "2", "config_schema": None}
    await b.relay.set_offers([WorkerOffer("default", "other")], {"other": other})  # replaced
    assert await a.relay.offers_elsewhere(NOW) == {"b": [WorkerOffer("default", "other")]}
    assert await a.relay.declarations_elsewhere(NOW) == {"other": other}
    await b.relay.set_offers([], {})
    assert await a.relay.offers_elsewhere(NOW) == {}
    assert await a.relay.declarations_elsewhere(NOW) == {}


async def test_a_posted_task_is_claimed_once_and_its_outcome_reaches_the_owner(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await joined(a, b)
    task_id = await a.relay.post(task(), NOW)

    [pending] = await b.relay.pending([WLOG], 10)
    assert (pending.task_id, pending.owner, pending.task) == (task_id, "a", task())
    assert await b.relay.pending([WorkerOffer("default", "other")], 10) == []
    assert await b.relay.pending([WorkerOffer("gpu", "wlog")], 10) == []
    assert await b.relay.pending([WorkerOffer("default", "wlog", "acme")], 10) == []
    status = (await a.relay.statuses([task_id], NOW))[task_id]
    assert (status.state, status.holder, status.holder_live) == ("PENDING", None, False)

    claims = await asyncio.gather(b.relay.claim(task_id, NOW), a.relay.claim(task_id, NOW))
    assert sorted(claims) == [False, True]
    assert await b.relay.pending([WLOG], 10) == []
    holder = "b" if claims[0] else "a"
    member = b if claims[0] else a
    status = (await a.relay.statuses([task_id], NOW))[task_id]
    assert (status.state, status.holder, status.holder_live) == ("CLAIMED", holder, True)
    assert not await a.relay.withdraw(task_id)  # claimed: no longer withdrawn

    assert await member.relay.finish(task_id, {"output": {"pid": 7, "n": 2**62}})
    status = (await a.relay.statuses([task_id], NOW))[task_id]
    assert (status.state, status.outcome, status.epoch) == (
        "DONE",
        {"output": {"pid": 7, "n": 2**62}},
        1,
    )
    # Done once: a second outcome is refused.
    assert not await member.relay.finish(task_id, {"output": {"pid": 8}})


async def test_the_holder_s_liveness_is_its_server_lease(members: tuple[Member, Member]) -> None:
    a, b = members
    await joined(a, b)
    task_id = await a.relay.post(task(), NOW)
    assert await b.relay.claim(task_id, NOW)

    assert (await a.relay.statuses([task_id], NOW + LEASE))[task_id].holder_live
    assert not (await a.relay.statuses([task_id], NOW + LEASE + 1))[task_id].holder_live
    await b.cluster.renew(NOW + LEASE, LEASE)
    assert (await a.relay.statuses([task_id], NOW + LEASE + 1))[task_id].holder_live


async def test_a_pending_task_is_withdrawn_and_then_never_claimed(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await joined(a, b)
    task_id = await a.relay.post(task(), NOW)

    assert await a.relay.withdraw(task_id)
    assert not await b.relay.claim(task_id, NOW)
    assert await a.relay.statuses([task_id], NOW) == {}


async def test_the_cancel_flag_reaches_the_holder(members: tuple[Member, Member]) -> None:
    a, b = members
    await joined(a, b)
    first = await a.relay.post(task("r1"), NOW)
    second = await a.relay.post(task("r2"), NOW)
    assert await b.relay.claim(first, NOW)
    assert await b.relay.claim(second, NOW)
    assert await b.relay.cancelled([first, second]) == set()

    await a.relay.cancel(first)
    assert await b.relay.cancelled([first, second]) == {first}
    assert (await a.relay.statuses([first], NOW))[first].cancel
    await b.relay.remove(first)
    assert await a.relay.statuses([first, second], NOW) == {
        second: (await a.relay.statuses([second], NOW))[second]
    }
    assert await b.relay.cancelled([first]) == {first}  # removed: given up too


async def test_a_new_attempt_supersedes_the_task_of_the_previous_one(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await joined(a, b)
    old = await a.relay.post(task(attempt=1), NOW)
    other_item = await a.relay.post(task(attempt=1, item=3), NOW)
    assert await b.relay.claim(old, NOW)
    new = await a.relay.post(task(attempt=2), NOW)

    # The late outcome of attempt 1 is refused and the holder is told to stop it.
    assert not await b.relay.finish(old, {"output": {"late": True}})
    assert await b.relay.cancelled([old]) == {old}
    assert set(await a.relay.statuses([old, new, other_item], NOW)) == {new, other_item}


async def test_a_new_owner_adopts_the_relayed_tasks_with_its_epoch(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await joined(a, b)
    await create_owned_run(a, "r1")
    assert a.relay.held_epoch("r1") == 1 and b.relay.held_epoch("r1") is None
    running = await a.relay.post(task("r1", step_id="s"), NOW)
    done = await a.relay.post(task("r1", step_id="t"), NOW)
    cancelled = await a.relay.post(task("r1", step_id="u"), NOW)
    for task_id in (running, done, cancelled):
        assert await b.relay.claim(task_id, NOW)
    assert await b.relay.finish(done, {"output": {"pid": 1}})
    await a.relay.cancel(cancelled)

    # a dies: b takes its run over (epoch 2) and adopts what a had relayed.
    await b.cluster.renew(NOW + LEASE, LEASE)
    assert await b.cluster.take_over(NOW + LEASE + 1) == ["r1"]
    assert b.relay.held_epoch("r1") == 2
    adopted = await b.relay.adopt(["r1", "not-held"])

    assert [(t.task_id, t.run_id, t.step_id, t.item, t.attempt) for t in adopted] == [
        (running, "r1", "s", -1, 1),
        (done, "r1", "t", -1, 1),
    ]
    statuses = await b.relay.statuses([running, done, cancelled], NOW + LEASE + 1)
    assert set(statuses) == {running, done}
    assert statuses[running].epoch == statuses[done].epoch == 2
    assert statuses[done].outcome == {"output": {"pid": 1}}
    assert statuses[running].state == "CLAIMED"
    assert await a.relay.adopt(["r1"]) == []  # a holds no epoch of r1 any more


async def test_a_restarted_holder_abandons_what_it_held(members: tuple[Member, Member]) -> None:
    a, b = members
    await joined(a, b)
    held = await a.relay.post(task("r1"), NOW)
    pending = await a.relay.post(task("r2"), NOW)
    assert await b.relay.claim(held, NOW)

    assert await b.relay.abandon_held() == 1
    statuses = await a.relay.statuses([held, pending], NOW)
    assert statuses[held].state == "DONE"
    assert statuses[held].outcome == {"interrupted": "the server holding the worker restarted"}
    assert statuses[pending].state == "PENDING"
    assert await a.relay.abandon_held() == 0


async def test_a_finished_run_s_tasks_are_forgotten(members: tuple[Member, Member]) -> None:
    a, b = members
    await joined(a, b)
    first = await a.relay.post(task("r1", step_id="s"), NOW)
    second = await a.relay.post(task("r1", step_id="t"), NOW)
    kept = await a.relay.post(task("r2"), NOW)

    await a.relay.forget_run("r1")
    assert set(await a.relay.statuses([first, second, kept], NOW)) == {kept}


async def test_pending_is_limited_and_oldest_first(members: tuple[Member, Member]) -> None:
    a, b = members
    await joined(a, b)
    ids = [await a.relay.post(task(f"r{i}"), NOW) for i in range(5)]
    await a.relay.post(task("acme-run", tenant="acme"), NOW)

    found = await b.relay.pending([WorkerOffer("default", "wlog", "default")], 3)
    assert [p.task_id for p in found] == ids[:3]
    assert await b.relay.pending([WLOG], 0) == []
    every = await b.relay.pending([WLOG], 100)
    assert [p.task.run_id for p in every][-1] == "acme-run"


async def test_a_server_that_no_longer_owns_a_task_cannot_cancel_withdraw_or_forget_it(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await joined(a, b)
    await create_owned_run(a, "r1")
    claimed = await a.relay.post(task("r1", step_id="s"), NOW)
    pending = await a.relay.post(task("r1", step_id="t"), NOW)
    assert await b.relay.claim(claimed, NOW)
    await b.cluster.renew(NOW + LEASE, LEASE)
    assert await b.cluster.take_over(NOW + LEASE + 1) == ["r1"]
    assert len(await b.relay.adopt(["r1"])) == 2

    # a, stale, still believes it owns r1: nothing it does touches b's tasks.
    await a.relay.cancel(claimed)
    assert not await a.relay.withdraw(pending)
    await a.relay.forget_run("r1")
    statuses = await b.relay.statuses([claimed, pending], NOW)
    assert set(statuses) == {claimed, pending}
    assert not statuses[claimed].cancel
    assert await b.relay.cancelled([claimed]) == set()


async def test_a_governed_call_goes_to_the_owner_and_its_answer_back(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await joined(a, b)
    task_id = await a.relay.post(task(), NOW)
    other = await a.relay.post(task("r2"), NOW)
    assert await b.relay.claim(task_id, NOW)

    first = await b.relay.post_call(task_id, "model", b"\x00request\xff", NOW)
    second = await b.relay.post_call(task_id, "tool", b"", NOW)
    assert [
        (c.call_id, c.task_id, c.kind, c.request)
        for c in await a.relay.open_calls([task_id, other])
    ] == [
        (first, task_id, "model", b"\x00request\xff"),
        (second, task_id, "tool", b""),
    ]
    assert await b.relay.open_calls([task_id]) == []  # b does not own the task
    assert await b.relay.call_answers([first, second]) == {}
    assert not await b.relay.answer_call(first, b"not the owner")

    assert await a.relay.answer_call(first, b"\x01answer")
    assert not await a.relay.answer_call(first, b"twice")
    assert await b.relay.call_answers([first, second]) == {first: b"\x01answer"}
    assert [c.call_id for c in await a.relay.open_calls([task_id])] == [second]
    await b.relay.drop_call(first)
    assert await b.relay.call_answers([first]) == {}


async def test_a_task_s_calls_go_with_it(members: tuple[Member, Member]) -> None:
    a, b = members
    await joined(a, b)
    removed = await a.relay.post(task("r1"), NOW)
    superseded = await a.relay.post(task("r2", attempt=1), NOW)
    forgotten = await a.relay.post(task("r3"), NOW)
    calls = [
        await b.relay.post_call(t, "model", b"x", NOW) for t in (removed, superseded, forgotten)
    ]

    await b.relay.remove(removed)
    await a.relay.post(task("r2", attempt=2), NOW)
    await a.relay.forget_run("r3")
    for call_id in calls:
        assert not await a.relay.answer_call(call_id, b"late")
    assert await a.relay.open_calls([removed, superseded, forgotten]) == []


async def test_a_stale_owner_cannot_answer_the_calls_of_an_adopted_task(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await joined(a, b)
    await create_owned_run(a, "r1")
    task_id = await a.relay.post(task("r1"), NOW)
    assert await b.relay.claim(task_id, NOW)
    call_id = await b.relay.post_call(task_id, "model", b"x", NOW)
    await b.cluster.renew(NOW + LEASE, LEASE)
    assert await b.cluster.take_over(NOW + LEASE + 1) == ["r1"]
    await b.relay.adopt(["r1"])

    assert await a.relay.open_calls([task_id]) == []
    assert not await a.relay.answer_call(call_id, b"stale")
    assert [c.call_id for c in await b.relay.open_calls([task_id])] == [call_id]
    assert await b.relay.answer_call(call_id, b"fresh")
