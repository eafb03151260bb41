"""Who calls the server and what they may do: principals, roles, API tokens,
JWT bearer tokens, the per-RPC access table, per-tenant request rates and the
audit record. Pure code over podium.core: the gRPC side is
podium.server.identity_interceptor, the storage side a port (ports.py)."""
