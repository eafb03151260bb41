// JSON values <-> google.protobuf.Value (Struct fields are plain JsonObjects in protobuf-es).
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";

export function valueOf(json: JsonValue): Value {
  return fromJson(ValueSchema, json);
}

export function jsonOf(value: Value | undefined): JsonValue {
  return value === undefined ? null : toJson(ValueSchema, value);
}

/** Why `output` is not a JSON value (undefined, a function, NaN, a cycle...), or null if it is. */
export function notJson(output: unknown): string | null {
  const seen = new Set<object>();
  const check = (value: unknown, path: string): string | null => {
    if (value === null || typeof value === "string" || typeof value === "boolean") return null;
    if (typeof value === "number") {
      return Number.isFinite(value) ? null : `${path} is ${value}, not a JSON number`;
    }
    if (typeof value !== "object") return `${path} is ${typeof value}, not JSON`;
    if (seen.has(value)) return `${path} refers to itself`;
    seen.add(value);
    const entries = Array.isArray(value)
      ? value.map((v, i) => [`${path}[${i}]`, v] as const)
      : Object.entries(value).map(([k, v]) => [`${path}.${k}`, v] as const);
    for (const [at, v] of entries) {
      const problem = check(v, at);
      if (problem !== null) return problem;
    }
    seen.delete(value);
    return null;
  };
  return check(output, "output");
}
