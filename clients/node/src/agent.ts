// What a Node agent is: a name, JSON Schemas of what it takes and returns, and `run(ctx)`.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { StepContext } from "./context.js";

/** An agent served by a worker; steps name it in `agent`. */
export interface Agent {
  /** The name steps use: [a-z][a-z0-9_.-]{0,62}. */
  readonly name: string;
  /** Version of the implementation (result caching keys on it). */
  readonly version?: string;
  /** Shown by ListAgents. */
  readonly description?: string;
  /** JSON Schema of the step's `config`; the server rejects a workflow whose config violates it. */
  readonly configSchema?: JsonObject;
  /** JSON Schema of the step's evaluated input; checked before the task is sent. */
  readonly inputSchema?: JsonObject;
  /** JSON Schema of the output; a violating output fails the attempt with podium.InvalidOutput. */
  readonly outputSchema?: JsonObject;
  /** Runs one attempt; what it returns (any JSON value) is the step's output. */
  run(ctx: StepContext): Promise<JsonValue>;
}

/**
 * An error an agent throws to choose the failure's type and whether a retry could help
 * (any other error fails the attempt as retryable, typed by its class name).
 */
export class AgentError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly retryable = true,
  ) {
    super(message);
    this.name = "AgentError";
  }
}
