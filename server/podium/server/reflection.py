"""Server reflection in both protocol versions, so that `grpcurl`, `buf curl`, Postman and the
like work against a running server: grpc.reflection.v1 (what current clients ask) and
grpc.reflection.v1alpha (what older ones ask).

grpcio-reflection implements v1alpha only. v1 is v1alpha renamed: the messages are the same
field for field, number for number, so the same servicer answers both, the v1 method being
registered with v1alpha's (de)serializers. v1's own descriptor (v1alpha's under the new package)
goes into the descriptor pool, so that reflection describes itself in either version too.

grpcio-reflection's servicer, and protobuf's descriptor_pb2 with it (about 30 ms of start-up),
load at the first reflection call: a server serves, and resumes its runs, without them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2

V1ALPHA_PACKAGE = "grpc.reflection.v1alpha"
V1_PACKAGE = "grpc.reflection.v1"
V1_FILE = "grpc/reflection/v1/reflection.proto"
V1ALPHA_SERVICE_NAME = f"{V1ALPHA_PACKAGE}.ServerReflection"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)


def enable(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serves both reflection services on server, listing service_names and themselves."""
    servicer = _Reflection((*service_names, *SERVICE_NAMES))
    method: Any = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        tuple(
            grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method})
            for name in SERVICE_NAMES
        )
    )


class _Reflection:
    """grpcio-reflection's servicer, made at the first call."""

    def __init__(self, service_names: tuple[str, ...]) -> None:
        self._service_names = service_names
        self._servicer: Any = None

    async def ServerReflectionInfo(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        if self._servicer is None:
            from grpc_reflection.v1alpha import reflection

            _add_v1_descriptor()
            self._servicer = reflection.aio.ReflectionServicer(self._service_names)
        async for response in self._servicer.ServerReflectionInfo(requests, context):
            yield response


def _add_v1_descriptor() -> None:
    from google.protobuf import descriptor_pb2

    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(V1_FILE)
        return  # added by an earlier server of this process
    except KeyError:
        pass
    v1 = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(v1)
    v1.name = V1_FILE
    v1.package = V1_PACKAGE
    v1.ClearField("options")  # v1alpha's are deprecated=true and its own java package
    old, new = f".{V1ALPHA_PACKAGE}.", f".{V1_PACKAGE}."
    for message in v1.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(old, new)
        assert not message.nested_type, "v1alpha's messages are flat"
    for service in v1.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool.Add(v1)
