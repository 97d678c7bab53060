"""The graph the admin page draws: the API's graph view plus what the side panel shows.

``memsvc.graph.views.cube_graph`` chooses nodes and edges (bounded by ``limit``; around a
centre up to ``depth`` hops) and scores them (PageRank importance, degree, community).
This adds each node's content (clipped), the cube's relation names (for the filter, even
ones not yet loaded) and its number of active memories.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.graph import views
from memsvc.schemas import GraphEdge
from memsvc.store import links

MAX_LIMIT = 5000
MAX_DEPTH = 4
CONTENT_CHARS = 400


class AdminGraphNode(BaseModel):
    id: uuid.UUID
    label: str
    content: str
    kind: str
    layer: str
    tags: list[str]
    importance: float
    degree: int
    community: int | None = None
    created_at: datetime


class AdminGraph(BaseModel):
    """Nodes and edges to draw; ``truncated`` says ``limit`` left nodes out."""

    nodes: list[AdminGraphNode]
    edges: list[GraphEdge]
    center: uuid.UUID | None = None
    truncated: bool
    relations: list[str]
    memory_count: int


async def cube_graph(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    center: uuid.UUID | None,
    depth: int,
    limit: int,
) -> AdminGraph:
    """A bounded piece of the cube's graph with node contents for the page."""
    view = await views.cube_graph(
        session, tenant_id=tenant_id, cube_id=cube_id, center=center, depth=depth, limit=limit
    )
    ids = [n.id for n in view.nodes]
    rows = await links.graph_memories(session, tenant_id=tenant_id, cube_id=cube_id, ids=ids)
    contents = {m.id: m.content[:CONTENT_CHARS] for m in rows}
    return AdminGraph(
        nodes=[
            AdminGraphNode(**n.model_dump(), content=contents.get(n.id, n.label))
            for n in view.nodes
        ],
        edges=view.edges,
        center=view.center,
        truncated=view.truncated,
        relations=await links.relations(session, tenant_id=tenant_id, cube_id=cube_id),
        memory_count=await links.count_active(session, tenant_id=tenant_id, cube_id=cube_id),
    )
