"""Cubes: the overview with counts, growth and open jobs; one cube's memory table and search."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.retrieval import presets
from memsvc.retrieval.service import search_cube
from memsvc.schemas import CubeRead, SearchRequest, SearchResponse
from memsvc.state import AppState
from memsvc.store import cubes
from memsvc.store import memories as store
from memsvc.store import stats as numbers
from memsvc.web.deps import CubeDep, SessionDep, StateDep, WebDep
from memsvc.web.errors import AdminRoute, from_pydantic
from memsvc.web.filters import LAYERS, PAGE_SIZES, STATUSES, TableQuery
from memsvc.web.render import SECURITY_HEADERS, page

router = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)


@router.get("")
async def root() -> Response:
    return RedirectResponse("/admin/", status_code=307, headers=SECURITY_HEADERS)


@router.get("/")
async def overview(
    request: Request, web: WebDep, session: SessionDep, cursor: str | None = None
) -> Response:
    """The tenant's cubes with memory counts, 30-day growth and open jobs."""
    cube_page = await cubes.get_all(session, tenant_id=web.tenant_id, cursor=cursor, limit=100)
    stats = await numbers.cube_stats(
        session, tenant_id=web.tenant_id, cube_ids=[c.id for c in cube_page.items], days=30
    )
    counts = await numbers.job_counts(session, tenant_id=web.tenant_id)
    return page(
        request,
        "cubes.html",
        cubes=cube_page.items,
        stats=stats,
        next_cursor=cube_page.next_cursor,
        jobs=counts["all"],
    )


async def run_search(
    session: AsyncSession, state: AppState, *, tenant_id: uuid.UUID, cube: CubeRead, tq: TableQuery
) -> SearchResponse:
    """The API's search, with ``explain`` on, for the table's query and filters."""
    try:
        request = SearchRequest(
            query=tq.q or "",
            top_k=min(tq.top_k, state.settings.limits.max_top_k),
            filters=tq.search_filters(),
            preset=tq.preset,
            explain=True,
        )
    except ValidationError as exc:
        raise from_pydantic(exc) from exc
    return await search_cube(
        session,
        runtime=state.runtime,
        settings=state.settings,
        tenant_id=tenant_id,
        cube_id=cube.id,
        request=request,
        db=state.db,
    )


@router.get("/cubes/{cube_id}")
async def cube_page(
    request: Request, cube: CubeDep, web: WebDep, session: SessionDep, state: StateDep
) -> Response:
    """One cube: growth, a filterable memory table with cursor paging, and search."""
    tq = TableQuery.parse(dict(request.query_params))
    growth = (
        await numbers.growth_by_cube(session, tenant_id=web.tenant_id, cube_ids=[cube.id], days=90)
    )[cube.id]
    stats = (
        await numbers.cube_stats(session, tenant_id=web.tenant_id, cube_ids=[cube.id], days=1)
    )[cube.id]
    results = memories = None
    if tq.q:
        results = await run_search(session, state, tenant_id=web.tenant_id, cube=cube, tq=tq)
    else:
        memories = await store.get_all(
            session,
            tenant_id=web.tenant_id,
            cube_id=cube.id,
            filters=tq.filters,
            cursor=tq.cursor,
            limit=tq.limit,
        )
    return page(
        request,
        "cube.html",
        cube=cube,
        tq=tq,
        growth=growth,
        stats=stats,
        results=results,
        memories=memories,
        layers=LAYERS,
        statuses=STATUSES,
        page_sizes=PAGE_SIZES,
        presets=sorted(presets.PRESETS),
    )
