// An agent written in TypeScript: drafts a customer's order confirmation with a governed
// LLM call (charged to the run's budget, counted by quotas and breakers), reporting progress.
import type { Agent } from "../src/index.js";

export const draftReply: Agent = {
  name: "node-draft-reply",
  version: "1.0.0",
  description: "Drafts an order confirmation for a customer (runs in a Node worker).",
  inputSchema: {
    type: "object",
    required: ["customer", "total"],
    properties: { customer: { type: "string" }, total: { type: "number" } },
  },
  outputSchema: {
    type: "object",
    required: ["reply", "model"],
    properties: { reply: { type: "string" }, model: { type: "string" } },
  },
  async run(ctx) {
    const { customer, total } = ctx.input as { customer: string; total: number };
    ctx.report(0.1, "asking the model");
    const answer = await ctx.llm.complete(String(ctx.config.provider ?? "simulated"), {
      model: String(ctx.config.model ?? "sim-small"),
      messages: [
        { role: "system", content: "You write one-line order confirmations." },
        { role: "user", content: `Confirm ${customer}'s order of ${total} USD.` },
      ],
    });
    ctx.report(1, `drafted for ${answer.cost} ${answer.currencyCode}`);
    return { reply: answer.completion.text, model: answer.model };
  },
};
