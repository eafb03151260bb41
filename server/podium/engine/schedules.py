"""Schedules: workflows started at cron or interval times, durable and claimed once.

The scheduler decides; the store stores (podium.engine.schedule_store). Every
tick it reads the schedules whose next nominal time has come and, for each,
claims the nominal times due so far with one conditional write (the cluster's
guarantee: one server wins each nominal time). A claimed nominal time older
than the catch-up window is MISSED (recorded, counted, never run); the others
are CLAIMED and then started, buffered or skipped by the overlap policy.

The server that claims a fire handles it. A server killed after a claim
leaves CLAIMED (or BUFFERED) fires: the next tick of the same server id
(a restart) handles them, and in a cluster a survivor takes them over once
the claimer's lease has expired. A fire left over like this is late: if its
run was started before the crash it is recorded as started; otherwise it
follows the catch-up rule of any fire (older than the window: MISSED) and
then the overlap policy. A run's request id is derived from its fire, so
starting a fire twice starts one run. A buffered fire was decided on time
and waits by its policy, however long the running run takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from podium.core.clock import Clock
from podium.core.errors import FieldViolation, InvalidArgument, NotFound
from podium.core.model import DEFAULT_TENANT
from podium.core.refusals import reported_by_caller
from podium.core.schedule_model import FireOutcome, FireRecord, ScheduleRecord
from podium.engine.engine import Engine
from podium.engine.outage_log import OutageLog
from podium.engine.schedule_store import ScheduleStore
from podium.engine.schedule_times import (
    ScheduleSpecError,
    Timing,
    fires_between,
    jitter_offset,
    next_fire,
    timing,
)

log = logging.getLogger("podium.schedules")

OVERLAP_POLICIES = ("SKIP", "BUFFER_ONE", "ALLOW")
# The labels a scheduled run carries: its schedule and its nominal time.
SCHEDULE_LABEL = "podium-schedule"
NOMINAL_LABEL = "podium-nominal-time"
# Nominal times claimed by one write at most (a long downtime is worked off
# over several ticks).
MAX_CLAIM = 500
TICK_SECONDS = 1.0
# A fire seen within this much of its due time is on time (two ticks).
GRACE_SECONDS = 2 * TICK_SECONDS
# A nominal time later than any schedule's: `due_schedules(_FOREVER)` lists every unpaused one.
_FOREVER = 1e300

# (workflow_id, version, input, request_id, labels, tenant) -> run id
StartRun = Callable[[str, int, Any, str, dict[str, str], str], Awaitable[str]]
# run id -> whether the run has ended (or no longer exists)
RunEnded = Callable[[str], Awaitable[bool]]
# (workflow_id, version, tenant) -> whether it exists
WorkflowExists = Callable[[str, int, str], Awaitable[bool]]
# (request_id, tenant) -> the id of the run started with it, if any
RunOfRequest = Callable[[str, str], Awaitable[str | None]]
# () -> the ids of the cluster's servers whose lease is live
LiveServers = Callable[[], Awaitable[set[str]]]


@dataclasses.dataclass(frozen=True)
class ScheduleRequest:
    workflow_id: str
    workflow_version: int
    cron: str
    interval: float
    time_zone: str
    input: Any
    overlap: str
    catch_up_window: float
    jitter: float
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


def spec_of(schedule: ScheduleRecord) -> Timing:
    return timing(
        cron=schedule.cron,
        interval=timedelta(seconds=schedule.interval) if schedule.interval else None,
        zone_name=schedule.time_zone,
        anchor=_dt(schedule.create_time),
    )


def nominal_label(nominal: float) -> str:
    return _dt(nominal).isoformat().replace("+00:00", "Z")


def request_id_of(schedule_id: str, nominal: float) -> str:
    return f"schedule/{schedule_id}/{round(nominal * 1000)}"


class Scheduler:
    def __init__(
        self,
        store: ScheduleStore,
        clock: Clock,
        start_run: StartRun,
        run_ended: RunEnded,
        workflow_exists: WorkflowExists,
        run_of_request: RunOfRequest,
        *,
        server_id: str = "",
        live_servers: LiveServers | None = None,
    ) -> None:
        """`server_id` and `live_servers` in a cluster: this server's id (recorded as
        the claimer of its fires) and who holds a live lease; without them every
        open fire is this server's."""
        self.store = store
        self.clock = clock
        self._start_run = start_run
        self._run_ended = run_ended
        self._workflow_exists = workflow_exists
        self._run_of_request = run_of_request
        self.server_id = server_id
        self._live_servers = live_servers
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # Ticks done, and whether the loop waits for the next: a test on a
        # ManualClock advances time only while the loop sleeps, then waits for
        # the tick it caused (ticks is a progress count, not a metric).
        self.ticks = 0
        self.sleeping = False
        # Set when a schedule is created or resumed: an idle loop ticks at once.
        self._wake = asyncio.Event()
        self._outage = OutageLog(log, "scheduler tick", clock.monotonic)
        # A schedule whose fires keep failing (its workflow was deleted, its
        # input no longer valid) is retried every tick until its catch-up
        # window passes: one outage log each, not a traceback a second.
        self._failing: dict[tuple[str, str], OutageLog] = {}

    # -- requests --------------------------------------------------------------------

    async def create(
        self, request: ScheduleRequest, *, tenant: str = DEFAULT_TENANT, field_prefix: str = ""
    ) -> ScheduleRecord:
        now = self.clock.now()
        violations: list[FieldViolation] = []
        if not request.workflow_id:
            violations.append(FieldViolation("workflow", "name a workflow: workflows/{id}"))
        elif not await self._workflow_exists(request.workflow_id, request.workflow_version, tenant):
            violations.append(
                FieldViolation("workflow", f"no workflow {request.workflow_id!r} (or version)")
            )
        if request.overlap not in OVERLAP_POLICIES:
            violations.append(
                FieldViolation("overlap_policy", f"one of {', '.join(OVERLAP_POLICIES)}")
            )
        if request.catch_up_window < 0:
            violations.append(FieldViolation("catch_up_window", "must not be negative"))
        if request.jitter < 0:
            violations.append(FieldViolation("jitter", "must not be negative"))
        if request.interval < 0:
            violations.append(FieldViolation("interval", "the interval must be greater than zero"))
        record = ScheduleRecord(
            schedule_id=uuid.uuid4().hex,
            workflow_id=request.workflow_id,
            workflow_version=request.workflow_version,
            cron=request.cron,
            interval=request.interval,
            time_zone=request.time_zone,
            input=request.input,
            overlap=request.overlap,
            catch_up_window=request.catch_up_window,
            jitter=request.jitter,
            create_time=now,
            next_fire=None,
            tenant=tenant,
            labels=dict(request.labels),
        )
        first: datetime | None = None
        if not violations:
            try:
                first = next_fire(
                    timing(
                        cron=request.cron,
                        interval=timedelta(seconds=request.interval)
                        if request.interval > 0
                        else None,
                        zone_name=request.time_zone,
                        anchor=_dt(now),
                    ),
                    _dt(now),
                )
            except ScheduleSpecError as error:
                violations.append(FieldViolation(error.field, error.reason))
        if violations:
            raise InvalidArgument(
                "invalid schedule",
                [FieldViolation(field_prefix + v.field, v.description) for v in violations],
            )
        record = dataclasses.replace(record, next_fire=None if first is None else first.timestamp())
        await self.store.put_schedule(record)
        self._wake.set()
        return record

    async def get(self, schedule_id: str, *, tenant: str = DEFAULT_TENANT) -> ScheduleRecord:
        record = await self.store.get_schedule(schedule_id, tenant=tenant)
        if record is None:
            raise NotFound(f"schedule {schedule_id!r} not found", reason="SCHEDULE_NOT_FOUND")
        return record

    async def list_page(
        self, limit: int, after_id: str = "", *, tenant: str = DEFAULT_TENANT
    ) -> list[ScheduleRecord]:
        return await self.store.list_schedules(limit, after_id, tenant=tenant)

    async def pause(self, schedule_id: str, *, tenant: str = DEFAULT_TENANT) -> ScheduleRecord:
        async with self._lock:
            record = await self.get(schedule_id, tenant=tenant)
            if not record.paused:
                record = dataclasses.replace(record, paused=True)
                await self.store.put_schedule(record)
                self._wake.set()
            return record

    async def resume(self, schedule_id: str, *, tenant: str = DEFAULT_TENANT) -> ScheduleRecord:
        """Resumes from now: nominal times that passed while paused are not fired."""
        async with self._lock:
            record = await self.get(schedule_id, tenant=tenant)
            if record.paused:
                upcoming = next_fire(spec_of(record), _dt(self.clock.now()))
                record = dataclasses.replace(
                    record,
                    paused=False,
                    next_fire=None if upcoming is None else upcoming.timestamp(),
                )
                await self.store.put_schedule(record)
                self._wake.set()
            return record

    async def delete(self, schedule_id: str, *, tenant: str = DEFAULT_TENANT) -> None:
        if not await self.store.delete_schedule(schedule_id, tenant=tenant):
            raise NotFound(f"schedule {schedule_id!r} not found", reason="SCHEDULE_NOT_FOUND")

    async def trigger(self, schedule_id: str, *, tenant: str = DEFAULT_TENANT) -> FireRecord:
        """Starts a run now (nominal time: now), whatever the overlap policy says."""
        record = await self.get(schedule_id, tenant=tenant)
        now = self.clock.now()
        run_id = await self._start(record, now)
        fire = FireRecord(schedule_id, now, FireOutcome.STARTED, run_id, now, self.server_id)
        await self.store.set_fire(fire)
        return fire

    async def missed_count(self, schedule_id: str) -> int:
        return len(await self.store.fires_of(schedule_id, (FireOutcome.MISSED,), 1_000_000))

    # -- firing ----------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._loop(), name="podium-scheduler")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            failure: Exception | None = None
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # A database hiccup must not stop schedules for good: the next
                # tick retries (claims are conditional, so nothing doubles).
                failure = error
            # Read before `sleeping` is set: a test advances a ManualClock once the
            # loop sleeps, and an advance during this read would be missed.
            try:
                active = await self._active()
            except Exception as error:
                failure = failure or error
                active = True  # retry on the clock's tick
            # A database out of reach fails every tick: logged once, then once a
            # minute, and once when it is back (not a line a second).
            if failure is not None:
                self._outage.failed(failure)
            else:
                self._outage.succeeded()
            self.ticks += 1
            self.sleeping = True
            try:
                if active:
                    await self.clock.sleep(TICK_SECONDS)
                else:
                    # Nothing to fire: wait in real time, off the clock, so an idle
                    # scheduler is not a sleeper of a ManualClock (tests that advance
                    # time once something sleeps would otherwise see it instead of
                    # the run's own timer); a new schedule wakes the loop at once.
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
            finally:
                self.sleeping = False

    async def _active(self) -> bool:
        """Whether any unpaused schedule or open fire exists (any tenant, any server)."""
        with reported_by_caller():
            return bool(await self.store.due_schedules(_FOREVER)) or bool(
                await self.store.open_fires()
            )

    async def tick(self) -> None:
        """Claims and handles every due nominal time, then the open fires this server
        handles. A schedule that fails (its run cannot start) does not hold up the others."""
        async with self._lock:
            now = self.clock.now()
            # The reads every tick makes: a lost database fails them first, and the
            # loop logs that (OutageLog), not the store once a tick.
            with reported_by_caller():
                due = await self.store.due_schedules(now)
            for schedule in due:
                try:
                    await self._claim(schedule, now)
                except Exception as error:
                    self._failed(schedule.schedule_id, "claiming its fires", error)
                else:
                    self._succeeded(schedule.schedule_id, "claiming its fires")
            opened: dict[str, list[FireRecord]] = {}
            with reported_by_caller():
                open_fires = await self.store.open_fires()
            for fire in await self._handled_here(open_fires):
                opened.setdefault(fire.schedule_id, []).append(fire)
            for schedule_id, fires in opened.items():
                try:
                    await self._handle(schedule_id, fires, now)
                except Exception as error:
                    # Retried next tick; a fire that stays unstarted past its
                    # catch-up window is then missed.
                    self._failed(schedule_id, "starting its fires", error)
                else:
                    self._succeeded(schedule_id, "starting its fires")
            # A schedule deleted (or its fire gone) while it failed: nothing left to retry.
            retried = {schedule.schedule_id for schedule in due} | opened.keys()
            for key in [key for key in self._failing if key[0] not in retried]:
                del self._failing[key]

    def _failed(self, schedule_id: str, work: str, error: Exception) -> None:
        outage = self._failing.get((schedule_id, work))
        if outage is None:
            outage = OutageLog(log, f"schedule {schedule_id}: {work}", self.clock.monotonic)
            self._failing[(schedule_id, work)] = outage
        outage.failed(error)

    def _succeeded(self, schedule_id: str, work: str) -> None:
        outage = self._failing.pop((schedule_id, work), None)
        if outage is not None:
            outage.succeeded()

    async def _handled_here(self, fires: list[FireRecord]) -> list[FireRecord]:
        """This server's open fires, and those of claimers that no longer hold a
        live lease, taken over (a conditional write: one survivor takes each)."""
        live = None if self._live_servers is None else await self._live_servers()
        mine: list[FireRecord] = []
        for fire in fires:
            if fire.claimer != self.server_id:
                if live is not None and fire.claimer in live:
                    continue
                if not await self.store.take_fire(fire, self.server_id):
                    continue
                log.info(
                    "schedule %s: fire %s of %s taken over",
                    fire.schedule_id,
                    nominal_label(fire.nominal_time),
                    fire.claimer or "a server",
                )
                fire = dataclasses.replace(fire, claimer=self.server_id)
            mine.append(fire)
        return mine

    def _late(self, schedule: ScheduleRecord, nominal: datetime, now: float) -> bool:
        """Whether a fire was due (nominal time plus its jitter) longer ago than the
        schedule's catch-up window allows, counted from `now`, beyond the grace."""
        due = nominal + jitter_offset(
            schedule.schedule_id, nominal, timedelta(seconds=schedule.jitter)
        )
        return due.timestamp() < now - schedule.catch_up_window - GRACE_SECONDS

    async def _claim(self, schedule: ScheduleRecord, now: float) -> None:
        assert schedule.next_fire is not None
        spec = spec_of(schedule)
        jitter = timedelta(seconds=schedule.jitter)
        nominal = _dt(schedule.next_fire)
        due: list[datetime] = []
        candidates = [nominal, *fires_between(spec, nominal, _dt(now), MAX_CLAIM - 1)]
        for candidate in candidates:
            if (
                candidate + jitter_offset(schedule.schedule_id, candidate, jitter)
            ).timestamp() > now:
                break
            due.append(candidate)
        if not due:
            return
        upcoming = next_fire(spec, due[-1])
        fires = [
            FireRecord(
                schedule.schedule_id,
                at.timestamp(),
                FireOutcome.MISSED if self._late(schedule, at, now) else FireOutcome.CLAIMED,
                "",
                now,
                self.server_id,
            )
            for at in due
        ]
        won = await self.store.claim_fires(
            schedule.schedule_id,
            schedule.next_fire,
            None if upcoming is None else upcoming.timestamp(),
            fires,
        )
        if won:
            missed = sum(f.outcome == FireOutcome.MISSED for f in fires)
            if missed:
                log.info(
                    "schedule %s: %d fire(s) older than its catch-up window skipped",
                    schedule.schedule_id,
                    missed,
                )

    async def _handle(self, schedule_id: str, fires: list[FireRecord], now: float) -> None:
        # Fires do not carry their tenant; a schedule id is unique across tenants.
        schedule = await self.store.schedule_by_id(schedule_id)
        if schedule is None:
            return
        running = await self._running(schedule_id)
        buffered = [f for f in fires if f.outcome == FireOutcome.BUFFERED]
        claimed: list[FireRecord] = []
        for fire in fires:
            if fire.outcome != FireOutcome.CLAIMED:
                continue
            if fire.time < now:
                # Claimed by an earlier tick, here or by a server that died since.
                settled = await self._settle_late(schedule, fire, now)
                if settled is None:
                    claimed.append(fire)
                running = running or bool(settled)
                continue
            claimed.append(fire)
        # A buffered fire goes first, as soon as the schedule runs nothing.
        for fire in [*buffered, *claimed]:
            if schedule.overlap == "ALLOW" or not running:
                run_id = await self._start(schedule, fire.nominal_time)
                await self.store.set_fire(
                    dataclasses.replace(fire, outcome=FireOutcome.STARTED, run_id=run_id, time=now)
                )
                running = True
                if fire in buffered:
                    buffered.remove(fire)
            elif fire.outcome == FireOutcome.BUFFERED:
                continue
            elif schedule.overlap == "BUFFER_ONE" and not buffered:
                buffered.append(fire)
                await self.store.set_fire(
                    dataclasses.replace(fire, outcome=FireOutcome.BUFFERED, time=now)
                )
            else:
                await self.store.set_fire(
                    dataclasses.replace(fire, outcome=FireOutcome.SKIPPED, time=now)
                )

    async def _settle_late(
        self, schedule: ScheduleRecord, fire: FireRecord, now: float
    ) -> bool | None:
        """A CLAIMED fire left by an earlier tick. Its run may have been started just
        before a crash: then it is STARTED (True while that run runs). Otherwise the
        catch-up rule of a missed fire applies: older than the window, it is MISSED
        (False). Else None: the overlap policy decides, as for a fresh fire."""
        request_id = request_id_of(schedule.schedule_id, fire.nominal_time)
        run_id = await self._run_of_request(request_id, schedule.tenant)
        if run_id:
            await self.store.set_fire(
                dataclasses.replace(fire, outcome=FireOutcome.STARTED, run_id=run_id, time=now)
            )
            return not await self._run_ended(run_id)
        if self._late(schedule, _dt(fire.nominal_time), now):
            await self.store.set_fire(
                dataclasses.replace(fire, outcome=FireOutcome.MISSED, time=now)
            )
            log.info(
                "schedule %s: fire %s claimed but never started, older than its catch-up"
                " window: missed",
                schedule.schedule_id,
                nominal_label(fire.nominal_time),
            )
            return False
        return None

    async def _running(self, schedule_id: str) -> bool:
        """Whether a run this schedule started has not ended yet (those that ended
        are marked so, which keeps this read short)."""
        running = False
        for fire in await self.store.fires_of(schedule_id, (FireOutcome.STARTED,)):
            if await self._run_ended(fire.run_id):
                await self.store.set_fire(dataclasses.replace(fire, outcome=FireOutcome.ENDED))
            else:
                running = True
        return running

    async def _start(self, schedule: ScheduleRecord, nominal: float) -> str:
        labels = {
            **schedule.labels,
            SCHEDULE_LABEL: schedule.schedule_id,
            NOMINAL_LABEL: nominal_label(nominal),
        }
        return await self._start_run(
            schedule.workflow_id,
            schedule.workflow_version,
            schedule.input,
            request_id_of(schedule.schedule_id, nominal),
            labels,
            schedule.tenant,
        )


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def engine_scheduler(engine: Engine, store: ScheduleStore) -> Scheduler:
    """A scheduler that starts runs through `engine` (idempotent on request id)."""

    async def start_run(
        workflow_id: str,
        version: int,
        input: Any,
        request_id: str,
        labels: dict[str, str],
        tenant: str,
    ) -> str:
        view = await engine.start_run(
            workflow_id,
            version=version,
            input=input,
            request_id=request_id,
            labels=labels,
            tenant=tenant,
        )
        return view.run.run_id

    async def run_ended(run_id: str) -> bool:
        status = await engine.store.run_status(run_id)
        return status is None or status[0].is_final

    async def workflow_exists(workflow_id: str, version: int, tenant: str) -> bool:
        try:
            await engine.workflows.get(workflow_id, version, tenant=tenant)
        except NotFound:
            return False
        return True

    async def run_of_request(request_id: str, tenant: str) -> str | None:
        run = await engine.store.find_run_by_request_id(request_id, tenant=tenant)
        return None if run is None else run.run_id

    cluster = engine.cluster
    if cluster is None:
        return Scheduler(store, engine.clock, start_run, run_ended, workflow_exists, run_of_request)
    cluster_store = cluster.store

    async def live_servers() -> set[str]:
        # Leases are wall-clock times, compared across processes (as engine.cluster does).
        return await cluster_store.live_servers(time.time())

    return Scheduler(
        store,
        engine.clock,
        start_run,
        run_ended,
        workflow_exists,
        run_of_request,
        server_id=cluster_store.server_id,
        live_servers=live_servers,
    )
