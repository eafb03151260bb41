// How values of the contract read on the page.
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import type { Money, Usage } from "./gen/podium/v1/common_pb.js";

export function money(value: Money | undefined, digits = 6): string {
  if (!value) return "—";
  const amount = Number(value.units) + value.nanos / 1e9;
  return `${amount.toFixed(digits)} ${value.currencyCode || "USD"}`;
}

export function moneyAmount(value: Money | undefined): number {
  return value ? Number(value.units) + value.nanos / 1e9 : 0;
}

export function millis(time: Timestamp | undefined): number | undefined {
  if (!time || (time.seconds === 0n && time.nanos === 0)) return undefined;
  return Number(time.seconds) * 1000 + time.nanos / 1e6;
}

export function when(time: Timestamp | undefined): string {
  const ms = millis(time);
  return ms === undefined ? "—" : new Date(ms).toLocaleString();
}

export function seconds(duration: Duration | undefined): number {
  return duration ? Number(duration.seconds) + duration.nanos / 1e9 : 0;
}

export function span(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function tokens(usage: Usage | undefined): string {
  if (!usage || (usage.inputTokens === 0n && usage.outputTokens === 0n)) return "—";
  return `${usage.inputTokens} in / ${usage.outputTokens} out`;
}

/** RUN_STATE_SUCCEEDED -> succeeded, from an enum's name. */
export function enumLabel(names: Record<number, string>, value: number, prefix: string): string {
  const name = names[value] ?? String(value);
  return name.replace(prefix, "").toLowerCase().replace(/_/g, " ");
}

export function shortId(name: string): string {
  return name.replace(/^(runs|workflows)\//, "");
}

/** A JSON value as YAML (block style), for reading definitions. */
export function yaml(value: unknown, indent = 0): string {
  const pad = "  ".repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return value
      .map((item) => {
        const text = yaml(item, indent + 1);
        return isBlock(item) ? `\n${pad}- ${text.trimStart()}` : `\n${pad}- ${text}`;
      })
      .join("");
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return "{}";
    return entries
      .map(([key, item]) => {
        const text = yaml(item, indent + 1);
        return isBlock(item) ? `\n${pad}${key}:${text}` : `\n${pad}${key}: ${text}`;
      })
      .join("");
  }
  if (typeof value === "string") {
    return /^[\w./-]+$/.test(value) && !/^(true|false|null|\d.*)$/.test(value)
      ? value
      : JSON.stringify(value);
  }
  return JSON.stringify(value);
}

function isBlock(value: unknown): boolean {
  return (
    value !== null &&
    typeof value === "object" &&
    (Array.isArray(value) ? value.length > 0 : Object.keys(value as object).length > 0)
  );
}
