// The worker the Python test suite (tests/e2e/test_node_worker.py) starts: the example agent
// plus agents that make flow control, cancellation and failures observable. Each line it
// prints on stdout is a JSON record of what an agent saw.
import { parseArgs } from "node:util";
import { AgentError, Worker, type Agent } from "../src/index.js";
import { draftReply } from "../examples/draft_reply.js";

const { values } = parseArgs({
  options: {
    address: { type: "string" },
    queue: { type: "string", multiple: true, default: ["default"] },
    concurrency: { type: "string", default: "1" },
  },
});

const say = (record: object): void => void process.stdout.write(`${JSON.stringify(record)}\n`);
let running = 0;

// Holds its attempt for config.ms (forever when unset) or until cancelled, counting how many
// of this worker's attempts run at once.
const hold: Agent = {
  name: "node-hold",
  configSchema: { type: "object", properties: { ms: { type: "number", minimum: 0 } } },
  async run(ctx) {
    running += 1;
    say({ event: "started", step: ctx.stepId, item: ctx.item, running });
    try {
      ctx.report(0.5, "holding");
      await ctx.sleep(typeof ctx.config.ms === "number" ? ctx.config.ms : 3_600_000);
      return { item: ctx.item, attempt: ctx.attempt };
    } catch (error) {
      say({ event: "aborted", step: ctx.stepId, reason: String((error as Error).message) });
      throw error;
    } finally {
      running -= 1;
    }
  },
};

// Fails as config says.
const fail: Agent = {
  name: "node-fail",
  async run(ctx) {
    if (ctx.config.plain) throw new RangeError("a plain error");
    throw new AgentError(String(ctx.config.type), "failed on purpose", Boolean(ctx.config.retryable));
  },
};

// Returns what its output schema forbids.
const badOutput: Agent = {
  name: "node-bad-output",
  outputSchema: { type: "object", required: ["total"], properties: { total: { type: "number" } } },
  async run() {
    return { total: "not a number" };
  },
};

const worker = new Worker({
  address: values.address ?? "",
  agents: [draftReply, hold, fail, badOutput],
  queues: values.queue,
  concurrency: Number(values.concurrency),
  log: (line) => say({ event: "log", line }),
});
process.once("SIGTERM", () => worker.stop());
await worker.run();
say({ event: "stopped" });
