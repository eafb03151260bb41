"""podium.engine.graph: ancestry answers every pair in memory that stays
small for the longest chain a workflow may have."""

from __future__ import annotations

import tracemalloc

from podium.core.limits import DEFAULTS
from podium.engine.graph import Ancestry


def test_ancestry_of_a_diamond() -> None:
    edges = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []}
    ancestry = Ancestry(edges)
    assert ancestry.of("d") == {"a", "b", "c"}
    assert ancestry.of("a") == set()
    assert ancestry.depends_on("d", "a")
    assert not ancestry.depends_on("a", "d")
    assert not ancestry.depends_on("b", "c")
    assert not ancestry.depends_on("d", "e")
    assert not ancestry.depends_on("d", "unknown")


def test_ancestry_of_the_longest_chain_is_small() -> None:
    # Sets of ancestors held n^2 / 2 entries: 50 million for this chain, over 2 GB.
    # Bitsets take n^2 / 8 bytes, 12.5 MB.
    edges = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(DEFAULTS.max_steps)}
    tracemalloc.start()
    try:
        ancestry = Ancestry(edges)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, peak
    last = f"s{DEFAULTS.max_steps - 1}"
    assert ancestry.depends_on(last, "s0")
    assert not ancestry.depends_on("s0", last)
