"""The one entry point for a search request, shared by the API and the admin view."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from memsvc.config import Settings
from memsvc.errors import ValidationFailed
from memsvc.retrieval import presets, ranker
from memsvc.retrieval.search import search
from memsvc.runtime import ModelRuntime
from memsvc.schemas import SearchRequest, SearchResponse
from memsvc.store.db import Database


async def search_cube(
    session: AsyncSession,
    *,
    runtime: ModelRuntime,
    settings: Settings,
    tenant_id: uuid.UUID,
    cube_id: uuid.UUID,
    request: SearchRequest,
    db: Database | None = None,
) -> SearchResponse:
    """Check limits, resolve the strategy, embed the query and run the search. With ``db``
    a large scope's stale lexicon is refreshed in the background, not by this search."""
    limit = settings.limits.max_top_k
    if request.top_k > limit:
        raise ValidationFailed(f"top_k may be at most {limit}", detail={"limit": limit})
    name, config = presets.resolve(request.preset, request.config)
    vec = await runtime.embed_one(request.query) if config.vector is not None else None
    return await search(
        session,
        tenant_id=tenant_id,
        cube_id=cube_id,
        request=request,
        config=config,
        preset=name,
        query_vec=vec,
        rerank=runtime.rerank if config.rerank else None,
        exact_threshold=settings.exact_search_threshold,
        reopen=(lambda: db.tenant_transaction(tenant_id)) if db is not None else None,
        ranker=(
            ranker.load(
                Path(settings.models.ranker) if settings.models.ranker else ranker.DEFAULT_MODEL
            )
            if config.ranker == "learned"
            else None
        ),
    )
