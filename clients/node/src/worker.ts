// A Podium worker for Node: one session (WorkerService.Connect, a bidirectional gRPC stream)
// with a server, running the attempts it sends, at most `concurrency` at once, with
// heartbeats, progress, cancellation, and reconnection with backoff.
import { hostname } from "node:os";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import {
  ConnectRequestSchema,
  WorkerService,
  type AttemptTask,
  type ConnectRequest,
} from "./gen/podium/v1/worker_service_pb.js";
import { AgentError, type Agent } from "./agent.js";
import { StepContext } from "./context.js";
import { notJson, valueOf } from "./json.js";
import { Outbox } from "./queue.js";
import { podiumTransport } from "./transport.js";

export const SDK = "podium-node/0.1.0";
export const DEFAULT_QUEUE = "default";
const INITIAL_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 5000;
const DEFAULT_HEARTBEAT_TIMEOUT_MS = 30_000;
const FINAL_CODES = new Set([Code.InvalidArgument, Code.Unauthenticated, Code.PermissionDenied]);

export interface WorkerOptions {
  /** The server: "127.0.0.1:50051" or "http://127.0.0.1:50051" (gRPC over HTTP/2). */
  address: string;
  agents: Agent[];
  /** Task queues served; a step without task_queue is on "default". */
  queues?: string[];
  /** Most attempts run at once; the server never sends more. Default 1. */
  concurrency?: number;
  /** Names the worker for operators; default "<host>/pid-<pid>". */
  identity?: string;
  /** Session events (opened, ended, rejected messages); default: none. */
  log?: (line: string) => void;
  /**
   * Bearer token sent with the session and every governed call (a server with
   * authentication needs one with the `worker` role); default: $PODIUM_TOKEN.
   */
  token?: string;
}

/** The server refused the session (a bad declaration): reconnecting would not help. */
export class SessionRejected extends Error {
  override name = "SessionRejected";
}

type Request = MessageInitShape<typeof ConnectRequestSchema>;

export class Worker {
  readonly agents: ReadonlyMap<string, Agent>;
  readonly queues: readonly string[];
  readonly concurrency: number;
  readonly identity: string;
  /** Sessions the server accepted so far (reconnections included). */
  sessions = 0;

  readonly #client: Client<typeof WorkerService>;
  readonly #log: (line: string) => void;
  readonly #stopping = new AbortController();

