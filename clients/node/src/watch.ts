// Watching a run (ProgressService.WatchRun) across reconnects: every event once, in sequence
// order, until the run's final event. The same rules as the Python client's watch
// (client/podium/client/_watch.py): a subscriber the server cut off for lagging
// (SUBSCRIBER_TOO_SLOW) resumes at once after the last sequence it saw; a lost connection
// (a server restarting) is retried with backoff until the policy gives up.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { RunEventType, type RunEvent } from "./gen/podium/v1/event_pb.js";
import { ProgressService, WatchRunRequestSchema } from "./gen/podium/v1/progress_service_pb.js";
import { errorInfo } from "./error_info.js";
import { podiumTransport, type ServerOptions } from "./transport.js";

export const FINAL_EVENT_TYPES: ReadonlySet<RunEventType> = new Set([
  RunEventType.RUN_SUCCEEDED,
  RunEventType.RUN_FAILED,
  RunEventType.RUN_CANCELLED,
]);

// ErrorInfo reason of a subscriber cut off for lagging (ErrorReason SUBSCRIBER_TOO_SLOW).
const SUBSCRIBER_TOO_SLOW = "SUBSCRIBER_TOO_SLOW";
// How a dropped HTTP/2 stream may surface when the server process dies mid-stream, besides
// UNAVAILABLE; matched on the message because these codes are also used for real server faults.
// The Python client's hints, plus connect-node's wording: a server killed mid-stream ends the
// call with "http/2 stream closed with error code CANCEL (0x8)", code CANCELED, or with the
// socket's "read ECONNRESET", code ABORTED.
const CONNECTION_LOSS_HINTS = [
  "stream removed",
  "rst_stream",
  "socket closed",
  "connection reset",
  "http/2 stream closed",
  "econnreset",
];
const HINTED_CODES: ReadonlySet<Code> = new Set([
  Code.Unknown,
  Code.Internal,
  Code.Canceled,
  Code.Aborted,
]);

/**
 * Exponential backoff between reconnects after a lost connection, giving up after
 * `giveUpAfterMs` during which no attempt delivered anything.
 */
export interface ReconnectPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  giveUpAfterMs: number;
  /** Milliseconds from any origin; default performance.now. */
  clock: () => number;
}

export const DEFAULT_RECONNECT: Readonly<ReconnectPolicy> = {
  initialDelayMs: 100,
  maxDelayMs: 2000,
  giveUpAfterMs: 30_000,
  clock: () => performance.now(),
};

export interface WatchOptions {
  /** The last sequence already seen: only later events are yielded. Default 0n (all). */
  afterSequence?: bigint;
  reconnect?: Partial<ReconnectPolicy>;
  /** Ends the watch: the iteration then throws the signal's reason. */
  signal?: AbortSignal;
}

/** A ProgressService client for watchRun (and the stream's other calls). */
export function progressClient(server: ServerOptions): Client<typeof ProgressService> {
  return createClient(ProgressService, podiumTransport(server));
}

/**
 * Every event of `run` ("abc" or "runs/abc") after `afterSequence`, then live ones, ending after
 * the run's final event (RUN_SUCCEEDED, RUN_FAILED or RUN_CANCELLED). Resumes from the last
 * sequence seen when the server cuts the stream off (SUBSCRIBER_TOO_SLOW) or the connection is
 * lost, so no event is skipped or repeated; throws the ConnectError of any other failure, or of
 * the last lost connection once reconnecting has failed for the policy's time.
 */
export async function* watchRun(
  client: Client<typeof ProgressService>,
  run: string,
  options: WatchOptions = {},
): AsyncGenerator<RunEvent, void, undefined> {
  const name = runName(run);
  const cursor = new WatchCursor(options.afterSequence ?? 0n, {
    ...DEFAULT_RECONNECT,
    ...options.reconnect,
  });
  while (true) {
    options.signal?.throwIfAborted();
    const request = create(WatchRunRequestSchema, { run: name, afterSequence: cursor.lastSequence });
    cursor.streamOpened();
    // Ends the server-side stream when the caller abandons the iteration early.
    const call = new AbortController();
    const stop = (): void => call.abort(options.signal?.reason);
    options.signal?.addEventListener("abort", stop, { once: true });
    try {
      for await (const response of client.watchRun(request, { signal: call.signal })) {
        yield* cursor.accept(response.events);
      }
    } catch (thrown) {
      options.signal?.throwIfAborted();
      const error = ConnectError.from(thrown);
      const delay = cursor.retryDelay(error);
      if (delay === undefined) throw error;
      await pause(delay, options.signal);
      continue;
    } finally {
      options.signal?.removeEventListener("abort", stop);
      call.abort();
    }
    if (!cursor.resumeAfterEnd()) return;
  }
}

