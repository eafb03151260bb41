"""ScheduleService: translation only (the scheduler decides: podium.engine.schedules)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import duration_pb2, struct_pb2

from podium.core.schedule_model import ScheduleRecord
from podium.engine.pagination import decode_token, encode_token, page_size
from podium.engine.schedules import Scheduler, ScheduleRequest
from podium.server import requests, translate
from podium.server.caller import current_caller
from podium.server.status import invalid, unary
from podium.server.struct_values import struct_to_dict
from podium.v1 import schedule_service_pb2, schedule_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
_POLICIES = {
    schedule_service_pb2.OVERLAP_POLICY_UNSPECIFIED: "SKIP",
    schedule_service_pb2.OVERLAP_POLICY_SKIP: "SKIP",
    schedule_service_pb2.OVERLAP_POLICY_BUFFER_ONE: "BUFFER_ONE",
    schedule_service_pb2.OVERLAP_POLICY_ALLOW: "ALLOW",
}
_POLICY_NUMBERS = {
    "SKIP": schedule_service_pb2.OVERLAP_POLICY_SKIP,
    "BUFFER_ONE": schedule_service_pb2.OVERLAP_POLICY_BUFFER_ONE,
    "ALLOW": schedule_service_pb2.OVERLAP_POLICY_ALLOW,
}


class ScheduleService(schedule_service_pb2_grpc.ScheduleServiceServicer):
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    async def _to_proto(self, record: ScheduleRecord) -> schedule_service_pb2.Schedule:
        message = schedule_service_pb2.Schedule(
            name=f"schedules/{record.schedule_id}",
            workflow=f"workflows/{record.workflow_id}",
            workflow_version=record.workflow_version,
            cron=record.cron,
            time_zone=record.time_zone,
            overlap_policy=_POLICY_NUMBERS[record.overlap],
            labels=record.labels,
            paused=record.paused,
            create_time=translate.timestamp(record.create_time),
            next_fire_time=translate.timestamp(record.next_fire),
            missed_fires=await self._scheduler.missed_count(record.schedule_id),
        )
        if record.interval:
            message.interval.CopyFrom(_duration(record.interval))
        message.catch_up_window.CopyFrom(_duration(record.catch_up_window))
        message.jitter.CopyFrom(_duration(record.jitter))
        input_struct = struct_pb2.Struct()
        input_struct.update(record.input or {})
        message.input.CopyFrom(input_struct)
        return message

    @unary
    async def CreateSchedule(
        self, request: schedule_service_pb2.CreateScheduleRequest, context: Context
    ) -> schedule_service_pb2.CreateScheduleResponse:
        given = request.schedule
        if given.workflow_version < 0:
            raise invalid("schedule.workflow_version", "must not be negative")
        if given.overlap_policy not in _POLICIES:
            raise invalid("schedule.overlap_policy", "unknown overlap policy")
        interval = (
            given.interval.ToTimedelta().total_seconds() if given.HasField("interval") else 0.0
        )
        if given.HasField("interval") and interval <= 0:
            raise invalid("schedule.interval", "the interval must be greater than zero")
        request_value = ScheduleRequest(
            workflow_id=requests.workflow_id(given.workflow, "schedule.workflow"),
            workflow_version=given.workflow_version,
            cron=given.cron.strip(),
            interval=interval,
            time_zone=given.time_zone,
            input=struct_to_dict(given.input, "schedule.input"),
            overlap=_POLICIES[given.overlap_policy],
            catch_up_window=given.catch_up_window.ToTimedelta().total_seconds(),
            jitter=given.jitter.ToTimedelta().total_seconds(),
            labels=dict(given.labels),
        )
        record = await self._scheduler.create(
            request_value, tenant=current_caller().tenant, field_prefix="schedule."
        )
        return schedule_service_pb2.CreateScheduleResponse(schedule=await self._to_proto(record))

    @unary
    async def GetSchedule(
        self, request: schedule_service_pb2.GetScheduleRequest, context: Context
    ) -> schedule_service_pb2.GetScheduleResponse:
        record = await self._scheduler.get(
            requests.schedule_id(request.name), tenant=current_caller().tenant
        )
        return schedule_service_pb2.GetScheduleResponse(schedule=await self._to_proto(record))

    @unary
    async def ListSchedules(
        self, request: schedule_service_pb2.ListSchedulesRequest, context: Context
    ) -> schedule_service_pb2.ListSchedulesResponse:
        size = page_size(request.page_size)
        after = ""
        if request.page_token:
            key = decode_token(request.page_token)
            if not key or not isinstance(key[0], str):
                raise invalid("page_token", "not a token ListSchedules returned")
            after = key[0]
        records = await self._scheduler.list_page(size + 1, after, tenant=current_caller().tenant)
        token = encode_token(records[size - 1].schedule_id) if len(records) > size else ""
        return schedule_service_pb2.ListSchedulesResponse(
            schedules=[await self._to_proto(r) for r in records[:size]], next_page_token=token
        )

    @unary
    async def PauseSchedule(
        self, request: schedule_service_pb2.PauseScheduleRequest, context: Context
    ) -> schedule_service_pb2.PauseScheduleResponse:
        record = await self._scheduler.pause(
            requests.schedule_id(request.name), tenant=current_caller().tenant
        )
        return schedule_service_pb2.PauseScheduleResponse(schedule=await self._to_proto(record))

    @unary
    async def ResumeSchedule(
        self, request: schedule_service_pb2.ResumeScheduleRequest, context: Context
    ) -> schedule_service_pb2.ResumeScheduleResponse:
        record = await self._scheduler.resume(
            requests.schedule_id(request.name), tenant=current_caller().tenant
        )
        return schedule_service_pb2.ResumeScheduleResponse(schedule=await self._to_proto(record))

    @unary
    async def DeleteSchedule(
        self, request: schedule_service_pb2.DeleteScheduleRequest, context: Context
    ) -> schedule_service_pb2.DeleteScheduleResponse:
        await self._scheduler.delete(
            requests.schedule_id(request.name), tenant=current_caller().tenant
        )
        return schedule_service_pb2.DeleteScheduleResponse()

    @unary
    async def TriggerSchedule(
        self, request: schedule_service_pb2.TriggerScheduleRequest, context: Context
    ) -> schedule_service_pb2.TriggerScheduleResponse:
        fire = await self._scheduler.trigger(
            requests.schedule_id(request.name), tenant=current_caller().tenant
        )
        return schedule_service_pb2.TriggerScheduleResponse(run=f"runs/{fire.run_id}")


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value
