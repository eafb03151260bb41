"""The HTTP side of the server: Connect (JSON or binary), gRPC-Web and gRPC over HTTP/1.1 and
HTTP/2, served by the same method handlers as the grpc.aio server, and the web console's
assets."""
