"""Cycles in directed graphs: pure logic, shared by pipelines and schedules.

Stages of a pipeline depend on stages, schedules on schedules; both refuse a cycle and
name it. A graph is a mapping from each node to the nodes it points to.
"""

from collections.abc import Collection, Mapping


def find_cycle(edges: Mapping[str, Collection[str]]) -> list[str] | None:
    """Return one cycle of a directed graph, or None if it has none.

    ``edges`` maps each node to the nodes it points to. The cycle starts with
    its smallest name and repeats it at the end: ``['a', 'b', 'a']``. The search
    is iterative and visits names in sorted order, so the answer is stable.
    """
    graph = {node: sorted(set(targets)) for node, targets in edges.items()}
    state: dict[str, bool] = {}  # True while on the current path, False when done
    for root in sorted(graph):
        if root in state:
            continue
        path, pending = [root], [iter(graph[root])]
        state[root] = True
        while pending:
            node = next(pending[-1], None)
            if node is None:
                state[path.pop()] = False
                pending.pop()
            elif state.get(node) is True:
                cycle = path[path.index(node) :]
                start = cycle.index(min(cycle))
                return [*cycle[start:], *cycle[:start], cycle[start]]
            elif node not in state:
                state[node] = True
                path.append(node)
                pending.append(iter(graph.get(node, ())))
    return None


def all_cycles(edges: Mapping[str, Collection[str]]) -> list[list[str]]:
    """Return node-disjoint cycles until none is left."""
    graph = {node: set(targets) for node, targets in edges.items()}
    cycles = []
    while (cycle := find_cycle(graph)) is not None:
        cycles.append(cycle)
        gone = set(cycle)
        graph = {n: t - gone for n, t in graph.items() if n not in gone}
    return cycles
