"""The graph page and the JSON it draws from (the session's tenant only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from memsvc.web import graphdata
from memsvc.web.deps import CubeDep, SessionDep, WebDep
from memsvc.web.errors import AdminRoute
from memsvc.web.render import SECURITY_HEADERS, page

router = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)

DEFAULT_LIMIT = 300


@router.get("/cubes/{cube_id}/graph")
async def graph_page(request: Request, cube: CubeDep, _: WebDep) -> Response:
    """An interactive drawing of the cube's links; data is fetched by the page."""
    center = request.query_params.get("center") or ""
    return page(
        request,
        "graph.html",
        cube=cube,
        center=center,
        limit=DEFAULT_LIMIT,
        max_limit=graphdata.MAX_LIMIT,
    )


@router.get("/api/cubes/{cube_id}/graph", response_model=graphdata.AdminGraph)
async def graph_json(
    cube: CubeDep,
    web: WebDep,
    session: SessionDep,
    response: Response,
    center: uuid.UUID | None = None,
    depth: Annotated[int, Query(ge=1, le=graphdata.MAX_DEPTH)] = 2,
    limit: Annotated[int, Query(ge=1, le=graphdata.MAX_LIMIT)] = DEFAULT_LIMIT,
) -> graphdata.AdminGraph:
    """The API's graph view (around ``center``, or the best-connected nodes) plus contents."""
    response.headers.update(SECURITY_HEADERS)
    return await graphdata.cube_graph(
        session, tenant_id=web.tenant_id, cube_id=cube.id, center=center, depth=depth, limit=limit
    )
