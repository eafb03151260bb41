"""A Podium server in its own process, for one workload.

Run as `python -m bench.server_process DB_PATH`. Prints `{"port": N}` once it
serves on an ephemeral loopback port, then, after SIGTERM and a graceful stop,
`{"peak_rss_mb": X}`: the server's own high-water mark, so that the client
driving the benchmark never counts towards it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from bench.measure import own_peak_rss_mb
from podium.server import loop
from podium.server.app import start_server


async def serve(db_path: str) -> None:
    stop = asyncio.Event()
    # Installed before the port is announced: the parent may signal right after.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    server = await start_server("127.0.0.1:0", db_path)
    print(json.dumps({"port": server.port}), flush=True)
    await stop.wait()
    await server.stop(grace=1.0)
    print(json.dumps({"peak_rss_mb": own_peak_rss_mb()}), flush=True)


if __name__ == "__main__":
    (db,) = sys.argv[1:]
    loop.run(serve(db))
