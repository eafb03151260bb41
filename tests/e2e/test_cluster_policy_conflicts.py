"""Hostile policy sync: two servers of one cluster update the same quota at the
same moment, round after round. Each server's own answer right after its
update is never older than that round (a sync that read the overrides before
the local change must not undo it), and both converge on one value, the one
stored last."""

from __future__ import annotations

import asyncio

import grpc

from podium.testing import Cluster, Stubs, eventually
from podium.v1 import control_service_pb2

C = control_service_pb2
ROUNDS = 12


def quota(limit: int) -> C.UpdateQuotaRequest:
    return C.UpdateQuotaRequest(
        quota=C.Quota(
            name="contested",
            scope=C.Scope(kind=C.SCOPE_KIND_PROVIDER, value="simulated"),
            dimension=C.QUOTA_DIMENSION_REQUESTS,
            limit=limit,
        )
    )


async def limit_on(stubs: Stubs) -> float | None:
    reply = await stubs.control.ListQuotas(C.ListQuotasRequest())
    return next((q.limit for q in reply.quotas if q.name == "contested"), None)


async def update_and_read(stubs: Stubs, limit: int, pause: float) -> float | None:
    await stubs.control.UpdateQuota(quota(limit))
    await asyncio.sleep(pause)
    return await limit_on(stubs)


async def test_concurrent_updates_of_one_quota_converge(cluster: Cluster) -> None:
    servers = [cluster.start(name) for name in ("a", "b")]
    async with (
        grpc.aio.insecure_channel(servers[0].address) as channel_a,
        grpc.aio.insecure_channel(servers[1].address) as channel_b,
    ):
        a, b = Stubs.on(channel_a), Stubs.on(channel_b)
        for round_ in range(ROUNDS):
            mine_a, mine_b = 1000 + round_, 2000 + round_

            pause = 0.05 * (round_ % 4)  # let a sync interleave
            seen_a, seen_b = await asyncio.gather(
                update_and_read(a, mine_a, pause), update_and_read(b, mine_b, pause)
            )
            assert seen_a is not None and seen_a % 1000 >= round_, (round_, seen_a)
            assert seen_b is not None and seen_b % 1000 >= round_, (round_, seen_b)

        last = {1000 + ROUNDS - 1, 2000 + ROUNDS - 1}

        async def converged() -> bool:
            on_a, on_b = await limit_on(a), await limit_on(b)
            return on_a == on_b and on_a in last

        await eventually(converged, what="both servers on the value stored last")