/** "abc" or "runs/abc" -> "runs/abc". */
export function runName(value: string): string {
  const trimmed = value.trim();
  if (!trimmed) throw new RangeError("empty run name");
  if (trimmed.startsWith("runs/")) return trimmed;
  if (trimmed.includes("/")) throw new RangeError(`expected runs/{id} or a bare id, got ${JSON.stringify(trimmed)}`);
  return `runs/${trimmed}`;
}

/** The position of one subscriber in a run's event log, across reconnects. */
export class WatchCursor {
  lastSequence: bigint;
  finished = false;
  readonly #policy: ReconnectPolicy;
  #failures = 0;
  #failingSince: number | undefined;
  #deliveredThisStream = false;

  constructor(afterSequence: bigint, policy: ReconnectPolicy) {
    this.lastSequence = afterSequence;
    this.#policy = policy;
  }

  streamOpened(): void {
    this.#deliveredThisStream = false;
  }

  /** The events not seen yet, in order; a response is proof the connection works again. */
  accept(events: readonly RunEvent[]): RunEvent[] {
    this.#failures = 0;
    this.#failingSince = undefined;
    const fresh: RunEvent[] = [];
    for (const event of events) {
      // The server resumes after lastSequence, but a replayed batch straddling the cut must
      // still never reach the caller twice.
      if (event.sequence <= this.lastSequence) continue;
      this.lastSequence = event.sequence;
      fresh.push(event);
      if (FINAL_EVENT_TYPES.has(event.type)) this.finished = true;
    }
    if (fresh.length > 0) this.#deliveredThisStream = true;
    return fresh;
  }

  /**
   * Whether to reconnect after the server ended the stream cleanly. It normally ends after the
   * run's final event; one that ends earlier after delivering events was cut short (a server
   * shutting down), so resume; one that delivered nothing has nothing more to say, so stop
   * rather than loop.
   */
  resumeAfterEnd(): boolean {
    return !this.finished && this.#deliveredThisStream;
  }

  /** Milliseconds to wait before reconnecting after `error`, or undefined to give up. */
  retryDelay(error: ConnectError): number | undefined {
    const cutOff = isCutOff(error);
    // The server cut this subscriber off for falling too far behind the run; the rest is in
    // the event log, and resuming after lastSequence reads it at once.
    if (cutOff && this.#deliveredThisStream) return 0;
    if (!cutOff && !isConnectionLoss(error)) return undefined;
    const now = this.#policy.clock();
    this.#failingSince ??= now;
    let delay = Math.min(this.#policy.maxDelayMs, this.#policy.initialDelayMs * 2 ** this.#failures);
    // Jitter spreads the reconnects of many subscribers after a server restart.
    delay *= 0.5 + Math.random() * 0.5;
    if (now + delay - this.#failingSince > this.#policy.giveUpAfterMs) return undefined;
    this.#failures += 1;
    return delay;
  }
}

/** A stream the server ended because its subscriber lagged behind the run: resumable. */
function isCutOff(error: ConnectError): boolean {
  if (error.code !== Code.ResourceExhausted) return false;
  const info = errorInfo(error);
  return info?.reason === SUBSCRIBER_TOO_SLOW && info.domain === "podium";
}

function isConnectionLoss(error: ConnectError): boolean {
  if (error.code === Code.Unavailable) return true;
  // (A CANCELED the caller caused never gets here: watchRun rethrows its own abort first.)
  if (HINTED_CODES.has(error.code)) {
    const message = error.rawMessage.toLowerCase();
    return CONNECTION_LOSS_HINTS.some((hint) => message.includes(hint));
  }
  return false;
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      if (signal?.aborted) reject(signal.reason);
      else resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
