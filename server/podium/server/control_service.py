"""ControlService: translation only."""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf import duration_pb2

from podium.engine.engine import Engine
from podium.governance.service import Governance
from podium.plugins.api import AGENT_SCHEMAS, agent_schema
from podium.plugins.manager import PluginReport
from podium.server import requests, translate
from podium.server.database_status import PingedStore, database_status
from podium.server.governance_service import GovernanceRpcs
from podium.server.insights_translate import insights_to_proto
from podium.server.status import unary
from podium.v1 import control_service_pb2, control_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

_PLUGIN_STATUS = {
    "loaded": control_service_pb2.PLUGIN_STATUS_LOADED,
    "failed": control_service_pb2.PLUGIN_STATUS_FAILED,
    "disabled": control_service_pb2.PLUGIN_STATUS_DISABLED,
}


class ControlService(GovernanceRpcs, control_service_pb2_grpc.ControlServiceServicer):
    def __init__(
        self,
        engine: Engine,
        governance: Governance,
        plugins: PluginReport,
        version: str,
        start_time: float,
        store: PingedStore | None = None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._governance = governance
        self._plugins = plugins
        self._version = version
        self._start_time = start_time

    @unary
    async def ListAgents(
        self, request: control_service_pb2.ListAgentsRequest, context: Context
    ) -> control_service_pb2.ListAgentsResponse:
        agents: dict[str, control_service_pb2.AgentInfo] = {}
        for entry in self._plugins.registry.agents:
            agents[entry.name] = control_service_pb2.AgentInfo(
                name=entry.agent.name,
                description=entry.agent.description,
                version=entry.agent.version,
                plugin=entry.plugin,
                in_process=True,
            )
            for kind in AGENT_SCHEMAS:
                schema = agent_schema(entry.agent, kind)
                if schema is not None:
                    getattr(agents[entry.name], kind).CopyFrom(translate.struct(dict(schema)))
        workers = self._engine.workers
        for declared in workers.declarations():
            info = agents.setdefault(
                declared.name,
                control_service_pb2.AgentInfo(
                    name=declared.name,
                    description=declared.description,
                    version=declared.version,
                ),
            )
            for kind in AGENT_SCHEMAS:
                schema = getattr(declared, kind)
                # Workers win over the in-process agent (see README, Workers).
                if schema is not None:
                    getattr(info, kind).CopyFrom(translate.struct(dict(schema)))
        relay = self._engine.relay
        elsewhere = {} if relay is None else relay.served_elsewhere()
        for serving in workers.serving():
            agents[serving.agent.name].workers.append(
                control_service_pb2.AgentWorkers(
                    queue=serving.queue,
                    sessions=serving.sessions,
                    capacity=serving.capacity,
                    running=serving.running,
                    other_servers=elsewhere.pop((serving.agent.name, serving.queue), []),
                )
            )
        for (name, queue), servers in elsewhere.items():
            info = agents.setdefault(name, control_service_pb2.AgentInfo(name=name))
            info.workers.append(
                control_service_pb2.AgentWorkers(queue=queue, other_servers=servers)
            )
        return control_service_pb2.ListAgentsResponse(
            agents=[agents[name] for name in sorted(agents)]
        )

    @unary
    async def ListProviders(
        self, request: control_service_pb2.ListProvidersRequest, context: Context
    ) -> control_service_pb2.ListProvidersResponse:
        return control_service_pb2.ListProvidersResponse(
            providers=[
                control_service_pb2.ProviderInfo(
                    name=entry.provider.name,
                    description=entry.provider.description,
                    models=list(entry.provider.models),
                    plugin=entry.plugin,
                )
                for entry in self._plugins.registry.providers
            ]
        )

    @unary
    async def ListPlugins(
        self, request: control_service_pb2.ListPluginsRequest, context: Context
    ) -> control_service_pb2.ListPluginsResponse:
        return control_service_pb2.ListPluginsResponse(
            plugins=[
                control_service_pb2.PluginInfo(
                    name=plugin.name,
                    distribution=plugin.distribution,
                    version=plugin.version,
                    status=_PLUGIN_STATUS[plugin.status],
                    error=plugin.error,
                    agents=plugin.agents,
                    providers=plugin.providers,
                    tools=plugin.tools,
                )
                for plugin in self._plugins.plugins
            ]
        )

    @unary
    async def GetSystemStatus(
        self, request: control_service_pb2.GetSystemStatusRequest, context: Context
    ) -> control_service_pb2.GetSystemStatusResponse:
        uptime = duration_pb2.Duration()
        uptime.FromNanoseconds(int((time.time() - self._start_time) * 1e9))
        return control_service_pb2.GetSystemStatusResponse(
            version=self._version,
            start_time=translate.timestamp(self._start_time),
            uptime=uptime,
            active_runs=len(self._engine.active),
            running_steps=self._engine.running_steps,
            failed_plugins=len(self._plugins.failed),
            database=await database_status(self._store) if self._store is not None else None,
        )

    @unary
    async def GetWorkflowInsights(
        self, request: control_service_pb2.GetWorkflowInsightsRequest, context: Context
    ) -> control_service_pb2.GetWorkflowInsightsResponse:
        workflow_id = requests.workflow_id(request.workflow, "workflow")
        window = translate.seconds(request.window) if request.HasField("window") else 0.0
        insights = await self._engine.workflow_insights(workflow_id, window)
        return control_service_pb2.GetWorkflowInsightsResponse(insights=insights_to_proto(insights))
