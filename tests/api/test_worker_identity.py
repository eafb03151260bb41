"""Workers on a server with authentication: a worker's session and its
governed calls need a credential with the `worker` role; without one, or with
another role, the session is refused at once and the worker stops rather than
retrying forever."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podium.identity.principal import Role
from podium.server.security import SecurityConfig
from podium.testing import create_workflow, plain, run_to_end, serving, step_of, workers_serve
from podium.testing.identity import new_token, stubs_for
from podium.v1 import control_service_pb2, run_pb2
from podium.worker import SessionRejected, Worker


class Loud:
    name = "loud"
    description = "Upper-cases its text."
    version = "1"

    async def run(self, ctx: Any) -> Any:
        return {"text": str(ctx.input["text"]).upper()}


SPEC = {"steps": [{"id": "shout", "agent": "loud", "input": {"text": "input.text"}}]}


async def test_a_worker_with_a_worker_token_serves_steps(db_path: str) -> None:
    async with serving(db_path, security=SecurityConfig(auth=True)) as served:
        worker_token = await new_token(served.server, Role.WORKER)
        developer = await new_token(served.server, Role.DEVELOPER)
        worker = Worker(served.address, [Loud()], token=worker_token)
        task = asyncio.create_task(worker.run())
        try:
            async with stubs_for(served.address, developer) as stubs:
                await workers_serve(stubs, "loud")
                await create_workflow(stubs, "loud", SPEC)
                run, _ = await run_to_end(stubs, "loud", {"text": "hi"})
        finally:
            worker.stop()
            await task
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run.failure
    assert plain(step_of(run, "shout").output) == {"text": "HI"}


@pytest.mark.parametrize("role", [None, Role.VIEWER, Role.DEVELOPER])
async def test_a_worker_without_the_worker_role_is_refused(db_path: str, role: Role | None) -> None:
    async with serving(db_path, security=SecurityConfig(auth=True)) as served:
        token = None if role is None else await new_token(served.server, role)
        worker = Worker(served.address, [Loud()], token=token)
        with pytest.raises(SessionRejected) as refused:
            await asyncio.wait_for(worker.run(), 60)
        async with stubs_for(served.address, await new_token(served.server, Role.ADMIN)) as stubs:
            agents = (
                await stubs.control.ListAgents(control_service_pb2.ListAgentsRequest())
            ).agents
    # Refused before its opening message was read: the server never saw its agents.
    assert "loud" not in {agent.name for agent in agents}
    expected = "needs credentials" if role is None else "may not call Connect"
    assert expected in str(refused.value)
