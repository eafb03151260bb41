// The Podium library for Node: a worker serving agents, and a run watcher. Usage: see
// examples/ and the README's "Using Podium from another language".
export { AgentError, type Agent } from "./agent.js";
export {
  StepContext,
  decimal,
  type CompletionRequest,
  type ModelGateway,
  type ModelResult,
} from "./context.js";
export { DEFAULT_QUEUE, SDK, SessionRejected, Worker, type WorkerOptions } from "./worker.js";
export { errorInfo, type ErrorInfo } from "./error_info.js";
export { podiumTransport, type ServerOptions } from "./transport.js";
export {
  DEFAULT_RECONNECT,
  FINAL_EVENT_TYPES,
  WatchCursor,
  progressClient,
  runName,
  watchRun,
  type ReconnectPolicy,
  type WatchOptions,
} from "./watch.js";
export { RunEventType, type RunEvent } from "./gen/podium/v1/event_pb.js";
export { ProgressService } from "./gen/podium/v1/progress_service_pb.js";
