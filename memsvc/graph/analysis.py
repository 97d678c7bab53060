"""networkx views of the link graph: importance, degree, communities, shortest paths.

Everything here is synchronous CPU work on plain data; callers run it in a thread
(:func:`asyncio.to_thread`) so the event loop never blocks on it.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import networkx as nx

from memsvc.schemas import LinkRead


@dataclass
class Analysis:
    """Per-node importance (PageRank, sums to 1), degree and community number."""

    importance: dict[uuid.UUID, float]
    degree: dict[uuid.UUID, int]
    community: dict[uuid.UUID, int]


def build(nodes: Iterable[uuid.UUID], edges: Sequence[LinkRead]) -> nx.Graph:
    """An undirected weighted graph; parallel links between a pair keep the highest weight."""
    g = nx.Graph()
    g.add_nodes_from(nodes)
    for e in edges:
        if e.source_id not in g or e.target_id not in g:
            continue
        if g.has_edge(e.source_id, e.target_id):
            data = g.edges[e.source_id, e.target_id]
            data["weight"] = max(data["weight"], e.weight)
        else:
            g.add_edge(e.source_id, e.target_id, weight=max(e.weight, 1e-6))
    return g


def analyse(nodes: Sequence[uuid.UUID], edges: Sequence[LinkRead]) -> Analysis:
    """PageRank, degree and Louvain communities (numbered by size, largest 0; seeded)."""
    g = build(nodes, edges)
    if g.number_of_nodes() == 0:
        return Analysis({}, {}, {})
    importance = nx.pagerank(g, weight="weight") if g.number_of_edges() else {}
    if not importance:
        importance = {n: 1.0 / g.number_of_nodes() for n in g.nodes}
    communities = nx.community.louvain_communities(g, weight="weight", seed=0)
    ordered = sorted(communities, key=lambda c: (-len(c), min(str(n) for n in c)))
    community = {n: i for i, members in enumerate(ordered) for n in members}
    return Analysis(
        importance={n: float(v) for n, v in importance.items()},
        degree={n: int(d) for n, d in g.degree()},
        community=community,
    )


def shortest_path(
    edges: Sequence[LinkRead], source: uuid.UUID, target: uuid.UUID
) -> tuple[list[uuid.UUID], list[LinkRead]] | None:
    """Fewest hops from ``source`` to ``target`` along links in either direction, or None."""
    nodes = {source, target} | {e.source_id for e in edges} | {e.target_id for e in edges}
    g = build(nodes, edges)
    try:
        path: list[uuid.UUID] = nx.shortest_path(g, source, target)
    except nx.NetworkXNoPath:
        return None
    best: dict[frozenset[uuid.UUID], LinkRead] = {}
    for e in edges:
        key = frozenset((e.source_id, e.target_id))
        if key not in best or e.weight > best[key].weight:
            best[key] = e
    return path, [best[frozenset(pair)] for pair in itertools.pairwise(path)]
