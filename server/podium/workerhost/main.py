"""Runs a worker for the installed agent plugins until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from podium.core.failures import AgentError, failure_from_exception
from podium.plugins.api import Agent
from podium.plugins.manager import load_plugins
from podium.telemetry.setup import otlp_tracer_provider
from podium.worker import SessionRejected, TlsOptions, Worker

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("podium.worker")


def _raise_failure(type_: str, message: str, retryable: bool) -> BaseException:
    return AgentError(message, code=type_, retryable=retryable)


def _failure_of(error: BaseException) -> tuple[str, str, bool]:
    failure = failure_from_exception(error)
    return failure.type, failure.message, failure.retryable


def installed_agents(names: Sequence[str] = ()) -> list[Agent]:
    """The agents of the installed plugins (all, or those named); a plugin
    that fails to load is logged and skipped."""
    report = load_plugins()
    for failed in report.failed:
        log.warning("plugin %s failed to load: %s", failed.name, failed.error)
    agents = {entry.name: entry.agent for entry in report.registry.agents}
    if names:
        unknown = sorted(set(names) - set(agents))
        if unknown:
            raise LookupError(
                f"no installed plugin provides agent(s) {', '.join(unknown)}"
                f" (installed: {', '.join(sorted(agents)) or 'none'})"
            )
        return [agents[name] for name in names]
    return list(agents.values())


def build_worker(
    address: str,
    *,
    queues: Sequence[str],
    concurrency: int = 1,
    agents: Sequence[str] = (),
    identity: str = "",
    token: str | None = None,
    tls: TlsOptions | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Worker:
    return Worker(
        address,
        installed_agents(agents),
        queues=queues,
        concurrency=concurrency,
        identity=identity,
        raise_failure=_raise_failure,
        failure_of=_failure_of,
        token=token,
        tls=tls,
        tracer_provider=tracer_provider,
    )


def run_worker(
    address: str,
    *,
    queues: Sequence[str],
    concurrency: int = 1,
    agents: Sequence[str] = (),
    identity: str = "",
    token: str | None = None,
    tls: TlsOptions | None = None,
) -> int:
    """Serves until a signal arrives; returns the process exit code. With the
    OTEL_* variables of `podium serve`, its attempt spans go to OTLP too, in
    the runs' traces."""
    tracer_provider = otlp_tracer_provider()
    try:
        worker = build_worker(
            address,
            queues=queues,
            concurrency=concurrency,
            agents=agents,
            identity=identity,
            token=token,
            tls=tls,
            tracer_provider=tracer_provider,
        )
    except (LookupError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # Configured once the options proved good: a bad one is a single error line.
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(_serve(worker))
    except SessionRejected as error:
        print(f"error: the server refused the worker: {error}", file=sys.stderr)
        return 2
    finally:
        if tracer_provider is not None:
            tracer_provider.shutdown()


async def _serve(worker: Worker) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    log.info(
        "worker %s serving %s on queue(s) %s of %s, %d at once",
        worker.identity,
        ", ".join(worker.agents),
        ", ".join(worker.queues),
        worker.address,
        worker.concurrency,
    )
    await worker.run()
    log.info("stopped")
    return 0
