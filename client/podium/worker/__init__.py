"""A Podium worker in Python: serves agents to a Podium server over
WorkerService, out of the server's process. `podium worker` runs the agent
plugins installed beside it; `Worker` serves any agent objects."""

from podium.worker._context import (
    CallFailed,
    ModelCompletion,
    ModelResult,
    ModelToolCall,
    ModelUsage,
    ToolDescription,
    WorkerStepContext,
)
from podium.worker._worker import DEFAULT_QUEUE, SessionRejected, Worker, WorkerAgentSpec

__all__ = [
    "DEFAULT_QUEUE",
    "CallFailed",
    "ModelCompletion",
    "ModelResult",
    "ModelToolCall",
    "ModelUsage",
    "SessionRejected",
    "ToolDescription",
    "Worker",
    "WorkerAgentSpec",
    "WorkerStepContext",
]
