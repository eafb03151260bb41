// The watcher the Python test suite (tests/e2e/test_node_watch.py) starts: watchRun over one
// run, printing one JSON record per line. With --hold it stops reading after the first event
// until a line arrives on stdin, so that the server cuts it off as a lagging subscriber. With
// --tick-clock the reconnect policy's clock advances 100 ms at each reading, so that when it
// gives up (after --give-up-ms) follows from the count of failures, not from the machine's speed.
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { RunEventType, progressClient, watchRun } from "../src/index.js";

const { values } = parseArgs({
  options: {
    address: { type: "string" },
    run: { type: "string" },
    after: { type: "string", default: "0" },
    hold: { type: "boolean", default: false },
    "give-up-ms": { type: "string", default: "120000" },
    "tick-clock": { type: "boolean", default: false },
  },
});

const say = (record: object): void => void process.stdout.write(`${JSON.stringify(record)}\n`);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const client = progressClient({ address: values.address ?? "" });
// Quick reconnects that, by default, never give up within a test: a restarted server may take
// its time.
let ticks = 0;
const reconnect = {
  initialDelayMs: 10,
  maxDelayMs: 50,
  giveUpAfterMs: Number(values["give-up-ms"]),
  ...(values["tick-clock"] ? { clock: () => 100 * ticks++ } : {}),
};

try {
  let first = true;
  for await (const event of watchRun(client, values.run ?? "", {
    afterSequence: BigInt(values.after),
    reconnect,
  })) {
    say({ event: "run-event", sequence: Number(event.sequence), type: RunEventType[event.type] });
    if (first && values.hold) {
      first = false;
      say({ event: "holding" });
      await lines.next();
    }
  }
  say({ event: "end" });
} catch (error) {
  const failure = ConnectError.from(error);
  say({ event: "error", code: failure.code, message: failure.rawMessage });
}
process.exit(0);
