"""The budget check of an atomic reservation, shared by every backend
(`GovernanceStore.reserve_within`): pure arithmetic over what the backend read
inside the transaction that inserts the reservation."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

# (budget, period_key)
Key = tuple[str, str]


def reserved_in(rows: Iterable[tuple[int, str]], keys: Iterable[Key]) -> dict[Key, int]:
    """Nanos held by open reservations (amount_nanos, body as JSON text) in each of `keys`."""
    totals = dict.fromkeys(keys, 0)
    for amount_nanos, body in rows:
        for key in json.loads(body).get("keys", []):
            pair = (str(key[0]), str(key[1]))
            if pair in totals:
                totals[pair] += amount_nanos
    return totals


def first_refusal(
    limits: Mapping[Key, int],
    spent: Mapping[Key, int],
    reserved: Mapping[Key, int],
    amount_nanos: int,
) -> Key | None:
    """The first key (in key order) where settled + reserved + the new amount
    passes its limit, or None when it fits every one."""
    for key in sorted(limits):
        if spent.get(key, 0) + reserved.get(key, 0) + amount_nanos > limits[key]:
            return key
    return None
