"""Graph: links of a memory, manual links, a cube's graph and paths in it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from memsvc.api.deps import CubeDep, PrincipalDep, SessionDep
from memsvc.graph import views
from memsvc.schemas import GraphPath, GraphRead, LinkCreate, LinkPage, LinkRead
from memsvc.store import links

router = APIRouter(prefix="/v1", tags=["graph"])


@router.get("/memories/{memory_id}/links", response_model=LinkPage)
async def list_links(
    memory_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LinkPage:
    """Live links of a memory in both directions, oldest first."""
    return await links.for_memory(
        session, tenant_id=principal.tenant_id, memory_id=memory_id, cursor=cursor, limit=limit
    )


@router.post("/links", status_code=201, response_model=LinkRead)
async def create_link(body: LinkCreate, principal: PrincipalDep, session: SessionDep) -> LinkRead:
    """A manual link between two memories of one cube (409 when the edge is already live)."""
    return await links.create(
        session, tenant_id=principal.tenant_id, data=body, actor=principal.actor
    )


@router.delete("/links/{link_id}", status_code=204)
async def delete_link(link_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> Response:
    """Retire a link."""
    await links.delete(session, tenant_id=principal.tenant_id, link_id=link_id)
    return Response(status_code=204)


@router.get("/cubes/{cube_id}/graph", response_model=GraphRead)
async def cube_graph(
    cube: CubeDep,
    principal: PrincipalDep,
    session: SessionDep,
    center: uuid.UUID | None = None,
    depth: Annotated[int, Query(ge=1, le=4)] = 2,
    limit: Annotated[int, Query(ge=1, le=2000)] = 200,
) -> GraphRead:
    """Nodes and edges for drawing, with PageRank importance, degree and communities."""
    return await views.cube_graph(
        session,
        tenant_id=principal.tenant_id,
        cube_id=cube.id,
        center=center,
        depth=depth,
        limit=limit,
    )


@router.get("/cubes/{cube_id}/graph/path", response_model=GraphPath)
async def graph_path(
    cube: CubeDep,
    principal: PrincipalDep,
    session: SessionDep,
    source: uuid.UUID,
    target: uuid.UUID,
) -> GraphPath:
    """The shortest path between two memories along live links (either direction)."""
    return await views.graph_path(
        session, tenant_id=principal.tenant_id, cube_id=cube.id, source=source, target=target
    )
