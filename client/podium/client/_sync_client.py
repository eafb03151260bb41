"""The blocking client: one grpc channel, no event loop."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any

import grpc

import podium.client._requests as _requests
from podium.client._channel import CHANNEL_OPTIONS, DEFAULT_TIMEOUT, resolve_address
from podium.client._credentials import TlsOptions, resolve_tls, resolve_token, sync_channel
from podium.client._flow import BlockingFlowControl, FlowPolicy
from podium.client._watch import ReconnectPolicy, WatchCursor
from podium.client.definitions import DefinitionSource, load_definition
from podium.client.errors import PodiumError, translate_rpc_errors
from podium.client.identity import create_token_request, token_name
from podium.client.names import run_name, workflow_name
from podium.client.schedules import create_schedule_request, schedule_name
from podium.v1 import (
    control_service_pb2,
    control_service_pb2_grpc,
    event_pb2,
    execution_service_pb2,
    execution_service_pb2_grpc,
    identity_service_pb2,
    identity_service_pb2_grpc,
    progress_service_pb2,
    progress_service_pb2_grpc,
    run_pb2,
    schedule_service_pb2,
    schedule_service_pb2_grpc,
    workflow_pb2,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)

__all__ = ["Client"]


class Client:
    """Blocking Podium client. Every failed call raises PodiumError.

    >>> with Client() as podium:
    ...     run = podium.start_run("erp", {"order": 42})
    ...     for event in podium.watch(run.name):
    ...         print(event.sequence, event.type)
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        reconnect: ReconnectPolicy | None = None,
        flow: FlowPolicy | None = None,
        token: str | None = None,
        tls: TlsOptions | None = None,
    ) -> None:
        """`flow` bounds the unary calls in flight on the channel, whichever
        threads make them, and retries the safe ones (StartRun, reads) on
        CANCELLED, UNAVAILABLE and RESOURCE_EXHAUSTED (after the delay the
        server asks for, if any); the default allows 1000 at once. `token`
        (else $PODIUM_TOKEN) is sent as a bearer token; `tls` (else
        $PODIUM_TLS_CA, _CERT, _KEY) makes the channel TLS, with a client
        certificate for mTLS."""
        self.address = resolve_address(address)
        self.timeout = timeout
        self._reconnect = reconnect or ReconnectPolicy()
        self.flow = flow or FlowPolicy()
        self._channel = grpc.intercept_channel(
            sync_channel(self.address, CHANNEL_OPTIONS, resolve_token(token), resolve_tls(tls)),
            BlockingFlowControl(self.flow),
        )
        self._workflows = workflow_service_pb2_grpc.WorkflowServiceStub(self._channel)
        self._executions = execution_service_pb2_grpc.ExecutionServiceStub(self._channel)
        self._progress = progress_service_pb2_grpc.ProgressServiceStub(self._channel)
        self._control = control_service_pb2_grpc.ControlServiceStub(self._channel)
        self._identity = identity_service_pb2_grpc.IdentityServiceStub(self._channel)
        self._schedules = schedule_service_pb2_grpc.ScheduleServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Schedules

    def create_schedule(
        self,
        workflow: str,
        *,
        cron: str = "",
        interval_seconds: float | None = None,
        time_zone: str = "",
        input: Mapping[str, Any] | None = None,
        overlap: str = "skip",
        catch_up_window_seconds: float = 0.0,
        jitter_seconds: float = 0.0,
        labels: Mapping[str, str] | None = None,
        workflow_version: int = 0,
    ) -> schedule_service_pb2.Schedule:
        """Start runs of `workflow` at `cron` times (in `time_zone`, "" is UTC) or every
        `interval_seconds`. `overlap` (skip, buffer-one, allow) says what a fire does while
        a run of the schedule still runs; a fire due longer ago than
        `catch_up_window_seconds` when the server sees it (after a downtime) is missed;
        `jitter_seconds` delays each fire by up to that much."""
        request = create_schedule_request(
            workflow,
            cron=cron,
            interval_seconds=interval_seconds,
            time_zone=time_zone,
            input=input,
            overlap=overlap,
            catch_up_window_seconds=catch_up_window_seconds,
            jitter_seconds=jitter_seconds,
            labels=labels,
            workflow_version=workflow_version,
        )
        with translate_rpc_errors():
            return self._schedules.CreateSchedule(request, timeout=self.timeout).schedule

    def get_schedule(self, name: str) -> schedule_service_pb2.Schedule:
        request = schedule_service_pb2.GetScheduleRequest(name=schedule_name(name))
        with translate_rpc_errors():
            return self._schedules.GetSchedule(request, timeout=self.timeout).schedule

    def list_schedules(self, *, page_size: int = 0) -> Iterator[schedule_service_pb2.Schedule]:
        """Schedules by id, fetching pages as the iteration goes."""
        request = schedule_service_pb2.ListSchedulesRequest(page_size=page_size)
        while True:
            with translate_rpc_errors():
                response = self._schedules.ListSchedules(request, timeout=self.timeout)
            yield from response.schedules
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def pause_schedule(self, name: str) -> schedule_service_pb2.Schedule:
        """No fire until resume_schedule (a paused schedule stays paused)."""
        request = schedule_service_pb2.PauseScheduleRequest(name=schedule_name(name))
        with translate_rpc_errors():
            return self._schedules.PauseSchedule(request, timeout=self.timeout).schedule

    def resume_schedule(self, name: str) -> schedule_service_pb2.Schedule:
        """Fires again from the next nominal time after now (none of those passed)."""
        request = schedule_service_pb2.ResumeScheduleRequest(name=schedule_name(name))
        with translate_rpc_errors():
            return self._schedules.ResumeSchedule(request, timeout=self.timeout).schedule

    def delete_schedule(self, name: str) -> None:
        """Delete a schedule; the runs it started stay."""
        request = schedule_service_pb2.DeleteScheduleRequest(name=schedule_name(name))
        with translate_rpc_errors():
            self._schedules.DeleteSchedule(request, timeout=self.timeout)

    def trigger_schedule(self, name: str) -> str:
        """Start a run now (even if paused, whatever the overlap policy); its name."""
        request = schedule_service_pb2.TriggerScheduleRequest(name=schedule_name(name))
        with translate_rpc_errors():
            return self._schedules.TriggerSchedule(request, timeout=self.timeout).run

    # Identity

    def create_token(
        self,
        display_name: str,
        roles: Iterable[str],
        *,
        tenant: str = "",
        ttl_seconds: float | None = None,
    ) -> identity_service_pb2.CreateTokenResponse:
        """A new API token; its `secret` is in this response only."""
        request = create_token_request(display_name, roles, tenant=tenant, ttl_seconds=ttl_seconds)
        with translate_rpc_errors():
            return self._identity.CreateToken(request, timeout=self.timeout)

    def list_tokens(self, *, show_revoked: bool = False) -> list[identity_service_pb2.Token]:
        request = identity_service_pb2.ListTokensRequest(show_revoked=show_revoked)
        with translate_rpc_errors():
            return list(self._identity.ListTokens(request, timeout=self.timeout).tokens)

    def revoke_token(self, name_or_id: str) -> identity_service_pb2.Token:
        request = identity_service_pb2.RevokeTokenRequest(name=token_name(name_or_id))
        with translate_rpc_errors():
            return self._identity.RevokeToken(request, timeout=self.timeout).token

    def get_caller(self) -> identity_service_pb2.GetCallerResponse:
        """Who the server takes this client for: subject, tenant, roles."""
        with translate_rpc_errors():
            return self._identity.GetCaller(
                identity_service_pb2.GetCallerRequest(), timeout=self.timeout
            )

    def list_audit_records(
        self,
        *,
        subject: str = "",
        method: str = "",
        resource: str = "",
        page_size: int = 0,
    ) -> Iterator[identity_service_pb2.AuditRecord]:
        """Audit records, newest first, fetching pages as the iteration goes."""
        token = ""
        while True:
            request = identity_service_pb2.ListAuditRecordsRequest(
                subject=subject,
                method=method,
                resource=resource,
                page_size=page_size,
                page_token=token,
            )
            with translate_rpc_errors():
                response = self._identity.ListAuditRecords(request, timeout=self.timeout)
            yield from response.records
            token = response.next_page_token
            if not token:
                return

    # Workflows

    def load_definition(
        self, source: DefinitionSource
    ) -> workflow_service_pb2.CreateWorkflowRequest:
        """Parse a YAML/JSON file or a mapping; DefinitionError if it is malformed."""
        return load_definition(source)

    def apply_workflow(self, source: DefinitionSource) -> workflow_pb2.Workflow:
        """Store the definition as the workflow's next version."""
        request = load_definition(source)
        with translate_rpc_errors():
            response = self._workflows.CreateWorkflow(request, timeout=self.timeout)
        return response.workflow

    def validate_workflow(
        self, source: DefinitionSource
    ) -> workflow_service_pb2.ValidateWorkflowResponse:
        """Check a definition without storing it: PodiumError (INVALID_ARGUMENT) if invalid.
        The response estimates a run's duration and cost from the stored workflow
        of the same id (its finished runs), else from the price table."""
        definition = load_definition(source)
        request = workflow_service_pb2.ValidateWorkflowRequest(
            spec=definition.spec, workflow_id=definition.workflow_id
        )
        with translate_rpc_errors():
            return self._workflows.ValidateWorkflow(request, timeout=self.timeout)

    def get_workflow(self, name_or_id: str, version: int = 0) -> workflow_pb2.Workflow:
        """One version of a workflow; 0 for the latest."""
        request = _requests.get_workflow(name_or_id, version)
        with translate_rpc_errors():
            return self._workflows.GetWorkflow(request, timeout=self.timeout).workflow

    def list_workflows(self, *, page_size: int = 0) -> Iterator[workflow_pb2.Workflow]:
        """The latest version of every workflow, fetching pages as the iteration goes."""
        token = ""
        while True:
            request = workflow_service_pb2.ListWorkflowsRequest(
                page_size=page_size, page_token=token
            )
            with translate_rpc_errors():
                response = self._workflows.ListWorkflows(request, timeout=self.timeout)
            yield from response.workflows
            token = response.next_page_token
            if not token:
                return

    def delete_workflow(self, name_or_id: str) -> None:
        """Delete every version of a workflow (its runs stay readable)."""
        request = workflow_service_pb2.DeleteWorkflowRequest(name=workflow_name(name_or_id))
        with translate_rpc_errors():
            self._workflows.DeleteWorkflow(request, timeout=self.timeout)

    # Runs

    def start_run(
        self,
        workflow: str,
        input: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        max_concurrency: int = 0,
        workflow_version: int = 0,
        max_cost: Decimal | str | None = None,
        priority: int = 0,
        notify_url: str = "",
        notify_secret: str = "",
    ) -> run_pb2.Run:
        """Start a run; the same request_id returns the same run instead of a second one.

        `max_cost` (USD) caps the run's LLM spend; it overrides the workflow's when lower.
        `priority` orders the run's steps against other runs' for slots and quotas (higher
        first).
        `notify_url`: POST the run's summary there when it ends, signed with the server
        secret `notify_secret` (overrides the workflow's notification).
        """
        request = _requests.start_run(
            workflow,
            input,
            request_id,
            labels,
            max_concurrency,
            workflow_version,
            max_cost,
            priority,
            notify_url,
            notify_secret,
        )
        with translate_rpc_errors():
            return self._executions.StartRun(request, timeout=self.timeout).run

    def get_run(self, run: str) -> run_pb2.Run:
        with translate_rpc_errors():
            return self._executions.GetRun(_requests.get_run(run), timeout=self.timeout).run

    def list_runs(
        self,
        workflow: str | None = None,
        states: Iterable[int | str] | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        page_size: int = 0,
        parent: str | None = None,
        schedule: str | None = None,
    ) -> Iterator[run_pb2.Run]:
        """Runs (without their steps), newest first, fetching pages as the iteration goes;
        `parent` (a run id or runs/ID): only the child runs that run started; `schedule`
        (an id or schedules/ID): only the runs that schedule started."""
        request = _requests.list_runs(workflow, states, labels, page_size, parent, schedule)
        while True:
            with translate_rpc_errors():
                response = self._executions.ListRuns(request, timeout=self.timeout)
            yield from response.runs
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def cancel_run(self, run: str, reason: str = "") -> run_pb2.Run:
        request = _requests.cancel_run(run, reason)
        with translate_rpc_errors():
            return self._executions.CancelRun(request, timeout=self.timeout).run

    def pause_run(self, run: str, reason: str = "") -> run_pb2.Run:
        """Pause `run`: no new step or item starts until resume_run; running ones finish."""
        with translate_rpc_errors():
            return self._executions.PauseRun(
                _requests.pause_run(run, reason), timeout=self.timeout
            ).run

    def resume_run(self, run: str) -> run_pb2.Run:
        """Resume a paused run: what it held starts."""
        with translate_rpc_errors():
            return self._executions.ResumeRun(_requests.resume_run(run), timeout=self.timeout).run

    def rerun_run(
        self, run: str, from_steps: Iterable[str] = (), *, request_id: str = ""
    ) -> run_pb2.Run:
        """A new run of a finished run's version and input, reusing its succeeded
        steps' outputs (all but `from_steps` and downstream); `rerun_of` links it.
        With `request_id`, a retry returns the run the first call started."""
        request = _requests.rerun_run(run, from_steps, request_id)
        with translate_rpc_errors():
            return self._executions.RerunRun(request, timeout=self.timeout).run

    def rerun_runs(
        self,
        workflow: str | None = None,
        states: Iterable[int | str] | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        from_steps: Iterable[str] = (),
        max_runs: int = 0,
        request_id: str = "",
    ) -> execution_service_pb2.RerunRunsResponse:
        """rerun_run for each finished run matching the filter (newest first).
        With `request_id`, a retry re-runs the originals the first call chose
        and returns the runs it started."""
        request = _requests.rerun_runs(workflow, states, labels, from_steps, max_runs, request_id)
        with translate_rpc_errors():
            response: execution_service_pb2.RerunRunsResponse = self._executions.RerunRuns(
                request, timeout=self.timeout
            )
        return response

    def delete_run(self, run: str) -> None:
        """Delete a finished run with its steps and events (FAILED_PRECONDITION if it runs)."""
        with translate_rpc_errors():
            self._executions.DeleteRun(_requests.delete_run(run), timeout=self.timeout)

    def resolve_approval(
        self, run: str, step_id: str, approve: bool, comment: str = ""
    ) -> run_pb2.Run:
        """Approve or reject the approval step `step_id` that waits in `run`."""
        request = _requests.resolve_approval(run, step_id, approve, comment)
        with translate_rpc_errors():
            return self._executions.ResolveApproval(request, timeout=self.timeout).run

    # The server

    def system_status(self) -> control_service_pb2.GetSystemStatusResponse:
        """The server's version, uptime, active runs, running steps and failed plugins."""
        request = control_service_pb2.GetSystemStatusRequest()
        with translate_rpc_errors():
            return self._control.GetSystemStatus(request, timeout=self.timeout)

    def list_agents(self) -> list[control_service_pb2.AgentInfo]:
        """The agents the server can run: in-process ones and those its workers serve."""
        request = control_service_pb2.ListAgentsRequest()
        with translate_rpc_errors():
            response = self._control.ListAgents(request, timeout=self.timeout)
        return list(response.agents)

    def list_plugins(self) -> list[control_service_pb2.PluginInfo]:
        """The plugins the server found, loaded or not, with what each registered."""
        request = control_service_pb2.ListPluginsRequest()
        with translate_rpc_errors():
            response = self._control.ListPlugins(request, timeout=self.timeout)
        return list(response.plugins)

    def signal_run(
        self, run: str, name: str, payload: Any = None, *, request_id: str | None = None
    ) -> execution_service_pb2.SignalRunResponse:
        """Send the signal `name` to `run`: the first wait_for_signal step waiting for it
        (whose filter accepts `payload`) consumes it, else the run keeps it for the next.
        The same request_id is one signal however often it is sent."""
        request = _requests.signal_run(run, name, payload, request_id)
        with translate_rpc_errors():
            response: execution_service_pb2.SignalRunResponse = self._executions.SignalRun(
                request, timeout=self.timeout
            )
        return response

    def complete_callback(
        self, token: str, payload: Any = None
    ) -> execution_service_pb2.CompleteCallbackResponse:
        """Complete the callback step that issued `token` (single use) with `payload`."""
        request = _requests.complete_callback(token, payload)
        with translate_rpc_errors():
            response: execution_service_pb2.CompleteCallbackResponse = (
                self._executions.CompleteCallback(request, timeout=self.timeout)
            )
        return response

    # Governance

    def list_quotas(self) -> list[control_service_pb2.Quota]:
        """Rate and concurrency limits with what is available now."""
        request = control_service_pb2.ListQuotasRequest()
        with translate_rpc_errors():
            response = self._control.ListQuotas(request, timeout=self.timeout)
        return list(response.quotas)

    def update_quota(
        self,
        name: str,
        scope: str,
        dimension: int | str,
        limit: float,
        burst: float = 0,
        window: float | None = None,
    ) -> control_service_pb2.Quota:
        """Create or replace the quota `name`.

        `scope` is "provider:openai", "model:openai/gpt-4o", "agent:llm", "workflow:erp" or
        "tenant:x"; `dimension` one of requests, input_tokens, output_tokens, tokens (per
        `window` seconds: default a minute) or concurrency (at once); `burst` 0 means equal
        to `limit`.
        """
        request = _requests.update_quota(name, scope, dimension, limit, burst, window)
        with translate_rpc_errors():
            response = self._control.UpdateQuota(request, timeout=self.timeout)
        return response.quota

    def delete_quota(self, name: str) -> None:
        request = control_service_pb2.DeleteQuotaRequest(name=name)
        with translate_rpc_errors():
            self._control.DeleteQuota(request, timeout=self.timeout)

    def list_budgets(self) -> list[control_service_pb2.Budget]:
        """Budgets with their spend and reservations in the current period."""
        request = control_service_pb2.ListBudgetsRequest()
        with translate_rpc_errors():
            response = self._control.ListBudgets(request, timeout=self.timeout)
        return list(response.budgets)

    def update_budget(
        self,
        name: str,
        scope: str,
        limit: Decimal | str | int,
        period: int | str = "none",
        time_zone: str = "UTC",
        warn_fraction: float = 0.8,
    ) -> control_service_pb2.Budget:
        """Create or replace the budget `name` (USD; `scope` "server", "provider:x", "agent:x"
        or "workflow:x"; `period` none, day or month in `time_zone`)."""
        request = _requests.update_budget(name, scope, limit, period, time_zone, warn_fraction)
        with translate_rpc_errors():
            response = self._control.UpdateBudget(request, timeout=self.timeout)
        return response.budget

    def delete_budget(self, name: str) -> None:
        request = control_service_pb2.DeleteBudgetRequest(name=name)
        with translate_rpc_errors():
            self._control.DeleteBudget(request, timeout=self.timeout)

    def get_alerts(self) -> control_service_pb2.Alerts | None:
        """The alerts settings in force; None: alerting is off."""
        request = control_service_pb2.GetAlertsRequest()
        with translate_rpc_errors():
            response = self._control.GetAlerts(request, timeout=self.timeout)
        return response.alerts if response.HasField("alerts") else None

    def update_alerts(
        self,
        url: str = "",
        secret: str = "",
        *,
        kinds: Sequence[int | str] = (),
        budget_thresholds: Sequence[float] = (),
        wait_after: float | None = None,
        min_interval: float | None = None,
        queue_size: int = 0,
    ) -> control_service_pb2.Alerts:
        """Replace the alerts settings (persisted): POST to `url`, signed with the server
        secret named `secret`; `kinds` ("budget_threshold", "breaker_opened",
        "breaker_closed", "quota_wait", "budget_wait"; empty: all); `budget_thresholds`
        (fractions; empty: each budget's warn_fraction and 1); `wait_after` and
        `min_interval` in seconds (None: 60 and 300); `queue_size` (0: 1000)."""
        request = _requests.update_alerts(
            url, secret, kinds, budget_thresholds, wait_after, min_interval, queue_size
        )
        with translate_rpc_errors():
            response = self._control.UpdateAlerts(request, timeout=self.timeout)
        return response.alerts

    def disable_alerts(self) -> None:
        """Switch alerting off (persisted; wins over the policy file)."""
        request = control_service_pb2.UpdateAlertsRequest()
        with translate_rpc_errors():
            self._control.UpdateAlerts(request, timeout=self.timeout)

    def get_spend(
        self, scope: str | None = None, period: int | str = "day", since: str = ""
    ) -> control_service_pb2.GetSpendResponse:
        """Settled spend by scope and UTC day or month, with the total.

        `scope`: None for every scope, a kind ("provider") for all of its values, or one
        scope ("provider:openai"); `since`: "2026-11-01" (day) or "2026-11" (month).
        """
        request = _requests.get_spend(scope, period, since)
        with translate_rpc_errors():
            return self._control.GetSpend(request, timeout=self.timeout)

    def list_breakers(self) -> list[control_service_pb2.Breaker]:
        request = control_service_pb2.ListBreakersRequest()
        with translate_rpc_errors():
            response = self._control.ListBreakers(request, timeout=self.timeout)
        return list(response.breakers)

    def reset_breaker(self, name: str) -> control_service_pb2.Breaker:
        """Close the breaker `name` ("provider:openai", "model:openai/gpt-4o", "agent:llm")."""
        request = control_service_pb2.ResetBreakerRequest(name=name)
        with translate_rpc_errors():
            response = self._control.ResetBreaker(request, timeout=self.timeout)
        return response.breaker

    def workflow_insights(
        self, name_or_id: str, window: float = 0.0
    ) -> control_service_pb2.WorkflowInsights:
        """Statistics and recommendations from a workflow's finished runs of
        the last `window` seconds (0: every stored run)."""
        request = _requests.workflow_insights(name_or_id, window)
        with translate_rpc_errors():
            response = self._control.GetWorkflowInsights(request, timeout=self.timeout)
        return response.insights

    # Progress

    def watch(self, run: str, after_sequence: int = 0) -> Iterator[event_pb2.RunEvent]:
        """Every event of `run` after `after_sequence`, then live ones, until the run ends.

        Reconnects on connection loss from the last sequence seen, so no event is skipped or
        repeated; raises PodiumError once reconnecting has failed for the policy's time.
        """
        for item in self._watch(run, after_sequence, deltas=False):
            if isinstance(item, event_pb2.RunEvent):
                yield item

    def watch_with_deltas(
        self, run: str, after_sequence: int = 0
    ) -> Iterator[event_pb2.RunEvent | progress_service_pb2.OutputDelta]:
        """As `watch`, with the live output deltas of streaming steps between the events
        (WatchRunRequest.include_output_deltas): live only, so none is replayed after a
        reconnection, and the step's final output still arrives as its event."""
        return self._watch(run, after_sequence, deltas=True)

    def _watch(
        self, run: str, after_sequence: int, *, deltas: bool
    ) -> Iterator[event_pb2.RunEvent | progress_service_pb2.OutputDelta]:
        cursor = WatchCursor(after_sequence, self._reconnect)
        name = run_name(run)
        while True:
            request = progress_service_pb2.WatchRunRequest(
                run=name, after_sequence=cursor.last_sequence, include_output_deltas=deltas
            )
            cursor.stream_opened()
            call = self._progress.WatchRun(request)
            try:
                for response in call:
                    yield from response.output_deltas
                    yield from cursor.accept(response.events)
            except grpc.RpcError as error:
                delay = cursor.retry_delay(error)
                if delay is None:
                    raise PodiumError.from_rpc_error(error) from error
                time.sleep(delay)
                continue
            finally:
                # Stops the server-side stream when the caller abandons the iteration early.
                _cancel(call)
            if not cursor.resume_after_end():
                return

    def watch_runs(
        self,
        workflows: Iterable[str] = (),
        run_states: Iterable[int | str] = (),
        event_types: Iterable[int | str] = (),
    ) -> Iterator[event_pb2.RunEvent]:
        """Live events of many runs, filtered; never ends by itself.

        Not resumed after a connection loss (the stream has no position to resume from): the
        PodiumError reaches the caller, who knows whether a gap matters.
        """
        request = _requests.watch_runs(workflows, run_states, event_types)
        call = self._progress.WatchRuns(request)
        try:
            with translate_rpc_errors():
                for response in call:
                    yield from response.events
        finally:
            _cancel(call)


def _cancel(call: object) -> None:
    # Through getattr: grpc-stubs versions disagree on whether Call.cancel is typed.
    cancel = getattr(call, "cancel", None)
    if callable(cancel):
        cancel()
