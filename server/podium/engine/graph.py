"""Graph algorithms on the step DAG: cycles, levels, ancestors, critical path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as a path [a, b, ..., a] following depends_on edges, or None.

    `edges` maps each node to the nodes it depends on; unknown targets are ignored.
    """
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(edges, white)
    for root in edges:
        if color[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        color[root] = grey
        while stack:
            node, index = stack[-1]
            targets = [t for t in edges[node] if t in edges]
            if index < len(targets):
                stack[-1] = (node, index + 1)
                target = targets[index]
                if color[target] == grey:
                    return [*path[path.index(target) :], target]
                if color[target] == white:
                    color[target] = grey
                    stack.append((target, 0))
                    path.append(target)
            else:
                color[node] = black
                stack.pop()
                path.pop()
    return None


def topological_order(edges: Mapping[str, Sequence[str]]) -> list[str]:
    """Nodes so that each comes after its dependencies (input must be acyclic);
    ties keep the input order."""
    remaining = {node: len(set(deps)) for node, deps in edges.items()}
    dependents = dependents_of(edges)
    order = [node for node, count in remaining.items() if count == 0]
    for node in order:  # grows while iterating
        for dependent in dependents[node]:
            remaining[dependent] -= 1
            if remaining[dependent] == 0:
                order.append(dependent)
    return order


def dependents_of(edges: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    dependents: dict[str, list[str]] = {node: [] for node in edges}
    for node, deps in edges.items():
        for dep in dict.fromkeys(deps):
            dependents[dep].append(node)
    return dependents


def levels(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Nodes grouped by depth: level 0 has no dependencies, level n depends on < n."""
    depth: dict[str, int] = {}
    for node in topological_order(edges):
        depth[node] = 1 + max((depth[d] for d in edges[node]), default=-1)
    grouped: list[list[str]] = [[] for _ in range(1 + max(depth.values(), default=-1))]
    for node in edges:
        grouped[depth[node]].append(node)
    return grouped


class Ancestry:
    """Answers "does `node` transitively depend on `other`?" for every pair.

    Each node's ancestors are one bitset (a Python int, bit i for node i), so a
    chain of n steps takes n * n / 8 bytes and word-wide ORs, not n * n / 2
    set entries (a 10,000-step chain: 12 MB instead of gigabytes).
    """

    def __init__(self, edges: Mapping[str, Sequence[str]]) -> None:
        self._bit = {node: 1 << i for i, node in enumerate(edges)}
        self._ancestors: dict[str, int] = {}
        for node in topological_order(edges):
            found = 0
            for dep in edges[node]:
                found |= self._bit[dep] | self._ancestors[dep]
            self._ancestors[node] = found

    def depends_on(self, node: str, other: str) -> bool:
        bit = self._bit.get(other)
        return bit is not None and bool(self._ancestors.get(node, 0) & bit)

    def of(self, node: str) -> set[str]:
        """Every node `node` transitively depends on (for tests and small graphs)."""
        return {other for other in self._bit if self.depends_on(node, other)}


def critical_path(
    edges: Mapping[str, Sequence[str]], weight: Mapping[str, float] | None = None
) -> list[str]:
    """The heaviest chain of dependent nodes (each node weighs 1 by default)."""
    best: dict[str, tuple[float, str | None]] = {}
    for node in topological_order(edges):
        own = 1.0 if weight is None else weight.get(node, 1.0)
        previous = max(edges[node], key=lambda d: best[d][0], default=None)
        best[node] = (own + (best[previous][0] if previous else 0.0), previous)
    if not best:
        return []
    cursor: str | None = max(best, key=lambda n: best[n][0])
    path: list[str] = []
    while cursor is not None:
        path.append(cursor)
        cursor = best[cursor][1]
    return path[::-1]
