"""Search."""

from __future__ import annotations

from fastapi import APIRouter

from memsvc.api.deps import CubeDep, PrincipalDep, SessionDep, StateDep
from memsvc.errors import ValidationFailed
from memsvc.retrieval import presets
from memsvc.retrieval.search import search
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
    if body.top_k > state.settings.limits.max_top_k:
        raise ValidationFailed(
            f"top_k may be at most {state.settings.limits.max_top_k}",
            detail={"limit": state.settings.limits.max_top_k},
        )
    name, config = presets.resolve(body.preset, body.config)
    vec = await state.runtime.embed_one(body.query) if config.vector is not None else None
    rerank = state.runtime.rerank if config.rerank else None
    return await search(
        session,
        tenant_id=principal.tenant_id,
        cube_id=cube.id,
        request=body,
        config=config,
        preset=name,
        query_vec=vec,
        rerank=rerank,
    )
