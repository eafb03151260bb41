"""A JSON value that satisfies a JSON Schema, made up deterministically: the
`simulated` provider's answer to a request for structured output.

It covers what response-format schemas use (the subset OpenAI's strict mode
accepts and a little more): type, properties, required, items, prefixItems,
enum, const, anyOf/oneOf/allOf, local $ref, string, number and array bounds.
The same schema and seed always give the same value."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

# Items of an array without a minItems: enough to show a fan-out, few enough to read.
DEFAULT_ITEMS = 3
_MAX_DEPTH = 12
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


def instance(schema: Mapping[str, Any], seed: str = "") -> Any:
    """A value of `schema`; `seed` (e.g. the prompt) varies strings and numbers."""
    return _Maker(schema, seed).make(schema, "", 0)


class _Maker:
    def __init__(self, root: Mapping[str, Any], seed: str) -> None:
        self.root = root
        self.words = [w.strip(".,;:!?\"'()") for w in seed.split()] or ["value"]
        self.words = [w for w in self.words if w] or ["value"]
        self.seed = seed

    def make(self, schema: Any, name: str, depth: int) -> Any:
        if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
            return None
        if "$ref" in schema:
            return self.make(self._resolve(str(schema["$ref"])), name, depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for combinator in ("anyOf", "oneOf"):
            options = schema.get(combinator)
            if isinstance(options, list) and options:
                return self.make(options[0], name, depth + 1)
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                if isinstance(part, Mapping):
                    merged = _merge(merged, part)
            return self.make(merged, name, depth + 1)
        kind = self._type(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return self._integer(schema, name)
        if kind == "number":
            return self._number(schema, name)
        if kind == "boolean":
            return self._draw(name) % 2 == 0
        if kind == "null":
            return None
        return self._string(schema, name)

    def _type(self, schema: Mapping[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            declared = next((t for t in declared if t != "null"), declared[0] if declared else None)
        if declared in _TYPES:
            return str(declared)
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        return "string"

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = [r for r in schema.get("required", []) if isinstance(r, str)]
        result = {key: self.make(sub, key, depth + 1) for key, sub in properties.items()}
        for key in required:
            result.setdefault(key, self._string({}, key))
        return result

    def _array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        low = _bound(schema.get("minItems"), 0)
        high = _bound(schema.get("maxItems"), max(low, DEFAULT_ITEMS, len(prefix)))
        count = min(max(low, DEFAULT_ITEMS, len(prefix)), high)
        items = schema.get("items", {})
        singular = name[:-1] if name.endswith("s") else name or "item"
        values = []
        for index in range(count):
            sub = prefix[index] if index < len(prefix) else items
            values.append(self.make(sub, f"{singular} {index + 1}", depth + 1))
        return values

    def _integer(self, schema: Mapping[str, Any], name: str) -> int:
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 101) - 1)
        low, high = int(_ceil(low)), int(_floor(high))
        if high < low:
            return low
        value = low + self._draw(name) % (high - low + 1)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0 and value % step:
            value = min(high, value + step - value % step)
        return value

    def _number(self, schema: Mapping[str, Any], name: str) -> float | int:
        if isinstance(schema.get("multipleOf"), int):
            return self._integer(schema, name)
        low = float(schema.get("minimum", 0))
        high = float(schema.get("maximum", low + 100))
        if "exclusiveMinimum" in schema:
            low = float(schema["exclusiveMinimum"]) + 0.5
        if "exclusiveMaximum" in schema:
            high = float(schema["exclusiveMaximum"]) - 0.5
        if high <= low:
            return low
        return round(low + (high - low) * (self._draw(name) % 1000) / 1000, 2)

    def _string(self, schema: Mapping[str, Any], name: str) -> str:
        word = self.words[self._draw(name) % len(self.words)]
        text = f"{name} {word}".strip() if name else word
        low = _bound(schema.get("minLength"), 0)
        high = _bound(schema.get("maxLength"), max(low, len(text)))
        if len(text) < low:
            text = text + "x" * (low - len(text))
        return text[:high]

    def _draw(self, name: str) -> int:
        digest = hashlib.sha256(f"{self.seed}\0{name}".encode()).digest()
        return int.from_bytes(digest[:4], "big")

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, Mapping) else None
        return node if isinstance(node, Mapping) else {}


def _merge(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(left)
    for key, value in right.items():
        if key == "properties" and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        elif key == "required" and isinstance(merged.get(key), list):
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def _bound(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _ceil(value: Any) -> float:
    return math.ceil(value) if isinstance(value, int | float) else 0


def _floor(value: Any) -> float:
    return math.floor(value) if isinstance(value, int | float) else 100
