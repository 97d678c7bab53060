"""Graph views for the API and the admin view: a cube's graph (around a memory) and paths."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.errors import NotFound
from memsvc.graph.analysis import analyse, shortest_path
from memsvc.schemas import GraphEdge, GraphNode, GraphPath, GraphRead, LinkRead
from memsvc.store import links as link_store
from memsvc.store import memories

LABEL_CHARS = 80
# The most live edges one view or path search loads from a cube.
MAX_EDGES = 50_000


def label(content: str) -> str:
    """A short one-line label of a memory's content."""
    line = " ".join(content.split())
    return line if len(line) <= LABEL_CHARS else line[: LABEL_CHARS - 1].rstrip() + "…"


def _edge(link: LinkRead) -> GraphEdge:
    return GraphEdge(**link.model_dump())


async def _in_cube(
    session: AsyncSession, *, tenant_id: uuid.UUID, cube_id: uuid.UUID, memory_id: uuid.UUID
) -> None:
    mem = await memories.load(session, tenant_id=tenant_id, memory_id=memory_id)
    if mem.cube_id != cube_id or mem.status != "active":
        raise NotFound("memory not found in this cube", detail={"memory_id": str(memory_id)})


async def _walk(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    center: uuid.UUID,
    depth: int,
    limit: int,
) -> tuple[list[uuid.UUID], bool]:
    """Breadth-first from ``center`` over live links to active memories, strongest first."""
    seen = [center]
    seen_set = {center}
    frontier = [center]
    truncated = False
    for _ in range(depth):
        found: list[uuid.UUID] = []
        edges = await link_store.neighbours(session, tenant_id=tenant_id, memory_ids=frontier)
        for e in sorted(edges, key=lambda e: (-e.weight, str(e.id))):
            for other in (e.source_id, e.target_id):
                if other not in seen_set:
                    seen_set.add(other)
                    found.append(other)
        active = {
            m.id
            for m in await link_store.graph_memories(
                session, tenant_id=tenant_id, cube_id=cube_id, ids=found
            )
        }
        frontier = [m for m in found if m in active]
        room = limit - len(seen)
        if len(frontier) > room:
            truncated = True
            frontier = frontier[:room]
        seen.extend(frontier)
        if not frontier or truncated:
            break
    return seen, truncated


async def cube_graph(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    center: uuid.UUID | None,
    depth: int,
    limit: int,
) -> GraphRead:
    """Nodes (with PageRank importance, degree, community) and live edges of a cube.

    With ``center``: the memories within ``depth`` links of it. Without: the ``limit``
    best-connected memories, then the newest unlinked ones.
    """
    if center is not None:
        await _in_cube(session, tenant_id=tenant_id, cube_id=cube_id, memory_id=center)
        ids, truncated = await _walk(
            session, tenant_id=tenant_id, cube_id=cube_id, center=center, depth=depth, limit=limit
        )
        edges = await link_store.neighbours(session, tenant_id=tenant_id, memory_ids=ids)
    else:
        edges = await link_store.of_cube(
            session, tenant_id=tenant_id, cube_id=cube_id, max_edges=MAX_EDGES
        )
        degree: dict[uuid.UUID, int] = {}
        for e in edges:
            degree[e.source_id] = degree.get(e.source_id, 0) + 1
            degree[e.target_id] = degree.get(e.target_id, 0) + 1
        ids = sorted(degree, key=lambda m: (-degree[m], str(m)))[:limit]
        if len(ids) < limit:
            newest = await link_store.graph_memories(
                session, tenant_id=tenant_id, cube_id=cube_id, limit=limit
            )
            chosen = set(ids)
            ids += [m.id for m in newest if m.id not in chosen][: limit - len(ids)]
        total = await link_store.count_active(session, tenant_id=tenant_id, cube_id=cube_id)
        truncated = total > len(ids)
    rows = await link_store.graph_memories(session, tenant_id=tenant_id, cube_id=cube_id, ids=ids)
    by_id = {m.id: m for m in rows}
    ids = [m for m in ids if m in by_id]
    keep = set(ids)
    edges = [e for e in edges if e.source_id in keep and e.target_id in keep]
    stats = await asyncio.to_thread(analyse, ids, edges)
    nodes = [
        GraphNode(
            id=m,
            label=label(by_id[m].content),
            kind=by_id[m].kind,
            layer=by_id[m].layer,
            tags=by_id[m].tags,
            importance=round(stats.importance.get(m, 0.0), 6),
            degree=stats.degree.get(m, 0),
            community=stats.community.get(m),
            created_at=by_id[m].created_at,
        )
        for m in ids
    ]
    return GraphRead(
        nodes=nodes, edges=[_edge(e) for e in edges], center=center, truncated=truncated
    )


async def graph_path(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    source: uuid.UUID,
    target: uuid.UUID,
) -> GraphPath:
    """The shortest path between two memories of the cube (``found: false`` when none)."""
    for mid in (source, target):
        await _in_cube(session, tenant_id=tenant_id, cube_id=cube_id, memory_id=mid)
    if source == target:
        return GraphPath(
            source_id=source, target_id=target, found=True, memory_ids=[source], length=0
        )
    edges = await link_store.of_cube(
        session, tenant_id=tenant_id, cube_id=cube_id, max_edges=MAX_EDGES
    )
    found = await asyncio.to_thread(shortest_path, edges, source, target)
    if found is None:
        return GraphPath(source_id=source, target_id=target, found=False)
    path, hops = found
    return GraphPath(
        source_id=source,
        target_id=target,
        found=True,
        memory_ids=path,
        edges=[_edge(e) for e in hops],
        length=len(hops),
    )
