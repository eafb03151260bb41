"""What the engine needs from storage. The engine owns this contract; each
backend under `podium.store` implements it, and only the composition root
(`podium.server.app`) knows which one runs.

Writes are fire-and-forget submissions that a backend batches (group commit)
and commits on its own, promptly, whether or not anyone awaits: the engine
publishes events from `after_commit` callbacks that nothing awaits. `commit()`
only waits until everything submitted before it is durable. A batch commits
whole or not at all, and reads see committed data only, never part of a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from decimal import Decimal
from typing import Any, Protocol

from podium.core.model import (
    DEFAULT_TENANT,
    AttemptRecord,
    CallbackRecord,
    Event,
    ItemRecord,
    NotificationRecord,
    RerunBatchRecord,
    RunRecord,
    RunView,
    SignalRecord,
    StepRecord,
)
from podium.core.spec import ChildWorkflowSpec, WorkflowSpec, WorkflowVersion
from podium.core.states import EventType, RunState

__all__ = ["ClusterStore", "RunCommand", "RunStore", "WorkflowStore"]


class WorkflowStore(Protocol):
    """Versioned workflow definitions (soft-deleted: runs keep their version)."""

    async def create_workflow(
        self,
        workflow_id: str,
        spec: WorkflowSpec,
        now: float,
        applied: bytes = b"",
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> int:
        """Stores the next version of a workflow, with its definition as the client applied
        it (opaque bytes, returned as they are); durable when this returns."""
        ...

    async def get_workflow(
        self, workflow_id: str, version: int = 0, *, tenant: str = DEFAULT_TENANT
    ) -> WorkflowVersion | None:
        """A version (latest when 0) of a tenant's workflow that is not deleted (a workflow
        id is unique within its tenant)."""
        ...

    async def get_workflow_version_any(
        self, workflow_id: str, version: int, *, tenant: str = DEFAULT_TENANT
    ) -> WorkflowVersion | None:
        """A version even if its workflow is deleted."""
        ...

    async def list_workflows(
        self, limit: int, after_id: str = "", *, tenant: str = DEFAULT_TENANT
    ) -> list[WorkflowVersion]:
        """The latest version of each live workflow of a tenant, by id, after `after_id`."""
        ...

    async def delete_workflow(self, workflow_id: str, *, tenant: str = DEFAULT_TENANT) -> bool:
        """Soft-deletes every version; whether the workflow existed."""
        ...


class RunStore(WorkflowStore, Protocol):
    """Runs with their steps, attempts, items and events, and the step cache."""

    # -- writes: submitted now, durable at the next commit ------------------------

    def put_run(self, run: RunRecord) -> None: ...
    def put_step(self, run_id: str, step: StepRecord) -> None: ...
    def put_attempt(self, run_id: str, step_id: str, attempt: AttemptRecord) -> None: ...
    def put_event(self, event: Event) -> None: ...
    def put_item(self, run_id: str, step_id: str, item: ItemRecord) -> None: ...
    def put_cache(self, key: str, output: Any, expire_time: float) -> None: ...

    @property
    def batch_id(self) -> int:
        """Identifies the batch that writes submitted now will commit with:
        it changes when a batch is taken for commit."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once, in registration order, after the batch that
        writes submitted now belong to (`batch_id`) has committed: every write
        of that batch, those submitted after the callback included."""
        ...

    async def commit(self) -> None:
        """Returns once everything submitted so far is committed (durable)."""
        ...

    # -- reads: committed data only -------------------------------------------------

    async def get_run(self, run_id: str) -> RunView | None:
        """A run with its steps and their attempts, in one snapshot; its
        `last_sequence` is at least its highest committed event sequence (the
        run record is not rewritten for every event)."""
        ...

    async def run_tenant(self, run_id: str) -> str | None:
        """The tenant a run belongs to (None: no such run)."""
        ...

    async def run_status(self, run_id: str) -> tuple[RunState, int] | None:
        """A run's state and the last sequence its run record has committed,
        without its steps."""
        ...

    async def find_run_by_request_id(
        self, request_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> RunRecord | None:
        """A tenant's run by its request id (request ids are unique within a tenant)."""
        ...

    async def list_runs(
        self,
        limit: int,
        *,
        after: tuple[float, str] | None = None,
        workflow_id: str = "",
        states: Iterable[RunState] = (),
        labels: dict[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
        parent_run_id: str = "",
    ) -> list[RunRecord]:
        """A tenant's runs newest first (create_time, then run_id), after the `after` key."""
        ...

    async def unfinished_run_ids(self) -> list[str]:
        """Runs not in a final state, oldest first."""
        ...

    async def unfinished_runs(
        self, limit: int, *, after: tuple[float, str] | None = None
    ) -> list[RunView]:
        """Up to `limit` runs not in a final state, oldest first (create_time,
        then run_id), after the `after` key, each with its steps and their
        attempts, all read in one snapshot; each run's `last_sequence` is at
        least its highest committed event sequence (as for `get_run`). What
        a restarted server resumes, a batch per read."""
        ...

    async def last_sequence(self, run_id: str) -> int:
        """The highest committed event sequence of a run (0 without events):
        the truth a resumed run continues from."""
        ...

    async def read_events(self, run_id: str, after_sequence: int, limit: int) -> list[Event]: ...

    async def read_events_of_types(
        self, run_id: str, types: Collection[EventType], limit: int
    ) -> list[Event]:
        """A run's events of the given types, in sequence order, at most `limit`
        (what insights read: LLM calls, waits), without the rest of the log."""
        ...

    async def items_of(self, run_id: str, step_id: str) -> list[ItemRecord]:
        """A fan-out's or loop's finished items, by index."""
        ...

    async def get_cache(self, key: str, now: float) -> tuple[bool, Any]:
        """(True, output) for a live cache entry, else (False, None)."""
        ...

    # -- signals, callbacks and completion notifications --------------------------------

    def put_rerun_batch(self, batch: RerunBatchRecord) -> None:
        """Writes a RerunRuns call's record, keyed by (tenant, request_id), in
        the current batch (a second write of the same key changes nothing)."""
        ...

    async def get_rerun_batch(self, request_id: str, *, tenant: str) -> RerunBatchRecord | None:
        """A tenant's RerunRuns record by its request id."""
        ...

    def put_signal(self, signal: SignalRecord) -> None:
        """Writes a signal, keyed by (run_id, position), in the current batch."""
        ...

    async def signals_of(self, run_id: str) -> list[SignalRecord]:
        """A run's signals in order of position (what a resumed run keeps)."""
        ...

    async def signals_of_runs(self, run_ids: Sequence[str]) -> dict[str, list[SignalRecord]]:
        """`signals_of` for many runs in one read (a restart resumes runs a
        batch at a time): run id to its signals; a run without any is absent."""
        ...

    def put_callback(self, callback: CallbackRecord) -> None:
        """Writes a callback token's record, keyed by token, in the current batch."""
        ...

    async def get_callback(self, token: str) -> CallbackRecord | None:
        """The record of a token (None: never issued)."""
        ...

    async def callbacks_of(self, run_id: str) -> list[CallbackRecord]:
        """A run's callback records (a resumed callback step finds its token)."""
        ...

    async def callbacks_of_runs(self, run_ids: Sequence[str]) -> dict[str, list[CallbackRecord]]:
        """`callbacks_of` for many runs in one read: run id to its records,
        by issue time; a run without any is absent."""
        ...

    def put_notification(self, notification: NotificationRecord) -> None:
        """Writes a run's notification record, keyed by run_id, in the current batch."""
        ...

    async def get_notification(self, run_id: str) -> NotificationRecord | None: ...

    async def notifications_of(self, run_ids: Sequence[str]) -> dict[str, NotificationRecord]:
        """`get_notification` for many runs in one read: run id to its
        notification; a run without one is absent."""
        ...

    async def pending_notifications(self) -> list[NotificationRecord]:
        """Notifications in state PENDING (to deliver, after a restart too), by due time."""
        ...

    # -- retention --------------------------------------------------------------------

    async def finished_runs_before(self, cutoff: float, limit: int) -> list[str]:
        """Ids of runs in a final state that ended before `cutoff`, oldest first."""
        ...

    async def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Deletes runs with everything recorded about them (signals, callbacks and
        notifications included), in one
        transaction; how many existed."""
        ...

    async def delete_rerun_batches_before(self, cutoff: float) -> int:
        """Deletes the RerunRuns records made before `cutoff` none of whose
        originals exists any more (a record naming none is kept until `cutoff`
        too); how many. While one original exists, a retry must still re-run
        the same originals, so its record stays."""
        ...


# A control request (CancelRun, ResolveApproval) for a run that another server
# owns, queued in the database for the owner: (id, run_id, kind, body).
RunCommand = tuple[int, str, str, dict[str, Any]]


class ClusterStore(Protocol):
    """Several servers on one database (cluster mode): server leases, run
    ownership with fencing epochs, commands for a run's owner, and the
    database-wide event feed. Times are wall-clock seconds of the caller.

    A run's writes (RunStore.put_*) commit only while its owner row names this
    server with the epoch it holds; a batch leaves a fenced run's rows out and
    reports the run to the `on_lost` callback."""

    @property
    def server_id(self) -> str: ...

    async def join(self, now: float, lease_seconds: float) -> list[str]:
        """Registers this server's lease (durable on return) and takes back, with a
        new epoch, the unfinished runs its id owned (a restart under the same id);
        drops the shared quota leases that id held before (its runs take them anew)."""
        ...

    async def renew(self, now: float, lease_seconds: float) -> None:
        """Extends this server's lease to `now + lease_seconds` (re-registers it if
        another server removed it as expired)."""
        ...

    async def leave(self) -> None:
        """Removes this server's lease (a graceful stop): its runs are taken over at once."""
        ...

    async def live_servers(self, now: float) -> set[str]:
        """The servers whose lease has not expired at `now` (this one included once joined)."""
        ...

    async def take_over(self, now: float) -> list[str]:
        """Claims, with epoch + 1, a fair share (orphaned / live servers, rounded up) of
        the unfinished runs whose owner's lease expired before `now` or that have no
        owner; returns the runs claimed."""
        ...

    async def forget_servers(self, before: float) -> int:
        """Deletes what the other servers whose lease expired before `before` (or that
        hold no lease row: they left, or never joined) still have in the database:
        their shared quota leases and worker presence, and their lease row once no
        unfinished run names them. Their runs, relayed tasks and schedule fires are
        left to takeover. How many rows it deleted."""
        ...

    def own_new_run(self, run_id: str) -> None:
        """Makes this server the owner (epoch 1) of a run being created: the owner
        row rides the batch of the run's first write."""
        ...

    def release_run(self, run_id: str) -> None:
        """Stops holding a finished run (its owner row stays until the run is deleted)."""
        ...

    def forget_run(self, run_id: str) -> None:
        """Stops holding a run locally (it was lost to another server)."""
        ...

    def on_lost(self, callback: Callable[[set[str]], None]) -> None:
        """`callback(run_ids)` when a batch was refused for runs this server no longer owns."""
        ...

    async def lost_runs(self) -> set[str]:
        """Runs held locally whose owner row now names another server or epoch."""
        ...

    async def post_command(self, run_id: str, kind: str, body: dict[str, Any], now: float) -> int:
        """Queues a command for a run's owner; durable on return; its id."""
        ...

    async def pending_commands(self) -> list[RunCommand]:
        """Commands not yet done for the runs this server owns, oldest first."""
        ...

    def finish_command(self, command_id: int, result: dict[str, Any]) -> None:
        """Marks a command done with its result; rides the next commit."""
        ...

    async def command_result(self, command_id: int) -> dict[str, Any] | None:
        """A done command's result, None while it is pending."""
        ...

    async def feed_position(self) -> int:
        """The highest feed number committed (0 for none)."""
        ...

    async def events_after(self, position: int, limit: int) -> tuple[list[Event], int]:
        """Events committed by other servers with a feed number above `position` (at
        most `limit` read), in feed order, with their run's tenant; and the position
        to read from next. A server reads forward only: each call from the position
        the previous one returned (or `feed_position()` at the start)."""
        ...


class ChildRuns(Protocol):
    """What a `workflow` step (podium.engine.child_steps) needs of the engine;
    podium.engine.children implements it."""

    async def find(self, run_id: str) -> RunRecord | None: ...

    async def start(
        self,
        run_id: str,
        parent: RunRecord,
        step_id: str,
        spec: ChildWorkflowSpec,
        input: dict[str, Any],
        room: Decimal | None,
    ) -> RunRecord: ...

    async def wait(self, run_id: str) -> RunRecord: ...

    async def running_children(self, parent_run_id: str, tenant: str) -> list[RunRecord]:
        """A parent's child runs that have not ended (their ceilings are held)."""
        ...

    def cancel(self, run_id: str, reason: str) -> None: ...
