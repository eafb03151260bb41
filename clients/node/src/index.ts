// The Podium worker library for Node. Usage: see examples/ and the README's
// "Using Podium from another language".
export { AgentError, type Agent } from "./agent.js";
export {
  StepContext,
  decimal,
  type CompletionRequest,
  type ModelGateway,
  type ModelResult,
} from "./context.js";
export { DEFAULT_QUEUE, SDK, SessionRejected, Worker, type WorkerOptions } from "./worker.js";
