"""Ask traces: a cube's recent asks, and one trace step by step with its evidence."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from memsvc.errors import NotFound
from memsvc.schemas import CubeRead
from memsvc.store import cubes, traces
from memsvc.store import memories as store
from memsvc.web.deps import CubeDep, SessionDep, WebDep
from memsvc.web.errors import AdminRoute
from memsvc.web.render import page

router = APIRouter(prefix="/admin", route_class=AdminRoute, include_in_schema=False)

# The list page's length (the store keeps traces for a retention period, not forever).
RECENT = 50
# Memory ids shown per step; the rest are counted.
FOUND_SHOWN = 20


@router.get("/cubes/{cube_id}/traces")
async def trace_list(request: Request, cube: CubeDep, web: WebDep, session: SessionDep) -> Response:
    """The cube's latest asks, newest first, each linking to its trace."""
    recent = await traces.list_recent(session, cube.id, limit=RECENT, tenant_id=web.tenant_id)
    return page(request, "traces.html", cube=cube, traces=recent, limit=RECENT)


@router.get("/traces/{trace_id}")
async def trace_page(
    request: Request, trace_id: uuid.UUID, web: WebDep, session: SessionDep
) -> Response:
    """One ask: question, mode, steps in order (probes, what they found, gate decisions, LLM
    calls) and the evidence; 404 for unknown, expired or other tenants' traces."""
    trace = await traces.get(session, trace_id, tenant_id=web.tenant_id)
    if trace is None:
        raise NotFound("trace not found")
    cube: CubeRead | None
    try:
        cube = await cubes.get(session, tenant_id=web.tenant_id, cube_id=trace.cube_id)
    except NotFound:
        cube = None  # a retired cube: its traces stay readable until they expire
    named = set(trace.evidence_ids)
    for step in trace.steps:
        named.update((step.found or [])[:FOUND_SHOWN])
    heads = await store.heads(session, tenant_id=web.tenant_id, ids=named)
    evidence = [(mid, heads.get(mid)) for mid in trace.evidence_ids]
    return page(
        request,
        "trace.html",
        trace=trace,
        cube=cube,
        heads=heads,
        evidence=evidence,
        found_shown=FOUND_SHOWN,
    )
