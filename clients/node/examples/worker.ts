// Serves the example agent: node dist/examples/worker.js --address 127.0.0.1:50051
import { parseArgs } from "node:util";
import { Worker } from "../src/index.js";
import { draftReply } from "./draft_reply.js";

const { values } = parseArgs({
  options: {
    address: { type: "string", default: "127.0.0.1:50051" },
    queue: { type: "string", multiple: true, default: ["default"] },
    concurrency: { type: "string", default: "4" },
  },
});

const worker = new Worker({
  address: values.address,
  agents: [draftReply],
  queues: values.queue,
  concurrency: Number(values.concurrency),
  log: (line) => console.error(line),
});
process.once("SIGTERM", () => worker.stop());
process.once("SIGINT", () => worker.stop());
await worker.run();
