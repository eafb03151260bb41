// The step context a Node agent gets for one attempt: its input and config, progress,
// cancellation, and the governed LLM and tool calls (which go through the server's gate).
import { create, type JsonObject, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import type { Money } from "./gen/podium/v1/common_pb.js";
import {
  CompletionRequestSchema,
  type AttemptTask,
  type Completion,
  type ToolSpec,
  type WorkerService,
} from "./gen/podium/v1/worker_service_pb.js";
import { AgentError } from "./agent.js";
import { jsonOf } from "./json.js";

/** A prompt, in the contract's shape (podium.v1.CompletionRequest): model, messages, tools... */
export type CompletionRequest = MessageInitShape<typeof CompletionRequestSchema>;

/** What the gate answered: the completion, who answered, and its exact cost (decimal string). */
export interface ModelResult {
  readonly completion: Completion;
  readonly provider: string;
  readonly model: string;
  /** The call's cost in `currencyCode`, exact, e.g. "0.0000215". */
  readonly cost: string;
  readonly currencyCode: string;
}

/** ctx.llm: every call is made by the server, through breakers, quotas and budgets. */
export interface ModelGateway {
  /**
   * Completes a prompt with `provider` (then `fallbacks`, in order, while a provider is
   * unavailable). A refusal (podium.BudgetExceeded, podium.QuotaExceeded, podium.CircuitOpen)
   * or a provider's error is thrown as an AgentError carrying the server's failure.
   */
  complete(
    provider: string,
    request: CompletionRequest,
    options?: { fallbacks?: { provider: string; model: string }[] },
  ): Promise<ModelResult>;
}

export class StepContext {
  readonly runId: string;
  readonly workflowId: string;
  readonly stepId: string;
  /** Fan-out item index or loop iteration; -1: none. */
  readonly item: number;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly agent: string;
  readonly queue: string;
  /** The step's input, its expressions evaluated (always an object). */
  readonly input: JsonObject;
  /** The step's static settings. */
  readonly config: JsonObject;
  readonly attemptDeadline: Date | undefined;
  readonly stepDeadline: Date | undefined;
  /** W3C trace context of the run. */
  readonly traceparent: string;
  readonly tracestate: string;
  /** The tools the step may call with callTool. */
  readonly tools: readonly ToolSpec[];
  /** Aborted when the server cancels the attempt (run cancelled, timeout, session lost). */
  readonly signal: AbortSignal;
  readonly llm: ModelGateway;

  readonly #token: string;
  readonly #client: Client<typeof WorkerService>;
  readonly #report: (progress: number, message: string) => void;

  constructor(
    task: AttemptTask,
    client: Client<typeof WorkerService>,
    signal: AbortSignal,
    report: (progress: number, message: string) => void,
  ) {
    this.runId = task.run.replace(/^runs\//, "");
    this.workflowId = task.workflow.replace(/^workflows\//, "");
    this.stepId = task.stepId;
    this.item = task.item;
    this.attempt = task.attempt;
    this.agent = task.agent;
    this.queue = task.queue;
    this.input = task.input ?? {};
    this.config = task.config ?? {};
    this.attemptDeadline = task.attemptDeadline && timestampDate(task.attemptDeadline);
    this.stepDeadline = task.stepDeadline && timestampDate(task.stepDeadline);
    this.traceparent = task.traceparent;
    this.tracestate = task.tracestate;
    this.tools = task.tools;
    this.signal = signal;
    this.#token = task.attemptToken;
    this.#client = client;
    this.#report = report;
    this.llm = { complete: (provider, request, options) => this.#complete(provider, request, options) };
  }

  /** Reports progress (a STEP_PROGRESS event): `progress` in [0, 1], an optional message. */
  report(progress: number, message = ""): void {
    this.#report(Math.min(1, Math.max(0, progress)), message);
  }

  /** Calls one of the step's tools through the server; its failure is thrown as an AgentError. */
  async callTool(name: string, args: JsonObject = {}): Promise<JsonValue> {
    const response = await this.#client.callTool(
      { attemptToken: this.#token, name, arguments: args },
      { signal: this.signal },
    );
    if (response.failure) throw failureError(response.failure);
    return jsonOf(response.output);
  }

  /** Waits `ms` milliseconds, or throws when the attempt is cancelled first. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.signal.aborted) return reject(this.signal.reason);
      const timer = setTimeout(() => {
        this.signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(this.signal.reason);
      };
      this.signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  async #complete(
    provider: string,
    request: CompletionRequest,
    options: { fallbacks?: { provider: string; model: string }[] } = {},
  ): Promise<ModelResult> {
    const response = await this.#client.callModel(
      {
        attemptToken: this.#token,
        provider,
        request: create(CompletionRequestSchema, request),
        fallbacks: options.fallbacks ?? [],
      },
      { signal: this.signal },
    );
    if (response.failure) throw failureError(response.failure);
    if (!response.completion) throw new AgentError("podium.Internal", "no completion", true);
    return {
      completion: response.completion,
      provider: response.provider,
      model: response.model,
      cost: decimal(response.cost),
      currencyCode: response.cost?.currencyCode || "USD",
    };
  }
}

function failureError(failure: { type: string; message: string; retryable: boolean }): AgentError {
  return new AgentError(failure.type, failure.message, failure.retryable);
}

/** Money as an exact decimal string (units and nanos never pass through a float). */
export function decimal(money: Money | undefined): string {
  if (!money) return "0";
  const negative = money.units < 0n || money.nanos < 0;
  const units = (money.units < 0n ? -money.units : money.units).toString();
  const nanos = Math.abs(money.nanos).toString().padStart(9, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${units}${nanos ? `.${nanos}` : ""}`;
}
