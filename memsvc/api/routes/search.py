"""Search."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from memsvc.api.deps import PrincipalDep, StateDep
from memsvc.retrieval.service import plan_search
from memsvc.retrieval.service import search_cube as run_search
from memsvc.schemas import SearchRequest, SearchResponse
from memsvc.store import cubes

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/cubes/{cube_id}/search", response_model=SearchResponse)
async def search_cube(
    cube_id: uuid.UUID,
    body: SearchRequest,
    principal: PrincipalDep,
    state: StateDep,
) -> SearchResponse:
    """Hybrid search over the cube's memories.

    The query is embedded while the tenant's transaction opens and the cube is checked
    (one transaction, committed before the response is sent, as ``SessionDep``'s)."""
    planned = plan_search(body, runtime=state.runtime, settings=state.settings)
    try:
        async with state.db.tenant_transaction(principal.tenant_id) as session:
            cube = await cubes.require(
                session, tenant_id=principal.tenant_id, cube_id=cube_id, vector_gen=True
            )
            return await run_search(
                session,
                runtime=state.runtime,
                settings=state.settings,
                tenant_id=principal.tenant_id,
                cube_id=cube.id,
                request=body,
                db=state.db,
                planned=planned,
                vector_gen=cube.vector_gen,
            )
    finally:
        planned.cancel()
