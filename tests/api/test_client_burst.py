"""A burst of StartRun from one AsyncClient, or from many threads sharing one
blocking Client, completes without errors: the client bounds its calls in
flight and retries what grpcio cancels or the server sheds, with the same
request_id, so every call starts exactly one run."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from podium.client import AsyncClient, Client, FlowPolicy
from podium.core.limits import Limits
from podium.server.app import PodiumServer
from podium.testing import Stubs, create_workflow, echo_step, serving
from podium.v1 import execution_service_pb2, run_pb2

# 5,000 is the burst of the finding; 3,000 keeps this test within seconds on
# two shared cores and is still past where grpcio starts cancelling calls
# on one channel (about 2,000).
BURST = int(os.environ.get("PODIUM_BURST", "3000"))


async def count_runs(stubs: Stubs) -> int:
    total, token = 0, ""
    while True:
        page = await stubs.executions.ListRuns(
            execution_service_pb2.ListRunsRequest(page_size=1000, page_token=token)
        )
        total += len(page.runs)
        token = page.next_page_token
        if not token:
            return total


async def test_a_burst_of_runs_from_one_client_has_no_errors(
    server: PodiumServer, stubs: Stubs
) -> None:
    await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
    async with AsyncClient(f"127.0.0.1:{server.port}", timeout=None) as client:
        results = await asyncio.gather(
            *(client.start_run("hello", {"n": n}) for n in range(BURST)),
            return_exceptions=True,
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], f"{len(errors)} of {BURST} failed, e.g. {errors[0]!r}"
    assert len({r.name for r in results if not isinstance(r, BaseException)}) == BURST
    assert await count_runs(stubs) == BURST


def test_the_flow_policy_is_configurable_and_checked() -> None:
    assert FlowPolicy().max_in_flight == 1000
    assert FlowPolicy(max_in_flight=10).max_in_flight == 10
    for bad in ({"max_in_flight": 0}, {"max_attempts": 0}, {"max_pushbacks": -1}):
        try:
            FlowPolicy(**bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")
    assert 0 <= FlowPolicy(initial_backoff=1, max_backoff=2).backoff(5) <= 2


# Threads sharing one blocking Client: enough to keep many calls in flight,
# few enough for two shared cores.
THREADS = 64
# Thousands, as the finding asks, within seconds on two shared cores.
THREADED_BURST = 2000


def start_runs_from_threads(client: Client, count: int) -> list[run_pb2.Run | BaseException]:
    """`count` StartRuns, each with its own request_id, from THREADS threads."""

    def start(n: int) -> run_pb2.Run | BaseException:
        try:
            return client.start_run("hello", {"n": n}, request_id=f"burst-{n}")
        except Exception as error:
            return error

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(start, range(count)))


async def assert_one_run_per_request(
    stubs: Stubs, results: list[run_pb2.Run | BaseException], count: int
) -> None:
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], f"{len(errors)} of {count} failed, e.g. {errors[0]!r}"
    runs = [r for r in results if not isinstance(r, BaseException)]
    assert len({run.name for run in runs}) == count
    # Retried calls returned the run their first attempt started: one run each.
    assert await count_runs(stubs) == count


async def test_a_burst_from_many_threads_sharing_a_blocking_client_has_no_errors(
    server: PodiumServer, stubs: Stubs
) -> None:
    await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
    with Client(f"127.0.0.1:{server.port}", timeout=None) as client:
        results = await asyncio.to_thread(start_runs_from_threads, client, THREADED_BURST)
    await assert_one_run_per_request(stubs, results, THREADED_BURST)


async def test_the_blocking_client_bounds_its_calls_in_flight() -> None:
    # The bound is the client's own: a server allowing exactly that many never
    # sheds (it counts a call until its handler returns, before the client
    # has the answer and frees the call's slot).
    async with serving(limits=Limits(max_calls_in_flight=8)) as (server, stubs):
        await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
        flow = FlowPolicy(max_in_flight=8)
        with Client(f"127.0.0.1:{server.port}", timeout=None, flow=flow) as client:
            results = await asyncio.to_thread(start_runs_from_threads, client, 500)
        await assert_one_run_per_request(stubs, results, 500)
        assert server.shedder is not None
        assert (server.shedder.shed, server.shedder.in_flight) == (0, 0)


# The server's limit is far below what the clients send at once: most calls
# are shed at least once, and the clients' retries still start every run once.
SMALL_LIMIT = 4
SHED_BURST = 400
MAX_BURSTS = 5


async def test_a_burst_against_a_shedding_server_completes_without_errors() -> None:
    # Whether calls overlap past the limit is the scheduler's doing: a burst
    # that happened not to be shed proves nothing, so another is sent, each on
    # a fresh server so that its runs are counted alone.
    for _ in range(MAX_BURSTS):
        async with serving(limits=Limits(max_calls_in_flight=SMALL_LIMIT)) as (server, stubs):
            await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
            async with AsyncClient(f"127.0.0.1:{server.port}", timeout=None) as client:
                results = await asyncio.gather(
                    *(
                        client.start_run("hello", {"n": n}, request_id=f"burst-{n}")
                        for n in range(SHED_BURST)
                    ),
                    return_exceptions=True,
                )
            await assert_one_run_per_request(stubs, results, SHED_BURST)
            assert server.shedder is not None
            if server.shedder.shed > 0:
                return
    pytest.fail(f"none of {MAX_BURSTS} bursts of {SHED_BURST} calls was shed")


async def test_a_threaded_burst_against_a_shedding_server_completes_without_errors() -> None:
    for _ in range(MAX_BURSTS):  # as above: until a burst was shed
        async with serving(limits=Limits(max_calls_in_flight=SMALL_LIMIT)) as (server, stubs):
            await create_workflow(stubs, "hello", {"steps": [echo_step("greet")]})
            with Client(f"127.0.0.1:{server.port}", timeout=None) as client:
                results = await asyncio.to_thread(start_runs_from_threads, client, SHED_BURST)
            await assert_one_run_per_request(stubs, results, SHED_BURST)
            assert server.shedder is not None
            if server.shedder.shed > 0:
                return
    pytest.fail(f"none of {MAX_BURSTS} bursts of {SHED_BURST} calls was shed")
