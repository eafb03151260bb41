"""Several `podium serve --cluster` processes on one database (docs/cluster.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from podium.testing.process import ServerProcess, start_server_process

# Short leases for tests: a killed server's runs are taken over within about
# a lease and a quarter.
TEST_LEASE = 2.0
TEST_POLL = 0.05


@dataclass
class Cluster:
    """Servers of one cluster on one database (`db`: what `--db` gets); `stop_all`
    stops those still running."""

    db: str
    log_dir: Path
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    lease: float = TEST_LEASE
    poll: float = TEST_POLL
    servers: list[ServerProcess] = field(default_factory=list)

    def start(
        self,
        server_id: str,
        *,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> ServerProcess:
        """Starts `podium serve --cluster --server-id SERVER_ID` and returns once it serves."""
        server = start_server_process(
            self.db,
            env={**self.env, **(env or {})},
            args=(
                "--cluster",
                "--server-id",
                server_id,
                "--lease",
                f"{self.lease:g}",
                "--cluster-poll",
                f"{self.poll:g}",
                *args,
            ),
            cwd=self.cwd,
            log_dir=self.log_dir,
        )
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            if server.running:
                server.stop()
