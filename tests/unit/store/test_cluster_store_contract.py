"""The ClusterStore port (podium.engine.ports) and the shared governance of
GovernanceStore (budget reservations, rate buckets and concurrency leases,
breaker states and probes): two servers' stores open on one database.

Leases, takeover with a new epoch, fencing of a stale owner's writes inside
the batch, commands for a run's owner, the event feed other servers read, and
budget reservations checked in the transaction that stores them. Both
backends run it: two stores on one SQLite file, and two on one PostgreSQL
database (the session's embedded server)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from podium.core.states import RunState
from podium.engine.relay_store import WorkerOffer

from .cluster_members import LEASE, NOW, Member, create_owned_run, lost_to
from .records import event, run_record


async def test_a_live_owner_keeps_its_runs(members: tuple[Member, Member]) -> None:
    a, b = members
    assert await a.cluster.join(NOW, LEASE) == []
    assert await b.cluster.join(NOW, LEASE) == []
    await create_owned_run(a, "r1")

    assert await b.cluster.take_over(NOW + LEASE / 2) == []
    assert await a.cluster.lost_runs() == set()


async def test_live_servers_are_those_whose_lease_has_not_expired(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    assert await a.cluster.live_servers(NOW) == set()
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW + 5, LEASE)
    assert await b.cluster.live_servers(NOW + LEASE) == {"a", "b"}
    assert await b.cluster.live_servers(NOW + LEASE + 1) == {"b"}
    await b.cluster.leave()
    assert await a.cluster.live_servers(NOW) == {"a"}


async def test_an_expired_owner_s_runs_are_taken_over_and_its_late_writes_fenced(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW, LEASE)
    await create_owned_run(a, "r1")
    await b.cluster.renew(NOW + LEASE, LEASE)
    reported = lost_to(a)

    assert await b.cluster.take_over(NOW + LEASE + 1) == ["r1"]
    assert await a.cluster.lost_runs() == {"r1"}

    # The stale owner writes the run (and another run it still owns): the taken
    # run's rows are left out, the rest commits, and it is told.
    await create_owned_run(a, "r2")
    a.runs.put_run(run_record("r1", state=RunState.FAILED))
    a.runs.put_event(event("r1", 2))
    a.runs.put_event(event("r2", 2))
    await a.runs.commit()
    assert reported == [{"r1"}]
    assert [e.sequence for e in await b.runs.read_events("r1", 0, 10)] == [1]
    assert (await b.runs.run_status("r1")) == (RunState.RUNNING, 0)
    assert [e.sequence for e in await b.runs.read_events("r2", 0, 10)] == [1, 2]

    # The new owner writes it.
    b.runs.put_event(event("r1", 2))
    await b.runs.commit()
    assert [e.sequence for e in await a.runs.read_events("r1", 0, 10)] == [1, 2]


async def test_a_finished_run_is_not_taken_over(members: tuple[Member, Member]) -> None:
    a, b = members
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW + LEASE, LEASE)
    await create_owned_run(a, "r1")
    a.runs.put_run(run_record("r1", state=RunState.SUCCEEDED, end_time=NOW))
    await a.runs.commit()
    a.cluster.release_run("r1")

    assert await b.cluster.take_over(NOW + LEASE + 1) == []


async def test_orphans_are_shared_among_live_servers(
    members: tuple[Member, Member], tmp_path: Path
) -> None:
    a, b = members
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW, LEASE)
    await create_owned_run(a, "r0")
    await create_owned_run(a, "r1")
    await create_owned_run(b, "r2")
    await create_owned_run(b, "r3")
    # b's lease expired; a, live, takes them all (one live server: all of them).
    assert sorted(await a.cluster.take_over(NOW + LEASE + 1)) == ["r2", "r3"]
    # Both leases expired but b renews: a's four runs are orphans for b, which
    # takes its fair share, half of them, per pass while a counts as live...
    await b.cluster.renew(NOW + 2 * LEASE, LEASE)
    await a.cluster.renew(NOW + 2 * LEASE, LEASE)
    assert await b.cluster.take_over(NOW + 2 * LEASE + 1) == []
    # ... and all of them once a's lease is gone.
    await a.cluster.leave()
    taken = await b.cluster.take_over(NOW + 2 * LEASE + 1)
    assert sorted(taken) == ["r0", "r1", "r2", "r3"]


async def test_a_restart_under_the_same_id_takes_its_runs_back_with_a_new_epoch(
    members: tuple[Member, Member], tmp_path: Path
) -> None:
    a, _ = members
    await a.cluster.join(NOW, LEASE)
    await create_owned_run(a, "r1")
    reported = lost_to(a)

    assert await a.cluster.join(NOW + 1, LEASE) == ["r1"]
    a.runs.put_event(event("r1", 2))
    await a.runs.commit()
    assert reported == []
    assert [e.sequence for e in await a.runs.read_events("r1", 0, 10)] == [1, 2]


async def test_a_restart_under_the_same_id_drops_the_leases_of_its_earlier_life(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW, LEASE)
    lease = [("one-run", 1)]
    assert await a.governance.take_shared([], lease, "before", NOW) is None
    assert await b.governance.take_shared([], lease, "other", NOW) == 0.0
    # a restarts under its id: the lease it held counts no more (its runs, resumed,
    # take theirs anew), where the renewed server lease would have revived it.
    await a.cluster.join(NOW + 1, LEASE)
    assert await b.governance.take_shared([], lease, "other", NOW + 1) is None


async def test_commands_reach_the_owner_and_their_result_the_sender(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW, LEASE)
    await create_owned_run(a, "r1")

    command_id = await b.cluster.post_command("r1", "cancel", {"reason": "why"}, NOW)
    assert await b.cluster.pending_commands() == []  # not b's run
    assert await a.cluster.pending_commands() == [(command_id, "r1", "cancel", {"reason": "why"})]
    assert await b.cluster.command_result(command_id) is None

    a.cluster.finish_command(command_id, {"error": "x"})
    await a.runs.commit()
    assert await b.cluster.command_result(command_id) == {"error": "x"}
    assert await a.cluster.pending_commands() == []


async def test_the_feed_gives_other_servers_events_in_commit_order(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW, LEASE)
    start = await b.cluster.feed_position()
    await create_owned_run(a, "r1")
    await create_owned_run(b, "r2")
    a.runs.put_event(event("r1", 2))
    await a.runs.commit()

    # Read forward, a page at a time: b's own event (r2) is skipped.
    page, after = await b.cluster.events_after(start, 1)
    assert [(e.run_id, e.sequence) for e in page] == [("r1", 1)]
    rest, position = await b.cluster.events_after(after, 100)
    assert [(e.run_id, e.sequence) for e in rest] == [("r1", 2)]
    assert all(e.tenant == "default" for e in [*page, *rest])
    assert position == await a.cluster.feed_position()
    assert await b.cluster.events_after(position, 100) == ([], position)
    # Its own events are not relayed back to a server.
    mine, _ = await a.cluster.events_after(start, 100)
    assert [(e.run_id, e.sequence) for e in mine] == [("r2", 1)]


async def test_shared_reservations_never_exceed_a_limit(members: tuple[Member, Member]) -> None:
    a, b = members
    key = ("team", "2026-12")
    limits = [("team", "2026-12", Decimal(10))]
    body = {"keys": [list(key)], "provider": "p", "model": "m"}
    assert await a.governance.reserve_within("x1", "r1", Decimal(4), body, limits) is None
    assert await b.governance.reserve_within("x2", "r2", Decimal(4), body, limits) is None
    # 8 reserved: 3 more would make 11.
    refused = await b.governance.reserve_within("x3", "r3", Decimal(3), body, limits)
    assert refused == ("team", Decimal(0), Decimal(8))
    assert {row[0] for row in await a.governance.open_reservations()} == {"x1", "x2"}

    # Settling x1 at 1 (spend added, reservation closed in one commit) frees 3.
    a.governance.add_budget_spend("team", "2026-12", Decimal(1))
    a.governance.close_reservation("x1")
    await a.governance.commit()
    assert await b.governance.reserve_within("x3", "r3", Decimal(5), body, limits) is None
    refused = await a.governance.reserve_within("x4", "r4", Decimal("0.000000001"), body, limits)
    assert refused == ("team", Decimal(1), Decimal(9))
    # A key no limit names is not checked.
    other = {"keys": [["other", ""]], "provider": "p", "model": "m"}
    assert await a.governance.reserve_within("x5", "r5", Decimal(100), other, []) is None


async def test_shared_buckets_and_leases_hold_across_servers(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW, LEASE)
    # A bucket of capacity 2, one a second, created full.
    take = [("rpm", 1.0, 1.0, 2.0)]
    assert await a.governance.take_shared(take, [], "t1", NOW) is None
    assert await b.governance.take_shared(take, [], "t2", NOW) is None
    wait = await a.governance.take_shared(take, [], "t3", NOW)
    assert wait == pytest.approx(1.0)
    assert await b.governance.take_shared(take, [], "t3", NOW + 1) is None
    # More than the capacity never fits.
    assert await a.governance.take_shared([("rpm", 3.0, 1.0, 2.0)], [], "t4", NOW + 9) == float(
        "inf"
    )
    # A refund up to the capacity.
    a.governance.adjust_shared("rpm", 5.0, 2.0)
    await a.governance.commit()
    assert await b.governance.take_shared([("rpm", 2.0, 1.0, 2.0)], [], "t5", NOW + 1) is None

    # Leases: one at a time across servers, all or nothing with the takes.
    lease = [("in-flight", 1)]
    assert await a.governance.take_shared([], lease, "l1", NOW + 1) is None
    assert await b.governance.take_shared([], lease, "l2", NOW + 1) == 0.0
    a.governance.release_shared("l1")
    await a.governance.commit()
    assert await b.governance.take_shared([], lease, "l2", NOW + 1) is None
    # A lease of a server whose lease expired does not count.
    assert await a.governance.take_shared([], lease, "l3", NOW + LEASE + 1) is None


async def test_a_breaker_change_is_shared_and_one_probe_is_claimed(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    # Never published: the probe is local.
    assert await b.governance.claim_probe("default", "provider:p", 1.0, NOW, 30.0)
    a.governance.publish_breaker("default", "provider:p", "OPEN", NOW)
    await a.governance.commit()
    assert await b.governance.breaker_states() == [("default", "provider:p", "OPEN", NOW)]
    # One probe per open: the first claim wins until it expires.
    assert await b.governance.claim_probe("default", "provider:p", NOW, NOW + 5, 30.0)
    assert not await a.governance.claim_probe("default", "provider:p", NOW, NOW + 6, 30.0)
    assert await a.governance.claim_probe("default", "provider:p", NOW, NOW + 36, 30.0)
    # A claim for an open that is no longer the last change is refused.
    a.governance.publish_breaker("default", "provider:p", "OPEN", NOW + 40)
    await a.governance.commit()
    assert not await b.governance.claim_probe("default", "provider:p", NOW, NOW + 41, 30.0)
    assert await b.governance.claim_probe("default", "provider:p", NOW + 40, NOW + 41, 30.0)
    a.governance.publish_breaker("default", "provider:p", "CLOSED", NOW + 42)
    await a.governance.commit()
    assert await b.governance.breaker_states() == [("default", "provider:p", "CLOSED", NOW + 42)]


async def test_a_dead_server_s_rows_are_deleted_only_long_after_its_lease_expired(
    members: tuple[Member, Member],
) -> None:
    a, b = members
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW, LEASE)
    one = [("one-at-a-time", 1)]
    assert await a.governance.take_shared([], one, "a-lease", NOW) is None
    await a.relay.set_offers([WorkerOffer("default", "wlog")], {"wlog": {"name": "wlog"}})
    await b.relay.set_offers([WorkerOffer("default", "other")], {"other": {"name": "other"}})
    await create_owned_run(a, "r1")
    expired = NOW + LEASE  # a's lease ends; b renews and takes a's run over
    await b.cluster.renew(expired + 1, LEASE)
    assert await b.cluster.take_over(expired + 1) == ["r1"]

    # Within the margin a server that was only late to renew gets everything back
    # (its leases count again): nothing of it is deleted yet.
    assert await b.cluster.forget_servers(expired) == 0
    await a.cluster.renew(expired + 2, LEASE)
    assert await b.governance.take_shared([], one, "b-lease", expired + 2) == 0.0
    assert await b.relay.offers_elsewhere(expired + 2) == {"a": [WorkerOffer("default", "wlog")]}

    # Past the margin: a's quota lease, presence and lease row go; b's own stay,
    # even while b's lease row has expired too (b is the one running the pass).
    expired = expired + 2 + LEASE
    assert await b.cluster.forget_servers(expired + LEASE * 20) == 3
    assert await a.cluster.live_servers(expired - 1) == {"b"}
    # a comes back: its old rows do not revive with the new lease.
    await a.cluster.renew(expired + LEASE * 20, LEASE)
    now = expired + LEASE * 20
    await b.cluster.renew(now, LEASE)
    assert await b.relay.offers_elsewhere(now) == {}
    assert await a.relay.offers_elsewhere(now) == {"b": [WorkerOffer("default", "other")]}
    assert await b.governance.take_shared([], one, "b-lease", now) is None
    assert await a.cluster.forget_servers(now) == 0  # b's lease is live


async def test_rows_of_a_server_without_a_lease_row_are_deleted(
    members: tuple[Member, Member],
) -> None:
    # It left (a graceful stop removes its lease row) or never joined: a joining
    # server drops its quota leases and publishes its presence again anyway.
    a, b = members
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW, LEASE)
    await a.relay.set_offers([WorkerOffer("default", "wlog")], {"wlog": {"name": "wlog"}})
    assert await a.governance.take_shared([], [("one", 1)], "a-lease", NOW) is None
    await a.cluster.leave()
    # An unfinished run it owned keeps nothing of it but the run (taken over).
    assert await b.cluster.forget_servers(NOW) == 2
    await a.cluster.join(NOW + 1, LEASE)
    assert await b.relay.offers_elsewhere(NOW + 1) == {}
    assert await b.governance.take_shared([], [("one", 1)], "b-lease", NOW + 1) is None


async def test_a_deleted_run_leaves_no_owner_row_or_command(
    members: tuple[Member, Member],
) -> None:
    # Retention (delete_runs) takes a run's ownership and queued commands with
    # it: nothing is left for its owner to carry out.
    a, b = members
    await a.cluster.join(NOW, LEASE)
    await b.cluster.join(NOW, LEASE)
    await create_owned_run(a, "r1")
    command_id = await b.cluster.post_command("r1", "cancel", {"reason": "late"}, NOW)
    a.runs.put_run(run_record("r1", state=RunState.SUCCEEDED, end_time=NOW))
    await a.runs.commit()

    assert await a.runs.delete_runs(["r1"]) == 1
    assert await a.cluster.pending_commands() == []
    assert await b.cluster.command_result(command_id) is None
