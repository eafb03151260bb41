// How this library reaches a server: gRPC over HTTP/2, with the bearer token (if any) on every
// call. Shared by the worker and the run watcher.
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

export interface ServerOptions {
  /** The server: "127.0.0.1:50051" or "http://127.0.0.1:50051" (gRPC over HTTP/2). */
  address: string;
  /** Bearer token sent with every call; default: $PODIUM_TOKEN (none when unset). */
  token?: string;
}

export function podiumTransport(options: ServerOptions): Transport {
  const baseUrl = /^https?:\/\//.test(options.address)
    ? options.address
    : `http://${options.address}`;
  const token = options.token ?? process.env.PODIUM_TOKEN;
  const interceptors: Interceptor[] = token
    ? [
        (next) => async (request) => {
          request.header.set("authorization", `Bearer ${token}`);
          return await next(request);
        },
      ]
    : [];
  return createGrpcTransport({ baseUrl, interceptors });
}