  constructor(options: WorkerOptions) {
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError("concurrency must be an integer of at least 1");
    }
    if (options.agents.length === 0) throw new RangeError("a worker needs at least one agent");
    this.agents = new Map(options.agents.map((agent) => [agent.name, agent]));
    this.queues = options.queues ?? [DEFAULT_QUEUE];
    this.concurrency = concurrency;
    this.identity = options.identity ?? `${hostname()}/pid-${process.pid}`;
    this.#log = options.log ?? (() => {});
    const transport = podiumTransport({ address: options.address, token: options.token });
    this.#client = createClient(WorkerService, transport);
  }

  /** Ends the session; run() returns once its attempts have ended. */
  stop(): void {
    this.#stopping.abort();
  }

  /** Serves until stop(); reconnects with backoff whenever a session ends. */
  async run(): Promise<void> {
    let backoff = INITIAL_BACKOFF_MS;
    while (!this.#stopping.signal.aborted) {
      let opened = false;
      try {
        opened = await new Session(this, this.#client, this.#log).serve(this.#stopping.signal);
      } catch (error) {
        const failure = ConnectError.from(error);
        // Bad declarations or credentials: reconnecting would be refused the same way.
        if (FINAL_CODES.has(failure.code)) throw new SessionRejected(failure.rawMessage);
        this.#log(`session ended: ${Code[failure.code]} ${failure.rawMessage}`);
      }
      if (opened) backoff = INITIAL_BACKOFF_MS;
      if (this.#stopping.signal.aborted) return;
      await pause(backoff * (0.5 + Math.random()), this.#stopping.signal);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  openMessage(): Request {
    return {
      message: {
        case: "open",
        value: {
          identity: this.identity,
          queues: [...this.queues],
          agents: [...this.agents.values()].map((agent) => ({
            name: agent.name,
            version: agent.version ?? "",
            description: agent.description ?? "",
            configSchema: agent.configSchema,
            inputSchema: agent.inputSchema,
            outputSchema: agent.outputSchema,
          })),
          maxConcurrentTasks: this.concurrency,
          sdk: SDK,
        },
      },
    };
  }
}

class Session {
  readonly #outbox = new Outbox<ConnectRequest>();
  // Attempts still running, by fencing token: cancelled ones stay until their agent returns,
  // so that their slot stays taken (the server counts them until the worker reports the end).
  readonly #running = new Map<string, AbortController>();
  #heartbeatMs = DEFAULT_HEARTBEAT_TIMEOUT_MS / 3;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(
    readonly worker: Worker,
    readonly client: Client<typeof WorkerService>,
    readonly log: (line: string) => void,
  ) {}

  /** One session; true once the server accepted it. */
  async serve(stopping: AbortSignal): Promise<boolean> {
    const ending = new AbortController();
    const stop = (): void => ending.abort();
    stopping.addEventListener("abort", stop, { once: true });
    this.#send(this.worker.openMessage());
    this.#beat();
    let opened = false;
    try {
      for await (const response of this.client.connect(this.#outbox, { signal: ending.signal })) {
        const message = response.message;
        switch (message.case) {
          case "opened":
            opened = true;
            this.worker.sessions += 1;
            this.log(`session ${message.value.sessionId} opened`);
            break;
          case "task":
            void this.#attempt(message.value);
            break;
          case "cancel":
            this.#running.get(message.value.attemptToken)?.abort(
              new AgentError("podium.Cancelled", message.value.reason || "cancelled", false),
            );
            break;
          case "rejected":
            this.log(`rejected ${message.value.attemptToken}: ${message.value.reason}`);
            break;
        }
      }
    } catch (error) {
      if (!stopping.aborted) throw error;
    } finally {
      stopping.removeEventListener("abort", stop);
      clearTimeout(this.#heartbeat);
      // The attempts of a session that ended are no longer this worker's: the server
      // interrupts and retries them. Their agents are told; what they report is dropped.
      this.#outbox.close();
      for (const controller of this.#running.values()) {
        controller.abort(new AgentError("podium.Interrupted", "the session ended", true));
      }
    }
    return opened;
  }

  #send(message: Request): void {
    this.#outbox.push(create(ConnectRequestSchema, message));
  }

  #beat(): void {
    this.#heartbeat = setTimeout(() => {
      this.#send({ message: { case: "heartbeat", value: { attemptTokens: [...this.#running.keys()] } } });
      this.#beat();
    }, this.#heartbeatMs);
  }

  async #attempt(task: AttemptTask): Promise<void> {
    const token = task.attemptToken;
    const controller = new AbortController();
    this.#running.set(token, controller);
    if (task.heartbeatTimeout) {
      const ms = Number(task.heartbeatTimeout.seconds) * 1000 + task.heartbeatTimeout.nanos / 1e6;
      if (ms / 3 < this.#heartbeatMs) {
        // A shorter lease than any so far: beat at a third of it, starting now.
        this.#heartbeatMs = ms / 3;
        clearTimeout(this.#heartbeat);
        this.#beat();
      }
    }
    const report = (progress: number, message: string): void =>
      this.#send({ message: { case: "progress", value: { attemptToken: token, progress, message } } });
    try {
      const agent = this.worker.agents.get(task.agent);
      if (!agent) throw new AgentError("podium.UnknownAgent", `no agent ${task.agent} here`, false);
      const output = await agent.run(new StepContext(task, this.client, controller.signal, report));
      if (controller.signal.aborted) throw controller.signal.reason;
      const problem = notJson(output);
      if (problem !== null) throw new AgentError("podium.InvalidOutput", problem, false);
      this.#send({ message: { case: "complete", value: { attemptToken: token, output: valueOf(output) } } });
    } catch (thrown) {
      // After a cancel, whatever the agent threw (often the abort reason itself) ends it so.
      const error = controller.signal.aborted ? controller.signal.reason : thrown;
      const failure =
        error instanceof AgentError
          ? { type: error.type, message: error.message, retryable: error.retryable }
          : error instanceof Error
            ? { type: error.name || "Error", message: error.message || error.name, retryable: true }
            : { type: "Error", message: String(error), retryable: true };
      this.#send({ message: { case: "fail", value: { attemptToken: token, failure } } });
    } finally {
      this.#running.delete(token);
    }
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
