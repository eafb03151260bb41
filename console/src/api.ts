// The console is a client of the HTTP API like any other: Connect over the page's own origin,
// with the signed-in token as a bearer token.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ControlService } from "./gen/podium/v1/control_service_pb.js";
import { ExecutionService } from "./gen/podium/v1/execution_service_pb.js";
import { IdentityService } from "./gen/podium/v1/identity_service_pb.js";
import { ProgressService } from "./gen/podium/v1/progress_service_pb.js";
import { WorkflowService } from "./gen/podium/v1/workflow_service_pb.js";
import { session } from "./session.js";

const withToken: Interceptor = (next) => async (request) => {
  const token = session.token();
  if (token) request.header.set("authorization", `Bearer ${token}`);
  return next(request);
};

// Served by `podium serve`, the API is the page's own origin; `npm run dev` names it
// (VITE_PODIUM_API=http://127.0.0.1:8080, a server with --http-cors-origin for the dev page).
const transport = createConnectTransport({
  baseUrl: (import.meta.env["VITE_PODIUM_API"] as string | undefined) ?? window.location.origin,
  interceptors: [withToken],
});

export interface Api {
  workflows: Client<typeof WorkflowService>;
  execution: Client<typeof ExecutionService>;
  progress: Client<typeof ProgressService>;
  control: Client<typeof ControlService>;
  identity: Client<typeof IdentityService>;
}

export const api: Api = {
  workflows: createClient(WorkflowService, transport),
  execution: createClient(ExecutionService, transport),
  progress: createClient(ProgressService, transport),
  control: createClient(ControlService, transport),
  identity: createClient(IdentityService, transport),
};

/** One line for a failed call: the code, the message and each field violation. */
export function describe(error: unknown): string {
  if (error instanceof ConnectError) {
    return `${Code[error.code] ?? error.code}: ${error.rawMessage}`;
  }
  return error instanceof Error ? error.message : String(error);
}

export function isUnauthenticated(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.Unauthenticated;
}

export function isAborted(error: unknown): boolean {
  return error instanceof ConnectError && error.code === Code.Canceled;
}
