"""Search."""

from __future__ import annotations

from fastapi import APIRouter

from memsvc.api.deps import CubeDep, PrincipalDep, SessionDep, StateDep
from memsvc.retrieval.service import search_cube as run_search
from memsvc.schemas import SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/cubes/{cube_id}/search", response_model=SearchResponse)
async def search_cube(
    cube: CubeDep,
    body: SearchRequest,
    principal: PrincipalDep,
    session: SessionDep,
    state: StateDep,
) -> SearchResponse:
    """Hybrid search over the cube's memories."""
    return await run_search(
        session,
        runtime=state.runtime,
        settings=state.settings,
        tenant_id=principal.tenant_id,
        cube_id=cube.id,
        request=body,
        db=state.db,
    )
