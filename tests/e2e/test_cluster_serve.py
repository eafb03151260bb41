"""`podium serve --cluster`: bad cluster settings end the start with one line and
exit 2; two servers in cluster mode share a file that a server alone locks."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from podium.testing import Cluster, Stubs, create_workflow, echo_step, get_run, run_to_end
from podium.testing.process import CLI

OneLineError = Callable[..., None]
EXIT_CEILING = 30.0


def serve(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "serve", "--db", db, "--address", "127.0.0.1:0", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_CEILING,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--lease", "0"), "--lease must be above 0"),
        (("--lease", "nan"), "--lease must be above 0"),
        (("--lease", "4", "--cluster-poll", "2"), "--cluster-poll must be above 0"),
        (("--server-id", "a b"), "--server-id must match"),
    ],
)
def test_bad_cluster_settings_are_one_line_and_exit_2(
    tmp_path: Path, one_line_error: OneLineError, args: tuple[str, ...], needle: str
) -> None:
    result = serve(str(tmp_path / "podium.db"), "--cluster", *args)
    one_line_error(result, needle)
    assert result.returncode == 2
    assert not (tmp_path / "podium.db").exists()


def test_cluster_mode_needs_a_file(one_line_error: OneLineError) -> None:
    result = serve(":memory:", "--cluster")
    one_line_error(result, "--cluster needs a database file")
    assert result.returncode == 2


async def test_two_cluster_servers_share_a_file_and_serve_each_other_s_runs(
    cluster: Cluster,
) -> None:
    first = cluster.start("first")
    second = cluster.start("second")
    async with (
        grpc.aio.insecure_channel(first.address) as first_channel,
        grpc.aio.insecure_channel(second.address) as second_channel,
    ):
        on_first, on_second = Stubs.on(first_channel), Stubs.on(second_channel)
        await create_workflow(on_first, "hello", {"steps": [echo_step("greet")]})
        # The workflow is in the shared database: the second server runs it.
        run, events = await run_to_end(on_second, "hello", {"name": "Ada"})
        assert await get_run(on_first, run.name) == run
    assert events[-1].sequence == len(events)
